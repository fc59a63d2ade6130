//! The health counters of `Plain` ([`crate::Health`]), each forced by an input made to
//! trigger it and left at 0 by inputs that do not.

use super::*;
use crate::engine::Exact;
use crate::{ExactEngine, Health};

fn health(p: &Plain) -> Health {
    p.health().expect("Plain sees its values")
}

#[test]
fn a_product_beyond_the_ring_counts_as_wrapped() {
    let mut p = plain(13);
    let a = enc(&p, &[3.0e5, 2.0]);
    let b = enc(&p, &[3.0e5, 2.0]);
    let mut out = vec![Z64::ZERO; 2];
    p.mul(&a, &b, &mut out).unwrap();
    // (3e5 * 2^13)^2 = 6.0e18 < 2^63 = 9.2e18: no wrap yet; 4e5 would.
    assert_eq!(health(&p), Health::default());
    let c = enc(&p, &[4.0e5]);
    p.mul(&c, &c, &mut out[..1]).unwrap();
    assert_eq!(health(&p).wrapped, 1);
    assert_eq!(p.overflow_count(), 1);
}

#[test]
fn a_constant_or_exact_result_beyond_the_safe_range_counts_as_saturated() {
    let mut p = plain(13);
    let _ = p.public(1.0e3);
    assert_eq!(health(&p).saturated, 0);
    let _ = p.public(1.0e30);
    assert_eq!(health(&p).saturated, 1);
    // Exact e^x of a logit of 40 at f = 13 is beyond the safe range (e^34.7).
    let mut x = enc(&p, &[1.0, 40.0, 50.0]);
    p.apply_exact(Exact::Exp, &mut x).unwrap();
    let h = health(&p);
    assert_eq!((h.saturated, h.wrapped), (3, 0));
    assert_eq!(p.overflow_count(), 3);
}

