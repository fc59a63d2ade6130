//! [`Mpc`]: the kernel's [`Engine`] on one party's additive shares.
//!
//! Each party runs its own `Mpc` with the same program; elements are this party's shares
//! (`Z64`), public constants are encoded exactly as [`Plain`](ringnn_core::Plain) encodes
//! them. Local operations (addition, multiplication by a public constant, adding a public
//! constant, which party 0 alone does) cost nothing; the other primitives are the
//! protocols of [`super::protocols`]. The composites (ReLU, max, clamp, max-of-lines,
//! polynomials, reciprocal, softmax) are the kernel's provided methods, built from these
//! primitives, so they match `Plain` up to the truncation error below.
//!
//! # Truncation
//! [`Truncation::Dealer`] is the default: it never fails in the safe range and costs one
//! round and 8 bytes per element. [`Truncation::Local`] (SecureML) is free but fails (a
//! result off by about `2^(64-d)`) with probability `|x| / 2^64` per element: once in 64
//! elements for the softmax's products up to 2^58, and over millions of products per
//! training step even `|x| ~ 2^40` fails regularly. Both return `floor(x / 2^d)` or one
//! more, one more with probability equal to the dropped fraction: stochastic rounding,
//! unbiased, within one ulp of `Plain`'s round-to-nearest per truncation. No public
//! `2^(d-1)` is added first: that would turn the unbiased rounding into a +1/2 ulp bias.
//!
//! # Security
//! Semi-honest, two non-colluding servers and a non-colluding dealer
//! ([`super::dealer`]). Each primitive opens only values masked by fresh dealer
//! randomness, so every composite is secure by sequential composition: the parties'
//! views are simulated message by message by uniform values. Nothing derived from data
//! is ever opened: comparison results, softmax outputs, logits and accuracy stay shared.
//!
//! One opening serves several products within a training step, never one mask several
//! secrets: a dense layer's forward product opens `X - A` and `W - B` once
//! ([`Engine::dense_forward_product`]), and its backward pass opens only `dY - D`
//! ([`Engine::dense_backward_products`], [`protocols::dense_backward`]) and computes
//! `X^T dY` and `dY W^T` locally from the three opened values and the dealer's `A^T D`,
//! `D B^T`. `A` hides only `X`, `B` only `W`, `D` only `dY`, each opened once: using an
//! opened value again is local computation on what the party already holds, so the
//! views are those of fresh masks minus the repeated openings. A convolution likewise:
//! its forward product opens the image and the kernel once
//! ([`Engine::conv_forward_keeping`]), its backward pass `dY^T - D` only
//! ([`Engine::conv_backward_products`], [`protocols::conv_backward`]). The next step's products
//! get new masks (the kept values are dropped by the backward pass, or replaced by the
//! next forward product).
//!
//! # Communication
//! Per element, per party, payload bytes sent (the receiver gets the same), with the
//! default truncation; every message adds an 8-byte header.
//!
//! | operation | rounds | bytes |
//! |---|---|---|
//! | add, sub, add/mul public | 0 | 0 |
//! | `mul` (Beaver) | 1 | 16 |
//! | `matmul` `m x k` by `k x n` | 1 | `8 (mk + kn)` per product |
//! | dense forward product in training (`X W`, `X` `m x k`, `W` `k x n`) | 1 | `8 (mk + kn)`, as `matmul`; `X - A` and `W - B` are kept |
//! | dense backward products (`X^T dY` and `dY W^T`) | 1 | `8 mn` per layer: `dY` only ([`protocols::dense_backward`]); two fresh products took 2 rounds and `8 (2mn + mk + kn)` |
//! | convolution backward products in training (weight and input gradients) | 1 | `8 mn` per layer for `dY^T` (`m x n` = `out_channels x rows`) only ([`protocols::conv_backward`]); fresh ones took 2 rounds and `8 (image + 2mn + mk)` |
//! | convolution product (forward, weight gradient) | 1 | `8 (image + mk)` per product: the input image, not its unfolding ([`protocols::conv_product`]) |
//! | `shift_right` / `rescale` | 1 | 8 |
//! | `is_negative` (`a2b`) | 8 | 45.375 |
//! | `is_negative_diff` (`a2b`, at the reduced width `W = fss_width(f)`: 54 at f = 13) | 8 | 37.875 at W = 54 |
//! | `is_negative` (`fss`) | 1 | 8 |
//! | `select` | 1 | 16 |
//! | ReLU (`a2b`, at `W`; in training its backward bit `[-x < 0]` in the same batch, so the backward pass is one select) | 9 | 53.875 at W = 54 (91.75 with the backward bit) |
//! | max of two (`a2b`, at `W`) | 9 | 53.875 at W = 54 |
//! | hard tanh (`clamp`) | 10 | 122.75 |
//! | max pooling `k x k` | `9 ceil(log2 k^2)` (+1 per level with selection bits) | `61.375 (k^2 - 1)` per output (+16 per selection bit per level) |
//! | max pooling backward | 1 | `16 k^2` per output |
//! | max-of-lines, `m` lines | one per non-integer slope + `9 ceil(log2 m)` (pwl4: 20) | at most `8 m + 61.375 (m - 1)` |
//! | Taylor `e^x`, degree `d` | `2 d` | `24 d` |
//! | reciprocal (`a2b`) | 8 (range comparisons) + 2 (normalising product and truncation) + 6 (127 comparisons of its pieces at `f + 2` bits, 15 at f = 13) + 2 (the pieces' product and truncation) + 4 per Newton step (none at `f <= 15`) + 2 (shift back) | about `62 * 45.375 + 127 * 9.2 + 3 * 16` |
//! | SGD update (`core/src/optim.rs`: the velocity rounded once, then `lr v`; weight gradients enter unscaled for a power-of-two batch) | 2 | 16 per parameter |
//!
//! Softmax is the exp approximation, (for Taylor) one comparison and one product to clip
//! at 0, one comparison per row, one reciprocal per row, one product and one truncation
//! per element; the exact-mode gradient adds a second exp evaluation, its derivative,
//! three products and truncations per element and one reciprocal per row. The
//! reciprocal's two shifts back go out as one message ([`Engine::shift_right_chunks`]):
//! softmax with pwl4 measures 42 rounds on the adder and 11 on FSS (`ringnn cost`).
//!
//! # Comparison
//! [`Comparison::A2b`] (the default) computes `is_negative` with the adder above;
//! [`Comparison::Fss`] with the dealer's DReLU keys ([`super::comparison`]): one round
//! and 8 bytes per element, but a 1613-byte key per element to each party offline.
//! Every composite built on comparisons then costs one round per comparison level
//! instead of eight (max of two: 2 rounds, 24 bytes); ReLU uses the dealer's ReLU keys
//! directly ([`comparison::relu_fss`]): 1 round, 8 bytes, a key of 1827 bytes per element
//! at f = 13 (keys of the reduced width [`fss_width`]`(f)`, where `Plain` counts the
//! inputs beyond their range in `Health::beyond_fss_width`; 2157 at the full width);
//! in training the same round also gives the backward pass's bit `[x > 0]`
//! ([`Engine::relu_keeping_grad`]), so ReLU's backward is one select (1 round, 16 bytes).
//! Max-of-lines (every e^x of the paper's family, SecureML's and Piranha's) and `clamp`
//! (hard tanh, SecureML's sigmoid) are one spline gate ([`comparison::spline_fss`]):
//! one opening whatever the number of parts, the same ReLU key evaluated locally at
//! each knot, then (max-of-lines) one truncation: 2 rounds and 16 bytes per element
//! (clamp: 1 round, 8 bytes), with `Plain`'s slope for the backward pass.

