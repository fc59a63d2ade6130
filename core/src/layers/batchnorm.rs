//! Batch normalisation over the channels of NCHW images (and of `[batch x features]`
//! activations, as images of `1 x 1`).
//!
//! Training: per channel, over the `M = batch * height * width` values,
//! `mean = sum x / M`, `var = sum (x - mean)^2 / M` (biased, as the normalisation uses),
//! `x_hat = (x - mean) / sqrt(var + eps)`, `y = gamma x_hat + beta`; the running statistics
//! become `(1 - momentum) running + momentum * batch`, with the unbiased variance
//! `var * M / (M - 1)` (PyTorch's convention). Evaluation uses the running statistics.
//!
//! The inverse square root is [`inv_sqrt`]: comparisons, Newton-Raphson and public shifts,
//! as a two-party engine computes it, never a decoded float (on `Float` it is exact). Means
//! use [`divide_by`], which keeps full precision for large `M`. `eps` below one ulp of a
//! fixed-point engine is raised to one ulp, so the inverse square root never sees 0.
//!
//! Sums over `M` run on a channel-last copy (`[(n * hw + s) * C + c]`), where a halving
//! tree of long additions replaces `M` short ones and broadcasting a per-channel vector is
//! a row copy. Each product is followed by one rescale.
//!
//! # Backward
//! With `g = dL/dy`, sums over a channel's `M` values:
//! `dbeta = sum g`, `dgamma = sum g x_hat`,
//! `dx = gamma / sqrt(var + eps) * (g - dbeta / M - x_hat * dgamma / M)`.
//! Parameter gradients are overwritten (the layer convention).

use super::{add_rows, broadcast_rows, column_sums_in_place, divide_by, Grads, Image};
use crate::invsqrt::{inv_sqrt, inv_sqrt_scratch};
use crate::Engine;

/// Batch normalisation over `channels` channels. Parameters `gamma` and `beta` and the
/// running statistics `running_mean` and `running_var` have `channels` entries each and are
/// owned by the caller (PyTorch's initial values: 1, 0, 0 and 1).
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct BatchNorm {
    /// Channels (features).
    pub channels: usize,
    /// Added to the variance before the inverse square root (PyTorch: `1e-5`).
    pub eps: f64,
    /// Weight of the batch statistics in the running statistics (PyTorch: `0.1`).
    pub momentum: f64,
}

/// Batch norm's per-channel tensors, `channels` entries each: the parameters `gamma` and
/// `beta`, and the running statistics, read (`S = &[T]`) by [`BatchNorm::forward_eval`]
/// and updated (`S = &mut [T]`) by [`BatchNorm::forward_train`].
#[derive(Debug)]
pub struct PerChannel<'a, T, S> {
    /// Scale.
    pub gamma: &'a [T],
    /// Shift.
    pub beta: &'a [T],
    /// Running mean.
    pub running_mean: S,
    /// Running (unbiased) variance.
    pub running_var: S,
}

/// What [`BatchNorm::forward_train`] writes: the output `y` (NCHW) and the cache for
/// [`BatchNorm::backward`] ([`BatchNorm::cache_len`] long).
#[derive(Debug)]
pub struct TrainOut<'a, T> {
    /// Output, the input's shape.
    pub y: &'a mut [T],
    /// Cache for backward.
    pub cache: &'a mut [T],
}

/// `out[(n * hw + s) * C + c] = x[(n * C + c) * hw + s]`.
fn to_channel_last<T: Copy>(x: &[T], input: Image, out: &mut [T]) {
    let (c, hw) = (input.channels, input.plane());
    for n in 0..input.batch {
        for ch in 0..c {
            for s in 0..hw {
                out[(n * hw + s) * c + ch] = x[(n * c + ch) * hw + s];
            }
        }
    }
}

/// The inverse of [`to_channel_last`].
fn from_channel_last<T: Copy>(xt: &[T], input: Image, out: &mut [T]) {
    let (c, hw) = (input.channels, input.plane());
    for n in 0..input.batch {
        for ch in 0..c {
            for s in 0..hw {
                out[(n * c + ch) * hw + s] = xt[(n * hw + s) * c + ch];
            }
        }
    }
}

