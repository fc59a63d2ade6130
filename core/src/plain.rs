//! The plaintext fixed-point engine: Z_2^64 with `f` fractional bits, chosen at run time.
//!
//! `Plain` computes exactly what the two-party engine computes, without the secret sharing:
//! the same encodings, the same products, the same truncations (here exact; two-party
//! truncation adds at most one ulp). It overrides the hot composites with
//! fused per-element loops that return bit for bit what the generic versions in
//! [`crate::engine::generic`] return; tests check this on random and edge inputs.
//!
//! # Rounding
//! Truncation ([`Engine::shift_right`], hence every rescale) rounds to the nearest value,
//! `(x + 2^(d-1)) >> d`. Flooring (a bare arithmetic shift) would bias every product by
//! half an ulp downward, a drift that accumulates in the weights over thousands of
//! updates. The two-party engine's truncation is unbiased too, by different means: it
//! returns `floor(x / 2^d)` or one more, one more with probability equal to the dropped
//! fraction (stochastic rounding), so it stays within one ulp of `Plain`'s result.
//!
//! # Health
//! [`Engine::health`] counts products whose integer value left `[-2^63, 2^63)` (the ring
//! result then differs from the real one; matrix products are not checked), public
//! constants and exact-function results that saturated at the safe range, softmax rows
//! with no mass, reciprocal inputs outside `(0, 2^62)`, and ReLU, clamp and max-of-lines
//! inputs (and the differences that max, pooling and arg-max compare) outside the range of
//! the two-party engine's one-round gates ([`Health::beyond_fss_width`]). [`Engine::overflow_count`] is the first two together.

use crate::approx::lines::Lines;
use crate::engine::recip::{RecipPieces, RECIP_MAX_PIECES};
use crate::engine::{
    fss_width, generic, within_fss_width, Engine, Exact, ExactEngine, Health, MatDims, MatmulFn,
};
use crate::fixed::{Fixed, FixedError, FracBits};
use crate::ring::Z64;
use core::cell::Cell;
use core::convert::Infallible;

/// Fixed point in Z_2^64. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Plain {
    fx: Fixed,
    health: Cell<Health>,
    matmul: Option<MatmulFn<Z64>>,
}

impl Plain {
    /// The engine for `f` fractional bits.
    pub fn new(f: FracBits) -> Self {
        Plain {
            fx: Fixed::with(f),
            health: Cell::new(Health::default()),
            matmul: None,
        }
    }

    /// The engine for `f` fractional bits, validated.
    ///
    /// # Errors
    /// [`FixedError::FracBits`] unless `1 <= f <= 40`.
    pub fn with_frac_bits(f: u32) -> Result<Self, FixedError> {
        Ok(Self::new(FracBits::new(f)?))
    }

    /// Uses `matmul` for [`Engine::matmul`] instead of the portable loop.
    pub fn with_matmul(mut self, matmul: MatmulFn<Z64>) -> Self {
        self.matmul = Some(matmul);
        self
    }

    /// The number format.
    pub fn format(&self) -> Fixed {
        self.fx
    }

