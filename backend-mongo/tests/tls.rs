//! `ssl = true` against a real TLS server: the TLS-only FerretDB that
//! `scripts/services.sh ferretdb-tls` starts (`MONGO_TLS_URL`, default
//! 127.0.0.1:27018), with the test CA and certificates it makes
//! (`TLS_CA_FILE`, `TLS_CLIENT_CERT`, `TLS_CLIENT_KEY`, default under
//! target/services/tls/). The one trust policy: the CA file when given,
//! else the system's roots (never the driver's bundled list), a client
//! certificate when given, in two files or one. Fails, never skips, when
//! the server is down.

use backend_core::testkit::OrPanic;
use std::path::PathBuf;
use std::time::Duration;

use backend_core::{Backend, Config, ErrorKind};
use backend_mongo::MongoBackend;

fn tls_file(var: &str, name: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/services/tls")
            .join(name)
            .display()
            .to_string()
    })
}

fn server() -> String {
    std::env::var("MONGO_TLS_URL")
        .unwrap_or_else(|_| "mongodb://127.0.0.1:27018".into())
        .trim_start_matches("mongodb://")
        .trim_end_matches('/')
        .to_owned()
}

/// A config for the TLS server with `lines` added; server selection gives
/// up after 5 s, so a refused handshake fails fast.
fn config(lines: &[String]) -> Config {
    let mut text = format!(
        "backend.mongo.pool1.server = {}\n\
         backend.mongo.pool1.database = mqtt_backend_tls_test\n\
         backend.mongo.topology.server_selection_timeout_ms = 5000\n\
         backend.mongo.topology.connect_timeout_ms = 5000\n",
        server()
    );
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    Config::parse(&text).or_panic("Config::parse")
}

async fn connect(c: &Config) -> Result<MongoBackend, backend_mongo::MongoError> {
    match tokio::time::timeout(
        Duration::from_secs(60),
        MongoBackend::connect(&c.pools()["pool1"], c),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => panic!("connecting took over 60 s"),
    }
}

fn ssl_with_ca() -> Vec<String> {
    vec![
        "backend.mongo.pool1.ssl = true".into(),
        format!(
            "backend.mongo.pool1.cacertfile = {}",
            tls_file("TLS_CA_FILE", "ca.pem")
        ),
    ]
}

/// The driver's temporary TLS files of this process still on disk.
fn leftover_files() -> Vec<PathBuf> {
    let prefix = format!("backend-mongo-tls-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn verified_tls_with_the_ca_file_stores_and_reads() {
    let b = connect(&config(&ssl_with_ca())).await.unwrap_or_else(|e| {
        panic!("TLS FerretDB at MONGO_TLS_URL (scripts/services.sh ferretdb-tls): {e}")
    });
    b.ping().await.expect("ping over TLS");
    backend_core::testkit::store_and_fetch_back(&b).await;
}

#[tokio::test]
async fn without_the_ca_file_the_system_roots_refuse_the_test_ca() {
    let e = connect(&config(&["backend.mongo.pool1.ssl = true".into()]))
        .await
        .expect_err("the system does not trust the test CA (and no bundled list is used)");
    let text = e.to_string().to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("tls") || text.contains("issuer"),
        "{e}"
    );
}

#[tokio::test]
async fn a_plain_connection_fails() {
    let e = connect(&config(&[]))
        .await
        .expect_err("the server speaks TLS only");
    assert!(
        e.kind().is_retryable() || e.kind() == ErrorKind::Data,
        "{e}"
    );
}

#[tokio::test]
async fn a_client_certificate_in_two_files_is_joined_and_the_files_removed() {
    let mut lines = ssl_with_ca();
    lines.push(format!(
        "backend.mongo.pool1.certfile = {}",
        tls_file("TLS_CLIENT_CERT", "client.pem")
    ));
    lines.push(format!(
        "backend.mongo.pool1.keyfile = {}",
        tls_file("TLS_CLIENT_KEY", "client.key")
    ));
    let b = connect(&config(&lines)).await.or_panic("connect");
    b.ping().await.expect("ping");
    // Other tests of this binary connect at the same time: wait for theirs.
    let started = std::time::Instant::now();
    while !leftover_files().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "temporary TLS files left: {:?}",
            leftover_files()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_missing_ca_file_is_named_at_start() {
    let e = connect(&config(&[
        "backend.mongo.pool1.ssl = true".into(),
        "backend.mongo.pool1.cacertfile = /nonexistent/ca.pem".into(),
    ]))
    .await
    .expect_err("no such file");
    assert!(
        e.to_string().contains("cacertfile `/nonexistent/ca.pem`"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn a_client_certificate_and_key_in_one_file_given_as_certfile_alone() {
    let dir = std::env::temp_dir().join(format!("mongo-tls-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bundle = dir.join("client-bundle.pem");
    let mut pem = std::fs::read(tls_file("TLS_CLIENT_CERT", "client.pem")).expect("client.pem");
    pem.extend(std::fs::read(tls_file("TLS_CLIENT_KEY", "client.key")).expect("client.key"));
    std::fs::write(&bundle, pem).expect("write");
    let mut lines = ssl_with_ca();
    lines.push(format!(
        "backend.mongo.pool1.certfile = {}",
        bundle.display()
    ));
    let b = connect(&config(&lines)).await.or_panic("connect");
    b.ping().await.expect("ping");
    let _ = std::fs::remove_dir_all(&dir);
}