use super::channel::{Channel, Traffic};
use super::comparison::{self, Comparison, Spline, SplineError, FSS_WIDTH};
use super::dealer::{ConvProduct, Correlations, OfflineStats};
use super::protocols::{self, Link};
use super::wire;
use super::{MpcError, PartyId};
use crate::gemm::matmul_z64;
use ringnn_core::approx::Lines;
use ringnn_core::engine::recip::RecipPieces;
use ringnn_core::engine::{fss_width, generic, ConvUnfold, Engine, MatDims, MatmulFn};
use ringnn_core::fixed::{Fixed, FracBits};
use ringnn_core::Z64;
use std::cell::Cell;
use std::collections::HashMap;

/// Which truncation protocol [`Engine::shift_right`] uses. See the [module
/// documentation](self).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Truncation {
    /// Dealer-assisted ([`protocols::truncate_dealer`]): one round, never fails in the
    /// safe range. The default.
    #[default]
    Dealer,
    /// SecureML's local truncation ([`protocols::truncate_local`]): free, fails with
    /// probability `|x| / 2^64`.
    Local,
}

/// The two-party engine: one party's side. See the [module documentation](self).
#[derive(Debug)]
pub struct Mpc<C, R> {
    link: Link<C>,
    corr: R,
    fx: Fixed,
    trunc: Truncation,
    comparison: Comparison,
    gemm: MatmulFn<Z64>,
    saturated: Cell<u64>,
    /// The splines built so far (public data of the approximation and `f`).
    splines: Vec<(SplineOf, Option<Spline>)>,
    /// What each dense layer's forward product in training kept for its backward pass,
    /// by slot ([`Engine::dense_forward_product`]): the opened values and a fingerprint
    /// of the operands (to check that the backward pass is given the same ones).
    kept: HashMap<usize, Held<protocols::KeptProduct>>,
    /// The same for each convolution.
    kept_conv: HashMap<usize, Held<protocols::KeptConv>>,
}

