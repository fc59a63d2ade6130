//! The two-party protocols on additive shares in Z_2^64, each batched over a slice so that
//! a whole layer costs a constant number of rounds.
//!
//! Notation: `[x]` is an additive sharing (`x = x0 + x1 mod 2^64`), `<b>` an XOR sharing
//! of bits (`b = b0 ^ b1`), "opening" a value means both parties send their share and add
//! (or XOR) the two. Byte counts are per party per element, payload only; every message
//! adds an 8-byte frame header ([`super::wire`]).
//!
//! Every protocol opens only values of the form `secret + fresh dealer mask` with the mask
//! uniform in the value's domain, so what a party receives is uniform and independent of
//! the secrets; this is the whole security argument of each `# Security` section below,
//! in the semi-honest, non-colluding model of [`super::dealer`].

use super::channel::{Channel, Tracked};
use super::dealer::{Correlations, LOW63};
use super::wire::{emit_words, parse_words, Header, Tag, HEADER_LEN};
use super::{MpcError, PartyId};
use ringnn_core::Z64;

mod products;
pub use products::{
    conv_backward, conv_product, conv_product_keeping, dense_backward, matmul, matmul_keeping,
    Kept, KeptConv, KeptProduct,
};

/// One party's end of the connection: who it is and the counted channel to the peer.
#[derive(Debug)]
pub struct Link<C> {
    /// This party.
    pub party: PartyId,
    /// The channel to the other party.
    pub chan: Tracked<C>,
}

impl<C: Channel> Link<C> {
    /// `party`'s end over `chan`.
    pub fn new(party: PartyId, chan: C) -> Self {
        Link {
            party,
            chan: Tracked::new(chan),
        }
    }

    fn is_p0(&self) -> bool {
        self.party == PartyId::P0
    }

    /// One round: sends `send` as a `tag` frame and reads the peer's frame of the same
    /// step into `recv`.
    ///
    /// # Errors
    /// [`MpcError::Channel`] on a transport failure, [`MpcError::Desync`] if the peer's
    /// frame is not the one expected, [`MpcError::TooLong`] for a frame over `u32::MAX`
    /// words.
    pub fn exchange(
        &mut self,
        tag: Tag,
        during: &'static str,
        send: &[u64],
        recv: &mut [u64],
    ) -> Result<(), MpcError> {
        let words =
            u32::try_from(send.len()).map_err(|_| MpcError::TooLong { words: send.len() })?;
        let peer = self.party.peer();
        let io = |source| MpcError::Channel {
            peer,
            during,
            source,
        };
        let mut buf = Vec::with_capacity(HEADER_LEN + 8 * send.len());
        buf.extend_from_slice(
            &Header {
                tag: tag as u32,
                words,
            }
            .emit(),
        );
        emit_words(send, &mut buf);
        self.chan.frame(tag as u32);
        self.chan.write_all(&buf).map_err(io)?;
        self.chan.flush().map_err(io)?;
        let mut hb = [0u8; HEADER_LEN];
        self.chan.read_exact(&mut hb).map_err(io)?;
        let h = Header::parse(&hb);
        if h.tag != tag as u32 || h.words as usize != recv.len() {
            return Err(MpcError::Desync {
                peer,
                during,
                expected_tag: tag as u32,
                expected_words: recv.len() as u64,
                got_tag: h.tag,
                got_words: h.words as u64,
            });
        }
        let mut body = vec![0u8; 8 * recv.len()];
        self.chan.read_exact(&mut body).map_err(io)?;
        parse_words(&body, recv);
        Ok(())
    }

    /// Opens `mine`: returns `mine + peer's share` element by element.
    pub(crate) fn open_add(
        &mut self,
        tag: Tag,
        during: &'static str,
        mine: &[u64],
    ) -> Result<Vec<u64>, MpcError> {
        let mut theirs = vec![0u64; mine.len()];
        self.exchange(tag, during, mine, &mut theirs)?;
        for (t, &m) in theirs.iter_mut().zip(mine) {
            *t = t.wrapping_add(m);
        }
        Ok(theirs)
    }

    /// Opens `mine` as XOR shares.
    fn open_xor(
        &mut self,
        tag: Tag,
        during: &'static str,
        mine: &[u64],
    ) -> Result<Vec<u64>, MpcError> {
        let mut theirs = vec![0u64; mine.len()];
        self.exchange(tag, during, mine, &mut theirs)?;
        for (t, &m) in theirs.iter_mut().zip(mine) {
            *t ^= m;
        }
        Ok(theirs)
    }
}

