//! One computing server as its own process ([`run_server`]), the data owner's side of a
//! job ([`owner_dense_shares`]), and a local orchestration of dealer and both servers
//! ([`run_local_mpc`]).
//!
//! # The job
//! [`Job::DenseRelu`]: `y = relu(x W + b)` for a `batch x inputs` matrix `x`, an
//! `inputs x outputs` matrix `W` and a bias `b`, all secret-shared by the data (and model)
//! owner. The owner writes one share file per server ([`write_shares`]: `x`, `W`, `b` in
//! this order); each server reads only its own, computes, and writes its share of `y`.
//! Only the owner, holding both output files, can reconstruct `y`.
//!
//! # Topology
//! Party 0 listens for party 1 ([`PeerLink::Listen`]); party 1 connects
//! ([`PeerLink::Connect`]); both connect to the dealer ([`super::dealer_server`]). All
//! connections are mutual TLS with the session id of [`ServerConfig::net`].
//!
//! # Security notes
//! - A server sees its own share file (uniform words), the masked messages of the
//!   protocols and its dealer material; nothing it writes or reports depends on data:
//!   the report holds byte and round counts, which depend on shapes only.
//! - Share files hold secret shares: each must reach only its server. They are written
//!   with mode 0600 on Unix.
//! - [`run_local_mpc`] plays the owner, the dealer and both servers on one machine: it is
//!   for tests and measurements, not a deployment (one machine sees everything).

use super::channel::Channel;
use super::dealer_server::{
    connect_dealer, serve_dealer_on, DealerConfig, DealerError, DealerReport,
};
use super::engine::Mpc;
pub use super::job::{parse_shares, read_shares, write_shares};
use super::keys::{keygen, Identity, KeyError, Role};
use super::launch::{dealer_args, dense_server_args, spawn_prefixed, wait_all};
use super::net::{self, NetConfig, NetError, SessionId};
use super::{reconstruct, share, MpcError, PartyId};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::fixed::FracBits;
use ringnn_core::layers::Dense;
use ringnn_core::{Engine, Fixed, Plain, Z64};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How this server reaches its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerLink {
    /// Listen on this address (party 0).
    Listen(String),
    /// Connect to this address (party 1).
    Connect(String),
}

/// A fixed computation. See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// `y = relu(x W + b)`.
    DenseRelu {
        /// Rows of `x`.
        batch: usize,
        /// Columns of `x`, rows of `W`.
        inputs: usize,
        /// Columns of `W` and `y`, length of `b`.
        outputs: usize,
    },
}

impl Job {
    /// Lengths of the input tensors, in share-file order.
    pub fn input_lens(&self) -> Vec<usize> {
        match *self {
            Job::DenseRelu {
                batch,
                inputs,
                outputs,
            } => vec![batch * inputs, inputs * outputs, outputs],
        }
    }

    /// Runs the job on any engine over `Z64`.
    ///
    /// # Errors
    /// The engine's.
    pub fn compute<E: Engine<Elem = Z64, Public = Z64> + ?Sized>(
        &self,
        e: &mut E,
        x: &[Vec<Z64>],
    ) -> Result<Vec<Z64>, E::Error> {
        match *self {
            Job::DenseRelu {
                batch,
                inputs,
                outputs,
            } => {
                let l = Dense::new(inputs, outputs);
                let mut y = vec![Z64::ZERO; batch * outputs];
                l.forward(e, &x[0], &x[1], &x[2], batch, &mut y)?;
                let mut s = vec![Z64::ZERO; 3 * y.len()];
                e.relu(&mut y, &mut s)?;
                Ok(y)
            }
        }
    }
}

/// Settings of one server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// This server.
    pub party: PartyId,
    /// The link to the other server.
    pub link: PeerLink,
    /// The dealer's address.
    pub dealer: String,
    /// The [`keygen`] directory (needs `ca.pem` and this party's certificate and key).
    pub keys: PathBuf,
    /// Session id, timeouts, frame limit.
    pub net: NetConfig,
    /// Fractional bits of the fixed-point format (both servers must agree).
    pub frac_bits: u32,
    /// The computation.
    pub job: Job,
    /// This server's share file from the owner.
    pub shares: PathBuf,
    /// Where to write this server's share of the result.
    pub out: PathBuf,
}

