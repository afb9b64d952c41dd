//! Redis Cluster (`type = cluster`, feature `cluster`): the same functions
//! on a cluster, through the redis crate's cluster connection, which
//! follows `MOVED` and `ASK` while slots move and finds the new master
//! after a failover.
//!
//! Commands on one key run as on a single server. A script or transaction
//! may only touch keys of one hash slot, so the layout of messages differs
//! (see [`crate::keys::cluster`]) and every batch is cut into one call per
//! slot group (a topic's messages, acks and read positions share its
//! slot), sent concurrently: a batch on one topic is still one round trip,
//! and one spread over topics costs one round trip per group, each to the
//! node that owns it. The topic indexes are one key each, written after
//! the messages, so a reader never meets an index entry for a topic whose
//! messages are not there yet; topics leave an index only in the sweeper,
//! after being found empty twice.
//!
//! With `replica_acks = n`, each write ends with `WAIT n` on the node that
//! took it: it is acknowledged only once `n` replicas have it, so a master
//! killed right after loses none of it (the replica promoted in its place
//! has it). The wait is bounded by the response timeout; a write not
//! replicated in time fails (retryable) and the engine writes it again.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use backend_core::backend::{Ack, FetchRequest};
use backend_core::topic::strip_shared;
use backend_core::{ClientInfo, Message, OfflineMode, Timestamp};
use futures::future::try_join_all;
use redis::cluster_async::ClusterConnection;
use redis::Script;
use tracing::warn;

use crate::backend::{bytes_of, decode_message, decode_retained, hash_args};
use crate::config::RedisSettings;
use crate::error::RedisError;
use crate::keys::{self, cluster as layout, MESSAGE_FIELDS};
use crate::scripts::{self, cluster as cscripts, ScriptCmd};
use backend_core::template::message_fields;

/// A pool on a Redis Cluster.
pub(crate) struct ClusterStore {
    pub(crate) settings: RedisSettings,
    conn: ClusterConnection,
    /// The last score handed out (microseconds since the Unix epoch).
    clock: Mutex<u64>,
}

/// Groups items by the hash tag of their topic, keeping their order
/// within each group.
fn by_tag<T>(items: &[T], topic: impl Fn(&T) -> &str) -> Vec<Vec<&T>> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Vec<&T>> = Vec::new();
    for item in items {
        let tag = layout::tag(topic(item));
        match index.get(tag) {
            Some(&i) => groups[i].push(item),
            None => {
                index.insert(tag.to_owned(), groups.len());
                groups.push(vec![item]);
            }
        }
    }
    groups
}

