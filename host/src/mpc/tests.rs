//! Tests of the two-party engine: every protocol and composite, reconstructed, against
//! `Plain` on the same inputs within its documented tolerance; the dealer's correlations;
//! measured communication. The statistical tests of both parties' views are in
//! [`super::view_tests`].
//!
//! One test body ([`Case`]) runs on `Plain` and, in two threads, on both parties' `Mpc`.
//!
//! # Tolerances
//! Linear operations, products, comparisons and selects are exact (ring arithmetic).
//! Each truncation returns `floor(x / 2^d)` or one more where `Plain` rounds to nearest
//! (also `floor` or one more), so one truncation differs from `Plain` by at most one ulp,
//! and a chain of them by the propagated bound stated at each test.

use super::dealer::{Correlations, Dealer};
use super::local::LocalMpc;
use super::protocols::transpose64;
use super::wire::{Tag, HEADER_LEN};
use super::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ringnn_core::approx::ExpApprox;
use ringnn_core::engine::generic;
use ringnn_core::engine::MatDims;
use ringnn_core::fixed::FracBits;
use ringnn_core::layers::{Conv2d, Dense, Grads, Image, MaxPool2d, Params, Relu};
use ringnn_core::optim::Sgd;
use ringnn_core::softmax::{
    backward_scratch, guard_bits, softmax, softmax_scratch, softmax_xent_backward, GradMode,
    Labelled, Rows, Softmax, XentOut,
};
use ringnn_core::{Engine, Fixed, Plain, Z64};
use std::sync::Arc;

pub(super) const F: u32 = 16;

fn fx() -> Fixed {
    Fixed::new(F).unwrap()
}

pub(super) fn config(seed: u8) -> LocalConfig {
    config_at(F, seed)
}

/// [`config`] at `f` fractional bits.
pub(super) fn config_at(f: u32, seed: u8) -> LocalConfig {
    LocalConfig {
        dealer_seed: Some([seed; 32]),
        truncation: Truncation::Dealer,
        ..LocalConfig::new(FracBits::new(f).unwrap())
    }
}

pub(super) fn enc(xs: &[f64]) -> Vec<Z64> {
    xs.iter().map(|&v| fx().encode(v).unwrap()).collect()
}

pub(super) fn uniform(rng: &mut ChaCha20Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

pub(super) type Outputs = Vec<Vec<Z64>>;

/// One test body, run on any engine over `Z64`.
pub(super) trait Case: Sync {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error>;
}

/// Shares the inputs (each party gets its shares), runs `case` on both parties and
/// reconstructs every output.
pub(super) fn on_mpc<C: Case>(cfg: &LocalConfig, case: &C, inputs: &[Vec<Z64>]) -> Outputs {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5ead);
    let shares: Vec<[Vec<Z64>; 2]> = inputs.iter().map(|v| share(v, &mut rng)).collect();
    let [o0, o1] = run_in_process(cfg, |e: &mut LocalMpc| {
        let p = e.party().index();
        let mine: Vec<Vec<Z64>> = shares.iter().map(|s| s[p].clone()).collect();
        case.run(e, &mine).expect("two-party run failed")
    });
    o0.iter().zip(&o1).map(|(a, b)| reconstruct(a, b)).collect()
}

pub(super) fn on_plain<C: Case>(case: &C, inputs: &[Vec<Z64>]) -> Outputs {
    on_plain_at(F, case, inputs)
}

/// [`on_plain`] at `f` fractional bits.
pub(super) fn on_plain_at<C: Case>(f: u32, case: &C, inputs: &[Vec<Z64>]) -> Outputs {
    let mut p = Plain::with_frac_bits(f).unwrap();
    match case.run(&mut p, inputs) {
        Ok(o) => o,
        Err(e) => match e {},
    }
}

/// Both results: `(plain, mpc)`.
pub(super) fn both<C: Case>(case: &C, inputs: &[Vec<Z64>]) -> (Outputs, Outputs) {
    (on_plain(case, inputs), on_mpc(&config(7), case, inputs))
}

pub(super) fn diff(a: Z64, b: Z64) -> i64 {
    (a - b).to_signed()
}

pub(super) fn assert_within(plain: &[Z64], mpc: &[Z64], tol: impl Fn(usize) -> i64, what: &str) {
    assert_eq!(plain.len(), mpc.len());
    for (i, (&p, &m)) in plain.iter().zip(mpc).enumerate() {
        let d = diff(m, p).abs();
        assert!(
            d <= tol(i),
            "{what}[{i}]: mpc {} plain {} differ by {d} > {}",
            m.to_signed(),
            p.to_signed(),
            tol(i)
        );
    }
}

macro_rules! case {
    ($name:ident, |$e:ident, $x:ident| $body:block) => {
        pub(super) struct $name;
        impl Case for $name {
            fn run<E: Engine<Elem = Z64, Public = Z64>>(
                &self,
                $e: &mut E,
                $x: &[Vec<Z64>],
            ) -> Result<Outputs, E::Error> {
                $body
            }
        }
    };
}

