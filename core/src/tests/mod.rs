//! Cross-module tests: fused `Plain` overrides against the generic composites, every
//! approximation on `Float` against its reference and on `Plain` against `Float` within
//! derived tolerances, and no panic for any bit pattern. Softmax and its gradient are in
//! [`softmax_xent`].
extern crate std;
use crate::approx::{ExpApprox, SigmoidApprox, TanhApprox, EXP_DOMAIN};
use crate::engine::generic;
use crate::softmax::{self, GradMode, Labelled, Rows, Softmax, XentOut};
use crate::{Engine, Float, Plain, Z64};
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

const FRACS: [u32; 6] = [8, 10, 13, 16, 20, 24];

fn plain(f: u32) -> Plain {
    Plain::with_frac_bits(f).unwrap()
}

fn enc(p: &Plain, xs: &[f64]) -> Vec<Z64> {
    let mut v = vec![Z64::ZERO; xs.len()];
    p.encode_slice(xs, &mut v).unwrap();
    v
}

fn dec(p: &Plain, v: &[Z64]) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    p.decode_slice(v, &mut out);
    out
}

fn grid(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    let n = ((hi - lo) / step).round() as usize;
    (0..=n).map(|i| lo + i as f64 * step).collect()
}

fn eval_float(a: ExpApprox, xs: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut e = Float::<f64>::new();
    let mut out = vec![0.0; xs.len()];
    let mut d = vec![0.0; xs.len()];
    let mut s = vec![0.0; a.scratch_len(xs.len())];
    a.eval(&mut e, xs, &mut out, &mut s).unwrap();
    a.derivative(&mut e, xs, &mut d, &mut s).unwrap();
    (out, d)
}

fn eval_plain(a: ExpApprox, p: &mut Plain, xs: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let x = enc(p, xs);
    let mut out = vec![Z64::ZERO; xs.len()];
    let mut d = vec![Z64::ZERO; xs.len()];
    let mut s = vec![Z64::ZERO; a.scratch_len(xs.len())];
    a.eval(p, &x, &mut out, &mut s).unwrap();
    a.derivative(p, &x, &mut d, &mut s).unwrap();
    (dec(p, &out), dec(p, &d))
}

/// Error bound of Horner's rule in fixed point at `x` (ulp = 1): coefficients and input
/// rounded by 1/2, each truncation by 1.
fn horner_tol(coeffs: &[f64], x: f64) -> f64 {
    let k = coeffs.len() - 1;
    let (mut y, mut err) = (coeffs[k], 0.5);
    for i in (0..k).rev() {
        err = err * (x.abs() + 0.5) + y.abs() * 0.5 + 1.5;
        y = y * x + coeffs[i];
    }
    err
}

/// Error bound of `(1 + x/256)^256` by squaring (ulp = 1) and of its derivative.
fn limit_tol(x: f64) -> (f64, f64) {
    let (mut v, mut err) = (1.0 + x / 256.0, 1.5 + 0.5 / 256.0);
    let (mut g, mut gerr) = (v, err);
    for i in 0..8 {
        err = 2.0 * v.abs() * err + err * err + 1.0;
        v *= v;
        if i < 7 {
            gerr = gerr * v.abs() + g.abs() * err + gerr * err + 1.0;
            g *= v;
        }
    }
    (err, gerr)
}

/// Plain-versus-Float tolerance of an e^x approximation at `x`, in ulps: value, derivative.
fn exp_tol(a: ExpApprox, x: f64) -> (f64, f64) {
    if let Some(l) = a.lines() {
        let amax = l.slopes().iter().fold(0.0f64, |m, s| m.max(s.abs()));
        return (1.5 + x.abs() / 2.0 + amax / 2.0, 0.5);
    }
    if let Some(c) = a.coefficients() {
        return (horner_tol(c, x), horner_tol(&c[..c.len() - 1], x));
    }
    match a {
        ExpApprox::Limit8 => limit_tol(x),
        _ => {
            let v = (0.5 * libm::exp(x) + 0.5) * (1.0 + 1e-9);
            (v + 1e-9, v + 1e-9)
        }
    }
}

