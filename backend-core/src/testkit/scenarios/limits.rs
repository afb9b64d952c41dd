//! Fetch limits, batch order, repeated acks.

use super::*;
use crate::testkit::OrPanic;

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
    let got = b.fetch_messages(&req).await.or_panic("fetch_messages");
    assert_same(&got, &[&m[3], &m[4], &m[5]], "max_returned_count 3");
    req.max_count = None;
    req.since = Some(now.saturating_sub(Duration::from_secs(2 * 3600)));
    let got = b.fetch_messages(&req).await.or_panic("fetch_messages");
    assert_same(&got, &[&m[2], &m[3], &m[4], &m[5]], "time_range 2h");
    req.max_count = Some(0);
    assert!(
        b.fetch_messages(&req)
            .await
            .or_panic("fetch_messages")
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

/// A backlog read page by page (`FetchRequest::page`): each page is the
/// oldest of what is left, in store order, and acking it brings up the
/// next, until an empty page; in both modes, on a wildcard and on one
/// topic. With `max_count` a page is the oldest of the newest N.
pub async fn backlog_pages(ctx: Ctx) {
    let b = &*ctx.backend;
    for mode in [OfflineMode::Queue, OfflineMode::Pubsub] {
        for wildcard in [true, false] {
            let root = unique("page");
            let client = unique("pager");
            let filter = if wildcard {
                format!("{root}/#")
            } else {
                format!("{root}/a")
            };
            // Pubsub: the first fetch marks where the subscription starts.
            fetch(b, &client, &filter, mode).await;
            let msgs: Vec<Message> = (0..25)
                .map(|i| {
                    let topic = format!("{root}/{}", ["a", "b", "c"][i % 3]);
                    msg("p", &topic, QoS::AtLeastOnce, format!("{i}"))
                })
                .collect();
            store(b, &msgs).await;
            let want: Vec<&Message> = msgs
                .iter()
                .filter(|m| wildcard || m.topic.ends_with("/a"))
                .collect();
            let size = if wildcard { 10 } else { 4 };
            let what = format!("{mode:?} pages of {size} on {filter}");
            let mut req = request(&client, &filter, mode);
            req.page = Some(size);
            let mut seen = 0;
            loop {
                let got = b.fetch_messages(&req).await.or_panic("fetch_messages");
                let end = (seen + size).min(want.len());
                assert_same(&got, &want[seen..end], &what);
                if got.is_empty() {
                    break;
                }
                let refs: Vec<&Message> = got.iter().collect();
                ack(b, mode, &client, &refs).await;
                seen = end;
            }
            assert_eq!(seen, want.len(), "{what}: every message once");
        }
    }
    let topic = unique("pagemax");
    let msgs: Vec<Message> = (0..10)
        .map(|i| msg("p", &topic, QoS::AtLeastOnce, format!("{i}")))
        .collect();
    store(b, &msgs).await;
    let mut req = request("pagemax", &topic, OfflineMode::Queue);
    req.max_count = Some(6);
    req.page = Some(4);
    let got = b.fetch_messages(&req).await.or_panic("fetch_messages");
    assert_same(
        &got,
        &msgs[4..8].iter().collect::<Vec<_>>(),
        "the oldest 4 of the newest 6",
    );
}

/// Acking twice, or acking an unknown message, is harmless, and an older
/// ack after a newer one moves no read position back.
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
    // An older ack after a newer one (a late retransmission's) never
    // moves the read position back.
    ack(b, OfflineMode::Pubsub, &sub, &[&m[1]]).await;
    ack(b, OfflineMode::Pubsub, &sub, &[&m[0]]).await;
    assert_same(
        &fetch(b, &sub, &topic, OfflineMode::Pubsub).await,
        &[],
        "an older ack after a newer one",
    );
    ack(b, OfflineMode::Queue, &sub, &[&m[1]]).await;
    ack(b, OfflineMode::Queue, &sub, &[&m[1]]).await;
    assert_same(
        &fetch(b, &sub, &topic, OfflineMode::Queue).await,
        &[&m[0]],
        "queue ack twice",
    );
}

/// A message stored again with the same id is kept once, with the later
/// content, at its new place: in a later call marked [`WriteOptions::again`] (the write
/// path's retries, the disk buffer's replay after a crash), or twice in one
/// batch.
///
/// [`WriteOptions::again`]: crate::backend::WriteOptions::again
pub async fn storing_an_id_again_keeps_one_copy(ctx: Ctx) {
    let b = &*ctx.backend;
    let payloads = |v: &[Message]| -> Vec<String> {
        v.iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect()
    };
    let topic = unique("again");
    let m1 = msg("p", &topic, QoS::AtLeastOnce, "one");
    let m2 = msg("p", &topic, QoS::AtLeastOnce, "two");
    let mut m1b = m1.clone();
    m1b.payload = Bytes::from_static(b"one again");
    store(b, &[m1.clone(), m2.clone()]).await;
    let again = crate::backend::WriteOptions {
        again: true,
        ..Default::default()
    };
    if let Err(e) = b.store_messages(std::slice::from_ref(&m1b), again).await {
        panic!("store_messages again: {e}");
    }
    let got = fetch(b, "c", &topic, OfflineMode::Queue).await;
    assert_eq!(
        payloads(&got),
        ["two", "one again"],
        "stored again later: once, at the end"
    );
    let mut seen: Vec<&str> = ids(&got);
    seen.dedup();
    assert_eq!(seen.len(), got.len(), "each id once");

    let topic = unique("again-batch");
    let a = msg("p", &topic, QoS::AtLeastOnce, "a");
    let c = msg("p", &topic, QoS::AtLeastOnce, "c");
    let mut a2 = a.clone();
    a2.payload = Bytes::from_static(b"a2");
    store(b, &[a, c, a2]).await;
    let got = fetch(b, "c", &topic, OfflineMode::Queue).await;
    assert_eq!(
        payloads(&got),
        ["c", "a2"],
        "twice in one batch: once, at its last place"
    );
}
