//! One training step, for any engine: the model state, the working buffers, forward,
//! softmax cross-entropy, backward and the SGD update, and the split of a batch over
//! threads. The epoch loop ([`super::epochs`]) drives it on every execution.

use super::checkpoint::State;
use super::config::TrainConfig;
use super::engine::HostEngine;
use super::error::TrainError;
use super::model::{self, Net, Trace};
use crate::gemm;
use ringnn_core::approx::ExpApprox;
use ringnn_core::optim::{Schedule, Sgd};
use ringnn_core::softmax::{self, GradMode, Softmax};
use ringnn_core::Engine;
use std::ops::Range;

/// The model state and the working buffers of training, for any engine: one SGD step on a
/// batch already inside the engine, and evaluation-mode logits. The plaintext loop
/// ([`crate::train::train`]) and the two-party servers ([`crate::mpc::training`]) both drive it, so the
/// two run the same arithmetic.
pub(crate) struct Trainer<'n, E: Engine> {
    /// The network.
    pub net: &'n Net,
    /// The softmax it trains with.
    pub sm: Softmax,
    grad: GradMode,
    sgd: Sgd,
    sched: Schedule,
    base_lr: f64,
    /// Trained parameters.
    pub params: Vec<E::Elem>,
    /// Momentum velocities.
    pub velocity: Vec<E::Elem>,
    /// Batch-norm running statistics.
    pub buffers: Vec<E::Elem>,
    /// Optimiser steps done.
    pub step: u64,
    grads: Vec<E::Elem>,
    /// Where the weights of dense and convolution layers are in `params`: their
    /// gradients reach the update unscaled when the batch is a power of two.
    wide: Vec<Range<usize>>,
    traces: Vec<Trace<E::Elem>>,
    scratch: Vec<E::Elem>,
    parts: Vec<Part<E::Elem>>,
}

/// The softmax a run trains with: `--exp` and `--subtract-max`, with the row maximum always
/// subtracted for `exact`. Exact e^x is the reference, and its softmax (and its gradient,
/// `p - y`) does not change when a constant is subtracted from a row; without the shift
/// Z_2^64 cannot hold it: at f = 13 e^x saturates above x = 34.7, row sums of saturated
/// entries wrap, and `2^g / S` is 0 above x = 18, while MLP logits on MNIST reach 25 to 48
/// at the default rate (docs/results.md, "Collapses, diagnosed"). The approximations keep
/// the paper's setting (no shift unless asked).
pub(crate) fn training_softmax(cfg: &TrainConfig) -> Softmax {
    Softmax {
        exp: cfg.exp,
        subtract_max: cfg.subtract_max || cfg.exp == ExpApprox::Exact,
    }
}

/// The working buffers of one part of a split batch ([`Trainer::step_split`]).
struct Part<T> {
    traces: Vec<Trace<T>>,
    scratch: Vec<T>,
    grads: Vec<T>,
}

impl<'n, E: Engine> Trainer<'n, E> {
    /// A trainer for `net` as `cfg` sets it, starting from `params` and `buffers`, for
    /// `steps` optimiser steps in all (the schedule's length).
    pub fn new(
        cfg: &TrainConfig,
        net: &'n Net,
        steps: u64,
        params: Vec<E::Elem>,
        buffers: Vec<E::Elem>,
    ) -> Result<Self, TrainError> {
        if params.len() != net.n_params || buffers.len() != net.n_buffers {
            return Err(TrainError::Config(format!(
                "{} needs {} parameters and {} buffer elements, got {} and {}",
                net.name,
                net.n_params,
                net.n_buffers,
                params.len(),
                buffers.len()
            )));
        }
        Ok(Trainer {
            net,
            sm: training_softmax(cfg),
            grad: cfg.grad,
            sgd: Sgd {
                momentum: cfg.momentum,
                weight_decay: cfg.weight_decay,
            },
            sched: cfg.lr_schedule(steps),
            base_lr: cfg.lr,
            velocity: vec![E::Elem::default(); net.n_params],
            grads: vec![E::Elem::default(); net.n_params],
            wide: model::weight_grad_ranges(&net.nodes),
            params,
            buffers,
            step: 0,
            traces: Vec::new(),
            scratch: Vec::new(),
            parts: Vec::new(),
        })
    }

