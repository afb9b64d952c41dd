//! The key layout: one function per key (with `type = cluster`, the
//! hash-tagged names of [`cluster`] for messages). The names are the seed's (EMQX's
//! `emqx_backend_redis`), so existing tools and queries keep working; the
//! three keys this crate adds ([`msg_seq`], [`msg_topics`],
//! [`retain_topics`]) are outside every seed prefix, so no client id, topic
//! or message id can collide with them.
//!
//! ```
//! use backend_redis::keys;
//! assert_eq!(keys::client("test"), "mqtt:client:test");
//! assert_eq!(keys::acked("test", "pubsub/a"), "mqtt:acked:test:pubsub/a");
//! assert_eq!(keys::msg_topic("pubsub/a"), "mqtt:msg:pubsub/a");
//! ```
//!
//! The seed's layout puts the message hash (`mqtt:msg:<msgid>`) and the
//! topic's sorted set (`mqtt:msg:<topic>`) under one prefix, and joins
//! client id and topic with `:` in `mqtt:acked:`; a topic spelled exactly
//! like a message id, or a client id containing `:`, can therefore meet
//! another key. That is the seed's, kept for compatibility.

/// Prefix of [`node`], whose keys are looked up by it.
pub const NODE_PREFIX: &str = "mqtt:node:";
/// Prefix of [`msg`] and [`msg_topic`] (the seed shares it).
pub const MSG_PREFIX: &str = "mqtt:msg:";
/// The prefixes of the seed's keys: [`client`], [`node`], [`sub`], [`msg`]
/// and [`msg_topic`], [`acked`], [`retain`]. The backend's own keys stay
/// outside them.
pub const SEED_PREFIXES: [&str; 6] = [
    "mqtt:client:",
    NODE_PREFIX,
    "mqtt:sub:",
    MSG_PREFIX,
    "mqtt:acked:",
    "mqtt:retain:",
];

/// The fields of a message hash ([`msg`], [`retain`]): the seed's, in its
/// order, then `props`, the message's MQTT 5 properties (MQTT 5's own
/// encoding, `backend_core::Properties`), present only on a message that
/// has any; the same as `backend_core::template::message_fields`.
pub const MESSAGE_FIELDS: [&str; 8] = [
    "id", "from", "qos", "topic", "retain", "payload", "ts", "props",
];

/// `mqtt:client:<clientid>`: hash `state` (1/0), `online_at`, `offline_at`
/// (Unix seconds; `undefined` while online, as the seed shows) and `node`.
pub fn client(client_id: &str) -> String {
    format!("mqtt:client:{client_id}")
}

/// `mqtt:node:<node>`: hash clientid -> Unix seconds it connected, for the
/// clients online on that node.
pub fn node(node: &str) -> String {
    format!("{NODE_PREFIX}{node}")
}

/// `mqtt:sub:<clientid>`: hash topic filter -> QoS (the proxy
/// subscriptions).
pub fn sub(client_id: &str) -> String {
    format!("mqtt:sub:{client_id}")
}

/// `prefix` then `name` in `buf`, emptied first: a key built without
/// formatting, for a write path that copies it into a command at once.
pub fn prefixed<'a>(buf: &'a mut Vec<u8>, prefix: &str, name: &str) -> &'a [u8] {
    buf.clear();
    buf.extend_from_slice(prefix.as_bytes());
    buf.extend_from_slice(name.as_bytes());
    buf
}

/// `mqtt:msg:<msgid>`: hash of one stored message ([`MESSAGE_FIELDS`]),
/// expiring after `msg.expired_after`.
pub fn msg(message_id: &str) -> String {
    format!("{MSG_PREFIX}{message_id}")
}

/// `mqtt:msg:<topic>`: sorted set of the ids of the messages stored on a
/// topic, scored by [`msg_seq`] (store order); it expires with its newest
/// message.
pub fn msg_topic(topic: &str) -> String {
    format!("{MSG_PREFIX}{topic}")
}

/// `mqtt:acked:<clientid>:<topic>`: a pubsub read position, a
/// [`msg_seq`] value. For a topic name: the score of the newest message the
/// client acknowledged on it. For a subscribed filter: the sequence value at
/// the client's first fetch, where the subscription starts. (A filter
/// without wildcards is a topic name; both meanings share the key.)
pub fn acked(client_id: &str, topic: &str) -> String {
    format!("mqtt:acked:{client_id}:{topic}")
}

/// `mqtt:retain:<topic>`: hash of a topic's retained message
/// ([`MESSAGE_FIELDS`]).
pub fn retain(topic: &str) -> String {
    format!("mqtt:retain:{topic}")
}

/// `mqtt:msg_seq` (added): the counter (`INCR`) whose values score
/// [`msg_topic`] members.
pub fn msg_seq() -> &'static str {
    "mqtt:msg_seq"
}

/// `mqtt:msg_topics` (added): sorted set (all scores 0, ordered by name) of
/// the topics that have a [`msg_topic`] set, so wildcard fetches range over
/// it with `ZRANGEBYLEX` instead of scanning the key space.
pub fn msg_topics() -> &'static str {
    "mqtt:msg_topics"
}

/// `mqtt:retain_topics` (added): sorted set (all scores 0, ordered by name)
/// of the topics that have a retained message, for wildcard lookups.
pub fn retain_topics() -> &'static str {
    "mqtt:retain_topics"
}

