//! The comparison protocols of the two-party engine, and the choice between them.
//!
//! Every comparison of the kernel (ReLU, max pooling, max-of-lines, hard tanh, arg-max,
//! the reciprocal's normalisation) goes through
//! [`Engine::is_negative`](ringnn_core::Engine::is_negative), so this one primitive
//! decides what all of them cost. Two protocols compute it, with identical results on every ring element:
//!
//! - [`Comparison::A2b`]: the arithmetic-to-binary adder over the dealer's AND triples
//!   ([`protocols::is_negative`](super::protocols::is_negative)): 8 rounds, 45.375 bytes
//!   per element per party online, about 30.6 bytes per element to party 1 offline.
//!   ReLU and the compared differences of max pooling and arg-max run its carry chain
//!   over the reduced width [`fss_width`]`(f)` only
//!   ([`protocols::is_negative_width`](super::protocols::is_negative_width): 37.875
//!   bytes at 54 bits), exact where `Plain` counts no input beyond it, as FSS's gates.
//! - [`Comparison::Fss`]: function secret sharing ([`is_negative_fss`]): the dealer's
//!   DReLU keys ([`super::fss::gate`]) on the opened masked input: 1 round, 8 bytes per
//!   element per party online, one key of 1613 bytes per element to *each* party offline
//!   (at the full width `m = 64`).
//!
//! With `fss`, ReLU does not go through `is_negative` and a select (2 rounds): [`relu_fss`]
//! evaluates the dealer's ReLU keys on the same kind of opened masked input and keeps the
//! output shared: 1 round, 8 bytes per element per party online, a key of 2157 bytes per
//! element to each party offline at the full width, 1827 at the reduced width of f = 13
//! ([`ringnn_core::engine::fss_width`]; exact where `Plain` counts no input beyond it).
//!
//! With `fss`, max-of-lines and clamp go through the spline gate ([`spline_fss`]): one
//! opening and one ReLU key per element evaluated at every knot, so pwl7 costs what
//! SecureML's `max(0, x)` costs online.
//!
//! `a2b` stays the default so that every pinned count and result of earlier versions
//! holds; the study measures both (`--comparison a2b|fss`).

use super::channel::Channel;
use super::dealer::Correlations;
use super::fss::{drelu_eval_many, relu_eval_many};
use super::protocols::Link;
use super::wire::Tag;
use super::{MpcError, PartyId};
#[cfg(doc)]
use ringnn_core::engine::fss_width;
use ringnn_core::Z64;
use std::fmt;
use std::str::FromStr;

pub mod spline;
pub use spline::{spline_fss, Piece, Spline, SplineError};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_spline;

/// Which protocol computes [`Engine::is_negative`](ringnn_core::Engine::is_negative) on
/// shares. Both parties must use the same one. See the [module documentation](self).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Hash)]
pub enum Comparison {
    /// The arithmetic-to-binary adder over AND triples (`a2b`). The default.
    #[default]
    A2b,
    /// The DReLU gate of function secret sharing on the opened masked input (`fss`).
    Fss,
}

impl Comparison {
    /// Both, by command-line name.
    pub const ALL: [Comparison; 2] = [Comparison::A2b, Comparison::Fss];

    /// The command-line name: `a2b` or `fss`.
    pub fn name(self) -> &'static str {
        match self {
            Comparison::A2b => "a2b",
            Comparison::Fss => "fss",
        }
    }
}

