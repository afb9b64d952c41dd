//! [`CommonError`]: the failures every database backend shares, written
//! once so that each backend's error enum wraps it (`#[error(transparent)]
//! Common(#[from] CommonError)`) and adds only its driver's variants.
//!
//! No variant ever holds a password: configuration errors name keys, and
//! values read from a `.conf` file are never repeated for secret keys.

use crate::backend::{BackendError, ErrorKind};
use crate::config::{BackendKind, PoolConfig};

/// A boxed error, for the sources of TLS failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure that every database backend can have, whatever its driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommonError {
    /// A pool setting is missing, malformed or inconsistent.
    #[error("backend.{}.{pool}.{key}{}: {problem}", .kind.pool_prefix(), line_suffix(*.line))]
    Config {
        /// The backend kind (`pgsql`).
        kind: BackendKind,
        /// The pool (`pool1`).
        pool: String,
        /// The key (`server`, `cacertfile`, ...).
        key: &'static str,
        /// The `.conf` line it came from, if it came from a file.
        line: Option<usize>,
        /// What is wrong.
        problem: String,
    },

    /// A configuration for another database was given to a backend.
    #[error("the configuration is for `{found}`, not `{expected}`")]
    WrongKind {
        /// The backend's kind.
        expected: BackendKind,
        /// The configuration's kind.
        found: BackendKind,
    },

    /// The TLS settings could not be turned into a TLS client (unreadable or
    /// invalid PEM files).
    #[error("pool `{pool}`: TLS setup: {problem}")]
    Tls {
        /// The pool.
        pool: String,
        /// What is wrong.
        problem: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// A table (or collection) the backend needs does not exist and
    /// `create_tables` is off.
    #[error(
        "table `{table}` does not exist in database `{database}` on {server}: create the tables \
         with {schema_file} or set backend.{}.{pool}.create_tables = true",
        .kind.pool_prefix()
    )]
    MissingTable {
        /// The backend kind.
        kind: BackendKind,
        /// The pool.
        pool: String,
        /// `host:port`.
        server: String,
        /// The database (or keyspace).
        database: String,
        /// The missing table.
        table: &'static str,
        /// The schema file users load by hand (`etc/sql/...`).
        schema_file: &'static str,
    },

    /// A table exists but lacks what the backend's statements need (a
    /// column, a column type, a unique index): typically a table created
    /// from the seed's schema.
    #[error("table `{table}` on {server} {problem}; see {schema_file}")]
    Schema {
        /// `host:port/database`.
        server: String,
        /// The table.
        table: &'static str,
        /// What is wrong with it.
        problem: String,
        /// The schema file users load by hand.
        schema_file: &'static str,
    },

    /// A raw statement's value cannot be bound to its parameter.
    #[error("`{statement}`: parameter {parameter}: {problem}")]
    Bind {
        /// The statement text.
        statement: String,
        /// The parameter: its number as the database writes it, and its
        /// type when the database told it (`$2 (integer)`).
        parameter: String,
        /// Why the value does not fit.
        problem: String,
    },

    /// An operation waited longer than its timeout: for a connection from
    /// the pool, or for the server's answer. Retryable.
    #[error("{operation} on {server}: no {waiting_for} within {after:?}")]
    Timeout {
        /// The backend operation (`store_messages`, `connect`, ...).
        operation: &'static str,
        /// The pool's server (`host:port/database`).
        server: String,
        /// What did not come: `connection` or `answer`.
        waiting_for: &'static str,
        /// How long it waited.
        after: std::time::Duration,
    },

    /// A value read back cannot be converted (a raw statement's column of
    /// an unsupported type, or a built-in table holding what the schema
    /// does not allow).
    #[error("{context}: {problem}")]
    Data {
        /// The statement, or the table and column.
        context: String,
        /// What is wrong.
        problem: String,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

impl CommonError {
    /// A [`CommonError::Config`] for `key` of `pool`, with its line.
    pub fn config(pool: &PoolConfig, key: &'static str, problem: impl Into<String>) -> Self {
        CommonError::Config {
            kind: pool.kind(),
            pool: pool.name().to_owned(),
            key,
            line: pool.line(key),
            problem: problem.into(),
        }
    }

    /// `Err(WrongKind)` unless `found` is `expected`.
    pub fn check_kind(expected: BackendKind, found: BackendKind) -> Result<(), CommonError> {
        if expected == found {
            Ok(())
        } else {
            Err(CommonError::WrongKind { expected, found })
        }
    }

    /// The [`CommonError::Config`] for a key this build cannot honour: the
    /// crate (`krate`) was built without its cargo feature `feature`.
    pub fn feature_off(pool: &PoolConfig, key: &'static str, krate: &str, feature: &str) -> Self {
        CommonError::config(
            pool,
            key,
            format!("this build of {krate} has no `{feature}` feature: enable it in Cargo.toml"),
        )
    }

    /// A [`CommonError::Tls`] for `pool`, saying what is wrong.
    pub fn tls(pool: &str, problem: impl std::fmt::Display) -> Self {
        CommonError::Tls {
            pool: pool.to_owned(),
            problem: problem.to_string(),
            source: None,
        }
    }

    /// A [`CommonError::Data`].
    pub fn data(context: impl Into<String>, problem: impl Into<String>) -> Self {
        CommonError::Data {
            context: context.into(),
            problem: problem.into(),
        }
    }

    /// What kind of failure this is: settings and schema problems are
    /// [`ErrorKind::Config`], none of them retryable; a timeout is
    /// [`ErrorKind::Timeout`], which is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CommonError::Config { .. }
            | CommonError::WrongKind { .. }
            | CommonError::Tls { .. }
            | CommonError::MissingTable { .. }
            | CommonError::Schema { .. } => ErrorKind::Config,
            CommonError::Bind { .. } => ErrorKind::Query,
            CommonError::Timeout { .. } => ErrorKind::Timeout,
            CommonError::Data { .. } => ErrorKind::Data,
        }
    }
}

