//! `table.md`: the sweep's results laid out like the paper's Table 2 — one row per
//! approximation, one column per model and precision — with the mean and spread over
//! seeds, overflow counts where any value wrapped, failures listed, and (for `ringnn
//! reproduce`) the paper's figures in columns of their own.
//!
//! A column whose runs report a `perplexity` (sequence models) goes into a perplexity
//! table instead of the accuracy table, so both kinds of model can share one sweep.

use super::grid::Precision;
use super::paper::{PaperMetric, PaperTable};
use super::store::RunRow;
pub use super::summary::{divergence_cause, mean_std, Cell, Column, Metric, Summary};
use std::fmt::Write;

fn cell_text(cell: &Cell, metric: Metric, seeds: usize) -> String {
    let (scale, digits) = match metric {
        Metric::Accuracy => (100.0, 1),
        Metric::Perplexity => (1.0, 2),
    };
    let all = cell.values(metric);
    // Diverged runs are counted, not averaged in, unless every run diverged.
    let vals = if metric == Metric::Accuracy && cell.diverged > 0 && !cell.healthy.is_empty() {
        &cell.healthy[..]
    } else {
        all
    };
    let mut s = match mean_std(vals) {
        None if cell.errors > 0 => "failed".to_string(),
        None => "–".to_string(),
        Some((m, _)) if vals.len() == 1 => format!("{:.digits$}", m * scale),
        Some((m, sd)) => format!("{:.digits$} ± {:.digits$}", m * scale, sd * scale),
    };
    if metric == Metric::Accuracy && cell.diverged > 0 {
        let cause = most_common(&cell.causes);
        if cell.healthy.is_empty() {
            let _ = write!(s, " (all {} diverged: {cause})", cell.diverged);
        } else {
            let _ = write!(s, " (+{} diverged: {cause})", cell.diverged);
        }
    } else if !vals.is_empty() && vals.len() < seeds {
        let _ = write!(s, " (n={})", vals.len());
    }
    if cell.overflow > 0 {
        let _ = write!(s, " [overflow {}]", cell.overflow);
    }
    s
}

