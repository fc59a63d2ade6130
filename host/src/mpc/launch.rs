//! Starting the dealer and the servers as child processes on one machine, and waiting
//! for them: their output forwarded line by line under their names, a failure of one
//! stopping the others after a grace period, and Ctrl-C or SIGTERM stopping them all so
//! that the launcher can remove its work folder (shares, labels, keys) before it exits.
//!
//! It is also the one place that writes the children's command lines ([`dealer_args`],
//! [`train_server_args`], [`dense_server_args`]: only what differs per process; the
//! training itself travels in `job.json`), and it runs `ringnn train --engine mpc`
//! ([`train_mpc`]): owner, dealer and both servers on this machine.

use super::dealer_server::{serve_dealer_on, DealerConfig, DealerReport};
use super::job::read_shares;
use super::job::{io_err, read_json};
use super::keys::keygen;
use super::net::{NetConfig, SessionId};
use super::owner::{reveal, share_job_sized};
use super::server::{
    owner_dense_shares, run_server_on, synthetic_inputs, Job, PeerLink, ServerConfig, ServerReport,
};
use super::training::{TrainServerConfig, TrainServerReport};
use super::PartyId;
use super::{reconstruct, ServerError};
use crate::train::result::MpcCost;
use crate::train::run::{training_softmax, TrainResult};
use crate::train::seq2seq::Seq2SeqDims;
use crate::train::TrainConfig;
use ringnn_core::{Plain, Z64};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
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

/// The `ringnn` binary that runs the dealer and the servers: `RINGNN_EXE` if set (a
/// library user or a test outside the binary), else this process's own executable.
///
/// # Errors
/// The executable's path cannot be found.
pub fn ringnn_exe() -> std::io::Result<PathBuf> {
    match std::env::var_os("RINGNN_EXE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe(),
    }
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

// Arguments of the child processes: the only place they are written.

/// The dealer process's arguments (after the binary name); `insecure_seed` is for
/// reproducible tests only (see `ringnn dealer --insecure-dealer-seed`).
pub fn dealer_args(
    listen: &str,
    keys: &Path,
    net: &NetConfig,
    insecure_seed: Option<u64>,
) -> Vec<String> {
    let mut v = strings(&[
        "dealer",
        "--listen",
        listen,
        "--keys",
        &keys.display().to_string(),
    ]);
    v.extend(net_args(net));
    if let Some(n) = insecure_seed {
        v.extend(strings(&["--insecure-dealer-seed", &n.to_string()]));
    }
    v
}

/// The arguments every server process takes, after its subcommand: party, the link to
/// the peer, the dealer, keys, session and timeout.
pub(crate) fn connection_args(
    party: PartyId,
    link: &PeerLink,
    dealer: &str,
    keys: &Path,
    net: &NetConfig,
) -> Vec<String> {
    let (flag, addr) = match link {
        PeerLink::Listen(a) => ("--listen", a),
        PeerLink::Connect(a) => ("--connect", a),
    };
    let mut v = strings(&[
        "--party",
        &party.index().to_string(),
        flag,
        addr,
        "--dealer",
        dealer,
        "--keys",
        &keys.display().to_string(),
    ]);
    v.extend(net_args(net));
    v
}

/// The session and connection flags of a dealer or server process.
pub(crate) fn net_args(net: &NetConfig) -> Vec<String> {
    strings(&[
        "--session",
        &net.session.to_string(),
        "--timeout-s",
        &net.timeout.as_secs().to_string(),
        "--wait-s",
        &net.wait.as_secs().to_string(),
        "--handshake-timeout-s",
        &net.handshake.as_secs().to_string(),
    ])
}

pub(crate) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A server process's arguments (after the binary name); `report` receives the
/// [`ServerReport`] as JSON.
pub fn dense_server_args(cfg: &ServerConfig, report: &Path) -> Vec<String> {
    let Job::DenseRelu {
        batch,
        inputs,
        outputs,
    } = cfg.job;
    let mut v = strings(&["mpc-server"]);
    v.extend(connection_args(
        cfg.party,
        &cfg.link,
        &cfg.dealer,
        &cfg.keys,
        &cfg.net,
    ));
    v.extend(strings(&[
        "--frac-bits",
        &cfg.frac_bits.to_string(),
        "--job",
        "dense-relu",
        "--batch",
        &batch.to_string(),
        "--inputs",
        &inputs.to_string(),
        "--outputs",
        &outputs.to_string(),
        "--shares",
        &cfg.shares.display().to_string(),
        "--out",
        &cfg.out.display().to_string(),
        "--report",
        &report.display().to_string(),
    ]));
    v
}

// The dense demo on this machine.

/// How [`run_local_mpc`] starts the dealer and the servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Three threads of this process (real TLS over loopback).
    Threads,
    /// Three child processes of this `ringnn` binary, with the arguments of
    /// [`super::launch::dealer_args`] and [`super::launch::dense_server_args`].
    Processes(PathBuf),
}

