//! The files of a two-party training job: the public job description (`job.json`, with
//! the training configuration in it) and the share-file format, tagged with the party,
//! the sharing and the run each file belongs to.

use super::server::ServerError;
use super::PartyId;
use crate::data::Shape;
use crate::train::model::{self, Net};
use crate::train::seq2seq::Seq2Seq;
use crate::train::{EngineKind, Model, TrainConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::layers::Image;
use ringnn_core::Z64;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Read;
use std::path::Path;

/// Version of `job.json`, of the share files' tensor list and of the servers' handshake:
/// 3 adds the seq2seq jobs (`seq2seq`, and their tensors), 2 holds the whole training
/// configuration (1 mirrored some of its fields and fixed the rest).
pub const JOB_VERSION: u32 = 3;

/// The public sizes of a seq2seq job: the model's and the fixed number of steps every
/// batch is padded to (so that no batch's shape tells a sentence's length).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqJob {
    /// Source vocabulary size.
    pub src_vocab: usize,
    /// Target vocabulary size.
    pub tgt_vocab: usize,
    /// Embedding dimension.
    pub embed: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Encoder steps: the longest source the data may hold.
    pub src_steps: usize,
    /// Decoder steps: the longest target the data may hold, plus one (BOS in, EOS out).
    pub tgt_steps: usize,
}

/// The public description of a training job: what both servers must agree on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// [`JOB_VERSION`].
    pub version: u32,
    /// What is trained and how (engine `mpc`; the run-time options are not part of it).
    pub config: TrainConfig,
    /// Image channels.
    pub channels: usize,
    /// Image rows.
    pub height: usize,
    /// Image columns.
    pub width: usize,
    /// Classes.
    pub classes: usize,
    /// Training samples.
    pub train_samples: usize,
    /// Test samples.
    pub test_samples: usize,
    /// The sizes of a seq2seq job (`null` for an image model, whose data is images of
    /// `channels x height x width` in `classes` classes; a seq2seq job has 0 there and
    /// its target vocabulary as `classes`).
    pub seq2seq: Option<SeqJob>,
}

impl JobSpec {
    /// The job of training as `cfg` says on data of `shape` and `classes` with `n`
    /// (training, test) samples.
    pub fn new(cfg: &TrainConfig, shape: Shape, classes: usize, n: [usize; 2]) -> Self {
        JobSpec {
            version: JOB_VERSION,
            config: TrainConfig {
                engine: EngineKind::Mpc,
                data_dir: None,
                checkpoint: None,
                resume: false,
                progress: false,
                insecure_dealer_seed: None,
                ..cfg.clone()
            },
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
            classes,
            train_samples: n[0],
            test_samples: n[1],
            seq2seq: None,
        }
    }

    /// The job of training seq2seq as `cfg` says with sizes `s` on `n` (training, test)
    /// sentence pairs.
    pub fn seq2seq(cfg: &TrainConfig, s: SeqJob, n: [usize; 2]) -> Self {
        let shape = Shape {
            channels: 0,
            height: 0,
            width: 0,
        };
        JobSpec {
            seq2seq: Some(s),
            ..JobSpec::new(cfg, shape, s.tgt_vocab, n)
        }
    }

    /// The encoder-decoder of a seq2seq job.
    ///
    /// # Errors
    /// An image job.
    pub fn seq2seq_model(&self) -> Result<(Seq2Seq, SeqJob), String> {
        let s = self
            .seq2seq
            .ok_or_else(|| format!("{} is an image model, not seq2seq", self.config.model))?;
        Ok((
            Seq2Seq {
                src_vocab: s.src_vocab,
                tgt_vocab: s.tgt_vocab,
                embed: s.embed,
                hidden: s.hidden,
                sigmoid: self.config.sigmoid,
                tanh: self.config.tanh,
            },
            s,
        ))
    }

