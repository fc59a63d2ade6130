//! The distributed comparison function of Boyle, Chandran, Gilboa, Gupta, Ishai, Kohli,
//! Kumar and Sasikumar (Eurocrypt 2021, "Function Secret Sharing for Mixed-Mode and
//! Fixed-Point Secure Computation", the DCF with per-level value corrections).
//!
//! [`gen`] splits `f(x) = β if x < α else 0` (unsigned `n`-bit comparison, `β` in
//! `Z_2^64`, or `w` words of it with [`gen_vec`]) into two keys; [`eval`] with either key
//! gives an additive share of `f(x)`: `eval(P0, k0, x) + eval(P1, k1, x) = f(x) mod 2^64`.
//!
//! # The tree
//! Both keys walk the binary tree of `x`'s bits, most significant first. Party `b` holds a
//! root seed `s_b` and starts with control bit `t = b`. At each level it expands its
//! seed ([`prg`]), keeps the child on `x`'s side, adds `±(v + t·V_CW)` to its
//! output (plus for party 0, minus for party 1) and corrects the child seed and bit by the
//! level's correction word when `t = 1`. While `x` follows `α`'s path the two parties
//! hold independent seeds and opposite control bits; where `x` leaves it, the corrections
//! make the seeds and bits equal (so every later term cancels) and set the sum of the
//! outputs so far to `β` if `x` turned left of `α` (`x < α`), to 0 if right. At the
//! leaf, a last correction cancels the sum on `α`'s own path (`x = α` is not `< α`).
//!
//! # Key
//! Both keys share the correction words; only the root seed differs. Serialized
//! ([`DcfKey::to_bytes`]): a 3-byte header (version, `n`, `w`), the 16-byte root seed, per
//! level the 16-byte seed correction, `w` 8-byte value corrections and one byte with the
//! two control-bit corrections (bit 0 left, bit 1 right), and `w` 8-byte leaf
//! corrections: [`DcfKey::size`] `= 19 + n (17 + 8 w) + 8 w` bytes, 1627 for `n = 64`,
//! `w = 1` and 827 for `n = 32`.
//!
//! # Cost
//! Generation: `2 (2 + w)` AES blocks per level (both parties' full expansions) and
//! `2 ceil(w / 2)` at the leaf, for many keys at once in one AES call per level
//! ([`GenBatch`]). Evaluation: `1 + ceil(w / 2)` blocks per level, `ceil(w /
//! 2)` at the leaf (129 for `n = 64`, `w = 1`), batched over [`LANES`] points.

use super::prg::{self, Mmo, TWEAK_VALUES};
use super::FssError;
use crate::mpc::PartyId;
use rand::{CryptoRng, RngCore};
use rayon::prelude::*;
use std::fmt;
use std::sync::Arc;

/// The most output words of one DCF.
pub const MAX_WORDS: usize = 16;

/// The most input bits.
pub const MAX_BITS: u32 = 64;

/// How many points [`eval_many`] and [`eval_batch`] walk down their trees together (one AES
/// call per level for all of them).
pub const LANES: usize = 16;

/// One party's DCF key. Its [`Debug`] shows the shape only, never the seeds.
///
/// The correction words live in one buffer, `body`, in the serialized layout (per level
/// the seed correction, `w` value corrections and the control-bit byte; then the `w` leaf
/// words): parsing is one check and no copy (the keys of one dealer reply share its
/// bytes, [`Body`]), and the walk reads the words in place.
#[derive(Clone, PartialEq, Eq)]
pub struct DcfKey {
    /// Input bits, 1..=64.
    pub(super) n: u32,
    /// Output words, 1..=[`MAX_WORDS`].
    pub(super) w: usize,
    /// This party's root seed (bit 0 clear).
    pub(super) seed: u128,
    /// The correction words, [`DcfKey::size`]` - 19` bytes (checked when made).
    pub(super) body: Body,
}

