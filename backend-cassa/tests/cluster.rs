//! The three-node Cassandra cluster that `scripts/services.sh
//! cassandra-cluster` starts (`CASSA_CLUSTER_NODES`, default 127.0.0.2-4,
//! keyspace `mqtt` with replication factor 3), at the default consistency
//! `LOCAL_QUORUM` with token-aware routing: the whole conformance suite.
//! Fails, never skips, when the cluster is down. One node stopped under
//! load is in `cluster_node_down.rs`, a binary of its own.

mod common;

use std::sync::Arc;

use backend_core::testkit::RawFixture;
use backend_core::Backend;

async fn backend() -> Arc<dyn Backend> {
    Arc::new(common::connect_cluster(&[]).await)
}

backend_core::conformance_tests!(backend, RawFixture::cql());
