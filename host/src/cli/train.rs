//! `ringnn train`: its arguments, validated into a [`crate::train::TrainConfig`], and the
//! summary or JSON line of the result.

use super::*;

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
    /// Learning rate [default: 0.01 for lenet (at 0.05 it does not train even in float),
    /// 0.05 for the other models (at 0.1 the exact gradient through approximations that
    /// reach 0 diverged in 5 of 24 short MNIST mlp runs); docs/results.md].
    #[arg(long)]
    pub lr: Option<f64>,
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
    /// With `--engine mpc`: the comparison protocol, `a2b` (arithmetic-to-binary adder
    /// over dealer AND triples) or `fss` (the dealer's DReLU and ReLU keys: one round per
    /// comparison or ReLU). Both give the same results.
    #[arg(long, default_value = "a2b")]
    pub comparison: String,
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
            lr: f64::NAN, // set below, once the model is known
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
        cfg.lr = self.lr.unwrap_or_else(|| cfg.model.default_lr());
        cfg.comparison = super::lists::comparison(&self.comparison)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Runs `ringnn train`, writing the summary (or the JSON line) to `out`.
///
/// # Errors
/// A bad argument or a failed run.
pub fn train(args: &TrainArgs, out: &mut dyn Write) -> Result<(), CliError> {
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
    if cfg.model == crate::train::Model::Seq2seq && cfg.engine != crate::train::EngineKind::Mpc {
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
            "{} on {} ({} train / {} test), two servers over TLS f={}, exp {}{}, grad {}: test {} (revealed to the owner only at the end) after {} epochs; {:.1} samples/s; per step {:.0} / {:.0} bytes sent by server 0 / 1 and {:.0} rounds; model in {}",
            r.model,
            r.data,
            r.train_samples,
            r.test_samples,
            r.frac_bits.unwrap_or_default(),
            r.exp,
            r.tanh.as_ref().map_or(String::new(), |t| format!(", tanh {t}")),
            r.grad,
            match r.perplexity {
                Some(p) => format!("perplexity {p:.2}, token accuracy {:.2}%", 100.0 * r.test_accuracy),
                None => format!("accuracy {:.2}%", 100.0 * r.test_accuracy),
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn config(args: &[&str]) -> crate::train::TrainConfig {
        let argv = std::iter::once("ringnn-train").chain(args.iter().copied());
        Cmd::try_parse_from(argv).unwrap().args.config().unwrap()
    }

    /// LeNet at the mlp's rate does not train even in float (12.9% on MNIST): without
    /// `--lr` it gets 0.01; `--lr` always wins.
    #[test]
    fn the_default_rate_follows_the_model_and_lr_overrides_it() {
        assert_eq!(config(&["--model", "lenet", "--data", "mnist"]).lr, 0.01);
        assert_eq!(config(&["--model", "mlp", "--data", "mnist"]).lr, 0.05);
        assert_eq!(
            config(&["--model", "lenet", "--data", "mnist", "--lr", "0.03"]).lr,
            0.03
        );
    }
}
