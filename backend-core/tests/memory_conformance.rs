//! `MemoryBackend` passes the whole conformance suite.

use std::sync::{Arc, OnceLock};

use backend_core::testkit::RawFixture;
use backend_core::{Backend, MemoryBackend};

/// Every call is a new handle on one shared store, as a new connection to
/// one server would be.
async fn backend() -> Arc<dyn Backend> {
    static STORE: OnceLock<MemoryBackend> = OnceLock::new();
    Arc::new(STORE.get_or_init(MemoryBackend::new).clone())
}

backend_core::conformance_tests!(backend, RawFixture::redis());
