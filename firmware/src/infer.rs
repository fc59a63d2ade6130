//! On-device inference of an MLP exported by `ringnn_host::export` (the host's
//! `examples/export_model.rs` trains one and writes it as Rust source; `build.rs` brings it
//! in when `RINGNN_EXPORT` names it).
//!
//! The forward pass is the kernel's own: [`Dense::forward`] (one matrix product, one
//! rescale, the bias) and [`Relu::forward`] on any engine whose element is [`Z64`] (the
//! firmware uses [`ringnn_core::Plain`]), one input at a time. The weights stay where the
//! generated `static` arrays put them (flash); activations ping-pong between two buffers of
//! the widest hidden layer in [`Activations`], with the ReLU's scratch beside them.
//!
//! Agreement with the host is checked here, not assumed: [`compare`] holds the device's
//! logits against the host's bit for bit and the predicted class against the host's, and
//! [`logits_hash`] gives the test script a short fingerprint of the bits to compare with
//! the host's own log.

use ringnn_core::layers::{Dense, Relu};
use ringnn_core::{Engine, Z64};

/// An exported MLP: `Dense (Relu Dense)*`, as the generated file describes it.
#[derive(Clone, Copy, Debug)]
pub struct Mlp<'a> {
    /// Layer widths, input first (`LAYER_SIZES`).
    pub sizes: &'a [usize],
    /// Each dense layer's weights (`inputs x outputs`, row-major) and bias (`PARAMS`).
    pub params: &'a [(&'a [Z64], &'a [Z64])],
}

impl Mlp<'_> {
    /// Output classes: the last width.
    pub fn classes(&self) -> usize {
        self.sizes.last().copied().unwrap_or(0)
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> usize {
        self.sizes.windows(2).map(|w| w[0] * w[1]).sum()
    }

    /// Checks that the parameters fit the widths and the activations fit `width`.
    ///
    /// # Errors
    /// The first mismatch.
    pub fn check(&self, width: usize) -> Result<(), ShapeError> {
        if self.sizes.len() != self.params.len() + 1 || self.params.is_empty() {
            return Err(ShapeError::Layers {
                sizes: self.sizes.len(),
                params: self.params.len(),
            });
        }
        for (i, (w, b)) in self.params.iter().enumerate() {
            let (n_in, n_out) = (self.sizes[i], self.sizes[i + 1]);
            if w.len() != n_in * n_out || b.len() != n_out {
                return Err(ShapeError::Params { layer: i });
            }
            if n_out > width {
                return Err(ShapeError::Width {
                    layer: i,
                    outputs: n_out,
                    width,
                });
            }
        }
        Ok(())
    }
}

/// The widest layer but the input: the activation buffers' length for `sizes`.
pub const fn widest_hidden(sizes: &[usize]) -> usize {
    let mut w = 0;
    let mut i = 1;
    while i < sizes.len() {
        if sizes[i] > w {
            w = sizes[i];
        }
        i += 1;
    }
    w
}

/// A model that does not fit its description or its buffers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShapeError {
    /// Not one more width than dense layers, or no layer at all.
    Layers {
        /// Widths given.
        sizes: usize,
        /// Dense layers given.
        params: usize,
    },
    /// A layer's weights or bias have the wrong length.
    Params {
        /// The layer.
        layer: usize,
    },
    /// A layer is wider than the activation buffers.
    Width {
        /// The layer.
        layer: usize,
        /// Its outputs.
        outputs: usize,
        /// The buffers' width.
        width: usize,
    },
    /// The input does not have the first width.
    Input {
        /// Its length.
        len: usize,
        /// The first width.
        want: usize,
    },
}

/// Inference errors.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InferError<E> {
    /// The model, the buffers or the input do not fit.
    Shape(ShapeError),
    /// The engine failed.
    Engine(E),
}

/// The activations of one inference: two buffers of the widest hidden layer, used in
/// turn, and the ReLU's scratch (`Relu::scratch(W)` = 3W elements).
pub struct Activations<const W: usize> {
    bufs: [[Z64; W]; 2],
    scratch: [[Z64; W]; 3],
}

impl<const W: usize> Activations<W> {
    /// All-zero buffers (`const`, so that they can live in `.bss`).
    pub const fn new() -> Self {
        Activations {
            bufs: [[Z64::ZERO; W]; 2],
            scratch: [[Z64::ZERO; W]; 3],
        }
    }
}

