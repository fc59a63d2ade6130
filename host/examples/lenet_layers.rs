//! Per-node timing of LeNet training steps on Plain and Float (batch 128, or `BATCH`),
//! or with the argument `gemm` the matrix products of LeNet's shapes (and 512^3) on the
//! packed kernels, uniform ring elements or with `RINGNN_NARROW` fixed-point-sized ones.
//! CPU time of the calling thread unless `RINGNN_WALL` is set (with `RAYON_NUM_THREADS=1`
//! every product runs on the calling thread).
use ringnn_core::layers::Image;
use ringnn_core::{Engine, Float, Plain};
use ringnn_host::gemm;
use ringnn_host::train::model::{backward, build, forward};
use std::time::Instant;

/// CPU time of this thread (ns), or wall time when RINGNN_WALL is set.
struct Clock(Option<Instant>, u64);
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
impl Clock {
    fn now() -> Self {
        if std::env::var_os("RINGNN_WALL").is_some() {
            Clock(Some(Instant::now()), 0)
        } else {
            Clock(None, cpu_ns())
        }
    }
    fn secs(&self) -> f64 {
        match self.0 {
            Some(t) => t.elapsed().as_secs_f64(),
            None => (cpu_ns() - self.1) as f64 * 1e-9,
        }
    }
}

fn run<E: Engine>(e: &mut E, enc: impl Fn(&E, f64) -> E::Elem, name: &str) {
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let net = build("lenet", Image::new(1, 1, 28, 28), 10).unwrap();
    let (p, _) = net.init(1);
    let params: Vec<E::Elem> = p.iter().map(|&v| enc(e, v)).collect();
    let x: Vec<E::Elem> = (0..batch * 784)
        .map(|i| enc(e, ((i * 7919) % 1000) as f64 / 1000.0))
        .collect();
    let g: Vec<E::Elem> = (0..batch * 10)
        .map(|i| enc(e, ((i * 31) % 17) as f64 / 170.0 - 0.05))
        .collect();
    let iters = 12;
    let nn = net.nodes.len();
    let mut tf = vec![0f64; nn];
    let mut tb = vec![0f64; nn];
    let mut scratch = Vec::new();
    let mut grads = vec![E::Elem::default(); params.len()];
    for it in 0..iters + 2 {
        let mut xs = x.clone();
        let mut traces_all = Vec::new();
        for (i, n) in net.nodes.iter().enumerate() {
            let mut tr = Vec::new();
            let t = Clock::now();
            xs = forward(
                e,
                std::slice::from_ref(n),
                xs,
                batch,
                &params,
                &mut [],
                Some(&mut tr),
                &mut scratch,
            )
            .unwrap();
            if it >= 2 {
                tf[i] += t.secs();
            }
            traces_all.push(tr.pop().unwrap());
        }
        let mut dy = g.clone();
        for i in (0..nn).rev() {
            let t = Clock::now();
            let d = backward(
                e,
                std::slice::from_ref(&net.nodes[i]),
                std::slice::from_ref(&traces_all[i]),
                dy,
                batch,
                &params,
                &mut grads,
                i > 0,
                &mut scratch,
            )
            .unwrap();
            if it >= 2 {
                tb[i] += t.secs();
            }
            dy = d.unwrap_or_default();
        }
    }
    let mut tot = 0.0;
    for (i, n) in net.nodes.iter().enumerate() {
        let (f, b) = (tf[i] / iters as f64 * 1e3, tb[i] / iters as f64 * 1e3);
        tot += f + b;
        let op = format!("{:?}", n.op);
        println!(
            "{name} {i:2} {:40} fwd {f:7.2} ms  bwd {b:7.2} ms",
            &op[..op.len().min(40)]
        );
    }
    println!(
        "{name} total {tot:.2} ms/batch = {:.0} samples/s (layers only)",
        batch as f64 / tot * 1e3
    );
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    if which == "gemm" {
        gemm_shapes();
        return;
    }
    if which != "float" {
        let mut e = Plain::with_frac_bits(13)
            .unwrap()
            .with_matmul(gemm::matmul_z64);
        run(&mut e, |e, v| e.public(v), "plain");
    }
    if which != "plain" {
        let mut f = Float::<f32>::new().with_matmul(gemm::matmul_f32);
        run(&mut f, |_, v| v as f32, "float");
    }
}

#[allow(dead_code)]
pub fn gemm_shapes() {
    use ringnn_core::engine::MatDims;
    use ringnn_core::Z64;
    for (m, k, n) in [
        (512, 512, 512),
        (16, 400, 8192),
        (8192, 400, 16),
        (16, 25, 73728),
        (73728, 25, 16),
        (16, 8192, 400),
        (400, 16, 8192),
        (8192, 16, 400),
        (16, 73728, 25),
    ] {
        // Uniform ring elements, or with RINGNN_NARROW fixed-point-sized ones (|v| < 2^17).
        let narrow = std::env::var_os("RINGNN_NARROW").is_some();
        let val = |x: u64| {
            if narrow {
                Z64(((x % (1 << 18)) as i64 - (1 << 17)) as u64)
            } else {
                Z64(x)
            }
        };
        let a: Vec<Z64> = (0..m * k).map(|i| val(i as u64 * 0x9E37_79B9)).collect();
        let b: Vec<Z64> = (0..k * n).map(|i| val(i as u64 * 0x1234_5677)).collect();
        let mut out = vec![Z64::ZERO; m * n];
        let d = MatDims { m, k, n };
        gemm::matmul_z64_ring(&a, &b, d, &mut out);
        let t = Clock::now();
        for _ in 0..5 {
            gemm::matmul_z64_ring(&a, &b, d, &mut out);
        }
        let s = t.secs() / 5.0;
        println!(
            "gemm {m}x{k}x{n}: {:.2} ms, {:.2} GMAC/s",
            s * 1e3,
            (m * k * n) as f64 / s * 1e-9
        );
    }
}
