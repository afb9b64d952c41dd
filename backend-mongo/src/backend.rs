//! [`MongoBackend`]: the [`Backend`] trait on the `mongodb` driver.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use backend_core::backend::{
    Ack, BackendInfo, BackendResult, ClientStatus, FetchRequest, WriteOptions,
};
use backend_core::config::PoolConfig;
use backend_core::hook::ClientInfo;
use backend_core::message::last_of_each;
use backend_core::topic::{
    decode_matching, has_wildcards, matches, prefix_upper_bound, TopicSelect,
};
use backend_core::value::Row;
use backend_core::{
    Backend, Bytes, CommonError, Config, Message, OfflineMode, QoS, Statement, Subscription,
    Timestamp,
};
use futures::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ReturnDocument;
use mongodb::{Client, Collection};

use crate::config::MongoConfig;
use crate::error::MongoError;
use crate::payload;
use crate::schema;

mod storage;

/// A MongoDB pool: the driver's client (its own connection pool) and the
/// collections of one database.
#[derive(Clone)]
pub struct MongoBackend {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    client: Client,
    database: String,
    clients: Collection<Document>,
    subs: Collection<Document>,
    msgs: Collection<Document>,
    retain: Collection<Document>,
    acked: Collection<Document>,
    seq: Collection<Document>,
    writers: Collection<Document>,
    /// The highest counter value this pool has seen: a lower bound of the
    /// next id it takes, written into its in-flight markers.
    seen: AtomicI64,
    /// The server is FerretDB, whose findAndModify is not atomic: id
    /// reservations and inserts of this process take [`FERRETDB_IDS`].
    serialize_ids: bool,
}

/// How long a registered writer holds pubsub readers back at most. A
/// store is not expected to run this long; a registration this old is
/// taken to be from a writer that died before it could unregister.
const WRITER_TIMEOUT_SECS: i64 = 120;

/// Serialises id reservation and insert across this process's pools on a
/// FerretDB server (see the README's "Message ids").
static FERRETDB_IDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl std::fmt::Debug for MongoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoBackend")
            .field("server", &self.inner.label)
            .finish_non_exhaustive()
    }
}

backend_core::backend_connect!(MongoBackend, crate::KIND, MongoError);

/// How many times an upsert that lost a race (duplicate key) is retried.
const UPSERT_RETRIES: usize = 3;

/// How many times a batch whose ids were handed out twice is retried.
const ID_RETRIES: usize = 20;

fn secs(t: Timestamp) -> i64 {
    t.as_secs()
}

fn int(v: Option<&Bson>) -> Option<i64> {
    match v? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        // Whole numbers written by the mongo shell are doubles.
        Bson::Double(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
        _ => None,
    }
}

