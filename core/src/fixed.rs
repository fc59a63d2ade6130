//! Fixed point in Z_2^64 with `f` fractional bits.
//!
//! A real `x` is represented by the ring element whose signed reading is `round(x * 2^f)`.
//! Addition is ring addition. A product of two encodings carries `2f` fractional bits and
//! must be rescaled by an arithmetic shift of `f` bits: that truncation is always a named
//! call ([`Fixed::mul_trunc`], [`Fixed::trunc`]), never hidden in `*`.
//!
//! # Precision
//! - The step (one unit in the last place, ulp) is `2^-f`.
//! - The safe range is `|x| < 2^(62 - f)` (raw `|r| < 2^62`): one bit of headroom above it
//!   lets a sum of two safe values be exact. Encoding rejects values outside it.
//! - Truncation by arithmetic shift rounds toward minus infinity: error in `(-1, 0]` ulp.
//! - Decoding is exact whenever `|r| <= 2^53` (every value within `2^(53-f)`), and correctly
//!   rounded to the nearest `f64` otherwise.

use crate::ring::Z64;
use core::fmt;

/// The smallest accepted number of fractional bits.
pub const MIN_FRAC_BITS: u32 = 1;
/// The largest accepted number of fractional bits.
pub const MAX_FRAC_BITS: u32 = 40;
/// Raw magnitude bound of the safe range: `|raw| < 2^SAFE_RAW_BITS`.
pub const SAFE_RAW_BITS: u32 = 62;

/// A validated number of fractional bits, in `1..=40`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FracBits(u32);

impl FracBits {
    /// Validates `f`.
    pub const fn new(f: u32) -> Result<Self, FixedError> {
        if f < MIN_FRAC_BITS || f > MAX_FRAC_BITS {
            Err(FixedError::FracBits { f })
        } else {
            Ok(FracBits(f))
        }
    }

    /// The number of fractional bits.
    #[inline]
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Errors of the fixed-point format.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum FixedError {
    /// The number of fractional bits is outside `1..=40`.
    FracBits {
        /// The rejected value.
        f: u32,
    },
    /// NaN or an infinity cannot be encoded.
    NotFinite,
    /// The value is outside the safe range `|x| < 2^(62 - f)`.
    OutOfRange {
        /// The rejected value.
        value: f64,
        /// The exclusive bound `2^(62 - f)`.
        limit: f64,
    },
}

impl fmt::Display for FixedError {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FixedError::FracBits { f } => write!(
                out,
                "fractional bits must be in {MIN_FRAC_BITS}..={MAX_FRAC_BITS}, got {f}"
            ),
            FixedError::NotFinite => write!(out, "cannot encode NaN or an infinity"),
            FixedError::OutOfRange { value, limit } => write!(
                out,
                "{value} is outside the safe fixed-point range (|x| < {limit})"
            ),
        }
    }
}

/// A fixed-point format: Z_2^64 with `f` fractional bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Fixed {
    f: FracBits,
}

impl Fixed {
    /// The format with `f` fractional bits (validated, `1..=40`).
    pub const fn new(f: u32) -> Result<Self, FixedError> {
        match FracBits::new(f) {
            Ok(f) => Ok(Fixed { f }),
            Err(e) => Err(e),
        }
    }

    /// The format for an already validated `f`.
    pub const fn with(f: FracBits) -> Self {
        Fixed { f }
    }

    /// The number of fractional bits.
    #[inline]
    pub const fn frac_bits(self) -> u32 {
        self.f.get()
    }

    /// One unit in the last place, `2^-f`.
    #[inline]
    pub fn ulp(self) -> f64 {
        pow2(-(self.f.get() as i32))
    }

    /// The exclusive bound of the safe range, `2^(62 - f)`.
    #[inline]
    pub fn limit(self) -> f64 {
        pow2(SAFE_RAW_BITS as i32 - self.f.get() as i32)
    }

    /// Encodes `x`, rounding to nearest (ties away from zero).
    ///
    /// # Errors
    /// [`FixedError::NotFinite`] for NaN and infinities, [`FixedError::OutOfRange`] for
    /// `|x| >= 2^(62 - f)`.
    pub fn encode(self, x: f64) -> Result<Z64, FixedError> {
        if !x.is_finite() {
            return Err(FixedError::NotFinite);
        }
        // Scaling by a power of two is exact in binary floating point.
        let scaled = x * pow2(self.f.get() as i32);
        let rounded = libm::round(scaled);
        if libm::fabs(rounded) >= pow2(SAFE_RAW_BITS as i32) {
            return Err(FixedError::OutOfRange {
                value: x,
                limit: self.limit(),
            });
        }
        Ok(Z64::from_signed(rounded as i64))
    }

    /// Encodes an `f32` (converted to `f64` exactly first).
    ///
    /// # Errors
    /// As [`Fixed::encode`].
    pub fn encode_f32(self, x: f32) -> Result<Z64, FixedError> {
        self.encode(x as f64)
    }

    /// Encodes `x`, saturating to the safe range instead of failing; NaN gives 0.
    /// Returns the encoding and whether it was saturated (or NaN).
    pub fn encode_saturating(self, x: f64) -> (Z64, bool) {
        match self.encode(x) {
            Ok(v) => (v, false),
            Err(_) if x.is_nan() => (Z64::ZERO, true),
            Err(_) => {
                let max = (1i64 << SAFE_RAW_BITS) - 1;
                (Z64::from_signed(if x > 0.0 { max } else { -max }), true)
            }
        }
    }

