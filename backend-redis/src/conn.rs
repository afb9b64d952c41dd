//! Connections: a [`Connector`] that reaches the server (directly, or the
//! master through Sentinel, with or without TLS), and the pool of
//! [`Slot`]s, each one multiplexed connection replaced after it breaks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use redis::aio::MultiplexedConnection;
#[cfg(feature = "sentinel")]
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo,
    RedisConnectionInfo,
};
use tracing::{debug, info, warn};

use crate::config::{RedisSettings, ServerAddr, TlsSettings};
use crate::error::{breaks_connection, RedisError};

/// The certificates a TLS client gets; nothing can be one without the
/// `tls` feature (the settings never ask for TLS then).
#[cfg(feature = "tls")]
type Certificates = redis::TlsCertificates;
#[cfg(not(feature = "tls"))]
type Certificates = std::convert::Infallible;

/// Reaches the server a pool talks to.
pub(crate) enum Connector {
    /// One server.
    Direct(Client),
    /// Redis Cluster: the seed nodes, tried in turn on each connect (for
    /// the channel listener: a `PUBLISH` reaches every node, so any node
    /// that answers will do).
    Seeds {
        clients: Vec<Client>,
        next: AtomicUsize,
    },
    /// The master of a Sentinel group, looked up again on every connect.
    #[cfg(feature = "sentinel")]
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl Connector {
    pub(crate) fn new(s: &RedisSettings) -> Result<Self, RedisError> {
        let certs: Option<Certificates> = match &s.tls {
            Some(t) => Some(certificates(&s.pool, t)?),
            None => None,
        };
        let config_err = |key: &'static str, e: redis::RedisError| RedisError::Config {
            pool: s.pool.clone(),
            key,
            message: e.to_string(),
        };
        let direct = |server: &ServerAddr, certs: Option<Certificates>| {
            let mut redis_info = RedisConnectionInfo::default().set_db(s.database);
            if let Some(u) = &s.username {
                redis_info = redis_info.set_username(u);
            }
            if let Some(p) = &s.password {
                redis_info = redis_info.set_password(p.expose());
            }
            let info: ConnectionInfo = address(server, certs.is_some())
                .into_connection_info()
                .map_err(|e| config_err("server", e))?
                .set_redis_settings(redis_info);
            match certs {
                #[cfg(feature = "tls")]
                Some(c) => Client::build_with_tls(info, c).map_err(|e| config_err("ssl", e)),
                #[cfg(not(feature = "tls"))]
                Some(never) => match never {},
                None => Client::open(info).map_err(|e| config_err("server", e)),
            }
        };
        if s.cluster {
            // Without the `tls` feature `Certificates` is a Copy type.
            #[allow(clippy::clone_on_copy)]
            let clients = s
                .servers
                .iter()
                .map(|server| direct(server, certs.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Connector::Seeds {
                clients,
                next: AtomicUsize::new(0),
            });
        }
        match &s.sentinel {
            None => {
                let server = s.servers.first().ok_or_else(|| RedisError::Config {
                    pool: s.pool.clone(),
                    key: "server",
                    message: "no server given".into(),
                })?;
                Ok(Connector::Direct(direct(server, certs)?))
            }
            #[cfg(not(feature = "sentinel"))]
            Some(_) => Err(RedisError::Config {
                pool: s.pool.clone(),
                key: "sentinel",
                message: "this build has no `sentinel` feature".into(),
            }),
            #[cfg(feature = "sentinel")]
            Some(master) => {
                let nodes = s.servers.iter().map(|a| address(a, certs.is_some()));
                let mut b = SentinelClientBuilder::new(nodes, master, SentinelServerType::Master)
                    .map_err(|e| config_err("sentinel", e))?
                    .set_client_to_redis_db(s.database);
                if let Some(u) = &s.username {
                    b = b.set_client_to_redis_username(u);
                }
                if let Some(p) = &s.password {
                    b = b.set_client_to_redis_password(p.expose());
                }
                if let Some(c) = certs {
                    b = sentinel_tls(b, c);
                }
                let client = b.build().map_err(|e| config_err("sentinel", e))?;
                Ok(Connector::Sentinel(tokio::sync::Mutex::new(client)))
            }
        }
    }

    /// A client for the server (with Sentinel: the current master).
    pub(crate) async fn client(&self) -> redis::RedisResult<Client> {
        match self {
            Connector::Direct(c) => Ok(c.clone()),
            Connector::Seeds { clients, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed);
                clients
                    .get(i % clients.len().max(1))
                    .cloned()
                    .ok_or_else(|| {
                        redis::RedisError::from((
                            redis::ErrorKind::InvalidClientConfig,
                            "no seed node",
                        ))
                    })
            }
            #[cfg(feature = "sentinel")]
            Connector::Sentinel(s) => s.lock().await.async_get_client().await,
        }
    }

