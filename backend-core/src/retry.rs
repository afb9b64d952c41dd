//! Write-behind retry: a write that fails because its server is away for a
//! moment (a connection error, a timeout, a conflict) is queued and retried
//! in order, instead of being lost.
//!
//! There is one queue per pool. While it holds anything, later writes of the
//! pool queue behind it, so a publisher's messages are still stored in the
//! order it sent them. A write that fails for a reason retrying cannot mend
//! (a bad statement, bad data) is reported at once and never queued; a
//! queued write that later fails that way is dropped and logged. When the
//! queue is full, a new write is refused with its error (and counted as
//! dropped) rather than growing memory without bound.
//!
//! Reads (fetches, lookups) are never queued: they report their error.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::backend::{Ack, Backend, BackendError, BackendResult, ErrorKind, WriteOptions};
use crate::config::OfflineMode;
use crate::hook::ClientInfo;
use crate::message::{Message, Timestamp};
use crate::template::Statement;

/// How writes that failed retryably are kept and retried.
///
/// ```
/// use std::time::Duration;
/// let p = backend_core::RetryPolicy { capacity: 50_000, ..Default::default() };
/// assert_eq!(p.first_backoff, Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Writes one pool's queue may hold; 0 turns retrying off.
    pub capacity: usize,
    /// The wait before the first retry; it doubles after each failure.
    pub first_backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            capacity: 10_000,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retrying: every error is reported at once.
    pub fn off() -> Self {
        RetryPolicy {
            capacity: 0,
            ..Default::default()
        }
    }
}

/// A write the engine can replay.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    Store(Vec<Message>, WriteOptions),
    StoreRetained(Vec<Message>, WriteOptions),
    DeleteRetained(Vec<String>),
    Ack(OfflineMode, Vec<Ack>),
    Online(ClientInfo, Timestamp),
    Offline(ClientInfo, Timestamp),
    Execute(Statement),
}

impl WriteOp {
    /// The backend operation's name, for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            WriteOp::Store(..) => "store_messages",
            WriteOp::StoreRetained(..) => "store_retained",
            WriteOp::DeleteRetained(..) => "delete_retained",
            WriteOp::Ack(..) => "ack_messages",
            WriteOp::Online(..) => "client_online",
            WriteOp::Offline(..) => "client_offline",
            WriteOp::Execute(..) => "execute",
        }
    }

    async fn run(&self, b: &dyn Backend) -> BackendResult<()> {
        match self {
            WriteOp::Store(m, o) => b.store_messages(m, *o).await,
            WriteOp::StoreRetained(m, o) => b.store_retained(m, *o).await,
            WriteOp::DeleteRetained(t) => b.delete_retained(t).await,
            WriteOp::Ack(mode, acks) => b.ack_messages(*mode, acks).await,
            WriteOp::Online(c, at) => b.client_online(c, *at).await,
            WriteOp::Offline(c, at) => b.client_offline(c, *at).await,
            WriteOp::Execute(s) => b.execute(s).await.map(|_| ()),
        }
    }
}

/// Counters a queued write reports to (its rule's).
#[derive(Debug, Default)]
pub(crate) struct RetryCounters {
    pub(crate) queued: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// What became of a write.
pub(crate) enum Submitted {
    /// It ran.
    Done,
    /// It waits in the queue.
    Queued,
    /// It failed and was not queued.
    Failed(BackendError),
}

struct Queued {
    op: WriteOp,
    counters: Arc<RetryCounters>,
    rule: String,
}

#[derive(Default)]
struct State {
    ops: VecDeque<Queued>,
    worker: bool,
}

/// One pool's queue.
pub(crate) struct RetryQueue {
    pool: String,
    backend: Arc<dyn Backend>,
    policy: RetryPolicy,
    state: Mutex<State>,
}

impl RetryQueue {
    pub(crate) fn new(pool: String, backend: Arc<dyn Backend>, policy: RetryPolicy) -> Arc<Self> {
        Arc::new(RetryQueue {
            pool,
            backend,
            policy,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the queue consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes waiting.
    pub(crate) fn len(&self) -> usize {
        self.lock().ops.len()
    }

    /// Runs `op` now unless writes wait before it; queues it if it (or
    /// they) cannot run now and retrying can help.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        op: WriteOp,
        counters: &Arc<RetryCounters>,
        rule: &str,
    ) -> Submitted {
        if self.policy.capacity == 0 {
            return match op.run(&*self.backend).await {
                Ok(()) => Submitted::Done,
                Err(e) => Submitted::Failed(e),
            };
        }
        if self.lock().ops.is_empty() {
            match op.run(&*self.backend).await {
                Ok(()) => return Submitted::Done,
                Err(e) if !e.is_retryable() => return Submitted::Failed(e),
                Err(e) => {
                    tracing::warn!(pool = %self.pool, %rule, operation = op.name(), error = %e, "write failed; queued for retry");
                }
            }
        }
        self.enqueue(op, counters, rule)
    }

    fn enqueue(
        self: &Arc<Self>,
        op: WriteOp,
        counters: &Arc<RetryCounters>,
        rule: &str,
    ) -> Submitted {
        let name = op.name();
        let start_worker = {
            let mut s = self.lock();
            if s.ops.len() >= self.policy.capacity {
                counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Submitted::Failed(BackendError::new(
                    ErrorKind::Connection,
                    format!(
                        "{name} not stored: the retry queue of pool {} is full ({} writes wait for the server)",
                        self.pool, self.policy.capacity
                    ),
                ));
            }
            s.ops.push_back(Queued {
                op,
                counters: Arc::clone(counters),
                rule: rule.to_owned(),
            });
            counters.queued.fetch_add(1, Ordering::Relaxed);
            !std::mem::replace(&mut s.worker, true)
        };
        if start_worker {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(Arc::clone(self).drain());
                }
                Err(_) => {
                    // No runtime to retry on: give the write back as failed.
                    let mut s = self.lock();
                    s.worker = false;
                    if let Some(q) = s.ops.pop_back() {
                        q.counters.queued.fetch_sub(1, Ordering::Relaxed);
                    }
                    return Submitted::Failed(BackendError::new(
                        ErrorKind::Unsupported,
                        format!("{name} failed and cannot be retried outside a tokio runtime"),
                    ));
                }
            }
        }
        Submitted::Queued
    }

    /// The worker: replays the queue front to back, waiting out the outage.
    async fn drain(self: Arc<Self>) {
        let mut backoff = self.policy.first_backoff;
        loop {
            let front = {
                let mut s = self.lock();
                match s.ops.front() {
                    Some(q) => (q.op.clone(), Arc::clone(&q.counters), q.rule.clone()),
                    None => {
                        s.worker = false;
                        return;
                    }
                }
            };
            let (op, counters, rule) = front;
            match op.run(&*self.backend).await {
                Ok(()) => {
                    self.lock().ops.pop_front();
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                    backoff = self.policy.first_backoff;
                }
                Err(e) if e.is_retryable() => {
                    tracing::debug!(pool = %self.pool, %rule, operation = op.name(), error = %e, wait = ?backoff, "retry failed; waiting");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                }
                Err(e) => {
                    self.lock().ops.pop_front();
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(pool = %self.pool, %rule, operation = op.name(), error = %e, "queued write dropped: retrying cannot help");
                }
            }
        }
    }
}
