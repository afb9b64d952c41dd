//! The write path of one pool: group commit, the pool's buffer, retry and
//! back-pressure.
//!
//! Every write a rule makes (a message stored, an ack, a retained message,
//! a client's status, a rendered raw statement) goes into its pool's
//! buffer. The buffer has `worker_pool_size` lanes; a write's lane follows
//! from its topic (or client id), so writes on one topic stay in order.
//! Each lane has at most one flush under way. A flush takes what waits in
//! the lane when the previous flush returns, up to `batch_size` writes,
//! and merges them into as few backend calls as order allows: one
//! `store_messages` for all the messages, one `ack_messages` for all the
//! acks, and so on. So an idle pool adds no wait (a write arriving alone
//! is flushed alone, at once), and a busy one writes in batches as large
//! as the load makes them. `batch_time` (default 0) lets a flush that is
//! not full linger for more writes.
//!
//! **What a hook waits for** (`query_mode`). With `async`, the default, a
//! hook returns once its write is in the buffer: the broker's rate is not
//! bound by database round trips, and the buffer's writes land within a
//! flush. Every read the engine makes (a fetch, a retained or subscription
//! lookup) first waits for the buffered writes it depends on (those of its
//! topic, or its client's statements, or every write for a wildcard
//! filter; never a client's status), so a subscribe sees the publish and
//! the ack before it, and a connecting client does not wait behind other
//! topics' messages. A client's connect and disconnect writes have room
//! of their own beyond `buffer_size` ([`WritePolicy::client_room`]): a
//! buffer full of messages makes publishers wait, not a CONNACK. With
//! `sync`, a hook returns once its write is committed, or has failed for a reason retrying
//! cannot mend, which it reports.
//!
//! **When the database is away**, a failed batch stays in the buffer, in
//! order, and is retried with a growing backoff; in `sync` mode its hooks
//! then return ("queued"), and so do later writes while the outage lasts.
//! While a write has found the server unreachable (a connection error or
//! a timeout) and none has landed since, the engine's reads fail at once
//! with a retryable error instead of each waiting for a timeout of its own.
//! When the buffer is full (`buffer_size` writes), what happens is
//! `buffer_full`'s choice: `block` (the default) makes the hook wait for
//! room, so the broker's MQTT flow control slows the publishers and
//! nothing is lost; `drop_oldest` and `drop_new` give up a write instead,
//! counted in [`WriteMetrics::dropped_full`] and logged.
//!
//! [`crate::Engine::flush`] waits for the buffers to empty: a broker calls
//! it on shutdown. What is still buffered when the process ends is lost,
//! unless the pool has a disk buffer.
//!
//! **The disk buffer** (`buffer = disk` with `buffer_path`, feature
//! `disk-buffer`): writes kept for retry while the server is away are
//! also written, synced, to a redb file before their hooks return, and
//! removed once they land; a hook then returns once its write is committed
//! or on disk, whatever the `query_mode`. A broker started on the same
//! file replays it first, in the order the writes came. A write that had
//! landed just before a crash runs again: harmless for the built-in
//! writes (a message stored again replaces itself by id), repeated for a
//! raw statement.
//!
//! A batch whose merged call fails for a reason retrying cannot mend (one
//! bad row, say) is split in halves until the bad write is found: the
//! others are stored and the bad one's hook gets the error.
//!
//! Reads (fetches, lookups) never go through the buffer.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};

#[cfg(feature = "disk-buffer")]
mod disk;
#[cfg(feature = "disk-buffer")]
use disk::DiskBuffer;

/// Stands in for the disk buffer when the feature is off: there is none.
#[cfg(not(feature = "disk-buffer"))]
enum DiskBuffer {}

#[cfg(not(feature = "disk-buffer"))]
impl DiskBuffer {
    async fn put(&self, _: Vec<(u64, String, WriteOp)>) -> Result<(), String> {
        match *self {}
    }
    async fn remove(&self, _: Vec<u64>) -> Result<(), String> {
        match *self {}
    }
}

use crate::backend::{Ack, Backend, BackendError, BackendResult, ErrorKind, WriteOptions};
use crate::config::{OfflineMode, PoolConfig};
use crate::hook::ClientInfo;
use crate::message::{Message, Timestamp};
use crate::observe::{PoolObserver, ReadObserver, RuleObserver, Tally};
use crate::template::Statement;

/// What a pool does with a new write when its buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BufferFull {
    /// Wait for room: the hook (and so the publisher) waits; nothing is
    /// lost (`buffer_full = block`, the default).
    #[default]
    Block,
    /// Give up the oldest write waiting in the new write's lane
    /// (`drop_oldest`).
    DropOldest,
    /// Give up the new write (`drop_new`).
    DropNew,
}

impl BufferFull {
    /// The conf words, in the order the config accepts them.
    pub const WORDS: [&'static str; 3] = ["block", "drop_oldest", "drop_new"];

    fn from_word(w: &str) -> Option<BufferFull> {
        match w {
            "block" => Some(BufferFull::Block),
            "drop_oldest" => Some(BufferFull::DropOldest),
            "drop_new" => Some(BufferFull::DropNew),
            _ => None,
        }
    }
}

/// When a hook returns from a write (`query_mode`, EMQX 5's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueryMode {
    /// Once the write is in the pool's buffer (`async`, the default): the
    /// broker's rate is not bound by the database's round trips, and
    /// reads still see every earlier write (see [`crate::write`]).
    #[default]
    Async,
    /// Once the write is committed, or kept for retry while the server is
    /// away (`sync`).
    Sync,
}

