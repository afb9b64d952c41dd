//! The engine's write-behind retry: writes that fail while the server is
//! away are kept, in order, and land when it is back.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_core::backend::{ClientStatus, FetchRequest};
use backend_core::config::{ActionJson, ConfigSpec, RuleJson, RuleSpec};
use backend_core::{
    Ack, Backend, BackendError, BackendKind, BackendResult, ClientInfo, Config, Engine, ErrorKind,
    Hook, MemoryBackend, Message, OfflineMode, Pools, QoS, RetryPolicy, Row, Statement,
    Subscription, Timestamp, WriteOptions,
};

/// A `MemoryBackend` whose writes fail while `down` is set, with `kind`.
#[derive(Default)]
struct Switchable {
    inner: MemoryBackend,
    down: AtomicBool,
    kind: AtomicU8,
}

impl Switchable {
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
    fn name(&self) -> &'static str {
        "switchable"
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
        self.inner.lookup_subscriptions(id).await
    }
    async fn store_subscriptions(&self, id: &str, s: &[Subscription]) -> BackendResult<()> {
        self.inner.store_subscriptions(id, s).await
    }
    async fn delete_subscriptions(&self, id: &str, f: &[String]) -> BackendResult<()> {
        self.inner.delete_subscriptions(id, f).await
    }
    async fn store_messages(&self, m: &[Message], o: WriteOptions) -> BackendResult<()> {
        self.check()?;
        self.inner.store_messages(m, o).await
    }
    async fn fetch_messages(&self, r: &FetchRequest) -> BackendResult<Vec<Message>> {
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

fn engine(backend: Arc<Switchable>, policy: RetryPolicy) -> Engine {
    let mut spec = ConfigSpec::new(BackendKind::Redis);
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
    let config = Config::from_spec(spec).expect("valid config");
    let pools: Pools = [("pool1".to_owned(), backend as Arc<dyn Backend>)].into();
    Engine::with_retry(&config, &pools, policy).expect("engine")
}

fn policy(capacity: usize) -> RetryPolicy {
    RetryPolicy {
        capacity,
        first_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    }
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
    let m = &e.metrics()[0];
    assert_eq!(
        (m.queued, m.retried, m.dropped, m.failed),
        (6, 6, 0, 0),
        "{m:?}"
    );
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
    assert_eq!(e.metrics()[0].failed, 1);
}

#[tokio::test]
async fn a_full_queue_refuses_and_counts_the_write() {
    let b = Arc::new(Switchable::default());
    let e = engine(Arc::clone(&b), policy(2));
    b.down.store(true, Ordering::SeqCst);
    let mut errors = 0;
    for i in 0..3 {
        let msg = Message::new("p", "t/3", QoS::AtLeastOnce, format!("m{i}"));
        errors += e.on_message_publish(&msg).await.errors.len();
    }
    assert_eq!(errors, 1, "the third write finds the queue full");
    assert_eq!(e.metrics()[0].dropped, 1);
    b.down.store(false, Ordering::SeqCst);
    wait_drained(&e).await;
    assert_eq!(stored(&b, "t/3").await, ["m0", "m1"]);
}

#[tokio::test]
async fn retrying_off_reports_every_failure() {
    let b = Arc::new(Switchable::default());
    let e = engine(Arc::clone(&b), RetryPolicy::off());
    b.down.store(true, Ordering::SeqCst);
    let out = e
        .on_message_publish(&Message::new("p", "t/4", QoS::AtLeastOnce, "x").retained(true))
        .await;
    assert_eq!(out.errors.len(), 2, "store and retain both fail");
    assert!(out.errors.iter().all(|e| e.is_retryable()));
    assert_eq!(e.pending_writes(), 0);
}