    /// Continues from a checkpoint's state at `step`.
    pub fn restore(&mut self, st: &State, step: u64, from_bits: impl Fn(u64) -> E::Elem) {
        self.params = st.params.iter().map(|&b| from_bits(b)).collect();
        self.velocity = st.velocity.iter().map(|&b| from_bits(b)).collect();
        self.buffers = st.buffers.iter().map(|&b| from_bits(b)).collect();
        self.step = step;
    }

    /// The state as raw bits, for a checkpoint.
    pub fn state(&self, to_bits: impl Fn(E::Elem) -> u64) -> State {
        let bits = |v: &[E::Elem]| v.iter().map(|&x| to_bits(x)).collect();
        State {
            params: bits(&self.params),
            velocity: bits(&self.velocity),
            buffers: bits(&self.buffers),
        }
    }

    fn grow_scratch(&mut self, n: usize) -> &mut [E::Elem] {
        if self.scratch.len() < n {
            self.scratch.resize(n, E::Elem::default());
        }
        &mut self.scratch[..n]
    }

    /// One training step on images `x` and one-hot labels `y` of `b` samples: forward in
    /// training mode, softmax cross-entropy and its gradient, backward, SGD. Returns the
    /// softmax probabilities (inside the engine: shares on a two-party engine).
    ///
    /// # Errors
    /// What the engine reports.
    pub fn step(
        &mut self,
        e: &mut E,
        x: Vec<E::Elem>,
        y: &[E::Elem],
        b: usize,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let net = self.net;
        let classes = net.classes;
        let logits = model::forward(
            e,
            &net.nodes,
            x,
            b,
            &self.params,
            &mut self.buffers,
            Some(&mut self.traces),
            &mut self.scratch,
        )?;
        let mut p = vec![E::Elem::default(); b * classes];
        let mut g = vec![E::Elem::default(); b * classes];
        let (sm, grad) = (self.sm, self.grad);
        let scratch = self.grow_scratch(softmax::backward_scratch(sm, b, classes));
        softmax::softmax_xent_backward(
            e,
            sm,
            grad,
            softmax::Labelled { x: &logits, y },
            softmax::Rows {
                rows: b,
                cols: classes,
            },
            softmax::XentOut {
                p: &mut p,
                grad: &mut g,
            },
            scratch,
        )?;
        // The weight gradients stay products (2f bits); the update takes them so
        // ([`Trainer::update`]).
        model::backward_unscaled(
            e,
            &net.nodes,
            &self.traces,
            g,
            b,
            &self.params,
            &mut self.grads,
            &mut self.scratch,
        )?;
        self.update(e, b)?;
        Ok(p)
    }

    /// The learning rate of optimiser step `step` (0 for the first).
    pub(crate) fn rate_at(&self, step: u64) -> f64 {
        self.sched.rate(self.base_lr, step)
    }

    /// The SGD update from the batch-summed gradients in `self.grads`, whose weight
    /// gradients (`self.wide`) are unscaled products: for a power-of-two `b` they enter
    /// the update so ([`Sgd::step_wide`]: no rounding, no truncation of their own), else
    /// they are rescaled first.
    fn update(&mut self, e: &mut E, b: usize) -> Result<(), E::Error> {
        let lr = self.rate_at(self.step);
        let n = self.net.n_params;
        if self.scratch.len() < n {
            self.scratch.resize(n, E::Elem::default());
        }
        let wide = if b.is_power_of_two() {
            &self.wide[..]
        } else {
            for r in &self.wide {
                e.rescale(&mut self.grads[r.clone()])?;
            }
            &[]
        };
        self.sgd.step_wide(
            e,
            &mut self.params,
            &self.grads,
            &mut self.velocity,
            lr,
            b,
            &mut self.scratch[..n],
            wide,
        )?;
        self.step += 1;
        Ok(())
    }

