//! `ssl = true` against a real TLS server: the TLS-only MariaDB that
//! `scripts/services.sh mariadb-tls` starts (`MYSQL_TLS_URL`, default
//! 127.0.0.1:3307, `require_secure_transport = ON`), with the test CA and
//! certificates it makes (`TLS_CA_FILE`, `TLS_CLIENT_CERT`,
//! `TLS_CLIENT_KEY`, default under target/services/tls/). The one trust
//! policy: the CA file when given, else the system's roots (which do not
//! know the test CA), a client certificate when given. Fails, never skips,
//! when the server is down.

use backend_core::testkit::OrPanic;
use std::path::PathBuf;
use std::time::Duration;

use backend_core::config::PoolConfig;
use backend_core::{Backend, Config, ErrorKind, Value};
use backend_mysql::MysqlBackend;

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn tls_file(var: &str, name: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/services/tls")
            .join(name)
            .display()
            .to_string()
    })
}

/// A pool for the TLS server as `user`, with `keys` added.
fn pool(user: &str, keys: &[(&str, String)]) -> PoolConfig {
    let url = env_or("MYSQL_TLS_URL", "mysql://root:public@127.0.0.1:3307/mqtt");
    let rest = url.trim_start_matches("mysql://");
    let (cred, hostdb) = rest.split_once('@').expect("user:password@host:port/db");
    let password = cred.split_once(':').map_or("", |(_, p)| p);
    let (host, db) = hostdb.split_once('/').expect("host:port/db");
    let mut p = PoolConfig::new(backend_mysql::KIND, "tls");
    for (k, v) in [
        ("server", host.to_owned()),
        ("user", user.to_owned()),
        ("password", password.to_owned()),
        ("database", db.to_owned()),
        ("create_tables", "true".to_owned()),
    ]
    .into_iter()
    .chain(keys.iter().map(|(k, v)| (*k, v.clone())))
    {
        p.set(k, &v).or_panic(k);
    }
    p
}

async fn connect(p: &PoolConfig) -> Result<MysqlBackend, backend_mysql::MysqlError> {
    match tokio::time::timeout(
        Duration::from_secs(30),
        MysqlBackend::connect(p, &Config::new(backend_mysql::KIND)),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => panic!("connecting to the TLS MariaDB took over 30 s"),
    }
}

fn ca() -> (&'static str, String) {
    ("cacertfile", tls_file("TLS_CA_FILE", "ca.pem"))
}

#[tokio::test]
async fn verified_tls_with_the_ca_file_stores_and_reads() {
    let b = connect(&pool("root", &[("ssl", "true".into()), ca()]))
        .await
        .unwrap_or_else(|e| {
            panic!("TLS MariaDB at MYSQL_TLS_URL (scripts/services.sh mariadb-tls): {e}")
        });
    let rows = b
        .execute_sql("SHOW SESSION STATUS LIKE 'Ssl_version'", &[])
        .await
        .expect("status");
    let version = match rows.first().and_then(|r| r.get(1)) {
        Some(Value::Text(v)) => v.clone(),
        other => panic!("no Ssl_version: {other:?}"),
    };
    assert!(
        version.starts_with("TLSv1."),
        "the session is encrypted: {version:?}"
    );
    backend_core::testkit::store_and_fetch_back(&b).await;
    b.ping().await.expect("ping");
}

#[tokio::test]
async fn without_the_ca_file_the_system_roots_refuse_the_test_ca() {
    let e = connect(&pool("root", &[("ssl", "true".into())]))
        .await
        .expect_err("the system does not trust the test CA");
    let text = e.to_string().to_lowercase();
    assert!(
        text.contains("certificate") || text.contains("issuer") || text.contains("tls"),
        "a certificate error: {e}"
    );
}

#[tokio::test]
async fn a_plain_connection_is_refused_by_the_server() {
    let e = connect(&pool("root", &[]))
        .await
        .expect_err("the server requires TLS");
    assert!(!e.to_string().contains("public"), "no password in: {e}");
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_given() {
    let x509 = [
        ("ssl", "true".to_owned()),
        ca(),
        ("certfile", tls_file("TLS_CLIENT_CERT", "client.pem")),
        ("keyfile", tls_file("TLS_CLIENT_KEY", "client.key")),
    ];
    let b = connect(&pool("tlsclient", &x509))
        .await
        .or_panic("the REQUIRE X509 user with its certificate");
    b.ping().await.expect("ping");
    let e = connect(&pool("tlsclient", &[("ssl", "true".into()), ca()]))
        .await
        .expect_err("REQUIRE X509 without a client certificate");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

#[tokio::test]
async fn a_missing_ca_file_is_named_at_start() {
    let e = connect(&pool(
        "root",
        &[
            ("ssl", "true".into()),
            ("cacertfile", "/nonexistent/ca.pem".into()),
        ],
    ))
    .await
    .expect_err("no such file");
    assert!(
        e.to_string().contains("cacertfile `/nonexistent/ca.pem`"),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Config);
}
