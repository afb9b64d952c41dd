//! [`CassaConfig`]: the typed settings of one pool, read from a
//! [`PoolConfig`] (`backend.ecql.<pool>.*`, the seed's keys).
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `nodes` | `127.0.0.1:9042` | contact points, comma-separated (`host`, `host:port`, `[v6]:port`) |
//! | `size` | `8` | connections per node |
//! | `auto_reconnect` | `1` | reconnect lost connections in the background (off: a lost node stays down) |
//! | `username`, `password` | none | password authentication; the password is never printed |
//! | `keyspace` | `mqtt` | the keyspace of the tables |
//! | `logger` | `info` | accepted for the seed's files; logs go through `tracing` |
//! | `create_tables` | `true` | create the tables (never the keyspace) when missing; `false` to manage the schema yourself |
//! | `consistency` | `local_quorum` | consistency level of every read and write |
//! | `connect_timeout` | `5s` | how long connecting may take, the first session included |
//! | `request_timeout` | `10s` | how long one request may take |
//! | `ssl` | `false` | TLS (rustls, feature `tls`): the server's certificate is always verified |
//! | `cacertfile` | none | PEM CA certificates to trust, and only those (else the system's roots) |
//! | `certfile`, `keyfile` | none | a client certificate and its key (PEM) |
//! | `server_name_indication` | the first node's host | the name every node's certificate is checked against |
//!
//! The driver checks every node against one name, so in a cluster each
//! node's certificate carries `server_name_indication` (or the first
//! contact point's host) among its names.
//!
//! ```
//! use backend_core::{config::PoolConfig, BackendKind};
//! use backend_cassa::CassaConfig;
//! let mut pool = PoolConfig::new(backend_cassa::KIND, "pool1");
//! pool.set("nodes", "10.0.0.1:9042, 10.0.0.2")?;
//! pool.set("username", "mqtt")?.set("password", "s3cret")?;
//! let c = CassaConfig::from_pool(&pool)?;
//! assert_eq!(c.nodes.len(), 2);
//! assert_eq!(c.keyspace, "mqtt");
//! assert!(!format!("{c:?}").contains("s3cret"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use backend_core::backend::Capabilities;
use backend_core::config::{Login, PoolConfig, ServerAddr, TlsFiles};
use backend_core::{BackendKind, CommonError};

use crate::error::CassaError;
use backend_core::config::{KeySpec, KeyType, KindSpec, StatementLanguage};

/// `backend.cassa.*` (rules) and `backend.ecql.*` (pools): the keys this
/// crate reads, with their defaults.
pub const KIND: BackendKind = BackendKind::declare(&KindSpec {
    name: "cassa",
    pool_prefix: "ecql",
    pool_keys: &[
        KeySpec::new("nodes", KeyType::Text).with_default("127.0.0.1:9042"),
        KeySpec::new("size", KeyType::Count).with_default("8"),
        KeySpec::new("auto_reconnect", KeyType::Bool).with_default("true"),
        KeySpec::new("username", KeyType::Text),
        KeySpec::new("password", KeyType::Secret),
        KeySpec::new("keyspace", KeyType::Text).with_default("mqtt"),
        KeySpec::new(
            "logger",
            KeyType::OneOf(&["debug", "info", "notice", "warning", "error", "critical"]),
        ),
        KeySpec::new("create_tables", KeyType::Bool).with_default("true"),
        KeySpec::new(
            "consistency",
            KeyType::OneOf(&[
                "any",
                "one",
                "two",
                "three",
                "quorum",
                "all",
                "local_quorum",
                "each_quorum",
                "local_one",
            ]),
        ),
        KeySpec::new("connect_timeout", KeyType::Millis).with_default("5s"),
        KeySpec::new("request_timeout", KeyType::Millis).with_default("10s"),
        KeySpec::new("server_name_indication", KeyType::Text),
    ],
    global_keys: &[],
    statements: Some(StatementLanguage::Cql),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_admin()
        .with_sweep(),
});
backend_core::register_kind!(KIND);

