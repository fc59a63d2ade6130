//! The approximation study: errors of every chosen approximation at every chosen precision.
//!
//! For each function (e^x, tanh, sigmoid), approximation and precision, the approximation
//! is evaluated through [`Plain`] (fixed point with `f` fractional bits) and through
//! [`Float`] (`f64`) on a grid, and compared with the true function: maximum absolute and
//! relative error, and the maximum difference between `Plain` and `Float` (the part of the
//! error due to precision alone). For softmax, rows of logits drawn from a seeded normal
//! distribution are pushed through softmax with each e^x approximation and compared with
//! the exact softmax by total-variation distance.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use ringnn_core::approx::{
    ExpApprox, SigmoidApprox, TanhApprox, EXP_DOMAIN, SIGMOID_DOMAIN, TANH_DOMAIN,
};
use ringnn_core::softmax::{self, Softmax};
use ringnn_core::{Engine, Exact, Float, FracBits, Plain, Z64};
use serde::Serialize;

/// One approximated function.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Func {
    /// An approximation of e^x.
    Exp(ExpApprox),
    /// An approximation of tanh.
    Tanh(TanhApprox),
    /// An approximation of the sigmoid.
    Sigmoid(SigmoidApprox),
}

impl Func {
    /// "exp", "tanh" or "sigmoid".
    pub fn function(self) -> &'static str {
        match self {
            Func::Exp(_) => "exp",
            Func::Tanh(_) => "tanh",
            Func::Sigmoid(_) => "sigmoid",
        }
    }

    /// The approximation's name; sigmoid through e^x is `exp:<name>`.
    pub fn approx_name(self) -> String {
        match self {
            Func::Exp(a) => a.name().to_string(),
            Func::Tanh(t) => t.name().to_string(),
            Func::Sigmoid(SigmoidApprox::Exp(a)) => format!("exp:{}", a.name()),
            Func::Sigmoid(s) => s.name().to_string(),
        }
    }

    /// The true function.
    pub fn truth(self) -> Exact {
        match self {
            Func::Exp(_) => Exact::Exp,
            Func::Tanh(_) => Exact::Tanh,
            Func::Sigmoid(_) => Exact::Sigmoid,
        }
    }

    /// The approximation's own formula in `f64`.
    pub fn reference(self, x: f64) -> f64 {
        match self {
            Func::Exp(a) => a.reference(x),
            Func::Tanh(t) => t.reference(x),
            Func::Sigmoid(s) => s.reference(x),
        }
    }

    /// The domain on which the kernel states this function's error bounds.
    pub fn default_domain(self) -> (f64, f64) {
        match self {
            Func::Exp(_) => EXP_DOMAIN,
            Func::Tanh(_) => TANH_DOMAIN,
            Func::Sigmoid(_) => SIGMOID_DOMAIN,
        }
    }

    fn scratch_len(self, n: usize) -> usize {
        match self {
            Func::Exp(a) => a.scratch_len(n),
            Func::Tanh(t) => t.scratch_len(n),
            Func::Sigmoid(s) => s.scratch_len(n),
        }
    }

    /// Evaluates through any engine.
    pub fn eval<E: Engine>(
        self,
        e: &mut E,
        x: &[E::Elem],
        out: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let mut scratch = vec![E::Elem::default(); self.scratch_len(x.len())];
        match self {
            Func::Exp(a) => a.eval(e, x, out, &mut scratch),
            Func::Tanh(t) => t.eval(e, x, out, &mut scratch),
            Func::Sigmoid(s) => s.eval(e, x, out, &mut scratch),
        }
    }
}

/// A precision: the float reference or fixed point with `f` fractional bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Precision {
    /// `f64`.
    Float,
    /// `Plain` with this many fractional bits.
    Fixed(FracBits),
}

impl Precision {
    /// `None` for float, `Some(f)` otherwise.
    pub fn frac_bits(self) -> Option<u32> {
        match self {
            Precision::Float => None,
            Precision::Fixed(f) => Some(f.get()),
        }
    }
}