fn text(d: &Document, key: &str) -> Option<String> {
    match d.get(key)? {
        Bson::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A message document read back (from `mqtt_msg` or, with `retain`
/// given, `mqtt_retain`); the error says what is wrong with it.
pub(crate) fn decode_message(d: &Document, retain: Option<bool>) -> Result<Message, String> {
    let field = |k: &str| text(d, k).ok_or_else(|| format!("a document without a string `{k}`"));
    let qos = int(d.get("qos"))
        .and_then(|q| u8::try_from(q).ok())
        .and_then(|q| QoS::try_from(q).ok())
        .ok_or_else(|| "a document without a qos of 0, 1 or 2".to_owned())?;
    let payload = payload::decode(d)
        .ok_or_else(|| "a payload that is neither string, binary nor document".to_owned())?;
    let retain = match retain {
        Some(r) => r,
        None => match d.get("retain") {
            Some(Bson::Boolean(b)) => *b,
            Some(other) => int(Some(other)).is_some_and(|i| i != 0),
            None => false,
        },
    };
    let topic = field("topic")?;
    let properties = match d.get(PROPS_FIELD) {
        Some(Bson::Binary(b)) => Message::properties_from(&b.bytes, &topic),
        _ => backend_core::Properties::default(),
    };
    Ok(Message {
        id: field("msgid")?,
        sender: text(d, "sender").unwrap_or_default(),
        username: None,
        topic,
        qos,
        retain,
        payload: Bytes::from(payload),
        timestamp: Timestamp::from_secs(int(d.get("arrived")).unwrap_or(0)),
        properties,
    })
}

/// The field of a message or retained document holding its MQTT 5
/// properties (binary, MQTT 5's own encoding), absent for an MQTT 3.1.1
/// message.
pub(crate) const PROPS_FIELD: &str = "props";

/// Sets [`PROPS_FIELD`] on `d` if `m` has properties; whether it did.
pub(crate) fn put_properties(d: &mut Document, m: &Message) -> bool {
    match m.stored_properties() {
        Some(bytes) => {
            d.insert(
                PROPS_FIELD,
                Bson::Binary(mongodb::bson::Binary {
                    subtype: mongodb::bson::spec::BinarySubtype::Generic,
                    bytes,
                }),
            );
            true
        }
        None => false,
    }
}

/// The `topic` condition narrowing a filter: the topic itself for a filter
/// without wildcards, the literal prefix's range for one with, nothing
/// when the filter starts with a wildcard. Matches are checked after.
fn topic_condition(filter: &str) -> Option<Bson> {
    let prefix = match TopicSelect::new(filter, |_, prefix| prefix.to_owned()) {
        // An invalid filter selects no topic.
        TopicSelect::Nothing => return Some(Bson::Document(doc! { "$in": [] })),
        TopicSelect::Exact(topic) => return Some(Bson::String(topic)),
        TopicSelect::Wildcard(prefix) if prefix.is_empty() => return None,
        TopicSelect::Wildcard(prefix) => prefix,
    };
    let mut range = doc! { "$gte": &prefix };
    if let Some(upper) = prefix_upper_bound(&prefix) {
        range.insert("$lt", upper);
    }
    Some(Bson::Document(range))
}

impl MongoBackend {
    /// Connects the pool `pool` of `config` (`backend.mongo.<pool>.*` and
    /// `backend.mongo.topology.*`): builds the driver's client, checks the
    /// server answers (`ping`) and creates the indexes (idempotent).
    pub async fn connect(pool: &PoolConfig, config: &Config) -> Result<MongoBackend, MongoError> {
        CommonError::check_kind(crate::KIND, config.kind())?;
        let settings = MongoConfig::from_pool(pool, config)?;
        Self::connect_with(settings).await
    }

    /// Connects with settings built in code.
    pub async fn connect_with(settings: MongoConfig) -> Result<MongoBackend, MongoError> {
        let label = settings.label();
        if !settings.ignored_topology.is_empty() {
            tracing::info!(
                pool = %settings.pool,
                keys = ?settings.ignored_topology,
                "backend.mongo.topology keys without a driver equivalent are ignored"
            );
        }
        let err = |source| MongoError::Mongo {
            operation: "connect",
            server: label.clone(),
            source,
        };
        let mut options = settings.options;
        // The driver reads the TLS files while the client is built; they
        // are removed right after.
        let tls_files = match &settings.tls {
            Some(files) => {
                let f = crate::tls::driver_files(&settings.pool, files).map_err(|problem| {
                    CommonError::Config {
                        kind: crate::KIND,
                        pool: settings.pool.clone(),
                        key: "ssl",
                        line: None,
                        problem,
                    }
                })?;
                options.tls = Some(mongodb::options::Tls::Enabled(f.options.clone()));
                Some(f)
            }
            None => None,
        };
        let client = Client::with_options(options).map_err(err);
        drop(tls_files);
        let client = client?;
        let db = client.database(&settings.database);
        db.run_command(doc! { "ping": 1 }).await.map_err(err)?;
        schema::create_indexes(&db).await.map_err(err)?;
        let info = db.run_command(doc! { "buildInfo": 1 }).await.map_err(err)?;
        let serialize_ids = info.contains_key("ferretdbVersion");
        if serialize_ids {
            tracing::info!(server = %label, "FerretDB: message ids are taken one store at a time in this process");
        }
        let seen = db
            .collection::<Document>(schema::SEQ)
            .find_one(schema::seq_filter())
            .await
            .map_err(err)?
            .and_then(|d| int(d.get("seq")))
            .unwrap_or(0);
        tracing::debug!(server = %label, "mongo pool connected");
        Ok(MongoBackend {
            inner: Arc::new(Inner {
                clients: db.collection(schema::CLIENT),
                subs: db.collection(schema::SUB),
                msgs: db.collection(schema::MSG),
                retain: db.collection(schema::RETAIN),
                acked: db.collection(schema::ACKED),
                seq: db.collection(schema::SEQ),
                writers: db.collection(schema::WRITERS),
                seen: AtomicI64::new(seen),
                serialize_ids,
                database: settings.database,
                label,
                client,
            }),
        })
    }

    /// The driver's client, for queries of one's own.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The database this pool stores in.
    pub fn database(&self) -> mongodb::Database {
        self.inner.client.database(&self.inner.database)
    }

    fn err(&self, operation: &'static str) -> impl Fn(mongodb::error::Error) -> MongoError + '_ {
        move |source| MongoError::Mongo {
            operation,
            server: self.inner.label.clone(),
            source,
        }
    }

    fn data(&self, operation: &'static str, problem: String) -> MongoError {
        MongoError::Data {
            operation,
            server: self.inner.label.clone(),
            problem,
        }
    }

    /// An upsert, retried when it loses a race with another one (two
    /// upserts of a new key: one inserts, the other gets a duplicate key).
    async fn upsert(
        &self,
        operation: &'static str,
        coll: &Collection<Document>,
        filter: Document,
        update: Document,
    ) -> Result<mongodb::results::UpdateResult, MongoError> {
        let mut tries = 0;
        loop {
            match coll
                .update_one(filter.clone(), update.clone())
                .upsert(true)
                .await
                .map_err(self.err(operation))
            {
                Err(e) if e.is_duplicate_key() && tries < UPSERT_RETRIES => tries += 1,
                other => return other,
            }
        }
    }

    /// Upserts a client's status document (keyed by `clientid`).
    async fn set_client(
        &self,
        operation: &'static str,
        client: &ClientInfo,
        update: Document,
    ) -> Result<(), MongoError> {
        let filter = doc! { "clientid": &client.client_id };
        self.upsert(operation, &self.inner.clients, filter, update)
            .await?;
        Ok(())
    }

    /// Reserves `n` message ids; returns the first.
    async fn reserve_ids(&self, n: i64) -> Result<i64, MongoError> {
        let mut tries = 0;
        loop {
            let r = self
                .inner
                .seq
                .find_one_and_update(schema::seq_filter(), doc! { "$inc": { "seq": n } })
                .upsert(true)
                .return_document(ReturnDocument::After)
                .await
                .map_err(self.err("store_messages"));
            match r {
                Err(e) if e.is_duplicate_key() && tries < UPSERT_RETRIES => tries += 1,
                Err(e) => return Err(e),
                Ok(doc) => {
                    let last = doc
                        .as_ref()
                        .and_then(|d| int(d.get("seq")))
                        .ok_or_else(|| {
                            self.data("store_messages", "mqtt_seq has no integer `seq`".into())
                        })?;
                    self.inner.seen.fetch_max(last, Ordering::Relaxed);
                    return Ok(last - n + 1);
                }
            }
        }
    }

    /// The last message id given so far (0 before the first).
    async fn last_id(&self, operation: &'static str) -> Result<i64, MongoError> {
        let d = self
            .inner
            .seq
            .find_one(schema::seq_filter())
            .await
            .map_err(self.err(operation))?;
        Ok(d.and_then(|d| int(d.get("seq"))).unwrap_or(0))
    }

    /// The highest id below which every message on a topic `filter`
    /// matches that will ever be stored is visible now: the counter,
    /// lowered to the `after` of every writer still in flight on such a
    /// topic. Read in this order (counter, then writers): an id at or below
    /// the counter was taken by a writer that registered before; it has
    /// either finished (its message is visible) or is still registered,
    /// with an `after` below its id. Registrations older than
    /// [`WRITER_TIMEOUT_SECS`] are from writers that died and are ignored.
    async fn read_horizon(&self, operation: &'static str, filter: &str) -> Result<i64, MongoError> {
        let counter = self.last_id(operation).await?;
        let cutoff = Timestamp::now().as_secs() - WRITER_TIMEOUT_SECS;
        let mut query = doc! { "at": { "$gte": cutoff } };
        let exact = !has_wildcards(filter);
        if exact {
            query.insert("topics", filter);
        }
        let writers: Vec<Document> = self
            .inner
            .writers
            .find(query)
            .projection(doc! { "after": 1, "topics": 1 })
            .await
            .map_err(self.err(operation))?
            .try_collect()
            .await
            .map_err(self.err(operation))?;
        let concerned = |w: &Document| {
            exact
                || match w.get("topics") {
                    Some(Bson::Array(topics)) => topics
                        .iter()
                        .any(|t| matches!(t, Bson::String(t) if matches(filter, t))),
                    // A registration this backend did not write: wait for it.
                    _ => true,
                }
        };
        Ok(writers
            .iter()
            .filter(|w| concerned(w))
            .filter_map(|w| int(w.get("after")))
            .fold(counter, i64::min))
    }

    /// Registers a writer in flight on `topics` (see
    /// [`Self::read_horizon`]); the returned id unregisters it.
    async fn register_writer(
        &self,
        operation: &'static str,
        topics: Vec<&str>,
    ) -> Result<Bson, MongoError> {
        let id = Bson::ObjectId(mongodb::bson::oid::ObjectId::new());
        // Every id this writer takes is above what this pool has seen.
        let after = self.inner.seen.load(Ordering::Relaxed);
        self.inner
            .writers
            .insert_one(doc! {
                "_id": id.clone(),
                "after": after,
                "at": Timestamp::now().as_secs(),
                "topics": topics,
            })
            .await
            .map_err(self.err(operation))?;
        Ok(id)
    }

    async fn unregister_writer(&self, operation: &'static str, id: Bson) -> Result<(), MongoError> {
        self.inner
            .writers
            .delete_one(doc! { "_id": id })
            .await
            .map_err(self.err(operation))?;
        Ok(())
    }

    /// The pubsub start of (client, filter); `None` when this call
    /// recorded it (the first fetch).
    async fn start_position(&self, client: &str, filter: &str) -> Result<Option<i64>, MongoError> {
        const OP: &str = "fetch_messages";
        let key = doc! { "clientid": client, "topic": filter };
        let found = self
            .inner
            .acked
            .find_one(key.clone())
            .await
            .map_err(self.err(OP))?;
        if let Some(d) = found {
            return Ok(Some(int(d.get("mongo_id")).unwrap_or(0)));
        }
        let now = self.last_id(OP).await?;
        let r = self
            .upsert(
                OP,
                &self.inner.acked,
                key.clone(),
                doc! { "$setOnInsert": { "mongo_id": now } },
            )
            .await?;
        if r.upserted_id.is_some() {
            return Ok(None);
        }
        // Another fetch of the same subscription recorded it first.
        let d = self.inner.acked.find_one(key).await.map_err(self.err(OP))?;
        Ok(Some(d.and_then(|d| int(d.get("mongo_id"))).unwrap_or(0)))
    }

    fn message(
        &self,
        op: &'static str,
        d: &Document,
        retain: Option<bool>,
    ) -> Result<Message, MongoError> {
        decode_message(d, retain).map_err(|problem| self.data(op, problem))
    }

    /// Inserts messages with freshly reserved ids, in one `insert_many`
    /// (ordered: slice order is `_id` order). On an error: how many of
    /// them were stored (a prefix, the insert being ordered).
    async fn insert_messages(
        &self,
        kept: &[&Message],
        options: WriteOptions,
    ) -> Result<(), (usize, MongoError)> {
        const OP: &str = "store_messages";
        if kept.is_empty() {
            return Ok(());
        }
        let n = i64::try_from(kept.len()).unwrap_or(i64::MAX);
        let first = self.reserve_ids(n).await.map_err(|e| (0, e))?;
        let docs: Vec<Document> = kept
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut d = doc! {
                    "_id": first + i as i64,
                    "topic": &m.topic,
                    "msgid": &m.id,
                    "sender": &m.sender,
                    "qos": i32::from(m.qos.as_u8()),
                    "retain": m.retain,
                };
                Self::payload_fields(&mut d, m, options);
                d.insert("arrived", secs(m.timestamp));
                put_properties(&mut d, m);
                d
            })
            .collect();
        self.inner.msgs.insert_many(docs).await.map_err(|e| {
            let inserted = match &*e.kind {
                // Ordered: everything before the first failed one is stored.
                mongodb::error::ErrorKind::InsertMany(m) => m
                    .write_errors
                    .as_ref()
                    .and_then(|w| w.iter().map(|w| w.index).min())
                    .unwrap_or(0),
                _ => 0,
            };
            (inserted, self.err(OP)(e))
        })?;
        Ok(())
    }

    /// Stores messages with new ids, retrying with fresh ids where a
    /// server handed one out twice.
    async fn insert_kept(
        &self,
        kept: &[&Message],
        options: WriteOptions,
    ) -> Result<(), MongoError> {
        let _serialized = if self.inner.serialize_ids {
            Some(FERRETDB_IDS.lock().await)
        } else {
            None
        };
        let mut rest: &[&Message] = kept;
        let mut tries = 0;
        loop {
            match self.insert_messages(rest, options).await {
                Ok(()) => return Ok(()),
                Err((inserted, e)) if e.is_duplicate_key() && tries < ID_RETRIES => {
                    // Ids handed out twice: a server whose findAndModify is
                    // not atomic (FerretDB 1.x). Move the counter past every
                    // stored id and store the rest with new ids, in order.
                    tries += 1;
                    tracing::debug!(tries, "mqtt_msg _id taken twice; taking new ids");
                    rest = &rest[inserted.min(rest.len())..];
                    self.resync_counter().await?;
                }
                Err((_, e)) => return Err(e),
            }
        }
    }

    /// Moves the id counter to at least the highest stored `_id`.
    async fn resync_counter(&self) -> Result<(), MongoError> {
        const OP: &str = "store_messages";
        let top = self
            .inner
            .msgs
            .find_one(doc! {})
            .sort(doc! { "_id": -1 })
            .projection(doc! { "_id": 1 })
            .await
            .map_err(self.err(OP))?;
        let max = top.and_then(|d| int(d.get("_id"))).unwrap_or(0);
        self.upsert(
            OP,
            &self.inner.seq,
            schema::seq_filter(),
            doc! { "$max": { "seq": max } },
        )
        .await?;
        Ok(())
    }

    fn payload_fields(doc: &mut Document, m: &Message, options: WriteOptions) -> bool {
        let (p, raw) = payload::encode(&m.payload, options.payload_format);
        doc.insert("payload", p);
        match raw {
            Some(r) => {
                doc.insert(payload::RAW_FIELD, r);
                true
            }
            None => false,
        }
    }
}
