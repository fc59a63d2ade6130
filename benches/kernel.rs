//! Kernel throughput on one core: approximations over 1M elements and softmax over rows of
//! 10 on `Plain` (f = 13), with `exact` e^x on `Float` as the reference.
//!
//! `cargo bench --bench kernel`; figures in docs/performance.md.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringnn::kernel::approx::{ExpApprox, TanhApprox};
use ringnn::kernel::softmax::{self, Softmax};
use ringnn::kernel::{Engine, Float, Plain, Z64};
use std::hint::black_box;

const N: usize = 1 << 20;
const COLS: usize = 10;

fn inputs() -> Vec<f64> {
    // Deterministic spread over [-6, 4): the e^x domain.
    (0..N)
        .map(|i| -6.0 + 10.0 * ((i * 7919) % N) as f64 / N as f64)
        .collect()
}

fn exp_approximations(c: &mut Criterion) {
    let xs = inputs();
    let mut p = Plain::with_frac_bits(13).unwrap();
    let mut x = vec![Z64::ZERO; N];
    p.encode_slice(&xs, &mut x).unwrap();
    let mut out = vec![Z64::ZERO; N];
    let mut g = c.benchmark_group("exp_plain_f13");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    for a in [
        ExpApprox::Pwl(4),
        ExpApprox::Taylor(4),
        ExpApprox::Pwl(8),
        ExpApprox::Taylor(8),
        ExpApprox::Limit8,
        ExpApprox::SecureMl,
    ] {
        let mut scratch = vec![Z64::ZERO; a.scratch_len(N)];
        g.bench_function(BenchmarkId::from_parameter(a.name()), |b| {
            b.iter(|| {
                a.eval(&mut p, black_box(&x), &mut out, &mut scratch)
                    .unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("exp_float_f64");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    let mut f = Float::<f64>::new();
    let mut fo = vec![0.0f64; N];
    let mut fs = vec![0.0f64; 3 * N];
    g.bench_function("exact", |b| {
        b.iter(|| {
            ExpApprox::Exact
                .eval(&mut f, black_box(&xs), &mut fo, &mut fs)
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("tanh_plain_f13");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    let t = TanhApprox::Hard;
    let mut scratch = vec![Z64::ZERO; t.scratch_len(N)];
    g.bench_function("hard", |b| {
        b.iter(|| {
            t.eval(&mut p, black_box(&x), &mut out, &mut scratch)
                .unwrap()
        })
    });
    g.finish();
}

fn softmax_rows(c: &mut Criterion) {
    let rows = N / COLS;
    let xs: Vec<f64> = inputs().iter().map(|v| v * 0.5).collect();
    let mut p = Plain::with_frac_bits(13).unwrap();
    let mut x = vec![Z64::ZERO; rows * COLS];
    p.encode_slice(&xs[..rows * COLS], &mut x).unwrap();
    let mut out = vec![Z64::ZERO; rows * COLS];
    let mut g = c.benchmark_group("softmax10_plain_f13");
    g.throughput(Throughput::Elements(rows as u64));
    g.sample_size(20);
    for a in [ExpApprox::Pwl(4), ExpApprox::Taylor(4), ExpApprox::SecureMl] {
        let cfg = Softmax::new(a);
        let piece = (p.batch_hint() / COLS).clamp(1, rows);
        let mut scratch = vec![Z64::ZERO; softmax::softmax_scratch(cfg, piece, COLS)];
        g.bench_function(BenchmarkId::from_parameter(a.name()), |b| {
            b.iter(|| {
                softmax::softmax(
                    &mut p,
                    cfg,
                    black_box(&x),
                    rows,
                    COLS,
                    &mut out,
                    &mut scratch,
                )
                .unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("softmax10_float_f64");
    g.throughput(Throughput::Elements(rows as u64));
    g.sample_size(20);
    let mut f = Float::<f64>::new();
    let cfg = Softmax::new(ExpApprox::Exact);
    let mut fo = vec![0.0f64; rows * COLS];
    let mut fs = vec![0.0f64; softmax::softmax_scratch(cfg, rows, COLS)];
    g.bench_function("exact", |b| {
        b.iter(|| {
            softmax::softmax(
                &mut f,
                cfg,
                black_box(&xs[..rows * COLS]),
                rows,
                COLS,
                &mut fo,
                &mut fs,
            )
            .unwrap()
        })
    });
    g.finish();
}

fn reciprocal(c: &mut Criterion) {
    let mut p = Plain::with_frac_bits(13).unwrap();
    let n = 1 << 16;
    let xs: Vec<f64> = (0..n).map(|i| 0.01 + i as f64 * 0.01).collect();
    let mut x = vec![Z64::ZERO; n];
    p.encode_slice(&xs, &mut x).unwrap();
    let mut out = vec![Z64::ZERO; n];
    let mut scratch = vec![Z64::ZERO; 0];
    let mut g = c.benchmark_group("reciprocal_plain_f13");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("pieces", |b| {
        b.iter(|| {
            p.reciprocal(black_box(&x), &mut out, None, 13, &mut scratch)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, exp_approximations, softmax_rows, reciprocal);
criterion_main!(benches);
