//! Stochastic gradient descent with momentum and weight decay, and learning-rate schedules.
//!
//! The update, from the batch-summed gradient `g` of a batch of `B` samples:
//! `v <- momentum * v + (g + B * weight_decay * w) / B`, then `w <- w - lr * v`.
//!
//! In fixed point the new velocity is *one* rounding: its three terms are products with
//! public constants taken at `2f + s` fractional bits (`s = ceil(log2 B)`, so that the
//! constants `2^s momentum`, `2^s weight_decay` and `2^s / B` keep their precision; for a
//! power-of-two `B` the last is exactly 1 and the gradient's term exact), summed into the
//! unrounded `V`, and truncated once by `f + s`. The step `lr * v` is the second
//! rounding, of `lr V` by `2f + s` bits: of the same unrounded sum, not of the rounded
//! velocity, so each weight's change is rounded once, and a two-party engine takes both
//! from *one* opening of the masked `V` ([`Engine::shift_right_and_scaled`]): 8 bytes per
//! weight and party in one round (four openings in four rounds until 2026-12-07, then two
//! in two rounds). Where `3f + s` exceeds [`FUSED_BITS`] (`f >= 18` at
//! `B = 128`) the product `lr V` would leave the safe range, and `lr * v` is the product
//! of the rounded velocity, rounded again.
//!
//! # Range
//! The velocity's terms are products at `2f + s` bits: exact while `|2^s momentum v|`,
//! `|2^s weight_decay w|` and `|g|` (real) stay below `2^(62 - 2f - s)` (at `f = 13`,
//! `B = 128`: 2^29; at `f = 24`: 2^7), and the step's product `lr V` at `3f + s` bits
//! while `|lr v|` stays below `2^(62 - 3f - s)` (2^16 at `f = 13`, `B = 128`).
//! `Plain` counts products beyond in [`Health::wrapped`](crate::Health::wrapped).

use crate::Engine;
use core::ops::Range;

/// The most fractional bits `3f + s` of the product `lr V` (`lr` at `f` bits, the
/// unrounded velocity `V` at `2f + s`) for which the step `lr v` is taken from `V`
/// directly: then `|lr v| < 2^(62 - 3f - s)`, at least 16 (real), keeps the product in
/// the safe range; beyond, `lr v` is the product of the rounded velocity.
pub const FUSED_BITS: u32 = 58;

/// SGD settings.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Sgd {
    /// Momentum (0 for plain SGD).
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
}

impl Sgd {
    /// Scratch for [`Sgd::step`] on `n` weights.
    pub const fn scratch(n: usize) -> usize {
        n
    }

