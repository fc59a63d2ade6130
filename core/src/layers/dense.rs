//! Fully connected layer: `y = x W + b`.

use super::{add_rows, column_sums, transpose};
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

    /// From `dy = dL/dy`: `dw = x^T dy`, `db = sum_rows dy` and, when asked,
    /// `dx = dy w^T`.
    ///
    /// # Errors
    /// What the engine reports.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        dy: &[E::Elem],
        batch: usize,
        dx: Option<&mut [E::Elem]>,
        dw: &mut [E::Elem],
        db: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        self.backward_with(e, x, w, dy, batch, dx, dw, db, scratch, true)
    }

    /// [`Dense::backward`] with `dw` left at twice the fractional bits (not rescaled). The
    /// weight gradients of parts of a batch, summed and then rescaled once, are then bit
    /// for bit those of the whole batch: the ring sum is exact, only the rescale rounds.
    ///
    /// # Errors
    /// What the engine reports.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_unscaled<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        dy: &[E::Elem],
        batch: usize,
        dx: Option<&mut [E::Elem]>,
        dw: &mut [E::Elem],
        db: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        self.backward_with(e, x, w, dy, batch, dx, dw, db, scratch, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_with<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        w: &[E::Elem],
        dy: &[E::Elem],
        batch: usize,
        dx: Option<&mut [E::Elem]>,
        dw: &mut [E::Elem],
        db: &mut [E::Elem],
        scratch: &mut [E::Elem],
        rescale_dw: bool,
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
        )?;
        if rescale_dw {
            e.rescale(dw)?;
        }
        column_sums(e, dy, batch, o, db)?;
        if let Some(dx) = dx {
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
            e.rescale(dx)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::gradcheck::{check, Case};
    use crate::Float;
    extern crate std;
    use std::vec;

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
                l.backward(&mut e, x, w, dy, batch, Some(dx), dw, db, &mut s)
                    .unwrap();
            },
        );
    }
}
