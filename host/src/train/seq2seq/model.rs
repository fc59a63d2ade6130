//! The encoder-decoder itself: sizes, parameter layout, batches of token ids, forward,
//! backward and the gradient of a batch, on any engine.

use crate::data::text::{self, Pair, TextConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ringnn_core::approx::{SigmoidApprox, TanhApprox};
use ringnn_core::layers::{rnn, Dense, Embedding, Grads, GruCell, SeqXent};
use ringnn_core::softmax::{self, Softmax};
use ringnn_core::Engine;
use std::ops::Range;

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
pub(super) struct Layout {
    pub(super) src_emb: Range<usize>,
    pub(super) enc: Range<usize>,
    pub(super) tgt_emb: Range<usize>,
    pub(super) dec: Range<usize>,
    pub(super) out_w: Range<usize>,
    pub(super) out_b: Range<usize>,
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

/// The sizes of a batch: what the model's arithmetic depends on besides its values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Steps {
    /// Sentence pairs.
    pub batch: usize,
    /// Encoder steps.
    pub src_steps: usize,
    /// Decoder steps.
    pub tgt_steps: usize,
}

impl SeqBatch {
    /// The batch of `pairs`, padded to its longest sentences.
    pub fn new(pairs: &[&Pair]) -> Self {
        let ts = pairs.iter().map(|p| p.src.len()).max().unwrap_or(0).max(1);
        let tt = pairs.iter().map(|p| p.tgt.len()).max().unwrap_or(0) + 1;
        Self::padded(pairs, ts, tt)
    }

    /// The batch of `pairs` padded to `src_steps` encoder and `tgt_steps` decoder steps,
    /// whatever their lengths (the two-party runs' public shape).
    ///
    /// # Panics
    /// If a source is longer than `src_steps` or a target not shorter than `tgt_steps`.
    pub fn padded(pairs: &[&Pair], ts: usize, tt: usize) -> Self {
        let b = pairs.len();
        assert!(
            pairs.iter().all(|p| p.src.len() <= ts && p.tgt.len() < tt),
            "SeqBatch::padded: a sentence is longer than the steps"
        );
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

    /// Its sizes.
    pub fn steps(&self) -> Steps {
        Steps {
            batch: self.batch,
            src_steps: self.src_steps,
            tgt_steps: self.tgt_steps,
        }
    }
}

/// A batch inside the engine (shares on two servers).
#[derive(Clone, Debug, Default)]
pub(crate) struct Inputs<T> {
    /// `src_steps * batch x V_s`.
    pub(crate) src_onehot: Vec<T>,
    /// `src_steps * batch x H`: 1 where the row has a token at that step.
    pub(crate) src_mask: Vec<T>,
    /// `tgt_steps * batch x V_t`.
    pub(crate) dec_onehot: Vec<T>,
    /// `tgt_steps * batch x V_t`.
    pub(crate) targets: Vec<T>,
    /// `tgt_steps * batch`.
    pub(crate) tgt_mask: Vec<T>,
}

/// What backward needs from forward.
pub(super) struct Trace<T> {
    /// Source embeddings, `src_steps * batch x D`.
    pub(super) src_x: Vec<T>,
    /// Encoder states `h_0 .. h_{src_steps}`, `batch x H` each.
    pub(super) enc_h: Vec<T>,
    /// Encoder caches, one per step.
    pub(super) enc_cache: Vec<T>,
    /// Decoder input embeddings, `tgt_steps * batch x D`.
    pub(super) dec_x: Vec<T>,
    /// Decoder states `h_0 .. h_{tgt_steps}` (`h_0` is the encoder's final state).
    pub(super) dec_h: Vec<T>,
    /// Decoder caches, one per step.
    pub(super) dec_cache: Vec<T>,
}

impl<T> Trace<T> {
    pub(super) fn new() -> Self {
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
pub(super) fn grow<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// `mask.len() * width` elements: `width` ones (element scale) where `mask` is set, zeros
/// elsewhere.
pub(super) fn ones_at<E: Engine + ?Sized>(
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

    pub(super) fn layout(&self) -> Layout {
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
    pub(super) fn inputs<E: Engine + ?Sized>(
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
    pub(super) fn encode<E: Engine + ?Sized>(
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
    pub(super) fn forward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        params: &[E::Elem],
        b: Steps,
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
    pub(super) fn backward<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        params: &[E::Elem],
        b: Steps,
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
                Grads {
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
    #[cfg(test)]
    pub(super) fn gradient<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        loss: SeqXent,
        params: &[E::Elem],
        b: &SeqBatch,
        grads: &mut [E::Elem],
        scratch: &mut Vec<E::Elem>,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let inp = self.inputs(e, b)?;
        let p = self.gradient_of(e, loss, params, b.steps(), &inp, grads, scratch)?;
        Ok(self.pick(&p, &b.dec_out))
    }

    /// For each row of `p` (`targets.len() x V_t`), its entry at the public `targets`.
    pub(super) fn pick<T: Copy>(&self, p: &[T], targets: &[usize]) -> Vec<T> {
        let v = self.tgt_vocab;
        targets
            .iter()
            .enumerate()
            .map(|(i, &y)| p[i * v + y])
            .collect()
    }

    /// [`Seq2Seq::gradient`] of a batch already inside the engine: returns the whole
    /// softmax (`tgt_steps * batch x V_t`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gradient_of<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        loss: SeqXent,
        params: &[E::Elem],
        b: Steps,
        inp: &Inputs<E::Elem>,
        grads: &mut [E::Elem],
        scratch: &mut Vec<E::Elem>,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let z = E::Elem::default();
        let mut tr = Trace::new();
        let logits = self.forward(e, params, b, inp, &mut tr, scratch)?;
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
        self.backward(e, params, b, inp, &tr, &dl, grads, scratch)?;
        Ok(p)
    }

    /// Teacher-forced probabilities of the model's softmax (`tgt_steps * batch x V_t`).
    pub(super) fn probabilities<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        sm: Softmax,
        params: &[E::Elem],
        b: &SeqBatch,
        scratch: &mut Vec<E::Elem>,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let inp = self.inputs(e, b)?;
        self.probabilities_of(e, sm, params, b.steps(), &inp, scratch)
    }

    /// [`Seq2Seq::probabilities`] of a batch already inside the engine.
    pub(crate) fn probabilities_of<E: Engine + ?Sized>(
        &self,
        e: &mut E,
        sm: Softmax,
        params: &[E::Elem],
        b: Steps,
        inp: &Inputs<E::Elem>,
        scratch: &mut Vec<E::Elem>,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let mut tr = Trace::new();
        let logits = self.forward(e, params, b, inp, &mut tr, scratch)?;
        let rows = b.tgt_steps * b.batch;
        let mut p = vec![E::Elem::default(); logits.len()];
        let s = grow(scratch, softmax::softmax_scratch(sm, rows, self.tgt_vocab));
        softmax::softmax(e, sm, &logits, rows, self.tgt_vocab, &mut p, s)?;
        Ok(p)
    }
}
