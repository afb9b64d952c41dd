//! [`MysqlConfig`]: the typed settings of one pool, read from a
//! [`PoolConfig`] (`backend.mysql.<pool>.*`).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `server` | `127.0.0.1:3306` | `host`, `host:port`, `[v6]:port`, or a Unix socket path (`/run/mysqld/mysqld.sock`) |
//! | `pool_size` | `8` | connections in the pool |
//! | `user` | `root` | the seed's user |
//! | `password` | none | never printed |
//! | `database` | `mqtt` | the seed's database |
//! | `ssl` | `false` | TLS (rustls), server certificate always verified |
//! | `cacertfile` | bundled Mozilla roots | PEM file of the CA(s) that signed the server certificate |
//! | `certfile`, `keyfile` | none | PEM client certificate and key, both or neither |
//! | `create_tables` | `false` | create the schema at start instead of failing on a missing table |
//!
//! ```
//! use backend_core::{config::PoolConfig, BackendKind};
//! use backend_mysql::MysqlConfig;
//! let mut pool = PoolConfig::new(BackendKind::Mysql, "pool1");
//! pool.set("server", "db.example:3307")?.set("password", "s3cret")?;
//! let c = MysqlConfig::from_pool(&pool)?;
//! assert_eq!((c.host.as_str(), c.port), ("db.example", 3307));
//! assert_eq!(c.pool_size, 8);
//! assert!(!format!("{c:?}").contains("s3cret"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use backend_core::config::{PoolConfig, Secret, ServerAddr};
use backend_core::BackendKind;

use crate::error::MysqlError;

/// Default `server` host.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default `server` port.
pub const DEFAULT_PORT: u16 = 3306;
/// Default `pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Default `user` (the seed's).
pub const DEFAULT_USER: &str = "root";
/// Default `database` (the seed's).
pub const DEFAULT_DATABASE: &str = "mqtt";
/// How long opening one connection may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operation may wait for a connection (a free one from the
/// pool, or a new one).
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection (mysql_async's LRU cache;
/// its own default is 32). The built-in functions use about 20 statement
/// texts, plus one per batch size seen and one per raw `sql` template.
pub const DEFAULT_STMT_CACHE_SIZE: usize = 256;

/// The settings of one MySQL pool. Build it from a [`PoolConfig`] with
/// [`MysqlConfig::from_pool`], or in code (every field is public; the
/// timeouts and the statement cache have no `.conf` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlConfig {
    /// The pool's name (`pool1`), for errors and logs.
    pub pool_name: String,
    /// Host name or IP address; or a Unix socket path (starts with `/`).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Maximum number of connections.
    pub pool_size: usize,
    /// User name.
    pub user: String,
    /// Password; its `Debug` prints `***`.
    pub password: Option<Secret>,
    /// Database name.
    pub database: String,
    /// TLS settings when `ssl = true`.
    pub tls: Option<TlsSettings>,
    /// Create missing tables at start.
    pub create_tables: bool,
    /// Timeout for opening one connection.
    pub connect_timeout: Duration,
    /// Timeout for getting a connection for an operation.
    pub wait_timeout: Duration,
    /// Prepared statements cached per connection.
    pub stmt_cache_size: usize,
}

/// TLS files (`ssl = true`): the pool keys every backend reads alike.
pub type TlsSettings = backend_core::config::TlsFiles;

impl MysqlConfig {
    /// The defaults, for a pool called `pool_name`.
    pub fn new(pool_name: impl Into<String>) -> Self {
        MysqlConfig {
            pool_name: pool_name.into(),
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            pool_size: DEFAULT_POOL_SIZE,
            user: DEFAULT_USER.into(),
            password: None,
            database: DEFAULT_DATABASE.into(),
            tls: None,
            create_tables: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            stmt_cache_size: DEFAULT_STMT_CACHE_SIZE,
        }
    }

    /// Reads `backend.mysql.<pool>.*`; errors name the key and its line.
    pub fn from_pool(pool: &PoolConfig) -> Result<Self, MysqlError> {
        if pool.kind() != BackendKind::Mysql {
            return Err(MysqlError::WrongKind(pool.kind()));
        }
        let bad = |key: &'static str, problem: String| MysqlError::Config {
            pool: pool.name().to_owned(),
            key,
            line: pool.line(key),
            problem,
        };
        let mut c = MysqlConfig::new(pool.name());
        if let Some(server) = pool.text("server") {
            let (host, port) = parse_server(server).map_err(|p| bad("server", p))?;
            c.host = host;
            c.port = port;
        }
        if let Some(n) = pool.int("pool_size") {
            c.pool_size = usize::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("pool_size", format!("{n} is not a pool size")))?;
        }
        if let Some(u) = pool.text("user") {
            if u.is_empty() {
                return Err(bad("user", "is empty".into()));
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
        if c.tls.is_some() && c.is_socket() {
            return Err(bad(
                "ssl",
                "TLS needs a TCP server (host:port), not a Unix socket".into(),
            ));
        }
        Ok(c)
    }

    /// Whether `host` is a Unix socket path.
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// `host:port/database` (or `socket/database`), for errors and logs
    /// (no user, no password).
    pub fn server_label(&self) -> String {
        if self.is_socket() {
            format!("{}/{}", self.host, self.database)
        } else if self.host.contains(':') {
            format!("[{}]:{}/{}", self.host, self.port, self.database)
        } else {
            format!("{}:{}/{}", self.host, self.port, self.database)
        }
    }
}

