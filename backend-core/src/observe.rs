//! The numbers backend-core records through the [`metrics`] facade, the
//! convention for Rust libraries (as `tracing` is for logs): the broker
//! installs the exporter it wants (Prometheus, StatsD, ...) and every
//! number below reaches it. Without a recorder installed they cost next to
//! nothing.
//!
//! Install the recorder **before** building the [`crate::Engine`] (and the
//! [`crate::delivery::Delivery`]): each pool and rule takes its handles
//! once, when it is built, so that counting costs an atomic add on the hot
//! path, not a registry lookup.
//!
//! Labels are bounded: `pool` and `rule` come from the configuration,
//! `backend` is the backend's name (`redis`, `pgsql`, ...), `operation` and
//! `outcome` are fixed words. No metric carries a client id, a topic or a
//! payload.
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `mqtt_storage_rule_matched_total` | counter | `rule`, `pool`, `backend` | events the rule's topic matched |
//! | `mqtt_storage_rule_succeeded_total` | counter | `rule`, `pool`, `backend` | runs that succeeded (writes: landed) |
//! | `mqtt_storage_rule_failed_total` | counter | `rule`, `pool`, `backend` | runs that failed |
//! | `mqtt_storage_rule_queued_total` | counter | `rule`, `pool`, `backend` | writes kept in the buffer for retry |
//! | `mqtt_storage_rule_retried_total` | counter | `rule`, `pool`, `backend` | kept writes that landed later |
//! | `mqtt_storage_rule_dropped_total` | counter | `rule`, `pool`, `backend` | writes given up (buffer full, or a retry failed for good) |
//! | `mqtt_storage_writes_buffered_total` | counter | `pool`, `backend` | writes put in the pool's buffer |
//! | `mqtt_storage_writes_flushed_total` | counter | `pool`, `backend` | writes that landed |
//! | `mqtt_storage_writes_dropped_total` | counter | `pool`, `backend` | writes given up because the buffer was full |
//! | `mqtt_storage_flushes_total` | counter | `pool`, `backend` | flushes (one batch each) |
//! | `mqtt_storage_flush_retries_total` | counter | `pool`, `backend` | flushes that failed retryably and were kept |
//! | `mqtt_storage_backend_calls_total` | counter | `pool`, `backend` | backend calls the flushes made |
//! | `mqtt_storage_flush_batch_size` | histogram | `pool`, `backend` | writes per flush |
//! | `mqtt_storage_flush_duration_seconds` | histogram | `pool`, `backend` | how long a flush took |
//! | `mqtt_storage_buffer_depth` | gauge | `pool`, `backend` | writes waiting or in flight |
//! | `mqtt_storage_server_away` | gauge | `pool`, `backend` | 1 while the server is found away (reads fail at once) |
//! | `mqtt_storage_reads_total` | counter | `pool`, `backend`, `operation`, `outcome` | reads: `ok`, `error`, `timeout` (`read_timeout`, `fetch_timeout`), `away` (not tried) |
//! | `mqtt_storage_read_duration_seconds` | histogram | `pool`, `backend`, `operation` | how long a read took (tried ones) |
//! | `mqtt_storage_messages_fetched_total` | counter | `pool`, `backend` | stored messages read by offline-message fetches |
//! | `mqtt_storage_pool_up` | gauge | `pool` | 1 when the last health check succeeded, 0 when it failed |
//! | `mqtt_storage_sweeps_total` | counter | `pool`, `outcome` | sweeps of messages past `time_range`: `ok`, `error` |
//! | `mqtt_storage_swept_messages_total` | counter | `pool` | messages the sweeps removed |
//! | `mqtt_storage_delivery_handed_total` | counter | | stored messages handed to sessions |
//! | `mqtt_storage_delivery_handed_again_total` | counter | | handed again after a session dropped them |
//! | `mqtt_storage_delivery_expired_total` | counter | | stored messages whose MQTT 5 expiry passed before delivery |
//!
//! `operation` is `fetch_messages`, `lookup_retained` or
//! `lookup_subscriptions`.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// The metric names, for dashboards and tests.
pub mod names {
    /// Events a rule's topic matched.
    pub const RULE_MATCHED: &str = "mqtt_storage_rule_matched_total";
    /// Rule runs that succeeded.
    pub const RULE_SUCCEEDED: &str = "mqtt_storage_rule_succeeded_total";
    /// Rule runs that failed.
    pub const RULE_FAILED: &str = "mqtt_storage_rule_failed_total";
    /// A rule's writes kept for retry.
    pub const RULE_QUEUED: &str = "mqtt_storage_rule_queued_total";
    /// A rule's kept writes that landed later.
    pub const RULE_RETRIED: &str = "mqtt_storage_rule_retried_total";
    /// A rule's writes given up.
    pub const RULE_DROPPED: &str = "mqtt_storage_rule_dropped_total";
    /// Writes put in a pool's buffer.
    pub const WRITES_BUFFERED: &str = "mqtt_storage_writes_buffered_total";
    /// Writes that landed.
    pub const WRITES_FLUSHED: &str = "mqtt_storage_writes_flushed_total";
    /// Writes given up because the buffer was full.
    pub const WRITES_DROPPED: &str = "mqtt_storage_writes_dropped_total";
    /// Flushes.
    pub const FLUSHES: &str = "mqtt_storage_flushes_total";
    /// Flushes kept for retry.
    pub const FLUSH_RETRIES: &str = "mqtt_storage_flush_retries_total";
    /// Backend calls of the flushes.
    pub const BACKEND_CALLS: &str = "mqtt_storage_backend_calls_total";
    /// Writes per flush.
    pub const FLUSH_BATCH_SIZE: &str = "mqtt_storage_flush_batch_size";
    /// Flush time.
    pub const FLUSH_DURATION: &str = "mqtt_storage_flush_duration_seconds";
    /// Writes waiting or in flight.
    pub const BUFFER_DEPTH: &str = "mqtt_storage_buffer_depth";
    /// 1 while the pool's server is found away.
    pub const SERVER_AWAY: &str = "mqtt_storage_server_away";
    /// Reads, by operation and outcome.
    pub const READS: &str = "mqtt_storage_reads_total";
    /// Read time.
    pub const READ_DURATION: &str = "mqtt_storage_read_duration_seconds";
    /// Stored messages read by fetches.
    pub const MESSAGES_FETCHED: &str = "mqtt_storage_messages_fetched_total";
    /// 1 when the pool's last health check succeeded.
    pub const POOL_UP: &str = "mqtt_storage_pool_up";
    /// Sweeps, by outcome.
    pub const SWEEPS: &str = "mqtt_storage_sweeps_total";
    /// Messages the sweeps removed.
    pub const SWEPT_MESSAGES: &str = "mqtt_storage_swept_messages_total";
    /// Stored messages handed to sessions.
    pub const DELIVERY_HANDED: &str = "mqtt_storage_delivery_handed_total";
    /// Stored messages handed again after a session dropped them.
    pub const DELIVERY_HANDED_AGAIN: &str = "mqtt_storage_delivery_handed_again_total";
    /// Stored messages that expired before delivery.
    pub const DELIVERY_EXPIRED: &str = "mqtt_storage_delivery_expired_total";
}

