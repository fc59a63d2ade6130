//! Both parties' views: what each receives in every protocol of training and prediction
//! looks uniform whatever the inputs (bit balance, byte histograms), and no mask ever
//! serves two secrets (every opened value recorded with a fixed dealer seed). These use
//! [`super::tests`]' shared helpers (`Case`, `config`); the FSS, convolution and reuse
//! tests use the view helpers here.

use super::local::LocalMpc;
use super::tests::*;
use super::wire::{Header, Tag, HEADER_LEN};
use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::approx::ExpApprox;
use ringnn_core::engine::generic;
use ringnn_core::engine::MatDims;
use ringnn_core::layers::{Conv2d, Grads, Image, MaxPool2d, Params};
use ringnn_core::optim::Sgd;
use ringnn_core::softmax::{softmax, softmax_scratch, Softmax};
use ringnn_core::{Engine, Z64};

case!(Mixed, |e, x| {
    // A bit of everything that sends: products, truncation, comparison, select.
    let n = x[0].len();
    let mut prod = vec![Z64::ZERO; n];
    e.mul(&x[0], &x[0], &mut prod)?;
    e.rescale(&mut prod)?;
    let mut r = prod.clone();
    let mut s = vec![Z64::ZERO; 3 * n];
    e.relu(&mut r, &mut s)?;
    let mut m = x[0].clone();
    e.scale(&mut m, -1.0)?;
    e.relu(&mut m, &mut s)?;
    Ok(vec![r, m])
});

/// Party 1's received payload words (frame headers, which are public, dropped).
pub(super) fn payload_words(view: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < view.len() {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&view[pos..pos + HEADER_LEN]);
        let words = Header::parse(&h).words as usize;
        pos += HEADER_LEN;
        for c in view[pos..pos + 8 * words].chunks_exact(8) {
            out.push(u64::from_le_bytes(c.try_into().unwrap()));
        }
        pos += 8 * words;
    }
    out
}

/// Party 1's view of [`Mixed`] on `n` copies of `v`, over `runs` runs with fresh dealer
/// seeds and fresh sharing randomness.
fn view_of(v: f64, n: usize, runs: u8) -> Vec<u64> {
    let x = enc(&vec![v; n]);
    let mut all = Vec::new();
    for run in 0..runs {
        let mut rng = ChaCha20Rng::seed_from_u64(1000 + run as u64 + (v.to_bits() << 8));
        let shares = share(&x, &mut rng);
        let [_, view] = run_in_process(&config(100 + run), |e: &mut LocalMpc| {
            e.record_view();
            let mine = vec![shares[e.party().index()].clone()];
            Mixed.run(e, &mine).expect("run failed");
            e.take_view()
        });
        all.extend(payload_words(&view));
    }
    all
}

#[test]
fn party_one_view_does_not_depend_on_the_inputs() {
    // The received words for inputs 0 and -1000.75 (every comparison negative vs. every one
    // zero; products zero vs. large) must both look uniform: every bit position is 1 half
    // the time, and the two views' byte histograms agree (chi-square, 255 degrees of
    // freedom, far below the 0.0001 tail near 347).
    let (n, runs) = (1024, 4);
    let a = view_of(0.0, n, runs);
    let b = view_of(-1000.75, n, runs);
    assert_eq!(
        a.len(),
        b.len(),
        "the view's shape depends only on public sizes"
    );
    assert_balanced("zero", &a);
    assert_balanced("negative", &b);
    let chi2 = byte_chi2(&a, &b);
    assert!(chi2 < 347.0, "byte histograms differ: chi2 = {chi2}");
}

/// Every bit position of `words` is 1 about half the time (|z| < 6).
pub(super) fn assert_balanced(name: &str, words: &[u64]) {
    let total = words.len() as f64;
    for bit in 0..64 {
        let ones = words.iter().filter(|&&x| (x >> bit) & 1 == 1).count() as f64;
        let z = (ones - total / 2.0) / (total / 4.0).sqrt();
        assert!(
            z.abs() < 6.0,
            "{name}: bit {bit} is 1 in {ones} of {total} (z = {z})"
        );
    }
}

/// Chi-square of the two byte histograms of `a` and `b` (255 degrees of freedom: the
/// 0.0001 tail starts near 347).
pub(super) fn byte_chi2(a: &[u64], b: &[u64]) -> f64 {
    let hist = |w: &[u64]| {
        let mut h = [0f64; 256];
        for x in w {
            for byte in x.to_le_bytes() {
                h[byte as usize] += 1.0;
            }
        }
        h
    };
    let (ha, hb) = (hist(a), hist(b));
    (0..256)
        .map(|i| {
            let s = ha[i] + hb[i];
            if s == 0.0 {
                0.0
            } else {
                (ha[i] - hb[i]).powi(2) / s
            }
        })
        .sum()
}

