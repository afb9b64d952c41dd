-- Schema of the SQLite backend (backend-sqlite).
--
--   sqlite3 data/mqtt.db < etc/sql/emqx_backend_sqlite.sql
--
-- The backend runs this file itself when `create_tables` is true (its
-- default). The seed's tables and column names, as the MySQL and
-- PostgreSQL backends have them, so statements written for those keep
-- working. What SQLite does differently:
--   * times are INTEGER milliseconds since the Unix epoch, UTC (SQLite has
--     no datetime type; `datetime(arrived / 1000, 'unixepoch')` shows one);
--     a raw statement's ${timestamp} is bound the same way;
--   * client ids, topics and message ids are TEXT compared byte for byte
--     (SQLite's BINARY collation): case-sensitive, and byte order is index
--     order, so a topic prefix is an index range;
--   * mqtt_msg.id is AUTOINCREMENT: an id is never used twice, even after
--     the newest message was deleted, so a subscriber's read position
--     (mqtt_acked.mid) never points at a later message;
--   * mqtt_msg and mqtt_retain have a `props` column: the message's MQTT 5
--     properties in MQTT 5's own encoding, NULL for an MQTT 3.1.1 message;
--   * mqtt_msg.msgid is UNIQUE (acks and re-stores find a message by it);
--     mqtt_msg has an index on (topic, id) for fetches and on arrived for
--     the sweeper.
--
-- Every statement is idempotent (IF NOT EXISTS).

CREATE TABLE IF NOT EXISTS mqtt_client (
  id INTEGER PRIMARY KEY,
  clientid TEXT NOT NULL UNIQUE,
  state TEXT,
  node TEXT,
  online_at INTEGER,
  offline_at INTEGER,
  created INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
);

CREATE TABLE IF NOT EXISTS mqtt_sub (
  id INTEGER PRIMARY KEY,
  clientid TEXT NOT NULL,
  topic TEXT NOT NULL,
  qos INTEGER NOT NULL,
  created INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
  UNIQUE (clientid, topic)
);

CREATE TABLE IF NOT EXISTS mqtt_msg (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  msgid TEXT NOT NULL UNIQUE,
  topic TEXT NOT NULL,
  sender TEXT,
  node TEXT,
  qos INTEGER NOT NULL DEFAULT 0,
  retain INTEGER,
  payload BLOB,
  arrived INTEGER NOT NULL,
  props BLOB
);

CREATE INDEX IF NOT EXISTS mqtt_msg_topic_id_idx ON mqtt_msg (topic, id);

CREATE INDEX IF NOT EXISTS mqtt_msg_arrived_idx ON mqtt_msg (arrived);

CREATE TABLE IF NOT EXISTS mqtt_retain (
  id INTEGER PRIMARY KEY,
  topic TEXT NOT NULL UNIQUE,
  msgid TEXT,
  sender TEXT,
  node TEXT,
  qos INTEGER,
  payload BLOB,
  arrived INTEGER NOT NULL,
  props BLOB
);

CREATE TABLE IF NOT EXISTS mqtt_acked (
  id INTEGER PRIMARY KEY,
  clientid TEXT NOT NULL,
  topic TEXT NOT NULL,
  mid INTEGER NOT NULL,
  created INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
  UNIQUE (clientid, topic)
);
