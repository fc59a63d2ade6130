//! The FSS comparison inside the two-party engine: exact against `Plain` (and the adder)
//! on the whole ring and at its edges, every composite built on it exact, its counted
//! cost, and both parties' views.

use super::super::tests::{
    config, enc, measure_with, on_mpc, on_plain, uniform, Case, Compare, MaxPool, MaxTree4,
    Outputs, ReluMaxClamp, F,
};
use super::super::view_tests::{
    assert_balanced, byte_chi2, messages, opened_values, payload_words,
    views_are_uniform_and_never_repeat_a_mask,
};
use super::*;
use crate::mpc::dealer::Request;
use crate::mpc::fss::gate::{drelu_plain, relu_plain};
use crate::mpc::fss::{DreluKey, ReluKey};
use crate::mpc::local::LocalMpc;
use crate::mpc::{run_in_process, share, LocalConfig};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ringnn_core::engine::{fss_width, generic, within_fss_width};
use ringnn_core::{Engine, Z64};

/// The engines of the shared tests' [`config`], comparing with FSS keys.
fn fss(seed: u8) -> LocalConfig {
    LocalConfig {
        comparison: Comparison::Fss,
        ..config(seed)
    }
}

/// The ring's edges: 0, ±1, ±2, the bounds of the signed range (2^63 - 1 and -2^63),
/// -2^63 + 1, 2^64 - 1 (= -1), and 2^62 on both sides.
const EDGES: [u64; 11] = [
    0,
    1,
    2,
    u64::MAX,
    u64::MAX - 1,
    1 << 63,
    (1 << 63) - 1,
    (1 << 63) + 1,
    1 << 62,
    u64::MAX - (1 << 62) + 1,
    (1 << 62) - 1,
];

#[test]
fn names_parse_and_print() {
    for c in Comparison::ALL {
        assert_eq!(c.to_string().parse::<Comparison>(), Ok(c));
    }
    assert_eq!(Comparison::default(), Comparison::A2b);
    let e = "gc".parse::<Comparison>().unwrap_err();
    assert!(
        e.contains("unknown comparison 'gc'") && e.contains("fss"),
        "{e}"
    );
}

#[test]
fn fss_comparison_equals_plain_and_the_adder_on_the_whole_ring() {
    let mut rng = ChaCha20Rng::seed_from_u64(40);
    let mut a: Vec<Z64> = (0..2000).map(|_| Z64(rng.next_u64())).collect();
    a.extend(EDGES.map(Z64));
    // Differences that reach the edges as well (max and select work on them).
    a.extend(EDGES.map(|v| Z64(v.wrapping_neg())));
    let n = a.len();
    let b: Vec<Z64> = (0..n).map(|_| Z64(rng.next_u64())).collect();
    let c: Vec<Z64> = (0..n).map(|_| Z64(rng.next_u64())).collect();
    let inputs = [a.clone(), b, c];
    let plain = on_plain(&Compare, &inputs);
    let with_fss = on_mpc(&fss(7), &Compare, &inputs);
    assert_eq!(plain, with_fss);
    assert_eq!(on_mpc(&config(7), &Compare, &inputs), with_fss);
    // The bits are 0 or 1 at integer scale: [x < 0] read as signed.
    for (i, &x) in a.iter().enumerate() {
        assert_eq!(
            with_fss[0][i],
            Z64(u64::from(x.is_negative())),
            "{:#x}",
            x.0
        );
    }
}

#[test]
fn composites_on_the_fss_comparison_are_exact() {
    // ReLU and its backward, max of two, hard tanh with its gradient, max pooling with
    // ties and its backward: the same as Plain bit for bit.
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let mut a = uniform(&mut rng, 500, -3.0, 3.0);
    a.extend([0.0, -0.0, 1.0, -1.0, 2.0f64.powi(-16), -(2.0f64.powi(-16))]);
    let b = uniform(&mut rng, a.len(), -3.0, 3.0);
    let inputs = [enc(&a), enc(&b)];
    assert_eq!(
        on_plain(&ReluMaxClamp, &inputs),
        on_mpc(&fss(8), &ReluMaxClamp, &inputs)
    );
    let mut a = uniform(&mut rng, 2 * 3 * 36, -2.0, 2.0);
    a[5] = a[4];
    let b = uniform(&mut rng, a.len(), -1.0, 1.0);
    let inputs = [enc(&a), enc(&b)];
    assert_eq!(
        on_plain(&MaxPool, &inputs),
        on_mpc(&fss(9), &MaxPool, &inputs)
    );
    let (rows, cols) = (37, 10);
    let mut v = uniform(&mut rng, rows * cols, -4.0, 4.0);
    v[3] = v[7]; // a tie: the first index wins on both engines
    let inputs = [enc(&v)];
    assert_eq!(
        on_plain(&ArgMax(rows, cols), &inputs),
        on_mpc(&fss(10), &ArgMax(rows, cols), &inputs)
    );
}

