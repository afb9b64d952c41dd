//! The [`Backend`] trait on [`CassaBackend`]: each operation in terms of the
//! statements and helpers of the parent module.

use super::*;

#[async_trait]
impl Backend for CassaBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("cassa", crate::KIND.spec().capabilities)
    }

    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.cql()
            .exec(
                "client_online",
                cql::ONLINE,
                vec![
                    text(&client.client_id),
                    text(&client.node),
                    CqlValue::from(at.as_millis()),
                ],
            )
            .await?;
        Ok(())
    }

    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.cql()
            .exec(
                "client_offline",
                cql::OFFLINE,
                vec![
                    text(&client.node),
                    CqlValue::from(at.as_millis()),
                    text(&client.client_id),
                ],
            )
            .await?;
        Ok(())
    }

    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        const CTX: &str = "client";
        let (_, rows) = self
            .cql()
            .exec("client_status", cql::STATUS, vec![text(client_id)])
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(ClientStatus {
            client_id: client_id.to_owned(),
            online: col::<i32>(r, 1, CTX)?.unwrap_or(0) == 1,
            node: col::<String>(r, 0, CTX)?.unwrap_or_default(),
            online_at: col::<i64>(r, 2, CTX)?.map(Timestamp::from_millis),
            offline_at: col::<i64>(r, 3, CTX)?.map(Timestamp::from_millis),
        }))
    }

    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>> {
        let (_, rows) = self
            .cql()
            .exec(
                "lookup_subscriptions",
                cql::SUBSCRIPTIONS,
                vec![text(client_id)],
            )
            .await?;
        Ok(rows.iter().map(subscription).collect::<Result<_, _>>()?)
    }

    async fn store_subscriptions(
        &self,
        client_id: &str,
        subscriptions: &[Subscription],
    ) -> BackendResult<()> {
        let statements = subscriptions
            .iter()
            .map(|s| {
                (
                    cql::STORE_SUBSCRIPTION,
                    vec![text(client_id), text(&s.filter), qos_value(s.qos)],
                    s.filter.len() + 16,
                )
            })
            .collect();
        Ok(self.batches("store_subscriptions", statements).await?)
    }

    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        let statements = filters
            .iter()
            .map(|f| {
                (
                    cql::DELETE_SUBSCRIPTION,
                    vec![text(client_id), text(f)],
                    f.len() + 16,
                )
            })
            .collect();
        Ok(self.batches("delete_subscriptions", statements).await?)
    }

    async fn store_messages(
        &self,
        messages: &[Message],
        options: WriteOptions,
    ) -> BackendResult<()> {
        // Rows are keyed by their place in the topic: an id twice in the
        // batch is stored once, at its last place.
        let messages = last_of_each(messages, |m| m.id.as_str());
        // Numbers in slice order, so a batch keeps its order across topics;
        // registered in flight until every write has returned.
        let in_flight = sequence::allocate(messages.iter().map(|m| m.topic.as_str()));
        let mut by_topic: BTreeMap<&str, Vec<(&Message, i64)>> = BTreeMap::new();
        for (m, seq) in messages.iter().zip(in_flight.seqs()) {
            by_topic.entry(m.topic.as_str()).or_default().push((m, seq));
        }
        let topics: Vec<&str> = by_topic.keys().copied().collect();
        self.index(false, &topics).await?;
        try_join_all(
            by_topic
                .iter()
                .map(|(t, msgs)| self.store_topic(t, msgs, options.again)),
        )
        .await?;
        drop(in_flight);
        Ok(())
    }

    async fn fetch_messages(&self, req: &FetchRequest) -> BackendResult<Vec<Message>> {
        let after = match req.mode {
            OfflineMode::Queue => i64::MIN,
            OfflineMode::Pubsub => match self.start(&req.client_id, &req.filter).await? {
                None => return Ok(Vec::new()),
                Some(start) => start - 1,
            },
        };
        let topics = self.topics(false, &req.filter).await?;
        // A page without a count limit needs at most its size from each
        // topic (rows are in store order); the merge below keeps the
        // oldest of them.
        let page = req
            .oldest_first_limit()
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let per_topic = try_join_all(topics.iter().map(|topic| async move {
            let after = match req.mode {
                OfflineMode::Queue => after,
                OfflineMode::Pubsub => {
                    let (_, rows) = self
                        .cql()
                        .exec(
                            "fetch_messages",
                            cql::ACKED,
                            vec![text(&req.client_id), text(topic)],
                        )
                        .await?;
                    let acked = match rows.first() {
                        Some(r) => col::<i64>(r, 0, "acked")?,
                        None => None,
                    };
                    after.max(acked.unwrap_or(i64::MIN))
                }
            };
            // Pubsub never reads past a write still in flight on the topic
            // (see `sequence`): an ack would mark it read. Queue mode has
            // no read position to protect, so a write hanging on a server
            // that went away never holds its reads back.
            let ceiling = match req.mode {
                OfflineMode::Pubsub => sequence::ceiling(topic),
                _ => i64::MAX,
            };
            let mut values = vec![text(topic), CqlValue::from(after), CqlValue::from(ceiling)];
            let statement = match page {
                Some(n) => {
                    values.push(CqlValue::from(n));
                    cql::MESSAGES_PAGE
                }
                None => cql::MESSAGES,
            };
            let (_, rows) = self.cql().exec("fetch_messages", statement, values).await?;
            rows.iter()
                .map(|r| message_row(topic, r))
                .collect::<Result<Vec<_>, CassaError>>()
        }))
        .await?;
        let mut all: Vec<(i64, Message)> = per_topic.into_iter().flatten().collect();
        all.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        Ok(apply_limits(all.into_iter().map(|(_, m)| m).collect(), req))
    }

    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()> {
        let seqs = try_join_all(acks.iter().map(|a| self.seq_of(&a.topic, &a.message_id))).await?;
        match mode {
            OfflineMode::Queue => {
                let mut statements = Vec::new();
                for (a, seq) in acks.iter().zip(seqs) {
                    let Some(seq) = seq else { continue };
                    statements.push((
                        cql::DELETE_MESSAGE,
                        vec![text(&a.topic), CqlValue::from(seq), text(&a.message_id)],
                        a.topic.len() + a.message_id.len() + 16,
                    ));
                    statements.push((
                        cql::DELETE_MESSAGE_SEQ,
                        vec![text(&a.topic), text(&a.message_id)],
                        a.topic.len() + a.message_id.len() + 8,
                    ));
                }
                self.batches("ack_messages", statements).await?;
            }
            OfflineMode::Pubsub => {
                // The furthest position per client and topic; a position
                // never moves back.
                let mut furthest: BTreeMap<(&str, &str), (i64, &str)> = BTreeMap::new();
                for (a, seq) in acks.iter().zip(seqs) {
                    let Some(seq) = seq else { continue };
                    let e = furthest
                        .entry((a.client_id.as_str(), a.topic.as_str()))
                        .or_insert((seq, a.message_id.as_str()));
                    if seq > e.0 {
                        *e = (seq, a.message_id.as_str());
                    }
                }
                try_join_all(
                    furthest
                        .into_iter()
                        .map(|((client, topic), (seq, id))| async move {
                            let (_, rows) = self
                                .cql()
                                .exec("ack_messages", cql::ACKED, vec![text(client), text(topic)])
                                .await?;
                            let current = match rows.first() {
                                Some(r) => col::<i64>(r, 0, "acked")?,
                                None => None,
                            };
                            if current.is_some_and(|c| c >= seq) {
                                return Ok::<_, CassaError>(());
                            }
                            self.cql()
                                .exec(
                                    "ack_messages",
                                    cql::SET_ACKED,
                                    vec![text(client), text(topic), text(id), CqlValue::from(seq)],
                                )
                                .await?;
                            Ok(())
                        }),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn store_retained(
        &self,
        messages: &[Message],
        _options: WriteOptions,
    ) -> BackendResult<()> {
        let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
        self.index(true, &topics).await?;
        // In order: the last message of a topic wins.
        for m in messages {
            self.cql()
                .exec(
                    "store_retained",
                    cql::STORE_RETAINED,
                    vec![
                        text(&m.topic),
                        text(&m.id),
                        text(&m.sender),
                        opt_text(m.username.as_deref(), Absent::Null),
                        qos_value(m.qos),
                        CqlValue::from(Blob::new(m.payload.to_vec())),
                        CqlValue::from(m.timestamp.as_millis()),
                        props_value(m, Absent::Null),
                    ],
                )
                .await?;
        }
        Ok(())
    }

    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()> {
        for t in topics {
            self.cql()
                .exec("delete_retained", cql::DELETE_RETAINED, vec![text(t)])
                .await?;
            self.cql()
                .exec(
                    "delete_retained",
                    cql::UNINDEX_RETAINED_TOPIC,
                    vec![text(&root(t)), text(t)],
                )
                .await?;
            self.unindexed(t);
        }
        Ok(())
    }

    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>> {
        let topics = self.topics(true, filter).await?;
        let found = try_join_all(topics.iter().map(|t| async move {
            let (_, rows) = self
                .cql()
                .exec("lookup_retained", cql::RETAINED, vec![text(t)])
                .await?;
            rows.first().map(retained_row).transpose()
        }))
        .await?;
        let mut msgs: Vec<Message> = found.into_iter().flatten().collect();
        msgs.sort_by(|a, b| a.topic.cmp(&b.topic));
        Ok(msgs)
    }

    async fn execute(&self, statement: &Statement) -> BackendResult<Vec<Row>> {
        let (text, params) = statement.query("cassa", "cql")?;
        Ok(self.execute_cql(text, params).await?)
    }

    async fn ping(&self) -> BackendResult<()> {
        self.cql().exec("ping", cql::PING, Vec::new()).await?;
        Ok(())
    }

    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        // Every indexed topic, those under `$` included.
        let (_, roots) = self
            .cql()
            .exec("remove_messages_before", cql::MESSAGE_ROOTS, Vec::new())
            .await?;
        let mut all: Vec<String> = Vec::new();
        for r in &roots {
            let root: String = required(r, 0, "topic index")?;
            let (_, rows) = self
                .cql()
                .exec(
                    "remove_messages_before",
                    cql::MESSAGE_TOPICS,
                    vec![text(&root)],
                )
                .await?;
            for t in &rows {
                all.push(required(t, 0, "topic index")?);
            }
        }
        let mut removed = 0u64;
        for topic in &all {
            let (_, rows) = self
                .cql()
                .exec(
                    "remove_messages_before",
                    cql::MESSAGE_TIMES,
                    vec![text(topic)],
                )
                .await?;
            let mut statements = Vec::new();
            for r in &rows {
                let arrived = col::<i64>(r, 2, "msg")?.unwrap_or(0);
                if arrived >= before.as_millis() {
                    continue;
                }
                let seq: i64 = required(r, 0, "msg")?;
                let id: String = required(r, 1, "msg")?;
                statements.push((
                    cql::DELETE_MESSAGE,
                    vec![text(topic), CqlValue::from(seq), text(&id)],
                    topic.len() + id.len() + 16,
                ));
                statements.push((
                    cql::DELETE_MESSAGE_SEQ,
                    vec![text(topic), text(&id)],
                    topic.len() + id.len() + 8,
                ));
                removed += 1;
            }
            self.batches("remove_messages_before", statements).await?;
        }
        Ok(removed)
    }
}
