//! A master of the Redis Cluster of `scripts/services.sh redis-cluster`
//! killed with SIGKILL under load (its own test binary: cargo runs test
//! binaries one after another, so no other test sees the failover).

#![cfg(feature = "cluster")]

#[path = "common/cluster.rs"]
mod cluster;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::testkit::{unique, WriteLoad};
use backend_core::Backend;
use backend_redis::keys::cluster as layout;
use cluster::{connect, master_of, nodes, try_master_of, DEFAULT_NODES};

/// `connected_slaves` of the node at `addr` (`host:port`).
fn replicas_of(addr: &str) -> u32 {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
    let out = std::process::Command::new("redis-cli")
        .args(["-h", host, "-p", port, "info", "replication"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("connected_slaves:"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn pid_of(port: &str) -> i32 {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/services/redis-cluster")
        .join(port)
        .join("redis.pid");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (a node of scripts/services.sh?)", file.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: `{text}` is not a pid", file.display()))
}

/// Kills one master with SIGKILL while writers store messages with
/// `replica_acks = 1`, starts it again once its replica took over, and
/// checks that every write the backend acknowledged is stored, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_loses_no_acknowledged_write() {
    assert_eq!(
        nodes(),
        DEFAULT_NODES,
        "the failover test kills a node of scripts/services.sh's cluster"
    );
    let b = Arc::new(connect(&[("replica_acks", "1")]).await);
    let root = unique("cl-failover");
    let topics: Vec<String> = (0..12).map(|i| format!("{root}/{i}")).collect();
    let victim = master_of(&b, &layout::msg_topic(&topics[0])).await;
    let port = victim.rsplit(':').next().unwrap_or_default().to_owned();
    let load = WriteLoad::start(
        Arc::clone(&b) as Arc<dyn Backend>,
        topics.clone(),
        4,
        Duration::from_millis(50),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = load.acked();
    let killed = Instant::now();
    let status = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid_of(&port).to_string())
        .status()
        .expect("kill -9");
    assert!(status.success(), "kill -9 the master on {victim}");
    // The replica takes over after the node timeout (2 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let new_master = loop {
        // The killed node may be the one asked: then ask again.
        let now_master = try_master_of(&b, &layout::msg_topic(&topics[0]))
            .await
            .unwrap_or_else(|_| victim.clone());
        if now_master != victim {
            println!(
                "failover: {victim} -> {now_master} after {:?}",
                killed.elapsed()
            );
            break now_master;
        }
        assert!(Instant::now() < deadline, "no failover within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The killed node comes back as a replica of the new master, so
    // writes there can be replicated again.
    tokio::task::spawn_blocking(|| {
        backend_core::testkit::services(env!("CARGO_MANIFEST_DIR"), &["redis-cluster"])
    })
    .await
    .expect("restart the killed node");
    let deadline = Instant::now() + Duration::from_secs(60);
    while replicas_of(&new_master) == 0 {
        assert!(
            Instant::now() < deadline,
            "{victim} did not rejoin as a replica of {new_master} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{victim} is a replica again after {:?}", killed.elapsed());
    let recovered = load.acked();
    // Writes flow again, on every master: the writers that waited on
    // the failed master's slots (for its replica to take over, then
    // for a replica of the new master to have their writes) go on.
    load.wait_for_acked(
        recovered + 200,
        Duration::from_secs(60),
        "writes did not resume after the node rejoined",
    )
    .await;
    println!(
        "200 more writes acknowledged {:?} after the kill",
        killed.elapsed()
    );
    let report = load.finish().await;
    let check = report.check_stored(&*b, &format!("{root}/#")).await;
    println!(
        "failover under load: {} writes acknowledged ({before} before the kill, {} after the \
         node rejoined), {} failed and were retried, {} stored, {} acknowledged but lost",
        report.acked.len(),
        report.acked.len() - recovered,
        report.failures,
        check.fetched,
        check.lost.len()
    );
    assert!(
        report.acked.len() > recovered,
        "writes went on after the failover"
    );
    assert!(
        check.lost.is_empty(),
        "acknowledged but lost: {:?}",
        check.lost
    );
    assert_eq!(check.fetched, check.distinct, "each message once");
}
