//! The grid of a sweep: every combination of model, dataset, approximation, precision and
//! seed, each turned into a validated [`TrainConfig`] before any run starts.
//!
//! Each combination's names go through the same parsing ([`Names`]) and validation
//! ([`TrainConfig::validate`]) as `ringnn train`'s: the sweep accepts exactly the names
//! `ringnn train` accepts, with the same messages, and picks up new models and datasets
//! the moment the configuration knows them.

use crate::mpc::Comparison;
use crate::train::config::Names;
use crate::train::{ConfigError, TrainConfig};
use std::path::PathBuf;

/// An execution and its precision: the float engine, the plain (Z_2^64) engine with `f`
/// fractional bits, or two servers on shares with `f` fractional bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum Precision {
    /// `Float<f32>`.
    Float,
    /// `Plain` with this many fractional bits.
    Fixed(u32),
    /// Two servers (`Mpc`) with this many fractional bits.
    Mpc(u32),
}

impl Precision {
    /// `float`, `f=13` or `mpc f=13`: the label of a table column.
    pub fn label(self) -> String {
        match self {
            Precision::Float => "float".into(),
            Precision::Fixed(f) => format!("f={f}"),
            Precision::Mpc(f) => format!("mpc f={f}"),
        }
    }

    /// The precision of a recorded run (`frac_bits` is `None` for float).
    pub fn of(engine: &str, frac_bits: Option<u32>) -> Precision {
        match (engine, frac_bits) {
            ("mpc", Some(f)) => Precision::Mpc(f),
            (_, f) => f.map_or(Precision::Float, Precision::Fixed),
        }
    }

