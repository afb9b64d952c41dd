//! `ssl = true` against a real TLS Cassandra: the TLS-only client port
//! (`CASSA_TLS_NODES`, default 127.0.0.1:9142) of the Cassandra that
//! `scripts/services.sh cassandra` starts, with the test CA it makes
//! (`TLS_CA_FILE`, default target/services/tls/ca.pem). The one trust
//! policy: the CA file when given, else the system's roots (never a bundled
//! list), and the server's name always checked. Fails, never skips, when
//! the server is down.

#![cfg(feature = "tls")]

mod common;

use backend_core::testkit::OrPanic;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backend_cassa::{CassaBackend, CassaError};
use backend_core::config::PoolConfig;
use backend_core::{Backend, ErrorKind};

fn tls_nodes() -> String {
    std::env::var("CASSA_TLS_NODES").unwrap_or_else(|_| "127.0.0.1:9142".to_owned())
}

fn ca_file() -> String {
    std::env::var("TLS_CA_FILE").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/services/tls/ca.pem")
            .display()
            .to_string()
    })
}

/// The test pool pointed at the TLS port, with `lines` added.
fn pool(lines: &[(&str, String)]) -> PoolConfig {
    let mut p = common::pool("pool1");
    p.set("nodes", &tls_nodes()).expect("nodes");
    p.set("connect_timeout", "5s").expect("connect_timeout");
    for (k, v) in lines {
        p.set(k, v).or_panic(k);
    }
    p
}

async fn connect(p: &PoolConfig) -> Result<CassaBackend, CassaError> {
    let conf = backend_core::Config::new(backend_cassa::KIND).with_pool(p.clone());
    match tokio::time::timeout(Duration::from_secs(60), CassaBackend::connect(p, &conf)).await {
        Ok(r) => r,
        Err(_) => panic!("connecting took over 60 s"),
    }
}

fn ssl_with_ca() -> Vec<(&'static str, String)> {
    vec![("ssl", "true".to_owned()), ("cacertfile", ca_file())]
}

#[tokio::test]
async fn verified_tls_with_the_ca_file_stores_and_reads() {
    let b = connect(&pool(&ssl_with_ca())).await.unwrap_or_else(|e| {
        panic!(
            "TLS Cassandra at {} (scripts/services.sh cassandra): {e}",
            tls_nodes()
        )
    });
    b.ping().await.expect("ping over TLS");
    backend_core::testkit::store_and_fetch_back(&b).await;
}

#[tokio::test]
async fn the_tls_port_refuses_a_plain_connection() {
    // So the test above really spoke TLS: this port takes nothing else.
    let started = Instant::now();
    let e = connect(&pool(&[]))
        .await
        .expect_err("a plain connection to the TLS-only port");
    assert_eq!(e.kind(), ErrorKind::Connection, "{e}");
    assert!(e.to_string().contains("ssl = true"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20), "{e}");
}

#[tokio::test]
async fn tls_against_the_plain_port_fails_within_the_timeout() {
    let mut p = pool(&ssl_with_ca());
    p.set("nodes", &common::nodes()).expect("nodes");
    let started = Instant::now();
    let e = connect(&p).await.expect_err("the plain port speaks no TLS");
    assert!(started.elapsed() < Duration::from_secs(20), "{e}");
    assert!(e.to_string().contains(&common::nodes()), "{e}");
    assert!(e.to_string().contains("no TLS on this port"), "{e}");
}

#[tokio::test]
async fn without_the_ca_file_the_system_roots_refuse_the_test_ca() {
    let e = connect(&pool(&[("ssl", "true".to_owned())]))
        .await
        .expect_err("the system does not trust the test CA");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let text = e.to_string();
    assert!(text.contains("certificate"), "{text}");
}

#[tokio::test]
async fn a_name_the_certificate_does_not_carry_is_refused() {
    let mut lines = ssl_with_ca();
    lines.push(("server_name_indication", "db.example".to_owned()));
    let e = connect(&pool(&lines))
        .await
        .expect_err("the certificate is for 127.0.0.1 and localhost only");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("db.example"), "{e}");
}

#[tokio::test]
async fn the_certificates_dns_name_is_accepted() {
    let mut lines = ssl_with_ca();
    lines.push(("server_name_indication", "localhost".to_owned()));
    let b = connect(&pool(&lines))
        .await
        .or_panic("verified as localhost");
    b.ping().await.expect("ping over TLS");
}

#[tokio::test]
async fn a_missing_ca_file_is_a_config_error_naming_it() {
    let e = connect(&pool(&[
        ("ssl", "true".to_owned()),
        ("cacertfile", "/nonexistent/ca.pem".to_owned()),
    ]))
    .await
    .expect_err("no such file");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
}
