//! The networked two-party computation over real mutual TLS on loopback: protocols
//! reconstruct equal to `Plain`; wrong CA, session, version or role are refused with a
//! clear error; a peer that disconnects or hangs makes the other side fail in time; the
//! dealer process and both servers run a job end to end (in threads).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ringnn_core::fixed::FracBits;
use ringnn_core::layers::Dense;
use ringnn_core::{Engine, Fixed, Plain, Z64};
use ringnn_host::mpc::keys::{keygen, Identity, Role};
use ringnn_host::mpc::launch::{run_local_mpc, Launch, LocalMpcJob};
use ringnn_host::mpc::net::{self, NetConfig, NetError, SessionId, TlsChannel, PROTOCOL_VERSION};
use ringnn_host::mpc::server::{read_shares, write_shares, Job};
use ringnn_host::mpc::{reconstruct, share, Dealer, Mpc, MpcError, PartyId, SeededCorrelations};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const F: u32 = 16;
const P0: Role = Role::Party(PartyId::P0);
const P1: Role = Role::Party(PartyId::P1);
const A2B: ringnn_host::mpc::Comparison = ringnn_host::mpc::Comparison::A2b;

/// A path `name` (not yet created) inside a fresh temporary folder, which goes when this
/// is dropped.
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
        .prefix("ringnn-net-")
        .tempdir()
        .unwrap();
    TmpPath {
        path: dir.path().join(name),
        _dir: dir,
    }
}

fn keys(name: &str) -> TmpPath {
    let d = tmp(name);
    keygen(&d).unwrap();
    d
}

fn cfg(session: SessionId) -> NetConfig {
    let mut c = NetConfig::new(session);
    c.timeout = Duration::from_secs(5);
    // A refused peer makes the listener wait this long before it gives up.
    c.wait = Duration::from_secs(2);
    c
}

/// Party 0 accepts with `(dir0, cfg0)`, party 1 connects as `role1` with `(dir1, cfg1)`;
/// returns both outcomes.
fn pair(
    dir0: &Path,
    cfg0: &NetConfig,
    dir1: &Path,
    role1: Role,
    cfg1: &NetConfig,
) -> (Result<TlsChannel, NetError>, Result<TlsChannel, NetError>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let id0 = Identity::load(dir0, P0).unwrap();
    let id1 = Identity::load(dir1, role1).unwrap();
    std::thread::scope(|s| {
        let h0 = s.spawn(|| ringnn_host::mpc::accept::accept(&l, &id0, &[P1], cfg0));
        let h1 = s.spawn(|| net::connect(&addr, &id1, P0, cfg1));
        (h0.join().unwrap(), h1.join().unwrap())
    })
}

fn enc(xs: &[f64]) -> Vec<Z64> {
    let fx = Fixed::new(F).unwrap();
    xs.iter().map(|&v| fx.encode(v).unwrap()).collect()
}

type NetMpc = Mpc<TlsChannel, SeededCorrelations>;

/// Runs `body` on both parties over TLS with an in-process dealer.
fn on_tls<T: Send>(name: &str, body: impl Fn(&mut NetMpc) -> T + Sync) -> [T; 2] {
    let dir = keys(name);
    let mut c = cfg(SessionId::random());
    // Debug builds compute slowly between messages; the timeout must cover that.
    c.timeout = Duration::from_secs(120);
    let (a, b) = pair(&dir, &c, &dir, P1, &c);
    let dealer = Arc::new(Dealer::from_seed([5; 32]));
    let [r0, r1] = dealer.correlations();
    let f = FracBits::new(F).unwrap();
    let body = &body;
    let out = std::thread::scope(|s| {
        let h0 = s.spawn(move || body(&mut Mpc::new(PartyId::P0, f, a.unwrap(), r0)));
        let h1 = s.spawn(move || body(&mut Mpc::new(PartyId::P1, f, b.unwrap(), r1)));
        [h0.join().unwrap(), h1.join().unwrap()]
    });
    out
}

