//! [`MysqlBackend`]: the [`Backend`] trait on mysql_async's built-in pool.
//!
//! Every statement is prepared once per connection and kept in the
//! driver's per-connection statement cache, which this crate sizes
//! ([`MysqlConfig::stmt_cache_size`], default 256) and keeps alive: the
//! pool's reset of a connection on its return (`COM_RESET_CONNECTION`,
//! which would drop every prepared statement) is turned off, since the
//! backend leaves no session state behind. Batches are multi-row
//! statements; messages go through `LOAD DATA LOCAL INFILE` when the
//! server allows it (see `load_data.rs` and the crate README).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backend_core::backend::{
    apply_limits, batches, Ack, Backend, BackendInfo, BackendResult, ClientStatus, FetchRequest,
    WriteOptions,
};
use backend_core::config::{OfflineMode, PoolConfig};
use backend_core::hook::ClientInfo;
use backend_core::message::Columns;
use backend_core::schema::SchemaTarget;
use backend_core::topic::{decode_matching, matches};
use backend_core::value::{Row, Value};
use backend_core::{Bytes, CommonError, Config, Message, Statement, Subscription, Timestamp};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{
    Conn, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, TxOpts, Value as MyValue,
};

use crate::config::MysqlConfig;
use crate::convert::{self, datetime};
use crate::error::MysqlError;
use crate::load_data;
use crate::schema;
use crate::statements as sql;
use crate::statements::filter::{topic_match, FetchParam, FetchQuery, TopicCondition, TopicMatch};

mod storage;

/// Most rows one batch statement carries (MySQL allows 65535 placeholders).
const MAX_BATCH_ROWS: usize = 4096;

/// Most rows one multi-row insert of a flush carries. Each row count is a
/// statement text of its own, prepared once per connection and kept in
/// its statement cache ([`MysqlConfig::stmt_cache_size`], 256 by
/// default). A larger flush (up to `batch_size`, 1,000 by default) runs
/// as several such statements in one transaction; preparing a new
/// 456-row statement, with a column definition sent back per parameter,
/// costs more than the extra round trips.
const STATEMENT_ROWS: usize = 100;

/// Splits a run of rows that goes in a transaction anyway into statements
/// of [`STATEMENT_ROWS`] or a power of two rows (37 = 32 + 4 + 1): eight
/// shapes per kind instead of a hundred, so each pool connection prepares
/// few statements (in a short profile of a freshly started example broker
/// under load, preparing was about 4% of its CPU) for a round trip or two
/// more per flush.
fn shaped(run: std::ops::Range<usize>, out: &mut Vec<std::ops::Range<usize>>) {
    let mut start = run.start;
    while start < run.end {
        let left = run.end - start;
        let n = if left >= STATEMENT_ROWS {
            STATEMENT_ROWS
        } else {
            1 << left.ilog2()
        };
        out.push(start..start + n);
        start += n;
    }
}

/// The MySQL/MariaDB backend of one pool. Clones share the pool.
///
/// ```no_run
/// use backend_core::{Backend, Config, Message, QoS};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse(r#"
/// backend.mysql.pool1.server = 127.0.0.1:3306
/// backend.mysql.pool1.user = root
/// backend.mysql.pool1.password = public
/// backend.mysql.pool1.database = mqtt
/// backend.mysql.pool1.create_tables = true
/// "#)?;
/// let my = backend_mysql::MysqlBackend::connect(&config.pools()["pool1"], &config).await?;
/// my.store_messages(&[Message::new("c1", "a/b", QoS::AtLeastOnce, "hi")], Default::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MysqlBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: MysqlConfig,
    label: String,
    /// The server's `max_allowed_packet`: batches are split below it.
    max_packet: usize,
    /// Messages are stored with `LOAD DATA LOCAL INFILE`: the config
    /// allows it and the server's `local_infile` was on at connect. Turned
    /// off for good if the server refuses it later.
    load_data: AtomicBool,
    /// Loads in a row that warned and whose rows the statements then
    /// stored (see [`WARNED_LOADS_BEFORE_STOPPING`]).
    warned_loads: AtomicU32,
}

