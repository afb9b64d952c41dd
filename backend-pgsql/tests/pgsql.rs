//! PostgreSQL-specific tests against the live server (`PGSQL_URL`, default
//! postgres://root:public@127.0.0.1:5432/mqtt): the rows as plain SQL sees
//! them, the seed's raw rules, index use, schema checks, raw statement
//! types, error kinds.

mod common;

use backend_core::testkit::OrPanic;
use common::Raw;

use std::sync::Arc;

use backend_core::testkit::unique;
use backend_core::{
    Ack, Backend, Bytes, ClientInfo, Config, Engine, ErrorKind, FetchRequest, Message, OfflineMode,
    QoS, Statement, Subscription, Timestamp, Value,
};
use backend_pgsql::filter::{topic_match, TopicMatch, Wildcard};
use backend_pgsql::statements::{self, Shape};
use backend_pgsql::{PgsqlBackend, PgsqlConfig, PgsqlError};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn request(client: &str, filter: &str, mode: OfflineMode) -> FetchRequest {
    FetchRequest {
        client_id: client.into(),
        filter: filter.into(),
        mode,
        max_count: None,
        since: None,
        page: None,
    }
}

/// The seed's sample times: 2016-11-15 09:40:40 and 09:46:10 UTC.
const ONLINE_AT: Timestamp = Timestamp::from_secs(1_479_202_840);
const OFFLINE_AT: Timestamp = Timestamp::from_secs(1_479_203_170);

