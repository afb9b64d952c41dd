//! The core conformance suite against the live MongoDB wire server
//! (`MONGO_URL`, default mongodb://127.0.0.1:27017, database `mqtt_backend_test`).
//! MongoDB has no raw statements (its capabilities say so): the
//! raw-statement scenario checks that `execute` returns an `Unsupported`
//! error instead.
//! The database is emptied once at the start (see `common::fresh_factory`).

mod common;

backend_core::conformance_tests!(common::fresh_factory);
