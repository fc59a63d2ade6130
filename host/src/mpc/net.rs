//! The network transport: a [`Channel`] over TCP with mutual TLS 1.3 (rustls, ring).
//!
//! # Connection set-up
//! 1. TCP: the listening side ([`Acceptor`](super::accept::Acceptor), [`accept`](super::accept::accept)) waits up to [`NetConfig::wait`]
//!    for the rightful peer; the connecting side ([`connect`]) retries refused
//!    connections until [`NetConfig::timeout`], so the processes may start in any order.
//!    Every connection the listener takes is authenticated on its own thread (at most
//!    [`MAX_PENDING`](super::accept::MAX_PENDING) at once); one that fails any step below is refused, logged with its
//!    address and reason on standard error, and closed, and the listener goes on
//!    waiting. A stranger (random bytes, a silent client, a certificate of another CA, a
//!    process of another session) therefore cannot end the run nor delay the rightful
//!    peer's handshake.
//! 2. Each handshake (TLS, identity, handshake frame) must complete within
//!    [`NetConfig::handshake`] in all, however slowly the bytes arrive.
//! 3. TLS 1.3 with client certificates: both sides present the certificate of their
//!    [`Role`] ([`super::keys`]) and verify the peer's against the session's CA only.
//! 4. Identity: the peer's certificate must name the role expected at that end
//!    ([`Role::dns_name`], a DNS subject alternative name); a party's certificate
//!    cannot pass as the other party's or the dealer's.
//! 5. Handshake frame, sent by both sides before either reads: magic `RGNN`, protocol
//!    version (`u32`), session id (16 bytes), role code (`u8`). Every field must match
//!    this side's expectation; a mismatch is [`NetError::Handshake`] naming the peer and
//!    the field.
//!
//! # Frames
//! Every [`Channel::flush`] sends one frame: a `u32` little-endian length (1 to
//! [`NetConfig::max_frame`] bytes) and the bytes. A zero or oversized length from the
//! peer is an `InvalidData` error naming the peer, never a panic or an allocation of the
//! announced size. Frames are invisible to [`Channel::read_exact`], which reads across
//! them as a byte stream.
//!
//! # No deadlock when both sides write first
//! Each connection has a writer thread fed by an unbounded queue: [`Channel::flush`]
//! encrypts the message in the caller's thread and hands the ciphertext to the queue,
//! so it never blocks on the socket. The writer thread does the blocking socket writes
//! while the caller goes on to read, so both sides always drain their receive buffers
//! while their own large messages are in flight. The TLS state stays in the caller's
//! thread (no lock); the writer thread only sees ciphertext. The queue holds at most the
//! messages of the steps not yet taken in by the peer's kernel (one round's worth).
//!
//! # Failure
//! Reads and the writer's socket writes time out after [`NetConfig::timeout`] (the
//! default is 30 s): a killed peer's socket is closed by its kernel and the next read
//! fails at once; a hung peer or a broken network fails within the timeout. Errors are
//! `io::Error`s whose message names the peer; the protocols wrap them in
//! [`MpcError::Channel`](super::MpcError::Channel). The timeout must exceed the longest
//! local computation between two messages of the peer.
//!
//! # Security notes
//! - Confidentiality and integrity of every message against a network attacker come
//!   from TLS 1.3; authentication of both ends from the session CA and the role name in
//!   the certificate. The handshake frame's session id binds the connection to this run
//!   (a process of an earlier or concurrent run with the same keys is refused).
//! - The semi-honest model is unchanged: TLS does not protect against the peer itself,
//!   which sees only masked values by the protocols' design.
//! - Nothing derived from shares, seeds or keys is logged or put in error messages;
//!   errors carry roles, field names, lengths and public protocol parameters only. The
//!   session id is not secret.
//! - Traffic analysis: message lengths and timing are visible on the network; they depend
//!   only on public shapes.

