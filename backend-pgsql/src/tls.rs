//! TLS (`ssl = true`): backend-core's one trust policy
//! ([`backend_core::tls`]), handed to tokio-postgres as a whole rustls
//! configuration. The server certificate and host name are always
//! verified, against `cacertfile` alone when given, otherwise against the
//! system's trusted roots; `certfile` + `keyfile` add a client certificate.

use backend_core::tls::TlsMaterial;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::TlsSettings;
use crate::error::PgsqlError;

/// Builds the TLS connector of a pool.
pub(crate) fn connector(pool: &str, tls: &TlsSettings) -> Result<MakeRustlsConnect, PgsqlError> {
    let err = |e| backend_core::CommonError::tls(pool, e);
    let config = TlsMaterial::load(tls)
        .and_then(|m| m.client_config())
        .map_err(err)?;
    Ok(MakeRustlsConnect::new(config))
}
