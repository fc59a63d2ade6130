//! The sweep's pictures, each written as SVG (for documents) and PNG (for quick viewing):
//!
//! - `accuracy.*` (and `perplexity.*` when sequence models ran): the final metric per
//!   approximation, one marker series per model and precision (the mean), bars for the
//!   spread over seeds (cut at 0 and 100 %), and a small ring for every seed; in a reproduction the paper's columns for the same datasets as crosses (black,
//!   grey).
//! - `accuracy_vs_frac_bits.*`: accuracy against the number of fractional bits, one line
//!   per approximation and one panel per model and dataset; the float result of the same
//!   approximation is a dashed line. Written when at least one fixed-point precision ran.
//! - `loss_curves.*`: training loss per epoch of every run, one panel per model and
//!   precision, one colour per approximation.
//! - `accuracy_vs_cost.*`: test accuracy against the two servers' online bytes per training
//!   step (left) and rounds per step (right), the axes tight around the points, one row of panels per model and
//!   dataset, one colour per approximation, one marker per seed: filled for the two-party
//!   runs, hollow for the `Plain` runs at the same precision (which cost what the
//!   two-party run of the cell measured). The Pareto front of the cells' mean accuracy
//!   (no cheaper cell is as accurate) is a black line. Written when a two-party run
//!   finished.

use super::grid::Precision;
use super::paper::PaperTable;
use super::report::{mean_std, Metric, Summary};
use crate::plot::PlotError;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn write_both<F: Figure>(dir: &Path, stem: &str, fig: &F) -> Result<Vec<PathBuf>, PlotError> {
    let mut out = Vec::new();
    for ext in ["svg", "png"] {
        let path = dir.join(format!("{stem}.{ext}"));
        let err = |reason: String| PlotError::Draw {
            path: path.display().to_string(),
            reason,
        };
        if ext == "svg" {
            fig.draw(SVGBackend::new(&path, fig.size()).into_drawing_area())
                .map_err(err)?;
        } else {
            fig.draw(BitMapBackend::new(&path, fig.size()).into_drawing_area())
                .map_err(err)?;
        }
        out.push(path);
    }
    Ok(out)
}

fn grid_shape(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 3);
    (n.div_ceil(cols).max(1), cols)
}

fn scale(metric: Metric) -> f64 {
    match metric {
        Metric::Accuracy => 100.0,
        Metric::Perplexity => 1.0,
    }
}

struct PerApprox<'a> {
    sum: &'a Summary,
    metric: Metric,
    paper: Option<&'a PaperTable>,
}

