//! The Lua scripts: each runs as one atomic step on the server, so reading a
//! value and writing what depends on it (a sequence number, a read
//! position) cannot interleave with another client. `EVALSHA` after the
//! first call; the driver loads a script again after a server restart.
//!
//! The sources are the `.lua` files beside this one.
//!
//! Scripts derive a few keys from values (`mqtt:msg:<msgid>` from a sorted
//! set member): fine on a single server or a Sentinel group. A cluster
//! runs the scripts of [`cluster`] on its hash-tagged layout instead.

use std::sync::LazyLock;

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, RedisResult, Script, ToRedisArgs};

/// A script call built straight into one `EVALSHA` command, for the write
/// path: each key and argument is copied once, into the command's single
/// buffer (`ScriptInvocation` keeps each in a vector of its own, then
/// copies it again). Keys are added first, then the arguments.
pub(crate) struct ScriptCmd {
    script: &'static Script,
    cmd: Cmd,
}

impl ScriptCmd {
    /// A call of `script` that will be given `keys` keys.
    pub(crate) fn new(script: &'static Script, keys: usize) -> Self {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(script.get_hash()).arg(keys);
        ScriptCmd { script, cmd }
    }

    /// Adds the next key or argument.
    pub(crate) fn arg(&mut self, a: impl ToRedisArgs) -> &mut Self {
        self.cmd.arg(a);
        self
    }

    /// Runs it; a server without the script (restarted, flushed) is given
    /// it and asked again.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        c: &mut (impl ConnectionLike + Send),
    ) -> RedisResult<T> {
        match self.cmd.query_async(c).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.script.load_async(c).await?;
                self.cmd.query_async(c).await
            }
            other => other,
        }
    }
}

/// Stores a batch of messages.
///
/// KEYS: `mqtt:msg_seq`, `mqtt:msg_topics`, then per message its hash
/// `mqtt:msg:<id>` and its topic's set `mqtt:msg:<topic>`.
/// ARGV: expiry seconds, the `mqtt:msg:` prefix, then per message the eight
/// hash values (id, from, qos, topic, retain, payload, ts, props: empty when
/// the message has no MQTT 5 properties, and then not written).
///
/// Per message: a message id stored before on another topic leaves that
/// topic's set; the counter gives the next score; the hash is replaced and
/// expires after the expiry; the topic's set gets the id and lives at least
/// as long as it; the topic joins the index. Types are checked first, so a
/// key of the wrong type fails the batch before anything is written.
pub(crate) static STORE_MESSAGES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/store_messages.lua")));

/// The sweeper: removes the messages that arrived before a time, from the
/// front (oldest) of each topic's set.
///
/// KEYS: `mqtt:msg_topics`. ARGV: the `mqtt:msg:` prefix, the cut (Unix
/// seconds: a message whose `ts` is below it goes), a budget of members to
/// look at, then the topics.
///
/// Per topic, from its set's first member: a member whose hash expired (or
/// now belongs to another topic) leaves the set; a message older than the
/// cut is deleted (hash and member); the first newer one ends the topic. A
/// set left empty leaves the index. Returns the messages deleted and the
/// budget left.
pub(crate) static SWEEP_MESSAGES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/sweep_messages.lua")));

/// Fetches offline messages.
///
/// KEYS: the start key `mqtt:acked:<client>:<filter>`, `mqtt:msg_seq`,
/// `mqtt:msg_topics`, then per matching topic its set `mqtt:msg:<topic>` and
/// its read position `mqtt:acked:<client>:<topic>`.
/// ARGV: `queue` or `pubsub`, since (Unix milliseconds, or empty), max count
/// (or empty), page (or empty), the `mqtt:msg:` prefix, then the topics.
///
/// Pubsub: without a start key the start is set to the counter's current
/// value and nothing is returned. Otherwise a topic's floor is the larger of
/// the start and the topic's read position, and its members scored above
/// the floor are the candidates (queue mode: all members). Candidates are
/// read newest first until `max` are kept (with a page and no max: oldest
/// first until `page` are kept, reading at most `page` members of each
/// topic), skipping those older than `since` and removing members whose
/// hash expired (or now belongs to another topic). Returns, newest first
/// (oldest first for a page), per message: the member id and the eight
/// hash values.
pub(crate) static FETCH_MESSAGES: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/fetch_messages.lua")));

/// Pubsub acks: per ack, the read position becomes the larger of itself and
/// the acked message's score (unknown messages change nothing).
///
/// KEYS: per ack `mqtt:msg:<topic>` and `mqtt:acked:<client>:<topic>`.
/// ARGV: per ack the message id.
pub(crate) static ACK_PUBSUB: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/ack_pubsub.lua")));

/// Queue acks: per ack, deletes the message hash and its set member (of the
/// acked topic, and of the topic the hash names if another); a set left
/// empty leaves the index.
///
/// KEYS: `mqtt:msg_topics`, then per ack `mqtt:msg:<id>` and
/// `mqtt:msg:<topic>`. ARGV: the `mqtt:msg:` prefix, then per ack the id and
/// the topic.
pub(crate) static ACK_QUEUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/ack_queue.lua")));

/// A client came online: its hash is replaced (state 1, online_at,
/// offline_at `undefined`, node), it joins its node's hash and leaves the
/// hash of the node it was on before, if another.
///
/// KEYS: `mqtt:client:<id>`, `mqtt:node:<node>`. ARGV: client id, Unix
/// seconds, node, the `mqtt:node:` prefix.
pub(crate) static CLIENT_ONLINE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/client_online.lua")));

/// Removes retained-index entries whose hash is gone (deleted by hand).
///
/// KEYS: `mqtt:retain_topics`, then per topic `mqtt:retain:<topic>`.
/// ARGV: the topics.
pub(crate) static CLEAN_RETAIN_INDEX: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/clean_retain_index.lua")));

/// The scripts of `type = cluster` (`lua/cluster/`): each touches the keys
/// of one hash slot only (see [`crate::keys::cluster`]), so a batch is cut
/// into one call per slot group.
#[cfg(feature = "cluster")]
pub(crate) mod cluster {
    use super::*;

    /// Stores messages of one slot; scores from the master's clock.
    pub(crate) static STORE: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/store.lua")));
    /// Fetches offline messages of topics of one slot.
    pub(crate) static FETCH: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/fetch.lua")));
    /// Sets (once) and reads a pubsub subscription's start.
    pub(crate) static START: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/start.lua")));
    /// Queue acks of one slot.
    pub(crate) static ACK_QUEUE: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/ack_queue.lua")));
    /// The sweeper, on the sets of one slot.
    pub(crate) static SWEEP: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/sweep.lua")));
    /// Replaces a hash (client status, retained message).
    pub(crate) static REPLACE_HASH: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/replace_hash.lua")));
    /// A client's hash when it goes offline.
    pub(crate) static CLIENT_OFFLINE: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/client_offline.lua")));
    /// Topics join an index (and leave the sweeper's first-sighting set).
    pub(crate) static INDEX: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/index.lua")));
    /// Drops topics found empty in two sweeps from the message index.
    pub(crate) static UNINDEX: LazyLock<Script> =
        LazyLock::new(|| Script::new(include_str!("lua/cluster/unindex.lua")));
}
