//! The conformance suite every backend runs against its real server
//! (feature `testkit`).
//!
//! A backend crate runs the whole suite with one line in a test file:
//!
//! ```no_run
//! use std::sync::{Arc, OnceLock};
//! use backend_core::{Backend, MemoryBackend};
//!
//! // A real backend connects to its server here.
//! async fn backend() -> Arc<dyn Backend> {
//!     static STORE: OnceLock<MemoryBackend> = OnceLock::new();
//!     Arc::new(STORE.get_or_init(MemoryBackend::new).clone())
//! }
//! backend_core::conformance_tests!(backend, backend_core::testkit::RawFixture::redis());
//! # fn main() {}
//! ```
//!
//! Each scenario becomes its own `#[test]`, gets a backend from the factory
//! (a fresh connection to the same store; the reconnect scenario asks for a
//! second one) and uses client ids and topics of its own, so scenarios run
//! concurrently against one shared server, and again and again against a
//! server that keeps its data.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::config::BackendKind;

/// A boxed scenario future.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Makes backends: each call a new connection to the same store.
pub type Factory =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Arc<dyn Backend>> + Send>> + Send + Sync>;

/// What a scenario gets.
#[derive(Clone)]
pub struct Ctx {
    /// The backend under test.
    pub backend: Arc<dyn Backend>,
    /// Makes another backend on the same store (a "reconnect").
    pub factory: Factory,
    /// Raw statements to exercise, in the backend's language.
    pub raw: RawFixture,
}

/// Raw statements for the hostile-values scenario: `write` stores a
/// `message.publish` event, `read` returns one row of its `clientid`,
/// `topic`, `username` and `payload` exactly as stored, selected by `${msgid}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFixture {
    /// The kind whose statement language the templates use.
    pub kind: BackendKind,
    /// Statements that store the event.
    pub write: Vec<String>,
    /// The statement reading it back.
    pub read: String,
}

impl RawFixture {
    /// Redis commands (also what [`crate::MemoryBackend`] runs).
    pub fn redis() -> Self {
        RawFixture {
            kind: crate::testkit::kinds::REDIS,
            write: vec![
                "HSET conformance:raw:${msgid} clientid ${clientid} topic ${topic} username ${username} payload ${payload}"
                    .into(),
            ],
            read: "HMGET conformance:raw:${msgid} clientid topic username payload".into(),
        }
    }

    /// SQL against the seed's `mqtt_msg` table (MySQL `?` or PostgreSQL `$n`
    /// follow from `kind`); the username goes in `node`, the seed having no
    /// column for it.
    pub fn sql(kind: BackendKind) -> Self {
        RawFixture {
            kind,
            write: vec![
                "insert into mqtt_msg(msgid, sender, topic, node, qos, retain, payload, arrived) values (${msgid}, ${clientid}, ${topic}, ${username}, ${qos}, ${retain}, ${payload}, ${timestamp})"
                    .into(),
            ],
            read: "select sender, topic, node, payload from mqtt_msg where msgid = ${msgid}".into(),
        }
    }

    /// CQL against backend-cassa's `retain` table, whose row holds a whole
    /// message (the seed's `msg` needs the backend's store sequence).
    pub fn cql() -> Self {
        RawFixture {
            kind: crate::testkit::kinds::CASSA,
            write: vec![
                "insert into retain (topic, msgid, sender, username, payload, arrived) values (${topic}, ${msgid}, ${clientid}, ${username}, ${payload}, ${timestamp})"
                    .into(),
            ],
            read: "select sender, topic, username, payload from retain where topic = ${topic}"
                .into(),
        }
    }

    /// No statements, for a backend without
    /// [`crate::backend::Capabilities::raw_statements`] (what the one-argument
    /// `conformance_tests!(factory)` uses): the raw-statement scenario then
    /// checks, instead, that `execute` returns an
    /// [`crate::ErrorKind::Unsupported`] error.
    pub fn none(kind: BackendKind) -> Self {
        RawFixture {
            kind,
            write: Vec::new(),
            read: String::new(),
        }
    }
}

