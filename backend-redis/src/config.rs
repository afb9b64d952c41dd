//! [`RedisSettings`]: the typed settings of one pool, read from the pool's
//! `backend.redis.<pool>.*` keys ([`PoolConfig`]) and the global
//! `backend.redis.msg.expired_after` ([`Config`]).
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `type` | `single`, `sentinel` or `cluster` (Redis Cluster, feature `cluster`) | `sentinel` when `sentinel` is set, else `single` |
//! | `server` | `host:port`; with `sentinel`, the Sentinel address(es); with `cluster`, seed nodes; comma-separated | `127.0.0.1:6379` (Sentinel: port 26379) |
//! | `sentinel` | the Sentinel master name (`mymaster`) | none: a single server |
//! | `replica_acks` | with `cluster`: each write waits until this many replicas have it (`WAIT`), so a master failover loses no acknowledged write | 0 |
//! | `pool_size` | multiplexed connections, used round robin | 8 |
//! | `database` | the database number | 0 |
//! | `username`, `password` | ACL user / `AUTH` password (never printed) | none |
//! | `channel` | the SUB/UNSUB channel to listen to | none: no listener |
//! | `ssl` | TLS (`rediss://`) to the server and the Sentinels | false |
//! | `cacertfile`, `certfile`, `keyfile` | PEM files: the CA to trust (else the system's), the client certificate and key | none |
//!
//! ```
//! use backend_core::Config;
//! use backend_redis::RedisSettings;
//! let conf = Config::parse(r#"
//! backend.redis.pool1.server = 127.0.0.1:26379,127.0.0.1:26380
//! backend.redis.pool1.sentinel = mymaster
//! backend.redis.pool1.database = 1
//! backend.redis.pool1.password = s3cret
//! backend.redis.msg.expired_after = 3600
//! "#)?;
//! let s = RedisSettings::from_pool(&conf.pools()["pool1"], &conf)?;
//! assert_eq!(s.servers.len(), 2);
//! assert_eq!(s.sentinel.as_deref(), Some("mymaster"));
//! assert_eq!(s.msg_expired_after.as_secs(), 3600);
//! assert!(!format!("{s:?}").contains("s3cret"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::time::Duration;

use backend_core::backend::Capabilities;
use backend_core::config::{PoolConfig, Secret, Setting};
use backend_core::{BackendKind, CommonError, Config};

use crate::error::RedisError;

/// The port of a `server` written without one.
pub const DEFAULT_PORT: u16 = 6379;
/// The published crate's name, for errors about its features.
const CRATE: &str = "mqtt-storage-redis";

/// The port of a Sentinel `server` written without one.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;
/// Connections per pool when `pool_size` is not set (the seed's value).
pub const DEFAULT_POOL_SIZE: usize = 8;
/// How long connecting may take.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may wait for its reply.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a channel listener pings its subscription and, with Sentinel,
/// the master is looked up (besides the Sentinels' `+switch-master` events).
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);

pub use backend_core::config::ServerAddr;
use backend_core::config::{KeySpec, KeyType, KindSpec, StatementLanguage};

/// `backend.redis.*`: the keys this crate reads, with their defaults.
pub const KIND: BackendKind = BackendKind::declare(&KindSpec {
    name: "redis",
    pool_prefix: "redis",
    pool_keys: &[
        KeySpec::new("server", KeyType::Text).with_default("127.0.0.1:6379"),
        KeySpec::new("sentinel", KeyType::Text),
        KeySpec::new("pool_size", KeyType::Count).with_default("8"),
        KeySpec::new("database", KeyType::Int).with_default("0"),
        KeySpec::new("username", KeyType::Text),
        KeySpec::new("password", KeyType::Secret),
        KeySpec::new("channel", KeyType::Text),
        KeySpec::new("type", KeyType::OneOf(&["single", "sentinel", "cluster"]))
            .with_default("single"),
        KeySpec::new("replica_acks", KeyType::Natural).with_default("0"),
    ],
    global_keys: &[KeySpec::new("msg.expired_after", KeyType::Int).with_default("7200")],
    statements: Some(StatementLanguage::Commands),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_channel()
        .with_admin()
        .with_sweep(),
});
backend_core::register_kind!(KIND);