    /// Logits of `b` samples `x` in evaluation mode (running statistics, not updated).
    ///
    /// # Errors
    /// What the engine reports.
    pub fn logits(
        &mut self,
        e: &mut E,
        x: Vec<E::Elem>,
        b: usize,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let mut bufs = self.buffers.clone();
        model::forward(
            e,
            &self.net.nodes,
            x,
            b,
            &self.params,
            &mut bufs,
            None,
            &mut self.scratch,
        )
    }
}

/// The model's output for `rows` rows of `logits`: probabilities through the training
/// softmax (its e^x approximation), so that a prediction is the class the approximated
/// model ranks first. For an approximation that is not monotone the arg-max of the
/// logits is another class: even-degree Taylor polynomials are smallest at a negative x
/// (x = -1 for degree 2) and grow again below it, and training learns to use that (an
/// mlp on MNIST with taylor2 at f = 13: 98.6% of its training samples ranked first by
/// the probabilities, 64.2% of the test set by the logits). Ties (a fixed-point softmax
/// can give two classes the same probability) go to the first class.
///
/// # Errors
/// What the engine reports.
pub fn probabilities<E: Engine + ?Sized>(
    e: &mut E,
    sm: Softmax,
    logits: &[E::Elem],
    rows: usize,
    classes: usize,
) -> Result<Vec<E::Elem>, E::Error> {
    let step = (e.batch_hint() / classes.max(1)).clamp(1, rows.max(1));
    let mut scratch = vec![E::Elem::default(); softmax::softmax_scratch(sm, step, classes)];
    let mut out = vec![E::Elem::default(); logits.len()];
    softmax::softmax(e, sm, logits, rows, classes, &mut out, &mut scratch)?;
    Ok(out)
}

impl<E: HostEngine + Send> Trainer<'_, E>
where
    E::Elem: Send + Sync,
    E::Error: Send,
{
    /// [`Trainer::step`] with the batch split into up to `parts` contiguous parts that run
    /// on the rayon pool, each on a fork of `e`: forward, softmax cross-entropy and
    /// backward per part, weight gradients left unscaled and summed in the ring, then the
    /// update ([`Trainer::update`]). On `Plain` every bit equals [`Trainer::step`]'s for any
    /// number of parts (the ring sum is exact and only the rescale rounds); on `Float` the
    /// summation order, and so the last bits, follow the number of parts. A network with
    /// batch statistics is not split.
    ///
    /// # Errors
    /// What the engine reports.
    pub fn step_split(
        &mut self,
        e: &mut E,
        x: Vec<E::Elem>,
        y: &[E::Elem],
        b: usize,
        parts: usize,
    ) -> Result<Vec<E::Elem>, E::Error> {
        use rayon::prelude::*;
        let parts = parts.min(b);
        if parts <= 1 || !self.net.splits_exactly() {
            return self.step(e, x, y, b);
        }
        let net = self.net;
        let (classes, n_params) = (net.classes, net.n_params);
        let per = x.len() / b;
        while self.parts.len() < parts {
            self.parts.push(Part {
                traces: Vec::new(),
                scratch: Vec::new(),
                grads: vec![E::Elem::default(); n_params],
            });
        }
        let forks: Vec<E> = (0..parts).map(|_| e.fork()).collect();
        let (params, sm, grad, x) = (&self.params, self.sm, self.grad, &x);
        type PartOut<E> = Result<(Vec<<E as Engine>::Elem>, E), <E as Engine>::Error>;
        let outs: Vec<PartOut<E>> = self.parts[..parts]
            .par_iter_mut()
            .zip(forks)
            .enumerate()
            .map(|(i, (part, mut pe))| {
                gemm::serial(|| {
                    let (lo, hi) = (b * i / parts, b * (i + 1) / parts);
                    let nb = hi - lo;
                    let logits = model::forward(
                        &mut pe,
                        &net.nodes,
                        x[lo * per..hi * per].to_vec(),
                        nb,
                        params,
                        &mut [],
                        Some(&mut part.traces),
                        &mut part.scratch,
                    )?;
                    let mut p = vec![E::Elem::default(); nb * classes];
                    let mut g = vec![E::Elem::default(); nb * classes];
                    let need = softmax::backward_scratch(sm, nb, classes);
                    if part.scratch.len() < need {
                        part.scratch.resize(need, E::Elem::default());
                    }
                    softmax::softmax_xent_backward(
                        &mut pe,
                        sm,
                        grad,
                        softmax::Labelled {
                            x: &logits,
                            y: &y[lo * classes..hi * classes],
                        },
                        softmax::Rows {
                            rows: nb,
                            cols: classes,
                        },
                        softmax::XentOut {
                            p: &mut p,
                            grad: &mut g,
                        },
                        &mut part.scratch[..need],
                    )?;
                    model::backward_unscaled(
                        &mut pe,
                        &net.nodes,
                        &part.traces,
                        g,
                        nb,
                        params,
                        &mut part.grads,
                        &mut part.scratch,
                    )?;
                    Ok((p, pe))
                })
            })
            .collect();
        let mut probs = Vec::with_capacity(b * classes);
        for out in outs {
            let (p, pe) = out?;
            e.join(&pe);
            probs.extend(p);
        }
        let (first, rest) = self.parts[..parts].split_first().expect("parts >= 2");
        self.grads.copy_from_slice(&first.grads);
        for part in rest {
            e.add_assign(&mut self.grads, &part.grads)?;
        }
        self.update(e, b)?;
        Ok(probs)
    }
}

