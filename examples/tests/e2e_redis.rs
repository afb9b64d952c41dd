//! The broker on Redis (`--features redis`), driven by real MQTT clients.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::db::Db;
use common::scenarios;
use common::{payloads, unique, Broker, Client};
use rumqttc::QoS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_survive_a_broker_restart() {
    scenarios::offline_messages_survive_a_broker_restart(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_gets_each_message_once() {
    scenarios::persistent_session_gets_each_message_once(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_subscriptions_are_applied_on_connect() {
    scenarios::stored_subscriptions_are_applied_on_connect(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_survives_a_restart() {
    scenarios::retained_message_survives_a_restart(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_status_is_recorded() {
    scenarios::client_status_is_recorded(&Db::redis().await).await;
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_reconnects_are_accepted() {
    scenarios::quick_reconnects_are_accepted(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_is_kept_for_stored_messages() {
    scenarios::no_local_is_kept_for_stored_messages(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_survive_a_sigterm() {
    scenarios::acks_survive_a_sigterm(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_v5_session_gets_each_message_once() {
    scenarios::persistent_v5_session_gets_each_message_once(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_come_once() {
    scenarios::retained_messages_come_once(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_after_the_suback_comes_once() {
    scenarios::a_message_after_the_suback_comes_once(&Db::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_holds_for_stored_retained_messages() {
    scenarios::retain_handling_holds_for_stored_retained_messages(&Db::redis().await).await;
}
