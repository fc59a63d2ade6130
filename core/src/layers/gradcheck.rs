//! Finite-difference gradient checks on the `Float<f64>` engine, shared by the layers'
//! tests: the loss is `sum(y * r)` for a fixed random `r`, so `dL/dy = r`.
extern crate std;
use std::vec;
use std::vec::Vec;

/// Sizes of one check.
pub struct Case {
    /// Input elements.
    pub inputs: usize,
    /// Parameter elements.
    pub params: usize,
    /// Output elements.
    pub outputs: usize,
    /// Seed of the random inputs.
    pub seed: u64,
}

impl Case {
    /// A case.
    pub fn new(inputs: usize, params: usize, outputs: usize, seed: u64) -> Self {
        Case {
            inputs,
            params,
            outputs,
            seed,
        }
    }
}

/// Deterministic values in (-1, 1).
pub fn values(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// Checks `backward` against central differences of `forward` for every input and
/// parameter, with tolerance `1e-6 * (1 + |g|)`.
pub fn check(
    case: &Case,
    forward: impl Fn(&[f64], &[f64], &mut [f64]),
    backward: impl Fn(&[f64], &[f64], &[f64], &mut [f64], &mut [f64]),
) {
    let x = values(case.seed, case.inputs);
    let p = values(case.seed + 1, case.params);
    let r = values(case.seed + 2, case.outputs);
    let loss = |x: &[f64], p: &[f64]| {
        let mut y = vec![0.0; case.outputs];
        forward(x, p, &mut y);
        y.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
    };
    let (mut dx, mut dp) = (vec![0.0; case.inputs], vec![0.0; case.params]);
    backward(&x, &p, &r, &mut dx, &mut dp);
    let h = 1e-6;
    for i in 0..case.inputs {
        let (mut a, mut b) = (x.clone(), x.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (loss(&a, &p) - loss(&b, &p)) / (2.0 * h);
        assert!(
            (fd - dx[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
            "dx[{i}]: fd {fd} vs {}",
            dx[i]
        );
    }
    for i in 0..case.params {
        let (mut a, mut b) = (p.clone(), p.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (loss(&x, &a) - loss(&x, &b)) / (2.0 * h);
        assert!(
            (fd - dp[i]).abs() <= 1e-6 * (1.0 + fd.abs()),
            "dp[{i}]: fd {fd} vs {}",
            dp[i]
        );
    }
}