/// What to study. Built and validated by the command line ([`crate::cli`]).
#[derive(Clone, Debug)]
pub struct StudyConfig {
    /// The functions and approximations.
    pub funcs: Vec<Func>,
    /// Precisions, `Float` first when present.
    pub precisions: Vec<Precision>,
    /// The grid range; `None` uses each function's documented domain.
    pub range: Option<(f64, f64)>,
    /// Grid step.
    pub step: f64,
    /// e^x approximations to push through softmax.
    pub softmax: Vec<ExpApprox>,
    /// Softmax rows.
    pub softmax_rows: usize,
    /// Softmax columns (classes).
    pub softmax_cols: usize,
    /// Standard deviation of the logits.
    pub logit_std: f64,
    /// Subtract each row's maximum before e^x.
    pub subtract_max: bool,
    /// Seed of the logits.
    pub seed: u64,
}

/// One line of the study's result.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Row {
    /// "exp", "tanh", "sigmoid" or "softmax".
    pub function: &'static str,
    /// The approximation (for softmax: the e^x approximation).
    pub approx: String,
    /// `"float"` or `"plain"`.
    pub engine: &'static str,
    /// Fractional bits, `null` for float.
    pub frac_bits: Option<u32>,
    /// Largest absolute error against the true function (softmax: per probability).
    pub max_abs_err: f64,
    /// Largest relative error against the true function (softmax: over probabilities of
    /// at least 1e-3).
    pub max_rel_err: f64,
    /// Largest absolute difference between this engine and `Float` on the same
    /// approximation: the error due to precision alone (0 for float).
    pub max_abs_vs_float: f64,
    /// Mean total-variation distance to the exact softmax (softmax only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_tv: Option<f64>,
    /// Largest total-variation distance to the exact softmax (softmax only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tv: Option<f64>,
    /// Products that wrapped or constants that saturated (plain only).
    pub overflow_count: u64,
    /// Grid points (or softmax rows).
    pub points: usize,
    /// The grid range.
    pub range: (f64, f64),
}

/// Errors of a study.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A grid point cannot be encoded at some precision.
    #[error("grid point {x} cannot be encoded with {f} fractional bits: {reason}")]
    Encode {
        /// The point.
        x: f64,
        /// Fractional bits.
        f: u32,
        /// Why.
        reason: String,
    },
}

/// The grid `lo, lo + step, ..., <= hi`.
pub fn grid(range: (f64, f64), step: f64) -> Vec<f64> {
    let n = ((range.1 - range.0) / step + 1e-9).floor() as usize;
    (0..=n).map(|i| range.0 + i as f64 * step).collect()
}

fn error_stats(got: &[f64], truth: &[f64]) -> (f64, f64) {
    let (mut abs, mut rel) = (0.0f64, 0.0f64);
    for (&g, &t) in got.iter().zip(truth) {
        let e = (g - t).abs();
        abs = abs.max(e);
        if t.abs() >= 1e-12 {
            rel = rel.max(e / t.abs());
        }
    }
    (abs, rel)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
}

/// `func` through `Plain` at `f`: decoded values and the overflow count.
fn eval_plain(func: Func, f: FracBits, xs: &[f64]) -> Result<(Vec<f64>, u64), StudyError> {
    let mut p = Plain::new(f);
    let mut x = vec![Z64::ZERO; xs.len()];
    p.encode_slice(xs, &mut x)
        .map_err(|(i, e)| StudyError::Encode {
            x: xs[i],
            f: f.get(),
            reason: e.to_string(),
        })?;
    let mut out = vec![Z64::ZERO; xs.len()];
    let Ok(()) = func.eval(&mut p, &x, &mut out);
    let mut d = vec![0.0; xs.len()];
    p.decode_slice(&out, &mut d);
    Ok((d, p.overflow_count()))
}

fn eval_float(func: Func, xs: &[f64]) -> Vec<f64> {
    let mut e = Float::<f64>::new();
    let mut out = vec![0.0; xs.len()];
    let Ok(()) = func.eval(&mut e, xs, &mut out);
    out
}

