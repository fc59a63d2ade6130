//! `ringnn sweep` and `ringnn reproduce`: the grid's lists validated into a
//! [`crate::sweep::SweepConfig`], then run.

use super::*;

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
    /// Engines: plain (one run per --frac-bits), float (one run, f32), mpc (two servers
    /// on shares as local processes over TLS, one run per --frac-bits; image models).
    #[arg(long, default_value = "plain")]
    pub engine: String,
    /// Fractional bits of the mpc engine (default: --frac-bits): two-party runs cost
    /// about 30 times a plain one, so a sweep may give them fewer precisions.
    #[arg(long = "mpc-frac-bits", value_name = "LIST")]
    pub mpc_frac_bits: Option<String>,
    /// Seeds per combination (seeds 1..=N).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Learning rate [default: per model, as `ringnn train`: 0.01 for lenet, 0.05 for
    /// the others].
    #[arg(long)]
    pub lr: Option<f64>,
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
    /// Run only shard K of N of the grid (`K/N`, 1-based: every N-th run from the K-th),
    /// for one machine or one task of a job array each; `--merge` joins the shards.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Sweep folders (shards) whose finished runs are copied into --out first (comma
    /// list), so that its table covers them all; runs still missing are then run.
    #[arg(long, value_name = "DIRS")]
    pub merge: Option<String>,
    /// Comparison protocol of the two-party runs and of the counted cost of each step:
    /// a2b (the adder over AND triples) or fss (the dealer's DCF keys).
    #[arg(long, default_value = "a2b")]
    pub comparison: String,
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

/// `--shard K/N`: 1 <= K <= N.
fn shard_of(s: Option<&str>) -> Result<Option<(usize, usize)>, ConfigError> {
    let Some(s) = s else { return Ok(None) };
    let bad = || ConfigError::Value {
        flag: "shard",
        message: format!("'{s}' is not K/N with 1 <= K <= N (for example 2/8)"),
    };
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok(Some((k, n)))
}

