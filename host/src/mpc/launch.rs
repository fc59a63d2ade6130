//! Starting the dealer and the servers as child processes on one machine, and waiting
//! for them: their output forwarded line by line under their names, a failure of one
//! stopping the others after a grace period, and Ctrl-C or SIGTERM stopping them all so
//! that the launcher can remove its work folder (shares, labels, keys) before it exits.

use super::server::ServerError;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: Once = Once::new();

/// From now on, Ctrl-C, SIGTERM and SIGHUP stop the launched children instead of this
/// process: [`wait_all`] sees the signal, stops them and returns, and the caller cleans
/// up. A second signal exits at once (status 130). Installed once per process; a
/// process that installed another handler keeps it.
pub fn stop_on_signal() {
    HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("ringnn: stopping (once more to exit at once)");
        });
    });
}

/// Whether a signal asked the launcher to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// An error if a signal asked the launcher to stop.
///
/// # Errors
/// [`ServerError::Process`] saying so.
pub fn check_interrupted() -> Result<(), ServerError> {
    if interrupted() {
        return Err(ServerError::Process("stopped by a signal".into()));
    }
    Ok(())
}

/// Starts `exe` with `args`, its standard output and error forwarded to this process's
/// standard error one whole line at a time, each prefixed with `[name]`, so that the
/// lines of several children never interleave mid-line.
///
/// # Errors
/// The process cannot be started.
pub fn spawn_prefixed(exe: &Path, args: Vec<String>, name: &str) -> Result<Child, ServerError> {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ServerError::Process(format!("{name}: {}: {e}", exe.display())))?;
    let out = child
        .stdout
        .take()
        .map(|r| Box::new(r) as Box<dyn Read + Send>);
    let err = child
        .stderr
        .take()
        .map(|r| Box::new(r) as Box<dyn Read + Send>);
    for pipe in [out, err].into_iter().flatten() {
        let prefix = format!("[{name}] ");
        std::thread::spawn(move || forward_lines(pipe, &prefix, &mut std::io::stderr()));
    }
    Ok(child)
}

/// Copies `from` to `to` line by line, each line written whole with `prefix`; bytes that
/// are not UTF-8 are replaced, a last line without a newline gets one.
fn forward_lines(from: impl Read, prefix: &str, to: &mut impl Write) {
    let mut r = BufReader::new(from);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                let line = format!("{prefix}{}\n", text.trim_end_matches(['\n', '\r']));
                // One write of the whole line: the lock keeps other threads' lines out.
                if to.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Waits for the children; once one fails, gives the others `grace` to notice (they
/// should, within their read timeout) and then kills them; on a signal
/// ([`stop_on_signal`]) kills them all at once. Returns the failures.
pub fn wait_all(children: &mut [(String, Child)], grace: Duration) -> Vec<String> {
    let mut failed = Vec::new();
    let mut done = vec![false; children.len()];
    let mut first_failure: Option<Instant> = None;
    loop {
        for (i, (name, child)) in children.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            match child.try_wait() {
                Ok(Some(st)) => {
                    done[i] = true;
                    if !st.success() {
                        failed.push(format!("{name} exited with {st}"));
                        first_failure.get_or_insert_with(Instant::now);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    done[i] = true;
                    failed.push(format!("{name}: {e}"));
                }
            }
        }
        if done.iter().all(|&d| d) {
            return failed;
        }
        let stop = if interrupted() {
            Some("stopped by a signal")
        } else if first_failure.is_some_and(|t| t.elapsed() > grace) {
            Some("stopped after the failure")
        } else {
            None
        };
        if let Some(why) = stop {
            for (i, (name, child)) in children.iter_mut().enumerate() {
                if !done[i] {
                    let _ = child.kill();
                    let _ = child.wait();
                    failed.push(format!("{name} was {why}"));
                }
            }
            return failed;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_lines_are_whole_and_prefixed() {
        let input: &[u8] = b"epoch 1/3\r\nbad \xff byte\nno newline";
        let mut out = Vec::new();
        forward_lines(input, "[server 0] ", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[server 0] epoch 1/3\n[server 0] bad \u{fffd} byte\n[server 0] no newline\n"
        );
    }
}
