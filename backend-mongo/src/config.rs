//! The pool keys (`backend.mongo.<pool>.*`) and `backend.mongo.topology.*`
//! options, mapped onto the driver's [`ClientOptions`]. See the README's
//! configuration table for every key and what it becomes.

use std::fmt;
use std::time::Duration;

use backend_core::backend::Capabilities;
use backend_core::config::{PoolConfig, ServerAddr, Setting};
use backend_core::{BackendKind, CommonError, Config};
use mongodb::options::{
    Acknowledgment, ClientOptions, Credential, ReadPreference, SelectionCriteria, ServerAddress,
    Tls, TlsOptions, WriteConcern,
};

use crate::error::MongoError;
use backend_core::config::{KeySpec, KeyType, KindSpec};

/// `backend.mongo.*`: the keys this crate reads, with their defaults.
pub const KIND: BackendKind = BackendKind::declare(&KindSpec {
    name: "mongo",
    pool_prefix: "mongo",
    pool_keys: &[
        KeySpec::new(
            "type",
            KeyType::OneOf(&["single", "unknown", "sharded", "rs"]),
        )
        .with_default("single"),
        KeySpec::new("rs_set_name", KeyType::Text),
        KeySpec::new("server", KeyType::Text).with_default("127.0.0.1:27017"),
        KeySpec::new("c_pool_size", KeyType::Count),
        KeySpec::new("database", KeyType::Text).with_default("mqtt"),
        KeySpec::new("login", KeyType::Text),
        KeySpec::new("password", KeyType::Secret),
        KeySpec::new("auth_source", KeyType::Text),
        KeySpec::new("w_mode", KeyType::OneOf(&["safe", "unsafe"])).with_default("safe"),
        KeySpec::new("r_mode", KeyType::OneOf(&["master", "slave_ok"])).with_default("master"),
    ],
    global_keys: &[
        KeySpec::new("topology.pool_size", KeyType::Int),
        KeySpec::new("topology.max_overflow", KeyType::Int),
        KeySpec::new("topology.overflow_ttl", KeyType::Int),
        KeySpec::new("topology.overflow_check_period", KeyType::Int),
        KeySpec::new("topology.local_threshold_ms", KeyType::Int),
        KeySpec::new("topology.connect_timeout_ms", KeyType::Int),
        KeySpec::new("topology.socket_timeout_ms", KeyType::Int),
        KeySpec::new("topology.server_selection_timeout_ms", KeyType::Int),
        KeySpec::new("topology.wait_queue_timeout_ms", KeyType::Int),
        KeySpec::new("topology.heartbeat_frequency_ms", KeyType::Int),
        KeySpec::new("topology.min_heartbeat_frequency_ms", KeyType::Int),
    ],
    statements: None,
    capabilities: Capabilities::NONE
        .with_payload_format()
        .with_admin()
        .with_sweep(),
});
backend_core::register_kind!(KIND);

/// The default MongoDB port.
pub const DEFAULT_PORT: u16 = 27017;

/// The settings of one pool, ready for the driver.
#[derive(Clone)]
pub struct MongoConfig {
    /// The pool's name (`pool1`).
    pub pool: String,
    /// The database (`database`, default `mqtt`).
    pub database: String,
    /// The driver's options (hosts, pool size, credentials, TLS, ...).
    pub options: ClientOptions,
    /// Topology keys that have no driver equivalent and were ignored.
    pub ignored_topology: Vec<String>,
    /// `ssl = true` and its files, applied at connect.
    pub tls: Option<backend_core::config::TlsFiles>,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the options: they hold the credential.
        f.debug_struct("MongoConfig")
            .field("pool", &self.pool)
            .field("server", &self.label())
            .field("credential", &self.options.credential.is_some())
            .finish_non_exhaustive()
    }
}

impl MongoConfig {
    /// `host:port,host:port/database`, without credentials.
    pub fn label(&self) -> String {
        let hosts: Vec<String> = self.options.hosts.iter().map(|h| h.to_string()).collect();
        format!("{}/{}", hosts.join(","), self.database)
    }