use super::channel::Channel;
use super::keys::{Identity, KeyError, Role};
use rand::RngCore;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The protocol version in every handshake frame: 2 adds the FSS comparison (its frame
/// tag, and party 0's messages to the dealer: a release, or its key requests); 3 adds
/// convolution triples (their frame tag, and the dealer requests of kinds 7 and 8, with
/// eight parameters); 4 adds masks reused within a training step (the frame tags of the
/// dense and convolution backward passes, and the dealer requests of kinds 9 to 12); 5
/// asks for the ReLU, spline and max (pooling, arg-max) keys at the reduced width
/// `fss_width(f)` (two
/// servers of versions 4 and 5 would ask for keys of different widths for one request); 6
/// draws each request's masks from an AES-128 counter-mode stream instead of ChaCha20
/// (a party and a dealer of versions 5 and 6 would disagree on every mask, and every
/// result would be wrong).
pub const PROTOCOL_VERSION: u32 = 6;
/// The first bytes of a handshake frame.
pub const MAGIC: [u8; 4] = *b"RGNN";
/// Length of the handshake frame's payload.
pub const HELLO_LEN: usize = 4 + 4 + 16 + 1;
/// Default largest frame: 1 GiB.
pub const DEFAULT_MAX_FRAME: usize = 1 << 30;

/// The id of one run, the same for the two parties and the dealer. Not secret; random per
/// run so that a process of another run is refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SessionId(pub [u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> SessionId {
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
        SessionId(b)
    }
}

impl fmt::Display for SessionId {
    /// 32 lowercase hexadecimal digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl FromStr for SessionId {
    type Err = String;

    /// 32 hexadecimal digits.
    fn from_str(s: &str) -> Result<SessionId, String> {
        let bad = || format!("session id {s:?}: expected 32 hexadecimal digits");
        if s.len() != 32 || !s.is_ascii() {
            return Err(bad());
        }
        let mut b = [0u8; 16];
        for (i, o) in b.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(SessionId(b))
    }
}

/// Settings of a connection.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// The run's session id.
    pub session: SessionId,
    /// Connect deadline, read timeout and write timeout.
    pub timeout: Duration,
    /// How long a listener waits for the rightful peer, strangers refused meanwhile.
    pub wait: Duration,
    /// Overall deadline of one connection's handshake (TLS, identity, handshake frame).
    pub handshake: Duration,
    /// Largest frame accepted or sent, in bytes (at most `u32::MAX`).
    pub max_frame: usize,
    /// The protocol version to announce and require ([`PROTOCOL_VERSION`]; other values
    /// are for tests).
    pub version: u32,
}

impl NetConfig {
    /// `session` with a 30 s timeout, a 60 s wait for the peer, 10 s handshakes, 1 GiB
    /// frames, the current version.
    pub fn new(session: SessionId) -> NetConfig {
        NetConfig {
            session,
            timeout: Duration::from_secs(30),
            wait: Duration::from_secs(60),
            handshake: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
            version: PROTOCOL_VERSION,
        }
    }
}

/// Errors of connection set-up.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A socket operation failed.
    #[error("connection to {peer} ({addr}): {during}: {source}")]
    Io {
        /// The expected peer.
        peer: String,
        /// The address.
        addr: String,
        /// What was being done.
        during: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (certificate from another CA, ...).
    #[error("TLS handshake with {peer} ({addr}) failed: {source}")]
    Tls {
        /// The expected peer.
        peer: String,
        /// The address.
        addr: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The peer's certificate is valid but names the wrong role.
    #[error("{addr}: the peer's certificate names none of the expected roles ({expected})")]
    Identity {
        /// The address.
        addr: String,
        /// The roles that were acceptable.
        expected: String,
    },
    /// A handshake frame field does not match.
    #[error("handshake with {peer}: {field} mismatch: expected {expected}, got {got}")]
    Handshake {
        /// The peer.
        peer: Role,
        /// The field (`magic`, `protocol version`, `session id`, `party id`,
        /// `frame length`).
        field: &'static str,
        /// This side's value.
        expected: String,
        /// The peer's value.
        got: String,
    },
    /// The key material could not be used.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

fn roots(id: &Identity) -> Result<Arc<RootCertStore>, KeyError> {
    let mut roots = RootCertStore::empty();
    roots.add(id.ca.clone())?;
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn server_config(id: &Identity) -> Result<Arc<rustls::ServerConfig>, KeyError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(id)?, provider())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![id.cert.clone()], id.key.clone_key())?;
    Ok(Arc::new(cfg))
}

