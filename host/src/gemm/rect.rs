//! One rectangle of the output: `A` packed per panel, and each (`A` sliver, `B` sliver)
//! pair run on the cheapest register tile that is exact for its values.

use super::pack::{ceil_log2, exact_f64, mag_bits, mag_or, pack_row, to_f64_panel, Row8};
use super::tiles::Kernel;
use super::{KC, MR, MR_F64, NR, RAW_GROUP};

/// Where [`compute_rect`] finds `B`: packed once for all (slivers of `k` rows), or as given
/// (`k x n` row-major), each panel of a sliver packed just before use.
#[derive(Clone, Copy)]
pub(super) enum BSource<'a> {
    Packed(&'a [Row8]),
    Raw(&'a [u64]),
}

/// The operands of a product as [`compute_rect`] reads them: `a` row-major with `k`
/// columns, `b` as `k x n` (packed or raw).
#[derive(Clone, Copy)]
pub(super) struct Operands<'a> {
    pub(super) a: &'a [u64],
    pub(super) b: BSource<'a>,
    pub(super) k: usize,
    pub(super) n: usize,
}

/// A rectangle of the output: rows `r0..r1`, columns `c0..c1`.
#[derive(Clone, Copy)]
pub(super) struct Rect {
    pub(super) r0: usize,
    pub(super) r1: usize,
    pub(super) c0: usize,
    pub(super) c1: usize,
}

impl Rect {
    /// The `rows x cols` rectangle whose top-left element is (`r0`, `c0`).
    fn at(r0: usize, c0: usize, rows: usize, cols: usize) -> Self {
        Rect {
            r0,
            r1: r0 + rows,
            c0,
            c1: c0 + cols,
        }
    }
}

/// An output's base pointer (row-major, `n` wide), shared by tasks that write disjoint
/// rectangles.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut u64);

// SAFETY: `OutPtr` is only dereferenced in `compute_rect`, whose callers guarantee that
// concurrent writers touch disjoint elements.
#[allow(unsafe_code)]
unsafe impl Send for OutPtr {}

// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl Sync for OutPtr {}

/// Computes one rectangle of `a[.., p] * b[p, ..]` over `p` in `prange` straight into the
/// output (overwriting it: the first `KC` panel stores, later ones add), packing `A` per
/// panel and running the register tile over every (sliver of `B`, sliver of `A`) pair.
///
/// # Safety
/// `dst` must address a live row-major output `n` wide with `rect` inside it, and no other
/// thread may access this rectangle's elements meanwhile.
#[allow(unsafe_code)]
pub(super) unsafe fn compute_rect(
    kernel: Kernel,
    ops: Operands<'_>,
    rect: Rect,
    prange: std::ops::Range<usize>,
    dst: OutPtr,
) {
    debug_assert!(rect.c1 <= ops.n && rect.c0.is_multiple_of(NR) && prange.end <= ops.k);
    PACK_BUFFERS.with(|cell| match cell.try_borrow_mut() {
        // SAFETY: forwarded from this function's contract.
        Ok(mut bufs) => unsafe { compute_rect_in(&mut bufs, kernel, ops, rect, prange, dst) },
        // SAFETY: as above (a task run while this thread waited inside the first one).
        Err(_) => unsafe {
            compute_rect_in(&mut PackBuffers::default(), kernel, ops, rect, prange, dst)
        },
    })
}

/// [`compute_rect`]'s packing buffers, kept per thread: allocated and zeroed per call, the
/// raw `B` panel alone was a 256 KiB `memset` for every product (about 4% of a LeNet
/// training profile). Every element is written before it is read, so stale contents from
/// an earlier call never leak into a result.
#[derive(Default)]
struct PackBuffers {
    /// `A`'s panel for the integer tiles (values and half-swapped copies).
    ap: Vec<u64>,
    /// The same rows of `A` in `f64`, in slivers of `MR_F64` (the `f64` tile), converted
    /// from `A` when a `B` sliver first takes the f64 tile.
    apf: Vec<f64>,
    /// Per `A` sliver of the panel: [`mag_bits`].
    a_bits: Vec<u32>,
    /// A raw `B`'s panel for a group of slivers, as ring rows ...
    local: Vec<Row8>,
    /// ... or in f64 (`NR` values per row).
    localf: Vec<f64>,
    /// One `B` sliver panel in `f64`.
    bf: Vec<f64>,
}

