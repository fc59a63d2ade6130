//! The training configuration: one typed value, built by the command line or the sweep,
//! validated once ([`TrainConfig::validate`]), written into a two-party job file and read
//! back from it by the servers ([`serde`], through the same validation).
//!
//! Each name (model, dataset, engine, schedule) parses with [`FromStr`] and prints with
//! [`Display`] as the command line spells it; the kernel's approximations and gradient
//! modes go by their `parse` and `name`.

use crate::mpc::comparison::Comparison;
use ringnn_core::approx::{ExpApprox, SigmoidApprox, TanhApprox};
use ringnn_core::optim::Schedule;
use ringnn_core::softmax::GradMode;
use ringnn_core::FracBits;
use serde::{Deserialize, Serialize};
use std::fmt::{self, Display};
use std::path::PathBuf;
use std::str::FromStr;

/// A bad configuration, found before any work starts: names the flag (the job file's
/// field of the same name) and what is valid.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
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
    /// A bad number or combination.
    #[error("--{flag}: {message}")]
    Value {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn unknown(what: &str, name: &str, valid: &[&str]) -> String {
    format!("unknown {what} '{name}'; valid: {}", valid.join(", "))
}

/// Implements `FromStr` and `Display` for a name enum from its `ALL` list and `name`.
macro_rules! names {
    ($t:ty, $what:literal) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| unknown($what, s, &Self::ALL.map(Self::name)))
            }
        }
        impl Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// Which engine trains.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EngineKind {
    /// `Float<f32>` with `matrixmultiply`.
    Float,
    /// `Plain` (Z_2^64 fixed point) with ringnn's GEMM.
    Plain,
    /// Two servers on secret shares (`Mpc`), with a dealer, as separate processes over
    /// TLS: see [`crate::mpc::training`].
    Mpc,
}

impl EngineKind {
    /// All of them.
    pub const ALL: [EngineKind; 3] = [EngineKind::Plain, EngineKind::Float, EngineKind::Mpc];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Float => "float",
            EngineKind::Plain => "plain",
            EngineKind::Mpc => "mpc",
        }
    }
}
names!(EngineKind, "engine");

/// Which data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataKind {
    /// ringnn's synthetic digits (the default without a data directory).
    Synthetic,
    /// MNIST (IDX files).
    Mnist,
    /// CIFAR-10 (binary batches).
    Cifar10,
    /// CIFAR-100 (binary, fine labels).
    Cifar100,
    /// Tatoeba English-French pairs (for `seq2seq`).
    Tatoeba,
}

impl DataKind {
    /// All of them, by command-line name.
    pub const ALL: [DataKind; 5] = [
        DataKind::Synthetic,
        DataKind::Mnist,
        DataKind::Cifar10,
        DataKind::Cifar100,
        DataKind::Tatoeba,
    ];

    /// The dataset called `name`, or a message listing the valid names.
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(name: &str) -> Result<DataKind, String> {
        name.parse()
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Synthetic => "synthetic",
            DataKind::Mnist => "mnist",
            DataKind::Cifar10 => "cifar10",
            DataKind::Cifar100 => "cifar100",
            DataKind::Tatoeba => "tatoeba",
        }
    }

    /// An image dataset's image shape and number of classes; `None` for text.
    pub fn image(self) -> Option<(crate::data::Shape, usize)> {
        use crate::data::Shape;
        let (channels, side, classes) = match self {
            DataKind::Synthetic | DataKind::Mnist => (1, 28, 10),
            DataKind::Cifar10 => (3, 32, 10),
            DataKind::Cifar100 => (3, 32, 100),
            DataKind::Tatoeba => return None,
        };
        let shape = Shape {
            channels,
            height: side,
            width: side,
        };
        Some((shape, classes))
    }

    /// Whether training batches are augmented (random crop and flip: the CIFAR sets).
    pub fn augments(self) -> bool {
        matches!(self, DataKind::Cifar10 | DataKind::Cifar100)
    }
}
names!(DataKind, "data");

/// Which network.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Model {
    /// 784-128-128-10 (SecureML's network).
    Mlp,
    /// LeNet-5.
    Lenet,
    /// ResNet-20 (CIFAR).
    Resnet20,
    /// ResNet-32 (CIFAR).
    Resnet32,
    /// ResNet-18.
    Resnet18,
    /// The GRU encoder-decoder (Tatoeba).
    Seq2seq,
}