// ---------------------------------------------------------------- sharing, wire, dealer

#[test]
fn sharing_reconstructs() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let x: Vec<Z64> = (0..1000).map(|_| Z64(rng.next_u64())).collect();
    let [a, b] = share(&x, &mut rng);
    assert_eq!(reconstruct(&a, &b), x);
    assert_ne!(a, x);
}

#[test]
fn transpose_matches_naive() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut a = [0u64; 64];
    a.iter_mut().for_each(|w| *w = rng.next_u64());
    let orig = a;
    transpose64(&mut a);
    for (j, &word) in a.iter().enumerate() {
        for (e, &row) in orig.iter().enumerate() {
            assert_eq!((word >> e) & 1, (row >> j) & 1, "bit {e} of word {j}");
        }
    }
}

#[test]
fn dealer_material_is_correlated_and_compressed() {
    let dealer = Arc::new(Dealer::from_seed([3; 32]));
    let [mut c0, mut c1] = dealer.correlations();
    let n = 200;
    let (t0, t1) = (c0.beaver(n).unwrap(), c1.beaver(n).unwrap());
    for i in 0..n {
        assert_eq!((t0.a[i] + t1.a[i]) * (t0.b[i] + t1.b[i]), t0.c[i] + t1.c[i]);
    }
    let dims = MatDims { m: 3, k: 5, n: 4 };
    let (m0, m1) = (c0.matrix(dims).unwrap(), c1.matrix(dims).unwrap());
    let a = reconstruct(&m0.a, &m1.a);
    let b = reconstruct(&m0.b, &m1.b);
    let c = reconstruct(&m0.c, &m1.c);
    for i in 0..3 {
        for j in 0..4 {
            let s = (0..5).fold(Z64::ZERO, |s, p| s + a[i * 5 + p] * b[p * 4 + j]);
            assert_eq!(s, c[i * 4 + j]);
        }
    }
    let (p0, p1) = (c0.trunc(n, 13).unwrap(), c1.trunc(n, 13).unwrap());
    for i in 0..n {
        let r = (p0.r[i] + p1.r[i]).0;
        assert_eq!((p0.msb[i] + p1.msb[i]).0, r >> 63);
        assert_eq!((p0.low[i] + p1.low[i]).0, (r & ((1 << 63) - 1)) >> 13);
    }
    let (a0, a1) = (c0.and_triples(9).unwrap(), c1.and_triples(9).unwrap());
    for i in 0..9 {
        assert_eq!((a0.u[i] ^ a1.u[i]) & (a0.v[i] ^ a1.v[i]), a0.w[i] ^ a1.w[i]);
    }
    let (b0, b1) = (c0.random_bits(2).unwrap(), c1.random_bits(2).unwrap());
    for i in 0..128 {
        let bit = ((b0.xor[i / 64] ^ b1.xor[i / 64]) >> (i % 64)) & 1;
        assert_eq!((b0.arith[i] + b1.arith[i]).0, bit);
    }
    // Party 0 gets only its seed; party 1 its seed and one word per triple, two per
    // truncation pair, one per 64 AND gates, one per random bit.
    assert_eq!(c0.offline().bytes, 32);
    let corr_words = n + 12 + 2 * n + 9 + 128;
    assert_eq!(c1.offline().bytes, 32 + 8 * corr_words as u64);
    assert_eq!(c0.offline().full_bytes, c1.offline().full_bytes);
    assert_eq!(c1.offline().requests, 5);
}

#[test]
fn preloaded_material_is_the_material_asked_for_later() {
    use crate::mpc::dealer::Request;
    let dealer = Arc::new(Dealer::from_seed([5; 32]));
    let [mut direct0, mut direct1] = dealer.correlations();
    let [mut pre0, mut pre1] = dealer.correlations();
    let reqs = [Request::Beaver { n: 4 }, Request::Trunc { n: 3, bits: 7 }];
    pre0.preload(&reqs).unwrap();
    pre1.preload(&reqs).unwrap();
    assert_eq!(pre1.offline().requests, 2, "produced at preload time");
    let (d0, d1) = (direct0.beaver(4).unwrap(), direct1.beaver(4).unwrap());
    let (p0, p1) = (pre0.beaver(4).unwrap(), pre1.beaver(4).unwrap());
    assert_eq!((d0.a, d0.c, d1.b, d1.c), (p0.a, p0.c, p1.b, p1.c));
    let (d, p) = (direct1.trunc(3, 7).unwrap(), pre1.trunc(3, 7).unwrap());
    assert_eq!((d.r, d.low), (p.r, p.low));
    // Asking for something other than what was preloaded is an error, never other
    // material.
    pre0.preload(&[Request::And { words: 1 }]).unwrap();
    let err = pre0.beaver(1).unwrap_err().to_string();
    assert!(err.contains("preloaded"), "{err}");
}

