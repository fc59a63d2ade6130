//! The `ringnn` command line.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ringnn_host::cli::Cli::parse();
    match ringnn_host::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A reader that stopped early (`ringnn approx --json | head -1`) is not a failure.
        Err(e) if e.is_closed_output() => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&anyhow::Error::from(e)));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `a: b: c`, leaving out a cause whose text the message
/// already holds (many errors name their cause in their own text).
fn message(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&c);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringnn_host::cli::CliError;
    use std::io;

    /// A reader that went away from our output ends quietly; a peer that went away from a
    /// dealer or server is a failure (the dealer used to exit 0 when party 1 was killed
    /// while it was writing to it).
    #[test]
    fn only_a_broken_output_pipe_is_quiet() {
        let out = CliError::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(out.is_closed_output());
        let peer = ringnn_host::mpc::dealer_server::DealerError::Io {
            peer: ringnn_host::mpc::Role::Party(ringnn_host::mpc::PartyId::P1),
            source: io::Error::new(io::ErrorKind::BrokenPipe, "connection to party 1 is closed"),
        };
        let e = CliError::from(peer);
        assert!(!e.is_closed_output());
        let e = anyhow::Error::from(e);
        assert_eq!(
            message(&e),
            "dealer, serving party 1: connection to party 1 is closed"
        );
    }
}