/// `out[(n * C + c) * hw + s] = v[c]`.
fn broadcast_channels<T: Copy>(v: &[T], input: Image, out: &mut [T]) {
    for (q, plane) in out.chunks_mut(input.plane().max(1)).enumerate() {
        plane.fill(v[q % input.channels]);
    }
}

impl BatchNorm {
    /// The layer.
    pub const fn new(channels: usize, eps: f64, momentum: f64) -> Self {
        BatchNorm {
            channels,
            eps,
            momentum,
        }
    }

    /// Length of the cache that [`BatchNorm::forward_train`] fills for
    /// [`BatchNorm::backward`]: `x_hat` (channel-last) and `1 / sqrt(var + eps)` per channel.
    pub const fn cache_len(&self, input: Image) -> usize {
        input.len() + self.channels
    }

    /// Scratch for [`BatchNorm::forward_train`].
    pub const fn train_scratch(&self, input: Image) -> usize {
        2 * input.len() + 3 * self.channels + inv_sqrt_scratch(self.channels)
    }

    /// Scratch for [`BatchNorm::forward_eval`].
    pub const fn eval_scratch(&self, input: Image) -> usize {
        input.len() + 4 * self.channels + inv_sqrt_scratch(self.channels)
    }

    /// Scratch for [`BatchNorm::backward`].
    pub const fn backward_scratch(&self, input: Image) -> usize {
        3 * input.len() + 3 * self.channels
    }

    /// `eps` as added: at least one ulp on a fixed-point engine.
    fn eps<E: Engine + ?Sized>(&self, e: &E) -> E::Public {
        let f = e.frac_bits();
        let ulp = if f == 0 {
            0.0
        } else {
            crate::fixed::pow2(-(f as i32))
        };
        e.public(self.eps.max(ulp))
    }

    fn check(&self, input: Image, lens: &[usize]) {
        assert!(
            input.channels == self.channels
                && input.batch * input.plane() > 0
                && lens.iter().all(|&l| l == self.channels),
            "batch norm: shape mismatch"
        );
    }

    /// Training forward with batch statistics: `out.y` (NCHW), `out.cache` for backward,
    /// and the running statistics of `t` updated in place.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If `input.channels != channels`, a slice has the wrong length or the scratch is too
    /// short.
    pub fn forward_train<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        input: Image,
        t: PerChannel<'_, E::Elem, &mut [E::Elem]>,
        out: TrainOut<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let PerChannel {
            gamma,
            beta,
            running_mean,
            running_var,
        } = t;
        let TrainOut { y, cache } = out;
        let (len, c) = (input.len(), self.channels);
        self.check(
            input,
            &[
                gamma.len(),
                beta.len(),
                running_mean.len(),
                running_var.len(),
            ],
        );
        assert!(
            x.len() == len && y.len() == len && cache.len() == self.cache_len(input),
            "batch norm forward: shape mismatch"
        );
        let m = input.batch * input.plane();
        let (xt, rest) = scratch.split_at_mut(len);
        let (tmp, rest) = rest.split_at_mut(len);
        let (mean, rest) = rest.split_at_mut(c);
        let (var, rest) = rest.split_at_mut(c);
        let (t, rest) = rest.split_at_mut(c);
        let (xhat, inv) = cache.split_at_mut(len);

        to_channel_last(x, input, xt);
        tmp.copy_from_slice(xt);
        column_sums_in_place(e, tmp, m, c, mean)?;
        divide_by(e, mean, m)?;
        // xt <- x - mean
        t.copy_from_slice(mean);
        let m1 = e.public_int(-1);
        e.mul_public(t, m1)?;
        add_rows(e, xt, c, t)?;
        e.mul(xt, xt, tmp)?;
        e.rescale(tmp)?;
        column_sums_in_place(e, tmp, m, c, var)?;
        divide_by(e, var, m)?;
        t.copy_from_slice(var);
        let eps = self.eps(e);
        e.add_public(t, eps)?;
        inv_sqrt(e, t, inv, rest)?;
        broadcast_rows(inv, m, tmp);
        e.mul(xt, tmp, xhat)?;
        e.rescale(xhat)?;
        broadcast_rows(gamma, m, tmp);
        e.mul(xhat, tmp, xt)?;
        e.rescale(xt)?;
        add_rows(e, xt, c, beta)?;
        from_channel_last(xt, input, y);

