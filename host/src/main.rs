//! The `ringnn` command line.
use clap::Parser;

/// mimalloc, told never to give freed memory back to the system: the two-party engine
/// allocates and frees buffers of many megabytes per protocol step (FSS keys, masks,
/// opened values), which the system allocator maps afresh each time, so that the kernel
/// zeroes every page again; on this machine that was half of a two-party step's CPU
/// (docs/performance.md). A process keeps its peak memory until it exits. No result
/// depends on the allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (the enum's 16th option in versions 2 and 3):
/// milliseconds before freed memory is returned to the system, -1 for never.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn keep_freed_memory() {
    // SAFETY: sets one of mimalloc's process-wide options (a plain integer store), valid at
    // any time; no memory is touched.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1)
    };
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
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

#[cfg(test)]
mod allocator_tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc's default purge delay is 1000 ms; its neighbours in the enum default to
        // other values (eager commit delay 1, NUMA nodes 0), so this checks the index.
        #[allow(unsafe_code)]
        let got = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert!(
            got == 1000 || got == -1,
            "option {MI_OPTION_PURGE_DELAY} is {got}"
        );
        keep_freed_memory();
        #[allow(unsafe_code)]
        let got = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(got, -1);
    }
}
