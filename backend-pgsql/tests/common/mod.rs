//! Shared by the test binaries: where the server is (`PGSQL_URL`), and
//! connecting to it. A server that cannot be reached fails the test, with a
//! message naming the server and the variable; it is never skipped.
#![allow(dead_code)]

use backend_core::testkit::OrPanic;
use std::sync::Arc;

use backend_core::testkit::sql::SqlServer;
use backend_core::{Backend, Config};
use backend_pgsql::{PgsqlBackend, PgsqlConfig};

/// The default of `PGSQL_URL`: what `scripts/services.sh postgres` starts.
pub const DEFAULT_URL: &str = "postgres://root:public@127.0.0.1:5432/mqtt";

/// The test server.
pub type Server = SqlServer;

/// What these tests do with the server through the driver.
#[allow(async_fn_in_trait)]
pub trait Raw {
    /// A plain driver connection, for checking rows with SQL.
    async fn raw(&self) -> tokio_postgres::Client;
    /// A plain driver connection to another database of the server.
    async fn raw_on(&self, database: &str) -> tokio_postgres::Client;
    /// Settings of a pool of this server, for code that builds them.
    fn settings(&self) -> PgsqlConfig;
}

impl Raw for Server {
    async fn raw(&self) -> tokio_postgres::Client {
        self.raw_on(&self.database).await
    }

    async fn raw_on(&self, database: &str) -> tokio_postgres::Client {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(database);
        let (client, conn) = c
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| unreachable_server(self, &e));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }

    fn settings(&self) -> PgsqlConfig {
        PgsqlConfig::from_pool(&self.pool("pool1")).or_panic("test pool settings")
    }
}

/// The server of `PGSQL_URL` (or the default).
pub fn server() -> Server {
    let url = std::env::var("PGSQL_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    SqlServer::parse(backend_pgsql::config::DEFAULTS, &url).unwrap_or_else(|| {
        panic!("PGSQL_URL is not of the form postgres://user:password@host:port/database")
    })
}

/// Fails the test: the server is not there.
pub fn unreachable_server(s: &Server, e: &dyn std::fmt::Display) -> ! {
    panic!(
        "PostgreSQL at {} is unreachable (set PGSQL_URL, default {}; start it with \
         `scripts/services.sh postgres`): {e}",
        s.label(),
        DEFAULT_URL.replace(":public@", ":***@"),
    )
}

/// A configuration with one pool of the test server.
pub fn config(s: &Server) -> Config {
    s.config()
}

/// A new backend (a new pool) on the test server.
pub async fn connect() -> PgsqlBackend {
    let s = server();
    let conf = config(&s);
    match PgsqlBackend::connect(&conf.pools()["pool1"], &conf).await {
        Ok(b) => b,
        Err(e) if e.is_retryable() => unreachable_server(&s, &e),
        Err(e) => panic!("connecting to PostgreSQL at {}: {e}", s.label()),
    }
}

/// [`connect`], as the conformance suite's factory wants it.
pub async fn factory() -> Arc<dyn Backend> {
    Arc::new(connect().await)
}
