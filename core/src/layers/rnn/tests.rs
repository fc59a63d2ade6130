//! Gradient checks and engine equivalence of the recurrent cells.

use super::{GruCell, GruGrads, GruStep, LstmCell};
use crate::approx::{SigmoidApprox, TanhApprox};
use crate::layers::gradcheck::{check, values, Case};
use crate::layers::testutil::{compare_engines, Harness};
use crate::Engine;
use crate::Float;
extern crate std;
use std::vec;
use std::vec::Vec;

const BATCH: usize = 3;
const EXACT: (SigmoidApprox, TanhApprox) = (SigmoidApprox::Exact, TanhApprox::Exact);
const HARD: (SigmoidApprox, TanhApprox) = (SigmoidApprox::SecureMl, TanhApprox::Hard);

fn gru(a: (SigmoidApprox, TanhApprox)) -> GruCell {
    GruCell::new(4, 5, a.0, a.1)
}

fn lstm(a: (SigmoidApprox, TanhApprox)) -> LstmCell {
    LstmCell::new(4, 5, a.0, a.1)
}

/// Parameters drawn in (-1, 1), scaled so that pre-activations stay mostly inside the
/// linear parts of the hard approximations (and exercise both sides of them).
fn scaled(p: &[f64], s: f64) -> Vec<f64> {
    p.iter().map(|v| v * s).collect()
}

/// Inputs `[x | h]`, output `h'`; the same shape for one step and for two steps with
/// the same parameters (`h'' = GRU(x2, GRU(x1, h))` with inputs `[x1 | x2 | h]`).
fn gru_check(l: GruCell, steps: usize, seed: u64) {
    let (i, hd) = (l.input, l.hidden);
    let (xs, bh) = (steps * BATCH * i, BATCH * hd);
    let ps = 0.6;
    check(
        &Case::new(xs + bh, l.params(), bh, seed),
        |inp, p, y| {
            let mut e = Float::<f64>::new();
            let p = scaled(p, ps);
            let mut h = inp[xs..].to_vec();
            let mut cache = vec![0.0; l.cache_len(BATCH)];
            let mut s = vec![0.0; l.forward_scratch(BATCH)];
            for t in 0..steps {
                let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                l.forward(
                    &mut e,
                    GruStep {
                        x,
                        h: &h,
                        params: &p,
                    },
                    BATCH,
                    y,
                    &mut cache,
                    &mut s,
                )
                .unwrap();
                h.copy_from_slice(y);
            }
        },
        |inp, p, dy, dinp, dp| {
            let mut e = Float::<f64>::new();
            let p = scaled(p, ps);
            let mut hs = vec![inp[xs..].to_vec()];
            let mut caches = Vec::new();
            let mut s = vec![0.0; l.forward_scratch(BATCH).max(l.backward_scratch(BATCH))];
            for t in 0..steps {
                let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                let mut cache = vec![0.0; l.cache_len(BATCH)];
                let mut h2 = vec![0.0; bh];
                l.forward(
                    &mut e,
                    GruStep {
                        x,
                        h: &hs[t],
                        params: &p,
                    },
                    BATCH,
                    &mut h2,
                    &mut cache,
                    &mut s,
                )
                .unwrap();
                hs.push(h2);
                caches.push(cache);
            }
            let mut dh_out = dy.to_vec();
            let mut dh = vec![0.0; bh];
            let (dxs, dh0) = dinp.split_at_mut(xs);
            for t in (0..steps).rev() {
                let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                let dx = &mut dxs[t * BATCH * i..(t + 1) * BATCH * i];
                l.backward(
                    &mut e,
                    GruStep {
                        x,
                        h: &hs[t],
                        params: &p,
                    },
                    &caches[t],
                    BATCH,
                    GruGrads {
                        dh_out: &dh_out,
                        dx: Some(dx),
                        dh: &mut dh,
                        dparams: dp,
                    },
                    &mut s,
                )
                .unwrap();
                dh_out.copy_from_slice(&dh);
            }
            dh0.copy_from_slice(&dh);
            // Chain rule through the parameter scaling.
            dp.iter_mut().for_each(|d| *d *= ps);
        },
    );
}

#[test]
fn gru_gradients_match_finite_differences() {
    gru_check(gru(EXACT), 1, 300);
    gru_check(gru(EXACT), 2, 301);
    gru_check(gru(HARD), 1, 302);
    gru_check(gru(HARD), 2, 303);
    gru_check(
        GruCell::new(
            4,
            5,
            SigmoidApprox::Exp(crate::approx::ExpApprox::Taylor(6)),
            TanhApprox::Exact,
        ),
        1,
        304,
    );
}

