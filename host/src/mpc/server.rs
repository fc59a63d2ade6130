//! One computing server as its own process ([`run_server`]), the data owner's side of a
//! job ([`owner_dense_shares`]); [`super::launch::run_local_mpc`] runs dealer and both
//! servers on one machine.
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
//! - [`super::launch::run_local_mpc`] plays the owner, the dealer and both servers on one machine: it is
//!   for tests and measurements, not a deployment (one machine sees everything).

use super::channel::Channel;
use super::comparison::Comparison;
use super::dealer_server::connect_dealer;
use super::engine::Mpc;
pub use super::job::{parse_shares, read_shares, write_shares};
use super::keys::{Identity, Role};
use super::net::{self, NetConfig};
use super::{share, PartyId};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use ringnn_core::fixed::FracBits;
use ringnn_core::layers::Dense;
use ringnn_core::{Engine, Fixed, Z64};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How this server reaches its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerLink {
    /// Listen on this address (party 0).
    Listen(String),
    /// Connect to this address (party 1).
    Connect(String),
}

impl PeerLink {
    /// The bound listener of a [`PeerLink::Listen`] (`None` for [`PeerLink::Connect`]);
    /// `party` is this server, named in the error as the peer's side.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn bind(&self, party: PartyId) -> Result<Option<TcpListener>, ServerError> {
        match self {
            PeerLink::Listen(a) => Ok(Some(TcpListener::bind(a).map_err(|source| {
                net::NetError::Io {
                    peer: party.peer().to_string(),
                    addr: a.clone(),
                    during: "bind",
                    source,
                }
            })?)),
            PeerLink::Connect(_) => Ok(None),
        }
    }
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
    /// The [`keygen`](super::keys::keygen) directory (needs `ca.pem` and this party's certificate and key).
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

pub use super::ServerError;

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
    let listener = cfg.link.bind(cfg.party)?;
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
    // The fixed demonstration job compares with the adder.
    let (corr, _) = connect_dealer(&cfg.dealer, &me, &cfg.net, Comparison::A2b)?;
    let peer = Role::Party(cfg.party.peer());
    let ch = match (&cfg.link, listener) {
        (PeerLink::Listen(_), Some(l)) => super::accept::accept(&l, &me, &[peer], &cfg.net)?,
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