/// Default CQL port.
pub const DEFAULT_PORT: u16 = 9042;
/// Default `size`: connections per node.
pub const DEFAULT_SIZE: usize = 8;
/// Default `keyspace` (the seed's).
pub const DEFAULT_KEYSPACE: &str = "mqtt";
/// Default `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `request_timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The consistency level of a pool's reads and writes (`consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Consistency {
    /// `ANY` (writes only; reads use `ONE`).
    Any,
    /// `ONE`.
    One,
    /// `TWO`.
    Two,
    /// `THREE`.
    Three,
    /// `QUORUM`.
    Quorum,
    /// `ALL`.
    All,
    /// `LOCAL_QUORUM`, the default: a majority of the local data
    /// centre's replicas.
    #[default]
    LocalQuorum,
    /// `EACH_QUORUM`.
    EachQuorum,
    /// `LOCAL_ONE`.
    LocalOne,
}

impl Consistency {
    /// Reads the `.conf` word (`local_quorum`).
    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "any" => Consistency::Any,
            "one" => Consistency::One,
            "two" => Consistency::Two,
            "three" => Consistency::Three,
            "quorum" => Consistency::Quorum,
            "all" => Consistency::All,
            "local_quorum" => Consistency::LocalQuorum,
            "each_quorum" => Consistency::EachQuorum,
            "local_one" => Consistency::LocalOne,
            _ => return None,
        })
    }
}

/// TLS settings of a Cassandra pool (`ssl = true`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CassaTls {
    /// `cacertfile`, `certfile`, `keyfile`.
    pub files: TlsFiles,
    /// `server_name_indication`: the name nodes' certificates are verified
    /// against; by default the first contact point's host.
    pub server_name: Option<String>,
}

impl CassaTls {
    /// TLS with these files, verified against the first contact point's
    /// host.
    pub fn new(files: TlsFiles) -> Self {
        CassaTls {
            files,
            server_name: None,
        }
    }
}

/// The settings of one Cassandra pool. Build it with
/// [`CassaConfig::from_pool`], or in code (every field is public).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CassaConfig {
    /// The pool's name (`pool1`), for errors and logs.
    pub pool_name: String,
    /// Contact points (`nodes`, default `127.0.0.1:9042`); the driver
    /// discovers the other nodes of the cluster from them.
    pub nodes: Vec<ServerAddr>,
    /// Connections per node (`size`, default 8).
    pub size: usize,
    /// Reconnect lost connections in the background (`auto_reconnect`,
    /// on by default).
    pub auto_reconnect: bool,
    /// User name and password (`username`, `password`) for password
    /// authentication; the user is required when a password is set.
    pub login: Option<Login>,
    /// The keyspace of the tables (`keyspace`, default `mqtt`). It must
    /// exist: its replication is the operator's choice.
    pub keyspace: String,
    /// Create missing tables at start (`create_tables`, on by default).
    pub create_tables: bool,
    /// Consistency level of every statement (`consistency`, default
    /// `local_quorum`).
    pub consistency: Consistency,
    /// How long connecting may take (`connect_timeout`).
    pub connect_timeout: Duration,
    /// How long one request may take (`request_timeout`);
    /// a request that takes longer fails with a retryable timeout.
    pub request_timeout: Duration,
    /// TLS (`ssl = true`): its files and the name nodes' certificates are
    /// verified against.
    pub tls: Option<CassaTls>,
}

impl CassaConfig {
    /// The defaults, for a pool called `pool_name`.
    pub fn new(pool_name: impl Into<String>) -> Self {
        CassaConfig {
            pool_name: pool_name.into(),
            nodes: vec![ServerAddr::new("127.0.0.1", DEFAULT_PORT)],
            size: DEFAULT_SIZE,
            auto_reconnect: true,
            login: None,
            keyspace: DEFAULT_KEYSPACE.into(),
            create_tables: true,
            consistency: Consistency::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            tls: None,
        }
    }

