//! The studied functions: every e^x and tanh approximation of the kernel, with the grid of
//! its domain, its documented bound and its generic evaluation.
//!
//! Its own module because both sides of the study name it: [`crate::q32`] evaluates a
//! [`Func`] in 32-bit Q-format and [`crate::study`] measures it on the kernel's engines.

use crate::grid::{Grid, EXP_GRID, TANH_GRID};
use ringnn_core::approx::{ErrorBound, ExpApprox, TanhApprox};
use ringnn_core::engine::Engine;
use ringnn_core::Exact;

/// An approximation of one of the studied functions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Func {
    /// An approximation of e^x.
    Exp(ExpApprox),
    /// An approximation of tanh.
    Tanh(TanhApprox),
}

const fn all_funcs() -> [Func; 21] {
    let mut out = [Func::Tanh(TanhApprox::Hard); 21];
    let mut i = 0;
    while i < ExpApprox::ALL.len() {
        out[i] = Func::Exp(ExpApprox::ALL[i]);
        i += 1;
    }
    out[19] = Func::Tanh(TanhApprox::ALL[0]);
    out[20] = Func::Tanh(TanhApprox::ALL[1]);
    out
}

impl Func {
    /// Every exp and tanh approximation of the kernel.
    pub const ALL: [Func; 21] = all_funcs();

    /// `"exp"` or `"tanh"`.
    pub fn function(self) -> &'static str {
        match self {
            Func::Exp(_) => "exp",
            Func::Tanh(_) => "tanh",
        }
    }

    /// The kernel's name of the approximation.
    pub fn name(self) -> &'static str {
        match self {
            Func::Exp(a) => a.name(),
            Func::Tanh(a) => a.name(),
        }
    }

    /// The grid of the function's domain.
    pub fn grid(self) -> Grid {
        match self {
            Func::Exp(_) => EXP_GRID,
            Func::Tanh(_) => TANH_GRID,
        }
    }

    /// The kernel's documented error bound of the approximation's formula.
    pub fn bound(self) -> ErrorBound {
        match self {
            Func::Exp(a) => a.bound(),
            Func::Tanh(a) => a.bound(),
        }
    }

    /// The true function.
    pub fn exact(self) -> Exact {
        match self {
            Func::Exp(_) => Exact::Exp,
            Func::Tanh(_) => Exact::Tanh,
        }
    }

    /// Whether this is the `exact` entry (the function itself, rounded to the format).
    pub fn is_exact(self) -> bool {
        matches!(
            self,
            Func::Exp(ExpApprox::Exact) | Func::Tanh(TanhApprox::Exact)
        )
    }

    /// Scratch elements [`Func::eval`] needs for `n` inputs.
    pub fn scratch_len(self, n: usize) -> usize {
        match self {
            Func::Exp(a) => a.scratch_len(n),
            Func::Tanh(a) => a.scratch_len(n),
        }
    }

    /// `out = approx(x)` on any engine (the kernel's generic evaluation).
    ///
    /// # Errors
    /// What the engine reports.
    pub fn eval<E: Engine + ?Sized>(
        self,
        e: &mut E,
        x: &[E::Elem],
        out: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        match self {
            Func::Exp(a) => a.eval(e, x, out, scratch),
            Func::Tanh(a) => a.eval(e, x, out, scratch),
        }
    }
}
