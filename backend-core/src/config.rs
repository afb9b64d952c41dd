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
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::hook::Hook;
use crate::suggest::nearest;
use crate::template::{Placeholders, StatementTemplate, Template, TemplateError};
use crate::topic::{validate_filter, TopicError};

/// Which database a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// `backend.redis.*`
    Redis,
    /// `backend.mysql.*`
    Mysql,
    /// `backend.pgsql.*`
    Pgsql,
    /// `backend.mongo.*`
    Mongo,
    /// `backend.cassa.*` (rules, globals) and `backend.ecql.*` (pools).
    Cassa,
}

impl BackendKind {
    /// Every kind.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Redis,
        BackendKind::Mysql,
        BackendKind::Pgsql,
        BackendKind::Mongo,
        BackendKind::Cassa,
    ];

    /// The name used in rule keys (`backend.<name>.hook.`).
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Redis => "redis",
            BackendKind::Mysql => "mysql",
            BackendKind::Pgsql => "pgsql",
            BackendKind::Mongo => "mongo",
            BackendKind::Cassa => "cassa",
        }
    }

    /// The prefix of pool keys (`backend.<prefix>.<pool>.<key>`): the name,
    /// except Cassandra's `ecql`.
    pub const fn pool_prefix(self) -> &'static str {
        match self {
            BackendKind::Cassa => "ecql",
            other => other.name(),
        }
    }

    /// The action key of raw statements (`sql`, `commands`, `cql`) and how
    /// they mark parameters; MongoDB has none.
    pub const fn statements(self) -> Option<StatementLanguage> {
        match self {
            BackendKind::Redis => Some(StatementLanguage::Commands),
            BackendKind::Mysql => Some(StatementLanguage::Sql(Placeholders::Question)),
            BackendKind::Pgsql => Some(StatementLanguage::Sql(Placeholders::Numbered)),
            BackendKind::Cassa => Some(StatementLanguage::Cql),
            BackendKind::Mongo => None,
        }
    }

    /// The pool keys this kind accepts.
    pub fn pool_keys(self) -> &'static [KeySpec] {
        use KeyType::*;
        const TLS: [KeySpec; 4] = [
            KeySpec::new("ssl", Bool),
            KeySpec::new("cacertfile", Text),
            KeySpec::new("certfile", Text),
            KeySpec::new("keyfile", Text),
        ];
        macro_rules! keys {
            ($($k:literal => $t:expr),* $(,)?) => {{
                const K: &[KeySpec] = &[$(KeySpec::new($k, $t),)* TLS[0], TLS[1], TLS[2], TLS[3]];
                K
            }};
        }
        match self {
            BackendKind::Redis => keys! {
                "server" => Text, "sentinel" => Text, "pool_size" => Count,
                "database" => Int, "username" => Text, "password" => Secret, "channel" => Text,
            },
            BackendKind::Mysql => keys! {
                "server" => Text, "pool_size" => Count, "user" => Text,
                "password" => Secret, "database" => Text, "create_tables" => Bool,
            },
            BackendKind::Pgsql => keys! {
                "server" => Text, "pool_size" => Count, "username" => Text,
                "password" => Secret, "database" => Text, "create_tables" => Bool,
            },
            BackendKind::Mongo => keys! {
                "type" => OneOf(&["single", "unknown", "sharded", "rs"]),
                "rs_set_name" => Text, "server" => Text, "c_pool_size" => Count,
                "database" => Text, "login" => Text, "password" => Secret,
                "auth_source" => Text, "w_mode" => OneOf(&["safe", "unsafe"]),
                "r_mode" => OneOf(&["master", "slave_ok"]),
            },
            BackendKind::Cassa => keys! {
                "nodes" => Text, "size" => Count, "auto_reconnect" => Bool,
                "username" => Text, "password" => Secret, "keyspace" => Text,
                "logger" => OneOf(&["debug", "info", "notice", "warning", "error", "critical"]),
                "create_tables" => Bool,
            },
        }
    }

    fn from_prefix(s: &str) -> Option<(BackendKind, bool)> {
        match s {
            "ecql" => Some((BackendKind::Cassa, true)),
            _ => BackendKind::ALL
                .into_iter()
                .find(|k| k.name() == s)
                .map(|k| (k, false)),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The raw-statement language of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementLanguage {
    /// `"sql"`: MySQL (`?`) or PostgreSQL (`$n`).
    Sql(Placeholders),
    /// `"commands"`: Redis.
    Commands,
    /// `"cql"`: Cassandra (`?`).
    Cql,
}

impl StatementLanguage {
    /// The action key.
    pub const fn key(self) -> &'static str {
        match self {
            StatementLanguage::Sql(_) => "sql",
            StatementLanguage::Commands => "commands",
            StatementLanguage::Cql => "cql",
        }
    }

    /// Compiles a template into this language's statement.
    pub fn compile(self, t: &Template) -> Result<StatementTemplate, TemplateError> {
        match self {
            StatementLanguage::Sql(p) => t.to_query(p).map(StatementTemplate::Query),
            StatementLanguage::Cql => t
                .to_query(Placeholders::Question)
                .map(StatementTemplate::Query),
            StatementLanguage::Commands => t.to_command().map(StatementTemplate::Command),
        }
    }
}

/// One accepted pool key and the type of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// The key (the part after `backend.<kind>.<pool>.`).
    pub name: &'static str,
    /// Its value type.
    pub ty: KeyType,
}

