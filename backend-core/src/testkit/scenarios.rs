//! The scenarios of the conformance suite: each checks one part of the
//! behaviour contract ([`crate::contract`]) through the [`Backend`] trait, or
//! through an [`Engine`] over it where the contract is the engine's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;

use super::{unique, Ctx};
use crate::backend::{Ack, Backend, ErrorKind, FetchRequest};
use crate::config::{ActionJson, BackendKind, Config, ConfigSpec, OfflineMode, RuleJson, RuleSpec};
use crate::engine::Engine;
use crate::hook::{ClientInfo, Event, Hook, SessionSubscribed};
use crate::message::{Message, QoS, Subscription, Timestamp};
use crate::template::{Statement, Template};
use crate::value::Value;

fn msg(sender: &str, topic: &str, qos: QoS, payload: impl Into<Bytes>) -> Message {
    Message::new(sender, topic, qos, payload)
}

fn request(client: &str, filter: &str, mode: OfflineMode) -> FetchRequest {
    FetchRequest {
        client_id: client.to_owned(),
        filter: filter.to_owned(),
        mode,
        max_count: None,
        since: None,
    }
}

async fn fetch(b: &dyn Backend, client: &str, filter: &str, mode: OfflineMode) -> Vec<Message> {
    match b.fetch_messages(&request(client, filter, mode)).await {
        Ok(m) => m,
        Err(e) => panic!("fetch_messages({client}, {filter}, {mode:?}) failed: {e}"),
    }
}

async fn store(b: &dyn Backend, msgs: &[Message]) {
    if let Err(e) = b.store_messages(msgs, Default::default()).await {
        panic!("store_messages failed: {e}");
    }
}

async fn ack(b: &dyn Backend, mode: OfflineMode, client: &str, msgs: &[&Message]) {
    let acks: Vec<Ack> = msgs
        .iter()
        .map(|m| Ack {
            client_id: client.to_owned(),
            topic: m.topic.clone(),
            message_id: m.id.clone(),
        })
        .collect();
    if let Err(e) = b.ack_messages(mode, &acks).await {
        panic!("ack_messages({mode:?}) failed: {e}");
    }
}

fn ids(msgs: &[Message]) -> Vec<&str> {
    msgs.iter().map(|m| m.id.as_str()).collect()
}

/// Asserts the returned messages are `want`, in order, field for field
/// (times are compared to the second, since some stores keep no more).
fn assert_same(got: &[Message], want: &[&Message], what: &str) {
    let got_ids = ids(got);
    let want_ids: Vec<&str> = want.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got_ids, want_ids, "{what}: message ids");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.topic, w.topic, "{what}: topic of {}", w.id);
        assert_eq!(g.sender, w.sender, "{what}: sender of {}", w.id);
        assert_eq!(g.qos, w.qos, "{what}: qos of {}", w.id);
        assert!(
            g.payload == w.payload,
            "{what}: payload of {} differs ({} vs {} bytes)",
            w.id,
            g.payload.len(),
            w.payload.len()
        );
        assert_eq!(
            g.timestamp.as_secs(),
            w.timestamp.as_secs(),
            "{what}: timestamp of {}",
            w.id
        );
    }
}

fn function_rule(hook: Hook, topic: Option<&str>, function: &str) -> RuleSpec {
    RuleSpec {
        hook,
        index: None,
        rule: RuleJson {
            topic: topic.map(str::to_owned),
            action: ActionJson {
                function: Some(function.to_owned()),
                ..ActionJson::default()
            },
            pool: "pool1".into(),
            payload_format: None,
        },
    }
}

/// An engine with the seed's Redis rules (queue and pubsub under `root`).
fn seed_engine(backend: Arc<dyn Backend>, root: &str) -> Engine {
    let mut spec = ConfigSpec::new(BackendKind::Redis);
    spec.pools.insert("pool1".into(), BTreeMap::new());
    spec.rules = vec![
        function_rule(
            Hook::SessionSubscribed,
            Some(&format!("{root}/queue/#")),
            "on_message_fetch_for_queue",
        ),
        function_rule(
            Hook::SessionSubscribed,
            Some(&format!("{root}/pubsub/#")),
            "on_message_fetch_for_pubsub",
        ),
        function_rule(Hook::SessionSubscribed, None, "on_retain_lookup"),
        function_rule(Hook::MessagePublish, Some("#"), "on_message_publish"),
        function_rule(Hook::MessagePublish, Some("#"), "on_message_retain"),
        function_rule(Hook::MessagePublish, Some("#"), "on_retain_delete"),
        function_rule(
            Hook::MessageAcked,
            Some(&format!("{root}/queue/#")),
            "on_message_acked_for_queue",
        ),
        function_rule(
            Hook::MessageAcked,
            Some(&format!("{root}/pubsub/#")),
            "on_message_acked_for_pubsub",
        ),
    ];
    let config = match Config::from_spec(spec) {
        Ok(c) => c,
        Err(e) => panic!("the suite's own config is invalid: {e}"),
    };
    match Engine::with_backend(&config, backend) {
        Ok(e) => e,
        Err(e) => panic!("cannot build the engine: {e}"),
    }
}

