//! Throughput of the backend beside the raw `redis` crate doing the same
//! work (the same scripts with the same keys and arguments, on a plain
//! multiplexed connection), in the same run, against the test Redis
//! (`REDIS_URL`, database 1). `cargo bench -p mqtt-storage-redis`.
//!
//! Each figure is the median of several runs. Not a test: nothing here is
//! asserted.

#[path = "../tests/common/mod.rs"]
mod common;

use std::future::Future;
use std::time::{Duration, Instant};

use backend_core::template::message_fields;
use backend_core::testkit::unique;
use backend_core::{Backend, Config, FetchRequest, Message, OfflineMode, QoS};
use backend_redis::keys;
use futures::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::Script;

const N: usize = 1000;
const RUNS: usize = 7;
const EXPIRE: u64 = 120;

fn store_script() -> Script {
    Script::new(include_str!("../src/lua/store_messages.lua"))
}

fn fetch_script() -> Script {
    Script::new(include_str!("../src/lua/fetch_messages.lua"))
}

async fn raw_store(c: &mut MultiplexedConnection, script: &Script, batch: &[Message]) {
    let mut inv = script.prepare_invoke();
    inv.key(keys::msg_seq())
        .key(keys::msg_topics())
        .arg(EXPIRE)
        .arg(keys::MSG_PREFIX);
    for m in batch {
        inv.key(keys::msg(&m.id)).key(keys::msg_topic(&m.topic));
        for (_, v) in message_fields(m) {
            inv.arg(v.as_ref());
        }
    }
    inv.invoke_async::<()>(c).await.expect("raw store");
}

async fn raw_fetch(c: &mut MultiplexedConnection, script: &Script, topic: &str) -> usize {
    let mut inv = script.prepare_invoke();
    inv.key(keys::acked("bench", topic))
        .key(keys::msg_seq())
        .key(keys::msg_topics())
        .key(keys::msg_topic(topic))
        .key(keys::acked("bench", topic))
        .arg("queue")
        .arg("")
        .arg("")
        .arg(keys::MSG_PREFIX)
        .arg(topic);
    let v: Vec<redis::Value> = inv.invoke_async(c).await.expect("raw fetch");
    v.len() / 8
}

fn messages(topic: &str) -> Vec<Message> {
    (0..N)
        .map(|i| Message::new("bench", topic, QoS::AtLeastOnce, format!("payload {i:>56}")))
        .collect()
}

/// Median wall times of `RUNS` runs of `backend(run)` and `raw(run)`,
/// alternating so that drift in the server affects both alike.
async fn medians<F, Fut, G, Gut>(mut backend: F, mut raw: G) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
    G: FnMut(usize) -> Gut,
    Gut: Future<Output = ()>,
{
    let (mut bt, mut rt) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for run in 0..RUNS {
        let t = Instant::now();
        backend(run).await;
        bt.push(t.elapsed());
        let t = Instant::now();
        raw(run).await;
        rt.push(t.elapsed());
    }
    bt.sort();
    rt.sort();
    (bt[RUNS / 2], rt[RUNS / 2])
}