impl Figure for PerApprox<'_> {
    fn size(&self) -> (u32, u32) {
        ((120 + 70 * self.sum.approx.len() as u32).max(700), 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(s)?;
        let sum = self.sum;
        let k = scale(self.metric);
        let cols = sum.columns_of(self.metric);
        let n = sum.approx.len();
        // The paper's columns for the datasets of this sweep (its models differ from the
        // quick scale's, so they are matched on the dataset alone, as in the table).
        let mut paper_series: Vec<(String, Vec<(usize, f64)>)> = Vec::new();
        if let Some(p) = self.paper {
            for (d, m) in p.columns() {
                if !cols.iter().any(|&j| sum.columns[j].data == d) {
                    continue;
                }
                let pts: Vec<(usize, f64)> = sum
                    .approx
                    .iter()
                    .enumerate()
                    .filter_map(|(i, a)| p.get(d, m, &a.0).map(|v| (i, v * k)))
                    .collect();
                if !pts.is_empty() {
                    paper_series
                        .push((format!("paper: {m}, {}", super::paper::source_data(d)), pts));
                }
            }
        }
        let paper_pts: Vec<(usize, f64)> = paper_series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .collect();
        // Room above 100% for the legend, one line per series.
        let series = cols.len() + paper_series.len();
        let top = match self.metric {
            Metric::Accuracy => 104.0 + 6.0 * series as f64,
            Metric::Perplexity => {
                let m = cols
                    .iter()
                    .flat_map(|&j| sum.cells.iter().flat_map(move |r| r[j].perplexity.clone()))
                    .chain(paper_pts.iter().map(|p| p.1))
                    .fold(1.0f64, f64::max);
                1.15 * m
            }
        };
        let labels: Vec<String> = (0..n).map(|i| sum.row_label(i)).collect();
        let fmt = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        };
        let caption = match self.metric {
            Metric::Accuracy => "test accuracy (%) per approximation",
            Metric::Perplexity => "test perplexity per approximation",
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.6..(n as f64 - 0.4), 0.0..top)
            .map_err(s)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&fmt)
            .draw()
            .map_err(s)?;
        let width = 0.6 / cols.len().max(1) as f64;
        for (ci, &j) in cols.iter().enumerate() {
            let color = Palette99::pick(ci).to_rgba();
            let dx = -0.3 + width * (ci as f64 + 0.5);
            let pts: Vec<(f64, f64, f64)> = (0..n)
                .filter_map(|i| {
                    mean_std(sum.cells[i][j].values(self.metric))
                        .map(|(m, sd)| (i as f64 + dx, m * k, sd * k))
                })
                .collect();
            // The spread over seeds as a vertical bar with caps (plotters' ErrorBar needs
            // a feature this crate does not enable), kept within what the metric can be.
            let cap = 0.15 * width;
            let ceiling = match self.metric {
                Metric::Accuracy => 100.0,
                Metric::Perplexity => f64::INFINITY,
            };
            chart
                .draw_series(pts.iter().filter(|p| p.2 > 0.0).flat_map(|&(x, m, sd)| {
                    let (lo, hi) = ((m - sd).max(0.0), (m + sd).min(ceiling));
                    [
                        PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1)),
                        PathElement::new(vec![(x - cap, lo), (x + cap, lo)], color.stroke_width(1)),
                        PathElement::new(vec![(x - cap, hi), (x + cap, hi)], color.stroke_width(1)),
                    ]
                }))
                .map_err(s)?;
            // Every seed, so that a diverged one shows as itself and not only in the spread.
            let metric = self.metric;
            chart
                .draw_series((0..n).flat_map(|i| {
                    sum.cells[i][j].values(metric).iter().map(move |&v| {
                        Circle::new((i as f64 + dx, v * k), 2, color.stroke_width(1))
                    })
                }))
                .map_err(s)?;
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(x, m, _)| Circle::new((x, m), 4, color.filled())),
                )
                .map_err(s)?
                .label(sum.columns[j].label())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        for (n, (label, pts)) in paper_series.iter().enumerate() {
            let shade = if n % 2 == 0 {
                BLACK
            } else {
                RGBColor(120, 120, 120)
            };
            chart
                .draw_series(
                    pts.iter()
                        .map(move |&(i, v)| Cross::new((i as f64, v), 6, shade.stroke_width(2))),
                )
                .map_err(s)?
                .label(label.as_str())
                .legend(move |(x, y)| Cross::new((x + 8, y), 6, shade.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(s)?;
        root.present().map_err(s)
    }
}

/// Labels only at whole numbers (epochs, fractional bits).
fn whole(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{:.0}", x)
    } else {
        String::new()
    }
}

/// The median of `v`; `None` when empty.
fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

struct VsFracBits<'a> {
    sum: &'a Summary,
    /// (data, model) panels that have a fixed-point column.
    panels: Vec<(String, String)>,
}