fn client_config(id: &Identity) -> Result<Arc<ClientConfig>, KeyError> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(id)?)
        .with_client_auth_cert(vec![id.cert.clone()], id.key.clone_key())?;
    Ok(Arc::new(cfg))
}

/// Connects to `addr`, where `peer` listens, as `me`; retries refused connections until
/// `cfg.timeout` has passed.
///
/// # Errors
/// No connection in time, a TLS failure, a certificate naming another role, or a
/// handshake frame that does not match.
pub fn connect(
    addr: &str,
    me: &Identity,
    peer: Role,
    cfg: &NetConfig,
) -> Result<TlsChannel, NetError> {
    let io_err = |during, source| NetError::Io {
        peer: peer.to_string(),
        addr: addr.to_string(),
        during,
        source,
    };
    let deadline = Instant::now() + cfg.timeout;
    let sock = loop {
        let attempt = addr.to_socket_addrs().and_then(|mut it| {
            let a = it.next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "address resolves to nothing")
            })?;
            TcpStream::connect_timeout(&a, cfg.timeout)
        });
        match attempt {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => return Err(io_err("connect", e)),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let name = ServerName::try_from(peer.dns_name())
        .map_err(|e| io_err("server name", io::Error::other(e)))?;
    let conn = ClientConnection::new(client_config(me)?, name)
        .map_err(|e| NetError::Keys(KeyError::Tls(e)))?;
    establish(
        sock,
        Connection::Client(conn),
        me.role,
        &[peer],
        addr,
        cfg,
        cfg.timeout,
    )
}

pub(crate) fn join_roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

pub(crate) fn local_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// The socket as seen by the TLS handshake: every read and write waits at most until
/// `deadline`, so a peer that sends one byte at a time cannot stretch the handshake.
struct Deadlined<'s> {
    sock: &'s TcpStream,
    deadline: Instant,
    limit: Duration,
}

impl Deadlined<'_> {
    fn left(&self) -> io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| handshake_timeout(self.limit))
    }
}

fn handshake_timeout(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no complete handshake within {limit:?}"),
    )
}

/// A socket timeout reads "Resource temporarily unavailable" on Linux: name it.
fn name_timeout(e: io::Error, limit: Duration) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => handshake_timeout(limit),
        _ => e,
    }
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.set_read_timeout(Some(self.left()?))?;
        let mut s = self.sock;
        s.read(buf).map_err(|e| name_timeout(e, self.limit))
    }
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.set_write_timeout(Some(self.left()?))?;
        let mut s = self.sock;
        s.write(buf).map_err(|e| name_timeout(e, self.limit))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// TLS handshake, identity check, handshake frame, all within `limit`: the listener's
