//! What a training run reports: the result of every engine, with the two servers' cost
//! for a two-party run.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One epoch's figures.
#[derive(Clone, Debug, Serialize)]
pub struct EpochStats {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Mean training loss (plaintext engines).
    pub train_loss: f64,
    /// Training accuracy (plaintext engines).
    pub train_accuracy: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Seconds spent training in this epoch.
    pub seconds: f64,
}

/// The result of a run (the JSON line of `ringnn train --json`).
#[derive(Clone, Debug, Serialize)]
pub struct TrainResult {
    /// Model.
    pub model: String,
    /// Dataset.
    pub data: String,
    /// Engine.
    pub engine: String,
    /// Fractional bits (`null` for float).
    pub frac_bits: Option<u32>,
    /// e^x approximation.
    pub exp: String,
    /// tanh approximation (recurrent models only: the image models compute no tanh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tanh: Option<String>,
    /// Gradient mode.
    pub grad: String,
    /// Whether softmax subtracted each row's maximum before e^x: `--subtract-max`, and
    /// always with `--exp exact` (`training_softmax`).
    pub subtract_max: bool,
    /// Epochs trained (in total, including resumed ones).
    pub epochs: usize,
    /// Training samples per epoch.
    pub train_samples: usize,
    /// Test samples.
    pub test_samples: usize,
    /// Final test accuracy (seq2seq: token accuracy under teacher forcing).
    pub test_accuracy: f64,
    /// Final test perplexity (seq2seq only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
    /// Final mean training loss.
    pub train_loss: f64,
    /// Seconds of training (this invocation, evaluation excluded).
    pub train_seconds: f64,
    /// Training samples per second (this invocation).
    pub samples_per_sec: f64,
    /// Products that wrapped in Z_2^64 (Plain), over the whole run.
    pub overflow_count: u64,
    /// Trained parameters.
    pub parameters: usize,
    /// Per-epoch figures.
    pub history: Vec<EpochStats>,
    /// The run failed to learn: see [`diverged`].
    pub diverged: bool,
    /// The checkpoint written last, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// What went wrong in the arithmetic (Plain runs; see [`RunHealth`]).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub health: Option<RunHealth>,
    /// Two-party runs: what the servers sent and how long each phase took.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub mpc: Option<MpcCost>,
}

/// What a two-party training run cost, beside its [`TrainResult`] (whose loss and
/// training accuracy stay unrevealed: `null`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MpcCost {
    /// Online bytes each server sent to the other (training and predictions).
    pub bytes_sent: [u64; 2],
    /// Rounds (the same for both servers).
    pub rounds: u64,
    /// Bytes each server received from the dealer.
    pub offline_bytes: [u64; 2],
    /// Training steps run.
    pub steps: u64,
    /// Online bytes per training step, per server.
    pub bytes_per_step: [f64; 2],
    /// Rounds per training step.
    pub rounds_per_step: f64,
    /// Samples per second of the online phase alone (steps whose dealer material was
    /// produced beforehand; the slower server).
    pub online_samples_per_sec: f64,
    /// Seconds of the offline phase of those steps (the slower server).
    pub offline_seconds: f64,
    /// The working folder (keys, shares, checkpoints, outputs) when it is kept
    /// (`--checkpoint DIR`); absent when it was a temporary folder, removed at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<PathBuf>,
}

/// A run's health: the events that make a fixed-point run drift from its real-number
/// model, counted over this invocation's training steps and test evaluations. Recorded
/// for `Plain` runs only: a float run has no ring to wrap, and a two-party engine holds
/// shares, where counting a data-dependent event would open it (its encodings of public
/// constants are counted in `overflow_count`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHealth {
    /// Products whose integer value left `[-2^63, 2^63)` (matrix products unchecked).
    pub wrapped: u64,
    /// Public constants and exact-function results (exact e^x) saturated on encoding.
    pub saturated: u64,
    /// Softmax rows with no mass (every e^x 0), made uniform.
    pub empty_rows: u64,
    /// Reciprocal inputs outside `(0, 2^62)` (row sums that wrapped).
    pub recip_out_of_range: u64,
    /// Training samples (seq2seq: target tokens) whose label probability was 0, floored at
    /// `1e-12` in the loss.
    pub label_at_floor: u64,
    /// ReLU, clamp and max-of-lines inputs outside the range of the two-party engine's
    /// one-round gates ([`ringnn_core::Health::beyond_fss_width`]): 0 means the run is
    /// what `--comparison fss` computes. Not a cause of collapse, so not among
    /// [`RunHealth::counters`]. Absent (0) in records of older builds.
    #[serde(default)]
    pub beyond_fss_width: u64,
    /// The counter that fired first (in [`RunHealth::counters`] order when several fired
    /// in one step): the cause of a collapse, where the totals also count its
    /// consequences. `None` when none fired (or a seq2seq run, which does not track it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_fired: Option<String>,
    /// The training step (1-based, this invocation) after which `first_fired` was first
    /// seen (an event of a test evaluation shows at the next step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_fired_step: Option<u64>,
}