/// ReLU through the engine: on `Mpc` with `fss`, [`relu_fss`]; on Plain (and with the
/// adder), the kernel's comparison and select.
struct Relu;
impl Case for Relu {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let mut y = x[0].clone();
        let mut s = vec![Z64::ZERO; 3 * y.len()];
        e.relu(&mut y, &mut s)?;
        Ok(vec![y])
    }
}

/// Whole-ring inputs for the reduced-width gates: random words, the ring's edges (both
/// signs), the edges of the gates' range at `F` (`±2^(W-2)`, one inside and one outside,
/// and `2^(W-1)`, which reads as negative at `W` bits), and small values of both signs.
fn ring_and_width_edges(rng: &mut ChaCha20Rng) -> Vec<Z64> {
    let mut a: Vec<Z64> = (0..2000).map(|_| Z64(rng.next_u64())).collect();
    a.extend(EDGES.map(Z64));
    a.extend(EDGES.map(|v| Z64(v.wrapping_neg())));
    let lim = 1i64 << (fss_width(F) - 2);
    for v in [lim - 1, lim, lim + 1, 2 * lim, 2 * lim - 1, 4 * lim] {
        a.push(Z64::from_signed(v));
        a.push(Z64::from_signed(-v));
    }
    a.extend(enc(&[
        0.5,
        -0.5,
        3.25,
        -3.25,
        2.0f64.powi(-16),
        -(2.0f64.powi(-16)),
    ]));
    a
}

/// `Plain`'s count of inputs beyond the gates' range ([`ringnn_core::Health`]).
fn plain_beyond<C: Case>(case: &C, inputs: &[Vec<Z64>]) -> u64 {
    let mut p = ringnn_core::Plain::with_frac_bits(F).unwrap();
    let Ok(_) = case.run(&mut p, inputs);
    p.health().unwrap().beyond_fss_width
}

#[test]
fn relu_equals_plain_within_its_width_and_reads_w_bits_beyond_on_both_comparisons() {
    // Both comparisons compare ReLU's input at the width W = fss_width(F) < 64 (the FSS
    // gate's keys, the adder's carry chain): on inputs with |x| < 2^(W-2) (those Plain
    // does not count) it is Plain's ReLU; beyond, it is x times the sign of x mod 2^W,
    // and Plain counts each such input.
    let w = fss_width(F);
    assert!(w < 64, "F = {F} must reduce the width");
    let mut rng = ChaCha20Rng::seed_from_u64(44);
    let a = ring_and_width_edges(&mut rng);
    let inputs = [a.clone()];
    let plain = on_plain(&Relu, &inputs);
    for (name, cfg, again) in [("a2b", config(11), config(12)), ("fss", fss(11), fss(12))] {
        let got = on_mpc(&cfg, &Relu, &inputs);
        let mut beyond = 0;
        for (i, &x) in a.iter().enumerate() {
            if within_fss_width(x.to_signed(), F) {
                assert_eq!(got[0][i], plain[0][i], "{name}: {:#x}", x.0);
            } else {
                beyond += 1;
                assert_eq!(got[0][i].0, relu_plain(x.0, w), "{name}: {:#x}", x.0);
            }
        }
        assert!(beyond > 2000 - 10, "most random words are beyond: {beyond}");
        assert_eq!(plain_beyond(&Relu, &inputs), beyond);
        // Another dealer seed (other masks and keys), the same result.
        assert_eq!(on_mpc(&again, &Relu, &inputs), got, "{name}");
    }
}

