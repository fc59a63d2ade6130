//! Sequence-to-sequence translation (English to French, Tatoeba): a GRU encoder-decoder
//! trained in fixed point (`Plain`) or floating point (`Float<f32>`), the recurrent
//! experiment of the paper (section 3.2, Table 3: perplexity with hard tanh and 4- to
//! 7-part piecewise-linear softmax).
//!
//! # Model
//! ```text
//! source ids (reversed, one-hot) -> embedding (V_s x D) -> GRU encoder (D -> H)
//!                                                            | final state
//! BOS + target ids (one-hot)     -> embedding (V_t x D) -> GRU decoder (D -> H)
//!                                                            | every state
//!                                  dense H -> V_t -> softmax cross-entropy (masked)
//! ```
//! As in the TensorFlow tutorial the paper started from, the source is fed reversed, so the
//! first source word is the last one the encoder reads. Batches are time-major
//! (`[time x batch x ...]`) and padded to the longest sentence of the batch. Padding is
//! handled by masks, never by branching on data: an encoder step updates a row's state
//! only where the row still has a token (`h <- h + m (GRU(x, h) - h)`, `m` in {0, 1} at
//! element scale, exact on `Plain`), so the final state of every row is the state after
//! its own last token; the decoder's padded positions get a zero loss mask, so they
//! contribute nothing (later positions never influence earlier ones). The gate
//! activations are the configured sigmoid and tanh approximations ([`GruCell`]); the
//! output softmax uses the configured e^x approximation ([`SeqXent`]).
//!
//! Tokens enter as one-hot rows and embeddings are matrix products ([`Embedding`]), so
//! everything the model computes is what a two-party engine could compute on shared
//! tokens; only reporting (loss, perplexity, greedy decoding) reveals values.
//!
//! # Training
//! Backpropagation through time over both GRUs with per-step caches, then one SGD step
//! (momentum, weight decay) on every parameter. Gradients are summed over the target
//! tokens of a batch and divided by the number of sentence pairs in it (a shift when the
//! batch is a power of two), so the learning rate is per sentence, not per token.
//!
//! # Reporting
//! Each epoch: the mean training cross-entropy per target token (from the revealed
//! probability of each target), the test perplexity `exp(mean cross-entropy per target
//! token)` with teacher forcing (EOS counted, padding not), computed from revealed
//! probabilities of the model's own (approximated) softmax, the test token accuracy
//! (argmax of those probabilities equals the reference token), and greedy translations of
//! a few test sentences (argmax of the revealed logits, step by step, until EOS).

use super::checkpoint::{self, Header, State};
use super::config::{EngineKind, TrainConfig};
use super::engine::HostEngine;
use super::run::{
    argmax, elems, engine_err, epoch_bar, epoch_order, resume_from, training_softmax, TrainError,
};
use crate::data::text::{self, Corpus, Pair, TextConfig};
use crate::{data, gemm};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ringnn_core::approx::{SigmoidApprox, TanhApprox};
use ringnn_core::layers::{rnn, sequence_loss, Dense, Embedding, GruCell, SeqXent};
use ringnn_core::optim::Sgd;
use ringnn_core::softmax::{self, Softmax};
use ringnn_core::{Engine, Float, Plain};
use serde::Serialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

/// Sizes of the model and of the text preparation.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Seq2SeqDims {
    /// Embedding dimension `D` (source and target).
    pub embed: usize,
    /// Hidden state size `H` (encoder and decoder).
    pub hidden: usize,
    /// Tokenisation, split and vocabulary limits.
    pub text: TextConfig,
}

impl Default for Seq2SeqDims {
    /// `D = 64`, `H = 128`, and the loader's defaults (sentences of up to 10 tokens,
    /// tokens seen at least twice, vocabularies of up to 4,000, 10% held out).
    fn default() -> Self {
        Seq2SeqDims {
            embed: 64,
            hidden: 128,
            text: TextConfig::default(),
        }
    }
}

/// The encoder-decoder. Parameters live in one slice, in the order
/// `[source embedding | encoder GRU | target embedding | decoder GRU | output weights |
/// output bias]`, each in its layer's own layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Seq2Seq {
    /// Source vocabulary size `V_s`.
    pub src_vocab: usize,
    /// Target vocabulary size `V_t`.
    pub tgt_vocab: usize,
    /// Embedding dimension `D`.
    pub embed: usize,
    /// Hidden size `H`.
    pub hidden: usize,
    /// Sigmoid approximation of the GRU gates.
    pub sigmoid: SigmoidApprox,
    /// tanh approximation of the GRU candidates.
    pub tanh: TanhApprox,
}

/// Where each layer's parameters are.
struct Layout {
    src_emb: Range<usize>,
    enc: Range<usize>,
    tgt_emb: Range<usize>,
    dec: Range<usize>,
    out_w: Range<usize>,
    out_b: Range<usize>,
}

/// A batch of sentence pairs as public token ids, time-major (`index = t * batch + row`),
/// padded with [`text::PAD`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SeqBatch {
    /// Sentence pairs.
    pub batch: usize,
    /// Encoder steps: the longest source (at least 1).
    pub src_steps: usize,
    /// Decoder steps: the longest target plus one (for BOS in, EOS out).
    pub tgt_steps: usize,
    /// Source ids, each sentence reversed.
    pub src: Vec<usize>,
    /// Where `src` holds a real token.
    pub src_mask: Vec<bool>,
    /// Decoder inputs: BOS, then the target.
    pub dec_in: Vec<usize>,
    /// Decoder targets: the target, then EOS.
    pub dec_out: Vec<usize>,
    /// Where `dec_out` holds a real token (EOS included).
    pub tgt_mask: Vec<bool>,
}

impl SeqBatch {
    /// The batch of `pairs`.
    pub fn new(pairs: &[&Pair]) -> Self {
        let b = pairs.len();
        let ts = pairs.iter().map(|p| p.src.len()).max().unwrap_or(0).max(1);
        let tt = pairs.iter().map(|p| p.tgt.len()).max().unwrap_or(0) + 1;
        let pad = text::PAD as usize;
        let mut s = SeqBatch {
            batch: b,
            src_steps: ts,
            tgt_steps: tt,
            src: vec![pad; ts * b],
            src_mask: vec![false; ts * b],
            dec_in: vec![pad; tt * b],
            dec_out: vec![pad; tt * b],
            tgt_mask: vec![false; tt * b],
        };
        for (r, p) in pairs.iter().enumerate() {
            let l = p.src.len();
            for t in 0..l {
                s.src[t * b + r] = p.src[l - 1 - t] as usize;
                s.src_mask[t * b + r] = true;
            }
            s.dec_in[r] = text::BOS as usize;
            for (t, &y) in p.tgt.iter().enumerate() {
                s.dec_in[(t + 1) * b + r] = y as usize;
                s.dec_out[t * b + r] = y as usize;
                s.tgt_mask[t * b + r] = true;
            }
            let end = p.tgt.len() * b + r;
            s.dec_out[end] = text::EOS as usize;
            s.tgt_mask[end] = true;
        }
        s
    }

    /// Target tokens that count in the loss (EOS included, padding not).
    pub fn tokens(&self) -> usize {
        self.tgt_mask.iter().filter(|&&m| m).count()
    }
}

/// A batch inside the engine.
struct Inputs<T> {
    /// `src_steps * batch x V_s`.
    src_onehot: Vec<T>,
    /// `src_steps * batch x H`: 1 where the row has a token at that step.
    src_mask: Vec<T>,
    /// `tgt_steps * batch x V_t`.
    dec_onehot: Vec<T>,
    /// `tgt_steps * batch x V_t`.
    targets: Vec<T>,
    /// `tgt_steps * batch`.
    tgt_mask: Vec<T>,
}

/// What backward needs from forward.
struct Trace<T> {
    /// Source embeddings, `src_steps * batch x D`.
    src_x: Vec<T>,
    /// Encoder states `h_0 .. h_{src_steps}`, `batch x H` each.
    enc_h: Vec<T>,
    /// Encoder caches, one per step.
    enc_cache: Vec<T>,
    /// Decoder input embeddings, `tgt_steps * batch x D`.
    dec_x: Vec<T>,
    /// Decoder states `h_0 .. h_{tgt_steps}` (`h_0` is the encoder's final state).
    dec_h: Vec<T>,
    /// Decoder caches, one per step.
    dec_cache: Vec<T>,
}

