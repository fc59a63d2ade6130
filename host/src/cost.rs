//! What each approximation costs on the two-party engine (`ringnn cost`): rounds, online
//! bytes, the dealer's bytes and time, per batch of rows, at each precision.
//!
//! Each measurement runs the real protocols ([`crate::mpc::Mpc`]) for both parties in one
//! process, on two threads joined by an in-memory channel, with the dealer in process
//! ([`crate::mpc::run_in_process`]). Rounds and bytes are those of the networked run (the
//! protocols and their messages are the same; the TLS records and frame prefixes around
//! them are not counted) and are deterministic: they depend on shapes, never on values.
//! Seconds are this machine's wall time of the slower party without network or TLS: a
//! lower bound of a two-server run.
//!
//! Comparisons (ReLU, max-of-lines, hard tanh, the reciprocal's normalisation) use the
//! protocol [`CostConfig::comparison`] names, and every row says which: the
//! arithmetic-to-binary adder over the dealer's AND triples (`a2b`, the default) or the
//! dealer's FSS keys (`fss`; see [`crate::mpc::comparison`]).

use crate::mpc::job::JobSpec;
use crate::mpc::local::LocalMpc;
use crate::mpc::wire::Tag;
use crate::mpc::{run_in_process, Comparison, LocalConfig, OfflineStats, Traffic};
use crate::train::run::Trainer;
use crate::train::{DataKind, EngineKind, TrainConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ringnn_core::approx::{ExpApprox, SigmoidApprox, TanhApprox};
use ringnn_core::fixed::{Fixed, FracBits};
use ringnn_core::softmax::{softmax, softmax_scratch, Softmax};
use ringnn_core::{engine::generic, Engine, Z64};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// One thing to measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Function {
    /// Softmax rows of `cols` logits through an e^x approximation.
    Softmax {
        /// The e^x approximation.
        exp: ExpApprox,
        /// Logits per row.
        cols: usize,
        /// Subtract the row maximum first.
        subtract_max: bool,
    },
    /// Element-wise tanh.
    Tanh(TanhApprox),
    /// Element-wise sigmoid.
    Sigmoid(SigmoidApprox),
    /// The reciprocal alone (one per row, as softmax takes it).
    Reciprocal,
    /// One training step of a model (a batch of `rows` samples): forward, softmax
    /// cross-entropy with the exact gradient through `exp`, backward, SGD with momentum.
    Step {
        /// `mlp` or `lenet` (28x28 grey images) or `resnet20` (32x32 colour), 10 classes.
        model: &'static str,
        /// The e^x approximation inside softmax.
        exp: ExpApprox,
    },
}

/// The models [`Function::Step`] measures.
pub const MODELS: [&str; 3] = ["mlp", "lenet", "resnet20"];

