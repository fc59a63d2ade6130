//! Sequence-to-sequence translation (English to French, Tatoeba): a GRU encoder-decoder
//! trained in fixed point (`Plain`), floating point (`Float<f32>`) or on two servers'
//! shares (the same `Learner` over shared batches: `crate::mpc::training`), the
//! recurrent experiment of the paper (section 3.2, Table 3: perplexity with hard tanh and
//! 4- to 7-part piecewise-linear softmax).
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
//! activations are the configured sigmoid and tanh approximations ([`GruCell`](ringnn_core::layers::GruCell)); the
//! output softmax uses the configured e^x approximation ([`SeqXent`]).
//!
//! Tokens enter as one-hot rows and embeddings are matrix products ([`Embedding`](ringnn_core::layers::Embedding)), so
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
//! On `Plain` and `Float`, each epoch: the mean training cross-entropy per target token (from the revealed
//! probability of each target), the test perplexity `exp(mean cross-entropy per target
//! token)` with teacher forcing (EOS counted, padding not), computed from revealed
//! probabilities of the model's own (approximated) softmax, the test token accuracy
//! (argmax of those probabilities equals the reference token), and greedy translations of
//! a few test sentences (argmax of the revealed logits, step by step, until EOS).

mod model;

use super::checkpoint::{Header, State};
use super::config::{EngineKind, TrainConfig};
use super::engine::HostEngine;
use super::epochs::{self, run_epochs, Observer, Plan, Progress, Source};
use super::result::RunHealth;
use super::run::{argmax, elems, engine_err, resume_from, training_softmax, TrainError};
use crate::data::text::{self, Corpus, Pair};
use crate::{data, gemm};
pub(crate) use model::Inputs;
use model::{grow, ones_at};
pub use model::{Seq2Seq, Seq2SeqDims, SeqBatch, Steps};
use ringnn_core::approx::SigmoidApprox;
use ringnn_core::layers::{rnn, sequence_loss, SeqXent};
use ringnn_core::optim::{Schedule, Sgd};
use ringnn_core::softmax::Softmax;
use ringnn_core::{Engine, Float, Plain};
use serde::Serialize;
use std::path::PathBuf;

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
    /// What went wrong in the arithmetic (Plain runs).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub health: Option<RunHealth>,
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
    let corpus = load_corpus(cfg, dims)?;
    train_on_corpus(cfg, sigmoid, dims, corpus, "tatoeba")
}

/// The Tatoeba corpus of the data directory (`cfg.data_dir`, else `RINGNN_DATA`).
///
/// # Errors
/// No data directory, or bad data.
pub fn load_corpus(cfg: &TrainConfig, dims: Seq2SeqDims) -> Result<Corpus, TrainError> {
    let dir = data::data_dir(cfg.data_dir.as_deref()).ok_or_else(|| {
        TrainError::Config(
            "--model seq2seq trains on Tatoeba and needs a data directory holding \
             tatoeba/eng-fra_first5000.txt: pass --data-dir DIR or set RINGNN_DATA"
                .into(),
        )
    })?;
    Ok(text::load_tatoeba(&dir, &dims.text)?)
}

