//! The precision study: many training runs over a grid of models, datasets, e^x/tanh
//! approximations, precisions and seeds (`ringnn sweep`), and the paper's tables
//! reproduced (`ringnn reproduce`).
//!
//! A single `ringnn train` answers one question; the study's questions ("which
//! approximation keeps accuracy?", "how many fractional bits are enough?") need the same
//! run repeated across a grid and over seeds, survive interruptions, and end in a table and
//! plots. This module is that layer and nothing else: training itself is
//! [`crate::train::train`].
//!
//! - [`grid`]: the grid, each combination validated into a `TrainConfig` up front.
//! - [`store`]: `runs.jsonl` and `runs.csv`, appended and flushed per run; a restart
//!   skips the keys already done.
//! - [`report`]: `table.md` (rows: approximations; columns: model x precision, the
//!   two-party runs beside the plaintext ones; mean ± standard deviation over seeds; the
//!   two-party runs' bytes and rounds per step).
//! - [`plots`]: accuracy per approximation, accuracy vs fractional bits, loss curves.
//! - [`paper`]: the paper's Table 2 and Table 3 as data.
//! - [`reproduce`]: the paper's setups at a quick and a full scale.
//!
//! # Parallelism
//! Runs go to a small pool of worker threads ([`default_jobs`]). Each run already spreads
//! its matrix products over every core (rayon), so on two cores one run at a time is
//! fastest; on bigger machines half as many runs as cores keeps the cores busy through the
//! parts of a training step that are not matrix products. A run that fails (an error or a
//! panic) is recorded with its message and the sweep goes on.

pub mod decision;
pub mod grid;
pub mod paper;
pub mod plots;
pub mod report;
pub mod reproduce;
pub mod store;
pub mod summary;

use crate::cost::StepCount;
use crate::train::{TrainConfig, TrainResult};
use grid::{Precision, RunSpec};
use paper::PaperTable;
use report::{Notes, Summary};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;
use store::{Store, StoreError};

/// A validated sweep.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// Every run, in order.
    pub runs: Vec<RunSpec>,
    /// The output folder.
    pub out: PathBuf,
    /// Runs at a time.
    pub jobs: usize,
    /// Title and setup lines of `table.md`.
    pub notes: Notes,
    /// The paper's figures to show beside the measured ones.
    pub paper: Option<&'static PaperTable>,
    /// Run only shard `k` of `n` (1-based): the runs whose place in [`SweepConfig::runs`]
    /// is `k - 1` modulo `n`. The table still lists the whole grid.
    pub shard: Option<(usize, usize)>,
    /// Other sweep folders (shards) whose finished runs are copied into this one's store
    /// first, so that one table covers them all.
    pub merge: Vec<PathBuf>,
    /// The comparison protocol of the counted costs (the two-party runs carry theirs in
    /// their configurations).
    pub comparison: crate::mpc::Comparison,
}

/// Runs at a time by default: 1 on up to 2 cores (each run uses every core for its matrix
/// products already), else half the cores.
pub fn default_jobs() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores <= 2 {
        1
    } else {
        cores / 2
    }
}

/// Checks that `dir` can hold the sweep's files: creates it, writes and removes a probe
/// file.
///
/// # Errors
/// A message naming the folder and the reason.
pub fn check_out_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the output folder {}: {e}", dir.display()))?;
    // A probe file, removed when dropped.
    tempfile::Builder::new()
        .prefix(".ringnn-probe-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("cannot write into the output folder {}: {e}", dir.display()))
}

/// Errors that stop a sweep (a failing run does not: it is recorded).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Every run of the grid failed: there is nothing to compare or plot.
    #[error("all {failed} runs failed (their errors are in {}); the first: {first}", .table.display())]
    AllFailed {
        /// Runs that failed.
        failed: usize,
        /// `table.md`, which lists every failure.
        table: PathBuf,
        /// The first run's error.
        first: String,
    },
    /// The run store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// `table.md` could not be written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What a sweep did and wrote.
#[derive(Clone, Debug)]
pub struct SweepReport {
    /// Runs in the grid.
    pub total: usize,
    /// Runs skipped because `runs.jsonl` already had them as `ok`.
    pub skipped: usize,
    /// Runs trained now that finished.
    pub ok: usize,
    /// Runs trained now that failed.
    pub failed: usize,
    /// `table.md`.
    pub table: PathBuf,
    /// Its contents.
    pub table_md: String,
    /// The plot files.
    pub plots: Vec<PathBuf>,
    /// Plots left out, and why.
    pub plots_skipped: Vec<String>,
}

/// Models whose training step [`count_costs`] counts: the others (ResNets: minutes per
/// step in process; seq2seq: not on two servers) show the costs of their two-party runs
/// only.
const COUNTED_MODELS: [&str; 2] = ["mlp", "lenet"];

