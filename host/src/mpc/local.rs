//! Both parties and the dealer in one process: two threads joined by an in-memory channel.
//!
//! This is how the tests run every protocol, and how a single machine can run the
//! two-party computation end to end (for measuring communication, say) before separate
//! processes exist. Each thread builds its own [`Mpc`] and runs the same closure, exactly
//! as two servers would run the same program.

use super::channel::MemChannel;
use super::comparison::Comparison;
use super::dealer::{Dealer, Seed, SeededCorrelations};
use super::engine::{Mpc, Truncation};
use super::PartyId;
use ringnn_core::fixed::FracBits;
use std::sync::Arc;

/// The engine each thread of [`run_in_process`] gets.
pub type LocalMpc = Mpc<MemChannel, SeededCorrelations>;

/// Settings of an in-process run.
#[derive(Clone, Copy, Debug)]
pub struct LocalConfig {
    /// Fractional bits of the fixed-point format.
    pub frac_bits: FracBits,
    /// The dealer's master seed (`None`: from the operating system).
    pub dealer_seed: Option<Seed>,
    /// The truncation protocol.
    pub truncation: Truncation,
    /// The comparison protocol.
    pub comparison: Comparison,
}

impl LocalConfig {
    /// `f` fractional bits, an OS-seeded dealer, dealer-assisted truncation, the adder
    /// comparison.
    pub fn new(frac_bits: FracBits) -> Self {
        LocalConfig {
            frac_bits,
            dealer_seed: None,
            truncation: Truncation::default(),
            comparison: Comparison::default(),
        }
    }
}

/// Runs `body` as party 0 and as party 1 in two threads, each with its own engine, and
/// returns both results `[party 0's, party 1's]`.
///
/// If one side fails and returns (or panics), its channel closes and the other side's
/// next exchange fails with [`MpcError::Channel`](super::MpcError::Channel) instead of
/// waiting forever.
///
/// # Panics
/// If `body` panics in either thread (the panic is passed on).
pub fn run_in_process<T, F>(cfg: &LocalConfig, body: F) -> [T; 2]
where
    T: Send,
    F: Fn(&mut LocalMpc) -> T + Sync,
{
    let dealer = Arc::new(match cfg.dealer_seed {
        Some(s) => Dealer::from_seed(s),
        None => Dealer::from_entropy(),
    });
    let [c0, c1] = dealer.correlations();
    let (ch0, ch1) = MemChannel::pair();
    let body = &body;
    std::thread::scope(|s| {
        let run = move |party, ch, corr| {
            move || {
                let mut e = Mpc::new(party, cfg.frac_bits, ch, corr)
                    .with_truncation(cfg.truncation)
                    .with_comparison(cfg.comparison);
                body(&mut e)
            }
        };
        let h0 = s.spawn(run(PartyId::P0, ch0, c0));
        let h1 = s.spawn(run(PartyId::P1, ch1, c1));
        let r0 = h0.join();
        let r1 = h1.join();
        match (r0, r1) {
            (Ok(a), Ok(b)) => [a, b],
            (Err(p), _) | (_, Err(p)) => std::panic::resume_unwind(p),
        }
    })
}