/// A fingerprint of this party's shares of a product's operands (FNV-1a over the words
/// and lengths): it tells the backward pass whether it was given the forward's operands
/// (a check against bugs in the caller, not a digest of any secret; never sent).
fn fingerprint(x: &[Z64], w: &[Z64]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [x, w] {
        h = (h ^ part.len() as u64).wrapping_mul(PRIME);
        for v in part {
            h = (h ^ v.0).wrapping_mul(PRIME);
        }
    }
    h
}

/// A forward product (dense or convolution) kept until its backward pass, with a
/// fingerprint of this party's shares of its operands.
#[derive(Debug)]
struct Held<P> {
    product: P,
    operands: u64,
}

/// What a cached [`Spline`] computes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum SplineOf {
    Lines(Lines),
    Clamp(u64, u64),
    Reciprocal,
}

impl<C: Channel, R: Correlations> Mpc<C, R> {
    /// The spline of `of`, built once per engine (it depends on `f` and the function
    /// only); `None` where the gate cannot reproduce `Plain` (max-of-lines at `f` above
    /// about 29, where its products leave the ring: [`SplineError::NoRange`]), and the
    /// comparison tree serves instead.
    fn spline(&mut self, of: SplineOf) -> Result<Option<Spline>, MpcError> {
        if let Some((_, s)) = self.splines.iter().find(|(k, _)| *k == of) {
            return Ok(s.clone());
        }
        let f = FracBits::new(self.fx.frac_bits()).expect("the engine's f was validated");
        let built = match of {
            SplineOf::Lines(lines) => Spline::max_of_lines(&lines, f),
            SplineOf::Clamp(lo, hi) => Spline::clamp(f64::from_bits(lo), f64::from_bits(hi), f),
            SplineOf::Reciprocal => Ok(Spline::reciprocal(f)),
        };
        let built = match built {
            Ok(s) => Some(s),
            Err(SplineError::NoRange { .. } | SplineError::TooManyPoints { .. }) => None,
            Err(e) => {
                return Err(MpcError::Dealer {
                    what: "spline",
                    reason: e.to_string(),
                })
            }
        };
        self.splines.push((of, built.clone()));
        Ok(built)
    }

    /// The run on this engine completed: tells a remote dealer so, which makes its exit
    /// status a success. An engine dropped without it reports an aborted run.
    ///
    /// # Errors
    /// The dealer could not be told, or material announced ahead was never used.
    pub fn finish(&mut self) -> Result<(), MpcError> {
        self.corr.finish()
    }

    /// `party`'s engine with `f` fractional bits, talking to the peer over `chan` and
    /// drawing correlated randomness from `corr`. Dealer-assisted truncation, the adder
    /// comparison and the host's blocked GEMM for local products.
    pub fn new(party: PartyId, f: FracBits, chan: C, corr: R) -> Self {
        Mpc {
            link: Link::new(party, chan),
            corr,
            fx: Fixed::with(f),
            trunc: Truncation::default(),
            comparison: Comparison::default(),
            gemm: matmul_z64,
            saturated: Cell::new(0),
            splines: Vec::new(),
            kept: HashMap::new(),
            kept_conv: HashMap::new(),
        }
    }

    /// Uses `trunc` for every truncation (both parties must agree).
    pub fn with_truncation(mut self, trunc: Truncation) -> Self {
        self.trunc = trunc;
        self
    }

    /// Uses `comparison` for every [`Engine::is_negative`] (both parties must agree).
    pub fn with_comparison(mut self, comparison: Comparison) -> Self {
        self.comparison = comparison;
        self
    }

    /// The comparison protocol in use.
    pub fn comparison(&self) -> Comparison {
        self.comparison
    }

    /// Uses `gemm` for the local matrix products.
    pub fn with_matmul(mut self, gemm: MatmulFn<Z64>) -> Self {
        self.gemm = gemm;
        self
    }