thread_local! {
    static PACK_BUFFERS: std::cell::RefCell<PackBuffers> = Default::default();
}

/// [`compute_rect_body`], compiled for AVX2 when that kernel runs (the packing loops then
/// use 256-bit vectors).
///
/// # Safety
/// As [`compute_rect`].
#[allow(unsafe_code)]
unsafe fn compute_rect_in(
    bufs: &mut PackBuffers,
    kernel: Kernel,
    ops: Operands<'_>,
    rect: Rect,
    prange: std::ops::Range<usize>,
    dst: OutPtr,
) {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn avx2(
        bufs: &mut PackBuffers,
        kernel: Kernel,
        ops: Operands<'_>,
        rect: Rect,
        prange: std::ops::Range<usize>,
        dst: OutPtr,
    ) {
        // SAFETY: forwarded.
        unsafe { compute_rect_body(bufs, kernel, ops, rect, prange, dst) }
    }
    match kernel {
        // SAFETY: `Kernel::Avx2` exists only where AVX2 was detected; the rest forwarded.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2(bufs, kernel, ops, rect, prange, dst) },
        // SAFETY: forwarded.
        _ => unsafe { compute_rect_body(bufs, kernel, ops, rect, prange, dst) },
    }
}

/// [`compute_rect`] with its buffers. Each (`A` sliver, `B` sliver) pair of a panel runs
/// the cheapest tile its values allow (see the module documentation): `f64` when the
/// panel's partial sums are exact there, the narrow integer tile when every value is a
/// signed 32-bit integer, the split 64-bit tile otherwise.
///
/// # Safety
/// As [`compute_rect`].
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn compute_rect_body(
    bufs: &mut PackBuffers,
    kernel: Kernel,
    ops: Operands<'_>,
    rect: Rect,
    prange: std::ops::Range<usize>,
    dst: OutPtr,
) {
    let Operands { a, b, k, n } = ops;
    let (h, w) = (rect.r1 - rect.r0, rect.c1 - rect.c0);
    let a_slivers = h.div_ceil(MR);
    let kc_max = KC.min(prange.len());
    let f64_tile = kernel.has_f64_tile();
    let PackBuffers {
        ap,
        apf,
        a_bits,
        local,
        localf,
        bf,
    } = bufs;
    if ap.len() < a_slivers * kc_max * 2 * MR {
        ap.resize(a_slivers * kc_max * 2 * MR, 0);
    }
    if a_bits.len() < a_slivers {
        a_bits.resize(a_slivers, 0);
    }
    if matches!(b, BSource::Raw(_)) && local.len() < RAW_GROUP * kc_max {
        local.resize(RAW_GROUP * kc_max, Row8::default());
    }
    let mut tile = [0u64; MR * NR];
    // Per sliver of the current raw `B` group: the OR of its magnitudes (`mag_or`), and
    // whether its ring rows are packed; and whether the group was written in f64.
    let mut group_mag = [0u64; RAW_GROUP];
    let mut group_ring = [false; RAW_GROUP];
    let mut group_f64 = false;
    let mut p0 = prange.start;
    while p0 < prange.end {
        let kc = KC.min(prange.end - p0);
        let first = p0 == prange.start;
        // Pack A: for each sliver of MR rows and each p, [a_0..a_MR, swap(a_0)..swap(a_MR)],
        // zero past the last row; note each sliver's magnitude.
        for (t, d) in ap.chunks_mut(kc * 2 * MR).take(a_slivers).enumerate() {
            let i0 = rect.r0 + t * MR;
            let mut mag = 0;
            for i in 0..MR {
                if i0 + i < rect.r1 {
                    let src = &a[(i0 + i) * k + p0..(i0 + i) * k + p0 + kc];
                    mag |= mag_or(src);
                    for (dp, &v) in d.chunks_exact_mut(2 * MR).zip(src) {
                        dp[i] = v;
                        dp[MR + i] = v.rotate_left(32);
                    }
                } else {
                    for dp in d.chunks_exact_mut(2 * MR) {
                        dp[i] = 0;
                        dp[MR + i] = 0;
                    }
                }
            }
            a_bits[t] = u64::BITS - mag.leading_zeros();
        }
        let a_bits_max = a_bits[..a_slivers].iter().copied().max().unwrap_or(0);
        // Room left for `B`'s magnitude in an exact f64 sum of `kc` products (2^51, the
        // range of the bit-level conversions `exact_f64` and `exact_u64`).
        let f64_room = 51i64 - i64::from(ceil_log2(kc)) - i64::from(a_bits_max);
        let mut apf_ready = false;
        let rect_slivers = w.div_ceil(NR);
        for s in 0..rect_slivers {
            let col = s * NR;
            let cw = NR.min(w - col);
            let sliver = (rect.c0 + col) / NR;
            // This sliver's panel: in f64 when the f64 tile is exact for it, else as ring
            // rows with their magnitude.
            let panel: BPanel<'_> = match b {
                // The panel is about to be read by the kernel anyway: one more pass over
                // it, from cache, is cheap beside `a_slivers` kernel runs.
                BSource::Packed(bp) => {
                    let bs = &bp[sliver * k + p0..sliver * k + p0 + kc];
                    let bits = mag_bits(Row8::flat(bs));
                    if f64_tile && i64::from(bits) <= f64_room {
                        bf.clear();
                        bf.extend(Row8::flat(bs).iter().map(|&v| exact_f64(v)));
                        BPanel::F64(&bf[..])
                    } else {
                        BPanel::Ring(bs, bits)
                    }
                }
                BSource::Raw(b) => {
                    // Pack this panel for a group of `RAW_GROUP` slivers at once, reading
                    // each row of `B` as one run of `RAW_GROUP * NR` values: one sliver at a
                    // time reads 64 bytes per row of a wide `B`, whose rows are pages apart
                    // (16 x 400 x 8192 on 2 cores: 7.9 ms in groups, 10.1 ms one by one,
                    // one noisy measurement each). When `A` leaves room for the f64 tile,
                    // the group is written in f64 directly (the ring rows of a sliver too
                    // wide for it are packed again, from `B`, only if needed).
                    let g = s % RAW_GROUP;
                    if g == 0 {
                        let group = RAW_GROUP.min(rect_slivers - s);
                        let (c0, c1) = (rect.c0 + col, (rect.c0 + col + group * NR).min(rect.c1));
                        group_mag = [0; RAW_GROUP];
                        group_f64 = f64_tile && f64_room >= 0;
                        group_ring = [false; RAW_GROUP];
                        if group_f64 {
                            if localf.len() < RAW_GROUP * kc_max * NR {
                                localf.resize(RAW_GROUP * kc_max * NR, 0.0);
                            }
                            for p in 0..kc {
                                let src = &b[(p0 + p) * n + c0..(p0 + p) * n + c1];
                                for (j, vals) in src.chunks(NR).enumerate() {
                                    let full: [u64; NR] = match vals.try_into() {
                                        Ok(full) => full,
                                        Err(_) => {
                                            let mut f = [0; NR];
                                            f[..vals.len()].copy_from_slice(vals);
                                            f
                                        }
                                    };
                                    let at = (j * kc + p) * NR;
                                    let row: &mut [f64; NR] =
                                        (&mut localf[at..at + NR]).try_into().expect("NR values");
                                    *row = full.map(exact_f64);
                                    group_mag[j] |= mag_or(&full);
                                }
                            }
                        } else {
                            for p in 0..kc {
                                let src = &b[(p0 + p) * n + c0..(p0 + p) * n + c1];
                                for (j, vals) in src.chunks(NR).enumerate() {
                                    let row = &mut local[j * kc + p];
                                    pack_row(row, vals);
                                    group_mag[j] |= mag_or(&row.0);
                                }
                            }
                            group_ring = [true; RAW_GROUP];
                        }
                    }
                    let bits = u64::BITS - group_mag[g].leading_zeros();
                    if group_f64 && i64::from(bits) <= f64_room {
                        BPanel::F64(&localf[g * kc * NR..(g + 1) * kc * NR])
                    } else {
                        if !group_ring[g] {
                            // Written in f64 but too wide for it (rare: a few large values).
                            let c0 = rect.c0 + col;
                            let c1 = (c0 + NR).min(rect.c1);
                            for p in 0..kc {
                                pack_row(
                                    &mut local[g * kc + p],
                                    &b[(p0 + p) * n + c0..(p0 + p) * n + c1],
                                );
                            }
                            group_ring[g] = true;
                        }
                        BPanel::Ring(&local[g * kc..(g + 1) * kc], bits)
                    }
                }
            };
            match panel {
                BPanel::F64(bf) => {
                    if !apf_ready {
                        to_f64_panel(a, k, rect.r0, rect.r1, p0, kc, apf);
                        apf_ready = true;
                    }
                    let mut tile = [0u64; MR_F64 * NR];
                    for t in 0..h.div_ceil(MR_F64) {
                        let at = &apf[t * kc * MR_F64..(t + 1) * kc * MR_F64];
                        kernel.run_f64(at, bf, &mut tile);
                        let rows = MR_F64.min(h - t * MR_F64);
                        // SAFETY: the rows and columns lie inside the rectangle (caller).
                        unsafe {
                            write_tile(
                                &tile,
                                dst,
                                n,
                                Rect::at(rect.r0 + t * MR_F64, rect.c0 + col, rows, cw),
                                first,
                            )
                        };
                    }
                }
                BPanel::Ring(bs, b_bits) => {
                    for t in 0..a_slivers {
                        let at = &ap[t * kc * 2 * MR..(t + 1) * kc * 2 * MR];
                        kernel.run(at, bs, &mut tile, b_bits <= 31 && a_bits[t] <= 31);
                        let rows = MR.min(h - t * MR);
                        // SAFETY: as above.
                        unsafe {
                            write_tile(
                                &tile,
                                dst,
                                n,
                                Rect::at(rect.r0 + t * MR, rect.c0 + col, rows, cw),
                                first,
                            )
                        };
                    }
                }
            }
        }
        p0 += kc;
    }
}

