//! Networks by name, as sequences of kernel layers, and their forward and backward passes
//! over any engine.
//!
//! A network is a list of [`Node`]s; a residual [`Op::Block`] holds two sub-lists (the main
//! path and the shortcut) and computes `relu(main(x) + shortcut(x))`. Shapes are inferred
//! once per sample; parameters live in one flat vector (each node owns a range), so the
//! optimiser, checkpoints and a two-party engine see one tensor.

use ringnn_core::layers::{
    batchnorm, AvgPool2d, BatchNorm, Conv2d, Dense, GlobalAvgPool, Grads, Image, MaxPool2d, Params,
};
use ringnn_core::Engine;
use std::ops::Range;

mod relu;
use relu::{relu_backward, relu_forward};

/// One operation.
#[derive(Clone, Debug)]
pub enum Op {
    /// Fully connected.
    Dense(Dense),
    /// 2-D convolution.
    Conv(Conv2d),
    /// ReLU.
    Relu,
    /// Max pooling.
    MaxPool(MaxPool2d),
    /// Average pooling.
    AvgPool(AvgPool2d),
    /// Global average pooling (NCHW -> NC).
    GlobalAvgPool,
    /// Batch normalisation.
    BatchNorm(BatchNorm),
    /// `relu(main(x) + shortcut(x))`; an empty shortcut is the identity.
    Block {
        /// The main path.
        main: Vec<Node>,
        /// The shortcut (empty: identity).
        shortcut: Vec<Node>,
    },
}

/// An operation with its shapes (per sample) and its parameter ranges.
#[derive(Clone, Debug)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Input shape with `batch = 1`.
    pub input: Image,
    /// Output shape with `batch = 1`.
    pub output: Image,
    /// Trained parameters (weights then bias, or gamma then beta).
    pub params: Range<usize>,
    /// Untrained state (batch norm's running mean then variance).
    pub buffers: Range<usize>,
}

/// A network.
#[derive(Clone, Debug)]
pub struct Net {
    /// Its name.
    pub name: String,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Input shape per sample.
    pub input: Image,
    /// Number of classes (outputs).
    pub classes: usize,
    /// Total trained parameters.
    pub n_params: usize,
    /// Total buffer elements.
    pub n_buffers: usize,
}

/// The models `ringnn train` knows.
pub const MODELS: &[&str] = &[
    "mlp", "lenet", "resnet20", "resnet32", "resnet18", "seq2seq",
];

fn img(c: usize, h: usize, w: usize) -> Image {
    Image {
        batch: 1,
        channels: c,
        height: h,
        width: w,
    }
}

/// Builds nodes with shape inference and parameter allocation.
struct Builder {
    shape: Image,
    params: usize,
    buffers: usize,
}

impl Builder {
    fn node(&mut self, op: Op) -> Node {
        let input = self.shape;
        let (output, np, nb) = match &op {
            Op::Dense(d) => (img(d.outputs, 1, 1), d.weights() + d.outputs, 0),
            Op::Conv(c) => (c.output(input), c.weights() + c.out_channels, 0),
            Op::Relu => (input, 0, 0),
            Op::MaxPool(p) => (p.output(input), 0, 0),
            Op::AvgPool(p) => (p.output(input), 0, 0),
            Op::GlobalAvgPool => (img(input.channels, 1, 1), 0, 0),
            Op::BatchNorm(b) => (input, 2 * b.channels, 2 * b.channels),
            Op::Block { .. } => unreachable!("blocks are built by `block`"),
        };
        let node = Node {
            op,
            input,
            output,
            params: self.params..self.params + np,
            buffers: self.buffers..self.buffers + nb,
        };
        self.params += np;
        self.buffers += nb;
        self.shape = output;
        node
    }

    fn dense(&mut self, outputs: usize) -> Node {
        let inputs = self.shape.channels * self.shape.height * self.shape.width;
        self.shape = img(inputs, 1, 1);
        self.node(Op::Dense(Dense::new(inputs, outputs)))
    }

    fn conv(&mut self, out: usize, k: usize, stride: usize, pad: usize) -> Node {
        self.node(Op::Conv(Conv2d {
            in_channels: self.shape.channels,
            out_channels: out,
            kernel: k,
            stride,
            padding: pad,
        }))
    }

