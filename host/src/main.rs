//! The `ringnn` command line.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ringnn_host::cli::Cli::parse();
    match ringnn_host::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
