//! Sign and ReLU gates on a masked input, from one DCF each.
//!
//! Both parties hold `x̂ = x + r_in mod 2^64` in the clear (the previous gate's opened,
//! masked output); the dealer knows `r_in` and made the keys. The gates work at a width
//! `m` in 2..=64 on `x mod 2^m` read as a signed `m`-bit number.
//!
//! # DReLU
//! With `x̂_m = x̂ mod 2^m`, `r = r_in mod 2^m`, the top bits `x̂_{m-1}`, `r_{m-1}` and the
//! low parts `x̂' = x̂ mod 2^(m-1)`, `r' = r mod 2^(m-1)`, the sign bit of `x_m = x̂_m - r`
//! is `x̂_{m-1} ⊕ r_{m-1} ⊕ [x̂' < r']` (the last term is the borrow out of the low bits).
//! So `[x ≥ 0] = p ⊕ e` with the public bit `p = 1 ⊕ x̂_{m-1}` and the secret bit
//! `e = r_{m-1} ⊕ [x̂' < r']`. Since `e = r_{m-1} + (1 - 2 r_{m-1}) [x̂' < r']`, it is one
//! DCF on `m - 1` bits with `α = r'` and `β = 1 - 2 r_{m-1}` plus a share of `r_{m-1}`;
//! then `[x ≥ 0] = p + (1 - 2p) e`, linear with public coefficients. The output stays
//! additively shared in `Z_2^64`: no message, no round.
//!
//! # ReLU
//! `ReLU(x) = d x = d (x̂ - r_in)` with `d = [x ≥ 0]`. The product `d r_in` is linear in
//! `e` and `e r_in`, and `e r_in = r_{m-1} r_in + (1 - 2 r_{m-1}) r_in [x̂' < r']`: a second
//! output word of the same DCF (`β = (1 - 2 r_{m-1}, (1 - 2 r_{m-1}) r_in)`) plus a share of
//! `r_{m-1} r_in`. Each party then computes locally its share of `ŷ = d x + r_out` and of
//! the masked derivative bit `d̂ = d + r_d`, and both are opened:
//! **one round, 16 bytes per element per party** (8 if the derivative is not needed),
//! the target of issue 15. `ŷ` is the next gate's masked input; `d̂` stays for the backward
//! pass, where `g d = (ĝ - r_g)(d̂ - r_d)` needs only dealer shares of `r_g`, `r_d` and
//! `r_g r_d`. Both openings are uniform (masked by the dealer's fresh `r_out`, `r_d`).
//!
//! With `r_out = r_d = 0` nothing needs opening: the shares `y` and `d` are then additive
//! shares of `ReLU(x)` and `[x ≥ 0]` themselves, and the only round is the opening of
//! `x̂`. The engine's ReLU uses the gate so ([`crate::mpc::comparison::relu_fss`]), since
//! the kernel's layers take shared inputs, not masked ones.
//!
//! # Reduced width
//! For `m < 64` the gate is exact when `-2^(m-1) ≤ x ≤ 2^(m-1) - 1` (then `x mod 2^m`
//! read as signed is `x`): keys shrink (a DCF on `m - 1` bits) and evaluation is faster
//! (`m - 1` levels). Outside that range it returns the sign of `x mod 2^m` read as signed
//! ([`drelu_plain`], [`relu_plain`]): `x = 2^(m-1)` counts as negative, `x = -2^(m-1) - 1`
//! as positive. `ReLU` multiplies that bit by the full 64-bit `x`.
//!
//! # Keys
//! `[version, kind, m]` (kind 1 DReLU, 2 ReLU), the party's 8-byte shares (1 for DReLU:
//! `r_{m-1}`; 5 for ReLU: `r_{m-1}`, `r_{m-1} r_in`, `r_in`, `r_out`, `r_d`), then the DCF
//! key: [`DreluKey::size`]`(64) = 1613` bytes, [`ReluKey::size`]`(64) = 2157`.

use super::codec::{check_len, check_version, put_key, Reader, VERSION};
use super::dcf::{self, DcfKey};
use super::FssError;
use crate::mpc::PartyId;
use rand::{CryptoRng, RngCore};
use std::fmt;
use std::sync::Arc;

