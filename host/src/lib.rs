//! The std side of ringnn: the precision studies behind the `ringnn` command line.
//!
//! - [`study`]: how far each approximation of e^x, tanh, sigmoid and softmax strays from
//!   the true function, evaluated through the `Plain` engine at each number of fractional
//!   bits and through the `Float` engine (`ringnn approx`).
//! - [`plot`]: pictures of the approximations and their errors (plotters).
//! - [`cli`]: argument parsing into validated configurations, and the commands.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
pub mod plot;
pub mod study;
