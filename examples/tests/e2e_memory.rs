//! The broker on its in-memory storage (`--backend memory`) with the
//! project's Redis rules (queue/# and pubsub/#), driven by real MQTT
//! clients. The Redis rules need the redis kind: `--features redis`.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::db::Db;
use common::scenarios;
use common::{payloads, unique, Broker, Client};
use rumqttc::QoS;

const WAIT: Duration = Duration::from_secs(10);

/// The broker on the in-memory backend.
async fn start_in_memory() -> Broker {
    let args = Db::memory().broker_args(&unique("memory"), &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Broker::start(&args).await
}

/// A persistent QoS 1 subscriber that goes offline gets each message once,
/// in order, when it comes back and subscribes again; once acked, never again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_gets_each_message_once() {
    scenarios::persistent_session_gets_each_message_once(&Db::memory()).await;
}

/// Without a persistent session the broker keeps nothing for the client:
/// the stored messages come from the backend alone, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_messages_reach_a_clean_session_subscriber() {
    let broker = start_in_memory().await;
    let topic = format!("pubsub/{}", unique("c"));
    let sub_id = unique("clean");
    scenarios::subscribe_and_leave(broker.port, &sub_id, true, &topic).await;
    scenarios::publish_numbered(broker.port, &topic, "c", 3, Duration::from_millis(500)).await;

    let mut sub = Client::connect(broker.port, &sub_id, true).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    assert_eq!(payloads(&sub.expect(3, WAIT).await), vec!["c0", "c1", "c2"]);
    sub.disconnect().await;
    let max = Duration::from_secs(3);
    scenarios::nothing_comes_again(broker.port, &sub_id, true, &topic, max, "acked messages").await;
}

/// A retained message reaches a new subscriber on a wildcard filter, with
/// the retain flag; an empty retained payload deletes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_reach_wildcard_subscribers() {
    let broker = start_in_memory().await;
    let root = unique("r");
    let publisher = Client::connect(broker.port, &unique("pub"), true).await;
    publisher
        .publish(&format!("{root}/a"), QoS::AtLeastOnce, true, b"kept")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut sub = Client::connect(broker.port, &unique("sub"), true).await;
    sub.subscribe(&format!("{root}/+"), QoS::AtLeastOnce).await;
    let got = sub.expect(1, WAIT).await;
    assert_eq!(payloads(&got), vec!["kept"]);
    assert!(got[0].retain, "delivered with the retain flag");
    sub.disconnect().await;

    publisher
        .publish(&format!("{root}/a"), QoS::AtLeastOnce, true, b"")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (id, filter, max) = (unique("sub"), format!("{root}/#"), Duration::from_secs(3));
    scenarios::nothing_comes_again(
        broker.port,
        &id,
        true,
        &filter,
        max,
        "a deleted retained message",
    )
    .await;
    publisher.disconnect().await;
}

/// Queue mode: a message published while nobody listens goes to the first
/// subscriber, and once acked to nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_messages_go_to_one_subscriber() {
    let broker = start_in_memory().await;
    let topic = format!("queue/{}", unique("q"));
    let publisher = Client::connect(broker.port, &unique("pub"), true).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, b"job-1")
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut first = Client::connect(broker.port, &unique("w1"), true).await;
    first.subscribe(&topic, QoS::AtLeastOnce).await;
    assert_eq!(payloads(&first.expect(1, WAIT).await), vec!["job-1"]);
    first.disconnect().await;

    let max = Duration::from_secs(3);
    scenarios::nothing_comes_again(
        broker.port,
        &unique("w2"),
        true,
        &topic,
        max,
        "an acked queue message",
    )
    .await;
    publisher.disconnect().await;
}

/// `--check-config` prints each problem with its line and fails; a good
/// file passes.
#[test]
fn check_config_reports_lines() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let bad = dir.join("bad.conf");
    std::fs::write(
        &bad,
        "backend.redis.pool1.server = 127.0.0.1:6379\nbackend.redis.hook.client.connected.1 = {\"action\": {\"function\": \"on_client_conected\"}, \"pool\": \"pool1\"}\n",
    )
    .expect("write the bad config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("--check-config")
        .arg(&bad)
        .output()
        .expect("run the broker");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "line 2: backend.redis.hook.client.connected.1: unknown function `on_client_conected`"
        ),
        "{err}"
    );
    let good = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../etc/emqx_backend_pgsql.conf"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(["--check-config", good])
        .output()
        .expect("run the broker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (pgsql backend"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_reconnects_are_accepted() {
    scenarios::quick_reconnects_are_accepted(&Db::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_is_kept_for_stored_messages() {
    scenarios::no_local_is_kept_for_stored_messages(&Db::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_v5_session_gets_each_message_once() {
    scenarios::persistent_v5_session_gets_each_message_once(&Db::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_come_once() {
    scenarios::retained_messages_come_once(&Db::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_after_the_suback_comes_once() {
    scenarios::a_message_after_the_suback_comes_once(&Db::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_holds_for_stored_retained_messages() {
    scenarios::retain_handling_holds_for_stored_retained_messages(&Db::memory()).await;
}

/// The broker turns transparent huge pages off for its own process (the
/// allocator's retaken memory faulted in whole zeroed 2 MiB pages): the
/// kernel reports it in the process's status.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_runs_without_transparent_huge_pages() {
    let broker = start_in_memory().await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.pid()))
        .expect("the broker's /proc status");
    let thp = status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(thp, Some("0"), "THP_enabled in {status}");
}
