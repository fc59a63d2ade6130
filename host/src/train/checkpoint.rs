//! Checkpoints: written atomically each epoch, verified on load.
//!
//! Layout: the magic `RINGNNCK`, a format version (u32 LE), the length of a JSON header
//! (u32 LE), the header (model, engine, precision, approximation, shapes, progress), then
//! parameters, velocities and buffers as raw element bits (u64 LE each), then the CRC-32
//! ([`crate::files::crc32`], u32 LE) of everything before it. The checksum detects
//! corruption (a torn or edited file), not tampering.
//!
//! Version 1 ended with a 64-bit FNV-1a instead; it is refused with its version named (a
//! checkpoint lives as long as one training run, so retraining is the remedy).
//!
//! Writing goes to `checkpoint.bin.tmp`, is flushed to disk, then renamed over
//! `checkpoint.bin`: a crash leaves either the old or the new checkpoint, never a mix.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"RINGNNCK";
/// The format version this build writes and reads: 2 since the checksum became CRC-32.
const VERSION: u32 = 2;
/// Magic, version and header length: the fixed part before the header.
const PREFIX: usize = 16;
/// The CRC-32 at the end.
const SEAL: usize = 4;

/// What a checkpoint records besides the tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub data: String,
    /// Engine kind.
    pub engine: String,
    /// Fractional bits (0 for float).
    pub frac_bits: u32,
    /// e^x approximation.
    pub exp: String,
    /// Gradient mode.
    pub grad: String,
    /// Number of parameters.
    pub n_params: usize,
    /// Number of buffer elements.
    pub n_buffers: usize,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimiser steps done.
    pub steps_done: u64,
    /// The run's seed.
    pub seed: u64,
    /// Training samples used per epoch.
    pub train_samples: usize,
    /// The training run a two-party server's checkpoint belongs to (32 hex digits; both
    /// servers' checkpoints of one run carry the same). Absent for plaintext runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The attempt (one start or resume of the two servers, 32 hex digits) that wrote
    /// this two-party checkpoint: both servers' shares of an epoch add up to the model
    /// only when one attempt wrote both. Absent for plaintext runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
}

/// The tensors of a checkpoint, as raw element bits.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Parameters.
    pub params: Vec<u64>,
    /// Momentum velocities.
    pub velocity: Vec<u64>,
    /// Buffers (batch-norm running statistics).
    pub buffers: Vec<u64>,
}

/// Checkpoint errors; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not a valid checkpoint.
    #[error("checkpoint {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint belongs to a different run.
    #[error(
        "checkpoint {path} does not match this run: {field} is {found} there but {expected} here"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The field that differs.
        field: &'static str,
        /// In the checkpoint.
        found: String,
        /// In this run.
        expected: String,
    },
}

/// The checkpoint file in `dir`.
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join("checkpoint.bin")
}

