//! [`RedisBackend`]: the [`Backend`] trait on the seed's key layout
//! (see [`crate::keys`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use backend_core::backend::{
    Ack, Backend, BackendError, BackendInfo, BackendResult, ClientStatus, FetchRequest,
    WriteOptions,
};
use backend_core::config::PoolConfig;
use backend_core::template::{message_fields, visit_message_fields};
use backend_core::topic::{has_wildcards, literal_prefix, matches, strip_shared, validate_filter};
use backend_core::{
    Bytes, ClientInfo, Config, Message, OfflineMode, QoS, Row, Statement, Subscription, Timestamp,
    Value,
};
use redis::aio::MultiplexedConnection;
use tracing::warn;

use crate::channel::ChannelListener;
use crate::config::RedisSettings;
use crate::conn::{AnyConn, Connections};
use crate::error::RedisError;
use crate::keys::{self, MESSAGE_FIELDS};
use crate::scripts::{self, ScriptCmd};

mod storage;

/// A Redis backend for one pool; clones share its connections.
///
/// Built-in operations that fail because a connection broke reconnect and
/// run once more (they are idempotent: a message re-stored under its id
/// replaces itself); raw [`Backend::execute`] commands are never re-sent.
///
/// `Debug` shows where it connects, never the password.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Connections>,
    /// With `type = cluster`: the cluster, which every command goes to
    /// (`inner` then serves only the channel listener, on a seed node).
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<crate::cluster::ClusterStore>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("pool", &self.inner.settings.pool)
            .field("target", &self.inner.settings.target())
            .field("pool_size", &self.inner.settings.pool_size)
            .finish()
    }
}

backend_core::backend_connect!(RedisBackend, crate::KIND, RedisError);

impl RedisBackend {
    /// Connects one pool: reads its settings (see [`RedisSettings`]) and
    /// opens its first connection, so a wrong address, password or
    /// database is reported here. The other connections open on first use.
    pub async fn connect(pool: &PoolConfig, config: &Config) -> Result<RedisBackend, RedisError> {
        Self::connect_with(RedisSettings::from_pool(pool, config)?).await
    }

    /// Connects with settings built in code.
    pub async fn connect_with(settings: RedisSettings) -> Result<RedisBackend, RedisError> {
        #[cfg(feature = "cluster")]
        if settings.cluster {
            let store = crate::cluster::ClusterStore::connect(settings.clone()).await?;
            let b = RedisBackend {
                inner: Arc::new(Connections::new(settings)?),
                cluster: Some(Arc::new(store)),
            };
            b.run("connect", false, |mut c| async move {
                redis::cmd("PING").query_async::<()>(&mut c).await
            })
            .await?;
            return Ok(b);
        }
        let conns = Arc::new(Connections::new(settings)?);
        let mut first = conns.lease_slot(0).await?.conn;
        // Connecting sends no command that needs access when the database
        // is 0 and no password is given; a PING shows a missing one.
        redis::cmd("PING")
            .query_async::<()>(&mut first)
            .await
            .map_err(|source| RedisError::Connect {
                pool: conns.settings.pool.clone(),
                target: conns.settings.target(),
                source,
            })?;
        conns.start_watcher();
        Ok(RedisBackend {
            inner: conns,
            #[cfg(feature = "cluster")]
            cluster: None,
        })
    }

