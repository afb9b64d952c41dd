//! The project's conf files pointed at the servers `scripts/services.sh`
//! starts (or those named by `REDIS_URL`, `PGSQL_URL`, `MYSQL_URL`,
//! `MONGO_URL`, `CASSA_NODES`; SQLite's file by `SQLITE_PATH`): what the
//! end-to-end tests and the whole-stack benchmark run the broker with.

use std::path::PathBuf;

use backend_core::BackendKind;

/// The URL of the test server for `kind` (its variable, or the address
/// `scripts/services.sh` uses).
pub fn server_url(kind: BackendKind) -> String {
    let (var, default) = match kind.name() {
        "redis" => ("REDIS_URL", "redis://127.0.0.1:6379"),
        "pgsql" => ("PGSQL_URL", "postgres://root:public@127.0.0.1:5432/mqtt"),
        "mysql" => ("MYSQL_URL", "mysql://root:public@127.0.0.1:3306/mqtt"),
        "mongo" => ("MONGO_URL", "mongodb://127.0.0.1:27017"),
        "cassa" => ("CASSA_NODES", "127.0.0.1:9042"),
        // A file, not a server.
        "sqlite" => (
            "SQLITE_PATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/tmp/bench-sqlite.db"),
        ),
        // A kind added later has no test server yet.
        _ => return String::new(),
    };
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// A free TCP port on loopback (free when asked: bind it soon).
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `prefix` followed by the current time in hex nanoseconds: a name
/// unique to this run, for topics, client ids and files.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}{nanos:x}")
}

/// A database URL's user, password, `host:port` and database.
pub fn parse_url(url: &str) -> (String, String, String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (auth, rest) = rest.split_once('@').unwrap_or(("root:public", rest));
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let (host, db) = rest.split_once('/').unwrap_or((rest, "mqtt"));
    let db = db
        .split('?')
        .next()
        .filter(|d| !d.is_empty())
        .unwrap_or("mqtt");
    (user.into(), pass.into(), host.into(), db.into())
}

/// The project's `etc/` conf file of `kind`.
pub fn etc_file(kind: BackendKind) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../etc"))
        .join(format!("emqx_backend_{}.conf", kind.name()))
}

/// The lines that point `kind`'s `pool1` at `url`.
pub fn server_lines(kind: BackendKind, url: &str) -> Vec<String> {
    let p = format!("backend.{}.pool1", kind.pool_prefix());
    match kind.name() {
        "redis" => {
            let server = url.trim_start_matches("redis://").trim_end_matches('/');
            vec![format!("{p}.server = {server}")]
        }
        "pgsql" | "mysql" => {
            let (user, pass, host, db) = parse_url(url);
            let user_key = if kind.name() == "mysql" {
                "user"
            } else {
                "username"
            };
            vec![
                format!("{p}.server = {host}"),
                format!("{p}.{user_key} = {user}"),
                format!("{p}.password = {pass}"),
                format!("{p}.database = {db}"),
                format!("{p}.create_tables = true"),
            ]
        }
        "mongo" => {
            let rest = url.trim_start_matches("mongodb://");
            let host = rest.split(['/', '?']).next().unwrap_or(rest);
            vec![format!("{p}.server = {host}")]
        }
        "sqlite" => vec![format!("{p}.path = {url}")],
        "cassa" => {
            let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "cassandra".into());
            vec![
                format!("{p}.nodes = {url}"),
                format!("{p}.username = {}", var("CASSA_USER")),
                format!("{p}.password = {}", var("CASSA_PASSWORD")),
                format!("{p}.create_tables = true"),
            ]
        }
        _ => Vec::new(),
    }
}

/// `kind`'s conf file with its `pool1` pointed at `url` and `extra` lines
/// appended (a line replaces any line of the same key); `with_rules =
/// false` leaves out every hook rule (storage off, same pools).
pub fn conf_text(
    kind: BackendKind,
    url: Option<&str>,
    extra: &[String],
    with_rules: bool,
) -> Result<String, String> {
    let etc = etc_file(kind);
    let base = std::fs::read_to_string(&etc).map_err(|e| format!("{}: {e}", etc.display()))?;
    let mut lines = url.map(|u| server_lines(kind, u)).unwrap_or_default();
    for e in extra {
        if let Some((k, _)) = e.split_once(" = ") {
            lines.retain(|l| l.split_once(" = ").map(|(lk, _)| lk) != Some(k));
        }
        lines.push(e.clone());
    }
    let key_of = |l: &str| -> Option<String> {
        let l = l.trim_start();
        if l.starts_with('#') {
            return None;
        }
        l.split_once('=').map(|(k, _)| k.trim().to_owned())
    };
    let overridden: Vec<String> = lines.iter().filter_map(|l| key_of(l)).collect();
    let hook = format!("backend.{}.hook.", kind.name());
    let mut text: String = base
        .lines()
        .filter(|l| match key_of(l) {
            Some(k) => !overridden.contains(&k) && (with_rules || !k.starts_with(&hook)),
            None => true,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    Ok(text)
}

/// Removes every message stored under `filter` (read 10,000 at a time and
/// acknowledged in queue mode through `backend`, 1,000 acks a call), so that a test or
/// benchmark leaves a shared server as it found it. Returns how many.
pub async fn remove_stored(
    backend: &dyn backend_core::Backend,
    filter: &str,
) -> Result<usize, backend_core::BackendError> {
    use backend_core::{Ack, FetchRequest, OfflineMode};
    // Pages of 10,000: one fetch of a few hundred thousand rows can take
    // longer than a read may.
    let mut req = FetchRequest::new(unique("cleanup"), filter, OfflineMode::Queue);
    req.max_count = Some(10_000);
    let mut removed = 0;
    let mut last_page: Option<String> = None;
    loop {
        let msgs = backend.fetch_messages(&req).await?;
        let first = msgs.first().map(|m| m.id.clone());
        // Done, or the acks removed nothing: the same page came back.
        if first.is_none() || first == last_page {
            return Ok(removed);
        }
        last_page = first;
        let acks: Vec<Ack> = msgs
            .iter()
            .map(|m| Ack {
                client_id: req.client_id.clone(),
                topic: m.topic.clone(),
                message_id: m.id.clone(),
            })
            .collect();
        for chunk in acks.chunks(1000) {
            backend.ack_messages(OfflineMode::Queue, chunk).await?;
        }
        removed += acks.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_their_parts() {
        assert_eq!(
            parse_url("postgres://u:p@h:5432/db?sslmode=disable"),
            ("u".into(), "p".into(), "h:5432".into(), "db".into())
        );
        assert_eq!(
            parse_url("mysql://h:3306"),
            (
                "root".into(),
                "public".into(),
                "h:3306".into(),
                "mqtt".into()
            )
        );
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn storage_off_keeps_the_pools_and_drops_the_rules() {
        // SQLite: the kind every build of the broker links.
        let kind = backend_sqlite::KIND;
        let on = conf_text(kind, Some("/tmp/x.db"), &[], true).expect("etc file");
        let off = conf_text(kind, Some("/tmp/x.db"), &[], false).expect("etc file");
        let on = backend_core::Config::parse(&on).expect("valid");
        let off = backend_core::Config::parse(&off).expect("valid");
        assert!(!on.rules().is_empty());
        assert!(off.rules().is_empty());
        assert_eq!(off.pools()["pool1"].text("path"), Some("/tmp/x.db"));
        assert_eq!(on.pools()["pool1"].text("path"), Some("/tmp/x.db"));
    }
}