impl Figure for VsFracBits<'_> {
    fn size(&self) -> (u32, u32) {
        let (r, c) = grid_shape(self.panels.len());
        (620 * c as u32, 480 * r as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(s)?;
        let sum = self.sum;
        let areas = root.split_evenly(grid_shape(self.panels.len()));
        for (p, (data, model)) in self.panels.iter().enumerate() {
            let cols: Vec<usize> = sum
                .columns_of(Metric::Accuracy)
                .into_iter()
                .filter(|&j| &sum.columns[j].data == data && &sum.columns[j].model == model)
                .collect();
            let fracs: Vec<u32> = cols
                .iter()
                .filter_map(|&j| match sum.columns[j].precision {
                    Precision::Fixed(f) => Some(f),
                    Precision::Float | Precision::Mpc(_) => None,
                })
                .collect();
            let lo = *fracs.iter().min().unwrap_or(&8) as f64 - 1.0;
            let hi = *fracs.iter().max().unwrap_or(&24) as f64 + 1.0;
            let mut chart = ChartBuilder::on(&areas[p])
                .caption(
                    format!("{model} on {data}: accuracy vs fractional bits"),
                    ("sans-serif", 20),
                )
                .margin(12)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(lo..hi, 0.0..100.0)
                .map_err(s)?;
            chart
                .configure_mesh()
                .x_desc("fractional bits f")
                .x_labels((hi - lo) as usize + 1)
                .x_label_formatter(&whole)
                .y_desc("test accuracy (%): line = median of seeds, rings = each seed")
                .draw()
                .map_err(s)?;
            for i in 0..sum.approx.len() {
                let color = Palette99::pick(i).to_rgba();
                let mut pts: Vec<(f64, f64)> = Vec::new();
                let mut seeds: Vec<(f64, f64)> = Vec::new();
                let mut float = None;
                for &j in &cols {
                    let acc = &sum.cells[i][j].accuracy;
                    // The median: one collapsed seed of three does not drag the line.
                    let Some(m) = median(acc) else {
                        continue;
                    };
                    match sum.columns[j].precision {
                        Precision::Fixed(f) => {
                            pts.push((f as f64, 100.0 * m));
                            seeds.extend(acc.iter().map(|a| (f as f64, 100.0 * a)));
                        }
                        Precision::Float => float = Some(100.0 * m),
                        Precision::Mpc(_) => {}
                    }
                }
                chart
                    .draw_series(
                        seeds
                            .iter()
                            .map(|&p| Circle::new(p, 4, color.stroke_width(1))),
                    )
                    .map_err(s)?;
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                if let Some(fl) = float {
                    chart
                        .draw_series(DashedLineSeries::new(
                            vec![(lo, fl), (hi, fl)],
                            6,
                            4,
                            color.stroke_width(1),
                        ))
                        .map_err(s)?;
                }
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(s)?
                    .label(sum.row_label(i))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(s)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(s)?;
        }
        root.present().map_err(s)
    }
}

/// One cell of `accuracy_vs_cost`: an approximation at one precision, with its cost.
#[derive(Clone, Debug, PartialEq)]
struct CostPoint {
    /// The approximation's row.
    row: usize,
    /// Fractional bits.
    f: u32,
    /// Mean online bytes per step (both servers), in MB.
    mb: f64,
    /// Mean rounds per step.
    rounds: f64,
    /// Accuracies (%) of the two-party runs' seeds.
    mpc: Vec<f64>,
    /// Accuracies (%) of the `Plain` runs' seeds at the same precision.
    plain: Vec<f64>,
}

/// Per (data, model): a point per approximation and precision that has a cost, counted
/// ([`super::report::Cell::counted`], for `Plain` cells) or measured (two-party runs),
/// with the accuracies of both engines' seeds at that precision.
fn cost_panels(sum: &Summary) -> Vec<((String, String), Vec<CostPoint>)> {
    let mut panels: Vec<((String, String), Vec<CostPoint>)> = Vec::new();
    for (j, c) in sum.columns.iter().enumerate() {
        let (f, mpc) = match c.precision {
            Precision::Mpc(f) => (f, true),
            Precision::Fixed(f) => (f, false),
            Precision::Float => continue,
        };
        let key = (c.data.clone(), c.model.clone());
        for (i, row) in sum.cells.iter().enumerate() {
            let cell = &row[j];
            let measured = match (
                mean_std(&cell.bytes_per_step),
                mean_std(&cell.rounds_per_step),
            ) {
                (Some((b, _)), Some((r, _))) => Some((b / 1e6, r)),
                _ => None,
            };
            let counted = cell
                .counted
                .map(|k| (k.online_bytes as f64 / 1e6, k.rounds as f64));
            let accs: Vec<f64> = cell.accuracy.iter().map(|a| 100.0 * a).collect();
            let idx = match panels.iter().position(|(k, _)| *k == key) {
                Some(p) => p,
                None => {
                    panels.push((key.clone(), Vec::new()));
                    panels.len() - 1
                }
            };
            let pts = &mut panels[idx].1;
            let at = pts.iter().position(|p| p.row == i && p.f == f);
            let cost = counted.or(measured);
            let pt = match (at, cost) {
                (Some(p), _) => &mut pts[p],
                (None, Some((mb, rounds))) => {
                    pts.push(CostPoint {
                        row: i,
                        f,
                        mb,
                        rounds,
                        mpc: Vec::new(),
                        plain: Vec::new(),
                    });
                    pts.last_mut().expect("just pushed")
                }
                (None, None) => continue,
            };
            if let Some((mb, rounds)) = counted {
                (pt.mb, pt.rounds) = (mb, rounds);
            }
            if mpc {
                pt.mpc = accs;
            } else {
                pt.plain = accs;
            }
        }
    }
    panels.retain(|(_, pts)| !pts.is_empty());
    panels
}

/// The points of the Pareto front of `(cost, accuracy)`: sorted by cost, each more
/// accurate than every cheaper one.
fn pareto(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = points.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in v {
        if front.last().is_none_or(|l| p.1 > l.1) {
            front.push(p);
        }
    }
    front
}

struct VsCost<'a> {
    sum: &'a Summary,
    panels: Vec<((String, String), Vec<CostPoint>)>,
}

