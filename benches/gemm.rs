//! Matrix products at 512 x 512 x 512 on all cores: Z_2^64 (ringnn's packed kernel, AVX2 where
//! available, on uniform ring elements; the same with its portable register tile forced; the
//! kernel crate's portable loop; `matmul_z64` on fixed-point operands, |x| < 2^20, which it
//! computes exactly through `matrixmultiply`'s f64; the packed kernel alone on the same
//! operands (its f64 tile) and on signed 32-bit operands (its narrow tile)) against f32 and
//! f64 `matrixmultiply`, side by side.
//!
//! `cargo bench --bench gemm`; figures in docs/performance.md.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringnn::host::gemm::{
    matmul_f32, matmul_f64, matmul_z64, matmul_z64_portable, matmul_z64_ring,
};
use ringnn::kernel::engine::MatDims;
use ringnn::kernel::{Engine, Plain, Z64};
use std::hint::black_box;

fn gemm(c: &mut Criterion) {
    let s = 512;
    let d = MatDims { m: s, k: s, n: s };
    let a: Vec<Z64> = (0..s * s)
        .map(|i| Z64((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let b: Vec<Z64> = (0..s * s)
        .map(|i| Z64((i as u64 ^ 77).wrapping_mul(0xD1B5_4A32_D192_ED03)))
        .collect();
    let mut out = vec![Z64::ZERO; s * s];
    // Fixed-point operands: values of magnitude below 2^20 of either sign (a few units at
    // f = 13), so that 512 * 2^20 * 2^20 <= 2^53.
    let fixed = |x: &[Z64]| -> Vec<Z64> {
        x.iter()
            .map(|v| {
                let m = ((v.0 >> 11) & 0xF_FFFF) as i64;
                Z64(if v.0 & 1 == 1 { m } else { -m } as u64)
            })
            .collect()
    };
    let (af_z, bf_z) = (fixed(&a), fixed(&b));
    // Signed 32-bit operands: too large for an exact f64 sum, within the narrow tile.
    let narrow = |x: &[Z64]| -> Vec<Z64> {
        x.iter()
            .map(|v| Z64(v.0 as u32 as i32 as i64 as u64))
            .collect()
    };
    let (an_z, bn_z) = (narrow(&a), narrow(&b));
    let af: Vec<f32> = (0..s * s).map(|i| (i % 17) as f32 * 0.1).collect();
    let bf: Vec<f32> = (0..s * s).map(|i| (i % 13) as f32 * 0.1).collect();
    let mut of = vec![0f32; s * s];
    let ad: Vec<f64> = af.iter().map(|&v| v as f64).collect();
    let bd: Vec<f64> = bf.iter().map(|&v| v as f64).collect();
    let mut od = vec![0f64; s * s];
    let mut g = c.benchmark_group("gemm512");
    g.throughput(Throughput::Elements((s * s * s) as u64));
    g.sample_size(10);
    g.bench_function("z64_ringnn", |bn| {
        bn.iter(|| matmul_z64(black_box(&a), &b, d, &mut out))
    });
    g.bench_function("z64_ringnn_fixed_point_operands", |bn| {
        bn.iter(|| matmul_z64(black_box(&af_z), &bf_z, d, &mut out))
    });
    g.bench_function("z64_ringnn_fixed_point_operands_packed_f64_tile", |bn| {
        bn.iter(|| matmul_z64_ring(black_box(&af_z), &bf_z, d, &mut out))
    });
    g.bench_function("z64_ringnn_int32_operands_narrow_tile", |bn| {
        bn.iter(|| matmul_z64_ring(black_box(&an_z), &bn_z, d, &mut out))
    });
    g.bench_function("z64_ringnn_portable_kernel", |bn| {
        bn.iter(|| matmul_z64_portable(black_box(&a), &b, d, &mut out))
    });
    g.bench_function("f32_matrixmultiply", |bn| {
        bn.iter(|| matmul_f32(black_box(&af), &bf, d, &mut of))
    });
    g.bench_function("f64_matrixmultiply", |bn| {
        bn.iter(|| matmul_f64(black_box(&ad), &bd, d, &mut od))
    });
    let mut p = Plain::with_frac_bits(13).unwrap();
    g.bench_function("z64_portable_loop", |bn| {
        bn.iter(|| p.matmul(black_box(&a), &b, d, &mut out).unwrap())
    });
    g.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
