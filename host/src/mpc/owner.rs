//! The data owner's side of secure training: share the data and the initial model
//! between the two servers ([`share_job`], `ringnn share`), and reconstruct what they
//! return ([`reveal`], `ringnn reveal`): the trained model and one predicted class per test
//! image, scored against the labels only the owner holds; for seq2seq, the probability
//! and the predicted token of every test target position, scored as `Plain`'s evaluation
//! scores them (perplexity and token accuracy) against the targets only the owner holds.

use super::job::SeqJob;
use super::job::{
    io_err, parse_id, random_id, read_tagged, show_id, tag, write_sealed, write_shares, JobSpec,
    Tagged,
};
use super::server::ServerError;
use super::{reconstruct, share, PartyId};
use crate::data::text::{self, Pair};
use crate::train::checkpoint::{self, Header};
use crate::train::run;
use crate::train::seq2seq::{self, Seq2SeqDims, SeqBatch};
use crate::train::{EngineKind, Model, TrainConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::{Engine, Plain, Z64};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// What the owner keeps: the job and the test labels.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// The job.
    pub job: JobSpec,
    /// The label of each test image.
    pub test_labels: Vec<u8>,
    /// The id of the sharing (32 hex digits): the servers' outputs must carry it.
    pub sharing: String,
    /// A seq2seq job's test targets: each pair's target sentence (token ids, without
    /// EOS). Empty for an image job.
    #[serde(default)]
    pub test_targets: Vec<Vec<u32>>,
}

/// The files [`share_job`] wrote.
#[derive(Clone, Debug)]
pub struct SharedJob {
    /// `job.json` (public).
    pub job_file: PathBuf,
    /// `owner.json` (the owner's).
    pub owner_file: PathBuf,
    /// `server0/shares.bin` and `server1/shares.bin`.
    pub shares: [PathBuf; 2],
    /// The job.
    pub job: JobSpec,
}

/// The owner's side: loads the data `cfg` names, draws the initial model from its seed,
/// and writes `job.json`, `owner.json` and one share file per server into `dir`.
///
/// # Errors
/// Bad data or configuration, a value that cannot be encoded, or a file that cannot be
/// written.
pub fn share_job(cfg: &TrainConfig, dir: &Path) -> Result<SharedJob, ServerError> {
    share_job_sized(cfg, Seq2SeqDims::default(), dir)
}

/// [`share_job`] with the encoder-decoder's sizes and text preparation `dims` (a seq2seq
/// job; ignored for the image models).
///
/// # Errors
/// As [`share_job`].
pub fn share_job_sized(
    cfg: &TrainConfig,
    dims: Seq2SeqDims,
    dir: &Path,
) -> Result<SharedJob, ServerError> {
    cfg.validate()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    if cfg.model == Model::Seq2seq {
        return share_seq2seq(cfg, dims, dir);
    }
    let split = run::load_data(cfg)?;
    let shape = split.train.shape;
    let job = JobSpec::new(
        cfg,
        shape,
        split.train.classes,
        [split.train.len(), split.test.len()],
    );
    let net = job.net().map_err(ServerError::Config)?;
    let p = Plain::new(cfg.frac_bits);
    let enc = |what: &str, xs: &[f64]| -> Result<Vec<Z64>, ServerError> {
        let mut out = vec![Z64::ZERO; xs.len()];
        p.encode_slice(xs, &mut out).map_err(|(i, e)| {
            ServerError::Config(format!("{what}: value {} at index {i}: {e}", xs[i]))
        })?;
        Ok(out)
    };
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let mut onehot = vec![0.0; split.train.len() * split.train.classes];
    for (r, &l) in split.train.labels.iter().enumerate() {
        onehot[r * split.train.classes + l as usize] = 1.0;
    }
    let (p0, b0) = net.init(cfg.seed);
    let tensors = [
        enc("training images", &widen(&split.train.images))?,
        enc("training labels", &onehot)?,
        enc("test images", &widen(&split.test.images))?,
        enc("initial parameters", &p0)?,
        enc("initial buffers", &b0)?,
    ];
    write_job(dir, &job, &tensors, |set| OwnerRecord {
        job: job.clone(),
        test_labels: split.test.labels.clone(),
        sharing: show_id(set),
        test_targets: Vec::new(),
    })
}

