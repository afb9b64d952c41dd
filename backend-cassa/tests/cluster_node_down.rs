//! One node of the three-node cluster of `scripts/services.sh
//! cassandra-cluster` stopped under load, at `LOCAL_QUORUM` with
//! replication factor 3: writes go on (two replicas of three answer),
//! fetches still answer, the node rejoins when started again, and every
//! acknowledged write is then stored, once. Its own test binary: cargo runs
//! test binaries one after another, so no other test sees the outage.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_core::testkit::unique;
use backend_core::{Backend, FetchRequest, Message, OfflineMode, QoS, WriteOptions};

fn queue(filter: &str) -> FetchRequest {
    FetchRequest {
        client_id: "node-down".into(),
        filter: filter.into(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
    }
}

fn pid_file(node: usize) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/services/cassandra-cluster")
        .join(format!("node{node}"))
        .join("cassandra.pid")
}

#[test]
fn a_node_stopped_under_load_loses_no_acknowledged_write() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        assert_eq!(
            common::cluster_nodes(),
            common::DEFAULT_CLUSTER_NODES,
            "the test stops a node of scripts/services.sh's cluster"
        );
        let b = Arc::new(common::connect_cluster(&[]).await);
        let root = unique("node-down");
        let topics: Vec<String> = (0..8).map(|i| format!("{root}/{i}")).collect();
        let acked = Arc::new(Mutex::new(Vec::<Message>::new()));
        let failures = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..4 {
            let (b, topics, acked, failures, stop) = (
                Arc::clone(&b),
                topics.clone(),
                Arc::clone(&acked),
                Arc::clone(&failures),
                Arc::clone(&stop),
            );
            writers.push(tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let topic = &topics[(w + n) % topics.len()];
                    let m = Message::new("p", topic.as_str(), QoS::AtLeastOnce, format!("{w}-{n}"));
                    n += 1;
                    match b
                        .store_messages(std::slice::from_ref(&m), WriteOptions::default())
                        .await
                    {
                        Ok(()) => acked.lock().unwrap_or_else(|p| p.into_inner()).push(m),
                        Err(e) => {
                            assert!(e.is_retryable(), "a node down is retryable: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
        let count =
            |a: &Arc<Mutex<Vec<Message>>>| a.lock().unwrap_or_else(|p| p.into_inner()).len();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before = count(&acked);
        // Node 3 (127.0.0.4) goes away: SIGTERM, as services.sh stops it.
        let pid = std::fs::read_to_string(pid_file(3)).expect("node 3's pid file");
        let stopped = Instant::now();
        let status = std::process::Command::new("kill")
            .arg(pid.trim())
            .status()
            .expect("kill");
        assert!(status.success(), "stop node 3");
        // Writes and fetches go on while it is down.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let during = count(&acked) - before;
        let fetched = b
            .fetch_messages(&queue(&format!("{root}/#")))
            .await
            .expect("a fetch with one node of three down");
        assert!(
            fetched.len() >= before,
            "the fetch found {} of the {before} messages stored before",
            fetched.len()
        );
        // Started again, it rejoins.
        tokio::task::spawn_blocking(|| {
            backend_core::testkit::services(env!("CARGO_MANIFEST_DIR"), &["cassandra-cluster"])
        })
        .await
        .expect("start node 3 again");
        let rejoined = stopped.elapsed();
        let back = count(&acked);
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.expect("a writer");
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));
        let got = b
            .fetch_messages(&queue(&format!("{root}/#")))
            .await
            .expect("fetch after the node rejoined");
        let stored: HashSet<&str> = got.iter().map(|m| m.id.as_str()).collect();
        let lost = acked
            .iter()
            .filter(|m| !stored.contains(m.id.as_str()))
            .count();
        println!(
            "node down under load: {} writes acknowledged ({before} before the stop, {during} in \
             the 8 s it was down, {} after it rejoined at {rejoined:?}), {} failed and were \
             retried, {} stored, {lost} acknowledged but lost",
            acked.len(),
            acked.len() - back,
            failures.load(Ordering::Relaxed),
            got.len()
        );
        assert!(during > 0, "writes went on with one node down");
        assert_eq!(lost, 0, "acknowledged writes lost");
        assert_eq!(got.len(), stored.len(), "each message once");
    });
}
