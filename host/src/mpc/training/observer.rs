//! The observer of the one epoch loop on shares: what a training server reports (counts,
//! rounds, times, never a value), and the two phases of each full-size step (the dealer
//! material first, the protocol after; the next step's requests announced ahead).

use super::{ServerError, TrainServerConfig, TrainServerReport};
use crate::mpc::dealer::Request;
use crate::mpc::engine::Mpc;
use crate::mpc::job::JobSpec;
use crate::mpc::{Channel, Correlations, PartyId};
use crate::train::checkpoint::Header;
use crate::train::epochs::{run_epochs, Learner, Observer, Plan, Source};
use ringnn_core::{Engine, Z64};
use std::time::{Duration, Instant};

/// What a training server sees: counts, rounds and times, never a value. It also runs
/// every full-size step after the first in two phases: the dealer material of the whole
/// step first (offline: the step's requests, recorded on the first full-size step, are
/// announced so that the dealer streams them), then the protocol (online).
struct Traffic {
    who: String,
    batch: usize,
    epochs: usize,
    from_epoch: usize,
    progress: bool,
    /// The first full-size step's requests and its learning rate's raw value.
    step_requests: Option<(Vec<Request>, u64)>,
    /// The next step's requests are announced already (during this step), so that the
    /// dealer builds them while this step runs.
    announced_next: bool,
    report: TrainServerReport,
    epoch: usize,
    samples: usize,
    /// Steps of this epoch run so far.
    step_in_epoch: usize,
    start: Instant,
    last_line: Instant,
}

/// A full-size step's requests, recorded at the step whose learning rate's raw value was
/// `recorded`, for a step at the raw rate `now`: the SGD step's scaled truncation
/// ([`Request::TruncScaled`]) carries its step's rate (public; the dealer needs it to
/// split the mask's multiple), the one part of a full step's requests that a schedule
/// changes from step to step. Other requests, and scaled truncations by another
/// constant, are as recorded.
fn at_rate(reqs: &[Request], recorded: u64, now: u64) -> Vec<Request> {
    reqs.iter()
        .map(|&r| match r {
            Request::TruncScaled {
                n,
                bits,
                scale,
                scaled_bits,
            } if scale == recorded => Request::TruncScaled {
                n,
                bits,
                scale: now,
                scaled_bits,
            },
            other => other,
        })
        .collect()
}

/// Progress lines at most this often: a user sees the run move, never a silent minute.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl Traffic {
    fn line<C: Channel, R: Correlations>(&self, e: &Mpc<C, R>, what: String) {
        let tr = e.traffic();
        eprintln!(
            "{}: epoch {}/{}, {what}; {:.1} MB sent, {} rounds so far",
            self.who,
            self.epoch + 1,
            self.epochs,
            tr.sent as f64 / 1e6,
            tr.rounds
        );
    }
}

/// Whether step `step + 1` (0-based, in epoch `epoch` of `epochs`, of `samples` in
/// batches of `batch`; step `step` full) is a full batch: see
/// [`Traffic::next_step_is_full`].
fn next_step_is_full(
    step: usize,
    samples: usize,
    batch: usize,
    epoch: usize,
    epochs: usize,
) -> bool {
    let batch = batch.max(1);
    let full_steps = samples / batch;
    if step + 1 < full_steps {
        return true;
    }
    step + 1 == full_steps && samples.is_multiple_of(batch) && epoch + 1 < epochs
}

impl Traffic {
    /// Whether the step after the one about to run (a full batch) is a full batch too:
    /// another full batch of this epoch, or, after this epoch's last one when no partial
    /// batch follows, the first of the next epoch.
    fn next_step_is_full(&self) -> bool {
        next_step_is_full(
            self.step_in_epoch,
            self.samples,
            self.batch,
            self.epoch,
            self.epochs,
        )
    }

    /// The observer of `party`'s run of `job` from epoch `from_epoch`, with progress lines
    /// or not.
    fn new(party: PartyId, job: &JobSpec, from_epoch: usize, progress: bool) -> Self {
        Traffic {
            who: format!("party {}", party.index()),
            batch: job.config.batch,
            epochs: job.config.epochs,
            from_epoch,
            progress,
            step_requests: None,
            announced_next: false,
            report: TrainServerReport {
                party: party.index() as u8,
                resumed_from: from_epoch,
                epochs_done: from_epoch,
                ..Default::default()
            },
            epoch: from_epoch,
            samples: job.train_samples,
            step_in_epoch: 0,
            start: Instant::now(),
            last_line: Instant::now(),
        }
    }
}

/// The one epoch loop on shares ([`run_epochs`]) from `from_epoch`, observed by
/// [`Traffic`] only, each epoch's checkpoint written under `expected`: the report, with
/// the training's seconds, bytes sent and rounds.
///
/// # Errors
/// The engine's, the source's or a checkpoint's.
#[allow(clippy::too_many_arguments)]
pub(super) fn train_observed<C, R, L, S>(
    e: &mut Mpc<C, R>,
    t: &mut L,
    data: &S,
    cfg: &TrainServerConfig,
    job: &JobSpec,
    from_epoch: usize,
    augment: bool,
    expected: &Header,
) -> Result<TrainServerReport, ServerError>
where
    C: Channel,
    R: Correlations,
    L: Learner<Mpc<C, R>>,
    S: Source<Mpc<C, R>, L::Batch>,
{
    let tc = &job.config;
    let start_all = Instant::now();
    // What the session sent before training (its setup) is not the steps' traffic.
    let before = e.traffic();
    let mut obs = Traffic::new(cfg.party, job, from_epoch, cfg.progress);
    let plan = Plan {
        seed: tc.seed,
        epochs: tc.epochs,
        batch: tc.batch,
        augment,
        from_epoch,
        checkpoint: cfg.checkpoint.as_deref().map(|d| (d, expected)),
    };
    run_epochs(e, t, data, &plan, &mut obs, Z64::to_bits)?;
    let mut report = obs.report;
    report.train_seconds = start_all.elapsed().as_secs_f64();
    let tr = e.traffic();
    (report.train_sent, report.train_rounds) = (tr.sent - before.sent, tr.rounds - before.rounds);
    Ok(report)
}

