//! Fast matrix products for the plaintext engines, plugged in through
//! [`Plain::with_matmul`](ringnn_core::Plain::with_matmul) and
//! [`Float::with_matmul`](ringnn_core::Float::with_matmul).
//!
//! # Z_2^64
//! x86-64 without AVX-512 has no 64-bit vector multiplication, so each 64-bit product modulo
//! 2^64 is split into 32-bit halves:
//! `a * b = a_lo b_lo + 2^32 (a_lo b_hi + a_hi b_lo)  (mod 2^64)`.
//! Only the low 32 bits of the cross term `a_lo b_hi + a_hi b_lo` matter, so it can be formed
//! with 32-bit lanes. The AVX2 micro-kernel keeps, for each output, a 64-bit `lo` accumulator
//! (`vpmuludq`: `a_lo b_lo`, 32x32->64, four lanes) and a 64-bit lane of two independent 32-bit
//! `cross` accumulators: broadcasting `a` with its halves swapped (`[a_hi, a_lo]`) against `b`
//! as stored (`[b_lo, b_hi]`), one `vpmulld` (32x32->low 32, eight lanes) yields both
//! `a_hi b_lo` and `a_lo b_hi` for four outputs, summed with 32-bit adds (`vpaddd`). At the end
//! of a panel, a lane `c = [c0, c1]` contributes `(c0 + c1) << 32 = (c << 32) + (c & !0xFFFF_FFFF)`.
//! That is four vector multiplications (and four additions) per eight multiply-accumulates.
//!
//! The layout is the BLIS/`matrixmultiply` one: `B` is packed once into 64-byte-aligned
//! slivers of `NR = 8` columns (row `p` of a sliver is one cache line), `A` is packed per task
//! into slivers of `MR = 3` rows (`a` and its half-swapped copy, side by side, for each `p`),
//! both zero-padded at the edges, and a 3 x 8 register tile (12 of the 16 `ymm` registers)
//! accumulates over `KC` values of `p`: the `B` sliver stays in L1 while the packed `A` block
//! (`MC` rows) streams from L2. Tiles are added into `out`, the first `KC` panel overwriting.
//!
//! Work is split over the rayon pool into rectangles of `out` (blocks of rows, and also blocks
//! of columns when there are too few row blocks for the threads); small products stay on the
//! calling thread. The kernel is chosen at run time (`is_x86_feature_detected!("avx2")`);
//! elsewhere a portable register tile with scalar wrapping 64-bit multiplications runs on the
//! same packed layout ([`matmul_z64_portable`] forces it).
//!
//! # Exact products through f64
//! A `Plain` product of fixed-point values (activations and weights of a few units, at
//! f = 13) is far from using 64 bits: when `k * max|a| * max|b| <= 2^53` (signed
//! representatives) every partial sum is an integer that `f64` holds exactly, whatever the
//! order of the additions, so `matrixmultiply`'s f64 product, converted back, *is* the ring
//! product, bit for bit. [`matmul_z64`] checks that bound (a scan of both operands that
//! stops at the first value that breaks it: uniform shares stop it at once) and takes this
//! path for products with every side at least 32 long; [`matmul_z64_ring`] never takes it.
//!
//! # f32 / f64
//! `matrixmultiply` (with its threading feature), a well-kept packed GEMM.

use rayon::prelude::*;
use ringnn_core::engine::MatDims;
use ringnn_core::Z64;

/// Rows of the register tile.
const MR: usize = 3;
/// Columns of the register tile (one packed `B` row: 64 bytes).
const NR: usize = 8;
/// Depth of a packed panel (values of `p` per kernel call).
const KC: usize = 256;
/// Rows of `A` per packed block (a multiple of `MR`).
const MC: usize = 96;
/// Slivers of a raw (unpacked) `B` packed together per panel (128 columns: 256 KiB of
/// packed rows at `KC`, within L2).
const RAW_GROUP: usize = 16;
/// Row blocks per rayon thread that a parallel product aims for.
const TASKS_PER_THREAD: usize = 4;
/// Below this many multiply-accumulates the product runs on the calling thread.
const PARALLEL_MIN: usize = 1 << 18;
/// The largest output (`m * n`) whose product may be split along `k`: each task holds a
/// partial output of its own.
const K_SPLIT_MAX_OUT: usize = 1 << 16;

/// One row of a packed `B` sliver: `NR` values, aligned to a cache line.
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Row8([u64; NR]);

