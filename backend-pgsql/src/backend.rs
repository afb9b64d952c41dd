//! [`PgsqlBackend`]: the [`Backend`] trait on a deadpool-postgres pool.
//!
//! Every statement is prepared once per connection and cached
//! (`prepare_cached`). Batches are one statement over `unnest` of arrays,
//! so storing many messages is one round trip.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use backend_core::backend::{
    batches, Ack, Backend, BackendInfo, BackendResult, ClientStatus, FetchRequest, WriteOptions,
};
use backend_core::config::{OfflineMode, PoolConfig};
use backend_core::hook::ClientInfo;
use backend_core::message::last_of_each;
use backend_core::message::Columns;
use backend_core::schema::SchemaTarget;
use backend_core::topic::{decode_matching, matches};
use backend_core::value::{Row, Value};
use backend_core::{Bytes, CommonError, Config, Message, Statement, Subscription, Timestamp};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::config::PgsqlConfig;
use crate::convert::{self, PgTime, RawColumn};
use crate::error::PgsqlError;
use crate::filter::{topic_match, TopicMatch, Wildcard};
use crate::schema;
use crate::statements as sql;

mod storage;

/// The PostgreSQL backend of one pool. Clones share the pool.
///
/// ```no_run
/// use backend_core::{Backend, Config, Message, QoS};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse(r#"
/// backend.pgsql.pool1.server = 127.0.0.1:5432
/// backend.pgsql.pool1.username = root
/// backend.pgsql.pool1.password = public
/// backend.pgsql.pool1.database = mqtt
/// backend.pgsql.pool1.create_tables = true
/// "#)?;
/// let pg = backend_pgsql::PgsqlBackend::connect(&config.pools()["pool1"], &config).await?;
/// pg.store_messages(&[Message::new("c1", "a/b", QoS::AtLeastOnce, "hi")], Default::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgsqlBackend {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: PgsqlConfig,
    label: String,
}

impl fmt::Debug for PgsqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PgsqlBackend")
            .field("pool", &self.inner.config.db.pool_name)
            .field("server", &self.inner.label)
            .field("user", &self.inner.config.db.user)
            .field("tls", &self.inner.config.db.tls.is_some())
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish()
    }
}

backend_core::backend_connect!(PgsqlBackend, crate::KIND, PgsqlError);

impl PgsqlBackend {
    /// Connects the pool `pool` of `config` (`backend.pgsql.<pool>.*`):
    /// opens one connection, creates the tables if `create_tables` is on,
    /// and checks the schema (a missing table is an error naming it).
    pub async fn connect(pool: &PoolConfig, config: &Config) -> Result<PgsqlBackend, PgsqlError> {
        CommonError::check_kind(crate::KIND, config.kind())?;
        Self::connect_with(PgsqlConfig::from_pool(pool)?).await
    }

    /// Connects with settings built in code.
    pub async fn connect_with(config: PgsqlConfig) -> Result<PgsqlBackend, PgsqlError> {
        let pg = config.to_tokio_postgres();
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let db = &config.db;
        let manager = match &db.tls {
            #[cfg(feature = "tls")]
            Some(tls) => {
                Manager::from_config(pg, tls_connector(&db.pool_name, tls)?, manager_config)
            }
            #[cfg(not(feature = "tls"))]
            Some(_) => {
                return Err(
                    CommonError::tls(&db.pool_name, "this build has no `tls` feature").into(),
                )
            }
            None => Manager::from_config(pg, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(db.pool_size)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(db.connect_timeout))
            .recycle_timeout(Some(db.connect_timeout))
            .wait_timeout(Some(db.wait_timeout))
            .build()
            .map_err(|source| PgsqlError::Build {
                pool: db.pool_name.clone(),
                source,
            })?;
        let label = config.server_label();
        let backend = PgsqlBackend {
            inner: Arc::new(Inner {
                pool,
                config,
                label,
            }),
        };
        let client = backend.client("connect").await?;
        let c = &backend.inner.config.db;
        let target = SchemaTarget::of(crate::KIND, c, schema::SCHEMA.file);
        schema::prepare(&client, c.create_tables, &target).await?;
        tracing::info!(
            pool = %c.pool_name,
            server = %backend.inner.label,
            pool_size = c.pool_size,
            tls = c.tls.is_some(),
            "pgsql backend connected"
        );
        Ok(backend)
    }

    /// The settings this backend was built with.
    pub fn config(&self) -> &PgsqlConfig {
        &self.inner.config
    }

    /// The connection pool, for statements of your own.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Wraps a driver error of `operation` with this pool's server.
    fn pg(&self, operation: &'static str) -> impl Fn(tokio_postgres::Error) -> PgsqlError + '_ {
        move |source| PgsqlError::Postgres {
            operation,
            server: self.inner.label.clone(),
            source,
        }
    }

    async fn client(&self, operation: &'static str) -> Result<Object, PgsqlError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|source| PgsqlError::Pool {
                operation,
                server: self.inner.label.clone(),
                source,
            })
    }

