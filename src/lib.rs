//! ringnn: neural networks in the fixed-point arithmetic of two-party computation.
//!
//! This facade re-exports the two crates of the workspace:
//! - [`kernel`] (`ringnn-core`): the `no_std`, allocation-free kernel (ring, fixed point,
//!   engines, approximations);
//! - [`host`] (`ringnn-host`): the std side (studies, command line).
#![forbid(unsafe_code)]

pub use ringnn_core as kernel;
pub use ringnn_host as host;