/// [`NetConfig::handshake`] (a stranger must not hold it), the connecting side's
/// [`NetConfig::timeout`] (the listener it chose may still be busy before it accepts).
pub(crate) fn establish(
    sock: TcpStream,
    mut conn: Connection,
    me: Role,
    allowed: &[Role],
    addr: &str,
    cfg: &NetConfig,
    limit: Duration,
) -> Result<TlsChannel, NetError> {
    assert!(
        cfg.max_frame >= HELLO_LEN && cfg.max_frame <= u32::MAX as usize,
        "max_frame out of range"
    );
    let who = join_roles(allowed);
    let io_err = |during, source| NetError::Io {
        peer: who.clone(),
        addr: addr.to_string(),
        during,
        source,
    };
    let deadline = Instant::now() + limit;
    sock.set_nodelay(true).map_err(|e| io_err("set up", e))?;
    let mut timed = Deadlined {
        sock: &sock,
        deadline,
        limit,
    };
    while conn.is_handshaking() {
        conn.complete_io(&mut timed)
            .map_err(|source| NetError::Tls {
                peer: who.clone(),
                addr: addr.to_string(),
                source,
            })?;
    }
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or_else(|| NetError::Identity {
            addr: addr.to_string(),
            expected: who.clone(),
        })?;
    let ee = webpki::EndEntityCert::try_from(&cert).map_err(|_| NetError::Identity {
        addr: addr.to_string(),
        expected: who.clone(),
    })?;
    let peer = allowed
        .iter()
        .copied()
        .find(|r| {
            ServerName::try_from(r.dns_name())
                .map(|n| ee.verify_is_valid_for_subject_name(&n).is_ok())
                .unwrap_or(false)
        })
        .ok_or_else(|| NetError::Identity {
            addr: addr.to_string(),
            expected: who.clone(),
        })?;
    conn.set_buffer_limit(None);
    sock.set_write_timeout(Some(cfg.timeout))
        .map_err(|e| io_err("set up", e))?;
    let mut ch = TlsChannel::start(sock, conn, peer, cfg).map_err(|e| io_err("set up", e))?;
    ch.deadline = Some((deadline, limit));
    ch.hello(me, cfg)?;
    ch.deadline = None;
    ch.sock
        .set_read_timeout(Some(cfg.timeout))
        .map_err(|e| io_err("set up", e))?;
    Ok(ch)
}

/// Bytes on the TCP connection (TLS records and frame prefixes included).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WireBytes {
    /// Bytes written to the socket.
    pub sent: u64,
    /// Bytes read from the socket.
    pub received: u64,
}

/// One end of an established mutual-TLS connection; a [`Channel`]. See the [module
/// documentation](self).
pub struct TlsChannel {
    conn: Connection,
    sock: TcpStream,
    tx: Option<Sender<Vec<u8>>>,
    writer: Option<JoinHandle<()>>,
    write_err: Arc<Mutex<Option<String>>>,
    sent: Arc<AtomicU64>,
    received: u64,
    out: Vec<u8>,
    /// Bytes handed to the writer thread so far (`sent` counts those it wrote).
    queued: u64,
    /// The most bytes to leave queued for the writer ([`TlsChannel::limit_send_queue`]).
    send_limit: Option<u64>,
    frame_left: usize,
    peer: Role,
    max_frame: usize,
    timeout: Duration,
    /// While the handshake frame is exchanged: the handshake's deadline and limit.
    deadline: Option<(Instant, Duration)>,
}

impl fmt::Debug for TlsChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsChannel")
            .field("peer", &self.peer)
            .field("wire", &self.wire_bytes())
            .finish_non_exhaustive()
    }
}

