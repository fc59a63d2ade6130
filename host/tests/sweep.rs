//! `ringnn sweep` and `ringnn reproduce` as a user runs them: the files a sweep writes, a
//! restart that skips finished runs, a failing run recorded without stopping the sweep,
//! and bad input refused before any run starts.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ringnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringnn"))
        .args(args)
        .env_remove("RINGNN_DATA")
        .output()
        .expect("the ringnn binary runs")
}

/// A path `name` inside a fresh private folder (not created itself).
fn tmp(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix("ringnn-sweep-")
        .tempdir()
        .expect("a temporary folder")
        .keep()
        .join(name)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

const TINY: &[&str] = &[
    "sweep",
    "--model",
    "mlp",
    "--data",
    "synthetic",
    "--exp",
    "exact,pwl4",
    "--frac-bits",
    "13,16",
    "--engine",
    "plain",
    "--epochs",
    "1",
    "--train-limit",
    "300",
    "--test-limit",
    "100",
];

#[test]
fn a_tiny_sweep_writes_its_files_and_a_restart_skips_every_run() {
    let dir = tmp("tiny");
    let out_arg = dir.display().to_string();
    let mut args = TINY.to_vec();
    args.extend(["--out", &out_arg]);
    let first = ringnn(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let text = String::from_utf8(first.stdout).unwrap();
    assert!(text.contains("4 runs: 0 skipped"), "{text}");
    for f in [
        "runs.csv",
        "runs.jsonl",
        "table.md",
        "accuracy.svg",
        "accuracy.png",
        "accuracy_vs_frac_bits.svg",
        "accuracy_vs_frac_bits.png",
        "loss_curves.svg",
        "loss_curves.png",
    ] {
        let p = dir.join(f);
        assert!(
            std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false),
            "missing {f}"
        );
    }
    let jsonl = lines(&dir.join("runs.jsonl"));
    assert_eq!(jsonl.len(), 4);
    for l in &jsonl {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["status"], "ok");
        assert!(v["key"].as_str().unwrap().starts_with("mlp|synthetic|f="));
        assert!(v["test_accuracy"].as_f64().is_some());
        assert_eq!(v["history"].as_array().unwrap().len(), 1);
        assert_eq!(v["seed"], 1);
    }
    let csv = lines(&dir.join("runs.csv"));
    assert_eq!(csv.len(), 5);
    assert!(csv[0].starts_with("key,status,model,data,engine,frac_bits,exp,tanh"));
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(table.contains("| approximation | mlp, synthetic, f=13 | mlp, synthetic, f=16 |"));
    assert!(table.contains("\n| exact | ") && table.contains("\n| pwl4 | "));
    assert!(text.contains(&table), "the table is printed");

    let again = ringnn(&args);
    assert!(again.status.success());
    let text = String::from_utf8(again.stdout).unwrap();
    assert!(text.contains("4 runs: 4 skipped"), "{text}");
    assert_eq!(lines(&dir.join("runs.jsonl")).len(), 4);
    assert_eq!(lines(&dir.join("runs.csv")).len(), 5);
    assert_eq!(
        std::fs::read_to_string(dir.join("table.md")).unwrap(),
        table
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_run_is_recorded_and_the_sweep_goes_on() {
    let dir = tmp("fail");
    let missing = tmp("no-data-here");
    let out = ringnn(&[
        "sweep",
        "--data",
        "mnist,synthetic",
        "--data-dir",
        &missing.display().to_string(),
        "--exp",
        "pwl4",
        "--frac-bits",
        "13",
        "--epochs",
        "1",
        "--train-limit",
        "200",
        "--test-limit",
        "100",
        "--out",
        &dir.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1 finished, 1 failed"), "{text}");
    let recs: Vec<serde_json::Value> = lines(&dir.join("runs.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2);
    let failed = recs.iter().find(|r| r["data"] == "mnist").unwrap();
    assert_eq!(failed["status"], "error");
    assert!(
        failed["error"].as_str().unwrap().contains("not found"),
        "{failed}"
    );
    let ok = recs.iter().find(|r| r["data"] == "synthetic").unwrap();
    assert_eq!(ok["status"], "ok");
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(
        table.contains("| failed |") && table.contains("## Failed runs"),
        "{table}"
    );
    // A restart tries the failed run again (and only it).
    let again = ringnn(&[
        "sweep",
        "--data",
        "mnist,synthetic",
        "--data-dir",
        &missing.display().to_string(),
        "--exp",
        "pwl4",
        "--frac-bits",
        "13",
        "--epochs",
        "1",
        "--train-limit",
        "200",
        "--test-limit",
        "100",
        "--out",
        &dir.display().to_string(),
    ]);
    let text = String::from_utf8(again.stdout).unwrap();
    assert!(text.contains("2 runs: 1 skipped"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_refused_before_any_run() {
    let dir = tmp("bad");
    let file = tmp("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let under_file = file.join("out").display().to_string();
    let out_arg = dir.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--model", "mlp,nope"],
            "unknown model 'nope'; valid: mlp, lenet",
        ),
        (&["--data", "imagenet"], "unknown data 'imagenet'"),
        (&["--exp", "pwl4,taylor9"], "taylor9"),
        (
            &["--exp", ","],
            "--exp: the list is empty; give at least one of: secureml",
        ),
        (&["--model", ""], "--model: the list is empty"),
        (&["--tanh", "soft"], "soft"),
        // Two servers cannot compute exact e^x: with nothing else, nothing is left to run.
        (
            &["--engine", "mpc", "--exp", "exact"],
            "--exp: no run left: two servers cannot compute exact",
        ),
        (
            &["--engine", "gpu"],
            "unknown engine 'gpu'; valid: plain, float",
        ),
        (&["--frac-bits", "13,99"], "--frac-bits"),
        (&["--frac-bits", ""], "--frac-bits: the list is empty"),
        (&["--seeds", "0"], "--seeds: must be at least 1"),
        (&["--data", "mnist"], "mnist needs a data directory"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["sweep", "--out", &out_arg];
        args.extend_from_slice(extra);
        let out = ringnn(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} was accepted");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!err.contains("[1/"), "{extra:?}: a run started");
        assert!(!dir.join("runs.jsonl").exists(), "{extra:?}: a run started");
    }
    let out = ringnn(&["sweep", "--out", &under_file]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--out: cannot create the output folder"),
        "{err}"
    );
    std::fs::remove_file(&file).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reproduce_refuses_unknown_tables_and_scales_and_explains_a_missing_seq2seq() {
    let out = ringnn(&["reproduce", "table4"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid: table2, table3"));
    let out = ringnn(&["reproduce", "table2", "--scale", "huge"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("valid: quick, full"));
    let out = ringnn(&["reproduce", "table2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cifar10 needs a data directory"));
    if !ringnn_host::train::model::MODELS.contains(&"seq2seq") {
        let out = ringnn(&[
            "reproduce",
            "table3",
            "--out",
            &tmp("t3").display().to_string(),
        ]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("seq2seq is not available in this build")
        );
    }
}

#[test]
fn a_sweep_over_plain_and_mpc_records_both_engines_and_the_servers_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let run = ringnn(&[
        "sweep",
        "--model",
        "mlp",
        "--data",
        "synthetic",
        "--engine",
        "plain,mpc",
        "--exp",
        "exact,pwl4,secureml",
        "--frac-bits",
        "13",
        "--epochs",
        "1",
        // Whole batches of 128, so that every step is alike (the cost check below).
        "--train-limit",
        "256",
        "--test-limit",
        "100",
        "--out",
        out,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records: Vec<serde_json::Value> = lines(&dir.path().join("runs.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // exact runs on plain only: two servers have no protocol for it.
    assert_eq!(records.len(), 5);
    assert!(!records
        .iter()
        .any(|r| r["engine"] == "mpc" && r["exp"] == "exact"));
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        let mpc = r["engine"] == "mpc";
        // Only the two-party rows carry traffic, and they never reveal a training loss.
        assert_eq!(
            r["mpc_bytes_per_step"].as_f64().is_some_and(|b| b > 0.0),
            mpc,
            "{r}"
        );
        assert_eq!(r["rounds"].as_u64().is_some_and(|n| n > 0), mpc, "{r}");
        assert_eq!(r["train_loss"].is_null(), mpc, "{r}");
    }
    let csv = lines(&dir.path().join("runs.csv"));
    assert!(csv[0].contains("mpc_bytes_per_step"), "{}", csv[0]);
    let table = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(
        table.contains("| approximation | mlp, synthetic, f=13 | mlp, synthetic, mpc f=13 |"),
        "{table}"
    );
    assert!(
        table.contains("## Two-party cost per training step"),
        "{table}"
    );
    assert!(table.contains(" rounds |"), "{table}");
    // The counted cost of a step (every Plain cell) is what the two-party runs sent.
    let row_after = |section: &str, label: &str| -> String {
        let at = table
            .find(section)
            .unwrap_or_else(|| panic!("{section}: {table}"));
        table[at..]
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("{label} under {section}: {table}"))
            .to_string()
    };
    for exp in ["pwl4", "secureml"] {
        let label = format!("| {exp} |");
        let measured = row_after("## Two-party cost per training step", &label);
        let counted = row_after("## Two-party cost of one training step (counted", &label);
        let nums = |l: &str| -> Vec<f64> {
            l[label.len()..]
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .filter_map(|t| t.parse().ok())
                .collect()
        };
        // measured: MB, rounds; counted: MB, rounds, dealer MB.
        assert_eq!(
            nums(&measured)[..2],
            nums(&counted)[..2],
            "{measured} vs {counted}"
        );
    }
}

#[test]
fn shards_run_disjoint_parts_of_the_grid_and_merge_into_one_table() {
    let root = tempfile::tempdir().unwrap();
    let dir = |n: &str| root.path().join(n).display().to_string();
    let grid = |extra: &[&str]| {
        let mut a = TINY.to_vec();
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ringnn(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    // TINY is 4 runs: shard 1/2 takes runs 1 and 3, shard 2/2 runs 2 and 4.
    let (a, b, all) = (dir("a"), dir("b"), dir("all"));
    run(grid(&["--shard", "1/2", "--out", &a]));
    run(grid(&["--shard", "2/2", "--out", &b]));
    let keys = |d: &str| -> Vec<String> {
        lines(&Path::new(d).join("runs.jsonl"))
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].to_string())
            .collect()
    };
    let (ka, kb) = (keys(&a), keys(&b));
    assert_eq!((ka.len(), kb.len()), (2, 2));
    assert!(ka.iter().all(|k| !kb.contains(k)), "the shards overlap");
    let table = std::fs::read_to_string(Path::new(&a).join("table.md")).unwrap();
    assert!(table.contains("2 not run yet"), "{table}");
    // Merging both shards: nothing left to run, one table of all four.
    let merge = format!("{a},{b}");
    let out = run(grid(&["--merge", &merge, "--out", &all]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 to run"), "{err}");
    assert_eq!(keys(&all).len(), 4);
    let table = std::fs::read_to_string(Path::new(&all).join("table.md")).unwrap();
    assert!(
        table.contains("4 runs finished, 0 failed, 0 not run yet"),
        "{table}"
    );
    // Bad shards and merge folders are refused before any run.
    for (extra, needle) in [
        (vec!["--shard", "3/2"], "--shard: '3/2' is not K/N"),
        (vec!["--shard", "0/2"], "--shard"),
        (
            vec!["--merge", "/nonexistent-ringnn"],
            "--merge: /nonexistent-ringnn holds no runs.jsonl",
        ),
    ] {
        let mut args = grid(&extra);
        args.extend(["--out".to_string(), dir("bad")]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ringnn(&a);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && e.contains(needle),
            "{extra:?}: {e}"
        );
    }
}
