//! The epoch loop, written once for every execution.
//!
//! Each epoch draws its sample order (and augmentation) from the run's public seed,
//! brings each batch into the engine, runs one training step, and saves a checkpoint at
//! its end. What differs between models and executions is kept out of the loop:
//! - a `Learner` is the model in training: one step on a batch, and its state. The
//!   image networks (`Trainer`) and the encoder-decoder
//!   ([`super::seq2seq`]) are both learners.
//! - a `Source` gives the batches: plaintext datasets encode them
//!   (`DatasetSource`); a two-party server gathers its shares.
//! - an `Observer` sees what its execution may see. On a plaintext engine it reveals the
//!   probabilities for loss and accuracy, drives the progress bar and evaluates each
//!   epoch; on two servers it counts traffic, rounds and time and reveals nothing. It may
//!   also choose how a step runs (split over threads on a plaintext engine; announced to
//!   the dealer ahead on two servers).
//!
//! The `Plain` run and the two-party run of one configuration therefore draw the same
//! orders and crops, take the same steps and save at the same points.

use super::checkpoint::{self, Header, State};
use super::engine::HostEngine;
use super::error::TrainError;
use super::trainer::Trainer;
use crate::data::{self, Dataset};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use ringnn_core::Engine;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The epoch's generator (seeded by the run's seed and the epoch, so a resumed run draws
/// the same) and its shuffled sample order.
pub(crate) fn epoch_order(seed: u64, epoch: usize, n: usize) -> (ChaCha8Rng, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x5EED_0000 + epoch as u64));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    (rng, order)
}

/// A batch inside the engine: images and one-hot labels.
pub(crate) type Batch<T> = (Vec<T>, Vec<T>);

/// A model in training on engine `E`.
pub(crate) trait Learner<E: Engine> {
    /// What one step trains on.
    type Batch;

    /// One training step on `batch` (which it may empty); returns what an observer may
    /// look at (probabilities, inside the engine: shares on two servers).
    ///
    /// # Errors
    /// What the engine reports.
    fn train_step(&mut self, e: &mut E, batch: &mut Self::Batch) -> Result<Vec<E::Elem>, E::Error>;

    /// Optimiser steps done.
    fn steps_done(&self) -> u64;

    /// The learning rate of optimiser step `step` (0 for the first), as the schedule
    /// gives it: public, and what a two-party step's dealer requests carry
    /// ([`Request::TruncScaled`](crate::mpc::dealer::Request::TruncScaled)).
    fn rate_at(&self, step: u64) -> f64;

    /// The state as raw bits, for a checkpoint.
    fn state_bits(&self, to_bits: &dyn Fn(E::Elem) -> u64) -> State;
}

impl<E: Engine> Learner<E> for Trainer<'_, E> {
    type Batch = Batch<E::Elem>;

    fn train_step(
        &mut self,
        e: &mut E,
        batch: &mut Batch<E::Elem>,
    ) -> Result<Vec<E::Elem>, E::Error> {
        let b = batch.1.len() / self.net.classes;
        let x = std::mem::take(&mut batch.0);
        self.step(e, x, &batch.1, b)
    }

    fn steps_done(&self) -> u64 {
        self.step
    }

    fn rate_at(&self, step: u64) -> f64 {
        Trainer::rate_at(self, step)
    }

    fn state_bits(&self, to_bits: &dyn Fn(E::Elem) -> u64) -> State {
        self.state(to_bits)
    }
}

/// Where the batches come from.
pub(crate) trait Source<E: Engine, B = Batch<<E as Engine>::Elem>> {
    /// Training samples.
    fn len(&self) -> usize;

    /// The batch of samples `idx` (images and one-hot labels inside `e`, for the image
    /// networks); with `augment`, the images randomly cropped and flipped with it.
    ///
    /// # Errors
    /// A value that cannot enter the engine.
    fn batch(
        &self,
        e: &mut E,
        idx: &[usize],
        augment: Option<&mut ChaCha8Rng>,
    ) -> Result<B, TrainError>;
}

/// A plaintext dataset: each batch encoded as it is drawn.
pub(crate) struct DatasetSource<'d>(pub &'d Dataset);

impl<E: HostEngine> Source<E> for DatasetSource<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn batch(
        &self,
        e: &mut E,
        idx: &[usize],
        augment: Option<&mut ChaCha8Rng>,
    ) -> Result<Batch<E::Elem>, TrainError> {
        let d = self.0;
        let len = d.shape.len();
        let mut img: Vec<f32> = Vec::with_capacity(idx.len() * len);
        for &i in idx {
            img.extend_from_slice(d.image(i));
        }
        if let Some(rng) = augment {
            data::cifar::random_crop_flip(&mut img, d.shape, rng, 4);
        }
        let xs: Vec<f64> = img.iter().map(|&v| v as f64).collect();
        let mut onehot = vec![0.0; idx.len() * d.classes];
        for (r, &i) in idx.iter().enumerate() {
            onehot[r * d.classes + d.labels[i] as usize] = 1.0;
        }
        Ok((e.input("images", &xs)?, e.input("labels", &onehot)?))
    }
}

/// What an execution sees of its training, and how it runs a step.
pub(crate) trait Observer<E: Engine, L: Learner<E>> {
    /// Its errors: the engine's and the loop's convert into them.
    type Error: From<E::Error> + From<TrainError>;

