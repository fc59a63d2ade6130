//! A sweep's records arranged by approximation (rows) and model, dataset and precision
//! (columns): the cells the table ([`super::report`]), the answer
//! ([`super::decision`]) and the plots read.

use super::grid::{Precision, RunSpec};
use super::store::RunRow;
use crate::cost::StepCount;
use crate::train::config::DataKind;
use serde_json::Value;
use std::collections::HashMap;

/// A column of the table: one model on one dataset at one precision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Dataset.
    pub data: String,
    /// Model.
    pub model: String,
    /// Precision.
    pub precision: Precision,
}

impl Column {
    /// `mlp, synthetic, f=13`.
    pub fn label(&self) -> String {
        format!("{}, {}, {}", self.model, self.data, self.precision.label())
    }
}

/// What a column measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Metric {
    /// Test accuracy (shown in %).
    Accuracy,
    /// Perplexity.
    Perplexity,
}

/// The finished runs of one (approximation, column) cell.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// Final test accuracies (fractions) of the successful runs.
    pub accuracy: Vec<f64>,
    /// The accuracies of the successful runs that did not diverge.
    pub healthy: Vec<f64>,
    /// Successful runs that diverged (at chance, or a loss worse than uniform).
    pub diverged: usize,
    /// Final perplexities of the successful runs that report one.
    pub perplexity: Vec<f64>,
    /// Training throughput of the successful runs.
    pub samples_per_sec: Vec<f64>,
    /// Two-party runs: both servers' online bytes per training step.
    pub bytes_per_step: Vec<f64>,
    /// Two-party runs: rounds per training step.
    pub rounds_per_step: Vec<f64>,
    /// Overflow counts summed over the successful runs.
    pub overflow: u64,
    /// The dominant cause ([`divergence_cause`]) of each diverged run.
    pub causes: Vec<&'static str>,
    /// What one training step of this cell's configuration costs on two servers, counted
    /// ([`crate::cost::count_step`]); `None` for float, exact e^x and models not counted.
    pub counted: Option<StepCount>,
    /// Runs whose last record is an error.
    pub errors: usize,
}

impl Cell {
    /// The values of `metric` (accuracy as a fraction).
    pub fn values(&self, metric: Metric) -> &[f64] {
        match metric {
            Metric::Accuracy => &self.accuracy,
            Metric::Perplexity => &self.perplexity,
        }
    }
}

/// Mean and sample standard deviation (0 for one value); `None` for none.
pub fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Some((mean, var.sqrt()))
}

/// The results of a sweep, arranged for the table and the plots.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Row labels' (e^x, tanh) pairs, in grid order.
    pub approx: Vec<(String, String)>,
    /// Columns, in grid order.
    pub columns: Vec<Column>,
    /// What each column measures.
    pub metrics: Vec<Metric>,
    /// `cells[row][column]`.
    pub cells: Vec<Vec<Cell>>,
    /// The record of each run of the grid that has one (the last `ok` record of its key,
    /// else its last error), in grid order.
    pub runs: Vec<RunRow>,
    /// Runs of the grid without any record.
    pub missing: usize,
    /// Seeds asked for.
    pub seeds: usize,
}

impl Summary {
    /// Arranges `records` (lines of `runs.jsonl`, oldest first) by the runs of `specs`;
    /// records of other keys (an earlier sweep into the same folder) are left out.
    pub fn new(specs: &[RunSpec], records: &[Value]) -> Summary {
        let mut approx: Vec<(String, String)> = Vec::new();
        let mut columns: Vec<Column> = Vec::new();
        let mut seeds: Vec<u64> = Vec::new();
        for s in specs {
            let a = (s.exp.clone(), s.tanh.clone());
            if !approx.contains(&a) {
                approx.push(a);
            }
            let c = Column {
                data: s.data.clone(),
                model: s.model.clone(),
                precision: s.precision,
            };
            if !columns.contains(&c) {
                columns.push(c);
            }
            if !seeds.contains(&s.seed) {
                seeds.push(s.seed);
            }
        }
        let mut best: HashMap<&str, RunRow> = HashMap::new();
        for v in records {
            let Some(r) = RunRow::from_value(v) else {
                continue;
            };
            let keep_old = best.get(r.key.as_str()).is_some_and(|old| old.ok && !r.ok);
            if !keep_old {
                if let Some(s) = specs.iter().find(|s| s.key == r.key) {
                    best.insert(s.key.as_str(), r);
                }
            }
        }
        let mut cells = vec![vec![Cell::default(); columns.len()]; approx.len()];
        let mut runs = Vec::new();
        let mut missing = 0;
        for s in specs {
            let Some(r) = best.get(s.key.as_str()) else {
                missing += 1;
                continue;
            };
            let i = approx
                .iter()
                .position(|a| a.0 == s.exp && a.1 == s.tanh)
                .expect("every row was collected");
            let j = columns
                .iter()
                .position(|c| c.data == s.data && c.model == s.model && c.precision == s.precision)
                .expect("every column was collected");
            let cell = &mut cells[i][j];
            if r.ok {
                cell.accuracy.extend(r.test_accuracy);
                if r.diverged {
                    cell.diverged += 1;
                    cell.causes.push(divergence_cause(r));
                } else {
                    cell.healthy.extend(r.test_accuracy);
                }
                cell.perplexity.extend(r.perplexity);
                cell.samples_per_sec.extend(r.samples_per_sec);
                cell.bytes_per_step.extend(r.bytes_per_step);
                cell.rounds_per_step.extend(r.rounds_per_step);
                cell.overflow += r.overflow_count;
            } else {
                cell.errors += 1;
            }
            runs.push(r.clone());
        }
        let metrics = (0..columns.len())
            .map(|j| {
                if cells.iter().any(|row| !row[j].perplexity.is_empty()) {
                    Metric::Perplexity
                } else {
                    Metric::Accuracy
                }
            })
            .collect();
        Summary {
            approx,
            columns,
            metrics,
            cells,
            runs,
            missing,
            seeds: seeds.len(),
        }
    }