/// What a server reports: counts only, never values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ServerReport {
    /// 0 or 1.
    pub party: u8,
    /// Payload bytes sent to the peer (protocol frames, headers included).
    pub online_sent: u64,
    /// Payload bytes received from the peer.
    pub online_received: u64,
    /// Rounds.
    pub rounds: u64,
    /// Bytes from the dealer: the seed and (party 1) corrections.
    pub offline_bytes: u64,
    /// Bytes the dealer's material would take without PRG seeds.
    pub offline_full_bytes: u64,
    /// Dealer requests.
    pub offline_requests: u64,
    /// Wall time of the computation (connections excluded), microseconds.
    pub compute_us: u64,
}

/// Errors of a server run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Connection set-up failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The dealer connection failed.
    #[error(transparent)]
    Dealer(#[from] DealerError),
    /// Keys could not be made or loaded.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The computation failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// Data, model or training configuration.
    #[error(transparent)]
    Train(#[from] crate::train::run::TrainError),
    /// A checkpoint could not be written, read, or does not belong to this job.
    #[error(transparent)]
    Checkpoint(#[from] crate::train::checkpoint::CheckpointError),
    /// A share file is unreadable or malformed.
    #[error("{path}: {what}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Configuration error.
    #[error("{0}")]
    Config(String),
    /// A server or dealer process failed.
    #[error("{0}")]
    Process(String),
}

/// The owner's plaintext inputs of `job`, synthetic from `data_seed`, encoded with
/// `frac_bits`: `x` in [-2, 2), `W` and `b` in [-0.5, 0.5).
///
/// # Panics
/// If `frac_bits` is not a valid format.
pub fn synthetic_inputs(job: &Job, data_seed: u64, frac_bits: u32) -> Vec<Vec<Z64>> {
    use rand::Rng;
    let fx = Fixed::new(frac_bits).expect("valid fractional bits");
    let mut rng = ChaCha20Rng::seed_from_u64(data_seed);
    job.input_lens()
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let r = if i == 0 { 2.0 } else { 0.5 };
            (0..n)
                .map(|_| fx.encode(rng.random_range(-r..r)).expect("in range"))
                .collect()
        })
        .collect()
}

/// The owner's side: shares `inputs` with fresh OS randomness and writes `share0.bin`
/// and `share1.bin` into `dir`; returns their paths.
///
/// # Errors
/// The files cannot be written.
pub fn owner_dense_shares(dir: &Path, inputs: &[Vec<Z64>]) -> Result<[PathBuf; 2], ServerError> {
    let mut rng = ChaCha20Rng::from_os_rng();
    let mut parts: [Vec<Vec<Z64>>; 2] = [Vec::new(), Vec::new()];
    for t in inputs {
        let [a, b] = share(t, &mut rng);
        parts[0].push(a);
        parts[1].push(b);
    }
    let paths = [dir.join("share0.bin"), dir.join("share1.bin")];
    for (p, t) in paths.iter().zip(&parts) {
        write_shares(p, t)?;
    }
    Ok(paths)
}

/// Runs one server; see [`run_server_on`]. Party 0 binds [`PeerLink::Listen`]'s address.
///
/// # Errors
/// As [`run_server_on`], or the address cannot be bound.
pub fn run_server(cfg: &ServerConfig) -> Result<ServerReport, ServerError> {
    let listener = match &cfg.link {
        PeerLink::Listen(a) => Some(TcpListener::bind(a).map_err(|source| NetError::Io {
            peer: cfg.party.peer().to_string(),
            addr: a.clone(),
            during: "bind",
            source,
        })?),
        PeerLink::Connect(_) => None,
    };
    run_server_on(cfg, listener)
}