/// A key's correction words: a range of a buffer that the keys parsed from one dealer
/// reply share, so that parsing `n` keys copies nothing and allocates no `n` buffers.
#[derive(Clone)]
pub struct Body {
    buf: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Body {
    /// Bytes `start..end` of `buf` (panics outside it: callers check lengths first).
    pub(super) fn shared(buf: &Arc<Vec<u8>>, start: usize, end: usize) -> Self {
        assert!(
            start <= end && end <= buf.len(),
            "key body out of its buffer"
        );
        Body {
            buf: Arc::clone(buf),
            start,
            end,
        }
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        let end = v.len();
        Body {
            buf: Arc::new(v),
            start: 0,
            end,
        }
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Body {}

impl fmt::Debug for DcfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DcfKey")
            .field("n", &self.n)
            .field("w", &self.w)
            .finish_non_exhaustive()
    }
}

impl DcfKey {
    /// Input bits.
    pub fn bits(&self) -> u32 {
        self.n
    }

    /// Output words per point.
    pub fn words(&self) -> usize {
        self.w
    }

    /// Bytes of one level in [`DcfKey::body`].
    #[inline]
    pub(super) const fn level_bytes(w: usize) -> usize {
        17 + 8 * w
    }

    /// Level `i`'s seed correction (bit 0 clear).
    #[cfg(test)]
    #[inline]
    pub(super) fn s_cw(&self, i: usize) -> u128 {
        Self::s_cw_in(&self.body, self.w, i)
    }

    /// Level `i`'s value correction of word `j`.
    #[cfg(test)]
    #[inline]
    pub(super) fn v_cw(&self, i: usize, j: usize) -> u64 {
        Self::v_cw_in(&self.body, self.w, i, j)
    }

    /// Level `i`'s control-bit corrections: bit 0 left, bit 1 right.
    #[cfg(test)]
    #[inline]
    pub(super) fn t_cw(&self, i: usize) -> u8 {
        Self::t_cw_in(&self.body, self.w, i)
    }

    /// The leaf correction of word `j`.
    #[cfg(test)]
    #[inline]
    pub(super) fn leaf(&self, j: usize) -> u64 {
        Self::leaf_in(&self.body, self.n, self.w, j)
    }

    /// [`DcfKey::s_cw`] of a key's `body` of `w` words (the walk reads a batch's bodies
    /// once, then indexes them).
    #[inline]
    fn s_cw_in(body: &[u8], w: usize, i: usize) -> u128 {
        let o = i * Self::level_bytes(w);
        u128::from_le_bytes(body[o..o + 16].try_into().expect("16 bytes"))
    }

    /// [`DcfKey::v_cw`] of a key's `body`.
    #[inline]
    fn v_cw_in(body: &[u8], w: usize, i: usize, j: usize) -> u64 {
        let o = i * Self::level_bytes(w) + 16 + 8 * j;
        u64::from_le_bytes(body[o..o + 8].try_into().expect("8 bytes"))
    }

    /// [`DcfKey::t_cw`] of a key's `body`.
    #[inline]
    fn t_cw_in(body: &[u8], w: usize, i: usize) -> u8 {
        body[(i + 1) * Self::level_bytes(w) - 1]
    }

    /// [`DcfKey::leaf`] of a key's `body` with `n` levels.
    #[inline]
    fn leaf_in(body: &[u8], n: u32, w: usize, j: usize) -> u64 {
        let o = n as usize * Self::level_bytes(w) + 8 * j;
        u64::from_le_bytes(body[o..o + 8].try_into().expect("8 bytes"))
    }

