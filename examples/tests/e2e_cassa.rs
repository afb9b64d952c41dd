//! The broker on Cassandra (`--features cassa`), driven by real MQTT
//! clients (the database read back through the backend itself): every
//! broker scenario.
#![cfg(feature = "cassa")]

#[macro_use]
mod common;

use common::db::Db;

broker_scenarios!(Db::cassa());

/// A backlog of 10000 messages, larger than a session holds, arrives
/// whole, once, in order, across a broker restart in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_arrives_whole() {
    common::scenarios::backlog_arrives_whole(&Db::cassa().await, 1250, true).await;
}
