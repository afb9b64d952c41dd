//! Starting without the database: a pool that connects in the background.
//!
//! A broker and its database often start together (after a power cut, a
//! deploy). [`start_pool`] makes the first connection attempt at once; if
//! the server cannot be reached (a retryable error) the pool starts
//! anyway, disconnected, and keeps connecting in the background with a
//! growing delay. Until it is connected every operation fails with a
//! retryable [`ErrorKind::Connection`] error, so the engine queues writes
//! (see [`crate::write`]) and reports the pool down
//! ([`crate::Engine::health`]). What retrying cannot mend, such as a wrong
//! password or a missing table, fails at start with the backend's own error;
//! with [`StartMode::Required`] any failure does.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{
    Ack, Backend, BackendError, BackendResult, ClientStatus, ErrorKind, FetchRequest, WriteOptions,
};
use crate::config::OfflineMode;
use crate::hook::ClientInfo;
use crate::message::{Message, Subscription, Timestamp};
use crate::template::Statement;
use crate::value::Row;

/// How a pool's first connection failure is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartMode {
    /// Start disconnected when the server cannot be reached, and connect in
    /// the background (the default).
    #[default]
    Background,
    /// Fail at start when the pool cannot connect.
    Required,
}

/// A boxed connect future.
pub type ConnectFuture =
    Pin<Box<dyn Future<Output = Result<Arc<dyn Backend>, BackendError>> + Send>>;

/// Connects one pool: each call a new attempt.
pub type Connect = Arc<dyn Fn() -> ConnectFuture + Send + Sync>;

/// The first and the longest wait between background attempts.
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// A pool that may still be connecting: every [`Backend`] call goes to
/// the connected backend, or fails with a retryable connection error.
pub struct PoolBackend {
    pool: String,
    name: &'static str,
    inner: RwLock<Option<Arc<dyn Backend>>>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for PoolBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBackend")
            .field("pool", &self.pool)
            .field("backend", &self.name)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl PoolBackend {
    /// Whether the pool has connected.
    pub fn is_connected(&self) -> bool {
        self.inner
            .read()
            .map(|g| g.is_some())
            .unwrap_or_else(|p| p.into_inner().is_some())
    }

    /// Why the last connection attempt failed, while not connected.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn current(&self) -> BackendResult<Arc<dyn Backend>> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        match &*guard {
            Some(b) => Ok(Arc::clone(b)),
            None => Err(BackendError::new(
                ErrorKind::Connection,
                format!(
                    "pool `{}` is not connected yet ({})",
                    self.pool,
                    self.last_error().unwrap_or_else(|| "connecting".into())
                ),
            )),
        }
    }

    fn set(&self, backend: Arc<dyn Backend>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Some(backend);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Starts a pool: connects now, or (in [`StartMode::Background`], when the
/// failure is retryable) starts disconnected and connects in the
/// background on the current tokio runtime.
pub async fn start_pool(
    pool: &str,
    name: &'static str,
    mode: StartMode,
    connect: Connect,
) -> Result<Arc<PoolBackend>, BackendError> {
    let first = connect().await;
    let backend = Arc::new(PoolBackend {
        pool: pool.to_owned(),
        name,
        inner: RwLock::new(None),
        last_error: Mutex::new(None),
    });
    match first {
        Ok(b) => {
            backend.set(b);
            Ok(backend)
        }
        Err(e) if mode == StartMode::Background && e.is_retryable() => {
            tracing::warn!(pool, backend = name, error = %e, "cannot reach the database; starting without it and connecting in the background");
            *backend.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            let weak = Arc::downgrade(&backend);
            tokio::spawn(async move {
                let mut delay = FIRST_DELAY;
                loop {
                    tokio::time::sleep(delay).await;
                    let Some(pool) = weak.upgrade() else { return };
                    match connect().await {
                        Ok(b) => {
                            tracing::info!(pool = %pool.pool, backend = pool.name, "connected");
                            pool.set(b);
                            return;
                        }
                        Err(e) => {
                            if e.is_retryable() {
                                tracing::debug!(pool = %pool.pool, error = %e, "still cannot connect");
                            } else {
                                tracing::error!(pool = %pool.pool, error = %e, "cannot connect, and retrying may not help; still trying");
                            }
                            *pool.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(e.to_string());
                            delay = (delay * 2).min(MAX_DELAY);
                        }
                    }
                }
            });
            Ok(backend)
        }
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Backend for PoolBackend {
    /// The pool's name, with the connected backend's capabilities (none
    /// while it is not connected yet).
    fn info(&self) -> crate::backend::BackendInfo {
        let capabilities = self
            .current()
            .map(|b| b.capabilities())
            .unwrap_or(crate::backend::Capabilities::NONE);
        crate::backend::BackendInfo::new(self.name, capabilities)
    }

    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.current()?.client_online(client, at).await
    }

    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.current()?.client_offline(client, at).await
    }

    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        self.current()?.client_status(client_id).await
    }

    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>> {
        self.current()?.lookup_subscriptions(client_id).await
    }

    async fn store_subscriptions(
        &self,
        client_id: &str,
        subscriptions: &[Subscription],
    ) -> BackendResult<()> {
        self.current()?
            .store_subscriptions(client_id, subscriptions)
            .await
    }

    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        self.current()?
            .delete_subscriptions(client_id, filters)
            .await
    }

    async fn store_messages(
        &self,
        messages: &[Message],
        options: WriteOptions,
    ) -> BackendResult<()> {
        self.current()?.store_messages(messages, options).await
    }

    async fn fetch_messages(&self, request: &FetchRequest) -> BackendResult<Vec<Message>> {
        self.current()?.fetch_messages(request).await
    }

    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()> {
        self.current()?.ack_messages(mode, acks).await
    }

    async fn store_retained(
        &self,
        messages: &[Message],
        options: WriteOptions,
    ) -> BackendResult<()> {
        self.current()?.store_retained(messages, options).await
    }

    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()> {
        self.current()?.delete_retained(topics).await
    }

    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>> {
        self.current()?.lookup_retained(filter).await
    }

    async fn execute(&self, statement: &Statement) -> BackendResult<Vec<Row>> {
        self.current()?.execute(statement).await
    }

    async fn ping(&self) -> BackendResult<()> {
        self.current()?.ping().await
    }

    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        self.current()?.remove_messages_before(before).await
    }
}