/// Beaver multiplication: `[out] = [x] [y]` element-wise, exact in Z_2^64 (no truncation).
///
/// With a triple `[a], [b], [c = ab]`, open `e = x - a` and `f = y - b`; then
/// `xy = c + e b + f a + e f`, where party 0 alone adds the public `e f`.
///
/// # Security
/// `e` and `f` are masked by the uniform, fresh `a` and `b`: both are uniform whatever
/// `x` and `y` are.
///
/// # Communication
/// 1 round; 16 bytes sent per element per party (two ring elements). Offline: 8 bytes per
/// element to party 1 (the correction of `c`).
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If the lengths differ.
pub fn mul<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[Z64],
    y: &[Z64],
    out: &mut [Z64],
) -> Result<(), MpcError> {
    let n = x.len();
    assert!(y.len() == n && out.len() == n, "mul: length mismatch");
    if n == 0 {
        return Ok(());
    }
    let t = corr.beaver(n)?;
    let mut send = Vec::with_capacity(2 * n);
    send.extend(x.iter().zip(&t.a).map(|(&v, &a)| (v - a).0));
    send.extend(y.iter().zip(&t.b).map(|(&v, &b)| (v - b).0));
    let ef = link.open_add(Tag::Mul, "multiplication", &send)?;
    let p0 = link.is_p0();
    for i in 0..n {
        let (e, f) = (Z64(ef[i]), Z64(ef[n + i]));
        let mut z = t.c[i] + e * t.b[i] + f * t.a[i];
        if p0 {
            z += e * f;
        }
        out[i] = z;
    }
    Ok(())
}

/// SecureML's local truncation by `bits` (1..=63): party 0 computes `x0 >> d`, party 1
/// `-((-x1) >> d)` (logical shifts of the unsigned shares). No communication.
///
/// # Precision
/// Writing `y1 = -x1`, `x0 = x + y1` holds without wrap-around unless `y1` falls in a
/// window of `|x|` values next to 0 or 2^64, so with probability at least
/// `1 - |x| / 2^64` the result is `floor(x / 2^d)` or one more, one more with probability
/// `(x mod 2^d) / 2^d` (unbiased stochastic rounding, as the dealer-assisted one). Otherwise it is off by about `2^(64-d)`: garbage. For a product of two values
/// near 1 at `f = 16` (`|x| ~ 2^32`) that is once in 2^32 elements; for the softmax
/// products up to 2^58 it is once in 64 elements.
///
/// # Security
/// Local: nothing is sent.
///
/// # Communication
/// 0 rounds, 0 bytes.
///
/// # Panics
/// If `bits` is 0 or above 63.
pub fn truncate_local(party: PartyId, x: &mut [Z64], bits: u32) {
    assert!((1..=63).contains(&bits), "truncate_local: bits in 1..=63");
    match party {
        PartyId::P0 => x.iter_mut().for_each(|v| *v = Z64(v.0 >> bits)),
        PartyId::P1 => x.iter_mut().for_each(|v| *v = -Z64((-*v).0 >> bits)),
    }
}

/// Dealer-assisted truncation by `bits` (1..=62), correct for every `x` in the safe range
/// `[-2^62, 2^62)`, never failing.
///
/// Shift to a non-negative `x' = x + 2^62 < 2^63` (party 0 adds the constant). With a
/// truncation pair (`[r]` uniform in Z_2^64, `[r_63]` its top bit, `[r_lo >> d]` with
/// `r_lo = r mod 2^63`), open `c = x' + r mod 2^64`. Because `x' < 2^63`, the addition
/// wrapped exactly when `r_63 = 1` and `c_63 = 0`, and then
/// `x' = k 2^63 + c_lo - r_lo` with `k = c_63 xor r_63 = c_63 + r_63 (1 - 2 c_63)`, linear
/// in `[r_63]` since `c` is public. So
/// `[x' >> d] = [k] 2^(63-d) + (c_lo >> d) - [r_lo >> d]`, up to the borrow of the low
/// `d` bits, and `x >> d = x' >> d - 2^(62-d)`.
///
/// # Precision
/// The result is `floor(x / 2^d)` or one more (the dropped borrow), with probability 1 for
/// `x` in the safe range. The borrow is dropped exactly when the low `d` bits of `x'` and
/// of `r` add up to `2^d` or more, which for uniform `r` has probability
/// `(x mod 2^d) / 2^d`: the result is `x / 2^d` *stochastically rounded*, unbiased (its
/// mean is exactly `x / 2^d`), never more than one ulp from `x / 2^d` and at most one ulp
/// from `Plain`'s round-to-nearest. (Adding `2^(d-1)` first, to imitate round-to-nearest,
/// would bias every result by +1/2 ulp.) Outside the safe range (`|x| >= 2^62`, which the
/// fixed-point format excludes) the result is wrong.
///
/// # Security
/// `c` is masked by the uniform, fresh `r`: uniform whatever `x` is.
///
/// # Communication
/// 1 round; 8 bytes sent per element per party. Offline: 16 bytes per element to party 1.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If `bits` is 0 or above 62.
pub fn truncate_dealer<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &mut [Z64],
    bits: u32,
) -> Result<(), MpcError> {
    truncate_dealer_many(link, corr, &mut [(x, bits)])
}