impl Function {
    /// The function's family: `softmax`, `tanh`, `sigmoid`, `reciprocal`.
    pub fn family(&self) -> &'static str {
        match self {
            Function::Softmax { .. } => "softmax",
            Function::Tanh(_) => "tanh",
            Function::Sigmoid(_) => "sigmoid",
            Function::Reciprocal => "reciprocal",
            Function::Step { .. } => "step",
        }
    }

    /// The approximation's name.
    pub fn approx(&self) -> String {
        match self {
            Function::Softmax { exp, .. } => exp.name().to_string(),
            Function::Tanh(t) => t.name().to_string(),
            Function::Sigmoid(s) => s.name().to_string(),
            Function::Reciprocal => "newton".into(),
            Function::Step { model, exp } => format!("{model}/{}", exp.name()),
        }
    }

    /// Whether two parties can compute it: not with an `exact` approximation, which only
    /// the plaintext engines evaluate (the two-party engine would panic on it).
    pub fn mpc_ready(&self) -> bool {
        match self {
            Function::Softmax { exp, .. } | Function::Step { exp, .. } => exp.mpc_ready(),
            Function::Tanh(t) => t.mpc_ready(),
            Function::Sigmoid(s) => s.mpc_ready(),
            Function::Reciprocal => true,
        }
    }

    /// Elements per row.
    fn cols(&self) -> usize {
        match self {
            Function::Softmax { cols, .. } => *cols,
            Function::Step { .. } => 10,
            _ => 1,
        }
    }
}

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct CostRow {
    /// `softmax`, `tanh`, `sigmoid` or `reciprocal`.
    pub function: &'static str,
    /// The approximation (`pwl4`, `hard`, `secureml`, `newton`, ...).
    pub approx: String,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Rows in the batch.
    pub rows: usize,
    /// Elements per row (softmax: logits; otherwise 1).
    pub cols: usize,
    /// Softmax: the row maximum subtracted first.
    pub subtract_max: bool,
    /// The comparison protocol: `a2b` or `fss`.
    pub comparison: &'static str,
    /// Rounds (the same for both parties and any batch).
    pub rounds: u64,
    /// Online bytes each party sends for the batch.
    pub online_bytes: u64,
    /// Online bytes each party sends per row.
    pub online_bytes_per_row: f64,
    /// [`CostRow::online_bytes`] by protocol step (the frame's tag: `trunc`, `matmul`,
    /// `mul`, `masked_input`, ...; `other` for what was sent outside a step), steps that
    /// sent nothing left out.
    pub online_bytes_by_step: BTreeMap<&'static str, u64>,
    /// Bytes both parties receive from the dealer for the batch, their seeds left out:
    /// with `a2b` party 1's corrections (party 0 needs its seed only), with `fss` also
    /// both parties' keys.
    pub dealer_bytes: u64,
    /// The same material written out in full, per party (what a dealer without seeds
    /// would send each party).
    pub dealer_full_bytes: u64,
    /// Seconds of the slower party for the batch (in process: no network, no TLS).
    pub online_seconds: f64,
    /// The same per 1,000 rows.
    pub seconds_per_1000_rows: f64,
    /// Training steps with `--processes`: the online seconds of one step with the dealer
    /// and both servers as separate processes over TLS on loopback (the slower server;
    /// the step's dealer material at hand), see [`time_step_in_processes`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_online_seconds: Option<f64>,
    /// The same run's seconds per step producing the dealer's material (PRG expansion,
    /// and receiving the dealer's messages over TLS), before the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_dealer_seconds: Option<f64>,
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct CostConfig {
    /// The functions.
    pub functions: Vec<Function>,
    /// Fractional bits.
    pub frac_bits: Vec<FracBits>,
    /// Rows per batch.
    pub rows: usize,
    /// Seed of the inputs and the dealer.
    pub seed: u64,
    /// The comparison protocol.
    pub comparison: Comparison,
    /// Also time each mlp and LeNet training step with the dealer and both servers as
    /// processes of this binary ([`time_step_in_processes`]); ResNet-20's step keeps its
    /// in-process time only (it needs 32x32 colour images).
    pub processes: bool,
}

/// Inputs for `f`: logits ~ N(0, 2) clipped to ±8 (softmax), uniform on [-4, 4] (tanh,
/// sigmoid), row sums uniform on [0.5, 20] (reciprocal).
fn inputs(func: &Function, n: usize, fx: Fixed, seed: u64) -> Vec<Z64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let v: f64 = match func {
                Function::Softmax { .. } => {
                    let g: f64 = rng.sample(rand_distr::StandardNormal);
                    (2.0 * g).clamp(-8.0, 8.0)
                }
                Function::Reciprocal => rng.random_range(0.5..20.0),
                _ => rng.random_range(-4.0..4.0),
            };
            fx.encode(v).expect("inputs are in range")
        })
        .collect()
}

/// A training step's job: the model on synthetic-sized inputs, batch `rows`, f bits.
fn step_job(
    model: &str,
    exp: ExpApprox,
    f: FracBits,
    rows: usize,
    comparison: Comparison,
) -> Result<JobSpec, String> {
    let data = if model == "resnet20" {
        DataKind::Cifar10
    } else {
        DataKind::Mnist
    };
    step_job_on(model, data, exp, f, rows, comparison)
}

/// The job of one training step of `model` on `data`'s image shape and classes.
fn step_job_on(
    model: &str,
    data: DataKind,
    exp: ExpApprox,
    f: FracBits,
    rows: usize,
    comparison: Comparison,
) -> Result<JobSpec, String> {
    let (shape, classes) = data
        .image()
        .ok_or_else(|| format!("{}: not an image dataset", data.name()))?;
    let cfg = TrainConfig {
        model: model.parse()?,
        data,
        engine: EngineKind::Mpc,
        frac_bits: f,
        exp,
        epochs: 1,
        batch: rows,
        weight_decay: 5e-4,
        comparison,
        ..TrainConfig::default()
    };
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(JobSpec::new(&cfg, shape, classes, [rows, rows]))
}

/// What one training step costs on the two servers, counted (deterministic).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StepCount {
    /// Rounds.
    pub rounds: u64,
    /// Online bytes both servers send together.
    pub online_bytes: u64,
    /// Bytes both servers receive from the dealer, their seeds left out (with `a2b`
    /// party 1's alone).
    pub dealer_bytes: u64,
}

