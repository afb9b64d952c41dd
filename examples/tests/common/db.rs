//! The databases behind the end-to-end tests, read and written directly
//! with their drivers to check what the broker stored.

use std::path::PathBuf;
use std::time::Duration;

use backend_core::BackendKind;
use examples::testbed;

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
    /// Read and written through the backend itself (the test set-up's
    /// server is FerretDB).
    Mongo {
        url: String,
    },
    /// Read and written through the backend itself.
    Cassa {
        url: String,
    },
    /// A database file the broker and the test both open.
    Sqlite {
        url: String,
    },
}

/// The linked backend kind called `name` (its crate is a cargo feature of
/// the examples).
pub fn kind(name: &str) -> BackendKind {
    BackendKind::named(name).unwrap_or_else(|| {
        panic!("the {name} backend is not built into this test: run with `--features {name}`")
    })
}

impl Db {
    pub async fn redis() -> Db {
        let url = testbed::server_url(kind("redis"));
        let db = Db::Redis { url };
        // Fail loudly, naming the server, when it is down.
        db.redis_conn().await;
        db
    }

    pub async fn pgsql() -> Db {
        let url = testbed::server_url(kind("pgsql"));
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
        let url = testbed::server_url(kind("mysql"));
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

    pub async fn mongo() -> Db {
        let db = Db::Mongo {
            url: testbed::server_url(kind("mongo")),
        };
        // Fail loudly, naming the server, when it is down.
        drop(db.backend().await);
        db
    }

    pub async fn cassa() -> Db {
        let db = Db::Cassa {
            url: testbed::server_url(kind("cassa")),
        };
        // Fail loudly, naming the server, when it is down.
        drop(db.backend().await);
        db
    }

    /// A SQLite file of this test run under the target folder, emptied
    /// when first asked for.
    pub async fn sqlite() -> Db {
        static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        let path = PATH.get_or_init(|| {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-sqlite.db");
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
            path
        });
        let db = Db::Sqlite {
            url: path.display().to_string(),
        };
        drop(db.backend().await);
        db
    }

    /// The backend the broker uses, connected from the test.
    async fn backend(&self) -> std::sync::Arc<dyn backend_core::Backend> {
        let url = match self {
            Db::Memory => panic!("the in-memory backend has no server"),
            Db::Redis { url }
            | Db::Pgsql { url, .. }
            | Db::Mysql { url, .. }
            | Db::Mongo { url }
            | Db::Cassa { url }
            | Db::Sqlite { url } => url,
        };
        let text = testbed::conf_text(self.kind(), Some(url), &[], true).expect("conf");
        let config = backend_core::Config::parse(&text).expect("valid conf");
        let started = examples::backends::connect(
            &config,
            examples::backends::Storage::Configured,
            backend_core::StartMode::Required,
        )
        .await
        .unwrap_or_else(|e| panic!("{} at {url} is unreachable: {e}", self.kind()));
        started.pools.get("pool1").expect("pool1").clone()
    }

    /// The kind of the conf the broker runs.
    pub fn kind(&self) -> BackendKind {
        match self {
            Db::Memory | Db::Redis { .. } => kind("redis"),
            Db::Pgsql { .. } => kind("pgsql"),
            Db::Mysql { .. } => kind("mysql"),
            Db::Mongo { .. } => kind("mongo"),
            Db::Cassa { .. } => kind("cassa"),
            Db::Sqlite { .. } => kind("sqlite"),
        }
    }

    /// Takes the local server away: PostgreSQL and MariaDB are stopped
    /// (`scripts/services.sh stop`), so connections are refused; Redis,
    /// which the services script runs without persistence, is frozen
    /// (SIGSTOP), so requests hang and time out, and its data survives.
    pub fn stop_server(&self) {
        match self {
            Db::Memory | Db::Sqlite { .. } => panic!("{} has no server", self.kind()),
            Db::Redis { .. } => signal_redis("-STOP"),
            Db::Pgsql { .. } => services("stop", "postgres"),
            Db::Mysql { .. } => services("stop", "mariadb"),
            Db::Mongo { .. } => services("stop", "ferretdb"),
            Db::Cassa { .. } => services("stop", "cassandra"),
        }
    }

    /// Takes the server away ([`Db::stop_server`]) until the returned
    /// guard ends the outage, or is dropped: a test that fails midway
    /// leaves the server running for the tests after it.
    pub fn outage(&self) -> Outage<'_> {
        self.stop_server();
        Outage { db: self, on: true }
    }

    /// Brings the server back after [`Db::stop_server`].
    pub fn start_server(&self) {
        match self {
            Db::Memory | Db::Sqlite { .. } => panic!("{} has no server", self.kind()),
            Db::Redis { .. } => signal_redis("-CONT"),
            Db::Pgsql { .. } => services("start", "postgres"),
            Db::Mysql { .. } => services("start", "mariadb"),
            Db::Mongo { .. } => services("start", "ferretdb"),
            Db::Cassa { .. } => services("start", "cassandra"),
        }
    }

