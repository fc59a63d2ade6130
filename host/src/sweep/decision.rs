//! The answer of a sweep, for each model and dataset: the cheapest approximation and
//! precision whose accuracy stays within 0.5, 1 and 2 points of Float, with what one
//! training step costs on two servers; and the table of those costs.
//!
//! *Cheapest* is the shortest modelled network time of one training step (counted bytes
//! and rounds: [`crate::cost::count_step`]) on a stated link ([`step_seconds`]), then the
//! fewest fractional bits. Bytes alone would rank by differences of 0.1% (a Newton step
//! fewer at a higher precision) and ignore rounds, which cost more than that on any real
//! network. A candidate is a `Plain` cell (its accuracy is the two-party engine's
//! up to one ulp per truncation) whose every seed finished and none diverged. The
//! reference is Float with exact e^x (the real-number model), else the best Float cell.

use super::grid::Precision;
use super::summary::{mean_std, Summary};
use crate::cost::StepCount;
use std::fmt::Write;

/// The tolerances, in points of accuracy.
pub const TOLERANCES: [f64; 3] = [0.5, 1.0, 2.0];

/// The link of the cost model: 1 Gbit/s each way between the servers.
pub const LINK_BYTES_PER_SECOND: f64 = 125e6;
/// The round trip of the cost model: 1 ms (servers in one region).
pub const ROUND_TRIP_SECONDS: f64 = 1e-3;

/// The modelled network seconds of a step: each server sends half the online bytes over
/// [`LINK_BYTES_PER_SECOND`] (both at once), plus one [`ROUND_TRIP_SECONDS`] per round.
/// Computation is left out: it is the same for every approximation to within a few
/// percent (docs/performance.md).
pub fn step_seconds(c: &StepCount) -> f64 {
    c.online_bytes as f64 / 2.0 / LINK_BYTES_PER_SECOND + c.rounds as f64 * ROUND_TRIP_SECONDS
}

/// One chosen cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    /// The approximation's row in the summary.
    pub row: usize,
    /// Fractional bits.
    pub f: u32,
    /// Mean and sample deviation of the seeds' accuracies (fractions).
    pub accuracy: (f64, f64),
    /// The counted cost of one training step.
    pub cost: StepCount,
}

/// The answer for one model on one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Model.
    pub model: String,
    /// Dataset.
    pub data: String,
    /// The reference: its row label and mean accuracy (fraction).
    pub reference: (String, f64),
    /// The cheapest choice within each of [`TOLERANCES`], if any.
    pub choices: [Option<Choice>; 3],
}

