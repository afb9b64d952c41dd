//! The [`Backend`] trait on [`MongoBackend`]: each operation in terms of the
//! statements and helpers of the parent module.

use super::*;

#[async_trait]
impl Backend for MongoBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("mongo", crate::KIND.spec().capabilities)
    }

    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        let online = doc! { "$set": {
            "state": 1,
            "node": &client.node,
            "online_at": secs(at),
            "offline_at": Bson::Null,
        } };
        Ok(self.set_client("client_online", client, online).await?)
    }

    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        let offline = doc! {
            "$set": { "state": 0, "offline_at": secs(at) },
            "$setOnInsert": { "node": &client.node, "online_at": Bson::Null },
        };
        Ok(self.set_client("client_offline", client, offline).await?)
    }

    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        let Some(d) = self
            .inner
            .clients
            .find_one(doc! { "clientid": client_id })
            .await
            .map_err(self.err("client_status"))?
        else {
            return Ok(None);
        };
        Ok(Some(ClientStatus {
            client_id: client_id.to_owned(),
            online: int(d.get("state")) == Some(1),
            node: text(&d, "node").unwrap_or_default(),
            online_at: int(d.get("online_at")).map(Timestamp::from_secs),
            offline_at: int(d.get("offline_at")).map(Timestamp::from_secs),
        }))
    }

    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>> {
        const OP: &str = "lookup_subscriptions";
        let docs: Vec<Document> = self
            .inner
            .subs
            .find(doc! { "clientid": client_id })
            .sort(doc! { "topic": 1 })
            .await
            .map_err(self.err(OP))?
            .try_collect()
            .await
            .map_err(self.err(OP))?;
        let mut subs = BTreeMap::new();
        for d in docs {
            let topic = text(&d, "topic")
                .ok_or_else(|| self.data(OP, "a subscription without a string topic".into()))?;
            let qos = int(d.get("qos"))
                .and_then(|q| u8::try_from(q).ok())
                .and_then(|q| QoS::try_from(q).ok())
                .ok_or_else(|| {
                    self.data(OP, format!("subscription {topic:?}: qos not 0, 1 or 2"))
                })?;
            subs.insert(topic.clone(), Subscription::new(topic, qos));
        }
        Ok(subs.into_values().collect())
    }

    async fn store_subscriptions(
        &self,
        client_id: &str,
        subscriptions: &[Subscription],
    ) -> BackendResult<()> {
        let writes = subscriptions.iter().map(|s| {
            self.upsert(
                "store_subscriptions",
                &self.inner.subs,
                doc! { "clientid": client_id, "topic": &s.filter },
                doc! { "$set": { "qos": i32::from(s.qos.as_u8()) } },
            )
        });
        futures::future::try_join_all(writes).await?;
        Ok(())
    }

    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        if filters.is_empty() {
            return Ok(());
        }
        self.inner
            .subs
            .delete_many(doc! { "clientid": client_id, "topic": { "$in": filters } })
            .await
            .map_err(self.err("delete_subscriptions"))?;
        Ok(())
    }

    async fn store_messages(
        &self,
        messages: &[Message],
        options: WriteOptions,
    ) -> BackendResult<()> {
        const OP: &str = "store_messages";
        if messages.is_empty() {
            return Ok(());
        }
        // The same id twice: the later replaces the earlier, as a store
        // of it after the batch would.
        let kept = last_of_each(messages, |m| m.id.as_str());
        let ids: Vec<&str> = kept.iter().map(|m| m.id.as_str()).collect();
        // Storing an id again replaces the message (with a new _id).
        self.inner
            .msgs
            .delete_many(doc! { "msgid": { "$in": &ids } })
            .await
            .map_err(self.err(OP))?;
        let mut topics: Vec<&str> = kept.iter().map(|m| m.topic.as_str()).collect();
        topics.sort_unstable();
        topics.dedup();
        let writer = self.register_writer(OP, topics).await?;
        let stored = self.insert_kept(&kept, options).await;
        // Unregister even when the insert failed: a reader waits for
        // registered writers. Should this fail too, readers ignore the
        // registration after WRITER_TIMEOUT_SECS.
        let unregistered = self.unregister_writer(OP, writer).await;
        stored?;
        unregistered?;
        Ok(())
    }

    async fn ping(&self) -> BackendResult<()> {
        self.database()
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(self.err("ping"))?;
        Ok(())
    }

    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        const OP: &str = "remove_messages_before";
        // Bounded steps (ids first, then a delete by id), so no single
        // delete runs over a huge backlog.
        const STEP: i64 = 10_000;
        // `arrived` is whole seconds: a message of second s arrived before
        // `before` only if s < before's second.
        let cut = before.as_secs();
        let mut removed = 0;
        loop {
            let ids: Vec<Bson> = self
                .inner
                .msgs
                .find(doc! { "arrived": { "$lt": cut } })
                .projection(doc! { "_id": 1 })
                .limit(STEP)
                .await
                .map_err(self.err(OP))?
                .try_collect::<Vec<Document>>()
                .await
                .map_err(self.err(OP))?
                .into_iter()
                .filter_map(|mut d| d.remove("_id"))
                .collect();
            if ids.is_empty() {
                break;
            }
            let n = ids.len();
            let r = self
                .inner
                .msgs
                .delete_many(doc! { "_id": { "$in": ids } })
                .await
                .map_err(self.err(OP))?;
            removed += r.deleted_count;
            if (n as i64) < STEP {
                break;
            }
        }
        // Registrations of writers that died long ago.
        self.inner
            .writers
            .delete_many(
                doc! { "at": { "$lt": Timestamp::now().as_secs() - 10 * WRITER_TIMEOUT_SECS } },
            )
            .await
            .map_err(self.err(OP))?;
        Ok(removed)
    }

    async fn fetch_messages(&self, req: &FetchRequest) -> BackendResult<Vec<Message>> {
        const OP: &str = "fetch_messages";
        let exact = !has_wildcards(&req.filter);
        let start = match req.mode {
            OfflineMode::Queue => 0,
            OfflineMode::Pubsub => match self.start_position(&req.client_id, &req.filter).await? {
                None => return Ok(Vec::new()),
                Some(s) => s,
            },
        };
        let mut query = match req.mode {
            OfflineMode::Queue => doc! { "_id": { "$gt": start } },
            // Never past a writer still in flight: its message would come
            // after an ack of a later one, which marks it read.
            OfflineMode::Pubsub => {
                let horizon = self.read_horizon(OP, &req.filter).await?;
                doc! { "_id": { "$gt": start, "$lte": horizon } }
            }
        };
        if let Some(t) = topic_condition(&req.filter) {
            query.insert("topic", t);
        }
        if let Some(since) = req.since {
            // Stored to the second: keep the whole second `since` falls in.
            query.insert("arrived", doc! { "$gte": since.as_secs() });
        }
        // For a filter without wildcards every document found is returned
        // (the start and the topic's ack are one position), so a limit
        // goes into the query: the newest `max_count`, or the oldest
        // `page`. Otherwise documents are read oldest first and checked;
        // a page stops the read once it is full.
        let oldest = req.oldest_first_limit();
        let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let newest = req.max_count.filter(|_| exact && oldest.is_none());
        let mut find = self.inner.msgs.find(query);
        find = match (newest, oldest) {
            (Some(n), _) => find.sort(doc! { "_id": -1 }).limit(to_i64(n)),
            (None, Some(n)) if exact => find.sort(doc! { "_id": 1 }).limit(to_i64(n)),
            _ => find.sort(doc! { "_id": 1 }),
        };
        // Pubsub on a wildcard: the client's read position on each topic.
        let floors: HashMap<String, i64> = if req.mode == OfflineMode::Pubsub && !exact {
            let acks: Vec<Document> = self
                .inner
                .acked
                .find(doc! { "clientid": &req.client_id })
                .await
                .map_err(self.err(OP))?
                .try_collect()
                .await
                .map_err(self.err(OP))?;
            acks.iter()
                .filter_map(|a| Some((text(a, "topic")?, int(a.get("mongo_id"))?)))
                .collect()
        } else {
            HashMap::new()
        };
        let mut cursor = find.await.map_err(self.err(OP))?;
        let mut msgs = Vec::new();
        while let Some(d) = cursor.try_next().await.map_err(self.err(OP))? {
            let m = self.message(OP, &d, None)?;
            if exact || matches(&req.filter, &m.topic) {
                let id = int(d.get("_id")).unwrap_or(0);
                if floors.get(&m.topic).is_none_or(|f| id > *f) {
                    msgs.push(m);
                }
            }
            if oldest.is_some_and(|n| msgs.len() >= n) {
                break;
            }
        }
        if newest.is_some() {
            msgs.reverse();
        }
        // `since` is in the query already (to the second, as stored).
        if let Some(max) = req.max_count {
            msgs.drain(..msgs.len().saturating_sub(max));
        }
        if let Some(page) = req.page {
            msgs.truncate(page);
        }
        Ok(msgs)
    }

    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()> {
        const OP: &str = "ack_messages";
        if acks.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = acks.iter().map(|a| a.message_id.as_str()).collect();
        match mode {
            OfflineMode::Queue => {
                self.inner
                    .msgs
                    .delete_many(doc! { "msgid": { "$in": &ids } })
                    .await
                    .map_err(self.err(OP))?;
            }
            OfflineMode::Pubsub => {
                let found: Vec<Document> = self
                    .inner
                    .msgs
                    .find(doc! { "msgid": { "$in": &ids } })
                    .projection(doc! { "_id": 1, "msgid": 1 })
                    .await
                    .map_err(self.err(OP))?
                    .try_collect()
                    .await
                    .map_err(self.err(OP))?;
                let by_id: HashMap<String, i64> = found
                    .iter()
                    .filter_map(|d| Some((text(d, "msgid")?, int(d.get("_id"))?)))
                    .collect();
                let mut positions: BTreeMap<(&str, &str), i64> = BTreeMap::new();
                for a in acks {
                    if let Some(id) = by_id.get(&a.message_id) {
                        let p = positions.entry((&a.client_id, &a.topic)).or_insert(0);
                        *p = (*p).max(*id);
                    }
                }
                for ((client, topic), id) in positions {
                    self.upsert(
                        OP,
                        &self.inner.acked,
                        doc! { "clientid": client, "topic": topic },
                        doc! { "$max": { "mongo_id": id } },
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    async fn store_retained(
        &self,
        messages: &[Message],
        options: WriteOptions,
    ) -> BackendResult<()> {
        // Only the last of each topic stays retained: one upsert per topic.
        for m in last_of_each(messages, |m| m.topic.as_str()) {
            let mut set = doc! {
                "msgid": &m.id,
                "sender": &m.sender,
                "qos": i32::from(m.qos.as_u8()),
            };
            let has_raw = Self::payload_fields(&mut set, m, options);
            set.insert("arrived", secs(m.timestamp));
            let has_props = put_properties(&mut set, m);
            let mut update = doc! { "$set": set };
            // What the replaced message had and this one has not goes.
            let mut unset = Document::new();
            if !has_raw {
                unset.insert(payload::RAW_FIELD, "");
            }
            if !has_props {
                unset.insert(PROPS_FIELD, "");
            }
            if !unset.is_empty() {
                update.insert("$unset", unset);
            }
            self.upsert(
                "store_retained",
                &self.inner.retain,
                doc! { "topic": &m.topic },
                update,
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()> {
        if topics.is_empty() {
            return Ok(());
        }
        self.inner
            .retain
            .delete_many(doc! { "topic": { "$in": topics } })
            .await
            .map_err(self.err("delete_retained"))?;
        Ok(())
    }

    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>> {
        const OP: &str = "lookup_retained";
        let mut query = Document::new();
        if let Some(t) = topic_condition(filter) {
            query.insert("topic", t);
        }
        let docs: Vec<Document> = self
            .inner
            .retain
            .find(query)
            .sort(doc! { "topic": 1 })
            .await
            .map_err(self.err(OP))?
            .try_collect()
            .await
            .map_err(self.err(OP))?;
        Ok(decode_matching(filter, &docs, |d| {
            self.message(OP, d, Some(true))
        })?)
    }

    /// MongoDB rules take built-in functions only (the configuration
    /// parser rejects raw actions for `mongo`): always an `Unsupported`
    /// error.
    async fn execute(&self, _statement: &Statement) -> BackendResult<Vec<Row>> {
        Err(MongoError::Unsupported(
            "MongoDB has no raw statements: its rules take built-in functions only",
        )
        .into())
    }
}
