//! The core conformance suite against the live PostgreSQL (`PGSQL_URL`,
//! default postgres://root:public@127.0.0.1:5432/mqtt).

mod common;

use backend_core::testkit::RawFixture;
use backend_core::BackendKind;

backend_core::conformance_tests!(
    common::factory,
    RawFixture::sql(BackendKind::Pgsql),
    schema = backend_pgsql::schema::SCHEMA
);
