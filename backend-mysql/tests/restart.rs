//! A MariaDB restart while the backend is in use; afterwards every
//! operation succeeds again, on the same backend, without reconnecting.
//!
//! This binary holds this one test on purpose: cargo runs test binaries one
//! after another, so the restart never overlaps this crate's other tests
//! (the conformance suite, tests/mysql.rs). It restarts the server the way
//! `scripts/services.sh` runs it: `scripts/services.sh stop mariadb` (SIGTERM
//! to the pid in its pid file, waiting until the process is gone), then
//! `scripts/services.sh mariadb`, which starts `mariadbd` on the same data
//! directory and waits until it answers a query. Anything else using that
//! server at the same moment sees its connections dropped once.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_core::testkit::unique;
use backend_core::{
    Ack, Backend, ClientInfo, ErrorKind, FetchRequest, Message, OfflineMode, QoS, Timestamp, Value,
};
use backend_mysql::mysql_async::prelude::Queryable;

fn services(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
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

#[derive(Default)]
struct Tally {
    ok: usize,
    errors: Vec<(ErrorKind, String)>,
}

fn request(client: &str, filter: &str, mode: OfflineMode) -> FetchRequest {
    FetchRequest {
        client_id: client.into(),
        filter: filter.into(),
        mode,
        max_count: None,
        since: None,
    }
}

#[test]
fn operations_succeed_again_after_a_server_restart() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let s = common::server();
        assert!(
            s.host == "127.0.0.1" && s.port == 3306,
            "the restart test restarts the local MariaDB of scripts/services.sh; MYSQL_URL points \
             at {}",
            s.label()
        );
        let b = Arc::new(common::connect().await);
        let topic = unique("restart");
        // Use all four connections of the pool so that every one of them dies.
        futures::future::join_all((0..4).map(|i| {
            let b = Arc::clone(&b);
            let topic = topic.clone();
            async move {
                let m = Message::new("p", topic, QoS::AtLeastOnce, format!("warm {i}"));
                b.store_messages(&[m], Default::default())
                    .await
                    .expect("warm-up");
            }
        }))
        .await;

        // Load while the server restarts.
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let load = {
            let (b, stop, tally, topic) = (
                Arc::clone(&b),
                Arc::clone(&stop),
                Arc::clone(&tally),
                topic.clone(),
            );
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let m = Message::new("load", topic.clone(), QoS::AtLeastOnce, i.to_string());
                    let r = match b.store_messages(&[m], Default::default()).await {
                        Ok(()) => b
                            .fetch_messages(&request("load", &topic, OfflineMode::Queue))
                            .await
                            .map(|_| ()),
                        Err(e) => Err(e),
                    };
                    {
                        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
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
        let before = tally.lock().map(|t| t.ok).unwrap_or(0);
        assert!(before > 0, "the load ran before the restart");

        let started = Instant::now();
        tokio::task::spawn_blocking(|| {
            services(&["stop", "mariadb"]);
            services(&["mariadb"]);
        })
        .await
        .expect("the restart task");
        // services.sh returns once the server answers; check it here too.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = tokio::time::timeout(Duration::from_secs(2), async {
                let mut c = s.raw().await;
                c.query_drop("SELECT 1").await.is_ok()
            })
            .await
            .unwrap_or(false);
            if answered {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "MariaDB did not come back within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "server restarted and answering after {:?}",
            started.elapsed()
        );

        // Every operation succeeds on the same backend, first time.
        let client = ClientInfo::new(unique("restart-client"), "emqx@127.0.0.1");
        b.client_online(&client, Timestamp::now())
            .await
            .expect("client_online after restart");
        let m = Message::new("p", topic.clone(), QoS::AtLeastOnce, "after");
        b.store_messages(std::slice::from_ref(&m), Default::default())
            .await
            .expect("store_messages after restart");
        let got = b
            .fetch_messages(&request("q", &topic, OfflineMode::Queue))
            .await
            .expect("fetch_messages after restart");
        assert!(
            got.iter().any(|g| g.id == m.id),
            "the message stored after the restart"
        );
        b.ack_messages(
            OfflineMode::Queue,
            &[Ack {
                client_id: "q".into(),
                topic: topic.clone(),
                message_id: m.id.clone(),
            }],
        )
        .await
        .expect("ack_messages after restart");
        b.store_retained(&[m.clone().retained(true)], Default::default())
            .await
            .expect("store_retained after restart");
        assert_eq!(
            b.lookup_retained(&topic)
                .await
                .expect("lookup_retained after restart")
                .len(),
            1
        );
        assert_eq!(
            b.execute_sql("SELECT CAST(? AS CHAR)", &[Value::from("raw")])
                .await
                .expect("a raw statement after restart"),
            vec![vec![Value::from("raw")]]
        );
        // Concurrent use refills the pool with new connections.
        futures::future::join_all((0..8).map(|_| {
            let b = Arc::clone(&b);
            let topic = topic.clone();
            async move {
                b.fetch_messages(&request("q", &topic, OfflineMode::Queue))
                    .await
                    .expect("concurrent fetch after restart");
            }
        }))
        .await;

        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        load.await.expect("the load task");
        let t = tally.lock().unwrap_or_else(|p| p.into_inner());
        let mut kinds: Vec<(ErrorKind, usize)> = Vec::new();
        for (k, _) in &t.errors {
            match kinds.iter_mut().find(|(x, _)| x == k) {
                Some((_, n)) => *n += 1,
                None => kinds.push((*k, 1)),
            }
        }
        println!(
            "load during the restart: {} operations succeeded, {} failed {kinds:?}; first: {:?}",
            t.ok,
            t.errors.len(),
            t.errors.first().map(|(_, e)| e)
        );
        for (kind, text) in &t.errors {
            assert!(
                kind.is_retryable(),
                "an error during the restart must be retryable, got {kind:?}: {text}"
            );
        }
        assert!(t.ok > before, "the load succeeded again after the restart");
    });
}
