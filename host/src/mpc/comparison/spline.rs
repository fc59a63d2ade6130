//! Piecewise-linear functions of a shared value in one round: the spline gate of function
//! secret sharing, for max-of-lines e^x (every number of parts), hard tanh and SecureML's
//! sigmoid.
//!
//! # The function as data
//! A [`Spline`] is a list of knots `p_1 < ... < p_K` (raw fixed-point values, signed) and
//! `K + 1` pieces; on `[p_k, p_{k+1})` the output is `mul_k x + add_k` (ring arithmetic on
//! the raw `x`), rounded by `shift` bits, and the slope output is `slope_k`. It is built
//! to give what [`Plain`] gives, bit for bit, for every `x` with `|x| <= bound`:
//!
//! - [`Spline::max_of_lines`]: `Plain` evaluates every line as `round(A_j x / 2^f) + B_j`
//!   (`A_j`, `B_j` the encoded slope and intercept; integer slopes multiply exactly) and
//!   keeps the winner of a fixed comparison tree, ties to the left. Rounding is monotone,
//!   so the maximum of the rounded lines is the rounded value of the winning line's
//!   unrounded `A_j x + B_j 2^f`: the piece of line `j` is `(A_j, B_j 2^f, A_j)` with
//!   `shift = f`. Which line wins is decided by the signs of rounded differences `g_ij(x)`,
//!   which equal the signs of the real differences `D_ij(x) = (A_i - A_j) x / 2^f + B_i -
//!   B_j` wherever `|D_ij| >= 1` (rounding moves a difference by less than 1). So the
//!   winner is constant between the *windows* `|D_ij(x)| < 1`, each about `2 / |a_i - a_j|`
//!   raw values wide whatever `f` is. The builder asks `Plain` for the winner at one point
//!   of every stretch between windows and at every point inside them, and merges runs of
//!   one winner into pieces: the knots are exactly where `Plain`'s winner changes, the
//!   extra knots of rounded near-ties included. At `f = 13` every set of the kernel has
//!   one knot per crossing (`parts - 1`); near-ties add up to 6 elsewhere (pwl8 at
//!   `f = 16`: 13 knots), and at `f <= 6` some lines never win and need none (the test
//!   prints the list). Knots cost local work only, never a message or a key.
//! - [`Spline::clamp`]: `min(max(x, lo), hi)` with the derivative `1` on `[lo, hi]`, the
//!   kernel's hard tanh and SecureML sigmoid: knots `lo` and `hi + 1`, `shift = 0`.
//! - [`Spline::reciprocal`]: the reciprocal's 128 linear pieces on its normalised input
//!   ([`RecipPieces`]), the kernel's data as it is: 127 knots, no near ties to find.
//!
//! `bound` keeps every piece's `mul x + add` inside `(-2^62, 2^62)`, the range of the
//! two-party truncation and of the comparisons below; within it `Plain`'s products do not
//! wrap either. Outside it (values the fixed-point format excludes) the spline evaluates
//! the end pieces, which need not be what `Plain`'s wrapped arithmetic gives.
//!
//! # The gate
//! Write `d_k = [x >= p_k]`. Then `y = mul_0 x + add_0 + sum_k d_k (Δmul_k x + Δadd_k)`
//! with the differences of consecutive pieces, and `d_k (Δmul_k x + Δadd_k) = Δmul_k d_k
//! (x - p_k) + (Δmul_k p_k + Δadd_k) d_k`. One ReLU key of the dealer
//! ([`crate::mpc::fss::gate`], output unmasked) for the input mask `r_in` gives, evaluated
//! at the public point `x̂ - p_k = (x - p_k) + r_in`, additive shares of `d_k` and of
//! `d_k (x - p_k)`, with no message. So one opening of `x̂ = x + r_in` serves every knot:
//! `K` local evaluations of the same key, then a linear combination with public
//! coefficients; the slope output `slope_0 + sum_k Δslope_k d_k` likewise. The engine
//! then rounds `y` by `shift` bits with its truncation protocol.
//!
//! # Security
//! Only `x̂ = x + r_in` is opened, with a fresh `r_in` per element, uniform in `Z_2^64`
//! and unknown to either party, so it is uniform whatever `x` is; the key reveals nothing
//! about `r_in` (the DCF's security: [`crate::mpc::fss`]). Evaluating one key at several
//! public points is local computation on what the party already holds, and every result
//! stays additively shared. Each `r_in` masks one opening (one dealer request counter,
//! consumed once). The knots and pieces are public: they depend on the approximation and
//! `f` only. Trust: as every FSS gate, a semi-honest dealer that colludes with neither
//! server.
//!
//! # Communication
//! 1 round, 8 bytes sent per element per party, whatever the number of pieces; then the
//! truncation (1 round, 8 bytes) when `shift > 0`. Offline: one ReLU key per element to
//! each party ([`crate::mpc::fss::ReluKey::size`]`(width)`: 2157 bytes at 64, 1827 at the
//! reduced width 54 of f = 13). Work: `K` DCF evaluations per element and party.
//!
//! # Reduced width
//! With keys of width `W = `[`fss_width`]`(f)`, the gate equals `Plain` on every input
//! with `|x| < 2^(W-2)` when every knot is in that range too (then each `x - p_k` is in
//! the signed `W`-bit range); `Plain` counts the inputs beyond it
//! (`Health::beyond_fss_width`), and a spline whose knots are not all in range keeps
//! the full width ([`Spline::width`]).