impl<T> Trace<T> {
    fn new() -> Self {
        Trace {
            src_x: Vec::new(),
            enc_h: Vec::new(),
            enc_cache: Vec::new(),
            dec_x: Vec::new(),
            dec_h: Vec::new(),
            dec_cache: Vec::new(),
        }
    }
}

/// `v[..n]`, growing `v` first when it is shorter.
fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// `mask.len() * width` elements: `width` ones (element scale) where `mask` is set, zeros
/// elsewhere.
fn ones_at<E: Engine + ?Sized>(
    e: &mut E,
    mask: &[bool],
    width: usize,
) -> Result<Vec<E::Elem>, E::Error> {
    let mut out = vec![E::Elem::default(); mask.len() * width];
    let one = e.public(1.0);
    for (i, &m) in mask.iter().enumerate() {
        if m {
            e.add_public(&mut out[i * width..(i + 1) * width], one)?;
        }
    }
    Ok(out)
}

impl Seq2Seq {
    /// The source embedding.
    pub const fn src_embedding(&self) -> Embedding {
        Embedding::new(self.src_vocab, self.embed)
    }

    /// The target embedding.
    pub const fn tgt_embedding(&self) -> Embedding {
        Embedding::new(self.tgt_vocab, self.embed)
    }

    /// The encoder cell.
    pub const fn encoder(&self) -> GruCell {
        GruCell::new(self.embed, self.hidden, self.sigmoid, self.tanh)
    }

    /// The decoder cell.
    pub const fn decoder(&self) -> GruCell {
        GruCell::new(self.embed, self.hidden, self.sigmoid, self.tanh)
    }

    /// The output layer.
    pub const fn output(&self) -> Dense {
        Dense::new(self.hidden, self.tgt_vocab)
    }

    fn layout(&self) -> Layout {
        let mut at = 0;
        let mut next = |n: usize| {
            at += n;
            at - n..at
        };
        Layout {
            src_emb: next(self.src_embedding().weights()),
            enc: next(self.encoder().params()),
            tgt_emb: next(self.tgt_embedding().weights()),
            dec: next(self.decoder().params()),
            out_w: next(self.output().weights()),
            out_b: next(self.tgt_vocab),
        }
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.layout().out_b.end
    }

    /// Initial parameters, seeded: embeddings `N(0, 1)`, GRU weights and biases
    /// `U(-1/sqrt(H), 1/sqrt(H))` (PyTorch's defaults), output weights
    /// `U(-1/sqrt(H), 1/sqrt(H))` and a zero output bias.
    pub fn init(&self, seed: u64) -> Vec<f64> {
        use rand::Rng;
        use rand_distr::{Distribution, Normal};
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let lay = self.layout();
        let mut p = vec![0.0; self.n_params()];
        let normal = Normal::new(0.0, 1.0).expect("positive deviation");
        for r in [lay.src_emb, lay.tgt_emb] {
            for v in &mut p[r] {
                *v = normal.sample(&mut rng);
            }
        }
        let a = 1.0 / (self.hidden as f64).sqrt();
        for r in [lay.enc, lay.dec, lay.out_w] {
            for v in &mut p[r] {
                *v = rng.random_range(-a..a);
            }
        }
        p
    }

