//! The two-party commands: `keygen`, `ca`, `dealer`, `server`, `share`, `reveal`, and the
//! dense demo (`mpc-dealer`, `mpc-server`, `mpc-demo`).

use super::*;

/// Arguments of `ringnn keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Folder for the files (created): ROLE.key and ROLE.csr with --role; else ca.pem and
    /// every role's certificate and key.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Make only this role's key and signing request: party0, party1 or dealer.
    #[arg(long)]
    pub role: Option<String>,
}

/// `ringnn ca` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CaCommand {
    /// Make a session CA: ca.pem (give it to every role) and ca.key (keep it).
    Init {
        /// Folder for ca.pem and ca.key (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Certify a role's signing request: checks its signature and that it asks for no
    /// other role, and writes the role's certificate.
    Sign {
        /// The CA folder from `ca init`.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The role: party0, party1 or dealer.
        #[arg(long)]
        role: String,
        /// The role's ROLE.csr from `keygen --role`.
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// Where to write the certificate (ROLE.pem, to go beside the role's key).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

fn role_arg(flag: &'static str, name: &str) -> Result<crate::mpc::keys::Role, ConfigError> {
    crate::mpc::keys::Role::ALL
        .into_iter()
        .find(|r| r.stem() == name)
        .ok_or_else(|| ConfigError::Name {
            flag,
            message: format!("unknown role '{name}'; valid: party0, party1, dealer"),
        })
}

/// Arguments of `ringnn mpc-dealer`.
#[derive(Debug, Args)]
pub struct MpcDealerArgs {
    /// Address to listen on (host:port).
    #[arg(long)]
    pub listen: String,
    /// The keygen folder.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Derive the dealer's randomness from this number instead of the operating system:
    /// reproducible runs for tests only. Anyone who knows it can unmask every message.
    #[arg(
        long = "insecure-dealer-seed",
        alias = "insecure-seed",
        value_name = "N"
    )]
    pub insecure_seed: Option<u64>,
    /// Session and connection settings.
    #[command(flatten)]
    pub net: NetArgs,
}

/// Arguments of `ringnn mpc-server`.
#[derive(Debug, Args)]
pub struct MpcServerArgs {
    /// 0 or 1.
    #[arg(long)]
    pub party: u8,
    /// Listen for the other server here (party 0).
    #[arg(long, conflicts_with = "connect")]
    pub listen: Option<String>,
    /// Connect to the other server here (party 1).
    #[arg(long)]
    pub connect: Option<String>,
    /// The dealer's address.
    #[arg(long)]
    pub dealer: String,
    /// The keygen folder.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Session and connection settings.
    #[command(flatten)]
    pub net: NetArgs,
    /// Fractional bits (both servers must agree).
    #[arg(long = "frac-bits", default_value_t = 16)]
    pub frac_bits: u32,
    /// The job: dense-relu.
    #[arg(long, default_value = "dense-relu")]
    pub job: String,
    /// Rows of the input.
    #[arg(long)]
    pub batch: usize,
    /// Input features.
    #[arg(long)]
    pub inputs: usize,
    /// Output features.
    #[arg(long)]
    pub outputs: usize,
    /// This server's share file from the data owner.
    #[arg(long, value_name = "FILE")]
    pub shares: PathBuf,
    /// Where to write this server's share of the result.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Where to write the report (JSON: bytes, rounds, offline bytes).
    #[arg(long, value_name = "FILE")]
    pub report: PathBuf,
}

/// Arguments of `ringnn server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// 0 or 1.
    #[arg(long)]
    pub party: u8,
    /// Listen for the other server here (party 0).
    #[arg(long, conflicts_with = "connect")]
    pub listen: Option<String>,
    /// Connect to the other server here (party 1; `--peer` is the same flag).
    #[arg(long, alias = "peer")]
    pub connect: Option<String>,
    /// The dealer's address.
    #[arg(long)]
    pub dealer: String,
    /// The keygen folder.
    #[arg(long, value_name = "DIR")]
    pub keys: PathBuf,
    /// Session and connection settings.
    #[command(flatten)]
    pub net: NetArgs,
    /// The job description from `ringnn share` (job.json, the same for both servers).
    #[arg(long, value_name = "FILE")]
    pub job: PathBuf,
    /// This server's share file from `ringnn share`.
    #[arg(long, value_name = "FILE")]
    pub shares: PathBuf,
    /// Output folder: this server's shares of the model and predictions, and its report.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Checkpoint this server's shares into DIR after every epoch (the last two are kept).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the latest epoch that both servers have checkpointed.
    #[arg(long)]
    pub resume: bool,
}

