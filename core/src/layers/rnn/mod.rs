//! Recurrent cells, one time step each: GRU and LSTM, with selectable sigmoid and tanh
//! approximations.
//!
//! # Conventions
//! - Inputs `x` are `batch x input`, states `batch x hidden`, row-major.
//! - Parameters are one slice per cell, in the order the cell documents; the input and
//!   recurrent weights are `input x gates*hidden` and `hidden x gates*hidden`, gate blocks of
//!   `hidden` columns side by side (so `x W_i` gives every gate's pre-activation in one
//!   matrix product).
//! - `forward` computes one step and saves what `backward` needs in a caller-provided cache
//!   of [`GruCell::cache_len`] / [`LstmCell::cache_len`] elements (one cache per time step;
//!   the step's inputs `x`, `h` (and `c`) are passed to backward again, not copied).
//! - `backward` runs one step of backpropagation through time: it **overwrites** the
//!   gradients with respect to the step's inputs (`dx`, `dh`, `dc`) and **accumulates** (adds
//!   to) the parameter gradients, so the caller zeroes them once and runs the steps from
//!   last to first. This differs from the other layers, which overwrite, because one set of
//!   parameters serves every step.
//! - Gate activations run gate-major (all sigmoid gates of the batch in one call, the tanh
//!   gate in another), so a two-party engine pays one set of rounds per activation, not
//!   one per row. Element products are batched the same way, each followed by one rescale.
//! - The derivatives are those of the chosen approximations (the paper's choice), e.g. 0 or
//!   1 for hard tanh.

mod gru;
mod lstm;

pub use gru::GruCell;
pub use lstm::LstmCell;

/// What a GRU step reads: the input `x` (`batch x input`), the previous state `h`
/// (`batch x hidden`) and the cell's parameters (its documented layout).
#[derive(Clone, Copy, Debug)]
pub struct GruStep<'a, T> {
    /// Input.
    pub x: &'a [T],
    /// Previous hidden state.
    pub h: &'a [T],
    /// Parameters.
    pub params: &'a [T],
}

/// The gradients around a GRU step's backward pass: `dh_out = dL/dh'` read; `dx` (when
/// given) and `dh` overwritten, the parameter gradients `dparams` **added** to.
#[derive(Debug)]
pub struct GruGrads<'a, T> {
    /// Gradient of the new state.
    pub dh_out: &'a [T],
    /// Gradient of the input, when wanted.
    pub dx: Option<&'a mut [T]>,
    /// Gradient of the previous state.
    pub dh: &'a mut [T],
    /// Parameter gradients (accumulated).
    pub dparams: &'a mut [T],
}

use super::{column_sums, transpose};
use crate::engine::MatDims;
use crate::Engine;

/// `out[(k * batch + r) * hidden + j] = src[(r * gates + first + k) * hidden + j]` for
/// `k < count`: gate blocks of a `batch x gates*hidden` matrix to gate-major order.
fn to_gate_major<T: Copy>(
    src: &[T],
    batch: usize,
    hidden: usize,
    gates: usize,
    first: usize,
    out: &mut [T],
) {
    let count = out.len() / (batch * hidden).max(1);
    for k in 0..count {
        for r in 0..batch {
            let s = (r * gates + first + k) * hidden;
            let d = (k * batch + r) * hidden;
            out[d..d + hidden].copy_from_slice(&src[s..s + hidden]);
        }
    }
}

/// The inverse of [`to_gate_major`]: gate-major `src` into the gate blocks of `out`.
fn from_gate_major<T: Copy>(
    src: &[T],
    batch: usize,
    hidden: usize,
    gates: usize,
    first: usize,
    out: &mut [T],
) {
    let count = src.len() / (batch * hidden).max(1);
    for k in 0..count {
        for r in 0..batch {
            let d = (r * gates + first + k) * hidden;
            let s = (k * batch + r) * hidden;
            out[d..d + hidden].copy_from_slice(&src[s..s + hidden]);
        }
    }
}