    /// Encodes every value of `x` into `out`.
    ///
    /// # Errors
    /// The first value that cannot be encoded, with its index.
    pub fn encode_slice(&self, x: &[f64], out: &mut [Z64]) -> Result<(), (usize, FixedError)> {
        assert_eq!(x.len(), out.len(), "encode_slice: length mismatch");
        for (i, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            *o = self.fx.encode(v).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// Decodes every value of `x` into `out`.
    pub fn decode_slice(&self, x: &[Z64], out: &mut [f64]) {
        assert_eq!(x.len(), out.len(), "decode_slice: length mismatch");
        for (o, &v) in out.iter_mut().zip(x) {
            *o = self.fx.decode(v);
        }
    }

    /// Sets the health counters back to zero.
    pub fn reset_health(&mut self) {
        self.health.set(Health::default());
    }

    /// Adds `h` to the health counters (what a copy of this engine counted on part of the
    /// work, taken back).
    pub fn add_health(&mut self, h: Health) {
        self.tally(h);
    }

    #[inline]
    fn tally(&self, h: Health) {
        if h != Health::default() {
            self.health.set(self.health.get().plus(h));
        }
    }

    /// Counts `n` wrapped products.
    #[inline]
    fn count(&self, n: u64) {
        self.tally(Health {
            wrapped: n,
            ..Health::default()
        });
    }

    /// Counts `n` saturated encodings.
    #[inline]
    fn count_saturated(&self, n: u64) {
        self.tally(Health {
            saturated: n,
            ..Health::default()
        });
    }

    /// Counts `empty` rows without mass and `outside` reciprocal inputs out of its domain.
    #[inline]
    fn count_rows(&self, empty: u64, outside: u64) {
        self.tally(Health {
            empty_rows: empty,
            recip_out_of_range: outside,
            ..Health::default()
        });
    }

    /// Counts the inputs of a ReLU, clamp or max-of-lines outside the range of the
    /// two-party engine's one-round gates ([`Health::beyond_fss_width`]).
    #[inline]
    fn count_beyond_fss_width(&self, x: &[Z64]) {
        let f = self.f();
        self.tally_beyond_fss_width(x.iter().filter(|v| !within_fss_width(v.to_signed(), f)));
    }

    /// Counts the differences compared by [`Engine::is_negative_diff`] (or the tree of
    /// [`Engine::max_tree`]) outside the signed range of the gates' width,
    /// `[-2^(W-1), 2^(W-1))` ([`Health::beyond_fss_width`]).
    #[inline]
    fn count_diffs_beyond_fss_width(&self, d: impl Iterator<Item = Z64>) {
        let lim = 1i64 << (fss_width(self.f()) - 1).min(63);
        self.tally_beyond_fss_width(d.filter(|v| !(-lim..lim).contains(&v.to_signed())));
    }

    /// Adds the values of `beyond` to [`Health::beyond_fss_width`]; nothing is counted at
    /// the full width 64, where the gates are exact on the whole ring.
    #[inline]
    fn tally_beyond_fss_width<T>(&self, beyond: impl Iterator<Item = T>) {
        if fss_width(self.f()) < 64 {
            self.tally(Health {
                beyond_fss_width: beyond.count() as u64,
                ..Health::default()
            });
        }
    }

    #[inline]
    fn f(&self) -> u32 {
        self.fx.frac_bits()
    }

    /// `v * c`, counting a wrap.
    #[inline]
    fn mul_counted(&self, v: Z64, c: Z64, overflows: &mut u64) -> Z64 {
        let (p, o) = v.overflowing_mul_signed(c);
        *overflows += o as u64;
        p
    }

    /// [`generic::reciprocal`] for one element, with the bit length found directly: `0`
    /// for an empty input (`v - 1 < 0`, the generic code's `o_0`).
    #[inline]
    fn recip_one(&self, v: Z64, extra_bits: u32, k: &mut RecipConsts, o: &mut u64) -> Z64 {
        if recip_empty(v) {
            return Z64::ZERO;
        }
        let f = self.f();
        let raw = v.to_signed();
        // The generic code's bit length: 62 for every raw value of 2^61 or more, -2^63
        // included (all its comparisons `v - 2^j >= 0` hold there).
        let len = if raw < 0 {
            62
        } else {
            (64 - raw.leading_zeros()).min(62) as i64
        };
        let s = self.shift_by(v, f as i64 - len, o);
        let mut y = self.piece_one(s, k, o);
        for _ in 0..k.iters {
            let t = -self.mul_counted(s, y, o).shr_round(f) + k.two;
            y = self.mul_counted(y, t, o).shr_round(f);
        }
        self.shift_by(y, (f + extra_bits) as i64 - len, o)
    }

    /// [`RecipPieces::eval`] of `s`, counting a wrapped product.
    #[inline]
    fn piece_one(&self, s: Z64, k: &mut RecipConsts, o: &mut u64) -> Z64 {
        let (mul, add) = k.piece(s);
        (self.mul_counted(s, mul, o) + add).shr_round(k.pieces.shift())
    }

    fn scale_const(&self, c: f64) -> ScaleConst {
        if libm::trunc(c) == c && libm::fabs(c) < 9.0e15 {
            ScaleConst {
                mult: self.public_int(c as i64),
                shift: 0,
            }
        } else {
            ScaleConst {
                mult: self.public(c),
                shift: self.f(),
            }
        }
    }

    /// `v * 2^sh` for `sh >= 0`, else `v >> -sh`: the candidate shifts of the reciprocal.
    #[inline]
    fn shift_by(&self, v: Z64, sh: i64, overflows: &mut u64) -> Z64 {
        if sh >= 0 {
            self.mul_counted(v, Z64::from_signed(1i64 << sh), overflows)
        } else {
            v.shr_round((-sh) as u32)
        }
    }
}

/// Max of `M` lines per element, values only, with the generic code's halving tree
/// (the tree shape matters only for wrapped values, where comparisons stop being
/// transitive; it is kept so results stay bit for bit the same).
#[inline(always)]
fn max_lines_values<const M: usize>(
    slope: &[ScaleConst],
    icpt: &[Z64],
    x: &[Z64],
    out: &mut [Z64],
    overflows: &mut u64,
) {
    // Every line as `((x * mult) >> shift) + icpt`: integer slopes shift by 0, so one
    // branch-free formula serves all lines (and multiplying by 0 or 1 cannot overflow, so
    // the count is unchanged).
    let mut mult = [Z64::ZERO; M];
    let mut shift = [0u32; M];
    let mut ic = [Z64::ZERO; M];
    for j in 0..M {
        (mult[j], shift[j]) = (slope[j].mult, slope[j].shift);
        ic[j] = icpt[j];
    }
    // |x * c| < 2^63 for every line when |x| <= i64::MAX / max|c|: blocks whose inputs
    // all satisfy this skip the overflow check (same values, nothing to count).
    let cmax = mult
        .iter()
        .map(|m| m.to_signed().unsigned_abs())
        .max()
        .unwrap_or(0);
    let safe = if cmax <= 1 {
        u64::MAX
    } else {
        i64::MAX as u64 / cmax
    };
    let mut o = 0u64;
    for (ob, xb) in out.chunks_mut(BLOCK).zip(x.chunks(BLOCK)) {
        let big = xb
            .iter()
            .fold(0u64, |m, v| m.max(v.to_signed().unsigned_abs()));
        if big <= safe {
            for (r, &xv) in ob.iter_mut().zip(xb) {
                let mut v = [Z64::ZERO; M];
                for j in 0..M {
                    v[j] = (xv * mult[j]).shr_round(shift[j]) + ic[j];
                }
                *r = halving_max(v);
            }
        } else {
            for (r, &xv) in ob.iter_mut().zip(xb) {
                let mut v = [Z64::ZERO; M];
                for j in 0..M {
                    let (p, ov) = xv.overflowing_mul_signed(mult[j]);
                    o += ov as u64;
                    v[j] = p.shr_round(shift[j]) + ic[j];
                }
                *r = halving_max(v);
            }
        }
    }
    *overflows += o;
}

/// The generic code's halving tree, ties kept on the left.
#[inline(always)]
fn halving_max<const M: usize>(mut v: [Z64; M]) -> Z64 {
    let mut cnt = M;
    while cnt > 1 {
        let h = cnt / 2;
        for j in 0..h {
            if (v[j] - v[j + h]).is_negative() {
                v[j] = v[j + h];
            }
        }
        if cnt % 2 == 1 {
            v[h] = v[2 * h];
        }
        cnt = h + cnt % 2;
    }
    v[0]
}

/// Elements per block of the fused loops (stack arrays of this size per line).
const BLOCK: usize = 256;

/// The public constants of the reciprocal, once per call; a piece's coefficients (an
/// `f64` division and square root) are computed the first time an input needs them and
/// kept for the rest of the call.
struct RecipConsts {
    pieces: RecipPieces,
    table: [(Z64, Z64); RECIP_MAX_PIECES],
    known: u128,
    two: Z64,
    iters: u32,
}

impl RecipConsts {
    fn new(p: &Plain) -> Self {
        RecipConsts {
            pieces: RecipPieces::new(p.f()),
            table: [(Z64::ZERO, Z64::ZERO); RECIP_MAX_PIECES],
            known: 0,
            two: p.public(2.0),
            iters: generic::newton_iterations(p.f()),
        }
    }

    /// `(mul, add)` of the piece that serves the raw `s`.
    #[inline]
    fn piece(&mut self, s: Z64) -> (Z64, Z64) {
        let i = self.pieces.index(s.to_signed());
        if self.known >> i & 1 == 0 {
            self.table[i] = self.pieces.piece(i);
            self.known |= 1 << i;
        }
        self.table[i]
    }
}

/// A public real as the generic [`Engine::scale`] applies it: integers multiply without a
/// rescale (`shift == 0`), others multiply and rescale by `f`.
#[derive(Clone, Copy)]
struct ScaleConst {
    mult: Z64,
    shift: u32,
}

impl Engine for Plain {
    type Elem = Z64;
    type Public = Z64;
    type Error = Infallible;

    fn frac_bits(&self) -> u32 {
        self.f()
    }
    fn public(&self, c: f64) -> Z64 {
        let (v, saturated) = self.fx.encode_saturating(c);
        self.count_saturated(saturated as u64);
        v
    }
    fn public_int(&self, k: i64) -> Z64 {
        Z64::from_signed(k)
    }
    fn health(&self) -> Option<Health> {
        Some(self.health.get())
    }
    fn note_empty_rows(&self, flags: &[Z64]) {
        let n = flags.iter().filter(|z| **z != Z64::ZERO).count();
        self.count_rows(n as u64, 0);
    }
    fn batch_hint(&self) -> usize {
        2048
    }

    fn add_assign(&mut self, x: &mut [Z64], y: &[Z64]) -> Result<(), Infallible> {
        assert_eq!(x.len(), y.len(), "add_assign: length mismatch");
        x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
        Ok(())
    }
    fn sub_assign(&mut self, x: &mut [Z64], y: &[Z64]) -> Result<(), Infallible> {
        assert_eq!(x.len(), y.len(), "sub_assign: length mismatch");
        x.iter_mut().zip(y).for_each(|(a, &b)| *a -= b);
        Ok(())
    }
    fn add_public(&mut self, x: &mut [Z64], c: Z64) -> Result<(), Infallible> {
        x.iter_mut().for_each(|a| *a += c);
        Ok(())
    }
    fn mul_public(&mut self, x: &mut [Z64], c: Z64) -> Result<(), Infallible> {
        let mut o = 0;
        x.iter_mut()
            .for_each(|a| *a = self.mul_counted(*a, c, &mut o));
        self.count(o);
        Ok(())
    }
    fn mul(&mut self, a: &[Z64], b: &[Z64], out: &mut [Z64]) -> Result<(), Infallible> {
        assert!(
            a.len() == b.len() && a.len() == out.len(),
            "mul: length mismatch"
        );
        let mut o = 0;
        for ((r, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *r = self.mul_counted(x, y, &mut o);
        }
        self.count(o);
        Ok(())
    }
    fn matmul(
        &mut self,
        a: &[Z64],
        b: &[Z64],
        d: MatDims,
        out: &mut [Z64],
    ) -> Result<(), Infallible> {
        assert!(a.len() == d.m * d.k && b.len() == d.k * d.n && out.len() == d.m * d.n);
        if let Some(mm) = self.matmul {
            mm(a, b, d, out);
            return Ok(());
        }
        for i in 0..d.m {
            let row = &mut out[i * d.n..(i + 1) * d.n];
            row.fill(Z64::ZERO);
            for p in 0..d.k {
                let av = a[i * d.k + p];
                for (o, &bv) in row.iter_mut().zip(&b[p * d.n..(p + 1) * d.n]) {
                    *o += av * bv;
                }
            }
        }
        Ok(())
    }
    fn shift_right(&mut self, x: &mut [Z64], bits: u32) -> Result<(), Infallible> {
        x.iter_mut().for_each(|a| *a = a.shr_round(bits));
        Ok(())
    }
    fn is_negative_diff(&mut self, x: &[Z64], out: &mut [Z64]) -> Result<(), Infallible> {
        self.count_diffs_beyond_fss_width(x.iter().copied());
        self.is_negative(x, out)
    }
    fn is_negative(&mut self, x: &[Z64], out: &mut [Z64]) -> Result<(), Infallible> {
        assert_eq!(x.len(), out.len(), "is_negative: length mismatch");
        for (o, &v) in out.iter_mut().zip(x) {
            *o = Z64(v.is_negative() as u64);
        }
        Ok(())
    }
    fn select(
        &mut self,
        bits: &[Z64],
        a: &[Z64],
        b: &[Z64],
        out: &mut [Z64],
    ) -> Result<(), Infallible> {
        let n = out.len();
        assert!(
            bits.len() == n && a.len() == n && b.len() == n,
            "select: length mismatch"
        );
        // b + bit * (a - b): the two-party formula, so that a non-bit selector behaves the
        // same on every engine.
        for i in 0..n {
            out[i] = b[i] + bits[i] * (a[i] - b[i]);
        }
        Ok(())
    }
    fn exact(
        &mut self,
    ) -> Option<&mut dyn ExactEngine<Elem = Z64, Public = Z64, Error = Infallible>> {
        Some(self)
    }

    /// The generic tree's comparisons and carries, one pass per level, each level's bits
    /// written as it goes: bit for bit the generic result (tested), without its selects.
    fn max_tree(
        &mut self,
        v: &mut [Z64],
        kk: usize,
        mut bits: Option<&mut [Z64]>,
        _scratch: &mut [Z64],
    ) -> Result<(), Infallible> {
        assert!(
            kk > 0 && v.len().is_multiple_of(kk),
            "max_tree: shape mismatch"
        );
        let nn = v.len() / kk;
        if let Some(b) = bits.as_deref() {
            assert_eq!(
                b.len(),
                generic::max_tree_bits(kk) * nn,
                "max_tree: bits length"
            );
        }
        let mut cnt = kk;
        let mut at = 0;
        while cnt > 1 {
            let h = cnt / 2;
            let w = h * nn;
            let (left, right) = v.split_at_mut(w);
            self.count_diffs_beyond_fss_width(left.iter().zip(&right[..w]).map(|(&l, &r)| l - r));
            // `left < right` as the generic tree decides it: the sign of the ring difference.
            match bits.as_deref_mut() {
                Some(b) => {
                    for ((l, &r), b) in left.iter_mut().zip(&right[..w]).zip(&mut b[at..at + w]) {
                        let right_wins = (*l - r).is_negative();
                        if right_wins {
                            *l = r;
                        }
                        *b = Z64(right_wins as u64);
                    }
                }
                None => {
                    for (l, &r) in left.iter_mut().zip(&right[..w]) {
                        if (*l - r).is_negative() {
                            *l = r;
                        }
                    }
                }
            }
            if cnt % 2 == 1 {
                v.copy_within(2 * w..2 * w + nn, w);
            }
            at += w;
            cnt = h + cnt % 2;
        }
        Ok(())
    }

    fn relu(&mut self, x: &mut [Z64], _scratch: &mut [Z64]) -> Result<(), Infallible> {
        self.count_beyond_fss_width(x);
        x.iter_mut().for_each(|v| {
            if v.is_negative() {
                *v = Z64::ZERO
            }
        });
        Ok(())
    }

    fn clamp(
        &mut self,
        x: &mut [Z64],
        lo: f64,
        hi: f64,
        grad: Option<&mut [Z64]>,
        scratch: &mut [Z64],
    ) -> Result<(), Infallible> {
        self.count_beyond_fss_width(x);
        generic::clamp(self, x, lo, hi, grad, scratch)
    }

    fn max_of_lines(
        &mut self,
        lines: &Lines,
        x: &[Z64],
        out: &mut [Z64],
        grad: Option<&mut [Z64]>,
        _scratch: &mut [Z64],
    ) -> Result<(), Infallible> {
        self.count_beyond_fss_width(x);
        const CAP: usize = crate::approx::lines::MAX_LINES + 1;
        let n = x.len();
        assert_eq!(out.len(), n, "max_of_lines: length mismatch");
        let m = lines.parts();
        let mut slope = [ScaleConst {
            mult: Z64::ZERO,
            shift: 0,
        }; CAP];
        let mut icpt = [Z64::ZERO; CAP];
        let mut slope_val = [Z64::ZERO; CAP];
        for j in 0..m {
            let (a, b) = lines.line(j);
            slope[j] = self.scale_const(a);
            icpt[j] = self.public(b);
            slope_val[j] = self.public(a);
        }
        let mut o = 0u64;
        if grad.is_none() {
            let (sl, ic) = (&slope[..m], &icpt[..m]);
            match m {
                1 => max_lines_values::<1>(sl, ic, x, out, &mut o),
                2 => max_lines_values::<2>(sl, ic, x, out, &mut o),
                3 => max_lines_values::<3>(sl, ic, x, out, &mut o),
                4 => max_lines_values::<4>(sl, ic, x, out, &mut o),
                5 => max_lines_values::<5>(sl, ic, x, out, &mut o),
                6 => max_lines_values::<6>(sl, ic, x, out, &mut o),
                7 => max_lines_values::<7>(sl, ic, x, out, &mut o),
                8 => max_lines_values::<8>(sl, ic, x, out, &mut o),
                _ => max_lines_values::<9>(sl, ic, x, out, &mut o),
            }
            self.count(o);
            return Ok(());
        }
        let mut grad = grad;
        if let Some(g) = grad.as_deref() {
            assert_eq!(g.len(), n, "max_of_lines: gradient length mismatch");
        }
        // Block by block, line by line: each inner loop is branch-free over the block.
        let mut v = [[Z64::ZERO; BLOCK]; CAP];
        let mut idx = [[0u8; BLOCK]; CAP];
        let mut start = 0;
        while start < n {
            let len = BLOCK.min(n - start);
            let xb = &x[start..start + len];
            for j in 0..m {
                let vj = &mut v[j][..len];
                let b = icpt[j];
                let (mult, shift) = (slope[j].mult, slope[j].shift);
                for (d, &xv) in vj.iter_mut().zip(xb) {
                    let (p, ov) = xv.overflowing_mul_signed(mult);
                    o += ov as u64;
                    *d = p.shr_round(shift) + b;
                }
                if grad.is_some() {
                    idx[j][..len].fill(j as u8);
                }
            }
            // The same halving tree as the generic code, ties kept on the left.
            let mut cnt = m;
            while cnt > 1 {
                let h = cnt / 2;
                for j in 0..h {
                    let (lo, hi) = v.split_at_mut(j + h);
                    let (l, r) = (&mut lo[j][..len], &hi[0][..len]);
                    if grad.is_some() {
                        let (ilo, ihi) = idx.split_at_mut(j + h);
                        let (il, ir) = (&mut ilo[j][..len], &ihi[0][..len]);
                        for i in 0..len {
                            let take = (l[i] - r[i]).is_negative();
                            l[i] = if take { r[i] } else { l[i] };
                            il[i] = if take { ir[i] } else { il[i] };
                        }
                    } else {
                        for (a, &b) in l.iter_mut().zip(r) {
                            *a = if (*a - b).is_negative() { b } else { *a };
                        }
                    }
                }
                if cnt % 2 == 1 {
                    v[h] = v[2 * h];
                    idx[h] = idx[2 * h];
                }
                cnt = h + cnt % 2;
            }
            out[start..start + len].copy_from_slice(&v[0][..len]);
            if let Some(g) = grad.as_deref_mut() {
                for (d, &i) in g[start..start + len].iter_mut().zip(&idx[0][..len]) {
                    *d = slope_val[i as usize];
                }
            }
            start += len;
        }
        self.count(o);
        Ok(())
    }

    fn polynomial(
        &mut self,
        coeffs: &[f64],
        x: &[Z64],
        out: &mut [Z64],
        _scratch: &mut [Z64],
    ) -> Result<(), Infallible> {
        assert_eq!(out.len(), x.len(), "polynomial: length mismatch");
        let Some((&top, rest)) = coeffs.split_last() else {
            out.fill(Z64::ZERO);
            return Ok(());
        };
        let top = self.public(top);
        let f = self.f();
        let mut o = 0u64;
        let mut c = [Z64::ZERO; 16];
        let deg = rest.len();
        if deg > c.len() {
            return generic::polynomial(self, coeffs, x, out, _scratch);
        }
        for (d, &v) in c.iter_mut().zip(rest) {
            *d = self.public(v);
        }
        // Element by element, all degrees in registers: the out-of-order core overlaps the
        // independent elements' chains (measured faster here than degree-major passes).
        let coeffs = &c[..deg];
        for (y, &v) in out.iter_mut().zip(x) {
            let mut acc = top;
            for &ck in coeffs.iter().rev() {
                let (p, ov) = acc.overflowing_mul_signed(v);
                o += ov as u64;
                acc = p.shr_round(f) + ck;
            }
            *y = acc;
        }
        self.count(o);
        Ok(())
    }

    /// Row by row, fused; bit for bit [`generic::normalize_rows`] (tested through
    /// [`crate::softmax::generic_rows`]).
    fn normalize_rows(
        &mut self,
        v: &mut [Z64],
        rows: usize,
        cols: usize,
        clip: bool,
        guard_bits: u32,
        _scratch: &mut [Z64],
    ) -> Result<(), Infallible> {
        assert_eq!(v.len(), rows * cols, "normalize_rows: shape mismatch");
        if cols == 0 {
            return Ok(());
        }
        let f = self.f();
        let g = guard_bits;
        let uniform = self.public(1.0 / cols as f64);
        let mut k = RecipConsts::new(self);
        let (mut o, mut empty, mut outside) = (0u64, 0u64, 0u64);
        for row in v.chunks_mut(cols) {
            if clip {
                row.iter_mut().for_each(|v| {
                    if v.is_negative() {
                        *v = Z64::ZERO
                    }
                });
            }
            let sum = row.iter().fold(Z64::ZERO, |a, &v| a + v);
            if recip_empty(sum) {
                row.fill(uniform);
                empty += 1;
                continue;
            }
            outside += !in_recip_domain(sum) as u64;
            let r = self.recip_one(sum, g, &mut k, &mut o);
            for v in row.iter_mut() {
                *v = self.mul_counted(*v, r, &mut o).shr_round(f + g);
            }
        }
        self.count(o);
        self.count_rows(empty, outside);
        Ok(())
    }

    fn reciprocal_pieces(
        &mut self,
        s: &[Z64],
        out: &mut [Z64],
        _scratch: &mut [Z64],
    ) -> Result<(), Infallible> {
        assert_eq!(out.len(), s.len(), "reciprocal_pieces: length mismatch");
        let mut k = RecipConsts::new(self);
        let mut o = 0u64;
        for (r, &v) in out.iter_mut().zip(s) {
            *r = self.piece_one(v, &mut k, &mut o);
        }
        self.count(o);
        Ok(())
    }

    fn reciprocal(
        &mut self,
        x: &[Z64],
        out: &mut [Z64],
        empty: Option<&mut [Z64]>,
        extra_bits: u32,
        _scratch: &mut [Z64],
    ) -> Result<(), Infallible> {
        let f = self.f();
        assert!(
            f + extra_bits <= 62,
            "reciprocal: f + extra_bits must be at most 62"
        );
        assert_eq!(out.len(), x.len(), "reciprocal: length mismatch");
        let mut k = RecipConsts::new(self);
        let mut o = 0u64;
        for (r, &v) in out.iter_mut().zip(x) {
            *r = self.recip_one(v, extra_bits, &mut k, &mut o);
        }
        self.count(o);
        // With `empty`, inputs <= 0 are expected (their flag says so); without, they are
        // outside the domain like those at or above 2^62.
        let flagged = empty.is_some();
        if let Some(z) = empty {
            assert_eq!(z.len(), x.len(), "reciprocal: length mismatch");
            for (z, &v) in z.iter_mut().zip(x) {
                *z = Z64(recip_empty(v) as u64);
            }
        }
        let outside = x
            .iter()
            .filter(|&&v| !(in_recip_domain(v) || flagged && recip_empty(v)))
            .count();
        self.count_rows(0, outside as u64);
        Ok(())
    }
}

/// Whether the raw value `v` lies in the reciprocal's domain `(0, 2^62)`: positive, and
/// within the bit lengths its search tries.
#[inline]
fn in_recip_domain(v: Z64) -> bool {
    (1..1i64 << 62).contains(&v.to_signed())
}

/// Whether the reciprocal treats `v` as empty: `v - 1 < 0` (every `v <= 0` but `-2^63`),
/// the generic code's first comparison.
#[inline]
fn recip_empty(v: Z64) -> bool {
    (v - Z64(1)).is_negative()
}

impl ExactEngine for Plain {
    /// Decodes, evaluates in `f64`, encodes rounding to nearest; a result beyond the safe
    /// range saturates there and is counted in [`Health::saturated`].
    fn apply_exact(&mut self, func: Exact, x: &mut [Z64]) -> Result<(), Infallible> {
        let mut o = 0u64;
        for v in x.iter_mut() {
            let (r, sat) = self.fx.encode_saturating(func.eval(self.fx.decode(*v)));
            *v = r;
            o += sat as u64;
        }
        self.count_saturated(o);
        Ok(())
    }
}
