//! Smoke tests that prove each storage driver against its real server.
//!
//! This crate exists for its tests: `tests/<server>.rs` connects with the
//! driver that the matching backend crate uses (`redis`, `mysql_async`,
//! `tokio-postgres`, `mongodb`, `cdrs-tokio`), writes one row, key or
//! document under a unique key, reads it back and checks it. They run against
//! the servers that `scripts/services.sh` starts, so a driver, a server or an
//! address that does not work shows up here first, apart from any backend's
//! own logic.
//!
//! A test never skips: when its server cannot be reached it fails with a
//! message naming the server and the environment variable that points at it.
//! The library holds what the tests share: the [`Server`] settings with their
//! defaults, a timeout wrapper ([`step`]) whose errors say which server and
//! variable are involved, and [`unique_key`].

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long one step (connecting, or one round trip) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A server the tests talk to: its name, the environment variable that holds
/// its address, and the default address (where `scripts/services.sh` puts it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// Human name used in messages.
    pub name: &'static str,
    /// Environment variable that overrides the address.
    pub var: &'static str,
    /// Address used when the variable is unset or empty.
    pub default: &'static str,
}

impl Server {
    /// The address: the variable's value when set and not empty, else the default.
    pub fn url(&self) -> String {
        env_or(self.var, self.default)
    }
}

/// Redis, `REDIS_URL`.
pub const REDIS: Server = Server {
    name: "Redis",
    var: "REDIS_URL",
    default: "redis://127.0.0.1:6379",
};

/// MariaDB / MySQL, `MYSQL_URL`.
pub const MYSQL: Server = Server {
    name: "MariaDB/MySQL",
    var: "MYSQL_URL",
    default: "mysql://root:public@127.0.0.1:3306/mqtt",
};

/// PostgreSQL, `PGSQL_URL`.
pub const PGSQL: Server = Server {
    name: "PostgreSQL",
    var: "PGSQL_URL",
    default: "postgres://root:public@127.0.0.1:5432/mqtt",
};

/// A MongoDB wire-protocol server (FerretDB here, or a real mongod), `MONGO_URL`.
pub const MONGO: Server = Server {
    name: "MongoDB (wire protocol)",
    var: "MONGO_URL",
    default: "mongodb://127.0.0.1:27017",
};

/// Cassandra, `CASSA_NODES` (comma-separated `host:port` contact points).
pub const CASSANDRA: Server = Server {
    name: "Cassandra",
    var: "CASSA_NODES",
    default: "127.0.0.1:9042",
};

/// Cassandra user, `CASSA_USER` (default `cassandra`).
pub fn cassandra_user() -> String {
    env_or("CASSA_USER", "cassandra")
}

/// Cassandra password, `CASSA_PASSWORD` (default `cassandra`).
pub fn cassandra_password() -> String {
    env_or("CASSA_PASSWORD", "cassandra")
}

/// The value of `var`, or `default` when it is unset, empty or not Unicode.
pub fn env_or(var: &str, default: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => default.to_owned(),
    }
}

/// Why a step against a server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The step did not finish in time.
    #[error(
        "{server} at {target}: {what} timed out after {secs} s \
         (is the server up? scripts/services.sh starts it; {var} overrides the address)"
    )]
    Timeout {
        /// Server name.
        server: &'static str,
        /// Environment variable holding the address.
        var: &'static str,
        /// Address, with any password hidden.
        target: String,
        /// What was being done.
        what: String,
        /// The timeout in seconds.
        secs: u64,
    },
    /// The driver returned an error.
    #[error(
        "{server} at {target}: {what} failed: {message} \
         (is the server up? scripts/services.sh starts it; {var} overrides the address)"
    )]
    Driver {
        /// Server name.
        server: &'static str,
        /// Environment variable holding the address.
        var: &'static str,
        /// Address, with any password hidden.
        target: String,
        /// What was being done.
        what: String,
        /// The driver's error, as text.
        message: String,
    },
}

/// Runs one step (`what`, e.g. "connect") against `server` at `target` within
/// [`STEP_TIMEOUT`], turning a driver error or a time-out into an [`Error`]
/// that names the server and its environment variable.
pub async fn step<T, E, F>(server: &Server, target: &str, what: &str, fut: F) -> Result<T, Error>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: IntoFuture<Output = Result<T, E>>,
{
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::Driver {
            server: server.name,
            var: server.var,
            target: redact(target),
            what: what.to_owned(),
            message: error_chain(&*e.into()),
        }),
        Err(_) => Err(Error::Timeout {
            server: server.name,
            var: server.var,
            target: redact(target),
            what: what.to_owned(),
            secs: STEP_TIMEOUT.as_secs(),
        }),
    }
}

/// `e` and its sources, joined with `: ` (drivers often keep the useful part,
/// such as the server's own message, in a source).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// `url` with the password of its user-info part replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let Some(colon) = rest[..at].find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..rest_start],
        &rest[..colon],
        &rest[at..]
    )
}

/// A key no other test run uses: `prefix`, the process id, the time in
/// nanoseconds and a counter.
pub fn unique_key(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("mysql://root:public@127.0.0.1:3306/mqtt"),
            "mysql://root:***@127.0.0.1:3306/mqtt"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("mongodb://user@h:27017/db?x=a@b"),
            "mongodb://user@h:27017/db?x=a@b"
        );
        assert_eq!(redact("127.0.0.1:9042"), "127.0.0.1:9042");
    }

    #[test]
    fn unique_keys_differ() {
        let a = unique_key("k");
        let b = unique_key("k");
        assert_ne!(a, b);
        assert!(a.starts_with("k-"));
    }

    #[tokio::test]
    async fn step_errors_name_server_and_variable() {
        let err = step(&REDIS, "redis://x:secret@h", "connect", async {
            Err::<(), _>("refused")
        })
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("Redis"), "{err}");
        assert!(err.contains("REDIS_URL"), "{err}");
        assert!(err.contains("refused"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }
}