    /// An epoch of `samples` begins.
    fn start_epoch(&mut self, _epoch: usize, _samples: usize) {}

    /// One training step on samples `idx`; returns what [`Learner::train_step`] does.
    ///
    /// # Errors
    /// What the engine reports.
    fn step(
        &mut self,
        e: &mut E,
        t: &mut L,
        _idx: &[usize],
        batch: &mut L::Batch,
    ) -> Result<Vec<E::Elem>, Self::Error> {
        Ok(t.train_step(e, batch)?)
    }

    /// After the step on samples `idx` (its batch, emptied or not), with what it returned.
    ///
    /// # Errors
    /// What the engine reports.
    fn after_step(
        &mut self,
        e: &mut E,
        idx: &[usize],
        batch: &L::Batch,
        out: Vec<E::Elem>,
    ) -> Result<(), Self::Error>;

    /// The epoch (0-based) ended after `seconds` of training; its checkpoint follows.
    ///
    /// # Errors
    /// What the engine reports.
    fn end_epoch(
        &mut self,
        e: &mut E,
        t: &mut L,
        epoch: usize,
        seconds: f64,
    ) -> Result<(), Self::Error>;
}

/// The public schedule of a run.
pub(crate) struct Plan<'a> {
    /// Seed of the orders and augmentation.
    pub seed: u64,
    /// Epochs in all.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Random crop and flip.
    pub augment: bool,
    /// The first epoch to run (0, or where a resumed run continues).
    pub from_epoch: usize,
    /// Where to save a checkpoint after each epoch, and its header (epochs and steps are
    /// filled in).
    pub checkpoint: Option<(&'a Path, &'a Header)>,
}

/// Runs the epochs `plan.from_epoch..plan.epochs` of `t` on `e`; returns the checkpoint
/// written last. `to_bits` gives an element's raw bits for the checkpoint.
///
/// # Errors
/// The engine's, the source's, the observer's or a checkpoint's.
pub(crate) fn run_epochs<E, L, S, O>(
    e: &mut E,
    t: &mut L,
    data: &S,
    plan: &Plan<'_>,
    obs: &mut O,
    to_bits: impl Fn(E::Elem) -> u64,
) -> Result<Option<PathBuf>, O::Error>
where
    E: Engine,
    L: Learner<E>,
    S: Source<E, L::Batch>,
    O: Observer<E, L>,
{
    let n = data.len();
    let mut last = None;
    for epoch in plan.from_epoch..plan.epochs {
        let (mut rng, order) = epoch_order(plan.seed, epoch, n);
        obs.start_epoch(epoch, n);
        let start = Instant::now();
        for chunk in order.chunks(plan.batch) {
            let mut batch = data.batch(e, chunk, plan.augment.then_some(&mut rng))?;
            let out = obs.step(e, t, chunk, &mut batch)?;
            obs.after_step(e, chunk, &batch, out)?;
        }
        obs.end_epoch(e, t, epoch, start.elapsed().as_secs_f64())?;
        if let Some((dir, header)) = plan.checkpoint {
            let h = Header {
                epochs_done: epoch + 1,
                steps_done: t.steps_done(),
                ..header.clone()
            };
            let path = checkpoint::save_keeping_previous(dir, &h, &t.state_bits(&to_bits))
                .map_err(TrainError::from)?;
            last = Some(path);
        }
    }
    Ok(last)
}

/// A plaintext run's progress: the epoch's bar (hidden without `--progress` and off a
/// terminal), the samples seen in the epoch, and the training time and samples in all.
pub(crate) struct Progress {
    bar: ProgressBar,
    /// Samples of this epoch so far.
    pub seen: usize,
    start: Instant,
    /// Seconds of training in all (evaluation excluded).
    pub seconds: f64,
    /// Samples trained on in all.
    pub trained: usize,
}

impl Progress {
    /// Nothing done yet.
    pub fn new() -> Self {
        Progress {
            bar: ProgressBar::hidden(),
            seen: 0,
            start: Instant::now(),
            seconds: 0.0,
            trained: 0,
        }
    }

    /// Epoch `epoch` of `samples` begins.
    pub fn start(&mut self, cfg: &super::TrainConfig, epoch: usize, samples: usize) {
        self.bar = epoch_bar(cfg, epoch, samples);
        self.seen = 0;
        self.start = Instant::now();
    }

    /// `n` more samples; `message` gets this epoch's samples per second.
    pub fn advance(&mut self, n: usize, message: impl FnOnce(f64) -> String) {
        self.seen += n;
        let rate = self.seen as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_position(self.seen as u64);
        self.bar.set_message(message(rate));
    }

    /// The epoch ended after `secs` of training.
    pub fn finish(&mut self, secs: f64) {
        self.bar.finish_and_clear();
        self.seconds += secs;
        self.trained += self.seen;
    }

    /// Samples per second over the whole run.
    pub fn rate(&self) -> f64 {
        self.trained as f64 / self.seconds.max(1e-9)
    }
}

/// The epoch's progress bar (hidden without `progress`, and by indicatif off a terminal).
fn epoch_bar(cfg: &super::TrainConfig, epoch: usize, n: usize) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(n as u64);
    b.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    b.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
    b
}