impl TlsChannel {
    fn start(
        sock: TcpStream,
        conn: Connection,
        peer: Role,
        cfg: &NetConfig,
    ) -> io::Result<TlsChannel> {
        let mut wsock = sock.try_clone()?;
        let (tx, rx) = channel::<Vec<u8>>();
        let write_err = Arc::new(Mutex::new(None));
        let sent = Arc::new(AtomicU64::new(0));
        let (err2, sent2) = (write_err.clone(), sent.clone());
        let timeout = cfg.timeout;
        let writer = std::thread::Builder::new()
            .name(format!("ringnn-tls-writer-{}", peer.stem()))
            .spawn(move || {
                for buf in rx {
                    if let Err(e) = wsock.write_all(&buf) {
                        let why = match e.kind() {
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                                format!("{peer} took nothing for {timeout:?} (write timeout)")
                            }
                            _ => format!("writing to {peer}: {e}"),
                        };
                        *err2.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                        let _ = wsock.shutdown(Shutdown::Both);
                        return;
                    }
                    sent2.fetch_add(buf.len() as u64, Ordering::Relaxed);
                }
            })?;
        Ok(TlsChannel {
            conn,
            sock,
            tx: Some(tx),
            writer: Some(writer),
            write_err,
            sent,
            received: 0,
            out: Vec::new(),
            queued: 0,
            send_limit: None,
            frame_left: 0,
            peer,
            max_frame: cfg.max_frame,
            timeout: cfg.timeout,
            deadline: None,
        })
    }

    /// The role at the other end (checked by certificate and handshake frame).
    pub fn peer(&self) -> Role {
        self.peer
    }

    /// Bytes on the wire so far (TLS overhead included).
    pub fn wire_bytes(&self) -> WireBytes {
        WireBytes {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received,
        }
    }

    fn hello(&mut self, me: Role, cfg: &NetConfig) -> Result<(), NetError> {
        let peer = self.peer;
        let addr = self
            .sock
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let io_err = |source| NetError::Io {
            peer: peer.to_string(),
            addr: addr.clone(),
            during: "handshake frame",
            source,
        };
        let mut h = Vec::with_capacity(HELLO_LEN);
        h.extend_from_slice(&MAGIC);
        h.extend_from_slice(&cfg.version.to_le_bytes());
        h.extend_from_slice(&cfg.session.0);
        h.push(me.code());
        self.write_all(&h).map_err(io_err)?;
        self.flush().map_err(io_err)?;
        let len = self.next_frame().map_err(io_err)?;
        let mismatch = |field, expected: String, got: String| NetError::Handshake {
            peer,
            field,
            expected,
            got,
        };
        if len != HELLO_LEN {
            return Err(mismatch(
                "frame length",
                HELLO_LEN.to_string(),
                len.to_string(),
            ));
        }
        let mut b = [0u8; HELLO_LEN];
        self.read_exact(&mut b).map_err(io_err)?;
        if b[..4] != MAGIC {
            return Err(mismatch(
                "magic",
                format!("{MAGIC:?}"),
                format!("{:?}", &b[..4]),
            ));
        }
        let version = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        if version != cfg.version {
            return Err(mismatch(
                "protocol version",
                cfg.version.to_string(),
                version.to_string(),
            ));
        }
        let mut sid = [0u8; 16];
        sid.copy_from_slice(&b[8..24]);
        if sid != cfg.session.0 {
            return Err(mismatch(
                "session id",
                cfg.session.to_string(),
                SessionId(sid).to_string(),
            ));
        }
        if Role::from_code(b[24]) != Some(peer) {
            return Err(mismatch(
                "party id",
                format!("{} ({peer})", peer.code()),
                b[24].to_string(),
            ));
        }
        Ok(())
    }

    fn err(&self, kind: io::ErrorKind, msg: String) -> io::Error {
        io::Error::new(kind, msg)
    }

    /// Keeps at most about `bytes` of encrypted data waiting for the socket: each
    /// [`Channel::flush`] then waits, between pieces of 4 MiB, until the
    /// writer thread has passed the rest to the socket. For a side that only answers,
    /// such as the dealer, whose replies would otherwise pile up in memory while a party
    /// is busy computing; not for a channel whose peer may be writing a large message to
    /// it at the same time without reading (two servers exchanging masked values), where
    /// both would wait.
    pub fn limit_send_queue(&mut self, bytes: u64) {
        self.send_limit = Some(bytes);
    }

    /// Waits until the queue is within [`TlsChannel::limit_send_queue`]'s bound (nothing
    /// to wait for without one); an error once the writer has stopped (the peer took
    /// nothing for the timeout, or the connection failed).
    fn wait_for_queue(&self) -> io::Result<()> {
        let Some(limit) = self.send_limit else {
            return Ok(());
        };
        while self.queued - self.sent.load(Ordering::Relaxed) > limit {
            if self.writer.as_ref().is_none_or(|w| w.is_finished()) {
                return Err(self.writer_error());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Hands what TLS has to send to the writer thread.
    fn push_tls(&mut self) -> io::Result<()> {
        if !self.conn.wants_write() {
            return Ok(());
        }
        let mut buf = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut buf)?;
        }
        self.queued += buf.len() as u64;
        let failed = self.tx.as_ref().map(|tx| tx.send(buf).is_err());
        if failed != Some(false) {
            return Err(self.writer_error());
        }
        Ok(())
    }

    fn writer_error(&self) -> io::Error {
        let why = self
            .write_err
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| format!("connection to {} is closed", self.peer));
        self.err(io::ErrorKind::BrokenPipe, why)
    }

    /// Reads more TLS records from the socket.
    fn fill(&mut self) -> io::Result<()> {
        if let Some((deadline, limit)) = self.deadline {
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| handshake_timeout(limit))?;
            self.sock.set_read_timeout(Some(left))?;
        }
        let n = match self.conn.read_tls(&mut self.sock) {
            Ok(n) => n,
            Err(e) if self.deadline.is_some() => {
                return Err(name_timeout(e, self.deadline.map_or(self.timeout, |d| d.1)))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(self.err(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} sent nothing for {:?} (read timeout)",
                        self.peer, self.timeout
                    ),
                ))
            }
            Err(e) => {
                return Err(self.err(e.kind(), format!("reading from {}: {e}", self.peer)));
            }
        };
        if n == 0 {
            return Err(self.err(
                io::ErrorKind::UnexpectedEof,
                format!("{} closed the connection", self.peer),
            ));
        }
        self.received += n as u64;
        if let Err(e) = self.conn.process_new_packets() {
            // Send the alert, if any, before failing.
            let _ = self.push_tls();
            return Err(self.err(
                io::ErrorKind::InvalidData,
                format!("TLS error from {}: {e}", self.peer),
            ));
        }
        self.push_tls()
    }

    /// Fills `buf` with plaintext, ignoring frames.
    fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.conn.reader().read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(self.err(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} closed the connection", self.peer),
                    ))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.fill()?,
                Err(e) => {
                    return Err(self.err(e.kind(), format!("reading from {}: {e}", self.peer)))
                }
            }
        }
        Ok(())
    }

    /// Reads the next frame's length prefix and checks it.
    fn next_frame(&mut self) -> io::Result<usize> {
        let mut lb = [0u8; 4];
        self.read_plain(&mut lb)?;
        let len = u32::from_le_bytes(lb) as usize;
        if len == 0 || len > self.max_frame {
            return Err(self.err(
                io::ErrorKind::InvalidData,
                format!(
                    "{} sent a frame of {len} bytes (allowed: 1 to {})",
                    self.peer, self.max_frame
                ),
            ));
        }
        self.frame_left = len;
        Ok(len)
    }
}

