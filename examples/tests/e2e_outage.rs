//! A database taken away under broker load, and a broker crash while it
//! is away (`buffer = disk`), for each database in the broker. A test
//! binary of its own: it stops the shared servers, which the other
//! end-to-end tests (run in parallel within their binaries) use. Tests on
//! one server take turns.
#![cfg(any(
    feature = "redis",
    feature = "pgsql",
    feature = "mysql",
    feature = "mongo",
    feature = "cassa"
))]

mod common;

use common::db::Db;
use common::scenarios;
use tokio::sync::Mutex;

#[cfg(feature = "redis")]
static REDIS: Mutex<()> = Mutex::const_new(());
#[cfg(feature = "pgsql")]
static PGSQL: Mutex<()> = Mutex::const_new(());
#[cfg(feature = "mysql")]
static MYSQL: Mutex<()> = Mutex::const_new(());
#[cfg(feature = "mongo")]
static MONGO: Mutex<()> = Mutex::const_new(());
#[cfg(feature = "cassa")]
static CASSA: Mutex<()> = Mutex::const_new(());

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_under_load_loses_nothing() {
    let _turn = REDIS.lock().await;
    scenarios::database_outage_under_load_loses_nothing(&Db::redis().await).await;
}

#[cfg(feature = "pgsql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsql_outage_under_load_loses_nothing() {
    let _turn = PGSQL.lock().await;
    scenarios::database_outage_under_load_loses_nothing(&Db::pgsql().await).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_outage_under_load_loses_nothing() {
    let _turn = MYSQL.lock().await;
    scenarios::database_outage_under_load_loses_nothing(&Db::mysql().await).await;
}

#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_outage_under_load_loses_nothing() {
    let _turn = MONGO.lock().await;
    scenarios::database_outage_under_load_loses_nothing(&Db::mongo().await).await;
}

#[cfg(feature = "cassa")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassa_outage_under_load_loses_nothing() {
    let _turn = CASSA.lock().await;
    scenarios::database_outage_under_load_loses_nothing(&Db::cassa().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_disk_buffer_survives_a_crash() {
    let _turn = REDIS.lock().await;
    scenarios::disk_buffer_survives_a_crash(&Db::redis().await).await;
}

#[cfg(feature = "pgsql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsql_disk_buffer_survives_a_crash() {
    let _turn = PGSQL.lock().await;
    scenarios::disk_buffer_survives_a_crash(&Db::pgsql().await).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_disk_buffer_survives_a_crash() {
    let _turn = MYSQL.lock().await;
    scenarios::disk_buffer_survives_a_crash(&Db::mysql().await).await;
}

#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_disk_buffer_survives_a_crash() {
    let _turn = MONGO.lock().await;
    scenarios::disk_buffer_survives_a_crash(&Db::mongo().await).await;
}

#[cfg(feature = "cassa")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassa_disk_buffer_survives_a_crash() {
    let _turn = CASSA.lock().await;
    scenarios::disk_buffer_survives_a_crash(&Db::cassa().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_clients_connect_while_it_is_down() {
    let _turn = REDIS.lock().await;
    scenarios::clients_connect_while_the_database_is_down(&Db::redis().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stored_subscriptions_come_after_a_hung_lookup() {
    let _turn = REDIS.lock().await;
    scenarios::stored_subscriptions_come_after_a_hung_lookup(&Db::redis().await).await;
}

#[cfg(feature = "pgsql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsql_clients_connect_while_it_is_down() {
    let _turn = PGSQL.lock().await;
    scenarios::clients_connect_while_the_database_is_down(&Db::pgsql().await).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_clients_connect_while_it_is_down() {
    let _turn = MYSQL.lock().await;
    scenarios::clients_connect_while_the_database_is_down(&Db::mysql().await).await;
}

#[cfg(feature = "mongo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_clients_connect_while_it_is_down() {
    let _turn = MONGO.lock().await;
    scenarios::clients_connect_while_the_database_is_down(&Db::mongo().await).await;
}

#[cfg(feature = "cassa")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassa_clients_connect_while_it_is_down() {
    let _turn = CASSA.lock().await;
    scenarios::clients_connect_while_the_database_is_down(&Db::cassa().await).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_metrics_show_an_outage() {
    let _turn = REDIS.lock().await;
    scenarios::metrics_show_an_outage(&Db::redis().await).await;
}

#[cfg(feature = "pgsql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgsql_metrics_show_an_outage() {
    let _turn = PGSQL.lock().await;
    scenarios::metrics_show_an_outage(&Db::pgsql().await).await;
}