    /// This party.
    pub fn party(&self) -> PartyId {
        self.link.party
    }

    /// The number format.
    pub fn format(&self) -> Fixed {
        self.fx
    }

    /// ReLU on the adder: `[x < 0]` (and, for `grad`, `[-x < 0] = [x > 0]`, the
    /// derivative `Plain`'s backward pass computes) in one batched comparison at the
    /// reduced width [`fss_width`]`(f)`, then one select.
    fn relu_a2b(&mut self, x: &mut [Z64], grad: Option<&mut [Z64]>) -> Result<(), MpcError> {
        let n = x.len();
        let w = fss_width(self.frac_bits());
        let both = grad.is_some();
        let mut d = Vec::with_capacity(if both { 2 * n } else { n });
        d.extend_from_slice(x);
        if both {
            d.extend(x.iter().map(|&v| -v));
        }
        let mut bits = vec![Z64::ZERO; d.len()];
        protocols::is_negative_width(&mut self.link, &mut self.corr, &d, &mut bits, w)?;
        let zeros = vec![Z64::ZERO; n];
        let mut out = vec![Z64::ZERO; n];
        protocols::select(
            &mut self.link,
            &mut self.corr,
            &bits[..n],
            &zeros,
            x,
            &mut out,
        )?;
        x.copy_from_slice(&out);
        if let Some(g) = grad {
            assert_eq!(g.len(), n, "relu: gradient length mismatch");
            g.copy_from_slice(&bits[n..]);
        }
        Ok(())
    }

    /// The session's link and correlations, for tests that call a protocol directly.
    #[cfg(test)]
    pub(crate) fn link_and_corr(&mut self) -> (&mut Link<C>, &mut R) {
        (&mut self.link, &mut self.corr)
    }

    /// The truncation protocol in use.
    pub fn truncation(&self) -> Truncation {
        self.trunc
    }

    /// Online traffic so far (this party's side).
    pub fn traffic(&self) -> Traffic {
        self.link.chan.traffic()
    }

    /// Offline traffic from the dealer so far.
    pub fn offline(&self) -> OfflineStats {
        self.corr.offline()
    }

    /// Starts (`true`) or stops recording the dealer requests made (see
    /// [`Correlations::record`]).
    pub fn record_requests(&mut self, on: bool) {
        self.corr.record(on);
    }

    /// The dealer requests recorded so far; clears the record.
    pub fn take_requests(&mut self) -> Vec<super::dealer::Request> {
        self.corr.take_record()
    }

    /// Announces the next dealer requests so that the dealer sends them ahead (see
    /// [`Correlations::prefetch`]).
    ///
    /// # Errors
    /// The dealer could not be reached.
    pub fn prefetch(&mut self, reqs: &[super::dealer::Request]) -> Result<(), MpcError> {
        self.corr.prefetch(reqs)
    }

    /// Produces the material of the next dealer requests now (see
    /// [`Correlations::preload`]): the offline phase of what follows.
    ///
    /// # Errors
    /// The dealer could not provide it.
    pub fn preload(&mut self, reqs: &[super::dealer::Request]) -> Result<(), MpcError> {
        self.corr.preload(reqs)
    }

    /// Starts keeping a copy of every byte received from the peer (this party's view).
    pub fn record_view(&mut self) {
        self.link.chan.record();
    }

    /// The bytes received since [`Mpc::record_view`]; stops recording.
    pub fn take_view(&mut self) -> Vec<u8> {
        self.link.chan.take_transcript()
    }

    /// Opens `x` to both parties: each sends its shares and adds the peer's. One round,
    /// 8 bytes per element.
    ///
    /// # Security
    /// Reveals `x` to both servers. Only for values that are public by design (shapes,
    /// test vectors); training never opens anything derived from data: results go to the
    /// owner as shares.
    ///
    /// # Errors
    /// A channel failure, or a peer out of step.
    pub fn open(&mut self, x: &[Z64]) -> Result<Vec<Z64>, MpcError> {
        let mine: Vec<u64> = x.iter().map(|v| v.0).collect();
        let theirs = self.exchange_public("open", &mine, wire::Tag::Open)?;
        Ok(mine
            .iter()
            .zip(theirs)
            .map(|(&a, b)| Z64(a.wrapping_add(b)))
            .collect())
    }

