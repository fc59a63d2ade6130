//! Exports a trained fixed-point MLP and a few test images as Rust source, for the
//! firmware's on-device inference (`firmware/`, `scripts/firmware`).
//!
//! The export reads a `Plain` checkpoint of the `mlp` model, rebuilds the network, takes the
//! first `N` test images of the dataset the checkpoint was trained on (regenerated exactly
//! as `ringnn train` loaded it: same seed and sizes for synthetic digits, normalisation
//! statistics from the same training split), encodes them at the checkpoint's fractional
//! bits and runs the host's forward pass ([`model::forward`] on [`Plain`], evaluation mode).
//! The generated file holds everything the device needs and everything it must reproduce:
//!
//! - `FRAC_BITS`, `LAYER_SIZES` (input first), `N_DENSE`, `MAX_WIDTH`, `CLASSES`, `N_INPUTS`;
//! - `W0, B0, W1, B1, ...`: each dense layer's weights (`inputs x outputs`, row-major, as in
//!   training) and bias, and `PARAMS`, the `(weights, bias)` pairs in order;
//! - `INPUTS`: the encoded test images; `LABELS`: their true labels;
//! - `EXPECTED_LOGITS`: the host's output logits; `EXPECTED_CLASSES`: the host's predictions.
//!
//! Every ring element is written as its raw bits, `Z64(0x...)`: `Z64` is
//! `#[repr(transparent)]` over `u64`, and writing the elements rather than bare `u64`s lets
//! the device hand the flash-resident arrays straight to `Dense::forward` (which takes
//! `&[Z64]`) without a copy into RAM and without `unsafe`. The file expects `Z64` in scope
//! (`use ringnn_core::Z64;` before the `include!`) and uses only `//` comments, so that it
//! can be `include!`d at item position.
//!
//! The predicted class is the argmax of the signed ring values, the first index on ties:
//! what the device computes. It equals the training loop's argmax of the decoded values,
//! since decoding is monotonic and exact for logits below 2^53 ulps.
//!
//! The file is written to a temporary name and renamed, so a failed export never leaves a
//! half-written file for the firmware build to include.

use crate::data::{self, DataError, Dataset, Split};
use crate::train::checkpoint::{self, CheckpointError, Header};
use crate::train::model::{self, Op};
use ringnn_core::layers::Image;
use ringnn_core::{FracBits, Plain, Z64};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The model the export understands.
pub const MODEL: &str = "mlp";

/// Export errors; each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The checkpoint could not be read or is corrupt.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A header field the export cannot handle.
    #[error("checkpoint {path}: {field} is '{found}', but export needs {expected}")]
    Unsupported {
        /// The checkpoint file.
        path: PathBuf,
        /// The header field.
        field: &'static str,
        /// Its value in the checkpoint.
        found: String,
        /// What the export accepts.
        expected: String,
    },
    /// The checkpoint's network does not have the shape the export writes.
    #[error("checkpoint {path}: {reason}")]
    Model {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The checkpoint was trained on MNIST but no data directory was given.
    #[error(
        "checkpoint {path} was trained on mnist: pass a data directory (or set RINGNN_DATA) \
         to export its test images"
    )]
    NoDataDir {
        /// The checkpoint file.
        path: PathBuf,
    },
    /// The dataset could not be loaded.
    #[error("data for checkpoint {path}: {source}")]
    Data {
        /// The checkpoint file.
        path: PathBuf,
        /// The failure (it names the data file).
        source: DataError,
    },
    /// Fewer test images than asked for, or none asked for.
    #[error("checkpoint {path}: asked for {requested} test inputs, the test set has {available} (need 1 to {available})")]
    Inputs {
        /// The checkpoint file.
        path: PathBuf,
        /// How many were asked for.
        requested: usize,
        /// How many there are.
        available: usize,
    },
    /// A test value that cannot be encoded at the checkpoint's fractional bits.
    #[error("checkpoint {path}: test input {input}, value {index} ({value}) cannot be encoded: {reason}")]
    Encode {
        /// The checkpoint file.
        path: PathBuf,
        /// Which test input.
        input: usize,
        /// The index inside it.
        index: usize,
        /// The value.
        value: f64,
        /// Why.
        reason: String,
    },
    /// Writing the output failed.
    #[error("export {path}: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportSummary {
    /// The file written.
    pub out: PathBuf,
    /// The dataset the checkpoint was trained on (`synthetic` or `mnist`).
    pub data: String,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Layer widths, input first (`[784, 128, 128, 10]` for the MNIST-shaped mlp).
    pub layer_sizes: Vec<usize>,
    /// Parameters written (weights and biases).
    pub parameters: usize,
    /// The host's predicted class of each exported input.
    pub predictions: Vec<usize>,
    /// The true label of each exported input.
    pub labels: Vec<usize>,
    /// The host's logits of each exported input, as raw ring bits (`classes` per input).
    pub logits: Vec<u64>,
    /// Bytes of the generated file.
    pub bytes: usize,
}

