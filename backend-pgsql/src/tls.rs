//! TLS (`ssl = true`) with rustls and the `ring` provider: no OpenSSL to
//! link, the same behaviour on every platform. The server certificate is
//! always verified, against `cacertfile` or, without it, the system's
//! trusted roots; `certfile` + `keyfile` add a client certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::TlsSettings;
use crate::error::PgsqlError;

/// Builds the TLS connector of a pool.
pub(crate) fn connector(pool: &str, tls: &TlsSettings) -> Result<MakeRustlsConnect, PgsqlError> {
    let err = |problem: String| PgsqlError::Tls {
        pool: pool.to_owned(),
        problem,
        source: None,
    };
    let with_source =
        |problem: String, e: Box<dyn std::error::Error + Send + Sync>| PgsqlError::Tls {
            pool: pool.to_owned(),
            problem,
            source: Some(e),
        };
    let mut roots = RootCertStore::empty();
    match &tls.ca_cert_file {
        Some(path) => {
            for cert in read_certs(path).map_err(|p| err(format!("cacertfile {p}")))? {
                roots.add(cert).map_err(|e| {
                    with_source(
                        format!("cacertfile `{}`: invalid CA certificate", path.display()),
                        Box::new(e),
                    )
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(err(
                    "no cacertfile given and no trusted CA certificates found on this system"
                        .into(),
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| with_source("protocol versions".into(), Box::new(e)))?
        .with_root_certificates(roots);
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert).map_err(|p| err(format!("certfile {p}")))?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                with_source(
                    format!("keyfile `{}`: no readable PEM private key", key.display()),
                    Box::new(e),
                )
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                with_source(
                    "certfile and keyfile do not make a usable client certificate".into(),
                    Box::new(e),
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(err("certfile and keyfile must be given together".into())),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The certificates of a PEM file; the error text starts with the path.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("`{}`: cannot read: {e}", path.display()))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("`{}`: invalid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("`{}`: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}
