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

use super::{column_sums, transpose, Activation};
use crate::approx::{SigmoidApprox, TanhApprox};
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

/// `out = x w` (`batch x inp` by `inp x g`), rescaled, plus `b` per row when given.
#[allow(clippy::too_many_arguments)]
fn linear<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    w: &[E::Elem],
    b: Option<&[E::Elem]>,
    batch: usize,
    inp: usize,
    g: usize,
    out: &mut [E::Elem],
) -> Result<(), E::Error> {
    e.matmul(
        x,
        w,
        MatDims {
            m: batch,
            k: inp,
            n: g,
        },
        out,
    )?;
    e.rescale(out)?;
    if let Some(b) = b {
        super::add_rows(e, out, g, b)?;
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
/// when given.
#[allow(clippy::too_many_arguments)]
fn linear_backward<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    w: &[E::Elem],
    dg: &[E::Elem],
    batch: usize,
    inp: usize,
    g: usize,
    dw: &mut [E::Elem],
    db: Option<&mut [E::Elem]>,
    dx: Option<&mut [E::Elem]>,
    scratch: &mut [E::Elem],
) -> Result<(), E::Error> {
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

/// A GRU cell (PyTorch's formulation):
///
/// ```text
/// r  = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
/// z  = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
/// n  = tanh(x W_in + b_in + r * (h W_hn + b_hn))
/// h' = (1 - z) * n + z * h
/// ```
///
/// Parameters, in one slice of [`GruCell::params`] elements:
/// `[W_i: input x 3H | W_h: H x 3H | b_i: 3H | b_h: 3H]`, gate blocks in the order
/// `r, z, n`. Two bias vectors are needed because `b_hn` sits inside `r * (...)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GruCell {
    /// Input features.
    pub input: usize,
    /// Hidden state size `H`.
    pub hidden: usize,
    /// Approximation of the gates' sigmoid.
    pub sigmoid: SigmoidApprox,
    /// Approximation of the candidate's tanh.
    pub tanh: TanhApprox,
}

impl GruCell {
    /// The cell.
    pub const fn new(
        input: usize,
        hidden: usize,
        sigmoid: SigmoidApprox,
        tanh: TanhApprox,
    ) -> Self {
        GruCell {
            input,
            hidden,
            sigmoid,
            tanh,
        }
    }

    /// Number of parameters.
    pub const fn params(&self) -> usize {
        let g = 3 * self.hidden;
        (self.input + self.hidden) * g + 2 * g
    }

    /// Cache elements per time step: pre-activations and values of `r, z`, then
    /// `h W_hn + b_hn`, the pre-activation of `n`, and `n`: `7 batch H`.
    pub const fn cache_len(&self, batch: usize) -> usize {
        7 * batch * self.hidden
    }

    fn sig(&self) -> Activation {
        Activation::Sigmoid(self.sigmoid)
    }

    fn th(&self) -> Activation {
        Activation::Tanh(self.tanh)
    }

    fn act_scratch(&self, batch: usize) -> usize {
        let bh = batch * self.hidden;
        max(self.sig().scratch(2 * bh), self.th().scratch(bh))
    }

    /// Scratch for [`GruCell::forward`].
    pub fn forward_scratch(&self, batch: usize) -> usize {
        let bh = batch * self.hidden;
        2 * 3 * bh + 2 * bh + self.act_scratch(batch)
    }

    /// The parameter slices `(W_i, W_h, b_i, b_h)`.
    fn split<'a, T>(&self, p: &'a [T]) -> (&'a [T], &'a [T], &'a [T], &'a [T]) {
        let g = 3 * self.hidden;
        let (wi, rest) = p.split_at(self.input * g);
        let (wh, rest) = rest.split_at(self.hidden * g);
        let (bi, bh) = rest.split_at(g);
        (wi, wh, bi, bh)
    }

    /// One step: `h_out = GRU(x, h)`, and the cache for [`GruCell::backward`].
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        h: &[E::Elem],
        params: &[E::Elem],
        batch: usize,
        h_out: &mut [E::Elem],
        cache: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (i, hd) = (self.input, self.hidden);
        let (bh, g) = (batch * hd, 3 * hd);
        assert!(
            x.len() == batch * i
                && h.len() == bh
                && h_out.len() == bh
                && params.len() == self.params()
                && cache.len() == self.cache_len(batch),
            "gru forward: shape mismatch"
        );
        let (wi, wh, b_i, b_h) = self.split(params);
        let (a_rz, rest) = cache.split_at_mut(2 * bh);
        let (rz, rest) = rest.split_at_mut(2 * bh);
        let (hn, rest) = rest.split_at_mut(bh);
        let (a_n, n) = rest.split_at_mut(bh);
        let (gi, rest) = scratch.split_at_mut(batch * g);
        let (gh, rest) = rest.split_at_mut(batch * g);
        let (tmp, act_s) = rest.split_at_mut(2 * bh);

        linear(e, x, wi, Some(b_i), batch, i, g, gi)?;
        linear(e, h, wh, Some(b_h), batch, hd, g, gh)?;
        to_gate_major(gi, batch, hd, 3, 0, a_rz);
        to_gate_major(gh, batch, hd, 3, 0, tmp);
        e.add_assign(a_rz, tmp)?;
        self.sig().forward(e, a_rz, rz, act_s)?;
        to_gate_major(gh, batch, hd, 3, 2, hn);
        to_gate_major(gi, batch, hd, 3, 2, a_n);
        let t = &mut tmp[..bh];
        e.mul(&rz[..bh], hn, t)?;
        e.rescale(t)?;
        e.add_assign(a_n, t)?;
        self.th().forward(e, a_n, n, act_s)?;
        // h' = n + z (h - n)
        t.copy_from_slice(h);
        e.sub_assign(t, n)?;
        e.mul(&rz[bh..], t, h_out)?;
        e.rescale(h_out)?;
        e.add_assign(h_out, n)
    }

    /// Scratch for [`GruCell::backward`].
    pub fn backward_scratch(&self, batch: usize) -> usize {
        let (bh, g) = (batch * self.hidden, 3 * self.hidden);
        3 * 3 * bh
            + 2 * 2 * bh
            + 2 * bh
            + 2 * batch * g
            + max(
                self.act_scratch(batch),
                linear_backward_scratch(batch, max(self.input, self.hidden), g),
            )
    }

    /// One step back: from `dh_out = dL/dh'`, the step's `x`, `h` and cache, overwrites
    /// `dx` (when given) and `dh`, and **adds** the parameter gradients to `dparams` (same
    /// layout as the parameters).
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        h: &[E::Elem],
        params: &[E::Elem],
        cache: &[E::Elem],
        dh_out: &[E::Elem],
        batch: usize,
        dx: Option<&mut [E::Elem]>,
        dh: &mut [E::Elem],
        dparams: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (i, hd) = (self.input, self.hidden);
        let (bh, g) = (batch * hd, 3 * hd);
        assert!(
            x.len() == batch * i
                && h.len() == bh
                && dh_out.len() == bh
                && dh.len() == bh
                && params.len() == self.params()
                && dparams.len() == self.params()
                && cache.len() == self.cache_len(batch),
            "gru backward: shape mismatch"
        );
        let (wi, wh, _, _) = self.split(params);
        let (dwi, rest) = dparams.split_at_mut(i * g);
        let (dwh, rest) = rest.split_at_mut(hd * g);
        let (dbi, dbh) = rest.split_at_mut(g);
        let (a_rz, rest) = cache.split_at(2 * bh);
        let (rz, rest) = rest.split_at(2 * bh);
        let (hn, rest) = rest.split_at(bh);
        let (a_n, n) = rest.split_at(bh);
        let (r, z) = rz.split_at(bh);

        let (ta, rest) = scratch.split_at_mut(3 * bh);
        let (tb, rest) = rest.split_at_mut(3 * bh);
        let (prod, rest) = rest.split_at_mut(3 * bh);
        let (d_rz, rest) = rest.split_at_mut(2 * bh);
        let (da_rz, rest) = rest.split_at_mut(2 * bh);
        let (da_n, rest) = rest.split_at_mut(bh);
        let (dhn, rest) = rest.split_at_mut(bh);
        let (dgi, rest) = rest.split_at_mut(batch * g);
        let (dgh, rest) = rest.split_at_mut(batch * g);

        // [dn, dz, dh_direct] = dh_out * [1 - z, h - n, z]: one product.
        for c in ta.chunks_mut(bh) {
            c.copy_from_slice(dh_out);
        }
        tb[..bh].copy_from_slice(z);
        one_minus(e, &mut tb[..bh])?;
        tb[bh..2 * bh].copy_from_slice(h);
        e.sub_assign(&mut tb[bh..2 * bh], n)?;
        tb[2 * bh..].copy_from_slice(z);
        e.mul(ta, tb, prod)?;
        e.rescale(prod)?;
        let (dn, rest2) = prod.split_at(bh);
        let (dz, dh_direct) = rest2.split_at(bh);
        self.th().backward(e, a_n, dn, da_n, rest)?;
        // [dr, dhn] = da_n * [hn, r]: one product.
        ta[..bh].copy_from_slice(da_n);
        ta[bh..2 * bh].copy_from_slice(da_n);
        tb[..bh].copy_from_slice(hn);
        tb[bh..2 * bh].copy_from_slice(r);
        e.mul(&ta[..2 * bh], &tb[..2 * bh], d_rz)?;
        e.rescale(d_rz)?;
        dhn.copy_from_slice(&d_rz[bh..]);
        d_rz[bh..].copy_from_slice(dz);
        self.sig().backward(e, a_rz, d_rz, da_rz, rest)?;
        from_gate_major(da_rz, batch, hd, 3, 0, dgi);
        from_gate_major(da_n, batch, hd, 3, 2, dgi);
        from_gate_major(da_rz, batch, hd, 3, 0, dgh);
        from_gate_major(dhn, batch, hd, 3, 2, dgh);
        linear_backward(e, x, wi, dgi, batch, i, g, dwi, Some(dbi), dx, rest)?;
        linear_backward(
            e,
            h,
            wh,
            dgh,
            batch,
            hd,
            g,
            dwh,
            Some(dbh),
            Some(&mut *dh),
            rest,
        )?;
        e.add_assign(dh, dh_direct)
    }
}

