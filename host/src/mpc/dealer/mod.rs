//! The dealer: correlated randomness for the online protocols, compressed by PRG seeds.
//!
//! Every online protocol consumes material prepared ahead of time by a third party, the
//! dealer (the "trusted initializer" / "client-aided" model of SecureML, CrypTen and
//! Orca):
//! - Beaver triples `c = a b` (multiplication, select),
//! - matrix triples `C = A B` for each matrix-product shape (SecureML),
//! - convolution triples: an image-shaped `A`, a matrix `B` and `C = B U(A)`, where `U`
//!   is one of the convolution's unfoldings ([`ConvProduct`]), so that a convolution opens
//!   its input image rather than the unfolded matrix,
//! - a dense layer's backward masks: a fresh `D` for the output gradient and
//!   `C_w = A^T D`, `C_x = D B^T`, where `A` and `B` are the masks of the matrix triple of
//!   the layer's forward product, an earlier request ([`Request::DenseBackward`]), so that
//!   the backward pass opens only `dY - D` and reuses the forward's `X - A` and `W - B`;
//!   a convolution's likewise (`C_w = D U(A)`, `C_x = B^T D`, [`Request::ConvBackward`]),
//! - truncation pairs: `r`, its top bit and `(r mod 2^63) >> d` (dealer-assisted
//!   truncation); scaled ones add the top bit and low bits of `R = c r + (c - 1) 2^62`
//!   for a public `c`, so that one opening also truncates `c x` (the SGD step,
//!   [`Request::TruncScaled`]),
//! - binary AND triples `w = u & v` on packed 64-bit words (the sign-bit circuit),
//! - random bits shared both ways, XOR and arithmetic (bit injection).
//!
//! # PRG seeds
//! The dealer gives party 0 a 32-byte seed once; party 0 expands all its material from it
//! (an AES-128 counter-mode stream per request, `dealer/stream.rs`) and receives nothing else (but FSS keys, below). Party 1 gets its own seed,
//! expands the uniformly random parts (`a`, `b`, `r`, `u`, `v`, ...) from it, and receives
//! only the *correction*: the one share that must make the correlation hold (`c1 = (a0 +
//! a1)(b0 + b1) - c0`, etc.). This cuts the offline traffic to a third of a Beaver triple
//! and to one of three words of an AND triple. [`OfflineStats`] counts it.
//!
//! FSS keys are the exception: a DCF key pair is built from both root seeds and the
//! mask, and its correction words are shared by the two keys, so neither key follows
//! from a seed the party holds. The mask itself still comes from the seeds (`r_in = r0 +
//! r1`, each party's share from its own stream); the dealer sends *each* party its
//! keys, so party 0 too receives material for these requests ([`CorrectionFeed::keys`]).
//!
//! # Staying in step without the dealer talking back
//! Request number `k` of a party uses stream `k` of its seed. Both parties run
//! the same program and so issue the same sequence of requests (shapes are public
//! program structure), so they consume matching material. The dealer computes party 1's
//! corrections in the same order: in one process it is called through
//! [`CorrectionFeed`]; as its own process it runs the same request sequence (or reads it
//! from party 1, which reveals only public shapes) and streams the corrections. Key
//! pairs are regenerated for each party from a third seed that only the dealer holds
//! and the request counter ([`Dealer::keys`]), so the two parties' keys match without
//! the dealer keeping state between the two connections.
//!
//! # Security
//! Trust assumption: the dealer is semi-honest and colludes with neither server. It
//! sees no data and no shares of data (nothing flows from the servers to it except,
//! optionally, public request shapes), so it learns nothing. It is *trusted for
//! correctness* (wrong correlations give wrong results) and *for privacy against
//! collusion*: the dealer together with one server could unmask every message the other
//! server sends. Each party's material alone is uniform (its seed is independent of the
//! other party's), so one server learns nothing from it. Seeds are never logged.
//!
//! Backward masks ([`Request::DenseBackward`], [`Request::ConvBackward`]) are the one
//! kind whose material depends on an earlier request's: the dealer recomputes that
//! request's masks `A` and `B` from both seeds and returns party 1's share of `A^T D`,
//! `D B^T` (or their convolution forms), each padded by party 0's fresh share of the
//! same product, which nobody else sees. So the correction is uniform to party 1 even if
//! the request named another earlier request than the forward product's (the results
//! would then be wrong, nothing would be revealed). `D` is fresh, and `A` and `B` still
//! mask only the values opened under them once (see [`super::protocols::dense_backward`]).

use super::{MpcError, PartyId};
use crate::gemm::matmul_z64;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ringnn_core::engine::{ConvShape, MatDims};
use ringnn_core::Z64;
use std::sync::Arc;

