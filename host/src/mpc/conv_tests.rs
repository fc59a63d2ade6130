//! Convolution triples ([`protocols::conv_product`]): the dealer's triples are correlated,
//! both products are exact against `Plain` (the unfolding and matrix product it runs), a
//! whole layer on shares is within its truncation bounds, a product sends the image and
//! not its unfolding, and every value opened is the expected secret under its own fresh
//! mask (each mask identified by its request and position, from a fixed dealer seed).
//! The view test of every protocol ([`super::tests`], `Everything`) includes both products.

use super::channel::MemChannel;
use super::dealer::{
    AndTriples, BackwardMasks, ConvProduct, Correlations, DreluMaterial, OfflineStats, RandomBits,
    ReluMaterial, SeededCorrelations, Triples, TruncPairs,
};
use super::tests::{assert_within, config, enc, on_mpc, on_plain, uniform, Case, Outputs};
use super::wire::Tag;
use super::*;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ringnn_core::engine::{ConvShape, MatDims};
use ringnn_core::layers::{Conv2d, Grads, Image, Params};
use ringnn_core::{Engine, Plain, Z64};
use std::sync::{Arc, Mutex};

/// Layers and inputs of every kind of geometry: LeNet's 5x5 without padding, 3x3 with
/// padding, stride 2 with and without padding, a 1x1 kernel, a kernel as large as the
/// padded input, one image of one channel.
pub(super) const SHAPES: [(Conv2d, Image); 7] = [
    (Conv2d::new(1, 4, 5, 1, 0), Image::new(2, 1, 9, 8)),
    (Conv2d::new(2, 3, 3, 1, 1), Image::new(2, 2, 5, 4)),
    (Conv2d::new(3, 2, 3, 2, 0), Image::new(2, 3, 7, 6)),
    (Conv2d::new(4, 5, 3, 2, 1), Image::new(3, 4, 9, 8)),
    (Conv2d::new(3, 8, 1, 2, 0), Image::new(2, 3, 6, 6)),
    (Conv2d::new(2, 2, 5, 1, 1), Image::new(2, 2, 3, 3)),
    (Conv2d::new(1, 1, 2, 1, 0), Image::new(1, 1, 2, 2)),
];

fn ring(rng: &mut ChaCha20Rng, n: usize) -> Vec<Z64> {
    (0..n).map(|_| Z64(rng.next_u64())).collect()
}

/// Both products of a layer, raw (no rescale): exact ring arithmetic on every engine.
struct Products(Conv2d, Image);

impl Case for Products {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let (conv, input) = (self.0, self.1);
        let s = conv.shape(input);
        let (o, patch, rows) = (s.out_channels, s.patch(), s.rows());
        let b = Bound(conv, input);
        let mut cols = vec![Z64::ZERO; patch * rows];
        let mut y = vec![Z64::ZERO; o * rows];
        e.conv_forward_product(&b, &x[0], &x[1], &mut y, &mut cols)?;
        let mut dw = vec![Z64::ZERO; o * patch];
        e.conv_weight_product(&b, &x[2], &x[0], &mut dw, &mut cols)?;
        Ok(vec![y, dw])
    }
}

/// A layer bound to its input, as [`Conv2d`]'s own passes hand it to the engine.
pub(super) struct Bound(pub(super) Conv2d, pub(super) Image);

impl ringnn_core::engine::ConvUnfold<Z64> for Bound {
    fn shape(&self) -> ConvShape {
        self.0.shape(self.1)
    }
    fn unfold_t(&self, x: &[Z64], cols: &mut [Z64]) {
        self.0.unfold_t(x, self.1, cols);
    }
    fn im2col(&self, x: &[Z64], cols: &mut [Z64]) {
        self.0.im2col(x, self.1, cols);
    }
}

/// Inputs of [`Products`]: the image, the weights and `dY^T`, uniform on the whole ring
/// (the products are exact, so any value must come out right).
pub(super) fn product_inputs(conv: Conv2d, input: Image, seed: u64) -> Vec<Vec<Z64>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let s = conv.shape(input);
    vec![
        ring(&mut rng, input.len()),
        ring(&mut rng, conv.weights()),
        ring(&mut rng, s.out_channels * s.rows()),
    ]
}