    /// Bytes of a serialized key with `n` input bits and `w` output words (saturating, so
    /// any arguments are safe; only 1..=64 and 1..=16 describe real keys).
    pub const fn size(n: u32, w: usize) -> usize {
        let per_level = 17usize.saturating_add(w.saturating_mul(8));
        (n as usize)
            .saturating_mul(per_level)
            .saturating_add(w.saturating_mul(8))
            .saturating_add(19)
    }
}

/// Checks the shape of a DCF: `n` in 1..=64, `w` in 1..=[`MAX_WORDS`].
pub(super) fn check_shape(n: u32, w: usize) -> Result<(), FssError> {
    if n == 0 || n > MAX_BITS {
        return Err(FssError::InputBits { n });
    }
    if w == 0 || w > MAX_WORDS {
        return Err(FssError::OutputWords { w });
    }
    Ok(())
}

/// `x` if `neg` is 0, `-x` if it is 1 (mod 2^64).
#[inline]
fn signed(neg: u64, x: u64) -> u64 {
    let m = neg.wrapping_neg();
    (x ^ m).wrapping_sub(m)
}

/// A random seed, bit 0 clear.
fn random_seed<R: RngCore + CryptoRng>(rng: &mut R) -> u128 {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    u128::from_le_bytes(b) & prg::SEED_MASK
}

/// Splits `x < α ? β : 0` over `n`-bit unsigned inputs into two keys (party 0's, party
/// 1's).
///
/// # Errors
/// `n` outside 1..=64, or `α` wider than `n` bits.
pub fn gen<R: RngCore + CryptoRng>(
    alpha: u64,
    beta: u64,
    n: u32,
    rng: &mut R,
) -> Result<(DcfKey, DcfKey), FssError> {
    gen_vec(alpha, &[beta], n, rng)
}

/// [`gen`] with `w = beta.len()` output words: `x < α ? β : 0` word by word.
///
/// # Errors
/// `n` outside 1..=64, `w` outside 1..=[`MAX_WORDS`], or `α` wider than `n` bits.
pub fn gen_vec<R: RngCore + CryptoRng>(
    alpha: u64,
    beta: &[u64],
    n: u32,
    rng: &mut R,
) -> Result<(DcfKey, DcfKey), FssError> {
    let w = beta.len();
    check_shape(n, w)?;
    let roots = random_roots(rng);
    let mut body = vec![0u8; DcfKey::size(n, w) - 19];
    GenBatch::default().run(&[alpha], beta, &[roots], n, &mut body)?;
    let k0 = DcfKey {
        n,
        w,
        seed: roots[0],
        body: body.into(),
    };
    let k1 = DcfKey {
        seed: roots[1],
        ..k0.clone()
    };
    Ok((k0, k1))
}

/// Two random root seeds (party 0's, party 1's), bit 0 clear: what [`gen_vec`] draws
/// from its generator, and all it draws.
pub fn random_roots<R: RngCore + CryptoRng>(rng: &mut R) -> [u128; 2] {
    [random_seed(rng), random_seed(rng)]
}

/// Key generation for many DCFs of one shape at once, level by level: one AES call per
/// level for all of them (the AES-NI pipeline full, no call per key), the buffers kept
/// from one batch to the next. Each key's correction words equal [`gen_vec`]'s for the
/// same `α`, `β` and root seeds.
#[derive(Default)]
pub struct GenBatch {
    mmo: Mmo,
    seeds: Vec<[u128; 2]>,
    bits: Vec<[u64; 2]>,
    v_alpha: Vec<u64>,
}

impl GenBatch {
    /// The correction words of the DCFs `x < α_e ? β_e : 0`, `α_e = alphas[e]`, `β_e` the
    /// `w` words `betas[e w..(e + 1) w]` (`w = betas.len() / alphas.len()`), with root
    /// seeds `roots[e]` (bit 0 clear): each [`DcfKey`]'s body, [`DcfKey::size`]`(n, w) - 19`
    /// bytes, one after the other in `bodies`. A key's bytes are `[version, n, w]`, its
    /// party's root seed (little-endian) and its body ([`DcfKey::to_bytes`]).
    ///
    /// # Errors
    /// `n` or `w` out of range, an `α` wider than `n` bits, or lengths that disagree.
    pub fn run(
        &mut self,
        alphas: &[u64],
        betas: &[u64],
        roots: &[[u128; 2]],
        n: u32,
        bodies: &mut [u8],
    ) -> Result<(), FssError> {
        let keys = alphas.len();
        let w = betas.len().checked_div(keys).unwrap_or(1);
        check_shape(n, w)?;
        let body_len = DcfKey::size(n, w) - 19;
        if betas.len() != keys * w || roots.len() != keys || bodies.len() != keys * body_len {
            return Err(FssError::BatchShape {
                keys,
                betas: betas.len(),
                roots: roots.len(),
                bytes: bodies.len(),
            });
        }
        if let Some(&alpha) = alphas.iter().find(|&&a| n < 64 && a >> n != 0) {
            return Err(FssError::AlphaTooWide { alpha, n });
        }
        let level = DcfKey::level_bytes(w);
        let per = 2 + w; // blocks of one full expansion
        self.seeds.clear();
        self.seeds.extend_from_slice(roots);
        self.bits.clear();
        self.bits.resize(keys, [0, 1]);
        self.v_alpha.clear();
        self.v_alpha.resize(keys * w, 0);
        for i in 0..n as usize {
            self.mmo.clear();
            for pair in &self.seeds {
                for &seed in pair {
                    for q in 0..per as u32 {
                        self.mmo.push(seed, q);
                    }
                }
            }
            let out = self.mmo.run();
            for (e, (body, &alpha)) in bodies.chunks_exact_mut(body_len).zip(alphas).enumerate() {
                let at = &mut body[i * level..(i + 1) * level];
                let blocks = &out[e * 2 * per..(e + 1) * 2 * per];
                let (e0, e1) = (&blocks[..per], &blocks[per..]);
                let child = |e: &[u128], dir: usize| prg::split(e[dir]);
                let value = |e: &[u128], dir: usize, j: usize| prg::word(&e[2..], dir * w + j);
                let a = ((alpha >> (n as usize - 1 - i)) & 1) as usize;
                let (keep, lose) = (a, 1 - a);
                let t = self.bits[e];
                let v_alpha = &mut self.v_alpha[e * w..(e + 1) * w];
                let sc = child(e0, lose).0 ^ child(e1, lose).0;
                at[..16].copy_from_slice(&sc.to_le_bytes());
                for (j, va) in v_alpha.iter_mut().enumerate() {
                    let mut d = value(e1, lose, j)
                        .wrapping_sub(value(e0, lose, j))
                        .wrapping_sub(*va);
                    if lose == 0 {
                        d = d.wrapping_add(betas[e * w + j]);
                    }
                    let vc = signed(t[1], d);
                    *va = va
                        .wrapping_sub(value(e1, keep, j))
                        .wrapping_add(value(e0, keep, j))
                        .wrapping_add(signed(t[1], vc));
                    at[16 + 8 * j..24 + 8 * j].copy_from_slice(&vc.to_le_bytes());
                }
                let a = a as u64;
                let tl = child(e0, 0).1 ^ child(e1, 0).1 ^ a ^ 1;
                let tr = child(e0, 1).1 ^ child(e1, 1).1 ^ a;
                let t_keep = if keep == 0 { tl } else { tr };
                let (sk0, tk0) = child(e0, keep);
                let (sk1, tk1) = child(e1, keep);
                self.seeds[e] = [sk0 ^ (sc & mask128(t[0])), sk1 ^ (sc & mask128(t[1]))];
                self.bits[e] = [tk0 ^ (t[0] & t_keep), tk1 ^ (t[1] & t_keep)];
                at[level - 1] = (tl | (tr << 1)) as u8;
            }
        }
        // The leaf: both parties' first `w` value words of their last seeds.
        let vb = w.div_ceil(2) as u32;
        self.mmo.clear();
        for pair in &self.seeds {
            for &seed in pair {
                for q in 0..vb {
                    self.mmo.push(seed, TWEAK_VALUES + q);
                }
            }
        }
        let out = self.mmo.run();
        let vb = vb as usize;
        for (e, body) in bodies.chunks_exact_mut(body_len).enumerate() {
            let (c0, c1) = (
                &out[2 * e * vb..(2 * e + 1) * vb],
                &out[(2 * e + 1) * vb..(2 * e + 2) * vb],
            );
            let t1 = self.bits[e][1];
            for j in 0..w {
                let d = prg::word(c1, j)
                    .wrapping_sub(prg::word(c0, j))
                    .wrapping_sub(self.v_alpha[e * w + j]);
                let at = n as usize * level + 8 * j;
                body[at..at + 8].copy_from_slice(&signed(t1, d).to_le_bytes());
            }
        }
        Ok(())
    }
}

#[inline]
fn mask128(bit: u64) -> u128 {
    u128::from(bit).wrapping_neg()
}

/// Party `party`'s share of `f(x)`, first output word (the only one of a [`gen`] key).
/// Only the low `n` bits of `x` count.
pub fn eval(party: PartyId, key: &DcfKey, x: u64) -> u64 {
    let mut out = vec![0; key.w];
    walk(party, |_| key, &[x], &mut out);
    out[0]
}

/// Party `party`'s shares of all `w` output words of `f(x)`.
pub fn eval_vec(party: PartyId, key: &DcfKey, x: u64) -> Vec<u64> {
    let mut out = vec![0; key.w];
    walk(party, |_| key, &[x], &mut out);
    out
}

/// [`eval_vec`] of one key at many points, [`LANES`] at a time: `w` words per point, point
/// after point.
pub fn eval_many(party: PartyId, key: &DcfKey, xs: &[u64]) -> Vec<u64> {
    let mut out = vec![0; xs.len() * key.w];
    walk(party, |_| key, xs, &mut out);
    out
}

/// [`eval_vec`] of `keys[i]` at `xs[i]` for every `i`, [`LANES`] at a time: `w` words per
/// point, point after point (keys of different shapes may be mixed; runs of equal shape
/// are batched).
///
/// # Errors
/// The two slices differ in length.
pub fn eval_batch(party: PartyId, keys: &[DcfKey], xs: &[u64]) -> Result<Vec<u64>, FssError> {
    if keys.len() != xs.len() {
        return Err(FssError::Lengths {
            keys: keys.len(),
            points: xs.len(),
        });
    }
    let total = keys.iter().map(|k| k.w).sum();
    let mut out = vec![0; total];
    walk(party, |i| &keys[i], xs, &mut out);
    Ok(out)
}

/// Evaluates `key(i)` at `xs[i]` for every `i` into `out` (`w` words per point), grouping
/// runs of up to [`LANES`] keys of one shape.
pub(super) fn walk<'a>(
    party: PartyId,
    key: impl Fn(usize) -> &'a DcfKey,
    xs: &[u64],
    out: &mut [u64],
) {
    let mut lanes = Lanes::default();
    let (mut i, mut o) = (0, 0);
    while i < xs.len() {
        let first = key(i);
        let mut end = i + 1;
        while end < xs.len() && end - i < LANES && {
            let k = key(end);
            k.n == first.n && k.w == first.w
        } {
            end += 1;
        }
        let words = (end - i) * first.w;
        lanes.run(
            party,
            (i..end).map(&key),
            &xs[i..end],
            &mut out[o..o + words],
        );
        o += words;
        i = end;
    }
}