/// `x mod 2^m` read as a signed `m`-bit number, as a 64-bit word (sign-extended).
pub fn sign_extend(x: u64, m: u32) -> u64 {
    let s = 64 - m.clamp(1, 64);
    (((x << s) as i64) >> s) as u64
}

/// What the gates compute: `[x mod 2^m, read as signed, ≥ 0]` (1 or 0).
pub fn drelu_plain(x: u64, m: u32) -> u64 {
    u64::from((sign_extend(x, m) as i64) >= 0)
}

/// What [`relu_eval`] computes, unmasked: `x` times [`drelu_plain`]`(x, m)`.
pub fn relu_plain(x: u64, m: u32) -> u64 {
    x.wrapping_mul(drelu_plain(x, m))
}

fn check_width(m: u32) -> Result<(), FssError> {
    if (2..=64).contains(&m) {
        Ok(())
    } else {
        Err(FssError::GateBits { m })
    }
}

/// `(α, r_{m-1})` of a mask: its low `m - 1` bits and bit `m - 1`.
fn split_mask(r_in: u64, m: u32) -> (u64, u64) {
    let low = r_in & ((1u64 << (m - 1)) - 1);
    (low, (r_in >> (m - 1)) & 1)
}

/// Two additive shares of `v`.
fn share<R: RngCore + CryptoRng>(v: u64, rng: &mut R) -> [u64; 2] {
    let a = rng.next_u64();
    [a, v.wrapping_sub(a)]
}

/// `[party = 0] p + (1 - 2p) e`: a share of `p ⊕ e` from a share of `e`.
fn xor_public(party: PartyId, p: u64, e: u64) -> u64 {
    let own = if party == PartyId::P0 { p } else { 0 };
    own.wrapping_add(1u64.wrapping_sub(2 * p).wrapping_mul(e))
}

/// The public bit `p = 1 ⊕ x̂_{m-1}`.
fn public_bit(x_hat: u64, m: u32) -> u64 {
    1 ^ ((x_hat >> (m - 1)) & 1)
}

/// One party's key of the sign gate [`drelu_eval`]. Its [`Debug`] shows the width only.
#[derive(Clone, PartialEq, Eq)]
pub struct DreluKey {
    m: u32,
    /// Share of `r_{m-1}`.
    top: u64,
    dcf: DcfKey,
}

/// Keys of `[x ≥ 0]` at width `m` (2..=64) for the input mask `r_in`.
///
/// # Errors
/// `m` outside 2..=64.
pub fn drelu_gen<R: RngCore + CryptoRng>(
    r_in: u64,
    m: u32,
    rng: &mut R,
) -> Result<(DreluKey, DreluKey), FssError> {
    check_width(m)?;
    let (alpha, top) = split_mask(r_in, m);
    let (k0, k1) = dcf::gen(alpha, 1u64.wrapping_sub(2 * top), m - 1, rng)?;
    let t = share(top, rng);
    Ok((
        DreluKey {
            m,
            top: t[0],
            dcf: k0,
        },
        DreluKey {
            m,
            top: t[1],
            dcf: k1,
        },
    ))
}

/// Party `party`'s additive share (in `Z_2^64`) of [`drelu_plain`]`(x, m)`, from the
/// public `x̂ = x + r_in`. No communication.
pub fn drelu_eval(party: PartyId, key: &DreluKey, x_hat: u64) -> u64 {
    let c = dcf::eval(party, &key.dcf, x_hat);
    xor_public(party, public_bit(x_hat, key.m), c.wrapping_add(key.top))
}

/// [`drelu_eval`] of `keys[i]` at `x_hat[i]` for every `i`, the DCFs batched.
///
/// # Errors
/// The slices differ in length.
pub fn drelu_eval_many(
    party: PartyId,
    keys: &[DreluKey],
    x_hat: &[u64],
) -> Result<Vec<u64>, FssError> {
    let c = batch(party, keys.len(), |i| &keys[i].dcf, x_hat)?;
    Ok(keys
        .iter()
        .zip(x_hat)
        .zip(c)
        .map(|((k, &x), c)| xor_public(party, public_bit(x, k.m), c.wrapping_add(k.top)))
        .collect())
}

