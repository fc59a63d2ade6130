//! The errors of training.

use super::checkpoint::CheckpointError;
use super::config::ConfigError;
use super::engine::BoundaryError;
use crate::data::DataError;

impl From<std::convert::Infallible> for TrainError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

/// Training errors.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Data could not be loaded.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A value could not enter the engine.
    #[error(transparent)]
    Boundary(#[from] BoundaryError),
    /// A checkpoint problem.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A bad configuration.
    #[error("{0}")]
    Config(String),
    /// A two-party run failed (a process, a file, the network): the launcher's error.
    #[error(transparent)]
    Mpc(Box<dyn std::error::Error + Send + Sync>),
    /// A configuration that does not validate.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}
