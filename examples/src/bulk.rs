//! Each server's bulk path for the whole-stack benchmark's rows: the floor
//! the broker's write pattern is measured against (what the server spends
//! taking the same messages the cheapest way it offers).
//!
//! - PostgreSQL: one `COPY mqtt_msg … FROM STDIN` per 1,000 rows.
//! - MySQL: one multi-row `INSERT` of 1,000 rows.
//! - Redis: the commands the backend's store script runs for a message
//!   (HSET of the hash, its EXPIRE, the ZADD of its topic's set), pipelined
//!   1,000 messages at a time, after one INCRBY for their sequence.
//!
//! Cassandra's backend already writes unlogged batches, its bulk path, and
//! SQLite has no server: neither has a separate floor here.

use backend_core::BackendKind;

/// Rows per statement, COPY or pipeline.
const CHUNK: usize = 1000;

/// Stores `n` messages of 100 bytes on `topic` through `kind`'s bulk path
/// at `url`; `Ok(false)` when the kind has none of its own here.
pub async fn store(kind: BackendKind, url: &str, topic: &str, n: usize) -> Result<bool, String> {
    match kind.name() {
        "pgsql" => pgsql(url, topic, n).await.map(|()| true),
        "mysql" => mysql(url, topic, n).await.map(|()| true),
        "redis" => redis(url, topic, n).await.map(|()| true),
        _ => Ok(false),
    }
}

fn msgid(topic: &str, i: usize) -> String {
    format!("bulk-{}-{i}", topic.replace('/', "-"))
}

async fn pgsql(url: &str, topic: &str, n: usize) -> Result<(), String> {
    use backend_pgsql::tokio_postgres;
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    tokio::spawn(conn);
    let payload = format!("\\\\x{}", "78".repeat(100));
    for start in (0..n).step_by(CHUNK) {
        let mut rows = String::with_capacity(CHUNK * 300);
        for i in start..(start + CHUNK).min(n) {
            rows.push_str(&format!(
                "{}\tbulk\t{topic}\t1\t0\t{payload}\t2026-01-01 00:00:00\n",
                msgid(topic, i)
            ));
        }
        let sink = client
            .copy_in::<_, bytes::Bytes>(
                "COPY mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived) FROM STDIN",
            )
            .await
            .map_err(|e| format!("COPY: {e}"))?;
        futures::pin_mut!(sink);
        futures::SinkExt::send(&mut sink, bytes::Bytes::from(rows))
            .await
            .map_err(|e| format!("COPY: {e}"))?;
        sink.finish().await.map_err(|e| format!("COPY: {e}"))?;
    }
    Ok(())
}

async fn mysql(url: &str, topic: &str, n: usize) -> Result<(), String> {
    use backend_mysql::mysql_async::prelude::Queryable;
    use backend_mysql::mysql_async::{self, Value};
    let opts = mysql_async::Opts::from_url(url).map_err(|e| format!("MYSQL_URL: {e}"))?;
    let pool = mysql_async::Pool::new(opts);
    let mut conn = pool.get_conn().await.map_err(|e| format!("MySQL: {e}"))?;
    let payload = vec![b'x'; 100];
    for start in (0..n).step_by(CHUNK) {
        let rows = (start + CHUNK).min(n) - start;
        let text = format!(
            "INSERT INTO mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived) VALUES {}",
            vec!["(?, 'bulk', ?, 1, 0, ?, UTC_TIMESTAMP(3))"; rows].join(", ")
        );
        let mut params = Vec::with_capacity(rows * 3);
        for i in start..start + rows {
            params.push(Value::from(msgid(topic, i)));
            params.push(Value::from(topic));
            params.push(Value::from(payload.clone()));
        }
        conn.exec_drop(text, params)
            .await
            .map_err(|e| format!("INSERT: {e}"))?;
    }
    drop(conn);
    pool.disconnect().await.map_err(|e| format!("MySQL: {e}"))
}

async fn redis(url: &str, topic: &str, n: usize) -> Result<(), String> {
    use backend_redis::redis;
    // The project's Redis configuration uses database 1.
    let url = format!("{}/1", url.trim_end_matches('/'));
    let client = redis::Client::open(url.as_str()).map_err(|e| format!("REDIS_URL: {e}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("Redis: {e}"))?;
    let payload = vec![b'x'; 100];
    let set = format!("mqtt:msg:{topic}");
    for start in (0..n).step_by(CHUNK) {
        let rows = (start + CHUNK).min(n) - start;
        let last: i64 = redis::cmd("INCRBY")
            .arg("mqtt:msg_seq")
            .arg(rows)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("INCRBY: {e}"))?;
        let base = last - rows as i64;
        let mut pipe = redis::pipe();
        for (k, i) in (start..start + rows).enumerate() {
            let id = msgid(topic, i);
            let hash = format!("mqtt:msg:{id}");
            pipe.cmd("HSET")
                .arg(&hash)
                .arg("id")
                .arg(&id)
                .arg("from")
                .arg("bulk")
                .arg("qos")
                .arg(1)
                .arg("topic")
                .arg(topic)
                .arg("retain")
                .arg(0)
                .arg("payload")
                .arg(&payload)
                .arg("ts")
                .arg(1_767_225_600)
                .ignore();
            pipe.cmd("EXPIRE").arg(&hash).arg(7200).ignore();
            pipe.cmd("ZADD")
                .arg(&set)
                .arg(base + k as i64 + 1)
                .arg(&id)
                .ignore();
        }
        pipe.cmd("ZADD")
            .arg("mqtt:msg_topics")
            .arg(0)
            .arg(topic)
            .ignore();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("pipeline: {e}"))?;
    }
    Ok(())
}
