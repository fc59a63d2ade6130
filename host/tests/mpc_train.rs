//! Secure training end to end, with the dealer and both servers as separate `ringnn`
//! processes over mutual TLS on loopback: the result matches `Plain`, a killed peer fails
//! the other server in time with the peer named, both resume from their checkpoints, and
//! servers given different jobs refuse to start.
use ringnn_host::mpc::job::JobSpec;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_ringnn");

/// A path `name` inside a fresh private folder (not created itself).
fn tmp(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix("ringnn-mpctrain-")
        .tempdir()
        .expect("a temporary folder")
        .keep()
        .join(name)
}

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RINGNN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"))
        });
    dir.join("mnist").exists().then_some(dir)
}

fn ringnn(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env_remove("RINGNN_DATA")
        .output()
        .expect("ringnn runs")
}

fn last_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.lines().last().expect("a line")).expect("JSON")
}

/// A training run's JSON; `mpc` runs take the dealer's randomness from seed 1, so that
/// every comparison below is one fixed sample, not a draw.
fn accuracy(engine: &str, common: &[&str]) -> serde_json::Value {
    let mut args = vec!["train", "--engine", engine, "--json"];
    if engine == "mpc" {
        args.extend_from_slice(&["--insecure-dealer-seed", "1"]);
    }
    args.extend_from_slice(common);
    last_json(&ringnn(&args))
}

/// The same run on two servers and on Plain: the MPC JSON and both test accuracies.
fn mpc_and_plain(common: &[&str]) -> (serde_json::Value, f64, f64) {
    let m = accuracy("mpc", common);
    let p = accuracy("plain", common);
    let (am, ap) = (
        m["test_accuracy"].as_f64().unwrap(),
        p["test_accuracy"].as_f64().unwrap(),
    );
    (m, am, ap)
}

#[test]
fn mpc_training_with_one_dealer_seed_is_reproducible_bit_for_bit() {
    // The owner's sharing is fresh randomness each time, but every reconstructed value
    // depends only on the secrets and the dealer's masks: the revealed models are equal.
    let dirs = [tmp("repro-a"), tmp("repro-b")];
    for d in &dirs {
        let out = ringnn(&[
            "train",
            "--engine",
            "mpc",
            "--insecure-dealer-seed",
            "7",
            "--model",
            "mlp",
            "--train-limit",
            "256",
            "--test-limit",
            "100",
            "--epochs",
            "1",
            "--batch",
            "64",
            "--checkpoint",
            d.to_str().unwrap(),
            "--json",
        ]);
        last_json(&out);
    }
    let read = |d: &PathBuf| std::fs::read(d.join("model/checkpoint.bin")).unwrap();
    assert!(
        read(&dirs[0]) == read(&dirs[1]),
        "the revealed models differ"
    );
    let shares = |d: &PathBuf| std::fs::read(d.join("server0/shares.bin")).unwrap();
    assert!(
        shares(&dirs[0]) != shares(&dirs[1]),
        "the sharing must be fresh"
    );
}