/// Runs the DCFs of a batch of gate keys (`w` words per point).
fn batch<'a>(
    party: PartyId,
    keys: usize,
    dcf_of: impl Fn(usize) -> &'a DcfKey + Sync,
    x_hat: &[u64],
) -> Result<Vec<u64>, FssError> {
    if keys != x_hat.len() {
        return Err(FssError::Lengths {
            keys,
            points: x_hat.len(),
        });
    }
    let total = (0..keys).map(|i| dcf_of(i).w).sum();
    let mut out = vec![0; total];
    dcf::walk_parallel(party, dcf_of, x_hat, &mut out);
    Ok(out)
}

/// The masks of one ReLU gate, all chosen by the dealer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReluMasks {
    /// The input's mask: the parties hold `x̂ = x + r_in`.
    pub r_in: u64,
    /// The output's mask: the gate opens `ŷ = ReLU(x) + r_out`.
    pub r_out: u64,
    /// The derivative bit's mask: the gate opens `d̂ = [x ≥ 0] + r_d`.
    pub r_d: u64,
}

/// One party's key of the ReLU gate [`relu_eval`]. Its [`Debug`] shows the width only.
#[derive(Clone, PartialEq, Eq)]
pub struct ReluKey {
    m: u32,
    /// Shares of `r_{m-1}`, `r_{m-1} r_in`, `r_in`, `r_out`, `r_d`.
    words: [u64; 5],
    dcf: DcfKey,
}

/// One party's shares of a ReLU gate's two outputs, to be opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReluShare {
    /// Share of `ŷ = ReLU(x) + r_out`.
    pub y: u64,
    /// Share of `d̂ = [x ≥ 0] + r_d`.
    pub d: u64,
}

/// Keys of `ReLU` at width `m` (2..=64) for the masks `masks`.
///
/// # Errors
/// `m` outside 2..=64.
pub fn relu_gen<R: RngCore + CryptoRng>(
    masks: ReluMasks,
    m: u32,
    rng: &mut R,
) -> Result<(ReluKey, ReluKey), FssError> {
    check_width(m)?;
    let (alpha, top) = split_mask(masks.r_in, m);
    let sign = 1u64.wrapping_sub(2 * top);
    let beta = [sign, sign.wrapping_mul(masks.r_in)];
    let (k0, k1) = dcf::gen_vec(alpha, &beta, m - 1, rng)?;
    let plain = [
        top,
        top.wrapping_mul(masks.r_in),
        masks.r_in,
        masks.r_out,
        masks.r_d,
    ];
    let mut words = [[0u64; 5]; 2];
    for (j, &v) in plain.iter().enumerate() {
        let s = share(v, rng);
        words[0][j] = s[0];
        words[1][j] = s[1];
    }
    Ok((
        ReluKey {
            m,
            words: words[0],
            dcf: k0,
        },
        ReluKey {
            m,
            words: words[1],
            dcf: k1,
        },
    ))
}

/// Party `party`'s shares of `ŷ = ReLU(x) + r_out` and `d̂ = [x ≥ 0] + r_d` from the
/// public `x̂ = x + r_in` (`ReLU` and the bit as in [`relu_plain`], [`drelu_plain`]).
/// Local; opening the two shares is the gate's one round.
pub fn relu_eval(party: PartyId, key: &ReluKey, x_hat: u64) -> ReluShare {
    let c = dcf::eval_vec(party, &key.dcf, x_hat);
    relu_finish(party, key, x_hat, c[0], c[1])
}

/// [`relu_eval`] of `keys[i]` at `x_hat[i]` for every `i`, the DCFs batched.
///
/// # Errors
/// The slices differ in length.
pub fn relu_eval_many(
    party: PartyId,
    keys: &[ReluKey],
    x_hat: &[u64],
) -> Result<Vec<ReluShare>, FssError> {
    let c = batch(party, keys.len(), |i| &keys[i].dcf, x_hat)?;
    Ok(keys
        .iter()
        .zip(x_hat)
        .zip(c.chunks_exact(2))
        .map(|((k, &x), c)| relu_finish(party, k, x, c[0], c[1]))
        .collect())
}

