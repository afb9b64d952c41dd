//! Pool health: up or down, the last error, the writes waiting.
//!
//! [`crate::Engine::check_health`] pings every pool (with a timeout) and
//! records the answer; [`crate::Engine::spawn_health_checks`] does it
//! periodically ([`DEFAULT_INTERVAL`], EMQX 5's 15 s). Each change of state
//! is logged once: `pool up` at info, `pool down` at warn with the error.

use std::sync::Mutex;
use std::time::Duration;

use crate::backend::FailureRecord;
use crate::message::Timestamp;
use crate::observe::names;

/// How often the health of every pool is checked by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// How long a ping may take before the pool counts as down.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a pool answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PoolState {
    /// Not checked yet.
    Unknown,
    /// The last check succeeded.
    Up,
    /// The last check failed.
    Down,
}

/// The health of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolHealth {
    /// The pool.
    pub pool: String,
    /// Up, down, or not checked yet.
    pub state: PoolState,
    /// Why the last check failed, while down.
    pub last_error: Option<FailureRecord>,
    /// Since when it is in this state (`None` before the first check).
    pub since: Option<Timestamp>,
    /// Writes in the pool's buffer, waiting or in flight.
    pub queued: usize,
    /// Why the server counts as away now, if it does: a write or a read
    /// found it unreachable or silent since (fresher than `state`, which
    /// the periodic check sets). Reads fail at once meanwhile.
    pub away: Option<String>,
}

impl PoolHealth {
    /// Whether the pool serves: its last check succeeded and nothing
    /// since found its server away.
    pub fn is_up(&self) -> bool {
        self.state == PoolState::Up && self.away.is_none()
    }
}

/// One pool's recorded state.
pub(crate) struct HealthState {
    pub(crate) pool: String,
    inner: Mutex<(PoolState, Option<FailureRecord>, Option<Timestamp>)>,
    /// `mqtt_storage_pool_up`.
    up: metrics::Gauge,
}

impl HealthState {
    pub(crate) fn new(pool: String) -> Self {
        HealthState {
            up: metrics::gauge!(names::POOL_UP, "pool" => pool.clone()),
            pool,
            inner: Mutex::new((PoolState::Unknown, None, None)),
        }
    }

    /// Records a check's result; logs a change of state.
    pub(crate) fn record(&self, result: Result<(), FailureRecord>) {
        self.up.set(if result.is_ok() { 1.0 } else { 0.0 });
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (state, error) = match result {
            Ok(()) => (PoolState::Up, None),
            Err(e) => (PoolState::Down, Some(e)),
        };
        if g.0 != state {
            match &error {
                None => tracing::info!(pool = %self.pool, "pool up"),
                Some(e) => tracing::warn!(pool = %self.pool, error = %e, "pool down"),
            }
            g.2 = Some(Timestamp::now());
        }
        g.0 = state;
        g.1 = error;
    }

    pub(crate) fn snapshot(&self, queued: usize, away: Option<String>) -> PoolHealth {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        PoolHealth {
            pool: self.pool.clone(),
            state: g.0,
            last_error: g.1.clone(),
            since: g.2,
            queued,
            away,
        }
    }
}
