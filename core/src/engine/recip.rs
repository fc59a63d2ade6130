//! The reciprocal's first approximation: `1 / s` on the normalised input as a
//! piecewise-linear function of the raw `s`, pure data that every engine evaluates alike.
//!
//! [`generic::reciprocal`](super::generic::reciprocal) brings its input to `s` in
//! `[2^(f-1), 2^f]` raw (a value in `[1/2, 1]`), then asks
//! [`Engine::reciprocal_pieces`](super::Engine::reciprocal_pieces) for `y ≈ 2^(2f) / s`
//! (a value in `[1, 2]`). The interval is cut into `N = 2^min(7, f-1)` pieces of equal
//! width; on piece `i`, `[A, B]` raw, the line is the best uniform approximation of
//! `2^(2f) / s` there: the chord shifted down by half its largest gap,
//!
//! ```text
//! y(s) = 2^(2f) ((A + B) / 2 + sqrt(A B) - s) / (A B),
//! ```
//!
//! whose error is at most `2^(2f) (sqrt B - sqrt A)^2 / (2 A B)` in absolute value: below
//! `2^-16` as a value (relative `2^-17`) with 128 pieces, so no Newton step is needed for
//! `f <= 15` (at `f <= 8` every raw input has its own piece). The engine computes
//! `(mul_i s + add_i) >> shift` with `mul_i`, `add_i` the line's coefficients scaled by
//! `2^shift` and rounded once; the coefficients come from `f64` arithmetic (IEEE division,
//! product and square root, correctly rounded), so they are the same on every machine,
//! the firmware's included.
//!
//! A two-party engine evaluates the pieces as one spline gate (one round and a
//! truncation, whatever `N` is) or as `N - 1` comparisons of `s - p_k` at the width
//! [`RecipPieces::width`] and one product; see `Engine::reciprocal_pieces`.

use crate::fixed::pow2;
use crate::ring::Z64;

/// The most pieces, as a power of two.
pub const RECIP_PIECE_BITS: u32 = 7;

/// The most pieces: [`RecipPieces::count`] is at most this.
pub const RECIP_MAX_PIECES: usize = 1 << RECIP_PIECE_BITS;

/// The pieces of `2^(2f) / s` at `f` fractional bits. See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecipPieces {
    f: u32,
    bits: u32,
    shift: u32,
}

impl RecipPieces {
    /// The pieces at `frac_bits` (1..=62) fractional bits.
    ///
    /// # Panics
    /// If `frac_bits` is outside 1..=62.
    pub const fn new(frac_bits: u32) -> Self {
        assert!(
            frac_bits >= 1 && frac_bits <= 62,
            "reciprocal pieces: f in 1..=62"
        );
        let f = frac_bits;
        let bits = if f - 1 < RECIP_PIECE_BITS {
            f - 1
        } else {
            RECIP_PIECE_BITS
        };
        // |mul s| <= 2^(shift + 2) 2^(f + 1) and |add| about as much: kept below 2^60 (the
        // coefficients' rounding then adds at most 2^-7 ulp for f <= 25).
        let shift = if f + 6 <= 57 - f {
            f + 6
        } else {
            57u32.saturating_sub(f)
        };
        RecipPieces { f, bits, shift }
    }

    /// The number of pieces `N`.
    pub const fn count(&self) -> usize {
        1 << self.bits
    }

    /// The rounding shift of `mul s + add`.
    pub const fn shift(&self) -> u32 {
        self.shift
    }

    /// The width at which a two-party engine compares `s - p_k`: `f + 2` bits hold every
    /// difference of an input in `[0, 2^(f+1)]` and a knot in `(2^(f-1), 2^f)`.
    pub const fn width(&self) -> u32 {
        self.f + 2
    }

    /// The raw width of a piece.
    const fn step(&self) -> i64 {
        1 << (self.f - 1 - self.bits)
    }

