//! One row of the precision study: an approximation at `f` fractional bits, evaluated on
//! its grid by the 64-bit kernel ([`Plain`]) and by the 32-bit Q-format ([`crate::q32`]),
//! against an `f32` reference on the device.
//!
//! # References
//! - *exact*: the true function in `f32`, from the kernel's [`Float<f32>`] engine with
//!   `Exact` (the `f64` function of `libm`, rounded once to `f32`: within half an `f32` ulp).
//! - *formula*: the approximation's own formula, evaluated in `f32` by the same generic
//!   kernel code on [`Float<f32>`].
//!
//! `abs` and `rel` are the errors against *exact*: approximation and precision together,
//! what a model sees. `dev` is the distance to *formula*: what the number format alone adds,
//! down to the `f32` reference's own rounding (about `|value| * 2^-24` per operation, which
//! is what `dev` reads at large `f`).
//!
//! # Precision
//! Inputs are grid points, exact in every format, so nothing is lost in encoding them.
//! Errors are computed in `f64`, where every decoded value is exact.

use crate::func::Func;
use crate::grid::{CHUNK, EXP_GRID, TANH_GRID};
use crate::q32::{self, Wraps};
use crate::ticks::{timed, OutOfRange, TickCounter};
use ringnn_core::approx::lines::MAX_LINES;
use ringnn_core::engine::Engine;
use ringnn_core::fixed::pow2;
use ringnn_core::{Exact, ExactEngine, Float, Plain, Z64};

/// The fractional bits of the study.
pub const FRAC_BITS: [u32; 7] = q32::SUPPORTED_FRAC_BITS;

/// Scratch capacity of [`Buffers`]: the most any approximation needs for one chunk (max of
/// lines with every part, `4 * parts * n`; the others need `5 * n` at most).
pub const SCRATCH: usize = 4 * (MAX_LINES + 1) * CHUNK;

/// Every buffer the study uses, sized for one chunk: the firmware keeps one in a static.
pub struct Buffers {
    x32: [f32; CHUNK],
    exact: [f32; CHUNK],
    formula: [f32; CHUNK],
    scratch32: [f32; SCRATCH],
    x64: [Z64; CHUNK],
    out64: [Z64; CHUNK],
    scratch64: [Z64; SCRATCH],
    xq: [i32; CHUNK],
    outq: [i32; CHUNK],
    wraps: [Wraps; CHUNK],
}

impl Buffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Buffers {
            x32: [0.0; CHUNK],
            exact: [0.0; CHUNK],
            formula: [0.0; CHUNK],
            scratch32: [0.0; SCRATCH],
            x64: [Z64::ZERO; CHUNK],
            out64: [Z64::ZERO; CHUNK],
            scratch64: [Z64::ZERO; SCRATCH],
            xq: [0; CHUNK],
            outq: [0; CHUNK],
            wraps: [Wraps {
                q: false,
                ring: false,
            }; CHUNK],
        }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Maximum errors of one evaluation over a grid.
#[derive(Clone, Copy, PartialEq, Default, Debug)]
pub struct Errors {
    /// `max |v - exact|`.
    pub abs: f64,
    /// `max |v - exact| / |exact|` over points where `|exact| >= 1e-12` (tanh(0) = 0 is
    /// left out).
    pub rel: f64,
    /// `max |v - formula|`: what the number format adds to the approximation.
    pub dev: f64,
}

impl Errors {
    fn add(&mut self, v: f64, exact: f32, formula: f32) {
        let (t, fo) = (exact as f64, formula as f64);
        let err = libm::fabs(v - t);
        self.abs = self.abs.max(err);
        if libm::fabs(t) >= 1e-12 {
            self.rel = self.rel.max(err / libm::fabs(t));
        }
        self.dev = self.dev.max(libm::fabs(v - fo));
    }
}

/// Ticks spent in timed evaluation calls.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Costs {
    /// The 64-bit kernel ([`Plain`]).
    pub i64_ticks: u64,
    /// The 32-bit Q-format evaluation.
    pub q32_ticks: u64,
    /// The kernel's generic code on [`Float<f32>`] (the FPU).
    pub f32_ticks: u64,
    /// Timed calls per engine (one per chunk).
    pub calls: u32,
}

