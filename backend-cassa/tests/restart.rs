//! A Cassandra restart while the backend is in use; afterwards every
//! operation succeeds again, on the same backend, without reconnecting by
//! hand.
//!
//! This binary holds this one test on purpose: cargo runs test binaries one
//! after another, so the restart never overlaps this crate's other tests.
//! It restarts the server the way `scripts/services.sh` runs it:
//! `scripts/services.sh stop cassandra`, then `scripts/services.sh
//! cassandra`, which starts it on the same data directory and waits until
//! it answers a query.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::testkit::restart_under_load;
use backend_core::Backend;

fn services(args: &[&str]) {
    backend_core::testkit::services(env!("CARGO_MANIFEST_DIR"), args);
}

#[test]
fn operations_succeed_again_after_a_server_restart() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        assert_eq!(
            common::nodes(),
            common::DEFAULT_NODES,
            "the restart test restarts the local Cassandra of scripts/services.sh"
        );
        let b = Arc::new(common::connect().await);
        let restart = async {
            tokio::task::spawn_blocking(|| {
                services(&["stop", "cassandra"]);
                services(&["cassandra"]);
            })
            .await
            .expect("the restart task");
            // services.sh returns once the server answers; wait until this
            // backend's session answers too (its pool reconnects every
            // second).
            let deadline = Instant::now() + Duration::from_secs(90);
            while b.ping().await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "the backend did not reconnect within 90 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        let report = restart_under_load(Arc::clone(&b) as Arc<dyn Backend>, 4, restart).await;
        println!(
            "restart took {:?}; load: {} operations succeeded ({} before), {} failed; first: {:?}",
            report.restart_took,
            report.ok,
            report.ok_before,
            report.errors.len(),
            report.errors.first().map(|(_, e)| e)
        );
    });
}
