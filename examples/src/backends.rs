//! Connects the backend a configuration names, among those compiled in.

use std::sync::Arc;

use backend_core::{Backend, BackendKind, Config, MemoryBackend, Pools};

/// Why the backend could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration's kind was not compiled into this binary.
    #[error("this broker was built without the {kind} backend: rebuild with `--features {kind}`, or run the rules on `--backend memory`")]
    NotCompiled {
        /// The kind the configuration is for.
        kind: BackendKind,
    },
    /// Connecting a pool failed.
    #[error("cannot connect the {kind} backend: {message}")]
    Connect {
        /// The kind.
        kind: BackendKind,
        /// What the backend said (never a password).
        message: String,
    },
}

/// Which storage to run a configuration's rules on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The database the configuration is for.
    Configured,
    /// The in-process [`MemoryBackend`], whatever the configuration's kind.
    Memory,
}

/// Connects every pool of `config` on the chosen storage.
pub async fn connect(config: &Config, storage: Storage) -> Result<Pools, StartError> {
    if storage == Storage::Memory {
        return Ok(memory_pools(config));
    }
    let kind = config.kind();
    #[allow(clippy::match_single_binding)]
    match kind {
        _ => Err(StartError::NotCompiled { kind }),
    }
}

/// One shared [`MemoryBackend`] behind every pool of `config`.
pub fn memory_pools(config: &Config) -> Pools {
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    config
        .pools()
        .keys()
        .map(|name| (name.clone(), Arc::clone(&memory)))
        .collect()
}