impl From<CommonError> for BackendError {
    fn from(e: CommonError) -> Self {
        BackendError::from_source(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_kind_key_and_line() {
        let mut pool = PoolConfig::new(crate::testkit::kinds::PGSQL, "pool1");
        pool.set("server", "db:1").expect("a valid key");
        let e = CommonError::config(&pool, "server", "invalid port `x`");
        // Set in code: no line.
        assert_eq!(
            e.to_string(),
            "backend.pgsql.pool1.server: invalid port `x`"
        );
        let e = CommonError::Config {
            kind: crate::testkit::kinds::MYSQL,
            pool: "pool1".into(),
            key: "server",
            line: Some(4),
            problem: "invalid port `x`".into(),
        };
        assert_eq!(
            e.to_string(),
            "backend.mysql.pool1.server (line 4): invalid port `x`"
        );
        assert_eq!(BackendError::from(e).kind(), ErrorKind::Config);
    }

    #[test]
    fn wrong_kind_names_both() {
        assert!(CommonError::check_kind(
            crate::testkit::kinds::REDIS,
            crate::testkit::kinds::REDIS
        )
        .is_ok());
        let e = CommonError::check_kind(crate::testkit::kinds::PGSQL, crate::testkit::kinds::MYSQL)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the configuration is for `mysql`, not `pgsql`"
        );
        assert!(!BackendError::from(e).is_retryable());
    }

    #[test]
    fn kinds() {
        assert_eq!(CommonError::data("t.c", "bad").kind(), ErrorKind::Data);
        let bind = CommonError::Bind {
            statement: "s".into(),
            parameter: "$1 (int4)".into(),
            problem: "p".into(),
        };
        assert_eq!(bind.kind(), ErrorKind::Query);
        assert_eq!(bind.to_string(), "`s`: parameter $1 (int4): p");
    }
}