impl QueryMode {
    /// The conf words.
    pub const WORDS: [&'static str; 2] = ["async", "sync"];
}

/// How one pool batches, buffers and retries its writes. The defaults
/// apply where a pool's conf does not set `batch_size`, `batch_time`,
/// `worker_pool_size`, `buffer_size`, `buffer_full` or `query_mode`.
///
/// ```
/// use std::time::Duration;
/// let p = backend_core::WritePolicy { buffer_size: 50_000, ..Default::default() };
/// assert_eq!(p.batch_size, 1000);
/// assert_eq!(p.batch_time, Duration::ZERO);
/// assert_eq!(p.first_backoff, Duration::from_millis(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePolicy {
    /// `query_mode`: when a hook returns from its write.
    pub mode: QueryMode,
    /// `batch_size`: the most writes one flush takes (default 1000). A
    /// flush takes what waits, so the cap matters only under load, where
    /// each flush's fixed cost (round trips, a request per topic, a
    /// transaction) is shared by more writes.
    pub batch_size: usize,
    /// `batch_time`: how long a flush that is not full may wait for more
    /// writes (default 0: never; an idle pool adds no wait).
    pub batch_time: Duration,
    /// `worker_pool_size`: lanes, each with at most one flush under way
    /// (default 4). A topic's writes always use the same lane.
    pub workers: usize,
    /// `buffer_size`: writes the pool holds, waiting or in flight (default
    /// 10,000); 0 turns buffering off: every write runs alone and every
    /// error is reported at once. A tenth more is kept for the writes of
    /// client connects and disconnects alone (see
    /// [`WritePolicy::client_room`]).
    pub buffer_size: usize,
    /// `buffer_full`: what a write finds when the buffer is full.
    pub buffer_full: BufferFull,
    /// The wait before the first retry of a failed batch; it doubles after
    /// each failure.
    pub first_backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
    /// `read_timeout`: the longest the subscription lookup of a connecting
    /// client waits for the writes before it and the server's answer
    /// together (default 1 s, well under a client's usual 5 s connect
    /// timeout): its CONNACK waits for it. Past it the read fails as
    /// retryable, or, through [`Engine::on_client_connected_then`], goes on
    /// in the background (up to `fetch_timeout`) and hands its
    /// subscriptions over when the server answers.
    ///
    /// [`Engine::on_client_connected_then`]: crate::Engine::on_client_connected_then
    pub read_timeout: Duration,
    /// `fetch_timeout`: the same bound for the offline-message and
    /// retained fetches of a subscribe and the backlog's pages (default
    /// 10 s: they read many rows, and a fetch cut short leaves the backlog
    /// for the next subscribe), and for the writes a read waits for first.
    /// A server found away (a write refused, or stalled: see
    /// [`STALLED_WRITE_MIN`]) fails every read at once instead.
    pub fetch_timeout: Duration,
}

impl WritePolicy {
    /// The default `read_timeout`.
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default `fetch_timeout`.
    pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(10);
}

impl Default for WritePolicy {
    fn default() -> Self {
        WritePolicy {
            mode: QueryMode::Async,
            batch_size: 1000,
            batch_time: Duration::ZERO,
            workers: 4,
            buffer_size: 10_000,
            buffer_full: BufferFull::Block,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
            fetch_timeout: Self::DEFAULT_FETCH_TIMEOUT,
        }
    }
}

impl WritePolicy {
    /// The room kept, beyond `buffer_size`, for the writes of client
    /// connects and disconnects (a client's status, its statements): a
    /// tenth of `buffer_size`, at least one. With the buffer full of
    /// messages behind a slow server, a connecting client's own writes still
    /// find room, and its CONNACK does not wait for the messages to land.
    pub fn client_room(&self) -> usize {
        (self.buffer_size / 10).max(1)
    }

    /// No buffer: each write runs alone and reports its error at once.
    pub fn off() -> Self {
        WritePolicy {
            buffer_size: 0,
            ..Default::default()
        }
    }

    /// This policy with `pool`'s own `batch_size`, `batch_time`,
    /// `worker_pool_size`, `buffer_size`, `buffer_full`, `query_mode`,
    /// `read_timeout` and `fetch_timeout`, where set.
    ///
    /// ```
    /// use backend_core::{config::PoolConfig, BackendKind, BufferFull, WritePolicy};
    /// let mut pool = PoolConfig::new(backend_core::testkit::kinds::PGSQL, "pool1");
    /// pool.set("batch_size", "500")?.set("batch_time", "5ms")?.set("buffer_full", "drop_new")?;
    /// pool.set("read_timeout", "250ms")?;
    /// let p = WritePolicy::default().for_pool(&pool);
    /// assert_eq!((p.batch_size, p.batch_time.as_millis()), (500, 5));
    /// assert_eq!(p.read_timeout.as_millis(), 250);
    /// assert_eq!(p.buffer_full, BufferFull::DropNew);
    /// # Ok::<(), backend_core::ConfigError>(())
    /// ```
    pub fn for_pool(mut self, pool: &PoolConfig) -> Self {
        let count = |key: &str| {
            pool.int(key)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
        };
        if let Some(n) = count("batch_size") {
            self.batch_size = n;
        }
        if let Some(n) = count("worker_pool_size") {
            self.workers = n;
        }
        if let Some(n) = pool
            .int("buffer_size")
            .and_then(|n| usize::try_from(n).ok())
        {
            self.buffer_size = n;
        }
        if let Some(ms) = pool.int("batch_time").and_then(|n| u64::try_from(n).ok()) {
            self.batch_time = Duration::from_millis(ms);
        }
        let millis = |key: &str| {
            pool.int(key)
                .and_then(|n| u64::try_from(n).ok())
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis)
        };
        if let Some(t) = millis("read_timeout") {
            self.read_timeout = t;
        }
        if let Some(t) = millis("fetch_timeout") {
            self.fetch_timeout = t;
        }
        if let Some(f) = pool.text("buffer_full").and_then(BufferFull::from_word) {
            self.buffer_full = f;
        }
        match pool.text("query_mode") {
            Some("sync") => self.mode = QueryMode::Sync,
            Some("async") => self.mode = QueryMode::Async,
            _ => {}
        }
        self
    }
}

/// A flush with no answer for 20 times the pool's usual flush time (its
/// moving average), at least [`STALLED_WRITE_MIN`] and at most
/// [`STALLED_WRITE_MAX`], finds the server away (hung): reads fail at once
/// and health says so, while the flush still waits for the backend's own
/// timeout. Relative and at least 5 s, so that a server that is slow but
/// answers (a large batch, a test server scanning its collections under
/// load) is not taken for a hung one.
pub const STALLED_WRITE_MIN: Duration = Duration::from_secs(5);
/// See [`STALLED_WRITE_MIN`].
pub const STALLED_WRITE_MAX: Duration = Duration::from_secs(10);

/// A write the engine can batch and replay.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    Store(Vec<Message>, WriteOptions),
    StoreRetained(Vec<Message>, WriteOptions),
    DeleteRetained(Vec<String>),
    Ack(OfflineMode, Vec<Ack>),
    Online(ClientInfo, Timestamp),
    Offline(ClientInfo, Timestamp),
    /// A rendered raw statement and what orders it (its event's topic or
    /// client id).
    Execute(Statement, String),
}

