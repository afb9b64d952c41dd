//! Backend kinds: what a backend crate declares about its configuration
//! (`backend.<name>.…`), and the registry [`crate::Config::parse`] reads.
//!
//! Core names no backend. Each backend crate declares its kind once, as a
//! [`KindSpec`] behind a [`BackendKind`] constant, and registers it with
//! [`register_kind!`](crate::register_kind): linking the crate is enough
//! for its `backend.<name>.` keys to be read.
//!
//! ```
//! use backend_core::backend::Capabilities;
//! use backend_core::config::{KeySpec, KeyType, KindSpec, StatementLanguage};
//! use backend_core::template::Placeholders;
//! use backend_core::BackendKind;
//!
//! /// `backend.example.*`
//! pub const KIND: BackendKind = BackendKind::declare(&KindSpec {
//!     name: "example",
//!     pool_prefix: "example",
//!     pool_keys: &[
//!         KeySpec::new("path", KeyType::Text).with_default("./data/example.db"),
//!         KeySpec::new("password", KeyType::Secret),
//!     ],
//!     global_keys: &[],
//!     statements: Some(StatementLanguage::Sql(Placeholders::Question)),
//!     capabilities: Capabilities::NONE.with_raw_statements(),
//! });
//! backend_core::register_kind!(KIND);
//!
//! let conf = backend_core::Config::parse("backend.example.pool1.path = /var/lib/mqtt.db")?;
//! assert_eq!(conf.kind(), KIND);
//! assert_eq!(KIND.pool_key("path").and_then(|k| k.default), Some("./data/example.db"));
//! # Ok::<(), backend_core::ConfigError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::pool::{KeySpec, KeyType, StatementLanguage};
use crate::backend::Capabilities;

/// What a backend crate declares about its configuration.
#[derive(Debug)]
pub struct KindSpec {
    /// The name in rule and global keys (`backend.<name>.hook.…`).
    pub name: &'static str,
    /// The prefix of pool keys (`backend.<prefix>.<pool>.<key>`): usually
    /// the name (Cassandra's pools are `backend.ecql.…`).
    pub pool_prefix: &'static str,
    /// The pool keys of this kind, besides the keys every kind has
    /// ([`COMMON_POOL_KEYS`]: TLS files, batching and buffering, read
    /// bounds).
    pub pool_keys: &'static [KeySpec],
    /// Keys of the whole configuration besides the limits, by their name
    /// after `backend.<name>.` (`msg.expired_after`, `topology.pool_size`).
    pub global_keys: &'static [KeySpec],
    /// The action key of raw statements (`sql`, `cql`, `commands`) and how
    /// they mark parameters; `None` when the backend runs none.
    pub statements: Option<StatementLanguage>,
    /// What the backend offers beyond the common operations: what the
    /// engine and the configuration decide by (rules may set
    /// `payload_format` only with [`Capabilities::payload_format`]; the
    /// sweeper runs only with [`Capabilities::sweep`]).
    pub capabilities: Capabilities,
}

/// The pool keys every kind accepts: TLS, how the pool batches and buffers
/// its writes (see [`crate::write`]), and how long reads may take.
pub const COMMON_POOL_KEYS: &[KeySpec] = &[
    KeySpec::new("ssl", KeyType::Bool).with_default("false"),
    KeySpec::new("cacertfile", KeyType::Text),
    KeySpec::new("certfile", KeyType::Text),
    KeySpec::new("keyfile", KeyType::Text),
    KeySpec::new("batch_size", KeyType::Count).with_default("1000"),
    KeySpec::new("batch_time", KeyType::Millis).with_default("0"),
    KeySpec::new("worker_pool_size", KeyType::Count).with_default("4"),
    KeySpec::new("buffer_size", KeyType::Natural).with_default("10000"),
    KeySpec::new(
        "buffer_full",
        KeyType::OneOf(&crate::write::BufferFull::WORDS),
    )
    .with_default("block"),
    KeySpec::new(
        "query_mode",
        KeyType::OneOf(&crate::write::QueryMode::WORDS),
    )
    .with_default("async"),
    KeySpec::new("buffer", KeyType::OneOf(&["memory", "disk"])).with_default("memory"),
    KeySpec::new("buffer_path", KeyType::Text),
    KeySpec::new("read_timeout", KeyType::Millis).with_default("1s"),
    KeySpec::new("fetch_timeout", KeyType::Millis).with_default("10s"),
];

