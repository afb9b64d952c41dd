//! Concurrent writers and readers.

use super::*;

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
