//! Digit-like glyphs that ringnn draws itself: the default data when no data directory is
//! given, so that training, the precision studies and their tests run anywhere.
//!
//! Each of the ten classes is a stroke template (line segments and elliptic arcs roughly
//! shaped like the digit). An image jitters the template's points, applies a random
//! affine transform (rotation, scale, aspect, shear, translation), draws the strokes with
//! a random thickness and ink, and adds Gaussian pixel noise and, sometimes, a stray
//! stroke. The images have MNIST's shape (1 x 28 x 28, values in [0, 1]) and class count,
//! so a model for one runs on the other.
//!
//! The set is meant to be learnable but not trivial, like MNIST: a linear softmax
//! classifier reaches about 85% test accuracy from 2,000 images (see the test) and 88%
//! from 10,000, so there is room above it for a network and for differences between
//! approximations to show.
//!
//! Image `i` of the training set depends only on the seed and `i` (each image has its own
//! ChaCha8 stream), so the first `k` images are the same whatever the size asked for, and
//! the test set is drawn from streams disjoint from the training set's. Labels cycle
//! `0, 1, ..., 9, 0, ...`, so classes are balanced; shuffle before training.

use super::{Dataset, Shape, Split};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// The shape of a synthetic image: MNIST's.
pub const SYNTH_SHAPE: Shape = Shape {
    channels: 1,
    height: 28,
    width: 28,
};
/// The number of classes.
pub const SYNTH_CLASSES: usize = 10;

/// The first stream of the test set; training images use streams from 0.
const TEST_STREAM: u64 = 1 << 63;

type Point = (f32, f32);

/// Points of an elliptic arc centred at (cx, cy) with radii (rx, ry), from angle `from`
/// to `to` in degrees (0 is +x, 90 is +y, which is down on screen), `n` segments.
fn arc(cx: f32, cy: f32, rx: f32, ry: f32, from: f32, to: f32, n: usize) -> Vec<Point> {
    (0..=n)
        .map(|i| {
            let a = (from + (to - from) * i as f32 / n as f32).to_radians();
            (cx + rx * libm::cosf(a), cy + ry * libm::sinf(a))
        })
        .collect()
}

fn join(mut a: Vec<Point>, b: Vec<Point>) -> Vec<Point> {
    a.extend(b);
    a
}

/// The stroke templates, as polylines in glyph units: x in about [-0.5, 0.5], y in about
/// [-0.8, 0.8], y down.
fn templates() -> [Vec<Vec<Point>>; SYNTH_CLASSES] {
    [
        vec![arc(0.0, 0.0, 0.42, 0.75, 0.0, 360.0, 16)],
        vec![vec![(-0.25, -0.5), (0.05, -0.8), (0.05, 0.8)]],
        vec![join(
            arc(0.0, -0.42, 0.42, 0.38, 200.0, 380.0, 8),
            vec![(-0.45, 0.8), (0.45, 0.8)],
        )],
        vec![join(
            arc(0.0, -0.42, 0.38, 0.38, 200.0, 450.0, 9),
            arc(0.0, 0.4, 0.43, 0.4, 270.0, 520.0, 9),
        )],
        vec![vec![(0.2, 0.8), (0.2, -0.8), (-0.5, 0.3), (0.5, 0.3)]],
        vec![join(
            vec![(0.45, -0.8), (-0.35, -0.8), (-0.4, -0.08)],
            arc(0.0, 0.35, 0.45, 0.45, 235.0, 510.0, 10),
        )],
        vec![
            vec![(0.3, -0.8), (-0.15, -0.35), (-0.42, 0.3)],
            arc(0.0, 0.4, 0.42, 0.4, 0.0, 360.0, 14),
        ],
        vec![vec![(-0.45, -0.8), (0.45, -0.8), (-0.1, 0.8)]],
        vec![
            arc(0.0, -0.42, 0.34, 0.36, 0.0, 360.0, 12),
            arc(0.0, 0.38, 0.42, 0.42, 0.0, 360.0, 14),
        ],
        vec![
            arc(0.0, -0.4, 0.4, 0.38, 0.0, 360.0, 14),
            vec![(0.4, -0.4), (0.3, 0.8)],
        ],
    ]
}