/// `host`, `host:port`, `[v6]:port`, a bare IPv6 address, or a Unix socket,
/// as [`ServerAddr::parse`] reads them, with this backend's default port.
fn parse_server(s: &str) -> Result<(String, u16), String> {
    ServerAddr::parse(s, DEFAULT_PORT).map(|a| (a.host, a.port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn pool(lines: &[(&str, &str)]) -> PoolConfig {
        let mut p = PoolConfig::new(BackendKind::Mysql, "pool1");
        for (k, v) in lines {
            p.set(k, v).expect("a valid pool key");
        }
        p
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = MysqlConfig::from_pool(&pool(&[])).expect("defaults");
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 3306);
        assert_eq!(c.pool_size, 8);
        assert_eq!(c.user, "root");
        assert_eq!(c.database, "mqtt");
        assert_eq!(c.password, None);
        assert!(c.tls.is_none());
        assert!(!c.create_tables);
        assert_eq!(c.stmt_cache_size, DEFAULT_STMT_CACHE_SIZE);
    }

    #[test]
    fn servers() {
        assert_eq!(parse_server("db"), Ok(("db".into(), 3306)));
        assert_eq!(parse_server("db:3307"), Ok(("db".into(), 3307)));
        assert_eq!(parse_server("[::1]:7"), Ok(("::1".into(), 7)));
        assert_eq!(parse_server("[::1]"), Ok(("::1".into(), 3306)));
        assert_eq!(parse_server("::1"), Ok(("::1".into(), 3306)));
        assert_eq!(
            parse_server("/run/mysqld/mysqld.sock"),
            Ok(("/run/mysqld/mysqld.sock".into(), 3306))
        );
        assert!(parse_server("db:x")
            .unwrap_err()
            .contains("invalid port `x`"));
        assert!(parse_server("db:0").is_err());
        assert!(parse_server(":3306").is_err());
        assert!(parse_server("a:1,b:2").is_err());
        assert!(parse_server("[::1").is_err());
    }

    #[test]
    fn bad_server_names_key() {
        let e = MysqlConfig::from_pool(&pool(&[("server", "localhost:99999")]))
            .expect_err("a bad port");
        assert_eq!(
            e.to_string(),
            "backend.mysql.pool1.server: invalid port `99999` in `localhost:99999`"
        );
        assert_eq!(e.kind(), backend_core::ErrorKind::Config);
    }

    #[test]
    fn tls_settings() {
        let c = MysqlConfig::from_pool(&pool(&[("ssl", "true"), ("cacertfile", "/ca.pem")]))
            .expect("ssl");
        let tls = c.tls.clone().expect("tls on");
        assert_eq!(tls.ca_cert_file, Some(PathBuf::from("/ca.pem")));
        let e = MysqlConfig::from_pool(&pool(&[("ssl", "true"), ("certfile", "/c.pem")]))
            .expect_err("cert without key");
        assert!(e.to_string().contains("keyfile: is required"), "{e}");
        let e = MysqlConfig::from_pool(&pool(&[("cacertfile", "/ca.pem")]))
            .expect_err("TLS files without ssl");
        assert!(e.to_string().contains("ssl is not true"), "{e}");
        let e = MysqlConfig::from_pool(&pool(&[("ssl", "true"), ("server", "/tmp/my.sock")]))
            .expect_err("TLS over a socket");
        assert!(e.to_string().contains("Unix socket"), "{e}");
    }

    #[test]
    fn password_is_never_printed() {
        let c = MysqlConfig::from_pool(&pool(&[("password", "hunter2")])).expect("ok");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!c.server_label().contains("hunter2"));
    }

    #[test]
    fn wrong_kind() {
        let p = PoolConfig::new(BackendKind::Pgsql, "pool1");
        assert!(matches!(
            MysqlConfig::from_pool(&p),
            Err(MysqlError::WrongKind(BackendKind::Pgsql))
        ));
    }
}
