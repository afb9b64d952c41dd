//! Retained messages.

use super::*;
use crate::testkit::OrPanic;

/// Retained: store, overwrite, delete, exact lookup.
pub async fn retained_messages(ctx: Ctx) {
    let b = &*ctx.backend;
    let topic = unique("ret");
    let first = msg("p", &topic, QoS::AtLeastOnce, "one").retained(true);
    b.store_retained(std::slice::from_ref(&first), Default::default())
        .await
        .or_panic("store_retained");
    let got = b.lookup_retained(&topic).await.or_panic("lookup_retained");
    assert_same(&got, &[&first], "retained lookup");
    let second = msg("p2", &topic, QoS::ExactlyOnce, "two").retained(true);
    b.store_retained(std::slice::from_ref(&second), Default::default())
        .await
        .or_panic("store_retained");
    assert_same(
        &b.lookup_retained(&topic).await.unwrap_or_default(),
        &[&second],
        "overwritten",
    );
    b.delete_retained(std::slice::from_ref(&topic))
        .await
        .or_panic("delete_retained");
    assert!(
        b.lookup_retained(&topic)
            .await
            .or_panic("lookup_retained")
            .is_empty(),
        "deleted"
    );
    b.delete_retained(std::slice::from_ref(&topic))
        .await
        .or_panic("deleting twice");
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
        .or_panic("store_retained");
    let lookup = |f: String| async move {
        let mut got: Vec<String> = b
            .lookup_retained(&f)
            .await
            .or_panic(&format!("lookup_retained({f})"))
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
    b.delete_retained(&topics).await.or_panic("delete_retained");
    assert!(lookup(format!("{root}/#")).await.is_empty());
}

/// Every MQTT 5 property a message carries comes back with it, from the
/// offline messages and from the retained messages; a message without
/// them comes back without; a retained message replaced by one without
/// properties loses the old ones.
pub async fn mqtt5_properties_are_kept(ctx: Ctx) {
    let b = &*ctx.backend;
    let root = unique("props");
    let props = crate::Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(300),
        content_type: Some("application/json; charset=\"utf-8\"".into()),
        response_topic: Some(format!("{root}/reply/é")),
        correlation_data: Some(Bytes::from_static(b"\x00corr\xff")),
        user_properties: vec![
            ("k".into(), "v1".into()),
            ("k".into(), "v2".into()),
            ("space key".into(), "'; DROP TABLE mqtt_msg; --".into()),
        ],
    };
    let mut with = msg("p", &format!("{root}/a"), QoS::AtLeastOnce, "{}");
    with.properties = props.clone();
    let without = msg("p", &format!("{root}/a"), QoS::ExactlyOnce, "plain");
    store(b, &[with.clone(), without.clone()]).await;
    let got = fetch(b, "props", &format!("{root}/#"), OfflineMode::Queue).await;
    assert_same(&got, &[&with, &without], "offline messages with properties");

    let mut retained = with.clone().retained(true);
    retained.topic = format!("{root}/r");
    b.store_retained(std::slice::from_ref(&retained), Default::default())
        .await
        .or_panic("store_retained");
    let got = b
        .lookup_retained(&format!("{root}/#"))
        .await
        .or_panic("lookup_retained");
    assert_eq!(got.len(), 1, "one retained message");
    assert_eq!(got[0].properties, props, "retained message's properties");
    let mut plain = without.clone().retained(true);
    plain.topic = retained.topic.clone();
    b.store_retained(std::slice::from_ref(&plain), Default::default())
        .await
        .or_panic("store_retained");
    let got = b
        .lookup_retained(&retained.topic)
        .await
        .or_panic("lookup_retained");
    assert_eq!(got.len(), 1, "one retained message");
    assert!(
        got[0].properties.is_empty(),
        "the replaced message's properties are gone: {:?}",
        got[0].properties
    );
}