/// The default of `backend.redis.msg.expired_after`: two hours.
pub const DEFAULT_MSG_EXPIRY: Duration = Duration::from_secs(7200);

/// `backend.redis.msg.expired_after`, whole seconds; not set, or 0 or
/// less, is [`DEFAULT_MSG_EXPIRY`].
pub fn msg_expired_after(config: &Config) -> Duration {
    match config.global("msg.expired_after") {
        Some(Setting::Int(secs)) if *secs > 0 => Duration::from_secs(secs.unsigned_abs()),
        _ => DEFAULT_MSG_EXPIRY,
    }
}

/// TLS files; every one optional. Without `cacertfile` the system's trust
/// store is used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// `cacertfile`: PEM certificate(s) of the CA the server's certificate
    /// must chain to.
    pub cacertfile: Option<PathBuf>,
    /// `certfile`: PEM client certificate (mutual TLS); needs `keyfile`.
    pub certfile: Option<PathBuf>,
    /// `keyfile`: PEM private key of `certfile`.
    pub keyfile: Option<PathBuf>,
}

/// The settings of one Redis pool. `Debug` never shows the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// The pool's name (`pool1`), for errors and logs.
    pub pool: String,
    /// The server, or with [`Self::sentinel`] the Sentinels (at least one).
    pub servers: Vec<ServerAddr>,
    /// The Sentinel master name; `None` for a single server.
    pub sentinel: Option<String>,
    /// Redis Cluster (`type = cluster`): `servers` are seed nodes.
    pub cluster: bool,
    /// With `cluster`: replicas each write waits for (`WAIT`); 0 waits for
    /// none.
    pub replica_acks: u32,
    /// How many multiplexed connections the pool keeps (at least 1).
    pub pool_size: usize,
    /// The database number.
    pub database: i64,
    /// The ACL user name, if any.
    pub username: Option<String>,
    /// The password, if any.
    pub password: Option<Secret>,
    /// The SUB/UNSUB channel, if the broker listens to one.
    pub channel: Option<String>,
    /// TLS, when `ssl` is on.
    pub tls: Option<TlsSettings>,
    /// How long stored messages live (`backend.redis.msg.expired_after`).
    pub msg_expired_after: Duration,
    /// How long connecting may take.
    pub connection_timeout: Duration,
    /// How long one command may wait for its reply.
    pub response_timeout: Duration,
    /// How often a channel listener pings its subscription and, with
    /// Sentinel, the master is looked up (besides the Sentinels'
    /// `+switch-master` events, which are followed at once).
    pub check_interval: Duration,
}

impl RedisSettings {
    /// Settings for a single server at `server`, everything else default.
    ///
    /// ```
    /// let s = backend_redis::RedisSettings::new("pool1", backend_redis::config::ServerAddr::new("127.0.0.1", 6379));
    /// assert_eq!(s.pool_size, 8);
    /// assert_eq!(s.msg_expired_after.as_secs(), 7200);
    /// ```
    pub fn new(pool: impl Into<String>, server: ServerAddr) -> Self {
        RedisSettings {
            pool: pool.into(),
            servers: vec![server],
            sentinel: None,
            cluster: false,
            replica_acks: 0,
            pool_size: DEFAULT_POOL_SIZE,
            database: 0,
            username: None,
            password: None,
            channel: None,
            tls: None,
            msg_expired_after: DEFAULT_MSG_EXPIRY,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            check_interval: DEFAULT_CHECK_INTERVAL,
        }
    }

