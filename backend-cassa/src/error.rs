//! [`CassaError`]: everything that can go wrong in this crate, and how it
//! maps onto [`backend_core::ErrorKind`] (unreachable nodes, timeouts and
//! overloaded replicas are retryable; settings, a wrong password and a
//! missing table are not).
//!
//! No variant ever holds a password: configuration errors name keys, and
//! the server's authentication message names only the user.

use backend_core::{BackendError, CommonError, ErrorKind};
use cdrs_tokio::frame::message_error::ErrorType;

/// An error of the Cassandra backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CassaError {
    /// A failure every backend shares: settings, a missing or wrong table,
    /// a value that cannot be bound or read back.
    #[error(transparent)]
    Common(#[from] CommonError),

    /// No node accepted a session within the connect timeout.
    #[error("cannot connect to {nodes}: {reason}")]
    Unreachable {
        /// The contact points.
        nodes: String,
        /// What each node said, or that none answered in time.
        reason: String,
    },

    /// A node refused the credentials.
    #[error("{server}: authentication failed for user `{user}`: {message}")]
    Authentication {
        /// The node.
        server: String,
        /// The user name (never the password).
        user: String,
        /// The server's message.
        message: String,
    },

    /// The configured keyspace does not exist (the backend creates tables,
    /// never keyspaces: replication is the operator's choice).
    #[error(
        "keyspace `{keyspace}` does not exist on {nodes} (the server says: {message}): create \
         it, e.g. CREATE KEYSPACE {keyspace} WITH replication = {{'class': \
         'NetworkTopologyStrategy', 'replication_factor': 3}}"
    )]
    MissingKeyspace {
        /// The keyspace.
        keyspace: String,
        /// The contact points.
        nodes: String,
        /// The server's words.
        message: String,
    },

    /// The server or the driver reported an error for a statement.
    #[error("{operation} on {server}: {source}")]
    Cassandra {
        /// The backend operation (`store_messages`, `execute`, ...).
        operation: &'static str,
        /// The pool's nodes and keyspace.
        server: String,
        /// The driver's error (boxed: it is large).
        #[source]
        source: Box<cdrs_tokio::error::Error>,
    },
}

impl CassaError {
    /// What kind of failure this is; [`ErrorKind::is_retryable`] is true
    /// for unreachable nodes, timeouts and overloaded replicas.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CassaError::Common(e) => e.kind(),
            CassaError::Unreachable { .. } => ErrorKind::Connection,
            CassaError::Authentication { .. } | CassaError::MissingKeyspace { .. } => {
                ErrorKind::Config
            }
            CassaError::Cassandra { source, .. } => driver_error_kind(source),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

impl From<CassaError> for BackendError {
    fn from(e: CassaError) -> Self {
        BackendError::from_source(e.kind(), e)
    }
}

/// Classifies a driver error.
pub(crate) fn driver_error_kind(e: &cdrs_tokio::error::Error) -> ErrorKind {
    use cdrs_tokio::error::Error;
    match e {
        // The transport's own failures ("no nodes available", "connection
        // closed") come as General; a decoding failure never reaches here
        // (rows are read in `convert`, which reports Data).
        Error::Io(_) | Error::Timeout(_) | Error::General(_) => ErrorKind::Connection,
        Error::Server { body, .. } => server_error_kind(&body.ty),
        _ => ErrorKind::Query,
    }
}

/// Classifies a server error by its type.
pub(crate) fn server_error_kind(ty: &ErrorType) -> ErrorKind {
    match ty {
        ErrorType::Unavailable(_)
        | ErrorType::Overloaded
        | ErrorType::IsBootstrapping
        | ErrorType::Server => ErrorKind::Connection,
        ErrorType::WriteTimeout(_)
        | ErrorType::ReadTimeout(_)
        | ErrorType::ReadFailure(_)
        | ErrorType::WriteFailure(_)
        | ErrorType::Truncate => ErrorKind::Timeout,
        ErrorType::Authentication | ErrorType::Unauthorized | ErrorType::Config => {
            ErrorKind::Config
        }
        _ => ErrorKind::Query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_map_to_kinds() {
        use ErrorKind::*;
        for (error, kind) in [
            (ErrorType::Overloaded, Connection),
            (ErrorType::Authentication, Config),
            (ErrorType::Invalid, Query),
            (ErrorType::Syntax, Query),
        ] {
            assert_eq!(server_error_kind(&error), kind, "{error:?}");
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let io = cdrs_tokio::error::Error::Io(refused);
        assert!(driver_error_kind(&io).is_retryable());
    }

    #[test]
    fn authentication_errors_never_show_a_password() {
        let e = CassaError::Authentication {
            server: "127.0.0.1:9042".into(),
            user: "cassandra".into(),
            message: "Provided username cassandra and/or password are incorrect".into(),
        };
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("user `cassandra`"), "{e}");
    }
}