// ---------------------------------------------------------------- primitives

case!(Linear, |e, x| {
    let (a, b) = (&x[0], &x[1]);
    let mut s = a.clone();
    e.add_assign(&mut s, b)?;
    let mut d = a.clone();
    e.sub_assign(&mut d, b)?;
    let mut ap = a.clone();
    let c = e.public(-3.25);
    e.add_public(&mut ap, c)?;
    let mut mp = a.clone();
    let k = e.public_int(-77);
    e.mul_public(&mut mp, k)?;
    let mut m = vec![Z64::ZERO; a.len()];
    e.mul(a, b, &mut m)?;
    Ok(vec![s, d, ap, mp, m])
});

#[test]
fn linear_ops_and_products_are_exact() {
    // Full-ring values: products wrap identically.
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let a: Vec<Z64> = (0..300).map(|_| Z64(rng.next_u64())).collect();
    let b: Vec<Z64> = (0..300).map(|_| Z64(rng.next_u64())).collect();
    let (p, m) = both(&Linear, &[a, b]);
    assert_eq!(p, m);
}

struct Matmul(MatDims);
impl Case for Matmul {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let d = self.0;
        let mut out = vec![Z64::ZERO; d.m * d.n];
        e.matmul(&x[0], &x[1], d, &mut out)?;
        Ok(vec![out])
    }
}

#[test]
fn matmul_is_exact() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    for d in [
        MatDims { m: 7, k: 13, n: 5 },
        MatDims { m: 1, k: 1, n: 1 },
        MatDims {
            m: 40,
            k: 70,
            n: 33,
        },
    ] {
        let a: Vec<Z64> = (0..d.m * d.k).map(|_| Z64(rng.next_u64())).collect();
        let b: Vec<Z64> = (0..d.k * d.n).map(|_| Z64(rng.next_u64())).collect();
        let (p, m) = both(&Matmul(d), &[a, b]);
        assert_eq!(p, m, "{d:?}");
    }
}

case!(Compare, |e, x| {
    let n = x[0].len();
    let mut bits = vec![Z64::ZERO; n];
    e.is_negative(&x[0], &mut bits)?;
    let mut sel = vec![Z64::ZERO; n];
    e.select(&bits, &x[1], &x[2], &mut sel)?;
    Ok(vec![bits, sel])
});

#[test]
fn the_adder_reads_the_sign_of_x_mod_2_to_the_width_at_every_width() {
    // sign_bits_width: bit m - 1 of x mod 2^m (its carry chain over m - 1 bits), for the
    // narrowest width, odd and even ones, the reduced widths and the whole ring.
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let mut x: Vec<Z64> = (0..700).map(|_| Z64(rng.next_u64())).collect();
    for m in [2u32, 3, 17, 33, 51, 54, 63, 64] {
        for v in [0u64, 1, u64::MAX, 1 << (m - 1), (1 << (m - 1)) - 1] {
            x.push(Z64(v));
            x.push(Z64(v.wrapping_neg()));
        }
    }
    let shares = share(&x, &mut rng);
    for m in [2u32, 3, 17, 33, 51, 54, 63, 64] {
        let [got, _] = run_in_process(&config(3), |e: &mut LocalMpc| {
            let mine = shares[e.party().index()].clone();
            let mut out = vec![Z64::ZERO; mine.len()];
            let (link, corr) = e.link_and_corr();
            super::protocols::is_negative_width(link, corr, &mine, &mut out, m).unwrap();
            e.open(&out).unwrap()
        });
        for (i, &v) in x.iter().enumerate() {
            let s = 64 - m;
            let want = u64::from(((v.0 << s) as i64 >> s) < 0);
            assert_eq!(got[i], Z64(want), "m = {m}, x = {:#x}", v.0);
        }
    }
}

#[test]
fn comparison_and_select_are_exact_on_the_whole_ring() {
    let mut rng = ChaCha20Rng::seed_from_u64(10);
    let mut a: Vec<Z64> = (0..1000).map(|_| Z64(rng.next_u64())).collect();
    a.extend(
        [
            0,
            1,
            u64::MAX,
            1 << 63,
            (1 << 63) - 1,
            (1 << 63) + 1,
            1 << 62,
            u64::MAX - (1 << 62),
        ]
        .map(Z64),
    );
    let n = a.len();
    let b: Vec<Z64> = (0..n).map(|_| Z64(rng.next_u64())).collect();
    let c: Vec<Z64> = (0..n).map(|_| Z64(rng.next_u64())).collect();
    let (p, m) = both(&Compare, &[a, b, c]);
    assert_eq!(p, m);
}

