//! The SQL the built-in functions run, for reading and for `EXPLAIN`.
//! Each is prepared once per connection and cached. Times are bound as
//! UTC `timestamp`s; `created` columns get the server's clock in UTC.

use std::sync::LazyLock;

/// `on_client_connected`: `$1` client id, `$2` node, `$3` online_at.
pub const CLIENT_ONLINE: &str = "\
INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at, created)
VALUES ($1, 1, $2, $3, NULL, timezone('UTC', now()))
ON CONFLICT (clientid) DO UPDATE
   SET state = 1, node = EXCLUDED.node, online_at = EXCLUDED.online_at, offline_at = NULL";

/// `on_client_disconnected`: `$1` client id, `$2` node (kept if the row
/// exists), `$3` offline_at.
pub const CLIENT_OFFLINE: &str = "\
INSERT INTO mqtt_client (clientid, state, node, online_at, offline_at, created)
VALUES ($1, 0, $2, NULL, $3, timezone('UTC', now()))
ON CONFLICT (clientid) DO UPDATE SET state = 0, offline_at = EXCLUDED.offline_at";

/// A client's recorded state: `$1` client id.
pub const CLIENT_STATUS: &str =
    "SELECT state, node, online_at, offline_at FROM mqtt_client WHERE clientid = $1";

/// `on_subscribe_lookup`: `$1` client id; filters in byte order.
pub const LOOKUP_SUBSCRIPTIONS: &str =
    "SELECT topic, qos FROM mqtt_sub WHERE clientid = $1 ORDER BY topic COLLATE \"C\"";

/// Stores subscriptions: `$1` client id, `$2` filters, `$3` QoS.
pub const STORE_SUBSCRIPTIONS: &str = "\
INSERT INTO mqtt_sub (clientid, topic, qos, created)
SELECT $1::text, s.topic, s.qos, timezone('UTC', now())
  FROM unnest($2::text[], $3::int4[]) AS s(topic, qos)
ON CONFLICT (clientid, topic) DO UPDATE SET qos = EXCLUDED.qos";

/// Removes subscriptions: `$1` client id, `$2` filters.
pub const DELETE_SUBSCRIPTIONS: &str =
    "DELETE FROM mqtt_sub WHERE clientid = $1 AND topic = ANY ($2::text[])";

/// The text of [`SERIAL_LOCK`], for `concat!`.
macro_rules! serial_lock {
    () => {
        "WITH serial AS (SELECT pg_advisory_xact_lock('mqtt_msg'::regclass::oid::bigint))\n"
    };
}

/// Takes the message table's transaction-scoped advisory lock (keyed by
/// the table's oid), so that message writers commit one at a time and ids
/// become visible in id order: a pubsub reader that acks id 11 can then
/// never have an id 10 still to commit. Held until the statement's
/// transaction ends.
pub const SERIAL_LOCK: &str = serial_lock!();

/// The text of one message's row, for `concat!`.
macro_rules! insert_message {
    () => {
        "\
INSERT INTO mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived, props)
SELECT $1::varchar, $2::text, $3::text, $4::int4, $5::int4, $6::bytea, $7::timestamp, $8::bytea FROM serial"
    };
}

/// The text of a batch's rows in array order, for `concat!`.
macro_rules! insert_messages {
    () => {
        "\
INSERT INTO mqtt_msg (msgid, sender, topic, qos, retain, payload, arrived, props)
SELECT m.msgid, m.sender, m.topic, m.qos, m.retain, m.payload, m.arrived, m.props
  FROM serial, unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], $6::bytea[], $7::timestamp[], $8::bytea[])
   WITH ORDINALITY AS m(msgid, sender, topic, qos, retain, payload, arrived, props, n)
 ORDER BY m.n"
    };
}

/// Storing a msgid again: the row gets a new id, as if deleted and
/// inserted (for `concat!`).
macro_rules! replace_message {
    () => {
        "
ON CONFLICT (msgid) DO UPDATE
   SET id = nextval(pg_get_serial_sequence('mqtt_msg', 'id')),
       sender = EXCLUDED.sender, topic = EXCLUDED.topic, qos = EXCLUDED.qos,
       retain = EXCLUDED.retain, payload = EXCLUDED.payload, arrived = EXCLUDED.arrived,
       props = EXCLUDED.props"
    };
}

/// `on_message_publish` of one new message: `$1` msgid, `$2` sender, `$3`
/// topic, `$4` qos, `$5` retain, `$6` payload, `$7` arrived, `$8` props
/// (MQTT 5 properties, or NULL). Runs under [`SERIAL_LOCK`]. A msgid
/// already stored fails it with a unique violation; [`STORE_MESSAGE`]
/// then stores it again. A plain insert costs the server about a quarter
/// less per row than `ON CONFLICT`'s speculative insertion, and a msgid
/// comes back only when a write is replayed.
pub const INSERT_MESSAGE: &str = concat!(serial_lock!(), insert_message!());

/// [`INSERT_MESSAGE`] for a msgid that may be stored already: storing it
/// again gives the row a new id, as if deleted and inserted.
pub const STORE_MESSAGE: &str = concat!(serial_lock!(), insert_message!(), replace_message!());