    /// The pool's settings.
    pub fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    /// A multiplexed connection of the pool (to the current master, with
    /// Sentinel), for commands of the broker's own. Cheap to clone; do not
    /// `SELECT` another database or enter `MULTI` on it, since other users
    /// share it.
    /// With `type = cluster` there is no such connection: use
    /// [`RedisBackend::cluster_connection`].
    pub async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        #[cfg(feature = "cluster")]
        if self.cluster.is_some() {
            return Err(RedisError::Unsupported {
                pool: self.pool().to_owned(),
                message: "type = cluster: use cluster_connection()".into(),
            });
        }
        Ok(self.inner.lease().await?.conn)
    }

    /// With `type = cluster`: a handle on the pool's cluster connection
    /// (it routes each command to the node of its key and follows moved
    /// slots). `None` for a single server or Sentinel.
    #[cfg(feature = "cluster")]
    pub fn cluster_connection(&self) -> Option<redis::cluster_async::ClusterConnection> {
        self.cluster.as_ref().map(|c| c.connection())
    }

    /// The cluster this pool runs on, if `type = cluster`.
    #[cfg(feature = "cluster")]
    pub(crate) fn cluster(&self) -> Option<&crate::cluster::ClusterStore> {
        self.cluster.as_deref()
    }

    /// Starts listening to the pool's `channel` for SUB/UNSUB commands
    /// (see [`ChannelListener`]). Call inside a tokio runtime.
    pub fn listen(&self) -> Result<ChannelListener, RedisError> {
        let channel = self
            .inner
            .settings
            .channel
            .clone()
            .ok_or_else(|| RedisError::Config {
                pool: self.inner.settings.pool.clone(),
                key: "channel",
                message: "no channel is configured to listen to".into(),
            })?;
        self.listen_to(channel)
    }

    /// Starts listening to `channel` (whatever the configuration says).
    pub fn listen_to(&self, channel: impl Into<String>) -> Result<ChannelListener, RedisError> {
        ChannelListener::spawn(Arc::clone(&self.inner), channel.into())
    }

    /// Rebuilds the two topic indexes this crate adds (`mqtt:msg_topics`,
    /// `mqtt:retain_topics`) from the seed's keys, for data written by
    /// another tool (EMQX itself, scripts): every `mqtt:retain:<topic>` hash
    /// and every `mqtt:msg:<topic>` sorted set gets its index entry. It
    /// walks the key space once with `SCAN` (never `KEYS`), so run it once
    /// when migrating, not routinely; the backend keeps the indexes itself.
    /// Topic sets written with the seed's constant score 1 keep it: their
    /// messages come back in id order.
    pub async fn rebuild_indexes(&self) -> Result<IndexRebuild, RedisError> {
        #[cfg(feature = "cluster")]
        if self.cluster.is_some() {
            return Err(RedisError::Unsupported {
                pool: self.pool().to_owned(),
                message: "rebuild_indexes walks one server's keys; not with type = cluster".into(),
            });
        }
        let mut out = IndexRebuild::default();
        for (pattern, want, index) in [
            ("mqtt:retain:*", "hash", keys::retain_topics()),
            ("mqtt:msg:*", "zset", keys::msg_topics()),
        ] {
            let prefix = &pattern[..pattern.len() - 1];
            let mut cursor: u64 = 0;
            loop {
                let (next, found): (u64, Vec<Vec<u8>>) = self
                    .run("rebuild_indexes", true, |mut c| async move {
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut c)
                            .await
                    })
                    .await?;
                if !found.is_empty() {
                    let mut p = redis::pipe();
                    for k in &found {
                        p.cmd("TYPE").arg(k);
                    }
                    let p = &p;
                    let types: Vec<String> = self
                        .run("rebuild_indexes", true, |mut c| async move {
                            p.query_async(&mut c).await
                        })
                        .await?;
                    let topics: Vec<&[u8]> = found
                        .iter()
                        .zip(&types)
                        .filter(|(_, t)| t.as_str() == want)
                        .map(|(k, _)| &k[prefix.len()..])
                        .collect();
                    if !topics.is_empty() {
                        let mut z = redis::cmd("ZADD");
                        z.arg(index);
                        for t in &topics {
                            z.arg(0).arg(*t);
                        }
                        let z = &z;
                        self.run("rebuild_indexes", true, |mut c| async move {
                            z.query_async::<()>(&mut c).await
                        })
                        .await?;
                        if want == "hash" {
                            out.retained_topics += topics.len();
                        } else {
                            out.message_topics += topics.len();
                        }
                    }
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn pool(&self) -> &str {
        &self.inner.settings.pool
    }

    fn command_error(&self, operation: &'static str, source: redis::RedisError) -> RedisError {
        RedisError::Command {
            pool: self.pool().to_owned(),
            operation,
            source,
        }
    }

    /// Runs `f` on a pooled connection. When the connection turns out to be
    /// broken it is replaced; with `retry` `f` then runs once more on the
    /// new one (for idempotent operations only).
    async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        retry: bool,
        f: F,
    ) -> Result<T, RedisError>
    where
        F: Fn(AnyConn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        #[cfg(feature = "cluster")]
        if let Some(c) = &self.cluster {
            // The cluster connection reconnects and follows moved slots
            // itself.
            return f(AnyConn::Cluster(c.connection()))
                .await
                .map_err(|e| self.command_error(operation, e));
        }
        let lease = self.inner.lease().await?;
        let err = match f(AnyConn::Server(lease.conn.clone())).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !self.inner.discard_if_broken(&lease, &err) || !retry {
            return Err(self.command_error(operation, err));
        }
        // The same slot, now reconnecting (another slot may be stale too).
        let lease = self.inner.lease_slot(lease.slot).await?;
        match f(AnyConn::Server(lease.conn.clone())).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.inner.discard_if_broken(&lease, &e);
                Err(self.command_error(operation, e))
            }
        }
    }

    /// The topics with stored messages that `filter` matches.
    async fn message_topics(&self, filter: &str) -> Result<Vec<String>, RedisError> {
        self.topics_matching(filter, keys::msg_topics(), "fetch_messages")
            .await
    }

    /// Topics of an index (a lexicographic sorted set) matching `filter`:
    /// a filter without wildcards is its own topic; otherwise the range of
    /// its literal prefix, checked with `matches`.
    async fn topics_matching(
        &self,
        filter: &str,
        index: &'static str,
        operation: &'static str,
    ) -> Result<Vec<String>, RedisError> {
        if validate_filter(filter).is_err() {
            return Ok(Vec::new());
        }
        if !has_wildcards(filter) {
            return Ok(vec![strip_shared(filter).to_owned()]);
        }
        let (min, max) = keys::lex_range(literal_prefix(filter));
        let names: Vec<Vec<u8>> = self
            .run(operation, true, |mut c| {
                let (min, max) = (&min, &max);
                async move {
                    redis::cmd("ZRANGEBYLEX")
                        .arg(index)
                        .arg(min)
                        .arg(max)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(names
            .into_iter()
            .filter_map(|n| String::from_utf8(n).ok())
            .filter(|t| matches(filter, t))
            .collect())
    }
}

/// What [`RedisBackend::rebuild_indexes`] found (a key met twice by
/// `SCAN` counts twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexRebuild {
    /// `mqtt:retain:<topic>` hashes indexed.
    pub retained_topics: usize,
    /// `mqtt:msg:<topic>` sorted sets indexed.
    pub message_topics: usize,
}

/// Reads a reply element as bytes (`Nil` as empty).
pub(crate) fn bytes_of(v: redis::Value) -> Vec<u8> {
    match v {
        redis::Value::BulkString(b) => b,
        redis::Value::SimpleString(s) => s.into_bytes(),
        redis::Value::Int(i) => i.to_string().into_bytes(),
        redis::Value::Okay => b"OK".to_vec(),
        _ => Vec::new(),
    }
}

fn utf8(field: &str, b: Vec<u8>) -> Result<String, String> {
    String::from_utf8(b).map_err(|_| format!("field `{field}` is not UTF-8"))
}

/// A message from the eight hash values ([`MESSAGE_FIELDS`] order; a
/// missing `props` is empty); `member` stands in for a missing `id`.
pub(crate) fn decode_message(
    member: Option<Vec<u8>>,
    fields: Vec<Vec<u8>>,
) -> Result<Message, String> {
    let mut it = fields.into_iter();
    let mut next = || it.next().unwrap_or_default();
    let (id, from, qos, topic, retain, payload, ts, props) = (
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
        next(),
    );
    let id = match (id.is_empty(), member) {
        (true, Some(m)) => m,
        (_, _) => id,
    };
    let qos_text = utf8("qos", qos)?;
    let qos = qos_text
        .trim()
        .parse::<u8>()
        .ok()
        .and_then(|q| QoS::try_from(q).ok())
        .ok_or_else(|| format!("field `qos` is `{qos_text}`, not 0, 1 or 2"))?;
    let retain = match retain.as_slice() {
        b"1" | b"true" => true,
        b"0" | b"false" | b"" => false,
        other => {
            return Err(format!(
                "field `retain` is `{}`, not 1/0/true/false",
                String::from_utf8_lossy(other)
            ))
        }
    };
    let ts_text = utf8("ts", ts)?;
    let secs = ts_text
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("field `ts` is `{ts_text}`, not Unix seconds"))?;
    let topic = utf8("topic", topic)?;
    Ok(Message {
        id: utf8("id", id)?,
        sender: utf8("from", from)?,
        username: None,
        properties: Message::properties_from(&props, &topic),
        topic,
        qos,
        retain,
        payload: Bytes::from(payload),
        timestamp: Timestamp::from_secs(secs),
    })
}