    /// A new multiplexed connection, and the server it reaches.
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> redis::RedisResult<(MultiplexedConnection, Server)> {
        let client = self.client().await?;
        let server = Server::of(&client);
        let conn = client
            .get_multiplexed_async_connection_with_config(config)
            .await?;
        Ok((conn, server))
    }

    /// A client for one of the Sentinels (for their event channels).
    pub(crate) async fn sentinel_client(&self) -> redis::RedisResult<Option<Client>> {
        match self {
            Connector::Direct(_) | Connector::Seeds { .. } => Ok(None),
            #[cfg(feature = "sentinel")]
            Connector::Sentinel(s) => s.lock().await.async_get_sentinel_client().await.map(Some),
        }
    }

    pub(crate) fn is_sentinel(&self) -> bool {
        match self {
            Connector::Direct(_) | Connector::Seeds { .. } => false,
            #[cfg(feature = "sentinel")]
            Connector::Sentinel(_) => true,
        }
    }
}

/// A server as host and port (what Sentinel names a master by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Server {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Server {
    pub(crate) fn of(client: &Client) -> Server {
        match client.get_connection_info().addr() {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => Server {
                host: host.clone(),
                port: *port,
            },
            other => Server {
                host: other.to_string(),
                port: 0,
            },
        }
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

fn address(a: &ServerAddr, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: a.host.clone(),
            port: a.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(a.host.clone(), a.port)
    }
}

/// TLS to the master and to the Sentinels, with the same certificates.
#[cfg(all(feature = "sentinel", feature = "tls"))]
fn sentinel_tls(b: SentinelClientBuilder, c: Certificates) -> SentinelClientBuilder {
    b.set_client_to_redis_tls_mode(redis::TlsMode::Secure)
        .set_client_to_redis_certificates(c.clone())
        .set_client_to_sentinel_certificates(c)
}

#[cfg(all(feature = "sentinel", not(feature = "tls")))]
fn sentinel_tls(_: SentinelClientBuilder, c: Certificates) -> SentinelClientBuilder {
    match c {}
}

/// The TLS certificates of a pool (`ssl = true`).
#[cfg(feature = "tls")]
pub(crate) fn certificates(pool: &str, t: &TlsSettings) -> Result<Certificates, RedisError> {
    ensure_crypto_provider();
    read_certificates(pool, t)
}

#[cfg(not(feature = "tls"))]
fn certificates(pool: &str, _: &TlsSettings) -> Result<Certificates, RedisError> {
    Err(RedisError::Config {
        pool: pool.to_owned(),
        key: "ssl",
        message: "this build has no `tls` feature".into(),
    })
}

/// rustls needs a process-wide crypto provider; install ring's unless the
/// application installed one already.
#[cfg(feature = "tls")]
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// backend-core's one trust policy ([`backend_core::tls`]) in the redis
/// crate's terms: the roots are always given (the CA file's, or the
/// system's), so no other list is ever trusted.
#[cfg(feature = "tls")]
fn read_certificates(pool: &str, t: &TlsSettings) -> Result<Certificates, RedisError> {
    use backend_core::tls::{TlsError, TlsMaterial};
    let files = backend_core::config::TlsFiles {
        ca_cert_file: t.cacertfile.clone(),
        cert_file: t.certfile.clone(),
        key_file: t.keyfile.clone(),
    };
    let material = TlsMaterial::load(&files).map_err(|e| match e {
        TlsError::Read { key, path, source } => RedisError::TlsFile {
            pool: pool.to_owned(),
            key,
            path,
            message: format!("cannot read it: {source}"),
        },
        TlsError::Invalid { key, path, problem } => RedisError::TlsFile {
            pool: pool.to_owned(),
            key,
            path,
            message: problem,
        },
        other => RedisError::Config {
            pool: pool.to_owned(),
            key: "ssl",
            message: other.to_string(),
        },
    })?;
    Ok(redis::TlsCertificates {
        client_tls: material.identity().map(|id| redis::ClientTlsConfig {
            client_cert: id.cert_pem.clone(),
            client_key: id.key_pem.clone(),
        }),
        root_cert: Some(material.roots_pem()),
    })
}

