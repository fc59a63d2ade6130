//! Function secret sharing from the dealer: a distributed comparison function (DCF) over
//! `Z_2^n` and the sign and ReLU gates built on it. The primitive layer: keys, their bytes
//! and their evaluation; the dealer streams DReLU and ReLU keys
//! ([`crate::mpc::dealer::keys`]) and the engine compares and computes ReLU with them
//! ([`crate::mpc::comparison`]).
//!
//! # Pieces
//! - [`prg`]: the PRG, fixed-key AES-128 (AES-NI through the `aes` crate), batched.
//! - [`dcf`]: the DCF of Boyle et al. (Eurocrypt 2021): `x < α ? β : 0` for `n`-bit `x`,
//!   `β` in `Z_2^64` (or up to 16 words of it), keys of `19 + n (17 + 8w) + 8w` bytes.
//! - [`codec`]: the keys' bytes, parsed strictly.
//! - [`gate`]: DReLU (`[x ≥ 0]`, shared, no message) and ReLU (`ŷ = ReLU(x) + r_out` and the
//!   masked derivative bit, one round of 16 bytes per element per party) on the masked
//!   input `x̂ = x + r_in`, at full width or at a reduced width `m` for `|x| < 2^(m-1)`.
//! - [`sim`]: the gates between a simulated dealer and two parties, counting bytes.
//!
//! # Why the `aes` crate and not `fss-rs`
//! `fss-rs` (read in its repository: `src/dcf.rs`, `src/prg.rs`) renders the same DCF
//! faithfully, but for this use it falls short on speed and on input handling: its
//! AES-128 MMO PRG takes four AES keys that both parties must share, encrypts one block
//! per call (its comment: parallel AES "does not give noticeable performance
//! improvement"), and walks every point alone (threads through rayon, no batching of AES
//! calls across points or keys); one group element per key (no vector `β`, which the ReLU
//! gate needs); no byte format for keys, so the strict parser would be ours anyway; and
//! shape mismatches `assert!`. The DCF itself is about 200 lines, so we own it and keep
//! the key format, the batched walk (one AES call per tree level for [`dcf::LANES`]
//! points, which AES-NI pipelines eight blocks deep) and the vector outputs under this
//! crate's tests. The `aes` crate (RustCrypto) is the well-kept part: it detects AES-NI at
//! run time and otherwise falls back to a bitsliced, constant-time software AES.
//!
//! # Sizes
//! | key | bytes per element and party |
//! | --- | --- |
//! | DCF, `n = 64`, one word | 1627 |
//! | DCF, `n = 32`, one word | 827 |
//! | DReLU, `m = 64` / `m = 32` / `m = 16` | 1613 / 813 / 413 |
//! | ReLU, `m = 64` / `m = 32` / `m = 16` | 2157 / 1085 / 557 |
//!
//! # Speed
//! One thread, best of 3 runs of 50 000, on the 2-core development machine with AES-NI
//! (shared with other work: load average 5 to 6 during the run, so expect ±20 % between
//! runs), measured with
//! `nice -n 15 cargo test --release -p ringnn-host --lib mpc::fss -- --ignored --nocapture`
//! (`tests/bench.rs`):
//!
//! | operation | `n = 64` | `n = 32` |
//! | --- | --- | --- |
//! | DCF [`gen`] (key pairs/s) | 320 000 | 670 000 |
//! | DCF [`eval_batch`], 50 000 distinct keys (evals/s) | 770 000 | 1 720 000 |
//! | DCF [`eval_many`], one key (evals/s) | 1 410 000 | 2 840 000 |
//! | DCF [`eval`], one call per point (evals/s) | 610 000 | 1 170 000 |
//! | ReLU [`relu_gen`], `m = 64` / `m = 32` (key pairs/s) | 317 000 | 607 000 |
//! | ReLU [`relu_eval_many`], `m = 64` / `m = 32` (evals/s per party) | 990 000 | 1 420 000 |
//!
//! An `n = 64` evaluation is 129 AES blocks, so one key's [`eval_many`] runs AES at about
//! 180 million blocks/s. [`eval_batch`] over keys that do not fit in cache loses about a
//! third to memory (1.18 million/s over 512 keys that stay cached): each key's seed,
//! value and control-bit corrections are three separate arrays.
//!
//! # Security
//! Semi-honest servers that collude neither with each other nor with the dealer, as in
//! [`dealer`](super::dealer): the dealer knows every mask and both keys, is trusted for
//! correctness, and together with one server could unmask the other's openings.
//! - *What each party holds*: its key (its own root seed, the correction words both keys
//!   share, its additive shares of the dealer's masks) and the public masked input
//!   `x̂ = x + r_in`, where `r_in` is uniform in `Z_2^64` and unknown to it, so `x̂`
//!   says nothing about `x`.
//! - *What is opened*: nothing for DReLU (its output stays shared); for ReLU, `ŷ =
//!   ReLU(x) + r_out` and `d̂ = [x ≥ 0] + r_d`, both masked by fresh uniform dealer words,
//!   so both are uniform whatever `x` is.
//! - *Why one key says nothing about `α`* (the gates' `α` is the mask `r_in`): in the
//!   tree, the other party's seeds on `α`'s path are PRG outputs of a seed this party
//!   never sees. Every correction word is a sum involving such an output (its seed
//!   correction, value correction, control-bit correction and leaf correction each
//!   include a term of the other party's expansion), so under the PRG's assumption
//!   ([`prg`]) the key is indistinguishable from one for any other `α`, `β`: the security
//!   proof of Boyle et al., a hybrid argument that replaces the PRG outputs level by
//!   level. Tested statistically (first order): the bit frequencies of one party's keys,
//!   and of its outputs, for two different `α` and `β` agree.
//! - *Leaks by construction*: the key's shape (`n`, `w`), hence the width `m`, which is
//!   public program structure. `x` outside the reduced width's range gives a wrong
//!   (documented) answer, not a leak.
//! - Keys hold seeds: their [`Debug`] shows the shape only.

