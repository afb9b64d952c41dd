//! The EMQX backend configuration: the `.conf` format read exactly as the
//! seed writes it, and the same typed [`Config`] built in code or with serde.
//!
//! ```
//! use backend_core::{Config, Hook};
//! let conf = Config::parse(r#"
//! ## Redis Server
//! backend.redis.pool1.server = 127.0.0.1:6379
//! backend.redis.pool1.password = s3cret
//! backend.redis.hook.client.connected.1 = {"action": {"function": "on_client_connected"}, "pool": "pool1"}
//! "#)?;
//! assert_eq!(conf.kind().name(), "redis");
//! assert_eq!(conf.rules()[0].hook, Hook::ClientConnected);
//! assert!(!format!("{conf:?}").contains("s3cret"));
//! # Ok::<(), backend_core::ConfigError>(())
//! ```

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use pool::{parse_setting, parse_value};
use rule::build_rule;

use crate::hook::Hook;
use crate::suggest::nearest;

mod db;
mod error;
mod kind;
mod limits;
mod parse;
mod pool;
mod rule;
mod server;

pub use db::{DbDefaults, DbSettings};
pub use error::{ConfigError, Problem, ProblemKind};
#[doc(hidden)]
pub use kind::{__inventory, KindRegistration};
pub use kind::{BackendKind, KindSpec, COMMON_POOL_KEYS};
pub use limits::{parse_count, parse_duration, Limits};
pub use pool::{KeySpec, KeyType, Login, PoolConfig, Secret, Setting, StatementLanguage, TlsFiles};
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
    globals: BTreeMap<String, (Setting, Option<usize>)>,
    rules: Vec<Rule>,
}

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
    /// The kind's own global keys (see [`KindSpec::global_keys`]), by
    /// their name after `backend.<name>.`: `{"msg.expired_after": 3600}`.
    #[serde(default)]
    pub globals: BTreeMap<String, serde_json::Value>,
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
            globals: BTreeMap::new(),
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
    globals: BTreeMap<String, (Setting, Option<usize>)>,
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
            globals: BTreeMap::new(),
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

    /// A global key declared by the kind (`name` after `backend.<kind>.`).
    fn global_setting(&mut self, line: Option<usize>, key: &str, name: &str, raw: &str) {
        let Some(spec) = self.kind.global_key(name) else {
            let kind = self.kind;
            let known = kind.spec().global_keys.iter().map(|k| k.name);
            self.problem(line, key, unknown_among(name, known));
            return;
        };
        match parse_value(spec, raw) {
            Ok(setting) => {
                self.globals.insert(name.to_owned(), (setting, line));
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
            globals: self.globals,
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
            globals: BTreeMap::new(),
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
                let Some(raw) = json_scalar(value) else {
                    b.problem(None, &key, not_scalar());
                    continue;
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
        for (name, value) in &spec.globals {
            let key = global(name);
            match json_scalar(value) {
                Some(raw) => b.global_setting(None, &key, name, &raw),
                None => b.problem(None, &key, not_scalar()),
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

    /// A global key the kind declares (`msg.expired_after`), if given.
    pub fn global(&self, name: &str) -> Option<&Setting> {
        self.globals.get(name).map(|(s, _)| s)
    }

    /// The `.conf` line a global key came from.
    pub fn global_line(&self, name: &str) -> Option<usize> {
        self.globals.get(name).and_then(|(_, l)| *l)
    }

    /// Every global key given, by name (`topology.pool_size`).
    pub fn globals(&self) -> impl Iterator<Item = (&str, &Setting)> {
        self.globals.iter().map(|(k, (s, _))| (k.as_str(), s))
    }

    /// Sets global key `name` from its text form, checked like a `.conf`
    /// line.
    pub fn with_global(mut self, name: &str, value: &str) -> Result<Self, ConfigError> {
        let key = format!("backend.{}.{name}", self.kind.name());
        let mut b = Builder::new(self.kind);
        b.global_setting(None, &key, name, value);
        if !b.problems.is_empty() {
            return Err(ConfigError {
                problems: b.problems,
            });
        }
        self.globals.append(&mut b.globals);
        Ok(self)
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

/// A JSON scalar as the text a `.conf` line would give.
fn json_scalar(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(v) => Some(v.to_string()),
        _ => None,
    }
}

fn not_scalar() -> ProblemKind {
    ProblemKind::BadValue {
        value: "(not a string, number or boolean)".into(),
        expected: "a string, number or boolean".into(),
    }
}

fn unknown_among<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> ProblemKind {
    ProblemKind::UnknownKey {
        suggestion: nearest(name, known).map(str::to_owned),
    }
}

#[cfg(test)]
mod tests;
