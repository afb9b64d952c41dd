//! The engine's write path: group commit, order per topic, a batch with
//! one bad write, and the buffer (writes that fail while the server is
//! away are kept, in order, and land when it is back; a full buffer
//! blocks or drops as configured).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_core::backend::{BackendInfo, Capabilities, ClientStatus, FetchRequest};
use backend_core::config::{ActionJson, ConfigSpec, RuleJson, RuleSpec};
use backend_core::observe;
use backend_core::{
    Ack, Backend, BackendError, BackendResult, BufferFull, ClientInfo, Config, Engine, ErrorKind,
    Hook, MemoryBackend, Message, OfflineMode, Pools, QoS, QueryMode, Row, Statement, Subscription,
    Timestamp, WriteOptions, WritePolicy,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::CompositeKey;

/// A `MemoryBackend` whose writes fail while `down` is set, with `kind`;
/// whose message stores take `delay_ms` and reject a whole call holding a
/// message with the payload `bad`; and that counts its store calls.
#[derive(Default)]
struct Switchable {
    inner: MemoryBackend,
    down: AtomicBool,
    kind: AtomicU8,
    delay_ms: AtomicU64,
    store_calls: AtomicU64,
    fetch_calls: AtomicU64,
    /// Fetches never answer (a hung server).
    fetch_hangs: AtomicBool,
    /// Subscription lookups take this long.
    lookup_delay_ms: AtomicU64,
    /// Subscription lookups run to their end.
    lookups_done: AtomicU64,
    /// Stores marked `again`, and stores not.
    again_stores: AtomicU64,
    fresh_stores: AtomicU64,
}

impl Switchable {
    async fn check_store(&self, m: &[Message]) -> BackendResult<()> {
        self.store_calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.check()?;
        if m.iter().any(|m| &m.payload[..] == b"bad") {
            return Err(BackendError::new(ErrorKind::Data, "a bad row"));
        }
        Ok(())
    }

    fn check(&self) -> BackendResult<()> {
        if !self.down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let kind = match self.kind.load(Ordering::SeqCst) {
            0 => ErrorKind::Connection,
            _ => ErrorKind::Query,
        };
        Err(BackendError::new(kind, "server away"))
    }
}

#[async_trait]
impl Backend for Switchable {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("switchable", Capabilities::NONE)
    }

    async fn ping(&self) -> BackendResult<()> {
        Ok(())
    }

    async fn client_online(&self, c: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.check()?;
        self.inner.client_online(c, at).await
    }
    async fn client_offline(&self, c: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.check()?;
        self.inner.client_offline(c, at).await
    }
    async fn client_status(&self, id: &str) -> BackendResult<Option<ClientStatus>> {
        self.inner.client_status(id).await
    }
    async fn lookup_subscriptions(&self, id: &str) -> BackendResult<Vec<Subscription>> {
        let delay = self.lookup_delay_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.lookups_done.fetch_add(1, Ordering::SeqCst);
        self.inner.lookup_subscriptions(id).await
    }
    async fn store_subscriptions(&self, id: &str, s: &[Subscription]) -> BackendResult<()> {
        self.inner.store_subscriptions(id, s).await
    }
    async fn delete_subscriptions(&self, id: &str, f: &[String]) -> BackendResult<()> {
        self.inner.delete_subscriptions(id, f).await
    }
    async fn store_messages(&self, m: &[Message], o: WriteOptions) -> BackendResult<()> {
        let kind = if o.again {
            &self.again_stores
        } else {
            &self.fresh_stores
        };
        kind.fetch_add(1, Ordering::SeqCst);
        self.check_store(m).await?;
        self.inner.store_messages(m, o).await
    }
    async fn fetch_messages(&self, r: &FetchRequest) -> BackendResult<Vec<Message>> {
        self.fetch_calls.fetch_add(1, Ordering::SeqCst);
        if self.fetch_hangs.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.fetch_messages(r).await
    }
    async fn ack_messages(&self, mode: OfflineMode, a: &[Ack]) -> BackendResult<()> {
        self.check()?;
        self.inner.ack_messages(mode, a).await
    }
    async fn store_retained(&self, m: &[Message], o: WriteOptions) -> BackendResult<()> {
        self.check()?;
        self.inner.store_retained(m, o).await
    }
    async fn delete_retained(&self, t: &[String]) -> BackendResult<()> {
        self.check()?;
        self.inner.delete_retained(t).await
    }
    async fn lookup_retained(&self, f: &str) -> BackendResult<Vec<Message>> {
        self.inner.lookup_retained(f).await
    }
    async fn execute(&self, s: &Statement) -> BackendResult<Vec<Row>> {
        self.check()?;
        self.inner.execute(s).await
    }
}

