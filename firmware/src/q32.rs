//! The kernel's e^x and tanh approximations in 32-bit fixed point (the `fixed` crate's
//! `FixedI32<F>`, Q(31-F).F), operation for operation as the 64-bit kernel computes them.
//!
//! Each approximation follows the order of operations of [`ringnn_core::Plain`]: max of
//! lines as `round(x * slope) + intercept` (integer slopes multiply without truncation)
//! reduced by the same halving tree of wrapped differences; Taylor by Horner with one
//! truncation per degree; `limit8` as `x >> 8` plus one, squared eight times; hard tanh as
//! the kernel's clamp; `exact` by decoding, the `f64` function, and encoding. Products are
//! formed in 64 bits and rounded to nearest (`(p + 2^(F-1)) >> F`), as the kernel's
//! truncation does (`fixed`'s own multiplication floors, so it is not used for them), so
//! wherever nothing wraps the 32-bit result equals the 64-bit one bit for bit (a host test
//! checks this), and the study sees only what 32 bits change.
//!
//! # Two meanings of "32-bit"
//! - **Q-format** (`fixed`, a DSP, an M4's `SMULL`): the product of two 32-bit values is
//!   formed in 64 bits and truncated there; only a *result* outside `[-2^(31-F), 2^(31-F))`
//!   wraps. [`Wraps::q`] marks the points where some result wrapped.
//! - **The ring Z_2^32** of two-party computation: shares are multiplied in the ring, so
//!   the product wraps *before* the truncation, and the real value of every product (at
//!   `2F` fractional bits) must stay within `[-2^31, 2^31)`. [`Wraps::ring`] marks the points
//!   where some product or sum left that range: there a 32-bit ring computes garbage.

use crate::func::Func;
use fixed::types::extra::{LeEqU32, U10, U12, U13, U16, U20, U24, U8};
use fixed::FixedI32;
use ringnn_core::approx::lines::MAX_LINES;
use ringnn_core::approx::{ExpApprox, Lines, TanhApprox};
use ringnn_core::Exact;

/// What wrapped while one point was evaluated.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Wraps {
    /// A result (or a constant) left the Q-format's range.
    pub q: bool,
    /// A product before truncation, or a result, left 32 bits: wrong in the ring Z_2^32.
    pub ring: bool,
}

/// The fractional bits the 32-bit evaluation is compiled for (one `FixedI32` type each).
pub const SUPPORTED_FRAC_BITS: [u32; 7] = [8, 10, 12, 13, 16, 20, 24];

/// A number of fractional bits outside [`SUPPORTED_FRAC_BITS`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UnsupportedFracBits(pub u32);

/// `out[i] = func(x[i])` in 32-bit fixed point with `f` fractional bits; `x` and `out` are
/// raw `FixedI32` bits. `wraps[i]` is set to what wrapped at point `i`.
///
/// # Errors
/// [`UnsupportedFracBits`] unless `f` is in [`SUPPORTED_FRAC_BITS`].
///
/// # Panics
/// If the slices' lengths differ.
pub fn eval(
    func: Func,
    f: u32,
    x: &[i32],
    out: &mut [i32],
    wraps: &mut [Wraps],
) -> Result<(), UnsupportedFracBits> {
    assert!(
        x.len() == out.len() && x.len() == wraps.len(),
        "q32::eval: length mismatch"
    );
    match f {
        8 => eval_frac::<U8>(func, x, out, wraps),
        10 => eval_frac::<U10>(func, x, out, wraps),
        12 => eval_frac::<U12>(func, x, out, wraps),
        13 => eval_frac::<U13>(func, x, out, wraps),
        16 => eval_frac::<U16>(func, x, out, wraps),
        20 => eval_frac::<U20>(func, x, out, wraps),
        24 => eval_frac::<U24>(func, x, out, wraps),
        _ => return Err(UnsupportedFracBits(f)),
    }
    Ok(())
}

/// Encodes `x` as raw `FixedI32` bits with `f` fractional bits, or `None` when it is out of
/// range or not exactly representable (the study's grid points always are).
pub fn encode_exact(x: f32, f: u32) -> Option<i32> {
    let scaled = x as f64 * ringnn_core::fixed::pow2(f as i32);
    let r = scaled as i32;
    (r as f64 == scaled && f <= 31).then_some(r)
}