/// Retained messages from their topics' `HMGET` replies; returns them and
/// the topics whose hash is gone. A hash that cannot be read is logged and
/// skipped.
pub(crate) fn decode_retained(
    pool: &str,
    topics: Vec<String>,
    replies: Vec<Vec<Option<Vec<u8>>>>,
) -> (Vec<Message>, Vec<String>) {
    let mut out = Vec::new();
    let mut gone = Vec::new();
    for (t, fields) in topics.into_iter().zip(replies) {
        if fields.iter().all(Option::is_none) {
            gone.push(t);
            continue;
        }
        let fields = fields.into_iter().map(Option::unwrap_or_default).collect();
        match decode_message(None, fields) {
            Ok(m) => out.push(m),
            Err(e) => warn!(
                pool = %pool,
                key = %keys::retain(&t),
                error = %e,
                "redis: skipping a retained message that cannot be read"
            ),
        }
    }
    (out, gone)
}

/// The hash field/value pairs of a message, as the store scripts take
/// them: all of [`MESSAGE_FIELDS`], `props` empty when it has none (the
/// scripts then write no `props` field).
/// Each value is handed to `arg` in that order, borrowed from the message.
pub(crate) fn hash_args(m: &Message, mut arg: impl FnMut(&[u8])) {
    let mut props = false;
    visit_message_fields(m, |name, value| {
        props |= name == "props";
        arg(value);
    });
    if !props {
        arg(b"");
    }
}

