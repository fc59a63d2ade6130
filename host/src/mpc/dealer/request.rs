//! What a party asks the dealer for: [`Request`], shapes only, never data, and the
//! convolution product a convolution triple serves ([`ConvProduct`]). Their wire form is
//! in [`crate::mpc::dealer_server`]; what the dealer answers is in the [parent
//! module](super).

use crate::gemm::matmul_z64;
use crate::mpc::fss::{DreluKey, ReluKey};
use ringnn_core::engine::{ConvShape, MatDims};
use ringnn_core::layers::Conv2d;
use ringnn_core::Z64;

/// One request for correlated randomness: which kind and how much. Shapes only, never
/// data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Request {
    /// `n` Beaver triples.
    Beaver {
        /// Number of triples.
        n: usize,
    },
    /// One matrix triple `C = A B` of shape `dims`.
    Matrix {
        /// The product's shape.
        dims: MatDims,
    },
    /// One convolution triple: `A` of the input's shape, `B` and `C = B U(A)` as
    /// [`ConvProduct::dims`] says.
    Conv {
        /// The convolution's geometry.
        shape: ConvShape,
        /// Which of its products the triple serves.
        product: ConvProduct,
    },
    /// A dense layer's backward masks ([`BackwardMasks`](super::BackwardMasks)): a fresh `D` (`m x n`), shares of
    /// `C_w = A^T D` (`k x n`) and, with `dx`, of `C_x = D B^T` (`m x k`), where `A`
    /// (`m x k`) and `B` (`k x n`) are the masks of the matrix triple of shape `dims`
    /// served `back` requests earlier (the layer's forward product).
    DenseBackward {
        /// The forward product's shape: `X` is `m x k`, `W` is `k x n`, `dY` is `m x n`.
        dims: MatDims,
        /// How many requests earlier the forward product's matrix triple was (at least 1).
        back: usize,
        /// Whether the input gradient `dY W^T` is computed (`C_x` included).
        dx: bool,
    },
    /// A convolution's backward masks ([`BackwardMasks`](super::BackwardMasks)): a fresh `D` (`out_channels x
    /// rows`, the transposed output gradient's shape), shares of `C_w = D U(A)`
    /// (`out_channels x patch`, `U` the row-major unfolding) and, with `dx`, of
    /// `C_x = B^T D` (`patch x rows`), where the image-shaped `A` and `B` (`out_channels x
    /// patch`) are the masks of the forward convolution triple of `shape` served `back`
    /// requests earlier.
    ConvBackward {
        /// The convolution's geometry.
        shape: ConvShape,
        /// How many requests earlier the forward product's triple was (at least 1).
        back: usize,
        /// Whether the input gradient `W^T dY^T` is computed (`C_x` included).
        dx: bool,
    },
    /// `n` truncation pairs for a shift by `bits` (1..=62).
    Trunc {
        /// Number of pairs.
        n: usize,
        /// The shift.
        bits: u32,
    },
    /// `n` truncation pairs that also truncate a public multiple: for `x >> bits` and
    /// `(scale x) >> scaled_bits` from one opening of the masked `x`
    /// ([`crate::mpc::protocols::truncate_dealer_scaled`]). The scale is public (the
    /// learning rate of an SGD step): the dealer needs it to split the mask's multiple.
    TruncScaled {
        /// Number of pairs.
        n: usize,
        /// The shift of `x` (1..=62).
        bits: u32,
        /// The public multiplier, a raw ring element.
        scale: u64,
        /// The shift of `scale x` (1..=62).
        scaled_bits: u32,
    },
    /// `words * 64` AND triples on packed words.
    And {
        /// Number of 64-bit words.
        words: usize,
    },
    /// `words * 64` random bits shared both as XOR and as arithmetic shares.
    Bits {
        /// Number of 64-bit words.
        words: usize,
    },
    /// `n` DReLU keys of width `m` (2..=64), with shares of their masks: see [`keys`](super::keys).
    Drelu {
        /// Number of keys.
        n: usize,
        /// The gate's width.
        m: u32,
    },
    /// `n` ReLU keys of width `m` (2..=64) whose output stays shared, with shares of
    /// their masks: see [`keys`](super::keys).
    Relu {
        /// Number of keys.
        n: usize,
        /// The gate's width.
        m: u32,
    },
}

/// Which product of a convolution a convolution triple serves: both are `M U(X)` for the
/// input image `X`, a matrix `M` and an unfolding `U` of `X`
/// ([`ringnn_core::engine::ConvUnfold`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConvProduct {
    /// The forward product `W U(X)`: `W` is `out_channels x patch`, `U` the transposed
    /// unfolding (`patch x rows`), the result `out_channels x rows`.
    Forward,
    /// The weight gradient `dY^T U(X)`: `dY^T` is `out_channels x rows`, `U` the
    /// row-major unfolding (`rows x patch`), the result `out_channels x patch`.
    Weights,
}

impl ConvProduct {
    /// The product's shape as a matrix product: `M` is `m x k`, `U(X)` is `k x n`.
    ///
    /// # Panics
    /// As [`ConvShape::rows`], for a shape no layer builds.
    pub fn dims(self, shape: ConvShape) -> MatDims {
        let (o, patch, rows) = (shape.out_channels, shape.patch(), shape.rows());
        match self {
            ConvProduct::Forward => MatDims {
                m: o,
                k: patch,
                n: rows,
            },
            ConvProduct::Weights => MatDims {
                m: o,
                k: rows,
                n: patch,
            },
        }
    }

