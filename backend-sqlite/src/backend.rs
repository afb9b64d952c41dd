//! [`SqliteBackend`]: one database file, its connections, and how a
//! statement runs on them.
//!
//! SQLite takes one writer at a time. Writes go through a pool of one
//! connection, each call one `BEGIN IMMEDIATE` transaction (a batch of
//! the engine's write path is one commit: group commit), so writers queue
//! in the process instead of sleeping on the file lock. Reads use the
//! other `pool_size` connections; in WAL mode they never wait for the
//! writer.

use std::path::Path;
use std::sync::Arc;

use backend_core::schema::SchemaTarget;
use backend_core::{Config, Value};
use deadpool_sqlite::rusqlite::{self, types::ValueRef, Connection};
use deadpool_sqlite::{Hook, HookError, Pool, Runtime};

use crate::config::SqliteConfig;
use crate::error::SqliteError;

mod storage;

/// A pool's database file.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqliteConfig,
    /// The file, for errors and logs.
    label: String,
    readers: Pool,
    writer: Pool,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("pool", &self.inner.config.pool)
            .field("path", &self.inner.label)
            .finish()
    }
}

backend_core::backend_connect!(SqliteBackend, crate::KIND, SqliteError);

impl SqliteBackend {
    /// Opens pool `pool` of `config` (`backend.sqlite.<pool>.*`).
    pub async fn connect(
        pool: &backend_core::config::PoolConfig,
        config: &Config,
    ) -> Result<Self, SqliteError> {
        backend_core::CommonError::check_kind(crate::KIND, config.kind())?;
        SqliteBackend::open(SqliteConfig::from_pool(pool)?).await
    }

    /// Opens the database file of `config` (creating it and its folder if
    /// missing), creates the schema if asked, and checks it.
    pub async fn open(config: SqliteConfig) -> Result<Self, SqliteError> {
        let label = config.path.display().to_string();
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SqliteError::Io {
                operation: "create the database folder",
                path: dir.display().to_string(),
                source,
            })?;
        }
        let readers = pool_of(&config, config.pool_size, &label)?;
        let writer = pool_of(&config, 1, &label)?;
        let backend = SqliteBackend {
            inner: Arc::new(Inner {
                config,
                label,
                readers,
                writer,
            }),
        };
        let target = SchemaTarget {
            kind: crate::KIND,
            pool: backend.inner.config.pool.clone(),
            host_port: String::new(),
            database: backend.inner.label.clone(),
            label: backend.inner.label.clone(),
            schema_file: crate::schema::SCHEMA.file,
        };
        let create = backend.inner.config.create_tables;
        backend
            .write("schema", move |conn| {
                crate::schema::prepare(conn, create, &target).map_err(Failure::Backend)
            })
            .await?;
        tracing::info!(pool = %backend.inner.config.pool, path = %backend.inner.label, "SQLite database open");
        Ok(backend)
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.config
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    fn driver(&self, operation: &'static str) -> impl Fn(rusqlite::Error) -> SqliteError + '_ {
        move |source| SqliteError::Sqlite {
            operation,
            path: self.inner.label.clone(),
            source,
        }
    }

    fn pool_error(&self, operation: &'static str, message: impl ToString) -> SqliteError {
        SqliteError::Pool {
            operation,
            path: self.inner.label.clone(),
            message: message.to_string(),
        }
    }

    /// Runs `f` in one write transaction, committed if it returns `Ok`.
    pub(crate) async fn write<T, F>(&self, operation: &'static str, f: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        let busy = self.inner.config.busy_timeout;
        self.on(&self.inner.writer, operation, move |conn| {
            retry_busy(busy, || conn.execute_batch("BEGIN IMMEDIATE"))?;
            let out = f(conn).and_then(|out| {
                conn.execute_batch("COMMIT")?;
                Ok(out)
            });
            if out.is_err() && !conn.is_autocommit() {
                // Nothing of a failed call stays: the batch is retried whole.
                let _ = conn.execute_batch("ROLLBACK");
            }
            out
        })
        .await
    }

    /// Runs `f` on a read connection (again while SQLite answers busy at
    /// once, see [`retry_busy`]).
    pub(crate) async fn read<T, F>(&self, operation: &'static str, f: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        let busy = self.inner.config.busy_timeout;
        self.on(&self.inner.readers, operation, move |conn| {
            retry_busy(busy, || f(conn))
        })
        .await
    }

    /// Runs `f` on a connection of `pool`, in the pool's blocking thread.
    async fn on<T, F>(&self, pool: &Pool, operation: &'static str, f: F) -> Result<T, SqliteError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let conn = pool
            .get()
            .await
            .map_err(|e| self.pool_error(operation, e))?;
        let result = conn
            .interact(f)
            .await
            .map_err(|e| self.pool_error(operation, e))?;
        result.map_err(|e| e.into_error(self, operation))
    }
}