#[test]
fn float_engine_matches_each_reference() {
    let xs = grid(EXP_DOMAIN.0, EXP_DOMAIN.1, 1.0 / 64.0);
    for a in ExpApprox::ALL {
        let (v, d) = eval_float(a, &xs);
        for (i, &x) in xs.iter().enumerate() {
            let (rv, rd) = (a.reference(x), a.reference_derivative(x));
            assert!(
                (v[i] - rv).abs() <= 1e-12 * (1.0 + rv.abs()),
                "{} at {x}",
                a.name()
            );
            // At a kink the engine may pick the other line; skip exact ties.
            let tie = a.lines().is_some_and(|_| {
                a.reference_derivative(x - 1e-9) != a.reference_derivative(x + 1e-9)
            });
            if !tie {
                assert!(
                    (d[i] - rd).abs() <= 1e-12 * (1.0 + rd.abs()),
                    "{}' at {x}: {} vs {rd}",
                    a.name(),
                    d[i]
                );
            }
        }
    }
}

#[test]
fn plain_matches_float_within_derived_tolerance() {
    let xs = grid(EXP_DOMAIN.0, EXP_DOMAIN.1, 1.0 / 64.0 + 1.0 / 4096.0);
    for f in FRACS {
        let mut p = plain(f);
        let ulp = crate::fixed::pow2(-(f as i32));
        for a in ExpApprox::ALL {
            let (fv, fd) = eval_float(a, &xs);
            let (pv, pd) = eval_plain(a, &mut p, &xs);
            for (i, &x) in xs.iter().enumerate() {
                let (tv, td) = exp_tol(a, x);
                assert!(
                    (pv[i] - fv[i]).abs() <= tv * ulp,
                    "{} f={f} x={x}: plain {} float {} tol {}",
                    a.name(),
                    pv[i],
                    fv[i],
                    tv * ulp
                );
                // Away from kinks (where rounding may pick the other line): the derivative is
                // a slope or a polynomial.
                let kink = a.lines().is_some_and(|l| {
                    let best = l.eval(x);
                    (0..l.parts()).any(|j| {
                        let (s, b) = l.line(j);
                        s != l.eval_with_slope(x).1 && best - (s * x + b) <= 2.0 * tv * ulp
                    })
                });
                if !kink {
                    assert!(
                        (pd[i] - fd[i]).abs() <= td * ulp,
                        "{}' f={f} x={x}: plain {} float {} tol {}",
                        a.name(),
                        pd[i],
                        fd[i],
                        td * ulp
                    );
                }
            }
        }
    }
}

#[test]
fn tanh_and_sigmoid_plain_match_float() {
    let xs = grid(-8.0, 8.0, 1.0 / 32.0 + 1.0 / 4096.0);
    let n = xs.len();
    for f in FRACS {
        let mut p = plain(f);
        let ulp = crate::fixed::pow2(-(f as i32));
        let x = enc(&p, &xs);
        for t in TanhApprox::ALL {
            let mut fl = Float::<f64>::new();
            let (mut fo, mut po) = (vec![0.0; n], vec![Z64::ZERO; n]);
            let (mut fs, mut ps) = (
                vec![0.0; t.scratch_len(n)],
                vec![Z64::ZERO; t.scratch_len(n)],
            );
            t.eval(&mut fl, &xs, &mut fo, &mut fs).unwrap();
            t.eval(&mut p, &x, &mut po, &mut ps).unwrap();
            for (i, v) in dec(&p, &po).iter().enumerate() {
                assert!((v - fo[i]).abs() <= ulp, "{} f={f}", t.name());
                assert!((fo[i] - t.reference(xs[i])).abs() < 1e-12);
            }
            t.derivative(&mut fl, &xs, &mut fo, &mut fs).unwrap();
            t.derivative(&mut p, &x, &mut po, &mut ps).unwrap();
            for (i, v) in dec(&p, &po).iter().enumerate() {
                assert!(
                    (v - fo[i]).abs() <= 4.0 * ulp,
                    "{}' f={f} x={}",
                    t.name(),
                    xs[i]
                );
            }
        }
        let sigs = [
            SigmoidApprox::SecureMl,
            SigmoidApprox::Exact,
            SigmoidApprox::Exp(ExpApprox::Pwl(4)),
            SigmoidApprox::Exp(ExpApprox::Taylor(3)),
            SigmoidApprox::Exp(ExpApprox::Limit8),
            SigmoidApprox::Exp(ExpApprox::Exact),
        ];
        for s in sigs {
            let mut fl = Float::<f64>::new();
            let (mut fo, mut po) = (vec![0.0; n], vec![Z64::ZERO; n]);
            let (mut fs, mut ps) = (
                vec![0.0; s.scratch_len(n)],
                vec![Z64::ZERO; s.scratch_len(n)],
            );
            s.eval(&mut fl, &xs, &mut fo, &mut fs).unwrap();
            s.eval(&mut p, &x, &mut po, &mut ps).unwrap();
            for (i, v) in dec(&p, &po).iter().enumerate() {
                let xi = xs[i];
                assert!(
                    (fo[i] - s.reference(xi)).abs() < 1e-9,
                    "{s:?} float at {xi}"
                );
                let etol = match s {
                    SigmoidApprox::Exp(a) => {
                        let sg = fo[i];
                        exp_tol(a, -xi).0 * sg * sg + 8.0
                    }
                    _ => 1.0,
                };
                assert!(
                    (v - fo[i]).abs() <= etol * ulp,
                    "{s:?} f={f} x={xi}: {v} vs {}",
                    fo[i]
                );
            }
        }
    }
}

