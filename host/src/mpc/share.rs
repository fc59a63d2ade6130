//! Additive secret sharing in Z_2^64 and the names of the two parties.
//!
//! A value `x` is split as `x = x0 + x1 (mod 2^64)` with `x0` drawn uniformly by a
//! cryptographic RNG and `x1 = x - x0`. Each share alone is uniform in Z_2^64, whatever
//! `x` is.
//!
//! # Security
//! Perfect: the distribution of either share is the uniform distribution and does not
//! depend on `x`. The RNG must be cryptographic (the callers use ChaCha20 seeded from the
//! operating system, or from a test seed in tests).
//!
//! # Communication
//! The data owner sends one share (8 bytes per element) to each party; nothing between
//! the parties.

use rand::{CryptoRng, RngCore};
use ringnn_core::Z64;
use std::fmt;

/// One of the two computing parties.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PartyId {
    /// Party 0: adds public constants, holds the seeded half of the dealer's material.
    P0,
    /// Party 1: receives the dealer's corrections.
    P1,
}

impl PartyId {
    /// Both parties, in order.
    pub const BOTH: [PartyId; 2] = [PartyId::P0, PartyId::P1];

    /// 0 or 1.
    pub const fn index(self) -> usize {
        match self {
            PartyId::P0 => 0,
            PartyId::P1 => 1,
        }
    }

    /// The other party.
    pub const fn peer(self) -> PartyId {
        match self {
            PartyId::P0 => PartyId::P1,
            PartyId::P1 => PartyId::P0,
        }
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "party {}", self.index())
    }
}

/// Splits every value of `x` into two additive shares: `[shares of party 0, shares of
/// party 1]`. See the [module documentation](self).
pub fn share<R: RngCore + CryptoRng>(x: &[Z64], rng: &mut R) -> [Vec<Z64>; 2] {
    let s0: Vec<Z64> = x.iter().map(|_| Z64(rng.next_u64())).collect();
    let s1 = x.iter().zip(&s0).map(|(&v, &r)| v - r).collect();
    [s0, s1]
}

/// Adds the two parties' shares back together.
///
/// # Panics
/// If the lengths differ.
pub fn reconstruct(s0: &[Z64], s1: &[Z64]) -> Vec<Z64> {
    assert_eq!(s0.len(), s1.len(), "reconstruct: length mismatch");
    s0.iter().zip(s1).map(|(&a, &b)| a + b).collect()
}