    /// Reads a pool's settings; `config` gives `msg.expired_after`.
    pub fn from_pool(pool: &PoolConfig, config: &Config) -> Result<Self, RedisError> {
        let name = pool.name().to_owned();
        let err = |key: &'static str, message: String| {
            RedisError::from(CommonError::config(pool, key, message))
        };
        CommonError::check_kind(crate::KIND, pool.kind())?;
        let sentinel = pool.text("sentinel").map(str::trim).map(str::to_owned);
        if sentinel.as_deref() == Some("") {
            return Err(err("sentinel", "the master name is empty".into()));
        }
        let kind = pool.text("type").unwrap_or(if sentinel.is_some() {
            "sentinel"
        } else {
            "single"
        });
        let cluster = kind == "cluster";
        match (kind, &sentinel) {
            ("sentinel", None) => {
                return Err(err(
                    "sentinel",
                    "is required with type = sentinel (the master name)".into(),
                ))
            }
            ("single" | "cluster", Some(_)) => {
                return Err(err(
                    "sentinel",
                    format!("is set, but type is {kind}: remove one of them"),
                ))
            }
            _ => {}
        }
        if cluster && !cfg!(feature = "cluster") {
            return Err(CommonError::feature_off(pool, "type", CRATE, "cluster").into());
        }
        let replica_acks = match pool.int("replica_acks") {
            None => 0,
            Some(n) if !cluster && n > 0 => {
                return Err(err(
                    "replica_acks",
                    format!("{n}: only type = cluster waits for replicas"),
                ))
            }
            Some(n) => u32::try_from(n)
                .map_err(|_| err("replica_acks", format!("{n} is not a replica count")))?,
        };
        if sentinel.is_some() && !cfg!(feature = "sentinel") {
            let off = CommonError::feature_off(pool, "sentinel", CRATE, "sentinel");
            return Err(off.into());
        }
        let default_port = if sentinel.is_some() {
            DEFAULT_SENTINEL_PORT
        } else {
            DEFAULT_PORT
        };
        let (servers, tls_from_scheme) = match pool.text("server") {
            Some(s) => parse_servers(s, default_port).map_err(|m| err("server", m))?,
            None => (vec![ServerAddr::new("127.0.0.1", default_port)], false),
        };
        if sentinel.is_none() && !cluster && servers.len() > 1 {
            return Err(err(
                "server",
                "several servers are only accepted with `sentinel` or type = cluster".into(),
            ));
        }
        let pool_size = match pool.int("pool_size") {
            None => DEFAULT_POOL_SIZE,
            Some(n) => usize::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| err("pool_size", format!("{n} is not a count of at least 1")))?,
        };
        let database = pool.int("database").unwrap_or(0);
        if database < 0 {
            return Err(err(
                "database",
                format!("{database} is negative; databases are numbered from 0"),
            ));
        }
        if cluster && database != 0 {
            return Err(err(
                "database",
                format!("{database}: Redis Cluster has database 0 only"),
            ));
        }
        let channel = pool.text("channel").map(str::to_owned);
        if channel.as_deref() == Some("") {
            return Err(err("channel", "the channel name is empty".into()));
        }
        let file = |key: &str| pool.text(key).map(PathBuf::from);
        let files = TlsSettings {
            cacertfile: file("cacertfile"),
            certfile: file("certfile"),
            keyfile: file("keyfile"),
        };
        let ssl = pool.bool("ssl").unwrap_or(tls_from_scheme);
        if tls_from_scheme && !ssl {
            return Err(err(
                "ssl",
                "is off, but `server` uses the rediss:// scheme".into(),
            ));
        }
        let tls = if ssl {
            if files.certfile.is_some() != files.keyfile.is_some() {
                return Err(err(
                    if files.certfile.is_some() {
                        "keyfile"
                    } else {
                        "certfile"
                    },
                    "certfile and keyfile go together (mutual TLS needs both)".into(),
                ));
            }
            Some(files)
        } else {
            if files != TlsSettings::default() {
                let key = if files.cacertfile.is_some() {
                    "cacertfile"
                } else if files.certfile.is_some() {
                    "certfile"
                } else {
                    "keyfile"
                };
                return Err(err(key, "is set, but `ssl` is off".into()));
            }
            None
        };
        if tls.is_some() && !cfg!(feature = "tls") {
            let key = if pool.bool("ssl").is_some() {
                "ssl"
            } else {
                "server"
            };
            return Err(CommonError::feature_off(pool, key, CRATE, "tls").into());
        }
        Ok(RedisSettings {
            pool: name.clone(),
            servers,
            sentinel,
            cluster,
            replica_acks,
            pool_size,
            database,
            username: pool.text("username").map(str::to_owned),
            password: pool.secret("password").cloned(),
            channel,
            tls,
            msg_expired_after: msg_expired_after(config),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            check_interval: DEFAULT_CHECK_INTERVAL,
        })
    }

    /// Where this pool connects, for messages: `host:port`, or the master
    /// name and the Sentinels.
    pub fn target(&self) -> String {
        let list = self
            .servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        if self.cluster {
            return format!("cluster {scheme}://{list}");
        }
        match &self.sentinel {
            Some(master) => format!("master `{master}` via sentinel(s) {scheme}://{list}"),
            None => format!("{scheme}://{list}/{}", self.database),
        }
    }

    /// `msg.expired_after` in whole seconds, at least 1 (for `EXPIRE`).
    pub(crate) fn expire_secs(&self) -> u64 {
        self.msg_expired_after.as_secs().max(1)
    }
}