/// Arguments of `ringnn share`.
#[derive(Debug, Args)]
pub struct ShareArgs {
    /// The training flags, as `ringnn train` (--engine, --checkpoint, --resume, --json and
    /// --insecure-dealer-seed are ignored).
    #[command(flatten)]
    pub train: TrainArgs,
    /// Folder for job.json, owner.json, server0/shares.bin and server1/shares.bin.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Arguments of `ringnn reveal`.
#[derive(Debug, Args)]
pub struct RevealArgs {
    /// The owner's owner.json from `ringnn share`.
    #[arg(long, value_name = "FILE")]
    pub owner: PathBuf,
    /// The two servers' output folders (give the flag twice: server 0's, then server 1's).
    #[arg(long = "from", value_name = "DIR", num_args = 1)]
    pub from: Vec<PathBuf>,
    /// Folder for the revealed model (a Plain checkpoint).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn party_arg(p: u8) -> Result<crate::mpc::PartyId, ConfigError> {
    match p {
        0 => Ok(crate::mpc::PartyId::P0),
        1 => Ok(crate::mpc::PartyId::P1),
        p => Err(ConfigError::Value {
            flag: "party",
            message: format!("must be 0 or 1, got {p}"),
        }),
    }
}

fn peer_link(
    listen: Option<String>,
    connect: Option<String>,
) -> Result<crate::mpc::server::PeerLink, ConfigError> {
    use crate::mpc::server::PeerLink;
    match (listen, connect) {
        (Some(l), None) => Ok(PeerLink::Listen(l)),
        (None, Some(c)) => Ok(PeerLink::Connect(c)),
        _ => Err(ConfigError::Value {
            flag: "listen",
            message: "give exactly one of --listen ADDR (party 0) and --connect ADDR (party 1)"
                .into(),
        }),
    }
}

pub(super) fn server_command(a: &ServerArgs) -> Result<(), CliError> {
    if a.resume && a.checkpoint.is_none() {
        return Err(ConfigError::Value {
            flag: "resume",
            message: "needs --checkpoint DIR".into(),
        }
        .into());
    }
    let cfg = crate::mpc::training::TrainServerConfig {
        party: party_arg(a.party)?,
        link: peer_link(a.listen.clone(), a.connect.clone())?,
        dealer: a.dealer.clone(),
        keys: a.keys.clone(),
        net: net_config(&a.net)?,
        job: a.job.clone(),
        shares: a.shares.clone(),
        out: a.out.clone(),
        checkpoint: a.checkpoint.clone(),
        resume: a.resume,
        progress: true,
    };
    let who = format!("server {}", a.party);
    let r = crate::mpc::training::run_train_server(&cfg)
        .map_err(|e| CliError::Failed(format!("{who}: {e}")))?;
    eprintln!(
        "{who}: trained {} steps ({} samples) in {:.1} s; sent {} bytes in {} rounds; wrote {}",
        r.steps,
        r.samples,
        r.train_seconds,
        r.online_sent,
        r.rounds,
        a.out.display()
    );
    Ok(())
}

pub(super) fn share_command(a: &ShareArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut cfg = a.train.config()?;
    cfg.engine = crate::train::EngineKind::Mpc;
    let s = crate::mpc::owner::share_job(&cfg, &a.out)?;
    writeln!(
        out,
        "shared {} training and {} test {} of {} for {}: {} and {} (one per server), {} (both), {} (keep)",
        s.job.train_samples,
        s.job.test_samples,
        if s.job.seq2seq.is_some() {
            "sentence pairs"
        } else {
            "images"
        },
        s.job.config.data,
        s.job.config.model,
        s.shares[0].display(),
        s.shares[1].display(),
        s.job_file.display(),
        s.owner_file.display()
    )?;
    Ok(())
}

pub(super) fn reveal_command(a: &RevealArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let [d0, d1] = a.from.as_slice() else {
        return Err(ConfigError::Value {
            flag: "from",
            message: format!(
                "give --from twice (server 0's output folder, then server 1's), got {}",
                a.from.len()
            ),
        }
        .into());
    };
    let r = crate::mpc::owner::reveal(&a.owner, [d0, d1], &a.model)?;
    if a.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"test_accuracy": r.test_accuracy, "perplexity": r.perplexity, "test_samples": r.predictions.len(), "checkpoint": r.checkpoint})
        )?;
    } else if let Some(p) = r.perplexity {
        writeln!(
            out,
            "test perplexity {p:.2}, token accuracy {:.2}% on {} target tokens; model written to {}",
            100.0 * r.test_accuracy,
            r.predictions.len(),
            r.checkpoint.display()
        )?;
    } else {
        writeln!(
            out,
            "test accuracy {:.2}% on {} predictions; model written to {}",
            100.0 * r.test_accuracy,
            r.predictions.len(),
            r.checkpoint.display()
        )?;
    }
    Ok(())
}