#[test]
fn mul_relu_and_dense_over_tls_match_plain() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (batch, l) = (8, Dense::new(6, 4));
    let mut u = |n, r: f64| enc(&(0..n).map(|_| rng.random_range(-r..r)).collect::<Vec<_>>());
    let inputs = [
        u(256, 100.0),
        u(256, 100.0),
        u(48, 2.0),
        u(24, 0.5),
        u(4, 0.5),
    ];
    let mut srng = ChaCha20Rng::seed_from_u64(2);
    let shares: Vec<[Vec<Z64>; 2]> = inputs.iter().map(|v| share(v, &mut srng)).collect();
    let run = |e: &mut NetMpc| {
        let x: Vec<Vec<Z64>> = shares
            .iter()
            .map(|s| s[e.party().index()].clone())
            .collect();
        let mut prod = vec![Z64::ZERO; 256];
        e.mul(&x[0], &x[1], &mut prod).unwrap();
        let mut r = x[0].clone();
        let mut s = vec![Z64::ZERO; 3 * 256];
        e.relu(&mut r, &mut s).unwrap();
        let mut y = vec![Z64::ZERO; batch * 4];
        l.forward(e, &x[2], &x[3], &x[4], batch, &mut y).unwrap();
        (vec![prod, r, y], e.traffic())
    };
    let [(o0, t0), (o1, t1)] = on_tls("ops", run);
    let mut p = Plain::with_frac_bits(F).unwrap();
    let mut prod = vec![Z64::ZERO; 256];
    p.mul(&inputs[0], &inputs[1], &mut prod).unwrap();
    let mut r = inputs[0].clone();
    p.relu(&mut r, &mut vec![Z64::ZERO; 3 * 256]).unwrap();
    let mut y = vec![Z64::ZERO; batch * 4];
    l.forward(&mut p, &inputs[2], &inputs[3], &inputs[4], batch, &mut y)
        .unwrap();
    assert_eq!(reconstruct(&o0[0], &o1[0]), prod, "mul is exact");
    assert_eq!(reconstruct(&o0[1], &o1[1]), r, "relu is exact");
    let got = reconstruct(&o0[2], &o1[2]);
    for (g, w) in got.iter().zip(&y) {
        assert!((*g - *w).to_signed().abs() <= 1, "dense within 1 ulp");
    }
    assert_eq!(t0.sent, t1.received);
    assert_eq!(t0.rounds, t1.rounds);
}

#[test]
fn large_messages_both_ways_do_not_deadlock() {
    // 2^20 products: 16 MiB each way in one step, far over any socket buffer.
    let n = 1 << 20;
    let x: Vec<Z64> = (0..n as u64).map(Z64).collect();
    let [a, b] = on_tls("large", |e: &mut NetMpc| {
        let mut out = vec![Z64::ZERO; n];
        e.mul(&x, &x, &mut out).unwrap();
        (out, e.traffic())
    });
    assert_eq!(a.1.sent, 16 * n as u64 + 8);
    // Both parties fed x as their share: the secret is 2x, its square 4x^2.
    let got = reconstruct(&a.0, &b.0);
    assert!(got.iter().zip(&x).all(|(&g, &v)| g == Z64(4) * v * v));
}

fn err_text<T>(r: Result<T, NetError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let (good, other) = (keys("ca-good"), keys("ca-other"));
    let c = cfg(SessionId::random());
    let (a, b) = pair(&good, &c, &other, P1, &c);
    // Party 1 (the TLS client) refuses party 0's certificate first and alerts it.
    let msg = err_text(a);
    assert!(msg.contains("TLS handshake with party 1"), "{msg}");
    let msg = err_text(b);
    assert!(
        msg.contains("TLS handshake with party 0") && msg.contains("invalid peer certificate"),
        "{msg}"
    );
    // A client that trusts the right CA but holds a certificate of another CA: party 0
    // (the TLS server) is the one to refuse it.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let id0 = Identity::load(&good, P0).unwrap();
    let foreign = Identity::load(&other, P1).unwrap();
    let id1 = Identity {
        ca: Identity::load(&good, P1).unwrap().ca,
        ..foreign
    };
    let (a, _) = std::thread::scope(|s| {
        let h0 = s.spawn(|| ringnn_host::mpc::accept::accept(&l, &id0, &[P1], &c));
        let h1 = s.spawn(|| net::connect(&addr, &id1, P0, &c));
        (h0.join().unwrap(), h1.join().unwrap())
    });
    let msg = err_text(a);
    assert!(
        msg.contains("TLS handshake with party 1") && msg.contains("invalid peer certificate"),
        "{msg}"
    );
}