/// A connection the backend's commands run on: one multiplexed connection
/// to a server, or the cluster connection (which routes each command to
/// the node of its key).
#[derive(Clone)]
pub(crate) enum AnyConn {
    Server(MultiplexedConnection),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for AnyConn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            AnyConn::Server(c) => c.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            AnyConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            AnyConn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            AnyConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AnyConn::Server(c) => c.get_db(),
            #[cfg(feature = "cluster")]
            AnyConn::Cluster(c) => c.get_db(),
        }
    }
}

/// One multiplexed connection, replaced lazily after it breaks.
#[derive(Default)]
struct Slot {
    /// The connection, its generation and its server, for a quick clone.
    current: Mutex<Option<(u64, MultiplexedConnection, Server)>>,
    /// Held while connecting, so one task reconnects and the others wait.
    connecting: tokio::sync::Mutex<u64>,
}

impl Slot {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(g, c, _)| (*g, c.clone()))
    }
}

/// The connections of one pool: `pool_size` slots used round robin. With
/// Sentinel, a watcher task follows the master (see [`watch_sentinel`]).
pub(crate) struct Connections {
    pub(crate) settings: RedisSettings,
    pub(crate) connector: Connector,
    config: AsyncConnectionConfig,
    slots: Box<[Slot]>,
    next: AtomicUsize,
    /// The master the newest connection reached (Sentinel).
    master: Mutex<Option<Server>>,
    /// Bumped whenever the Sentinel master changes; listeners resubscribe.
    pub(crate) master_changes: watch::Sender<u64>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Connections {
    fn drop(&mut self) {
        if let Some(w) = self
            .watcher
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            w.abort();
        }
    }
}

/// A connection handed out for one operation.
pub(crate) struct Lease {
    pub(crate) slot: usize,
    generation: u64,
    pub(crate) conn: MultiplexedConnection,
}

