//! Key material for the networked run: a small self-made certificate authority and one
//! certificate per role (party 0, party 1, the dealer), and the loading of them into
//! rustls configurations.
//!
//! # Keys per role (separate operators)
//! "Non-colluding" must not rest on one person holding every key. So each operator makes
//! its own key, and a CA operator, who holds no role key, certifies it:
//! 1. each role: [`role_request`] (`ringnn keygen --role party0 --out DIR`) writes
//!    `party0.key` (mode 0600; it never leaves that machine) and `party0.csr`, a
//!    certificate signing request that carries the public key only;
//! 2. the CA operator: [`ca_init`] (`ringnn ca init --out CA`) writes `ca.pem` and
//!    `ca.key` (0600), then [`ca_sign`] (`ringnn ca sign --ca CA --role party0 --csr
//!    party0.csr --out party0.pem`) checks the request's signature, refuses a request
//!    that names another role, and writes the certificate with the role's name set by
//!    the CA, not by the request;
//! 3. each role puts `ca.pem` and its `.pem` beside its `.key`: that folder is what
//!    `--keys` takes.
//!
//! The CA operator can issue a certificate for any role, so it must not also run one;
//! it never sees a role's private key, so it cannot *be* a role whose key was made by
//! its operator without issuing a second certificate for that role.
//!
//! # All keys at once (one machine, tests)
//! [`keygen`] (`ringnn keygen --out DIR`) writes, into one directory, and says that one
//! person then holds every key:
//! - `ca.pem`: the CA certificate (its private key is never written: no further
//!   certificate can be issued under it, so a new run means a new `keygen`),
//! - `party0.pem` / `party0.key`, `party1.pem` / `party1.key`, `dealer.pem` /
//!   `dealer.key`: each role's certificate, signed by the CA, and its private key
//!   (PKCS#8, ECDSA P-256).
//!
//! Each certificate names its role as DNS subject alternative name and common name
//! ([`Role::dns_name`]: `party0.ringnn`, `party1.ringnn`, `dealer.ringnn`); the transport
//! checks that name on every connection ([`super::net`]).
//!
//! # Security notes
//! - Whoever holds the CA directory's files can impersonate nobody (the CA key is not
//!   kept), but whoever holds a role's `.key` file *is* that role: copy each key only to
//!   the machine of its role. On Unix the key files are created with mode 0600.
//! - The CA is trusted exclusively: a certificate from any other CA (or a public one) is
//!   refused, whatever name it carries.
//! - Keys are never printed or logged; errors name files, not contents.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs;
use std::path::{Path, PathBuf};

use super::PartyId;

/// Who is at one end of a connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// One of the two computing parties.
    Party(PartyId),
    /// The dealer of correlated randomness.
    Dealer,
}

impl Role {
    /// All three roles.
    pub const ALL: [Role; 3] = [
        Role::Party(PartyId::P0),
        Role::Party(PartyId::P1),
        Role::Dealer,
    ];

    /// The file stem of the role's certificate and key: `party0`, `party1`, `dealer`.
    pub fn stem(self) -> &'static str {
        match self {
            Role::Party(PartyId::P0) => "party0",
            Role::Party(PartyId::P1) => "party1",
            Role::Dealer => "dealer",
        }
    }

    /// The identity in the role's certificate (DNS subject alternative name and common
    /// name).
    pub fn dns_name(self) -> &'static str {
        match self {
            Role::Party(PartyId::P0) => "party0.ringnn",
            Role::Party(PartyId::P1) => "party1.ringnn",
            Role::Dealer => "dealer.ringnn",
        }
    }

    /// The role's code in handshake frames (0, 1, 2).
    pub fn code(self) -> u8 {
        match self {
            Role::Party(p) => p.index() as u8,
            Role::Dealer => 2,
        }
    }

    /// The role of a handshake code.
    pub fn from_code(c: u8) -> Option<Role> {
        match c {
            0 => Some(Role::Party(PartyId::P0)),
            1 => Some(Role::Party(PartyId::P1)),
            2 => Some(Role::Dealer),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Party(p) => p.fmt(f),
            Role::Dealer => f.write_str("the dealer"),
        }
    }
}

