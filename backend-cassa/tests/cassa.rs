//! Cassandra-specific behaviour against the live cluster: bounded waits
//! and clear errors when the cluster, the password or the keyspace is
//! wrong; the seed's configuration; raw CQL with hostile values; a batch
//! over Cassandra's batch size limit; a batch of statements the server
//! has forgotten.

mod common;

use backend_core::testkit::OrPanic;
use std::time::{Duration, Instant};

use backend_cassa::{CassaBackend, CassaError};
use backend_core::config::PoolConfig;
use backend_core::{
    Backend, Bytes, Config, ErrorKind, FetchRequest, Message, OfflineMode, QoS, Statement, Value,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .or_panic("tokio runtime")
}

fn with(pool: PoolConfig, key: &str, value: &str) -> PoolConfig {
    let mut p = pool;
    p.set(key, value).or_panic(&format!("setting {key}"));
    p
}

async fn connect(pool: PoolConfig) -> Result<CassaBackend, CassaError> {
    let conf = Config::new(backend_cassa::KIND).with_pool(pool.clone());
    CassaBackend::connect(&pool, &conf).await
}

/// Runs raw CQL without values, panicking with `what` if it fails.
async fn cql(b: &CassaBackend, text: String, what: &str) {
    b.execute(&Statement::Query {
        text: text.into(),
        params: Vec::new(),
    })
    .await
    .or_panic(what);
}

/// A keyspace of this test process's own, `<prefix>_<pid>`, made now.
async fn scratch_keyspace(b: &CassaBackend, prefix: &str) -> String {
    let ks = format!("{prefix}_{}", std::process::id());
    let create = format!(
        "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = \
         {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    );
    cql(b, create, "create keyspace").await;
    ks
}

/// Every message stored under `topic`, read as a queue in one fetch.
async fn queued(b: &CassaBackend, client: &str, topic: &str) -> Vec<Message> {
    let req = FetchRequest::new(client, topic, OfflineMode::Queue);
    b.fetch_messages(&req).await.or_panic("fetch_messages")
}

#[test]
fn an_unreachable_cluster_fails_in_time_naming_the_nodes() {
    rt().block_on(async {
        let pool = with(
            with(common::pool("pool1"), "nodes", "127.0.0.1:1,127.0.0.1:2"),
            "connect_timeout",
            "2s",
        );
        let started = Instant::now();
        let e = connect(pool).await.expect_err("nothing listens there");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        let text = e.to_string();
        assert!(
            text.contains("127.0.0.1:1") && text.contains("127.0.0.1:2"),
            "{text}"
        );
        assert_eq!(e.kind(), ErrorKind::Connection, "{text}");
        assert!(e.is_retryable());
    });
}

#[test]
fn a_wrong_password_is_a_config_error_that_never_shows_it() {
    rt().block_on(async {
        let pool = with(common::pool("pool1"), "password", "not-the-password-42");
        let started = Instant::now();
        let e = connect(pool).await.expect_err("a wrong password");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "took {:?}",
            started.elapsed()
        );
        let text = format!("{e} {e:?}");
        assert!(matches!(e, CassaError::Authentication { .. }), "{text}");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!text.contains("not-the-password-42"), "{text}");
    });
}

#[test]
fn a_missing_keyspace_is_named() {
    rt().block_on(async {
        let pool = with(common::pool("pool1"), "keyspace", "no_such_keyspace_here");
        let e = connect(pool).await.expect_err("no keyspace");
        assert!(matches!(e, CassaError::MissingKeyspace { .. }), "{e}");
        assert!(e.to_string().contains("no_such_keyspace_here"), "{e}");
        assert_eq!(e.kind(), ErrorKind::Config);
    });
}

#[test]
fn the_seeds_configuration_connects_and_runs_its_rules() {
    rt().block_on(async {
        // The project's copy of the seed's Cassandra block (the line with
        // the seed's typo fixed), pointed at the test cluster; the tables
        // are created because create_tables is on by default.
        let seed = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../etc/emqx_backend_cassa.conf"
        ))
        .or_panic("etc/emqx_backend_cassa.conf");
        let text = seed
            .replace(
                "backend.ecql.pool1.nodes = 127.0.0.1:9042",
                &format!("backend.ecql.pool1.nodes = {}", common::nodes()),
            )
            .replace(
                "backend.ecql.pool1.username = cassandra",
                &format!("backend.ecql.pool1.username = {}", common::user()),
            )
            .replace(
                "backend.ecql.pool1.password = cassandra",
                &format!(
                    "backend.ecql.pool1.password = {}\nbackend.ecql.pool1.query_mode = sync",
                    common::password()
                ),
            );
        let conf = Config::parse(&text).or_panic("the seed's conf");
        let pools = backend_cassa::connect_pools(&conf)
            .await
            .or_panic("connect");
        let engine = backend_core::Engine::new(&conf, &pools).or_panic("Engine::new");
        let client = backend_core::testkit::unique("seed-cassa");
        let ev = backend_core::ClientConnected {
            client: backend_core::ClientInfo::new(client.as_str(), "node1"),
            timestamp: backend_core::Timestamp::now(),
        };
        let outcome = engine.on_client_connected(&ev).await;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let status = pools["pool1"]
            .client_status(&client)
            .await
            .or_panic("client_status")
            .expect("a status row");
        assert!(status.online);
        assert_eq!(status.node, "node1");
    });
}

