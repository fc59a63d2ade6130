//! ReLU inside the network: the derivative bits kept from the forward pass where the
//! engine gets them in the same round ([`Engine::relu_keeping_grad`]), else recomputed.

use super::{grow, Trace};
use ringnn_core::layers::Relu;
use ringnn_core::Engine;

/// ReLU's forward on `x`; in training, the derivative bits go to `cache` where the
/// engine gets them with the forward ([`Relu::forward_keeping_grad`]).
pub(super) fn relu_forward<E: Engine + ?Sized>(
    e: &mut E,
    x: &[E::Elem],
    y: &mut [E::Elem],
    train: bool,
    cache: &mut Vec<E::Elem>,
    scratch: &mut Vec<E::Elem>,
) -> Result<(), E::Error> {
    let s = grow(scratch, Relu::scratch(x.len()));
    if !train {
        return Relu::forward(e, x, y, s);
    }
    let mut g = vec![E::Elem::default(); x.len()];
    if Relu::forward_keeping_grad(e, x, y, &mut g, s)? {
        *cache = g;
    }
    Ok(())
}

/// ReLU's backward from the bits its forward kept in the trace, or (none kept) from its
/// input, which the trace keeps: the same `dx` either way.
pub(super) fn relu_backward<E: Engine + ?Sized>(
    e: &mut E,
    t: &Trace<E::Elem>,
    dy: &[E::Elem],
    dx: &mut [E::Elem],
    scratch: &mut Vec<E::Elem>,
) -> Result<(), E::Error> {
    let s = grow(scratch, Relu::scratch(dy.len()));
    if t.cache.len() == dy.len() {
        Relu::backward_kept(e, &t.cache, dy, dx, s)
    } else {
        Relu::backward(e, &t.input, dy, dx, s)
    }
}