/// Arguments of `ringnn mpc-demo`.
#[derive(Debug, Args)]
pub struct MpcDemoArgs {
    /// Working folder for keys, share files and reports (created).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Rows of the input.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Input features.
    #[arg(long, default_value_t = 32)]
    pub inputs: usize,
    /// Output features.
    #[arg(long, default_value_t = 16)]
    pub outputs: usize,
    /// Fractional bits.
    #[arg(long = "frac-bits", default_value_t = 16)]
    pub frac_bits: u32,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn session(s: &str) -> Result<crate::mpc::net::SessionId, ConfigError> {
    s.parse().map_err(|e: String| ConfigError::Value {
        flag: "session",
        message: e,
    })
}

/// The session and connection flags of the dealer and server processes.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// Session id (32 hex digits, e.g. from `openssl rand -hex 16`), the same for the
    /// dealer and both servers.
    #[arg(long)]
    pub session: String,
    /// Connect and read timeout in seconds: a silent peer fails the run after this long.
    #[arg(long = "timeout-s", default_value_t = 30)]
    pub timeout_s: u64,
    /// How long a listening process waits for its rightful peers, in seconds; strangers
    /// that connect meanwhile are refused and logged.
    #[arg(long = "wait-s", default_value_t = 60)]
    pub wait_s: u64,
    /// Overall deadline of one connection's handshake, in seconds.
    #[arg(long = "handshake-timeout-s", default_value_t = 10)]
    pub handshake_s: u64,
}

fn net_config(a: &NetArgs) -> Result<crate::mpc::net::NetConfig, ConfigError> {
    let secs = |flag: &'static str, v: u64| {
        if v == 0 {
            Err(ConfigError::Value {
                flag,
                message: "must be at least 1".into(),
            })
        } else {
            Ok(std::time::Duration::from_secs(v))
        }
    };
    let mut net = crate::mpc::net::NetConfig::new(session(&a.session)?);
    net.timeout = secs("timeout-s", a.timeout_s)?;
    net.wait = secs("wait-s", a.wait_s)?;
    net.handshake = secs("handshake-timeout-s", a.handshake_s)?;
    Ok(net)
}

