//! Inverse square root `1 / sqrt(x)` built from engine primitives, for batch normalisation.
//!
//! A two-party engine has no square root, so batch normalisation's `1 / sqrt(var + eps)`
//! is computed the way [`generic::reciprocal`](crate::engine::generic::reciprocal) computes
//! `1 / x`: range normalisation by comparisons against public powers of two, a linear
//! initial guess, Newton-Raphson, and a shift by a secret amount done as a one-hot selection
//! among publicly shifted candidates. Every shift is by a public amount and every decision
//! is an engine comparison, so the same code runs on [`Plain`](crate::Plain) and on each
//! party's shares; there is no override on any engine.
//!
//! # Method
//! One batched comparison gives `b_j = [x >= 2^(t0 + j)]` for `T` public thresholds, hence
//! the one-hot of the exponent `E` with `x` in `[2^(E-1), 2^E)`. With `E'` the even number
//! in `{E, E + 1}`, `s = x 2^-E'` lies in `[1/4, 1)` and `1/sqrt(x) = s^(-1/2) 2^(-E'/2)`,
//! an exact power-of-two factor. On `[1/4, 1)`, `y0 = A - B s` (the equioscillating line
//! for the relative error, [`INITIAL_ERROR`] < 0.086), and each step
//! `y <- y (3 - s y^2) / 2` maps a relative error `d` to `-(3/2) d^2 - d^3/2`.
//!
//! - Fixed point (`f > 0`): the thresholds are `2^(j - f)`, `j = 0..62` (every
//!   representable magnitude), and [`iterations`] leaves a method error below `2^-(f+2)`.
//! - Float (`f == 0`): the thresholds are `2^t`, `t = -60..=60`, and 5 steps bring the
//!   relative error from 0.086 to below `10^-28`: the result is `1/sqrt(x)` to within
//!   rounding of the float type, which is what the float reference needs (a float
//!   engine has no square root either, and `Float` cannot be given an override here).
//!
//! Candidate shifts that move bits right are applied before the selection (a truncation
//! of the input itself, as the reciprocal does); shifts left are applied after it, so that
//! the candidates that are not selected are 0 and cannot wrap or count as overflows.
//!
//! # Precision
//! On a fixed-point engine, the relative error is at most about `2^-(f-3)` (the truncated
//! `s` for large `x`, the method error and a few ulps of Newton rounding on `y` in `(1, 2]`),
//! plus one ulp of the result from the final right shift when `x > 1`. Tests check
//! `|r - 1/sqrt(x)| <= 2^-(f-3) / sqrt(x) + 2^-(f-1)` on `[1e-3, 1e4]` for `f = 16, 20, 24`,
//! measured against the decoded input.
//!
//! # Domain
//! Fixed point: every positive representable `x`. Float: `x` in `[2^-61, 2^60]`. For `x <= 0`
//! (or out of the float range) the result is finite on a fixed-point engine,
//! deterministic, never a panic, and meaningless; batch normalisation adds `eps` first.

use crate::engine::Engine;
use crate::fixed::pow2;

/// Initial guess `y0 = A - B s` on `[1/4, 1)`: `B = 2 / (3/4 + (7/6) sqrt(7/12))`,
/// `A = 7B/4`, which makes the relative error equioscillate at `s = 1/4, 7/12, 1`.
const A: f64 = 2.132_772_543_170_169_4;
/// See [`A`].
const B: f64 = 1.218_727_167_525_811_1;
/// Maximum relative error of the initial guess on `[1/4, 1]`: `1 - 3B/4`.
pub const INITIAL_ERROR: f64 = 0.085_954_624_355_641_72;

/// Thresholds `2^(j - f)`, `j = 0..62`, on a fixed-point engine.
const FIXED_THRESHOLDS: usize = 62;
/// Thresholds `2^t`, `t = -60..=60`, on a float engine.
const FLOAT_THRESHOLDS: usize = 121;
/// The smallest float threshold exponent.
const FLOAT_MIN_EXP: i32 = -60;
/// The most candidate exponents on any engine.
pub const MAX_CANDIDATES: usize = FLOAT_THRESHOLDS + 1;

