//! [`DbSettings`]: the pool keys the SQL backends read alike (`server`,
//! `pool_size`, the user, `password`, `database`, `create_tables` and the
//! TLS files), read once here so that each backend adds only its own.

use std::time::Duration;

use super::{PoolConfig, Secret, ServerAddr, TlsFiles};
use crate::config::BackendKind;
use crate::error::CommonError;

/// How long opening one connection may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operation may wait for a connection, by default.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// What differs between the backends that read [`DbSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbDefaults {
    /// The backend kind whose pools these are.
    pub kind: BackendKind,
    /// The default TCP port.
    pub port: u16,
    /// The key naming the user (`username` for PostgreSQL, `user` for
    /// MySQL, as the seed writes them).
    pub user_key: &'static str,
    /// The backend's package, named in the error for `ssl = true` in a
    /// build without TLS.
    pub package: &'static str,
    /// Whether the backend was built with its `tls` feature; without it
    /// `ssl = true` is a configuration error.
    pub tls_built: bool,
}

/// The [`DbDefaults`] of the crate that invokes it: its kind (its `KIND`), default port
/// and user key, with `package` and `tls_built` taken from that crate's
/// build (`CARGO_PKG_NAME`, `cfg!(feature = "tls")`).
///
/// ```
/// const DEFAULTS: backend_core::config::DbDefaults =
///     backend_core::db_defaults!(backend_core::testkit::kinds::PGSQL, 5432, "username");
/// assert_eq!((DEFAULTS.port, DEFAULTS.user_key), (5432, "username"));
/// ```
#[macro_export]
macro_rules! db_defaults {
    ($kind:expr, $port:literal, $user_key:literal) => {
        $crate::config::DbDefaults {
            kind: $kind,
            port: $port,
            user_key: $user_key,
            package: env!("CARGO_PKG_NAME"),
            tls_built: cfg!(feature = "tls"),
        }
    };
}

/// The settings of one SQL pool. Build it from a [`PoolConfig`] with
/// [`DbSettings::from_pool`], or in code (every field is public; the
/// timeouts have no `.conf` key). Its `Debug` never shows the password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbSettings {
    /// The pool's name (`pool1`), for errors and logs.
    pub pool_name: String,
    /// Host name, IP address, or a Unix socket path or directory (starts
    /// with `/`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Maximum number of connections.
    pub pool_size: usize,
    /// User name (the seed's `root` by default).
    pub user: String,
    /// Password; its `Debug` prints `***`.
    pub password: Option<Secret>,
    /// Database name (the seed's `mqtt` by default).
    pub database: String,
    /// TLS settings when `ssl = true`.
    pub tls: Option<TlsFiles>,
    /// Create missing tables and indexes at start.
    pub create_tables: bool,
    /// Timeout for opening one connection.
    pub connect_timeout: Duration,
    /// Timeout for getting a connection for an operation.
    pub wait_timeout: Duration,
}

impl DbSettings {
    /// The defaults, for a pool called `pool_name`: `127.0.0.1`, the
    /// backend's port, user `root`, database `mqtt`, 8 connections.
    pub fn new(pool_name: impl Into<String>, defaults: DbDefaults) -> Self {
        DbSettings {
            pool_name: pool_name.into(),
            host: "127.0.0.1".into(),
            port: defaults.port,
            pool_size: DEFAULT_POOL_SIZE,
            user: "root".into(),
            password: None,
            database: "mqtt".into(),
            tls: None,
            create_tables: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        }
    }

