//! MongoDB-specific tests against the live server (`MONGO_URL`, default
//! mongodb://127.0.0.1:27017, database `mqtt_backend_test`): documents as the seed shows
//! them, `payload_format` both ways with hostile payloads, indexes (and what
//! `explain` says), the configuration mapping, errors.

mod common;

use backend_core::testkit::OrPanic;
use std::sync::Arc;

use backend_core::config::PoolConfig;
use backend_core::hook::ClientInfo;
use backend_core::testkit::unique;
use backend_core::{
    Ack, Backend, Config, ErrorKind, FetchRequest, Message, OfflineMode, PayloadFormat, QoS,
    Subscription, Timestamp, WriteOptions,
};
use backend_mongo::mongodb::bson::{doc, Bson, Document};
use backend_mongo::mongodb::options::{Acknowledgment, ReadPreference, SelectionCriteria, Tls};
use backend_mongo::{MongoBackend, MongoConfig};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .or_panic("tokio runtime")
}

async fn one(b: &MongoBackend, coll: &str, filter: Document) -> Document {
    common::coll(b, coll)
        .find_one(filter.clone())
        .await
        .or_panic(&format!("find_one {coll} {filter}"))
        .unwrap_or_else(|| panic!("no document in {coll} for {filter}"))
}

fn queue(topic: &str) -> FetchRequest {
    FetchRequest {
        client_id: "reader".into(),
        filter: topic.into(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    }
}

#[test]
fn documents_as_the_seed_shows_them() {
    rt().block_on(async {
        let b = common::connect().await;
        let id = unique("seed");
        let client = ClientInfo::new(id.clone(), "emqx@127.0.0.1");
        let t0 = Timestamp::from_secs(1_482_976_411);
        b.client_online(&client, t0).await.or_panic("client_online");
        let d = one(&b, "mqtt_client", doc! { "clientid": &id }).await;
        assert_eq!(d.get("state"), Some(&Bson::Int32(1)));
        assert_eq!(d.get_str("node").ok(), Some("emqx@127.0.0.1"));
        assert_eq!(d.get("online_at"), Some(&Bson::Int64(1_482_976_411)));
        assert_eq!(d.get("offline_at"), Some(&Bson::Null));
        b.client_offline(&client, Timestamp::from_secs(1_482_976_501))
            .await
            .or_panic("client_offline");
        let d = one(&b, "mqtt_client", doc! { "clientid": &id }).await;
        assert_eq!(d.get("state"), Some(&Bson::Int32(0)));
        assert_eq!(d.get("online_at"), Some(&Bson::Int64(1_482_976_411)));
        assert_eq!(d.get("offline_at"), Some(&Bson::Int64(1_482_976_501)));

        b.store_subscriptions(&id, &[Subscription::new("test_topic1", QoS::AtLeastOnce)])
            .await
            .or_panic("store_subscriptions");
        let d = one(&b, "mqtt_sub", doc! { "clientid": &id }).await;
        assert_eq!(d.get_str("topic").ok(), Some("test_topic1"));
        assert_eq!(d.get("qos"), Some(&Bson::Int32(1)));
        // A subscription inserted by hand as the seed does is read back.
        common::coll(&b, "mqtt_sub")
            .insert_one(doc! { "clientid": &id, "topic": "test_topic2", "qos": 2.0 })
            .await
            .or_panic("insert_one");
        let subs = b.lookup_subscriptions(&id).await.or_panic("lookup");
        assert_eq!(
            subs,
            vec![
                Subscription::new("test_topic1", QoS::AtLeastOnce),
                Subscription::new("test_topic2", QoS::ExactlyOnce)
            ]
        );

        let topic = format!("{id}/t");
        let mut m = Message::new(id.clone(), topic.clone(), QoS::ExactlyOnce, "Hello");
        m.timestamp = t0;
        b.store_messages(std::slice::from_ref(&m), WriteOptions::default())
            .await
            .or_panic("store_messages");
        let d = one(&b, "mqtt_msg", doc! { "msgid": &m.id }).await;
        assert!(
            matches!(d.get("_id"), Some(Bson::Int64(i)) if *i > 0),
            "{d}"
        );
        assert_eq!(d.get_str("topic").ok(), Some(topic.as_str()));
        assert_eq!(d.get_str("sender").ok(), Some(id.as_str()));
        assert_eq!(d.get("qos"), Some(&Bson::Int32(2)));
        assert_eq!(d.get("retain"), Some(&Bson::Boolean(false)));
        assert_eq!(d.get_str("payload").ok(), Some("Hello"));
        assert_eq!(d.get("arrived"), Some(&Bson::Int64(1_482_976_411)));
        let mongo_id = d.get("_id").cloned();

        let r = m.clone().retained(true);
        b.store_retained(&[r], WriteOptions::default())
            .await
            .or_panic("store_retained");
        let d = one(&b, "mqtt_retain", doc! { "topic": &topic }).await;
        assert_eq!(d.get_str("msgid").ok(), Some(m.id.as_str()));
        assert_eq!(d.get_str("payload").ok(), Some("Hello"));
        assert_eq!(d.get("arrived"), Some(&Bson::Int64(1_482_976_411)));

        b.fetch_messages(&FetchRequest {
            client_id: id.clone(),
            filter: format!("{id}/#"),
            mode: OfflineMode::Pubsub,
            max_count: None,
            since: None,
            page: None,
        })
        .await
        .or_panic("fetch_messages");
        b.ack_messages(
            OfflineMode::Pubsub,
            &[Ack {
                client_id: id.clone(),
                topic: topic.clone(),
                message_id: m.id.clone(),
            }],
        )
        .await
        .or_panic("ack_messages");
        let d = one(&b, "mqtt_acked", doc! { "clientid": &id, "topic": &topic }).await;
        assert_eq!(d.get("mongo_id").cloned(), mongo_id);
        one(
            &b,
            "mqtt_acked",
            doc! { "clientid": &id, "topic": format!("{id}/#") },
        )
        .await;
    });
}

fn hostile_payloads() -> Vec<(&'static str, Vec<u8>)> {
    let mut big_binary = Vec::with_capacity(1 << 20);
    let mut x: u32 = 1;
    while big_binary.len() < 1 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big_binary.push((x >> 16) as u8);
    }
    let big_json = format!("{{\"data\": \"{}\"}}", "x".repeat((1 << 20) - 12));
    vec![
        ("empty", Vec::new()),
        ("text", b"hello world".to_vec()),
        ("nul", b"a\0b\0".to_vec()),
        ("non-utf8", vec![0xff, 0xfe, 0x00, 0xc3, 0x28]),
        (
            "json object",
            b"{ \"temp\" : 21.50, \"b\":1,\"a\":[1,2,{\"c\":null}] }".to_vec(),
        ),
        ("json dup keys", b"{\"a\":1,\"a\":2}".to_vec()),
        (
            "json big int",
            b"{\"n\":123456789012345678901234567890}".to_vec(),
        ),
        ("json dot key", b"{\"a.b\":1}".to_vec()),
        ("json dollar key", b"{\"$set\":{\"x\":1}}".to_vec()),
        ("json nested dollar", b"{\"a\":{\"$gt\":1}}".to_vec()),
        ("json nul key", b"{\"a\\u0000b\":1}".to_vec()),
        ("json empty key", b"{\"\":1}".to_vec()),
        ("json nul value", b"{\"a\":\"x\\u0000y\"}".to_vec()),
        ("json array", b"[1,2,3]".to_vec()),
        ("json scalar", b"42".to_vec()),
        ("json invalid", b"{\"a\":".to_vec()),
        (
            "deep json",
            format!("{}1{}", "{\"a\":".repeat(90), "}".repeat(90)).into_bytes(),
        ),
        ("1 MiB binary", big_binary),
        ("1 MiB json", big_json.into_bytes()),
        ("1 MiB nul text", vec![0u8; 1 << 20]),
    ]
}

