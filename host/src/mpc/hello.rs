//! The training servers' greeting: before a job, each server sends the other its job's
//! version and digest, its sharing, whether it resumes, and the checkpoints it holds with
//! the attempt that wrote each; [`Hello::agree`] decides where both continue, or why they
//! cannot.

use super::job::show_id;
use super::PartyId;

/// The servers' handshake: protocol version, job digest, whether resuming, the epochs
/// of this server's two newest checkpoints that verify (`u64::MAX`: none) with the
/// attempt that wrote each, and a fresh attempt id.
///
/// An attempt is one start or resume of the servers; every checkpoint carries the id of
/// the attempt that wrote it. Two servers' shares of one epoch only add up to the model
/// when one attempt wrote both (each attempt draws fresh masks and truncation noise), so
/// resume takes the newest epoch that both hold *from the same attempt*.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// [`JOB_VERSION`](super::job::JOB_VERSION).
    pub version: u64,
    /// [`JobSpec`](super::job::JobSpec) digest.
    pub digest: u64,
    /// 1 when resuming.
    pub resume: u64,
    /// Checkpointed epochs.
    pub epochs: [u64; 2],
    /// The attempt that wrote each checkpoint of `epochs` (`[0, 0]`: none recorded).
    pub attempts: [[u64; 2]; 2],
    /// A fresh attempt id (party 0's is taken).
    pub attempt: [u64; 2],
    /// The id of the sharing this server's files come from.
    pub set: [u64; 2],
    /// The training run: the checkpoints' when resuming, a fresh proposal otherwise
    /// (party 0's is taken).
    pub run: [u64; 2],
}

/// What two servers' hellos agree on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The epoch to continue from (0: a fresh start).
    pub epoch: usize,
    /// The training run.
    pub run: [u64; 2],
    /// The attempt that wrote the checkpoints of `epoch` (when resuming).
    pub from_attempt: [u64; 2],
    /// This attempt's id, which its checkpoints carry.
    pub attempt: [u64; 2],
}

impl Hello {
    /// Words on the wire.
    pub const WORDS: usize = 15;

    /// The words on the wire, in [`Hello::from_words`] order.
    pub fn words(&self) -> [u64; Hello::WORDS] {
        [
            self.version,
            self.digest,
            self.resume,
            self.epochs[0],
            self.epochs[1],
            self.set[0],
            self.set[1],
            self.run[0],
            self.run[1],
            self.attempts[0][0],
            self.attempts[0][1],
            self.attempts[1][0],
            self.attempts[1][1],
            self.attempt[0],
            self.attempt[1],
        ]
    }

    /// A hello from its words on the wire ([`Hello::WORDS`] of them).
    ///
    /// # Panics
    /// If `w` is shorter than [`Hello::WORDS`] (the frame layer checks the length).
    pub fn from_words(w: &[u64]) -> Hello {
        Hello {
            version: w[0],
            digest: w[1],
            resume: w[2],
            epochs: [w[3], w[4]],
            set: [w[5], w[6]],
            run: [w[7], w[8]],
            attempts: [[w[9], w[10]], [w[11], w[12]]],
            attempt: [w[13], w[14]],
        }
    }