    /// Every message stored on topics under `filter`, read back in queue
    /// mode through the backend the broker uses, as payload strings.
    pub async fn stored_payloads(&self, filter: &str) -> Vec<String> {
        let backend = self.backend().await;
        let req = backend_core::FetchRequest {
            client_id: format!("reader-{filter}"),
            filter: filter.to_owned(),
            mode: backend_core::OfflineMode::Queue,
            max_count: None,
            since: None,
            page: None,
        };
        backend
            .fetch_messages(&req)
            .await
            .unwrap_or_else(|e| panic!("read back {filter}: {e}"))
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect()
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

    /// Removes the stored messages under `filter` (read and acked in queue
    /// mode through the backend), so that a test storing many leaves the
    /// shared server as it found it (FerretDB scans whole collections, so
    /// every later test there would pay for them). Nothing for memory.
    pub async fn remove_messages(&self, filter: &str) {
        if let Db::Memory = self {
            return;
        }
        let backend = self.backend().await;
        testbed::remove_stored(&*backend, filter)
            .await
            .unwrap_or_else(|e| panic!("remove the messages under {filter}: {e}"));
    }

    /// Conf lines that make the project's conf fetch and ack offline
    /// messages in queue mode on every topic (its own rules are pubsub on
    /// `#`); none for Redis and memory, whose conf has `queue/#` rules.
    pub fn queue_rules(&self) -> Vec<String> {
        let kind = match self {
            Db::Memory | Db::Redis { .. } => return Vec::new(),
            Db::Pgsql { .. } => "pgsql",
            Db::Mysql { .. } => "mysql",
            Db::Mongo { .. } => "mongo",
            Db::Cassa { .. } => "cassa",
            Db::Sqlite { .. } => "sqlite",
        };
        vec![
            format!(
                r##"backend.{kind}.hook.session.subscribed.1 = {{"topic": "#", "action": {{"function": "on_message_fetch_for_queue"}}, "pool": "pool1"}}"##
            ),
            format!(
                r##"backend.{kind}.hook.message.acked.1 = {{"topic": "#", "action": {{"function": "on_message_acked_for_queue"}}, "pool": "pool1"}}"##
            ),
        ]
    }

    /// The project's conf file for this database, pointed at the test
    /// server, with `extra` lines appended; written to a temp file.
    pub fn config_file(&self, name: &str, extra: &[String]) -> PathBuf {
        let (kind, url) = match self {
            Db::Memory => (kind("redis"), None),
            Db::Redis { url } => (kind("redis"), Some(url.as_str())),
            Db::Pgsql { url, .. } => (kind("pgsql"), Some(url.as_str())),
            Db::Mysql { url, .. } => (kind("mysql"), Some(url.as_str())),
            Db::Mongo { url } => (kind("mongo"), Some(url.as_str())),
            Db::Cassa { url } => (kind("cassa"), Some(url.as_str())),
            Db::Sqlite { url } => (kind("sqlite"), Some(url.as_str())),
        };
        let text = testbed::conf_text(kind, url, extra, true).unwrap_or_else(|e| panic!("{e}"));
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
            Db::Mongo { .. } | Db::Cassa { .. } | Db::Sqlite { .. } => {
                let st = self
                    .backend()
                    .await
                    .client_status(client_id)
                    .await
                    .expect("client_status")?;
                Some(Status {
                    state: i64::from(st.online),
                    node: st.node,
                    online_at: st.online_at.is_some(),
                    offline_at: st.offline_at.is_some(),
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
            Db::Mongo { .. } | Db::Cassa { .. } | Db::Sqlite { .. } => {
                let qos = backend_core::QoS::try_from(u8::try_from(qos).expect("qos 0..2"))
                    .expect("qos 0..2");
                self.backend()
                    .await
                    .store_subscriptions(client_id, &[backend_core::Subscription::new(topic, qos)])
                    .await
                    .expect("store_subscriptions");
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

fn services(cmd: &str, service: &str) {
    let script = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/services.sh"
    ));
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args([cmd, service])
        .output()
        .expect("run scripts/services.sh");
    assert!(
        out.status.success(),
        "services.sh {cmd} {service} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn signal_redis(signal: &str) {
    let pidfile = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/services/redis/redis.pid"
    ));
    let pid = std::fs::read_to_string(&pidfile).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the outage test needs the local Redis of scripts/services.sh",
            pidfile.display()
        )
    });
    let ok = std::process::Command::new("kill")
        .args([signal, pid.trim()])
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill {signal} {}", pid.trim());
}

/// A server taken away by [`Db::outage`].
pub struct Outage<'a> {
    db: &'a Db,
    on: bool,
}

impl Outage<'_> {
    /// Brings the server back.
    pub fn end(mut self) {
        self.on = false;
        self.db.start_server();
    }
}

impl Drop for Outage<'_> {
    fn drop(&mut self) {
        if self.on {
            // Unwinding already: a second panic here would abort.
            let db = self.db;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.start_server()));
        }
    }
}