impl fmt::Debug for MysqlBackend {
    // By hand: mysql_async's `Pool` and `Opts` print the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlBackend")
            .field("pool", &self.inner.config.db.pool_name)
            .field("server", &self.inner.label)
            .field("user", &self.inner.config.db.user)
            .field("tls", &self.inner.config.db.tls.is_some())
            .field("max_connections", &self.inner.config.db.pool_size)
            .field("stmt_cache_size", &self.inner.config.stmt_cache_size)
            .finish()
    }
}

backend_core::backend_connect!(MysqlBackend, crate::KIND, MysqlError);

fn params(values: Vec<MyValue>) -> Params {
    if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values)
    }
}

fn bytes(s: &str) -> MyValue {
    MyValue::Bytes(s.as_bytes().to_vec())
}

impl MysqlBackend {
    /// Connects the pool `pool` of `config` (`backend.mysql.<pool>.*`):
    /// opens one connection, creates the tables if `create_tables` is on,
    /// and checks the schema (a missing table is an error naming it).
    pub async fn connect(pool: &PoolConfig, config: &Config) -> Result<MysqlBackend, MysqlError> {
        CommonError::check_kind(crate::KIND, config.kind())?;
        Self::connect_with(MysqlConfig::from_pool(pool)?).await
    }

    /// Connects with settings built in code.
    pub async fn connect_with(config: MysqlConfig) -> Result<MysqlBackend, MysqlError> {
        // min = max: with mysql_async's default (no idle TTL) the pool keeps
        // at most `min` idle connections and closes every other one as it is
        // returned, which would throw away each connection (and its
        // prepared statements) after every operation. EMQX's pools hold
        // `pool_size` connections too.
        let db = &config.db;
        let size = db.pool_size.max(1);
        let constraints = PoolConstraints::new(size, size).ok_or_else(|| CommonError::Config {
            kind: crate::KIND,
            pool: db.pool_name.clone(),
            key: "pool_size",
            line: None,
            problem: format!("{} is not a pool size", db.pool_size),
        })?;
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            // Keep each connection's prepared statements across uses.
            .with_reset_connection(false);
        let mut opts = OptsBuilder::default()
            .user(Some(db.user.clone()))
            .pass(db.password.as_ref().map(|p| p.expose().to_owned()))
            .db_name(Some(db.database.clone()))
            .stmt_cache_size(config.stmt_cache_size)
            .pool_opts(pool_opts)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .init(vec![
                "SET NAMES utf8mb4".to_owned(),
                "SET time_zone = '+00:00'".to_owned(),
            ]);
        if db.is_socket() {
            opts = opts.socket(Some(db.host.clone()));
        } else {
            opts = opts
                .ip_or_hostname(db.host.clone())
                .tcp_port(db.port)
                // Stay on the address configured: by default the driver
                // switches to the server's Unix socket when it is local.
                .prefer_socket(false);
        }
        if let Some(tls) = &db.tls {
            #[cfg(feature = "tls")]
            {
                opts = opts.ssl_opts(Some(crate::tls::ssl_opts(&db.pool_name, tls)?));
            }
            #[cfg(not(feature = "tls"))]
            {
                let _ = tls;
                return Err(backend_core::CommonError::tls(
                    &db.pool_name,
                    "this build has no `tls` feature",
                )
                .into());
            }
        }
        let label = config.server_label();
        let pool = Pool::new(opts);
        let mut backend = MysqlBackend {
            inner: Arc::new(Inner {
                pool,
                config,
                label,
                max_packet: 4 << 20,
                load_data: AtomicBool::new(false),
                warned_loads: AtomicU32::new(0),
            }),
        };
        let timeout = backend.inner.config.db.connect_timeout;
        let mut conn = backend.conn_within("connect", timeout).await?;
        let settings: Option<(u64, String, i64)> = conn
            .query_first("SELECT @@max_allowed_packet, @@SESSION.sql_mode, @@local_infile")
            .await
            .map_err(backend.my("connect"))?;
        let (max_packet, sql_mode, local_infile) = settings.unwrap_or((4 << 20, String::new(), 0));
        if !sql_mode.contains("STRICT_") {
            tracing::warn!(server = %backend.inner.label, sql_mode, "the server is not in strict mode: a topic longer than its column is truncated instead of refused");
        }
        let c = &backend.inner.config.db;
        let target = SchemaTarget::of(crate::KIND, c, schema::SCHEMA.file);
        schema::prepare(&mut conn, c.create_tables, &target).await?;
        drop(conn);
        if let Some(inner) = Arc::get_mut(&mut backend.inner) {
            inner.max_packet = usize::try_from(max_packet).unwrap_or(usize::MAX);
            inner.load_data = AtomicBool::new(inner.config.load_data && local_infile == 1);
        }
        let c = &backend.inner.config.db;
        tracing::info!(
            pool = %c.pool_name,
            server = %backend.inner.label,
            pool_size = c.pool_size,
            tls = c.tls.is_some(),
            max_allowed_packet = max_packet,
            load_data = backend.inner.load_data.load(Ordering::Relaxed),
            "mysql backend connected"
        );
        Ok(backend)
    }