    /// Reads `backend.ecql.<pool>.*`; errors name the key and its line.
    pub fn from_pool(pool: &PoolConfig) -> Result<Self, CassaError> {
        CommonError::check_kind(crate::KIND, pool.kind())?;
        let bad = |key: &'static str, problem: String| CommonError::config(pool, key, problem);
        let mut c = CassaConfig::new(pool.name());
        if let Some(nodes) = pool.text("nodes") {
            c.nodes = ServerAddr::parse_list(nodes, DEFAULT_PORT).map_err(|p| bad("nodes", p))?;
            if let Some(a) = c.nodes.iter().find(|a| a.is_socket()) {
                return Err(bad("nodes", format!("`{a}`: a node is a host and port")).into());
            }
        }
        if let Some(n) = pool.int("size") {
            c.size = usize::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("size", format!("{n} is not a pool size")))?;
        }
        c.auto_reconnect = pool.bool("auto_reconnect").unwrap_or(true);
        c.login = pool.login("username").map_err(|(k, p)| bad(k, p))?;
        if let Some(k) = pool.text("keyspace") {
            if !is_identifier(k) {
                return Err(bad(
                    "keyspace",
                    format!("`{k}` is not a keyspace name (letters, digits and _, at most 48)"),
                )
                .into());
            }
            c.keyspace = k.to_owned();
        }
        // On by default, unlike the SQL backends: the seed has no such key, and
        // its Cassandra schema is not the one this backend needs.
        c.create_tables = pool.bool("create_tables").unwrap_or(true);
        if let Some(word) = pool.text("consistency") {
            c.consistency = Consistency::parse(word)
                .ok_or_else(|| bad("consistency", format!("`{word}` is not a level")))?;
        }
        let millis = |key: &'static str| -> Result<Option<Duration>, CommonError> {
            match pool.int(key) {
                None => Ok(None),
                Some(0) => Err(bad(key, "must be more than 0".into())),
                Some(ms) => Ok(u64::try_from(ms).ok().map(Duration::from_millis)),
            }
        };
        if let Some(d) = millis("connect_timeout")? {
            c.connect_timeout = d;
        }
        if let Some(d) = millis("request_timeout")? {
            c.request_timeout = d;
        }
        let files = pool.tls_files().map_err(|(k, p)| bad(k, p))?;
        if files.is_some() && !cfg!(feature = "tls") {
            return Err(CommonError::feature_off(pool, "ssl", "mqtt-storage-cassa", "tls").into());
        }
        let name = pool
            .text("server_name_indication")
            .filter(|n| !n.is_empty());
        c.tls = match (files, name) {
            (Some(files), name) => Some(CassaTls {
                files,
                server_name: name.map(str::to_owned),
            }),
            (None, Some(_)) => {
                let problem = "is set but ssl is not true".into();
                return Err(bad("server_name_indication", problem).into());
            }
            (None, None) => None,
        };
        Ok(c)
    }

    /// The name the nodes' certificates are verified against:
    /// `server_name_indication`, else the first contact point's host.
    pub fn tls_server_name(&self) -> &str {
        let chosen = self.tls.as_ref().and_then(|t| t.server_name.as_deref());
        chosen
            .or_else(|| self.nodes.first().map(|n| n.host.as_str()))
            .unwrap_or("localhost")
    }

    /// The contact points joined, then the keyspace (`a:9042,b:9042/mqtt`),
    /// for errors and logs: never the user or the password.
    pub fn label(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(ToString::to_string).collect();
        format!("{}/{}", nodes.join(","), self.keyspace)
    }
}

