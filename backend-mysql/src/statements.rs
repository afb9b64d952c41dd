//! The SQL the built-in functions run, for reading and for `EXPLAIN`.
//! Every statement is prepared once per connection and kept in
//! mysql_async's per-connection statement cache (see
//! [`crate::MysqlConfig::stmt_cache_size`]). Times are bound as UTC
//! `DATETIME` values; `created` columns get the server's clock, in UTC (the
//! sessions run with `time_zone = '+00:00'`).
//!
//! Statements of many rows (batches) have one text per row count: each is
//! prepared the first time a connection sees that count.

pub use backend_core::sql_filter as filter;

use filter::{TopicCondition, TopicMatch};

/// `on_client_connected`: client id, node, online_at.
pub const CLIENT_ONLINE: &str = "\
INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at) VALUES (?, '1', ?, ?, NULL) \
ON DUPLICATE KEY UPDATE state = '1', node = VALUES(node), online_at = VALUES(online_at), offline_at = NULL";

/// `on_client_disconnected`: client id, node (kept if the row exists),
/// offline_at.
pub const CLIENT_OFFLINE: &str = "\
INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at) VALUES (?, '0', ?, NULL, ?) \
ON DUPLICATE KEY UPDATE state = '0', offline_at = VALUES(offline_at)";

/// A client's recorded state: client id.
pub const CLIENT_STATUS: &str =
    "SELECT state, node, online_at, offline_at FROM mqtt_client WHERE clientid = ?";

/// `on_subscribe_lookup`: client id; filters in byte order.
pub const LOOKUP_SUBSCRIPTIONS: &str =
    "SELECT topic, qos FROM mqtt_sub WHERE clientid = ? ORDER BY topic";

/// A pubsub subscription's start (NULL before its first fetch) and the
/// newest message id: client id, filter.
pub const PUBSUB_START: &str = "\
SELECT (SELECT mid FROM mqtt_acked WHERE clientid = ? AND topic = ?), \
(SELECT COALESCE(MAX(id), 0) FROM mqtt_msg)";

/// Records a pubsub subscription's start (if no concurrent first fetch did):
/// client id, filter, message id.
pub const MARK_START: &str = "\
INSERT INTO mqtt_acked (clientid, topic, mid, created) VALUES (?, ?, ?, NOW()) \
ON DUPLICATE KEY UPDATE mid = mqtt_acked.mid";

/// `, (?, ?, ...)` repeated: `n` rows of `cols` placeholders.
fn rows(n: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    vec![row; n].join(", ")
}

fn list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Stores `n` subscriptions (client id, filter, qos each), replacing the
/// QoS of existing ones; rows apply in order.
pub fn store_subscriptions(n: usize) -> String {
    format!(
        "INSERT INTO mqtt_sub (clientid, topic, qos) VALUES {} ON DUPLICATE KEY UPDATE qos = VALUES(qos)",
        rows(n, 3)
    )
}

/// Removes `n` subscriptions of one client: client id, then the filters.
pub fn delete_subscriptions(n: usize) -> String {
    format!(
        "DELETE FROM mqtt_sub WHERE clientid = ? AND topic IN ({})",
        list(n)
    )
}

macro_rules! serial_lock {
    () => {
        "INSERT INTO mqtt_msg_lock (name) VALUES ('mqtt_msg') ON DUPLICATE KEY UPDATE name = name"
    };
}

/// Locks the row `mqtt_msg` of `mqtt_msg_lock` (creating it if missing)
/// until the transaction ends. Message writers take it first, so they
/// commit one at a time and ids become visible in id order: a pubsub
/// reader that acks id 11 can then never have an id 10 still to commit.
pub const SERIAL_LOCK: &str = serial_lock!();

macro_rules! load_messages {
    () => {
        "LOAD DATA LOCAL INFILE 'mqtt_msg' REPLACE INTO TABLE mqtt_msg CHARACTER SET binary \
         FIELDS TERMINATED BY X'09' ENCLOSED BY '' ESCAPED BY X'5C' \
         LINES STARTING BY '' TERMINATED BY X'0A' \
         (msgid, sender, topic, qos, retain, payload, arrived, props)"
    };
}

/// `on_message_publish` through the bulk path: the rows come as the
/// stream the client sends for the file (see the crate's `load_data`
/// module), never in this text; `REPLACE` as in [`store_messages`]. The
/// separators are hex literals, so the statement means the same under
/// `NO_BACKSLASH_ESCAPES`. The name `'mqtt_msg'` is no file: the backend
/// answers the server's request with its own rows, whatever it names.
pub const LOAD_MESSAGES: &str = load_messages!();