/// A batch of new messages (the arrays of [`INSERT_MESSAGE`]'s
/// parameters); ids follow the arrays' order. Runs under [`SERIAL_LOCK`];
/// a msgid already stored fails it, and [`STORE_MESSAGES`] runs instead.
pub const INSERT_MESSAGES: &str = concat!(serial_lock!(), insert_messages!());

/// [`INSERT_MESSAGES`] for msgids that may be stored already: storing one
/// again gives its row a new id, as if deleted and inserted.
pub const STORE_MESSAGES: &str = concat!(serial_lock!(), insert_messages!(), replace_message!());

/// The sweeper: removes up to `$2` messages that arrived before `$1`,
/// oldest first (an index range on `arrived`); run until it removes fewer.
pub const REMOVE_MESSAGES_BEFORE: &str = "\
DELETE FROM mqtt_msg WHERE id IN (
  SELECT id FROM mqtt_msg WHERE arrived < $1 ORDER BY arrived LIMIT $2)";

/// Queue-mode ack: deletes the messages `$1` (msgids).
pub const ACK_QUEUE: &str = "DELETE FROM mqtt_msg WHERE msgid = ANY ($1::text[])";

/// Marks each acked message and those before it on its topic read for
/// its client: the position only moves forward.
pub const ACK_PUBSUB: &str = "\
INSERT INTO mqtt_acked (clientid, topic, mid, created)
SELECT a.clientid, a.topic, max(m.id), timezone('UTC', now())
  FROM unnest($1::text[], $2::text[], $3::text[]) AS a(clientid, topic, msgid)
  JOIN mqtt_msg m ON m.msgid = a.msgid
 GROUP BY a.clientid, a.topic
 ORDER BY a.clientid, a.topic
ON CONFLICT (clientid, topic) DO UPDATE SET mid = GREATEST(mqtt_acked.mid, EXCLUDED.mid)";

/// `on_message_retain`: replaces each topic's retained message.
pub const STORE_RETAINED: &str = "\
INSERT INTO mqtt_retain (topic, msgid, sender, qos, payload, arrived, props)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::bytea[], $6::timestamp[], $7::bytea[])
ON CONFLICT (topic) DO UPDATE
   SET msgid = EXCLUDED.msgid, sender = EXCLUDED.sender, qos = EXCLUDED.qos,
   payload = EXCLUDED.payload, arrived = EXCLUDED.arrived, props = EXCLUDED.props";

/// `on_retain_delete`: `$1` topics.
pub const DELETE_RETAINED: &str = "DELETE FROM mqtt_retain WHERE topic = ANY ($1::text[])";

/// `on_retain_lookup` of a filter without wildcards: `$1` topic.
pub const RETAINED_EXACT: &str =
    "SELECT topic, msgid, sender, qos, payload, arrived, props FROM mqtt_retain WHERE topic = $1";

/// `on_retain_lookup` of a wildcard filter: `$1`..`$2` the literal
/// prefix's byte range, `$3` the filter as a regular expression.
pub const RETAINED_RANGE: &str = "\
SELECT topic, msgid, sender, qos, payload, arrived, props FROM mqtt_retain
 WHERE topic COLLATE \"C\" >= $1 AND topic COLLATE \"C\" < $2 AND topic ~ $3
 ORDER BY topic COLLATE \"C\"";

/// `on_retain_lookup` of a filter starting with a wildcard: `$1` regex.
pub const RETAINED_SCAN: &str = "\
SELECT topic, msgid, sender, qos, payload, arrived, props FROM mqtt_retain
 WHERE topic ~ $1
 ORDER BY topic COLLATE \"C\"";

/// How a fetch selects topics (see `crate::filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A filter without wildcards: `topic = $n`.
    Exact,
    /// A literal prefix range plus a regular expression.
    Range,
    /// A regular expression alone (no usable prefix).
    Scan,
}

/// The fetch statement for a mode and shape, newest first (for a
/// `max_count` limit) or, with `oldest`, oldest first (for a page).
/// Parameters: `$1` since (timestamp or NULL), `$2` limit (int8 or NULL =
/// all); pubsub `$3` client id and `$4` filter; then the topic, or range
/// and regex, or regex.
pub fn fetch(pubsub: bool, shape: Shape, oldest: bool) -> &'static str {
    static ALL: LazyLock<Vec<String>> = LazyLock::new(|| {
        let mut all = Vec::with_capacity(12);
        for oldest in [false, true] {
            for pubsub in [false, true] {
                for shape in [Shape::Exact, Shape::Range, Shape::Scan] {
                    all.push(build(pubsub, shape, oldest));
                }
            }
        }
        all
    });
    let i = usize::from(oldest) * 6
        + usize::from(pubsub) * 3
        + match shape {
            Shape::Exact => 0,
            Shape::Range => 1,
            Shape::Scan => 2,
        };
    &ALL[i]
}

