//! The core conformance suite against the live Redis (`REDIS_URL`).

mod common;

use std::sync::Arc;

use backend_core::testkit::RawFixture;
use backend_core::Backend;

async fn backend() -> Arc<dyn Backend> {
    Arc::new(common::backend().await)
}

backend_core::conformance_tests!(backend, RawFixture::redis());