/// Runs the study.
///
/// # Errors
/// [`StudyError::Encode`] when the range does not fit a chosen precision.
pub fn run(cfg: &StudyConfig) -> Result<Vec<Row>, StudyError> {
    let mut rows = Vec::new();
    for &func in &cfg.funcs {
        let range = cfg.range.unwrap_or(func.default_domain());
        let xs = grid(range, cfg.step);
        let truth: Vec<f64> = xs.iter().map(|&x| func.truth().eval(x)).collect();
        let float = eval_float(func, &xs);
        for &prec in &cfg.precisions {
            let (vals, overflow_count) = match prec {
                Precision::Float => (float.clone(), 0),
                Precision::Fixed(f) => eval_plain(func, f, &xs)?,
            };
            let (max_abs_err, max_rel_err) = error_stats(&vals, &truth);
            rows.push(Row {
                function: func.function(),
                approx: func.approx_name(),
                engine: if prec == Precision::Float {
                    "float"
                } else {
                    "plain"
                },
                frac_bits: prec.frac_bits(),
                max_abs_err,
                max_rel_err,
                max_abs_vs_float: max_diff(&vals, &float),
                mean_tv: None,
                max_tv: None,
                overflow_count,
                points: xs.len(),
                range,
            });
        }
    }
    if !cfg.softmax.is_empty() {
        rows.extend(softmax_rows(cfg)?);
    }
    Ok(rows)
}

/// Seeded logits, `rows x cols`, normal with mean 0 and the given deviation.
pub fn logits(seed: u64, rows: usize, cols: usize, std: f64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, std).unwrap_or_else(|_| Normal::new(0.0, 1.0).unwrap());
    (0..rows * cols).map(|_| normal.sample(&mut rng)).collect()
}

