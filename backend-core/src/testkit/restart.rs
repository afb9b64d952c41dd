//! A server restart while a backend is in use: the check every backend's
//! restart test shares. The backend crate supplies how to restart its
//! server (and wait until it answers); this module supplies the load, the
//! checks during the outage and the checks after it.

use crate::testkit::OrPanic;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::unique;
use crate::backend::{Ack, Backend, ErrorKind, FetchRequest};
use crate::config::OfflineMode;
use crate::hook::ClientInfo;
use crate::message::{Message, QoS, Subscription, Timestamp};

/// What the load saw.
#[derive(Debug, Clone, Default)]
pub struct RestartReport {
    /// Load operations that succeeded before the restart began.
    pub ok_before: usize,
    /// Load operations that succeeded in all.
    pub ok: usize,
    /// Load operations that failed, with the kind and text of each error.
    pub errors: Vec<(ErrorKind, String)>,
    /// How long `restart` took.
    pub restart_took: Duration,
}

fn queue(client: &str, topic: &str) -> FetchRequest {
    FetchRequest {
        client_id: client.into(),
        filter: topic.into(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    }
}

/// Runs the repository's `scripts/services.sh` with `args` (`stop
/// mariadb`, `cassandra`), from a crate whose folder is `manifest_dir`
/// (`env!("CARGO_MANIFEST_DIR")`); panics, with the script's output, when
/// it fails. The restart tests restart their server with it.
pub fn services(manifest_dir: &str, args: &[&str]) {
    let script = std::path::Path::new(manifest_dir).join("../scripts/services.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens `connections` of the backend's connections at once (so every one
/// of them dies in the restart), runs a store-and-fetch load, awaits
/// `restart`, then checks that every built-in operation succeeds on the
/// same backend the first time, that concurrent use works again, that every
/// error the load saw was retryable, and that the load recovered. Panics
/// (fails the test) otherwise.
pub async fn restart_under_load<R>(
    backend: Arc<dyn Backend>,
    connections: usize,
    restart: R,
) -> RestartReport
where
    R: Future<Output = ()>,
{
    let topic = unique("restart");
    futures::future::join_all((0..connections).map(|i| {
        let b = Arc::clone(&backend);
        let m = Message::new("warm", topic.clone(), QoS::AtLeastOnce, format!("warm {i}"));
        async move {
            if let Err(e) = b.store_messages(&[m], Default::default()).await {
                panic!("warm-up store failed before any restart: {e}");
            }
        }
    }))
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let report = Arc::new(Mutex::new(RestartReport::default()));
    let load = {
        let (b, stop, report, topic) = (
            Arc::clone(&backend),
            Arc::clone(&stop),
            Arc::clone(&report),
            topic.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let m = Message::new("load", topic.clone(), QoS::AtLeastOnce, i.to_string());
                let r = match b.store_messages(&[m], Default::default()).await {
                    Ok(()) => b.fetch_messages(&queue("load", &topic)).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                {
                    let mut t = report.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(()) => t.ok += 1,
                        Err(e) => t.errors.push((e.kind(), e.to_string())),
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ok_before = report.lock().map(|t| t.ok).unwrap_or(0);
    assert!(ok_before > 0, "the load ran before the restart");

    let started = Instant::now();
    restart.await;
    let restart_took = started.elapsed();

    // Every operation succeeds on the same backend, the first time.
    let b = &*backend;
    let client = ClientInfo::new(unique("restart-client"), "emqx@127.0.0.1");
    b.client_online(&client, Timestamp::now())
        .await
        .or_panic("client_online after the restart");
    b.store_subscriptions(
        &client.client_id,
        &[Subscription::new(topic.clone(), QoS::AtLeastOnce)],
    )
    .await
    .or_panic("store_subscriptions after the restart");
    let m = Message::new("p", topic.clone(), QoS::AtLeastOnce, "after");
    b.store_messages(std::slice::from_ref(&m), Default::default())
        .await
        .or_panic("store_messages after the restart");
    let got = b
        .fetch_messages(&queue("q", &topic))
        .await
        .or_panic("fetch_messages after the restart");
    assert!(
        got.iter().any(|g| g.id == m.id),
        "the message stored after the restart is fetched"
    );
    let ack = Ack {
        client_id: "q".into(),
        topic: topic.clone(),
        message_id: m.id.clone(),
    };
    b.ack_messages(OfflineMode::Queue, &[ack])
        .await
        .or_panic("ack_messages after the restart");
    b.store_retained(&[m.clone().retained(true)], Default::default())
        .await
        .or_panic("store_retained after the restart");
    let retained = b
        .lookup_retained(&topic)
        .await
        .or_panic("lookup_retained after the restart");
    assert_eq!(
        retained.len(),
        1,
        "the retained message stored after the restart"
    );
    // Concurrent use refills the pool with new connections.
    futures::future::join_all((0..connections * 2).map(|_| {
        let b = Arc::clone(&backend);
        let topic = topic.clone();
        async move {
            if let Err(e) = b.fetch_messages(&queue("q", &topic)).await {
                panic!("concurrent fetch after the restart: {e}");
            }
        }
    }))
    .await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    if let Err(e) = load.await {
        panic!("the load task failed: {e}");
    }
    let mut report = report.lock().unwrap_or_else(|p| p.into_inner()).clone();
    report.ok_before = ok_before;
    report.restart_took = restart_took;
    for (kind, text) in &report.errors {
        assert!(
            kind.is_retryable(),
            "an error during the restart must be retryable, got {kind:?}: {text}"
        );
    }
    assert!(
        report.ok > ok_before,
        "the load succeeded again after the restart"
    );
    report
}