use super::{open_masked, FSS_WIDTH};
use crate::mpc::channel::Channel;
use crate::mpc::dealer::Correlations;
use crate::mpc::fss::relu_eval_many;
use crate::mpc::protocols::Link;
use crate::mpc::{MpcError, PartyId};
use ringnn_core::approx::Lines;
use ringnn_core::engine::generic;
use ringnn_core::engine::recip::RecipPieces;
use ringnn_core::engine::{fss_width, within_fss_width};
use ringnn_core::{Engine, FracBits, Plain, Z64};
use std::fmt;

/// One piece of a [`Spline`]: `mul x + add` (raw ring values), slope output `slope`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Piece {
    /// The raw multiplier of `x`.
    pub mul: u64,
    /// The raw constant.
    pub add: u64,
    /// The slope output (the derivative at the element scale).
    pub slope: u64,
}

/// A piecewise-linear function as public data. See the [module documentation](self).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Spline {
    knots: Vec<i64>,
    pieces: Vec<Piece>,
    shift: u32,
    bound: i64,
}

/// A spline that cannot be built. Never seen for the kernel's sets; a guard against a
/// set whose near-tie windows would need an unreasonable scan.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SplineError {
    /// The windows around the lines' crossings hold more points than the builder scans.
    TooManyPoints {
        /// Points the windows hold.
        points: u128,
    },
    /// `Plain` returned a value no line gives (an internal inconsistency).
    NoWinner {
        /// The raw input.
        x: i64,
    },
    /// `clamp` with `lo > hi`, which the gate does not cover.
    EmptyClamp,
    /// At this precision the pieces `A x + B 2^f` leave `(-2^62, 2^62)` before `|x|`
    /// reaches 1 (`2 f` plus the intercepts' bits is about 62: `f` above 29 or so), so
    /// the gate would not reproduce `Plain`; the engine falls back to the comparison tree.
    NoRange {
        /// The fractional bits.
        f: u32,
    },
}

impl fmt::Display for SplineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplineError::TooManyPoints { points } => write!(
                f,
                "spline: the near-tie windows hold {points} points (at most {MAX_SCAN})"
            ),
            SplineError::NoWinner { x } => {
                write!(f, "spline: no line gives Plain's maximum at raw {x}")
            }
            SplineError::EmptyClamp => write!(f, "spline: clamp with lo > hi"),
            SplineError::NoRange { f: bits } => write!(
                f,
                "spline: at f = {bits} the pieces leave the ring's safe range below |x| = 1"
            ),
        }
    }
}

