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
//! let mut pool = PoolConfig::new(backend_pgsql::KIND, "pool1");
//! pool.set("server", "db.example:6432")?.set("password", "s3cret")?;
//! let c = PgsqlConfig::from_pool(&pool)?;
//! assert_eq!((c.db.host.as_str(), c.db.port), ("db.example", 6432));
//! assert_eq!(c.db.pool_size, 8);
//! assert!(!format!("{c:?}").contains("s3cret"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use backend_core::backend::Capabilities;
use backend_core::config::{DbDefaults, DbSettings, PoolConfig};

use crate::error::PgsqlError;
use backend_core::config::{KeySpec, KeyType, KindSpec, StatementLanguage};
use backend_core::template::Placeholders;
use backend_core::BackendKind;

/// `backend.pgsql.*`: the keys this crate reads, with their defaults.
pub const KIND: BackendKind = BackendKind::declare(&KindSpec {
    name: "pgsql",
    pool_prefix: "pgsql",
    pool_keys: &[
        KeySpec::new("server", KeyType::Text).with_default("127.0.0.1:5432"),
        KeySpec::new("pool_size", KeyType::Count).with_default("8"),
        KeySpec::new("username", KeyType::Text).with_default("root"),
        KeySpec::new("password", KeyType::Secret),
        KeySpec::new("database", KeyType::Text).with_default("mqtt"),
        KeySpec::new("create_tables", KeyType::Bool).with_default("false"),
    ],
    global_keys: &[],
    statements: Some(StatementLanguage::Sql(Placeholders::Numbered)),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_admin()
        .with_sweep(),
});
backend_core::register_kind!(KIND);

/// What this backend reads differently from the other SQL backends.
pub const DEFAULTS: DbDefaults = backend_core::db_defaults!(KIND, 5432, "username");

/// The settings of one PostgreSQL pool: the keys every SQL backend shares
/// ([`DbSettings`]); PostgreSQL adds none. Build it from a [`PoolConfig`]
/// with [`PgsqlConfig::from_pool`], or in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgsqlConfig {
    /// Server, user, database, pool size, TLS, timeouts.
    pub db: DbSettings,
}

/// TLS files (`ssl = true`): the pool keys every backend reads alike.
pub type TlsSettings = backend_core::config::TlsFiles;

impl PgsqlConfig {
    /// The defaults, for a pool called `pool_name`.
    pub fn new(pool_name: impl Into<String>) -> Self {
        PgsqlConfig {
            db: DbSettings::new(pool_name, DEFAULTS),
        }
    }

    /// Reads `backend.pgsql.<pool>.*`; errors name the key and its line.
    pub fn from_pool(pool: &PoolConfig) -> Result<Self, PgsqlError> {
        let db = DbSettings::from_pool(pool, DEFAULTS)?;
        Ok(PgsqlConfig { db })
    }

    /// `host:port/database`, for errors and logs (no user, no password).
    pub fn server_label(&self) -> String {
        self.db.server_label()
    }

    /// The driver's connection settings.
    pub fn to_tokio_postgres(&self) -> tokio_postgres::Config {
        let db = &self.db;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&db.host)
            .port(db.port)
            .user(&db.user)
            .dbname(&db.database)
            .application_name("backend-pgsql")
            .connect_timeout(db.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(60))
            .ssl_mode(if db.tls.is_some() {
                tokio_postgres::config::SslMode::Require
            } else {
                tokio_postgres::config::SslMode::Disable
            });
        if let Some(p) = &db.password {
            pg.password(p.expose());
        }
        pg
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn core_stand_in_is_this_kind() {
        backend_core::testkit::kinds::assert_stand_in_matches(crate::KIND);
    }

    use super::*;
    use backend_core::config::Secret;

    fn pool(lines: &[(&str, &str)]) -> PoolConfig {
        backend_core::testkit::pool_config(crate::KIND, lines)
    }

    #[test]
    fn the_user_key_is_username() {
        let c = PgsqlConfig::from_pool(&pool(&[("username", "app")])).expect("valid");
        assert_eq!(c.db.user, "app");
        assert_eq!(c.db.port, 5432);
        assert_eq!(c.to_tokio_postgres().get_user(), Some("app"));
    }

    /// Beyond the shared checks below: the driver's own configuration
    /// hides the password too.
    #[test]
    fn password_is_never_printed() {
        let c = PgsqlConfig::from_pool(&pool(&[("password", "hunter2")])).expect("ok");
        assert_eq!(c.db.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert!(!format!("{:?}", c.to_tokio_postgres()).contains("hunter2"));
    }

    /// `ssl` needs the `tls` feature, `Debug` hides the password, another
    /// kind's pool is refused.
    #[test]
    fn the_settings_every_backend_shares() {
        let d = DEFAULTS;
        let read = PgsqlConfig::from_pool;
        backend_core::testkit::assert_reads_common_settings(d.kind, d.user_key, read, d.tls_built);
    }
}