    /// One update of `w` (with velocity `v`, same length) from the batch-summed gradient
    /// `g` at learning rate `lr`.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If the lengths differ or `batch` is 0.
    #[allow(clippy::too_many_arguments)]
    pub fn step<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        w: &mut [E::Elem],
        g: &[E::Elem],
        v: &mut [E::Elem],
        lr: f64,
        batch: usize,
        scratch: &mut [E::Elem],
    ) -> Result<(), E::Error> {
        self.step_wide(e, w, g, v, lr, batch, scratch, &[])
    }

    /// [`Sgd::step`] where the gradient's elements in the ranges `wide` (ascending, not
    /// overlapping) are products not yet rescaled: at twice the fractional bits, as a
    /// dense or convolution layer's weight gradient comes out of its matrix product.
    /// For a power-of-two `batch` such a gradient divided by `B` *is* its term of the
    /// velocity at `2f + s` bits (`s = log2 B`), so it enters the velocity's one
    /// truncation without a rounding of its own: on two servers, one truncation per
    /// weight fewer than rescaling it first. Float engines (no fractional bits) take
    /// `wide` as ordinary gradients.
    ///
    /// # Errors
    /// What the engine reports.
    ///
    /// # Panics
    /// If the lengths differ, `batch` is 0, or `wide` is not empty, the engine has
    /// fractional bits and `batch` is not a power of two (rescale those gradients first).
    #[allow(clippy::too_many_arguments)]
    pub fn step_wide<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        w: &mut [E::Elem],
        g: &[E::Elem],
        v: &mut [E::Elem],
        lr: f64,
        batch: usize,
        scratch: &mut [E::Elem],
        wide: &[Range<usize>],
    ) -> Result<(), E::Error> {
        let n = w.len();
        assert!(
            g.len() == n && v.len() == n && batch > 0,
            "sgd: shape mismatch"
        );
        let wide = if e.frac_bits() == 0 { &[][..] } else { wide };
        assert!(
            wide.is_empty() || batch.is_power_of_two(),
            "sgd: unrescaled gradients need a power-of-two batch"
        );
        let t = &mut scratch[..n];
        if self.momentum == 0.0 && self.weight_decay == 0.0 && wide.is_empty() {
            // v = g / B: one rounding already.
            v.copy_from_slice(g);
            if batch.is_power_of_two() {
                e.shift_right(v, batch.trailing_zeros())?;
            } else {
                e.scale(v, 1.0 / batch as f64)?;
            }
        } else {
            // v = (2^s momentum v + 2^s wd w + (2^s / B) g) / 2^s at 2f + s bits, rounded
            // once: no term is rounded on its own (a rounded `wd w` vanished below half an
            // ulp over `wd`, so fixed point trained without the decay Float applied).
            let s = usize::BITS - (batch - 1).leading_zeros();
            let two_s = (1u64 << s) as f64;
            if self.momentum != 0.0 {
                let c = e.public(self.momentum * two_s);
                e.mul_public(v, c)?;
            } else {
                v.fill(E::Elem::default());
            }
            if self.weight_decay != 0.0 {
                t.copy_from_slice(w);
                let c = e.public(self.weight_decay * two_s);
                e.mul_public(t, c)?;
                e.add_assign(v, t)?;
            }
            // The gradient's term: `(2^s / B) g` at 2f + s bits; a wide gradient is
            // already there (2^s / B = 1).
            t.copy_from_slice(g);
            let c = e.public(two_s / batch as f64);
            let mut at = 0;
            for r in wide.iter().chain(core::iter::once(&(n..n))) {
                assert!(
                    at <= r.start && r.start <= r.end && r.end <= n,
                    "sgd: wide ranges"
                );
                e.mul_public(&mut t[at..r.start], c)?;
                at = r.end;
            }
            e.add_assign(v, t)?;
            let f = e.frac_bits();
            let shift = f + s;
            if shift > 0 && 3 * f + s <= FUSED_BITS {
                // lr v = (lr_raw V) / 2^(2f + s) from the same unrounded V: one rounding
                // of the step, and one opening of V on two servers for both.
                let c = e.public(lr);
                e.shift_right_and_scaled(v, shift, c, t, f + shift)?;
                return e.sub_assign(w, t);
            }
            if shift > 0 {
                e.shift_right(v, shift)?;
            }
        }
        // w -= lr v
        t.copy_from_slice(v);
        e.scale(t, lr)?;
        e.sub_assign(w, t)
    }
}

/// A learning-rate schedule over training steps.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Divided by 10 at each of the given steps (the paper: 0.1, then /10 every 20k steps
    /// after 40k). At most 8 milestones.
    Step {
        /// Steps at which the rate is divided by 10, ascending.
        milestones: [u64; 8],
        /// How many of `milestones` are used.
        len: usize,
    },
    /// `lr0 * (1 + cos(pi * step / total)) / 2`.
    Cosine {
        /// Total steps.
        total: u64,
    },
}

impl Schedule {
    /// Step decay at `milestones` (at most 8 are kept).
    pub fn step(milestones: &[u64]) -> Self {
        let mut m = [0u64; 8];
        let len = milestones.len().min(8);
        m[..len].copy_from_slice(&milestones[..len]);
        Schedule::Step { milestones: m, len }
    }

