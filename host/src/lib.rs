//! The std side of ringnn: the precision studies behind the `ringnn` command line.
//!
//! - [`study`]: how far each approximation of e^x, tanh, sigmoid and softmax strays from
//!   the true function, evaluated through the `Plain` engine at each number of fractional
//!   bits and through the `Float` engine (`ringnn approx`).
//! - [`data`]: loaders for MNIST, CIFAR-10/100 and Tatoeba (raw or gzip), and the
//!   synthetic digits used when no data directory is given.
//! - [`plot`]: pictures of the approximations and their errors (plotters).
//! - [`gemm`]: fast matrix products (Z_2^64 with AVX2 dispatch, f32/f64) for the engines.
//! - [`train`]: training in fixed point or floating point (`ringnn train`).
//! - [`mpc`]: the two-party engine on additive shares in Z_2^64, with its dealer and protocols.
//! - [`export`]: a trained fixed-point MLP and test inputs as Rust source for the firmware.
//! - [`files`]: files that hold shares, labels or models: atomic, owner-only, checksummed.
//! - [`sweep`]: grids of training runs (`ringnn sweep`) and the paper's tables reproduced
//!   (`ringnn reproduce`): a resumable run store, `table.md` and plots.
//! - [`cost`]: what each approximation costs on the two-party engine (`ringnn cost`).
//! - [`cli`]: argument parsing into validated configurations, and the commands.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
pub mod cost;
pub mod data;
pub mod export;
pub mod files;
pub mod gemm;
pub mod mpc;
pub mod plot;
pub mod study;
pub mod sweep;
pub mod train;
