//! [`Connect`]: how a backend crate is plugged in. A backend implements it
//! once, and gets [`connect_pools`] (every pool of a configuration, for
//! [`crate::Engine::new`]) and [`starter`] (one pool that may start while
//! its server is away, for [`crate::pool::start_pool`]) for free.
//!
//! ```no_run
//! # async fn demo<B: backend_core::Connect>() -> Result<(), Box<dyn std::error::Error>> {
//! let config = backend_core::Config::parse("backend.redis.pool1.server = 127.0.0.1:6379\n")?;
//! let pools = backend_core::connect_pools::<B>(&config).await?;
//! let engine = backend_core::Engine::new(&config, &pools)?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::backend::{Backend, BackendError};
use crate::config::{BackendKind, Config, PoolConfig};
use crate::engine::Pools;
use crate::error::CommonError;
use crate::pool;

/// A backend that connects one pool from its configuration.
#[async_trait]
pub trait Connect: Backend + Sized + 'static {
    /// The configuration kind it reads (`backend.<kind>.*`).
    const KIND: BackendKind;

    /// Its error; a [`CommonError`] converts into it, and it converts into
    /// the engine's [`BackendError`] (keeping its kind).
    type Error: std::error::Error + From<CommonError> + Into<BackendError> + Send + Sync + 'static;

    /// Connects the pool `pool` of `config`: opens a first connection and
    /// checks (or creates) the schema, so that what retrying cannot mend
    /// (a wrong password, a missing table) fails here.
    async fn connect(pool: &PoolConfig, config: &Config) -> Result<Self, Self::Error>;
}

/// Connects every pool of `config`, failing on the first pool that cannot
/// connect; a configuration of another kind is a
/// [`CommonError::WrongKind`].
pub async fn connect_pools<B: Connect>(config: &Config) -> Result<Pools, B::Error> {
    CommonError::check_kind(B::KIND, config.kind())?;
    let mut pools = Pools::new();
    for (name, pool) in config.pools() {
        let backend = B::connect(pool, config).await?;
        pools.insert(name.clone(), Arc::new(backend) as Arc<dyn Backend>);
    }
    Ok(pools)
}

/// The connect function of one pool for [`pool::start_pool`]: each call is
/// a new attempt with `B::connect`.
pub fn starter<B: Connect>(pool: PoolConfig, config: Config) -> pool::Connect {
    let (pool, config) = (Arc::new(pool), Arc::new(config));
    Arc::new(move || -> pool::ConnectFuture {
        let (pool, config) = (Arc::clone(&pool), Arc::clone(&config));
        Box::pin(async move {
            let backend = B::connect(&pool, &config).await.map_err(Into::into)?;
            Ok(Arc::new(backend) as Arc<dyn Backend>)
        })
    })
}

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;

/// Implements [`Connect`] for a backend type with an inherent
/// `async fn connect(&PoolConfig, &Config) -> Result<Self, Error>`, and
/// writes the crate's `connect_pools` for it: one line per backend crate.
///
/// ```text
/// backend_core::backend_connect!(MyBackend, crate::KIND, MyError);
/// ```
#[macro_export]
macro_rules! backend_connect {
    ($backend:ident, $kind:expr, $error:ty) => {
        #[$crate::connect::__async_trait]
        impl $crate::Connect for $backend {
            const KIND: $crate::BackendKind = $kind;
            type Error = $error;

            async fn connect(
                pool: &$crate::config::PoolConfig,
                config: &$crate::Config,
            ) -> ::core::result::Result<Self, $error> {
                $backend::connect(pool, config).await
            }
        }

        /// Connects every pool of a configuration of this backend's kind,
        /// for `backend_core::Engine::new`: `backend_core::connect_pools`
        /// for this backend.
        pub async fn connect_pools(
            config: &$crate::Config,
        ) -> ::core::result::Result<$crate::Pools, $error> {
            $crate::connect_pools::<$backend>(config).await
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryBackend;

    // The in-memory backend, connected the way a database backend is
    // (test builds only).
    #[async_trait]
    impl Connect for MemoryBackend {
        const KIND: BackendKind = crate::testkit::kinds::REDIS;
        type Error = CommonError;
        async fn connect(pool: &PoolConfig, _config: &Config) -> Result<Self, CommonError> {
            if pool.name() == "broken" {
                return Err(CommonError::config(pool, "server", "unreachable"));
            }
            Ok(MemoryBackend::new())
        }
    }

    #[tokio::test]
    async fn every_pool_is_connected_and_kinds_are_checked() {
        let config = Config::parse(
            "backend.redis.pool1.server = 127.0.0.1:6379\n\
             backend.redis.pool2.server = 127.0.0.1:6380\n",
        )
        .expect("valid");
        let pools = connect_pools::<MemoryBackend>(&config)
            .await
            .expect("connects");
        assert_eq!(pools.len(), 2);
        let mysql = Config::parse("backend.mysql.pool1.server = 127.0.0.1:3306\n").expect("ok");
        let Err(e) = connect_pools::<MemoryBackend>(&mysql).await else {
            panic!("a MySQL configuration was connected");
        };
        assert!(matches!(e, CommonError::WrongKind { .. }), "{e}");
        let broken =
            Config::parse("backend.redis.broken.server = 127.0.0.1:6379\n").expect("valid");
        let Err(e) = connect_pools::<MemoryBackend>(&broken).await else {
            panic!("a broken pool was connected");
        };
        assert!(e.to_string().contains("unreachable"), "{e}");
        let (name, pool) = broken.pools().iter().next().expect("one pool");
        let again = starter::<MemoryBackend>(pool.clone(), broken.clone());
        let Err(e) = again().await else {
            panic!("each attempt connects anew, and fails");
        };
        assert!(!e.is_retryable(), "{name}: {e}");
    }
}
