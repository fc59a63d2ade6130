//! The mask stream of one dealer request: AES-128 in counter mode.
//!
//! Every mask, triple share and random bit a party draws for request number `k` comes
//! from stream `k` of its 32-byte seed, and the dealer regenerates the same stream to
//! compute party 1's correction. Those words are most of what the two-party engine
//! draws (an mlp step on the adder draws about 29 MB of them per party), and with
//! ChaCha20 producing them took a quarter of a step (profile in docs/performance.md).
//!
//! Stream `k` is AES-128 in counter mode under a key derived from the seed: the first 16
//! bytes of ChaCha20 stream `k` of the seed. Block `i` of the stream is
//! `AES_key(i as a 128-bit little-endian integer)`, and word `j` of the stream is the
//! little-endian `u64` in bytes `8 (j mod 2) ..` of block `j / 2`. With AES-NI this is
//! three times ChaCha20's speed here (`mask_stream_speed`, ignored).
//!
//! # Security
//! A seed is 32 uniform bytes known to one party and the dealer; ChaCha20 keyed by it is a
//! PRF of the stream number, so each request's AES key is uniform and independent of
//! every other request's. AES-128 in counter mode under a uniform key is a PRG: its
//! output is indistinguishable from uniform for far more than the 2^64 blocks a stream
//! could ever address (a request draws at most a few hundred million words). No key
//! serves two streams and no counter value repeats within one, so no block of keystream
//! masks two values. The security level is AES-128's, the same as the FSS keys' PRG.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128, Block};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ringnn_core::Z64;

use super::Seed;

/// Blocks encrypted per call of the cipher (AES-NI works on several at once).
const BATCH: usize = 64;

/// Request `k`'s stream of `seed` (see the module documentation).
pub struct MaskStream {
    cipher: Aes128,
    /// The word the next draw starts at.
    word: u64,
}

impl MaskStream {
    /// Stream `k` of `seed`.
    pub fn new(seed: &Seed, k: u64) -> Self {
        let mut kdf = ChaCha20Rng::from_seed(*seed);
        kdf.set_stream(k);
        let mut key = [0u8; 16];
        kdf.fill_bytes(&mut key);
        MaskStream {
            cipher: Aes128::new(&key.into()),
            word: 0,
        }
    }

    /// Moves to word `word` of the stream.
    #[cfg(test)]
    pub fn seek(&mut self, word: u64) {
        self.word = word;
    }

    /// Fills `out` with the next `out.len()` words.
    pub fn fill(&mut self, out: &mut [u64]) {
        // A draw that starts in the middle of a block takes that block's upper half.
        let mut start = 0;
        if self.word % 2 == 1 && !out.is_empty() {
            out[0] = self.blocks(self.word / 2, 1)[0][1];
            self.word += 1;
            start = 1;
        }
        for chunk in out[start..].chunks_mut(2 * BATCH) {
            self.put(chunk);
        }
    }

    /// Fills `out` (at most `2 BATCH` words) from the block holding the current word,
    /// which starts a block.
    fn put(&mut self, out: &mut [u64]) {
        let (len, words) = (out.len(), self.blocks(self.word / 2, out.len().div_ceil(2)));
        let mut pairs = out.chunks_exact_mut(2);
        for (o, w) in pairs.by_ref().zip(&words) {
            o.copy_from_slice(w);
        }
        if let [last] = pairs.into_remainder() {
            *last = words[len / 2][0];
        }
        self.word += len as u64;
    }

    /// Blocks `first ..` (`n` at most `BATCH`) as pairs of little-endian words.
    fn blocks(&self, first: u64, n: usize) -> [[u64; 2]; BATCH] {
        let mut blocks = [Block::default(); BATCH];
        for (i, b) in blocks[..n].iter_mut().enumerate() {
            *b = (u128::from(first) + i as u128).to_le_bytes().into();
        }
        self.cipher.encrypt_blocks(&mut blocks[..n]);
        let mut words = [[0u64; 2]; BATCH];
        for (w, b) in words.iter_mut().zip(&blocks[..n]) {
            let x = u128::from_le_bytes(b.as_slice().try_into().expect("16 bytes"));
            *w = [x as u64, (x >> 64) as u64];
        }
        words
    }

    /// The next `n` words.
    pub fn words(&mut self, n: usize) -> Vec<u64> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }

    /// The next `n` words as ring elements.
    pub fn ring(&mut self, n: usize) -> Vec<Z64> {
        self.words(n).into_iter().map(Z64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Word `j` by the definition: block `j / 2` encrypted on its own.
    fn word(seed: &Seed, k: u64, j: u64) -> u64 {
        let s = MaskStream::new(seed, k);
        let mut b: Block = u128::from(j / 2).to_le_bytes().into();
        s.cipher.encrypt_block(&mut b);
        let h = if j.is_multiple_of(2) {
            &b[..8]
        } else {
            &b[8..]
        };
        u64::from_le_bytes(h.try_into().unwrap())
    }

    #[test]
    fn draws_of_any_sizes_give_the_stream_by_its_definition() {
        let seed = [3u8; 32];
        let mut s = MaskStream::new(&seed, 7);
        let mut all = Vec::new();
        // Odd sizes start draws in the middle of a block; 300 spans several batches.
        for n in [1, 2, 3, 0, 129, 300, 5, 128, 1] {
            all.extend(s.words(n));
        }
        for (j, &w) in all.iter().enumerate() {
            assert_eq!(w, word(&seed, 7, j as u64), "word {j}");
        }
        let mut t = MaskStream::new(&seed, 7);
        t.seek(5);
        assert_eq!(t.words(3), all[5..8]);
    }

    #[test]
    fn streams_of_other_requests_and_seeds_differ() {
        let a = MaskStream::new(&[1; 32], 0).words(4);
        assert_ne!(a, MaskStream::new(&[1; 32], 1).words(4));
        assert_ne!(a, MaskStream::new(&[2; 32], 0).words(4));
        assert_eq!(a, MaskStream::new(&[1; 32], 0).words(4));
    }

    #[test]
    fn words_are_balanced() {
        // 2^16 words: each of the 64 bit positions is set in half of them, within 5 sd.
        let w = MaskStream::new(&[9; 32], 3).words(1 << 16);
        for bit in 0..64 {
            let ones = w.iter().filter(|&&x| x >> bit & 1 == 1).count() as f64;
            let (mean, sd) = (32768.0, (65536.0f64 * 0.25).sqrt());
            assert!((ones - mean).abs() < 5.0 * sd, "bit {bit}: {ones}");
        }
    }

    /// Throughput against ChaCha20 (the earlier stream): `cargo test --release -p
    /// ringnn-host --lib mask_stream_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn mask_stream_speed() {
        let n = 1 << 22;
        let mut v = vec![0u64; n];
        for _ in 0..3 {
            let t = std::time::Instant::now();
            MaskStream::new(&[1; 32], 0).fill(&mut v);
            let aes = t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let mut c = ChaCha20Rng::from_seed([1; 32]);
            v.iter_mut().for_each(|w| *w = c.next_u64());
            let chacha = t.elapsed().as_secs_f64();
            let gb = |s: f64| (8 * n) as f64 / s / 1e9;
            println!(
                "AES-128-CTR {:.2} GB/s, ChaCha20 {:.2} GB/s",
                gb(aes),
                gb(chacha)
            );
        }
    }
}
