//! A MongoDB wire-protocol server (FerretDB here; a real mongod when
//! `MONGO_URL` points at one) through `mongodb`: ping, insert a document with a
//! unique `_id`, find it back, delete it.

use std::time::Duration;

use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use services_smoke::{step, unique_key, MONGO};

#[tokio::test]
async fn mongo_insert_find_roundtrip() {
    let url = MONGO.url();
    let client = step(&MONGO, &url, "connect", async {
        let mut opts = ClientOptions::parse(&url).await?;
        opts.server_selection_timeout = Some(Duration::from_secs(10));
        opts.connect_timeout = Some(Duration::from_secs(10));
        let client = mongodb::Client::with_options(opts)?;
        // The client connects lazily: ping makes it reach the server now.
        client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await?;
        Ok::<_, mongodb::error::Error>(client)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let coll = client
        .database("services_smoke")
        .collection::<Document>("kv");
    let key = unique_key("mongo");
    let value = format!("value of {key} ✓");

    step(
        &MONGO,
        &url,
        "insert_one",
        coll.insert_one(doc! { "_id": &key, "v": &value, "n": 42_i64 }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got = step(
        &MONGO,
        &url,
        "find_one",
        coll.find_one(doc! { "_id": &key }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let deleted = step(
        &MONGO,
        &url,
        "delete_one",
        coll.delete_one(doc! { "_id": &key }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let got = got.unwrap_or_else(|| panic!("{}: find_one found no document {key}", MONGO.name));
    assert_eq!(
        got.get_str("v").ok(),
        Some(value.as_str()),
        "document read back: {got}"
    );
    assert_eq!(got.get_i64("n").ok(), Some(42), "document read back: {got}");
    assert_eq!(
        deleted.deleted_count, 1,
        "delete_one did not delete the document"
    );
}