    /// The rate at `step` from the base rate `lr0`.
    pub fn rate(&self, lr0: f64, step: u64) -> f64 {
        match *self {
            Schedule::Constant => lr0,
            Schedule::Step { milestones, len } => {
                let passed = milestones[..len].iter().filter(|&&m| step >= m).count();
                lr0 / libm::pow(10.0, passed as f64)
            }
            Schedule::Cosine { total } => {
                let t = (step.min(total)) as f64 / total.max(1) as f64;
                lr0 * 0.5 * (1.0 + libm::cos(core::f64::consts::PI * t))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Float, Plain, Z64};
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    /// `xs` encoded by `p`.
    fn enc(p: &Plain, xs: &[f64]) -> Vec<Z64> {
        let mut out = vec![Z64::ZERO; xs.len()];
        p.encode_slice(xs, &mut out).unwrap();
        out
    }

    /// `xs` decoded by `p`.
    fn dec(p: &Plain, xs: &[Z64]) -> Vec<f64> {
        let mut out = vec![0.0; xs.len()];
        p.decode_slice(xs, &mut out);
        out
    }

    #[test]
    fn float_step_is_the_textbook_update() {
        let sgd = Sgd {
            momentum: 0.9,
            weight_decay: 1e-4,
        };
        let mut e = Float::<f64>::new();
        let (mut w, mut v) = (vec![1.0, -2.0], vec![0.5, 0.0]);
        let g = vec![4.0, 8.0];
        let mut s = vec![0.0; 2];
        sgd.step(&mut e, &mut w, &g, &mut v, 0.1, 4, &mut s)
            .unwrap();
        let v0 = 0.9 * 0.5 + 1.0 + 1e-4;
        assert!((v[0] - v0).abs() < 1e-12 && (w[0] - (1.0 - 0.1 * v0)).abs() < 1e-12);
        let v1 = 2.0 - 2e-4;
        assert!((v[1] - v1).abs() < 1e-12 && (w[1] - (-2.0 - 0.1 * v1)).abs() < 1e-12);
    }

    #[test]
    fn plain_step_matches_float_within_a_few_ulps() {
        let sgd = Sgd {
            momentum: 0.9,
            weight_decay: 5e-4,
        };
        for batch in [128usize, 100] {
            let mut p = Plain::with_frac_bits(16).unwrap();
            let mut fl = Float::<f64>::new();
            let w0 = [0.3, -0.7, 1.25, 0.0];
            let g = [12.5, -3.0, 0.25, 40.0];
            let v0 = [0.1, 0.2, -0.3, 0.0];
            let (mut wf, mut vf) = (w0.to_vec(), v0.to_vec());
            let mut s = vec![0.0; 4];
            sgd.step(&mut fl, &mut wf, &g, &mut vf, 0.05, batch, &mut s)
                .unwrap();
            let enc = |xs: &[f64]| {
                let mut out = vec![Z64::ZERO; xs.len()];
                p.encode_slice(xs, &mut out).unwrap();
                out
            };
            let (mut wp, mut vp, gp) = (enc(&w0), enc(&v0), enc(&g));
            let mut s = vec![Z64::ZERO; 4];
            sgd.step(&mut p, &mut wp, &gp, &mut vp, 0.05, batch, &mut s)
                .unwrap();
            let ulp = p.format().ulp();
            for i in 0..4 {
                // Each public constant (1/B, momentum, decay, lr) is rounded by half an ulp,
                // an error multiplied by what it scales; each product adds one truncation.
                let tol_v = ulp * (4.0 + 0.5 * (g[i].abs() + v0[i].abs() + w0[i].abs()));
                let tol_w = tol_v * 0.05 + ulp * (2.0 + 0.5 * vf[i].abs());
                let (dv, dw) = (p.format().decode(vp[i]), p.format().decode(wp[i]));
                assert!(
                    (dv - vf[i]).abs() <= tol_v,
                    "B={batch} v[{i}]: {dv} vs {}",
                    vf[i]
                );
                assert!(
                    (dw - wf[i]).abs() <= tol_w,
                    "B={batch} w[{i}]: {dw} vs {}",
                    wf[i]
                );
            }
        }
    }

    #[test]
    fn plain_weight_decay_is_not_lost_below_half_an_ulp() {
        // wd * w is 0.2 ulp here: rounded on its own it vanished, so Plain's velocity was
        // biased against Float's by -wd * w on average. Added before the one truncation by
        // B, it shifts that rounding and survives on average.
        let sgd = Sgd {
            momentum: 0.0,
            weight_decay: 5e-4,
        };
        let (n, batch, f) = (4096usize, 128usize, 13u32);
        let mut p = Plain::with_frac_bits(f).unwrap();
        let ulp = p.format().ulp();
        let w0: Vec<f64> = (0..n).map(|i| 0.04 + 0.02 * (i % 7) as f64 / 7.0).collect();
        // Batch-summed gradients spread over [-3, 3) so that their rounding by B is unbiased.
        let g: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % n) as f64 / n as f64 * 6.0 - 3.0 + 0.3 * ulp)
            .collect();
        let (w0p, gp) = (enc(&p, &w0), enc(&p, &g));
        // Float from the values Plain actually starts from.
        let (mut wf, mut vf) = (vec![0.0; n], vec![0.0; n]);
        let (mut wd, mut gd) = (vec![0.0; n], vec![0.0; n]);
        p.decode_slice(&w0p, &mut wd);
        p.decode_slice(&gp, &mut gd);
        let (mut wp, mut vp) = (w0p, vec![Z64::ZERO; n]);
        let mut s = vec![Z64::ZERO; n];
        sgd.step(&mut p, &mut wp, &gp, &mut vp, 0.1, batch, &mut s)
            .unwrap();
        wf.copy_from_slice(&wd);
        let mut s = vec![0.0; n];
        sgd.step(
            &mut Float::<f64>::new(),
            &mut wf,
            &gd,
            &mut vf,
            0.1,
            batch,
            &mut s,
        )
        .unwrap();
        let mut vpd = vec![0.0; n];
        p.decode_slice(&vp, &mut vpd);
        let bias = vpd.iter().zip(&vf).map(|(a, b)| a - b).sum::<f64>() / n as f64;
        let decay = wd.iter().sum::<f64>() / n as f64 * 5e-4;
        assert!(decay > 0.15 * ulp, "the test needs a visible decay");
        assert!(
            bias.abs() <= 0.03 * ulp,
            "mean velocity error {} ulp (decay {} ulp)",
            bias / ulp,
            decay / ulp
        );
    }

