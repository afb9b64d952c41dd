//! Timings of the backend beside the raw driver doing its best in the same
//! run, against the cluster of `CASSA_NODES` (default 127.0.0.1:9042, user
//! and password `CASSA_USER`/`CASSA_PASSWORD`, default cassandra):
//!
//! ```text
//! cargo run --release -p mqtt-storage-cassa --example cassa_bench [-- N]
//! ```
//!
//! N messages (default 1000) of 64 bytes on one topic. "raw" is one
//! cdrs-tokio session writing the same `msg` rows as prepared statements in
//! unlogged single-partition batches of 100 (the driver's best for one
//! partition), and one by one. The backend also writes each message's
//! `msg_seq` row, so it does about twice the writes. The benchmark's
//! message partitions are deleted at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_cassa::cdrs_tokio;
use backend_cassa::CassaBackend;
use backend_core::config::PoolConfig;
use backend_core::{Backend, Config, FetchRequest, Message, OfflineMode, QoS};
use cdrs_tokio::authenticators::StaticPasswordAuthenticatorProvider;
use cdrs_tokio::cluster::session::{Session, SessionBuilder, TcpSessionBuilder};
use cdrs_tokio::cluster::{NodeTcpConfigBuilder, TcpConnectionManager};
use cdrs_tokio::frame::message_batch::BatchType;
use cdrs_tokio::load_balancing::RoundRobinLoadBalancingStrategy;
use cdrs_tokio::query::{BatchQueryBuilder, QueryValues};
use cdrs_tokio::transport::TransportTcp;
use cdrs_tokio::types::blob::Blob;
use cdrs_tokio::types::value::Value;

const PAYLOAD: usize = 64;
const ROUNDS: usize = 5;
const INSERT: &str = "INSERT INTO msg (topic, seq, msgid, sender, username, qos, retain, payload, \
                      arrived) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

type Raw = Session<
    TransportTcp,
    TcpConnectionManager,
    RoundRobinLoadBalancingStrategy<TransportTcp, TcpConnectionManager>,
>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
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
        "{what:<36} backend {:>9.2} ms ({:>8.0}/s)   raw cdrs-tokio {:>9.2} ms ({:>8.0}/s)",
        ours.as_secs_f64() * 1e3,
        rate(ours),
        raw.as_secs_f64() * 1e3,
        rate(raw)
    );
}