/// The maximum of two, elementwise, with the requests it made.
struct MaxOfTwo;
impl Case for MaxOfTwo {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let mut a = x[0].clone();
        let mut s = vec![Z64::ZERO; 2 * a.len()];
        e.max_assign(&mut a, &x[1], &mut s)?;
        Ok(vec![a])
    }
}

#[test]
fn max_compares_differences_at_the_reduced_width_on_both_comparisons() {
    // max(a, b) = b + ReLU(a - b) from ReLU keys of width W: Plain's result wherever the
    // difference is in [-2^(W-1), 2^(W-1)), the W-bit reading beyond, and Plain counts
    // exactly the differences beyond.
    let w = fss_width(F);
    let lim = 1i64 << (w - 1);
    let mut rng = ChaCha20Rng::seed_from_u64(46);
    let mut a: Vec<Z64> = (0..1000).map(|_| Z64(rng.next_u64())).collect();
    let mut b: Vec<Z64> = (0..1000).map(|_| Z64(rng.next_u64())).collect();
    for d in [0, 1, -1, lim - 1, -lim, lim, -lim - 1, 2 * lim] {
        let base = rng.next_u64() as i64 >> 2;
        a.push(Z64::from_signed(base.wrapping_add(d)));
        b.push(Z64::from_signed(base));
    }
    let small = enc(&uniform(&mut rng, 200, -4.0, 4.0));
    let small_b = enc(&uniform(&mut rng, 200, -4.0, 4.0));
    a.extend(&small);
    b.extend(&small_b);
    let inputs = [a.clone(), b.clone()];
    let plain = on_plain(&MaxOfTwo, &inputs);
    // The adder compares the differences at the same width (its carry chain over W bits).
    for (name, cfg) in [("fss", fss(15)), ("a2b", config(15))] {
        let got = on_mpc(&cfg, &MaxOfTwo, &inputs);
        let mut beyond = 0;
        for i in 0..a.len() {
            let d = (a[i] - b[i]).to_signed();
            if (-lim..lim).contains(&d) {
                assert_eq!(got[0][i], plain[0][i], "{name}: a - b = {d}");
            } else {
                beyond += 1;
                let a_wins = drelu_plain((a[i] - b[i]).0, w) == 1;
                assert_eq!(
                    got[0][i],
                    if a_wins { a[i] } else { b[i] },
                    "{name}: a - b = {d}"
                );
            }
        }
        assert!(
            beyond > 900,
            "random pairs mostly differ beyond the width: {beyond}"
        );
        assert_eq!(plain_beyond(&MaxOfTwo, &inputs), beyond);
    }
    // The keys asked for: n ReLU keys of width W (no Beaver triple: no select).
    let n = a.len();
    let reqs = run_in_process(&fss(15), |e: &mut LocalMpc| {
        let mut x = inputs[0].clone();
        let mut s = vec![Z64::ZERO; 2 * n];
        e.record_requests(true);
        e.max_assign(&mut x, &b, &mut s).unwrap();
        e.take_requests()
    });
    for r in &reqs {
        assert_eq!(r, &[Request::Relu { n, m: w }], "{r:?}");
    }
}

#[test]
fn fss_max_tree_is_one_gate_per_comparison_and_routes_with_one_product_per_bit() {
    // A 2 x 2 window: 3 ReLU gates on differences (one round per level, 8 bytes each, no
    // select), then the backward routing's 3 products (one round per level).
    let nn = 300;
    let (t, _) = measure_with(&fss(16), &MaxTree4, 4 * nn);
    let header = crate::mpc::wire::HEADER_LEN as u64;
    assert_eq!(
        t.sent_by_tag[Tag::MaskedInput as usize],
        8 * 3 * nn as u64 + 2 * header
    );
    assert_eq!(
        t.sent_by_tag[Tag::Mul as usize],
        16 * 3 * nn as u64 + 2 * header
    );
    assert_eq!(t.rounds, 4);
    // Bit for bit Plain's maxima, bits and routed gradient, ties included.
    let mut rng = ChaCha20Rng::seed_from_u64(152);
    let mut x = uniform(&mut rng, 4 * nn, -2.0, 2.0);
    for j in 0..nn / 3 {
        x[j + 2 * nn] = x[j];
        x[j + nn] = x[j + 3 * nn];
    }
    let inputs = [enc(&x)];
    assert_eq!(
        on_plain(&MaxTree4, &inputs),
        on_mpc(&fss(17), &MaxTree4, &inputs)
    );
}