/// [`truncate_dealer`] of several slices, each by its own amount, in one round: the
/// masked values of all of them travel in one message.
///
/// # Communication
/// 1 round in all; 8 bytes sent per element per party. Offline: as
/// [`truncate_dealer`], one dealer request per slice.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If an amount is 0 or above 62.
pub fn truncate_dealer_many<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    parts: &mut [(&mut [Z64], u32)],
) -> Result<(), MpcError> {
    let p0 = link.is_p0();
    let offset = if p0 { Z64(1 << 62) } else { Z64::ZERO };
    let mut pairs = Vec::with_capacity(parts.len());
    let mut send = Vec::with_capacity(parts.iter().map(|(x, _)| x.len()).sum());
    for (x, bits) in parts.iter() {
        assert!((1..=62).contains(bits), "truncate_dealer: bits in 1..=62");
        if x.is_empty() {
            pairs.push(None);
            continue;
        }
        let t = corr.trunc(x.len(), *bits)?;
        send.extend(x.iter().zip(&t.r).map(|(&v, &r)| (v + offset + r).0));
        pairs.push(Some(t));
    }
    if send.is_empty() {
        return Ok(());
    }
    let c_all = link.open_add(Tag::Trunc, "truncation", &send)?;
    let mut at = 0;
    for ((x, bits), t) in parts.iter_mut().zip(&pairs) {
        let Some(t) = t else { continue };
        let c = &c_all[at..at + x.len()];
        at += x.len();
        for i in 0..x.len() {
            x[i] = unmask_shifted(p0, c[i], t.msb[i], t.low[i], *bits);
        }
    }
    Ok(())
}

/// A share of `y >> bits` for `y = x + 2^62` in `[0, 2^63)`, from the public `c = y + r`
/// and shares of `r`'s top bit and of `(r mod 2^63) >> bits`: the last step of
/// [`truncate_dealer`] (see there), with `2^(62 - bits)` taken off for the offset.
#[inline]
fn unmask_shifted(p0: bool, c: u64, msb: Z64, low: Z64, bits: u32) -> Z64 {
    let c_hi = c >> 63;
    let k = if c_hi == 1 { -msb } else { msb };
    let mut v = k * Z64(1 << (63 - bits)) - low;
    if p0 {
        v += Z64(c_hi) * Z64(1 << (63 - bits)) + Z64((c & LOW63) >> bits) - Z64(1 << (62 - bits));
    }
    v
}

