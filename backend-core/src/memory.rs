//! [`MemoryBackend`]: a complete in-process backend. It is the embedded
//! default of the examples, a stand-in for a database in brokers' own tests,
//! and the reference the conformance suite is written against.
//!
//! Raw statements: Redis-style commands run against an in-memory key space
//! (strings, hashes, lists, sets; see [`MemoryBackend::execute`]). SQL and
//! CQL statements are not interpreted: they are recorded, with their bound
//! values, and can be read back with [`MemoryBackend::executed_queries`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;

use crate::backend::{
    apply_limits, Ack, Backend, BackendError, BackendInfo, BackendResult, Capabilities,
    ClientStatus, ErrorKind, FetchRequest, WriteOptions,
};
use crate::config::OfflineMode;
use crate::hook::ClientInfo;
use crate::message::{Message, Subscription, Timestamp};
use crate::template::Statement;
use crate::topic::{literal_prefix, matches};
use crate::value::{Row, Value};

/// An in-process backend; clones share one store.
///
/// ```
/// use backend_core::{Backend, MemoryBackend, Message, QoS};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let mem = MemoryBackend::new();
/// let m = Message::new("c", "a/b", QoS::AtLeastOnce, "x").retained(true);
/// mem.store_retained(&[m], Default::default()).await.unwrap();
/// assert_eq!(mem.lookup_retained("a/+").await.unwrap().len(), 1);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("MemoryBackend")
            .field("clients", &s.clients.len())
            .field("messages", &s.messages.len())
            .field("retained", &s.retained.len())
            .finish()
    }
}

#[derive(Default)]
struct State {
    clients: HashMap<String, ClientStatus>,
    subscriptions: HashMap<String, BTreeMap<String, Subscription>>,
    /// The last sequence number given to a message.
    seq: u64,
    messages: BTreeMap<u64, Message>,
    ids: HashMap<String, u64>,
    /// Sequence numbers of stored messages by topic; ordered for prefix scans.
    topics: BTreeMap<String, BTreeSet<u64>>,
    /// Pubsub positions: (client, filter) -> start, (client, topic) -> acked.
    positions: HashMap<(String, String), u64>,
    retained: BTreeMap<String, Message>,
    keys: HashMap<Bytes, Entry>,
    queries: VecDeque<(String, Vec<Value>)>,
}

enum Entry {
    Str(Bytes),
    Hash(BTreeMap<Bytes, Bytes>),
    List(VecDeque<Bytes>),
    Set(BTreeSet<Bytes>),
}