impl Figure for VsCost<'_> {
    fn size(&self) -> (u32, u32) {
        (1240, 480 * self.panels.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(s)?;
        let areas = root.split_evenly((self.panels.len(), 2));
        for (p, ((data, model), pts)) in self.panels.iter().enumerate() {
            for (side, by_bytes) in [(0, true), (1, false)] {
                let x = |c: &CostPoint| if by_bytes { c.mb } else { c.rounds };
                let xs: Vec<f64> = pts.iter().map(x).collect();
                let hi = xs.iter().copied().fold(0.0f64, f64::max);
                let lo = xs.iter().copied().fold(hi, f64::min);
                // Tight around the points: the products dominate a step, so approximations
                // differ by a few percent and an axis from zero would stack them.
                let pad = ((hi - lo) * 0.08).max(hi * 0.02).max(1e-9);
                let range = (lo - pad).max(0.0)..hi + pad;
                let (what, unit) = if by_bytes {
                    ("online MB per step (both servers)", "MB")
                } else {
                    ("rounds per step", "rounds")
                };
                let mut chart = ChartBuilder::on(&areas[2 * p + side])
                    .caption(
                        if pts.iter().all(|c| c.f == pts[0].f) {
                            format!(
                                "{model} on {data}, f={}: accuracy vs {unit} per step",
                                pts[0].f
                            )
                        } else {
                            format!("{model} on {data}: accuracy vs {unit} per step")
                        },
                        ("sans-serif", 20),
                    )
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(50)
                    .build_cartesian_2d(range, 0.0..100.0)
                    .map_err(s)?;
                chart
                    .configure_mesh()
                    .x_desc(what)
                    .x_labels(8)
                    .x_label_formatter(&|v: &f64| {
                        if *v >= 100.0 {
                            format!("{v:.0}")
                        } else if *v >= 10.0 {
                            format!("{v:.1}")
                        } else {
                            format!("{v:.2}")
                        }
                    })
                    .y_desc("test accuracy (%): filled mpc, hollow plain")
                    .draw()
                    .map_err(s)?;
                let mut shown: Vec<usize> = Vec::new();
                // f is written under each point while that stays legible.
                let several_f = pts.iter().any(|c| c.f != pts[0].f) && pts.len() <= 24;
                for c in pts {
                    let color = Palette99::pick(c.row).to_rgba();
                    let at = x(c);
                    let series = chart
                        .draw_series(
                            c.mpc
                                .iter()
                                .map(|&a| Circle::new((at, a), 4, color.filled())),
                        )
                        .map_err(s)?;
                    if !shown.contains(&c.row) {
                        shown.push(c.row);
                        series
                            .label(self.sum.row_label(c.row))
                            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
                    }
                    chart
                        .draw_series(
                            c.plain
                                .iter()
                                .map(|&a| Circle::new((at, a), 6, color.stroke_width(1))),
                        )
                        .map_err(s)?;
                    if several_f {
                        chart
                            .draw_series(std::iter::once(Text::new(
                                format!("f={}", c.f),
                                (at, 2.0),
                                ("sans-serif", 11),
                            )))
                            .map_err(s)?;
                    }
                }
                let means: Vec<(f64, f64)> = pts
                    .iter()
                    .filter_map(|c| {
                        let all: Vec<f64> = c.mpc.iter().chain(&c.plain).copied().collect();
                        mean_std(&all).map(|(m, _)| (x(c), m))
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(pareto(&means), BLACK.stroke_width(1)))
                    .map_err(s)?
                    .label("Pareto front (mean accuracy)")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerRight)
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(s)?;
            }
        }
        root.present().map_err(s)
    }
}

struct LossCurves<'a> {
    sum: &'a Summary,
}

