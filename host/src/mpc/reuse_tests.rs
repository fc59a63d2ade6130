//! Masks reused within a training step ([`protocols::matmul_keeping`],
//! [`protocols::dense_backward`]): a dense layer's backward products, computed from the
//! forward's opened `X - A`, `W - B` and a fresh `dY - D`, are exact against `Plain`; the
//! dealer's dense backward masks are correlated with the forward triple; a layer's
//! backward pass sends `dY` only; and, with a fixed dealer seed, every opened value is
//! its secret under its own mask and no mask id ever serves two different secrets, over
//! two steps of the same layer. The same for convolutions ([`protocols::conv_backward`]).

use super::channel::MemChannel;
use super::conv_tests::{product_inputs, Bound, Keeping, SHAPES};
use super::dealer::Correlations;
use super::tests::{config, enc, on_mpc, on_plain, uniform, Case, Outputs};
use super::wire::Tag;
use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::engine::MatDims;
use ringnn_core::layers::{transpose, Conv2d, Dense, Grads, Image, Params};
use ringnn_core::{Engine, Plain, Z64};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Shapes `(m, k, n)`: the mlp's last layer at batch 8, square, one row, one input, one
/// output.
const DENSE_SHAPES: [(usize, usize, usize); 5] =
    [(8, 12, 10), (5, 5, 5), (1, 7, 3), (6, 1, 4), (4, 9, 1)];

/// A dense layer's three raw products (no rescale) through the training path, with or
/// without the input gradient: exact ring arithmetic on every engine.
struct Products(MatDims, bool);

impl Case for Products {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let (d, with_dx) = (self.0, self.1);
        let MatDims { m, k, n } = d;
        let mut y = vec![Z64::ZERO; m * n];
        e.dense_forward_product(4, &x[0], &x[1], d, &mut y)?;
        let (mut dw, mut dx) = (vec![Z64::ZERO; k * n], vec![Z64::ZERO; m * k]);
        let mut s = vec![Z64::ZERO; (m * k).max(k * n)];
        let dxo = with_dx.then_some(&mut dx[..]);
        e.dense_backward_products(4, &x[0], &x[1], &x[2], d, &mut dw, dxo, &mut s)?;
        Ok(vec![y, dw, dx])
    }
}

fn inputs(d: MatDims, seed: u64) -> Vec<Vec<Z64>> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let MatDims { m, k, n } = d;
    vec![
        enc(&uniform(&mut rng, m * k, -2.0, 2.0)),
        enc(&uniform(&mut rng, k * n, -1.0, 1.0)),
        enc(&uniform(&mut rng, m * n, -1.0, 1.0)),
    ]
}

#[test]
fn dense_products_on_reused_masks_equal_plain_exactly() {
    for (t, (m, k, n)) in DENSE_SHAPES.into_iter().enumerate() {
        let d = MatDims { m, k, n };
        for with_dx in [true, false] {
            let x = inputs(d, 90 + t as u64);
            let plain = on_plain(&Products(d, with_dx), &x);
            let mpc = on_mpc(&config(91 + t as u8), &Products(d, with_dx), &x);
            assert_eq!(plain, mpc, "{d:?}, dx {with_dx}");
        }
    }
}