impl KeySpec {
    const fn new(name: &'static str, ty: KeyType) -> Self {
        KeySpec { name, ty }
    }
}

/// The type of a pool key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// Any text.
    Text,
    /// Text never printed.
    Secret,
    /// An integer.
    Int,
    /// An integer of at least 1.
    Count,
    /// `true`/`false`/`on`/`off`/`1`/`0`.
    Bool,
    /// One of a few words.
    OneOf(&'static [&'static str]),
}

/// A password or other secret: compared and used, never printed.
///
/// ```
/// let s = backend_core::config::Secret::new("public");
/// assert_eq!(s.expose(), "public");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for handing to a driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A typed pool setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    /// Text.
    Text(String),
    /// A secret.
    Secret(Secret),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// The settings of one connection pool (`backend.<kind>.<pool>.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    name: String,
    kind: BackendKind,
    settings: BTreeMap<String, (Setting, Option<usize>)>,
}

impl PoolConfig {
    /// An empty pool of `kind` called `name`; backends apply their defaults.
    pub fn new(kind: BackendKind, name: impl Into<String>) -> Self {
        PoolConfig {
            name: name.into(),
            kind,
            settings: BTreeMap::new(),
        }
    }

    /// Sets `key` from its text form, checked like a `.conf` line.
    ///
    /// ```
    /// use backend_core::{config::PoolConfig, BackendKind};
    /// let mut p = PoolConfig::new(BackendKind::Redis, "pool1");
    /// p.set("pool_size", "8")?;
    /// assert_eq!(p.int("pool_size"), Some(8));
    /// assert!(p.set("pool_size", "eight").is_err());
    /// assert!(p.set("servre", "x").unwrap_err().to_string().contains("did you mean `server`"));
    /// # Ok::<(), backend_core::ConfigError>(())
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self, ConfigError> {
        let full = format!("backend.{}.{}.{key}", self.kind.pool_prefix(), self.name);
        let setting = parse_setting(self.kind, key, value)
            .map_err(|kind| ConfigError::one(None, full, kind))?;
        self.settings.insert(key.to_owned(), (setting, None));
        Ok(self)
    }