fn row(what: &str, backend: Duration, raw: Duration) {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / N as f64;
    println!(
        "{what:<48} {:>10.2} ms {:>8.2} µs/msg   {:>10.2} ms {:>8.2} µs/msg   {:>5.2}x",
        backend.as_secs_f64() * 1e3,
        per(backend),
        raw.as_secs_f64() * 1e3,
        per(raw),
        backend.as_secs_f64() / raw.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let config =
        Config::parse(&format!("backend.redis.msg.expired_after = {EXPIRE}\n")).expect("config");
    let b = common::backend_with(&[], &config).await;
    let mut c = common::plain().await;
    let store = store_script();
    let fetch = fetch_script();
    let root = unique("bench");
    let mut topics = Vec::new();
    let mut topic = |what: &str, run: usize| {
        let t = format!("{root}/{what}/{run}");
        topics.push(t.clone());
        t
    };
    // Warm up: load the scripts, open connections.
    b.store_messages(&messages(&topic("warm", 0))[..10], Default::default())
        .await
        .expect("warm up");
    raw_store(&mut c, &store, &messages(&topic("warm", 1))[..10]).await;

    println!(
        "{N} messages of 64 bytes per run, median of {RUNS} runs; Redis at {}",
        common::target().url_for_messages
    );
    println!(
        "{:<48} {:>27}   {:>27}   {:>6}",
        "operation", "backend-redis", "raw redis crate", "ratio"
    );

    let batches: Vec<Vec<Message>> = (0..RUNS).map(|r| messages(&topic("b-batch", r))).collect();
    let raw_batches: Vec<Vec<Message>> =
        (0..RUNS).map(|r| messages(&topic("r-batch", r))).collect();
    let (bt, rt) = medians(
        |r| {
            let (b, m) = (&b, &batches[r]);
            async move {
                b.store_messages(m, Default::default())
                    .await
                    .expect("store")
            }
        },
        |r| {
            let (mut c, s, m) = (c.clone(), &store, &raw_batches[r]);
            async move { raw_store(&mut c, s, m).await }
        },
    )
    .await;
    row("store_messages: one batch of N (one trip)", bt, rt);

    let singles: Vec<Vec<Message>> = (0..RUNS).map(|r| messages(&topic("b-one", r))).collect();
    let raw_singles: Vec<Vec<Message>> = (0..RUNS).map(|r| messages(&topic("r-one", r))).collect();
    let (bt, rt) = medians(
        |r| {
            let (b, ms) = (&b, &singles[r]);
            async move {
                for m in ms {
                    b.store_messages(std::slice::from_ref(m), Default::default())
                        .await
                        .expect("store");
                }
            }
        },
        |r| {
            let (c, s, ms) = (c.clone(), &store, &raw_singles[r]);
            async move {
                let mut c = c;
                for m in ms {
                    raw_store(&mut c, s, std::slice::from_ref(m)).await;
                }
            }
        },
    )
    .await;
    row("store_messages: N calls of 1, one after another", bt, rt);

    let conc: Vec<Vec<Message>> = (0..RUNS).map(|r| messages(&topic("b-conc", r))).collect();
    let raw_conc: Vec<Vec<Message>> = (0..RUNS).map(|r| messages(&topic("r-conc", r))).collect();
    let (bt, rt) = medians(
        |r| {
            let (b, ms) = (&b, &conc[r]);
            async move {
                join_all(ms.iter().map(|m| async move {
                    b.store_messages(std::slice::from_ref(m), Default::default())
                        .await
                        .expect("store")
                }))
                .await;
            }
        },
        |r| {
            let (c, s, ms) = (&c, &store, &raw_conc[r]);
            async move {
                join_all(ms.iter().map(|m| {
                    let mut c = c.clone();
                    async move { raw_store(&mut c, s, std::slice::from_ref(m)).await }
                }))
                .await;
            }
        },
    )
    .await;
    row("store_messages: N calls of 1, concurrently", bt, rt);

    // Fetch the N messages of each batch topic (queue mode, exact topic).
    let (bt, rt) = medians(
        |r| {
            let (b, t) = (&b, batches[r][0].topic.clone());
            async move {
                let got = b
                    .fetch_messages(&FetchRequest {
                        client_id: "bench".into(),
                        filter: t,
                        mode: OfflineMode::Queue,
                        max_count: None,
                        since: None,
                        page: None,
                    })
                    .await
                    .expect("fetch");
                assert_eq!(got.len(), N);
            }
        },
        |r| {
            let (mut c, s, t) = (c.clone(), &fetch, raw_batches[r][0].topic.clone());
            async move { assert_eq!(raw_fetch(&mut c, s, &t).await, N) }
        },
    )
    .await;
    row("fetch_messages: N from one topic (queue)", bt, rt);
    println!("(raw fetch returns the reply undecoded; the backend also builds Message values)");

    // Clean up the bench's keys (the hashes expire after EXPIRE seconds).
    let mut p = redis::pipe();
    for t in &topics {
        p.del(keys::msg_topic(t)).ignore();
    }
    p.cmd("ZREM").arg(keys::msg_topics()).arg(&topics).ignore();
    p.query_async::<()>(&mut c).await.expect("cleanup");
}
