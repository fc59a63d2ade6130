//! The training loop.
//!
//! Each step: the batch's images and one-hot labels enter the engine; the network runs
//! forward (training mode); softmax cross-entropy with the chosen e^x approximation gives
//! the gradient of the logits in the chosen mode; the network runs backward; one SGD step
//! updates every parameter. The loss and training accuracy are computed from the revealed
//! probabilities on plaintext engines only. Every epoch ends with a test pass in
//! evaluation mode and, when asked, a checkpoint.

use super::checkpoint::{self, Header, State};
use super::config::{DataKind, EngineKind, TrainConfig};
use super::engine::{BoundaryError, HostEngine};
use super::epochs::{run_epochs, DatasetSource, Observer, Plan, Progress, Source};
use super::model::{self, Net};
use crate::data::{self, Dataset, Split};
use crate::gemm;
use ringnn_core::layers::Image;
use ringnn_core::{Float, Plain};

pub(crate) use super::epochs::Batch;
pub use super::error::TrainError;
pub use super::result::{EpochStats, RunHealth, TrainResult};
pub(crate) use super::trainer::{batch_parts, probabilities, training_softmax, Trainer};

pub(crate) fn load_data(cfg: &TrainConfig) -> Result<Split, TrainError> {
    let dir = data::data_dir(cfg.data_dir.as_deref());
    let need_dir = |what: &str| {
        dir.clone().ok_or_else(|| {
            TrainError::Config(format!(
                "--data {what} needs a data directory: pass --data-dir DIR or set RINGNN_DATA"
            ))
        })
    };
    let mut split = match cfg.data {
        DataKind::Synthetic => {
            let train = cfg.train_limit.unwrap_or(60_000);
            let test = cfg.test_limit.unwrap_or(10_000);
            data::synth::synthetic_digits(train, test, cfg.seed)
        }
        DataKind::Tatoeba => {
            return Err(TrainError::Config(
                "--data tatoeba is for --model seq2seq (image models need synthetic, mnist, cifar10 or cifar100)".into(),
            ))
        }
        DataKind::Mnist => data::idx::load_mnist(&need_dir("mnist")?)?,
        DataKind::Cifar10 => data::cifar::load_cifar10(&need_dir("cifar10")?)?,
        DataKind::Cifar100 => {
            data::cifar::load_cifar100(&need_dir("cifar100")?, data::cifar::Cifar100Labels::Fine)?
        }
    };
    if let Some(n) = cfg.train_limit {
        truncate(&mut split.train, n);
    }
    if let Some(n) = cfg.test_limit {
        truncate(&mut split.test, n);
    }
    if split.train.is_empty() || split.test.is_empty() {
        return Err(TrainError::Config(
            "the training or test set is empty".into(),
        ));
    }
    data::normalise(&mut split);
    Ok(split)
}

fn truncate(d: &mut Dataset, n: usize) {
    if n < d.len() {
        d.images.truncate(n * d.shape.len());
        d.labels.truncate(n);
    }
}

/// Trains an image model on a plaintext engine (`Plain` or `Float`) as `cfg` says;
/// [`crate::train::train`] dispatches here.
pub(crate) fn train_plaintext(cfg: &TrainConfig) -> Result<TrainResult, TrainError> {
    let split = load_data(cfg)?;
    let s = split.train.shape;
    let input = Image {
        batch: 1,
        channels: s.channels,
        height: s.height,
        width: s.width,
    };
    let net =
        model::build(cfg.model.name(), input, split.train.classes).map_err(TrainError::Config)?;
    if cfg.engine == EngineKind::Float {
        let e = Float::<f32>::new().with_matmul(gemm::matmul_f32);
        run_engine(e, cfg, &net, &split)
    } else {
        let e = Plain::new(cfg.frac_bits).with_matmul(gemm::matmul_z64);
        run_engine(e, cfg, &net, &split)
    }
}

pub(crate) fn header(cfg: &TrainConfig, net: &Net, kind: &str, train_samples: usize) -> Header {
    Header {
        model: net.name.clone(),
        data: cfg.data.name().into(),
        engine: kind.into(),
        frac_bits: if cfg.engine != EngineKind::Float {
            cfg.frac_bits.get()
        } else {
            0
        },
        exp: cfg.exp.name().into(),
        grad: cfg.grad.name().into(),
        n_params: net.n_params,
        n_buffers: net.n_buffers,
        epochs_done: 0,
        steps_done: 0,
        seed: cfg.seed,
        train_samples,
        run: None,
        attempt: None,
    }
}

