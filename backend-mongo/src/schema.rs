//! The collections and indexes: `etc/emqx_backend_mongo.js`, embedded, and
//! the same indexes created at connect.

use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

/// The set-up file (`js/emqx_backend_mongo.js` in this crate, the same as
/// `etc/emqx_backend_mongo.js` in the repository).
pub const SETUP_JS: &str = include_str!("../js/emqx_backend_mongo.js");

/// Client status: `{clientid, state, node, online_at, offline_at}`.
pub const CLIENT: &str = "mqtt_client";
/// Subscriptions: `{clientid, topic, qos}`.
pub const SUB: &str = "mqtt_sub";
/// Messages: `{_id, topic, msgid, sender, qos, retain, payload, arrived}`.
pub const MSG: &str = "mqtt_msg";
/// Retained messages: `{topic, msgid, sender, qos, payload, arrived}`.
pub const RETAIN: &str = "mqtt_retain";
/// Read positions: `{clientid, topic, mongo_id}`.
pub const ACKED: &str = "mqtt_acked";
/// The message id counter: `{_id: "mqtt_msg", seq}`.
pub const SEQ: &str = "mqtt_seq";
/// Message writers in flight: `{_id, after, at, topics}`, one document
/// per store while it runs. `after` is a counter value read before the writer took
/// its ids, so every id it takes is above it; a pubsub reader reads no
/// further than the lowest `after` of the writers on topics it reads (see
/// the README's "Pubsub reads never skip").
pub const WRITERS: &str = "mqtt_msg_writers";

/// One index: collection, key fields and directions, unique, name.
pub type IndexSpec = (
    &'static str,
    &'static [(&'static str, i32)],
    bool,
    &'static str,
);

/// Every index (as in [`SETUP_JS`]).
pub const INDEXES: [IndexSpec; 8] = [
    (CLIENT, &[("clientid", 1)], true, "mqtt_client_clientid"),
    (
        SUB,
        &[("clientid", 1), ("topic", 1)],
        true,
        "mqtt_sub_clientid_topic",
    ),
    (
        MSG,
        &[("sender", 1), ("topic", 1)],
        false,
        "mqtt_msg_sender_topic",
    ),
    (MSG, &[("msgid", 1)], true, "mqtt_msg_msgid"),
    (MSG, &[("topic", 1), ("_id", 1)], false, "mqtt_msg_topic_id"),
    (MSG, &[("arrived", 1)], false, "mqtt_msg_arrived"),
    (RETAIN, &[("topic", 1)], true, "mqtt_retain_topic"),
    (
        ACKED,
        &[("clientid", 1), ("topic", 1)],
        true,
        "mqtt_acked_clientid_topic",
    ),
];

/// Creates the indexes of [`INDEXES`] (collections come with them).
pub async fn create_indexes(db: &Database) -> mongodb::error::Result<()> {
    for (coll, keys, unique, name) in INDEXES {
        let mut key = Document::new();
        for (field, dir) in keys {
            key.insert(*field, *dir);
        }
        let options = IndexOptions::builder()
            .unique(unique.then_some(true))
            .name(name.to_owned())
            .build();
        let model = IndexModel::builder().keys(key).options(options).build();
        db.collection::<Document>(coll).create_index(model).await?;
    }
    Ok(())
}

/// The filter of the counter document.
pub fn seq_filter() -> Document {
    doc! { "_id": MSG }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The crate carries its set-up file (so it packages on its own); the
    /// repository's `etc/` copy must be the same.
    #[test]
    fn etc_copy_is_identical() {
        let etc =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/emqx_backend_mongo.js");
        match std::fs::read_to_string(&etc) {
            Ok(text) => assert_eq!(text, SETUP_JS, "{} differs", etc.display()),
            Err(e) => panic!("{}: {e}", etc.display()),
        }
    }

    #[test]
    fn indexes_are_in_the_js() {
        for (coll, _, unique, name) in INDEXES {
            let line = SETUP_JS
                .lines()
                .find(|l| l.contains(&format!("name: \"{name}\"")))
                .unwrap_or_else(|| panic!("{name} not in the set-up file"));
            assert!(line.starts_with(&format!("db.{coll}.createIndex(")));
            assert_eq!(line.contains("unique: true"), unique, "{name}");
        }
    }
}