pub mod keys;
pub use keys::{DreluMaterial, ReluMaterial};

/// A PRG seed.
pub type Seed = [u8; 32];

/// Low 63 bits of a word.
pub(crate) const LOW63: u64 = (1 << 63) - 1;

mod material;
mod request;
mod stream;
pub(crate) use material::scaled_mask;
pub use material::{AndTriples, BackwardMasks, OfflineStats, RandomBits, Triples, TruncPairs};
pub use request::{ConvProduct, Request};
use stream::MaskStream;

/// A source of this party's half of the correlated randomness. Both parties' sources
/// must be fed the same sequence of requests; see the [module documentation](self).
pub trait Correlations: Send {
    /// `n` Beaver triples.
    ///
    /// # Errors
    /// The dealer could not provide them.
    fn beaver(&mut self, n: usize) -> Result<Triples, MpcError>;
    /// A matrix triple of shape `dims`: `a` is `m x k`, `b` is `k x n`, `c` is `m x n`.
    ///
    /// # Errors
    /// The dealer could not provide it.
    fn matrix(&mut self, dims: MatDims) -> Result<Triples, MpcError>;
    /// A convolution triple for `product` of the convolution `shape`: `a` has the
    /// input's shape, `b` and `c` the shapes of [`ConvProduct::sizes`], `c = b U(a)`.
    ///
    /// # Errors
    /// The dealer could not provide it.
    fn conv(&mut self, shape: ConvShape, product: ConvProduct) -> Result<Triples, MpcError>;
    /// A dense layer's backward masks ([`Request::DenseBackward`]) for the matrix triple
    /// of shape `dims` served `back` requests earlier.
    ///
    /// # Errors
    /// The dealer could not provide them.
    fn dense_backward(
        &mut self,
        dims: MatDims,
        back: usize,
        dx: bool,
    ) -> Result<BackwardMasks, MpcError>;
    /// A convolution's backward masks ([`Request::ConvBackward`]) for the forward
    /// convolution triple of `shape` served `back` requests earlier.
    ///
    /// # Errors
    /// The dealer could not provide them.
    fn conv_backward(
        &mut self,
        shape: ConvShape,
        back: usize,
        dx: bool,
    ) -> Result<BackwardMasks, MpcError>;
    /// The number of the next request whose material will be handed out (requests
    /// served so far): after a request, this less one is its number.
    fn consumed(&self) -> u64;
    /// `n` truncation pairs for a shift by `bits` (1..=62).
    ///
    /// # Errors
    /// The dealer could not provide them.
    fn trunc(&mut self, n: usize, bits: u32) -> Result<TruncPairs, MpcError>;
    /// `n` scaled truncation pairs ([`Request::TruncScaled`]): for `x >> bits` and
    /// `(scale x) >> scaled_bits` (both 1..=62) from one opening.
    ///
    /// # Errors
    /// The dealer could not provide them.
    fn trunc_scaled(
        &mut self,
        n: usize,
        bits: u32,
        scale: u64,
        scaled_bits: u32,
    ) -> Result<TruncPairs, MpcError>;
    /// `64 * words` AND triples.
    ///
    /// # Errors
    /// The dealer could not provide them.
    fn and_triples(&mut self, words: usize) -> Result<AndTriples, MpcError>;
    /// `64 * words` random bits.
    ///
    /// # Errors
    /// The dealer could not provide them.
    fn random_bits(&mut self, words: usize) -> Result<RandomBits, MpcError>;
    /// `n` DReLU keys of width `m` (2..=64) and this party's shares of their masks.
    ///
    /// # Errors
    /// The dealer could not provide them, or sent keys that do not parse.
    fn drelu(&mut self, n: usize, m: u32) -> Result<DreluMaterial, MpcError>;
    /// `n` ReLU keys of width `m` (2..=64), output kept shared, and this party's shares
    /// of their masks.
    ///
    /// # Errors
    /// The dealer could not provide them, or sent keys that do not parse.
    fn relu(&mut self, n: usize, m: u32) -> Result<ReluMaterial, MpcError>;
    /// Takes back the bytes of FSS keys once evaluated ([`ReluMaterial::into_buffer`]; `None`:
    /// nothing to take), for a later request's reply ([`crate::mpc::buffers`]). The default
    /// drops them.
    fn recycle(&mut self, buf: Option<Vec<u8>>) {
        drop(buf);
    }
    /// Offline traffic so far.
    fn offline(&self) -> OfflineStats;
    /// The run completed: a remote dealer is told so (see [`CorrectionFeed::finish`]).
    ///
    /// # Errors
    /// The dealer could not be told.
    fn finish(&mut self) -> Result<(), MpcError> {
        Ok(())
    }
    /// Starts (`true`) or stops keeping a list of the requests made.
    fn record(&mut self, on: bool) {
        let _ = on;
    }
    /// The requests kept since recording started; clears the list.
    fn take_record(&mut self) -> Vec<Request> {
        Vec::new()
    }
    /// Announces that the next requests will be `reqs`, in this order, so that a remote
    /// dealer can compute and send them ahead instead of one round trip each. A request
    /// that then differs from the announced one is an error.
    ///
    /// # Errors
    /// The dealer could not be reached.
    fn prefetch(&mut self, reqs: &[Request]) -> Result<(), MpcError> {
        let _ = reqs;
        Ok(())
    }
    /// Produces the material of the next requests `reqs` now (expansion, and for party 1
    /// the dealer's corrections) and keeps it for when they are asked for: the offline
    /// phase of a step, separated from its online phase. The default does nothing.
    ///
    /// # Errors
    /// The dealer could not provide it.
    fn preload(&mut self, reqs: &[Request]) -> Result<(), MpcError> {
        let _ = reqs;
        Ok(())
    }
}

