//! Backend kinds and their pool settings (`backend.<kind>.<pool>.<key>`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::{BackendKind, ConfigError, ProblemKind};
use crate::suggest::nearest;
use crate::template::{Placeholders, StatementTemplate, Template, TemplateError};

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
    /// The value the backend uses when the key is not given, as a `.conf`
    /// line would write it; `None` when there is none or it depends on
    /// other keys.
    pub default: Option<&'static str>,
}

impl KeySpec {
    /// A key of type `ty` with no stated default.
    pub const fn new(name: &'static str, ty: KeyType) -> Self {
        KeySpec {
            name,
            ty,
            default: None,
        }
    }

    /// The same key, stating its default.
    pub const fn with_default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
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
    /// An integer of at least 0.
    Natural,
    /// A duration (`0`, `10ms`, `2s`, `1m`), kept as milliseconds.
    Millis,
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
    pub(super) name: String,
    kind: BackendKind,
    pub(super) settings: BTreeMap<String, (Setting, Option<usize>)>,
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
    /// let mut p = PoolConfig::new(backend_core::testkit::kinds::REDIS, "pool1");
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

    /// A pool named `name` with these `key = value` settings, each checked
    /// as if read from a `.conf` file (no line numbers).
    ///
    /// ```
    /// use backend_core::{config::PoolConfig, BackendKind};
    /// let p = PoolConfig::from_settings(backend_core::testkit::kinds::REDIS, "pool1", &[("server", "db:6380")])?;
    /// assert_eq!(p.text("server"), Some("db:6380"));
    /// assert!(PoolConfig::from_settings(backend_core::testkit::kinds::REDIS, "p", &[("sever", "x")]).is_err());
    /// # Ok::<(), backend_core::ConfigError>(())
    /// ```
    pub fn from_settings(
        kind: BackendKind,
        name: impl Into<String>,
        settings: &[(&str, &str)],
    ) -> Result<Self, ConfigError> {
        let mut pool = PoolConfig::new(kind, name);
        for (key, value) in settings {
            pool.set(key, value)?;
        }
        Ok(pool)
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

/// A user name and its password, for servers that authenticate the two
/// together (Cassandra, MongoDB), as read by [`PoolConfig::login`]. Its
/// `Debug` never shows the password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Login {
    /// The user name.
    pub user: String,
    /// The password, if any.
    pub password: Option<Secret>,
}

impl Login {
    /// A user, with a password or none.
    pub fn new(user: impl Into<String>, password: Option<Secret>) -> Self {
        Login {
            user: user.into(),
            password,
        }
    }
}

impl PoolConfig {
    /// The user (under `user_key`: `username`, `login`) and `password`:
    /// `None` when neither is set. A password without a user is an error
    /// that names `user_key`; an empty user counts as none.
    ///
    /// ```
    /// use backend_core::config::PoolConfig;
    /// use backend_core::BackendKind;
    /// let mut pool = PoolConfig::new(backend_core::testkit::kinds::CASSA, "pool1");
    /// pool.set("username", "app")?.set("password", "s3cret")?;
    /// let login = pool.login("username").unwrap().expect("a login");
    /// assert_eq!(login.user, "app");
    /// assert!(!format!("{login:?}").contains("s3cret"));
    /// # Ok::<(), backend_core::ConfigError>(())
    /// ```
    pub fn login(&self, user_key: &'static str) -> Result<Option<Login>, (&'static str, String)> {
        let user = self.text(user_key).filter(|u| !u.is_empty());
        let password = self.secret("password").cloned();
        match (user, password) {
            (Some(user), password) => Ok(Some(Login::new(user, password))),
            (None, Some(_)) => Err((user_key, "is required when a password is set".into())),
            (None, None) => Ok(None),
        }
    }
}

/// A pool's TLS files (`cacertfile`, `certfile`, `keyfile`), as read by
/// [`PoolConfig::tls_files`]. Without a CA file the system's trusted roots
/// verify the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    /// `cacertfile`: PEM CA certificates.
    pub ca_cert_file: Option<PathBuf>,
    /// `certfile`: PEM client certificate chain.
    pub cert_file: Option<PathBuf>,
    /// `keyfile`: PEM client private key.
    pub key_file: Option<PathBuf>,
}

impl PoolConfig {
    /// `ssl` and its files: `Some` when `ssl` is true, `None` when it is off.
    /// An error names the key at fault and says what is wrong: a client
    /// certificate without its key (or the reverse), or files given while
    /// `ssl` is off. Empty values count as not given.
    ///
    /// ```
    /// use backend_core::{config::PoolConfig, BackendKind};
    /// let mut p = PoolConfig::new(backend_core::testkit::kinds::PGSQL, "pool1");
    /// p.set("cacertfile", "/ca.pem")?;
    /// assert_eq!(p.tls_files().unwrap_err().0, "cacertfile");
    /// p.set("ssl", "true")?;
    /// assert!(p.tls_files().unwrap().is_some());
    /// # Ok::<(), backend_core::ConfigError>(())
    /// ```
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, (&'static str, String)> {
        let file = |key: &str| self.text(key).filter(|s| !s.is_empty()).map(PathBuf::from);
        let files = TlsFiles {
            ca_cert_file: file("cacertfile"),
            cert_file: file("certfile"),
            key_file: file("keyfile"),
        };
        if self.bool("ssl").unwrap_or(false) {
            return match (&files.cert_file, &files.key_file) {
                (Some(_), None) => Err(("keyfile", "is required when certfile is set".into())),
                (None, Some(_)) => Err(("certfile", "is required when keyfile is set".into())),
                _ => Ok(Some(files)),
            };
        }
        let given = [
            ("cacertfile", &files.ca_cert_file),
            ("certfile", &files.cert_file),
            ("keyfile", &files.key_file),
        ];
        let first = given.into_iter().find(|(_, f)| f.is_some()).map(|(k, _)| k);
        match first {
            Some(key) => Err((key, "is set but ssl is not true".into())),
            None => Ok(None),
        }
    }
}

pub(super) fn parse_setting(
    kind: BackendKind,
    key: &str,
    raw: &str,
) -> Result<Setting, ProblemKind> {
    let spec = kind.pool_key(key).ok_or_else(|| ProblemKind::UnknownKey {
        suggestion: nearest(key, kind.pool_keys().map(|k| k.name)).map(str::to_owned),
    })?;
    parse_value(spec, raw)
}

/// `raw` read as the value of `spec`.
pub(super) fn parse_value(spec: &KeySpec, raw: &str) -> Result<Setting, ProblemKind> {
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
        KeyType::Natural => match raw.parse::<i64>() {
            Ok(n) if n >= 0 => Setting::Int(n),
            _ => return Err(bad("a whole number")),
        },
        KeyType::Millis => Setting::Int(
            parse_millis(raw).ok_or_else(|| bad("a duration such as 0, 10ms, 2s or 1m"))?,
        ),
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

/// `0`, `<n>ms`, `<n>s`, `<n>m` as milliseconds (at most a day).
fn parse_millis(raw: &str) -> Option<i64> {
    let (n, per) = if let Some(n) = raw.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = raw.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = raw.strip_suffix('m') {
        (n, 60_000)
    } else if raw == "0" {
        ("0", 1)
    } else {
        return None;
    };
    let n: i64 = n.parse().ok().filter(|n| *n >= 0)?;
    n.checked_mul(per).filter(|ms| *ms <= 86_400_000)
}

pub(super) fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}