impl<const W: usize> Default for Activations<W> {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `mlp` on one input `x` and returns its logits (inside `act`).
///
/// # Errors
/// [`InferError::Shape`] when the model does not fit its widths or the buffers, or `x` is
/// not as long as the first width; what the engine reports.
pub fn forward<'b, E, const W: usize>(
    e: &mut E,
    mlp: &Mlp<'_>,
    x: &[Z64],
    act: &'b mut Activations<W>,
) -> Result<&'b [Z64], InferError<E::Error>>
where
    E: Engine<Elem = Z64> + ?Sized,
{
    mlp.check(W).map_err(InferError::Shape)?;
    if x.len() != mlp.sizes[0] {
        return Err(InferError::Shape(ShapeError::Input {
            len: x.len(),
            want: mlp.sizes[0],
        }));
    }
    let last = mlp.params.len() - 1;
    let [a, b] = &mut act.bufs;
    let scratch = act.scratch.as_flattened_mut();
    // Layer i reads `src` (the input for i = 0) and leaves its result in `a`; a ReLU then
    // writes into `b`, and the two swap roles.
    let (mut cur, mut next) = (a, b);
    for (i, &(w, bias)) in mlp.params.iter().enumerate() {
        let (n_in, n_out) = (mlp.sizes[i], mlp.sizes[i + 1]);
        let d = Dense::new(n_in, n_out);
        if i == 0 {
            d.forward(e, x, w, bias, 1, &mut next[..n_out])
        } else {
            d.forward(e, &cur[..n_in], w, bias, 1, &mut next[..n_out])
        }
        .map_err(InferError::Engine)?;
        core::mem::swap(&mut cur, &mut next);
        if i < last {
            let s = &mut scratch[..Relu::scratch(n_out)];
            Relu::forward(e, &cur[..n_out], &mut next[..n_out], s).map_err(InferError::Engine)?;
            core::mem::swap(&mut cur, &mut next);
        }
    }
    Ok(&cur[..mlp.classes()])
}

/// The index of the largest signed value, the first on ties (the host export's rule).
pub fn argmax(logits: &[Z64]) -> usize {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if v.to_signed() > logits[best].to_signed() {
            best = i;
        }
    }
    best
}

/// The CRC-32 (IEEE, `crc32fast` without `std`) of the logits' raw bits, each as 8
/// little-endian bytes: a fingerprint of an output that the host computes with the same
/// crate (`ExportSummary::logit_hashes`), the checksum of every file the host seals.
pub fn logits_hash(logits: &[Z64]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for v in logits {
        h.update(&v.to_bits().to_le_bytes());
    }
    h.finalize()
}

/// One input's result against the host's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Outcome {
    /// Which exported input.
    pub index: usize,
    /// The device's predicted class.
    pub predicted: usize,
    /// The host's predicted class.
    pub expected: usize,
    /// The true label.
    pub label: usize,
    /// [`logits_hash`] of the device's logits.
    pub hash: u32,
    /// Whether every logit equals the host's bit for bit.
    pub bits_equal: bool,
}

impl Outcome {
    /// Same bits and same class as the host.
    pub fn pass(&self) -> bool {
        self.bits_equal && self.predicted == self.expected
    }
}