/// What a party receives from the dealer besides its seed: party 1's corrections, and
/// each party's FSS keys. The dealer in this process ([`Dealer::feed`]) or a stream
/// from the dealer's process
/// ([`DealerFeed`](super::dealer_server::DealerFeed)).
pub trait CorrectionFeed: Send {
    /// The correction for request number `counter` (party 1 only).
    ///
    /// # Errors
    /// The dealer could not be reached or refused.
    fn correction(&mut self, req: Request, counter: u64) -> Result<Vec<u64>, MpcError>;
    /// Takes back a buffer of key bytes the party has parsed, for a later request's
    /// ([`crate::mpc::buffers`]). The default drops it.
    fn recycle(&mut self, buf: Vec<u8>) {
        drop(buf);
    }
    /// This party's FSS keys of request number `counter` ([`Request::key_bytes`] bytes,
    /// the keys' `to_bytes` one after the other), for either party.
    ///
    /// # Errors
    /// The dealer could not be reached or refused.
    fn keys(&mut self, req: Request, counter: u64) -> Result<Vec<u8>, MpcError>;
    /// Asks for the corrections of these requests ahead of [`CorrectionFeed::correction`]
    /// (which must then come in the same order). The default does nothing.
    ///
    /// # Errors
    /// The dealer could not be reached.
    fn prefetch(&mut self, reqs: &[(Request, u64)]) -> Result<(), MpcError> {
        let _ = reqs;
        Ok(())
    }
    /// Tells the dealer that the run this feed served completed. A feed dropped without
    /// it reports an aborted run. The default does nothing.
    ///
    /// # Errors
    /// The dealer could not be told.
    fn finish(&mut self) -> Result<(), MpcError> {
        Ok(())
    }
}

/// The dealer. See the [module documentation](self).
pub struct Dealer {
    seeds: [Seed; 2],
    /// The seed of FSS key generation: the dealer's alone, never sent.
    key_seed: Seed,
    /// Keys of each request counter being built, or built with the other party's and not
    /// yet asked for ([`Dealer::keys`]), and the signal that one is ready.
    kept: std::sync::Mutex<std::collections::HashMap<u64, keys::Pending>>,
    built: std::sync::Condvar,
    /// Key buffers sent and given back ([`Dealer::recycle`]), for the next builds.
    buffers: crate::mpc::buffers::Buffers,
}

impl std::fmt::Debug for Dealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print seeds.
        f.write_str("Dealer { .. }")
    }
}

impl Dealer {
    /// A dealer whose two party seeds are derived from `master` (reproducible runs and
    /// tests).
    pub fn from_seed(master: Seed) -> Self {
        let mut rng = ChaCha20Rng::from_seed(master);
        let mut seeds = [[0u8; 32]; 2];
        rng.fill_bytes(&mut seeds[0]);
        rng.fill_bytes(&mut seeds[1]);
        // Drawn after the party seeds, which stay those of earlier versions.
        let mut key_seed = [0u8; 32];
        rng.fill_bytes(&mut key_seed);
        Dealer {
            seeds,
            key_seed,
            kept: Default::default(),
            built: Default::default(),
            // Two parties, each with its own keys and the other's waiting: a few (32
            // measured no faster on LeNet, 2026-12-07).
            buffers: crate::mpc::buffers::Buffers::new(6),
        }
    }

    /// The seed `party` receives. It is a secret of that party: send it only over that
    /// party's authenticated channel, never log it.
    pub fn party_seed(&self, party: PartyId) -> Seed {
        self.seeds[party.index()]
    }

