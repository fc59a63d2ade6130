//! Computes, on the host, the ROW lines of a few checkpoints of the precision study, in the
//! firmware's format: `scripts/firmware` checks that the device logged the same lines, bit
//! for bit (ROW lines carry errors only, no timing).
//!
//! Run: `cargo run --release --target x86_64-unknown-linux-gnu --example checkpoints`
//! inside `firmware/`.

use ringnn_core::approx::{ExpApprox, TanhApprox};
use ringnn_firmware::func::Func;
use ringnn_firmware::report::{write_row, LineSink};
use ringnn_firmware::study::{measure, Buffers};
use ringnn_firmware::ticks::TickCounter;

/// The host has no instruction counter; ROW lines do not use one.
struct NoTicks;

impl TickCounter for NoTicks {
    fn restart(&mut self) {}
    fn elapsed(&mut self) -> Option<u32> {
        Some(0)
    }
}

/// The checkpoints: one per family, at low, middle and high precision.
const CHECKPOINTS: [(Func, u32); 8] = [
    (Func::Exp(ExpApprox::Pwl(4)), 16),
    (Func::Exp(ExpApprox::Pwl(8)), 24),
    (Func::Exp(ExpApprox::Taylor(8)), 8),
    (Func::Exp(ExpApprox::Taylor(4)), 13),
    (Func::Exp(ExpApprox::Limit8), 12),
    (Func::Exp(ExpApprox::Exact), 20),
    (Func::Tanh(TanhApprox::Hard), 10),
    (Func::Tanh(TanhApprox::Exact), 24),
];

fn main() {
    let mut buf = Box::new(Buffers::new());
    let mut sink = LineSink::new(|s: &str| println!("{s}"));
    for (func, f) in CHECKPOINTS {
        let row = measure(func, f, &mut buf, &mut NoTicks).expect("checkpoint measurable");
        write_row(&mut sink, &row).expect("stdout");
    }
}
