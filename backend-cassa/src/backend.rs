//! [`CassaBackend`]: the [`Backend`] trait on one cdrs-tokio session.
//!
//! Messages live in one partition per topic, in store order; the writes of
//! one topic go out as unlogged single-partition batches (kept under
//! Cassandra's batch size limit), the rest concurrently. Wildcard lookups
//! read the topic index by first level, so a filter with a literal first
//! level reads one partition.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use backend_core::backend::{
    apply_limits, batches, Ack, Backend, BackendInfo, BackendResult, ClientStatus, FetchRequest,
    WriteOptions,
};
use backend_core::config::PoolConfig;
use backend_core::hook::ClientInfo;
use backend_core::message::last_of_each;
use backend_core::topic::{matches, FilterScope};
use backend_core::value::Row;
use backend_core::{
    Bytes, CommonError, Config, Message, OfflineMode, QoS, Statement, Subscription, Timestamp,
};
use cdrs_tokio::types::blob::Blob;
use cdrs_tokio::types::IntoRustByIndex;
use futures::future::try_join_all;

use crate::config::CassaConfig;
use crate::convert;
use crate::driver::{Cql, CqlRow, CqlValue};
use crate::error::CassaError;
use crate::schema;
use crate::sequence;
use crate::statements as cql;

mod storage;

/// The largest unlogged batch, in bytes of values: Cassandra refuses a
/// batch over `batch_size_fail_threshold` (50 KiB by default).
const BATCH_BYTES: usize = 32 * 1024;

/// Statements per batch, whatever their size.
const BATCH_STATEMENTS: usize = 100;

/// Look-ups of earlier rows in flight at once when a write is stored
/// `again` (a retry, a replay).
const AGAIN_LOOKUPS: usize = 64;

/// Topics this process has put in an index lately: their index row is not
/// written again (it never changes). Bounded; cleared when full.
const INDEXED_CACHE: usize = 100_000;

/// The Cassandra backend of one pool. Clones share the session.
///
/// ```no_run
/// use backend_core::{Backend, Config, Message, QoS};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse(r#"
/// backend.ecql.pool1.nodes = 127.0.0.1:9042
/// backend.ecql.pool1.username = cassandra
/// backend.ecql.pool1.password = cassandra
/// backend.ecql.pool1.keyspace = mqtt
/// backend.ecql.pool1.create_tables = true
/// "#)?;
/// let cassa = backend_cassa::CassaBackend::connect(&config.pools()["pool1"], &config).await?;
/// cassa.store_messages(&[Message::new("c1", "a/b", QoS::AtLeastOnce, "hi")], Default::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CassaBackend {
    inner: Arc<Inner>,
}

struct Inner {
    cql: Cql,
    config: CassaConfig,
    indexed: Mutex<HashSet<(bool, String)>>,
}

impl std::fmt::Debug for CassaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The settings' own Debug hides the password.
        f.debug_struct("CassaBackend")
            .field("server", &self.inner.cql.label())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

backend_core::backend_connect!(CassaBackend, crate::KIND, CassaError);

/// The index partition of a topic: its first level and a `/` (never
/// empty, as a partition key must not be).
fn root(topic: &str) -> String {
    let first = topic.split('/').next().unwrap_or_default();
    format!("{first}/")
}

fn text(v: &str) -> CqlValue {
    CqlValue::from(v.to_owned())
}

/// What an absent optional column binds to.
#[derive(Clone, Copy)]
pub(crate) enum Absent {
    /// Left unset: for a new row. A bound null is a tombstone, which
    /// Cassandra writes, keeps and reads past until compaction drops it.
    Unset,
    /// Null: for a row written over, whose old value must go.
    Null,
}

impl Absent {
    fn value(self) -> CqlValue {
        match self {
            Absent::Unset => CqlValue::NotSet,
            Absent::Null => CqlValue::Null,
        }
    }
}

fn opt_text(v: Option<&str>, absent: Absent) -> CqlValue {
    v.map_or_else(|| absent.value(), text)
}

fn qos_value(q: QoS) -> CqlValue {
    CqlValue::from(i32::from(q.as_u8()))
}

/// The bytes a statement's values add to a batch.
fn message_bytes(m: &Message) -> usize {
    m.payload.len() + m.topic.len() + m.id.len() + m.sender.len() + 64
}

fn data(context: &str, problem: impl Into<String>) -> CassaError {
    CommonError::data(context, problem).into()
}

fn col<T>(row: &CqlRow, i: usize, context: &str) -> Result<Option<T>, CassaError>
where
    CqlRow: IntoRustByIndex<T>,
{
    row.get_by_index(i)
        .map_err(|e| data(context, format!("column {i}: {e}")))
}

