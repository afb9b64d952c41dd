//! Client status and stored subscriptions.

use super::*;
use crate::testkit::OrPanic;

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
    b.client_online(&client, t1).await.or_panic("client_online");
    let s = b.client_status(&id).await.or_panic("client_status");
    let s = s.unwrap_or_else(|| panic!("no status after client_online"));
    assert!(s.online, "state is 1 after connecting");
    assert_eq!(s.node, "emqx@127.0.0.1");
    assert_eq!(s.online_at.map(Timestamp::as_secs), Some(t1.as_secs()));
    assert_eq!(s.offline_at, None, "offline_at is empty while online");
    b.client_offline(&client, t2)
        .await
        .or_panic("client_offline");
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
    b.client_online(&client, t3).await.or_panic("client_online");
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
        .or_panic("store_subscriptions");
    let mut got = b.lookup_subscriptions(&id).await.or_panic("lookup");
    got.sort_by(|a, b| a.filter.cmp(&b.filter));
    assert_eq!(got, subs);
    b.store_subscriptions(
        &id,
        &[Subscription::new(format!("{id}/a"), QoS::ExactlyOnce)],
    )
    .await
    .or_panic("store_subscriptions");
    b.delete_subscriptions(&id, &[format!("{id}/c/#")])
        .await
        .or_panic("delete");
    let mut got = b.lookup_subscriptions(&id).await.or_panic("lookup");
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

/// Empty slices are nothing to do: every write succeeds and changes
/// nothing (the engine never sends one, but a broker's own code may).
pub async fn empty_writes_change_nothing(ctx: Ctx) {
    let b = &*ctx.backend;
    let id = unique("empty");
    let sub = Subscription::new(format!("{id}/a"), QoS::AtLeastOnce);
    b.store_subscriptions(&id, std::slice::from_ref(&sub))
        .await
        .or_panic("store_subscriptions");
    let m = msg(&id, &format!("{id}/a"), QoS::AtLeastOnce, "kept");
    store(b, std::slice::from_ref(&m)).await;
    let mut r = m.clone();
    r.retain = true;
    b.store_retained(std::slice::from_ref(&r), Default::default())
        .await
        .or_panic("store_retained");

    let results = [
        ("store_subscriptions", b.store_subscriptions(&id, &[]).await),
        (
            "delete_subscriptions",
            b.delete_subscriptions(&id, &[]).await,
        ),
        (
            "store_messages",
            b.store_messages(&[], Default::default()).await,
        ),
        (
            "ack_messages queue",
            b.ack_messages(OfflineMode::Queue, &[]).await,
        ),
        (
            "ack_messages pubsub",
            b.ack_messages(OfflineMode::Pubsub, &[]).await,
        ),
        (
            "store_retained",
            b.store_retained(&[], Default::default()).await,
        ),
        ("delete_retained", b.delete_retained(&[]).await),
    ];
    for (what, result) in results {
        if let Err(e) = result {
            panic!("{what} of an empty slice failed: {e}");
        }
    }

    let subs = b
        .lookup_subscriptions(&id)
        .await
        .or_panic("lookup_subscriptions");
    assert_eq!(subs, [sub], "subscriptions unchanged");
    let got = fetch(
        b,
        &format!("{id}-reader"),
        &format!("{id}/#"),
        OfflineMode::Queue,
    )
    .await;
    assert_same(&got, &[&m], "the stored message is still there");
    let retained = b
        .lookup_retained(&format!("{id}/a"))
        .await
        .or_panic("lookup_retained");
    assert_eq!(retained.len(), 1, "the retained message is still there");
}