/// Unwraps in tests, panicking with the error's `Display` (which names
/// the server and the operation) rather than its `Debug`.
///
/// ```
/// use backend_core::testkit::OrPanic;
/// let n: Result<u8, String> = Ok(1);
/// assert_eq!(n.or_panic("parse"), 1);
/// ```
pub trait OrPanic<T> {
    /// The value, or a panic saying `what` failed and why.
    fn or_panic(self, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrPanic<T> for Result<T, E> {
    #[track_caller]
    fn or_panic(self, what: &str) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A name unique to this process run and call, for client ids and topics.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{nanos:x}-{}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A pool of `kind` named `pool1` with these settings, for configuration
/// tests. Panics if the settings do not parse.
pub fn pool_config(kind: crate::BackendKind, lines: &[(&str, &str)]) -> crate::config::PoolConfig {
    crate::config::PoolConfig::from_settings(kind, "pool1", lines).expect("valid settings")
}

/// Asserts that reading settings that need a Cargo feature succeeds exactly
/// when the crate is built with it (`built`, from `cfg!(feature = ...)`),
/// and that otherwise the error names the feature to enable.
pub fn assert_feature_decides<T, E: std::fmt::Display>(
    read: Result<T, E>,
    feature: &str,
    built: bool,
) {
    match read {
        Ok(_) => assert!(built, "read without the `{feature}` feature"),
        Err(e) => {
            assert!(!built, "built with `{feature}`, yet: {e}");
            let named = format!("no `{feature}` feature");
            assert!(e.to_string().contains(&named), "{e}");
        }
    }
}

/// Checks a backend's settings reader (`read`, its `from_pool`) on what
/// every backend reads the same way:
/// - `ssl = true` is read exactly when the crate is built with its `tls`
///   feature (`tls_built`, from `cfg!(feature = "tls")`); otherwise the
///   error names the feature;
/// - a user (under `user_key`: `user`, `username`, `login`) with a
///   password is read, and the result's `Debug` never shows the password;
/// - a pool of another backend kind is refused.
pub fn assert_reads_common_settings<C, E>(
    kind: crate::BackendKind,
    user_key: &str,
    read: impl Fn(&crate::config::PoolConfig) -> Result<C, E>,
    tls_built: bool,
) where
    C: std::fmt::Debug,
    E: std::fmt::Display,
{
    assert_feature_decides(
        read(&pool_config(kind, &[("ssl", "true")])),
        "tls",
        tls_built,
    );

    const PASSWORD: &str = "pa55-w0rd-never-shown";
    let login = [(user_key, "app"), ("password", PASSWORD)];
    let settings = read(&pool_config(kind, &login)).or_panic("a user and a password");
    let shown = format!("{settings:?}");
    assert!(
        !shown.contains(PASSWORD),
        "Debug shows the password: {shown}"
    );

    // A kind of another name: a stand-in, never the crate's own.
    let other = if kind.name() == kinds::MYSQL.name() {
        kinds::PGSQL
    } else {
        kinds::MYSQL
    };
    let refused = read(&crate::config::PoolConfig::new(other, "pool1"));
    assert!(refused.is_err(), "a `{other}` pool read as `{kind}`");
}

/// Asserts that the schema file a crate embeds ([`Schema::text`]) creates
/// each of [`Schema::tables`] once and idempotently, and that it and its
/// copy in the repository ([`Schema::file`], relative to the folder above
/// the crate's, `manifest_dir`) are the same text: the crate carries its
/// schema so it packages on its own, and users load the repository's copy
/// by hand.
///
/// [`Schema::text`]: crate::schema::Schema::text
/// [`Schema::file`]: crate::schema::Schema::file
/// [`Schema::tables`]: crate::schema::Schema::tables
pub fn assert_schema_file(manifest_dir: &str, schema: &crate::schema::Schema) {
    let path = std::path::Path::new(manifest_dir)
        .join("..")
        .join(schema.file);
    let etc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        etc == schema.text,
        "{} differs from the crate's embedded copy: copy one onto the other",
        path.display()
    );
    let mut created: Vec<String> = schema
        .statements()
        .iter()
        .filter_map(|s| s.strip_prefix("CREATE TABLE IF NOT EXISTS "))
        .filter_map(|rest| rest.split([' ', '(']).next())
        .map(|name| name.trim_matches(['`', '"']).to_owned())
        .collect();
    created.sort_unstable();
    let mut tables = schema.table_names();
    tables.sort_unstable();
    assert_eq!(
        created, tables,
        "{}: each table once, by an idempotent CREATE TABLE IF NOT EXISTS",
        schema.file
    );
}

/// Asserts a backend's [`Schema`](crate::schema::Schema): its file (as
/// [`assert_schema_file`]); that the file's statements on each described
/// table name every column the description lists, payload columns with the
/// payload type; and the start-up check on every table it describes. A table as the schema file creates it passes; one that lacks
/// a column, has a payload column of another type, or lacks a unique index
/// is refused with an error that names the column, the type, or the index,
/// and, for the payload type, gives the statement that fixes it.
pub fn assert_schema(manifest_dir: &str, schema: &crate::schema::Schema) {
    use crate::schema::check_table;
    assert_schema_file(manifest_dir, schema);
    let payload = &schema.payload;
    let wrong_type = if payload.name == "text" {
        "bytea"
    } else {
        "text"
    };
    let statements = schema.statements();
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()
    };
    for spec in schema.tables {
        let table = spec.name;
        // The description and the file agree: every column the statements
        // need is in the file's statements on the table, payloads typed.
        let on_table: Vec<Vec<String>> = statements
            .iter()
            .map(|st| words(st))
            .filter(|w| w.iter().any(|w| w == table))
            .collect();
        for col in spec.columns {
            let has = |w: &Vec<String>| w.iter().any(|w| w == col);
            assert!(
                on_table.iter().any(has),
                "{}: {table} has no column {col}",
                schema.file
            );
        }
        for col in spec.payload {
            let typed =
                |w: &Vec<String>| w.windows(2).any(|p| p[0] == *col && p[1] == payload.name);
            assert!(
                on_table.iter().any(typed),
                "{}: {table}.{col} is not {}",
                schema.file,
                payload.name
            );
        }
        let typed = |payload_type: &'static str| -> Vec<(&str, &str)> {
            let type_of = |c: &&str| match spec.payload.contains(c) {
                true => payload_type,
                false => "int",
            };
            spec.columns.iter().map(|c| (*c, type_of(c))).collect()
        };
        let uniques: Vec<String> = spec
            .unique
            .iter()
            .map(|set| {
                let mut cols = set.to_vec();
                cols.sort_unstable();
                cols.join(",")
            })
            .collect();
        let all: Vec<&str> = uniques.iter().map(String::as_str).collect();
        let good = typed(payload.name);
        if let Err(e) = check_table(spec, &good, &all, payload) {
            panic!("{table} as the schema creates it is refused: {e}");
        }
        if let Some((last, _)) = good.last() {
            let e = check_table(spec, &good[..good.len() - 1], &all, payload);
            let e = e.expect_err("a missing column");
            assert!(
                e.contains(&format!("lacks the column(s) {last}")),
                "{table}: {e}"
            );
        }
        for col in spec.payload {
            let e = check_table(spec, &typed(wrong_type), &all, payload);
            let e = e.expect_err("a payload of another type");
            let fix = payload.fix.replace("{table}", table).replace("{col}", col);
            let named = format!("`{col}` of type {wrong_type}, not {}", payload.name);
            assert!(e.contains(&named) && e.contains(&fix), "{table}: {e}");
        }
        for (i, set) in spec.unique.iter().enumerate() {
            let others: Vec<&str> = all
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, u)| *u)
                .collect();
            let e = check_table(spec, &good, &others, payload).expect_err("no unique index");
            assert!(
                e.contains(&format!("no unique index on ({})", set.join(", "))),
                "{table}: {e}"
            );
        }
    }
}