/// Encodes a checkpoint.
pub fn encode(header: &Header, state: &State) -> Vec<u8> {
    let json = serde_json::to_vec(header).expect("a header always serialises");
    let mut out = Vec::with_capacity(
        PREFIX + SEAL + json.len() + 8 * (state.params.len() * 2 + state.buffers.len()),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    for v in state
        .params
        .iter()
        .chain(&state.velocity)
        .chain(&state.buffers)
    {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let sum = crate::files::crc32(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Decodes and verifies a checkpoint read from `path`.
///
/// # Errors
/// [`CheckpointError::Corrupt`] for a bad magic, version, length or checksum. The
/// version is read before the checksum, so that a file of another version (whose checksum
/// is another function) is refused as such.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(Header, State), CheckpointError> {
    let bad = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(bad("not a ringnn checkpoint (bad magic)".into()));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        let what = if version == 1 {
            " (an FNV-1a checksum, before ringnn moved to CRC-32): train again to resume"
        } else {
            ""
        };
        return Err(bad(format!(
            "format version {version}{what}; this ringnn reads version {VERSION}"
        )));
    }
    if bytes.len() < PREFIX + SEAL {
        return Err(bad(format!(
            "{} bytes, shorter than the {} of an empty checkpoint",
            bytes.len(),
            PREFIX + SEAL
        )));
    }
    let (body, tail) = bytes.split_at(bytes.len() - SEAL);
    let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
    let found = crate::files::crc32(body);
    if found != stored {
        return Err(bad(format!(
            "checksum mismatch (stored {stored:08x}, computed {found:08x}): the file is torn or was modified"
        )));
    }
    let hlen = u32::from_le_bytes(body[12..PREFIX].try_into().expect("4 bytes")) as usize;
    let hend = PREFIX
        .checked_add(hlen)
        .filter(|&e| e <= body.len())
        .ok_or_else(|| bad(format!("header length {hlen} runs past the end")))?;
    let header: Header = serde_json::from_slice(&body[PREFIX..hend])
        .map_err(|e| bad(format!("header at byte {PREFIX}: {e}")))?;
    let words = &body[hend..];
    let want = header
        .n_params
        .checked_mul(2)
        .and_then(|v| v.checked_add(header.n_buffers))
        .and_then(|v| v.checked_mul(8))
        .ok_or_else(|| bad("tensor sizes overflow".into()))?;
    if words.len() != want {
        return Err(bad(format!(
            "byte {hend}: expected {want} bytes of tensors, found {}",
            words.len()
        )));
    }
    let mut it = words
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
    let params = it.by_ref().take(header.n_params).collect();
    let velocity = it.by_ref().take(header.n_params).collect();
    let buffers = it.collect();
    Ok((
        header,
        State {
            params,
            velocity,
            buffers,
        },
    ))
}

/// Writes the checkpoint into `dir` atomically (temporary file, sync, rename), mode 0600
/// (it holds a model or a server's shares of one).
///
/// # Errors
/// [`CheckpointError::Io`] naming the file.
pub fn save(dir: &Path, header: &Header, state: &State) -> Result<PathBuf, CheckpointError> {
    let path = path_in(dir);
    std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    crate::files::write_private(&path, &encode(header, state)).map_err(|source| {
        CheckpointError::Io {
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

/// The checkpoint [`save_keeping_previous`] moved aside in `dir`.
pub fn previous_in(dir: &Path) -> PathBuf {
    dir.join("previous.bin")
}

/// Like [`save`], but first moves the current checkpoint to `previous.bin`, so that the
/// last two epochs survive. Two servers that crash at different moments can then still
/// agree on an epoch both of them finished. Each step is a rename: a crash leaves
/// `checkpoint.bin` or `previous.bin` (or both) whole.
///
/// # Errors
/// [`CheckpointError::Io`] naming the file.
pub fn save_keeping_previous(
    dir: &Path,
    header: &Header,
    state: &State,
) -> Result<PathBuf, CheckpointError> {
    let (cur, prev) = (path_in(dir), previous_in(dir));
    if cur.exists() {
        std::fs::rename(&cur, &prev)
            .map_err(|source| CheckpointError::Io { path: prev, source })?;
    }
    save(dir, header, state)
}

/// The checkpoints of a folder: those that verify, newest file first, and those that
/// exist but do not.
#[derive(Debug, Default)]
pub struct Found {
    /// Verified checkpoints (`checkpoint.bin`, then `previous.bin`) and their paths.
    pub verified: Vec<(Header, State, PathBuf)>,
    /// Files that exist but cannot be read or do not verify.
    pub damaged: Vec<CheckpointError>,
}

impl Found {
    /// Whether the folder holds any checkpoint file, whole or not.
    pub fn any(&self) -> bool {
        !self.verified.is_empty() || !self.damaged.is_empty()
    }
}

/// The checkpoints in `dir` (`checkpoint.bin`, then `previous.bin`), each verified; missing
/// files are skipped, and a damaged one does not hide the other.
pub fn load_all(dir: &Path) -> Found {
    let mut found = Found::default();
    for path in [path_in(dir), previous_in(dir)] {
        match std::fs::read(&path) {
            Ok(bytes) => match decode(&bytes, &path) {
                Ok((h, s)) => found.verified.push((h, s, path)),
                Err(e) => found.damaged.push(e),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => found.damaged.push(CheckpointError::Io { path, source }),
        }
    }
    found
}

/// Reads and verifies the checkpoint in `dir`.
///
/// # Errors
/// [`CheckpointError`] naming the file.
pub fn load(dir: &Path) -> Result<(Header, State), CheckpointError> {
    let path = path_in(dir);
    let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Io {
        path: path.clone(),
        source,
    })?;
    decode(&bytes, &path)
}

/// Checks that `found` (from the checkpoint) belongs to the run described by `expected`
/// (everything but the progress fields).
///
/// # Errors
/// [`CheckpointError::Mismatch`] naming the first field that differs.
pub fn check_matches(
    found: &Header,
    expected: &Header,
    path: &Path,
) -> Result<(), CheckpointError> {
    let fields: [(&'static str, String, String); 8] = [
        ("model", found.model.clone(), expected.model.clone()),
        ("data", found.data.clone(), expected.data.clone()),
        ("engine", found.engine.clone(), expected.engine.clone()),
        (
            "frac_bits",
            found.frac_bits.to_string(),
            expected.frac_bits.to_string(),
        ),
        ("exp", found.exp.clone(), expected.exp.clone()),
        ("grad", found.grad.clone(), expected.grad.clone()),
        (
            "n_params",
            found.n_params.to_string(),
            expected.n_params.to_string(),
        ),
        (
            "train_samples",
            found.train_samples.to_string(),
            expected.train_samples.to_string(),
        ),
    ];
    for (field, f, e) in fields {
        if f != e {
            return Err(CheckpointError::Mismatch {
                path: path.to_path_buf(),
                field,
                found: f,
                expected: e,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Header, State) {
        (
            Header {
                model: "mlp".into(),
                data: "synthetic".into(),
                engine: "plain".into(),
                frac_bits: 13,
                exp: "pwl4".into(),
                grad: "exact".into(),
                n_params: 3,
                n_buffers: 2,
                epochs_done: 1,
                steps_done: 10,
                seed: 7,
                train_samples: 100,
                run: None,
                attempt: None,
            },
            State {
                params: vec![1, 2, u64::MAX],
                velocity: vec![4, 5, 6],
                buffers: vec![7, 8],
            },
        )
    }

    #[test]
    fn round_trip_and_atomic_save() {
        let (h, s) = sample();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        save(&dir, &h, &s).unwrap();
        let (h2, s2) = load(&dir).unwrap();
        assert_eq!((h2, s2), (h.clone(), s.clone()));
        assert!(!dir.join("checkpoint.bin.tmp").exists());
    }

    /// The layout pinned: the version and a CRC-32 (IEEE) of everything before it, so
    /// that a change of checksum cannot pass unnoticed without a new version.
    #[test]
    fn version_2_ends_with_the_crc32_of_the_rest() {
        let (h, s) = sample();
        let bytes = encode(&h, &s);
        assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        assert_eq!(tail, crc32fast::hash(body).to_le_bytes());
        // CRC-32/ISO-HDLC's check value: the function is the standard one.
        assert_eq!(crate::files::crc32(b"123456789"), 0xcbf4_3926);
    }

    /// A version 1 checkpoint (FNV-1a, 64 bits) is refused with the file and its version
    /// named, whether or not its old checksum is intact.
    #[test]
    fn a_version_1_checkpoint_is_refused_by_name_and_version() {
        let (h, s) = sample();
        let mut v1 = encode(&h, &s);
        v1.truncate(v1.len() - 4);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        // Version 1's checksum, FNV-1a (64 bits), as it was written.
        let sum = v1.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        v1.extend_from_slice(&sum.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path_in(dir.path()), &v1).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&path_in(dir.path()).display().to_string())
                && err.contains("format version 1")
                && err.contains("reads version 2"),
            "{err}"
        );
        let mut future = encode(&h, &s);
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        let err = decode(&future, Path::new("c.bin")).unwrap_err().to_string();
        assert!(
            err.contains("c.bin") && err.contains("format version 3"),
            "{err}"
        );
    }

    #[test]
    fn any_flipped_byte_or_truncation_is_an_error_naming_the_file() {
        let (h, s) = sample();
        let bytes = encode(&h, &s);
        let p = Path::new("/some/dir/checkpoint.bin");
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            let err = decode(&b, p).unwrap_err().to_string();
            assert!(err.contains("/some/dir/checkpoint.bin"), "{err}");
        }
        for cut in [0, 7, 20, bytes.len() - 1] {
            assert!(decode(&bytes[..cut], p).is_err());
        }
    }

    #[test]
    fn mismatch_names_the_field() {
        let (h, _) = sample();
        let mut other = h.clone();
        other.frac_bits = 16;
        let err = check_matches(&h, &other, Path::new("c.bin"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("frac_bits") && err.contains("13") && err.contains("16"),
            "{err}"
        );
    }

    /// Issue 14, drill 5: a damaged previous checkpoint does not hide the newest, nor a
    /// damaged newest the previous; both are reported.
    #[test]
    fn one_damaged_file_does_not_hide_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let (h, st) = sample();
        let mut h2 = h.clone();
        h2.epochs_done += 1;
        save_keeping_previous(dir.path(), &h, &st).unwrap();
        save_keeping_previous(dir.path(), &h2, &st).unwrap();
        let prev = previous_in(dir.path());
        let bytes = std::fs::read(&prev).unwrap();
        std::fs::write(&prev, &bytes[..bytes.len() / 2]).unwrap();
        let found = load_all(dir.path());
        assert_eq!(found.verified.len(), 1);
        assert_eq!(found.verified[0].0, h2);
        assert_eq!(found.damaged.len(), 1);
        assert!(found.damaged[0].to_string().contains("previous.bin"));
        std::fs::write(&prev, &bytes).unwrap();
        let cur = path_in(dir.path());
        let mut b = std::fs::read(&cur).unwrap();
        b[30] ^= 1;
        std::fs::write(&cur, &b).unwrap();
        let found = load_all(dir.path());
        assert_eq!(found.verified.len(), 1);
        assert_eq!(found.verified[0].0, h);
        assert!(found.damaged[0].to_string().contains("checkpoint.bin"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            save(dir.path(), &h, &st).unwrap();
            let mode = std::fs::metadata(&cur).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "a checkpoint holds a model or shares");
        }
    }
}