/// Exact e^x, tanh and sigmoid are not offered on shares: the engine is no `ExactEngine`
/// and hands none out, so the approximations' `exact` entries cannot reach a protocol.
#[test]
fn exact_functions_are_not_offered() {
    let [none0, none1] = run_in_process(&config(11), |e: &mut LocalMpc| e.exact().is_none());
    assert!(none0 && none1);
}

#[test]
fn out_of_step_parties_fail_instead_of_hanging() {
    let [r0, r1] = run_in_process(&config(12), |e: &mut LocalMpc| {
        // Different lengths on the two sides: a program bug the frame header catches.
        let n = 4 + e.party().index();
        let v = vec![Z64::ZERO; n];
        let mut out = vec![Z64::ZERO; n];
        e.mul(&v, &v, &mut out)
    });
    assert!(matches!(r0, Err(MpcError::Desync { .. })), "{r0:?}");
    assert!(matches!(r1, Err(MpcError::Desync { .. })), "{r1:?}");
    let [r0, r1] = run_in_process(&config(13), |e: &mut LocalMpc| {
        // Party 1 stops early: party 0 sees the channel close.
        if e.party() == PartyId::P1 {
            return Ok(());
        }
        let v = vec![Z64::ZERO; 4];
        let mut out = vec![Z64::ZERO; 4];
        e.mul(&v, &v, &mut out)
    });
    assert!(matches!(r0, Err(MpcError::Channel { .. })), "{r0:?}");
    assert!(r1.is_ok());
}

// ---------------------------------------------------------------- composites

case!(ReluMaxClamp, |e, x| {
    let n = x[0].len();
    let mut r = x[0].clone();
    let mut s = vec![Z64::ZERO; 4 * n];
    e.relu(&mut r, &mut s)?;
    let mut dx = vec![Z64::ZERO; n];
    Relu::backward(e, &x[0], &x[1], &mut dx, &mut s)?;
    let mut mx = x[0].clone();
    e.max_assign(&mut mx, &x[1], &mut s)?;
    let mut c = x[0].clone();
    let mut g = vec![Z64::ZERO; n];
    e.clamp(&mut c, -1.0, 1.0, Some(&mut g), &mut s)?;
    Ok(vec![r, dx, mx, c, g])
});

#[test]
fn relu_backward_max_and_hard_tanh_are_exact() {
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let mut a = uniform(&mut rng, 500, -3.0, 3.0);
    a.extend([0.0, -1.0, 1.0, 1e-5, -1e-5]);
    let b = uniform(&mut rng, a.len(), -3.0, 3.0);
    let (p, m) = both(&ReluMaxClamp, &[enc(&a), enc(&b)]);
    assert_eq!(p, m);
}

case!(MaxPool, |e, x| {
    let input = Image::new(2, 3, 6, 6);
    let pool = MaxPool2d::new(3, 3);
    let out = pool.output(input);
    let mut y = vec![Z64::ZERO; out.len()];
    let mut sel = vec![Z64::ZERO; pool.selection_len(input)];
    let mut s = vec![Z64::ZERO; pool.forward_scratch(input)];
    pool.forward(e, &x[0], input, &mut y, Some(&mut sel), &mut s)?;
    let mut dx = vec![Z64::ZERO; input.len()];
    let mut s = vec![Z64::ZERO; pool.backward_scratch(input)];
    pool.backward(e, &sel, &x[1][..out.len()], input, &mut dx, &mut s)?;
    Ok(vec![y, sel, dx])
});

#[test]
fn max_pooling_and_its_backward_are_exact() {
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let mut a = uniform(&mut rng, 2 * 3 * 36, -2.0, 2.0);
    a[5] = a[4]; // a tie inside a window
    let b = uniform(&mut rng, a.len(), -1.0, 1.0);
    let (p, m) = both(&MaxPool, &[enc(&a), enc(&b)]);
    assert_eq!(p, m);
}

case!(MaxTree4, |e, x| {
    let nn = x[0].len() / 4;
    let (mut v, mut bits) = (x[0].clone(), vec![Z64::ZERO; 3 * nn]);
    let mut scratch = vec![Z64::ZERO; generic::max_tree_scratch(4, nn)];
    e.max_tree(&mut v, 4, Some(&mut bits), &mut scratch)?;
    v.truncate(nn);
    // The backward pass: the first row's values routed to each window's winner.
    let mut routed = vec![Z64::ZERO; 4 * nn];
    let mut scratch = vec![Z64::ZERO; generic::route_tree_scratch(4, nn)];
    generic::route_tree(e, &bits, 4, &x[0][..nn], &mut routed, &mut scratch)?;
    Ok(vec![v, bits, routed])
});

