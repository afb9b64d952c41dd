//! Shared by the test binaries: where the cluster is (`CASSA_NODES`,
//! `CASSA_USER`, `CASSA_PASSWORD`, as `scripts/services.sh cassandra`
//! prints them), and connecting to it. A cluster that cannot be reached
//! fails the test with a message naming the nodes; it is never skipped.
#![allow(dead_code)]

use std::sync::Arc;

use backend_cassa::CassaBackend;
use backend_core::config::PoolConfig;
use backend_core::{Backend, BackendKind, Config};

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
    let mut p = PoolConfig::new(BackendKind::Cassa, name);
    for (k, v) in [
        ("nodes", nodes()),
        ("username", user()),
        ("password", password()),
        ("keyspace", KEYSPACE.to_owned()),
        ("size", "2".to_owned()),
        ("create_tables", "true".to_owned()),
    ] {
        p.set(k, &v)
            .unwrap_or_else(|e| panic!("test pool setting {k}: {e}"));
    }
    p
}

/// A configuration with one pool, `pool1`.
pub fn config() -> Config {
    Config::new(BackendKind::Cassa).with_pool(pool("pool1"))
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