/// Inputs `[x_1..x_steps | h | c]`, outputs `[h_T | c_T]`.
fn lstm_check(l: LstmCell, steps: usize, seed: u64) {
    let (i, hd) = (l.input, l.hidden);
    let (xs, bh) = (steps * BATCH * i, BATCH * hd);
    let ps = 0.6;
    check(
        &Case::new(xs + 2 * bh, l.params(), 2 * bh, seed),
        |inp, p, y| {
            let mut e = Float::<f64>::new();
            let p = scaled(p, ps);
            let (mut h, mut c) = (inp[xs..xs + bh].to_vec(), inp[xs + bh..].to_vec());
            let mut cache = vec![0.0; l.cache_len(BATCH)];
            let mut s = vec![0.0; l.forward_scratch(BATCH)];
            let (yh, yc) = y.split_at_mut(bh);
            for t in 0..steps {
                let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                l.forward(&mut e, x, &h, &c, &p, BATCH, yh, yc, &mut cache, &mut s)
                    .unwrap();
                h.copy_from_slice(yh);
                c.copy_from_slice(yc);
            }
        },
        |inp, p, dy, dinp, dp| {
            let mut e = Float::<f64>::new();
            let p = scaled(p, ps);
            let mut hs = vec![inp[xs..xs + bh].to_vec()];
            let mut cs = vec![inp[xs + bh..].to_vec()];
            let mut caches = Vec::new();
            let mut s = vec![0.0; l.forward_scratch(BATCH).max(l.backward_scratch(BATCH))];
            for t in 0..steps {
                let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                let mut cache = vec![0.0; l.cache_len(BATCH)];
                let (mut h2, mut c2) = (vec![0.0; bh], vec![0.0; bh]);
                l.forward(
                    &mut e, x, &hs[t], &cs[t], &p, BATCH, &mut h2, &mut c2, &mut cache, &mut s,
                )
                .unwrap();
                hs.push(h2);
                cs.push(c2);
                caches.push(cache);
            }
            let (mut dho, mut dco) = (dy[..bh].to_vec(), dy[bh..].to_vec());
            let (mut dh, mut dc) = (vec![0.0; bh], vec![0.0; bh]);
            let (dxs, dhc) = dinp.split_at_mut(xs);
            for t in (0..steps).rev() {
                let x = &inp[t * BATCH * i..(t + 1) * BATCH * i];
                let dx = &mut dxs[t * BATCH * i..(t + 1) * BATCH * i];
                l.backward(
                    &mut e,
                    x,
                    &hs[t],
                    &cs[t],
                    &p,
                    &caches[t],
                    &dho,
                    &dco,
                    BATCH,
                    Some(dx),
                    &mut dh,
                    &mut dc,
                    dp,
                    &mut s,
                )
                .unwrap();
                dho.copy_from_slice(&dh);
                dco.copy_from_slice(&dc);
            }
            dhc[..bh].copy_from_slice(&dh);
            dhc[bh..].copy_from_slice(&dc);
            dp.iter_mut().for_each(|d| *d *= ps);
        },
    );
}

#[test]
fn lstm_gradients_match_finite_differences() {
    lstm_check(lstm(EXACT), 1, 400);
    lstm_check(lstm(EXACT), 2, 401);
    lstm_check(lstm(HARD), 1, 402);
    lstm_check(lstm(HARD), 2, 403);
}

/// The hard approximations must actually be exercised on both sides of their kinks in
/// the checks above: count pre-activations outside the linear part.
#[test]
fn hard_checks_reach_the_saturated_parts() {
    let l = gru(HARD);
    let mut e = Float::<f64>::new();
    let x = values(302, BATCH * 4);
    let h = values(302, BATCH * 5 + BATCH * 4)[BATCH * 4..].to_vec();
    let p = scaled(&values(303, l.params()), 0.6);
    let mut cache = vec![0.0; l.cache_len(BATCH)];
    let mut s = vec![0.0; l.forward_scratch(BATCH)];
    let mut y = vec![0.0; BATCH * 5];
    l.forward(
        &mut e,
        GruStep {
            x: &x,
            h: &h,
            params: &p,
        },
        BATCH,
        &mut y,
        &mut cache,
        &mut s,
    )
    .unwrap();
    let bh = BATCH * 5;
    let sat = cache[..2 * bh].iter().filter(|v| v.abs() > 0.5).count();
    let lin = cache[..2 * bh].iter().filter(|v| v.abs() < 0.5).count();
    assert!(sat > 0 && lin > 0, "gru: saturated {sat}, linear {lin}");

    let l = lstm(HARD);
    let inp = values(402, BATCH * 4 + 2 * bh);
    let (x, h, c) = (
        &inp[..BATCH * 4],
        &inp[BATCH * 4..BATCH * 4 + bh],
        &inp[BATCH * 4 + bh..],
    );
    let p = scaled(&values(403, l.params()), 0.6);
    let mut cache = vec![0.0; l.cache_len(BATCH)];
    let mut s = vec![0.0; l.forward_scratch(BATCH)];
    let (mut h2, mut c2) = (vec![0.0; bh], vec![0.0; bh]);
    l.forward(
        &mut e, x, h, c, &p, BATCH, &mut h2, &mut c2, &mut cache, &mut s,
    )
    .unwrap();
    let sig = &cache[..3 * bh];
    let sat = sig.iter().filter(|v| v.abs() > 0.5).count();
    let lin = sig.iter().filter(|v| v.abs() < 0.5).count();
    assert!(sat > 0 && lin > 0, "lstm: saturated {sat}, linear {lin}");
}