#[test]
fn rows_are_readable_with_plain_sql_as_the_seed_shows_them() {
    rt().block_on(async {
        let s = common::server();
        let b = common::connect().await;
        let sql = s.raw().await;
        let id = unique("plain");

        // mqtt_client: state 1, node, online_at, offline_at NULL; then state 0.
        let client = ClientInfo::new(id.clone(), "emqx@127.0.0.1");
        b.client_online(&client, ONLINE_AT).await.expect("online");
        let row = sql
            .query_one(
                "select clientid, state, node, online_at::text, offline_at::text, created is not null \
                 from mqtt_client where clientid = $1",
                &[&id],
            )
            .await
            .expect("select mqtt_client");
        assert_eq!(row.get::<_, &str>(0), id);
        assert_eq!(row.get::<_, i32>(1), 1);
        assert_eq!(row.get::<_, &str>(2), "emqx@127.0.0.1");
        assert_eq!(row.get::<_, &str>(3), "2016-11-15 09:40:40");
        assert_eq!(row.get::<_, Option<&str>>(4), None);
        assert!(row.get::<_, bool>(5), "created is set");
        b.client_offline(&client, OFFLINE_AT).await.expect("offline");
        let row = sql
            .query_one(
                "select state, online_at::text, offline_at::text from mqtt_client where clientid = $1",
                &[&id],
            )
            .await
            .expect("select mqtt_client");
        assert_eq!(row.get::<_, i32>(0), 0);
        assert_eq!(row.get::<_, &str>(1), "2016-11-15 09:40:40");
        assert_eq!(row.get::<_, &str>(2), "2016-11-15 09:46:10");

        // mqtt_sub: the seed's own inserts are what on_subscribe_lookup returns.
        for (topic, qos) in [("test_topic1", 1), ("test_topic2", 2)] {
            sql.execute(
                "insert into mqtt_sub(clientid, topic, qos) values($1, $2, $3)",
                &[&id, &topic, &qos],
            )
            .await
            .expect("the seed's insert into mqtt_sub");
        }
        assert_eq!(
            b.lookup_subscriptions(&id).await.expect("lookup"),
            vec![
                Subscription::new("test_topic1", QoS::AtLeastOnce),
                Subscription::new("test_topic2", QoS::ExactlyOnce),
            ]
        );

        // mqtt_msg: `select * from mqtt_msg where sender = ${clientid}`.
        let root = unique("seedmsg");
        let mut hello = Message::new(id.clone(), format!("{root}/hello"), QoS::AtLeastOnce, "hello");
        hello.timestamp = ONLINE_AT;
        let world = Message::new(id.clone(), format!("{root}/world"), QoS::ExactlyOnce, "world");
        b.store_messages(&[hello.clone(), world.clone()], Default::default())
            .await
            .expect("store");
        let rows = sql
            .query(
                "select id, msgid, topic, sender, node, qos, retain, payload, arrived::text \
                 from mqtt_msg where sender = $1 order by id",
                &[&id],
            )
            .await
            .expect("select mqtt_msg");
        assert_eq!(rows.len(), 2);
        assert!(rows[0].get::<_, i64>(0) < rows[1].get::<_, i64>(0), "ids in store order");
        assert_eq!(rows[0].get::<_, &str>(1), hello.id);
        assert_eq!(rows[0].get::<_, &str>(2), hello.topic);
        assert_eq!(rows[0].get::<_, &str>(3), id);
        assert_eq!(rows[0].get::<_, Option<&str>>(4), None, "node");
        assert_eq!(rows[0].get::<_, i32>(5), 1);
        assert_eq!(rows[0].get::<_, i32>(6), 0);
        assert_eq!(rows[0].get::<_, &[u8]>(7), b"hello");
        assert_eq!(rows[0].get::<_, &str>(8), "2016-11-15 09:40:40");
        assert_eq!(rows[1].get::<_, i32>(5), 2);
        assert_eq!(rows[1].get::<_, &[u8]>(7), b"world");

        // mqtt_retain: `select * from mqtt_retain where topic = ${topic}`.
        let retained = Message::new(id.clone(), format!("{root}/retain"), QoS::AtLeastOnce, "www")
            .retained(true);
        b.store_retained(std::slice::from_ref(&retained), Default::default())
            .await
            .expect("retain");
        let row = sql
            .query_one(
                "select topic, msgid, sender, qos, payload from mqtt_retain where topic = $1",
                &[&retained.topic],
            )
            .await
            .expect("select mqtt_retain");
        assert_eq!(row.get::<_, &str>(1), retained.id);
        assert_eq!(row.get::<_, &str>(2), id);
        assert_eq!(row.get::<_, i32>(3), 1);
        assert_eq!(row.get::<_, &[u8]>(4), b"www");

        // mqtt_acked: the acked message's id, per client and topic.
        let sub = unique("acker");
        let topic = format!("{root}/acked");
        assert!(b
            .fetch_messages(&request(&sub, &topic, OfflineMode::Pubsub))
            .await
            .expect("first fetch")
            .is_empty());
        let start: i64 = sql
            .query_one(
                "select mid from mqtt_acked where clientid = $1 and topic = $2",
                &[&sub, &topic],
            )
            .await
            .expect("the first fetch records the start")
            .get(0);
        let m = Message::new("p", topic.clone(), QoS::AtLeastOnce, "x");
        b.store_messages(std::slice::from_ref(&m), Default::default())
            .await
            .expect("store");
        b.ack_messages(
            OfflineMode::Pubsub,
            &[Ack {
                client_id: sub.clone(),
                topic: topic.clone(),
                message_id: m.id.clone(),
            }],
        )
        .await
        .expect("ack");
        let row = sql
            .query_one(
                "select a.mid, m.id from mqtt_acked a, mqtt_msg m \
                 where a.clientid = $1 and a.topic = $2 and m.msgid = $3",
                &[&sub, &topic, &m.id],
            )
            .await
            .expect("select mqtt_acked");
        assert_eq!(row.get::<_, i64>(0), row.get::<_, i64>(1));
        assert!(row.get::<_, i64>(0) > start);
    });
}

fn seed_engine(b: &PgsqlBackend, extra: &str) -> Engine {
    backend_core::testkit::sql::seed_engine(Arc::new(b.clone()), backend_pgsql::KIND, extra)
}

#[test]
fn the_seeds_delete_ack_rule_resets_the_read_position() {
    rt().block_on(async {
        let b = common::connect().await;
        let acked_rows = |client: String, topic: String| {
            let s = common::server();
            async move {
                let sql = s.raw().await;
                sql.query_one(
                    "select count(*) from mqtt_acked where clientid = $1 and topic = $2",
                    &[&client, &topic],
                )
                .await
                .expect("count")
                .get(0)
            }
        };
        backend_core::testkit::sql::the_seeds_delete_ack_rule_resets_the_read_position(
            Arc::new(b),
            backend_pgsql::KIND,
            acked_rows,
        )
        .await;
    });
}

