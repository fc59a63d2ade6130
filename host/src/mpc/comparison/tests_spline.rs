//! The spline gate: its public data equals `Plain` on every input of its range, for every
//! max-of-lines set of the kernel and every precision; on two parties it is one round
//! (plus the truncation) within the truncation's ulp of `Plain`, with `Plain`'s slope.

use super::super::tests::{
    config, config_at, enc, on_mpc, on_plain, on_plain_at, uniform, Case, Outputs, F,
};
use super::*;
use crate::mpc::dealer::Request;
use crate::mpc::fss::ReluKey;
use crate::mpc::local::LocalMpc;
use crate::mpc::{run_in_process, share, LocalConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ringnn_core::approx::{lines, ExpApprox, Lines};
use ringnn_core::engine::recip::RecipPieces;
use ringnn_core::engine::{fss_width, generic};
use ringnn_core::{Engine, FracBits, Plain, Z64};

fn fss(seed: u8) -> LocalConfig {
    LocalConfig {
        comparison: Comparison::Fss,
        ..config(seed)
    }
}

/// Every max-of-lines set of the kernel, by name.
fn sets() -> Vec<(&'static str, Lines)> {
    ExpApprox::ALL
        .iter()
        .filter_map(|a| a.lines().map(|l| (a.name(), l)))
        .collect()
}

/// Points that probe a spline: every knot and its neighbours (300 on each side), the
/// ends of its range and their neighbours inside, small values, and random ones over
/// the whole range and over the values softmax meets (|x| < 40).
fn probes(s: &Spline, f: u32, rng: &mut ChaCha20Rng) -> Vec<Z64> {
    let b = s.bound();
    let mut xs: Vec<i64> = vec![0, 1, -1, b, -b, b - 1, 1 - b];
    for &k in s.knots() {
        xs.extend(
            (-300..=300)
                .map(|d| k.saturating_add(d))
                .filter(|x| x.abs() <= b),
        );
    }
    xs.extend((0..2000).map(|_| rng.random_range(-b..=b)));
    let small = (40i64 << f).min(b);
    xs.extend((0..2000).map(|_| rng.random_range(-small..=small)));
    xs.into_iter().map(Z64::from_signed).collect()
}

#[test]
fn the_spline_of_every_set_equals_plains_max_of_lines_at_every_precision() {
    let mut rng = ChaCha20Rng::seed_from_u64(90);
    let mut knots_at_13 = Vec::new();
    let mut no_range = Vec::new();
    let mut extra = Vec::new();
    for (name, l) in sets() {
        for f in 1..=40 {
            let fb = FracBits::new(f).unwrap();
            let s = match Spline::max_of_lines(&l, fb) {
                Ok(s) => s,
                Err(SplineError::NoRange { .. }) if f >= 28 => {
                    no_range.push(format!("{name}@{f}"));
                    continue;
                }
                Err(e) => panic!("{name} f={f}: {e}"),
            };
            assert_eq!(s.pieces().len(), s.knots().len() + 1);
            assert!(s.knots().windows(2).all(|w| w[0] < w[1]), "{name} f={f}");
            if f == 13 {
                knots_at_13.push(format!("{name}: {}", s.knots().len()));
            }
            if s.knots().len() + 1 != l.parts() {
                extra.push(format!("{name}@{f}: {} knots", s.knots().len()));
            }
            let xs = probes(&s, f, &mut rng);
            let n = xs.len();
            let mut p = Plain::new(fb);
            let (mut v, mut g, mut v_only) =
                (vec![Z64::ZERO; n], vec![Z64::ZERO; n], vec![Z64::ZERO; n]);
            let mut scratch = vec![Z64::ZERO; generic::max_of_lines_scratch(&l, n)];
            p.max_of_lines(&l, &xs, &mut v, Some(&mut g), &mut scratch)
                .unwrap();
            p.max_of_lines(&l, &xs, &mut v_only, None, &mut scratch)
                .unwrap();
            assert_eq!(v, v_only, "{name} f={f}: Plain's two paths");
            for i in 0..n {
                let (sv, sg) = s.eval(xs[i]);
                assert_eq!(
                    (sv, sg),
                    (v[i], g[i]),
                    "{name} f={f} x={} (raw): spline against Plain",
                    xs[i].to_signed()
                );
            }
        }
    }
    // The paper's set at f = 13 needs no knot beyond its three crossings.
    let pwl4 = Spline::max_of_lines(&lines::PAPER_PWL4, FracBits::new(13).unwrap()).unwrap();
    assert_eq!(pwl4.knots().len(), 3, "{:?}", pwl4.knots());
    println!("knots at f = 13: {}", knots_at_13.join(", "));
    println!("no range (tree instead): {}", no_range.join(" "));
    println!("not one knot per crossing: {}", extra.join(", "));
}

#[test]
fn the_clamp_spline_equals_plains_clamp_with_its_derivative() {
    let mut rng = ChaCha20Rng::seed_from_u64(91);
    for (lo, hi) in [(-1.0, 1.0), (0.0, 1.0), (-0.5, 0.5), (0.25, 0.25)] {
        for f in 1..=40 {
            let fb = FracBits::new(f).unwrap();
            let s = Spline::clamp(lo, hi, fb).unwrap();
            let xs = probes(&s, f, &mut rng);
            let n = xs.len();
            let mut p = Plain::new(fb);
            let (mut v, mut g) = (xs.clone(), vec![Z64::ZERO; n]);
            let mut scratch = vec![Z64::ZERO; 4 * n];
            p.clamp(&mut v, lo, hi, Some(&mut g), &mut scratch).unwrap();
            for i in 0..n {
                assert_eq!(
                    s.eval(xs[i]),
                    (v[i], g[i]),
                    "clamp({lo}, {hi}) f={f} x={:?}",
                    xs[i]
                );
            }
        }
    }
    assert_eq!(
        Spline::clamp(1.0, -1.0, FracBits::new(13).unwrap()),
        Err(SplineError::EmptyClamp)
    );
}

/// Max-of-lines with its slope through the engine (the fitted 7-part set and the paper's
/// 4-part one), and hard tanh with its derivative.
struct Pieces(Lines);
impl Case for Pieces {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let n = x[0].len();
        let mut scratch = vec![Z64::ZERO; generic::max_of_lines_scratch(&self.0, n).max(3 * n)];
        let (mut v, mut g) = (vec![Z64::ZERO; n], vec![Z64::ZERO; n]);
        e.max_of_lines(&self.0, &x[0], &mut v, Some(&mut g), &mut scratch)?;
        let (mut t, mut tg) = (x[0].clone(), vec![Z64::ZERO; n]);
        e.clamp(&mut t, -1.0, 1.0, Some(&mut tg), &mut scratch)?;
        Ok(vec![v, g, t, tg])
    }
}

