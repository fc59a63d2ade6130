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

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn throughput() {
    let mut r = rng(30);
    for n in [64u32, 32] {
        let keys = 20_000;
        let t = Instant::now();
        let mut k0s = Vec::with_capacity(keys);
        for _ in 0..keys {
            let alpha = r.next_u64() >> (64 - n);
            k0s.push(dcf::gen(alpha, 1, n, &mut r).unwrap().0);
        }
        let gen_s = t.elapsed().as_secs_f64();
        let xs: Vec<u64> = (0..keys).map(|_| r.next_u64()).collect();
        let t = Instant::now();
        let out = dcf::eval_batch(P0, &k0s, &xs).unwrap();
        let batch_s = t.elapsed().as_secs_f64();
        black_box(out);
        let t = Instant::now();
        let out = dcf::eval_many(P0, &k0s[0], &xs);
        let many_s = t.elapsed().as_secs_f64();
        black_box(out);
        let t = Instant::now();
        let mut acc = 0u64;
        for (k, &x) in k0s.iter().zip(&xs) {
            acc = acc.wrapping_add(dcf::eval(P0, k, x));
        }
        let one_s = t.elapsed().as_secs_f64();
        black_box(acc);
        println!(
            "DCF n={n}: gen {} key pairs, eval_batch {} , eval_many {}, eval one by one {}",
            rate(keys, gen_s),
            rate(keys, batch_s),
            rate(keys, many_s),
            rate(keys, one_s)
        );
    }
    for m in [64u32, 32] {
        let count = 20_000;
        let t = Instant::now();
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            let masks = gate::ReluMasks {
                r_in: r.next_u64(),
                r_out: r.next_u64(),
                r_d: r.next_u64(),
            };
            keys.push(gate::relu_gen(masks, m, &mut r).unwrap().0);
        }
        let gen_s = t.elapsed().as_secs_f64();
        let xs: Vec<u64> = (0..count).map(|_| r.next_u64()).collect();
        let t = Instant::now();
        let out = gate::relu_eval_many(P0, &keys, &xs).unwrap();
        let eval_s = t.elapsed().as_secs_f64();
        black_box(out);
        println!(
            "ReLU m={m}: gen {} key pairs, eval_many {} per party",
            rate(count, gen_s),
            rate(count, eval_s)
        );
    }
}
