//! The disk buffer (`buffer = disk`, feature `disk-buffer`): the writes a
//! pool keeps for retry while its server is away, also kept in a redb file
//! (`buffer_path`), so that a broker crash loses none of them. Each write
//! gets a key when it enters the buffer (so the file replays in the order
//! the writes came); it is written to the file, with an fsync, before its
//! hook is told "queued", and removed once it has landed. A broker started
//! on the same file replays what it holds before anything else. Replaying
//! a write that had landed before the crash is harmless for the built-in
//! writes (a message stored again replaces itself by id, an ack or a
//! retained message is the same again); a raw statement runs again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::WriteOp;
use crate::backend::{Ack, WriteOptions};
use crate::config::{OfflineMode, PayloadFormat};
use crate::hook::ClientInfo;
use crate::message::{Message, QoS, Timestamp};
use crate::template::Statement;
use crate::value::Value;

const WRITES: TableDefinition<u64, &[u8]> = TableDefinition::new("writes");

/// One pool's buffer file.
pub(crate) struct DiskBuffer {
    db: Arc<Database>,
    path: PathBuf,
}

/// A write read back from the file.
pub(crate) struct Replayed {
    pub(crate) key: u64,
    pub(crate) rule: String,
    pub(crate) op: WriteOp,
}

impl DiskBuffer {
    /// Opens (or creates) the file and reads back what it holds, oldest
    /// first. A record that cannot be decoded is reported and skipped.
    pub(crate) fn open(path: &Path) -> Result<(DiskBuffer, Vec<Replayed>), String> {
        let shown = path.display();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let db = Database::create(path).map_err(|e| format!("{shown}: {e}"))?;
        let mut out = Vec::new();
        {
            let tx = db.begin_write().map_err(|e| format!("{shown}: {e}"))?;
            // Opening creates the table in a new file.
            drop(tx.open_table(WRITES).map_err(|e| format!("{shown}: {e}"))?);
            tx.commit().map_err(|e| format!("{shown}: {e}"))?;
        }
        let tx = db.begin_read().map_err(|e| format!("{shown}: {e}"))?;
        let table = tx.open_table(WRITES).map_err(|e| format!("{shown}: {e}"))?;
        for row in table.iter().map_err(|e| format!("{shown}: {e}"))? {
            let (k, v) = row.map_err(|e| format!("{shown}: {e}"))?;
            match serde_json::from_slice::<Record>(v.value()) {
                Ok(r) => out.push(Replayed {
                    key: k.value(),
                    rule: r.rule,
                    op: r.op.into_op(),
                }),
                Err(e) => {
                    tracing::error!(path = %shown, key = k.value(), error = %e, "a buffered write cannot be read back: skipped");
                }
            }
        }
        Ok((
            DiskBuffer {
                db: Arc::new(db),
                path: path.to_owned(),
            },
            out,
        ))
    }

