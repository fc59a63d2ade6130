//! The listening side of connection set-up: [`Acceptor`] authenticates every connection
//! on its own thread, refuses and logs strangers, and hands out each allowed role once;
//! see [`super::net`] (Connection set-up) for the steps and the deadlines.

use super::keys::{Identity, Role};
use super::net::{
    establish, join_roles, local_addr, server_config, NetConfig, NetError, TlsChannel, HELLO_LEN,
};
use rustls::{Connection, ServerConnection};
use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Handshakes a listener runs at once; a connection beyond them is refused at once.
pub const MAX_PENDING: usize = 16;

/// Accepts one authenticated connection on `listener` from one of the roles in
/// `allowed`, as `me`, refusing (and logging) any other until [`NetConfig::wait`] has
/// passed. The peer's role is [`TlsChannel::peer`]. For several peers on one listener,
/// use one [`Acceptor`].
///
/// # Errors
/// No authenticated peer in time (the error names the last refusal's reason), or this
/// side's key material cannot be used.
pub fn accept(
    listener: &TcpListener,
    me: &Identity,
    allowed: &[Role],
    cfg: &NetConfig,
) -> Result<TlsChannel, NetError> {
    Acceptor::new(listener, me, allowed, cfg)?.next_peer()
}

/// One refused connection: who knocked and why it was turned away.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The remote address.
    pub from: String,
    /// Why (the handshake's error, or the listener's reason).
    pub reason: String,
}

type Attempt = (String, Result<TlsChannel, NetError>);

/// A listener's side of connection set-up for one or more peers: each connection is
/// authenticated on its own thread, strangers are refused and logged, and
/// [`Acceptor::next_peer`] hands out each allowed role at most once. See the [module
/// documentation](self).
pub struct Acceptor<'l> {
    listener: &'l TcpListener,
    server: Arc<rustls::ServerConfig>,
    me: Role,
    allowed: Vec<Role>,
    cfg: NetConfig,
    deadline: Instant,
    tx: Sender<Attempt>,
    rx: Receiver<Attempt>,
    pending: usize,
    taken: Vec<Role>,
    refused: Vec<Refusal>,
    quiet: bool,
}

impl fmt::Debug for Acceptor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("allowed", &self.allowed)
            .field("taken", &self.taken)
            .field("refused", &self.refused.len())
            .finish_non_exhaustive()
    }
}