/// ReLU with its derivative bit: what the engine keeps from the forward pass or, where
/// it keeps nothing (Plain, the adder), the bit [`ringnn_core::layers::Relu::backward`]
/// recomputes (`[-x < 0]`).
struct ReluGrad;
impl Case for ReluGrad {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let n = x[0].len();
        let mut y = x[0].clone();
        let mut g = vec![Z64::ZERO; n];
        let mut s = vec![Z64::ZERO; 3 * n];
        if !e.relu_keeping_grad(&mut y, &mut g, &mut s)? {
            let mut neg = x[0].clone();
            e.scale(&mut neg, -1.0)?;
            e.is_negative(&neg, &mut g)?;
        }
        Ok(vec![y, g])
    }
}

#[test]
fn relu_keeps_exactly_the_backward_bit_on_both_comparisons() {
    // Within the gates' range the kept bit is the one the backward pass recomputes,
    // [-x < 0]; beyond it, on FSS the sign at W bits of x - 1 (the key's second
    // evaluation), on the adder the sign at W bits of -x (compared in the forward's batch).
    let w = fss_width(F);
    let mut rng = ChaCha20Rng::seed_from_u64(45);
    let a = ring_and_width_edges(&mut rng);
    let inputs = [a.clone()];
    let plain = on_plain(&ReluGrad, &inputs);
    for (name, cfg) in [("fss", fss(13)), ("a2b", config(13))] {
        let got = on_mpc(&cfg, &ReluGrad, &inputs);
        for (i, &x) in a.iter().enumerate() {
            if within_fss_width(x.to_signed(), F) {
                assert_eq!(got[0][i], plain[0][i], "{name}: {:#x}", x.0);
                assert_eq!(got[1][i], plain[1][i], "{name}: {:#x}", x.0);
                // [x > 0] there ([-x < 0] differs from it only at -2^63, beyond the range).
                assert_eq!(
                    got[1][i],
                    Z64(u64::from(x.to_signed() > 0)),
                    "{name}: {:#x}",
                    x.0
                );
            } else {
                assert_eq!(got[0][i].0, relu_plain(x.0, w), "{name}: {:#x}", x.0);
                let bit = if name == "fss" {
                    drelu_plain(x.0.wrapping_sub(1), w)
                } else {
                    1 - drelu_plain(x.0.wrapping_neg(), w)
                };
                assert_eq!(got[1][i].0, bit, "{name}: {:#x}", x.0);
            }
        }
    }
    // Plain's backward bit is exact on the whole ring, -2^63 included.
    assert_eq!(plain[1][2000 + 5], Z64(1), "-2^63");
    // Both engines keep it in the ReLU's rounds (FSS: its one round; the adder: its
    // comparison's 8 and the select's 1, the bit of -x in the same batch); Plain keeps
    // nothing (its backward pass compares again, locally).
    let n = 100;
    let x = share(&a[..n], &mut rng);
    let kept = |cfg: &LocalConfig| {
        run_in_process(cfg, |e: &mut LocalMpc| {
            let t0 = e.traffic();
            let mut y = x[e.party().index()].clone();
            let (mut g, mut s) = (vec![Z64::ZERO; n], vec![Z64::ZERO; 3 * n]);
            let kept = e.relu_keeping_grad(&mut y, &mut g, &mut s).unwrap();
            let t1 = e.traffic();
            (kept, t1.rounds - t0.rounds, t1.sent - t0.sent)
        })
    };
    assert_eq!(kept(&fss(14)), [(true, 1, 8 * n as u64 + 8); 2]);
    let [(a2b_kept, a2b_rounds, _), _] = kept(&config(14));
    assert_eq!((a2b_kept, a2b_rounds), (true, 9));
    let mut p = ringnn_core::Plain::with_frac_bits(16).unwrap();
    let (mut y, mut g, mut s) = (a.clone(), vec![Z64::ZERO; a.len()], vec![Z64::ZERO; 6000]);
    assert!(!p.relu_keeping_grad(&mut y, &mut g, &mut s).unwrap());
}

