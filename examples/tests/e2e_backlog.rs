//! A backlog ten times what a broker session holds, through the broker on
//! each database: every message once, across a broker restart in the
//! middle of the drain (`scenarios::backlog_arrives_whole`).
//! A test binary of its own, the drains one at a time: each loads its
//! database and the two cores for seconds, which would starve the short
//! waits of the other end-to-end tests run beside it.

mod common;

use common::db::Db;
use common::scenarios::{backlog_arrives_whole, backlog_survives_a_takeover};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// 1,250 messages on each of 8 topics: 10,000.
const PER_TOPIC: usize = 1250;

/// With the Redis rules: `--features redis`.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backlog_arrives_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // The in-memory store does not survive a restart: no restart.
    backlog_arrives_whole(&Db::memory(), PER_TOPIC, false).await;
}

/// The subscriber connects again while its first connection is open.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backlog_survives_a_takeover() {
    let _turn = ONE_AT_A_TIME.lock().await;
    backlog_survives_a_takeover(&Db::memory(), PER_TOPIC).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backlog_arrives_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    backlog_arrives_whole(&Db::sqlite().await, PER_TOPIC, true).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backlog_arrives_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    backlog_arrives_whole(&Db::redis().await, PER_TOPIC, true).await;
}

#[cfg(feature = "pgsql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsql_backlog_arrives_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    backlog_arrives_whole(&Db::pgsql().await, PER_TOPIC, true).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_backlog_arrives_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    backlog_arrives_whole(&Db::mysql().await, PER_TOPIC, true).await;
}

#[cfg(feature = "cassa")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassa_backlog_arrives_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    backlog_arrives_whole(&Db::cassa().await, PER_TOPIC, true).await;
}

/// 1,200 on MongoDB (still more than the session keeps): the test
/// set-up's FerretDB scans whole collections on every read and ack.
#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_backlog_arrives_whole() {
    let _turn = ONE_AT_A_TIME.lock().await;
    backlog_arrives_whole(&Db::mongo().await, 150, true).await;
}