/// The study's figures for one approximation at one `f`.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Row {
    /// The approximation.
    pub func: Func,
    /// Fractional bits.
    pub f: u32,
    /// Grid points evaluated.
    pub points: u32,
    /// `max |exact|` over the grid (scales the `f32` reference's rounding).
    pub max_exact: f64,
    /// Errors of the 64-bit kernel.
    pub i64: Errors,
    /// Products that wrapped or constants that saturated in the 64-bit kernel.
    pub i64_overflows: u64,
    /// Errors of the 32-bit Q-format.
    pub q32: Errors,
    /// Points where a Q-format result wrapped.
    pub q32_wrapped: u32,
    /// Points where the ring Z_2^32 would be wrong (see [`crate::q32`]).
    pub ring32_wrapped: u32,
    /// Points where the 32-bit result differs from the 64-bit one although nothing wrapped
    /// (0 when the two evaluations are the same algorithm, as they should be).
    pub q32_differs_unwrapped: u32,
    /// Instruction costs.
    pub costs: Costs,
}

/// Why a row could not be measured.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum StudyError {
    /// `f` is not one the study supports.
    FracBits(u32),
    /// [`Buffers`] cannot hold the approximation's scratch.
    Scratch {
        /// Elements needed.
        needed: usize,
    },
    /// A grid point could not be encoded exactly.
    Encode(f32),
    /// A timed call did not fit the tick counter.
    Timer,
}

impl From<OutOfRange> for StudyError {
    fn from(_: OutOfRange) -> Self {
        StudyError::Timer
    }
}

/// Measures `func` at `f` over its grid, timing each evaluation call with `counter`.
///
/// # Errors
/// See [`StudyError`].
pub fn measure<T: TickCounter + ?Sized>(
    func: Func,
    f: u32,
    buf: &mut Buffers,
    counter: &mut T,
) -> Result<Row, StudyError> {
    if !FRAC_BITS.contains(&f) {
        return Err(StudyError::FracBits(f));
    }
    let needed = func.scratch_len(CHUNK);
    if needed > SCRATCH {
        return Err(StudyError::Scratch { needed });
    }
    let mut plain = Plain::with_frac_bits(f).map_err(|_| StudyError::FracBits(f))?;
    let fx = plain.format();
    let mut float = Float::<f32>::new();
    let grid = func.grid();
    let ulp = pow2(-(f as i32));
    let mut row = Row {
        func,
        f,
        points: grid.points as u32,
        max_exact: 0.0,
        i64: Errors::default(),
        i64_overflows: 0,
        q32: Errors::default(),
        q32_wrapped: 0,
        ring32_wrapped: 0,
        q32_differs_unwrapped: 0,
        costs: Costs::default(),
    };
    let b = buf;
    let mut start = 0;
    while start < grid.points {
        let n = CHUNK.min(grid.points - start);
        let sn = func.scratch_len(n);
        for i in 0..n {
            let x = grid.point(start + i);
            b.x32[i] = x;
            b.x64[i] = fx.encode(x as f64).map_err(|_| StudyError::Encode(x))?;
            b.xq[i] = q32::encode_exact(x, f).ok_or(StudyError::Encode(x))?;
        }
        b.exact[..n].copy_from_slice(&b.x32[..n]);
        // Infallible engines: the results carry no error.
        let _ = float.apply_exact(func.exact(), &mut b.exact[..n]);

        let (_, t) = timed(counter, || {
            func.eval(
                &mut float,
                &b.x32[..n],
                &mut b.formula[..n],
                &mut b.scratch32[..sn],
            )
        })?;
        row.costs.f32_ticks += t as u64;
        let (_, t) = timed(counter, || {
            func.eval(
                &mut plain,
                &b.x64[..n],
                &mut b.out64[..n],
                &mut b.scratch64[..sn],
            )
        })?;
        row.costs.i64_ticks += t as u64;
        let (r, t) = timed(counter, || {
            q32::eval(func, f, &b.xq[..n], &mut b.outq[..n], &mut b.wraps[..n])
        })?;
        r.map_err(|e| StudyError::FracBits(e.0))?;
        row.costs.q32_ticks += t as u64;
        row.costs.calls += 1;

        for i in 0..n {
            let (ex, fo) = (b.exact[i], b.formula[i]);
            row.max_exact = row.max_exact.max(libm::fabs(ex as f64));
            row.i64.add(fx.decode(b.out64[i]), ex, fo);
            row.q32.add(b.outq[i] as f64 * ulp, ex, fo);
            let w = b.wraps[i];
            row.q32_wrapped += w.q as u32;
            row.ring32_wrapped += w.ring as u32;
            if !w.q && b.outq[i] as i64 != b.out64[i].to_signed() {
                row.q32_differs_unwrapped += 1;
            }
        }
        start += n;
    }
    row.i64_overflows = plain.overflow_count();
    Ok(row)
}

