//! `ringnn cost`: its arguments, validated into a [`crate::cost::CostConfig`], and the
//! command.

use super::lists::{dedup, exp_list, frac_list, items, sigmoid_list, tanh_list};
use super::{CliError, ConfigError};
use crate::mpc::Comparison;
use clap::Args;
use ringnn_core::approx::{ExpApprox, TanhApprox};
use ringnn_core::engine::fss_width;
use std::io::Write;

/// Arguments of `ringnn cost`.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// e^x approximations inside softmax rows (comma list, `all` for every one the
    /// two-party engine can compute, `none`).
    #[arg(
        long,
        default_value = "pwl4,pwl6,taylor2,taylor3,secureml,limit8,piranha"
    )]
    pub exp: String,
    /// tanh approximations (`hard`, `none`).
    #[arg(long, default_value = "hard")]
    pub tanh: String,
    /// sigmoid approximations (`secureml`, `exp` through each --exp, `none`).
    #[arg(long, default_value = "secureml")]
    pub sigmoid: String,
    /// Fractional bits (comma list).
    #[arg(long = "frac-bits", default_value = "13")]
    pub frac_bits: String,
    /// Logits per softmax row (comma list).
    #[arg(long, default_value = "10,100")]
    pub cols: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 128)]
    pub rows: usize,
    /// Measure softmax with the row maximum subtracted too.
    #[arg(long = "with-max")]
    pub with_max: bool,
    /// Leave out the reciprocal alone.
    #[arg(long = "no-reciprocal")]
    pub no_reciprocal: bool,
    /// Models whose training step (batch --rows, each --exp in softmax) is measured:
    /// mlp, lenet, resnet20 (long: minutes), or none.
    #[arg(long, default_value = "mlp,lenet")]
    pub models: String,
    /// Seed of the inputs and the dealer.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The comparison protocol: `a2b` (arithmetic-to-binary adder over dealer AND
    /// triples) or `fss` (the dealer's DReLU and ReLU keys on the opened masked input).
    #[arg(long, default_value = "a2b")]
    pub comparison: String,
    /// One JSON object per line instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also time each training step with the dealer and both servers as separate
    /// processes over TLS on loopback (mlp and lenet, on the synthetic digits: 4 steps a
    /// run, the last 3 timed with their dealer material produced beforehand):
    /// `process_online_seconds` and `process_dealer_seconds` per step.
    #[arg(long)]
    pub processes: bool,
}