#[test]
fn a_hostile_value_is_stored_verbatim_and_the_schema_survives() {
    rt().block_on(async {
        let s = common::server();
        let b = common::connect().await;
        let sql = s.raw().await;
        let engine = seed_engine(
            &b,
            r##"backend.pgsql.hook.message.publish.2 = {"topic": "#", "action": {"sql": ["insert into mqtt_msg(msgid, sender, topic, qos, retain, payload, arrived) values (${msgid}, ${clientid}, ${topic}, ${qos}, ${retain}, ${payload}, ${timestamp})"]}, "pool": "pool1"}"##,
        );
        let evil = "'); DROP TABLE mqtt_msg; --";
        // The raw rule stores the message under its msgid; the built-in rule
        // stores it first, so give the raw copy its own id.
        let mut m = Message::new(evil, format!("{}/{evil}", unique("evil")), QoS::AtLeastOnce, evil);
        let out = engine.on_message_publish(&m).await;
        assert_eq!(out.errors.len(), 1, "the raw insert repeats the built-in's msgid");
        assert!(
            out.errors[0].to_string().contains("mqtt_msg_msgid_key"),
            "{}",
            out.errors[0]
        );
        m.id = backend_core::new_message_id();
        let raw_only = Engine::with_backend(
            &Config::parse(
                r##"backend.pgsql.pool1.server = 127.0.0.1:5432
backend.pgsql.pool1.query_mode = sync
backend.pgsql.hook.message.publish.1 = {"topic": "#", "action": {"sql": ["insert into mqtt_msg(msgid, sender, topic, qos, retain, payload, arrived) values (${msgid}, ${clientid}, ${topic}, ${qos}, ${retain}, ${payload}, ${timestamp})"]}, "pool": "pool1"}"##,
            )
            .expect("config"),
            Arc::new(b.clone()),
        )
        .expect("engine");
        let out = raw_only.on_message_publish(&m).await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let row = sql
            .query_one(
                "select sender, topic, payload from mqtt_msg where msgid = $1",
                &[&m.id],
            )
            .await
            .expect("the row is there, and so is the table");
        assert_eq!(row.get::<_, &str>(0), evil);
        assert_eq!(row.get::<_, &str>(1), m.topic);
        assert_eq!(row.get::<_, &[u8]>(2), evil.as_bytes());
        let tables: i64 = sql
            .query_one(
                "select count(*) from unnest(array['mqtt_client','mqtt_sub','mqtt_msg','mqtt_retain','mqtt_acked']) t \
                 where to_regclass(t) is not null",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(tables, 5, "every table survives");
        // The built-in functions store it verbatim too, and find it by exact topic.
        let got = b
            .fetch_messages(&request("evil", &m.topic, OfflineMode::Queue))
            .await
            .expect("fetch");
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|g| g.sender == evil && g.payload == evil.as_bytes()));
    });
}