/// Scratch elements [`inv_sqrt`] needs for `n` inputs (on any engine).
pub const fn inv_sqrt_scratch(n: usize) -> usize {
    (3 * MAX_CANDIDATES + 4) * n
}

/// Newton-Raphson steps for `f` fractional bits (`f == 0`: float): the relative error
/// after `i` steps is below `2^-6.4`, `2^-12.3`, `2^-24`, `2^-47.5`, `2^-94` for
/// `i = 1..=5`, and the count is the first below `2^-(f+2)`.
pub const fn iterations(f: u32) -> u32 {
    if f == 0 {
        5
    } else if f <= 10 {
        2
    } else if f <= 22 {
        3
    } else {
        4
    }
}

/// `out[i] = 1 / sqrt(x[i])` for `x[i] > 0`. See the [module documentation](self).
/// Scratch: [`inv_sqrt_scratch`].
///
/// # Errors
/// What the engine reports.
///
/// # Panics
/// If the lengths differ or the scratch is too short.
pub fn inv_sqrt<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    out: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = x.len();
    assert_eq!(out.len(), n, "inv_sqrt: length mismatch");
    let f = e.frac_bits();
    let (thresholds, t0) = if f == 0 {
        (FLOAT_THRESHOLDS, FLOAT_MIN_EXP)
    } else {
        (FIXED_THRESHOLDS, -(f as i32))
    };
    let k = thresholds + 1;
    // `c` and `bits` together are also `shift_select`'s scratch.
    let (select, rest) = scratch.split_at_mut(2 * k * n);
    let (onehot, rest) = rest.split_at_mut(k * n);
    let (s, rest) = rest.split_at_mut(n);
    let (y, rest) = rest.split_at_mut(n);
    let (t, rest) = rest.split_at_mut(n);
    let u = &mut rest[..n];

    // b_j = [x >= 2^(t0 + j)] = 1 - [x - 2^(t0 + j) < 0], in one comparison call.
    let cmp = thresholds * n;
    let (c, bits) = select.split_at_mut(k * n);
    for j in 0..thresholds {
        let cj = &mut c[j * n..(j + 1) * n];
        cj.copy_from_slice(x);
        let p = e.public(-pow2(t0 + j as i32));
        e.add_public(cj, p)?;
    }
    e.is_negative(&c[..cmp], &mut bits[..cmp])?;
    let m1 = e.public_int(-1);
    let one = e.public_int(1);
    e.mul_public(&mut bits[..cmp], m1)?;
    e.add_public(&mut bits[..cmp], one)?;

    // One-hot of the count of thresholds passed: o_0 = 1 - b_0, o_k = b_(k-1) - b_k,
    // o_T = b_(T-1). Candidate k stands for the exponent E = t0 + k.
    onehot[..n].copy_from_slice(&bits[..n]);
    e.mul_public(&mut onehot[..n], m1)?;
    e.add_public(&mut onehot[..n], one)?;
    for j in 1..thresholds {
        let (prev, cur) = bits.split_at(j * n);
        let oj = &mut onehot[j * n..(j + 1) * n];
        oj.copy_from_slice(&prev[(j - 1) * n..]);
        e.sub_assign(oj, &cur[..n])?;
    }
    onehot[thresholds * n..].copy_from_slice(&bits[(thresholds - 1) * n..thresholds * n]);

    // s = x 2^-E' in [1/4, 1).
    let even = |j: usize| {
        let ex = t0 + j as i32;
        ex + ex.rem_euclid(2)
    };
    shift_select(e, x, onehot, |j| -even(j), k, s, select)?;

    // y0 = A - B s, then y <- y (3 - s y^2) / 2 (the halving folded into the truncation).
    y.copy_from_slice(s);
    e.scale(y, -B)?;
    let a = e.public(A);
    e.add_public(y, a)?;
    let three = e.public(3.0);
    for _ in 0..iterations(f) {
        e.mul(y, y, t)?;
        e.rescale(t)?;
        e.mul(s, t, u)?;
        e.rescale(u)?;
        e.mul_public(u, m1)?;
        e.add_public(u, three)?;
        e.mul(y, u, t)?;
        e.shift_right(t, f + 1)?;
        y.copy_from_slice(t);
    }

    // out = y 2^(-E'/2).
    shift_select(e, y, onehot, |j| -even(j) / 2, k, out, select)
}

