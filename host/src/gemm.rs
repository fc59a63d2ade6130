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
//! # Small operands: cheaper tiles, same bits
//! A `Plain` product of fixed-point values (activations and weights of a few units, at
//! f = 13) is far from using 64 bits, and two cheaper register tiles give the same ring
//! result for such values. Packing notes, per `A` sliver and per `B` sliver panel, the bit
//! length `L` of the largest magnitude (signed representatives, `|v| <= 2^L`); each pair
//! then runs the cheapest tile that is exact for it:
//! - the **f64 tile** (`vfmadd231pd`, one per four products) when
//!   `L_A + L_B + ceil(log2 kc) <= 51`: every partial sum of the panel is then an integer
//!   of magnitude at most 2^51, which `f64` holds exactly in any order, and conversions in
//!   and out are one addition each (a bit-level trick valid to 2^51);
//! - the **narrow tile** (`vpmuldq`, signed 32 x 32 -> 64 bits) when both `L <= 31`: each
//!   product is exact in `i64`, the sums wrap as the ring's do;
//! - the split tile above otherwise (uniform shares always).
//!
//! On this Zen 3 the integer multiplications issue once per cycle and FMAs twice, so the
//! tiles run about 2 : 4 : 8 products per cycle (split : narrow : f64) in L1.
//!
//! # Exact products through `matrixmultiply`'s f64
//! When `k * max|a| * max|b| <= 2^53` over the whole product, `matrixmultiply`'s f64
//! product, converted back, *is* the ring product, bit for bit. [`matmul_z64`] checks that
//! bound (a scan of both operands that stops at the first value that breaks it: uniform
//! shares stop it at once) and takes this path for products with every side at least 32
//! long, except inside [`serial`] (parts of a batch already keep every core busy, and
//! `matrixmultiply` would start threads of its own); [`matmul_z64_ring`] never takes it.
//!
//! # f32 / f64
//! `matrixmultiply` (with its threading feature), a well-kept packed GEMM.

use rayon::prelude::*;
use ringnn_core::engine::MatDims;
use ringnn_core::Z64;

/// Rows of the register tile.
const MR: usize = 3;
/// Rows of the f64 register tile: eight accumulators keep both FMA pipes busy through
/// their four-cycle latency, and 4 divides LeNet's 16 channels (the integer tiles' 3 left
/// two padding rows of 18).
const MR_F64: usize = 4;
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

