//! Training in fixed point (`Plain`) or floating point (`Float<f32>`): the loop behind
//! `ringnn train`.
//!
//! - [`config`]: the typed configuration, its names and its validation.
//! - [`model`]: networks by name over the kernel's layers, forward and backward.
//! - [`engine`]: bringing data into an engine and results out of it.
//! - [`checkpoint`]: atomic, verified per-epoch checkpoints.
//! - [`epochs`]: the epoch loop, once for every execution, with what each may observe.
//! - [`run`]: the loop itself: data, batches, loss, optimiser, evaluation, progress, result.

pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod epochs;
pub mod model;
pub mod run;
pub mod seq2seq;

pub use config::{ConfigError, DataKind, EngineKind, Model, ScheduleSpec, TrainConfig};
pub use run::{train, TrainResult};
