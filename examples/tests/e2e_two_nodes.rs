//! Two broker nodes (`--node a@...`, `--node b@...`) sharing one Redis, as
//! brokers that are not clustered with each other share their storage: a
//! persistent client moves from one node to the other and gets its
//! offline messages there, each once; its status names the node it is on;
//! and a subscription sent on the Redis channel reaches the client on
//! whichever node holds it (the other node, which both listen on, leaves
//! it alone).
#![cfg(feature = "redis")]

#[macro_use]
mod common;

use std::time::Duration;

use common::db::Db;
use common::{payloads, unique, Broker, Client};
use rumqttc::QoS;

/// Both nodes on `conf`, named `a@127.0.0.1` and `b@127.0.0.1`.
async fn two_nodes(conf: &std::path::Path) -> (Broker, Broker) {
    let conf = conf.display().to_string();
    let a = Broker::start(&["--config", &conf, "--node", "a@127.0.0.1"]).await;
    let b = Broker::start(&["--config", &conf, "--node", "b@127.0.0.1"]).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moving_between_nodes_gets_its_offline_messages_once() {
    let db = Db::redis().await;
    let conf = db.config_file(&unique("two-nodes"), &[]);
    let (a, b) = two_nodes(&conf).await;
    let id = unique("mover");
    let topic = format!("queue/{id}");

    // On node a: a persistent session subscribed to its queue topic.
    let mut device = Client::connect(a.port, &id, false).await;
    device.subscribe(&topic, QoS::AtLeastOnce).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let on_a = db.status(&id).await.expect("a status row");
    assert_eq!((on_a.state, on_a.node.as_str()), (1, "a@127.0.0.1"));
    device.disconnect().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Published on node b while the device is away: only the database
    // has them (the nodes are not clustered).
    let publisher = Client::connect(b.port, &unique("pub"), true).await;
    for n in 1..=3 {
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, format!("m{n}").as_bytes())
            .await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    // The device comes back on node b, which has no session for it.
    let mut device = Client::connect(b.port, &id, false).await;
    device.subscribe(&topic, QoS::AtLeastOnce).await;
    let got = device
        .collect(Duration::from_secs(2), Duration::from_secs(10))
        .await;
    assert_eq!(
        payloads(&got),
        vec!["m1", "m2", "m3"],
        "each stored message once, in order, on node b\nnode b log:\n{}",
        b.log_text()
    );
    let on_b = db.status(&id).await.expect("a status row");
    assert_eq!((on_b.state, on_b.node.as_str()), (1, "b@127.0.0.1"));
    device.disconnect().await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Back on node a, whose session waited: the messages were acknowledged
    // on b (queue mode deletes them), so nothing comes again.
    let mut device = Client::connect(a.port, &id, false).await;
    device.subscribe(&topic, QoS::AtLeastOnce).await;
    let again = device
        .collect(Duration::from_secs(2), Duration::from_secs(5))
        .await;
    assert!(
        again.is_empty(),
        "delivered again on node a: {:?}",
        payloads(&again)
    );
    assert_eq!(
        db.status(&id).await.map(|s| s.node),
        Some("a@127.0.0.1".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_subscription_reaches_the_client_on_its_node() {
    let db = Db::redis().await;
    let channel = unique("chan2");
    let conf = db.config_file(
        &unique("two-nodes-ch"),
        &[format!("backend.redis.pool1.channel = {channel}")],
    );
    let (a, b) = two_nodes(&conf).await;
    let id = unique("dev2");
    let topic = format!("cmd/{id}");
    // The device is on node b; both nodes listen to the channel.
    let mut device = Client::connect(b.port, &id, true).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    db.publish_channel(
        &channel,
        &format!(r#"{{"type": "subscribe", "topic": "{topic}", "clientid": "{id}", "qos": "1"}}"#),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let publisher = Client::connect(b.port, &unique("pub2"), true).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, b"hello")
        .await;
    let got = device
        .collect(Duration::from_secs(2), Duration::from_secs(10))
        .await;
    assert_eq!(
        payloads(&got),
        vec!["hello"],
        "once, on node b\nnode a log:\n{}\nnode b log:\n{}",
        a.log_text(),
        b.log_text()
    );
    assert!(
        a.log_text().contains("not connected here"),
        "node a saw the command and left it:\n{}",
        a.log_text()
    );
}