fn parse_secs(v: Option<&Vec<u8>>) -> Result<Option<Timestamp>, String> {
    match v.map(|b| String::from_utf8_lossy(b).trim().to_owned()) {
        None => Ok(None),
        Some(s) if s.is_empty() || s == "undefined" => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(|n| Some(Timestamp::from_secs(n)))
            .map_err(|_| format!("holds `{s}`, not Unix seconds")),
    }
}

/// Commands that would change the state of a connection other callers
/// share (database, transaction, subscriptions, protocol, reply mode).
const CONNECTION_STATE_COMMANDS: &[&str] = &[
    "SELECT",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "QUIT",
    "RESET",
    "HELLO",
    "AUTH",
    "SYNC",
    "PSYNC",
];

/// `CLIENT` subcommands that change how the shared connection replies.
const CONNECTION_STATE_CLIENT_SUBCOMMANDS: &[&str] = &["REPLY", "TRACKING", "CACHING"];

/// Whether a raw command would change the state of a shared connection.
fn changes_connection_state(upper: &str, rest: &[Bytes]) -> bool {
    if CONNECTION_STATE_COMMANDS.contains(&upper) {
        return true;
    }
    upper == "CLIENT"
        && rest.first().is_some_and(|sub| {
            let sub = String::from_utf8_lossy(sub).to_ascii_uppercase();
            CONNECTION_STATE_CLIENT_SUBCOMMANDS.contains(&sub.as_str())
        })
}