/// Draws the segment a-b with radius `r` and ink `ink` into `img` (max blending), with a
/// one-pixel linear edge so that thin strokes stay visible at any position.
fn draw_segment(img: &mut [f32], shape: Shape, a: Point, b: Point, r: f32, ink: f32) {
    let (w, h) = (shape.width as f32, shape.height as f32);
    let reach = r + 1.0;
    let x0 = (a.0.min(b.0) - reach).floor().max(0.0);
    let x1 = (a.0.max(b.0) + reach).ceil().min(w - 1.0);
    let y0 = (a.1.min(b.1) - reach).floor().max(0.0);
    let y1 = (a.1.max(b.1) + reach).ceil().min(h - 1.0);
    if x0 > x1 || y0 > y1 {
        return;
    }
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    for y in y0 as usize..=y1 as usize {
        for x in x0 as usize..=x1 as usize {
            let (px, py) = (x as f32 - a.0, y as f32 - a.1);
            let t = if len2 > 0.0 {
                ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (ex, ey) = (px - t * dx, py - t * dy);
            let d = (ex * ex + ey * ey).sqrt();
            let v = (r + 0.5 - d).clamp(0.0, 1.0) * ink;
            let p = &mut img[y * shape.width + x];
            if v > *p {
                *p = v;
            }
        }
    }
}

/// Draws one glyph of class `label` (taken modulo 10) into `out` (1 x 28 x 28, overwritten),
/// every random choice drawn from `rng`.
///
/// # Panics
/// If `out` is not 784 long.
pub fn render_digit<R: Rng + ?Sized>(label: u8, rng: &mut R, out: &mut [f32]) {
    render_with(&templates(), label, rng, out);
}

fn render_with<R: Rng + ?Sized>(
    templates: &[Vec<Vec<Point>>; SYNTH_CLASSES],
    label: u8,
    rng: &mut R,
    out: &mut [f32],
) {
    let shape = SYNTH_SHAPE;
    assert_eq!(out.len(), shape.len(), "output length");
    out.fill(0.0);
    let strokes = &templates[usize::from(label) % SYNTH_CLASSES];

    // Glyph units to pixels: the template's 1.6-unit height becomes about 17 pixels, as
    // MNIST's digits are about 20 pixels tall in a 28-pixel box.
    let theta = rng.random_range(-0.25f32..0.25);
    let scale = 10.5 * rng.random_range(0.82f32..1.12);
    let aspect = rng.random_range(0.85f32..1.15);
    let shear = rng.random_range(-0.3f32..0.3);
    let tx = 13.5 + rng.random_range(-2.0f32..2.0);
    let ty = 13.5 + rng.random_range(-2.0f32..2.0);
    let (s, c) = (libm::sinf(theta), libm::cosf(theta));
    let (sx, sy) = (scale * aspect, scale / aspect);
    let jitter = 0.06f32;
    let map = |(x, y): Point, rng: &mut R| -> Point {
        let x = x + jitter * rng.sample::<f32, _>(StandardNormal);
        let y = y + jitter * rng.sample::<f32, _>(StandardNormal);
        let x = x + shear * y;
        let (x, y) = (x * sx, y * sy);
        (c * x - s * y + tx, s * x + c * y + ty)
    };

    let radius = rng.random_range(0.6f32..1.7);
    let ink = rng.random_range(0.7f32..1.0);
    for stroke in strokes {
        let mut prev: Option<Point> = None;
        for &p in stroke {
            let q = map(p, rng);
            if let Some(a) = prev {
                draw_segment(out, shape, a, q, radius, ink);
            }
            prev = Some(q);
        }
    }
    // A stray stroke now and then, as on scanned paper.
    if rng.random_bool(0.3) {
        let a = (
            rng.random_range(0.0f32..28.0),
            rng.random_range(0.0f32..28.0),
        );
        let b = (
            a.0 + rng.random_range(-8.0f32..8.0),
            a.1 + rng.random_range(-8.0f32..8.0),
        );
        draw_segment(out, shape, a, b, rng.random_range(0.4f32..1.0), ink);
    }
    let noise = rng.random_range(0.05f32..0.2);
    for v in out.iter_mut() {
        *v = (*v + noise * rng.sample::<f32, _>(StandardNormal)).clamp(0.0, 1.0);
    }
}

/// `n` glyphs from streams `first..first + n` of `seed`.
fn generate(n: usize, seed: u64, first: u64, name: String) -> Dataset {
    let templates = templates();
    let len = SYNTH_SHAPE.len();
    let mut images = vec![0.0f32; n * len];
    let mut labels = Vec::with_capacity(n);
    for (i, out) in images.chunks_exact_mut(len).enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(first + i as u64);
        let label = (i % SYNTH_CLASSES) as u8;
        render_with(&templates, label, &mut rng, out);
        labels.push(label);
    }
    Dataset {
        name,
        images,
        labels,
        shape: SYNTH_SHAPE,
        classes: SYNTH_CLASSES,
        class_names: (0..SYNTH_CLASSES).map(|c| c.to_string()).collect(),
    }
}