fn eval_frac<Fr: LeEqU32>(func: Func, x: &[i32], out: &mut [i32], wraps: &mut [Wraps]) {
    let mut ev = Q32::<Fr>::default();
    match func {
        Func::Exp(a) => {
            if let Some(l) = a.lines() {
                ev.max_of_lines(&l, x, out, wraps);
            } else if let Some(c) = a.coefficients() {
                ev.polynomial(c, x, out, wraps);
            } else if a == ExpApprox::Limit8 {
                ev.limit_power(x, out, wraps);
            } else {
                ev.exact(Exact::Exp, x, out, wraps);
            }
        }
        Func::Tanh(TanhApprox::Hard) => ev.clamp(-1.0, 1.0, x, out, wraps),
        Func::Tanh(TanhApprox::Exact) => ev.exact(Exact::Tanh, x, out, wraps),
    }
}

/// The evaluator for one format; `const_wrapped` remembers a constant that did not fit,
/// which taints every point.
struct Q32<Fr> {
    const_wrapped: bool,
    _f: core::marker::PhantomData<Fr>,
}

impl<Fr> Default for Q32<Fr> {
    fn default() -> Self {
        Q32 {
            const_wrapped: false,
            _f: core::marker::PhantomData,
        }
    }
}

/// A slope as the kernel's `Engine::scale` applies it: integers multiply the raw value,
/// others multiply and truncate.
#[derive(Clone, Copy)]
enum Slope<Fr> {
    Int(i32),
    Real(FixedI32<Fr>),
}

impl<Fr: LeEqU32> Q32<Fr> {
    /// A public constant, rounded to nearest; saturated (and remembered) when out of range.
    fn constant(&mut self, c: f64) -> FixedI32<Fr> {
        match FixedI32::<Fr>::checked_from_num(c) {
            Some(v) => v,
            None => {
                self.const_wrapped = true;
                FixedI32::<Fr>::saturating_from_num(c)
            }
        }
    }

    fn slope(&mut self, c: f64) -> Slope<Fr> {
        if libm::trunc(c) == c && libm::fabs(c) < 2.0e9 {
            Slope::Int(c as i32)
        } else {
            Slope::Real(self.constant(c))
        }
    }

    fn start(&self) -> Wraps {
        Wraps {
            q: self.const_wrapped,
            ring: self.const_wrapped,
        }
    }

    #[inline(always)]
    fn mul(a: FixedI32<Fr>, b: FixedI32<Fr>, w: &mut Wraps) -> FixedI32<Fr> {
        // The kernel's truncation rounds to nearest: (p + 2^(F-1)) >> F on the wide product.
        let wide = a.to_bits() as i64 * b.to_bits() as i64;
        let f = FixedI32::<Fr>::FRAC_NBITS;
        let r = if f == 0 {
            wide
        } else {
            (wide + (1i64 << (f - 1))) >> f
        };
        let o = r != r as i32 as i64;
        w.q |= o;
        w.ring |= o | (wide != wide as i32 as i64);
        FixedI32::<Fr>::from_bits(r as i32)
    }

    #[inline(always)]
    fn scale(a: FixedI32<Fr>, s: Slope<Fr>, w: &mut Wraps) -> FixedI32<Fr> {
        match s {
            Slope::Int(k) => {
                let (r, o) = a.overflowing_mul_int(k);
                w.q |= o;
                w.ring |= o;
                r
            }
            Slope::Real(c) => Self::mul(a, c, w),
        }
    }

    #[inline(always)]
    fn add(a: FixedI32<Fr>, b: FixedI32<Fr>, w: &mut Wraps) -> FixedI32<Fr> {
        let (r, o) = a.overflowing_add(b);
        w.q |= o;
        w.ring |= o;
        r
    }

    /// `a < b` as the kernel decides it: the sign of the wrapped difference.
    #[inline(always)]
    fn less(a: FixedI32<Fr>, b: FixedI32<Fr>, w: &mut Wraps) -> bool {
        let (d, o) = a.overflowing_sub(b);
        w.q |= o;
        w.ring |= o;
        d.is_negative()
    }