    /// Sends public words (a handshake) and returns the peer's words of the same length.
    ///
    /// # Errors
    /// A channel failure, or a peer out of step (another tag or length).
    pub fn exchange_public(
        &mut self,
        during: &'static str,
        mine: &[u64],
        tag: wire::Tag,
    ) -> Result<Vec<u64>, MpcError> {
        let mut theirs = vec![0u64; mine.len()];
        self.link.exchange(tag, during, mine, &mut theirs)?;
        Ok(theirs)
    }
}

impl<C: Channel, R: Correlations> Engine for Mpc<C, R> {
    type Elem = Z64;
    type Public = Z64;
    type Error = MpcError;

    fn frac_bits(&self) -> u32 {
        self.fx.frac_bits()
    }

    fn public(&self, c: f64) -> Z64 {
        let (v, sat) = self.fx.encode_saturating(c);
        self.saturated.set(self.saturated.get() + sat as u64);
        v
    }

    fn public_int(&self, k: i64) -> Z64 {
        Z64::from_signed(k)
    }

    /// Public constants that saturated; products are shared, so their wrap-arounds
    /// cannot be seen.
    fn overflow_count(&self) -> u64 {
        self.saturated.get()
    }

    fn add_assign(&mut self, x: &mut [Z64], y: &[Z64]) -> Result<(), MpcError> {
        assert_eq!(x.len(), y.len(), "add_assign: length mismatch");
        x.iter_mut().zip(y).for_each(|(a, &b)| *a += b);
        Ok(())
    }

    fn sub_assign(&mut self, x: &mut [Z64], y: &[Z64]) -> Result<(), MpcError> {
        assert_eq!(x.len(), y.len(), "sub_assign: length mismatch");
        x.iter_mut().zip(y).for_each(|(a, &b)| *a -= b);
        Ok(())
    }

    /// Party 0 adds `c` to its shares; party 1 leaves its shares as they are.
    fn add_public(&mut self, x: &mut [Z64], c: Z64) -> Result<(), MpcError> {
        if self.link.party == PartyId::P0 {
            x.iter_mut().for_each(|a| *a += c);
        }
        Ok(())
    }

    fn mul_public(&mut self, x: &mut [Z64], c: Z64) -> Result<(), MpcError> {
        x.iter_mut().for_each(|a| *a *= c);
        Ok(())
    }

    fn mul(&mut self, a: &[Z64], b: &[Z64], out: &mut [Z64]) -> Result<(), MpcError> {
        protocols::mul(&mut self.link, &mut self.corr, a, b, out)
    }

    fn matmul(
        &mut self,
        a: &[Z64],
        b: &[Z64],
        dims: MatDims,
        out: &mut [Z64],
    ) -> Result<(), MpcError> {
        protocols::matmul(&mut self.link, &mut self.corr, a, b, dims, out, self.gemm)
    }

    /// On a convolution triple ([`protocols::conv_product`]): opens the input image, not
    /// its unfolding. `cols` is not used.
    fn conv_forward_product(
        &mut self,
        conv: &dyn ConvUnfold<Z64>,
        x: &[Z64],
        w: &[Z64],
        out: &mut [Z64],
        _cols: &mut [Z64],
    ) -> Result<(), MpcError> {
        let (link, corr, gemm) = (&mut self.link, &mut self.corr, self.gemm);
        protocols::conv_product(link, corr, conv, ConvProduct::Forward, x, w, out, gemm)
    }

    /// On a convolution triple ([`protocols::conv_product`]), as
    /// [`Engine::conv_forward_product`].
    fn conv_weight_product(
        &mut self,
        conv: &dyn ConvUnfold<Z64>,
        dyt: &[Z64],
        x: &[Z64],
        dw: &mut [Z64],
        _cols: &mut [Z64],
    ) -> Result<(), MpcError> {
        let (link, corr, gemm) = (&mut self.link, &mut self.corr, self.gemm);
        protocols::conv_product(link, corr, conv, ConvProduct::Weights, x, dyt, dw, gemm)
    }

    /// [`protocols::matmul_keeping`]: the forward product opens `X - A` and `W - B` as
    /// [`Engine::matmul`] does and keeps them (public values, and a fingerprint of this
    /// party's operands) under `slot`, replacing what a forward product without a
    /// backward pass left there.
    fn dense_forward_product(
        &mut self,
        slot: usize,
        x: &[Z64],
        w: &[Z64],
        dims: MatDims,
        out: &mut [Z64],
    ) -> Result<(), MpcError> {
        let (link, corr, gemm) = (&mut self.link, &mut self.corr, self.gemm);
        match protocols::matmul_keeping(link, corr, x, w, dims, out, gemm)? {
            Some(product) => {
                let operands = fingerprint(x, w);
                self.kept.insert(slot, Held { product, operands });
            }
            None => {
                self.kept.remove(&slot);
            }
        }
        Ok(())
    }