/// `--merge DIRS`: folders holding a `runs.jsonl`, none of them `--out` itself.
fn merge_dirs(list: Option<&str>, out: &std::path::Path) -> Result<Vec<PathBuf>, ConfigError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    let mut dirs = Vec::new();
    for d in sweep_items("merge", list, "sweep folders holding runs.jsonl")? {
        let dir = PathBuf::from(&d);
        if !dir.join(crate::sweep::store::JSONL).is_file() {
            return Err(ConfigError::Value {
                flag: "merge",
                message: format!("{d} holds no {}", crate::sweep::store::JSONL),
            });
        }
        if dir == out {
            return Err(ConfigError::Value {
                flag: "merge",
                message: format!("{d} is the --out folder itself"),
            });
        }
        dirs.push(dir);
    }
    Ok(dirs)
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
        for e in sweep_items("engine", &self.engine, "plain, float, mpc")? {
            let fixed = |flag: &'static str,
                         list: &str,
                         p: fn(u32) -> Precision|
             -> Result<Vec<Precision>, ConfigError> {
                sweep_items(flag, list, "1..=40")?;
                Ok(frac_list_of(flag, list)?
                    .into_iter()
                    .map(|f| p(f.get()))
                    .collect())
            };
            match e.as_str() {
                "float" => precisions.push(Precision::Float),
                "plain" => {
                    precisions.extend(fixed("frac-bits", &self.frac_bits, Precision::Fixed)?)
                }
                "mpc" => precisions.extend(match &self.mpc_frac_bits {
                    Some(list) => fixed("mpc-frac-bits", list, Precision::Mpc)?,
                    None => fixed("frac-bits", &self.frac_bits, Precision::Mpc)?,
                }),
                other => {
                    return Err(ConfigError::Name {
                        flag: "engine",
                        message: format!("unknown engine '{other}'; valid: plain, float, mpc"),
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
        let comparison = super::lists::comparison(&self.comparison)?;
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
                comparison,
            },
        };
        let runs = grid.expand()?;
        if runs.is_empty() {
            return Err(ConfigError::Value {
                flag: "exp",
                message: format!(
                    "no run left: two servers cannot compute {}; give an approximation",
                    grid.without_protocol().join(", ")
                ),
            });
        }
        data_dirs(&grid.data, self.data_dir.as_deref())?;
        out_dir(&self.out)?;
        let mut lines = vec![format!(
            "{} epoch(s), batch {}, lr {}, momentum {}, schedule {}, grad {}; training \
                     samples: {}, test samples: {}; seeds 1..={}.",
            self.epochs,
            self.batch,
            self.lr.map_or_else(
                || "per model (lenet 0.01, others 0.05)".into(),
                |v| v.to_string()
            ),
            self.momentum,
            self.schedule,
            self.grad,
            self.train_limit.map_or("all".into(), |n| n.to_string()),
            self.test_limit.map_or("all".into(), |n| n.to_string()),
            self.seeds
        )];
        lines.push(format!(
            "Two-party comparisons (runs and counted costs): {comparison} ({}).",
            match comparison {
                crate::mpc::Comparison::A2b => "the arithmetic-to-binary adder over AND triples",
                crate::mpc::Comparison::Fss => "the dealer's function-secret-sharing keys",
            }
        ));
        let runs_len = runs.len();
        let missing = grid.without_protocol();
        if !missing.is_empty() {
            lines.push(format!(
                "Two servers have no protocol for e^x {}: those mpc cells are not run.",
                missing.join(", ")
            ));
        }
        Ok(crate::sweep::SweepConfig {
            runs,
            out: self.out.clone(),
            jobs,
            notes: crate::sweep::report::Notes {
                title: format!("ringnn sweep: {} runs", runs_len),
                lines,
            },
            paper: None,
            shard: shard_of(self.shard.as_deref())?,
            merge: merge_dirs(self.merge.as_deref(), &self.out)?,
            comparison,
        })
    }
}

fn finish_sweep(cfg: &crate::sweep::SweepConfig, out: &mut dyn Write) -> Result<(), CliError> {
    // Not locked for the whole sweep: a run prints on stderr too (a two-party run's
    // processes), and a held lock would block it forever.
    let r = crate::sweep::run(cfg, &mut std::io::stderr())?;
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
pub fn sweep(args: &SweepArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let cfg = args.config()?;
    finish_sweep(&cfg, out)
}

/// Arguments of `ringnn reproduce`.
#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// table2 (CNNs on CIFAR) or table3 (seq2seq perplexity).
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// quick (3 seeds, Float and Plain f = 13; Table 2: LeNet-5 to its plateau on 20,000
    /// CIFAR-10 images, about 2 hours on 2 idle cores, 4 to 5 shared; Table 3: seq2seq on
    /// 4,000 Tatoeba pairs, about 30 minutes, a Float run under a minute and a Plain one
    /// one to two; the cut-down setup is stated in the table) or full (the paper's setup,
    /// for big machines).
    #[arg(long, default_value = "quick")]
    pub scale: String,
    /// Also train on the plain (Z_2^64) engine at these fractional bits (comma list).
    #[arg(long = "frac-bits")]
    pub frac_bits: Option<String>,
    /// Seeds per approximation (default: 3 at the quick scale, 1 at the full).
    #[arg(long)]
    pub seeds: Option<u64>,
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
    pub fn config(&self) -> Result<crate::sweep::SweepConfig, CliError> {
        use crate::sweep::reproduce::{setup, Scale, Table};
        let table = match self.table.as_str() {
            "table2" => Table::Table2,
            "table3" => Table::Table3,
            other => {
                return Err(CliError::Failed(format!(
                    "unknown table '{other}'; valid: table2, table3"
                )))
            }
        };
        let scale = match self.scale.as_str() {
            "quick" => Scale::Quick,
            "full" => Scale::Full,
            other => {
                return Err(ConfigError::Name {
                    flag: "scale",
                    message: format!("unknown scale '{other}'; valid: quick, full"),
                }
                .into())
            }
        };
        let fracs: Vec<u32> = match &self.frac_bits {
            None => Vec::new(),
            Some(list) => {
                sweep_items("frac-bits", list, "1..=40")?;
                frac_list(list)?.into_iter().map(FracBits::get).collect()
            }
        };
        let seeds = self.seeds.unwrap_or(match scale {
            Scale::Quick => 3,
            Scale::Full => 1,
        });
        if seeds == 0 {
            return Err(ConfigError::Value {
                flag: "seeds",
                message: "must be at least 1".into(),
            }
            .into());
        }
        let jobs = jobs_of(self.jobs)?;
        let s =
            setup(table, scale, self.data_dir.clone(), &fracs, seeds).map_err(CliError::Failed)?;
        let mut runs = Vec::new();
        for g in &s.grids {
            for r in g.expand()? {
                if !runs
                    .iter()
                    .any(|q: &crate::sweep::grid::RunSpec| q.key == r.key)
                {
                    runs.push(r);
                }
            }
            data_dirs(&g.data, self.data_dir.as_deref())?;
        }
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
            shard: None,
            merge: Vec::new(),
            comparison: crate::mpc::Comparison::A2b,
        })
    }
}

/// Runs `ringnn reproduce`: progress on stderr; the files written and the table (with the
/// paper's figures) on `out`.
///
/// # Errors
/// As [`sweep`].
pub fn reproduce(args: &ReproduceArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let cfg = args.config()?;
    finish_sweep(&cfg, out)
}