impl Model {
    /// All of them, by command-line name.
    pub const ALL: [Model; 6] = [
        Model::Mlp,
        Model::Lenet,
        Model::Resnet20,
        Model::Resnet32,
        Model::Resnet18,
        Model::Seq2seq,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Model::Mlp => "mlp",
            Model::Lenet => "lenet",
            Model::Resnet20 => "resnet20",
            Model::Resnet32 => "resnet32",
            Model::Resnet18 => "resnet18",
            Model::Seq2seq => "seq2seq",
        }
    }

    /// The learning rate `ringnn train` and `ringnn sweep` use when `--lr` is not given:
    /// 0.01 for LeNet, 0.05 for the others. At 0.05 (momentum 0.9, batch 128) LeNet does not
    /// train even in floating point: on 10,000 MNIST images with exact softmax, 3 epochs,
    /// Float reached 12.9% at 0.05 and 95.3% at 0.01 (docs/results.md, 5g), the rate the
    /// peers' LeNet scripts use. At 0.1 the mlp's exact gradient through approximations
    /// that reach 0 diverged in 5 of 24 short MNIST runs, hence 0.05 there.
    pub fn default_lr(self) -> f64 {
        match self {
            Model::Lenet => 0.01,
            _ => 0.05,
        }
    }
}
names!(Model, "model");

/// A learning-rate schedule as written: `constant`, `cosine` or `step:S1,S2,...` (the
/// rate divided by 10 at each of those steps).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub enum ScheduleSpec {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Cosine decay to 0 over the run.
    Cosine,
    /// Divided by 10 at each step (1 to 8, ascending).
    Step(Vec<u64>),
}

impl ScheduleSpec {
    /// The kernel's schedule for a run of `total_steps`.
    pub fn schedule(&self, total_steps: u64) -> Schedule {
        match self {
            ScheduleSpec::Constant => Schedule::Constant,
            ScheduleSpec::Cosine => Schedule::Cosine { total: total_steps },
            ScheduleSpec::Step(s) => Schedule::step(s),
        }
    }
}

impl FromStr for ScheduleSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s {
            "constant" => Ok(ScheduleSpec::Constant),
            "cosine" => Ok(ScheduleSpec::Cosine),
            _ => {
                let Some(list) = s.strip_prefix("step:") else {
                    return Err(format!(
                        "unknown schedule '{s}'; valid: constant, cosine, step:S1,S2,... (steps at which the rate is divided by 10)"
                    ));
                };
                let steps = list
                    .split(',')
                    .map(|v| v.trim().parse::<u64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("'{list}' is not a list of step numbers"))?;
                if steps.is_empty() || steps.len() > 8 || steps.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("step: needs 1 to 8 ascending step numbers".into());
                }
                Ok(ScheduleSpec::Step(steps))
            }
        }
    }
}

impl Display for ScheduleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleSpec::Constant => f.write_str("constant"),
            ScheduleSpec::Cosine => f.write_str("cosine"),
            ScheduleSpec::Step(s) => {
                f.write_str("step:")?;
                for (i, v) in s.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
        }
    }
}

/// A training configuration. Build it (fields, or [`Default`] and changes), then
/// [`TrainConfig::validate`] it; [`crate::train::train`] validates again before it starts.
///
/// The serialised form (`job.json` of a two-party run) holds what is trained and how:
/// every field but the run-time options (data folder, checkpoint, resume, progress, the
/// dealer's test seed), and reading it validates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ConfigFile", into = "ConfigFile")]
pub struct TrainConfig {
    /// Model.
    pub model: Model,
    /// Dataset.
    pub data: DataKind,
    /// Data directory (`--data-dir` or `RINGNN_DATA`).
    pub data_dir: Option<PathBuf>,
    /// Engine.
    pub engine: EngineKind,
    /// Fractional bits (Plain and Mpc).
    pub frac_bits: FracBits,
    /// e^x approximation in softmax.
    pub exp: ExpApprox,
    /// tanh approximation (recurrent models).
    pub tanh: TanhApprox,
    /// sigmoid approximation (recurrent models).
    pub sigmoid: SigmoidApprox,
    /// Gradient mode of softmax cross-entropy.
    pub grad: GradMode,
    /// Subtract the row maximum in softmax.
    pub subtract_max: bool,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Base learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: ScheduleSpec,
    /// Seed of initialisation, shuffling, augmentation and synthetic data.
    pub seed: u64,
    /// Use at most this many training samples.
    pub train_limit: Option<usize>,
    /// Use at most this many test samples.
    pub test_limit: Option<usize>,
    /// Checkpoint directory (two-party runs: the working folder, kept).
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint.
    pub resume: bool,
    /// Show progress on stderr.
    pub progress: bool,
    /// Two-party runs: derive the dealer's randomness from this number (tests only:
    /// whoever knows it can unmask every message).
    pub insecure_dealer_seed: Option<u64>,
    /// Two-party runs: the comparison protocol (`a2b`, the default, or `fss`). The
    /// results are the same; the cost is not.
    pub comparison: Comparison,
}

