//! The DCF: exhaustive on small widths, edges and random points on 64 bits, the batched
//! walk against the reference, determinism, and one key's independence of `α`.

use super::super::dcf::{self, DcfKey, LANES};
use super::super::prg;
use super::super::FssError;
use super::{lt, reference_eval, rng};
use crate::mpc::PartyId::{P0, P1};
use proptest::prelude::*;
use rand::RngCore;

fn sum(k0: &DcfKey, k1: &DcfKey, x: u64) -> u64 {
    dcf::eval(P0, k0, x).wrapping_add(dcf::eval(P1, k1, x))
}

#[test]
fn exhaustive_for_every_width_up_to_8() {
    let mut r = rng(1);
    for n in 1..=8u32 {
        let xs: Vec<u64> = (0..1u64 << n).collect();
        for alpha in 0..1u64 << n {
            for beta in [1, u64::MAX, r.next_u64()] {
                let (k0, k1) = dcf::gen(alpha, beta, n, &mut r).unwrap();
                let s0 = dcf::eval_many(P0, &k0, &xs);
                let s1 = dcf::eval_many(P1, &k1, &xs);
                for &x in &xs {
                    let got = s0[x as usize].wrapping_add(s1[x as usize]);
                    assert_eq!(got, lt(alpha, x, n, beta), "n={n} alpha={alpha} x={x}");
                }
            }
        }
    }
}

const EDGES: [u64; 8] = [
    0,
    1,
    2,
    (1 << 63) - 1,
    1 << 63,
    (1 << 63) + 1,
    u64::MAX - 1,
    u64::MAX,
];

#[test]
fn edges_on_64_bits() {
    let mut r = rng(2);
    for alpha in EDGES {
        let beta = r.next_u64();
        let (k0, k1) = dcf::gen(alpha, beta, 64, &mut r).unwrap();
        let mut xs: Vec<u64> = EDGES.to_vec();
        xs.extend([alpha, alpha.wrapping_add(1), alpha.wrapping_sub(1)]);
        for x in xs {
            assert_eq!(
                sum(&k0, &k1, x),
                lt(alpha, x, 64, beta),
                "alpha={alpha:#x} x={x:#x}"
            );
        }
    }
}

#[test]
fn only_the_low_n_bits_of_x_count() {
    let mut r = rng(3);
    let (k0, k1) = dcf::gen(5, 7, 4, &mut r).unwrap();
    assert_eq!(sum(&k0, &k1, 0xf0 | 3), 7);
    assert_eq!(sum(&k0, &k1, 0xf0 | 5), 0);
}

#[test]
fn gen_refuses_bad_shapes() {
    let mut r = rng(4);
    assert_eq!(dcf::gen(0, 1, 0, &mut r), Err(FssError::InputBits { n: 0 }));
    assert_eq!(
        dcf::gen(0, 1, 65, &mut r),
        Err(FssError::InputBits { n: 65 })
    );
    assert_eq!(
        dcf::gen(16, 1, 4, &mut r),
        Err(FssError::AlphaTooWide { alpha: 16, n: 4 })
    );
    assert_eq!(
        dcf::gen_vec(0, &[], 8, &mut r),
        Err(FssError::OutputWords { w: 0 })
    );
    assert_eq!(
        dcf::gen_vec(0, &[1; 17], 8, &mut r),
        Err(FssError::OutputWords { w: 17 })
    );
    assert!(dcf::gen_vec(0, &[1; 16], 8, &mut r).is_ok());
}

#[test]
fn vector_outputs_every_word_width() {
    let mut r = rng(5);
    for w in 1..=dcf::MAX_WORDS {
        let n = 6;
        let beta: Vec<u64> = (0..w).map(|_| r.next_u64()).collect();
        let alpha = r.next_u64() % 64;
        let (k0, k1) = dcf::gen_vec(alpha, &beta, n, &mut r).unwrap();
        assert_eq!(k0.words(), w);
        let xs: Vec<u64> = (0..64).collect();
        let s0 = dcf::eval_many(P0, &k0, &xs);
        let s1 = dcf::eval_many(P1, &k1, &xs);
        for &x in &xs {
            for (j, &b) in beta.iter().enumerate() {
                let i = x as usize * w + j;
                let want = lt(alpha, x, n, b);
                assert_eq!(s0[i].wrapping_add(s1[i]), want, "w={w} x={x} word {j}");
            }
            assert_eq!(
                dcf::eval_vec(P0, &k0, x),
                s0[x as usize * w..][..w].to_vec()
            );
        }
    }
}

