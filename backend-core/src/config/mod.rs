//! The EMQX backend configuration: the `.conf` format read exactly as the
//! seed writes it, and the same typed [`Config`] built in code or with serde.
//!
//! ```
//! use backend_core::{Config, BackendKind, Hook};
//! let conf = Config::parse(r#"
//! ## Redis Server
//! backend.redis.pool1.server = 127.0.0.1:6379
//! backend.redis.pool1.password = s3cret
//! backend.redis.hook.client.connected.1 = {"action": {"function": "on_client_connected"}, "pool": "pool1"}
//! "#)?;
//! assert_eq!(conf.kind(), BackendKind::Redis);
//! assert_eq!(conf.rules()[0].hook, Hook::ClientConnected);
//! assert!(!format!("{conf:?}").contains("s3cret"));
//! # Ok::<(), backend_core::ConfigError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use pool::parse_setting;
use rule::build_rule;

use crate::hook::Hook;
use crate::suggest::nearest;

mod db;
mod error;
mod limits;
mod parse;
mod pool;
mod rule;
mod server;

pub use db::{DbDefaults, DbSettings};
pub use error::{ConfigError, Problem, ProblemKind};
pub use limits::{parse_count, parse_duration, Limits};
pub use pool::{
    BackendKind, KeySpec, KeyType, Login, PoolConfig, Secret, Setting, StatementLanguage, TlsFiles,
};
pub use rule::{
    Action, ActionJson, Function, OfflineMode, OneOrMany, PayloadFormat, RawStatement, Rule,
    RuleJson, RuleSpec,
};
pub use server::ServerAddr;

/// A validated backend configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    kind: BackendKind,
    pools: BTreeMap<String, PoolConfig>,
    limits: Limits,
    msg_expired_after: Option<Duration>,
    topology: BTreeMap<String, i64>,
    rules: Vec<Rule>,
}

const MONGO_TOPOLOGY_KEYS: [&str; 11] = [
    "pool_size",
    "max_overflow",
    "overflow_ttl",
    "overflow_check_period",
    "local_threshold_ms",
    "connect_timeout_ms",
    "socket_timeout_ms",
    "server_selection_timeout_ms",
    "wait_queue_timeout_ms",
    "heartbeat_frequency_ms",
    "min_heartbeat_frequency_ms",
];

/// The default of `backend.redis.msg.expired_after`: two hours.
pub const DEFAULT_MSG_EXPIRY: Duration = Duration::from_secs(7200);

/// `max_returned_count` in a serde-built configuration: a number or
/// `"infinity"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CountSpec {
    /// A number.
    Number(usize),
    /// `"infinity"`.
    Word(String),
}

/// The serde (and code) form of a [`Config`]; deserialize a `Config`
/// directly to get it validated.
///
/// ```
/// use backend_core::Config;
/// let conf: Config = serde_json::from_str(r#"{
///   "kind": "pgsql",
///   "pools": {"pool1": {"server": "127.0.0.1:5432", "pool_size": 8, "password": "public"}},
///   "time_range": "2h",
///   "rules": [{"hook": "client.connected", "action": {"function": "on_client_connected"}, "pool": "pool1"}]
/// }"#).unwrap();
/// assert_eq!(conf.pools()["pool1"].int("pool_size"), Some(8));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// The backend kind.
    pub kind: BackendKind,
    /// Pools: name -> key -> value (string, number or boolean).
    #[serde(default)]
    pub pools: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// `max_returned_count`.
    #[serde(default)]
    pub max_returned_count: Option<CountSpec>,
    /// `time_range` (`2h`, `infinity`).
    #[serde(default)]
    pub time_range: Option<String>,
    /// Redis `msg.expired_after`, seconds; <= 0 means the default.
    #[serde(default)]
    pub msg_expired_after: Option<i64>,
    /// MongoDB `topology.*` options.
    #[serde(default)]
    pub topology: BTreeMap<String, i64>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

impl ConfigSpec {
    /// An empty spec for `kind`.
    pub fn new(kind: BackendKind) -> Self {
        ConfigSpec {
            kind,
            pools: BTreeMap::new(),
            max_returned_count: None,
            time_range: None,
            msg_expired_after: None,
            topology: BTreeMap::new(),
            rules: Vec::new(),
        }
    }
}

