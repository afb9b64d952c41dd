//! Bounded storage: the engine's sweeper removes offline messages that no
//! fetch would return any more.
//!
//! A fetch never returns a message older than the configuration's
//! `time_range`, so with a finite `time_range` such a message only takes
//! space: in pubsub mode nothing else ever removes it (an ack moves a read
//! position, it deletes nothing), and in queue mode a message nobody
//! fetches stays too. [`crate::Engine::sweep`] asks every pool that stores
//! messages (a rule with `on_message_publish`) to remove the messages that
//! arrived before `now - time_range`, through
//! [`crate::Backend::remove_messages_before`];
//! [`crate::Engine::spawn_sweeper`] runs it periodically. With
//! `time_range = infinity` nothing is swept (Redis still expires messages
//! after `msg.expired_after`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{Backend, ErrorKind, FailureRecord};
use crate::message::Timestamp;
use crate::observe::{names, Tally};

/// What the sweeper did for one pool so far.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SweepMetrics {
    /// The pool.
    pub pool: String,
    /// Sweeps run.
    pub runs: u64,
    /// Messages removed, in all.
    pub removed: u64,
    /// Sweeps that failed.
    pub failures: u64,
    /// The last failure, if the last sweep failed.
    pub last_error: Option<FailureRecord>,
    /// The backend does not sweep ([`ErrorKind::Unsupported`]).
    pub unsupported: bool,
}

/// One pool's sweeping state.
pub(crate) struct PoolSweeper {
    pub(crate) pool: String,
    pub(crate) backend: Arc<dyn Backend>,
    runs: AtomicU64,
    /// `mqtt_storage_swept_messages_total`.
    removed: Tally,
    /// `mqtt_storage_sweeps_total`, by outcome.
    succeeded: metrics::Counter,
    failures: Tally,
    last_error: Mutex<Option<FailureRecord>>,
    unsupported: AtomicBool,
}

impl PoolSweeper {
    pub(crate) fn new(pool: String, backend: Arc<dyn Backend>) -> Self {
        let outcome = |o: &'static str| [("pool", pool.clone()), ("outcome", o.to_owned())];
        PoolSweeper {
            removed: Tally::new(metrics::counter!(names::SWEPT_MESSAGES, "pool" => pool.clone())),
            succeeded: metrics::counter!(names::SWEEPS, &outcome("ok")),
            failures: Tally::new(metrics::counter!(names::SWEEPS, &outcome("error"))),
            pool,
            backend,
            runs: AtomicU64::new(0),
            last_error: Mutex::new(None),
            unsupported: AtomicBool::new(false),
        }
    }

    /// Removes what arrived before `now - retention`; returns how many.
    pub(crate) async fn sweep(&self, retention: Duration) -> Result<u64, FailureRecord> {
        if self.unsupported.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let before = Timestamp::now().saturating_sub(retention);
        self.runs.fetch_add(1, Ordering::Relaxed);
        let result = self.backend.remove_messages_before(before).await;
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(n) => {
                self.removed.add(n);
                self.succeeded.increment(1);
                *last = None;
                if n > 0 {
                    tracing::debug!(pool = %self.pool, removed = n, "swept messages past time_range");
                }
                Ok(n)
            }
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                self.unsupported.store(true, Ordering::Relaxed);
                tracing::info!(pool = %self.pool, backend = self.backend.name(), "this backend does not sweep old messages");
                Ok(0)
            }
            Err(e) => {
                self.failures.add(1);
                tracing::warn!(pool = %self.pool, error = %e, "sweeping messages past time_range failed; next sweep retries");
                let record = FailureRecord::from(&e);
                *last = Some(record.clone());
                Err(record)
            }
        }
    }

    pub(crate) fn metrics(&self) -> SweepMetrics {
        SweepMetrics {
            pool: self.pool.clone(),
            runs: self.runs.load(Ordering::Relaxed),
            removed: self.removed.get(),
            failures: self.failures.get(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            unsupported: self.unsupported.load(Ordering::Relaxed),
        }
    }
}

/// The sweep interval for a retention: a tenth of it, between 1 s and
/// 60 s, so a table holds at most about 1.1 × `time_range` of messages.
pub fn default_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}