#[test]
fn a_two_by_two_max_tree_and_its_routing_multiply_three_times_per_window() {
    // The forward pass: three comparisons and, with the adder, three selects (2 + 1 per
    // window). The backward pass: one product per comparison bit (2 levels), where the
    // one-hot selection took 2 products forward and 4 backward.
    let nn = 300;
    let (t, _) = measure(&MaxTree4, 4 * nn);
    assert_eq!(
        t.sent_by_tag[Tag::Mul as usize],
        16 * 6 * nn as u64 + 4 * HEADER_LEN as u64
    );
    let mut rng = ChaCha20Rng::seed_from_u64(151);
    let mut x = uniform(&mut rng, 4 * nn, -2.0, 2.0);
    for j in 0..nn / 3 {
        x[j + 2 * nn] = x[j]; // ties across the first level
        x[j + nn] = x[j + 3 * nn]; // and within the other pair
    }
    let (p, m) = both(&MaxTree4, &[enc(&x)]);
    assert_eq!(p, m);
    // The routed gradient is the first row times the one-hot selection: one winner per
    // window, holding the maximum, the lowest offset on a tie.
    let (y, routed) = (&p[0], &p[2]);
    let x = enc(&x);
    for j in 0..nn {
        let won: Vec<usize> = (0..4)
            .filter(|&i| routed[i * nn + j] != Z64::ZERO)
            .collect();
        let first = (0..4).find(|&i| x[i * nn + j] == y[j]).unwrap();
        if x[j] != Z64::ZERO {
            assert_eq!(won, [first], "window {j}");
            assert_eq!(routed[first * nn + j], x[j]);
        }
    }
}

struct ExpEval(ExpApprox, bool);
impl Case for ExpEval {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let n = x[0].len();
        let mut out = vec![Z64::ZERO; n];
        let mut s = vec![Z64::ZERO; self.0.scratch_len(n) + n];
        self.0.eval(e, &x[0], &mut out, &mut s)?;
        if !self.1 {
            return Ok(vec![out]);
        }
        let mut d = vec![Z64::ZERO; n];
        self.0.derivative(e, &x[0], &mut d, &mut s)?;
        Ok(vec![out, d])
    }
}

#[test]
fn max_of_lines_is_within_one_ulp() {
    // Each line is one truncation (within 1 ulp of Plain's); the max of values each within
    // 1 ulp is within 1 ulp. The gradient is the slope of a line whose Plain value is
    // within 2 ulp of the Plain maximum (near a breakpoint either line may win).
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    let x = uniform(&mut rng, 2000, -6.0, 4.0);
    let approx = ExpApprox::Pwl(4);
    let lines = approx.lines().unwrap();
    let (p, m) = both(&ExpEval(approx, true), &[enc(&x)]);
    assert_within(&p[0], &m[0], |_| 1, "pwl4");
    let plain = Plain::with_frac_bits(F).unwrap();
    let mut mismatched = 0;
    for (i, xi) in enc(&x).into_iter().enumerate() {
        if p[1][i] == m[1][i] {
            continue;
        }
        mismatched += 1;
        let near: Vec<Z64> = (0..lines.parts())
            .filter(|&j| {
                let (a, b) = lines.line(j);
                let mut v = [xi];
                let mut e = plain.clone();
                e.scale(&mut v, a).unwrap();
                let c = e.public(b);
                diff(p[0][i], v[0] + c).abs() <= 2
            })
            .map(|j| plain.public(lines.line(j).0))
            .collect();
        assert!(
            near.contains(&m[1][i]),
            "gradient at {} is no near line's",
            x[i]
        );
    }
    assert!(mismatched < 20, "{mismatched} gradients differ");
}

#[test]
fn taylor_exp_is_within_the_propagated_bound() {
    // Horner: e_deg = 0, e_k <= ceil(|x| e_(k+1)) + 1 ulp (one truncation per degree).
    let mut rng = ChaCha20Rng::seed_from_u64(17);
    let x = uniform(&mut rng, 2000, -4.0, 2.0);
    let (p, m) = both(&ExpEval(ExpApprox::Taylor(4), false), &[enc(&x)]);
    let bound = |i: usize| {
        let ax: f64 = x[i].abs();
        (0..4).fold(0.0f64, |e, _| (ax * e).ceil() + 1.0) as i64
    };
    assert_within(&p[0], &m[0], bound, "taylor4");
}

struct Recip(u32);
impl Case for Recip {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let n = x[0].len();
        let mut out = vec![Z64::ZERO; n];
        let mut s = vec![Z64::ZERO; ringnn_core::engine::generic::reciprocal_scratch(n)];
        let mut z = vec![Z64::ZERO; n];
        e.reciprocal(&x[0], &mut out, Some(&mut z), self.0, &mut s)?;
        Ok(vec![out, z])
    }
}