    #[test]
    fn plain_velocity_is_one_rounding_of_the_exact_update() {
        // From the values Plain holds, the new velocity is the exact update rounded once
        // (half an ulp), up to the constants' own rounding at 2f + s bits; four separate
        // roundings, as before 2026-12-07, reached 1.5 ulps.
        let sgd = Sgd {
            momentum: 0.9,
            weight_decay: 5e-4,
        };
        for (batch, f) in [(128usize, 13u32), (100, 13), (64, 16), (128, 18)] {
            let n = 2000;
            let mut p = Plain::with_frac_bits(f).unwrap();
            let ulp = p.format().ulp();
            let val = |i: usize, k: usize| ((i * k) % 1999) as f64 / 1999.0 - 0.5;
            let w0: Vec<f64> = (0..n).map(|i| 2.0 * val(i, 7919)).collect();
            let v0: Vec<f64> = (0..n).map(|i| 0.3 * val(i, 104_729)).collect();
            let g0: Vec<f64> = (0..n).map(|i| 40.0 * val(i, 1_299_709)).collect();
            let (mut wp, mut vp, gp) = (enc(&p, &w0), enc(&p, &v0), enc(&p, &g0));
            let (wd, vd, gd) = (dec(&p, &wp), dec(&p, &vp), dec(&p, &gp));
            let mut s = vec![Z64::ZERO; n];
            sgd.step(&mut p, &mut wp, &gp, &mut vp, 0.05, batch, &mut s)
                .unwrap();
            let (v1, w1) = (dec(&p, &vp), dec(&p, &wp));
            // Each constant at 2f + s bits is off by at most half an ulp over 2^s.
            let two_s = batch.next_power_of_two() as f64;
            let lr = p.format().decode(p.public(0.05));
            // The step lr v is one rounding of lr times the unrounded velocity where
            // 3f + s <= FUSED_BITS; beyond, it rounds lr times the rounded velocity.
            let s_bits = batch.next_power_of_two().trailing_zeros();
            let fused = 3 * f + s_bits <= FUSED_BITS;
            let (mut worst_v, mut worst_w) = (0.0f64, 0.0f64);
            for i in 0..n {
                let exact = 0.9 * vd[i] + (gd[i] + batch as f64 * 5e-4 * wd[i]) / batch as f64;
                let consts = 0.5 * (vd[i].abs() + wd[i].abs() + gd[i].abs()) / two_s;
                worst_v = worst_v.max((v1[i] - exact).abs() / ulp - consts);
                let step_bound = if fused {
                    lr * consts
                } else {
                    lr * (consts + 0.5)
                };
                worst_w = worst_w.max(((wd[i] - w1[i]) - lr * exact).abs() / ulp - step_bound);
            }
            assert!(worst_v <= 0.5 + 1e-9, "B={batch} f={f}: v {worst_v} ulp");
            assert!(worst_w <= 0.5 + 1e-9, "B={batch} f={f}: w {worst_w} ulp");
            assert_eq!(p.health().unwrap().wrapped, 0);
        }
    }