/// online -> offline -> online again, with node and times.
pub async fn status_lifecycle(ctx: Ctx) {
    let b = &*ctx.backend;
    let id = unique("status");
    assert_eq!(
        b.client_status(&id).await.ok(),
        Some(None),
        "an unknown client has no status"
    );
    let mut client = ClientInfo::new(id.clone(), "emqx@127.0.0.1");
    client.username = Some("user".into());
    let t1 = Timestamp::from_secs(Timestamp::now().as_secs() - 10);
    let t2 = Timestamp::from_secs(Timestamp::now().as_secs() - 5);
    b.client_online(&client, t1)
        .await
        .unwrap_or_else(|e| panic!("client_online: {e}"));
    let s = b
        .client_status(&id)
        .await
        .unwrap_or_else(|e| panic!("client_status: {e}"));
    let s = s.unwrap_or_else(|| panic!("no status after client_online"));
    assert!(s.online, "state is 1 after connecting");
    assert_eq!(s.node, "emqx@127.0.0.1");
    assert_eq!(s.online_at.map(Timestamp::as_secs), Some(t1.as_secs()));
    assert_eq!(s.offline_at, None, "offline_at is empty while online");
    b.client_offline(&client, t2)
        .await
        .unwrap_or_else(|e| panic!("client_offline: {e}"));
    let s = b
        .client_status(&id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no status after client_offline"));
    assert!(!s.online, "state is 0 after disconnecting");
    assert_eq!(
        s.online_at.map(Timestamp::as_secs),
        Some(t1.as_secs()),
        "online_at is kept"
    );
    assert_eq!(s.offline_at.map(Timestamp::as_secs), Some(t2.as_secs()));
    let t3 = Timestamp::from_secs(Timestamp::now().as_secs());
    client.node = "emqx@10.0.0.2".into();
    b.client_online(&client, t3)
        .await
        .unwrap_or_else(|e| panic!("client_online: {e}"));
    let s = b
        .client_status(&id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no status"));
    assert!(s.online);
    assert_eq!(s.node, "emqx@10.0.0.2", "the node is the latest");
    assert_eq!(s.online_at.map(Timestamp::as_secs), Some(t3.as_secs()));
    assert_eq!(s.offline_at, None, "offline_at is cleared on reconnect");
}

/// Stored subscriptions come back on lookup; QoS updates; deletes.
pub async fn proxy_subscriptions(ctx: Ctx) {
    let b = &*ctx.backend;
    let id = unique("proxy");
    let subs = vec![
        Subscription::new(format!("{id}/a"), QoS::AtLeastOnce),
        Subscription::new(format!("{id}/b/+"), QoS::ExactlyOnce),
        Subscription::new(format!("{id}/c/#"), QoS::AtMostOnce),
    ];
    b.store_subscriptions(&id, &subs)
        .await
        .unwrap_or_else(|e| panic!("store_subscriptions: {e}"));
    let mut got = b
        .lookup_subscriptions(&id)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    got.sort_by(|a, b| a.filter.cmp(&b.filter));
    assert_eq!(got, subs);
    b.store_subscriptions(
        &id,
        &[Subscription::new(format!("{id}/a"), QoS::ExactlyOnce)],
    )
    .await
    .unwrap_or_else(|e| panic!("store_subscriptions: {e}"));
    b.delete_subscriptions(&id, &[format!("{id}/c/#")])
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let mut got = b
        .lookup_subscriptions(&id)
        .await
        .unwrap_or_else(|e| panic!("lookup: {e}"));
    got.sort_by(|a, b| a.filter.cmp(&b.filter));
    assert_eq!(
        got,
        vec![
            Subscription::new(format!("{id}/a"), QoS::ExactlyOnce),
            Subscription::new(format!("{id}/b/+"), QoS::ExactlyOnce),
        ]
    );
    let other = unique("proxy-none");
    assert_eq!(b.lookup_subscriptions(&other).await.ok(), Some(vec![]));
}

/// Queue mode: stored, fetched by anyone, deleted on ack.
pub async fn queue_mode(ctx: Ctx) {
    let b = &*ctx.backend;
    let topic = unique("q");
    let m: Vec<Message> = (0..3)
        .map(|i| msg("pub", &topic, QoS::AtLeastOnce, format!("m{i}")))
        .collect();
    store(b, &m).await;
    let got = fetch(b, "c1", &topic, OfflineMode::Queue).await;
    assert_same(&got, &[&m[0], &m[1], &m[2]], "queue fetch");
    let again = fetch(b, "c1", &topic, OfflineMode::Queue).await;
    assert_same(&again, &[&m[0], &m[1], &m[2]], "a fetch does not consume");
    ack(b, OfflineMode::Queue, "c1", &[&m[0], &m[1]]).await;
    let got = fetch(b, "c1", &topic, OfflineMode::Queue).await;
    assert_same(&got, &[&m[2]], "acked messages are gone");
    let got = fetch(b, "c2", &topic, OfflineMode::Queue).await;
    assert_same(
        &got,
        &[&m[2]],
        "acked messages are gone for other clients too",
    );
    ack(b, OfflineMode::Queue, "c2", &[&m[2]]).await;
    assert!(fetch(b, "c1", &topic, OfflineMode::Queue).await.is_empty());
}

/// Pubsub: two subscribers keep independent read positions.
pub async fn pubsub_independent_positions(ctx: Ctx) {
    let b = &*ctx.backend;
    let topic = unique("ps");
    let (a, c) = (unique("sub-a"), unique("sub-b"));
    assert!(
        fetch(b, &a, &topic, OfflineMode::Pubsub).await.is_empty(),
        "first subscription starts empty"
    );
    assert!(
        fetch(b, &c, &topic, OfflineMode::Pubsub).await.is_empty(),
        "first subscription starts empty"
    );
    let m: Vec<Message> = (0..3)
        .map(|i| msg("pub", &topic, QoS::ExactlyOnce, format!("m{i}")))
        .collect();
    store(b, &m).await;
    assert_same(
        &fetch(b, &a, &topic, OfflineMode::Pubsub).await,
        &[&m[0], &m[1], &m[2]],
        "A's fetch",
    );
    ack(b, OfflineMode::Pubsub, &a, &[&m[1]]).await;
    assert_same(
        &fetch(b, &a, &topic, OfflineMode::Pubsub).await,
        &[&m[2]],
        "acking m1 marks m0 and m1 read for A",
    );
    assert_same(
        &fetch(b, &c, &topic, OfflineMode::Pubsub).await,
        &[&m[0], &m[1], &m[2]],
        "B is unaffected by A's ack",
    );
    ack(b, OfflineMode::Pubsub, &c, &[&m[2]]).await;
    assert!(
        fetch(b, &c, &topic, OfflineMode::Pubsub).await.is_empty(),
        "B acked everything"
    );
    assert_same(
        &fetch(b, &a, &topic, OfflineMode::Pubsub).await,
        &[&m[2]],
        "A still has m2",
    );
}

/// Pubsub: messages stored before the first subscription are not returned.
pub async fn pubsub_first_subscription_gets_only_later_messages(ctx: Ctx) {
    let b = &*ctx.backend;
    let topic = unique("ps-late");
    let sub = unique("late");
    let before = msg("pub", &topic, QoS::AtLeastOnce, "before");
    store(b, std::slice::from_ref(&before)).await;
    assert!(fetch(b, &sub, &topic, OfflineMode::Pubsub).await.is_empty());
    let after = msg("pub", &topic, QoS::AtLeastOnce, "after");
    store(b, std::slice::from_ref(&after)).await;
    assert_same(
        &fetch(b, &sub, &topic, OfflineMode::Pubsub).await,
        &[&after],
        "only later messages",
    );
}

/// Pubsub: after a reconnect (a new backend on the same store) exactly the
/// unacked messages come back, in publish order, and once acked never again.
pub async fn pubsub_reconnect_gets_exactly_the_unacked(ctx: Ctx) {
    let topic = unique("ps-re");
    let sub = unique("re");
    let b = &*ctx.backend;
    assert!(fetch(b, &sub, &topic, OfflineMode::Pubsub).await.is_empty());
    let m: Vec<Message> = (0..5)
        .map(|i| msg("pub", &topic, QoS::AtLeastOnce, format!("m{i}")))
        .collect();
    for one in &m {
        store(b, std::slice::from_ref(one)).await;
    }
    assert_same(
        &fetch(b, &sub, &topic, OfflineMode::Pubsub).await,
        &m.iter().collect::<Vec<_>>(),
        "all five",
    );
    ack(b, OfflineMode::Pubsub, &sub, &[&m[0], &m[1]]).await;
    let second = (ctx.factory)().await;
    assert_same(
        &fetch(&*second, &sub, &topic, OfflineMode::Pubsub).await,
        &[&m[2], &m[3], &m[4]],
        "after reconnecting",
    );
    ack(&*second, OfflineMode::Pubsub, &sub, &[&m[4]]).await;
    let third = (ctx.factory)().await;
    assert!(
        fetch(&*third, &sub, &topic, OfflineMode::Pubsub)
            .await
            .is_empty(),
        "all acked"
    );
}

/// Wildcard subscriptions get the offline messages of every matching topic,
/// in store order, in both modes.
pub async fn wildcard_offline_messages(ctx: Ctx) {
    let b = &*ctx.backend;
    let root = unique("wild");
    let sub = unique("wsub");
    let filter = format!("{root}/+/temp");
    assert!(fetch(b, &sub, &filter, OfflineMode::Pubsub)
        .await
        .is_empty());
    let m = [
        msg("p", &format!("{root}/1/temp"), QoS::AtLeastOnce, "a"),
        msg("p", &format!("{root}/1/hum"), QoS::AtLeastOnce, "b"),
        msg("p", &format!("{root}/2/temp"), QoS::AtLeastOnce, "c"),
        msg("p", &format!("{root}/2/temp/x"), QoS::AtLeastOnce, "d"),
        msg("p", &format!("{root}x/1/temp"), QoS::AtLeastOnce, "e"),
        msg("p", &format!("{root}/1/temp"), QoS::AtLeastOnce, "f"),
    ];
    for one in &m {
        store(b, std::slice::from_ref(one)).await;
    }
    assert_same(
        &fetch(b, &sub, &filter, OfflineMode::Pubsub).await,
        &[&m[0], &m[2], &m[5]],
        "pubsub `+` filter",
    );
    ack(b, OfflineMode::Pubsub, &sub, &[&m[0]]).await;
    assert_same(
        &fetch(b, &sub, &filter, OfflineMode::Pubsub).await,
        &[&m[2], &m[5]],
        "an ack on one topic leaves the others",
    );
    let all = format!("{root}/#");
    assert_same(
        &fetch(b, "any", &all, OfflineMode::Queue).await,
        &[&m[0], &m[1], &m[2], &m[3], &m[5]],
        "queue `#` filter",
    );
}

/// Retained: store, overwrite, delete, exact lookup.
pub async fn retained_messages(ctx: Ctx) {
    let b = &*ctx.backend;
    let topic = unique("ret");
    let first = msg("p", &topic, QoS::AtLeastOnce, "one").retained(true);
    b.store_retained(std::slice::from_ref(&first), Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let got = b
        .lookup_retained(&topic)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_same(&got, &[&first], "retained lookup");
    let second = msg("p2", &topic, QoS::ExactlyOnce, "two").retained(true);
    b.store_retained(std::slice::from_ref(&second), Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_same(
        &b.lookup_retained(&topic).await.unwrap_or_default(),
        &[&second],
        "overwritten",
    );
    b.delete_retained(std::slice::from_ref(&topic))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        b.lookup_retained(&topic)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty(),
        "deleted"
    );
    b.delete_retained(std::slice::from_ref(&topic))
        .await
        .unwrap_or_else(|e| panic!("deleting twice: {e}"));
}

/// Retained lookups with `+` and `#`, and `$` topics kept out of wildcards.
pub async fn retained_wildcards_and_dollar_topics(ctx: Ctx) {
    let b = &*ctx.backend;
    let root = unique("rw");
    let dollar = format!("${}", unique("sys"));
    let topics = [
        root.clone(),
        format!("{root}/a"),
        format!("{root}/b"),
        format!("{root}/a/b"),
        format!("{root}x/a"),
        format!("{dollar}/a"),
    ];
    let msgs: Vec<Message> = topics
        .iter()
        .map(|t| msg("p", t, QoS::AtLeastOnce, t.clone()).retained(true))
        .collect();
    b.store_retained(&msgs, Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let lookup = |f: String| async move {
        let mut got: Vec<String> = b
            .lookup_retained(&f)
            .await
            .unwrap_or_else(|e| panic!("lookup_retained({f}): {e}"))
            .into_iter()
            .map(|m| m.topic)
            .collect();
        got.sort();
        got
    };
    assert_eq!(
        lookup(format!("{root}/+")).await,
        vec![topics[1].clone(), topics[2].clone()]
    );
    let mut under_root = topics[..4].to_vec();
    under_root.sort();
    assert_eq!(
        lookup(format!("{root}/#")).await,
        under_root,
        "`#` matches the parent level too"
    );
    assert_eq!(lookup(format!("{dollar}/+")).await, vec![topics[5].clone()]);
    let plus_a = lookup("+/a".into()).await;
    assert!(plus_a.contains(&topics[1]), "`+/a` matches {}", topics[1]);
    assert!(
        !plus_a.contains(&topics[5]),
        "`+/a` must not match the `$` topic {}",
        topics[5]
    );
    b.delete_retained(&topics)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(lookup(format!("{root}/#")).await.is_empty());
}

/// Through the engine: QoS 0 is not stored; QoS 1 and 2 are; fetches
/// happen only for QoS > 0 subscriptions.
pub async fn engine_stores_only_qos_1_and_2(ctx: Ctx) {
    let root = unique("eng");
    let engine = seed_engine(Arc::clone(&ctx.backend), &root);
    let topic = format!("{root}/queue/t");
    let q0 = msg("p", &topic, QoS::AtMostOnce, "zero");
    let q1 = msg("p", &topic, QoS::AtLeastOnce, "one");
    let q2 = msg("p", &topic, QoS::ExactlyOnce, "two");
    for m in [&q0, &q1, &q2] {
        let out = engine.on_message_publish(m).await;
        assert!(out.errors.is_empty(), "publish: {:?}", out.errors);
    }
    let sub = |qos| SessionSubscribed {
        client_id: "eng-sub".into(),
        username: None,
        filter: topic.clone(),
        qos,
    };
    let out = engine.on_session_subscribed(&sub(QoS::AtMostOnce)).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(
        out.output.offline.is_empty(),
        "no fetch for a QoS 0 subscription"
    );
    let out = engine.on_session_subscribed(&sub(QoS::AtLeastOnce)).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_same(&out.output.offline, &[&q1, &q2], "QoS 0 is not stored");
    assert!(engine.metrics().iter().all(|m| m.failed == 0));
}

/// Through the engine: a retained message with a payload replaces the
/// topic's; one with an empty payload deletes it and is not stored as an
/// offline message.
pub async fn engine_retain_and_delete(ctx: Ctx) {
    let root = unique("engret");
    let engine = seed_engine(Arc::clone(&ctx.backend), &root);
    let topic = format!("{root}/queue/r");
    let kept = msg("p", &topic, QoS::AtLeastOnce, "keep").retained(true);
    assert!(engine.on_message_publish(&kept).await.errors.is_empty());
    let sub = SessionSubscribed {
        client_id: "r-sub".into(),
        username: None,
        filter: format!("{root}/queue/+"),
        qos: QoS::AtLeastOnce,
    };
    let out = engine.on_session_subscribed(&sub).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_same(&out.output.retained, &[&kept], "retained via wildcard");
    assert_same(
        &out.output.offline,
        &[&kept],
        "a retained QoS 1 message is also an offline message",
    );
    let delete = msg("p", &topic, QoS::AtLeastOnce, Bytes::new()).retained(true);
    assert!(engine.on_message_publish(&delete).await.errors.is_empty());
    let out = engine.on_session_subscribed(&sub).await;
    assert!(
        out.output.retained.is_empty(),
        "an empty retained payload deletes"
    );
    assert!(
        !out.output.offline.iter().any(|m| m.id == delete.id),
        "an empty retained message is not stored as a message"
    );
}

/// `max_returned_count` keeps the newest N (oldest first); `time_range`
/// drops messages that arrived longer ago.
pub async fn limits(ctx: Ctx) {
    let b = &*ctx.backend;
    let topic = unique("lim");
    let now = Timestamp::now();
    let mut m: Vec<Message> = (0..6)
        .map(|i| msg("p", &topic, QoS::AtLeastOnce, format!("m{i}")))
        .collect();
    m[0].timestamp = now.saturating_sub(Duration::from_secs(3 * 3600));
    m[1].timestamp = now.saturating_sub(Duration::from_secs(3 * 3600));
    store(b, &m).await;
    let mut req = request("lim", &topic, OfflineMode::Queue);
    req.max_count = Some(3);
    let got = b
        .fetch_messages(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_same(&got, &[&m[3], &m[4], &m[5]], "max_returned_count 3");
    req.max_count = None;
    req.since = Some(now.saturating_sub(Duration::from_secs(2 * 3600)));
    let got = b
        .fetch_messages(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_same(&got, &[&m[2], &m[3], &m[4], &m[5]], "time_range 2h");
    req.max_count = Some(0);
    assert!(
        b.fetch_messages(&req)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty(),
        "a limit of 0"
    );
}

/// A batch written in one call keeps its order.
pub async fn batch_store_keeps_order(ctx: Ctx) {
    let b = &*ctx.backend;
    let root = unique("batch");
    let msgs: Vec<Message> = (0..100)
        .map(|i| {
            msg(
                "p",
                &format!("{root}/{}", i % 3),
                QoS::AtLeastOnce,
                format!("{i}"),
            )
        })
        .collect();
    store(b, &msgs).await;
    let got = fetch(b, "batch", &format!("{root}/#"), OfflineMode::Queue).await;
    assert_same(&got, &msgs.iter().collect::<Vec<_>>(), "a batch of 100");
}

/// Acking twice, or acking an unknown message, is harmless.
pub async fn acks_are_idempotent(ctx: Ctx) {
    let b = &*ctx.backend;
    let topic = unique("idem");
    let sub = unique("idem-sub");
    assert!(fetch(b, &sub, &topic, OfflineMode::Pubsub).await.is_empty());
    let m = [
        msg("p", &topic, QoS::AtLeastOnce, "a"),
        msg("p", &topic, QoS::AtLeastOnce, "b"),
    ];
    store(b, &m).await;
    ack(b, OfflineMode::Pubsub, &sub, &[&m[0], &m[0]]).await;
    let ghost = msg("p", &topic, QoS::AtLeastOnce, "never stored");
    ack(b, OfflineMode::Pubsub, &sub, &[&ghost]).await;
    ack(b, OfflineMode::Queue, &sub, &[&ghost]).await;
    assert_same(
        &fetch(b, &sub, &topic, OfflineMode::Pubsub).await,
        &[&m[1]],
        "after repeated acks",
    );
    ack(b, OfflineMode::Queue, &sub, &[&m[1]]).await;
    ack(b, OfflineMode::Queue, &sub, &[&m[1]]).await;
    assert_same(
        &fetch(b, &sub, &topic, OfflineMode::Queue).await,
        &[&m[0]],
        "queue ack twice",
    );
}

/// Values that break naive string building, stored and read back byte for
/// byte by the built-in functions.
fn hostile_strings() -> Vec<String> {
    vec![
        "'); DROP TABLE mqtt_msg; --".into(),
        "quote ' and \" and \\ backslash".into(),
        "spaces  and\r\nCRLF\tand tab".into(),
        "emoji 🦀 and 雨".into(),
        "${clientid} %s %n {}".into(),
    ]
}

fn hostile_payloads() -> Vec<Bytes> {
    let mut big = vec![0u8; 1 << 20];
    for (i, byte) in big.iter_mut().enumerate() {
        *byte = (i % 251) as u8;
    }
    vec![
        Bytes::from_static(b"\x00\xff\xfe not utf-8 \x80\x00"),
        Bytes::from_static(b"'); DROP TABLE mqtt_msg; --"),
        Bytes::from(big),
    ]
}

/// Hostile topics, client ids and payloads through the built-in functions.
pub async fn hostile_values_in_builtins(ctx: Ctx) {
    let b = &*ctx.backend;
    let root = unique("hostile");
    let mut stored = Vec::new();
    for (i, s) in hostile_strings().into_iter().enumerate() {
        let topic = format!("{root}/{i}/{s}");
        for p in hostile_payloads() {
            stored.push(msg(&format!("{s}-{i}"), &topic, QoS::AtLeastOnce, p));
        }
    }
    store(b, &stored).await;
    let got = fetch(b, "h", &format!("{root}/#"), OfflineMode::Queue).await;
    assert_same(&got, &stored.iter().collect::<Vec<_>>(), "hostile messages");
    for s in hostile_strings() {
        let client = format!("{root}-{s}");
        let sub = Subscription::new(format!("{root}/{s}"), QoS::AtLeastOnce);
        b.store_subscriptions(&client, std::slice::from_ref(&sub))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b.lookup_subscriptions(&client).await.ok(),
            Some(vec![sub]),
            "subscription of {s:?}"
        );
        let info = ClientInfo::new(client.clone(), s.clone());
        b.client_online(&info, Timestamp::now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = b.client_status(&client).await.ok().flatten();
        assert_eq!(status.map(|st| st.node), Some(s.clone()), "node {s:?}");
    }
    let retained: Vec<Message> = hostile_payloads()
        .into_iter()
        .enumerate()
        .map(|(i, p)| msg("h", &format!("{root}/r/{i} '\"\\"), QoS::AtLeastOnce, p).retained(true))
        .collect();
    b.store_retained(&retained, Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut got = b
        .lookup_retained(&format!("{root}/r/+"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    got.sort_by(|a, b| a.topic.cmp(&b.topic));
    assert_same(
        &got,
        &retained.iter().collect::<Vec<_>>(),
        "hostile retained messages",
    );
}

/// Raw statements whose bound values are hostile: stored and read back byte
/// for byte, and the statement's structure untouched. For a kind without raw
/// statements ([`super::RawFixture::none`]): `execute` returns an
/// `Unsupported` error, which is all this scenario checks then.
pub async fn hostile_values_in_raw_statements(ctx: Ctx) {
    let b = &*ctx.backend;
    let Some(lang) = ctx.raw.kind.statements() else {
        // A kind without raw statements (MongoDB, `RawFixture::none`):
        // nothing to render, so check instead that `execute` refuses.
        assert!(
            ctx.raw.write.is_empty() && ctx.raw.read.is_empty(),
            "{} has no raw statements, yet the fixture has some",
            ctx.raw.kind
        );
        for statement in [
            Statement::Query {
                text: "select 1".into(),
                params: vec![Value::from("x")],
            },
            Statement::Command {
                args: vec![Bytes::from_static(b"GET"), Bytes::from_static(b"k")],
            },
        ] {
            match b.execute(&statement).await {
                Err(e) => assert_eq!(
                    e.kind(),
                    ErrorKind::Unsupported,
                    "{} execute: want an Unsupported error, got {e}",
                    ctx.raw.kind
                ),
                Ok(rows) => panic!(
                    "{} has no raw statements, yet execute returned {} rows",
                    ctx.raw.kind,
                    rows.len()
                ),
            }
        }
        return;
    };
    let compile = |text: &str| {
        let t = Template::parse(text, Hook::MessagePublish)
            .unwrap_or_else(|e| panic!("fixture `{text}`: {e}"));
        lang.compile(&t)
            .unwrap_or_else(|e| panic!("fixture `{text}`: {e}"))
    };
    let writes: Vec<_> = ctx.raw.write.iter().map(|w| compile(w)).collect();
    let read = compile(&ctx.raw.read);
    let root = unique("raw");
    for (i, s) in hostile_strings().into_iter().enumerate() {
        for p in hostile_payloads() {
            let mut m = msg(
                &format!("{s}-{i}"),
                &format!("{root}/{s}"),
                QoS::AtLeastOnce,
                p,
            );
            m.username = Some(format!("user {s}"));
            let ev = Event::Publish(&m);
            for w in &writes {
                b.execute(&w.render(&ev))
                    .await
                    .unwrap_or_else(|e| panic!("raw write with {s:?}: {e}"));
            }
            let rows = b
                .execute(&read.render(&ev))
                .await
                .unwrap_or_else(|e| panic!("raw read: {e}"));
            assert_eq!(rows.len(), 1, "one row back for {s:?}");
            let row = &rows[0];
            let want = [
                Value::from(m.sender.as_str()),
                Value::from(m.topic.as_str()),
                Value::from(m.username.as_deref()),
                Value::Bytes(m.payload.clone()),
            ];
            assert_eq!(row.len(), want.len(), "columns for {s:?}");
            for (g, w) in row.iter().zip(&want) {
                assert!(
                    g.to_bytes() == w.to_bytes(),
                    "raw value for {s:?} changed: {} vs {} bytes",
                    g.to_bytes().len(),
                    w.to_bytes().len()
                );
            }
        }
    }
}

/// Many concurrent publishers and pubsub subscribers: every subscriber gets
/// every message exactly once, in per-topic order; queue acks lose nothing.
pub async fn concurrent_publishers_and_subscribers(ctx: Ctx) {
    const PUBLISHERS: usize = 8;
    const PER_PUBLISHER: usize = 25;
    const SUBSCRIBERS: usize = 4;
    let root = unique("conc");
    let filter = format!("{root}/#");
    let subs: Vec<String> = (0..SUBSCRIBERS).map(|i| format!("{root}-sub{i}")).collect();
    let mut backends = Vec::new();
    for _ in 0..PUBLISHERS.max(SUBSCRIBERS) {
        backends.push((ctx.factory)().await);
    }
    join_all(subs.iter().zip(&backends).map(|(s, b)| {
        let filter = filter.clone();
        async move {
            assert!(fetch(&**b, s, &filter, OfflineMode::Pubsub)
                .await
                .is_empty())
        }
    }))
    .await;
    let published: Vec<Vec<Message>> = join_all((0..PUBLISHERS).map(|p| {
        let b = Arc::clone(&backends[p]);
        let topic = format!("{root}/p{p}");
        async move {
            let mut sent = Vec::new();
            for i in 0..PER_PUBLISHER {
                let m = msg(
                    &format!("pub{p}"),
                    &topic,
                    QoS::AtLeastOnce,
                    format!("{p}:{i}"),
                );
                store(&*b, std::slice::from_ref(&m)).await;
                sent.push(m);
            }
            sent
        }
    }))
    .await;
    let all: HashSet<String> = published.iter().flatten().map(|m| m.id.clone()).collect();
    let results = join_all(subs.iter().zip(&backends).map(|(s, b)| {
        let filter = filter.clone();
        async move { fetch(&**b, s, &filter, OfflineMode::Pubsub).await }
    }))
    .await;
    for (s, got) in subs.iter().zip(&results) {
        let got_ids: HashSet<String> = got.iter().map(|m| m.id.clone()).collect();
        assert_eq!(got.len(), all.len(), "{s}: nothing lost, nothing twice");
        assert_eq!(got_ids, all, "{s}: the same messages");
        for sent in &published {
            let order: Vec<&str> = got
                .iter()
                .filter(|m| m.topic == sent[0].topic)
                .map(|m| m.id.as_str())
                .collect();
            assert_eq!(order, ids(sent), "{s}: per-topic order");
        }
    }
    join_all(
        subs.iter()
            .zip(&backends)
            .zip(&results)
            .map(|((s, b), got)| async move {
                let refs: Vec<&Message> = got.iter().collect();
                ack(&**b, OfflineMode::Pubsub, s, &refs).await;
            }),
    )
    .await;
    for (s, b) in subs.iter().zip(&backends) {
        assert!(
            fetch(&**b, s, &filter, OfflineMode::Pubsub)
                .await
                .is_empty(),
            "{s}: all acked"
        );
    }
    // Queue mode: concurrent consumers ack disjoint halves; nothing remains.
    let queued = fetch(&*backends[0], "q", &filter, OfflineMode::Queue).await;
    assert_eq!(queued.len(), all.len(), "queue sees every message");
    let halves: Vec<Vec<&Message>> = vec![
        queued.iter().step_by(2).collect(),
        queued.iter().skip(1).step_by(2).collect(),
    ];
    join_all(halves.iter().zip(&backends).map(|(h, b)| async move {
        ack(&**b, OfflineMode::Queue, "q", h).await;
    }))
    .await;
    assert!(
        fetch(&*backends[1], "q", &filter, OfflineMode::Queue)
            .await
            .is_empty(),
        "queue drained"
    );
}

/// Pubsub reads never skip a message while writers race: concurrent
/// writers store on one topic while a reader fetches and acks what it got
/// over and over. A backend that lets a later id become visible before an
/// earlier one commits would have the reader ack the later one and never
/// see the earlier one; here every message must arrive exactly once.
pub async fn pubsub_reads_never_skip_under_concurrent_writers(ctx: Ctx) {
    const WRITERS: usize = 6;
    const PER_WRITER: usize = 40;
    let root = unique("noskip");
    let topic = format!("{root}/t");
    let filter = format!("{root}/#");
    let reader = format!("{root}-reader");
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        writers.push((ctx.factory)().await);
    }
    let rb = Arc::clone(&ctx.backend);
    assert!(fetch(&*rb, &reader, &filter, OfflineMode::Pubsub)
        .await
        .is_empty());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let read_loop = {
        let (rb, reader, filter, done) = (
            Arc::clone(&rb),
            reader.clone(),
            filter.clone(),
            Arc::clone(&done),
        );
        tokio::spawn(async move {
            let mut got: Vec<Message> = Vec::new();
            let mut quiet_after_done = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let batch = fetch(&*rb, &reader, &filter, OfflineMode::Pubsub).await;
                if let Some(newest) = batch.last() {
                    // Acking the newest marks everything before it read.
                    ack(&*rb, OfflineMode::Pubsub, &reader, &[newest]).await;
                }
                let empty = batch.is_empty();
                got.extend(batch);
                if finished && empty {
                    quiet_after_done += 1;
                    if quiet_after_done >= 3 {
                        return got;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    };
    let sent: Vec<Vec<Message>> = join_all(writers.iter().enumerate().map(|(w, b)| {
        let topic = topic.clone();
        async move {
            let mut sent = Vec::new();
            for i in 0..PER_WRITER {
                let m = msg(
                    &format!("w{w}"),
                    &topic,
                    QoS::AtLeastOnce,
                    format!("{w}:{i}"),
                );
                store(&**b, std::slice::from_ref(&m)).await;
                sent.push(m);
            }
            sent
        }
    }))
    .await;
    done.store(true, std::sync::atomic::Ordering::Release);
    let got = match read_loop.await {
        Ok(g) => g,
        Err(e) => panic!("the reader failed: {e}"),
    };
    let all: HashSet<&str> = sent.iter().flatten().map(|m| m.id.as_str()).collect();
    let got_ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    let unique_got: HashSet<&str> = got_ids.iter().copied().collect();
    let missing: Vec<&&str> = all.difference(&unique_got).collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages never reached the reader (skipped by an ack of a later one): {missing:?}",
        missing.len(),
        all.len()
    );
    assert_eq!(got_ids.len(), unique_got.len(), "no message twice");
    // Each writer's messages arrive in the order it stored them.
    for s in &sent {
        let order: Vec<&str> = got
            .iter()
            .filter(|m| m.sender == s[0].sender)
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(order, ids(s), "per-writer order");
    }
}

/// Bounded storage: `remove_messages_before` removes exactly the messages
/// that arrived before the cut (queue and pubsub alike), and under a steady
/// load of 50 messages a second swept every half second with a 2 s
/// retention the topic never holds much more than 2.5 s of messages.
///
/// Times are in 1971, so this scenario's sweeps (which are table-wide)
/// never touch the messages of the scenarios running beside it; the
/// engine's sweeper on a real clock is tested in backend-core.
pub async fn old_messages_are_swept_and_storage_stays_bounded(ctx: Ctx) {
    let b = Arc::clone(&ctx.backend);
    let root = unique("sweep");
    let topic = format!("{root}/direct");
    let t0 = Timestamp::from_secs(31_536_000);
    let at = |ms: i64| Timestamp::from_millis(t0.as_millis() + ms);
    let stamped = |topic: &str, payload: String, t: Timestamp| {
        let mut m = msg("s", topic, QoS::AtLeastOnce, payload);
        m.timestamp = t;
        m
    };
    let old: Vec<Message> = (0..5)
        .map(|i| stamped(&topic, format!("old{i}"), at(i * 1000)))
        .collect();
    let new: Vec<Message> = (0..3)
        .map(|i| stamped(&topic, format!("new{i}"), at(100_000 + i * 1000)))
        .collect();
    store(&*b, &old).await;
    store(&*b, &new).await;
    let removed = match b.remove_messages_before(at(50_000)).await {
        Ok(n) => n,
        Err(e) => panic!("remove_messages_before failed: {e}"),
    };
    assert!(removed >= 5, "removed {removed}, expected the 5 old ones");
    let left = fetch(&*b, "sweeper", &topic, OfflineMode::Queue).await;
    assert_eq!(ids(&left), ids(&new), "exactly the new messages are left");

    // Steady load: 50 messages a second for 6 s, a sweep every 0.5 s
    // removing what is older than 2 s.
    let steady = format!("{root}/steady/t");
    const PER_SECOND: i64 = 50;
    const SWEEP_EVERY: i64 = PER_SECOND / 2;
    let mut peak = 0;
    let mut clock = 1_000_000;
    for n in 1..=(6 * PER_SECOND) {
        clock += 1000 / PER_SECOND;
        store(&*b, &[stamped(&steady, format!("{n}"), at(clock))]).await;
        if n % SWEEP_EVERY == 0 {
            if let Err(e) = b.remove_messages_before(at(clock - 2000)).await {
                panic!("remove_messages_before failed: {e}");
            }
            let held = fetch(&*b, "sweeper", &steady, OfflineMode::Queue)
                .await
                .len();
            peak = peak.max(held as i64);
        }
    }
    // 2 s of messages, half a second since the last sweep, and one second
    // for backends that keep arrival times in whole seconds.
    let bound = 2 * PER_SECOND + SWEEP_EVERY + PER_SECOND;
    assert!(
        peak >= 2 * PER_SECOND - 1,
        "the topic held {peak}: too few, the sweep removed too much"
    );
    assert!(
        peak <= bound,
        "the topic held {peak} messages at its peak; bound {bound}"
    );
    if let Err(e) = b.remove_messages_before(at(clock + 10_000)).await {
        panic!("remove_messages_before failed: {e}");
    }
    assert!(
        fetch(&*b, "sweeper", &steady, OfflineMode::Queue)
            .await
            .is_empty(),
        "nothing left"
    );
    assert!(
        fetch(&*b, "sweeper", &topic, OfflineMode::Queue)
            .await
            .is_empty(),
        "nothing left"
    );
}
