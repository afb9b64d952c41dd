//! The core conformance suite against the live PostgreSQL (`PGSQL_URL`,
//! default postgres://root:public@127.0.0.1:5432/mqtt).

mod common;

use backend_core::testkit::RawFixture;

backend_core::conformance_tests!(
    common::factory,
    RawFixture::sql(backend_pgsql::KIND),
    schema = backend_pgsql::schema::SCHEMA
);