/// The owner's side of a seq2seq job: loads the Tatoeba corpus (cut to the limits),
/// draws the initial model from the seed, and shares every pair padded to the corpus's
/// maximum sentence length, its tokens one-hot and its masks (see
/// [`JobSpec::share_lens`] for the tensors).
fn share_seq2seq(
    cfg: &TrainConfig,
    dims: Seq2SeqDims,
    dir: &Path,
) -> Result<SharedJob, ServerError> {
    if dims.embed == 0 || dims.hidden == 0 {
        return Err(ServerError::Config(
            "seq2seq: the embedding and hidden sizes must be at least 1".into(),
        ));
    }
    let corpus = seq2seq::limit_corpus(cfg, seq2seq::load_corpus(cfg, dims)?)?;
    let steps = dims.text.max_len;
    let s = SeqJob {
        src_vocab: corpus.src_vocab.len(),
        tgt_vocab: corpus.tgt_vocab.len(),
        embed: dims.embed,
        hidden: dims.hidden,
        src_steps: steps,
        tgt_steps: steps + 1,
    };
    let job = JobSpec::seq2seq(cfg, s, [corpus.train.len(), corpus.test.len()]);
    let (model, _) = job.seq2seq_model().map_err(ServerError::Config)?;
    let p = Plain::new(cfg.frac_bits);
    let one = p.public(1.0);
    let [train, test] = [&corpus.train, &corpus.test].map(|pairs| one_hot_pairs(pairs, s, one));
    let [train, test] = [train?, test?];
    let mut params = vec![Z64::ZERO; model.n_params()];
    let p0 = model.init(cfg.seed);
    p.encode_slice(&p0, &mut params).map_err(|(i, e)| {
        ServerError::Config(format!(
            "initial parameters: value {} at index {i}: {e}",
            p0[i]
        ))
    })?;
    let [src, src_mask, seq, tgt_mask] = train;
    let [test_src, test_src_mask, test_seq, _] = test;
    let tensors = [
        src,
        src_mask,
        seq,
        tgt_mask,
        test_src,
        test_src_mask,
        test_seq,
        params,
    ];
    write_job(dir, &job, &tensors, |set| OwnerRecord {
        job: job.clone(),
        test_labels: Vec::new(),
        sharing: show_id(set),
        test_targets: corpus.test.iter().map(|p| p.tgt.clone()).collect(),
    })
}

/// `pairs` as the tensors of a seq2seq share file, in fixed point (`one` is 1.0): one-hot
/// sources (reversed, padded), source masks, one-hot target sequences (BOS, target, EOS,
/// padding) and target masks.
///
/// # Errors
/// A sentence longer than the job's steps, or a token outside its vocabulary.
pub(crate) fn one_hot_pairs(
    pairs: &[Pair],
    s: SeqJob,
    one: Z64,
) -> Result<[Vec<Z64>; 4], ServerError> {
    let (ts, tt, vs, vt) = (s.src_steps, s.tgt_steps, s.src_vocab, s.tgt_vocab);
    let n = pairs.len();
    let mut src = vec![Z64::ZERO; n * ts * vs];
    let mut src_mask = vec![Z64::ZERO; n * ts];
    let mut seq = vec![Z64::ZERO; n * (tt + 1) * vt];
    let mut tgt_mask = vec![Z64::ZERO; n * tt];
    for (i, p) in pairs.iter().enumerate() {
        let fits = p.src.len() <= ts
            && p.tgt.len() < tt
            && p.src.iter().all(|&w| (w as usize) < vs)
            && p.tgt.iter().all(|&w| (w as usize) < vt);
        if !fits {
            return Err(ServerError::Config(format!(
                "sentence pair {i} does not fit the job ({} and {} tokens, at most {ts} and {}; \
                 vocabularies {vs} and {vt})",
                p.src.len(),
                p.tgt.len(),
                tt - 1
            )));
        }
        let b = SeqBatch::padded(&[p], ts, tt);
        for t in 0..ts {
            src[(i * ts + t) * vs + b.src[t]] = one;
            if b.src_mask[t] {
                src_mask[i * ts + t] = one;
            }
        }
        // The decoder reads positions 0..tt of the sequence and predicts 1..=tt: BOS and
        // the target in, the target and EOS out. After EOS the input is EOS where a
        // plaintext batch has padding: those positions are masked out of the loss and
        // come after every counted one, so they change nothing.
        let at = |t: usize| (i * (tt + 1) + t) * vt;
        seq[at(0) + b.dec_in[0]] = one;
        for t in 0..tt {
            seq[at(t + 1) + b.dec_out[t]] = one;
            if b.tgt_mask[t] {
                tgt_mask[i * tt + t] = one;
            }
        }
    }
    Ok([src, src_mask, seq, tgt_mask])
}

