//! The [`Backend`] trait on [`SqliteBackend`]: each operation in terms of
//! the statements of [`crate::statements`].

use async_trait::async_trait;
use backend_core::backend::{apply_limits, BackendInfo, ClientStatus};
use backend_core::message::Columns;
use backend_core::sql_filter::{topic_match, FetchParam, FetchQuery, TopicCondition, TopicMatch};
use backend_core::template::Statement;
use backend_core::topic::decode_matching;
use backend_core::{
    Ack, Backend, BackendResult, Bytes, ClientInfo, CommonError, FetchRequest, Message,
    OfflineMode, Row, Subscription, Timestamp, WriteOptions,
};
use deadpool_sqlite::rusqlite::types::{Value as Sql, ValueRef};
use deadpool_sqlite::rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::{from_sql, to_sql, Failure, SqliteBackend};
use crate::statements as sql;

#[async_trait]
impl Backend for SqliteBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("sqlite", crate::KIND.spec().capabilities)
    }

    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        let (id, node) = (client.client_id.clone(), client.node.clone());
        self.write("client_online", move |c| {
            c.prepare_cached(sql::CLIENT_ONLINE)?
                .execute(params![id, node, at.as_millis()])?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        let (id, node) = (client.client_id.clone(), client.node.clone());
        self.write("client_offline", move |c| {
            c.prepare_cached(sql::CLIENT_OFFLINE)?
                .execute(params![id, node, at.as_millis()])?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        let id = client_id.to_owned();
        Ok(self
            .read("client_status", move |c| {
                let mut stmt = c.prepare_cached(sql::CLIENT_STATUS)?;
                let mut rows = stmt.query([&id])?;
                match rows.next()? {
                    Some(row) => Ok(Some(ClientStatus::from_row(
                        &id,
                        &mut SqlRow::new(row, "mqtt_client"),
                    )?)),
                    None => Ok(None),
                }
            })
            .await?)
    }

    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>> {
        let id = client_id.to_owned();
        Ok(self
            .read("lookup_subscriptions", move |c| {
                let mut stmt = c.prepare_cached(sql::LOOKUP_SUBSCRIPTIONS)?;
                let mut rows = stmt.query([&id])?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    let mut r = SqlRow::new(row, "mqtt_sub");
                    out.push(Subscription::new(r.text(0)?, r.qos(1)?));
                }
                Ok(out)
            })
            .await?)
    }

    async fn store_subscriptions(
        &self,
        client_id: &str,
        subscriptions: &[Subscription],
    ) -> BackendResult<()> {
        if subscriptions.is_empty() {
            return Ok(());
        }
        let id = client_id.to_owned();
        let subs = subscriptions.to_vec();
        self.write("store_subscriptions", move |c| {
            let mut stmt = c.prepare_cached(sql::STORE_SUBSCRIPTION)?;
            for s in &subs {
                stmt.execute(params![id, s.filter, i64::from(s.qos.as_u8())])?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        if filters.is_empty() {
            return Ok(());
        }
        let id = client_id.to_owned();
        let filters = filters.to_vec();
        self.write("delete_subscriptions", move |c| {
            let mut stmt = c.prepare_cached(sql::DELETE_SUBSCRIPTION)?;
            for f in &filters {
                stmt.execute(params![id, f])?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn store_messages(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let rows: Vec<[Sql; 8]> = messages.iter().map(message_row).collect();
        self.write("store_messages", move |c| {
            let mut stmt = c.prepare_cached(sql::STORE_MESSAGE)?;
            for row in &rows {
                stmt.execute(params_from_iter(row.iter()))?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn fetch_messages(&self, request: &FetchRequest) -> BackendResult<Vec<Message>> {
        let target = topic_match(&request.filter);
        if target == TopicMatch::Nothing {
            return Ok(Vec::new());
        }
        let r = request.clone();
        let fetched = if request.mode == OfflineMode::Pubsub {
            let probe = request.clone();
            let started = self
                .read("fetch_messages", move |c| pubsub_start(c, &probe))
                .await?;
            match started {
                Some(start) => {
                    self.read("fetch_messages", move |c| {
                        fetch(c, &r, &target, Some(start))
                    })
                    .await?
                }
                // The first fetch of (client, filter) records where the
                // subscription starts (a write) and returns nothing.
                None => {
                    self.write("fetch_messages", move |c| {
                        if let Some(start) = pubsub_start(c, &r)? {
                            return fetch(c, &r, &target, Some(start));
                        }
                        let newest: i64 = c
                            .prepare_cached(sql::PUBSUB_START)?
                            .query_row(params![r.client_id, r.filter], |row| row.get(1))?;
                        c.prepare_cached(sql::MARK_START)?.execute(params![
                            r.client_id,
                            r.filter,
                            newest
                        ])?;
                        Ok(Vec::new())
                    })
                    .await?
                }
            }
        } else {
            self.read("fetch_messages", move |c| fetch(c, &r, &target, None))
                .await?
        };
        Ok(apply_limits(fetched, request))
    }

    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()> {
        if acks.is_empty() {
            return Ok(());
        }
        let acks = acks.to_vec();
        self.write("ack_messages", move |c| {
            match mode {
                OfflineMode::Queue => {
                    let mut stmt = c.prepare_cached(sql::ACK_QUEUE)?;
                    for a in &acks {
                        stmt.execute([&a.message_id])?;
                    }
                }
                OfflineMode::Pubsub => {
                    let mut stmt = c.prepare_cached(sql::ACK_PUBSUB)?;
                    for a in &acks {
                        stmt.execute(params![a.client_id, a.topic, a.message_id])?;
                    }
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn store_retained(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let rows: Vec<[Sql; 7]> = messages
            .iter()
            .map(|m| {
                [
                    Sql::Text(m.topic.clone()),
                    Sql::Text(m.id.clone()),
                    Sql::Text(m.sender.clone()),
                    Sql::Integer(i64::from(m.qos.as_u8())),
                    Sql::Blob(m.payload.to_vec()),
                    Sql::Integer(m.timestamp.as_millis()),
                    m.stored_properties().map_or(Sql::Null, Sql::Blob),
                ]
            })
            .collect();
        self.write("store_retained", move |c| {
            let mut stmt = c.prepare_cached(sql::STORE_RETAINED)?;
            for row in &rows {
                stmt.execute(params_from_iter(row.iter()))?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()> {
        if topics.is_empty() {
            return Ok(());
        }
        let topics = topics.to_vec();
        self.write("delete_retained", move |c| {
            let mut stmt = c.prepare_cached(sql::DELETE_RETAINED)?;
            for t in &topics {
                stmt.execute([t])?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>> {
        let target = topic_match(filter);
        if target == TopicMatch::Nothing {
            return Ok(Vec::new());
        }
        let filter = filter.to_owned();
        Ok(self
            .read("lookup_retained", move |c| {
                let (_, values) = target.condition("topic");
                let mut stmt = c.prepare_cached(&sql::lookup_retained(&target))?;
                let rows = stmt
                    .query_and_then(params_from_iter(values.into_iter().map(text)), |row| {
                        Message::from_row(&mut SqlRow::new(row, "mqtt_retain"), false)
                    })?;
                decode_matching(&filter, rows, |m| m)
            })
            .await?)
    }

    /// Runs a raw `sql` statement with `?` placeholders, each value bound
    /// as a parameter (times as milliseconds since the epoch), in a write
    /// transaction of its own; returns its rows.
    async fn execute(&self, statement: &Statement) -> BackendResult<Vec<Row>> {
        let (text, params) = statement.query("sqlite", "sql")?;
        let text = text.to_owned();
        let values: Vec<Sql> = params.iter().map(to_sql).collect();
        Ok(self
            .write("execute", move |c| {
                let mut stmt = c.prepare_cached(&text)?;
                let columns = stmt.column_count();
                let mut rows = stmt.query(params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    let mut values = Vec::with_capacity(columns);
                    for i in 0..columns {
                        values.push(from_sql(row.get_ref(i)?));
                    }
                    out.push(Row::from(values));
                }
                Ok(out)
            })
            .await?)
    }

    async fn ping(&self) -> BackendResult<()> {
        self.read("ping", |c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        // Bounded steps: writers get the lock between them.
        const STEP: usize = 10_000;
        let mut removed = 0u64;
        loop {
            let n = self
                .write("remove_messages_before", move |c| {
                    Ok(c.prepare_cached(sql::REMOVE_MESSAGES_BEFORE)?
                        .execute(params![before.as_millis(), STEP as i64])?)
                })
                .await?;
            removed += n as u64;
            if n < STEP {
                return Ok(removed);
            }
        }
    }
}

/// A message as the parameters of [`sql::STORE_MESSAGE`].
fn message_row(m: &Message) -> [Sql; 8] {
    [
        Sql::Text(m.id.clone()),
        Sql::Text(m.sender.clone()),
        Sql::Text(m.topic.clone()),
        Sql::Integer(i64::from(m.qos.as_u8())),
        Sql::Integer(i64::from(m.retain)),
        Sql::Blob(m.payload.to_vec()),
        Sql::Integer(m.timestamp.as_millis()),
        m.stored_properties().map_or(Sql::Null, Sql::Blob),
    ]
}

/// A topic bound as text, as the columns hold it (in SQLite a blob never
/// equals, or falls in a range of, text).
fn text(bytes: Vec<u8>) -> Sql {
    match String::from_utf8(bytes) {
        Ok(s) => Sql::Text(s),
        Err(e) => Sql::Blob(e.into_bytes()),
    }
}

/// The pubsub subscription's start, if its first fetch recorded one.
fn pubsub_start(c: &Connection, r: &FetchRequest) -> Result<Option<i64>, Failure> {
    let start: Option<Option<i64>> = c
        .prepare_cached(sql::PUBSUB_START)?
        .query_row(params![r.client_id, r.filter], |row| row.get(0))
        .optional()?;
    Ok(start.flatten())
}

/// Reads the messages of `r` (after `start` in pubsub mode), oldest first.
fn fetch(
    c: &Connection,
    r: &FetchRequest,
    target: &TopicMatch,
    start: Option<i64>,
) -> Result<Vec<Message>, Failure> {
    let fetch = FetchQuery::new(r, target, start);
    let values: Vec<Sql> = fetch
        .params
        .into_iter()
        .map(|p| match p {
            FetchParam::ClientId(id) => Sql::Text(id),
            FetchParam::Topic(t) => text(t),
            FetchParam::StartId(id) => Sql::Integer(id),
            FetchParam::Since(since) => Sql::Integer(since.as_millis()),
            FetchParam::Limit(n) => Sql::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
        })
        .collect();
    let mut stmt = c.prepare_cached(&fetch.text)?;
    let rows = stmt.query_and_then(params_from_iter(values.iter()), |row| {
        Message::from_row(&mut SqlRow::new(row, "mqtt_msg"), true)
    })?;
    let mut out = decode_matching(&r.filter, rows, |m| m)?;
    // Newest first from the database for LIMIT, unless read oldest first.
    if !fetch.oldest_first {
        out.reverse();
    }
    Ok(out)
}

/// A result row read as [`Columns`].
struct SqlRow<'a, 'b> {
    row: &'a deadpool_sqlite::rusqlite::Row<'b>,
    table: &'static str,
}

impl<'a, 'b> SqlRow<'a, 'b> {
    fn new(row: &'a deadpool_sqlite::rusqlite::Row<'b>, table: &'static str) -> Self {
        SqlRow { row, table }
    }

    fn wrong(&self, i: usize, want: &str) -> Failure {
        Failure::from(CommonError::data(
            format!("{} column {i}", self.table),
            format!("not {want}"),
        ))
    }
}

impl Columns for SqlRow<'_, '_> {
    type Error = Failure;

    fn table(&self) -> &str {
        self.table
    }

    fn text(&mut self, i: usize) -> Result<String, Failure> {
        Ok(match self.row.get_ref(i)? {
            ValueRef::Null => String::new(),
            ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
            ValueRef::Integer(n) => n.to_string(),
            ValueRef::Real(f) => f.to_string(),
        })
    }

    fn int(&mut self, i: usize) -> Result<Option<i64>, Failure> {
        match self.row.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Some)
                .ok_or_else(|| self.wrong(i, "an integer")),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    fn bytes(&mut self, i: usize) -> Result<Bytes, Failure> {
        Ok(match self.row.get_ref(i)? {
            ValueRef::Null => Bytes::new(),
            ValueRef::Text(b) | ValueRef::Blob(b) => Bytes::copy_from_slice(b),
            ValueRef::Integer(n) => Bytes::from(n.to_string()),
            ValueRef::Real(f) => Bytes::from(f.to_string()),
        })
    }

    fn time(&mut self, i: usize) -> Result<Option<Timestamp>, Failure> {
        Ok(match self.row.get_ref(i)? {
            ValueRef::Integer(ms) => Some(Timestamp::from_millis(ms)),
            _ => None,
        })
    }
}