#[test]
fn rows_without_mass_count_as_empty_rows_on_every_softmax_path() {
    // secureml's e^x is 0 for x <= -1: the first row has no mass, the second has.
    let cfg = Softmax::new(ExpApprox::SecureMl);
    let xs = [-1.5, -2.0, -3.0, -4.0, 1.0, 2.0, -1.0, -1.0];
    let y = [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    // Plain's fused softmax (its own normalize_rows), and the generic division.
    let mut p = plain(13);
    let x = enc(&p, &xs);
    let mut out = vec![Z64::ZERO; 8];
    let mut s = vec![Z64::ZERO; softmax::softmax_scratch(cfg, 2, 4)];
    softmax::softmax(&mut p, cfg, &x, 2, 4, &mut out, &mut s).unwrap();
    assert_eq!(health(&p).empty_rows, 1);
    let mut g = plain(13);
    softmax::generic_rows(&mut g, cfg, &x, 2, 4, &mut out, &mut s).unwrap();
    assert_eq!(health(&g).empty_rows, 1);
    // The training forward and gradient (the fused path through `empty_rows`).
    let mut t = plain(13);
    let ye = enc(&t, &y);
    let (mut pr, mut gr) = (vec![Z64::ZERO; 8], vec![Z64::ZERO; 8]);
    let mut s = vec![Z64::ZERO; softmax::backward_scratch(cfg, 2, 4)];
    softmax::softmax_xent_backward(
        &mut t,
        cfg,
        GradMode::Exact,
        Labelled { x: &x, y: &ye },
        Rows { rows: 2, cols: 4 },
        XentOut {
            p: &mut pr,
            grad: &mut gr,
        },
        &mut s,
    )
    .unwrap();
    let h = health(&t);
    assert_eq!(h.empty_rows, 1);
    assert_eq!((h.wrapped, h.recip_out_of_range), (0, 0));
}

#[test]
fn reciprocal_inputs_outside_its_domain_are_counted() {
    let mut p = plain(13);
    let x = [
        Z64::from_signed(0),
        Z64::from_signed(-5),
        Z64::from_signed(1 << 62),
        Z64::from_signed(1),
        Z64::from_signed((1 << 62) - 1),
        p.public(3.0),
    ];
    let mut out = vec![Z64::ZERO; x.len()];
    p.reciprocal(&x, &mut out, None, 4, &mut []).unwrap();
    assert_eq!(health(&p).recip_out_of_range, 3);
    // A caller that asks for the empty flags expects inputs <= 0: only 2^62 counts.
    p.reset_health();
    let mut z = vec![Z64::ZERO; x.len()];
    p.reciprocal(&x, &mut out, Some(&mut z), 4, &mut [])
        .unwrap();
    assert_eq!(health(&p).recip_out_of_range, 1);
    assert_eq!(z[..3], [Z64(1), Z64(1), Z64::ZERO]);
    assert_eq!(out[..2], [Z64::ZERO, Z64::ZERO]);
}

#[test]
fn forked_counts_add_back() {
    let mut p = plain(13);
    let _ = p.public(1.0e30);
    let h = Health {
        wrapped: 2,
        saturated: 3,
        empty_rows: 4,
        recip_out_of_range: 5,
        beyond_fss_width: 6,
    };
    p.add_health(h);
    assert_eq!(health(&p), Health { saturated: 4, ..h });
    p.reset_health();
    assert_eq!(health(&p), Health::default());
    // A float engine sees no ring: it reports no health at all.
    assert_eq!(Float::<f64>::new().health(), None);
}

#[test]
fn relu_clamp_and_max_of_lines_count_inputs_beyond_the_fss_width() {
    use crate::approx::ExpApprox;
    use crate::engine::{fss_width, within_fss_width};
    assert_eq!(
        [0, 3, 4, 13, 16, 24, 62, 63, 70].map(fss_width),
        [64, 64, 63, 54, 51, 43, 5, 4, 4]
    );
    let mut p = plain(13);
    let lim = 1i64 << (fss_width(13) - 2); // 2^52
    assert!(within_fss_width(lim - 1, 13) && within_fss_width(-lim, 13));
    assert!(!within_fss_width(lim, 13) && !within_fss_width(-lim - 1, 13));
    assert!(within_fss_width(i64::MIN, 3), "full width: every value");
    let edges = [0, 1, -1, lim - 1, -lim, lim, -lim - 1, i64::MAX, i64::MIN].map(Z64::from_signed);
    let mut s = vec![Z64::ZERO; 64];
    let mut x = edges;
    p.relu(&mut x, &mut s).unwrap();
    assert_eq!(health(&p).beyond_fss_width, 4);
    let mut x = edges;
    p.clamp(&mut x, -1.0, 1.0, None, &mut s).unwrap();
    assert_eq!(health(&p).beyond_fss_width, 8);
    let l = ExpApprox::Pwl(4).lines().unwrap();
    let mut out = [Z64::ZERO; 9];
    p.max_of_lines(&l, &edges, &mut out, None, &mut s).unwrap();
    let h = health(&p);
    assert_eq!(h.beyond_fss_width, 12);
    // Inputs within the range count nothing; at f <= 3 the width is full.
    let mut q = plain(13);
    let mut x = enc(&q, &[-3.5, 0.0, 2.0, 1.0e5]);
    q.relu(&mut x, &mut s).unwrap();
    assert_eq!(health(&q).beyond_fss_width, 0);
    let mut r = plain(3);
    let mut x = edges;
    r.relu(&mut x, &mut s).unwrap();
    assert_eq!(health(&r).beyond_fss_width, 0);
}

#[test]
fn compared_differences_count_beyond_the_signed_range_of_the_fss_width() {
    use crate::engine::fss_width;
    let mut p = plain(13);
    let lim = 1i64 << (fss_width(13) - 1); // 2^53: differences must lie in [-lim, lim)
    let half = lim / 2;
    // a - b: 0, lim - 1, -lim (inside); lim, -lim - 1 (outside).
    let a = [0, half, -half, half, -half - 1].map(Z64::from_signed);
    let b = [0, -half + 1, half, -half, half].map(Z64::from_signed);
    let mut x = a;
    let mut s = vec![Z64::ZERO; 16];
    p.max_assign(&mut x, &b, &mut s).unwrap();
    assert_eq!(health(&p).beyond_fss_width, 2);
    // The same pairs through the pooling tree (2 candidates per position), with and
    // without the bits: the same differences, counted each time.
    let mut v: Vec<Z64> = a.iter().chain(&b).copied().collect();
    p.max_tree(&mut v, 2, None, &mut []).unwrap();
    assert_eq!(health(&p).beyond_fss_width, 4);
    let mut v: Vec<Z64> = a.iter().chain(&b).copied().collect();
    let mut sel = vec![Z64::ZERO; 5];
    p.max_tree(&mut v, 2, Some(&mut sel), &mut []).unwrap();
    assert_eq!(health(&p).beyond_fss_width, 6);
    // The plain comparison itself counts nothing.
    let mut bits = [Z64::ZERO; 5];
    p.is_negative(&a, &mut bits).unwrap();
    assert_eq!(health(&p).beyond_fss_width, 6);
}
