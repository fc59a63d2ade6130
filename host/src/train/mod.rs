//! Training in fixed point (`Plain`) or floating point (`Float<f32>`): the loop behind
//! `ringnn train`.
//!
//! - [`model`]: networks by name over the kernel's layers, forward and backward.
//! - [`engine`]: bringing data into an engine and results out of it.
//! - [`checkpoint`]: atomic, verified per-epoch checkpoints.
//! - [`run`]: the loop itself: data, batches, loss, optimiser, evaluation, progress, result.

pub mod checkpoint;
pub mod engine;
pub mod model;
pub mod run;
pub mod seq2seq;

pub use run::{train, DataKind, EngineKind, TrainConfig, TrainResult};
