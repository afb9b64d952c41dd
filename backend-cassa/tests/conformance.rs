//! The core conformance suite against the live Cassandra (`CASSA_NODES`,
//! default 127.0.0.1:9042, keyspace `mqtt`).

mod common;

use backend_core::testkit::RawFixture;

backend_core::conformance_tests!(
    common::factory,
    RawFixture::cql(),
    schema = backend_cassa::schema::SCHEMA
);
