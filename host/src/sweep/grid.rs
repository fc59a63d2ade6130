//! The grid of a sweep: every combination of model, dataset, approximation, precision and
//! seed, each turned into a validated [`TrainConfig`] before any run starts.
//!
//! Each combination goes through `ringnn train`'s own argument validation
//! ([`crate::cli::TrainArgs::config`]), fed as command-line words: the sweep accepts
//! exactly the names `ringnn train` accepts, with the same messages, and picks up new
//! models and datasets (seq2seq, Tatoeba) the moment `ringnn train` knows them, without a
//! second list to keep in step.

use crate::cli::{ConfigError, TrainArgs};
use crate::train::TrainConfig;
use clap::Parser;
use std::path::PathBuf;

/// A precision: the float engine, or the plain (Z_2^64) engine with `f` fractional bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum Precision {
    /// `Float<f32>`.
    Float,
    /// `Plain` with this many fractional bits.
    Fixed(u32),
}

impl Precision {
    /// `float` or `f=13`: the label of a table column.
    pub fn label(self) -> String {
        match self {
            Precision::Float => "float".into(),
            Precision::Fixed(f) => format!("f={f}"),
        }
    }

    /// The precision of a recorded run (`frac_bits` is `None` for float).
    pub fn of(frac_bits: Option<u32>) -> Precision {
        frac_bits.map_or(Precision::Float, Precision::Fixed)
    }
}

/// The settings every run of a sweep shares.
#[derive(Clone, Debug)]
pub struct Common {
    /// Data directory (else `RINGNN_DATA`).
    pub data_dir: Option<PathBuf>,
    /// Softmax cross-entropy gradient mode.
    pub grad: String,
    /// Sigmoid approximation (recurrent models).
    pub sigmoid: String,
    /// Subtract the row maximum in softmax.
    pub subtract_max: bool,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: String,
    /// At most this many training samples.
    pub train_limit: Option<usize>,
    /// At most this many test samples.
    pub test_limit: Option<usize>,
}

/// The lists a sweep multiplies out. `approx` pairs an e^x approximation with a tanh
/// approximation, so that a reproduction can ask for exactly the paper's pairs instead of
/// a full product.
#[derive(Clone, Debug)]
pub struct Grid {
    /// Model names.
    pub models: Vec<String>,
    /// Dataset names.
    pub data: Vec<String>,
    /// (e^x, tanh) approximation names.
    pub approx: Vec<(String, String)>,
    /// Precisions.
    pub precisions: Vec<Precision>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Shared settings.
    pub common: Common,
}

/// One run of the grid.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Identifies the run in the store: every setting that changes its result.
    pub key: String,
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub data: String,
    /// Precision.
    pub precision: Precision,
    /// e^x approximation name.
    pub exp: String,
    /// tanh approximation name.
    pub tanh: String,
    /// Seed.
    pub seed: u64,
    /// The validated configuration.
    pub config: TrainConfig,
}

/// `ringnn train`'s arguments alone, to parse one run's words.
#[derive(Parser)]
#[command(name = "ringnn-train")]
struct TrainOnly {
    #[command(flatten)]
    args: TrainArgs,
}

impl Grid {
    /// Number of runs.
    pub fn len(&self) -> usize {
        self.models.len()
            * self.data.len()
            * self.approx.len()
            * self.precisions.len()
            * self.seeds.len()
    }

    /// `true` when a list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every run, seed-major (all cells of seed 1 first, so that an interrupted sweep
    /// already fills every cell of the table), each validated.
    ///
    /// # Errors
    /// The first invalid name or setting, as `ringnn train` reports it.
    pub fn expand(&self) -> Result<Vec<RunSpec>, ConfigError> {
        let c = &self.common;
        let settings = format!(
            "epochs={}|batch={}|lr={}|momentum={}|wd={}|schedule={}|grad={}|sigmoid={}|submax={}|train={}|test={}",
            c.epochs,
            c.batch,
            c.lr,
            c.momentum,
            c.weight_decay,
            c.schedule,
            c.grad,
            c.sigmoid,
            c.subtract_max,
            c.train_limit.map_or("all".into(), |n| n.to_string()),
            c.test_limit.map_or("all".into(), |n| n.to_string()),
        );
        let mut out = Vec::with_capacity(self.len());
        for &seed in &self.seeds {
            for data in &self.data {
                for model in &self.models {
                    for &precision in &self.precisions {
                        for (exp, tanh) in &self.approx {
                            let config = self.config(model, data, precision, exp, tanh, seed)?;
                            out.push(RunSpec {
                                key: format!(
                                    "{model}|{data}|{}|exp={exp}|tanh={tanh}|seed={seed}|{settings}",
                                    precision.label()
                                ),
                                model: model.clone(),
                                data: data.clone(),
                                precision,
                                exp: exp.clone(),
                                tanh: tanh.clone(),
                                seed,
                                config,
                            });
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn config(
        &self,
        model: &str,
        data: &str,
        precision: Precision,
        exp: &str,
        tanh: &str,
        seed: u64,
    ) -> Result<TrainConfig, ConfigError> {
        let c = &self.common;
        let (engine, frac) = match precision {
            Precision::Float => ("float", 13),
            Precision::Fixed(f) => ("plain", f),
        };
        // `--flag=value` keeps values that start with '-' from reading as flags.
        let mut words: Vec<String> = vec![
            "ringnn-train".into(),
            format!("--model={model}"),
            format!("--data={data}"),
            format!("--engine={engine}"),
            format!("--frac-bits={frac}"),
            format!("--exp={exp}"),
            format!("--tanh={tanh}"),
            format!("--sigmoid={}", c.sigmoid),
            format!("--grad={}", c.grad),
            format!("--epochs={}", c.epochs),
            format!("--batch={}", c.batch),
            format!("--lr={}", c.lr),
            format!("--momentum={}", c.momentum),
            format!("--weight-decay={}", c.weight_decay),
            format!("--schedule={}", c.schedule),
            format!("--seed={seed}"),
        ];
        if c.subtract_max {
            words.push("--subtract-max".into());
        }
        if let Some(n) = c.train_limit {
            words.push(format!("--train-limit={n}"));
        }
        if let Some(n) = c.test_limit {
            words.push(format!("--test-limit={n}"));
        }
        if let Some(d) = &c.data_dir {
            words.push(format!("--data-dir={}", d.display()));
        }
        let parsed = TrainOnly::try_parse_from(&words).map_err(|e| ConfigError::Value {
            flag: "model",
            message: format!("run {model}/{data}/{exp}: {}", e.kind()),
        })?;
        let mut cfg = parsed.args.config()?;
        cfg.progress = false;
        Ok(cfg)
    }
}