/// What a closure run on a connection can fail with.
pub(crate) enum Failure {
    Sqlite(rusqlite::Error),
    Backend(SqliteError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sqlite(e)
    }
}

impl From<backend_core::CommonError> for Failure {
    fn from(e: backend_core::CommonError) -> Self {
        Failure::Backend(SqliteError::Common(e))
    }
}

impl Failure {
    fn into_error(self, backend: &SqliteBackend, operation: &'static str) -> SqliteError {
        match self {
            Failure::Sqlite(e) => backend.driver(operation)(e),
            Failure::Backend(e) => e,
        }
    }
}

/// A pool of `size` connections to the file, each set up for this
/// backend: WAL, the configured sync and busy wait.
fn pool_of(config: &SqliteConfig, size: usize, label: &str) -> Result<Pool, SqliteError> {
    let busy = config.busy_timeout;
    let synchronous = config.synchronous.as_str();
    deadpool_sqlite::Config::new(&config.path)
        .builder(Runtime::Tokio1)
        .map_err(|e| SqliteError::Pool {
            operation: "open",
            path: label.to_owned(),
            message: e.to_string(),
        })?
        .max_size(size)
        .post_create(Hook::async_fn(move |conn, _| {
            Box::pin(async move {
                conn.interact(move |c| set_up(c, busy, synchronous))
                    .await
                    .map_err(|e| HookError::message(e.to_string()))?
                    .map_err(HookError::Backend)
            })
        }))
        .build()
        .map_err(|e| SqliteError::Pool {
            operation: "open",
            path: label.to_owned(),
            message: e.to_string(),
        })
}

fn set_up(
    c: &mut Connection,
    busy: std::time::Duration,
    synchronous: &str,
) -> rusqlite::Result<()> {
    c.busy_timeout(busy)?;
    // WAL: readers never wait for the writer, and a commit is one append.
    // The mode is the file's, kept across connections: set it only once.
    let mode: String = retry_busy(busy, || {
        c.query_row("PRAGMA journal_mode", [], |r| r.get(0))
    })?;
    if !mode.eq_ignore_ascii_case("wal") {
        let _: String = retry_busy(busy, || {
            c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        })?;
    }
    retry_busy(busy, || c.pragma_update(None, "synchronous", synchronous))?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// An error SQLite may answer "busy" with.
trait Busy {
    /// Whether SQLite answered that the file is locked.
    fn is_busy(&self) -> bool;
}

impl Busy for rusqlite::Error {
    fn is_busy(&self) -> bool {
        matches!(
            self.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

impl Busy for Failure {
    fn is_busy(&self) -> bool {
        matches!(self, Failure::Sqlite(e) if e.is_busy())
    }
}

/// Runs `f`, again while SQLite answers busy, for up to `busy`. The busy
/// timeout makes most lock waits SQLite's own; a few it answers at once
/// (a connection opening while another recovers the file after a crash,
/// or cleans it up as the last one closes it), and a broker starting
/// beside others must not fail on them.
fn retry_busy<T, E: Busy>(
    busy: std::time::Duration,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let deadline = std::time::Instant::now() + busy;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match f() {
            Err(e) if e.is_busy() && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// A core value as SQLite binds it: times as milliseconds since the epoch,
/// booleans as 0 or 1.
pub(crate) fn to_sql(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(i64::from(*b)),
        Value::Int(i) => S::Integer(*i),
        Value::Float(f) => S::Real(*f),
        Value::Text(s) => S::Text(s.clone()),
        Value::Bytes(b) => S::Blob(b.to_vec()),
        Value::Time(t) => S::Integer(t.as_millis()),
    }
}

/// A column as a core value: text that is not UTF-8 comes back as bytes.
pub(crate) fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Bytes(backend_core::Bytes::copy_from_slice(t)),
        },
        ValueRef::Blob(b) => Value::Bytes(backend_core::Bytes::copy_from_slice(b)),
    }
}
