//! A database taken away for 10 s under broker load, for each database in
//! the broker. A test binary of its own: it stops the shared servers, which
//! the other end-to-end tests (run in parallel within their binaries) use.
#![cfg(any(feature = "redis", feature = "pgsql", feature = "mysql"))]

mod common;

use common::db::Db;
use common::scenarios;

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_under_load_loses_nothing() {
    scenarios::database_outage_under_load_loses_nothing(&Db::redis().await).await;
}

#[cfg(feature = "pgsql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsql_outage_under_load_loses_nothing() {
    scenarios::database_outage_under_load_loses_nothing(&Db::pgsql().await).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_outage_under_load_loses_nothing() {
    scenarios::database_outage_under_load_loses_nothing(&Db::mysql().await).await;
}