/// Counts one two-party training step for every `Plain` and two-party cell of a counted
/// model with an e^x the servers can compute, at the cell's precision and batch
/// ([`crate::cost::count_step`]: deterministic, so once per configuration). A count that
/// fails is said in `log` and left out.
fn count_costs(
    sum: &mut Summary,
    specs: &[RunSpec],
    comparison: crate::mpc::Comparison,
    log: &mut dyn Write,
) {
    let mut done: Vec<(TrainConfig, StepCount)> = Vec::new();
    for s in specs {
        if matches!(s.precision, Precision::Float) {
            continue;
        }
        let tc = &s.config;
        if !COUNTED_MODELS.contains(&s.model.as_str()) || !tc.exp.mpc_ready() {
            continue;
        }
        // The count depends on the configuration, not on the seed or the engine.
        let key = TrainConfig {
            seed: 0,
            engine: crate::train::EngineKind::Mpc,
            comparison,
            ..tc.clone()
        };
        let count = match done.iter().find(|(k, _)| *k == key) {
            Some((_, c)) => *c,
            None => match crate::cost::count_step(&key) {
                Ok(c) => {
                    done.push((key, c));
                    c
                }
                Err(e) => {
                    let _ = writeln!(log, "cost of {} left out: {e}", describe(s));
                    continue;
                }
            },
        };
        let i = sum
            .approx
            .iter()
            .position(|a| a.0 == s.exp && a.1 == s.tanh);
        let j = sum
            .columns
            .iter()
            .position(|c| c.data == s.data && c.model == s.model && c.precision == s.precision);
        if let (Some(i), Some(j)) = (i, j) {
            sum.cells[i][j].counted = Some(count);
        }
    }
}

/// The record of one run: the run's identity, `status` and `error`, then every field of
/// the [`TrainResult`] (through `serde_json`, so fields added later travel too).
fn record(spec: &RunSpec, outcome: &Result<TrainResult, String>, wall: f64) -> Map<String, Value> {
    let mut m = Map::new();
    if let Ok(r) = outcome {
        if let Ok(Value::Object(fields)) = serde_json::to_value(r) {
            m.extend(fields);
        }
    }
    m.insert("key".into(), spec.key.clone().into());
    m.insert(
        "status".into(),
        if outcome.is_ok() { "ok" } else { "error" }.into(),
    );
    m.insert(
        "error".into(),
        outcome
            .as_ref()
            .err()
            .map_or(Value::Null, |e| e.clone().into()),
    );
    m.insert("model".into(), spec.model.clone().into());
    m.insert("data".into(), spec.data.clone().into());
    let (engine, frac) = spec.precision.engine();
    m.insert("engine".into(), engine.into());
    m.insert("frac_bits".into(), frac.map_or(Value::Null, Value::from));
    if let Ok(TrainResult { mpc: Some(c), .. }) = outcome {
        // Flat figures for the CSV and the table: both servers' online bytes per step.
        m.insert(
            "mpc_bytes_per_step".into(),
            (c.bytes_per_step[0] + c.bytes_per_step[1]).into(),
        );
        m.insert("mpc_rounds_per_step".into(), c.rounds_per_step.into());
    }
    m.insert("exp".into(), spec.exp.clone().into());
    m.insert("tanh".into(), spec.tanh.clone().into());
    m.insert("seed".into(), spec.seed.into());
    m.entry("grad").or_insert(spec.config.grad.name().into());
    m.entry("epochs").or_insert(spec.config.epochs.into());
    m.insert("wall_seconds".into(), wall.into());
    m
}

/// Copies every finished (`ok`) record of the `cfg.merge` folders whose key this store
/// lacks into it.
fn merge_stores(cfg: &SweepConfig, log: &mut dyn Write) -> Result<(), SweepError> {
    if cfg.merge.is_empty() {
        return Ok(());
    }
    let (mine, _) = store::read_records(&cfg.out)?;
    let mut have: HashSet<String> = mine
        .iter()
        .filter(|v| v.get("status").and_then(Value::as_str) == Some("ok"))
        .filter_map(|v| v.get("key").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut st = Store::open(&cfg.out)?;
    for dir in &cfg.merge {
        let (records, bad) = store::read_records(dir)?;
        let mut copied = 0;
        for v in records {
            let ok = v.get("status").and_then(Value::as_str) == Some("ok");
            let Some(key) = v.get("key").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            if ok && !have.contains(&key) {
                if let Value::Object(m) = v {
                    st.append(&m)?;
                    have.insert(key);
                    copied += 1;
                }
            }
        }
        let _ = writeln!(
            log,
            "sweep: merged {copied} finished run(s) from {}{}",
            dir.join(store::JSONL).display(),
            if bad > 0 {
                format!(" ({bad} unreadable line(s) skipped)")
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".into()
    }
}

fn train_one(spec: &RunSpec) -> Result<TrainResult, String> {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::train::train(&spec.config)
    }));
    match run {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(panic_message(p)),
    }
}