#[test]
fn raw_cql_binds_every_value() {
    rt().block_on(async {
        let b = common::connect().await;
        let topic = backend_core::testkit::unique("raw/cql");
        let run = |text: &str, params: Vec<Value>| {
            let b = b.clone();
            let text = text.to_owned();
            async move {
                b.execute(&Statement::Query {
                    text: text.into(),
                    params,
                })
                .await
            }
        };
        run(
            "insert into retain (topic, msgid, sender, qos, payload, arrived) values (?, ?, ?, ?, ?, ?)",
            vec![
                Value::from(topic.as_str()),
                Value::from("id ' \r\n \0 x"),
                Value::from("'); DROP KEYSPACE mqtt; --"),
                Value::Text("1".into()),
                Value::Bytes(Bytes::from_static(b"\x00\xff\xfe")),
                Value::Time(backend_core::Timestamp::from_millis(1_700_000_000_123)),
            ],
        )
        .await
        .or_panic("insert");
        let rows = run(
            "select msgid, sender, qos, payload, arrived from retain where topic = ?",
            vec![Value::from(topic.as_str())],
        )
        .await
        .or_panic("select");
        assert_eq!(
            rows,
            vec![vec![
                Value::from("id ' \r\n \0 x"),
                Value::from("'); DROP KEYSPACE mqtt; --"),
                Value::Int(1),
                Value::Bytes(Bytes::from_static(b"\x00\xff\xfe")),
                Value::Time(backend_core::Timestamp::from_millis(1_700_000_000_123)),
            ]]
        );
        // A value that does not fit its marker is a clear error, not a panic.
        let e = run(
            "select msgid from retain where topic = ? and qos = ? allow filtering",
            vec![Value::from(topic.as_str()), Value::from("not a number")],
        )
        .await
        .expect_err("text for an int");
        assert!(e.to_string().contains("parameter 2"), "{e}");
        let e = run("select * from retain where topic = ?", Vec::new())
            .await
            .expect_err("too few values");
        assert!(e.to_string().contains("1 marker(s) but 0 value(s)"), "{e}");
        let e = run("this is not cql", Vec::new()).await.expect_err("syntax");
        assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    });
}

#[test]
fn a_large_batch_is_split_under_the_batch_limit() {
    rt().block_on(async {
        let b = common::connect().await;
        let topic = backend_core::testkit::unique("big/batch");
        // 200 messages of 2 KiB: 400 KiB, eight times the server's limit
        // for one batch.
        let msgs: Vec<Message> = (0..200)
            .map(|i| {
                Message::new(
                    "p",
                    topic.as_str(),
                    QoS::AtLeastOnce,
                    vec![(i % 251) as u8; 2048],
                )
            })
            .collect();
        b.store_messages(&msgs, Default::default())
            .await
            .or_panic("store");
        let got = queued(&b, "big", &topic).await;
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        let want: Vec<&str> = msgs.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, want, "all 200, in store order");
        assert!(got.iter().zip(&msgs).all(|(g, m)| g.payload == m.payload));
    });
}

#[test]
fn a_missing_table_is_named_when_create_tables_is_off() {
    rt().block_on(async {
        let b = common::connect().await;
        // A keyspace of its own with no tables, made through raw CQL.
        let ks = scratch_keyspace(&b, "mqtt_empty").await;
        let pool = with(
            with(common::pool("pool1"), "keyspace", &ks),
            "create_tables",
            "false",
        );
        let e = connect(pool).await.expect_err("no tables");
        let text = e.to_string();
        assert!(text.contains("table `client` does not exist"), "{text}");
        assert!(text.contains("etc/emqx_backend_cassa.cql"), "{text}");
        assert_eq!(e.kind(), ErrorKind::Config);
        cql(&b, format!("DROP KEYSPACE IF EXISTS {ks}"), "drop keyspace").await;
    });
}

#[test]
fn a_batch_whose_statements_the_server_forgot_is_prepared_again() {
    rt().block_on(async {
        let b = common::connect().await;
        let ks = scratch_keyspace(&b, "mqtt_reprepare").await;
        let pool = with(common::pool("pool1"), "keyspace", &ks);
        let writer = connect(pool.clone()).await.or_panic("connect");
        let topic = backend_core::testkit::unique("reprepare");
        let batch = |n: usize| -> Vec<Message> {
            (0..n)
                .map(|i| Message::new("p", topic.as_str(), QoS::AtLeastOnce, vec![i as u8]))
                .collect()
        };
        writer
            .store_messages(&batch(3), Default::default())
            .await
            .or_panic("first store");
        // Dropping the table makes the server forget the statements
        // prepared on it; a second pool creates it again. The writer's
        // cached statement ids are then unknown to the server, and its
        // next batch is answered "unprepared".
        cql(&b, format!("DROP TABLE {ks}.msg"), "drop table").await;
        connect(pool)
            .await
            .or_panic("connect again, creating the table");
        let again = batch(3);
        writer
            .store_messages(&again, Default::default())
            .await
            .or_panic("a store after the server forgot its statements");
        let got = queued(&writer, "reprepare", &topic).await;
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        let want: Vec<&str> = again.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, want, "the second batch, whole, in order");
        cql(&b, format!("DROP KEYSPACE IF EXISTS {ks}"), "drop keyspace").await;
    });
}

#[test]
fn a_first_contact_point_that_is_down_is_passed_over() {
    rt().block_on(async {
        let nodes = format!("127.0.0.1:1,{}", common::nodes());
        let pool = with(
            with(common::pool("pool1"), "nodes", &nodes),
            "connect_timeout",
            "3s",
        );
        let b = connect(pool).await.or_panic("the second node answers");
        let topic = backend_core::testkit::unique("second/node");
        let m = Message::new("p", topic.as_str(), QoS::AtLeastOnce, "via the second node");
        b.store_messages(std::slice::from_ref(&m), Default::default())
            .await
            .or_panic("store");
        let got = queued(&b, "second", &topic).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, m.id);
    });
}