impl std::error::Error for SplineError {}

/// The most points the builder evaluates with `Plain`.
pub const MAX_SCAN: u128 = 1 << 22;

/// Both ends of the range within which pieces stay inside `(-2^62, 2^62)`.
fn bound_for(max_mul: u128, max_add: u128) -> i64 {
    let room = ((1u128 << 62) - 1).saturating_sub(max_add);
    (room / max_mul.max(1)).min((1u128 << 62) - 1) as i64
}

impl Spline {
    /// The knots `p_1 < ... < p_K` (raw, signed).
    pub fn knots(&self) -> &[i64] {
        &self.knots
    }

    /// The `K + 1` pieces, left to right.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The rounding shift applied to `mul x + add`.
    pub fn shift(&self) -> u32 {
        self.shift
    }

    /// The width of the gate's keys at `f` fractional bits: the reduced width
    /// [`fss_width`]`(f)` when every knot is within its range (`|p| < 2^(W-2)`), so that
    /// `x - p` is inside the signed `W`-bit range for every input with `|x| < 2^(W-2)`,
    /// the inputs `Plain` does not count in `beyond_fss_width`; otherwise the full 64.
    pub fn width(&self, frac_bits: u32) -> u32 {
        let w = fss_width(frac_bits);
        if self.knots.iter().all(|&p| within_fss_width(p, frac_bits)) {
            w
        } else {
            FSS_WIDTH
        }
    }

    /// The spline equals `Plain` for `|x| <= bound` (raw).
    pub fn bound(&self) -> i64 {
        self.bound
    }

    /// The piece that serves the raw `x`.
    pub fn piece(&self, x: i64) -> Piece {
        self.pieces[self.knots.partition_point(|&p| p <= x)]
    }

    /// `(value, slope)` at the raw `x`, in plaintext: what the gate computes.
    pub fn eval(&self, x: Z64) -> (Z64, Z64) {
        let p = self.piece(x.to_signed());
        let y = Z64(p.mul.wrapping_mul(x.0).wrapping_add(p.add));
        (y.shr_round(self.shift), Z64(p.slope))
    }

    /// The spline of `Plain`'s [`Engine::max_of_lines`] for `lines` at `f` bits, its value
    /// and its slope output.
    ///
    /// # Errors
    /// [`SplineError::TooManyPoints`] for a set whose near-tie windows are too wide (lines
    /// with almost equal slopes); [`SplineError::NoWinner`] on an internal inconsistency.
    pub fn max_of_lines(lines: &Lines, f: FracBits) -> Result<Spline, SplineError> {
        let plain = Plain::new(f);
        let f = f.get();
        let m = lines.parts();
        // The encoded slope (also the slope output) and intercept of each line.
        let enc: Vec<(i64, i64)> = (0..m)
            .map(|j| {
                let (a, b) = lines.line(j);
                (plain.public(a).to_signed(), plain.public(b).to_signed())
            })
            .collect();
        let max_mul = enc
            .iter()
            .map(|&(a, _)| a.unsigned_abs())
            .max()
            .unwrap_or(0);
        let max_add = enc
            .iter()
            .map(|&(_, b)| u128::from(b.unsigned_abs()) << f)
            .max()
            .unwrap_or(0);
        let bound = bound_for(u128::from(max_mul), max_add);
        if bound < 1i64 << f {
            return Err(SplineError::NoRange { f });
        }
        let windows = near_tie_windows(&enc, f, bound)?;
        // Points to ask Plain: one per stretch between windows, every point inside them.
        let mut starts: Vec<(i64, bool)> = Vec::new(); // (first point, whole stretch)
        let mut next = -bound;
        for &(lo, hi) in &windows {
            if next < lo {
                starts.push((next, true));
            }
            for x in lo.max(next)..=hi {
                starts.push((x, false));
            }
            next = next.max(hi + 1);
        }
        if next <= bound {
            starts.push((next, true));
        }
        let xs: Vec<Z64> = starts.iter().map(|&(x, _)| Z64::from_signed(x)).collect();
        let mut value = vec![Z64::ZERO; xs.len()];
        let mut slope = vec![Z64::ZERO; xs.len()];
        let mut scratch = vec![Z64::ZERO; generic::max_of_lines_scratch(lines, xs.len())];
        let mut e = plain;
        match e.max_of_lines(lines, &xs, &mut value, Some(&mut slope), &mut scratch) {
            Ok(()) => {}
            Err(never) => match never {},
        }
        let mut knots = Vec::new();
        let mut pieces: Vec<Piece> = Vec::new();
        for (i, &(x, _)) in starts.iter().enumerate() {
            let xv = Z64::from_signed(x);
            let j = (0..m)
                .find(|&j| {
                    let (a, b) = enc[j];
                    let v = Z64((a as u64).wrapping_mul(xv.0)).shr_round(f) + Z64::from_signed(b);
                    v == value[i] && a as u64 == slope[i].0
                })
                .ok_or(SplineError::NoWinner { x })?;
            let (a, b) = enc[j];
            let piece = Piece {
                mul: a as u64,
                add: (b as u64).wrapping_shl(f),
                slope: a as u64,
            };
            if pieces.last() != Some(&piece) {
                if !pieces.is_empty() {
                    knots.push(x);
                }
                pieces.push(piece);
            }
        }
        Ok(Spline {
            knots,
            pieces,
            shift: f,
            bound,
        })
    }

