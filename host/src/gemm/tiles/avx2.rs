//! The x86-64 AVX2 register tiles: the split 64-bit tile, the narrow (signed 32-bit) tile
//! and the `f64` tile (AVX2 and FMA).

use crate::gemm::pack::{exact_u64, Row8};
use crate::gemm::{MR, MR_F64, NR};

/// The AVX2 register tile: `MR x NR` outputs in 12 `ymm` accumulators (`lo` and `cross` for
/// two groups of four columns per row), see the module documentation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
// Kept out of line: inlined into the AVX2-compiled packing loop it ran 10% slower at
// 512^3 (criterion, alternated with the previous build).
#[inline(never)]
pub(super) fn kernel_avx2(a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR]) {
    use std::arch::x86_64::*;
    let mut lo = [[_mm256_setzero_si256(); 2]; MR];
    let mut cr = [[_mm256_setzero_si256(); 2]; MR];
    for (ap, bp) in a.chunks_exact(2 * MR).zip(b) {
        // SAFETY: `bp.0` is 8 contiguous u64, so both 32-byte unaligned loads are in bounds.
        #[allow(unsafe_code)]
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_si256(bp.0.as_ptr().cast()),
                _mm256_loadu_si256(bp.0.as_ptr().add(4).cast()),
            )
        };
        for i in 0..MR {
            // [a_lo, a_hi] per 64-bit lane: vpmuludq takes a_lo * b_lo.
            let x = _mm256_set1_epi64x(ap[i] as i64);
            lo[i][0] = _mm256_add_epi64(lo[i][0], _mm256_mul_epu32(x, b0));
            lo[i][1] = _mm256_add_epi64(lo[i][1], _mm256_mul_epu32(x, b1));
            // [a_hi, a_lo] per lane against [b_lo, b_hi]: a_hi b_lo and a_lo b_hi, mod 2^32.
            let y = _mm256_set1_epi64x(ap[MR + i] as i64);
            cr[i][0] = _mm256_add_epi32(cr[i][0], _mm256_mullo_epi32(y, b0));
            cr[i][1] = _mm256_add_epi32(cr[i][1], _mm256_mullo_epi32(y, b1));
        }
    }
    let hi = _mm256_set1_epi64x(!0xFFFF_FFFFu64 as i64);
    for i in 0..MR {
        for h in 0..2 {
            let c = cr[i][h];
            let v = _mm256_add_epi64(
                lo[i][h],
                _mm256_add_epi64(_mm256_slli_epi64::<32>(c), _mm256_and_si256(c, hi)),
            );
            let dst = &mut tile[i * NR + 4 * h..i * NR + 4 * h + 4];
            // SAFETY: `dst` is 4 contiguous u64, exactly one 32-byte unaligned store.
            #[allow(unsafe_code)]
            unsafe {
                _mm256_storeu_si256(dst.as_mut_ptr().cast(), v)
            };
        }
    }
}

/// The AVX2 register tile for narrow slivers (every value a signed 32-bit integer, see
/// [`mag_or`](crate::gemm::pack::mag_or)): `vpmuldq` forms each product exactly as a signed 64-bit value, which is
/// the ring product; wrapping 64-bit additions accumulate it. Two multiplications and two
/// additions per row and `p` instead of four each.
///
/// # Safety
/// AVX2 must be available. (Values outside the signed 32-bit range are not unsafe, only
/// wrong: their high halves are ignored.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
pub(super) fn kernel_avx2_narrow(a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR]) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    for (ap, bp) in a.chunks_exact(2 * MR).zip(b) {
        // SAFETY: `bp.0` is 8 contiguous u64, so both 32-byte unaligned loads are in bounds.
        #[allow(unsafe_code)]
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_si256(bp.0.as_ptr().cast()),
                _mm256_loadu_si256(bp.0.as_ptr().add(4).cast()),
            )
        };
        for i in 0..MR {
            let x = _mm256_set1_epi64x(ap[i] as i64);
            acc[i][0] = _mm256_add_epi64(acc[i][0], _mm256_mul_epi32(x, b0));
            acc[i][1] = _mm256_add_epi64(acc[i][1], _mm256_mul_epi32(x, b1));
        }
    }
    for i in 0..MR {
        for h in 0..2 {
            let dst = &mut tile[i * NR + 4 * h..i * NR + 4 * h + 4];
            // SAFETY: `dst` is 4 contiguous u64, exactly one 32-byte unaligned store.
            #[allow(unsafe_code)]
            unsafe {
                _mm256_storeu_si256(dst.as_mut_ptr().cast(), acc[i][h])
            };
        }
    }
}

/// The `f64` register tile (`MR_F64 x NR` in eight `ymm` accumulators, one fused
/// multiply-add per four products): with every partial sum an integer of magnitude at most
/// 2^51 (the caller's bound), each operation is exact, so the result is the ring product's
/// signed representative. Twice the narrow integer tile's rate here: `vpmuldq` issues once per cycle on Zen 3,
/// `vfmadd231pd` twice.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) fn kernel_f64(a: &[f64], b: &[f64], tile: &mut [u64; MR_F64 * NR]) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_pd(); 2]; MR_F64];
    for (ap, bp) in a.chunks_exact(MR_F64).zip(b.chunks_exact(NR)) {
        // SAFETY: `bp` is NR = 8 contiguous f64, so both 32-byte unaligned loads are in
        // bounds.
        #[allow(unsafe_code)]
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_pd(bp.as_ptr()),
                _mm256_loadu_pd(bp.as_ptr().add(4)),
            )
        };
        for i in 0..MR_F64 {
            let x = _mm256_set1_pd(ap[i]);
            acc[i][0] = _mm256_fmadd_pd(x, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_pd(x, b1, acc[i][1]);
        }
    }
    let mut out = [0f64; MR_F64 * NR];
    for i in 0..MR_F64 {
        for h in 0..2 {
            let dst = &mut out[i * NR + 4 * h..i * NR + 4 * h + 4];
            // SAFETY: `dst` is 4 contiguous f64, exactly one 32-byte unaligned store.
            #[allow(unsafe_code)]
            unsafe {
                _mm256_storeu_pd(dst.as_mut_ptr(), acc[i][h])
            };
        }
    }
    for (t, v) in tile.iter_mut().zip(out) {
        *t = exact_u64(v);
    }
}