struct ArgMax(usize, usize);
impl Case for ArgMax {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let (rows, cols) = (self.0, self.1);
        let mut out = vec![Z64::ZERO; rows];
        let mut s = vec![Z64::ZERO; generic::argmax_rows_scratch(rows, cols)];
        generic::argmax_rows(e, &x[0], rows, cols, &mut out, &mut s)?;
        Ok(vec![out])
    }
}

#[test]
fn fss_is_negative_costs_one_round_and_eight_bytes_per_element() {
    let n = 3000;
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    let x: Vec<Z64> = (0..n).map(|_| Z64(rng.next_u64())).collect();
    let shares = share(&x, &mut rng);
    let key = DreluKey::size(FSS_WIDTH) as u64;
    let relu_key = ReluKey::size(fss_width(F)) as u64;
    let counts = run_in_process(&fss(42), |e: &mut LocalMpc| {
        let (t0, o0) = (e.traffic(), e.offline());
        let mut bits = vec![Z64::ZERO; n];
        e.is_negative(&shares[e.party().index()], &mut bits)
            .unwrap();
        let (t1, o1) = (e.traffic(), e.offline());
        // ReLU: the dealer's ReLU keys, one opening.
        let mut r = shares[e.party().index()].clone();
        let mut s = vec![Z64::ZERO; 3 * n];
        e.record_requests(true);
        e.relu(&mut r, &mut s).unwrap();
        let reqs = e.take_requests();
        let (t2, o2) = (e.traffic(), e.offline());
        (
            [
                t1.rounds - t0.rounds,
                t1.sent - t0.sent,
                t1.received - t0.received,
                o1.bytes - o0.bytes,
                o1.requests - o0.requests,
            ],
            [
                t2.rounds - t1.rounds,
                t2.sent - t1.sent,
                t2.received - t1.received,
                o2.bytes - o1.bytes,
                o2.requests - o1.requests,
            ],
            reqs,
        )
    });
    for (party, (neg, relu, reqs)) in counts.iter().enumerate() {
        // One round; 8 bytes per element and one 8-byte frame header, each way.
        let [rounds, sent, received, dealer, requests] = *neg;
        assert_eq!(rounds, 1, "party {party}");
        assert_eq!(sent, 8 * n as u64 + 8, "party {party}");
        assert_eq!(received, sent, "party {party}");
        // One request; each party receives its keys (and no correction).
        assert_eq!((requests, dealer), (1, n as u64 * key), "party {party}");
        // ReLU: the same, with one ReLU key per element instead of a DReLU key.
        let [rounds, sent, received, dealer, requests] = *relu;
        assert_eq!(rounds, 1, "party {party}: ReLU");
        assert_eq!(sent, 8 * n as u64 + 8, "party {party}: ReLU");
        assert_eq!(received, sent, "party {party}: ReLU");
        assert_eq!(
            (requests, dealer),
            (1, n as u64 * relu_key),
            "party {party}: ReLU"
        );
        assert_eq!(
            reqs,
            &[Request::Relu { n, m: fss_width(F) }],
            "party {party}"
        );
    }
    assert_eq!(ReluKey::size(FSS_WIDTH), 2157);
    println!(
        "FSS is_negative: 1 round, 8 bytes per element per party online, {key} bytes per \
         element to each party from the dealer; ReLU: 1 round, 8 bytes, {relu_key} bytes"
    );
}

#[test]
fn the_engine_says_which_comparison_it_uses() {
    let [a, b] = run_in_process(&fss(43), |e: &mut LocalMpc| e.comparison());
    assert_eq!((a, b), (Comparison::Fss, Comparison::Fss));
    let [a, _] = run_in_process(&config(43), |e: &mut LocalMpc| e.comparison());
    assert_eq!(a, Comparison::A2b);
}

/// The one-message FSS gates whose views are tested.
#[derive(Clone, Copy)]
enum Gate {
    /// `is_negative`: the DReLU gate.
    Sign,
    /// ReLU: the ReLU gate.
    Relu,
    /// Hard tanh: the spline gate (no truncation follows it).
    Clamp,
}

