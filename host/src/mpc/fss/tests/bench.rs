//! Throughput of key generation and evaluation (ignored: run in release, by hand).
//!
//! `nice -n 15 cargo test --release -p ringnn-host --lib mpc::fss -- --ignored --nocapture`

use super::super::{dcf, gate};
use super::rng;
use crate::mpc::PartyId::P0;
use rand::RngCore;
use std::hint::black_box;
use std::time::Instant;

fn rate(count: usize, secs: f64) -> String {
    format!("{:.0}/s", count as f64 / secs)
}

/// The shortest of three runs of `f`, in seconds (the machine is shared).
fn best_of_3<T>(mut f: impl FnMut() -> T) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn throughput() {
    let mut r = rng(30);
    for n in [64u32, 32] {
        let keys = 50_000;
        let alphas: Vec<u64> = (0..keys).map(|_| r.next_u64() >> (64 - n)).collect();
        let mut k0s = Vec::new();
        let gen_s = best_of_3(|| {
            k0s = alphas
                .iter()
                .map(|&a| dcf::gen(a, 1, n, &mut r).unwrap().0)
                .collect::<Vec<_>>();
        });
        let xs: Vec<u64> = (0..keys).map(|_| r.next_u64()).collect();
        let batch_s = best_of_3(|| dcf::eval_batch(P0, &k0s, &xs).unwrap());
        let many_s = best_of_3(|| dcf::eval_many(P0, &k0s[0], &xs));
        let one_s = best_of_3(|| {
            k0s.iter()
                .zip(&xs)
                .fold(0u64, |acc, (k, &x)| acc.wrapping_add(dcf::eval(P0, k, x)))
        });
        println!(
            "DCF n={n}: gen {} key pairs, eval_batch {} , eval_many {}, eval one by one {}",
            rate(keys, gen_s),
            rate(keys, batch_s),
            rate(keys, many_s),
            rate(keys, one_s)
        );
    }
    for m in [64u32, 32] {
        let count = 50_000;
        let masks: Vec<gate::ReluMasks> = (0..count)
            .map(|_| gate::ReluMasks {
                r_in: r.next_u64(),
                r_out: r.next_u64(),
                r_d: r.next_u64(),
            })
            .collect();
        let mut keys = Vec::new();
        let gen_s = best_of_3(|| {
            keys = masks
                .iter()
                .map(|&mk| gate::relu_gen(mk, m, &mut r).unwrap().0)
                .collect::<Vec<_>>();
        });
        let xs: Vec<u64> = (0..count).map(|_| r.next_u64()).collect();
        let eval_s = best_of_3(|| gate::relu_eval_many(P0, &keys, &xs).unwrap());
        println!(
            "ReLU m={m}: gen {} key pairs, eval_many {} per party",
            rate(count, gen_s),
            rate(count, eval_s)
        );
    }
}
