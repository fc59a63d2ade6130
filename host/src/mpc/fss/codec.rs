//! Bytes of the keys: writing, and parsing that refuses anything but a well-formed key.
//!
//! A DCF key is `[version, n, w]`, the root seed, `n` levels of `(seed correction, w value
//! corrections, control-bit byte)` and `w` leaf words, every integer little-endian (the
//! layout and its size are in [`dcf`](super::dcf)). Parsing checks, in order: the header
//! is there, the version is known, `n` and `w` are in range, the length is exactly the
//! one they imply (too short and trailing bytes are both refused), every seed has bit 0
//! clear and every control-bit byte is at most 3. Each refusal names what is wrong; no
//! input makes it panic (tested on every truncation and on corrupted bytes).

use super::dcf::{check_shape, Body, DcfKey};
use super::FssError;
use std::sync::Arc;

/// The version byte of every key format of this module.
pub const VERSION: u8 = 1;

/// A cursor over bytes whose length has been checked; reads past the end are still
/// refused, not panics.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
    need: usize,
    got: usize,
}

impl<'a> Reader<'a> {
    /// Reads `bytes[skip..]` of an input of `bytes.len()` bytes that should have `need`.
    pub(super) fn new(bytes: &'a [u8], skip: usize, what: &'static str, need: usize) -> Self {
        Self {
            bytes: bytes.get(skip..).unwrap_or(&[]),
            what,
            need,
            got: bytes.len(),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], FssError> {
        match self.bytes.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.bytes = rest;
                Ok(*head)
            }
            None => Err(FssError::Short {
                what: self.what,
                need: self.need,
                got: self.got,
            }),
        }
    }

    pub(super) fn u64(&mut self) -> Result<u64, FssError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    pub(super) fn u128(&mut self) -> Result<u128, FssError> {
        Ok(u128::from_le_bytes(self.take()?))
    }

    /// The bytes not yet read.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Refuses a byte string whose length is not `need`.
pub(super) fn check_len(what: &'static str, got: usize, need: usize) -> Result<(), FssError> {
    if got < need {
        Err(FssError::Short { what, need, got })
    } else if got > need {
        Err(FssError::Long {
            what,
            expected: need,
            got,
        })
    } else {
        Ok(())
    }
}

/// Refuses a version byte other than [`VERSION`].
pub(super) fn check_version(what: &'static str, got: u8) -> Result<(), FssError> {
    if got == VERSION {
        Ok(())
    } else {
        Err(FssError::Version {
            what,
            got,
            expected: VERSION,
        })
    }
}

const WHAT: &str = "DCF key";

impl DcfKey {
    /// The key's bytes: [`DcfKey::size`] of them; see the [module documentation](self).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(Self::size(self.n, self.w));
        self.write_to(&mut b);
        b
    }

    /// Appends the key's bytes ([`DcfKey::to_bytes`]) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + 19 + self.body.len(), 0);
        put_key(&mut out[at..], self.n, self.w, self.seed, &self.body);
    }

    /// Parses a key written by [`DcfKey::to_bytes`].
    ///
    /// # Errors
    /// Fewer than the 3 header bytes, an unknown version, `n` outside 1..=64, `w` outside
    /// 1..=16, a length other than [`DcfKey::size`]`(n, w)`, a seed with bit 0 set or a
    /// control-bit byte above 3. Never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<DcfKey, FssError> {
        let buf = Arc::new(bytes.to_vec());
        Self::from_shared(&buf, 0, bytes.len())
    }

    /// [`DcfKey::from_bytes`] of bytes `start..end` of `buf`, the key keeping its
    /// correction words there (no copy). Panics if the range is outside `buf`.
    ///
    /// # Errors
    /// As [`DcfKey::from_bytes`].
    pub fn from_shared(buf: &Arc<Vec<u8>>, start: usize, end: usize) -> Result<DcfKey, FssError> {
        let bytes = &buf[start..end];
        let [version, n, w] = match bytes.first_chunk::<3>() {
            Some(h) => *h,
            None => {
                return Err(FssError::Short {
                    what: WHAT,
                    need: 3,
                    got: bytes.len(),
                })
            }
        };
        check_version(WHAT, version)?;
        let (n, w) = (u32::from(n), usize::from(w));
        check_shape(n, w)?;
        check_len(WHAT, bytes.len(), Self::size(n, w))?;
        let mut r = Reader::new(bytes, 3, WHAT, Self::size(n, w));
        let root = seed(r.u128()?, None)?;
        let body = r.rest();
        let per = Self::level_bytes(w);
        // The length is checked: `n` whole levels and `w` leaf words follow the root.
        for (level, l) in (0..n).zip(body.chunks_exact(per)) {
            if l[0] & 1 != 0 {
                return Err(FssError::SeedBit { level: Some(level) });
            }
            let byte = l[per - 1];
            if byte > 3 {
                return Err(FssError::ControlBits { level, byte });
            }
        }
        Ok(DcfKey {
            n,
            w,
            seed: root,
            body: Body::shared(buf, start + 19, end),
        })
    }
}

/// Writes the bytes of a key with `n` input bits, `w` words, root seed `seed` and
/// correction words `body` ([`DcfKey::to_bytes`]) into `out`, which has exactly their
/// length (`19 + body.len()`).
pub(super) fn put_key(out: &mut [u8], n: u32, w: usize, seed: u128, body: &[u8]) {
    out[..3].copy_from_slice(&[VERSION, n as u8, w as u8]);
    out[3..19].copy_from_slice(&seed.to_le_bytes());
    out[19..].copy_from_slice(body);
}

/// Refuses a seed (the root's for `level = None`) with bit 0 set.
fn seed(s: u128, level: Option<u32>) -> Result<u128, FssError> {
    if s & 1 == 0 {
        Ok(s)
    } else {
        Err(FssError::SeedBit { level })
    }
}