/// What the `payload` field must be for a payload in a format.
fn expected_type(name: &str, p: &[u8], format: Option<PayloadFormat>) -> &'static str {
    let json_doc = matches!(
        name,
        "json object" | "json dup keys" | "json big int" | "json nul value" | "1 MiB json"
    );
    if format == Some(PayloadFormat::MongoJson) && json_doc {
        "document"
    } else if std::str::from_utf8(p).is_ok() {
        "string"
    } else {
        "binary"
    }
}

fn type_of(v: Option<&Bson>) -> &'static str {
    match v {
        Some(Bson::Document(_)) => "document",
        Some(Bson::String(_)) => "string",
        Some(Bson::Binary(_)) => "binary",
        _ => "other",
    }
}

/// The payload test's own database: its 1 MiB documents would slow every
/// other test's scans of `mqtt` (FerretDB filters without the indexes), so
/// it starts from an empty database and drops it at the end.
const PAYLOAD_DB: &str = "mqtt_payload_test";

async fn drop_payload_db(b: &MongoBackend) {
    b.client()
        .database(PAYLOAD_DB)
        .drop()
        .await
        .or_panic(&format!("dropping {PAYLOAD_DB}"));
}

#[test]
fn payload_formats_keep_the_exact_bytes() {
    rt().block_on(async {
        drop_payload_db(&common::connect().await).await;
        let b = common::connect_to(PAYLOAD_DB).await;
        let root = unique("payload");
        for format in [
            None,
            Some(PayloadFormat::PlainText),
            Some(PayloadFormat::MongoJson),
        ] {
            let options = WriteOptions {
                payload_format: format,
                ..WriteOptions::default()
            };
            for (name, p) in hostile_payloads() {
                let topic = format!("{root}/{format:?}/{name}");
                let m = Message::new("pub", topic.clone(), QoS::AtLeastOnce, p.clone());
                b.store_messages(std::slice::from_ref(&m), options)
                    .await
                    .or_panic(&format!("{name} {format:?}: store"));
                let got = b
                    .fetch_messages(&queue(&topic))
                    .await
                    .or_panic(&format!("{name} {format:?}: fetch"));
                assert_eq!(got.len(), 1, "{name} {format:?}");
                assert!(got[0].payload == p, "{name} {format:?}: payload changed");
                let d = one(&b, "mqtt_msg", doc! { "msgid": &m.id }).await;
                let want = expected_type(name, &p, format);
                assert_eq!(type_of(d.get("payload")), want, "{name} {format:?}");
                assert_eq!(d.contains_key("payload_raw"), want == "document", "{name}");
                if name == "json object" && want == "document" {
                    // Stored as a document: queryable by field.
                    let n = common::coll(&b, "mqtt_msg")
                        .count_documents(doc! { "msgid": &m.id, "payload.temp": 21.5 })
                        .await
                        .or_panic("count_documents");
                    assert_eq!(n, 1, "payload.temp queryable");
                }

                let r = m.clone().retained(true);
                b.store_retained(&[r], options)
                    .await
                    .or_panic(&format!("{name} {format:?}: retain"));
                let got = b
                    .lookup_retained(&topic)
                    .await
                    .or_panic(&format!("{name} {format:?}: lookup"));
                assert_eq!(got.len(), 1, "{name} {format:?}");
                assert!(
                    got[0].payload == p,
                    "{name} {format:?}: retained payload changed"
                );
            }
        }
        // A retained document replaced by plain text loses its payload_raw.
        let topic = format!("{root}/replace");
        let json = Message::new("p", topic.clone(), QoS::AtLeastOnce, "{\"a\":1}");
        let text = Message::new("p", topic.clone(), QoS::AtLeastOnce, "plain");
        let j = WriteOptions {
            payload_format: Some(PayloadFormat::MongoJson),
            ..WriteOptions::default()
        };
        b.store_retained(&[json], j)
            .await
            .or_panic("store_retained");
        b.store_retained(&[text], WriteOptions::default())
            .await
            .or_panic("store_retained");
        let got = b.lookup_retained(&topic).await.or_panic("lookup_retained");
        assert_eq!(&got[0].payload[..], b"plain");
        let d = one(&b, "mqtt_retain", doc! { "topic": &topic }).await;
        assert!(!d.contains_key("payload_raw"), "{d}");
        drop_payload_db(&b).await;
    });
}