/// Points that one thread walks when a gate batch is split over the rayon pool.
pub const PARALLEL_CHUNK: usize = 64 * LANES;

/// [`walk`] split over the rayon pool in chunks of [`PARALLEL_CHUNK`] points, for keys
/// that all have the same number of words (a gate's batch); otherwise, or for fewer
/// points than two chunks, one thread. The output does not depend on the split.
pub(super) fn walk_parallel<'a>(
    party: PartyId,
    key: impl Fn(usize) -> &'a DcfKey + Sync,
    xs: &[u64],
    out: &mut [u64],
) {
    let w = match xs.len() {
        0 => return,
        _ => key(0).w,
    };
    if xs.len() < 2 * PARALLEL_CHUNK || (0..xs.len()).any(|i| key(i).w != w) {
        return walk(party, key, xs, out);
    }
    out.par_chunks_mut(PARALLEL_CHUNK * w)
        .zip(xs.par_chunks(PARALLEL_CHUNK))
        .enumerate()
        .for_each(|(c, (out, xs))| {
            let first = c * PARALLEL_CHUNK;
            walk(party, |i| key(first + i), xs, out);
        });
}

/// The state of up to [`LANES`] walks down the tree.
#[derive(Default)]
struct Lanes<'a> {
    keys: Vec<&'a DcfKey>,
    /// The keys' correction words, looked up once per run.
    bodies: Vec<&'a [u8]>,
    seeds: Vec<u128>,
    bits: Vec<u64>,
    mmo: Mmo,
}

