//! Sequence cross-entropy: softmax cross-entropy at every position of a
//! `[time x batch x vocab]` block of logits, with a per-position mask for padding.
//!
//! The kernel computes what training needs and a two-party engine can compute: the
//! probabilities and the gradient with respect to the logits, through
//! [`softmax_xent_backward`] with the chosen [`Softmax`] (e^x approximation) and
//! [`GradMode`]. All `time * batch` positions go to one call (rows are independent, so this
//! equals a call per step, with one set of rounds instead of `time`). Each position's
//! gradient row is then multiplied by its mask (element scale: 1.0 for a real token, 0 for
//! padding) and rescaled, so padding contributes exactly nothing on `Plain`.
//!
//! The loss value needs a logarithm, which the kernel's engines do not compute (and a
//! two-party protocol would not spend on a number used only for reporting):
//! [`sequence_loss`] computes it in `f64` from decoded probabilities.
//!
//! Gradients are sums over positions; dividing by the number of real tokens (or the batch)
//! is the optimiser's job, as for every layer.

use crate::softmax::{
    backward_scratch, softmax_xent_backward, GradMode, Labelled, Rows, Softmax, XentOut,
};
use crate::Engine;

/// Sequence cross-entropy settings.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SeqXent {
    /// Softmax (e^x approximation, max subtraction).
    pub softmax: Softmax,
    /// Gradient mode.
    pub mode: GradMode,
}

impl SeqXent {
    /// The loss.
    pub const fn new(softmax: Softmax, mode: GradMode) -> Self {
        SeqXent { softmax, mode }
    }

    /// Scratch for [`SeqXent::backward`].
    pub fn scratch(&self, time: usize, batch: usize, vocab: usize) -> usize {
        let rows = time * batch;
        backward_scratch(self.softmax, rows, vocab) + rows * vocab
    }

    /// Probabilities `out.p` and the gradient `out.grad = mask * dL/dlogits` (both
    /// `[time x batch x vocab]`, overwritten) for the logits `data.x` and one-hot targets
    /// `data.y` (same shape, element scale) and `mask` (`[time x batch]`, element scale), with
    /// `shape` the `time * batch` rows of `vocab`.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If a slice has the wrong length or the scratch is too short.
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        data: Labelled<'_, E::Elem>,
        mask: &[E::Elem],
        shape: Rows,
        out: XentOut<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let (rows, vocab) = (shape.rows, shape.cols);
        let n = rows * vocab;
        let XentOut { p, grad } = out;
        assert!(
            data.x.len() == n
                && data.y.len() == n
                && mask.len() == rows
                && p.len() == n
                && grad.len() == n,
            "sequence cross-entropy: shape mismatch"
        );
        let (wide, rest) = scratch.split_at_mut(n);
        let first = XentOut { p, grad: wide };
        softmax_xent_backward(e, self.softmax, self.mode, data, shape, first, rest)?;
        let m = &mut rest[..n];
        for (row, &v) in m.chunks_mut(vocab.max(1)).zip(mask) {
            row.fill(v);
        }
        e.mul(wide, m, grad)?;
        e.rescale(grad)
    }
}

