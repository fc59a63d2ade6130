//! The float engine: the reference ("without approximation" in the paper).

use crate::engine::{Engine, Exact, ExactEngine, MatDims, MatmulFn};
use core::convert::Infallible;
use core::fmt::Debug;
use core::ops::{Add, Mul, Sub};

/// A float type the [`Float`] engine computes in.
pub trait Real:
    Copy + Default + Debug + PartialOrd + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    /// Conversion from `f64` (rounding for `f32`).
    fn from_f64(x: f64) -> Self;
    /// Conversion to `f64` (exact).
    fn to_f64(self) -> f64;
}

impl Real for f64 {
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

impl Real for f32 {
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

/// Plain floating point in `T` (`f64` or `f32`). Truncations are no-ops
/// (`frac_bits() == 0`); [`Engine::shift_right`] divides by a power of two exactly.
#[derive(Clone, Copy, Default, Debug)]
pub struct Float<T: Real = f64> {
    matmul: Option<MatmulFn<T>>,
}

impl<T: Real> Float<T> {
    /// The engine.
    pub const fn new() -> Self {
        Float { matmul: None }
    }

    /// Uses `matmul` for [`Engine::matmul`] instead of the portable loop.
    pub fn with_matmul(mut self, matmul: MatmulFn<T>) -> Self {
        self.matmul = Some(matmul);
        self
    }
}

impl<T: Real> Engine for Float<T> {
    type Elem = T;
    type Public = T;
    type Error = Infallible;

    fn frac_bits(&self) -> u32 {
        0
    }
    fn public(&self, c: f64) -> T {
        T::from_f64(c)
    }
    fn public_int(&self, k: i64) -> T {
        T::from_f64(k as f64)
    }
    fn add_assign(&mut self, x: &mut [T], y: &[T]) -> Result<(), Infallible> {
        assert_eq!(x.len(), y.len(), "add_assign: length mismatch");
        x.iter_mut().zip(y).for_each(|(a, &b)| *a = *a + b);
        Ok(())
    }
    fn sub_assign(&mut self, x: &mut [T], y: &[T]) -> Result<(), Infallible> {
        assert_eq!(x.len(), y.len(), "sub_assign: length mismatch");
        x.iter_mut().zip(y).for_each(|(a, &b)| *a = *a - b);
        Ok(())
    }
    fn add_public(&mut self, x: &mut [T], c: T) -> Result<(), Infallible> {
        x.iter_mut().for_each(|a| *a = *a + c);
        Ok(())
    }
    fn mul_public(&mut self, x: &mut [T], c: T) -> Result<(), Infallible> {
        x.iter_mut().for_each(|a| *a = *a * c);
        Ok(())
    }
    fn mul(&mut self, a: &[T], b: &[T], out: &mut [T]) -> Result<(), Infallible> {
        assert!(
            a.len() == b.len() && a.len() == out.len(),
            "mul: length mismatch"
        );
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = x * y;
        }
        Ok(())
    }
    fn matmul(&mut self, a: &[T], b: &[T], d: MatDims, out: &mut [T]) -> Result<(), Infallible> {
        assert!(a.len() == d.m * d.k && b.len() == d.k * d.n && out.len() == d.m * d.n);
        if let Some(mm) = self.matmul {
            mm(a, b, d, out);
            return Ok(());
        }
        for i in 0..d.m {
            let row = &mut out[i * d.n..(i + 1) * d.n];
            row.fill(T::default());
            for p in 0..d.k {
                let av = a[i * d.k + p];
                for (o, &bv) in row.iter_mut().zip(&b[p * d.n..(p + 1) * d.n]) {
                    *o = *o + av * bv;
                }
            }
        }
        Ok(())
    }
    fn shift_right(&mut self, x: &mut [T], bits: u32) -> Result<(), Infallible> {
        let s = T::from_f64(crate::fixed::pow2(-(bits.min(1000) as i32)));
        x.iter_mut().for_each(|a| *a = *a * s);
        Ok(())
    }
    fn is_negative(&mut self, x: &[T], out: &mut [T]) -> Result<(), Infallible> {
        assert_eq!(x.len(), out.len(), "is_negative: length mismatch");
        let (zero, one) = (T::default(), T::from_f64(1.0));
        for (o, &v) in out.iter_mut().zip(x) {
            *o = if v < zero { one } else { zero };
        }
        Ok(())
    }
    fn select(&mut self, bits: &[T], a: &[T], b: &[T], out: &mut [T]) -> Result<(), Infallible> {
        let n = out.len();
        assert!(
            bits.len() == n && a.len() == n && b.len() == n,
            "select: length mismatch"
        );
        let zero = T::default();
        for i in 0..n {
            out[i] = if bits[i] != zero { a[i] } else { b[i] };
        }
        Ok(())
    }
    fn exact(&mut self) -> Option<&mut dyn ExactEngine<Elem = T, Public = T, Error = Infallible>> {
        Some(self)
    }

    /// Exactly `2^extra_bits / x` for `x > 0`, and `0` for `x <= 0` (with `empty` set
    /// there): the reference the fixed-point method of
    /// [`crate::engine::generic::reciprocal`] approximates, which needs fractional bits and
    /// so has no meaning here.
    fn reciprocal(
        &mut self,
        x: &[T],
        out: &mut [T],
        empty: Option<&mut [T]>,
        extra_bits: u32,
        _scratch: &mut [T],
    ) -> Result<(), Infallible> {
        assert_eq!(x.len(), out.len(), "reciprocal: length mismatch");
        let num = crate::fixed::pow2(extra_bits.min(1000) as i32);
        let zero = T::default();
        for (o, &v) in out.iter_mut().zip(x) {
            *o = if v > zero {
                T::from_f64(num / v.to_f64())
            } else {
                zero
            };
        }
        if let Some(z) = empty {
            assert_eq!(z.len(), x.len(), "reciprocal: length mismatch");
            let one = T::from_f64(1.0);
            for (z, &v) in z.iter_mut().zip(x) {
                *z = if v > zero { zero } else { one };
            }
        }
        Ok(())
    }
}

impl<T: Real> ExactEngine for Float<T> {
    /// The `f64` function, rounded once to `T`.
    fn apply_exact(&mut self, func: Exact, x: &mut [T]) -> Result<(), Infallible> {
        x.iter_mut()
            .for_each(|a| *a = T::from_f64(func.eval(a.to_f64())));
        Ok(())
    }
}
