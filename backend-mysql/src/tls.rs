//! TLS (`ssl = true`) with mysql_async's rustls support and the `ring`
//! provider: no OpenSSL to link, the same TLS stack as backend-pgsql. The
//! server certificate and its host name are always verified, against
//! `cacertfile` alone when it is given, otherwise against the Mozilla roots
//! bundled with the driver; `certfile` + `keyfile` add a client
//! certificate. The files are read when the pool is built, so a missing
//! or empty file is an error at start naming it.

use std::path::Path;

use mysql_async::{ClientIdentity, SslOpts};

use crate::config::TlsSettings;
use crate::error::MysqlError;

/// The driver's TLS options for a pool.
pub(crate) fn ssl_opts(pool: &str, tls: &TlsSettings) -> Result<SslOpts, MysqlError> {
    // rustls picks the process's default crypto provider; make it `ring`
    // unless the application installed one already (then keep theirs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let err = |problem: String| MysqlError::Tls {
        pool: pool.to_owned(),
        problem,
    };
    let mut opts = SslOpts::default();
    if let Some(ca) = &tls.ca_cert_file {
        let pem = read_pem(ca, "CERTIFICATE").map_err(|p| err(format!("cacertfile {p}")))?;
        opts = opts
            .with_root_certs(vec![pem.into()])
            .with_disable_built_in_roots(true);
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_pem(cert, "CERTIFICATE").map_err(|p| err(format!("certfile {p}")))?;
            let key = read_pem(key, "PRIVATE KEY").map_err(|p| err(format!("keyfile {p}")))?;
            opts = opts.with_client_identity(Some(ClientIdentity::new(chain.into(), key.into())));
        }
        (None, None) => {}
        _ => return Err(err("certfile and keyfile must be given together".into())),
    }
    Ok(opts)
}

/// The file's bytes, if it is readable and holds a PEM block whose label
/// ends with `label`; the error text starts with the path.
fn read_pem(path: &Path, label: &str) -> Result<Vec<u8>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("`{}`: cannot read: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")));
    if !found {
        return Err(format!("`{}`: no PEM {label} in it", path.display()));
    }
    Ok(bytes)
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
        assert!(ssl_opts("pool1", &TlsSettings::default()).is_ok());
    }
}
