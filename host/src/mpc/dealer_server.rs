//! The dealer as its own process, over mutual TLS, and the parties' client side.
//!
//! [`serve_dealer`] accepts one connection from each party ([`super::net`], role
//! `dealer`). Each party receives its 32-byte seed (and a flag byte). Party 1 then sends
//! each request of the [`CorrectionFeed`] design (request counter, kind, public shape)
//! and receives the correction for it, or its FSS keys for a key request; it ends with a
//! goodbye message that says whether its run completed, and the dealer's result (its
//! exit status) follows it: a run that failed, or ended without the goodbye, is an
//! error. Party 0 either releases the dealer at once (the adder comparison: it needs
//! nothing but its seed) or, with the FSS comparison, sends its key requests and a
//! goodbye as party 1 does. [`connect_dealer`] is the parties' side: it returns the
//! party's [`SeededCorrelations`], fed by a [`DealerFeed`] where the party needs one.
//!
//! # Messages (inside [`super::net`] frames)
//! - dealer to party: the seed, 32 bytes, then a flag byte: bit 0 set when the dealer's
//!   master seed is fixed (`--insecure-dealer-seed`), so that a resuming server refuses
//!   it (its masks would serve new values a second time).
//! - party to dealer: `1` (u8), counter (u64), kind (u8: 0 Beaver, 1 matrix, 2
//!   truncation, 3 AND, 4 bits, 5 DReLU keys, 6 ReLU keys, 7 forward convolution
//!   triple, 8 weight-gradient convolution triple, 9 dense backward masks with the input
//!   gradient, 10 without, 11 convolution backward masks with the input gradient, 12
//!   without, 13 scaled truncation pairs), then the kind's u64 parameters:
//!   three for kinds 0 to 6 (`n`; `m, k, n`; `n, bits`; `words`; `words`; `n, m`; `n,
//!   m`), eight for kinds 7 and 8 (the [`ConvShape`]: batch, channels, height, width,
//!   kernel, stride, padding, out channels; [`CONV_FIELDS`]), four for kinds 9 and 10
//!   (`m, k, n, back`: the forward product's shape and how many requests earlier its
//!   matrix triple was; [`DENSE_FIELDS`]), nine for kinds 11 and 12 (the eight of the
//!   [`ConvShape`], then `back`), four for kind 13 (`n, bits, scaled_bits, scale`); or
//!   `0` (u8): the run
//!   completed; or `2` (u8): the run was aborted; or (party 0 only, as its first
//!   message) `3` (u8): it needs nothing more. [`parse_request_of`] reads one request
//!   from its bytes and refuses one that is short, long, of an unknown kind or of a shape
//!   no layer has, naming the field.
//! - dealer to party: `0` (u8), the word count (u64) and the correction words, or for a
//!   key request the byte count (u64) and the keys' bytes; or `1` (u8), a message length
//!   (u32) and a UTF-8 message, after which the dealer closes.
//!
//! A reply longer than a frame travels in several frames; key requests may ask for up to
//! [`KEY_REQUEST_FRAMES`] frames of bytes. The dealer checks, before computing anything,
//! that sizes fit these limits and that
//! counters arrive in order: party 1's one by one, party 0's (key requests only)
//! increasing, so that no counter, hence no mask, is served to a party twice.
//!
//! # Communication
//! Party 0: 33 bytes once (and 1 byte up to release the dealer); with FSS keys, as party
//! 1 for its key requests. Party 1: 33 bytes, and per request 34 bytes up (74 for a
//! convolution triple, 42 for dense and 82 for convolution backward masks, 42 for scaled
//! truncation pairs) and 9 bytes plus the correction down (one word per Beaver triple,
//! per matrix-triple output, per 64 AND gates, per random bit; two per truncation pair,
//! four per scaled one) or the keys
//! ([`Request::key_bytes`]). Requests announced ahead ([`CorrectionFeed::prefetch`]) are
//! streamed back while the party computes.
//!
//! # Security notes
//! Trust model as in [`super::dealer`]: the dealer is semi-honest and colludes with
//! neither party. What reaches it from party 1 is the sequence of request shapes, which
//! are public program structure (the same for any data); nothing derived from data or
//! shares; party 0 sends the subsequence of key requests. Seeds and keys travel only
//! inside TLS to the role whose certificate names it; they are never logged or shown in
//! errors.