    /// The settings this backend was built with.
    pub fn config(&self) -> &MysqlConfig {
        &self.inner.config
    }

    /// The connection pool, for statements of your own. Careful:
    /// mysql_async's `Debug` of `Pool` (and of `Conn`) prints the password.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Closes the pool's connections (waits for those in use to return).
    pub async fn disconnect(&self) -> Result<(), MysqlError> {
        self.inner
            .pool
            .clone()
            .disconnect()
            .await
            .map_err(self.my("disconnect"))
    }

    async fn conn(&self, operation: &'static str) -> Result<Conn, MysqlError> {
        self.conn_within(operation, self.inner.config.db.wait_timeout)
            .await
    }

    async fn conn_within(
        &self,
        operation: &'static str,
        after: Duration,
    ) -> Result<Conn, MysqlError> {
        match tokio::time::timeout(after, self.inner.pool.get_conn()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(source)) => Err(self.my(operation)(source)),
            // No connection within the wait timeout: the server does not
            // answer, or every connection stayed busy.
            Err(_) => Err(CommonError::Timeout {
                operation,
                server: self.inner.label.clone(),
                waiting_for: "connection",
                after,
            }
            .into()),
        }
    }

    fn my(&self, operation: &'static str) -> impl Fn(mysql_async::Error) -> MysqlError + '_ {
        move |source| MysqlError::Mysql {
            operation,
            server: self.inner.label.clone(),
            source,
        }
    }

    /// Runs a statement that returns no rows; the affected rows.
    async fn run(
        &self,
        operation: &'static str,
        text: &str,
        values: Vec<MyValue>,
    ) -> Result<u64, MysqlError> {
        let mut conn = self.conn(operation).await?;
        conn.exec_drop(text, params(values))
            .await
            .map_err(self.my(operation))?;
        Ok(conn.affected_rows())
    }

    /// Runs a query; its rows as values.
    async fn rows(
        &self,
        operation: &'static str,
        text: &str,
        values: Vec<MyValue>,
    ) -> Result<Vec<Vec<MyValue>>, MysqlError> {
        let mut conn = self.conn(operation).await?;
        query(&mut conn, text, values)
            .await
            .map_err(self.my(operation))
    }

    /// Splits rows so no statement carries more than half the server's
    /// `max_allowed_packet` or [`STATEMENT_ROWS`] rows; in a transaction
    /// (`serial`, or more than one statement), into few shapes
    /// ([`shaped`]).
    fn chunks<'a, T>(
        &self,
        items: &'a [T],
        serial: bool,
        size: impl Fn(&T) -> usize,
    ) -> Vec<&'a [T]> {
        let limit = (self.inner.max_packet / 2).max(1 << 16);
        let runs = batches(items, limit, STATEMENT_ROWS, |it| size(it) + 64);
        if !serial && runs.len() == 1 {
            // One round trip, no transaction: the exact row count.
            return runs.into_iter().map(|r| &items[r]).collect();
        }
        let mut out = Vec::with_capacity(runs.len() + 4);
        for run in runs {
            shaped(run, &mut out);
        }
        out.into_iter().map(|r| &items[r]).collect()
    }

    /// Refuses rows larger than the server's `max_allowed_packet`, with an
    /// error that is not retried. A statement carrying one would have the
    /// server close the connection, which reads as an outage: retried
    /// without end, it would hold up every write behind it. The load could
    /// store one, but no read could return it.
    fn check_row_sizes<T>(
        &self,
        operation: &'static str,
        items: &[T],
        size: impl Fn(&T) -> usize,
    ) -> Result<(), MysqlError> {
        let most = self.inner.max_packet.saturating_sub(1024);
        match items.iter().map(size).find(|&n| n > most) {
            None => Ok(()),
            Some(big) => Err(CommonError::Bind {
                statement: operation.to_owned(),
                parameter: "row".to_owned(),
                problem: format!(
                    "{big} bytes, more than the server's max_allowed_packet ({} bytes) takes",
                    self.inner.max_packet
                ),
            }
            .into()),
        }
    }

    /// Runs `statement(n)` once per chunk with each chunk's values: one
    /// round trip for one chunk, a transaction for several. With `serial`,
    /// always a transaction that first takes [`sql::SERIAL_LOCK`]. No items
    /// is nothing to do: no connection is taken.
    async fn batch<T>(
        &self,
        operation: &'static str,
        serial: bool,
        items: &[T],
        size: impl Fn(&T) -> usize,
        statement: impl Fn(usize) -> String,
        values: impl Fn(&T, &mut Vec<MyValue>) -> Result<(), MysqlError>,
    ) -> Result<(), MysqlError> {
        if items.is_empty() {
            return Ok(());
        }
        self.check_row_sizes(operation, items, &size)?;
        let chunks = self.chunks(items, serial, size);
        let mut conn = self.conn(operation).await?;
        let render = |chunk: &[T]| -> Result<(String, Vec<MyValue>), MysqlError> {
            // Sized from the first row, so the values are not moved again
            // as the vector grows (800 of them for 100 messages).
            let mut v = Vec::new();
            for (i, it) in chunk.iter().enumerate() {
                values(it, &mut v)?;
                if i == 0 {
                    v.reserve_exact(v.len() * (chunk.len() - 1));
                }
            }
            Ok((statement(chunk.len()), v))
        };
        match chunks.as_slice() {
            [one] if !serial => {
                let (text, v) = render(one)?;
                conn.exec_drop(text, params(v))
                    .await
                    .map_err(self.my(operation))?;
            }
            _ => {
                let mut tx = conn
                    .start_transaction(TxOpts::default())
                    .await
                    .map_err(self.my(operation))?;
                if serial {
                    tx.exec_drop(sql::SERIAL_LOCK, ())
                        .await
                        .map_err(self.my(operation))?;
                }
                for chunk in chunks {
                    let (text, v) = render(chunk)?;
                    tx.exec_drop(text, params(v))
                        .await
                        .map_err(self.my(operation))?;
                }
                tx.commit().await.map_err(self.my(operation))?;
            }
        }
        Ok(())
    }

    fn bind_time(
        &self,
        statement: &str,
        index: usize,
        t: Timestamp,
    ) -> Result<MyValue, MysqlError> {
        datetime(t).ok_or_else(|| time_error(statement, index, t))
    }

    /// Stores messages with multi-row `REPLACE` statements, in a
    /// transaction that takes [`sql::SERIAL_LOCK`] first.
    async fn replace_messages(&self, messages: &[Message]) -> Result<(), MysqlError> {
        self.batch(
            "store_messages",
            true,
            messages,
            message_size,
            sql::store_messages,
            |m, v| {
                let arrived = self.bind_time("REPLACE INTO mqtt_msg", 7, m.timestamp)?;
                v.extend([
                    bytes(&m.id),
                    bytes(&m.sender),
                    bytes(&m.topic),
                    MyValue::Int(i64::from(m.qos.as_u8())),
                    MyValue::Int(i64::from(m.retain)),
                    MyValue::Bytes(m.payload.to_vec()),
                    arrived,
                    m.stored_properties().map_or(MyValue::NULL, MyValue::Bytes),
                ]);
                Ok(())
            },
        )
        .await
    }

    /// Whether message stores go through `LOAD DATA LOCAL INFILE`.
    fn loads(&self) -> bool {
        self.inner.load_data.load(Ordering::Relaxed)
    }

    /// Stops storing messages with `LOAD DATA`, for good, saying why.
    fn stop_loading(&self, why: &str) {
        if self.inner.load_data.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                pool = %self.inner.config.db.pool_name,
                server = %self.inner.label,
                "{why}: messages are stored with REPLACE statements from now on"
            );
        }
    }

    /// Stores messages through `LOAD DATA LOCAL INFILE` in one
    /// transaction: begin; the serial lock and the load in one round trip;
    /// commit. Anything but [`Loaded::Stored`] stored nothing, and the
    /// rows are to go through the `REPLACE` statements instead.
    async fn load_messages(&self, messages: &[Message]) -> Result<Loaded, MysqlError> {
        const OP: &str = "store_messages";
        if messages.is_empty() {
            return Ok(Loaded::Stored);
        }
        self.check_row_sizes(OP, messages, message_size)?;
        let stream =
            load_data::encode(messages).map_err(|t| time_error("REPLACE INTO mqtt_msg", 7, t))?;
        let pieces = load_data::pieces(stream, self.inner.max_packet);
        let mut conn = self.conn(OP).await?;
        // Whatever file the server asks for, it gets these rows and no
        // other data: the handler serves this one stream, once.
        conn.set_infile_handler(async move {
            Ok(futures::stream::iter(pieces.into_iter().map(Ok)).boxed())
        });
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(self.my(OP))?;
        match tx.query_drop(sql::LOCK_THEN_LOAD).await {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if LOAD_REFUSED.contains(&e.code) => {
                self.stop_loading(&format!(
                    "the server refuses LOAD DATA LOCAL INFILE (error {}: {})",
                    e.code, e.message
                ));
                tx.rollback().await.map_err(self.my(OP))?;
                return Ok(Loaded::Refused);
            }
            Err(e) => {
                let e = self.my(OP)(e);
                if e.is_retryable() {
                    // Dropping the transaction rolls it back as the
                    // connection returns to the pool.
                    return Err(e);
                }
                // Some other refusal (a proxy in between that does not
                // pass the load on, say): the statements decide.
                tx.rollback().await.map_err(self.my(OP))?;
                return Ok(Loaded::Failed(e));
            }
        }
        let (warnings, affected) = (tx.get_warnings(), tx.affected_rows());
        if warnings > 0 || affected < messages.len() as u64 {
            tracing::debug!(
                warnings,
                affected,
                rows = messages.len(),
                "LOAD DATA of messages warned: rolled back, stored with REPLACE statements instead"
            );
            tx.rollback().await.map_err(self.my(OP))?;
            return Ok(Loaded::Warned);
        }
        tx.commit().await.map_err(self.my(OP))?;
        Ok(Loaded::Stored)
    }

    /// Runs raw SQL with `?` parameters bound from `params`; every value is
    /// bound (`Time` as a UTC `DATETIME` value with its milliseconds, `Bytes` as bytes, `Null`
    /// as NULL, `Bool` as 0/1), never spliced. Rows come back as values
    /// (see the crate docs for the type mapping).
    pub async fn execute_sql(&self, text: &str, values: &[Value]) -> Result<Vec<Row>, MysqlError> {
        let bound = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                convert::bind(v).map_err(|problem| {
                    MysqlError::from(CommonError::Bind {
                        statement: text.to_owned(),
                        parameter: (i + 1).to_string(),
                        problem,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.conn("execute").await?;
        let rows: Vec<mysql_async::Row> = conn
            .exec(text, params(bound))
            .await
            .map_err(self.my("execute"))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let cols = row.columns();
                cols.iter()
                    .zip(row.unwrap())
                    .map(|(c, v)| convert::read(c, v))
                    .collect()
            })
            .collect())
    }
}

