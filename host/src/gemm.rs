//! Fast matrix products for the plaintext engines, plugged in through
//! [`Plain::with_matmul`](ringnn_core::Plain::with_matmul) and
//! [`Float::with_matmul`](ringnn_core::Float::with_matmul).
//!
//! # Z_2^64
//! A 64-bit product modulo 2^64 splits into 32-bit halves:
//! `a * b = a_lo b_lo + 2^32 (a_lo b_hi + a_hi b_lo)  (mod 2^64)`, and each half product is
//! a 32x32->64 multiplication (`vpmuludq`, four lanes per instruction with AVX2). The kernel
//! keeps two accumulators per output, `lo = sum a_lo b_lo` and `cross = sum (a_lo b_hi +
//! a_hi b_lo)` (only its low 32 bits matter), and adds `cross << 32` once at the end: three
//! vector multiplications per four multiply-accumulates, where x86-64 without AVX-512 has no
//! 64-bit vector multiplication at all.
//!
//! Work is split by rows of the output over the rayon pool; each task runs a blocked kernel
//! (tiles of 128 output columns, panels of 128 rows of `B`, two rows of `A` at a time). The kernel is
//! one portable function compiled twice, once with AVX2 enabled, chosen at run time
//! (`is_x86_feature_detected!`); other machines get the portable build.
//!
//! # f32 / f64
//! `matrixmultiply` (with its threading feature), a well-kept packed GEMM.

use rayon::prelude::*;
use ringnn_core::engine::MatDims;
use ringnn_core::Z64;

/// Output columns per tile.
const JT: usize = 128;
/// Rows of `B` per panel.
const KP: usize = 128;
/// Rows of the output per parallel task.
const ROWS_PER_TASK: usize = 32;

/// `out = a * b` in Z_2^64 (wrapping), blocked, multi-threaded, AVX2 where available.
///
/// # Panics
/// If the slice lengths do not match `dims`.
pub fn matmul_z64(a: &[Z64], b: &[Z64], dims: MatDims, out: &mut [Z64]) {
    let MatDims { m, k, n } = dims;
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "matmul_z64: shape mismatch"
    );
    if m == 0 || n == 0 {
        return;
    }
    // Z64 is repr(transparent) over u64; reinterpret through bytemuck-free safe copies is
    // costly, so work on the raw values through a safe view.
    let a = as_u64(a);
    let b = as_u64(b);
    let bhi: Vec<u64> = b.iter().map(|v| v >> 32).collect();
    let out = as_u64_mut(out);
    let small = m * k * n < 1 << 15;
    let run = |(t, chunk): (usize, &mut [u64])| {
        let r0 = t * ROWS_PER_TASK;
        let rows = chunk.len() / n;
        block(&a[r0 * k..(r0 + rows) * k], b, &bhi, rows, k, n, chunk);
    };
    if small {
        out.chunks_mut(ROWS_PER_TASK * n).enumerate().for_each(run);
    } else {
        out.par_chunks_mut(ROWS_PER_TASK * n)
            .enumerate()
            .for_each(run);
    }
}

fn as_u64(x: &[Z64]) -> &[u64] {
    // SAFETY: Z64 is #[repr(transparent)] over u64, so the layouts are identical.
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts(x.as_ptr().cast::<u64>(), x.len())
    }
}

fn as_u64_mut(x: &mut [Z64]) -> &mut [u64] {
    // SAFETY: as in `as_u64`; the exclusive borrow is carried over.
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<u64>(), x.len())
    }
}

