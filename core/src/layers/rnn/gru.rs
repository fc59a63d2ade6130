//! The GRU cell: one time step forward and back. See [the module above](super) for the
//! conventions both recurrent cells share.

use super::{
    from_gate_major, gates_backward, gates_backward_scratch, linear, max, one_minus, to_gate_major,
    GruGrads, GruStep, LinearGrad,
};
use crate::approx::{SigmoidApprox, TanhApprox};
use crate::engine::MatDims;
use crate::layers::Activation;
use crate::Engine;

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

    /// One step: `h_out = GRU(step.x, step.h)`, and the cache for [`GruCell::backward`].
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        step: GruStep<'_, E::Elem>,
        batch: usize,
        h_out: &mut [E::Elem],
        cache: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let GruStep { x, h, params } = step;
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

        linear(
            e,
            x,
            wi,
            Some(b_i),
            MatDims {
                m: batch,
                k: i,
                n: g,
            },
            gi,
        )?;
        linear(
            e,
            h,
            wh,
            Some(b_h),
            MatDims {
                m: batch,
                k: hd,
                n: g,
            },
            gh,
        )?;
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
                gates_backward_scratch(batch, self.input, self.hidden, g),
            )
    }

    /// One step back: from `g.dh_out = dL/dh'`, the step's `x`, `h`, parameters and cache,
    /// overwrites `g.dx` (when given) and `g.dh`, and **adds** the parameter gradients to
    /// `g.dparams` (same layout as the parameters).
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        step: GruStep<'_, E::Elem>,
        cache: &[E::Elem],
        batch: usize,
        g: GruGrads<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let GruStep { x, h, params } = step;
        let GruGrads {
            dh_out,
            dx,
            dh,
            dparams,
        } = g;
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
        gates_backward(
            e,
            batch,
            g,
            LinearGrad {
                x,
                w: wi,
                width: i,
                dg: dgi,
                dw: dwi,
                db: Some(dbi),
                dx,
            },
            LinearGrad {
                x: h,
                w: wh,
                width: hd,
                dg: dgh,
                dw: dwh,
                db: Some(dbh),
                dx: Some(&mut *dh),
            },
            rest,
        )?;
        e.add_assign(dh, dh_direct)
    }
}
