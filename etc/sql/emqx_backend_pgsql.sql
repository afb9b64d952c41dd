-- Schema of the PostgreSQL backend (backend-pgsql).
--
--   createdb mqtt -E UTF8 -e
--   psql -d mqtt -f etc/sql/emqx_backend_pgsql.sql      (or \i in psql)
--
-- The seed's tables and column names, so queries written for EMQX's
-- emqx_backend_pgsql keep working. Deviations (see backend-pgsql/README.md):
--   * payload columns are bytea, not text: MQTT payloads are binary;
--   * ids are BIGSERIAL and mqtt_acked.mid bigint: upserts consume sequence
--     values, so int4 would run out on a busy broker;
--   * clientid, topic, sender and node are text: MQTT allows client ids and
--     topics far longer than varchar(100)/varchar(200);
--   * topic columns of mqtt_msg and mqtt_retain use COLLATE "C" (byte order),
--     so a topic prefix is an index range;
--   * mqtt_msg and mqtt_retain have a nullable `node` column, as the seed's
--     sample output shows;
--   * mqtt_msg and mqtt_retain have a nullable `props` column: the message's
--     MQTT 5 properties (expiry, user properties, content type, response
--     topic, correlation data, payload format) in MQTT 5's own encoding,
--     NULL for an MQTT 3.1.1 message (the ALTER TABLEs below add it to
--     tables created from the seed's schema, keeping their rows);
--   * indexes the backend's queries need (below).
-- Times are stored in UTC in the `timestamp` (without time zone) columns.
--
-- Every statement is idempotent: running the file again, or on tables
-- created from the seed's schema, creates only what is missing.

CREATE TABLE IF NOT EXISTS mqtt_client (
  id BIGSERIAL PRIMARY KEY,
  clientid text,
  state integer,
  node text,
  online_at timestamp,
  offline_at timestamp,
  created timestamp without time zone,
  UNIQUE (clientid)
);

CREATE TABLE IF NOT EXISTS mqtt_sub (
  id BIGSERIAL PRIMARY KEY,
  clientid text,
  topic text,
  qos integer,
  created timestamp without time zone,
  UNIQUE (clientid, topic)
);

CREATE TABLE IF NOT EXISTS mqtt_msg (
  id BIGSERIAL PRIMARY KEY,
  msgid character varying(60),
  sender text,
  topic text COLLATE "C",
  qos integer,
  retain integer,
  payload bytea,
  arrived timestamp without time zone
);
ALTER TABLE mqtt_msg ADD COLUMN IF NOT EXISTS node text;
ALTER TABLE mqtt_msg ADD COLUMN IF NOT EXISTS props bytea;
-- Acks and re-stores find a message by its id; ON CONFLICT (msgid) needs it unique.
CREATE UNIQUE INDEX IF NOT EXISTS mqtt_msg_msgid_key ON mqtt_msg (msgid);
-- Fetches: an exact topic, or a topic prefix range, in store (id) order.
CREATE INDEX IF NOT EXISTS mqtt_msg_topic_id_idx ON mqtt_msg (topic, id);
-- The sweeper: messages past time_range, oldest first.
CREATE INDEX IF NOT EXISTS mqtt_msg_arrived_idx ON mqtt_msg (arrived);

CREATE TABLE IF NOT EXISTS mqtt_retain (
  id BIGSERIAL PRIMARY KEY,
  topic text COLLATE "C",
  msgid character varying(60),
  sender text,
  qos integer,
  payload bytea,
  arrived timestamp without time zone,
  UNIQUE (topic)
);
ALTER TABLE mqtt_retain ADD COLUMN IF NOT EXISTS node text;
ALTER TABLE mqtt_retain ADD COLUMN IF NOT EXISTS props bytea;

CREATE TABLE IF NOT EXISTS mqtt_acked (
  id BIGSERIAL PRIMARY KEY,
  clientid text,
  topic text,
  mid bigint,
  created timestamp without time zone,
  UNIQUE (clientid, topic)
);
