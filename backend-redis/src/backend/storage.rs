//! The [`Backend`] trait on [`RedisBackend`]: each operation in terms of the
//! statements and helpers of the parent module.

use super::*;

#[async_trait]
impl Backend for RedisBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new("redis", crate::KIND.spec().capabilities)
    }

    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        #[cfg(feature = "cluster")]
        if let Some(c) = self.cluster() {
            return Ok(c.client_online(client, at).await?);
        }
        let mut inv = scripts::CLIENT_ONLINE.prepare_invoke();
        inv.key(keys::client(&client.client_id))
            .key(keys::node(&client.node))
            .arg(&client.client_id)
            .arg(at.as_secs())
            .arg(&client.node)
            .arg(keys::NODE_PREFIX);
        let inv = &inv;
        self.run("client_online", true, |mut c| async move {
            inv.invoke_async::<()>(&mut c).await
        })
        .await?;
        Ok(())
    }

    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        #[cfg(feature = "cluster")]
        if let Some(c) = self.cluster() {
            return Ok(c.client_offline(client, at).await?);
        }
        let key = keys::client(&client.client_id);
        let mut p = redis::pipe();
        p.atomic()
            .hset_multiple(
                &key,
                &[
                    ("state", "0".to_owned()),
                    ("offline_at", at.as_secs().to_string()),
                ],
            )
            .ignore()
            .hset_nx(&key, "node", &client.node)
            .ignore()
            .hdel(keys::node(&client.node), &client.client_id)
            .ignore();
        let p = &p;
        self.run("client_offline", true, |mut c| async move {
            p.query_async::<()>(&mut c).await
        })
        .await?;
        Ok(())
    }

    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        let key = keys::client(client_id);
        let k = &key;
        let h: HashMap<String, Vec<u8>> = self
            .run("client_status", true, |mut c| async move {
                redis::cmd("HGETALL").arg(k).query_async(&mut c).await
            })
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        let data = |message: String| -> BackendError {
            RedisError::Data {
                pool: self.pool().to_owned(),
                operation: "client_status",
                key: key.clone(),
                message,
            }
            .into()
        };
        let online = match h.get("state").map(|v| v.as_slice()) {
            Some(b"1") => true,
            Some(b"0") | None => false,
            Some(other) => {
                return Err(data(format!(
                    "field `state` is `{}`, not 1 or 0",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        let online_at =
            parse_secs(h.get("online_at")).map_err(|m| data(format!("field `online_at` {m}")))?;
        let offline_at =
            parse_secs(h.get("offline_at")).map_err(|m| data(format!("field `offline_at` {m}")))?;
        Ok(Some(ClientStatus {
            client_id: client_id.to_owned(),
            online,
            node: h
                .get("node")
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default(),
            online_at,
            offline_at,
        }))
    }

    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>> {
        let key = keys::sub(client_id);
        let k = &key;
        let h: Vec<(Vec<u8>, Vec<u8>)> = self
            .run("lookup_subscriptions", true, |mut c| async move {
                redis::cmd("HGETALL").arg(k).query_async(&mut c).await
            })
            .await?;
        let mut subs = Vec::with_capacity(h.len());
        for (f, q) in h {
            let filter = String::from_utf8(f).map_err(|_| {
                BackendError::from(RedisError::Data {
                    pool: self.pool().to_owned(),
                    operation: "lookup_subscriptions",
                    key: key.clone(),
                    message: "has a topic that is not UTF-8".into(),
                })
            })?;
            let q_text = String::from_utf8_lossy(&q).trim().to_owned();
            let qos = q_text
                .parse::<u8>()
                .ok()
                .and_then(|n| QoS::try_from(n).ok())
                .ok_or_else(|| {
                    BackendError::from(RedisError::Data {
                        pool: self.pool().to_owned(),
                        operation: "lookup_subscriptions",
                        key: key.clone(),
                        message: format!("gives `{filter}` the QoS `{q_text}`, not 0, 1 or 2"),
                    })
                })?;
            subs.push(Subscription::new(filter, qos));
        }
        subs.sort_by(|a, b| a.filter.cmp(&b.filter));
        Ok(subs)
    }

    async fn store_subscriptions(
        &self,
        client_id: &str,
        subscriptions: &[Subscription],
    ) -> BackendResult<()> {
        if subscriptions.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(keys::sub(client_id));
        for s in subscriptions {
            cmd.arg(&s.filter).arg(s.qos.as_u8());
        }
        let cmd = &cmd;
        self.run("store_subscriptions", true, |mut c| async move {
            cmd.query_async::<()>(&mut c).await
        })
        .await?;
        Ok(())
    }

    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        if filters.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(keys::sub(client_id)).arg(filters);
        let cmd = &cmd;
        self.run("delete_subscriptions", true, |mut c| async move {
            cmd.query_async::<()>(&mut c).await
        })
        .await?;
        Ok(())
    }

    async fn store_messages(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        #[cfg(feature = "cluster")]
        if let Some(c) = self.cluster() {
            return Ok(c.store_messages(messages).await?);
        }
        let mut call = ScriptCmd::new(&scripts::STORE_MESSAGES, 2 + 2 * messages.len());
        call.arg(keys::msg_seq()).arg(keys::msg_topics());
        // One buffer for the keys: each is copied into the command.
        let mut key = Vec::with_capacity(64);
        for m in messages {
            call.arg(keys::prefixed(&mut key, keys::MSG_PREFIX, &m.id));
            call.arg(keys::prefixed(&mut key, keys::MSG_PREFIX, &m.topic));
        }
        call.arg(self.inner.settings.expire_secs())
            .arg(keys::MSG_PREFIX);
        for m in messages {
            hash_args(m, |v| {
                call.arg(v);
            });
        }
        let call = &call;
        self.run("store_messages", true, |mut c| async move {
            call.run::<()>(&mut c).await
        })
        .await?;
        Ok(())
    }

    async fn ping(&self) -> BackendResult<()> {
        self.run("ping", false, |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await?;
        Ok(())
    }

    /// Walks the topic index a page at a time, sweeping each page's topics
    /// from the front of their sets (see `lua/sweep_messages.lua`). Redis
    /// also expires every message after `msg.expired_after`; this removes
    /// what `time_range` already hides, and the index members expiry left.
    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        const OP: &str = "remove_messages_before";
        const PAGE: usize = 200;
        const BUDGET: u64 = 10_000;
        let cut = before.as_secs();
        let mut removed = 0;
        let mut from = b"-".to_vec();
        loop {
            let page: Vec<Vec<u8>> = self
                .run(OP, true, |mut c| {
                    let from = &from;
                    async move {
                        redis::cmd("ZRANGEBYLEX")
                            .arg(keys::msg_topics())
                            .arg(from)
                            .arg("+")
                            .arg("LIMIT")
                            .arg(0)
                            .arg(PAGE)
                            .query_async(&mut c)
                            .await
                    }
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(removed);
            };
            #[cfg(feature = "cluster")]
            if let Some(c) = self.cluster() {
                let topics: Vec<String> = page
                    .iter()
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .collect();
                loop {
                    let (n, more) = c.sweep_page(&topics, cut, BUDGET).await?;
                    removed += n;
                    if !more {
                        break;
                    }
                }
                if page.len() < PAGE {
                    return Ok(removed);
                }
                from = [b"(", last.as_slice()].concat();
                continue;
            }
            loop {
                let mut inv = scripts::SWEEP_MESSAGES.prepare_invoke();
                inv.key(keys::msg_topics())
                    .arg(keys::MSG_PREFIX)
                    .arg(cut)
                    .arg(BUDGET);
                for t in &page {
                    inv.arg(t);
                }
                let inv = &inv;
                let (n, left): (u64, u64) = self
                    .run(
                        OP,
                        true,
                        |mut c| async move { inv.invoke_async(&mut c).await },
                    )
                    .await?;
                removed += n;
                if left > 0 {
                    break;
                }
            }
            if page.len() < PAGE {
                return Ok(removed);
            }
            from = [b"(", last.as_slice()].concat();
        }
    }

    async fn fetch_messages(&self, req: &FetchRequest) -> BackendResult<Vec<Message>> {
        let topics = self.message_topics(&req.filter).await?;
        #[cfg(feature = "cluster")]
        if let Some(c) = self.cluster() {
            return Ok(c.fetch_messages(req, topics).await?);
        }
        let filter = strip_shared(&req.filter);
        let mut inv = scripts::FETCH_MESSAGES.prepare_invoke();
        inv.key(keys::acked(&req.client_id, filter))
            .key(keys::msg_seq())
            .key(keys::msg_topics())
            .arg(match req.mode {
                OfflineMode::Queue => "queue",
                OfflineMode::Pubsub => "pubsub",
            })
            .arg(
                req.since
                    .map(|t| t.as_millis().to_string())
                    .unwrap_or_default(),
            )
            .arg(req.max_count.map(|n| n.to_string()).unwrap_or_default())
            .arg(req.page.map(|n| n.to_string()).unwrap_or_default())
            .arg(keys::MSG_PREFIX);
        for t in &topics {
            inv.key(keys::msg_topic(t))
                .key(keys::acked(&req.client_id, t));
        }
        for t in &topics {
            inv.arg(t);
        }
        let inv = &inv;
        let reply: Vec<redis::Value> = self
            .run("fetch_messages", true, |mut c| async move {
                inv.invoke_async(&mut c).await
            })
            .await?;
        let mut out = Vec::with_capacity(reply.len() / 9);
        let mut it = reply.into_iter();
        while let Some(member) = it.next() {
            let member = bytes_of(member);
            let fields: Vec<Vec<u8>> = it.by_ref().take(8).map(bytes_of).collect();
            match decode_message(Some(member.clone()), fields) {
                Ok(m) => out.push(m),
                Err(e) => warn!(
                    pool = %self.pool(),
                    key = %String::from_utf8_lossy(&[keys::MSG_PREFIX.as_bytes(), &member].concat()),
                    error = %e,
                    "redis: skipping a stored message that cannot be read"
                ),
            }
        }
        // Newest first, unless read as a page without a count limit.
        if req.oldest_first_limit().is_none() {
            out.reverse();
        }
        if let Some(page) = req.page {
            out.truncate(page);
        }
        Ok(out)
    }

    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()> {
        if acks.is_empty() {
            return Ok(());
        }
        #[cfg(feature = "cluster")]
        if let Some(c) = self.cluster() {
            return Ok(c.ack_messages(mode, acks).await?);
        }
        let inv = match mode {
            OfflineMode::Pubsub => {
                let mut inv = scripts::ACK_PUBSUB.prepare_invoke();
                for a in acks {
                    inv.key(keys::msg_topic(&a.topic))
                        .key(keys::acked(&a.client_id, &a.topic))
                        .arg(&a.message_id);
                }
                inv
            }
            OfflineMode::Queue => {
                let mut inv = scripts::ACK_QUEUE.prepare_invoke();
                inv.key(keys::msg_topics()).arg(keys::MSG_PREFIX);
                for a in acks {
                    inv.key(keys::msg(&a.message_id))
                        .key(keys::msg_topic(&a.topic))
                        .arg(&a.message_id)
                        .arg(&a.topic);
                }
                inv
            }
        };
        let inv = &inv;
        self.run("ack_messages", true, |mut c| async move {
            inv.invoke_async::<()>(&mut c).await
        })
        .await?;
        Ok(())
    }

    async fn store_retained(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        #[cfg(feature = "cluster")]
        if let Some(c) = self.cluster() {
            return Ok(c.store_retained(messages).await?);
        }
        let mut p = redis::pipe();
        p.atomic();
        for m in messages {
            let key = keys::retain(&m.topic);
            p.del(&key).ignore();
            let mut hset = redis::cmd("HSET");
            hset.arg(&key);
            for (f, v) in message_fields(m) {
                hset.arg(f).arg(v.as_ref());
            }
            p.add_command(hset).ignore();
            p.zadd(keys::retain_topics(), &m.topic, 0).ignore();
        }
        let p = &p;
        self.run("store_retained", true, |mut c| async move {
            p.query_async::<()>(&mut c).await
        })
        .await?;
        Ok(())
    }

    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()> {
        if topics.is_empty() {
            return Ok(());
        }
        #[cfg(feature = "cluster")]
        if let Some(c) = self.cluster() {
            return Ok(c.delete_retained(topics).await?);
        }
        let mut p = redis::pipe();
        p.atomic();
        for t in topics {
            p.del(keys::retain(t)).ignore();
        }
        p.zrem(keys::retain_topics(), topics).ignore();
        let p = &p;
        self.run("delete_retained", true, |mut c| async move {
            p.query_async::<()>(&mut c).await
        })
        .await?;
        Ok(())
    }

    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>> {
        let topics = self
            .topics_matching(filter, keys::retain_topics(), "lookup_retained")
            .await?;
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        #[cfg(feature = "cluster")]
        if let Some(c) = self.cluster() {
            return Ok(c.read_retained(topics).await?);
        }
        let mut p = redis::pipe();
        for t in &topics {
            p.cmd("HMGET").arg(keys::retain(t)).arg(&MESSAGE_FIELDS[..]);
        }
        let p = &p;
        let replies: Vec<Vec<Option<Vec<u8>>>> = self
            .run("lookup_retained", true, |mut c| async move {
                p.query_async(&mut c).await
            })
            .await?;
        let (out, gone) = decode_retained(self.pool(), topics, replies);
        if has_wildcards(filter) && !gone.is_empty() {
            // Index entries whose hash was deleted by hand: drop them.
            let mut inv = scripts::CLEAN_RETAIN_INDEX.prepare_invoke();
            inv.key(keys::retain_topics());
            for t in &gone {
                inv.key(keys::retain(t)).arg(t);
            }
            let inv = &inv;
            if let Err(e) = self
                .run("lookup_retained", false, |mut c| async move {
                    inv.invoke_async::<()>(&mut c).await
                })
                .await
            {
                warn!(pool = %self.pool(), error = %e, "redis: cannot clean the retained index");
            }
        }
        Ok(out)
    }

    /// Sends the command as one request, each argument its own bulk string,
    /// and returns one row of the reply's elements (nil `Null`, integer
    /// `Int`, bulk `Bytes`, status `Text`, arrays flattened), as
    /// [`backend_core::MemoryBackend`] does. Commands that change the state
    /// of a shared connection (`SELECT`, `MULTI`, `SUBSCRIBE`, ...) are
    /// refused; SQL/CQL is not run.
    async fn execute(&self, statement: &Statement) -> BackendResult<Vec<Row>> {
        let args = match statement {
            Statement::Command { args } => args,
            Statement::Query { .. } => {
                return Err(RedisError::Unsupported {
                    pool: self.pool().to_owned(),
                    message: "the redis backend runs Redis commands, not SQL or CQL".into(),
                }
                .into())
            }
        };
        let Some((name, rest)) = args.split_first() else {
            return Err(RedisError::Unsupported {
                pool: self.pool().to_owned(),
                message: "empty command".into(),
            }
            .into());
        };
        let upper = String::from_utf8_lossy(name).to_ascii_uppercase();
        if changes_connection_state(&upper, rest) {
            return Err(RedisError::Unsupported {
                pool: self.pool().to_owned(),
                message: format!(
                    "`{upper}` would change a connection other callers share; it is not run"
                ),
            }
            .into());
        }
        let mut cmd = redis::Cmd::new();
        cmd.arg(name.as_ref());
        for a in rest {
            cmd.arg(a.as_ref());
        }
        let cmd = &cmd;
        let reply: redis::Value = self
            .run("execute", false, |mut c| async move {
                cmd.query_async(&mut c).await
            })
            .await?;
        let mut row = Row::new();
        flatten(reply, &mut row).map_err(|message| RedisError::Data {
            pool: self.pool().to_owned(),
            operation: "execute",
            key: upper.clone(),
            message: format!("replied with an error inside its reply: {message}"),
        })?;
        Ok(vec![row])
    }
}