/// Writes that merge into one backend call share a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Store(WriteOptions),
    StoreRetained(WriteOptions),
    DeleteRetained,
    Ack(OfflineMode),
    /// Writes that run one call each, in order.
    Single(u8),
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

    /// What picks the lane: writes with the same key keep their order.
    fn order_key(&self) -> &str {
        match self {
            WriteOp::Store(m, _) | WriteOp::StoreRetained(m, _) => {
                m.first().map_or("", |m| m.topic.as_str())
            }
            WriteOp::DeleteRetained(t) => t.first().map_or("", String::as_str),
            WriteOp::Ack(_, a) => a.first().map_or("", |a| a.topic.as_str()),
            WriteOp::Online(c, _) | WriteOp::Offline(c, _) => &c.client_id,
            WriteOp::Execute(_, key) => key,
        }
    }

    /// A client's status write: read by no hook, so no read waits for it
    /// (the subscription lookup on connect waits only for the client's
    /// statements, not for its status write behind every earlier write of
    /// its lane), and it may take the room kept for client events.
    pub(crate) fn is_status(&self) -> bool {
        matches!(self, WriteOp::Online(..) | WriteOp::Offline(..))
    }

    /// Stores merge whatever their `again`: the merged call carries it if
    /// any of them does.
    fn group(&self) -> Group {
        let fresh = |o: &WriteOptions| WriteOptions { again: false, ..*o };
        match self {
            WriteOp::Store(_, o) => Group::Store(fresh(o)),
            WriteOp::StoreRetained(_, o) => Group::StoreRetained(fresh(o)),
            WriteOp::DeleteRetained(_) => Group::DeleteRetained,
            WriteOp::Ack(mode, _) => Group::Ack(*mode),
            WriteOp::Online(..) => Group::Single(0),
            WriteOp::Offline(..) => Group::Single(1),
            WriteOp::Execute(..) => Group::Single(2),
        }
    }

    /// Writes of two groups that touch the same thing (a topic's retained
    /// message, a client's status) must not swap places: a flush that
    /// would merge them out of order is cut there.
    fn conflict(&self) -> Option<(u8, &str)> {
        match self {
            WriteOp::StoreRetained(..) | WriteOp::DeleteRetained(..) => Some((0, self.order_key())),
            WriteOp::Online(..) | WriteOp::Offline(..) => Some((1, self.order_key())),
            _ => None,
        }
    }

    /// Marks a write whose earlier attempt failed (and may have landed in
    /// part) as [`WriteOptions::again`].
    fn mark_again(&mut self) {
        if let WriteOp::Store(_, o) | WriteOp::StoreRetained(_, o) = self {
            o.again = true;
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
            WriteOp::Execute(s, _) => b.execute(s).await.map(|_| ()),
        }
    }
}

/// Runs the writes `part` of `ops` (all of one mergeable group) as one
/// backend call.
async fn run_merged(
    b: &dyn Backend,
    ops: &mut [&mut WriteOp],
    part: &[usize],
) -> BackendResult<()> {
    let Some(&first) = part.first() else {
        return Ok(());
    };
    if let [one] = part {
        return ops[*one].run(b).await;
    }
    let again = part.iter().any(
        |&i| matches!(&*ops[i], WriteOp::Store(_, o) | WriteOp::StoreRetained(_, o) if o.again),
    );
    match ops[first].group() {
        Group::Store(o) => {
            // The messages move into one slice for the call, and back into
            // their writes only if it failed (a retry or a bisection needs
            // them): never copied. Sized first: growing it would copy a
            // 1,000-message flush about twice.
            let total = part.iter().map(|&i| messages(&*ops[i]).len()).sum();
            let mut all = Vec::with_capacity(total);
            let mut counts = Vec::with_capacity(part.len());
            for &i in part {
                let n = match &mut *ops[i] {
                    WriteOp::Store(m, _) => {
                        let n = m.len();
                        all.append(m);
                        n
                    }
                    _ => 0,
                };
                counts.push(n);
            }
            let result = b.store_messages(&all, WriteOptions { again, ..o }).await;
            if result.is_ok() {
                // Landed: their writes are done with them.
                return result;
            }
            let mut back = all.into_iter();
            for (&i, n) in part.iter().zip(counts) {
                if let WriteOp::Store(m, _) = &mut *ops[i] {
                    m.extend(back.by_ref().take(n));
                }
            }
            result
        }
        Group::StoreRetained(o) => {
            let all: Vec<Message> = part
                .iter()
                .flat_map(|&i| messages(&*ops[i]))
                .cloned()
                .collect();
            b.store_retained(&all, WriteOptions { again, ..o }).await
        }
        Group::DeleteRetained => {
            let all: Vec<String> = part
                .iter()
                .flat_map(|&i| match &*ops[i] {
                    WriteOp::DeleteRetained(t) => t.as_slice(),
                    _ => &[],
                })
                .cloned()
                .collect();
            b.delete_retained(&all).await
        }
        Group::Ack(mode) => {
            let all: Vec<Ack> = part
                .iter()
                .flat_map(|&i| match &*ops[i] {
                    WriteOp::Ack(_, a) => a.as_slice(),
                    _ => &[],
                })
                .cloned()
                .collect();
            b.ack_messages(mode, &all).await
        }
        Group::Single(_) => {
            for &i in part {
                ops[i].run(b).await?;
            }
            Ok(())
        }
    }
}

fn messages(op: &WriteOp) -> &[Message] {
    match op {
        WriteOp::Store(m, _) | WriteOp::StoreRetained(m, _) => m,
        _ => &[],
    }
}

/// How each write of a flushed batch ended: `Some(result)` when it ran,
/// `None` when a retryable failure stopped the batch before it (or at it).
struct BatchOutcome {
    results: Vec<Option<BackendResult<()>>>,
    /// The retryable failure that stopped the batch, if one did.
    stopped: Option<BackendError>,
    /// Backend calls made.
    calls: u64,
}

