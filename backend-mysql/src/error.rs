//! [`MysqlError`]: everything that can go wrong in this crate, and how it
//! maps onto [`backend_core::ErrorKind`] (so `is_retryable()` is true for
//! connection failures and timeouts).
//!
//! No variant ever holds a password: configuration errors name keys, and
//! the driver's errors carry the server's message, which never contains it.
//! (mysql_async's own `Debug` of `Pool`, `Opts` and `Conn` *does* print the
//! password; this crate never formats them.)

use std::io;

use backend_core::{BackendError, CommonError, ErrorKind};
use mysql_async::{DriverError, IoError};

/// An error of the MySQL backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MysqlError {
    /// A failure every backend shares: settings, TLS files, a missing or
    /// wrong table, a value that cannot be bound or read back.
    #[error(transparent)]
    Common(#[from] CommonError),

    /// The server or the driver reported an error (connecting, or running
    /// a statement).
    #[error("{operation} on {server}: {source}")]
    Mysql {
        /// The backend operation (`store_messages`, `connect`, ...).
        operation: &'static str,
        /// `host:port/database` of the pool.
        server: String,
        /// The driver's error.
        #[source]
        source: mysql_async::Error,
    },
}

impl MysqlError {
    /// What kind of failure this is; [`ErrorKind::is_retryable`] is true for
    /// lost connections, an unreachable server and timeouts.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MysqlError::Common(e) => e.kind(),
            MysqlError::Mysql { source, .. } => driver_error_kind(source),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }

    /// The server's error code (`1146` for a missing table), for errors the
    /// server reported.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            MysqlError::Mysql {
                source: mysql_async::Error::Server(e),
                ..
            } => Some(e.code),
            _ => None,
        }
    }
}

impl From<MysqlError> for BackendError {
    fn from(e: MysqlError) -> Self {
        BackendError::from_source(e.kind(), e)
    }
}

/// Classifies a driver error.
pub(crate) fn driver_error_kind(e: &mysql_async::Error) -> ErrorKind {
    match e {
        mysql_async::Error::Io(IoError::Io(io)) => io_kind(io),
        // A certificate that does not verify, a handshake the server
        // refuses: settings to fix, not something a retry mends.
        #[allow(unreachable_patterns)]
        mysql_async::Error::Io(_) => ErrorKind::Config,
        mysql_async::Error::Driver(d) => match d {
            DriverError::ConnectionClosed
            | DriverError::PoolDisconnected
            | DriverError::PacketOutOfOrder
            | DriverError::UnexpectedPacket { .. }
            | DriverError::BadCompressedPacketHeader => ErrorKind::Connection,
            DriverError::NoClientSslFlagFromServer
            | DriverError::UnknownAuthPlugin { .. }
            | DriverError::CleartextPluginDisabled
            | DriverError::MysqlOldPasswordDisabled
            | DriverError::NoKeyFound
            | DriverError::CantParseServerVersion { .. } => ErrorKind::Config,
            DriverError::FromValue { .. } | DriverError::FromRow { .. } => ErrorKind::Data,
            _ => ErrorKind::Query,
        },
        mysql_async::Error::Server(s) => server_code_kind(s.code),
        mysql_async::Error::Url(_) => ErrorKind::Config,
        mysql_async::Error::Other(_) => ErrorKind::Query,
    }
}

fn io_kind(io: &io::Error) -> ErrorKind {
    match io.kind() {
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Connection,
    }
}

/// Server error codes (MySQL and MariaDB share these).
pub(crate) fn server_code_kind(code: u16) -> ErrorKind {
    match code {
        // ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, ER_NET_* (read/write
        // errors, interrupted), ER_CONNECTION_KILLED, ER_QUERY_INTERRUPTED
        // (the server shutting down), client-side gone away / lost, MySQL
        // 8's ER_CLIENT_INTERACTION_TIMEOUT.
        1040 | 1053 | 1080 | 1152 | 1154 | 1155 | 1156 | 1157 | 1158 | 1159 | 1160 | 1161
        | 1317 | 1927 | 2006 | 2013 | 4031 => ErrorKind::Connection,
        // ER_LOCK_DEADLOCK: the transaction was rolled back; running it
        // again is the documented remedy.
        1213 => ErrorKind::Conflict,
        // ER_LOCK_WAIT_TIMEOUT, MySQL's max_execution_time, MariaDB's
        // max_statement_time.
        1205 | 3024 | 1969 => ErrorKind::Timeout,
        // ER_DBACCESS_DENIED, ER_ACCESS_DENIED, ER_BAD_DB, plugin auth
        // refused, ER_SPECIFIC_ACCESS_DENIED, ER_NOT_SUPPORTED_AUTH_MODE.
        1044 | 1045 | 1049 | 1698 | 1227 | 1251 => ErrorKind::Config,
        _ => ErrorKind::Query,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_codes_map_to_kinds() {
        assert_eq!(server_code_kind(1053), ErrorKind::Connection);
        assert_eq!(server_code_kind(1927), ErrorKind::Connection);
        assert_eq!(server_code_kind(1205), ErrorKind::Timeout);
        assert_eq!(server_code_kind(1213), ErrorKind::Conflict);
        assert_eq!(server_code_kind(1045), ErrorKind::Config);
        assert_eq!(server_code_kind(1049), ErrorKind::Config);
        assert_eq!(server_code_kind(1146), ErrorKind::Query);
        assert_eq!(server_code_kind(1062), ErrorKind::Query);
    }

    #[test]
    fn driver_errors_map_to_kinds() {
        let io = mysql_async::Error::Io(IoError::Io(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(driver_error_kind(&io), ErrorKind::Connection);
        let closed = mysql_async::Error::Driver(DriverError::ConnectionClosed);
        assert_eq!(driver_error_kind(&closed), ErrorKind::Connection);
        let tls = mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer);
        assert_eq!(driver_error_kind(&tls), ErrorKind::Config);
        let params = mysql_async::Error::Driver(DriverError::StmtParamsMismatch {
            required: 2,
            supplied: 1,
        });
        assert_eq!(driver_error_kind(&params), ErrorKind::Query);
    }
}
