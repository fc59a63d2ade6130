//! The command line's errors: one type for every command, each variant the error of the
//! layer that failed, so that `main` can print the whole chain and tell a closed output
//! pipe from a failure.

use std::io;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad argument, found before any work.
    #[error(transparent)]
    Config(#[from] crate::train::ConfigError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] crate::train::run::TrainError),
    /// A two-party process, its files or its peers failed.
    #[error(transparent)]
    Mpc(#[from] crate::mpc::server::ServerError),
    /// Keys or certificates.
    #[error(transparent)]
    Keys(#[from] crate::mpc::keys::KeyError),
    /// The dealer failed.
    #[error(transparent)]
    Dealer(#[from] crate::mpc::dealer_server::DealerError),
    /// The approximation study failed.
    #[error(transparent)]
    Study(#[from] crate::study::StudyError),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// The firmware export failed.
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    /// A sweep could not go on.
    #[error(transparent)]
    Sweep(#[from] crate::sweep::SweepError),
    /// Writing the command's output failed (a closed pipe: the reader stopped).
    #[error(transparent)]
    Output(#[from] io::Error),
    /// A result could not be written as JSON.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Another failure, described.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// Whether the command's output pipe was closed by its reader (`ringnn approx --json
    /// | head -1`): not a failure. A broken pipe inside another error (a peer or child
    /// that went away) is one.
    pub fn is_closed_output(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}
