//! The broker on SQLite (`--features sqlite`, the default): the scenarios
//! every backend passes, and the broker started with no flags at all
//! keeping offline messages in its data folder across a restart.
#![cfg(feature = "sqlite")]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::db::Db;
use common::scenarios::{publish_acked, subscribe_and_leave};
use common::{payloads, unique, Broker, Client};
use rumqttc::QoS;

broker_scenarios!(Db::sqlite());

/// `broker --data-dir DIR` (the default rules, SQLite in DIR): a
/// persistent subscriber away, 1,000 offline messages, the broker stopped
/// and started; all 1,000 arrive once, in order on each topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_broker_keeps_offline_messages_across_a_restart() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("data-"));
    let dir_arg = dir.display().to_string();
    let broker = Broker::start(&["--data-dir", &dir_arg]).await;
    let sub_id = unique("device");
    let root = unique("fleet");
    let filter = format!("{root}/#");
    subscribe_and_leave(broker.port, &sub_id, false, &filter).await;
    let topics: Vec<String> = (0..4).map(|i| format!("{root}/t{i}")).collect();
    publish_acked(broker.port, &topics, 250).await;
    let broker = broker.restart_gracefully().await;
    assert!(
        dir.join("mqtt.db").is_file(),
        "the database is in the data folder"
    );
    let mut sub = Client::connect(broker.port, &sub_id, false).await;
    sub.subscribe(&filter, QoS::AtLeastOnce).await;
    let got = payloads(&sub.expect(1000, Duration::from_secs(60)).await);
    assert_eq!(got.len(), 1000, "each message once:\n{}", broker.log_text());
    let distinct: BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), 1000, "no message twice");
    for k in 0..4 {
        let on_topic: Vec<usize> = got
            .iter()
            .filter_map(|p| p.strip_prefix(&format!("{k}:")))
            .map(|i| i.parse().expect("a number"))
            .collect();
        assert_eq!(on_topic, (0..250).collect::<Vec<_>>(), "topic {k} in order");
    }
    sub.disconnect().await;
}