fn describe(spec: &RunSpec) -> String {
    format!(
        "{} {} {} exp={} tanh={} seed={}",
        spec.model,
        spec.data,
        spec.precision.label(),
        spec.exp,
        spec.tanh,
        spec.seed
    )
}

/// Runs the sweep: every run of `cfg` not yet recorded as `ok` in `cfg.out/runs.jsonl`,
/// `cfg.jobs` at a time, each appended to the store as it finishes; then writes
/// `table.md` and the plots. Progress lines go to `log`.
///
/// # Errors
/// The store, the table or a plot cannot be written (failed runs are recorded instead).
pub fn run(cfg: &SweepConfig, log: &mut dyn Write) -> Result<SweepReport, SweepError> {
    merge_stores(cfg, log)?;
    let (records, bad) = store::read_records(&cfg.out)?;
    if bad > 0 {
        let _ = writeln!(
            log,
            "note: {bad} unreadable line(s) in {} skipped (a run cut short?)",
            cfg.out.join(store::JSONL).display()
        );
    }
    let done: HashSet<&str> = records
        .iter()
        .filter(|v| v.get("status").and_then(Value::as_str) == Some("ok"))
        .filter_map(|v| v.get("key").and_then(Value::as_str))
        .collect();
    let mine = |i: usize| cfg.shard.is_none_or(|(k, n)| i % n == k - 1);
    let todo: Vec<&RunSpec> = cfg
        .runs
        .iter()
        .enumerate()
        .filter(|&(i, s)| mine(i) && !done.contains(s.key.as_str()))
        .map(|(_, s)| s)
        .collect();
    let skipped = cfg
        .runs
        .iter()
        .enumerate()
        .filter(|&(i, _)| mine(i))
        .count()
        - todo.len();
    if let Some((k, n)) = cfg.shard {
        let _ = writeln!(log, "sweep: shard {k}/{n} of the grid");
    }
    let jobs = cfg.jobs.clamp(1, todo.len().max(1));
    let _ = writeln!(
        log,
        "sweep: {} runs, {skipped} already in {}, {} to run, {jobs} at a time",
        cfg.runs.len(),
        cfg.out.join(store::JSONL).display(),
        todo.len()
    );
    let mut st = Store::open(&cfg.out)?;
    let (mut ok, mut failed) = (0, 0);
    let mut first_error = None;
    if !todo.is_empty() {
        let next = AtomicUsize::new(0);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| -> Result<(), SweepError> {
            for _ in 0..jobs {
                let tx = tx.clone();
                let (next, todo) = (&next, &todo);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = todo.get(i) else { break };
                    let start = Instant::now();
                    let outcome = train_one(spec);
                    if tx
                        .send((i, outcome, start.elapsed().as_secs_f64()))
                        .is_err()
                    {
                        break;
                    }
                });
            }
            drop(tx);
            for (n, (i, outcome, wall)) in rx.into_iter().enumerate() {
                let spec = todo[i];
                st.append(&record(spec, &outcome, wall))?;
                let what = match &outcome {
                    Ok(r) => {
                        ok += 1;
                        let ppl = serde_json::to_value(r)
                            .ok()
                            .and_then(|v| v.get("perplexity").and_then(Value::as_f64));
                        match ppl {
                            Some(p) => format!("perplexity {p:.2}"),
                            None => format!("test accuracy {:.2}%", 100.0 * r.test_accuracy),
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                        format!("FAILED: {e}")
                    }
                };
                let _ = writeln!(
                    log,
                    "[{}/{}] {}: {what} ({wall:.1} s)",
                    n + 1,
                    todo.len(),
                    describe(spec)
                );
            }
            Ok(())
        })?;
    }
    let (records, _) = store::read_records(&cfg.out)?;
    let mut sum = Summary::new(&cfg.runs, &records);
    count_costs(&mut sum, &cfg.runs, cfg.comparison, log);
    let table_md = report::table_md(&sum, &cfg.notes, cfg.paper);
    let table = cfg.out.join("table.md");
    std::fs::write(&table, &table_md).map_err(|source| SweepError::Io {
        path: table.clone(),
        source,
    })?;
    if ok + skipped == 0 && failed > 0 {
        return Err(SweepError::AllFailed {
            failed,
            table,
            first: first_error.unwrap_or_default(),
        });
    }
    let (plots, plots_skipped) = plots::write_all(&cfg.out, &sum, cfg.paper)?;
    Ok(SweepReport {
        total: cfg.runs.len(),
        skipped,
        ok,
        failed,
        table,
        table_md,
        plots,
        plots_skipped,
    })
}