    /// The label of row `i`: the e^x approximation, with the tanh approximation when the
    /// grid varies it.
    pub fn row_label(&self, i: usize) -> String {
        let (exp, tanh) = &self.approx[i];
        let tanh_varies = self.approx.iter().any(|a| a.1 != self.approx[0].1);
        if tanh_varies {
            format!("{exp}, tanh {tanh}")
        } else {
            exp.clone()
        }
    }

    /// Columns measuring `metric`.
    pub fn columns_of(&self, metric: Metric) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&j| self.metrics[j] == metric)
            .collect()
    }

    /// Successful and failed runs among those recorded.
    pub fn counts(&self) -> (usize, usize) {
        let ok = self.runs.iter().filter(|r| r.ok).count();
        (ok, self.runs.len() - ok)
    }
}

/// The dominant cause of a diverged run: the health counter that fired first during its
/// training (`first_fired`); for records without it, the first that fired in causal
/// order ([`crate::train::RunHealth::counters`]: a wrap or saturation corrupts values,
/// which empties rows, which leaves labels at probability 0); `none fired` when the run was healthy in
/// its arithmetic and still failed (a learning failure: the rate, or a gradient that
/// vanished at this precision); `wrapped` for a record of an older build that counted
/// only overflows; `on shares` for a two-party run and `uncounted` for a float run, whose
/// health is not counted. `none fired` and `uncounted` gain `, uniform output` when the
/// run ended with the loss of uniform predictions ([`uniform_output`]).
pub fn divergence_cause(r: &RunRow) -> &'static str {
    let cause = counted_cause(r);
    match cause {
        "none fired" if uniform_output(r) => "none fired, uniform output",
        "uncounted" if uniform_output(r) => "uncounted, uniform output",
        _ => cause,
    }
}

/// Whether a run ended predicting every class alike: the training loss of its last
/// recorded epoch within 0.5 % of `ln classes` (the loss of uniform predictions), on an
/// image dataset. Such a run has stopped learning rather than blown up: its logits no
/// longer depend on the input (a network whose last ReLUs are all off, or whose logits
/// were driven flat). A two-party run reveals no loss and is never said to be so.
pub fn uniform_output(r: &RunRow) -> bool {
    let classes = DataKind::parse(&r.data)
        .ok()
        .and_then(DataKind::image)
        .map(|(_, c)| c);
    let loss = r.history.last().and_then(|p| p.train_loss).or(r.train_loss);
    match (classes, loss) {
        (Some(c), Some(l)) => {
            let ln = (c as f64).ln();
            (l - ln).abs() <= 0.005 * ln
        }
        _ => false,
    }
}

/// [`divergence_cause`] from the health counters alone.
fn counted_cause(r: &RunRow) -> &'static str {
    match &r.health {
        Some(h) => match h.first_fired.as_deref() {
            // The recorded order of events, where the build tracked it.
            Some(first) => h
                .counters()
                .into_iter()
                .map(|(name, _)| name)
                .find(|name| *name == first)
                .unwrap_or("none fired"),
            None => h.fired().unwrap_or("none fired"),
        },
        None if r.overflow_count > 0 => "wrapped",
        None if r.engine == "mpc" => "on shares",
        None => "uncounted",
    }
}
