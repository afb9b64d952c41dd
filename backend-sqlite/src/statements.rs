//! The SQL the built-in functions run. Each is prepared once per
//! connection (rusqlite's statement cache) and run once per row inside one
//! transaction: with no server round trip per statement, that costs less
//! than building a multi-row statement per batch size.

use backend_core::sql_filter::{TopicCondition, TopicMatch};

/// `on_client_connected`: client id, node, online_at.
pub const CLIENT_ONLINE: &str = "\
INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at) VALUES (?1, '1', ?2, ?3, NULL) \
ON CONFLICT (clientid) DO UPDATE SET state = '1', node = excluded.node, \
online_at = excluded.online_at, offline_at = NULL";

/// `on_client_disconnected`: client id, node (kept if the row exists),
/// offline_at.
pub const CLIENT_OFFLINE: &str = "\
INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at) VALUES (?1, '0', ?2, NULL, ?3) \
ON CONFLICT (clientid) DO UPDATE SET state = '0', offline_at = excluded.offline_at";

/// A client's recorded state: client id.
pub const CLIENT_STATUS: &str =
    "SELECT state, node, online_at, offline_at FROM mqtt_client WHERE clientid = ?1";

/// `on_subscribe_lookup`: client id; filters in byte order.
pub const LOOKUP_SUBSCRIPTIONS: &str =
    "SELECT topic, qos FROM mqtt_sub WHERE clientid = ?1 ORDER BY topic";

/// Stores a subscription (client id, filter, qos), replacing the QoS of
/// an existing one.
pub const STORE_SUBSCRIPTION: &str = "\
INSERT INTO mqtt_sub (clientid, topic, qos) VALUES (?1, ?2, ?3) \
ON CONFLICT (clientid, topic) DO UPDATE SET qos = excluded.qos";

/// Removes a subscription: client id, filter.
pub const DELETE_SUBSCRIPTION: &str = "DELETE FROM mqtt_sub WHERE clientid = ?1 AND topic = ?2";

/// `on_message_publish` (msgid, sender, topic, qos, retain, payload,
/// arrived, props). Storing a msgid again replaces the row, with a new id
/// (the message moves to the end, as in every backend).
pub const STORE_MESSAGE: &str = "\
INSERT OR REPLACE INTO mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived, props) \
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Queue-mode ack: deletes a message by msgid.
pub const ACK_QUEUE: &str = "DELETE FROM mqtt_msg WHERE msgid = ?1";

/// Pubsub ack (client id, topic, msgid): the (client, topic) position
/// moves forward to the acked message, never back.
pub const ACK_PUBSUB: &str = "\
INSERT INTO mqtt_acked (clientid, topic, mid) SELECT ?1, ?2, id FROM mqtt_msg WHERE msgid = ?3 \
ON CONFLICT (clientid, topic) DO UPDATE SET mid = max(mqtt_acked.mid, excluded.mid)";

/// A pubsub subscription's start (NULL before its first fetch) and the
/// newest message id: client id, filter.
pub const PUBSUB_START: &str = "\
SELECT (SELECT mid FROM mqtt_acked WHERE clientid = ?1 AND topic = ?2), \
(SELECT COALESCE(MAX(id), 0) FROM mqtt_msg)";

/// Records a pubsub subscription's start: client id, filter, message id.
pub const MARK_START: &str = "\
INSERT INTO mqtt_acked (clientid, topic, mid) VALUES (?1, ?2, ?3) \
ON CONFLICT (clientid, topic) DO NOTHING";

/// `on_message_retain` (topic, msgid, sender, qos, payload, arrived,
/// props): replaces the topic's retained message.
pub const STORE_RETAINED: &str = "\
INSERT INTO mqtt_retain (topic, msgid, sender, qos, payload, arrived, props) \
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
ON CONFLICT (topic) DO UPDATE SET msgid = excluded.msgid, sender = excluded.sender, \
qos = excluded.qos, payload = excluded.payload, arrived = excluded.arrived, props = excluded.props";

/// `on_retain_delete`: a topic.
pub const DELETE_RETAINED: &str = "DELETE FROM mqtt_retain WHERE topic = ?1";

/// The sweeper: removes up to `?2` messages that arrived before `?1`,
/// oldest first; run until it removes fewer.
pub const REMOVE_MESSAGES_BEFORE: &str = "\
DELETE FROM mqtt_msg WHERE id IN \
(SELECT id FROM mqtt_msg WHERE arrived < ?1 ORDER BY arrived LIMIT ?2)";

/// `on_retain_lookup`: the topic condition's parameters.
pub fn lookup_retained(target: &TopicMatch) -> String {
    let (cond, _) = target.condition("topic");
    format!(
        "SELECT topic, msgid, sender, qos, payload, arrived, props FROM mqtt_retain \
WHERE {cond} ORDER BY topic"
    )
}