impl RunHealth {
    /// The record's counters and their names, in causal order: a wrap or saturation
    /// corrupts values, which empties rows and sends the reciprocal out of its domain,
    /// which leaves labels at probability 0.
    pub fn counters(&self) -> [(&'static str, u64); 5] {
        [
            ("wrapped", self.wrapped),
            ("saturated", self.saturated),
            ("recip_out_of_range", self.recip_out_of_range),
            ("empty_rows", self.empty_rows),
            ("label_at_floor", self.label_at_floor),
        ]
    }

    /// The engine's counts with `label_at_floor` and the first counter to fire beside
    /// them; `None` when the engine cannot see values.
    pub fn of(
        engine: Option<ringnn_core::Health>,
        label_at_floor: u64,
        first: Option<(&'static str, u64)>,
    ) -> Option<RunHealth> {
        engine.map(|h| RunHealth {
            wrapped: h.wrapped,
            saturated: h.saturated,
            empty_rows: h.empty_rows,
            recip_out_of_range: h.recip_out_of_range,
            beyond_fss_width: h.beyond_fss_width,
            label_at_floor,
            first_fired: first.map(|f| f.0.to_string()),
            first_fired_step: first.map(|f| f.1),
        })
    }

    /// The first of [`RunHealth::counters`] that is not 0.
    pub fn fired(&self) -> Option<&'static str> {
        self.counters()
            .into_iter()
            .find(|(_, n)| *n > 0)
            .map(|(name, _)| name)
    }
}

/// Whether a finished run failed to learn: its test accuracy is at chance (at most 1.25
/// times `1 / classes`), or its final training loss is infinite or above its start:
/// above both `ln classes` (predicting every class alike, about where a fresh network
/// starts) and `start_loss`, the mean loss of the run's first batch (a fresh network may
/// start above `ln classes`; NaN when unknown). A two-party run has no revealed loss and
/// is judged by its accuracy alone. A table averages such a run with the healthy ones only
/// after saying so ([`crate::sweep::report`]).
pub fn diverged(test_accuracy: f64, classes: usize, train_loss: f64, start_loss: f64) -> bool {
    let classes = classes.max(2) as f64;
    let at_chance = test_accuracy.is_nan() || test_accuracy <= 1.25 / classes;
    let start = if start_loss.is_finite() {
        start_loss.max(classes.ln())
    } else {
        classes.ln()
    };
    let loss_blew_up = train_loss.is_infinite() || train_loss > start + 1e-9;
    at_chance || loss_blew_up
}

#[cfg(test)]
mod tests {
    use super::diverged;

    #[test]
    fn a_run_at_chance_or_worse_than_uniform_has_diverged() {
        let nan = f64::NAN;
        assert!(!diverged(0.93, 10, 0.3, 2.4));
        assert!(diverged(0.10, 10, 2.3, 2.4), "at chance");
        assert!(diverged(0.124, 10, 1.0, 2.4), "within 1.25x chance");
        assert!(!diverged(0.13, 10, 1.0, 2.4), "learning, slowly");
        assert!(
            diverged(0.8, 10, 2.5, nan),
            "loss above ln 10, start unknown"
        );
        assert!(
            diverged(0.8, 10, 2.5, 2.2),
            "loss above ln 10 and its start"
        );
        assert!(
            diverged(0.8, 10, 3.1, 3.0),
            "loss above a start above ln 10"
        );
        assert!(
            !diverged(0.48, 10, 2.5, 2.9),
            "a short run still below its start"
        );
        assert!(diverged(nan, 10, 0.3, 2.4), "no accuracy");
        assert!(diverged(0.9, 10, f64::INFINITY, 2.4));
        // A two-party run reveals no loss (NaN): judged by accuracy.
        assert!(!diverged(0.9, 10, nan, nan));
    }
}