    fn bn(&mut self) -> Node {
        self.node(Op::BatchNorm(BatchNorm {
            channels: self.shape.channels,
            eps: 1e-5,
            momentum: 0.1,
        }))
    }

    /// He et al.'s basic block: conv3x3-bn-relu-conv3x3-bn, plus a 1x1 conv-bn shortcut
    /// when the shape changes.
    fn block(&mut self, out: usize, stride: usize) -> Node {
        let input = self.shape;
        let main = vec![
            self.conv(out, 3, stride, 1),
            self.bn(),
            self.node(Op::Relu),
            self.conv(out, 3, 1, 1),
            self.bn(),
        ];
        let output = self.shape;
        let shortcut = if stride != 1 || input.channels != out {
            self.shape = input;
            let s = vec![self.conv(out, 1, stride, 0), self.bn()];
            self.shape = output;
            s
        } else {
            Vec::new()
        };
        Node {
            op: Op::Block { main, shortcut },
            input,
            output,
            params: 0..0,
            buffers: 0..0,
        }
    }
}

/// The network called `name` for inputs of `input` shape and `classes` outputs.
///
/// # Errors
/// An unknown name (listing the valid ones) or a model that does not fit the input.
pub fn build(name: &str, input: Image, classes: usize) -> Result<Net, String> {
    let mut b = Builder {
        shape: input,
        params: 0,
        buffers: 0,
    };
    let nodes = match name {
        "mlp" => vec![
            b.dense(128),
            b.node(Op::Relu),
            b.dense(128),
            b.node(Op::Relu),
            b.dense(classes),
        ],
        "lenet" => {
            if input.height < 16 || input.width < 16 {
                return Err(format!(
                    "lenet needs images of at least 16x16, got {}x{}",
                    input.height, input.width
                ));
            }
            // Max pooling before ReLU: relu(max(x)) = max(relu(x)) exactly (both are
            // monotone), so this is the network the issue draws (conv, ReLU, pool), with
            // the ReLU's comparisons on a quarter of the elements: on two servers the
            // most expensive protocol. Gradients agree up to the subgradient picked at an
            // exact tie at 0.
            let mut v = vec![
                b.conv(16, 5, 1, 0),
                b.node(Op::MaxPool(MaxPool2d {
                    kernel: 2,
                    stride: 2,
                })),
                b.node(Op::Relu),
                b.conv(16, 5, 1, 0),
                b.node(Op::MaxPool(MaxPool2d {
                    kernel: 2,
                    stride: 2,
                })),
                b.node(Op::Relu),
            ];
            v.push(b.dense(100));
            v.push(b.node(Op::Relu));
            v.push(b.dense(classes));
            v
        }
        "resnet20" | "resnet32" => {
            let n = if name == "resnet20" { 3 } else { 5 };
            let mut v = vec![b.conv(16, 3, 1, 1), b.bn(), b.node(Op::Relu)];
            for (stage, width) in [16usize, 32, 64].into_iter().enumerate() {
                for i in 0..n {
                    let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                    v.push(b.block(width, stride));
                }
            }
            v.push(b.node(Op::GlobalAvgPool));
            v.push(b.dense(classes));
            v
        }
        "resnet18" => {
            let mut v = vec![b.conv(64, 3, 1, 1), b.bn(), b.node(Op::Relu)];
            for (stage, width) in [64usize, 128, 256, 512].into_iter().enumerate() {
                for i in 0..2 {
                    let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                    v.push(b.block(width, stride));
                }
            }
            v.push(b.node(Op::GlobalAvgPool));
            v.push(b.dense(classes));
            v
        }
        "seq2seq" => return Err("seq2seq is a sequence model: train it with --data tatoeba".into()),
        _ => {
            return Err(format!(
                "unknown model '{name}'; valid: {}",
                MODELS.join(", ")
            ))
        }
    };
    Ok(Net {
        name: name.to_string(),
        nodes,
        input,
        classes,
        n_params: b.params,
        n_buffers: b.buffers,
    })
}

