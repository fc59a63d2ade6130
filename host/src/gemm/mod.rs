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
//!
//! # Where things are
//! - this file: the entry points and the dispatch (which path, which kernel, how the
//!   output is split over threads);
//! - `exact`: the exact `f64` path through `matrixmultiply`;
//! - `pack`: packing `A` and `B` into slivers, magnitudes, exact integer-f64 conversions;
//! - `rect`: one rectangle of the output, each tile pair on the cheapest exact tile;
//! - `tiles`: the register tiles, per instruction set (portable, AVX2);
//! - `float`: f32 and f64 products.

mod exact;
mod float;
mod pack;
mod rect;
#[cfg(test)]
mod tests;
mod tiles;

pub use float::{matmul_f32, matmul_f64};

use exact::{f64_is_exact, matmul_z64_via_f64, F64_PATH_MIN_SIDE};
use pack::pack_b;
use rayon::prelude::*;
use rect::{compute_rect, BSource, Operands, OutPtr, Rect};
use ringnn_core::engine::MatDims;
use ringnn_core::Z64;
use tiles::Kernel;

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
                let ops = Operands {
                    a,
                    b: BSource::Raw(b),
                    k,
                    n,
                };
                // SAFETY: `part` is this task's own `m x n` buffer, alive and exclusively
                // borrowed here.
                #[allow(unsafe_code)]
                unsafe {
                    compute_rect(kernel, ops, rect, p, dst)
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
        let ops = Operands { a, b: bsrc, k, n };
        // SAFETY: the tasks' rectangles partition `out` (rows split by `rb`, columns by
        // `cb`, both disjoint), `out` is exclusively borrowed for the whole call, and rayon
        // joins every task before `matmul_with` returns.
        #[allow(unsafe_code)]
        unsafe {
            compute_rect(kernel, ops, rect, 0..k, dst)
        };
    };
    let tasks = row_blocks * col_blocks;
    if parallel {
        (0..tasks).into_par_iter().for_each(task);
    } else {
        (0..tasks).for_each(task);
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