    /// The batch's tokens and masks inside the engine.
    fn inputs<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        b: &SeqBatch,
    ) -> Result<Inputs<E::Elem>, E::Error> {
        let z = E::Elem::default();
        let (rs, rt) = (b.src_steps * b.batch, b.tgt_steps * b.batch);
        let mut src_onehot = vec![z; rs * self.src_vocab];
        self.src_embedding().one_hot(e, &b.src, &mut src_onehot)?;
        let mut dec_onehot = vec![z; rt * self.tgt_vocab];
        self.tgt_embedding()
            .one_hot(e, &b.dec_in, &mut dec_onehot)?;
        let mut targets = vec![z; rt * self.tgt_vocab];
        self.tgt_embedding().one_hot(e, &b.dec_out, &mut targets)?;
        Ok(Inputs {
            src_onehot,
            src_mask: ones_at(e, &b.src_mask, self.hidden)?,
            dec_onehot,
            targets,
            tgt_mask: ones_at(e, &b.tgt_mask, 1)?,
        })
    }

    /// Runs the encoder over `steps` steps of `x` (`steps * batch x D`) from a zero
    /// state, with the per-step masks: `hs` gets the states `h_0 .. h_steps`, `caches`
    /// the cells' caches.
    #[allow(clippy::too_many_arguments)]
    fn encode<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        params: &[E::Elem],
        batch: usize,
        steps: usize,
        x: &[E::Elem],
        mask: &[E::Elem],
        hs: &mut Vec<E::Elem>,
        caches: &mut Vec<E::Elem>,
        scratch: &mut Vec<E::Elem>,
    ) -> Result<(), E::Error> {
        let z = E::Elem::default();
        let cell = self.encoder();
        let p = &params[self.layout().enc];
        let (bd, bh, cl) = (
            batch * self.embed,
            batch * self.hidden,
            cell.cache_len(batch),
        );
        hs.clear();
        hs.resize((steps + 1) * bh, z);
        caches.clear();
        caches.resize(steps * cl, z);
        let fs = cell.forward_scratch(batch);
        let s = grow(scratch, fs + 2 * bh);
        let (s, rest) = s.split_at_mut(fs);
        let (hc, upd) = rest.split_at_mut(bh);
        for t in 0..steps {
            let (prev, next) = hs.split_at_mut((t + 1) * bh);
            let h = &prev[t * bh..];
            cell.forward(
                e,
                rnn::GruStep {
                    x: &x[t * bd..(t + 1) * bd],
                    h,
                    params: p,
                },
                batch,
                hc,
                &mut caches[t * cl..(t + 1) * cl],
                s,
            )?;
            // h' = h + m (GRU(x, h) - h)
            e.sub_assign(hc, h)?;
            e.mul(&mask[t * bh..(t + 1) * bh], hc, upd)?;
            e.rescale(upd)?;
            let hn = &mut next[..bh];
            hn.copy_from_slice(h);
            e.add_assign(hn, upd)?;
        }
        Ok(())
    }

    /// Teacher-forced forward pass: the logits (`tgt_steps * batch x V_t`), and the trace
    /// for [`Seq2Seq::backward`].
    fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        params: &[E::Elem],
        b: &SeqBatch,
        inp: &Inputs<E::Elem>,
        tr: &mut Trace<E::Elem>,
        scratch: &mut Vec<E::Elem>,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let z = E::Elem::default();
        let lay = self.layout();
        let (bs, ts, tt, d) = (b.batch, b.src_steps, b.tgt_steps, self.embed);
        let (bd, bh) = (bs * d, bs * self.hidden);
        tr.src_x.clear();
        tr.src_x.resize(ts * bd, z);
        self.src_embedding().forward(
            e,
            &inp.src_onehot,
            &params[lay.src_emb.clone()],
            ts * bs,
            &mut tr.src_x,
        )?;
        self.encode(
            e,
            params,
            bs,
            ts,
            &tr.src_x,
            &inp.src_mask,
            &mut tr.enc_h,
            &mut tr.enc_cache,
            scratch,
        )?;
        tr.dec_x.clear();
        tr.dec_x.resize(tt * bd, z);
        self.tgt_embedding().forward(
            e,
            &inp.dec_onehot,
            &params[lay.tgt_emb.clone()],
            tt * bs,
            &mut tr.dec_x,
        )?;
        let cell = self.decoder();
        let cl = cell.cache_len(bs);
        tr.dec_h.clear();
        tr.dec_h.resize((tt + 1) * bh, z);
        tr.dec_h[..bh].copy_from_slice(&tr.enc_h[ts * bh..]);
        tr.dec_cache.clear();
        tr.dec_cache.resize(tt * cl, z);
        let s = grow(scratch, cell.forward_scratch(bs));
        let p_dec = &params[lay.dec.clone()];
        for t in 0..tt {
            let (prev, next) = tr.dec_h.split_at_mut((t + 1) * bh);
            cell.forward(
                e,
                rnn::GruStep {
                    x: &tr.dec_x[t * bd..(t + 1) * bd],
                    h: &prev[t * bh..],
                    params: p_dec,
                },
                bs,
                &mut next[..bh],
                &mut tr.dec_cache[t * cl..(t + 1) * cl],
                s,
            )?;
        }
        let mut logits = vec![z; tt * bs * self.tgt_vocab];
        self.output().forward(
            e,
            &tr.dec_h[bh..],
            &params[lay.out_w],
            &params[lay.out_b],
            tt * bs,
            &mut logits,
        )?;
        Ok(logits)
    }

    /// Backpropagation through time from `dlogits`: overwrites `grads` (same layout as the
    /// parameters) with the batch-summed gradient.
    #[allow(clippy::too_many_arguments)]
    fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        params: &[E::Elem],
        b: &SeqBatch,
        inp: &Inputs<E::Elem>,
        tr: &Trace<E::Elem>,
        dlogits: &[E::Elem],
        grads: &mut [E::Elem],
        scratch: &mut Vec<E::Elem>,
    ) -> Result<(), E::Error> {
        let z = E::Elem::default();
        let lay = self.layout();
        let (bs, ts, tt, d) = (b.batch, b.src_steps, b.tgt_steps, self.embed);
        let (bd, bh) = (bs * d, bs * self.hidden);
        let rows = tt * bs;
        // The GRUs accumulate their gradients; everything else overwrites.
        grads.fill(z);

        let out = self.output();
        let mut dhd = vec![z; rows * self.hidden];
        {
            let (gw, gb) =
                grads[lay.out_w.start..lay.out_b.end].split_at_mut(lay.out_w.end - lay.out_w.start);
            let s = grow(scratch, out.backward_scratch(rows));
            out.backward(
                e,
                &tr.dec_h[bh..],
                &params[lay.out_w.clone()],
                rows,
                ringnn_core::layers::Grads {
                    dy: dlogits,
                    dx: Some(&mut dhd),
                    dw: gw,
                    db: gb,
                },
                s,
            )?;
        }

        let cell = self.decoder();
        let cl = cell.cache_len(bs);
        let mut dxd = vec![z; rows * d];
        let (mut dh, mut dh_out) = (vec![z; bh], vec![z; bh]);
        {
            let s = grow(scratch, cell.backward_scratch(bs));
            let p = &params[lay.dec.clone()];
            let g = &mut grads[lay.dec.clone()];
            for t in (0..tt).rev() {
                dh_out.copy_from_slice(&dhd[t * bh..(t + 1) * bh]);
                e.add_assign(&mut dh_out, &dh)?;
                cell.backward(
                    e,
                    rnn::GruStep {
                        x: &tr.dec_x[t * bd..(t + 1) * bd],
                        h: &tr.dec_h[t * bh..(t + 1) * bh],
                        params: p,
                    },
                    &tr.dec_cache[t * cl..(t + 1) * cl],
                    bs,
                    rnn::GruGrads {
                        dh_out: &dh_out,
                        dx: Some(&mut dxd[t * bd..(t + 1) * bd]),
                        dh: &mut dh,
                        dparams: g,
                    },
                    s,
                )?;
            }
        }
        let emb = self.tgt_embedding();
        let s = grow(scratch, emb.backward_scratch(rows));
        emb.backward(
            e,
            &inp.dec_onehot,
            &dxd,
            rows,
            &mut grads[lay.tgt_emb.clone()],
            s,
        )?;

        // `dh` is now dL/d(encoder's final state).
        let cell = self.encoder();
        let cl = cell.cache_len(bs);
        let mut dxs = vec![z; ts * bd];
        let (mut dhc, mut dcell) = (vec![z; bh], vec![z; bh]);
        {
            let s = grow(scratch, cell.backward_scratch(bs));
            let p = &params[lay.enc.clone()];
            let g = &mut grads[lay.enc.clone()];
            for t in (0..ts).rev() {
                // h' = (1 - m) h + m GRU(x, h): dGRU = m dh', dh = dh' - m dh' + dGRU/dh.
                e.mul(&inp.src_mask[t * bh..(t + 1) * bh], &dh, &mut dhc)?;
                e.rescale(&mut dhc)?;
                cell.backward(
                    e,
                    rnn::GruStep {
                        x: &tr.src_x[t * bd..(t + 1) * bd],
                        h: &tr.enc_h[t * bh..(t + 1) * bh],
                        params: p,
                    },
                    &tr.enc_cache[t * cl..(t + 1) * cl],
                    bs,
                    rnn::GruGrads {
                        dh_out: &dhc,
                        dx: Some(&mut dxs[t * bd..(t + 1) * bd]),
                        dh: &mut dcell,
                        dparams: g,
                    },
                    s,
                )?;
                e.sub_assign(&mut dh, &dhc)?;
                e.add_assign(&mut dh, &dcell)?;
            }
        }
        let emb = self.src_embedding();
        let s = grow(scratch, emb.backward_scratch(ts * bs));
        emb.backward(
            e,
            &inp.src_onehot,
            &dxs,
            ts * bs,
            &mut grads[lay.src_emb],
            s,
        )
    }

    /// One training step's forward and backward: overwrites `grads` with the batch-summed
    /// gradient of the masked sequence cross-entropy and returns, for every decoder
    /// position (`tgt_steps * batch`, time-major), the softmax probability of its target
    /// token (padding positions included; the caller masks them).
    fn gradient<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        loss: SeqXent,
        params: &[E::Elem],
        b: &SeqBatch,
        grads: &mut [E::Elem],
        scratch: &mut Vec<E::Elem>,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let z = E::Elem::default();
        let inp = self.inputs(e, b)?;
        let mut tr = Trace::new();
        let logits = self.forward(e, params, b, &inp, &mut tr, scratch)?;
        let (tt, bs, v) = (b.tgt_steps, b.batch, self.tgt_vocab);
        let (mut p, mut dl) = (vec![z; logits.len()], vec![z; logits.len()]);
        let s = grow(scratch, loss.scratch(tt, bs, v));
        loss.backward(
            e,
            softmax::Labelled {
                x: &logits,
                y: &inp.targets,
            },
            &inp.tgt_mask,
            softmax::Rows {
                rows: tt * bs,
                cols: v,
            },
            softmax::XentOut {
                p: &mut p,
                grad: &mut dl,
            },
            s,
        )?;
        drop(logits);
        self.backward(e, params, b, &inp, &tr, &dl, grads, scratch)?;
        Ok(b.dec_out
            .iter()
            .enumerate()
            .map(|(i, &y)| p[i * v + y])
            .collect())
    }

    /// Teacher-forced probabilities of the model's softmax (`tgt_steps * batch x V_t`).
    fn probabilities<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        sm: Softmax,
        params: &[E::Elem],
        b: &SeqBatch,
        scratch: &mut Vec<E::Elem>,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let inp = self.inputs(e, b)?;
        let mut tr = Trace::new();
        let logits = self.forward(e, params, b, &inp, &mut tr, scratch)?;
        let rows = b.tgt_steps * b.batch;
        let mut p = vec![E::Elem::default(); logits.len()];
        let s = grow(scratch, softmax::softmax_scratch(sm, rows, self.tgt_vocab));
        softmax::softmax(e, sm, &logits, rows, self.tgt_vocab, &mut p, s)?;
        Ok(p)
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, Serialize)]
pub struct Seq2SeqEpoch {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Mean training cross-entropy per target token (EOS included).
    pub train_loss: f64,
    /// `exp(train_loss)`.
    pub train_perplexity: f64,
    /// Mean test cross-entropy per target token, teacher forcing.
    pub test_loss: f64,
    /// `exp(test_loss)`.
    pub test_perplexity: f64,
    /// Test target tokens whose most probable prediction is right, teacher forcing.
    pub test_token_accuracy: f64,
    /// Seconds spent training in this epoch.
    pub seconds: f64,
}

/// One greedy translation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// The English sentence (its tokens; out-of-vocabulary ones as `<unk>`).
    pub source: String,
    /// The reference French sentence.
    pub reference: String,
    /// The model's greedy output (without EOS).
    pub output: String,
}

