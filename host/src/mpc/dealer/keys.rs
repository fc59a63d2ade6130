//! FSS keys from the dealer: the material of the sign and ReLU gates
//! ([`crate::mpc::fss::gate`]) that the FSS comparison and ReLU
//! ([`crate::mpc::comparison`]) consume.
//!
//! For request number `k` = [`Request::Drelu`]` { n, m }` (or [`Request::Relu`]), party `i` takes its share
//! `r_i` of each element's input mask from its own stream `k` (as it takes every
//! uniform share), so `r_in = r_0 + r_1 mod 2^64` costs no dealer bytes. The dealer
//! regenerates both shares from the party seeds, builds each element's key pair for
//! `r_in` at width `m`, and sends party `i` key `i`. A ReLU key pair is built with the
//! output masks `r_out = r_d = 0`: its outputs stay additive shares of `ReLU(x)` and
//! `[x ≥ 0]` and are never opened. The key pair's randomness is ChaCha20
//! stream `k` of a seed only the dealer holds, so asking twice (once per party, from two
//! connections or threads) gives the same pair. To build each pair once, the first
//! party to ask builds it (the other, asking meanwhile, waits) and keeps the other's keys
//! aside until it asks for them; the result does not depend on that store, only the time
//! does. The pairs are built in chunks of
//! [`KEY_CHUNK`] elements over the rayon pool (a chunk's trees level by level together,
//! [`drelu_gen_batch`]: the same keys as one gate at a time), chunk `c` drawing from word `2^40 c` of
//! that stream: the keys depend on the chunk size, not on the number of threads.
//!
//! # Security
//! A party sees its share `r_i` (uniform, independent of `r_in`, which is uniform given
//! it) and its key, which by the DCF's security ([`crate::mpc::fss`]) says nothing about
//! `r_in`. Each `r_in` comes from one request counter, so it masks exactly one opening.
//! The dealer knows `r_in` and both keys: it is trusted as in the [parent
//! module](super), and must collude with neither server.
//!
//! # Communication
//! [`DreluKey::size`]`(m)` bytes per element to *each* party (1613 at `m = 64`, 813 at
//! `m = 32`), [`ReluKey::size`]`(m)` for ReLU (2157 at `m = 64`); the mask's share costs
//! nothing.

use super::{stream, zs, Dealer, Material, Request};
use crate::mpc::fss::gate::{drelu_gen_batch, relu_gen_batch, GateBatch};
use crate::mpc::fss::{DreluKey, FssError, ReluKey};
use crate::mpc::MpcError;
use crate::mpc::PartyId;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use ringnn_core::Z64;
use std::sync::Arc;

/// One party's material of [`Request::Drelu`]: shares of the input masks and the keys.
#[derive(Clone)]
pub struct DreluMaterial {
    /// This party's shares of the masks `r_in` (one per element).
    pub r: Vec<Z64>,
    /// This party's keys of `[x ≥ 0]` for `x̂ = x + r_in` (one per element).
    pub keys: Vec<DreluKey>,
    /// The dealer's bytes the keys were parsed from: their correction words are ranges
    /// of it ([`DreluMaterial::into_buffer`]).
    buf: Option<Arc<Vec<u8>>>,
}

impl DreluMaterial {
    /// The dealer's bytes, once the keys that share them are dropped, for a later reply
    /// ([`crate::mpc::buffers`]); `None` if something still holds them.
    pub fn into_buffer(self) -> Option<Vec<u8>> {
        reclaim(self.keys, self.buf)
    }
}