/// The decision for every (model, dataset) with a Float column.
pub fn decide(sum: &Summary) -> Vec<Decision> {
    let mut out = Vec::new();
    for (jf, col) in sum.columns.iter().enumerate() {
        if col.precision != Precision::Float {
            continue;
        }
        let healthy_mean = |i: usize, j: usize| {
            let c = &sum.cells[i][j];
            let v = if c.healthy.is_empty() {
                &c.accuracy
            } else {
                &c.healthy
            };
            mean_std(v).map(|(m, _)| m)
        };
        let exact = sum.approx.iter().position(|a| a.0 == "exact");
        let reference = match exact.and_then(|i| healthy_mean(i, jf).map(|m| (i, m))) {
            Some((i, m)) => (format!("{} e^x", sum.row_label(i)), m),
            None => {
                let best = (0..sum.approx.len())
                    .filter_map(|i| healthy_mean(i, jf).map(|m| (i, m)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match best {
                    Some((i, m)) => (format!("best: {}", sum.row_label(i)), m),
                    None => continue,
                }
            }
        };
        let mut candidates: Vec<Choice> = Vec::new();
        for (j, c) in sum.columns.iter().enumerate() {
            let Precision::Fixed(f) = c.precision else {
                continue;
            };
            if c.data != col.data || c.model != col.model {
                continue;
            }
            for (i, row) in sum.cells.iter().enumerate() {
                let cell = &row[j];
                let complete = cell.accuracy.len() >= sum.seeds.max(1) && cell.errors == 0;
                if !complete || cell.diverged > 0 {
                    continue;
                }
                if let (Some(cost), Some(acc)) = (cell.counted, mean_std(&cell.accuracy)) {
                    candidates.push(Choice {
                        row: i,
                        f,
                        accuracy: acc,
                        cost,
                    });
                }
            }
        }
        candidates.sort_by(|a, b| {
            step_seconds(&a.cost)
                .total_cmp(&step_seconds(&b.cost))
                .then(a.f.cmp(&b.f))
        });
        let choices = TOLERANCES.map(|tol| {
            candidates
                .iter()
                .find(|c| 100.0 * (reference.1 - c.accuracy.0) <= tol + 1e-9)
                .copied()
        });
        out.push(Decision {
            model: col.model.clone(),
            data: col.data.clone(),
            reference,
            choices,
        });
    }
    out
}

/// `mlp, mnist | exact e^x 97.8 | pwl6, f=12: 97.5 ± 0.1; 29.4 MB, 213 rounds | ...`
pub fn decision_md(sum: &Summary) -> String {
    let decisions = decide(sum);
    let mut md = String::new();
    if decisions.is_empty() {
        return md;
    }
    let _ = writeln!(
        md,
        "## The answer: the cheapest approximation within 0.5, 1 and 2 points of Float\n"
    );
    let _ = writeln!(
        md,
        "| model, data | Float | within 0.5 point | within 1 point | within 2 points |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for d in &decisions {
        let cells: Vec<String> = d
            .choices
            .iter()
            .map(|c| match c {
                Some(c) => format!(
                    "{}, f={}: {:.1} ± {:.1}%; {:.2} MB, {} rounds ({:.0} ms)",
                    sum.row_label(c.row),
                    c.f,
                    100.0 * c.accuracy.0,
                    100.0 * c.accuracy.1,
                    c.cost.online_bytes as f64 / 1e6,
                    c.cost.rounds,
                    1e3 * step_seconds(&c.cost)
                ),
                None => "none in the grid".into(),
            })
            .collect();
        let _ = writeln!(
            md,
            "| {}, {} | {} {:.1}% | {} |",
            d.model,
            d.data,
            d.reference.0,
            100.0 * d.reference.1,
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        md,
        "\nCheapest: the shortest network time of a training step on two servers, modelled \
         from its counted online bytes (both servers, at the sweep's batch) and rounds on a \
         1 Gbit/s link with a 1 ms round trip (ms in brackets), then the fewest fractional \
         bits. Candidates: `Plain` \
         cells whose every seed finished and none diverged (the two-party engine computes \
         the same values up to one ulp per truncation); exact e^x cannot run on two servers. \
         Accuracy: mean ± sample deviation over the seeds. Float: its exact e^x row, \
         diverged seeds left out.\n"
    );
    md
}

/// The counted cost of a training step per approximation and precision, for the columns
/// that have one.
pub fn counted_md(sum: &Summary) -> String {
    let cols: Vec<usize> = (0..sum.columns.len())
        .filter(|&j| {
            matches!(sum.columns[j].precision, Precision::Fixed(_))
                && sum.cells.iter().any(|r| r[j].counted.is_some())
        })
        .collect();
    let mut md = String::new();
    if cols.is_empty() {
        return md;
    }
    let _ = writeln!(
        md,
        "## Two-party cost of one training step (counted: online MB both servers, rounds; dealer MB)\n"
    );
    let mut header = vec!["approximation".to_string()];
    header.extend(cols.iter().map(|&j| sum.columns[j].label()));
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(cols.len()));
    for i in 0..sum.approx.len() {
        if cols.iter().all(|&j| sum.cells[i][j].counted.is_none()) {
            continue;
        }
        let mut row = vec![sum.row_label(i)];
        row.extend(cols.iter().map(|&j| match sum.cells[i][j].counted {
            Some(c) => format!(
                "{:.2}, {}; {:.2}",
                c.online_bytes as f64 / 1e6,
                c.rounds,
                c.dealer_bytes as f64 / 1e6
            ),
            None => "–".into(),
        }));
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::summary::{Cell, Column, Metric};

    fn count(mb: f64, rounds: u64) -> StepCount {
        StepCount {
            rounds,
            online_bytes: (mb * 1e6) as u64,
            dealer_bytes: 1,
        }
    }

    fn cell(acc: &[f64], diverged: usize, counted: Option<StepCount>) -> Cell {
        Cell {
            accuracy: acc.to_vec(),
            healthy: acc[diverged..].to_vec(),
            diverged,
            counted,
            ..Cell::default()
        }
    }

    /// Rows exact, pwl4, taylor3, secureml; columns f=8, f=13, float.
    fn summary() -> Summary {
        let col = |p| Column {
            data: "mnist".into(),
            model: "mlp".into(),
            precision: p,
        };
        let approx = ["exact", "pwl4", "taylor3", "secureml"]
            .map(|a| (a.to_string(), "hard".to_string()))
            .to_vec();
        let cells = vec![
            vec![
                cell(&[0.97, 0.97], 0, None),
                cell(&[0.978, 0.978], 0, None),
                cell(&[0.98, 0.98], 0, None),
            ],
            vec![
                // pwl4: within 0.5 at f=13 (31 MB), within 1 at f=8 (30.9 MB).
                cell(&[0.972, 0.972], 0, Some(count(30.9, 213))),
                cell(&[0.977, 0.976], 0, Some(count(31.0, 213))),
                cell(&[0.977, 0.977], 0, None),
            ],
            vec![
                // taylor3: cheaper, but a seed diverged at f=13; 1.5 points off at f=8.
                cell(&[0.10, 0.98], 1, Some(count(30.0, 169))),
                cell(&[0.965, 0.965], 0, Some(count(30.1, 169))),
                cell(&[0.97, 0.97], 0, None),
            ],
            vec![
                // secureml: cheapest and at chance.
                cell(&[0.1, 0.1], 2, Some(count(29.0, 167))),
                cell(&[0.1, 0.1], 2, Some(count(29.1, 167))),
                cell(&[0.1, 0.1], 2, None),
            ],
        ];
        Summary {
            approx,
            columns: vec![
                col(Precision::Fixed(8)),
                col(Precision::Fixed(13)),
                col(Precision::Float),
            ],
            metrics: vec![Metric::Accuracy; 3],
            cells,
            runs: Vec::new(),
            missing: 0,
            seeds: 2,
        }
    }

    #[test]
    fn the_cheapest_healthy_cell_within_each_tolerance_is_chosen() {
        let sum = summary();
        let d = decide(&sum);
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.reference.0, "exact e^x");
        assert!((d.reference.1 - 0.98).abs() < 1e-12);
        let pick = |k: usize| d.choices[k].map(|c| (sum.row_label(c.row), c.f));
        // 0.5 point: only pwl4 at f=13 (97.65); taylor3 f=8 diverged, f=13 too far.
        assert_eq!(pick(0), Some(("pwl4".into(), 13)));
        // 1 point: pwl4 at f=8 (97.2) is cheaper than at f=13.
        assert_eq!(pick(1), Some(("pwl4".into(), 8)));
        // 2 points: taylor3 at f=13 (96.5), cheaper still; secureml never qualifies.
        assert_eq!(pick(2), Some(("taylor3".into(), 13)));
        let md = decision_md(&sum);
        assert!(
            md.contains(
                "| mlp, mnist | exact e^x 98.0% | pwl4, f=13: 97.6 ± 0.1%; 31.00 MB, 213 rounds (337 ms) |"
            ),
            "{md}"
        );
        // Fewer rounds outweigh a few more bytes: 30.2 MB in 160 rounds beats 30 MB in 169.
        assert!(step_seconds(&count(30.2, 160)) < step_seconds(&count(30.0, 169)));
    }

    #[test]
    fn nothing_qualifies_when_every_candidate_is_too_far_or_incomplete() {
        let mut sum = summary();
        // pwl4 loses a seed at both precisions; taylor3 at f=13 falls 3 points short.
        for j in 0..2 {
            sum.cells[1][j].accuracy.truncate(1);
        }
        sum.cells[2][1] = cell(&[0.95, 0.95], 0, Some(count(30.1, 169)));
        let d = &decide(&sum)[0];
        assert_eq!(d.choices, [None, None, None]);
        assert!(decision_md(&sum).contains("none in the grid"));
        let md = counted_md(&sum);
        assert!(
            md.contains("| taylor3 | 30.00, 169; 0.00 | 30.10, 169; 0.00 |"),
            "{md}"
        );
        assert!(!md.contains("| exact |"), "{md}");
    }
}