    /// The master seed of a small number, for reproducible tests only: whoever knows the
    /// number can recompute every mask.
    pub fn insecure_seed(n: u64) -> Seed {
        let mut rng = ChaCha20Rng::seed_from_u64(n);
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        seed
    }

    /// A dealer seeded by the operating system.
    pub fn from_entropy() -> Self {
        let mut master = [0u8; 32];
        rand::rng().fill_bytes(&mut master);
        Self::from_seed(master)
    }

    /// Both parties' sources, connected to this dealer in this process.
    pub fn correlations(self: &Arc<Self>) -> [SeededCorrelations; 2] {
        [PartyId::P0, PartyId::P1]
            .map(|p| SeededCorrelations::new(p, self.seeds[p.index()], Some(self.feed(p))))
    }

    /// `party`'s feed from this dealer in this process: corrections (party 1) and keys.
    pub fn feed(self: &Arc<Self>, party: PartyId) -> Box<dyn CorrectionFeed> {
        Box::new(LocalFeed {
            dealer: self.clone(),
            party,
        })
    }

    /// Party 1's correction for request number `counter`: the dealer regenerates party
    /// 0's material and party 1's masks from their seeds and fixes the last share.
    pub fn correction(&self, req: Request, counter: u64) -> Vec<u64> {
        let mut r0 = stream(&self.seeds[0], counter);
        let mut r1 = stream(&self.seeds[1], counter);
        match req {
            Request::Beaver { n } => {
                let (a0, b0, c0) = (zs(&mut r0, n), zs(&mut r0, n), zs(&mut r0, n));
                let (a1, b1) = (zs(&mut r1, n), zs(&mut r1, n));
                (0..n)
                    .map(|i| ((a0[i] + a1[i]) * (b0[i] + b1[i]) - c0[i]).0)
                    .collect()
            }
            Request::Matrix { dims } => {
                let MatDims { m, k, n } = dims;
                let (a0, b0, c0) = (zs(&mut r0, m * k), zs(&mut r0, k * n), zs(&mut r0, m * n));
                let (a1, b1) = (zs(&mut r1, m * k), zs(&mut r1, k * n));
                let a = add(&a0, &a1);
                let b = add(&b0, &b1);
                let mut c = vec![Z64::ZERO; m * n];
                matmul_z64(&a, &b, dims, &mut c);
                c.iter().zip(&c0).map(|(&x, &y)| (x - y).0).collect()
            }
            Request::Conv { shape, product } => {
                let [na, nb, nc] = product.sizes(shape);
                let (a0, b0, c0) = (zs(&mut r0, na), zs(&mut r0, nb), zs(&mut r0, nc));
                let (a1, b1) = (zs(&mut r1, na), zs(&mut r1, nb));
                let c = product.product(shape, &add(&a0, &a1), &add(&b0, &b1));
                c.iter().zip(&c0).map(|(&x, &y)| (x - y).0).collect()
            }
            Request::DenseBackward { dims, .. } => {
                let MatDims { m, k, n } = dims;
                let [nd, nw, nx] = req.backward_sizes();
                // The forward product's masks, from the streams of its request.
                let linked = req
                    .linked(counter)
                    .expect("the linked request was checked when the request was read");
                let (mut f0, mut f1) = (
                    stream(&self.seeds[0], linked),
                    stream(&self.seeds[1], linked),
                );
                let a = add(&zs(&mut f0, m * k), &zs(&mut f1, m * k));
                let b = add(&zs(&mut f0, k * n), &zs(&mut f1, k * n));
                let (d0, cw0, cx0) = (zs(&mut r0, nd), zs(&mut r0, nw), zs(&mut r0, nx));
                let d = add(&d0, &zs(&mut r1, nd));
                let mut at = vec![Z64::ZERO; k * m];
                ringnn_core::layers::transpose(&a, m, k, &mut at);
                let mut cw = vec![Z64::ZERO; k * n];
                matmul_z64(&at, &d, MatDims { m: k, k: m, n }, &mut cw);
                let mut out: Vec<u64> = cw.iter().zip(&cw0).map(|(&x, &y)| (x - y).0).collect();
                if nx > 0 {
                    let mut bt = vec![Z64::ZERO; n * k];
                    ringnn_core::layers::transpose(&b, k, n, &mut bt);
                    let mut cx = vec![Z64::ZERO; m * k];
                    matmul_z64(&d, &bt, MatDims { m, k: n, n: k }, &mut cx);
                    out.extend(cx.iter().zip(&cx0).map(|(&x, &y)| (x - y).0));
                }
                out
            }
            Request::ConvBackward { shape, .. } => {
                let [nd, nw, nx] = req.backward_sizes();
                let (o, patch, rows) = (shape.out_channels, shape.patch(), shape.rows());
                let img = shape.image_len();
                // The forward triple's masks, from the streams of its request.
                let linked = req
                    .linked(counter)
                    .expect("the linked request was checked when the request was read");
                let (mut f0, mut f1) = (
                    stream(&self.seeds[0], linked),
                    stream(&self.seeds[1], linked),
                );
                let a = add(&zs(&mut f0, img), &zs(&mut f1, img));
                let b = add(&zs(&mut f0, o * patch), &zs(&mut f1, o * patch));
                let (d0, cw0, cx0) = (zs(&mut r0, nd), zs(&mut r0, nw), zs(&mut r0, nx));
                let d = add(&d0, &zs(&mut r1, nd));
                let cw = ConvProduct::Weights.product(shape, &a, &d);
                let mut out: Vec<u64> = cw.iter().zip(&cw0).map(|(&x, &y)| (x - y).0).collect();
                if nx > 0 {
                    let mut bt = vec![Z64::ZERO; patch * o];
                    ringnn_core::layers::transpose(&b, o, patch, &mut bt);
                    let mut cx = vec![Z64::ZERO; patch * rows];
                    matmul_z64(
                        &bt,
                        &d,
                        MatDims {
                            m: patch,
                            k: o,
                            n: rows,
                        },
                        &mut cx,
                    );
                    out.extend(cx.iter().zip(&cx0).map(|(&x, &y)| (x - y).0));
                }
                out
            }
            Request::Trunc { n, bits } => {
                let (rr0, m0, l0) = (zs(&mut r0, n), zs(&mut r0, n), zs(&mut r0, n));
                let rr1 = zs(&mut r1, n);
                let mut out = vec![0u64; 2 * n];
                for i in 0..n {
                    let r = (rr0[i] + rr1[i]).0;
                    out[i] = (Z64(r >> 63) - m0[i]).0;
                    out[n + i] = (Z64((r & LOW63) >> bits) - l0[i]).0;
                }
                out
            }
            Request::TruncScaled {
                n,
                bits,
                scale,
                scaled_bits,
            } => {
                let (rr0, m0, l0) = (zs(&mut r0, n), zs(&mut r0, n), zs(&mut r0, n));
                let (sm0, sl0) = (zs(&mut r0, n), zs(&mut r0, n));
                let rr1 = zs(&mut r1, n);
                let mut out = vec![0u64; 4 * n];
                for i in 0..n {
                    let r = (rr0[i] + rr1[i]).0;
                    let big = scaled_mask(r, scale);
                    out[i] = (Z64(r >> 63) - m0[i]).0;
                    out[n + i] = (Z64((r & LOW63) >> bits) - l0[i]).0;
                    out[2 * n + i] = (Z64(big >> 63) - sm0[i]).0;
                    out[3 * n + i] = (Z64((big & LOW63) >> scaled_bits) - sl0[i]).0;
                }
                out
            }
            Request::And { words } => {
                let (u0, v0, w0) = (ws(&mut r0, words), ws(&mut r0, words), ws(&mut r0, words));
                let (u1, v1) = (ws(&mut r1, words), ws(&mut r1, words));
                (0..words)
                    .map(|i| ((u0[i] ^ u1[i]) & (v0[i] ^ v1[i])) ^ w0[i])
                    .collect()
            }
            Request::Bits { words } => {
                let (x0, a0) = (ws(&mut r0, words), zs(&mut r0, 64 * words));
                let x1 = ws(&mut r1, words);
                (0..64 * words)
                    .map(|i| {
                        let bit = ((x0[i / 64] ^ x1[i / 64]) >> (i % 64)) & 1;
                        (Z64(bit) - a0[i]).0
                    })
                    .collect()
            }
            Request::Drelu { .. } | Request::Relu { .. } => Vec::new(),
        }
    }
}