impl ExportSummary {
    /// How many exported inputs the host classifies correctly.
    pub fn correct(&self) -> usize {
        self.predictions
            .iter()
            .zip(&self.labels)
            .filter(|(p, l)| p == l)
            .count()
    }

    /// A fingerprint of each input's logits: the CRC-32 of their raw bits, each as 8
    /// little-endian bytes. The firmware computes the same (`infer::logits_hash`) and logs
    /// it, so the test script compares device and host without reading the generated file.
    pub fn logit_hashes(&self) -> Vec<u32> {
        let classes = self.layer_sizes.last().copied().unwrap_or(1).max(1);
        self.logits.chunks(classes).map(logits_hash).collect()
    }
}

/// The CRC-32 ([`crate::files::crc32`]'s function) of `bits`, each as 8 little-endian
/// bytes.
pub fn logits_hash(bits: &[u64]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for v in bits {
        h.update(&v.to_le_bytes());
    }
    h.finalize()
}

/// Exports the `mlp` checkpoint in `checkpoint_dir` and its dataset's first `inputs` test
/// images to the Rust source file `out` (see the [module documentation](self)).
///
/// `data_dir` is where MNIST lives for a checkpoint trained on `mnist` (`None`: the
/// `RINGNN_DATA` variable); a `synthetic` checkpoint regenerates its data and needs none.
///
/// # Errors
/// An unreadable or corrupt checkpoint; a checkpoint of another model, of the float engine
/// or of a dataset other than `synthetic` and `mnist` ([`ExportError::Unsupported`] naming
/// the header field); missing data; `inputs` of 0 or more than the test set holds; a test
/// value that cannot be encoded; a failed write.
pub fn export(
    checkpoint_dir: &Path,
    out: &Path,
    inputs: usize,
    data_dir: Option<&Path>,
) -> Result<ExportSummary, ExportError> {
    let path = checkpoint::path_in(checkpoint_dir);
    let (header, state) = checkpoint::load(checkpoint_dir)?;
    check_header(&header, &path)?;
    let split = load_split(&header, data_dir, inputs, &path)?;
    let test = &split.test;
    if inputs == 0 || inputs > test.len() {
        return Err(ExportError::Inputs {
            path,
            requested: inputs,
            available: test.len(),
        });
    }
    let s = test.shape;
    let input_shape = Image {
        batch: 1,
        channels: s.channels,
        height: s.height,
        width: s.width,
    };
    let net = model::build(&header.model, input_shape, test.classes).map_err(|reason| {
        ExportError::Model {
            path: path.clone(),
            reason,
        }
    })?;
    if net.n_params != header.n_params || net.n_buffers != header.n_buffers {
        return Err(ExportError::Model {
            path,
            reason: format!(
                "the mlp for {} inputs and {} classes has {} parameters and {} buffers, \
                 the checkpoint {} and {}",
                s.len(),
                test.classes,
                net.n_params,
                net.n_buffers,
                header.n_params,
                header.n_buffers
            ),
        });
    }
    // The exported layout is Dense (Relu Dense)*: check it rather than assume it.
    let mut dense = Vec::new();
    for (i, node) in net.nodes.iter().enumerate() {
        match (&node.op, i % 2) {
            (Op::Dense(d), 0) => dense.push((*d, node.params.clone())),
            (Op::Relu, 1) => {}
            (op, _) => {
                return Err(ExportError::Model {
                    path,
                    reason: format!("node {i} is {op:?}; the export writes Dense (Relu Dense)*"),
                })
            }
        }
    }
    if net.nodes.len() % 2 == 0 {
        return Err(ExportError::Model {
            path,
            reason: "the network does not end with a dense layer".into(),
        });
    }
    let f = FracBits::new(header.frac_bits).map_err(|e| ExportError::Unsupported {
        path: path.clone(),
        field: "frac_bits",
        found: header.frac_bits.to_string(),
        expected: format!("1 to 40 ({e})"),
    })?;
    let mut e = Plain::new(f);

    // The images enter as training brings them in: f32 pixels widened to f64, encoded.
    let len = s.len();
    let mut x = vec![Z64::ZERO; inputs * len];
    for i in 0..inputs {
        let xs: Vec<f64> = test.image(i).iter().map(|&v| f64::from(v)).collect();
        e.encode_slice(&xs, &mut x[i * len..(i + 1) * len])
            .map_err(|(index, err)| ExportError::Encode {
                path: path.clone(),
                input: i,
                index,
                value: xs[index],
                reason: err.to_string(),
            })?;
    }
    let params: Vec<Z64> = state.params.iter().map(|&b| Z64::from_bits(b)).collect();
    let mut buffers: Vec<Z64> = state.buffers.iter().map(|&b| Z64::from_bits(b)).collect();
    let mut scratch = Vec::new();
    let logits = model::forward(
        &mut e,
        &net.nodes,
        x.clone(),
        inputs,
        &params,
        &mut buffers,
        None,
        &mut scratch,
    )
    .unwrap_or_else(|never| match never {});
    let classes = net.classes;
    let predictions: Vec<usize> = logits.chunks_exact(classes).map(argmax_signed).collect();
    let labels: Vec<usize> = test.labels[..inputs].iter().map(|&l| l as usize).collect();

    let mut layer_sizes = vec![dense[0].0.inputs];
    layer_sizes.extend(dense.iter().map(|(d, _)| d.outputs));
    let source = render(&Render {
        header: &header,
        checkpoint: &path,
        test,
        layer_sizes: &layer_sizes,
        dense: &dense
            .iter()
            .map(|(d, r)| {
                let p = &params[r.clone()];
                p.split_at(d.weights())
            })
            .collect::<Vec<_>>(),
        inputs: &x,
        len,
        logits: &logits,
        classes,
        predictions: &predictions,
        labels: &labels,
    });
    write_atomic(out, source.as_bytes())?;
    Ok(ExportSummary {
        out: out.to_path_buf(),
        data: header.data.clone(),
        frac_bits: header.frac_bits,
        layer_sizes,
        parameters: net.n_params,
        predictions,
        labels,
        logits: logits.iter().map(|v| v.to_bits()).collect(),
        bytes: source.len(),
    })
}

