//! Seq2seq on two servers: the encoder-decoder trained on shares of one-hot sentence
//! pairs by the same epoch loop and the same learner as on `Plain`, then its test
//! probabilities computed on shares for the owner.
//!
//! # What is revealed
//! Every batch has the job's public shape: `src_steps` encoder and `tgt_steps` decoder
//! steps, whatever its sentences' lengths. Which positions hold a word is in the shared
//! masks (the encoder keeps a finished row's state with its mask, the loss ignores
//! padded targets), so neither the servers nor the dealer learn a sentence's length or
//! a batch's longest sentence; the public bound is the corpus's maximum sentence length
//! ([`crate::data::text::TextConfig::max_len`]), a setting, not a property of the data.
//! The cost is the steps a shorter batch would not need. Nothing is opened during
//! training; at the end each server writes its shares of the trained parameters, of the
//! probability of every test target position (padding included: the owner knows which
//! count) and of the arg-max of every test position's softmax.

use super::{agree, train_observed, write_outputs, Start, TrainServerConfig, TrainServerReport};
use crate::mpc::dealer::Correlations;
use crate::mpc::engine::Mpc;
use crate::mpc::job::{tag, JobSpec, SeqJob};
use crate::mpc::server::ServerError;
use crate::mpc::{Channel, PartyId};
use crate::train::checkpoint::Header;
use crate::train::epochs::Source;
use crate::train::run::{training_softmax, TrainError};
use crate::train::seq2seq::{self, Inputs, Learner, SharedBatch, Steps};
use rand_chacha::ChaCha8Rng;
use ringnn_core::engine::generic::{argmax_rows, argmax_rows_scratch};
use ringnn_core::{Engine, Z64};
use std::time::Instant;

/// The checkpoint header of `party`'s state of a seq2seq job: engine `mpc-p0` or `mpc-p1`.
///
/// # Errors
/// An image job.
pub(super) fn server_header(job: &JobSpec, party: PartyId) -> Result<Header, ServerError> {
    let (model, _) = job.seq2seq_model().map_err(ServerError::Config)?;
    Ok(seq2seq::header(
        &job.config,
        &model,
        &format!("mpc-p{}", party.index()),
        job.config.data.name(),
        job.train_samples,
    ))
}

/// A server's shares of sentence pairs, pair after pair, in the layout of
/// [`JobSpec::share_lens`].
pub(crate) struct SharedPairs {
    /// The job's sizes.
    pub s: SeqJob,
    /// Hidden size (the encoder's masks are this wide inside the model).
    pub hidden: usize,
    /// One-hot sources, `src_steps x V_s` per pair.
    pub src: Vec<Z64>,
    /// Source masks, `src_steps` per pair.
    pub src_mask: Vec<Z64>,
    /// One-hot target sequences, `tgt_steps + 1 x V_t` per pair.
    pub seq: Vec<Z64>,
    /// Target masks, `tgt_steps` per pair (empty for test pairs: the owner masks).
    pub tgt_mask: Vec<Z64>,
}

impl SharedPairs {
    /// Pairs held.
    pub fn len(&self) -> usize {
        self.src_mask.len() / self.s.src_steps
    }

    /// The batch of pairs `idx`, time-major as the model takes it. Only copies: every
    /// value stays a share.
    pub fn batch(&self, idx: &[usize]) -> SharedBatch<Z64> {
        let s = self.s;
        let (ts, tt, vs, vt) = (s.src_steps, s.tgt_steps, s.src_vocab, s.tgt_vocab);
        let (b, h) = (idx.len(), self.hidden);
        let mut inp = Inputs {
            src_onehot: Vec::with_capacity(ts * b * vs),
            src_mask: Vec::with_capacity(ts * b * h),
            dec_onehot: Vec::with_capacity(tt * b * vt),
            targets: Vec::with_capacity(tt * b * vt),
            tgt_mask: Vec::new(),
        };
        for t in 0..ts {
            for &i in idx {
                let at = i * ts + t;
                inp.src_onehot
                    .extend_from_slice(&self.src[at * vs..(at + 1) * vs]);
                inp.src_mask
                    .extend(std::iter::repeat_n(self.src_mask[at], h));
            }
        }
        for t in 0..tt {
            for &i in idx {
                let at = i * (tt + 1) + t;
                inp.dec_onehot
                    .extend_from_slice(&self.seq[at * vt..(at + 1) * vt]);
                inp.targets
                    .extend_from_slice(&self.seq[(at + 1) * vt..(at + 2) * vt]);
                if !self.tgt_mask.is_empty() {
                    inp.tgt_mask.push(self.tgt_mask[i * tt + t]);
                }
            }
        }
        SharedBatch {
            steps: Steps {
                batch: b,
                src_steps: ts,
                tgt_steps: tt,
            },
            inputs: inp,
        }
    }
}

