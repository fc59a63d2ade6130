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

type BatchGen = fn(
    &[u64],
    u32,
    &mut rand_chacha::ChaCha20Rng,
    &mut gate::GateBatch,
    [&mut [u8]; 2],
) -> Result<(), super::super::FssError>;

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn key_generation_one_by_one_and_in_batches() {
    let mut r = rng(31);
    let count = 32 * 1024;
    let masks: Vec<u64> = (0..count).map(|_| r.next_u64()).collect();
    let mut scratch = gate::GateBatch::default();
    for m in [54u32, 64] {
        let size = gate::DreluKey::size(m);
        let one_s = best_of_3(|| {
            let mut out = [
                Vec::with_capacity(count * size),
                Vec::with_capacity(count * size),
            ];
            for &mask in &masks {
                let (k0, k1) = gate::drelu_gen(mask, m, &mut r).unwrap();
                k0.write_to(&mut out[0]);
                k1.write_to(&mut out[1]);
            }
            out
        });
        let mut in_batches = |size: usize, gen: BatchGen| {
            best_of_3(|| {
                let mut out = [vec![0u8; count * size], vec![0u8; count * size]];
                let [a, b] = &mut out;
                for ((c, a), b) in masks
                    .chunks(1024)
                    .zip(a.chunks_mut(1024 * size))
                    .zip(b.chunks_mut(1024 * size))
                {
                    gen(c, m, &mut r, &mut scratch, [a, b]).unwrap();
                }
                out
            })
        };
        let batch_s = in_batches(gate::DreluKey::size(m), gate::drelu_gen_batch);
        let relu_s = in_batches(gate::ReluKey::size(m), gate::relu_gen_batch);
        println!(
            "m={m}, one thread: DReLU key pairs one by one {}, in batches of 1024 {}; ReLU in batches {}",
            rate(count, one_s),
            rate(count, batch_s),
            rate(count, relu_s)
        );
    }
}