/// A count kept here, for the snapshots of the getters
/// ([`crate::Engine::metrics`], [`crate::Engine::write_metrics`]), and
/// recorded through the `metrics` facade, in one call.
#[derive(Debug)]
pub(crate) struct Tally {
    n: AtomicU64,
    metric: Counter,
}

impl Tally {
    pub(crate) fn new(metric: Counter) -> Self {
        Tally {
            n: AtomicU64::new(0),
            metric,
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.n.fetch_add(n, Ordering::Relaxed);
        self.metric.increment(n);
    }

    pub(crate) fn get(&self) -> u64 {
        self.n.load(Ordering::Relaxed)
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new(Counter::noop())
    }
}

/// One rule's metric handles; its counts are [`Tally`]s on them (the
/// engine's runs and the write path's later outcomes of the same rule
/// share `succeeded` and `failed`).
#[derive(Debug, Clone)]
pub(crate) struct RuleObserver {
    pub(crate) matched: Counter,
    pub(crate) succeeded: Counter,
    pub(crate) failed: Counter,
    pub(crate) queued: Counter,
    pub(crate) retried: Counter,
    pub(crate) dropped: Counter,
}

impl RuleObserver {
    pub(crate) fn new(rule: &str, pool: &str, backend: &str) -> Self {
        let labels = [
            ("rule", rule.to_owned()),
            ("pool", pool.to_owned()),
            ("backend", backend.to_owned()),
        ];
        RuleObserver {
            matched: counter!(names::RULE_MATCHED, &labels),
            succeeded: counter!(names::RULE_SUCCEEDED, &labels),
            failed: counter!(names::RULE_FAILED, &labels),
            queued: counter!(names::RULE_QUEUED, &labels),
            retried: counter!(names::RULE_RETRIED, &labels),
            dropped: counter!(names::RULE_DROPPED, &labels),
        }
    }
}

/// One pool's write-path numbers.
#[derive(Debug)]
pub(crate) struct PoolObserver {
    pub(crate) buffered: Counter,
    pub(crate) flushed: Tally,
    pub(crate) dropped: Tally,
    pub(crate) flushes: Tally,
    pub(crate) retries: Tally,
    pub(crate) calls: Tally,
    pub(crate) batch_size: Histogram,
    pub(crate) flush_duration: Histogram,
    pub(crate) depth: Gauge,
    pub(crate) away: Gauge,
}

impl PoolObserver {
    pub(crate) fn new(pool: &str, backend: &str) -> Self {
        let labels = [("pool", pool.to_owned()), ("backend", backend.to_owned())];
        PoolObserver {
            buffered: counter!(names::WRITES_BUFFERED, &labels),
            flushed: Tally::new(counter!(names::WRITES_FLUSHED, &labels)),
            dropped: Tally::new(counter!(names::WRITES_DROPPED, &labels)),
            flushes: Tally::new(counter!(names::FLUSHES, &labels)),
            retries: Tally::new(counter!(names::FLUSH_RETRIES, &labels)),
            calls: Tally::new(counter!(names::BACKEND_CALLS, &labels)),
            batch_size: histogram!(names::FLUSH_BATCH_SIZE, &labels),
            flush_duration: histogram!(names::FLUSH_DURATION, &labels),
            depth: gauge!(names::BUFFER_DEPTH, &labels),
            away: gauge!(names::SERVER_AWAY, &labels),
        }
    }
}

/// The reads the engine makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOp {
    FetchMessages,
    LookupRetained,
    LookupSubscriptions,
}