fn values(topic: &str, seq: i64, m: &Message) -> Vec<Value> {
    vec![
        Value::from(topic.to_owned()),
        Value::from(seq),
        Value::from(m.id.clone()),
        Value::from(m.sender.clone()),
        Value::Null,
        Value::from(1i32),
        Value::from(0i32),
        Value::from(Blob::new(m.payload.to_vec())),
        Value::from(m.timestamp.as_millis()),
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let (nodes, user, password) = (
        env("CASSA_NODES", "127.0.0.1:9042"),
        env("CASSA_USER", "cassandra"),
        env("CASSA_PASSWORD", "cassandra"),
    );
    let pool = PoolConfig::from_settings(
        backend_cassa::KIND,
        "pool1",
        &[
            ("nodes", nodes.as_str()),
            ("username", user.as_str()),
            ("password", password.as_str()),
            ("keyspace", "mqtt"),
            ("create_tables", "true"),
        ],
    )?;
    let config = Config::new(backend_cassa::KIND).with_pool(pool.clone());
    let backend = CassaBackend::connect(&pool, &config).await?;

    let auth = StaticPasswordAuthenticatorProvider::new(user.clone(), password.clone());
    let node_config = NodeTcpConfigBuilder::new()
        .with_contact_points(
            nodes
                .split(',')
                .map(|n| n.trim().to_owned().into())
                .collect(),
        )
        .with_authenticator_provider(Arc::new(auth))
        .build()
        .await?;
    let raw: Raw = TcpSessionBuilder::new(RoundRobinLoadBalancingStrategy::new(), node_config)
        .with_keyspace("mqtt".into())
        .build()
        .await?;
    let insert = raw.prepare(INSERT).await?;

    println!("{n} messages of {PAYLOAD} bytes on one topic, median of {ROUNDS} rounds");
    let messages = |topic: &str| -> Vec<Message> {
        (0..n)
            .map(|_| Message::new("bench", topic, QoS::AtLeastOnce, vec![b'x'; PAYLOAD]))
            .collect()
    };
    let mut round = 0u32;
    let ours = median(|| {
        round += 1;
        let msgs = messages(&format!("bench/ours/{round}/{}", std::process::id()));
        let b = backend.clone();
        async move {
            if let Err(e) = b.store_messages(&msgs, Default::default()).await {
                panic!("store: {e}");
            }
        }
    })
    .await;
    let mut round = 0u32;
    let theirs = median(|| {
        round += 1;
        let topic = format!("bench/raw/{round}/{}", std::process::id());
        let msgs = messages(&topic);
        let (raw, insert) = (&raw, &insert);
        async move {
            for (c, chunk) in msgs.chunks(100).enumerate() {
                let mut batch = BatchQueryBuilder::new().with_batch_type(BatchType::Unlogged);
                for (i, m) in chunk.iter().enumerate() {
                    let seq = (c * 100 + i) as i64;
                    batch = batch.add_query_prepared(
                        insert,
                        QueryValues::SimpleValues(values(&topic, seq, m)),
                    );
                }
                let batch = batch.build().unwrap_or_else(|e| panic!("batch: {e}"));
                if let Err(e) = raw.batch(batch).await {
                    panic!("raw batch: {e}");
                }
            }
        }
    })
    .await;
    row("store a batch of N", ours, theirs, n);

    let one = n.min(200);
    let mut round = 0u32;
    let ours = median(|| {
        round += 1;
        let msgs = messages(&format!("bench/ours1/{round}/{}", std::process::id()));
        let b = backend.clone();
        async move {
            for m in msgs.iter().take(one) {
                if let Err(e) = b
                    .store_messages(std::slice::from_ref(m), Default::default())
                    .await
                {
                    panic!("store: {e}");
                }
            }
        }
    })
    .await;
    let mut round = 0u32;
    let theirs = median(|| {
        round += 1;
        let topic = format!("bench/raw1/{round}/{}", std::process::id());
        let msgs = messages(&topic);
        let (raw, insert) = (&raw, &insert);
        async move {
            for (i, m) in msgs.iter().take(one).enumerate() {
                let v = QueryValues::SimpleValues(values(&topic, i as i64, m));
                if let Err(e) = raw.exec_with_values(insert, v).await {
                    panic!("raw insert: {e}");
                }
            }
        }
    })
    .await;
    row(&format!("store {one} one by one"), ours, theirs, one);

    let topic = format!("bench/fetch/{}", std::process::id());
    backend
        .store_messages(&messages(&topic), Default::default())
        .await?;
    let req = FetchRequest {
        client_id: "bench".into(),
        filter: topic.clone(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    };
    let ours = median(|| {
        let (b, req) = (backend.clone(), req.clone());
        async move {
            match b.fetch_messages(&req).await {
                Ok(m) => assert_eq!(m.len(), n),
                Err(e) => panic!("fetch: {e}"),
            }
        }
    })
    .await;
    let select = raw
        .prepare("SELECT seq, msgid, sender, username, qos, retain, payload, arrived FROM msg WHERE topic = ?")
        .await?;
    let theirs = median(|| {
        let (raw, select, topic) = (&raw, &select, topic.clone());
        async move {
            match raw
                .exec_with_values(select, QueryValues::SimpleValues(vec![Value::from(topic)]))
                .await
            {
                Ok(env) => {
                    let rows = env
                        .response_body()
                        .ok()
                        .and_then(|b| b.into_rows())
                        .unwrap_or_default();
                    assert_eq!(rows.len(), n);
                }
                Err(e) => panic!("raw select: {e}"),
            }
        }
    })
    .await;
    row("fetch N offline messages", ours, theirs, n);
    // Remove what the benchmark wrote: its topics' partitions (the
    // backend's lookup and index rows are small and stay).
    let pid = std::process::id();
    let mut topics = vec![topic];
    for r in 1..=ROUNDS {
        for kind in ["ours", "raw", "ours1", "raw1"] {
            topics.push(format!("bench/{kind}/{r}/{pid}"));
        }
    }
    for t in topics {
        raw.query_with_values(
            "DELETE FROM msg WHERE topic = ?",
            QueryValues::SimpleValues(vec![Value::from(t)]),
        )
        .await?;
    }
    Ok(())
}