/// A party's feed from the dealer in the same process.
struct LocalFeed {
    dealer: Arc<Dealer>,
    party: PartyId,
}

impl CorrectionFeed for LocalFeed {
    fn correction(&mut self, req: Request, counter: u64) -> Result<Vec<u64>, MpcError> {
        if self.party == PartyId::P0 {
            return Err(MpcError::Dealer {
                what: req.what(),
                reason: "party 0 receives no corrections".into(),
            });
        }
        if let Request::DenseBackward { .. } | Request::ConvBackward { .. } = req {
            req.linked(counter).map_err(|reason| MpcError::Dealer {
                what: req.what(),
                reason,
            })?;
        }
        Ok(self.dealer.correction(req, counter))
    }

    /// Back to the dealer's buffers: in one process they are the same memory.
    fn recycle(&mut self, buf: Vec<u8>) {
        self.dealer.recycle(buf);
    }

    fn keys(&mut self, req: Request, counter: u64) -> Result<Vec<u8>, MpcError> {
        self.dealer
            .keys(req, counter, self.party)
            .map_err(|reason| MpcError::Dealer {
                what: req.what(),
                reason,
            })
    }
}

/// One party's seeded source of correlations: material expanded from its seed, plus
/// (party 1) corrections and (both) FSS keys from a [`CorrectionFeed`].
pub struct SeededCorrelations {
    party: PartyId,
    seed: Seed,
    counter: u64,
    feed: Option<Box<dyn CorrectionFeed>>,
    stats: OfflineStats,
    recording: Option<Vec<Request>>,
    /// The first counter not yet announced to the feed.
    announced: u64,
    /// Material produced ahead by [`Correlations::preload`], in request order.
    preloaded: std::collections::VecDeque<(Request, Material)>,
}