fn visit<'a>(nodes: &'a [Node], f: &mut impl FnMut(&'a Node)) {
    for n in nodes {
        f(n);
        if let Op::Block { main, shortcut } = &n.op {
            visit(main, f);
            visit(shortcut, f);
        }
    }
}

impl Net {
    /// Initial parameters and buffers: He-normal weights (`sqrt(2 / fan_in)`), zero biases,
    /// batch norm's gamma 1, beta 0, running mean 0 and variance 1; seeded.
    pub fn init(&self, seed: u64) -> (Vec<f64>, Vec<f64>) {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Normal};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut p = vec![0.0; self.n_params];
        let mut bufs = vec![0.0; self.n_buffers];
        visit(&self.nodes, &mut |n| match &n.op {
            Op::Dense(d) => {
                let std = (2.0 / d.inputs as f64).sqrt();
                let normal = Normal::new(0.0, std).expect("positive deviation");
                for v in &mut p[n.params.start..n.params.start + d.weights()] {
                    *v = normal.sample(&mut rng);
                }
            }
            Op::Conv(c) => {
                let std = (2.0 / c.patch() as f64).sqrt();
                let normal = Normal::new(0.0, std).expect("positive deviation");
                for v in &mut p[n.params.start..n.params.start + c.weights()] {
                    *v = normal.sample(&mut rng);
                }
            }
            Op::BatchNorm(b) => {
                p[n.params.start..n.params.start + b.channels].fill(1.0);
                bufs[n.buffers.start + b.channels..n.buffers.end].fill(1.0);
            }
            _ => {}
        });
        (p, bufs)
    }

    /// Whether each sample's forward pass is independent of the rest of the batch (no
    /// batch statistics), so that a batch can be split into parts that run apart and
    /// whose unscaled weight gradients sum to the batch's ([`backward_unscaled`]).
    pub fn splits_exactly(&self) -> bool {
        let mut batch_stats = false;
        visit(&self.nodes, &mut |n| {
            batch_stats |= matches!(n.op, Op::BatchNorm(_));
        });
        !batch_stats && self.n_buffers == 0
    }

    /// Elements one sample occupies in a training step: every node's output (kept for
    /// backward) plus each convolution's unfolded input.
    pub fn elems_per_sample(&self) -> usize {
        let mut total = 0;
        visit(&self.nodes, &mut |n| {
            total += n.output.len();
            if let Op::Conv(c) = &n.op {
                total += c.patch() * n.output.height * n.output.width;
            }
        });
        total
    }

    /// Multiply-accumulates of one forward pass per sample (matrix products only).
    pub fn macs(&self) -> u64 {
        let mut total = 0u64;
        visit(&self.nodes, &mut |n| match &n.op {
            Op::Dense(d) => total += d.weights() as u64,
            Op::Conv(c) => total += (c.weights() * n.output.height * n.output.width) as u64,
            _ => {}
        });
        total
    }
}

/// What one node's forward pass keeps for its backward pass.
#[derive(Clone, Debug, Default)]
pub struct Trace<T> {
    input: Vec<T>,
    cache: Vec<T>,
    main: Vec<Trace<T>>,
    shortcut: Vec<Trace<T>>,
}

fn batched(s: Image, batch: usize) -> Image {
    Image { batch, ..s }
}

fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// Forward through `nodes`. With `traces`, training mode (batch statistics, running
/// statistics updated, inputs kept for backward); without, evaluation mode.
///
/// # Errors
/// What the engine reports.
#[allow(clippy::too_many_arguments)]
pub fn forward<E: Engine>(
    e: &mut E,
    nodes: &[Node],
    mut x: Vec<E::Elem>,
    batch: usize,
    params: &[E::Elem],
    buffers: &mut [E::Elem],
    mut traces: Option<&mut Vec<Trace<E::Elem>>>,
    scratch: &mut Vec<E::Elem>,
) -> Result<Vec<E::Elem>, E::Error> {
    if let Some(t) = traces.as_deref_mut() {
        t.clear();
    }
    for n in nodes {
        let (inp, out) = (batched(n.input, batch), batched(n.output, batch));
        let p = &params[n.params.clone()];
        let mut y = vec![E::Elem::default(); out.len()];
        let mut trace = Trace::default();
        let train = traces.is_some();
        match &n.op {
            Op::Dense(d) => {
                let (w, b) = p.split_at(d.weights());
                if train {
                    // The slot is the layer's parameter offset: unique in the network.
                    d.forward_keeping(e, n.params.start, &x, w, b, batch, &mut y)?;
                } else {
                    d.forward(e, &x, w, b, batch, &mut y)?;
                }
            }
            Op::Conv(c) => {
                let (w, b) = p.split_at(c.weights());
                let s = grow(scratch, c.forward_scratch(inp));
                if train {
                    c.forward_keeping(e, n.params.start, &x, Params { w, b }, inp, &mut y, s)?;
                } else {
                    c.forward(e, &x, Params { w, b }, inp, &mut y, s)?;
                }
            }
            Op::Relu => relu_forward(e, &x, &mut y, train, &mut trace.cache, scratch)?,
            Op::MaxPool(mp) => {
                let s = grow(scratch, mp.forward_scratch(inp));
                if train {
                    trace.cache = vec![E::Elem::default(); mp.selection_len(inp)];
                    mp.forward(e, &x, inp, &mut y, Some(&mut trace.cache), s)?;
                } else {
                    mp.forward(e, &x, inp, &mut y, None, s)?;
                }
            }
            Op::AvgPool(ap) => {
                let s = grow(scratch, ap.forward_scratch(inp));
                ap.forward(e, &x, inp, &mut y, s)?;
            }
            Op::GlobalAvgPool => {
                let s = grow(scratch, GlobalAvgPool::forward_scratch(inp));
                GlobalAvgPool::forward(e, &x, inp, &mut y, s)?;
            }
            Op::BatchNorm(bn) => {
                let (gamma, beta) = p.split_at(bn.channels);
                let (rm, rv) = buffers[n.buffers.clone()].split_at_mut(bn.channels);
                if train {
                    trace.cache = vec![E::Elem::default(); bn.cache_len(inp)];
                    let s = grow(scratch, bn.train_scratch(inp));
                    bn.forward_train(
                        e,
                        &x,
                        inp,
                        batchnorm::PerChannel {
                            gamma,
                            beta,
                            running_mean: rm,
                            running_var: rv,
                        },
                        batchnorm::TrainOut {
                            y: &mut y,
                            cache: &mut trace.cache,
                        },
                        s,
                    )?;
                } else {
                    let s = grow(scratch, bn.eval_scratch(inp));
                    bn.forward_eval(
                        e,
                        &x,
                        inp,
                        batchnorm::PerChannel {
                            gamma,
                            beta,
                            running_mean: rm,
                            running_var: rv,
                        },
                        &mut y,
                        s,
                    )?;
                }
            }
            Op::Block { main, shortcut } => {
                let mut tm = Vec::new();
                let mut ts = Vec::new();
                let m = forward(
                    e,
                    main,
                    x.clone(),
                    batch,
                    params,
                    buffers,
                    train.then_some(&mut tm),
                    scratch,
                )?;
                let mut sum = if shortcut.is_empty() {
                    x.clone()
                } else {
                    forward(
                        e,
                        shortcut,
                        x.clone(),
                        batch,
                        params,
                        buffers,
                        train.then_some(&mut ts),
                        scratch,
                    )?
                };
                e.add_assign(&mut sum, &m)?;
                relu_forward(e, &sum, &mut y, train, &mut trace.cache, scratch)?;
                trace.main = tm;
                trace.shortcut = ts;
                // For a block, `input` keeps the pre-activation sum; the block input is
                // not needed by its own backward (the sub-traces keep theirs).
                x = sum;
            }
        }
        if let Some(t) = traces.as_deref_mut() {
            trace.input = x;
            t.push(trace);
        }
        x = y;
    }
    Ok(x)
}