/// Counts one training step of the run configured by `cfg` (its model, dataset shape,
/// e^x, precision, batch, gradient and optimiser settings, comparison) on two servers, run on both
/// parties in process. The counts depend on shapes only, so they are those of every step
/// of the two-party run with this configuration.
///
/// # Errors
/// A model or approximation the two-party engine cannot run (exact e^x, seq2seq).
pub fn count_step(cfg: &TrainConfig) -> Result<StepCount, String> {
    let f = cfg.frac_bits;
    let fx = Fixed::new(f.get()).map_err(|e| e.to_string())?;
    let (shape, classes) = cfg
        .data
        .image()
        .ok_or_else(|| format!("{}: not an image dataset", cfg.data.name()))?;
    let tc = TrainConfig {
        engine: EngineKind::Mpc,
        epochs: 1,
        checkpoint: None,
        resume: false,
        progress: false,
        ..cfg.clone()
    };
    tc.validate().map_err(|e| e.to_string())?;
    let job = JobSpec::new(&tc, shape, classes, [tc.batch, tc.batch]);
    let (t, o, _) = step_on_both(&job, fx, 1)?;
    Ok(StepCount {
        rounds: t.rounds,
        online_bytes: 2 * t.sent,
        dealer_bytes: o.bytes,
    })
}

/// One training step of `job` on both parties: party 0's traffic, both parties' dealer
/// material, the slower party's seconds.
fn step_on_both(
    job: &JobSpec,
    fx: Fixed,
    seed: u64,
) -> Result<(Traffic, OfflineStats, f64), String> {
    let tc = &job.config;
    let net = job.net()?;
    let rows = tc.batch;
    let [xs, ys, ps, bs] = step_inputs(job, fx, seed)?;
    on_both_parties(tc.frac_bits, seed, tc.comparison, |e| {
        let i = e.party().index();
        let mut t =
            Trainer::new(tc, &net, 1, ps[i].clone(), bs[i].clone()).map_err(|e| e.to_string())?;
        let start = Instant::now();
        t.step(e, xs[i].clone(), &ys[i], rows)
            .map_err(|e| e.to_string())?;
        Ok(start.elapsed().as_secs_f64())
    })
}

/// A training step's inputs, shared: images uniform on [0, 1), one-hot labels, the
/// model's initial parameters and buffers.
fn step_inputs(job: &JobSpec, fx: Fixed, seed: u64) -> Result<[[Vec<Z64>; 2]; 4], String> {
    let net = job.net()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let px = job.channels * job.height * job.width;
    let enc = |v: f64| fx.encode(v).expect("in range");
    let batch = job.config.batch;
    let x: Vec<Z64> = (0..batch * px)
        .map(|_| enc(rng.random_range(0.0..1.0)))
        .collect();
    let mut y = vec![Z64::ZERO; batch * 10];
    for r in 0..batch {
        y[r * 10 + rng.random_range(0..10)] = enc(1.0);
    }
    let (p0, b0) = net.init(seed);
    let p: Vec<Z64> = p0.iter().map(|&v| enc(v)).collect();
    let b: Vec<Z64> = b0.iter().map(|&v| enc(v)).collect();
    let mut srng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    Ok([x, y, p, b].map(|t| crate::mpc::share(&t, &mut srng)))
}

/// Runs `func` on `x` (this party's share).
fn run_one(e: &mut LocalMpc, func: &Function, x: &[Z64], rows: usize) -> Result<(), String> {
    let n = x.len();
    let err = |e: crate::mpc::MpcError| e.to_string();
    match *func {
        Function::Step { .. } => unreachable!("steps are measured by measure_step"),
        Function::Softmax {
            exp,
            cols,
            subtract_max,
        } => {
            let cfg = Softmax { exp, subtract_max };
            let mut out = vec![Z64::ZERO; n];
            let mut s = vec![Z64::ZERO; softmax_scratch(cfg, rows, cols)];
            softmax(e, cfg, x, rows, cols, &mut out, &mut s).map_err(err)
        }
        Function::Tanh(t) => {
            let mut out = vec![Z64::ZERO; n];
            let mut s = vec![Z64::ZERO; t.scratch_len(n)];
            t.eval(e, x, &mut out, &mut s).map_err(err)
        }
        Function::Sigmoid(sg) => {
            let mut out = vec![Z64::ZERO; n];
            let mut s = vec![Z64::ZERO; sg.scratch_len(n)];
            sg.eval(e, x, &mut out, &mut s).map_err(err)
        }
        Function::Reciprocal => {
            let mut out = vec![Z64::ZERO; n];
            let mut s = vec![Z64::ZERO; generic::reciprocal_scratch(n)];
            e.reciprocal(x, &mut out, None, 0, &mut s).map_err(err)
        }
    }
}