#[test]
fn reciprocal_is_within_a_few_ulp_relative() {
    // The bit length is exact (comparisons of the input itself); the normalisation, the
    // initial guess and each Newton step add truncations that Newton's iteration damps,
    // so y = 1/s is within a few ulp, and the final shift by a public amount keeps the
    // relative error: |mpc - plain| <= 8 * 2^-f * plain + 2.
    // Every bit length 1..=62 at its ends too (raw 2^(k-1) and 2^k - 1): the shifts by
    // the bit length take three branches (k <= f + g exact, f + g < k <= 61 and k = 62
    // rounded).
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    let mut x = enc(&uniform(&mut rng, 300, 0.01, 1000.0));
    x.extend(enc(&[1.0, 0.5, 2.0, 65535.0, 2f64.powi(-(F as i32))]));
    for k in 1..=62u32 {
        x.extend([1i64 << (k - 1), (1i64 << k) - 1].map(Z64::from_signed));
    }
    // Empty inputs: flagged, and 0 on both engines.
    x.extend([0, -1, -(1 << 40)].map(Z64::from_signed));
    for g in [0, guard_bits(F)] {
        let p = on_plain(&Recip(g), std::slice::from_ref(&x));
        for comparison in Comparison::ALL {
            let cfg = LocalConfig {
                comparison,
                ..config(7)
            };
            let m = on_mpc(&cfg, &Recip(g), std::slice::from_ref(&x));
            let tol = |i: usize| (8.0 * p[0][i].to_signed() as f64 / (1u64 << F) as f64) as i64 + 2;
            assert_within(&p[0], &m[0], tol, &format!("reciprocal ({comparison})"));
            assert_eq!(p[1], m[1], "the empty flags ({comparison})");
            assert_eq!(m[0][m[0].len() - 3..], [Z64::ZERO; 3]);
        }
    }
}

struct SoftmaxCase(Softmax, usize, usize);
impl Case for SoftmaxCase {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let SoftmaxCase(cfg, rows, cols) = *self;
        let mut out = vec![Z64::ZERO; rows * cols];
        let mut s = vec![Z64::ZERO; softmax_scratch(cfg, rows, cols)];
        softmax(e, cfg, &x[0], rows, cols, &mut out, &mut s)?;
        Ok(vec![out])
    }
}

/// Error bound (ulp) of one exp-approximation value on the two-party engine against
/// Plain: one truncation per line (max-of-lines: 1), or Horner's `e_k <= ceil(|x|
/// e_(k+1)) + 1` over the degree (Taylor).
fn exp_error(exp: ExpApprox, x: f64) -> f64 {
    match exp {
        ExpApprox::Taylor(d) => (0..d).fold(0.0f64, |e, _| (x.abs() * e).ceil() + 1.0),
        _ => 1.0,
    }
}

/// Softmax tolerance per element, in ulp: `p = (E R) >> (f + g)` with each `E` within
/// `dE` of Plain's, the row sum `S` within `sum dE`, and the reciprocal `R` within its
/// relative bound `8 * 2^-f`; so `|dp| <= (dE_max + p sum dE) / S + 8 p + 2` ulp with
/// `p <= 1` and `S` the row sum of the float approximation (shifted by the row maximum
/// when asked; the maximum itself is exact).
fn softmax_tolerance(cfg: Softmax, x: &[f64], cols: usize) -> Vec<i64> {
    x.chunks(cols)
        .flat_map(|row| {
            let mx = if cfg.subtract_max {
                row.iter().cloned().fold(f64::MIN, f64::max)
            } else {
                0.0
            };
            let s: f64 = row
                .iter()
                .map(|&v| cfg.exp.reference(v - mx).max(0.0))
                .sum();
            let de: Vec<f64> = row.iter().map(|&v| exp_error(cfg.exp, v - mx)).collect();
            let de_sum: f64 = de.iter().sum();
            let de_max = de.iter().cloned().fold(0.0, f64::max);
            let tol = ((de_max + de_sum) / s).ceil() as i64 + 10;
            vec![tol; cols]
        })
        .collect()
}

#[test]
fn softmax_matches_plain() {
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    let (rows, cols) = (32, 10);
    for (exp, range) in [(ExpApprox::Pwl(4), 4.0), (ExpApprox::Taylor(4), 2.0)] {
        let x = uniform(&mut rng, rows * cols, -range, range);
        for subtract_max in [false, true] {
            let cfg = Softmax { exp, subtract_max };
            let (p, m) = both(&SoftmaxCase(cfg, rows, cols), &[enc(&x)]);
            let tol = softmax_tolerance(cfg, &x, cols);
            assert_within(&p[0], &m[0], |i| tol[i], exp.name());
            // Still a distribution.
            for r in 0..rows {
                let s: i64 = m[0][r * cols..(r + 1) * cols]
                    .iter()
                    .map(|v| v.to_signed())
                    .sum();
                assert!((s - (1 << F)).abs() <= 2 * cols as i64 + 2, "row sum {s}");
            }
        }
    }
}

