//! The kind this crate declares (`backend.sqlite.*`) and the pool keys it
//! reads.
//!
//! ```
//! use backend_core::config::PoolConfig;
//! use backend_sqlite::SqliteConfig;
//! let mut pool = PoolConfig::new(backend_sqlite::KIND, "pool1");
//! pool.set("path", "/var/lib/mqtt/storage.db")?;
//! let c = SqliteConfig::from_pool(&pool)?;
//! assert_eq!(c.path.to_str(), Some("/var/lib/mqtt/storage.db"));
//! assert_eq!(c.pool_size, 4);
//! assert!(c.create_tables);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::time::Duration;

use backend_core::backend::Capabilities;
use backend_core::config::{KeySpec, KeyType, KindSpec, PoolConfig, StatementLanguage};
use backend_core::template::Placeholders;
use backend_core::{BackendKind, CommonError};

/// `backend.sqlite.*`: the keys this crate reads, with their defaults.
pub const KIND: BackendKind = BackendKind::declare(&KindSpec {
    name: "sqlite",
    pool_prefix: "sqlite",
    pool_keys: &[
        KeySpec::new("path", KeyType::Text).with_default(DEFAULT_PATH),
        KeySpec::new("pool_size", KeyType::Count).with_default("4"),
        KeySpec::new("create_tables", KeyType::Bool).with_default("true"),
        KeySpec::new("busy_timeout", KeyType::Millis).with_default("5s"),
        KeySpec::new("synchronous", KeyType::OneOf(&["off", "normal", "full"]))
            .with_default("normal"),
    ],
    global_keys: &[],
    statements: Some(StatementLanguage::Sql(Placeholders::Question)),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_admin()
        .with_sweep(),
});
backend_core::register_kind!(KIND);

/// The default database file.
pub const DEFAULT_PATH: &str = "./data/mqtt.db";

/// How SQLite syncs its write-ahead log (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// Never syncs: a power loss or an OS crash can lose or corrupt recent
    /// writes. A broker crash loses nothing.
    Off,
    /// Syncs at checkpoints (the default): a broker crash loses nothing;
    /// a power loss can lose the last transactions, never corrupt the file.
    Normal,
    /// Syncs every commit: nothing acknowledged is lost, even on power loss.
    Full,
}

impl Synchronous {
    /// The pragma's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// The settings of one pool: one database file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The pool's name (`pool1`), for errors and logs.
    pub pool: String,
    /// `path`: the database file; its folder is created if missing.
    pub path: PathBuf,
    /// `pool_size`: connections for reads (writes take one more, alone).
    pub pool_size: usize,
    /// `create_tables`: run the schema file at start.
    pub create_tables: bool,
    /// `busy_timeout`: how long a statement waits for another process
    /// holding the file's write lock.
    pub busy_timeout: Duration,
    /// `synchronous`.
    pub synchronous: Synchronous,
}

impl SqliteConfig {
    /// The defaults, for a pool called `pool`.
    pub fn new(pool: impl Into<String>) -> Self {
        SqliteConfig {
            pool: pool.into(),
            path: PathBuf::from(DEFAULT_PATH),
            pool_size: 4,
            create_tables: true,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
        }
    }

    /// Reads `backend.sqlite.<pool>.*`; an error names the key at fault.
    pub fn from_pool(pool: &PoolConfig) -> Result<Self, CommonError> {
        CommonError::check_kind(KIND, pool.kind())?;
        let mut c = SqliteConfig::new(pool.name());
        if let Some(path) = pool.text("path") {
            if path.trim().is_empty() {
                return Err(CommonError::config(pool, "path", "is empty"));
            }
            c.path = PathBuf::from(path);
        }
        if let Some(n) = pool.int("pool_size") {
            c.pool_size = usize::try_from(n)
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| {
                    CommonError::config(pool, "pool_size", format!("{n} is not 1 to 64"))
                })?;
        }
        if let Some(b) = pool.bool("create_tables") {
            c.create_tables = b;
        }
        if let Some(ms) = pool.int("busy_timeout") {
            c.busy_timeout = Duration::from_millis(ms.unsigned_abs());
        }
        c.synchronous = match pool.text("synchronous") {
            Some("off") => Synchronous::Off,
            Some("full") => Synchronous::Full,
            _ => Synchronous::Normal,
        };
        if pool.bool("ssl").unwrap_or(false) {
            return Err(CommonError::config(
                pool,
                "ssl",
                "does not apply: SQLite is a file, not a server",
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(lines: &[(&str, &str)]) -> PoolConfig {
        PoolConfig::from_settings(KIND, "pool1", lines).expect("valid settings")
    }

    #[test]
    fn defaults_and_bad_values() {
        let c = SqliteConfig::from_pool(&pool(&[])).expect("defaults");
        assert_eq!(c, SqliteConfig::new("pool1"));
        let c = SqliteConfig::from_pool(&pool(&[
            ("pool_size", "2"),
            ("synchronous", "full"),
            ("busy_timeout", "250ms"),
            ("create_tables", "false"),
        ]))
        .expect("valid");
        assert_eq!(c.pool_size, 2);
        assert_eq!(c.synchronous, Synchronous::Full);
        assert_eq!(c.busy_timeout, Duration::from_millis(250));
        assert!(!c.create_tables);
        let e = SqliteConfig::from_pool(&pool(&[("pool_size", "100")])).expect_err("too many");
        assert!(e.to_string().contains("pool_size"), "{e}");
        let e = SqliteConfig::from_pool(&pool(&[("path", " ")])).expect_err("empty");
        assert!(e.to_string().contains("path"), "{e}");
        assert!(PoolConfig::from_settings(KIND, "p", &[("synchronous", "sometimes")]).is_err());
        assert!(PoolConfig::from_settings(KIND, "p", &[("pth", "x")])
            .unwrap_err()
            .to_string()
            .contains("did you mean `path`"));
    }

    #[test]
    fn the_conf_reads_the_kind() {
        let conf = backend_core::Config::parse(
            "backend.sqlite.pool1.path = /tmp/x.db\n\
             backend.sqlite.hook.message.publish.1 = {\"topic\": \"#\", \"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\"}\n",
        )
        .expect("parses");
        assert_eq!(conf.kind(), KIND);
        assert_eq!(conf.rules().len(), 1);
    }
}
