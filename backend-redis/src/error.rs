//! [`RedisError`]: what failed, in which pool and operation, and whether
//! retrying can help. It converts into [`backend_core::BackendError`] with
//! the matching [`ErrorKind`], keeping itself as the source.
//!
//! No variant carries the password: it is never part of a connection
//! target, a key or a message.

use std::path::PathBuf;

use backend_core::{BackendError, CommonError, ErrorKind};

/// An error of the Redis backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// A failure every backend shares (the wrong kind of configuration).
    #[error(transparent)]
    Common(#[from] CommonError),
    /// With `replica_acks` (Redis Cluster): fewer replicas than asked had
    /// a write when the wait ended. Retryable: the write is idempotent.
    #[error(
        "redis pool `{pool}`: {operation}: {replicas} of {wanted} replicas had the write in time"
    )]
    Replication {
        /// The pool.
        pool: String,
        /// The backend operation.
        operation: &'static str,
        /// Replicas that acknowledged.
        replicas: i64,
        /// Replicas asked for.
        wanted: u32,
    },
    /// A pool setting is missing or wrong.
    #[error("redis pool `{pool}`: {key}: {message}")]
    Config {
        /// The pool.
        pool: String,
        /// The setting (`server`, `ssl`, ...).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A TLS certificate or key file could not be read or parsed.
    #[error("redis pool `{pool}`: cannot use {key} `{}`: {message}", path.display())]
    TlsFile {
        /// The pool.
        pool: String,
        /// The setting (`cacertfile`, `certfile`, `keyfile`).
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The server (or, with Sentinel, the master) could not be reached.
    #[error("redis pool `{pool}`: cannot connect to {target}: {source}")]
    Connect {
        /// The pool.
        pool: String,
        /// Where it tried to connect (`host:port`, or the Sentinel master).
        target: String,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
    /// A command, pipeline or script failed.
    #[error("redis pool `{pool}`: {operation} failed: {source}")]
    Command {
        /// The pool.
        pool: String,
        /// The backend operation (`store_messages`, `execute`, ...).
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: redis::RedisError,
    },
    /// A key holds data that is not what the key layout promises.
    #[error("redis pool `{pool}`: {operation}: `{key}` {message}")]
    Data {
        /// The pool.
        pool: String,
        /// The backend operation.
        operation: &'static str,
        /// The key read.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The backend does not offer the operation.
    #[error("redis pool `{pool}`: {message}")]
    Unsupported {
        /// The pool.
        pool: String,
        /// Why.
        message: String,
    },
}

impl RedisError {
    /// The kind of failure, as [`backend_core`] classifies it.
    ///
    /// ```
    /// use backend_redis::RedisError;
    /// use backend_core::ErrorKind;
    /// let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// let e = RedisError::Connect { pool: "pool1".into(), target: "127.0.0.1:6379".into(), source: io.into() };
    /// assert_eq!(e.kind(), ErrorKind::Connection);
    /// assert!(e.is_retryable());
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            RedisError::Common(e) => e.kind(),
            RedisError::Config { .. } | RedisError::TlsFile { .. } => ErrorKind::Config,
            RedisError::Connect { source, .. } => match source.kind() {
                redis::ErrorKind::AuthenticationFailed
                | redis::ErrorKind::InvalidClientConfig
                | redis::ErrorKind::EmptySentinelList => ErrorKind::Config,
                _ if source.is_timeout() => ErrorKind::Timeout,
                _ if matches!(source.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM")) => {
                    ErrorKind::Config
                }
                _ => ErrorKind::Connection,
            },
            RedisError::Command { source, .. } => classify(source),
            RedisError::Data { .. } => ErrorKind::Data,
            RedisError::Replication { .. } => ErrorKind::Connection,
            RedisError::Unsupported { .. } => ErrorKind::Unsupported,
        }
    }

    /// Whether the same call may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

/// The [`ErrorKind`] of a driver error met while running a command.
pub(crate) fn classify(e: &redis::RedisError) -> ErrorKind {
    use redis::ServerErrorKind as S;
    if e.is_timeout() {
        return ErrorKind::Timeout;
    }
    if breaks_connection(e) {
        return ErrorKind::Connection;
    }
    match e.kind() {
        // A cluster moving slots or failing over: the same call succeeds
        // once the connection has the new slot map.
        redis::ErrorKind::Server(
            S::BusyLoading | S::TryAgain | S::ClusterDown | S::Moved | S::Ask,
        ) => ErrorKind::Connection,
        redis::ErrorKind::Io => ErrorKind::Connection,
        redis::ErrorKind::UnexpectedReturnType | redis::ErrorKind::Parse => ErrorKind::Data,
        redis::ErrorKind::InvalidClientConfig | redis::ErrorKind::AuthenticationFailed => {
            ErrorKind::Config
        }
        redis::ErrorKind::MasterNameNotFoundBySentinel
        | redis::ErrorKind::NoValidReplicasFoundBySentinel => ErrorKind::Connection,
        _ => ErrorKind::Query,
    }
}

/// Whether the connection that returned `e` must be replaced: it broke, or
/// timed out, or the server it reaches is no longer a writable master
/// (`READONLY` after a Sentinel failover demoted it, `MASTERDOWN`).
pub(crate) fn breaks_connection(e: &redis::RedisError) -> bool {
    use redis::ServerErrorKind as S;
    e.is_unrecoverable_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_io_error()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(S::ReadOnly | S::MasterDown)
        )
}

impl From<RedisError> for BackendError {
    fn from(e: RedisError) -> Self {
        BackendError::from_source(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str) -> redis::RedisError {
        redis::RedisError::from((
            redis::ErrorKind::Extension,
            "server",
            format!("{code} details"),
        ))
    }

    #[test]
    fn kinds() {
        let io = |k| redis::RedisError::from(std::io::Error::from(k));
        assert_eq!(
            classify(&io(std::io::ErrorKind::BrokenPipe)),
            ErrorKind::Connection
        );
        assert_eq!(
            classify(&io(std::io::ErrorKind::TimedOut)),
            ErrorKind::Timeout
        );
        assert_eq!(classify(&server_error("WRONGTYPE")), ErrorKind::Query);
        let e = RedisError::Config {
            pool: "p".into(),
            key: "server",
            message: "empty".into(),
        };
        assert_eq!(e.kind(), ErrorKind::Config);
        let b: BackendError = e.into();
        assert_eq!(b.kind(), ErrorKind::Config);
        assert!(b.to_string().contains("pool `p`"), "{b}");
    }
}