/// The result of a run (the JSON line of `ringnn train --model seq2seq --json`): the keys
/// of [`super::TrainResult`] but `test_accuracy`, plus the perplexity, the token accuracy,
/// the model's sizes and a few translations.
#[derive(Clone, Debug, Serialize)]
pub struct Seq2SeqResult {
    /// `"seq2seq"`.
    pub model: String,
    /// `"tatoeba"` (or the name a test gave its corpus).
    pub data: String,
    /// Engine.
    pub engine: String,
    /// Fractional bits (`null` for float).
    pub frac_bits: Option<u32>,
    /// e^x approximation of the output softmax.
    pub exp: String,
    /// tanh approximation of the GRU candidates.
    pub tanh: String,
    /// Sigmoid approximation of the GRU gates.
    pub sigmoid: String,
    /// Gradient mode.
    pub grad: String,
    /// Whether the output softmax subtracted each row's maximum before e^x
    /// (`--subtract-max`, and always with `--exp exact`).
    pub subtract_max: bool,
    /// Epochs trained (in total, including resumed ones).
    pub epochs: usize,
    /// Training sentence pairs per epoch.
    pub train_samples: usize,
    /// Test sentence pairs.
    pub test_samples: usize,
    /// Final mean training cross-entropy per target token.
    pub train_loss: f64,
    /// Final test perplexity (teacher forcing, per target token, EOS included).
    pub perplexity: f64,
    /// Final test token accuracy (teacher forcing).
    pub test_token_accuracy: f64,
    /// Seconds of training (this invocation, evaluation excluded).
    pub train_seconds: f64,
    /// Training sentence pairs per second (this invocation).
    pub samples_per_sec: f64,
    /// Products that wrapped in Z_2^64 (Plain), over the whole run.
    pub overflow_count: u64,
    /// Trained parameters.
    pub parameters: usize,
    /// Source vocabulary size.
    pub src_vocab: usize,
    /// Target vocabulary size.
    pub tgt_vocab: usize,
    /// Embedding dimension.
    pub embed: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Per-epoch figures (this invocation).
    pub history: Vec<Seq2SeqEpoch>,
    /// Greedy translations of a few test sentences by the final model.
    pub translations: Vec<Translation>,
    /// The checkpoint written last, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
}

/// Test sentences translated in the result (and printed each epoch with progress on).
const SHOWN: usize = 5;

/// Trains the encoder-decoder on the Tatoeba English-French pairs from the data directory
/// (`cfg.data_dir`, else `RINGNN_DATA`; `cfg.data` is not consulted). The GRU cells use
/// `cfg.tanh` and `sigmoid`, the output softmax `cfg.exp`; `cfg.train_limit` and
/// `cfg.test_limit` cut the pair lists. Progress goes to stderr.
///
/// # Errors
/// No data directory, bad data, an unencodable value, a checkpoint problem or a bad
/// configuration.
pub fn train_seq2seq(
    cfg: &TrainConfig,
    sigmoid: SigmoidApprox,
    dims: Seq2SeqDims,
) -> Result<Seq2SeqResult, TrainError> {
    check_config(cfg, dims)?;
    let dir = data::data_dir(cfg.data_dir.as_deref()).ok_or_else(|| {
        TrainError::Config(
            "--model seq2seq trains on Tatoeba and needs a data directory holding \
             tatoeba/eng-fra_first5000.txt: pass --data-dir DIR or set RINGNN_DATA"
                .into(),
        )
    })?;
    let corpus = text::load_tatoeba(&dir, &dims.text)?;
    train_on_corpus(cfg, sigmoid, dims, corpus, "tatoeba")
}

/// [`train_seq2seq`] on a corpus already loaded; `data` names it in the result and the
/// checkpoint.
///
/// # Errors
/// As [`train_seq2seq`].
pub fn train_on_corpus(
    cfg: &TrainConfig,
    sigmoid: SigmoidApprox,
    dims: Seq2SeqDims,
    mut corpus: Corpus,
    data: &str,
) -> Result<Seq2SeqResult, TrainError> {
    check_config(cfg, dims)?;
    if let Some(n) = cfg.train_limit {
        corpus.train.truncate(n);
    }
    if let Some(n) = cfg.test_limit {
        corpus.test.truncate(n);
    }
    if corpus.train.is_empty() || corpus.test.is_empty() {
        return Err(TrainError::Config(format!(
            "{}: the training or test set is empty ({} and {} pairs)",
            corpus.name,
            corpus.train.len(),
            corpus.test.len()
        )));
    }
    let model = Seq2Seq {
        src_vocab: corpus.src_vocab.len(),
        tgt_vocab: corpus.tgt_vocab.len(),
        embed: dims.embed,
        hidden: dims.hidden,
        sigmoid,
        tanh: cfg.tanh,
    };
    match cfg.engine {
        EngineKind::Mpc => Err(TrainError::Config(
            "seq2seq does not train on the mpc engine yet; use --engine plain or float".into(),
        )),
        EngineKind::Plain => {
            let e = Plain::new(cfg.frac_bits).with_matmul(gemm::matmul_z64);
            run_engine(e, cfg, &model, &corpus, data)
        }
        EngineKind::Float => {
            let e = Float::<f32>::new().with_matmul(gemm::matmul_f32);
            run_engine(e, cfg, &model, &corpus, data)
        }
    }
}

fn check_config(cfg: &TrainConfig, dims: Seq2SeqDims) -> Result<(), TrainError> {
    if cfg.batch == 0 || cfg.epochs == 0 {
        return Err(TrainError::Config(
            "--batch and --epochs must be at least 1".into(),
        ));
    }
    if dims.embed == 0 || dims.hidden == 0 {
        return Err(TrainError::Config(
            "seq2seq: the embedding and hidden sizes must be at least 1".into(),
        ));
    }
    let rates_ok = cfg.lr.is_finite()
        && cfg.lr > 0.0
        && (0.0..1.0).contains(&cfg.momentum)
        && cfg.weight_decay.is_finite()
        && cfg.weight_decay >= 0.0;
    if !rates_ok {
        return Err(TrainError::Config(
            "--lr must be positive, --momentum in [0, 1), --weight-decay non-negative".into(),
        ));
    }
    Ok(())
}

/// Test figures: `(mean cross-entropy per token, token accuracy)`.
fn evaluate<E: HostEngine>(
    e: &mut E,
    model: &Seq2Seq,
    sm: Softmax,
    params: &[E::Elem],
    pairs: &[Pair],
    batch: usize,
    scratch: &mut Vec<E::Elem>,
) -> Result<(f64, f64), TrainError> {
    let v = model.tgt_vocab;
    let (mut loss, mut weight, mut correct) = (0.0, 0.0, 0usize);
    for chunk in pairs.chunks(batch) {
        let refs: Vec<&Pair> = chunk.iter().collect();
        let b = SeqBatch::new(&refs);
        let p = model
            .probabilities(e, sm, params, &b, scratch)
            .map_err(engine_err)?;
        let p = e.reveal(&p)?;
        let mask: Vec<f64> = b.tgt_mask.iter().map(|&m| f64::from(u8::from(m))).collect();
        let (l, w) = sequence_loss(&p, &b.dec_out, &mask, v);
        loss += l;
        weight += w;
        for (i, (&y, &m)) in b.dec_out.iter().zip(&b.tgt_mask).enumerate() {
            if m && argmax(&p[i * v..(i + 1) * v]) == y {
                correct += 1;
            }
        }
    }
    Ok((loss / weight.max(1.0), correct as f64 / weight.max(1.0)))
}