impl FromStr for Comparison {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown comparison '{s}'; valid: a2b, fss"))
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The width of the FSS comparison's keys: the whole ring, so that the result is
/// `[x < 0]` for every `x` in `Z_2^64` read as signed, as `Plain` and the adder give.
pub const FSS_WIDTH: u32 = 64;

/// `[out] = [x < 0]` (0 or 1 at integer scale) from the dealer's DReLU keys of width
/// `width`: exact on every ring element at [`FSS_WIDTH`] = 64, and for
/// `-2^(width-1) <= x < 2^(width-1)` below it (beyond, the sign of `x mod 2^width`).
///
/// Each party sends `x_i + r_i` (its share of `x` plus its share of the dealer's mask
/// `r_in = r_0 + r_1`); both add the two and hold the public `x̂ = x + r_in`. Each
/// evaluates its key on `x̂` ([`drelu_eval_many`]) and gets an additive share of
/// `[x ≥ 0]`; `[x < 0] = 1 - [x ≥ 0]`, where party 0 adds the public 1.
///
/// # Security
/// What is opened: `x̂ = x + r_in` for a fresh `r_in` per element, uniform in `Z_2^64`
/// (each party's share of it is uniform and independent of the other's), so `x̂` is
/// uniform whatever `x` is and each party's view of the opening is simulated by a
/// uniform word. Its key reveals nothing about `r_in` (the DCF's security, under the
/// PRG's assumption: [`super::fss`]), so `x̂` stays a one-time pad. Each `r_in` serves
/// exactly one opening: it belongs to one dealer request counter, which the protocol
/// consumes once. The comparison bit stays shared: nothing derived from `x` is opened.
/// Trust: the dealer knows `r_in` and both keys; it is semi-honest and colludes with
/// neither server ([`super::dealer`]).
///
/// # Communication
/// 1 round; 8 bytes sent per element per party. Offline: [`DreluKey::size`]`(64)` = 1613
/// bytes per element to each party (the mask's shares come from the seeds).
///
/// [`DreluKey::size`]: super::fss::DreluKey::size
///
/// # Errors
/// A channel or dealer failure (keys that do not parse included).
///
/// # Panics
/// If the lengths differ.
pub fn is_negative_fss<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &[Z64],
    out: &mut [Z64],
    width: u32,
) -> Result<(), MpcError> {
    let n = x.len();
    assert_eq!(n, out.len(), "is_negative: length mismatch");
    if n == 0 {
        return Ok(());
    }
    let mat = corr.drelu(n, width)?;
    let x_hat = open_masked(link, "FSS comparison", x, &mat.r)?;
    let party = link.party;
    let ge = drelu_eval_many(party, &mat.keys, &x_hat).map_err(|e| MpcError::Dealer {
        what: "DReLU keys",
        reason: e.to_string(),
    })?;
    corr.recycle(mat.into_buffer());
    let one = Z64(u64::from(party == PartyId::P0));
    for (o, d) in out.iter_mut().zip(ge) {
        *o = one - Z64(d);
    }
    Ok(())
}

/// Each party's share of the public `x̂ = x + r_in`: one round, in which each sends
/// `x_i + r_i` (its shares of `x` and of the dealer's mask) and adds the peer's.
fn open_masked<C: Channel>(
    link: &mut Link<C>,
    during: &'static str,
    x: &[Z64],
    r: &[Z64],
) -> Result<Vec<u64>, MpcError> {
    let mine: Vec<u64> = x.iter().zip(r).map(|(&v, &r)| (v + r).0).collect();
    link.open_add(Tag::MaskedInput, during, &mine)
}

/// `x[i] = max(x[i], 0)` (read as signed, on every ring element) in one round, from the
/// dealer's ReLU keys ([`super::fss::gate`]) with the output kept shared.
///
/// Each party sends `x_i + r_i` and both hold the public `x̂ = x + r_in`, as in
/// [`is_negative_fss`]. Each evaluates its ReLU key on `x̂` ([`relu_eval_many`]): the
/// key was made with the output masks `r_out = r_d = 0`, so its output `y` is directly
/// an additive share of `[x ≥ 0] x = max(x, 0)`, which `Plain`'s ReLU gives bit for bit
/// on every input with `|x| < 2^(width-2)` (no truncation is involved). The engine asks
/// for keys of the reduced width [`fss_width`]`(f)`: beyond that range the gate reads the
/// sign of `x mod 2^width`, and `Plain` counts each such input in
/// [`Health::beyond_fss_width`](ringnn_core::Health::beyond_fss_width) (at width 64 the
/// sign is that of `x` read as signed, on the whole ring). Nothing is sent after the
/// opening.
///
/// With `grad`, each party also evaluates its key at `x̂ - 1 = (x - 1) + r_in` (local, no
/// message) and keeps that evaluation's bit output, a share of `[x - 1 ≥ 0]`: that is
/// `[x > 0]` on every ring element but `-2^63`, where both it and the backward pass's
/// `[-x < 0]` are 1, so `grad` holds exactly the bit
/// [`Relu::backward`](ringnn_core::layers::Relu::backward) would recompute.
///
/// # Security
/// What is opened: only `x̂ = x + r_in`, with a fresh `r_in` per element, uniform in
/// `Z_2^64` and unknown to either party (each holds a uniform share of it), so `x̂` is
/// uniform whatever `x` is; the keys reveal nothing about `r_in` (the DCF's security
/// under the PRG's assumption: [`super::fss`]). The output `max(x, 0)` is never opened:
/// it leaves the gate as additive shares, with no output mask needed (the key's share
/// words of `r_out = 0` and `r_d = 0` are fresh random shares of zero). Each `r_in`
/// serves exactly one opening: it belongs to one dealer request counter, consumed once.
/// The second evaluation for `grad`, at the public `x̂ - 1`, is local and its bit stays
/// shared like the output. Trust: the dealer knows `r_in` and both keys; it is
/// semi-honest and colludes with neither server ([`super::dealer`]).
///
/// # Communication
/// 1 round; 8 bytes sent per element per party (one message for the whole call).
/// Offline: [`ReluKey::size`]`(width)` bytes per element to each party: 2157 at 64, 1827
/// at 54 (f = 13).
///
/// [`ReluKey::size`]: super::fss::ReluKey::size
///
/// # Errors
/// A channel or dealer failure (keys that do not parse included).
///
/// # Panics
/// If `grad` is not as long as `x`.
pub fn relu_fss<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    x: &mut [Z64],
    grad: Option<&mut [Z64]>,
    width: u32,
) -> Result<(), MpcError> {
    let n = x.len();
    if let Some(g) = &grad {
        assert_eq!(g.len(), n, "relu: length mismatch");
    }
    if n == 0 {
        return Ok(());
    }
    let mat = corr.relu(n, width)?;
    let x_hat = open_masked(link, "FSS ReLU", x, &mat.r)?;
    let eval = |points: &[u64]| {
        relu_eval_many(link.party, &mat.keys, points).map_err(|e| MpcError::Dealer {
            what: "ReLU keys",
            reason: e.to_string(),
        })
    };
    if let Some(g) = grad {
        let below: Vec<u64> = x_hat.iter().map(|v| v.wrapping_sub(1)).collect();
        for (b, s) in g.iter_mut().zip(eval(&below)?) {
            *b = Z64(s.d);
        }
    }
    for (v, s) in x.iter_mut().zip(eval(&x_hat)?) {
        *v = Z64(s.y);
    }
    corr.recycle(mat.into_buffer());
    Ok(())
}