/// With `--resume`, the checkpoint in `--checkpoint DIR`, loaded and checked against this
/// run's header; `None` without `--resume`. The folder is created first, so that one that
/// cannot be is an error before any training, not after the first epoch.
pub(crate) fn resume_from(
    cfg: &TrainConfig,
    expected: &Header,
) -> Result<Option<(Header, State)>, TrainError> {
    if let Some(dir) = &cfg.checkpoint {
        std::fs::create_dir_all(dir).map_err(|source| checkpoint::CheckpointError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    if !cfg.resume {
        return Ok(None);
    }
    let dir = cfg
        .checkpoint
        .as_deref()
        .ok_or_else(|| TrainError::Config("--resume needs --checkpoint DIR".into()))?;
    let found = checkpoint::load_all(dir);
    if !found.any() {
        eprintln!(
            "--resume: no checkpoint in {} yet: starting from epoch 0",
            dir.display()
        );
        return Ok(None);
    }
    for e in &found.damaged {
        eprintln!("--resume: skipping a damaged checkpoint: {e}");
    }
    // The newest file that verifies and belongs to this run. A plaintext run is
    // deterministic, so an older epoch resumes to the same final result.
    let mut mismatch = None;
    for (h, st, path) in found.verified {
        match checkpoint::check_matches(&h, expected, &path) {
            Ok(()) => return Ok(Some((h, st))),
            Err(e) => mismatch = mismatch.or(Some(e)),
        }
    }
    Err(match (mismatch, found.damaged.into_iter().next()) {
        (Some(e), _) | (None, Some(e)) => e.into(),
        (None, None) => unreachable!("any() said a file exists"),
    })
}

/// Engine elements from a checkpoint's raw bits.
pub(crate) fn elems<E: HostEngine>(bits: &[u64]) -> Vec<E::Elem> {
    bits.iter().map(|&b| E::from_bits(b)).collect()
}

pub(crate) fn argmax(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

pub(crate) fn engine_err<E: std::fmt::Debug>(e: E) -> TrainError {
    TrainError::Boundary(BoundaryError::Engine(format!("{e:?}")))
}

/// Test accuracy in evaluation mode (plaintext engines: the logits are revealed). A network
/// without batch statistics runs in parts of `batch` (as [`batch_parts`] cuts it) on the
/// rayon pool, each on a fork of `e`: its logits are per sample, so the parts change no
/// bit of them on `Plain`. Other networks run batch by batch.
fn evaluate<E: HostEngine + Send>(
    e: &mut E,
    t: &mut Trainer<'_, E>,
    d: &Dataset,
    batch: usize,
) -> Result<f64, TrainError>
where
    E::Elem: Send + Sync,
    E::Error: Send,
{
    let net = t.net;
    let classes = net.classes;
    let sm = t.sm;
    let idx: Vec<usize> = (0..d.len()).collect();
    let count = |out: &[f64], chunk: &[usize]| {
        chunk
            .iter()
            .enumerate()
            .filter(|&(r, &i)| argmax(&out[r * classes..(r + 1) * classes]) == d.labels[i] as usize)
            .count()
    };
    let mut correct = 0usize;
    if !net.splits_exactly() {
        for chunk in idx.chunks(batch) {
            let (x, _) = Source::<E>::batch(&DatasetSource(d), e, chunk, None)?;
            let logits = t.logits(e, x, chunk.len()).map_err(engine_err)?;
            let p = probabilities(e, sm, &logits, chunk.len(), classes).map_err(engine_err)?;
            correct += count(&e.reveal(&p)?, chunk);
        }
        return Ok(correct as f64 / d.len() as f64);
    }
    use rayon::prelude::*;
    let per = batch.div_ceil(batch_parts::<E>(net, batch)).max(1);
    let chunks: Vec<&[usize]> = idx.chunks(per).collect();
    let forks: Vec<E> = chunks.iter().map(|_| e.fork()).collect();
    let params = &t.params;
    let parts: Vec<Result<(usize, E), TrainError>> = chunks
        .into_par_iter()
        .zip(forks)
        .map(|(chunk, mut fe)| {
            gemm::serial(|| {
                let (x, _) = Source::<E>::batch(&DatasetSource(d), &mut fe, chunk, None)?;
                let mut scratch = Vec::new();
                let logits = model::forward(
                    &mut fe,
                    &net.nodes,
                    x,
                    chunk.len(),
                    params,
                    &mut [],
                    None,
                    &mut scratch,
                )
                .map_err(engine_err)?;
                let p = probabilities(&mut fe, sm, &logits, chunk.len(), classes)
                    .map_err(engine_err)?;
                let c = count(&fe.reveal(&p)?, chunk);
                Ok((c, fe))
            })
        })
        .collect();
    for part in parts {
        let (c, fe) = part?;
        e.join(&fe);
        correct += c;
    }
    Ok(correct as f64 / d.len() as f64)
}

/// What a plaintext run sees: every batch's probabilities revealed for the loss and
/// training accuracy, a progress bar, and the test accuracy after each epoch.
struct Reveal<'a> {
    cfg: &'a TrainConfig,
    labels: &'a [u8],
    test: &'a Dataset,
    net: &'a Net,
    eval_batch: usize,
    progress: Progress,
    loss_sum: f64,
    correct: usize,
    /// Samples whose label probability was 0 (floored in the loss), over the run.
    at_floor: u64,
    /// The mean loss of this invocation's first batch (NaN before it).
    start_loss: f64,
    /// Training steps seen, and the first health counter to fire with its step.
    steps: u64,
    first: Option<(&'static str, u64)>,
    history: Vec<EpochStats>,
}

impl<'n, E: HostEngine + Send> Observer<E, Trainer<'n, E>> for Reveal<'_>
where
    E::Elem: Send + Sync,
    E::Error: Send,
    TrainError: From<E::Error>,
{
    type Error = TrainError;

    fn start_epoch(&mut self, epoch: usize, samples: usize) {
        self.progress.start(self.cfg, epoch, samples);
        (self.loss_sum, self.correct) = (0.0, 0);
    }

    fn step(
        &mut self,
        e: &mut E,
        t: &mut Trainer<'n, E>,
        _: &[usize],
        (x, y): &mut Batch<E::Elem>,
    ) -> Result<Vec<E::Elem>, TrainError> {
        let b = y.len() / self.net.classes;
        t.step_split(e, std::mem::take(x), y, b, batch_parts::<E>(self.net, b))
            .map_err(engine_err)
    }

    fn after_step(
        &mut self,
        e: &mut E,
        idx: &[usize],
        _: &Batch<E::Elem>,
        p: Vec<E::Elem>,
    ) -> Result<(), TrainError> {
        let probs = e.reveal(&p)?;
        let classes = self.net.classes;
        let before = self.loss_sum;
        for (r, &i) in idx.iter().enumerate() {
            let row = &probs[r * classes..(r + 1) * classes];
            let label = self.labels[i] as usize;
            self.at_floor += (row[label] <= 0.0) as u64;
            self.loss_sum -= row[label].max(1e-12).ln();
            self.correct += (argmax(row) == label) as usize;
        }
        self.steps += 1;
        if self.first.is_none() {
            self.first = RunHealth::of(e.health(), self.at_floor, None)
                .and_then(|h| h.fired())
                .map(|name| (name, self.steps));
        }
        if self.start_loss.is_nan() && !idx.is_empty() {
            self.start_loss = (self.loss_sum - before) / idx.len() as f64;
        }
        let (loss, correct) = (self.loss_sum, self.correct);
        let seen = self.progress.seen + idx.len();
        self.progress.advance(idx.len(), |rate| {
            format!(
                "loss {:.4} acc {:.2}% {rate:.0} samples/s",
                loss / seen as f64,
                100.0 * correct as f64 / seen as f64,
            )
        });
        Ok(())
    }

    fn end_epoch(
        &mut self,
        e: &mut E,
        t: &mut Trainer<'n, E>,
        epoch: usize,
        secs: f64,
    ) -> Result<(), TrainError> {
        self.progress.finish(secs);
        let seen = self.progress.seen;
        let stats = EpochStats {
            epoch: epoch + 1,
            train_loss: self.loss_sum / seen as f64,
            train_accuracy: self.correct as f64 / seen as f64,
            test_accuracy: evaluate(e, t, self.test, self.eval_batch)?,
            seconds: secs,
        };
        if self.cfg.progress {
            eprintln!(
                "epoch {}/{}: loss {:.4}, train accuracy {:.2}%, test accuracy {:.2}%, {:.0} samples/s",
                stats.epoch,
                self.cfg.epochs,
                stats.train_loss,
                100.0 * stats.train_accuracy,
                100.0 * stats.test_accuracy,
                seen as f64 / secs.max(1e-9)
            );
        }
        self.history.push(stats);
        Ok(())
    }
}

fn run_engine<E: HostEngine + Send>(
    mut e: E,
    cfg: &TrainConfig,
    net: &Net,
    split: &Split,
) -> Result<TrainResult, TrainError>
where
    E::Elem: Send + Sync,
    E::Error: Send,
    TrainError: From<E::Error>,
{
    let n_train = split.train.len();
    let steps_per_epoch = n_train.div_ceil(cfg.batch) as u64;
    let expected = header(cfg, net, e.kind(), n_train);
    let (p0, b0) = net.init(cfg.seed);
    let params = e.input("initial parameters", &p0)?;
    let buffers = e.input("initial buffers", &b0)?;
    let mut t = Trainer::new(
        cfg,
        net,
        steps_per_epoch * cfg.epochs as u64,
        params,
        buffers,
    )?;
    let mut from_epoch = 0usize;
    if let Some((h, st)) = resume_from(cfg, &expected)? {
        t.restore(&st, h.steps_done, E::from_bits);
        from_epoch = h.epochs_done;
    }
    let eval_batch = cfg.batch.max(256);
    let mut obs = Reveal {
        cfg,
        labels: &split.train.labels,
        test: &split.test,
        net,
        eval_batch,
        progress: Progress::new(),
        loss_sum: 0.0,
        correct: 0,
        at_floor: 0,
        start_loss: f64::NAN,
        steps: 0,
        first: None,
        history: Vec::new(),
    };
    let plan = Plan {
        seed: cfg.seed,
        epochs: cfg.epochs,
        batch: cfg.batch,
        augment: cfg.data.augments(),
        from_epoch,
        checkpoint: cfg.checkpoint.as_deref().map(|d| (d, &expected)),
    };
    let last_ckpt = run_epochs(
        &mut e,
        &mut t,
        &DatasetSource(&split.train),
        &plan,
        &mut obs,
        E::to_bits,
    )?;
    let (test_accuracy, last_loss) = match obs.history.last() {
        Some(h) => (h.test_accuracy, h.train_loss),
        None => (evaluate(&mut e, &mut t, &split.test, eval_batch)?, f64::NAN),
    };
    Ok(TrainResult {
        model: net.name.clone(),
        data: cfg.data.name().into(),
        engine: e.kind().into(),
        frac_bits: (cfg.engine == EngineKind::Plain).then(|| cfg.frac_bits.get()),
        exp: cfg.exp.name().into(),
        tanh: None,
        grad: cfg.grad.name().into(),
        subtract_max: t.sm.subtract_max,
        epochs: cfg.epochs,
        train_samples: n_train,
        test_samples: split.test.len(),
        test_accuracy,
        perplexity: None,
        train_loss: last_loss,
        train_seconds: obs.progress.seconds,
        samples_per_sec: obs.progress.rate(),
        overflow_count: e.overflow_count(),
        health: RunHealth::of(e.health(), obs.at_floor, obs.first),
        parameters: net.n_params,
        diverged: super::result::diverged(test_accuracy, net.classes, last_loss, obs.start_loss),
        history: obs.history,
        checkpoint: last_ckpt,
        mpc: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::model::build;
    use rand::Rng;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use ringnn_core::approx::ExpApprox;
    use ringnn_core::approx::{SigmoidApprox, TanhApprox};
    use ringnn_core::layers::Image;
    use ringnn_core::softmax::GradMode;
    use ringnn_core::Engine;
    use ringnn_core::{FracBits, Z64};

    pub(super) fn config() -> TrainConfig {
        TrainConfig {
            model: "lenet".parse().unwrap(),
            data: DataKind::Synthetic,
            data_dir: None,
            engine: EngineKind::Plain,
            frac_bits: FracBits::new(13).unwrap(),
            exp: ExpApprox::Pwl(4),
            tanh: TanhApprox::Exact,
            sigmoid: SigmoidApprox::SecureMl,
            grad: GradMode::Exact,
            subtract_max: false,
            epochs: 1,
            batch: 11,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: "constant".parse().unwrap(),
            seed: 1,
            train_limit: None,
            test_limit: None,
            checkpoint: None,
            resume: false,
            progress: false,
            insecure_dealer_seed: None,
            comparison: Default::default(),
        }
    }

    /// Images in [0, 1) and one-hot labels for `b` samples of `net`'s input.
    fn batch(net: &Net, b: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = (0..b * net.input.len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let mut y = vec![0.0; b * net.classes];
        for r in 0..b {
            y[r * net.classes + rng.random_range(0..net.classes)] = 1.0;
        }
        (x, y)
    }

    fn pool() -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
    }

    /// Two steps on a batch of 11 or 16 split into 2, 3, 5 and 11 parts (of unequal sizes;
    /// 11 of 11 is one sample each, and 40 is clamped to the batch) give the whole batch's probabilities,
    /// parameters, velocities and overflow count, bit for bit.
    #[test]
    fn split_steps_equal_whole_steps_bit_for_bit_on_plain() {
        let cfg = config();
        for model in ["mlp", "lenet"] {
            let net = build(model, Image::new(1, 1, 28, 28), 10).unwrap();
            assert!(net.splits_exactly());
            // 11: the weight gradients rescaled before the update; 16: unscaled into it.
            for b in [11usize, 16] {
                let (p0, b0) = net.init(3);
                let (x, y) = batch(&net, b, 4);
                let engine = || Plain::new(cfg.frac_bits).with_matmul(gemm::matmul_z64);
                let mut e = engine();
                let (params, buffers) = (e.input("p", &p0).unwrap(), e.input("b", &b0).unwrap());
                let (xs, ys) = (e.input("x", &x).unwrap(), e.input("y", &y).unwrap());
                let mut whole =
                    Trainer::new(&cfg, &net, 2, params.clone(), buffers.clone()).unwrap();
                let probs: Vec<Vec<Z64>> = (0..2)
                    .map(|_| whole.step(&mut e, xs.clone(), &ys, b).unwrap())
                    .collect();
                for parts in [2, 3, 5, 11, 40] {
                    let mut es = engine();
                    let mut t =
                        Trainer::new(&cfg, &net, 2, params.clone(), buffers.clone()).unwrap();
                    for (s, want) in probs.iter().enumerate() {
                        let got = pool()
                            .install(|| t.step_split(&mut es, xs.clone(), &ys, b, parts))
                            .unwrap();
                        assert_eq!(
                            &got, want,
                            "{model}, b = {b}, {parts} parts, step {s}: probabilities"
                        );
                    }
                    assert_eq!(t.params, whole.params, "{model}, {parts} parts: parameters");
                    assert_eq!(
                        t.velocity, whole.velocity,
                        "{model}, {parts} parts: velocity"
                    );
                    assert_eq!(
                        es.overflow_count(),
                        e.overflow_count(),
                        "{model}: overflows"
                    );
                }
            }
        }
    }

    /// Forks count their own overflows and `join` hands them back: a batch whose inputs
    /// overflow the fixed-point products reports the same count split or whole.
    #[test]
    fn split_steps_count_every_overflow() {
        let cfg = config();
        let net = build("mlp", Image::new(1, 1, 28, 28), 10).unwrap();
        let b = 6;
        let (p0, b0) = net.init(3);
        let (mut x, y) = batch(&net, b, 5);
        // Huge inputs: the products that follow (scalings of wrapped gradients by the
        // learning rate and the like) leave the 64-bit range.
        for v in x.iter_mut().step_by(7) {
            *v = 1.0e12;
        }
        let engine = || Plain::new(cfg.frac_bits).with_matmul(gemm::matmul_z64);
        let mut e = engine();
        let (params, buffers) = (e.input("p", &p0).unwrap(), e.input("b", &b0).unwrap());
        let (xs, ys) = (e.input("x", &x).unwrap(), e.input("y", &y).unwrap());
        let mut whole = Trainer::new(&cfg, &net, 1, params.clone(), buffers.clone()).unwrap();
        whole.step(&mut e, xs.clone(), &ys, b).unwrap();
        let mut es = engine();
        let mut t = Trainer::new(&cfg, &net, 1, params, buffers).unwrap();
        pool()
            .install(|| t.step_split(&mut es, xs, &ys, b, 3))
            .unwrap();
        assert!(e.overflow_count() > 0, "the inputs should overflow");
        assert_eq!(es.overflow_count(), e.overflow_count());
        assert_eq!(t.params, whole.params);
    }

    /// On `Float` the parts change only the summation order: parameters agree with the
    /// whole batch's to float rounding.
    #[test]
    fn split_steps_on_float_match_whole_steps_to_rounding() {
        let cfg = config();
        let net = build("lenet", Image::new(1, 1, 28, 28), 10).unwrap();
        let b = 9;
        let (p0, b0) = net.init(3);
        let (x, y) = batch(&net, b, 6);
        let engine = || Float::<f32>::new().with_matmul(gemm::matmul_f32);
        let mut e = engine();
        let (params, buffers) = (e.input("p", &p0).unwrap(), e.input("b", &b0).unwrap());
        let (xs, ys) = (e.input("x", &x).unwrap(), e.input("y", &y).unwrap());
        let mut whole = Trainer::new(&cfg, &net, 2, params.clone(), buffers.clone()).unwrap();
        let mut t = Trainer::new(&cfg, &net, 2, params, buffers).unwrap();
        let mut es = engine();
        for _ in 0..2 {
            whole.step(&mut e, xs.clone(), &ys, b).unwrap();
            pool()
                .install(|| t.step_split(&mut es, xs.clone(), &ys, b, 4))
                .unwrap();
        }
        // Parameters are O(0.1-1); f32 sums of nine samples in another order differ by a
        // few ulp of the largest term.
        for (i, (u, v)) in t.params.iter().zip(&whole.params).enumerate() {
            assert!(
                (u - v).abs() <= 1e-5 * (1.0 + v.abs()),
                "param {i}: {u} vs {v}"
            );
        }
        assert_ne!(
            t.params,
            params_unchanged(&net),
            "training moved the parameters"
        );
    }

    fn params_unchanged(net: &Net) -> Vec<f32> {
        net.init(3).0.iter().map(|&v| v as f32).collect()
    }

    /// A network with batch statistics is never split (its step is the whole batch's).
    #[test]
    fn batch_norm_networks_are_not_split() {
        let net = build("resnet20", Image::new(1, 3, 32, 32), 10).unwrap();
        assert!(!net.splits_exactly());
        let lenet = build("lenet", Image::new(1, 1, 28, 28), 10).unwrap();
        // LeNet: about 56,000 elements a sample, so 8-byte elements give 128 samples in
        // 14 parts of at most 4 MiB (and at least one part per thread).
        assert_eq!(lenet.elems_per_sample(), 55_570);
        let parts = pool().install(|| batch_parts::<Plain>(&lenet, 128));
        assert_eq!(parts, 14);
        let mlp = build("mlp", Image::new(1, 1, 28, 28), 10).unwrap();
        assert_eq!(pool().install(|| batch_parts::<Plain>(&mlp, 128)), 2);
        assert_eq!(pool().install(|| batch_parts::<Plain>(&mlp, 1)), 1);
    }
}

#[cfg(test)]
mod eval_tests {
    use super::*;
    use crate::train::model::build;
    use ringnn_core::approx::ExpApprox;
    use ringnn_core::layers::Image;

    /// Evaluation in parts on the pool counts exactly what whole batches count, for a
    /// trained-a-little LeNet on ringnn's own digits.
    #[test]
    fn parallel_evaluation_counts_what_whole_batches_count() {
        let split = data::synth::synthetic_digits(256, 203, 9);
        let net = build("lenet", Image::new(1, 1, 28, 28), 10).unwrap();
        let mut cfg = super::tests::config();
        cfg.lr = 0.02;
        let mut e = Plain::new(cfg.frac_bits).with_matmul(gemm::matmul_z64);
        let (p0, b0) = net.init(2);
        let (p, b) = (e.input("p", &p0).unwrap(), e.input("b", &b0).unwrap());
        let mut t = Trainer::new(&cfg, &net, 8, p, b).unwrap();
        let order: Vec<usize> = (0..256).collect();
        for chunk in order.chunks(32) {
            let (x, y) =
                Source::<Plain>::batch(&DatasetSource(&split.train), &mut e, chunk, None).unwrap();
            t.step(&mut e, x, &y, chunk.len()).unwrap();
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let parallel = pool
            .install(|| evaluate(&mut e, &mut t, &split.test, 64))
            .unwrap();
        let mut correct = 0;
        let idx: Vec<usize> = (0..split.test.len()).collect();
        for chunk in idx.chunks(64) {
            let (x, _) =
                Source::<Plain>::batch(&DatasetSource(&split.test), &mut e, chunk, None).unwrap();
            let logits = t.logits(&mut e, x, chunk.len()).unwrap();
            let out = e.reveal(&logits).unwrap();
            for (r, &i) in chunk.iter().enumerate() {
                correct +=
                    (argmax(&out[r * 10..(r + 1) * 10]) == split.test.labels[i] as usize) as usize;
            }
        }
        assert_eq!(parallel, correct as f64 / 203.0);
        assert!(
            correct > 30,
            "the network should have learned something: {correct}"
        );
    }

    /// The result, and its JSON line, say whether softmax subtracted the row maximum:
    /// always for exact e^x, otherwise as `--subtract-max` says.
    #[test]
    fn the_result_records_whether_the_row_maximum_was_subtracted() {
        for (exp, flag, shifted) in [
            (ExpApprox::Exact, false, true),
            (ExpApprox::Pwl(4), false, false),
            (ExpApprox::Pwl(4), true, true),
        ] {
            let cfg = TrainConfig {
                model: "mlp".parse().unwrap(),
                exp,
                subtract_max: flag,
                batch: 32,
                train_limit: Some(64),
                test_limit: Some(32),
                ..super::tests::config()
            };
            assert_eq!(training_softmax(&cfg).subtract_max, shifted);
            let r = crate::train::train(&cfg).unwrap();
            assert_eq!(r.subtract_max, shifted, "{exp:?}, --subtract-max {flag}");
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["subtract_max"], shifted, "{exp:?}, --subtract-max {flag}");
        }
    }

    /// Issue 13: a `Plain` run records its health. secureml's e^x is 0 (and so is its
    /// derivative) for logits at or below -1: labels sink to probability 0 and the exact
    /// gradient cannot lift them, which `label_at_floor` counts; exact e^x with the row
    /// maximum subtracted never leaves a label at 0 here. A float run records none.
    #[test]
    fn a_run_records_its_health_and_counts_labels_at_probability_zero() {
        let cfg = |exp, engine| TrainConfig {
            model: "mlp".parse().unwrap(),
            exp,
            engine,
            batch: 128,
            lr: 0.05,
            train_limit: Some(512),
            test_limit: Some(256),
            ..super::tests::config()
        };
        let bad = crate::train::train(&cfg(ExpApprox::SecureMl, EngineKind::Plain)).unwrap();
        let h = bad.health.clone().expect("a Plain run records its health");
        assert!(h.label_at_floor > 0, "{h:?}");
        // The first counter to fire, and when.
        assert!(h.first_fired.is_some() && h.first_fired_step.is_some_and(|s| s >= 1));
        // It does not learn (near chance: 12.9% since the SGD step of 2026-12-07 came from one opening, which
        // took it just above `diverged`'s 12.5%).
        assert!(bad.test_accuracy < 0.2, "{bad:?}");
        let v = serde_json::to_value(&bad).unwrap();
        assert_eq!(v["label_at_floor"], h.label_at_floor);
        assert_eq!(v["wrapped"], h.wrapped);
        let good = crate::train::train(&cfg(ExpApprox::Exact, EngineKind::Plain)).unwrap();
        let g = good.health.unwrap();
        assert_eq!(g.label_at_floor, 0);
        assert_eq!((g.fired(), g.first_fired.as_deref()), (None, None), "{g:?}");
        let float = crate::train::train(&cfg(ExpApprox::SecureMl, EngineKind::Float)).unwrap();
        assert_eq!(float.health, None);
        assert!(serde_json::to_value(&float)
            .unwrap()
            .get("wrapped")
            .is_none());
    }
}