/// Stores (`first` panel) or adds the top-left `at.r1 - at.r0` rows and `at.c1 - at.c0`
/// columns of `tile` (rows of `NR`) into the output's rectangle `at`.
///
/// # Safety
/// `dst` must address a live row-major output `n` wide containing `at`, which no other
/// thread accesses meanwhile.
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn write_tile(tile: &[u64], dst: OutPtr, n: usize, at: Rect, first: bool) {
    let (r0, c0, cw) = (at.r0, at.c0, at.c1 - at.c0);
    for i in 0..at.r1 - r0 {
        // SAFETY: the caller's contract.
        let r = unsafe { std::slice::from_raw_parts_mut(dst.0.add((r0 + i) * n + c0), cw) };
        let v = &tile[i * NR..i * NR + cw];
        match (first, <&mut [u64; NR]>::try_from(&mut *r)) {
            // Whole tile rows by value: `copy_from_slice` of at most 8 values was a
            // `memmove` call per row, costly for short products.
            (true, Ok(full)) => *full = v.try_into().expect("NR values"),
            (false, Ok(full)) => {
                for (o, v) in full.iter_mut().zip(v) {
                    *o = o.wrapping_add(*v);
                }
            }
            (true, Err(_)) => r.copy_from_slice(v),
            (false, Err(_)) => {
                for (o, v) in r.iter_mut().zip(v) {
                    *o = o.wrapping_add(*v);
                }
            }
        }
    }
}

/// One `B` sliver panel as a tile reads it.
#[derive(Clone, Copy)]
enum BPanel<'p> {
    /// In f64, `NR` values per row: the f64 tile is exact for it.
    F64(&'p [f64]),
    /// Ring rows, with their [`mag_bits`].
    Ring(&'p [Row8], u32),
}