/// A local end-to-end run.
#[derive(Clone, Debug)]
pub struct LocalMpcJob {
    /// The computation.
    pub job: Job,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Seed of the synthetic data.
    pub data_seed: u64,
    /// Working directory for keys, share files and reports (created).
    pub dir: PathBuf,
    /// Threads or processes.
    pub launch: Launch,
}

/// The outcome of [`run_local_mpc`].
#[derive(Clone, Debug)]
pub struct LocalMpcReport {
    /// Both servers' reports.
    pub servers: [ServerReport; 2],
    /// The dealer's report (threads only; a dealer process reports nothing back).
    pub dealer: Option<DealerReport>,
    /// The reconstructed result.
    pub result: Vec<Z64>,
    /// The same job on `Plain`.
    pub plain: Vec<Z64>,
    /// Largest difference between `result` and `plain`, in ulp.
    pub max_ulp: i64,
}

/// Plays the owner, the dealer and both servers on this machine: keys, synthetic data,
/// shares, the run, reconstruction and comparison with `Plain`. See the [module
/// documentation](self).
///
/// # Errors
/// Any part failing (the first error is returned; with processes, a failed child's exit
/// status).
pub fn run_local_mpc(job: &LocalMpcJob) -> Result<LocalMpcReport, ServerError> {
    fs::create_dir_all(&job.dir).map_err(|e| ServerError::File {
        path: job.dir.clone(),
        what: e.to_string(),
    })?;
    let keys = job.dir.join("keys");
    keygen(&keys)?;
    let inputs = synthetic_inputs(&job.job, job.data_seed, job.frac_bits);
    let shares = owner_dense_shares(&job.dir, &inputs)?;
    let net = NetConfig::new(SessionId::random());
    let bind =
        |a: &str| TcpListener::bind(a).map_err(|e| ServerError::Config(format!("bind {a}: {e}")));
    let (dealer_l, p0_l) = (bind("127.0.0.1:0")?, bind("127.0.0.1:0")?);
    let addr = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.to_string())
            .map_err(|e| ServerError::Config(e.to_string()))
    };
    let (dealer_addr, p0_addr) = (addr(&dealer_l)?, addr(&p0_l)?);
    let cfg = |party: PartyId| ServerConfig {
        party,
        link: match party {
            PartyId::P0 => PeerLink::Listen(p0_addr.clone()),
            PartyId::P1 => PeerLink::Connect(p0_addr.clone()),
        },
        dealer: dealer_addr.clone(),
        keys: keys.clone(),
        net: net.clone(),
        frac_bits: job.frac_bits,
        job: job.job,
        shares: shares[party.index()].clone(),
        out: job.dir.join(format!("out{}.bin", party.index())),
    };
    let (c0, c1) = (cfg(PartyId::P0), cfg(PartyId::P1));
    let (servers, dealer) = match &job.launch {
        Launch::Threads => {
            let dcfg = DealerConfig {
                listen: dealer_addr.clone(),
                keys: keys.clone(),
                net: net.clone(),
                master_seed: None,
            };
            std::thread::scope(|s| {
                let d = s.spawn(|| serve_dealer_on(dealer_l, &dcfg));
                let h0 = s.spawn(|| run_server_on(&c0, Some(p0_l)));
                let h1 = s.spawn(|| run_server_on(&c1, None));
                let r0 = h0.join().expect("party 0 panicked");
                let r1 = h1.join().expect("party 1 panicked");
                let d = d.join().expect("dealer panicked");
                Ok::<_, ServerError>(([r0?, r1?], Some(d?)))
            })?
        }
        Launch::Processes(exe) => {
            // Release the ports for the children (another process could take one in
            // between: a rare failure, reported as a failed child).
            drop((dealer_l, p0_l));
            let reports = [job.dir.join("report0.json"), job.dir.join("report1.json")];
            let spawn = |args: Vec<String>, name: &str| spawn_prefixed(exe, args, name);
            let mut children = vec![
                (
                    "the dealer".to_string(),
                    spawn(dealer_args(&dealer_addr, &keys, &net, None), "dealer")?,
                ),
                (
                    "party 0".to_string(),
                    spawn(dense_server_args(&c0, &reports[0]), "party 0")?,
                ),
                (
                    "party 1".to_string(),
                    spawn(dense_server_args(&c1, &reports[1]), "party 1")?,
                ),
            ];
            let failed = wait_all(&mut children, net.timeout + Duration::from_secs(10));
            if !failed.is_empty() {
                return Err(ServerError::Process(failed.join("; ")));
            }
            let read = |p: &PathBuf| -> Result<ServerReport, ServerError> {
                let s = fs::read_to_string(p).map_err(|e| ServerError::File {
                    path: p.clone(),
                    what: e.to_string(),
                })?;
                serde_json::from_str(&s).map_err(|e| ServerError::File {
                    path: p.clone(),
                    what: e.to_string(),
                })
            };
            ([read(&reports[0])?, read(&reports[1])?], None)
        }
    };
    let y0 = read_shares(&c0.out)?;
    let y1 = read_shares(&c1.out)?;
    let result = reconstruct(&y0[0], &y1[0]);
    let mut p = Plain::with_frac_bits(job.frac_bits)
        .map_err(|e| ServerError::Config(format!("fractional bits: {e}")))?;
    let plain = match job.job.compute(&mut p, &inputs) {
        Ok(v) => v,
        Err(e) => match e {},
    };
    let max_ulp = result
        .iter()
        .zip(&plain)
        .map(|(&a, &b)| (a - b).to_signed().abs())
        .max()
        .unwrap_or(0);
    Ok(LocalMpcReport {
        servers,
        dealer,
        result,
        plain,
        max_ulp,
    })
}

