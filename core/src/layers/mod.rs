//! Layer primitives: forward and backward side by side, generic over the [`Engine`],
//! writing into caller-provided buffers.
//!
//! # Conventions
//! - Activations are row-major and batch-major: `[batch x features]` for dense layers,
//!   `[batch x channels x height x width]` (NCHW) for images.
//! - A layer struct holds only its configuration (shapes). Parameters, the saved forward
//!   input, gradients and scratch are slices owned by the caller (the host's model code),
//!   so the kernel never allocates.
//! - `forward` writes the output; `backward` takes the forward input (and output where
//!   cheaper) and the output gradient, and *overwrites* the input gradient and the
//!   parameter gradients. Gradients are sums over the batch; dividing by the batch size is
//!   the optimiser's job (in fixed point, one division at the end loses less precision).
//!   Two documented exceptions accumulate instead: the recurrent cells' parameter
//!   gradients (one set of parameters serves every time step) and the skip branch of
//!   [`Residual::backward`].
//! - What a backward pass needs beyond the input is kept in engine elements in a
//!   caller-provided cache or selection buffer (batch-norm statistics, max-pool one-hot
//!   selections, recurrent gates), never as plaintext decisions, so a two-party engine
//!   runs the same code.
//! - Every product is followed by one explicit rescale, so a layer costs one truncation per
//!   output element and a two-party engine pays one round per matrix product.
//! - Each layer states the scratch it needs (`*_scratch` methods).
//!
//! [`Engine`]: crate::Engine

pub mod activation;
pub mod batchnorm;
pub mod conv;
pub mod dense;
pub mod embedding;
pub mod pool;
pub mod residual;
pub mod rnn;
pub mod seqloss;
pub(crate) mod windows;

pub use activation::{Activation, Relu};
pub use batchnorm::BatchNorm;
pub use conv::Conv2d;
pub use dense::Dense;
pub use embedding::Embedding;
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};
pub use residual::{Flatten, Residual};
pub use rnn::{GruCell, LstmCell};
pub use seqloss::{sequence_loss, SeqXent};

use crate::Engine;

/// A layer's parameters: the weights (batch norm's `gamma`) and the bias (`beta`), in the
/// layer's documented layouts.
#[derive(Clone, Copy, Debug)]
pub struct Params<'a, T> {
    /// Weights.
    pub w: &'a [T],
    /// Bias.
    pub b: &'a [T],
}

/// The gradients around a parameterised layer's backward pass: the output gradient `dy`
/// it reads, and what it writes (overwriting): the input gradient `dx` when asked, and the
/// gradients of the weights `dw` and of the bias `db` (batch norm: `dgamma`, `dbeta`).
#[derive(Debug)]
pub struct Grads<'a, T> {
    /// `dL/dy`, the output's shape.
    pub dy: &'a [T],
    /// `dL/dx`, the input's shape; `None` when not needed (a first layer).
    pub dx: Option<&'a mut [T]>,
    /// `dL/dw`, the weights' shape.
    pub dw: &'a mut [T],
    /// `dL/db`, the bias' shape.
    pub db: &'a mut [T],
}

/// Shape of a batch of images in NCHW layout: `[batch x channels x height x width]`,
/// row-major. A `[batch x features]` activation is the image `(batch, features, 1, 1)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Image {
    /// Images in the batch.
    pub batch: usize,
    /// Channels per image.
    pub channels: usize,
    /// Rows per channel.
    pub height: usize,
    /// Columns per channel.
    pub width: usize,
}

impl Image {
    /// The shape `(batch, channels, height, width)`.
    pub const fn new(batch: usize, channels: usize, height: usize, width: usize) -> Self {
        Image {
            batch,
            channels,
            height,
            width,
        }
    }

