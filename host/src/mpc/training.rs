//! Secure training: two servers train a network on secret-shared data with a dealer's
//! help, each as its own process, and only the data owner learns the results.
//!
//! # Roles and files
//! - The **owner** ([`share_job`], `ringnn share`) loads the dataset, draws the initial
//!   model from the run's seed, encodes everything in fixed point and splits it into two
//!   additive sharings with a cryptographic RNG: `server0/shares.bin` and
//!   `server1/shares.bin` (training images, one-hot training labels, test images, initial
//!   parameters and buffers; each file alone is uniformly random). The public job
//!   description (`job.json`: model, shapes, hyperparameters, the seed of the sample
//!   order) goes to both servers; the test labels stay in the owner's `owner.json`. Every
//!   share file opens with a tag: its party and the id of the sharing.
//! - The **dealer** (`ringnn dealer`, [`super::dealer_server`]) serves correlated
//!   randomness.
//! - Each **server** ([`run_train_server`], `ringnn server`) reads its share file, greets
//!   its peer ([`Hello`]), trains on shares with the [`Mpc`] engine running exactly the
//!   code of the plaintext loop ([`Trainer`]), writes an atomic checkpoint of its shares
//!   after every epoch, and at the end writes its shares of the trained model and of the
//!   test-set predictions (class indices computed by a secure arg-max) into its output
//!   folder, with a report of traffic counts.
//! - The owner ([`reveal`], `ringnn reveal`) adds the two servers' output shares: test
//!   accuracy from the predictions and its labels, and the model as a `Plain` checkpoint.
//!
//! [`train_mpc`] (`ringnn train --engine mpc`) plays the owner and starts the dealer and
//! both servers as child processes of the same binary over loopback TCP with mutual TLS.
//!
//! # What is revealed, to whom
//! Nothing derived from data is opened during training: no loss, no training accuracy,
//! no logits, no comparison results (the servers print step counts, seconds and bytes).
//! The sample order and the augmentation offsets come from the public seed, so they do
//! not depend on data. The only values the owner reconstructs are the final model and one
//! predicted class per test image.
//!
//! # Faults
//! Every connection has the read timeout of [`NetConfig`]: a server whose peer dies
//! fails at its next message with an error naming the peer, within the timeout, and
//! writes nothing further. Checkpoints keep the last two epochs
//! ([`checkpoint::save_keeping_previous`]); on `--resume` the servers exchange the epochs
//! they hold and continue from the latest one both have, so a crash between the two
//! servers' saves loses one epoch, never consistency.

use super::dealer::Correlations;
use super::dealer_server::connect_dealer;
use super::engine::Mpc;
use super::hello::Hello;
use super::keys::{keygen, Identity, Role};
use super::launch::wait_all;
use super::net::{self, NetConfig, SessionId};
use super::server::{
    connection_args, dealer_args, read_shares, strings, write_shares, PeerLink, ServerError,
};
use super::wire::Tag;
use super::{reconstruct, share, Channel, PartyId};
use crate::data::{self, Shape};
use crate::train::checkpoint::{self, Header};
use crate::train::model::{self, Net};
use crate::train::run::{self, epoch_order, DataKind, EngineKind, TrainConfig, Trainer};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::approx::{ExpApprox, SigmoidApprox, TanhApprox};
use ringnn_core::layers::Image;
use ringnn_core::softmax::GradMode;
use ringnn_core::{Engine, FracBits, Plain, Z64};
use serde::{Deserialize, Serialize};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Version of the servers' handshake and of `job.json`.
pub const JOB_VERSION: u32 = 1;

/// The public description of a training job: what both servers must agree on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// [`JOB_VERSION`].
    pub version: u32,
    /// Model name.
    pub model: String,
    /// Dataset name (for headers and messages).
    pub data: String,
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
    /// Fractional bits.
    pub frac_bits: u32,
    /// e^x approximation in softmax.
    pub exp: String,
    /// Gradient mode.
    pub grad: String,
    /// Subtract the row maximum in softmax.
    pub subtract_max: bool,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: String,
    /// Seed of the initial model (used by the owner), the sample order and augmentation.
    pub seed: u64,
    /// Random crop and flip (CIFAR).
    pub augment: bool,
}

impl JobSpec {
    fn from_config(cfg: &TrainConfig, shape: Shape, classes: usize, n: [usize; 2]) -> Self {
        JobSpec {
            version: JOB_VERSION,
            model: cfg.model.clone(),
            data: cfg.data.name().into(),
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
            classes,
            train_samples: n[0],
            test_samples: n[1],
            frac_bits: cfg.frac_bits.get(),
            exp: cfg.exp.name().into(),
            grad: cfg.grad.name().into(),
            subtract_max: cfg.subtract_max,
            epochs: cfg.epochs,
            batch: cfg.batch,
            lr: cfg.lr,
            momentum: cfg.momentum,
            weight_decay: cfg.weight_decay,
            schedule: cfg.schedule.clone(),
            seed: cfg.seed,
            augment: matches!(cfg.data, DataKind::Cifar10 | DataKind::Cifar100),
        }
    }

    /// The training configuration of a server (no data directory, no progress bar).
    ///
    /// # Errors
    /// A field that does not name a known model, dataset, approximation or mode.
    pub fn config(&self) -> Result<TrainConfig, String> {
        if self.version != JOB_VERSION {
            return Err(format!(
                "version {} (this build reads {JOB_VERSION})",
                self.version
            ));
        }
        let exp = ExpApprox::parse(&self.exp).map_err(|e| format!("exp: {e}"))?;
        if self.batch == 0 || self.epochs == 0 || self.train_samples == 0 {
            return Err("batch, epochs and train_samples must be at least 1".into());
        }
        Ok(TrainConfig {
            model: self.model.clone(),
            data: DataKind::parse(&self.data)?,
            data_dir: None,
            engine: EngineKind::Mpc,
            frac_bits: FracBits::new(self.frac_bits).map_err(|e| format!("frac_bits: {e}"))?,
            exp,
            tanh: TanhApprox::parse("hard").map_err(|e| e.to_string())?,
            sigmoid: SigmoidApprox::parse("secureml", exp).map_err(|e| e.to_string())?,
            grad: GradMode::parse(&self.grad).ok_or_else(|| format!("grad: '{}'", self.grad))?,
            subtract_max: self.subtract_max,
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.schedule.clone(),
            seed: self.seed,
            train_limit: None,
            test_limit: None,
            checkpoint: None,
            resume: false,
            progress: false,
        })
    }