/// [`truncate_dealer`] of `x` by `bits` that also gives `scaled = (scale x) >> scaled_bits`
/// for a public `scale`, from the same single opening: an SGD step's new velocity and
/// the weights' change `lr v` ([`ringnn_core::optim`]) in one opening instead of two.
///
/// With `c = x + 2^62 + r` opened as in [`truncate_dealer`], `scale c = (scale x + 2^62)
/// + R` for the dealer's `R = scale r + (scale - 1) 2^62` (mod 2^64): the public `scale c`
/// is the masked value of `y' = scale x + 2^62`, and the same top-bit argument with
/// shares of `R >> 63` and `(R mod 2^63) >> scaled_bits` gives `y' >> scaled_bits` when
/// `y'` is in `[0, 2^63)`, that is `scale x` in the safe range `[-2^62, 2^62)`.
///
/// # Precision
/// `x`'s result as [`truncate_dealer`]'s. The scaled result is `floor(scale x /
/// 2^scaled_bits)` or one more; the borrow it drops has probability `(y' mod 2^d) / 2^d`
/// averaged over `R mod 2^d` (`d = scaled_bits`), which is uniform on the multiples of
/// `2^t` for `scale = 2^t odd`: unbiased up to `2^(t - d)` of an ulp.
///
/// # Security
/// Only `c` is opened, masked by the fresh uniform `r` as in [`truncate_dealer`]; `scale
/// c` is computed from it, and `R` is never opened.
///
/// # Communication
/// 1 round; 8 bytes sent per element per party. Offline: 32 bytes per element to party 1.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If a shift is 0 or above 62, or the lengths differ.
pub fn truncate_dealer_scaled<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &mut [Z64],
    bits: u32,
    scale: Z64,
    scaled: &mut [Z64],
    scaled_bits: u32,
) -> Result<(), MpcError> {
    assert_eq!(x.len(), scaled.len(), "truncate_dealer_scaled: lengths");
    assert!(
        (1..=62).contains(&bits) && (1..=62).contains(&scaled_bits),
        "truncate_dealer_scaled: bits in 1..=62"
    );
    if x.is_empty() {
        return Ok(());
    }
    let p0 = link.is_p0();
    let offset = if p0 { Z64(1 << 62) } else { Z64::ZERO };
    let t = corr.trunc_scaled(x.len(), bits, scale.0, scaled_bits)?;
    let send: Vec<u64> = x
        .iter()
        .zip(&t.r)
        .map(|(&v, &r)| (v + offset + r).0)
        .collect();
    let c = link.open_add(Tag::Trunc, "truncation", &send)?;
    for i in 0..x.len() {
        x[i] = unmask_shifted(p0, c[i], t.msb[i], t.low[i], bits);
        let cs = scale.0.wrapping_mul(c[i]);
        scaled[i] = unmask_shifted(p0, cs, t.scaled_msb[i], t.scaled_low[i], scaled_bits);
    }
    Ok(())
}

/// AND of XOR-shared bit words: `<z> = <x> & <y>`, bit by bit, with dealer AND triples
/// (`w = u & v`): open `d = x ^ u`, `e = y ^ v`; `z = w ^ (d & v) ^ (e & u) ^ (d & e)`,
/// party 0 alone adding the public `d & e`.
///
/// # Security
/// `d` and `e` are masked by the uniform, fresh `u` and `v`.
///
/// # Communication
/// 1 round; 2 bits sent per AND gate per party (two words per 64 gates). Offline: 1 bit
/// per gate to party 1.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If the lengths differ.
pub fn and_words<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[u64],
    y: &[u64],
) -> Result<Vec<u64>, MpcError> {
    let w = x.len();
    assert_eq!(y.len(), w, "and_words: length mismatch");
    if w == 0 {
        return Ok(Vec::new());
    }
    let t = corr.and_triples(w)?;
    let mut send = Vec::with_capacity(2 * w);
    send.extend(x.iter().zip(&t.u).map(|(&a, &u)| a ^ u));
    send.extend(y.iter().zip(&t.v).map(|(&b, &v)| b ^ v));
    let de = link.open_xor(Tag::And, "AND gates", &send)?;
    let p0 = link.is_p0();
    Ok((0..w)
        .map(|i| {
            let (d, e) = (de[i], de[w + i]);
            let z = t.w[i] ^ (d & t.v[i]) ^ (e & t.u[i]);
            if p0 {
                z ^ (d & e)
            } else {
                z
            }
        })
        .collect())
}

/// Transposes a 64 x 64 bit matrix in place: afterwards bit `e` of word `j` is what bit
/// `j` of word `e` was (Hacker's Delight 7-3, least significant bit first).
pub fn transpose64(a: &mut [u64; 64]) {
    let mut j = 32;
    let mut m: u64 = 0x0000_0000_FFFF_FFFF;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k] ^= t << j;
            a[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// One segment of bit positions in the carry tree: whether it generates a carry, and
/// (unless it is the lowest segment, where it is never needed) whether it propagates one.
struct Segment {
    generate: Vec<u64>,
    propagate: Option<Vec<u64>>,
}

/// The sign bit of each `[x]`, XOR-shared and packed (element `i` at bit `i % 64` of word
/// `i / 64`): arithmetic-to-binary conversion of the top bit only.
///
/// `x = x0 + x1`, so `msb(x) = msb(x0) ^ msb(x1) ^ carry`, where `carry` is the carry
/// into bit 63 when adding the low 63 bits of the shares, which party 0 and party 1 each
/// hold in the clear. The carry is computed by a parallel-prefix (Kogge-Stone style) tree
/// over generate/propagate pairs: `g_j = a_j & b_j` (one level of AND gates on the two
/// parties' bits), `p_j = a_j ^ b_j` (local), and each merge of a high segment `H` over a
/// low one `L` is `G = G_H ^ (P_H & G_L)`, `P = P_H & P_L` (the lowest segment needs no
/// `P`). The bits are bit-sliced (64 elements per word, one word per bit position, by
/// [`transpose64`]) so that every AND gate carries 64 elements and the batch is tight.
///
/// # Security
/// Only [`and_words`] messages are sent: uniform.
///
/// # Communication
/// 7 rounds (one for the `g_j`, then `ceil(log2 63) = 6` tree levels); 63 + 61 + 31 + 15 +
/// 7 + 3 + 1 = 181 AND gates per element, 362 bits = 45.25 bytes sent per element per
/// party (for batches of a multiple of 64 elements; a batch is padded to one). Offline:
/// 181 bits = 22.6 bytes per element to party 1.
///
/// # Errors
/// A channel or dealer failure.
pub fn sign_bits<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[Z64],
) -> Result<Vec<u64>, MpcError> {
    sign_bits_width(link, corr, x, 64)
}