/// Flushes in a row whose load warned while the statements stored the same
/// rows, after which messages are no longer loaded: one odd message (a
/// topic too long for a server not in strict mode) does not stop it.
const WARNED_LOADS_BEFORE_STOPPING: u32 = 3;

/// How a `LOAD DATA` of messages ended, when no retry is due.
#[derive(Debug)]
enum Loaded {
    /// Every row stored and committed.
    Stored,
    /// The server does not allow the load; loading has stopped.
    Refused,
    /// The load stored fewer rows than sent or warned, and was rolled
    /// back. With `LOCAL` the server turns what would be an error (a
    /// topic longer than its column, in strict mode) into a warning; the
    /// statements report such an error themselves.
    Warned,
    /// The load failed with an error a retry would not mend, and was
    /// rolled back: the statements store the rows or fail themselves.
    Failed(MysqlError),
}

/// Server errors that mean `LOAD DATA LOCAL INFILE` is not allowed:
/// `ER_NOT_ALLOWED_COMMAND` (MariaDB, older MySQL), MySQL 8's
/// `ER_CLIENT_LOCAL_FILES_DISABLED`, MariaDB's
/// `ER_LOAD_INFILE_CAPABILITY_DISABLED`.
const LOAD_REFUSED: [u16; 3] = [1148, 3948, 4166];

