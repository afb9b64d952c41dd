//! MySQL-specific tests against the live server (`MYSQL_URL`, default
//! mysql://root:public@127.0.0.1:3306/mqtt): the rows as plain SQL sees
//! them, the seed's raw rules, index use, schema checks, the statement
//! cache, raw statement types, error kinds.

mod common;

use backend_core::testkit::OrPanic;
use common::{rt, Raw};

use std::sync::Arc;
use std::time::Instant;

use backend_core::testkit::unique;
use backend_core::{
    Ack, Backend, Bytes, ClientInfo, Config, Engine, ErrorKind, FetchRequest, Message, OfflineMode,
    QoS, Statement, Subscription, Timestamp, Value,
};
use backend_mysql::mysql_async::prelude::Queryable;
use backend_mysql::mysql_async::{self, Conn, Params};
use backend_mysql::statements::filter::{topic_match, TopicCondition, TopicMatch};
use backend_mysql::{statements, MysqlBackend, MysqlConfig, MysqlError};

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

async fn one<T: mysql_async::prelude::FromRow + Send + 'static>(
    c: &mut Conn,
    sql: &str,
    params: impl Into<Params> + Send,
) -> T {
    c.exec_first(sql, params)
        .await
        .or_panic(sql)
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

#[test]
fn rows_are_readable_with_plain_sql_as_the_seed_shows_them() {
    rt().block_on(async {
        let s = common::server();
        let b = common::connect().await;
        let mut sql = s.raw().await;
        let id = unique("plain");

        // mqtt_client: state 1, node, online_at, offline_at NULL; then state 0.
        let client = ClientInfo::new(id.clone(), "emqx@127.0.0.1");
        b.client_online(&client, ONLINE_AT).await.expect("online");
        let row: (String, String, String, String, Option<String>, bool) = one(
            &mut sql,
            "select clientid, state, node, DATE_FORMAT(online_at, '%Y-%m-%d %H:%i:%s'), \
             offline_at, created is not null from mqtt_client where clientid = ?",
            (&id,),
        )
        .await;
        assert_eq!(
            row,
            (
                id.clone(),
                "1".into(),
                "emqx@127.0.0.1".into(),
                "2016-11-15 09:40:40".into(),
                None,
                true
            )
        );
        b.client_offline(&client, OFFLINE_AT).await.expect("offline");
        let row: (String, String, String) = one(
            &mut sql,
            "select state, CAST(online_at AS CHAR), CAST(offline_at AS CHAR) from mqtt_client where clientid = ?",
            (&id,),
        )
        .await;
        assert_eq!(
            row,
            (
                "0".into(),
                "2016-11-15 09:40:40.000".into(),
                "2016-11-15 09:46:10.000".into()
            ),
            "DATETIME(3), UTC"
        );

        // mqtt_sub: the seed's own inserts are what on_subscribe_lookup returns.
        for (topic, qos) in [("test_topic1", 1), ("test_topic2", 2)] {
            sql.exec_drop(
                "insert into mqtt_sub(clientid, topic, qos) values(?, ?, ?)",
                (&id, topic, qos),
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
        type MsgRow = (u64, String, String, String, Option<String>, i32, i32, Vec<u8>, String);
        let rows: Vec<MsgRow> = sql
            .exec(
                "select id, msgid, topic, sender, node, qos, retain, payload, \
                 DATE_FORMAT(arrived, '%Y-%m-%d %H:%i:%s') from mqtt_msg where sender = ? order by id",
                (&id,),
            )
            .await
            .expect("select mqtt_msg");
        assert_eq!(rows.len(), 2);
        assert!(rows[0].0 < rows[1].0, "ids in store order");
        assert_eq!(rows[0].1, hello.id);
        assert_eq!(rows[0].2, hello.topic);
        assert_eq!(rows[0].3, id);
        assert_eq!(rows[0].4, None, "node");
        assert_eq!((rows[0].5, rows[0].6), (1, 0));
        assert_eq!(rows[0].7, b"hello");
        assert_eq!(rows[0].8, "2016-11-15 09:40:40");
        assert_eq!(rows[1].5, 2);
        assert_eq!(rows[1].7, b"world");

        // mqtt_retain: `select * from mqtt_retain where topic = ${topic}`.
        let retained =
            Message::new(id.clone(), format!("{root}/retain"), QoS::AtLeastOnce, "www").retained(true);
        b.store_retained(std::slice::from_ref(&retained), Default::default())
            .await
            .expect("retain");
        let row: (String, String, i32, Vec<u8>) = one(
            &mut sql,
            "select msgid, sender, qos, payload from mqtt_retain where topic = ?",
            (&retained.topic,),
        )
        .await;
        assert_eq!(row, (retained.id.clone(), id.clone(), 1, b"www".to_vec()));

        // mqtt_acked: the acked message's id, per client and topic.
        let sub = unique("acker");
        let topic = format!("{root}/acked");
        assert!(b
            .fetch_messages(&request(&sub, &topic, OfflineMode::Pubsub))
            .await
            .expect("first fetch")
            .is_empty());
        let start: u64 = one(
            &mut sql,
            "select mid from mqtt_acked where clientid = ? and topic = ?",
            (&sub, &topic),
        )
        .await;
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
        let (mid, msg_id): (u64, u64) = one(
            &mut sql,
            "select a.mid, m.id from mqtt_acked a, mqtt_msg m \
             where a.clientid = ? and a.topic = ? and m.msgid = ?",
            (&sub, &topic, &m.id),
        )
        .await;
        assert_eq!(mid, msg_id);
        assert!(mid > start);
    });
}

fn seed_engine(b: &MysqlBackend, extra: &str) -> Engine {
    backend_core::testkit::sql::seed_engine(Arc::new(b.clone()), backend_mysql::KIND, extra)
}

#[test]
fn the_seeds_delete_ack_rule_resets_the_read_position() {
    rt().block_on(async {
        let b = common::connect().await;
        let acked_rows = |client: String, topic: String| {
            let s = common::server();
            async move {
                let mut sql = s.raw().await;
                one(
                    &mut sql,
                    "select count(*) from mqtt_acked where clientid = ? and topic = ?",
                    (&client, &topic),
                )
                .await
            }
        };
        backend_core::testkit::sql::the_seeds_delete_ack_rule_resets_the_read_position(
            Arc::new(b),
            backend_mysql::KIND,
            acked_rows,
        )
        .await;
    });
}

const RAW_INSERT: &str = r##"{"topic": "#", "action": {"sql": ["insert into mqtt_msg(msgid, sender, topic, qos, retain, payload, arrived) values (${msgid}, ${clientid}, ${topic}, ${qos}, ${retain}, ${payload}, ${timestamp})"]}, "pool": "pool1"}"##;

#[test]
fn a_hostile_value_is_stored_verbatim_and_the_schema_survives() {
    rt().block_on(async {
        let s = common::server();
        let b = common::connect().await;
        let mut sql = s.raw().await;
        let engine = seed_engine(&b, &format!("backend.mysql.hook.message.publish.2 = {RAW_INSERT}"));
        let evil = "'); DROP TABLE mqtt_msg; --";
        let mut m = Message::new(evil, format!("{}/{evil}", unique("evil")), QoS::AtLeastOnce, evil);
        // The built-in rule stores the message first; the raw insert of the
        // same msgid then breaks the unique key, and says so.
        let out = engine.on_message_publish(&m).await;
        assert_eq!(out.errors.len(), 1, "the raw insert repeats the built-in's msgid");
        let e = out.errors[0].to_string();
        assert!(e.contains("1062") && e.contains("mqtt_msg_msgid_key"), "{e}");
        m.id = backend_core::new_message_id();
        let raw_only = Engine::with_backend(
            &Config::parse(&format!(
                "backend.mysql.pool1.server = 127.0.0.1:3306\nbackend.mysql.pool1.query_mode = sync\nbackend.mysql.hook.message.publish.1 = {RAW_INSERT}"
            ))
            .expect("config"),
            Arc::new(b.clone()),
        )
        .expect("engine");
        let out = raw_only.on_message_publish(&m).await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let row: (String, String, Vec<u8>) = one(
            &mut sql,
            "select sender, topic, payload from mqtt_msg where msgid = ?",
            (&m.id,),
        )
        .await;
        assert_eq!(row, (evil.to_owned(), m.topic.clone(), evil.as_bytes().to_vec()));
        let tables: i64 = one(
            &mut sql,
            "select count(*) from information_schema.TABLES where TABLE_SCHEMA = DATABASE() \
             and TABLE_NAME in ('mqtt_client','mqtt_sub','mqtt_msg','mqtt_retain','mqtt_acked')",
            (),
        )
        .await;
        assert_eq!(tables, 5, "every table survives");
        let got = b
            .fetch_messages(&request("evil", &m.topic, OfflineMode::Queue))
            .await
            .expect("fetch");
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|g| g.sender == evil && g.payload == evil.as_bytes()));
    });
}

/// `EXPLAIN` of a statement with its parameters bound, as the backend runs
/// it (a prepared statement): (table, type, key, Extra) of each row.
async fn explain(
    sql: &mut Conn,
    text: &str,
    params: Vec<mysql_async::Value>,
) -> Vec<(String, String, Option<String>, Option<String>)> {
    let rows: Vec<mysql_async::Row> = sql
        .exec(format!("EXPLAIN {text}"), Params::Positional(params))
        .await
        .or_panic(&format!("EXPLAIN {text}"));
    rows.into_iter()
        .map(|r| {
            let get = |name: &str| -> Option<String> {
                r.get_opt::<Option<String>, _>(name)
                    .and_then(Result::ok)
                    .flatten()
            };
            (
                get("table").unwrap_or_default(),
                get("type").unwrap_or_default(),
                get("key"),
                get("Extra"),
            )
        })
        .collect()
}

fn topic_params(t: &TopicMatch) -> Vec<mysql_async::Value> {
    t.condition("m.topic")
        .1
        .into_iter()
        .map(mysql_async::Value::Bytes)
        .collect()
}

#[test]
fn an_exact_topic_fetch_uses_the_index_and_a_batch_is_one_statement() {
    rt().block_on(async {
        let s = common::server();
        let b = common::connect().await;
        let mut sql = s.raw().await;
        let root = unique("explain");
        let sender = unique("explain-pub");
        let make = |n: usize, tag: &str| -> Vec<Message> {
            (0..n)
                .map(|i| {
                    Message::new(
                        sender.clone(),
                        format!("{root}/{}", i % 200),
                        QoS::AtLeastOnce,
                        format!("{tag}{i}"),
                    )
                })
                .collect()
        };
        // 2000 messages on 200 topics in one call, and 500 one by one.
        let batch = make(2000, "b");
        let t = Instant::now();
        b.store_messages(&batch, Default::default()).await.expect("store");
        let batched = t.elapsed();
        let singles = make(500, "s");
        let t = Instant::now();
        for m in &singles {
            b.store_messages(std::slice::from_ref(m), Default::default())
                .await
                .expect("store one");
        }
        let single = t.elapsed();
        println!(
            "2000 messages in one call: {batched:?} ({:.1} µs/message); 500 calls of one: {single:?} ({:.1} µs/message)",
            batched.as_secs_f64() * 1e6 / 2000.0,
            single.as_secs_f64() * 1e6 / 500.0
        );
        sql.query_drop("ANALYZE TABLE mqtt_msg, mqtt_acked").await.expect("analyze");

        let topic = format!("{root}/7");
        let exact = topic_match(&topic);
        let mut qp = topic_params(&exact);
        qp.push(mysql_async::Value::UInt(u64::MAX));
        let queue = explain(&mut sql, &statements::fetch(false, &exact, false, true, false), qp).await;
        println!("queue fetch, exact topic: {queue:?}");
        let mut pp = vec![mysql_async::Value::Bytes(b"c".to_vec())];
        pp.extend(topic_params(&exact));
        pp.extend([mysql_async::Value::UInt(0), mysql_async::Value::UInt(10)]);
        let pubsub = explain(&mut sql, &statements::fetch(true, &exact, false, true, false), pp).await;
        println!("pubsub fetch, exact topic: {pubsub:?}");
        for plan in [&queue, &pubsub] {
            let m = plan
                .iter()
                .find(|r| r.0 == "m")
                .unwrap_or_else(|| panic!("no row for mqtt_msg: {plan:?}"));
            assert_eq!(m.2.as_deref(), Some("mqtt_msg_topic_id_idx"), "{plan:?}");
            assert_ne!(m.1, "ALL", "no scan of mqtt_msg: {plan:?}");
            assert!(
                !m.3.as_deref().unwrap_or("").contains("filesort"),
                "id order comes from the index: {plan:?}"
            );
        }
        // A wildcard whose prefix holds few rows is an index range (one that
        // covers much of the table may rightly be a scan).
        let wild = topic_match(&format!("{root}/7/#"));
        let range = explain(
            &mut sql,
            &statements::fetch(false, &wild, false, false, false),
            topic_params(&wild),
        )
        .await;
        println!("queue fetch, `{root}/7/#`: {range:?}");
        assert!(
            range.iter().any(|r| r.1 == "range" && r.2.as_deref() == Some("mqtt_msg_topic_id_idx")),
            "a prefix is an index range: {range:?}"
        );

        // The batch kept its order: ids ascend in slice order.
        let order: Vec<String> = sql
            .exec("select msgid from mqtt_msg where sender = ? order by id", (&sender,))
            .await
            .expect("select");
        let want: Vec<&str> = batch.iter().chain(&singles).map(|m| m.id.as_str()).collect();
        assert_eq!(order, want, "store order");
        sql.exec_drop("delete from mqtt_msg where sender = ?", (&sender,))
            .await
            .expect("clean up");
    });
}

/// Statements are prepared once per connection, across checkouts from the
/// pool: the connection is not reset on return, so its cache survives.
#[test]
fn statements_are_prepared_once_per_connection() {
    rt().block_on(async {
        let s = common::server();
        let mut settings = s.settings();
        settings.db.pool_size = 1;
        let b = MysqlBackend::connect_with(settings).await.expect("connect");
        assert_eq!(b.config().stmt_cache_size, 256);
        let id = unique("cache");
        let counters = |b: MysqlBackend| async move {
            let mut c = b
                .pool()
                .get_conn()
                .await
                .expect("the pool's one connection");
            // Text protocol: reading the counters prepares nothing.
            let rows: Vec<(String, u64)> = c
                .query(
                    "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
                     WHERE VARIABLE_NAME IN ('COM_STMT_PREPARE', 'COM_STMT_EXECUTE') ORDER BY 1",
                )
                .await
                .expect("session status");
            (rows[1].1, rows[0].1)
        };
        b.client_status(&id).await.expect("status");
        let (prepared, executed) = counters(b.clone()).await;
        for _ in 0..10 {
            b.client_status(&id).await.expect("status");
        }
        let (prepared2, executed2) = counters(b.clone()).await;
        assert_eq!(prepared2, prepared, "no new prepare for a cached statement");
        assert_eq!(executed2, executed + 10, "ten executions");
    });
}

#[test]
fn the_schema_check_names_missing_tables_and_seed_tables() {
    rt().block_on(async {
        let s = common::server();
        let mut admin = s.raw_on(None).await;
        // The name is this test's constant, not input: DDL cannot bind it.
        let db = "backend_mysql_scratch";
        admin
            .query_drop(format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .expect("drop");
        admin
            .query_drop(format!("CREATE DATABASE {db} CHARACTER SET utf8mb4"))
            .await
            .expect("create the scratch database");
        let mut pool = s.pool_for("pool1", db);
        pool.set("create_tables", "false").expect("set");
        let conf = Config::new(backend_mysql::KIND).with_pool(pool.clone());
        let e = MysqlBackend::connect(&pool, &conf)
            .await
            .expect_err("no tables");
        assert!(
            matches!(
                e,
                MysqlError::Common(backend_core::CommonError::MissingTable {
                    table: "mqtt_client",
                    ..
                })
            ),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::Config);
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "table `mqtt_client` does not exist in database `{db}`"
            )) && text.contains("create_tables = true"),
            "{text}"
        );

        // The seed's own mqtt_msg (blob payload, no unique msgid).
        let mut scratch = s.raw_on(Some(db)).await;
        for stmt in backend_mysql::schema::SCHEMA.statements() {
            if !stmt.contains("`mqtt_msg`") {
                scratch.query_drop(stmt).await.expect("schema");
            }
        }
        scratch
            .query_drop(
                "CREATE TABLE `mqtt_msg` (`id` int(11) unsigned NOT NULL AUTO_INCREMENT, \
                 `msgid` varchar(100) DEFAULT NULL, `topic` varchar(1024) NOT NULL, \
                 `sender` varchar(1024) DEFAULT NULL, `node` varchar(60) DEFAULT NULL, \
                 `qos` int(11) NOT NULL DEFAULT '0', `retain` tinyint(2) DEFAULT NULL, \
                 `payload` blob, `arrived` datetime NOT NULL, PRIMARY KEY (`id`)) \
                 ENGINE=InnoDB DEFAULT CHARSET=utf8",
            )
            .await
            .expect("the seed's mqtt_msg");
        // It lacks the MQTT 5 properties column, named first; the
        // documented ALTER adds it, keeping the table's rows.
        let e = MysqlBackend::connect(&pool, &conf)
            .await
            .expect_err("a seed table");
        assert!(e.to_string().contains("lacks the column(s) props"), "{e}");
        scratch
            .query_drop("ALTER TABLE mqtt_msg ADD COLUMN props longblob")
            .await
            .expect("the documented ALTER");
        let e = MysqlBackend::connect(&pool, &conf)
            .await
            .expect_err("a seed table");
        assert!(
            e.to_string()
                .contains("`payload` of type blob, not longblob")
                && e.to_string()
                    .contains("ALTER TABLE mqtt_msg MODIFY payload LONGBLOB"),
            "{e}"
        );
        scratch
            .query_drop("DROP TABLE mqtt_msg")
            .await
            .expect("drop");

        // create_tables = true creates what is missing, twice over.
        pool.set("create_tables", "true").expect("set");
        for _ in 0..2 {
            let b = MysqlBackend::connect(&pool, &conf).await.expect("created");
            b.disconnect().await.expect("disconnect");
        }
        let n: i64 = one(
            &mut scratch,
            "select count(*) from information_schema.TABLES where TABLE_SCHEMA = DATABASE()",
            (),
        )
        .await;
        assert_eq!(n, 6, "the seed's five tables and mqtt_msg_lock");
        drop(scratch);
        admin
            .query_drop(format!("DROP DATABASE {db}"))
            .await
            .expect("drop the scratch database");
    });
}

