//! The kernel of ringnn: `no_std`, allocation-free.
//!
//! Modules in layer order: each uses only modules listed before it (the one exception,
//! [`engine`] naming [`approx::lines::Lines`], is pure data that uses nothing).
//!
//! - [`ring`]: the ring Z_2^64, where every operation wraps.
//! - [`fixed`]: fixed-point encoding with `f` fractional bits on top of the ring.
//! - [`engine`]: the [`Engine`] trait, batched "approximate real arithmetic", and its composites.
//! - [`float`]: [`Float`], the reference engine in `f64` / `f32`.
//! - [`plain`]: [`Plain`], fixed point in Z_2^64, bit-faithful to the two-party engine.
//! - [`approx`]: every approximation of e^x, tanh and sigmoid: data plus one generic evaluation.
//! - [`invsqrt`]: the fixed-point inverse square root that batch normalisation needs.
//! - [`softmax`]: softmax over rows and the gradient of softmax cross-entropy.
//! - [`layers`]: layer primitives, forward and backward, generic over the engine.
//! - [`optim`]: stochastic gradient descent with momentum and weight decay; schedules.
//!
//! Nothing here allocates: callers pass output and scratch slices, whose required lengths
//! are given by `scratch_len` functions next to each operation.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// Layer by layer (rustfmt keeps the order across blank lines).
pub mod ring;

pub mod fixed;

pub mod engine;

pub mod float;
pub mod plain;

pub mod approx;

pub mod invsqrt;
pub mod softmax;

pub mod layers;
pub mod optim;

pub use engine::{Engine, Exact, ExactEngine, Health};
pub use fixed::{Fixed, FracBits};
pub use float::Float;
pub use plain::Plain;
pub use ring::Z64;

#[cfg(test)]
mod tests;
