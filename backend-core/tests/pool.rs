//! Starting without the database, and pool health, on the in-memory
//! backend behind a connect function that fails the way a real one does
//! (a refused connection is retryable; a wrong password is not).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::pool::{start_pool, Connect, ConnectFuture};
use backend_core::{
    Backend, BackendError, Config, Engine, ErrorKind, MemoryBackend, Message, PoolState, Pools,
    QoS, StartMode,
};

/// A connect function that fails `failures` times with `kind`, then
/// connects to `store`.
fn flaky(store: MemoryBackend, failures: usize, kind: ErrorKind) -> (Connect, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let connect: Connect = Arc::new(move || -> ConnectFuture {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        let store = store.clone();
        Box::pin(async move {
            if n < failures {
                Err(BackendError::new(kind, "connection refused (os error 111)"))
            } else {
                Ok(Arc::new(store) as Arc<dyn Backend>)
            }
        })
    });
    (connect, calls)
}

fn config() -> Config {
    Config::parse(
        "backend.redis.pool1.server = 127.0.0.1:6379\n\
         backend.redis.hook.message.publish.1 = {\"topic\": \"#\", \"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\"}\n",
    )
    .expect("config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_starts_disconnected_and_writes_land_once_it_connects() {
    let store = MemoryBackend::new();
    let (connect, calls) = flaky(store.clone(), 3, ErrorKind::Connection);
    let pool = start_pool("pool1", "redis", StartMode::Background, connect)
        .await
        .expect("starts without the database");
    assert!(!pool.is_connected());
    assert!(pool.last_error().is_some_and(|e| e.contains("refused")));
    let mut pools = Pools::new();
    pools.insert("pool1".into(), Arc::clone(&pool) as Arc<dyn Backend>);
    let engine = Arc::new(Engine::new(&config(), &pools).expect("engine"));
    let health = engine.check_health().await;
    assert_eq!(health[0].state, PoolState::Down);
    assert!(
        health[0].last_error.as_ref().is_some_and(|e| {
            e.kind == backend_core::ErrorKind::Connection && e.message.contains("not connected yet")
        }),
        "{health:?}"
    );
    // A publish while disconnected is queued, not lost.
    let m = Message::new("p", "a/b", QoS::AtLeastOnce, "kept");
    let out = engine.on_message_publish(&m).await;
    assert!(
        out.errors.is_empty(),
        "queued, not failed: {:?}",
        out.errors
    );
    assert_eq!(engine.health()[0].queued, 1);
    // Background attempts at 0.5 s, 1 s, 2 s: connected within 4 s.
    let started = Instant::now();
    while !pool.is_connected() {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "never connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let health = engine.check_health().await;
    assert_eq!(health[0].state, PoolState::Up);
    assert_eq!(health[0].last_error, None);
    // The queued write lands.
    let started = Instant::now();
    loop {
        let got = store
            .fetch_messages(&backend_core::FetchRequest {
                client_id: "q".into(),
                filter: "a/b".into(),
                mode: backend_core::OfflineMode::Queue,
                max_count: None,
                since: None,
                page: None,
            })
            .await
            .expect("fetch");
        if got.len() == 1 {
            assert_eq!(got[0].id, m.id);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the queued write never landed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn what_retrying_cannot_mend_fails_at_start() {
    let (connect, _) = flaky(MemoryBackend::new(), 1, ErrorKind::Config);
    let e = start_pool("pool1", "pgsql", StartMode::Background, connect)
        .await
        .expect_err("a wrong password fails at once");
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn required_mode_fails_at_start_when_unreachable() {
    let (connect, calls) = flaky(MemoryBackend::new(), 1, ErrorKind::Connection);
    let e = start_pool("pool1", "pgsql", StartMode::Required, connect)
        .await
        .expect_err("required");
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_reachable_database_is_connected_at_once_and_up() {
    let (connect, calls) = flaky(MemoryBackend::new(), 0, ErrorKind::Connection);
    let pool = start_pool("pool1", "redis", StartMode::Background, connect)
        .await
        .expect("connected");
    assert!(pool.is_connected());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let mut pools = Pools::new();
    pools.insert("pool1".into(), pool as Arc<dyn Backend>);
    let engine = Engine::new(&config(), &pools).expect("engine");
    assert_eq!(engine.health()[0].state, PoolState::Unknown);
    let h = engine.check_health().await;
    assert_eq!(h[0].state, PoolState::Up);
    assert!(h[0].since.is_some());
}
