//! The `ringnn` command line: raw arguments are parsed (clap) and then validated into a
//! configuration before anything runs, so that every mistake is reported up front with
//! the valid choices.

use crate::study::{self, Func, Precision, StudyConfig};
use clap::{Args, Parser, Subcommand};
use ringnn_core::approx::{ExpApprox, SigmoidApprox, TanhApprox};
use ringnn_core::FracBits;
use std::io::Write;
use std::path::{Path, PathBuf};

mod cost;
pub use cost::{cost, CostArgs};

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
    /// quick scale (about 30 minutes on 2 cores) or the paper's full scale, with the
    /// paper's figures beside the measured ones.
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

/// Arguments of `ringnn train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model: mlp, lenet, resnet20, resnet32, resnet18, seq2seq (with --data tatoeba).
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Data: synthetic (built in), mnist, cifar10, cifar100, tatoeba.
    #[arg(long, default_value = "synthetic")]
    pub data: String,
    /// Folder with the datasets (else RINGNN_DATA).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Engine: plain (Z_2^64 fixed point), float (f32), or mpc (two servers on secret
    /// shares with a dealer, started as local processes over TLS; image models only).
    #[arg(long, default_value = "plain")]
    pub engine: String,
    /// Fractional bits of the plain engine (1..=40).
    #[arg(long = "frac-bits", default_value_t = 13)]
    pub frac_bits: u32,
    /// e^x approximation inside softmax.
    #[arg(long, default_value = "pwl4")]
    pub exp: String,
    /// tanh approximation (recurrent models).
    #[arg(long, default_value = "hard")]
    pub tanh: String,
    /// sigmoid approximation (recurrent models): secureml, exp, exact.
    #[arg(long, default_value = "secureml")]
    pub sigmoid: String,
    /// Softmax cross-entropy gradient: exact (derivative of the approximation) or
    /// surrogate (p - y).
    #[arg(long, default_value = "exact")]
    pub grad: String,
    /// Subtract each row's maximum before e^x (always done for `--exp exact`).
    #[arg(long = "subtract-max")]
    pub subtract_max: bool,
    /// Epochs.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Learning rate (0.05: at 0.1 the exact gradient through pwl4 and other
    /// approximations that reach 0 diverged in 5 of 24 short MNIST runs, docs/results.md).
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay.
    #[arg(long = "weight-decay", default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate schedule: constant, cosine, or step:S1,S2,... (divide by 10 at
    /// those steps).
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use at most N training samples.
    #[arg(long = "train-limit", value_name = "N")]
    pub train_limit: Option<usize>,
    /// Use at most N test samples.
    #[arg(long = "test-limit", value_name = "N")]
    pub test_limit: Option<usize>,
    /// Worker threads (default: all cores; with --engine mpc, per process). Plain results
    /// are the same bits for any number; Float's last digits follow it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write a checkpoint into DIR after every epoch (mpc: the working folder, with each
    /// server's checkpoints of its shares and the revealed model in DIR/model).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint in --checkpoint DIR.
    #[arg(long)]
    pub resume: bool,
    /// Print the result as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// With --engine mpc: derive the dealer's randomness from this number, so that a run
    /// is reproducible bit for bit. For tests only: whoever knows it can unmask every
    /// message between the servers.
    #[arg(long = "insecure-dealer-seed", value_name = "N")]
    pub insecure_dealer_seed: Option<u64>,
}

impl TrainArgs {
    /// Validates the arguments.
    ///
    /// # Errors
    /// The first bad argument, naming the flag and what is valid.
    pub fn config(&self) -> Result<crate::train::TrainConfig, ConfigError> {
        if self.threads == Some(0) {
            return Err(ConfigError::Value {
                flag: "threads",
                message: "must be at least 1".into(),
            });
        }
        let mut cfg = crate::train::TrainConfig {
            data_dir: self.data_dir.clone(),
            subtract_max: self.subtract_max,
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            seed: self.seed,
            train_limit: self.train_limit,
            test_limit: self.test_limit,
            checkpoint: self.checkpoint.clone(),
            resume: self.resume,
            progress: true,
            insecure_dealer_seed: self.insecure_dealer_seed,
            ..Default::default()
        };
        crate::train::config::Names {
            model: &self.model,
            data: &self.data,
            engine: &self.engine,
            frac_bits: self.frac_bits,
            exp: &self.exp,
            tanh: &self.tanh,
            sigmoid: &self.sigmoid,
            grad: &self.grad,
            schedule: &self.schedule,
        }
        .apply(&mut cfg)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs `ringnn train`, writing the summary (or the JSON line) to `out`.
///
/// # Errors
/// A bad argument or a failed run.
pub fn train(args: &TrainArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let cfg = args.config()?;
    if let Some(t) = args.threads {
        // rayon's global pool serves the Z_2^64 GEMM; matrixmultiply reads its own variable.
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .ok();
        std::env::set_var("MATMUL_NUM_THREADS", t.to_string());
        // The two-party servers and the dealer (child processes) inherit it.
        std::env::set_var("RAYON_NUM_THREADS", t.to_string());
    }
    if cfg.model == crate::train::Model::Seq2seq {
        let r = crate::train::seq2seq::train_seq2seq(&cfg, cfg.sigmoid, Default::default())?;
        if args.json {
            writeln!(out, "{}", serde_json::to_string(&r)?)?;
        } else {
            writeln!(
                out,
                "seq2seq on tatoeba ({} train / {} test pairs), {} engine{}, tanh {}, sigmoid {}, exp {}: test perplexity {:.2}, token accuracy {:.2}% after {} epochs; {:.0} pairs/s; overflows {}",
                r.train_samples,
                r.test_samples,
                r.engine,
                r.frac_bits.map_or(String::new(), |f| format!(" f={f}")),
                r.tanh,
                r.sigmoid,
                r.exp,
                r.perplexity,
                100.0 * r.test_token_accuracy,
                r.epochs,
                r.samples_per_sec,
                r.overflow_count
            )?;
            for t in r.translations.iter().take(5) {
                writeln!(
                    out,
                    "  {} => {} (reference: {})",
                    t.source, t.output, t.reference
                )?;
            }
        }
        return Ok(());
    }
    let r = crate::train::train(&cfg)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&r)?)?;
    } else if let Some(m) = &r.mpc {
        writeln!(
            out,
            "{} on {} ({} train / {} test), two servers over TLS f={}, exp {}, grad {}: test accuracy {:.2}% (revealed to the owner only at the end) after {} epochs; {:.1} samples/s; per step {:.0} / {:.0} bytes sent by server 0 / 1 and {:.0} rounds; model in {}",
            r.model,
            r.data,
            r.train_samples,
            r.test_samples,
            r.frac_bits.unwrap_or_default(),
            r.exp,
            r.grad,
            100.0 * r.test_accuracy,
            r.epochs,
            r.samples_per_sec,
            m.bytes_per_step[0],
            m.bytes_per_step[1],
            m.rounds_per_step,
            r.checkpoint.as_ref().map_or("(temporary folder, removed)".into(), |p| p.display().to_string())
        )?;
    } else {
        writeln!(
            out,
            "{} on {} ({} train / {} test), {} engine{}, exp {}, grad {}: test accuracy {:.2}% after {} epochs; {:.0} samples/s; overflows {}",
            r.model,
            r.data,
            r.train_samples,
            r.test_samples,
            r.engine,
            r.frac_bits.map_or(String::new(), |f| format!(" f={f}")),
            r.exp,
            r.grad,
            100.0 * r.test_accuracy,
            r.epochs,
            r.samples_per_sec,
            r.overflow_count
        )?;
    }
    Ok(())
}