impl Default for TrainConfig {
    /// `ringnn train`'s defaults: mlp on synthetic digits, Plain at f = 13, pwl4, exact
    /// gradient, 5 epochs of 128 at rate 0.05 with momentum 0.9, seed 1, no progress.
    fn default() -> Self {
        TrainConfig {
            model: Model::Mlp,
            data: DataKind::Synthetic,
            data_dir: None,
            engine: EngineKind::Plain,
            frac_bits: FracBits::new(13).expect("13 is a valid number of fractional bits"),
            exp: ExpApprox::Pwl(4),
            tanh: TanhApprox::Hard,
            sigmoid: SigmoidApprox::SecureMl,
            grad: GradMode::Exact,
            subtract_max: false,
            epochs: 5,
            batch: 128,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: ScheduleSpec::Constant,
            seed: 1,
            train_limit: None,
            test_limit: None,
            checkpoint: None,
            resume: false,
            progress: false,
            insecure_dealer_seed: None,
            comparison: Comparison::A2b,
        }
    }
}

fn value(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        flag,
        message: message.into(),
    }
}

impl TrainConfig {
    /// Checks what the types alone do not: the model fits the data, counts and rates are in
    /// range, the checkpoint options agree, and the two-party engine can compute every
    /// chosen function. Nothing is read or started.
    ///
    /// # Errors
    /// The first problem, naming its flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if (self.model == Model::Seq2seq) != (self.data == DataKind::Tatoeba) {
            return Err(ConfigError::Name {
                flag: "model",
                message:
                    "seq2seq trains on --data tatoeba, and the image models on the image datasets"
                        .into(),
            });
        }
        self.validate_schedule()?;
        if self.resume && self.checkpoint.is_none() {
            return Err(value("resume", "needs --checkpoint DIR"));
        }
        if let Some(dir) = self
            .checkpoint
            .as_deref()
            .filter(|d| d.exists() && !d.is_dir())
        {
            return Err(value(
                "checkpoint",
                format!("{} is a file; --checkpoint takes a folder", dir.display()),
            ));
        }
        if self.engine != EngineKind::Mpc {
            if self.insecure_dealer_seed.is_some() {
                return Err(value("insecure-dealer-seed", "is for --engine mpc"));
            }
            if self.comparison != Comparison::A2b {
                return Err(value(
                    "comparison",
                    format!(
                        "{} is a two-party protocol: it is for --engine mpc (plain and float \
                         compare in the clear)",
                        self.comparison
                    ),
                ));
            }
            return Ok(());
        }
        if self.exp == ExpApprox::Exact {
            return Err(value(
                "exp",
                "exact e^x cannot be computed on secret shares; choose an approximation \
                 (pwl4, taylor3, secureml, ...) for --engine mpc",
            ));
        }
        if self.resume && self.insecure_dealer_seed.is_some() {
            return Err(value(
                "insecure-dealer-seed",
                "with --resume it would mask new values with the dealer's old masks: resume \
                 without a fixed seed",
            ));
        }
        Ok(())
    }

    /// The part of [`TrainConfig::validate`] every trainer needs whatever its model and
    /// data: at least one epoch of batches of at least one, a positive rate, momentum in
    /// [0, 1) and a non-negative weight decay.
    ///
    /// # Errors
    /// The first problem, naming its flag.
    pub fn validate_schedule(&self) -> Result<(), ConfigError> {
        for (flag, v) in [("epochs", self.epochs), ("batch", self.batch)] {
            if v == 0 {
                return Err(value(flag, "must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(value("lr", format!("must be positive, not {}", self.lr)));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(value(
                "momentum",
                format!("must be in [0, 1), not {}", self.momentum),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(value(
                "weight-decay",
                format!("must be non-negative, not {}", self.weight_decay),
            ));
        }
        Ok(())
    }

    /// The schedule of a run of `total_steps`.
    pub fn lr_schedule(&self, total_steps: u64) -> Schedule {
        self.schedule.schedule(total_steps)
    }
}

/// The serialised form of a [`TrainConfig`]: names as the command line writes them.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    model: String,
    data: String,
    engine: String,
    frac_bits: u32,
    exp: String,
    tanh: String,
    sigmoid: String,
    grad: String,
    subtract_max: bool,
    epochs: usize,
    batch: usize,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    schedule: String,
    seed: u64,
    train_limit: Option<usize>,
    test_limit: Option<usize>,
    /// Absent for `a2b`, so that job files of earlier versions (which had no such field)
    /// read as `a2b` and an `a2b` job's file, hence its digest, is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comparison: Option<String>,
}

impl From<TrainConfig> for ConfigFile {
    fn from(c: TrainConfig) -> Self {
        ConfigFile {
            model: c.model.to_string(),
            data: c.data.to_string(),
            engine: c.engine.to_string(),
            frac_bits: c.frac_bits.get(),
            exp: c.exp.name().into(),
            tanh: c.tanh.name().into(),
            sigmoid: c.sigmoid.name().into(),
            grad: c.grad.name().into(),
            subtract_max: c.subtract_max,
            epochs: c.epochs,
            batch: c.batch,
            lr: c.lr,
            momentum: c.momentum,
            weight_decay: c.weight_decay,
            schedule: c.schedule.to_string(),
            seed: c.seed,
            train_limit: c.train_limit,
            test_limit: c.test_limit,
            comparison: (c.comparison != Comparison::A2b).then(|| c.comparison.to_string()),
        }
    }
}

/// The names of a configuration as written (command line or file), parsed one by one,
/// each error naming its flag.
pub struct Names<'a> {
    /// `--model`.
    pub model: &'a str,
    /// `--data`.
    pub data: &'a str,
    /// `--engine`.
    pub engine: &'a str,
    /// `--frac-bits`.
    pub frac_bits: u32,
    /// `--exp`.
    pub exp: &'a str,
    /// `--tanh`.
    pub tanh: &'a str,
    /// `--sigmoid`.
    pub sigmoid: &'a str,
    /// `--grad`.
    pub grad: &'a str,
    /// `--schedule`.
    pub schedule: &'a str,
}