/// The `ZRANGEBYLEX` bounds of the names starting with `prefix`: from
/// `prefix` inclusive to [`backend_core::topic::prefix_upper_bound`]
/// exclusive (`+`, the end, when there is none).
pub(crate) fn lex_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let min = if prefix.is_empty() {
        b"-".to_vec()
    } else {
        [b"[", prefix.as_bytes()].concat()
    };
    let max = match backend_core::topic::prefix_upper_bound(prefix) {
        Some(upper) => [b"(", upper.as_bytes()].concat(),
        None => b"+".to_vec(),
    };
    (min, max)
}

/// The layout with `type = cluster`. A Lua script or a transaction may
/// only touch keys of one hash slot, so everything one operation on a
/// topic's messages touches carries the topic as its hash tag (`{t:<topic>}`;
/// the `t:` keeps the tag non-empty whatever the topic): the topic's sorted
/// set, its messages' hashes and the read positions on it. The keys one
/// command touches alone keep the seed's names (`mqtt:client:`, `mqtt:sub:`,
/// `mqtt:node:`, `mqtt:retain:`, the two indexes, a filter's pubsub start).
///
/// | single server and Sentinel | Redis Cluster |
/// |---|---|
/// | `mqtt:msg:<topic>` | `mqtt:msg:{t:<topic>}` |
/// | `mqtt:msg:<msgid>` | `mqtt:msg:{t:<topic>}:<msgid>` |
/// | `mqtt:acked:<clientid>:<topic>` | `mqtt:acked:{t:<topic>}:<clientid>` |
/// | scores from the counter `mqtt:msg_seq` | microseconds of the writer's clock, never below a topic's last score plus one |
///
/// ```
/// use backend_redis::keys::cluster;
/// assert_eq!(cluster::msg_topic("a/b"), "mqtt:msg:{t:a/b}");
/// assert_eq!(cluster::msg("a/b", "ID"), "mqtt:msg:{t:a/b}:ID");
/// assert_eq!(cluster::acked("c1", "a/b"), "mqtt:acked:{t:a/b}:c1");
/// // A topic with a `}` still gives all its keys one tag.
/// assert_eq!(cluster::tag("x}y"), cluster::tag("x}z"));
/// assert_ne!(cluster::tag("x"), cluster::tag("y"));
/// ```
pub mod cluster {
    /// `mqtt:msg:{t:<topic>}`: sorted set of the topic's message ids,
    /// scored in microseconds (rising per topic).
    pub fn msg_topic(topic: &str) -> String {
        format!("mqtt:msg:{{t:{topic}}}")
    }

    /// `mqtt:msg:{t:<topic>}:<msgid>`: hash of one stored message (the
    /// seed's fields), expiring after `msg.expired_after`; the set's name
    /// and `:` then the id, which the scripts rely on.
    pub fn msg(topic: &str, message_id: &str) -> String {
        format!("mqtt:msg:{{t:{topic}}}:{message_id}")
    }

    /// `mqtt:acked:{t:<topic>}:<clientid>`: a client's pubsub read position
    /// on a topic (the score of the newest message it acknowledged).
    pub fn acked(client_id: &str, topic: &str) -> String {
        format!("mqtt:acked:{{t:{topic}}}:{client_id}")
    }

    /// `{mqtt:msg_topics}:swept`: the topics the sweeper found without
    /// messages once (a second time, they leave [`super::msg_topics`]).
    /// Its hash tag is the index's whole name, so both share a slot.
    pub fn swept_topics() -> &'static str {
        "{mqtt:msg_topics}:swept"
    }

    /// What decides a topic's hash slot: Redis hashes the text between
    /// the first `{` and the next `}`, so `t:` and the topic up to its
    /// first `}`. Topics with equal tags share a slot, and the backend
    /// groups a batch's writes by it (returned without the `t:`).
    pub fn tag(topic: &str) -> &str {
        topic.find('}').map_or(topic, |end| &topic[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_names() {
        assert_eq!(client("test"), "mqtt:client:test");
        assert_eq!(node("emqx@127.0.0.1"), "mqtt:node:emqx@127.0.0.1");
        assert_eq!(sub("test"), "mqtt:sub:test");
        assert_eq!(msg("6P9NLcJ65VXBbC22sYb4"), "mqtt:msg:6P9NLcJ65VXBbC22sYb4");
        assert_eq!(msg_topic("a/b"), "mqtt:msg:a/b");
        assert_eq!(acked("c", "a/+"), "mqtt:acked:c:a/+");
        assert_eq!(retain("topic"), "mqtt:retain:topic");
    }

    #[test]
    fn added_keys_are_outside_the_seed_prefixes() {
        let seed = [
            client("c"),
            node("n"),
            sub("c"),
            msg("m"),
            acked("c", "t"),
            retain("t"),
        ];
        for k in &seed {
            assert!(SEED_PREFIXES.iter().any(|p| k.starts_with(p)), "{k}");
        }
        for k in [msg_seq(), msg_topics(), retain_topics()] {
            for p in SEED_PREFIXES {
                assert!(!k.starts_with(p), "{k} is under {p}");
            }
        }
    }

    #[test]
    fn lex_ranges() {
        assert_eq!(lex_range(""), (b"-".to_vec(), b"+".to_vec()));
        let (min, max) = lex_range("a/");
        assert_eq!(min, b"[a/");
        assert_eq!(max, b"(a0");
    }
}