/// Errors of key generation and loading.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The files [`keygen`] wrote.
#[derive(Clone, Debug)]
pub struct KeyFiles {
    /// The CA certificate.
    pub ca: PathBuf,
    /// Each role's `(certificate, key)`, in the order of [`Role::ALL`].
    pub roles: Vec<(Role, PathBuf, PathBuf)>,
}

/// Writes a fresh CA certificate and one certificate and key per role into `dir`
/// (created if missing; existing files are overwritten). See the [module
/// documentation](self).
///
/// # Errors
/// A file that cannot be written, or a generation failure.
pub fn keygen(dir: &Path) -> Result<KeyFiles, KeyError> {
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_path = dir.join("ca.pem");
    write_file(&ca_path, ca_cert.pem().as_bytes(), false)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut roles = Vec::new();
    for role in Role::ALL {
        let key = KeyPair::generate()?;
        let cert = role_params(role)?.signed_by(&key, &issuer)?;
        let cert_path = dir.join(format!("{}.pem", role.stem()));
        let key_path = dir.join(format!("{}.key", role.stem()));
        write_file(&cert_path, cert.pem().as_bytes(), false)?;
        write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
        roles.push((role, cert_path, key_path));
    }
    Ok(KeyFiles { ca: ca_path, roles })
}

/// Writes `role`'s private key (`{stem}.key`, mode 0600) and a certificate signing request
/// for it (`{stem}.csr`) into `dir` (created). Refuses to overwrite an existing key.
///
/// # Errors
/// A file that cannot be written, a key already there, or a generation failure.
pub fn role_request(dir: &Path, role: Role) -> Result<(PathBuf, PathBuf), KeyError> {
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let key_path = dir.join(format!("{}.key", role.stem()));
    if key_path.exists() {
        return Err(KeyError::Pem {
            path: key_path,
            what: "a key is already there; remove it first to make a new one".into(),
        });
    }
    let key = KeyPair::generate()?;
    let csr = role_params(role)?.serialize_request(&key)?;
    let csr_path = dir.join(format!("{}.csr", role.stem()));
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&csr_path, csr.pem()?.as_bytes(), false)?;
    Ok((key_path, csr_path))
}

/// Writes a new session CA into `dir` (created): `ca.pem` and its key `ca.key` (0600),
/// which [`ca_sign`] uses. Refuses to overwrite an existing CA key.
///
/// # Errors
/// A file that cannot be written, a CA already there, or a generation failure.
pub fn ca_init(dir: &Path) -> Result<PathBuf, KeyError> {
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let key_path = dir.join("ca.key");
    if key_path.exists() {
        return Err(KeyError::Pem {
            path: key_path,
            what: "a CA key is already there; remove it first to make a new CA".into(),
        });
    }
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    let ca_path = dir.join("ca.pem");
    write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_file(&ca_path, cert.pem().as_bytes(), false)?;
    Ok(ca_path)
}

