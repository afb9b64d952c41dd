//! [`PgsqlConfig`]: the typed settings of one pool, read from a
//! [`PoolConfig`] (`backend.pgsql.<pool>.*`).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `server` | `127.0.0.1:5432` | `host`, `host:port`, `[v6]:port`, or a Unix socket directory (`/run/postgresql`) |
//! | `pool_size` | `8` | connections in the pool |
//! | `username` | `root` | the seed's user |
//! | `password` | none | never printed |
//! | `database` | `mqtt` | the seed's database |
//! | `ssl` | `false` | TLS (rustls), server certificate always verified |
//! | `cacertfile` | system roots | PEM file of the CA(s) that signed the server certificate |
//! | `certfile`, `keyfile` | none | PEM client certificate and key, both or neither |
//! | `create_tables` | `false` | create the schema at start instead of failing on a missing table |
//!
//! ```
//! use backend_core::{config::PoolConfig, BackendKind};
//! use backend_pgsql::PgsqlConfig;
//! let mut pool = PoolConfig::new(BackendKind::Pgsql, "pool1");
//! pool.set("server", "db.example:6432")?.set("password", "s3cret")?;
//! let c = PgsqlConfig::from_pool(&pool)?;
//! assert_eq!((c.host.as_str(), c.port), ("db.example", 6432));
//! assert_eq!(c.pool_size, 8);
//! assert!(!format!("{c:?}").contains("s3cret"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use backend_core::config::{PoolConfig, Secret, ServerAddr};
use backend_core::BackendKind;

use crate::error::PgsqlError;

/// Default `server` host.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default `server` port.
pub const DEFAULT_PORT: u16 = 5432;
/// Default `pool_size`.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Default `username` (the seed's).
pub const DEFAULT_USERNAME: &str = "root";
/// Default `database` (the seed's).
pub const DEFAULT_DATABASE: &str = "mqtt";
/// How long opening one connection may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an operation may wait for a free connection.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of one PostgreSQL pool. Build it from a [`PoolConfig`] with
/// [`PgsqlConfig::from_pool`], or in code (every field is public; the
/// timeouts have no `.conf` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgsqlConfig {
    /// The pool's name (`pool1`), for errors and logs.
    pub pool_name: String,
    /// Host name, IP address, or Unix socket directory (starts with `/`).
    pub host: String,
    /// TCP port (also the socket file's number for a Unix socket).
    pub port: u16,
    /// Maximum number of connections.
    pub pool_size: usize,
    /// User name.
    pub username: String,
    /// Password; its `Debug` prints `***`.
    pub password: Option<Secret>,
    /// Database name.
    pub database: String,
    /// TLS settings when `ssl = true`.
    pub tls: Option<TlsSettings>,
    /// Create missing tables and indexes at start.
    pub create_tables: bool,
    /// Timeout for opening one connection.
    pub connect_timeout: Duration,
    /// Timeout for waiting for a free connection from the pool.
    pub wait_timeout: Duration,
}

/// TLS files (`ssl = true`): the pool keys every backend reads alike.
pub type TlsSettings = backend_core::config::TlsFiles;

impl PgsqlConfig {
    /// The defaults, for a pool called `pool_name`.
    pub fn new(pool_name: impl Into<String>) -> Self {
        PgsqlConfig {
            pool_name: pool_name.into(),
            host: DEFAULT_HOST.into(),
            port: DEFAULT_PORT,
            pool_size: DEFAULT_POOL_SIZE,
            username: DEFAULT_USERNAME.into(),
            password: None,
            database: DEFAULT_DATABASE.into(),
            tls: None,
            create_tables: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        }
    }

    /// Reads `backend.pgsql.<pool>.*`; errors name the key and its line.
    pub fn from_pool(pool: &PoolConfig) -> Result<Self, PgsqlError> {
        if pool.kind() != BackendKind::Pgsql {
            return Err(PgsqlError::WrongKind(pool.kind()));
        }
        let bad = |key: &'static str, problem: String| PgsqlError::Config {
            pool: pool.name().to_owned(),
            key,
            line: pool.line(key),
            problem,
        };
        let mut c = PgsqlConfig::new(pool.name());
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
        if let Some(u) = pool.text("username") {
            if u.is_empty() {
                return Err(bad("username", "is empty".into()));
            }
            c.username = u.to_owned();
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
        Ok(c)
    }

