//! [`PgsqlError`]: everything that can go wrong in this crate, and how it
//! maps onto [`backend_core::ErrorKind`] (so `is_retryable()` is true for
//! connection failures and timeouts).
//!
//! No variant ever holds a password: configuration errors name keys, and the
//! driver's own errors and `Debug` output redact it.

use std::io;

use backend_core::{BackendError, CommonError, ErrorKind};
use deadpool_postgres::{BuildError, PoolError};
use tokio_postgres::error::SqlState;

/// An error of the PostgreSQL backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgsqlError {
    /// A failure every backend shares: settings, TLS files, a missing or
    /// wrong table, a value that cannot be bound or read back.
    #[error(transparent)]
    Common(#[from] CommonError),

    /// The connection pool could not be built.
    #[error("pool `{pool}`: cannot build the connection pool: {source}")]
    Build {
        /// The pool.
        pool: String,
        /// Why.
        #[source]
        source: BuildError,
    },

    /// No connection could be taken from the pool (the server is down, the
    /// credentials are wrong, every connection is busy for too long).
    #[error("{operation} on {server}: no connection: {}", describe_pool(.source))]
    Pool {
        /// The backend operation (`store_messages`, `connect`, ...).
        operation: &'static str,
        /// `host:port/database` of the pool.
        server: String,
        /// What the pool said.
        #[source]
        source: PoolError,
    },

    /// The server or the driver reported an error for a statement.
    #[error("{operation} on {server}: {}", describe(.source))]
    Postgres {
        /// The backend operation.
        operation: &'static str,
        /// `host:port/database` of the pool.
        server: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// The driver's message plus, for server errors, the server's own message,
/// detail and hint (the driver's `Display` alone says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(d) = db.detail() {
                s.push_str("; detail: ");
                s.push_str(d);
            }
            if let Some(h) = db.hint() {
                s.push_str("; hint: ");
                s.push_str(h);
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                source = inner.source();
            }
            s
        }
    }
}

fn describe_pool(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => describe(e),
        PoolError::Timeout(t) => format!("timed out ({t:?}) waiting for a connection"),
        other => other.to_string(),
    }
}

impl PgsqlError {
    /// What kind of failure this is; [`ErrorKind::is_retryable`] is true for
    /// lost connections, an unreachable server and timeouts.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PgsqlError::Common(e) => e.kind(),
            PgsqlError::Build { .. } => ErrorKind::Config,
            PgsqlError::Pool { source, .. } => pool_error_kind(source),
            PgsqlError::Postgres { source, .. } => driver_error_kind(source),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// The server's SQLSTATE, for errors the server reported.
    pub fn sql_state(&self) -> Option<&SqlState> {
        match self {
            PgsqlError::Postgres { source, .. } => source.code(),
            PgsqlError::Pool {
                source: PoolError::Backend(e),
                ..
            } => e.code(),
            _ => None,
        }
    }
}

impl From<PgsqlError> for BackendError {
    fn from(e: PgsqlError) -> Self {
        BackendError::from_source(e.kind(), e)
    }
}

fn pool_error_kind(e: &PoolError) -> ErrorKind {
    match e {
        PoolError::Timeout(_) => ErrorKind::Timeout,
        PoolError::Backend(e) => driver_error_kind(e),
        PoolError::Closed => ErrorKind::Connection,
        PoolError::NoRuntimeSpecified => ErrorKind::Config,
        PoolError::PostCreateHook(_) => ErrorKind::Connection,
    }
}

/// Classifies a driver error. `tokio_postgres::Error` does not expose its
/// kind, so this looks at the SQLSTATE, `is_closed`, and the I/O error
/// underneath.
pub(crate) fn driver_error_kind(e: &tokio_postgres::Error) -> ErrorKind {
    if let Some(code) = e.code() {
        return sql_state_kind(code);
    }
    if e.is_closed() {
        return ErrorKind::Connection;
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if inner.to_string().contains("does not support TLS") {
            // ssl = true against a server without TLS: a setting to fix.
            return ErrorKind::Config;
        }
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::TimedOut => ErrorKind::Timeout,
                _ => ErrorKind::Connection,
            };
        }
        source = inner.source();
    }
    // What remains: the driver's own kinds without a source.
    let text = e.to_string();
    if text.starts_with("timeout") {
        ErrorKind::Timeout
    } else if text.starts_with("error connecting")
        || text.starts_with("error communicating")
        || text.starts_with("error performing TLS")
        || text.starts_with("unexpected message")
        || text.starts_with("error parsing response")
    {
        ErrorKind::Connection
    } else if text.starts_with("authentication") || text.starts_with("invalid configuration") {
        ErrorKind::Config
    } else if text.starts_with("error deserializing") {
        ErrorKind::Data
    } else {
        ErrorKind::Query
    }
}

fn sql_state_kind(code: &SqlState) -> ErrorKind {
    let c = code.code();
    if c.starts_with("08") // connection_exception
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
    {
        ErrorKind::Connection
    } else if c.starts_with("40") {
        // transaction_rollback: serialization failure, deadlock detected.
        ErrorKind::Conflict
    } else if *code == SqlState::QUERY_CANCELED {
        // statement_timeout, lock_timeout cancel the statement this way.
        ErrorKind::Timeout
    } else if c.starts_with("28") // invalid_authorization_specification
        || *code == SqlState::INVALID_CATALOG_NAME
    {
        ErrorKind::Config
    } else {
        ErrorKind::Query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_states_map_to_kinds() {
        let cases = [
            (SqlState::ADMIN_SHUTDOWN, ErrorKind::Connection),
            (SqlState::CONNECTION_FAILURE, ErrorKind::Connection),
            (SqlState::QUERY_CANCELED, ErrorKind::Timeout),
            (SqlState::INVALID_PASSWORD, ErrorKind::Config),
            (SqlState::UNDEFINED_TABLE, ErrorKind::Query),
            (SqlState::T_R_DEADLOCK_DETECTED, ErrorKind::Conflict),
            (SqlState::T_R_SERIALIZATION_FAILURE, ErrorKind::Conflict),
            (SqlState::UNIQUE_VIOLATION, ErrorKind::Query),
        ];
        for (state, kind) in cases {
            assert_eq!(sql_state_kind(&state), kind, "{}", state.code());
        }
    }
}