pub mod codec;
pub mod dcf;
pub mod gate;
pub mod prg;
pub mod sim;

#[cfg(test)]
mod tests;

pub use dcf::{eval, eval_batch, eval_many, eval_vec, gen, gen_vec, DcfKey};
pub use gate::{
    drelu_eval, drelu_eval_many, drelu_gen, relu_eval, relu_eval_many, relu_gen, DreluKey, ReluKey,
    ReluMasks, ReluShare,
};

/// What went wrong making, reading or evaluating FSS keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FssError {
    /// A DCF's input width outside 1..=64.
    #[error("input width n = {n} is outside 1..=64")]
    InputBits {
        /// The width asked for or read.
        n: u32,
    },
    /// A DCF's number of output words outside 1..=16.
    #[error("{w} output words is outside 1..=16")]
    OutputWords {
        /// The number asked for or read.
        w: usize,
    },
    /// A comparison point wider than the input.
    #[error("alpha = {alpha:#x} does not fit in {n} bits")]
    AlphaTooWide {
        /// The point.
        alpha: u64,
        /// The input width.
        n: u32,
    },
    /// A batch of key generations whose lengths disagree.
    #[error("key batch of {keys} keys with {betas} output words, {roots} root pairs and {bytes} body bytes")]
    BatchShape {
        /// Keys (comparison points).
        keys: usize,
        /// Output words given in all.
        betas: usize,
        /// Root seed pairs given.
        roots: usize,
        /// Bytes given for the bodies.
        bytes: usize,
    },
    /// A gate's width outside 2..=64.
    #[error("gate width m = {m} is outside 2..=64")]
    GateBits {
        /// The width asked for or read.
        m: u32,
    },
    /// Fewer bytes than the format needs.
    #[error("{what}: {got} bytes is too short, the format needs {need}")]
    Short {
        /// What was being read.
        what: &'static str,
        /// Bytes needed (the header's, when the header itself is cut).
        need: usize,
        /// Bytes given.
        got: usize,
    },
    /// Bytes after the end of a well-formed input.
    #[error("{what}: {got} bytes is too long, the format has {expected}")]
    Long {
        /// What was being read.
        what: &'static str,
        /// Bytes the header implies.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A version byte this build does not read.
    #[error("{what}: version {got}, this build reads version {expected}")]
    Version {
        /// What was being read.
        what: &'static str,
        /// The version byte read.
        got: u8,
        /// The version this build writes and reads.
        expected: u8,
    },
    /// A gate key of another kind.
    #[error("{what}: kind byte {got}, expected {expected}")]
    Kind {
        /// What was being read.
        what: &'static str,
        /// The kind byte read.
        got: u8,
        /// The kind expected.
        expected: u8,
    },
    /// A control-bit byte with bits other than the two control bits.
    #[error("DCF key: control-bit byte {byte:#04x} at level {level} (a key has only 0..=3)")]
    ControlBits {
        /// The level (0 = root).
        level: u32,
        /// The byte read.
        byte: u8,
    },
    /// A seed with bit 0 set, which no key generation writes.
    #[error("DCF key: the {} has bit 0 set (always clear in a key)", seed_name(*.level))]
    SeedBit {
        /// The level of the seed correction, `None` for the root seed.
        level: Option<u32>,
    },
    /// A gate key whose DCF has the wrong shape for its width.
    #[error("{what}: its DCF has n = {n} and {w} words, the gate needs n = {want_n} and {want_w}")]
    InnerShape {
        /// What was being read.
        what: &'static str,
        /// The DCF's input width.
        n: u32,
        /// The DCF's output words.
        w: usize,
        /// The input width the gate needs.
        want_n: u32,
        /// The output words the gate needs.
        want_w: usize,
    },
    /// Batched evaluation with as many keys as points, it was not.
    #[error("{keys} keys for {points} points")]
    Lengths {
        /// Keys given.
        keys: usize,
        /// Points given.
        points: usize,
    },
}

fn seed_name(level: Option<u32>) -> String {
    match level {
        None => "root seed".to_string(),
        Some(l) => format!("seed correction of level {l}"),
    }
}