fn engine(backend: Arc<Switchable>, policy: WritePolicy) -> Engine {
    let mut spec = ConfigSpec::new(backend_core::testkit::kinds::REDIS);
    spec.pools.insert("pool1".into(), Default::default());
    for function in ["on_message_publish", "on_message_retain"] {
        spec.rules.push(RuleSpec {
            hook: Hook::MessagePublish,
            index: None,
            rule: RuleJson {
                topic: Some("#".into()),
                action: ActionJson {
                    function: Some(function.into()),
                    ..ActionJson::default()
                },
                pool: "pool1".into(),
                payload_format: None,
            },
        });
    }
    spec.rules.push(RuleSpec {
        hook: Hook::SessionSubscribed,
        index: None,
        rule: RuleJson {
            topic: Some("#".into()),
            action: ActionJson {
                function: Some("on_message_fetch_for_queue".into()),
                ..ActionJson::default()
            },
            pool: "pool1".into(),
            payload_format: None,
        },
    });
    for function in ["on_client_connected", "on_subscribe_lookup"] {
        spec.rules.push(RuleSpec {
            hook: Hook::ClientConnected,
            index: None,
            rule: RuleJson {
                topic: None,
                action: ActionJson {
                    function: Some(function.into()),
                    ..ActionJson::default()
                },
                pool: "pool1".into(),
                payload_format: None,
            },
        });
    }
    let config = Config::from_spec(spec).expect("valid config");
    let pools: Pools = [("pool1".to_owned(), backend as Arc<dyn Backend>)].into();
    Engine::with_policy(&config, &pools, policy).expect("engine")
}

/// `query_mode = sync`: each hook reports what became of its write.
fn policy(buffer_size: usize) -> WritePolicy {
    WritePolicy {
        mode: QueryMode::Sync,
        buffer_size,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..WritePolicy::default()
    }
}

fn rule_metrics(e: &Engine, rule: &str) -> backend_core::engine::RuleMetrics {
    e.metrics()
        .into_iter()
        .find(|m| m.rule.ends_with(rule))
        .unwrap_or_else(|| panic!("no rule {rule}"))
}

