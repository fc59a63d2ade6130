//! Tests of the FSS layer: the DCF against the comparison it shares, the gates against
//! `Plain` and the plain formulas, the key bytes against every corruption we can think of.

mod bench;
mod codec;
mod dcf;
mod gate;

use super::dcf::DcfKey;
use super::prg;
use crate::mpc::PartyId;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

pub(super) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// The paper's Eval, one node at a time through [`prg::expand`]: the reference for the
/// batched walk.
pub(super) fn reference_eval(party: PartyId, key: &DcfKey, x: u64) -> Vec<u64> {
    let (n, w) = (key.n as usize, key.w);
    let neg = party == PartyId::P1;
    let sign = |v: u64| if neg { v.wrapping_neg() } else { v };
    let mut s = key.seed;
    let mut t = party.index() as u64;
    let mut out = vec![0u64; w];
    for i in 0..n {
        let dir = ((x >> (n - 1 - i)) & 1) as usize;
        let e = prg::expand(s, w);
        for (j, o) in out.iter_mut().enumerate() {
            let corr = if t == 1 { key.v_cw(i, j) } else { 0 };
            *o = o.wrapping_add(sign(e.values[dir * w + j].wrapping_add(corr)));
        }
        let tcw = u64::from((key.t_cw(i) >> dir) & 1);
        let (sn, tn) = if t == 1 {
            (e.seeds[dir] ^ key.s_cw(i), e.bits[dir] ^ tcw)
        } else {
            (e.seeds[dir], e.bits[dir])
        };
        s = sn;
        t = tn;
    }
    let c = prg::convert(s, w);
    for (j, o) in out.iter_mut().enumerate() {
        let corr = if t == 1 { key.leaf(j) } else { 0 };
        *o = o.wrapping_add(sign(c[j].wrapping_add(corr)));
    }
    out
}

/// `β` if `x < α` on `n` bits, else 0.
pub(super) fn lt(alpha: u64, x: u64, n: u32, beta: u64) -> u64 {
    let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
    if x & mask < alpha {
        beta
    } else {
        0
    }
}
