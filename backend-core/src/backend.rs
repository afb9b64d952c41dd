//! The [`Backend`] trait: the storage operations behind the built-in
//! functions, and raw statements. A backend does I/O only; choosing rules,
//! checking QoS and retain flags, rendering templates and applying limits
//! is the [`crate::Engine`]'s work.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{OfflineMode, PayloadFormat};
use crate::hook::ClientInfo;
use crate::message::{Message, Subscription, Timestamp};
use crate::template::Statement;
use crate::value::Row;

/// A client's recorded online state (`mqtt_client`, `mqtt:client:<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStatus {
    /// The client id.
    pub client_id: String,
    /// Whether it is online (state 1) or offline (state 0).
    pub online: bool,
    /// The node it connected to last.
    pub node: String,
    /// When it connected last.
    pub online_at: Option<Timestamp>,
    /// When it disconnected last; `None` while online.
    pub offline_at: Option<Timestamp>,
}

impl ClientStatus {
    /// A client's status read back from a row of `state, node, online_at,
    /// offline_at` (the SQL backends' `mqtt_client`): online when the
    /// state is 1.
    pub fn from_row<R: crate::message::Columns>(
        client_id: &str,
        row: &mut R,
    ) -> Result<Self, R::Error> {
        Ok(ClientStatus {
            client_id: client_id.to_owned(),
            online: row.int(0)? == Some(1),
            node: row.text(1)?,
            online_at: row.time(2)?,
            offline_at: row.time(3)?,
        })
    }
}

/// A request for the offline messages of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The subscribing client.
    pub client_id: String,
    /// The filter subscribed to (without `$share/<group>/` or `$queue/`).
    pub filter: String,
    /// Queue (shared, deleted on ack) or pubsub (a read position per client).
    pub mode: OfflineMode,
    /// At most this many, the newest; `None` for no limit.
    pub max_count: Option<usize>,
    /// Only messages stored at or after this time; `None` for no limit.
    pub since: Option<Timestamp>,
    /// Of the messages the limits above select, only the oldest this
    /// many; `None` for all. A backlog is read page by page with it (see
    /// [`crate::delivery`]): acking a page moves the next one up, so a
    /// backend returns fewer only when no more are stored.
    pub page: Option<usize>,
}

impl FetchRequest {
    /// A request for every stored message of `client_id`'s subscription to
    /// `filter`: no count, time or page limit.
    pub fn new(client_id: impl Into<String>, filter: impl Into<String>, mode: OfflineMode) -> Self {
        FetchRequest {
            client_id: client_id.into(),
            filter: filter.into(),
            mode,
            max_count: None,
            since: None,
            page: None,
        }
    }

    /// Whether a backend reading in store order can stop after `page`
    /// rows: a page is asked for and no `max_count` (which keeps the
    /// newest) comes first.
    pub fn oldest_first_limit(&self) -> Option<usize> {
        match (self.page, self.max_count) {
            (Some(page), None) => Some(page),
            _ => None,
        }
    }
}

/// An acknowledgement of one message by one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The client that acknowledged.
    pub client_id: String,
    /// The message's topic.
    pub topic: String,
    /// The message id, as the backend returned it.
    pub message_id: String,
}

/// Options for writing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// The rule's payload format, for a backend whose
    /// [`Capabilities::payload_format`] is on (MongoDB); others ignore it.
    pub payload_format: Option<PayloadFormat>,
    /// Some of these messages may be stored already: the write path's
    /// retry of a batch whose earlier attempt failed (it may have landed
    /// in part), or the disk buffer's replay after a crash. A backend whose
    /// store is not idempotent by message id by itself (Cassandra, whose
    /// rows are keyed by their place in the topic) looks first; PostgreSQL
    /// goes straight to its upsert instead of trying a plain insert first;
    /// the others ignore it.
    pub again: bool,
}