fn block(a: &[u64], b: &[u64], bhi: &[u64], m: usize, k: usize, n: usize, out: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            #[allow(unsafe_code)]
            unsafe {
                return block_avx2(a, b, bhi, m, k, n, out);
            }
        }
    }
    block_portable(a, b, bhi, m, k, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn block_avx2(a: &[u64], b: &[u64], bhi: &[u64], m: usize, k: usize, n: usize, out: &mut [u64]) {
    block_body(a, b, bhi, m, k, n, out)
}

fn block_portable(
    a: &[u64],
    b: &[u64],
    bhi: &[u64],
    m: usize,
    k: usize,
    n: usize,
    out: &mut [u64],
) {
    block_body(a, b, bhi, m, k, n, out)
}

/// The blocked kernel, inlined into each feature-specific copy: for a tile of `JT` output
/// columns and a panel of `KP` rows of `B` (which stay in L2), two rows of `A` at a time
/// update their `lo` and `cross` accumulators (in L1) with one pass over the tile per `k`:
/// each loaded `B` value serves two rows.
#[inline(always)]
fn block_body(a: &[u64], b: &[u64], bhi: &[u64], m: usize, k: usize, n: usize, out: &mut [u64]) {
    const LO: u64 = 0xFFFF_FFFF;
    let mut lo = vec![0u64; m * JT];
    let mut cr = vec![0u64; m * JT];
    let mut j0 = 0;
    while j0 < n {
        let jt = JT.min(n - j0);
        lo.fill(0);
        cr.fill(0);
        let mut p0 = 0;
        while p0 < k {
            let kp = KP.min(k - p0);
            let mut i = 0;
            while i < m {
                let two = i + 1 < m;
                let (l0, l1) = lo[i * JT..].split_at_mut(JT);
                let (c0, c1) = cr[i * JT..].split_at_mut(JT);
                let (l0, c0) = (&mut l0[..jt], &mut c0[..jt]);
                for p in p0..p0 + kp {
                    let br = &b[p * n + j0..p * n + j0 + jt];
                    let bh = &bhi[p * n + j0..p * n + j0 + jt];
                    let x0 = a[i * k + p];
                    let (x0l, x0h) = (x0 & LO, x0 >> 32);
                    if two {
                        let x1 = a[(i + 1) * k + p];
                        let (x1l, x1h) = (x1 & LO, x1 >> 32);
                        let (l1, c1) = (&mut l1[..jt], &mut c1[..jt]);
                        for j in 0..jt {
                            let (bl, bhh) = (br[j] & LO, bh[j] & LO);
                            l0[j] = l0[j].wrapping_add(bl * x0l);
                            c0[j] = c0[j].wrapping_add(bhh * x0l).wrapping_add(bl * x0h);
                            l1[j] = l1[j].wrapping_add(bl * x1l);
                            c1[j] = c1[j].wrapping_add(bhh * x1l).wrapping_add(bl * x1h);
                        }
                    } else {
                        for j in 0..jt {
                            let (bl, bhh) = (br[j] & LO, bh[j] & LO);
                            l0[j] = l0[j].wrapping_add(bl * x0l);
                            c0[j] = c0[j].wrapping_add(bhh * x0l).wrapping_add(bl * x0h);
                        }
                    }
                }
                i += if two { 2 } else { 1 };
            }
            p0 += kp;
        }
        for i in 0..m {
            let row = &mut out[i * n + j0..i * n + j0 + jt];
            for (j, o) in row.iter_mut().enumerate() {
                *o = lo[i * JT + j].wrapping_add(cr[i * JT + j] << 32);
            }
        }
        j0 += jt;
    }
}

/// `out = a * b` in f32 through `matrixmultiply`.
///
/// # Panics
/// If the slice lengths do not match `dims`.
pub fn matmul_f32(a: &[f32], b: &[f32], dims: MatDims, out: &mut [f32]) {
    let MatDims { m, k, n } = dims;
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "matmul_f32: shape mismatch"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: the pointers come from slices whose lengths were checked against the
    // row-major strides (rows of k, n and n elements) passed alongside.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `out = a * b` in f64 through `matrixmultiply`.
///
/// # Panics
/// If the slice lengths do not match `dims`.
pub fn matmul_f64(a: &[f64], b: &[f64], dims: MatDims, out: &mut [f64]) {
    let MatDims { m, k, n } = dims;
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "matmul_f64: shape mismatch"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: as in `matmul_f32`.
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
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
        let mut out = vec![Z64::ZERO; d.m * d.n];
        matmul_z64(&a, &b, d, &mut out);
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
}