impl TryFrom<ConfigSpec> for Config {
    type Error = ConfigError;
    fn try_from(spec: ConfigSpec) -> Result<Config, ConfigError> {
        Config::from_spec(spec)
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
        let spec = ConfigSpec::deserialize(d)?;
        Config::from_spec(spec).map_err(serde::de::Error::custom)
    }
}

/// Collects problems while building a config.
struct Builder {
    kind: BackendKind,
    problems: Vec<Problem>,
    pools: BTreeMap<String, PoolConfig>,
    limits: Limits,
    msg_expired_after: Option<Duration>,
    topology: BTreeMap<String, i64>,
    /// Rules with their key and line, validated against pools at the end.
    rules: Vec<(String, Option<usize>, Hook, u32, RuleJson)>,
}

impl Builder {
    fn new(kind: BackendKind) -> Self {
        Builder {
            kind,
            problems: Vec::new(),
            pools: BTreeMap::new(),
            limits: Limits::default(),
            msg_expired_after: None,
            topology: BTreeMap::new(),
            rules: Vec::new(),
        }
    }

    fn problem(&mut self, line: Option<usize>, key: &str, kind: ProblemKind) {
        self.problems.push(Problem {
            line,
            key: key.to_owned(),
            kind,
        });
    }

    fn pool_setting(&mut self, line: Option<usize>, key: &str, pool: &str, name: &str, raw: &str) {
        match parse_setting(self.kind, name, raw) {
            Ok(setting) => {
                let kind = self.kind;
                self.pools
                    .entry(pool.to_owned())
                    .or_insert_with(|| PoolConfig::new(kind, pool))
                    .settings
                    .insert(name.to_owned(), (setting, line));
            }
            Err(kind) => self.problem(line, key, kind),
        }
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        let mut rules = Vec::new();
        let configured = self.pools.keys().cloned().collect::<Vec<_>>().join(", ");
        for (key, line, hook, index, json) in std::mem::take(&mut self.rules) {
            match build_rule(self.kind, hook, index, json, line) {
                Ok(rule) if !self.pools.contains_key(&rule.pool) => self.problem(
                    line,
                    &key,
                    ProblemKind::UnknownPool {
                        pool: rule.pool,
                        configured: configured.clone(),
                    },
                ),
                Ok(rule) => rules.push(rule),
                Err(kind) => self.problem(line, &key, kind),
            }
        }
        if !self.problems.is_empty() {
            self.problems.sort_by_key(|p| p.line);
            return Err(ConfigError {
                problems: self.problems,
            });
        }
        rules.sort_by_key(|r| (r.hook, r.index));
        Ok(Config {
            kind: self.kind,
            pools: self.pools,
            limits: self.limits,
            msg_expired_after: self.msg_expired_after,
            topology: self.topology,
            rules,
        })
    }
}

impl Config {
    /// An empty configuration for `kind`: no pools, no rules, no limits.
    pub fn new(kind: BackendKind) -> Self {
        Config {
            kind,
            pools: BTreeMap::new(),
            limits: Limits::default(),
            msg_expired_after: None,
            topology: BTreeMap::new(),
            rules: Vec::new(),
        }
    }