fn relu_finish(party: PartyId, key: &ReluKey, x_hat: u64, c0: u64, c1: u64) -> ReluShare {
    let [top, top_r, r, r_out, r_d] = key.words;
    let p = public_bit(x_hat, key.m);
    let e = c0.wrapping_add(top);
    let er = c1.wrapping_add(top_r);
    let d = xor_public(party, p, e);
    // d r = p r + (1 - 2p) e r
    let dr = p
        .wrapping_mul(r)
        .wrapping_add(1u64.wrapping_sub(2 * p).wrapping_mul(er));
    ReluShare {
        y: d.wrapping_mul(x_hat).wrapping_sub(dr).wrapping_add(r_out),
        d: d.wrapping_add(r_d),
    }
}

impl fmt::Debug for DreluKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DreluKey")
            .field("m", &self.m)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ReluKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReluKey")
            .field("m", &self.m)
            .finish_non_exhaustive()
    }
}

const KIND_DRELU: u8 = 1;
const KIND_RELU: u8 = 2;

/// Parses a gate key's header and its share words; the rest is the DCF key, checked to
/// have `m - 1` input bits and `w` words.
fn parse_gate<const K: usize>(
    (buf, start, end): (&Arc<Vec<u8>>, usize, usize),
    what: &'static str,
    kind: u8,
    w: usize,
) -> Result<(u32, [u64; K], DcfKey), FssError> {
    let bytes = &buf[start..end];
    let [version, got_kind, m] = match bytes.first_chunk::<3>() {
        Some(h) => *h,
        None => {
            return Err(FssError::Short {
                what,
                need: 3,
                got: bytes.len(),
            })
        }
    };
    check_version(what, version)?;
    if got_kind != kind {
        return Err(FssError::Kind {
            what,
            got: got_kind,
            expected: kind,
        });
    }
    let m = u32::from(m);
    check_width(m)?;
    let need = 3 + 8 * K + DcfKey::size(m - 1, w);
    check_len(what, bytes.len(), need)?;
    let mut r = Reader::new(bytes, 3, what, need);
    let mut words = [0u64; K];
    for v in &mut words {
        *v = r.u64()?;
    }
    let dcf = DcfKey::from_shared(buf, start + 3 + 8 * K, end)?;
    if dcf.n != m - 1 || dcf.w != w {
        return Err(FssError::InnerShape {
            what,
            n: dcf.n,
            w: dcf.w,
            want_n: m - 1,
            want_w: w,
        });
    }
    Ok((m, words, dcf))
}

fn write_gate(out: &mut Vec<u8>, kind: u8, m: u32, words: &[u64], dcf: &DcfKey) {
    let at = out.len();
    out.resize(at + 3 + 8 * words.len() + 19 + dcf.body.len(), 0);
    put_gate(&mut out[at..], kind, m, words, dcf.w, dcf.seed, &dcf.body);
}

/// Writes a gate key's bytes (header, share words, inner DCF key of `m - 1` bits and `w`
/// words) into `out`, which has exactly their length.
fn put_gate(out: &mut [u8], kind: u8, m: u32, words: &[u64], w: usize, seed: u128, body: &[u8]) {
    out[..3].copy_from_slice(&[VERSION, kind, m as u8]);
    for (o, v) in out[3..].chunks_exact_mut(8).zip(words) {
        o.copy_from_slice(&v.to_le_bytes());
    }
    put_key(&mut out[3 + 8 * words.len()..], m - 1, w, seed, body);
}

/// Scratch of [`drelu_gen_batch`] and [`relu_gen_batch`], kept from one batch to the next.
#[derive(Default)]
pub struct GateBatch {
    dcf: dcf::GenBatch,
    alphas: Vec<u64>,
    betas: Vec<u64>,
    roots: Vec<[u128; 2]>,
    shares: Vec<u64>,
    bodies: Vec<u8>,
}