/// Parses `server`: `host:port`, `[v6]:port` or `host`, comma-separated,
/// each optionally prefixed `redis://` or `rediss://` (which turns TLS on).
/// Returns the addresses and whether a `rediss://` scheme was used.
fn parse_servers(text: &str, default_port: u16) -> Result<(Vec<ServerAddr>, bool), String> {
    let mut out = Vec::new();
    let mut tls = false;
    for item in text.split(',') {
        let mut s = item.trim();
        if s.is_empty() {
            return Err(format!("`{text}` has an empty address"));
        }
        if let Some(rest) = s.strip_prefix("rediss://") {
            tls = true;
            s = rest;
        } else if let Some(rest) = s.strip_prefix("redis://") {
            s = rest;
        }
        if s.contains('@') {
            // Never echo the text: it may hold a password.
            return Err(
                "credentials in the address are not accepted; use `username` and `password`".into(),
            );
        }
        let s = s.strip_suffix('/').unwrap_or(s);
        if s.contains('/') {
            return Err(format!(
                "`{s}` has a path; use `database` for the database number"
            ));
        }
        if s.starts_with('/') {
            return Err(format!(
                "`{s}`: a Unix socket is not supported; use host:port"
            ));
        }
        out.push(ServerAddr::parse(s, default_port)?);
    }
    Ok((out, tls))
}

#[cfg(test)]
mod tests {

    #[test]
    fn core_stand_in_is_this_kind() {
        backend_core::testkit::kinds::assert_stand_in_matches(crate::KIND);
    }

    use super::*;

    fn pool(lines: &[(&str, &str)]) -> PoolConfig {
        backend_core::testkit::pool_config(crate::KIND, lines)
    }

    fn settings(lines: &[(&str, &str)]) -> Result<RedisSettings, RedisError> {
        RedisSettings::from_pool(&pool(lines), &Config::new(crate::KIND))
    }

    /// Built without a feature, its keys are configuration errors that
    /// say which feature to enable (the other way round, they are read).
    /// `ssl` and `tls` are among the shared checks.
    /// `ssl` needs the `tls` feature, `Debug` hides the password, another
    /// kind's pool is refused.
    #[test]
    fn the_settings_every_backend_shares() {
        let read = |p: &PoolConfig| RedisSettings::from_pool(p, &Config::new(crate::KIND));
        let tls = cfg!(feature = "tls");
        backend_core::testkit::assert_reads_common_settings(crate::KIND, "username", read, tls);
    }

