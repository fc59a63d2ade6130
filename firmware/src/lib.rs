//! The board-independent part of ringnn's Cortex-M4F firmware: the precision study, the
//! 32-bit fixed-point evaluation, instruction counting and the report, all `no_std` and
//! allocation-free.
//!
//! # Why a library
//! The firmware binary (`src/main.rs`, built only for `thumbv7em-none-eabihf`) is thin: it
//! owns the board (SysTick, semihosting, defmt) and hands this library an implementation of
//! [`ticks::TickCounter`] and an [`embedded_io::Write`] sink. Everything else lives here, so
//! that the same code is unit-tested on the host with mocks
//! (`cargo test --target x86_64-unknown-linux-gnu --lib`) and so that the host can compute
//! the device's error rows bit for bit (`examples/checkpoints.rs`), which the test script
//! compares with the device log.
//!
//! - [`grid`]: the input grids, exactly representable at every studied `f`.
//! - [`q32`]: the kernel's e^x and tanh approximations in 32-bit Q-format (the `fixed`
//!   crate), mirroring the 64-bit kernel operation for operation.
//! - [`study`]: one row of the table: errors of the 64-bit kernel ([`ringnn_core::Plain`])
//!   and of the 32-bit formats against an `f32` reference, wrap counts, costs, and the
//!   checks a row must pass.
//! - [`ticks`]: the counter trait SysTick implements, and the calibration that turns ticks
//!   into instructions under QEMU's `-icount`.
//! - [`report`]: the text lines the firmware logs, written to any `embedded_io::Write`.
//! - [`infer`]: on-device inference of an MLP exported by the host (`ringnn_host::export`),
//!   with the kernel's `Dense` and `Relu`, checked bit for bit against the host's logits.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod grid;
pub mod infer;
pub mod q32;
pub mod report;
pub mod study;
pub mod ticks;