impl Names<'_> {
    /// Sets `cfg`'s named fields from these names.
    ///
    /// # Errors
    /// The first unknown name or out-of-range number, naming its flag.
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<(), ConfigError> {
        let name = |flag: &'static str| move |message: String| ConfigError::Name { flag, message };
        cfg.model = self.model.parse().map_err(name("model"))?;
        cfg.data = self.data.parse().map_err(name("data"))?;
        cfg.engine = self.engine.parse().map_err(name("engine"))?;
        cfg.frac_bits =
            FracBits::new(self.frac_bits).map_err(|e| value("frac-bits", e.to_string()))?;
        cfg.exp = ExpApprox::parse(self.exp).map_err(|e| name("exp")(e.to_string()))?;
        cfg.tanh = TanhApprox::parse(self.tanh).map_err(|e| name("tanh")(e.to_string()))?;
        cfg.sigmoid = SigmoidApprox::parse(self.sigmoid, cfg.exp)
            .map_err(|e| name("sigmoid")(e.to_string()))?;
        cfg.grad = GradMode::parse(self.grad)
            .ok_or_else(|| name("grad")(unknown("gradient mode", self.grad, GradMode::NAMES)))?;
        cfg.schedule = self.schedule.parse().map_err(|m| value("schedule", m))?;
        Ok(())
    }
}

