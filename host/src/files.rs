//! Files that cross a crash or trust boundary: written atomically, readable by their
//! owner only, and sealed with a checksum that is verified before anything is trusted.
//!
//! Share files, server outputs, checkpoints, the job and owner files, the revealed model
//! all hold shares, labels or models. [`write_private`] writes them beside their target,
//! flushes them to disk and renames them over it (a crash leaves the old file or the new
//! one, never a torn one), with mode 0600 whatever the umask. [`write_sealed_json`] and
//! [`read_sealed_json`] add a CRC-32 to a JSON record, so that a flipped byte in a label
//! or a learning rate is refused instead of read.
//!
//! # Security
//! CRC-32 detects accidents (a torn write, a flipped bit, an edited file), not an
//! adversary who can rewrite the file: one who can write a server's files is that server.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// CRC-32 (IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Writes `bytes` to `path` atomically, with mode 0600 on Unix.
///
/// # Errors
/// The file or its temporary sibling cannot be written or renamed.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A temporary file left by a crash may carry another mode: start afresh.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    #[cfg(unix)]
    {
        // The umask can only clear bits, but say exactly what is meant.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The field that holds a sealed record's checksum.
const SEAL: &str = "crc32";

/// Writes `value` as pretty JSON with a `crc32` field: the CRC-32 of the record's compact
/// JSON without that field. Atomic, mode 0600 ([`write_private`]).
///
/// # Errors
/// The file cannot be written.
///
/// # Panics
/// If `value` does not serialise to a JSON object (a programming error).
pub fn write_sealed_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let body = serde_json::to_vec(value).expect("records serialise");
    let mut v = serde_json::to_value(value).expect("records serialise");
    let obj = v.as_object_mut().expect("a sealed record is a JSON object");
    obj.insert(SEAL.into(), format!("{:08x}", crc32(&body)).into());
    let text = serde_json::to_vec_pretty(&v).expect("records serialise");
    write_private(path, &text)
}

/// Reads a [`write_sealed_json`] record and verifies its checksum.
///
/// # Errors
/// A message for the caller to put beside the path: unreadable, not JSON, no checksum,
/// a checksum that does not match, or fields that do not fit `T`.
pub fn read_sealed_json<T: Serialize + DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = fs::read(path).map_err(|e| e.to_string())?;
    let mut v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("not JSON: {e}"))?;
    let stored = v
        .as_object_mut()
        .and_then(|o| o.remove(SEAL))
        .ok_or_else(|| format!("no \"{SEAL}\" field: not written by this version of ringnn"))?;
    let stored = stored
        .as_str()
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .ok_or_else(|| format!("\"{SEAL}\" is not 8 hexadecimal digits"))?;
    let value: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&value).expect("records serialise");
    let found = crc32(&body);
    if found != stored {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {found:08x}): the file is damaged or was edited"
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Rec {
        lr: f64,
        labels: Vec<u8>,
        name: String,
    }

    fn rec() -> Rec {
        Rec {
            lr: 0.03,
            labels: vec![3, 1, 4, 1, 5],
            name: "mlp".into(),
        }
    }

    #[test]
    fn sealed_records_round_trip_private_and_refuse_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("owner.json");
        write_sealed_json(&p, &rec()).unwrap();
        assert_eq!(read_sealed_json::<Rec>(&p).unwrap(), rec());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = fs::read_to_string(&p).unwrap();
        for (from, to) in [("0.03", "0.07"), ("4", "7"), ("mlp", "mpl")] {
            fs::write(&p, text.replacen(from, to, 1)).unwrap();
            let err = read_sealed_json::<Rec>(&p).unwrap_err();
            assert!(err.contains("checksum mismatch"), "{from}: {err}");
        }
        fs::write(&p, r#"{"lr":0.03,"labels":[],"name":"x"}"#).unwrap();
        assert!(read_sealed_json::<Rec>(&p)
            .unwrap_err()
            .contains("no \"crc32\""));
        fs::write(&p, "{").unwrap();
        assert!(read_sealed_json::<Rec>(&p)
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn private_files_are_0600_even_over_a_stale_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.bin");
        fs::write(dir.path().join("model.bin.tmp"), b"stale").unwrap();
        fs::write(&p, b"old").unwrap();
        write_private(&p, b"new").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert!(!dir.path().join("model.bin.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
