//! The core conformance suite against the live MySQL/MariaDB (`MYSQL_URL`,
//! default mysql://root:public@127.0.0.1:3306/mqtt).

mod common;

use backend_core::testkit::RawFixture;

backend_core::conformance_tests!(
    common::factory,
    RawFixture::sql(backend_mysql::KIND),
    schema = backend_mysql::schema::SCHEMA
);
