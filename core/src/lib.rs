//! The kernel of ringnn: `no_std`, allocation-free.
//!
//! - [`ring`]: the ring Z_2^64, where every operation wraps.
//! - [`fixed`]: fixed-point encoding with `f` fractional bits on top of the ring.
//! - [`engine`]: the [`Engine`](engine::Engine) trait, "approximate real arithmetic" batched
//!   over slices, with the plaintext engines [`Plain`](plain::Plain) (fixed point in Z_2^64)
//!   and [`Float`](float::Float) (f64 / f32, the reference).
//! - [`approx`]: every approximation of e^x, tanh and sigmoid as pure data plus one
//!   evaluation generic over the engine, with derivative, float reference, domain and bound.
//! - [`softmax`]: softmax over rows through a fixed-point reciprocal, and the gradient of
//!   softmax cross-entropy in the paper's and SecureML's modes.
//!
//! Nothing here allocates: callers pass output and scratch slices, whose required lengths
//! are given by `scratch_len` functions next to each operation.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod approx;
pub mod engine;
pub mod fixed;
pub mod float;
pub mod invsqrt;
pub mod layers;
pub mod optim;
pub mod plain;
pub mod ring;
pub mod softmax;

pub use engine::{Engine, Exact};
pub use fixed::{Fixed, FracBits};
pub use float::Float;
pub use plain::Plain;
pub use ring::Z64;

#[cfg(test)]
mod tests;