/// The generic plan of `text` (what a long-lived prepared statement runs,
/// the parameters unknown to the planner) for the given literal arguments.
async fn explain(sql: &tokio_postgres::Client, text: &str, args: &str) -> String {
    sql.batch_execute(&format!(
        "SET plan_cache_mode = force_generic_plan; DEALLOCATE ALL; PREPARE q AS {text}"
    ))
    .await
    .or_panic(&format!("PREPARE {text}"));
    let msgs = sql
        .simple_query(&format!("EXPLAIN EXECUTE q({args})"))
        .await
        .or_panic(&format!("EXPLAIN EXECUTE q({args})"));
    msgs.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_exact_topic_fetch_uses_the_index() {
    rt().block_on(async {
        let s = common::server();
        let b = common::connect().await;
        let sql = s.raw().await;
        let root = unique("explain");
        let sender = unique("explain-pub");
        // 20000 messages on 200 topics, in one call.
        let msgs: Vec<Message> = (0..20_000)
            .map(|i| {
                Message::new(
                    sender.clone(),
                    format!("{root}/{}", i % 200),
                    QoS::AtLeastOnce,
                    "x",
                )
            })
            .collect();
        b.store_messages(&msgs, Default::default())
            .await
            .expect("store");
        sql.batch_execute("ANALYZE mqtt_msg; ANALYZE mqtt_acked")
            .await
            .expect("analyze");
        // The test's own names: no quotes to escape in the literals.
        let topic = format!("{root}/7");
        let queue = explain(
            &sql,
            statements::fetch(false, Shape::Exact, false),
            &format!("NULL, NULL, '{topic}'"),
        )
        .await;
        println!("queue fetch, exact topic:\n{queue}\n");
        let pubsub = explain(
            &sql,
            statements::fetch(true, Shape::Exact, false),
            &format!("NULL, NULL, 'c', '{topic}', '{topic}'"),
        )
        .await;
        println!("pubsub fetch, exact topic:\n{pubsub}\n");
        for plan in [&queue, &pubsub] {
            assert!(
                plan.contains("Index Scan Backward using mqtt_msg_topic_id_idx on mqtt_msg m"),
                "the exact topic is an index lookup:\n{plan}"
            );
            assert!(plan.contains("topic = $"), "a generic plan:\n{plan}");
            assert!(
                !plan.contains("Seq Scan on mqtt_msg"),
                "no scan of mqtt_msg:\n{plan}"
            );
        }
        let range = explain(
            &sql,
            statements::fetch(false, Shape::Range, false),
            &format!("NULL, NULL, '{root}/', '{root}0', '^x$'"),
        )
        .await;
        println!("queue fetch, wildcard `{root}/+`:\n{range}\n");
        assert!(
            range.contains("mqtt_msg_topic_id_idx"),
            "a prefix is an index range:\n{range}"
        );
        // mqtt_retain is a page or two here, where a scan is the right plan;
        // with scans priced out the unique index serves the lookup.
        sql.batch_execute("SET enable_seqscan = off")
            .await
            .expect("set");
        let retained = explain(&sql, statements::RETAINED_EXACT, &format!("'{topic}'")).await;
        println!("retained lookup, exact topic (enable_seqscan off):\n{retained}");
        assert!(retained.contains("mqtt_retain_topic_key"), "{retained}");

        // The batch kept its order: ids ascend in slice order.
        let order: Vec<String> = sql
            .query(
                "select msgid from mqtt_msg where sender = $1 order by id",
                &[&sender],
            )
            .await
            .expect("select")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(order.len(), msgs.len());
        assert!(
            order.iter().zip(&msgs).all(|(a, m)| *a == m.id),
            "store order"
        );
        sql.execute("delete from mqtt_msg where sender = $1", &[&sender])
            .await
            .expect("clean up");
    });
}

/// A database of its own, dropped before and after.
struct Scratch {
    name: &'static str,
}

impl Scratch {
    async fn create(admin: &tokio_postgres::Client, name: &'static str) -> Scratch {
        // Names are this file's constants, not input: DDL cannot bind them.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop the scratch database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the scratch database (needs CREATEDB)");
        Scratch { name }
    }

    async fn drop(self, admin: &tokio_postgres::Client) {
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop the scratch database");
    }
}

async fn connect_to(
    s: &common::Server,
    database: &str,
    create: bool,
) -> Result<PgsqlBackend, PgsqlError> {
    let mut pool = s.pool_for("pool1", database);
    pool.set("create_tables", if create { "true" } else { "false" })
        .expect("create_tables");
    PgsqlBackend::connect(
        &pool,
        &Config::new(backend_pgsql::KIND).with_pool(pool.clone()),
    )
    .await
}

#[test]
fn a_missing_table_is_a_clear_error() {
    rt().block_on(async {
        let s = common::server();
        let admin = s.raw().await;
        let db = Scratch::create(&admin, "backend_pgsql_scratch_schema").await;

        let e = connect_to(&s, db.name, false).await.expect_err("empty database");
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "table `mqtt_client` does not exist in database `{}`",
                db.name
            )),
            "{text}"
        );
        assert!(text.contains("set backend.pgsql.pool1.create_tables = true"), "{text}");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!e.is_retryable());

        // create_tables = true creates them; a second start finds them.
        let b = connect_to(&s, db.name, true).await.expect("create_tables");
        drop(b);
        connect_to(&s, db.name, false).await.expect("the tables exist now");

        let scratch = s.raw_on(db.name).await;
        scratch
            .batch_execute("DROP TABLE mqtt_msg")
            .await
            .expect("drop mqtt_msg");
        let e = connect_to(&s, db.name, false).await.expect_err("no mqtt_msg");
        assert!(e.to_string().contains("table `mqtt_msg` does not exist"), "{e}");

        // The seed's own mqtt_msg: text payloads cannot hold MQTT payloads.
        scratch
            .batch_execute(
                "CREATE TABLE mqtt_msg (id SERIAL primary key, msgid character varying(60), \
                 sender character varying(100), topic character varying(200), qos integer, \
                 retain integer, payload text, arrived timestamp without time zone)",
            )
            .await
            .expect("the seed's table");
        let e = connect_to(&s, db.name, true).await.expect_err("text payload");
        let text = e.to_string();
        assert!(text.contains("table `mqtt_msg`"), "{text}");
        assert!(text.contains("`payload` of type text, not bytea"), "{text}");
        scratch
            .batch_execute("ALTER TABLE mqtt_msg ALTER COLUMN payload TYPE bytea USING convert_to(payload, 'UTF8')")
            .await
            .expect("the suggested fix");
        // create_tables added the unique msgid index and the node column.
        let b = connect_to(&s, db.name, false).await.expect("the seed's table, migrated");
        let m = Message::new("c", "seed/t", QoS::AtLeastOnce, "p");
        b.store_messages(std::slice::from_ref(&m), Default::default())
            .await
            .expect("store into the seed's table");
        assert_eq!(
            b.fetch_messages(&request("c", "seed/+", OfflineMode::Queue))
                .await
                .expect("fetch")
                .len(),
            1
        );
        drop(b);
        drop(scratch);
        db.drop(&admin).await;
    });
}

