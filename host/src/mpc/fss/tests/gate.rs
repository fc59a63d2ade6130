//! The gates against `Plain` (the engine every other engine is tested against) and the
//! plain formulas: the whole ring, its edges, reduced widths and what happens outside
//! them, and the simulated two-party run's cost.

use super::super::gate::{self, drelu_plain, relu_plain, sign_extend, ReluMasks};
use super::super::sim;
use super::super::FssError;
use super::rng;
use crate::mpc::PartyId::{P0, P1};
use proptest::prelude::*;
use rand::RngCore;
use rand_chacha::ChaCha20Rng;
use ringnn_core::engine::Engine;
use ringnn_core::plain::Plain;
use ringnn_core::Z64;

/// `Plain`'s ReLU and its sign bit `1 - [x < 0]`.
fn plain(x: u64) -> (u64, u64) {
    let mut p = Plain::with_frac_bits(16).unwrap();
    let mut v = [Z64(x)];
    let mut neg = [Z64(0)];
    p.is_negative(&v, &mut neg).unwrap();
    p.relu(&mut v, &mut [Z64(0); 8]).unwrap();
    (v[0].0, 1 - neg[0].0)
}

/// DReLU and ReLU (with its masked derivative) at `x`, mask `r_in`, width `m`, both
/// reconstructed.
fn gates(x: u64, r_in: u64, m: u32, r: &mut ChaCha20Rng) -> (u64, u64, u64) {
    let x_hat = x.wrapping_add(r_in);
    let (d0, d1) = gate::drelu_gen(r_in, m, r).unwrap();
    let drelu = gate::drelu_eval(P0, &d0, x_hat).wrapping_add(gate::drelu_eval(P1, &d1, x_hat));
    let masks = ReluMasks {
        r_in,
        r_out: r.next_u64(),
        r_d: r.next_u64(),
    };
    let (k0, k1) = gate::relu_gen(masks, m, r).unwrap();
    let (s0, s1) = (
        gate::relu_eval(P0, &k0, x_hat),
        gate::relu_eval(P1, &k1, x_hat),
    );
    let y = s0.y.wrapping_add(s1.y).wrapping_sub(masks.r_out);
    let d = s0.d.wrapping_add(s1.d).wrapping_sub(masks.r_d);
    (drelu, y, d)
}

fn masks_for(m: u32, r: &mut ChaCha20Rng) -> Vec<u64> {
    let h = 1u64 << (m - 1);
    let mut v = vec![0, 1, h - 1, h, h + 1, 1 << 63, (1 << 63) - 1, u64::MAX];
    if m < 64 {
        v.extend([(1 << m) - 1, 1 << m]);
    }
    v.extend((0..4).map(|_| r.next_u64()));
    v
}

#[test]
fn full_width_matches_plain_at_the_edges() {
    let mut r = rng(20);
    let edges = [
        0,
        1,
        2,
        u64::MAX,
        u64::MAX - 1,
        1 << 62,
        (1u64 << 62).wrapping_neg(),
        (1 << 63) - 1,
        1 << 63,
        (1 << 63) + 1,
    ];
    let masks = masks_for(64, &mut r);
    let random: Vec<u64> = (0..8).map(|_| r.next_u64()).collect();
    for x in edges.into_iter().chain(random) {
        let (relu, bit) = plain(x);
        for &r_in in &masks {
            let (drelu, y, d) = gates(x, r_in, 64, &mut r);
            assert_eq!((drelu, y, d), (bit, relu, bit), "x={x:#x} r_in={r_in:#x}");
        }
    }
}

#[test]
fn reduced_widths_match_plain_inside_the_bound() {
    let mut r = rng(21);
    for m in [2u32, 3, 8, 16, 31, 32, 48, 63] {
        let h = 1u64 << (m - 1);
        // -2^(m-1) ..= 2^(m-1) - 1: the range where the gate is exact.
        let mut xs = vec![
            0,
            1,
            u64::MAX,
            h - 1,
            h.wrapping_neg(),
            h.wrapping_neg() + 1,
            (h - 1).wrapping_neg(),
        ];
        xs.extend((0..6).map(|_| sign_extend(r.next_u64(), m)));
        let masks = masks_for(m, &mut r);
        for &x in &xs {
            let (relu, bit) = plain(x);
            for &r_in in &masks {
                assert_eq!(
                    gates(x, r_in, m, &mut r),
                    (bit, relu, bit),
                    "m={m} x={x:#x}"
                );
            }
        }
    }
}

#[test]
fn reduced_widths_outside_the_bound_give_the_sign_of_the_low_bits() {
    let mut r = rng(22);
    for m in [2u32, 8, 32, 63] {
        let h = 1u64 << (m - 1);
        let masks = masks_for(m, &mut r);
        for &r_in in &masks {
            // 2^(m-1) wraps to -2^(m-1): counted negative, so ReLU gives 0, not x.
            assert_eq!(gates(h, r_in, m, &mut r), (0, 0, 0), "m={m}");
            // -2^(m-1) - 1 wraps to 2^(m-1) - 1: counted positive, ReLU passes x through.
            let x = h.wrapping_neg().wrapping_sub(1);
            assert_eq!(gates(x, r_in, m, &mut r), (1, x, 1), "m={m}");
            // In general: the plain formulas on the low m bits.
            let x = r.next_u64();
            let want = (drelu_plain(x, m), relu_plain(x, m), drelu_plain(x, m));
            assert_eq!(gates(x, r_in, m, &mut r), want, "m={m} x={x:#x}");
        }
    }
}

