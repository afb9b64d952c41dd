//! Connects the backend a configuration names, among those compiled in
//! (cargo features `sqlite` (the default), `redis`, `pgsql`, `mysql`, `mongo`,
//! `cassa`), or the in-memory backend.

use std::sync::Arc;

use backend_core::config::PoolConfig;
use backend_core::pool::{start_pool, Connect, StartMode};
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

/// Connects every pool of `config` on the chosen storage. With
/// [`StartMode::Background`] a pool whose server cannot be reached starts
/// disconnected and connects in the background (see
/// [`backend_core::pool`]); a wrong password or a missing table fails here
/// either way.
pub async fn connect(
    config: &Config,
    storage: Storage,
    mode: StartMode,
) -> Result<Started, StartError> {
    if storage == Storage::Memory {
        return Ok(Started {
            pools: memory_pools(config),
            commands: None,
        });
    }
    let kind = config.kind();
    let (connector, commands) = connector(config)?;
    let mut pools = Pools::new();
    for (name, pool) in config.pools() {
        let connect = connector(pool.clone(), config.clone());
        let backend = start_pool(name, kind.name(), mode, connect)
            .await
            .map_err(|e| connect_error(kind, format!("pool {name}: {e}")))?;
        pools.insert(name.clone(), backend as Arc<dyn Backend>);
    }
    Ok(Started { pools, commands })
}

/// Makes the connect function of one pool of a kind: what each
/// compiled-in backend does.
type Connector = Arc<dyn Fn(PoolConfig, Config) -> Connect + Send + Sync>;

/// The connector of a backend type that implements [`backend_core::Connect`].
#[cfg_attr(
    not(any(
        feature = "sqlite",
        feature = "pgsql",
        feature = "mysql",
        feature = "mongo",
        feature = "cassa"
    )),
    allow(dead_code)
)]
fn connector_of<B: backend_core::Connect>() -> Connector {
    Arc::new(backend_core::connect::starter::<B>)
}

/// The connector of `config`'s kind, and the receiver of its channel's
/// commands if it has one.
fn connector(
    config: &Config,
) -> Result<
    (
        Connector,
        Option<tokio::sync::mpsc::Receiver<SubscriptionCommand>>,
    ),
    StartError,
> {
    let kind = config.kind();
    match kind.name() {
        #[cfg(feature = "redis")]
        "redis" => Ok(redis::connector()),
        #[cfg(feature = "sqlite")]
        "sqlite" => Ok((connector_of::<backend_sqlite::SqliteBackend>(), None)),
        #[cfg(feature = "pgsql")]
        "pgsql" => Ok((connector_of::<backend_pgsql::PgsqlBackend>(), None)),
        #[cfg(feature = "mysql")]
        "mysql" => Ok((connector_of::<backend_mysql::MysqlBackend>(), None)),
        #[cfg(feature = "mongo")]
        "mongo" => Ok((connector_of::<backend_mongo::MongoBackend>(), None)),
        #[cfg(feature = "cassa")]
        "cassa" => Ok((connector_of::<backend_cassa::CassaBackend>(), None)),
        // Reached only when some backend is left out of the build.
        #[allow(unreachable_patterns)]
        _ => Err(StartError::NotCompiled { kind }),
    }
}

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

    use backend_core::config::PoolConfig;
    use backend_core::pool::{Connect, ConnectFuture};
    use backend_core::{Backend, Config};
    use backend_redis::{ChannelCommand, ChannelListener, RedisBackend};
    use tokio::sync::mpsc;

    use super::{Connector, SubscriptionCommand};

    /// Connects a pool, and listens to its `channel` if it has one, from
    /// the moment it is connected.
    pub fn connector() -> (Connector, Option<mpsc::Receiver<SubscriptionCommand>>) {
        let (tx, rx) = mpsc::channel(1024);
        let connector: Connector = Arc::new(move |pool: PoolConfig, config: Config| -> Connect {
            let (tx, pool, config) = (tx.clone(), Arc::new(pool), Arc::new(config));
            Arc::new(move || -> ConnectFuture {
                let (tx, pool, config) = (tx.clone(), Arc::clone(&pool), Arc::clone(&config));
                Box::pin(async move {
                    let backend = RedisBackend::connect(&pool, &config).await?;
                    if backend.settings().channel.is_some() {
                        forward(backend.listen()?, tx);
                    }
                    Ok(Arc::new(backend) as Arc<dyn Backend>)
                })
            })
        });
        (connector, Some(rx))
    }

    fn forward(mut listener: ChannelListener, tx: mpsc::Sender<SubscriptionCommand>) {
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
}
