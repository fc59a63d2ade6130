//! Softmax over rows with an approximated e^x, and the gradient of softmax cross-entropy.
//!
//! `p_ij = E(x_ij)^+ / sum_j E(x_ij)^+`, where `E` is the chosen [`ExpApprox`] and `^+`
//! clips at 0 (needed only for approximations that can go negative: Taylor). The division
//! is one fixed-point [`Engine::reciprocal`] per row, computed with `g` guard bits
//! ([`guard_bits`]) so that large row sums keep their precision, followed by one product
//! and one truncation by `f + g` bits per element.
//!
//! An all-zero row (every `E` clipped to 0, as happens with `secureml` on negative logits)
//! is defined as uniform: a comparison per row yields `z = [sum == 0]`, and every element
//! gets `z` added (the sum `z * cols`), so the division never sees 0. No value can make
//! softmax panic.
//!
//! Subtracting the row maximum first is optional and off by default, as in the paper.
//!
//! # Precision
//! On `Plain`, `|p - p_float| <= 2^-f * (4 + 4 max_ij p_ij)` for rows whose sum is below
//! `2^(g - 1)`; tests check this bound.
//!
//! # Gradient
//! For the loss `-sum_j y_j log p_j` with one-hot `y`:
//! - [`GradMode::Exact`] (the paper): the derivative of the approximated softmax,
//!   `dL/dx_j = E'(x_j)/S - y_j E'(x_l)/E(x_l)` with `l` the label and `E'` the
//!   approximation's derivative (0 where `E` was clipped). For `E = e^x` this is `p - y`.
//! - [`GradMode::Surrogate`] (SecureML): `p - y`.

use crate::approx::ExpApprox;
use crate::engine::generic::{self, broadcast, row_sums};
use crate::engine::Engine;

/// How the gradient of softmax cross-entropy is computed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GradMode {
    /// The derivative of the approximated softmax (the paper's choice).
    Exact,
    /// `p - y`, SecureML's surrogate.
    Surrogate,
}

impl GradMode {
    /// The valid names.
    pub const NAMES: &'static [&'static str] = &["exact", "surrogate"];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            GradMode::Exact => "exact",
            GradMode::Surrogate => "surrogate",
        }
    }

    /// The mode called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "exact" => Some(GradMode::Exact),
            "surrogate" => Some(GradMode::Surrogate),
            _ => None,
        }
    }
}

/// Softmax settings.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Softmax {
    /// The e^x approximation.
    pub exp: ExpApprox,
    /// Subtract each row's maximum first (off in the paper).
    pub subtract_max: bool,
}

/// The shape of a row-major matrix of logits: `rows` rows (one softmax each) of `cols`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Rows {
    /// Rows (positions, samples).
    pub rows: usize,
    /// Entries per row (classes).
    pub cols: usize,
}

impl Rows {
    /// Elements: `rows * cols`.
    pub const fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether there is no element.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Logits `x` and one-hot labels `y` (element scale: 1.0 encoded), both of one [`Rows`]
/// shape: what softmax cross-entropy reads.
#[derive(Clone, Copy, Debug)]
pub struct Labelled<'a, T> {
    /// Logits.
    pub x: &'a [T],
    /// One-hot labels.
    pub y: &'a [T],
}

/// What [`softmax_xent_backward`] writes: the softmax `p` and the gradient `grad` with
/// respect to the logits, both of the logits' shape.
#[derive(Debug)]
pub struct XentOut<'a, T> {
    /// Probabilities.
    pub p: &'a mut [T],
    /// Gradient with respect to the logits.
    pub grad: &'a mut [T],
}

impl Softmax {
    /// Softmax with `exp`, without max subtraction.
    pub const fn new(exp: ExpApprox) -> Self {
        Softmax {
            exp,
            subtract_max: false,
        }
    }
}

