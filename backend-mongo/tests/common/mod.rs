//! Shared by the test binaries: where the server is (`MONGO_URL`), and
//! connecting to it. A server that cannot be reached fails the test, with a
//! message naming the server and the variable; it is never skipped.
#![allow(dead_code)]

use backend_core::testkit::OrPanic;
use std::sync::Arc;

use backend_core::config::PoolConfig;
use backend_core::{Backend, Config};
use backend_mongo::mongodb::bson::Document;
use backend_mongo::mongodb::Collection;
use backend_mongo::MongoBackend;

/// The default of `MONGO_URL`: what `scripts/services.sh ferretdb` starts.
pub const DEFAULT_URL: &str = "mongodb://127.0.0.1:27017";

/// The database the tests use.
pub const DATABASE: &str = "mqtt_backend_test";

/// `host:port` of `MONGO_URL` (or the default).
pub fn server() -> String {
    let url = std::env::var("MONGO_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let rest = url.strip_prefix("mongodb://").unwrap_or_else(|| {
        panic!("MONGO_URL is not of the form mongodb://host:port[,host:port][/database]")
    });
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap_or(rest).to_owned()
}

/// A pool of the test server on `database`.
pub fn pool_for(name: &str, database: &str) -> PoolConfig {
    let mut p = PoolConfig::new(backend_mongo::KIND, name);
    let set = |p: &mut PoolConfig, k: &str, v: &str| {
        p.set(k, v).or_panic(&format!("test pool setting {k}"));
    };
    let server = server();
    set(&mut p, "server", &server);
    set(
        &mut p,
        "type",
        if server.contains(',') {
            "unknown"
        } else {
            "single"
        },
    );
    set(&mut p, "database", database);
    set(&mut p, "c_pool_size", "8");
    p
}

/// A configuration with one pool of the test server; short server
/// selection so an outage shows as an error within seconds.
pub fn config() -> Config {
    let mut spec = backend_core::config::ConfigSpec::new(backend_mongo::KIND);
    spec.globals
        .insert("topology.server_selection_timeout_ms".into(), 5000.into());
    spec.globals
        .insert("topology.connect_timeout_ms".into(), 3000.into());
    let base = Config::from_spec(spec).or_panic("test config");
    base.with_pool(pool_for("pool1", DATABASE))
}

/// Fails the test: the server is not there.
pub fn unreachable_server(e: &dyn std::fmt::Display) -> ! {
    panic!(
        "MongoDB (FerretDB) at {} is unreachable (set MONGO_URL, default {DEFAULT_URL}; start \
         it with `scripts/services.sh ferretdb`): {e}",
        server()
    )
}

/// A new backend (a new client) on the test server.
pub async fn connect() -> MongoBackend {
    connect_to(DATABASE).await
}

/// A new backend on another database of the test server.
pub async fn connect_to(database: &str) -> MongoBackend {
    let conf = config().with_pool(pool_for("pool1", database));
    match MongoBackend::connect(&conf.pools()["pool1"], &conf).await {
        Ok(b) => b,
        Err(e) if e.is_retryable() => unreachable_server(&e),
        Err(e) => panic!("connecting to MongoDB at {}: {e}", server()),
    }
}

/// [`connect`], as the conformance suite's factory wants it.
pub async fn factory() -> Arc<dyn Backend> {
    Arc::new(connect().await)
}

/// [`factory`], after emptying the test database once per process: FerretDB
/// answers range queries by reading every document (no filter pushdown, no
/// index use), so what earlier runs left (the suite's 1 MiB payloads) would
/// slow every run down more than the one before it.
pub async fn fresh_factory() -> Arc<dyn Backend> {
    static CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    CLEANED
        .get_or_init(|| async {
            let b = connect().await;
            b.database()
                .drop()
                .await
                .or_panic(&format!("emptying the test database {DATABASE}"));
        })
        .await;
    factory().await
}

/// A collection of the test database, for checking documents.
pub fn coll(b: &MongoBackend, name: &str) -> Collection<Document> {
    b.database().collection(name)
}
