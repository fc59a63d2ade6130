//! The gates end to end between a simulated dealer and two simulated parties, with the
//! keys and the one opening as bytes, counting what each party sends.
//!
//! These are the algorithms the engine will run over its channel; here the "channel" is
//! a byte vector handed from one party to the other, parsed as strictly as the network
//! would be ([`decode_opening`]).

use super::gate::{self, DreluKey, ReluKey, ReluMasks, ReluShare};
use super::FssError;
use crate::mpc::PartyId;
use rand::{CryptoRng, RngCore};

/// What a simulated ReLU layer produced and cost.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReluRun {
    /// `ReLU(x)` per element, unmasked by the simulation (the masks are the dealer's).
    pub relu: Vec<u64>,
    /// The derivative bit `[x ≥ 0]` per element, unmasked likewise.
    pub drelu: Vec<u64>,
    /// Bytes each party sent online: its opening message.
    pub online_bytes_per_party: usize,
    /// Online rounds (messages each party waits for).
    pub rounds: u32,
    /// Bytes of keys the dealer sent each party.
    pub key_bytes_per_party: usize,
}

/// One party's opening message: `y` then `d` of every element, 8 bytes each, little-endian.
pub fn encode_opening(shares: &[ReluShare]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 * shares.len());
    for s in shares {
        b.extend_from_slice(&s.y.to_le_bytes());
        b.extend_from_slice(&s.d.to_le_bytes());
    }
    b
}

/// Parses the peer's opening message of `count` elements.
///
/// # Errors
/// A length other than `16 count` bytes.
pub fn decode_opening(bytes: &[u8], count: usize) -> Result<Vec<ReluShare>, FssError> {
    let need = count.saturating_mul(16);
    super::codec::check_len("ReLU opening", bytes.len(), need)?;
    Ok(bytes
        .chunks_exact(16)
        .map(|c| {
            let (y, d) = c.split_at(8);
            ReluShare {
                y: u64::from_le_bytes(y.try_into().unwrap_or_default()),
                d: u64::from_le_bytes(d.try_into().unwrap_or_default()),
            }
        })
        .collect())
}

/// `ReLU` and its derivative bit of every `x` at width `m`: the dealer draws the masks and
/// keys, the parties evaluate on `x̂ = x + r_in` and exchange one message each (16 bytes
/// per element), then both hold `ŷ` and `d̂`; the simulation removes the masks to return
/// the plain results.
///
/// # Errors
/// `m` outside 2..=64.
pub fn relu_two_party<R: RngCore + CryptoRng>(
    x: &[u64],
    m: u32,
    rng: &mut R,
) -> Result<ReluRun, FssError> {
    // Dealer.
    let mut masks = Vec::with_capacity(x.len());
    let mut wire = [Vec::new(), Vec::new()];
    for _ in x {
        let mk = ReluMasks {
            r_in: rng.next_u64(),
            r_out: rng.next_u64(),
            r_d: rng.next_u64(),
        };
        let (k0, k1) = gate::relu_gen(mk, m, rng)?;
        wire[0].push(k0.to_bytes());
        wire[1].push(k1.to_bytes());
        masks.push(mk);
    }
    let key_bytes_per_party = wire[0].iter().map(Vec::len).sum();
    // The masked input, as the previous gate's opening leaves it with both parties.
    let x_hat: Vec<u64> = x
        .iter()
        .zip(&masks)
        .map(|(&v, mk)| v.wrapping_add(mk.r_in))
        .collect();
    // Each party: parse its keys, evaluate, send its shares.
    let mut sent = Vec::with_capacity(2);
    for party in PartyId::BOTH {
        let keys = wire[party.index()]
            .iter()
            .map(|b| ReluKey::from_bytes(b))
            .collect::<Result<Vec<_>, _>>()?;
        sent.push(encode_opening(&gate::relu_eval_many(party, &keys, &x_hat)?));
    }
    let online_bytes_per_party = sent[0].len();
    // The one round: each party reads the other's message and adds its own shares.
    let mine = decode_opening(&sent[0], x.len())?;
    let theirs = decode_opening(&sent[1], x.len())?;
    let (mut relu, mut drelu) = (Vec::with_capacity(x.len()), Vec::with_capacity(x.len()));
    for ((a, b), mk) in mine.iter().zip(&theirs).zip(&masks) {
        relu.push(a.y.wrapping_add(b.y).wrapping_sub(mk.r_out));
        drelu.push(a.d.wrapping_add(b.d).wrapping_sub(mk.r_d));
    }
    Ok(ReluRun {
        relu,
        drelu,
        online_bytes_per_party,
        rounds: 1,
        key_bytes_per_party,
    })
}

/// `[x ≥ 0]` of every `x` at width `m` on two simulated parties: keys as bytes, then each
/// party's share from `x̂` alone (no message); the simulation adds the two shares.
///
/// # Errors
/// `m` outside 2..=64.
pub fn drelu_two_party<R: RngCore + CryptoRng>(
    x: &[u64],
    m: u32,
    rng: &mut R,
) -> Result<Vec<u64>, FssError> {
    let mut wire = [Vec::new(), Vec::new()];
    let mut x_hat = Vec::with_capacity(x.len());
    for &v in x {
        let r_in = rng.next_u64();
        let (k0, k1) = gate::drelu_gen(r_in, m, rng)?;
        wire[0].push(k0.to_bytes());
        wire[1].push(k1.to_bytes());
        x_hat.push(v.wrapping_add(r_in));
    }
    let mut shares = Vec::with_capacity(2);
    for party in PartyId::BOTH {
        let keys = wire[party.index()]
            .iter()
            .map(|b| DreluKey::from_bytes(b))
            .collect::<Result<Vec<_>, _>>()?;
        shares.push(gate::drelu_eval_many(party, &keys, &x_hat)?);
    }
    Ok(shares[0]
        .iter()
        .zip(&shares[1])
        .map(|(a, b)| a.wrapping_add(*b))
        .collect())
}
