//! The bulk path of message stores, `LOAD DATA LOCAL INFILE`, against the
//! live server (`MYSQL_URL`, default
//! mysql://root:public@127.0.0.1:3306/mqtt): any bytes come back as they
//! were, a row the server would only warn about fails the store as the
//! statements do, and a server that refuses the load still gets every
//! message. A binary of its own: one test turns the server's
//! `local_infile` off for a moment.

mod common;

use backend_core::testkit::OrPanic;
use common::{rt, Raw};

use backend_core::testkit::unique;
use backend_core::{Backend, FetchRequest, Message, OfflineMode, QoS, Timestamp};
use backend_mysql::mysql_async::{self, prelude::Queryable};
use backend_mysql::MysqlBackend;

/// Held for reading by every test, and for writing by the one that turns
/// `local_infile` off, so no other test connects meanwhile.
static SERVER_SETTING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A backend of one connection, so its session counters are its own.
async fn one_connection() -> MysqlBackend {
    let mut settings = common::server().settings();
    settings.db.pool_size = 1;
    MysqlBackend::connect_with(settings)
        .await
        .or_panic("connect")
}

/// How many `LOAD DATA` statements the backend's one connection has run.
async fn loads(b: &MysqlBackend) -> u64 {
    let mut c = b.pool().get_conn().await.or_panic("the pool's connection");
    let n: Option<u64> = c
        .query_first(
            "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
             WHERE VARIABLE_NAME = 'COM_LOAD'",
        )
        .await
        .or_panic("session status");
    n.expect("COM_LOAD is a session status")
}

async fn fetch(b: &MysqlBackend, filter: &str) -> Vec<Message> {
    b.fetch_messages(&FetchRequest {
        client_id: unique("load-reader"),
        filter: filter.to_owned(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    })
    .await
    .or_panic("fetch")
}

#[test]
fn any_bytes_go_through_load_data_and_come_back_as_they_were() {
    let _shared = SERVER_SETTING.read().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        let b = one_connection().await;
        let root = unique("load");
        let every_byte: Vec<u8> = (0..=255).collect();
        let mut first = Message::new(
            "c\t1\\N",
            format!("{root}/a\tb\\N/\n/\\"),
            QoS::ExactlyOnce,
            every_byte.clone(),
        );
        first.retain = true;
        first.timestamp = Timestamp::from_millis(1_481_685_802_123);
        first.properties.message_expiry_interval = Some(3600);
        first.properties.content_type = Some("text/\t\\N".to_owned());
        first.properties.user_properties = vec![("k\n".to_owned(), "\\0\t".to_owned())];
        first.properties.correlation_data = Some(every_byte.clone().into());
        let empty = Message::new("\\", format!("{root}/\\N"), QoS::AtLeastOnce, Vec::new());
        let plain = Message::new("NULL", format!("{root}/plain"), QoS::AtLeastOnce, "\\N");
        let batch = vec![first, empty, plain];

        let before = loads(&b).await;
        b.store_messages(&batch, Default::default())
            .await
            .or_panic("store");
        assert_eq!(loads(&b).await, before + 1, "one LOAD DATA for the flush");

        let got = fetch(&b, &format!("{root}/#")).await;
        assert_eq!(got, batch, "every field as stored, in store order");
        let mut sql = common::server().raw().await;
        let nulls: Vec<(Vec<u8>, bool)> = sql
            .exec(
                "SELECT msgid, props IS NULL FROM mqtt_msg WHERE topic LIKE CONCAT(?, '/%') ORDER BY id",
                (&root,),
            )
            .await
            .or_panic("select");
        let want: Vec<(Vec<u8>, bool)> = batch
            .iter()
            .map(|m| (m.id.as_bytes().to_vec(), m.stored_properties().is_none()))
            .collect();
        assert_eq!(nulls, want, "no properties is NULL, not an empty value");
    });
}

