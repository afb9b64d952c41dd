//! TLS (`ssl = true`): backend-core's one trust policy
//! ([`backend_core::tls`]) in mysql_async's terms. The server certificate
//! and host name are always verified, against `cacertfile` alone when
//! given, otherwise against the system's trusted roots (never the driver's
//! bundled list, which is always switched off); `certfile` + `keyfile` add
//! a client certificate. The files are read when the pool is built, so a
//! missing or bad file is an error at start naming it.

use backend_core::tls::TlsMaterial;
use mysql_async::{ClientIdentity, SslOpts};

use crate::config::TlsSettings;
use crate::error::MysqlError;

/// The driver's TLS options for a pool.
pub(crate) fn ssl_opts(pool: &str, tls: &TlsSettings) -> Result<SslOpts, MysqlError> {
    // rustls picks the process's default crypto provider; make it `ring`
    // unless the application installed one already (then keep theirs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let material = TlsMaterial::load(tls).map_err(|e| backend_core::CommonError::tls(pool, e))?;
    let roots = material
        .roots()
        .iter()
        .map(|c| c.as_ref().to_vec().into())
        .collect();
    let mut opts = SslOpts::default()
        .with_root_certs(roots)
        .with_disable_built_in_roots(true);
    if let Some(id) = material.identity() {
        opts = opts.with_client_identity(Some(ClientIdentity::new(
            id.cert_pem.clone().into(),
            id.key_pem.clone().into(),
        )));
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_are_named() {
        let tls = TlsSettings {
            ca_cert_file: Some("/nonexistent/ca.pem".into()),
            ..TlsSettings::default()
        };
        let e = ssl_opts("pool1", &tls).expect_err("no file");
        assert!(
            e.to_string()
                .contains("cacertfile `/nonexistent/ca.pem`: cannot read"),
            "{e}"
        );
        let tls = TlsSettings {
            cert_file: Some("/c.pem".into()),
            ..TlsSettings::default()
        };
        assert!(ssl_opts("pool1", &tls).is_err());
        assert!(
            ssl_opts("pool1", &TlsSettings::default()).is_ok(),
            "the system's roots"
        );
    }
}
