//! The PRG under the DCF: fixed-key AES-128 in Matyas-Meyer-Oseas mode, one block per
//! tweak.
//!
//! `H(s, i) = π(s ⊕ i) ⊕ s ⊕ i`, where `π` is AES-128 under a fixed public key
//! ([`FIXED_KEY`]) and the tweak `i` is a small block index. A seed `s` is 128 bits with
//! its lowest bit clear (127 random bits); its expansion is the sequence of blocks
//! `H(s, 0), H(s, 1), H(s, 2), ...`:
//! - block [`TWEAK_LEFT`] = 0: the left child seed (bits 1..128) and the left control bit
//!   (bit 0),
//! - block [`TWEAK_RIGHT`] = 1: the same for the right child,
//! - blocks from [`TWEAK_VALUES`] = 2 on: the value words, two 64-bit words per block
//!   (low half first). A DCF with `w` output words uses `2w` of them: the left child's
//!   `w` words, then the right child's.
//!
//! A node's evaluation needs only the blocks of the direction it takes: one seed block
//! and `ceil(w / 2)` value blocks, which [`Mmo`] computes for many nodes with one call to
//! [`BlockEncrypt::encrypt_blocks`] (AES-NI pipelines eight blocks at a time; the `aes`
//! crate picks AES-NI at run time and falls back to a constant-time software AES).
//!
//! # Assumption
//! AES-128 under a fixed, public key is modelled as a random permutation `π` (the
//! ideal-permutation model of fixed-key garbling, Bellare-Hoang-Keelveedhi-Rogaway 2013,
//! and of Guo-Katz-Wang-Yu 2020, whose tweakable hash `π(σ(x) ⊕ i) ⊕ σ(x) ⊕ i` is this one
//! with `σ` the identity, enough here because a seed is never correlated with another
//! seed the adversary knows: it is uniform and secret or it is the adversary's own).
//! Under it, for a seed with 127 bits of min-entropy unknown to the adversary, the
//! outputs `H(s, i)` for distinct tweaks look uniform to anyone who makes `q` calls to
//! `π`, except with probability about `q T / 2^127` for `T` seed-tweak pairs in use. The
//! feed-forward `⊕ s ⊕ i` makes the output non-invertible although the key is public.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128, Block};
use std::sync::OnceLock;

/// The public, fixed AES-128 key of the PRG. Any constant would do; changing it changes
/// every key, so it is part of the key format's version.
pub const FIXED_KEY: [u8; 16] = *b"ringnn fss prg 1";

/// Tweak of the left child's block.
pub const TWEAK_LEFT: u32 = 0;
/// Tweak of the right child's block.
pub const TWEAK_RIGHT: u32 = 1;
/// Tweak of the first value block.
pub const TWEAK_VALUES: u32 = 2;

/// The seed bits of a block: all but bit 0, which carries a control bit.
pub const SEED_MASK: u128 = !1;

fn cipher() -> &'static Aes128 {
    static CIPHER: OnceLock<Aes128> = OnceLock::new();
    CIPHER.get_or_init(|| Aes128::new(&FIXED_KEY.into()))
}

/// Batched calls of `H(s, i)`: push seed-tweak pairs, [`run`](Mmo::run) them all with one
/// AES call, read the outputs in push order.
#[derive(Default)]
pub struct Mmo {
    inputs: Vec<u128>,
    blocks: Vec<Block>,
    outputs: Vec<u128>,
}

impl Mmo {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the pushed inputs (keeps the buffers).
    pub fn clear(&mut self) {
        self.inputs.clear();
    }

    /// Queues `H(seed, tweak)`.
    pub fn push(&mut self, seed: u128, tweak: u32) {
        self.inputs.push(seed ^ u128::from(tweak));
    }

    /// Computes every queued call; the outputs, in push order, until the next `run`.
    pub fn run(&mut self) -> &[u128] {
        self.blocks.clear();
        self.blocks
            .extend(self.inputs.iter().map(|x| Block::from(x.to_le_bytes())));
        cipher().encrypt_blocks(&mut self.blocks);
        self.outputs.clear();
        self.outputs.extend(
            self.blocks
                .iter()
                .zip(&self.inputs)
                .map(|(&b, &x)| u128::from_le_bytes(b.into()) ^ x),
        );
        &self.outputs
    }
}

/// Splits a seed block into the seed (bit 0 cleared) and the control bit (bit 0).
pub(super) const fn split(block: u128) -> (u128, u64) {
    (block & SEED_MASK, (block & 1) as u64)
}

/// Word `k` of a run of value blocks: the low half of block `k / 2` for even `k`, the high
/// half for odd `k`. The callers index within the blocks they pushed.
pub(super) fn word(blocks: &[u128], k: usize) -> u64 {
    (blocks[k / 2] >> (64 * (k % 2))) as u64
}

/// One node's full expansion, computed call by call: the reference that the batched
/// evaluation is tested against, and what key generation needs of each party.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Expansion {
    /// The left and right child seeds (bit 0 clear).
    pub seeds: [u128; 2],
    /// The left and right control bits (0 or 1).
    pub bits: [u64; 2],
    /// `2 w` value words: the left child's `w`, then the right child's.
    pub values: Vec<u64>,
}

/// Expands `seed` into two children and `2 w` value words.
pub fn expand(seed: u128, w: usize) -> Expansion {
    let mut mmo = Mmo::new();
    mmo.push(seed, TWEAK_LEFT);
    mmo.push(seed, TWEAK_RIGHT);
    for q in 0..w as u32 {
        mmo.push(seed, TWEAK_VALUES + q);
    }
    let out = mmo.run();
    let (left, tl) = split(out[0]);
    let (right, tr) = split(out[1]);
    Expansion {
        seeds: [left, right],
        bits: [tl, tr],
        values: (0..2 * w).map(|k| word(&out[2..], k)).collect(),
    }
}

/// `w` output words from a leaf seed: the first `w` value words of its expansion.
pub fn convert(seed: u128, w: usize) -> Vec<u64> {
    let mut mmo = Mmo::new();
    for q in 0..w.div_ceil(2) as u32 {
        mmo.push(seed, TWEAK_VALUES + q);
    }
    let out = mmo.run();
    (0..w).map(|k| word(out, k)).collect()
}