/// `train` training and `test` test glyphs drawn from `seed`, pixels in [0, 1].
pub fn synthetic_digits(train: usize, test: usize, seed: u64) -> Split {
    Split {
        train: generate(
            train,
            seed,
            0,
            format!("synthetic digits (seed {seed}, train)"),
        ),
        test: generate(
            test,
            seed,
            TEST_STREAM,
            format!("synthetic digits (seed {seed}, test)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain softmax regression in f32, trained by SGD: the linear baseline the module
    /// docs promise stays clearly below 100% and clearly above chance.
    fn linear_accuracy(split: &Split, epochs: usize) -> f32 {
        let (d, k) = (SYNTH_SHAPE.len(), SYNTH_CLASSES);
        let mut w = vec![0.0f32; k * d];
        let mut b = vec![0.0f32; k];
        let lr = 0.05;
        let mut order: Vec<usize> = (0..split.train.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut logits = vec![0.0f32; k];
        let scores = |w: &[f32], b: &[f32], x: &[f32], logits: &mut [f32]| {
            for (j, l) in logits.iter_mut().enumerate() {
                *l = b[j]
                    + w[j * d..(j + 1) * d]
                        .iter()
                        .zip(x)
                        .map(|(a, b)| a * b)
                        .sum::<f32>();
            }
        };
        for _ in 0..epochs {
            for i in (1..order.len()).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            for &i in &order {
                let x = split.train.image(i);
                scores(&w, &b, x, &mut logits);
                let m = logits.iter().cloned().fold(f32::MIN, f32::max);
                let z: f32 = logits.iter().map(|l| (l - m).exp()).sum();
                for j in 0..k {
                    let p = (logits[j] - m).exp() / z;
                    let g = p - f32::from(u8::from(j == usize::from(split.train.labels[i])));
                    b[j] -= lr * g;
                    for (wj, xv) in w[j * d..(j + 1) * d].iter_mut().zip(x) {
                        *wj -= lr * g * xv;
                    }
                }
            }
        }
        let mut correct = 0;
        for i in 0..split.test.len() {
            scores(&w, &b, split.test.image(i), &mut logits);
            let best = (0..k)
                .max_by(|&a, &c| logits[a].total_cmp(&logits[c]))
                .unwrap_or(0);
            correct += usize::from(best == usize::from(split.test.labels[i]));
        }
        correct as f32 / split.test.len() as f32
    }

    #[test]
    fn a_linear_model_learns_them_but_not_perfectly() {
        let mut split = synthetic_digits(2000, 1000, 3);
        crate::data::normalise(&mut split);
        let acc = linear_accuracy(&split, 5);
        println!("softmax regression on 2,000 synthetic digits: test accuracy {acc:.3}");
        assert!(acc > 0.6, "accuracy {acc}");
        assert!(
            acc < 0.99,
            "accuracy {acc}: too easy to tell approximations apart"
        );
    }

    #[test]
    fn seeded_and_prefix_stable() {
        let a = synthetic_digits(30, 10, 1);
        assert_eq!(a, synthetic_digits(30, 10, 1));
        let b = synthetic_digits(30, 10, 2);
        for i in 0..30 {
            assert_ne!(a.train.image(i), b.train.image(i), "image {i}");
        }
        let prefix = synthetic_digits(12, 3, 1);
        assert_eq!(prefix.train.images[..], a.train.images[..12 * 784]);
        assert_eq!(prefix.test.images[..], a.test.images[..3 * 784]);
        assert_ne!(a.train.image(0), a.test.image(0));
        assert_eq!(a.train.labels[..12], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    }

    #[test]
    fn pixels_in_range_and_glyphs_have_ink() {
        let s = synthetic_digits(200, 0, 11);
        assert!(s.train.images.iter().all(|v| (0.0..=1.0).contains(v)));
        for i in 0..s.train.len() {
            let bright = s.train.image(i).iter().filter(|&&v| v > 0.5).count();
            assert!(
                (10..500).contains(&bright),
                "image {i}: {bright} bright pixels"
            );
        }
        let mean = s.train.images.iter().sum::<f32>() / s.train.images.len() as f32;
        assert!((0.05..0.35).contains(&mean), "mean {mean}");
    }
}