/// [`sign_bits`] of `x mod 2^m` read as a signed `m`-bit number (`m` in 2..=64): bit
/// `m - 1` of the sum of the shares, with the carry out of their low `m - 1` bits. Equal
/// to the sign of `x` for `-2^(m-1) <= x < 2^(m-1)`; beyond, the sign of `x mod 2^m`, as
/// the FSS gates of the same width ([`crate::mpc::fss::gate::drelu_plain`]).
///
/// # Security
/// As [`sign_bits`]: only [`and_words`] messages; the width is public program structure.
///
/// # Communication
/// `1 + ceil(log2(m - 1))` rounds; at `m = 54` (the reduced width at f = 13) 53 + 51 +
/// 25 + 13 + 5 + 3 + 1 = 151 AND gates per element (181 at 64), 37.75 bytes sent per
/// element per party.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If `m` is outside 2..=64.
pub fn sign_bits_width<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[Z64],
    m: u32,
) -> Result<Vec<u64>, MpcError> {
    assert!((2..=64).contains(&m), "sign_bits: width in 2..=64");
    let top = m as usize - 1;
    let chunks = x.len().div_ceil(64);
    if chunks == 0 {
        return Ok(Vec::new());
    }
    // planes[j * chunks + c] holds bit j of this party's shares of the elements of chunk c.
    let mut planes = vec![0u64; 64 * chunks];
    for (c, blk) in x.chunks(64).enumerate() {
        let mut b = [0u64; 64];
        for (d, v) in b.iter_mut().zip(blk) {
            *d = v.0;
        }
        transpose64(&mut b);
        for (j, &w) in b.iter().enumerate() {
            planes[j * chunks + c] = w;
        }
    }
    let low = top * chunks;
    // g_j = a_j & b_j where party 0 holds a and party 1 holds b: as XOR shares, party 0
    // inputs (a, 0) and party 1 inputs (0, b).
    let zeros = vec![0u64; low];
    let (gx, gy) = match link.party {
        PartyId::P0 => (&planes[..low], &zeros[..]),
        PartyId::P1 => (&zeros[..], &planes[..low]),
    };
    let g = and_words(link, corr, gx, gy)?;
    let mut segs: Vec<Segment> = (0..top)
        .map(|j| Segment {
            generate: g[j * chunks..(j + 1) * chunks].to_vec(),
            propagate: (j > 0).then(|| planes[j * chunks..(j + 1) * chunks].to_vec()),
        })
        .collect();
    while segs.len() > 1 {
        let pairs = segs.len() / 2;
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..pairs {
            let (lo, hi) = (&segs[2 * i], &segs[2 * i + 1]);
            let ph = hi
                .propagate
                .as_ref()
                .expect("only the lowest segment lacks P");
            xs.extend_from_slice(ph);
            ys.extend_from_slice(&lo.generate);
            if let Some(pl) = &lo.propagate {
                xs.extend_from_slice(ph);
                ys.extend_from_slice(pl);
            }
        }
        let z = and_words(link, corr, &xs, &ys)?;
        let mut pos = 0;
        let mut next = Vec::with_capacity(pairs + 1);
        for i in 0..pairs {
            let (lo, hi) = (&segs[2 * i], &segs[2 * i + 1]);
            let generate = hi
                .generate
                .iter()
                .zip(&z[pos..pos + chunks])
                .map(|(&a, &b)| a ^ b)
                .collect();
            pos += chunks;
            let propagate = lo.propagate.as_ref().map(|_| {
                pos += chunks;
                z[pos - chunks..pos].to_vec()
            });
            next.push(Segment {
                generate,
                propagate,
            });
        }
        if segs.len() % 2 == 1 {
            next.push(segs.pop().expect("odd count"));
        }
        segs = next;
    }
    let carry = &segs[0].generate;
    Ok(planes[low..low + chunks]
        .iter()
        .zip(carry)
        .map(|(&m, &c)| m ^ c)
        .collect())
}