fn random_safe(f: u32, seed: u64, n: usize, scale: f64) -> Vec<f64> {
    // A small deterministic generator (splitmix64) keeps core's tests free of std RNGs.
    let mut s = seed ^ (f as u64) << 32;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

#[test]
fn fused_plain_composites_equal_generic() {
    for f in FRACS {
        let mut p = plain(f);
        let mut xs = random_safe(f, 7, 4000, 12.0);
        xs.extend(grid(-8.0, 8.0, 1.0 / 16.0));
        let x = enc(&p, &xs);
        let n = x.len();
        for a in ExpApprox::ALL {
            if let Some(l) = a.lines() {
                let mut s = vec![Z64::ZERO; generic::max_of_lines_scratch(&l, n)];
                let (mut o1, mut g1, mut o2, mut g2) = (
                    vec![Z64::ZERO; n],
                    vec![Z64::ZERO; n],
                    vec![Z64::ZERO; n],
                    vec![Z64::ZERO; n],
                );
                p.max_of_lines(&l, &x, &mut o1, Some(&mut g1), &mut s)
                    .unwrap();
                generic::max_of_lines(&mut p, &l, &x, &mut o2, Some(&mut g2), &mut s).unwrap();
                assert_eq!(o1, o2, "{} f={f}", a.name());
                assert_eq!(g1, g2, "{}' f={f}", a.name());
            }
            if let Some(c) = a.coefficients() {
                let mut s = vec![Z64::ZERO; n];
                let (mut o1, mut o2) = (vec![Z64::ZERO; n], vec![Z64::ZERO; n]);
                p.polynomial(c, &x, &mut o1, &mut s).unwrap();
                generic::polynomial(&mut p, c, &x, &mut o2, &mut s).unwrap();
                assert_eq!(o1, o2, "{} f={f}", a.name());
            }
        }
        let (mut r1, mut r2) = (x.clone(), x.clone());
        let mut s = vec![Z64::ZERO; 3 * n];
        p.relu(&mut r1, &mut s).unwrap();
        generic::relu(&mut p, &mut r2, &mut s).unwrap();
        assert_eq!(r1, r2);
    }
}

#[test]
fn fused_plain_max_tree_equals_generic() {
    let mut p = plain(13);
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed ^ (seed >> 29)
    };
    for kk in [1usize, 2, 3, 4, 5, 6, 7, 9, 16, 25] {
        for n in [0usize, 1, 13, 200] {
            // Ties (values from a set of 5), extremes whose ring differences wrap, and
            // arbitrary ring elements.
            let v: Vec<Z64> = (0..kk * n)
                .map(|_| match next() % 4 {
                    0 => Z64(next() % 5),
                    1 => Z64(i64::MIN as u64),
                    2 => Z64(i64::MAX as u64),
                    _ => Z64(next()),
                })
                .collect();
            let mut scratch = vec![Z64::ZERO; generic::max_tree_scratch(kk, n)];
            for with_sel in [false, true] {
                let (mut v1, mut v2) = (v.clone(), v.clone());
                let bits = generic::max_tree_bits(kk) * n;
                let (mut s1, mut s2) = (vec![Z64(9); bits], vec![Z64(9); bits]);
                p.max_tree(&mut v1, kk, with_sel.then_some(&mut s1[..]), &mut scratch)
                    .unwrap();
                generic::max_tree(
                    &mut p,
                    &mut v2,
                    kk,
                    with_sel.then_some(&mut s2[..]),
                    &mut scratch,
                )
                .unwrap();
                assert_eq!(v1[..n], v2[..n], "maxima kk={kk} n={n}");
                assert_eq!(s1, s2, "bits kk={kk} n={n} sel={with_sel}");
            }
        }
    }
}