/// An LSTM cell (PyTorch's formulation, with one bias):
///
/// ```text
/// [i, f, o] = sigmoid(x W_i + h W_h + b)   (their gate blocks)
/// g         = tanh(x W_i + h W_h + b)      (its gate block)
/// c'        = f * c + i * g
/// h'        = o * tanh(c')
/// ```
///
/// Parameters, in one slice of [`LstmCell::params`] elements:
/// `[W_i: input x 4H | W_h: H x 4H | b: 4H]`, gate blocks in the order `i, f, o, g`
/// (the three sigmoid gates first, so that one activation call serves them). PyTorch's two
/// bias vectors are one here (their sum is all that matters); import PyTorch weights by
/// reordering its `i, f, g, o` blocks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LstmCell {
    /// Input features.
    pub input: usize,
    /// Hidden and cell state size `H`.
    pub hidden: usize,
    /// Approximation of the gates' sigmoid.
    pub sigmoid: SigmoidApprox,
    /// Approximation of tanh (the `g` gate and the output's `tanh(c')`).
    pub tanh: TanhApprox,
}

impl LstmCell {
    /// The cell.
    pub const fn new(
        input: usize,
        hidden: usize,
        sigmoid: SigmoidApprox,
        tanh: TanhApprox,
    ) -> Self {
        LstmCell {
            input,
            hidden,
            sigmoid,
            tanh,
        }
    }