#[test]
fn dense_backward_masks_are_correlated_with_the_forward_triple() {
    let dealer = Arc::new(Dealer::from_seed([93; 32]));
    let d = MatDims { m: 4, k: 6, n: 3 };
    let [mut c0, mut c1] = dealer.correlations();
    let (t0, t1) = (c0.matrix(d).unwrap(), c1.matrix(d).unwrap());
    // Another request between the two: the link is by distance.
    c0.trunc(5, 13).unwrap();
    c1.trunc(5, 13).unwrap();
    assert_eq!((c0.consumed(), c1.consumed()), (2, 2));
    let (b0, b1) = (
        c0.dense_backward(d, 2, true).unwrap(),
        c1.dense_backward(d, 2, true).unwrap(),
    );
    let a = reconstruct(&t0.a, &t1.a);
    let b = reconstruct(&t0.b, &t1.b);
    let dd = reconstruct(&b0.d, &b1.d);
    let mut at = vec![Z64::ZERO; 24];
    transpose(&a, 4, 6, &mut at);
    let mut cw = vec![Z64::ZERO; 18];
    crate::gemm::matmul_z64(&at, &dd, MatDims { m: 6, k: 4, n: 3 }, &mut cw);
    assert_eq!(reconstruct(&b0.c_w, &b1.c_w), cw);
    let mut bt = vec![Z64::ZERO; 18];
    transpose(&b, 6, 3, &mut bt);
    let mut cx = vec![Z64::ZERO; 24];
    crate::gemm::matmul_z64(&dd, &bt, MatDims { m: 4, k: 3, n: 6 }, &mut cx);
    assert_eq!(reconstruct(&b0.c_x, &b1.c_x), cx);
    // D is fresh: not the forward's masks.
    assert!(dd.iter().zip(&a).all(|(p, q)| p != q));
    // Party 1 received the two products' corrections, as two fresh triples' would be.
    assert_eq!(c1.offline().bytes, 32 + 8 * (12 + 10 + 18 + 24));
    assert_eq!(c0.offline().bytes, 32);
    // Without the input gradient only `C_w`; a link to before the first request fails.
    let [mut c0, mut c1] = dealer.correlations();
    c1.matrix(d).unwrap();
    c0.matrix(d).unwrap();
    assert!(c1.dense_backward(d, 1, false).unwrap().c_x.is_empty());
    assert!(c0.dense_backward(d, 1, false).unwrap().c_x.is_empty());
    let e = c1.dense_backward(d, 3, false).unwrap_err().to_string();
    assert!(e.contains("refers 3 requests back (allowed 1 to 2)"), "{e}");
}

#[test]
fn a_dense_backward_pass_sends_the_output_gradient_only() {
    // The mlp's middle layer at batch 16.
    let d = MatDims {
        m: 16,
        k: 128,
        n: 128,
    };
    let x = inputs(d, 94);
    let shares: Vec<[Vec<Z64>; 2]> = {
        let mut rng = ChaCha20Rng::seed_from_u64(95);
        x.iter().map(|v| share(v, &mut rng)).collect()
    };
    let [_, (traffic, offline)] = run_in_process(&config(96), |e: &mut local::LocalMpc| {
        let mine: Vec<Vec<Z64>> = shares
            .iter()
            .map(|s| s[e.party().index()].clone())
            .collect();
        Products(d, true).run(e, &mine).unwrap();
        (e.traffic(), e.offline())
    });
    let MatDims { m, k, n } = d;
    assert_eq!(traffic.rounds, 2, "one round forward, one backward");
    // Forward: X and W; backward: dY; one 8-byte header each.
    let sent = 8 * (m * k + k * n) + 8 + 8 * m * n + 8;
    assert_eq!(traffic.sent, sent as u64);
    // Fresh triples for both backward products: X^T and dY, then dY and W^T.
    let fresh = 8 * (m * k + k * n) + 8 + 8 * (k * m + m * n) + 8 + 8 * (m * n + n * k) + 8;
    assert_eq!(fresh - sent, 8 * (m * k + k * n + m * n) + 8);
    // The dealer's bytes are those of three fresh triples.
    assert_eq!(offline.bytes, 32 + 8 * (m * n + k * n + m * k) as u64);
    println!(
        "dense {m}x{k}x{n}, forward and backward: {} bytes sent per party, {fresh} with fresh \
         masks for every product",
        traffic.sent
    );
}

/// A dense layer as training runs it: `forward_keeping`, then `backward_kept` with the
/// input gradient, on the same slot.
fn layer_step<E: Engine<Elem = Z64, Public = Z64>>(
    e: &mut E,
    l: Dense,
    batch: usize,
    x: &[Vec<Z64>],
) -> Result<Outputs, E::Error> {
    let z = Z64::ZERO;
    let mut y = vec![z; batch * l.outputs];
    l.forward_keeping(e, 0, &x[0], &x[1], &x[2], batch, &mut y)?;
    let (mut dx, mut dw, mut db) = (
        vec![z; batch * l.inputs],
        vec![z; l.weights()],
        vec![z; l.outputs],
    );
    let mut s = vec![z; l.backward_scratch(batch)];
    let g = Grads {
        dy: &x[3],
        dx: Some(&mut dx),
        dw: &mut dw,
        db: &mut db,
    };
    l.backward_kept(e, 0, &x[0], &x[1], batch, g, &mut s, false)?;
    Ok(vec![y, dx, dw, db])
}