fn time_error(statement: &str, index: usize, t: Timestamp) -> MysqlError {
    MysqlError::from(CommonError::Bind {
        statement: statement.to_owned(),
        parameter: index.to_string(),
        problem: format!(
            "the time {} ms since the epoch is outside DATETIME's range",
            t.as_millis()
        ),
    })
}

async fn query(
    conn: &mut Conn,
    text: &str,
    values: Vec<MyValue>,
) -> Result<Vec<Vec<MyValue>>, mysql_async::Error> {
    let rows: Vec<mysql_async::Row> = conn.exec(text, params(values)).await?;
    Ok(rows.into_iter().map(mysql_async::Row::unwrap).collect())
}

fn data_error(context: impl Into<String>, problem: impl Into<String>) -> MysqlError {
    CommonError::data(context, problem).into()
}

/// A row read back: its values, taken out column by column.
pub(crate) struct MyRow<'t> {
    values: Vec<MyValue>,
    table: &'t str,
}

impl<'t> MyRow<'t> {
    pub(crate) fn new(values: Vec<MyValue>, table: &'t str) -> Self {
        MyRow { values, table }
    }

    fn take(&mut self, i: usize) -> MyValue {
        let value = self.values.get_mut(i);
        value.map_or(MyValue::NULL, |v| std::mem::replace(v, MyValue::NULL))
    }