/// The most frequent of `causes`, the earliest on a tie.
fn most_common(causes: &[&'static str]) -> &'static str {
    let count = |c: &str| causes.iter().filter(|x| **x == c).count();
    causes
        .iter()
        .copied()
        .rev()
        .max_by_key(|c| count(c))
        .unwrap_or("none fired")
}

/// A diverged run's counters that fired, for the list of diverged runs.
fn health_text(r: &RunRow) -> String {
    match &r.health {
        Some(h) => {
            let fired: Vec<String> = h
                .counters()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            if fired.is_empty() {
                "no health counter fired: the arithmetic was sound and learning failed \
                 (see docs/results.md, collapses, diagnosed)"
                    .into()
            } else {
                let when = h
                    .first_fired_step
                    .map_or(String::new(), |s| format!(" (first, at step {s})"));
                format!("cause {}{when}: {}", divergence_cause(r), fired.join(", "))
            }
        }
        None if r.overflow_count > 0 => {
            format!("{} products wrapped in Z_2^64", r.overflow_count)
        }
        None if r.engine == "mpc" => {
            "at chance on two servers (health is not counted on shares: it would open them)".into()
        }
        None => format!("no health recorded ({} engine)", r.engine),
    }
}

fn paper_text(v: f64, metric: PaperMetric) -> String {
    match metric {
        PaperMetric::Accuracy => format!("{:.1}", 100.0 * v),
        PaperMetric::Perplexity => format!("{v:.2}"),
    }
}

/// How a reproduction is set up, for the head of its table.
#[derive(Clone, Debug, Default)]
pub struct Notes {
    /// A title (`# ...`).
    pub title: String,
    /// Lines stated under the title (setup, substitutions, sizes).
    pub lines: Vec<String>,
}

/// The markdown of `table.md`.
pub fn table_md(sum: &Summary, notes: &Notes, paper: Option<&PaperTable>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", notes.title);
    for l in &notes.lines {
        let _ = writeln!(md, "- {l}");
    }
    if !notes.lines.is_empty() {
        md.push('\n');
    }
    let (ok, failed) = sum.counts();
    let _ = writeln!(
        md,
        "{ok} runs finished, {failed} failed, {} not run yet; {} seed(s) per cell.\n",
        sum.missing, sum.seeds
    );
    md.push_str(&super::decision::decision_md(sum));
    for metric in [Metric::Accuracy, Metric::Perplexity] {
        let cols = sum.columns_of(metric);
        if cols.is_empty() {
            continue;
        }
        let paper_cols: Vec<(&str, &str)> = match paper {
            Some(p) if (p.metric == PaperMetric::Accuracy) == (metric == Metric::Accuracy) => p
                .columns()
                .into_iter()
                .filter(|(d, _)| cols.iter().any(|&j| sum.columns[j].data == *d))
                .collect(),
            _ => Vec::new(),
        };
        let _ = match metric {
            Metric::Accuracy => writeln!(
                md,
                "## Test accuracy (%): mean ± standard deviation over seeds\n"
            ),
            Metric::Perplexity => writeln!(
                md,
                "## Test perplexity (lower is better): mean ± standard deviation over seeds\n"
            ),
        };
        let mut header = vec!["approximation".to_string()];
        header.extend(cols.iter().map(|&j| sum.columns[j].label()));
        header.extend(
            paper_cols
                .iter()
                .map(|(d, m)| format!("paper: {m}, {}", super::paper::source_data(d))),
        );
        let _ = writeln!(md, "| {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(header.len() - 1));
        for i in 0..sum.approx.len() {
            let mut row = vec![sum.row_label(i)];
            row.extend(
                cols.iter()
                    .map(|&j| cell_text(&sum.cells[i][j], metric, sum.seeds)),
            );
            if let Some(p) = paper {
                row.extend(paper_cols.iter().map(|(d, m)| {
                    p.get(d, m, &sum.approx[i].0)
                        .map_or("–".into(), |v| paper_text(v, p.metric))
                }));
            }
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "Cells: mean ± sample standard deviation over the seeds that finished (one value \
         when one seed); `(+k diverged: cause)`: k more runs diverged (at chance, or a loss worse than \
         uniform) and are listed below instead of averaged in, with their most common cause: the \
         first health counter that fired (`wrapped` products, `saturated` encodings, \
         `recip_out_of_range`, `empty_rows` of softmax, `label_at_floor`: label probability 0), \
         `none fired` (sound arithmetic, failed learning), `on shares` (two-party runs are not \
         counted), `uncounted` (float); `none fired` and `uncounted` gain `, uniform output` when the \
         run ended at the loss of uniform predictions (ln classes: it stopped learning, its \
         output no longer depends on the input); `(n=k)`: only k of the seeds finished; `[overflow N]`: N values \
         wrapped in Z_2^64, summed over seeds (shown only when non-zero); `failed`: every \
         run of the cell failed (see below); `–`: not run.\n"
    );
    md.push_str(&super::decision::counted_md(sum));
    let _ = writeln!(md, "## Training throughput (samples/s, mean over seeds)\n");
    let mut header = vec!["approximation".to_string()];
    header.extend(sum.columns.iter().map(Column::label));
    let _ = writeln!(md, "| {} |", header.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(header.len() - 1));
    for i in 0..sum.approx.len() {
        let mut row = vec![sum.row_label(i)];
        row.extend(sum.cells[i].iter().map(|c| {
            mean_std(&c.samples_per_sec).map_or("–".into(), |(m, _)| format!("{m:.0}"))
        }));
        let _ = writeln!(md, "| {} |", row.join(" | "));
    }
    let mpc: Vec<usize> = (0..sum.columns.len())
        .filter(|&j| matches!(sum.columns[j].precision, Precision::Mpc(_)))
        .collect();
    if !mpc.is_empty() {
        let _ = writeln!(
            md,
            "\n## Two-party cost per training step (both servers' online MB, rounds; mean over seeds)\n"
        );
        let mut header = vec!["approximation".to_string()];
        header.extend(mpc.iter().map(|&j| sum.columns[j].label()));
        let _ = writeln!(md, "| {} |", header.join(" | "));
        let _ = writeln!(md, "|---|{}", "---:|".repeat(header.len() - 1));
        for i in 0..sum.approx.len() {
            let mut row = vec![sum.row_label(i)];
            row.extend(mpc.iter().map(|&j| {
                let c = &sum.cells[i][j];
                match (mean_std(&c.bytes_per_step), mean_std(&c.rounds_per_step)) {
                    (Some((b, _)), Some((r, _))) => format!("{:.2} MB, {r:.0} rounds", b / 1e6),
                    _ => "–".into(),
                }
            }));
            let _ = writeln!(md, "| {} |", row.join(" | "));
        }
    }
    let diverged: Vec<&RunRow> = sum.runs.iter().filter(|r| r.ok && r.diverged).collect();
    if !diverged.is_empty() {
        let _ = writeln!(
            md,
            "\n## Diverged runs (counted beside the means, not in them)\n"
        );
        for r in diverged {
            let cause = health_text(r);
            let _ = writeln!(
                md,
                "- `{}`: accuracy {}, final train loss {}; {cause}",
                r.key,
                r.test_accuracy
                    .map_or("–".into(), |a| format!("{:.1}%", 100.0 * a)),
                r.train_loss.map_or("–".into(), |l| format!("{l:.3}")),
            );
        }
    }
    let errors: Vec<&RunRow> = sum.runs.iter().filter(|r| !r.ok).collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\n## Failed runs\n");
        for r in errors {
            let _ = writeln!(
                md,
                "- `{}`: {}",
                r.key,
                r.error
                    .as_deref()
                    .unwrap_or("(no message)")
                    .replace('\n', " ")
            );
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::grid::{Common, Grid, RunSpec};
    use serde_json::json;
    use serde_json::Value;

    fn grid(models: &[&str]) -> Vec<RunSpec> {
        Grid {
            models: models.iter().map(|m| m.to_string()).collect(),
            data: vec!["synthetic".into()],
            approx: vec![
                ("exact".into(), "hard".into()),
                ("pwl4".into(), "hard".into()),
            ],
            precisions: vec![Precision::Float, Precision::Fixed(13)],
            seeds: vec![1, 2],
            common: Common {
                data_dir: None,
                grad: "exact".into(),
                sigmoid: "secureml".into(),
                subtract_max: false,
                epochs: 1,
                batch: 8,
                lr: Some(0.1),
                momentum: 0.9,
                weight_decay: 0.0,
                schedule: "constant".into(),
                train_limit: Some(10),
                test_limit: Some(10),
                comparison: crate::mpc::Comparison::A2b,
            },
        }
        .expand()
        .unwrap()
    }

    fn rec(s: &RunSpec, extra: Value) -> Value {
        let mut v = json!({
            "key": s.key, "status": "ok", "model": s.model, "data": s.data,
            "frac_bits": match s.precision { Precision::Fixed(f) => json!(f), _ => Value::Null },
            "exp": s.exp, "tanh": s.tanh, "seed": s.seed, "samples_per_sec": 100.0,
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    }

    #[test]
    fn diverged_runs_are_counted_beside_the_mean_and_listed_with_a_cause() {
        let specs = grid(&["mlp"]);
        let mut records = Vec::new();
        for s in &specs {
            // Seed 2 of pwl4 at f=13 collapses with wraps; of exact on float, without.
            let bad = s.seed == 2
                && ((s.exp == "pwl4" && s.precision == Precision::Fixed(13))
                    || (s.exp == "exact" && s.precision == Precision::Float));
            let (acc, ovf) = if bad {
                (0.1, u64::from(s.exp == "pwl4") * 7)
            } else {
                (0.9, 0)
            };
            let mut extra = json!({"test_accuracy": acc, "overflow_count": ovf, "diverged": bad,
                       "train_loss": if bad { 2.31 } else { 0.3 }});
            if s.precision != Precision::Float {
                // A wrap, then empty rows, then labels at 0: the wrap is the cause.
                let health = json!({"wrapped": ovf, "saturated": 0, "empty_rows": 3 * ovf,
                    "recip_out_of_range": 0, "label_at_floor": 11 * ovf});
                extra
                    .as_object_mut()
                    .unwrap()
                    .extend(health.as_object().unwrap().clone());
            }
            records.push(rec(s, extra));
        }
        let md = table_md(&Summary::new(&specs, &records), &Notes::default(), None);
        assert!(
            md.contains("| exact | 90.0 (+1 diverged: uncounted, uniform output) | 90.0 ± 0.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| pwl4 | 90.0 ± 0.0 | 90.0 (+1 diverged: wrapped) [overflow 7] |"),
            "{md}"
        );
        assert!(md.contains("## Diverged runs"), "{md}");
        assert!(
            md.contains("cause wrapped: wrapped 7, empty_rows 21, label_at_floor 77"),
            "{md}"
        );
        assert!(md.contains("no health recorded"), "{md}");
        // Healthy arithmetic that still failed to learn: no counter fired.
        let quiet: Vec<Value> = specs
            .iter()
            .map(|s| {
                rec(
                    s,
                    json!({"test_accuracy": 0.1, "diverged": true, "wrapped": 0,
                        "saturated": 0, "empty_rows": 0, "recip_out_of_range": 0,
                        "label_at_floor": 0}),
                )
            })
            .collect();
        let md = table_md(&Summary::new(&specs, &quiet), &Notes::default(), None);
        assert!(md.contains("(all 2 diverged: none fired)"), "{md}");
        assert!(md.contains("no health counter fired"), "{md}");
        // Every run of a cell diverged: their mean, said to be all diverged.
        let all_bad: Vec<Value> = specs
            .iter()
            .map(|s| rec(s, json!({"test_accuracy": 0.1, "diverged": true})))
            .collect();
        let md = table_md(&Summary::new(&specs, &all_bad), &Notes::default(), None);
        assert!(
            md.contains("| exact | 10.0 ± 0.0 (all 2 diverged: uncounted) |"),
            "{md}"
        );
    }

    /// A run whose labels sank to probability 0 first and whose products wrapped later
    /// is put down to the labels (the recorded order), not to the wraps.
    #[test]
    fn the_counter_that_fired_first_is_the_cause() {
        let v = json!({"key": "k", "status": "ok", "engine": "plain", "diverged": true,
            "wrapped": 5, "saturated": 0, "empty_rows": 0, "recip_out_of_range": 0,
            "label_at_floor": 100, "first_fired": "label_at_floor", "first_fired_step": 40});
        let r = RunRow::from_value(&v).unwrap();
        assert_eq!(divergence_cause(&r), "label_at_floor");
        assert!(health_text(&r).starts_with("cause label_at_floor (first, at step 40)"));
        // Without the order (an older record): the causal order decides.
        let mut v = v;
        v.as_object_mut().unwrap().remove("first_fired");
        let r = RunRow::from_value(&v).unwrap();
        assert_eq!(divergence_cause(&r), "wrapped");
    }

    /// A diverged run whose loss ended at ln(classes) is said to predict uniformly; one
    /// that blew up, or one on text data, is not.
    #[test]
    fn a_run_that_ended_at_the_uniform_loss_says_so() {
        let row = |data: &str, engine: &str, last: f64| {
            let mut v = json!({"key": "k", "status": "ok", "engine": engine, "data": data,
                "diverged": true, "test_accuracy": 0.1,
                "history": [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": last}]});
            if engine == "plain" {
                let o = v.as_object_mut().unwrap();
                for k in [
                    "wrapped",
                    "saturated",
                    "empty_rows",
                    "recip_out_of_range",
                    "label_at_floor",
                ] {
                    o.insert(k.into(), json!(0));
                }
            }
            RunRow::from_value(&v).unwrap()
        };
        let ln10 = 10f64.ln();
        assert_eq!(
            divergence_cause(&row("cifar10", "float", 2.3024)),
            "uncounted, uniform output"
        );
        assert_eq!(
            divergence_cause(&row("mnist", "plain", ln10)),
            "none fired, uniform output"
        );
        assert_eq!(
            divergence_cause(&row("cifar100", "float", ln10)),
            "uncounted"
        );
        assert_eq!(
            divergence_cause(&row("cifar100", "float", 100f64.ln())),
            "uncounted, uniform output"
        );
        assert_eq!(divergence_cause(&row("cifar10", "float", 3.1)), "uncounted");
        assert_eq!(
            divergence_cause(&row("tatoeba", "float", ln10)),
            "uncounted"
        );
        assert_eq!(divergence_cause(&row("mnist", "mpc", ln10)), "on shares");
    }

    #[test]
    fn the_most_common_cause_wins_and_a_tie_goes_to_the_earliest() {
        assert_eq!(
            most_common(&["empty_rows", "wrapped", "wrapped"]),
            "wrapped"
        );
        assert_eq!(
            most_common(&["label_at_floor", "wrapped"]),
            "label_at_floor"
        );
        assert_eq!(most_common(&[]), "none fired");
    }

    #[test]
    fn cells_hold_mean_and_spread_overflow_and_failures() {
        let specs = grid(&["mlp"]);
        assert_eq!(specs.len(), 8);
        let mut records = Vec::new();
        for s in &specs {
            let acc = if s.seed == 1 { 0.8 } else { 0.9 };
            let ovf = u64::from(s.exp == "pwl4" && s.precision == Precision::Fixed(13));
            records.push(rec(s, json!({"test_accuracy": acc, "overflow_count": ovf})));
        }
        // The last run failed before; a later `ok` record of the same key wins.
        records.push(json!({"key": specs[7].key, "status": "error", "error": "boom"}));
        records.push(rec(
            &specs[7],
            json!({"test_accuracy": 0.9, "overflow_count": 1}),
        ));
        records.push(json!({"key": "another sweep", "status": "ok"}));
        let sum = Summary::new(&specs, &records);
        assert_eq!(sum.counts(), (8, 0));
        let md = table_md(&sum, &Notes::default(), None);
        assert!(md.contains("| exact | 85.0 ± 7.1 | 85.0 ± 7.1 |"), "{md}");
        assert!(
            md.contains("| pwl4 | 85.0 ± 7.1 | 85.0 ± 7.1 [overflow 2] |"),
            "{md}"
        );
        let mut with_failure = records.clone();
        with_failure.truncate(7);
        with_failure.push(json!({"key": specs[7].key, "status": "error", "error": "boom"}));
        let md = table_md(
            &Summary::new(&specs, &with_failure),
            &Notes::default(),
            None,
        );
        assert!(
            md.contains("85.0 ± 7.1 | 80.0 (n=1) [overflow 1] |"),
            "{md}"
        );
        assert!(md.contains("## Failed runs") && md.contains("boom"), "{md}");
    }

    #[test]
    fn results_with_perplexity_go_to_a_perplexity_table_beside_the_paper() {
        let specs = grid(&["mlp", "lenet"]);
        let records: Vec<Value> = specs
            .iter()
            .map(|s| {
                if s.model == "mlp" {
                    rec(s, json!({"test_accuracy": 0.5}))
                } else {
                    rec(s, json!({"test_accuracy": null, "perplexity": 12.0}))
                }
            })
            .collect();
        let sum = Summary::new(&specs, &records);
        assert_eq!(sum.columns_of(Metric::Perplexity).len(), 2);
        let md = table_md(&sum, &Notes::default(), Some(&crate::sweep::paper::TABLE3));
        assert!(
            md.contains("## Test accuracy") && md.contains("## Test perplexity"),
            "{md}"
        );
        assert!(
            md.contains("| exact | 12.00 ± 0.00 | 12.00 ± 0.00 |"),
            "{md}"
        );
    }
}