    /// A pooled connection with `sql` prepared on it (cached per
    /// connection).
    async fn prepared(
        &self,
        operation: &'static str,
        sql: &str,
    ) -> Result<(Object, tokio_postgres::Statement), PgsqlError> {
        let client = self.client(operation).await?;
        let stmt = client.prepare_cached(sql).await;
        Ok((client, stmt.map_err(self.pg(operation))?))
    }

    /// Runs a statement that returns no rows; the affected rows.
    async fn run(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgsqlError> {
        let (client, stmt) = self.prepared(operation, sql).await?;
        let done = client.execute(&stmt, params).await;
        done.map_err(self.pg(operation))
    }

    /// Runs a query; its rows.
    async fn rows(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, PgsqlError> {
        let (client, stmt) = self.prepared(operation, sql).await?;
        let rows = client.query(&stmt, params).await;
        rows.map_err(self.pg(operation))
    }

    /// Stores a batch in slice order. A first attempt (`again` off) takes
    /// a plain insert; a msgid already stored fails it with a unique
    /// violation, which rolls all of it back, and every row then goes in
    /// again through `ON CONFLICT`. A replay (`again`) takes that path
    /// first.
    async fn store_message_batch(
        &self,
        messages: &[&Message],
        again: bool,
    ) -> Result<(), PgsqlError> {
        let mut client = self.client("store_messages").await?;
        match insert_messages(&mut client, messages, again).await {
            Err(e) if !again && e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                insert_messages(&mut client, messages, true).await
            }
            done => done,
        }
        .map_err(self.pg("store_messages"))
    }
}

/// Stores `messages` in slice order: one statement, or for a very large
/// batch several in one transaction (all or nothing). With `replace`, a
/// msgid already stored gets a new row id; without, it fails the batch.
async fn insert_messages(
    client: &mut Object,
    messages: &[&Message],
    replace: bool,
) -> Result<(), tokio_postgres::Error> {
    if let [one] = messages {
        // The engine's usual call: one message, a plain VALUES row.
        let text = if replace {
            sql::STORE_MESSAGE
        } else {
            sql::INSERT_MESSAGE
        };
        let stmt = client.prepare_cached(text).await?;
        let qos = i32::from(one.qos.as_u8());
        let retain = i32::from(one.retain);
        let props = one.stored_properties();
        client
            .execute(
                &stmt,
                &[
                    &one.id,
                    &one.sender,
                    &one.topic,
                    &qos,
                    &retain,
                    &&one.payload[..],
                    &PgTime(one.timestamp),
                    &props,
                ],
            )
            .await?;
        return Ok(());
    }
    // Arrays of one batch; `unnest ... WITH ORDINALITY ORDER BY` gives
    // the rows their ids in slice order.
    let text = if replace {
        sql::STORE_MESSAGES
    } else {
        sql::INSERT_MESSAGES
    };
    match chunk(messages).as_slice() {
        [one] => {
            let stmt = client.prepare_cached(text).await?;
            let cols = MessageColumns::new(one);
            client.execute(&stmt, &cols.params()).await?;
        }
        chunks => {
            let tx = client.transaction().await?;
            let stmt = tx.prepare_cached(text).await?;
            for part in chunks {
                let cols = MessageColumns::new(part);
                tx.execute(&stmt, &cols.params()).await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Splits a batch so no statement carries more than [`CHUNK_BYTES`] of
/// payload or [`CHUNK_ROWS`] rows.
fn chunk<'a, 'm>(messages: &'a [&'m Message]) -> Vec<&'a [&'m Message]> {
    const CHUNK_BYTES: usize = 64 << 20;
    const CHUNK_ROWS: usize = 10_000;
    let size = |m: &&Message| m.payload.len() + m.topic.len() + m.sender.len() + m.id.len();
    let runs = batches(messages, CHUNK_BYTES, CHUNK_ROWS, size);
    runs.into_iter().map(|r| &messages[r]).collect()
}

struct MessageColumns<'m> {
    ids: Vec<&'m str>,
    senders: Vec<&'m str>,
    topics: Vec<&'m str>,
    qos: Vec<i32>,
    retain: Vec<i32>,
    payloads: Vec<&'m [u8]>,
    arrived: Vec<PgTime>,
    props: Vec<Option<Vec<u8>>>,
}

impl<'m> MessageColumns<'m> {
    fn new(messages: &[&'m Message]) -> Self {
        MessageColumns {
            ids: messages.iter().map(|m| m.id.as_str()).collect(),
            senders: messages.iter().map(|m| m.sender.as_str()).collect(),
            topics: messages.iter().map(|m| m.topic.as_str()).collect(),
            qos: messages.iter().map(|m| i32::from(m.qos.as_u8())).collect(),
            retain: messages.iter().map(|m| i32::from(m.retain)).collect(),
            payloads: messages.iter().map(|m| &m.payload[..]).collect(),
            arrived: messages.iter().map(|m| PgTime(m.timestamp)).collect(),
            props: messages.iter().map(|m| m.stored_properties()).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.senders,
            &self.topics,
            &self.qos,
            &self.retain,
            &self.payloads,
            &self.arrived,
            &self.props,
        ]
    }
}

/// TLS (`ssl = true`): backend-core's one trust policy
/// ([`backend_core::tls`]), handed to tokio-postgres as a whole rustls
/// configuration. The server certificate and host name are always
/// verified, against `cacertfile` alone when given, otherwise against the
/// system's trusted roots; `certfile` + `keyfile` add a client certificate.
#[cfg(feature = "tls")]
fn tls_connector(
    pool: &str,
    tls: &crate::TlsSettings,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgsqlError> {
    let config = backend_core::tls::TlsMaterial::load(tls).and_then(|m| m.client_config());
    let config = config.map_err(|e| CommonError::tls(pool, e))?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn data_error(context: impl Into<String>, problem: impl Into<String>) -> PgsqlError {
    CommonError::data(context, problem).into()
}

/// Reads column `idx` of a built-in table's row as a value, whatever its
/// integer or text type (tables created from the seed's schema differ).
fn column(row: &tokio_postgres::Row, idx: usize, table: &str) -> Result<Value, PgsqlError> {
    let col = &row.columns()[idx];
    let ctx = || format!("{table}.{}", col.name());
    let raw: RawColumn<'_> = row
        .try_get(idx)
        .map_err(|e| data_error(ctx(), e.to_string()))?;
    convert::read(col.type_(), raw.0).map_err(|p| data_error(ctx(), p))
}

fn text(v: Value) -> String {
    match v {
        Value::Text(s) => s,
        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Null => String::new(),
        other => String::from_utf8_lossy(&other.to_bytes()).into_owned(),
    }
}

fn time(v: Value) -> Option<Timestamp> {
    match v {
        Value::Time(t) => Some(t),
        _ => None,
    }
}

/// A row read back: typed reads for the schema's own column types, and
/// anything else (a table created with other integer or text types)
/// through [`column`].
struct PgRow<'r> {
    row: &'r tokio_postgres::Row,
    table: &'r str,
}

impl<'r> PgRow<'r> {
    fn new(row: &'r tokio_postgres::Row, table: &'r str) -> Self {
        PgRow { row, table }
    }

    fn value(&self, i: usize) -> Result<Value, PgsqlError> {
        column(self.row, i, self.table)
    }
}

impl Columns for PgRow<'_> {
    type Error = PgsqlError;

    fn table(&self) -> &str {
        self.table
    }

    fn text(&mut self, i: usize) -> Result<String, PgsqlError> {
        match self.row.try_get::<_, Option<&str>>(i) {
            Ok(s) => Ok(s.unwrap_or_default().to_owned()),
            Err(_) => Ok(text(self.value(i)?)),
        }
    }

    fn int(&mut self, i: usize) -> Result<Option<i64>, PgsqlError> {
        if let Ok(v) = self.row.try_get::<_, Option<i32>>(i) {
            return Ok(v.map(i64::from));
        }
        match self.value(i)? {
            Value::Null => Ok(None),
            v => v.as_i64().map(Some).ok_or_else(|| {
                data_error(
                    format!("{} column {}", self.table, i + 1),
                    format!("{v:?} is not an integer"),
                )
            }),
        }
    }

    fn bytes(&mut self, i: usize) -> Result<Bytes, PgsqlError> {
        if let Ok(p) = self.row.try_get::<_, Option<&[u8]>>(i) {
            return Ok(Bytes::copy_from_slice(p.unwrap_or_default()));
        }
        Ok(match self.value(i)? {
            Value::Bytes(b) => b,
            Value::Null => Bytes::new(),
            other => Bytes::from(other.to_bytes().into_owned()),
        })
    }

    fn time(&mut self, i: usize) -> Result<Option<Timestamp>, PgsqlError> {
        match self.row.try_get::<_, Option<PgTime>>(i) {
            Ok(t) => Ok(t.map(|t| t.0)),
            Err(_) => Ok(time(self.value(i)?)),
        }
    }
}

/// A subscription row: topic, qos.
fn subscription(row: &tokio_postgres::Row) -> Result<Subscription, PgsqlError> {
    let mut row = PgRow::new(row, "mqtt_sub");
    Ok(Subscription::new(row.text(0)?, row.qos(1)?))
}

/// A message row of `table`: topic, msgid, sender, qos, [retain,] payload,
/// arrived (see [`Message::from_row`]).
fn message(
    row: &tokio_postgres::Row,
    table: &str,
    retain_col: bool,
) -> Result<Message, PgsqlError> {
    Message::from_row(&mut PgRow::new(row, table), retain_col)
}

/// A client status row of `mqtt_client` (see [`ClientStatus::from_row`]).
fn client_status(row: &tokio_postgres::Row, client_id: &str) -> Result<ClientStatus, PgsqlError> {
    ClientStatus::from_row(client_id, &mut PgRow::new(row, "mqtt_client"))
}

fn limit(n: Option<usize>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl PgsqlBackend {
    /// Runs raw SQL with `$n` parameters bound from `params`.
    pub async fn execute_sql(&self, text: &str, params: &[Value]) -> Result<Vec<Row>, PgsqlError> {
        let client = self.client("execute").await?;
        let pg = self.pg("execute");
        let mut retried = false;
        loop {
            let stmt = client.prepare_cached(text).await.map_err(&pg)?;
            let types = stmt.params();
            if types.len() != params.len() {
                return Err(CommonError::Bind {
                    statement: text.to_owned(),
                    parameter: format!("${}", types.len().min(params.len()) + 1),
                    problem: format!(
                        "the statement has {} parameter(s) but {} value(s) were given",
                        types.len(),
                        params.len()
                    ),
                }
                .into());
            }
            let bound = params
                .iter()
                .zip(types)
                .enumerate()
                .map(|(i, (v, ty))| {
                    convert::bind(v, ty).map_err(|problem| {
                        PgsqlError::from(CommonError::Bind {
                            statement: text.to_owned(),
                            parameter: format!("${} ({})", i + 1, ty.name()),
                            problem,
                        })
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
            match client.query(&stmt, &refs).await {
                Ok(rows) => return read_rows(text, &rows),
                // The table changed under a cached statement (its result
                // columns changed): prepare it again, once.
                Err(e)
                    if !retried
                        && e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
                        && e.as_db_error()
                            .is_some_and(|d| d.message().starts_with("cached plan")) =>
                {
                    client.statement_cache.remove(text, &[]);
                    retried = true;
                }
                Err(e) => return Err(pg(e)),
            }
        }
    }
}

fn read_rows(text: &str, rows: &[tokio_postgres::Row]) -> Result<Vec<Row>, PgsqlError> {
    rows.iter()
        .map(|row| {
            row.columns()
                .iter()
                .enumerate()
                .map(|(i, col)| {
                    let ctx = || format!("`{text}`: column `{}` ({})", col.name(), col.type_());
                    let raw: RawColumn<'_> = row
                        .try_get(i)
                        .map_err(|e| data_error(ctx(), e.to_string()))?;
                    convert::read(col.type_(), raw.0).map_err(|p| data_error(ctx(), p))
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_order_and_bounds() {
        let msgs: Vec<Message> = (0..25)
            .map(|i| {
                Message::new("c", "t", backend_core::QoS::AtLeastOnce, vec![0u8; 8 << 20])
                    .retained(i % 2 == 0)
            })
            .collect();
        let refs: Vec<&Message> = msgs.iter().collect();
        let parts = chunk(&refs);
        assert_eq!(parts.iter().map(|p| p.len()).sum::<usize>(), 25);
        assert!(parts.len() > 1);
        let flat: Vec<&str> = parts
            .iter()
            .flat_map(|p| p.iter().map(|m| m.id.as_str()))
            .collect();
        assert_eq!(flat, msgs.iter().map(|m| m.id.as_str()).collect::<Vec<_>>());
        assert_eq!(chunk(&refs[..1]).len(), 1);
    }

    #[test]
    fn fetch_statements_number_their_parameters() {
        let q = sql::build(false, sql::Shape::Range, false);
        assert!(q.contains("$3") && q.contains("$4") && q.contains("$5") && !q.contains("$6"));
        let p = sql::build(true, sql::Shape::Scan, false);
        assert!(p.contains("m.topic ~ $5") && !p.contains("$6"));
        let page = sql::build(true, sql::Shape::Range, true);
        assert!(page.contains("t.topic ~ $7") && !page.contains("$8"));
        let page = sql::build(false, sql::Shape::Scan, true);
        assert!(page.contains("t.topic ~ $3") && !page.contains("$4"));
    }
}
