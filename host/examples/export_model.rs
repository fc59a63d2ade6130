//! Trains a small fixed-point MLP briefly and exports it with test inputs for the
//! firmware's on-device inference (what `scripts/firmware` runs before building the
//! firmware).
//!
//! Usage: `cargo run --release -p ringnn-host --example export_model -- OUT_FILE [INPUTS]`
//!
//! Data: MNIST from `RINGNN_DATA` when that is set, else ringnn's synthetic digits. The run:
//! model `mlp` (784-128-128-10), engine `plain` at f = 13 (SecureML's setting), 10,000
//! training images, 2 epochs, batch 128, lr 0.05, momentum 0.9, softmax with the paper's
//! pwl4 e^x and SecureML's surrogate gradient `p - y` (the exact gradient of pwl4 softmax
//! diverged at this learning rate), seed 1; checkpoint in `export-model-ckpt/` beside
//! `OUT_FILE`. About 2 to 3 seconds in release.
//!
//! INPUTS (default 8) test images are exported. One summary line goes to stdout, then one
//! `INFER i=<i> pred=<class> hash=<CRC-32 of the logits' bits>` line per exported input:
//! what the device's INFER lines must begin with.

use ringnn_core::approx::{ExpApprox, TanhApprox};
use ringnn_core::softmax::GradMode;
use ringnn_core::FracBits;
use ringnn_host::data;
use ringnn_host::export::export;
use ringnn_host::train::{train, DataKind, EngineKind, TrainConfig};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: export_model OUT_FILE [INPUTS]"))?,
    );
    let inputs: usize = match args.next() {
        Some(v) => v
            .to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("INPUTS must be a number"))?,
        None => 8,
    };
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."))
        .join("export-model-ckpt");
    let data_dir = data::data_dir(None);
    let kind = if data_dir.is_some() {
        DataKind::Mnist
    } else {
        DataKind::Synthetic
    };
    let cfg = TrainConfig {
        model: "mlp".parse().unwrap(),
        data: kind,
        data_dir: data_dir.clone(),
        engine: EngineKind::Plain,
        frac_bits: FracBits::new(13).map_err(|e| anyhow::anyhow!("{e}"))?,
        exp: ExpApprox::Pwl(4),
        tanh: TanhApprox::Hard,
        sigmoid: ringnn_core::approx::SigmoidApprox::SecureMl,
        grad: GradMode::Surrogate,
        subtract_max: true,
        epochs: 2,
        batch: 128,
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.0,
        schedule: "constant".parse().unwrap(),
        seed: 1,
        train_limit: Some(10_000),
        test_limit: Some(1000),
        checkpoint: Some(dir.clone()),
        resume: false,
        progress: true,
        insecure_dealer_seed: None,
        comparison: Default::default(),
    };
    let result = train(&cfg)?;
    let sum = export(&dir, &out, inputs, data_dir.as_deref())?;
    println!(
        "export_model: {} mlp {:?} f={} trained on {} images, test accuracy {:.2}% on {}; \
         {} inputs exported, host predictions {:?} (labels {:?}, {} correct); {} bytes -> {}",
        sum.data,
        sum.layer_sizes,
        sum.frac_bits,
        result.train_samples,
        100.0 * result.test_accuracy,
        result.test_samples,
        sum.predictions.len(),
        sum.predictions,
        sum.labels,
        sum.correct(),
        sum.bytes,
        sum.out.display()
    );
    // The lines the device's INFER lines must begin with (scripts/firmware compares them).
    for (i, (p, h)) in sum.predictions.iter().zip(sum.logit_hashes()).enumerate() {
        println!("INFER i={i} pred={p} hash={h:#010x}");
    }
    Ok(())
}