#[test]
fn convolution_triples_are_correlated() {
    let dealer = Arc::new(Dealer::from_seed([4; 32]));
    let [mut c0, mut c1] = dealer.correlations();
    let mut words = 0;
    for (conv, input) in SHAPES {
        let shape = conv.shape(input);
        for product in [ConvProduct::Forward, ConvProduct::Weights] {
            let (t0, t1) = (
                c0.conv(shape, product).unwrap(),
                c1.conv(shape, product).unwrap(),
            );
            let [na, nb, nc] = product.sizes(shape);
            assert_eq!((t0.a.len(), t0.b.len(), t0.c.len()), (na, nb, nc));
            let a = reconstruct(&t0.a, &t1.a);
            let b = reconstruct(&t0.b, &t1.b);
            let c = reconstruct(&t0.c, &t1.c);
            assert_eq!(na, input.len(), "A has the image's shape");
            // C is B U(A), as Plain's convolution products compute it.
            let mut p = Plain::with_frac_bits(13).unwrap();
            let d = product.dims(shape);
            let mut cols = vec![Z64::ZERO; d.k * d.n];
            let mut want = vec![Z64::ZERO; d.m * d.n];
            let bound = Bound(conv, input);
            match product {
                ConvProduct::Forward => {
                    p.conv_forward_product(&bound, &a, &b, &mut want, &mut cols)
                }
                ConvProduct::Weights => p.conv_weight_product(&bound, &b, &a, &mut want, &mut cols),
            }
            .unwrap();
            assert_eq!(c, want, "{conv:?} {input:?} {product:?}");
            words += nc;
        }
    }
    // Party 1 receives C's correction only: one word per output, as a matrix triple.
    assert_eq!(c1.offline().bytes, 32 + 8 * words as u64);
    assert_eq!(c0.offline().bytes, 32);
}

#[test]
fn convolution_products_on_shares_equal_plain_exactly() {
    for (t, (conv, input)) in SHAPES.into_iter().enumerate() {
        let inputs = product_inputs(conv, input, 40 + t as u64);
        let plain = on_plain(&Products(conv, input), &inputs);
        let mpc = on_mpc(&config(41 + t as u8), &Products(conv, input), &inputs);
        assert_eq!(plain, mpc, "{conv:?} on {input:?}");
    }
}

/// A whole layer, forward and backward (with the input gradient), as training runs it.
struct Layer(Conv2d, Image);

impl Case for Layer {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let (l, input) = (self.0, self.1);
        let z = Z64::ZERO;
        let mut y = vec![z; l.output(input).len()];
        let mut s = vec![z; l.forward_scratch(input).max(l.backward_scratch(input))];
        let p = Params { w: &x[1], b: &x[2] };
        l.forward(e, &x[0], p, input, &mut y, &mut s)?;
        let (mut dx, mut dw, mut db) = (
            vec![z; x[0].len()],
            vec![z; x[1].len()],
            vec![z; x[2].len()],
        );
        let g = Grads {
            dy: &x[3],
            dx: Some(&mut dx),
            dw: &mut dw,
            db: &mut db,
        };
        l.backward(e, &x[0], &x[1], input, g, &mut s)?;
        Ok(vec![y, dx, dw, db])
    }
}

/// Every product is exact and then truncated once, within one ulp of Plain's rounding:
/// `y`, `dw` and `dx` (truncated after col2im) within 1 ulp, `db` (sums of `dY`) exact.
#[test]
fn a_convolution_layer_on_shares_is_within_its_truncation_bounds() {
    for (t, (conv, input)) in SHAPES.into_iter().enumerate() {
        let mut rng = ChaCha20Rng::seed_from_u64(60 + t as u64);
        let out = conv.output(input);
        let inputs = [
            enc(&uniform(&mut rng, input.len(), -1.0, 1.0)),
            enc(&uniform(&mut rng, conv.weights(), -0.5, 0.5)),
            enc(&uniform(&mut rng, conv.out_channels, -0.5, 0.5)),
            enc(&uniform(&mut rng, out.len(), -1.0, 1.0)),
        ];
        let case = Layer(conv, input);
        let (p, m) = (
            on_plain(&case, &inputs),
            on_mpc(&config(61), &case, &inputs),
        );
        let what = format!("{conv:?} on {input:?}");
        assert_within(&p[0], &m[0], |_| 1, &format!("y, {what}"));
        assert_within(&p[1], &m[1], |_| 1, &format!("dx, {what}"));
        assert_within(&p[2], &m[2], |_| 1, &format!("dw, {what}"));
        assert_within(&p[3], &m[3], |_| 0, &format!("db, {what}"));
    }
}