    /// Builds from the serde/code form, with the same checks as
    /// [`Config::parse`]; problems name the key a `.conf` file would use.
    pub fn from_spec(spec: ConfigSpec) -> Result<Config, ConfigError> {
        let kind = spec.kind;
        let mut b = Builder::new(kind);
        for (pool, settings) in &spec.pools {
            for (name, value) in settings {
                let key = format!("backend.{}.{pool}.{name}", kind.pool_prefix());
                let raw = match value {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(v) => v.to_string(),
                    _ => {
                        b.problem(
                            None,
                            &key,
                            ProblemKind::BadValue {
                                value: "(not a string, number or boolean)".into(),
                                expected: "a string, number or boolean".into(),
                            },
                        );
                        continue;
                    }
                };
                b.pool_setting(None, &key, pool, name, &raw);
            }
            b.pools
                .entry(pool.clone())
                .or_insert_with(|| PoolConfig::new(kind, pool.clone()));
        }
        let global = |name: &str| format!("backend.{}.{name}", kind.name());
        match &spec.max_returned_count {
            Some(CountSpec::Number(n)) => b.limits.max_returned_count = Some(*n),
            Some(CountSpec::Word(w)) => match parse_count(w) {
                Ok(n) => b.limits.max_returned_count = n,
                Err(e) => b.problem(
                    None,
                    &global("max_returned_count"),
                    ProblemKind::BadLimit(e),
                ),
            },
            None => {}
        }
        if let Some(t) = &spec.time_range {
            match parse_duration(t) {
                Ok(d) => b.limits.time_range = d,
                Err(e) => b.problem(None, &global("time_range"), ProblemKind::BadLimit(e)),
            }
        }
        if let Some(secs) = spec.msg_expired_after {
            if kind == BackendKind::Redis {
                b.msg_expired_after = Some(expiry_from_secs(secs));
            } else {
                b.problem(
                    None,
                    &global("msg.expired_after"),
                    not_for_kind(kind, "redis"),
                );
            }
        }
        for (name, value) in &spec.topology {
            let key = format!("backend.mongo.topology.{name}");
            if kind != BackendKind::Mongo {
                b.problem(None, &key, not_for_kind(kind, "mongo"));
            } else if MONGO_TOPOLOGY_KEYS.contains(&name.as_str()) {
                b.topology.insert(name.clone(), *value);
            } else {
                b.problem(None, &key, unknown_among(name, &MONGO_TOPOLOGY_KEYS));
            }
        }
        let mut used: HashMap<(Hook, u32), ()> = HashMap::new();
        let mut next: HashMap<Hook, u32> = HashMap::new();
        for r in &spec.rules {
            if let Some(i) = r.index {
                let n = next.entry(r.hook).or_insert(0);
                *n = (*n).max(i);
            }
        }
        for r in spec.rules {
            let index = match r.index {
                Some(i) => i,
                None => {
                    let n = next.entry(r.hook).or_insert(0);
                    *n += 1;
                    *n
                }
            };
            let key = format!("backend.{}.hook.{}.{index}", kind.name(), r.hook);
            if used.insert((r.hook, index), ()).is_some() {
                b.problem(None, &key, ProblemKind::Duplicate { first_line: 0 });
                continue;
            }
            b.rules.push((key, None, r.hook, index, r.rule));
        }
        b.finish()
    }

    /// The backend kind.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// The pools by name.
    pub fn pools(&self) -> &BTreeMap<String, PoolConfig> {
        &self.pools
    }

    /// `max_returned_count` and `time_range`.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Redis `msg.expired_after`; [`DEFAULT_MSG_EXPIRY`] unless set above 0.
    pub fn msg_expired_after(&self) -> Duration {
        self.msg_expired_after.unwrap_or(DEFAULT_MSG_EXPIRY)
    }

    /// MongoDB `topology.*` options.
    pub fn topology(&self) -> &BTreeMap<String, i64> {
        &self.topology
    }

    /// The rules, in the order a broker runs them: by hook, then by `<n>`.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Adds a pool (replacing one of the same name).
    pub fn with_pool(mut self, pool: PoolConfig) -> Self {
        self.pools.insert(pool.name.clone(), pool);
        self
    }

    /// Sets the fetch limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

fn expiry_from_secs(secs: i64) -> Duration {
    if secs <= 0 {
        DEFAULT_MSG_EXPIRY
    } else {
        Duration::from_secs(secs.unsigned_abs())
    }
}

fn not_for_kind(kind: BackendKind, only: &str) -> ProblemKind {
    ProblemKind::NotOffered {
        what: "this setting".into(),
        kind,
        hint: Some(format!("it applies to {only} only")),
    }
}

fn unknown_among(name: &str, known: &[&str]) -> ProblemKind {
    ProblemKind::UnknownKey {
        suggestion: nearest(name, known.iter().copied()).map(str::to_owned),
    }
}

#[cfg(test)]
mod tests;
