//! [`SqliteError`]: everything that can go wrong in this crate, and how it
//! maps onto [`backend_core::ErrorKind`] (a busy database and an I/O
//! failure are retryable; a rejected statement is not).

use backend_core::{BackendError, CommonError, ErrorKind};
use deadpool_sqlite::rusqlite;

/// An error of the SQLite backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// A failure every backend shares: settings, a missing or wrong table,
    /// a value that cannot be bound or read back.
    #[error(transparent)]
    Common(#[from] CommonError),

    /// SQLite reported an error (opening the file, or running a statement).
    #[error("{operation} on {path}: {source}")]
    Sqlite {
        /// The backend operation (`store_messages`, `connect`, ...).
        operation: &'static str,
        /// The database file.
        path: String,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },

    /// No connection of the pool came free, or the blocking task running a
    /// statement was lost.
    #[error("{operation} on {path}: {message}")]
    Pool {
        /// The backend operation.
        operation: &'static str,
        /// The database file.
        path: String,
        /// What happened.
        message: String,
    },

    /// A file-system failure around the database (creating its folder).
    #[error("{operation} on {path}: {source}")]
    Io {
        /// The backend operation.
        operation: &'static str,
        /// The path concerned.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl SqliteError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SqliteError::Common(e) => e.kind(),
            SqliteError::Sqlite { source, .. } => driver_error_kind(source),
            SqliteError::Pool { .. } => ErrorKind::Timeout,
            SqliteError::Io { .. } => ErrorKind::Config,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

impl From<SqliteError> for BackendError {
    fn from(e: SqliteError) -> Self {
        BackendError::from_source(e.kind(), e)
    }
}

/// Classifies a driver error: a locked or busy database is a conflict
/// (retried), a full disk or an I/O failure a lost connection (retried
/// once the disk has room), everything else a rejected statement.
pub(crate) fn driver_error_kind(e: &rusqlite::Error) -> ErrorKind {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => ErrorKind::Conflict,
            C::DiskFull | C::SystemIoFailure | C::OutOfMemory => ErrorKind::Connection,
            C::CannotOpen | C::ReadOnly | C::PermissionDenied | C::NotADatabase => {
                ErrorKind::Config
            }
            _ => ErrorKind::Query,
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => ErrorKind::Data,
        _ => ErrorKind::Query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_is_retryable_and_syntax_is_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert_eq!(driver_error_kind(&busy), ErrorKind::Conflict);
        let syntax = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some("near \"SELEC\": syntax error".into()),
        );
        assert_eq!(driver_error_kind(&syntax), ErrorKind::Query);
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert!(driver_error_kind(&full).is_retryable());
    }
}
