//! The broker on MongoDB (`--features mongo`), driven by real MQTT clients
//! (the test set-up's server is FerretDB): every broker scenario.
#![cfg(feature = "mongo")]

#[macro_use]
mod common;

use common::db::Db;

broker_scenarios!(Db::mongo());

/// A backlog of 2000 messages, larger than a session holds, arrives
/// whole, once, in order, across a broker restart in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_arrives_whole() {
    common::scenarios::backlog_arrives_whole(&Db::mongo().await, 250, true).await;
}