/// `--comparison fss` through the real processes (dealer and both servers over TLS):
/// party 0 keeps its dealer connection for keys, both servers receive them, every step
/// takes fewer rounds than with the adder, and the model is the adder's up to the
/// truncations' rounding (comparisons are exact under both).
#[test]
fn mpc_training_with_the_fss_comparison_matches_the_adder() {
    let common = [
        "--model",
        "mlp",
        "--train-limit",
        "128",
        "--test-limit",
        "100",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--seed",
        "5",
    ];
    let run = |comparison: &str| {
        let mut args = common.to_vec();
        args.extend_from_slice(&["--comparison", comparison]);
        accuracy("mpc", &args)
    };
    let (a, f) = (run("a2b"), run("fss"));
    let acc = |v: &serde_json::Value| v["test_accuracy"].as_f64().unwrap();
    // 100 test images: one image is a point.
    assert!((acc(&a) - acc(&f)).abs() <= 0.03, "a2b {a}\nfss {f}");
    let rounds = |v: &serde_json::Value| v["rounds"].as_u64().unwrap();
    assert!(rounds(&f) < rounds(&a), "a2b {a}\nfss {f}");
    let offline = |v: &serde_json::Value, p: usize| v["offline_bytes"][p].as_u64().unwrap();
    // Under a2b party 0 gets its seed only; under fss its keys too.
    assert_eq!(offline(&a, 0), 32, "{a}");
    assert!(offline(&f, 0) > 1000 * offline(&a, 0), "{f}");
    // The flag is refused where there is nothing to choose.
    let out = ringnn(&["train", "--engine", "plain", "--comparison", "fss"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--comparison"), "{err}");
}

#[test]
fn mpc_training_on_synthetic_digits_matches_plain() {
    let common = [
        "--model",
        "mlp",
        "--train-limit",
        "512",
        "--test-limit",
        "300",
        "--epochs",
        "1",
        "--batch",
        "64",
        "--lr",
        "0.03",
        "--seed",
        "5",
    ];
    let (m, am, ap) = mpc_and_plain(&common);
    // 300 test images: one image is 0.33 points. Stochastic truncation moves a single
    // short run by a few points (dealer seeds 1-12: 40.7 to 44.7%, mean 42.9%, where
    // Plain gives 44.0% on this build and 43.3% before the SGD step came from one
    // opening), so two more dealer seeds are averaged in.
    let more: Vec<f64> = ["2", "3"]
        .iter()
        .map(|s| {
            let mut args = vec!["train", "--engine", "mpc", "--json"];
            args.extend_from_slice(&["--insecure-dealer-seed", s]);
            args.extend_from_slice(&common);
            last_json(&ringnn(&args))["test_accuracy"].as_f64().unwrap()
        })
        .collect();
    let mean = (am + more.iter().sum::<f64>()) / 3.0;
    assert!((mean - ap).abs() <= 0.03, "mpc {am}, {more:?} plain {ap}");
    assert!(am > 0.3, "mpc learned nothing: {am}");
    assert_eq!(m["engine"], "mpc");
    assert!(m["train_loss"].is_null(), "the loss must not be revealed");
    assert_eq!(m["steps"], 8);
    // Steps 2..8 ran in two phases: dealer material first, then the protocol.
    assert!(m["online_samples_per_sec"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m["offline_seconds"].as_f64().unwrap() > 0.0, "{m}");
    let sent = m["bytes_sent"].as_array().unwrap();
    assert!(sent.iter().all(|b| b.as_u64().unwrap() > 0));
    assert!(m["rounds"].as_u64().unwrap() > 0);
    assert!(m["offline_bytes"][1].as_u64().unwrap() > m["offline_bytes"][0].as_u64().unwrap());
}

#[test]
fn mpc_mlp_on_2560_mnist_images_is_within_one_point_of_plain() {
    let Some(dir) = data_dir() else {
        eprintln!("skipping: no mnist folder under RINGNN_DATA or ../shared/data");
        return;
    };
    let d = dir.display().to_string();
    // Batch 32, cosine decay and momentum 0.5: one epoch of 80 steps whose final accuracy
    // varies little with the trajectory (seeds 1-4 on Plain: 85.3 to 86.0%), so that the
    // comparison measures the protocols, not the noise of a short run. (At batch 128, lr
    // 0.03 and momentum 0.9, Plain's seeds spread over 3 points.)
    let common = [
        "--model",
        "mlp",
        "--data",
        "mnist",
        "--data-dir",
        &d,
        "--train-limit",
        "2560",
        "--epochs",
        "1",
        "--batch",
        "32",
        "--lr",
        "0.05",
        "--momentum",
        "0.5",
        "--schedule",
        "cosine",
        "--seed",
        "1",
    ];
    let (m, am, ap) = mpc_and_plain(&common);
    eprintln!("mpc {am}, plain {ap} on {} test images", m["test_samples"]);
    assert_eq!(m["test_samples"], 10_000);
    assert!((am - ap).abs() <= 0.01, "mpc {am} plain {ap}");
}

/// Keys, shares and the three processes of one session, started by hand as an operator
/// would.
struct Session {
    dir: PathBuf,
    keys: PathBuf,
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

impl Session {
    fn new(name: &str, epochs: &str) -> Session {
        let dir = tmp(name);
        let out = ringnn(&[
            "share",
            "--model",
            "mlp",
            "--train-limit",
            "1024",
            "--test-limit",
            "200",
            "--epochs",
            epochs,
            "--batch",
            "64",
            "--lr",
            "0.03",
            "--out",
            dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let keys = dir.join("keys");
        assert!(ringnn(&["keygen", "--out", keys.to_str().unwrap()])
            .status
            .success());
        Session { dir, keys }
    }

    /// Starts the dealer and both servers; `job1` is server 1's job file.
    fn start(&self, resume: bool, job1: &Path) -> [Child; 3] {
        let session = "00112233445566778899aabbccddeeff";
        let (dealer, peer) = (free_port(), free_port());
        let k = self.keys.to_str().unwrap();
        let spawn = |args: Vec<String>| {
            Command::new(EXE)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let d = spawn(
            [
                "dealer",
                "--listen",
                &dealer,
                "--keys",
                k,
                "--session",
                session,
                "--timeout-s",
                "10",
                "--wait-s",
                "10",
            ]
            .map(String::from)
            .to_vec(),
        );
        let server = |p: usize, job: &Path| {
            let me = self.dir.join(format!("server{p}"));
            let mut a: Vec<String> = [
                "server",
                "--party",
                &p.to_string(),
                if p == 0 { "--listen" } else { "--connect" },
                &peer,
                "--dealer",
                &dealer,
                "--keys",
                k,
                "--session",
                session,
                "--timeout-s",
                "10",
                "--wait-s",
                "10",
                "--job",
                job.to_str().unwrap(),
                "--shares",
                me.join("shares.bin").to_str().unwrap(),
                "--out",
                me.join("out").to_str().unwrap(),
                "--checkpoint",
                me.join("checkpoint").to_str().unwrap(),
            ]
            .map(String::from)
            .to_vec();
            if resume {
                a.push("--resume".into());
            }
            spawn(a)
        };
        let s0 = server(0, &self.dir.join("job.json"));
        let s1 = server(1, job1);
        [d, s0, s1]
    }

    /// Runs server 0 alone (nothing listens at its peer or dealer address) on `job` and
    /// `shares`: whether it succeeded, and its stderr.
    fn server_alone(&self, job: &Path, shares: &Path) -> (bool, String) {
        let out = ringnn(&[
            "server",
            "--party",
            "0",
            "--listen",
            "127.0.0.1:1",
            "--dealer",
            "127.0.0.1:1",
            "--keys",
            self.keys.to_str().unwrap(),
            "--session",
            "00112233445566778899aabbccddeeff",
            "--job",
            job.to_str().unwrap(),
            "--shares",
            shares.to_str().unwrap(),
            "--out",
            self.dir.join("o").to_str().unwrap(),
        ]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn checkpoint(&self, p: usize) -> PathBuf {
        self.dir
            .join(format!("server{p}/checkpoint/checkpoint.bin"))
    }
}

fn finish(c: Child, within: Duration) -> (bool, String, Duration) {
    let start = Instant::now();
    let mut c = c;
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            let out = c.wait_with_output().unwrap();
            return (
                st.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                start.elapsed(),
            );
        }
        if start.elapsed() > within {
            let _ = c.kill();
            let out = c.wait_with_output().unwrap();
            panic!(
                "still running after {within:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_server_fails_its_peer_in_time_and_both_resume_from_their_checkpoints() {
    let s = Session::new("kill", "3");
    let [dealer, s0, mut s1] = s.start(false, &s.dir.join("job.json"));
    // Wait for server 1's first checkpoint, then kill it mid-way through epoch 2.
    let start = Instant::now();
    while !s.checkpoint(1).exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    s1.kill().unwrap();
    s1.wait().unwrap();
    let (ok, err, took) = finish(s0, Duration::from_secs(60));
    assert!(!ok, "server 0 must fail when its peer dies");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(err.contains("party 1"), "the peer is not named: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let (dok, derr, _) = finish(dealer, Duration::from_secs(60));
    assert!(!dok, "the dealer lost party 1 and must say so: {derr}");
    // The checkpoints are whole; both resume from the latest epoch both have.
    let [d, s0, s1] = s.start(true, &s.dir.join("job.json"));
    let r: Vec<_> = [s0, s1, d]
        .into_iter()
        .map(|c| finish(c, Duration::from_secs(300)))
        .collect();
    for (ok, err, _) in &r {
        assert!(ok, "resumed run failed: {err}");
    }
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.dir.join("server0/out/report.json")).unwrap(),
    )
    .unwrap();
    assert!(report["resumed_from"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["epochs_done"], 3);
    let o = s.dir.join("server0/out");
    let o1 = s.dir.join("server1/out");
    let out = ringnn(&[
        "reveal",
        "--owner",
        s.dir.join("owner.json").to_str().unwrap(),
        "--from",
        o.to_str().unwrap(),
        "--from",
        o1.to_str().unwrap(),
        "--model",
        s.dir.join("model").to_str().unwrap(),
        "--json",
    ]);
    let v = last_json(&out);
    assert!(v["test_accuracy"].as_f64().unwrap() > 0.5, "{v}");
    // The revealed model is a Plain checkpoint that plain training resumes from.
    assert!(s.dir.join("model/checkpoint.bin").exists());
    // The outputs given the wrong way round are refused, not added into garbage.
    let out = ringnn(&[
        "reveal",
        "--owner",
        s.dir.join("owner.json").to_str().unwrap(),
        "--from",
        o1.to_str().unwrap(),
        "--from",
        o.to_str().unwrap(),
        "--model",
        s.dir.join("model2").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("party 1's shares"),
        "{err}"
    );
    // A fresh start into a folder holding checkpoints is refused (nothing is lost).
    let [d, s0, s1] = s.start(false, &s.dir.join("job.json"));
    for c in [s0, s1] {
        let (ok, err, _) = finish(c, Duration::from_secs(60));
        assert!(!ok && err.contains("--resume"), "{err}");
    }
    let _ = finish(d, Duration::from_secs(60));
}

#[test]
fn servers_given_different_jobs_refuse_to_start() {
    let s = Session::new("job", "1");
    let other = s.dir.join("job-other.json");
    // A job that differs in one hyperparameter, sealed as `ringnn share` seals it.
    let mut job = JobSpec::load(&s.dir.join("job.json")).unwrap();
    job.config.lr *= 10.0;
    ringnn_host::files::write_sealed_json(&other, &job).unwrap();
    // An edited job.json is refused by its checksum before any connection.
    let text = std::fs::read_to_string(s.dir.join("job.json")).unwrap();
    let edited = s.dir.join("job-edited.json");
    std::fs::write(&edited, text.replace("0.03", "0.3")).unwrap();
    let err = JobSpec::load(&edited).unwrap_err().to_string();
    assert!(
        err.contains("job-edited.json") && err.contains("checksum mismatch"),
        "{err}"
    );
    let [d, s0, s1] = s.start(false, &other);
    for c in [s0, s1] {
        let (ok, err, _) = finish(c, Duration::from_secs(60));
        assert!(!ok);
        assert!(err.contains("different job.json"), "{err}");
    }
    let _ = finish(d, Duration::from_secs(60));
    assert!(!s.checkpoint(0).exists() && !s.checkpoint(1).exists());
}

#[test]
fn bad_share_and_job_files_are_errors_naming_the_file() {
    let s = Session::new("bad", "1");
    let out = ringnn(&[
        "reveal",
        "--owner",
        s.dir.join("owner.json").to_str().unwrap(),
        "--from",
        s.dir.join("server0").to_str().unwrap(),
        "--model",
        s.dir.join("m").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from"));
    let job = s.dir.join("job.json");
    // The other server's share file is refused, naming whose it is.
    let (ok, err) = s.server_alone(&job, &s.dir.join("server1/shares.bin"));
    assert!(!ok && err.contains("holds party 1's shares"), "{err}");
    // A truncated share file is refused before any connection is made.
    let shares = s.dir.join("server0/shares.bin");
    let bytes = std::fs::read(&shares).unwrap();
    std::fs::write(&shares, &bytes[..bytes.len() - 5]).unwrap();
    let (ok, err) = s.server_alone(&job, &shares);
    assert!(!ok && err.contains("shares.bin"), "{err}");
    // A job file that is not a job.
    std::fs::write(&job, b"{\"model\": 3}").unwrap();
    let (ok, err) = s.server_alone(&job, &shares);
    assert!(!ok && err.contains("job.json"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Issue 14, item 10: SIGTERM to `ringnn train --engine mpc` stops the dealer and both
/// servers and removes the temporary work folder (shares, labels, keys), whose path the
/// launcher prints while it runs; the children's lines arrive whole, under their names.
#[cfg(unix)]
#[test]
fn sigterm_stops_the_children_and_removes_the_work_folder() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(EXE)
        .args([
            "train",
            "--engine",
            "mpc",
            "--model",
            "mlp",
            "--train-limit",
            "4000",
            "--test-limit",
            "100",
            "--epochs",
            "20",
        ])
        .env_remove("RINGNN_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut dir = None;
    let mut seen = Vec::new();
    // The folder's line, then the first line of a server: training has started.
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ringnn: secure training in ") {
            dir = Some(PathBuf::from(rest.split(" (").next().unwrap()));
        }
        let from_server = line.starts_with("[server ");
        seen.push(line);
        if from_server {
            break;
        }
    }
    let dir = dir.unwrap_or_else(|| panic!("no work folder named: {seen:#?}"));
    assert!(dir.join("owner.json").exists(), "{}", dir.display());
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{rest:#?}");
    assert!(!dir.exists(), "{} is still there: {rest:#?}", dir.display());
    let text = rest.join("\n");
    assert!(text.contains("stopped by a signal"), "{text}");
    // Every line of a child is whole and prefixed.
    for l in seen.iter().chain(&rest) {
        assert!(
            l.starts_with("ringnn")
                || l.starts_with("[dealer] ")
                || l.starts_with("[server 0] ")
                || l.starts_with("[server 1] ")
                || l.starts_with("error: "),
            "unprefixed line: {l:?}"
        );
    }
}

/// A copy task as a Tatoeba file: `n` sentences of 2 to 5 words over 8 words, each its
/// own translation, in a fresh data folder.
fn copy_tatoeba(n: usize) -> PathBuf {
    let dir = tmp("tatoeba-data");
    let words = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut state = 7u64;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let mut tsv = String::new();
    for _ in 0..n {
        let len = 2 + next(4);
        let s: Vec<&str> = (0..len).map(|_| words[next(8) as usize]).collect();
        let s = s.join(" ");
        tsv.push_str(&format!("{s}\t{s}\tCC-BY\n"));
    }
    std::fs::create_dir_all(dir.join("tatoeba")).unwrap();
    std::fs::write(dir.join("tatoeba/eng-fra_first5000.txt"), tsv).unwrap();
    dir
}

/// Seq2seq on two server processes and a dealer over TLS (the owner in this process):
/// the revealed test perplexity and token accuracy are `Plain`'s, on a tiny
/// encoder-decoder and a copy task, with the paper's hard tanh, SecureML sigmoid and
/// pwl4 softmax at f = 13; the revealed model is `Plain`'s within the truncations' noise;
/// a resumed run continues from the servers' checkpoints.
#[test]
fn mpc_seq2seq_matches_plain() {
    use ringnn_core::approx::{ExpApprox, SigmoidApprox, TanhApprox};
    use ringnn_host::data::text::TextConfig;
    use ringnn_host::train::seq2seq::{self, Seq2SeqDims};
    use ringnn_host::train::{EngineKind, TrainConfig};
    let data = copy_tatoeba(60);
    let dims = Seq2SeqDims {
        embed: 4,
        hidden: 6,
        text: TextConfig {
            max_len: 5,
            min_count: 1,
            max_vocab: 100,
            test_fraction: 0.2,
            seed: 0,
        },
    };
    let cfg = TrainConfig {
        model: "seq2seq".parse().unwrap(),
        data: "tatoeba".parse().unwrap(),
        data_dir: Some(data),
        engine: EngineKind::Mpc,
        exp: ExpApprox::Pwl(4),
        tanh: TanhApprox::Hard,
        sigmoid: SigmoidApprox::SecureMl,
        epochs: 2,
        batch: 8,
        lr: 0.2,
        momentum: 0.5,
        train_limit: Some(16),
        test_limit: Some(8),
        seed: 4,
        insecure_dealer_seed: Some(1),
        checkpoint: Some(tmp("seq2seq-work")),
        ..TrainConfig::default()
    };
    let start = Instant::now();
    let m = ringnn_host::mpc::launch::train_mpc_sized(&cfg, dims, Path::new(EXE)).unwrap();
    eprintln!("two servers: {:.1} s", start.elapsed().as_secs_f64());
    let plain_cfg = TrainConfig {
        engine: EngineKind::Plain,
        insecure_dealer_seed: None,
        checkpoint: Some(tmp("seq2seq-plain")),
        ..cfg.clone()
    };
    let corpus = seq2seq::load_corpus(&plain_cfg, dims).unwrap();
    let p =
        seq2seq::train_on_corpus(&plain_cfg, plain_cfg.sigmoid, dims, corpus, "tatoeba").unwrap();
    let (pm, pp) = (m.perplexity.unwrap(), p.perplexity);
    eprintln!(
        "perplexity: mpc {pm}, plain {pp}; token accuracy: mpc {}, plain {}",
        m.test_accuracy, p.test_token_accuracy
    );
    assert_eq!(m.engine, "mpc");
    assert_eq!(m.tanh.as_deref(), Some("hard"));
    assert_eq!((m.train_samples, m.test_samples), (16, 8));
    assert!(m.train_loss.is_nan(), "the loss must not be revealed");
    assert_eq!(m.mpc.as_ref().unwrap().steps, 4);
    // The revealed model is a Plain checkpoint of this run.
    let dir_of = |p: &Option<PathBuf>| p.as_deref().unwrap().parent().unwrap().to_path_buf();
    let mc = ringnn_host::train::checkpoint::load(&dir_of(&m.checkpoint)).unwrap();
    let pc = ringnn_host::train::checkpoint::load(&dir_of(&p.checkpoint)).unwrap();
    assert_eq!(mc.0.model, "seq2seq");
    assert_eq!(mc.0.n_params, pc.0.n_params);
    let far =
        mc.1.params
            .iter()
            .zip(&pc.1.params)
            .map(|(&a, &b)| (a.wrapping_sub(b) as i64).abs())
            .max()
            .unwrap();
    eprintln!("revealed parameters within {far} ulp of Plain's");
    // Measured 34 ulp (one sample: the dealer's seed fixes it). At lr 0.5 and momentum
    // 0.9 this tiny run is chaotic enough that one ulp of rounding grows to 500 in four
    // steps, on Plain alone as between the engines; at 0.2 and 0.5 it does not.
    assert!(far <= 128, "parameters differ by {far} ulp");
    // Plain's evaluation of the revealed model (a resumed run with no epoch left).
    let again = TrainConfig {
        resume: true,
        checkpoint: Some(dir_of(&m.checkpoint)),
        ..plain_cfg.clone()
    };
    let corpus = seq2seq::load_corpus(&again, dims).unwrap();
    let e = seq2seq::train_on_corpus(&again, again.sigmoid, dims, corpus, "tatoeba").unwrap();
    eprintln!(
        "the revealed model on Plain: perplexity {}, token accuracy {}",
        e.perplexity, e.test_token_accuracy
    );
    // The evaluation on shares is Plain's evaluation of the same model but for one
    // truncation per probability (measured 0.01%).
    assert!(
        (pm - e.perplexity).abs() <= 0.005 * e.perplexity,
        "mpc {pm}, plain on the revealed model {}",
        e.perplexity
    );
    assert_eq!(m.test_accuracy, e.test_token_accuracy);
    // The servers checkpointed their shares after each epoch: one more epoch with
    // --resume continues from them (the dealer's randomness from the operating system,
    // as a resume requires) and lands where Plain's run of all three epochs does.
    let more = TrainConfig {
        epochs: 3,
        resume: true,
        insecure_dealer_seed: None,
        ..cfg.clone()
    };
    let r = ringnn_host::mpc::launch::train_mpc_sized(&more, dims, Path::new(EXE)).unwrap();
    assert_eq!(
        r.mpc.as_ref().unwrap().steps,
        2,
        "only the third epoch runs"
    );
    let plain3 = TrainConfig {
        epochs: 3,
        checkpoint: Some(tmp("seq2seq-plain3")),
        ..plain_cfg.clone()
    };
    let corpus = seq2seq::load_corpus(&plain3, dims).unwrap();
    let p3 = seq2seq::train_on_corpus(&plain3, plain3.sigmoid, dims, corpus, "tatoeba").unwrap();
    let r3 = r.perplexity.unwrap();
    eprintln!(
        "after a resumed third epoch: mpc {r3}, plain {}",
        p3.perplexity
    );
    assert!(
        (r3 - p3.perplexity).abs() <= 0.02 * p3.perplexity,
        "mpc {r3} plain {}",
        p3.perplexity
    );
    // Training on shares against Plain (measured 0.04%); a wrong mask, a misplaced target
    // or a lost update moves the perplexity by far more than 1%.
    assert!((pm - pp).abs() <= 0.01 * pp, "mpc {pm} plain {pp}");
    assert!(
        (m.test_accuracy - p.test_token_accuracy).abs() <= 0.05,
        "mpc {} plain {}",
        m.test_accuracy,
        p.test_token_accuracy
    );
}