/// One request's material.
enum Material {
    Triples(Triples),
    Backward(BackwardMasks),
    Trunc(TruncPairs),
    And(AndTriples),
    Bits(RandomBits),
    Drelu(DreluMaterial),
    Relu(ReluMaterial),
}

impl std::fmt::Debug for SeededCorrelations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed.
        f.debug_struct("SeededCorrelations")
            .field("party", &self.party)
            .field("counter", &self.counter)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SeededCorrelations {
    /// The source of `party` from its `seed`. Party 1 needs a `feed` (corrections);
    /// party 0 needs one only for FSS keys: without it, a request for keys is an error.
    ///
    /// # Panics
    /// If party 1 has no feed (a wiring bug).
    pub fn new(party: PartyId, seed: Seed, feed: Option<Box<dyn CorrectionFeed>>) -> Self {
        assert!(
            feed.is_some() || party == PartyId::P0,
            "party 1 receives corrections"
        );
        SeededCorrelations {
            party,
            seed,
            counter: 0,
            feed,
            stats: OfflineStats {
                requests: 0,
                bytes: 32,
                full_bytes: 0,
            },
            recording: None,
            announced: 0,
            preloaded: Default::default(),
        }
    }

    /// The stream for the next request, party 1's correction for it, and this party's
    /// FSS keys (bytes) for it.
    fn next(&mut self, req: Request) -> Result<(MaskStream, Vec<u64>, Vec<u8>), MpcError> {
        let k = self.counter;
        self.counter += 1;
        if let Some(r) = self.recording.as_mut() {
            r.push(req);
        }
        let fail = |reason: String| MpcError::Dealer {
            what: req.what(),
            reason,
        };
        let mut corr = Vec::new();
        let mut keys = Vec::new();
        if req.key_bytes() > 0 {
            let Some(feed) = self.feed.as_mut() else {
                return Err(fail(format!(
                    "{} has no connection to the dealer for FSS keys",
                    self.party
                )));
            };
            keys = feed.keys(req, k)?;
            if keys.len() != req.key_bytes() {
                return Err(fail(format!(
                    "keys of {} bytes from the dealer, expected {}",
                    keys.len(),
                    req.key_bytes()
                )));
            }
            self.stats.bytes += keys.len() as u64;
        }
        if let (PartyId::P1, Some(feed)) = (self.party, self.feed.as_mut()) {
            if req.correction_words() > 0 {
                corr = feed.correction(req, k)?;
                if corr.len() != req.correction_words() {
                    return Err(fail(format!(
                        "correction of {} words, expected {}",
                        corr.len(),
                        req.correction_words()
                    )));
                }
                self.stats.bytes += 8 * corr.len() as u64;
            }
        }
        self.stats.requests += 1;
        self.stats.full_bytes += 8 * req.full_words() as u64 + req.key_bytes() as u64;
        Ok((stream(&self.seed, k), corr, keys))
    }

    /// The material of `req`: produced now, or taken from what was preloaded (which
    /// must be this request).
    fn material(&mut self, req: Request) -> Result<Material, MpcError> {
        match self.preloaded.pop_front() {
            Some((r, m)) if r == req => Ok(m),
            Some((r, _)) => {
                self.preloaded.clear();
                Err(MpcError::Dealer {
                    what: req.what(),
                    reason: format!("{req:?} was asked for, but {r:?} was preloaded next"),
                })
            }
            None => self.make(req),
        }
    }

    fn make(&mut self, req: Request) -> Result<Material, MpcError> {
        let (mut rng, corr, key_bytes) = self.next(req)?;
        let p0 = self.party == PartyId::P0;
        Ok(match req {
            Request::Beaver { n } => Material::Triples(triples(&mut rng, corr, p0, [n; 3])),
            Request::Matrix { dims } => {
                let MatDims { m, k, n } = dims;
                Material::Triples(triples(&mut rng, corr, p0, [m * k, k * n, m * n]))
            }
            Request::Conv { shape, product } => {
                Material::Triples(triples(&mut rng, corr, p0, product.sizes(shape)))
            }
            Request::DenseBackward { .. } | Request::ConvBackward { .. } => {
                let [nd, nw, nx] = req.backward_sizes();
                let d = zs(&mut rng, nd);
                let (c_w, c_x) = if p0 {
                    (zs(&mut rng, nw), zs(&mut rng, nx))
                } else {
                    let mut c = corr.into_iter().map(Z64);
                    (c.by_ref().take(nw).collect(), c.collect())
                };
                Material::Backward(BackwardMasks { d, c_w, c_x })
            }
            Request::Trunc { n, .. } => {
                let r = zs(&mut rng, n);
                let (msb, low) = if p0 {
                    (zs(&mut rng, n), zs(&mut rng, n))
                } else {
                    (
                        corr[..n].iter().map(|&w| Z64(w)).collect(),
                        corr[n..].iter().map(|&w| Z64(w)).collect(),
                    )
                };
                Material::Trunc(TruncPairs {
                    r,
                    msb,
                    low,
                    scaled_msb: Vec::new(),
                    scaled_low: Vec::new(),
                })
            }
            Request::TruncScaled { n, .. } => {
                let r = zs(&mut rng, n);
                let [msb, low, scaled_msb, scaled_low] = if p0 {
                    std::array::from_fn(|_| zs(&mut rng, n))
                } else {
                    std::array::from_fn(|j| {
                        corr[j * n..(j + 1) * n].iter().map(|&w| Z64(w)).collect()
                    })
                };
                Material::Trunc(TruncPairs {
                    r,
                    msb,
                    low,
                    scaled_msb,
                    scaled_low,
                })
            }
            Request::And { words } => {
                let u = ws(&mut rng, words);
                let v = ws(&mut rng, words);
                let w = if p0 { ws(&mut rng, words) } else { corr };
                Material::And(AndTriples { u, v, w })
            }
            Request::Bits { words } => {
                let xor = ws(&mut rng, words);
                let arith = if p0 {
                    zs(&mut rng, 64 * words)
                } else {
                    corr.into_iter().map(Z64).collect()
                };
                Material::Bits(RandomBits { xor, arith })
            }
            Request::Drelu { n, .. } | Request::Relu { n, .. } => {
                keys::material(req, zs(&mut rng, n), key_bytes)?
            }
        })
    }
}