    #[test]
    fn a_wide_gradient_is_the_same_update_without_its_rounding() {
        let sgd = Sgd {
            momentum: 0.9,
            weight_decay: 5e-4,
        };
        let (n, batch, f) = (600usize, 128usize, 13u32);
        let mut p = Plain::with_frac_bits(f).unwrap();
        let ulp = p.format().ulp();
        let val = |i: usize, k: usize| ((i * k) % 599) as f64 / 599.0 - 0.5;
        let w0 = enc(&p, &(0..n).map(|i| 2.0 * val(i, 7919)).collect::<Vec<_>>());
        let v0 = enc(
            &p,
            &(0..n).map(|i| 0.3 * val(i, 104_729)).collect::<Vec<_>>(),
        );
        let g = enc(
            &p,
            &(0..n).map(|i| 40.0 * val(i, 1_299_709)).collect::<Vec<_>>(),
        );
        let wide = [100..250, 400..600];
        // A wide gradient with nothing below the ulp: bit for bit the ordinary update.
        let mut gw = g.clone();
        for r in &wide {
            gw[r.clone()].iter_mut().for_each(|x| *x = Z64(x.0 << f));
        }
        let (mut wa, mut va, mut wb, mut vb) = (w0.clone(), v0.clone(), w0.clone(), v0.clone());
        let mut s = vec![Z64::ZERO; n];
        sgd.step(&mut p, &mut wa, &g, &mut va, 0.05, batch, &mut s)
            .unwrap();
        sgd.step_wide(&mut p, &mut wb, &gw, &mut vb, 0.05, batch, &mut s, &wide)
            .unwrap();
        assert_eq!((wa, va), (wb.clone(), vb));
        // With bits below the ulp, the velocity is still one rounding of the exact update.
        for r in &wide {
            gw[r.clone()]
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x += Z64((i as u64 * 2_654_435_761) % (1 << f)));
        }
        let (mut wc, mut vc) = (w0.clone(), v0.clone());
        sgd.step_wide(&mut p, &mut wc, &gw, &mut vc, 0.05, batch, &mut s, &wide)
            .unwrap();
        let two_f = (1u64 << (2 * f)) as f64;
        for i in 0..n {
            let inside = wide.iter().any(|r| r.contains(&i));
            let gi = if inside {
                gw[i].to_signed() as f64 / two_f
            } else {
                p.format().decode(g[i])
            };
            let (wi, vi) = (p.format().decode(w0[i]), p.format().decode(v0[i]));
            let exact = 0.9 * vi + (gi + batch as f64 * 5e-4 * wi) / batch as f64;
            let consts = 0.5 * (vi.abs() + wi.abs()) / batch as f64;
            let err = (p.format().decode(vc[i]) - exact).abs() / ulp - consts;
            assert!(err <= 0.5 + 1e-9, "{i}: {err} ulp");
        }
    }

    #[test]
    fn schedules() {
        let s = Schedule::step(&[40_000, 60_000, 80_000]);
        assert_eq!(s.rate(0.1, 0), 0.1);
        assert!((s.rate(0.1, 40_000) - 0.01).abs() < 1e-15);
        assert!((s.rate(0.1, 70_000) - 0.001).abs() < 1e-15);
        let c = Schedule::Cosine { total: 100 };
        assert_eq!(c.rate(0.2, 0), 0.2);
        assert!((c.rate(0.2, 50) - 0.1).abs() < 1e-12);
        assert!(c.rate(0.2, 100).abs() < 1e-12);
        assert_eq!(Schedule::Constant.rate(0.3, 9), 0.3);
    }
}