    fn max_of_lines(&mut self, lines: &Lines, x: &[i32], out: &mut [i32], wraps: &mut [Wraps]) {
        const CAP: usize = MAX_LINES + 1;
        let m = lines.parts();
        let mut slope = [Slope::Int(0); CAP];
        let mut icpt = [FixedI32::<Fr>::ZERO; CAP];
        for j in 0..m {
            let (a, b) = lines.line(j);
            slope[j] = self.slope(a);
            icpt[j] = self.constant(b);
        }
        for ((o, &xr), w) in out.iter_mut().zip(x).zip(wraps.iter_mut()) {
            *w = self.start();
            let xv = FixedI32::<Fr>::from_bits(xr);
            let mut v = [FixedI32::<Fr>::ZERO; CAP];
            for j in 0..m {
                v[j] = Self::add(Self::scale(xv, slope[j], w), icpt[j], w);
            }
            // The kernel's halving tree, ties kept on the left.
            let mut cnt = m;
            while cnt > 1 {
                let h = cnt / 2;
                for j in 0..h {
                    if Self::less(v[j], v[j + h], w) {
                        v[j] = v[j + h];
                    }
                }
                if cnt % 2 == 1 {
                    v[h] = v[2 * h];
                }
                cnt = h + cnt % 2;
            }
            *o = v[0].to_bits();
        }
    }

    fn polynomial(&mut self, coeffs: &[f64], x: &[i32], out: &mut [i32], wraps: &mut [Wraps]) {
        let Some((&top, rest)) = coeffs.split_last() else {
            out.fill(0);
            wraps.fill(self.start());
            return;
        };
        let top = self.constant(top);
        let mut c = [FixedI32::<Fr>::ZERO; 16];
        let deg = rest.len().min(c.len());
        for (d, &v) in c.iter_mut().zip(rest) {
            *d = self.constant(v);
        }
        for ((o, &xr), w) in out.iter_mut().zip(x).zip(wraps.iter_mut()) {
            *w = self.start();
            let xv = FixedI32::<Fr>::from_bits(xr);
            let mut y = top;
            for k in (0..deg).rev() {
                y = Self::add(Self::mul(y, xv, w), c[k], w);
            }
            *o = y.to_bits();
        }
    }

    fn limit_power(&mut self, x: &[i32], out: &mut [i32], wraps: &mut [Wraps]) {
        let one = self.constant(1.0);
        for ((o, &xr), w) in out.iter_mut().zip(x).zip(wraps.iter_mut()) {
            *w = self.start();
            // x / 256 rounded to nearest, as the kernel's shift_right.
            let x256 = ((xr as i64 + 128) >> 8) as i32;
            let mut y = Self::add(FixedI32::<Fr>::from_bits(x256), one, w);
            for _ in 0..8 {
                y = Self::mul(y, y, w);
            }
            *o = y.to_bits();
        }
    }

    fn clamp(&mut self, lo: f64, hi: f64, x: &[i32], out: &mut [i32], wraps: &mut [Wraps]) {
        let (hi_c, lo_c, neg_lo) = (self.constant(hi), self.constant(lo), self.constant(-lo));
        let zero = FixedI32::<Fr>::ZERO;
        for ((o, &xr), w) in out.iter_mut().zip(x).zip(wraps.iter_mut()) {
            *w = self.start();
            let xv = FixedI32::<Fr>::from_bits(xr);
            // As the kernel: above = [hi - x < 0], below = [x - lo < 0].
            let d_hi = Self::add(Self::scale(xv, Slope::Int(-1), w), hi_c, w);
            let d_lo = Self::add(xv, neg_lo, w);
            let t = if Self::less(d_hi, zero, w) { hi_c } else { xv };
            let r = if Self::less(d_lo, zero, w) { lo_c } else { t };
            *o = r.to_bits();
        }
    }