/// Shares `tensors` between the servers with a fresh sharing id and writes `job.json`,
/// `owner.json` (`record` of the sharing id) and one share file per server into `dir`.
fn write_job(
    dir: &Path,
    job: &JobSpec,
    tensors: &[Vec<Z64>],
    record: impl FnOnce([u64; 2]) -> OwnerRecord,
) -> Result<SharedJob, ServerError> {
    let mut rng = ChaCha20Rng::from_os_rng();
    let set = random_id();
    let mut parts = [tag(PartyId::P0, set, [0; 2]), tag(PartyId::P1, set, [0; 2])].map(|t| vec![t]);
    for t in tensors {
        let [a, b] = share(t, &mut rng);
        parts[0].push(a);
        parts[1].push(b);
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let shares = [0, 1].map(|i| dir.join(format!("server{i}")).join("shares.bin"));
    for (path, t) in shares.iter().zip(&parts) {
        let parent = path.parent().expect("a file in a folder");
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        write_shares(path, t)?;
    }
    let job_file = dir.join("job.json");
    write_sealed(&job_file, job)?;
    let owner_file = dir.join("owner.json");
    write_sealed(&owner_file, &record(set))?;
    Ok(SharedJob {
        job_file,
        owner_file,
        shares,
        job: job.clone(),
    })
}

/// What the owner reconstructs.
#[derive(Clone, Debug)]
pub struct Revealed {
    /// The predicted class of each test image (seq2seq: of each test target token and
    /// EOS, pair after pair).
    pub predictions: Vec<usize>,
    /// Their accuracy against the owner's labels (seq2seq: the token accuracy, each test
    /// target token and EOS predicted by the arg-max of the model's softmax under teacher
    /// forcing).
    pub test_accuracy: f64,
    /// A seq2seq job's test perplexity (`None` for an image job).
    pub perplexity: Option<f64>,
    /// The trained model, written as a `Plain` checkpoint here.
    pub checkpoint: PathBuf,
}

/// The owner's side after training: adds the servers' output shares (`out0`, `out1`),
/// scores the predictions against `owner.json`'s labels, and writes the model as a
/// `Plain` checkpoint into `model_dir` (loadable by `ringnn export` and
/// `ringnn train --engine plain --resume`).
///
/// # Errors
/// Missing or malformed files, or shares of the wrong length (naming the file).
pub fn reveal(
    owner_file: &Path,
    out: [&Path; 2],
    model_dir: &Path,
) -> Result<Revealed, ServerError> {
    let owner: OwnerRecord =
        crate::files::read_sealed_json(owner_file).map_err(|what| ServerError::File {
            path: owner_file.to_path_buf(),
            what,
        })?;
    let sharing = parse_id(&owner.sharing).ok_or_else(|| ServerError::File {
        path: owner_file.to_path_buf(),
        what: format!("sharing id {:?} is not 32 hex digits", owner.sharing),
    })?;
    let job = owner.job.clone();
    // Every output file must come from one run: the first file read names it.
    let runs = std::cell::RefCell::new(Vec::<([u64; 2], PathBuf)>::new());
    let read = |name: &str, lens: &[usize]| -> Result<[Vec<Vec<Z64>>; 2], ServerError> {
        let mut got = [Vec::new(), Vec::new()];
        let mut runs = runs.borrow_mut();
        for ((g, dir), party) in got.iter_mut().zip(out).zip([PartyId::P0, PartyId::P1]) {
            let path = dir.join(name);
            let (Tagged { set, run }, t) = read_tagged(&path, party)?;
            if set != sharing {
                return Err(ServerError::File {
                    path,
                    what: format!(
                        "comes from another sharing than {} ({} against {})",
                        owner_file.display(),
                        show_id(set),
                        show_id(sharing)
                    ),
                });
            }
            if run == [0; 2] {
                return Err(ServerError::File {
                    path,
                    what: "is a share file of the owner, not a server's output".into(),
                });
            }
            if let Some((r0, p0)) = runs.first().filter(|(r0, _)| *r0 != run) {
                return Err(ServerError::File {
                    path,
                    what: format!(
                        "comes from another training run than {} ({} against {}): a server's run failed or was rerun alone",
                        p0.display(),
                        show_id(run),
                        show_id(*r0)
                    ),
                });
            }
            runs.push((run, path.clone()));
            let l: Vec<usize> = t.iter().map(Vec::len).collect();
            if l != lens {
                return Err(ServerError::File {
                    path,
                    what: format!("tensor lengths {l:?}, the job needs {lens:?}"),
                });
            }
            *g = t;
        }
        Ok(got)
    };
    if let Some(s) = job.seq2seq {
        let (model, _) = job.seq2seq_model().map_err(ServerError::Config)?;
        let n = job.test_samples * s.tgt_steps;
        let [q0, q1] = read("probabilities.bin", &[n])?;
        let [a0, a1] = read("predictions.bin", &[n])?;
        let [m0, m1] = read("model.bin", &[model.n_params(), 0])?;
        let shown = Outputs {
            probabilities: reconstruct(&q0[0], &q1[0]),
            predictions: reconstruct(&a0[0], &a1[0]),
            params: reconstruct(&m0[0], &m1[0]),
        };
        return reveal_seq2seq(&owner, owner_file, out[0], shown, model_dir);
    }
    let net = job.net().map_err(ServerError::Config)?;
    let [p0, p1] = read("predictions.bin", &[job.test_samples])?;
    let preds = reconstruct(&p0[0], &p1[0]);
    let mut predictions = Vec::with_capacity(preds.len());
    for (i, v) in preds.iter().enumerate() {
        let c = v.to_signed();
        if c < 0 || c as usize >= job.classes {
            return Err(ServerError::File {
                path: out[0].join("predictions.bin"),
                what: format!(
                    "prediction {i} reconstructs to {c}, not a class in 0..{}: the shares do not belong together",
                    job.classes
                ),
            });
        }
        predictions.push(c as usize);
    }
    if owner.test_labels.len() != predictions.len() {
        return Err(ServerError::File {
            path: owner_file.to_path_buf(),
            what: format!(
                "{} test labels for {} predictions",
                owner.test_labels.len(),
                predictions.len()
            ),
        });
    }
    let correct = predictions
        .iter()
        .zip(&owner.test_labels)
        .filter(|(&p, &l)| p == l as usize)
        .count();
    let [m0, m1] = read("model.bin", &[net.n_params, net.n_buffers])?;
    let params = reconstruct(&m0[0], &m1[0]);
    let buffers = reconstruct(&m0[1], &m1[1]);
    let tc = &job.config;
    let h = Header {
        epochs_done: tc.epochs,
        steps_done: (job.train_samples.div_ceil(tc.batch) * tc.epochs) as u64,
        ..run::header(tc, &net, "plain", job.train_samples)
    };
    let st = checkpoint::State {
        params: params.iter().map(|v| v.to_bits()).collect(),
        velocity: vec![0; net.n_params],
        buffers: buffers.iter().map(|v| v.to_bits()).collect(),
    };
    let checkpoint = checkpoint::save(model_dir, &h, &st)?;
    Ok(Revealed {
        test_accuracy: correct as f64 / predictions.len().max(1) as f64,
        predictions,
        perplexity: None,
        checkpoint,
    })
}

/// A seq2seq job's outputs, reconstructed.
struct Outputs {
    /// The probability of each test target position (`tgt_steps` per pair).
    probabilities: Vec<Z64>,
    /// The arg-max of each test position's softmax.
    predictions: Vec<Z64>,
    /// The trained parameters.
    params: Vec<Z64>,
}

/// A seq2seq job's results, as `Plain`'s evaluation computes them: the perplexity
/// `exp(mean -ln p)` over each test pair's target tokens and EOS (a probability at or
/// below 0 counts as 1e-12), the token accuracy of the arg-maxes there, and the model as a
/// `Plain` checkpoint in `model_dir`.
fn reveal_seq2seq(
    owner: &OwnerRecord,
    owner_file: &Path,
    out0: &Path,
    o: Outputs,
    model_dir: &Path,
) -> Result<Revealed, ServerError> {
    let job = &owner.job;
    let (model, s) = job.seq2seq_model().map_err(ServerError::Config)?;
    let tc = &job.config;
    if owner.test_targets.len() != job.test_samples {
        return Err(ServerError::File {
            path: owner_file.to_path_buf(),
            what: format!(
                "{} test targets for {} test pairs",
                owner.test_targets.len(),
                job.test_samples
            ),
        });
    }
    let fx = Plain::new(tc.frac_bits).format();
    let tt = s.tgt_steps;
    let (mut loss, mut tokens, mut correct) = (0.0, 0usize, 0usize);
    let mut predictions = Vec::new();
    for (i, tgt) in owner.test_targets.iter().enumerate() {
        if tgt.len() >= tt {
            return Err(ServerError::File {
                path: owner_file.to_path_buf(),
                what: format!(
                    "test target {i} has {} tokens, the job at most {}",
                    tgt.len(),
                    tt - 1
                ),
            });
        }
        for t in 0..=tgt.len() {
            let y = tgt.get(t).copied().unwrap_or(text::EOS) as usize;
            let p = fx.decode(o.probabilities[i * tt + t]);
            loss -= p.max(1e-12).ln();
            let c = o.predictions[i * tt + t].to_signed();
            if c < 0 || c as usize >= s.tgt_vocab {
                return Err(ServerError::File {
                    path: out0.join("predictions.bin"),
                    what: format!(
                        "prediction {} reconstructs to {c}, not a token in 0..{}: the shares do not belong together",
                        i * tt + t,
                        s.tgt_vocab
                    ),
                });
            }
            correct += usize::from(c as usize == y);
            predictions.push(c as usize);
            tokens += 1;
        }
    }
    let mut pc = tc.clone();
    pc.engine = EngineKind::Plain;
    let h = Header {
        epochs_done: tc.epochs,
        steps_done: (job.train_samples.div_ceil(tc.batch) * tc.epochs) as u64,
        ..seq2seq::header(&pc, &model, "plain", tc.data.name(), job.train_samples)
    };
    let st = checkpoint::State {
        params: o.params.iter().map(|v| v.to_bits()).collect(),
        velocity: vec![0; model.n_params()],
        buffers: Vec::new(),
    };
    let checkpoint = checkpoint::save(model_dir, &h, &st)?;
    let tokens = tokens.max(1) as f64;
    Ok(Revealed {
        predictions,
        test_accuracy: correct as f64 / tokens,
        perplexity: Some((loss / tokens).exp()),
        checkpoint,
    })
}