/// Runs a batch in order, merging each group's writes into one call, and
/// cutting the batch wherever merging would reorder writes on one topic's
/// retained message or one client's status.
async fn run_batch(b: &dyn Backend, ops: &mut [&mut WriteOp]) -> BatchOutcome {
    let mut out = BatchOutcome {
        results: (0..ops.len()).map(|_| None).collect(),
        stopped: None,
        calls: 0,
    };
    let mut start = 0;
    while start < ops.len() && out.stopped.is_none() {
        // One segment: groups in order of their first write.
        let mut groups: Vec<(Group, Vec<usize>)> = Vec::new();
        let mut touched: HashMap<(u8, &str), Group> = HashMap::new();
        let mut end = start;
        while end < ops.len() {
            let g = ops[end].group();
            if let Some(c) = ops[end].conflict() {
                match touched.get(&c) {
                    Some(seen) if *seen != g => break,
                    _ => {
                        touched.insert(c, g);
                    }
                }
            }
            match groups.iter_mut().find(|(k, _)| *k == g) {
                Some((_, idx)) => idx.push(end),
                None => groups.push((g, vec![end])),
            }
            end += 1;
        }
        for (group, idx) in groups {
            if out.stopped.is_some() {
                break;
            }
            match group {
                Group::Single(_) => {
                    for i in idx {
                        out.calls += 1;
                        match ops[i].run(b).await {
                            Err(e) if e.is_retryable() => {
                                out.stopped = Some(e);
                                break;
                            }
                            r => out.results[i] = Some(r),
                        }
                    }
                }
                _ => run_group_bisecting(b, ops, idx, &mut out).await,
            }
        }
        start = end;
    }
    out
}

/// One merged call for `idx`; when it fails for good and holds several
/// writes, halves are tried in turn until each bad write stands alone.
async fn run_group_bisecting(
    b: &dyn Backend,
    ops: &mut [&mut WriteOp],
    idx: Vec<usize>,
    out: &mut BatchOutcome,
) {
    // Ranges still to run, the next on top.
    let mut todo: Vec<Vec<usize>> = vec![idx];
    while let Some(part) = todo.pop() {
        out.calls += 1;
        match run_merged(b, ops, &part).await {
            Ok(()) => part.iter().for_each(|&i| out.results[i] = Some(Ok(()))),
            Err(e) if e.is_retryable() => {
                out.stopped = Some(e);
                return;
            }
            Err(e) if part.len() == 1 => out.results[part[0]] = Some(Err(e)),
            Err(e) => {
                tracing::debug!(writes = part.len(), error = %e, "batch failed; splitting it to find the bad write");
                let (left, right) = part.split_at(part.len() / 2);
                todo.push(right.to_vec());
                todo.push(left.to_vec());
            }
        }
    }
}

/// Counters a write reports to (its rule's).
#[derive(Debug, Default)]
pub(crate) struct RuleWriteCounters {
    /// Writes that landed with no hook waiting (async mode).
    pub(crate) landed: Tally,
    /// Writes that failed for good with no hook waiting (async mode).
    pub(crate) failed: Tally,
    pub(crate) queued: Tally,
    pub(crate) retried: Tally,
    pub(crate) dropped: Tally,
}

impl RuleWriteCounters {
    /// Counts recorded on the rule's metric handles.
    pub(crate) fn new(observe: &RuleObserver) -> Self {
        RuleWriteCounters {
            landed: Tally::new(observe.succeeded.clone()),
            failed: Tally::new(observe.failed.clone()),
            queued: Tally::new(observe.queued.clone()),
            retried: Tally::new(observe.retried.clone()),
            dropped: Tally::new(observe.dropped.clone()),
        }
    }
}

/// What became of a write.
pub(crate) enum Submitted {
    /// It ran.
    Done,
    /// It waits in the buffer for the server, after a failure.
    Queued,
    /// It is in the buffer (`query_mode = async`); its outcome is counted
    /// in the rule's metrics when it lands.
    Buffered,
    /// It failed and was not kept.
    Failed(BackendError),
}

/// A write handed to the pool: its outcome comes later.
pub(crate) enum Ticket {
    Ready(Submitted),
    Waiting(oneshot::Receiver<Submitted>),
}

impl Ticket {
    pub(crate) async fn outcome(self) -> Submitted {
        match self {
            Ticket::Ready(s) => s,
            Ticket::Waiting(rx) => rx.await.unwrap_or_else(|_| {
                Submitted::Failed(BackendError::new(
                    ErrorKind::Unsupported,
                    "the write was abandoned: its runtime is shutting down",
                ))
            }),
        }
    }
}

struct Entry {
    op: WriteOp,
    counters: Arc<RuleWriteCounters>,
    rule: Arc<str>,
    /// The hook waiting for the commit; `None` once told "queued", and
    /// from the start in async mode.
    waiter: Option<oneshot::Sender<Submitted>>,
    /// Kept for retry after a failure.
    queued: bool,
    /// Its place in the disk buffer's order.
    key: u64,
    /// Written to the disk buffer.
    on_disk: bool,
    /// Room in the buffer, given back when the write leaves it.
    room: OwnedSemaphorePermit,
}

impl Entry {
    fn tell(&mut self, s: Submitted) {
        if let Some(w) = self.waiter.take() {
            // The hook may have gone away (its task aborted): nothing to tell.
            let _ = w.send(s);
        }
    }

    fn queued(&mut self) {
        if !self.queued {
            self.queued = true;
            self.counters.queued.add(1);
        }
        self.tell(Submitted::Queued);
    }

    /// The write landed (`Ok`) or failed for good: tell its hook, or count
    /// it for the rule when no hook waits.
    fn finish(&mut self, pool: &str, result: BackendResult<()>) {
        match result {
            Ok(()) => {
                if self.queued {
                    self.counters.retried.add(1);
                } else if self.waiter.is_none() {
                    self.counters.landed.add(1);
                }
                self.tell(Submitted::Done);
            }
            Err(e) => {
                if self.waiter.is_none() {
                    if self.queued {
                        self.counters.dropped.add(1);
                    } else {
                        self.counters.failed.add(1);
                    }
                    tracing::error!(%pool, rule = %self.rule, operation = self.op.name(), error = %e, "buffered write failed for good: dropped");
                }
                self.tell(Submitted::Failed(e));
            }
        }
    }
}

#[derive(Default)]
struct LaneState {
    waiting: VecDeque<Entry>,
    /// Writes ever put in the lane.
    submitted: u64,
    /// For each order key's hash, `submitted` as its latest write went in:
    /// a read of that key waits for this many writes to leave the lane, not
    /// for every write of the keys that share the lane. Entries that have
    /// left are pruned as the map grows (see [`LaneState::note`]).
    latest: HashMap<u64, u64>,
    /// `latest`'s size after its last pruning.
    latest_kept: usize,
    worker: bool,
    /// The last flush failed retryably: new writes are queued, not waited on.
    outage: bool,
}

impl LaneState {
    /// Counts one more write, of the order key hashed to `key`, that reads
    /// of that key wait for if `read_depends`; `left` is how many of the
    /// lane's writes have left it so far.
    fn note(&mut self, key: u64, read_depends: bool, left: u64) {
        self.submitted += 1;
        if read_depends {
            self.latest.insert(key, self.submitted);
        }
        // Pruned when it has doubled: amortised, a constant cost per write.
        if self.latest.len() > 2 * self.latest_kept + 1024 {
            self.latest.retain(|_, at| *at > left);
            self.latest_kept = self.latest.len();
        }
    }
}