async fn wait_drained(e: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.pending_writes() > 0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stored(b: &Switchable, topic: &str) -> Vec<String> {
    let req = FetchRequest {
        client_id: "c".into(),
        filter: topic.into(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    };
    b.fetch_messages(&req)
        .await
        .expect("fetch")
        .into_iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect()
}

#[tokio::test]
async fn writes_during_an_outage_land_in_order_when_the_server_is_back() {
    let b = Arc::new(Switchable::default());
    let e = engine(Arc::clone(&b), policy(100));
    b.down.store(true, Ordering::SeqCst);
    for i in 0..5 {
        let out = e
            .on_message_publish(&Message::new("p", "t/1", QoS::AtLeastOnce, format!("m{i}")))
            .await;
        assert!(
            out.errors.is_empty(),
            "queued, not failed: {:?}",
            out.errors
        );
    }
    assert_eq!(e.pending_writes(), 5);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        e.pending_writes(),
        5,
        "nothing lands while the server is away"
    );
    b.down.store(false, Ordering::SeqCst);
    // A write arriving now still goes behind the queued ones.
    let out = e
        .on_message_publish(&Message::new("p", "t/1", QoS::AtLeastOnce, "m5"))
        .await;
    assert!(out.errors.is_empty());
    wait_drained(&e).await;
    assert_eq!(
        stored(&b, "t/1").await,
        ["m0", "m1", "m2", "m3", "m4", "m5"]
    );
    let m = &rule_metrics(&e, "message.publish.1");
    assert_eq!(
        (m.queued, m.retried, m.dropped, m.failed),
        (6, 6, 0, 0),
        "{m:?}"
    );
}

#[tokio::test]
async fn reads_fail_at_once_while_the_server_is_away_and_run_again_once_it_is_back() {
    let b = Arc::new(Switchable::default());
    let e = engine(Arc::clone(&b), policy(100));
    let sub = backend_core::SessionSubscribed {
        client: ClientInfo::new("s", "node1"),
        filter: "t/away".into(),
        qos: QoS::AtLeastOnce,
    };
    b.down.store(true, Ordering::SeqCst);
    let out = e.on_message_publish(&msg("t/away", "kept")).await;
    assert!(out.errors.is_empty(), "queued: {:?}", out.errors);
    let got = e.on_session_subscribed(&sub).await;
    assert_eq!(
        b.fetch_calls.load(Ordering::SeqCst),
        0,
        "no fetch was tried"
    );
    let [err] = &got.errors[..] else {
        panic!("one error: {:?}", got.errors)
    };
    assert_eq!(err.source.kind(), ErrorKind::Connection, "{err}");
    assert!(err.source.is_retryable());
    assert!(err.to_string().contains("the server is away"), "{err}");
    b.down.store(false, Ordering::SeqCst);
    wait_drained(&e).await;
    let got = e.on_session_subscribed(&sub).await;
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    let fetched: Vec<&[u8]> = got.output.offline.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(fetched, [b"kept"], "the queued write landed, then was read");
    // A write that fails for good says nothing of the server: reads go on.
    b.kind.store(1, Ordering::SeqCst);
    b.down.store(true, Ordering::SeqCst);
    let out = e.on_message_publish(&msg("t/away", "refused")).await;
    assert_eq!(out.errors.len(), 1, "a query error is reported");
    let got = e.on_session_subscribed(&sub).await;
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    assert_eq!(b.fetch_calls.load(Ordering::SeqCst), 2);
}

/// A silent server: each fetch gives up after `fetch_timeout` (a slow
/// answer is no finding that the server is away: the next read tries
/// again). A write that stalls, by contrast, finds the server away: reads
/// then fail at once, until the write lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_end_at_their_timeout_and_a_stalled_write_finds_the_server_away() {
    let b = Arc::new(Switchable::default());
    let fetch_timeout = Duration::from_millis(200);
    let e = engine(
        Arc::clone(&b),
        WritePolicy {
            read_timeout: Duration::from_millis(100),
            fetch_timeout,
            // The publish returns once its write is buffered.
            mode: QueryMode::Async,
            ..policy(100)
        },
    );
    let sub = backend_core::SessionSubscribed {
        client: ClientInfo::new("s", "node1"),
        filter: "t/silent".into(),
        qos: QoS::AtLeastOnce,
    };
    b.fetch_hangs.store(true, Ordering::SeqCst);
    for tries in 1..=2 {
        let started = std::time::Instant::now();
        let got = e.on_session_subscribed(&sub).await;
        let waited = started.elapsed();
        let [err] = &got.errors[..] else {
            panic!("one error: {:?}", got.errors)
        };
        assert_eq!(err.source.kind(), ErrorKind::Timeout, "{err}");
        assert!(err.to_string().contains("fetch_timeout"), "{err}");
        assert!(waited >= fetch_timeout, "gave up after {waited:?}");
        assert_eq!(b.fetch_calls.load(Ordering::SeqCst), tries, "tried again");
    }
    b.fetch_hangs.store(false, Ordering::SeqCst);
    // A store that takes 7 s: stalled after 5 s (20 × a flush's usual
    // time, at least 5 s).
    b.delay_ms.store(7000, Ordering::SeqCst);
    let out = e.on_message_publish(&msg("t/silent", "slow")).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    tokio::time::sleep(Duration::from_millis(5300)).await;
    let started = std::time::Instant::now();
    let got = e.on_session_subscribed(&sub).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "failed at once"
    );
    let [err] = &got.errors[..] else {
        panic!("one error: {:?}", got.errors)
    };
    assert!(err.to_string().contains("the server is away"), "{err}");
    assert!(err.to_string().contains("no answer"), "{err}");
    assert_eq!(b.fetch_calls.load(Ordering::SeqCst), 2, "not tried");
    // The write lands: reads run again, and see it.
    wait_drained(&e).await;
    b.delay_ms.store(0, Ordering::SeqCst);
    let got = e.on_session_subscribed(&sub).await;
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    let fetched: Vec<&[u8]> = got.output.offline.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(fetched, [b"slow"]);
}

#[tokio::test]
async fn a_retried_store_is_marked_again_and_a_first_attempt_is_not() {
    let b = Arc::new(Switchable::default());
    let e = engine(Arc::clone(&b), policy(100));
    let out = e.on_message_publish(&msg("t/again", "first")).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(b.again_stores.load(Ordering::SeqCst), 0, "a first attempt");
    b.down.store(true, Ordering::SeqCst);
    let out = e.on_message_publish(&msg("t/again", "kept")).await;
    assert!(out.errors.is_empty(), "queued: {:?}", out.errors);
    b.down.store(false, Ordering::SeqCst);
    wait_drained(&e).await;
    assert!(
        b.again_stores.load(Ordering::SeqCst) >= 1,
        "the retry of a failed store may repeat what landed: marked again"
    );
    assert_eq!(stored(&b, "t/again").await, ["first", "kept"]);
}