    /// Sizes of the triple's `A` (the image), `B` (`m x k`) and `C` (`m x n`).
    pub fn sizes(self, shape: ConvShape) -> [usize; 3] {
        let d = self.dims(shape);
        [shape.image_len(), d.m * d.k, d.m * d.n]
    }

    /// `M U(x)` in the clear (the dealer's `C`, and the tests' reference), with the
    /// core's unfolding.
    ///
    /// # Panics
    /// If a length does not match the shape.
    pub fn product(self, shape: ConvShape, x: &[Z64], m: &[Z64]) -> Vec<Z64> {
        let (conv, input) = Conv2d::from_shape(shape);
        let d = self.dims(shape);
        let mut cols = vec![Z64::ZERO; d.k * d.n];
        match self {
            ConvProduct::Forward => conv.unfold_t(x, input, &mut cols),
            ConvProduct::Weights => conv.im2col(x, input, &mut cols),
        }
        let mut out = vec![Z64::ZERO; d.m * d.n];
        matmul_z64(m, &cols, d, &mut out);
        out
    }
}

impl Request {
    /// What the request is for, in error messages.
    pub fn what(&self) -> &'static str {
        match self {
            Request::Beaver { .. } => "Beaver triples",
            Request::Matrix { .. } => "a matrix triple",
            Request::Conv { .. } => "a convolution triple",
            Request::DenseBackward { .. } => "dense backward masks",
            Request::ConvBackward { .. } => "convolution backward masks",
            Request::Trunc { .. } => "truncation pairs",
            Request::TruncScaled { .. } => "scaled truncation pairs",
            Request::And { .. } => "AND triples",
            Request::Bits { .. } => "random bits",
            Request::Drelu { .. } => "DReLU keys",
            Request::Relu { .. } => "ReLU keys",
        }
    }

    /// Words of party 1's correction.
    pub fn correction_words(&self) -> usize {
        match *self {
            Request::Beaver { n } => n,
            Request::Matrix { dims } => dims.m * dims.n,
            Request::Conv { shape, product } => product.sizes(shape)[2],
            Request::DenseBackward { .. } | Request::ConvBackward { .. } => {
                let [_, cw, cx] = self.backward_sizes();
                cw + cx
            }
            Request::Trunc { n, .. } => 2 * n,
            Request::TruncScaled { n, .. } => 4 * n,
            Request::And { words } => words,
            Request::Bits { words } => 64 * words,
            Request::Drelu { .. } | Request::Relu { .. } => 0,
        }
    }

    /// Sizes of a [`Request::DenseBackward`]'s or [`Request::ConvBackward`]'s `D`, `C_w`
    /// and `C_x` (0 without `dx`); all 0 for other kinds.
    ///
    /// # Panics
    /// As [`ConvShape::rows`], for a shape no layer builds.
    pub fn backward_sizes(&self) -> [usize; 3] {
        match *self {
            Request::DenseBackward { dims, dx, .. } => {
                let MatDims { m, k, n } = dims;
                [m * n, k * n, if dx { m * k } else { 0 }]
            }
            Request::ConvBackward { shape, dx, .. } => {
                let (o, patch, rows) = (shape.out_channels, shape.patch(), shape.rows());
                [o * rows, o * patch, if dx { patch * rows } else { 0 }]
            }
            _ => [0; 3],
        }
    }

    /// The number of the request a [`Request::DenseBackward`] or [`Request::ConvBackward`]
    /// numbered `counter` refers to: `counter - back`.
    ///
    /// # Errors
    /// `back` is 0 or more than `counter` (no earlier request), or the request is of
    /// another kind.
    pub fn linked(&self, counter: u64) -> Result<u64, String> {
        match *self {
            Request::DenseBackward { back, .. } | Request::ConvBackward { back, .. } => {
                u64::try_from(back)
                    .ok()
                    .filter(|&b| b >= 1 && b <= counter)
                    .map(|b| counter - b)
                    .ok_or_else(|| {
                        format!(
                            "backward request number {counter} refers {back} requests \
                             back (allowed 1 to {counter})"
                        )
                    })
            }
            _ => Err(format!("{} refer to no earlier request", self.what())),
        }
    }

    /// Bytes of FSS keys each party receives (0 for every kind but keys). Saturates for
    /// sizes no request can have.
    pub fn key_bytes(&self) -> usize {
        match *self {
            Request::Drelu { n, m } => n.saturating_mul(DreluKey::size(m)),
            Request::Relu { n, m } => n.saturating_mul(ReluKey::size(m)),
            _ => 0,
        }
    }

    /// Words of one party's material written out in full (what the dealer would send
    /// without seeds).
    pub fn full_words(&self) -> usize {
        match *self {
            Request::Beaver { n } => 3 * n,
            Request::Matrix { dims } => dims.m * dims.k + dims.k * dims.n + dims.m * dims.n,
            Request::Conv { shape, product } => product.sizes(shape).iter().sum(),
            Request::DenseBackward { .. } | Request::ConvBackward { .. } => {
                self.backward_sizes().iter().sum()
            }
            Request::Trunc { n, .. } => 3 * n,
            Request::TruncScaled { n, .. } => 5 * n,
            Request::And { words } => 3 * words,
            Request::Bits { words } => 65 * words,
            // The mask's share; the keys are counted by `key_bytes`.
            Request::Drelu { n, .. } | Request::Relu { n, .. } => n,
        }
    }
}
