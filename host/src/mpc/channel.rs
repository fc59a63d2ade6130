//! The byte transport between the two parties, and a wrapper that counts its traffic.
//!
//! A [`Channel`] needs only what a stream socket gives: write bytes, flush them, read an
//! exact number of bytes. [`MemChannel`] connects two threads of one process; a TCP/TLS
//! transport implements the same three methods later. [`Tracked`] counts bytes each way
//! and rounds, so that the communication of a protocol, a layer or a training step can be
//! measured and a regression shows.
//!
//! # Rounds
//! Each protocol step writes its whole message, flushes, then reads the peer's message of
//! the same step (both parties send at the same time), so one step costs one one-way
//! latency. A round is counted at the first read after a write.
//!
//! # Deadlock
//! Both parties write before they read. [`MemChannel`] never blocks a write; a socket
//! transport must not block either when both sides send large messages at once (write from
//! a separate thread or through a buffer as large as the largest message).

use std::io;
use std::sync::mpsc::{channel, Receiver, Sender};

/// A reliable, ordered byte stream to the peer.
pub trait Channel: Send {
    /// Queues `bytes` for the peer.
    ///
    /// # Errors
    /// The transport's error (peer gone, reset).
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Sends what was queued.
    ///
    /// # Errors
    /// The transport's error.
    fn flush(&mut self) -> io::Result<()>;
    /// Fills `buf` with the next bytes from the peer, waiting for them.
    ///
    /// # Errors
    /// The transport's error; `UnexpectedEof` when the peer closed the stream.
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

/// One end of an in-memory channel between two threads (unbounded: writes never block).
#[derive(Debug)]
pub struct MemChannel {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    out: Vec<u8>,
    inbox: Vec<u8>,
    pos: usize,
}

impl MemChannel {
    /// Two connected ends.
    pub fn pair() -> (MemChannel, MemChannel) {
        let (t0, r1) = channel();
        let (t1, r0) = channel();
        let end = |tx, rx| MemChannel {
            tx,
            rx,
            out: Vec::new(),
            inbox: Vec::new(),
            pos: 0,
        };
        (end(t0, r0), end(t1, r1))
    }
}

impl Channel for MemChannel {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let msg = std::mem::take(&mut self.out);
        self.tx
            .send(msg)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "peer hung up"))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.pos == self.inbox.len() {
                self.inbox = self
                    .rx
                    .recv()
                    .map_err(|_| io::Error::new(io::ErrorKind::UnexpectedEof, "peer hung up"))?;
                self.pos = 0;
            }
            let take = (buf.len() - filled).min(self.inbox.len() - self.pos);
            buf[filled..filled + take].copy_from_slice(&self.inbox[self.pos..self.pos + take]);
            filled += take;
            self.pos += take;
        }
        Ok(())
    }
}

/// Traffic counted by [`Tracked`], from one party's side.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Traffic {
    /// Bytes written to the peer.
    pub sent: u64,
    /// Bytes read from the peer.
    pub received: u64,
    /// Rounds: reads that followed a write.
    pub rounds: u64,
    /// Messages written.
    pub messages: u64,
    /// Bytes written in the frames of each protocol step, by the frame's tag value
    /// ([`Tag`](super::wire::Tag)); index 0: what was written outside a tagged step.
    pub sent_by_tag: [u64; TAG_SLOTS],
}

/// Slots of [`Traffic::sent_by_tag`]: every tag value and 0.
pub const TAG_SLOTS: usize = 12;

impl Traffic {
    /// The traffic between `earlier` and `self`.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            sent: self.sent - earlier.sent,
            received: self.received - earlier.received,
            rounds: self.rounds - earlier.rounds,
            messages: self.messages - earlier.messages,
            sent_by_tag: std::array::from_fn(|i| self.sent_by_tag[i] - earlier.sent_by_tag[i]),
        }
    }
}

/// A channel that counts bytes and rounds, and can keep a copy of what it received (the
/// party's view, for the statistical tests; it holds only masked messages).
#[derive(Debug)]
pub struct Tracked<C> {
    inner: C,
    traffic: Traffic,
    wrote: bool,
    transcript: Option<Vec<u8>>,
    /// The tag of the frame being written (0: none), until the next flush.
    tag: usize,
}

impl<C: Channel> Tracked<C> {
    /// Counts the traffic of `inner`.
    pub fn new(inner: C) -> Self {
        Tracked {
            inner,
            traffic: Traffic::default(),
            wrote: false,
            transcript: None,
            tag: 0,
        }
    }

    /// Starts (or restarts) keeping a copy of every byte received.
    pub fn record(&mut self) {
        self.transcript = Some(Vec::new());
    }

    /// The bytes received since [`Tracked::record`], and stops recording.
    pub fn take_transcript(&mut self) -> Vec<u8> {
        self.transcript.take().unwrap_or_default()
    }

    /// Counts what is written until the next flush as the frame of step `tag` (unknown
    /// values count as 0).
    pub fn frame(&mut self, tag: u32) {
        self.tag = usize::try_from(tag)
            .ok()
            .filter(|&t| t < TAG_SLOTS)
            .unwrap_or(0);
    }

    /// The traffic so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }
}

impl<C: Channel> Channel for Tracked<C> {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.traffic.sent += bytes.len() as u64;
        self.traffic.sent_by_tag[self.tag] += bytes.len() as u64;
        self.wrote = true;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.traffic.messages += 1;
        self.tag = 0;
        self.inner.flush()
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)?;
        if self.wrote {
            self.traffic.rounds += 1;
            self.wrote = false;
        }
        self.traffic.received += buf.len() as u64;
        if let Some(t) = self.transcript.as_mut() {
            t.extend_from_slice(buf);
        }
        Ok(())
    }
}
