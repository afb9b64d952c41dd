//! `type = cluster` against the six-node Redis Cluster (three masters,
//! three replicas) that `scripts/services.sh redis-cluster` starts
//! (`REDIS_CLUSTER_NODES`, default 127.0.0.1:30001-30006): the whole
//! conformance suite, the hash-tagged layout, and batches spread over the
//! masters. Fails, never skips, when the cluster is down.

#![cfg(feature = "cluster")]

#[path = "common/cluster.rs"]
mod cluster;

use backend_core::testkit::OrPanic;
use std::collections::HashSet;
use std::sync::Arc;

use backend_core::testkit::{unique, RawFixture};
use backend_core::{Backend, FetchRequest, Message, OfflineMode, QoS, WriteOptions};
use backend_redis::keys::cluster as layout;
use cluster::{connect, master_of};

async fn backend() -> Arc<dyn Backend> {
    Arc::new(connect(&[]).await)
}

backend_core::conformance_tests!(backend, RawFixture::redis());

#[tokio::test]
async fn a_topics_keys_share_its_slot_and_batches_span_masters() {
    let b = connect(&[]).await;
    let root = unique("cl-layout");
    // Topics spread over slots, so over the three masters.
    let topics: Vec<String> = (0..24).map(|i| format!("{root}/{i}")).collect();
    let messages: Vec<Message> = topics
        .iter()
        .map(|t| Message::new("p", t.as_str(), QoS::AtLeastOnce, t.as_bytes().to_vec()))
        .collect();
    b.store_messages(&messages, WriteOptions::default())
        .await
        .expect("one batch over many slots");
    let mut masters = HashSet::new();
    for m in &messages {
        let set = master_of(&b, &layout::msg_topic(&m.topic)).await;
        assert_eq!(set, master_of(&b, &layout::msg(&m.topic, &m.id)).await);
        assert_eq!(set, master_of(&b, &layout::acked("c", &m.topic)).await);
        masters.insert(set);
    }
    assert_eq!(masters.len(), 3, "24 topics land on all three masters");
    let got = b
        .fetch_messages(&FetchRequest {
            client_id: "cl".into(),
            filter: format!("{root}/+"),
            mode: OfflineMode::Queue,
            max_count: None,
            since: None,
            page: None,
        })
        .await
        .expect("fetch over all masters");
    let ids: HashSet<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), messages.len());
    assert!(messages.iter().all(|m| ids.contains(m.id.as_str())));
}

/// The SUB/UNSUB channel on a cluster: the listener subscribes on a seed
/// node, and a command published on any node reaches it.
#[tokio::test]
async fn a_channel_command_published_on_any_node_reaches_the_listener() {
    use backend_redis::ChannelCommand;
    let channel = unique("cl-chan");
    let b = connect(&[]).await;
    let mut listener = b.listen_to(&channel).expect("listen");
    assert!(
        listener
            .wait_subscribed(std::time::Duration::from_secs(10))
            .await,
        "subscribed on a seed node"
    );
    for port in [30002, 30003] {
        let client = backend_redis::redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .expect("a node's address");
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .or_panic(&format!("node {port}"));
        let json =
            format!(r#"{{"type": "subscribe", "topic": "t/{port}", "clientid": "c", "qos": "1"}}"#);
        let _: i64 = backend_redis::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&json)
            .query_async(&mut c)
            .await
            .expect("PUBLISH");
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), listener.recv())
            .await
            .expect("a command within 10 s")
            .expect("the listener runs");
        match got {
            ChannelCommand::Subscribe { topic, .. } => assert_eq!(topic, format!("t/{port}")),
            other => panic!("{other:?}"),
        }
    }
}