/// Stores one binary QoS 1 message on a topic of its own and fetches it
/// back (queue mode, through a wildcard filter), byte for byte: the round
/// trip each backend's TLS test runs over an encrypted connection.
/// Panics, naming the step, if anything differs.
pub async fn store_and_fetch_back(b: &dyn Backend) {
    let root = unique("roundtrip");
    let m = crate::Message::new(
        "roundtrip",
        format!("{root}/t"),
        crate::QoS::AtLeastOnce,
        &b"\x00binary\xff"[..],
    );
    if let Err(e) = b
        .store_messages(std::slice::from_ref(&m), Default::default())
        .await
    {
        panic!("store: {e}");
    }
    let request = crate::FetchRequest {
        client_id: "roundtrip".into(),
        filter: format!("{root}/+"),
        mode: crate::OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    };
    let got = match b.fetch_messages(&request).await {
        Ok(got) => got,
        Err(e) => panic!("fetch: {e}"),
    };
    assert_eq!(got.len(), 1, "the one message stored");
    assert_eq!(got[0].payload, m.payload, "its payload, byte for byte");
}

/// How long one scenario may take before it fails: a guard against a
/// scenario that hangs, not a speed check. A binary's scenarios run
/// concurrently against one server, so on a slow server (FerretDB on
/// SQLite, two cores) one scenario can wait a long time for the others:
/// 120 s was once exceeded by a scenario that takes 6 s alone.
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs one scenario on a fresh multi-threaded runtime; panics (fails the
/// test) if it fails or takes longer than [`SCENARIO_TIMEOUT`].
pub fn run<F, Fut>(name: &str, factory: F, raw: RawFixture, scenario: fn(Ctx) -> BoxFuture)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Arc<dyn Backend>> + Send + 'static,
{
    let factory: Factory = Arc::new(move || Box::pin(factory()));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("conformance {name}: cannot start a tokio runtime: {e}"),
    };
    rt.block_on(async move {
        let backend = factory().await;
        let ctx = Ctx {
            backend,
            factory,
            raw,
        };
        if tokio::time::timeout(SCENARIO_TIMEOUT, scenario(ctx))
            .await
            .is_err()
        {
            panic!("conformance {name}: did not finish within {SCENARIO_TIMEOUT:?}");
        }
    });
}