impl TryFrom<ConfigFile> for TrainConfig {
    type Error = ConfigError;
    fn try_from(f: ConfigFile) -> Result<Self, ConfigError> {
        let mut cfg = TrainConfig {
            subtract_max: f.subtract_max,
            epochs: f.epochs,
            batch: f.batch,
            lr: f.lr,
            momentum: f.momentum,
            weight_decay: f.weight_decay,
            seed: f.seed,
            train_limit: f.train_limit,
            test_limit: f.test_limit,
            ..TrainConfig::default()
        };
        Names {
            model: &f.model,
            data: &f.data,
            engine: &f.engine,
            frac_bits: f.frac_bits,
            exp: &f.exp,
            tanh: &f.tanh,
            sigmoid: &f.sigmoid,
            grad: &f.grad,
            schedule: &f.schedule,
        }
        .apply(&mut cfg)?;
        if let Some(c) = &f.comparison {
            cfg.comparison = c.parse().map_err(|message| ConfigError::Name {
                flag: "comparison",
                message,
            })?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_their_text() {
        for m in Model::ALL {
            assert_eq!(m.to_string().parse::<Model>(), Ok(m));
        }
        for d in DataKind::ALL {
            assert_eq!(d.to_string().parse::<DataKind>(), Ok(d));
        }
        for e in EngineKind::ALL {
            assert_eq!(e.to_string().parse::<EngineKind>(), Ok(e));
        }
        for s in ["constant", "cosine", "step:100,200", "step:7"] {
            assert_eq!(s.parse::<ScheduleSpec>().unwrap().to_string(), s);
        }
        let e = "lstm".parse::<Model>().unwrap_err();
        assert!(
            e.contains("unknown model 'lstm'") && e.contains("resnet20"),
            "{e}"
        );
        for bad in ["step:", "step:3,2", "step:a", "linear"] {
            assert!(bad.parse::<ScheduleSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_configuration_round_trips_through_json_and_reading_validates() {
        let cfg = TrainConfig {
            model: Model::Lenet,
            data: DataKind::Cifar10,
            engine: EngineKind::Mpc,
            exp: ExpApprox::Taylor(3),
            sigmoid: SigmoidApprox::Exp(ExpApprox::Taylor(3)),
            schedule: ScheduleSpec::Step(vec![10, 20]),
            train_limit: Some(100),
            ..TrainConfig::default()
        };
        let text = serde_json::to_string(&cfg).unwrap();
        let back: TrainConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        // The run-time options stay out of the file.
        let with_dir = TrainConfig {
            data_dir: Some("/data".into()),
            progress: true,
            ..cfg.clone()
        };
        assert_eq!(serde_json::to_string(&with_dir).unwrap(), text);
        // Reading validates: a combination the two-party engine cannot compute is refused.
        let bad = text.replace("\"taylor3\"", "\"exact\"");
        let e = serde_json::from_str::<TrainConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--exp") && e.contains("secret shares"), "{e}");
        let bad = text.replace("\"lenet\"", "\"lenet7\"");
        let e = serde_json::from_str::<TrainConfig>(&bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--model: unknown model 'lenet7'"), "{e}");
    }

    #[test]
    fn the_comparison_is_written_only_when_it_is_not_the_default() {
        let a2b = TrainConfig {
            engine: EngineKind::Mpc,
            ..TrainConfig::default()
        };
        let text = serde_json::to_string(&a2b).unwrap();
        // An a2b file is the file of earlier versions, which read as a2b.
        assert!(!text.contains("comparison"), "{text}");
        assert_eq!(serde_json::from_str::<TrainConfig>(&text).unwrap(), a2b);
        let fss = TrainConfig {
            comparison: Comparison::Fss,
            ..a2b.clone()
        };
        let text = serde_json::to_string(&fss).unwrap();
        assert!(text.contains("\"comparison\":\"fss\""), "{text}");
        assert_eq!(serde_json::from_str::<TrainConfig>(&text).unwrap(), fss);
        let e = serde_json::from_str::<TrainConfig>(&text.replace("\"fss\"", "\"gc\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--comparison: unknown comparison 'gc'"), "{e}");
        // Only the two-party engine has a comparison protocol to choose.
        let plain = TrainConfig {
            engine: EngineKind::Plain,
            ..fss
        };
        let e = plain.validate().unwrap_err().to_string();
        assert!(e.starts_with("--comparison"), "{e}");
    }

    #[test]
    fn validation_names_the_flag_at_fault() {
        let ok = TrainConfig::default();
        ok.validate().unwrap();
        let cases: [(TrainConfig, &str); 7] = [
            (
                TrainConfig {
                    batch: 0,
                    ..ok.clone()
                },
                "--batch",
            ),
            (
                TrainConfig {
                    lr: f64::NAN,
                    ..ok.clone()
                },
                "--lr",
            ),
            (
                TrainConfig {
                    momentum: 1.0,
                    ..ok.clone()
                },
                "--momentum",
            ),
            (
                TrainConfig {
                    resume: true,
                    ..ok.clone()
                },
                "--resume",
            ),
            (
                TrainConfig {
                    data: DataKind::Tatoeba,
                    ..ok.clone()
                },
                "--model",
            ),
            (
                TrainConfig {
                    insecure_dealer_seed: Some(1),
                    ..ok.clone()
                },
                "--insecure-dealer-seed",
            ),
            (
                TrainConfig {
                    engine: EngineKind::Mpc,
                    exp: ExpApprox::Exact,
                    ..ok.clone()
                },
                "--exp",
            ),
        ];
        for (cfg, flag) in cases {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.starts_with(flag), "{flag}: {e}");
        }
    }
}
