//! The [`Backend`] trait on [`MysqlBackend`]: each operation in terms of the
//! statements and helpers of the parent module.

use super::*;

#[async_trait]
impl Backend for MysqlBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("mysql", crate::KIND.spec().capabilities)
    }

    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        let at = self.bind_time(sql::CLIENT_ONLINE, 3, at)?;
        self.run(
            "client_online",
            sql::CLIENT_ONLINE,
            vec![bytes(&client.client_id), bytes(&client.node), at],
        )
        .await?;
        Ok(())
    }

    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        let at = self.bind_time(sql::CLIENT_OFFLINE, 3, at)?;
        self.run(
            "client_offline",
            sql::CLIENT_OFFLINE,
            vec![bytes(&client.client_id), bytes(&client.node), at],
        )
        .await?;
        Ok(())
    }

    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        let rows = self
            .rows("client_status", sql::CLIENT_STATUS, vec![bytes(client_id)])
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut row = MyRow::new(row, "mqtt_client");
        Ok(Some(ClientStatus::from_row(client_id, &mut row)?))
    }

    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>> {
        let rows = self
            .rows(
                "lookup_subscriptions",
                sql::LOOKUP_SUBSCRIPTIONS,
                vec![bytes(client_id)],
            )
            .await?;
        let subs: Result<_, MysqlError> = rows.into_iter().map(subscription).collect();
        Ok(subs?)
    }

    async fn store_subscriptions(
        &self,
        client_id: &str,
        subscriptions: &[Subscription],
    ) -> BackendResult<()> {
        self.batch(
            "store_subscriptions",
            false,
            subscriptions,
            |s| s.filter.len() + client_id.len(),
            sql::store_subscriptions,
            |s, v| {
                v.extend([
                    bytes(client_id),
                    bytes(&s.filter),
                    MyValue::Int(i64::from(s.qos.as_u8())),
                ]);
                Ok(())
            },
        )
        .await?;
        Ok(())
    }

    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        for chunk in filters.chunks(MAX_BATCH_ROWS) {
            let mut v = vec![bytes(client_id)];
            v.extend(chunk.iter().map(|f| bytes(f)));
            self.run(
                "delete_subscriptions",
                &sql::delete_subscriptions(chunk.len()),
                v,
            )
            .await?;
        }
        Ok(())
    }

    async fn store_messages(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        if !self.loads() {
            return Ok(self.replace_messages(messages).await?);
        }
        match self.load_messages(messages).await? {
            Loaded::Stored => {
                self.inner.warned_loads.store(0, Ordering::Relaxed);
                Ok(())
            }
            Loaded::Refused => Ok(self.replace_messages(messages).await?),
            Loaded::Failed(e) => {
                self.replace_messages(messages).await?;
                // The statements stored what the load could not: the
                // load is what fails, not these rows.
                self.stop_loading(&format!(
                    "LOAD DATA failed where REPLACE statements stored the same rows ({e})"
                ));
                Ok(())
            }
            Loaded::Warned => {
                self.replace_messages(messages).await?;
                // The statements took rows the load only warned about. If
                // flush after flush does that (a schema of the user's, say),
                // loading costs each one a wasted round trip: stop.
                let warned = self.inner.warned_loads.fetch_add(1, Ordering::Relaxed) + 1;
                if warned >= WARNED_LOADS_BEFORE_STOPPING {
                    self.stop_loading(&format!(
                        "LOAD DATA warned about {warned} flushes in a row that REPLACE statements stored"
                    ));
                }
                Ok(())
            }
        }
    }

    /// Runs a raw `sql` statement with `?` placeholders: prepared once per
    /// connection and cached; each value bound as a parameter; rows read
    /// back as values (see the crate docs for the type mapping).
    async fn execute(&self, statement: &Statement) -> BackendResult<Vec<Row>> {
        let (text, params) = statement.query("mysql", "sql")?;
        Ok(self.execute_sql(text, params).await?)
    }

    async fn ping(&self) -> BackendResult<()> {
        let mut conn = self.conn("ping").await?;
        conn.ping().await.map_err(self.my("ping"))?;
        Ok(())
    }

    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        const OP: &str = "remove_messages_before";
        // Bounded steps: no single huge transaction, and writers waiting
        // on the rows get in between steps.
        const STEP: u64 = 10_000;
        let before = self.bind_time(sql::REMOVE_MESSAGES_BEFORE, 1, before)?;
        let mut conn = self.conn(OP).await?;
        let mut removed = 0;
        loop {
            conn.exec_drop(
                sql::REMOVE_MESSAGES_BEFORE,
                params(vec![before.clone(), MyValue::UInt(STEP)]),
            )
            .await
            .map_err(self.my(OP))?;
            let n = conn.affected_rows();
            removed += n;
            if n < STEP {
                return Ok(removed);
            }
        }
    }

    async fn fetch_messages(&self, request: &FetchRequest) -> BackendResult<Vec<Message>> {
        let target = topic_match(&request.filter);
        if target == TopicMatch::Nothing {
            return Ok(Vec::new());
        }
        let pubsub = request.mode == OfflineMode::Pubsub;
        let op = "fetch_messages";
        let mut conn = self.conn(op).await?;
        let mut start = None;
        if pubsub {
            let key = vec![bytes(&request.client_id), bytes(&request.filter)];
            let row = query(&mut conn, sql::PUBSUB_START, key.clone())
                .await
                .map_err(self.my(op))?
                .into_iter()
                .next()
                .unwrap_or_default();
            match row.first().and_then(convert::int) {
                Some(s) => start = Some(s),
                None => {
                    // The first fetch of (client, filter): it starts after
                    // the newest message so far and returns nothing.
                    let newest = row.get(1).and_then(convert::int).unwrap_or(0);
                    let mut v = key;
                    v.push(MyValue::Int(newest));
                    conn.exec_drop(sql::MARK_START, params(v))
                        .await
                        .map_err(self.my(op))?;
                    return Ok(Vec::new());
                }
            }
        }
        let fetch = FetchQuery::new(request, &target, start);
        let mut values = Vec::with_capacity(fetch.params.len());
        for p in fetch.params {
            values.push(match p {
                FetchParam::ClientId(id) => bytes(&id),
                FetchParam::Topic(t) => MyValue::Bytes(t),
                FetchParam::StartId(id) => MyValue::Int(id),
                FetchParam::Since(since) => self.bind_time(&fetch.text, values.len() + 1, since)?,
                FetchParam::Limit(n) => MyValue::UInt(n),
            });
        }
        let mut rows = query(&mut conn, &fetch.text, values)
            .await
            .map_err(self.my(op))?;
        drop(conn);
        // Newest first from the database for LIMIT, unless read oldest
        // first; oldest first out.
        if !fetch.oldest_first {
            rows.reverse();
        }
        let exact = target.is_exact();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let m = message(row, "mqtt_msg", true)?;
            if matches(&request.filter, &m.topic) {
                out.push(m);
            } else if exact {
                tracing::warn!(filter = %request.filter, topic = %m.topic, "the database returned a topic the filter does not match; skipped");
            }
        }
        Ok(apply_limits(out, request))
    }

    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()> {
        if acks.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn("ack_messages").await?;
        for chunk in acks.chunks(MAX_BATCH_ROWS / 4) {
            let (text, v) = match mode {
                OfflineMode::Queue => (
                    sql::ack_queue(chunk.len()),
                    chunk.iter().map(|a| bytes(&a.message_id)).collect(),
                ),
                OfflineMode::Pubsub => (
                    sql::ack_pubsub(chunk.len()),
                    chunk
                        .iter()
                        .flat_map(|a| [bytes(&a.client_id), bytes(&a.topic), bytes(&a.message_id)])
                        .collect(),
                ),
            };
            conn.exec_drop(text, params(v))
                .await
                .map_err(self.my("ack_messages"))?;
        }
        Ok(())
    }

    async fn store_retained(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        // Topic order (stable, so the last of a topic still wins) keeps
        // concurrent batches from deadlocking on each other's rows.
        let mut batch: Vec<&Message> = messages.iter().collect();
        batch.sort_by(|a, b| a.topic.cmp(&b.topic));
        self.batch(
            "store_retained",
            false,
            &batch,
            |m| message_size(m),
            sql::store_retained,
            |m, v| {
                let arrived = self.bind_time("INSERT INTO mqtt_retain", 6, m.timestamp)?;
                v.extend([
                    bytes(&m.topic),
                    bytes(&m.id),
                    bytes(&m.sender),
                    MyValue::Int(i64::from(m.qos.as_u8())),
                    MyValue::Bytes(m.payload.to_vec()),
                    arrived,
                    m.stored_properties().map_or(MyValue::NULL, MyValue::Bytes),
                ]);
                Ok(())
            },
        )
        .await?;
        Ok(())
    }

    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()> {
        for chunk in topics.chunks(MAX_BATCH_ROWS) {
            self.run(
                "delete_retained",
                &sql::delete_retained(chunk.len()),
                chunk.iter().map(|t| bytes(t)).collect(),
            )
            .await?;
        }
        Ok(())
    }

    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>> {
        let target = topic_match(filter);
        if target == TopicMatch::Nothing {
            return Ok(Vec::new());
        }
        let (_, values) = target.condition("topic");
        let rows = self
            .rows(
                "lookup_retained",
                &sql::lookup_retained(&target),
                values.into_iter().map(MyValue::Bytes).collect(),
            )
            .await?;
        Ok(decode_matching(filter, rows, |row| {
            message(row, "mqtt_retain", false)
        })?)
    }
}
