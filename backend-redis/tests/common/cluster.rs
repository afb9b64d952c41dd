//! The Redis Cluster of `scripts/services.sh redis-cluster`
//! (`REDIS_CLUSTER_NODES`): backends on it and where its slots live.
#![allow(dead_code)]

use backend_core::testkit::OrPanic;
use std::time::Duration;

use backend_core::config::PoolConfig;
use backend_core::Config;
use backend_redis::{redis, RedisBackend};

/// The six nodes services.sh starts.
pub const DEFAULT_NODES: &str =
    "127.0.0.1:30001,127.0.0.1:30002,127.0.0.1:30003,127.0.0.1:30004,127.0.0.1:30005,127.0.0.1:30006";

pub fn nodes() -> String {
    std::env::var("REDIS_CLUSTER_NODES").unwrap_or_else(|_| DEFAULT_NODES.to_owned())
}

pub fn pool(extra: &[(&str, &str)]) -> PoolConfig {
    let mut p = PoolConfig::new(backend_redis::KIND, "pool1");
    p.set("type", "cluster").expect("type");
    p.set("server", &nodes()).expect("server");
    for (k, v) in extra {
        p.set(k, v).or_panic(k);
    }
    p
}

pub async fn connect(extra: &[(&str, &str)]) -> RedisBackend {
    let p = pool(extra);
    let conf = Config::new(backend_redis::KIND).with_pool(p.clone());
    match tokio::time::timeout(Duration::from_secs(60), RedisBackend::connect(&p, &conf)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => panic!(
            "cannot reach the Redis Cluster at {} (scripts/services.sh redis-cluster): {e}",
            nodes()
        ),
        Err(_) => panic!("connecting to the cluster took over 60 s"),
    }
}

pub async fn cluster_conn(b: &RedisBackend) -> redis::cluster_async::ClusterConnection {
    b.cluster_connection().expect("type = cluster")
}

/// The master serving `key`'s slot, as `host:port`.
pub async fn master_of(b: &RedisBackend, key: &str) -> String {
    try_master_of(b, key)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`master_of`], or why it could not be told. While a master is down, a
/// command without a key may go to that node and time out: a test waiting
/// for a failover asks again.
pub async fn try_master_of(b: &RedisBackend, key: &str) -> Result<String, String> {
    let mut c = cluster_conn(b).await;
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut c)
        .await
        .map_err(|e| format!("CLUSTER KEYSLOT: {e}"))?;
    let shards: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut c)
        .await
        .map_err(|e| format!("CLUSTER SLOTS: {e}"))?;
    for shard in shards {
        let redis::Value::Array(items) = shard else {
            continue;
        };
        let (Some(redis::Value::Int(lo)), Some(redis::Value::Int(hi))) =
            (items.first(), items.get(1))
        else {
            continue;
        };
        if (*lo..=*hi).contains(&slot) {
            if let Some(redis::Value::Array(master)) = items.get(2) {
                if let (Some(redis::Value::BulkString(host)), Some(redis::Value::Int(port))) =
                    (master.first(), master.get(1))
                {
                    return Ok(format!("{}:{port}", String::from_utf8_lossy(host)));
                }
            }
        }
    }
    Err(format!("no master serves slot {slot}"))
}