#[test]
fn a_convolution_product_sends_the_image_not_its_unfolding() {
    // LeNet's second convolution at batch 8: the unfolding is 16 times the image here.
    let (conv, input) = (Conv2d::new(16, 16, 5, 1, 0), Image::new(8, 16, 12, 12));
    let s = conv.shape(input);
    let (img, o, patch, rows) = (input.len(), s.out_channels, s.patch(), s.rows());
    let inputs = product_inputs(conv, input, 70);
    let shares: Vec<[Vec<Z64>; 2]> = {
        let mut rng = ChaCha20Rng::seed_from_u64(71);
        inputs.iter().map(|v| share(v, &mut rng)).collect()
    };
    let [_, (traffic, offline)] = run_in_process(&config(72), |e: &mut local::LocalMpc| {
        let mine: Vec<Vec<Z64>> = shares
            .iter()
            .map(|s| s[e.party().index()].clone())
            .collect();
        Products(conv, input).run(e, &mine).unwrap();
        (e.traffic(), e.offline())
    });
    assert_eq!(traffic.rounds, 2, "one round per product");
    // Each product: the image and the other factor, and one 8-byte header.
    let fwd = 8 * (img + o * patch) + 8;
    let wgt = 8 * (img + o * rows) + 8;
    assert_eq!(traffic.sent, (fwd + wgt) as u64);
    // On the unfolded matrix (the matrix product) the same two would send 8.2 times as
    // much:
    let unfolded = 8 * (patch * rows + o * patch) + 8 + 8 * (o * rows + rows * patch) + 8;
    assert!(
        (traffic.sent as usize) * 8 < unfolded,
        "{} bytes against {unfolded} on the unfolded matrices",
        traffic.sent
    );
    assert_eq!(offline.bytes, 32 + 8 * (o * rows + o * patch) as u64);
    println!(
        "conv {patch}x{rows}: {} bytes sent per party for both products, {unfolded} with \
         the unfolded matrix",
        traffic.sent
    );
}

/// A party's correlations that keep, in order, the mask of every value the protocols open
/// with them: a triple's `a` then `b` (the order of the masked operands in each
/// message), a truncation pair's `r`, backward masks' `d`. Comparison material (AND triples, random bits, FSS
/// keys) is not kept: the body below makes no comparison, and asking for it fails.
pub(super) struct Keeping {
    pub(super) inner: SeededCorrelations,
    pub(super) log: Arc<Mutex<Vec<Vec<Z64>>>>,
}

impl Keeping {
    fn keep(&self, t: &Triples) {
        let mut m = t.a.clone();
        m.extend_from_slice(&t.b);
        self.log.lock().unwrap().push(m);
    }
}

fn not_kept(what: &'static str) -> MpcError {
    MpcError::Dealer {
        what,
        reason: "not kept by the test's correlations".into(),
    }
}

impl Correlations for Keeping {
    fn beaver(&mut self, n: usize) -> Result<Triples, MpcError> {
        let t = self.inner.beaver(n)?;
        self.keep(&t);
        Ok(t)
    }
    fn matrix(&mut self, dims: MatDims) -> Result<Triples, MpcError> {
        let t = self.inner.matrix(dims)?;
        self.keep(&t);
        Ok(t)
    }
    fn conv(&mut self, shape: ConvShape, product: ConvProduct) -> Result<Triples, MpcError> {
        let t = self.inner.conv(shape, product)?;
        self.keep(&t);
        Ok(t)
    }
    fn dense_backward(
        &mut self,
        dims: MatDims,
        back: usize,
        dx: bool,
    ) -> Result<BackwardMasks, MpcError> {
        let t = self.inner.dense_backward(dims, back, dx)?;
        self.log.lock().unwrap().push(t.d.clone());
        Ok(t)
    }
    fn conv_backward(
        &mut self,
        shape: ConvShape,
        back: usize,
        dx: bool,
    ) -> Result<BackwardMasks, MpcError> {
        let t = self.inner.conv_backward(shape, back, dx)?;
        self.log.lock().unwrap().push(t.d.clone());
        Ok(t)
    }
    fn consumed(&self) -> u64 {
        self.inner.consumed()
    }
    fn trunc(&mut self, n: usize, bits: u32) -> Result<TruncPairs, MpcError> {
        let t = self.inner.trunc(n, bits)?;
        self.log.lock().unwrap().push(t.r.clone());
        Ok(t)
    }
    fn trunc_scaled(
        &mut self,
        n: usize,
        bits: u32,
        scale: u64,
        scaled_bits: u32,
    ) -> Result<TruncPairs, MpcError> {
        let t = self.inner.trunc_scaled(n, bits, scale, scaled_bits)?;
        self.log.lock().unwrap().push(t.r.clone());
        Ok(t)
    }
    fn and_triples(&mut self, _: usize) -> Result<AndTriples, MpcError> {
        Err(not_kept("AND triples"))
    }
    fn random_bits(&mut self, _: usize) -> Result<RandomBits, MpcError> {
        Err(not_kept("random bits"))
    }
    fn drelu(&mut self, _: usize, _: u32) -> Result<DreluMaterial, MpcError> {
        Err(not_kept("DReLU keys"))
    }
    fn relu(&mut self, _: usize, _: u32) -> Result<ReluMaterial, MpcError> {
        Err(not_kept("ReLU keys"))
    }
    fn offline(&self) -> OfflineStats {
        self.inner.offline()
    }
}