/// Which register-tile kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// `tile = A sliver * B sliver` over `b.len()` values of `p`.
    #[inline]
    fn run(self, a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR]) {
        match self {
            Kernel::Portable => kernel_portable(a, b, tile),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                // SAFETY: `Kernel::Avx2` is only constructed after `is_x86_feature_detected!`
                // reported AVX2 (in `detect`, and in tests under the same check).
                #[allow(unsafe_code)]
                unsafe {
                    kernel_avx2(a, b, tile)
                }
            }
        }
    }
}

/// `out = a * b` in Z_2^64 (wrapping): packed, register-blocked, multi-threaded, AVX2 where
/// available; through `f64` instead when every side is at least 32 long and the operands are
/// small enough for that to be exact (see the module documentation).
///
/// # Panics
/// If the slice lengths do not match `dims`.
pub fn matmul_z64(a: &[Z64], b: &[Z64], dims: MatDims, out: &mut [Z64]) {
    if dims.m.min(dims.k).min(dims.n) >= F64_PATH_MIN_SIDE
        && f64_is_exact(as_u64(a), as_u64(b), dims.k)
    {
        matmul_z64_via_f64(a, b, dims, out);
    } else {
        matmul_with(Kernel::detect(), a, b, dims, out);
    }
}

/// [`matmul_z64`] on the integer kernels only, never through `f64` (for benchmarks, and
/// for tests that compare the two paths).
///
/// # Panics
/// If the slice lengths do not match `dims`.
pub fn matmul_z64_ring(a: &[Z64], b: &[Z64], dims: MatDims, out: &mut [Z64]) {
    matmul_with(Kernel::detect(), a, b, dims, out);
}

/// [`matmul_z64`] with the portable kernel, whatever the CPU: the fallback of machines
/// without AVX2, exposed for tests and benchmarks.
///
/// # Panics
/// If the slice lengths do not match `dims`.
pub fn matmul_z64_portable(a: &[Z64], b: &[Z64], dims: MatDims, out: &mut [Z64]) {
    matmul_with(Kernel::Portable, a, b, dims, out);
}

/// The `f64` path is taken only when every side of the product is at least this long:
/// converting `A`, `B` and the output costs about one pass over each, which a product with
/// a short side (a convolution's 16 channels or 25 taps) does not earn back against
/// `matrixmultiply`'s faster kernel (measured on LeNet's and the mlp's shapes).
const F64_PATH_MIN_SIDE: usize = 32;