    /// Elements of one channel plane: `height * width`.
    pub const fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Channel planes in the batch: `batch * channels`.
    pub const fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// Elements in the batch.
    pub const fn len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    /// Whether the batch has no elements.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `x[i] /= m` for a public count `m >= 1` (a mean's divisor): an arithmetic shift by
/// `a = ceil(log2 m)` bits, then a product with the public `2^a / m`, which lies in
/// `(1/2, 1]` and so keeps `f` significant bits however large `m` is (multiplying by an
/// encoded `1/m` would keep only `f - log2 m`, and none at all once `m > 2^f`). A power of
/// two costs one shift and no product.
///
/// # Precision
/// At most two ulps plus a relative `2^-f` on a fixed-point engine; exact up to rounding on
/// a float engine.
///
/// # Errors
/// What the engine reports.
///
/// # Panics
/// If `m == 0`.
pub fn divide_by<E: Engine + ?Sized>(
    e: &mut E,
    x: &mut [E::Elem],
    m: usize,
) -> Result<(), E::Error> {
    assert!(m > 0, "divide_by: the count must be positive");
    let a = usize::BITS - (m - 1).leading_zeros();
    if a > 0 {
        e.shift_right(x, a)?;
    }
    e.scale(x, crate::fixed::pow2(a as i32) / m as f64)
}

/// `out[c] = sum over rows of x[r * cols + c]` by a halving tree: `ceil(log2 rows)` engine
/// additions of long slices instead of `rows` short ones. `x` is used as scratch and left
/// holding partial sums.
pub fn column_sums_in_place<E: Engine + ?Sized>(
    e: &mut E,
    x: &mut [E::Elem],
    rows: usize,
    cols: usize,
    out: &mut [E::Elem],
) -> Result<(), E::Error> {
    assert!(
        x.len() == rows * cols && out.len() == cols,
        "column_sums_in_place: shape mismatch"
    );
    if rows == 0 {
        out.fill(E::Elem::default());
        return Ok(());
    }
    let mut cnt = rows;
    while cnt > 1 {
        let h = cnt / 2;
        let w = h * cols;
        let (a, b) = x.split_at_mut(w);
        e.add_assign(a, &b[..w])?;
        if cnt % 2 == 1 {
            x.copy_within(2 * w..2 * w + cols, w);
        }
        cnt = h + cnt % 2;
    }
    out.copy_from_slice(&x[..cols]);
    Ok(())
}

/// `out[r * cols + c] = v[c]` for `rows` rows (a local copy).
pub fn broadcast_rows<T: Copy>(v: &[T], rows: usize, out: &mut [T]) {
    assert_eq!(out.len(), rows * v.len(), "broadcast_rows: shape mismatch");
    for row in out.chunks_mut(v.len().max(1)) {
        row.copy_from_slice(v);
    }
}

/// `out[j * rows + i] = x[i * cols + j]`: the transpose of a `rows x cols` matrix (a local
/// copy, free on every engine).
pub fn transpose<T: Copy>(x: &[T], rows: usize, cols: usize, out: &mut [T]) {
    assert!(
        x.len() == rows * cols && out.len() == rows * cols,
        "transpose: shape mismatch"
    );
    // Tiles of 32 x 32 keep both the reads and the strided writes within a few cache lines.
    const B: usize = 32;
    for i0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            for i in i0..(i0 + B).min(rows) {
                let row = &x[i * cols..(i + 1) * cols];
                for j in j0..(j0 + B).min(cols) {
                    out[j * rows + i] = row[j];
                }
            }
        }
    }
}

/// `out[c] = sum over rows of x[r * cols + c]` (local additions).
pub fn column_sums<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    rows: usize,
    cols: usize,
    out: &mut [E::Elem],
) -> Result<(), E::Error> {
    assert!(
        x.len() == rows * cols && out.len() == cols,
        "column_sums: shape mismatch"
    );
    out.fill(E::Elem::default());
    for r in 0..rows {
        e.add_assign(out, &x[r * cols..(r + 1) * cols])?;
    }
    Ok(())
}

/// `x[r * cols + c] += v[c]` for every row (local additions).
pub fn add_rows<E: Engine + ?Sized>(
    e: &mut E,
    x: &mut [E::Elem],
    cols: usize,
    v: &[E::Elem],
) -> Result<(), E::Error> {
    assert!(
        v.len() == cols && x.len() % cols.max(1) == 0,
        "add_rows: shape mismatch"
    );
    for row in x.chunks_mut(cols) {
        e.add_assign(row, v)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod gradcheck;

/// Engine-equivalence checks shared by the layers' tests: one generic body run on
/// `Float<f64>` and on `Plain`, outputs compared within stated tolerances.
#[cfg(test)]
pub(crate) mod testutil {
    extern crate std;
    use crate::{Engine, Float, Plain, Z64};
    use std::vec;
    use std::vec::Vec;

    /// A test body generic over the engine: inputs in, outputs out.
    pub trait Harness {
        /// Runs the body.
        fn run<E: Engine>(&self, e: &mut E, inputs: &[Vec<E::Elem>]) -> Vec<Vec<E::Elem>>;
    }

    /// Encodes on `p`.
    pub fn enc(p: &Plain, xs: &[f64]) -> Vec<Z64> {
        let mut v = vec![Z64::ZERO; xs.len()];
        p.encode_slice(xs, &mut v).unwrap();
        v
    }

    /// Decodes from `p`.
    pub fn dec(p: &Plain, v: &[Z64]) -> Vec<f64> {
        let mut out = vec![0.0; v.len()];
        p.decode_slice(v, &mut out);
        out
    }

    /// Runs `h` on `Float<f64>` and on `Plain` with `f` fractional bits and asserts that
    /// output `i` agrees elementwise within `tol[i]` (absolute). Returns the float outputs.
    pub fn compare_engines(
        h: &impl Harness,
        f: u32,
        inputs: &[Vec<f64>],
        tol: &[f64],
    ) -> Vec<Vec<f64>> {
        let want = h.run(&mut Float::<f64>::new(), inputs);
        let mut p = Plain::with_frac_bits(f).unwrap();
        let ins: Vec<Vec<Z64>> = inputs.iter().map(|x| enc(&p, x)).collect();
        let got = h.run(&mut p, &ins);
        assert_eq!(got.len(), want.len());
        assert_eq!(tol.len(), want.len(), "one tolerance per output");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let g = dec(&p, g);
            assert_eq!(g.len(), w.len());
            for (j, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    (a - b).abs() <= tol[i],
                    "f = {f}, output {i}[{j}]: plain {a} vs float {b} (tol {})",
                    tol[i]
                );
            }
        }
        assert_eq!(p.overflow_count(), 0, "f = {f}: overflow");
        want
    }

    /// Random ring elements (all 64 bits), so wrapping and rounding are exercised too.
    pub fn ring(seed: u64, n: usize) -> Vec<crate::Z64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                crate::Z64(s)
            })
            .collect()
    }
}
