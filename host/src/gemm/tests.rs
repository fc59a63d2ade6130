//! Every path and every tile against a naive product, at the edges of their bounds.

use super::pack::{exact_f64, exact_u64, mag_bits};
use super::*;
use proptest::prelude::*;

fn naive(a: &[Z64], b: &[Z64], d: MatDims) -> Vec<Z64> {
    let mut out = vec![Z64::ZERO; d.m * d.n];
    for i in 0..d.m {
        for p in 0..d.k {
            for j in 0..d.n {
                out[i * d.n + j] += a[i * d.k + p] * b[p * d.n + j];
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn z64_equals_naive_for_any_bits_and_shape(
        m in 1usize..40, k in 0usize..300, n in 1usize..300, seed in any::<u64>()
    ) {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            Z64(s ^ (s >> 29))
        };
        let a: Vec<Z64> = (0..m * k).map(|_| next()).collect();
        let b: Vec<Z64> = (0..k * n).map(|_| next()).collect();
        let d = MatDims { m, k, n };
        let mut out = vec![Z64(7); m * n];
        matmul_z64(&a, &b, d, &mut out);
        prop_assert_eq!(out, naive(&a, &b, d));
    }
}

#[test]
fn large_parallel_product_equals_naive() {
    let d = MatDims {
        m: 130,
        k: 300,
        n: 170,
    };
    let a: Vec<Z64> = (0..d.m * d.k)
        .map(|i| Z64((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let b: Vec<Z64> = (0..d.k * d.n)
        .map(|i| Z64((i as u64 ^ 0xABCDEF).wrapping_mul(0xD1B5_4A32_D192_ED03)))
        .collect();
    let want = naive(&a, &b, d);
    let mut out = vec![Z64::ZERO; d.m * d.n];
    matmul_z64(&a, &b, d, &mut out);
    assert_eq!(out, want);
    for kern in kernels() {
        let mut out = vec![Z64::ZERO; d.m * d.n];
        matmul_with(kern, &a, &b, d, &mut out);
        assert_eq!(out, want, "{kern:?}");
    }
}

#[test]
fn few_rows_many_columns_split_by_columns() {
    // One row block, so the parallel split goes over column blocks.
    let d = MatDims {
        m: 2,
        k: 700,
        n: 1030,
    };
    let (a, b) = data(d, 5);
    let want = naive(&a, &b, d);
    for kern in kernels() {
        let mut out = vec![Z64(1); d.m * d.n];
        matmul_with(kern, &a, &b, d, &mut out);
        assert_eq!(out, want, "{kern:?}");
    }
}

#[test]
fn convolution_shaped_products_equal_naive() {
    // Split along k (a weight gradient: short, narrow, long k), and by many column
    // blocks (a transposed convolution: few rows, many columns); run in a pool of
    // several threads so both parallel paths run whatever the machine.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    for (idx, &(m, k, n)) in [
        (16, 9000, 25),
        (5, 7000, 17),
        (16, 400, 1500),
        (7, 25, 9001),
    ]
    .iter()
    .enumerate()
    {
        let d = MatDims { m, k, n };
        let (a, b) = data(d, 40 + idx as u64);
        let want = naive(&a, &b, d);
        for kern in kernels() {
            let mut out = vec![Z64(7); m * n];
            pool.install(|| matmul_with(kern, &a, &b, d, &mut out));
            assert_eq!(out, want, "{kern:?} {m}x{k}x{n}");
        }
    }
}

fn data(d: MatDims, seed: u64) -> (Vec<Z64>, Vec<Z64>) {
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Z64(s ^ (s >> 29))
    };
    let a = (0..d.m * d.k).map(|_| next()).collect();
    let b = (0..d.k * d.n).map(|_| next()).collect();
    (a, b)
}

/// Every kernel this machine can run: the portable one, and AVX2 where detected.
fn kernels() -> Vec<Kernel> {
    #[allow(unused_mut)]
    let mut ks = vec![Kernel::Portable];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        ks.push(Kernel::Avx2);
    }
    ks
}

#[test]
fn each_kernel_equals_naive_on_edge_shapes() {
    let shapes = [
        (1, 1, 1),
        (1, 0, 1),
        (3, 0, 9),
        (3, 1000, 5),
        (5, 1000, 3),
        (2, 7, 1),
        (1, 300, 513),
        (4, 9, 8),
        (MR, KC, NR),
        (MR + 1, KC + 1, NR + 1),
        (257, 129, 65),
        (65, 513, 33),
        (1, 2000, 1),
    ];
    for (idx, &(m, k, n)) in shapes.iter().enumerate() {
        let d = MatDims { m, k, n };
        let (a, b) = data(d, idx as u64 + 1);
        let want = naive(&a, &b, d);
        for kern in kernels() {
            let mut out = vec![Z64(7); m * n];
            matmul_with(kern, &a, &b, d, &mut out);
            assert_eq!(out, want, "{kern:?} {m}x{k}x{n}");
        }
    }
}

#[test]
fn extreme_values_wrap_exactly() {
    // All-ones bits maximise every partial sum and carry.
    let d = MatDims {
        m: 7,
        k: 600,
        n: 11,
    };
    for fill in [u64::MAX, 0xFFFF_FFFF, 0xFFFF_FFFF_0000_0000, 1 << 63] {
        let a = vec![Z64(fill); d.m * d.k];
        let b = vec![Z64(fill.rotate_left(7) | fill); d.k * d.n];
        let want = naive(&a, &b, d);
        for kern in kernels() {
            let mut out = vec![Z64::ZERO; d.m * d.n];
            matmul_with(kern, &a, &b, d, &mut out);
            assert_eq!(out, want, "{kern:?} fill {fill:#x}");
        }
    }
}

#[test]
fn public_portable_entry_equals_naive() {
    let d = MatDims {
        m: 37,
        k: 270,
        n: 29,
    };
    let (a, b) = data(d, 99);
    let mut out = vec![Z64(3); d.m * d.n];
    matmul_z64_portable(&a, &b, d, &mut out);
    assert_eq!(out, naive(&a, &b, d));
}

#[test]
fn float_products_match_naive() {
    let d = MatDims { m: 9, k: 13, n: 7 };
    let a: Vec<f32> = (0..d.m * d.k).map(|i| (i % 7) as f32 - 3.0).collect();
    let b: Vec<f32> = (0..d.k * d.n).map(|i| (i % 5) as f32 * 0.5).collect();
    let mut out = vec![0f32; d.m * d.n];
    matmul_f32(&a, &b, d, &mut out);
    for i in 0..d.m {
        for j in 0..d.n {
            let want: f32 = (0..d.k).map(|p| a[i * d.k + p] * b[p * d.n + j]).sum();
            assert!((out[i * d.n + j] - want).abs() < 1e-4);
        }
    }
    let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
    let mut o64 = vec![0f64; d.m * d.n];
    matmul_f64(&a64, &b64, d, &mut o64);
    for (x, y) in o64.iter().zip(&out) {
        assert!((*x as f32 - y).abs() < 1e-4);
    }
}

/// Signed values of magnitude below `2^bits` (either sign), as ring elements.
fn small(len: usize, bits: u32, seed: u64) -> Vec<Z64> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((s >> 20) & ((1 << bits) - 1)) as i64;
            Z64(if s & 1 == 1 { v } else { -v } as u64)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn f64_path_equals_naive_on_fixed_point_operands(
        m in 32usize..80, k in 32usize..300, n in 32usize..120,
        abits in 1u32..24, seed in any::<u64>()
    ) {
        // |a| < 2^abits, |b| < 2^bbits with k * 2^(abits + bbits) <= 2^53: the f64 path.
        let bbits = (53 - 9 - abits).min(30);
        let (a, b) = (small(m * k, abits, seed), small(k * n, bbits, !seed));
        prop_assert!(f64_is_exact(as_u64(&a), as_u64(&b), k));
        let d = MatDims { m, k, n };
        let mut out = vec![Z64(7); m * n];
        matmul_z64(&a, &b, d, &mut out);
        prop_assert_eq!(&out, &naive(&a, &b, d));
        let mut ring = vec![Z64(9); m * n];
        matmul_z64_ring(&a, &b, d, &mut ring);
        prop_assert_eq!(out, ring);
    }
}

#[test]
fn f64_bound_is_exactly_two_to_the_53() {
    // k * max|a| * max|b| = 32 * 2^24 * 2^24 = 2^53: every sum is representable, the
    // largest (all products of one sign) being 2^53 itself.
    let d = MatDims {
        m: 32,
        k: 32,
        n: 32,
    };
    let top = 1i64 << 24;
    let a: Vec<Z64> = (0..d.m * d.k)
        .map(|i| Z64(if i % 3 == 0 { -top } else { top } as u64))
        .collect();
    let b: Vec<Z64> = (0..d.k * d.n).map(|_| Z64(top as u64)).collect();
    assert!(f64_is_exact(as_u64(&a), as_u64(&b), d.k));
    let mut out = vec![Z64::ZERO; d.m * d.n];
    matmul_z64(&a, &b, d, &mut out);
    assert_eq!(out, naive(&a, &b, d));
    // One more unit in one entry, and the bound no longer holds: the integer kernel runs,
    // with the same exact answer.
    let mut a2 = a.clone();
    a2[5] = Z64((top + 1) as u64);
    assert!(!f64_is_exact(as_u64(&a2), as_u64(&b), d.k));
    matmul_z64(&a2, &b, d, &mut out);
    assert_eq!(out, naive(&a2, &b, d));
}

#[test]
fn f64_bound_reads_signed_representatives_and_stops_on_shares() {
    let k = 100;
    // -1 is the ring element 2^64 - 1: magnitude 1, not 2^64 - 1.
    let minus_one = vec![Z64(u64::MAX); k];
    assert!(f64_is_exact(as_u64(&minus_one), as_u64(&minus_one), k));
    // i64::MIN has magnitude 2^63 (no overflow in the check).
    let min = vec![Z64(1 << 63); k];
    assert!(!f64_is_exact(as_u64(&min), as_u64(&minus_one), k));
    assert!(!f64_is_exact(as_u64(&minus_one), as_u64(&min), k));
    // Zero on one side: any other side is exact.
    let zeros = vec![Z64::ZERO; k];
    assert!(f64_is_exact(as_u64(&zeros), as_u64(&min), k));
    // Uniform ring elements (shares): no.
    let d = MatDims {
        m: 40,
        k: 40,
        n: 40,
    };
    let (a, b) = data(d, 3);
    assert!(!f64_is_exact(as_u64(&a), as_u64(&b), d.k));
    let mut out = vec![Z64::ZERO; d.m * d.n];
    matmul_z64(&a, &b, d, &mut out);
    assert_eq!(out, naive(&a, &b, d));
}

#[test]
fn short_wide_products_run_as_one_row_block() {
    // A convolution's shape (16 output channels, 400 taps, many positions) in a pool of
    // two threads: one row block, columns split, `B` packed per group of slivers.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let d = MatDims {
        m: 16,
        k: 400,
        n: 2000,
    };
    let (a, b) = data(d, 17);
    let want = naive(&a, &b, d);
    for kern in kernels() {
        let mut out = vec![Z64(5); d.m * d.n];
        pool.install(|| matmul_with(kern, &a, &b, d, &mut out));
        assert_eq!(out, want, "{kern:?}");
    }
}