#[test]
fn raw_statements_bind_and_read_by_type() {
    rt().block_on(async {
        let b = common::connect().await;
        let t = Timestamp::from_millis(1_479_202_840_123);
        let rows = b
            .execute_sql(
                "SELECT $1::int2, $2::int4, $3::int8, $4::text, $5::bytea, $6::timestamp, \
                 $7::timestamptz, $8::bool, $9::float8, $10::jsonb, $11::varchar, $12::int4, $13::json",
                &[
                    Value::Int(-2),
                    Value::Int(70_000),
                    Value::Int(i64::MAX),
                    Value::Text("雨 ' \" \\".into()),
                    Value::Bytes(Bytes::from_static(b"\x00\xff")),
                    Value::Time(t),
                    Value::Time(t),
                    Value::Bool(true),
                    Value::Float(1.5),
                    Value::Text(r#"{"a": [1, 2]}"#.into()),
                    Value::Int(42),
                    Value::Null,
                    Value::Bytes(Bytes::from_static(b"{\"b\":true}")),
                ],
            )
            .await
            .expect("every type binds");
        assert_eq!(
            rows,
            vec![vec![
                Value::Int(-2),
                Value::Int(70_000),
                Value::Int(i64::MAX),
                Value::Text("雨 ' \" \\".into()),
                Value::Bytes(Bytes::from_static(b"\x00\xff")),
                Value::Time(t),
                Value::Time(t),
                Value::Bool(true),
                Value::Float(1.5),
                Value::Text(r#"{"a": [1, 2]}"#.into()),
                Value::Text("42".into()),
                Value::Null,
                Value::Text("{\"b\":true}".into()),
            ]]
        );
        let rows = b
            .execute_sql(
                "SELECT 123.4500::numeric, -0.001::numeric, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, \
                 DATE '2016-11-15', 'ab'::name, 7::oid, 2.5::float4, NULL::point IS NULL",
                &[],
            )
            .await
            .expect("read");
        assert_eq!(
            rows[0],
            vec![
                Value::Text("123.4500".into()),
                Value::Text("-0.001".into()),
                Value::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
                Value::Time(Timestamp::from_secs(1_479_168_000)),
                Value::Text("ab".into()),
                Value::Int(7),
                Value::Float(2.5),
                Value::Bool(true),
            ]
        );

        // Mismatches are clear query errors, never panics.
        let err = |r: Result<Vec<Vec<Value>>, PgsqlError>| r.expect_err("must fail");
        let e = err(b.execute_sql("SELECT $1::int2", &[Value::Int(70_000)]).await);
        assert_eq!(e.kind(), ErrorKind::Query);
        assert!(e.to_string().contains("parameter $1 (int2): 70000 is out of range for int2"), "{e}");
        let e = err(b.execute_sql("SELECT $1::int4", &[Value::Bytes(Bytes::from_static(b"1"))]).await);
        assert_eq!(e.kind(), ErrorKind::Query);
        assert!(e.to_string().contains("cannot bind bytes"), "{e}");
        let e = err(b.execute_sql("SELECT $1::timestamp", &[Value::Text("now".into())]).await);
        assert_eq!(e.kind(), ErrorKind::Query);
        let e = err(b.execute_sql("SELECT $1::text, $2::text", &[Value::Int(1)]).await);
        assert!(e.to_string().contains("2 parameter(s) but 1 value(s)"), "{e}");
        let e = err(b.execute_sql("SELECT $1::text", &[Value::Bytes(Bytes::from_static(b"\xff"))]).await);
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        let e = err(b.execute_sql("SELECT point(1, 2)", &[]).await);
        assert_eq!(e.kind(), ErrorKind::Data);
        assert!(e.to_string().contains("does not read type point"), "{e}");
        let e = err(b.execute_sql("SELEC 1", &[]).await);
        assert_eq!(e.kind(), ErrorKind::Query);
        assert!(e.to_string().contains("syntax error"), "{e}");
        let e = err(b.execute_sql("select * from no_such_table", &[]).await);
        assert!(e.to_string().contains("42P01"), "{e}");
        let e = b
            .execute(&Statement::Command { args: vec![Bytes::from_static(b"GET")] })
            .await
            .expect_err("not SQL");
        assert_eq!(e.kind(), ErrorKind::Unsupported);

        // A statement whose result type changes under the cache is prepared again.
        let table = unique("rawtypes").replace('-', "_");
        b.execute_sql(&format!("CREATE TABLE {table} (a int4)"), &[]).await.expect("create");
        let select = format!("SELECT * FROM {table}");
        b.execute_sql(&select, &[]).await.expect("select");
        b.execute_sql(&format!("ALTER TABLE {table} ADD COLUMN b text"), &[]).await.expect("alter");
        b.execute_sql(&format!("INSERT INTO {table} VALUES (1, 'x')"), &[]).await.expect("insert");
        assert_eq!(
            b.execute_sql(&select, &[]).await.expect("re-prepared"),
            vec![vec![Value::Int(1), Value::Text("x".into())]]
        );
        b.execute_sql(&format!("DROP TABLE {table}"), &[]).await.expect("drop");
    });
}

#[test]
fn topics_with_like_and_regex_characters_are_literal() {
    rt().block_on(async {
        let b = common::connect().await;
        let root = unique("lit");
        let topics = [
            format!("{root}/a%/x"),
            format!("{root}/ab/x"),
            format!("{root}/a_/x"),
            format!("{root}/a\\/x"),
            format!("{root}/a.*/x"),
            format!("{root}/a(b|c)/x"),
        ];
        let msgs: Vec<Message> = topics
            .iter()
            .map(|t| Message::new("p", t.clone(), QoS::AtLeastOnce, t.clone()).retained(true))
            .collect();
        b.store_messages(&msgs, Default::default())
            .await
            .expect("store");
        b.store_retained(&msgs, Default::default())
            .await
            .expect("retain");
        for t in &topics {
            let got = b
                .fetch_messages(&request("c", t, OfflineMode::Queue))
                .await
                .expect("fetch");
            assert_eq!(
                got.iter().map(|m| &m.topic).collect::<Vec<_>>(),
                vec![t],
                "exact {t}"
            );
            let level = &t[root.len() + 1..t.len() - 2];
            let filter = format!("{root}/{level}/+");
            let got = b
                .fetch_messages(&request("c", &filter, OfflineMode::Queue))
                .await
                .expect("fetch");
            assert_eq!(
                got.iter().map(|m| &m.topic).collect::<Vec<_>>(),
                vec![t],
                "{filter}"
            );
            let got = b.lookup_retained(&filter).await.expect("retained");
            assert_eq!(
                got.iter().map(|m| &m.topic).collect::<Vec<_>>(),
                vec![t],
                "retained {filter}"
            );
        }
        let got = b
            .fetch_messages(&request("c", &format!("{root}/+/x"), OfflineMode::Queue))
            .await
            .expect("fetch");
        assert_eq!(got.len(), topics.len());
    });
}

/// The SQL side of wildcard matching (prefix range and regular expression)
/// agrees with `backend_core::topic::matches` on every pair of a few
/// thousand filters and topics, in one query.
#[test]
fn sql_filter_matching_agrees_with_core() {
    rt().block_on(async {
        let s = common::server();
        let sql = s.raw().await;
        let topic_levels = ["a", "b", "", "$x", "%_", "a.b", "\\", "雨"];
        let filter_levels = ["a", "b", "", "$x", "%_", "a.b", "\\", "雨", "+", "#"];
        let join = |levels: &[&str]| levels.join("/");
        let mut topics = Vec::new();
        for x in topic_levels {
            topics.push(join(&[x]));
            for y in topic_levels {
                topics.push(join(&[x, y]));
                for z in ["a", ""] {
                    topics.push(join(&[x, y, z]));
                }
            }
        }
        topics.retain(|t| backend_core::topic::validate_name(t).is_ok());
        let mut filters = Vec::new();
        for x in filter_levels {
            filters.push(join(&[x]));
            for y in filter_levels {
                filters.push(join(&[x, y]));
                for z in ["#", "+", "a"] {
                    filters.push(join(&[x, y, z]));
                }
            }
        }
        filters.retain(|f| backend_core::topic::validate_filter(f).is_ok());
        let (mut ft, mut tt, mut exact, mut from, mut to, mut re, mut want) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for f in &filters {
            let (e, lo, hi, regex) = match topic_match(f) {
                TopicMatch::Nothing => panic!("{f:?} is valid"),
                TopicMatch::Exact(t) => (Some(t), None, None, None),
                TopicMatch::Wildcard(Wildcard::Range { from, to, regex }) => (None, Some(from), Some(to), Some(regex)),
                TopicMatch::Wildcard(Wildcard::Scan { regex }) => (None, None, None, Some(regex)),
            };
            for t in &topics {
                ft.push(f.clone());
                tt.push(t.clone());
                exact.push(e.clone());
                from.push(lo.clone());
                to.push(hi.clone());
                re.push(regex.clone());
                want.push(backend_core::topic::matches(f, t));
            }
        }
        let rows = sql
            .query(
                "SELECT CASE WHEN e IS NOT NULL THEN t = e \
                 ELSE (lo IS NULL OR t COLLATE \"C\" >= lo) AND (hi IS NULL OR t COLLATE \"C\" < hi) AND t ~ re END \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(t, e, lo, hi, re)",
                &[&tt, &exact, &from, &to, &re],
            )
            .await
            .expect("the comparison query");
        assert_eq!(rows.len(), want.len());
        let mut bad = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if row.get::<_, bool>(0) != want[i] {
                bad.push(format!("filter {:?} topic {:?}: core {}", ft[i], tt[i], want[i]));
            }
        }
        assert!(bad.is_empty(), "{} of {} disagree:\n{}", bad.len(), want.len(), bad[..bad.len().min(20)].join("\n"));
        println!("{} filter/topic pairs agree", want.len());
    });
}

#[test]
fn errors_are_classified_and_never_show_the_password() {
    rt().block_on(async {
        let s = common::server();
        let conf = |pool: backend_core::config::PoolConfig| {
            Config::new(backend_pgsql::KIND).with_pool(pool)
        };

        let mut pool = s.pool("pool1");
        pool.set("password", "not-the-password-5f3a")
            .expect("password");
        let e = PgsqlBackend::connect(&pool, &conf(pool.clone()))
            .await
            .expect_err("a wrong password");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains("28P01"), "{e}");
        for text in [
            e.to_string(),
            format!("{e:?}"),
            backend_core::BackendError::from(e).to_string(),
        ] {
            assert!(!text.contains("not-the-password-5f3a"), "{text}");
        }

        let mut pool = s.pool("pool1");
        pool.set("server", "127.0.0.1:1").expect("server");
        let e = PgsqlBackend::connect(&pool, &conf(pool.clone()))
            .await
            .expect_err("nothing listens on port 1");
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(e.is_retryable());
        assert!(
            e.to_string().contains("127.0.0.1:1/"),
            "names the server: {e}"
        );

        let mut pool = s.pool("pool1");
        pool.set("ssl", "true").expect("ssl");
        pool.set("cacertfile", "/nonexistent/ca.pem")
            .expect("cacertfile");
        let e = PgsqlBackend::connect(&pool, &conf(pool.clone()))
            .await
            .expect_err("no CA file");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.to_string()
                .contains("cacertfile `/nonexistent/ca.pem`: cannot read"),
            "{e}"
        );

        // The local server has no TLS: ssl = true refuses to go on in clear.
        let mut pool = s.pool("pool1");
        pool.set("ssl", "true").expect("ssl");
        let e = PgsqlBackend::connect(&pool, &conf(pool.clone()))
            .await
            .expect_err("the server does not offer TLS");
        assert!(e.to_string().contains("server does not support TLS"), "{e}");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");

        let b = common::connect().await;
        let debug = format!("{b:?}");
        assert!(!debug.contains(&s.password), "{debug}");
        assert!(debug.contains("PgsqlBackend"), "{debug}");

        let e = PgsqlBackend::connect(
            &s.pool("pool1"),
            &Config::new(backend_core::testkit::kinds::MYSQL),
        )
        .await
        .expect_err("a MySQL configuration");
        assert!(
            matches!(
                &e,
                PgsqlError::Common(backend_core::CommonError::WrongKind { found, .. })
                    if *found == backend_core::testkit::kinds::MYSQL
            ),
            "{e}"
        );
    });
}