#[test]
fn raw_statements_bind_every_value_and_read_every_type() {
    rt().block_on(async {
        let b = common::connect().await;
        let table = unique("rawtypes").replace('-', "_");
        b.execute_sql(
            &format!(
                "CREATE TABLE {table} (i int, u bigint unsigned, d double, v varchar(50), \
                 vb varbinary(50), bl blob, dt datetime(3), dd date, tm time, de decimal(10,4), \
                 n int, b tinyint(1))"
            ),
            &[],
        )
        .await
        .expect("create");
        let t = Timestamp::from_millis(1_479_202_840_123);
        b.execute_sql(
            &format!("INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            &[
                Value::Int(-2),
                Value::Text("18446744073709551615".into()),
                Value::Float(1.5),
                Value::Text("雨 ' \" \\ 🦀".into()),
                Value::Bytes(Bytes::from_static(b"\x00\xff")),
                Value::Bytes(Bytes::from_static(b"\x01\x02")),
                Value::Time(t),
                Value::Time(t),
                Value::Text("-25:01:02".into()),
                Value::Text("123.45".into()),
                Value::Null,
                Value::Bool(true),
            ],
        )
        .await
        .expect("every value binds");
        let rows = b
            .execute_sql(&format!("SELECT * FROM {table}"), &[])
            .await
            .expect("select");
        assert_eq!(
            rows,
            vec![vec![
                Value::Int(-2),
                Value::Text("18446744073709551615".into()),
                Value::Float(1.5),
                Value::Text("雨 ' \" \\ 🦀".into()),
                Value::Bytes(Bytes::from_static(b"\x00\xff")),
                Value::Bytes(Bytes::from_static(b"\x01\x02")),
                Value::Time(t),
                Value::Time(Timestamp::from_secs(1_479_168_000)),
                Value::Text("-25:01:02".into()),
                Value::Text("123.4500".into()),
                Value::Null,
                Value::Int(1),
            ]]
        );
        // A statement that returns nothing returns no rows; errors are clear.
        assert!(b
            .execute_sql(
                &format!("DELETE FROM {table} WHERE i = ?"),
                &[Value::Int(7)]
            )
            .await
            .expect("delete")
            .is_empty());
        let err = |r: Result<Vec<Vec<Value>>, MysqlError>| r.expect_err("must fail");
        let e = err(b.execute_sql("SELECT ?, ?", &[Value::Int(1)]).await);
        assert_eq!(e.kind(), ErrorKind::Query, "{e}");
        let e = err(b.execute_sql("SELEC 1", &[]).await);
        assert_eq!(
            (e.kind(), e.server_code()),
            (ErrorKind::Query, Some(1064)),
            "{e}"
        );
        let e = err(b.execute_sql("select * from no_such_table", &[]).await);
        assert_eq!(e.server_code(), Some(1146), "{e}");
        let e = err(b
            .execute_sql("SELECT ?", &[Value::Time(Timestamp::from_millis(i64::MAX))])
            .await);
        assert!(e.to_string().contains("parameter 1"), "{e}");
        let e = b
            .execute(&Statement::Command {
                args: vec![Bytes::from_static(b"GET")],
            })
            .await
            .expect_err("not SQL");
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        b.execute_sql(&format!("DROP TABLE {table}"), &[])
            .await
            .expect("drop");
    });
}