impl<C: Channel, R: Correlations> Source<Mpc<C, R>, SharedBatch<Z64>> for SharedPairs {
    fn len(&self) -> usize {
        SharedPairs::len(self)
    }

    fn batch(
        &self,
        _: &mut Mpc<C, R>,
        idx: &[usize],
        _: Option<&mut ChaCha8Rng>,
    ) -> Result<SharedBatch<Z64>, TrainError> {
        Ok(SharedPairs::batch(self, idx))
    }
}

/// `v` (`steps x batch` values, time-major) in pair order (`batch x steps`).
fn pair_major(v: &[Z64], steps: usize, batch: usize) -> Vec<Z64> {
    let mut out = Vec::with_capacity(v.len());
    for r in 0..batch {
        for t in 0..steps {
            out.push(v[t * batch + r]);
        }
    }
    out
}

/// Trains the job's encoder-decoder on `shares` (the tensors of
/// [`JobSpec::share_lens`]) and writes the outputs: see the [module documentation](self).
pub(super) fn train_on_shares<C: Channel, R: Correlations>(
    e: &mut Mpc<C, R>,
    cfg: &TrainServerConfig,
    job: &JobSpec,
    mut shares: Vec<Vec<Z64>>,
    start: Start,
) -> Result<TrainServerReport, ServerError> {
    let (model, s) = job.seq2seq_model().map_err(ServerError::Config)?;
    let mut take = |i: usize| std::mem::take(&mut shares[i]);
    let pairs = |src, src_mask, seq, tgt_mask| SharedPairs {
        s,
        hidden: model.hidden,
        src,
        src_mask,
        seq,
        tgt_mask,
    };
    let train = pairs(take(0), take(1), take(2), take(3));
    let test = pairs(take(4), take(5), take(6), Vec::new());
    let params = take(7);
    let tc = &job.config;
    let steps_per_epoch = job.train_samples.div_ceil(tc.batch) as u64;
    let mut t: Learner<'_, Mpc<C, R>, SharedBatch<Z64>> =
        Learner::new(tc, &model, steps_per_epoch * tc.epochs as u64, params);
    let Start {
        held,
        expected,
        set,
    } = start;
    let (agreed, restore) = agree(e, cfg, job, &held, set)?;
    if let Some((h, st)) = restore {
        t.params = st.params.iter().map(|&b| Z64::from_bits(b)).collect();
        t.velocity = st.velocity.iter().map(|&b| Z64::from_bits(b)).collect();
        t.step = h.steps_done;
    }
    let from_epoch = agreed.from_epoch;
    let expected = &Header {
        run: Some(crate::mpc::job::show_id(agreed.run)),
        attempt: Some(crate::mpc::job::show_id(agreed.attempt)),
        ..expected
    };
    let mut report = train_observed(e, &mut t, &train, cfg, job, from_epoch, false, expected)?;

    let start = Instant::now();
    let (sm, v, tt) = (training_softmax(tc), s.tgt_vocab, s.tgt_steps);
    let (mut probs, mut preds) = (Vec::new(), Vec::new());
    let mut scratch = Vec::new();
    let idx: Vec<usize> = (0..test.len()).collect();
    for chunk in idx.chunks(tc.batch) {
        let b = test.batch(chunk);
        let rows = tt * chunk.len();
        let p = model.probabilities_of(e, sm, &t.params, b.steps, &b.inputs, &mut scratch)?;
        // The probability of each target: its softmax row times its one-hot row, summed.
        let mut pt = vec![Z64::ZERO; p.len()];
        e.mul(&p, &b.inputs.targets, &mut pt)?;
        e.rescale(&mut pt)?;
        let pt: Vec<Z64> = pt
            .chunks(v)
            .map(|row| row.iter().fold(Z64::ZERO, |a, &x| a + x))
            .collect();
        let mut am = vec![Z64::ZERO; rows];
        let mut sc = vec![Z64::ZERO; argmax_rows_scratch(rows, v)];
        argmax_rows(e, &p, rows, v, &mut am, &mut sc)?;
        probs.extend(pair_major(&pt, tt, chunk.len()));
        preds.extend(pair_major(&am, tt, chunk.len()));
    }
    report.predict_seconds = start.elapsed().as_secs_f64();
    let me = tag(cfg.party, set, agreed.run);
    write_outputs(
        e,
        cfg,
        &mut report,
        &[
            ("probabilities.bin", vec![me.clone(), probs]),
            ("predictions.bin", vec![me.clone(), preds]),
            ("model.bin", vec![me, t.params, Vec::new()]),
        ],
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::text::Pair;
    use crate::mpc::owner::one_hot_pairs;
    use crate::train::engine::HostEngine;
    use crate::train::epochs::Learner as _;
    use crate::train::seq2seq::{Seq2Seq, SeqBatch};
    use crate::train::TrainConfig;
    use ringnn_core::approx::{ExpApprox, SigmoidApprox, TanhApprox};
    use ringnn_core::Plain;

    fn pairs() -> Vec<Pair> {
        let p = |src: &[u32], tgt: &[u32]| Pair {
            src: src.to_vec(),
            tgt: tgt.to_vec(),
        };
        vec![
            p(&[4, 5, 6], &[4, 5]),
            p(&[6], &[5, 4, 4]),
            p(&[5, 4], &[]),
            p(&[3, 4], &[5]),
            p(&[6, 6, 5, 4], &[4, 3]),
        ]
    }

    /// The two servers' batches (padded to the job's steps, the decoder reading EOS
    /// after the end) train `Plain` bit for bit as the plaintext batches do (padded to
    /// the batch's longest sentences): the padding is masked exactly.
    #[test]
    fn fixed_length_batches_train_plain_bit_for_bit_as_plaintext_batches() {
        let cfg = TrainConfig {
            model: "seq2seq".parse().unwrap(),
            data: "tatoeba".parse().unwrap(),
            exp: ExpApprox::Pwl(4),
            tanh: TanhApprox::Hard,
            sigmoid: SigmoidApprox::SecureMl,
            lr: 0.5,
            weight_decay: 1e-3,
            ..TrainConfig::default()
        };
        let m = Seq2Seq {
            src_vocab: 7,
            tgt_vocab: 6,
            embed: 3,
            hidden: 4,
            sigmoid: SigmoidApprox::SecureMl,
            tanh: TanhApprox::Hard,
        };
        let s = SeqJob {
            src_vocab: 7,
            tgt_vocab: 6,
            embed: 3,
            hidden: 4,
            src_steps: 6,
            tgt_steps: 7,
        };
        let mut e = Plain::new(cfg.frac_bits);
        let p0 = e.input("initial parameters", &m.init(2)).unwrap();
        let ps = pairs();
        let [src, src_mask, seq, tgt_mask] = one_hot_pairs(&ps, s, e.public(1.0)).unwrap();
        let shared = SharedPairs {
            s,
            hidden: 4,
            src,
            src_mask,
            seq,
            tgt_mask,
        };
        let batches: [&[usize]; 3] = [&[0, 1, 2], &[3, 4], &[4, 0]];
        let mut plain: Learner<'_, Plain, SeqBatch> = Learner::new(&cfg, &m, 3, p0.clone());
        let mut fixed: Learner<'_, Plain, SharedBatch<Z64>> = Learner::new(&cfg, &m, 3, p0);
        for idx in batches {
            let refs: Vec<&Pair> = idx.iter().map(|&i| &ps[i]).collect();
            plain.train_step(&mut e, &mut SeqBatch::new(&refs)).unwrap();
            fixed.train_step(&mut e, &mut shared.batch(idx)).unwrap();
            assert_eq!(plain.params, fixed.params);
        }
        assert_eq!(plain.velocity, fixed.velocity);
    }
}