    /// Writes these records in one transaction, synced to disk.
    pub(crate) async fn put(&self, records: Vec<(u64, String, WriteOp)>) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let rows: Vec<(u64, Vec<u8>)> = records
            .into_iter()
            .map(|(key, rule, op)| {
                let rec = Record {
                    rule,
                    op: OpRecord::from_op(&op),
                };
                serde_json::to_vec(&rec)
                    .map(|bytes| (key, bytes))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        self.transact(move |table| {
            for (k, v) in &rows {
                table.insert(k, v.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    /// Removes the records of writes that have landed.
    pub(crate) async fn remove(&self, keys: Vec<u64>) -> Result<(), String> {
        if keys.is_empty() {
            return Ok(());
        }
        self.transact(move |table| {
            for k in &keys {
                table.remove(k)?;
            }
            Ok(())
        })
        .await
    }

    async fn transact<F>(&self, f: F) -> Result<(), String>
    where
        F: FnOnce(&mut redb::Table<'_, u64, &'static [u8]>) -> Result<(), redb::StorageError>
            + Send
            + 'static,
    {
        let db = Arc::clone(&self.db);
        let path = self.path.display().to_string();
        let run = move || -> Result<(), String> {
            let err = |e: &dyn std::fmt::Display| format!("{path}: {e}");
            let tx = db.begin_write().map_err(|e| err(&e))?;
            {
                let mut table = tx.open_table(WRITES).map_err(|e| err(&e))?;
                f(&mut table).map_err(|e| err(&e))?;
            }
            tx.commit().map_err(|e| err(&e))
        };
        // redb syncs on commit: off the async threads.
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| format!("disk buffer task: {e}"))?
    }
}

#[derive(Serialize, Deserialize)]
struct Record {
    rule: String,
    op: OpRecord,
}

#[derive(Serialize, Deserialize)]
enum OpRecord {
    Store(Vec<MessageRecord>, Option<u8>),
    StoreRetained(Vec<MessageRecord>, Option<u8>),
    DeleteRetained(Vec<String>),
    Ack(bool, Vec<(String, String, String)>),
    Online(ClientRecord, i64),
    Offline(ClientRecord, i64),
    Query(String, Vec<ValueRecord>, String),
    Command(Vec<Vec<u8>>, String),
}

#[derive(Serialize, Deserialize)]
struct MessageRecord {
    id: String,
    sender: String,
    username: Option<String>,
    topic: String,
    qos: u8,
    retain: bool,
    payload: Vec<u8>,
    millis: i64,
    /// MQTT 5 properties ([`crate::Properties::encode`]); absent in a
    /// buffer written before they were kept.
    #[serde(default)]
    props: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ClientRecord {
    client_id: String,
    username: Option<String>,
    node: String,
    peer_host: Option<String>,
}

#[derive(Serialize, Deserialize)]
enum ValueRecord {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Time(i64),
}

fn format_code(o: WriteOptions) -> Option<u8> {
    o.payload_format.map(|f| match f {
        PayloadFormat::MongoJson => 0,
        PayloadFormat::PlainText => 1,
    })
}

/// A replayed write may have landed before the crash: `again`.
fn options(code: Option<u8>) -> WriteOptions {
    WriteOptions {
        payload_format: code.map(|c| {
            if c == 0 {
                PayloadFormat::MongoJson
            } else {
                PayloadFormat::PlainText
            }
        }),
        again: true,
    }
}

impl MessageRecord {
    fn from_message(m: &Message) -> Self {
        MessageRecord {
            id: m.id.clone(),
            sender: m.sender.clone(),
            username: m.username.clone(),
            topic: m.topic.clone(),
            qos: m.qos.as_u8(),
            retain: m.retain,
            payload: m.payload.to_vec(),
            millis: m.timestamp.as_millis(),
            props: m.properties.encode(),
        }
    }

    fn into_message(self) -> Message {
        Message {
            id: self.id,
            sender: self.sender,
            username: self.username,
            topic: self.topic.clone(),
            qos: QoS::try_from(self.qos).unwrap_or(QoS::AtLeastOnce),
            retain: self.retain,
            payload: Bytes::from(self.payload),
            timestamp: Timestamp::from_millis(self.millis),
            properties: Message::properties_from(&self.props, &self.topic),
        }
    }
}

impl ClientRecord {
    fn from_client(c: &ClientInfo) -> Self {
        ClientRecord {
            client_id: c.client_id.clone(),
            username: c.username.clone(),
            node: c.node.clone(),
            peer_host: c.peer_host.clone(),
        }
    }

    fn into_client(self) -> ClientInfo {
        ClientInfo {
            client_id: self.client_id,
            username: self.username,
            node: self.node,
            peer_host: self.peer_host,
        }
    }
}

impl ValueRecord {
    fn from_value(v: &Value) -> Self {
        match v {
            Value::Null => ValueRecord::Null,
            Value::Bool(b) => ValueRecord::Bool(*b),
            Value::Int(i) => ValueRecord::Int(*i),
            Value::Float(f) => ValueRecord::Float(*f),
            Value::Text(s) => ValueRecord::Text(s.clone()),
            Value::Bytes(b) => ValueRecord::Bytes(b.to_vec()),
            Value::Time(t) => ValueRecord::Time(t.as_millis()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            ValueRecord::Null => Value::Null,
            ValueRecord::Bool(b) => Value::Bool(b),
            ValueRecord::Int(i) => Value::Int(i),
            ValueRecord::Float(f) => Value::Float(f),
            ValueRecord::Text(s) => Value::Text(s),
            ValueRecord::Bytes(b) => Value::Bytes(Bytes::from(b)),
            ValueRecord::Time(t) => Value::Time(Timestamp::from_millis(t)),
        }
    }
}

impl OpRecord {
    fn from_op(op: &WriteOp) -> Self {
        let msgs = |m: &[Message]| m.iter().map(MessageRecord::from_message).collect();
        match op {
            WriteOp::Store(m, o) => OpRecord::Store(msgs(m), format_code(*o)),
            WriteOp::StoreRetained(m, o) => OpRecord::StoreRetained(msgs(m), format_code(*o)),
            WriteOp::DeleteRetained(t) => OpRecord::DeleteRetained(t.clone()),
            WriteOp::Ack(mode, acks) => OpRecord::Ack(
                *mode == OfflineMode::Pubsub,
                acks.iter()
                    .map(|a| (a.client_id.clone(), a.topic.clone(), a.message_id.clone()))
                    .collect(),
            ),
            WriteOp::Online(c, at) => {
                OpRecord::Online(ClientRecord::from_client(c), at.as_millis())
            }
            WriteOp::Offline(c, at) => {
                OpRecord::Offline(ClientRecord::from_client(c), at.as_millis())
            }
            WriteOp::Execute(Statement::Query { text, params }, key) => OpRecord::Query(
                text.to_string(),
                params.iter().map(ValueRecord::from_value).collect(),
                key.clone(),
            ),
            WriteOp::Execute(Statement::Command { args }, key) => {
                OpRecord::Command(args.iter().map(|a| a.to_vec()).collect(), key.clone())
            }
        }
    }

    fn into_op(self) -> WriteOp {
        let msgs = |m: Vec<MessageRecord>| m.into_iter().map(MessageRecord::into_message).collect();
        match self {
            OpRecord::Store(m, o) => WriteOp::Store(msgs(m), options(o)),
            OpRecord::StoreRetained(m, o) => WriteOp::StoreRetained(msgs(m), options(o)),
            OpRecord::DeleteRetained(t) => WriteOp::DeleteRetained(t),
            OpRecord::Ack(pubsub, acks) => WriteOp::Ack(
                if pubsub {
                    OfflineMode::Pubsub
                } else {
                    OfflineMode::Queue
                },
                acks.into_iter()
                    .map(|(client_id, topic, message_id)| Ack {
                        client_id,
                        topic,
                        message_id,
                    })
                    .collect(),
            ),
            OpRecord::Online(c, at) => WriteOp::Online(c.into_client(), Timestamp::from_millis(at)),
            OpRecord::Offline(c, at) => {
                WriteOp::Offline(c.into_client(), Timestamp::from_millis(at))
            }
            OpRecord::Query(text, params, key) => WriteOp::Execute(
                Statement::Query {
                    text: Arc::from(text.as_str()),
                    params: params.into_iter().map(ValueRecord::into_value).collect(),
                },
                key,
            ),
            OpRecord::Command(args, key) => WriteOp::Execute(
                Statement::Command {
                    args: args.into_iter().map(Bytes::from).collect(),
                },
                key,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_come_back_in_key_order_and_removed_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("disk-buffer-{}", crate::new_message_id()));
        let path = dir.join("pool1.redb");
        let m = Message::new("c", "t/1", QoS::ExactlyOnce, vec![0u8, 255, 10]).retained(true);
        let ack = Ack {
            client_id: "c".into(),
            topic: "t/1".into(),
            message_id: m.id.clone(),
        };
        let stmt = Statement::Query {
            text: Arc::from("insert into x values ($1, $2)"),
            params: vec![Value::Int(7), Value::Bytes(Bytes::from_static(b"\x00b"))],
        };
        {
            let (buf, replay) = DiskBuffer::open(&path).expect("open");
            assert!(replay.is_empty());
            buf.put(vec![
                (
                    3,
                    "r3".into(),
                    WriteOp::Ack(OfflineMode::Pubsub, vec![ack.clone()]),
                ),
                (
                    1,
                    "r1".into(),
                    WriteOp::Store(vec![m.clone()], WriteOptions::default()),
                ),
                (2, "r2".into(), WriteOp::Execute(stmt.clone(), "t/1".into())),
            ])
            .await
            .expect("put");
            buf.remove(vec![2]).await.expect("remove");
        }
        let (_buf, replay) = DiskBuffer::open(&path).expect("reopen");
        let keys: Vec<u64> = replay.iter().map(|r| r.key).collect();
        assert_eq!(keys, [1, 3]);
        assert_eq!(replay[0].rule, "r1");
        match &replay[0].op {
            WriteOp::Store(got, _) => assert_eq!(got, &vec![m.clone()]),
            other => panic!("not a store: {other:?}"),
        }
        match &replay[1].op {
            WriteOp::Ack(OfflineMode::Pubsub, got) => assert_eq!(got, &vec![ack]),
            other => panic!("not a pubsub ack: {other:?}"),
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