/// The exact softmax of each row, in `f64`, computed stably.
pub fn exact_softmax(x: &[f64], cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|&v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

fn softmax_rows(cfg: &StudyConfig) -> Result<Vec<Row>, StudyError> {
    let (r, c) = (cfg.softmax_rows, cfg.softmax_cols);
    let x = logits(cfg.seed, r, c, cfg.logit_std);
    let exact = exact_softmax(&x, c);
    let range = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let mut rows = Vec::new();
    for &a in &cfg.softmax {
        let sm = Softmax {
            exp: a,
            subtract_max: cfg.subtract_max,
        };
        let mut fl = Float::<f64>::new();
        let mut float = vec![0.0; x.len()];
        let mut s = vec![0.0; softmax::softmax_scratch(sm, r, c)];
        let Ok(()) = softmax::softmax(&mut fl, sm, &x, r, c, &mut float, &mut s);
        for &prec in &cfg.precisions {
            let (vals, overflow_count) = match prec {
                Precision::Float => (float.clone(), 0),
                Precision::Fixed(f) => {
                    let mut p = Plain::new(f);
                    let mut xe = vec![Z64::ZERO; x.len()];
                    p.encode_slice(&x, &mut xe)
                        .map_err(|(i, e)| StudyError::Encode {
                            x: x[i],
                            f: f.get(),
                            reason: e.to_string(),
                        })?;
                    let step = (p.batch_hint() / c).clamp(1, r);
                    let mut s = vec![Z64::ZERO; softmax::softmax_scratch(sm, step, c)];
                    let mut out = vec![Z64::ZERO; x.len()];
                    let Ok(()) = softmax::softmax(&mut p, sm, &xe, r, c, &mut out, &mut s);
                    let mut d = vec![0.0; x.len()];
                    p.decode_slice(&out, &mut d);
                    (d, p.overflow_count())
                }
            };
            let mut abs = 0.0f64;
            let mut rel = 0.0f64;
            let mut tv_sum = 0.0;
            let mut tv_max = 0.0f64;
            for (got, want) in vals.chunks(c).zip(exact.chunks(c)) {
                let mut tv = 0.0;
                for (&g, &w) in got.iter().zip(want) {
                    let e = (g - w).abs();
                    tv += e;
                    abs = abs.max(e);
                    if w >= 1e-3 {
                        rel = rel.max(e / w);
                    }
                }
                tv *= 0.5;
                tv_sum += tv;
                tv_max = tv_max.max(tv);
            }
            rows.push(Row {
                function: "softmax",
                approx: a.name().to_string(),
                engine: if prec == Precision::Float {
                    "float"
                } else {
                    "plain"
                },
                frac_bits: prec.frac_bits(),
                max_abs_err: abs,
                max_rel_err: rel,
                max_abs_vs_float: max_diff(&vals, &float),
                mean_tv: Some(tv_sum / r as f64),
                max_tv: Some(tv_max),
                overflow_count,
                points: r,
                range,
            });
        }
    }
    Ok(rows)
}

/// Formats the rows as an aligned text table.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "function",
        "approx",
        "precision",
        "max_abs_err",
        "max_rel_err",
        "vs_float",
        "mean_tv",
        "overflow",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        cells.push(vec![
            r.function.to_string(),
            r.approx.clone(),
            match r.frac_bits {
                None => "f64".to_string(),
                Some(f) => format!("f={f}"),
            },
            format!("{:.3e}", r.max_abs_err),
            format!("{:.3e}", r.max_rel_err),
            format!("{:.3e}", r.max_abs_vs_float),
            r.mean_tv.map_or("-".to_string(), |v| format!("{v:.3e}")),
            r.overflow_count.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|j| cells.iter().map(|row| row[j].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(j, c)| {
                if j < 3 {
                    format!("{c:<w$}", w = widths[j])
                } else {
                    format!("{c:>w$}", w = widths[j])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> StudyConfig {
        StudyConfig {
            funcs: vec![
                Func::Exp(ExpApprox::Pwl(4)),
                Func::Exp(ExpApprox::Taylor(3)),
                Func::Tanh(TanhApprox::Hard),
                Func::Sigmoid(SigmoidApprox::Exp(ExpApprox::Limit8)),
            ],
            precisions: vec![
                Precision::Float,
                Precision::Fixed(FracBits::new(8).unwrap()),
                Precision::Fixed(FracBits::new(16).unwrap()),
            ],
            range: None,
            step: 1.0 / 64.0,
            softmax: vec![ExpApprox::Exact, ExpApprox::Pwl(4), ExpApprox::SecureMl],
            softmax_rows: 200,
            softmax_cols: 10,
            logit_std: 2.0,
            subtract_max: false,
            seed: 1,
        }
    }

    #[test]
    fn float_rows_reproduce_the_kernel_bounds() {
        let rows = run(&cfg()).unwrap();
        let r = rows
            .iter()
            .find(|r| r.approx == "pwl4" && r.frac_bits.is_none())
            .unwrap();
        let b = ExpApprox::Pwl(4).bound();
        assert!(r.max_abs_err <= b.max_abs && r.max_abs_err > 0.9 * b.max_abs);
        assert_eq!(r.max_abs_vs_float, 0.0);
        assert_eq!(r.range, EXP_DOMAIN);
    }

    #[test]
    fn precision_error_shrinks_with_more_bits() {
        let rows = run(&cfg()).unwrap();
        // Hard tanh is exact on a grid of multiples of 1/64 at 8 bits and more.
        let hard = rows
            .iter()
            .filter(|r| r.approx == "hard" && r.frac_bits.is_some());
        assert!(hard.into_iter().all(|r| r.max_abs_vs_float == 0.0));
        for name in ["pwl4", "taylor3", "exp:limit8"] {
            let at = |f| {
                rows.iter()
                    .find(|r| r.approx == name && r.frac_bits == Some(f))
                    .unwrap()
                    .max_abs_vs_float
            };
            assert!(at(16) < at(8), "{name}: {} vs {}", at(16), at(8));
            assert!(at(16) < 1e-2, "{name}: {}", at(16));
        }
    }

    #[test]
    fn softmax_exact_at_float_is_near_zero_and_secureml_is_far() {
        let rows = run(&cfg()).unwrap();
        let tv = |a: &str, f: Option<u32>| {
            rows.iter()
                .find(|r| r.function == "softmax" && r.approx == a && r.frac_bits == f)
                .unwrap()
                .mean_tv
                .unwrap()
        };
        assert!(tv("exact", None) < 1e-12);
        assert!(tv("exact", Some(16)) < 1e-3);
        assert!(tv("pwl4", Some(16)) < tv("secureml", Some(16)));
        assert!(tv("secureml", None) > 0.1);
    }

    #[test]
    fn out_of_range_grid_is_a_clear_error() {
        let mut c = cfg();
        c.range = Some((-1e17, 1e17));
        c.step = 1e16;
        let err = run(&c).unwrap_err().to_string();
        assert!(
            err.contains("cannot be encoded") && err.contains("fractional bits"),
            "{err}"
        );
    }

    #[test]
    fn table_is_aligned() {
        let rows = run(&cfg()).unwrap();
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("function"));
        assert!(lines.len() == rows.len() + 2);
        let col = lines[0].find("max_abs_err").unwrap();
        assert!(lines[2].len() >= col);
    }
}