#[test]
fn topics_with_like_characters_case_and_trailing_spaces_are_literal() {
    rt().block_on(async {
        let b = common::connect().await;
        let root = unique("lit");
        let topics = [
            format!("{root}/a%/x"),
            format!("{root}/ab/x"),
            format!("{root}/a_/x"),
            format!("{root}/a\\/x"),
            format!("{root}/A_/x"),
            format!("{root}/a_ /x"),
            format!("{root}/a_/x "),
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
                "exact {t:?}"
            );
            let got = b.lookup_retained(t).await.expect("retained");
            assert_eq!(
                got.iter().map(|m| &m.topic).collect::<Vec<_>>(),
                vec![t],
                "retained {t:?}"
            );
        }
        let got = b
            .fetch_messages(&request("c", &format!("{root}/a_/+"), OfflineMode::Queue))
            .await
            .expect("fetch");
        assert_eq!(
            got.iter().map(|m| &m.topic).collect::<Vec<_>>(),
            vec![&topics[2], &topics[6]]
        );
        let got = b
            .fetch_messages(&request("c", &format!("{root}/+/x"), OfflineMode::Queue))
            .await
            .expect("fetch");
        assert_eq!(got.len(), topics.len() - 1);
    });
}

#[test]
fn errors_are_classified_and_never_show_the_password() {
    rt().block_on(async {
        let s = common::server();
        let conf = |pool: backend_core::config::PoolConfig| {
            Config::new(backend_mysql::KIND).with_pool(pool)
        };

        let mut pool = s.pool("pool1");
        pool.set("password", "not-the-password-5f3a")
            .expect("password");
        let e = MysqlBackend::connect(&pool, &conf(pool.clone()))
            .await
            .expect_err("a wrong password");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert_eq!(e.server_code(), Some(1045), "{e}");
        for text in [
            e.to_string(),
            format!("{e:?}"),
            backend_core::BackendError::from(e).to_string(),
        ] {
            assert!(!text.contains("not-the-password-5f3a"), "{text}");
        }

        let mut pool = s.pool("pool1");
        pool.set("server", "127.0.0.1:1").expect("server");
        let e = MysqlBackend::connect(&pool, &conf(pool.clone()))
            .await
            .expect_err("nothing listens on port 1");
        assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
        assert!(e.is_retryable());
        assert!(
            e.to_string().contains("127.0.0.1:1/"),
            "names the server: {e}"
        );

        let mut pool = s.pool("pool1");
        pool.set("database", "no_such_database_here")
            .expect("database");
        let e = MysqlBackend::connect(&pool, &conf(pool.clone()))
            .await
            .expect_err("an unknown database");
        assert_eq!(
            (e.kind(), e.server_code()),
            (ErrorKind::Config, Some(1049)),
            "{e}"
        );

        let mut pool = s.pool("pool1");
        pool.set("ssl", "true").expect("ssl");
        pool.set("cacertfile", "/nonexistent/ca.pem")
            .expect("cacertfile");
        let e = MysqlBackend::connect(&pool, &conf(pool.clone()))
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
        let e = MysqlBackend::connect(&pool, &conf(pool.clone()))
            .await
            .expect_err("the server does not offer TLS");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().to_lowercase().contains("ssl"), "{e}");

        let b = common::connect().await;
        let debug = format!("{b:?}");
        assert!(!debug.contains(&s.password), "{debug}");
        assert!(debug.contains("MysqlBackend"), "{debug}");
        let settings = format!(
            "{:?}",
            MysqlConfig::from_pool(&s.pool("pool1")).expect("ok")
        );
        assert!(
            !settings.contains(&format!("\"{}\"", s.password)),
            "{settings}"
        );

        let e = MysqlBackend::connect(
            &s.pool("pool1"),
            &Config::new(backend_core::testkit::kinds::PGSQL),
        )
        .await
        .expect_err("a PostgreSQL configuration");
        assert!(
            matches!(
                &e,
                MysqlError::Common(backend_core::CommonError::WrongKind { found, .. })
                    if *found == backend_core::testkit::kinds::PGSQL
            ),
            "{e}"
        );
    });
}

