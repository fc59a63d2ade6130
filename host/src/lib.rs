//! The std side of ringnn: one model trained three ways (`Float`, `Plain`, two servers on
//! secret shares), the studies of accuracy and cost, and the `ringnn` command line.
//!
//! Modules, lowest layer first. Each uses only those above it, with one exception by
//! design: [`train::train`] hands a two-party run to [`mpc::launch`], whose servers run
//! `train`'s epoch loop (file by file there is no circle: `scripts/circles`).
//! - [`files`]: files that hold shares, labels or models: atomic, owner-only, checksummed.
//! - [`gemm`]: matrix products for the engines (Z_2^64 with AVX2 dispatch, f32/f64).
//! - [`data`]: MNIST, CIFAR-10/100 and Tatoeba loaders, and the synthetic digits.
//! - [`plot`]: pictures of the approximations and their errors.
//! - [`study`]: how far each approximation strays from its function (`ringnn approx`).
//! - [`train`]: the typed configuration, the one epoch loop and `train` for every engine.
//! - [`mpc`]: the two-party engine, its dealer, servers, owner and launcher.
//! - [`export`]: a trained fixed-point MLP as Rust source for the firmware.
//! - [`cost`]: what each approximation costs on two servers (`ringnn cost`).
//! - [`sweep`]: grids of runs over engines and precisions, and the paper's tables.
//! - [`cli`]: the command line: arguments into validated configurations, one error type.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod files;
pub mod gemm;

pub mod data;
pub mod plot;
pub mod study;

pub mod train;

pub mod mpc;

pub mod export;

pub mod cost;
pub mod sweep;

pub mod cli;
