//! The `ringnn` binary as a user runs it: output formats, plots and clear errors.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ringnn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringnn"))
        .args(args)
        .output()
        .expect("the ringnn binary runs")
}

/// The path `name` inside a fresh temporary folder; the folder goes when this is dropped.
struct TmpPath {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TmpPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TmpPath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

fn tmp(name: &str) -> TmpPath {
    let dir = tempfile::Builder::new()
        .prefix("ringnn-cli-")
        .tempdir()
        .unwrap();
    TmpPath {
        path: dir.path().join(name),
        _dir: dir,
    }
}

#[test]
fn default_approx_prints_an_aligned_table_of_every_function() {
    let out = ringnn(&["approx"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let header = text.lines().next().unwrap();
    for col in [
        "function",
        "approx",
        "precision",
        "max_abs_err",
        "max_rel_err",
        "vs_float",
    ] {
        assert!(header.contains(col), "{header}");
    }
    for needle in [
        "exp       pwl4",
        "tanh      hard",
        "sigmoid   secureml",
        "softmax   pwl4-fit",
        "f=24",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
}

#[test]
fn json_lines_have_the_documented_fields() {
    let out = ringnn(&[
        "approx",
        "--exp",
        "pwl4,taylor3",
        "--tanh",
        "hard",
        "--sigmoid",
        "exp",
        "--frac-bits",
        "8,16",
        "--json",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // (2 exp + 1 tanh + 2 sigmoid) x 3 precisions + 2 softmax x 3 precisions.
    assert_eq!(lines.len(), 5 * 3 + 2 * 3);
    for v in &lines {
        for k in [
            "function",
            "approx",
            "frac_bits",
            "max_abs_err",
            "max_rel_err",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
    }
    let sig: Vec<_> = lines
        .iter()
        .filter(|v| v["function"] == "sigmoid")
        .collect();
    assert!(sig.iter().any(|v| v["approx"] == "exp:pwl4"));
    let sm = lines
        .iter()
        .find(|v| v["function"] == "softmax" && v["frac_bits"] == 16)
        .unwrap();
    assert!(sm["mean_tv"].as_f64().unwrap() > 0.0);
    assert!(lines.iter().any(|v| v["frac_bits"].is_null()));
}

#[test]
fn unknown_names_and_bad_numbers_are_clear_errors() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["approx", "--exp", "pwl9"],
            &["--exp", "pwl9", "pwl4-fit", "limit8"],
        ),
        (&["approx", "--tanh", "soft"], &["--tanh", "soft", "hard"]),
        (
            &["approx", "--sigmoid", "x"],
            &["--sigmoid", "secureml", "exp"],
        ),
        (&["approx", "--frac-bits", "0"], &["--frac-bits", "1..=40"]),
        (&["approx", "--frac-bits", "8,x"], &["--frac-bits", "'x'"]),
        (&["approx", "--range", "4:-4"], &["--range", "LO < HI"]),
        (&["approx", "--range", "nope"], &["--range", "LO:HI"]),
        (&["approx", "--exp", ","], &["--exp", "empty"]),
        (&["approx", "--step", "0"], &["--step"]),
        (
            &["approx", "--exp", "none", "--sigmoid", "exp"],
            &["--sigmoid", "--exp"],
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
fn plots_are_written_as_svg_and_png() {
    let svg = tmp("a.svg");
    let out = ringnn(&[
        "approx",
        "--exp",
        "pwl4,taylor2",
        "--frac-bits",
        "13",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("polyline"));
    let png = tmp("a.png");
    let out = ringnn(&[
        "approx",
        "--tanh",
        "none",
        "--sigmoid",
        "none",
        "--frac-bits",
        "13",
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn bad_plot_paths_are_errors_naming_the_file() {
    let out = ringnn(&["approx", "--frac-bits", "13", "--plot", "out.pdf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("out.pdf"));
    let out = ringnn(&[
        "approx",
        "--frac-bits",
        "13",
        "--plot",
        "/nonexistent-dir/x/a.svg",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent-dir/x/a.svg"), "{err}");
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 14, item 13: each error names the flag at fault, comes before any work, and says
/// its cause once.
#[test]
fn error_paths_name_the_flag_before_any_work() {
    let out = ringnn(&["approx", "--softmax-cols", "0"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("--softmax-cols: must be at least 1"));
    // A plot that cannot be written is refused before the table is computed.
    let out = ringnn(&["approx", "--plot", "/nonexistent-ringnn/x.png"]);
    assert!(!out.status.success() && out.stdout.is_empty());
    let err = stderr_of(&out);
    assert!(err.contains("--plot") && !err.contains("Os {"), "{err}");
    // --checkpoint given a file: refused at once, the cause said once.
    let file = tmp("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = ringnn(&["train", "--checkpoint", file.to_str().unwrap()]);
    let err = stderr_of(&out);
    assert!(
        !out.status.success() && err.contains("--checkpoint") && !err.contains("epoch 1"),
        "{err}"
    );
    let out = ringnn(&[
        "train",
        "--train-limit",
        "200",
        "--epochs",
        "1",
        "--checkpoint",
        &format!("{}/sub", file.display()),
    ]);
    let err = stderr_of(&out);
    assert!(!out.status.success() && !err.contains("epoch 1"), "{err}");
    let tail = err.trim_end().rsplit(": ").next().unwrap();
    assert_eq!(err.matches(tail).count(), 1, "cause repeated: {err}");
    // What two servers cannot compute is refused before any process starts.
    let out = ringnn(&["train", "--engine", "mpc", "--exp", "exact"]);
    let err = stderr_of(&out);
    assert!(
        !out.status.success() && err.contains("--exp") && !err.contains("secure training in"),
        "{err}"
    );
    // The sweep runs two servers too, and leaves out what they cannot compute: with
    // nothing else, it says so before any run.
    let out = ringnn(&[
        "sweep",
        "--engine",
        "mpc",
        "--exp",
        "exact",
        "--out",
        tmp("sw").to_str().unwrap(),
    ]);
    let err = stderr_of(&out);
    assert!(
        !out.status.success() && err.contains("two servers cannot compute exact"),
        "{err}"
    );
}

/// A reader that stops early is not a failure: the pipe's reading end is closed before
/// `approx` (which computes its whole table first) writes its first line.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringnn"))
        .args(["approx", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stderr.is_empty(), "{}", stderr_of(&out));
}

/// A sweep in which every run failed exits non-zero, names the first error and draws no
/// plot.
#[test]
fn a_sweep_where_every_run_failed_is_an_error() {
    let dir = tmp("all-failed");
    let _ = std::fs::remove_dir_all(&dir);
    let out = ringnn(&[
        "sweep",
        "--data",
        "mnist",
        "--data-dir",
        "/nonexistent-ringnn",
        "--exp",
        "pwl4",
        "--frac-bits",
        "13",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("all 1 runs failed") && err.contains("not found"),
        "{err}"
    );
    assert!(dir.join("table.md").exists());
    assert!(!dir.join("accuracy.svg").exists());
}

/// `ringnn cost` prints one JSON object per measurement with the documented fields, and
/// refuses what two servers cannot compute.
#[test]
fn cost_prints_rounds_bytes_and_time_per_approximation() {
    let out = ringnn(&[
        "cost",
        "--exp",
        "pwl4,taylor2,secureml,limit8",
        "--frac-bits",
        "13",
        "--cols",
        "10",
        "--rows",
        "16",
        "--models",
        "none",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Four softmax rows, hard tanh, SecureML's sigmoid, the reciprocal.
    assert_eq!(rows.len(), 7, "{text}");
    for r in &rows {
        for field in [
            "function",
            "approx",
            "frac_bits",
            "rounds",
            "online_bytes",
            "dealer_bytes",
            "online_seconds",
            "comparison",
        ] {
            assert!(r.get(field).is_some(), "{field} missing: {r}");
        }
    }
    assert_eq!(rows[0]["approx"], "pwl4");
    assert_eq!(rows[0]["rounds"], 42);
    // A training step of the mlp, per approximation.
    let out = ringnn(&[
        "cost",
        "--exp",
        "pwl4",
        "--tanh",
        "none",
        "--sigmoid",
        "none",
        "--no-reciprocal",
        "--cols",
        "10",
        "--rows",
        "8",
        "--models",
        "mlp",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["function"], "step");
    assert_eq!(last["approx"], "mlp/pwl4");
    let out = ringnn(&["cost", "--exp", "exact"]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("--exp"), "{}", stderr_of(&out));
}

/// `ringnn cost --comparison fss`: the rows say which comparison produced them, the pwl4
/// softmax row of 10 takes 19 rounds against the adder's 51, and a training step runs.
#[test]
fn cost_with_the_fss_comparison_says_so_and_takes_fewer_rounds() {
    let run = |comparison: &str, json: bool| {
        let mut args = vec![
            "cost",
            "--exp",
            "pwl4",
            "--tanh",
            "none",
            "--sigmoid",
            "none",
            "--no-reciprocal",
            "--cols",
            "10",
            "--rows",
            "8",
            "--models",
            "mlp",
            "--comparison",
            comparison,
        ];
        if json {
            args.push("--json");
        }
        let out = ringnn(&args);
        assert!(out.status.success(), "{}", stderr_of(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let rows = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a2b, fss) = (rows(&run("a2b", true)), rows(&run("fss", true)));
    assert_eq!(a2b.len(), 2);
    assert_eq!(fss.len(), 2);
    assert!(a2b.iter().all(|r| r["comparison"] == "a2b"));
    assert!(fss.iter().all(|r| r["comparison"] == "fss"));
    assert_eq!(a2b[0]["rounds"], 42);
    // The spline gate: e^x in 2 rounds (opening, truncation) instead of a tree of
    // comparisons; the reciprocal takes 7 (its range comparisons, which also find the
    // empty rows, the normalising product, its pieces as one more spline gate, the shift
    // back; docs/performance.md).
    assert_eq!(fss[0]["rounds"], 11);
    assert_eq!(fss[1]["approx"], "mlp/pwl4");
    assert!(fss[1]["rounds"].as_u64() < a2b[1]["rounds"].as_u64());
    let table = run("fss", false);
    assert!(table.contains("Comparisons: fss"), "{table}");
    let out = ringnn(&["cost", "--comparison", "gc"]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("--comparison: unknown comparison 'gc'"),
        "{}",
        stderr_of(&out)
    );
}

/// `ringnn cost --processes`: each training step is also timed with the dealer and both
/// servers as processes over TLS; the rows that are not steps carry no such time.
#[test]
fn cost_times_training_steps_in_separate_processes() {
    let out = ringnn(&[
        "cost",
        "--exp",
        "secureml",
        "--tanh",
        "none",
        "--sigmoid",
        "none",
        "--no-reciprocal",
        "--cols",
        "10",
        "--rows",
        "16",
        "--models",
        "mlp",
        "--processes",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows[0].get("process_online_seconds").is_none(),
        "{}",
        rows[0]
    );
    assert_eq!(rows[1]["approx"], "mlp/secureml");
    for k in ["process_online_seconds", "process_dealer_seconds"] {
        let s = rows[1][k].as_f64().unwrap_or(-1.0);
        assert!(s > 0.0 && s < 60.0, "{k}: {}", rows[1]);
    }
}