/// Compares the device's `logits` for input `index` with the host's.
pub fn compare(
    index: usize,
    logits: &[Z64],
    expected_logits: &[Z64],
    expected_class: usize,
    label: usize,
) -> Outcome {
    Outcome {
        index,
        predicted: argmax(logits),
        expected: expected_class,
        label,
        hash: logits_hash(logits),
        bits_equal: logits == expected_logits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringnn_core::{FracBits, Plain};
    use std::vec;
    use std::vec::Vec;

    fn z(v: &[f64], f: u32) -> Vec<Z64> {
        v.iter()
            .map(|&x| Z64::from_signed((x * (1u64 << f) as f64).round() as i64))
            .collect()
    }

    fn plain() -> Plain {
        Plain::new(FracBits::new(8).unwrap())
    }

    #[test]
    fn a_two_layer_net_computes_relu_then_dense_with_rounding() {
        // x = [1, -2]; W0 = [[1, 0.5, -1], [0.25, 1, 0.5]] (2 x 3), b0 = [0, 0.5, 0]:
        // h = [0.5, -1, -2] -> relu [0.5, 0, 0]; W1 (3 x 2) = [[3, -1], [1, 1], [1, 1]],
        // b1 = [0.125, 0] -> y = [1.625, -0.5].
        let f = 8;
        let (w0, b0) = (
            z(&[1.0, 0.5, -1.0, 0.25, 1.0, 0.5], f),
            z(&[0.0, 0.5, 0.0], f),
        );
        let (w1, b1) = (z(&[3.0, -1.0, 1.0, 1.0, 1.0, 1.0], f), z(&[0.125, 0.0], f));
        let params = [(&w0[..], &b0[..]), (&w1[..], &b1[..])];
        let mlp = Mlp {
            sizes: &[2, 3, 2],
            params: &params,
        };
        let mut act = Activations::<3>::new();
        let x = z(&[1.0, -2.0], f);
        let y = forward(&mut plain(), &mlp, &x, &mut act).unwrap();
        assert_eq!(y, &z(&[1.625, -0.5], f)[..]);
        assert_eq!(argmax(y), 0);
        assert_eq!(mlp.macs(), 12);
        assert_eq!(mlp.classes(), 2);
    }

    #[test]
    fn three_layers_equal_the_kernel_layer_by_layer() {
        // Odd raw values (products with fractional bits below 2^-8) so that every
        // rescale rounds.
        let sizes = [5usize, 4, 3, 2];
        let mut seed = 0x1234_5678u64;
        let mut rnd = |n: usize| -> Vec<Z64> {
            (0..n)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    Z64::from_signed(((seed >> 33) as i64 % 600) - 300)
                })
                .collect()
        };
        let p: Vec<(Vec<Z64>, Vec<Z64>)> = sizes
            .windows(2)
            .map(|w| (rnd(w[0] * w[1]), rnd(w[1])))
            .collect();
        let params: Vec<(&[Z64], &[Z64])> = p.iter().map(|(w, b)| (&w[..], &b[..])).collect();
        let mlp = Mlp {
            sizes: &sizes,
            params: &params,
        };
        let x = rnd(5);
        let mut act = Activations::<{ widest_hidden(&[5, 4, 3, 2]) }>::new();
        let got = forward(&mut plain(), &mlp, &x, &mut act).unwrap().to_vec();
        // The same with freshly allocated buffers per layer.
        let mut e = plain();
        let mut a = x.clone();
        for (i, (w, b)) in p.iter().enumerate() {
            let mut y = vec![Z64::ZERO; sizes[i + 1]];
            Dense::new(sizes[i], sizes[i + 1])
                .forward(&mut e, &a, w, b, 1, &mut y)
                .unwrap();
            if i + 1 < p.len() {
                let mut r = vec![Z64::ZERO; y.len()];
                let mut s = vec![Z64::ZERO; Relu::scratch(y.len())];
                Relu::forward(&mut e, &y, &mut r, &mut s).unwrap();
                y = r;
            }
            a = y;
        }
        assert_eq!(got, a);
    }

    #[test]
    fn shapes_that_do_not_fit_are_errors_not_panics() {
        let w = [Z64::ZERO; 6];
        let b = [Z64::ZERO; 3];
        let params = [(&w[..], &b[..])];
        let mlp = Mlp {
            sizes: &[2, 3],
            params: &params,
        };
        let mut small = Activations::<2>::new();
        let x = [Z64::ZERO; 2];
        assert_eq!(
            forward(&mut plain(), &mlp, &x, &mut small).unwrap_err(),
            InferError::Shape(ShapeError::Width {
                layer: 0,
                outputs: 3,
                width: 2
            })
        );
        let mut act = Activations::<3>::new();
        assert_eq!(
            forward(&mut plain(), &mlp, &x[..1], &mut act).unwrap_err(),
            InferError::Shape(ShapeError::Input { len: 1, want: 2 })
        );
        let bad = Mlp {
            sizes: &[3, 3],
            params: &params,
        };
        assert_eq!(bad.check(3), Err(ShapeError::Params { layer: 0 }));
        let none = Mlp {
            sizes: &[2],
            params: &[],
        };
        assert_eq!(
            none.check(3),
            Err(ShapeError::Layers {
                sizes: 1,
                params: 0
            })
        );
    }

    #[test]
    fn hash_is_crc32_of_little_endian_bits() {
        // The host's export computes the same function; these values pin it.
        assert_eq!(logits_hash(&[]), 0);
        // Bit by bit, the reflected IEEE polynomial: CRC-32 as its definition states it.
        let reference = |bytes: &[u8]| {
            let mut c = !0u32;
            for &b in bytes {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        (c >> 1) ^ 0xedb8_8320
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        };
        assert_eq!(reference(b"123456789"), 0xcbf4_3926);
        assert_eq!(
            logits_hash(&[Z64::from_bits(1)]),
            reference(&[1, 0, 0, 0, 0, 0, 0, 0])
        );
        let bits = [0x0123_4567_89ab_cdefu64, 7, u64::MAX - 3];
        let mut bytes = [0u8; 24];
        for (d, v) in bytes.chunks_exact_mut(8).zip(bits) {
            d.copy_from_slice(&v.to_le_bytes());
        }
        assert_eq!(logits_hash(&bits.map(Z64::from_bits)), reference(&bytes));
        assert_eq!(
            logits_hash(&[Z64::from_bits(1), Z64::from_bits(u64::MAX)]),
            HASH_1_MAX
        );
    }

    /// `logits_hash([1, u64::MAX])`, also pinned in the host export's tests.
    const HASH_1_MAX: u32 = 0x06b5_dab1;

    #[test]
    fn compare_needs_both_bits_and_class() {
        let host = [Z64(5), Z64(9), Z64(9)];
        let same = compare(0, &host, &host, 1, 2);
        assert!(same.pass() && same.bits_equal && same.predicted == 1 && same.label == 2);
        let off = compare(1, &[Z64(5), Z64(9), Z64(8)], &host, 1, 1);
        assert!(!off.bits_equal && off.predicted == 1 && !off.pass());
        let wrong = compare(2, &host, &host, 2, 1);
        assert!(wrong.bits_equal && !wrong.pass());
    }
}
