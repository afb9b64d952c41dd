//! A restart of the shared test Redis while a backend and a channel
//! listener are in use: during the outage operations fail with retryable
//! errors; afterwards they succeed again and the listener resubscribes.
//!
//! It restarts the server of `scripts/services.sh` (`stop redis`, then
//! `redis`), so it lives in a test binary of its own: cargo runs test
//! binaries one after another, so the other binaries never see the outage.
//! The server keeps no data (`--save ''`), so the restart empties it.

mod common;

use backend_core::testkit::OrPanic;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use backend_core::testkit::unique;
use backend_core::{Backend, Bytes, FetchRequest, Message, OfflineMode, QoS, Statement};

const WAIT: Duration = Duration::from_secs(20);

fn services_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh")
}

fn services(args: &[&str]) {
    let out = Command::new("bash")
        .arg(services_sh())
        .args(args)
        .output()
        .or_panic(&format!("cannot run scripts/services.sh {args:?}"));
    assert!(
        out.status.success(),
        "scripts/services.sh {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the server again however the test ends.
struct Restarter;

impl Drop for Restarter {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(services_sh())
            .arg("redis")
            .output();
    }
}

fn queue(filter: &str) -> FetchRequest {
    FetchRequest {
        client_id: "restart".into(),
        filter: filter.into(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    }
}

fn ping() -> Statement {
    Statement::Command {
        args: vec![Bytes::from_static(b"PING")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_succeed_again_after_a_redis_restart() {
    let t = common::target();
    assert!(
        (t.host == "127.0.0.1" || t.host == "localhost") && t.port == 6379,
        "the restart test restarts the local server of scripts/services.sh; REDIS_URL points at {} instead",
        t.url_for_messages
    );
    let b = common::backend().await;
    let channel = unique("restart-ch");
    let listener = b.listen_to(&channel).expect("listen");
    assert!(listener.wait_subscribed(WAIT).await, "subscribed");
    let mut listener = listener;
    let topic = unique("restart");
    let before = Message::new("p", &topic, QoS::AtLeastOnce, "before");
    b.store_messages(std::slice::from_ref(&before), Default::default())
        .await
        .expect("store before");
    assert_eq!(
        b.fetch_messages(&queue(&topic)).await.expect("fetch").len(),
        1
    );

    let _restarter = Restarter;
    services(&["stop", "redis"]);
    let e = b
        .fetch_messages(&queue(&topic))
        .await
        .expect_err("Redis is down");
    assert!(e.is_retryable(), "a retryable error while down: {e}");
    let e = b.execute(&ping()).await.expect_err("down");
    assert!(e.is_retryable(), "{e}");
    let deadline = Instant::now() + WAIT;
    while listener.is_subscribed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!listener.is_subscribed(), "the listener noticed the outage");

    services(&["redis"]);
    // Every built-in operation succeeds at once: a connection broken by the
    // restart is replaced and the operation run again.
    let after = Message::new("p", &topic, QoS::AtLeastOnce, "after");
    for i in 0..8 {
        b.store_messages(std::slice::from_ref(&after), Default::default())
            .await
            .or_panic(&format!("store #{i} after the restart"));
    }
    let got = b.fetch_messages(&queue(&topic)).await.expect("fetch after");
    let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [after.id.as_str()], "the restart emptied the server");
    // Raw commands are not re-sent: one may fail (retryably) per stale
    // connection, then they succeed.
    let mut failures = 0;
    for _ in 0..8 {
        if let Err(e) = b.execute(&ping()).await {
            assert!(e.is_retryable(), "{e}");
            failures += 1;
        }
    }
    assert!(failures <= b.settings().pool_size, "{failures} failures");
    b.execute(&ping()).await.expect("raw after the restart");

    assert!(
        listener.wait_subscribed(WAIT).await,
        "the listener resubscribed"
    );
    assert!(listener.stats().connections >= 2, "{:?}", listener.stats());
    let mut c = common::plain().await;
    let n: i64 = common::cmd(
        &mut c,
        &[
            b"PUBLISH",
            channel.as_bytes(),
            br#"{"type":"subscribe","topic":"t","clientid":"c","qos":1}"#,
        ],
    )
    .await;
    assert_eq!(n, 1);
    let cmd = tokio::time::timeout(WAIT, listener.recv())
        .await
        .expect("a command after the restart")
        .expect("running");
    assert_eq!(cmd.client_id(), "c");
}
