//! The dealer as its own process, over mutual TLS, and the parties' client side.
//!
//! [`serve_dealer`] accepts one connection from each party ([`super::net`], role
//! `dealer`). Party 0 receives its 32-byte seed (and a flag byte) and nothing else. Party
//! 1 receives its
//! seed, then sends each request of the [`CorrectionFeed`] design (request counter,
//! kind, public shape) and receives the correction for it; it ends with a goodbye
//! message that says whether its run completed, and the dealer's result (its exit
//! status) follows it: a run that failed, or ended without the goodbye, is an error. [`connect_dealer`] is the parties' side: it returns the party's
//! [`SeededCorrelations`], for party 1 fed by a [`DealerFeed`].
//!
//! # Messages (inside [`super::net`] frames)
//! - dealer to party: the seed, 32 bytes, then a flag byte: bit 0 set when the dealer's
//!   master seed is fixed (`--insecure-dealer-seed`), so that a resuming server refuses
//!   it (its masks would serve new values a second time).
//! - party 1 to dealer: `1` (u8), counter (u64), kind (u8: 0 Beaver, 1 matrix, 2
//!   truncation, 3 AND, 4 bits), three u64 parameters (`n`; `m, k, n`; `n, bits`;
//!   `words`; `words`); or `0` (u8): the run completed; or `2` (u8): the run was
//!   aborted.
//! - dealer to party 1: `0` (u8), the word count (u64), the correction words; or `1`
//!   (u8), a message length (u32) and a UTF-8 message, after which the dealer closes.
//!
//! The dealer checks that counters arrive in order and that sizes fit the frame limit
//! before computing anything.
//!
//! # Communication
//! Party 0: 33 bytes once. Party 1: 33 bytes, and per request 34 bytes up and 9 bytes
//! plus the correction down (one word per Beaver triple, per matrix-triple output, per
//! 64 AND gates, per random bit; two per truncation pair): one round trip to the dealer
//! per request. The corrections do not depend on data, so a later version can stream
//! them ahead of the requests.
//!
//! # Security notes
//! Trust model as in [`super::dealer`]: the dealer is semi-honest and colludes with
//! neither party. What reaches it from party 1 is the sequence of request shapes, which
//! are public program structure (the same for any data); nothing derived from data or
//! shares. Seeds travel only inside TLS to the role whose certificate names it; they are
//! never logged or shown in errors.