/// Both parties' received words of `gate` on `n` copies of `v` (FSS, dealer seed
/// `seed`), and the values opened.
fn masked_inputs(v: f64, n: usize, seed: u8, gate: Gate) -> ([Vec<u64>; 2], Vec<u64>) {
    let x = enc(&vec![v; n]);
    let mut rng = ChaCha20Rng::seed_from_u64(7000 + seed as u64 + (v.to_bits() << 8));
    let shares = share(&x, &mut rng);
    let views = run_in_process(&fss(seed), |e: &mut LocalMpc| {
        e.record_view();
        let mine = &shares[e.party().index()];
        let mut y = mine.clone();
        let mut s = vec![Z64::ZERO; 3 * n];
        match gate {
            Gate::Relu => e.relu(&mut y, &mut s).unwrap(),
            Gate::Sign => e.is_negative(mine, &mut y).unwrap(),
            Gate::Clamp => {
                let (g, rest) = s.split_at_mut(n);
                e.clamp(&mut y, -1.0, 1.0, Some(g), rest).unwrap()
            }
        }
        e.take_view()
    });
    for v in &views {
        let tags: Vec<u32> = messages(v).iter().map(|m| m.0).collect();
        assert_eq!(
            tags,
            [Tag::MaskedInput as u32],
            "one message: the masked input"
        );
    }
    let opened = opened_values(&views[0], &views[1]);
    (views.map(|v| payload_words(&v)), opened)
}

/// What each server receives in the FSS comparison (the other's share of `x + r_in`) and
/// what both open (`x + r_in`) look uniform whatever `x` is: here every input 0 against
/// every input -3.25, so that a mask reused or missing would show as repeated opened
/// values. With a fixed dealer seed, every opened value is distinct: each mask serves one
/// opening.
#[test]
fn fss_openings_are_uniform_whatever_the_input_and_each_mask_serves_once() {
    openings_are_uniform_and_each_mask_serves_once(Gate::Sign);
}

/// As [`fss_openings_are_uniform_whatever_the_input_and_each_mask_serves_once`], for
/// ReLU on the dealer's ReLU keys: its one message is the masked input, uniform for the
/// input 0 (every output 0, the boundary) as for -3.25 (every output clipped), and no
/// mask serves twice; the output itself is never opened.
#[test]
fn fss_relu_openings_are_uniform_whatever_the_input_and_each_mask_serves_once() {
    openings_are_uniform_and_each_mask_serves_once(Gate::Relu);
}

/// As [`fss_openings_are_uniform_whatever_the_input_and_each_mask_serves_once`], for the
/// spline gate (hard tanh with its derivative): one message, the masked input, uniform
/// for 0 (inside) as for -3.25 (clipped); the knots are evaluated locally.
#[test]
fn fss_spline_openings_are_uniform_whatever_the_input_and_each_mask_serves_once() {
    openings_are_uniform_and_each_mask_serves_once(Gate::Clamp);
}

fn openings_are_uniform_and_each_mask_serves_once(gate: Gate) {
    let n = 8192;
    let (zero, opened_zero) = masked_inputs(0.0, n, 60, gate);
    let (neg, opened_neg) = masked_inputs(-3.25, n, 61, gate);
    for (name, opened) in [("zero", &opened_zero), ("-3.25", &opened_neg)] {
        assert_eq!(opened.len(), n);
        let mut seen = std::collections::HashSet::new();
        assert!(
            opened.iter().all(|w| seen.insert(*w)),
            "{name}: an opened value repeats: a mask served twice"
        );
        assert_balanced(&format!("opened, {name}"), opened);
    }
    let chi2 = byte_chi2(&opened_zero, &opened_neg);
    assert!(
        chi2 < 347.0,
        "opened values: byte histograms differ: chi2 = {chi2}"
    );
    for party in 0..2 {
        let (a, b) = (&zero[party], &neg[party]);
        assert_eq!(
            a.len(),
            b.len(),
            "party {party}: the view's shape is public"
        );
        assert_balanced(&format!("party {party}, zero"), a);
        assert_balanced(&format!("party {party}, -3.25"), b);
        let chi2 = byte_chi2(a, b);
        assert!(
            chi2 < 347.0,
            "party {party}: byte histograms differ: chi2 = {chi2}"
        );
    }
}

/// The view test of every protocol of training and prediction (products, truncations,
/// ReLU, a max-of-lines softmax with its reciprocal, the arg-max), with every
/// comparison through FSS keys.
#[test]
fn both_views_with_the_fss_comparison_are_uniform_and_never_repeat_a_mask() {
    views_are_uniform_and_never_repeat_a_mask(fss);
}