    #[test]
    fn features_decide_sentinel_and_cluster() {
        use backend_core::testkit::assert_feature_decides;
        let sentinel = settings(&[("server", "127.0.0.1:26379"), ("sentinel", "mymaster")]);
        assert_feature_decides(sentinel, "sentinel", cfg!(feature = "sentinel"));
        let cluster = settings(&[("type", "cluster"), ("server", "127.0.0.1:30001")]);
        assert_feature_decides(cluster, "cluster", cfg!(feature = "cluster"));
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).expect("defaults");
        assert_eq!(s.servers, vec![ServerAddr::new("127.0.0.1", 6379)]);
        assert_eq!(s.pool_size, 8);
        assert_eq!(s.database, 0);
        assert!(s.tls.is_none() && s.sentinel.is_none() && s.channel.is_none());
        assert_eq!(s.expire_secs(), 7200);
        assert_eq!(s.target(), "redis://127.0.0.1:6379/0");
    }

    #[test]
    fn seed_pool() {
        let s = settings(&[
            ("server", "127.0.0.1:6379"),
            ("pool_size", "8"),
            ("database", "1"),
            ("channel", "mqtt_channel"),
            ("password", "public"),
        ])
        .expect("seed");
        assert_eq!(s.database, 1);
        assert_eq!(s.channel.as_deref(), Some("mqtt_channel"));
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("public"));
        assert!(!format!("{s:?}").contains("public"));
    }

    #[test]
    fn servers() {
        let p = |t| parse_servers(t, 6379);
        assert_eq!(
            p("h").expect("host"),
            (vec![ServerAddr::new("h", 6379)], false)
        );
        assert_eq!(
            p("rediss://[::1]:7000/").expect("v6"),
            (vec![ServerAddr::new("::1", 7000)], true)
        );
        assert_eq!(p(" a:1 , redis://b:2").expect("list").0.len(), 2);
        assert!(p("a:0").is_err());
        assert!(p("a:x").is_err());
        // A bare IPv6 address takes the default port, as in every backend.
        assert_eq!(
            p("::1").expect("bare IPv6").0,
            vec![ServerAddr::new("::1", 6379)]
        );
        assert!(p("a:1,,b").is_err());
        assert!(p("h:1/2").is_err());
        let e = p("redis://user:hunter2@h:1").expect_err("credentials");
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(ServerAddr::new("::1", 1).to_string(), "[::1]:1");
    }

    #[cfg(feature = "sentinel")]
    #[test]
    fn sentinel() {
        let s = settings(&[
            ("server", "10.0.0.1,10.0.0.2:26380"),
            ("sentinel", "mymaster"),
        ])
        .expect("sentinel");
        assert_eq!(
            s.servers,
            vec![
                ServerAddr::new("10.0.0.1", 26379),
                ServerAddr::new("10.0.0.2", 26380)
            ]
        );
        assert!(s.target().contains("master `mymaster`"));
        let e = settings(&[("server", "a:1,b:2")]).expect_err("two servers");
        assert!(e.to_string().contains("sentinel"), "{e}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls() {
        let s = settings(&[
            ("ssl", "true"),
            ("cacertfile", "/etc/ca.pem"),
            ("certfile", "c.pem"),
            ("keyfile", "k.pem"),
        ])
        .expect("tls");
        let t = s.tls.expect("tls on");
        assert_eq!(t.cacertfile, Some(PathBuf::from("/etc/ca.pem")));
        let s = settings(&[("server", "rediss://h:6380")]).expect("scheme");
        assert!(s.tls.is_some());
        assert!(s.target().starts_with("rediss://"));
        let e = settings(&[("ssl", "true"), ("certfile", "c.pem")]).expect_err("no key");
        assert!(e.to_string().contains("keyfile"), "{e}");
        let e = settings(&[("cacertfile", "ca.pem")]).expect_err("ssl off");
        assert!(e.to_string().contains("`ssl` is off"), "{e}");
        let e = settings(&[("server", "rediss://h"), ("ssl", "false")]).expect_err("contradiction");
        assert!(e.to_string().contains("rediss"), "{e}");
    }

    #[test]
    fn bad_values() {
        assert!(settings(&[("database", "-1")]).is_err());
        assert!(settings(&[("sentinel", " ")]).is_err());
        let other = PoolConfig::new(backend_core::testkit::kinds::MYSQL, "p");
        assert!(RedisSettings::from_pool(&other, &Config::new(crate::KIND)).is_err());
    }
}
