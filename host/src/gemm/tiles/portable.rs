//! The portable register tile, for CPUs without AVX2.

use crate::gemm::pack::Row8;
use crate::gemm::{MR, NR};

/// The portable register tile: scalar wrapping 64-bit multiply-accumulates on the same
/// packed layout (the swapped copies of `A` are not needed).
#[inline]
pub(super) fn kernel_portable(a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR]) {
    let mut acc = [[0u64; NR]; MR];
    for (ap, bp) in a.chunks_exact(2 * MR).zip(b) {
        for (row, &x) in acc.iter_mut().zip(&ap[..MR]) {
            for (c, &y) in row.iter_mut().zip(&bp.0) {
                *c = c.wrapping_add(x.wrapping_mul(y));
            }
        }
    }
    for (dst, row) in tile.chunks_exact_mut(NR).zip(&acc) {
        dst.copy_from_slice(row);
    }
}