/// Greedy decoding of `pairs`' sources: from BOS, feed back the argmax of the revealed
/// logits, until EOS or `max_steps` tokens. Returns the token ids, EOS excluded.
fn greedy<E: HostEngine>(
    e: &mut E,
    model: &Seq2Seq,
    params: &[E::Elem],
    pairs: &[&Pair],
    max_steps: usize,
    scratch: &mut Vec<E::Elem>,
) -> Result<Vec<Vec<u32>>, TrainError> {
    let z = E::Elem::default();
    let lay = model.layout();
    let b = SeqBatch::new(pairs);
    let (bs, ts, d, h, v) = (
        b.batch,
        b.src_steps,
        model.embed,
        model.hidden,
        model.tgt_vocab,
    );
    let bh = bs * h;
    let mut src_onehot = vec![z; ts * bs * model.src_vocab];
    model
        .src_embedding()
        .one_hot(e, &b.src, &mut src_onehot)
        .map_err(engine_err)?;
    let src_mask = ones_at(e, &b.src_mask, h).map_err(engine_err)?;
    let mut src_x = vec![z; ts * bs * d];
    model
        .src_embedding()
        .forward(
            e,
            &src_onehot,
            &params[lay.src_emb.clone()],
            ts * bs,
            &mut src_x,
        )
        .map_err(engine_err)?;
    let (mut hs, mut caches) = (Vec::new(), Vec::new());
    model
        .encode(
            e,
            params,
            bs,
            ts,
            &src_x,
            &src_mask,
            &mut hs,
            &mut caches,
            scratch,
        )
        .map_err(engine_err)?;
    let mut state = hs[ts * bh..].to_vec();
    let cell = model.decoder();
    let mut cache = vec![z; cell.cache_len(bs)];
    let (mut onehot, mut x, mut next, mut logits) = (
        vec![z; bs * v],
        vec![z; bs * d],
        vec![z; bh],
        vec![z; bs * v],
    );
    let mut tokens = vec![text::BOS as usize; bs];
    let mut out = vec![Vec::new(); bs];
    let mut done = vec![false; bs];
    for _ in 0..max_steps {
        if done.iter().all(|&finished| finished) {
            break;
        }
        let tgt = model.tgt_embedding();
        tgt.one_hot(e, &tokens, &mut onehot).map_err(engine_err)?;
        tgt.forward(e, &onehot, &params[lay.tgt_emb.clone()], bs, &mut x)
            .map_err(engine_err)?;
        let s = grow(scratch, cell.forward_scratch(bs));
        cell.forward(
            e,
            rnn::GruStep {
                x: &x,
                h: &state,
                params: &params[lay.dec.clone()],
            },
            bs,
            &mut next,
            &mut cache,
            s,
        )
        .map_err(engine_err)?;
        state.copy_from_slice(&next);
        model
            .output()
            .forward(
                e,
                &state,
                &params[lay.out_w.clone()],
                &params[lay.out_b.clone()],
                bs,
                &mut logits,
            )
            .map_err(engine_err)?;
        let l = e.reveal(&logits)?;
        for r in 0..bs {
            let t = argmax(&l[r * v..(r + 1) * v]);
            tokens[r] = t;
            if done[r] {
                continue;
            }
            if t == text::EOS as usize {
                done[r] = true;
            } else {
                out[r].push(t as u32);
            }
        }
    }
    Ok(out)
}

/// Greedy translations of [`SHOWN`] test pairs spread over the test set.
fn translations<E: HostEngine>(
    e: &mut E,
    model: &Seq2Seq,
    corpus: &Corpus,
    params: &[E::Elem],
    max_steps: usize,
    scratch: &mut Vec<E::Elem>,
) -> Result<Vec<Translation>, TrainError> {
    let n = corpus.test.len().min(SHOWN);
    let picks: Vec<&Pair> = (0..n)
        .map(|i| &corpus.test[i * corpus.test.len() / n])
        .collect();
    let outs = greedy(e, model, params, &picks, max_steps, scratch)?;
    Ok(picks
        .iter()
        .zip(outs)
        .map(|(p, o)| Translation {
            source: corpus.src_vocab.decode(&p.src),
            reference: corpus.tgt_vocab.decode(&p.tgt),
            output: corpus.tgt_vocab.decode(&o),
        })
        .collect())
}

fn header(cfg: &TrainConfig, model: &Seq2Seq, kind: &str, data: &str, n_train: usize) -> Header {
    Header {
        model: "seq2seq".into(),
        data: data.into(),
        engine: kind.into(),
        frac_bits: if cfg.engine == EngineKind::Plain {
            cfg.frac_bits.get()
        } else {
            0
        },
        exp: cfg.exp.name().into(),
        grad: cfg.grad.name().into(),
        n_params: model.n_params(),
        n_buffers: 0,
        epochs_done: 0,
        steps_done: 0,
        seed: cfg.seed,
        train_samples: n_train,
        run: None,
        attempt: None,
    }
}

fn run_engine<E: HostEngine>(
    mut e: E,
    cfg: &TrainConfig,
    model: &Seq2Seq,
    corpus: &Corpus,
    data: &str,
) -> Result<Seq2SeqResult, TrainError> {
    let n_train = corpus.train.len();
    let n_params = model.n_params();
    let steps_per_epoch = n_train.div_ceil(cfg.batch) as u64;
    let sched = cfg.lr_schedule(steps_per_epoch * cfg.epochs as u64);
    let expected = header(cfg, model, e.kind(), data, n_train);
    let mut params = e.input("initial parameters", &model.init(cfg.seed))?;
    let mut velocity = vec![E::Elem::default(); n_params];
    let (mut epoch0, mut step) = (0usize, 0u64);
    if let Some((h, st)) = resume_from(cfg, &expected)? {
        params = elems::<E>(&st.params);
        velocity = elems::<E>(&st.velocity);
        epoch0 = h.epochs_done;
        step = h.steps_done;
    }
    let sm = training_softmax(cfg);
    let loss = SeqXent::new(sm, cfg.grad);
    let sgd = Sgd {
        momentum: cfg.momentum,
        weight_decay: cfg.weight_decay,
    };
    let max_steps = corpus
        .train
        .iter()
        .chain(&corpus.test)
        .map(|p| p.tgt.len())
        .max()
        .unwrap_or(0)
        + 1;
    let mut scratch: Vec<E::Elem> = Vec::new();
    let mut grads = vec![E::Elem::default(); n_params];
    let mut history = Vec::new();
    let (mut train_seconds, mut trained) = (0.0, 0usize);
    let mut last_ckpt = None;
    let mut last_loss = f64::NAN;
    let mut test = (f64::NAN, f64::NAN);
    for epoch in epoch0..cfg.epochs {
        let (_, order) = epoch_order(cfg.seed, epoch, n_train);
        let bar = epoch_bar(cfg, epoch, n_train);
        let start = Instant::now();
        let (mut loss_sum, mut tokens, mut seen) = (0.0, 0usize, 0usize);
        for chunk in order.chunks(cfg.batch) {
            let pairs: Vec<&Pair> = chunk.iter().map(|&i| &corpus.train[i]).collect();
            let b = SeqBatch::new(&pairs);
            let pt = model
                .gradient(&mut e, loss, &params, &b, &mut grads, &mut scratch)
                .map_err(engine_err)?;
            let pt = e.reveal(&pt)?;
            for (&p, &m) in pt.iter().zip(&b.tgt_mask) {
                if m {
                    loss_sum -= p.max(1e-12).ln();
                }
            }
            tokens += b.tokens();
            let lr = sched.rate(cfg.lr, step);
            sgd.step(
                &mut e,
                &mut params,
                &grads,
                &mut velocity,
                lr,
                b.batch,
                grow(&mut scratch, n_params),
            )
            .map_err(engine_err)?;
            step += 1;
            seen += b.batch;
            let secs = start.elapsed().as_secs_f64();
            bar.set_position(seen as u64);
            bar.set_message(format!(
                "loss {:.4} ppl {:.2} {:.0} pairs/s",
                loss_sum / tokens as f64,
                (loss_sum / tokens as f64).exp(),
                seen as f64 / secs.max(1e-9)
            ));
        }
        let secs = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        train_seconds += secs;
        trained += seen;
        last_loss = loss_sum / tokens.max(1) as f64;
        test = evaluate(
            &mut e,
            model,
            sm,
            &params,
            &corpus.test,
            cfg.batch,
            &mut scratch,
        )?;
        let stats = Seq2SeqEpoch {
            epoch: epoch + 1,
            train_loss: last_loss,
            train_perplexity: last_loss.exp(),
            test_loss: test.0,
            test_perplexity: test.0.exp(),
            test_token_accuracy: test.1,
            seconds: secs,
        };
        if cfg.progress {
            eprintln!(
                "epoch {}/{}: loss {:.4}, train perplexity {:.2}, test perplexity {:.2}, \
                 test token accuracy {:.2}%, {:.0} pairs/s",
                stats.epoch,
                cfg.epochs,
                stats.train_loss,
                stats.train_perplexity,
                stats.test_perplexity,
                100.0 * stats.test_token_accuracy,
                seen as f64 / secs.max(1e-9)
            );
            for t in translations(&mut e, model, corpus, &params, max_steps, &mut scratch)? {
                eprintln!(
                    "  {} => {} (reference: {})",
                    t.source, t.output, t.reference
                );
            }
        }
        history.push(stats);
        if let Some(dir) = &cfg.checkpoint {
            let mut h = expected.clone();
            h.epochs_done = epoch + 1;
            h.steps_done = step;
            let st = State {
                params: params.iter().map(|&v| E::to_bits(v)).collect(),
                velocity: velocity.iter().map(|&v| E::to_bits(v)).collect(),
                buffers: Vec::new(),
            };
            last_ckpt = Some(checkpoint::save_keeping_previous(dir, &h, &st)?);
        }
    }
    if epoch0 >= cfg.epochs {
        test = evaluate(
            &mut e,
            model,
            sm,
            &params,
            &corpus.test,
            cfg.batch,
            &mut scratch,
        )?;
    }
    let translations = translations(&mut e, model, corpus, &params, max_steps, &mut scratch)?;
    Ok(Seq2SeqResult {
        model: "seq2seq".into(),
        data: data.into(),
        engine: e.kind().into(),
        frac_bits: (cfg.engine == EngineKind::Plain).then(|| cfg.frac_bits.get()),
        exp: cfg.exp.name().into(),
        tanh: cfg.tanh.name().into(),
        sigmoid: model.sigmoid.name().into(),
        grad: cfg.grad.name().into(),
        subtract_max: sm.subtract_max,
        epochs: cfg.epochs,
        train_samples: n_train,
        test_samples: corpus.test.len(),
        train_loss: last_loss,
        perplexity: test.0.exp(),
        test_token_accuracy: test.1,
        train_seconds,
        samples_per_sec: trained as f64 / train_seconds.max(1e-9),
        overflow_count: e.overflow_count(),
        parameters: n_params,
        src_vocab: model.src_vocab,
        tgt_vocab: model.tgt_vocab,
        embed: model.embed,
        hidden: model.hidden,
        history,
        translations,
        checkpoint: last_ckpt,
    })
}