    /// [`protocols::dense_backward`] on what the slot's forward product kept: one round
    /// that opens `dY - D` only. A slot with nothing kept (a product with nothing to
    /// mask, or no forward product in training) takes the provided path, two matrix
    /// products; both parties run the same program, so they take the same path.
    ///
    /// # Panics
    /// If the slot's forward product had another shape or other operands (this party's
    /// shares of `x` or `w` differ): a bug in the caller.
    fn dense_backward_products(
        &mut self,
        slot: usize,
        x: &[Z64],
        w: &[Z64],
        dy: &[Z64],
        dims: MatDims,
        dw: &mut [Z64],
        dx: Option<&mut [Z64]>,
        scratch: &mut [Z64],
    ) -> Result<(), MpcError> {
        let Some(kept) = self.kept.remove(&slot) else {
            return generic::dense_backward_products(self, x, w, dy, dims, dw, dx, scratch);
        };
        assert!(
            kept.product.shape == dims && kept.operands == fingerprint(x, w),
            "dense_backward_products: slot {slot} kept a forward product of other operands"
        );
        let (link, corr, gemm) = (&mut self.link, &mut self.corr, self.gemm);
        protocols::dense_backward(link, corr, &kept.product, x, w, dy, dw, dx, gemm)
    }

    /// [`protocols::conv_product_keeping`]: the forward product as
    /// [`Engine::conv_forward_product`], keeping the opened image and kernel (and a
    /// fingerprint of this party's operands) under `slot`. `cols` is not used.
    fn conv_forward_keeping(
        &mut self,
        slot: usize,
        conv: &dyn ConvUnfold<Z64>,
        x: &[Z64],
        w: &[Z64],
        out: &mut [Z64],
        _cols: &mut [Z64],
    ) -> Result<(), MpcError> {
        let (link, corr, gemm) = (&mut self.link, &mut self.corr, self.gemm);
        let fwd = ConvProduct::Forward;
        match protocols::conv_product_keeping(link, corr, conv, fwd, x, w, out, gemm)? {
            Some(product) => {
                let operands = fingerprint(x, w);
                self.kept_conv.insert(slot, Held { product, operands });
            }
            None => {
                self.kept_conv.remove(&slot);
            }
        }
        Ok(())
    }

    /// [`protocols::conv_backward`] on what the slot's forward product kept: one round
    /// that opens `dY^T - D` only. A slot with nothing kept takes the provided path (the
    /// weight-gradient triple and a matrix product), on both parties alike. `wt` is not
    /// used.
    ///
    /// # Panics
    /// If the slot's forward product had another shape or other operands: a bug in the
    /// caller.
    fn conv_backward_products(
        &mut self,
        slot: usize,
        conv: &dyn ConvUnfold<Z64>,
        x: &[Z64],
        w: &[Z64],
        dyt: &[Z64],
        dw: &mut [Z64],
        dx: bool,
        cols: &mut [Z64],
        wt: &mut [Z64],
    ) -> Result<(), MpcError> {
        let Some(kept) = self.kept_conv.remove(&slot) else {
            return generic::conv_backward_products(self, conv, x, w, dyt, dw, dx, cols, wt);
        };
        assert!(
            kept.product.shape == conv.shape() && kept.operands == fingerprint(x, w),
            "conv_backward_products: slot {slot} kept a forward product of other operands"
        );
        let (link, corr, gemm) = (&mut self.link, &mut self.corr, self.gemm);
        let dcols = dx.then_some(cols);
        protocols::conv_backward(link, corr, &kept.product, conv, x, w, dyt, dw, dcols, gemm)
    }

    fn shift_right(&mut self, x: &mut [Z64], bits: u32) -> Result<(), MpcError> {
        if bits == 0 || x.is_empty() {
            return Ok(());
        }
        if bits >= 63 {
            // |x / 2^63| < 1/2 for every x of the safe range: the nearest integer is 0,
            // as Plain's rounding shift gives, and no communication is needed.
            x.fill(Z64::ZERO);
            return Ok(());
        }
        match self.trunc {
            Truncation::Dealer => {
                protocols::truncate_dealer(&mut self.link, &mut self.corr, x, bits)
            }
            Truncation::Local => {
                protocols::truncate_local(self.link.party, x, bits);
                Ok(())
            }
        }
    }