/// How many executed SQL/CQL statements are kept for inspection.
const QUERY_LOG_LEN: usize = 1024;

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The SQL/CQL statements executed so far (the latest 1024), with
    /// their bound values.
    pub fn executed_queries(&self) -> Vec<(String, Vec<Value>)> {
        self.lock().queries.iter().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent (every
        // operation mutates in one step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn matching_topics<'a>(
        &'a self,
        filter: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a BTreeSet<u64>)> + 'a {
        let prefix = literal_prefix(filter);
        self.topics
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(t, _)| t.starts_with(prefix))
            .filter(move |(t, _)| matches(filter, t))
    }

    fn remove_message(&mut self, id: &str) {
        if let Some(seq) = self.ids.remove(id) {
            if let Some(m) = self.messages.remove(&seq) {
                if let Some(set) = self.topics.get_mut(&m.topic) {
                    set.remove(&seq);
                    if set.is_empty() {
                        self.topics.remove(&m.topic);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new(
            "memory",
            Capabilities::NONE
                .with_raw_statements()
                .with_admin()
                .with_sweep(),
        )
    }

    async fn client_online(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        self.lock().clients.insert(
            client.client_id.clone(),
            ClientStatus {
                client_id: client.client_id.clone(),
                online: true,
                node: client.node.clone(),
                online_at: Some(at),
                offline_at: None,
            },
        );
        Ok(())
    }

    async fn client_offline(&self, client: &ClientInfo, at: Timestamp) -> BackendResult<()> {
        let mut s = self.lock();
        let status = s
            .clients
            .entry(client.client_id.clone())
            .or_insert_with(|| ClientStatus {
                client_id: client.client_id.clone(),
                online: false,
                node: client.node.clone(),
                online_at: None,
                offline_at: None,
            });
        status.online = false;
        status.offline_at = Some(at);
        Ok(())
    }

    async fn client_status(&self, client_id: &str) -> BackendResult<Option<ClientStatus>> {
        Ok(self.lock().clients.get(client_id).cloned())
    }

    async fn lookup_subscriptions(&self, client_id: &str) -> BackendResult<Vec<Subscription>> {
        Ok(self
            .lock()
            .subscriptions
            .get(client_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn store_subscriptions(
        &self,
        client_id: &str,
        subs: &[Subscription],
    ) -> BackendResult<()> {
        let mut s = self.lock();
        let map = s.subscriptions.entry(client_id.to_owned()).or_default();
        for sub in subs {
            map.insert(sub.filter.clone(), sub.clone());
        }
        Ok(())
    }

    async fn delete_subscriptions(&self, client_id: &str, filters: &[String]) -> BackendResult<()> {
        let mut s = self.lock();
        if let Some(map) = s.subscriptions.get_mut(client_id) {
            for f in filters {
                map.remove(f);
            }
            if map.is_empty() {
                s.subscriptions.remove(client_id);
            }
        }
        Ok(())
    }

    async fn store_messages(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        let mut s = self.lock();
        for m in messages {
            // Storing the same id twice replaces the message, as a primary key would.
            s.remove_message(&m.id);
            s.seq += 1;
            let seq = s.seq;
            s.ids.insert(m.id.clone(), seq);
            s.topics.entry(m.topic.clone()).or_default().insert(seq);
            s.messages.insert(seq, m.clone());
        }
        Ok(())
    }

    /// In-process: always there.
    async fn ping(&self) -> BackendResult<()> {
        Ok(())
    }

    async fn remove_messages_before(&self, before: Timestamp) -> BackendResult<u64> {
        let mut s = self.lock();
        let old: Vec<String> = s
            .messages
            .values()
            .filter(|m| m.timestamp < before)
            .map(|m| m.id.clone())
            .collect();
        for id in &old {
            s.remove_message(id);
        }
        Ok(old.len() as u64)
    }

    async fn fetch_messages(&self, req: &FetchRequest) -> BackendResult<Vec<Message>> {
        let mut s = self.lock();
        let start = match req.mode {
            OfflineMode::Queue => 0,
            OfflineMode::Pubsub => {
                let key = (req.client_id.clone(), req.filter.clone());
                match s.positions.get(&key) {
                    Some(p) => *p,
                    None => {
                        let now = s.seq;
                        s.positions.insert(key, now);
                        return Ok(Vec::new());
                    }
                }
            }
        };
        let mut seqs: Vec<u64> = Vec::new();
        for (topic, set) in s.matching_topics(&req.filter) {
            let floor = match req.mode {
                OfflineMode::Queue => 0,
                OfflineMode::Pubsub => s
                    .positions
                    .get(&(req.client_id.clone(), topic.clone()))
                    .map_or(start, |acked| (*acked).max(start)),
            };
            seqs.extend(set.range(floor + 1..));
        }
        seqs.sort_unstable();
        let msgs = seqs
            .iter()
            .filter_map(|q| s.messages.get(q).cloned())
            .collect();
        Ok(apply_limits(msgs, req))
    }

    async fn ack_messages(&self, mode: OfflineMode, acks: &[Ack]) -> BackendResult<()> {
        let mut s = self.lock();
        for ack in acks {
            match mode {
                OfflineMode::Queue => s.remove_message(&ack.message_id),
                OfflineMode::Pubsub => {
                    if let Some(seq) = s.ids.get(&ack.message_id).copied() {
                        let pos = s
                            .positions
                            .entry((ack.client_id.clone(), ack.topic.clone()))
                            .or_insert(0);
                        *pos = (*pos).max(seq);
                    }
                }
            }
        }
        Ok(())
    }

    async fn store_retained(&self, messages: &[Message], _: WriteOptions) -> BackendResult<()> {
        let mut s = self.lock();
        for m in messages {
            s.retained.insert(m.topic.clone(), m.clone());
        }
        Ok(())
    }

    async fn delete_retained(&self, topics: &[String]) -> BackendResult<()> {
        let mut s = self.lock();
        for t in topics {
            s.retained.remove(t);
        }
        Ok(())
    }

    async fn lookup_retained(&self, filter: &str) -> BackendResult<Vec<Message>> {
        let s = self.lock();
        let prefix = literal_prefix(filter);
        Ok(s.retained
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(t, _)| t.starts_with(prefix))
            .filter(|(t, _)| matches(filter, t))
            .map(|(_, m)| m.clone())
            .collect())
    }

    /// Runs a Redis-style command on the in-memory key space: `SET`, `GET`,
    /// `DEL`, `EXISTS`, `INCR`, `HSET`/`HMSET`, `HGET`, `HMGET`, `HGETALL`,
    /// `HDEL`, `RPUSH`, `LPUSH`, `LRANGE`, `SADD`, `SREM`, `SMEMBERS`. The
    /// reply is one row of its elements. SQL/CQL is recorded, not run.
    async fn execute(&self, statement: &Statement) -> BackendResult<Vec<Row>> {
        match statement {
            Statement::Query { text, params } => {
                let mut s = self.lock();
                if s.queries.len() == QUERY_LOG_LEN {
                    s.queries.pop_front();
                }
                s.queries.push_back((text.to_string(), params.clone()));
                Ok(Vec::new())
            }
            Statement::Command { args } => {
                let mut s = self.lock();
                run_command(&mut s.keys, args).map(|row| vec![row])
            }
        }
    }
}

fn wrong_type() -> BackendError {
    BackendError::new(
        ErrorKind::Query,
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    )
}

fn arity(cmd: &str) -> BackendError {
    BackendError::new(
        ErrorKind::Query,
        format!("wrong number of arguments for '{cmd}' command"),
    )
}

fn run_command(keys: &mut HashMap<Bytes, Entry>, args: &[Bytes]) -> BackendResult<Row> {
    let Some((name, rest)) = args.split_first() else {
        return Err(BackendError::new(ErrorKind::Query, "empty command"));
    };
    let cmd = String::from_utf8_lossy(name).to_ascii_uppercase();
    let b = |v: &Bytes| Value::Bytes(v.clone());
    let count = |n: usize| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    match (cmd.as_str(), rest) {
        ("SET", [k, v]) => {
            keys.insert(k.clone(), Entry::Str(v.clone()));
            Ok(vec![Value::Text("OK".into())])
        }
        ("GET", [k]) => match keys.get(k) {
            None => Ok(vec![Value::Null]),
            Some(Entry::Str(v)) => Ok(vec![b(v)]),
            Some(_) => Err(wrong_type()),
        },
        ("DEL", ks) if !ks.is_empty() => Ok(vec![count(
            ks.iter().filter(|k| keys.remove(*k).is_some()).count(),
        )]),
        ("EXISTS", ks) if !ks.is_empty() => Ok(vec![count(
            ks.iter().filter(|k| keys.contains_key(*k)).count(),
        )]),
        ("INCR", [k]) => {
            let current = match keys.get(k) {
                None => 0,
                Some(Entry::Str(v)) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        BackendError::new(ErrorKind::Query, "value is not an integer")
                    })?,
                Some(_) => return Err(wrong_type()),
            };
            let next = current
                .checked_add(1)
                .ok_or_else(|| BackendError::new(ErrorKind::Query, "increment would overflow"))?;
            keys.insert(k.clone(), Entry::Str(Bytes::from(next.to_string())));
            Ok(vec![Value::Int(next)])
        }
        ("HSET" | "HMSET", [k, pairs @ ..]) if !pairs.is_empty() && pairs.len() % 2 == 0 => {
            let entry = keys
                .entry(k.clone())
                .or_insert_with(|| Entry::Hash(BTreeMap::new()));
            let Entry::Hash(h) = entry else {
                return Err(wrong_type());
            };
            let added = pairs
                .chunks(2)
                .filter(|p| h.insert(p[0].clone(), p[1].clone()).is_none())
                .count();
            Ok(vec![if cmd == "HMSET" {
                Value::Text("OK".into())
            } else {
                count(added)
            }])
        }
        ("HGET", [k, f]) => match keys.get(k) {
            None => Ok(vec![Value::Null]),
            Some(Entry::Hash(h)) => Ok(vec![h.get(f).map_or(Value::Null, b)]),
            Some(_) => Err(wrong_type()),
        },
        ("HMGET", [k, fields @ ..]) if !fields.is_empty() => match keys.get(k) {
            None => Ok(fields.iter().map(|_| Value::Null).collect()),
            Some(Entry::Hash(h)) => Ok(fields
                .iter()
                .map(|f| h.get(f).map_or(Value::Null, b))
                .collect()),
            Some(_) => Err(wrong_type()),
        },
        ("HGETALL", [k]) => match keys.get(k) {
            None => Ok(Vec::new()),
            Some(Entry::Hash(h)) => Ok(h.iter().flat_map(|(f, v)| [b(f), b(v)]).collect()),
            Some(_) => Err(wrong_type()),
        },
        ("HDEL", [k, fields @ ..]) if !fields.is_empty() => match keys.get_mut(k) {
            None => Ok(vec![Value::Int(0)]),
            Some(Entry::Hash(h)) => Ok(vec![count(
                fields.iter().filter(|f| h.remove(*f).is_some()).count(),
            )]),
            Some(_) => Err(wrong_type()),
        },
        ("RPUSH" | "LPUSH", [k, items @ ..]) if !items.is_empty() => {
            let entry = keys
                .entry(k.clone())
                .or_insert_with(|| Entry::List(VecDeque::new()));
            let Entry::List(l) = entry else {
                return Err(wrong_type());
            };
            for item in items {
                if cmd == "RPUSH" {
                    l.push_back(item.clone());
                } else {
                    l.push_front(item.clone());
                }
            }
            Ok(vec![count(l.len())])
        }
        ("LRANGE", [k, start, stop]) => {
            let parse = |v: &Bytes| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| BackendError::new(ErrorKind::Query, "value is not an integer"))
            };
            let (start, stop) = (parse(start)?, parse(stop)?);
            match keys.get(k) {
                None => Ok(Vec::new()),
                Some(Entry::List(l)) => {
                    let len = i64::try_from(l.len()).unwrap_or(i64::MAX);
                    let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i };
                    let (from, to) = (norm(start), norm(stop).min(len - 1));
                    Ok((from..=to)
                        .filter_map(|i| usize::try_from(i).ok().and_then(|i| l.get(i)).map(b))
                        .collect())
                }
                Some(_) => Err(wrong_type()),
            }
        }
        ("SADD", [k, members @ ..]) if !members.is_empty() => {
            let entry = keys
                .entry(k.clone())
                .or_insert_with(|| Entry::Set(BTreeSet::new()));
            let Entry::Set(set) = entry else {
                return Err(wrong_type());
            };
            Ok(vec![count(
                members.iter().filter(|m| set.insert((*m).clone())).count(),
            )])
        }
        ("SREM", [k, members @ ..]) if !members.is_empty() => match keys.get_mut(k) {
            None => Ok(vec![Value::Int(0)]),
            Some(Entry::Set(set)) => Ok(vec![count(
                members.iter().filter(|m| set.remove(*m)).count(),
            )]),
            Some(_) => Err(wrong_type()),
        },
        ("SMEMBERS", [k]) => match keys.get(k) {
            None => Ok(Vec::new()),
            Some(Entry::Set(set)) => Ok(set.iter().map(b).collect()),
            Some(_) => Err(wrong_type()),
        },
        (
            "SET" | "GET" | "DEL" | "EXISTS" | "INCR" | "HSET" | "HMSET" | "HGET" | "HMGET"
            | "HGETALL" | "HDEL" | "RPUSH" | "LPUSH" | "LRANGE" | "SADD" | "SREM" | "SMEMBERS",
            _,
        ) => Err(arity(&cmd)),
        _ => Err(BackendError::new(
            ErrorKind::Unsupported,
            format!("the memory backend does not run `{cmd}`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(keys: &mut HashMap<Bytes, Entry>, line: &str) -> BackendResult<Row> {
        let args: Vec<Bytes> = line.split(' ').map(|a| Bytes::from(a.to_owned())).collect();
        run_command(keys, &args)
    }

    #[test]
    fn commands() {
        let mut k = HashMap::new();
        assert_eq!(
            cmd(&mut k, "SET a 1").unwrap(),
            vec![Value::Text("OK".into())]
        );
        assert_eq!(cmd(&mut k, "INCR a").unwrap(), vec![Value::Int(2)]);
        assert!(cmd(&mut k, "HSET a f v").is_err(), "wrong type");
        assert_eq!(cmd(&mut k, "HSET h f v g w").unwrap(), vec![Value::Int(2)]);
        assert_eq!(
            cmd(&mut k, "HMGET h g x").unwrap(),
            vec![Value::Bytes("w".into()), Value::Null]
        );
        assert_eq!(cmd(&mut k, "HGETALL h").unwrap().len(), 4);
        assert_eq!(cmd(&mut k, "RPUSH l x y z").unwrap(), vec![Value::Int(3)]);
        assert_eq!(
            cmd(&mut k, "LRANGE l -2 -1").unwrap(),
            vec![Value::Bytes("y".into()), Value::Bytes("z".into())]
        );
        assert_eq!(cmd(&mut k, "LRANGE l 5 9").unwrap(), Vec::<Value>::new());
        assert_eq!(cmd(&mut k, "SADD s m m n").unwrap(), vec![Value::Int(2)]);
        assert_eq!(
            cmd(&mut k, "DEL a h l s nope").unwrap(),
            vec![Value::Int(4)]
        );
        assert_eq!(cmd(&mut k, "GET a").unwrap(), vec![Value::Null]);
        assert_eq!(cmd(&mut k, "GET").unwrap_err().kind(), ErrorKind::Query);
        assert_eq!(
            cmd(&mut k, "FLUSHALL").unwrap_err().kind(),
            ErrorKind::Unsupported
        );
    }
}
