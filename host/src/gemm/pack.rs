//! Packing: `B` into 64-byte-aligned slivers of `NR` columns, rows of a panel into
//! slivers for the tiles, the magnitudes that choose a tile, and the exact conversions
//! between small integers and `f64` that the `f64` tile uses.

use super::{MR_F64, NR};
use rayon::prelude::*;

/// One row of a packed `B` sliver: `NR` values, aligned to a cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
pub(super) struct Row8(pub(super) [u64; NR]);

impl Row8 {
    /// The values of consecutive rows, in order.
    #[inline]
    pub(super) fn flat(rows: &[Row8]) -> &[u64] {
        // SAFETY: `Row8` is `repr(C)` over `[u64; NR]` and its alignment (64) is a multiple
        // of its size's granularity (64 bytes = NR u64), so rows are contiguous with no
        // padding: `rows.len() * NR` initialised u64 values.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(rows.as_ptr().cast::<u64>(), rows.len() * NR)
        }
    }
}

/// The OR over `x` of each value's magnitude bits: `v` for `v >= 0`, `!v = |v| - 1` for
/// `v < 0` (signed representatives). Its bit length `L` ([`mag_bits`]) bounds every
/// `|v| <= 2^L`, and `L <= 31` exactly when every value is a signed 32-bit integer.
#[inline]
pub(super) fn mag_or(x: &[u64]) -> u64 {
    x.iter()
        .fold(0u64, |acc, &v| acc | (v ^ ((v as i64 >> 63) as u64)))
}

/// The bit length of [`mag_or`].
pub(super) fn mag_bits(x: &[u64]) -> u32 {
    u64::BITS - mag_or(x).leading_zeros()
}

/// `ceil(log2(k))` for `k >= 1`.
#[inline]
pub(super) fn ceil_log2(k: usize) -> u32 {
    usize::BITS - (k.max(1) - 1).leading_zeros()
}

/// Packs `B` (`k x n`): sliver `s` holds columns `s*NR..` for every `p`, zero-padded past
/// `n`. Row by row of `B` (reads in order; each write is one cache line).
pub(super) fn pack_b(b: &[u64], k: usize, n: usize, parallel: bool) -> Vec<Row8> {
    let mut bp = vec![Row8::default(); n.div_ceil(NR) * k];
    let ptr = RowPtr(bp.as_mut_ptr());
    if parallel && k >= 64 {
        let chunk = k.div_ceil(4 * rayon::current_num_threads());
        (0..k.div_ceil(chunk)).into_par_iter().for_each(|t| {
            // SAFETY: `bp` holds `slivers * k` rows and outlives the loop (joined before
            // returning); each task writes rows `p` of its own range only, disjoint.
            #[allow(unsafe_code)]
            unsafe {
                pack_b_rows(b, k, n, ptr, t * chunk..((t + 1) * chunk).min(k))
            };
        });
    } else {
        // SAFETY: as above, on this thread alone.
        #[allow(unsafe_code)]
        unsafe {
            pack_b_rows(b, k, n, ptr, 0..k)
        };
    }
    bp
}

/// Writes rows `p` in `p_range` of every sliver of the packed `B`.
///
/// # Safety
/// `bp` must address `n.div_ceil(NR) * k` rows, and no other thread may access rows of
/// `p_range` meanwhile.
#[allow(unsafe_code)]
unsafe fn pack_b_rows(b: &[u64], k: usize, n: usize, bp: RowPtr, p_range: std::ops::Range<usize>) {
    let (full, slivers) = (n / NR, n.div_ceil(NR));
    for p in p_range {
        let row = &b[p * n..(p + 1) * n];
        for s in 0..full {
            let src: &[u64; NR] = row[s * NR..(s + 1) * NR].try_into().expect("NR values");
            // SAFETY: `s * k + p` is below `slivers * k` (caller), and row `p` is ours.
            unsafe { (*bp.0.add(s * k + p)).0 = *src };
        }
        if full < slivers {
            let mut last = [0u64; NR];
            last[..n - full * NR].copy_from_slice(&row[full * NR..]);
            // SAFETY: as above.
            unsafe { (*bp.0.add(full * k + p)).0 = last };
        }
    }
}

/// The packed `B`'s base pointer, shared by packing tasks that write disjoint rows.
#[derive(Clone, Copy)]
struct RowPtr(*mut Row8);

// SAFETY: only dereferenced in `pack_b_rows`, whose callers write disjoint rows.
#[allow(unsafe_code)]
unsafe impl Send for RowPtr {}

// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl Sync for RowPtr {}

/// Writes `vals` (at most `NR`) into `row`, zero past them.
#[inline]
pub(super) fn pack_row(row: &mut Row8, vals: &[u64]) {
    if let Ok(full) = <&[u64; NR]>::try_from(vals) {
        row.0 = *full;
    } else {
        row.0 = [0; NR];
        row.0[..vals.len()].copy_from_slice(vals);
    }
}

/// 1.5 * 2^52: every integer `v` with `|v| <= 2^51` gives `MAGIC + v` in `[2^52, 2^53]`,
/// where the spacing of f64 is 1, and there its bits are `MAGIC`'s plus `v`. Integer and
/// f64 conversions become one addition and one subtraction, which vectorise (x86-64
/// before AVX-512 has no vector conversion between i64 and f64; the scalar one issued once
/// per cycle and cost almost as much as the f64 tile saved).
const MAGIC: f64 = 6_755_399_441_055_744.0;

/// `v` (a signed representative with `|v| <= 2^51`) as f64, exactly.
#[inline]
pub(super) fn exact_f64(v: u64) -> f64 {
    f64::from_bits(MAGIC.to_bits().wrapping_add(v)) - MAGIC
}

/// `x` (an integer with `|x| <= 2^51`) as a ring element, exactly.
#[inline]
pub(super) fn exact_u64(x: f64) -> u64 {
    (x + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits())
}

/// Rows `r0..r1` of `a` (`k` wide), columns `p0..p0 + kc`, as `f64` slivers of `MR_F64`
/// rows: for each `p`, `MR_F64` values (zero past `r1`). Every value must be within
/// 2^51 (the caller's bound).
pub(super) fn to_f64_panel(
    a: &[u64],
    k: usize,
    r0: usize,
    r1: usize,
    p0: usize,
    kc: usize,
    apf: &mut Vec<f64>,
) {
    apf.clear();
    for t0 in (r0..r1).step_by(MR_F64) {
        let rows: [Option<&[u64]>; MR_F64] = std::array::from_fn(|i| {
            (t0 + i < r1).then(|| &a[(t0 + i) * k + p0..(t0 + i) * k + p0 + kc])
        });
        for p in 0..kc {
            apf.extend(rows.iter().map(|r| r.map_or(0.0, |r| exact_f64(r[p]))));
        }
    }
}