/// col2im of an unfolded gradient `dcols` (`patch x rows`: patch index `(c, ki, kj)`,
/// row `(n, oy, ox)`), summed in the ring: the raw input gradient that a convolution's
/// backward pass truncates once.
pub(super) fn col2im(conv: Conv2d, input: Image, dcols: &[Z64]) -> Vec<Z64> {
    let (k, stride, pad) = (conv.kernel, conv.stride, conv.padding as isize);
    let (out, rows) = (conv.output(input), conv.shape(input).rows());
    let mut dx = vec![Z64::ZERO; input.len()];
    for (n, c) in (0..input.batch).flat_map(|n| (0..input.channels).map(move |c| (n, c))) {
        for (ki, kj) in (0..k).flat_map(|i| (0..k).map(move |j| (i, j))) {
            for (oy, ox) in (0..out.height).flat_map(|y| (0..out.width).map(move |x| (y, x))) {
                let iy = (oy * stride + ki) as isize - pad;
                let ix = (ox * stride + kj) as isize - pad;
                let inside = (0..input.height as isize).contains(&iy)
                    && (0..input.width as isize).contains(&ix);
                if inside {
                    let at = ((n * input.channels + c) * input.height + iy as usize) * input.width
                        + ix as usize;
                    let p = (c * k + ki) * k + kj;
                    dx[at] += dcols[p * rows + n * out.plane() + oy * out.width + ox];
                }
            }
        }
    }
    dx
}