impl From<Seq2SeqResult> for super::result::TrainResult {
    /// The common result of a seq2seq run (accuracy is token accuracy under teacher
    /// forcing; translations stay in the seq2seq result).
    fn from(r: super::seq2seq::Seq2SeqResult) -> Self {
        super::result::TrainResult {
            model: r.model,
            data: r.data,
            engine: r.engine,
            frac_bits: r.frac_bits,
            exp: r.exp,
            tanh: Some(r.tanh),
            grad: r.grad,
            subtract_max: r.subtract_max,
            epochs: r.epochs,
            train_samples: r.train_samples,
            test_samples: r.test_samples,
            test_accuracy: r.test_token_accuracy,
            perplexity: Some(r.perplexity),
            train_loss: r.train_loss,
            train_seconds: r.train_seconds,
            samples_per_sec: r.samples_per_sec,
            overflow_count: r.overflow_count,
            parameters: r.parameters,
            history: r
                .history
                .iter()
                .map(|h| super::result::EpochStats {
                    epoch: h.epoch,
                    train_loss: h.train_loss,
                    train_accuracy: f64::NAN,
                    test_accuracy: h.test_token_accuracy,
                    seconds: h.seconds,
                })
                .collect(),
            checkpoint: r.checkpoint,
            mpc: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::DataKind;
    use rand::Rng;
    use ringnn_core::approx::ExpApprox;
    use ringnn_core::softmax::GradMode;
    use ringnn_core::{FracBits, Z64};
    use std::path::Path;

    fn config(engine: EngineKind, f: u32) -> TrainConfig {
        TrainConfig {
            model: "seq2seq".parse().unwrap(),
            data: DataKind::Synthetic,
            data_dir: None,
            engine,
            frac_bits: FracBits::new(f).unwrap(),
            exp: ExpApprox::Exact,
            tanh: TanhApprox::Exact,
            sigmoid: ringnn_core::approx::SigmoidApprox::SecureMl,
            grad: GradMode::Exact,
            subtract_max: false,
            epochs: 1,
            batch: 32,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: "constant".parse().unwrap(),
            seed: 1,
            train_limit: None,
            test_limit: None,
            checkpoint: None,
            resume: false,
            progress: false,
            insecure_dealer_seed: None,
        }
    }

    /// A copy task: `n` random sentences of 2 to 5 words over 8 words, each its own
    /// translation (so both vocabularies have 12 entries).
    fn copy_corpus(n: usize, seed: u64) -> Corpus {
        let words = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut tsv = String::new();
        for _ in 0..n {
            let len = rng.random_range(2..=5);
            let s: Vec<&str> = (0..len).map(|_| words[rng.random_range(0..8)]).collect();
            let s = s.join(" ");
            tsv.push_str(&format!("{s}\t{s}\tx\n"));
        }
        let cfg = TextConfig {
            max_len: 6,
            min_count: 1,
            max_vocab: 100,
            test_fraction: 0.15,
            seed: 0,
        };
        text::corpus_from_bytes(tsv.as_bytes(), Path::new("copy"), &cfg).unwrap()
    }

    fn small() -> Seq2SeqDims {
        Seq2SeqDims {
            embed: 16,
            hidden: 32,
            text: TextConfig::default(),
        }
    }

    fn tiny(sigmoid: SigmoidApprox, tanh: TanhApprox) -> Seq2Seq {
        Seq2Seq {
            src_vocab: 7,
            tgt_vocab: 6,
            embed: 3,
            hidden: 4,
            sigmoid,
            tanh,
        }
    }

    /// Pairs of different lengths on both sides (an empty target too), so that both the
    /// encoder's state masks and the loss masks are exercised.
    fn tiny_pairs() -> Vec<Pair> {
        vec![
            Pair {
                src: vec![4, 5, 6],
                tgt: vec![4, 5],
            },
            Pair {
                src: vec![6],
                tgt: vec![5, 4, 4],
            },
            Pair {
                src: vec![5, 4],
                tgt: vec![],
            },
        ]
    }

    /// The summed masked cross-entropy of a batch, in f64.
    fn loss_of(m: &Seq2Seq, sm: Softmax, params: &[f64], b: &SeqBatch) -> f64 {
        let mut e = Float::<f64>::new();
        let p = m
            .probabilities(&mut e, sm, params, b, &mut Vec::new())
            .unwrap();
        let mask: Vec<f64> = b.tgt_mask.iter().map(|&v| f64::from(u8::from(v))).collect();
        sequence_loss(&p, &b.dec_out, &mask, m.tgt_vocab).0
    }

    #[test]
    fn batches_are_time_major_reversed_and_masked() {
        let ps = tiny_pairs();
        let b = SeqBatch::new(&ps.iter().collect::<Vec<_>>());
        assert_eq!((b.batch, b.src_steps, b.tgt_steps), (3, 3, 4));
        // Row 0's source 4 5 6 is read 6 5 4; row 1 has one token, then padding.
        assert_eq!(b.src, [6, 6, 4, 5, 0, 5, 4, 0, 0]);
        assert_eq!(
            b.src_mask,
            [true, true, true, true, false, true, true, false, false]
        );
        assert_eq!(b.dec_in, [1, 1, 1, 4, 5, 0, 5, 4, 0, 0, 4, 0]);
        assert_eq!(b.dec_out, [4, 5, 2, 5, 4, 0, 2, 4, 0, 0, 2, 0]);
        assert_eq!(b.tokens(), 3 + 4 + 1);
    }

    /// Every parameter's gradient against central differences of the whole model's
    /// loss (source embedding, encoder through time with masks, decoder through time,
    /// output layer, masked sequence cross-entropy), on `Float<f64>`.
    fn check_gradients(m: Seq2Seq, exp: ExpApprox, seed: u64) {
        let sm = Softmax::new(exp);
        let ps = tiny_pairs();
        let b = SeqBatch::new(&ps.iter().collect::<Vec<_>>());
        let params = m.init(seed);
        let mut g = vec![0.0; m.n_params()];
        m.gradient(
            &mut Float::<f64>::new(),
            SeqXent::new(sm, GradMode::Exact),
            &params,
            &b,
            &mut g,
            &mut Vec::new(),
        )
        .unwrap();
        let h = 1e-6;
        let mut p = params.clone();
        for i in 0..params.len() {
            p[i] = params[i] + h;
            let up = loss_of(&m, sm, &p, &b);
            p[i] = params[i] - h;
            let down = loss_of(&m, sm, &p, &b);
            p[i] = params[i];
            let fd = (up - down) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{m:?} {exp:?}: parameter {i}: backward {} vs finite difference {fd}",
                g[i]
            );
        }
        let lay = m.layout();
        // The padding token's source embedding never reaches the loss.
        assert!(g[lay.src_emb.start..lay.src_emb.start + m.embed]
            .iter()
            .all(|&v| v == 0.0));
        for r in [
            lay.src_emb,
            lay.enc,
            lay.tgt_emb,
            lay.dec,
            lay.out_w,
            lay.out_b,
        ] {
            let nonzero = g[r.clone()].iter().filter(|&&v| v != 0.0).count();
            assert!(nonzero * 3 >= r.len(), "{r:?}: only {nonzero} nonzero");
        }
    }

    #[test]
    fn whole_model_gradients_match_finite_differences() {
        check_gradients(
            tiny(SigmoidApprox::Exact, TanhApprox::Exact),
            ExpApprox::Exact,
            11,
        );
        // The paper's approximations: derivatives of hard tanh, SecureML's sigmoid and
        // the 4-part softmax (no pre-activation lies within 1e-6 of a kink here).
        check_gradients(
            tiny(SigmoidApprox::SecureMl, TanhApprox::Hard),
            ExpApprox::Pwl(4),
            12,
        );
    }

    #[test]
    fn padding_does_not_change_a_pairs_loss() {
        let m = tiny(SigmoidApprox::Exact, TanhApprox::Exact);
        let sm = Softmax::new(ExpApprox::Exact);
        let params = m.init(3);
        let ps = tiny_pairs();
        let together = loss_of(
            &m,
            sm,
            &params,
            &SeqBatch::new(&ps.iter().collect::<Vec<_>>()),
        );
        let alone: f64 = ps
            .iter()
            .map(|p| loss_of(&m, sm, &params, &SeqBatch::new(&[p])))
            .sum();
        assert!((together - alone).abs() < 1e-12, "{together} vs {alone}");
    }

    /// One step's gradient on `Plain` (f = 20) against `Float<f64>` from the same
    /// parameters, with the paper's approximations. Measured: the largest gradient
    /// difference is 2.3e-6 of the largest gradient (bound 1e-4), probabilities differ by
    /// 0.5 ulp (bound about 10 ulps).
    #[test]
    fn plain_gradient_matches_float() {
        let m = Seq2Seq {
            src_vocab: 12,
            tgt_vocab: 12,
            embed: 8,
            hidden: 16,
            sigmoid: SigmoidApprox::SecureMl,
            tanh: TanhApprox::Hard,
        };
        let c = copy_corpus(64, 5);
        let b = SeqBatch::new(&c.train.iter().take(16).collect::<Vec<_>>());
        let loss = SeqXent::new(Softmax::new(ExpApprox::Pwl(4)), GradMode::Exact);
        let params = m.init(9);
        let mut gf = vec![0.0; m.n_params()];
        let pf = m
            .gradient(
                &mut Float::<f64>::new(),
                loss,
                &params,
                &b,
                &mut gf,
                &mut Vec::new(),
            )
            .unwrap();
        let mut e = Plain::with_frac_bits(20).unwrap();
        let pp = e.input("params", &params).unwrap();
        let mut gp = vec![Z64::ZERO; m.n_params()];
        let pr = m
            .gradient(&mut e, loss, &pp, &b, &mut gp, &mut Vec::new())
            .unwrap();
        let gp = e.reveal(&gp).unwrap();
        let pr = e.reveal(&pr).unwrap();
        let top = gf.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let worst = gf
            .iter()
            .zip(&gp)
            .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
        eprintln!("gradient: {worst} vs largest {top}");
        assert!(worst <= 1e-4 * top, "gradient: {worst} vs largest {top}");
        let worst_p = pf
            .iter()
            .zip(&pr)
            .fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
        eprintln!("probabilities differ by {worst_p}");
        assert!(worst_p <= 1e-5, "probabilities differ by {worst_p}");
        assert_eq!(e.overflow_count(), 0);
    }

    fn hard_pwl4(mut cfg: TrainConfig) -> TrainConfig {
        cfg.tanh = TanhApprox::Hard;
        cfg.exp = ExpApprox::Pwl(4);
        cfg
    }

    /// On the copy task (vocabulary 12, so a model that knows nothing has perplexity
    /// about 9), a few epochs bring the test perplexity close to 1, in fixed point with
    /// the paper's approximations and in floating point.
    #[test]
    fn learns_to_copy_on_plain_and_float() {
        let corpus = copy_corpus(1200, 1);
        for (cfg, sigmoid, bound) in [
            (
                hard_pwl4(config(EngineKind::Plain, 13)),
                SigmoidApprox::SecureMl,
                3.0,
            ),
            (config(EngineKind::Float, 13), SigmoidApprox::Exact, 2.0),
        ] {
            let cfg = TrainConfig { epochs: 6, ..cfg };
            let r = train_on_corpus(&cfg, sigmoid, small(), corpus.clone(), "copy").unwrap();
            let first = r.history[0].test_perplexity;
            eprintln!(
                "{} {}: test perplexity by epoch {:?}, token accuracy {:.3}, {:?}",
                r.engine,
                r.exp,
                r.history
                    .iter()
                    .map(|h| h.test_perplexity)
                    .collect::<Vec<_>>(),
                r.test_token_accuracy,
                r.translations.first()
            );
            assert!(
                r.perplexity < bound && r.perplexity < first,
                "{}: perplexity {} (first epoch {first})",
                r.engine,
                r.perplexity
            );
            assert!(r.test_token_accuracy > 0.6, "{}", r.test_token_accuracy);
            assert_eq!(r.overflow_count, 0);
            assert_eq!(r.translations.len(), SHOWN);
        }
    }

    /// The same runs on `Plain` (f = 16) and `Float<f32>` (pwl4, hard tanh, the exact
    /// gradient, seeds 1 to 8) give close test perplexities.
    ///
    /// Two epochs of this run are 34 steps at lr 0.05 and momentum 0.9, and its trajectory
    /// is chaotic from about step 12: a difference of one rounding grows to the size of a
    /// change of seed within the second epoch. Measured over seeds 1 to 20: after epoch 1
    /// Plain and Float are at most 3.6% apart (median 0.14%), so each seed is held to 5%
    /// there. After epoch 2, Plain against Float differs by -1.4% on average with a
    /// standard deviation of 4.4% per seed (up to 8.7%, seed 1), and `Float` against
    /// itself with the initial parameters rounded to multiples of 2^-16 (moved by at most
    /// 2^-17, which is what `Plain` starts from) by 4.5% per seed (up to 11.3%): a
    /// single seed cannot be held to 5% there (7 of 20 seeds were past it before the
    /// label ratio had guard bits, 5 of 20 after). So epoch 2 holds the mean over the 8
    /// seeds of `(plain - float) / float` to 5%, about three standard errors (4.5% / sqrt 8
    /// = 1.6%); measured -2.3%.
    #[test]
    fn plain_and_float_runs_agree() {
        let corpus = copy_corpus(600, 2);
        let run = |engine, seed| {
            let cfg = TrainConfig {
                epochs: 2,
                seed,
                ..hard_pwl4(config(engine, 16))
            };
            train_on_corpus(
                &cfg,
                SigmoidApprox::SecureMl,
                small(),
                corpus.clone(),
                "copy",
            )
            .unwrap()
        };
        let seeds = 1..=8u64;
        let mut rel = [Vec::new(), Vec::new()];
        for seed in seeds.clone() {
            let (p, f) = (run(EngineKind::Plain, seed), run(EngineKind::Float, seed));
            assert_eq!(p.overflow_count, 0);
            for (a, b) in p.history.iter().zip(&f.history) {
                let r = (a.test_perplexity - b.test_perplexity) / b.test_perplexity;
                eprintln!(
                    "seed {seed} epoch {}: plain {:.4} float {:.4} ({:+.4})",
                    a.epoch, a.test_perplexity, b.test_perplexity, r
                );
                rel[a.epoch - 1].push(r);
            }
        }
        assert!(rel.iter().all(|r| r.len() == seeds.clone().count()));
        for (seed, r) in seeds.zip(&rel[0]) {
            assert!(r.abs() < 0.05, "epoch 1, seed {seed}: {r}");
        }
        let mean = rel[1].iter().sum::<f64>() / rel[1].len() as f64;
        eprintln!("epoch 2: mean relative difference {mean:+.4}");
        assert!(
            mean.abs() < 0.05,
            "epoch 2: mean relative difference {mean}"
        );
    }

    /// Exact e^x in the output softmax trains with the row maximum subtracted, as for the
    /// image models, and the result says so; the approximations only with
    /// `--subtract-max`. With the shift the run is the one asked for with the flag, bit for
    /// bit.
    #[test]
    fn exact_softmax_subtracts_the_row_maximum() {
        let corpus = copy_corpus(100, 3);
        let run = |exp, subtract_max| {
            let cfg = TrainConfig {
                exp,
                subtract_max,
                ..config(EngineKind::Plain, 13)
            };
            train_on_corpus(
                &cfg,
                SigmoidApprox::SecureMl,
                small(),
                corpus.clone(),
                "copy",
            )
            .unwrap()
        };
        let (exact, exact_flag) = (run(ExpApprox::Exact, false), run(ExpApprox::Exact, true));
        assert!(exact.subtract_max && exact_flag.subtract_max);
        assert_eq!(exact.perplexity, exact_flag.perplexity);
        assert_eq!(exact.train_loss, exact_flag.train_loss);
        assert!(!run(ExpApprox::Pwl(4), false).subtract_max);
        assert!(run(ExpApprox::Pwl(4), true).subtract_max);
    }

    /// One epoch, then a resumed second one, ends exactly where two epochs in one go do.
    #[test]
    fn resume_continues_the_same_run() {
        let corpus = copy_corpus(300, 3);
        let dir = std::env::temp_dir().join(format!("ringnn-s2s-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let base = TrainConfig {
            batch: 16,
            ..config(EngineKind::Plain, 13)
        };
        let sig = SigmoidApprox::SecureMl;
        let straight = train_on_corpus(
            &TrainConfig {
                epochs: 2,
                ..base.clone()
            },
            sig,
            small(),
            corpus.clone(),
            "copy",
        )
        .unwrap();
        let first = train_on_corpus(
            &TrainConfig {
                checkpoint: Some(dir.clone()),
                ..base.clone()
            },
            sig,
            small(),
            corpus.clone(),
            "copy",
        )
        .unwrap();
        assert_eq!(first.checkpoint, Some(checkpoint::path_in(&dir)));
        let resumed = train_on_corpus(
            &TrainConfig {
                epochs: 2,
                checkpoint: Some(dir.clone()),
                resume: true,
                ..base.clone()
            },
            sig,
            small(),
            corpus.clone(),
            "copy",
        )
        .unwrap();
        assert_eq!(resumed.history.len(), 1);
        assert_eq!(resumed.perplexity, straight.perplexity);
        assert_eq!(resumed.translations, straight.translations);
        // A checkpoint of another run is refused, naming the field.
        let err = train_on_corpus(
            &TrainConfig {
                epochs: 3,
                checkpoint: Some(dir.clone()),
                resume: true,
                exp: ExpApprox::Pwl(5),
                ..base
            },
            sig,
            small(),
            corpus,
            "copy",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("exp"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_configurations_are_errors() {
        let corpus = copy_corpus(50, 4);
        assert!("step:5,3".parse::<crate::train::ScheduleSpec>().is_err());
        let dims = Seq2SeqDims {
            hidden: 0,
            ..small()
        };
        assert!(train_on_corpus(
            &config(EngineKind::Float, 13),
            SigmoidApprox::Exact,
            dims,
            corpus,
            "copy"
        )
        .is_err());
        assert!(matches!(
            "step:10,20"
                .parse::<crate::train::ScheduleSpec>()
                .unwrap()
                .schedule(5),
            ringnn_core::optim::Schedule::Step { len: 2, .. }
        ));
        assert!(matches!(
            "cosine"
                .parse::<crate::train::ScheduleSpec>()
                .unwrap()
                .schedule(5),
            ringnn_core::optim::Schedule::Cosine { total: 5 }
        ));
    }

    /// One short epoch on a Tatoeba subset, when the data is there.
    #[test]
    fn tatoeba_subset_trains() {
        let dir = data::data_dir(None).unwrap_or_else(|| PathBuf::from("/work/shared/data"));
        if text::load_tatoeba(&dir, &TextConfig::default()).is_err() {
            eprintln!(
                "skipped: no Tatoeba pairs under {} (set RINGNN_DATA)",
                dir.display()
            );
            return;
        }
        let cfg = TrainConfig {
            data_dir: Some(dir),
            train_limit: Some(256),
            test_limit: Some(64),
            ..hard_pwl4(config(EngineKind::Float, 13))
        };
        let r = train_seq2seq(&cfg, SigmoidApprox::SecureMl, Seq2SeqDims::default()).unwrap();
        assert_eq!(
            (r.data.as_str(), r.train_samples, r.test_samples),
            ("tatoeba", 256, 64)
        );
        assert!(
            r.perplexity.is_finite() && r.perplexity > 1.0,
            "{}",
            r.perplexity
        );
        assert!(r.tgt_vocab > 100, "{}", r.tgt_vocab);
        assert_eq!(r.translations.len(), SHOWN);
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "perplexity",
            "test_token_accuracy",
            "samples_per_sec",
            "history",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    /// The measurement harness behind the numbers in the report (not run by default):
    /// one Tatoeba run configured by `S2S_*` variables, printing the JSON result.
    /// `S2S_ENGINE=plain S2S_F=13 S2S_EXP=pwl4 S2S_TANH=hard S2S_SIGMOID=secureml
    /// S2S_EPOCHS=3 S2S_LR=0.05 S2S_BATCH=64 cargo test --release -p ringnn-host --lib
    /// seq2seq::tests::measure_tatoeba -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement: minutes on the full corpus"]
    fn measure_tatoeba() {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        let engine = match var("S2S_ENGINE", "float").as_str() {
            "plain" => EngineKind::Plain,
            _ => EngineKind::Float,
        };
        let exp = ExpApprox::parse(&var("S2S_EXP", "exact")).unwrap();
        let cfg = TrainConfig {
            data_dir: Some(
                data::data_dir(None).unwrap_or_else(|| PathBuf::from("/work/shared/data")),
            ),
            exp,
            tanh: TanhApprox::parse(&var("S2S_TANH", "exact")).unwrap(),
            sigmoid: ringnn_core::approx::SigmoidApprox::SecureMl,
            epochs: var("S2S_EPOCHS", "3").parse().unwrap(),
            lr: var("S2S_LR", "0.05").parse().unwrap(),
            batch: var("S2S_BATCH", "64").parse().unwrap(),
            progress: true,
            ..config(engine, var("S2S_F", "13").parse().unwrap())
        };
        let sigmoid = SigmoidApprox::parse(&var("S2S_SIGMOID", "exact"), exp).unwrap();
        let dims = Seq2SeqDims {
            embed: var("S2S_EMBED", "64").parse().unwrap(),
            hidden: var("S2S_HIDDEN", "128").parse().unwrap(),
            ..Seq2SeqDims::default()
        };
        let r = train_seq2seq(&cfg, sigmoid, dims).unwrap();
        println!("{}", serde_json::to_string(&r).unwrap());
    }
}