use super::comparison::Comparison;
use super::dealer::{ConvProduct, CorrectionFeed, Dealer, Request, Seed, SeededCorrelations};
use super::fss::{DreluKey, ReluKey};
use super::keys::{Identity, Role};
use super::net::{self, NetConfig, NetError, TlsChannel, WireBytes};
use super::{Channel, MpcError, PartyId};
use rand::RngCore;
use ringnn_core::engine::{ConvShape, MatDims};
use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

/// Settings of the dealer process.
#[derive(Clone, Debug)]
pub struct DealerConfig {
    /// Address to listen on (`host:port`).
    pub listen: String,
    /// The [`keygen`](super::keys::keygen) directory (needs `ca.pem`, `dealer.pem`,
    /// `dealer.key`).
    pub keys: PathBuf,
    /// Connection settings (the session id the parties must present).
    pub net: NetConfig,
    /// Master seed of the party seeds (`None`: from the operating system; a fixed seed
    /// is for reproducible tests only).
    pub master_seed: Option<Seed>,
}

/// What the dealer did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DealerReport {
    /// Requests served to both parties.
    pub requests: u64,
    /// Payload bytes sent to party 0 and to party 1.
    pub sent: [u64; 2],
    /// Bytes on the wire to and from each party (TLS included).
    pub wire: [WireBytes; 2],
}