fn required<T>(row: &CqlRow, i: usize, context: &str) -> Result<T, CassaError>
where
    CqlRow: IntoRustByIndex<T>,
{
    col(row, i, context)?.ok_or_else(|| data(context, format!("column {i} is null")))
}

fn qos_of(n: i32, context: &str) -> Result<QoS, CassaError> {
    QoS::try_from(i64::from(n)).map_err(|e| data(context, e.to_string()))
}

/// A row of `sub`: `topic, qos`.
fn subscription(row: &CqlRow) -> Result<Subscription, CassaError> {
    let filter: String = required(row, 0, "sub")?;
    Ok(Subscription::new(
        filter,
        qos_of(required(row, 1, "sub")?, "sub")?,
    ))
}

/// A message row of `msg` (`seq, msgid, sender, username, qos, retain,
/// payload, arrived`), with its seq.
pub(crate) fn message_row(topic: &str, row: &CqlRow) -> Result<(i64, Message), CassaError> {
    const CTX: &str = "msg";
    let seq: i64 = required(row, 0, CTX)?;
    let mut m = Message::new(
        required::<String>(row, 2, CTX)?,
        topic,
        qos_of(required(row, 4, CTX)?, CTX)?,
        Bytes::from(
            col::<Blob>(row, 6, CTX)?
                .map(Blob::into_vec)
                .unwrap_or_default(),
        ),
    );
    m.id = required(row, 1, CTX)?;
    m.username = col(row, 3, CTX)?;
    m.retain = col::<i32>(row, 5, CTX)?.unwrap_or(0) != 0;
    m.timestamp = Timestamp::from_millis(col::<i64>(row, 7, CTX)?.unwrap_or(0));
    m.properties = properties(row, 8, CTX, topic)?;
    Ok((seq, m))
}

/// A row of `retain` (`topic, msgid, sender, username, qos, payload,
/// arrived, props`).
fn retained_row(row: &CqlRow) -> Result<Message, CassaError> {
    const CTX: &str = "retain";
    let mut m = Message::new(
        required::<String>(row, 2, CTX)?,
        required::<String>(row, 0, CTX)?,
        qos_of(required(row, 4, CTX)?, CTX)?,
        Bytes::from(
            col::<Blob>(row, 5, CTX)?
                .map(Blob::into_vec)
                .unwrap_or_default(),
        ),
    );
    m.id = required(row, 1, CTX)?;
    m.username = col(row, 3, CTX)?;
    m.retain = true;
    m.timestamp = Timestamp::from_millis(col::<i64>(row, 6, CTX)?.unwrap_or(0));
    m.properties = properties(row, 7, CTX, &m.topic)?;
    Ok(m)
}

/// The `props` column: the message's MQTT 5 properties (NULL: none).
fn properties(
    row: &CqlRow,
    i: usize,
    ctx: &str,
    topic: &str,
) -> Result<backend_core::Properties, CassaError> {
    let stored = col::<Blob>(row, i, ctx)?
        .map(Blob::into_vec)
        .unwrap_or_default();
    Ok(Message::properties_from(&stored, topic))
}

/// A message's properties as the `props` column holds them.
pub(crate) fn props_value(m: &Message, absent: Absent) -> CqlValue {
    match m.stored_properties() {
        Some(p) => CqlValue::from(Blob::new(p)),
        None => absent.value(),
    }
}

impl CassaBackend {
    /// Connects the pool `pool` of `config` (`backend.ecql.<pool>.*`):
    /// opens the session within the connect timeout, creates the tables if
    /// `create_tables` is on, and checks the schema (a missing table is an
    /// error naming it).
    pub async fn connect(pool: &PoolConfig, config: &Config) -> Result<CassaBackend, CassaError> {
        CommonError::check_kind(crate::KIND, config.kind())?;
        Self::connect_with(CassaConfig::from_pool(pool)?).await
    }