struct XentGrad(Softmax, GradMode, usize, usize);
impl Case for XentGrad {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let XentGrad(cfg, mode, rows, cols) = *self;
        let n = rows * cols;
        let mut p = vec![Z64::ZERO; n];
        let mut g = vec![Z64::ZERO; n];
        let mut s = vec![Z64::ZERO; backward_scratch(cfg, rows, cols)];
        softmax_xent_backward(
            e,
            cfg,
            mode,
            Labelled { x: &x[0], y: &x[1] },
            Rows { rows, cols },
            XentOut {
                p: &mut p,
                grad: &mut g,
            },
            &mut s,
        )?;
        Ok(vec![p, g])
    }
}

#[test]
fn cross_entropy_gradients_match_plain_in_both_modes() {
    // Exact mode adds `y E'_l / E_l` (a reciprocal and three truncations per element on
    // top of softmax): the same tolerance plus 8 ulp relative to the ratio's size.
    let mut rng = ChaCha20Rng::seed_from_u64(20);
    let (rows, cols) = (16, 10);
    let x = uniform(&mut rng, rows * cols, -3.0, 3.0);
    let mut y = vec![0.0; rows * cols];
    for r in 0..rows {
        y[r * cols + rng.random_range(0..cols)] = 1.0;
    }
    for mode in [GradMode::Surrogate, GradMode::Exact] {
        let cfg = Softmax::new(ExpApprox::Pwl(4));
        let (p, m) = both(&XentGrad(cfg, mode, rows, cols), &[enc(&x), enc(&y)]);
        let sm = softmax_tolerance(cfg, &x, cols);
        assert_within(&p[0], &m[0], |i| sm[i], "softmax");
        let tol = |i: usize| sm[i] + (8.0 * p[1][i].to_signed().abs() as f64 / 65536.0) as i64 + 8;
        assert_within(&p[1], &m[1], tol, mode.name());
    }
}

case!(DenseStep, |e, x| {
    let (batch, l) = (8, Dense::new(6, 4));
    let (xin, w, b, dy) = (&x[0], &x[1], &x[2], &x[3]);
    let mut y = vec![Z64::ZERO; batch * 4];
    l.forward(e, xin, w, b, batch, &mut y)?;
    let mut dx = vec![Z64::ZERO; batch * 6];
    let mut dw = vec![Z64::ZERO; l.weights()];
    let mut db = vec![Z64::ZERO; 4];
    let mut s = vec![Z64::ZERO; l.backward_scratch(batch)];
    l.backward(
        e,
        xin,
        w,
        batch,
        Grads {
            dy,
            dx: Some(&mut dx),
            dw: &mut dw,
            db: &mut db,
        },
        &mut s,
    )?;
    let sgd = Sgd {
        momentum: 0.9,
        weight_decay: 1e-3,
    };
    let mut w2 = w.clone();
    let mut v = x[4].clone();
    let mut s = vec![Z64::ZERO; Sgd::scratch(w2.len())];
    sgd.step(e, &mut w2, &dw, &mut v, 0.1, batch, &mut s)?;
    Ok(vec![y, dx, dw, db, w2, v])
});

#[test]
fn dense_layer_and_sgd_step_match_plain() {
    // Forward, dx and dw: one truncation after an exact product: 1 ulp; db exact.
    // SGD: t = (g + 8 wd w) >> 3, with one rescale inside (1) and the shift (2),
    // v = 0.9 v + t (3); w -= lr v: ceil(0.1 * dv) + 1, where dv also carries dw's 1 ulp,
    // scaled by 1/8: v within 4, w within 2.
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let inputs = [
        enc(&uniform(&mut rng, 48, -2.0, 2.0)),
        enc(&uniform(&mut rng, 24, -1.0, 1.0)),
        enc(&uniform(&mut rng, 4, -1.0, 1.0)),
        enc(&uniform(&mut rng, 32, -1.0, 1.0)),
        enc(&uniform(&mut rng, 24, -0.1, 0.1)),
    ];
    let (p, m) = both(&DenseStep, &inputs);
    for (k, (tol, what)) in [
        (1, "y"),
        (1, "dx"),
        (1, "dw"),
        (0, "db"),
        (2, "w"),
        (4, "v"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_within(&p[k], &m[k], |_| tol, what);
    }
}

case!(ConvForward, |e, x| {
    let input = Image::new(2, 2, 5, 5);
    let conv = Conv2d::new(2, 3, 3, 1, 1);
    let out = conv.output(input);
    let mut y = vec![Z64::ZERO; out.len()];
    let mut s = vec![Z64::ZERO; conv.forward_scratch(input)];
    conv.forward(
        e,
        &x[0],
        Params { w: &x[1], b: &x[2] },
        input,
        &mut y,
        &mut s,
    )?;
    Ok(vec![y])
});

#[test]
fn convolution_is_within_one_ulp() {
    let mut rng = ChaCha20Rng::seed_from_u64(22);
    let conv = Conv2d::new(2, 3, 3, 1, 1);
    let inputs = [
        enc(&uniform(&mut rng, 2 * 2 * 25, -1.0, 1.0)),
        enc(&uniform(&mut rng, conv.weights(), -0.5, 0.5)),
        enc(&uniform(&mut rng, 3, -0.5, 0.5)),
    ];
    let (p, m) = both(&ConvForward, &inputs);
    assert_within(&p[0], &m[0], |_| 1, "conv");
}

struct ReluOnly;
impl Case for ReluOnly {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let mut r = x[0].clone();
        let mut s = vec![Z64::ZERO; 3 * r.len()];
        e.relu(&mut r, &mut s)?;
        Ok(vec![r])
    }
}