/// A check that a row failed.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Violation {
    /// The 64-bit kernel wrapped: its safe range is far above these domains, so it never
    /// should.
    Overflow64,
    /// `abs` exceeds the documented bound of the formula plus what the format adds (`dev`)
    /// plus the `f32` reference's rounding: the documented bound does not hold here.
    Bound {
        /// The measured error.
        abs: f64,
        /// The allowed error.
        allowed: f64,
    },
    /// An `exact` row is further than half an ulp (plus the reference's rounding) from the
    /// function: encoding is not rounding to nearest.
    Rounding {
        /// Which ring.
        bits: u32,
        /// The measured error.
        abs: f64,
        /// The allowed error.
        allowed: f64,
    },
    /// The 32-bit result differs from the 64-bit one at points where nothing wrapped.
    Diverged {
        /// Such points.
        points: u32,
    },
}

/// `f32` rounding allowance for a reference of magnitude `max_exact`: a few `f32` ulps.
fn f32_slack(max_exact: f64) -> f64 {
    4.0 * max_exact * pow2(-24)
}

impl Row {
    /// Checks the row; the first violation found, if any.
    ///
    /// - The 64-bit kernel never wraps on these domains.
    /// - `abs <= bound + dev + slack` for the 64-bit kernel (triangle inequality through the
    ///   formula, with the kernel's documented bound of the formula's error).
    /// - `exact` rows are within half an ulp of the function in both rings, where the
    ///   32-bit one did not wrap.
    /// - The 32-bit evaluation equals the 64-bit one wherever it did not wrap.
    pub fn check(&self) -> Result<(), Violation> {
        if self.i64_overflows != 0 {
            return Err(Violation::Overflow64);
        }
        let slack = f32_slack(self.max_exact);
        let bound = self.func.bound();
        let allowed = bound.max_abs + self.i64.dev + slack;
        if self.i64.abs > allowed {
            return Err(Violation::Bound {
                abs: self.i64.abs,
                allowed,
            });
        }
        if self.func.is_exact() {
            let allowed = pow2(-(self.f as i32 + 1)) + slack;
            if self.i64.abs > allowed {
                return Err(Violation::Rounding {
                    bits: 64,
                    abs: self.i64.abs,
                    allowed,
                });
            }
            if self.q32_wrapped == 0 && self.q32.abs > allowed {
                return Err(Violation::Rounding {
                    bits: 32,
                    abs: self.q32.abs,
                    allowed,
                });
            }
        }
        if self.q32_differs_unwrapped != 0 {
            return Err(Violation::Diverged {
                points: self.q32_differs_unwrapped,
            });
        }
        Ok(())
    }
}

/// Errors and cost of an `f32` library function against the same reference.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct FloatRow {
    /// `"exp"` or `"tanh"`.
    pub function: &'static str,
    /// Errors (`dev` is 0: there is no separate formula).
    pub errors: Errors,
    /// Ticks of the timed calls.
    pub ticks: u64,
    /// Timed calls.
    pub calls: u32,
    /// Grid points.
    pub points: u32,
}

/// micromath's `exp`, and tanh built from it as `1 - 2 / (e^(2x) + 1)` (micromath has no
/// tanh): the fast `f32` functions a float MCU would use, measured against the same
/// reference to set the fixed-point figures in context.
pub fn micromath(x: f32, function: Exact) -> f32 {
    // Called through the trait: with std linked (host tests), `x.exp()` would pick std's
    // inherent method instead.
    use micromath::F32Ext;
    match function {
        Exact::Exp => F32Ext::exp(x),
        Exact::Tanh => 1.0 - 2.0 / (F32Ext::exp(2.0 * x) + 1.0),
        Exact::Sigmoid => 1.0 / (1.0 + F32Ext::exp(-x)),
    }
}

