// MongoDB set-up of the MQTT storage backend (backend-mongo), for the mongo
// shell (mongosh): the seed's collections, with the indexes the backend's
// queries need. The backend creates the same indexes itself at connect
// (createIndexes is idempotent), so running this file is optional.
//
//   mongosh mqtt etc/emqx_backend_mongo.js
//
// Deviations from the seed's set-up:
//   * createIndex instead of the removed ensureIndex;
//   * mqtt_client: {clientid: 1} unique (status upserts) instead of
//     {clientid: 1, node: 2};
//   * mqtt_sub: {clientid: 1, topic: 1} unique (subscription upserts)
//     instead of {clientid: 1};
//   * mqtt_msg: {sender: 1, topic: 1} as the seed, plus {msgid: 1} unique
//     (acks find messages by id) and {topic: 1, _id: 1} (fetches: a topic
//     or topic-prefix range, in store order) and {arrived: 1} (the sweeper
//     removing messages past time_range);
//   * mqtt_retain: {topic: 1} unique (retained upserts);
//   * mqtt_acked (the seed creates it without an index):
//     {clientid: 1, topic: 1} unique (read positions);
//   * mqtt_seq: one counter document {_id: "mqtt_msg", seq: <last id>} from
//     which mqtt_msg _ids are taken with findAndModify + $inc;
//   * mqtt_msg_writers: one document per message store in flight
//     {after, at, topics}; pubsub reads stop below the lowest `after` on
//     their topics, so they never pass an id taken but not yet inserted.

db.createCollection("mqtt_client")
db.createCollection("mqtt_sub")
db.createCollection("mqtt_msg")
db.createCollection("mqtt_retain")
db.createCollection("mqtt_acked")
db.createCollection("mqtt_seq")
db.createCollection("mqtt_msg_writers")

db.mqtt_client.createIndex({clientid: 1}, {unique: true, name: "mqtt_client_clientid"})
db.mqtt_sub.createIndex({clientid: 1, topic: 1}, {unique: true, name: "mqtt_sub_clientid_topic"})
db.mqtt_msg.createIndex({sender: 1, topic: 1}, {name: "mqtt_msg_sender_topic"})
db.mqtt_msg.createIndex({msgid: 1}, {unique: true, name: "mqtt_msg_msgid"})
db.mqtt_msg.createIndex({topic: 1, _id: 1}, {name: "mqtt_msg_topic_id"})
db.mqtt_msg.createIndex({arrived: 1}, {name: "mqtt_msg_arrived"})
db.mqtt_retain.createIndex({topic: 1}, {unique: true, name: "mqtt_retain_topic"})
db.mqtt_acked.createIndex({clientid: 1, topic: 1}, {unique: true, name: "mqtt_acked_clientid_topic"})
