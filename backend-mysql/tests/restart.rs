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

use common::Raw;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::testkit::restart_under_load;
use backend_core::{Backend, Value};
use backend_mysql::mysql_async::prelude::Queryable;

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
        let s = common::server();
        assert!(
            s.host == "127.0.0.1" && s.port == 3306,
            "the restart test restarts the local MariaDB of scripts/services.sh; MYSQL_URL points \
             at {}",
            s.label()
        );
        let b = Arc::new(common::connect().await);
        let restart = async {
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
        };
        let report = restart_under_load(Arc::clone(&b) as Arc<dyn Backend>, 4, restart).await;
        assert_eq!(
            b.execute_sql("SELECT CAST(? AS CHAR)", &[Value::from("raw")])
                .await
                .expect("a raw statement after restart"),
            vec![vec![Value::from("raw")]]
        );
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