/// Backward through `nodes` from `dy`, writing parameter gradients into `grads` (same
/// layout as the parameters). Returns the input gradient when `need_dx`.
///
/// # Errors
/// What the engine reports.
#[allow(clippy::too_many_arguments)]
pub fn backward<E: Engine>(
    e: &mut E,
    nodes: &[Node],
    traces: &[Trace<E::Elem>],
    dy: Vec<E::Elem>,
    batch: usize,
    params: &[E::Elem],
    grads: &mut [E::Elem],
    need_dx: bool,
    scratch: &mut Vec<E::Elem>,
) -> Result<Option<Vec<E::Elem>>, E::Error> {
    backward_with(
        e, nodes, traces, dy, batch, params, grads, need_dx, scratch, false,
    )
}

/// [`backward`] with the weight gradients of dense and convolution layers left unscaled
/// (twice the fractional bits; where: [`weight_grad_ranges`]). Summed over parts of a
/// batch and then rescaled, they are bit for bit the whole batch's gradients, provided
/// the network has no batch statistics ([`Net::splits_exactly`]).
///
/// # Errors
/// What the engine reports.
#[allow(clippy::too_many_arguments)]
pub fn backward_unscaled<E: Engine>(
    e: &mut E,
    nodes: &[Node],
    traces: &[Trace<E::Elem>],
    dy: Vec<E::Elem>,
    batch: usize,
    params: &[E::Elem],
    grads: &mut [E::Elem],
    scratch: &mut Vec<E::Elem>,
) -> Result<(), E::Error> {
    backward_with(
        e, nodes, traces, dy, batch, params, grads, false, scratch, true,
    )?;
    Ok(())
}

/// Where in the flat parameter vector the weights of dense and convolution layers are
/// (the gradients [`backward_unscaled`] leaves unscaled), ascending.
pub fn weight_grad_ranges(nodes: &[Node]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    visit(nodes, &mut |n| match &n.op {
        Op::Dense(d) => ranges.push(n.params.start..n.params.start + d.weights()),
        Op::Conv(c) => ranges.push(n.params.start..n.params.start + c.weights()),
        _ => {}
    });
    ranges.sort_by_key(|r| r.start);
    ranges
}

