//! The ring Z_2^64.
//!
//! Additive secret sharing in ringnn works over Z_2^64: a value is the sum of two shares
//! modulo 2^64. [`Z64`] is that ring: every arithmetic operator wraps, so no input bit
//! pattern can make an operation panic. Signed interpretation (two's complement) is explicit
//! through [`Z64::to_signed`] and [`Z64::from_signed`].

use core::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// An element of Z_2^64. `+`, `-`, `*` and unary `-` wrap modulo 2^64.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
#[repr(transparent)]
pub struct Z64(pub u64);

impl Z64 {
    /// The additive identity.
    pub const ZERO: Z64 = Z64(0);
    /// The multiplicative identity.
    pub const ONE: Z64 = Z64(1);

    /// The element with raw representation `bits`.
    #[inline]
    pub const fn from_bits(bits: u64) -> Self {
        Z64(bits)
    }

    /// The raw representation.
    #[inline]
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// The element whose two's-complement reading is `v`.
    #[inline]
    pub const fn from_signed(v: i64) -> Self {
        Z64(v as u64)
    }

    /// The two's-complement reading of the element, in `[-2^63, 2^63)`.
    #[inline]
    pub const fn to_signed(self) -> i64 {
        self.0 as i64
    }

    /// Whether the two's-complement reading is negative (the top bit is set).
    #[inline]
    pub const fn is_negative(self) -> bool {
        (self.0 as i64) < 0
    }

    /// Whether `-self` (wrapping) is negative, that is whether `self` is positive in the
    /// signed reading (`i64::MIN` negates to itself, so it counts as not positive).
    #[inline]
    pub const fn wrapping_neg_is_negative(self) -> bool {
        (self.0.wrapping_neg() as i64) < 0
    }

    /// Arithmetic shift right by `d` bits of the signed reading (floor division by 2^d).
    /// `d >= 64` gives 0 or -1 (the sign), never a panic.
    #[inline]
    pub const fn shr_arith(self, d: u32) -> Self {
        let d = if d > 63 { 63 } else { d };
        Z64(((self.0 as i64) >> d) as u64)
    }

    /// Division by `2^d` rounded to the nearest integer (ties toward plus infinity):
    /// `(self + 2^(d-1)) >> d` with an arithmetic shift; `d = 0` is the identity and
    /// `d >= 64` gives 0 or -1. The addition wraps, so values within `2^(d-1)` of `i64::MAX`
    /// come out negative (they are far outside the fixed-point safe range).
    #[inline]
    pub const fn shr_round(self, d: u32) -> Self {
        if d == 0 {
            return self;
        }
        let d = if d > 63 { 63 } else { d };
        Z64(self.0.wrapping_add(1u64 << (d - 1))).shr_arith(d)
    }

    /// Multiplication that also reports whether the signed product left `[-2^63, 2^63)`,
    /// that is whether the ring result differs from the integer product.
    #[inline]
    pub const fn overflowing_mul_signed(self, rhs: Z64) -> (Z64, bool) {
        let (p, o) = (self.0 as i64).overflowing_mul(rhs.0 as i64);
        (Z64(p as u64), o)
    }
}

impl Add for Z64 {
    type Output = Z64;
    #[inline]
    fn add(self, rhs: Z64) -> Z64 {
        Z64(self.0.wrapping_add(rhs.0))
    }
}

impl Sub for Z64 {
    type Output = Z64;
    #[inline]
    fn sub(self, rhs: Z64) -> Z64 {
        Z64(self.0.wrapping_sub(rhs.0))
    }
}

impl Mul for Z64 {
    type Output = Z64;
    #[inline]
    fn mul(self, rhs: Z64) -> Z64 {
        Z64(self.0.wrapping_mul(rhs.0))
    }
}

impl Neg for Z64 {
    type Output = Z64;
    #[inline]
    fn neg(self) -> Z64 {
        Z64(self.0.wrapping_neg())
    }
}

impl AddAssign for Z64 {
    #[inline]
    fn add_assign(&mut self, rhs: Z64) {
        *self = *self + rhs;
    }
}

impl SubAssign for Z64 {
    #[inline]
    fn sub_assign(&mut self, rhs: Z64) {
        *self = *self - rhs;
    }
}

impl MulAssign for Z64 {
    #[inline]
    fn mul_assign(&mut self, rhs: Z64) {
        *self = *self * rhs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn z() -> impl Strategy<Value = Z64> {
        any::<u64>().prop_map(Z64)
    }

    proptest! {
        #[test]
        fn addition_is_commutative_and_associative(a in z(), b in z(), c in z()) {
            prop_assert_eq!(a + b, b + a);
            prop_assert_eq!((a + b) + c, a + (b + c));
        }

        #[test]
        fn multiplication_is_commutative_associative_distributive(a in z(), b in z(), c in z()) {
            prop_assert_eq!(a * b, b * a);
            prop_assert_eq!((a * b) * c, a * (b * c));
            prop_assert_eq!(a * (b + c), a * b + a * c);
        }

        #[test]
        fn identities_and_inverses(a in z()) {
            prop_assert_eq!(a + Z64::ZERO, a);
            prop_assert_eq!(a * Z64::ONE, a);
            prop_assert_eq!(a + (-a), Z64::ZERO);
            prop_assert_eq!(a - a, Z64::ZERO);
        }

        #[test]
        fn additive_sharing_reconstructs(a in z(), r in z()) {
            // The basis of two-party sharing: (a - r) + r = a for any mask r.
            prop_assert_eq!((a - r) + r, a);
        }

        #[test]
        fn signed_round_trip(v in any::<i64>()) {
            prop_assert_eq!(Z64::from_signed(v).to_signed(), v);
            prop_assert_eq!(Z64::from_signed(v).is_negative(), v < 0);
        }

        #[test]
        fn shift_is_floor_division(v in any::<i64>(), d in 0u32..80) {
            let got = Z64::from_signed(v).shr_arith(d).to_signed();
            let want = if d >= 63 { if v < 0 { -1 } else { 0 } } else { v.div_euclid(1i64 << d) };
            prop_assert_eq!(got, want);
        }

        #[test]
        fn rounding_shift_is_nearest(v in -(1i64 << 61)..(1i64 << 61), d in 0u32..40) {
            let got = Z64::from_signed(v).shr_round(d).to_signed() as i128;
            let exact = v as i128;
            // |got * 2^d - v| <= 2^(d-1), ties upward.
            let err = got * (1i128 << d) - exact;
            let half = if d == 0 { 0 } else { 1i128 << (d - 1) };
            prop_assert!(-half < err || (d == 0 && err == 0), "{v} >> {d} = {got}");
            prop_assert!(err <= half);
        }

        #[test]
        fn overflow_flag_matches_i128(a in any::<i64>(), b in any::<i64>()) {
            let (p, o) = Z64::from_signed(a).overflowing_mul_signed(Z64::from_signed(b));
            let wide = a as i128 * b as i128;
            prop_assert_eq!(o, wide < i64::MIN as i128 || wide > i64::MAX as i128);
            prop_assert_eq!(p, Z64::from_signed(a) * Z64::from_signed(b));
        }
    }
}