/// `out = sum_j onehot[j] * v * 2^exp(j)` over `k` candidates of `n = v.len()` elements
/// (`onehot` holds at least `k * n`): right shifts before the product with the
/// (integer-scaled) one-hot bits, left shifts after it. Scratch: `2 k n`.
fn shift_select<E: Engine + ?Sized>(
    e: &mut E,
    v: &[E::Elem],
    onehot: &[E::Elem],
    exp: impl Fn(usize) -> i32,
    k: usize,
    out: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let n = v.len();
    let (c, prod) = scratch.split_at_mut(k * n);
    for j in 0..k {
        let cj = &mut c[j * n..(j + 1) * n];
        cj.copy_from_slice(v);
        let m = exp(j);
        if m < 0 {
            e.shift_right(cj, (-m) as u32)?;
        }
    }
    e.mul(&onehot[..k * n], &c[..k * n], &mut prod[..k * n])?;
    for j in 0..k {
        let m = exp(j);
        if m > 0 {
            let p = e.public_int(1i64 << m);
            e.mul_public(&mut prod[j * n..(j + 1) * n], p)?;
        }
    }
    out.copy_from_slice(&prod[..n]);
    for j in 1..k {
        e.add_assign(out, &prod[j * n..(j + 1) * n])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testutil::{dec, enc};
    use crate::{Float, Plain};
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
        let (a, b) = (libm::log(lo), libm::log(hi));
        (0..n)
            .map(|i| libm::exp(a + (b - a) * i as f64 / (n - 1) as f64))
            .collect()
    }

    #[test]
    fn constants_equioscillate() {
        let g = |s: f64| (A - B * s) * libm::sqrt(s) - 1.0;
        assert!((g(0.25) + INITIAL_ERROR).abs() < 1e-12);
        assert!((g(1.0) + INITIAL_ERROR).abs() < 1e-12);
        assert!((g(7.0 / 12.0) - INITIAL_ERROR).abs() < 1e-12);
        for i in 0..=1000 {
            let s = 0.25 + 0.75 * i as f64 / 1000.0;
            assert!(g(s).abs() <= INITIAL_ERROR + 1e-12);
        }
    }

    #[test]
    fn float_is_exact() {
        let xs = log_grid(1e-15, 1e15, 301);
        let mut out = vec![0.0; xs.len()];
        let mut s = vec![0.0; inv_sqrt_scratch(xs.len())];
        inv_sqrt(&mut Float::<f64>::new(), &xs, &mut out, &mut s).unwrap();
        for (x, r) in xs.iter().zip(&out) {
            let want = 1.0 / libm::sqrt(*x);
            assert!((r - want).abs() <= 4e-16 * want, "x {x}: {r} vs {want}");
        }
    }

    #[test]
    fn plain_is_accurate_from_1e_minus_3_to_1e4() {
        let xs = log_grid(1e-3, 1e4, 2001);
        for f in [16u32, 20, 24] {
            let mut p = Plain::with_frac_bits(f).unwrap();
            let v = enc(&p, &xs);
            let mut out = vec![crate::Z64::ZERO; xs.len()];
            let mut s = vec![crate::Z64::ZERO; inv_sqrt_scratch(xs.len())];
            inv_sqrt(&mut p, &v, &mut out, &mut s).unwrap();
            let (xd, r) = (dec(&p, &v), dec(&p, &out));
            let ulp = pow2(-(f as i32));
            for (x, r) in xd.iter().zip(&r) {
                let want = 1.0 / libm::sqrt(*x);
                let tol = 8.0 * ulp * want + 2.0 * ulp;
                assert!((r - want).abs() <= tol, "f {f}, x {x}: {r} vs {want}");
            }
            assert_eq!(p.overflow_count(), 0, "f {f}: overflow counted");
        }
    }

    #[test]
    fn nonpositive_inputs_do_not_panic() {
        let mut p = Plain::with_frac_bits(16).unwrap();
        let v = enc(&p, &[0.0, -1.0, -1e6]);
        let mut out = vec![crate::Z64::ZERO; 3];
        let mut s = vec![crate::Z64::ZERO; inv_sqrt_scratch(3)];
        inv_sqrt(&mut p, &v, &mut out, &mut s).unwrap();
    }
}
