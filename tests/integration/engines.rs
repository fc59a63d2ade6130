//! One model-shaped computation (a dense layer, then softmax) written once against the
//! `Engine` trait and run on `Float` and `Plain`: the way the later two-party engine plugs in.
use ringnn::kernel::approx::ExpApprox;
use ringnn::kernel::engine::MatDims;
use ringnn::kernel::softmax::{self, Softmax};
use ringnn::kernel::{Engine, Float, Plain, Z64};

fn dense_softmax<E: Engine>(
    e: &mut E,
    x: &[E::Elem],
    w: &[E::Elem],
    dims: MatDims,
    exp: ExpApprox,
) -> Vec<E::Elem> {
    let mut logits = vec![E::Elem::default(); dims.m * dims.n];
    e.matmul(x, w, dims, &mut logits).unwrap();
    e.rescale(&mut logits).unwrap();
    let cfg = Softmax::new(exp);
    let mut out = vec![E::Elem::default(); logits.len()];
    let mut s = vec![E::Elem::default(); softmax::softmax_scratch(cfg, dims.m, dims.n)];
    softmax::softmax(e, cfg, &logits, dims.m, dims.n, &mut out, &mut s).unwrap();
    out
}

#[test]
fn dense_then_softmax_plain_matches_float() {
    let dims = MatDims {
        m: 32,
        k: 20,
        n: 10,
    };
    let x: Vec<f64> = (0..dims.m * dims.k)
        .map(|i| ((i * 37 % 101) as f64 / 50.0) - 1.0)
        .collect();
    let w: Vec<f64> = (0..dims.k * dims.n)
        .map(|i| ((i * 53 % 97) as f64 / 97.0) - 0.5)
        .collect();
    for exp in [
        ExpApprox::Pwl(4),
        ExpApprox::Taylor(4),
        ExpApprox::Exact,
        ExpApprox::Limit8,
    ] {
        let mut fl = Float::<f64>::new();
        let want = dense_softmax(&mut fl, &x, &w, dims, exp);
        for f in [13u32, 16, 20] {
            let mut p = Plain::with_frac_bits(f).unwrap();
            let (mut xe, mut we) = (vec![Z64::ZERO; x.len()], vec![Z64::ZERO; w.len()]);
            p.encode_slice(&x, &mut xe).unwrap();
            p.encode_slice(&w, &mut we).unwrap();
            let got = dense_softmax(&mut p, &xe, &we, dims, exp);
            let mut dec = vec![0.0; got.len()];
            p.decode_slice(&got, &mut dec);
            let ulp = p.format().ulp();
            for (g, w) in dec.iter().zip(&want) {
                // Encoding of 20 products, one truncation, then softmax: a few hundred ulps.
                assert!((g - w).abs() <= 400.0 * ulp, "{exp} f={f}: {g} vs {w}");
            }
            assert_eq!(p.overflow_count(), 0);
        }
    }
}
