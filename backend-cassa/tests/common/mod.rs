//! Shared by the test binaries: where the cluster is (`CASSA_NODES`,
//! `CASSA_USER`, `CASSA_PASSWORD`, as `scripts/services.sh cassandra`
//! prints them), and connecting to it. A cluster that cannot be reached
//! fails the test with a message naming the nodes; it is never skipped.
#![allow(dead_code)]

use backend_core::testkit::OrPanic;
use std::sync::Arc;

use backend_cassa::CassaBackend;
use backend_core::config::PoolConfig;
use backend_core::{Backend, Config};

/// The default of `CASSA_NODES`: what `scripts/services.sh` starts.
pub const DEFAULT_NODES: &str = "127.0.0.1:9042";

/// The keyspace the tests use (services.sh creates it).
pub const KEYSPACE: &str = "mqtt";

/// The contact points.
pub fn nodes() -> String {
    std::env::var("CASSA_NODES").unwrap_or_else(|_| DEFAULT_NODES.to_owned())
}

/// The user.
pub fn user() -> String {
    std::env::var("CASSA_USER").unwrap_or_else(|_| "cassandra".to_owned())
}

/// The password.
pub fn password() -> String {
    std::env::var("CASSA_PASSWORD").unwrap_or_else(|_| "cassandra".to_owned())
}

/// A pool of the test cluster.
pub fn pool(name: &str) -> PoolConfig {
    let mut p = PoolConfig::new(backend_cassa::KIND, name);
    for (k, v) in [
        ("nodes", nodes()),
        ("username", user()),
        ("password", password()),
        ("keyspace", KEYSPACE.to_owned()),
        ("size", "2".to_owned()),
        ("create_tables", "true".to_owned()),
    ] {
        p.set(k, &v).or_panic(&format!("test pool setting {k}"));
    }
    p
}

/// A configuration with one pool, `pool1`.
pub fn config() -> Config {
    Config::new(backend_cassa::KIND).with_pool(pool("pool1"))
}

/// Connects a new backend, or fails the test naming the cluster.
pub async fn connect() -> CassaBackend {
    let conf = config();
    match CassaBackend::connect(&conf.pools()["pool1"], &conf).await {
        Ok(b) => b,
        Err(e) => panic!(
            "cannot reach the Cassandra test cluster at {} (set CASSA_NODES, CASSA_USER, \
             CASSA_PASSWORD, or run `scripts/services.sh start cassandra`): {e}",
            nodes()
        ),
    }
}

/// The conformance suite's factory.
pub async fn factory() -> Arc<dyn Backend> {
    Arc::new(connect().await)
}

/// The default of `CASSA_CLUSTER_NODES`: the three-node cluster of
/// `scripts/services.sh cassandra-cluster`.
pub const DEFAULT_CLUSTER_NODES: &str = "127.0.0.2:9042,127.0.0.3:9042,127.0.0.4:9042";

/// The cluster's contact points.
pub fn cluster_nodes() -> String {
    std::env::var("CASSA_CLUSTER_NODES").unwrap_or_else(|_| DEFAULT_CLUSTER_NODES.to_owned())
}

/// A backend on the three-node cluster, with `extra` pool settings.
pub async fn connect_cluster(extra: &[(&str, &str)]) -> CassaBackend {
    let mut p = pool("pool1");
    p.set("nodes", &cluster_nodes()).expect("nodes");
    for (k, v) in extra {
        p.set(k, v).or_panic(k);
    }
    let conf = Config::new(backend_cassa::KIND).with_pool(p.clone());
    match CassaBackend::connect(&p, &conf).await {
        Ok(b) => b,
        Err(e) => panic!(
            "cannot reach the Cassandra cluster at {} (set CASSA_CLUSTER_NODES, or run \
             `scripts/services.sh cassandra-cluster`): {e}",
            cluster_nodes()
        ),
    }
}