/// Runs one server with an already bound listener (for [`PeerLink::Listen`]): connects
/// to the dealer, links to the peer, reads the share file, computes, writes the result
/// share.
///
/// # Errors
/// Key files, connections, the share file (missing, or tensors of the wrong length),
/// the computation, the output file.
pub fn run_server_on(
    cfg: &ServerConfig,
    listener: Option<TcpListener>,
) -> Result<ServerReport, ServerError> {
    let me = Identity::load(&cfg.keys, Role::Party(cfg.party))?;
    let x = read_shares(&cfg.shares)?;
    let lens: Vec<usize> = x.iter().map(Vec::len).collect();
    if lens != cfg.job.input_lens() {
        return Err(ServerError::File {
            path: cfg.shares.clone(),
            what: format!(
                "tensor lengths {lens:?}, the job needs {:?}",
                cfg.job.input_lens()
            ),
        });
    }
    let (corr, _) = connect_dealer(&cfg.dealer, &me, &cfg.net)?;
    let peer = Role::Party(cfg.party.peer());
    let ch = match (&cfg.link, listener) {
        (PeerLink::Listen(_), Some(l)) => net::accept(&l, &me, &[peer], &cfg.net)?,
        (PeerLink::Connect(a), _) => net::connect(a, &me, peer, &cfg.net)?,
        (PeerLink::Listen(_), None) => {
            return Err(ServerError::Config("listen link without a listener".into()))
        }
    };
    let start = Instant::now();
    let report = compute(cfg, ch, corr, &x)?;
    Ok(ServerReport {
        compute_us: start.elapsed().as_micros() as u64,
        ..report
    })
}

fn compute<C: Channel, R: super::dealer::Correlations>(
    cfg: &ServerConfig,
    ch: C,
    corr: R,
    x: &[Vec<Z64>],
) -> Result<ServerReport, ServerError> {
    let f = FracBits::new(cfg.frac_bits)
        .map_err(|e| ServerError::Config(format!("fractional bits: {e}")))?;
    let mut e = Mpc::new(cfg.party, f, ch, corr);
    let y = cfg.job.compute(&mut e, x)?;
    write_shares(&cfg.out, &[y])?;
    e.finish()?;
    let (t, o) = (e.traffic(), e.offline());
    Ok(ServerReport {
        party: cfg.party.index() as u8,
        online_sent: t.sent,
        online_received: t.received,
        rounds: t.rounds,
        offline_bytes: o.bytes,
        offline_full_bytes: o.full_bytes,
        offline_requests: o.requests,
        compute_us: 0,
    })
}

/// How [`run_local_mpc`] starts the dealer and the servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Three threads of this process (real TLS over loopback).
    Threads,
    /// Three child processes of this `ringnn` binary, with the arguments of
    /// [`super::launch::dealer_args`] and [`super::launch::dense_server_args`].
    Processes(PathBuf),
}

/// A local end-to-end run.
#[derive(Clone, Debug)]
pub struct LocalMpcJob {
    /// The computation.
    pub job: Job,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Seed of the synthetic data.
    pub data_seed: u64,
    /// Working directory for keys, share files and reports (created).
    pub dir: PathBuf,
    /// Threads or processes.
    pub launch: Launch,
}

/// The outcome of [`run_local_mpc`].
#[derive(Clone, Debug)]
pub struct LocalMpcReport {
    /// Both servers' reports.
    pub servers: [ServerReport; 2],
    /// The dealer's report (threads only; a dealer process reports nothing back).
    pub dealer: Option<DealerReport>,
    /// The reconstructed result.
    pub result: Vec<Z64>,
    /// The same job on `Plain`.
    pub plain: Vec<Z64>,
    /// Largest difference between `result` and `plain`, in ulp.
    pub max_ulp: i64,
}

