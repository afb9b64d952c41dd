//! Timings of the backend beside raw tokio-postgres doing the same work in
//! the same run, against the server of `PGSQL_URL` (default
//! postgres://root:public@127.0.0.1:5432/mqtt):
//!
//! ```text
//! cargo run --release -p mqtt-storage-pgsql --example bench [-- N]
//! ```
//!
//! N messages (default 1000) of 64 bytes. "raw" is one tokio-postgres
//! connection (no pool) running the same SQL (`backend_pgsql::statements`)
//! with the same parameters, plus a naive one-row INSERT for comparison.
//! Rows it writes are deleted at the end.

use std::time::{Duration, Instant};

use backend_core::config::PoolConfig;
use backend_core::{Backend, Config, FetchRequest, Message, OfflineMode, QoS};
use backend_pgsql::statements::{self, Shape};
use backend_pgsql::PgsqlBackend;
use tokio_postgres::types::ToSql;

const PAYLOAD: usize = 64;
const ROUNDS: usize = 5;

fn parse_url(url: &str) -> Option<(String, String, String, u16, String)> {
    let rest = url.strip_prefix("postgres://")?;
    let (auth, rest) = rest.rsplit_once('@')?;
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, db) = rest.split_once('/')?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    Some((
        user.into(),
        password.into(),
        host.into(),
        port.parse().ok()?,
        db.into(),
    ))
}

/// The median of `ROUNDS` runs of `f`.
async fn median<F, Fut>(mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        f().await;
        times.push(t.elapsed());
    }
    times.sort();
    times[ROUNDS / 2]
}

