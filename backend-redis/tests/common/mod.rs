//! Shared by the test binaries: where the test Redis is, backends and plain
//! connections to it, and child Redis processes for the Sentinel and TLS
//! tests.
#![allow(dead_code)]

use backend_core::testkit::OrPanic;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backend_core::config::PoolConfig;
use backend_core::Config;
use backend_redis::{RedisBackend, RedisSettings};

/// The default address, as `scripts/services.sh` starts it.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// The database the tests use unless `REDIS_URL` names one.
pub const TEST_DB: i64 = 1;

/// The test server, from `REDIS_URL`: `redis://[[user]:password@]host[:port][/db]`.
#[derive(Clone)]
pub struct Target {
    pub url_for_messages: String,
    pub host: String,
    pub port: u16,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
}

pub fn target() -> Target {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let rest = url
        .strip_prefix("redis://")
        .unwrap_or_else(|| panic!("REDIS_URL `{url}` must start with redis://"));
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let (hostport, db) = match rest.split_once('/') {
        Some((h, d)) if !d.is_empty() => (
            h,
            d.parse()
                .unwrap_or_else(|_| panic!("REDIS_URL: database `{d}` is not a number")),
        ),
        Some((h, _)) => (h, TEST_DB),
        None => (rest, TEST_DB),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.to_owned(),
            p.parse()
                .unwrap_or_else(|_| panic!("REDIS_URL: port `{p}` is not a number")),
        ),
        None => (hostport.to_owned(), 6379),
    };
    let (username, password) = match auth {
        None => (None, None),
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            None => (None, Some(a.to_owned())),
        },
    };
    Target {
        url_for_messages: format!("redis://{host}:{port}/{db}"),
        host,
        port,
        db,
        username,
        password,
    }
}

/// Pool settings for the test server, plus `extra` keys.
pub fn pool_config(extra: &[(&str, &str)]) -> PoolConfig {
    let t = target();
    let mut p = PoolConfig::new(backend_redis::KIND, "pool1");
    let set = |p: &mut PoolConfig, k: &str, v: &str| {
        p.set(k, v).or_panic(&format!("test pool setting {k}"));
    };
    set(&mut p, "server", &format!("{}:{}", t.host, t.port));
    set(&mut p, "database", &t.db.to_string());
    set(&mut p, "pool_size", "4");
    if let Some(u) = &t.username {
        set(&mut p, "username", u);
    }
    if let Some(pw) = &t.password {
        set(&mut p, "password", pw);
    }
    for (k, v) in extra {
        set(&mut p, k, v);
    }
    p
}

fn unreachable(e: impl std::fmt::Display) -> ! {
    panic!(
        "cannot reach the test Redis at {} (REDIS_URL; default {DEFAULT_URL}; start it with `scripts/services.sh redis`): {e}",
        target().url_for_messages
    )
}

/// A backend on the test server; fails the test when it is unreachable.
pub async fn backend() -> RedisBackend {
    backend_with(&[], &Config::new(backend_redis::KIND)).await
}

/// A backend with extra pool keys and a configuration of its own.
pub async fn backend_with(extra: &[(&str, &str)], config: &Config) -> RedisBackend {
    RedisBackend::connect(&pool_config(extra), config)
        .await
        .unwrap_or_else(|e| unreachable(e))
}

/// Settings for the test server (to adjust in code).
pub fn settings() -> RedisSettings {
    RedisSettings::from_pool(&pool_config(&[]), &Config::new(backend_redis::KIND))
        .or_panic("test settings")
}

/// A plain connection (the driver alone) to the test database.
pub async fn plain() -> redis::aio::MultiplexedConnection {
    let t = target();
    plain_to(&t.host, t.port, t.db, t.password.as_deref()).await
}

/// A plain connection to any server.
pub async fn plain_to(
    host: &str,
    port: u16,
    db: i64,
    password: Option<&str>,
) -> redis::aio::MultiplexedConnection {
    let mut info = redis::RedisConnectionInfo::default().set_db(db);
    if let Some(p) = password {
        info = info.set_password(p);
    }
    let t = target();
    if let Some(u) = &t.username {
        info = info.set_username(u);
    }
    let ci = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
        host.to_owned(),
        port,
    ))
    .or_panic(&format!("address {host}:{port}"))
    .set_redis_settings(info);
    let client = redis::Client::open(ci).or_panic("client");
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|e| unreachable(e))
}

/// Runs one plain command.
pub async fn cmd<T: redis::FromRedisValue>(
    c: &mut redis::aio::MultiplexedConnection,
    args: &[&[u8]],
) -> T {
    let mut cmd = redis::Cmd::new();
    for a in args {
        cmd.arg(*a);
    }
    cmd.query_async(c).await.unwrap_or_else(|e| {
        panic!(
            "{}: {e}",
            args.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        )
    })
}

/// Retries `f` until it succeeds or `within` passes; returns the last result.
pub async fn eventually<T, E, F, Fut>(within: Duration, mut f: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        let r = f().await;
        if r.is_ok() || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The workspace's `target/` directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A fresh directory under `target/` for a test's servers.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = target_dir().join("backend-redis-tests").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("create {}: {e}", d.display()));
    d
}

/// A server process the test started; killed when dropped.
pub struct Server {
    pub name: String,
    pub port: u16,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts `program` with `args` in `dir`, logging to `<dir>/<name>.log`.
    pub fn start(program: &str, name: &str, port: u16, dir: &Path, args: &[String]) -> Server {
        let log = dir.join(format!("{name}.log"));
        let mut all: Vec<String> = args.to_vec();
        all.extend(["--logfile".into(), log.display().to_string()]);
        let child = Command::new(program)
            .args(&all)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} for {name} (install it with `apt-get install -y redis-server redis-sentinel`): {e}")
            });
        Server {
            name: name.to_owned(),
            port,
            log,
            child: Some(child),
        }
    }

    /// Kills it now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fails unless something answers PING on `port` within `within`.
pub async fn wait_ping(server: &Server, within: Duration) {
    let port = server.port;
    let r = eventually(within, || async move {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let mut c = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    })
    .await;
    if let Err(e) = r {
        panic!(
            "{} on port {port} did not come up: {e}\n{}",
            server.name,
            server.log_tail()
        );
    }
}