/// Plays the owner, the dealer and both servers on this machine: keys, synthetic data,
/// shares, the run, reconstruction and comparison with `Plain`. See the [module
/// documentation](self).
///
/// # Errors
/// Any part failing (the first error is returned; with processes, a failed child's exit
/// status).
pub fn run_local_mpc(job: &LocalMpcJob) -> Result<LocalMpcReport, ServerError> {
    fs::create_dir_all(&job.dir).map_err(|e| ServerError::File {
        path: job.dir.clone(),
        what: e.to_string(),
    })?;
    let keys = job.dir.join("keys");
    keygen(&keys)?;
    let inputs = synthetic_inputs(&job.job, job.data_seed, job.frac_bits);
    let shares = owner_dense_shares(&job.dir, &inputs)?;
    let net = NetConfig::new(SessionId::random());
    let bind =
        |a: &str| TcpListener::bind(a).map_err(|e| ServerError::Config(format!("bind {a}: {e}")));
    let (dealer_l, p0_l) = (bind("127.0.0.1:0")?, bind("127.0.0.1:0")?);
    let addr = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.to_string())
            .map_err(|e| ServerError::Config(e.to_string()))
    };
    let (dealer_addr, p0_addr) = (addr(&dealer_l)?, addr(&p0_l)?);
    let cfg = |party: PartyId| ServerConfig {
        party,
        link: match party {
            PartyId::P0 => PeerLink::Listen(p0_addr.clone()),
            PartyId::P1 => PeerLink::Connect(p0_addr.clone()),
        },
        dealer: dealer_addr.clone(),
        keys: keys.clone(),
        net: net.clone(),
        frac_bits: job.frac_bits,
        job: job.job,
        shares: shares[party.index()].clone(),
        out: job.dir.join(format!("out{}.bin", party.index())),
    };
    let (c0, c1) = (cfg(PartyId::P0), cfg(PartyId::P1));
    let (servers, dealer) = match &job.launch {
        Launch::Threads => {
            let dcfg = DealerConfig {
                listen: dealer_addr.clone(),
                keys: keys.clone(),
                net: net.clone(),
                master_seed: None,
            };
            std::thread::scope(|s| {
                let d = s.spawn(|| serve_dealer_on(dealer_l, &dcfg));
                let h0 = s.spawn(|| run_server_on(&c0, Some(p0_l)));
                let h1 = s.spawn(|| run_server_on(&c1, None));
                let r0 = h0.join().expect("party 0 panicked");
                let r1 = h1.join().expect("party 1 panicked");
                let d = d.join().expect("dealer panicked");
                Ok::<_, ServerError>(([r0?, r1?], Some(d?)))
            })?
        }
        Launch::Processes(exe) => {
            // Release the ports for the children (another process could take one in
            // between: a rare failure, reported as a failed child).
            drop((dealer_l, p0_l));
            let reports = [job.dir.join("report0.json"), job.dir.join("report1.json")];
            let spawn = |args: Vec<String>, name: &str| spawn_prefixed(exe, args, name);
            let mut children = vec![
                (
                    "the dealer".to_string(),
                    spawn(dealer_args(&dealer_addr, &keys, &net, None), "dealer")?,
                ),
                (
                    "party 0".to_string(),
                    spawn(dense_server_args(&c0, &reports[0]), "party 0")?,
                ),
                (
                    "party 1".to_string(),
                    spawn(dense_server_args(&c1, &reports[1]), "party 1")?,
                ),
            ];
            let failed = wait_all(&mut children, net.timeout + Duration::from_secs(10));
            if !failed.is_empty() {
                return Err(ServerError::Process(failed.join("; ")));
            }
            let read = |p: &PathBuf| -> Result<ServerReport, ServerError> {
                let s = fs::read_to_string(p).map_err(|e| ServerError::File {
                    path: p.clone(),
                    what: e.to_string(),
                })?;
                serde_json::from_str(&s).map_err(|e| ServerError::File {
                    path: p.clone(),
                    what: e.to_string(),
                })
            };
            ([read(&reports[0])?, read(&reports[1])?], None)
        }
    };
    let y0 = read_shares(&c0.out)?;
    let y1 = read_shares(&c1.out)?;
    let result = reconstruct(&y0[0], &y1[0]);
    let mut p = Plain::with_frac_bits(job.frac_bits)
        .map_err(|e| ServerError::Config(format!("fractional bits: {e}")))?;
    let plain = match job.job.compute(&mut p, &inputs) {
        Ok(v) => v,
        Err(e) => match e {},
    };
    let max_ulp = result
        .iter()
        .zip(&plain)
        .map(|(&a, &b)| (a - b).to_signed().abs())
        .max()
        .unwrap_or(0);
    Ok(LocalMpcReport {
        servers,
        dealer,
        result,
        plain,
        max_ulp,
    })
}