/// Generates one `#[test]` per conformance scenario.
///
/// `$factory` is an `async fn() -> Arc<dyn Backend>` (each call a new
/// connection to the same store); `$raw` a [`RawFixture`] in the backend's
/// statement language; `schema = SCHEMA`, for a backend with a schema
/// file, adds a test of it ([`assert_schema`]).
#[macro_export]
macro_rules! conformance_tests {
    // A backend without raw statements.
    ($factory:path) => {
        $crate::conformance_tests!(
            $factory,
            $crate::testkit::RawFixture::none($crate::testkit::kinds::REDIS)
        );
    };
    // A backend with a schema file: the scenarios, and its schema
    // ([`testkit::assert_schema`]).
    ($factory:path, $raw:expr, schema = $schema:expr) => {
        $crate::conformance_tests!($factory, $raw);

        #[test]
        fn schema_file_and_start_up_check() {
            $crate::testkit::assert_schema(env!("CARGO_MANIFEST_DIR"), &$schema);
        }
    };
    ($factory:path, $raw:expr) => {
        $crate::__conformance_tests!($factory, $raw;
            status_lifecycle,
            proxy_subscriptions,
            empty_writes_change_nothing,
            queue_mode,
            pubsub_independent_positions,
            pubsub_first_subscription_gets_only_later_messages,
            pubsub_reconnect_gets_exactly_the_unacked,
            wildcard_offline_messages,
            retained_messages,
            retained_wildcards_and_dollar_topics,
            mqtt5_properties_are_kept,
            engine_stores_only_qos_1_and_2,
            engine_retain_and_delete,
            limits,
            backlog_pages,
            batch_store_keeps_order,
            storing_an_id_again_keeps_one_copy,
            acks_are_idempotent,
            hostile_values_in_builtins,
            hostile_values_in_raw_statements,
            concurrent_publishers_and_subscribers,
            pubsub_reads_never_skip_under_concurrent_writers,
            old_messages_are_swept_and_storage_stays_bounded,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($factory:path, $raw:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::testkit::run(
                    stringify!($name),
                    $factory,
                    $raw,
                    |ctx| ::std::boxed::Box::pin($crate::testkit::scenarios::$name(ctx)),
                );
            }
        )*
    };
}

pub mod inflight;
pub mod kinds;
pub mod load;
pub mod restart;
pub mod scenarios;
pub mod sql;

pub use inflight::{reader_never_passes_a_writer_in_flight, InFlightWriter};
pub use load::{LoadReport, StoredCheck, WriteLoad};
pub use restart::{restart_under_load, services, RestartReport};