    /// The spline of [`Engine::clamp`] on `Plain`: `min(max(x, lo), hi)`, slope output
    /// `1` (at the element scale) on `[lo, hi]` and `0` outside.
    ///
    /// # Errors
    /// [`SplineError::EmptyClamp`] when `lo` encodes above `hi`.
    pub fn clamp(lo: f64, hi: f64, f: FracBits) -> Result<Spline, SplineError> {
        let plain = Plain::new(f);
        let (lo, hi) = (plain.public(lo).to_signed(), plain.public(hi).to_signed());
        if lo > hi {
            return Err(SplineError::EmptyClamp);
        }
        let unit = plain.public(1.0).0;
        let edge = u128::from(lo.unsigned_abs().max(hi.unsigned_abs()));
        let bound = bound_for(1, edge);
        let constant = |c: i64| Piece {
            mul: 0,
            add: c as u64,
            slope: 0,
        };
        Ok(Spline {
            knots: vec![lo, hi + 1],
            pieces: vec![
                constant(lo),
                Piece {
                    mul: 1,
                    add: 0,
                    slope: unit,
                },
                constant(hi),
            ],
            shift: 0,
            bound,
        })
    }

    /// The spline of [`Engine::reciprocal_pieces`] on `Plain`: the `N` lines of
    /// [`RecipPieces`] with their knots, slope output `0`. Its gate compares at
    /// [`RecipPieces::width`] (`f + 2` bits), which holds every difference of a knot and
    /// an input in `[0, 2^(f+1)]`, the inputs the reciprocal gives it.
    pub fn reciprocal(f: FracBits) -> Spline {
        let rp = RecipPieces::new(f.get());
        let pieces: Vec<Piece> = (0..rp.count())
            .map(|i| {
                let (mul, add) = rp.piece(i);
                Piece {
                    mul: mul.0,
                    add: add.0,
                    slope: 0,
                }
            })
            .collect();
        let max_mul = pieces.iter().map(|p| Z64(p.mul).to_signed().unsigned_abs());
        let max_add = pieces.iter().map(|p| Z64(p.add).to_signed().unsigned_abs());
        let bound = bound_for(
            u128::from(max_mul.max().unwrap_or(0)),
            u128::from(max_add.max().unwrap_or(0)),
        );
        Spline {
            knots: (1..rp.count()).map(|k| rp.knot(k)).collect(),
            pieces,
            shift: rp.shift(),
            bound,
        }
    }
}