#[test]
fn a_certificate_of_another_role_is_refused() {
    // The dealer's valid certificate cannot pass as party 1.
    let dir = keys("role");
    let c = cfg(SessionId::random());
    let (a, _) = pair(&dir, &c, &dir, Role::Dealer, &c);
    let msg = err_text(a);
    assert!(
        msg.contains("names none of the expected roles (party 1)"),
        "{msg}"
    );
}

#[test]
fn a_wrong_session_or_version_is_refused_with_the_field_named() {
    let dir = keys("session");
    let c0 = cfg(SessionId([1; 16]));
    let c1 = cfg(SessionId([2; 16]));
    let (a, b) = pair(&dir, &c0, &dir, P1, &c1);
    let msg = err_text(a);
    assert!(
        msg.contains("handshake with party 1: session id mismatch"),
        "{msg}"
    );
    assert!(msg.contains(&SessionId([2; 16]).to_string()), "{msg}");
    assert!(err_text(b).contains("handshake with party 0: session id mismatch"));
    let mut v2 = c0.clone();
    v2.version = PROTOCOL_VERSION + 1;
    let (a, _) = pair(&dir, &c0, &dir, P1, &v2);
    let msg = err_text(a);
    let want = format!(
        "party 1: protocol version mismatch: expected {PROTOCOL_VERSION}, got {}",
        PROTOCOL_VERSION + 1
    );
    assert!(msg.contains(&want), "{msg}");
}

#[test]
fn an_oversized_frame_is_an_error_naming_the_peer() {
    let dir = keys("frame");
    let c = cfg(SessionId::random());
    let mut small = c.clone();
    small.max_frame = 64;
    let (a, b) = pair(&dir, &small, &dir, P1, &c);
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    use ringnn_host::mpc::Channel;
    b.write_all(&[7u8; 1000]).unwrap();
    b.flush().unwrap();
    let err = a.read_exact(&mut [0u8; 8]).unwrap_err();
    assert!(
        err.to_string()
            .contains("party 1 sent a frame of 1000 bytes (allowed: 1 to 64)"),
        "{err}"
    );
    // The sender refuses to send over its own limit too.
    a.write_all(&[0u8; 65]).unwrap();
    assert!(a.flush().is_err());
}

fn exchange_until_failure(
    ch: TlsChannel,
    corr: SeededCorrelations,
) -> (Result<(), MpcError>, Duration) {
    let mut e = Mpc::new(PartyId::P0, FracBits::new(F).unwrap(), ch, corr);
    let x = vec![Z64(3); 16];
    let mut out = vec![Z64::ZERO; 16];
    e.mul(&x, &x, &mut out).unwrap();
    let t = Instant::now();
    let r = e.mul(&x, &x, &mut out);
    (r, t.elapsed())
}