    /// The pool's name (`pool1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend kind.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// A setting, if given.
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.get(key).map(|(s, _)| s)
    }

    /// The `.conf` line a setting came from.
    pub fn line(&self, key: &str) -> Option<usize> {
        self.settings.get(key).and_then(|(_, l)| *l)
    }

    /// A text setting.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Setting::Text(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer setting.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Some(Setting::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// A boolean setting.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Some(Setting::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A secret setting.
    pub fn secret(&self, key: &str) -> Option<&Secret> {
        match self.get(key) {
            Some(Setting::Secret(s)) => Some(s),
            _ => None,
        }
    }
}

fn parse_setting(kind: BackendKind, key: &str, raw: &str) -> Result<Setting, ProblemKind> {
    let spec = kind
        .pool_keys()
        .iter()
        .find(|k| k.name == key)
        .ok_or_else(|| ProblemKind::UnknownKey {
            suggestion: nearest(key, kind.pool_keys().iter().map(|k| k.name)).map(str::to_owned),
        })?;
    let raw = unquote(raw);
    let bad = |expected: &str| ProblemKind::BadValue {
        value: if spec.ty == KeyType::Secret {
            "***".into()
        } else {
            raw.to_owned()
        },
        expected: expected.to_owned(),
    };
    Ok(match spec.ty {
        KeyType::Text => Setting::Text(raw.to_owned()),
        KeyType::Secret => Setting::Secret(Secret::new(raw)),
        KeyType::Int => Setting::Int(raw.parse().map_err(|_| bad("an integer"))?),
        KeyType::Count => match raw.parse::<i64>() {
            Ok(n) if n >= 1 => Setting::Int(n),
            _ => return Err(bad("a whole number of at least 1")),
        },
        KeyType::Bool => Setting::Bool(match raw {
            "true" | "on" | "1" => true,
            "false" | "off" | "0" => false,
            _ => return Err(bad("true or false")),
        }),
        KeyType::OneOf(words) => {
            if words.contains(&raw) {
                Setting::Text(raw.to_owned())
            } else {
                return Err(bad(&format!("one of {}", words.join(", "))));
            }
        }
    })
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// How many offline messages one fetch may return, and how old they may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `max_returned_count`: the newest N are returned; `None` is `infinity`.
    pub max_returned_count: Option<usize>,
    /// `time_range`: messages older than this are not returned; `None` is
    /// `infinity`.
    pub time_range: Option<Duration>,
}

/// Parses a duration as the seed writes them: `2h`, `30m`, `45s`, `1d`, or
/// `infinity` (`None`).
///
/// ```
/// use std::time::Duration;
/// use backend_core::config::parse_duration;
/// assert_eq!(parse_duration("2h"), Ok(Some(Duration::from_secs(7200))));
/// assert_eq!(parse_duration("infinity"), Ok(None));
/// assert!(parse_duration("2 hours").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let s = unquote(s.trim());
    if s == "infinity" {
        return Ok(None);
    }
    let err =
        || format!("bad duration `{s}`: expected a number with d, h, m or s (`2h`), or `infinity`");
    let unit = s.chars().last().ok_or_else(err)?;
    let secs_per = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(err()),
    };
    let n: u64 = s[..s.len() - 1].parse().map_err(|_| err())?;
    n.checked_mul(secs_per)
        .map(|secs| Some(Duration::from_secs(secs)))
        .ok_or_else(err)
}

/// Parses `max_returned_count`: a whole number, or `infinity` (`None`).
pub fn parse_count(s: &str) -> Result<Option<usize>, String> {
    let s = unquote(s.trim());
    if s == "infinity" {
        return Ok(None);
    }
    match s.parse::<usize>() {
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(format!(
            "bad number `{s}`: expected a whole number or `infinity`"
        )),
    }
}

