//! Fully connected layer: `y = x W + b`.

use super::{add_rows, column_sums, transpose, Grads};
use crate::engine::MatDims;
use crate::Engine;

/// A dense layer with `inputs` inputs and `outputs` outputs. Weights are `inputs x outputs`
/// row-major, the bias has `outputs` entries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Dense {
    /// Input features.
    pub inputs: usize,
    /// Output features.
    pub outputs: usize,
}

impl Dense {
    /// A layer of the given shape.
    pub const fn new(inputs: usize, outputs: usize) -> Self {
        Dense { inputs, outputs }
    }

    /// Number of weights.
    pub const fn weights(&self) -> usize {
        self.inputs * self.outputs
    }

    /// `y = x w + b` for `batch` rows: one matrix product, one rescale.
    ///
    /// # Errors
    /// What the engine reports.
    pub fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        b: &[E::Elem],
        batch: usize,
        y: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let dims = MatDims {
            m: batch,
            k: self.inputs,
            n: self.outputs,
        };
        e.matmul(x, w, dims, y)?;
        e.rescale(y)?;
        add_rows(e, y, self.outputs, b)
    }

    /// [`Dense::forward`] in training: the product goes through
    /// [`Engine::dense_forward_product`] under `slot` (the layer's name, unique within the
    /// network), so that [`Dense::backward_kept`] with the same slot, `x` and `w` can reuse
    /// what a two-party engine opened here. A plaintext engine's results are those of
    /// [`Dense::forward`], bit for bit.
    ///
    /// # Errors
    /// What the engine reports.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_keeping<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        slot: usize,
        x: &[E::Elem],
        w: &[E::Elem],
        b: &[E::Elem],
        batch: usize,
        y: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        e.dense_forward_product(slot, x, w, self.dims(batch), y)?;
        e.rescale(y)?;
        add_rows(e, y, self.outputs, b)
    }

    /// [`Dense::backward`] (or, with `unscaled`, [`Dense::backward_unscaled`]) after
    /// [`Dense::forward_keeping`] of the same `slot`, `x` and `w`: both products through
    /// [`Engine::dense_backward_products`]. A plaintext engine's results are those of
    /// [`Dense::backward`], bit for bit. Scratch: [`Dense::backward_scratch`].
    ///
    /// # Errors
    /// What the engine reports.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_kept<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        slot: usize,
        x: &[E::Elem],
        w: &[E::Elem],
        batch: usize,
        g: Grads<'_, E::Elem>,
        scratch: &mut [E::Elem],
        unscaled: bool,
    ) -> Result<(), E::Error> {
        let Grads { dy, mut dx, dw, db } = g;
        let dims = self.dims(batch);
        e.dense_backward_products(slot, x, w, dy, dims, dw, dx.as_deref_mut(), scratch)?;
        if !unscaled {
            e.rescale(dw)?;
        }
        column_sums(e, dy, batch, self.outputs, db)?;
        match dx {
            Some(dx) => e.rescale(dx),
            None => Ok(()),
        }
    }

    /// The forward product's shape at `batch` rows.
    const fn dims(&self, batch: usize) -> MatDims {
        MatDims {
            m: batch,
            k: self.inputs,
            n: self.outputs,
        }
    }

    /// Scratch for [`Dense::backward`].
    pub const fn backward_scratch(&self, batch: usize) -> usize {
        let a = batch * self.inputs;
        let b = self.inputs * self.outputs;
        if a > b {
            a
        } else {
            b
        }
    }

    /// From `g.dy = dL/dy`: `g.dw = x^T dy`, `g.db = sum_rows dy` and, when asked,
    /// `g.dx = dy w^T`.
    ///
    /// # Errors
    /// What the engine reports.
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        batch: usize,
        g: Grads<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let Grads { dy, dx, dw, db } = g;
        self.weight_grad(e, x, dy, batch, dw, scratch)?;
        e.rescale(dw)?;
        column_sums(e, dy, batch, self.outputs, db)?;
        self.input_grad(e, w, dy, batch, dx, scratch)
    }

    /// [`Dense::backward`] with `dw` left at twice the fractional bits (not rescaled). The
    /// weight gradients of parts of a batch, summed and then rescaled once, are then bit
    /// for bit those of the whole batch: the ring sum is exact, only the rescale rounds.
    ///
    /// # Errors
    /// What the engine reports.
    pub fn backward_unscaled<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        batch: usize,
        g: Grads<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let Grads { dy, dx, dw, db } = g;
        self.weight_grad(e, x, dy, batch, dw, scratch)?;
        column_sums(e, dy, batch, self.outputs, db)?;
        self.input_grad(e, w, dy, batch, dx, scratch)
    }

    /// `dw = x^T dy`, not rescaled.
    fn weight_grad<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        dy: &[E::Elem],
        batch: usize,
        dw: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (i, o) = (self.inputs, self.outputs);
        let xt = &mut scratch[..batch * i];
        transpose(x, batch, i, xt);
        e.matmul(
            xt,
            dy,
            MatDims {
                m: i,
                k: batch,
                n: o,
            },
            dw,
        )
    }

    /// `dx = dy w^T`, rescaled, when asked.
    fn input_grad<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        w: &[E::Elem],
        dy: &[E::Elem],
        batch: usize,
        dx: Option<&mut [E::Elem]>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let Some(dx) = dx else {
            return Ok(());
        };
        let (i, o) = (self.inputs, self.outputs);
        let wt = &mut scratch[..i * o];
        transpose(w, i, o, wt);
        e.matmul(
            dy,
            wt,
            MatDims {
                m: batch,
                k: o,
                n: i,
            },
            dx,
        )?;
        e.rescale(dx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check, Case};
    use crate::Float;
    extern crate std;
    use std::vec;

    /// The training path (`forward_keeping`, `backward_kept`) gives `Plain` exactly the
    /// results of `forward` and `backward`, scaled and unscaled, with and without `dx`.
    #[test]
    fn the_kept_path_equals_the_plain_path_bit_for_bit() {
        use crate::{Plain, Z64};
        let l = Dense::new(7, 5);
        let batch = 3;
        let p = Plain::with_frac_bits(13).unwrap();
        let enc = |n: usize, seed: u64| -> vec::Vec<Z64> {
            (0..n)
                .map(|i| {
                    let v = (((i as u64 + 1) * (seed * 2 + 1) * 2654435761) % 2001) as f64;
                    p.format().encode(v / 1000.0 - 1.0).unwrap()
                })
                .collect()
        };
        let (x, w, b) = (enc(batch * 7, 1), enc(35, 2), enc(5, 3));
        let dy = enc(batch * 5, 4);
        for (unscaled, with_dx) in [(false, true), (true, true), (false, false), (true, false)] {
            let run = |kept: bool| {
                let mut e = Plain::with_frac_bits(13).unwrap();
                let mut y = vec![Z64::ZERO; batch * 5];
                let (mut dx, mut dw, mut db) = (
                    vec![Z64::ZERO; batch * 7],
                    vec![Z64::ZERO; 35],
                    vec![Z64::ZERO; 5],
                );
                let mut s = vec![Z64::ZERO; l.backward_scratch(batch)];
                let g = Grads {
                    dy: &dy,
                    dx: with_dx.then_some(&mut dx[..]),
                    dw: &mut dw,
                    db: &mut db,
                };
                if kept {
                    l.forward_keeping(&mut e, 9, &x, &w, &b, batch, &mut y)
                        .unwrap();
                    l.backward_kept(&mut e, 9, &x, &w, batch, g, &mut s, unscaled)
                        .unwrap();
                } else {
                    l.forward(&mut e, &x, &w, &b, batch, &mut y).unwrap();
                    let f = if unscaled {
                        Dense::backward_unscaled
                    } else {
                        Dense::backward
                    };
                    f(&l, &mut e, &x, &w, batch, g, &mut s).unwrap();
                }
                (y, dx, dw, db)
            };
            let (old, new) = (run(false), run(true));
            assert_eq!(old, new, "unscaled {unscaled}, dx {with_dx}");
            assert!(old.2.iter().any(|v| *v != Z64::ZERO));
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let l = Dense::new(5, 3);
        let batch = 4;
        let case = Case::new(batch * 5, l.weights() + 3, batch * 3, 1);
        check(
            &case,
            |x, p, y| {
                let mut e = Float::<f64>::new();
                let (w, b) = p.split_at(l.weights());
                l.forward(&mut e, x, w, b, batch, y).unwrap();
            },
            |x, p, dy, dx, dp| {
                let mut e = Float::<f64>::new();
                let (w, _) = p.split_at(l.weights());
                let (dw, db) = dp.split_at_mut(l.weights());
                let mut s = vec![0.0; l.backward_scratch(batch)];
                l.backward(
                    &mut e,
                    x,
                    w,
                    batch,
                    Grads {
                        dy,
                        dx: Some(dx),
                        dw,
                        db,
                    },
                    &mut s,
                )
                .unwrap();
            },
        );
    }
}