#[test]
fn documents_written_by_other_tools() {
    // Its own database: a retained message with qos 7 in `mqtt` would fail
    // every wildcard lookup of the other tests.
    const DB: &str = "mqtt_foreign_test";
    rt().block_on(async {
        let b = common::connect_to(DB).await;
        b.database()
            .drop()
            .await
            .or_panic(&format!("dropping {DB}"));
        let b = common::connect_to(DB).await;
        let topic = unique("foreign");
        // A message as the seed's EMQX would write it, JSON payload as a
        // document and no payload_raw; a bad qos fails as a Data error.
        common::coll(&b, "mqtt_retain")
            .insert_one(doc! {
                "topic": &topic, "msgid": "m1", "sender": "s", "qos": 1,
                "payload": { "a": 1 }, "arrived": 1_482_976_411_i64,
            })
            .await
            .or_panic("insert_one");
        let got = b.lookup_retained(&topic).await.or_panic("lookup_retained");
        assert_eq!(&got[0].payload[..], b"{\"a\":1}");
        let bad = format!("{topic}-bad");
        common::coll(&b, "mqtt_retain")
            .insert_one(
                doc! { "topic": &bad, "msgid": "m2", "sender": "s", "qos": 7, "payload": "x" },
            )
            .await
            .or_panic("insert_one");
        match b.lookup_retained(&bad).await {
            Err(e) => assert_eq!(e.kind(), ErrorKind::Data, "{e}"),
            Ok(m) => panic!("qos 7 read back as {m:?}"),
        }
        b.database()
            .drop()
            .await
            .or_panic(&format!("dropping {DB}"));
    });
}