// Secure training on this machine.

/// Arguments of a training server process (after the binary name).
pub fn train_server_args(cfg: &TrainServerConfig) -> Vec<String> {
    let mut v = strings(&["server"]);
    v.extend(connection_args(
        cfg.party,
        &cfg.link,
        &cfg.dealer,
        &cfg.keys,
        &cfg.net,
    ));
    v.extend(strings(&[
        "--job",
        &cfg.job.display().to_string(),
        "--shares",
        &cfg.shares.display().to_string(),
        "--out",
        &cfg.out.display().to_string(),
    ]));
    if let Some(c) = &cfg.checkpoint {
        v.extend(strings(&["--checkpoint", &c.display().to_string()]));
    }
    if cfg.resume {
        v.push("--resume".into());
    }
    v
}

/// `ringnn train --engine mpc`: shares the data as the owner, starts the dealer and both
/// servers as child processes of `exe` over loopback TLS, waits, and reveals the results.
///
/// The working folder is `cfg.checkpoint` (kept; `--resume` continues from the servers'
/// checkpoints in it) or a private temporary folder (mode 0700), removed afterwards, also
/// when the run fails or is stopped with Ctrl-C or SIGTERM (the children are stopped
/// first). Its path is printed on standard error while the run goes on. The children's
/// output is forwarded line by line, each line prefixed with its process's name.
///
/// # Errors
/// Bad data or configuration, a failed or interrupted process (naming it), or bad
/// outputs. `cfg.insecure_dealer_seed` fixes the dealer's randomness for reproducible tests:
/// anyone who knows it can unmask every message, so it is never for real data; it is
/// refused with `--resume`, which would reuse the dealer's masks on new values.
pub fn train_mpc(cfg: &TrainConfig, exe: &Path) -> Result<TrainResult, ServerError> {
    train_mpc_sized(cfg, Seq2SeqDims::default(), exe)
}

/// [`train_mpc`] with the encoder-decoder's sizes and text preparation `dims` (seq2seq;
/// ignored for the image models), as [`crate::train::seq2seq::train_seq2seq`] takes them.
///
/// # Errors
/// As [`train_mpc`].
pub fn train_mpc_sized(
    cfg: &TrainConfig,
    dims: Seq2SeqDims,
    exe: &Path,
) -> Result<TrainResult, ServerError> {
    cfg.validate()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    stop_on_signal();
    let temp;
    let dir = match &cfg.checkpoint {
        Some(d) => {
            eprintln!("ringnn: secure training in {} (kept)", d.display());
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("ringnn-mpc-")
                .tempdir()
                .map_err(|e| ServerError::Config(format!("a temporary folder: {e}")))?;
            eprintln!(
                "ringnn: secure training in {} (keys and shares; removed at the end)",
                temp.path().display()
            );
            temp.path().to_path_buf()
        }
    };
    let temporary = cfg.checkpoint.is_none();
    train_mpc_in(cfg, dims, exe, &dir).map(|mut r| {
        if temporary {
            r.checkpoint = None;
            if let Some(m) = &mut r.mpc {
                m.work_dir = None;
            }
        }
        r
    })
}