#[test]
fn a_topic_longer_than_its_column_fails_the_store_and_stores_nothing_of_it() {
    let _shared = SERVER_SETTING.read().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        let b = one_connection().await;
        let mut sql = common::server().raw().await;
        let mode: Option<String> = sql
            .query_first("SELECT @@SESSION.sql_mode")
            .await
            .or_panic("sql_mode");
        assert!(
            mode.as_deref().unwrap_or("").contains("STRICT_"),
            "the test server runs in strict mode: {mode:?}"
        );
        let root = unique("load-long");
        let ok = Message::new("c", format!("{root}/ok"), QoS::AtLeastOnce, "p");
        // mqtt_msg.topic is varbinary(2048).
        let long = Message::new(
            "c",
            format!("{root}/{}", "x".repeat(3000)),
            QoS::AtLeastOnce,
            "p",
        );
        let before = loads(&b).await;
        let e = b
            .store_messages(&[ok.clone(), long], Default::default())
            .await
            .expect_err("a topic longer than its column is refused");
        assert!(e.to_string().contains("topic"), "{e}");
        assert_eq!(loads(&b).await, before + 1, "the load ran, and warned");
        assert!(
            fetch(&b, &format!("{root}/#")).await.is_empty(),
            "rolled back whole"
        );
        b.store_messages(std::slice::from_ref(&ok), Default::default())
            .await
            .or_panic("a good flush still loads");
        assert_eq!(fetch(&b, &format!("{root}/#")).await, vec![ok]);
    });
}

/// Sets one of the server's global variables, and puts its value back
/// when dropped, even if the test fails.
struct Global {
    name: &'static str,
    was: mysql_async::Value,
}

impl Global {
    async fn set(name: &'static str, value: impl Into<mysql_async::Value>) -> Global {
        let mut sql = common::server().raw().await;
        let was: Option<mysql_async::Value> = sql
            // Binary protocol: the value keeps its type (text would not
            // set a boolean back).
            .exec_first(format!("SELECT @@GLOBAL.{name}"), ())
            .await
            .or_panic(name);
        sql.exec_drop(format!("SET GLOBAL {name} = ?"), (value.into(),))
            .await
            .or_panic(name);
        Global {
            name,
            was: was.unwrap_or(mysql_async::Value::NULL),
        }
    }
}

impl Drop for Global {
    fn drop(&mut self) {
        let (name, was) = (self.name, self.was.clone());
        let restore = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
                .block_on(async {
                    let mut sql = common::server().raw().await;
                    sql.exec_drop(format!("SET GLOBAL {name} = ?"), (was,))
                        .await
                })
        });
        let failed = match restore.join() {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the restoring thread panicked".to_owned(),
        };
        let message = format!(
            "could not set {} back to {:?}: {failed}",
            self.name, self.was
        );
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            panic!("{message}");
        }
    }
}

#[test]
fn a_server_that_refuses_load_data_still_gets_every_message() {
    let _alone = SERVER_SETTING.write().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        let root = unique("load-off");
        let before_off = one_connection().await;
        let guard = Global::set("local_infile", 0).await;
        let after_off = one_connection().await;
        let batch: Vec<Message> = (0..5)
            .map(|i| {
                Message::new(
                    "c",
                    format!("{root}/{i}"),
                    QoS::AtLeastOnce,
                    format!("m{i}"),
                )
            })
            .collect();

        // Connected while it was on: the load is refused, the statements
        // store the flush, and later flushes go straight to them.
        before_off
            .store_messages(&batch[..2], Default::default())
            .await
            .or_panic("store after the server turned LOAD DATA off");
        let tried = loads(&before_off).await;
        before_off
            .store_messages(&batch[2..3], Default::default())
            .await
            .or_panic("store again");
        assert_eq!(loads(&before_off).await, tried, "no second attempt");

        // Connected while it was off: never tries.
        let before = loads(&after_off).await;
        after_off
            .store_messages(&batch[3..], Default::default())
            .await
            .or_panic("store with LOAD DATA off");
        assert_eq!(loads(&after_off).await, before, "no LOAD DATA");
        drop(guard);

        assert_eq!(fetch(&after_off, &format!("{root}/#")).await, batch);
    });
}