impl ReadOp {
    const ALL: [ReadOp; 3] = [
        ReadOp::FetchMessages,
        ReadOp::LookupRetained,
        ReadOp::LookupSubscriptions,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            ReadOp::FetchMessages => "fetch_messages",
            ReadOp::LookupRetained => "lookup_retained",
            ReadOp::LookupSubscriptions => "lookup_subscriptions",
        }
    }
}

/// How a read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    Ok,
    Error,
    Timeout,
    Away,
}

impl ReadOutcome {
    const ALL: [ReadOutcome; 4] = [
        ReadOutcome::Ok,
        ReadOutcome::Error,
        ReadOutcome::Timeout,
        ReadOutcome::Away,
    ];

    fn name(self) -> &'static str {
        match self {
            ReadOutcome::Ok => "ok",
            ReadOutcome::Error => "error",
            ReadOutcome::Timeout => "timeout",
            ReadOutcome::Away => "away",
        }
    }
}

/// One pool's read numbers.
#[derive(Debug)]
pub(crate) struct ReadObserver {
    /// By `ReadOp` then `ReadOutcome`.
    reads: Vec<Vec<Counter>>,
    duration: Vec<Histogram>,
    pub(crate) fetched: Counter,
}

impl ReadObserver {
    pub(crate) fn new(pool: &str, backend: &str) -> Self {
        let labels = |op: ReadOp| {
            vec![
                ("pool", pool.to_owned()),
                ("backend", backend.to_owned()),
                ("operation", op.name().to_owned()),
            ]
        };
        ReadObserver {
            reads: ReadOp::ALL
                .iter()
                .map(|&op| {
                    ReadOutcome::ALL
                        .iter()
                        .map(|o| {
                            let mut l = labels(op);
                            l.push(("outcome", o.name().to_owned()));
                            counter!(names::READS, &l)
                        })
                        .collect()
                })
                .collect(),
            duration: ReadOp::ALL
                .iter()
                .map(|&op| histogram!(names::READ_DURATION, &labels(op)))
                .collect(),
            fetched: counter!(
                names::MESSAGES_FETCHED,
                &[("pool", pool.to_owned()), ("backend", backend.to_owned())]
            ),
        }
    }

    /// Counts a read of `op` that ended as `outcome` after `took` (`None`:
    /// not tried).
    pub(crate) fn record(&self, op: ReadOp, outcome: ReadOutcome, took: Option<f64>) {
        let o = ReadOutcome::ALL
            .iter()
            .position(|x| *x == outcome)
            .unwrap_or(0);
        let i = op as usize;
        if let Some(c) = self.reads.get(i).and_then(|r| r.get(o)) {
            c.increment(1);
        }
        if let (Some(secs), Some(h)) = (took, self.duration.get(i)) {
            h.record(secs);
        }
    }
}

/// The delivery adapter's numbers.
#[derive(Debug)]
pub(crate) struct DeliveryObserver {
    pub(crate) handed: Counter,
    pub(crate) handed_again: Counter,
    pub(crate) expired: Counter,
}

impl DeliveryObserver {
    pub(crate) fn new() -> Self {
        DeliveryObserver {
            handed: counter!(names::DELIVERY_HANDED),
            handed_again: counter!(names::DELIVERY_HANDED_AGAIN),
            expired: counter!(names::DELIVERY_EXPIRED),
        }
    }
}
