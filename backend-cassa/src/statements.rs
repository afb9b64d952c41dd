//! The CQL of the built-in functions. Every value is a bind marker; the
//! tables are those of `etc/emqx_backend_cassa.cql`, in the session's
//! keyspace.

pub(crate) const ONLINE: &str =
    "INSERT INTO client (client_id, node, state, connected, disconnected) \
     VALUES (?, ?, 1, ?, null)";
pub(crate) const OFFLINE: &str =
    "UPDATE client SET state = 0, node = ?, disconnected = ? WHERE client_id = ?";
pub(crate) const STATUS: &str =
    "SELECT node, state, connected, disconnected FROM client WHERE client_id = ?";

pub(crate) const SUBSCRIPTIONS: &str = "SELECT topic, qos FROM sub WHERE client_id = ?";
pub(crate) const STORE_SUBSCRIPTION: &str =
    "INSERT INTO sub (client_id, topic, qos) VALUES (?, ?, ?)";
pub(crate) const DELETE_SUBSCRIPTION: &str = "DELETE FROM sub WHERE client_id = ? AND topic = ?";

pub(crate) const STORE_MESSAGE: &str = "INSERT INTO msg \
     (topic, seq, msgid, sender, username, qos, retain, payload, arrived, props) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
pub(crate) const STORE_MESSAGE_SEQ: &str =
    "INSERT INTO msg_seq (topic, msgid, seq) VALUES (?, ?, ?)";
pub(crate) const MESSAGE_SEQ: &str = "SELECT seq FROM msg_seq WHERE topic = ? AND msgid = ?";
/// The fallback of `MESSAGE_SEQ`: filtering within one partition only.
pub(crate) const MESSAGE_SEQ_IN_TOPIC: &str =
    "SELECT seq FROM msg WHERE topic = ? AND msgid = ? ALLOW FILTERING";
pub(crate) const INDEX_MESSAGE_TOPIC: &str = "INSERT INTO msg_topic (root, topic) VALUES (?, ?)";
pub(crate) const MESSAGE_ROOTS: &str = "SELECT DISTINCT root FROM msg_topic";
pub(crate) const MESSAGE_TOPICS: &str = "SELECT topic FROM msg_topic WHERE root = ?";
pub(crate) const MESSAGES: &str = "SELECT seq, msgid, sender, username, qos, retain, payload, \
     arrived, props FROM msg WHERE topic = ? AND seq > ? AND seq < ?";
/// [`MESSAGES`], the oldest `LIMIT ?` only: a page of a backlog.
pub(crate) const MESSAGES_PAGE: &str =
    "SELECT seq, msgid, sender, username, qos, retain, payload, \
     arrived, props FROM msg WHERE topic = ? AND seq > ? AND seq < ? LIMIT ?";
pub(crate) const MESSAGE_TIMES: &str = "SELECT seq, msgid, arrived FROM msg WHERE topic = ?";
pub(crate) const DELETE_MESSAGE: &str = "DELETE FROM msg WHERE topic = ? AND seq = ? AND msgid = ?";
pub(crate) const DELETE_MESSAGE_SEQ: &str = "DELETE FROM msg_seq WHERE topic = ? AND msgid = ?";

pub(crate) const ACKED: &str = "SELECT seq FROM acked WHERE client_id = ? AND topic = ?";
pub(crate) const SET_ACKED: &str =
    "INSERT INTO acked (client_id, topic, msgid, seq) VALUES (?, ?, ?, ?)";
pub(crate) const START: &str = "SELECT seq FROM sub_start WHERE client_id = ? AND filter = ?";
pub(crate) const SET_START: &str =
    "INSERT INTO sub_start (client_id, filter, seq) VALUES (?, ?, ?)";

pub(crate) const STORE_RETAINED: &str = "INSERT INTO retain \
     (topic, msgid, sender, username, qos, payload, arrived, props) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
pub(crate) const INDEX_RETAINED_TOPIC: &str =
    "INSERT INTO retain_topic (root, topic) VALUES (?, ?)";
pub(crate) const DELETE_RETAINED: &str = "DELETE FROM retain WHERE topic = ?";
pub(crate) const UNINDEX_RETAINED_TOPIC: &str =
    "DELETE FROM retain_topic WHERE root = ? AND topic = ?";
pub(crate) const RETAINED: &str =
    "SELECT topic, msgid, sender, username, qos, payload, arrived, props \
     FROM retain WHERE topic = ?";
pub(crate) const RETAINED_ROOTS: &str = "SELECT DISTINCT root FROM retain_topic";
pub(crate) const RETAINED_TOPICS: &str = "SELECT topic FROM retain_topic WHERE root = ?";

pub(crate) const PING: &str = "SELECT release_version FROM system.local";