/// One pool's write counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriteMetrics {
    /// The pool.
    pub pool: String,
    /// Flushes that ran (each one batch of writes).
    pub flushes: u64,
    /// Writes those flushes carried.
    pub writes: u64,
    /// Backend calls they made (merged groups, single statements, retries
    /// of a split batch).
    pub calls: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
    /// Writes waiting or in flight now.
    pub buffered: usize,
    /// Writes given up because the buffer was full (`drop_oldest`,
    /// `drop_new`).
    pub dropped_full: u64,
    /// Flushes that failed retryably and were kept for retry.
    pub retries: u64,
}

/// One pool's buffer and its lanes.
pub(crate) struct PoolWriter {
    pool: String,
    backend: Arc<dyn Backend>,
    policy: WritePolicy,
    lanes: Vec<Mutex<LaneState>>,
    /// Per lane: writes that have left it for good (landed, failed or
    /// dropped), and whether it is in an outage; what reads wait on.
    progress: Vec<watch::Sender<Progress>>,
    room: Arc<Semaphore>,
    /// Room kept for the writes of client events (a connect's status and
    /// statements, a disconnect's): a buffer full of messages behind a slow
    /// server does not hold up a CONNACK. A tenth of `buffer_size`.
    client_room: Arc<Semaphore>,
    largest: AtomicU64,
    buffered: AtomicUsize,
    /// `buffer = disk`: the file that keeps writes kept for retry.
    disk: Option<DiskBuffer>,
    next_key: AtomicU64,
    /// Why the server is away, and until when the finding counts: the last
    /// flush or read failed because it could not be reached or did not
    /// answer, and no write has landed since. Reads fail at once meanwhile
    /// instead of each waiting for its own timeout.
    away: Mutex<Option<(String, std::time::Instant)>>,
    is_away: AtomicBool,
    /// The moving average of a flush's duration, in µs (0: none yet).
    flush_average_us: AtomicU64,
    /// The numbers above through the `metrics` facade.
    observe: PoolObserver,
    /// The pool's reads, counted by the engine.
    pub(crate) reads: ReadObserver,
}

/// Why a pool's disk buffer could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pool {pool}: disk buffer: {message}")]
pub struct DiskBufferError {
    /// The pool.
    pub pool: String,
    /// What went wrong.
    pub message: String,
}

impl PoolWriter {
    /// A writer whose pool keeps its retry writes on disk when its conf
    /// says `buffer = disk` (at `buffer_path`); the writes the file holds
    /// from an earlier run go first.
    pub(crate) fn open(
        pool: String,
        backend: Arc<dyn Backend>,
        policy: WritePolicy,
        conf: Option<&PoolConfig>,
    ) -> Result<Arc<Self>, DiskBufferError> {
        let err = |message: String| DiskBufferError {
            pool: pool.clone(),
            message,
        };
        let Some(conf) = conf.filter(|c| c.text("buffer") == Some("disk")) else {
            return Ok(Self::new(pool, backend, policy));
        };
        let path = conf.text("buffer_path").ok_or_else(|| {
            err("`buffer = disk` needs `buffer_path`, the file to keep writes in".into())
        })?;
        #[cfg(feature = "disk-buffer")]
        {
            let (disk, replay) = DiskBuffer::open(std::path::Path::new(path)).map_err(err)?;
            let mut writer = Self::new(pool.clone(), backend, policy);
            let next = replay.iter().map(|r| r.key + 1).max().unwrap_or(1);
            if let Some(w) = Arc::get_mut(&mut writer) {
                w.disk = Some(disk);
                w.next_key = AtomicU64::new(next);
            }
            writer.replay(replay);
            Ok(writer)
        }
        #[cfg(not(feature = "disk-buffer"))]
        {
            let _ = (backend, policy, path);
            Err(err(
                "this build has no disk buffer: enable backend-core's `disk-buffer` feature".into(),
            ))
        }
    }

    /// Puts writes read back from the disk buffer at the front of their
    /// lanes, as kept for retry, and starts the lanes' workers.
    #[cfg(feature = "disk-buffer")]
    fn replay(self: &Arc<Self>, replay: Vec<disk::Replayed>) {
        if replay.is_empty() {
            return;
        }
        tracing::info!(pool = %self.pool, writes = replay.len(), "replaying the disk buffer");
        // Room of its own: what the file holds goes in whatever its size.
        let room = Arc::new(Semaphore::new(replay.len()));
        let counters = Arc::new(RuleWriteCounters::default());
        for r in replay {
            let Ok(permit) = Arc::clone(&room).try_acquire_owned() else {
                continue;
            };
            let key = key_hash(r.op.order_key());
            let read_depends = !r.op.is_status();
            let lane = self.lane_index(key);
            let left = self.progress[lane].borrow().left;
            let mut st = self.lane(lane);
            st.waiting.push_back(Entry {
                op: r.op,
                counters: Arc::clone(&counters),
                rule: Arc::from(r.rule.as_str()),
                waiter: None,
                queued: true,
                key: r.key,
                on_disk: true,
                room: permit,
            });
            st.note(key, read_depends, left);
            self.buffered_one();
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            for lane in 0..self.lanes.len() {
                let start = {
                    let mut st = self.lane(lane);
                    !st.waiting.is_empty() && !std::mem::replace(&mut st.worker, true)
                };
                if start {
                    handle.spawn(Arc::clone(self).work(lane));
                }
            }
        }
    }

    /// A writer with its buffer in memory only.
    pub(crate) fn new(pool: String, backend: Arc<dyn Backend>, policy: WritePolicy) -> Arc<Self> {
        let policy = WritePolicy {
            batch_size: policy.batch_size.max(1),
            workers: policy.workers.max(1),
            ..policy
        };
        Arc::new(PoolWriter {
            flush_average_us: AtomicU64::new(0),
            observe: PoolObserver::new(&pool, backend.info().name),
            reads: ReadObserver::new(&pool, backend.info().name),
            pool,
            backend,
            lanes: (0..policy.workers)
                .map(|_| Mutex::new(LaneState::default()))
                .collect(),
            progress: (0..policy.workers)
                .map(|_| watch::Sender::new(Progress::default()))
                .collect(),
            room: Arc::new(Semaphore::new(
                policy.buffer_size.min(Semaphore::MAX_PERMITS),
            )),
            client_room: Arc::new(Semaphore::new(
                policy.client_room().min(Semaphore::MAX_PERMITS),
            )),
            policy,
            largest: AtomicU64::new(0),
            buffered: AtomicUsize::new(0),
            disk: None,
            next_key: AtomicU64::new(1),
            away: Mutex::new(None),
            is_away: AtomicBool::new(false),
        })
    }