#[test]
fn the_fss_spline_is_plain_up_to_the_truncation_and_keeps_plains_slope() {
    let mut rng = ChaCha20Rng::seed_from_u64(92);
    let fb = FracBits::new(F).unwrap();
    for (name, l) in sets() {
        let s = Spline::max_of_lines(&l, fb).unwrap();
        let mut a = uniform(&mut rng, 300, -30.0, 10.0);
        a.extend([0.0, 1.0, -1.0]);
        let mut x = enc(&a);
        // Every knot and its neighbours: where the winner changes.
        for &k in s.knots() {
            x.extend((-3..=3).map(|d| Z64::from_signed(k + d)));
        }
        let inputs = [x];
        let plain = on_plain(&Pieces(l), &inputs);
        let mpc = on_mpc(&fss(20), &Pieces(l), &inputs);
        for (i, (&p, &m)) in plain[0].iter().zip(&mpc[0]).enumerate() {
            let d = (m - p).to_signed().abs();
            assert!(d <= 1, "{name}: value {i} is {d} ulps from Plain");
        }
        assert_eq!(plain[1], mpc[1], "{name}: the slopes");
        assert_eq!(plain[2..], mpc[2..], "{name}: hard tanh and its derivative");
    }
}

#[test]
fn an_fss_max_of_lines_costs_one_gate_and_one_truncation_whatever_its_parts() {
    let n = 1000;
    let mut rng = ChaCha20Rng::seed_from_u64(93);
    let x = enc(&uniform(&mut rng, n, -8.0, 4.0));
    let shares = share(&x, &mut rng);
    let key = ReluKey::size(fss_width(F)) as u64;
    for (name, l) in sets() {
        let counts = run_in_process(&fss(21), |e: &mut LocalMpc| {
            let (t0, o0) = (e.traffic(), e.offline());
            let mut out = vec![Z64::ZERO; n];
            let mut g = vec![Z64::ZERO; n];
            let mut s = vec![Z64::ZERO; generic::max_of_lines_scratch(&l, n)];
            e.record_requests(true);
            e.max_of_lines(
                &l,
                &shares[e.party().index()],
                &mut out,
                Some(&mut g),
                &mut s,
            )
            .unwrap();
            let reqs = e.take_requests();
            let (t1, o1) = (e.traffic(), e.offline());
            (
                t1.rounds - t0.rounds,
                t1.sent - t0.sent,
                o1.bytes - o0.bytes,
                reqs,
            )
        });
        for (party, (rounds, sent, dealer, reqs)) in counts.iter().enumerate() {
            // The masked input and the truncation: 8 bytes per element and a header each.
            assert_eq!(*rounds, 2, "{name} party {party}");
            assert_eq!(*sent, 2 * (8 * n as u64 + 8), "{name} party {party}");
            assert_eq!(reqs[0], Request::Relu { n, m: fss_width(F) }, "{name}");
            assert_eq!(reqs.len(), 2, "{name}: the keys and the truncation pairs");
            // Each party receives one ReLU key per element (party 1 also the truncation's
            // correction words).
            assert!(*dealer >= n as u64 * key, "{name} party {party}");
        }
    }
}

