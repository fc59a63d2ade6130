//! Training through the library and the binary: learning happens, runs are reproducible,
//! checkpoints resume exactly and bad input is a clear error.
use ringnn_core::approx::{ExpApprox, TanhApprox};
use ringnn_core::softmax::GradMode;
use ringnn_core::FracBits;
use ringnn_host::train::{train, DataKind, EngineKind, TrainConfig};
use std::path::PathBuf;
use std::process::Command;

fn cfg(model: &str, engine: EngineKind) -> TrainConfig {
    TrainConfig {
        model: model.parse().unwrap(),
        data: DataKind::Synthetic,
        data_dir: None,
        engine,
        frac_bits: FracBits::new(13).unwrap(),
        exp: ExpApprox::Pwl(4),
        tanh: TanhApprox::Hard,
        sigmoid: ringnn_core::approx::SigmoidApprox::SecureMl,
        grad: GradMode::Exact,
        subtract_max: false,
        epochs: 2,
        batch: 64,
        lr: 0.03,
        momentum: 0.9,
        weight_decay: 0.0,
        schedule: "constant".parse().unwrap(),
        seed: 3,
        train_limit: Some(3000),
        test_limit: Some(500),
        checkpoint: None,
        resume: false,
        progress: false,
        insecure_dealer_seed: None,
        comparison: Default::default(),
    }
}

/// A path `name` inside a fresh private folder (not created itself).
fn tmp(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix("ringnn-train-")
        .tempdir()
        .expect("a temporary folder")
        .keep()
        .join(name)
}

#[test]
fn mlp_learns_synthetic_digits_on_plain_and_float_alike() {
    // With pwl4 this small run is noisy (500 test images, momentum 0.9): check learning.
    let p = train(&cfg("mlp", EngineKind::Plain)).unwrap();
    assert!(p.test_accuracy > 0.75, "plain {}", p.test_accuracy);
    assert_eq!(p.overflow_count, 0);
    assert_eq!(p.history.len(), 2);
    assert!(p.history[1].train_loss < p.history[0].train_loss);
    // With exact e^x the two engines follow each other closely: compare them there.
    let mut pe = cfg("mlp", EngineKind::Plain);
    pe.exp = ExpApprox::Exact;
    let mut fe = cfg("mlp", EngineKind::Float);
    fe.exp = ExpApprox::Exact;
    let (p, f) = (train(&pe).unwrap(), train(&fe).unwrap());
    assert!(
        p.test_accuracy > 0.9 && f.test_accuracy > 0.9,
        "{} {}",
        p.test_accuracy,
        f.test_accuracy
    );
    assert!(
        (p.test_accuracy - f.test_accuracy).abs() < 0.04,
        "{} vs {}",
        p.test_accuracy,
        f.test_accuracy
    );
    assert!((p.train_loss - f.train_loss).abs() < 0.1 * f.train_loss.max(0.1));
}

#[test]
fn same_seed_gives_bit_identical_plain_runs() {
    let a = train(&cfg("mlp", EngineKind::Plain)).unwrap();
    let b = train(&cfg("mlp", EngineKind::Plain)).unwrap();
    assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
    assert_eq!(a.test_accuracy, b.test_accuracy);
    let mut c = cfg("mlp", EngineKind::Plain);
    c.seed = 4;
    assert_ne!(
        train(&c).unwrap().train_loss.to_bits(),
        a.train_loss.to_bits()
    );
}