    /// With dealer truncation, both results from one opening
    /// ([`protocols::truncate_dealer_scaled`]); otherwise the provided two steps.
    fn shift_right_and_scaled(
        &mut self,
        x: &mut [Z64],
        bits: u32,
        c: Z64,
        scaled: &mut [Z64],
        scaled_bits: u32,
    ) -> Result<(), MpcError> {
        assert_eq!(x.len(), scaled.len(), "shift_right_and_scaled: lengths");
        let both_shift = (1..=62).contains(&bits) && (1..=62).contains(&scaled_bits);
        if self.trunc != Truncation::Dealer || !both_shift || x.is_empty() {
            return generic::shift_right_and_scaled(self, x, bits, c, scaled, scaled_bits);
        }
        protocols::truncate_dealer_scaled(
            &mut self.link,
            &mut self.corr,
            x,
            bits,
            c,
            scaled,
            scaled_bits,
        )
    }

    /// Every chunk in one round (dealer truncation); see
    /// [`protocols::truncate_dealer_many`].
    fn shift_right_chunks(
        &mut self,
        x: &mut [Z64],
        n: usize,
        shifts: &[u32],
    ) -> Result<(), MpcError> {
        assert_eq!(x.len(), n * shifts.len(), "shift_right_chunks: length");
        if n == 0 {
            return Ok(());
        }
        let mut parts = Vec::with_capacity(shifts.len());
        for (c, &bits) in x.chunks_mut(n).zip(shifts) {
            match bits {
                0 => {}
                // As shift_right: the nearest integer of |x / 2^63| < 1/2 is 0.
                63.. => c.fill(Z64::ZERO),
                _ if self.trunc == Truncation::Local => {
                    protocols::truncate_local(self.link.party, c, bits)
                }
                _ => parts.push((c, bits)),
            }
        }
        protocols::truncate_dealer_many(&mut self.link, &mut self.corr, &mut parts)
    }

    fn is_negative(&mut self, x: &[Z64], out: &mut [Z64]) -> Result<(), MpcError> {
        match self.comparison {
            Comparison::A2b => protocols::is_negative(&mut self.link, &mut self.corr, x, out),
            Comparison::Fss => {
                comparison::is_negative_fss(&mut self.link, &mut self.corr, x, out, FSS_WIDTH)
            }
        }
    }

    /// At the width `bits`: with [`Comparison::Fss`], DReLU keys of that width; with the
    /// adder, its carry chain over that many bits.
    fn is_negative_within(
        &mut self,
        x: &[Z64],
        out: &mut [Z64],
        bits: u32,
    ) -> Result<(), MpcError> {
        match self.comparison {
            Comparison::A2b => {
                protocols::is_negative_width(&mut self.link, &mut self.corr, x, out, bits)
            }
            Comparison::Fss => {
                comparison::is_negative_fss(&mut self.link, &mut self.corr, x, out, bits)
            }
        }
    }

    /// At the reduced width [`fss_width`]`(f)` (`Plain` counts the differences beyond it):
    /// with [`Comparison::Fss`], DReLU keys of that width; with the adder, its carry chain
    /// over that many bits ([`protocols::is_negative_width`]).
    fn is_negative_diff(&mut self, x: &[Z64], out: &mut [Z64]) -> Result<(), MpcError> {
        match self.comparison {
            Comparison::A2b => {
                let w = fss_width(self.frac_bits());
                protocols::is_negative_width(&mut self.link, &mut self.corr, x, out, w)
            }
            Comparison::Fss => {
                let w = fss_width(self.frac_bits());
                comparison::is_negative_fss(&mut self.link, &mut self.corr, x, out, w)
            }
        }
    }

    /// With [`Comparison::Fss`], one ReLU key on the difference gives the maximum and the
    /// bit in one round ([`comparison::max_pair_fss`]); with the adder, the kernel's
    /// comparison and select.
    fn max_pair(
        &mut self,
        left: &mut [Z64],
        right: &[Z64],
        bits: &mut [Z64],
        scratch: &mut [Z64],
    ) -> Result<(), MpcError> {
        match self.comparison {
            Comparison::A2b => {
                ringnn_core::engine::generic::max_pair(self, left, right, bits, scratch)
            }
            Comparison::Fss => {
                let w = fss_width(self.frac_bits());
                comparison::max_pair_fss(&mut self.link, &mut self.corr, left, right, bits, w)
            }
        }
    }