/// What a backend offers beyond the operations every backend has, so that
/// brokers and the conformance suite ask instead of naming backends.
///
/// ```
/// use backend_core::backend::Capabilities;
/// let c = Capabilities::NONE.with_raw_statements();
/// assert!(c.raw_statements && !c.channel);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Runs raw statements (`sql`, `cql` or `commands` actions) through
    /// [`Backend::execute`]; without it `execute` answers
    /// [`ErrorKind::Unsupported`].
    pub raw_statements: bool,
    /// Stores each payload in the format [`WriteOptions::payload_format`]
    /// asks for.
    pub payload_format: bool,
    /// Takes subscribe and unsubscribe commands from a channel of its
    /// database (Redis's `channel`).
    pub channel: bool,
    /// Answers the admin operations ([`Backend::client_status`],
    /// [`Backend::store_subscriptions`], [`Backend::delete_subscriptions`]),
    /// which the engine never calls: tools and the conformance suite do.
    /// Without it they answer [`ErrorKind::Unsupported`].
    pub admin: bool,
    /// Removes messages by age ([`Backend::remove_messages_before`]), so the
    /// engine's sweeper bounds its storage. Without it the engine says at
    /// start that stored messages stay until acknowledged.
    pub sweep: bool,
}

impl Capabilities {
    /// Nothing beyond the common operations.
    pub const NONE: Capabilities = Capabilities {
        raw_statements: false,
        payload_format: false,
        channel: false,
        admin: false,
        sweep: false,
    };

    /// With raw statements.
    pub const fn with_raw_statements(mut self) -> Self {
        self.raw_statements = true;
        self
    }

    /// With payload formats.
    pub const fn with_payload_format(mut self) -> Self {
        self.payload_format = true;
        self
    }

    /// With a subscription channel.
    pub const fn with_channel(mut self) -> Self {
        self.channel = true;
        self
    }

    /// With the admin operations.
    pub const fn with_admin(mut self) -> Self {
        self.admin = true;
        self
    }

    /// With removal by age.
    pub const fn with_sweep(mut self) -> Self {
        self.sweep = true;
        self
    }
}

/// What a backend is, from [`Backend::info`]: a short name for logs and
/// what it offers beyond the common operations.
///
/// ```
/// use backend_core::backend::{BackendInfo, Capabilities};
/// let info = BackendInfo::new("mysql", Capabilities::NONE.with_raw_statements());
/// assert_eq!(info.name, "mysql");
/// assert!(info.capabilities.raw_statements);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The name (`redis`, `pgsql`, `memory`).
    pub name: &'static str,
    /// What it offers beyond the common operations.
    pub capabilities: Capabilities,
}

impl BackendInfo {
    /// A backend called `name` with these capabilities.
    pub const fn new(name: &'static str, capabilities: Capabilities) -> Self {
        BackendInfo { name, capabilities }
    }
}

/// What kind of failure a backend reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server could not be reached or the connection broke.
    Connection,
    /// The server did not answer in time.
    Timeout,
    /// The server rejected a statement (syntax, constraint, missing table).
    Query,
    /// The server aborted the operation because of a concurrent one
    /// (deadlock, serialization failure); running it again can succeed.
    Conflict,
    /// Data read back was not what the schema promises.
    Data,
    /// The backend's own configuration is wrong.
    Config,
    /// The backend does not support the operation.
    Unsupported,
}

impl ErrorKind {
    /// Whether the same call may succeed if retried later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Conflict
        )
    }
}

/// An error from a backend operation. Backend crates keep their own
/// `thiserror` enum and convert into this, keeping it as the source.
///
/// ```
/// use backend_core::{BackendError, ErrorKind};
/// let e = BackendError::new(ErrorKind::Timeout, "fetch timed out after 5s");
/// assert!(e.is_retryable());
/// assert_eq!(e.to_string(), "timeout: fetch timed out after 5s");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", kind_name(*.kind))]
pub struct BackendError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// A failure kept for a snapshot ([`crate::health::PoolHealth`],
/// [`crate::sweep::SweepMetrics`]): its kind and message, cloneable and
/// comparable, unlike the [`BackendError`] it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind_name(*.kind))]
pub struct FailureRecord {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The error's message.
    pub message: String,
}

impl From<&BackendError> for FailureRecord {
    fn from(e: &BackendError) -> Self {
        FailureRecord {
            kind: e.kind,
            message: e.message.clone(),
        }
    }
}

