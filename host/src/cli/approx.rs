//! `ringnn approx`: how far each approximation strays from its function, per precision.

use super::*;

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
pub fn approx(args: &ApproxArgs, out: &mut dyn Write) -> Result<(), CliError> {
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
