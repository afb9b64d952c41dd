//! A PostgreSQL restart while the backend is in use; afterwards every
//! operation succeeds again, on the same backend, without reconnecting.
//!
//! This binary holds this one test on purpose: cargo runs test binaries one
//! after another, so the restart never overlaps this crate's other tests
//! (the conformance suite, tests/pgsql.rs). It restarts the server of
//! `scripts/services.sh` with `pg_ctl restart` on its data directory
//! (`PGSQL_DATA_DIR`, default `target/services/postgres/data`, else the
//! server's own `data_directory`), as the
//! `postgres` user when run as root. Anything else using that server at
//! the same moment (another crate's tests run by hand in parallel) sees
//! its connections dropped once.

mod common;

use backend_core::testkit::OrPanic;
use common::Raw;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::testkit::restart_under_load;
use backend_core::{Backend, Value};

/// `PGSQL_DATA_DIR`, else `target/services/postgres/data`, else wherever
/// the server says its data is (it may have been started from another
/// checkout of the repository).
async fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PGSQL_DATA_DIR") {
        return PathBuf::from(d);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/services/postgres/data");
    if local.join("PG_VERSION").is_file() {
        return local;
    }
    let client = common::server().raw().await;
    match client.query_one("SHOW data_directory", &[]).await {
        Ok(row) => PathBuf::from(row.get::<_, String>(0)),
        Err(_) => local,
    }
}

fn pg_ctl() -> PathBuf {
    let bin = std::env::var_os("PGSQL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    bin.join("pg_ctl")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `pg_ctl restart -m fast -w`, the server's output appended to the log
/// the services script keeps (pg_ctl restart has no `-l`; the new server
/// inherits pg_ctl's stdout and stderr). The options of the first start
/// (port, socket directory, listen address) come from `postmaster.opts`.
fn restart_server(data: &Path) {
    let log_path = data
        .parent()
        .map(|d| d.join("postgres.log"))
        .unwrap_or_else(|| PathBuf::from("/dev/null"));
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&log_path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log_path.display()));
    let err = log.try_clone().expect("a second log handle");
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_ctl());
        c
    } else {
        Command::new(pg_ctl())
    };
    cmd.arg("-D")
        .arg(data)
        .args(["-m", "fast", "-w", "-t", "60", "restart"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    let status = cmd.status().or_panic(&format!("running {cmd:?}"));
    assert!(
        status.success(),
        "{cmd:?} failed ({status}); see {}",
        log_path.display()
    );
}

#[test]
fn operations_succeed_again_after_a_server_restart() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let data = rt.block_on(data_dir());
    assert!(
        data.join("PG_VERSION").is_file(),
        "no PostgreSQL data directory at {} (set PGSQL_DATA_DIR; the server of PGSQL_URL must be \
         the local one `scripts/services.sh postgres` runs)",
        data.display()
    );
    rt.block_on(async {
        let s = common::server();
        let b = Arc::new(common::connect().await);
        let restart = async {
            let d = data.clone();
            tokio::task::spawn_blocking(move || restart_server(&d))
                .await
                .expect("the restart task");
            // pg_ctl -w returns when the server accepts connections; check
            // that it answers a query too.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let mut c = tokio_postgres::Config::new();
                c.host(&s.host)
                    .port(s.port)
                    .user(&s.user)
                    .password(&s.password)
                    .dbname(&s.database)
                    .connect_timeout(Duration::from_secs(2));
                if let Ok((client, conn)) = c.connect(tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    if client.simple_query("SELECT 1").await.is_ok() {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "PostgreSQL did not come back within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let report = restart_under_load(Arc::clone(&b) as Arc<dyn Backend>, 4, restart).await;
        assert!(
            b.pool().status().size >= 1,
            "the pool has connections again"
        );
        assert_eq!(
            b.execute_sql("SELECT $1::text", &[Value::from("raw")])
                .await
                .expect("a raw statement after restart"),
            vec![vec![Value::from("raw")]]
        );
        println!(
            "restart took {:?}; load: {} operations succeeded ({} before), {} failed: {:?}",
            report.restart_took,
            report.ok,
            report.ok_before,
            report.errors.len(),
            report.errors.iter().map(|(k, _)| *k).collect::<Vec<_>>()
        );
    });
}