fn kind_name(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::Connection => "connection",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Query => "query",
        ErrorKind::Conflict => "conflict",
        ErrorKind::Data => "data",
        ErrorKind::Config => "config",
        ErrorKind::Unsupported => "unsupported",
    }
}

impl BackendError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl fmt::Display) -> Self {
        BackendError {
            kind,
            message: message.to_string(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`; the message is the source's.
    pub fn from_source(
        kind: ErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BackendError {
            kind,
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying may help.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// The result of backend operations.
pub type BackendResult<T> = Result<T, BackendError>;

/// Storage for one pool. Every backend gives every operation the same
/// observable behaviour; `backend_core::testkit` checks it.
///
/// Write operations take slices so a backend can write a batch in one round
/// trip (pipeline, multi-row insert, `insert_many`, CQL batch). An empty
/// slice is nothing to do: it succeeds and changes nothing.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// What the backend is: its name and its [`Capabilities`]. The one
    /// method a backend writes about itself; [`Backend::name`] and
    /// [`Backend::capabilities`] read it.
    fn info(&self) -> BackendInfo;

    /// A short name for logs (`redis`, `pgsql`, `memory`).
    fn name(&self) -> &'static str {
        self.info().name
    }

    /// What it offers beyond the common operations.
    fn capabilities(&self) -> Capabilities {
        self.info().capabilities
    }

    /// `on_client_connected`: state 1, `online_at` = `at`, `offline_at`
    /// cleared, node recorded.
    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()>;

    /// `on_client_disconnected`: state 0, `offline_at` = `at`.
    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()>;

    /// The recorded state of a client, if any. An admin operation (see
    /// [`Capabilities::admin`]).
    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        let _ = client_id;
        Err(self.unsupported("client_status", "admin"))
    }

    /// `on_subscribe_lookup`: the client's stored subscriptions.
    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>>;

    /// Stores subscriptions for a client (replacing the QoS of existing
    /// filters): how proxy subscriptions get into the database from code.
    /// An admin operation (see [`Capabilities::admin`]).
    async fn store_subscriptions(
        &self,
        client_id: &str,
        subscriptions: &[Subscription],
    ) -> BackendResult<()> {
        let _ = (client_id, subscriptions);
        Err(self.unsupported("store_subscriptions", "admin"))
    }

    /// Removes stored subscriptions of a client. An admin operation (see
    /// [`Capabilities::admin`]).
    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        let _ = (client_id, filters);
        Err(self.unsupported("delete_subscriptions", "admin"))
    }

    /// `on_message_publish`: stores messages for offline subscribers, each
    /// after every message stored before it on its topic.
    async fn store_messages(
        &self,
        messages: &[Message],
        options: WriteOptions,
    ) -> BackendResult<()>;

    /// `on_message_fetch*`: the offline messages of one subscription,
    /// oldest first (see [`FetchRequest`] and [`crate::contract`]).
    /// In pubsub mode the first fetch of a client and filter records where
    /// the subscription starts and returns nothing.
    async fn fetch_messages(&self, request: &FetchRequest) -> BackendResult<Vec<Message>>;

    /// `on_message_acked*`: queue mode deletes each message; pubsub mode
    /// marks it and every earlier message on its topic read for that client.
    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()>;

    /// `on_message_retain`: each message replaces its topic's retained one.
    async fn store_retained(
        &self,
        messages: &[Message],
        options: WriteOptions,
    ) -> BackendResult<()>;

    /// `on_retain_delete`: removes the retained messages of these topics.
    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()>;

    /// `on_retain_lookup`: every retained message whose topic matches the
    /// filter, wildcards included.
    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>>;

    /// Runs one rendered raw statement; returns its rows (for Redis, the
    /// reply's elements), empty for statements that return none. Only for
    /// a backend with [`Capabilities::raw_statements`] (its kind then
    /// declares a statement language, so the configuration has no raw
    /// statements for any other).
    async fn execute(&self, statement: &Statement) -> BackendResult<Vec<Row>> {
        let _ = statement;
        Err(self.unsupported("execute", "raw_statements"))
    }

    /// Checks the server answers (`PING`, `SELECT 1`, the `ping` command):
    /// what [`crate::Engine::check_health`] asks every pool. Required: a
    /// backend that cannot tell is never reported healthy by mistake.
    async fn ping(&self) -> BackendResult<()>;

    /// Removes stored offline messages that arrived before `before` (queue
    /// and pubsub alike): no fetch with a `time_range` would return them.
    /// Returns how many were removed. Removes in bounded steps, so a large
    /// backlog never becomes one huge transaction. The engine's sweeper
    /// ([`crate::Engine::sweep`]) calls it on a backend with
    /// [`Capabilities::sweep`].
    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        let _ = before;
        Err(self.unsupported("remove_messages_before", "sweep"))
    }

    /// The error of an operation the backend does not offer: it names the
    /// capability that would offer it.
    fn unsupported(&self, operation: &str, capability: &str) -> BackendError {
        BackendError::new(
            ErrorKind::Unsupported,
            format!(
                "{}: {operation} is not supported (no `{capability}` capability)",
                self.name()
            ),
        )
    }
}

/// Splits `items` into consecutive batches of at most `max_items` items
/// and at most `max_bytes` by `size` (a single item larger than that is a
/// batch of its own): how a backend keeps each statement or batch within
/// its server's limits. The batches cover `items` in order; none is
/// empty, and no items give no batches.
///
/// ```
/// use backend_core::backend::batches;
/// let sizes = [4, 4, 4, 9, 1];
/// let runs = batches(&sizes, 8, 10, |n| *n);
/// assert_eq!(runs, vec![0..2, 2..3, 3..4, 4..5]);
/// assert_eq!(batches(&sizes, 100, 2, |n| *n), vec![0..2, 2..4, 4..5]);
/// ```
pub fn batches<T>(
    items: &[T],
    max_bytes: usize,
    max_items: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, item) in items.iter().enumerate() {
        let s = size(item);
        if i > start && (bytes.saturating_add(s) > max_bytes || i - start >= max_items) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(s);
    }
    if start < items.len() {
        out.push(start..items.len());
    }
    out
}

/// Applies the fetch limits to messages already sorted oldest first: drops
/// those older than `since`, keeps the newest `max_count`, then the oldest
/// `page` of those. Backends that cannot push a limit into their query
/// use it on what they read.
///
/// ```
/// use backend_core::{backend::apply_limits, FetchRequest, Message, OfflineMode, QoS};
/// let msgs: Vec<Message> = (0..5).map(|i| Message::new("c", "t", QoS::AtLeastOnce, vec![i])).collect();
/// let mut req = FetchRequest::new("c", "t", OfflineMode::Queue);
/// req.max_count = Some(4);
/// req.page = Some(2);
/// let kept = apply_limits(msgs, &req);
/// assert_eq!(kept.iter().map(|m| m.payload[0]).collect::<Vec<_>>(), vec![1, 2]);
/// ```
pub fn apply_limits(mut messages: Vec<Message>, request: &FetchRequest) -> Vec<Message> {
    if let Some(since) = request.since {
        messages.retain(|m| m.timestamp >= since);
    }
    if let Some(max) = request.max_count {
        if messages.len() > max {
            messages.drain(..messages.len() - max);
        }
    }
    if let Some(page) = request.page {
        messages.truncate(page);
    }
    messages
}

/// How long ago `since` is for a `time_range`, from now.
pub fn since_for(time_range: Option<Duration>) -> Option<Timestamp> {
    time_range.map(|d| Timestamp::now().saturating_sub(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Batches cover the items in order, none empty, each within both
        /// limits unless it is a single item larger than `max_bytes`.
        #[test]
        fn batches_cover_in_order_within_limits(
            sizes in proptest::collection::vec(0usize..50, 0..60),
            max_bytes in 1usize..120,
            max_items in 1usize..10,
        ) {
            let runs = batches(&sizes, max_bytes, max_items, |n| *n);
            let mut next = 0;
            for r in &runs {
                prop_assert_eq!(r.start, next);
                prop_assert!(!r.is_empty() && r.len() <= max_items);
                let bytes: usize = sizes[r.clone()].iter().sum();
                prop_assert!(bytes <= max_bytes || r.len() == 1, "{:?}: {}", r, bytes);
                next = r.end;
            }
            prop_assert_eq!(next, sizes.len());
        }
    }
}
