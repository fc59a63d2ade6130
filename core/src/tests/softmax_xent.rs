//! Softmax and the softmax cross-entropy gradient across engines: rows sum to one, all-zero
//! rows, the exact gradient against finite differences and between engines, and the fused
//! `Plain` division against the generic one.

use super::*;

fn softmax_plain(p: &mut Plain, cfg: Softmax, xs: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let x = enc(p, xs);
    let mut out = vec![Z64::ZERO; xs.len()];
    let step = (p.batch_hint() / cols).clamp(1, rows);
    let mut s = vec![Z64::ZERO; softmax::softmax_scratch(cfg, step, cols)];
    softmax::softmax(p, cfg, &x, rows, cols, &mut out, &mut s).unwrap();
    dec(p, &out)
}

fn softmax_float(cfg: Softmax, xs: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut e = Float::<f64>::new();
    let mut out = vec![0.0; xs.len()];
    let mut s = vec![0.0; softmax::softmax_scratch(cfg, rows, cols)];
    softmax::softmax(&mut e, cfg, xs, rows, cols, &mut out, &mut s).unwrap();
    out
}

#[test]
fn softmax_rows_sum_to_one_and_match_float() {
    let (rows, cols) = (300, 10);
    for f in FRACS {
        let mut p = plain(f);
        let ulp = crate::fixed::pow2(-(f as i32));
        let xs = random_safe(f, 11, rows * cols, 4.0);
        for a in ExpApprox::ALL {
            for subtract_max in [false, true] {
                let cfg = Softmax {
                    exp: a,
                    subtract_max,
                };
                let pp = softmax_plain(&mut p, cfg, &xs, rows, cols);
                let fp = softmax_float(cfg, &xs, rows, cols);
                for r in 0..rows {
                    let row = &pp[r * cols..(r + 1) * cols];
                    let sum: f64 = row.iter().sum();
                    assert!(
                        (sum - 1.0).abs() <= (cols as f64 + 8.0) * ulp * 2.0,
                        "{} f={f} row {r}: sum {sum}",
                        a.name()
                    );
                    // Plain vs Float: E errors relative to the row sum, plus the division.
                    let xr = &xs[r * cols..(r + 1) * cols];
                    let shift = if subtract_max {
                        xr.iter().cloned().fold(f64::MIN, f64::max)
                    } else {
                        0.0
                    };
                    let s: f64 = xr.iter().map(|&x| a.reference(x - shift).max(0.0)).sum();
                    let etol: f64 = xr.iter().map(|&x| exp_tol(a, x - shift).0).sum::<f64>() * ulp;
                    for c in 0..cols {
                        let i = r * cols + c;
                        let tol =
                            if s > 0.0 { 2.0 * etol / s } else { 0.0 } + 16.0 * ulp * (1.0 + fp[i]);
                        assert!(
                            (pp[i] - fp[i]).abs() <= tol,
                            "{} f={f} max={subtract_max} [{r},{c}]: {} vs {} tol {tol}",
                            a.name(),
                            pp[i],
                            fp[i]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn all_zero_rows_are_uniform() {
    // secureml gives 0 for every negative logit.
    let cfg = Softmax::new(ExpApprox::SecureMl);
    let xs = [-1.0, -2.0, -3.0, -4.0, 1.0, 2.0, -1.0, -1.0];
    let mut p = plain(13);
    let got = softmax_plain(&mut p, cfg, &xs, 2, 4);
    assert_eq!(&got[..4], &[0.25; 4]);
    assert!((got[4] - 1.0 / 3.0).abs() < 1e-3 && (got[5] - 2.0 / 3.0).abs() < 1e-3);
    assert_eq!(&got[6..], &[0.0, 0.0]);
    let fl = softmax_float(cfg, &xs, 2, 4);
    assert_eq!(&fl[..4], &[0.25; 4]);
    // Odd Taylor far below its root: clipped to 0 everywhere, also uniform.
    let cfg = Softmax::new(ExpApprox::Taylor(3));
    let got = softmax_plain(&mut p, cfg, &[-5.0, -6.0, -7.0], 1, 3);
    for v in got {
        assert!((v - 1.0 / 3.0).abs() < 1e-3);
    }
}

fn xent_loss(cfg: Softmax, x: &[f64], label: usize) -> f64 {
    let p = softmax_float(cfg, x, 1, x.len());
    -libm::log(p[label])
}

#[test]
fn exact_gradient_matches_finite_differences_and_surrogate_is_p_minus_y() {
    let cols = 6;
    let xs = [0.3, -1.2, 1.7, 0.05, -0.4, 2.2];
    let h = 1e-6;
    for a in [
        ExpApprox::Exact,
        ExpApprox::Pwl(4),
        ExpApprox::Pwl(7),
        ExpApprox::Taylor(4),
        ExpApprox::Taylor(2),
        ExpApprox::Limit8,
        ExpApprox::Piranha,
    ] {
        let cfg = Softmax::new(a);
        for label in 0..cols {
            let mut y = vec![0.0; cols];
            y[label] = 1.0;
            let mut e = Float::<f64>::new();
            let (mut p, mut g) = (vec![0.0; cols], vec![0.0; cols]);
            let mut s = vec![0.0; softmax::backward_scratch(cfg, 1, cols)];
            softmax::softmax_xent_backward(
                &mut e,
                cfg,
                GradMode::Exact,
                Labelled { x: &xs, y: &y },
                Rows { rows: 1, cols },
                XentOut {
                    p: &mut p,
                    grad: &mut g,
                },
                &mut s,
            )
            .unwrap();
            for j in 0..cols {
                let (mut xp, mut xm) = (xs, xs);
                xp[j] += h;
                xm[j] -= h;
                let fd = (xent_loss(cfg, &xp, label) - xent_loss(cfg, &xm, label)) / (2.0 * h);
                assert!(
                    (fd - g[j]).abs() <= 1e-5 * (1.0 + fd.abs()),
                    "{} label {label} j {j}: fd {fd} vs {}",
                    a.name(),
                    g[j]
                );
            }
            softmax::softmax_xent_backward(
                &mut e,
                cfg,
                GradMode::Surrogate,
                Labelled { x: &xs, y: &y },
                Rows { rows: 1, cols },
                XentOut {
                    p: &mut p,
                    grad: &mut g,
                },
                &mut s,
            )
            .unwrap();
            for j in 0..cols {
                assert!((g[j] - (p[j] - y[j])).abs() < 1e-15);
            }
        }
    }
}

#[test]
fn exact_gradient_on_plain_matches_float() {
    let (rows, cols) = (64, 10);
    for f in [13u32, 16, 20] {
        let mut p = plain(f);
        let ulp = crate::fixed::pow2(-(f as i32));
        let xs = random_safe(f, 5, rows * cols, 3.0);
        let mut ys = vec![0.0; rows * cols];
        for r in 0..rows {
            ys[r * cols + (r * 7) % cols] = 1.0;
        }
        for a in [
            ExpApprox::Pwl(4),
            ExpApprox::Taylor(4),
            ExpApprox::Exact,
            ExpApprox::Pwl(6),
        ] {
            let cfg = Softmax::new(a);
            let fg = float_xent_grad(cfg, &xs, &ys, rows, cols);
            let pg = plain_xent_grad(&mut p, cfg, &xs, &ys, rows, cols);
            for i in 0..rows * cols {
                // The label term E'/E amplifies errors where E is small: relative tolerance.
                let tol = 64.0 * ulp * (1.0 + fg[i].abs()) * (1.0 + fg[i].abs());
                assert!(
                    (pg[i] - fg[i]).abs() <= tol.max(1e-3 * fg[i].abs()),
                    "{} f={f} i={i}: {} vs {}",
                    a.name(),
                    pg[i],
                    fg[i]
                );
            }
        }
    }
}

/// The exact gradient where the label's E is 0 (pwl4's flat line 0.0077x + 0.155 is below
/// 0 for x < -20.13): the label term E'_l / E_l is defined as 0 there. Float used to
/// compute 0 * (1/0) = NaN, which spread through the whole network in one step; Plain,
/// where the flat line can round to exactly 0 while the tie with the zero line picks the
/// sloped line, used to multiply E'_l = 0.0077 by the reciprocal's meaningless value at 0
/// (about 92,500 at f = 13), far beyond the 0.0077 * 2^f that a positive E_l can give.
#[test]
fn float_exact_gradient_is_finite_where_the_label_exp_is_zero() {
    let cfg = Softmax::new(ExpApprox::Pwl(4));
    let cols = 3;
    // Label in column 0, at or below pwl4's zero crossing; the other logits are live.
    let labels = [-20.2, -25.0, -300.0];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for &xl in &labels {
        xs.extend([xl, 0.5, -1.0]);
        ys.extend([1.0, 0.0, 0.0]);
    }
    let rows = labels.len();
    fn run<T: crate::float::Real>(cfg: Softmax, xs: &[f64], ys: &[f64], rows: usize) -> Vec<f64> {
        let cols = xs.len() / rows;
        let x: Vec<T> = xs.iter().map(|&v| T::from_f64(v)).collect();
        let y: Vec<T> = ys.iter().map(|&v| T::from_f64(v)).collect();
        let (mut p, mut g) = (vec![T::default(); x.len()], vec![T::default(); x.len()]);
        let mut s = vec![T::default(); softmax::backward_scratch(cfg, rows, cols)];
        softmax::softmax_xent_backward(
            &mut Float::<T>::new(),
            cfg,
            GradMode::Exact,
            Labelled { x: &x, y: &y },
            Rows { rows, cols },
            XentOut {
                p: &mut p,
                grad: &mut g,
            },
            &mut s,
        )
        .unwrap();
        g.iter().map(|v| v.to_f64()).collect()
    }
    for g in [
        run::<f64>(cfg, &xs, &ys, rows),
        run::<f32>(cfg, &xs, &ys, rows),
    ] {
        for r in 0..rows {
            let row = &xs[r * cols..(r + 1) * cols];
            let el = ExpApprox::Pwl(4).reference(row[0]);
            if el > 0.0 {
                continue;
            }
            // Only the first term E'_j / S is left; E'_l = 0.
            let lines = ExpApprox::Pwl(4).lines().unwrap();
            let s: f64 = row.iter().map(|&v| lines.eval(v)).sum();
            let want: Vec<f64> = row
                .iter()
                .map(|&v| lines.eval_with_slope(v).1 / s)
                .collect();
            for j in 0..cols {
                let got = g[r * cols + j];
                assert!(
                    (got - want[j]).abs() <= 1e-6 * (1.0 + want[j].abs()),
                    "row {r} ({}) j {j}: {got} vs {}",
                    row[0],
                    want[j]
                );
            }
        }
    }
}

/// Plain's side of [`float_exact_gradient_is_finite_where_the_label_exp_is_zero`]: the label
/// gradient stays within what a positive E_l of at least one ulp allows, for every raw
/// value of the label logit around pwl4's zero crossing.
#[test]
fn plain_exact_gradient_is_bounded_around_the_zero_crossing() {
    let cfg = Softmax::new(ExpApprox::Pwl(4));
    let cols = 3;
    // Every raw value of the label logit from -20.5 to -19.5 at f = 13.
    let f = 13;
    let mut p = plain(f);
    let ulp = crate::fixed::pow2(-(f as i32));
    let steps = (1.0 / ulp) as usize;
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for i in 0..=steps {
        xs.extend([-20.5 + i as f64 * ulp, 0.5, -1.0]);
        ys.extend([1.0, 0.0, 0.0]);
    }
    let rows = steps + 1;
    let (x, y) = (enc(&p, &xs), enc(&p, &ys));
    let (mut pp, mut pg) = (vec![Z64::ZERO; x.len()], vec![Z64::ZERO; x.len()]);
    let mut s = vec![Z64::ZERO; softmax::backward_scratch(cfg, rows, cols)];
    softmax::softmax_xent_backward(
        &mut p,
        cfg,
        GradMode::Exact,
        Labelled { x: &x, y: &y },
        Rows { rows, cols },
        XentOut {
            p: &mut pp,
            grad: &mut pg,
        },
        &mut s,
    )
    .unwrap();
    let pg = dec(&p, &pg);
    // |E'_l / E_l| <= 0.0077 / ulp for E_l >= 1 ulp, plus rounding; the first term is below 1.
    let bound = 0.0077 / ulp + 4.0;
    for r in 0..rows {
        assert!(
            pg[r * cols].abs() <= bound,
            "x_l = {}: label gradient {}",
            xs[r * cols],
            pg[r * cols]
        );
    }
}

#[test]
fn fused_plain_softmax_equals_generic() {
    let cols = 10;
    for f in FRACS {
        let mut p = plain(f);
        let mut xs = random_safe(f, 13, 500 * cols, 6.0);
        // All-negative rows (secureml gives all-zero rows there) and wide rows.
        xs.extend([-1.0; 10]);
        xs.extend((0..10).map(|i| i as f64 * 3.0 - 12.0));
        let rows = xs.len() / cols;
        let x = enc(&p, &xs);
        for a in ExpApprox::ALL {
            for subtract_max in [false, true] {
                let cfg = Softmax {
                    exp: a,
                    subtract_max,
                };
                let mut s = vec![Z64::ZERO; softmax::softmax_scratch(cfg, rows, cols)];
                let (mut o1, mut o2) = (vec![Z64::ZERO; x.len()], vec![Z64::ZERO; x.len()]);
                // softmax() divides with Plain's fused normalize_rows; generic_rows with the
                // generic one. Both count the same overflows.
                let before = p.overflow_count();
                softmax::softmax(&mut p, cfg, &x, rows, cols, &mut o1, &mut s).unwrap();
                let fused = p.overflow_count() - before;
                softmax::generic_rows(&mut p, cfg, &x, rows, cols, &mut o2, &mut s).unwrap();
                let generic = p.overflow_count() - before - fused;
                assert_eq!(o1, o2, "{} f={f} max={subtract_max}", a.name());
                assert_eq!(
                    fused,
                    generic,
                    "overflows: {} f={f} max={subtract_max}",
                    a.name()
                );
            }
        }
    }
}

/// The exact softmax cross-entropy gradient of `rows x cols` logits `xs` and labels `ys`
/// on Float (f64).
fn float_xent_grad(cfg: Softmax, xs: &[f64], ys: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut fl = Float::<f64>::new();
    let (mut fp, mut fg) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
    let mut s = vec![0.0; softmax::backward_scratch(cfg, rows, cols)];
    softmax::softmax_xent_backward(
        &mut fl,
        cfg,
        GradMode::Exact,
        Labelled { x: xs, y: ys },
        Rows { rows, cols },
        XentOut {
            p: &mut fp,
            grad: &mut fg,
        },
        &mut s,
    )
    .unwrap();
    fg
}

/// The same on `p`, encoded and decoded.
fn plain_xent_grad(
    p: &mut Plain,
    cfg: Softmax,
    xs: &[f64],
    ys: &[f64],
    rows: usize,
    cols: usize,
) -> Vec<f64> {
    let (x, y) = (enc(p, xs), enc(p, ys));
    let (mut pp, mut pg) = (vec![Z64::ZERO; x.len()], vec![Z64::ZERO; x.len()]);
    let mut s = vec![Z64::ZERO; softmax::backward_scratch(cfg, rows, cols)];
    softmax::softmax_xent_backward(
        p,
        cfg,
        GradMode::Exact,
        Labelled { x: &x, y: &y },
        Rows { rows, cols },
        XentOut {
            p: &mut pp,
            grad: &mut pg,
        },
        &mut s,
    )
    .unwrap();
    dec(p, &pg)
}

/// The exact gradient's label term `E'_l / E_l` where the label's E exceeds 2^f (exact e^x
/// above x = f ln 2: 9.01 at f = 13, 11.09 at f = 16). Its reciprocal `1 / E_l` was taken
/// without guard bits and rounded to 0 there, so the label's gradient became `+p_l`
/// instead of `p_l - 1`: every confident, correct row pushed its own label down. That was
/// the collapse of `ringnn train --model mlp --data mnist --exp exact --frac-bits 13`
/// (docs/results.md, "Collapses, diagnosed").
#[test]
fn plain_exact_gradient_keeps_the_label_term_when_the_label_exp_exceeds_two_to_the_f() {
    let cols = 4;
    let labels = [4.0, 9.5, 10.0, 11.0, 12.0, 13.0];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for &xl in &labels {
        xs.extend([xl, 0.5, -1.0, 1.5]);
        ys.extend([1.0, 0.0, 0.0, 0.0]);
    }
    let rows = labels.len();
    for a in [ExpApprox::Exact, ExpApprox::Limit8] {
        let cfg = Softmax::new(a);
        let fg = float_xent_grad(cfg, &xs, &ys, rows, cols);
        for f in [13u32, 16] {
            let mut p = plain(f);
            let pg = plain_xent_grad(&mut p, cfg, &xs, &ys, rows, cols);
            for r in 0..rows {
                for j in 0..cols {
                    let (got, want) = (pg[r * cols + j], fg[r * cols + j]);
                    assert!(
                        (got - want).abs() <= 0.01,
                        "{} f={f} x_l={} j={j}: {got} vs {want}",
                        a.name(),
                        labels[r]
                    );
                }
            }
            assert_eq!(p.overflow_count(), 0, "{} f={f}", a.name());
        }
    }
}

/// A row whose every E is 0 (all logits below pwl4's zero crossing at -20.13, all at or
/// below secureml's 0, or e^x under one ulp) is defined as uniform. Its exact gradient used
/// to be 0, so such a row never came back: once a step pushed every row there, the loss
/// sat at ln 10 with a zero gradient for good (the pwl4 collapses of docs/results.md,
/// "Collapses, diagnosed"). It is now the gradient at equal logits, 1/cols - y, on every
/// engine.
#[test]
fn exact_gradient_of_an_all_zero_row_is_uniform_minus_label() {
    let cols = 4;
    let cases: [(ExpApprox, [f64; 4]); 3] = [
        (ExpApprox::Pwl(4), [-21.0, -30.0, -25.5, -100.0]),
        (ExpApprox::SecureMl, [-1.0, 0.0, -3.5, -0.25]),
        (ExpApprox::Exact, [-12.0, -15.0, -40.0, -13.5]),
    ];
    for (a, row) in cases {
        let cfg = Softmax::new(a);
        // Two rows: the dead one with its label in column 1, and a live one.
        let xs: Vec<f64> = row.iter().copied().chain([0.5, 1.0, -0.5, 2.0]).collect();
        let ys = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let want: Vec<f64> = ys[..cols].iter().map(|&y| 1.0 / cols as f64 - y).collect();
        let fg = float_xent_grad(cfg, &xs, &ys, 2, cols);
        if a != ExpApprox::Exact {
            for j in 0..cols {
                assert!(
                    (fg[j] - want[j]).abs() < 1e-12,
                    "float {}: {:?}",
                    a.name(),
                    fg
                );
            }
        }
        for f in [13u32, 16] {
            let mut p = plain(f);
            let ulp = crate::fixed::pow2(-(f as i32));
            let pg = plain_xent_grad(&mut p, cfg, &xs, &ys, 2, cols);
            for j in 0..cols {
                assert!(
                    (pg[j] - want[j]).abs() <= 4.0 * ulp,
                    "plain {} f={f}: {:?}",
                    a.name(),
                    &pg[..cols]
                );
            }
            // The live row is the ordinary exact gradient.
            for j in cols..2 * cols {
                assert!((pg[j] - fg[j]).abs() <= 0.01, "{} f={f}", a.name());
            }
        }
    }
}