    /// The epoch to continue from, the run and the attempt, given the peer's hello.
    ///
    /// # Errors
    /// A different version, job, sharing, resume flag or run, or no checkpoint both hold
    /// from one attempt.
    pub fn agree(&self, peer: &Hello, peer_name: PartyId) -> Result<Agreed, String> {
        if peer.version != self.version {
            return Err(format!(
                "{peer_name} speaks job protocol version {}, this server {}",
                peer.version, self.version
            ));
        }
        if peer.digest != self.digest {
            return Err(format!(
                "{peer_name} was given a different job.json (digest {:016x}, here {:016x})",
                peer.digest, self.digest
            ));
        }
        if peer.resume != self.resume {
            return Err(format!(
                "{peer_name} {} but this server {}: pass --resume to both or neither",
                if peer.resume == 1 {
                    "resumes"
                } else {
                    "starts afresh"
                },
                if self.resume == 1 {
                    "resumes"
                } else {
                    "starts afresh"
                }
            ));
        }
        if peer.set != self.set {
            return Err(format!(
                "{peer_name} holds shares of another sharing ({} there, {} here): give both servers the files of one `ringnn share`",
                show_id(peer.set),
                show_id(self.set)
            ));
        }
        let p0 = if peer_name == PartyId::P1 { self } else { peer };
        if self.resume == 0 {
            return Ok(Agreed {
                epoch: 0,
                run: p0.run,
                from_attempt: [0; 2],
                attempt: p0.attempt,
            });
        }
        let none = |h: &Hello| h.epochs == [u64::MAX; 2];
        if none(self) && none(peer) {
            // Resuming before either server wrote a checkpoint: a fresh start.
            return Ok(Agreed {
                epoch: 0,
                run: p0.run,
                from_attempt: [0; 2],
                attempt: p0.attempt,
            });
        }
        if peer.run != self.run {
            return Err(format!(
                "the checkpoints of {peer_name} belong to another training run ({} there, {} here)",
                show_id(peer.run),
                show_id(self.run)
            ));
        }
        let held = |h: &Hello| {
            (0..2)
                .filter(|&i| h.epochs[i] != u64::MAX)
                .map(|i| (h.epochs[i], h.attempts[i]))
                .collect::<Vec<_>>()
        };
        let theirs = held(peer);
        let common = held(self)
            .into_iter()
            .filter(|c| theirs.contains(c))
            .max_by_key(|c| c.0);
        let show = |e: &[u64; 2]| {
            let v: Vec<String> = e
                .iter()
                .filter(|&&x| x != u64::MAX)
                .map(u64::to_string)
                .collect();
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        common
            .map(|(e, a)| Agreed {
                epoch: e as usize,
                run: self.run,
                from_attempt: a,
                attempt: p0.attempt,
            })
            .ok_or_else(|| {
                format!(
                    "no checkpoint in common with {peer_name} (the same epoch, written by the same attempt): epochs here {}, there {}",
                    show(&self.epochs),
                    show(&peer.epochs)
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_agrees_on_the_latest_common_epoch() {
        let h = |resume, epochs| Hello {
            version: 1,
            digest: 7,
            resume,
            epochs,
            set: [1, 2],
            run: [3, 4],
            attempts: [[8, 8]; 2],
            attempt: [9, 9],
        };
        let at = |epoch, run| {
            Ok(Agreed {
                epoch,
                run,
                from_attempt: if epoch == 0 { [0; 2] } else { [8, 8] },
                attempt: [9, 9],
            })
        };
        let p = PartyId::P1;
        assert_eq!(
            h(0, [u64::MAX; 2]).agree(&h(0, [u64::MAX; 2]), p),
            at(0, [3, 4])
        );
        assert_eq!(h(1, [3, 2]).agree(&h(1, [2, 1]), p), at(2, [3, 4]));
        assert_eq!(h(1, [3, 2]).agree(&h(1, [3, 2]), p), at(3, [3, 4]));
        // Resuming before any checkpoint is a fresh start, whatever the run ids.
        let mut other = h(1, [u64::MAX; 2]);
        other.run = [5, 6];
        assert_eq!(h(1, [u64::MAX; 2]).agree(&other, p), at(0, [3, 4]));
        // A fresh start takes party 0's run and attempt ids, whichever side asks.
        let mut other = h(0, [u64::MAX; 2]);
        other.run = [5, 6];
        other.attempt = [7, 7];
        let mut from_p0 = at(0, [5, 6]).unwrap();
        from_p0.attempt = [7, 7];
        assert_eq!(h(0, [u64::MAX; 2]).agree(&other, PartyId::P0), Ok(from_p0));
        assert_eq!(
            h(0, [u64::MAX; 2]).agree(&other, PartyId::P1),
            at(0, [3, 4])
        );
        // Resuming needs the same run; any start needs the same sharing.
        let mut other = h(1, [3, 2]);
        other.run = [5, 6];
        let err = h(1, [3, 2]).agree(&other, p).unwrap_err();
        assert!(err.contains("another training run"), "{err}");
        let mut other = h(0, [u64::MAX; 2]);
        other.set = [9, 9];
        let err = h(0, [u64::MAX; 2]).agree(&other, p).unwrap_err();
        assert!(err.contains("another sharing"), "{err}");
        let err = h(1, [3, u64::MAX])
            .agree(&h(1, [1, u64::MAX]), p)
            .unwrap_err();
        assert!(
            err.contains("party 1") && err.contains("here 3, there 1"),
            "{err}"
        );
        let err = h(1, [3, 2]).agree(&h(0, [u64::MAX; 2]), p).unwrap_err();
        assert!(err.contains("--resume"), "{err}");
        let mut other = h(0, [u64::MAX; 2]);
        other.digest = 8;
        let err = h(0, [u64::MAX; 2]).agree(&other, p).unwrap_err();
        assert!(err.contains("different job.json"), "{err}");
        other = h(0, [u64::MAX; 2]);
        other.version = 2;
        assert!(h(0, [u64::MAX; 2])
            .agree(&other, p)
            .unwrap_err()
            .contains("version"));
    }

    /// Issue 14, drills 3 and 5: two servers holding one epoch from different attempts
    /// (one server's folder restored from an older retry) must not mix them: they fall
    /// back to the newest epoch that one attempt wrote on both, or refuse.
    #[test]
    fn hello_never_mixes_checkpoints_of_different_attempts() {
        let h = |epochs, attempts| Hello {
            version: 1,
            digest: 7,
            resume: 1,
            epochs,
            set: [1, 2],
            run: [3, 4],
            attempts,
            attempt: [9, 9],
        };
        let (a, b) = ([10, 10], [11, 11]);
        let p = PartyId::P1;
        // Epoch 3 here from attempt B, there from attempt A; epoch 2 from A on both.
        let got = h([3, 2], [b, a]).agree(&h([3, 2], [a, a]), p).unwrap();
        assert_eq!((got.epoch, got.from_attempt), (2, a));
        // Nothing in common from one attempt: refused, not mixed.
        let err = h([3, 2], [b, b]).agree(&h([3, 2], [a, a]), p).unwrap_err();
        assert!(err.contains("written by the same attempt"), "{err}");
        // A damaged newest checkpoint here: its previous one, which the peer also holds.
        let got = h([2, u64::MAX], [a, [0; 2]])
            .agree(&h([3, 2], [a, a]), p)
            .unwrap();
        assert_eq!((got.epoch, got.from_attempt), (2, a));
    }
}
