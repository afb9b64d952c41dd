//! [`MongoError`]: everything that can go wrong in this crate, and how it
//! maps onto [`backend_core::ErrorKind`] (connection failures and timeouts
//! are retryable).
//!
//! No variant ever holds a password: configuration errors name keys, and
//! the driver's errors carry the server's message. (The driver's own
//! `Debug` of `ClientOptions`/`Credential` redacts the password too, but
//! this crate never formats them.)

use backend_core::{BackendError, CommonError, ErrorKind};
use mongodb::error::ErrorKind as DriverKind;

/// An error of the MongoDB backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MongoError {
    /// A failure every backend shares: a setting, TLS files, the wrong
    /// kind of configuration.
    #[error(transparent)]
    Common(#[from] CommonError),

    /// The server or the driver reported an error.
    #[error("{operation} on {server}: {source}")]
    Mongo {
        /// The backend operation (`store_messages`, `connect`, ...).
        operation: &'static str,
        /// `host:port,.../database` of the pool.
        server: String,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },

    /// A document read back is not what the backend writes.
    #[error("{operation} on {server}: {problem}")]
    Data {
        /// The backend operation.
        operation: &'static str,
        /// The pool's servers and database.
        server: String,
        /// What is wrong with the document.
        problem: String,
    },

    /// The operation does not exist for MongoDB (raw statements).
    #[error("{0}")]
    Unsupported(&'static str),
}

/// Server error codes meaning "try again": WriteConflict (112),
/// duplicate key on a racing upsert (11000, retried inside the backend
/// first), and the "not primary / node is recovering" family.
fn code_kind(code: i32) -> ErrorKind {
    match code {
        112 | 11000 | 251 => ErrorKind::Conflict,
        // HostUnreachable, HostNotFound, NetworkTimeout, ShutdownInProgress,
        // PrimarySteppedDown, NotWritablePrimary, InterruptedAtShutdown,
        // InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk,
        // NotPrimaryOrSecondary, ExceededTimeLimit, SocketException.
        6 | 7 | 89 | 91 | 189 | 10107 | 11600 | 11602 | 13435 | 13436 | 262 | 9001 => {
            ErrorKind::Connection
        }
        50 => ErrorKind::Timeout,
        13 | 18 => ErrorKind::Config,
        _ => ErrorKind::Query,
    }
}

/// The [`ErrorKind`] of a driver error.
pub fn driver_kind(e: &mongodb::error::Error) -> ErrorKind {
    if e.contains_label("RetryableWriteError") || e.contains_label("TransientTransactionError") {
        return ErrorKind::Connection;
    }
    match &*e.kind {
        DriverKind::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Connection,
        },
        DriverKind::ServerSelection { .. }
        | DriverKind::ConnectionPoolCleared { .. }
        | DriverKind::DnsResolve { .. }
        | DriverKind::Shutdown => ErrorKind::Connection,
        DriverKind::Authentication { .. }
        | DriverKind::InvalidArgument { .. }
        | DriverKind::InvalidTlsConfig { .. } => ErrorKind::Config,
        DriverKind::Command(c) => code_kind(c.code),
        DriverKind::Write(mongodb::error::WriteFailure::WriteError(w)) => code_kind(w.code),
        DriverKind::Write(mongodb::error::WriteFailure::WriteConcernError(w)) => code_kind(w.code),
        DriverKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| code_kind(w.code))
            .or_else(|| m.write_concern_error.as_ref().map(|w| code_kind(w.code)))
            .unwrap_or(ErrorKind::Query),
        DriverKind::BsonDeserialization(_) | DriverKind::InvalidResponse { .. } => ErrorKind::Data,
        _ => ErrorKind::Query,
    }
}

impl MongoError {
    /// The kind of failure, as [`BackendError`] reports it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MongoError::Common(e) => e.kind(),
            MongoError::Mongo {
                operation, source, ..
            } => match driver_kind(source) {
                // The driver refuses an argument before it reaches the
                // server. At connect the argument comes from the
                // configuration; after it, from the data (a document over
                // the server's 16 MiB limit): bad input, not configuration.
                ErrorKind::Config
                    if *operation != "connect"
                        && matches!(&*source.kind, DriverKind::InvalidArgument { .. }) =>
                {
                    ErrorKind::Query
                }
                kind => kind,
            },
            MongoError::Data { .. } => ErrorKind::Data,
            MongoError::Unsupported(_) => ErrorKind::Unsupported,
        }
    }

    /// Whether retrying may help (connection failures, timeouts, conflicts).
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// Whether this is a duplicate-key error (a racing upsert).
    pub(crate) fn is_duplicate_key(&self) -> bool {
        match self {
            MongoError::Mongo { source, .. } => match &*source.kind {
                DriverKind::Command(c) => c.code == 11000,
                DriverKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code == 11000,
                DriverKind::InsertMany(m) => m
                    .write_errors
                    .as_ref()
                    .is_some_and(|w| w.iter().any(|w| w.code == 11000)),
                _ => false,
            },
            _ => false,
        }
    }
}

impl From<MongoError> for BackendError {
    fn from(e: MongoError) -> Self {
        BackendError::from_source(e.kind(), e)
    }
}