fn check_header(h: &Header, path: &Path) -> Result<(), ExportError> {
    let unsupported = |field, found: &str, expected: &str| ExportError::Unsupported {
        path: path.to_path_buf(),
        field,
        found: found.to_string(),
        expected: expected.to_string(),
    };
    if h.model != MODEL {
        return Err(unsupported("model", &h.model, "'mlp'"));
    }
    if h.engine != "plain" {
        return Err(unsupported(
            "engine",
            &h.engine,
            "'plain' (a fixed-point checkpoint: train with --engine plain)",
        ));
    }
    if h.data != "synthetic" && h.data != "mnist" {
        return Err(unsupported("data", &h.data, "'synthetic' or 'mnist'"));
    }
    Ok(())
}

/// The data the checkpoint was trained on, as `ringnn train` loaded it: the training split
/// truncated to the checkpoint's `train_samples` (its normalisation statistics), and at
/// least `inputs` test images (the first ones are the same whatever the test limit was).
fn load_split(
    h: &Header,
    data_dir: Option<&Path>,
    inputs: usize,
    path: &Path,
) -> Result<Split, ExportError> {
    let mut split = if h.data == "synthetic" {
        // Synthetic image i depends only on the seed and i, so asking for `inputs` test
        // images gives the first `inputs` of any larger test set.
        data::synth::synthetic_digits(h.train_samples, inputs, h.seed)
    } else {
        let dir = data::data_dir(data_dir).ok_or_else(|| ExportError::NoDataDir {
            path: path.to_path_buf(),
        })?;
        let mut s = data::idx::load_mnist(&dir).map_err(|source| ExportError::Data {
            path: path.to_path_buf(),
            source,
        })?;
        truncate(&mut s.train, h.train_samples);
        truncate(&mut s.test, inputs);
        s
    };
    if split.train.len() != h.train_samples {
        return Err(ExportError::Model {
            path: path.to_path_buf(),
            reason: format!(
                "trained on {} samples, but the data has {}",
                h.train_samples,
                split.train.len()
            ),
        });
    }
    data::normalise(&mut split);
    Ok(split)
}