/// Measures [`micromath`] for `function` (exp or tanh) over its grid.
///
/// # Errors
/// [`StudyError::Timer`] when a call does not fit the counter.
pub fn measure_micromath<T: TickCounter + ?Sized>(
    function: Exact,
    buf: &mut Buffers,
    counter: &mut T,
) -> Result<FloatRow, StudyError> {
    let (grid, name) = match function {
        Exact::Tanh => (TANH_GRID, "tanh"),
        _ => (EXP_GRID, "exp"),
    };
    let mut float = Float::<f32>::new();
    let mut row = FloatRow {
        function: name,
        errors: Errors::default(),
        ticks: 0,
        calls: 0,
        points: grid.points as u32,
    };
    let b = buf;
    let mut start = 0;
    while start < grid.points {
        let n = CHUNK.min(grid.points - start);
        for i in 0..n {
            b.x32[i] = grid.point(start + i);
        }
        b.exact[..n].copy_from_slice(&b.x32[..n]);
        let _ = float.apply_exact(function, &mut b.exact[..n]);
        let (_, t) = timed(counter, || {
            for (o, &x) in b.formula[..n].iter_mut().zip(&b.x32[..n]) {
                *o = micromath(x, function);
            }
        })?;
        row.ticks += t as u64;
        row.calls += 1;
        for i in 0..n {
            row.errors.add(b.formula[i] as f64, b.exact[i], b.exact[i]);
        }
        start += n;
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticks::tests::MockCounter;
    use ringnn_core::approx::{ExpApprox, TanhApprox};
    use std::boxed::Box;

    #[test]
    fn every_approximation_fits_the_buffers() {
        for func in Func::ALL {
            assert!(func.scratch_len(CHUNK) <= SCRATCH, "{}", func.name());
        }
        assert_eq!(Func::ALL[10], Func::Exp(ExpApprox::Pwl(4)));
    }

    #[test]
    fn pwl4_at_16_bits_meets_its_documented_bound_and_passes() {
        let mut b = Box::new(Buffers::new());
        let mut c = MockCounter::new(1, 1);
        let row = measure(Func::Exp(ExpApprox::Pwl(4)), 16, &mut b, &mut c).unwrap();
        assert_eq!(row.points, 1281);
        assert_eq!(row.costs.calls, 21);
        // The error at x = 4: e^4 - (7.3891 * 4 - 7.3891) = 32.43; documented 33.
        assert!(row.i64.abs > 32.0 && row.i64.abs <= 33.0, "{row:?}");
        // A few ulps from the formula (constants rounded to 2^-16, |x| <= 6).
        assert!(row.i64.dev < 8.0 * pow2(-16), "{row:?}");
        assert_eq!(row.q32_wrapped, 0);
        assert!(row.ring32_wrapped > 0);
        assert_eq!(row.check(), Ok(()));
    }

    #[test]
    fn exact_rows_are_within_half_an_ulp() {
        let mut b = Box::new(Buffers::new());
        let mut c = MockCounter::new(1, 1);
        for f in [8, 24] {
            let row = measure(Func::Tanh(TanhApprox::Exact), f, &mut b, &mut c).unwrap();
            assert!(row.i64.abs <= pow2(-(f as i32 + 1)) + 1e-6, "{row:?}");
            assert_eq!(row.check(), Ok(()));
        }
    }

    #[test]
    fn every_row_passes_its_checks_and_32_bits_break_at_24() {
        let mut b = Box::new(Buffers::new());
        let mut c = MockCounter::new(1, 1);
        let mut wrapped_at_24 = 0;
        for func in Func::ALL {
            for f in FRAC_BITS {
                let row = measure(func, f, &mut b, &mut c).unwrap();
                assert_eq!(row.check(), Ok(()), "{row:?}");
                if f == 24 {
                    wrapped_at_24 += (row.q32_wrapped > 0) as u32;
                }
            }
        }
        assert!(wrapped_at_24 > 0);
    }

    #[test]
    fn violations_are_reported() {
        let mut b = Box::new(Buffers::new());
        let mut c = MockCounter::new(1, 1);
        let row = measure(Func::Exp(ExpApprox::Pwl(4)), 16, &mut b, &mut c).unwrap();
        let mut bad = row;
        bad.i64_overflows = 1;
        assert_eq!(bad.check(), Err(Violation::Overflow64));
        let mut bad = row;
        bad.i64.abs = 40.0;
        assert!(matches!(bad.check(), Err(Violation::Bound { .. })));
        let mut bad = row;
        bad.q32_differs_unwrapped = 2;
        assert_eq!(bad.check(), Err(Violation::Diverged { points: 2 }));
        assert_eq!(
            measure(Func::Exp(ExpApprox::Pwl(4)), 9, &mut b, &mut c),
            Err(StudyError::FracBits(9))
        );
    }

    #[test]
    fn micromath_is_measured_against_the_same_reference() {
        let mut b = Box::new(Buffers::new());
        let mut c = MockCounter::new(1, 1);
        let row = measure_micromath(Exact::Exp, &mut b, &mut c).unwrap();
        assert_eq!(row.points, 1281);
        assert!(row.errors.rel > 0.0 && row.errors.rel < 1e-2, "{row:?}");
    }
}