    /// The knot `p_k`, `1 <= k < N`: where piece `k` starts (raw).
    pub const fn knot(&self, k: usize) -> i64 {
        (1i64 << (self.f - 1)) + k as i64 * self.step()
    }

    /// The piece that serves the raw `s`: `0` below the first knot (every `s` under
    /// `2^(f-1)` included), `N - 1` from the last knot on.
    pub fn index(&self, s: i64) -> usize {
        let from = s - (1i64 << (self.f - 1));
        if from <= 0 {
            0
        } else {
            ((from / self.step()) as usize).min(self.count() - 1)
        }
    }

    /// `(mul, add)` of piece `i`: the line's slope and intercept times `2^shift`, rounded.
    ///
    /// # Panics
    /// If `i >= N`.
    pub fn piece(&self, i: usize) -> (Z64, Z64) {
        assert!(i < self.count(), "reciprocal pieces: piece out of range");
        let a = self.knot(i) as f64;
        let b = a + self.step() as f64;
        let ab = a * b;
        let c = pow2((2 * self.f + self.shift) as i32) / ab;
        let mul = -libm::round(c);
        let add = libm::round(c * (0.5 * (a + b) + libm::sqrt(ab)));
        (Z64::from_signed(mul as i64), Z64::from_signed(add as i64))
    }

    /// `(mul_i s + add_i) >> shift`, rounded to nearest, for the raw `s` (ring arithmetic):
    /// what every engine computes, up to a two-party engine's rounding of the shift.
    pub fn eval(&self, s: Z64) -> Z64 {
        let (mul, add) = self.piece(self.index(s.to_signed()));
        (mul * s + add).shr_round(self.shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest error of the pieces against `2^(2f) / s`, in units of the result's
    /// last place, over every raw `s` in `[2^(f-1), 2^f]`.
    fn worst_ulp(f: u32) -> f64 {
        let p = RecipPieces::new(f);
        let lo = 1i64 << (f - 1);
        (lo..=2 * lo)
            .map(|s| {
                let got = p.eval(Z64::from_signed(s)).to_signed() as f64;
                let want = pow2(2 * f as i32) / s as f64;
                (got - want).abs()
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn pieces_are_within_their_stated_error() {
        // Half an ulp of rounding, the line's own error (2^(f-16) ulp with 128 pieces,
        // 2^-f where every input has its piece) and the coefficients' rounding (2^-7).
        for f in 1..=18 {
            let line = if f <= 8 {
                pow2(-(f as i32))
            } else {
                pow2(f as i32 - 16)
            };
            let w = worst_ulp(f);
            assert!(w <= 0.5 + line + pow2(-7), "f = {f}: {w} ulp, line {line}");
        }
        assert!(worst_ulp(13) < 0.6);
    }

    #[test]
    fn knots_and_index_agree() {
        for f in [1, 2, 5, 8, 9, 13, 20, 30] {
            let p = RecipPieces::new(f);
            for k in 1..p.count() {
                assert_eq!(p.index(p.knot(k)), k, "f = {f}");
                assert_eq!(p.index(p.knot(k) - 1), k - 1, "f = {f}");
            }
            assert_eq!(p.index(0), 0);
            assert_eq!(p.index(-5), 0);
            assert_eq!(p.index(1i64 << f), p.count() - 1);
            assert_eq!(p.index(1i64 << (f + 1)), p.count() - 1);
        }
    }

    #[test]
    fn products_stay_in_the_safe_range() {
        // Every piece's mul s + add for s in [0, 2^(f+1)] is inside (-2^61, 2^61).
        for f in 1..=40 {
            let p = RecipPieces::new(f);
            for i in 0..p.count() {
                let (m, a) = p.piece(i);
                let (m, a) = (m.to_signed() as i128, a.to_signed() as i128);
                for s in [0i128, 1i128 << (f + 1)] {
                    let v = m * s + a;
                    assert!(v.abs() < 1i128 << 61, "f = {f} piece {i}: {v}");
                }
            }
        }
    }
}