#[test]
fn small_widths_exhaustive_over_inputs_and_masks() {
    let mut r = rng(23);
    for m in 2..=5u32 {
        for low in 0..1u64 << m {
            for r_low in 0..1u64 << m {
                // The high bits of x and of the mask must not matter to the bit.
                let x = low | (r.next_u64() << m);
                let r_in = r_low | (r.next_u64() << m);
                let want = (drelu_plain(x, m), relu_plain(x, m), drelu_plain(x, m));
                assert_eq!(
                    gates(x, r_in, m, &mut r),
                    want,
                    "m={m} x={x:#x} r={r_in:#x}"
                );
            }
        }
    }
}

#[test]
fn batched_gates_match_one_by_one() {
    let mut r = rng(24);
    let (mut d, mut k, mut xs) = ([vec![], vec![]], [vec![], vec![]], vec![]);
    for i in 0..40 {
        let m = [64, 64, 20, 2][i % 4];
        let r_in = r.next_u64();
        let (a, b) = gate::drelu_gen(r_in, m, &mut r).unwrap();
        d[0].push(a);
        d[1].push(b);
        let masks = ReluMasks {
            r_in,
            r_out: r.next_u64(),
            r_d: r.next_u64(),
        };
        let (a, b) = gate::relu_gen(masks, m, &mut r).unwrap();
        k[0].push(a);
        k[1].push(b);
        xs.push(r.next_u64());
    }
    for p in [P0, P1] {
        let i = p.index();
        let many = gate::drelu_eval_many(p, &d[i], &xs).unwrap();
        let one: Vec<u64> = d[i]
            .iter()
            .zip(&xs)
            .map(|(k, &x)| gate::drelu_eval(p, k, x))
            .collect();
        assert_eq!(many, one);
        let many = gate::relu_eval_many(p, &k[i], &xs).unwrap();
        let one: Vec<_> = k[i]
            .iter()
            .zip(&xs)
            .map(|(k, &x)| gate::relu_eval(p, k, x))
            .collect();
        assert_eq!(many, one);
    }
    assert_eq!(
        gate::relu_eval_many(P0, &k[0], &xs[..3]),
        Err(FssError::Lengths {
            keys: 40,
            points: 3
        })
    );
    assert!(gate::drelu_eval_many(P0, &d[0], &xs[..39]).is_err());
}

#[test]
fn widths_outside_2_to_64_are_refused() {
    let mut r = rng(25);
    for m in [0, 1, 65, 200] {
        assert_eq!(gate::drelu_gen(0, m, &mut r), Err(FssError::GateBits { m }));
        let masks = ReluMasks {
            r_in: 0,
            r_out: 0,
            r_d: 0,
        };
        assert_eq!(
            gate::relu_gen(masks, m, &mut r),
            Err(FssError::GateBits { m })
        );
        assert!(sim::relu_two_party(&[1], m, &mut r).is_err());
    }
}

