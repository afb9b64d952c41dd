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
//! let mut pool = PoolConfig::new(backend_mysql::KIND, "pool1");
//! pool.set("server", "db.example:3307")?.set("password", "s3cret")?;
//! let c = MysqlConfig::from_pool(&pool)?;
//! assert_eq!((c.db.host.as_str(), c.db.port), ("db.example", 3307));
//! assert_eq!(c.db.pool_size, 8);
//! assert!(!format!("{c:?}").contains("s3cret"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use backend_core::backend::Capabilities;
use backend_core::config::{DbDefaults, DbSettings, PoolConfig};
use backend_core::CommonError;

use crate::error::MysqlError;
use backend_core::config::{KeySpec, KeyType, KindSpec, StatementLanguage};
use backend_core::template::Placeholders;
use backend_core::BackendKind;

/// `backend.mysql.*`: the keys this crate reads, with their defaults.
pub const KIND: BackendKind = BackendKind::declare(&KindSpec {
    name: "mysql",
    pool_prefix: "mysql",
    pool_keys: &[
        KeySpec::new("server", KeyType::Text).with_default("127.0.0.1:3306"),
        KeySpec::new("pool_size", KeyType::Count).with_default("8"),
        KeySpec::new("user", KeyType::Text).with_default("root"),
        KeySpec::new("password", KeyType::Secret),
        KeySpec::new("database", KeyType::Text).with_default("mqtt"),
        KeySpec::new("create_tables", KeyType::Bool).with_default("false"),
    ],
    global_keys: &[],
    statements: Some(StatementLanguage::Sql(Placeholders::Question)),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_admin()
        .with_sweep(),
});
backend_core::register_kind!(KIND);

/// Prepared statements kept per connection (mysql_async's LRU cache;
/// its own default is 32). The built-in functions use about 20 statement
/// texts, plus one per batch size seen and one per raw `sql` template.
pub const DEFAULT_STMT_CACHE_SIZE: usize = 256;

/// What this backend reads differently from the other SQL backends.
pub const DEFAULTS: DbDefaults = backend_core::db_defaults!(KIND, 3306, "user");

/// The settings of one MySQL pool: the keys every SQL backend shares
/// ([`DbSettings`]), the statement cache and the bulk path. Build it from
/// a [`PoolConfig`] with [`MysqlConfig::from_pool`], or in code (the
/// timeouts, the statement cache and the bulk path have no `.conf` key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlConfig {
    /// Server, user, database, pool size, TLS, timeouts.
    pub db: DbSettings,
    /// Prepared statements cached per connection.
    pub stmt_cache_size: usize,
    /// Stores messages with `LOAD DATA LOCAL INFILE` when the server
    /// allows it (`local_infile`, on by default in MariaDB, off in MySQL
    /// 8), and with multi-row `REPLACE` statements otherwise. On by
    /// default; the rows are the same either way.
    pub load_data: bool,
}

/// TLS files (`ssl = true`): the pool keys every backend reads alike.
pub type TlsSettings = backend_core::config::TlsFiles;

impl MysqlConfig {
    /// The defaults, for a pool called `pool_name`.
    pub fn new(pool_name: impl Into<String>) -> Self {
        MysqlConfig {
            db: DbSettings::new(pool_name, DEFAULTS),
            stmt_cache_size: DEFAULT_STMT_CACHE_SIZE,
            load_data: true,
        }
    }

    /// Reads `backend.mysql.<pool>.*`; errors name the key and its line.
    pub fn from_pool(pool: &PoolConfig) -> Result<Self, MysqlError> {
        let db = DbSettings::from_pool(pool, DEFAULTS)?;
        if db.tls.is_some() && db.is_socket() {
            return Err(CommonError::config(
                pool,
                "ssl",
                "TLS needs a TCP server (host:port), not a Unix socket",
            )
            .into());
        }
        Ok(MysqlConfig {
            db,
            stmt_cache_size: DEFAULT_STMT_CACHE_SIZE,
            load_data: true,
        })
    }

    /// `host:port/database` (or `socket/database`), for errors and logs
    /// (no user, no password).
    pub fn server_label(&self) -> String {
        self.db.server_label()
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
    use backend_core::testkit::{assert_reads_common_settings, pool_config};

    /// `ssl` needs the `tls` feature, `Debug` hides the password, another
    /// kind's pool is refused; the user key is `user`, the port 3306, and
    /// the statement cache has its default.
    #[test]
    fn the_shared_settings_and_mysqls_own() {
        let d = DEFAULTS;
        assert_reads_common_settings(d.kind, d.user_key, MysqlConfig::from_pool, d.tls_built);
        let login = pool_config(d.kind, &[("user", "app"), ("password", "hunter2")]);
        let c = MysqlConfig::from_pool(&login).expect("valid");
        assert_eq!((c.db.user.as_str(), c.db.port), ("app", 3306));
        assert_eq!(c.db.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(c.stmt_cache_size, DEFAULT_STMT_CACHE_SIZE);
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_needs_tcp() {
        let socket = [("ssl", "true"), ("server", "/tmp/my.sock")];
        let e = MysqlConfig::from_pool(&pool_config(DEFAULTS.kind, &socket)).expect_err("TLS");
        assert!(e.to_string().contains("Unix socket"), "{e}");
        assert_eq!(e.kind(), backend_core::ErrorKind::Config);
    }
}