    fn not(&self, i: usize, v: &MyValue, what: &str) -> MysqlError {
        let context = format!("{} column {}", self.table, i + 1);
        data_error(context, format!("{} is not {what}", convert::describe(v)))
    }
}

impl Columns for MyRow<'_> {
    type Error = MysqlError;

    fn table(&self) -> &str {
        self.table
    }

    fn text(&mut self, i: usize) -> Result<String, MysqlError> {
        Ok(convert::text(self.take(i)))
    }

    fn int(&mut self, i: usize) -> Result<Option<i64>, MysqlError> {
        match self.take(i) {
            MyValue::NULL => Ok(None),
            v => convert::int(&v)
                .map(Some)
                .ok_or_else(|| self.not(i, &v, "an integer")),
        }
    }

    fn bytes(&mut self, i: usize) -> Result<Bytes, MysqlError> {
        match self.take(i) {
            MyValue::Bytes(b) => Ok(Bytes::from(b)),
            MyValue::NULL => Ok(Bytes::new()),
            other => Err(self.not(i, &other, "bytes")),
        }
    }

    fn time(&mut self, i: usize) -> Result<Option<Timestamp>, MysqlError> {
        Ok(convert::timestamp(&self.take(i)))
    }
}

/// A subscription row: topic, qos.
fn subscription(values: Vec<MyValue>) -> Result<Subscription, MysqlError> {
    let mut row = MyRow::new(values, "mqtt_sub");
    Ok(Subscription::new(row.text(0)?, row.qos(1)?))
}

/// A message row of `table`: topic, msgid, sender, qos, [retain,] payload,
/// arrived (see [`Message::from_row`]).
pub(crate) fn message(
    values: Vec<MyValue>,
    table: &str,
    retain_col: bool,
) -> Result<Message, MysqlError> {
    Message::from_row(&mut MyRow::new(values, table), retain_col)
}

fn message_size(m: &Message) -> usize {
    m.payload.len() + m.topic.len() + m.sender.len() + m.id.len()
}

#[cfg(test)]
mod tests {
    use super::{shaped, STATEMENT_ROWS};

    #[test]
    fn shaped_runs_cover_the_rows_in_order_in_few_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for start in [0, 7] {
            for len in 0..=2 * STATEMENT_ROWS + 3 {
                let mut out = Vec::new();
                shaped(start..start + len, &mut out);
                let mut next = start;
                for r in &out {
                    assert_eq!(r.start, next, "{len}: {out:?}");
                    let n = r.len();
                    assert!(n == STATEMENT_ROWS || n.is_power_of_two(), "{len}: {out:?}");
                    shapes.insert(n);
                    next = r.end;
                }
                assert_eq!(next, start + len, "{len}: {out:?}");
            }
        }
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, STATEMENT_ROWS]
        );
    }
}