impl CostArgs {
    /// The validated measurement plan.
    ///
    /// # Errors
    /// An unknown name, an empty list, an exact function (not computable on shares), a
    /// zero count.
    pub fn config(&self) -> Result<crate::cost::CostConfig, ConfigError> {
        use crate::cost::Function;
        let exps: Vec<ExpApprox> = if self.exp.trim() == "all" {
            ExpApprox::ALL
                .iter()
                .copied()
                .filter(|&a| a != ExpApprox::Exact)
                .collect()
        } else {
            exp_list("exp", &self.exp)?
        };
        let exact = |flag: &'static str| ConfigError::Value {
            flag,
            message: "exact functions cannot be computed on secret shares; choose approximations"
                .into(),
        };
        if exps.contains(&ExpApprox::Exact) {
            return Err(exact("exp"));
        }
        let tanhs = tanh_list(&self.tanh)?;
        if tanhs.contains(&TanhApprox::Exact) {
            return Err(exact("tanh"));
        }
        let sigs = sigmoid_list(&self.sigmoid, &exps)?;
        if sigs.iter().any(|s| s.name() == "exact") {
            return Err(exact("sigmoid"));
        }
        let mut cols = Vec::new();
        for c in items("cols", &self.cols)? {
            match c.parse::<usize>() {
                Ok(v) if v >= 1 => cols.push(v),
                _ => {
                    return Err(ConfigError::Value {
                        flag: "cols",
                        message: format!("'{c}' is not a whole number of at least 1"),
                    })
                }
            }
        }
        if self.rows == 0 {
            return Err(ConfigError::Value {
                flag: "rows",
                message: "must be at least 1".into(),
            });
        }
        let mut functions = Vec::new();
        for &exp in &exps {
            for &c in &dedup(cols.clone()) {
                for subtract_max in [false, true] {
                    if subtract_max && !self.with_max {
                        continue;
                    }
                    functions.push(Function::Softmax {
                        exp,
                        cols: c,
                        subtract_max,
                    });
                }
            }
        }
        functions.extend(tanhs.into_iter().map(Function::Tanh));
        functions.extend(sigs.into_iter().map(Function::Sigmoid));
        if !self.no_reciprocal {
            functions.push(Function::Reciprocal);
        }
        let models = items("models", &self.models)?;
        if models != ["none"] {
            for m in &models {
                let model = crate::cost::MODELS
                    .into_iter()
                    .find(|k| k == m)
                    .ok_or_else(|| ConfigError::Name {
                        flag: "models",
                        message: format!("unknown model '{m}'; valid: mlp, lenet, resnet20, none"),
                    })?;
                functions.extend(exps.iter().map(|&exp| Function::Step { model, exp }));
            }
        }
        if functions.is_empty() {
            return Err(ConfigError::Value {
                flag: "exp",
                message: "nothing to measure".into(),
            });
        }
        let comparison = super::lists::comparison(&self.comparison)?;
        Ok(crate::cost::CostConfig {
            functions,
            frac_bits: frac_list(&self.frac_bits)?,
            rows: self.rows,
            seed: self.seed,
            comparison,
            processes: self.processes,
        })
    }
}

/// Runs `ringnn cost`, writing the table (or JSON lines) to `out`.
///
/// # Errors
/// A bad argument, or a failed write.
pub fn cost(args: &CostArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let cfg = args.config()?;
    let rows = crate::cost::run(&cfg).map_err(CliError::Failed)?;
    if args.json {
        for r in &rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
    } else {
        write!(out, "{}", crate::cost::table(&rows))?;
        let (dealer, how) = match cfg.comparison {
            Comparison::A2b => (
                "what party 1 receives from the dealer (party 0: a 32-byte seed)",
                "arithmetic-to-binary adder over dealer AND triples",
            ),
            Comparison::Fss => (
                "what both parties receive from the dealer besides their seeds (party 1's \
                 corrections, both parties' keys)",
                "the dealer's FSS keys on the opened masked input",
            ),
        };
        let w: Vec<String> = cfg
            .frac_bits
            .iter()
            .map(|f| format!("{} at f = {}", fss_width(f.get()), f.get()))
            .collect();
        let widths = match cfg.comparison {
            Comparison::A2b => format!(
                " ReLU and max (pooling, arg-max) compared over the reduced width {} (exact \
                 where `Plain` counts no input beyond it, `beyond_fss_width`), the ReLU's \
                 backward bit in the forward's batch; max-of-lines, clamp and the \
                 reciprocal's range checks at 64, its pieces at f + 2 bits.",
                w.join(", ")
            ),
            Comparison::Fss => format!(
                " ReLU, spline and max (pooling, arg-max) keys at the reduced width {} \
                 (exact where `Plain` counts no input beyond it, `beyond_fss_width`); the \
                 reciprocal's range checks at 64, its pieces' spline at f + 2 bits.",
                w.join(", ")
            ),
        };
        writeln!(
            out,
            "\nrounds and bytes: per batch of {} rows, each party (deterministic); dealer B: \
             {dealer}; time: the slower party in one process, no network or TLS (a lower \
             bound; `--processes` adds each training step's seconds with the dealer and both \
             servers as processes over TLS on loopback). Comparisons: {} ({how}).{widths}",
            cfg.rows, cfg.comparison,
        )?;
    }
    Ok(())
}