case!(Everything, |e, x| {
    // Every protocol that sends during training and prediction: products, truncation,
    // comparisons, a matrix product, a max-of-lines softmax (its reciprocal included),
    // the secure arg-max, a convolution layer (both directions), max pooling (both
    // directions) and an SGD step.
    let n = x[0].len();
    let mut prod = vec![Z64::ZERO; n];
    e.mul(&x[0], &x[0], &mut prod)?;
    e.rescale(&mut prod)?;
    let mut s = vec![Z64::ZERO; 3 * n];
    let mut r = prod.clone();
    e.relu(&mut r, &mut s)?;
    let (rows, k, cols) = (32, 32, 10);
    let d = MatDims {
        m: rows,
        k,
        n: cols,
    };
    let mut logits = vec![Z64::ZERO; rows * cols];
    e.matmul(&x[0][..rows * k], &x[0][..k * cols], d, &mut logits)?;
    e.rescale(&mut logits)?;
    let cfg = Softmax {
        exp: ExpApprox::Pwl(4),
        subtract_max: false,
    };
    let mut p = vec![Z64::ZERO; rows * cols];
    let mut sc = vec![Z64::ZERO; softmax_scratch(cfg, rows, cols)];
    softmax(e, cfg, &logits, rows, cols, &mut p, &mut sc)?;
    let mut am = vec![Z64::ZERO; rows];
    let mut sc = vec![Z64::ZERO; generic::argmax_rows_scratch(rows, cols)];
    generic::argmax_rows(e, &logits, rows, cols, &mut am, &mut sc)?;
    // A convolution layer's forward and backward pass: both convolution products on
    // convolution triples (the image opened twice, each time under its own mask), the
    // input gradient's matrix product.
    let (conv, input) = (Conv2d::new(2, 3, 3, 1, 1), Image::new(2, 2, 8, 8));
    let out = conv.output(input);
    let (img, nw) = (input.len(), conv.weights());
    let (cx, cw, cdy) = (&x[0][..img], &x[0][img..img + nw], &x[0][n - out.len()..]);
    let mut y = vec![Z64::ZERO; out.len()];
    let mut s = vec![
        Z64::ZERO;
        conv.forward_scratch(input)
            .max(conv.backward_scratch(input))
    ];
    let bias = vec![Z64::ZERO; conv.out_channels];
    conv.forward(e, cx, Params { w: cw, b: &bias }, input, &mut y, &mut s)?;
    let (mut dx, mut dw, mut db) = (vec![Z64::ZERO; img], vec![Z64::ZERO; nw], bias.clone());
    let g = Grads {
        dy: cdy,
        dx: Some(&mut dx),
        dw: &mut dw,
        db: &mut db,
    };
    conv.backward(e, cx, cw, input, g, &mut s)?;
    // Max pooling of the convolution's output and its backward pass: the tree's
    // comparisons (with FSS one ReLU gate each) and the gradient routed down its bits.
    let pool = MaxPool2d::new(2, 2);
    let mut py = vec![Z64::ZERO; pool.output(out).len()];
    let mut bits = vec![Z64::ZERO; pool.selection_len(out)];
    let mut s = vec![Z64::ZERO; pool.forward_scratch(out).max(pool.backward_scratch(out))];
    pool.forward(e, &y, out, &mut py, Some(&mut bits), &mut s)?;
    let mut pdx = vec![Z64::ZERO; out.len()];
    pool.backward(e, &bits, &x[0][..py.len()], out, &mut pdx, &mut s)?;
    // An SGD step with momentum and decay: the velocity and the step from one opening
    // (the scaled truncation).
    let sgd = Sgd {
        momentum: 0.9,
        weight_decay: 5e-4,
    };
    let (mut w, mut v) = (x[0][..64].to_vec(), x[0][64..128].to_vec());
    let mut s = vec![Z64::ZERO; Sgd::scratch(64)];
    sgd.step(e, &mut w, &x[0][128..192], &mut v, 0.05, 128, &mut s)?;
    Ok(vec![r, logits, p, am, y, dx, dw, py, pdx, w, v])
});