#[test]
fn a_peer_that_disconnects_mid_protocol_fails_the_other_side() {
    let dir = keys("drop");
    let c = cfg(SessionId::random());
    let (a, b) = pair(&dir, &c, &dir, P1, &c);
    let dealer = Arc::new(Dealer::from_seed([6; 32]));
    let [r0, r1] = dealer.correlations();
    let (res, took) = std::thread::scope(|s| {
        s.spawn(move || {
            let mut e = Mpc::new(PartyId::P1, FracBits::new(F).unwrap(), b.unwrap(), r1);
            let x = vec![Z64(3); 16];
            let mut out = vec![Z64::ZERO; 16];
            e.mul(&x, &x, &mut out).unwrap();
            // Party 1 quits here: its connection closes.
        });
        exchange_until_failure(a.unwrap(), r0)
    });
    let msg = res.unwrap_err().to_string();
    assert!(msg.contains("channel to party 1 failed"), "{msg}");
    assert!(msg.contains("party 1 closed the connection"), "{msg}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_hung_peer_fails_the_other_side_within_the_timeout() {
    let dir = keys("hang");
    let mut c = cfg(SessionId::random());
    c.timeout = Duration::from_secs(1);
    let (a, b) = pair(&dir, &c, &dir, P1, &c);
    let dealer = Arc::new(Dealer::from_seed([6; 32]));
    let [r0, r1] = dealer.correlations();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (res, took) = std::thread::scope(|s| {
        s.spawn(move || {
            let mut e = Mpc::new(PartyId::P1, FracBits::new(F).unwrap(), b.unwrap(), r1);
            let x = vec![Z64(3); 16];
            let mut out = vec![Z64::ZERO; 16];
            e.mul(&x, &x, &mut out).unwrap();
            // Party 1 stays connected but sends nothing more until told to stop.
            let _ = stop_rx.recv();
        });
        let r = exchange_until_failure(a.unwrap(), r0);
        stop_tx.send(()).unwrap();
        r
    });
    let msg = res.unwrap_err().to_string();
    assert!(
        msg.contains("party 1 sent nothing for 1s (read timeout)"),
        "{msg}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn share_files_round_trip_and_reject_garbage() {
    let dir = tmp("shares");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("s.bin");
    let t = vec![vec![Z64(1), Z64(u64::MAX)], vec![], vec![Z64(7)]];
    write_shares(&p, &t).unwrap();
    assert_eq!(read_shares(&p).unwrap(), t);
    let good = std::fs::read(&p).unwrap();
    // Issue 14, drill 4: any flipped byte, a truncation or an extension is refused with
    // the file named, never read as other shares.
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0x10;
        std::fs::write(&p, &b).unwrap();
        let err = read_shares(&p).unwrap_err().to_string();
        assert!(err.contains("s.bin"), "byte {i}: {err}");
    }
    for b in [
        &good[..good.len() - 3],
        &[&good[..], &[0u8; 8]].concat()[..],
    ] {
        std::fs::write(&p, b).unwrap();
        let err = read_shares(&p).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
    }
    std::fs::write(&p, b"nonsense").unwrap();
    assert!(read_shares(&p).is_err());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        write_shares(&p, &t).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn dealer_and_two_servers_run_a_dense_relu_job_end_to_end() {
    let dir = tmp("e2e");
    let job = Job::DenseRelu {
        batch: 64,
        inputs: 32,
        outputs: 16,
    };
    let r = run_local_mpc(&LocalMpcJob {
        job,
        frac_bits: F,
        data_seed: 11,
        dir: dir.to_path_buf(),
        launch: Launch::Threads,
    })
    .unwrap();
    assert!(r.max_ulp <= 1, "{} ulp", r.max_ulp);
    assert_eq!(r.result.len(), 64 * 16);
    let [s0, s1] = r.servers;
    assert_eq!(s0.online_sent, s1.online_received);
    assert_eq!(s0.rounds, s1.rounds);
    // Party 0 gets its seed only; party 1 its seed and the corrections.
    assert_eq!(s0.offline_bytes, 32);
    assert!(s1.offline_bytes > 32);
    let d = r.dealer.unwrap();
    // The seed and the flag byte.
    assert_eq!(d.sent[0], 33);
    assert_eq!(d.requests, s1.offline_requests);
    println!(
        "dense-relu 64x32 -> 16 over TLS: {} rounds, {} bytes sent per party, offline: \
         party 0 {} bytes, party 1 {} bytes ({} without seeds), {} dealer requests, \
         dealer wire to party 1 {} bytes",
        s0.rounds,
        s0.online_sent,
        s0.offline_bytes,
        s1.offline_bytes,
        s1.offline_full_bytes,
        s1.offline_requests,
        d.wire[1].sent
    );
}

/// The dealer and both servers as separate `ringnn` processes over TLS on loopback.
#[test]
fn dealer_and_servers_as_separate_processes_match_plain() {
    let dir = tmp("mpc-demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringnn"))
        .args([
            "mpc-demo",
            "--batch",
            "16",
            "--inputs",
            "8",
            "--outputs",
            "4",
            "--json",
            "--dir",
        ])
        .arg(&*dir)
        .output()
        .expect("ringnn runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(v["max_ulp"].as_i64().unwrap() <= 1, "{v}");
    assert_eq!(v["elements"], 64);
    for s in v["servers"].as_array().unwrap() {
        assert!(s["online_sent"].as_u64().unwrap() > 0 && s["rounds"].as_u64().unwrap() > 0);
    }
    // No share file or key is printed.
    assert!(!text.contains("BEGIN"));
}

/// A dealer server in a thread on `dir`'s keys; `junk`, when given, is sent by a stranger
/// that connects first; then both parties connect for `comparison` and `body` gets
/// their correlations.
/// Returns what `body` returns and the dealer's result.
fn with_dealer<T>(
    dir: &Path,
    net: &NetConfig,
    junk: Option<&[u8]>,
    comparison: ringnn_host::mpc::Comparison,
    body: impl FnOnce(SeededCorrelations, SeededCorrelations) -> T,
) -> (
    T,
    Result<
        ringnn_host::mpc::dealer_server::DealerReport,
        ringnn_host::mpc::dealer_server::DealerError,
    >,
) {
    use ringnn_host::mpc::dealer_server::{connect_dealer, serve_dealer_on, DealerConfig};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let dcfg = DealerConfig {
        listen: addr.clone(),
        keys: dir.to_path_buf(),
        net: net.clone(),
        master_seed: Some([4; 32]),
    };
    let (id0, id1) = (
        Identity::load(dir, P0).unwrap(),
        Identity::load(dir, P1).unwrap(),
    );
    std::thread::scope(|s| {
        let d = s.spawn(|| serve_dealer_on(l, &dcfg));
        let stranger = junk.map(|b| stranger(&addr, b));
        let h0 = s.spawn(|| connect_dealer(&addr, &id0, net, comparison).unwrap().0);
        let (c1, _) = connect_dealer(&addr, &id1, net, comparison).unwrap();
        let out = body(h0.join().unwrap(), c1);
        drop(stranger);
        (out, d.join().unwrap())
    })
}

#[test]
fn dealer_material_sent_ahead_is_the_same_and_a_different_request_is_refused() {
    use ringnn_host::mpc::dealer::Request;
    use ringnn_host::mpc::Correlations;
    let dir = keys("prefetch");
    let net = cfg(SessionId::random());
    let (_, dealer) = with_dealer(&dir, &net, None, A2B, |mut c0, mut c1| {
        // Announced, then asked for in the same order: valid triples and pairs.
        c1.prefetch(&[Request::Beaver { n: 6 }, Request::Trunc { n: 3, bits: 9 }])
            .unwrap();
        let (t0, t1) = (c0.beaver(6).unwrap(), c1.beaver(6).unwrap());
        for i in 0..6 {
            assert_eq!((t0.a[i] + t1.a[i]) * (t0.b[i] + t1.b[i]), t0.c[i] + t1.c[i]);
        }
        let (p0, p1) = (c0.trunc(3, 9).unwrap(), c1.trunc(3, 9).unwrap());
        for i in 0..3 {
            let r = (p0.r[i] + p1.r[i]).0;
            assert_eq!((p0.low[i] + p1.low[i]).0, (r & (u64::MAX >> 1)) >> 9);
        }
        // Without an announcement the feed asks one by one, as before.
        let (b0, b1) = (c0.beaver(2).unwrap(), c1.beaver(2).unwrap());
        assert_eq!((b0.a[0] + b1.a[0]) * (b0.b[0] + b1.b[0]), b0.c[0] + b1.c[0]);
        // A request other than the announced one is an error, not wrong material.
        c1.prefetch(&[Request::Beaver { n: 3 }]).unwrap();
        let err = c1.and_triples(1).unwrap_err().to_string();
        assert!(err.contains("announced"), "{err}");
    });
    // Party 1's run failed: the dealer does not report a completed session.
    assert!(dealer.is_err(), "{dealer:?}");
}

/// The FSS comparison and ReLU through the dealer as its own server over TLS: party 0
/// keeps its dealer connection for keys, both parties' keys (sent ahead and asked one by
/// one) give `[x < 0]` and `max(x, 0)` exactly, both parties' counts include the keys,
/// and the dealer reports a completed session once both said goodbye.
#[test]
fn fss_keys_from_the_dealer_process_compare_exactly() {
    use ringnn_host::mpc::dealer::Request;
    use ringnn_host::mpc::fss::{drelu_eval, relu_eval, DreluKey, ReluKey};
    use ringnn_host::mpc::{Comparison, Correlations};
    let dir = keys("fss-dealer");
    let net = cfg(SessionId::random());
    let xs = [0u64, 1, u64::MAX, 1 << 63, (1 << 63) - 1, (1 << 63) + 1, 77];
    let n = xs.len();
    let (_, dealer) = with_dealer(&dir, &net, None, Comparison::Fss, |mut c0, mut c1| {
        let (t0, t1) = (c0.beaver(2).unwrap(), c1.beaver(2).unwrap());
        assert_eq!((t0.a[1] + t1.a[1]) * (t0.b[1] + t1.b[1]), t0.c[1] + t1.c[1]);
        // Announced ahead (party 0 passes only the key request on), then one by one.
        let ahead = [
            Request::Beaver { n: 1 },
            Request::Drelu { n, m: 64 },
            Request::Relu { n, m: 64 },
        ];
        c0.prefetch(&ahead).unwrap();
        c1.prefetch(&ahead).unwrap();
        c0.beaver(1).unwrap();
        c1.beaver(1).unwrap();
        for _ in 0..2 {
            let (a, b) = (c0.drelu(n, 64).unwrap(), c1.drelu(n, 64).unwrap());
            for (i, &x) in xs.iter().enumerate() {
                let x_hat = x.wrapping_add((a.r[i] + b.r[i]).0);
                let ge = drelu_eval(PartyId::P0, &a.keys[i], x_hat).wrapping_add(drelu_eval(
                    PartyId::P1,
                    &b.keys[i],
                    x_hat,
                ));
                assert_eq!(ge, u64::from((x as i64) >= 0), "x = {x:#x}");
            }
            // ReLU keys: the output shares add up to max(x, 0), no output mask.
            let (a, b) = (c0.relu(n, 64).unwrap(), c1.relu(n, 64).unwrap());
            for (i, &x) in xs.iter().enumerate() {
                let x_hat = x.wrapping_add((a.r[i] + b.r[i]).0);
                let y = relu_eval(PartyId::P0, &a.keys[i], x_hat)
                    .y
                    .wrapping_add(relu_eval(PartyId::P1, &b.keys[i], x_hat).y);
                let want = if (x as i64) < 0 { 0 } else { x };
                assert_eq!(y, want, "ReLU, x = {x:#x}");
            }
        }
        let keys = 2 * (n * (DreluKey::size(64) + ReluKey::size(64))) as u64;
        assert_eq!(c0.offline().bytes, 32 + keys);
        assert!(c1.offline().bytes > 32 + keys);
        c0.finish().unwrap();
        c1.finish().unwrap();
    });
    // Party 1: 6 requests; party 0: its 4 key requests.
    assert_eq!(dealer.unwrap().requests, 10);
}

/// Keys longer than a frame travel in several frames: with 16 KiB frames, 40 DReLU keys
/// of width 64 (65 KB) reach both parties whole and compare exactly.
#[test]
fn fss_keys_longer_than_a_frame_arrive_in_several_frames() {
    use ringnn_host::mpc::fss::{drelu_eval, DreluKey};
    use ringnn_host::mpc::{Comparison, Correlations};
    let dir = keys("fss-frames");
    let mut net = cfg(SessionId::random());
    net.max_frame = 16 << 10;
    let n = 40;
    assert!(n * DreluKey::size(64) > 2 * net.max_frame);
    let (_, dealer) = with_dealer(&dir, &net, None, Comparison::Fss, |mut c0, mut c1| {
        let (a, b) = (c0.drelu(n, 64).unwrap(), c1.drelu(n, 64).unwrap());
        for i in 0..n {
            let x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let x_hat = x.wrapping_add((a.r[i] + b.r[i]).0);
            let ge = drelu_eval(PartyId::P0, &a.keys[i], x_hat).wrapping_add(drelu_eval(
                PartyId::P1,
                &b.keys[i],
                x_hat,
            ));
            assert_eq!(ge, u64::from((x as i64) >= 0), "key {i}");
        }
        c0.finish().unwrap();
        c1.finish().unwrap();
    });
    assert_eq!(dealer.unwrap().requests, 2);
}

/// Connects to `addr` and writes `bytes` (errors ignored: the listener may close first);
/// returns the socket so that it stays open.
fn stranger(addr: &str, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut sock = std::net::TcpStream::connect(addr).unwrap();
    let _ = sock.write_all(bytes);
    sock
}

/// Issue 14, drills 1 and 2: random bytes, a silent client, a client sending one byte at
/// a time, a certificate of another CA and a process of another session all connect
/// before the rightful peer. Each is refused with its reason and the listener goes on:
/// the rightful peer gets through and the channel works.
#[test]
fn strangers_before_the_rightful_peer_are_refused_and_it_still_gets_in() {
    use ringnn_host::mpc::accept::Acceptor;
    use ringnn_host::mpc::Channel;
    let (dir, other) = (keys("strangers"), keys("strangers-other"));
    let mut c = cfg(SessionId::random());
    c.wait = Duration::from_secs(30);
    c.handshake = Duration::from_secs(1);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let id0 = Identity::load(&dir, P0).unwrap();
    let id1 = Identity::load(&dir, P1).unwrap();
    let foreign = Identity {
        ca: id1.ca.clone(),
        ..Identity::load(&other, P1).unwrap()
    };
    let mut wrong_session = c.clone();
    wrong_session.session = SessionId::random();
    let mut acc = Acceptor::new(&l, &id0, &[P1], &c).unwrap().quiet();
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let junk: Vec<u8> = (0..1 << 20).map(|_| rng.random()).collect();
    let start = Instant::now();
    let (ch, slow_sent) = std::thread::scope(|s| {
        s.spawn(|| stranger(&addr, &junk));
        let silent = stranger(&addr, &[]);
        // One byte of a TLS record header every 200 ms: under any per-read timeout.
        let slow = s.spawn(|| {
            use std::io::Write;
            let mut sock = std::net::TcpStream::connect(&addr).unwrap();
            let mut sent = 0;
            for b in [0x16u8, 3, 1, 2, 0, 1, 0, 1, 0xfc, 3, 3].iter().cycle() {
                if sock.write_all(&[*b]).is_err() || sent > 100 {
                    break;
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            sent
        });
        s.spawn(|| net::connect(&addr, &foreign, P0, &c));
        s.spawn(|| net::connect(&addr, &id1, P0, &wrong_session));
        // The rightful peer comes once every stranger's handshake has ended.
        let right = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(2500));
            net::connect(&addr, &id1, P0, &c)
        });
        let ch = acc.next_peer().unwrap();
        let mut b = right.join().unwrap().unwrap();
        drop(silent);
        (
            (ch, b.write_all(&[42]).and_then(|()| b.flush())),
            slow.join().unwrap(),
        )
    });
    let (mut ch, sent) = ch;
    sent.unwrap();
    assert_eq!(ch.peer(), P1);
    let mut got = [0u8; 1];
    ch.read_exact(&mut got).unwrap();
    assert_eq!(got, [42]);
    assert!(start.elapsed() < Duration::from_secs(10));
    // The slow client was cut off at the handshake's deadline, not after 100 bytes.
    assert!(slow_sent < 10, "{slow_sent} bytes");
    let reasons: Vec<&str> = acc.refused().iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    let count = |pat: &str| reasons.iter().filter(|r| r.contains(pat)).count();
    assert_eq!(count("no complete handshake within 1s"), 2, "{reasons:#?}");
    assert_eq!(count("invalid peer certificate"), 1, "{reasons:#?}");
    assert_eq!(count("session id mismatch"), 1, "{reasons:#?}");
    assert_eq!(count("TLS handshake with party 1"), 4, "{reasons:#?}");
    assert_eq!(count("Resource temporarily unavailable"), 0, "{reasons:#?}");
    assert!(acc
        .refused()
        .iter()
        .all(|r| r.from.starts_with("127.0.0.1:")));
}

/// A stranger that connects and says nothing does not hold the listener: the rightful
/// peer right behind it is in long before the stranger's handshake deadline.
#[test]
fn a_silent_stranger_does_not_delay_the_rightful_peer() {
    let dir = keys("silent");
    let mut c = cfg(SessionId::random());
    c.handshake = Duration::from_secs(20);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (id0, id1) = (
        Identity::load(&dir, P0).unwrap(),
        Identity::load(&dir, P1).unwrap(),
    );
    let silent = stranger(&addr, &[]);
    let start = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let h0 = s.spawn(|| ringnn_host::mpc::accept::accept(&l, &id0, &[P1], &c));
        let h1 = s.spawn(|| net::connect(&addr, &id1, P0, &c));
        (h0.join().unwrap(), h1.join().unwrap())
    });
    assert!(a.is_ok() && b.is_ok());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop(silent);
}