#[test]
fn two_party_relu_is_one_round_of_16_bytes_per_element() {
    let mut r = rng(26);
    let xs: Vec<u64> = [0, 1, u64::MAX, 1 << 63, (1 << 63) - 1]
        .into_iter()
        .chain((0..59).map(|_| r.next_u64()))
        .collect();
    for m in [64, 40] {
        let xs: Vec<u64> = xs
            .iter()
            .map(|&x| if m == 64 { x } else { sign_extend(x, m) })
            .collect();
        let run = sim::relu_two_party(&xs, m, &mut r).unwrap();
        assert_eq!(run.rounds, 1);
        assert_eq!(run.online_bytes_per_party, 16 * xs.len());
        assert_eq!(run.key_bytes_per_party, xs.len() * gate::ReluKey::size(m));
        for (i, &x) in xs.iter().enumerate() {
            let (relu, bit) = plain(x);
            assert_eq!((run.relu[i], run.drelu[i]), (relu, bit), "m={m} x={x:#x}");
        }
        let bits = sim::drelu_two_party(&xs, m, &mut r).unwrap();
        let want: Vec<u64> = xs.iter().map(|&x| plain(x).1).collect();
        assert_eq!(bits, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn whole_ring_full_width(x in any::<u64>(), r_in in any::<u64>(), seed in any::<u64>()) {
        let (relu, bit) = plain(x);
        prop_assert_eq!(gates(x, r_in, 64, &mut rng(seed)), (bit, relu, bit));
    }

    #[test]
    fn whole_ring_any_width(m in 2u32..=64, x in any::<u64>(), r_in in any::<u64>(),
                            seed in any::<u64>()) {
        let want = (drelu_plain(x, m), relu_plain(x, m), drelu_plain(x, m));
        prop_assert_eq!(gates(x, r_in, m, &mut rng(seed)), want);
        // Inside the bound, Plain itself.
        let inside = sign_extend(x, m);
        let (relu, bit) = plain(inside);
        prop_assert_eq!(gates(inside, r_in, m, &mut rng(seed)), (bit, relu, bit));
    }
}

#[test]
fn gate_batches_split_over_threads_match_one_by_one() {
    // More than two parallel chunks, the last one short, mixed widths of one word count.
    let count = 2 * super::super::dcf::PARALLEL_CHUNK + 37;
    let mut r = rng(25);
    let (mut k, mut xs) = ([vec![], vec![]], vec![]);
    for i in 0..count {
        let masks = ReluMasks {
            r_in: r.next_u64(),
            r_out: r.next_u64(),
            r_d: r.next_u64(),
        };
        let (a, b) = gate::relu_gen(masks, [9, 12][i % 2], &mut r).unwrap();
        k[0].push(a);
        k[1].push(b);
        xs.push(r.next_u64());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for p in [P0, P1] {
        let i = p.index();
        let many = pool.install(|| gate::relu_eval_many(p, &k[i], &xs).unwrap());
        let one: Vec<_> = k[i]
            .iter()
            .zip(&xs)
            .map(|(k, &x)| gate::relu_eval(p, k, x))
            .collect();
        assert_eq!(many, one, "party {i}");
    }
}

#[test]
fn keys_built_in_batches_equal_keys_built_one_by_one() {
    let mut scratch = gate::GateBatch::default();
    for (m, count) in [(2, 5), (9, 37), (54, 1), (54, 70), (64, 33), (64, 0)] {
        let r_in: Vec<u64> = {
            let mut r = rng(u64::from(m) * 1000 + count as u64);
            (0..count).map(|_| r.next_u64()).collect()
        };
        // DReLU: the same generator state gives the same bytes, key for key.
        let (size, seed) = (gate::DreluKey::size(m), 40 + u64::from(m));
        let mut out = [vec![0u8; count * size], vec![0u8; count * size]];
        let [a, b] = &mut out;
        gate::drelu_gen_batch(&r_in, m, &mut rng(seed), &mut scratch, [a, b]).unwrap();
        let mut r = rng(seed);
        for (i, &mask) in r_in.iter().enumerate() {
            let (k0, k1) = gate::drelu_gen(mask, m, &mut r).unwrap();
            assert_eq!(
                out[0][i * size..(i + 1) * size],
                k0.to_bytes(),
                "drelu m {m} key {i}"
            );
            assert_eq!(
                out[1][i * size..(i + 1) * size],
                k1.to_bytes(),
                "drelu m {m} key {i}"
            );
        }
        // ReLU with unmasked outputs.
        let size = gate::ReluKey::size(m);
        let mut out = [vec![0u8; count * size], vec![0u8; count * size]];
        let [a, b] = &mut out;
        gate::relu_gen_batch(&r_in, m, &mut rng(seed), &mut scratch, [a, b]).unwrap();
        let mut r = rng(seed);
        for (i, &r_in) in r_in.iter().enumerate() {
            let masks = ReluMasks {
                r_in,
                r_out: 0,
                r_d: 0,
            };
            let (k0, k1) = gate::relu_gen(masks, m, &mut r).unwrap();
            assert_eq!(
                out[0][i * size..(i + 1) * size],
                k0.to_bytes(),
                "relu m {m} key {i}"
            );
            assert_eq!(
                out[1][i * size..(i + 1) * size],
                k1.to_bytes(),
                "relu m {m} key {i}"
            );
        }
    }
}

#[test]
fn key_batches_of_the_wrong_shape_are_refused() {
    let mut scratch = gate::GateBatch::default();
    let size = gate::DreluKey::size(20);
    let (mut a, mut b) = (vec![0u8; 3 * size], vec![0u8; 3 * size - 1]);
    let got = gate::drelu_gen_batch(&[1, 2, 3], 20, &mut rng(1), &mut scratch, [&mut a, &mut b]);
    assert!(
        matches!(got, Err(FssError::BatchShape { keys: 3, .. })),
        "{got:?}"
    );
    let got = gate::relu_gen_batch(&[1], 65, &mut rng(1), &mut scratch, [&mut a, &mut b]);
    assert_eq!(got, Err(FssError::GateBits { m: 65 }));
    let mut body = vec![0u8; super::super::dcf::DcfKey::size(8, 1) - 19];
    let mut batch = super::super::dcf::GenBatch::default();
    let got = batch.run(&[1, 2], &[1, 1], &[[0, 0]], 8, &mut body);
    assert!(
        matches!(
            got,
            Err(FssError::BatchShape {
                keys: 2,
                roots: 1,
                ..
            })
        ),
        "{got:?}"
    );
    let got = batch.run(&[256], &[1], &[[0, 0]], 8, &mut body);
    assert_eq!(got, Err(FssError::AlphaTooWide { alpha: 256, n: 8 }));
}
