//! Pictures of the approximations: each function's approximations against the exact
//! function (top row) and their errors (bottom row), one column per function. SVG or PNG,
//! chosen by the file extension.

use crate::study::{grid, Func};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Errors of plotting.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The extension is neither `.svg` nor `.png`.
    #[error("plot file {0}: the name must end in .svg or .png")]
    Format(String),
    /// Nothing to draw.
    #[error("plot file {0}: no exp, tanh or sigmoid approximation was chosen")]
    Empty(String),
    /// The drawing backend failed (an unwritable file, missing fonts, ...).
    #[error("plot file {path}: {reason}")]
    Draw {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}

/// Draws `funcs` over each function's range (or `range`) into `path`.
///
/// # Errors
/// See [`PlotError`].
pub fn approximations(
    path: &Path,
    funcs: &[Func],
    range: Option<(f64, f64)>,
) -> Result<(), PlotError> {
    let name = path.display().to_string();
    let groups: Vec<(&str, Vec<Func>)> = ["exp", "tanh", "sigmoid"]
        .iter()
        .map(|&g| {
            (
                g,
                funcs
                    .iter()
                    .copied()
                    .filter(|f| f.function() == g)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if groups.is_empty() {
        return Err(PlotError::Empty(name));
    }
    let size = (560 * groups.len() as u32, 900);
    let draw_err = |e: String| PlotError::Draw {
        path: name.clone(),
        reason: e,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            draw(root, &groups, range).map_err(draw_err)
        }
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            draw(root, &groups, range).map_err(draw_err)
        }
        _ => Err(PlotError::Format(name)),
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    groups: &[(&str, Vec<Func>)],
    range: Option<(f64, f64)>,
) -> Result<(), String> {
    let s = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(s)?;
    let cols = groups.len();
    let panels = root.split_evenly((2, cols));
    for (g, (function, funcs)) in groups.iter().enumerate() {
        let (lo, hi) = range.unwrap_or(funcs[0].default_domain());
        let xs = grid((lo, hi), (hi - lo) / 800.0);
        let truth: Vec<f64> = xs.iter().map(|&x| funcs[0].truth().eval(x)).collect();
        let (ylo, yhi, elim) = match *function {
            "exp" => {
                let top = truth.iter().cloned().fold(1.0f64, f64::max);
                (-0.1 * top, 1.2 * top, 0.5 * top)
            }
            "tanh" => (-1.5, 1.5, 0.5),
            _ => (-0.25, 1.25, 0.5),
        };
        let title = match *function {
            "exp" => "e^x",
            "tanh" => "tanh(x)",
            _ => "sigmoid(x)",
        };
        let mut chart = ChartBuilder::on(&panels[g])
            .caption(format!("{title}: approximations"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(lo..hi, ylo..yhi)
            .map_err(s)?;
        chart.configure_mesh().draw().map_err(s)?;
        let clip = |v: f64, a: f64, b: f64| v.clamp(a, b);
        chart
            .draw_series(LineSeries::new(
                xs.iter().zip(&truth).map(|(&x, &y)| (x, clip(y, ylo, yhi))),
                BLACK.stroke_width(3),
            ))
            .map_err(s)?
            .label("exact")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(3)));
        let mut errs = ChartBuilder::on(&panels[cols + g])
            .caption(
                format!("{title}: approximation - exact"),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(lo..hi, -elim..elim)
            .map_err(s)?;
        errs.configure_mesh().draw().map_err(s)?;
        for (i, f) in funcs.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let ys: Vec<f64> = xs.iter().map(|&x| f.reference(x)).collect();
            chart
                .draw_series(LineSeries::new(
                    xs.iter().zip(&ys).map(|(&x, &y)| (x, clip(y, ylo, yhi))),
                    color.stroke_width(2),
                ))
                .map_err(s)?
                .label(f.approx_name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            errs.draw_series(LineSeries::new(
                xs.iter()
                    .zip(&ys)
                    .zip(&truth)
                    .map(|((&x, &y), &t)| (x, clip(y - t, -elim, elim))),
                color.stroke_width(2),
            ))
            .map_err(s)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(s)?;
    }
    root.present().map_err(s)
}