/// A CQL identifier that needs no quoting: it is spliced into schema
/// statements (keyspace names cannot be bound).
pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {

    #[test]
    fn core_stand_in_is_this_kind() {
        backend_core::testkit::kinds::assert_stand_in_matches(crate::KIND);
    }

    use super::*;

    fn read(lines: &[(&str, &str)]) -> Result<CassaConfig, CassaError> {
        CassaConfig::from_pool(&backend_core::testkit::pool_config(crate::KIND, lines))
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = read(&[]).expect("defaults");
        assert_eq!(c, CassaConfig::new("pool1"), "no keys read as the defaults");
        let local = vec![ServerAddr::new("127.0.0.1", 9042)];
        let seeds = (local, 8, "mqtt", true, true, Consistency::LocalQuorum);
        let read = (
            c.nodes.clone(),
            c.size,
            c.keyspace.as_str(),
            c.auto_reconnect,
            c.create_tables,
            c.consistency,
        );
        assert_eq!(read, seeds);
        assert_eq!(c.label(), "127.0.0.1:9042/mqtt");
    }

    #[test]
    fn the_seeds_keys_are_read() {
        // As a .conf file writes them.
        let conf = "\
            backend.ecql.pool1.nodes = 10.0.0.1:9042,10.0.0.2:9043
            backend.ecql.pool1.size = 2
            backend.ecql.pool1.auto_reconnect = 0
            backend.ecql.pool1.username = cassandra
            backend.ecql.pool1.password = pa55-w0rd
            backend.ecql.pool1.keyspace = mqtt_2
            backend.ecql.pool1.logger = info
            backend.ecql.pool1.consistency = one
            backend.ecql.pool1.request_timeout = 2s";
        let config = backend_core::Config::parse(conf).expect("a valid file");
        let c = CassaConfig::from_pool(&config.pools()["pool1"]).expect("valid");
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.nodes[1], ServerAddr::new("10.0.0.2", 9043));
        assert_eq!(c.size, 2);
        assert!(!c.auto_reconnect);
        assert_eq!(c.login.as_ref().map(|l| l.user.as_str()), Some("cassandra"));
        assert_eq!(c.keyspace, "mqtt_2");
        assert_eq!(c.consistency, Consistency::One);
        assert_eq!(c.request_timeout, Duration::from_secs(2));
        assert!(!format!("{c:?}").contains("pa55-w0rd"), "{c:?}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (lines, key) in [
            (vec![("nodes", "a:1,,b")], "nodes"),
            (vec![("nodes", "a:99999")], "nodes"),
            (vec![("keyspace", "mqtt; drop")], "keyspace"),
            (vec![("keyspace", "9lives")], "keyspace"),
            (vec![("password", "p")], "username"),
            (vec![("cacertfile", "/ca.pem")], "cacertfile"),
            (
                vec![("server_name_indication", "db")],
                "server_name_indication",
            ),
            (vec![("request_timeout", "0")], "request_timeout"),
        ] {
            let e = read(&lines).expect_err("invalid");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("backend.ecql.pool1.{key}")),
                "{text}"
            );
            assert!(!text.contains("\"p\""), "{text}");
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_keys_are_read() {
        let c = read(&[
            ("nodes", "db1.example:9142,db2.example:9142"),
            ("ssl", "true"),
            ("cacertfile", "/etc/ca.pem"),
        ])
        .expect("valid");
        let files = &c.tls.as_ref().expect("ssl on").files;
        assert_eq!(
            files.ca_cert_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(c.tls_server_name(), "db1.example");
        let c = read(&[
            ("nodes", "10.0.0.1,10.0.0.2"),
            ("ssl", "true"),
            ("server_name_indication", "cassandra.internal"),
        ])
        .expect("valid");
        assert_eq!(c.tls_server_name(), "cassandra.internal");
        assert!(read(&[]).expect("defaults").tls.is_none());
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("mqtt"));
        assert!(is_identifier("Mqtt_2"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("_x"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(&"a".repeat(49)));
    }

    /// `ssl` needs the `tls` feature, `Debug` hides the password, another
    /// kind's pool is refused.
    #[test]
    fn the_settings_every_backend_shares() {
        let tls = cfg!(feature = "tls");
        let read = CassaConfig::from_pool;
        backend_core::testkit::assert_reads_common_settings(crate::KIND, "username", read, tls);
    }
}
