//! Slots of the Redis Cluster of `scripts/services.sh redis-cluster` moved
//! from one master to another (`redis-cli --cluster reshard`) while
//! writers store messages on topics in those slots: the cluster connection
//! follows `ASK` during each slot's migration and `MOVED` after it, no
//! write fails for good, and every acknowledged one is stored, once. Its
//! own test binary, since the other cluster tests would see the moves.

#![cfg(feature = "cluster")]

#[path = "common/cluster.rs"]
mod cluster;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::testkit::{unique, WriteLoad};
use backend_core::Backend;
use backend_redis::keys::cluster as layout;
use backend_redis::redis;
use cluster::{connect, nodes, DEFAULT_NODES};

/// How many slots move.
const MOVED_SLOTS: i64 = 400;

/// `redis-cli` against a node; stdout.
fn cli(port: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", port])
        .args(args)
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The masters with slots: (node id, port, lowest slot of its lowest
/// range, that range's end), from `CLUSTER NODES`.
fn masters() -> Vec<(String, String, i64, i64)> {
    let mut out = Vec::new();
    for line in cli("30001", &["cluster", "nodes"]).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
            continue;
        }
        let port = f[1]
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .unwrap_or_default()
            .to_owned();
        let mut ranges: Vec<(i64, i64)> = f[8..]
            .iter()
            .filter(|r| !r.starts_with('['))
            .filter_map(|r| match r.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => r.parse().ok().map(|s| (s, s)),
            })
            .collect();
        ranges.sort_unstable();
        if let Some(&(lo, hi)) = ranges.first() {
            out.push((f[0].to_owned(), port, lo, hi));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_their_slots_move() {
    assert_eq!(
        nodes(),
        DEFAULT_NODES,
        "the reshard test moves slots of scripts/services.sh's cluster"
    );
    let b = Arc::new(connect(&[]).await);
    // The source: a master whose lowest range holds enough slots.
    let ms = masters();
    let (src_id, src_port, lo, hi) = ms
        .iter()
        .find(|(_, _, lo, hi)| hi - lo + 1 >= MOVED_SLOTS)
        .cloned()
        .unwrap_or_else(|| panic!("no master with {MOVED_SLOTS} slots in one range: {ms:?}"));
    let (dst_id, _, _, _) = ms
        .iter()
        .find(|(id, ..)| *id != src_id)
        .cloned()
        .expect("another master");
    // Topics in the slots that move (reshard takes a source's lowest).
    let mut c = b.cluster_connection().expect("type = cluster");
    let root = unique("cl-reshard");
    let mut topics = Vec::new();
    for i in 0..20_000 {
        let t = format!("{root}/{i}");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(layout::msg_topic(&t))
            .query_async(&mut c)
            .await
            .expect("CLUSTER KEYSLOT");
        if (lo..lo + MOVED_SLOTS).contains(&slot) {
            topics.push(t);
            if topics.len() == 8 {
                break;
            }
        }
    }
    assert_eq!(topics.len(), 8, "8 topics in slots {lo}..{hi}");
    let load = WriteLoad::start(
        Arc::clone(&b) as Arc<dyn Backend>,
        topics.clone(),
        4,
        Duration::from_millis(20),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let slots = MOVED_SLOTS.to_string();
    let (src, dst) = (src_id.clone(), dst_id.clone());
    let port = src_port.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{port}")])
            .args(["--cluster-from", &src, "--cluster-to", &dst])
            .args(["--cluster-slots", &slots, "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster reshard")
    })
    .await
    .expect("the reshard task");
    assert!(
        out.status.success(),
        "reshard failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.finish().await;
    let now_master = cluster::master_of(&b, &layout::msg_topic(&topics[0])).await;
    assert!(
        !now_master.ends_with(&format!(":{src_port}")),
        "the topic's slot left 127.0.0.1:{src_port}"
    );
    let check = report.check_stored(&*b, &format!("{root}/#")).await;
    println!(
        "reshard of {MOVED_SLOTS} slots (127.0.0.1:{src_port} -> {now_master}) in {took:?} \
         under load: {} writes acknowledged, {} failed and were retried, {} stored, {} \
         acknowledged but lost",
        report.acked.len(),
        report.failures,
        check.fetched,
        check.lost.len()
    );
    assert!(
        check.lost.is_empty(),
        "acknowledged but lost: {:?}",
        check.lost
    );
    assert_eq!(check.fetched, check.distinct, "each message once");
}