    fn shape(&self) -> Shape {
        Shape {
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// The network this job trains.
    ///
    /// # Errors
    /// An unknown model or one that does not fit the images.
    pub fn net(&self) -> Result<Net, String> {
        let input = Image {
            batch: 1,
            channels: self.channels,
            height: self.height,
            width: self.width,
        };
        model::build(&self.model, input, self.classes)
    }

    /// The tensor lengths of a server's share file, in order: training images, one-hot
    /// training labels, test images, parameters, buffers.
    fn share_lens(&self, net: &Net) -> [usize; 5] {
        let px = self.shape().len();
        [
            self.train_samples * px,
            self.train_samples * self.classes,
            self.test_samples * px,
            net.n_params,
            net.n_buffers,
        ]
    }

    /// A digest of the canonical JSON, exchanged in the handshake.
    fn digest(&self) -> u64 {
        checkpoint::fnv1a(&serde_json::to_vec(self).expect("a job always serialises"))
    }

    /// Reads `job.json`.
    ///
    /// # Errors
    /// An unreadable file or invalid JSON, naming the file.
    pub fn load(path: &Path) -> Result<JobSpec, ServerError> {
        let bad = |what: String| ServerError::File {
            path: path.to_path_buf(),
            what,
        };
        let job: JobSpec = crate::files::read_sealed_json(path).map_err(bad)?;
        job.config().map_err(bad)?;
        Ok(job)
    }
}

/// What the owner keeps: the job and the test labels.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// The job.
    pub job: JobSpec,
    /// The label of each test image.
    pub test_labels: Vec<u8>,
    /// The id of the sharing (32 hex digits): the servers' outputs must carry it.
    pub sharing: String,
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

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ServerError + '_ {
    move |e| ServerError::File {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}

/// A record others read but no one should edit (`job.json`, `owner.json`): sealed with a
/// checksum, atomic, mode 0600.
fn write_sealed<T: Serialize>(path: &Path, v: &T) -> Result<(), ServerError> {
    crate::files::write_sealed_json(path, v).map_err(io_err(path))
}

/// A plain JSON report, atomic, mode 0600.
fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), ServerError> {
    let bytes = serde_json::to_vec_pretty(v).expect("serialisable");
    crate::files::write_private(path, &bytes).map_err(io_err(path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ServerError> {
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
struct Tagged {
    set: [u64; 2],
    run: [u64; 2],
}

fn random_id() -> [u64; 2] {
    use rand::RngCore;
    let mut r = ChaCha20Rng::from_os_rng();
    [r.next_u64(), r.next_u64()]
}

fn tag(party: PartyId, set: [u64; 2], run: [u64; 2]) -> Vec<Z64> {
    [party.index() as u64, set[0], set[1], run[0], run[1]]
        .map(Z64)
        .to_vec()
}

pub(crate) fn show_id(id: [u64; 2]) -> String {
    format!("{:016x}{:016x}", id[0], id[1])
}

fn parse_id(s: &str) -> Option<[u64; 2]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let hi = u64::from_str_radix(&s[..16], 16).ok()?;
    let lo = u64::from_str_radix(&s[16..], 16).ok()?;
    Some([hi, lo])
}

/// Reads a tagged share file; checks that it belongs to `party`. Returns the sharing's id
/// and the tensors after the tag.
fn read_tagged(path: &Path, party: PartyId) -> Result<(Tagged, Vec<Vec<Z64>>), ServerError> {
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

/// The owner's side: loads the data `cfg` names, draws the initial model from its seed,
/// and writes `job.json`, `owner.json` and one share file per server into `dir`.
///
/// # Errors
/// Bad data or configuration, a value that cannot be encoded, or a file that cannot be
/// written.
pub fn share_job(cfg: &TrainConfig, dir: &Path) -> Result<SharedJob, ServerError> {
    if cfg.model == "seq2seq" {
        return Err(ServerError::Config(
            "the mpc engine trains the image models (mlp, lenet, resnet*); seq2seq is not supported"
                .into(),
        ));
    }
    let split = run::load_data(cfg)?;
    let shape = split.train.shape;
    let job = JobSpec::from_config(
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
    let mut rng = ChaCha20Rng::from_os_rng();
    let set = random_id();
    let mut parts = [tag(PartyId::P0, set, [0; 2]), tag(PartyId::P1, set, [0; 2])].map(|t| vec![t]);
    for t in &tensors {
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
    write_sealed(&job_file, &job)?;
    let owner_file = dir.join("owner.json");
    write_sealed(
        &owner_file,
        &OwnerRecord {
            job: job.clone(),
            test_labels: split.test.labels.clone(),
            sharing: show_id(set),
        },
    )?;
    Ok(SharedJob {
        job_file,
        owner_file,
        shares,
        job,
    })
}

/// Shares of the class with the largest logit in each of `rows` rows of `cols` logits
/// (the first one on ties), as integers: a tournament of `ceil(log2 cols)` levels, each
/// one comparison and one selection over all rows and pairs at once.
///
/// # Errors
/// What the engine reports.
pub fn argmax_rows<E: Engine>(
    e: &mut E,
    logits: &[E::Elem],
    rows: usize,
    cols: usize,
) -> Result<Vec<E::Elem>, E::Error> {
    assert_eq!(logits.len(), rows * cols, "argmax_rows: shape");
    let zero = E::Elem::default();
    // Candidates, column-major: cand[c][r].
    let mut vals: Vec<Vec<E::Elem>> = (0..cols)
        .map(|c| (0..rows).map(|r| logits[r * cols + c]).collect())
        .collect();
    let mut idx: Vec<Vec<E::Elem>> = Vec::with_capacity(cols);
    for c in 0..cols {
        let mut v = vec![zero; rows];
        let k = e.public_int(c as i64);
        e.add_public(&mut v, k)?;
        idx.push(v);
    }
    while vals.len() > 1 {
        let pairs = vals.len() / 2;
        let n = pairs * rows;
        let (mut diff, mut a, mut b) = (
            Vec::with_capacity(n),
            Vec::with_capacity(2 * n),
            Vec::with_capacity(2 * n),
        );
        for k in 0..pairs {
            let mut d = vals[2 * k].clone();
            e.sub_assign(&mut d, &vals[2 * k + 1])?;
            diff.extend_from_slice(&d);
        }
        // bit = 1 where vals[2k] < vals[2k+1]: take the second; else keep the first.
        let mut bits = vec![zero; n];
        e.is_negative(&diff, &mut bits)?;
        for k in 0..pairs {
            a.extend_from_slice(&vals[2 * k + 1]);
            b.extend_from_slice(&vals[2 * k]);
        }
        for k in 0..pairs {
            a.extend_from_slice(&idx[2 * k + 1]);
            b.extend_from_slice(&idx[2 * k]);
        }
        let bits2: Vec<E::Elem> = bits.iter().chain(&bits).copied().collect();
        let mut out = vec![zero; 2 * n];
        e.select(&bits2, &a, &b, &mut out)?;
        let odd = vals.len() % 2 == 1;
        let (last_v, last_i) = (vals.last().cloned(), idx.last().cloned());
        vals = out[..n].chunks(rows).map(<[E::Elem]>::to_vec).collect();
        idx = out[n..].chunks(rows).map(<[E::Elem]>::to_vec).collect();
        if odd {
            vals.push(last_v.expect("odd count"));
            idx.push(last_i.expect("odd count"));
        }
    }
    Ok(idx.pop().unwrap_or_default())
}

/// Settings of one training server.
#[derive(Clone, Debug)]
pub struct TrainServerConfig {
    /// This server.
    pub party: PartyId,
    /// The link to the other server.
    pub link: PeerLink,
    /// The dealer's address.
    pub dealer: String,
    /// The [`keygen`] directory.
    pub keys: PathBuf,
    /// Session id, timeouts, frame limit.
    pub net: NetConfig,
    /// `job.json`.
    pub job: PathBuf,
    /// This server's share file.
    pub shares: PathBuf,
    /// Output folder: `model.bin`, `predictions.bin` (shares) and `report.json`.
    pub out: PathBuf,
    /// Checkpoint folder (this server's shares of the model state, every epoch).
    pub checkpoint: Option<PathBuf>,
    /// Continue from the latest epoch both servers have checkpointed.
    pub resume: bool,
    /// Print one line per epoch on stderr (counts and times only).
    pub progress: bool,
}

/// What a training server reports: counts and times only, never values.
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainServerReport {
    /// 0 or 1.
    pub party: u8,
    /// Epochs completed in all (resumed ones included).
    pub epochs_done: usize,
    /// The epoch training resumed from (0 for a fresh run).
    pub resumed_from: usize,
    /// Training steps run by this invocation.
    pub steps: u64,
    /// Samples trained on by this invocation.
    pub samples: u64,
    /// Seconds of training (this invocation; test predictions excluded).
    pub train_seconds: f64,
    /// Online bytes sent to the peer during training (frame headers included).
    pub train_sent: u64,
    /// Rounds during training.
    pub train_rounds: u64,
    /// Online bytes sent in all (training and test predictions).
    pub online_sent: u64,
    /// Online bytes received in all.
    pub online_received: u64,
    /// Rounds in all.
    pub rounds: u64,
    /// Bytes received from the dealer.
    pub offline_bytes: u64,
    /// What the dealer's material would take without PRG seeds.
    pub offline_full_bytes: u64,
    /// Seconds computing the test predictions.
    pub predict_seconds: f64,
    /// Seconds producing the dealer material of the phased steps (every full-size step
    /// but the first) before running them: PRG expansion and, for party 1, receiving the
    /// dealer's corrections.
    pub offline_seconds: f64,
    /// Seconds running the phased steps with their material at hand: the online phase.
    pub online_seconds: f64,
    /// Samples trained on in the phased steps.
    pub online_samples: u64,
}

fn gather(src: &[Z64], width: usize, idx: &[usize]) -> Vec<Z64> {
    let mut out = Vec::with_capacity(idx.len() * width);
    for &i in idx {
        out.extend_from_slice(&src[i * width..(i + 1) * width]);
    }
    out
}

/// The checkpoint header of `party`'s state: engine `mpc-p0` or `mpc-p1`.
fn server_header(tc: &TrainConfig, net: &Net, job: &JobSpec, party: PartyId) -> Header {
    run::header(
        tc,
        net,
        &format!("mpc-p{}", party.index()),
        job.train_samples,
    )
}

/// Runs one training server: see the [module documentation](self).
///
/// # Errors
/// Key, job, share or checkpoint files; connections; the peer (gone, out of step, another
/// job); the computation.
pub fn run_train_server(cfg: &TrainServerConfig) -> Result<TrainServerReport, ServerError> {
    let listener = match &cfg.link {
        PeerLink::Listen(a) => Some(TcpListener::bind(a).map_err(|source| net::NetError::Io {
            peer: cfg.party.peer().to_string(),
            addr: a.clone(),
            during: "bind",
            source,
        })?),
        PeerLink::Connect(_) => None,
    };
    let job = JobSpec::load(&cfg.job)?;
    let tc = job.config().map_err(ServerError::Config)?;
    let net = job.net().map_err(ServerError::Config)?;
    let me = Identity::load(&cfg.keys, Role::Party(cfg.party))?;
    let (Tagged { set, .. }, mut shares) = read_tagged(&cfg.shares, cfg.party)?;
    let lens: Vec<usize> = shares.iter().map(Vec::len).collect();
    if lens != job.share_lens(&net) {
        return Err(ServerError::File {
            path: cfg.shares.clone(),
            what: format!(
                "tensor lengths {lens:?}, but {} needs {:?} (images, labels, test images, parameters, buffers)",
                cfg.job.display(),
                job.share_lens(&net)
            ),
        });
    }
    let expected = server_header(&tc, &net, &job, cfg.party);
    let mut held = Vec::new();
    if let (false, Some(dir)) = (cfg.resume, &cfg.checkpoint) {
        // A fresh start never writes over another run's checkpoints.
        let found = checkpoint::load_all(dir);
        if found.any() {
            return Err(ServerError::Config(format!(
                "{} holds checkpoints of a run: pass --resume to continue it, or give another --checkpoint folder",
                dir.display(),
            )));
        }
    }
    if cfg.resume {
        let dir = cfg
            .checkpoint
            .as_deref()
            .ok_or_else(|| ServerError::Config("--resume needs --checkpoint DIR".into()))?;
        let found = checkpoint::load_all(dir);
        for e in &found.damaged {
            eprintln!(
                "{}: skipping a damaged checkpoint (the other may still serve): {e}",
                cfg.party
            );
        }
        for (h, st, path) in found.verified {
            checkpoint::check_matches(&h, &expected, &path)?;
            // previous.bin of another run (a folder reused) is not a candidate.
            if held
                .first()
                .is_some_and(|(h0, _): &(Header, _)| h0.run != h.run)
            {
                continue;
            }
            held.push((h, st));
        }
        if held.is_empty() && !found.damaged.is_empty() {
            return Err(ServerError::Config(format!(
                "--resume: no checkpoint in {} verifies ({} damaged)",
                dir.display(),
                found.damaged.len()
            )));
        }
        // No checkpoint at all: the run resumes from epoch 0 if the peer has none either.
    }
    // Outputs of an earlier run in this folder go now: a rerun that fails before it
    // writes its own must leave nothing that `reveal` could take for its result.
    for name in ["predictions.bin", "model.bin", "report.json"] {
        let path = cfg.out.join(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err(&path)(e));
            }
            _ => {}
        }
    }
    let (corr, link) = connect_dealer(&cfg.dealer, &me, &cfg.net)?;
    if cfg.resume && link.fixed_seed {
        return Err(ServerError::Config(format!(
            "the dealer at {} runs with a fixed seed (--insecure-dealer-seed): resuming would mask new values with masks it already used; restart the dealer without it",
            cfg.dealer
        )));
    }
    let peer = Role::Party(cfg.party.peer());
    let ch = match (&cfg.link, listener) {
        (PeerLink::Listen(_), Some(l)) => net::accept(&l, &me, &[peer], &cfg.net)?,
        (PeerLink::Connect(a), _) => net::connect(a, &me, peer, &cfg.net)?,
        (PeerLink::Listen(_), None) => {
            return Err(ServerError::Config("listen link without a listener".into()))
        }
    };
    let mut e = Mpc::new(cfg.party, tc.frac_bits, ch, corr);
    let test_x = std::mem::take(&mut shares[2]);
    let buffers = std::mem::take(&mut shares[4]);
    let params = std::mem::take(&mut shares[3]);
    let data = TrainData {
        x: std::mem::take(&mut shares[0]),
        y: std::mem::take(&mut shares[1]),
        test_x,
    };
    train_on_shares(
        &mut e, cfg, &job, &tc, &net, data, params, buffers, held, &expected, set,
    )
}

/// A server's shares of the data.
pub struct TrainData {
    /// Training images.
    pub x: Vec<Z64>,
    /// One-hot training labels.
    pub y: Vec<Z64>,
    /// Test images.
    pub test_x: Vec<Z64>,
}

#[allow(clippy::too_many_arguments)]
fn train_on_shares<C: Channel, R: Correlations>(
    e: &mut Mpc<C, R>,
    cfg: &TrainServerConfig,
    job: &JobSpec,
    tc: &TrainConfig,
    net: &Net,
    data: TrainData,
    params: Vec<Z64>,
    buffers: Vec<Z64>,
    held: Vec<(Header, checkpoint::State)>,
    expected: &Header,
    set: [u64; 2],
) -> Result<TrainServerReport, ServerError> {
    let n = job.train_samples;
    let steps_per_epoch = n.div_ceil(job.batch) as u64;
    let mut t = Trainer::new(
        tc,
        net,
        steps_per_epoch * job.epochs as u64,
        params,
        buffers,
    )?;
    let attempt_of = |h: &Header| h.attempt.as_deref().and_then(parse_id).unwrap_or([0; 2]);
    let (mut epochs, mut attempts) = ([u64::MAX; 2], [[0; 2]; 2]);
    for (i, (h, _)) in held.iter().take(2).enumerate() {
        epochs[i] = h.epochs_done as u64;
        attempts[i] = attempt_of(h);
    }
    let run = match held.first() {
        Some((h, _)) => h.run.as_deref().and_then(parse_id).unwrap_or([0; 2]),
        None => random_id(),
    };
    let hello = Hello {
        version: JOB_VERSION as u64,
        digest: job.digest(),
        resume: cfg.resume as u64,
        epochs,
        set,
        run,
        attempts,
        attempt: random_id(),
    };
    let theirs = e.exchange_public("handshake", &hello.words(), Tag::Hello)?;
    let agreed = hello
        .agree(&Hello::from_words(&theirs), cfg.party.peer())
        .map_err(ServerError::Config)?;
    let (epoch0, run) = (agreed.epoch, agreed.run);
    let expected = &Header {
        run: Some(show_id(run)),
        attempt: Some(show_id(agreed.attempt)),
        ..expected.clone()
    };

    if let Some((h, st)) = held.iter().find(|(h, _)| {
        cfg.resume && h.epochs_done == epoch0 && attempt_of(h) == agreed.from_attempt
    }) {
        t.restore(st, h.steps_done, Z64::from_bits);
    }
    let px = job.shape().len();
    let who = format!("party {}", cfg.party.index());
    let start_all = Instant::now();
    let mut report = TrainServerReport {
        party: cfg.party.index() as u8,
        resumed_from: epoch0,
        epochs_done: epoch0,
        ..Default::default()
    };
    // The dealer requests of a full-size step, recorded on the first one: every later
    // full-size step makes the same requests, which are then announced to the dealer
    // before the step so that it streams the material instead of one round trip each.
    let mut step_requests: Option<Vec<super::dealer::Request>> = None;
    // Progress lines at most this often: a user sees the run move, never a silent minute.
    let every = Duration::from_secs(10);
    let mut last_line = Instant::now();
    for epoch in epoch0..job.epochs {
        let (mut rng, order) = epoch_order(job.seed, epoch, n);
        let start = Instant::now();
        for chunk in order.chunks(job.batch) {
            let b = chunk.len();
            let full = b == job.batch;
            // A full-size step after the first one runs in two phases: the dealer material
            // of the whole step first (offline), then the protocol itself (online).
            let phased = full && step_requests.is_some();
            match &step_requests {
                Some(reqs) if full => {
                    let t0 = Instant::now();
                    e.prefetch(reqs)?;
                    e.preload(reqs)?;
                    report.offline_seconds += t0.elapsed().as_secs_f64();
                }
                None if full => e.record_requests(true),
                _ => {}
            }
            let t1 = Instant::now();
            let mut x = gather(&data.x, px, chunk);
            if job.augment {
                data::cifar::random_crop_flip(&mut x, job.shape(), &mut rng, 4);
            }
            let y = gather(&data.y, job.classes, chunk);
            // The probabilities stay shared: nothing is opened during training.
            t.step(e, x, &y, b)?;
            if phased {
                report.online_seconds += t1.elapsed().as_secs_f64();
                report.online_samples += b as u64;
            }
            if full && step_requests.is_none() {
                step_requests = Some(e.take_requests());
                e.record_requests(false);
            }
            report.steps += 1;
            report.samples += b as u64;
            if cfg.progress && last_line.elapsed() >= every {
                last_line = Instant::now();
                let tr = e.traffic();
                let done = report.samples - (epoch - epoch0) as u64 * n as u64;
                let line = format!(
                    "{who}: epoch {}/{}, {done}/{n} samples ({:.1} samples/s); {:.1} MB sent, {} rounds so far",
                    epoch + 1,
                    job.epochs,
                    done as f64 / start.elapsed().as_secs_f64().max(1e-9),
                    tr.sent as f64 / 1e6,
                    tr.rounds
                );
                eprintln!("{line}");
            }
        }
        report.epochs_done = epoch + 1;
        if let Some(dir) = &cfg.checkpoint {
            let mut h = expected.clone();
            h.epochs_done = epoch + 1;
            h.steps_done = t.step;
            checkpoint::save_keeping_previous(dir, &h, &t.state(Z64::to_bits))?;
        }
        if cfg.progress {
            let tr = e.traffic();
            let line = format!(
                "{who}: epoch {}/{} in {:.1} s ({:.1} samples/s); {:.1} MB sent, {} rounds so far",
                epoch + 1,
                job.epochs,
                start.elapsed().as_secs_f64(),
                n as f64 / start.elapsed().as_secs_f64().max(1e-9),
                tr.sent as f64 / 1e6,
                tr.rounds
            );
            eprintln!("{line}");
            last_line = Instant::now();
        }
    }
    report.train_seconds = start_all.elapsed().as_secs_f64();
    let tr = e.traffic();
    (report.train_sent, report.train_rounds) = (tr.sent, tr.rounds);
    let start = Instant::now();
    let mut preds = Vec::with_capacity(job.test_samples);
    let eval_batch = job.batch.max(256);
    let test_idx: Vec<usize> = (0..job.test_samples).collect();
    for chunk in test_idx.chunks(eval_batch) {
        let x = gather(&data.test_x, px, chunk);
        let logits = t.logits(e, x, chunk.len())?;
        preds.extend(argmax_rows(e, &logits, chunk.len(), job.classes)?);
    }
    report.predict_seconds = start.elapsed().as_secs_f64();
    fs::create_dir_all(&cfg.out).map_err(io_err(&cfg.out))?;
    let me = tag(cfg.party, set, run);
    write_shares(&cfg.out.join("predictions.bin"), &[me.clone(), preds])?;
    write_shares(
        &cfg.out.join("model.bin"),
        &[me, t.params.clone(), t.buffers.clone()],
    )?;
    let (tr, off) = (e.traffic(), e.offline());
    report.online_sent = tr.sent;
    report.online_received = tr.received;
    report.rounds = tr.rounds;
    report.offline_bytes = off.bytes;
    report.offline_full_bytes = off.full_bytes;
    write_json(&cfg.out.join("report.json"), &report)?;
    e.finish()?;
    Ok(report)
}

/// What the owner reconstructs.
#[derive(Clone, Debug)]
pub struct Revealed {
    /// The predicted class of each test image.
    pub predictions: Vec<usize>,
    /// Their accuracy against the owner's labels.
    pub test_accuracy: f64,
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
    let job = owner.job;
    let net = job.net().map_err(ServerError::Config)?;
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
    let tc = job.config().map_err(|what| ServerError::File {
        path: owner_file.to_path_buf(),
        what,
    })?;
    let h = Header {
        epochs_done: job.epochs,
        steps_done: (job.train_samples.div_ceil(job.batch) * job.epochs) as u64,
        ..run::header(&tc, &net, "plain", job.train_samples)
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
        checkpoint,
    })
}

/// The result of `ringnn train --engine mpc`: the training result plus traffic.
#[derive(Clone, Debug, Serialize)]
pub struct MpcTrainResult {
    /// The common fields (loss and training accuracy are not revealed: `null`).
    #[serde(flatten)]
    pub result: run::TrainResult,
    /// Online bytes each server sent to the other (training and predictions).
    pub bytes_sent: [u64; 2],
    /// Rounds (the same for both servers).
    pub rounds: u64,
    /// Bytes each server received from the dealer.
    pub offline_bytes: [u64; 2],
    /// Training steps run.
    pub steps: u64,
    /// Online bytes per training step, per server.
    pub bytes_per_step: [f64; 2],
    /// Rounds per training step.
    pub rounds_per_step: f64,
    /// Samples per second of the online phase alone (steps whose dealer material was
    /// produced beforehand; the slower server).
    pub online_samples_per_sec: f64,
    /// Seconds of the offline phase of those steps (the slower server).
    pub offline_seconds: f64,
    /// The working folder (keys, shares, checkpoints, outputs) when it is kept
    /// (`--checkpoint DIR`); absent when it was a temporary folder, removed at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<PathBuf>,
}

/// Arguments of a training server process (after the binary name).
pub fn server_args(cfg: &TrainServerConfig) -> Vec<String> {
    let mut v = strings(&["server"]);
    v.extend(connection_args(
        cfg.party,
        &cfg.link,
        &cfg.dealer,
        &cfg.keys,
        &cfg.net,
    ));
    v.extend(strings(&[
        "--job",
        &cfg.job.display().to_string(),
        "--shares",
        &cfg.shares.display().to_string(),
        "--out",
        &cfg.out.display().to_string(),
    ]));
    if let Some(c) = &cfg.checkpoint {
        v.extend(strings(&["--checkpoint", &c.display().to_string()]));
    }
    if cfg.resume {
        v.push("--resume".into());
    }
    v
}

/// `ringnn train --engine mpc`: shares the data as the owner, starts the dealer and both
/// servers as child processes of `exe` over loopback TLS, waits, and reveals the results.
///
/// The working folder is `cfg.checkpoint` (kept; `--resume` continues from the servers'
/// checkpoints in it) or a private temporary folder (mode 0700), removed afterwards, also
/// when the run fails or is stopped with Ctrl-C or SIGTERM (the children are stopped
/// first). Its path is printed on standard error while the run goes on. The children's
/// output is forwarded line by line, each line prefixed with its process's name.
///
/// # Errors
/// Bad data or configuration, a failed or interrupted process (naming it), or bad
/// outputs. `insecure_dealer_seed` fixes the dealer's randomness for reproducible tests:
/// anyone who knows it can unmask every message, so it is never for real data; it is
/// refused with `--resume`, which would reuse the dealer's masks on new values.
pub fn train_mpc(
    cfg: &TrainConfig,
    exe: &Path,
    insecure_dealer_seed: Option<u64>,
) -> Result<MpcTrainResult, ServerError> {
    if cfg.resume && insecure_dealer_seed.is_some() {
        return Err(ServerError::Config(
            "--insecure-dealer-seed with --resume would mask new values with the dealer's old masks: resume without a fixed seed".into(),
        ));
    }
    super::launch::stop_on_signal();
    let temp;
    let dir = match &cfg.checkpoint {
        Some(d) => {
            eprintln!("ringnn: secure training in {} (kept)", d.display());
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("ringnn-mpc-")
                .tempdir()
                .map_err(|e| ServerError::Config(format!("a temporary folder: {e}")))?;
            eprintln!(
                "ringnn: secure training in {} (keys and shares; removed at the end)",
                temp.path().display()
            );
            temp.path().to_path_buf()
        }
    };
    let temporary = cfg.checkpoint.is_none();
    train_mpc_in(cfg, exe, &dir, insecure_dealer_seed).map(|mut r| {
        if temporary {
            r.result.checkpoint = None;
            r.work_dir = None;
        }
        r
    })
}

fn train_mpc_in(
    cfg: &TrainConfig,
    exe: &Path,
    dir: &Path,
    insecure_dealer_seed: Option<u64>,
) -> Result<MpcTrainResult, ServerError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let shared = share_job(cfg, dir)?;
    let keys = dir.join("keys");
    keygen(&keys)?;
    super::launch::check_interrupted()?;
    let net = NetConfig::new(SessionId::random());
    let bind =
        |a: &str| TcpListener::bind(a).map_err(|e| ServerError::Config(format!("bind {a}: {e}")));
    let addr = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.to_string())
            .map_err(|e| ServerError::Config(e.to_string()))
    };
    let (dealer_addr, p0_addr) = {
        let (d, p) = (bind("127.0.0.1:0")?, bind("127.0.0.1:0")?);
        (addr(&d)?, addr(&p)?)
        // Both ports are released here for the children (another process could take one
        // in between: a rare failure, reported as a failed child).
    };
    let server = |party: PartyId| TrainServerConfig {
        party,
        link: match party {
            PartyId::P0 => PeerLink::Listen(p0_addr.clone()),
            PartyId::P1 => PeerLink::Connect(p0_addr.clone()),
        },
        dealer: dealer_addr.clone(),
        keys: keys.clone(),
        net: net.clone(),
        job: shared.job_file.clone(),
        shares: shared.shares[party.index()].clone(),
        out: dir.join(format!("server{}", party.index())).join("out"),
        checkpoint: Some(
            dir.join(format!("server{}", party.index()))
                .join("checkpoint"),
        ),
        resume: cfg.resume,
        progress: cfg.progress,
    };
    let servers = [server(PartyId::P0), server(PartyId::P1)];
    let mut children = vec![(
        "the dealer".to_string(),
        super::launch::spawn_prefixed(
            exe,
            dealer_args(&dealer_addr, &keys, &net, insecure_dealer_seed),
            "dealer",
        )?,
    )];
    for s in &servers {
        let name = format!("server {}", s.party.index());
        let child = super::launch::spawn_prefixed(exe, server_args(s), &name)?;
        children.push((name, child));
    }
    let failed = wait_all(&mut children, net.timeout + Duration::from_secs(10));
    if !failed.is_empty() {
        return Err(ServerError::Process(format!(
            "secure training failed: {}",
            failed.join("; ")
        )));
    }
    let reports: Vec<TrainServerReport> = servers
        .iter()
        .map(|s| read_json(&s.out.join("report.json")))
        .collect::<Result<_, _>>()?;
    let revealed = reveal(
        &shared.owner_file,
        [&servers[0].out, &servers[1].out],
        &dir.join("model"),
    )?;
    let job = &shared.job;
    let r0 = &reports[0];
    let secs = reports.iter().map(|r| r.train_seconds).fold(0.0, f64::max);
    let steps = r0.steps.max(1);
    let result = run::TrainResult {
        model: job.model.clone(),
        data: job.data.clone(),
        engine: "mpc".into(),
        frac_bits: Some(job.frac_bits),
        exp: job.exp.clone(),
        tanh: cfg.tanh.name().into(),
        grad: job.grad.clone(),
        subtract_max: run::training_softmax(cfg).subtract_max,
        epochs: job.epochs,
        train_samples: job.train_samples,
        test_samples: job.test_samples,
        test_accuracy: revealed.test_accuracy,
        perplexity: None,
        train_loss: f64::NAN,
        train_seconds: secs,
        samples_per_sec: r0.samples as f64 / secs.max(1e-9),
        overflow_count: 0,
        parameters: job.net().map_err(ServerError::Config)?.n_params,
        history: Vec::new(),
        checkpoint: Some(revealed.checkpoint),
    };
    Ok(MpcTrainResult {
        result,
        bytes_sent: [reports[0].online_sent, reports[1].online_sent],
        rounds: r0.rounds,
        offline_bytes: [reports[0].offline_bytes, reports[1].offline_bytes],
        steps: r0.steps,
        bytes_per_step: [0, 1].map(|i| reports[i].train_sent as f64 / steps as f64),
        rounds_per_step: r0.train_rounds as f64 / steps as f64,
        online_samples_per_sec: reports
            .iter()
            .map(|r| r.online_samples as f64 / r.online_seconds.max(1e-9))
            .fold(f64::INFINITY, f64::min),
        offline_seconds: reports
            .iter()
            .map(|r| r.offline_seconds)
            .fold(0.0, f64::max),
        work_dir: Some(dir.to_path_buf()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::local::{run_in_process, LocalConfig};
    use crate::mpc::{MemChannel, MpcError};

    fn job(model: &str, batch: usize, n: usize) -> (JobSpec, TrainConfig, Net) {
        let job = JobSpec {
            version: JOB_VERSION,
            model: model.into(),
            data: "synthetic".into(),
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
            train_samples: n,
            test_samples: n,
            frac_bits: 13,
            exp: "pwl4".into(),
            grad: "exact".into(),
            subtract_max: false,
            epochs: 1,
            batch,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
            schedule: "constant".into(),
            seed: 3,
            augment: false,
        };
        let tc = job.config().unwrap();
        let net = job.net().unwrap();
        (job, tc, net)
    }

    /// Encoded synthetic images, one-hot labels, initial parameters and buffers.
    fn plain_inputs(net: &Net, n: usize) -> [Vec<Z64>; 4] {
        let split = data::synth::synthetic_digits(n, 1, 9);
        let p = Plain::with_frac_bits(13).unwrap();
        let enc = |xs: &[f64]| {
            let mut o = vec![Z64::ZERO; xs.len()];
            p.encode_slice(xs, &mut o).unwrap();
            o
        };
        let x: Vec<f64> = split.train.images.iter().map(|&v| v as f64).collect();
        let mut y = vec![0.0; n * 10];
        for (r, &l) in split.train.labels.iter().enumerate() {
            y[r * 10 + l as usize] = 1.0;
        }
        let (p0, b0) = net.init(3);
        [enc(&x), enc(&y), enc(&p0), enc(&b0)]
    }

    #[test]
    fn a_lenet_training_step_on_shares_matches_plain() {
        step_on_shares_matches_plain("lenet", 4);
    }

    #[test]
    fn a_resnet20_training_step_on_shares_matches_plain() {
        // Batch normalisation (statistics, the fixed-point inverse square root), residual
        // blocks and global average pooling on shares.
        step_on_shares_matches_plain("resnet20", 8);
    }

    fn step_on_shares_matches_plain(model: &str, b: usize) {
        let (_, tc, net) = job(model, b, b);
        let [x, y, p0, b0] = plain_inputs(&net, b);
        // Plain: one step.
        let mut pe = Plain::with_frac_bits(13).unwrap();
        let mut tp = Trainer::new(&tc, &net, 1, p0.clone(), b0.clone()).unwrap();
        let probs_plain = tp.step(&mut pe, x.clone(), &y, b).unwrap();
        // Sensitivity: Plain again with every input moved by one ulp at random.
        let mut prng = ChaCha20Rng::seed_from_u64(11);
        let xj: Vec<Z64> = x
            .iter()
            .map(|&v| v + Z64(rand::Rng::random_range(&mut prng, 0..3u64).wrapping_sub(1)))
            .collect();
        let mut tq = Trainer::new(&tc, &net, 1, p0.clone(), b0.clone()).unwrap();
        tq.step(&mut pe, xj, &y, b).unwrap();
        let sens = tq
            .params
            .iter()
            .zip(&tp.params)
            .map(|(&u, &v)| (u - v).to_signed().abs())
            .max()
            .unwrap();
        eprintln!("{model}: inputs moved by 1 ulp move Plain's parameters by up to {sens} ulp");
        // Two parties: the same step on shares.
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let sh = |v: &[Z64], rng: &mut ChaCha20Rng| share(v, rng);
        let (xs, ys, ps, bs) = (
            sh(&x, &mut rng),
            sh(&y, &mut rng),
            sh(&p0, &mut rng),
            sh(&b0, &mut rng),
        );
        // A fixed dealer seed keeps the test deterministic. Over dealer seeds 1 to 8:
        // LeNet within 1 ulp (probabilities) and 2-6 ulp (parameters), ResNet-20 within
        // 3-8 and 144-320 ulp. With OS randomness ResNet-20 once exceeded 525.
        let mut lc = LocalConfig::new(tc.frac_bits);
        lc.dealer_seed = Some([1; 32]);
        let out = run_in_process(&lc, |e| {
            let i = e.party().index();
            let mut t = Trainer::new(&tc, &net, 1, ps[i].clone(), bs[i].clone()).unwrap();
            let probs = t.step(e, xs[i].clone(), &ys[i], b).unwrap();
            (probs, t.params)
        });
        let probs = reconstruct(&out[0].0, &out[1].0);
        let params = reconstruct(&out[0].1, &out[1].1);
        let ulp = |a: &[Z64], b: &[Z64]| {
            a.iter()
                .zip(b)
                .map(|(&u, &v)| (u - v).to_signed().abs())
                .max()
                .unwrap()
        };
        let (dp, dw) = (ulp(&probs, &probs_plain), ulp(&params, &tp.params));
        eprintln!(
            "{model} step: probabilities within {dp} ulp, parameters within {dw} ulp of Plain"
        );
        // Every truncation may differ by one ulp (stochastic vs nearest rounding). How far
        // that carries depends on the network's conditioning, measured above by moving
        // Plain's inputs by one ulp: LeNet carries it to a few ulp, ResNet-20 at batch 8
        // (batch statistics, the inverse square root) to about 175. The two-party step
        // must stay within three times that (at least 16 ulp = 0.002); a wrong protocol
        // is off by far more.
        let tol = (3 * sens).max(16);
        assert!(dp <= 16, "{model}: probabilities differ by {dp} ulp");
        assert!(
            dw <= tol,
            "{model}: parameters differ by {dw} ulp (tolerance {tol})"
        );
        assert!(params != p0, "the step changed nothing");
    }

    #[test]
    fn a_bad_frame_mid_training_fails_naming_the_peer_and_keeps_the_checkpoint() {
        let n = 8;
        let (job, tc, net) = job("mlp", 4, n);
        let [x, y, p0, b0] = plain_inputs(&net, n);
        let dir = std::env::temp_dir().join(format!("ringnn-badframe-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let ck = dir.join("ck");
        let mut good = server_header(&tc, &net, &job, PartyId::P0);
        good.epochs_done = 1;
        good.steps_done = 2;
        good.run = Some(show_id([3, 4]));
        let st = checkpoint::State {
            params: p0.iter().map(|v| v.to_bits()).collect(),
            velocity: vec![0; net.n_params],
            buffers: b0.iter().map(|v| v.to_bits()).collect(),
        };
        checkpoint::save(&ck, &good, &st).unwrap();
        let before = fs::read(checkpoint::path_in(&ck)).unwrap();
        let dealer = std::sync::Arc::new(crate::mpc::Dealer::from_seed([7; 32]));
        let [c0, _] = dealer.correlations();
        let (ch0, mut ch1) = MemChannel::pair();
        let cfg = TrainServerConfig {
            party: PartyId::P0,
            link: PeerLink::Listen(String::new()),
            dealer: String::new(),
            keys: PathBuf::new(),
            net: NetConfig::new(SessionId::random()),
            job: PathBuf::new(),
            shares: PathBuf::new(),
            out: dir.join("out"),
            checkpoint: Some(ck.clone()),
            resume: true,
            progress: false,
        };
        let digest = job.digest();
        let peer = std::thread::spawn(move || {
            // A peer that greets correctly, then sends a frame of another step.
            use crate::mpc::wire::{emit_words, Header};
            // Resuming from epoch 1 of run [3, 4] on sharing [1, 2], like party 0.
            let hello = [
                JOB_VERSION as u64,
                digest,
                1,
                1,
                u64::MAX,
                1,
                2,
                3,
                4,
                0,
                0,
                0,
                0,
                5,
                5,
            ];
            let mut buf = Header {
                tag: Tag::Hello as u32,
                words: Hello::WORDS as u32,
            }
            .emit()
            .to_vec();
            emit_words(&hello, &mut buf);
            buf.extend_from_slice(&Header { tag: 99, words: 3 }.emit());
            emit_words(&[1, 2, 3], &mut buf);
            ch1.write_all(&buf).unwrap();
            ch1.flush().unwrap();
            let mut sink = [0u8; 8];
            while ch1.read_exact(&mut sink).is_ok() {}
        });
        let mut e = Mpc::new(PartyId::P0, tc.frac_bits, ch0, c0);
        let data = TrainData {
            x,
            y,
            test_x: vec![Z64::ZERO; n * 784],
        };
        let held = vec![(good.clone(), st.clone())];
        let err = train_on_shares(
            &mut e,
            &cfg,
            &job,
            &tc,
            &net,
            data,
            p0,
            b0,
            held,
            &good,
            [1, 2],
        )
        .unwrap_err();
        drop(e);
        peer.join().unwrap();
        let text = err.to_string();
        assert!(
            matches!(err, ServerError::Mpc(MpcError::Desync { .. })) && text.contains("party 1"),
            "{text}"
        );
        assert_eq!(fs::read(checkpoint::path_in(&ck)).unwrap(), before);
        assert!(!checkpoint::previous_in(&ck).exists());
        assert!(!dir.join("out").exists(), "no output after a failure");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn argmax_on_plain_takes_the_first_largest() {
        let mut p = Plain::with_frac_bits(13).unwrap();
        let rows: [&[f64]; 4] = [
            &[0.1, 0.5, -2.0, 0.5, 0.0],
            &[3.0, -1.0, 2.9, 0.0, 0.0],
            &[-5.0, -4.0, -3.0, -2.0, -1.0],
            &[0.0, 0.0, 0.0, 0.0, 0.0],
        ];
        let flat: Vec<Z64> = rows
            .iter()
            .flat_map(|r| r.iter().map(|&v| p.public(v)))
            .collect();
        let got = argmax_rows(&mut p, &flat, 4, 5).unwrap();
        let got: Vec<i64> = got.iter().map(|v| v.to_signed()).collect();
        assert_eq!(got, vec![1, 0, 4, 0]);
    }
}