#[test]
fn loads_that_keep_warning_where_the_statements_store_stop() {
    let _alone = SERVER_SETTING.write().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        // Not in strict mode, a topic too long for its column is cut short
        // with a warning by the load and by the statements alike.
        let guard = Global::set("sql_mode", "").await;
        let b = one_connection().await;
        drop(guard);
        let root = unique("load-warned");
        let long = |i: usize| {
            let topic = format!("{root}/{i}/{}", "x".repeat(3000));
            Message::new("c", topic, QoS::AtLeastOnce, "p")
        };
        let mut counts = Vec::new();
        for i in 0..4 {
            b.store_messages(&[long(i)], Default::default())
                .await
                .or_panic("stored, cut short");
            counts.push(loads(&b).await);
        }
        let tried: Vec<u64> = counts.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(tried, [1, 1, 0], "the third warned load was the last");
        let mut sql = common::server().raw().await;
        let stored: Vec<usize> = sql
            .exec(
                "SELECT LENGTH(topic) FROM mqtt_msg WHERE topic LIKE CONCAT(?, '/%') ORDER BY id",
                (&root,),
            )
            .await
            .or_panic("select");
        assert_eq!(
            stored, [2048; 4],
            "every message stored, its topic cut short"
        );
        sql.exec_drop(
            "DELETE FROM mqtt_msg WHERE topic LIKE CONCAT(?, '/%')",
            (&root,),
        )
        .await
        .or_panic("clean up");
    });
}

#[test]
fn a_flush_larger_than_max_allowed_packet_goes_in_pieces() {
    let _alone = SERVER_SETTING.write().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        // The server checks each packet of the stream against it.
        let guard = Global::set("max_allowed_packet", 16_384).await;
        let b = one_connection().await;
        drop(guard);
        let root = unique("load-pieces");
        let batch: Vec<Message> = (0..20)
            .map(|i| {
                let payload: Vec<u8> = (0..3_000).map(|j| ((i + j) % 256) as u8).collect();
                Message::new("c", format!("{root}/{i}"), QoS::AtLeastOnce, payload)
            })
            .collect();
        let before = loads(&b).await;
        b.store_messages(&batch, Default::default())
            .await
            .or_panic("a 60 kB flush with max_allowed_packet at 16 kB");
        assert_eq!(loads(&b).await, before + 1, "one LOAD DATA");
        assert_eq!(fetch(&b, &format!("{root}/#")).await, batch);
    });
}

#[test]
fn a_row_larger_than_max_allowed_packet_fails_for_good() {
    let _alone = SERVER_SETTING.write().unwrap_or_else(|e| e.into_inner());
    rt().block_on(async {
        let packet = Global::set("max_allowed_packet", 16_384).await;
        let loading = one_connection().await;
        let infile = Global::set("local_infile", 0).await;
        let statements = one_connection().await;
        drop(infile);
        drop(packet);
        let root = unique("load-big");
        let message = |i: u8, size: usize| {
            Message::new("c", format!("{root}/{i}"), QoS::AtLeastOnce, vec![i; size])
        };

        // A clear error, not one that reads as an outage and is retried
        // without end; the load would store the row in pieces, but no
        // read could return it.
        for e in [
            loading
                .store_messages(&[message(1, 20_000)], Default::default())
                .await,
            statements
                .store_messages(&[message(2, 20_000)], Default::default())
                .await,
            statements
                .store_retained(&[message(3, 20_000)], Default::default())
                .await,
        ] {
            let e = e.expect_err("a 20 kB row with max_allowed_packet at 16 kB");
            assert!(!e.is_retryable(), "{e}");
            assert!(e.to_string().contains("max_allowed_packet"), "{e}");
        }
        for b in [&loading, &statements] {
            b.store_messages(&[message(4, 100)], Default::default())
                .await
                .or_panic("a small row still goes");
        }
        assert_eq!(fetch(&loading, &format!("{root}/#")).await.len(), 2);
    });
}
