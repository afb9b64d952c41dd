//! The [`Backend`] trait on [`PgsqlBackend`]: each operation in terms of the
//! statements and helpers of the parent module.

use super::*;

#[async_trait]
impl Backend for PgsqlBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("pgsql", crate::KIND.spec().capabilities)
    }

    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.run(
            "client_online",
            sql::CLIENT_ONLINE,
            &[&client.client_id, &client.node, &PgTime(at)],
        )
        .await?;
        Ok(())
    }

    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.run(
            "client_offline",
            sql::CLIENT_OFFLINE,
            &[&client.client_id, &client.node, &PgTime(at)],
        )
        .await?;
        Ok(())
    }

    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        let rows = self
            .rows("client_status", sql::CLIENT_STATUS, &[&client_id])
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(client_status(row, client_id)?))
    }

    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>> {
        let rows = self
            .rows(
                "lookup_subscriptions",
                sql::LOOKUP_SUBSCRIPTIONS,
                &[&client_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(subscription)
            .collect::<Result<_, PgsqlError>>()?)
    }

    async fn store_subscriptions(
        &self,
        client_id: &str,
        subscriptions: &[Subscription],
    ) -> BackendResult<()> {
        // No subscriptions insert no rows: `unnest` of empty arrays.
        let subs = last_of_each(subscriptions, |s| s.filter.as_str());
        let topics: Vec<&str> = subs.iter().map(|s| s.filter.as_str()).collect();
        let qos: Vec<i32> = subs.iter().map(|s| i32::from(s.qos.as_u8())).collect();
        self.run(
            "store_subscriptions",
            sql::STORE_SUBSCRIPTIONS,
            &[&client_id, &topics, &qos],
        )
        .await?;
        Ok(())
    }

    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        if filters.is_empty() {
            return Ok(());
        }
        self.run(
            "delete_subscriptions",
            sql::DELETE_SUBSCRIPTIONS,
            &[&client_id, &filters],
        )
        .await?;
        Ok(())
    }

    async fn store_messages(&self, messages: &[Message], opts: WriteOptions) -> BackendResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        // Storing an id again replaces the message (and moves it to the
        // end), as in MemoryBackend; within one batch the last one wins.
        let batch = last_of_each(messages, |m| m.id.as_str());
        self.store_message_batch(&batch, opts.again).await?;
        Ok(())
    }

    /// Runs a raw `sql` statement: prepared once per connection and cached;
    /// each value converted to its parameter's type; rows read back as
    /// values (see the crate docs for the type mapping).
    async fn execute(&self, statement: &Statement) -> BackendResult<Vec<Row>> {
        let (text, params) = statement.query("pgsql", "sql")?;
        Ok(self.execute_sql(text, params).await?)
    }

    async fn ping(&self) -> BackendResult<()> {
        let client = self.client("ping").await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(self.pg("ping"))?;
        Ok(())
    }

    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        // Bounded steps: no single huge transaction, and writers waiting
        // on the rows get in between steps.
        const STEP: i64 = 10_000;
        let before = PgTime(before);
        let mut removed = 0;
        loop {
            let n = self
                .run(
                    "remove_messages_before",
                    sql::REMOVE_MESSAGES_BEFORE,
                    &[&before, &STEP],
                )
                .await?;
            removed += n;
            if n < STEP as u64 {
                return Ok(removed);
            }
        }
    }

    async fn fetch_messages(&self, request: &FetchRequest) -> BackendResult<Vec<Message>> {
        let target = topic_match(&request.filter);
        if target == TopicMatch::Nothing {
            return Ok(Vec::new());
        }
        let since = request.since.map(PgTime);
        // A page without a count limit is read oldest first and stops
        // there; otherwise the newest `max_count`, of which the oldest
        // `page` are kept below.
        let oldest = request.oldest_first_limit();
        let max = limit(oldest.or(request.max_count));
        let pubsub = request.mode == OfflineMode::Pubsub;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&since, &max];
        if pubsub {
            params.push(&request.client_id);
            params.push(&request.filter);
        }
        let sql = match &target {
            TopicMatch::Nothing => return Ok(Vec::new()),
            TopicMatch::Exact(topic) => {
                params.push(topic);
                sql::fetch(pubsub, sql::Shape::Exact, oldest.is_some())
            }
            TopicMatch::Wildcard(Wildcard::Range { from, to, regex }) => {
                params.extend([from as &(dyn ToSql + Sync), to, regex]);
                sql::fetch(pubsub, sql::Shape::Range, oldest.is_some())
            }
            TopicMatch::Wildcard(Wildcard::Scan { regex }) => {
                params.push(regex);
                sql::fetch(pubsub, sql::Shape::Scan, oldest.is_some())
            }
        };
        let rows = self.rows("fetch_messages", sql, &params).await?;
        // Newest first from the database for LIMIT, unless read oldest
        // first; oldest first out.
        let ordered: Box<dyn Iterator<Item = _>> = if oldest.is_some() {
            Box::new(rows.iter())
        } else {
            Box::new(rows.iter().rev())
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in ordered {
            let m = message(row, "mqtt_msg", true)?;
            if matches(&request.filter, &m.topic) {
                out.push(m);
            } else {
                tracing::warn!(filter = %request.filter, topic = %m.topic, "the database returned a topic the filter does not match; skipped");
            }
        }
        if let Some(page) = request.page {
            out.truncate(page);
        }
        Ok(out)
    }

    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()> {
        if acks.is_empty() {
            return Ok(());
        }
        match mode {
            OfflineMode::Queue => {
                let ids: Vec<&str> = acks.iter().map(|a| a.message_id.as_str()).collect();
                self.run("ack_messages", sql::ACK_QUEUE, &[&ids]).await?;
            }
            OfflineMode::Pubsub => {
                let clients: Vec<&str> = acks.iter().map(|a| a.client_id.as_str()).collect();
                let topics: Vec<&str> = acks.iter().map(|a| a.topic.as_str()).collect();
                let ids: Vec<&str> = acks.iter().map(|a| a.message_id.as_str()).collect();
                self.run("ack_messages", sql::ACK_PUBSUB, &[&clients, &topics, &ids])
                    .await?;
            }
        }
        Ok(())
    }

    async fn store_retained(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut batch = last_of_each(messages, |m| m.topic.as_str());
        // Distinct topics: their order does not matter, and a fixed order
        // keeps concurrent batches from deadlocking on each other's rows.
        batch.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
        let topics: Vec<&str> = batch.iter().map(|m| m.topic.as_str()).collect();
        let ids: Vec<&str> = batch.iter().map(|m| m.id.as_str()).collect();
        let senders: Vec<&str> = batch.iter().map(|m| m.sender.as_str()).collect();
        let qos: Vec<i32> = batch.iter().map(|m| i32::from(m.qos.as_u8())).collect();
        let payloads: Vec<&[u8]> = batch.iter().map(|m| &m.payload[..]).collect();
        let arrived: Vec<PgTime> = batch.iter().map(|m| PgTime(m.timestamp)).collect();
        let props: Vec<Option<Vec<u8>>> = batch.iter().map(|m| m.stored_properties()).collect();
        self.run(
            "store_retained",
            sql::STORE_RETAINED,
            &[&topics, &ids, &senders, &qos, &payloads, &arrived, &props],
        )
        .await?;
        Ok(())
    }

    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()> {
        if topics.is_empty() {
            return Ok(());
        }
        self.run("delete_retained", sql::DELETE_RETAINED, &[&topics])
            .await?;
        Ok(())
    }

    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>> {
        let target = topic_match(filter);
        let rows = match &target {
            TopicMatch::Nothing => return Ok(Vec::new()),
            TopicMatch::Exact(topic) => {
                self.rows("lookup_retained", sql::RETAINED_EXACT, &[topic])
                    .await?
            }
            TopicMatch::Wildcard(Wildcard::Range { from, to, regex }) => {
                self.rows("lookup_retained", sql::RETAINED_RANGE, &[from, to, regex])
                    .await?
            }
            TopicMatch::Wildcard(Wildcard::Scan { regex }) => {
                self.rows("lookup_retained", sql::RETAINED_SCAN, &[regex])
                    .await?
            }
        };
        Ok(decode_matching(filter, &rows, |row| {
            message(row, "mqtt_retain", false)
        })?)
    }
}