    /// With [`Comparison::Fss`], the dealer's ReLU keys in one round
    /// ([`comparison::relu_fss`]); with the adder, its comparison at the reduced width
    /// [`fss_width`]`(f)` (exact where `Plain` counts no input beyond it) and a select.
    fn relu(&mut self, x: &mut [Z64], scratch: &mut [Z64]) -> Result<(), MpcError> {
        let _ = scratch;
        match self.comparison {
            Comparison::A2b => self.relu_a2b(x, None),
            Comparison::Fss => {
                let w = fss_width(self.frac_bits());
                comparison::relu_fss(&mut self.link, &mut self.corr, x, None, w)
            }
        }
    }

    /// With [`Comparison::Fss`], the ReLU keys also give the backward pass's bit
    /// `[x > 0]` in the same round ([`comparison::relu_fss`]); with the adder, that bit is
    /// `[-x < 0]`, compared in the same batch as the forward's `[x < 0]` (the rounds of
    /// one comparison instead of two; the backward pass then compares nothing).
    fn relu_keeping_grad(
        &mut self,
        x: &mut [Z64],
        grad: &mut [Z64],
        scratch: &mut [Z64],
    ) -> Result<bool, MpcError> {
        let _ = scratch;
        match self.comparison {
            Comparison::A2b => self.relu_a2b(x, Some(grad)).map(|()| true),
            Comparison::Fss => {
                let w = fss_width(self.frac_bits());
                comparison::relu_fss(&mut self.link, &mut self.corr, x, Some(grad), w)
                    .map(|()| true)
            }
        }
    }

    /// With [`Comparison::Fss`], one spline gate ([`comparison::spline_fss`]): one round
    /// whatever the number of lines, then one truncation; with the adder, the kernel's
    /// comparison tree.
    fn max_of_lines(
        &mut self,
        lines: &Lines,
        x: &[Z64],
        out: &mut [Z64],
        grad: Option<&mut [Z64]>,
        scratch: &mut [Z64],
    ) -> Result<(), MpcError> {
        let spline = match self.comparison {
            Comparison::A2b => None,
            Comparison::Fss => self.spline(SplineOf::Lines(*lines))?,
        };
        let Some(spline) = spline else {
            return generic::max_of_lines(self, lines, x, out, grad, scratch);
        };
        let w = spline.width(self.frac_bits());
        comparison::spline_fss(&mut self.link, &mut self.corr, &spline, x, out, grad, w)?;
        self.shift_right(out, spline.shift())
    }

    /// With [`Comparison::Fss`] and `lo <= hi`, one spline gate ([`comparison::spline_fss`]):
    /// one round, exact (integer slopes need no truncation); otherwise the kernel's two
    /// comparisons and selects.
    fn clamp(
        &mut self,
        x: &mut [Z64],
        lo: f64,
        hi: f64,
        grad: Option<&mut [Z64]>,
        scratch: &mut [Z64],
    ) -> Result<(), MpcError> {
        let spline = match self.comparison {
            Comparison::Fss if self.public(lo).to_signed() <= self.public(hi).to_signed() => {
                self.spline(SplineOf::Clamp(lo.to_bits(), hi.to_bits()))?
            }
            _ => None,
        };
        let Some(spline) = spline else {
            return generic::clamp(self, x, lo, hi, grad, scratch);
        };
        let n = x.len();
        let out = &mut scratch[..n];
        let w = spline.width(self.frac_bits());
        comparison::spline_fss(&mut self.link, &mut self.corr, &spline, x, out, grad, w)?;
        x.copy_from_slice(out);
        Ok(())
    }

    /// With [`Comparison::Fss`], one spline gate of width [`RecipPieces::width`] over the
    /// 127 knots ([`Spline::reciprocal`]): one round, then one truncation; with the adder,
    /// the kernel's comparisons at that width and one product.
    fn reciprocal_pieces(
        &mut self,
        s: &[Z64],
        out: &mut [Z64],
        scratch: &mut [Z64],
    ) -> Result<(), MpcError> {
        if self.comparison == Comparison::A2b {
            return generic::reciprocal_pieces(self, s, out, scratch);
        }
        let spline = self
            .spline(SplineOf::Reciprocal)?
            .expect("the reciprocal's spline is always built");
        let w = RecipPieces::new(self.frac_bits()).width();
        comparison::spline_fss(&mut self.link, &mut self.corr, &spline, s, out, None, w)?;
        self.shift_right(out, spline.shift())
    }

    fn select(
        &mut self,
        bits: &[Z64],
        a: &[Z64],
        b: &[Z64],
        out: &mut [Z64],
    ) -> Result<(), MpcError> {
        protocols::select(&mut self.link, &mut self.corr, bits, a, b, out)
    }
}
