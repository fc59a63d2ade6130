//! Key material for the networked run: a small self-made certificate authority and one
//! certificate per role (party 0, party 1, the dealer), and the loading of them into
//! rustls configurations.
//!
//! [`keygen`] writes, into one directory:
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
use std::io::Write;
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
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ringnn session CA");
    ca_params.distinguished_name = dn;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca_path = dir.join("ca.pem");
    write_file(&ca_path, ca_cert.pem().as_bytes(), false)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let mut roles = Vec::new();
    for role in Role::ALL {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![role.dns_name().to_string()])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, role.dns_name());
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer)?;
        let cert_path = dir.join(format!("{}.pem", role.stem()));
        let key_path = dir.join(format!("{}.key", role.stem()));
        write_file(&cert_path, cert.pem().as_bytes(), false)?;
        write_file(&key_path, key.serialize_pem().as_bytes(), true)?;
        roles.push((role, cert_path, key_path));
    }
    Ok(KeyFiles { ca: ca_path, roles })
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(bytes).map_err(io)
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
        let dir = std::env::temp_dir().join(format!("ringnn-keygen-{}", std::process::id()));
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
        fs::remove_dir_all(&dir).unwrap();
    }
}
