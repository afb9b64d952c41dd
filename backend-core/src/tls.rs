//! One TLS trust policy for every backend (feature `tls`).
//!
//! - The server's certificate is always verified, with its host name (an
//!   IP address is checked against the certificate's IP SANs).
//! - Against `cacertfile` when one is given, and then against it alone.
//! - Otherwise against the system's trusted roots (`rustls-native-certs`),
//!   never a root list bundled into a driver.
//! - `certfile` + `keyfile` add a client certificate.
//!
//! [`TlsMaterial::load`] reads and checks the files once; each backend then
//! hands its driver what the driver takes: a whole [`rustls::ClientConfig`]
//! ([`TlsMaterial::client_config`]), the roots as DER or PEM, or the
//! client identity as PEM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::TlsFiles;

/// Why the TLS files cannot be used. Names the configuration key and the
/// file; never a key's contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{key} `{path}`: cannot read it: {source}")]
    Read {
        /// `cacertfile`, `certfile` or `keyfile`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what the key needs.
    #[error("{key} `{path}`: {problem}")]
    Invalid {
        /// `cacertfile`, `certfile` or `keyfile`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// No `cacertfile`, and the system has no trusted roots.
    #[error("no cacertfile given and no trusted CA certificates found on this system")]
    NoSystemRoots,
    /// The certificate and key do not make a client identity.
    #[error("certfile and keyfile do not make a usable client certificate: {0}")]
    Identity(String),
}

/// A client certificate and its key.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate chain, as read (PEM).
    pub cert_pem: Vec<u8>,
    /// The private key, as read (PEM).
    pub key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// The checked contents of a pool's TLS files.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    roots: Vec<CertificateDer<'static>>,
    from_system: bool,
    identity: Option<ClientIdentity>,
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

fn certificates(
    key: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |problem: String| TlsError::Invalid {
        key,
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("no PEM certificate in it".into()));
    }
    Ok(certs)
}

impl TlsMaterial {
    /// Reads and checks the files: every certificate of `cacertfile` must
    /// be a usable root; without it, the system's parsable roots (at least
    /// one); `certfile` and `keyfile` must hold a chain and its key.
    pub fn load(files: &TlsFiles) -> Result<TlsMaterial, TlsError> {
        let (roots, from_system) = match &files.ca_cert_file {
            Some(path) => {
                let pem = read("cacertfile", path)?;
                let certs = certificates("cacertfile", path, &pem)?;
                let mut store = RootCertStore::empty();
                for c in &certs {
                    store.add(c.clone()).map_err(|e| TlsError::Invalid {
                        key: "cacertfile",
                        path: path.clone(),
                        problem: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                (certs, false)
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                // Only those rustls accepts, so a driver that adds them one
                // by one never meets one it refuses.
                let usable: Vec<CertificateDer<'static>> = found
                    .certs
                    .into_iter()
                    .filter(|c| RootCertStore::empty().add(c.clone()).is_ok())
                    .collect();
                if usable.is_empty() {
                    return Err(TlsError::NoSystemRoots);
                }
                (usable, true)
            }
        };
        let identity = match (&files.cert_file, &files.key_file) {
            (Some(cert), Some(key)) => {
                let cert_pem = read("certfile", cert)?;
                let key_pem = read("keyfile", key)?;
                let chain = certificates("certfile", cert, &cert_pem)?;
                let key_der =
                    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
                        key: "keyfile",
                        path: key.clone(),
                        problem: format!(
                            "no readable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"
                        ),
                    })?;
                Some(ClientIdentity {
                    cert_pem,
                    key_pem,
                    chain,
                    key: Arc::new(key_der),
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(TlsError::Identity("certfile is set without keyfile".into()))
            }
            (None, Some(_)) => {
                return Err(TlsError::Identity("keyfile is set without certfile".into()))
            }
        };
        let material = TlsMaterial {
            roots,
            from_system,
            identity,
        };
        // Builds once, so a key that does not match its certificate fails
        // here, at start, for every backend.
        material.client_config()?;
        Ok(material)
    }

    /// The trusted roots, DER.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// The trusted roots as one PEM text.
    pub fn roots_pem(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.roots {
            out.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
            let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
            for line in b64.as_bytes().chunks(64) {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            out.extend_from_slice(b"-----END CERTIFICATE-----\n");
        }
        out
    }

    /// Whether the roots are the system's (no `cacertfile`).
    pub fn from_system(&self) -> bool {
        self.from_system
    }

    /// The client certificate and key, if given.
    pub fn identity(&self) -> Option<&ClientIdentity> {
        self.identity.as_ref()
    }

    /// A rustls client configuration (the `ring` provider, safe protocol
    /// versions) with these roots and identity.
    pub fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let mut store = RootCertStore::empty();
        for c in &self.roots {
            // Checked in load().
            let _ = store.add(c.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Identity(format!("protocol versions: {e}")))?
            .with_root_certificates(store);
        match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| TlsError::Identity(e.to_string())),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> TlsFiles {
        TlsFiles {
            ca_cert_file: ca.map(Path::to_owned),
            cert_file: cert.map(Path::to_owned),
            key_file: key.map(Path::to_owned),
        }
    }

    #[test]
    fn errors_name_the_key_and_file() {
        let dir = std::env::temp_dir().join(format!("tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let missing = dir.join("missing.pem");
        let e = TlsMaterial::load(&files(Some(&missing), None, None)).unwrap_err();
        assert!(e.to_string().starts_with("cacertfile `"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let e = TlsMaterial::load(&files(Some(&empty), None, None)).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let junk = dir.join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let e = TlsMaterial::load(&files(Some(&junk), None, None)).unwrap_err();
        assert!(e.to_string().contains("cacertfile"), "{e}");
        let e = TlsMaterial::load(&files(None, Some(&junk), None)).unwrap_err();
        assert!(matches!(e, TlsError::Identity(_)), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_ca_file_the_system_roots_are_used() {
        // Debian's ca-certificates is on every machine this runs on; where
        // a system has none, the error says so.
        match TlsMaterial::load(&files(None, None, None)) {
            Ok(m) => {
                assert!(m.from_system());
                assert!(!m.roots().is_empty());
                let pem = m.roots_pem();
                let back: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<_, _>>()
                    .expect("our PEM reads back");
                assert_eq!(back, m.roots());
            }
            Err(e) => assert!(matches!(e, TlsError::NoSystemRoots), "{e}"),
        }
    }
}