/// Certifies the request in `csr` for `role` with the CA in `ca_dir` ([`ca_init`]) and
/// writes the certificate to `out`. The request's signature must verify (its holder has
/// the key), and it must name `role` or nothing; the certificate's names come from
/// `role`, whatever else the request asks for.
///
/// # Errors
/// Unreadable files, a request whose signature does not verify or that names another
/// role, or a signing failure.
pub fn ca_sign(ca_dir: &Path, csr: &Path, role: Role, out: &Path) -> Result<(), KeyError> {
    let read = |p: &Path| {
        fs::read_to_string(p).map_err(|source| KeyError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let bad = |p: &Path, what: String| KeyError::Pem {
        path: p.to_path_buf(),
        what,
    };
    let key_path = ca_dir.join("ca.key");
    let ca_key = KeyPair::from_pem(&read(&key_path)?)
        .map_err(|e| bad(&key_path, format!("no CA key ({e})")))?;
    let ca_path = ca_dir.join("ca.pem");
    let issuer = Issuer::from_ca_cert_pem(&read(&ca_path)?, ca_key)
        .map_err(|e| bad(&ca_path, format!("no CA certificate ({e})")))?;
    let mut req = rcgen::CertificateSigningRequestParams::from_pem(&read(csr)?).map_err(|e| {
        bad(
            csr,
            format!("not a certificate signing request whose signature verifies ({e})"),
        )
    })?;
    for san in &req.params.subject_alt_names {
        let named = match san {
            rcgen::SanType::DnsName(n) => n.as_str().to_string(),
            other => format!("{other:?}"),
        };
        if named != role.dns_name() {
            return Err(bad(
                csr,
                format!(
                    "asks for the name {named}, but it is to be certified as {role} ({})",
                    role.dns_name()
                ),
            ));
        }
    }
    req.params = role_params(role)?;
    let cert = req.signed_by(&issuer)?;
    write_file(out, cert.pem().as_bytes(), false)
}

fn ca_params() -> Result<CertificateParams, KeyError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ringnn session CA");
    ca_params.distinguished_name = dn;
    Ok(ca_params)
}

/// The certificate fields of `role`: its name as DNS subject alternative name and common
/// name, for TLS servers and clients.
fn role_params(role: Role) -> Result<CertificateParams, KeyError> {
    let mut params = CertificateParams::new(vec![role.dns_name().to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, role.dns_name());
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    Ok(params)
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if secret {
        // Mode 0600 even over an older file of another mode, and never a torn key.
        return crate::files::write_private(path, bytes).map_err(io);
    }
    fs::write(path, bytes).map_err(io)
}

/// One role's loaded material: the CA to trust, its certificate chain and key.
#[derive(Debug)]
pub struct Identity {
    /// This role.
    pub role: Role,
    /// The trusted CA certificate.
    pub ca: CertificateDer<'static>,
    /// The role's certificate.
    pub cert: CertificateDer<'static>,
    /// The role's private key (its `Debug` output does not show the key).
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads `role`'s files from a [`keygen`] directory.
    ///
    /// # Errors
    /// A missing or unreadable file, or one without a certificate or key.
    pub fn load(dir: &Path, role: Role) -> Result<Identity, KeyError> {
        let ca = load_cert(&dir.join("ca.pem"))?;
        let cert = load_cert(&dir.join(format!("{}.pem", role.stem())))?;
        let key_path = dir.join(format!("{}.key", role.stem()));
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| KeyError::Pem {
            path: key_path.clone(),
            what: format!("no private key ({e})"),
        })?;
        Ok(Identity {
            role,
            ca,
            cert,
            key,
        })
    }

    /// A copy (the key included).
    pub fn clone_identity(&self) -> Identity {
        Identity {
            role: self.role,
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn load_cert(path: &Path) -> Result<CertificateDer<'static>, KeyError> {
    CertificateDer::from_pem_file(path).map_err(|e| KeyError::Pem {
        path: path.to_path_buf(),
        what: format!("no certificate ({e})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_loadable_files_with_private_keys_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let files = keygen(&dir).unwrap();
        assert_eq!(files.roles.len(), 3);
        for role in Role::ALL {
            let id = Identity::load(&dir, role).unwrap();
            assert_eq!(id.role, role);
            let ee = webpki::EndEntityCert::try_from(&id.cert).unwrap();
            let name = rustls::pki_types::ServerName::try_from(role.dns_name()).unwrap();
            ee.verify_is_valid_for_subject_name(&name).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let key = dir.join(format!("{}.key", role.stem()));
                let mode = fs::metadata(key).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "key readable by others");
            }
        }
        assert!(Identity::load(&dir.join("missing"), Role::Dealer).is_err());
    }
}