use super::dealer::{CorrectionFeed, Dealer, Request, Seed, SeededCorrelations};
use super::keys::{Identity, Role};
use super::net::{self, NetConfig, NetError, TlsChannel, WireBytes};
use super::{Channel, MpcError, PartyId};
use rand::RngCore;
use ringnn_core::engine::MatDims;
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
    /// Requests served to party 1.
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
    /// Party 1 ended the session without completing it (its run failed, or it stopped
    /// before any training): the dealer's work did not produce a result.
    #[error("party 1 ended the session without completing it, after {requests} requests")]
    Aborted {
        /// Requests served before the end.
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

/// Serves both parties on `listener` until party 1 says goodbye (party 0 is done after
/// its seed). See the [module documentation](self).
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

/// Party 1's last message: its run completed.
const GOODBYE_DONE: u8 = 0;
/// Party 1's last message: its run failed or stopped early.
const GOODBYE_ABORTED: u8 = 2;

fn serve_one(
    mut ch: TlsChannel,
    seed: Seed,
    fixed: bool,
    dealer: &Dealer,
    max_frame: usize,
) -> Result<Served, DealerError> {
    let peer = ch.peer();
    let io = |source| DealerError::Io { peer, source };
    ch.write_all(&seed).map_err(io)?;
    ch.write_all(&[fixed as u8]).map_err(io)?;
    ch.flush().map_err(io)?;
    let mut sent = 33u64;
    let mut requests = 0u64;
    if peer == Role::Party(PartyId::P1) {
        loop {
            let mut op = [0u8; 1];
            ch.read_exact(&mut op).map_err(io)?;
            match op[0] {
                GOODBYE_DONE => break,
                GOODBYE_ABORTED => return Err(DealerError::Aborted { requests }),
                _ => {}
            }
            let mut b = [0u8; REQUEST_LEN];
            ch.read_exact(&mut b).map_err(io)?;
            let counter = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
            let checked = if op[0] != 1 {
                Err(format!("unknown message type {}", op[0]))
            } else {
                parse_request(&b, requests, max_frame / 8)
            };
            let mut out = Vec::new();
            match checked {
                Ok(req) => {
                    let words = dealer.correction(req, counter);
                    out.reserve(9 + 8 * words.len());
                    out.push(0);
                    out.extend_from_slice(&(words.len() as u64).to_le_bytes());
                    super::wire::emit_words(&words, &mut out);
                    ch.write_all(&out).map_err(io)?;
                    ch.flush().map_err(io)?;
                    sent += out.len() as u64;
                    requests += 1;
                }
                Err(why) => {
                    out.push(1);
                    out.extend_from_slice(&(why.len() as u32).to_le_bytes());
                    out.extend_from_slice(why.as_bytes());
                    ch.write_all(&out).map_err(io)?;
                    ch.flush().map_err(io)?;
                    return Err(DealerError::Refused(why));
                }
            }
        }
    }
    Ok((peer, requests, sent, ch.wire_bytes()))
}

/// Bytes of a request after its message type: counter (u64), kind (u8), three u64.
pub const REQUEST_LEN: usize = 33;

/// Party 1's request from its wire form (after the message type byte): it must carry
/// the counter `expected` and sizes of at most `limit` words.
///
/// # Errors
/// A message naming what is wrong (out-of-order counter, unknown kind, sizes too large).
pub fn parse_request(
    b: &[u8; REQUEST_LEN],
    expected: u64,
    limit: usize,
) -> Result<Request, String> {
    let word = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let counter = word(0);
    if counter != expected {
        return Err(format!("request number {counter}, expected {expected}"));
    }
    decode(b[8], [word(9), word(17), word(25)], limit)
}

/// A request from its wire form, refusing sizes over `limit` words.
fn decode(kind: u8, p: [u64; 3], limit: usize) -> Result<Request, String> {
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
        3 => Request::And { words: one()? },
        4 => Request::Bits {
            words: size(p[0])
                .filter(|&v| v <= limit / 64)
                .ok_or_else(too_big)?,
        },
        _ => return Err(format!("unknown request kind {kind}")),
    };
    Ok(req)
}

/// The wire form of a request: kind and three parameters.
fn encode(req: Request) -> (u8, [u64; 3]) {
    match req {
        Request::Beaver { n } => (0, [n as u64, 0, 0]),
        Request::Matrix { dims } => (1, [dims.m as u64, dims.k as u64, dims.n as u64]),
        Request::Trunc { n, bits } => (2, [n as u64, bits as u64, 0]),
        Request::And { words } => (3, [words as u64, 0, 0]),
        Request::Bits { words } => (4, [words as u64, 0, 0]),
    }
}

/// Party 1's [`CorrectionFeed`] from the dealer process: one request, one reply. Says
/// goodbye when dropped.
#[derive(Debug)]
pub struct DealerFeed<C: Channel = TlsChannel> {
    ch: C,
    failed: bool,
    /// Goodbye said ([`CorrectionFeed::finish`]): the run completed.
    done: bool,
    /// Requests sent ahead whose replies are still to be read, in order.
    ahead: std::collections::VecDeque<(Request, u64)>,
}

impl DealerFeed {
    /// Bytes on the wire to and from the dealer so far.
    pub fn wire_bytes(&self) -> WireBytes {
        self.ch.wire_bytes()
    }
}

impl<C: Channel> DealerFeed<C> {
    /// Party 1's feed over `ch`, a connection to the dealer past its seed (for tests and
    /// fuzzing over an in-memory channel).
    pub fn over(ch: C) -> Self {
        DealerFeed {
            ch,
            failed: false,
            done: false,
            ahead: Default::default(),
        }
    }