/// `corpus` cut to `cfg.train_limit` and `cfg.test_limit` pairs.
///
/// # Errors
/// An empty training or test set.
pub fn limit_corpus(cfg: &TrainConfig, mut corpus: Corpus) -> Result<Corpus, TrainError> {
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
    Ok(corpus)
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
    corpus: Corpus,
    data: &str,
) -> Result<Seq2SeqResult, TrainError> {
    check_config(cfg, dims)?;
    let corpus = limit_corpus(cfg, corpus)?;
    let model = Seq2Seq {
        src_vocab: corpus.src_vocab.len(),
        tgt_vocab: corpus.tgt_vocab.len(),
        embed: dims.embed,
        hidden: dims.hidden,
        sigmoid,
        tanh: cfg.tanh,
    };
    match cfg.engine {
        // The owner's side of a two-party run reads the corpus from the data directory
        // itself (`mpc::owner::share_job`), in another process than the servers.
        EngineKind::Mpc => Err(TrainError::Config(
            "seq2seq on --engine mpc runs through ringnn_host::train::train (two server \
             processes and a dealer), which shares the corpus of the data directory; this \
             function trains in this process on plain or float"
                .into(),
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

/// `cfg`'s schedule ([`TrainConfig::validate_schedule`]; the corpus may be any, so not the
/// whole validation) and the model's sizes.
fn check_config(cfg: &TrainConfig, dims: Seq2SeqDims) -> Result<(), TrainError> {
    cfg.validate_schedule()?;
    if dims.embed == 0 || dims.hidden == 0 {
        return Err(TrainError::Config(
            "seq2seq: the embedding and hidden sizes must be at least 1".into(),
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

/// The checkpoint header of a seq2seq run on engine `kind` (`plain`, `float`, `mpc-p0`,
/// `mpc-p1`).
pub(crate) fn header(
    cfg: &TrainConfig,
    model: &Seq2Seq,
    kind: &str,
    data: &str,
    n_train: usize,
) -> Header {
    Header {
        model: "seq2seq".into(),
        data: data.into(),
        engine: kind.into(),
        frac_bits: if cfg.engine != EngineKind::Float {
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

/// A batch of sentence pairs as a training step takes it: public token ids that the
/// model one-hot encodes inside the engine ([`SeqBatch`], the plaintext runs), or tokens
/// and masks already inside it ([`SharedBatch`], the two servers' shares).
pub(crate) trait SeqInput<E: Engine> {
    /// Its sizes.
    fn steps(&self) -> Steps;

    /// Its tokens and masks inside the engine (a shared batch hands its own over).
    ///
    /// # Errors
    /// What the engine reports.
    fn inputs(&mut self, e: &mut E, model: &Seq2Seq) -> Result<Inputs<E::Elem>, E::Error>;

    /// What a training step returns from the softmax `p` (`tgt_steps * batch x V_t`).
    fn observed(&self, model: &Seq2Seq, p: Vec<E::Elem>) -> Vec<E::Elem>;
}

impl<E: Engine> SeqInput<E> for SeqBatch {
    fn steps(&self) -> Steps {
        SeqBatch::steps(self)
    }

    fn inputs(&mut self, e: &mut E, model: &Seq2Seq) -> Result<Inputs<E::Elem>, E::Error> {
        model.inputs(e, self)
    }

    /// The probability of each target token (time-major, padding included): the ids are
    /// public, so picking is free.
    fn observed(&self, model: &Seq2Seq, p: Vec<E::Elem>) -> Vec<E::Elem> {
        model.pick(&p, &self.dec_out)
    }
}

/// A batch whose tokens and masks are already inside the engine (on two servers, their
/// shares): only its sizes are public.
pub(crate) struct SharedBatch<T> {
    /// Its sizes.
    pub steps: Steps,
    /// Tokens and masks.
    pub inputs: Inputs<T>,
}

impl<E: Engine> SeqInput<E> for SharedBatch<E::Elem> {
    fn steps(&self) -> Steps {
        self.steps
    }

    fn inputs(&mut self, _: &mut E, _: &Seq2Seq) -> Result<Inputs<E::Elem>, E::Error> {
        Ok(std::mem::take(&mut self.inputs))
    }

    /// The whole softmax: picking the targets would take a product on shares, and no one
    /// looks at it during two-party training.
    fn observed(&self, _: &Seq2Seq, p: Vec<E::Elem>) -> Vec<E::Elem> {
        p
    }
}

/// The encoder-decoder in training: its parameters, momentum and working buffers, one
/// gradient and one SGD step per batch of sentence pairs (of kind `B`).
pub(crate) struct Learner<'m, E: Engine, B = SeqBatch> {
    model: &'m Seq2Seq,
    loss: SeqXent,
    sgd: Sgd,
    sched: Schedule,
    base_lr: f64,
    /// Parameters, in [`Seq2Seq`]'s layout.
    pub params: Vec<E::Elem>,
    /// SGD momentum.
    pub velocity: Vec<E::Elem>,
    grads: Vec<E::Elem>,
    scratch: Vec<E::Elem>,
    /// Steps done.
    pub step: u64,
    batch: std::marker::PhantomData<B>,
}

impl<'m, E: Engine, B> Learner<'m, E, B> {
    /// `model` at `params` with zero momentum, before its first step, for a run of
    /// `total_steps` steps as `cfg` says (softmax, gradient, optimiser, schedule).
    pub(crate) fn new(
        cfg: &TrainConfig,
        model: &'m Seq2Seq,
        total_steps: u64,
        params: Vec<E::Elem>,
    ) -> Self {
        let n = model.n_params();
        Learner {
            model,
            loss: SeqXent::new(training_softmax(cfg), cfg.grad),
            sgd: Sgd {
                momentum: cfg.momentum,
                weight_decay: cfg.weight_decay,
            },
            sched: cfg.lr_schedule(total_steps),
            base_lr: cfg.lr,
            params,
            velocity: vec![E::Elem::default(); n],
            grads: vec![E::Elem::default(); n],
            scratch: Vec::new(),
            step: 0,
            batch: std::marker::PhantomData,
        }
    }
}

impl<E: Engine, B: SeqInput<E>> epochs::Learner<E> for Learner<'_, E, B> {
    type Batch = B;

    /// Returns [`SeqInput::observed`] of the step's softmax.
    fn train_step(&mut self, e: &mut E, b: &mut B) -> Result<Vec<E::Elem>, E::Error> {
        let inp = b.inputs(e, self.model)?;
        let p = self.model.gradient_of(
            e,
            self.loss,
            &self.params,
            b.steps(),
            &inp,
            &mut self.grads,
            &mut self.scratch,
        )?;
        drop(inp);
        let pt = b.observed(self.model, p);
        let batch = b.steps().batch;
        let lr = self.sched.rate(self.base_lr, self.step);
        let n = self.params.len();
        self.sgd.step(
            e,
            &mut self.params,
            &self.grads,
            &mut self.velocity,
            lr,
            batch,
            grow(&mut self.scratch, n),
        )?;
        self.step += 1;
        Ok(pt)
    }

    fn steps_done(&self) -> u64 {
        self.step
    }

    fn rate_at(&self, step: u64) -> f64 {
        self.sched.rate(self.base_lr, step)
    }

    fn state_bits(&self, to_bits: &dyn Fn(E::Elem) -> u64) -> State {
        State {
            params: self.params.iter().map(|&v| to_bits(v)).collect(),
            velocity: self.velocity.iter().map(|&v| to_bits(v)).collect(),
            buffers: Vec::new(),
        }
    }
}

/// Sentence pairs, batched as public token ids (the model one-hot encodes them inside
/// the engine).
struct Pairs<'c>(&'c [Pair]);

impl<E: Engine> Source<E, SeqBatch> for Pairs<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn batch(
        &self,
        _: &mut E,
        idx: &[usize],
        _: Option<&mut rand_chacha::ChaCha8Rng>,
    ) -> Result<SeqBatch, TrainError> {
        let pairs: Vec<&Pair> = idx.iter().map(|&i| &self.0[i]).collect();
        Ok(SeqBatch::new(&pairs))
    }
}

/// What a plaintext seq2seq run sees: the revealed probability of each target token for
/// the training loss, a progress bar, and each epoch the test perplexity, token accuracy
/// and (with progress) a few translations.
struct Reveal<'a> {
    cfg: &'a TrainConfig,
    corpus: &'a Corpus,
    sm: Softmax,
    max_steps: usize,
    progress: Progress,
    loss_sum: f64,
    tokens: usize,
    /// Target tokens whose probability was 0 (floored in the loss), over the run.
    at_floor: u64,
    history: Vec<Seq2SeqEpoch>,
    test: (f64, f64),
}

impl<'m, E: HostEngine> Observer<E, Learner<'m, E>> for Reveal<'_>
where
    TrainError: From<E::Error>,
{
    type Error = TrainError;

    fn start_epoch(&mut self, epoch: usize, samples: usize) {
        self.progress.start(self.cfg, epoch, samples);
        (self.loss_sum, self.tokens) = (0.0, 0);
    }

    fn after_step(
        &mut self,
        e: &mut E,
        _: &[usize],
        b: &SeqBatch,
        pt: Vec<E::Elem>,
    ) -> Result<(), TrainError> {
        let pt = e.reveal(&pt)?;
        for (&p, &m) in pt.iter().zip(&b.tgt_mask) {
            if m {
                self.at_floor += (p <= 0.0) as u64;
                self.loss_sum -= p.max(1e-12).ln();
            }
        }
        self.tokens += b.tokens();
        let loss = self.loss_sum / self.tokens as f64;
        self.progress.advance(b.batch, |rate| {
            format!("loss {loss:.4} ppl {:.2} {rate:.0} pairs/s", loss.exp())
        });
        Ok(())
    }

    fn end_epoch(
        &mut self,
        e: &mut E,
        t: &mut Learner<'m, E>,
        epoch: usize,
        secs: f64,
    ) -> Result<(), TrainError> {
        self.progress.finish(secs);
        let train_loss = self.loss_sum / self.tokens.max(1) as f64;
        self.test = evaluate(
            e,
            t.model,
            self.sm,
            &t.params,
            &self.corpus.test,
            self.cfg.batch,
            &mut t.scratch,
        )?;
        let stats = Seq2SeqEpoch {
            epoch: epoch + 1,
            train_loss,
            train_perplexity: train_loss.exp(),
            test_loss: self.test.0,
            test_perplexity: self.test.0.exp(),
            test_token_accuracy: self.test.1,
            seconds: secs,
        };
        if self.cfg.progress {
            eprintln!(
                "epoch {}/{}: loss {:.4}, train perplexity {:.2}, test perplexity {:.2}, \
                 test token accuracy {:.2}%, {:.0} pairs/s",
                stats.epoch,
                self.cfg.epochs,
                stats.train_loss,
                stats.train_perplexity,
                stats.test_perplexity,
                100.0 * stats.test_token_accuracy,
                self.progress.seen as f64 / secs.max(1e-9)
            );
            let shown = translations(
                e,
                t.model,
                self.corpus,
                &t.params,
                self.max_steps,
                &mut t.scratch,
            )?;
            for t in shown {
                eprintln!(
                    "  {} => {} (reference: {})",
                    t.source, t.output, t.reference
                );
            }
        }
        self.history.push(stats);
        Ok(())
    }
}

fn run_engine<E: HostEngine>(
    mut e: E,
    cfg: &TrainConfig,
    model: &Seq2Seq,
    corpus: &Corpus,
    data: &str,
) -> Result<Seq2SeqResult, TrainError>
where
    TrainError: From<E::Error>,
{
    let n_train = corpus.train.len();
    let n_params = model.n_params();
    let steps_per_epoch = n_train.div_ceil(cfg.batch) as u64;
    let expected = header(cfg, model, e.kind(), data, n_train);
    let sm = training_softmax(cfg);
    let params = e.input("initial parameters", &model.init(cfg.seed))?;
    let mut t = Learner::new(cfg, model, steps_per_epoch * cfg.epochs as u64, params);
    let mut from_epoch = 0usize;
    if let Some((h, st)) = resume_from(cfg, &expected)? {
        t.params = elems::<E>(&st.params);
        t.velocity = elems::<E>(&st.velocity);
        from_epoch = h.epochs_done;
        t.step = h.steps_done;
    }
    let max_steps = corpus
        .train
        .iter()
        .chain(&corpus.test)
        .map(|p| p.tgt.len())
        .max()
        .unwrap_or(0)
        + 1;
    let mut obs = Reveal {
        cfg,
        corpus,
        sm,
        max_steps,
        progress: Progress::new(),
        loss_sum: 0.0,
        tokens: 0,
        at_floor: 0,
        history: Vec::new(),
        test: (f64::NAN, f64::NAN),
    };
    let plan = Plan {
        seed: cfg.seed,
        epochs: cfg.epochs,
        batch: cfg.batch,
        augment: false,
        from_epoch,
        checkpoint: cfg.checkpoint.as_deref().map(|d| (d, &expected)),
    };
    let last_ckpt = run_epochs(
        &mut e,
        &mut t,
        &Pairs(&corpus.train),
        &plan,
        &mut obs,
        E::to_bits,
    )?;
    let last_loss = obs.history.last().map_or(f64::NAN, |h| h.train_loss);
    let mut test = obs.test;
    if from_epoch >= cfg.epochs {
        test = evaluate(
            &mut e,
            model,
            sm,
            &t.params,
            &corpus.test,
            cfg.batch,
            &mut t.scratch,
        )?;
    }
    let translations = translations(&mut e, model, corpus, &t.params, max_steps, &mut t.scratch)?;
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
        train_seconds: obs.progress.seconds,
        samples_per_sec: obs.progress.rate(),
        overflow_count: e.overflow_count(),
        health: RunHealth::of(e.health(), obs.at_floor, None),
        parameters: n_params,
        src_vocab: model.src_vocab,
        tgt_vocab: model.tgt_vocab,
        embed: model.embed,
        hidden: model.hidden,
        history: obs.history,
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
            health: r.health,
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
            // Perplexity, not accuracy at chance, tells a sequence model's failure.
            diverged: !r.perplexity.is_finite(),
            mpc: None,
        }
    }
}

#[cfg(test)]
mod mpc_tests;
#[cfg(test)]
mod tests;
