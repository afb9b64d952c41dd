//! The broker on Redis (`--features redis`), driven by real MQTT clients.
#![cfg(feature = "redis")]

#[macro_use]
mod common;

use std::time::Duration;

use common::db::Db;
use common::{payloads, unique, Broker, Client};
use rumqttc::QoS;

/// A business server publishes a subscribe command on the channel; the
/// online client is subscribed and receives what is then published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_subscribes_an_online_client() {
    let db = Db::redis().await;
    let channel = unique("chan");
    let conf = db.config_file(
        &unique("channel"),
        &[format!("backend.redis.pool1.channel = {channel}")],
    );
    let broker = Broker::start(&["--config", &conf.display().to_string()]).await;
    let id = unique("dev");
    let topic = format!("cmd/{id}");
    let mut device = Client::connect(broker.port, &id, true).await;
    // The listener subscribes to the channel shortly after start.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    db.publish_channel(
        &channel,
        &format!(r#"{{"type": "subscribe", "topic": "{topic}", "clientid": "{id}", "qos": "1"}}"#),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let publisher = Client::connect(broker.port, &unique("pub"), true).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, b"hello")
        .await;
    let got = device.expect(1, Duration::from_secs(10)).await;
    assert_eq!(
        payloads(&got),
        vec!["hello"],
        "broker log:\n{}",
        broker.log_text()
    );

    db.publish_channel(
        &channel,
        &format!(r#"{{"type": "unsubscribe", "topic": "{topic}", "clientid": "{id}"}}"#),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, b"after")
        .await;
    let got = device
        .collect(Duration::from_secs(1), Duration::from_secs(3))
        .await;
    assert!(
        got.is_empty(),
        "still subscribed after unsubscribe: {:?}",
        payloads(&got)
    );
    device.disconnect().await;
    publisher.disconnect().await;
}

broker_scenarios!(Db::redis());
