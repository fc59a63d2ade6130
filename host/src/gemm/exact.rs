//! The exact `f64` path: when `k * max|a| * max|b| <= 2^53`, `matrixmultiply`'s `f64`
//! product, converted back, is the ring product bit for bit (see the parent module).

use super::matmul_f64;
use rayon::prelude::*;
use ringnn_core::engine::MatDims;
use ringnn_core::Z64;

/// The `f64` path is taken only when every side of the product is at least this long:
/// converting `A`, `B` and the output costs about one pass over each, which a product with
/// a short side (a convolution's 16 channels or 25 taps) does not earn back against
/// `matrixmultiply`'s faster kernel (measured on LeNet's and the mlp's shapes).
pub(super) const F64_PATH_MIN_SIDE: usize = 32;

/// Whether every partial sum of `a * b` (inner dimension `k`), read with signed
/// representatives, is an integer of magnitude at most 2^53, so that an `f64` product
/// computes it exactly, in any order of additions, with or without fused multiply-adds.
///
/// With `|a_ip| <= A` and `|b_pj| <= B`, every product and every partial sum is at most
/// `k A B` in magnitude; if `k A B <= 2^53` all of them are integers `f64` represents, so each
/// rounding is exact, and the result is the ring product's signed representative. The scan
/// stops at the first value that rules it out: uniform ring elements (shares) leave after
/// about one element each.
pub(super) fn f64_is_exact(a: &[u64], b: &[u64], k: usize) -> bool {
    const LIMIT: u128 = 1 << 53;
    // The largest |x| over `x`, or None as soon as one exceeds `limit`.
    fn max_abs(x: &[u64], limit: u64) -> Option<u64> {
        let mut max = 0;
        for &v in x {
            let m = (v as i64).unsigned_abs();
            if m > limit {
                return None;
            }
            max = max.max(m);
        }
        Some(max)
    }
    let k = k as u128;
    let Some(max_a) = max_abs(a, (LIMIT / k.max(1)) as u64) else {
        return false;
    };
    if max_a == 0 {
        return true;
    }
    let limit_b = LIMIT / (k * max_a as u128);
    max_abs(b, limit_b as u64).is_some()
}

/// Largest `f64` buffer (elements) that [`matmul_z64_via_f64`] keeps per thread between
/// calls (32 MiB); larger ones are freed after use.
const F64_KEEP_MAX: usize = 1 << 22;

thread_local! {
    /// `A`, `B` and the output in `f64`, kept between calls: fresh buffers of a few MiB cost
    /// a page fault per 4 KiB on first write, which at 512 x 512 x 512 took as long as the
    /// product itself.
    static F64_BUFFERS: std::cell::RefCell<[Vec<f64>; 3]> = Default::default();
}

/// `out = a * b` computed in `f64` by `matrixmultiply` and converted back; exact only when
/// [`f64_is_exact`] holds (checked by the caller).
pub(super) fn matmul_z64_via_f64(a: &[Z64], b: &[Z64], dims: MatDims, out: &mut [Z64]) {
    let MatDims { m, k, n } = dims;
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "matmul_z64: shape mismatch"
    );
    const CHUNK: usize = 1 << 14;
    fn to_f64(x: &[Z64], y: &mut Vec<f64>) {
        y.resize(x.len(), 0.0);
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (d, s) in d.iter_mut().zip(s) {
                    *d = s.0 as i64 as f64;
                }
            });
    }
    let mut run = |bufs: &mut [Vec<f64>; 3]| {
        let [af, bf, of] = bufs;
        to_f64(a, af);
        to_f64(b, bf);
        of.resize(m * n, 0.0);
        matmul_f64(af, bf, dims, of);
        out.par_chunks_mut(CHUNK)
            .zip(of.par_chunks(CHUNK))
            .for_each(|(d, s)| {
                for (d, s) in d.iter_mut().zip(s.iter()) {
                    // An integer of magnitude at most 2^53 (f64_is_exact): the cast is exact.
                    *d = Z64(*s as i64 as u64);
                }
            });
        for v in bufs.iter_mut() {
            if v.capacity() > F64_KEEP_MAX {
                *v = Vec::new();
            }
        }
    };
    // While this thread waits inside rayon, it may run another task that lands here again:
    // that one uses buffers of its own.
    F64_BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => run(&mut bufs),
        Err(_) => run(&mut Default::default()),
    });
}