pub(super) fn mpc_command(cmd: Command, out: &mut dyn Write) -> Result<(), CliError> {
    use crate::mpc::server::{Job, ServerConfig};
    match cmd {
        Command::Keygen(a) => match &a.role {
            Some(name) => {
                let role = role_arg("role", name)?;
                let (key, csr) = crate::mpc::keys::role_request(&a.out, role)?;
                writeln!(
                    out,
                    "wrote {} (keep it on this machine) and {} (send it to the CA operator)",
                    key.display(),
                    csr.display()
                )?;
            }
            None => {
                let k = crate::mpc::keys::keygen(&a.out)?;
                writeln!(
                    out,
                    "wrote {} and {} role certificates and keys in {}",
                    k.ca.display(),
                    k.roles.len(),
                    a.out.display()
                )?;
                eprintln!(
                    "note: whoever holds {} holds every role's key and can unmask the run; \
                     for separate operators use `keygen --role` and `ca`",
                    a.out.display()
                );
            }
        },
        Command::Ca(CaCommand::Init { out: dir }) => {
            let ca = crate::mpc::keys::ca_init(&dir)?;
            writeln!(
                out,
                "wrote {} (give it to every role) and {} (keep it; run no role)",
                ca.display(),
                dir.join("ca.key").display()
            )?;
        }
        Command::Ca(CaCommand::Sign {
            ca,
            role,
            csr,
            out: cert,
        }) => {
            let role = role_arg("role", &role)?;
            crate::mpc::keys::ca_sign(&ca, &csr, role, &cert)?;
            writeln!(out, "wrote {} for {role}", cert.display())?;
        }
        Command::MpcDealer(a) => {
            let cfg = crate::mpc::dealer_server::DealerConfig {
                listen: a.listen,
                keys: a.keys,
                net: net_config(&a.net)?,
                master_seed: a.insecure_seed.map(crate::mpc::Dealer::insecure_seed),
            };
            let r = crate::mpc::dealer_server::serve_dealer(&cfg)?;
            eprintln!(
                "dealer: served {} requests; sent {} / {} bytes to party 0 / 1",
                r.requests, r.sent[0], r.sent[1]
            );
        }
        Command::MpcServer(a) => {
            let party = party_arg(a.party)?;
            let link = peer_link(a.listen, a.connect)?;
            if a.job != "dense-relu" {
                return Err(ConfigError::Name {
                    flag: "job",
                    message: format!("unknown job '{}'; valid: dense-relu", a.job),
                }
                .into());
            }
            FracBits::new(a.frac_bits).map_err(|e| ConfigError::Value {
                flag: "frac-bits",
                message: e.to_string(),
            })?;
            let cfg = ServerConfig {
                party,
                link,
                dealer: a.dealer,
                keys: a.keys,
                net: net_config(&a.net)?,
                frac_bits: a.frac_bits,
                job: Job::DenseRelu {
                    batch: a.batch,
                    inputs: a.inputs,
                    outputs: a.outputs,
                },
                shares: a.shares,
                out: a.out,
            };
            let r = crate::mpc::server::run_server(&cfg)?;
            std::fs::write(&a.report, serde_json::to_vec(&r)?)
                .map_err(|e| CliError::Failed(format!("report {}: {e}", a.report.display())))?;
        }
        Command::MpcDemo(a) => {
            FracBits::new(a.frac_bits).map_err(|e| ConfigError::Value {
                flag: "frac-bits",
                message: e.to_string(),
            })?;
            let exe = std::env::current_exe()?;
            let r = crate::mpc::launch::run_local_mpc(&crate::mpc::launch::LocalMpcJob {
                job: crate::mpc::server::Job::DenseRelu {
                    batch: a.batch,
                    inputs: a.inputs,
                    outputs: a.outputs,
                },
                frac_bits: a.frac_bits,
                data_seed: a.seed,
                dir: a.dir,
                launch: crate::mpc::launch::Launch::Processes(exe),
            })?;
            if a.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"servers": r.servers, "max_ulp": r.max_ulp, "elements": r.result.len()})
                )?;
            } else {
                writeln!(
                    out,
                    "dense-relu over TLS between three processes: {} outputs, max difference from Plain {} ulp",
                    r.result.len(),
                    r.max_ulp
                )?;
                for s in &r.servers {
                    writeln!(
                        out,
                        "  party {}: {} bytes sent, {} rounds",
                        s.party, s.online_sent, s.rounds
                    )?;
                }
            }
        }
        _ => unreachable!("only MPC commands come here"),
    }
    Ok(())
}