    fn exact(&mut self, func: Exact, x: &[i32], out: &mut [i32], wraps: &mut [Wraps]) {
        for ((o, &xr), w) in out.iter_mut().zip(x).zip(wraps.iter_mut()) {
            *w = self.start();
            let v = func.eval(FixedI32::<Fr>::from_bits(xr).to_num::<f64>());
            let r = match FixedI32::<Fr>::checked_from_num(v) {
                Some(r) => r,
                None => {
                    w.q = true;
                    w.ring = true;
                    FixedI32::<Fr>::saturating_from_num(v)
                }
            };
            *o = r.to_bits();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringnn_core::{Engine, Plain, Z64};
    use std::vec;
    use std::vec::Vec;

    /// Wherever nothing wraps, the 32-bit evaluation returns the 64-bit kernel's raw value
    /// bit for bit: same constants, same truncations, same comparisons.
    #[test]
    fn equals_the_64_bit_kernel_where_nothing_wraps() {
        for func in Func::ALL {
            let grid = func.grid();
            for f in SUPPORTED_FRAC_BITS {
                let xs: Vec<f32> = (0..grid.points).map(|i| grid.point(i)).collect();
                let raw: Vec<i32> = xs.iter().map(|&x| encode_exact(x, f).unwrap()).collect();
                let mut out = vec![0i32; xs.len()];
                let mut wraps = vec![Wraps::default(); xs.len()];
                eval(func, f, &raw, &mut out, &mut wraps).unwrap();

                let mut p = Plain::with_frac_bits(f).unwrap();
                let x64: Vec<Z64> = raw.iter().map(|&r| Z64::from_signed(r as i64)).collect();
                let mut o64 = vec![Z64::ZERO; xs.len()];
                let mut scratch = vec![Z64::ZERO; func.scratch_len(xs.len())];
                func.eval(&mut p, &x64, &mut o64, &mut scratch).unwrap();
                assert_eq!(p.overflow_count(), 0);
                for i in 0..xs.len() {
                    if !wraps[i].q {
                        assert_eq!(
                            out[i] as i64,
                            o64[i].to_signed(),
                            "{} f={f} x={}",
                            func.name(),
                            xs[i]
                        );
                    }
                    assert!(!wraps[i].q || wraps[i].ring, "q wrap implies ring wrap");
                }
            }
        }
    }

    #[test]
    fn q_format_wraps_only_out_of_range_but_the_ring_wraps_at_the_product() {
        // At f = 16, 1.5 * 1.5 = 2.25 fits Q15.16, but the raw product 2.25 * 2^32 does not
        // fit 32 bits: correct in Q-format, wrong in the ring Z_2^32.
        let x = [encode_exact(1.5, 16).unwrap()];
        let (mut out, mut w) = ([0], [Wraps::default()]);
        eval(Func::Exp(ExpApprox::Taylor(2)), 16, &x, &mut out, &mut w).unwrap();
        // 1 + 1.5 + 1.125 = 3.625, exact in binary.
        assert_eq!(out[0], (3.625 * 65536.0) as i32);
        assert_eq!(
            w[0],
            Wraps {
                q: false,
                ring: true
            }
        );
        // At f = 24 the range is [-128, 128): pwl8's steepest line at x = -6 is -206.9.
        let x = [encode_exact(-6.0, 24).unwrap()];
        eval(Func::Exp(ExpApprox::Pwl(8)), 24, &x, &mut out, &mut w).unwrap();
        assert!(w[0].q && w[0].ring);
    }

    #[test]
    fn results_out_of_range_saturate_and_are_flagged() {
        // At f = 24 the range is [-128, 128): e^4.875 = 131 does not fit.
        let x = [encode_exact(4.875, 24).unwrap()];
        let (mut out, mut w) = ([0], [Wraps::default()]);
        eval(Func::Exp(ExpApprox::Exact), 24, &x, &mut out, &mut w).unwrap();
        assert!(w[0].q && w[0].ring);
        assert_eq!(out[0], i32::MAX);
    }

    #[test]
    fn unsupported_frac_bits_are_an_error() {
        let (mut out, mut w) = ([0], [Wraps::default()]);
        assert_eq!(
            eval(Func::Tanh(TanhApprox::Hard), 9, &[0], &mut out, &mut w),
            Err(UnsupportedFracBits(9))
        );
        assert_eq!(encode_exact(1.0 / 256.0, 7), None);
        assert_eq!(encode_exact(-6.0, 24), Some(-6 << 24));
    }
}