    /// The engine's name and the fractional bits of a run at this precision.
    pub fn engine(self) -> (&'static str, Option<u32>) {
        match self {
            Precision::Float => ("float", None),
            Precision::Fixed(f) => ("plain", Some(f)),
            Precision::Mpc(f) => ("mpc", Some(f)),
        }
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
    /// Learning rate; `None`: the model's [`Model::default_lr`](crate::train::Model::default_lr).
    pub lr: Option<f64>,
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
    /// The comparison protocol of the two-party runs (and of the counted costs).
    pub comparison: Comparison,
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

/// Whether two servers can compute the e^x approximation named `exp` (an unknown name
/// counts as computable: the configuration's validation names it).
fn two_party(exp: &str) -> bool {
    ringnn_core::approx::ExpApprox::parse(exp).map_or(true, |a| a.mpc_ready())
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

    /// The e^x approximations of the grid that two servers cannot compute (their mpc
    /// cells are left out of [`Grid::expand`]); empty without an mpc precision.
    pub fn without_protocol(&self) -> Vec<String> {
        if !self
            .precisions
            .iter()
            .any(|p| matches!(p, Precision::Mpc(_)))
        {
            return Vec::new();
        }
        let mut v: Vec<String> = Vec::new();
        for (exp, _) in &self.approx {
            if !two_party(exp) && !v.contains(exp) {
                v.push(exp.clone());
            }
        }
        v
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
        // The rate as each run resolves it (the model's default unless given).
        let settings = |lr: f64| {
            format!(
            "epochs={}|batch={}|lr={}|momentum={}|wd={}|schedule={}|grad={}|sigmoid={}|submax={}|train={}|test={}",
            c.epochs,
            c.batch,
            lr,
            c.momentum,
            c.weight_decay,
            c.schedule,
            c.grad,
            c.sigmoid,
            c.subtract_max,
            c.train_limit.map_or("all".into(), |n| n.to_string()),
            c.test_limit.map_or("all".into(), |n| n.to_string()),
        )
        };
        let mut out = Vec::with_capacity(self.len());
        for &seed in &self.seeds {
            for data in &self.data {
                for model in &self.models {
                    for &precision in &self.precisions {
                        for (exp, tanh) in &self.approx {
                            if matches!(precision, Precision::Mpc(_)) && !two_party(exp) {
                                // No protocol computes it: the cell stays empty, and the
                                // table says why (`Grid::without_protocol`).
                                continue;
                            }
                            let config = self.config(model, data, precision, exp, tanh, seed)?;
                            // The adder's keys stay as they were; fss runs get their own.
                            let cmp = if config.comparison == Comparison::Fss {
                                "|cmp=fss"
                            } else {
                                ""
                            };
                            out.push(RunSpec {
                                key: format!(
                                    "{model}|{data}|{}|exp={exp}|tanh={tanh}|seed={seed}|{}{cmp}",
                                    precision.label(),
                                    settings(config.lr)
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
        let (engine, frac) = precision.engine();
        let mut cfg = TrainConfig {
            data_dir: c.data_dir.clone(),
            subtract_max: c.subtract_max,
            epochs: c.epochs,
            batch: c.batch,
            lr: f64::NAN, // set below, once the model is known
            momentum: c.momentum,
            weight_decay: c.weight_decay,
            seed,
            train_limit: c.train_limit,
            test_limit: c.test_limit,
            progress: false,
            comparison: if matches!(precision, Precision::Mpc(_)) {
                c.comparison
            } else {
                Comparison::A2b
            },
            ..TrainConfig::default()
        };
        Names {
            model,
            data,
            engine,
            frac_bits: frac.unwrap_or(13),
            exp,
            tanh,
            sigmoid: &c.sigmoid,
            grad: &c.grad,
            schedule: &c.schedule,
        }
        .apply(&mut cfg)?;
        cfg.lr = c.lr.unwrap_or_else(|| cfg.model.default_lr());
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(comparison: Comparison) -> Grid {
        Grid {
            models: vec!["mlp".into()],
            data: vec!["synthetic".into()],
            approx: vec![
                ("pwl4".into(), "hard".into()),
                ("exact".into(), "hard".into()),
            ],
            precisions: vec![Precision::Fixed(13), Precision::Mpc(13)],
            seeds: vec![1],
            common: Common {
                data_dir: None,
                grad: "exact".into(),
                sigmoid: "secureml".into(),
                subtract_max: false,
                epochs: 1,
                batch: 8,
                lr: Some(0.05),
                momentum: 0.9,
                weight_decay: 0.0,
                schedule: "constant".into(),
                train_limit: Some(16),
                test_limit: Some(8),
                comparison,
            },
        }
    }

    /// The two-party runs carry the sweep's comparison, and an fss run has a key of its
    /// own; Plain runs and the adder's runs keep the keys they had before the choice
    /// existed (so earlier stores still match).
    #[test]
    fn the_comparison_reaches_two_party_runs_and_their_keys_only() {
        let a2b = grid(Comparison::A2b).expand().unwrap();
        let fss = grid(Comparison::Fss).expand().unwrap();
        // exact has no two-party protocol: 3 runs each.
        assert_eq!((a2b.len(), fss.len()), (3, 3));
        for (a, f) in a2b.iter().zip(&fss) {
            assert_eq!(a.precision, f.precision);
            let mpc = matches!(f.precision, Precision::Mpc(_));
            assert_eq!(f.config.comparison == Comparison::Fss, mpc, "{}", f.key);
            assert_eq!(a.config.comparison, Comparison::A2b);
            assert!(!a.key.contains("cmp="), "{}", a.key);
            if mpc {
                assert_eq!(f.key, format!("{}|cmp=fss", a.key));
            } else {
                assert_eq!(f.key, a.key);
            }
        }
    }

    /// Without `--lr` each run takes its model's rate (LeNet does not train at the mlp's
    /// 0.05), and its key says which; a given rate holds for every model.
    #[test]
    fn each_model_gets_its_default_rate_unless_one_is_given() {
        let mut g = grid(Comparison::A2b);
        g.models = vec!["mlp".into(), "lenet".into()];
        g.data = vec!["mnist".into()];
        g.precisions = vec![Precision::Float];
        g.approx.truncate(1);
        g.common.lr = None;
        let runs = g.expand().unwrap();
        let rate = |m: &str| runs.iter().find(|r| r.model == m).unwrap();
        assert_eq!(rate("mlp").config.lr, 0.05);
        assert_eq!(rate("lenet").config.lr, 0.01);
        assert!(
            rate("lenet").key.contains("|lr=0.01|"),
            "{}",
            rate("lenet").key
        );
        assert!(rate("mlp").key.contains("|lr=0.05|"), "{}", rate("mlp").key);
        g.common.lr = Some(0.02);
        assert!(g.expand().unwrap().iter().all(|r| r.config.lr == 0.02));
    }
}