#[test]
fn connect_pools_connects_every_pool() {
    rt().block_on(async {
        let s = common::server();
        let conf = Config::new(backend_pgsql::KIND)
            .with_pool(s.pool("pool1"))
            .with_pool(s.pool("pool2"));
        let pools = backend_pgsql::connect_pools(&conf)
            .await
            .expect("both pools");
        assert_eq!(pools.keys().collect::<Vec<_>>(), vec!["pool1", "pool2"]);
        for b in pools.values() {
            assert_eq!(b.name(), "pgsql");
            assert_eq!(
                b.client_status("nobody-at-all").await.expect("status"),
                None
            );
        }
        let settings = PgsqlConfig::from_pool(&s.pool("pool1")).expect("settings");
        assert_eq!(settings.db.pool_size, 4);
    });
}

/// A writer of the backend's own single-message statement, stopped in an
/// open transaction (id taken, row not committed).
struct OpenTransaction(tokio_postgres::Client);

#[async_trait::async_trait]
impl backend_core::testkit::InFlightWriter for OpenTransaction {
    async fn begin(&mut self, m: &Message) {
        self.0.batch_execute("BEGIN").await.expect("BEGIN");
        let at = std::time::SystemTime::now();
        self.0
            .execute(
                statements::STORE_MESSAGE,
                &[
                    &m.id,
                    &m.sender,
                    &m.topic,
                    &1i32,
                    &0i32,
                    &&m.payload[..],
                    &at,
                    &m.stored_properties(),
                ],
            )
            .await
            .expect("the backend's insert, in the open transaction");
    }