fn row(what: &str, ours: Duration, raw: Duration, n: usize) {
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "{what:<44} backend {:>9.2} ms ({:>9.0}/s)   raw tokio-postgres {:>9.2} ms ({:>9.0}/s)",
        ours.as_secs_f64() * 1e3,
        rate(ours),
        raw.as_secs_f64() * 1e3,
        rate(raw)
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let url = std::env::var("PGSQL_URL")
        .unwrap_or_else(|_| "postgres://root:public@127.0.0.1:5432/mqtt".into());
    let (user, password, host, port, db) =
        parse_url(&url).ok_or("PGSQL_URL is not postgres://user:password@host:port/database")?;

    let mut pool = PoolConfig::new(backend_pgsql::KIND, "pool1");
    pool.set("server", &format!("{host}:{port}"))?
        .set("username", &user)?
        .set("password", &password)?
        .set("database", &db)?
        .set("create_tables", "true")?;
    let backend = PgsqlBackend::connect(
        &pool,
        &Config::new(backend_pgsql::KIND).with_pool(pool.clone()),
    )
    .await?;
    let mut pg = tokio_postgres::Config::new();
    pg.host(&host)
        .port(port)
        .user(&user)
        .password(&password)
        .dbname(&db);
    let (raw, conn) = pg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(conn);

    let run = format!("bench-{}", std::process::id());
    let payload = vec![7u8; PAYLOAD];
    let make = |tag: &str, round: usize| -> Vec<Message> {
        (0..n)
            .map(|i| {
                Message::new(
                    run.clone(),
                    format!("{run}/{tag}/{round}/{}", i % 10),
                    QoS::AtLeastOnce,
                    payload.clone(),
                )
            })
            .collect()
    };
    let arrays = |msgs: &[Message]| {
        (
            msgs.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
            msgs.iter().map(|m| m.sender.clone()).collect::<Vec<_>>(),
            msgs.iter().map(|m| m.topic.clone()).collect::<Vec<_>>(),
            msgs.iter().map(|_| 1i32).collect::<Vec<_>>(),
            msgs.iter().map(|_| 0i32).collect::<Vec<_>>(),
            msgs.iter().map(|m| m.payload.to_vec()).collect::<Vec<_>>(),
            msgs.iter()
                .map(|_| std::time::SystemTime::now())
                .collect::<Vec<_>>(),
        )
    };
    println!("{n} messages of {PAYLOAD} bytes, median of {ROUNDS} rounds\n");

    // 1. One message per call: N round trips.
    let mut round = 0;
    let ours = median(|| {
        round += 1;
        let msgs = make("one-ours", round);
        let b = &backend;
        async move {
            for m in msgs {
                b.store_messages(std::slice::from_ref(&m), Default::default())
                    .await
                    .expect("store");
            }
        }
    })
    .await;
    let one = raw.prepare(statements::STORE_MESSAGE).await?;
    let raw_one = median(|| {
        round += 1;
        let msgs = make("one-raw", round);
        let (raw, one) = (&raw, &one);
        async move {
            for m in msgs {
                let now = std::time::SystemTime::now();
                raw.execute(
                    one,
                    &[
                        &m.id,
                        &m.sender,
                        &m.topic,
                        &1i32,
                        &0i32,
                        &&m.payload[..],
                        &now,
                    ],
                )
                .await
                .expect("raw store");
            }
        }
    })
    .await;
    row("store, one message per call", ours, raw_one, n);
    let plain = raw
        .prepare(
            "INSERT INTO mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let raw_plain = median(|| {
        round += 1;
        let msgs = make("plain-raw", round);
        let (raw, plain) = (&raw, &plain);
        async move {
            for m in msgs {
                let now = std::time::SystemTime::now();
                raw.execute(
                    plain,
                    &[
                        &m.id,
                        &m.sender,
                        &m.topic,
                        &1i32,
                        &0i32,
                        &&m.payload[..],
                        &now,
                    ],
                )
                .await
                .expect("raw insert");
            }
        }
    })
    .await;
    row(
        "  (raw: a plain INSERT, no ON CONFLICT)",
        ours,
        raw_plain,
        n,
    );
    let stmt = raw.prepare(statements::STORE_MESSAGES).await?;

    // 2. N messages in one call: one round trip.
    let ours = median(|| {
        round += 1;
        let msgs = make("batch-ours", round);
        let b = &backend;
        async move {
            b.store_messages(&msgs, Default::default())
                .await
                .expect("store batch");
        }
    })
    .await;
    let raw_batch = median(|| {
        round += 1;
        let msgs = make("batch-raw", round);
        let (raw, stmt) = (&raw, &stmt);
        async move {
            let a = arrays(&msgs);
            let p: [&(dyn ToSql + Sync); 7] = [&a.0, &a.1, &a.2, &a.3, &a.4, &a.5, &a.6];
            raw.execute(stmt, &p).await.expect("raw batch");
        }
    })
    .await;
    row("store, all in one call (unnest)", ours, raw_batch, n);

    // 3. Fetch N messages of one exact topic (queue mode).
    let topic = format!("{run}-fetch/x");
    let msgs: Vec<Message> = (0..n)
        .map(|_| {
            Message::new(
                run.clone(),
                topic.clone(),
                QoS::AtLeastOnce,
                payload.clone(),
            )
        })
        .collect();
    backend.store_messages(&msgs, Default::default()).await?;
    let req = FetchRequest {
        client_id: "bench".into(),
        filter: topic.clone(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    };
    let ours = median(|| async {
        let got = backend.fetch_messages(&req).await.expect("fetch");
        assert_eq!(got.len(), n);
    })
    .await;
    let fetch = raw
        .prepare(statements::fetch(false, Shape::Exact, false))
        .await?;
    let raw_fetch = median(|| async {
        let none_t: Option<std::time::SystemTime> = None;
        let none_n: Option<i64> = None;
        let rows = raw
            .query(&fetch, &[&none_t, &none_n, &topic])
            .await
            .expect("raw fetch");
        // Decode every column into owned values, as the backend does.
        type Decoded = (
            String,
            Option<String>,
            Option<String>,
            Option<i32>,
            Option<i32>,
            Option<Vec<u8>>,
            Option<std::time::SystemTime>,
        );
        let decoded: Vec<Decoded> = rows
            .iter()
            .rev()
            .map(|r| {
                (
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            })
            .collect();
        let n_got = decoded.len();
        assert_eq!(n_got, n);
    })
    .await;
    row("fetch, exact topic, queue mode", ours, raw_fetch, n);

    // 4. The same through a wildcard filter.
    let req = FetchRequest {
        filter: format!("{run}-fetch/+"),
        ..req
    };
    let ours = median(|| async {
        let got = backend.fetch_messages(&req).await.expect("fetch");
        assert_eq!(got.len(), n);
    })
    .await;
    let wild = raw
        .prepare(statements::fetch(false, Shape::Range, false))
        .await?;
    let (from, to, re) =
        match backend_pgsql::filter::topic_match(&req.filter) {
            backend_pgsql::filter::TopicMatch::Wildcard(
                backend_pgsql::filter::Wildcard::Range { from, to, regex },
            ) => (from, to, regex),
            other => return Err(format!("unexpected {other:?}").into()),
        };
    let raw_wild = median(|| async {
        let none_t: Option<std::time::SystemTime> = None;
        let none_n: Option<i64> = None;
        let rows = raw
            .query(&wild, &[&none_t, &none_n, &from, &to, &re])
            .await
            .expect("raw wildcard fetch");
        assert_eq!(rows.len(), n);
    })
    .await;
    row(
        "fetch, wildcard `<root>-fetch/+`, queue mode",
        ours,
        raw_wild,
        n,
    );

    let deleted = raw
        .execute("DELETE FROM mqtt_msg WHERE sender = $1", &[&run])
        .await?;
    println!("\ncleaned up {deleted} rows");
    Ok(())
}