/// [`SERIAL_LOCK`] and then [`LOAD_MESSAGES`], as one round trip of two
/// statements (in a transaction the backend has started).
pub const LOCK_THEN_LOAD: &str = concat!(serial_lock!(), "; ", load_messages!());

/// The sweeper: removes up to `?` (second) messages that arrived before
/// `?` (first), oldest first; run until it removes fewer.
pub const REMOVE_MESSAGES_BEFORE: &str =
    "DELETE FROM mqtt_msg WHERE arrived < ? ORDER BY arrived LIMIT ?";

/// `on_message_publish` of `n` messages in one statement (msgid, sender,
/// topic, qos, retain, payload, arrived each). Ids follow the rows' order.
/// `REPLACE`: storing a msgid again deletes the old row and inserts a new
/// one, with a new id (as MemoryBackend moves it to the end).
pub fn store_messages(n: usize) -> String {
    format!(
        "REPLACE INTO mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived, props) VALUES {}",
        rows(n, 8)
    )
}

/// Queue-mode ack: deletes `n` messages by msgid.
pub fn ack_queue(n: usize) -> String {
    format!("DELETE FROM mqtt_msg WHERE msgid IN ({})", list(n))
}

/// Pubsub ack of `n` messages (client id, topic, msgid each): each
/// (client, topic) position moves forward to its newest acked message.
pub fn ack_pubsub(n: usize) -> String {
    let mut acks = String::from("SELECT ? AS clientid, ? AS topic, ? AS msgid");
    for _ in 1..n {
        acks.push_str(" UNION ALL SELECT ?, ?, ?");
    }
    format!(
        "INSERT INTO mqtt_acked (clientid, topic, mid, created) \
SELECT a.clientid, a.topic, MAX(m.id), NOW() FROM ({acks}) AS a \
JOIN mqtt_msg m ON m.msgid = a.msgid GROUP BY a.clientid, a.topic \
ON DUPLICATE KEY UPDATE mid = GREATEST(mqtt_acked.mid, VALUES(mid))"
    )
}

/// `on_message_retain` of `n` messages (topic, msgid, sender, qos,
/// payload, arrived each): each replaces its topic's; rows apply in order.
pub fn store_retained(n: usize) -> String {
    format!(
        "INSERT INTO mqtt_retain (topic, msgid, sender, qos, payload, arrived, props) VALUES {} \
ON DUPLICATE KEY UPDATE msgid = VALUES(msgid), sender = VALUES(sender), qos = VALUES(qos), \
payload = VALUES(payload), arrived = VALUES(arrived), props = VALUES(props)",
        rows(n, 7)
    )
}

/// `on_retain_delete` of `n` topics.
pub fn delete_retained(n: usize) -> String {
    format!("DELETE FROM mqtt_retain WHERE topic IN ({})", list(n))
}

/// `on_retain_lookup`: the topic condition's parameters.
pub fn lookup_retained(target: &TopicMatch) -> String {
    let (cond, _) = target.condition("topic");
    format!(
        "SELECT topic, msgid, sender, qos, payload, arrived, props FROM mqtt_retain WHERE {cond} ORDER BY topic"
    )
}

/// The fetch statement: [`backend_core::sql_filter::fetch_statement`],
/// the same SQL on every backend with the seed's tables and `?`.
pub use backend_core::sql_filter::fetch_statement as fetch;

#[cfg(test)]
mod tests {
    use super::filter::topic_match;
    use super::*;

    fn placeholders(s: &str) -> usize {
        s.matches('?').count()
    }

    #[test]
    fn placeholder_counts() {
        assert_eq!(placeholders(&store_messages(3)), 24);
        assert_eq!(placeholders(&ack_pubsub(4)), 12);
        assert_eq!(placeholders(&store_retained(2)), 14);
        assert_eq!(placeholders(&delete_subscriptions(2)), 3);
        let t = topic_match("a/#");
        assert_eq!(
            placeholders(&fetch(true, &t, true, true, false)),
            1 + 4 + 1 + 1 + 1
        );
        assert_eq!(
            placeholders(&fetch(false, &topic_match("a"), false, true, true)),
            2
        );
        assert_eq!(
            placeholders(&fetch(false, &topic_match("a"), false, false, false)),
            1
        );
    }
}