/// Guard bits of the row reciprocal for `f` fractional bits: `min(f, 58 - 2f)`, at least 0.
/// With them `E * (2^g / S)` stays below `2^(2f + g) <= 2^58`.
pub const fn guard_bits(f: u32) -> u32 {
    let room = 58i64 - 2 * f as i64;
    if room <= 0 {
        0
    } else if room < f as i64 {
        room as u32
    } else {
        f
    }
}

/// Guard bits of the label ratio `E'_l / E_l` in the exact gradient for `f` fractional
/// bits: `min(f, 59 - 3f)`, at least 0 (13 at f = 13, 11 at f = 16, 0 from f = 20).
///
/// The ratio is `E'_l * (2^g / E_l) >> (f + g)`. Without guard bits `1 / E_l` keeps only
/// `f - log2 E_l` bits and is 0 once `E_l > 2^f` (exact e^x above x = f ln 2, 9.01 at
/// f = 13): the label term vanished and the gradient pushed the label down (docs/results.md,
/// "Collapses, diagnosed"). With `g` bits it holds up to `E_l = 2^(f + g)`. The bound on `g`:
/// `E_l` is at least one ulp where the ratio is used and every approximation's `E'_l / E_l`
/// is then at most `8 * 2^f`, so the product stays below `2^(3f + g + 3) <= 2^62`.
pub const fn ratio_guard_bits(f: u32) -> u32 {
    let room = 59i64 - 3 * f as i64;
    if room <= 0 {
        0
    } else if room < f as i64 {
        room as u32
    } else {
        f
    }
}

fn chunk_rows(hint: usize, rows: usize, cols: usize) -> usize {
    (hint / cols.max(1)).clamp(1, rows.max(1))
}

/// Scratch elements [`softmax`] needs for `rows x cols` inputs.
pub fn softmax_scratch(cfg: Softmax, rows: usize, cols: usize) -> usize {
    let n = rows * cols;
    // The forward path: the shifted inputs, then the row maxima (`rows + 2n`), e^x, or the
    // division.
    let forward = n
        + (rows + 2 * n)
            .max(cfg.exp.scratch_len(n))
            .max(generic::normalize_rows_scratch(rows, cols));
    // The path with the derivative, for the exact gradient.
    let with_derivative = 2 * n
        + 4 * rows
        + cfg
            .exp
            .scratch_len(n)
            .max(generic::reciprocal_scratch(rows))
            .max(4 * n);
    forward.max(with_derivative)
}

/// Scratch elements [`softmax_xent_backward`] needs for `rows x cols` inputs.
pub fn backward_scratch(cfg: Softmax, rows: usize, cols: usize) -> usize {
    let n = rows * cols;
    4 * n + 4 * rows + softmax_scratch(cfg, rows, cols)
}

/// `out = softmax(x)` over `rows` rows of `cols` (row-major). See the [module
/// documentation](self). Scratch: [`softmax_scratch`] for the rows handed to one call;
/// a plaintext engine splits the work into pieces of [`Engine::batch_hint`] elements, and
/// divides by the row sums with its own [`Engine::normalize_rows`].
///
/// # Errors
/// What the engine reports.
///
/// # Panics
/// If `x` or `out` is not `rows * cols` long, or `scratch` is too short.
pub fn softmax<E: Engine + ?Sized>(
    e: &mut E,
    cfg: Softmax,
    x: &[E::Elem],
    rows: usize,
    cols: usize,
    out: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    assert!(
        x.len() == rows * cols && out.len() == rows * cols,
        "softmax: shape mismatch"
    );
    let step = chunk_rows(e.batch_hint(), rows, cols);
    let mut r0 = 0;
    while r0 < rows {
        let r = step.min(rows - r0);
        let span = r0 * cols..(r0 + r) * cols;
        let shape = Rows { rows: r, cols };
        forward_rows(
            e,
            cfg,
            &x[span.clone()],
            shape,
            &mut out[span],
            false,
            scratch,
        )?;
        r0 += r;
    }
    Ok(())
}