/// A view's messages: each frame's tag and payload words.
pub(super) fn messages(view: &[u8]) -> Vec<(u32, Vec<u64>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < view.len() {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&view[pos..pos + HEADER_LEN]);
        let h = Header::parse(&h);
        pos += HEADER_LEN;
        let words = view[pos..pos + 8 * h.words as usize]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        pos += 8 * h.words as usize;
        out.push((h.tag, words));
    }
    out
}

/// The values opened in a run, from both parties' views: each party receives the other's
/// masked share, so the two views' words at one position add up (XOR for bit words) to
/// the opened value `secret - mask`.
pub(super) fn opened_values(view0: &[u8], view1: &[u8]) -> Vec<u64> {
    let (m0, m1) = (messages(view0), messages(view1));
    assert_eq!(m0.len(), m1.len(), "both parties exchange every message");
    let mut out = Vec::new();
    for ((t0, w0), (t1, w1)) in m0.iter().zip(&m1) {
        assert_eq!((t0, w0.len()), (t1, w1.len()), "messages out of step");
        let xor = *t0 == Tag::And as u32 || *t0 == Tag::BitToArith as u32;
        out.extend(
            w0.iter()
                .zip(w1)
                .map(|(&a, &b)| if xor { a ^ b } else { a.wrapping_add(b) }),
        );
    }
    out
}

/// Both parties' views of [`Everything`] on `n` copies of `v`, over `runs` runs with
/// fresh dealer seeds (`cfg` of 150, 151, ...) and fresh sharing randomness: `[party
/// 0's, party 1's]` received words, and the values opened in each run.
pub(super) fn views_of_everything(
    cfg: fn(u8) -> LocalConfig,
    v: f64,
    n: usize,
    runs: u8,
) -> ([Vec<u64>; 2], Vec<Vec<u64>>) {
    let x = enc(&vec![v; n]);
    let mut all = [Vec::new(), Vec::new()];
    let mut opened = Vec::new();
    for run in 0..runs {
        let mut rng = ChaCha20Rng::seed_from_u64(5000 + run as u64 + (v.to_bits() << 8));
        let shares = share(&x, &mut rng);
        let views = run_in_process(&cfg(150 + run), |e: &mut LocalMpc| {
            e.record_view();
            let mine = vec![shares[e.party().index()].clone()];
            Everything.run(e, &mine).expect("run failed");
            e.take_view()
        });
        for (a, v) in all.iter_mut().zip(&views) {
            a.extend(payload_words(v));
        }
        opened.push(opened_values(&views[0], &views[1]));
    }
    (all, opened)
}

/// Issue 14, item 11: what each party receives in every protocol of training and
/// prediction looks uniform whatever the inputs, and no mask serves two secrets.
///
/// With every input equal, equal secrets arise at each stage (equal products, equal
/// logits, equal softmax rows, equal comparison bits); two of them opened under one mask
/// would be two equal opened values. Among the ~10^5 opened words of a run two uniform
/// 64-bit words are equal with probability below 2^-30, so a repeat is a reused mask (or
/// a value opened without one).
#[test]
fn both_views_of_every_protocol_are_uniform_and_never_repeat_a_mask() {
    views_are_uniform_and_never_repeat_a_mask(config);
}

/// The body of [`both_views_of_every_protocol_are_uniform_and_never_repeat_a_mask`] with
/// the engines of `cfg`.
pub(super) fn views_are_uniform_and_never_repeat_a_mask(cfg: fn(u8) -> LocalConfig) {
    let (n, runs) = (1024, 2);
    let (zero, opened_zero) = views_of_everything(cfg, 0.0, n, runs);
    let (other, opened_other) = views_of_everything(cfg, -3.25, n, runs);
    for (name, run) in opened_zero
        .iter()
        .map(|o| ("zero", o))
        .chain(opened_other.iter().map(|o| ("-3.25", o)))
    {
        let mut seen = std::collections::HashMap::new();
        for (i, &word) in run.iter().enumerate() {
            if let Some(j) = seen.insert(word, i) {
                panic!("{name}: opened values {j} and {i} are both {word:#x}: a mask served twice");
            }
        }
    }
    for party in 0..2 {
        let (a, b) = (&zero[party], &other[party]);
        assert_eq!(
            a.len(),
            b.len(),
            "party {party}: the view's shape is public"
        );
        assert_balanced(&format!("party {party}, zero"), a);
        assert_balanced(&format!("party {party}, -3.25"), b);
        let chi2 = byte_chi2(a, b);
        assert!(
            chi2 < 347.0,
            "party {party}: byte histograms differ: chi2 = {chi2}"
        );
    }
}