/// Appends a reply to a row the way [`backend_core::MemoryBackend`] shapes
/// it: nil as `Null`, integers as `Int`, bulk strings as `Bytes`, status
/// replies as `Text`, arrays (and maps, sets) flattened in order. Nested
/// replies are walked with a stack, not recursion, so no reply can
/// overflow the thread's stack.
pub(crate) fn flatten(v: redis::Value, row: &mut Row) -> Result<(), String> {
    use redis::Value as R;
    // Items still to visit, the next one last.
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        match v {
            R::Nil => row.push(Value::Null),
            R::Int(i) => row.push(Value::Int(i)),
            R::BulkString(b) => row.push(Value::Bytes(Bytes::from(b))),
            R::SimpleString(s) => row.push(Value::Text(s)),
            R::Okay => row.push(Value::Text("OK".into())),
            R::Double(d) => row.push(Value::Float(d)),
            R::Boolean(b) => row.push(Value::Bool(b)),
            R::VerbatimString { text, .. } => row.push(Value::Text(text)),
            R::BigNumber(n) => row.push(Value::Text(n.to_string())),
            R::Array(items) | R::Set(items) | R::Push { data: items, .. } => {
                todo.extend(items.into_iter().rev());
            }
            R::Map(pairs) => {
                for (k, v) in pairs.into_iter().rev() {
                    todo.push(v);
                    todo.push(k);
                }
            }
            R::Attribute { data, .. } => todo.push(*data),
            R::ServerError(e) => {
                return Err(format!("{} {}", e.code(), e.details().unwrap_or_default()));
            }
            // A variant added by a later driver version.
            #[allow(unreachable_patterns)]
            other => row.push(Value::Text(format!("{other:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn decodes_the_seed_hash() {
        let m = decode_message(
            None,
            fields(&[
                "6P9NLcJ65VXBbC22sYb4",
                "test",
                "1",
                "topic",
                "true",
                "Hello world!",
                "1481690659",
            ]),
        )
        .expect("seed hash");
        assert_eq!(m.id, "6P9NLcJ65VXBbC22sYb4");
        assert_eq!(m.sender, "test");
        assert_eq!(m.qos, QoS::AtLeastOnce);
        assert!(m.retain);
        assert_eq!(&m.payload[..], b"Hello world!");
        assert_eq!(m.timestamp.as_secs(), 1_481_690_659);
        let m = decode_message(
            Some(b"ID".to_vec()),
            fields(&["", "c", "2", "t", "0", "", "1"]),
        )
        .expect("member id");
        assert_eq!(m.id, "ID");
        assert!(decode_message(None, fields(&["i", "c", "3", "t", "0", "", "1"])).is_err());
        assert!(decode_message(None, fields(&["i", "c", "1", "t", "yes", "", "1"])).is_err());
        assert!(decode_message(None, fields(&["i", "c", "1", "t", "0", "", "x"])).is_err());
    }

    #[test]
    fn hash_round_trip() {
        let mut m = Message::new("c", "a/b", QoS::ExactlyOnce, &b"\x00\xff"[..]).retained(true);
        m.timestamp = Timestamp::from_secs(1_700_000_000);
        let args = |m: &Message| {
            let mut out = Vec::new();
            hash_args(m, |v| out.push(v.to_vec()));
            out
        };
        let fields = args(&m);
        assert_eq!(fields.len(), MESSAGE_FIELDS.len());
        assert_eq!(fields.last(), Some(&Vec::new()), "no props: an empty value");
        assert_eq!(decode_message(None, fields).expect("round trip"), m);
        m.properties.user_properties.push(("k".into(), "v".into()));
        m.properties.message_expiry_interval = Some(60);
        let fields = args(&m);
        assert_eq!(fields.len(), MESSAGE_FIELDS.len());
        assert_eq!(decode_message(None, fields).expect("with properties"), m);
    }

    #[test]
    fn reply_shapes() {
        use redis::Value as R;
        let mut row = Row::new();
        flatten(
            R::Array(vec![
                R::Nil,
                R::Int(3),
                R::BulkString(b"x".to_vec()),
                R::Okay,
                R::Array(vec![R::SimpleString("PONG".into())]),
            ]),
            &mut row,
        )
        .expect("flatten");
        assert_eq!(
            row,
            vec![
                Value::Null,
                Value::Int(3),
                Value::Bytes(Bytes::from_static(b"x")),
                Value::Text("OK".into()),
                Value::Text("PONG".into()),
            ]
        );
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_secs(None), Ok(None));
        assert_eq!(parse_secs(Some(&b"undefined".to_vec())), Ok(None));
        assert_eq!(
            parse_secs(Some(&b"1481685802".to_vec())),
            Ok(Some(Timestamp::from_secs(1_481_685_802)))
        );
        assert!(parse_secs(Some(&b"soon".to_vec())).is_err());
    }
}
