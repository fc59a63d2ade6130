//! What training needs from an engine beyond arithmetic: bringing the data owner's values in
//! (encoding or, for two parties, sharing) and taking results out (decoding or revealing
//! to the owner), and raw bits for checkpoints.

use ringnn_core::{Engine, Float, Plain, Z64};

/// Errors at the boundary between data and engine.
#[derive(Debug, thiserror::Error)]
pub enum BoundaryError {
    /// A value cannot be represented (NaN, or outside the fixed-point range).
    #[error("{what}: value {value} at index {index} cannot be encoded: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The index.
        index: usize,
        /// The value.
        value: f64,
        /// Why.
        reason: String,
    },
    /// The engine failed.
    #[error("engine: {0}")]
    Engine(String),
}

/// A plaintext engine the training loop can drive and look into: the owner's values go
/// in and come out directly. (The two-party engine has no such boundary: its values enter
/// as the owner's shares and leave through the owner's reveal, [`crate::mpc::owner`].)
pub trait HostEngine: Engine {
    /// `"float"` or `"plain"`.
    fn kind(&self) -> &'static str;
    /// Brings the owner's values in (`what` names them in errors).
    ///
    /// # Errors
    /// A value that cannot be represented.
    fn input(&mut self, what: &'static str, xs: &[f64]) -> Result<Vec<Self::Elem>, BoundaryError>;
    /// Takes values out to the owner.
    ///
    /// # Errors
    /// What the engine reports.
    fn reveal(&mut self, xs: &[Self::Elem]) -> Result<Vec<f64>, BoundaryError>;
    /// The element's raw bits (for checkpoints).
    fn to_bits(x: Self::Elem) -> u64;
    /// The element from raw bits.
    fn from_bits(b: u64) -> Self::Elem;
    /// A copy that computes part of a batch on another thread, its counters at zero.
    fn fork(&self) -> Self;
    /// Takes back what a fork counted.
    fn join(&mut self, fork: &Self);
}

impl HostEngine for Plain {
    fn kind(&self) -> &'static str {
        "plain"
    }
    fn input(&mut self, what: &'static str, xs: &[f64]) -> Result<Vec<Z64>, BoundaryError> {
        let mut out = vec![Z64::ZERO; xs.len()];
        self.encode_slice(xs, &mut out)
            .map_err(|(index, e)| BoundaryError::Encode {
                what,
                index,
                value: xs[index],
                reason: e.to_string(),
            })?;
        Ok(out)
    }
    fn reveal(&mut self, xs: &[Z64]) -> Result<Vec<f64>, BoundaryError> {
        let mut out = vec![0.0; xs.len()];
        self.decode_slice(xs, &mut out);
        Ok(out)
    }
    fn to_bits(x: Z64) -> u64 {
        x.to_bits()
    }
    fn from_bits(b: u64) -> Z64 {
        Z64::from_bits(b)
    }
    fn fork(&self) -> Self {
        let mut f = self.clone();
        f.reset_health();
        f
    }
    fn join(&mut self, fork: &Self) {
        self.add_health(fork.health().unwrap_or_default());
    }
}

impl HostEngine for Float<f32> {
    fn kind(&self) -> &'static str {
        "float"
    }
    fn input(&mut self, what: &'static str, xs: &[f64]) -> Result<Vec<f32>, BoundaryError> {
        xs.iter()
            .enumerate()
            .map(|(index, &v)| {
                if v.is_finite() {
                    Ok(v as f32)
                } else {
                    Err(BoundaryError::Encode {
                        what,
                        index,
                        value: v,
                        reason: "not finite".into(),
                    })
                }
            })
            .collect()
    }
    fn reveal(&mut self, xs: &[f32]) -> Result<Vec<f64>, BoundaryError> {
        Ok(xs.iter().map(|&v| v as f64).collect())
    }
    fn to_bits(x: f32) -> u64 {
        x.to_bits() as u64
    }
    fn from_bits(b: u64) -> f32 {
        f32::from_bits(b as u32)
    }
    fn fork(&self) -> Self {
        *self
    }
    fn join(&mut self, _fork: &Self) {}
}
