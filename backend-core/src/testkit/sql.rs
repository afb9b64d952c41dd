//! Tests the SQL backends (MySQL, PostgreSQL) share: the seed's raw rules
//! run through an [`Engine`] against the real server, checked with plain
//! SQL that the backend crate supplies (its placeholders and its driver).

use std::future::Future;
use std::sync::Arc;

use super::unique;
use crate::backend::Backend;
use crate::config::{BackendKind, Config};
use crate::engine::Engine;
use crate::hook::{ClientInfo, MessageDelivery, SessionSubscribed, SessionUnsubscribed};
use crate::message::{Message, QoS};

/// An engine over `backend` with the seed's rules for the pubsub read
/// position (`on_message_fetch` on subscribe, `on_message_publish`,
/// `on_message_acked`) and its raw rule deleting the position on
/// unsubscribe, in `query_mode = sync` (each hook's writes are in the
/// database when it returns, and their errors come back). `extra` adds
/// `.conf` lines.
pub fn seed_engine(backend: Arc<dyn Backend>, kind: BackendKind, extra: &str) -> Engine {
    let k = kind.pool_prefix();
    let conf = Config::parse(&format!(
        r##"
backend.{k}.pool1.query_mode = sync
backend.{k}.hook.session.subscribed.1  = {{"topic": "#", "action": {{"function": "on_message_fetch"}}, "pool": "pool1"}}
backend.{k}.hook.session.unsubscribed.1= {{"topic": "#", "action": {{"sql": ["delete from mqtt_acked where clientid = ${{clientid}} and topic = ${{topic}}"]}}, "pool": "pool1"}}
backend.{k}.hook.message.publish.1     = {{"topic": "#", "action": {{"function": "on_message_publish"}}, "pool": "pool1"}}
backend.{k}.hook.message.acked.1       = {{"topic": "#", "action": {{"function": "on_message_acked"}}, "pool": "pool1"}}
{extra}
"##
    ))
    .unwrap_or_else(|e| panic!("the seed's rules parse: {e}"));
    Engine::with_backend(&conf, backend).unwrap_or_else(|e| panic!("engine: {e}"))
}

/// The seed's `delete from mqtt_acked` rule on unsubscribe resets the
/// pubsub read position: a later subscription is a first one again, so it
/// starts at that moment. `acked_rows` counts, with plain SQL, the
/// `mqtt_acked` rows of a client id and topic.
pub async fn the_seeds_delete_ack_rule_resets_the_read_position<F>(
    backend: Arc<dyn Backend>,
    kind: BackendKind,
    acked_rows: impl Fn(String, String) -> F,
) where
    F: Future<Output = i64>,
{
    let engine = seed_engine(backend, kind, "");
    let client = unique("unsub");
    let topic = unique("unsub-topic");
    let sub = SessionSubscribed {
        client: ClientInfo::new(client.as_str(), "node1"),
        filter: topic.clone(),
        qos: QoS::AtLeastOnce,
    };
    let subscribe = || async {
        let out = engine.on_session_subscribed(&sub).await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        out.output.offline
    };
    let publish = |payload: &'static str| {
        let m = Message::new("pub", topic.clone(), QoS::AtLeastOnce, payload);
        let engine = &engine;
        async move {
            let out = engine.on_message_publish(&m).await;
            assert!(out.errors.is_empty(), "{:?}", out.errors);
            m
        }
    };
    let ids = |v: Vec<Message>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert!(
        subscribe().await.is_empty(),
        "the first subscription starts now"
    );
    let m1 = publish("m1").await;
    let m2 = publish("m2").await;
    assert_eq!(ids(subscribe().await), vec![m1.id.clone(), m2.id.clone()]);
    let out = engine
        .on_message_acked(&MessageDelivery::of(&m1, client.clone()))
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(ids(subscribe().await), vec![m2.id.clone()]);
    assert_eq!(
        acked_rows(client.clone(), topic.clone()).await,
        1,
        "one read position"
    );

    let out = engine
        .on_session_unsubscribed(&SessionUnsubscribed {
            client: ClientInfo::new(client.as_str(), "node1"),
            filter: topic.clone(),
        })
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        acked_rows(client.clone(), topic.clone()).await,
        0,
        "the raw rule deleted the position"
    );
    assert!(
        subscribe().await.is_empty(),
        "subscribing again is a first subscription: it starts now, m2 is not returned"
    );
    let m3 = publish("m3").await;
    assert_eq!(ids(subscribe().await), vec![m3.id]);
}