/// The loss value in `f64` from decoded probabilities `p` (`[positions x vocab]`), target
/// token ids (`[positions]`) and mask weights (`[positions]`, 0 for padding):
/// `(sum of -mask * ln p[target], sum of mask)`. The mean is their quotient. Probabilities
/// are floored at `1e-12` (a fixed-point softmax can return 0), so the value is finite.
///
/// # Panics
/// If the lengths disagree or a target is not below `vocab`.
pub fn sequence_loss(p: &[f64], targets: &[usize], mask: &[f64], vocab: usize) -> (f64, f64) {
    assert!(
        p.len() == targets.len() * vocab && mask.len() == targets.len(),
        "sequence_loss: shape mismatch"
    );
    let (mut loss, mut weight) = (0.0, 0.0);
    for (i, (&t, &w)) in targets.iter().zip(mask).enumerate() {
        assert!(t < vocab, "sequence_loss: target {t} not below {vocab}");
        if w != 0.0 {
            loss -= w * libm::log(p[i * vocab + t].max(1e-12));
            weight += w;
        }
    }
    (loss, weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approx::ExpApprox;
    use crate::layers::gradcheck::{check, values, Case};
    use crate::layers::testutil::{compare_engines, Harness};
    use crate::softmax::softmax;
    use crate::Float;
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    const T: usize = 3;
    const B: usize = 2;
    const V: usize = 5;
    const TARGETS: [usize; T * B] = [1, 4, 0, 2, 3, 3];
    const MASK: [f64; T * B] = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0];

    fn onehot() -> Vec<f64> {
        let mut y = vec![0.0; T * B * V];
        for (i, &t) in TARGETS.iter().enumerate() {
            y[i * V + t] = 1.0;
        }
        y
    }

    /// The checker's loss is `sum_i r_i L_i` over positions, with `L_i` the masked
    /// cross-entropy of position `i` computed in f64 from the float engine's (approximated)
    /// softmax; its gradient is the kernel's gradient rows scaled by `r_i`. In exact mode
    /// this is the derivative of the approximated loss for any e^x approximation.
    #[test]
    fn exact_mode_gradient_matches_finite_differences() {
        for (k, exp) in [ExpApprox::Exact, ExpApprox::Taylor(6), ExpApprox::Pwl(4)]
            .into_iter()
            .enumerate()
        {
            let l = SeqXent::new(Softmax::new(exp), GradMode::Exact);
            let n = T * B * V;
            check(
                &Case::new(n, 0, T * B, 600 + k as u64),
                |x, _, y| {
                    let mut p = vec![0.0; n];
                    let mut s = vec![0.0; crate::softmax::softmax_scratch(l.softmax, T * B, V)];
                    softmax(
                        &mut Float::<f64>::new(),
                        l.softmax,
                        x,
                        T * B,
                        V,
                        &mut p,
                        &mut s,
                    )
                    .unwrap();
                    for (i, v) in y.iter_mut().enumerate() {
                        *v = sequence_loss(
                            &p[i * V..(i + 1) * V],
                            &TARGETS[i..i + 1],
                            &MASK[i..i + 1],
                            V,
                        )
                        .0;
                    }
                },
                |x, _, dy, dx, _| {
                    let (mut p, mut s) = (vec![0.0; n], vec![0.0; l.scratch(T, B, V)]);
                    l.backward(
                        &mut Float::<f64>::new(),
                        Labelled { x, y: &onehot() },
                        &MASK,
                        Rows {
                            rows: T * B,
                            cols: V,
                        },
                        XentOut {
                            p: &mut p,
                            grad: dx,
                        },
                        &mut s,
                    )
                    .unwrap();
                    for (row, r) in dx.chunks_mut(V).zip(dy) {
                        row.iter_mut().for_each(|g| *g *= r);
                    }
                },
            );
        }
    }

    #[test]
    fn padding_contributes_nothing_and_surrogate_is_p_minus_y() {
        let l = SeqXent::new(Softmax::new(ExpApprox::Pwl(4)), GradMode::Surrogate);
        let x = values(610, T * B * V);
        let (mut p, mut g) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let mut s = vec![0.0; l.scratch(T, B, V)];
        l.backward(
            &mut Float::<f64>::new(),
            Labelled {
                x: &x,
                y: &onehot(),
            },
            &MASK,
            Rows {
                rows: T * B,
                cols: V,
            },
            XentOut {
                p: &mut p,
                grad: &mut g,
            },
            &mut s,
        )
        .unwrap();
        let y = onehot();
        for (i, &m) in MASK.iter().enumerate() {
            for k in i * V..(i + 1) * V {
                assert!((g[k] - m * (p[k] - y[k])).abs() < 1e-15);
            }
        }
        let (loss, w) = sequence_loss(&p, &TARGETS, &MASK, V);
        assert_eq!(w, 4.0);
        let want: f64 = (0..T * B)
            .filter(|&i| MASK[i] != 0.0)
            .map(|i| -libm::log(p[i * V + TARGETS[i]]))
            .sum();
        assert!((loss - want).abs() < 1e-12);
    }

    struct Body(SeqXent);

    impl Harness for Body {
        fn run<E: Engine>(&self, e: &mut E, ins: &[Vec<E::Elem>]) -> Vec<Vec<E::Elem>> {
            let z = E::Elem::default();
            let n = ins[0].len();
            let (mut p, mut g) = (vec![z; n], vec![z; n]);
            let mut s = vec![z; self.0.scratch(T, B, V)];
            self.0
                .backward(
                    e,
                    Labelled {
                        x: &ins[0],
                        y: &ins[1],
                    },
                    &ins[2],
                    Rows {
                        rows: T * B,
                        cols: V,
                    },
                    XentOut {
                        p: &mut p,
                        grad: &mut g,
                    },
                    &mut s,
                )
                .unwrap();
            vec![p, g]
        }
    }

    /// The softmax's documented bound `2^-f (4 + 4 max p) <= 8` ulps for `p`; the exact
    /// gradient adds a ratio `E'/E` at the label and its products: 16 ulps (measured: 2.6).
    /// Masked rows are exactly 0.
    #[test]
    fn plain_matches_float() {
        for mode in [GradMode::Exact, GradMode::Surrogate] {
            for exp in [ExpApprox::Pwl(4), ExpApprox::Taylor(4)] {
                let l = SeqXent::new(Softmax::new(exp), mode);
                let ins = vec![values(620, T * B * V), onehot(), MASK.to_vec()];
                for f in [16u32, 20] {
                    let u = crate::fixed::pow2(-(f as i32));
                    let out = compare_engines(&Body(l), f, &ins, &[8.0 * u, 16.0 * u]);
                    for (i, &m) in MASK.iter().enumerate() {
                        if m == 0.0 {
                            assert!(out[1][i * V..(i + 1) * V].iter().all(|&v| v == 0.0));
                        }
                    }
                }
            }
        }
    }
}