/// Errors of the dealer process.
#[derive(Debug, thiserror::Error)]
pub enum DealerError {
    /// Connection set-up failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A served connection failed.
    #[error("dealer, serving {peer}: {source}")]
    Io {
        /// The party.
        peer: Role,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Party 1 sent a request the dealer refuses.
    #[error("dealer refused a request of party 1: {0}")]
    Refused(String),
    /// A party ended the session without completing it (its run failed, or it stopped
    /// before any training): the dealer's work did not produce a result.
    #[error("{party} ended the session without completing it, after {requests} requests")]
    Aborted {
        /// The party.
        party: PartyId,
        /// Requests served to it before the end.
        requests: u64,
    },
}

/// Binds `cfg.listen` and serves both parties; see [`serve_dealer_on`].
///
/// # Errors
/// As [`serve_dealer_on`], or the address cannot be bound.
pub fn serve_dealer(cfg: &DealerConfig) -> Result<DealerReport, DealerError> {
    let listener = TcpListener::bind(&cfg.listen).map_err(|source| NetError::Io {
        peer: "the parties".into(),
        addr: cfg.listen.clone(),
        during: "bind",
        source,
    })?;
    serve_dealer_on(listener, cfg)
}

/// Serves both parties on `listener` until each says goodbye (or party 0 releases the
/// dealer after its seed). See the [module documentation](self).
///
/// # Errors
/// Key files, connection set-up, a party failing or closing early, a refused request.
pub fn serve_dealer_on(
    listener: TcpListener,
    cfg: &DealerConfig,
) -> Result<DealerReport, DealerError> {
    let me = Identity::load(&cfg.keys, Role::Dealer).map_err(NetError::from)?;
    let master = cfg.master_seed.unwrap_or_else(|| {
        let mut m = [0u8; 32];
        rand::rng().fill_bytes(&mut m);
        m
    });
    let dealer = Arc::new(Dealer::from_seed(master));
    let allowed = [Role::Party(PartyId::P0), Role::Party(PartyId::P1)];
    let mut report = DealerReport::default();
    let mut acceptor = super::accept::Acceptor::new(&listener, &me, &allowed, &cfg.net)?;
    std::thread::scope(|s| {
        let mut handles = Vec::new();
        for _ in 0..2 {
            let ch = acceptor.next_peer()?;
            let peer = ch.peer();
            let dealer = dealer.clone();
            let seed = match peer {
                Role::Party(p) => dealer.party_seed(p),
                Role::Dealer => unreachable!("accept admits parties only"),
            };
            let fixed = cfg.master_seed.is_some();
            handles.push(s.spawn(move || serve_one(ch, seed, fixed, &dealer, cfg.net.max_frame)));
        }
        for h in handles {
            let (peer, requests, sent, wire) = h.join().expect("dealer thread panicked")?;
            let i = match peer {
                Role::Party(p) => p.index(),
                Role::Dealer => unreachable!("accept admits parties only"),
            };
            report.sent[i] = sent;
            report.wire[i] = wire;
            report.requests += requests;
        }
        Ok(report)
    })
}

type Served = (Role, u64, u64, WireBytes);

/// A party's last message: its run completed.
const GOODBYE_DONE: u8 = 0;
/// A party's next message is a request.
const REQUEST: u8 = 1;
/// A party's last message: its run failed or stopped early.
const GOODBYE_ABORTED: u8 = 2;
/// Party 0's only message when it needs nothing but its seed.
const RELEASE: u8 = 3;

fn serve_one(
    mut ch: TlsChannel,
    seed: Seed,
    fixed: bool,
    dealer: &Dealer,
    max_frame: usize,
) -> Result<Served, DealerError> {
    let peer = ch.peer();
    let party = match peer {
        Role::Party(p) => p,
        Role::Dealer => unreachable!("accept admits parties only"),
    };
    let io = |source| DealerError::Io { peer, source };
    // A party reads its material when it needs it: what it has not taken yet waits in
    // the socket and in at most this much memory, not in a queue as long as a step.
    ch.limit_send_queue(DEALER_SEND_QUEUE);
    ch.write_all(&seed).map_err(io)?;
    ch.write_all(&[fixed as u8]).map_err(io)?;
    ch.flush().map_err(io)?;
    let mut sent = 33u64;
    let mut requests = 0u64;
    // The smallest counter this party may ask for next.
    let mut next = 0u64;
    loop {
        let mut op = [0u8; 1];
        ch.read_exact(&mut op).map_err(io)?;
        match op[0] {
            GOODBYE_DONE => break,
            GOODBYE_ABORTED => return Err(DealerError::Aborted { party, requests }),
            RELEASE if party == PartyId::P0 && requests == 0 => break,
            _ => {}
        }
        let mut b = vec![0u8; REQUEST_HEAD];
        ch.read_exact(&mut b).map_err(io)?;
        let checked = if op[0] != REQUEST {
            Err(format!("unknown message type {}", op[0]))
        } else {
            match params_len(b[8]) {
                Ok(len) => {
                    b.resize(REQUEST_HEAD + len, 0);
                    ch.read_exact(&mut b[REQUEST_HEAD..]).map_err(io)?;
                    parse_request_of(party, &b, next, max_frame / 8)
                }
                Err(why) => Err(why),
            }
        };
        let reply = checked.and_then(|(req, counter)| {
            next = counter + 1;
            reply(dealer, party, req, counter)
        });
        let mut out = Vec::new();
        match reply {
            Ok((count, body)) => {
                out.push(0);
                out.extend_from_slice(&count.to_le_bytes());
                ch.write_all(&out).map_err(io)?;
                ch.flush().map_err(io)?;
                // The body in frames of at most REPLY_FRAME bytes: keys may exceed one
                // frame (the party reads the bytes across frames).
                for piece in body.chunks(REPLY_FRAME.min(max_frame)) {
                    ch.write_all(piece).map_err(io)?;
                    ch.flush().map_err(io)?;
                }
                sent += (out.len() + body.len()) as u64;
                requests += 1;
                dealer.recycle(body);
            }
            Err(why) => {
                out.push(1);
                out.extend_from_slice(&(why.len() as u32).to_le_bytes());
                out.extend_from_slice(why.as_bytes());
                ch.write_all(&out).map_err(io)?;
                ch.flush().map_err(io)?;
                return Err(DealerError::Refused(format!("{party}: {why}")));
            }
        }
    }
    Ok((peer, requests, sent, ch.wire_bytes()))
}

/// The reply to a checked request: its count (words of a correction, bytes of keys) and
/// its bytes.
fn reply(
    dealer: &Dealer,
    party: PartyId,
    req: Request,
    counter: u64,
) -> Result<(u64, Vec<u8>), String> {
    if req.key_bytes() > 0 {
        let keys = dealer.keys(req, counter, party)?;
        return Ok((keys.len() as u64, keys));
    }
    let words = dealer.correction(req, counter);
    let mut body = Vec::with_capacity(8 * words.len());
    super::wire::emit_words(&words, &mut body);
    Ok((words.len() as u64, body))
}

/// The most bytes of a reply in one frame.
const REPLY_FRAME: usize = 64 << 20;

/// How many frames' worth of key bytes ([`NetConfig::max_frame`] each) one key request may
/// ask for: the keys of LeNet's max pooling at batch 512 take 1.6 GB.
pub const KEY_REQUEST_FRAMES: usize = 16;

/// The most encrypted bytes the dealer leaves queued for one party's socket
/// ([`TlsChannel::limit_send_queue`]).
const DEALER_SEND_QUEUE: u64 = 64 << 20;

/// Bytes of a request's head after its message type: counter (u64), kind (u8). Its
/// parameters follow ([`params_len`]).
pub const REQUEST_HEAD: usize = 9;

/// The fields of a convolution request's parameters, in wire order: the [`ConvShape`].
pub const CONV_FIELDS: [&str; 8] = [
    "batch",
    "channels",
    "height",
    "width",
    "kernel",
    "stride",
    "padding",
    "out channels",
];

/// The parameters of dense backward masks (kinds 9 and 10), in wire order, as errors
/// name them.
pub const DENSE_FIELDS: [&str; 4] = ["m", "k", "n", "back"];

/// Bytes of the parameters of a request of `kind` (three u64, eight for a convolution
/// triple, four for dense backward masks).
///
/// # Errors
/// An unknown kind.
pub fn params_len(kind: u8) -> Result<usize, String> {
    match kind {
        0..=6 => Ok(24),
        7 | 8 => Ok(8 * CONV_FIELDS.len()),
        9 | 10 => Ok(8 * DENSE_FIELDS.len()),
        11 | 12 => Ok(8 * (CONV_FIELDS.len() + 1)),
        13 => Ok(32),
        _ => Err(format!("unknown request kind {kind}")),
    }
}

/// Party 1's request from its wire form (after the message type byte): it must carry
/// the counter `expected` and sizes of at most `limit` words.
///
/// # Errors
/// As [`parse_request_of`].
pub fn parse_request(b: &[u8], expected: u64, limit: usize) -> Result<Request, String> {
    parse_request_of(PartyId::P1, b, expected, limit).map(|(r, _)| r)
}

/// `party`'s request and its counter from the wire form (the bytes after the message
/// type: [`REQUEST_HEAD`] and the parameters, nothing more): party 1's counter must be
/// `next`; party 0 asks for keys only, with a counter of at least `next` (its requests
/// are the key requests among all of them, in order).
///
/// # Errors
/// A message naming what is wrong: too short or too long for its kind, an out-of-order
/// counter, an unknown kind, a kind party 0 has no material of, a field out of range
/// (named), sizes too large.
pub fn parse_request_of(
    party: PartyId,
    b: &[u8],
    next: u64,
    limit: usize,
) -> Result<(Request, u64), String> {
    if b.len() < REQUEST_HEAD {
        return Err(format!(
            "request of {} bytes, shorter than its {REQUEST_HEAD}-byte head (counter, kind)",
            b.len()
        ));
    }
    let kind = b[8];
    let want = REQUEST_HEAD + params_len(kind)?;
    if b.len() != want {
        return Err(format!(
            "request of kind {kind} has {} bytes, expected {want}",
            b.len()
        ));
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let counter = word(0);
    let in_order = match party {
        PartyId::P1 => counter == next,
        PartyId::P0 => counter >= next,
    };
    if !in_order {
        let want = if party == PartyId::P1 {
            ""
        } else {
            "at least "
        };
        return Err(format!("request number {counter}, expected {want}{next}"));
    }
    let params: Vec<u64> = (REQUEST_HEAD..want).step_by(8).map(word).collect();
    let req = decode(kind, &params, limit)?;
    if let Request::DenseBackward { .. } | Request::ConvBackward { .. } = req {
        req.linked(counter)?;
    }
    if party == PartyId::P0 && req.key_bytes() == 0 {
        return Err(format!(
            "party 0 asked for {}, which it expands from its seed",
            req.what()
        ));
    }
    Ok((req, counter))
}

/// A convolution triple's request from its eight parameters ([`CONV_FIELDS`]): every
/// field within `limit`, a kernel and stride of at least 1, a kernel that fits the padded
/// input, and the triple, the unfolded image the dealer builds and the product within
/// `limit` words.
fn decode_conv(product: ConvProduct, p: &[u64], limit: usize) -> Result<Request, String> {
    let mut f = [0usize; 8];
    for ((v, &w), name) in f.iter_mut().zip(p).zip(CONV_FIELDS) {
        *v = usize::try_from(w)
            .ok()
            .filter(|&v| v <= limit)
            .ok_or_else(|| format!("convolution request: {name} {w} is over {limit}"))?;
    }
    let [batch, channels, height, width, kernel, stride, padding, out_channels] = f;
    for (v, name) in [(kernel, "kernel"), (stride, "stride")] {
        if v == 0 {
            return Err(format!("convolution request: {name} 0 (at least 1)"));
        }
    }
    for (side, name) in [(height, "height"), (width, "width")] {
        if side.saturating_add(padding.saturating_mul(2)) < kernel {
            return Err(format!(
                "convolution request: kernel {kernel} is larger than the {name} {side} \
                 with padding {padding}"
            ));
        }
    }
    let over = |what: &str| format!("convolution request: the {what} is over {limit} words");
    let mul = |xs: &[usize], what: &str| {
        xs.iter()
            .try_fold(1usize, |acc, &x| acc.checked_mul(x))
            .filter(|&v| v <= limit)
            .ok_or_else(|| over(what))
    };
    // The padded sides are at least the kernel (above); saturating for any `limit`.
    let out_side = |side: usize| {
        side.saturating_add(padding.saturating_mul(2))
            .saturating_sub(kernel)
            / stride
            + 1
    };
    let (oh, ow) = (out_side(height), out_side(width));
    mul(&[batch, channels, height, width], "image")?;
    let patch = mul(&[channels, kernel, kernel], "patch")?;
    let rows = mul(&[batch, oh, ow], "output")?;
    mul(&[patch, rows], "unfolded image")?;
    mul(&[out_channels, patch], "kernel matrix")?;
    mul(&[out_channels, rows], "output matrix")?;
    Ok(Request::Conv {
        shape: ConvShape {
            batch,
            channels,
            height,
            width,
            kernel,
            stride,
            padding,
            out_channels,
        },
        product,
    })
}

/// Dense backward masks' request from its four parameters ([`DENSE_FIELDS`]): every
/// field within `limit` (`back` at least 1; that it reaches no further back than the
/// first request is checked against the counter), and the forward product's three
/// matrices, `D` and both products within `limit` words.
fn decode_dense(dx: bool, p: &[u64], limit: usize) -> Result<Request, String> {
    let mut f = [0usize; 4];
    for ((v, &w), name) in f.iter_mut().zip(p).zip(DENSE_FIELDS) {
        *v = usize::try_from(w)
            .ok()
            .filter(|&v| v <= limit)
            .ok_or_else(|| format!("dense backward request: {name} {w} is over {limit}"))?;
    }
    let [m, k, n, back] = f;
    if back == 0 {
        return Err("dense backward request: back 0 (at least 1)".into());
    }
    for ((a, b), what) in [((m, k), "m x k"), ((k, n), "k x n"), ((m, n), "m x n")] {
        a.checked_mul(b)
            .filter(|&v| v <= limit)
            .ok_or_else(|| format!("dense backward request: {what} is over {limit} words"))?;
    }
    Ok(Request::DenseBackward {
        dims: MatDims { m, k, n },
        back,
        dx,
    })
}

/// A request from its wire form, refusing sizes over `limit` words. `p` holds the
/// kind's parameters ([`params_len`]).
fn decode(kind: u8, p: &[u64], limit: usize) -> Result<Request, String> {
    if p.len() * 8 != params_len(kind)? {
        return Err(format!(
            "request of kind {kind} with {} parameters, expected {}",
            p.len(),
            params_len(kind)? / 8
        ));
    }
    let size = |x: u64| usize::try_from(x).ok().filter(|&v| v <= limit);
    let too_big = || format!("request of kind {kind} with sizes {p:?} is over {limit} words");
    let one = || size(p[0]).ok_or_else(too_big);
    let req = match kind {
        0 => Request::Beaver { n: one()? },
        1 => {
            let (m, k, n) = (
                size(p[0]).ok_or_else(too_big)?,
                size(p[1]).ok_or_else(too_big)?,
                size(p[2]).ok_or_else(too_big)?,
            );
            for prod in [m.checked_mul(k), k.checked_mul(n), m.checked_mul(n)] {
                prod.filter(|&v| v <= limit).ok_or_else(too_big)?;
            }
            Request::Matrix {
                dims: MatDims { m, k, n },
            }
        }
        2 => {
            let n = size(p[0]).filter(|&v| v <= limit / 2).ok_or_else(too_big)?;
            if !(1..=62).contains(&p[1]) {
                return Err(format!("truncation by {} bits (allowed 1 to 62)", p[1]));
            }
            Request::Trunc {
                n,
                bits: p[1] as u32,
            }
        }
        13 => {
            let n = size(p[0]).filter(|&v| v <= limit / 4).ok_or_else(too_big)?;
            for (b, what) in [(p[1], "its value"), (p[2], "the scaled value")] {
                if !(1..=62).contains(&b) {
                    return Err(format!(
                        "scaled truncation: {what} shifted by {b} bits (allowed 1 to 62)"
                    ));
                }
            }
            Request::TruncScaled {
                n,
                bits: p[1] as u32,
                scale: p[3],
                scaled_bits: p[2] as u32,
            }
        }
        3 => Request::And { words: one()? },
        4 => Request::Bits {
            words: size(p[0])
                .filter(|&v| v <= limit / 64)
                .ok_or_else(too_big)?,
        },
        5 | 6 => {
            let relu = kind == 6;
            let what = if relu { "ReLU" } else { "DReLU" };
            if !(2..=64).contains(&p[1]) {
                return Err(format!("{what} keys of width {} (allowed 2 to 64)", p[1]));
            }
            let m = p[1] as u32;
            let size = if relu {
                ReluKey::size(m)
            } else {
                DreluKey::size(m)
            };
            // Keys travel in several frames: up to KEY_REQUEST_FRAMES frames' worth.
            let n = usize::try_from(p[0])
                .ok()
                .filter(|&n| {
                    n.checked_mul(size).is_some_and(|b| {
                        b <= limit.saturating_mul(8).saturating_mul(KEY_REQUEST_FRAMES)
                    })
                })
                .ok_or_else(too_big)?;
            if relu {
                Request::Relu { n, m }
            } else {
                Request::Drelu { n, m }
            }
        }
        7 => decode_conv(ConvProduct::Forward, p, limit)?,
        8 => decode_conv(ConvProduct::Weights, p, limit)?,
        9 => decode_dense(true, p, limit)?,
        10 => decode_dense(false, p, limit)?,
        11 | 12 => {
            let shape = match decode_conv(ConvProduct::Forward, &p[..8], limit)? {
                Request::Conv { shape, .. } => shape,
                other => return Err(format!("{} where a convolution was expected", other.what())),
            };
            let back = usize::try_from(p[8])
                .ok()
                .filter(|&v| (1..=limit).contains(&v))
                .ok_or_else(|| {
                    format!(
                        "convolution backward request: back {} (allowed 1 to {limit})",
                        p[8]
                    )
                })?;
            Request::ConvBackward {
                shape,
                back,
                dx: kind == 11,
            }
        }
        _ => return Err(format!("unknown request kind {kind}")),
    };
    Ok(req)
}

/// The wire form of a request: kind and parameters ([`params_len`]).
fn encode(req: Request) -> (u8, Vec<u64>) {
    match req {
        Request::Beaver { n } => (0, vec![n as u64, 0, 0]),
        Request::Matrix { dims } => (1, vec![dims.m as u64, dims.k as u64, dims.n as u64]),
        Request::Trunc { n, bits } => (2, vec![n as u64, bits as u64, 0]),
        Request::TruncScaled {
            n,
            bits,
            scale,
            scaled_bits,
        } => (
            13,
            vec![n as u64, u64::from(bits), u64::from(scaled_bits), scale],
        ),
        Request::And { words } => (3, vec![words as u64, 0, 0]),
        Request::Bits { words } => (4, vec![words as u64, 0, 0]),
        Request::Drelu { n, m } => (5, vec![n as u64, u64::from(m), 0]),
        Request::Relu { n, m } => (6, vec![n as u64, u64::from(m), 0]),
        Request::DenseBackward { dims, back, dx } => (
            if dx { 9 } else { 10 },
            vec![dims.m as u64, dims.k as u64, dims.n as u64, back as u64],
        ),
        Request::ConvBackward { shape: s, back, dx } => {
            let f = [
                s.batch,
                s.channels,
                s.height,
                s.width,
                s.kernel,
                s.stride,
                s.padding,
                s.out_channels,
                back,
            ];
            (
                if dx { 11 } else { 12 },
                f.iter().map(|&v| v as u64).collect(),
            )
        }
        Request::Conv { shape: s, product } => {
            let kind = match product {
                ConvProduct::Forward => 7,
                ConvProduct::Weights => 8,
            };
            let f = [
                s.batch,
                s.channels,
                s.height,
                s.width,
                s.kernel,
                s.stride,
                s.padding,
                s.out_channels,
            ];
            (kind, f.iter().map(|&v| v as u64).collect())
        }
    }
}

/// The bytes a party sends for `req` numbered `counter`, after the message type:
/// [`REQUEST_HEAD`] and the parameters.
pub fn request_bytes(req: Request, counter: u64) -> Vec<u8> {
    let (kind, p) = encode(req);
    let mut b = Vec::with_capacity(REQUEST_HEAD + 8 * p.len());
    b.extend_from_slice(&counter.to_le_bytes());
    b.push(kind);
    p.iter().for_each(|w| b.extend_from_slice(&w.to_le_bytes()));
    b
}

/// A party's [`CorrectionFeed`] from the dealer process: one request, one reply, or
/// requests announced ahead and their replies read in order. Tells the dealer the run
/// was aborted when dropped before [`CorrectionFeed::finish`].
#[derive(Debug)]
pub struct DealerFeed<C: Channel = TlsChannel> {
    ch: C,
    failed: bool,
    /// Goodbye said ([`CorrectionFeed::finish`]): the run completed.
    done: bool,
    /// Requests sent ahead whose replies are still to be read, in order.
    ahead: std::collections::VecDeque<(Request, u64)>,
    /// Reply buffers parsed and given back ([`CorrectionFeed::recycle`]).
    buffers: crate::mpc::buffers::Buffers,
}

impl DealerFeed {
    /// Bytes on the wire to and from the dealer so far.
    pub fn wire_bytes(&self) -> WireBytes {
        self.ch.wire_bytes()
    }
}

impl<C: Channel> DealerFeed<C> {
    /// A party's feed over `ch`, a connection to the dealer past its seed (for tests and
    /// fuzzing over an in-memory channel).
    pub fn over(ch: C) -> Self {
        DealerFeed {
            ch,
            failed: false,
            done: false,
            ahead: Default::default(),
            // A step's key replies are all read (preloaded) before the first is evaluated
            // and given back: keep as many as a step has, so that the next step's replies
            // land in the same memory (freeing them would hand gigabytes back to the system
            // in the online phase and fault them in again in the next offline one).
            buffers: crate::mpc::buffers::Buffers::new(64),
        }
    }

    fn send_request(&mut self, req: Request, counter: u64) -> io::Result<()> {
        let mut b = vec![REQUEST];
        b.extend_from_slice(&request_bytes(req, counter));
        self.ch.write_all(&b)
    }

    /// The reply's bytes to `req` (numbered `counter`): what the dealer sent, of the
    /// length the request implies, or the dealer's refusal.
    fn ask(&mut self, req: Request, counter: u64) -> io::Result<Result<Vec<u8>, String>> {
        match self.ahead.pop_front() {
            Some((r, k)) if (r, k) == (req, counter) => {}
            Some((r, k)) => {
                return Ok(Err(format!(
                    "request {counter} is {req:?}, but {r:?} was announced as request {k}: the program is not the one recorded"
                )))
            }
            None => {
                self.send_request(req, counter)?;
                self.ch.flush()?;
            }
        }
        self.read_reply(req)
    }

    fn read_reply(&mut self, req: Request) -> io::Result<Result<Vec<u8>, String>> {
        let mut status = [0u8; 1];
        self.ch.read_exact(&mut status)?;
        if status[0] != 0 {
            let mut lb = [0u8; 4];
            self.ch.read_exact(&mut lb)?;
            let len = (u32::from_le_bytes(lb) as usize).min(4096);
            let mut msg = vec![0u8; len];
            self.ch.read_exact(&mut msg)?;
            return Ok(Err(String::from_utf8_lossy(&msg).into_owned()));
        }
        // Keys are counted in bytes, corrections in words.
        let (count, unit, what) = match req.key_bytes() {
            0 => (req.correction_words(), 8, "words"),
            b => (b, 1, "bytes"),
        };
        let mut wb = [0u8; 8];
        self.ch.read_exact(&mut wb)?;
        let got = u64::from_le_bytes(wb);
        if got != count as u64 {
            return Ok(Err(format!(
                "dealer announced {got} {what}, expected {count}"
            )));
        }
        // `read_exact` fills it: a buffer given back by an earlier request serves.
        let mut body = self.buffers.take(unit * count);
        self.ch.read_exact(&mut body)?;
        Ok(Ok(body))
    }

    /// [`DealerFeed::ask`] with the feed's failure handling: a refusal or a broken
    /// connection fails this request and every later one.
    fn fetch(&mut self, req: Request, counter: u64) -> Result<Vec<u8>, MpcError> {
        let fail = |reason: String| MpcError::Dealer {
            what: req.what(),
            reason,
        };
        if self.failed {
            return Err(fail("the connection to the dealer failed earlier".into()));
        }
        match self.ask(req, counter) {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(why)) => {
                self.failed = true;
                Err(fail(why))
            }
            Err(e) => {
                self.failed = true;
                Err(fail(e.to_string()))
            }
        }
    }
}

impl<C: Channel + Send> CorrectionFeed for DealerFeed<C> {
    /// Sends every request at once; the dealer computes and streams the replies while
    /// this party computes, and [`CorrectionFeed::correction`] reads them in order.
    fn prefetch(&mut self, reqs: &[(Request, u64)]) -> Result<(), MpcError> {
        if self.failed || reqs.is_empty() {
            return Ok(());
        }
        let sent = reqs
            .iter()
            .try_for_each(|&(r, k)| self.send_request(r, k))
            .and_then(|()| self.ch.flush());
        if let Err(e) = sent {
            self.failed = true;
            return Err(MpcError::Dealer {
                what: reqs[0].0.what(),
                reason: e.to_string(),
            });
        }
        self.ahead.extend(reqs.iter().copied());
        Ok(())
    }

