//! The `ringnn` command line: raw arguments are parsed (clap) and then validated into a
//! configuration before anything runs, so that every mistake is reported up front with
//! the valid choices.

use crate::study::{self, Func, Precision, StudyConfig};
use clap::{Args, Parser, Subcommand};
use ringnn_core::approx::{ExpApprox, SigmoidApprox, TanhApprox};
use ringnn_core::FracBits;
use std::io::Write;
use std::path::PathBuf;

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

/// A bad command line, found before any work starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A name that is not valid.
    #[error("--{flag}: {message}")]
    Name {
        /// The flag.
        flag: &'static str,
        /// What is wrong, with the valid names.
        message: String,
    },
    /// An empty list.
    #[error("--{0}: the list is empty (use `none` to leave the function out)")]
    Empty(&'static str),
    /// A bad number.
    #[error("--{flag}: {message}")]
    Value {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

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
        if !softmax.is_empty() && (self.softmax_rows == 0 || self.softmax_cols == 0) {
            return Err(ConfigError::Value {
                flag: "softmax-rows",
                message: "softmax rows and columns must be at least 1".into(),
            });
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
    }
}
