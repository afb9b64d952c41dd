//! Bounded storage.

use super::*;

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