#[test]
fn indexes_exist_and_explain() {
    rt().block_on(async {
        let b = common::connect().await;
        for (coll, _, unique, name) in backend_mongo::schema::INDEXES {
            let found = common::coll(&b, coll)
                .list_indexes()
                .await
                .or_panic(&format!("listIndexes {coll}"));
            use futures::TryStreamExt;
            let all: Vec<_> = found.try_collect().await.or_panic("reading the indexes");
            let ix = all
                .iter()
                .find(|i| i.options.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
                .unwrap_or_else(|| panic!("index {name} missing on {coll}"));
            let is_unique = ix.options.as_ref().and_then(|o| o.unique).unwrap_or(false);
            assert_eq!(is_unique, unique, "{name} unique");
        }
        // FerretDB 1.24 answers explain, but its plan is the SQL backend's
        // (no index names): print it rather than assert an IXSCAN.
        let plan = b
            .database()
            .run_command(doc! {
                "explain": { "find": "mqtt_msg", "filter": { "topic": { "$gte": "a/", "$lt": "a0" } } },
                "verbosity": "queryPlanner",
            })
            .await;
        match plan {
            Ok(p) => {
                let text = p.to_string();
                eprintln!("explain of a topic range fetch: {}", &text[..text.len().min(2000)]);
            }
            Err(e) => eprintln!("explain is not supported by this server: {e}"),
        }
    });
}

fn pool(keys: &[(&str, &str)]) -> PoolConfig {
    let mut p = PoolConfig::new(backend_mongo::KIND, "pool1");
    for (k, v) in keys {
        p.set(k, v).or_panic(k);
    }
    p
}

#[test]
fn configuration_mapping() {
    let text = "backend.mongo.pool1.type = rs\n\
        backend.mongo.pool1.rs_set_name = testrs\n\
        backend.mongo.pool1.server = 10.0.0.1:27017,10.0.0.2\n\
        backend.mongo.pool1.c_pool_size = 8\n\
        backend.mongo.pool1.database = mqtt\n\
        backend.mongo.pool1.login = emqtt\n\
        backend.mongo.pool1.password = s3cret-pw\n\
        backend.mongo.pool1.auth_source = admin\n\
        backend.mongo.pool1.w_mode = unsafe\n\
        backend.mongo.pool1.r_mode = slave_ok\n\
        backend.mongo.pool1.ssl = true\n\
        backend.mongo.pool1.cacertfile = /etc/ca.pem\n\
        backend.mongo.pool1.certfile = /etc/client.pem\n\
        backend.mongo.topology.pool_size = 1\n\
        backend.mongo.topology.max_overflow = 0\n\
        backend.mongo.topology.connect_timeout_ms = 20000\n\
        backend.mongo.topology.socket_timeout_ms = 100\n\
        backend.mongo.topology.server_selection_timeout_ms = 30000\n\
        backend.mongo.topology.local_threshold_ms = 1000\n\
        backend.mongo.topology.heartbeat_frequency_ms = 10000\n";
    let config = Config::parse(text).or_panic("Config::parse");
    let c = MongoConfig::from_pool(&config.pools()["pool1"], &config)
        .or_panic("MongoConfig::from_pool");
    let o = &c.options;
    assert_eq!(o.hosts.len(), 2);
    assert_eq!(o.hosts[1].to_string(), "10.0.0.2:27017");
    assert_eq!(o.repl_set_name.as_deref(), Some("testrs"));
    assert_eq!(o.max_pool_size, Some(8));
    assert_eq!(o.min_pool_size, Some(1));
    let cred = o
        .credential
        .as_ref()
        .unwrap_or_else(|| panic!("no credential"));
    assert_eq!(cred.username.as_deref(), Some("emqtt"));
    assert_eq!(cred.source.as_deref(), Some("admin"));
    assert_eq!(
        o.write_concern.as_ref().and_then(|w| w.w.clone()),
        Some(Acknowledgment::Nodes(0))
    );
    assert!(matches!(
        o.selection_criteria,
        Some(SelectionCriteria::ReadPreference(
            ReadPreference::SecondaryPreferred { .. }
        ))
    ));
    assert!(matches!(o.tls, Some(Tls::Enabled(_))));
    assert_eq!(o.connect_timeout, Some(std::time::Duration::from_secs(20)));
    assert_eq!(
        o.server_selection_timeout,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(o.local_threshold, Some(std::time::Duration::from_secs(1)));
    assert_eq!(o.heartbeat_freq, Some(std::time::Duration::from_secs(10)));
    assert_eq!(
        c.ignored_topology,
        vec!["max_overflow", "socket_timeout_ms"]
    );
    let debug = format!("{c:?} {config:?}");
    assert!(!debug.contains("s3cret-pw"), "password in Debug: {debug}");

    // Defaults: single, primary, w: 1, auth source = the database.
    let config = Config::new(backend_mongo::KIND);
    let c = MongoConfig::from_pool(&pool(&[("login", "u"), ("database", "db1")]), &config)
        .or_panic("MongoConfig::from_pool");
    assert_eq!(c.options.direct_connection, Some(true));
    assert_eq!(
        c.options.credential.and_then(|c| c.source).as_deref(),
        Some("db1")
    );
    assert!(matches!(
        c.options.selection_criteria,
        Some(SelectionCriteria::ReadPreference(ReadPreference::Primary))
    ));

    for (keys, key) in [
        (&[("server", "a:1,b:2")][..], "type"),
        (&[("type", "rs")][..], "rs_set_name"),
        (&[("password", "pw-xyz")][..], "login"),
        (&[("ssl", "true"), ("keyfile", "/a.pem")][..], "certfile"),
        (&[("database", "a.b")][..], "database"),
    ] {
        match MongoConfig::from_pool(&pool(keys), &config) {
            Err(e) => {
                let s = e.to_string();
                assert!(s.contains(&format!("backend.mongo.pool1.{key}")), "{s}");
                assert!(!s.contains("pw-xyz"), "{s}");
                assert_eq!(e.kind(), ErrorKind::Config);
            }
            Ok(c) => panic!("{keys:?} accepted: {c:?}"),
        }
    }
}

/// A message whose document would pass the server's 16 MiB limit fails
/// at once as bad input (a `Query` error, not retried, not called a
/// configuration error), and the messages beside it in later writes are
/// stored.
#[test]
fn an_oversize_message_is_bad_input() {
    rt().block_on(async {
        let b = common::connect().await;
        let topic = format!("big/{}", unique("t"));
        let big = Message::new("c", &topic, QoS::AtLeastOnce, vec![7u8; 17 << 20]);
        let e = b
            .store_messages(std::slice::from_ref(&big), WriteOptions::default())
            .await
            .err()
            .unwrap_or_else(|| panic!("a 17 MiB message was stored"));
        assert_eq!(e.kind(), ErrorKind::Query, "{e}");
        assert!(!e.is_retryable(), "{e}");
        let small = Message::new("c", &topic, QoS::AtLeastOnce, "small");
        b.store_messages(std::slice::from_ref(&small), WriteOptions::default())
            .await
            .or_panic("a small message after it");
        let got = b
            .fetch_messages(&queue(&topic))
            .await
            .or_panic("fetch_messages");
        let ids: Vec<_> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, vec![small.id.as_str()]);
        b.ack_messages(
            OfflineMode::Queue,
            &[Ack {
                client_id: "reader".into(),
                topic: topic.clone(),
                message_id: small.id.clone(),
            }],
        )
        .await
        .or_panic("ack");
    });
}

#[test]
fn unreachable_server_is_a_retryable_error_without_the_password() {
    rt().block_on(async {
        let text = "backend.mongo.pool1.server = 127.0.0.1:1\n\
            backend.mongo.pool1.login = u\n\
            backend.mongo.pool1.password = hunter2-secret\n\
            backend.mongo.topology.server_selection_timeout_ms = 500\n\
            backend.mongo.topology.connect_timeout_ms = 500\n";
        let config = Config::parse(text).or_panic("Config::parse");
        match MongoBackend::connect(&config.pools()["pool1"], &config).await {
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                let all = format!("{e} {e:?}");
                assert!(!all.contains("hunter2-secret"), "{all}");
                assert!(all.contains("127.0.0.1:1"), "{all}");
            }
            Ok(b) => panic!("connected to port 1: {b:?}"),
        }
        let wrong = Config::new(backend_core::testkit::kinds::MYSQL);
        match backend_mongo::connect_pools(&wrong).await {
            Err(e) => assert_eq!(e.kind(), ErrorKind::Config),
            Ok(_) => panic!("a mysql config accepted"),
        }
    });
}