#[test]
fn resuming_from_a_checkpoint_continues_exactly() {
    let dir = tmp("resume");
    let mut whole = cfg("mlp", EngineKind::Plain);
    whole.checkpoint = Some(dir.join("whole"));
    let full = train(&whole).unwrap();
    let mut first = cfg("mlp", EngineKind::Plain);
    first.epochs = 1;
    first.checkpoint = Some(dir.join("split"));
    train(&first).unwrap();
    let mut rest = cfg("mlp", EngineKind::Plain);
    rest.checkpoint = Some(dir.join("split"));
    rest.resume = true;
    let resumed = train(&rest).unwrap();
    assert_eq!(resumed.history.len(), 1);
    assert_eq!(resumed.train_loss.to_bits(), full.train_loss.to_bits());
    assert_eq!(resumed.test_accuracy, full.test_accuracy);
    let a = std::fs::read(dir.join("whole/checkpoint.bin")).unwrap();
    let b = std::fs::read(dir.join("split/checkpoint.bin")).unwrap();
    assert_eq!(a, b, "the resumed run ends with the same checkpoint bytes");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_or_mismatched_checkpoints_are_clear_errors() {
    let dir = tmp("corrupt");
    let mut c = cfg("mlp", EngineKind::Plain);
    c.epochs = 1;
    c.checkpoint = Some(dir.clone());
    train(&c).unwrap();
    let path = dir.join("checkpoint.bin");
    let good = std::fs::read(&path).unwrap();
    // Another precision: mismatch named.
    let mut other = c.clone();
    other.frac_bits = FracBits::new(16).unwrap();
    other.resume = true;
    other.epochs = 2;
    let err = train(&other).unwrap_err().to_string();
    assert!(
        err.contains("frac_bits") && err.contains("checkpoint.bin"),
        "{err}"
    );
    // A flipped byte: corruption named, and the good file is not replaced by the failed run.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(&path, &bad).unwrap();
    let mut again = c.clone();
    again.resume = true;
    again.epochs = 2;
    let err = train(&again).unwrap_err().to_string();
    assert!(
        err.contains("checksum") && err.contains("checkpoint.bin"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), bad);
    // Truncated.
    std::fs::write(&path, &good[..good.len() / 3]).unwrap();
    assert!(train(&again).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// LeNet learns on Plain in one short epoch; ResNet-20 runs.
///
/// The LeNet setting is one where the exact gradient through pwl4 is stable on both
/// engines. The earlier one (batch 64, lr 0.03, 1,000 samples) was not: over seeds 1-8
/// Plain ended at 10% in 3 before the guard-bit fix of the label ratio and at 10-12.5% in
/// 4 after it, Float at 10% in 3, with a train loss above ln 10 in most; this seed (3)
/// gave Plain 34% before the fix and 10% after it, Float 10% both times. Here (batch 32, lr 0.01,
/// 2,000 samples) seeds 2-8 reach 67-88% on Plain and 67-84% on Float, and seed 1 stays
/// at 13% and 16% on both (docs/results.md, section 5a: that gradient is fragile).
#[test]
fn lenet_and_resnet20_train_on_plain() {
    let mut l = cfg("lenet", EngineKind::Plain);
    l.epochs = 1;
    l.batch = 32;
    l.lr = 0.01;
    l.train_limit = Some(2000);
    l.test_limit = Some(200);
    let r = train(&l).unwrap();
    assert!(r.test_accuracy > 0.3, "lenet {}", r.test_accuracy);
    let mut n = cfg("resnet20", EngineKind::Plain);
    n.epochs = 1;
    n.batch = 8;
    n.train_limit = Some(16);
    n.test_limit = Some(8);
    let r = train(&n).unwrap();
    assert!(r.train_loss.is_finite());
    assert!(
        r.parameters > 250_000,
        "resnet20 has about 0.27M parameters: {}",
        r.parameters
    );
}

fn ringnn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringnn"))
        .args(args)
        .env_remove("RINGNN_DATA")
        .output()
        .unwrap()
}

#[test]
fn train_command_prints_one_json_line_with_the_documented_fields() {
    let out = ringnn(&[
        "train",
        "--epochs",
        "1",
        "--train-limit",
        "600",
        "--test-limit",
        "200",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    for k in [
        "model",
        "data",
        "engine",
        "frac_bits",
        "exp",
        "epochs",
        "train_samples",
        "test_accuracy",
        "train_seconds",
        "samples_per_sec",
        "overflow_count",
        "subtract_max",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {last}");
    }
    assert_eq!(v["data"], "synthetic");
    assert_eq!(v["frac_bits"], 13);
    // The result names only the approximations that ran: an image model has no tanh.
    assert!(v.get("tanh").is_none(), "{last}");
    // The default pwl4 keeps the paper's setting: no shift without --subtract-max.
    assert_eq!(v["exp"], "pwl4");
    assert_eq!(v["subtract_max"], false);
}

#[test]
fn bad_training_arguments_are_clear_errors() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["train", "--model", "vgg"],
            &["--model", "vgg", "lenet", "resnet20"],
        ),
        (
            &["train", "--data", "imagenet"],
            &["--data", "imagenet", "cifar10"],
        ),
        (
            &["train", "--engine", "gpu"],
            &["--engine", "plain", "float"],
        ),
        (&["train", "--exp", "pwl9"], &["--exp", "pwl9", "pwl4"]),
        (&["train", "--frac-bits", "41"], &["--frac-bits", "1..=40"]),
        (&["train", "--grad", "x"], &["--grad", "surrogate"]),
        (
            &["train", "--data", "mnist"],
            &["--data-dir", "RINGNN_DATA"],
        ),
        (&["train", "--resume"], &["--resume", "--checkpoint"]),
        (
            &["train", "--model", "seq2seq"],
            &["--model", "seq2seq", "tatoeba"],
        ),
        (&["train", "--data", "tatoeba"], &["--model", "tatoeba"]),
        (
            &[
                "train",
                "--model",
                "seq2seq",
                "--data",
                "tatoeba",
                "--sigmoid",
                "x",
            ],
            &["--sigmoid", "secureml"],
        ),
        (
            &["train", "--schedule", "linear", "--train-limit", "10"],
            &["--schedule", "cosine"],
        ),
        (
            &["train", "--data", "mnist", "--data-dir", "/nonexistent/x"],
            &["/nonexistent/x"],
        ),
    ];
    for (args, needles) in cases {
        let out = ringnn(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr);
        for n in *needles {
            assert!(err.contains(n), "{args:?}: '{n}' not in: {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn seq2seq_trains_from_the_command_line_when_tatoeba_is_present() {
    let dir = std::env::var_os("RINGNN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))
        });
    if !dir.join("tatoeba").exists() {
        eprintln!("skipping: no tatoeba folder under RINGNN_DATA or ../shared/data");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ringnn"))
        .args([
            "train",
            "--model",
            "seq2seq",
            "--data",
            "tatoeba",
            "--epochs",
            "1",
            "--train-limit",
            "256",
            "--test-limit",
            "64",
            "--tanh",
            "hard",
            "--exp",
            "pwl4",
            "--json",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(v["perplexity"].as_f64().unwrap().is_finite());
    assert_eq!(v["model"], "seq2seq");
    assert_eq!(v["tanh"], "hard");
}

#[test]
fn export_command_writes_the_firmware_source_or_names_the_bad_checkpoint() {
    let dir = tmp("export");
    let ck = dir.join("ck");
    let out = ringnn(&[
        "train",
        "--epochs",
        "1",
        "--train-limit",
        "300",
        "--test-limit",
        "50",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.join("model.rs");
    let out = ringnn(&[
        "export",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
        "--inputs",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let src = std::fs::read_to_string(&file).unwrap();
    assert!(
        src.contains("EXPECTED_LOGITS") && src.contains("N_INPUTS: usize = 3"),
        "{}",
        &src[..200.min(src.len())]
    );
    let out = ringnn(&[
        "export",
        "--checkpoint",
        "/nonexistent/ck",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ck"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_mpc_run_the_servers_cannot_compute_is_refused_before_any_process_starts() {
    let out = ringnn(&["train", "--engine", "mpc", "--exp", "exact"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--exp") && err.contains("secret shares"),
        "{err}"
    );
    assert!(
        !err.contains("secure training in"),
        "a process started: {err}"
    );
    // Seq2seq trains on two servers too, and is held to the same checks.
    let out = ringnn(&[
        "train", "--engine", "mpc", "--model", "seq2seq", "--data", "tatoeba", "--exp", "exact",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--exp") && !err.contains("secure training in"),
        "{err}"
    );
    // Without its corpus, the owner's side fails before a dealer or server starts.
    let out = ringnn(&[
        "train", "--engine", "mpc", "--model", "seq2seq", "--data", "tatoeba",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--data-dir") && !err.contains("[dealer]"),
        "{err}"
    );
}
