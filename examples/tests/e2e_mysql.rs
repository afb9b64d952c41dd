//! The broker on MySQL/MariaDB (`--features mysql`), driven by real MQTT clients.
#![cfg(feature = "mysql")]

#[macro_use]
mod common;

use common::db::Db;

broker_scenarios!(Db::mysql());

/// A backlog of 10000 messages, larger than a session holds, arrives
/// whole, once, in order, across a broker restart in the middle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_arrives_whole() {
    common::scenarios::backlog_arrives_whole(&Db::mysql().await, 1250, true).await;
}