    fn finish(&mut self) -> Result<(), MpcError> {
        if self.done {
            return Ok(());
        }
        let fail = |reason: String| MpcError::Dealer {
            what: "the end of the session",
            reason,
        };
        if self.failed {
            return Err(fail("the connection to the dealer failed earlier".into()));
        }
        if let Some((r, k)) = self.ahead.front() {
            return Err(fail(format!(
                "request {k} ({r:?}) was announced but never taken: the program ended early"
            )));
        }
        self.ch
            .write_all(&[GOODBYE_DONE])
            .and_then(|()| self.ch.flush())
            .map_err(|e| fail(e.to_string()))?;
        self.done = true;
        Ok(())
    }

    fn correction(&mut self, req: Request, counter: u64) -> Result<Vec<u64>, MpcError> {
        let body = self.fetch(req, counter)?;
        let mut out = vec![0u64; body.len() / 8];
        super::wire::parse_words(&body, &mut out);
        self.buffers.give(body);
        Ok(out)
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        self.buffers.give(buf);
    }

    fn keys(&mut self, req: Request, counter: u64) -> Result<Vec<u8>, MpcError> {
        self.fetch(req, counter)
    }
}

impl<C: Channel> Drop for DealerFeed<C> {
    /// A feed dropped before [`CorrectionFeed::finish`] tells the dealer the run was
    /// aborted, so that the dealer's exit status says so.
    fn drop(&mut self) {
        if !self.failed && !self.done {
            let _ = self.ch.write_all(&[GOODBYE_ABORTED]);
            let _ = self.ch.flush();
        }
    }
}

/// Offline traffic counters of the party's dealer connection, shared with the caller
/// (the feed itself moves into the correlations).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct DealerLink {
    /// Wire bytes of the seed download (party 0: all of its dealer traffic).
    pub seed_wire: WireBytes,
    /// The dealer's master seed is fixed (`--insecure-dealer-seed`): its masks repeat
    /// from one session to the next.
    pub fixed_seed: bool,
}

