//! The core conformance suite on a SQLite file under the target folder.
//! As with a database server, every scenario of the run uses the same
//! database (each with its own client ids and topics), and a "reconnect"
//! opens the file again.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use backend_core::testkit::RawFixture;
use backend_core::Backend;
use backend_sqlite::{SqliteBackend, SqliteConfig};

/// The run's database file, emptied once when the run starts.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sqlite-conformance.db");
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
        path
    })
}

async fn factory() -> Arc<dyn Backend> {
    let mut config = SqliteConfig::new("pool1");
    config.path = path().clone();
    match SqliteBackend::open(config).await {
        Ok(b) => Arc::new(b),
        Err(e) => panic!("open {}: {e}", path().display()),
    }
}

backend_core::conformance_tests!(
    factory,
    RawFixture::sql(backend_sqlite::KIND),
    schema = backend_sqlite::schema::SCHEMA
);