#[test]
fn limits_and_wildcards_on_the_server() {
    rt().block_on(async {
        let b = common::connect().await;
        let root = unique("lim");
        let msgs: Vec<Message> = (0..6)
            .map(|i| {
                Message::new(
                    "p",
                    format!("{root}/{}/x", i % 2),
                    QoS::AtLeastOnce,
                    vec![i],
                )
            })
            .collect();
        b.store_messages(&msgs, WriteOptions::default())
            .await
            .or_panic("store_messages");
        let mut req = queue(&format!("{root}/+/x"));
        req.max_count = Some(4);
        let got = b.fetch_messages(&req).await.or_panic("fetch_messages");
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        let want: Vec<&str> = msgs[2..].iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, want);
        let mut req = queue(&format!("{root}/0/x"));
        req.max_count = Some(2);
        let got = b.fetch_messages(&req).await.or_panic("fetch_messages");
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, vec![msgs[2].id.as_str(), msgs[4].id.as_str()]);
        // A prefix whose next character sorts right after it stays out.
        let other = Message::new("p", format!("{root}0/x"), QoS::AtLeastOnce, "o");
        b.store_messages(&[other], WriteOptions::default())
            .await
            .or_panic("store_messages");
        let got = b
            .fetch_messages(&queue(&format!("{root}/#")))
            .await
            .or_panic("fetch_messages");
        assert_eq!(got.len(), 6);
    });
}