/// `out = x w` (`dims.m x dims.k` by `dims.k x dims.n`), rescaled, plus `b` per row when
/// given.
fn linear<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    w: &[E::Elem],
    b: Option<&[E::Elem]>,
    dims: MatDims,
    out: &mut [E::Elem],
) -> Result<(), E::Error> {
    e.matmul(x, w, dims, out)?;
    e.rescale(out)?;
    if let Some(b) = b {
        super::add_rows(e, out, dims.n, b)?;
    }
    Ok(())
}

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Scratch for [`linear_backward`].
const fn linear_backward_scratch(batch: usize, inp: usize, g: usize) -> usize {
    max(batch * inp, inp * g) + inp * g + g
}

/// `dw += x^T dg`, `db += column sums of dg` when given, and `dx = dg w^T` (overwritten)
/// when given, for `batch` rows and `g` gate columns.
fn linear_backward<E: Engine + ?Sized>(
    e: &mut E,
    l: LinearGrad<'_, E::Elem>,
    batch: usize,
    g: usize,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    let LinearGrad {
        x,
        w,
        width: inp,
        dg,
        dw,
        db,
        dx,
    } = l;
    let (t, rest) = scratch.split_at_mut(max(batch * inp, inp * g));
    let (acc, rest) = rest.split_at_mut(inp * g);
    let sums = &mut rest[..g];
    let xt = &mut t[..batch * inp];
    transpose(x, batch, inp, xt);
    e.matmul(
        xt,
        dg,
        MatDims {
            m: inp,
            k: batch,
            n: g,
        },
        acc,
    )?;
    e.rescale(acc)?;
    e.add_assign(dw, acc)?;
    if let Some(db) = db {
        column_sums(e, dg, batch, g, sums)?;
        e.add_assign(db, sums)?;
    }
    if let Some(dx) = dx {
        let wt = &mut t[..inp * g];
        transpose(w, inp, g, wt);
        e.matmul(
            dg,
            wt,
            MatDims {
                m: batch,
                k: g,
                n: inp,
            },
            dx,
        )?;
        e.rescale(dx)?;
    }
    Ok(())
}

/// `v[i] = 1 - v[i]` (element scale).
fn one_minus<E: Engine + ?Sized>(e: &mut E, v: &mut [E::Elem]) -> Result<(), E::Error> {
    let m1 = e.public_int(-1);
    e.mul_public(v, m1)?;
    let one = e.public(1.0);
    e.add_public(v, one)
}

/// Scratch for [`gates_backward`] with `g` gate columns.
const fn gates_backward_scratch(batch: usize, input: usize, hidden: usize, g: usize) -> usize {
    linear_backward_scratch(batch, max(input, hidden), g)
}

/// One of the gates' two linear maps, `x W (+ b)` with `width` columns of `x`, in backward:
/// the gradient `dg` of its output, and where its gradients go.
struct LinearGrad<'a, T> {
    x: &'a [T],
    w: &'a [T],
    width: usize,
    dg: &'a [T],
    /// Accumulated: `dw += x^T dg`.
    dw: &'a mut [T],
    /// Accumulated when given: `db += column sums of dg`.
    db: Option<&'a mut [T]>,
    /// Overwritten when given: `dx = dg W^T`.
    dx: Option<&'a mut [T]>,
}

/// The gates' backward through their two linear maps, shared by both cells: the input map
/// `x W_i (+ b_i)` first, then the recurrent map `h W_h (+ b_h)`; for an LSTM both have the
/// same `dg` (its gates sum the two), for a GRU not (`b_hn` sits inside `r * (...)`).
/// Scratch: [`gates_backward_scratch`].
fn gates_backward<E: Engine + ?Sized>(
    e: &mut E,
    batch: usize,
    g: usize,
    input: LinearGrad<'_, E::Elem>,
    recurrent: LinearGrad<'_, E::Elem>,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
    for l in [input, recurrent] {
        linear_backward(e, l, batch, g, scratch)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
