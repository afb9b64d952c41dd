//! The built-in functions through an engine.

use super::*;

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
        client: ClientInfo::new("eng-sub", "node1"),
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
        client: ClientInfo::new("r-sub", "node1"),
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