#[test]
fn connect_pools_connects_every_pool() {
    rt().block_on(async {
        let s = common::server();
        let conf = Config::new(backend_mysql::KIND)
            .with_pool(s.pool("pool1"))
            .with_pool(s.pool("pool2"));
        let pools = backend_mysql::connect_pools(&conf)
            .await
            .expect("both pools");
        assert_eq!(pools.keys().collect::<Vec<_>>(), vec!["pool1", "pool2"]);
        for b in pools.values() {
            assert_eq!(b.name(), "mysql");
            assert_eq!(
                b.client_status("nobody-at-all").await.expect("status"),
                None
            );
        }
    });
}

/// A writer of the backend's own statements, stopped in an open
/// transaction (lock row taken, id taken, row not committed).
struct OpenTransaction(Conn);

#[async_trait::async_trait]
impl backend_core::testkit::InFlightWriter for OpenTransaction {
    async fn begin(&mut self, m: &Message) {
        self.0
            .query_drop("START TRANSACTION")
            .await
            .expect("START TRANSACTION");
        self.0
            .exec_drop(statements::SERIAL_LOCK, ())
            .await
            .expect("the writers' lock");
        let values: Vec<mysql_async::Value> = vec![
            m.id.as_bytes().into(),
            m.sender.as_bytes().into(),
            m.topic.as_bytes().into(),
            1i64.into(),
            0i64.into(),
            m.payload.to_vec().into(),
            "2026-01-01 00:00:00.000".into(),
            mysql_async::Value::NULL,
        ];
        self.0
            .exec_drop(statements::store_messages(1), Params::Positional(values))
            .await
            .expect("the backend's insert, in the open transaction");
    }

    async fn finish(&mut self) {
        self.0.query_drop("COMMIT").await.expect("COMMIT");
    }
}

/// An id taken but not committed (a transaction held open) is never passed
/// by a pubsub reader: it cannot ack a later message and so mark this one
/// read before it is visible. The backend's writers serialise on the
/// `mqtt_msg_lock` row, so the second store waits for the first to commit.
#[test]
fn a_pubsub_reader_never_passes_an_uncommitted_message() {
    rt().block_on(async {
        let s = common::server();
        let backend: Arc<dyn Backend> = Arc::new(common::connect().await);
        let mut writer = OpenTransaction(s.raw().await);
        backend_core::testkit::reader_never_passes_a_writer_in_flight(backend, &mut writer).await;
    });
}