/// The reciprocal's pieces through the engine.
struct RecipPiecesCase;
impl Case for RecipPiecesCase {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let n = x[0].len();
        let mut scratch = vec![Z64::ZERO; generic::reciprocal_pieces_scratch(n)];
        let mut y = vec![Z64::ZERO; n];
        e.reciprocal_pieces(&x[0], &mut y, &mut scratch)?;
        Ok(vec![y])
    }
}

#[test]
fn the_reciprocal_spline_is_the_kernels_pieces() {
    for f in [1, 2, 5, 8, 9, 13, 20, 30] {
        let s = Spline::reciprocal(FracBits::new(f).unwrap());
        let rp = RecipPieces::new(f);
        assert_eq!(s.knots().len(), rp.count() - 1, "f = {f}");
        assert!(s.bound() >= 1 << (f + 1), "f = {f}");
        let top = 1i64 << (f + 1);
        let step = (top / 5000).max(1);
        for x in (0..=top)
            .step_by(step as usize)
            .chain(s.knots().iter().copied())
        {
            let x = Z64::from_signed(x);
            assert_eq!(s.eval(x).0, rp.eval(x), "f = {f} x = {}", x.to_signed());
        }
    }
}

#[test]
fn the_reciprocal_pieces_are_plain_up_to_the_truncation_on_both_comparisons() {
    // Inputs over [0, 2^(f+1)], the range the reciprocal gives them ([2^(f-1), 2^f] in
    // its domain, 0 outside it), every knot and its neighbours, and the ends.
    for f in [4, F, 18] {
        let mut rng = ChaCha20Rng::seed_from_u64(94);
        let top = 1i64 << (f + 1);
        let mut raw: Vec<i64> = (0..400).map(|_| rng.random_range(0..=top)).collect();
        let rp = RecipPieces::new(f);
        for k in 1..rp.count() {
            raw.extend([rp.knot(k) - 1, rp.knot(k), rp.knot(k) + 1]);
        }
        raw.extend([0, 1, 1 << (f - 1), (1 << f) - 1, 1 << f, top - 1, top]);
        let inputs = [raw.iter().map(|&r| Z64::from_signed(r)).collect::<Vec<_>>()];
        let cfg = |seed: u8, comparison| LocalConfig {
            comparison,
            ..config_at(f, seed)
        };
        let plain = on_plain_at(f, &RecipPiecesCase, &inputs);
        for c in Comparison::ALL {
            let mpc = on_mpc(&cfg(22, c), &RecipPiecesCase, &inputs);
            for (i, (&p, &m)) in plain[0].iter().zip(&mpc[0]).enumerate() {
                let d = (m - p).to_signed().abs();
                assert!(d <= 1, "f = {f} {c}: s = {} is {d} ulps from Plain", raw[i]);
            }
        }
    }
}

#[test]
fn fss_reciprocal_pieces_cost_one_gate_of_width_f_plus_2_and_one_truncation() {
    let n = 500;
    let mut rng = ChaCha20Rng::seed_from_u64(95);
    let x: Vec<Z64> = (0..n)
        .map(|_| Z64::from_signed(rng.random_range(1i64 << (F - 1)..=1i64 << F)))
        .collect();
    let shares = share(&x, &mut rng);
    let counts = run_in_process(&fss(23), |e: &mut LocalMpc| {
        let t0 = e.traffic();
        let mut out = vec![Z64::ZERO; n];
        let mut s = vec![Z64::ZERO; generic::reciprocal_pieces_scratch(n)];
        e.record_requests(true);
        e.reciprocal_pieces(&shares[e.party().index()], &mut out, &mut s)
            .unwrap();
        let reqs = e.take_requests();
        let t1 = e.traffic();
        (t1.rounds - t0.rounds, t1.sent - t0.sent, reqs)
    });
    for (party, (rounds, sent, reqs)) in counts.iter().enumerate() {
        assert_eq!(*rounds, 2, "party {party}");
        assert_eq!(*sent, 2 * (8 * n as u64 + 8), "party {party}");
        assert_eq!(reqs[0], Request::Relu { n, m: F + 2 });
        assert_eq!(reqs.len(), 2, "the keys and the truncation pairs");
    }
}