/// Softmax of one piece through the generic division ([`generic::normalize_rows`]) whatever
/// the engine: the reference that an engine's own [`Engine::normalize_rows`] must equal bit
/// for bit.
///
/// # Errors
/// What the engine reports.
pub fn generic_rows<E: Engine + ?Sized>(
    e: &mut E,
    cfg: Softmax,
    x: &[E::Elem],
    rows: usize,
    cols: usize,
    out: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    forward_rows(e, cfg, x, Rows { rows, cols }, out, true, scratch)
}

/// Softmax of one piece: shift by the row maxima if asked, e^x, then the division (the
/// engine's, or the generic one when `generic` is set).
fn forward_rows<E: Engine + ?Sized>(
    e: &mut E,
    cfg: Softmax,
    x: &[E::Elem],
    shape: Rows,
    out: &mut [E::Elem],
    generic: bool,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let Rows { rows, cols } = shape;
    let n = rows * cols;
    let g = guard_bits(e.frac_bits());
    let (xs, rest) = scratch.split_at_mut(n);
    xs.copy_from_slice(x);
    if cfg.subtract_max {
        let (mx, rest) = rest.split_at_mut(rows);
        let (wide, rest) = rest.split_at_mut(n);
        row_max(e, xs, rows, cols, mx, wide, rest)?;
        broadcast(mx, cols, wide);
        e.sub_assign(xs, wide)?;
    }
    cfg.exp.eval(e, xs, out, rest)?;
    let clip = !cfg.exp.nonnegative();
    if generic {
        generic::normalize_rows(e, out, rows, cols, clip, g, rest)
    } else {
        e.normalize_rows(out, rows, cols, clip, g, rest)
    }
}

/// Softmax of one piece in `out.p` with, for the exact gradient, its first term `E'(x)/S`
/// in `out.grad` (with `E'` masked where `E` was clipped) and `[S == 0]` per row in `zero`
/// (1.0 encoded: the rows defined as uniform). The same operations as [`forward_rows`] with
/// the generic division, with the derivative's between them.
fn softmax_rows_with_derivative<E: Engine + ?Sized>(
    e: &mut E,
    cfg: Softmax,
    x: &[E::Elem],
    shape: Rows,
    out: XentOut<'_, E::Elem>,
    zero: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let Rows { rows, cols } = shape;
    let XentOut {
        p: out,
        grad: deriv,
    } = out;
    let n = rows * cols;
    let f = e.frac_bits();
    let g = guard_bits(f);
    let (xs, rest) = scratch.split_at_mut(n);
    let (wide, rest) = rest.split_at_mut(n);
    let (sum, rest) = rest.split_at_mut(rows);
    let (z, rest) = rest.split_at_mut(rows);
    let (recip, rest) = rest.split_at_mut(rows);
    let (tmp, rest) = rest.split_at_mut(rows);

    xs.copy_from_slice(x);
    if cfg.subtract_max {
        row_max(e, xs, rows, cols, sum, wide, rest)?;
        broadcast(sum, cols, wide);
        e.sub_assign(xs, wide)?;
    }
    cfg.exp.eval(e, xs, out, rest)?;
    let clipped = !cfg.exp.nonnegative();
    if clipped {
        // mask = [E < 0] in `wide`; E -= mask * E.
        e.is_negative(out, wide)?;
        let (prod, _) = rest.split_at_mut(n);
        e.mul(wide, out, prod)?;
        e.sub_assign(out, prod)?;
    }
    cfg.exp.derivative(e, xs, deriv, rest)?;
    if clipped {
        let (prod, _) = rest.split_at_mut(n);
        e.mul(wide, deriv, prod)?;
        e.sub_assign(deriv, prod)?;
    }
    row_sums(e, out, cols, sum, tmp)?;
    // p = (E * 2^g / S) >> (f + g), and the same for E'; both 0 on an empty row (S <= 0),
    // which then becomes uniform; `zero` remembers which rows were (at the element scale).
    e.reciprocal(sum, recip, Some(&mut *z), g, rest)?;
    broadcast(recip, cols, wide);
    let (prod, _) = rest.split_at_mut(n);
    e.mul(out, wide, prod)?;
    e.shift_right(prod, f + g)?;
    out.copy_from_slice(prod);
    e.mul(deriv, wide, prod)?;
    e.shift_right(prod, f + g)?;
    deriv.copy_from_slice(prod);
    generic::fill_empty_rows(e, out, cols, z, wide)?;
    zero.copy_from_slice(z);
    let unit = e.public(1.0);
    e.mul_public(zero, unit)?;
    Ok(())
}

