//! Training in fixed point (`Plain`) or floating point (`Float<f32>`): the loop behind
//! `ringnn train`.
//!
//! - [`config`]: the typed configuration, its names and its validation.
//! - [`model`]: networks by name over the kernel's layers, forward and backward.
//! - [`engine`]: bringing data into an engine and results out of it.
//! - [`checkpoint`]: atomic, verified per-epoch checkpoints.
//! - [`epochs`]: the epoch loop, once for every execution, with what each may observe.
//! - [`result`]: what a run reports, with the two servers' cost of a two-party run.
//! - [`trainer`]: one training step on any engine, and a batch split over threads.
//! - [`error`]: the errors of training.
//! - [`run`]: the loop itself: data, batches, loss, optimiser, evaluation, progress, result.

pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod epochs;
pub mod error;
pub mod model;
pub mod result;
pub mod run;
pub mod seq2seq;
pub mod trainer;

pub use config::{ConfigError, DataKind, EngineKind, Model, ScheduleSpec, TrainConfig};
pub use error::TrainError;
pub use result::{EpochStats, MpcCost, RunHealth, TrainResult};

/// Trains as `cfg` says on its engine: `Float` or `Plain` in this process (seq2seq through
/// its own learner), or two servers on shares started as child processes of the `ringnn`
/// binary ([`crate::mpc::launch::train_mpc`], every model). Progress goes to stderr.
///
/// # Errors
/// A configuration that does not validate, bad data, an unencodable value, a checkpoint
/// problem, or a failed two-party run.
pub fn train(cfg: &TrainConfig) -> Result<TrainResult, TrainError> {
    cfg.validate()?;
    match (cfg.model, cfg.engine) {
        (_, EngineKind::Mpc) => {
            let exe = crate::mpc::launch::ringnn_exe().map_err(|e| {
                TrainError::Config(format!("the ringnn binary for the servers: {e}"))
            })?;
            crate::mpc::launch::train_mpc(cfg, &exe).map_err(|e| TrainError::Mpc(Box::new(e)))
        }
        (Model::Seq2seq, _) => {
            Ok(seq2seq::train_seq2seq(cfg, cfg.sigmoid, Default::default())?.into())
        }
        _ => run::train_plaintext(cfg),
    }
}