/// One engine of the view tests: its correlations keep every mask.
type Keeper = Mpc<MemChannel, Keeping>;

/// What one step of a view test must show: each message's tag and the secret it carries
/// (in order), and the secrets the step's backward products take from an earlier
/// opening: `(message index within the step, secrets)`, in the order of that message's
/// words.
struct StepView {
    expected: Vec<(Tag, Vec<Z64>)>,
    reused: Vec<(usize, Vec<Z64>)>,
}

/// Runs `step` on both parties over each step's shared inputs, with a fixed dealer seed,
/// and checks the views against `views`: every message is identified with its request
/// and every opened word with its mask, `(request, position)`, reconstructed from both
/// parties' material; the secret it carries is `opened + mask` (truncations: `opened -
/// mask - 2^62`) and must be the expected one. Each mask id may serve one secret only:
/// the secrets the backward products take from the forward's opening are recorded under
/// the forward's mask ids and must equal what was opened there. Returns the masks.
fn check_views(
    steps: &[Vec<Vec<Z64>>],
    step: fn(&mut Keeper, &[Vec<Z64>]),
    views: &[StepView],
    seed: u8,
) -> Vec<Vec<Z64>> {
    let mut srng = ChaCha20Rng::seed_from_u64(u64::from(seed));
    let shares: Vec<Vec<[Vec<Z64>; 2]>> = steps
        .iter()
        .map(|s| s.iter().map(|v| share(v, &mut srng)).collect())
        .collect();
    let dealer = Arc::new(Dealer::from_seed([seed; 32]));
    let logs = [(); 2].map(|_| Arc::new(Mutex::new(Vec::new())));
    let [c0, c1] = dealer.correlations();
    let (ch0, ch1) = MemChannel::pair();
    let f = ringnn_core::fixed::FracBits::new(super::tests::F).unwrap();
    let recorded: Vec<Vec<u8>> = std::thread::scope(|sc| {
        let handles: Vec<_> = [(PartyId::P0, ch0, c0), (PartyId::P1, ch1, c1)]
            .into_iter()
            .map(|(party, ch, inner)| {
                let log = logs[party.index()].clone();
                let shares = &shares;
                sc.spawn(move || {
                    let mut e = Mpc::new(party, f, ch, Keeping { inner, log });
                    e.record_view();
                    for s in shares {
                        let mine: Vec<Vec<Z64>> =
                            s.iter().map(|v| v[party.index()].clone()).collect();
                        step(&mut e, &mine);
                    }
                    e.take_view()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (l0, l1) = (logs[0].lock().unwrap(), logs[1].lock().unwrap());
    let masks: Vec<Vec<Z64>> = l0
        .iter()
        .zip(l1.iter())
        .map(|(a, b)| reconstruct(a, b))
        .collect();
    let (m0, m1) = (
        super::view_tests::messages(&recorded[0]),
        super::view_tests::messages(&recorded[1]),
    );
    let per: usize = views.iter().map(|v| v.expected.len()).sum();
    assert_eq!(m0.len(), per, "messages");
    assert_eq!(masks.len(), m0.len(), "one request per message");
    let mut served: HashMap<(usize, usize), Z64> = HashMap::new();
    let mut serve = |id: (usize, usize), secret: Z64, what: &str| {
        if let Some(old) = served.insert(id, secret) {
            assert_eq!(old, secret, "mask {id:?} serves two secrets ({what})");
        }
    };
    let mut first = 0;
    for (s, v) in views.iter().enumerate() {
        for (i, (tag, want)) in v.expected.iter().enumerate() {
            let k = first + i;
            let ((t0, w0), (_, w1)) = (&m0[k], &m1[k]);
            assert_eq!(*t0, *tag as u32, "step {s}, message {i}");
            assert_eq!((w0.len(), masks[k].len()), (want.len(), want.len()));
            for (j, ((&a, &b), (&mk, &sec))) in
                w0.iter().zip(w1).zip(masks[k].iter().zip(want)).enumerate()
            {
                let opened = Z64(a.wrapping_add(b));
                let secret = match tag {
                    Tag::Trunc => opened - mk - Z64(1 << 62),
                    _ => opened + mk,
                };
                assert_eq!(secret, sec, "step {s}, message {i}, word {j}");
                serve((k, j), secret, "opened");
            }
        }
        for (i, secrets) in &v.reused {
            for (j, &sec) in secrets.iter().enumerate() {
                serve((first + i, j), sec, "reused in the backward products");
            }
        }
        first += v.expected.len();
    }
    let opened: usize = m0.iter().map(|(_, w)| w.len()).sum();
    assert_eq!(
        served.len(),
        opened,
        "every opened word has its own mask id"
    );
    masks
}

/// With a fixed dealer seed, two steps of a dense layer on shares (different inputs,
/// weights and gradients each step, the same slot), checked by [`check_views`]: the
/// forward's `A` and `B` serve `X` and `W` in the forward opening and again in the
/// backward products (the secrets the layer passes to its backward pass), the
/// backward's `D` serves `dY`, and the truncated values are `Plain`'s exact products, so
/// the backward products used this step's openings (a reuse across steps, or of another
/// layer's, would give wrong products here).
#[test]
fn no_mask_serves_two_secrets_over_two_steps_of_a_dense_layer() {
    let batch = 3;
    let mut rng = ChaCha20Rng::seed_from_u64(97);
    let steps: Vec<Vec<Vec<Z64>>> = (0..2)
        .map(|_| {
            vec![
                enc(&uniform(&mut rng, batch * 7, -1.0, 1.0)),
                enc(&uniform(&mut rng, 35, -0.5, 0.5)),
                enc(&uniform(&mut rng, 5, -0.5, 0.5)),
                enc(&uniform(&mut rng, batch * 5, -1.0, 1.0)),
            ]
        })
        .collect();
    let mut p = Plain::with_frac_bits(super::tests::F).unwrap();
    let views: Vec<StepView> = steps
        .iter()
        .map(|x| {
            // Plain's raw products: X W, X^T dY, dY W^T.
            let d = MatDims {
                m: batch,
                k: 7,
                n: 5,
            };
            let mut y = vec![Z64::ZERO; batch * 5];
            p.matmul(&x[0], &x[1], d, &mut y).unwrap();
            let (mut dw, mut dx) = (vec![Z64::ZERO; 35], vec![Z64::ZERO; batch * 7]);
            let mut sc = vec![Z64::ZERO; 35];
            ringnn_core::engine::generic::dense_backward_products(
                &mut p,
                &x[0],
                &x[1],
                &x[3],
                d,
                &mut dw,
                Some(&mut dx),
                &mut sc,
            )
            .unwrap();
            let xw = [x[0].clone(), x[1].clone()].concat();
            StepView {
                expected: vec![
                    (Tag::Matmul, xw.clone()),
                    (Tag::Trunc, y),
                    (Tag::DenseBackward, x[3].clone()),
                    (Tag::Trunc, dw),
                    (Tag::Trunc, dx),
                ],
                reused: vec![(0, xw)],
            }
        })
        .collect();
    let step = |e: &mut Keeper, x: &[Vec<Z64>]| {
        layer_step(e, Dense::new(7, 5), 3, x).unwrap();
    };
    let masks = check_views(&steps, step, &views, 99);
    // Fresh forward masks in the second step.
    assert!(masks[0].iter().zip(&masks[5]).all(|(a, b)| a != b));
}

/// A convolution as training runs it: `forward_keeping`, then `backward_kept` with the
/// input gradient, on the same slot.
fn conv_step<E: Engine<Elem = Z64, Public = Z64>>(
    e: &mut E,
    l: Conv2d,
    input: Image,
    x: &[Vec<Z64>],
) -> Result<Outputs, E::Error> {
    let z = Z64::ZERO;
    let mut y = vec![z; l.output(input).len()];
    let mut s = vec![z; l.forward_scratch(input).max(l.backward_scratch(input))];
    let p = Params { w: &x[1], b: &x[2] };
    l.forward_keeping(e, 0, &x[0], p, input, &mut y, &mut s)?;
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
    l.backward_kept(e, 0, &x[0], &x[1], input, g, &mut s, false)?;
    Ok(vec![y, dx, dw, db])
}

/// A convolution's two raw backward products through the training path, after its
/// forward product: exact ring arithmetic on every engine.
struct ConvProducts(Conv2d, Image, bool);

impl Case for ConvProducts {
    fn run<E: Engine<Elem = Z64, Public = Z64>>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Outputs, E::Error> {
        let (conv, input, with_dx) = (self.0, self.1, self.2);
        let s = conv.shape(input);
        let (o, patch, rows) = (s.out_channels, s.patch(), s.rows());
        let b = Bound(conv, input);
        let mut cols = vec![Z64::ZERO; patch * rows];
        let mut wt = vec![Z64::ZERO; patch * o];
        let mut y = vec![Z64::ZERO; o * rows];
        e.conv_forward_keeping(2, &b, &x[0], &x[1], &mut y, &mut cols)?;
        let mut dw = vec![Z64::ZERO; o * patch];
        e.conv_backward_products(
            2, &b, &x[0], &x[1], &x[2], &mut dw, with_dx, &mut cols, &mut wt,
        )?;
        let dcols = if with_dx { cols } else { Vec::new() };
        Ok(vec![y, dw, dcols])
    }
}

#[test]
fn convolution_products_on_reused_masks_equal_plain_exactly() {
    for (t, (conv, input)) in SHAPES.into_iter().enumerate() {
        for with_dx in [true, false] {
            let inputs = product_inputs(conv, input, 100 + t as u64);
            let case = ConvProducts(conv, input, with_dx);
            let plain = on_plain(&case, &inputs);
            let mpc = on_mpc(&config(101 + t as u8), &case, &inputs);
            assert_eq!(plain, mpc, "{conv:?} on {input:?}, dx {with_dx}");
        }
    }
}

/// A whole convolution through the training path on shares: within the truncation bounds
/// of the layer through [`Conv2d::forward`] and [`Conv2d::backward`] on `Plain`.
#[test]
fn a_convolution_trained_on_reused_masks_is_within_its_truncation_bounds() {
    struct Step(Conv2d, Image);
    impl Case for Step {
        fn run<E: Engine<Elem = Z64, Public = Z64>>(
            &self,
            e: &mut E,
            x: &[Vec<Z64>],
        ) -> Result<Outputs, E::Error> {
            conv_step(e, self.0, self.1, x)
        }
    }
    for (t, (conv, input)) in SHAPES.into_iter().enumerate() {
        let mut rng = ChaCha20Rng::seed_from_u64(110 + t as u64);
        let x = vec![
            enc(&uniform(&mut rng, input.len(), -1.0, 1.0)),
            enc(&uniform(&mut rng, conv.weights(), -0.5, 0.5)),
            enc(&uniform(&mut rng, conv.out_channels, -0.5, 0.5)),
            enc(&uniform(&mut rng, conv.output(input).len(), -1.0, 1.0)),
        ];
        let plain = on_plain(&Step(conv, input), &x);
        let mpc = on_mpc(&config(111 + t as u8), &Step(conv, input), &x);
        // y, dx and dw: one truncation each (dx's after col2im); db exact.
        let tol = [1, 1, 1, 0];
        for (i, (a, b)) in plain.iter().zip(&mpc).enumerate() {
            super::tests::assert_within(a, b, |_| tol[i], "convolution on reused masks");
        }
    }
}

/// With a fixed dealer seed, two steps of a convolution on shares, checked as the dense
/// layer's by [`check_views`]: the forward's masks serve the image and the kernel in the
/// forward opening and again in both backward products; the backward's `D` serves
/// `dY^T`; the truncated values are `Plain`'s exact products (the input gradient's after
/// col2im).
#[test]
fn no_mask_serves_two_secrets_over_two_steps_of_a_convolution() {
    const L: Conv2d = Conv2d::new(2, 3, 3, 2, 1);
    const INPUT: Image = Image::new(2, 2, 7, 6);
    let s = L.shape(INPUT);
    let (o, patch, rows) = (s.out_channels, s.patch(), s.rows());
    let out = L.output(INPUT);
    let mut rng = ChaCha20Rng::seed_from_u64(120);
    let steps: Vec<Vec<Vec<Z64>>> = (0..2)
        .map(|_| {
            vec![
                enc(&uniform(&mut rng, INPUT.len(), -1.0, 1.0)),
                enc(&uniform(&mut rng, L.weights(), -0.5, 0.5)),
                enc(&uniform(&mut rng, o, -0.5, 0.5)),
                enc(&uniform(&mut rng, out.len(), -1.0, 1.0)),
            ]
        })
        .collect();
    let mut p = Plain::with_frac_bits(super::tests::F).unwrap();
    let bound = Bound(L, INPUT);
    let views: Vec<StepView> = steps
        .iter()
        .map(|x| {
            let (img, w, dy) = (&x[0], &x[1], &x[3]);
            let mut cols = vec![Z64::ZERO; patch * rows];
            let mut y_raw = vec![Z64::ZERO; o * rows];
            p.conv_forward_product(&bound, img, w, &mut y_raw, &mut cols)
                .unwrap();
            let pl = out.plane();
            let mut dyt = vec![Z64::ZERO; o * rows];
            for n in 0..INPUT.batch {
                for c in 0..o {
                    dyt[c * rows + n * pl..c * rows + (n + 1) * pl]
                        .copy_from_slice(&dy[(n * o + c) * pl..(n * o + c + 1) * pl]);
                }
            }
            let mut dw_raw = vec![Z64::ZERO; o * patch];
            let mut wt = vec![Z64::ZERO; patch * o];
            ringnn_core::engine::generic::conv_backward_products(
                &mut p,
                &bound,
                img,
                w,
                &dyt,
                &mut dw_raw,
                true,
                &mut cols,
                &mut wt,
            )
            .unwrap();
            let iw = [img.clone(), w.clone()].concat();
            StepView {
                expected: vec![
                    (Tag::Conv, iw.clone()),
                    (Tag::Trunc, y_raw),
                    (Tag::ConvBackward, dyt),
                    (Tag::Trunc, dw_raw),
                    (Tag::Trunc, super::conv_tests::col2im(L, INPUT, &cols)),
                ],
                reused: vec![(0, iw)],
            }
        })
        .collect();
    let step = |e: &mut Keeper, x: &[Vec<Z64>]| {
        conv_step(e, L, INPUT, x).unwrap();
    };
    let masks = check_views(&steps, step, &views, 121);
    assert!(masks[0].iter().zip(&masks[5]).all(|(a, b)| a != b));
}

/// A backward pass given other operands than its slot's forward product is a bug in the
/// caller: the engine stops rather than compute with the forward's openings.
#[test]
#[should_panic(expected = "kept a forward product of other operands")]
fn a_backward_pass_given_other_operands_panics() {
    struct Other;
    impl Case for Other {
        fn run<E: Engine<Elem = Z64, Public = Z64>>(
            &self,
            e: &mut E,
            x: &[Vec<Z64>],
        ) -> Result<Outputs, E::Error> {
            let d = MatDims { m: 2, k: 3, n: 2 };
            let mut y = vec![Z64::ZERO; 4];
            e.dense_forward_product(1, &x[0], &x[1], d, &mut y)?;
            let (mut dw, mut s) = (vec![Z64::ZERO; 6], vec![Z64::ZERO; 6]);
            // x[3] is another input of X's shape.
            e.dense_backward_products(1, &x[3], &x[1], &x[2], d, &mut dw, None, &mut s)?;
            Ok(vec![dw])
        }
    }
    let mut x = inputs(MatDims { m: 2, k: 3, n: 2 }, 130);
    x.push(enc(&[0.5; 6]));
    // Plain keeps nothing and computes with what it is given; the two-party engine panics.
    on_plain(&Other, &x);
    on_mpc(&config(131), &Other, &x);
}