/// Row maxima by a halving tree over columns: `ceil(log2 cols)` batched comparisons.
fn row_max<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    rows: usize,
    cols: usize,
    out: &mut [E::Elem],
    cols_major: &mut [E::Elem],
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    for i in 0..rows {
        for j in 0..cols {
            cols_major[j * rows + i] = x[i * cols + j];
        }
    }
    let mut cnt = cols;
    while cnt > 1 {
        let h = cnt / 2;
        let w = h * rows;
        let (left, right) = cols_major.split_at_mut(w);
        e.max_assign(left, &right[..w], scratch)?;
        if cnt % 2 == 1 {
            cols_major.copy_within(2 * w..2 * w + rows, w);
        }
        cnt = h + cnt % 2;
    }
    out.copy_from_slice(&cols_major[..rows]);
    Ok(())
}

/// Gradient of mean-free softmax cross-entropy with respect to the logits `x`, for one-hot
/// labels `y` (element scale: 1.0 encoded), both of the given `shape`, written to
/// `out.grad`; the softmax itself goes to `out.p`. Dividing by the batch size is left to the
/// caller. See the [module documentation](self) for the two modes. Scratch:
/// [`backward_scratch`].
///
/// # Errors
/// What the engine reports.
///
/// # Panics
/// If a slice is not `shape.len()` long or `scratch` is too short.
pub fn softmax_xent_backward<E: Engine + ?Sized>(
    e: &mut E,
    cfg: Softmax,
    mode: GradMode,
    data: Labelled<'_, E::Elem>,
    shape: Rows,
    out: XentOut<'_, E::Elem>,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let (Labelled { x, y }, Rows { rows, cols }) = (data, shape);
    let XentOut { p, grad } = out;
    let n = rows * cols;
    assert!(
        x.len() == n && y.len() == n && p.len() == n && grad.len() == n,
        "softmax_xent_backward: shape mismatch"
    );
    match mode {
        GradMode::Surrogate => {
            softmax(e, cfg, x, rows, cols, p, scratch)?;
            grad.copy_from_slice(p);
            e.sub_assign(grad, y)
        }
        GradMode::Exact => {
            let step = chunk_rows(e.batch_hint(), rows, cols);
            let mut r0 = 0;
            while r0 < rows {
                let r = step.min(rows - r0);
                let span = r0 * cols..(r0 + r) * cols;
                let piece = Labelled {
                    x: &x[span.clone()],
                    y: &y[span.clone()],
                };
                let out = XentOut {
                    p: &mut p[span.clone()],
                    grad: &mut grad[span],
                };
                exact_grad_rows(e, cfg, piece, Rows { rows: r, cols }, out, scratch)?;
                r0 += r;
            }
            Ok(())
        }
    }
}