impl Figure for LossCurves<'_> {
    fn size(&self) -> (u32, u32) {
        let (r, c) = grid_shape(self.sum.columns.len());
        (560 * c as u32, 420 * r as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(s)?;
        let sum = self.sum;
        let areas = root.split_evenly(grid_shape(sum.columns.len()));
        for (j, col) in sum.columns.iter().enumerate() {
            let runs: Vec<_> = sum
                .runs
                .iter()
                .filter(|r| {
                    r.ok && r.data == col.data
                        && r.model == col.model
                        && Precision::of(&r.engine, r.frac_bits) == col.precision
                })
                .collect();
            let epochs = runs
                .iter()
                .flat_map(|r| r.history.iter().map(|h| h.epoch))
                .max()
                .unwrap_or(1);
            let ymax = runs
                .iter()
                .flat_map(|r| r.history.iter().filter_map(|h| h.train_loss))
                .fold(0.1f64, f64::max)
                .min(50.0);
            let mut chart = ChartBuilder::on(&areas[j])
                .caption(
                    format!("training loss: {}", col.label()),
                    ("sans-serif", 18),
                )
                .margin(12)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(0.5..(epochs as f64 + 0.5), 0.0..1.1 * ymax)
                .map_err(s)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc("mean training loss")
                .x_labels(epochs.min(20) + 1)
                .x_label_formatter(&whole)
                .draw()
                .map_err(s)?;
            for (i, a) in sum.approx.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let mine: Vec<_> = runs
                    .iter()
                    .filter(|r| r.exp == a.0 && r.tanh == a.1)
                    .collect();
                for (n, r) in mine.iter().enumerate() {
                    let pts: Vec<(f64, f64)> = r
                        .history
                        .iter()
                        .filter_map(|h| h.train_loss.map(|l| (h.epoch as f64, l.min(ymax))))
                        .collect();
                    let series = chart
                        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                        .map_err(s)?;
                    if n == 0 {
                        series.label(sum.row_label(i)).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                        });
                    }
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                        .map_err(s)?;
                }
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(s)?;
        }
        root.present().map_err(s)
    }
}

/// Writes every picture of `sum` into `dir`; returns the files written and a note for each
/// picture left out (and why).
///
/// # Errors
/// A drawing fails (an unwritable file, missing fonts).
pub fn write_all(
    dir: &Path,
    sum: &Summary,
    paper: Option<&PaperTable>,
) -> Result<(Vec<PathBuf>, Vec<String>), PlotError> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for (metric, stem) in [
        (Metric::Accuracy, "accuracy"),
        (Metric::Perplexity, "perplexity"),
    ] {
        if !sum.columns_of(metric).is_empty() {
            files.extend(write_both(dir, stem, &PerApprox { sum, metric, paper })?);
        }
    }
    let mut panels: Vec<(String, String)> = Vec::new();
    for &j in &sum.columns_of(Metric::Accuracy) {
        let c = &sum.columns[j];
        let p = (c.data.clone(), c.model.clone());
        if matches!(c.precision, Precision::Fixed(_)) && !panels.contains(&p) {
            panels.push(p);
        }
    }
    if panels.is_empty() {
        skipped.push(
            "accuracy_vs_frac_bits: no fixed-point (plain) accuracy results to draw".to_string(),
        );
    } else {
        files.extend(write_both(
            dir,
            "accuracy_vs_frac_bits",
            &VsFracBits { sum, panels },
        )?);
    }
    let cost_panels = cost_panels(sum);
    if cost_panels.is_empty() {
        skipped
            .push("accuracy_vs_cost: no two-party (mpc) run finished to give a cost".to_string());
    } else {
        files.extend(write_both(
            dir,
            "accuracy_vs_cost",
            &VsCost {
                sum,
                panels: cost_panels,
            },
        )?);
    }
    if sum.columns.is_empty() {
        skipped.push("loss_curves: no runs".to_string());
    } else {
        files.extend(write_both(dir, "loss_curves", &LossCurves { sum })?);
    }
    Ok((files, skipped))
}

#[cfg(test)]
mod cost_tests {
    use super::pareto;

    #[test]
    fn the_pareto_front_keeps_each_point_no_cheaper_one_beats() {
        let pts = [
            (3.0, 60.0),
            (1.0, 10.0),
            (2.0, 70.0),
            (4.0, 65.0),
            (2.0, 50.0),
            (5.0, 90.0),
        ];
        assert_eq!(pareto(&pts), vec![(1.0, 10.0), (2.0, 70.0), (5.0, 90.0)]);
        assert!(pareto(&[]).is_empty());
    }
}