    fn send_request(&mut self, req: Request, counter: u64) -> io::Result<()> {
        let (kind, p) = encode(req);
        let mut b = Vec::with_capacity(34);
        b.push(1);
        b.extend_from_slice(&counter.to_le_bytes());
        b.push(kind);
        p.iter().for_each(|w| b.extend_from_slice(&w.to_le_bytes()));
        self.ch.write_all(&b)
    }

    fn ask(&mut self, req: Request, counter: u64) -> io::Result<Result<Vec<u64>, String>> {
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

    fn read_reply(&mut self, req: Request) -> io::Result<Result<Vec<u64>, String>> {
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
        let mut wb = [0u8; 8];
        self.ch.read_exact(&mut wb)?;
        let words = u64::from_le_bytes(wb);
        if words != req.correction_words() as u64 {
            return Ok(Err(format!(
                "dealer announced {words} words, expected {}",
                req.correction_words()
            )));
        }
        let mut body = vec![0u8; 8 * req.correction_words()];
        self.ch.read_exact(&mut body)?;
        let mut out = vec![0u64; req.correction_words()];
        super::wire::parse_words(&body, &mut out);
        Ok(Ok(out))
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
/// party's correlations: party 0's from its seed alone (the connection is closed),
/// party 1's fed by a [`DealerFeed`] on the same connection.
///
/// # Errors
/// Connection set-up, or the dealer closing before sending the seed.
pub fn connect_dealer(
    addr: &str,
    me: &Identity,
    cfg: &NetConfig,
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
    let feed: Option<Box<dyn CorrectionFeed>> = match party {
        PartyId::P0 => None,
        PartyId::P1 => Some(Box::new(DealerFeed::over(ch))),
    };
    Ok((SeededCorrelations::new(party, seed, feed), link))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpc::dealer::Correlations;
    use ringnn_core::Z64;

    #[test]
    fn sources_built_from_party_seeds_match_the_in_process_dealer() {
        // What the dealer process sends each party must give the material of
        // Dealer::correlations.
        let master = [9u8; 32];
        let dealer = Arc::new(Dealer::from_seed(master));
        let seeds = [PartyId::P0, PartyId::P1].map(|p| dealer.party_seed(p));
        let [mut r0, mut r1] = dealer.correlations();
        let mut s0 = SeededCorrelations::new(PartyId::P0, seeds[0], None);
        let mut s1 = SeededCorrelations::new(PartyId::P1, seeds[1], Some(Box::new(dealer)));
        let (a0, a1) = (r0.beaver(5).unwrap(), r1.beaver(5).unwrap());
        let (b0, b1) = (s0.beaver(5).unwrap(), s1.beaver(5).unwrap());
        assert_eq!((a0.a, a0.c, a1.a, a1.c), (b0.a, b0.c, b1.a, b1.c));
        let t = |x: &[Z64]| x.to_vec();
        assert_eq!(t(&a0.b), t(&b0.b));
    }

    #[test]
    fn requests_round_trip_and_oversized_ones_are_refused() {
        let reqs = [
            Request::Beaver { n: 7 },
            Request::Matrix {
                dims: MatDims { m: 2, k: 3, n: 4 },
            },
            Request::Trunc { n: 5, bits: 16 },
            Request::And { words: 3 },
            Request::Bits { words: 2 },
        ];
        for r in reqs {
            let (k, p) = encode(r);
            assert_eq!(decode(k, p, 1 << 20), Ok(r));
        }
        assert!(decode(0, [u64::MAX, 0, 0], 1 << 20).is_err());
        assert!(decode(1, [1 << 15, 1 << 15, 1], 1 << 20).is_err());
        assert!(decode(2, [4, 63, 0], 1 << 20).is_err());
        assert!(decode(9, [1, 0, 0], 1 << 20).is_err());
    }
}