fn exact_grad_rows<E: Engine + ?Sized>(
    e: &mut E,
    cfg: Softmax,
    data: Labelled<'_, E::Elem>,
    shape: Rows,
    out: XentOut<'_, E::Elem>,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let (Labelled { x, y }, Rows { rows, cols }) = (data, shape);
    let XentOut { p, grad } = out;
    let n = rows * cols;
    let f = e.frac_bits();
    let (ev, rest) = scratch.split_at_mut(n);
    let (dv, rest) = rest.split_at_mut(n);
    let (t, rest) = rest.split_at_mut(n);
    let (wide, rest) = rest.split_at_mut(n);
    let (el, rest) = rest.split_at_mut(rows);
    let (dl, rest) = rest.split_at_mut(rows);
    let (ratio, rest) = rest.split_at_mut(rows);
    let (zero, rest) = rest.split_at_mut(rows);
    // grad = E'/S (the first term) and p; zero = [S == 0] per row.
    let first = XentOut {
        p: &mut *p,
        grad: &mut *grad,
    };
    softmax_rows_with_derivative(e, cfg, x, shape, first, zero, rest)?;
    // E and E' at the label: recompute E (clipped) and E' (masked) for the label entries.
    let xs = &mut wide[..];
    xs.copy_from_slice(x);
    if cfg.subtract_max {
        let (mx, rest2) = rest.split_at_mut(rows);
        let (cm, rest3) = rest2.split_at_mut(n);
        row_max(e, x, rows, cols, mx, cm, rest3)?;
        broadcast(mx, cols, t);
        e.sub_assign(xs, t)?;
    }
    cfg.exp.eval(e, xs, ev, rest)?;
    cfg.exp.derivative(e, xs, dv, rest)?;
    if !cfg.exp.nonnegative() {
        e.is_negative(ev, t)?;
        let (prod, _) = rest.split_at_mut(n);
        e.mul(t, ev, prod)?;
        e.sub_assign(ev, prod)?;
        e.mul(t, dv, prod)?;
        e.sub_assign(dv, prod)?;
    }
    // el = sum_j y_j E_j, dl = sum_j y_j E'_j.
    e.mul(y, ev, t)?;
    e.rescale(t)?;
    row_sums(e, t, cols, el, ratio)?;
    e.mul(y, dv, t)?;
    e.rescale(t)?;
    row_sums(e, t, cols, dl, ratio)?;
    // ratio = E'_l / E_l, and 0 where E_l <= 0 (the label's E clipped, or a line rounded
    // to exactly 0): there 1/0 is infinite on Float (0 * inf is NaN) and meaningless on
    // Plain, where E'_l need not be 0 either (a tie between the zero line and a line that
    // rounds to 0 picks the sloped one); the reciprocal gives 0 there.
    // ratio = (E'_l * (2^gr / E_l)) >> (f + gr): with gr guard bits the reciprocal keeps its
    // precision for E_l above 1 (see [`ratio_guard_bits`]).
    // The empty flags are not needed here; asking for them says `E_l <= 0` is expected.
    let (empty, rest) = rest.split_at_mut(rows);
    let (prod, rest) = rest.split_at_mut(rows);
    let gr = ratio_guard_bits(f);
    e.reciprocal(el, ratio, Some(empty), gr, rest)?;
    e.mul(dl, ratio, prod)?;
    e.shift_right(prod, f + gr)?;
    ratio.copy_from_slice(prod);
    // grad -= y * ratio.
    broadcast(ratio, cols, wide);
    e.mul(y, wide, t)?;
    e.rescale(t)?;
    e.sub_assign(grad, t)?;
    // A row whose every E is 0 is defined as uniform, a constant: both terms above are 0
    // there, and such a row would never leave that state (every logit below pwl4's zero
    // crossing, or below secureml's 0, or e^x under one ulp). It gets the gradient of the
    // point it is defined at, equal logits: p - y = 1/cols - y (replacing what is there: a
    // derivative at a kink, such as secureml's at x = 0, can be nonzero where E is 0).
    // grad += zero * (p - y - grad), one product per element; exactly 0, so no bit changes,
    // on every other row.
    broadcast(zero, cols, wide);
    t.copy_from_slice(p);
    e.sub_assign(t, y)?;
    e.sub_assign(t, grad)?;
    let (prod, _) = rest.split_at_mut(n);
    e.mul(wide, t, prod)?;
    e.rescale(prod)?;
    e.add_assign(grad, prod)
}
