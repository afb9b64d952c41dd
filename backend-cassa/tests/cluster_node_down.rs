//! One node of the three-node cluster of `scripts/services.sh
//! cassandra-cluster` stopped under load, at `LOCAL_QUORUM` with
//! replication factor 3: writes go on (two replicas of three answer),
//! fetches still answer, the node rejoins when started again, and every
//! acknowledged write is then stored, once. Its own test binary: cargo runs
//! test binaries one after another, so no other test sees the outage.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::testkit::{unique, WriteLoad};
use backend_core::{Backend, FetchRequest, OfflineMode};

fn queue(filter: &str) -> FetchRequest {
    FetchRequest {
        client_id: "node-down".into(),
        filter: filter.into(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    }
}

fn pid_file(node: usize) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/services/cassandra-cluster")
        .join(format!("node{node}"))
        .join("cassandra.pid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_under_load_loses_no_acknowledged_write() {
    assert_eq!(
        common::cluster_nodes(),
        common::DEFAULT_CLUSTER_NODES,
        "the test stops a node of scripts/services.sh's cluster"
    );
    let b: Arc<dyn Backend> = Arc::new(common::connect_cluster(&[]).await);
    let root = unique("node-down");
    let topics: Vec<String> = (0..8).map(|i| format!("{root}/{i}")).collect();
    let load = WriteLoad::start(b.clone(), topics, 4, Duration::from_millis(50));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = load.acked();
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
    let during = load.acked() - before;
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
    let back = load.acked();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = load.finish().await;
    let check = report.check_stored(&*b, &format!("{root}/#")).await;
    println!(
        "node down under load: {} writes acknowledged ({before} before the stop, {during} in \
         the 8 s it was down, {} after it rejoined at {rejoined:?}), {} failed and were \
         retried, {} stored, {} acknowledged but lost",
        report.acked.len(),
        report.acked.len() - back,
        report.failures,
        check.fetched,
        check.lost.len()
    );
    assert!(during > 0, "writes went on with one node down");
    assert!(
        check.lost.is_empty(),
        "acknowledged but lost: {:?}",
        check.lost
    );
    assert_eq!(check.fetched, check.distinct, "each message once");
}