impl<'l> Acceptor<'l> {
    /// Starts waiting on `listener` for the roles in `allowed`; the deadline
    /// [`NetConfig::wait`] runs from now.
    ///
    /// # Errors
    /// This side's key material cannot be used, or the listener cannot be polled.
    pub fn new(
        listener: &'l TcpListener,
        me: &Identity,
        allowed: &[Role],
        cfg: &NetConfig,
    ) -> Result<Acceptor<'l>, NetError> {
        assert!(
            cfg.max_frame >= HELLO_LEN && cfg.max_frame <= u32::MAX as usize,
            "max_frame out of range"
        );
        listener
            .set_nonblocking(true)
            .map_err(|source| NetError::Io {
                peer: join_roles(allowed),
                addr: local_addr(listener),
                during: "listen",
                source,
            })?;
        let (tx, rx) = channel();
        Ok(Acceptor {
            listener,
            server: server_config(me)?,
            me: me.role,
            allowed: allowed.to_vec(),
            cfg: cfg.clone(),
            deadline: Instant::now() + cfg.wait,
            tx,
            rx,
            pending: 0,
            taken: Vec::new(),
            refused: Vec::new(),
            quiet: false,
        })
    }

    /// Keeps refusals off standard error (they are still in [`Acceptor::refused`]).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// The connections refused so far.
    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    fn refuse(&mut self, from: String, reason: String) {
        if !self.quiet {
            eprintln!("{}: refused a connection from {from}: {reason}", self.me);
        }
        self.refused.push(Refusal { from, reason });
    }

    /// The next authenticated peer whose role was not handed out yet.
    ///
    /// # Errors
    /// [`NetConfig::wait`] passed (counted from [`Acceptor::new`]) without one; the
    /// error counts the refused connections and gives the last one's reason.
    pub fn next_peer(&mut self) -> Result<TlsChannel, NetError> {
        let remaining: Vec<Role> = self
            .allowed
            .iter()
            .copied()
            .filter(|r| !self.taken.contains(r))
            .collect();
        let who = join_roles(&remaining);
        loop {
            while let Ok(done) = self.rx.try_recv() {
                if let Some(ch) = self.finished(done) {
                    return Ok(ch);
                }
            }
            match self.listener.accept() {
                Ok((sock, from)) => self.start_handshake(sock, from.to_string()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() >= self.deadline {
                        return Err(self.timed_out(&who));
                    }
                    // Wake for a finished handshake or, at the latest, to poll again.
                    if let Ok(done) = self.rx.recv_timeout(Duration::from_millis(20)) {
                        if let Some(ch) = self.finished(done) {
                            return Ok(ch);
                        }
                    }
                }
                // A connection reset before it was taken, or a transient shortage of
                // descriptors: nothing of the rightful peer's is lost.
                Err(e) => {
                    self.refuse(local_addr(self.listener), format!("accept: {e}"));
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// A handshake thread's outcome: the channel if it is a peer still awaited.
    fn finished(&mut self, (from, got): Attempt) -> Option<TlsChannel> {
        self.pending -= 1;
        match got {
            Ok(ch) if !self.taken.contains(&ch.peer()) => {
                self.taken.push(ch.peer());
                Some(ch)
            }
            Ok(ch) => {
                let why = format!("{} is already connected", ch.peer());
                drop(ch);
                self.refuse(from, why);
                None
            }
            Err(e) => {
                self.refuse(from, e.to_string());
                None
            }
        }
    }

    fn start_handshake(&mut self, sock: TcpStream, from: String) {
        if self.pending >= MAX_PENDING {
            self.refuse(
                from,
                format!("{MAX_PENDING} handshakes are already in progress"),
            );
            return;
        }
        let conn = match ServerConnection::new(self.server.clone()) {
            Ok(c) => c,
            Err(e) => return self.refuse(from, format!("TLS set-up: {e}")),
        };
        let (tx, me, allowed, cfg) = (
            self.tx.clone(),
            self.me,
            self.allowed.clone(),
            self.cfg.clone(),
        );
        let from2 = from.clone();
        let spawned = std::thread::Builder::new()
            .name("ringnn-handshake".into())
            .spawn(move || {
                let got = sock
                    .set_nonblocking(false)
                    .map_err(|source| NetError::Io {
                        peer: join_roles(&allowed),
                        addr: from2.clone(),
                        during: "accept",
                        source,
                    })
                    .and_then(|()| {
                        let limit = cfg.handshake;
                        establish(
                            sock,
                            Connection::Server(conn),
                            me,
                            &allowed,
                            &from2,
                            &cfg,
                            limit,
                        )
                    });
                let _ = tx.send((from2, got));
            });
        match spawned {
            Ok(_) => self.pending += 1,
            Err(e) => self.refuse(from, format!("no thread for its handshake: {e}")),
        }
    }

    fn timed_out(&self, who: &str) -> NetError {
        let mut why = format!(
            "no authenticated {who} connected within {:?}",
            self.cfg.wait
        );
        if let Some(last) = self.refused.last() {
            why.push_str(&format!(
                "; {} connection(s) refused, the last from {}: {}",
                self.refused.len(),
                last.from,
                last.reason
            ));
        }
        NetError::Io {
            peer: who.to_string(),
            addr: local_addr(self.listener),
            during: "accept",
            source: io::Error::new(io::ErrorKind::TimedOut, why),
        }
    }
}