/// Timed repetitions of each measurement; the median is reported.
pub const REPEATS: usize = 5;

/// Measures one function at one precision: counts from one run (they do not vary), the
/// median time of [`REPEATS`] (one run for a training step, which lasts seconds).
///
/// # Errors
/// What the engine reports (an exact function cannot run on shares).
pub fn measure(
    func: &Function,
    f: FracBits,
    rows: usize,
    seed: u64,
    comparison: Comparison,
) -> Result<CostRow, String> {
    if let Function::Step { model, exp } = *func {
        return measure_step(model, exp, f, rows, seed, comparison);
    }
    let mut first = measure_once(func, f, rows, seed, comparison)?;
    let mut secs = vec![first.online_seconds];
    for _ in 1..REPEATS {
        secs.push(measure_once(func, f, rows, seed, comparison)?.online_seconds);
    }
    secs.sort_by(f64::total_cmp);
    first.online_seconds = secs[REPEATS / 2];
    first.seconds_per_1000_rows = first.online_seconds * 1000.0 / rows as f64;
    Ok(first)
}

fn measure_once(
    func: &Function,
    f: FracBits,
    rows: usize,
    seed: u64,
    comparison: Comparison,
) -> Result<CostRow, String> {
    let fx = Fixed::new(f.get()).map_err(|e| e.to_string())?;
    let x = inputs(func, rows * func.cols(), fx, seed);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let shares = crate::mpc::share(&x, &mut rng);
    let (t, o, secs) = on_both_parties(f, seed, comparison, |e| {
        let start = Instant::now();
        run_one(e, func, &shares[e.party().index()], rows)?;
        Ok(start.elapsed().as_secs_f64())
    })?;
    Ok(row(func, f, rows, comparison, t, o, secs))
}

fn measure_step(
    model: &'static str,
    exp: ExpApprox,
    f: FracBits,
    rows: usize,
    seed: u64,
    comparison: Comparison,
) -> Result<CostRow, String> {
    let fx = Fixed::new(f.get()).map_err(|e| e.to_string())?;
    let job = step_job(model, exp, f, rows, comparison)?;
    let (t, o, secs) = step_on_both(&job, fx, seed)?;
    Ok(row(
        &Function::Step { model, exp },
        f,
        rows,
        comparison,
        t,
        o,
        secs,
    ))
}

/// Runs `body` as both parties in one process, with a dealer seeded from `seed` and the
/// comparison `comparison`; `body` times its own work. Returns the traffic of party 0
/// (both send the same), the dealer material both parties received during `body`
/// (seeds left out; with `a2b` party 0 receives none), and the slower party's seconds.
fn on_both_parties(
    f: FracBits,
    seed: u64,
    comparison: Comparison,
    body: impl Fn(&mut LocalMpc) -> Result<f64, String> + Sync,
) -> Result<(Traffic, OfflineStats, f64), String> {
    let mut dealer_seed = [0u8; 32];
    dealer_seed[..8].copy_from_slice(&seed.to_le_bytes());
    let cfg = LocalConfig {
        dealer_seed: Some(dealer_seed),
        comparison,
        ..LocalConfig::new(f)
    };
    type Measured = Result<(Traffic, OfflineStats, f64), String>;
    let [m0, m1]: [Measured; 2] = run_in_process(&cfg, |e: &mut LocalMpc| {
        let o0 = e.offline();
        let secs = body(e)?;
        let o1 = e.offline();
        let material = OfflineStats {
            requests: o1.requests - o0.requests,
            bytes: o1.bytes - o0.bytes,
            full_bytes: o1.full_bytes - o0.full_bytes,
        };
        Ok((e.traffic(), material, secs))
    });
    let ((t, o0, s0), (_, o1, s1)) = (m0?, m1?);
    let o = OfflineStats {
        requests: o1.requests,
        bytes: o0.bytes + o1.bytes,
        full_bytes: o1.full_bytes,
    };
    Ok((t, o, s0.max(s1)))
}

/// `t`'s bytes sent by protocol step (steps that sent nothing left out).
fn by_step(t: &Traffic) -> BTreeMap<&'static str, u64> {
    let named = Tag::ALL.map(|tag| (tag.name(), t.sent_by_tag[tag as usize]));
    [("other", t.sent_by_tag[0])]
        .into_iter()
        .chain(named)
        .filter(|&(_, b)| b > 0)
        .collect()
}

