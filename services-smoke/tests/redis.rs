//! Redis through `redis` (tokio, multiplexed connection): SET a unique key,
//! GET it back, DEL it.

use redis::AsyncCommands;
use services_smoke::{step, unique_key, REDIS};

#[tokio::test]
async fn redis_set_get_roundtrip() {
    let url = REDIS.url();
    let mut con = step(&REDIS, &url, "connect", async {
        let client = redis::Client::open(url.as_str())?;
        client.get_multiplexed_async_connection().await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let key = unique_key("services-smoke:redis");
    let value = format!("value of {key}");

    step(
        &REDIS,
        &url,
        "SET",
        con.set_ex::<_, _, ()>(&key, &value, 60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let got: Option<String> = step(&REDIS, &url, "GET", con.get(&key))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deleted: usize = step(&REDIS, &url, "DEL", con.del(&key))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        got.as_deref(),
        Some(value.as_str()),
        "Redis GET returned another value"
    );
    assert_eq!(deleted, 1, "Redis DEL did not delete the key");
}