    fn lane(&self, i: usize) -> MutexGuard<'_, LaneState> {
        // Every critical section leaves the lane consistent.
        self.lanes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lane of an order key's hash (see [`key_hash`]).
    fn lane_index(&self, key: u64) -> usize {
        (key % self.lanes.len() as u64) as usize
    }

    /// One more write waits in the buffer.
    fn buffered_one(&self) {
        let depth = self.buffered.fetch_add(1, Ordering::Relaxed) + 1;
        self.observe.buffered.increment(1);
        self.observe.depth.set(depth as f64);
    }

    /// `n` writes left the buffer.
    fn unbuffered(&self, n: usize) {
        if n == 0 {
            return;
        }
        let depth = self
            .buffered
            .fetch_sub(n, Ordering::Relaxed)
            .saturating_sub(n);
        self.observe.depth.set(depth as f64);
    }

    /// Writes waiting or in flight.
    pub(crate) fn len(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// The pool's counters.
    pub(crate) fn metrics(&self) -> WriteMetrics {
        WriteMetrics {
            pool: self.pool.clone(),
            flushes: self.observe.flushes.get(),
            writes: self.observe.flushed.get(),
            calls: self.observe.calls.get(),
            largest_batch: self.largest.load(Ordering::Relaxed),
            buffered: self.len(),
            dropped_full: self.observe.dropped.get(),
            retries: self.observe.retries.get(),
        }
    }

    /// Puts `op` in the buffer (waiting for room if the policy blocks) and
    /// returns the ticket for its outcome. A write of a client event
    /// (`client_event`) may also take the room kept for those.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        op: WriteOp,
        client_event: bool,
        counters: &Arc<RuleWriteCounters>,
        rule: &Arc<str>,
    ) -> Ticket {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to flush or retry on: run it here, report as is.
            return Ticket::Ready(direct(op.run(&*self.backend).await));
        };
        if self.policy.buffer_size == 0 {
            return Ticket::Ready(direct(op.run(&*self.backend).await));
        }
        let key_of_op = key_hash(op.order_key());
        let read_depends = !op.is_status();
        let lane = self.lane_index(key_of_op);
        let room = match self.room(lane, &op, client_event, counters, rule).await {
            Ok(room) => room,
            Err(e) => return Ticket::Ready(Submitted::Failed(e)),
        };
        // With a disk buffer a hook always waits: for the commit, or for
        // its write to be on disk.
        let (waiter, ticket) = match (self.policy.mode, &self.disk) {
            (QueryMode::Async, None) => (None, Ticket::Ready(Submitted::Buffered)),
            _ => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Ticket::Waiting(rx))
            }
        };
        let mut entry = Entry {
            op,
            counters: Arc::clone(counters),
            rule: Arc::clone(rule),
            waiter,
            queued: false,
            key: self.next_key.fetch_add(1, Ordering::Relaxed),
            on_disk: false,
            room,
        };
        if let Some(disk) = &self.disk {
            // The server is away: on disk before the hook hears "queued".
            if self.lane(lane).outage {
                self.persist(disk, std::slice::from_mut(&mut entry)).await;
            }
        }
        // Read before the lane's lock: no lock is taken while holding both.
        let left = self.progress[lane].borrow().left;
        let start = {
            let mut st = self.lane(lane);
            if st.outage {
                entry.queued();
            }
            st.waiting.push_back(entry);
            st.note(key_of_op, read_depends, left);
            self.buffered_one();
            !std::mem::replace(&mut st.worker, true)
        };
        if start {
            handle.spawn(Arc::clone(self).work(lane));
        }
        ticket
    }

    /// The pool's `read_timeout` and `fetch_timeout`.
    pub(crate) fn read_timeouts(&self) -> (Duration, Duration) {
        (self.policy.read_timeout, self.policy.fetch_timeout)
    }

    /// A read could not reach the server: reads fail at once for twice the
    /// `read_timeout` (at least a second), then one tries the server again.
    pub(crate) fn found_away_by_read(&self, why: String) {
        let lasting = (self.policy.read_timeout * 2).max(Duration::from_secs(1));
        self.found_away(why, lasting);
    }

    /// How long a flush may go unanswered before the server counts as
    /// hung (see [`STALLED_WRITE_MIN`]).
    fn stalled_after(&self) -> Duration {
        let usual = Duration::from_micros(self.flush_average_us.load(Ordering::Relaxed));
        (usual * 20).clamp(STALLED_WRITE_MIN, STALLED_WRITE_MAX)
    }

    /// Folds a flush's duration into the moving average (weight 1/8).
    fn flush_time(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let old = self.flush_average_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.flush_average_us.store(new, Ordering::Relaxed);
    }

    /// How long a write's finding that the server is away counts: the
    /// retries renew it at least every `max_backoff`.
    fn away_lasting(&self) -> Duration {
        (self.policy.max_backoff * 2).max(Duration::from_secs(1))
    }

    /// The server is away for `why`; the finding counts for `lasting`, or
    /// as long as an earlier one still does.
    fn found_away(&self, why: String, lasting: Duration) {
        let mut away = self.away.lock().unwrap_or_else(|p| p.into_inner());
        let until = std::time::Instant::now() + lasting;
        let until = match &*away {
            Some((_, earlier)) => until.max(*earlier),
            None => until,
        };
        *away = Some((why, until));
        self.is_away.store(true, Ordering::Relaxed);
        self.observe.away.set(1.0);
    }

    /// Why the pool's server is away, while it is: the last write or read
    /// failed because the server could not be reached or did not answer,
    /// and no write has landed since. A read then fails at once (the
    /// engine checks before each read) rather than waiting for a timeout
    /// of its own.
    ///
    /// The retries of the kept writes renew the finding at least every
    /// `max_backoff`; a write's finding counts for twice that (at least a
    /// second), a read's for twice the `read_timeout`, so reads try the
    /// server again even if nothing is left to retry.
    pub(crate) fn away(&self) -> Option<String> {
        if !self.is_away.load(Ordering::Relaxed) {
            return None;
        }
        match &*self.away.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((why, until)) if std::time::Instant::now() < *until => Some(why.clone()),
            _ => None,
        }
    }

    /// Waits until the writes put in the buffer before this call that a
    /// read of `key` depends on have left it, except in lanes whose server
    /// is away (their last flush failed, or has had no answer for the
    /// stall time): what every read does first, so that it sees the writes
    /// that came before it (a fetch after a publish, a subscribe after an
    /// ack), whatever the `query_mode`. `key` is a topic or client id
    /// (the writes of that key only, not the rest of its lane), or `None`
    /// for a wildcard read (every write of every lane).
    pub(crate) async fn barrier(&self, key: Option<&str>) {
        let targets: Vec<(usize, u64)> = match key {
            Some(k) => {
                let key = key_hash(k);
                let lane = self.lane_index(key);
                let target = self.lane(lane).latest.get(&key).copied().unwrap_or(0);
                vec![(lane, target)]
            }
            None => (0..self.lanes.len())
                .map(|i| (i, self.lane(i).submitted))
                .collect(),
        };
        for (i, target) in targets {
            let mut rx = self.progress[i].subscribe();
            // The sender lives as long as `self`: the wait cannot fail.
            let _ = rx.wait_for(|p| p.left >= target || p.outage).await;
        }
    }

    /// Writes the entries not yet on disk to the disk buffer, in one synced
    /// transaction.
    async fn persist(&self, disk: &DiskBuffer, entries: &mut [Entry]) {
        let todo: Vec<(u64, String, WriteOp)> = entries
            .iter()
            .filter(|e| !e.on_disk)
            .map(|e| (e.key, e.rule.to_string(), e.op.clone()))
            .collect();
        if todo.is_empty() {
            return;
        }
        match disk.put(todo).await {
            Ok(()) => entries.iter_mut().for_each(|e| e.on_disk = true),
            Err(e) => {
                tracing::error!(pool = %self.pool, error = %e, writes = entries.len(), "disk buffer write failed: these writes are kept in memory only")
            }
        }
    }

    fn left_lane(&self, lane: usize, n: u64, outage: bool) {
        self.progress[lane].send_modify(|p| {
            p.left += n;
            p.outage = outage;
        });
    }

    /// Room for one more write, as the policy says when there is none.
    async fn room(
        &self,
        lane: usize,
        op: &WriteOp,
        client_event: bool,
        counters: &RuleWriteCounters,
        rule: &str,
    ) -> BackendResult<OwnedSemaphorePermit> {
        if let Ok(p) = Arc::clone(&self.room).try_acquire_owned() {
            return Ok(p);
        }
        if client_event {
            if let Ok(p) = Arc::clone(&self.client_room).try_acquire_owned() {
                return Ok(p);
            }
        }
        let full = || {
            format!(
                "the buffer of pool {} is full ({} writes wait for the server)",
                self.pool, self.policy.buffer_size
            )
        };
        match self.policy.buffer_full {
            BufferFull::Block => {
                tracing::debug!(pool = %self.pool, %rule, "buffer full: waiting for room");
            }
            BufferFull::DropNew => {
                counters.dropped.add(1);
                self.observe.dropped.add(1);
                tracing::warn!(pool = %self.pool, %rule, operation = op.name(), "{}: new write dropped (buffer_full = drop_new)", full());
                return Err(BackendError::new(
                    ErrorKind::Connection,
                    format!("{} not stored: {}", op.name(), full()),
                ));
            }
            BufferFull::DropOldest => {
                // The oldest waiting write of this lane (or any lane) gives
                // its room to the new one.
                let order =
                    std::iter::once(lane).chain((0..self.lanes.len()).filter(|&l| l != lane));
                for l in order {
                    let evicted = {
                        let mut st = self.lane(l);
                        st.waiting.pop_front().map(|old| (old, st.outage))
                    };
                    if let Some((mut old, outage)) = evicted {
                        self.unbuffered(1);
                        self.left_lane(l, 1, outage);
                        old.counters.dropped.add(1);
                        self.observe.dropped.add(1);
                        tracing::warn!(pool = %self.pool, rule = %old.rule, operation = old.op.name(), "{}: oldest write dropped (buffer_full = drop_oldest)", full());
                        if let (Some(disk), true) = (&self.disk, old.on_disk) {
                            if let Err(e) = disk.remove(vec![old.key]).await {
                                tracing::error!(pool = %self.pool, error = %e, "disk buffer: a dropped write was not removed");
                            }
                        }
                        old.tell(Submitted::Failed(BackendError::new(
                            ErrorKind::Connection,
                            format!("{} dropped: {}", old.op.name(), full()),
                        )));
                        return Ok(old.room);
                    }
                }
            }
        }
        let closed = |_| {
            BackendError::new(
                ErrorKind::Unsupported,
                format!("pool {} is closed", self.pool),
            )
        };
        if client_event {
            // Whichever room frees first.
            tokio::select! {
                p = Arc::clone(&self.room).acquire_owned() => p.map_err(closed),
                p = Arc::clone(&self.client_room).acquire_owned() => p.map_err(closed),
            }
        } else {
            Arc::clone(&self.room).acquire_owned().await.map_err(closed)
        }
    }

    /// A lane's worker: flushes until the lane is empty, waiting out
    /// outages.
    async fn work(self: Arc<Self>, lane: usize) {
        let mut backoff = self.policy.first_backoff;
        loop {
            if !self.policy.batch_time.is_zero() {
                let linger = {
                    let st = self.lane(lane);
                    !st.outage && st.waiting.len() < self.policy.batch_size
                };
                if linger {
                    tokio::time::sleep(self.policy.batch_time).await;
                }
            }
            let mut batch: Vec<Entry> = {
                let mut st = self.lane(lane);
                if st.waiting.is_empty() {
                    st.worker = false;
                    return;
                }
                let n = st.waiting.len().min(self.policy.batch_size);
                st.waiting.drain(..n).collect()
            };
            let ops_len = batch.len();
            let mut ops: Vec<&mut WriteOp> = batch.iter_mut().map(|e| &mut e.op).collect();
            let started = std::time::Instant::now();
            let stalled = self.stalled_after();
            let outcome = {
                let flush = run_batch(&*self.backend, &mut ops);
                tokio::pin!(flush);
                tokio::select! {
                    outcome = &mut flush => outcome,
                    _ = tokio::time::sleep(stalled) => {
                        // A hung server: reads stop waiting on it, and
                        // health says so, while this write waits for its
                        // answer.
                        let why = format!("a write has had no answer for {stalled:?}");
                        tracing::warn!(pool = %self.pool, "{why}");
                        self.found_away(why, self.away_lasting());
                        // Reads waiting on this lane stop waiting, as for
                        // a failed write; the flush's outcome sets it again.
                        self.progress[lane].send_modify(|p| p.outage = true);
                        flush.await
                    }
                }
            };
            drop(ops);
            let took = started.elapsed();
            self.flush_time(took);
            self.observe.flush_duration.record(took.as_secs_f64());
            self.observe.batch_size.record(batch.len() as f64);
            self.observe.flushes.add(1);
            self.observe.calls.add(outcome.calls);
            self.largest
                .fetch_max(batch.len() as u64, Ordering::Relaxed);
            let mut keep = Vec::new();
            let mut left = 0;
            let mut flushed = 0;
            let mut landed_on_disk = Vec::new();
            // The batch's room goes back in one release, not one per write
            // (each release takes the semaphore's lock).
            let mut room: Option<OwnedSemaphorePermit> = None;
            for (mut entry, result) in batch.drain(..).zip(outcome.results) {
                match result {
                    Some(r) => {
                        flushed += u64::from(r.is_ok());
                        if entry.on_disk {
                            landed_on_disk.push(entry.key);
                        }
                        left += 1;
                        entry.finish(&self.pool, r);
                        let Entry { room: permit, .. } = entry;
                        match &mut room {
                            // A replayed write holds room of its own
                            // semaphore: given back on its own.
                            Some(all) if Arc::ptr_eq(all.semaphore(), permit.semaphore()) => {
                                all.merge(permit)
                            }
                            Some(_) => drop(permit),
                            None => room = Some(permit),
                        }
                    }
                    None => keep.push(entry),
                }
            }
            self.observe.flushed.add(flushed);
            self.unbuffered(ops_len - keep.len());
            drop(room);
            if let Some(disk) = &self.disk {
                if let Err(e) = disk.remove(landed_on_disk).await {
                    tracing::error!(pool = %self.pool, error = %e, "disk buffer: landed writes not removed; they will run again after a restart");
                }
            }
            match outcome.stopped {
                None => {
                    if backoff != self.policy.first_backoff {
                        tracing::info!(pool = %self.pool, "writes land again; buffer draining");
                    }
                    self.lane(lane).outage = false;
                    self.left_lane(lane, left, false);
                    if self.is_away.load(Ordering::Relaxed) {
                        self.is_away.store(false, Ordering::Relaxed);
                        *self.away.lock().unwrap_or_else(|p| p.into_inner()) = None;
                        self.observe.away.set(0.0);
                    }
                    backoff = self.policy.first_backoff;
                }
                Some(e) => {
                    self.observe.retries.add(1);
                    if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) {
                        self.found_away(e.to_string(), self.away_lasting());
                    }
                    let first = backoff == self.policy.first_backoff;
                    if let Some(disk) = &self.disk {
                        self.persist(disk, &mut keep).await;
                    }
                    {
                        let mut st = self.lane(lane);
                        st.outage = true;
                        for mut entry in keep.into_iter().rev() {
                            entry.op.mark_again();
                            entry.queued();
                            st.waiting.push_front(entry);
                        }
                    }
                    self.left_lane(lane, left, true);
                    if first {
                        tracing::warn!(pool = %self.pool, error = %e, buffered = self.len(), "write failed; kept in the buffer for retry");
                    } else {
                        tracing::debug!(pool = %self.pool, error = %e, wait = ?backoff, "retry failed; waiting");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.policy.max_backoff);
                }
            }
        }
    }
}

