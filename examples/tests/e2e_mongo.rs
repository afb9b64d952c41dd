//! The broker on MongoDB (`--features mongo`), driven by real MQTT clients
//! (the test set-up's server is FerretDB).
#![cfg(feature = "mongo")]

mod common;

use common::db::Db;
use common::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_survive_a_broker_restart() {
    scenarios::offline_messages_survive_a_broker_restart(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_gets_each_message_once() {
    scenarios::persistent_session_gets_each_message_once(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_subscriptions_are_applied_on_connect() {
    scenarios::stored_subscriptions_are_applied_on_connect(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_survives_a_restart() {
    scenarios::retained_message_survives_a_restart(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_status_is_recorded() {
    scenarios::client_status_is_recorded(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_reconnects_are_accepted() {
    scenarios::quick_reconnects_are_accepted(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_is_kept_for_stored_messages() {
    scenarios::no_local_is_kept_for_stored_messages(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_survive_a_sigterm() {
    scenarios::acks_survive_a_sigterm(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_v5_session_gets_each_message_once() {
    scenarios::persistent_v5_session_gets_each_message_once(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_come_once() {
    scenarios::retained_messages_come_once(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_after_the_suback_comes_once() {
    scenarios::a_message_after_the_suback_comes_once(&Db::mongo().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_holds_for_stored_retained_messages() {
    scenarios::retain_handling_holds_for_stored_retained_messages(&Db::mongo().await).await;
}
