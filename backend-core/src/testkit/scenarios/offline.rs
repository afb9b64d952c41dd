//! Offline messages: queue and pubsub modes, wildcards.

use super::*;

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
