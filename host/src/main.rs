//! The `ringnn` command line.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ringnn_host::cli::Cli::parse();
    match ringnn_host::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A reader that stopped early (`ringnn approx --json | head -1`) is not a failure.
        Err(e) if broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
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