/// A built-in function a rule can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `on_client_connected`: record the client online.
    ClientConnected,
    /// `on_client_disconnected`: record the client offline.
    ClientDisconnected,
    /// `on_subscribe_lookup` (also `on_subscription_lookup`): load the
    /// client's stored subscriptions.
    SubscribeLookup,
    /// `on_message_publish`: store a QoS 1/2 message.
    MessagePublish,
    /// `on_message_retain`: store a retained message.
    MessageRetain,
    /// `on_retain_delete`: delete a topic's retained message.
    RetainDelete,
    /// `on_retain_lookup`: return the retained messages matching a filter.
    RetainLookup,
    /// `on_message_fetch[_for_queue|_for_pubsub]`: return offline messages.
    MessageFetch(OfflineMode),
    /// `on_message_acked[_for_queue|_for_pubsub]`: record an ack.
    MessageAcked(OfflineMode),
}

/// How offline messages are shared among subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfflineMode {
    /// One-to-one: an ack deletes the message for everyone.
    Queue,
    /// One-to-many: each subscriber has its own read position.
    Pubsub,
}

impl Function {
    const NAMES: [(&'static str, Function); 14] = [
        ("on_client_connected", Function::ClientConnected),
        ("on_client_disconnected", Function::ClientDisconnected),
        ("on_subscribe_lookup", Function::SubscribeLookup),
        ("on_subscription_lookup", Function::SubscribeLookup),
        ("on_message_publish", Function::MessagePublish),
        ("on_message_retain", Function::MessageRetain),
        ("on_retain_delete", Function::RetainDelete),
        ("on_retain_lookup", Function::RetainLookup),
        (
            "on_message_fetch",
            Function::MessageFetch(OfflineMode::Pubsub),
        ),
        (
            "on_message_fetch_for_pubsub",
            Function::MessageFetch(OfflineMode::Pubsub),
        ),
        (
            "on_message_fetch_for_queue",
            Function::MessageFetch(OfflineMode::Queue),
        ),
        (
            "on_message_acked",
            Function::MessageAcked(OfflineMode::Pubsub),
        ),
        (
            "on_message_acked_for_pubsub",
            Function::MessageAcked(OfflineMode::Pubsub),
        ),
        (
            "on_message_acked_for_queue",
            Function::MessageAcked(OfflineMode::Queue),
        ),
    ];

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Function::MessageFetch(OfflineMode::Queue) => "on_message_fetch_for_queue",
            Function::MessageFetch(OfflineMode::Pubsub) => "on_message_fetch_for_pubsub",
            Function::MessageAcked(OfflineMode::Queue) => "on_message_acked_for_queue",
            Function::MessageAcked(OfflineMode::Pubsub) => "on_message_acked_for_pubsub",
            other => Function::NAMES
                .iter()
                .find(|(_, f)| *f == other)
                .map_or("?", |(n, _)| n),
        }
    }

    /// The hook the function belongs to.
    pub fn hook(self) -> Hook {
        match self {
            Function::ClientConnected | Function::SubscribeLookup => Hook::ClientConnected,
            Function::ClientDisconnected => Hook::ClientDisconnected,
            Function::RetainLookup | Function::MessageFetch(_) => Hook::SessionSubscribed,
            Function::MessagePublish | Function::MessageRetain | Function::RetainDelete => {
                Hook::MessagePublish
            }
            Function::MessageAcked(_) => Hook::MessageAcked,
        }
    }
}

impl FromStr for Function {
    type Err = ProblemKind;
    fn from_str(s: &str) -> Result<Self, ProblemKind> {
        Function::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| ProblemKind::UnknownFunction {
                name: s.to_owned(),
                suggestion: nearest(s, Function::NAMES.iter().map(|(n, _)| *n)).map(str::to_owned),
            })
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// MongoDB's `payload_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// A payload that is a JSON object is stored as a document; anything
    /// else as [`PayloadFormat::PlainText`] would.
    MongoJson,
    /// Valid UTF-8 as a string, other bytes as binary.
    PlainText,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A built-in function.
    Function(Function),
    /// The user's own statements, run in order.
    Statements(Vec<RawStatement>),
}

/// A user statement: its template and what it compiled to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStatement {
    /// The parsed template.
    pub template: Template,
    /// The compiled statement.
    pub compiled: StatementTemplate,
}