/// Issue 14, drills 1 and 6 for the dealer: a stranger before the parties does not end
/// the session; the dealer's result says whether party 1's run completed.
#[test]
fn the_dealer_outlasts_a_stranger_and_reports_whether_the_run_completed() {
    use ringnn_host::mpc::dealer_server::DealerError;
    use ringnn_host::mpc::Correlations;
    let dir = keys("dealer-status");
    let net = cfg(SessionId::random());
    let run = |finish: bool| {
        with_dealer(&dir, &net, Some(&[0xff; 4096]), A2B, |mut c0, mut c1| {
            let (t0, t1) = (c0.beaver(3).unwrap(), c1.beaver(3).unwrap());
            assert_eq!((t0.a[0] + t1.a[0]) * (t0.b[0] + t1.b[0]), t0.c[0] + t1.c[0]);
            if finish {
                c1.finish().unwrap();
            }
        })
        .1
    };
    let done = run(true).unwrap();
    assert_eq!(done.requests, 1);
    match run(false) {
        Err(e @ DealerError::Aborted { requests: 1, .. }) => {
            assert!(e.to_string().contains("without completing it"), "{e}")
        }
        other => panic!("expected an aborted session, got {other:?}"),
    }
}

/// Issue 14, item 8: keys per role. Each operator makes its own key and signing request;
/// a CA operator, holding no role key, certifies them; the roles then authenticate each
/// other. A request asking for another role's name, or one whose signature does not
/// verify, is refused.
#[test]
fn separate_operators_make_their_own_keys_and_a_ca_certifies_them() {
    use ringnn_host::mpc::keys::{ca_init, ca_sign, role_request};
    let base = tmp("custody");
    let ca = base.join("ca");
    ca_init(&ca).unwrap();
    let mut dirs = Vec::new();
    for role in Role::ALL {
        let dir = base.join(role.stem());
        let (key, csr) = role_request(&dir, role).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} readable by others", key.display());
        }
        // A request certified for another role is refused, naming the file.
        let other = if role == P0 { P1 } else { P0 };
        let err = ca_sign(&ca, &csr, other, &base.join("x.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(".csr") && err.contains("asks for the name"),
            "{err}"
        );
        ca_sign(&ca, &csr, role, &dir.join(format!("{}.pem", role.stem()))).unwrap();
        std::fs::copy(ca.join("ca.pem"), dir.join("ca.pem")).unwrap();
        // The CA folder never holds a role's key.
        assert!(!ca.join(format!("{}.key", role.stem())).exists());
        dirs.push(dir);
    }
    // Making a second key over the first is refused: nothing is lost.
    assert!(role_request(&dirs[0], P0).is_err());
    // A request whose signature does not verify is refused.
    let csr = dirs[1].join("party1.csr");
    let text = std::fs::read_to_string(&csr).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mid = lines.len() / 2;
    let mut b: Vec<char> = lines[mid].chars().collect();
    b[10] = if b[10] == 'A' { 'B' } else { 'A' };
    lines[mid] = b.into_iter().collect();
    let forged = base.join("forged.csr");
    std::fs::write(&forged, lines.join("\n")).unwrap();
    assert!(ca_sign(&ca, &forged, P1, &base.join("f.pem")).is_err());
    // The three operators' identities talk to each other.
    let c = cfg(SessionId::random());
    let (a, b) = pair(&dirs[0], &c, &dirs[1], P1, &c);
    assert_eq!(a.unwrap().peer(), P1);
    assert_eq!(b.unwrap().peer(), P0);
    let (a, _) = pair(&dirs[0], &c, &dirs[2], Role::Dealer, &c);
    assert!(
        a.is_err(),
        "the dealer's certificate must not pass as party 1"
    );
}