/// Arguments of `ringnn approx`.
#[derive(Debug, Args)]
pub struct ApproxArgs {
    /// e^x approximations: a comma list, `all` or `none`.
    #[arg(long, default_value = "all")]
    pub exp: String,
    /// tanh approximations (`hard`, `exact`): a comma list, `all` or `none`.
    #[arg(long, default_value = "all")]
    pub tanh: String,
    /// sigmoid approximations (`secureml`, `exp`, `exact`; `exp` goes through each chosen
    /// e^x approximation): a comma list, `all` or `none`.
    #[arg(long, default_value = "secureml,exact")]
    pub sigmoid: String,
    /// e^x approximations to use inside softmax: a comma list, `all`, `none`, or `same`
    /// (those of --exp).
    #[arg(long, default_value = "same")]
    pub softmax: String,
    /// Numbers of fractional bits (1..=40), a comma list.
    #[arg(long = "frac-bits", default_value = "8,13,16,24")]
    pub frac_bits: String,
    /// Grid range LO:HI; by default each function's documented domain (e^x -6:4,
    /// tanh -4:4, sigmoid -8:8).
    #[arg(long, allow_hyphen_values = true)]
    pub range: Option<String>,
    /// Grid step.
    #[arg(long, default_value_t = 1.0 / 64.0)]
    pub step: f64,
    /// Standard deviation of the random softmax logits.
    #[arg(long = "logit-std", default_value_t = 2.0)]
    pub logit_std: f64,
    /// Number of random softmax rows.
    #[arg(long = "softmax-rows", default_value_t = 1000)]
    pub softmax_rows: usize,
    /// Logits per softmax row (classes).
    #[arg(long = "softmax-cols", default_value_t = 10)]
    pub softmax_cols: usize,
    /// Subtract each row's maximum before e^x (off by default, as in the paper).
    #[arg(long = "subtract-max")]
    pub subtract_max: bool,
    /// Seed of the softmax logits.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object per line instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also draw the approximations and their errors into FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

pub use crate::train::ConfigError;

fn items(flag: &'static str, list: &str) -> Result<Vec<String>, ConfigError> {
    let v: Vec<String> = list
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if v.is_empty() {
        return Err(ConfigError::Empty(flag));
    }
    Ok(v)
}

fn dedup<T: PartialEq>(v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn exp_list(flag: &'static str, list: &str) -> Result<Vec<ExpApprox>, ConfigError> {
    let names = items(flag, list)?;
    if names == ["none"] {
        return Ok(Vec::new());
    }
    if names == ["all"] {
        return Ok(ExpApprox::ALL.to_vec());
    }
    let parsed = names
        .iter()
        .map(|n| {
            ExpApprox::parse(n).map_err(|e| ConfigError::Name {
                flag,
                message: format!("{e} (or all, none)"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dedup(parsed))
}

fn tanh_list(list: &str) -> Result<Vec<TanhApprox>, ConfigError> {
    let names = items("tanh", list)?;
    match names.as_slice() {
        [n] if n == "none" => return Ok(Vec::new()),
        [n] if n == "all" => return Ok(TanhApprox::ALL.to_vec()),
        _ => {}
    }
    let parsed = names
        .iter()
        .map(|n| {
            TanhApprox::parse(n).map_err(|e| ConfigError::Name {
                flag: "tanh",
                message: format!("{e} (or all, none)"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dedup(parsed))
}

fn sigmoid_list(list: &str, exps: &[ExpApprox]) -> Result<Vec<SigmoidApprox>, ConfigError> {
    let names = items("sigmoid", list)?;
    let names: Vec<String> = match names.as_slice() {
        [n] if n == "none" => return Ok(Vec::new()),
        [n] if n == "all" => SigmoidApprox::NAMES.iter().map(|s| s.to_string()).collect(),
        _ => names,
    };
    let mut out = Vec::new();
    for n in &names {
        let probe = SigmoidApprox::parse(n, ExpApprox::Exact).map_err(|e| ConfigError::Name {
            flag: "sigmoid",
            message: format!("{e} (or all, none)"),
        })?;
        match probe {
            SigmoidApprox::Exp(_) => {
                if exps.is_empty() {
                    return Err(ConfigError::Value {
                        flag: "sigmoid",
                        message: "`exp` needs at least one e^x approximation in --exp".into(),
                    });
                }
                out.extend(exps.iter().map(|&a| SigmoidApprox::Exp(a)));
            }
            s => out.push(s),
        }
    }
    Ok(dedup(out))
}

fn frac_list(list: &str) -> Result<Vec<FracBits>, ConfigError> {
    let mut out = Vec::new();
    for n in items("frac-bits", list)? {
        let f: u32 = n.parse().map_err(|_| ConfigError::Value {
            flag: "frac-bits",
            message: format!("'{n}' is not a whole number; valid: 1..=40"),
        })?;
        out.push(FracBits::new(f).map_err(|e| ConfigError::Value {
            flag: "frac-bits",
            message: e.to_string(),
        })?);
    }
    Ok(dedup(out))
}

/// Parses `LO:HI` into a finite range with `LO < HI`.
pub fn parse_range(s: &str) -> Result<(f64, f64), ConfigError> {
    let bad = |m: String| ConfigError::Value {
        flag: "range",
        message: m,
    };
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| bad(format!("'{s}' is not of the form LO:HI (for example -8:8)")))?;
    let lo: f64 = a
        .trim()
        .parse()
        .map_err(|_| bad(format!("'{a}' is not a number")))?;
    let hi: f64 = b
        .trim()
        .parse()
        .map_err(|_| bad(format!("'{b}' is not a number")))?;
    if !lo.is_finite() || !hi.is_finite() || lo >= hi {
        return Err(bad(format!("need finite LO < HI, got {lo}:{hi}")));
    }
    Ok((lo, hi))
}

impl ApproxArgs {
    /// Validates the arguments into a study configuration.
    ///
    /// # Errors
    /// The first bad argument, naming the flag and what is valid.
    pub fn config(&self) -> Result<StudyConfig, ConfigError> {
        let exps = exp_list("exp", &self.exp)?;
        let tanhs = tanh_list(&self.tanh)?;
        let sigs = sigmoid_list(&self.sigmoid, &exps)?;
        let softmax = if self.softmax.trim() == "same" {
            exps.clone()
        } else {
            exp_list("softmax", &self.softmax)?
        };
        let fracs = frac_list(&self.frac_bits)?;
        let range = self.range.as_deref().map(parse_range).transpose()?;
        if !(self.step.is_finite() && self.step > 0.0) {
            return Err(ConfigError::Value {
                flag: "step",
                message: format!("must be a positive number, got {}", self.step),
            });
        }
        let widest = range.map_or(16.0, |(lo, hi)| hi - lo);
        if widest / self.step > 1.0e7 {
            return Err(ConfigError::Value {
                flag: "step",
                message: format!("{} gives more than 10 million grid points", self.step),
            });
        }
        if !(self.logit_std.is_finite() && self.logit_std > 0.0) {
            return Err(ConfigError::Value {
                flag: "logit-std",
                message: format!("must be a positive number, got {}", self.logit_std),
            });
        }
        for (flag, v) in [
            ("softmax-rows", self.softmax_rows),
            ("softmax-cols", self.softmax_cols),
        ] {
            if !softmax.is_empty() && v == 0 {
                return Err(ConfigError::Value {
                    flag,
                    message: "must be at least 1".into(),
                });
            }
        }
        if let Some(path) = &self.plot {
            check_plot_path(path)?;
        }
        let mut funcs: Vec<Func> = exps.into_iter().map(Func::Exp).collect();
        funcs.extend(tanhs.into_iter().map(Func::Tanh));
        funcs.extend(sigs.into_iter().map(Func::Sigmoid));
        if funcs.is_empty() && softmax.is_empty() {
            return Err(ConfigError::Value {
                flag: "exp",
                message: "nothing to study: every function is `none`".into(),
            });
        }
        let mut precisions = vec![Precision::Float];
        precisions.extend(fracs.into_iter().map(Precision::Fixed));
        Ok(StudyConfig {
            funcs,
            precisions,
            range,
            step: self.step,
            softmax,
            softmax_rows: self.softmax_rows,
            softmax_cols: self.softmax_cols,
            logit_std: self.logit_std,
            subtract_max: self.subtract_max,
            seed: self.seed,
        })
    }
}

/// Checks a `--plot` file before any work: a `.svg` or `.png` name in a folder that exists.
fn check_plot_path(path: &Path) -> Result<(), ConfigError> {
    let bad = |message: String| ConfigError::Value {
        flag: "plot",
        message,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg" | "png") => {}
        _ => {
            return Err(bad(format!(
                "{}: the name must end in .svg or .png",
                path.display()
            )))
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(bad(format!(
            "{}: the folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}

/// Runs `ringnn approx`, writing the table (or JSON lines) to `out`.
///
/// # Errors
/// A bad argument, an unencodable grid, a failed plot or a failed write.
pub fn approx(args: &ApproxArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let rows = study::run(&cfg)?;
    if args.json {
        for r in &rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        write!(out, "{}", study::table(&rows))?;
        writeln!(
            out,
            "\nmax_abs_err / max_rel_err: against the true function on the grid (softmax: per \
             probability, relative over p >= 1e-3);\nvs_float: Plain against Float on the same \
             approximation (the error of precision alone);\nmean_tv: mean total-variation \
             distance to the exact softmax over {} rows of {} logits ~ N(0, {}).",
            cfg.softmax_rows, cfg.softmax_cols, cfg.logit_std
        )?;
    }
    if let Some(path) = &args.plot {
        crate::plot::approximations(path, &cfg.funcs, cfg.range)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Runs the parsed command line.
///
/// # Errors
/// What the command reports.
pub fn run(cli: Cli) -> anyhow::Result<()> {
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

/// Arguments of `ringnn sweep`. Every list is comma-separated. A flag given twice takes
/// its last value, so a script can fix defaults and pass the user's flags after them.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct SweepArgs {
    /// Models: mlp, lenet, resnet20, resnet32, resnet18 (as `ringnn train`).
    #[arg(long, default_value = "mlp")]
    pub model: String,
    /// Datasets: synthetic, mnist, cifar10, cifar100 (as `ringnn train`).
    #[arg(long, default_value = "synthetic")]
    pub data: String,
    /// e^x approximations inside softmax, or `all`.
    #[arg(long, default_value = "exact,pwl4,taylor3,secureml")]
    pub exp: String,
    /// tanh approximations (recurrent models): hard, exact, or `all`.
    #[arg(long, default_value = "hard")]
    pub tanh: String,
    /// Fractional bits of the plain engine (1..=40).
    #[arg(long = "frac-bits", default_value = "13,16")]
    pub frac_bits: String,
    /// Engines: plain (one run per --frac-bits), float (one run, f32).
    #[arg(long, default_value = "plain")]
    pub engine: String,
    /// Seeds per combination (seeds 1..=N).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Learning rate (0.05: at 0.1 the exact gradient through pwl4 and other
    /// approximations that reach 0 diverged in 5 of 24 short MNIST runs, docs/results.md).
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay.
    #[arg(long = "weight-decay", default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate schedule: constant, cosine, or step:S1,S2,...
    #[arg(long, default_value = "constant")]
    pub schedule: String,
    /// Softmax cross-entropy gradient: exact or surrogate.
    #[arg(long, default_value = "exact")]
    pub grad: String,
    /// sigmoid approximation (recurrent models): secureml, exp, exact.
    #[arg(long, default_value = "secureml")]
    pub sigmoid: String,
    /// Subtract each row's maximum before e^x (always done for `--exp exact`).
    #[arg(long = "subtract-max")]
    pub subtract_max: bool,
    /// Use at most N training samples.
    #[arg(long = "train-limit", value_name = "N")]
    pub train_limit: Option<usize>,
    /// Use at most N test samples.
    #[arg(long = "test-limit", value_name = "N")]
    pub test_limit: Option<usize>,
    /// Folder with the datasets (else RINGNN_DATA).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Runs at a time (default: 1 on up to 2 cores, else half the cores; each run
    /// already uses every core for its matrix products).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Output folder: runs.jsonl, runs.csv, table.md, plots.
    #[arg(long, default_value = "out/sweep", value_name = "DIR")]
    pub out: PathBuf,
}

/// A list of names for a sweep: empty lists are refused with the valid names.
fn sweep_items(flag: &'static str, list: &str, valid: &str) -> Result<Vec<String>, ConfigError> {
    let v: Vec<String> = dedup(
        list.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    );
    if v.is_empty() {
        return Err(ConfigError::Value {
            flag,
            message: format!("the list is empty; give at least one of: {valid}"),
        });
    }
    Ok(v)
}

fn jobs_of(jobs: Option<usize>) -> Result<usize, ConfigError> {
    match jobs {
        Some(0) => Err(ConfigError::Value {
            flag: "jobs",
            message: "must be at least 1".into(),
        }),
        Some(j) => Ok(j),
        None => Ok(crate::sweep::default_jobs()),
    }
}

fn out_dir(out: &std::path::Path) -> Result<(), ConfigError> {
    crate::sweep::check_out_dir(out).map_err(|message| ConfigError::Value {
        flag: "out",
        message,
    })
}

/// Datasets other than `synthetic` need a folder; say so before any run.
fn data_dirs(data: &[String], dir: Option<&std::path::Path>) -> Result<(), ConfigError> {
    if let Some(d) = data.iter().find(|d| d.as_str() != "synthetic") {
        if crate::data::data_dir(dir).is_none() {
            return Err(ConfigError::Value {
                flag: "data",
                message: format!(
                    "{d} needs a data directory: pass --data-dir DIR or set RINGNN_DATA"
                ),
            });
        }
    }
    Ok(())
}

impl SweepArgs {
    /// Validates every list and setting, then every combination (as `ringnn train` would),
    /// then the output folder (created, and a probe file written and removed).
    ///
    /// # Errors
    /// The first bad argument, naming the flag and what is valid.
    pub fn config(&self) -> Result<crate::sweep::SweepConfig, ConfigError> {
        use crate::sweep::grid::{Common, Grid, Precision};
        use crate::train::model::MODELS;
        let models = sweep_items("model", &self.model, &MODELS.join(", "))?;
        if let Some(m) = models.iter().find(|m| !MODELS.contains(&m.as_str())) {
            return Err(ConfigError::Name {
                flag: "model",
                message: format!("unknown model '{m}'; valid: {}", MODELS.join(", ")),
            });
        }
        let data = sweep_items("data", &self.data, "synthetic, mnist, cifar10, cifar100")?;
        let exp_valid = format!("{}, all", ExpApprox::NAMES.join(", "));
        sweep_items("exp", &self.exp, &exp_valid)?;
        let exps = exp_list("exp", &self.exp)?;
        if exps.is_empty() {
            return Err(ConfigError::Value {
                flag: "exp",
                message: format!(
                    "`none` leaves nothing to train; give at least one of: {exp_valid}"
                ),
            });
        }
        let tanh_valid = format!("{}, all", TanhApprox::NAMES.join(", "));
        sweep_items("tanh", &self.tanh, &tanh_valid)?;
        let tanhs = tanh_list(&self.tanh)?;
        if tanhs.is_empty() {
            return Err(ConfigError::Value {
                flag: "tanh",
                message: format!(
                    "`none` leaves nothing to train; give at least one of: {tanh_valid}"
                ),
            });
        }
        let mut precisions = Vec::new();
        for e in sweep_items("engine", &self.engine, "plain, float")? {
            match e.as_str() {
                "float" => precisions.push(Precision::Float),
                "plain" => {
                    sweep_items("frac-bits", &self.frac_bits, "1..=40")?;
                    precisions.extend(
                        frac_list(&self.frac_bits)?
                            .into_iter()
                            .map(|f| Precision::Fixed(f.get())),
                    );
                }
                "mpc" => {
                    return Err(ConfigError::Name {
                        flag: "engine",
                        message: "mpc: the sweep runs plain and float in this version; train \
                                  one configuration on two servers with `ringnn train --engine \
                                  mpc`"
                            .into(),
                    })
                }
                other => {
                    return Err(ConfigError::Name {
                        flag: "engine",
                        message: format!("unknown engine '{other}'; valid: plain, float"),
                    })
                }
            }
        }
        let precisions = dedup(precisions);
        for (flag, v) in [
            ("seeds", self.seeds as usize),
            ("epochs", self.epochs),
            ("batch", self.batch),
        ] {
            if v == 0 {
                return Err(ConfigError::Value {
                    flag,
                    message: "must be at least 1".into(),
                });
            }
        }
        let jobs = jobs_of(self.jobs)?;
        let grid = Grid {
            models,
            data,
            approx: exps
                .iter()
                .flat_map(|e| {
                    tanhs
                        .iter()
                        .map(move |t| (e.name().to_string(), t.name().to_string()))
                })
                .collect(),
            precisions,
            seeds: (1..=self.seeds).collect(),
            common: Common {
                data_dir: self.data_dir.clone(),
                grad: self.grad.clone(),
                sigmoid: self.sigmoid.clone(),
                subtract_max: self.subtract_max,
                epochs: self.epochs,
                batch: self.batch,
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
                schedule: self.schedule.clone(),
                train_limit: self.train_limit,
                test_limit: self.test_limit,
            },
        };
        let runs = grid.expand()?;
        data_dirs(&grid.data, self.data_dir.as_deref())?;
        out_dir(&self.out)?;
        Ok(crate::sweep::SweepConfig {
            runs,
            out: self.out.clone(),
            jobs,
            notes: crate::sweep::report::Notes {
                title: format!("ringnn sweep: {} runs", grid.len()),
                lines: vec![format!(
                    "{} epoch(s), batch {}, lr {}, momentum {}, schedule {}, grad {}; training \
                     samples: {}, test samples: {}; seeds 1..={}.",
                    self.epochs,
                    self.batch,
                    self.lr,
                    self.momentum,
                    self.schedule,
                    self.grad,
                    self.train_limit.map_or("all".into(), |n| n.to_string()),
                    self.test_limit.map_or("all".into(), |n| n.to_string()),
                    self.seeds
                )],
            },
            paper: None,
        })
    }
}

fn finish_sweep(cfg: &crate::sweep::SweepConfig, out: &mut dyn Write) -> anyhow::Result<()> {
    let stderr = std::io::stderr();
    let r = crate::sweep::run(cfg, &mut stderr.lock())?;
    writeln!(
        out,
        "{} runs: {} skipped (already in runs.jsonl), {} finished, {} failed",
        r.total, r.skipped, r.ok, r.failed
    )?;
    writeln!(out, "wrote {}", r.table.display())?;
    for p in &r.plots {
        writeln!(out, "wrote {}", p.display())?;
    }
    for s in &r.plots_skipped {
        writeln!(out, "no plot {s}")?;
    }
    writeln!(out)?;
    write!(out, "{}", r.table_md)?;
    Ok(())
}

/// Runs `ringnn sweep`: progress on stderr; the files written and the table on `out`.
///
/// # Errors
/// A bad argument, or the store, table or plots cannot be written (a failing run is
/// recorded, not returned).
pub fn sweep(args: &SweepArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let cfg = args.config()?;
    finish_sweep(&cfg, out)
}

/// Arguments of `ringnn reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// table2 (CNNs on CIFAR) or table3 (seq2seq perplexity).
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// quick (about 30 minutes on 2 cores, cut-down setup stated in the table) or full
    /// (the paper's setup, for big machines).
    #[arg(long, default_value = "quick")]
    pub scale: String,
    /// Also train on the plain (Z_2^64) engine at these fractional bits (comma list).
    #[arg(long = "frac-bits")]
    pub frac_bits: Option<String>,
    /// Seeds per approximation.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Folder with the datasets (else RINGNN_DATA).
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Runs at a time (default as `ringnn sweep`).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Output folder (default out/reproduce-TABLE-SCALE).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

impl ReproduceArgs {
    /// Validates the arguments into a sweep.
    ///
    /// # Errors
    /// A bad argument; Table 3 in a build without seq2seq.
    pub fn config(&self) -> anyhow::Result<crate::sweep::SweepConfig> {
        use crate::sweep::reproduce::{setup, Scale, Table};
        let table = match self.table.as_str() {
            "table2" => Table::Table2,
            "table3" => Table::Table3,
            other => anyhow::bail!("unknown table '{other}'; valid: table2, table3"),
        };
        let scale = match self.scale.as_str() {
            "quick" => Scale::Quick,
            "full" => Scale::Full,
            other => anyhow::bail!("--scale: unknown scale '{other}'; valid: quick, full"),
        };
        let fracs: Vec<u32> = match &self.frac_bits {
            None => Vec::new(),
            Some(list) => {
                sweep_items("frac-bits", list, "1..=40")?;
                frac_list(list)?.into_iter().map(FracBits::get).collect()
            }
        };
        if self.seeds == 0 {
            return Err(ConfigError::Value {
                flag: "seeds",
                message: "must be at least 1".into(),
            }
            .into());
        }
        let jobs = jobs_of(self.jobs)?;
        let s = setup(table, scale, self.data_dir.clone(), &fracs, self.seeds)
            .map_err(anyhow::Error::msg)?;
        let runs = s.grid.expand()?;
        data_dirs(&s.grid.data, self.data_dir.as_deref())?;
        let out = self.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!("out/reproduce-{}-{}", self.table, self.scale))
        });
        out_dir(&out)?;
        Ok(crate::sweep::SweepConfig {
            runs,
            out,
            jobs,
            notes: s.notes,
            paper: Some(s.paper),
        })
    }
}

/// Runs `ringnn reproduce`: progress on stderr; the files written and the table (with the
/// paper's figures) on `out`.
///
/// # Errors
/// As [`sweep`].
pub fn reproduce(args: &ReproduceArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let cfg = args.config()?;
    finish_sweep(&cfg, out)
}

/// Arguments of `ringnn keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Folder for the files (created): ROLE.key and ROLE.csr with --role; else ca.pem and
    /// every role's certificate and key.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Make only this role's key and signing request: party0, party1 or dealer.
    #[arg(long)]
    pub role: Option<String>,
}

/// `ringnn ca` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Make a session CA: ca.pem (give it to every role) and ca.key (keep it).
    Init {
        /// Folder for ca.pem and ca.key (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Certify a role's signing request: checks its signature and that it asks for no
    /// other role, and writes the role's certificate.
    Sign {
        /// The CA folder from `ca init`.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The role: party0, party1 or dealer.
        #[arg(long)]
        role: String,
        /// The role's ROLE.csr from `keygen --role`.
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// Where to write the certificate (ROLE.pem, to go beside the role's key).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn role_arg(flag: &'static str, name: &str) -> Result<crate::mpc::keys::Role, ConfigError> {
    crate::mpc::keys::Role::ALL
        .into_iter()
        .find(|r| r.stem() == name)
        .ok_or_else(|| ConfigError::Name {
            flag,
            message: format!("unknown role '{name}'; valid: party0, party1, dealer"),
        })
}

/// Arguments of `ringnn mpc-dealer`.
#[derive(Debug, Args)]
pub struct MpcDealerArgs {
    /// Address to listen on (host:port).
    #[arg(long)]
    pub listen: String,
    /// The keygen folder.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Derive the dealer's randomness from this number instead of the operating system:
    /// reproducible runs for tests only. Anyone who knows it can unmask every message.
    #[arg(
        long = "insecure-dealer-seed",
        alias = "insecure-seed",
        value_name = "N"
    )]
    pub insecure_seed: Option<u64>,
    /// Session and connection settings.
    #[command(flatten)]
    pub net: NetArgs,
}

/// Arguments of `ringnn mpc-server`.
#[derive(Debug, Args)]
pub struct MpcServerArgs {
    /// 0 or 1.
    #[arg(long)]
    pub party: u8,
    /// Listen for the other server here (party 0).
    #[arg(long, conflicts_with = "connect")]
    pub listen: Option<String>,
    /// Connect to the other server here (party 1).
    #[arg(long)]
    pub connect: Option<String>,
    /// The dealer's address.
    #[arg(long)]
    pub dealer: String,
    /// The keygen folder.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Session and connection settings.
    #[command(flatten)]
    pub net: NetArgs,
    /// Fractional bits (both servers must agree).
    #[arg(long = "frac-bits", default_value_t = 16)]
    pub frac_bits: u32,
    /// The job: dense-relu.
    #[arg(long, default_value = "dense-relu")]
    pub job: String,
    /// Rows of the input.
    #[arg(long)]
    pub batch: usize,
    /// Input features.
    #[arg(long)]
    pub inputs: usize,
    /// Output features.
    #[arg(long)]
    pub outputs: usize,
    /// This server's share file from the data owner.
    #[arg(long, value_name = "FILE")]
    pub shares: PathBuf,
    /// Where to write this server's share of the result.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Where to write the report (JSON: bytes, rounds, offline bytes).
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
}

/// Arguments of `ringnn server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// 0 or 1.
    #[arg(long)]
    pub party: u8,
    /// Listen for the other server here (party 0).
    #[arg(long, conflicts_with = "connect")]
    pub listen: Option<String>,
    /// Connect to the other server here (party 1; `--peer` is the same flag).
    #[arg(long, alias = "peer")]
    pub connect: Option<String>,
    /// The dealer's address.
    #[arg(long)]
    pub dealer: String,
    /// The keygen folder.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Session and connection settings.
    #[command(flatten)]
    pub net: NetArgs,
    /// The job description from `ringnn share` (job.json, the same for both servers).
    #[arg(long, value_name = "FILE")]
    pub job: PathBuf,
    /// This server's share file from `ringnn share`.
    #[arg(long, value_name = "FILE")]
    pub shares: PathBuf,
    /// Output folder: this server's shares of the model and predictions, and its report.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Checkpoint this server's shares into DIR after every epoch (the last two are kept).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the latest epoch that both servers have checkpointed.
    #[arg(long)]
    pub resume: bool,
}

/// Arguments of `ringnn share`.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// The training flags, as `ringnn train` (--engine, --checkpoint, --resume, --json and
    /// --insecure-dealer-seed are ignored).
    #[command(flatten)]
    pub train: TrainArgs,
    /// Folder for job.json, owner.json, server0/shares.bin and server1/shares.bin.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Arguments of `ringnn reveal`.
#[derive(Debug, Args)]
pub struct RevealArgs {
    /// The owner's owner.json from `ringnn share`.
    #[arg(long, value_name = "FILE")]
    pub owner: PathBuf,
    /// The two servers' output folders (give the flag twice: server 0's, then server 1's).
    #[arg(long = "from", value_name = "DIR", num_args = 1)]
    pub from: Vec<PathBuf>,
    /// Folder for the revealed model (a Plain checkpoint).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn party_arg(p: u8) -> Result<crate::mpc::PartyId, ConfigError> {
    match p {
        0 => Ok(crate::mpc::PartyId::P0),
        1 => Ok(crate::mpc::PartyId::P1),
        p => Err(ConfigError::Value {
            flag: "party",
            message: format!("must be 0 or 1, got {p}"),
        }),
    }
}

fn peer_link(
    listen: Option<String>,
    connect: Option<String>,
) -> Result<crate::mpc::server::PeerLink, ConfigError> {
    use crate::mpc::server::PeerLink;
    match (listen, connect) {
        (Some(l), None) => Ok(PeerLink::Listen(l)),
        (None, Some(c)) => Ok(PeerLink::Connect(c)),
        _ => Err(ConfigError::Value {
            flag: "listen",
            message: "give exactly one of --listen ADDR (party 0) and --connect ADDR (party 1)"
                .into(),
        }),
    }
}

fn server_command(a: &ServerArgs) -> anyhow::Result<()> {
    if a.resume && a.checkpoint.is_none() {
        return Err(ConfigError::Value {
            flag: "resume",
            message: "needs --checkpoint DIR".into(),
        }
        .into());
    }
    let cfg = crate::mpc::training::TrainServerConfig {
        party: party_arg(a.party)?,
        link: peer_link(a.listen.clone(), a.connect.clone())?,
        dealer: a.dealer.clone(),
        keys: a.keys.clone(),
        net: net_config(&a.net)?,
        job: a.job.clone(),
        shares: a.shares.clone(),
        out: a.out.clone(),
        checkpoint: a.checkpoint.clone(),
        resume: a.resume,
        progress: true,
    };
    let who = format!("server {}", a.party);
    let r =
        crate::mpc::training::run_train_server(&cfg).map_err(|e| anyhow::anyhow!("{who}: {e}"))?;
    eprintln!(
        "{who}: trained {} steps ({} samples) in {:.1} s; sent {} bytes in {} rounds; wrote {}",
        r.steps,
        r.samples,
        r.train_seconds,
        r.online_sent,
        r.rounds,
        a.out.display()
    );
    Ok(())
}

fn share_command(a: &ShareArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut cfg = a.train.config()?;
    cfg.engine = crate::train::EngineKind::Mpc;
    let s = crate::mpc::owner::share_job(&cfg, &a.out)?;
    writeln!(
        out,
        "shared {} training and {} test images of {} for {}: {} and {} (one per server), {} (both), {} (keep)",
        s.job.train_samples,
        s.job.test_samples,
        s.job.config.data,
        s.job.config.model,
        s.shares[0].display(),
        s.shares[1].display(),
        s.job_file.display(),
        s.owner_file.display()
    )?;
    Ok(())
}

fn reveal_command(a: &RevealArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let [d0, d1] = a.from.as_slice() else {
        return Err(ConfigError::Value {
            flag: "from",
            message: format!(
                "give --from twice (server 0's output folder, then server 1's), got {}",
                a.from.len()
            ),
        }
        .into());
    };
    let r = crate::mpc::owner::reveal(&a.owner, [d0, d1], &a.model)?;
    if a.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"test_accuracy": r.test_accuracy, "test_samples": r.predictions.len(), "checkpoint": r.checkpoint})
        )?;
    } else {
        writeln!(
            out,
            "test accuracy {:.2}% on {} predictions; model written to {}",
            100.0 * r.test_accuracy,
            r.predictions.len(),
            r.checkpoint.display()
        )?;
    }
    Ok(())
}

/// Arguments of `ringnn mpc-demo`.
#[derive(Debug, Args)]
pub struct MpcDemoArgs {
    /// Working folder for keys, share files and reports (created).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Rows of the input.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Input features.
    #[arg(long, default_value_t = 32)]
    pub inputs: usize,
    /// Output features.
    #[arg(long, default_value_t = 16)]
    pub outputs: usize,
    /// Fractional bits.
    #[arg(long = "frac-bits", default_value_t = 16)]
    pub frac_bits: u32,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn session(s: &str) -> Result<crate::mpc::net::SessionId, ConfigError> {
    s.parse().map_err(|e: String| ConfigError::Value {
        flag: "session",
        message: e,
    })
}

/// The session and connection flags of the dealer and server processes.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Session id (32 hex digits, e.g. from `openssl rand -hex 16`), the same for the
    /// dealer and both servers.
    #[arg(long)]
    pub session: String,
    /// Connect and read timeout in seconds: a silent peer fails the run after this long.
    #[arg(long = "timeout-s", default_value_t = 30)]
    pub timeout_s: u64,
    /// How long a listening process waits for its rightful peers, in seconds; strangers
    /// that connect meanwhile are refused and logged.
    #[arg(long = "wait-s", default_value_t = 60)]
    pub wait_s: u64,
    /// Overall deadline of one connection's handshake, in seconds.
    #[arg(long = "handshake-timeout-s", default_value_t = 10)]
    pub handshake_s: u64,
}

fn net_config(a: &NetArgs) -> Result<crate::mpc::net::NetConfig, ConfigError> {
    let secs = |flag: &'static str, v: u64| {
        if v == 0 {
            Err(ConfigError::Value {
                flag,
                message: "must be at least 1".into(),
            })
        } else {
            Ok(std::time::Duration::from_secs(v))
        }
    };
    let mut net = crate::mpc::net::NetConfig::new(session(&a.session)?);
    net.timeout = secs("timeout-s", a.timeout_s)?;
    net.wait = secs("wait-s", a.wait_s)?;
    net.handshake = secs("handshake-timeout-s", a.handshake_s)?;
    Ok(net)
}

fn mpc_command(cmd: Command, out: &mut dyn Write) -> anyhow::Result<()> {
    use crate::mpc::server::{Job, ServerConfig};
    match cmd {
        Command::Keygen(a) => match &a.role {
            Some(name) => {
                let role = role_arg("role", name)?;
                let (key, csr) = crate::mpc::keys::role_request(&a.out, role)?;
                writeln!(
                    out,
                    "wrote {} (keep it on this machine) and {} (send it to the CA operator)",
                    key.display(),
                    csr.display()
                )?;
            }
            None => {
                let k = crate::mpc::keys::keygen(&a.out)?;
                writeln!(
                    out,
                    "wrote {} and {} role certificates and keys in {}",
                    k.ca.display(),
                    k.roles.len(),
                    a.out.display()
                )?;
                eprintln!(
                    "note: whoever holds {} holds every role's key and can unmask the run; \
                     for separate operators use `keygen --role` and `ca`",
                    a.out.display()
                );
            }
        },
        Command::Ca(CaCommand::Init { out: dir }) => {
            let ca = crate::mpc::keys::ca_init(&dir)?;
            writeln!(
                out,
                "wrote {} (give it to every role) and {} (keep it; run no role)",
                ca.display(),
                dir.join("ca.key").display()
            )?;
        }
        Command::Ca(CaCommand::Sign {
            ca,
            role,
            csr,
            out: cert,
        }) => {
            let role = role_arg("role", &role)?;
            crate::mpc::keys::ca_sign(&ca, &csr, role, &cert)?;
            writeln!(out, "wrote {} for {role}", cert.display())?;
        }
        Command::MpcDealer(a) => {
            let cfg = crate::mpc::dealer_server::DealerConfig {
                listen: a.listen,
                keys: a.keys,
                net: net_config(&a.net)?,
                master_seed: a.insecure_seed.map(crate::mpc::Dealer::insecure_seed),
            };
            let r = crate::mpc::dealer_server::serve_dealer(&cfg)?;
            eprintln!(
                "dealer: served {} requests; sent {} / {} bytes to party 0 / 1",
                r.requests, r.sent[0], r.sent[1]
            );
        }
        Command::MpcServer(a) => {
            let party = party_arg(a.party)?;
            let link = peer_link(a.listen, a.connect)?;
            if a.job != "dense-relu" {
                return Err(ConfigError::Name {
                    flag: "job",
                    message: format!("unknown job '{}'; valid: dense-relu", a.job),
                }
                .into());
            }
            FracBits::new(a.frac_bits).map_err(|e| ConfigError::Value {
                flag: "frac-bits",
                message: e.to_string(),
            })?;
            let cfg = ServerConfig {
                party,
                link,
                dealer: a.dealer,
                keys: a.keys,
                net: net_config(&a.net)?,
                frac_bits: a.frac_bits,
                job: Job::DenseRelu {
                    batch: a.batch,
                    inputs: a.inputs,
                    outputs: a.outputs,
                },
                shares: a.shares,
                out: a.out,
            };
            let r = crate::mpc::server::run_server(&cfg)?;
            std::fs::write(&a.report, serde_json::to_vec(&r)?)
                .map_err(|e| anyhow::anyhow!("report {}: {e}", a.report.display()))?;
        }
        Command::MpcDemo(a) => {
            FracBits::new(a.frac_bits).map_err(|e| ConfigError::Value {
                flag: "frac-bits",
                message: e.to_string(),
            })?;
            let exe = std::env::current_exe()?;
            let r = crate::mpc::server::run_local_mpc(&crate::mpc::server::LocalMpcJob {
                job: crate::mpc::server::Job::DenseRelu {
                    batch: a.batch,
                    inputs: a.inputs,
                    outputs: a.outputs,
                },
                frac_bits: a.frac_bits,
                data_seed: a.seed,
                dir: a.dir,
                launch: crate::mpc::server::Launch::Processes(exe),
            })?;
            if a.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"servers": r.servers, "max_ulp": r.max_ulp, "elements": r.result.len()})
                )?;
            } else {
                writeln!(
                    out,
                    "dense-relu over TLS between three processes: {} outputs, max difference from Plain {} ulp",
                    r.result.len(),
                    r.max_ulp
                )?;
                for s in &r.servers {
                    writeln!(
                        out,
                        "  party {}: {} bytes sent, {} rounds",
                        s.party, s.online_sent, s.rounds
                    )?;
                }
            }
        }
        _ => unreachable!("only MPC commands come here"),
    }
    Ok(())
}

/// Arguments of `ringnn export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The checkpoint folder of a `ringnn train --engine plain --model mlp` run.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The Rust source file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// How many test inputs to include.
    #[arg(long, default_value_t = 16)]
    pub inputs: usize,
    /// Folder with the datasets (else RINGNN_DATA), for checkpoints trained on MNIST.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn export_command(a: &ExportArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let s = crate::export::export(&a.checkpoint, &a.out, a.inputs, a.data_dir.as_deref())?;
    writeln!(
        out,
        "wrote {} ({} bytes): mlp {:?} on {}, f={}, {} parameters, {} inputs ({} predicted correctly on the host)",
        s.out.display(),
        s.bytes,
        s.layer_sizes,
        s.data,
        s.frac_bits,
        s.parameters,
        s.predictions.len(),
        s.correct()
    )?;
    Ok(())
}