fn triples(rng: &mut MaskStream, corr: Vec<u64>, p0: bool, sizes: [usize; 3]) -> Triples {
    let a = zs(rng, sizes[0]);
    let b = zs(rng, sizes[1]);
    let c = if p0 {
        zs(rng, sizes[2])
    } else {
        corr.into_iter().map(Z64).collect()
    };
    Triples { a, b, c }
}

fn wrong_material(req: Request) -> MpcError {
    MpcError::Dealer {
        what: req.what(),
        reason: "material of another kind".into(),
    }
}

impl Correlations for SeededCorrelations {
    fn finish(&mut self) -> Result<(), MpcError> {
        self.feed.as_mut().map_or(Ok(()), |f| f.finish())
    }

    fn beaver(&mut self, n: usize) -> Result<Triples, MpcError> {
        let req = Request::Beaver { n };
        match self.material(req)? {
            Material::Triples(t) => Ok(t),
            _ => Err(wrong_material(req)),
        }
    }

    fn matrix(&mut self, dims: MatDims) -> Result<Triples, MpcError> {
        let req = Request::Matrix { dims };
        match self.material(req)? {
            Material::Triples(t) => Ok(t),
            _ => Err(wrong_material(req)),
        }
    }

    fn conv(&mut self, shape: ConvShape, product: ConvProduct) -> Result<Triples, MpcError> {
        let req = Request::Conv { shape, product };
        match self.material(req)? {
            Material::Triples(t) => Ok(t),
            _ => Err(wrong_material(req)),
        }
    }

    fn dense_backward(
        &mut self,
        dims: MatDims,
        back: usize,
        dx: bool,
    ) -> Result<BackwardMasks, MpcError> {
        let req = Request::DenseBackward { dims, back, dx };
        match self.material(req)? {
            Material::Backward(d) => Ok(d),
            _ => Err(wrong_material(req)),
        }
    }

