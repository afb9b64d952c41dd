//! A MongoDB wire server restart while the backend is in use; afterwards
//! every operation succeeds again, on the same backend, without
//! reconnecting (`backend_core::testkit::restart_under_load`).
//!
//! This binary holds this one test on purpose: cargo runs test binaries one
//! after another, so the restart never overlaps this crate's other tests.
//!
//! Unlike the MariaDB and PostgreSQL restart tests, it does not restart the
//! shared server of `scripts/services.sh ferretdb` (127.0.0.1:27017): that
//! one is often started by another checkout or CI run, whose tests it would
//! break, and this checkout's script cannot stop a server it did not start.
//! Instead the test runs its own FerretDB, the binary `scripts/services.sh
//! ferretdb` builds (`target/services/bin/ferretdb-*`, or `FERRETDB_BIN`),
//! on a free port and a data directory of its own, kills it (SIGKILL, a
//! crash) under load and starts it again on the same port and data.

use backend_core::testkit::OrPanic;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend_core::config::{ConfigSpec, PoolConfig};
use backend_core::testkit::restart_under_load;
use backend_core::{Backend, Config};
use backend_mongo::MongoBackend;

fn ferretdb_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FERRETDB_BIN") {
        return PathBuf::from(p);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/services/bin");
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ferretdb-") && !n.ends_with(".tmp"))
            })
            .max()
    });
    found.unwrap_or_else(|| {
        panic!(
            "no FerretDB binary in {} (build it with `scripts/services.sh ferretdb`, or set \
             FERRETDB_BIN)",
            dir.display()
        )
    })
}

struct Server {
    bin: PathBuf,
    port: u16,
    data: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Server {
    fn start(&self) {
        let child = Command::new(&self.bin)
            .args(["-listen-addr", &format!("127.0.0.1:{}", self.port)])
            .args(["-handler", "sqlite"])
            .args(["-sqlite-url", &format!("file:{}/", self.data.display())])
            .args(["-log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "FerretDB on port {} did not listen within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn operations_succeed_again_after_a_server_restart() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .or_panic("a free port");
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mongo-restart-{port}"));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    let server = Arc::new(Server {
        bin: ferretdb_bin(),
        port,
        data,
        child: Mutex::new(None),
    });
    server.start();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .or_panic("a tokio runtime");
    rt.block_on(async {
        let mut spec = ConfigSpec::new(backend_mongo::KIND);
        spec.globals
            .insert("topology.server_selection_timeout_ms".into(), 5000.into());
        spec.globals
            .insert("topology.connect_timeout_ms".into(), 2000.into());
        let mut pool = PoolConfig::new(backend_mongo::KIND, "pool1");
        pool.set("server", &format!("127.0.0.1:{port}"))
            .and_then(|p| p.set("database", "mqtt"))
            .and_then(|p| p.set("c_pool_size", "8"))
            .or_panic("pool settings");
        let config = Config::from_spec(spec)
            .or_panic("Config::from_spec")
            .with_pool(pool);
        let b = MongoBackend::connect(&config.pools()["pool1"], &config)
            .await
            .or_panic(&format!("connecting to the test's FerretDB on {port}"));
        let s = Arc::clone(&server);
        let restart = async move {
            tokio::task::spawn_blocking(move || {
                s.kill();
                std::thread::sleep(Duration::from_millis(500));
                s.start();
            })
            .await
            .or_panic("the restart task");
        };
        let report = restart_under_load(Arc::new(b) as Arc<dyn Backend>, 4, restart).await;
        eprintln!(
            "restart took {:?}; load: {} operations succeeded ({} before), {} failed; first: {:?}",
            report.restart_took,
            report.ok,
            report.ok_before,
            report.errors.len(),
            report.errors.first().map(|(_, e)| e)
        );
    });
    server.kill();
    let _ = std::fs::remove_dir_all(&server.data);
}