        // Running statistics.
        let mom = self.momentum;
        e.scale(running_mean, 1.0 - mom)?;
        t.copy_from_slice(mean);
        e.scale(t, mom)?;
        e.add_assign(running_mean, t)?;
        let unbias = if m > 1 {
            m as f64 / (m - 1) as f64
        } else {
            1.0
        };
        e.scale(running_var, 1.0 - mom)?;
        t.copy_from_slice(var);
        e.scale(t, mom * unbias)?;
        e.add_assign(running_var, t)
    }

    /// Evaluation forward with the running statistics:
    /// `y = k x + (beta - k running_mean)` with `k = gamma / sqrt(running_var + eps)`.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// As [`BatchNorm::forward_train`].
    pub fn forward_eval<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        x: &[E::Elem],
        input: Image,
        t: PerChannel<'_, E::Elem, &[E::Elem]>,
        y: &mut [E::Elem],
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let PerChannel {
            gamma,
            beta,
            running_mean,
            running_var,
        } = t;
        let (len, c) = (input.len(), self.channels);
        self.check(
            input,
            &[
                gamma.len(),
                beta.len(),
                running_mean.len(),
                running_var.len(),
            ],
        );
        assert!(
            x.len() == len && y.len() == len,
            "batch norm forward: shape mismatch"
        );
        let (full, rest) = scratch.split_at_mut(len);
        let (t, rest) = rest.split_at_mut(c);
        let (inv, rest) = rest.split_at_mut(c);
        let (k, rest) = rest.split_at_mut(c);
        let (b, rest) = rest.split_at_mut(c);
        t.copy_from_slice(running_var);
        let eps = self.eps(e);
        e.add_public(t, eps)?;
        inv_sqrt(e, t, inv, rest)?;
        e.mul(gamma, inv, k)?;
        e.rescale(k)?;
        e.mul(k, running_mean, b)?;
        e.rescale(b)?;
        let m1 = e.public_int(-1);
        e.mul_public(b, m1)?;
        e.add_assign(b, beta)?;
        broadcast_channels(k, input, full);
        e.mul(x, full, y)?;
        e.rescale(y)?;
        broadcast_channels(b, input, full);
        e.add_assign(y, full)
    }

    /// Training backward from `g.dy` and the cache of [`BatchNorm::forward_train`]:
    /// `g.dw = dgamma`, `g.db = dbeta` and, when asked, `g.dx`, all overwritten. See the
    /// [module documentation](self).
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// As [`BatchNorm::forward_train`].
    pub fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        input: Image,
        gamma: &[E::Elem],
        cache: &[E::Elem],
        g: Grads<'_, E::Elem>,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        let Grads {
            dy,
            dx,
            dw: dgamma,
            db: dbeta,
        } = g;
        let (len, c) = (input.len(), self.channels);
        self.check(input, &[gamma.len(), dgamma.len(), dbeta.len()]);
        assert!(
            dy.len() == len
                && dx.as_ref().is_none_or(|dx| dx.len() == len)
                && cache.len() == self.cache_len(input),
            "batch norm backward: shape mismatch"
        );
        let m = input.batch * input.plane();
        let (xhat, inv) = cache.split_at(len);
        let (g, rest) = scratch.split_at_mut(len);
        let (tmp, rest) = rest.split_at_mut(len);
        let (bc, rest) = rest.split_at_mut(len);
        let (mb, rest) = rest.split_at_mut(c);
        let (mg, rest) = rest.split_at_mut(c);
        let k = &mut rest[..c];

        to_channel_last(dy, input, g);
        tmp.copy_from_slice(g);
        column_sums_in_place(e, tmp, m, c, dbeta)?;
        e.mul(xhat, g, tmp)?;
        e.rescale(tmp)?;
        column_sums_in_place(e, tmp, m, c, dgamma)?;
        let Some(dx) = dx else {
            return Ok(());
        };
        // g <- g - dbeta / M - x_hat dgamma / M
        mb.copy_from_slice(dbeta);
        divide_by(e, mb, m)?;
        let m1 = e.public_int(-1);
        e.mul_public(mb, m1)?;
        add_rows(e, g, c, mb)?;
        mg.copy_from_slice(dgamma);
        divide_by(e, mg, m)?;
        broadcast_rows(mg, m, bc);
        e.mul(xhat, bc, tmp)?;
        e.rescale(tmp)?;
        e.sub_assign(g, tmp)?;
        // dx = gamma inv g
        e.mul(gamma, inv, k)?;
        e.rescale(k)?;
        broadcast_rows(k, m, bc);
        e.mul(g, bc, tmp)?;
        e.rescale(tmp)?;
        from_channel_last(tmp, input, dx);
        Ok(())
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

    const SHAPES: [Image; 3] = [
        Image::new(2, 3, 2, 3),
        Image::new(5, 4, 1, 1),
        Image::new(3, 2, 3, 3),
    ];

    fn layer(c: usize) -> BatchNorm {
        BatchNorm::new(c, 1e-5, 0.1)
    }

    #[test]
    fn forward_matches_the_definition_and_updates_running_statistics() {
        for input in SHAPES {
            let l = layer(input.channels);
            let c = input.channels;
            let x = values(1, input.len());
            let (gamma, beta) = (values(2, c), values(3, c));
            let (mut rm, mut rv) = (values(4, c), values(5, c));
            rv.iter_mut().for_each(|v| *v = v.abs() + 0.5);
            let (rm0, rv0) = (rm.clone(), rv.clone());
            let mut y = vec![0.0; input.len()];
            let mut cache = vec![0.0; l.cache_len(input)];
            let mut s = vec![0.0; l.train_scratch(input)];
            let mut e = Float::<f64>::new();
            l.forward_train(
                &mut e,
                &x,
                input,
                PerChannel {
                    gamma: &gamma,
                    beta: &beta,
                    running_mean: &mut rm,
                    running_var: &mut rv,
                },
                TrainOut {
                    y: &mut y,
                    cache: &mut cache,
                },
                &mut s,
            )
            .unwrap();
            let m = (input.batch * input.plane()) as f64;
            for ch in 0..c {
                let vals: Vec<(usize, f64)> = (0..input.len())
                    .filter(|i| (i / input.plane()) % c == ch)
                    .map(|i| (i, x[i]))
                    .collect();
                let mean = vals.iter().map(|v| v.1).sum::<f64>() / m;
                let var = vals.iter().map(|v| (v.1 - mean).powi(2)).sum::<f64>() / m;
                for &(i, v) in &vals {
                    let want = gamma[ch] * (v - mean) / libm::sqrt(var + 1e-5) + beta[ch];
                    assert!((y[i] - want).abs() < 1e-12, "y[{i}]: {} vs {want}", y[i]);
                }
                assert!((rm[ch] - (0.9 * rm0[ch] + 0.1 * mean)).abs() < 1e-12);
                let unb = var * m / (m - 1.0);
                assert!((rv[ch] - (0.9 * rv0[ch] + 0.1 * unb)).abs() < 1e-12);
            }
            // Evaluation with the running statistics.
            let mut s = vec![0.0; l.eval_scratch(input)];
            l.forward_eval(
                &mut e,
                &x,
                input,
                PerChannel {
                    gamma: &gamma,
                    beta: &beta,
                    running_mean: &rm,
                    running_var: &rv,
                },
                &mut y,
                &mut s,
            )
            .unwrap();
            for (i, v) in x.iter().enumerate() {
                let ch = (i / input.plane()) % c;
                let want = gamma[ch] * (v - rm[ch]) / libm::sqrt(rv[ch] + 1e-5) + beta[ch];
                assert!((y[i] - want).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (i, input) in SHAPES.into_iter().enumerate() {
            let l = layer(input.channels);
            let c = input.channels;
            check(
                &Case::new(input.len(), 2 * c, input.len(), 100 + i as u64),
                |x, p, y| {
                    let (gamma, beta) = p.split_at(c);
                    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
                    let mut cache = vec![0.0; l.cache_len(input)];
                    let mut s = vec![0.0; l.train_scratch(input)];
                    l.forward_train(
                        &mut Float::<f64>::new(),
                        x,
                        input,
                        PerChannel {
                            gamma,
                            beta,
                            running_mean: &mut rm,
                            running_var: &mut rv,
                        },
                        TrainOut {
                            y,
                            cache: &mut cache,
                        },
                        &mut s,
                    )
                    .unwrap();
                },
                |x, p, dy, dx, dp| {
                    let mut e = Float::<f64>::new();
                    let (gamma, beta) = p.split_at(c);
                    let (dgamma, dbeta) = dp.split_at_mut(c);
                    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
                    let mut cache = vec![0.0; l.cache_len(input)];
                    let mut y = vec![0.0; input.len()];
                    let mut s = vec![0.0; l.train_scratch(input).max(l.backward_scratch(input))];
                    l.forward_train(
                        &mut e,
                        x,
                        input,
                        PerChannel {
                            gamma,
                            beta,
                            running_mean: &mut rm,
                            running_var: &mut rv,
                        },
                        TrainOut {
                            y: &mut y,
                            cache: &mut cache,
                        },
                        &mut s,
                    )
                    .unwrap();
                    l.backward(
                        &mut e,
                        input,
                        gamma,
                        &cache,
                        Grads {
                            dy,
                            dx: Some(dx),
                            dw: dgamma,
                            db: dbeta,
                        },
                        &mut s,
                    )
                    .unwrap();
                },
            );
        }
    }

    struct Body(BatchNorm, Image);

    impl Harness for Body {
        fn run<E: Engine>(&self, e: &mut E, ins: &[Vec<E::Elem>]) -> Vec<Vec<E::Elem>> {
            let (l, input) = (self.0, self.1);
            let (x, gamma, beta, dy) = (&ins[0], &ins[1], &ins[2], &ins[3]);
            let (mut rm, mut rv) = (ins[4].clone(), ins[5].clone());
            let z = E::Elem::default();
            let len = input.len();
            let mut s =
                vec![z; l.train_scratch(input) + l.backward_scratch(input) + l.eval_scratch(input)];
            let mut cache = vec![z; l.cache_len(input)];
            let (mut y, mut dx, mut dg, mut db, mut ye) = (
                vec![z; len],
                vec![z; len],
                vec![z; gamma.len()],
                vec![z; gamma.len()],
                vec![z; len],
            );
            l.forward_train(
                e,
                x,
                input,
                PerChannel {
                    gamma,
                    beta,
                    running_mean: &mut rm,
                    running_var: &mut rv,
                },
                TrainOut {
                    y: &mut y,
                    cache: &mut cache,
                },
                &mut s,
            )
            .unwrap();
            l.backward(
                e,
                input,
                gamma,
                &cache,
                Grads {
                    dy,
                    dx: Some(&mut dx),
                    dw: &mut dg,
                    db: &mut db,
                },
                &mut s,
            )
            .unwrap();
            l.forward_eval(
                e,
                x,
                input,
                PerChannel {
                    gamma,
                    beta,
                    running_mean: &rm,
                    running_var: &rv,
                },
                &mut ye,
                &mut s,
            )
            .unwrap();
            vec![y, dx, dg, db, rm, rv, ye]
        }
    }

    /// Tolerances, in ulps of `f` bits, for inputs in (-1, 1) (channel variances near 1/3,
    /// so `|x_hat| < 3` and `1/sqrt(var) < 3`): `y` 16 (the inverse square root's relative
    /// `2^-(f-3)` times `|x_hat|`, plus the truncations of the mean and the variance
    /// amplified by `1/sqrt(var)`); `dgamma` `4 M` and `dbeta` `M` (sums of `M` terms, one
    /// truncation or only the half-ulp encoding error each); `dx` 32 (those sums divided by
    /// `M`, then times `gamma / sqrt(var)`); running statistics 4; evaluation 8. Measured
    /// errors are at most 60% of these.
    #[test]
    fn plain_matches_float() {
        for (i, input) in SHAPES.into_iter().enumerate() {
            let l = layer(input.channels);
            let c = input.channels;
            let mut rv = values(205 + i as u64, c);
            rv.iter_mut().for_each(|v| *v = v.abs() + 0.5);
            let ins = vec![
                values(201 + i as u64, input.len()),
                values(202 + i as u64, c),
                values(203 + i as u64, c),
                values(204 + i as u64, input.len()),
                values(206 + i as u64, c),
                rv,
            ];
            let m = (input.batch * input.plane()) as f64;
            for f in [16u32, 20] {
                let u = crate::fixed::pow2(-(f as i32));
                compare_engines(
                    &Body(l, input),
                    f,
                    &ins,
                    &[
                        16.0 * u,
                        32.0 * u,
                        4.0 * m * u,
                        m * u,
                        4.0 * u,
                        4.0 * u,
                        8.0 * u,
                    ],
                );
            }
        }
    }
}