/// A `rows x cols` operand whose magnitudes vary by block (`block(r, c)`), so that one
/// product runs all three tiles: the f64 tile (small values), the narrow integer tile
/// (signed 32-bit, too large for an exact f64 sum) and the split tile (anything),
/// chosen per panel and sliver.
fn tiered(rows: usize, cols: usize, seed: u64, block: impl Fn(usize, usize) -> usize) -> Vec<Z64> {
    let mut s = seed;
    (0..rows * cols)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = s ^ (s >> 29);
            match (block(i / cols, i % cols) + seed as usize) % 3 {
                // |v| < 2^14: f64-exact with any partner below.
                0 => Z64(((r % (1 << 15)) as i64 - (1 << 14)) as u64),
                // signed 32-bit, edges included.
                1 => Z64(match r % 5 {
                    0 => i32::MIN as i64 as u64,
                    1 => i32::MAX as u64,
                    _ => (r as u32 as i32) as i64 as u64,
                }),
                _ => Z64(r),
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn mixed_tiles_equal_naive(
        m in 1usize..30, k in 1usize..700, n in 1usize..200, seed in any::<u64>()
    ) {
        let d = MatDims { m, k, n };
        // Half the cases keep `A` small throughout, so that `B`'s blocks alone pick
        // the tile of each sliver (an `A` panel with one large value rules f64 out);
        // the other half vary `A` by sliver and panel too.
        let a = if seed % 2 == 0 {
            small(m * k, 14, seed)
        } else {
            tiered(m, k, seed, |i, p| i / MR + p / KC)
        };
        let b = tiered(k, n, seed >> 1, |p, j| j / NR + p / KC);
        let want = naive(&a, &b, d);
        for kern in kernels() {
            let mut out = vec![Z64(3); m * n];
            matmul_with(kern, &a, &b, d, &mut out);
            prop_assert_eq!(&out, &want, "{:?}", kern);
            let mut out = vec![Z64(3); m * n];
            serial(|| matmul_z64(&a, &b, d, &mut out));
            prop_assert_eq!(&out, &want, "serial");
        }
    }
}

#[test]
fn tile_bounds_are_exact_at_their_edges() {
    // Conversions at +-2^51, the edge of the bit-level trick.
    for v in [
        0i64,
        1,
        -1,
        (1 << 51) - 1,
        1 << 51,
        -(1 << 51),
        12345,
        -98765,
    ] {
        assert_eq!(exact_f64(v as u64), v as f64, "{v}");
        assert_eq!(exact_u64(v as f64), v as u64, "{v}");
    }
    // Magnitude bits: |v| <= 2^bits, and <= 31 exactly for signed 32-bit values.
    for (v, bits) in [
        (0i64, 0u32),
        (-1, 0),
        (1, 1),
        (i32::MAX as i64, 31),
        (i32::MIN as i64, 31),
        (i32::MAX as i64 + 1, 32),
        (i32::MIN as i64 - 1, 32),
        (i64::MIN, 63),
    ] {
        assert_eq!(mag_bits(&[v as u64]), bits, "{v}");
    }
    // The f64 tile's bound, reached exactly: k = 256 products of 2^21 * 2^22
    // (a_bits + b_bits + log2 k = 22 + 21 + 8 = 51) sum to exactly 2^51, and a
    // negative run of the same size to -2^51; one more bit sends the pair to the
    // integer tiles. Both must equal the naive product.
    // Then the narrow tile's edge: signed 32-bit values with a partner one past it
    // (2^31 and -2^31 - 1 need the split tile).
    for (av, bv) in [
        (1i64 << 21, 1i64 << 22),
        (-(1i64 << 21), 1 << 22),
        (1 << 22, 1 << 22),
        ((1 << 21) - 1, -(1 << 22) + 1),
        (i32::MIN as i64, i32::MAX as i64),
        (i32::MIN as i64, 1 << 31),
        (i32::MAX as i64, i32::MIN as i64 - 1),
    ] {
        let d = MatDims { m: 5, k: 256, n: 9 };
        let a = vec![Z64(av as u64); d.m * d.k];
        let b = vec![Z64(bv as u64); d.k * d.n];
        let want = naive(&a, &b, d);
        for kern in kernels() {
            let mut out = vec![Z64::ZERO; d.m * d.n];
            matmul_with(kern, &a, &b, d, &mut out);
            assert_eq!(out, want, "{kern:?} {av} x {bv}");
        }
    }
}

#[test]
fn serial_products_stay_on_the_caller_and_match() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let d = MatDims {
        m: 70,
        k: 300,
        n: 90,
    };
    let a = small(d.m * d.k, 12, 1);
    let b = small(d.k * d.n, 12, 2);
    let want = naive(&a, &b, d);
    let mut out = vec![Z64::ZERO; d.m * d.n];
    let caller = std::thread::current().id();
    pool.install(|| {
        serial(|| {
            let here = std::thread::current().id();
            assert_ne!(here, caller);
            matmul_z64(&a, &b, d, &mut out);
            assert!(SERIAL.with(|s| s.get()));
        });
        assert!(!SERIAL.with(|s| s.get()), "restored after serial");
    });
    assert_eq!(out, want);
}