/// Plaintext bytes encrypted at a time by [`Channel::flush`] on a [`TlsChannel`].
const SEND_PIECE: usize = 4 << 20;

impl Channel for TlsChannel {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        if self.out.len() > self.max_frame {
            let n = self.out.len();
            self.out.clear();
            return Err(self.err(
                io::ErrorKind::InvalidInput,
                format!(
                    "message of {n} bytes to {} is over the frame limit of {}",
                    self.peer, self.max_frame
                ),
            ));
        }
        let out = std::mem::take(&mut self.out);
        self.conn
            .writer()
            .write_all(&(out.len() as u32).to_le_bytes())?;
        // In pieces: TLS holds one piece's records at a time, and a limited queue
        // (`limit_send_queue`) is waited on between them.
        for piece in out.chunks(SEND_PIECE) {
            self.conn.writer().write_all(piece)?;
            self.push_tls()?;
            self.wait_for_queue()?;
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.frame_left == 0 {
                self.next_frame()?;
            }
            let take = (buf.len() - filled).min(self.frame_left);
            self.read_plain(&mut buf[filled..filled + take])?;
            filled += take;
            self.frame_left -= take;
        }
        Ok(())
    }
}

impl Drop for TlsChannel {
    fn drop(&mut self) {
        self.conn.send_close_notify();
        let _ = self.push_tls();
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}