#[test]
fn batched_walk_matches_the_reference_node_by_node() {
    let mut r = rng(6);
    // Mixed shapes (runs shorter than LANES), and more points than LANES.
    let mut keys = [Vec::new(), Vec::new()];
    let mut xs = Vec::new();
    for i in 0..3 * LANES + 5 {
        // A run of one shape longer than LANES, then runs of 1 to 4.
        let (n, w) = if i < LANES + 3 {
            (64, 1)
        } else {
            ([17, 1, 33, 64][(i / 4) % 4], 1 + (i / 7) % 3)
        };
        let alpha = if n == 64 {
            r.next_u64()
        } else {
            r.next_u64() % (1 << n)
        };
        let beta: Vec<u64> = (0..w).map(|_| r.next_u64()).collect();
        let (k0, k1) = dcf::gen_vec(alpha, &beta, n, &mut r).unwrap();
        keys[0].push(k0);
        keys[1].push(k1);
        xs.push(if i % 3 == 0 { alpha } else { r.next_u64() });
    }
    for p in [P0, P1] {
        let batch = dcf::eval_batch(p, &keys[p.index()], &xs).unwrap();
        let want: Vec<u64> = keys[p.index()]
            .iter()
            .zip(&xs)
            .flat_map(|(k, &x)| reference_eval(p, k, x))
            .collect();
        assert_eq!(batch, want, "{p}");
    }
    let many = dcf::eval_many(P1, &keys[1][0], &xs);
    let want: Vec<u64> = xs
        .iter()
        .flat_map(|&x| reference_eval(P1, &keys[1][0], x))
        .collect();
    assert_eq!(many, want);
    assert_eq!(
        dcf::eval_batch(P0, &keys[0], &xs[1..]),
        Err(FssError::Lengths {
            keys: keys[0].len(),
            points: xs.len() - 1
        })
    );
    assert!(dcf::eval_many(P0, &keys[0][0], &[]).is_empty());
}

#[test]
fn gen_is_deterministic_in_its_rng() {
    let a = dcf::gen(12345, 6789, 64, &mut rng(7)).unwrap();
    let b = dcf::gen(12345, 6789, 64, &mut rng(7)).unwrap();
    let c = dcf::gen(12345, 6789, 64, &mut rng(8)).unwrap();
    assert_eq!(a.0.to_bytes(), b.0.to_bytes());
    assert_eq!(a.1.to_bytes(), b.1.to_bytes());
    assert_ne!(a.0.to_bytes(), c.0.to_bytes());
    // Both keys share everything but the root seed.
    assert_eq!(a.0.to_bytes()[19..], a.1.to_bytes()[19..]);
    assert_ne!(a.0.to_bytes()[3..19], a.1.to_bytes()[3..19]);
}

#[test]
fn prg_blocks_differ_by_tweak_and_seed() {
    let e = prg::expand(2, 2);
    let f = prg::expand(4, 2);
    assert_ne!(e.seeds[0], e.seeds[1]);
    assert_ne!(e.seeds, f.seeds);
    assert_eq!(e.seeds[0] & 1, 0);
    assert_eq!(e.values.len(), 4);
    assert_eq!(prg::convert(2, 2), e.values[..2].to_vec());
}

/// One party's keys for `α = 0, β = 1` and for `α = 2^n - 1, β = -1` (the two extremes of
/// the path) have the same bit frequencies at every position of their bytes and of the
/// party's own outputs at a few points, within 6 standard deviations of the difference of
/// two frequencies of `N` fair bits (deterministic seeds: this cannot flake). A key that
/// carried `α`'s bits in a field (e.g. `t_CW = α_i`, a root seed with bits of `α`), or a
/// share that is `β [x < α]` plus something `α`-independent, would be off by about one
/// half at those positions. A first-order test: it does not see dependencies between
/// positions, which the PRG argument in the module documentation covers.
#[test]
fn one_key_alone_does_not_depend_on_alpha() {
    const N: usize = 3000;
    let n = 6u32;
    let size = DcfKey::size(n, 1);
    let freq = |alpha: u64, beta: u64, party: usize, seed: u64| {
        let mut r = rng(seed);
        let mut ones = vec![0u32; 8 * (size + 3 * 8)];
        for _ in 0..N {
            let keys = dcf::gen(alpha, beta, n, &mut r).unwrap();
            let key = [keys.0, keys.1][party].clone();
            let mut b = key.to_bytes();
            for x in [0, 31, 63] {
                let p = [P0, P1][party];
                b.extend_from_slice(&dcf::eval(p, &key, x).to_le_bytes());
            }
            for (i, byte) in b.iter().enumerate() {
                for bit in 0..8 {
                    ones[8 * i + bit] += u32::from((byte >> bit) & 1);
                }
            }
        }
        ones
    };
    let tol = 6.0 * (0.5 / N as f64).sqrt() * N as f64;
    for party in 0..2 {
        let a = freq(0, 1, party, 100 + party as u64);
        let b = freq((1 << n) - 1, u64::MAX, party, 200 + party as u64);
        for (i, (&x, &y)) in a.iter().zip(&b).enumerate() {
            let d = (f64::from(x) - f64::from(y)).abs();
            assert!(
                d <= tol,
                "party {party}, byte {} bit {}: {x} vs {y}",
                i / 8,
                i % 8
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_points_on_64_bits(alpha in any::<u64>(), x in any::<u64>(), beta in any::<u64>(),
                                seed in any::<u64>()) {
        let (k0, k1) = dcf::gen(alpha, beta, 64, &mut rng(seed)).unwrap();
        for x in [x, alpha, alpha.wrapping_add(1), alpha.wrapping_sub(1)] {
            prop_assert_eq!(sum(&k0, &k1, x), lt(alpha, x, 64, beta));
        }
    }

    #[test]
    fn random_points_any_width(n in 1u32..=64, alpha in any::<u64>(), x in any::<u64>(),
                               beta in any::<u64>(), seed in any::<u64>()) {
        let alpha = if n == 64 { alpha } else { alpha % (1 << n) };
        let (k0, k1) = dcf::gen(alpha, beta, n, &mut rng(seed)).unwrap();
        prop_assert_eq!(sum(&k0, &k1, x), lt(alpha, x, n, beta));
        prop_assert_eq!(sum(&k0, &k1, alpha), 0);
    }
}