    /// The image shape.
    pub fn shape(&self) -> Shape {
        Shape {
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// The network this job trains.
    ///
    /// # Errors
    /// A model that does not fit the images.
    pub fn net(&self) -> Result<Net, String> {
        if self.seq2seq.is_some() {
            return Err("a seq2seq job has no image network".into());
        }
        let input = Image {
            batch: 1,
            channels: self.channels,
            height: self.height,
            width: self.width,
        };
        model::build(self.config.model.name(), input, self.classes)
    }

    /// The tensor lengths of a server's share file after its tag, in order, and what
    /// they are. An image job: training images, one-hot training labels, test images,
    /// parameters, buffers. A seq2seq job, for the training pairs then the test pairs:
    /// one-hot sources (`src_steps x V_s` per pair, reversed, padded), source masks
    /// (`src_steps`), one-hot target sequences (`tgt_steps + 1 x V_t`: BOS, the target,
    /// EOS, padding; the decoder reads the first `tgt_steps` and predicts the last),
    /// target masks (`tgt_steps`, training only); then the parameters.
    ///
    /// # Errors
    /// A model that does not fit the data.
    pub(crate) fn share_lens(&self) -> Result<(Vec<usize>, &'static str), String> {
        let n = [self.train_samples, self.test_samples];
        match self.seq2seq {
            None => {
                let net = self.net()?;
                let px = self.shape().len();
                Ok((
                    vec![
                        n[0] * px,
                        n[0] * self.classes,
                        n[1] * px,
                        net.n_params,
                        net.n_buffers,
                    ],
                    "images, labels, test images, parameters, buffers",
                ))
            }
            Some(s) => {
                let (m, _) = self.seq2seq_model()?;
                let (src, seq) = (s.src_steps * s.src_vocab, (s.tgt_steps + 1) * s.tgt_vocab);
                Ok((
                    vec![
                        n[0] * src,
                        n[0] * s.src_steps,
                        n[0] * seq,
                        n[0] * s.tgt_steps,
                        n[1] * src,
                        n[1] * s.src_steps,
                        n[1] * seq,
                        m.n_params(),
                    ],
                    "sources, source masks, target sequences, target masks, test sources, \
                     test source masks, test target sequences, parameters",
                ))
            }
        }
    }

    /// A digest of the canonical JSON, exchanged in the handshake.
    pub(crate) fn digest(&self) -> u64 {
        u64::from(crate::files::crc32(
            &serde_json::to_vec(self).expect("a job always serialises"),
        ))
    }

    /// Checks what the fields alone do not say.
    fn check(&self) -> Result<(), String> {
        if self.config.engine != EngineKind::Mpc {
            return Err(format!("engine {}: a job runs on mpc", self.config.engine));
        }
        if self.train_samples == 0 || self.test_samples == 0 {
            return Err("train_samples and test_samples must be at least 1".into());
        }
        let seq = self.config.model == Model::Seq2seq;
        match self.seq2seq {
            Some(_) if !seq => Err(format!(
                "seq2seq: sizes of a seq2seq job, but model {}",
                self.config.model
            )),
            None if seq => Err("seq2seq: model seq2seq needs its sizes (null)".into()),
            Some(s) => {
                let sizes = [
                    s.src_vocab,
                    s.tgt_vocab,
                    s.embed,
                    s.hidden,
                    s.src_steps,
                    s.tgt_steps,
                ];
                if sizes.contains(&0) {
                    return Err(format!("seq2seq: every size must be at least 1: {s:?}"));
                }
                // Bounds that keep every product of sizes (parameters, tensor lengths) far
                // from overflowing: a damaged job is an error, never a panic.
                if sizes.iter().any(|&n| n > 1 << 20) {
                    return Err(format!("seq2seq: sizes too large (at most 2^20): {s:?}"));
                }
                if s.tgt_vocab != self.classes || s.tgt_vocab <= crate::data::text::EOS as usize {
                    return Err(format!(
                        "seq2seq: target vocabulary {} (classes {}) must hold BOS and EOS",
                        s.tgt_vocab, self.classes
                    ));
                }
                // Each tensor's length must fit in memory's words: the share file says
                // the same, but a job must be refused before any is read.
                let words = self
                    .train_samples
                    .checked_add(self.test_samples)
                    .and_then(|n| n.checked_mul(s.tgt_steps + 1))
                    .and_then(|n| n.checked_mul(s.tgt_vocab.max(s.src_vocab)));
                if words.is_none_or(|w| w > 1 << 40) {
                    return Err(format!("seq2seq: sizes too large: {s:?}"));
                }
                Ok(())
            }
            None => self.net().map(drop),
        }
    }

    /// Reads `job.json`.
    ///
    /// # Errors
    /// An unreadable or damaged file, another version, or invalid contents, naming the
    /// file.
    pub fn load(path: &Path) -> Result<JobSpec, ServerError> {
        let bad = |what: String| ServerError::File {
            path: path.to_path_buf(),
            what,
        };
        // The version first, so that a job of another build is named as such and not as
        // a field that does not fit.
        let version = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
        if let Some(n) = version.filter(|&n| n != u64::from(JOB_VERSION)) {
            return Err(bad(format!(
                "job version {n}, this ringnn reads {JOB_VERSION}: share the data again with this build"
            )));
        }
        let job: JobSpec = crate::files::read_sealed_json(path).map_err(bad)?;
        job.check().map_err(bad)?;
        Ok(job)
    }
}

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ServerError + '_ {
    move |e| ServerError::File {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}

/// A record others read but no one should edit (`job.json`, `owner.json`): sealed with a
/// checksum, atomic, mode 0600.
pub(crate) fn write_sealed<T: Serialize>(path: &Path, v: &T) -> Result<(), ServerError> {
    crate::files::write_sealed_json(path, v).map_err(io_err(path))
}

/// A plain JSON report, atomic, mode 0600.
pub(crate) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), ServerError> {
    let bytes = serde_json::to_vec_pretty(v).expect("serialisable");
    crate::files::write_private(path, &bytes).map_err(io_err(path))
}

/// Reads a JSON report.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ServerError> {
    let s = fs::read_to_string(path).map_err(io_err(path))?;
    serde_json::from_str(&s).map_err(|e| ServerError::File {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

/// Words of the tag that opens every share file of a training job (the owner's shares
/// and the servers' outputs): the party the file belongs to, the 128-bit id of the
/// sharing (one per `ringnn share`) and the 128-bit id of the training run that wrote it
/// (0 in the owner's files), so that a file of the other party, of another sharing or of
/// another run is refused instead of reconstructing garbage.
const TAG_WORDS: usize = 5;

/// The ids a tagged share file is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tagged {
    /// The sharing.
    pub set: [u64; 2],
    /// The training run (0 in the owner's files).
    pub run: [u64; 2],
}

/// A fresh 128-bit id from the OS's randomness.
pub(crate) fn random_id() -> [u64; 2] {
    use rand::RngCore;
    let mut r = ChaCha20Rng::from_os_rng();
    [r.next_u64(), r.next_u64()]
}

/// The tag tensor of `party`'s file of sharing `set` and run `run`.
pub(crate) fn tag(party: PartyId, set: [u64; 2], run: [u64; 2]) -> Vec<Z64> {
    [party.index() as u64, set[0], set[1], run[0], run[1]]
        .map(Z64)
        .to_vec()
}

/// An id as 32 hex digits.
pub(crate) fn show_id(id: [u64; 2]) -> String {
    format!("{:016x}{:016x}", id[0], id[1])
}

/// The id [`show_id`] printed.
pub(crate) fn parse_id(s: &str) -> Option<[u64; 2]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let hi = u64::from_str_radix(&s[..16], 16).ok()?;
    let lo = u64::from_str_radix(&s[16..], 16).ok()?;
    Some([hi, lo])
}

/// Reads a tagged share file; checks that it belongs to `party`. Returns the sharing's id
/// and the tensors after the tag.
pub(crate) fn read_tagged(
    path: &Path,
    party: PartyId,
) -> Result<(Tagged, Vec<Vec<Z64>>), ServerError> {
    let mut t = read_shares(path)?;
    let bad = |what: String| ServerError::File {
        path: path.to_path_buf(),
        what,
    };
    if t.first().map(Vec::len) != Some(TAG_WORDS) || t[0][0].0 > 1 {
        return Err(bad(
            "not a share file of a training job (no party tag): written by `ringnn share` or a training server?".into(),
        ));
    }
    let tag = t.remove(0);
    let owner = if tag[0].0 == 0 {
        PartyId::P0
    } else {
        PartyId::P1
    };
    if owner != party {
        return Err(bad(format!(
            "holds {owner}'s shares, but {party}'s are needed here"
        )));
    }
    Ok((
        Tagged {
            set: [tag[1].0, tag[2].0],
            run: [tag[3].0, tag[4].0],
        },
        t,
    ))
}

const SHARES_MAGIC: [u8; 4] = *b"RGSH";

/// The share file format's version: 2 added the checksum.
const SHARES_VERSION: u32 = 2;

/// Writes tensors of shares: `RGSH`, version 2 (u32), count (u32), per tensor its length
/// (u64) and words, little-endian, then the CRC-32 (u32) of everything before it. Atomic
/// and mode 0600 ([`crate::files::write_private`]).
///
/// # Errors
/// The file cannot be written.
pub fn write_shares(path: &Path, tensors: &[Vec<Z64>]) -> Result<(), ServerError> {
    let words: usize = tensors.iter().map(Vec::len).sum();
    let mut b = Vec::with_capacity(16 + 8 * (tensors.len() + words));
    b.extend_from_slice(&SHARES_MAGIC);
    b.extend_from_slice(&SHARES_VERSION.to_le_bytes());
    b.extend_from_slice(&(tensors.len() as u32).to_le_bytes());
    for t in tensors {
        b.extend_from_slice(&(t.len() as u64).to_le_bytes());
        t.iter()
            .for_each(|w| b.extend_from_slice(&w.0.to_le_bytes()));
    }
    let sum = crate::files::crc32(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    crate::files::write_private(path, &b).map_err(|e| ServerError::File {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

/// Reads a [`write_shares`] file.
///
/// # Errors
/// An unreadable file, a wrong header or version, a checksum that does not match, or
/// lengths that do not match the file size.
pub fn read_shares(path: &Path) -> Result<Vec<Vec<Z64>>, ServerError> {
    let mut b = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut b))
        .map_err(|e| ServerError::File {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
    parse_shares(&b).map_err(|what| ServerError::File {
        path: path.to_path_buf(),
        what,
    })
}

/// The tensors of a share file's bytes; see [`write_shares`].
///
/// # Errors
/// A message naming what is wrong (the caller names the file).
pub fn parse_shares(b: &[u8]) -> Result<Vec<Vec<Z64>>, String> {
    if b.len() < 12 || b[..4] != SHARES_MAGIC {
        return Err("not a ringnn share file".into());
    }
    let version = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    if version != SHARES_VERSION {
        return Err(format!(
            "share file version {version}, this ringnn reads {SHARES_VERSION}{}",
            if version == 1 {
                " (version 1 has no checksum: share the data again)"
            } else {
                ""
            }
        ));
    }
    if b.len() < 16 {
        return Err(format!("{} bytes: too short for a share file", b.len()));
    }
    let (b, tail) = b.split_at(b.len() - 4);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let found = crate::files::crc32(b);
    if found != stored {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {found:08x}): the file is damaged or was modified"
        ));
    }
    let count = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")) as usize;
    let mut pos = 12;
    let mut out = Vec::new();
    for i in 0..count {
        let len = b
            .get(pos..pos + 8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
            .ok_or_else(|| format!("truncated before tensor {i}"))?;
        pos += 8;
        let bytes = usize::try_from(len)
            .ok()
            .and_then(|l| l.checked_mul(8))
            .filter(|&n| n <= b.len() - pos)
            .ok_or_else(|| format!("tensor {i} of {len} words is past the end"))?;
        let mut t = vec![0u64; bytes / 8];
        super::wire::parse_words(&b[pos..pos + bytes], &mut t);
        out.push(t.into_iter().map(Z64).collect());
        pos += bytes;
    }
    if pos != b.len() {
        return Err(format!("{} bytes after the last tensor", b.len() - pos));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringnn_core::approx::ExpApprox;

    fn job() -> JobSpec {
        let cfg = TrainConfig {
            model: Model::Lenet,
            engine: EngineKind::Mpc,
            epochs: 2,
            batch: 16,
            progress: true,
            data_dir: Some("/data".into()),
            ..TrainConfig::default()
        };
        let shape = Shape {
            channels: 1,
            height: 28,
            width: 28,
        };
        JobSpec::new(&cfg, shape, 10, [64, 32])
    }

    #[test]
    fn a_job_file_round_trips_and_keeps_no_run_time_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        let j = job();
        assert_eq!(j.config.data_dir, None);
        assert!(!j.config.progress);
        write_sealed(&path, &j).unwrap();
        assert_eq!(JobSpec::load(&path).unwrap(), j);
        // The digest follows every field.
        let mut other = j.clone();
        other.config.lr *= 2.0;
        assert_ne!(other.digest(), j.digest());
    }

    #[test]
    fn a_job_the_servers_cannot_run_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        let load = |j: &JobSpec| {
            write_sealed(&path, j).unwrap();
            JobSpec::load(&path).unwrap_err().to_string()
        };
        let mut exact = job();
        exact.config.exp = ExpApprox::Exact;
        let e = load(&exact);
        assert!(e.contains("job.json") && e.contains("--exp"), "{e}");
        let mut old = job();
        old.version = 1;
        let e = load(&old);
        assert!(e.contains("job version 1, this ringnn reads 3"), "{e}");
        let mut plain = job();
        plain.config.engine = EngineKind::Plain;
        let e = load(&plain);
        assert!(e.contains("a job runs on mpc"), "{e}");
        let mut tiny = job();
        (tiny.height, tiny.width) = (4, 4);
        let e = load(&tiny);
        assert!(e.contains("job.json"), "{e}");
    }

    fn seq_job() -> JobSpec {
        let cfg = TrainConfig {
            model: Model::Seq2seq,
            data: crate::train::DataKind::Tatoeba,
            engine: EngineKind::Mpc,
            ..TrainConfig::default()
        };
        let s = SeqJob {
            src_vocab: 20,
            tgt_vocab: 30,
            embed: 4,
            hidden: 8,
            src_steps: 10,
            tgt_steps: 11,
        };
        JobSpec::seq2seq(&cfg, s, [64, 16])
    }

    #[test]
    fn a_seq2seq_job_round_trips_with_its_sizes_and_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        let j = seq_job();
        write_sealed(&path, &j).unwrap();
        assert_eq!(JobSpec::load(&path).unwrap(), j);
        let (lens, _) = j.share_lens().unwrap();
        let (m, _) = j.seq2seq_model().unwrap();
        assert_eq!(
            lens,
            [
                64 * 10 * 20,
                64 * 10,
                64 * 12 * 30,
                64 * 11,
                16 * 10 * 20,
                16 * 10,
                16 * 12 * 30,
                m.n_params()
            ]
        );
        assert!(j.net().is_err());
    }

    #[test]
    fn a_seq2seq_job_without_sizes_or_with_bad_ones_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        let load = |j: &JobSpec| {
            write_sealed(&path, j).unwrap();
            JobSpec::load(&path).unwrap_err().to_string()
        };
        let mut none = seq_job();
        none.seq2seq = None;
        let e = load(&none);
        assert!(
            e.contains("job.json") && e.contains("needs its sizes"),
            "{e}"
        );
        let mut image = job();
        image.seq2seq = seq_job().seq2seq;
        let e = load(&image);
        assert!(e.contains("sizes of a seq2seq job, but model lenet"), "{e}");
        let mut zero = seq_job();
        zero.seq2seq.as_mut().unwrap().hidden = 0;
        let e = load(&zero);
        assert!(e.contains("at least 1"), "{e}");
        let mut huge = seq_job();
        huge.seq2seq.as_mut().unwrap().src_vocab = usize::MAX / 2;
        let e = load(&huge);
        assert!(e.contains("too large"), "{e}");
        let mut wide = seq_job();
        wide.seq2seq.as_mut().unwrap().hidden = 1 << 40;
        let e = load(&wide);
        assert!(e.contains("too large"), "{e}");
        let mut classes = seq_job();
        classes.classes = 7;
        let e = load(&classes);
        assert!(e.contains("target vocabulary 30 (classes 7)"), "{e}");
    }

    #[test]
    fn tagged_files_name_their_party_sharing_and_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shares.bin");
        let data = vec![Z64(1), Z64(2), Z64(3)];
        write_shares(&path, &[tag(PartyId::P1, [5, 6], [7, 8]), data.clone()]).unwrap();
        let (t, tensors) = read_tagged(&path, PartyId::P1).unwrap();
        assert_eq!(
            t,
            Tagged {
                set: [5, 6],
                run: [7, 8]
            }
        );
        assert_eq!(tensors, vec![data]);
        let e = read_tagged(&path, PartyId::P0).unwrap_err().to_string();
        assert!(e.contains("shares.bin") && e.contains("party 1"), "{e}");
        // An untagged share file is not a training job's.
        write_shares(&path, &[vec![Z64(1)]]).unwrap();
        let e = read_tagged(&path, PartyId::P0).unwrap_err().to_string();
        assert!(e.contains("no party tag"), "{e}");
        // Ids print and parse back.
        let id = [0x0123_4567_89ab_cdef, 42];
        assert_eq!(parse_id(&show_id(id)), Some(id));
        assert_eq!(parse_id("xyz"), None);
    }
}