    /// `host:port/database`, for errors and logs (no user, no password).
    pub fn server_label(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('/') {
            format!("[{}]:{}/{}", self.host, self.port, self.database)
        } else {
            format!("{}:{}/{}", self.host, self.port, self.database)
        }
    }

    /// The driver's connection settings.
    pub fn to_tokio_postgres(&self) -> tokio_postgres::Config {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&self.host)
            .port(self.port)
            .user(&self.username)
            .dbname(&self.database)
            .application_name("backend-pgsql")
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(60))
            .ssl_mode(if self.tls.is_some() {
                tokio_postgres::config::SslMode::Require
            } else {
                tokio_postgres::config::SslMode::Disable
            });
        if let Some(p) = &self.password {
            pg.password(p.expose());
        }
        pg
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
        let mut p = PoolConfig::new(BackendKind::Pgsql, "pool1");
        for (k, v) in lines {
            p.set(k, v).expect("a valid pool key");
        }
        p
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = PgsqlConfig::from_pool(&pool(&[])).expect("defaults");
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 5432);
        assert_eq!(c.pool_size, 8);
        assert_eq!(c.username, "root");
        assert_eq!(c.database, "mqtt");
        assert_eq!(c.password, None);
        assert!(c.tls.is_none());
        assert!(!c.create_tables);
    }

    #[test]
    fn servers() {
        assert_eq!(parse_server("db"), Ok(("db".into(), 5432)));
        assert_eq!(parse_server("db:6432"), Ok(("db".into(), 6432)));
        assert_eq!(parse_server("[::1]:7"), Ok(("::1".into(), 7)));
        assert_eq!(parse_server("[::1]"), Ok(("::1".into(), 5432)));
        assert_eq!(parse_server("::1"), Ok(("::1".into(), 5432)));
        assert_eq!(
            parse_server("/run/postgresql"),
            Ok(("/run/postgresql".into(), 5432))
        );
        assert!(parse_server("db:x")
            .unwrap_err()
            .contains("invalid port `x`"));
        assert!(parse_server("db:0").is_err());
        assert!(parse_server(":5432").is_err());
        assert!(parse_server("a:1,b:2").is_err());
        assert!(parse_server("[::1").is_err());
    }

    #[test]
    fn bad_server_names_key() {
        let e = PgsqlConfig::from_pool(&pool(&[("server", "localhost:99999")]))
            .expect_err("a bad port");
        assert_eq!(
            e.to_string(),
            "backend.pgsql.pool1.server: invalid port `99999` in `localhost:99999`"
        );
        assert_eq!(e.kind(), backend_core::ErrorKind::Config);
    }

    #[test]
    fn tls_settings() {
        let c = PgsqlConfig::from_pool(&pool(&[("ssl", "true"), ("cacertfile", "/ca.pem")]))
            .expect("ssl");
        let tls = c.tls.clone().expect("tls on");
        assert_eq!(tls.ca_cert_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(
            c.to_tokio_postgres().get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let e = PgsqlConfig::from_pool(&pool(&[("ssl", "true"), ("certfile", "/c.pem")]))
            .expect_err("cert without key");
        assert!(e.to_string().contains("keyfile: is required"), "{e}");
        let e = PgsqlConfig::from_pool(&pool(&[("cacertfile", "/ca.pem")]))
            .expect_err("TLS files without ssl");
        assert!(e.to_string().contains("ssl is not true"), "{e}");
    }

    #[test]
    fn password_is_never_printed() {
        let c = PgsqlConfig::from_pool(&pool(&[("password", "hunter2")])).expect("ok");
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", c.to_tokio_postgres()).contains("hunter2"));
        assert!(!c.server_label().contains("hunter2"));
    }

    #[test]
    fn wrong_kind() {
        let p = PoolConfig::new(BackendKind::Mysql, "pool1");
        assert!(matches!(
            PgsqlConfig::from_pool(&p),
            Err(PgsqlError::WrongKind(BackendKind::Mysql))
        ));
    }
}
