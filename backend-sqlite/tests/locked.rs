//! Another process holding the file's lock: opening the database and
//! writing wait for it (within `busy_timeout`) instead of failing with
//! "database is locked", as brokers sharing one file, or a tool writing to
//! it, need.

use std::time::Duration;

use backend_core::{Backend, Message, QoS};
use backend_sqlite::deadpool_sqlite::rusqlite;
use backend_sqlite::{SqliteBackend, SqliteConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_and_writing_wait_for_another_holder_of_the_lock() {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("locked-{}.db", std::process::id()));
    let mut config = SqliteConfig::new("pool1");
    config.path = path.clone();
    let first = SqliteBackend::open(config.clone()).await.expect("open");

    // Another connection, as another process would, takes the write lock
    // and keeps it for 400 ms.
    let holder = std::thread::spawn({
        let path = path.clone();
        move || {
            let c = rusqlite::Connection::open(&path).expect("open the file");
            c.execute_batch("BEGIN EXCLUSIVE").expect("lock");
            std::thread::sleep(Duration::from_millis(400));
            c.execute_batch("COMMIT").expect("unlock");
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = std::time::Instant::now();
    let second = SqliteBackend::open(config)
        .await
        .expect("opens once the lock is free");
    let m = Message::new("p", "locked/t", QoS::AtLeastOnce, "x");
    second
        .store_messages(std::slice::from_ref(&m), Default::default())
        .await
        .expect("stores once the lock is free");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the writes waited for the lock: {:?}",
        started.elapsed()
    );
    holder.join().expect("the holder");
    first.ping().await.expect("the first pool still answers");
    drop((first, second));
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