struct Body(GruCell, LstmCell);

impl Harness for Body {
    fn run<E: Engine>(&self, e: &mut E, ins: &[Vec<E::Elem>]) -> Vec<Vec<E::Elem>> {
        let (g, l) = (self.0, self.1);
        let z = E::Elem::default();
        let (x, h, c, dho, dco) = (&ins[0], &ins[1], &ins[2], &ins[3], &ins[4]);
        let bh = h.len();
        let mut s = vec![
            z;
            g.forward_scratch(BATCH)
                .max(g.backward_scratch(BATCH))
                .max(l.forward_scratch(BATCH))
                .max(l.backward_scratch(BATCH))
        ];
        // GRU
        let mut cache = vec![z; g.cache_len(BATCH)];
        let (mut h2, mut dx, mut dh, mut dp) = (
            vec![z; bh],
            vec![z; x.len()],
            vec![z; bh],
            vec![z; g.params()],
        );
        g.forward(
            e,
            GruStep {
                x,
                h,
                params: &ins[5],
            },
            BATCH,
            &mut h2,
            &mut cache,
            &mut s,
        )
        .unwrap();
        g.backward(
            e,
            GruStep {
                x,
                h,
                params: &ins[5],
            },
            &cache,
            BATCH,
            GruGrads {
                dh_out: dho,
                dx: Some(&mut dx),
                dh: &mut dh,
                dparams: &mut dp,
            },
            &mut s,
        )
        .unwrap();
        // LSTM
        let mut lc = vec![z; l.cache_len(BATCH)];
        let (mut lh, mut lcc, mut ldx, mut ldh, mut ldc, mut ldp) = (
            vec![z; bh],
            vec![z; bh],
            vec![z; x.len()],
            vec![z; bh],
            vec![z; bh],
            vec![z; l.params()],
        );
        l.forward(
            e, x, h, c, &ins[6], BATCH, &mut lh, &mut lcc, &mut lc, &mut s,
        )
        .unwrap();
        l.backward(
            e,
            x,
            h,
            c,
            &ins[6],
            &lc,
            dho,
            dco,
            BATCH,
            Some(&mut ldx),
            &mut ldh,
            &mut ldc,
            &mut ldp,
            &mut s,
        )
        .unwrap();
        vec![h2, dx, dh, dp, lh, lcc, ldx, ldh, ldc, ldp]
    }
}

/// Values and gradients are O(1) sums of at most `input + hidden + batch` products, each
/// truncated once, chained through a few element products and activations of slope at
/// most 1 (hard tanh, SecureML sigmoid: exact on the grid, so no approximation error
/// beyond truncation). States get 8 ulps, gradients 16 (measured: at most about half).
#[test]
fn plain_matches_float() {
    for (k, a) in [HARD, EXACT].into_iter().enumerate() {
        let (g, l) = (gru(a), lstm(a));
        let s = 100 * k as u64;
        let ins = vec![
            values(500 + s, BATCH * 4),
            values(501 + s, BATCH * 5),
            values(502 + s, BATCH * 5),
            values(503 + s, BATCH * 5),
            values(504 + s, BATCH * 5),
            scaled(&values(505 + s, g.params()), 0.6),
            scaled(&values(506 + s, l.params()), 0.6),
        ];
        for f in [16u32, 20] {
            let u = crate::fixed::pow2(-(f as i32));
            let (st, gr) = (8.0 * u, 16.0 * u);
            compare_engines(
                &Body(g, l),
                f,
                &ins,
                &[st, gr, gr, gr, st, st, gr, gr, gr, gr],
            );
        }
    }
}
