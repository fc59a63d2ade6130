//! The two-party engine: every model and approximation of the kernel, run on additive
//! secret shares in Z_2^64 by two non-colluding servers with a dealer's help.
//!
//! The kernel's [`Engine`](ringnn_core::Engine) trait lists the primitives a two-party
//! engine must provide (local linear operations, multiplication, matrix product,
//! truncation, sign bit, select); everything else (ReLU, max-of-lines, softmax, the
//! reciprocal, the layers, SGD) is written once on top of them. [`Mpc`] implements those
//! primitives as protocols between two parties, so model code runs unchanged and never
//! branches on which party it is.
//!
//! # Pieces
//! - [`share`](mod@share): additive sharing with a cryptographic RNG, [`PartyId`].
//! - [`channel`]: the byte transport between the parties ([`Channel`]: write, flush,
//!   read, as a TCP/TLS stream provides), an in-memory pair for one process, and a
//!   [`Tracked`] wrapper that counts bytes and rounds.
//! - [`wire`]: the framing of protocol messages (parse/emit, tested on byte vectors).
//! - [`dealer`]: the dealer of correlated randomness and its PRG-seed compression, with
//!   its trust assumption.
//! - [`protocols`]: the protocols themselves, each with `# Security` and
//!   `# Communication`.
//! - [`comparison`]: the choice of comparison protocol ([`Comparison`]: the adder of
//!   [`protocols`] or the FSS gate) and the FSS comparison on shares.
//! - [`engine`]: [`Mpc`], the [`Engine`](ringnn_core::Engine) implementation.
//! - [`fss`]: function secret sharing from the dealer: a distributed comparison function
//!   on fixed-key AES, and the sign and ReLU gates on masked inputs built on it.
//! - [`local`]: both parties and the dealer in one process (two threads), for tests and
//!   single-machine runs.
//! - [`keys`]: the session CA and one certificate per role (`keygen`).
//! - [`accept`]: the listening side: every connection authenticated on its own thread,
//!   strangers refused and logged.
//! - [`net`]: the [`Channel`] over TCP with mutual TLS 1.3, session id and version
//!   checks, frame limits and timeouts.
//! - [`dealer_server`]: the dealer as its own process, and the parties' client of it.
//! - [`hello`]: the training servers' greeting: where both continue (epoch, run,
//!   attempt), or why they cannot.
//! - [`job`]: the files of a training job: `job.json` (the training configuration and
//!   the data's shape) and the tagged share-file format.
//! - [`owner`]: the data owner: share the data and the initial model, reveal the
//!   trained model and the test predictions.
//! - [`launch`]: dealer and servers as child processes of one launcher (the one place
//!   that writes their command lines): output forwarded line by line, failures and
//!   Ctrl-C/SIGTERM stopping them all; `ringnn train --engine mpc` on one machine.
//! - [`server`]: one computing server as its own process, the data owner's share files,
//!   and a local orchestration of dealer and servers (a fixed dense + ReLU job).
//! - [`training`]: the training server: the epoch loop of [`crate::train::epochs`] on
//!   shares, per-epoch checkpoints, the handshake of resumption, the test predictions.
//!
//! # Security model
//! Semi-honest (honest-but-curious) servers that do not collude with each other or with
//! the dealer; see [`dealer`] for the dealer's trust assumption. Every value a party
//! receives online is a share masked by fresh dealer randomness that is uniform in its
//! domain, so one party's view is independent of the secret inputs (tested
//! statistically in the test module). Nothing is ever opened that depends on data:
//! no revealed logits, no revealed comparison results.

pub mod accept;
pub mod buffers;
pub mod channel;
pub mod comparison;
pub mod dealer;
pub mod dealer_server;
pub mod engine;
pub mod fss;
pub mod hello;
pub mod job;
pub mod keys;
pub mod launch;
pub mod local;
pub mod net;
pub mod owner;
pub mod protocols;
pub mod server;
pub mod share;
pub mod training;
pub mod wire;

#[cfg(test)]
mod conv_tests;
#[cfg(test)]
mod reuse_tests;
#[cfg(test)]
#[macro_use]
mod tests;
#[cfg(test)]
mod trunc_tests;
#[cfg(test)]
mod view_tests;

pub use channel::{Channel, MemChannel, Tracked, Traffic};
pub use comparison::Comparison;
pub use dealer::{Correlations, Dealer, OfflineStats, SeededCorrelations};
pub use engine::{Mpc, Truncation};
pub use keys::{keygen, Role};
pub use local::{run_in_process, LocalConfig};
pub use net::{NetConfig, SessionId, TlsChannel};
pub use share::{reconstruct, share, PartyId};

use std::io;

/// What went wrong in a two-party computation.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    /// The transport to the peer failed (closed, reset, timed out).
    #[error("channel to {peer} failed during {during}: {source}")]
    Channel {
        /// The party at the other end.
        peer: PartyId,
        /// The protocol step that was running.
        during: &'static str,
        /// The transport's error.
        #[source]
        source: io::Error,
    },
    /// The peer sent a message other than the one this step expects: the two parties are
    /// out of step (different programs or different shapes).
    #[error(
        "{peer} is out of step during {during}: expected message {expected_tag} of \
         {expected_words} words, got {got_tag} of {got_words}"
    )]
    Desync {
        /// The party at the other end.
        peer: PartyId,
        /// The protocol step that was running.
        during: &'static str,
        /// The tag this party expected.
        expected_tag: u32,
        /// The length (64-bit words) this party expected.
        expected_words: u64,
        /// The tag received.
        got_tag: u32,
        /// The length received.
        got_words: u64,
    },
    /// A message longer than the wire format allows (`u32::MAX` words).
    #[error("message of {words} words is too long for one frame")]
    TooLong {
        /// The length asked for.
        words: usize,
    },
    /// The dealer could not provide correlated randomness.
    #[error("dealer failed to provide {what}: {reason}")]
    Dealer {
        /// The correlation asked for.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

/// Errors of a server, dealer, owner or launcher: every two-party process.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Connection set-up failed.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// The dealer connection failed.
    #[error(transparent)]
    Dealer(#[from] dealer_server::DealerError),
    /// Keys could not be made or loaded.
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    /// The computation failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// Data, model or training configuration.
    #[error(transparent)]
    Train(#[from] crate::train::run::TrainError),
    /// A checkpoint could not be written, read, or does not belong to this job.
    #[error(transparent)]
    Checkpoint(#[from] crate::train::checkpoint::CheckpointError),
    /// A share file is unreadable or malformed.
    #[error("{path}: {what}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Configuration error.
    #[error("{0}")]
    Config(String),
    /// A server or dealer process failed.
    #[error("{0}")]
    Process(String),
}