/// A backend kind: a handle on the [`KindSpec`] its crate declares.
/// Two handles are equal when their names are.
#[derive(Clone, Copy)]
pub struct BackendKind(&'static KindSpec);

impl BackendKind {
    /// The kind `spec` declares (see [`KindSpec`]).
    pub const fn declare(spec: &'static KindSpec) -> Self {
        BackendKind(spec)
    }

    /// What the kind's crate declared.
    pub const fn spec(self) -> &'static KindSpec {
        self.0
    }

    /// The name used in rule keys (`backend.<name>.hook.`).
    pub const fn name(self) -> &'static str {
        self.0.name
    }

    /// The prefix of pool keys (`backend.<prefix>.<pool>.<key>`).
    pub const fn pool_prefix(self) -> &'static str {
        self.0.pool_prefix
    }

    /// The raw-statement language, if the kind runs raw statements.
    pub const fn statements(self) -> Option<StatementLanguage> {
        self.0.statements
    }

    /// Every pool key this kind accepts: its own, then the common ones.
    pub fn pool_keys(self) -> impl Iterator<Item = &'static KeySpec> {
        self.0.pool_keys.iter().chain(COMMON_POOL_KEYS)
    }

    /// The pool key called `name`, if this kind accepts it.
    pub fn pool_key(self, name: &str) -> Option<&'static KeySpec> {
        self.pool_keys().find(|k| k.name == name)
    }

    /// The global key called `name` (after `backend.<name>.`), if any.
    pub fn global_key(self, name: &str) -> Option<&'static KeySpec> {
        self.0.global_keys.iter().find(|k| k.name == name)
    }

    /// Makes this kind known to [`crate::Config::parse`] at run time; what
    /// [`register_kind!`](crate::register_kind) does at link time. A kind
    /// registered already (by name) stays as it is.
    pub fn register(self) {
        let mut added = RUNTIME.write().unwrap_or_else(|e| e.into_inner());
        if !added.contains(&self) {
            added.push(self);
        }
    }

    /// The registered kind whose name or pool prefix is `prefix`, and
    /// whether it was the pool prefix (where the two differ).
    pub fn from_prefix(prefix: &str) -> Option<(BackendKind, bool)> {
        let kinds = BackendKind::registered();
        if let Some(k) = kinds.iter().find(|k| k.name() == prefix) {
            return Some((*k, false));
        }
        kinds
            .into_iter()
            .find(|k| k.pool_prefix() == prefix)
            .map(|k| (k, true))
    }

    /// The registered kind called `name`.
    pub fn named(name: &str) -> Option<BackendKind> {
        BackendKind::registered()
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// Every registered kind, by name; where two registrations share a
    /// name, a backend crate's comes before a stand-in.
    pub fn registered() -> Vec<BackendKind> {
        let mut kinds: Vec<(BackendKind, bool)> = inventory::iter::<KindRegistration>
            .into_iter()
            .map(|r| (r.kind, r.stand_in))
            .collect();
        let runtime = RUNTIME.read().unwrap_or_else(|e| e.into_inner());
        kinds.extend(runtime.iter().map(|k| (*k, false)));
        kinds.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        kinds.dedup_by(|a, b| a.0 == b.0);
        kinds.into_iter().map(|(k, _)| k).collect()
    }

    /// The registered names, for an error message: `redis|pgsql|…`.
    pub(crate) fn registered_names() -> String {
        let names: Vec<&str> = BackendKind::registered()
            .into_iter()
            .flat_map(|k| {
                let prefix = (k.pool_prefix() != k.name()).then_some(k.pool_prefix());
                std::iter::once(k.name()).chain(prefix)
            })
            .collect();
        if names.is_empty() {
            "none: link a backend crate".into()
        } else {
            names.join("|")
        }
    }
}

static RUNTIME: RwLock<Vec<BackendKind>> = RwLock::new(Vec::new());

/// A kind registered at link time by [`register_kind!`](crate::register_kind).
#[doc(hidden)]
pub struct KindRegistration {
    pub kind: BackendKind,
    /// A stand-in of the testkit: a backend crate's kind of the same name
    /// comes first.
    pub stand_in: bool,
}

inventory::collect!(KindRegistration);

#[doc(hidden)]
pub use inventory as __inventory;

/// Registers a backend crate's [`BackendKind`] constant, so that
/// [`crate::Config::parse`] reads its keys wherever the crate is linked.
///
/// ```text
/// pub const KIND: backend_core::BackendKind = backend_core::BackendKind::declare(&SPEC);
/// backend_core::register_kind!(KIND);
/// ```
#[macro_export]
macro_rules! register_kind {
    ($kind:expr) => {
        $crate::config::__inventory::submit! {
            $crate::config::KindRegistration { kind: $kind, stand_in: false }
        }
    };
}

impl PartialEq for BackendKind {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for BackendKind {}

impl Hash for BackendKind {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl PartialOrd for BackendKind {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BackendKind {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name().cmp(other.name())
    }
}

impl fmt::Debug for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackendKind({})", self.name())
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for BackendKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for BackendKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        BackendKind::named(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown backend kind `{name}` (registered: {})",
                BackendKind::registered_names()
            ))
        })
    }
}
