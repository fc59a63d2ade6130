//! What the dealer's requests give a party: shares of triples, backward masks, truncation
//! pairs, AND triples and random bits (the FSS keys' material is in [`super::keys`]), and
//! the offline traffic counted.

use ringnn_core::Z64;

/// Three matrices (or vectors) of shares with `c = a b` once reconstructed.
#[derive(Clone, Debug)]
pub struct Triples {
    /// Shares of `a`.
    pub a: Vec<Z64>,
    /// Shares of `b`.
    pub b: Vec<Z64>,
    /// Shares of `c = a b` (element-wise or matrix product).
    pub c: Vec<Z64>,
}

/// A dense layer's or a convolution's backward masks ([`Request::DenseBackward`](super::Request::DenseBackward),
/// [`Request::ConvBackward`](super::Request::ConvBackward)): shares of a fresh `D` (the output gradient's mask) and of
/// the products of `D` with the forward product's masks `A` and `B`.
#[derive(Clone, Debug)]
pub struct BackwardMasks {
    /// Shares of `D` (dense: `m x n`; convolution: `out_channels x rows`).
    pub d: Vec<Z64>,
    /// Shares of `C_w` (dense: `A^T D`, `k x n`; convolution: `D U(A)`, `out_channels x
    /// patch`).
    pub c_w: Vec<Z64>,
    /// Shares of `C_x` (dense: `D B^T`, `m x k`; convolution: `B^T D`, `patch x rows`);
    /// empty when the input gradient is not asked for.
    pub c_x: Vec<Z64>,
}

/// Truncation pairs: shares of a uniform `r`, of its top bit, and of
/// `(r mod 2^63) >> d`; for [`Request::TruncScaled`](super::Request::TruncScaled) also the same two of the scaled mask
/// `R = scale r + (scale - 1) 2^62` with the second shift.
#[derive(Clone, Debug)]
pub struct TruncPairs {
    /// Shares of `r`, uniform in Z_2^64.
    pub r: Vec<Z64>,
    /// Shares of `r >> 63` (0 or 1).
    pub msb: Vec<Z64>,
    /// Shares of `(r mod 2^63) >> d`.
    pub low: Vec<Z64>,
    /// Shares of `R >> 63` (scaled pairs; empty otherwise).
    pub scaled_msb: Vec<Z64>,
    /// Shares of `(R mod 2^63) >> d'` (scaled pairs; empty otherwise).
    pub scaled_low: Vec<Z64>,
}

/// The scaled mask of [`Request::TruncScaled`](super::Request::TruncScaled): `scale r + (scale - 1) 2^62`, what
/// `scale c` is masked by when `c = x + 2^62 + r` is opened and `scale x + 2^62` is the
/// value truncated.
pub(crate) fn scaled_mask(r: u64, scale: u64) -> u64 {
    scale
        .wrapping_mul(r)
        .wrapping_add(scale.wrapping_sub(1).wrapping_mul(1 << 62))
}

/// XOR shares of packed AND triples: `w = u & v` bit by bit.
#[derive(Clone, Debug)]
pub struct AndTriples {
    /// Shares of `u`.
    pub u: Vec<u64>,
    /// Shares of `v`.
    pub v: Vec<u64>,
    /// Shares of `w = u & v`.
    pub w: Vec<u64>,
}

/// Random bits `rho`, XOR-shared (packed, 64 per word) and arithmetically shared (one
/// element per bit, bit `i` of word `j` at `64 j + i`).
#[derive(Clone, Debug)]
pub struct RandomBits {
    /// XOR shares, packed.
    pub xor: Vec<u64>,
    /// Arithmetic shares of the same bits.
    pub arith: Vec<Z64>,
}

/// Offline traffic from the dealer to one party.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct OfflineStats {
    /// Requests served.
    pub requests: u64,
    /// Bytes actually received: the seed plus corrections (party 1) and FSS keys (both
    /// parties).
    pub bytes: u64,
    /// Bytes the same material would take written out in full (no seeds).
    pub full_bytes: u64,
}
