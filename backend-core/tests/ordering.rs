//! A disconnect detached from the broker's hook still lands before the
//! same client's next connect: a quick reconnect ends online.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backend_core::backend::{
    Ack, BackendInfo, BackendResult, Capabilities, ClientStatus, FetchRequest, WriteOptions,
};
use backend_core::{
    Backend, ClientConnected, ClientDisconnected, ClientInfo, Config, Engine, MemoryBackend,
    Message, OfflineMode, Row, Statement, Subscription, Timestamp,
};

/// The in-memory backend with a slow `client_offline`, as a database
/// answering in milliseconds would be: the detached write is still under
/// way when the client connects again.
#[derive(Clone)]
struct SlowOffline(MemoryBackend);

#[async_trait]
impl Backend for SlowOffline {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("slow-offline", Capabilities::NONE)
    }

    async fn ping(&self) -> BackendResult<()> {
        Ok(())
    }

    async fn client_online(&self, c: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.0.client_online(c, at).await
    }
    async fn client_offline(&self, c: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.0.client_offline(c, at).await
    }
    async fn client_status(&self, id: &str) -> BackendResult<Option<ClientStatus>> {
        self.0.client_status(id).await
    }
    async fn lookup_subscriptions(&self, id: &str) -> BackendResult<Vec<Subscription>> {
        self.0.lookup_subscriptions(id).await
    }
    async fn store_subscriptions(&self, id: &str, s: &[Subscription]) -> BackendResult<()> {
        self.0.store_subscriptions(id, s).await
    }
    async fn delete_subscriptions(&self, id: &str, f: &[String]) -> BackendResult<()> {
        self.0.delete_subscriptions(id, f).await
    }
    async fn store_messages(&self, m: &[Message], o: WriteOptions) -> BackendResult<()> {
        self.0.store_messages(m, o).await
    }
    async fn fetch_messages(&self, r: &FetchRequest) -> BackendResult<Vec<Message>> {
        self.0.fetch_messages(r).await
    }
    async fn ack_messages(&self, mode: OfflineMode, a: &[Ack]) -> BackendResult<()> {
        self.0.ack_messages(mode, a).await
    }
    async fn store_retained(&self, m: &[Message], o: WriteOptions) -> BackendResult<()> {
        self.0.store_retained(m, o).await
    }
    async fn delete_retained(&self, t: &[String]) -> BackendResult<()> {
        self.0.delete_retained(t).await
    }
    async fn lookup_retained(&self, f: &str) -> BackendResult<Vec<Message>> {
        self.0.lookup_retained(f).await
    }
    async fn execute(&self, s: &Statement) -> BackendResult<Vec<Row>> {
        self.0.execute(s).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_disconnect_never_lands_after_the_next_connect() {
    let config = Config::parse(
        "backend.redis.pool1.server = 127.0.0.1:6379\n\
         backend.redis.hook.client.connected.1 = {\"action\": {\"function\": \"on_client_connected\"}, \"pool\": \"pool1\"}\n\
         backend.redis.hook.client.disconnected.1 = {\"action\": {\"function\": \"on_client_disconnected\"}, \"pool\": \"pool1\"}\n",
    )
    .expect("config");
    let store = SlowOffline(MemoryBackend::new());
    let engine = Arc::new(Engine::with_backend(&config, Arc::new(store.clone())).expect("engine"));
    let client = ClientInfo::new("quick", "node1");
    for round in 0..20 {
        let on = ClientConnected {
            client: client.clone(),
            timestamp: Timestamp::now(),
        };
        let off = ClientDisconnected {
            client: client.clone(),
            reason: "normal".into(),
            timestamp: Timestamp::now(),
        };
        let out = engine.on_client_connected(&on).await;
        assert!(out.errors.is_empty());
        engine.detach_client_disconnected(off).await;
        let out = engine.on_client_connected(&on).await;
        assert!(out.errors.is_empty());
        // Long enough for a detached write still under way to land.
        tokio::time::sleep(Duration::from_millis(15)).await;
        let status = store
            .client_status("quick")
            .await
            .expect("status")
            .expect("a row");
        assert!(
            status.online,
            "round {round}: recorded offline after the reconnect"
        );
        engine
            .detach_client_disconnected(ClientDisconnected {
                client: client.clone(),
                reason: "normal".into(),
                timestamp: Timestamp::now(),
            })
            .await;
    }
    // The last detached disconnect lands, and nothing is left in flight.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = store
        .client_status("quick")
        .await
        .expect("status")
        .expect("a row");
    assert!(!status.online);
    assert_eq!(engine.clients_in_flight(), 0);
}
