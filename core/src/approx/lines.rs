//! Max-of-lines (piecewise linear, convex) approximations as pure data, and the fit that
//! produces the sets the paper does not publish.
//!
//! # The fit
//! The paper publishes only its 4-part set. For `n` parts ringnn uses the zero line plus
//! `m = n - 1` tangents of e^x, multiplied by one common factor, chosen to minimise the
//! maximum relative error on the fit domain `[lo, hi]` = [`FIT_DOMAIN`]:
//!
//! 1. A tangent at `t` has ratio `phi(d) = (1 + d) e^-d` to e^x at `x = t + d`; the ratio
//!    is 1 at the tangent point and falls on both sides.
//! 2. Two tangents `h` apart cross at `d*(h) = h e^h / (e^h - 1) - 1` past the left one; the
//!    ratio there, `phi(d*(h))`, depends on `h` alone, so equal spacing equalises the
//!    interior minima.
//! 3. The ends are placed where the ratio falls to the same value `r`: `d_R` past the last
//!    tangent with `phi(d_R) = r` (so `d_R = d*(h)`), and `d_L` before the first with
//!    `phi(-d_L) = r`. The spacing `h` follows from `d*(h) = d_R`, and bisection on `r`
//!    finds the one where `d_L + (m - 1) h + d_R = hi - lo`.
//! 4. Tangents stay below e^x (ratio in `[r, 1]`); multiplying every line by `2 / (1 + r)`
//!    centres the ratio on 1, so the relative error on `[lo, hi]` is `(1 - r) / (1 + r)` in
//!    both directions. A common factor cancels in softmax, so it changes only the error of
//!    e^x itself.
//!
//! Bisection in `f64` with fixed iteration counts makes the fit deterministic; a test
//! regenerates every stored set and compares.

/// At most this many lines besides the zero line.
pub const MAX_LINES: usize = 8;

/// The domain on which the fitted sets minimise the maximum relative error of e^x.
pub const FIT_DOMAIN: (f64, f64) = (-6.0, 4.0);

/// `max(0, a_1 x + b_1, ..., a_m x + b_m)` (the zero line is optional).
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Lines {
    len: usize,
    slopes: [f64; MAX_LINES],
    intercepts: [f64; MAX_LINES],
    zero: bool,
}

impl Lines {
    /// Lines `(slope, intercept)`, with the zero line when `zero`.
    ///
    /// # Panics
    /// With more than [`MAX_LINES`] lines or none at all (a programming error: sets are
    /// constants of the kernel).
    pub const fn new(lines: &[(f64, f64)], zero: bool) -> Self {
        assert!(lines.len() <= MAX_LINES && (!lines.is_empty() || zero));
        let mut slopes = [0.0; MAX_LINES];
        let mut intercepts = [0.0; MAX_LINES];
        let mut i = 0;
        while i < lines.len() {
            slopes[i] = lines[i].0;
            intercepts[i] = lines[i].1;
            i += 1;
        }
        Lines {
            len: lines.len(),
            slopes,
            intercepts,
            zero,
        }
    }

    /// Number of parts, the zero line included.
    pub const fn parts(&self) -> usize {
        self.len + self.zero as usize
    }

    /// Part `j` as `(slope, intercept)`; the zero line is the last part.
    pub const fn line(&self, j: usize) -> (f64, f64) {
        if j < self.len {
            (self.slopes[j], self.intercepts[j])
        } else {
            (0.0, 0.0)
        }
    }

    /// The non-zero lines' slopes.
    pub fn slopes(&self) -> &[f64] {
        &self.slopes[..self.len]
    }

    /// The non-zero lines' intercepts.
    pub fn intercepts(&self) -> &[f64] {
        &self.intercepts[..self.len]
    }

    /// Whether the zero line is a part.
    pub const fn has_zero(&self) -> bool {
        self.zero
    }

    /// The value in `f64`.
    pub fn eval(&self, x: f64) -> f64 {
        self.eval_with_slope(x).0
    }

    /// The value and the slope of the maximal part (the first maximal one on ties).
    pub fn eval_with_slope(&self, x: f64) -> (f64, f64) {
        let mut best = (f64::NEG_INFINITY, 0.0);
        for j in 0..self.parts() {
            let (a, b) = self.line(j);
            let v = a * x + b;
            if v > best.0 {
                best = (v, a);
            }
        }
        best
    }
}

/// The paper's 4-part set, kept bit for bit: `max{0, 0.0077x+0.155, x+1, 7.3891x-7.3891}`.
pub const PAPER_PWL4: Lines = Lines::new(&[(0.0077, 0.155), (1.0, 1.0), (7.3891, -7.3891)], true);

/// SecureML's replacement of e^x: `max(0, x)`.
pub const SECUREML: Lines = Lines::new(&[(1.0, 0.0)], true);

/// Piranha's and Orca's `max(0, (x + 2) / 2)`.
pub const PIRANHA: Lines = Lines::new(&[(0.5, 1.0)], true);

/// Result of [`fit`]: the lines and the relative error they reach on the domain.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Fit {
    /// The fitted set (zero line included).
    pub lines: Lines,
    /// Maximum relative error `(1 - r) / (1 + r)` on the fit domain.
    pub max_rel_err: f64,
    /// The tangent points, ascending.
    pub tangents: [f64; MAX_LINES],
}

fn phi(d: f64) -> f64 {
    (1.0 + d) * libm::exp(-d)
}

/// Root of a decreasing function on `[lo, hi]` by 200 bisection steps.
fn bisect_decreasing(mut lo: f64, mut hi: f64, target: f64, g: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if g(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Crossing offset of two tangents `h` apart, past the left one.
fn crossing(h: f64) -> f64 {
    h * libm::exp(h) / libm::expm1(h) - 1.0
}

/// Fits `parts` parts (the zero line plus `parts - 1` tangents) on `[lo, hi]`, as the
/// module documentation describes.
///
/// # Panics
/// Unless `2 <= parts <= MAX_LINES + 1` and `lo < hi`.
pub fn fit(parts: usize, lo: f64, hi: f64) -> Fit {
    assert!((2..=MAX_LINES + 1).contains(&parts) && lo < hi);
    let m = parts - 1;
    let width = hi - lo;
    let d_right = |r: f64| bisect_decreasing(0.0, 60.0, r, phi);
    let d_left = |r: f64| bisect_decreasing(0.0, 1.0, r, |d| phi(-d));
    // crossing(h) increases with h, so -crossing decreases.
    let spacing = |dr: f64| bisect_decreasing(0.0, 120.0, -dr, |h| -crossing(h));
    let total = |r: f64| {
        let dr = d_right(r);
        let h = if m > 1 { spacing(dr) } else { 0.0 };
        d_left(r) + (m as f64 - 1.0) * h + dr
    };
    // total(r) decreases as r grows towards 1.
    let r = bisect_decreasing(1e-12, 1.0 - 1e-12, width, total);
    let dr = d_right(r);
    let h = if m > 1 { spacing(dr) } else { 0.0 };
    let t1 = lo + d_left(r);
    let scale = 2.0 / (1.0 + r);
    let mut pairs = [(0.0, 0.0); MAX_LINES];
    let mut tangents = [0.0; MAX_LINES];
    for (j, pair) in pairs.iter_mut().enumerate().take(m) {
        let t = t1 + j as f64 * h;
        tangents[j] = t;
        let et = libm::exp(t);
        *pair = (scale * et, scale * et * (1.0 - t));
    }
    Fit {
        lines: Lines::new(&pairs[..m], true),
        max_rel_err: (1.0 - r) / (1.0 + r),
        tangents,
    }
}