/// Online traffic and offline bytes of one party (party 1) for `case` on `n` elements.
pub(super) fn measure<C: Case>(case: &C, n: usize) -> (Traffic, OfflineStats) {
    measure_with(&config(24), case, n)
}

/// [`measure`] on the engines of `cfg`.
pub(super) fn measure_with<C: Case>(
    cfg: &LocalConfig,
    case: &C,
    n: usize,
) -> (Traffic, OfflineStats) {
    let mut rng = ChaCha20Rng::seed_from_u64(23);
    let x: Vec<Z64> = (0..n).map(|_| Z64(rng.next_u64())).collect();
    let shares = share(&x, &mut rng);
    let [_, r1] = run_in_process(cfg, |e: &mut LocalMpc| {
        let mine = vec![
            shares[e.party().index()].clone(),
            shares[e.party().index()].clone(),
        ];
        case.run(e, &mine).expect("run failed");
        (e.traffic(), e.offline())
    });
    r1
}

case!(MulOnly, |e, x| {
    let mut out = vec![Z64::ZERO; x[0].len()];
    e.mul(&x[0], &x[1], &mut out)?;
    Ok(vec![out])
});

#[test]
fn communication_per_relu_and_per_multiplication() {
    let n = 64 * 1024;
    let (mul, mul_off) = measure(&MulOnly, n);
    assert_eq!(mul.rounds, 1);
    assert_eq!(mul.sent, 16 * n as u64 + 8);
    assert_eq!(mul_off.bytes, 32 + 8 * n as u64);
    let (relu, relu_off) = measure(&ReluOnly, n);
    assert_eq!(relu.rounds, 9);
    assert_eq!(relu.sent, relu.received);
    let per = relu.sent as f64 / n as f64;
    // The comparison at the reduced width W = fss_width(16) = 51: the carry out of 50
    // bits, 50 + 49 + 23 + 11 + 5 + 3 + 1 = 142 AND gates (2 bits each; 181 at the full
    // width), 1 bit of injection, 16 bytes of select, 9 headers.
    assert_eq!(ringnn_core::engine::fss_width(F), 51);
    assert_eq!(relu.sent, (142 * 2 * n / 8 + n / 8 + 16 * n + 9 * 8) as u64);
    assert!(per <= 64.0, "{per} bytes per ReLU");
    println!(
        "per multiplication: 1 round, {:.3} bytes sent per party, {:.3} offline bytes to party 1",
        mul.sent as f64 / n as f64,
        mul_off.bytes as f64 / n as f64
    );
    println!(
        "per ReLU: {} rounds, {per:.3} bytes sent per party, {:.3} offline bytes to party 1 \
         ({:.3} without seeds)",
        relu.rounds,
        relu_off.bytes as f64 / n as f64,
        relu_off.full_bytes as f64 / n as f64
    );
}

#[test]
fn rounds_do_not_grow_with_the_batch() {
    // Every composite costs a constant number of rounds, whatever the batch size.
    let cfg = Softmax::new(ExpApprox::Pwl(4));
    let rounds = |rows: usize| {
        let relu = measure(&ReluOnly, rows * 10).0.rounds;
        let pwl = measure(&ExpEval(ExpApprox::Pwl(4), false), rows * 10)
            .0
            .rounds;
        let taylor = measure(&ExpEval(ExpApprox::Taylor(4), false), rows * 10)
            .0
            .rounds;
        let (sm, sm_off) = measure(&SoftmaxCase(cfg, rows, 10), rows * 10);
        (relu, pwl, taylor, sm.rounds, sm, sm_off)
    };
    let small = rounds(4);
    let large = rounds(256);
    assert_eq!(
        (small.0, small.1, small.2, small.3),
        (large.0, large.1, large.2, large.3)
    );
    let (sm, off) = (large.4, large.5);
    println!(
        "rounds: relu {}, pwl4 {}, taylor4 {}, softmax (pwl4) {}; softmax of 256 x 10: \
         {:.1} bytes sent per element per party, {:.1} offline",
        large.0,
        large.1,
        large.2,
        large.3,
        sm.sent as f64 / 2560.0,
        off.bytes as f64 / 2560.0
    );
}