/// With a fixed dealer seed, every value opened in a layer's forward and backward pass
/// (both convolution products, the input gradient's matrix product, the three
/// truncations) is identified with its mask, `(request, position)`, and checked to be
/// the expected secret under that mask: the image, the weights, `dY^T`, `W^T` and the
/// exact products. Every mask id serves exactly one opening, so no mask serves two
/// secrets (a protocol that reused a mask, or opened a value under another request's
/// mask, would give a wrong secret here); and the image is opened twice (forward, weight
/// gradient) under two different masks.
#[test]
fn every_opened_value_is_its_secret_under_its_own_mask() {
    let (conv, input) = (Conv2d::new(2, 3, 3, 2, 1), Image::new(2, 2, 7, 6));
    let s = conv.shape(input);
    let (o, patch, rows) = (s.out_channels, s.patch(), s.rows());
    let mut rng = ChaCha20Rng::seed_from_u64(80);
    let out = conv.output(input);
    let x = enc(&uniform(&mut rng, input.len(), -1.0, 1.0));
    let w = enc(&uniform(&mut rng, conv.weights(), -0.5, 0.5));
    let b = enc(&uniform(&mut rng, o, -0.5, 0.5));
    let dy = enc(&uniform(&mut rng, out.len(), -1.0, 1.0));
    let inputs = [x.clone(), w.clone(), b.clone(), dy.clone()];
    let mut srng = ChaCha20Rng::seed_from_u64(81);
    let shares: Vec<[Vec<Z64>; 2]> = inputs.iter().map(|v| share(v, &mut srng)).collect();
    let dealer = Arc::new(Dealer::from_seed([82; 32]));
    let logs = [(); 2].map(|_| Arc::new(Mutex::new(Vec::new())));
    let [c0, c1] = dealer.correlations();
    let (ch0, ch1) = MemChannel::pair();
    let f = ringnn_core::fixed::FracBits::new(super::tests::F).unwrap();
    let views: Vec<Vec<u8>> = std::thread::scope(|sc| {
        let handles: Vec<_> = [(PartyId::P0, ch0, c0), (PartyId::P1, ch1, c1)]
            .into_iter()
            .map(|(party, ch, inner)| {
                let log = logs[party.index()].clone();
                let shares = &shares;
                sc.spawn(move || {
                    let mut e = Mpc::new(party, f, ch, Keeping { inner, log });
                    e.record_view();
                    let mine: Vec<Vec<Z64>> =
                        shares.iter().map(|s| s[party.index()].clone()).collect();
                    Layer(conv, input).run(&mut e, &mine).unwrap();
                    e.take_view()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The masks, reconstructed from both parties' material, request by request.
    let (l0, l1) = (logs[0].lock().unwrap(), logs[1].lock().unwrap());
    let masks: Vec<Vec<Z64>> = l0
        .iter()
        .zip(l1.iter())
        .map(|(a, b)| reconstruct(a, b))
        .collect();
    // The expected secrets of each message, in the layer's order, from the plaintext:
    // the exact products come from Plain's own convolution products and matrix product.
    let mut p = Plain::with_frac_bits(super::tests::F).unwrap();
    let bound = Bound(conv, input);
    let mut cols = vec![Z64::ZERO; patch * rows];
    let mut y_raw = vec![Z64::ZERO; o * rows];
    p.conv_forward_product(&bound, &x, &w, &mut y_raw, &mut cols)
        .unwrap();
    let pl = out.plane();
    let mut dyt = vec![Z64::ZERO; o * rows];
    for n in 0..input.batch {
        for c in 0..o {
            dyt[c * rows + n * pl..c * rows + (n + 1) * pl]
                .copy_from_slice(&dy[(n * o + c) * pl..(n * o + c + 1) * pl]);
        }
    }
    let mut dw_raw = vec![Z64::ZERO; o * patch];
    p.conv_weight_product(&bound, &dyt, &x, &mut dw_raw, &mut cols)
        .unwrap();
    let mut wt = vec![Z64::ZERO; patch * o];
    for r in 0..o {
        for c in 0..patch {
            wt[c * o + r] = w[r * patch + c];
        }
    }
    let mut dcols = vec![Z64::ZERO; patch * rows];
    let d = MatDims {
        m: patch,
        k: o,
        n: rows,
    };
    p.matmul(&wt, &dyt, d, &mut dcols).unwrap();
    // The input gradient is truncated once after col2im.
    let dx_raw = col2im(conv, input, &dcols);
    let cat = |a: &[Z64], b: &[Z64]| [a, b].concat();
    let expected: Vec<(Tag, Vec<Z64>)> = vec![
        (Tag::Conv, cat(&x, &w)),
        (Tag::Trunc, y_raw),
        (Tag::Conv, cat(&x, &dyt)),
        (Tag::Trunc, dw_raw),
        (Tag::Matmul, cat(&wt, &dyt)),
        (Tag::Trunc, dx_raw),
    ];
    let (m0, m1) = (
        super::view_tests::messages(&views[0]),
        super::view_tests::messages(&views[1]),
    );
    assert_eq!(m0.len(), expected.len(), "one message per opening");
    assert_eq!(masks.len(), expected.len(), "one request per message");
    let mut ids = std::collections::HashSet::new();
    for (k, ((tag, want), ((t0, w0), (_, w1)))) in
        expected.iter().zip(m0.iter().zip(&m1)).enumerate()
    {
        assert_eq!(*t0, *tag as u32, "message {k}");
        let mask = &masks[k];
        assert_eq!(
            (w0.len(), mask.len()),
            (want.len(), want.len()),
            "message {k}"
        );
        for (j, ((&a, &b), (&m, &s))) in w0.iter().zip(w1).zip(mask.iter().zip(want)).enumerate() {
            let opened = Z64(a.wrapping_add(b));
            // Triples open `secret - mask`; truncation opens `secret + 2^62 + mask`.
            let secret = match tag {
                Tag::Trunc => opened - m - Z64(1 << 62),
                _ => opened + m,
            };
            assert_eq!(
                secret, s,
                "message {k} ({tag:?}), word {j}: not its secret under mask ({k}, {j})"
            );
            assert!(ids.insert((k, j)), "mask ({k}, {j}) served twice");
        }
    }
    // The image, opened in both convolution products, under two different masks.
    let img = input.len();
    assert!(masks[0][..img]
        .iter()
        .zip(&masks[2][..img])
        .all(|(a, b)| a != b));
}