/// Connects `me` (a party) to the dealer at `addr`, receives the seed and returns the
/// party's correlations: party 1's fed by a [`DealerFeed`] on the same connection; party
/// 0's from its seed alone with the adder `comparison` (the dealer is released and the
/// connection closed), or with FSS keys from a [`DealerFeed`] with [`Comparison::Fss`].
///
/// # Errors
/// Connection set-up, or the dealer closing before sending the seed.
pub fn connect_dealer(
    addr: &str,
    me: &Identity,
    cfg: &NetConfig,
    comparison: Comparison,
) -> Result<(SeededCorrelations, DealerLink), DealerError> {
    let party = match me.role {
        Role::Party(p) => p,
        Role::Dealer => panic!("connect_dealer: the dealer does not connect to itself"),
    };
    let mut ch = net::connect(addr, me, Role::Dealer, cfg)?;
    let mut seed = [0u8; 32];
    let mut flags = [0u8; 1];
    ch.read_exact(&mut seed)
        .and_then(|()| ch.read_exact(&mut flags))
        .map_err(|source| DealerError::Io {
            peer: Role::Dealer,
            source,
        })?;
    let link = DealerLink {
        seed_wire: ch.wire_bytes(),
        fixed_seed: flags[0] & 1 == 1,
    };
    let feed: Option<Box<dyn CorrectionFeed>> = match (party, comparison) {
        (PartyId::P0, Comparison::A2b) => {
            ch.write_all(&[RELEASE])
                .and_then(|()| ch.flush())
                .map_err(|source| DealerError::Io {
                    peer: Role::Dealer,
                    source,
                })?;
            None
        }
        _ => Some(Box::new(DealerFeed::over(ch))),
    };
    Ok((SeededCorrelations::new(party, seed, feed), link))
}

#[cfg(test)]
#[path = "dealer_server_tests.rs"]
mod tests;