    async fn finish(&mut self) {
        self.0.batch_execute("COMMIT").await.expect("COMMIT");
    }
}

/// An id taken but not committed (a transaction held open) is never passed
/// by a pubsub reader: it cannot ack a later message and so mark this one
/// read before it is visible. The backend's writers serialise on an
/// advisory lock, so the second store waits for the first to commit.
#[test]
fn a_pubsub_reader_never_passes_an_uncommitted_message() {
    rt().block_on(async {
        let s = common::server();
        let backend: Arc<dyn Backend> = Arc::new(common::connect().await);
        let mut writer = OpenTransaction(s.raw().await);
        backend_core::testkit::reader_never_passes_a_writer_in_flight(backend, &mut writer).await;
    });
}

/// A first attempt takes a plain insert; an id already stored, even in a
/// write not marked `again`, fails it and the whole batch goes in again
/// through the upsert: nothing of the batch is lost, the stored id is kept
/// once with the later content at the end, and a single message takes the
/// same way.
#[test]
fn an_unmarked_store_of_a_stored_id_falls_back_to_the_upsert() {
    rt().block_on(async {
        let b = common::connect().await;
        let topic = unique("fallback");
        let msg = |text: &'static str| Message::new("p", topic.clone(), QoS::AtLeastOnce, text);
        let (m1, m2) = (msg("one"), msg("two"));
        b.store_messages(&[m1.clone(), m2.clone()], Default::default())
            .await
            .or_panic("first store");
        let mut m1b = m1.clone();
        m1b.payload = Bytes::from_static(b"one again");
        let m3 = msg("three");
        // A batch: one id stored already, one new.
        b.store_messages(&[m1b.clone(), m3.clone()], Default::default())
            .await
            .or_panic("a batch with a stored id");
        // A single message whose id is stored already.
        let mut m2b = m2.clone();
        m2b.payload = Bytes::from_static(b"two again");
        b.store_messages(std::slice::from_ref(&m2b), Default::default())
            .await
            .or_panic("a single stored id");
        let got = b
            .fetch_messages(&request("c", &topic, OfflineMode::Queue))
            .await
            .or_panic("fetch");
        let payloads: Vec<String> = got
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        assert_eq!(payloads, ["one again", "three", "two again"]);
    });
}
