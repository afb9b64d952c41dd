//! TLS for real: the test makes a CA, a server and a client certificate
//! with `openssl`, starts a TLS-only Redis on port 6392 under `target/`
//! (requiring client certificates), and connects through `ssl`,
//! `cacertfile`, `certfile` and `keyfile`. Also the configuration errors.

mod common;

use backend_core::testkit::OrPanic;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use backend_core::config::PoolConfig;
use backend_core::{Backend, Bytes, Config, ErrorKind, Statement, Value};
use backend_redis::{RedisBackend, RedisError};

const PORT: u16 = 6392;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .or_panic("cannot run openssl (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client one.
fn make_pki(dir: &Path) -> Pki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=backend-redis test CA",
    ]);
    openssl(dir, &ca);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("server.ext");
    std::fs::write(
        dir.join("client.ext"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("client.ext");
    for who in ["server", "client"] {
        let key = format!("{who}.key");
        let csr = format!("{who}.csr");
        let crt = format!("{who}.crt");
        let ext = format!("{who}.ext");
        let subj = format!("/CN=backend-redis test {who}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
    Pki {
        dir: dir.to_owned(),
    }
}

fn pool(extra: &[(&str, &str)]) -> PoolConfig {
    let mut p = PoolConfig::new(backend_redis::KIND, "tls");
    p.set("pool_size", "2").expect("pool_size");
    for (k, v) in extra {
        p.set(k, v).or_panic(k);
    }
    p
}

async fn connect(extra: &[(&str, &str)]) -> Result<RedisBackend, RedisError> {
    RedisBackend::connect(&pool(extra), &Config::new(backend_redis::KIND)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_against_a_tls_redis() {
    let dir = common::scratch_dir("tls");
    let pki = make_pki(&dir);
    let server = common::Server::start(
        "redis-server",
        "redis-tls",
        PORT,
        &dir,
        &[
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            PORT.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--tls-cert-file".into(),
            pki.path("server.crt"),
            "--tls-key-file".into(),
            pki.path("server.key"),
            "--tls-ca-cert-file".into(),
            pki.path("ca.crt"),
            "--tls-auth-clients".into(),
            "yes".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
        ],
    );
    let server_addr = format!("127.0.0.1:{PORT}");
    let (ca, crt, key) = (
        pki.path("ca.crt"),
        pki.path("client.crt"),
        pki.path("client.key"),
    );
    let full: Vec<(&str, &str)> = vec![
        ("server", &server_addr),
        ("ssl", "true"),
        ("cacertfile", &ca),
        ("certfile", &crt),
        ("keyfile", &key),
    ];
    let b = common::eventually(Duration::from_secs(10), || connect(&full))
        .await
        .unwrap_or_else(|e| panic!("TLS connect: {e}\n{}", server.log_tail()));
    assert!(b.settings().target().starts_with("rediss://"));

    // The backend works over TLS.
    backend_core::testkit::store_and_fetch_back(&b).await;
    let rows = b
        .execute(&Statement::Command {
            args: vec![Bytes::from_static(b"PING")],
        })
        .await
        .expect("raw over TLS");
    assert_eq!(rows, vec![vec![Value::Text("PONG".into())]]);

    // The channel listener over TLS.
    let mut l = b.listen_to("tls-channel").expect("listen");
    assert!(l.wait_subscribed(Duration::from_secs(10)).await);
    b.execute(&Statement::Command {
        args: [
            "PUBLISH",
            "tls-channel",
            r#"{"type":"unsubscribe","topic":"t","clientid":"c"}"#,
        ]
        .into_iter()
        .map(|s| Bytes::from(s.to_owned()))
        .collect(),
    })
    .await
    .expect("publish");
    let cmd = tokio::time::timeout(Duration::from_secs(10), l.recv())
        .await
        .expect("in time")
        .expect("running");
    assert_eq!(cmd.client_id(), "c");

    // A rediss:// server turns TLS on by itself.
    let scheme = format!("rediss://{server_addr}");
    let b2 = connect(&[
        ("server", &scheme),
        ("cacertfile", &ca),
        ("certfile", &crt),
        ("keyfile", &key),
    ])
    .await
    .expect("rediss:// scheme");
    b2.execute(&Statement::Command {
        args: vec![Bytes::from_static(b"PING")],
    })
    .await
    .expect("ping");

    // Without a client certificate the server refuses the handshake.
    let e = connect(&[
        ("server", &server_addr),
        ("ssl", "true"),
        ("cacertfile", &ca),
    ])
    .await
    .expect_err("no client certificate");
    assert!(matches!(e, RedisError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("CertificateRequired"), "{e}");
    // Without the CA the server's certificate is not trusted.
    let e = connect(&[
        ("server", &server_addr),
        ("ssl", "true"),
        ("certfile", &crt),
        ("keyfile", &key),
    ])
    .await
    .expect_err("unknown issuer");
    assert!(matches!(e, RedisError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // Plain TCP to a TLS port fails too.
    let e = connect(&[("server", &server_addr)])
        .await
        .expect_err("plain TCP to TLS");
    assert!(e.is_retryable() || e.kind() == ErrorKind::Config, "{e}");
    drop(server);
}

#[tokio::test]
async fn tls_file_errors_are_configuration_errors() {
    let dir = common::scratch_dir("tls-config");
    let missing = dir.join("missing.pem").display().to_string();
    let e = connect(&[("ssl", "true"), ("cacertfile", &missing)])
        .await
        .expect_err("missing file");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string().contains("cacertfile") && e.to_string().contains("missing.pem"),
        "{e}"
    );
    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let junk = junk.display().to_string();
    let e = connect(&[("ssl", "true"), ("certfile", &junk), ("keyfile", &junk)])
        .await
        .expect_err("not PEM");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("no PEM certificate in it"), "{e}");
    let e = connect(&[("cacertfile", &junk)])
        .await
        .expect_err("ssl off");
    assert_eq!(e.kind(), ErrorKind::Config);
}
