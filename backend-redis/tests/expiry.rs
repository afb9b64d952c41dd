//! `msg.expired_after`: expired messages are never returned, and what they
//! leave behind (set members, index entries) is cleaned up lazily.

mod common;

use std::time::Duration;

use backend_core::testkit::unique;
use backend_core::{Backend, Config, FetchRequest, Message, OfflineMode, QoS};
use backend_redis::keys;
use common::cmd;

fn config(expired_after: i64) -> Config {
    Config::parse(&format!(
        "backend.redis.msg.expired_after = {expired_after}\n"
    ))
    .expect("config")
}

fn request(client: &str, filter: &str, mode: OfflineMode) -> FetchRequest {
    FetchRequest {
        client_id: client.into(),
        filter: filter.into(),
        mode,
        max_count: None,
        since: None,
        page: None,
    }
}

#[tokio::test]
async fn expired_messages_are_never_returned_and_are_cleaned_up() {
    let short = common::backend_with(&[], &config(1)).await;
    let long = common::backend_with(&[], &config(600)).await;
    let mut c = common::plain().await;
    let root = unique("exp");
    let topic = format!("{root}/t");
    let sub = unique("exp-sub");
    let wild = format!("{root}/#");
    assert!(short
        .fetch_messages(&request(&sub, &wild, OfflineMode::Pubsub))
        .await
        .expect("start")
        .is_empty());
    let gone = Message::new("p", &topic, QoS::AtLeastOnce, "short-lived");
    short
        .store_messages(std::slice::from_ref(&gone), Default::default())
        .await
        .expect("store short");
    let ttl: i64 = cmd(&mut c, &[b"TTL", keys::msg(&gone.id).as_bytes()]).await;
    assert_eq!(ttl, 1, "EXPIRE msg.expired_after");
    let kept = Message::new("p", &topic, QoS::AtLeastOnce, "long-lived");
    long.store_messages(std::slice::from_ref(&kept), Default::default())
        .await
        .expect("store long");
    let got = long
        .fetch_messages(&request("q", &wild, OfflineMode::Queue))
        .await
        .expect("fetch");
    assert_eq!(got.len(), 2, "both before expiry");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let exists: i64 = cmd(&mut c, &[b"EXISTS", keys::msg(&gone.id).as_bytes()]).await;
    assert_eq!(exists, 0, "Redis expired the hash");
    let member: Option<f64> = cmd(
        &mut c,
        &[
            b"ZSCORE",
            keys::msg_topic(&topic).as_bytes(),
            gone.id.as_bytes(),
        ],
    )
    .await;
    assert!(member.is_some(), "its set member dangles until a fetch");
    for (mode, client) in [
        (OfflineMode::Queue, "q"),
        (OfflineMode::Pubsub, sub.as_str()),
    ] {
        let got = short
            .fetch_messages(&request(client, &wild, mode))
            .await
            .expect("fetch");
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [kept.id.as_str()],
            "{mode:?}: the expired message is not returned"
        );
    }
    let member: Option<f64> = cmd(
        &mut c,
        &[
            b"ZSCORE",
            keys::msg_topic(&topic).as_bytes(),
            gone.id.as_bytes(),
        ],
    )
    .await;
    assert_eq!(member, None, "the dangling member was removed");
    // The set lives as long as its newest message, not the shortest.
    let ttl: i64 = cmd(&mut c, &[b"TTL", keys::msg_topic(&topic).as_bytes()]).await;
    assert!(ttl > 500, "{ttl}");
}

#[tokio::test]
async fn a_topic_whose_messages_all_expired_leaves_the_index() {
    let b = common::backend_with(&[], &config(1)).await;
    let mut c = common::plain().await;
    let root = unique("exp-all");
    let topic = format!("{root}/a");
    let msgs: Vec<Message> = (0..3)
        .map(|i| Message::new("p", &topic, QoS::ExactlyOnce, format!("{i}")))
        .collect();
    b.store_messages(&msgs, Default::default())
        .await
        .expect("store");
    let ttl: i64 = cmd(&mut c, &[b"TTL", keys::msg_topic(&topic).as_bytes()]).await;
    assert_eq!(ttl, 1, "the topic set expires with its newest message");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let got = b
        .fetch_messages(&request("q", &format!("{root}/+"), OfflineMode::Queue))
        .await
        .expect("fetch");
    assert!(got.is_empty(), "{got:?}");
    let in_index: Option<f64> = cmd(
        &mut c,
        &[b"ZSCORE", keys::msg_topics().as_bytes(), topic.as_bytes()],
    )
    .await;
    assert_eq!(in_index, None, "a topic without a set leaves the index");
}

#[tokio::test]
async fn zero_or_negative_means_the_default() {
    let b = common::backend_with(&[], &config(0)).await;
    assert_eq!(b.settings().msg_expired_after, Duration::from_secs(7200));
    let b = common::backend_with(&[], &config(-5)).await;
    assert_eq!(b.settings().msg_expired_after, Duration::from_secs(7200));
}

/// A topic published to and never fetched stays bounded: each store drops
/// up to four members whose hash expired from the front of the set.
#[tokio::test]
async fn stores_trim_expired_members_of_a_topic_never_fetched() {
    let short = common::backend_with(&[], &config(1)).await;
    let long = common::backend_with(&[], &config(600)).await;
    let mut c = common::plain().await;
    let topic = format!("{}/t", unique("exp-trim"));
    let set = keys::msg_topic(&topic);
    let expiring: Vec<Message> = (0..5)
        .map(|i| Message::new("p", &topic, QoS::AtLeastOnce, format!("short{i}")))
        .collect();
    short
        .store_messages(&expiring, Default::default())
        .await
        .expect("store short-lived");
    let store_long = |n: usize| {
        let m = Message::new("p", &topic, QoS::AtLeastOnce, format!("long{n}"));
        let long = long.clone();
        async move {
            long.store_messages(std::slice::from_ref(&m), Default::default())
                .await
                .expect("store long-lived")
        }
    };
    store_long(0).await;
    let card: i64 = cmd(&mut c, &[b"ZCARD", set.as_bytes()]).await;
    assert_eq!(card, 6, "nothing expired yet");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    store_long(1).await;
    let card: i64 = cmd(&mut c, &[b"ZCARD", set.as_bytes()]).await;
    assert_eq!(card, 3, "four expired members dropped: one left, two live");
    store_long(2).await;
    let card: i64 = cmd(&mut c, &[b"ZCARD", set.as_bytes()]).await;
    assert_eq!(card, 3, "the last expired member dropped: three live");
}