/// Bit injection: XOR-shared packed bits `<b>` to arithmetic shares `[b]` (0 or 1 at
/// integer scale), for the first `n` bits.
///
/// With a random bit shared both ways (`<rho>`, `[rho]`), open `m = b ^ rho`; then
/// `b = m ^ rho = m + rho (1 - 2 m)`, linear in `[rho]` since `m` is public.
///
/// # Security
/// `m` is masked by the uniform, fresh `rho`.
///
/// # Communication
/// 1 round; 1 bit sent per element per party. Offline: 8 bytes per element to party 1.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If `bits` has fewer than `n` bits or `out` is not `n` long.
pub fn bit_to_arith<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    bits: &[u64],
    out: &mut [Z64],
) -> Result<(), MpcError> {
    let n = out.len();
    let words = n.div_ceil(64);
    assert!(bits.len() >= words, "bit_to_arith: too few bits");
    if n == 0 {
        return Ok(());
    }
    let rho = corr.random_bits(words)?;
    let send: Vec<u64> = bits[..words]
        .iter()
        .zip(&rho.xor)
        .map(|(&b, &r)| b ^ r)
        .collect();
    let m = link.open_xor(Tag::BitToArith, "bit injection", &send)?;
    let p0 = link.is_p0();
    for (i, o) in out.iter_mut().enumerate() {
        let mi = (m[i / 64] >> (i % 64)) & 1;
        *o = match (mi, p0) {
            (0, _) => rho.arith[i],
            (_, true) => Z64(1) - rho.arith[i],
            (_, false) => -rho.arith[i],
        };
    }
    Ok(())
}

/// `[out] = [x < 0]` (0 or 1 at integer scale), exact for every ring element: the sign
/// bit by [`sign_bits`], then [`bit_to_arith`].
///
/// # Security
/// As its two parts: every message is masked by fresh dealer randomness.
///
/// # Communication
/// 8 rounds; 45.375 bytes sent per element per party (45.25 for the sign bit, 1 bit for
/// the injection). Offline: about 30.6 bytes per element to party 1.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If the lengths differ.
pub fn is_negative<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[Z64],
    out: &mut [Z64],
) -> Result<(), MpcError> {
    is_negative_width(link, corr, x, out, 64)
}

/// [`is_negative`] at the width `m` ([`sign_bits_width`]): exact for `-2^(m-1) <= x <
/// 2^(m-1)`, the sign of `x mod 2^m` beyond.
///
/// # Communication
/// `2 + ceil(log2(m - 1))` rounds (8 at 54 as at 64); at `m = 54`, 37.875 bytes sent per
/// element per party.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If the lengths differ or `m` is outside 2..=64.
pub fn is_negative_width<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[Z64],
    out: &mut [Z64],
    m: u32,
) -> Result<(), MpcError> {
    assert_eq!(x.len(), out.len(), "is_negative: length mismatch");
    let bits = sign_bits_width(link, corr, x, m)?;
    bit_to_arith(link, corr, &bits, out)
}

/// `[out] = [b] + [bit] ([a] - [b])`: one Beaver multiplication, no truncation (the bit
/// is at integer scale). For a non-bit selector it computes the same formula as `Plain`.
///
/// # Security
/// As [`mul`].
///
/// # Communication
/// 1 round; 16 bytes sent per element per party.
///
/// # Errors
/// A channel or dealer failure.
///
/// # Panics
/// If the lengths differ.
pub fn select<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    bits: &[Z64],
    a: &[Z64],
    b: &[Z64],
    out: &mut [Z64],
) -> Result<(), MpcError> {
    let n = out.len();
    assert!(
        bits.len() == n && a.len() == n && b.len() == n,
        "select: length mismatch"
    );
    let diff: Vec<Z64> = a.iter().zip(b).map(|(&x, &y)| x - y).collect();
    mul(link, corr, bits, &diff, out)?;
    for (o, &y) in out.iter_mut().zip(b) {
        *o += y;
    }
    Ok(())
}