    /// Decodes a raw element: its signed reading divided by `2^f`. Exact for `|raw| <= 2^53`.
    #[inline]
    pub fn decode(self, v: Z64) -> f64 {
        v.to_signed() as f64 * pow2(-(self.f.get() as i32))
    }

    /// Plaintext truncation: arithmetic shift right by `f` bits (floor division by `2^f`).
    #[inline]
    pub fn trunc(self, v: Z64) -> Z64 {
        v.shr_arith(self.f.get())
    }

    /// Fixed-point multiplication: ring product, then truncation by `f` bits.
    ///
    /// # Precision
    /// Exact up to the floor of the truncation (error in `(-1, 0]` ulp) as long as the
    /// integer product `a_raw * b_raw` lies in `[-2^63, 2^63)`; beyond, the ring product
    /// wraps (see [`Z64::overflowing_mul_signed`] to detect it).
    #[inline]
    pub fn mul_trunc(self, a: Z64, b: Z64) -> Z64 {
        self.trunc(a * b)
    }
}

/// `2^e` for `e` in `-1022..=1023`, exactly.
#[inline]
pub fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frac_bits_are_validated() {
        assert!(Fixed::new(0).is_err());
        assert!(Fixed::new(41).is_err());
        assert!(Fixed::new(1).is_ok());
        assert!(Fixed::new(40).is_ok());
    }

    #[test]
    fn encode_rejects_non_finite_and_out_of_range() {
        let fx = Fixed::new(13).unwrap();
        assert_eq!(fx.encode(f64::NAN), Err(FixedError::NotFinite));
        assert_eq!(fx.encode(f64::INFINITY), Err(FixedError::NotFinite));
        assert_eq!(fx.encode(f64::NEG_INFINITY), Err(FixedError::NotFinite));
        let limit = fx.limit();
        assert_eq!(limit, pow2(49));
        assert!(matches!(
            fx.encode(limit),
            Err(FixedError::OutOfRange { .. })
        ));
        assert!(matches!(
            fx.encode(-limit),
            Err(FixedError::OutOfRange { .. })
        ));
        assert!(fx.encode(limit - 1.0).is_ok());
        assert_eq!(fx.encode_saturating(f64::NAN), (Z64::ZERO, true));
        assert!(fx.encode_saturating(1e300).1);
    }

    #[test]
    fn encode_rounds_to_nearest() {
        let fx = Fixed::new(2).unwrap();
        assert_eq!(fx.encode(0.125).unwrap().to_signed(), 1); // 0.5 ulp: away from zero
        assert_eq!(fx.encode(-0.125).unwrap().to_signed(), -1);
        assert_eq!(fx.encode(0.12).unwrap().to_signed(), 0);
        assert_eq!(fx.encode(0.38).unwrap().to_signed(), 2);
        assert_eq!(fx.encode_f32(1.5).unwrap().to_signed(), 6);
    }

    #[test]
    fn truncation_is_arithmetic_shift() {
        let fx = Fixed::new(13).unwrap();
        let a = fx.encode(-1.5).unwrap();
        let b = fx.encode(2.25).unwrap();
        assert_eq!(fx.decode(fx.mul_trunc(a, b)), -3.375);
        // -1 ulp * 0.5 floors to -1 ulp.
        let tiny = Z64::from_signed(-1);
        let half = fx.encode(0.5).unwrap();
        assert_eq!(fx.mul_trunc(tiny, half).to_signed(), -1);
    }

    proptest! {
        #[test]
        fn encode_decode_within_half_ulp(f in 1u32..=40, x in -1.0e6f64..1.0e6) {
            let fx = Fixed::new(f).unwrap();
            if libm::fabs(x) < fx.limit() {
                let d = fx.decode(fx.encode(x).unwrap());
                prop_assert!(libm::fabs(d - x) <= fx.ulp() / 2.0, "{} -> {}", x, d);
            }
        }

        #[test]
        fn decode_encode_is_identity_on_safe_raw(f in 1u32..=40, r in -(1i64 << 53)..(1i64 << 53)) {
            let fx = Fixed::new(f).unwrap();
            let v = Z64::from_signed(r);
            prop_assert_eq!(fx.encode(fx.decode(v)).unwrap(), v);
        }

        #[test]
        fn mul_trunc_is_floor_of_exact_product(f in 1u32..=30, a in -(1i64 << 30)..(1i64 << 30), b in -(1i64 << 30)..(1i64 << 30)) {
            let fx = Fixed::new(f).unwrap();
            let got = fx.mul_trunc(Z64::from_signed(a), Z64::from_signed(b)).to_signed();
            let want = (a as i128 * b as i128).div_euclid(1i128 << f) as i64;
            prop_assert_eq!(got, want);
        }

        #[test]
        fn decode_never_panics(f in 1u32..=40, bits in any::<u64>()) {
            let fx = Fixed::new(f).unwrap();
            let d = fx.decode(Z64(bits));
            prop_assert!(d.is_finite());
            let _ = fx.mul_trunc(Z64(bits), Z64(bits.rotate_left(7)));
        }
    }
}