/// The working set one part of a split batch aims at: activations and unfoldings of up
/// to 4 MiB stay in this machine's caches (LeNet's layers on one thread: batches of 16
/// ran 1.5x as fast per sample as batches of 64, `examples/lenet_layers.rs`).
const PART_BYTES: usize = 4 << 20;

/// Into how many parts [`Trainer::step_split`] cuts a batch of `b`: one per rayon thread at
/// least, more when a part's working set ([`Net::elems_per_sample`]) would exceed
/// [`PART_BYTES`]. On `Plain` the result is the same bits for any number.
pub(crate) fn batch_parts<E: Engine>(net: &Net, b: usize) -> usize {
    let per_sample = net.elems_per_sample() * std::mem::size_of::<E::Elem>();
    rayon::current_num_threads()
        .max((b * per_sample).div_ceil(PART_BYTES))
        .clamp(1, b.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::run::argmax;
    use ringnn_core::{Float, Plain};

    /// A prediction is the class the approximated model ranks first: with taylor2
    /// (1 + x + x^2/2, smallest at x = -1) a logit of -3 outranks one of 0.5, which the
    /// arg-max of the logits would pick; with exact e^x the two agree.
    #[test]
    fn predictions_rank_by_the_approximate_probabilities() {
        let logits = [-3.0, 0.5, -1.0, 0.2, 1.5, -0.5];
        for (exp, want) in [(ExpApprox::Taylor(2), [0, 1]), (ExpApprox::Exact, [1, 1])] {
            let sm = Softmax::new(exp);
            let mut fl = Float::<f64>::new();
            let p = probabilities(&mut fl, sm, &logits, 2, 3).unwrap();
            let got = [argmax(&p[..3]), argmax(&p[3..])];
            assert_eq!(got, want, "{exp:?} on Float");
            let mut pl = Plain::with_frac_bits(13).unwrap();
            let x = pl.input("logits", &logits).unwrap();
            let p = probabilities(&mut pl, sm, &x, 2, 3).unwrap();
            let p = pl.reveal(&p).unwrap();
            let got = [argmax(&p[..3]), argmax(&p[3..])];
            assert_eq!(got, want, "{exp:?} on Plain");
        }
        assert_eq!(argmax(&logits[..3]), 1, "the logits rank otherwise");
    }
}
