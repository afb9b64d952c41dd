//! Connects the backend a configuration names, among those compiled in
//! (cargo features `redis`, `pgsql`, `mysql`), or the in-memory backend.

use std::sync::Arc;

use backend_core::{Backend, BackendKind, Config, MemoryBackend, Pools, QoS};

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
    #[error("cannot start the {kind} backend: {message}")]
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

/// A request from outside the broker to change a client's subscriptions
/// (the Redis backend's channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionCommand {
    /// Subscribe the client to the filter.
    Subscribe {
        /// The client.
        client_id: String,
        /// The filter.
        filter: String,
        /// The QoS.
        qos: QoS,
    },
    /// Unsubscribe the client from the filter.
    Unsubscribe {
        /// The client.
        client_id: String,
        /// The filter.
        filter: String,
    },
}

/// The started storage.
pub struct Started {
    /// The backend of each pool.
    pub pools: Pools,
    /// Commands arriving from the backends' channels, if any listen.
    pub commands: Option<tokio::sync::mpsc::Receiver<SubscriptionCommand>>,
}

/// Connects every pool of `config` on the chosen storage.
pub async fn connect(config: &Config, storage: Storage) -> Result<Started, StartError> {
    if storage == Storage::Memory {
        return Ok(Started {
            pools: memory_pools(config),
            commands: None,
        });
    }
    let kind = config.kind();
    match kind {
        #[cfg(feature = "redis")]
        BackendKind::Redis => redis::connect(config)
            .await
            .map_err(|e| connect_error(kind, e)),
        #[cfg(feature = "pgsql")]
        BackendKind::Pgsql => backend_pgsql::connect_pools(config)
            .await
            .map(|pools| Started {
                pools,
                commands: None,
            })
            .map_err(|e| connect_error(kind, e)),
        #[cfg(feature = "mysql")]
        BackendKind::Mysql => backend_mysql::connect_pools(config)
            .await
            .map(|pools| Started {
                pools,
                commands: None,
            })
            .map_err(|e| connect_error(kind, e)),
        _ => Err(StartError::NotCompiled { kind }),
    }
}

#[cfg_attr(
    not(any(feature = "redis", feature = "pgsql", feature = "mysql")),
    allow(dead_code)
)]
fn connect_error(kind: BackendKind, e: impl std::fmt::Display) -> StartError {
    StartError::Connect {
        kind,
        message: e.to_string(),
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

#[cfg(feature = "redis")]
mod redis {
    use std::sync::Arc;

    use backend_core::{Config, Pools};
    use backend_redis::{ChannelCommand, RedisBackend, RedisError};
    use tokio::sync::mpsc;

    use super::{Started, SubscriptionCommand};

    /// Connects each pool, and listens to the `channel` of those that have one.
    pub async fn connect(config: &Config) -> Result<Started, RedisError> {
        let mut pools = Pools::new();
        let (tx, rx) = mpsc::channel(1024);
        let mut listening = false;
        for (name, pool) in config.pools() {
            let backend = RedisBackend::connect(pool, config).await?;
            if backend.settings().channel.is_some() {
                let mut listener = backend.listen()?;
                let tx = tx.clone();
                listening = true;
                tokio::spawn(async move {
                    while let Some(cmd) = listener.recv().await {
                        let cmd = match cmd {
                            ChannelCommand::Subscribe {
                                client_id,
                                topic,
                                qos,
                            } => SubscriptionCommand::Subscribe {
                                client_id,
                                filter: topic,
                                qos,
                            },
                            ChannelCommand::Unsubscribe { client_id, topic } => {
                                SubscriptionCommand::Unsubscribe {
                                    client_id,
                                    filter: topic,
                                }
                            }
                        };
                        if tx.send(cmd).await.is_err() {
                            break;
                        }
                    }
                });
            }
            pools.insert(name.clone(), Arc::new(backend));
        }
        Ok(Started {
            pools,
            commands: listening.then_some(rx),
        })
    }
}