/// A rule: `backend.<kind>.hook.<hook>.<n> = {...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The hook.
    pub hook: Hook,
    /// `<n>`: rules of one hook run in this order.
    pub index: u32,
    /// The topic filter the rule is limited to; `None` applies to every event.
    pub topic: Option<String>,
    /// What it does.
    pub action: Action,
    /// The pool it uses.
    pub pool: String,
    /// MongoDB's payload format for stored messages.
    pub payload_format: Option<PayloadFormat>,
    /// The `.conf` line it came from.
    pub line: Option<usize>,
}

impl Rule {
    /// The config key naming this rule (`backend.redis.hook.client.connected.1`).
    pub fn key(&self, kind: BackendKind) -> String {
        format!("backend.{}.hook.{}.{}", kind.name(), self.hook, self.index)
    }
}

/// One thing wrong with a configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line (1-based) in the `.conf` text, if it came from one.
    pub line: Option<usize>,
    /// The key (or, for serde-built configs, the path) concerned.
    pub key: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.kind)
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// A line that is not `key = value`.
    #[error("expected `key = value`")]
    Syntax,
    /// A rule value that is not valid JSON of the expected shape.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// A key this configuration does not know.
    #[error("unknown key{}", .suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownKey {
        /// The nearest known key.
        suggestion: Option<String>,
    },
    /// A key given twice.
    #[error("duplicate key: also set on line {first_line}")]
    Duplicate {
        /// Where it was set first.
        first_line: usize,
    },
    /// Keys of two backend kinds in one configuration.
    #[error("this configuration is for {expected} (from line {first_line}), not {found}")]
    MixedKinds {
        /// The kind seen first.
        expected: BackendKind,
        /// Its line.
        first_line: usize,
        /// The other kind.
        found: BackendKind,
    },
    /// An unknown hook name.
    #[error("unknown hook `{name}`{}", .suggestion.map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownHook {
        /// As written.
        name: String,
        /// The nearest hook.
        suggestion: Option<&'static str>,
    },
    /// `<n>` that is not a whole number.
    #[error("rule number `{0}` must be a whole number")]
    BadRuleIndex(String),
    /// An unknown function name.
    #[error("unknown function `{name}`{}", .suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownFunction {
        /// As written.
        name: String,
        /// The nearest function.
        suggestion: Option<String>,
    },
    /// A function on a hook it does not belong to.
    #[error("function `{function}` runs on {expected}, not {hook}")]
    FunctionOnWrongHook {
        /// The function.
        function: String,
        /// The hook of the rule.
        hook: Hook,
        /// The hook it belongs to.
        expected: Hook,
    },
    /// A function or action kind this backend does not offer.
    #[error("{what} is not offered by the {kind} backend{}", .hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    NotOffered {
        /// What was asked for.
        what: String,
        /// The backend kind.
        kind: BackendKind,
        /// What to use instead.
        hint: Option<String>,
    },
    /// An action with none or several of function/sql/commands/cql.
    #[error("`action` must have exactly one of `function` or `{0}`")]
    BadAction(&'static str),
    /// A statement template that does not parse.
    #[error("statement {index}: {error}")]
    Template {
        /// Which statement of the list (1-based).
        index: usize,
        /// What is wrong with it.
        error: TemplateError,
    },
    /// A rule naming a pool that is not configured.
    #[error("pool `{pool}` is not configured{}", if .configured.is_empty() { " (no pools are)".to_owned() } else { format!(" (configured: {})", .configured) })]
    UnknownPool {
        /// The pool named.
        pool: String,
        /// The pools that are.
        configured: String,
    },
    /// An invalid rule `topic`.
    #[error("invalid topic filter `{filter}`: {error}")]
    BadTopic {
        /// The filter.
        filter: String,
        /// What is wrong.
        error: TopicError,
    },
    /// A value of the wrong type.
    #[error("bad value `{value}`: expected {expected}")]
    BadValue {
        /// As written (`***` for secrets).
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A bad duration or count.
    #[error("{0}")]
    BadLimit(String),
    /// No `backend.*` keys at all.
    #[error("no `backend.<kind>.` settings found")]
    Empty,
}

/// Everything wrong with a configuration, each with its line and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    problems: Vec<Problem>,
}

