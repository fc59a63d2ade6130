//! The `ringnn` command line: raw arguments are parsed (clap) and then validated into a
//! configuration before anything runs, so that every mistake is reported up front with
//! the valid choices.

use crate::study::{self, Func, Precision, StudyConfig};
use clap::{Args, Parser, Subcommand};
use ringnn_core::approx::{ExpApprox, SigmoidApprox, TanhApprox};
use ringnn_core::FracBits;
use std::io::Write;
use std::path::{Path, PathBuf};

mod approx;
mod cost;
mod error;
mod export;
mod lists;
mod mpc;
mod sweep;
mod train;

pub use crate::train::ConfigError;
pub use approx::{approx, ApproxArgs};
pub use cost::{cost, CostArgs};
pub use error::CliError;
use export::export_command;
pub use export::ExportArgs;
pub use lists::parse_range;
use lists::*;
use mpc::{mpc_command, reveal_command, server_command, share_command};
pub use mpc::{
    CaCommand, KeygenArgs, MpcDealerArgs, MpcDemoArgs, MpcServerArgs, NetArgs, RevealArgs,
    ServerArgs, ShareArgs,
};
pub use sweep::{reproduce, sweep, ReproduceArgs, SweepArgs};
pub use train::{train, TrainArgs};

/// Neural networks in the fixed-point ring Z_2^64 of two-party computation.
#[derive(Debug, Parser)]
#[command(name = "ringnn", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// How far each approximation of e^x, tanh, sigmoid and softmax strays from the true
    /// function at each number of fractional bits, through the Plain (Z_2^64 fixed point)
    /// and Float engines.
    Approx(ApproxArgs),
    /// What each approximation costs on the two-party engine: rounds, online bytes, the
    /// dealer's bytes and time per batch of rows (softmax rows, tanh, sigmoid, the
    /// reciprocal), at each number of fractional bits.
    Cost(CostArgs),
    /// Train a network in Z_2^64 fixed point (plain) or floating point (float) and report
    /// test accuracy per epoch.
    Train(TrainArgs),
    /// Train every combination of models, datasets, approximations, precisions and seeds;
    /// record each run in OUT/runs.jsonl and OUT/runs.csv (a restart skips finished runs);
    /// write OUT/table.md and plots.
    Sweep(SweepArgs),
    /// Run the paper's Table 2 (CNNs on CIFAR) or Table 3 (seq2seq) as a sweep, at a
    /// quick scale (on 2 idle cores: Table 2 about 2 hours, Table 3 about 30 minutes) or
    /// the paper's full scale, with the paper's figures beside the measured ones.
    Reproduce(ReproduceArgs),
    /// Make TLS keys: with --role, one role's key and a certificate signing request (each
    /// operator runs its own); without, a session CA and every role's key at once (one
    /// person then holds them all: for one machine and tests).
    Keygen(KeygenArgs),
    /// The session CA of separate operators: `ca init` makes it, `ca sign` certifies a
    /// role's signing request. Its operator runs no role.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Run the dealer of correlated randomness for one two-party session (serves party 1's
    /// corrections over TLS; party 0 gets only a seed).
    #[command(name = "dealer", alias = "mpc-dealer")]
    MpcDealer(MpcDealerArgs),
    /// Run one of the two training servers: train on this server's share file with the
    /// other server and the dealer over mutual TLS, checkpoint its shares every epoch, and
    /// write its shares of the trained model and of the test predictions for the owner.
    Server(ServerArgs),
    /// As the data owner: split a dataset and an initial model into one share file per
    /// server (each alone uniformly random), with the public job.json and the owner's
    /// owner.json (takes the training flags of `ringnn train`).
    Share(ShareArgs),
    /// As the data owner: add the two servers' output shares; print the test accuracy of
    /// the predictions and write the trained model as a Plain checkpoint.
    Reveal(RevealArgs),
    /// Run one of the two servers on its share file, over mutual TLS to the other server
    /// and the dealer; writes its share of the result and a report of bytes and rounds.
    #[command(name = "mpc-server")]
    MpcServer(MpcServerArgs),
    /// Run the data owner, the dealer and both servers as separate local processes over
    /// TLS on loopback, reconstruct the result and compare it with Plain.
    #[command(name = "mpc-demo")]
    MpcDemo(MpcDemoArgs),
    /// Export a Plain MLP checkpoint and a few test inputs as Rust source for the firmware
    /// (weights, inputs and the host's expected logits as raw Z_2^64 bits).
    Export(ExportArgs),
}

/// Runs the parsed command line.
///
/// # Errors
/// What the command reports.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match cli.command {
        Command::Approx(args) => approx(&args, &mut lock),
        Command::Cost(args) => cost(&args, &mut lock),
        Command::Train(args) => train(&args, &mut lock),
        Command::Export(args) => export_command(&args, &mut lock),
        Command::Server(args) => server_command(&args),
        Command::Share(args) => share_command(&args, &mut lock),
        Command::Reveal(args) => reveal_command(&args, &mut lock),
        c @ (Command::Keygen(_)
        | Command::Ca(_)
        | Command::MpcDealer(_)
        | Command::MpcServer(_)
        | Command::MpcDemo(_)) => mpc_command(c, &mut lock),
        Command::Sweep(args) => sweep(&args, &mut lock),
        Command::Reproduce(args) => reproduce(&args, &mut lock),
    }
}