/// A measurement's row.
fn row(
    func: &Function,
    f: FracBits,
    rows: usize,
    comparison: Comparison,
    t: Traffic,
    o: OfflineStats,
    secs: f64,
) -> CostRow {
    CostRow {
        function: func.family(),
        approx: func.approx(),
        frac_bits: f.get(),
        rows,
        cols: func.cols(),
        subtract_max: matches!(
            func,
            Function::Softmax {
                subtract_max: true,
                ..
            }
        ),
        comparison: comparison.name(),
        rounds: t.rounds,
        online_bytes: t.sent,
        online_bytes_per_row: t.sent as f64 / rows as f64,
        online_bytes_by_step: by_step(&t),
        dealer_bytes: o.bytes,
        dealer_full_bytes: o.full_bytes,
        online_seconds: secs,
        seconds_per_1000_rows: secs * 1000.0 / rows as f64,
        process_online_seconds: None,
        process_dealer_seconds: None,
    }
}

/// Full training steps [`time_step_in_processes`] runs: the first records the step's
/// requests for the dealer's material, the others run with it produced beforehand and are
/// the ones timed.
pub const PROCESS_STEPS: usize = 4;

/// Times a training step of `model` (`mlp` or `lenet`, on ringnn's synthetic 28x28
/// digits) at batch `rows` with the real dealer and two servers, each its own process
/// (`exe`, the `ringnn` binary), over mutual TLS on loopback: [`PROCESS_STEPS`] steps of
/// one epoch, and the test predictions of one batch. Returns the online and the dealer
/// seconds per step of the steps whose material was produced beforehand, the slower
/// server's.
///
/// # Errors
/// A model without a 28x28 dataset (`resnet20`), or what the processes report.
pub fn time_step_in_processes(
    model: &str,
    exp: ExpApprox,
    f: FracBits,
    rows: usize,
    comparison: Comparison,
    exe: &std::path::Path,
) -> Result<(f64, f64), String> {
    if !matches!(model, "mlp" | "lenet") {
        return Err(format!(
            "{model}: timed in processes only on the synthetic 28x28 digits (mlp, lenet)"
        ));
    }
    let cfg = TrainConfig {
        model: model.parse()?,
        data: DataKind::Synthetic,
        engine: EngineKind::Mpc,
        frac_bits: f,
        exp,
        comparison,
        epochs: 1,
        batch: rows,
        weight_decay: 5e-4,
        train_limit: Some(rows * PROCESS_STEPS),
        test_limit: Some(rows),
        ..TrainConfig::default()
    };
    let r = crate::mpc::launch::train_mpc(&cfg, exe).map_err(|e| e.to_string())?;
    let c = r
        .mpc
        .ok_or_else(|| "the two-party run reported no cost".to_string())?;
    let timed = (PROCESS_STEPS - 1) as f64;
    if c.online_samples_per_sec <= 0.0 {
        return Err("no step ran with its material at hand".into());
    }
    Ok((
        rows as f64 / c.online_samples_per_sec,
        c.offline_seconds / timed,
    ))
}

/// Measures every function at every precision, in order.
///
/// # Errors
/// The first function that cannot run on shares, named.
pub fn run(cfg: &CostConfig) -> Result<Vec<CostRow>, String> {
    if let Some(func) = cfg.functions.iter().find(|f| !f.mpc_ready()) {
        return Err(format!(
            "{} {}: exact functions cannot be computed on secret shares; choose an approximation",
            func.family(),
            func.approx()
        ));
    }
    let exe = if cfg.processes {
        Some(crate::mpc::launch::ringnn_exe().map_err(|e| format!("the ringnn binary: {e}"))?)
    } else {
        None
    };
    let mut out = Vec::new();
    for func in &cfg.functions {
        for &f in &cfg.frac_bits {
            let what = || format!("{} {}", func.family(), func.approx());
            let mut row = measure(func, f, cfg.rows, cfg.seed, cfg.comparison)
                .map_err(|e| format!("{}: {e}", what()))?;
            if let (Some(exe), Function::Step { model, exp }) = (&exe, *func) {
                if matches!(model, "mlp" | "lenet") {
                    let (online, dealer) =
                        time_step_in_processes(model, exp, f, cfg.rows, cfg.comparison, exe)
                            .map_err(|e| format!("{}: {e}", what()))?;
                    row.process_online_seconds = Some(online);
                    row.process_dealer_seconds = Some(dealer);
                }
            }
            out.push(row);
        }
    }
    Ok(out)
}