#[test]
fn fused_reciprocal_equals_generic_and_is_accurate() {
    // f = 30, the most whose Newton products stay in the ring, also reaches the generic
    // code's shift for bit length 62 (a result of 1 ulp or more only there).
    for f in FRACS.into_iter().chain([30]) {
        let mut p = plain(f);
        let g = softmax::guard_bits(f);
        let fx = p.format();
        // Positive values across the whole range, negative ones and zero.
        let mut raw: Vec<i64> = (0..62)
            .flat_map(|k| [1i64 << k, (1i64 << k) + 1, (1i64 << k) - 1])
            .collect();
        raw.extend(
            random_safe(f, 3, 600, 1.0)
                .iter()
                .map(|u| (u.abs() * (1u64 << 61) as f64) as i64),
        );
        raw.extend([0, -1, -5, -(1 << 40), -(1 << 61), i64::MIN, i64::MAX]);
        // Bit length 62, the top of the domain.
        raw.extend([(1 << 62) - 1, 3 << 60]);
        let x: Vec<Z64> = raw.iter().map(|&r| Z64::from_signed(r)).collect();
        let n = x.len();
        for extra in [0, g] {
            let (mut o1, mut o2) = (vec![Z64::ZERO; n], vec![Z64::ZERO; n]);
            let mut s = vec![Z64::ZERO; generic::reciprocal_scratch(n)];
            let (mut z1, mut z2) = (vec![Z64::ZERO; n], vec![Z64::ZERO; n]);
            p.reciprocal(&x, &mut o1, Some(&mut z1), extra, &mut s)
                .unwrap();
            generic::reciprocal(&mut p, &x, &mut o2, Some(&mut z2), extra, &mut s).unwrap();
            assert_eq!(o1, o2, "f={f} g={extra}");
            assert_eq!(z1, z2, "f={f} g={extra}: the empty flags");
            for (i, &r) in raw.iter().enumerate() {
                // Empty (every x <= 0 but -2^63): flagged, and the result is 0.
                let empty = r <= 0 && r != i64::MIN;
                assert_eq!(z1[i], Z64(empty as u64), "f={f} x={r}");
                if empty {
                    assert_eq!(o1[i], Z64::ZERO, "f={f} x={r}");
                }
                if r <= 0 || r >= 1 << 62 {
                    continue;
                }
                let v = fx.decode(Z64::from_signed(r));
                let want = crate::fixed::pow2(extra as i32) / v;
                // Representable results only.
                if want * crate::fixed::pow2(f as i32) >= (1u64 << 61) as f64 {
                    continue;
                }
                let got = fx.decode(o1[i]);
                let ulp = fx.ulp();
                assert!(
                    (got - want).abs() <= want * 8.0 * ulp + 2.0 * ulp,
                    "f={f} g={extra} x={v}: {got} vs {want}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_panic_for_any_bit_pattern(bits in proptest::collection::vec(any::<u64>(), 1..40), f in 1u32..=40) {
        let mut p = plain(f);
        let x: Vec<Z64> = bits.iter().map(|&b| Z64(b)).collect();
        let n = x.len();
        let mut out = vec![Z64::ZERO; n];
        let mut d = vec![Z64::ZERO; n];
        for a in ExpApprox::ALL {
            let mut s = vec![Z64::ZERO; a.scratch_len(n)];
            a.eval(&mut p, &x, &mut out, &mut s).unwrap();
            a.derivative(&mut p, &x, &mut d, &mut s).unwrap();
            let sg = SigmoidApprox::Exp(a);
            let mut s = vec![Z64::ZERO; sg.scratch_len(n)];
            sg.eval(&mut p, &x, &mut out, &mut s).unwrap();
            sg.derivative(&mut p, &x, &mut d, &mut s).unwrap();
            let cfg = Softmax { exp: a, subtract_max: bits[0] & 1 == 1 };
            let mut s = vec![Z64::ZERO; softmax::backward_scratch(cfg, 1, n)];
            softmax::softmax(&mut p, cfg, &x, 1, n, &mut out, &mut s).unwrap();
            softmax::softmax_xent_backward(&mut p, cfg, GradMode::Exact, Labelled { x: &x, y: &x }, Rows { rows: 1, cols: n }, XentOut { p: &mut out, grad: &mut d }, &mut s).unwrap();
        }
        for t in TanhApprox::ALL {
            let mut s = vec![Z64::ZERO; t.scratch_len(n)];
            t.eval(&mut p, &x, &mut out, &mut s).unwrap();
            t.derivative(&mut p, &x, &mut d, &mut s).unwrap();
        }
        let g = softmax::guard_bits(f);
        let mut s = vec![Z64::ZERO; generic::reciprocal_scratch(n)];
        p.reciprocal(&x, &mut out, None, g, &mut s).unwrap();
        generic::reciprocal(&mut p, &x, &mut out, None, g, &mut s).unwrap();
    }

    #[test]
    fn plain_linear_ops_are_ring_ops(a in any::<u64>(), b in any::<u64>(), f in 1u32..=40) {
        let mut p = plain(f);
        let mut x = [Z64(a)];
        p.add_assign(&mut x, &[Z64(b)]).unwrap();
        prop_assert_eq!(x[0], Z64(a) + Z64(b));
        p.sub_assign(&mut x, &[Z64(b)]).unwrap();
        prop_assert_eq!(x[0], Z64(a));
        let mut out = [Z64::ZERO];
        p.mul(&[Z64(a)], &[Z64(b)], &mut out).unwrap();
        prop_assert_eq!(out[0], Z64(a) * Z64(b));
    }
}

/// The weight gradients of parts of a batch, left unscaled, summed in the ring and rescaled
/// once, equal the whole batch's bit for bit (dense and convolution, with `dx` asked for,
/// parts of unequal size); the other outputs are per sample or exact ring sums.
#[test]
fn unscaled_weight_gradients_of_parts_sum_to_the_whole_batch() {
    use crate::layers::{Conv2d, Dense, Grads, Image};
    let enc = plain(13);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut vals = |n: usize| -> Vec<Z64> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                enc.public((rng % 20_001) as f64 / 10_000.0 - 1.0)
            })
            .collect()
    };
    let parts = [0usize, 2, 3, 7];
    let batch = *parts.last().unwrap();

    let d = Dense::new(6, 4);
    let (x, w, dy) = (vals(batch * 6), vals(d.weights()), vals(batch * 4));
    let conv = Conv2d::new(2, 3, 3, 1, 1);
    let img = Image::new(batch, 2, 5, 5);
    let (cx, cw, cdy) = (
        vals(img.len()),
        vals(conv.weights()),
        vals(conv.output(img).len()),
    );
    let mut e = plain(13);

    let mut s = vec![Z64::ZERO; d.backward_scratch(batch)];
    let (mut dx, mut dw, mut db) = (
        vec![Z64::ZERO; batch * 6],
        vec![Z64::ZERO; 24],
        vec![Z64::ZERO; 4],
    );
    d.backward(
        &mut e,
        &x,
        &w,
        batch,
        Grads {
            dy: &dy,
            dx: Some(&mut dx),
            dw: &mut dw,
            db: &mut db,
        },
        &mut s,
    )
    .unwrap();
    let mut cs = vec![Z64::ZERO; conv.backward_scratch(img)];
    let mut cdx = vec![Z64::ZERO; img.len()];
    let (mut cdw, mut cdb) = (vec![Z64::ZERO; conv.weights()], vec![Z64::ZERO; 3]);
    conv.backward(
        &mut e,
        &cx,
        &cw,
        img,
        Grads {
            dy: &cdy,
            dx: Some(&mut cdx),
            dw: &mut cdw,
            db: &mut cdb,
        },
        &mut cs,
    )
    .unwrap();

    let (mut sdw, mut sdb) = (vec![Z64::ZERO; 24], vec![Z64::ZERO; 4]);
    let (mut scdw, mut scdb) = (vec![Z64::ZERO; conv.weights()], vec![Z64::ZERO; 3]);
    let (mut sdx, mut scdx) = (Vec::new(), Vec::new());
    let (ipl, opl) = (img.len() / batch, conv.output(img).len() / batch);
    for r in parts.windows(2) {
        let nb = r[1] - r[0];
        let (mut pdx, mut pdw, mut pdb) = (
            vec![Z64::ZERO; nb * 6],
            vec![Z64::ZERO; 24],
            vec![Z64::ZERO; 4],
        );
        d.backward_unscaled(
            &mut e,
            &x[r[0] * 6..r[1] * 6],
            &w,
            nb,
            Grads {
                dy: &dy[r[0] * 4..r[1] * 4],
                dx: Some(&mut pdx),
                dw: &mut pdw,
                db: &mut pdb,
            },
            &mut s,
        )
        .unwrap();
        e.add_assign(&mut sdw, &pdw).unwrap();
        e.add_assign(&mut sdb, &pdb).unwrap();
        sdx.extend(pdx);
        let pimg = Image::new(nb, 2, 5, 5);
        let mut pcs = vec![Z64::ZERO; conv.backward_scratch(pimg)];
        let mut pcdx = vec![Z64::ZERO; pimg.len()];
        let (mut pcdw, mut pcdb) = (vec![Z64::ZERO; conv.weights()], vec![Z64::ZERO; 3]);
        conv.backward_unscaled(
            &mut e,
            &cx[r[0] * ipl..r[1] * ipl],
            &cw,
            pimg,
            Grads {
                dy: &cdy[r[0] * opl..r[1] * opl],
                dx: Some(&mut pcdx),
                dw: &mut pcdw,
                db: &mut pcdb,
            },
            &mut pcs,
        )
        .unwrap();
        e.add_assign(&mut scdw, &pcdw).unwrap();
        e.add_assign(&mut scdb, &pcdb).unwrap();
        scdx.extend(pcdx);
    }
    e.rescale(&mut sdw).unwrap();
    e.rescale(&mut scdw).unwrap();
    assert_eq!((sdw, sdb, sdx), (dw, db, dx), "dense");
    assert_eq!((scdw, scdb, scdx), (cdw, cdb, cdx), "conv");
}

