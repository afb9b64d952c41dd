-- Schema of the MySQL/MariaDB backend (backend-mysql).
--
--   mysql -u root -p -e 'CREATE DATABASE IF NOT EXISTS mqtt CHARACTER SET utf8mb4'
--   mysql -u root -p mqtt < etc/sql/emqx_backend_mysql.sql
--
-- The seed's tables and column names, so queries written for EMQX's
-- emqx_backend_mysql keep working. Deviations (see backend-mysql/README.md):
--   * payload columns are LONGBLOB, not BLOB: BLOB holds 64 KiB, MQTT
--     payloads reach 256 MiB;
--   * the character set is utf8mb4, not utf8: MySQL's utf8 is 3-byte and
--     rejects 4-byte UTF-8 (emoji) in topics, client ids, senders and nodes;
--   * clientid, topic and msgid are VARBINARY: compared byte for byte
--     (case-sensitive, and no PAD SPACE: `a` and `a ` are two topics, which
--     under utf8mb4_bin they are not), and byte order is index order, so a
--     topic prefix is an index range;
--   * ids are BIGINT UNSIGNED and mqtt_acked.mid BIGINT UNSIGNED: REPLACE
--     and upserts consume AUTO_INCREMENT values, so INT would run out;
--   * key lengths fit InnoDB's 3072-byte index limit (clientid 1024 bytes,
--     topic 2048 bytes) instead of varchar(64)/varchar(200);
--   * times the backend writes are DATETIME(3), in UTC, with milliseconds;
--     mqtt_retain.arrived is DATETIME(3) rather than TIMESTAMP (no 2038 limit,
--     no time-zone conversion);
--   * mqtt_msg and mqtt_retain have a `props` column: the message's MQTT 5
--     properties (expiry, user properties, content type, response topic,
--     correlation data, payload format) in MQTT 5's own encoding, NULL for
--     an MQTT 3.1.1 message. A table created from the seed gains it without
--     losing a row:
--       ALTER TABLE mqtt_msg ADD COLUMN props longblob;
--       ALTER TABLE mqtt_retain ADD COLUMN props longblob;
--   * mqtt_msg.msgid is UNIQUE (acks and re-stores find a message by it);
--     mqtt_msg has an index on (topic, id) for fetches; the seed's redundant
--     mqtt_client_idx and mqtt_sub_idx are left out (the unique keys cover them).
--
-- Every statement is idempotent: CREATE TABLE IF NOT EXISTS creates only the
-- tables that are missing (it does not alter a table created from the seed's
-- schema; the backend's start-up check names what such a table lacks).

CREATE TABLE IF NOT EXISTS `mqtt_client` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `clientid` varbinary(1024) DEFAULT NULL,
  `state` varchar(3) DEFAULT NULL,
  `node` varchar(255) DEFAULT NULL,
  `online_at` datetime(3) DEFAULT NULL,
  `offline_at` datetime(3) DEFAULT NULL,
  `created` timestamp NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_client_key` (`clientid`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_sub` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `clientid` varbinary(1024) DEFAULT NULL,
  `topic` varbinary(2048) DEFAULT NULL,
  `qos` int(3) DEFAULT NULL,
  `created` timestamp NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_sub_key` (`clientid`,`topic`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_msg` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `msgid` varbinary(255) DEFAULT NULL,
  `topic` varbinary(2048) NOT NULL,
  `sender` varchar(1024) DEFAULT NULL,
  `node` varchar(255) DEFAULT NULL,
  `qos` int(11) NOT NULL DEFAULT '0',
  `retain` tinyint(2) DEFAULT NULL,
  `payload` longblob,
  `arrived` datetime(3) NOT NULL,
  `props` longblob,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_msg_msgid_key` (`msgid`),
  KEY `mqtt_msg_topic_id_idx` (`topic`,`id`),
  KEY `mqtt_msg_arrived_idx` (`arrived`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_retain` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `topic` varbinary(2048) DEFAULT NULL,
  `msgid` varbinary(255) DEFAULT NULL,
  `sender` varchar(1024) DEFAULT NULL,
  `node` varchar(255) DEFAULT NULL,
  `qos` int(2) DEFAULT NULL,
  `payload` longblob,
  `arrived` datetime(3) NOT NULL,
  `props` longblob,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_retain_key` (`topic`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS `mqtt_acked` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT,
  `clientid` varbinary(1024) DEFAULT NULL,
  `topic` varbinary(2048) DEFAULT NULL,
  `mid` bigint unsigned DEFAULT NULL,
  `created` timestamp NULL DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `mqtt_acked_key` (`clientid`,`topic`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Not in the seed: a one-row lock table. Message writers lock the row
-- `mqtt_msg` here until they commit, so message ids become visible in id
-- order and a pubsub reader's position never passes an id still to commit.
-- The backend creates the row on first use.
CREATE TABLE IF NOT EXISTS `mqtt_msg_lock` (
  `name` varchar(64) NOT NULL,
  PRIMARY KEY (`name`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
