//! Adding a backend: the files to write, what backend-core already does
//! for you, and how the example broker picks it up. Documentation only.
//!
//! A backend is one crate, `backend-<name>/`, that depends on this one and
//! on its database driver. Everything that is not storage I/O (rules,
//! templates, topic matching, batching, retries, the disk buffer, health,
//! delivery bookkeeping) lives in backend-core and is not written again.
//! The rules a backend must keep are in [`crate::contract`]; the
//! conformance suite checks them against the real server.
//!
//! # The files
//!
//! | file | what it holds |
//! |---|---|
//! | `Cargo.toml` | `backend-core` (feature `tls` if the driver speaks TLS), the driver, `async-trait`, `thiserror`, `tracing`; `backend-core` with feature `testkit` under `[dev-dependencies]` |
//! | `README.md` | the crate docs (`#![doc = include_str!("../README.md")]`): configuration keys, schema and why it differs from the seed, errors, tests |
//! | `src/lib.rs` | the modules, the public types, and the driver re-exported (`pub use <driver>;`) so users name the same version |
//! | `src/config.rs` | the crate's kind: `pub const KIND: BackendKind = BackendKind::declare(&KindSpec { .. })` (its name in the conf, its pool prefix, its pool keys with their types and defaults, its global keys, its statement language, its [`crate::backend::Capabilities`]) and `backend_core::register_kind!(KIND);`, which makes [`crate::Config::parse`] read `backend.<name>.` keys wherever the crate is linked (see [`crate::config::BackendKind`]); then the pool keys read from a [`crate::config::PoolConfig`] into a settings struct; SQL backends on a server wrap [`crate::config::DbSettings`] (their [`crate::config::DbDefaults`] from `db_defaults!`); others read a user and password with [`crate::config::PoolConfig::login`] and the TLS files with [`crate::config::PoolConfig::tls_files`]; a bad value is [`crate::CommonError::config`], which names the key and its line |
//! | `src/error.rs` | one `thiserror` enum: `Common(#[from] CommonError)` (settings, TLS, schema, bind, data and timeout failures) plus the driver's variants, a `kind()` that maps each onto [`crate::ErrorKind`] (connection losses and timeouts are retryable, settings are not), and `From<YourError> for BackendError` |
//! | `src/schema.rs` and `<name>/` schema file | the tables, embedded with `include_str!`; the same file under `etc/`, described by one [`crate::schema::Schema`] const (the text, the file, the payload type, the tables as [`crate::schema::TableSpec`]s) whose [`crate::schema::Schema::check`] runs the start-up check over the catalog; the `schema = SCHEMA` argument of the `conformance_tests!` line tests it ([`crate::testkit::assert_schema`]): the two copies identical, and the check passing the tables the file creates and refusing, with the fix, tables that differ |
//! | `src/backend.rs` | the backend struct, its `connect`, and `backend_core::backend_connect!(MyBackend, crate::KIND, MyError);` (the [`crate::Connect`] impl and the crate's `connect_pools`) |
//! | `src/backend/storage.rs` | `impl` [`crate::Backend`]: each operation in terms of the parent module's statements and helpers (a child module, so it sees them without widening their visibility) |
//! | `tests/conformance.rs` | one line: `backend_core::conformance_tests!(factory, RawFixture::..., schema = SCHEMA)` |
//!
//! Larger backends split further by concern, as the existing ones do: the
//! statements (`statements.rs`), decoding rows into values and messages
//! (`convert.rs`), and, for a driver with sharp edges, a module that keeps
//! it behind one seam (backend-cassa's `driver.rs`).
//!
//! What two backends would both write is here already: reading message,
//! subscription and client-status rows ([`crate::message::Columns`], with
//! [`crate::Message::from_row`] and [`crate::backend::ClientStatus::from_row`]),
//! splitting a write into batches within the server's limits
//! ([`crate::backend::batches`]), the retained and fetch re-checks
//! ([`crate::topic::decode_matching`], [`crate::topic::TopicSelect`]), the
//! last write of each id in a batch ([`crate::message::last_of_each`]), and
//! the fetch limits ([`crate::backend::apply_limits`]).
//!
//! # The trait impls
//!
//! [`crate::Connect`] says which configuration kind the crate reads and
//! how one pool connects. With an inherent `MyBackend::connect(&PoolConfig,
//! &Config)`, one line writes it and the crate's `connect_pools`:
//!
//! ```text
//! backend_core::backend_connect!(MyBackend, crate::KIND, MyError);
//! ```
//!
//! With it, [`crate::connect_pools`] connects every pool of a
//! configuration for [`crate::Engine::new`], and
//! [`crate::connect::starter`] gives [`crate::pool::start_pool`] a pool
//! that starts while its server is still away. `connect` opens a first
//! connection and checks (or, with `create_tables`, creates) the schema,
//! so that a wrong password or a missing table fails at start with a clear
//! error; it must never wait without a deadline.
//!
//! [`crate::Backend`] is storage I/O only. Required: what the engine
//! calls (client online and offline, the subscription lookup, store,
//! fetch and ack messages, store, delete and look up retained messages,
//! and `ping`, which has no default so that no backend is reported
//! healthy without asking its server), plus `info()`: the backend's name
//! and its [`crate::backend::Capabilities`], the same ones its kind
//! declares. The rest is provided through capabilities, with defaults
//! that answer [`crate::ErrorKind::Unsupported`] naming the capability:
//! raw statements (`execute`, `raw_statements`), the admin operations the
//! engine never calls (`client_status`, `store_subscriptions`,
//! `delete_subscriptions`, `admin`) and removal by age
//! (`remove_messages_before`, `sweep`; without it the engine says at
//! start that storage grows until messages are acknowledged). The engine
//! and the configuration decide by capabilities, never by a kind's name. Its docs say what each method must do; its
//! slice methods receive whole batches from the write path, so write each
//! batch in one round trip or a few. Values are always bound as
//! parameters, never spliced into statement text. Bytes read back from
//! the database go through checks, never `unwrap`: a row another tool
//! wrote is a [`crate::CommonError::Data`] error, not a panic.
//!
//! # The tests
//!
//! `tests/conformance.rs` runs every scenario of [`crate::testkit`] against
//! the real server that `scripts/services.sh` starts, with a factory
//! giving a fresh connection per call:
//!
//! ```text
//! mod common;
//! use backend_core::testkit::RawFixture;
//! backend_core::conformance_tests!(
//!     common::factory,
//!     RawFixture::sql(backend_mysql::KIND),
//!     schema = backend_mysql::schema::SCHEMA
//! );
//! ```
//!
//! A backend without raw statements passes `RawFixture::none(kind)`: the
//! raw-statement scenario then checks that `execute` answers
//! `Unsupported`. One without a schema file (Redis) leaves `schema` out. A test that needs the server fails (it never skips) when
//! the server cannot be reached. Add the backend's own tests beside it:
//! hostile values in raw statements, the schema check, a restart under
//! load ([`crate::testkit::restart`]), TLS against a real TLS server.
//!
//! # The server and the broker
//!
//! - `scripts/services.sh`: a `start_<name>` that installs the server from
//!   the distribution's packages or a registry, keeps its data under
//!   `target/services/`, and waits for a real query; `scripts/test.sh`
//!   starts it before `cargo test`.
//! - `etc/emqx_backend_<name>.conf`: the seed's block for the kind.
//! - The example broker: a cargo feature `<name>` in `examples/Cargo.toml`
//!   and one arm in `examples/src/backends.rs`:
//!   `"<name>" => Ok((connector_of::<backend_x::XBackend>(), None))`.
//!
//! Nothing under `backend-core/src/` changes: core names no backend.
//!
//! # A worked example: backend-sqlite
//!
//! `backend-sqlite/` was added this way, touching no file of core:
//!
//! - `src/config.rs`: `KIND` (name and pool prefix `sqlite`; keys `path`,
//!   `pool_size`, `create_tables`, `busy_timeout`, `synchronous`, each
//!   with its default; SQL with `?` placeholders; raw statements, admin
//!   operations and the sweep), `register_kind!(KIND)`, and
//!   `SqliteConfig::from_pool`.
//! - `src/error.rs`: `SqliteError`, a busy database a conflict (retried),
//!   a full disk a lost connection (retried), a rejected statement a
//!   query error.
//! - `src/schema.rs` with `sql/emqx_backend_sqlite.sql` (the same file as
//!   `etc/sql/`): the seed's five tables; the check reads SQLite's
//!   catalog (`pragma_table_info`, `pragma_index_list`) into a
//!   [`crate::schema::Catalog`].
//! - `src/statements.rs`: the built-in functions' SQL; the topic
//!   conditions come from [`crate::sql_filter`], shared with MySQL.
//! - `src/backend.rs`: the file's connections (deadpool-sqlite), one
//!   writer taking each batch of the write path as one transaction (group
//!   commit), readers beside it in WAL mode; `src/backend/storage.rs` the
//!   [`crate::Backend`] impl, reading rows through
//!   [`crate::message::Columns`].
//! - `tests/conformance.rs`: the `conformance_tests!` line on a file under
//!   the target folder. SQLite needs no server, so `scripts/services.sh`
//!   has nothing to start.
//! - `etc/emqx_backend_sqlite.conf`, and the broker's `sqlite` feature and
//!   arm: the example broker's default storage.
//!
//! # Checklist
//!
//! 1. One crate: its kind declared and registered, one trait impl file, a
//!    config file, a schema.
//! 2. `conformance_tests!` passes against the real server.
//! 3. `cargo clippy --workspace --all-targets --all-features -D warnings`,
//!    `cargo fmt --check`, and rustdoc on every public item.
//! 4. `cargo package -p <crate>` succeeds.