    /// Connects with settings built in code.
    pub async fn connect_with(config: CassaConfig) -> Result<CassaBackend, CassaError> {
        let session = Cql::connect(&config).await?;
        let nodes: Vec<String> = config.nodes.iter().map(ToString::to_string).collect();
        let target = schema::target(
            &config.pool_name,
            &nodes.join(","),
            &config.keyspace,
            session.label(),
        );
        schema::prepare(&session, &config.keyspace, config.create_tables, &target).await?;
        tracing::info!(
            pool = %config.pool_name,
            server = session.label(),
            size = config.size,
            consistency = ?config.consistency,
            "cassa backend connected"
        );
        Ok(CassaBackend {
            inner: Arc::new(Inner {
                cql: session,
                config,
                indexed: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The settings this backend was built with.
    pub fn config(&self) -> &CassaConfig {
        &self.inner.config
    }

    fn cql(&self) -> &Cql {
        &self.inner.cql
    }

    /// Writes the index rows of `topics` not indexed lately.
    async fn index(&self, retained: bool, topics: &[&str]) -> Result<(), CassaError> {
        let fresh: Vec<&str> = {
            let cache = self.inner.indexed.lock().unwrap_or_else(|p| p.into_inner());
            let mut seen = HashSet::new();
            topics
                .iter()
                .copied()
                .filter(|t| seen.insert(*t) && !cache.contains(&(retained, (*t).to_owned())))
                .collect()
        };
        if fresh.is_empty() {
            return Ok(());
        }
        let statement = if retained {
            cql::INDEX_RETAINED_TOPIC
        } else {
            cql::INDEX_MESSAGE_TOPIC
        };
        try_join_all(fresh.iter().map(|t| {
            self.cql()
                .exec("index", statement, vec![text(&root(t)), text(t)])
        }))
        .await?;
        let mut cache = self.inner.indexed.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() + fresh.len() > INDEXED_CACHE {
            cache.clear();
        }
        cache.extend(fresh.into_iter().map(|t| (retained, t.to_owned())));
        Ok(())
    }

    /// Forgets that a retained topic is indexed (its row was deleted).
    fn unindexed(&self, topic: &str) {
        self.inner
            .indexed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(true, topic.to_owned()));
    }

    /// The topics of an index that a filter can match.
    async fn topics(&self, retained: bool, filter: &str) -> Result<Vec<String>, CassaError> {
        let (roots_query, topics_query) = if retained {
            (cql::RETAINED_ROOTS, cql::RETAINED_TOPICS)
        } else {
            (cql::MESSAGE_ROOTS, cql::MESSAGE_TOPICS)
        };
        let (wildcard, prefix) = match FilterScope::of(filter) {
            FilterScope::Nothing => return Ok(Vec::new()),
            FilterScope::Exact(t) => return Ok(vec![t.to_owned()]),
            FilterScope::Wildcard { filter, prefix } => (filter, prefix),
        };
        // A literal first level: one partition. Otherwise every root.
        let roots: Vec<String> = match prefix.split_once('/') {
            Some((first, _)) => vec![format!("{first}/")],
            None if prefix.is_empty() => {
                let (_, rows) = self.cql().exec("lookup", roots_query, Vec::new()).await?;
                rows.iter()
                    .map(|r| required::<String>(r, 0, "topic index"))
                    .collect::<Result<_, _>>()?
            }
            // `a/#` has the literal prefix `a`: the whole first level.
            None => vec![format!("{prefix}/")],
        };
        let per_root = try_join_all(
            roots
                .iter()
                .map(|r| self.cql().exec("lookup", topics_query, vec![text(r)])),
        )
        .await?;
        let mut topics = Vec::new();
        for (_, rows) in per_root {
            for r in &rows {
                let t: String = required(r, 0, "topic index")?;
                if matches(wildcard, &t) {
                    topics.push(t);
                }
            }
        }
        Ok(topics)
    }

    /// The seq its `msg_seq` row gives a message, if it has one.
    async fn indexed_seq(
        &self,
        operation: &'static str,
        topic: &str,
        id: &str,
    ) -> Result<Option<i64>, CassaError> {
        let (_, rows) = self
            .cql()
            .exec(operation, cql::MESSAGE_SEQ, vec![text(topic), text(id)])
            .await?;
        match rows.first() {
            Some(r) => col(r, 0, "msg_seq"),
            None => Ok(None),
        }
    }

    /// The seq of a stored message, if it is still stored.
    async fn seq_of(&self, topic: &str, id: &str) -> Result<Option<i64>, CassaError> {
        if let Some(seq) = self.indexed_seq("ack_messages", topic, id).await? {
            return Ok(Some(seq));
        }
        // Its lookup row may still be on its way (a queue read does not
        // wait for writes in flight): look in the topic's own partition.
        let (_, rows) = self
            .cql()
            .exec(
                "ack_messages",
                cql::MESSAGE_SEQ_IN_TOPIC,
                vec![text(topic), text(id)],
            )
            .await?;
        match rows.first() {
            Some(r) => col(r, 0, "msg"),
            None => Ok(None),
        }
    }

    /// Pubsub: where the client's subscription to `filter` starts; `None`
    /// on its first fetch, which records it.
    async fn start(&self, client: &str, filter: &str) -> Result<Option<i64>, CassaError> {
        let (_, rows) = self
            .cql()
            .exec(
                "fetch_messages",
                cql::START,
                vec![text(client), text(filter)],
            )
            .await?;
        if let Some(r) = rows.first() {
            return col(r, 0, "sub_start");
        }
        // What is stored from here on comes after the start.
        let at = sequence::next();
        self.cql()
            .exec(
                "fetch_messages",
                cql::SET_START,
                vec![text(client), text(filter), CqlValue::from(at)],
            )
            .await?;
        Ok(None)
    }

    /// Stores one topic's messages, each with its store sequence number.
    /// Stores one topic's messages at their seqs. With `again` (some may
    /// be stored already: a retry, a replay) each id's earlier row is looked
    /// up first and removed, so the message is kept once, at its new place.
    async fn store_topic(
        &self,
        topic: &str,
        msgs: &[(&Message, i64)],
        again: bool,
    ) -> Result<(), CassaError> {
        let mut rows: Vec<(&str, Vec<CqlValue>, usize)> = Vec::with_capacity(msgs.len());
        if again {
            // A bounded number of look-ups at a time: a flush may carry a
            // thousand messages of one topic.
            let mut earlier = Vec::with_capacity(msgs.len());
            for part in msgs.chunks(AGAIN_LOOKUPS) {
                let found = try_join_all(
                    part.iter()
                        .map(|(m, _)| self.indexed_seq("store_messages", topic, &m.id)),
                )
                .await?;
                earlier.extend(found);
            }
            for ((m, seq), old) in msgs.iter().zip(earlier) {
                if let Some(old) = old.filter(|old| old != seq) {
                    rows.push((
                        cql::DELETE_MESSAGE,
                        vec![text(topic), CqlValue::from(old), text(&m.id)],
                        topic.len() + m.id.len() + 16,
                    ));
                }
            }
        }
        let mut seqs: Vec<(&str, Vec<CqlValue>, usize)> = Vec::with_capacity(msgs.len());
        for (m, seq) in msgs {
            rows.push((
                cql::STORE_MESSAGE,
                vec![
                    text(topic),
                    CqlValue::from(*seq),
                    text(&m.id),
                    text(&m.sender),
                    opt_text(m.username.as_deref(), Absent::Unset),
                    qos_value(m.qos),
                    CqlValue::from(i32::from(m.retain)),
                    CqlValue::from(Blob::new(m.payload.to_vec())),
                    CqlValue::from(m.timestamp.as_millis()),
                    props_value(m, Absent::Unset),
                ],
                message_bytes(m),
            ));
            seqs.push((
                cql::STORE_MESSAGE_SEQ,
                vec![text(topic), text(&m.id), CqlValue::from(*seq)],
                topic.len() + m.id.len() + 16,
            ));
        }
        // The index first, then the rows: a message row never lands without
        // its `msg_seq` row, so a store that runs again (`again`) finds, and
        // deletes, every row an earlier attempt left. Sent together, the
        // rows of an attempt cut short by an outage could land without
        // their index, and the retry would store those messages twice. No
        // read passes a write still in flight (see `sequence`), so no ack
        // looks a message up before both landed.
        self.batches("store_messages", seqs).await?;
        self.batches("store_messages", rows).await
    }

    /// Runs statements as unlogged batches under the size limits, in order.
    async fn batches(
        &self,
        operation: &'static str,
        statements: Vec<(&str, Vec<CqlValue>, usize)>,
    ) -> Result<(), CassaError> {
        let runs = batches(&statements, BATCH_BYTES, BATCH_STATEMENTS, |s| s.2);
        let mut statements = statements.into_iter();
        for run in runs {
            let batch = statements.by_ref().take(run.len());
            let batch = batch
                .map(|(statement, values, _)| (statement, values))
                .collect();
            self.cql().batch(operation, batch).await?;
        }
        Ok(())
    }

    /// Runs raw CQL: each value is bound by its marker's type, never
    /// spliced; rows come back as values.
    pub async fn execute_cql(
        &self,
        text: &str,
        params: &[backend_core::Value],
    ) -> Result<Vec<Row>, CassaError> {
        let prepared = self.cql().prepare("execute", text).await?;
        if prepared.params.len() != params.len() {
            return Err(CommonError::Bind {
                statement: text.to_owned(),
                parameter: (prepared.params.len().min(params.len()) + 1).to_string(),
                problem: format!(
                    "the statement has {} marker(s) but {} value(s) were given",
                    prepared.params.len(),
                    params.len()
                ),
            }
            .into());
        }
        let values = params
            .iter()
            .zip(&prepared.params)
            .enumerate()
            .map(|(i, (v, ty))| {
                convert::bind(v, *ty).map_err(|problem| {
                    CassaError::from(CommonError::Bind {
                        statement: text.to_owned(),
                        parameter: format!("{} ({ty:?})", i + 1),
                        problem,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (types, rows) = self
            .cql()
            .exec_prepared("execute", &prepared, values)
            .await?;
        rows.iter()
            .map(|row| {
                types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| convert::read(row, i, *ty).map_err(|p| data(text, p)))
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_never_empty() {
        for (topic, partition) in [
            ("a/b/c", "a/"),
            ("a", "a/"),
            ("/a", "/"),
            ("$SYS/x", "$SYS/"),
        ] {
            assert_eq!(root(topic), partition, "{topic}");
        }
    }
}