mod health;
mod softmax_xent;

/// The secure arg-max composite on Plain: the column of each row's largest value, ties to
/// the first column in these rows; the generic tree and Plain's fused tree agree.
#[test]
fn argmax_rows_finds_each_rows_largest_column() {
    let mut p = plain(13);
    let rows: [&[f64]; 4] = [
        &[0.1, 0.5, -2.0, 0.5, 0.0],
        &[3.0, -1.0, 2.9, 0.0, 0.0],
        &[-5.0, -4.0, -3.0, -2.0, -1.0],
        &[0.0, 0.0, 0.0, 0.0, 0.0],
    ];
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    let v = enc(&p, &flat);
    let mut out = vec![Z64::ZERO; 4];
    let mut sc = vec![Z64::ZERO; generic::argmax_rows_scratch(4, 5)];
    generic::argmax_rows(&mut p, &v, 4, 5, &mut out, &mut sc).unwrap();
    let got: Vec<i64> = out.iter().map(|v| v.to_signed()).collect();
    assert_eq!(got, vec![1, 0, 4, 0]);
}

proptest! {
    /// Distinct values: the arg-max of every row, for any number of columns.
    #[test]
    fn argmax_rows_matches_plaintext(
        cols in 1usize..=12,
        seed in any::<u64>(),
    ) {
        let rows = 7;
        let mut p = plain(13);
        // Distinct values: a permutation of multiples of 1/8 per row.
        let mut flat = Vec::new();
        let mut want = Vec::new();
        for r in 0..rows {
            let row: Vec<f64> = (0..cols)
                .map(|c| ((c as u64 * 7919 + seed.rotate_left(r as u32)) % 1009) as f64 / 8.0 + c as f64 / 4096.0)
                .collect();
            let best = (0..cols).fold(0, |b, c| if row[c] > row[b] { c } else { b });
            want.push(best as i64);
            flat.extend(row);
        }
        let v = enc(&p, &flat);
        let mut out = vec![Z64::ZERO; rows];
        let mut sc = vec![Z64::ZERO; generic::argmax_rows_scratch(rows, cols)];
        generic::argmax_rows(&mut p, &v, rows, cols, &mut out, &mut sc).unwrap();
        let got: Vec<i64> = out.iter().map(|v| v.to_signed()).collect();
        prop_assert_eq!(got, want);
    }
}