/// One script call: `EVALSHA` with its keys and arguments.
struct Call {
    script: &'static LazyLock<Script>,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call {
    fn new(script: &'static LazyLock<Script>) -> Self {
        Call {
            script,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    fn key(&mut self, k: impl Into<Vec<u8>>) -> &mut Self {
        self.keys.push(k.into());
        self
    }

    fn arg(&mut self, a: impl redis::ToRedisArgs) -> &mut Self {
        self.args.extend(a.to_redis_args());
        self
    }

    fn cmd(&self) -> ScriptCmd {
        let script: &'static Script = self.script;
        let mut c = ScriptCmd::new(script, self.keys.len());
        for k in &self.keys {
            c.arg(k);
        }
        for a in &self.args {
            c.arg(a);
        }
        c
    }
}

impl ClusterStore {
    /// Connects to the cluster through its seed nodes (`server`).
    pub(crate) async fn connect(settings: RedisSettings) -> Result<ClusterStore, RedisError> {
        let scheme = if settings.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let nodes: Vec<String> = settings
            .servers
            .iter()
            .map(|a| format!("{scheme}://{}:{}", bracket(&a.host), a.port))
            .collect();
        let mut b = redis::cluster::ClusterClientBuilder::new(nodes)
            .connection_timeout(settings.connection_timeout)
            .response_timeout(settings.response_timeout);
        if let Some(u) = &settings.username {
            b = b.username(u);
        }
        if let Some(p) = &settings.password {
            b = b.password(p.expose());
        }
        #[cfg(feature = "tls")]
        if let Some(t) = &settings.tls {
            b = b
                .tls(redis::TlsMode::Secure)
                .certs(crate::conn::certificates(&settings.pool, t)?);
        }
        let client = b.build().map_err(|e| RedisError::Config {
            pool: settings.pool.clone(),
            key: "server",
            message: e.to_string(),
        })?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(|source| RedisError::Connect {
                pool: settings.pool.clone(),
                target: settings.target(),
                source,
            })?;
        Ok(ClusterStore {
            settings,
            conn,
            clock: Mutex::new(0),
        })
    }

    /// A handle on the cluster connection (clones share it).
    pub(crate) fn connection(&self) -> ClusterConnection {
        self.conn.clone()
    }

    fn pool(&self) -> &str {
        &self.settings.pool
    }

    /// `n` consecutive scores: this process's clock in microseconds, never
    /// below the last ones handed out (so a batch, and batch after batch,
    /// keeps store order across topics and masters).
    fn scores(&self, n: usize) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let mut last = self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let first = now.max(*last + 1);
        *last = first + u64::try_from(n.max(1)).unwrap_or(u64::MAX) - 1;
        first
    }

    fn failed(&self, operation: &'static str) -> impl Fn(redis::RedisError) -> RedisError + '_ {
        move |source| RedisError::Command {
            pool: self.settings.pool.clone(),
            operation,
            source,
        }
    }

    /// A reply read as `T`.
    fn parse<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        v: redis::Value,
    ) -> Result<T, RedisError> {
        redis::from_redis_value(v).map_err(|e| self.failed(operation)(e.into()))
    }

    /// With `replica_acks`: waits until that many replicas have this
    /// connection's writes on the master of `key`'s slot (the node that
    /// took the write; the others are not held up by it).
    async fn replicated(&self, operation: &'static str, key: &[u8]) -> Result<(), RedisError> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let acks = self.settings.replica_acks;
        if acks == 0 {
            return Ok(());
        }
        // Half the response timeout, so the answer comes back in time.
        let timeout_ms = u64::try_from(self.settings.response_timeout.as_millis().max(2) / 2)
            .unwrap_or(u64::MAX);
        let mut wait = redis::cmd("WAIT");
        wait.arg(acks).arg(timeout_ms);
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
            slot_of(key),
            SlotAddr::Master,
        )));
        let mut c = self.conn.clone();
        let reply = c
            .route_command(wait, route)
            .await
            .map_err(self.failed(operation))?;
        let replicas: i64 = self.parse(operation, reply)?;
        if replicas < i64::from(acks) {
            return Err(RedisError::Replication {
                pool: self.pool().to_owned(),
                operation,
                replicas,
                wanted: acks,
            });
        }
        Ok(())
    }

    /// Runs one script call on the node of its keys (a single command,
    /// which the cluster connection redirects and retries while slots move
    /// or a master fails over). A master that does not know the script yet
    /// (a replica promoted since) gets it loaded, and the call runs once
    /// more.
    async fn call(
        &self,
        operation: &'static str,
        call: &Call,
        write: bool,
    ) -> Result<redis::Value, RedisError> {
        let mut c = self.conn.clone();
        let reply = call
            .cmd()
            .run::<redis::Value>(&mut c)
            .await
            .map_err(self.failed(operation))?;
        if let (true, Some(key)) = (write, call.keys.first()) {
            self.replicated(operation, key).await?;
        }
        Ok(reply)
    }

    /// One write command on `key`, then the replicas' acknowledgement.
    async fn write(
        &self,
        operation: &'static str,
        key: &str,
        cmd: redis::Cmd,
    ) -> Result<(), RedisError> {
        self.one::<()>(operation, cmd).await?;
        self.replicated(operation, key.as_bytes()).await
    }

    /// One command on one key.
    async fn one<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut c = self.conn.clone();
        cmd.query_async(&mut c)
            .await
            .map_err(self.failed(operation))
    }

    /// Adds topics to an index after their data was written; for the
    /// message index, also forgets that the sweeper found them empty.
    async fn index(
        &self,
        operation: &'static str,
        index: &'static str,
        topics: &[&str],
    ) -> Result<(), RedisError> {
        if topics.is_empty() {
            return Ok(());
        }
        let mut call = Call::new(&cscripts::INDEX);
        call.key(index);
        if index == keys::msg_topics() {
            call.key(layout::swept_topics());
        }
        for t in topics {
            call.arg(*t);
        }
        self.call(operation, &call, true).await.map(drop)
    }

    pub(crate) async fn client_online(
        &self,
        client: &ClientInfo,
        at: Timestamp,
    ) -> Result<(), RedisError> {
        const OP: &str = "client_online";
        let key = keys::client(&client.client_id);
        let mut get = redis::cmd("HGET");
        get.arg(&key).arg("node");
        // A key of another type is replaced below, as on a single server.
        let old: Option<String> = self.one(OP, get).await.unwrap_or(None);
        if let Some(old) = old.filter(|o| *o != client.node) {
            let mut del = redis::cmd("HDEL");
            del.arg(keys::node(&old)).arg(&client.client_id);
            if let Err(e) = self.one::<()>(OP, del).await {
                warn!(pool = %self.pool(), error = %e, "redis: cannot update the previous node's hash");
            }
        }
        let mut call = Call::new(&cscripts::REPLACE_HASH);
        call.key(key)
            .arg("state")
            .arg("1")
            .arg("online_at")
            .arg(at.as_secs())
            .arg("offline_at")
            .arg("undefined")
            .arg("node")
            .arg(&client.node);
        self.call(OP, &call, true).await?;
        let node_key = keys::node(&client.node);
        let mut hset = redis::cmd("HSET");
        hset.arg(&node_key).arg(&client.client_id).arg(at.as_secs());
        self.write(OP, &node_key, hset).await
    }

    pub(crate) async fn client_offline(
        &self,
        client: &ClientInfo,
        at: Timestamp,
    ) -> Result<(), RedisError> {
        const OP: &str = "client_offline";
        let mut call = Call::new(&cscripts::CLIENT_OFFLINE);
        call.key(keys::client(&client.client_id))
            .arg(at.as_secs())
            .arg(&client.node);
        self.call(OP, &call, true).await?;
        let node_key = keys::node(&client.node);
        let mut hdel = redis::cmd("HDEL");
        hdel.arg(&node_key).arg(&client.client_id);
        self.write(OP, &node_key, hdel).await
    }

    pub(crate) async fn store_messages(&self, messages: &[Message]) -> Result<(), RedisError> {
        const OP: &str = "store_messages";
        let ttl = self.settings.expire_secs();
        let first = self.scores(messages.len());
        let scored: Vec<(u64, &Message)> = (first..).zip(messages).collect();
        try_join_all(by_tag(&scored, |(_, m)| &m.topic).into_iter().map(|group| {
            let mut call = Call::new(&cscripts::STORE);
            call.arg(ttl);
            for (score, m) in &group {
                call.key(layout::msg(&m.topic, &m.id))
                    .key(layout::msg_topic(&m.topic))
                    .arg(*score);
                hash_args(m, |v| {
                    call.arg(v);
                });
            }
            async move { self.call(OP, &call, true).await }
        }))
        .await?;
        let mut topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        self.index(OP, keys::msg_topics(), &topics).await
    }

    pub(crate) async fn fetch_messages(
        &self,
        req: &FetchRequest,
        topics: Vec<String>,
    ) -> Result<Vec<Message>, RedisError> {
        const OP: &str = "fetch_messages";
        let filter = strip_shared(&req.filter);
        let start = match req.mode {
            OfflineMode::Queue => String::new(),
            OfflineMode::Pubsub => {
                let mut call = Call::new(&cscripts::START);
                call.key(keys::acked(&req.client_id, filter))
                    .arg(self.scores(1));
                let (start, new): (String, i64) =
                    self.parse(OP, self.call(OP, &call, true).await?)?;
                if new == 1 {
                    // The subscription starts now: nothing before it.
                    return Ok(Vec::new());
                }
                start
            }
        };
        let mode = match req.mode {
            OfflineMode::Queue => "queue",
            OfflineMode::Pubsub => "pubsub",
        };
        let since = req
            .since
            .map(|t| t.as_millis().to_string())
            .unwrap_or_default();
        let max = req.max_count.map(|n| n.to_string()).unwrap_or_default();
        let page = req.page.map(|n| n.to_string()).unwrap_or_default();
        let replies = try_join_all(by_tag(&topics, |t| t.as_str()).into_iter().map(|group| {
            let mut call = Call::new(&cscripts::FETCH);
            call.arg(mode).arg(&since).arg(&max).arg(&start).arg(&page);
            for t in &group {
                call.key(layout::msg_topic(t))
                    .key(layout::acked(&req.client_id, t));
            }
            async move { self.call(OP, &call, false).await }
        }))
        .await?;
        // Each group's newest first; merged by score, oldest first.
        let mut found: Vec<(f64, Message)> = Vec::new();
        for reply in replies {
            let items: Vec<redis::Value> = self.parse(OP, reply)?;
            let mut it = items.into_iter();
            while let Some(score) = it.next() {
                let score = String::from_utf8_lossy(&bytes_of(score))
                    .parse::<f64>()
                    .unwrap_or(0.0);
                let member = it.next().map(bytes_of).unwrap_or_default();
                let fields: Vec<Vec<u8>> = it.by_ref().take(8).map(bytes_of).collect();
                match decode_message(Some(member.clone()), fields) {
                    Ok(m) => found.push((score, m)),
                    Err(e) => warn!(
                        pool = %self.pool(),
                        member = %String::from_utf8_lossy(&member),
                        error = %e,
                        "redis: skipping a stored message that cannot be read"
                    ),
                }
            }
        }
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        if let Some(max) = req.max_count {
            // Each group kept its newest `max`; keep the newest overall.
            let excess = found.len().saturating_sub(max);
            found.drain(..excess);
        }
        if let Some(page) = req.page {
            // Each group kept its oldest `page` (or its newest `max`);
            // keep the oldest overall.
            found.truncate(page);
        }
        Ok(found.into_iter().map(|(_, m)| m).collect())
    }

    pub(crate) async fn ack_messages(
        &self,
        mode: OfflineMode,
        acks: &[Ack],
    ) -> Result<(), RedisError> {
        const OP: &str = "ack_messages";
        try_join_all(by_tag(acks, |a| &a.topic).into_iter().map(|group| {
            let call = match mode {
                OfflineMode::Pubsub => {
                    let mut call = Call::new(&scripts::ACK_PUBSUB);
                    for a in &group {
                        call.key(layout::msg_topic(&a.topic))
                            .key(layout::acked(&a.client_id, &a.topic))
                            .arg(&a.message_id);
                    }
                    call
                }
                OfflineMode::Queue => {
                    let mut call = Call::new(&cscripts::ACK_QUEUE);
                    for a in &group {
                        call.key(layout::msg(&a.topic, &a.message_id))
                            .key(layout::msg_topic(&a.topic))
                            .arg(&a.message_id);
                    }
                    call
                }
            };
            async move { self.call(OP, &call, true).await }
        }))
        .await?;
        Ok(())
    }

    /// The sweeper on one page of the message index: per slot group, the
    /// sets' fronts; topics found empty are marked, or dropped when already
    /// marked by the previous sweep. Returns the messages removed, and
    /// whether a group ran out of budget (the page needs another pass).
    pub(crate) async fn sweep_page(
        &self,
        page: &[String],
        cut: i64,
        budget: u64,
    ) -> Result<(u64, bool), RedisError> {
        const OP: &str = "remove_messages_before";
        let groups = by_tag(page, |t| t.as_str());
        let replies = try_join_all(groups.iter().map(|group| {
            let mut call = Call::new(&cscripts::SWEEP);
            call.arg(cut).arg(budget);
            for t in group {
                call.key(layout::msg_topic(t));
            }
            async move { self.call(OP, &call, true).await }
        }))
        .await?;
        let mut removed = 0;
        let mut more = false;
        let mut empty: Vec<&str> = Vec::new();
        for (group, reply) in groups.iter().zip(replies) {
            let v: Vec<u64> = self.parse(OP, reply)?;
            removed += v.first().copied().unwrap_or(0);
            more |= v.get(1).copied().unwrap_or(0) == 0;
            for i in v.iter().skip(2) {
                let i = usize::try_from(*i).unwrap_or(usize::MAX);
                if let Some(t) = i.checked_sub(1).and_then(|i| group.get(i)) {
                    empty.push(t.as_str());
                }
            }
        }
        if !empty.is_empty() {
            let mut call = Call::new(&cscripts::UNINDEX);
            call.key(keys::msg_topics()).key(layout::swept_topics());
            for t in &empty {
                call.arg(*t);
            }
            self.call(OP, &call, true).await?;
        }
        Ok((removed, more))
    }

    pub(crate) async fn store_retained(&self, messages: &[Message]) -> Result<(), RedisError> {
        const OP: &str = "store_retained";
        try_join_all(messages.iter().map(|m| {
            let mut call = Call::new(&cscripts::REPLACE_HASH);
            call.key(keys::retain(&m.topic));
            for (f, v) in message_fields(m) {
                call.arg(f).arg(v.as_ref());
            }
            async move { self.call(OP, &call, true).await }
        }))
        .await?;
        let mut topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        self.index(OP, keys::retain_topics(), &topics).await
    }

    pub(crate) async fn delete_retained(&self, topics: &[String]) -> Result<(), RedisError> {
        const OP: &str = "delete_retained";
        try_join_all(topics.iter().map(|t| async move {
            let key = keys::retain(t);
            let mut del = redis::cmd("DEL");
            del.arg(&key);
            self.write(OP, &key, del).await
        }))
        .await?;
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(keys::retain_topics()).arg(topics);
        self.write(OP, keys::retain_topics(), zrem).await
    }

    /// The retained messages of `topics` (each its own key, read
    /// concurrently); topics whose hash is gone are skipped.
    pub(crate) async fn read_retained(
        &self,
        topics: Vec<String>,
    ) -> Result<Vec<Message>, RedisError> {
        const OP: &str = "lookup_retained";
        let replies = try_join_all(topics.iter().map(|t| {
            let mut cmd = redis::cmd("HMGET");
            cmd.arg(keys::retain(t)).arg(&MESSAGE_FIELDS[..]);
            self.one::<Vec<Option<Vec<u8>>>>(OP, cmd)
        }))
        .await?;
        // Index entries of gone hashes stay: see the module docs.
        Ok(decode_retained(self.pool(), topics, replies).0)
    }
}

/// The hash slot of `key`, as Redis computes it: CRC16 (XMODEM) of the
/// hash tag (the text between the first `{` and the next `}`, if not
/// empty), else of the whole key, modulo 16384.
fn slot_of(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

/// IPv6 hosts go in brackets in a URL.
fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_the_hash_tag() {
        let topics = ["a/1", "b", "a/1", "x}1", "x}2", "c"];
        let groups = by_tag(&topics, |t| t);
        let shape: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|t| **t).collect())
            .collect();
        assert_eq!(
            shape,
            vec![vec!["a/1", "a/1"], vec!["b"], vec!["x}1", "x}2"], vec!["c"]]
        );
    }

    #[test]
    fn slots_as_redis_computes_them() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"mqtt:msg_topics"), 14648);
        assert_eq!(
            slot_of(layout::swept_topics().as_bytes()),
            slot_of(keys::msg_topics().as_bytes())
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(bracket("::1"), "[::1]");
        assert_eq!(bracket("db"), "db");
    }
}
