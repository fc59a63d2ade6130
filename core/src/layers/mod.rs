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
//! - Every product is followed by one explicit rescale, so a layer costs one truncation per
//!   output element and a two-party engine pays one round per matrix product.
//! - Each layer states the scratch it needs (`*_scratch` methods).
//!
//! [`Engine`]: crate::Engine

pub mod activation;
pub mod dense;

pub use activation::{Activation, Relu};
pub use dense::Dense;

use crate::Engine;

/// `out[j * rows + i] = x[i * cols + j]`: the transpose of a `rows x cols` matrix (a local
/// copy, free on every engine).
pub fn transpose<T: Copy>(x: &[T], rows: usize, cols: usize, out: &mut [T]) {
    assert!(
        x.len() == rows * cols && out.len() == rows * cols,
        "transpose: shape mismatch"
    );
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = x[i * cols + j];
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