/// A writer following the backend's protocol, stopped after it has taken
/// its id from `mqtt_seq` and before it inserts the message.
struct SlowWriter {
    backend: MongoBackend,
    marker: Option<Bson>,
    id: i64,
    message: Option<Message>,
}

#[async_trait::async_trait]
impl backend_core::testkit::InFlightWriter for SlowWriter {
    async fn begin(&mut self, m: &Message) {
        use backend_mongo::schema::{SEQ, WRITERS};
        let seq = common::coll(&self.backend, SEQ);
        let counter = seq
            .find_one(doc! { "_id": "mqtt_msg" })
            .await
            .expect("read mqtt_seq")
            .and_then(|d| {
                d.get("seq")
                    .and_then(Bson::as_i64)
                    .or_else(|| d.get("seq").and_then(Bson::as_i32).map(i64::from))
            })
            .unwrap_or(0);
        let marker = Bson::ObjectId(backend_mongo::mongodb::bson::oid::ObjectId::new());
        common::coll(&self.backend, WRITERS)
            .insert_one(doc! {
                "_id": marker.clone(), "after": counter,
                "at": Timestamp::now().as_secs(), "topics": [&m.topic],
            })
            .await
            .expect("register the writer");
        let after = seq
            .find_one_and_update(
                doc! { "_id": "mqtt_msg" },
                doc! { "$inc": { "seq": 1_i64 } },
            )
            .upsert(true)
            .return_document(backend_mongo::mongodb::options::ReturnDocument::After)
            .await
            .expect("take an id")
            .expect("the counter document");
        self.id = after
            .get("seq")
            .and_then(Bson::as_i64)
            .or_else(|| after.get("seq").and_then(Bson::as_i32).map(i64::from))
            .expect("an integer seq");
        self.marker = Some(marker);
        self.message = Some(m.clone());
    }

    async fn finish(&mut self) {
        use backend_mongo::schema::{MSG, WRITERS};
        let m = self.message.take().expect("begin ran");
        common::coll(&self.backend, MSG)
            .insert_one(doc! {
                "_id": self.id, "topic": &m.topic, "msgid": &m.id, "sender": &m.sender,
                "qos": 1, "retain": false, "payload": "first", "arrived": m.timestamp.as_secs(),
            })
            .await
            .expect("insert the message");
        if let Some(marker) = self.marker.take() {
            common::coll(&self.backend, WRITERS)
                .delete_one(doc! { "_id": marker })
                .await
                .expect("unregister the writer");
        }
    }
}

/// An id taken from the counter but not yet inserted is never passed by a
/// pubsub reader: reads stop below every registered writer's start.
#[test]
fn a_pubsub_reader_never_passes_a_message_not_yet_inserted() {
    rt().block_on(async {
        let b = common::connect().await;
        let mut writer = SlowWriter {
            backend: b.clone(),
            marker: None,
            id: 0,
            message: None,
        };
        backend_core::testkit::reader_never_passes_a_writer_in_flight(Arc::new(b), &mut writer)
            .await;
    });
}