#[tokio::test]
async fn errors_retrying_cannot_mend_are_reported_at_once() {
    let b = Arc::new(Switchable::default());
    let e = engine(Arc::clone(&b), policy(100));
    b.kind.store(1, Ordering::SeqCst);
    b.down.store(true, Ordering::SeqCst);
    let out = e
        .on_message_publish(&Message::new("p", "t/2", QoS::AtLeastOnce, "x"))
        .await;
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].source.kind(), ErrorKind::Query);
    assert_eq!(e.pending_writes(), 0);
    assert_eq!(rule_metrics(&e, "message.publish.1").failed, 1);
}

#[tokio::test]
async fn a_full_buffer_with_drop_new_refuses_and_counts_the_write() {
    let b = Arc::new(Switchable::default());
    let e = engine(
        Arc::clone(&b),
        WritePolicy {
            buffer_full: BufferFull::DropNew,
            ..policy(2)
        },
    );
    b.down.store(true, Ordering::SeqCst);
    let mut errors = 0;
    for i in 0..3 {
        let msg = Message::new("p", "t/3", QoS::AtLeastOnce, format!("m{i}"));
        errors += e.on_message_publish(&msg).await.errors.len();
    }
    assert_eq!(errors, 1, "the third write finds the buffer full");
    assert_eq!(rule_metrics(&e, "message.publish.1").dropped, 1);
    assert_eq!(e.write_metrics()[0].dropped_full, 1);
    b.down.store(false, Ordering::SeqCst);
    wait_drained(&e).await;
    assert_eq!(stored(&b, "t/3").await, ["m0", "m1"]);
}

#[tokio::test]
async fn retrying_off_reports_every_failure() {
    let b = Arc::new(Switchable::default());
    let e = engine(Arc::clone(&b), WritePolicy::off());
    b.down.store(true, Ordering::SeqCst);
    let out = e
        .on_message_publish(&Message::new("p", "t/4", QoS::AtLeastOnce, "x").retained(true))
        .await;
    assert_eq!(out.errors.len(), 2, "store and retain both fail");
    assert!(out.errors.iter().all(|e| e.is_retryable()));
    assert_eq!(e.pending_writes(), 0);
}

/// Client `s` subscribing to `filter` at QoS 1.
fn subscribed(filter: &str) -> backend_core::SessionSubscribed {
    backend_core::SessionSubscribed {
        client: ClientInfo::new("s", "node1"),
        filter: filter.into(),
        qos: QoS::AtLeastOnce,
    }
}

fn msg(topic: &str, payload: impl Into<Vec<u8>>) -> Message {
    Message::new("p", topic, QoS::AtLeastOnce, payload.into())
}