/// Builds the text [`fetch`] returns.
pub fn build(pubsub: bool, shape: Shape, oldest: bool) -> String {
    if oldest && shape != Shape::Exact {
        return build_page(pubsub, shape);
    }
    let order = if oldest { "ASC" } else { "DESC" };
    // A prefix range is read through the topic index and sorted: ordered
    // by the bare id, the planner may walk the whole primary key backwards
    // instead, filtering by topic, when it guesses that few rows match
    // (the regular expression's selectivity is a guess), which on a large
    // table reads every row.
    let order_by = match shape {
        Shape::Range => "m.id + 0",
        _ => "m.id",
    };
    let p = if pubsub { 5 } else { 3 };
    let topic = match shape {
        Shape::Exact => format!("m.topic = ${p}"),
        Shape::Range => format!(
            "m.topic COLLATE \"C\" >= ${p} AND m.topic COLLATE \"C\" < ${} AND m.topic ~ ${}",
            p + 1,
            p + 2
        ),
        Shape::Scan => format!("m.topic ~ ${p}"),
    };
    // One topic: its read position is one lookup, not one per row.
    let acked_topic = match shape {
        Shape::Exact => format!("${p}"),
        _ => "m.topic".to_owned(),
    };
    let since = "($1::timestamp IS NULL OR m.arrived >= $1)";
    if pubsub {
        // The first fetch of (client, filter) records the start (the
        // newest id so far) and returns nothing; later ones return what
        // came after the start and after the client's ack on each topic.
        format!(
            "WITH {FIRST}
SELECT {COLUMNS}
  FROM mqtt_msg m
 WHERE NOT EXISTS (SELECT 1 FROM first)
   AND {topic}
   AND {since}
   AND m.id > (SELECT s.mid FROM mqtt_acked s WHERE s.clientid = $3 AND s.topic = $4)
   AND m.id > COALESCE((SELECT a.mid FROM mqtt_acked a WHERE a.clientid = $3 AND a.topic = {acked_topic}), 0)
 ORDER BY {order_by} {order}
 LIMIT $2::int8"
        )
    } else {
        format!(
            "SELECT {COLUMNS}
  FROM mqtt_msg m
 WHERE {topic}
   AND {since}
 ORDER BY {order_by} {order}
 LIMIT $2::int8"
        )
    }
}

/// The columns a fetch returns, as `Message::from_row` reads them.
const COLUMNS: &str = "m.topic, m.msgid, m.sender, m.qos, m.retain, m.payload, m.arrived, m.props";

/// The pubsub start: the first fetch of (client, filter) records the
/// newest id so far as where the subscription starts.
const FIRST: &str = "first AS (
INSERT INTO mqtt_acked (clientid, topic, mid, created)
SELECT $3::text, $4::text, COALESCE(max(id), 0), timezone('UTC', now()) FROM mqtt_msg
ON CONFLICT (clientid, topic) DO NOTHING
RETURNING 1
)";

/// A page of a wildcard filter's backlog, oldest first, costing what the
/// page holds rather than the backlog: the filter's topics are walked one
/// index probe each (`topics`, a loose index scan of `(topic, id)`), each
/// topic gives its oldest `$2` unread rows from its read position on (an
/// index range), and the oldest `$2` of those are the page. A plain
/// `ORDER BY id LIMIT` would read and sort every matching row, acked ones
/// included, on every page.
fn build_page(pubsub: bool, shape: Shape) -> String {
    let p = if pubsub { 5 } else { 3 };
    let (range, regex) = match shape {
        Shape::Range => (
            format!(
                "m.topic COLLATE \"C\" >= ${p} AND m.topic COLLATE \"C\" < ${}",
                p + 1
            ),
            format!("${}", p + 2),
        ),
        _ => ("TRUE".to_owned(), format!("${p}")),
    };
    let since = "($1::timestamp IS NULL OR m.arrived >= $1)";
    let (first, unread, started) = if pubsub {
        (
            format!("{FIRST},\n"),
            "AND m.id > (SELECT s.mid FROM mqtt_acked s WHERE s.clientid = $3 AND s.topic = $4)
      AND m.id > COALESCE((SELECT a.mid FROM mqtt_acked a WHERE a.clientid = $3 AND a.topic = t.topic), 0)",
            "AND NOT EXISTS (SELECT 1 FROM first)",
        )
    } else {
        (String::new(), "", "")
    };
    format!(
        "WITH RECURSIVE {first}topics(topic) AS (
  SELECT min(m.topic COLLATE \"C\") FROM mqtt_msg m WHERE {range}
  UNION ALL
  SELECT (SELECT min(m.topic COLLATE \"C\") FROM mqtt_msg m
           WHERE {range} AND m.topic COLLATE \"C\" > t.topic)
    FROM topics t WHERE t.topic IS NOT NULL
)
SELECT {COLUMNS}
  FROM topics t
 CROSS JOIN LATERAL (
    SELECT m.* FROM mqtt_msg m
     WHERE m.topic = t.topic
      AND {since}
      {unread}
     ORDER BY m.id
     LIMIT $2::int8
 ) m
 WHERE t.topic IS NOT NULL
   AND t.topic ~ {regex}
   {started}
 ORDER BY m.id
 LIMIT $2::int8"
    )
}