/// Whether every partial sum of `a * b` (inner dimension `k`), read with signed
/// representatives, is an integer of magnitude at most 2^53, so that an `f64` product
/// computes it exactly, in any order of additions, with or without fused multiply-adds.
///
/// With `|a_ip| <= A` and `|b_pj| <= B`, every product and every partial sum is at most
/// `k A B` in magnitude; if `k A B <= 2^53` all of them are integers `f64` represents, so each
/// rounding is exact, and the result is the ring product's signed representative. The scan
/// stops at the first value that rules it out: uniform ring elements (shares) leave after
/// about one element each.
fn f64_is_exact(a: &[u64], b: &[u64], k: usize) -> bool {
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
fn matmul_z64_via_f64(a: &[Z64], b: &[Z64], dims: MatDims, out: &mut [Z64]) {
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

fn matmul_with(kernel: Kernel, a: &[Z64], b: &[Z64], dims: MatDims, out: &mut [Z64]) {
    let MatDims { m, k, n } = dims;
    assert!(
        a.len() == m * k && b.len() == k * n && out.len() == m * n,
        "matmul_z64: shape mismatch"
    );
    if m == 0 || n == 0 {
        return;
    }
    let out = as_u64_mut(out);
    if k == 0 {
        out.fill(0);
        return;
    }
    let (a, b) = (as_u64(a), as_u64(b));
    let slivers = n.div_ceil(NR);
    let parallel = m * k * n >= PARALLEL_MIN && rayon::current_num_threads() > 1;
    let threads = if parallel {
        rayon::current_num_threads()
    } else {
        1
    };

    // A short, narrow product with a long inner dimension (a weight gradient: `m` and `n`
    // are layer widths, `k` the batch times the positions): split `k` instead, each task
    // computing a partial product of its own, summed at the end (wrapping sums, exact).
    let goal = TASKS_PER_THREAD * threads;
    if parallel && m <= MC && m * n <= K_SPLIT_MAX_OUT && k >= goal * KC {
        let chunk = k.div_ceil(goal).next_multiple_of(KC);
        let parts: Vec<Vec<u64>> = (0..k.div_ceil(chunk))
            .into_par_iter()
            .map(|t| {
                let mut part = vec![0u64; m * n];
                let rect = Rect {
                    r0: 0,
                    r1: m,
                    c0: 0,
                    c1: n,
                };
                let p = t * chunk..((t + 1) * chunk).min(k);
                let dst = OutPtr(part.as_mut_ptr());
                // SAFETY: `part` is this task's own `m x n` buffer, alive and exclusively
                // borrowed here.
                #[allow(unsafe_code)]
                unsafe {
                    compute_rect(kernel, a, BSource::Raw(b), k, n, rect, p, dst)
                };
                part
            })
            .collect();
        out.copy_from_slice(&parts[0]);
        for part in &parts[1..] {
            for (o, v) in out.iter_mut().zip(part) {
                *o = o.wrapping_add(*v);
            }
        }
        return;
    }

    // Rectangles of `out`: `row_blocks` blocks of rows (at most `MC`, a multiple of `MR`,
    // as even as possible), times `col_blocks` blocks of whole slivers.
    // At least `TASKS_PER_THREAD` row blocks per thread when there are enough rows: row
    // blocks share the packed `B` and pack disjoint parts of `A`, so smaller ones cost
    // almost nothing and let work stealing even out threads slowed by other processes.
    // Fewer than `8 * MR` rows stay one block: split further, a short, wide product (a
    // convolution's 16 output channels) ran partial register tiles and had to pack all of
    // `B` through memory (16 x 400 x 8192: 27 ms split in two, 8-10 ms whole, 2 cores).
    let mut row_blocks = m.div_ceil(MC);
    if parallel {
        row_blocks = row_blocks.max(goal).min(m.div_ceil(8 * MR));
    }
    let rows = m.div_ceil(row_blocks).next_multiple_of(MR);
    let row_blocks = m.div_ceil(rows);
    // Too few row blocks (a short, wide product): blocks of columns too, each packing its
    // rows of `A` again (few rows, so little).
    let col_blocks = if parallel && row_blocks < goal {
        goal.div_ceil(row_blocks).min(slivers)
    } else {
        1
    };
    let sl_per_block = slivers.div_ceil(col_blocks);
    let col_blocks = slivers.div_ceil(sl_per_block);

    // `B` is packed once for all when row blocks share it; otherwise every sliver is read by
    // one task only, which packs each panel of it just before use (into L1, instead of a
    // whole packed copy through memory).
    let bp = (row_blocks > 1).then(|| pack_b(b, k, n, parallel));
    let bsrc = match &bp {
        Some(bp) => BSource::Packed(bp),
        None => BSource::Raw(b),
    };
    let dst = OutPtr(out.as_mut_ptr());
    let task = |t: usize| {
        let (rb, cb) = (t / col_blocks, t % col_blocks);
        let (r0, r1) = (rb * rows, ((rb + 1) * rows).min(m));
        let (s0, s1) = (cb * sl_per_block, ((cb + 1) * sl_per_block).min(slivers));
        let rect = Rect {
            r0,
            r1,
            c0: s0 * NR,
            c1: (s1 * NR).min(n),
        };
        // SAFETY: the tasks' rectangles partition `out` (rows split by `rb`, columns by
        // `cb`, both disjoint), `out` is exclusively borrowed for the whole call, and rayon
        // joins every task before `matmul_with` returns.
        #[allow(unsafe_code)]
        unsafe {
            compute_rect(kernel, a, bsrc, k, n, rect, 0..k, dst)
        };
    };
    let tasks = row_blocks * col_blocks;
    if parallel {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
    }
}

/// Packs `B` (`k x n`): sliver `s` holds columns `s*NR..` for every `p`, zero-padded past
/// `n`. Row by row of `B` (reads in order; each write is one cache line).
fn pack_b(b: &[u64], k: usize, n: usize, parallel: bool) -> Vec<Row8> {
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

/// Where [`compute_rect`] finds `B`: packed once for all (slivers of `k` rows), or as given
/// (`k x n` row-major), each panel of a sliver packed just before use.
#[derive(Clone, Copy)]
enum BSource<'a> {
    Packed(&'a [Row8]),
    Raw(&'a [u64]),
}

/// A rectangle of the output: rows `r0..r1`, columns `c0..c1`.
#[derive(Clone, Copy)]
struct Rect {
    r0: usize,
    r1: usize,
    c0: usize,
    c1: usize,
}

/// An output's base pointer (row-major, `n` wide), shared by tasks that write disjoint
/// rectangles.
#[derive(Clone, Copy)]
struct OutPtr(*mut u64);

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
#[allow(clippy::too_many_arguments, unsafe_code)]
unsafe fn compute_rect(
    kernel: Kernel,
    a: &[u64],
    b: BSource<'_>,
    k: usize,
    n: usize,
    rect: Rect,
    prange: std::ops::Range<usize>,
    dst: OutPtr,
) {
    debug_assert!(rect.c1 <= n && rect.c0.is_multiple_of(NR) && prange.end <= k);
    let (h, w) = (rect.r1 - rect.r0, rect.c1 - rect.c0);
    let a_slivers = h.div_ceil(MR);
    let mut ap = vec![0u64; a_slivers * KC.min(prange.len()) * 2 * MR];
    let mut tile = [0u64; MR * NR];
    let mut local = match b {
        BSource::Packed(_) => Vec::new(),
        BSource::Raw(_) => vec![Row8::default(); RAW_GROUP * KC.min(prange.len())],
    };
    let mut p0 = prange.start;
    while p0 < prange.end {
        let kc = KC.min(prange.end - p0);
        let first = p0 == prange.start;
        // Pack A: for each sliver of MR rows and each p, [a_0..a_MR, swap(a_0)..swap(a_MR)],
        // zero past the last row.
        for (t, d) in ap.chunks_mut(kc * 2 * MR).take(a_slivers).enumerate() {
            let i0 = rect.r0 + t * MR;
            for i in 0..MR {
                if i0 + i < rect.r1 {
                    let src = &a[(i0 + i) * k + p0..(i0 + i) * k + p0 + kc];
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
        }
        let rect_slivers = w.div_ceil(NR);
        for s in 0..rect_slivers {
            let col = s * NR;
            let cw = NR.min(w - col);
            let sliver = (rect.c0 + col) / NR;
            let bs: &[Row8] = match b {
                BSource::Packed(bp) => &bp[sliver * k + p0..sliver * k + p0 + kc],
                BSource::Raw(b) => {
                    // Pack this panel for a group of `RAW_GROUP` slivers at once, reading
                    // each row of `B` as one run of `RAW_GROUP * NR` values: one sliver at a
                    // time reads 64 bytes per row of a wide `B`, whose rows are pages apart
                    // (16 x 400 x 8192 on 2 cores: 7.9 ms in groups, 10.1 ms one by one,
                    // one noisy measurement each).
                    let g = s % RAW_GROUP;
                    if g == 0 {
                        let group = RAW_GROUP.min(rect_slivers - s);
                        let (c0, c1) = (rect.c0 + col, (rect.c0 + col + group * NR).min(rect.c1));
                        for p in 0..kc {
                            let src = &b[(p0 + p) * n + c0..(p0 + p) * n + c1];
                            for (j, vals) in src.chunks(NR).enumerate() {
                                let row = &mut local[j * kc + p].0;
                                if vals.len() == NR {
                                    *row = *<&[u64; NR]>::try_from(vals).expect("NR values");
                                } else {
                                    *row = [0; NR];
                                    row[..vals.len()].copy_from_slice(vals);
                                }
                            }
                        }
                    }
                    &local[g * kc..(g + 1) * kc]
                }
            };
            for t in 0..a_slivers {
                let at = &ap[t * kc * 2 * MR..(t + 1) * kc * 2 * MR];
                kernel.run(at, bs, &mut tile);
                let rh = MR.min(h - t * MR);
                for i in 0..rh {
                    // SAFETY: row `r0 + t*MR + i < r1` and columns `c0 + col .. + cw <= c1`
                    // lie inside the rectangle, which only this call touches (caller).
                    let r = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.0.add((rect.r0 + t * MR + i) * n + rect.c0 + col),
                            cw,
                        )
                    };
                    let v = &tile[i * NR..i * NR + cw];
                    if first {
                        r.copy_from_slice(v);
                    } else {
                        for (o, v) in r.iter_mut().zip(v) {
                            *o = o.wrapping_add(*v);
                        }
                    }
                }
            }
        }
        p0 += kc;
    }
}

/// The AVX2 register tile: `MR x NR` outputs in 12 `ymm` accumulators (`lo` and `cross` for
/// two groups of four columns per row), see the module documentation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn kernel_avx2(a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR]) {
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

/// The portable register tile: scalar wrapping 64-bit multiply-accumulates on the same
/// packed layout (the swapped copies of `A` are not needed).
fn kernel_portable(a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR]) {
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
}