fn train_mpc_in(
    cfg: &TrainConfig,
    dims: Seq2SeqDims,
    exe: &Path,
    dir: &Path,
) -> Result<TrainResult, ServerError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let shared = share_job_sized(cfg, dims, dir)?;
    let keys = dir.join("keys");
    keygen(&keys)?;
    check_interrupted()?;
    let net = NetConfig::new(SessionId::random());
    let bind =
        |a: &str| TcpListener::bind(a).map_err(|e| ServerError::Config(format!("bind {a}: {e}")));
    let addr = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.to_string())
            .map_err(|e| ServerError::Config(e.to_string()))
    };
    let (dealer_addr, p0_addr) = {
        let (d, p) = (bind("127.0.0.1:0")?, bind("127.0.0.1:0")?);
        (addr(&d)?, addr(&p)?)
        // Both ports are released here for the children (another process could take one
        // in between: a rare failure, reported as a failed child).
    };
    let server = |party: PartyId| TrainServerConfig {
        party,
        link: match party {
            PartyId::P0 => PeerLink::Listen(p0_addr.clone()),
            PartyId::P1 => PeerLink::Connect(p0_addr.clone()),
        },
        dealer: dealer_addr.clone(),
        keys: keys.clone(),
        net: net.clone(),
        job: shared.job_file.clone(),
        shares: shared.shares[party.index()].clone(),
        out: dir.join(format!("server{}", party.index())).join("out"),
        checkpoint: Some(
            dir.join(format!("server{}", party.index()))
                .join("checkpoint"),
        ),
        resume: cfg.resume,
        progress: cfg.progress,
    };
    let servers = [server(PartyId::P0), server(PartyId::P1)];
    let mut children = vec![(
        "the dealer".to_string(),
        spawn_prefixed(
            exe,
            dealer_args(&dealer_addr, &keys, &net, cfg.insecure_dealer_seed),
            "dealer",
        )?,
    )];
    for s in &servers {
        let name = format!("server {}", s.party.index());
        let child = spawn_prefixed(exe, train_server_args(s), &name)?;
        children.push((name, child));
    }
    let failed = wait_all(&mut children, net.timeout + Duration::from_secs(10));
    if !failed.is_empty() {
        return Err(ServerError::Process(format!(
            "secure training failed: {}",
            failed.join("; ")
        )));
    }
    let reports: Vec<TrainServerReport> = servers
        .iter()
        .map(|s| read_json(&s.out.join("report.json")))
        .collect::<Result<_, _>>()?;
    let revealed = reveal(
        &shared.owner_file,
        [&servers[0].out, &servers[1].out],
        &dir.join("model"),
    )?;
    let job = &shared.job;
    let parameters = match job.seq2seq {
        Some(_) => job
            .seq2seq_model()
            .map_err(ServerError::Config)?
            .0
            .n_params(),
        None => job.net().map_err(ServerError::Config)?.n_params,
    };
    let r0 = &reports[0];
    let secs = reports.iter().map(|r| r.train_seconds).fold(0.0, f64::max);
    let steps = r0.steps.max(1);
    let tc = &job.config;
    Ok(TrainResult {
        model: tc.model.to_string(),
        data: tc.data.to_string(),
        engine: "mpc".into(),
        frac_bits: Some(tc.frac_bits.get()),
        exp: tc.exp.name().into(),
        tanh: job.seq2seq.map(|_| tc.tanh.name().into()),
        grad: tc.grad.name().into(),
        subtract_max: training_softmax(tc).subtract_max,
        epochs: tc.epochs,
        train_samples: job.train_samples,
        test_samples: job.test_samples,
        test_accuracy: revealed.test_accuracy,
        perplexity: revealed.perplexity,
        train_loss: f64::NAN,
        train_seconds: secs,
        samples_per_sec: r0.samples as f64 / secs.max(1e-9),
        overflow_count: 0,
        health: None,
        parameters,
        history: Vec::new(),
        checkpoint: Some(revealed.checkpoint),
        // Perplexity, not accuracy at chance, tells a sequence model's failure.
        diverged: match revealed.perplexity {
            Some(p) => !p.is_finite(),
            None => crate::train::result::diverged(
                revealed.test_accuracy,
                job.classes,
                f64::NAN,
                f64::NAN,
            ),
        },
        mpc: Some(MpcCost {
            bytes_sent: [reports[0].online_sent, reports[1].online_sent],
            rounds: r0.rounds,
            offline_bytes: [reports[0].offline_bytes, reports[1].offline_bytes],
            steps: r0.steps,
            bytes_per_step: [0, 1].map(|i| reports[i].train_sent as f64 / steps as f64),
            rounds_per_step: r0.train_rounds as f64 / steps as f64,
            online_samples_per_sec: reports
                .iter()
                .map(|r| r.online_samples as f64 / r.online_seconds.max(1e-9))
                .fold(f64::INFINITY, f64::min),
            offline_seconds: reports
                .iter()
                .map(|r| r.offline_seconds)
                .fold(0.0, f64::max),
            work_dir: Some(dir.to_path_buf()),
        }),
    })
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
