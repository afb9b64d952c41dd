//! `ssl = true` against a real TLS server: a private PostgreSQL 15 started
//! by this test on a free port (the shared server of `scripts/services.sh`
//! has no TLS and is left alone), with certificates made by the `openssl`
//! command: a CA, a server certificate for 127.0.0.1, a client certificate.
//!
//! Needs the PostgreSQL binaries (`PGSQL_BIN_DIR`, default
//! /usr/lib/postgresql/15/bin, which `scripts/services.sh postgres`
//! installs) and `openssl`; when run as root the server runs as `postgres`.
//! It fails, never skips, when they are missing.

use backend_core::testkit::OrPanic;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use backend_core::config::PoolConfig;
use backend_core::{Config, ErrorKind, Value};
use backend_pgsql::{PgsqlBackend, PgsqlError};

fn bin(name: &str) -> PathBuf {
    std::env::var_os("PGSQL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
        .join(name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a command (as `postgres` when `as_pg` and root); panics with its
/// output if it fails.
fn run(as_pg: bool, program: &Path, args: &[&str]) -> String {
    let mut cmd = if as_pg && is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).stdin(Stdio::null());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name`, and a certificate signed by it for `subject` with the
/// given extensions.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

fn make_cert(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write the extensions");
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// The private server; stopped and removed when dropped, even on panic.
struct TlsServer {
    dir: PathBuf,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let mut cmd = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(bin("pg_ctl"));
                c
            } else {
                Command::new(bin("pg_ctl"))
            };
            let _ = cmd
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_server() -> TlsServer {
    let dir = std::env::temp_dir().join(format!("backend-pgsql-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the server's directory");
    let server = TlsServer {
        dir: dir.clone(),
        port: free_port(),
    };
    make_ca(&dir, "ca");
    make_ca(&dir, "other-ca");
    make_cert(
        &dir,
        "ca",
        "server",
        "127.0.0.1",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
    make_cert(
        &dir,
        "ca",
        "client",
        "certuser",
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=clientAuth\n",
    );
    if is_root() {
        run(
            false,
            Path::new("chown"),
            &["-R", "postgres:postgres", &dir.to_string_lossy()],
        );
        run(false, Path::new("chmod"), &["755", &dir.to_string_lossy()]);
    }
    run(
        false,
        Path::new("chmod"),
        &["600", &dir.join("server.key").to_string_lossy()],
    );
    let data = dir.join("data");
    run(
        true,
        &bin("initdb"),
        &[
            "-D",
            &data.to_string_lossy(),
            "-U",
            "postgres",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
    );
    let conf = format!(
        "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{dir}'\n\
         ssl = on\nssl_cert_file = '{dir}/server.pem'\nssl_key_file = '{dir}/server.key'\n\
         ssl_ca_file = '{dir}/ca.pem'\nfsync = off\n",
        port = server.port,
        dir = dir.display()
    );
    let hba = "local all all trust\n\
               hostssl all certuser 127.0.0.1/32 cert\n\
               hostssl all all 127.0.0.1/32 scram-sha-256\n\
               hostnossl all all 127.0.0.1/32 reject\n";
    // Written as root into the postgres-owned data directory: make them
    // readable by the server.
    std::fs::write(data.join("postgresql.auto.conf"), conf).expect("server settings");
    std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
    if is_root() {
        run(
            false,
            Path::new("chown"),
            &[
                "postgres:postgres",
                &data.join("postgresql.auto.conf").to_string_lossy(),
                &data.join("pg_hba.conf").to_string_lossy(),
            ],
        );
    }
    run(
        true,
        &bin("pg_ctl"),
        &[
            "-D",
            &data.to_string_lossy(),
            "-l",
            &dir.join("server.log").to_string_lossy(),
            "-w",
            "-t",
            "60",
            "start",
        ],
    );
    let psql = |sql: &str| {
        run(
            true,
            &bin("psql"),
            &[
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &dir.to_string_lossy(),
                "-p",
                &server.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        )
    };
    psql("CREATE ROLE tlsuser LOGIN SUPERUSER PASSWORD 'tls-secret'");
    psql("CREATE ROLE certuser LOGIN SUPERUSER");
    psql("CREATE DATABASE mqtt OWNER tlsuser");
    server
}

impl TlsServer {
    fn pool(&self, user: &str) -> PoolConfig {
        let mut p = PoolConfig::new(backend_pgsql::KIND, "pool1");
        let set = |p: &mut PoolConfig, k: &str, v: &str| {
            p.set(k, v).or_panic(k);
        };
        set(&mut p, "server", &format!("127.0.0.1:{}", self.port));
        set(&mut p, "username", user);
        set(&mut p, "database", "mqtt");
        set(&mut p, "create_tables", "true");
        set(&mut p, "ssl", "true");
        set(
            &mut p,
            "cacertfile",
            &self.dir.join("ca.pem").to_string_lossy(),
        );
        p
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }
}

async fn connect(pool: &PoolConfig) -> Result<PgsqlBackend, PgsqlError> {
    PgsqlBackend::connect(
        pool,
        &Config::new(backend_pgsql::KIND).with_pool(pool.clone()),
    )
    .await
}

async fn uses_tls(b: &PgsqlBackend) -> bool {
    let rows = b
        .execute_sql(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    rows == vec![vec![Value::Bool(true)]]
}

#[test]
fn ssl_true_verifies_the_server_and_can_present_a_client_certificate() {
    let server = start_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        // Password login over TLS, the server verified against cacertfile.
        let mut pool = server.pool("tlsuser");
        pool.set("password", "tls-secret").expect("password");
        let b = connect(&pool).await.expect("TLS with the right CA");
        assert!(uses_tls(&b).await, "the connection is encrypted");
        backend_core::testkit::store_and_fetch_back(&b).await;
        drop(b);

        // A server certificate from another CA is refused.
        let mut wrong = pool.clone();
        wrong
            .set("cacertfile", &server.file("other-ca.pem"))
            .expect("cacertfile");
        let e = connect(&wrong).await.expect_err("an unknown issuer");
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
        assert!(!e.to_string().contains("tls-secret"), "{e}");

        // Certificate login: certfile + keyfile, no password.
        let mut cert = server.pool("certuser");
        cert.set("certfile", &server.file("client.pem"))
            .expect("certfile");
        cert.set("keyfile", &server.file("client.key"))
            .expect("keyfile");
        let b = connect(&cert).await.expect("client certificate login");
        assert!(uses_tls(&b).await);
        assert_eq!(
            b.execute_sql("SELECT current_user::text", &[])
                .await
                .expect("whoami"),
            vec![vec![Value::from("certuser")]]
        );
        drop(b);
        let e = connect(&server.pool("certuser"))
            .await
            .expect_err("no client certificate");
        assert!(e.to_string().contains("certificate"), "{e}");

        // Without ssl the server (hostnossl reject) refuses us.
        let mut clear = PoolConfig::new(backend_pgsql::KIND, "pool1");
        clear
            .set("server", &format!("127.0.0.1:{}", server.port))
            .expect("server");
        clear.set("username", "tlsuser").expect("username");
        clear.set("password", "tls-secret").expect("password");
        let e = connect(&clear).await.expect_err("a clear-text connection");
        assert!(
            e.to_string().contains("no encryption") || e.to_string().contains("pg_hba"),
            "{e}"
        );

        // Bad key material is a configuration error naming the file.
        let mut bad = pool.clone();
        bad.set("cacertfile", &server.file("server.ext"))
            .expect("cacertfile");
        let e = connect(&bad).await.expect_err("not a certificate");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("server.ext"), "{e}");
    });
    drop(server);
}