impl std::fmt::Debug for DreluMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Shares and keys are secrets: show the count only.
        f.debug_struct("DreluMaterial")
            .field("n", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// One party's material of [`Request::Relu`]: shares of the input masks and the keys.
#[derive(Clone)]
pub struct ReluMaterial {
    /// This party's shares of the masks `r_in` (one per element).
    pub r: Vec<Z64>,
    /// This party's keys of `ReLU(x)` (output unmasked, kept shared) for `x̂ = x + r_in`.
    pub keys: Vec<ReluKey>,
    /// The dealer's bytes the keys were parsed from ([`ReluMaterial::into_buffer`]).
    buf: Option<Arc<Vec<u8>>>,
}

impl ReluMaterial {
    /// The dealer's bytes, once the keys that share them are dropped, for a later reply
    /// ([`crate::mpc::buffers`]); `None` if something still holds them.
    pub fn into_buffer(self) -> Option<Vec<u8>> {
        reclaim(self.keys, self.buf)
    }
}

impl std::fmt::Debug for ReluMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Shares and keys are secrets: show the count only.
        f.debug_struct("ReluMaterial")
            .field("n", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// The buffer `keys` were parsed from, once they are dropped: `None` if nothing was parsed
/// or something else still holds it.
fn reclaim<K>(keys: Vec<K>, buf: Option<Arc<Vec<u8>>>) -> Option<Vec<u8>> {
    drop(keys);
    buf.and_then(|b| Arc::try_unwrap(b).ok())
}

/// Keys generated together on one thread, from one position of the dealer's stream.
pub const KEY_CHUNK: usize = 1024;

/// Writes both parties' keys of a batch of gates for the input masks `r_in` at width `m`.
type GenBatchFn =
    fn(&[u64], u32, &mut ChaCha20Rng, &mut GateBatch, [&mut [u8]; 2]) -> Result<(), FssError>;

impl Dealer {
    /// Takes back the bytes of a reply once sent (keys or a correction), for the buffers
    /// of later key builds ([`crate::mpc::buffers`]).
    pub fn recycle(&self, buf: Vec<u8>) {
        self.buffers.give(buf);
    }

    /// `party`'s FSS keys of request number `counter`, as bytes ([`Request::key_bytes`]
    /// of them): see the [module documentation](self).
    ///
    /// # Errors
    /// A request that carries no keys, or a width outside 2..=64.
    pub fn keys(&self, req: Request, counter: u64, party: PartyId) -> Result<Vec<u8>, String> {
        let (n, m, size, gen): (usize, u32, usize, GenBatchFn) = match req {
            Request::Drelu { n, m } => (n, m, DreluKey::size(m), drelu_gen_batch),
            Request::Relu { n, m } => (n, m, ReluKey::size(m), relu_gen_batch),
            _ => return Err(format!("{} carry no FSS keys", req.what())),
        };
        // One build per counter: the first party to ask builds both keys while the other
        // waits for it, and takes its own keys when it asks (never a second build).
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match kept.remove(&counter) {
                None => break,
                Some(Pending::Ready(p, k)) if p == party => return Ok(k),
                Some(Pending::Building) => {
                    kept.insert(counter, Pending::Building);
                    kept = self.built.wait(kept).unwrap_or_else(|p| p.into_inner());
                }
                Some(ready @ Pending::Ready(..)) => {
                    kept.insert(counter, ready);
                    return Err(format!("the keys of request {counter} were already given"));
                }
            }
        }
        kept.insert(counter, Pending::Building);
        drop(kept);
        let built = self.build_keys(n, m, size, gen, counter);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.remove(&counter);
        let result = built.map(|[k0, k1]| {
            let (mine, theirs) = match party {
                PartyId::P0 => (k0, k1),
                PartyId::P1 => (k1, k0),
            };
            kept.insert(counter, Pending::Ready(party.peer(), theirs));
            mine
        });
        drop(kept);
        self.built.notify_all();
        result
    }

    /// Both parties' keys of request number `counter`: `n` gates of width `m`, `size`
    /// bytes each, by `gen`.
    fn build_keys(
        &self,
        n: usize,
        m: u32,
        size: usize,
        gen: GenBatchFn,
        counter: u64,
    ) -> Result<[Vec<u8>; 2], String> {
        let mut r0 = stream(&self.seeds[0], counter);
        let mut r1 = stream(&self.seeds[1], counter);
        let (a, b) = (zs(&mut r0, n), zs(&mut r1, n));
        let r_in: Vec<u64> = a.iter().zip(&b).map(|(&x, &y)| (x + y).0).collect();
        // Every byte is written below: buffers given back by earlier replies serve.
        let mut out = [self.buffers.take(n * size), self.buffers.take(n * size)];
        let [o0, o1] = &mut out;
        // Chunk `c`'s keys draw from word 2^40 c of stream `counter` (a chunk uses far
        // fewer words), so the keys depend on the chunk size, never on the threads.
        r_in.par_chunks(KEY_CHUNK)
            .zip(o0.par_chunks_mut(KEY_CHUNK * size))
            .zip(o1.par_chunks_mut(KEY_CHUNK * size))
            .enumerate()
            .try_for_each_init(GateBatch::default, |scratch, (c, ((r_in, o0), o1))| {
                let mut rng = ChaCha20Rng::from_seed(self.key_seed);
                rng.set_stream(counter);
                rng.set_word_pos((c as u128) << 40);
                gen(r_in, m, &mut rng, scratch, [o0, o1])
            })
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// The keys of one request counter at the dealer: being built by the thread of the party
/// that asked first, or built and waiting for the other party (named) to ask.
pub(super) enum Pending {
    Building,
    Ready(PartyId, Vec<u8>),
}

/// `n` DReLU keys of width `m` from the dealer's bytes, each parsed strictly.
///
/// # Errors
/// A length other than `n` keys, a key that does not parse, or one of another width;
/// never panics.
pub(super) fn parse_drelu(bytes: &Arc<Vec<u8>>, n: usize, m: u32) -> Result<Vec<DreluKey>, String> {
    parse_keys(
        bytes,
        n,
        m,
        DreluKey::size(m),
        DreluKey::from_shared,
        DreluKey::width,
    )
}

/// `n` ReLU keys of width `m` from the dealer's bytes, each parsed strictly (as
/// [`parse_drelu`]).
///
/// # Errors
/// A length other than `n` keys, a key that does not parse, or one of another width;
/// never panics.
pub(super) fn parse_relu(bytes: &Arc<Vec<u8>>, n: usize, m: u32) -> Result<Vec<ReluKey>, String> {
    parse_keys(
        bytes,
        n,
        m,
        ReluKey::size(m),
        ReluKey::from_shared,
        ReluKey::width,
    )
}

/// Parses the key in bytes `start..end` of a shared reply, keeping it there.
type ParseShared<K> = fn(&Arc<Vec<u8>>, usize, usize) -> Result<K, FssError>;

/// Each key keeps its correction words in `bytes` (no copy).
fn parse_keys<K>(
    bytes: &Arc<Vec<u8>>,
    n: usize,
    m: u32,
    size: usize,
    parse: ParseShared<K>,
    width: fn(&K) -> u32,
) -> Result<Vec<K>, String> {
    if Some(bytes.len()) != n.checked_mul(size) {
        return Err(format!(
            "keys of {} bytes from the dealer, expected {n} of {size}",
            bytes.len()
        ));
    }
    (0..n)
        .map(|i| {
            let k = parse(bytes, i * size, (i + 1) * size)
                .map_err(|e| format!("key {i} from the dealer: {e}"))?;
            if width(&k) != m {
                return Err(format!(
                    "key {i} from the dealer has width {}, expected {m}",
                    width(&k)
                ));
            }
            Ok(k)
        })
        .collect()
}

/// The material of a key request from the mask shares `r` and the dealer's key bytes.
///
/// # Errors
/// Keys that do not parse ([`parse_drelu`], [`parse_relu`]), named as the dealer's.
pub(super) fn material(req: Request, r: Vec<Z64>, bytes: Vec<u8>) -> Result<Material, MpcError> {
    let fail = |reason| MpcError::Dealer {
        what: req.what(),
        reason,
    };
    let bytes = Arc::new(bytes);
    match req {
        Request::Drelu { n, m } => Ok(Material::Drelu(DreluMaterial {
            r,
            keys: parse_drelu(&bytes, n, m).map_err(fail)?,
            buf: Some(bytes),
        })),
        Request::Relu { n, m } => Ok(Material::Relu(ReluMaterial {
            r,
            keys: parse_relu(&bytes, n, m).map_err(fail)?,
            buf: Some(bytes),
        })),
        _ => Err(fail(format!("{} carry no FSS keys", req.what()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key bytes as a dealer reply's shared buffer.
    fn arc(b: &[u8]) -> Arc<Vec<u8>> {
        Arc::new(b.to_vec())
    }

    #[test]
    fn the_dealer_builds_into_buffers_given_back_and_overwrites_every_byte() {
        let dealer = Dealer::from_seed([6; 32]);
        let req = Request::Relu { n: 5, m: 20 };
        let (a, b) = (
            dealer.keys(req, 0, PartyId::P0).unwrap(),
            dealer.keys(req, 0, PartyId::P1).unwrap(),
        );
        let at = [a.as_ptr(), b.as_ptr()];
        dealer.recycle(a);
        dealer.recycle(b);
        let (c, d) = (
            dealer.keys(req, 1, PartyId::P0).unwrap(),
            dealer.keys(req, 1, PartyId::P1).unwrap(),
        );
        assert!(at.contains(&c.as_ptr()) && at.contains(&d.as_ptr()));
        // The reused memory held request 0's keys: request 1's are exactly a fresh
        // dealer's, so no stale byte survives.
        let fresh = Dealer::from_seed([6; 32]);
        assert_eq!(fresh.keys(req, 1, PartyId::P0).unwrap(), c);
        assert_eq!(fresh.keys(req, 1, PartyId::P1).unwrap(), d);
    }

    #[test]
    fn parsed_keys_share_the_reply_and_give_it_back_once_dropped() {
        let dealer = Dealer::from_seed([5; 32]);
        let req = Request::Relu { n: 3, m: 20 };
        let bytes = dealer.keys(req, 2, PartyId::P0).unwrap();
        let at = bytes.as_ptr();
        let Material::Relu(mat) = material(req, vec![Z64::ZERO; 3], bytes.clone()).unwrap() else {
            panic!("ReLU material expected");
        };
        // The same keys as parsed one by one (which copies).
        let size = ReluKey::size(20);
        for (i, k) in mat.keys.iter().enumerate() {
            assert!(*k == ReluKey::from_bytes(&bytes[i * size..(i + 1) * size]).unwrap());
        }
        let Material::Relu(mat) = material(req, vec![Z64::ZERO; 3], bytes).unwrap() else {
            panic!("ReLU material expected");
        };
        let held = mat.keys[1].clone();
        let mut twin = mat.clone();
        twin.keys.clear();
        // A key or a copy of the material still holds the bytes: not given back.
        assert!(mat.into_buffer().is_none());
        drop(held);
        let back = twin
            .into_buffer()
            .expect("the last holder gives the bytes back");
        assert_eq!(back.as_ptr(), at, "the very buffer the reply came in");
    }
    use crate::mpc::fss::{drelu_eval, relu_eval};
    use std::sync::Arc;

    #[test]
    fn each_party_gets_its_key_of_one_pair_for_the_shared_mask() {
        let dealer = Arc::new(Dealer::from_seed([3; 32]));
        let [mut c0, mut c1] = dealer.correlations();
        use crate::mpc::Correlations;
        let (a, b) = (c0.drelu(40, 64).unwrap(), c1.drelu(40, 64).unwrap());
        let xs = [0u64, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 12345];
        for i in 0..40 {
            let r = (a.r[i] + b.r[i]).0;
            let x = xs[i % xs.len()];
            let x_hat = x.wrapping_add(r);
            let d = drelu_eval(PartyId::P0, &a.keys[i], x_hat).wrapping_add(drelu_eval(
                PartyId::P1,
                &b.keys[i],
                x_hat,
            ));
            assert_eq!(d, u64::from((x as i64) >= 0), "element {i}, x = {x:#x}");
        }
        // Both parties received the keys; only the keys (no correction).
        let size = DreluKey::size(64) as u64;
        assert_eq!(c0.offline().bytes, 32 + 40 * size);
        assert_eq!(c1.offline().bytes, 32 + 40 * size);
        // Each pair was built once and nothing is left aside once both took theirs.
        assert!(dealer.kept.lock().unwrap().is_empty());
        // The same counter gives the same pair whichever party asks first.
        let again = dealer.keys(Request::Drelu { n: 40, m: 64 }, 0, PartyId::P1);
        assert_eq!(
            again.unwrap(),
            b.keys.iter().flat_map(|k| k.to_bytes()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn parties_asking_at_once_share_one_build_and_leave_nothing_aside() {
        // Both parties' threads ask for the same counters at the same time, as they do
        // when both announce a step's requests: each pair is built once (a second build
        // would leave a copy of the other party's keys aside for ever), and the keys the
        // two threads get are the two halves of one pair.
        let dealer = Arc::new(Dealer::from_seed([5; 32]));
        let req = Request::Drelu { n: 300, m: 20 };
        let got: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
            let threads: Vec<_> = [PartyId::P0, PartyId::P1]
                .map(|p| {
                    let dealer = &dealer;
                    s.spawn(move || {
                        (0..24)
                            .map(|c| dealer.keys(req, c, p).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .into_iter()
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(dealer.kept.lock().unwrap().is_empty());
        for (c, (b0, b1)) in got[0].iter().zip(&got[1]).enumerate() {
            let k0 = parse_drelu(&arc(b0), 300, 20).unwrap();
            let k1 = parse_drelu(&arc(b1), 300, 20).unwrap();
            for (i, (a, b)) in k0.iter().zip(&k1).enumerate() {
                // A mask makes the two evaluations sum to a bit, 0 or 1, for any input.
                let x_hat = (i as u64) * 0x9e37_79b9;
                let d = drelu_eval(PartyId::P0, a, x_hat).wrapping_add(drelu_eval(
                    PartyId::P1,
                    b,
                    x_hat,
                ));
                assert!(
                    d <= 1,
                    "counter {c}, key {i}: the two keys are not one pair"
                );
            }
        }
    }

    #[test]
    fn keys_across_chunks_are_correct_fresh_and_independent_of_the_threads() {
        // Three chunks, the last one short: every key works, no two chunks share a
        // key, and the bytes are the same on one thread and on several.
        let n = 2 * KEY_CHUNK + 7;
        let req = Request::Relu { n, m: 20 };
        let make = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let dealer = Dealer::from_seed([8; 32]);
            pool.install(|| [PartyId::P0, PartyId::P1].map(|p| dealer.keys(req, 4, p).unwrap()))
        };
        let [k0, k1] = make(1);
        assert_eq!(make(3), [k0.clone(), k1.clone()]);
        let (a, b) = (
            parse_relu(&arc(&k0), n, 20).unwrap(),
            parse_relu(&arc(&k1), n, 20).unwrap(),
        );
        let dealer = Dealer::from_seed([8; 32]);
        let (mut r0, mut r1) = (stream(&dealer.seeds[0], 4), stream(&dealer.seeds[1], 4));
        let r: Vec<u64> = zs(&mut r0, n)
            .iter()
            .zip(zs(&mut r1, n))
            .map(|(x, y)| (*x + y).0)
            .collect();
        for (i, &x) in [0u64, 1, 5, (1 << 19) - 1, 1 << 19, u64::MAX]
            .iter()
            .cycle()
            .take(n)
            .enumerate()
        {
            let x_hat = x.wrapping_add(r[i]);
            let y = relu_eval(PartyId::P0, &a[i], x_hat)
                .y
                .wrapping_add(relu_eval(PartyId::P1, &b[i], x_hat).y);
            assert_eq!(y, crate::mpc::fss::gate::relu_plain(x, 20), "element {i}");
        }
        let size = ReluKey::size(20);
        let first = |c: usize| &k0[c * KEY_CHUNK * size..c * KEY_CHUNK * size + size];
        assert_ne!(first(0), first(1));
        assert_ne!(first(1), first(2));
    }

    #[test]
    fn relu_keys_give_shares_of_relu_and_its_bit_for_the_shared_mask() {
        let dealer = Arc::new(Dealer::from_seed([5; 32]));
        let [mut c0, mut c1] = dealer.correlations();
        use crate::mpc::Correlations;
        let (a, b) = (c0.relu(40, 64).unwrap(), c1.relu(40, 64).unwrap());
        let xs = [0u64, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 12345];
        for i in 0..40 {
            let r = (a.r[i] + b.r[i]).0;
            let x = xs[i % xs.len()];
            let x_hat = x.wrapping_add(r);
            let (s0, s1) = (
                relu_eval(PartyId::P0, &a.keys[i], x_hat),
                relu_eval(PartyId::P1, &b.keys[i], x_hat),
            );
            // No output mask: the shares add up to ReLU(x) and [x ≥ 0] themselves.
            let ge = u64::from((x as i64) >= 0);
            assert_eq!(s0.y.wrapping_add(s1.y), x * ge, "element {i}, x = {x:#x}");
            assert_eq!(s0.d.wrapping_add(s1.d), ge, "element {i}, x = {x:#x}");
        }
        let size = ReluKey::size(64) as u64;
        assert_eq!(c0.offline().bytes, 32 + 40 * size);
        assert_eq!(c1.offline().bytes, 32 + 40 * size);
        assert!(dealer.kept.lock().unwrap().is_empty());
        // A ReLU key is refused where a DReLU key is expected, and the other way round.
        let req = Request::Relu { n: 2, m: 16 };
        let good = dealer.keys(req, 9, PartyId::P0).unwrap();
        assert_eq!(parse_relu(&arc(&good), 2, 16).unwrap().len(), 2);
        assert!(parse_relu(&arc(&good[..good.len() - 1]), 2, 16).is_err());
        assert!(parse_drelu(&arc(&good), 2, 16).is_err());
        let mut bad = good.clone();
        bad[ReluKey::size(16) + 1] = 1; // the second key's kind byte: DReLU
        let e = parse_relu(&arc(&bad), 2, 16).unwrap_err();
        assert!(e.contains("key 1"), "{e}");
        let Err(e) = material(req, vec![Z64::ZERO; 2], bad.clone()) else {
            panic!("corrupt keys accepted");
        };
        let e = e.to_string();
        assert!(e.contains("ReLU keys") && e.contains("key 1"), "{e}");
    }

    #[test]
    fn short_long_and_corrupt_key_bytes_are_errors() {
        let dealer = Dealer::from_seed([4; 32]);
        let req = Request::Drelu { n: 3, m: 16 };
        let good = dealer.keys(req, 5, PartyId::P0).unwrap();
        assert_eq!(parse_drelu(&arc(&good), 3, 16).unwrap().len(), 3);
        assert!(parse_drelu(&arc(&good[..good.len() - 1]), 3, 16).is_err());
        let mut long = good.clone();
        long.push(0);
        assert!(parse_drelu(&arc(&long), 3, 16).is_err());
        // Another width: right total length for two keys of 16 bits, wrong width asked.
        assert!(parse_drelu(&arc(&good), 3, 17).is_err());
        let mut bad = good.clone();
        bad[DreluKey::size(16) + 1] = 9; // the second key's kind byte
        let e = parse_drelu(&arc(&bad), 3, 16).unwrap_err();
        assert!(e.contains("key 1"), "{e}");
        // Every single-byte change of a header is refused or parses to a valid key.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x80;
            let _ = parse_drelu(&arc(&b), 3, 16);
        }
        assert!(dealer
            .keys(Request::Beaver { n: 1 }, 0, PartyId::P0)
            .is_err());
    }
}
