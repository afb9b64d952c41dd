//! Shared by the test binaries: where the server is (`MYSQL_URL`), and
//! connecting to it. A server that cannot be reached fails the test, with a
//! message naming the server and the variable; it is never skipped.
#![allow(dead_code)]

use backend_core::testkit::OrPanic;
use std::sync::Arc;
use std::time::Duration;

use backend_core::testkit::sql::SqlServer;
use backend_core::{Backend, Config};
use backend_mysql::mysql_async::{self, OptsBuilder};
use backend_mysql::{MysqlBackend, MysqlConfig};

/// The default of `MYSQL_URL`: what `scripts/services.sh mariadb` starts.
pub const DEFAULT_URL: &str = "mysql://root:public@127.0.0.1:3306/mqtt";

/// The test server.
pub type Server = SqlServer;

/// What these tests do with the server through the driver.
#[allow(async_fn_in_trait)]
pub trait Raw {
    /// A plain driver connection, for checking rows with SQL.
    async fn raw(&self) -> mysql_async::Conn;
    /// A plain driver connection to another database (or none).
    async fn raw_on(&self, database: Option<&str>) -> mysql_async::Conn;
    /// Settings of a pool of this server, for code that builds them.
    fn settings(&self) -> MysqlConfig;
}

impl Raw for Server {
    async fn raw(&self) -> mysql_async::Conn {
        self.raw_on(Some(&self.database)).await
    }

    async fn raw_on(&self, database: Option<&str>) -> mysql_async::Conn {
        let opts = OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .db_name(database.map(str::to_owned))
            .prefer_socket(false)
            .init(vec!["SET time_zone = '+00:00'"]);
        match tokio::time::timeout(Duration::from_secs(10), mysql_async::Conn::new(opts)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => unreachable_server(self, &e),
            Err(_) => unreachable_server(self, &"no answer within 10 s"),
        }
    }

    fn settings(&self) -> MysqlConfig {
        MysqlConfig::from_pool(&self.pool("pool1")).or_panic("test pool settings")
    }
}

/// The runtime each test runs on: two worker threads.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The server of `MYSQL_URL` (or the default).
pub fn server() -> Server {
    let url = std::env::var("MYSQL_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    SqlServer::parse(backend_mysql::config::DEFAULTS, &url).unwrap_or_else(|| {
        panic!("MYSQL_URL is not of the form mysql://user:password@host:port/database")
    })
}

/// Fails the test: the server is not there.
pub fn unreachable_server(s: &Server, e: &dyn std::fmt::Display) -> ! {
    panic!(
        "MySQL/MariaDB at {} is unreachable (set MYSQL_URL, default {}; start it with \
         `scripts/services.sh mariadb`): {e}",
        s.label(),
        DEFAULT_URL.replace(":public@", ":***@"),
    )
}

/// A configuration with one pool of the test server.
pub fn config(s: &Server) -> Config {
    s.config()
}

/// A new backend (a new pool) on the test server.
pub async fn connect() -> MysqlBackend {
    let s = server();
    let conf = config(&s);
    match MysqlBackend::connect(&conf.pools()["pool1"], &conf).await {
        Ok(b) => b,
        Err(e) if e.is_retryable() => unreachable_server(&s, &e),
        Err(e) => panic!("connecting to MySQL at {}: {e}", s.label()),
    }
}

/// [`connect`], as the conformance suite's factory wants it.
pub async fn factory() -> Arc<dyn Backend> {
    Arc::new(connect().await)
}