/// The rows as an aligned text table.
pub fn table(rows: &[CostRow]) -> String {
    let mut s = format!(
        "{:<10} {:<14} {:>3} {:>5} {:>4} {:>4} {:>6} {:>12} {:>10} {:>12} {:>10}\n",
        "function",
        "approx",
        "f",
        "rows",
        "cols",
        "max",
        "rounds",
        "online B",
        "B/row",
        "dealer B",
        "s/1k rows"
    );
    for r in rows {
        s.push_str(&format!(
            "{:<10} {:<14} {:>3} {:>5} {:>4} {:>4} {:>6} {:>12} {:>10.0} {:>12} {:>10.4}\n",
            r.function,
            r.approx,
            r.frac_bits,
            r.rows,
            r.cols,
            if r.subtract_max { "yes" } else { "no" },
            r.rounds,
            r.online_bytes,
            r.online_bytes_per_row,
            r.dealer_bytes,
            r.seconds_per_1000_rows
        ));
    }
    let timed: Vec<&CostRow> = rows
        .iter()
        .filter(|r| r.process_online_seconds.is_some())
        .collect();
    if !timed.is_empty() {
        s.push_str(&format!(
            "\n{:<20} {:>3} {:>5} {:>16} {:>16}\n",
            "step (processes)", "f", "rows", "online s/step", "dealer s/step"
        ));
        for r in timed {
            s.push_str(&format!(
                "{:<20} {:>3} {:>5} {:>16.4} {:>16.4}\n",
                r.approx,
                r.frac_bits,
                r.rows,
                r.process_online_seconds.unwrap_or(f64::NAN),
                r.process_dealer_seconds.unwrap_or(f64::NAN)
            ));
        }
    }
    let steps: Vec<&CostRow> = rows.iter().filter(|r| r.function == "step").collect();
    if !steps.is_empty() {
        s.push_str("\nwhere a step's online bytes go (per party, by protocol step)\n");
        for r in steps {
            let mut parts: Vec<(&str, u64)> = r
                .online_bytes_by_step
                .iter()
                .map(|(&k, &b)| (k, b))
                .collect();
            parts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let shares: Vec<String> = parts
                .iter()
                .map(|(k, b)| {
                    let pct = 100.0 * *b as f64 / r.online_bytes.max(1) as f64;
                    format!("{k} {pct:.1}%")
                })
                .collect();
            s.push_str(&format!(
                "{:<20} {:>3} {}: {}\n",
                r.approx,
                r.frac_bits,
                r.comparison,
                shares.join(", ")
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f13() -> FracBits {
        FracBits::new(13).unwrap()
    }

    /// Rounds and bytes are deterministic and depend on shapes only: pinned here so that a
    /// change of any protocol's cost shows. The pwl4 softmax row's rounds are those of
    /// docs/performance.md.
    #[test]
    fn costs_are_deterministic_and_pinned() {
        let sm = |exp, cols, subtract_max| Function::Softmax {
            exp,
            cols,
            subtract_max,
        };
        // (function, rounds, online bytes per party, dealer bytes to party 1) for 16
        // rows at f = 13, as measured on 2026-12-06; the bytes again on 2026-12-07, when
        // the reciprocal came to shift by its secret bit length with three products
        // instead of selecting among 63 shifted candidates (it was 93,096 and 74,368; the
        // softmax rows 131,888 and 101,480 for pwl4, 117,312 and 91,680 for taylor2,
        // 109,600 and 84,000 for secureml, 130,392 and 110,120 for limit8); and again
        // when its linear guess and Newton steps gave way to 128 pieces, whose 127
        // comparisons at 15 bits cost the adder one round less and 1,072 bytes more per
        // row (51, 90,416 and 65,000 for pwl4; 44, 75,840 and 55,200 for taylor2; 40,
        // 68,128 and 47,520 for secureml; 48, 88,920 and 73,640 for limit8; 21, 49,960
        // and 34,560 for the reciprocal); and again when the empty-row test came from the
        // reciprocal's first range comparison (50, 107,560 and 89,064 for pwl4; 43,
        // 92,984 and 79,264 for taylor2; 39, 85,272 and 71,584 for secureml; 47, 106,064
        // and 97,704 for limit8).
        let cases = [
            (sm(ExpApprox::Pwl(4), 10, false), 42, 104_592, 87_104),
            (sm(ExpApprox::Taylor(2), 10, false), 35, 90_016, 77_304),
            (sm(ExpApprox::SecureMl, 10, false), 31, 82_304, 69_624),
            (sm(ExpApprox::Limit8, 10, false), 39, 103_096, 95_744),
            (Function::Tanh(TanhApprox::Hard), 10, 3_496, 2_216),
            (Function::Reciprocal, 20, 67_104, 58_624),
        ];
        for (func, rounds, bytes, dealer) in cases {
            let a = measure_once(&func, f13(), 16, 1, Comparison::A2b).unwrap();
            assert_eq!(
                (a.rounds, a.online_bytes, a.dealer_bytes),
                (rounds, bytes, dealer),
                "{func:?}: the cost moved; if on purpose, update docs/performance.md too"
            );
            let b = measure_once(&func, f13(), 16, 2, Comparison::A2b).unwrap();
            assert_eq!(
                (a.rounds, a.online_bytes, a.dealer_bytes),
                (b.rounds, b.online_bytes, b.dealer_bytes),
                "{func:?}: cost depends on values"
            );
            // The breakdown by protocol step accounts for every byte, and nothing is
            // sent outside a tagged step.
            let steps: u64 = a.online_bytes_by_step.values().sum();
            assert_eq!(
                steps, a.online_bytes,
                "{func:?}: {:?}",
                a.online_bytes_by_step
            );
            assert!(!a.online_bytes_by_step.contains_key("other"), "{func:?}");
            // Rounds do not grow with the batch; bytes grow with it.
            let c = measure_once(&func, f13(), 64, 1, Comparison::A2b).unwrap();
            assert_eq!(c.rounds, a.rounds, "{func:?}");
            assert!(c.online_bytes > a.online_bytes, "{func:?}");
        }
        // A training step: rounds do not grow with the batch.
        let step = Function::Step {
            model: "mlp",
            exp: ExpApprox::Pwl(4),
        };
        let (s8, s16) = (
            measure(&step, f13(), 8, 1, Comparison::A2b).unwrap(),
            measure(&step, f13(), 16, 1, Comparison::A2b).unwrap(),
        );
        assert_eq!(s8.rounds, s16.rounds);
        assert!(s16.online_bytes > s8.online_bytes && s8.dealer_bytes > 0);
        // The pwl4 softmax row at f = 16: 47 rounds (55 of docs/performance.md before the
        // empty-row test came from the reciprocal's first range comparison).
        let p16 = measure_once(
            &sm(ExpApprox::Pwl(4), 10, false),
            FracBits::new(16).unwrap(),
            8,
            1,
            Comparison::A2b,
        );
        assert_eq!(p16.unwrap().rounds, 47);
    }

    /// A LeNet training step at batch 2 on both comparisons, pinned: (rounds, online
    /// bytes per party) as measured on 2026-12-07, after max pooling came to keep its
    /// tree's bits and, on FSS, to compare with one ReLU gate, and after the SGD update
    /// came to round twice instead of four times (two truncations of the 33,543
    /// parameters fewer: 536,688 bytes and 2 rounds; it was a2b 274 and 3,947,248, fss 90
    /// and 2,551,104), and after the weight gradients came to enter the update unscaled
    /// (no truncation of their own: one per layer's weights, 4 rounds; it was a2b 272 and
    /// 3,410,560, fss 88 and 2,014,416), and after the adder came to compare ReLU and max
    /// pooling at the reduced width with the ReLU's backward bit in the forward's batch
    /// (a2b 268 and 3,143,328 before; docs/performance.md), and after the SGD step came
    /// to take the velocity and `lr v` from one opening (a2b 244 and 2,944,872, fss 84
    /// and 1,747,184 before: one truncation of the parameters and one round fewer), and
    /// after the reciprocal came to shift by its bit length with three products (a2b
    /// 2,676,528 and fss 1,478,840 bytes before; the rounds unchanged), and after its
    /// linear guess and Newton steps gave way to 128 pieces (a2b 243 and 2,666,160, fss
    /// 83 and 1,468,472 before: the two reciprocals of a step, 7 rounds each on FSS), and
    /// after the empty-row tests came from the reciprocals' first range comparisons (a2b
    /// 241 and 2,670,432, fss 69 and 1,467,944 before: two comparisons and the ratio's
    /// mask product fewer).
    #[test]
    fn a_lenet_step_is_pinned_on_both_comparisons() {
        let step = Function::Step {
            model: "lenet",
            exp: ExpApprox::Pwl(4),
        };
        for (cmp, rounds, bytes) in [
            (Comparison::A2b, 224, 2_664_456),
            (Comparison::Fss, 66, 1_467_856),
        ] {
            let m = measure(&step, f13(), 2, 1, cmp).unwrap();
            assert_eq!(
                (m.rounds, m.online_bytes),
                (rounds, bytes),
                "{cmp}: the cost moved; if on purpose, update docs/performance.md too"
            );
        }
    }

    /// With the FSS comparison every comparison level costs one round instead of eight:
    /// the pwl4 softmax row of 10 fell from 51 rounds (f = 13; 55 at f = 16) to 23 (27)
    /// with the adder's four comparison levels at one round each; the rest are products,
    /// truncations and the reciprocal's Newton steps. Online bytes fall by about half;
    /// the dealer's bytes grow about 48-fold (a 1613-byte key per comparison and party).
    #[test]
    fn the_fss_comparison_cuts_the_rounds_and_says_so() {
        let sm = |exp| Function::Softmax {
            exp,
            cols: 10,
            subtract_max: false,
        };
        for f in [f13(), FracBits::new(16).unwrap()] {
            let a = measure_once(&sm(ExpApprox::Pwl(4)), f, 16, 1, Comparison::A2b).unwrap();
            let b = measure_once(&sm(ExpApprox::Pwl(4)), f, 16, 1, Comparison::Fss).unwrap();
            println!(
                "pwl4 softmax, 10 columns, f = {}: a2b {} rounds, {} B online, {} B dealer; \
                 fss {} rounds, {} B online, {} B dealer",
                f.get(),
                a.rounds,
                a.online_bytes,
                a.dealer_bytes,
                b.rounds,
                b.online_bytes,
                b.dealer_bytes
            );
            assert_eq!((a.comparison, b.comparison), ("a2b", "fss"));
            assert_eq!(b.rounds, ROUNDS_PWL4_FSS[usize::from(f.get() == 16)]);
            assert!(b.online_bytes < a.online_bytes);
            assert!(b.dealer_bytes > a.dealer_bytes);
            // Deterministic: another seed, the same counts.
            let c = measure_once(&sm(ExpApprox::Pwl(4)), f, 16, 2, Comparison::Fss).unwrap();
            assert_eq!(
                (b.rounds, b.online_bytes, b.dealer_bytes),
                (c.rounds, c.online_bytes, c.dealer_bytes)
            );
        }
        // A training step: ReLU's forward is one round on the dealer's ReLU keys (it was
        // a comparison and a select, 2 rounds) and keeps the derivative bit, so the
        // backward is one select (it was a comparison and a select); max-of-lines is one
        // spline gate; a dense layer's backward pass is one opening; the SGD update is one
        // opening for two truncations and takes the weight gradients unscaled; the
        // reciprocal's pieces are one spline gate and it flags the empty rows: the
        // mlp/pwl4 step takes 52 rounds, whatever the (power-of-two) batch.
        let step = Function::Step {
            model: "mlp",
            exp: ExpApprox::Pwl(4),
        };
        let s = measure(&step, f13(), 8, 1, Comparison::Fss).unwrap();
        assert_eq!(s.rounds, ROUNDS_MLP_PWL4_STEP_FSS);
    }

    /// Rounds of the pwl4 softmax row of 10 with the FSS comparison, at f = 13 and 16
    /// (measured 2026-12-06 with the spline gate, which took them from 23 and 27; 19 and
    /// 23 until 2026-12-07, when the reciprocal's pieces, one spline gate, replaced its
    /// linear guess and Newton steps: none left at f = 13, one at f = 16; 12 and 16
    /// until the empty-row test came from the reciprocal's first range comparison).
    const ROUNDS_PWL4_FSS: [u64; 2] = [11, 15];

    /// Rounds of an mlp/pwl4 training step with the FSS comparison, f = 13 (measured
    /// 2026-12-06: 97 with ReLU on the dealer's ReLU keys, 77 with the spline gate, 75
    /// with masks reused within a step; 2026-12-07: 73 with the SGD update in two
    /// truncations, 70 with the weight gradients unscaled into it, 69 with
    /// the velocity and the step from one opening, 55 with the reciprocal's pieces, 52
    /// with the empty-row tests from its range comparisons; docs/performance.md).
    const ROUNDS_MLP_PWL4_STEP_FSS: u64 = 52;

    #[test]
    fn exact_functions_are_refused_naming_them() {
        let cfg = CostConfig {
            functions: vec![Function::Softmax {
                exp: ExpApprox::Exact,
                cols: 10,
                subtract_max: false,
            }],
            frac_bits: vec![f13()],
            rows: 4,
            seed: 1,
            comparison: Comparison::A2b,
            processes: false,
        };
        let err = run(&cfg).unwrap_err();
        assert!(err.contains("softmax exact"), "{err}");
    }
}