/// `left[i] = max(left[i], right[i])` and `bits[i] = [left[i] < right[i]]` in one round,
/// from one ReLU key per element on the difference `d = left - right`:
/// `max(left, right) = right + max(d, 0)` and `[left < right] = 1 - [d ≥ 0]`, both
/// outputs of the one evaluation of [`relu_fss`]'s gate at the opened `d̂ = d + r_in`.
/// Where `-2^(width-1) ≤ d < 2^(width-1)` that is `Plain`'s
/// [`max_pair`](ringnn_core::Engine::max_pair) bit for bit, ties going to `left` (at
/// `d = 0` the gate's bit `[d ≥ 0]` is 1); beyond, the gate reads the sign of `d` at
/// `width` bits, as [`is_negative_fss`] does, and `Plain` counts the difference in
/// [`Health::beyond_fss_width`](ringnn_core::Health::beyond_fss_width). The comparison
/// and select of the default (a DReLU key, then a Beaver product: 2 rounds, 24 bytes per
/// element) become one gate: the selection is the gate's output, not a product.
///
/// # Security
/// As [`relu_fss`]: only `d̂`, masked by a fresh uniform `r_in`, is opened; the outputs
/// stay shared.
///
/// # Communication
/// 1 round; 8 bytes sent per element per party. Offline: [`ReluKey::size`]`(width)`
/// bytes per element to each party.
///
/// [`ReluKey::size`]: super::fss::ReluKey::size
///
/// # Errors
/// A channel or dealer failure (keys that do not parse included).
///
/// # Panics
/// If the lengths differ.
pub fn max_pair_fss<C: Channel, R: Correlations + ?Sized>(
    link: &mut Link<C>,
    corr: &mut R,
    left: &mut [Z64],
    right: &[Z64],
    bits: &mut [Z64],
    width: u32,
) -> Result<(), MpcError> {
    let n = left.len();
    assert!(
        right.len() == n && bits.len() == n,
        "max_pair: length mismatch"
    );
    if n == 0 {
        return Ok(());
    }
    let d: Vec<Z64> = left.iter().zip(right).map(|(&l, &r)| l - r).collect();
    let mat = corr.relu(n, width)?;
    let d_hat = open_masked(link, "FSS maximum", &d, &mat.r)?;
    let out = relu_eval_many(link.party, &mat.keys, &d_hat).map_err(|e| MpcError::Dealer {
        what: "ReLU keys",
        reason: e.to_string(),
    })?;
    corr.recycle(mat.into_buffer());
    let one = Z64(u64::from(link.party == PartyId::P0));
    for (i, s) in out.into_iter().enumerate() {
        left[i] = right[i] + Z64(s.y);
        bits[i] = one - Z64(s.d);
    }
    Ok(())
}