    /// Reads the pool's keys and the configuration's `topology.*` options.
    pub fn from_pool(pool: &PoolConfig, config: &Config) -> Result<MongoConfig, MongoError> {
        CommonError::check_kind(crate::KIND, pool.kind())?;
        let name = pool.name().to_owned();
        let err = |key: &'static str, problem: String| {
            MongoError::from(CommonError::config(pool, key, problem))
        };
        let mut o = ClientOptions::default();
        let server = pool.text("server").unwrap_or("127.0.0.1:27017");
        let addrs = ServerAddr::parse_list(server, DEFAULT_PORT).map_err(|e| err("server", e))?;
        if addrs.is_empty() {
            return Err(err("server", "no server given".into()));
        }
        if let Some(a) = addrs.iter().find(|a| a.is_socket()) {
            return Err(err(
                "server",
                format!(
                    "`{}`: Unix sockets are not supported by this backend",
                    a.host
                ),
            ));
        }
        o.hosts = addrs
            .into_iter()
            .map(|a| ServerAddress::Tcp {
                host: a.host,
                port: Some(a.port),
            })
            .collect();
        match pool.text("type").unwrap_or("single") {
            "single" => {
                if o.hosts.len() != 1 {
                    return Err(err(
                        "type",
                        format!(
                            "`single` takes one server, `server` lists {}",
                            o.hosts.len()
                        ),
                    ));
                }
                o.direct_connection = Some(true);
            }
            "rs" => {
                let Some(set) = pool.text("rs_set_name").filter(|s| !s.is_empty()) else {
                    return Err(err(
                        "rs_set_name",
                        "type = rs needs the replica set's name".into(),
                    ));
                };
                o.repl_set_name = Some(set.to_owned());
            }
            // sharded: a mongos list; unknown: let the driver discover.
            _ => {}
        }
        if pool.text("type") != Some("rs") {
            if let Some(set) = pool.text("rs_set_name").filter(|s| !s.is_empty()) {
                o.repl_set_name = Some(set.to_owned());
            }
        }
        if let Some(n) = pool.int("c_pool_size") {
            let n = u32::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| err("c_pool_size", format!("{n} is not a pool size (1 or more)")))?;
            o.max_pool_size = Some(n);
        }
        let database = pool.text("database").unwrap_or("mqtt").to_owned();
        if database.is_empty() || database.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
            return Err(err(
                "database",
                format!("`{database}` is not a MongoDB database name"),
            ));
        }
        if let Some(login) = pool.login("login").map_err(|(k, p)| err(k, p))? {
            // The seed: "Default: mqtt", i.e. the database.
            let source = pool.text("auth_source").unwrap_or(&database).to_owned();
            o.credential = Some(
                Credential::builder()
                    .username(login.user)
                    .password(login.password.map(|s| s.expose().to_owned()))
                    .source(source)
                    .build(),
            );
        }
        o.write_concern = Some(match pool.text("w_mode").unwrap_or("safe") {
            "unsafe" => WriteConcern::builder().w(Acknowledgment::Nodes(0)).build(),
            _ => WriteConcern::builder().w(Acknowledgment::Nodes(1)).build(),
        });
        o.selection_criteria = Some(SelectionCriteria::ReadPreference(
            match pool.text("r_mode").unwrap_or("master") {
                "slave_ok" => ReadPreference::SecondaryPreferred { options: None },
                _ => ReadPreference::Primary,
            },
        ));
        // TLS: backend-core's one trust policy, applied at connect (see
        // `crate::tls`); here only the keys are checked.
        // The driver's own form, one PEM file holding the certificate and
        // its key, may be given as `certfile` alone.
        let cert_only = pool.bool("ssl").unwrap_or(false)
            && pool.text("certfile").is_some_and(|s| !s.is_empty())
            && pool.text("keyfile").is_none_or(str::is_empty);
        let tls = match pool.tls_files() {
            Err(("keyfile", _)) if cert_only => {
                pool.text("certfile")
                    .map(|c| backend_core::config::TlsFiles {
                        ca_cert_file: pool
                            .text("cacertfile")
                            .filter(|s| !s.is_empty())
                            .map(Into::into),
                        cert_file: Some(c.into()),
                        key_file: Some(c.into()),
                    })
            }
            other => other.map_err(|(key, problem)| err(key, problem))?,
        };
        if tls.is_some() {
            o.tls = Some(Tls::Enabled(TlsOptions::default()));
        }
        let mut ignored = Vec::new();
        let topology = config.globals().filter_map(|(key, value)| {
            let key = key.strip_prefix("topology.")?;
            match value {
                Setting::Int(v) => Some((key, *v)),
                _ => None,
            }
        });
        for (key, value) in topology {
            let ms = || Duration::from_millis(u64::try_from(value).unwrap_or(0));
            match key {
                "pool_size" => {
                    o.min_pool_size = u32::try_from(value).ok();
                }
                "local_threshold_ms" => o.local_threshold = Some(ms()),
                "connect_timeout_ms" => o.connect_timeout = Some(ms()),
                "server_selection_timeout_ms" => o.server_selection_timeout = Some(ms()),
                "heartbeat_frequency_ms" => o.heartbeat_freq = Some(ms()),
                // max_overflow, overflow_ttl, overflow_check_period (poolboy),
                // socket_timeout_ms, wait_queue_timeout_ms,
                // min_heartbeat_frequency_ms: no driver equivalent.
                other => ignored.push(other.to_owned()),
            }
        }
        if let (Some(min), Some(max)) = (o.min_pool_size, o.max_pool_size) {
            if min > max {
                o.min_pool_size = Some(max);
            }
        }
        o.app_name = Some("mqtt-backend-mongo".into());
        Ok(MongoConfig {
            pool: name,
            database,
            options: o,
            ignored_topology: ignored,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn core_stand_in_is_this_kind() {
        backend_core::testkit::kinds::assert_stand_in_matches(crate::KIND);
    }

    use super::*;

    /// `ssl` is always built in, `Debug` hides the password, another
    /// kind's pool is refused.
    #[test]
    fn the_settings_every_backend_shares() {
        let read = |p: &PoolConfig| MongoConfig::from_pool(p, &Config::new(crate::KIND));
        backend_core::testkit::assert_reads_common_settings(crate::KIND, "login", read, true);
    }
}