/// An order key's hash: it picks the key's lane, and names the key in the
/// lane's [`LaneState::latest`] (two keys of one hash only make a read wait
/// for the other's writes too).
fn key_hash(key: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A lane's progress, for reads waiting on earlier writes.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    left: u64,
    outage: bool,
}

fn direct(r: BackendResult<()>) -> Submitted {
    match r {
        Ok(()) => Submitted::Done,
        Err(e) => Submitted::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryBackend, QoS};

    fn retained(topic: &str, payload: &str) -> WriteOp {
        WriteOp::StoreRetained(
            vec![Message::new("c", topic, QoS::AtLeastOnce, payload.to_owned()).retained(true)],
            WriteOptions::default(),
        )
    }

    #[tokio::test]
    async fn a_batch_keeps_a_topics_retained_store_and_delete_in_order() {
        let b = MemoryBackend::new();
        let mut ops = [
            retained("t", "1"),
            WriteOp::DeleteRetained(vec!["t".into()]),
            retained("t", "2"),
            retained("u", "3"),
            WriteOp::DeleteRetained(vec!["u".into()]),
        ];
        let mut refs: Vec<&mut WriteOp> = ops.iter_mut().collect();
        let out = run_batch(&b, &mut refs).await;
        assert!(out.results.iter().all(|r| matches!(r, Some(Ok(())))));
        let kept = b.lookup_retained("#").await.expect("lookup");
        let payloads: Vec<_> = kept
            .iter()
            .map(|m| (m.topic.as_str(), &m.payload[..]))
            .collect();
        assert_eq!(
            payloads,
            vec![("t", &b"2"[..])],
            "u deleted, t holds its last"
        );
        // Cut at each conflicting switch: store | delete | store+store | delete.
        assert_eq!(out.calls, 4);
    }

    #[tokio::test]
    async fn messages_of_one_group_merge_into_one_call() {
        let b = MemoryBackend::new();
        let mut ops: Vec<WriteOp> = (0..10)
            .map(|i| {
                WriteOp::Store(
                    vec![Message::new(
                        "c",
                        format!("t/{}", i % 3),
                        QoS::AtLeastOnce,
                        vec![i],
                    )],
                    WriteOptions::default(),
                )
            })
            .collect();
        let mut refs: Vec<&mut WriteOp> = ops.iter_mut().collect();
        let out = run_batch(&b, &mut refs).await;
        assert_eq!(out.calls, 1);
        assert!(out.stopped.is_none());
        // Merged without copies: the messages moved into the call, which
        // landed, so the writes have none left. (After a failed call each
        // write gets its own back, for the retry: `write_path.rs`'s
        // outage tests store every message after one.)
        for (i, op) in (0u8..).zip(&ops) {
            let WriteOp::Store(m, _) = op else {
                panic!("write {i} changed kind");
            };
            assert!(m.is_empty(), "write {i}");
        }
        let stored = b
            .fetch_messages(&crate::FetchRequest::new("x", "t/#", OfflineMode::Queue))
            .await
            .expect("fetch");
        assert_eq!(stored.len(), 10);
    }
}