#[allow(clippy::too_many_arguments)]
fn backward_with<E: Engine>(
    e: &mut E,
    nodes: &[Node],
    traces: &[Trace<E::Elem>],
    mut dy: Vec<E::Elem>,
    batch: usize,
    params: &[E::Elem],
    grads: &mut [E::Elem],
    need_dx: bool,
    scratch: &mut Vec<E::Elem>,
    unscaled: bool,
) -> Result<Option<Vec<E::Elem>>, E::Error> {
    for (i, (n, t)) in nodes.iter().zip(traces).enumerate().rev() {
        let inp = batched(n.input, batch);
        let want_dx = need_dx || i > 0;
        let mut dx = vec![E::Elem::default(); if want_dx { inp.len() } else { 0 }];
        let p = &params[n.params.clone()];
        match &n.op {
            Op::Dense(d) => {
                let (w, _) = p.split_at(d.weights());
                let (dw, db) = grads[n.params.clone()].split_at_mut(d.weights());
                let s = grow(scratch, d.backward_scratch(batch));
                d.backward_kept(
                    e,
                    n.params.start,
                    &t.input,
                    w,
                    batch,
                    Grads {
                        dy: &dy,
                        dx: want_dx.then_some(&mut dx[..]),
                        dw,
                        db,
                    },
                    s,
                    unscaled,
                )?;
            }
            Op::Conv(c) => {
                let (w, _) = p.split_at(c.weights());
                let (dw, db) = grads[n.params.clone()].split_at_mut(c.weights());
                let s = grow(scratch, c.backward_scratch(inp));
                c.backward_kept(
                    e,
                    n.params.start,
                    &t.input,
                    w,
                    inp,
                    Grads {
                        dy: &dy,
                        dx: want_dx.then_some(&mut dx[..]),
                        dw,
                        db,
                    },
                    s,
                    unscaled,
                )?;
            }
            Op::Relu => {
                if want_dx {
                    relu_backward(e, t, &dy, &mut dx, scratch)?;
                }
            }
            Op::MaxPool(mp) => {
                if want_dx {
                    let s = grow(scratch, mp.backward_scratch(inp));
                    mp.backward(e, &t.cache, &dy, inp, &mut dx, s)?;
                }
            }
            Op::AvgPool(ap) => {
                if want_dx {
                    let s = grow(scratch, ap.backward_scratch(inp));
                    ap.backward(e, &dy, inp, &mut dx, s)?;
                }
            }
            Op::GlobalAvgPool => {
                if want_dx {
                    let s = grow(scratch, GlobalAvgPool::backward_scratch(inp));
                    GlobalAvgPool::backward(e, &dy, inp, &mut dx, s)?;
                }
            }
            Op::BatchNorm(bn) => {
                let (gamma, _) = p.split_at(bn.channels);
                let (dg, dbeta) = grads[n.params.clone()].split_at_mut(bn.channels);
                let s = grow(scratch, bn.backward_scratch(inp));
                let mut d = vec![E::Elem::default(); inp.len()];
                bn.backward(
                    e,
                    inp,
                    gamma,
                    &t.cache,
                    Grads {
                        dy: &dy,
                        dx: Some(&mut d),
                        dw: dg,
                        db: dbeta,
                    },
                    s,
                )?;
                dx = d;
            }
            Op::Block { main, shortcut } => {
                let mut ds = vec![E::Elem::default(); dy.len()];
                relu_backward(e, t, &dy, &mut ds, scratch)?;
                let dm = backward_with(
                    e,
                    main,
                    &t.main,
                    ds.clone(),
                    batch,
                    params,
                    grads,
                    true,
                    scratch,
                    unscaled,
                )?
                .expect("asked for dx");
                let mut d = if shortcut.is_empty() {
                    ds
                } else {
                    backward_with(
                        e,
                        shortcut,
                        &t.shortcut,
                        ds,
                        batch,
                        params,
                        grads,
                        true,
                        scratch,
                        unscaled,
                    )?
                    .expect("asked for dx")
                };
                e.add_assign(&mut d, &dm)?;
                dx = d;
            }
        }
        dy = dx;
    }
    Ok(need_dx.then_some(dy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use ringnn_core::{Plain, Z64};

    #[test]
    fn lenet_pooling_before_relu_computes_the_drawn_network() {
        let input = img(1, 28, 28);
        let net = build("lenet", input, 10).unwrap();
        // The order the issue draws: conv, ReLU, pool.
        let mut b = Builder {
            shape: input,
            params: 0,
            buffers: 0,
        };
        let pool = || {
            Op::MaxPool(MaxPool2d {
                kernel: 2,
                stride: 2,
            })
        };
        let mut drawn = vec![
            b.conv(16, 5, 1, 0),
            b.node(Op::Relu),
            b.node(pool()),
            b.conv(16, 5, 1, 0),
            b.node(Op::Relu),
            b.node(pool()),
        ];
        drawn.push(b.dense(100));
        drawn.push(b.node(Op::Relu));
        drawn.push(b.dense(10));
        assert_eq!(b.params, net.n_params);
        let mut e = Plain::with_frac_bits(13).unwrap();
        let (p, _) = net.init(1);
        let params: Vec<Z64> = p.iter().map(|&v| e.public(v)).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let batch = 3;
        let x: Vec<Z64> = (0..batch * 784)
            .map(|_| e.public(rng.random_range(-1.0..1.0)))
            .collect();
        let g: Vec<Z64> = (0..batch * 10)
            .map(|_| e.public(rng.random_range(-1.0..1.0)))
            .collect();
        let mut run = |nodes: &[Node]| {
            let (mut traces, mut scratch) = (Vec::new(), Vec::new());
            let y = forward(
                &mut e,
                nodes,
                x.clone(),
                batch,
                &params,
                &mut [],
                Some(&mut traces),
                &mut scratch,
            )
            .unwrap();
            let mut grads = vec![Z64::ZERO; params.len()];
            backward(
                &mut e,
                nodes,
                &traces,
                g.clone(),
                batch,
                &params,
                &mut grads,
                false,
                &mut scratch,
            )
            .unwrap();
            (y, grads)
        };
        let (y1, g1) = run(&net.nodes);
        let (y2, g2) = run(&drawn);
        assert_eq!(y1, y2, "outputs differ");
        assert_eq!(g1, g2, "gradients differ");
    }
}