impl Connections {
    pub(crate) fn new(settings: RedisSettings) -> Result<Self, RedisError> {
        let connector = Connector::new(&settings)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connection_timeout))
            .set_response_timeout(Some(settings.response_timeout));
        let slots = (0..settings.pool_size.max(1))
            .map(|_| Slot::default())
            .collect();
        Ok(Connections {
            settings,
            connector,
            config,
            slots,
            next: AtomicUsize::new(0),
            master: Mutex::new(None),
            master_changes: watch::channel(0).0,
            watcher: Mutex::new(None),
        })
    }

    /// With Sentinel, starts the task that follows the master. Call inside
    /// a tokio runtime.
    pub(crate) fn start_watcher(self: &Arc<Self>) {
        if !self.connector.is_sentinel() {
            return;
        }
        let task = tokio::spawn(watch_sentinel(Arc::downgrade(self)));
        *self.watcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// A connection of the next slot, connecting it if needed.
    pub(crate) async fn lease(&self) -> Result<Lease, RedisError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.lease_slot(slot).await
    }

    pub(crate) async fn lease_slot(&self, slot: usize) -> Result<Lease, RedisError> {
        let s = &self.slots[slot];
        if let Some((generation, conn)) = s.current() {
            return Ok(Lease {
                slot,
                generation,
                conn,
            });
        }
        let mut generations = s.connecting.lock().await;
        if let Some((generation, conn)) = s.current() {
            return Ok(Lease {
                slot,
                generation,
                conn,
            });
        }
        let connected = tokio::time::timeout(
            self.settings.connection_timeout,
            self.connector.connect(&self.config),
        )
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting timed out",
            )))
        });
        let (conn, server) = connected.map_err(|source| {
            warn!(pool = %self.settings.pool, target = %self.settings.target(), slot, error = %source, "redis: cannot connect");
            RedisError::Connect {
                pool: self.settings.pool.clone(),
                target: self.settings.target(),
                source,
            }
        })?;
        *generations += 1;
        let generation = *generations;
        if generation > 1 {
            info!(pool = %self.settings.pool, slot, server = %server, "redis: reconnected");
        } else {
            debug!(pool = %self.settings.pool, slot, server = %server, "redis: connected");
        }
        *s.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((generation, conn.clone(), server.clone()));
        self.observe_master(server);
        Ok(Lease {
            slot,
            generation,
            conn,
        })
    }

    /// Notes where the master is (Sentinel). When it moved, the slots still
    /// connected elsewhere are emptied, so their next use reconnects to the
    /// new master rather than write to a demoted one, and listeners are told.
    pub(crate) fn observe_master(&self, server: Server) {
        if !self.connector.is_sentinel() {
            return;
        }
        {
            let mut m = self.master.lock().unwrap_or_else(|p| p.into_inner());
            match &*m {
                Some(known) if *known == server => return,
                None => {
                    *m = Some(server);
                    return;
                }
                Some(old) => {
                    info!(pool = %self.settings.pool, from = %old, to = %server, "redis: the Sentinel master moved");
                    *m = Some(server.clone());
                }
            }
        }
        for s in self.slots.iter() {
            let mut cur = s.current.lock().unwrap_or_else(|p| p.into_inner());
            if matches!(&*cur, Some((_, _, at)) if *at != server) {
                *cur = None;
            }
        }
        self.master_changes.send_modify(|n| *n += 1);
    }

    /// Drops the lease's connection if `e` means it is unusable, so the
    /// next lease of its slot reconnects. Returns whether it did.
    pub(crate) fn discard_if_broken(&self, lease: &Lease, e: &redis::RedisError) -> bool {
        if !breaks_connection(e) {
            return false;
        }
        let mut cur = self.slots[lease.slot]
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if matches!(&*cur, Some((g, _, _)) if *g == lease.generation) {
            warn!(pool = %self.settings.pool, slot = lease.slot, error = %e, "redis: connection dropped; will reconnect");
            *cur = None;
        }
        true
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows the Sentinel master for a pool: subscribes to the Sentinels'
/// `+switch-master` events (`<name> <old-ip> <old-port> <new-ip> <new-port>`)
/// and, every `check_interval`, asks for the master too (in case an event
/// was missed while reconnecting). Ends when the pool is dropped.
async fn watch_sentinel(conns: Weak<Connections>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(c) = conns.upgrade() else { return };
        let pool = c.settings.pool.clone();
        let name = c.settings.sentinel.clone().unwrap_or_default();
        let every = c.settings.check_interval;
        let within = c.settings.connection_timeout;
        let subscribe = async {
            let client = c.connector.sentinel_client().await?.ok_or_else(|| {
                redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Sentinel"))
            })?;
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe("+switch-master").await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let subscribed = tokio::time::timeout(within, subscribe).await;
        drop(c);
        let pubsub = match subscribed {
            Ok(Ok(ps)) => ps,
            Ok(Err(e)) => {
                warn!(pool = %pool, error = %e, retry_in = ?backoff, "redis: cannot subscribe to the Sentinels' +switch-master");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                warn!(pool = %pool, retry_in = ?backoff, "redis: subscribing to +switch-master timed out");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        debug!(pool = %pool, "redis: following the Sentinel master");
        let mut events = pubsub.into_on_message();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = events.next() => {
                    let Some(msg) = msg else {
                        warn!(pool = %pool, "redis: lost the Sentinel event connection; reconnecting");
                        break;
                    };
                    let text = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                    let parts: Vec<&str> = text.split(' ').collect();
                    if let [n, _, _, host, port] = parts.as_slice() {
                        if *n == name {
                            let Some(c) = conns.upgrade() else { return };
                            if let Ok(port) = port.parse() {
                                c.observe_master(Server { host: (*host).to_owned(), port });
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    let Some(c) = conns.upgrade() else { return };
                    if let Ok(Ok(client)) = tokio::time::timeout(within, c.connector.client()).await {
                        c.observe_master(Server::of(&client));
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}