impl<'a> Lanes<'a> {
    /// Walks every key (all of one shape) at its point; `out` gets `w` words per point.
    fn run(
        &mut self,
        party: PartyId,
        keys: impl Iterator<Item = &'a DcfKey>,
        xs: &[u64],
        out: &mut [u64],
    ) {
        self.keys.clear();
        self.keys.extend(keys);
        self.bodies.clear();
        self.bodies.extend(self.keys.iter().map(|k| &*k.body));
        let (n, w) = (self.keys[0].n, self.keys[0].w);
        let neg = party.index() as u64;
        let vb = w.div_ceil(2);
        self.seeds.clear();
        self.seeds.extend(self.keys.iter().map(|k| k.seed));
        self.bits.clear();
        self.bits.resize(self.keys.len(), neg);
        out.fill(0);
        for i in 0..n as usize {
            let shift = n as usize - 1 - i;
            self.mmo.clear();
            for (&s, &x) in self.seeds.iter().zip(xs) {
                let dir = ((x >> shift) & 1) as u32;
                self.mmo.push(s, dir);
                let first = dir * w as u32 / 2;
                for q in 0..vb as u32 {
                    self.mmo.push(s, TWEAK_VALUES + first + q);
                }
            }
            let res = self.mmo.run();
            for (l, (&k, &x)) in self.bodies.iter().zip(xs).enumerate() {
                let dir = ((x >> shift) & 1) as usize;
                let blocks = &res[l * (1 + vb)..(l + 1) * (1 + vb)];
                let t = self.bits[l];
                let tmask = t.wrapping_neg();
                let first = dir * w / 2 * 2;
                let acc = &mut out[l * w..(l + 1) * w];
                for (j, a) in acc.iter_mut().enumerate() {
                    let v = prg::word(&blocks[1..], dir * w + j - first);
                    let term = v.wrapping_add(DcfKey::v_cw_in(k, w, i, j) & tmask);
                    *a = a.wrapping_add(signed(neg, term));
                }
                let (seed, bit) = prg::split(blocks[0]);
                self.seeds[l] = seed ^ (DcfKey::s_cw_in(k, w, i) & mask128(t));
                self.bits[l] = bit ^ (t & u64::from(DcfKey::t_cw_in(k, w, i) >> dir) & 1);
            }
        }
        self.mmo.clear();
        for &s in &self.seeds {
            for q in 0..vb as u32 {
                self.mmo.push(s, TWEAK_VALUES + q);
            }
        }
        let res = self.mmo.run();
        for (l, &k) in self.bodies.iter().enumerate() {
            let blocks = &res[l * vb..(l + 1) * vb];
            let tmask = self.bits[l].wrapping_neg();
            for (j, a) in out[l * w..(l + 1) * w].iter_mut().enumerate() {
                let term = prg::word(blocks, j).wrapping_add(DcfKey::leaf_in(k, n, w, j) & tmask);
                *a = a.wrapping_add(signed(neg, term));
            }
        }
    }
}