    /// Number of parameters.
    pub const fn params(&self) -> usize {
        let g = 4 * self.hidden;
        (self.input + self.hidden) * g + g
    }

    /// Cache elements per time step: pre-activations and values of the four gates
    /// (gate-major), `c'` and `tanh(c')`: `10 batch H`.
    pub const fn cache_len(&self, batch: usize) -> usize {
        10 * batch * self.hidden
    }

    fn sig(&self) -> Activation {
        Activation::Sigmoid(self.sigmoid)
    }

    fn th(&self) -> Activation {
        Activation::Tanh(self.tanh)
    }

    fn act_scratch(&self, batch: usize) -> usize {
        let bh = batch * self.hidden;
        max(self.sig().scratch(3 * bh), self.th().scratch(bh))
    }

    /// Scratch for [`LstmCell::forward`].
    pub fn forward_scratch(&self, batch: usize) -> usize {
        let bh = batch * self.hidden;
        2 * 4 * bh + 2 * 2 * bh + self.act_scratch(batch)
    }

    /// The parameter slices `(W_i, W_h, b)`.
    fn split<'a, T>(&self, p: &'a [T]) -> (&'a [T], &'a [T], &'a [T]) {
        let g = 4 * self.hidden;
        let (wi, rest) = p.split_at(self.input * g);
        let (wh, b) = rest.split_at(self.hidden * g);
        (wi, wh, b)
    }

    /// One step: `(h_out, c_out) = LSTM(x, h, c)`, and the cache for
    /// [`LstmCell::backward`].
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        h: &[E::Elem],
        c: &[E::Elem],
        params: &[E::Elem],
        batch: usize,
        h_out: &mut [E::Elem],
        c_out: &mut [E::Elem],
        cache: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (i, hd) = (self.input, self.hidden);
        let (bh, g) = (batch * hd, 4 * hd);
        assert!(
            x.len() == batch * i
                && h.len() == bh
                && c.len() == bh
                && h_out.len() == bh
                && c_out.len() == bh
                && params.len() == self.params()
                && cache.len() == self.cache_len(batch),
            "lstm forward: shape mismatch"
        );
        let (wi, wh, b) = self.split(params);
        let (a, rest) = cache.split_at_mut(4 * bh);
        let (act, rest) = rest.split_at_mut(4 * bh);
        let (cc, tc) = rest.split_at_mut(bh);
        let (g1, rest) = scratch.split_at_mut(batch * g);
        let (g2, rest) = rest.split_at_mut(batch * g);
        let (tb, rest) = rest.split_at_mut(2 * bh);
        let (prod, act_s) = rest.split_at_mut(2 * bh);

        linear(e, x, wi, None, batch, i, g, g1)?;
        linear(e, h, wh, None, batch, hd, g, g2)?;
        e.add_assign(g1, g2)?;
        super::add_rows(e, g1, g, b)?;
        to_gate_major(g1, batch, hd, 4, 0, a);
        self.sig()
            .forward(e, &a[..3 * bh], &mut act[..3 * bh], act_s)?;
        self.th()
            .forward(e, &a[3 * bh..], &mut act[3 * bh..], act_s)?;
        // [i g, f c] in one product, then c' = i g + f c.
        tb[..bh].copy_from_slice(&act[3 * bh..]);
        tb[bh..].copy_from_slice(c);
        e.mul(&act[..2 * bh], tb, prod)?;
        e.rescale(prod)?;
        c_out.copy_from_slice(&prod[..bh]);
        e.add_assign(c_out, &prod[bh..])?;
        cc.copy_from_slice(c_out);
        self.th().forward(e, cc, tc, act_s)?;
        e.mul(&act[2 * bh..3 * bh], tc, h_out)?;
        e.rescale(h_out)
    }

    /// Scratch for [`LstmCell::backward`].
    pub fn backward_scratch(&self, batch: usize) -> usize {
        let (bh, g) = (batch * self.hidden, 4 * self.hidden);
        3 * 4 * bh
            + bh
            + 2 * 4 * bh
            + batch * g
            + max(
                self.act_scratch(batch),
                linear_backward_scratch(batch, max(self.input, self.hidden), g),
            )
    }

    /// One step back: from `dh_out = dL/dh'` and `dc_out = dL/dc'` (the gradient reaching
    /// `c'` from the next step; zeros after the last), the step's `x`, `h`, `c` and cache,
    /// overwrites `dx` (when given), `dh` and `dc`, and **adds** the parameter gradients to
    /// `dparams` (same layout as the parameters).
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        h: &[E::Elem],
        c: &[E::Elem],
        params: &[E::Elem],
        cache: &[E::Elem],
        dh_out: &[E::Elem],
        dc_out: &[E::Elem],
        batch: usize,
        dx: Option<&mut [E::Elem]>,
        dh: &mut [E::Elem],
        dc: &mut [E::Elem],
        dparams: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (i, hd) = (self.input, self.hidden);
        let (bh, g) = (batch * hd, 4 * hd);
        assert!(
            x.len() == batch * i
                && h.len() == bh
                && c.len() == bh
                && dh_out.len() == bh
                && dc_out.len() == bh
                && dh.len() == bh
                && dc.len() == bh
                && params.len() == self.params()
                && dparams.len() == self.params()
                && cache.len() == self.cache_len(batch),
            "lstm backward: shape mismatch"
        );
        let (wi, wh, _) = self.split(params);
        let (dwi, rest) = dparams.split_at_mut(i * g);
        let (dwh, db) = rest.split_at_mut(hd * g);
        let (a, rest) = cache.split_at(4 * bh);
        let (act, rest) = rest.split_at(4 * bh);
        let (cc, tc) = rest.split_at(bh);
        let (gi, gf, go, gg) = (
            &act[..bh],
            &act[bh..2 * bh],
            &act[2 * bh..3 * bh],
            &act[3 * bh..],
        );

        let (ta, rest) = scratch.split_at_mut(4 * bh);
        let (tb, rest) = rest.split_at_mut(4 * bh);
        let (prod, rest) = rest.split_at_mut(4 * bh);
        let (dct, rest) = rest.split_at_mut(bh);
        let (dact, rest) = rest.split_at_mut(4 * bh);
        let (da, rest) = rest.split_at_mut(4 * bh);
        let (dgates, rest) = rest.split_at_mut(batch * g);

        // [do, dtc] = dh_out * [tanh(c'), o].
        ta[..bh].copy_from_slice(dh_out);
        ta[bh..2 * bh].copy_from_slice(dh_out);
        tb[..bh].copy_from_slice(tc);
        tb[bh..2 * bh].copy_from_slice(go);
        e.mul(&ta[..2 * bh], &tb[..2 * bh], &mut prod[..2 * bh])?;
        e.rescale(&mut prod[..2 * bh])?;
        dact[2 * bh..3 * bh].copy_from_slice(&prod[..bh]);
        // dc' total = dc_out + tanh'(c') dtc.
        self.th().backward(e, cc, &prod[bh..2 * bh], dct, rest)?;
        e.add_assign(dct, dc_out)?;
        // [di, df, dg, dc] = dct * [g, c, i, f]: one product.
        for t in ta.chunks_mut(bh) {
            t.copy_from_slice(dct);
        }
        tb[..bh].copy_from_slice(gg);
        tb[bh..2 * bh].copy_from_slice(c);
        tb[2 * bh..3 * bh].copy_from_slice(gi);
        tb[3 * bh..].copy_from_slice(gf);
        e.mul(ta, tb, prod)?;
        e.rescale(prod)?;
        dact[..2 * bh].copy_from_slice(&prod[..2 * bh]);
        dact[3 * bh..].copy_from_slice(&prod[2 * bh..3 * bh]);
        dc.copy_from_slice(&prod[3 * bh..]);
        self.sig()
            .backward(e, &a[..3 * bh], &dact[..3 * bh], &mut da[..3 * bh], rest)?;
        self.th()
            .backward(e, &a[3 * bh..], &dact[3 * bh..], &mut da[3 * bh..], rest)?;
        from_gate_major(da, batch, hd, 4, 0, dgates);
        linear_backward(e, x, wi, dgates, batch, i, g, dwi, Some(db), dx, rest)?;
        linear_backward(e, h, wh, dgates, batch, hd, g, dwh, None, Some(dh), rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check, values, Case};
    use crate::layers::testutil::{compare_engines, Harness};
    use crate::Float;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    const BATCH: usize = 3;
    const EXACT: (SigmoidApprox, TanhApprox) = (SigmoidApprox::Exact, TanhApprox::Exact);
    const HARD: (SigmoidApprox, TanhApprox) = (SigmoidApprox::SecureMl, TanhApprox::Hard);

    fn gru(a: (SigmoidApprox, TanhApprox)) -> GruCell {
        GruCell::new(4, 5, a.0, a.1)
    }

    fn lstm(a: (SigmoidApprox, TanhApprox)) -> LstmCell {
        LstmCell::new(4, 5, a.0, a.1)
    }

    /// Parameters drawn in (-1, 1), scaled so that pre-activations stay mostly inside the
    /// linear parts of the hard approximations (and exercise both sides of them).
    fn scaled(p: &[f64], s: f64) -> Vec<f64> {
        p.iter().map(|v| v * s).collect()
    }

    /// Inputs `[x | h]`, output `h'`; the same shape for one step and for two steps with
    /// the same parameters (`h'' = GRU(x2, GRU(x1, h))` with inputs `[x1 | x2 | h]`).
    fn gru_check(l: GruCell, steps: usize, seed: u64) {
        let (i, hd) = (l.input, l.hidden);
        let (xs, bh) = (steps * BATCH * i, BATCH * hd);
        let ps = 0.6;
        check(
            &Case::new(xs + bh, l.params(), bh, seed),
            |inp, p, y| {
                let mut e = Float::<f64>::new();
                let p = scaled(p, ps);
                let mut h = inp[xs..].to_vec();
                let mut cache = vec![0.0; l.cache_len(BATCH)];
                let mut s = vec![0.0; l.forward_scratch(BATCH)];
                for t in 0..steps {
                    let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                    l.forward(&mut e, x, &h, &p, BATCH, y, &mut cache, &mut s)
                        .unwrap();
                    h.copy_from_slice(y);
                }
            },
            |inp, p, dy, dinp, dp| {
                let mut e = Float::<f64>::new();
                let p = scaled(p, ps);
                let mut hs = vec![inp[xs..].to_vec()];
                let mut caches = Vec::new();
                let mut s = vec![0.0; l.forward_scratch(BATCH).max(l.backward_scratch(BATCH))];
                for t in 0..steps {
                    let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                    let mut cache = vec![0.0; l.cache_len(BATCH)];
                    let mut h2 = vec![0.0; bh];
                    l.forward(&mut e, x, &hs[t], &p, BATCH, &mut h2, &mut cache, &mut s)
                        .unwrap();
                    hs.push(h2);
                    caches.push(cache);
                }
                let mut dh_out = dy.to_vec();
                let mut dh = vec![0.0; bh];
                let (dxs, dh0) = dinp.split_at_mut(xs);
                for t in (0..steps).rev() {
                    let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                    let dx = &mut dxs[t * BATCH * i..(t + 1) * BATCH * i];
                    l.backward(
                        &mut e,
                        x,
                        &hs[t],
                        &p,
                        &caches[t],
                        &dh_out,
                        BATCH,
                        Some(dx),
                        &mut dh,
                        dp,
                        &mut s,
                    )
                    .unwrap();
                    dh_out.copy_from_slice(&dh);
                }
                dh0.copy_from_slice(&dh);
                // Chain rule through the parameter scaling.
                dp.iter_mut().for_each(|d| *d *= ps);
            },
        );
    }

    #[test]
    fn gru_gradients_match_finite_differences() {
        gru_check(gru(EXACT), 1, 300);
        gru_check(gru(EXACT), 2, 301);
        gru_check(gru(HARD), 1, 302);
        gru_check(gru(HARD), 2, 303);
        gru_check(
            GruCell::new(
                4,
                5,
                SigmoidApprox::Exp(crate::approx::ExpApprox::Taylor(6)),
                TanhApprox::Exact,
            ),
            1,
            304,
        );
    }

    /// Inputs `[x_1..x_steps | h | c]`, outputs `[h_T | c_T]`.
    fn lstm_check(l: LstmCell, steps: usize, seed: u64) {
        let (i, hd) = (l.input, l.hidden);
        let (xs, bh) = (steps * BATCH * i, BATCH * hd);
        let ps = 0.6;
        check(
            &Case::new(xs + 2 * bh, l.params(), 2 * bh, seed),
            |inp, p, y| {
                let mut e = Float::<f64>::new();
                let p = scaled(p, ps);
                let (mut h, mut c) = (inp[xs..xs + bh].to_vec(), inp[xs + bh..].to_vec());
                let mut cache = vec![0.0; l.cache_len(BATCH)];
                let mut s = vec![0.0; l.forward_scratch(BATCH)];
                let (yh, yc) = y.split_at_mut(bh);
                for t in 0..steps {
                    let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                    l.forward(&mut e, x, &h, &c, &p, BATCH, yh, yc, &mut cache, &mut s)
                        .unwrap();
                    h.copy_from_slice(yh);
                    c.copy_from_slice(yc);
                }
            },
            |inp, p, dy, dinp, dp| {
                let mut e = Float::<f64>::new();
                let p = scaled(p, ps);
                let mut hs = vec![inp[xs..xs + bh].to_vec()];
                let mut cs = vec![inp[xs + bh..].to_vec()];
                let mut caches = Vec::new();
                let mut s = vec![0.0; l.forward_scratch(BATCH).max(l.backward_scratch(BATCH))];
                for t in 0..steps {
                    let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                    let mut cache = vec![0.0; l.cache_len(BATCH)];
                    let (mut h2, mut c2) = (vec![0.0; bh], vec![0.0; bh]);
                    l.forward(
                        &mut e, x, &hs[t], &cs[t], &p, BATCH, &mut h2, &mut c2, &mut cache, &mut s,
                    )
                    .unwrap();
                    hs.push(h2);
                    cs.push(c2);
                    caches.push(cache);
                }
                let (mut dho, mut dco) = (dy[..bh].to_vec(), dy[bh..].to_vec());
                let (mut dh, mut dc) = (vec![0.0; bh], vec![0.0; bh]);
                let (dxs, dhc) = dinp.split_at_mut(xs);
                for t in (0..steps).rev() {
                    let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                    let dx = &mut dxs[t * BATCH * i..(t + 1) * BATCH * i];
                    l.backward(
                        &mut e,
                        x,
                        &hs[t],
                        &cs[t],
                        &p,
                        &caches[t],
                        &dho,
                        &dco,
                        BATCH,
                        Some(dx),
                        &mut dh,
                        &mut dc,
                        dp,
                        &mut s,
                    )
                    .unwrap();
                    dho.copy_from_slice(&dh);
                    dco.copy_from_slice(&dc);
                }
                dhc[..bh].copy_from_slice(&dh);
                dhc[bh..].copy_from_slice(&dc);
                dp.iter_mut().for_each(|d| *d *= ps);
            },
        );
    }

    #[test]
    fn lstm_gradients_match_finite_differences() {
        lstm_check(lstm(EXACT), 1, 400);
        lstm_check(lstm(EXACT), 2, 401);
        lstm_check(lstm(HARD), 1, 402);
        lstm_check(lstm(HARD), 2, 403);
    }

    /// The hard approximations must actually be exercised on both sides of their kinks in
    /// the checks above: count pre-activations outside the linear part.
    #[test]
    fn hard_checks_reach_the_saturated_parts() {
        let l = gru(HARD);
        let mut e = Float::<f64>::new();
        let x = values(302, BATCH * 4);
        let h = values(302, BATCH * 5 + BATCH * 4)[BATCH * 4..].to_vec();
        let p = scaled(&values(303, l.params()), 0.6);
        let mut cache = vec![0.0; l.cache_len(BATCH)];
        let mut s = vec![0.0; l.forward_scratch(BATCH)];
        let mut y = vec![0.0; BATCH * 5];
        l.forward(&mut e, &x, &h, &p, BATCH, &mut y, &mut cache, &mut s)
            .unwrap();
        let bh = BATCH * 5;
        let sat = cache[..2 * bh].iter().filter(|v| v.abs() > 0.5).count();
        let lin = cache[..2 * bh].iter().filter(|v| v.abs() < 0.5).count();
        assert!(sat > 0 && lin > 0, "gru: saturated {sat}, linear {lin}");

        let l = lstm(HARD);
        let inp = values(402, BATCH * 4 + 2 * bh);
        let (x, h, c) = (
            &inp[..BATCH * 4],
            &inp[BATCH * 4..BATCH * 4 + bh],
            &inp[BATCH * 4 + bh..],
        );
        let p = scaled(&values(403, l.params()), 0.6);
        let mut cache = vec![0.0; l.cache_len(BATCH)];
        let mut s = vec![0.0; l.forward_scratch(BATCH)];
        let (mut h2, mut c2) = (vec![0.0; bh], vec![0.0; bh]);
        l.forward(
            &mut e, x, h, c, &p, BATCH, &mut h2, &mut c2, &mut cache, &mut s,
        )
        .unwrap();
        let sig = &cache[..3 * bh];
        let sat = sig.iter().filter(|v| v.abs() > 0.5).count();
        let lin = sig.iter().filter(|v| v.abs() < 0.5).count();
        assert!(sat > 0 && lin > 0, "lstm: saturated {sat}, linear {lin}");
    }

    struct Body(GruCell, LstmCell);

    impl Harness for Body {
        fn run<E: Engine>(&self, e: &mut E, ins: &[Vec<E::Elem>]) -> Vec<Vec<E::Elem>> {
            let (g, l) = (self.0, self.1);
            let z = E::Elem::default();
            let (x, h, c, dho, dco) = (&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]);
            let bh = h.len();
            let mut s = vec![
                z;
                g.forward_scratch(BATCH)
                    .max(g.backward_scratch(BATCH))
                    .max(l.forward_scratch(BATCH))
                    .max(l.backward_scratch(BATCH))
            ];
            // GRU
            let mut cache = vec![z; g.cache_len(BATCH)];
            let (mut h2, mut dx, mut dh, mut dp) = (
                vec![z; bh],
                vec![z; x.len()],
                vec![z; bh],
                vec![z; g.params()],
            );
            g.forward(e, x, h, &ins[5], BATCH, &mut h2, &mut cache, &mut s)
                .unwrap();
            g.backward(
                e,
                x,
                h,
                &ins[5],
                &cache,
                dho,
                BATCH,
                Some(&mut dx),
                &mut dh,
                &mut dp,
                &mut s,
            )
            .unwrap();
            // LSTM
            let mut lc = vec![z; l.cache_len(BATCH)];
            let (mut lh, mut lcc, mut ldx, mut ldh, mut ldc, mut ldp) = (
                vec![z; bh],
                vec![z; bh],
                vec![z; x.len()],
                vec![z; bh],
                vec![z; bh],
                vec![z; l.params()],
            );
            l.forward(
                e, x, h, c, &ins[6], BATCH, &mut lh, &mut lcc, &mut lc, &mut s,
            )
            .unwrap();
            l.backward(
                e,
                x,
                h,
                c,
                &ins[6],
                &lc,
                dho,
                dco,
                BATCH,
                Some(&mut ldx),
                &mut ldh,
                &mut ldc,
                &mut ldp,
                &mut s,
            )
            .unwrap();
            vec![h2, dx, dh, dp, lh, lcc, ldx, ldh, ldc, ldp]
        }
    }

    /// Values and gradients are O(1) sums of at most `input + hidden + batch` products, each
    /// truncated once, chained through a few element products and activations of slope at
    /// most 1 (hard tanh, SecureML sigmoid: exact on the grid, so no approximation error
    /// beyond truncation). States get 8 ulps, gradients 16 (measured: at most about half).
    #[test]
    fn plain_matches_float() {
        for (k, a) in [HARD, EXACT].into_iter().enumerate() {
            let (g, l) = (gru(a), lstm(a));
            let s = 100 * k as u64;
            let ins = vec![
                values(500 + s, BATCH * 4),
                values(501 + s, BATCH * 5),
                values(502 + s, BATCH * 5),
                values(503 + s, BATCH * 5),
                values(504 + s, BATCH * 5),
                scaled(&values(505 + s, g.params()), 0.6),
                scaled(&values(506 + s, l.params()), 0.6),
            ];
            for f in [16u32, 20] {
                let u = crate::fixed::pow2(-(f as i32));
                let (st, gr) = (8.0 * u, 16.0 * u);
                compare_engines(
                    &Body(g, l),
                    f,
                    &ins,
                    &[st, gr, gr, gr, st, st, gr, gr, gr, gr],
                );
            }
        }
    }
}