impl GateBatch {
    /// Draws, gate by gate in the order of the single-gate generators, the root seeds and
    /// then the shares of the `K` words that `each` gives for the gate's mask (beside the
    /// DCF's `β`), and builds all the trees. `m` is checked by the caller.
    fn build<R: RngCore + CryptoRng, const K: usize>(
        &mut self,
        r_in: &[u64],
        m: u32,
        w: usize,
        rng: &mut R,
        each: impl Fn(u64, u64) -> ([u64; 2], [u64; K]),
    ) -> Result<(), FssError> {
        self.alphas.clear();
        self.betas.clear();
        self.roots.clear();
        self.shares.clear();
        for &r in r_in {
            let (alpha, top) = split_mask(r, m);
            let (beta, plain) = each(r, top);
            self.alphas.push(alpha);
            self.betas.extend_from_slice(&beta[..w]);
            self.roots.push(dcf::random_roots(rng));
            for v in plain {
                let s = share(v, rng);
                self.shares.extend_from_slice(&s);
            }
        }
        let body = DcfKey::size(m - 1, w) - 19;
        self.bodies.clear();
        self.bodies.resize(r_in.len() * body, 0);
        self.dcf.run(
            &self.alphas,
            &self.betas,
            &self.roots,
            m - 1,
            &mut self.bodies,
        )
    }

    /// Writes party `b`'s keys, `size` bytes each, into `out[b]`.
    fn write<const K: usize>(&self, kind: u8, m: u32, w: usize, size: usize, out: [&mut [u8]; 2]) {
        let body = DcfKey::size(m - 1, w) - 19;
        for (b, out) in out.into_iter().enumerate() {
            for (e, key) in out.chunks_exact_mut(size).enumerate() {
                let words: [u64; K] = std::array::from_fn(|j| self.shares[(e * K + j) * 2 + b]);
                let seed = self.roots[e][b];
                let body = &self.bodies[e * body..(e + 1) * body];
                put_gate(key, kind, m, &words, w, seed, body);
            }
        }
    }
}

/// Checks that `out` holds `n` keys of `size` bytes for each party.
fn check_batch(n: usize, size: usize, out: &[&mut [u8]; 2]) -> Result<(), FssError> {
    match out.iter().find(|o| o.len() != n * size) {
        Some(o) => Err(FssError::BatchShape {
            keys: n,
            betas: n,
            roots: n,
            bytes: o.len(),
        }),
        None => Ok(()),
    }
}

/// Both parties' keys of [`drelu_gen`] for every mask of `r_in` at width `m`, written
/// into `out[0]` and `out[1]` ([`DreluKey::size`]`(m)` bytes per key, in order): the same
/// keys as [`drelu_gen`] called gate by gate with the same generator, the trees built
/// together ([`dcf::GenBatch`]).
///
/// # Errors
/// `m` outside 2..=64, or an output of another length.
pub fn drelu_gen_batch<R: RngCore + CryptoRng>(
    r_in: &[u64],
    m: u32,
    rng: &mut R,
    scratch: &mut GateBatch,
    out: [&mut [u8]; 2],
) -> Result<(), FssError> {
    let gate = (KIND_DRELU, 1, DreluKey::size as fn(u32) -> usize);
    gen_batch(r_in, m, rng, scratch, out, gate, |_, top| {
        ([1u64.wrapping_sub(2 * top), 0], [top])
    })
}

/// Both parties' keys of [`relu_gen`] for every mask of `r_in` at width `m`, with the
/// output masks `r_out = r_d = 0` (the outputs stay additive shares), written into
/// `out[0]` and `out[1]` ([`ReluKey::size`]`(m)` bytes per key): the same keys as
/// [`relu_gen`] gate by gate with the same generator, the trees built together.
///
/// # Errors
/// `m` outside 2..=64, or an output of another length.
pub fn relu_gen_batch<R: RngCore + CryptoRng>(
    r_in: &[u64],
    m: u32,
    rng: &mut R,
    scratch: &mut GateBatch,
    out: [&mut [u8]; 2],
) -> Result<(), FssError> {
    let gate = (KIND_RELU, 2, ReluKey::size as fn(u32) -> usize);
    gen_batch(r_in, m, rng, scratch, out, gate, |r, top| {
        let sign = 1u64.wrapping_sub(2 * top);
        (
            [sign, sign.wrapping_mul(r)],
            [top, top.wrapping_mul(r), r, 0, 0],
        )
    })
}