    /// Reads `backend.<kind>.<pool>.*`; errors name the key and its line.
    pub fn from_pool(pool: &PoolConfig, defaults: DbDefaults) -> Result<Self, CommonError> {
        CommonError::check_kind(defaults.kind, pool.kind())?;
        let bad = |key: &'static str, problem: String| CommonError::config(pool, key, problem);
        let mut c = DbSettings::new(pool.name(), defaults);
        if let Some(server) = pool.text("server") {
            let a = ServerAddr::parse(server, defaults.port).map_err(|p| bad("server", p))?;
            c.host = a.host;
            c.port = a.port;
        }
        if let Some(n) = pool.int("pool_size") {
            c.pool_size = usize::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("pool_size", format!("{n} is not a pool size")))?;
        }
        if let Some(u) = pool.text(defaults.user_key) {
            if u.is_empty() {
                return Err(bad(defaults.user_key, "is empty".into()));
            }
            c.user = u.to_owned();
        }
        c.password = pool.secret("password").cloned();
        if let Some(d) = pool.text("database") {
            if d.is_empty() {
                return Err(bad("database", "is empty".into()));
            }
            c.database = d.to_owned();
        }
        c.create_tables = pool.bool("create_tables").unwrap_or(false);
        c.tls = pool
            .tls_files()
            .map_err(|(key, problem)| bad(key, problem))?;
        if c.tls.is_some() && !defaults.tls_built {
            return Err(CommonError::feature_off(
                pool,
                "ssl",
                defaults.package,
                "tls",
            ));
        }
        Ok(c)
    }

    /// Whether `host` is a Unix socket path or directory.
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// `host:port` (`[v6]:port`), or the socket path.
    pub fn host_port(&self) -> String {
        ServerAddr::new(self.host.clone(), self.port).to_string()
    }

    /// `host:port/database` (or `socket/database`), for errors and logs:
    /// never the user or the password.
    pub fn server_label(&self) -> String {
        format!("{}/{}", self.host_port(), self.database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "tls")]
    use std::path::PathBuf;

    const PG: DbDefaults = crate::db_defaults!(crate::testkit::kinds::PGSQL, 5432, "username");

    fn pool(lines: &[(&str, &str)]) -> PoolConfig {
        PoolConfig::from_settings(crate::testkit::kinds::PGSQL, "pool1", lines)
            .expect("valid settings")
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = DbSettings::from_pool(&pool(&[]), PG).expect("defaults");
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 5432));
        assert_eq!(c.pool_size, 8);
        assert_eq!(c.user, "root");
        assert_eq!(c.database, "mqtt");
        assert_eq!(c.password, None);
        assert!(c.tls.is_none());
        assert!(!c.create_tables);
        assert_eq!(c.server_label(), "127.0.0.1:5432/mqtt");
    }

    #[test]
    fn keys_are_read() {
        let c = DbSettings::from_pool(
            &pool(&[
                ("server", "[::1]:6432"),
                ("pool_size", "3"),
                ("username", "app"),
                ("database", "m"),
                ("create_tables", "true"),
            ]),
            PG,
        )
        .expect("valid");
        assert_eq!((c.host.as_str(), c.port), ("::1", 6432));
        assert_eq!((c.pool_size, c.user.as_str()), (3, "app"));
        assert!(c.create_tables);
        assert_eq!(c.server_label(), "[::1]:6432/m");
        let s = DbSettings::from_pool(&pool(&[("server", "/run/postgresql")]), PG).expect("ok");
        assert!(s.is_socket());
        assert_eq!(s.server_label(), "/run/postgresql/mqtt");
    }

    #[test]
    fn errors_name_the_key() {
        let e = DbSettings::from_pool(&pool(&[("server", "localhost:99999")]), PG)
            .expect_err("a bad port");
        assert_eq!(
            e.to_string(),
            "backend.pgsql.pool1.server: invalid port `99999` in `localhost:99999`"
        );
        let e = DbSettings::from_pool(&pool(&[("username", "")]), PG).expect_err("empty");
        assert!(e.to_string().contains("username: is empty"), "{e}");
        let e = DbSettings::from_pool(&pool(&[("cacertfile", "/ca.pem")]), PG)
            .expect_err("TLS files without ssl");
        assert!(e.to_string().contains("ssl is not true"), "{e}");
        let with_tls =
            DbSettings::from_pool(&pool(&[("ssl", "true"), ("cacertfile", "/ca.pem")]), PG);
        #[cfg(feature = "tls")]
        {
            let tls = with_tls.expect("ssl").tls.expect("tls on");
            assert_eq!(tls.ca_cert_file, Some(PathBuf::from("/ca.pem")));
        }
        // Built alone, without the feature: a clear error naming it.
        #[cfg(not(feature = "tls"))]
        {
            let e = with_tls.expect_err("ssl without the tls feature");
            assert!(e.to_string().contains("no `tls` feature"), "{e}");
        }
    }

    #[test]
    fn password_is_never_printed() {
        let c = DbSettings::from_pool(&pool(&[("password", "hunter2")]), PG).expect("ok");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.server_label().contains("hunter2"));
    }

    #[test]
    fn wrong_kind() {
        let p = PoolConfig::new(crate::testkit::kinds::MYSQL, "pool1");
        match DbSettings::from_pool(&p, PG) {
            Err(CommonError::WrongKind { expected, found }) => {
                assert_eq!(expected, crate::testkit::kinds::PGSQL);
                assert_eq!(found, crate::testkit::kinds::MYSQL);
            }
            other => panic!("not refused as the wrong kind: {other:?}"),
        }
    }
}
