//! The data owner's side of secure training: share the data and the initial model
//! between the two servers ([`share_job`], `ringnn share`), and reconstruct what they
//! return ([`reveal`], `ringnn reveal`): the trained model and one predicted class per test
//! image, scored against the labels only the owner holds.

use super::job::{
    io_err, parse_id, random_id, read_tagged, show_id, tag, write_sealed, write_shares, JobSpec,
    Tagged,
};
use super::server::ServerError;
use super::{reconstruct, share, PartyId};
use crate::train::checkpoint::{self, Header};
use crate::train::run;
use crate::train::{Model, TrainConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::{Plain, Z64};
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
    cfg.validate()
        .map_err(|e| ServerError::Config(e.to_string()))?;
    if cfg.model == Model::Seq2seq {
        return Err(ServerError::Config(
            "the mpc engine trains the image models (mlp, lenet, resnet*); seq2seq is not supported"
                .into(),
        ));
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
        checkpoint,
    })
}