/// The batch generation of a gate `(kind, w, size)`: `w` DCF words, `size(m)` bytes a key,
/// and per mask the DCF's `β` and the `K` share words from `each` (see [`GateBatch`]).
fn gen_batch<R: RngCore + CryptoRng, const K: usize>(
    r_in: &[u64],
    m: u32,
    rng: &mut R,
    scratch: &mut GateBatch,
    out: [&mut [u8]; 2],
    (kind, w, size): (u8, usize, fn(u32) -> usize),
    each: impl Fn(u64, u64) -> ([u64; 2], [u64; K]),
) -> Result<(), FssError> {
    check_width(m)?;
    check_batch(r_in.len(), size(m), &out)?;
    scratch.build::<R, K>(r_in, m, w, rng, each)?;
    scratch.write::<K>(kind, m, w, size(m), out);
    Ok(())
}

impl DreluKey {
    /// The gate's width `m`.
    pub fn width(&self) -> u32 {
        self.m
    }

    /// Bytes of a serialized key of width `m` (2..=64; saturating outside).
    pub const fn size(m: u32) -> usize {
        DcfKey::size(m.saturating_sub(1), 1).saturating_add(3 + 8)
    }

    /// The key's bytes: see the [module documentation](self).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(Self::size(self.m));
        self.write_to(&mut b);
        b
    }

    /// Appends the key's bytes ([`DreluKey::to_bytes`]) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write_gate(out, KIND_DRELU, self.m, &[self.top], &self.dcf);
    }

    /// Parses a key written by [`DreluKey::to_bytes`].
    ///
    /// # Errors
    /// A short, long or corrupt key (header, width, inner DCF); never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<DreluKey, FssError> {
        Self::from_shared(&Arc::new(bytes.to_vec()), 0, bytes.len())
    }

    /// [`DreluKey::from_bytes`] of bytes `start..end` of `buf`, kept there (no copy).
    /// Panics if the range is outside `buf`.
    ///
    /// # Errors
    /// As [`DreluKey::from_bytes`].
    pub fn from_shared(buf: &Arc<Vec<u8>>, start: usize, end: usize) -> Result<DreluKey, FssError> {
        let (m, [top], dcf) = parse_gate::<1>((buf, start, end), "DReLU key", KIND_DRELU, 1)?;
        Ok(DreluKey { m, top, dcf })
    }
}

impl ReluKey {
    /// The gate's width `m`.
    pub fn width(&self) -> u32 {
        self.m
    }

    /// Bytes of a serialized key of width `m` (2..=64; saturating outside).
    pub const fn size(m: u32) -> usize {
        DcfKey::size(m.saturating_sub(1), 2).saturating_add(3 + 8 * 5)
    }

    /// The key's bytes: see the [module documentation](self).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(Self::size(self.m));
        self.write_to(&mut b);
        b
    }

    /// Appends the key's bytes ([`ReluKey::to_bytes`]) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        write_gate(out, KIND_RELU, self.m, &self.words, &self.dcf);
    }

    /// Parses a key written by [`ReluKey::to_bytes`].
    ///
    /// # Errors
    /// A short, long or corrupt key (header, width, inner DCF); never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<ReluKey, FssError> {
        Self::from_shared(&Arc::new(bytes.to_vec()), 0, bytes.len())
    }

    /// [`ReluKey::from_bytes`] of bytes `start..end` of `buf`, kept there (no copy).
    /// Panics if the range is outside `buf`.
    ///
    /// # Errors
    /// As [`ReluKey::from_bytes`].
    pub fn from_shared(buf: &Arc<Vec<u8>>, start: usize, end: usize) -> Result<ReluKey, FssError> {
        let (m, words, dcf) = parse_gate::<5>((buf, start, end), "ReLU key", KIND_RELU, 2)?;
        Ok(ReluKey { m, words, dcf })
    }
}