fn truncate(d: &mut Dataset, n: usize) {
    if n < d.len() {
        d.images.truncate(n * d.shape.len());
        d.labels.truncate(n);
    }
}

/// The index of the largest signed value, the first on ties.
fn argmax_signed(row: &[Z64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if v.to_signed() > row[best].to_signed() {
            best = i;
        }
    }
    best
}

struct Render<'a> {
    header: &'a Header,
    checkpoint: &'a Path,
    test: &'a Dataset,
    layer_sizes: &'a [usize],
    dense: &'a [(&'a [Z64], &'a [Z64])],
    inputs: &'a [Z64],
    len: usize,
    logits: &'a [Z64],
    classes: usize,
    predictions: &'a [usize],
    labels: &'a [usize],
}

/// Elements per line of the generated arrays.
const PER_LINE: usize = 8;

fn z64_list(s: &mut String, xs: &[Z64], indent: &str) {
    for line in xs.chunks(PER_LINE) {
        s.push_str(indent);
        for (j, v) in line.iter().enumerate() {
            if j > 0 {
                s.push(' ');
            }
            // Writing to a String cannot fail.
            let _ = write!(s, "Z64({:#x}),", v.to_bits());
        }
        s.push('\n');
    }
}

fn render(r: &Render<'_>) -> String {
    let h = r.header;
    let n = r.predictions.len();
    let mut s = String::with_capacity(32 * (r.inputs.len() + h.n_params) + 4096);
    let max_width = r.layer_sizes.iter().copied().max().unwrap_or(0);
    let _ = writeln!(
        s,
        "// Generated by ringnn's export (ringnn_host::export) from {}. Do not edit.\n\
         // Model {}, data {} (seed {}, {} training samples), engine {}, f = {}, exp {}, \
         grad {}, {} epochs ({} steps).\n\
         // Ring elements are raw Z_2^64 bits; `Z64` must be in scope where this is included.\n",
        r.checkpoint.display(),
        h.model,
        h.data,
        h.seed,
        h.train_samples,
        h.engine,
        h.frac_bits,
        h.exp,
        h.grad,
        h.epochs_done,
        h.steps_done,
    );
    let consts: [(&str, &str, String); 6] = [
        (
            "Fractional bits of the fixed-point format (the `Plain` engine's `f`).",
            "FRAC_BITS: u32",
            h.frac_bits.to_string(),
        ),
        ("Dense layers.", "N_DENSE: usize", r.dense.len().to_string()),
        (
            "The widest layer (input included): the activation buffers' length.",
            "MAX_WIDTH: usize",
            max_width.to_string(),
        ),
        ("Output classes.", "CLASSES: usize", r.classes.to_string()),
        ("Exported test inputs.", "N_INPUTS: usize", n.to_string()),
        (
            "The dataset the model was trained on.",
            "DATA: &str",
            format!("{:?}", h.data),
        ),
    ];
    for (doc, decl, value) in consts {
        let _ = writeln!(s, "/// {doc}\npub const {decl} = {value};");
    }
    let _ = writeln!(
        s,
        "/// Layer widths, input first; a ReLU follows every dense layer but the last.\n\
         pub const LAYER_SIZES: [usize; {}] = {:?};",
        r.layer_sizes.len(),
        r.layer_sizes
    );
    for (i, (w, b)) in r.dense.iter().enumerate() {
        let _ = writeln!(
            s,
            "/// Dense layer {i}: weights, {} x {} row-major (inputs x outputs).\n\
             pub static W{i}: [Z64; {}] = [",
            r.layer_sizes[i],
            r.layer_sizes[i + 1],
            w.len()
        );
        z64_list(&mut s, w, "    ");
        let _ = writeln!(
            s,
            "];\n/// Dense layer {i}: bias.\npub static B{i}: [Z64; {}] = [",
            b.len()
        );
        z64_list(&mut s, b, "    ");
        s.push_str("];\n");
    }
    let _ = writeln!(
        s,
        "/// Each dense layer's (weights, bias), in order.\n\
         pub static PARAMS: [(&[Z64], &[Z64]); {}] = [{}];",
        r.dense.len(),
        (0..r.dense.len())
            .map(|i| format!("(&W{i}, &B{i})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "/// The first {n} test images of {}, normalised and encoded.\n\
         pub static INPUTS: [[Z64; {}]; {n}] = [",
        r.test.name, r.len
    );
    for x in r.inputs.chunks_exact(r.len) {
        s.push_str("    [\n");
        z64_list(&mut s, x, "        ");
        s.push_str("    ],\n");
    }
    s.push_str("];\n");
    let _ = writeln!(
        s,
        "/// The host's output logits for each input (`Plain`, evaluation mode).\n\
         pub static EXPECTED_LOGITS: [[Z64; {}]; {n}] = [",
        r.classes
    );
    for l in r.logits.chunks_exact(r.classes) {
        s.push_str("    [\n");
        z64_list(&mut s, l, "        ");
        s.push_str("    ],\n");
    }
    s.push_str("];\n");
    let _ = writeln!(
        s,
        "/// The host's predicted class for each input (argmax of the signed logits, first on ties).\n\
         pub static EXPECTED_CLASSES: [u8; {n}] = {:?};\n\
         /// The true label of each input.\n\
         pub static LABELS: [u8; {n}] = {:?};",
        r.predictions,
        r.labels
    );
    s
}

fn write_atomic(out: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| ExportError::Write { path: p, source }
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err(dir))?;
    }
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(err(&tmp))?;
    std::fs::rename(&tmp, out).map_err(err(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::checkpoint::State;
    use crate::train::{train, DataKind, EngineKind, TrainConfig};
    use ringnn_core::approx::{ExpApprox, TanhApprox};
    use ringnn_core::layers::{Dense, Relu};
    use ringnn_core::softmax::GradMode;

    /// A fresh folder, removed when the returned value is dropped.
    fn temp(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("ringnn-export-{tag}-"))
            .tempdir()
            .unwrap()
    }

    fn config(engine: EngineKind, dir: &Path) -> TrainConfig {
        TrainConfig {
            model: crate::train::Model::Mlp,
            data: DataKind::Synthetic,
            data_dir: None,
            engine,
            frac_bits: FracBits::new(13).unwrap(),
            exp: ExpApprox::Pwl(4),
            tanh: TanhApprox::Hard,
            sigmoid: ringnn_core::approx::SigmoidApprox::SecureMl,
            grad: GradMode::Exact,
            subtract_max: true,
            epochs: 1,
            batch: 50,
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: crate::train::ScheduleSpec::Constant,
            insecure_dealer_seed: None,
            comparison: Default::default(),
            seed: 5,
            train_limit: Some(300),
            test_limit: Some(40),
            checkpoint: Some(dir.to_path_buf()),
            resume: false,
            progress: false,
        }
    }

    /// The `Z64(0x..)` elements of the static `name` in a generated file, flattened.
    fn array(src: &str, name: &str) -> (String, Vec<u64>) {
        let start = src
            .find(&format!("pub static {name}: "))
            .unwrap_or_else(|| panic!("no static {name}"));
        let rest = &src[start..];
        let decl_end = rest.find(" = [").expect("an array initialiser");
        let decl = rest[..decl_end].to_string();
        let body = &rest[decl_end..rest.find("\n];").expect("the array's end")];
        let vals = body
            .split("Z64(0x")
            .skip(1)
            .map(|t| u64::from_str_radix(&t[..t.find(')').unwrap()], 16).unwrap())
            .collect();
        (decl, vals)
    }

    #[test]
    fn exports_a_trained_mlp_that_a_device_style_forward_reproduces() {
        let tmp = temp("ok");
        let dir = tmp.path();
        let cfg = config(EngineKind::Plain, dir);
        let result = train(&cfg).unwrap();
        let out = dir.join("model.rs");
        let n = 5;
        let sum = export(dir, &out, n, None).unwrap();
        assert_eq!(sum.layer_sizes, vec![784, 128, 128, 10]);
        assert_eq!(sum.parameters, result.parameters);
        assert_eq!((sum.predictions.len(), sum.labels.len()), (n, n));
        assert_eq!(sum.logits.len(), n * 10);
        let src = std::fs::read_to_string(&out).unwrap();
        assert_eq!(src.len(), sum.bytes);
        assert!(!out.with_extension("rs.tmp").exists());
        for (name, want) in [
            ("W0", 784 * 128),
            ("B0", 128),
            ("W1", 128 * 128),
            ("B1", 128),
            ("W2", 128 * 10),
            ("B2", 10),
            ("INPUTS", n * 784),
            ("EXPECTED_LOGITS", n * 10),
        ] {
            assert_eq!(array(&src, name).1.len(), want, "{name}");
        }
        assert!(array(&src, "W0").0.ends_with("[Z64; 100352]"));
        assert!(array(&src, "INPUTS").0.ends_with("[[Z64; 784]; 5]"));
        assert!(src.contains("pub const FRAC_BITS: u32 = 13;"));
        assert!(src.contains("pub const LAYER_SIZES: [usize; 4] = [784, 128, 128, 10];"));
        assert!(src.contains(
            "pub static PARAMS: [(&[Z64], &[Z64]); 3] = [(&W0, &B0), (&W1, &B1), (&W2, &B2)];"
        ));
        assert!(src.contains(&format!(
            "pub static EXPECTED_CLASSES: [u8; 5] = {:?};",
            sum.predictions
        )));
        assert!(src.contains(&format!("pub static LABELS: [u8; 5] = {:?};", sum.labels)));

        // The weights are the checkpoint's, in the checkpoint's order.
        let (_, state) = checkpoint::load(dir).unwrap();
        let written: Vec<u64> = ["W0", "B0", "W1", "B1", "W2", "B2"]
            .iter()
            .flat_map(|name| array(&src, name).1)
            .collect();
        assert_eq!(written, state.params);

        // What the firmware does, from the file alone: one input at a time through the
        // kernel's Dense and Relu on Plain, ping-ponging two buffers.
        let z = |v: Vec<u64>| -> Vec<Z64> { v.into_iter().map(Z64::from_bits).collect() };
        let params: Vec<(Vec<Z64>, Vec<Z64>)> = (0..3)
            .map(|i| {
                (
                    z(array(&src, &format!("W{i}")).1),
                    z(array(&src, &format!("B{i}")).1),
                )
            })
            .collect();
        let inputs = z(array(&src, "INPUTS").1);
        let expected = array(&src, "EXPECTED_LOGITS").1;
        let sizes = [784, 128, 128, 10];
        let mut e = Plain::new(FracBits::new(13).unwrap());
        for (k, x) in inputs.chunks_exact(784).enumerate() {
            let mut a = x.to_vec();
            for (i, (w, b)) in params.iter().enumerate() {
                let d = Dense::new(sizes[i], sizes[i + 1]);
                let mut y = vec![Z64::ZERO; d.outputs];
                d.forward(&mut e, &a, w, b, 1, &mut y).unwrap();
                if i + 1 < params.len() {
                    let mut s = vec![Z64::ZERO; Relu::scratch(y.len())];
                    let mut r = vec![Z64::ZERO; y.len()];
                    Relu::forward(&mut e, &y, &mut r, &mut s).unwrap();
                    y = r;
                }
                a = y;
            }
            let bits: Vec<u64> = a.iter().map(|v| v.to_bits()).collect();
            assert_eq!(bits, expected[k * 10..(k + 1) * 10], "input {k}");
            assert_eq!(argmax_signed(&a), sum.predictions[k]);
            assert_eq!(logits_hash(&bits), sum.logit_hashes()[k]);
        }

        // The inputs are the test set's first images as training normalised them: the
        // export's predictions agree with the trained model's accuracy being above chance.
        assert!(result.test_accuracy > 0.2, "{}", result.test_accuracy);
    }

    fn fake_checkpoint(dir: &Path, model: &str, engine: &str, data: &str) {
        let header = Header {
            model: model.into(),
            data: data.into(),
            engine: engine.into(),
            frac_bits: if engine == "plain" { 13 } else { 0 },
            exp: "pwl4".into(),
            grad: "exact".into(),
            n_params: 3,
            n_buffers: 0,
            epochs_done: 1,
            steps_done: 1,
            seed: 1,
            train_samples: 10,
            run: None,
            attempt: None,
        };
        let state = State {
            params: vec![0; 3],
            velocity: vec![0; 3],
            buffers: vec![],
        };
        checkpoint::save(dir, &header, &state).unwrap();
    }

    fn refused(model: &str, engine: &str, data: &str) -> (String, ExportError) {
        let tmp = temp("bad");
        let dir = tmp.path();
        fake_checkpoint(dir, model, engine, data);
        let out = dir.join("model.rs");
        let e = export(dir, &out, 2, None).unwrap_err();
        assert!(!out.exists(), "nothing is written on an error");
        let msg = e.to_string();
        assert!(
            msg.contains(&checkpoint::path_in(dir).display().to_string()),
            "{msg}"
        );
        (msg, e)
    }

    #[test]
    fn a_float_checkpoint_is_refused_naming_the_engine_field() {
        let (msg, e) = refused("mlp", "float", "synthetic");
        assert!(
            matches!(
                e,
                ExportError::Unsupported {
                    field: "engine",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(msg.contains("engine is 'float'"), "{msg}");
    }

    #[test]
    fn another_model_is_refused_naming_the_model_field() {
        let (msg, e) = refused("lenet", "plain", "synthetic");
        assert!(
            matches!(e, ExportError::Unsupported { field: "model", .. }),
            "{e:?}"
        );
        assert!(msg.contains("model is 'lenet'"), "{msg}");
    }

    #[test]
    fn cifar_data_is_refused_naming_the_data_field() {
        let (msg, e) = refused("mlp", "plain", "cifar10");
        assert!(
            matches!(e, ExportError::Unsupported { field: "data", .. }),
            "{e:?}"
        );
        assert!(msg.contains("data is 'cifar10'"), "{msg}");
    }

    #[test]
    fn a_checkpoint_of_another_shape_is_refused() {
        // An mlp header whose parameter count does not fit a 784-input network.
        let (msg, e) = refused("mlp", "plain", "synthetic");
        assert!(matches!(e, ExportError::Model { .. }), "{e:?}");
        assert!(msg.contains("parameters"), "{msg}");
    }

    #[test]
    fn zero_inputs_and_a_missing_checkpoint_are_errors() {
        let tmp = temp("zero");
        let dir = tmp.path();
        let e = export(dir, &dir.join("m.rs"), 1, None).unwrap_err();
        assert!(matches!(e, ExportError::Checkpoint(_)), "{e:?}");
        assert!(e.to_string().contains("checkpoint.bin"), "{e}");
        fake_checkpoint(dir, "mlp", "plain", "synthetic");
        let e = export(dir, &dir.join("m.rs"), 0, None).unwrap_err();
        assert!(
            matches!(e, ExportError::Inputs { requested: 0, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn hash_is_the_firmwares() {
        // Pinned in firmware/src/infer.rs's tests as well.
        assert_eq!(logits_hash(&[]), 0);
        assert_eq!(logits_hash(&[1, u64::MAX]), 0x06b5_dab1);
        let bytes: Vec<u8> = [1u64, u64::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(logits_hash(&[1, u64::MAX]), crate::files::crc32(&bytes));
    }

    #[test]
    fn argmax_takes_the_first_of_equal_signed_maxima() {
        let row = [
            Z64::from_signed(-5),
            Z64::from_signed(3),
            Z64::from_signed(3),
        ];
        assert_eq!(argmax_signed(&row), 1);
        // Bits with the top bit set are negative, not large.
        let row = [Z64::from_signed(1), Z64::from_bits(u64::MAX)];
        assert_eq!(argmax_signed(&row), 0);
    }
}
