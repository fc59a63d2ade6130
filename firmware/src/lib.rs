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
//! Modules in layer order: each uses only modules listed before it.
//!
//! - [`grid`]: the input grids, exactly representable at every studied `f`.
//! - [`infer`]: on-device inference of an MLP exported by the host, checked bit for bit.
//! - [`ticks`]: the counter trait SysTick implements, and the calibration to instructions.
//! - [`func`]: the studied functions (every e^x and tanh approximation), grid and bound.
//! - [`q32`]: the kernel's e^x and tanh approximations in 32-bit Q-format (`fixed` crate).
//! - [`study`]: one row of the table: errors of 64 and 32 bits, wraps, costs, checks.
//! - [`report`]: the text lines the firmware logs, written to any `embedded_io::Write`.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

// Layer by layer (rustfmt keeps the order across blank lines).
pub mod grid;
pub mod infer;
pub mod ticks;

pub mod func;

pub mod q32;

pub mod study;

pub mod report;
