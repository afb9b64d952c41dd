//! The engine's sweeper on a real clock: with `time_range = 1s` and a
//! sweep every 100 ms, a steady load leaves about a second of messages in
//! the store, the metrics count what was removed, and an infinite
//! `time_range` sweeps nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::sweep::default_interval;
use backend_core::{
    Backend, Config, Engine, FetchRequest, MemoryBackend, Message, OfflineMode, QoS,
};

fn config(time_range: &str) -> Config {
    Config::parse(&format!(
        "backend.redis.pool1.server = 127.0.0.1:6379\n\
         backend.redis.time_range = {time_range}\n\
         backend.redis.hook.message.publish.1 = {{\"topic\": \"#\", \"action\": {{\"function\": \"on_message_publish\"}}, \"pool\": \"pool1\"}}\n"
    ))
    .expect("config")
}

async fn stored(b: &MemoryBackend) -> usize {
    b.fetch_messages(&FetchRequest {
        client_id: "counter".into(),
        filter: "#".into(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    })
    .await
    .expect("fetch")
    .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_load_keeps_about_time_range_of_messages() {
    let store = MemoryBackend::new();
    let engine =
        Arc::new(Engine::with_backend(&config("1s"), Arc::new(store.clone())).expect("engine"));
    assert_eq!(engine.retention(), Some(Duration::from_secs(1)));
    let sweeper = engine
        .spawn_sweeper(Duration::from_millis(100))
        .expect("a sweeper for a finite time_range");
    let started = Instant::now();
    let mut published = 0u64;
    let mut peak = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let out = engine
            .on_message_publish(&Message::new("p", "a/b", QoS::AtLeastOnce, "x"))
            .await;
        assert!(out.errors.is_empty());
        published += 1;
        if published.is_multiple_of(20) {
            peak = peak.max(stored(&store).await);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // About 200 a second here (the sleeps), so about 200 in a second's
    // window; the bound allows the sweep interval and scheduling slack.
    let rate = published as f64 / started.elapsed().as_secs_f64();
    let bound = (rate * 1.6) as usize + 10;
    assert!(
        (published as usize) > bound,
        "the load ({published}) outgrows the bound ({bound})"
    );
    assert!(
        peak <= bound,
        "peak {peak}, bound {bound} at {rate:.0} msg/s"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(stored(&store).await, 0, "everything swept after the load");
    let m = engine.sweep_metrics();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].pool, "pool1");
    assert_eq!(m[0].removed, published);
    assert!(m[0].runs >= 30, "{m:?}");
    assert_eq!(m[0].failures, 0);
    sweeper.abort();
}

#[tokio::test]
async fn an_infinite_time_range_sweeps_nothing() {
    let engine = Arc::new(
        Engine::with_backend(&config("infinity"), Arc::new(MemoryBackend::new())).expect("engine"),
    );
    assert_eq!(engine.retention(), None);
    assert!(engine.spawn_sweeper(Duration::from_millis(10)).is_none());
    assert!(engine.sweep().await.is_empty());
}

#[test]
fn the_default_interval_is_a_tenth_within_bounds() {
    assert_eq!(
        default_interval(Duration::from_secs(7200)),
        Duration::from_secs(60)
    );
    assert_eq!(
        default_interval(Duration::from_secs(30)),
        Duration::from_secs(3)
    );
    assert_eq!(
        default_interval(Duration::from_secs(2)),
        Duration::from_secs(1)
    );
}
