//! The databases behind the end-to-end tests, read and written directly
//! with their drivers to check what the broker stored.

use std::path::PathBuf;
use std::time::Duration;

/// A client's row/hash in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: i64,
    pub node: String,
    pub online_at: bool,
    pub offline_at: bool,
}

pub enum Db {
    /// The broker's in-memory backend (`--backend memory`) with the
    /// project's Redis rules: nothing to read directly.
    Memory,
    Redis {
        url: String,
    },
    Pgsql {
        client: tokio_postgres::Client,
        url: String,
    },
    Mysql {
        pool: mysql_async::Pool,
        url: String,
    },
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

impl Db {
    pub async fn redis() -> Db {
        let url = env_or("REDIS_URL", "redis://127.0.0.1:6379");
        let db = Db::Redis { url };
        // Fail loudly, naming the server, when it is down.
        db.redis_conn().await;
        db
    }

    pub async fn pgsql() -> Db {
        let url = env_or("PGSQL_URL", "postgres://root:public@127.0.0.1:5432/mqtt");
        let (client, conn) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_postgres::connect(&url, tokio_postgres::NoTls),
        )
        .await
        .unwrap_or_else(|_| panic!("PostgreSQL at PGSQL_URL did not answer within 10 s"))
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at PGSQL_URL is unreachable ({e}); run scripts/services.sh postgres")
        });
        tokio::spawn(conn);
        Db::Pgsql { client, url }
    }

    pub async fn mysql() -> Db {
        let url = env_or("MYSQL_URL", "mysql://root:public@127.0.0.1:3306/mqtt");
        let opts = mysql_async::Opts::from_url(&url)
            .unwrap_or_else(|e| panic!("MYSQL_URL is not a mysql:// URL: {e}"));
        let opts = mysql_async::OptsBuilder::from_opts(opts)
            .prefer_socket(false)
            .init(vec!["SET time_zone = '+00:00'"]);
        let pool = mysql_async::Pool::new(opts);
        let db = Db::Mysql { pool, url };
        // Fail loudly, naming the server, when it is down.
        drop(db.mysql_conn().await);
        db
    }

    async fn mysql_conn(&self) -> mysql_async::Conn {
        let Db::Mysql { pool, .. } = self else {
            unreachable!("not mysql")
        };
        tokio::time::timeout(Duration::from_secs(10), pool.get_conn())
            .await
            .unwrap_or_else(|_| panic!("MySQL/MariaDB at MYSQL_URL did not answer within 10 s"))
            .unwrap_or_else(|e| {
                panic!(
                    "MySQL/MariaDB at MYSQL_URL is unreachable ({e}); run scripts/services.sh mariadb"
                )
            })
    }

    async fn redis_conn(&self) -> redis::aio::MultiplexedConnection {
        let Db::Redis { url } = self else {
            unreachable!("not redis")
        };
        // The project's Redis configuration uses database 1.
        let url = format!("{}/1", url.trim_end_matches('/'));
        let client =
            redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("REDIS_URL {url}: {e}"));
        tokio::time::timeout(
            Duration::from_secs(10),
            client.get_multiplexed_async_connection(),
        )
        .await
        .unwrap_or_else(|_| panic!("Redis at REDIS_URL did not answer within 10 s"))
        .unwrap_or_else(|e| {
            panic!("Redis at REDIS_URL is unreachable ({e}); run scripts/services.sh redis")
        })
    }

    pub fn memory() -> Db {
        Db::Memory
    }

    /// The broker's arguments for this database: its conf file (see
    /// [`Db::config_file`]) and, for `Memory`, `--backend memory`.
    pub fn broker_args(&self, name: &str, extra: &[String]) -> Vec<String> {
        let mut args = vec![
            "--config".to_owned(),
            self.config_file(name, extra).display().to_string(),
        ];
        if let Db::Memory = self {
            args.extend(["--backend".to_owned(), "memory".to_owned()]);
        }
        args
    }

    /// The project's conf file for this database, pointed at the test
    /// server, with `extra` lines appended; written to a temp file.
    pub fn config_file(&self, name: &str, extra: &[String]) -> PathBuf {
        let (file, mut lines) = match self {
            Db::Memory => ("emqx_backend_redis.conf", Vec::new()),
            Db::Redis { url } => {
                let server = url.trim_start_matches("redis://").trim_end_matches('/');
                (
                    "emqx_backend_redis.conf",
                    vec![format!("backend.redis.pool1.server = {server}")],
                )
            }
            Db::Pgsql { url, .. } => {
                let (user, pass, host, db) = parse_url(url, &["postgres://", "postgresql://"]);
                (
                    "emqx_backend_pgsql.conf",
                    vec![
                        format!("backend.pgsql.pool1.server = {host}"),
                        format!("backend.pgsql.pool1.username = {user}"),
                        format!("backend.pgsql.pool1.password = {pass}"),
                        format!("backend.pgsql.pool1.database = {db}"),
                        "backend.pgsql.pool1.create_tables = true".to_owned(),
                    ],
                )
            }
            Db::Mysql { url, .. } => {
                let (user, pass, host, db) = parse_url(url, &["mysql://", "mariadb://"]);
                (
                    "emqx_backend_mysql.conf",
                    vec![
                        format!("backend.mysql.pool1.server = {host}"),
                        format!("backend.mysql.pool1.user = {user}"),
                        format!("backend.mysql.pool1.password = {pass}"),
                        format!("backend.mysql.pool1.database = {db}"),
                        "backend.mysql.pool1.create_tables = true".to_owned(),
                    ],
                )
            }
        };
        let etc = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../etc")).join(file);
        let base =
            std::fs::read_to_string(&etc).unwrap_or_else(|e| panic!("{}: {e}", etc.display()));
        // An extra line replaces a line of the same key set above.
        for e in extra {
            if let Some((k, _)) = e.split_once(" = ") {
                lines.retain(|l| l.split_once(" = ").map(|(lk, _)| lk) != Some(k));
            }
            lines.push(e.clone());
        }
        // Drop the base file's settings that the test overrides.
        let overridden: Vec<String> = lines
            .iter()
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.to_owned()))
            .collect();
        let mut text: String = base
            .lines()
            .filter(|l| {
                !overridden.iter().any(|k| {
                    l.trim_start().starts_with(&format!("{k} "))
                        || l.trim_start().starts_with(&format!("{k}="))
                })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.conf"));
        std::fs::write(&path, text).expect("write the test config");
        path
    }

    /// The client's recorded status, if any.
    pub async fn status(&self, client_id: &str) -> Option<Status> {
        match self {
            Db::Memory => panic!("the in-memory backend cannot be read from outside the broker"),
            Db::Redis { .. } => {
                let mut c = self.redis_conn().await;
                let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                    .arg(format!("mqtt:client:{client_id}"))
                    .query_async(&mut c)
                    .await
                    .expect("HGETALL mqtt:client");
                if h.is_empty() {
                    return None;
                }
                let set = |k: &str| h.get(k).is_some_and(|v| !v.is_empty() && v != "undefined");
                Some(Status {
                    state: h.get("state").and_then(|s| s.parse().ok()).unwrap_or(-1),
                    node: h.get("node").cloned().unwrap_or_default(),
                    online_at: set("online_at"),
                    offline_at: set("offline_at"),
                })
            }
            Db::Pgsql { client, .. } => {
                let row = client
                    .query_opt(
                        "select state, node, online_at is not null, offline_at is not null from mqtt_client where clientid = $1",
                        &[&client_id],
                    )
                    .await
                    .expect("select from mqtt_client")?;
                Some(Status {
                    state: i64::from(row.get::<_, i32>(0)),
                    node: row.get(1),
                    online_at: row.get(2),
                    offline_at: row.get(3),
                })
            }
            Db::Mysql { .. } => {
                use mysql_async::prelude::Queryable;
                let mut c = self.mysql_conn().await;
                let row: Option<(String, String, bool, bool)> = c
                    .exec_first(
                        "select state, node, online_at is not null, offline_at is not null from mqtt_client where clientid = ?",
                        (client_id,),
                    )
                    .await
                    .expect("select from mqtt_client");
                let (state, node, online_at, offline_at) = row?;
                Some(Status {
                    state: state.parse().unwrap_or(-1),
                    node,
                    online_at,
                    offline_at,
                })
            }
        }
    }

    /// Stores a proxy subscription the way a business server would.
    pub async fn add_subscription(&self, client_id: &str, topic: &str, qos: i32) {
        match self {
            Db::Memory => panic!("the in-memory backend cannot be written from outside the broker"),
            Db::Redis { .. } => {
                let mut c = self.redis_conn().await;
                let _: i64 = redis::cmd("HSET")
                    .arg(format!("mqtt:sub:{client_id}"))
                    .arg(topic)
                    .arg(qos)
                    .query_async(&mut c)
                    .await
                    .expect("HSET mqtt:sub");
            }
            Db::Pgsql { client, .. } => {
                client
                    .execute(
                        "insert into mqtt_sub(clientid, topic, qos) values($1, $2, $3)",
                        &[&client_id, &topic, &qos],
                    )
                    .await
                    .expect("insert into mqtt_sub");
            }
            Db::Mysql { .. } => {
                use mysql_async::prelude::Queryable;
                let mut c = self.mysql_conn().await;
                c.exec_drop(
                    "insert into mqtt_sub(clientid, topic, qos) values(?, ?, ?)",
                    (client_id, topic, qos),
                )
                .await
                .expect("insert into mqtt_sub");
            }
        }
    }

    /// Publishes a SUB/UNSUB command on the Redis channel.
    pub async fn publish_channel(&self, channel: &str, json: &str) {
        let mut c = self.redis_conn().await;
        let _: i64 = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(json)
            .query_async(&mut c)
            .await
            .expect("PUBLISH");
    }
}

/// user, password, host:port, database of a postgres:// or mysql:// URL.
fn parse_url(url: &str, schemes: &[&str]) -> (String, String, String, String) {
    let rest = schemes
        .iter()
        .find_map(|s| url.strip_prefix(s))
        .unwrap_or(url);
    let (auth, rest) = rest.split_once('@').unwrap_or(("root:public", rest));
    let (user, pass) = auth.split_once(':').unwrap_or((auth, ""));
    let (host, db) = rest.split_once('/').unwrap_or((rest, "mqtt"));
    let db = db.split('?').next().unwrap_or("mqtt");
    (user.into(), pass.into(), host.into(), db.into())
}