impl Row8 {
    /// The values of consecutive rows, in order.
    fn flat(rows: &[Row8]) -> &[u64] {
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
fn mag_or(x: &[u64]) -> u64 {
    x.iter()
        .fold(0u64, |acc, &v| acc | (v ^ ((v as i64 >> 63) as u64)))
}

/// The bit length of [`mag_or`].
fn mag_bits(x: &[u64]) -> u32 {
    u64::BITS - mag_or(x).leading_zeros()
}

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

    /// Whether [`Kernel::run_f64`] is available: the AVX2 kernel on a CPU with FMA.
    fn has_f64_tile(self) -> bool {
        match self {
            Kernel::Portable => false,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("fma"),
        }
    }

    /// `tile = A sliver * B sliver` from `f64` slivers (`MR` and `NR` values per `p`) whose
    /// partial sums are all integers of magnitude at most 2^51, so exact; converted back
    /// to the ring.
    ///
    /// # Panics
    /// Unless [`Kernel::has_f64_tile`].
    #[inline]
    fn run_f64(self, a: &[f64], b: &[f64], tile: &mut [u64; MR_F64 * NR]) {
        match self {
            Kernel::Portable => unreachable!("the portable kernel has no f64 tile"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                assert!(self.has_f64_tile(), "f64 tile without FMA");
                // SAFETY: AVX2 as for `run`, FMA checked just above (a cached load).
                #[allow(unsafe_code)]
                unsafe {
                    kernel_f64(a, b, tile)
                }
            }
        }
    }

    /// `tile = A sliver * B sliver` over `b.len()` values of `p`; `narrow` says that every
    /// value of both slivers is a signed 32-bit integer ([`mag_or`]).
    #[inline]
    fn run(self, a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR], narrow: bool) {
        match self {
            Kernel::Portable => kernel_portable(a, b, tile),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => {
                // SAFETY: `Kernel::Avx2` is only constructed after `is_x86_feature_detected!`
                // reported AVX2 (in `detect`, and in tests under the same check); the narrow
                // kernel's precondition is what `narrow` says.
                #[allow(unsafe_code)]
                unsafe {
                    if narrow {
                        kernel_avx2_narrow(a, b, tile)
                    } else {
                        kernel_avx2(a, b, tile)
                    }
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
    // Inside `serial` the cores are already busy with one task each: `matrixmultiply`
    // would start its own threads on top, so the packed kernels' f64 tile does it here.
    if dims.m.min(dims.k).min(dims.n) >= F64_PATH_MIN_SIDE
        && !SERIAL.with(|s| s.get())
        && f64_is_exact(as_u64(a), as_u64(b), dims.k)
    {
        matmul_z64_via_f64(a, b, dims, out);
    } else {
        matmul_with(Kernel::detect(), a, b, dims, out);
    }
}

/// [`matmul_z64`] on the packed kernels only, never through `matrixmultiply` (for
/// benchmarks, and for tests that compare the two paths). Small operands still take the
/// packed f64 or narrow tile (see the module documentation).
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

thread_local! {
    /// Set while [`serial`] runs: products stay on the calling thread.
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the Z_2^64 products it makes on this thread kept on this thread, for a
/// caller that already runs one task per core (parts of a batch): splitting each product
/// again would only add packing and work stealing. Results are the same bits either way.
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|s| s.replace(true)));
    f()
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
    let parallel =
        m * k * n >= PARALLEL_MIN && rayon::current_num_threads() > 1 && !SERIAL.with(|s| s.get());
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
    PACK_BUFFERS.with(|cell| match cell.try_borrow_mut() {
        // SAFETY: forwarded from this function's contract.
        Ok(mut bufs) => unsafe {
            compute_rect_in(&mut bufs, kernel, a, b, k, n, rect, prange, dst)
        },
        // SAFETY: as above (a task run while this thread waited inside the first one).
        Err(_) => unsafe {
            compute_rect_in(
                &mut PackBuffers::default(),
                kernel,
                a,
                b,
                k,
                n,
                rect,
                prange,
                dst,
            )
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
    /// The same rows of `A` in `f64`, in slivers of `MR_F64` ([`kernel_f64`]), converted
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

/// `ceil(log2(k))` for `k >= 1`.
fn ceil_log2(k: usize) -> u32 {
    usize::BITS - (k.max(1) - 1).leading_zeros()
}

/// [`compute_rect_body`], compiled for AVX2 when that kernel runs (the packing loops then
/// use 256-bit vectors).
///
/// # Safety
/// As [`compute_rect`].
#[allow(clippy::too_many_arguments, unsafe_code)]
unsafe fn compute_rect_in(
    bufs: &mut PackBuffers,
    kernel: Kernel,
    a: &[u64],
    b: BSource<'_>,
    k: usize,
    n: usize,
    rect: Rect,
    prange: std::ops::Range<usize>,
    dst: OutPtr,
) {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn avx2(
        bufs: &mut PackBuffers,
        kernel: Kernel,
        a: &[u64],
        b: BSource<'_>,
        k: usize,
        n: usize,
        rect: Rect,
        prange: std::ops::Range<usize>,
        dst: OutPtr,
    ) {
        // SAFETY: forwarded.
        unsafe { compute_rect_body(bufs, kernel, a, b, k, n, rect, prange, dst) }
    }
    match kernel {
        // SAFETY: `Kernel::Avx2` exists only where AVX2 was detected; the rest forwarded.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { avx2(bufs, kernel, a, b, k, n, rect, prange, dst) },
        // SAFETY: forwarded.
        _ => unsafe { compute_rect_body(bufs, kernel, a, b, k, n, rect, prange, dst) },
    }
}

/// [`compute_rect`] with its buffers. Each (`A` sliver, `B` sliver) pair of a panel runs
/// the cheapest tile its values allow (see the module documentation): `f64` when the
/// panel's partial sums are exact there, the narrow integer tile when every value is a
/// signed 32-bit integer, the split 64-bit tile otherwise.
///
/// # Safety
/// As [`compute_rect`].
#[allow(clippy::too_many_arguments, unsafe_code)]
#[inline(always)]
unsafe fn compute_rect_body(
    bufs: &mut PackBuffers,
    kernel: Kernel,
    a: &[u64],
    b: BSource<'_>,
    k: usize,
    n: usize,
    rect: Rect,
    prange: std::ops::Range<usize>,
    dst: OutPtr,
) {
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
                                rows,
                                dst,
                                n,
                                rect.r0 + t * MR_F64,
                                rect.c0 + col,
                                cw,
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
                                rows,
                                dst,
                                n,
                                rect.r0 + t * MR,
                                rect.c0 + col,
                                cw,
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

/// Stores (`first` panel) or adds the first `rows` rows and `cw` columns of `tile` (rows of
/// `NR`) into the output at (`r0`, `c0`).
///
/// # Safety
/// `dst` must address a live row-major output `n` wide containing those rows and columns,
/// which no other thread accesses meanwhile.
#[allow(clippy::too_many_arguments, unsafe_code)]
#[inline(always)]
unsafe fn write_tile(
    tile: &[u64],
    rows: usize,
    dst: OutPtr,
    n: usize,
    r0: usize,
    c0: usize,
    cw: usize,
    first: bool,
) {
    for i in 0..rows {
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

/// Writes `vals` (at most `NR`) into `row`, zero past them.
#[inline]
fn pack_row(row: &mut Row8, vals: &[u64]) {
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
fn exact_f64(v: u64) -> f64 {
    f64::from_bits(MAGIC.to_bits().wrapping_add(v)) - MAGIC
}

/// `x` (an integer with `|x| <= 2^51`) as a ring element, exactly.
#[inline]
fn exact_u64(x: f64) -> u64 {
    (x + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits())
}

/// Rows `r0..r1` of `a` (`k` wide), columns `p0..p0 + kc`, as `f64` slivers of `MR_F64`
/// rows: for each `p`, `MR_F64` values (zero past `r1`). Every value must be within
/// 2^51 (the caller's bound).
fn to_f64_panel(
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

/// The AVX2 register tile: `MR x NR` outputs in 12 `ymm` accumulators (`lo` and `cross` for
/// two groups of four columns per row), see the module documentation.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
// Kept out of line: inlined into the AVX2-compiled packing loop it ran 10% slower at
// 512^3 (criterion, alternated with the previous build).
#[inline(never)]
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

/// The AVX2 register tile for narrow slivers (every value a signed 32-bit integer, see
/// [`mag_or`]): `vpmuldq` forms each product exactly as a signed 64-bit value, which is
/// the ring product; wrapping 64-bit additions accumulate it. Two multiplications and two
/// additions per row and `p` instead of four each.
///
/// # Safety
/// AVX2 must be available. (Values outside the signed 32-bit range are not unsafe, only
/// wrong: their high halves are ignored.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
fn kernel_avx2_narrow(a: &[u64], b: &[Row8], tile: &mut [u64; MR * NR]) {
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
fn kernel_f64(a: &[f64], b: &[f64], tile: &mut [u64; MR_F64 * NR]) {
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

    /// A `rows x cols` operand whose magnitudes vary by block (`block(r, c)`), so that one
    /// product runs all three tiles: the f64 tile (small values), the narrow integer tile
    /// (signed 32-bit, too large for an exact f64 sum) and the split tile (anything),
    /// chosen per panel and sliver.
    fn tiered(
        rows: usize,
        cols: usize,
        seed: u64,
        block: impl Fn(usize, usize) -> usize,
    ) -> Vec<Z64> {
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
}