/// The merged raw ranges `[lo, hi]` within `[-bound, bound]` where some pair of lines has
/// `|D_ij(x)| < 1`, widened by 2 on each side against rounding in this computation.
fn near_tie_windows(
    enc: &[(i64, i64)],
    f: u32,
    bound: i64,
) -> Result<Vec<(i64, i64)>, SplineError> {
    let one = 1i128 << f;
    let mut w = Vec::new();
    for (i, &(ai, bi)) in enc.iter().enumerate() {
        for &(aj, bj) in &enc[i + 1..] {
            let da = i128::from(ai) - i128::from(aj);
            if da == 0 {
                continue; // parallel: the sign of the difference never changes
            }
            let db = i128::from(bi) - i128::from(bj);
            // D(x) = da x / 2^f + db; |D| < 1  <=>  x strictly between the two ends.
            let e1 = (-one - db * one).div_euclid(da);
            let e2 = (one - db * one).div_euclid(da);
            let lo = e1.min(e2) - 2;
            let hi = e1.max(e2) + 2;
            let (lo, hi) = (lo.max(-i128::from(bound)), hi.min(i128::from(bound)));
            if lo <= hi {
                w.push((lo as i64, hi as i64));
            }
        }
    }
    w.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for (lo, hi) in w {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    let points: u128 = merged
        .iter()
        .map(|&(lo, hi)| (i128::from(hi) - i128::from(lo) + 1) as u128)
        .sum();
    if points > MAX_SCAN {
        return Err(SplineError::TooManyPoints { points });
    }
    Ok(merged)
}

/// Shares of `mul x + add` of the piece that serves each `x` (before the rounding by
/// [`Spline::shift`], which the engine does), and with `grad` shares of the piece's
/// slope, from one opening and one dealer ReLU key of width `width` per element
/// ([`Spline::width`]). See the [module documentation](self) for the method,
/// `# Security` and `# Communication`.
///
/// # Errors
/// A channel or dealer failure (keys that do not parse included).
///
/// # Panics
/// If the lengths differ.
pub fn spline_fss<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    spline: &Spline,
    x: &[Z64],
    out: &mut [Z64],
    grad: Option<&mut [Z64]>,
    width: u32,
) -> Result<(), MpcError> {
    let n = x.len();
    assert_eq!(out.len(), n, "spline: length mismatch");
    let party = link.party;
    let own = |c: u64| Z64(if party == PartyId::P0 { c } else { 0 });
    let first = spline.pieces[0];
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * Z64(first.mul) + own(first.add);
    }
    let mut grad = grad;
    if let Some(g) = grad.as_deref_mut() {
        assert_eq!(g.len(), n, "spline: gradient length mismatch");
        g.fill(own(first.slope));
    }
    if n == 0 || spline.knots.is_empty() {
        return Ok(());
    }
    let mat = corr.relu(n, width)?;
    let x_hat = open_masked(link, "FSS spline", x, &mat.r)?;
    let mut points = vec![0u64; n];
    for (k, &p) in spline.knots.iter().enumerate() {
        let (before, after) = (spline.pieces[k], spline.pieces[k + 1]);
        let dmul = Z64(after.mul.wrapping_sub(before.mul));
        let dadd = Z64(after.add.wrapping_sub(before.add));
        let dslope = Z64(after.slope.wrapping_sub(before.slope));
        let bit_coeff = dmul * Z64::from_signed(p) + dadd;
        for (t, &v) in points.iter_mut().zip(&x_hat) {
            *t = v.wrapping_sub(p as u64);
        }
        let shares = relu_eval_many(party, &mat.keys, &points).map_err(|e| MpcError::Dealer {
            what: "ReLU keys",
            reason: e.to_string(),
        })?;
        for (o, s) in out.iter_mut().zip(&shares) {
            *o += dmul * Z64(s.y) + bit_coeff * Z64(s.d);
        }
        if let Some(g) = grad.as_deref_mut() {
            for (o, s) in g.iter_mut().zip(&shares) {
                *o += dslope * Z64(s.d);
            }
        }
    }
    corr.recycle(mat.into_buffer());
    Ok(())
}