impl ConfigError {
    fn one(line: Option<usize>, key: impl Into<String>, kind: ProblemKind) -> Self {
        ConfigError {
            problems: vec![Problem {
                line,
                key: key.into(),
                kind,
            }],
        }
    }

    /// Every problem found, in line order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

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

/// The JSON of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleJson {
    /// The topic filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The action.
    pub action: ActionJson,
    /// The pool.
    pub pool: String,
    /// MongoDB's payload format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format: Option<PayloadFormat>,
}

/// The JSON of an action: exactly one field set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionJson {
    /// A built-in function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// SQL templates (MySQL, PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<OneOrMany>,
    /// Redis command templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<OneOrMany>,
    /// CQL templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cql: Option<OneOrMany>,
}

/// A statement list, also accepted as a single string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One statement.
    One(String),
    /// Several, run in order.
    Many(Vec<String>),
}

impl OneOrMany {
    fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A rule for a serde- or code-built configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// The hook.
    pub hook: Hook,
    /// `<n>`; rules without one run after numbered ones, in list order.
    #[serde(default)]
    pub index: Option<u32>,
    /// The rest, as in the `.conf` JSON.
    #[serde(flatten)]
    pub rule: RuleJson,
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

fn build_rule(
    kind: BackendKind,
    hook: Hook,
    index: u32,
    json: RuleJson,
    line: Option<usize>,
) -> Result<Rule, ProblemKind> {
    if let Some(filter) = &json.topic {
        validate_filter(filter).map_err(|error| ProblemKind::BadTopic {
            filter: filter.clone(),
            error,
        })?;
    }
    if json.payload_format.is_some() && kind != BackendKind::Mongo {
        return Err(ProblemKind::NotOffered {
            what: "`payload_format`".into(),
            kind,
            hint: Some("it applies to MongoDB only".into()),
        });
    }
    let a = &json.action;
    let given: Vec<(&'static str, &OneOrMany)> = [
        ("sql", a.sql.as_ref()),
        ("commands", a.commands.as_ref()),
        ("cql", a.cql.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let lang_key = kind.statements().map_or("sql", StatementLanguage::key);
    let action = match (&a.function, given.as_slice()) {
        (Some(name), []) => {
            let function: Function = name.parse()?;
            if function.hook() != hook {
                return Err(ProblemKind::FunctionOnWrongHook {
                    function: name.clone(),
                    hook,
                    expected: function.hook(),
                });
            }
            Action::Function(function)
        }
        (None, [(key, list)]) => {
            let lang = kind.statements().ok_or_else(|| ProblemKind::NotOffered {
                what: format!("`{key}`"),
                kind,
                hint: Some("MongoDB rules take built-in functions only".into()),
            })?;
            if *key != lang.key() {
                return Err(ProblemKind::NotOffered {
                    what: format!("`{key}`"),
                    kind,
                    hint: Some(format!("its statements go in `{}`", lang.key())),
                });
            }
            if list.as_slice().is_empty() {
                return Err(ProblemKind::BadAction(lang_key));
            }
            let mut statements = Vec::new();
            for (i, text) in list.as_slice().iter().enumerate() {
                let template =
                    Template::parse(text, hook).map_err(|error| ProblemKind::Template {
                        index: i + 1,
                        error,
                    })?;
                let compiled = lang
                    .compile(&template)
                    .map_err(|error| ProblemKind::Template {
                        index: i + 1,
                        error,
                    })?;
                statements.push(RawStatement { template, compiled });
            }
            Action::Statements(statements)
        }
        _ => return Err(ProblemKind::BadAction(lang_key)),
    };
    Ok(Rule {
        hook,
        index,
        topic: json.topic,
        action,
        pool: json.pool,
        payload_format: json.payload_format,
        line,
    })
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

    /// Reads the EMQX `.conf` format: `key = value` lines, `#`/`##`
    /// comments, pool settings, globals and rules. Reports every problem
    /// found, each with its line and key.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut first_kind: Option<(BackendKind, usize)> = None;
        let mut early: Vec<Problem> = Vec::new();
        let mut entries: Vec<(usize, String, String)> = Vec::new();
        let mut duplicates: Vec<(usize, String, String)> = Vec::new();
        for (i, raw_line) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw_line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                early.push(Problem {
                    line: Some(line),
                    key: trimmed.chars().take(60).collect(),
                    kind: ProblemKind::Syntax,
                });
                continue;
            };
            let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
            if let Some(first_line) = seen.get(&key) {
                early.push(Problem {
                    line: Some(line),
                    key: key.clone(),
                    kind: ProblemKind::Duplicate {
                        first_line: *first_line,
                    },
                });
                duplicates.push((line, key, value));
                continue;
            }
            seen.insert(key.clone(), line);
            let kind = key
                .strip_prefix("backend.")
                .and_then(|r| r.split('.').next())
                .and_then(BackendKind::from_prefix);
            match (kind, first_kind) {
                (None, _) => early.push(Problem {
                    line: Some(line),
                    key,
                    kind: ProblemKind::UnknownKey {
                        suggestion: Some("backend.<redis|mysql|pgsql|mongo|cassa|ecql>.…".into()),
                    },
                }),
                (Some((k, _)), None) => {
                    first_kind = Some((k, line));
                    entries.push((line, key, value));
                }
                (Some((k, _)), Some((expected, first_line))) if k != expected => {
                    early.push(Problem {
                        line: Some(line),
                        key,
                        kind: ProblemKind::MixedKinds {
                            expected,
                            first_line,
                            found: k,
                        },
                    })
                }
                (Some(_), Some(_)) => entries.push((line, key, value)),
            }
        }
        let Some((kind, _)) = first_kind else {
            if early.is_empty() {
                early.push(Problem {
                    line: None,
                    key: String::new(),
                    kind: ProblemKind::Empty,
                });
            }
            return Err(ConfigError { problems: early });
        };
        let mut b = Builder::new(kind);
        b.problems = early;
        for (line, key, value) in entries {
            parse_entry(&mut b, line, &key, &value);
        }
        // A duplicate is reported as such, and its value is still checked so
        // that one run shows everything wrong on the line.
        for (line, key, value) in duplicates {
            let mut scratch = Builder::new(kind);
            parse_entry(&mut scratch, line, &key, &value);
            b.problems.append(&mut scratch.problems);
            for (key, line, hook, index, json) in scratch.rules {
                if let Err(kind) = build_rule(kind, hook, index, json, line) {
                    b.problem(line, &key, kind);
                }
            }
        }
        b.finish()
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

/// One `backend.…` line, kind already checked.
fn parse_entry(b: &mut Builder, line: usize, key: &str, value: &str) {
    let kind = b.kind;
    let l = Some(line);
    let parts: Vec<&str> = key.split('.').collect();
    let is_ecql = parts.get(1) == Some(&"ecql");
    let rest = &parts[2..];
    match rest {
        ["hook", hook_and_n @ ..] if !is_ecql && hook_and_n.len() >= 2 => {
            let (n, hook_parts) = hook_and_n.split_last().unwrap_or((&"", &[]));
            let hook_name = hook_parts.join(".");
            let hook = match hook_name.parse::<Hook>() {
                Ok(h) => h,
                Err(_) => {
                    let suggestion = nearest(&hook_name, Hook::ALL.iter().map(|h| h.as_str()));
                    b.problem(
                        l,
                        key,
                        ProblemKind::UnknownHook {
                            name: hook_name,
                            suggestion,
                        },
                    );
                    return;
                }
            };
            let Ok(index) = n.parse::<u32>() else {
                b.problem(l, key, ProblemKind::BadRuleIndex((*n).to_owned()));
                return;
            };
            match serde_json::from_str::<RuleJson>(value) {
                Ok(json) => b.rules.push((key.to_owned(), l, hook, index, json)),
                Err(e) => b.problem(l, key, ProblemKind::InvalidJson(json_error(&e))),
            }
        }
        ["max_returned_count"] if !is_ecql => match parse_count(value) {
            Ok(n) => b.limits.max_returned_count = n,
            Err(e) => b.problem(l, key, ProblemKind::BadLimit(e)),
        },
        ["time_range"] if !is_ecql => match parse_duration(value) {
            Ok(d) => b.limits.time_range = d,
            Err(e) => b.problem(l, key, ProblemKind::BadLimit(e)),
        },
        ["msg", "expired_after"] if kind == BackendKind::Redis => {
            match unquote(value).parse::<i64>() {
                Ok(secs) => b.msg_expired_after = Some(expiry_from_secs(secs)),
                Err(_) => b.problem(
                    l,
                    key,
                    ProblemKind::BadLimit(format!("bad number `{value}`: expected whole seconds")),
                ),
            }
        }
        ["topology", name] if kind == BackendKind::Mongo => {
            if !MONGO_TOPOLOGY_KEYS.contains(name) {
                b.problem(l, key, unknown_among(name, &MONGO_TOPOLOGY_KEYS));
            } else {
                match unquote(value).parse::<i64>() {
                    Ok(v) => {
                        b.topology.insert((*name).to_owned(), v);
                    }
                    Err(_) => b.problem(
                        l,
                        key,
                        ProblemKind::BadValue {
                            value: value.to_owned(),
                            expected: "an integer".into(),
                        },
                    ),
                }
            }
        }
        [pool, name] if !is_global_name(pool) => {
            if !is_identifier(pool) {
                b.problem(l, key, unknown_key(kind, key));
            } else {
                b.pool_setting(l, key, pool, name, value);
            }
        }
        _ => b.problem(l, key, unknown_key(kind, key)),
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_global_name(s: &str) -> bool {
    matches!(
        s,
        "hook" | "max_returned_count" | "time_range" | "msg" | "topology"
    )
}

/// An unknown key, with the nearest key of the same shape suggested.
fn unknown_key(kind: BackendKind, key: &str) -> ProblemKind {
    let parts: Vec<&str> = key.split('.').collect();
    let mut candidates = vec![
        format!("backend.{}.max_returned_count", kind.name()),
        format!("backend.{}.time_range", kind.name()),
    ];
    if kind == BackendKind::Redis {
        candidates.push("backend.redis.msg.expired_after".into());
    }
    if kind == BackendKind::Mongo {
        candidates.extend(
            MONGO_TOPOLOGY_KEYS
                .iter()
                .map(|k| format!("backend.mongo.topology.{k}")),
        );
    }
    if parts.len() > 3 {
        // A misspelt `hook` or a misspelt hook name.
        let tail = parts[3..].join(".");
        candidates.push(format!("backend.{}.hook.{tail}", kind.name()));
        if let Some(n) = parts.last() {
            for h in Hook::ALL {
                candidates.push(format!("backend.{}.hook.{h}.{n}", kind.name()));
            }
        }
    }
    ProblemKind::UnknownKey {
        suggestion: nearest(key, candidates.iter().map(String::as_str)).map(str::to_owned),
    }
}

fn json_error(e: &serde_json::Error) -> String {
    // serde_json says "at line 1 column N"; the line is the .conf line, so
    // only the column is worth repeating.
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => format!("{} at column {}", &msg[..i], e.column()),
        None => msg,
    }
}

#[cfg(test)]
mod tests;