    fn conv_backward(
        &mut self,
        shape: ConvShape,
        back: usize,
        dx: bool,
    ) -> Result<BackwardMasks, MpcError> {
        let req = Request::ConvBackward { shape, back, dx };
        match self.material(req)? {
            Material::Backward(d) => Ok(d),
            _ => Err(wrong_material(req)),
        }
    }

    fn consumed(&self) -> u64 {
        self.counter - self.preloaded.len() as u64
    }

    fn trunc(&mut self, n: usize, bits: u32) -> Result<TruncPairs, MpcError> {
        assert!((1..=62).contains(&bits), "truncation pairs: bits in 1..=62");
        let req = Request::Trunc { n, bits };
        match self.material(req)? {
            Material::Trunc(t) => Ok(t),
            _ => Err(wrong_material(req)),
        }
    }

    fn trunc_scaled(
        &mut self,
        n: usize,
        bits: u32,
        scale: u64,
        scaled_bits: u32,
    ) -> Result<TruncPairs, MpcError> {
        assert!(
            (1..=62).contains(&bits) && (1..=62).contains(&scaled_bits),
            "scaled truncation pairs: bits in 1..=62"
        );
        let req = Request::TruncScaled {
            n,
            bits,
            scale,
            scaled_bits,
        };
        match self.material(req)? {
            Material::Trunc(t) => Ok(t),
            _ => Err(wrong_material(req)),
        }
    }

    fn and_triples(&mut self, words: usize) -> Result<AndTriples, MpcError> {
        let req = Request::And { words };
        match self.material(req)? {
            Material::And(t) => Ok(t),
            _ => Err(wrong_material(req)),
        }
    }

    fn random_bits(&mut self, words: usize) -> Result<RandomBits, MpcError> {
        let req = Request::Bits { words };
        match self.material(req)? {
            Material::Bits(t) => Ok(t),
            _ => Err(wrong_material(req)),
        }
    }

    fn drelu(&mut self, n: usize, m: u32) -> Result<DreluMaterial, MpcError> {
        assert!((2..=64).contains(&m), "DReLU keys: width in 2..=64");
        let req = Request::Drelu { n, m };
        match self.material(req)? {
            Material::Drelu(d) => Ok(d),
            _ => Err(wrong_material(req)),
        }
    }

    fn relu(&mut self, n: usize, m: u32) -> Result<ReluMaterial, MpcError> {
        assert!((2..=64).contains(&m), "ReLU keys: width in 2..=64");
        let req = Request::Relu { n, m };
        match self.material(req)? {
            Material::Relu(d) => Ok(d),
            _ => Err(wrong_material(req)),
        }
    }

    fn recycle(&mut self, buf: Option<Vec<u8>>) {
        if let (Some(feed), Some(buf)) = (self.feed.as_mut(), buf) {
            feed.recycle(buf);
        }
    }

    fn offline(&self) -> OfflineStats {
        self.stats
    }

    fn record(&mut self, on: bool) {
        self.recording = on.then(Vec::new);
    }

    fn take_record(&mut self) -> Vec<Request> {
        self.recording
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Party 1 passes the requests, numbered from the first counter not yet announced,
    /// to its feed; party 0 expands everything else from its seed and passes only the
    /// requests for FSS keys.
    fn prefetch(&mut self, reqs: &[Request]) -> Result<(), MpcError> {
        let start = self.announced.max(self.counter);
        self.announced = start + reqs.len() as u64;
        let Some(feed) = self.feed.as_mut() else {
            return Ok(());
        };
        let p1 = self.party == PartyId::P1;
        let numbered: Vec<(Request, u64)> = reqs
            .iter()
            .zip(start..)
            .filter(|(r, _)| p1 || r.key_bytes() > 0)
            .map(|(&r, k)| (r, k))
            .collect();
        feed.prefetch(&numbered)
    }

    fn preload(&mut self, reqs: &[Request]) -> Result<(), MpcError> {
        for &req in reqs {
            let m = self.make(req)?;
            self.preloaded.push_back((req, m));
        }
        Ok(())
    }
}

/// Stream `k` of `seed`: the material of request number `k`.
fn stream(seed: &Seed, k: u64) -> MaskStream {
    MaskStream::new(seed, k)
}

fn ws(rng: &mut MaskStream, n: usize) -> Vec<u64> {
    rng.words(n)
}

fn zs(rng: &mut MaskStream, n: usize) -> Vec<Z64> {
    rng.ring(n)
}

fn add(a: &[Z64], b: &[Z64]) -> Vec<Z64> {
    a.iter().zip(b).map(|(&x, &y)| x + y).collect()
}
