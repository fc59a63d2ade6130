//! Integration tests across the crates, through the `ringnn` facade (one test binary).
mod approx_study;
mod engines;
