//! Element-wise activations: ReLU, and tanh / sigmoid through their selectable
//! approximations.

use crate::approx::{SigmoidApprox, TanhApprox};
use crate::Engine;

/// `y = max(x, 0)`; its derivative is `[x > 0]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Relu;

impl Relu {
    /// Scratch for forward and backward on `n` elements.
    pub const fn scratch(n: usize) -> usize {
        3 * n
    }

    /// `y = max(x, 0)`.
    ///
    /// # Errors
    /// What the engine reports.
    pub fn forward<E: Engine + ?Sized>(
        e: &mut E,
        x: &[E::Elem],
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        y.copy_from_slice(x);
        e.relu(y, scratch)
    }

    /// `y = max(x, 0)`, keeping the derivative bit `[x > 0]` in `grad` when the engine
    /// gets it with the forward ([`Engine::relu_keeping_grad`]): returns whether it did.
    /// Then [`Relu::backward_kept`] on `grad` gives what [`Relu::backward`] on `x` gives.
    ///
    /// # Errors
    /// What the engine reports.
    pub fn forward_keeping_grad<E: Engine + ?Sized>(
        e: &mut E,
        x: &[E::Elem],
        y: &mut [E::Elem],
        grad: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<bool, E::Error> {
        y.copy_from_slice(x);
        e.relu_keeping_grad(y, grad, scratch)
    }

    /// `dx = dy * [x > 0]` (one comparison and one select per element).
    ///
    /// # Errors
    /// What the engine reports.
    pub fn backward<E: Engine + ?Sized>(
        e: &mut E,
        x: &[E::Elem],
        dy: &[E::Elem],
        dx: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let n = x.len();
        let (neg, rest) = scratch.split_at_mut(n);
        let (bits, rest) = rest.split_at_mut(n);
        neg.copy_from_slice(x);
        e.scale(neg, -1.0)?;
        e.is_negative(neg, bits)?;
        Self::backward_kept(e, bits, dy, dx, rest)
    }

    /// `dx = dy * grad` for the bits `grad = [x > 0]` kept by
    /// [`Relu::forward_keeping_grad`] (one select per element).
    ///
    /// # Errors
    /// What the engine reports.
    pub fn backward_kept<E: Engine + ?Sized>(
        e: &mut E,
        grad: &[E::Elem],
        dy: &[E::Elem],
        dx: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let zeros = &mut scratch[..grad.len()];
        zeros.fill(E::Elem::default());
        e.select(grad, dy, zeros, dx)
    }
}

/// tanh or sigmoid through an approximation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Activation {
    /// tanh.
    Tanh(TanhApprox),
    /// The logistic sigmoid.
    Sigmoid(SigmoidApprox),
}

impl Activation {
    /// Scratch for forward and backward on `n` elements.
    pub fn scratch(self, n: usize) -> usize {
        n + match self {
            Activation::Tanh(t) => t.scratch_len(n),
            Activation::Sigmoid(s) => s.scratch_len(n),
        }
    }

    /// `y = act(x)`.
    ///
    /// # Errors
    /// What the engine reports.
    pub fn forward<E: Engine + ?Sized>(
        self,
        e: &mut E,
        x: &[E::Elem],
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        match self {
            Activation::Tanh(t) => t.eval(e, x, y, scratch),
            Activation::Sigmoid(s) => s.eval(e, x, y, scratch),
        }
    }

    /// `dx = dy * act'(x)`, with the derivative of the approximation.
    ///
    /// # Errors
    /// What the engine reports.
    pub fn backward<E: Engine + ?Sized>(
        self,
        e: &mut E,
        x: &[E::Elem],
        dy: &[E::Elem],
        dx: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let n = x.len();
        let (d, rest) = scratch.split_at_mut(n);
        match self {
            Activation::Tanh(t) => t.derivative(e, x, d, rest)?,
            Activation::Sigmoid(s) => s.derivative(e, x, d, rest)?,
        }
        e.mul(dy, d, dx)?;
        e.rescale(dx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approx::ExpApprox;
    use crate::layers::gradcheck::{check, values, Case};
    use crate::Float;
    extern crate std;
    use std::vec;

    #[test]
    fn relu_gradient_matches_finite_differences() {
        // Inputs away from 0, where ReLU is differentiable.
        let n = 40;
        check(
            &Case::new(n, 0, n, 3),
            |x, _, y| {
                let xs: std::vec::Vec<f64> = x.iter().map(|v| v + 0.01f64.copysign(*v)).collect();
                let mut s = vec![0.0; Relu::scratch(n)];
                Relu::forward(&mut Float::<f64>::new(), &xs, y, &mut s).unwrap();
            },
            |x, _, dy, dx, _| {
                let xs: std::vec::Vec<f64> = x.iter().map(|v| v + 0.01f64.copysign(*v)).collect();
                let mut s = vec![0.0; Relu::scratch(n)];
                Relu::backward(&mut Float::<f64>::new(), &xs, dy, dx, &mut s).unwrap();
            },
        );
        let _ = values(1, 1);
    }

    #[test]
    fn smooth_activation_gradients_match_finite_differences() {
        let n = 30;
        for act in [
            Activation::Tanh(TanhApprox::Exact),
            Activation::Sigmoid(SigmoidApprox::Exact),
            Activation::Sigmoid(SigmoidApprox::Exp(ExpApprox::Taylor(4))),
            Activation::Sigmoid(SigmoidApprox::Exp(ExpApprox::Limit8)),
        ] {
            check(
                &Case::new(n, 0, n, 5),
                |x, _, y| {
                    let mut s = vec![0.0; act.scratch(n)];
                    act.forward(&mut Float::<f64>::new(), x, y, &mut s).unwrap();
                },
                |x, _, dy, dx, _| {
                    let mut s = vec![0.0; act.scratch(n)];
                    act.backward(&mut Float::<f64>::new(), x, dy, dx, &mut s)
                        .unwrap();
                },
            );
        }
    }
}