impl<C: Channel, R: Correlations, L: Learner<Mpc<C, R>>> Observer<Mpc<C, R>, L> for Traffic {
    type Error = ServerError;

    fn start_epoch(&mut self, epoch: usize, samples: usize) {
        (self.epoch, self.samples, self.step_in_epoch) = (epoch, samples, 0);
        self.start = Instant::now();
    }

    fn step(
        &mut self,
        e: &mut Mpc<C, R>,
        t: &mut L,
        idx: &[usize],
        batch: &mut L::Batch,
    ) -> Result<Vec<Z64>, ServerError> {
        let b = idx.len();
        let full = b == self.batch;
        let phased = full && self.step_requests.is_some();
        let next_full = full && self.next_step_is_full();
        self.step_in_epoch += 1;
        let k = t.steps_done();
        let (rate, rate_next) = (e.public(t.rate_at(k)).0, e.public(t.rate_at(k + 1)).0);
        match &self.step_requests {
            Some((reqs, recorded)) if full => {
                let t0 = Instant::now();
                let now = at_rate(reqs, *recorded, rate);
                if !self.announced_next {
                    e.prefetch(&now)?;
                }
                e.preload(&now)?;
                // The next step's requests, announced before this step runs: the dealer
                // builds them (as far as its send queue allows) while this step computes,
                // instead of after it. Only when a next full step will take them: an
                // announced request never taken fails the session's end.
                if next_full {
                    e.prefetch(&at_rate(reqs, *recorded, rate_next))?;
                }
                self.announced_next = next_full;
                self.report.offline_seconds += t0.elapsed().as_secs_f64();
            }
            None if full => e.record_requests(true),
            _ => {}
        }
        let t1 = Instant::now();
        // The probabilities stay shared: nothing is opened during training.
        let p = t.train_step(e, batch)?;
        if phased {
            self.report.online_seconds += t1.elapsed().as_secs_f64();
            self.report.online_samples += b as u64;
        }
        if full && self.step_requests.is_none() {
            let reqs = e.take_requests();
            e.record_requests(false);
            if next_full {
                e.prefetch(&at_rate(&reqs, rate, rate_next))?;
            }
            self.announced_next = next_full;
            self.step_requests = Some((reqs, rate));
        }
        Ok(p)
    }

    fn after_step(
        &mut self,
        e: &mut Mpc<C, R>,
        idx: &[usize],
        _: &L::Batch,
        _: Vec<Z64>,
    ) -> Result<(), ServerError> {
        self.report.steps += 1;
        self.report.samples += idx.len() as u64;
        if self.progress && self.last_line.elapsed() >= PROGRESS_EVERY {
            self.last_line = Instant::now();
            let n = self.samples;
            let done = self.report.samples - (self.epoch - self.from_epoch) as u64 * n as u64;
            let rate = done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            self.line(e, format!("{done}/{n} samples ({rate:.1} samples/s)"));
        }
        Ok(())
    }

    fn end_epoch(
        &mut self,
        e: &mut Mpc<C, R>,
        _: &mut L,
        epoch: usize,
        secs: f64,
    ) -> Result<(), ServerError> {
        self.report.epochs_done = epoch + 1;
        if self.progress {
            let rate = self.samples as f64 / secs.max(1e-9);
            self.line(e, format!("in {secs:.1} s ({rate:.1} samples/s)"));
            self.last_line = Instant::now();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_next_step_is_full_within_an_epoch_and_across_epochs_without_a_partial_batch() {
        use super::next_step_is_full as next;
        // 1000 samples in batches of 128: 7 full steps (0..=6), then 104.
        assert!((0..6).all(|s| next(s, 1000, 128, 0, 3)));
        assert!(!next(6, 1000, 128, 0, 3), "a partial batch follows");
        // 1024: 8 full steps; the last one's next is the next epoch's first, if any.
        assert!(next(7, 1024, 128, 0, 2));
        assert!(!next(7, 1024, 128, 1, 2), "the last step of the run");
        // Fewer samples than a batch: no full step at all.
        assert!(!next(0, 100, 128, 0, 5));
        // One full step per epoch.
        assert!(next(0, 128, 128, 0, 2) && !next(0, 128, 128, 1, 2));
    }

    #[test]
    fn a_replayed_step_carries_its_own_rate_and_nothing_else_changes() {
        use super::{at_rate, Request};
        let scaled = |scale| Request::TruncScaled {
            n: 7,
            bits: 20,
            scale,
            scaled_bits: 33,
        };
        let reqs = [
            Request::Beaver { n: 3 },
            scaled(82),
            Request::Trunc { n: 5, bits: 13 },
            scaled(5),
        ];
        // The recorded rate's requests take the new rate; another scale stays.
        let want = [reqs[0], scaled(79), reqs[2], scaled(5)];
        assert_eq!(at_rate(&reqs, 82, 79), want);
        assert_eq!(at_rate(&reqs, 82, 82), reqs);
    }
}