#[tokio::test]
async fn a_full_buffer_with_drop_oldest_gives_up_the_oldest_write() {
    let b = Arc::new(Switchable::default());
    let e = engine(
        Arc::clone(&b),
        WritePolicy {
            buffer_full: BufferFull::DropOldest,
            ..policy(2)
        },
    );
    b.down.store(true, Ordering::SeqCst);
    for i in 0..4 {
        let out = e.on_message_publish(&msg("t/5", format!("m{i}"))).await;
        assert!(
            out.errors.is_empty(),
            "the new write is kept: {:?}",
            out.errors
        );
    }
    assert_eq!(e.write_metrics()[0].dropped_full, 2);
    b.down.store(false, Ordering::SeqCst);
    wait_drained(&e).await;
    assert_eq!(
        stored(&b, "t/5").await,
        ["m2", "m3"],
        "the two newest are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_blocks_the_publisher_until_the_server_is_back() {
    let b = Arc::new(Switchable::default());
    let e = Arc::new(engine(Arc::clone(&b), policy(3)));
    b.down.store(true, Ordering::SeqCst);
    let publisher = {
        let e = Arc::clone(&e);
        tokio::spawn(async move {
            for i in 0..10 {
                let out = e.on_message_publish(&msg("t/6", format!("m{i}"))).await;
                assert!(out.errors.is_empty(), "{:?}", out.errors);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!publisher.is_finished(), "the publisher waits for room");
    assert_eq!(e.pending_writes(), 3, "the buffer holds its size, no more");
    b.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), publisher)
        .await
        .expect("the publisher finishes once the server is back")
        .expect("publisher task");
    wait_drained(&e).await;
    let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(stored(&b, "t/6").await, want, "nothing lost, in order");
    assert_eq!(e.write_metrics()[0].dropped_full, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_are_batched_and_each_topic_keeps_its_order() {
    let b = Arc::new(Switchable::default());
    // A slow server: writes pile up while a flush is under way.
    b.delay_ms.store(5, Ordering::SeqCst);
    let e = Arc::new(engine(Arc::clone(&b), policy(10_000)));
    let mut tasks = Vec::new();
    for p in 0..16 {
        let e = Arc::clone(&e);
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let topic = format!("order/{}", p % 5);
                let m = Message::new(format!("p{p}"), topic, QoS::AtLeastOnce, format!("{p}:{i}"));
                let out = e.on_message_publish(&m).await;
                assert!(out.errors.is_empty(), "{:?}", out.errors);
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
    let w = &e.write_metrics()[0];
    assert_eq!(w.writes, 400, "{w:?}");
    assert!(
        w.largest_batch > 1,
        "concurrent writes share flushes: {w:?}"
    );
    assert!(
        b.store_calls.load(Ordering::SeqCst) < 400,
        "fewer calls than messages: {}",
        b.store_calls.load(Ordering::SeqCst)
    );
    for t in 0..5 {
        let got = stored(&b, &format!("order/{t}")).await;
        assert_eq!(got.len(), 16 / 5 * 25 + if t < 16 % 5 { 25 } else { 0 });
        // Each publisher's messages on the topic come in the order sent.
        let mut last: std::collections::HashMap<&str, i32> = Default::default();
        for m in &got {
            let (p, i) = m.split_once(':').expect("p:i");
            let i: i32 = i.parse().expect("i");
            let prev = last.insert(p, i).unwrap_or(-1);
            assert!(i > prev, "order/{t}: {p}'s {i} after {prev}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_write_stores_the_others_and_reports_the_bad_one() {
    let b = Arc::new(Switchable::default());
    b.delay_ms.store(20, Ordering::SeqCst);
    let e = Arc::new(engine(Arc::clone(&b), policy(10_000)));
    // The first write keeps the lane busy so the next 20 form one batch.
    let mut tasks = Vec::new();
    for i in 0..21 {
        let e = Arc::clone(&e);
        let payload = if i == 13 {
            "bad".to_owned()
        } else {
            format!("m{i}")
        };
        tasks.push(tokio::spawn(async move {
            e.on_message_publish(&msg("t/bad", payload)).await.errors
        }));
        if i == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut failures = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let errors = t.await.expect("publisher");
        if !errors.is_empty() {
            failures.push((i, errors[0].source.kind()));
        }
    }
    assert_eq!(
        failures,
        vec![(13, ErrorKind::Data)],
        "only the bad write fails"
    );
    let got = stored(&b, "t/bad").await;
    assert_eq!(got.len(), 20, "{got:?}");
    assert!(!got.iter().any(|p| p == "bad"));
    assert!(
        e.write_metrics()[0].largest_batch >= 10,
        "{:?}",
        e.write_metrics()
    );
}

#[tokio::test]
async fn flush_waits_for_the_buffer_and_reports_what_could_not_land() {
    let b = Arc::new(Switchable::default());
    let e = engine(Arc::clone(&b), policy(100));
    b.down.store(true, Ordering::SeqCst);
    for i in 0..3 {
        let out = e.on_message_publish(&msg("t/7", format!("m{i}"))).await;
        assert!(out.errors.is_empty(), "kept for retry: {:?}", out.errors);
    }
    assert_eq!(
        e.flush(Duration::from_millis(100)).await,
        3,
        "the server is away"
    );
    b.down.store(false, Ordering::SeqCst);
    assert_eq!(e.flush(Duration::from_secs(10)).await, 0);
    assert_eq!(stored(&b, "t/7").await, ["m0", "m1", "m2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_mode_returns_before_the_write_lands_and_reads_still_see_it() {
    let b = Arc::new(Switchable::default());
    b.delay_ms.store(300, Ordering::SeqCst);
    let e = engine(
        Arc::clone(&b),
        WritePolicy {
            mode: QueryMode::Async,
            ..policy(100)
        },
    );
    let t = Instant::now();
    let out = e.on_message_publish(&msg("t/async", "a")).await;
    assert!(out.errors.is_empty());
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "the hook did not wait for the 300 ms store"
    );
    assert_eq!(e.pending_writes(), 1, "still in the buffer");
    // A subscribe's fetch waits for the write before it.
    let got = e.on_session_subscribed(&subscribed("t/async")).await;
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    let fetched: Vec<&[u8]> = got.output.offline.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(fetched, [b"a"], "the fetch saw the write before it");
    assert_eq!(e.pending_writes(), 0);
    let m = &rule_metrics(&e, "message.publish.1");
    assert_eq!(
        (m.succeeded, m.failed),
        (1, 0),
        "counted when it landed: {m:?}"
    );
    assert_eq!(
        rule_metrics(&e, "session.subscribed.1").succeeded,
        1,
        "the fetch rule ran"
    );
}

/// A read waits for the buffered writes of its own key only: with one
/// lane for every key, a fetch of another topic does not wait behind a
/// slow store, while a fetch of the store's topic still sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_for_its_own_keys_writes_not_its_lanes() {
    let b = Arc::new(Switchable::default());
    b.delay_ms.store(1500, Ordering::SeqCst);
    let e = engine(
        Arc::clone(&b),
        WritePolicy {
            mode: QueryMode::Async,
            workers: 1,
            ..policy(100)
        },
    );
    let out = e.on_message_publish(&msg("t/slow", "a")).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let t = Instant::now();
    let other = e.on_session_subscribed(&subscribed("t/other")).await;
    assert!(other.errors.is_empty(), "{:?}", other.errors);
    assert!(other.output.offline.is_empty());
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "another topic's fetch waited {:?} for the 1.5 s store",
        t.elapsed()
    );
    assert_eq!(e.pending_writes(), 1, "the store is still in the buffer");
    let same = e.on_session_subscribed(&subscribed("t/slow")).await;
    assert!(same.errors.is_empty(), "{:?}", same.errors);
    let fetched: Vec<&[u8]> = same.output.offline.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(fetched, [b"a"], "the store's own topic waited and saw it");
}

/// A buffer full of messages behind a slow server blocks publishers, not
/// a connecting client: its status write takes the room kept for client
/// events, and its subscription lookup does not wait behind the messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_of_messages_does_not_hold_up_a_connect() {
    let b = Arc::new(Switchable::default());
    b.delay_ms.store(2000, Ordering::SeqCst);
    let e = Arc::new(engine(
        Arc::clone(&b),
        WritePolicy {
            mode: QueryMode::Async,
            workers: 1,
            ..policy(20)
        },
    ));
    // 30 publishers for 20 places: ten of them wait for room.
    let publishers: Vec<_> = (0..30)
        .map(|i| {
            let e = Arc::clone(&e);
            tokio::spawn(async move { e.on_message_publish(&msg(&format!("t/{i}"), "m")).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while e.pending_writes() < 20 {
        assert!(Instant::now() < deadline, "the buffer did not fill");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        publishers.iter().any(|p| !p.is_finished()),
        "a publisher waits for room"
    );
    let t = Instant::now();
    let out = e
        .on_client_connected(&backend_core::ClientConnected {
            client: ClientInfo::new("late", "node1"),
            timestamp: Timestamp::now(),
        })
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "the connect waited {:?} behind the messages",
        t.elapsed()
    );
    assert_eq!(e.pending_writes(), 21, "its status write is buffered");
    wait_drained_long(&e).await;
    for p in publishers {
        let out = p.await.expect("publisher");
        assert!(out.errors.is_empty(), "{:?}", out.errors);
    }
    let status = b.client_status("late").await.expect("status");
    assert!(status.is_some_and(|s| s.online), "the status landed");
}

/// A subscription lookup slower than `read_timeout` does not hold up the
/// CONNACK, and does not lose the subscriptions: with a place to hand them
/// (`on_client_connected_then`) they come when the server answers; without
/// one, the lookup fails with a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_lookup_hands_its_subscriptions_over_after_the_connack() {
    let b = Arc::new(Switchable::default());
    let read_timeout = Duration::from_millis(300);
    let e = engine(
        Arc::clone(&b),
        WritePolicy {
            read_timeout,
            fetch_timeout: Duration::from_secs(5),
            ..policy(100)
        },
    );
    let stored = [Subscription::new("a/#", QoS::AtLeastOnce)];
    b.store_subscriptions("slow", &stored)
        .await
        .expect("stored");
    let ev = backend_core::ClientConnected {
        client: ClientInfo::new("slow", "node1"),
        timestamp: Timestamp::now(),
    };
    b.lookup_delay_ms.store(1200, Ordering::SeqCst);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let t = Instant::now();
    let late = Arc::new(move |subs: Vec<Subscription>| {
        let _ = tx.send((subs, t.elapsed()));
    });
    let out = e.on_client_connected_then(&ev, late).await;
    let waited = t.elapsed();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(out.output.is_empty(), "nothing within the bound");
    assert!(
        waited >= read_timeout && waited < Duration::from_millis(1000),
        "the CONNACK waited {waited:?}"
    );
    let (subs, at) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the late subscriptions came")
        .expect("sent");
    assert_eq!(subs, stored);
    assert!(
        at >= Duration::from_millis(1200),
        "after the answer: {at:?}"
    );
    // Without a place for them: a timeout at the bound.
    let t = Instant::now();
    let out = e.on_client_connected(&ev).await;
    let [err] = &out.errors[..] else {
        panic!("one error: {:?}", out.errors)
    };
    assert_eq!(err.source.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("read_timeout"), "{err}");
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    // The read was given up, not cancelled: drivers are not all safe to
    // drop mid-request, so it runs to its end.
    let done = b.lookups_done.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(b.lookups_done.load(Ordering::SeqCst), done + 1);
    // A fast answer comes within the bound, as before.
    b.lookup_delay_ms.store(0, Ordering::SeqCst);
    let out = e
        .on_client_connected_then(&ev, Arc::new(|_| panic!("not late")))
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.output, stored);
}

/// Through the delivery adapter, a late answer keeps to what the client
/// still wants: a filter it unsubscribed after its CONNACK is left out,
/// and the answer to a connect the client has since replaced is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_answer_leaves_out_what_the_client_changed_since() {
    use backend_core::delivery::{Delivery, DeliveryConfig};
    let b = Arc::new(Switchable::default());
    let e = Arc::new(engine(
        Arc::clone(&b),
        WritePolicy {
            read_timeout: Duration::from_millis(200),
            fetch_timeout: Duration::from_secs(5),
            ..policy(100)
        },
    ));
    let d = Delivery::new(Arc::clone(&e), DeliveryConfig::default());
    let stored = [
        Subscription::new("a/#", QoS::AtLeastOnce),
        Subscription::new("b/#", QoS::AtLeastOnce),
    ];
    b.store_subscriptions("dev", &stored).await.expect("stored");
    let ev = backend_core::ClientConnected {
        client: ClientInfo::new("dev", "node1"),
        timestamp: Timestamp::now(),
    };
    b.lookup_delay_ms.store(800, Ordering::SeqCst);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let late = {
        let tx = tx.clone();
        move |subs: Vec<Subscription>| {
            let _ = tx.send(("first", subs));
        }
    };
    assert!(d.connected(&ev, late).await.is_empty());
    d.unsubscribed(&backend_core::SessionUnsubscribed {
        client: ev.client.clone(),
        filter: "a/#".into(),
    })
    .await;
    let (which, subs) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the late answer came")
        .expect("sent");
    assert_eq!(which, "first");
    assert_eq!(subs, stored[1..], "the unsubscribed filter is left out");
    // Connect, then connect again before the first answer: only the
    // second connect's answer is applied.
    let first = {
        let tx = tx.clone();
        move |subs: Vec<Subscription>| {
            let _ = tx.send(("stale", subs));
        }
    };
    assert!(d.connected(&ev, first).await.is_empty());
    let second = move |subs: Vec<Subscription>| {
        let _ = tx.send(("second", subs));
    };
    assert!(d.connected(&ev, second).await.is_empty());
    let (which, subs) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the late answer came")
        .expect("sent");
    assert_eq!((which, &subs[..]), ("second", &stored[..]));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(rx.try_recv().is_err(), "nothing else came");
}

async fn wait_drained_long(e: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while e.pending_writes() > 0 {
        assert!(Instant::now() < deadline, "the queue did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_mode_counts_and_logs_a_write_that_fails_for_good() {
    let b = Arc::new(Switchable::default());
    let e = engine(
        Arc::clone(&b),
        WritePolicy {
            mode: QueryMode::Async,
            ..policy(100)
        },
    );
    let out = e.on_message_publish(&msg("t/async-bad", "bad")).await;
    assert!(
        out.errors.is_empty(),
        "the hook returned before the write ran"
    );
    assert_eq!(e.flush(Duration::from_secs(10)).await, 0);
    let m = &rule_metrics(&e, "message.publish.1");
    assert_eq!((m.succeeded, m.failed), (0, 1), "{m:?}");
    assert!(stored(&b, "t/async-bad").await.is_empty());
}

/// In `async` mode a publish hook never waits for a write, its own or
/// other connections': eight publishers, each on its own topic, publish
/// five messages one after another while every store takes 300 ms; every
/// hook has returned long before the first store lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_mode_hooks_do_not_wait_for_other_connections_writes() {
    let b = Arc::new(Switchable::default());
    b.delay_ms.store(300, Ordering::SeqCst);
    let e = Arc::new(engine(
        Arc::clone(&b),
        WritePolicy {
            mode: QueryMode::Async,
            ..policy(100)
        },
    ));
    let t = Instant::now();
    let publishers: Vec<_> = (0..8)
        .map(|p| {
            let e = Arc::clone(&e);
            tokio::spawn(async move {
                for i in 0..5 {
                    let out = e
                        .on_message_publish(&msg(&format!("t/conn{p}"), format!("{i}")))
                        .await;
                    assert!(out.errors.is_empty(), "{:?}", out.errors);
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.expect("publisher");
    }
    assert!(
        t.elapsed() < Duration::from_millis(250),
        "40 hooks returned in {:?}, while a store takes 300 ms",
        t.elapsed()
    );
    wait_drained(&e).await;
    for p in 0..8 {
        assert_eq!(
            stored(&b, &format!("t/conn{p}")).await.len(),
            5,
            "publisher {p}'s messages landed"
        );
    }
}

/// A metric's value in `snap` for `name` with `labels` among its labels:
/// a counter's count, a gauge's value, a histogram's number of samples.
fn metric(snap: &[(CompositeKey, DebugValue)], name: &str, labels: &[(&str, &str)]) -> f64 {
    snap.iter()
        .filter(|(k, _)| k.key().name() == name)
        .filter(|(k, _)| {
            labels
                .iter()
                .all(|(lk, lv)| k.key().labels().any(|l| l.key() == *lk && l.value() == *lv))
        })
        .map(|(_, v)| match v {
            DebugValue::Counter(n) => *n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        })
        .sum()
}

/// The write path's and reads' numbers reach a `metrics` recorder: writes
/// buffered and flushed, the buffer depth rising during an outage and
/// back to 0 after it, the server found away, reads by outcome, the
/// rules' counters; labelled by pool and rule, never by topic or client.
#[tokio::test]
async fn metrics_follow_the_write_path_and_the_reads() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let b = Arc::new(Switchable::default());
    // Handles are taken when the engine is built.
    let e = metrics::with_local_recorder(&recorder, || engine(Arc::clone(&b), policy(100)));
    let snap = || -> Vec<(CompositeKey, DebugValue)> {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| (k, v))
            .collect()
    };
    let pool = [("pool", "pool1")];
    for i in 0..3 {
        let out = e.on_message_publish(&msg("t/m", format!("{i}"))).await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
    }
    wait_drained(&e).await;
    let s = snap();
    assert_eq!(metric(&s, observe::names::WRITES_BUFFERED, &pool), 3.0);
    assert_eq!(metric(&s, observe::names::WRITES_FLUSHED, &pool), 3.0);
    assert_eq!(metric(&s, observe::names::BUFFER_DEPTH, &pool), 0.0);
    assert!(metric(&s, observe::names::FLUSH_BATCH_SIZE, &pool) >= 1.0);
    let rule = [("rule", "backend.redis.hook.message.publish.1")];
    assert_eq!(metric(&s, observe::names::RULE_MATCHED, &rule), 3.0);
    assert_eq!(metric(&s, observe::names::RULE_SUCCEEDED, &rule), 3.0);

    b.down.store(true, Ordering::SeqCst);
    for i in 0..2 {
        let out = e.on_message_publish(&msg("t/m", format!("away {i}"))).await;
        assert!(out.errors.is_empty(), "queued: {:?}", out.errors);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = snap();
    assert_eq!(
        metric(&s, observe::names::BUFFER_DEPTH, &pool),
        2.0,
        "{s:?}"
    );
    assert_eq!(metric(&s, observe::names::SERVER_AWAY, &pool), 1.0);
    assert!(metric(&s, observe::names::FLUSH_RETRIES, &pool) >= 1.0);
    assert!(metric(&s, observe::names::RULE_QUEUED, &rule) >= 1.0);
    let sub = backend_core::SessionSubscribed {
        client: ClientInfo::new("s", "node1"),
        filter: "t/m".into(),
        qos: QoS::AtLeastOnce,
    };
    let got = e.on_session_subscribed(&sub).await;
    assert_eq!(got.errors.len(), 1, "the server is away");
    let away = [("operation", "fetch_messages"), ("outcome", "away")];
    assert_eq!(metric(&snap(), observe::names::READS, &away), 1.0);

    b.down.store(false, Ordering::SeqCst);
    wait_drained(&e).await;
    let got = e.on_session_subscribed(&sub).await;
    assert_eq!(got.output.offline.len(), 5, "{:?}", got.errors);
    let s = snap();
    assert_eq!(metric(&s, observe::names::BUFFER_DEPTH, &pool), 0.0);
    assert_eq!(metric(&s, observe::names::SERVER_AWAY, &pool), 0.0);
    // A snapshot takes the counts since the one before.
    assert_eq!(metric(&s, observe::names::WRITES_FLUSHED, &pool), 2.0);
    let ok = [("operation", "fetch_messages"), ("outcome", "ok")];
    assert_eq!(metric(&s, observe::names::READS, &ok), 1.0);
    assert_eq!(metric(&s, observe::names::MESSAGES_FETCHED, &pool), 5.0);
    let bounded = ["pool", "backend", "rule", "operation", "outcome"];
    for (k, _) in &s {
        for l in k.key().labels() {
            assert!(
                bounded.contains(&l.key()),
                "{} has label {}",
                k.key().name(),
                l.key()
            );
        }
    }
}
