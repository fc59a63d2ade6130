//! The LSTM cell: one time step forward and back. See [the module above](super) for the
//! conventions both recurrent cells share.

use super::{
    from_gate_major, gates_backward, gates_backward_scratch, linear, max, to_gate_major, LinearGrad,
};
use crate::approx::{SigmoidApprox, TanhApprox};
use crate::engine::MatDims;
use crate::layers::{add_rows, Activation};
use crate::Engine;

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

        linear(
            e,
            x,
            wi,
            None,
            MatDims {
                m: batch,
                k: i,
                n: g,
            },
            g1,
        )?;
        linear(
            e,
            h,
            wh,
            None,
            MatDims {
                m: batch,
                k: hd,
                n: g,
            },
            g2,
        )?;
        e.add_assign(g1, g2)?;
        add_rows(e, g1, g, b)?;
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
                gates_backward_scratch(batch, self.input, self.hidden, g),
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
        gates_backward(
            e,
            batch,
            g,
            LinearGrad {
                x,
                w: wi,
                width: i,
                dg: dgates,
                dw: dwi,
                db: Some(db),
                dx,
            },
            LinearGrad {
                x: h,
                w: wh,
                width: hd,
                dg: dgates,
                dw: dwh,
                db: None,
                dx: Some(dh),
            },
            rest,
        )
    }
}
