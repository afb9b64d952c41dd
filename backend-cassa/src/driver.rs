//! The CQL driver (cdrs-tokio), behind one module: connecting with a
//! deadline, prepared statements cached per text, unlogged batches, and a
//! timeout on every request. The rest of the crate sees [`Cql`], CQL text
//! and [`CqlValue`]s, so another driver could sit behind the same seam.
//!
//! cdrs-tokio's session build retries forever, silently, when every node
//! refuses the connection, the password, or the keyspace; and it has no
//! request timeout. So each contact point is first probed with one plain
//! connection (TCP, login, `USE <keyspace>`) under the connect timeout,
//! which names the real reason; the session is built only once a node
//! accepted, and under the same deadline (dropping its future aborts the
//! driver's background task).
//!
//! With `ssl = true` (feature `tls`) the session is cdrs-tokio's rustls one,
//! a different type; [`AnySession`] holds either, and the probe speaks TLS
//! too, so a certificate the trust policy refuses is a TLS error at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdrs_tokio::authenticators::{
    NoneAuthenticatorProvider, SaslAuthenticatorProvider, StaticPasswordAuthenticatorProvider,
};
use cdrs_tokio::cluster::connection_pool::ConnectionPoolConfigBuilder;
use cdrs_tokio::cluster::send_envelope::send_envelope;
use cdrs_tokio::cluster::session::{
    Session, SessionBuilder, TcpSessionBuilder, DEFAULT_TRANSPORT_BUFFER_SIZE,
};
use cdrs_tokio::cluster::{
    ConnectionManager, KeyspaceHolder, NodeAddress, NodeTcpConfigBuilder, TcpConnectionManager,
};
use cdrs_tokio::compression::Compression;
use cdrs_tokio::consistency::Consistency as DriverConsistency;
use cdrs_tokio::frame::message_batch::{BatchQuery, BatchQuerySubj, BatchType, BodyReqBatch};
use cdrs_tokio::frame::message_error::ErrorType;
use cdrs_tokio::frame::message_result::ColType;
use cdrs_tokio::frame::{Direction, Envelope, Flags, Opcode, Serialize, Version};
use cdrs_tokio::frame_encoding::ProtocolFrameEncodingFactory;
use cdrs_tokio::load_balancing::{
    LoadBalancingStrategy, Request, TopologyAwareLoadBalancingStrategy,
};
use cdrs_tokio::query::batch_query_builder::QueryBatchPreparedStatement;
use cdrs_tokio::query::{PreparedQuery, QueryBatch, QueryValues};
use cdrs_tokio::retry::{ConstantReconnectionPolicy, NeverReconnectionPolicy};
use cdrs_tokio::statement::StatementParamsBuilder;
use cdrs_tokio::transport::{CdrsTransport, TransportTcp};
use cdrs_tokio::types::CBytesShort;

pub(crate) use cdrs_tokio::types::rows::Row as CqlRow;
pub(crate) use cdrs_tokio::types::value::Value as CqlValue;

use crate::config::{CassaConfig, Consistency};
use crate::error::CassaError;

type TcpSession = Session<
    TransportTcp,
    TcpConnectionManager,
    TopologyAwareLoadBalancingStrategy<TransportTcp, TcpConnectionManager>,
>;

#[cfg(feature = "tls")]
mod tls {
    pub(super) use cdrs_tokio::cluster::session::RustlsSessionBuilder;
    pub(super) use cdrs_tokio::cluster::{NodeRustlsConfigBuilder, RustlsConnectionManager};
    pub(super) use cdrs_tokio::transport::TransportRustls;
    pub(super) use rustls::pki_types::ServerName;
    pub(super) use rustls::ClientConfig;

    pub(super) type TlsSession = cdrs_tokio::cluster::session::Session<
        TransportRustls,
        RustlsConnectionManager,
        cdrs_tokio::load_balancing::TopologyAwareLoadBalancingStrategy<
            TransportRustls,
            RustlsConnectionManager,
        >,
    >;
}

/// The session: plain TCP, or TLS (feature `tls`), whose driver types differ.
enum AnySession {
    Tcp(TcpSession),
    #[cfg(feature = "tls")]
    Tls(tls::TlsSession),
}

/// Runs `$body` with `$s` bound to whichever session this is.
macro_rules! on_session {
    ($session:expr, $s:ident => $body:expr) => {
        match $session {
            AnySession::Tcp($s) => $body,
            #[cfg(feature = "tls")]
            AnySession::Tls($s) => $body,
        }
    };
}

/// What a TLS connection needs: the verified name and rustls' settings.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct TlsSetup {
    name: tls::ServerName<'static>,
    config: Arc<tls::ClientConfig>,
}

#[cfg(feature = "tls")]
fn tls_setup(c: &CassaConfig) -> Result<Option<TlsSetup>, CassaError> {
    let Some(crate::config::CassaTls { files, .. }) = &c.tls else {
        return Ok(None);
    };
    let err = |e: &dyn std::fmt::Display| backend_core::CommonError::tls(&c.pool_name, e);
    let config = backend_core::tls::TlsMaterial::load(files)
        .and_then(|m| m.client_config())
        .map_err(|e| err(&e))?;
    let name = tls::ServerName::try_from(c.tls_server_name().to_owned())
        .map_err(|e| err(&format!("`{}`: {e}", c.tls_server_name())))?;
    Ok(Some(TlsSetup {
        name,
        config: Arc::new(config),
    }))
}

/// Without the `tls` feature the config never asks for TLS.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
struct TlsSetup;

#[cfg(not(feature = "tls"))]
fn tls_setup(_: &CassaConfig) -> Result<Option<TlsSetup>, CassaError> {
    Ok(None)
}

/// A statement prepared on the cluster, with its parameters' types.
pub(crate) struct Prepared {
    query: PreparedQuery,
    /// The bind markers' types, in order (for raw statements' values).
    pub params: Vec<ColType>,
}

/// A connected pool: the session and its prepared statements.
pub(crate) struct Cql {
    session: AnySession,
    prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    consistency: DriverConsistency,
    timeout: Duration,
    connect_timeout: Duration,
    label: String,
}

impl std::fmt::Debug for Cql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the session: its authenticator's Debug holds the password.
        f.debug_struct("Cql")
            .field("server", &self.label)
            .field("consistency", &self.consistency)
            .finish_non_exhaustive()
    }
}

fn driver_consistency(c: Consistency) -> DriverConsistency {
    match c {
        Consistency::Any => DriverConsistency::Any,
        Consistency::One => DriverConsistency::One,
        Consistency::Two => DriverConsistency::Two,
        Consistency::Three => DriverConsistency::Three,
        Consistency::Quorum => DriverConsistency::Quorum,
        Consistency::All => DriverConsistency::All,
        Consistency::LocalQuorum => DriverConsistency::LocalQuorum,
        Consistency::EachQuorum => DriverConsistency::EachQuorum,
        Consistency::LocalOne => DriverConsistency::LocalOne,
    }
}

fn authenticator(c: &CassaConfig) -> Arc<dyn SaslAuthenticatorProvider + Send + Sync> {
    match &c.login {
        Some(login) => Arc::new(StaticPasswordAuthenticatorProvider::new(
            login.user.clone(),
            login
                .password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default(),
        )),
        None => Arc::new(NoneAuthenticatorProvider),
    }
}

/// Why one contact point did not accept a connection.
enum Refusal {
    Authentication(String),
    MissingKeyspace(String),
    /// The server's certificate was not accepted.
    Certificate(String),
    Other(String),
}

/// Connects to one node the way the session will (TCP, login, `USE`),
/// within the timeout, and says what went wrong.
async fn probe(
    c: &CassaConfig,
    auth: Arc<dyn SaslAuthenticatorProvider + Send + Sync>,
    tls: Option<&TlsSetup>,
    node: &str,
) -> Result<(), Refusal> {
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(c.connect_timeout, tokio::net::lookup_host(node))
            .await
            .map_err(|_| Refusal::Other("name lookup timed out".into()))?
            .map_err(|e| Refusal::Other(format!("name lookup: {e}")))?
            .collect();
    let Some(addr) = addrs.first().copied() else {
        return Err(Refusal::Other("the name has no address".into()));
    };
    let (tx, _rx) = tokio::sync::watch::channel(None);
    let holder = Arc::new(KeyspaceHolder::new(tx));
    holder.update_current_keyspace_without_notification(c.keyspace.clone());
    let connect = async {
        match tls {
            None => TcpConnectionManager::new(
                auth,
                holder,
                Box::new(ProtocolFrameEncodingFactory),
                Compression::None,
                DEFAULT_TRANSPORT_BUFFER_SIZE,
                true,
                PROTOCOL,
            )
            .connection(None, None, addr)
            .await
            .map(drop),
            #[cfg(feature = "tls")]
            Some(t) => tls::RustlsConnectionManager::new(
                t.name.clone(),
                auth,
                Arc::clone(&t.config),
                holder,
                Box::new(ProtocolFrameEncodingFactory),
                Compression::None,
                DEFAULT_TRANSPORT_BUFFER_SIZE,
                true,
                PROTOCOL,
            )
            .connection(None, None, addr)
            .await
            .map(drop),
            #[cfg(not(feature = "tls"))]
            Some(TlsSetup) => Ok(()),
        }
    };
    match tokio::time::timeout(c.connect_timeout, connect).await {
        Err(_) => Err(Refusal::Other(format!(
            "no answer within {:?}",
            c.connect_timeout
        ))),
        Ok(Ok(())) => Ok(()),
        Ok(Err(cdrs_tokio::error::Error::Server { body, .. })) => match body.ty {
            ErrorType::Authentication => Err(Refusal::Authentication(body.message)),
            ErrorType::Invalid if body.message.to_lowercase().contains("keyspace") => {
                Err(Refusal::MissingKeyspace(body.message))
            }
            _ => Err(Refusal::Other(body.message)),
        },
        Ok(Err(e)) => {
            let text = describe(&e, tls.is_some());
            // rustls' words for a certificate it does not accept.
            if tls.is_some() && text.contains("certificate") {
                Err(Refusal::Certificate(text))
            } else {
                Err(Refusal::Other(text))
            }
        }
    }
}

/// The driver's error in words; a connection the server just closed says
/// so (the driver's own text is empty then), with the likely reason.
fn describe(e: &cdrs_tokio::error::Error, tls: bool) -> String {
    use std::io::ErrorKind as Io;
    match e {
        cdrs_tokio::error::Error::Io(io) if io.to_string().is_empty() => {
            let closed = matches!(io.kind(), Io::UnexpectedEof | Io::ConnectionReset);
            match (closed, tls) {
                (true, false) => "the server closed the connection (does it take TLS only? \
                                  then set ssl = true)"
                    .to_owned(),
                (true, true) => {
                    "the server closed the connection during the TLS handshake".to_owned()
                }
                (false, _) => format!("I/O error: {:?}", io.kind()),
            }
        }
        e if tls && e.to_string().contains("corrupt message") => {
            format!("{e} (no TLS on this port?)")
        }
        e => e.to_string(),
    }
}

/// Token-aware routing: a prepared statement goes first to a replica of
/// its partition (the driver hashes the partition key's bound values with
/// Murmur3 and looks the token up in the ring it follows); a statement
/// without one (a batch, a schema statement) goes round robin over the
/// local data centre's nodes.
fn token_aware<T, CM>() -> TopologyAwareLoadBalancingStrategy<T, CM>
where
    T: CdrsTransport,
    CM: ConnectionManager<T>,
{
    TopologyAwareLoadBalancingStrategy::new(None, false)
}

/// The session settings both transports share.
fn configure<T, CM, LB, B>(builder: B, c: &CassaConfig) -> B
where
    T: CdrsTransport + 'static,
    CM: ConnectionManager<T>,
    LB: LoadBalancingStrategy<T, CM> + Send + Sync + 'static,
    B: SessionBuilder<T, CM, LB>,
{
    let pool = ConnectionPoolConfigBuilder::new()
        .with_local_size(c.size)
        .with_remote_size(c.size)
        .with_connect_timeout(Some(c.connect_timeout))
        .build();
    let builder = builder
        .with_keyspace(c.keyspace.clone())
        .with_connection_pool_config(pool);
    if c.auto_reconnect {
        builder.with_reconnection_policy(Arc::new(ConstantReconnectionPolicy::new(
            Duration::from_secs(1),
        )))
    } else {
        builder.with_reconnection_policy(Arc::new(NeverReconnectionPolicy))
    }
}

/// Builds the session (no deadline here: the caller sets it).
async fn build_session(
    c: &CassaConfig,
    nodes: &[String],
    auth: Arc<dyn SaslAuthenticatorProvider + Send + Sync>,
    tls: Option<&TlsSetup>,
) -> Result<AnySession, String> {
    let contact_points: Vec<NodeAddress> = nodes
        .iter()
        .map(|n| NodeAddress::from(n.as_str()))
        .collect();
    match tls {
        None => {
            let node_config = NodeTcpConfigBuilder::new()
                .with_version(PROTOCOL)
                .with_contact_points(contact_points)
                .with_authenticator_provider(auth)
                .build()
                .await
                .map_err(|e| e.to_string())?;
            let builder = TcpSessionBuilder::new(token_aware(), node_config);
            let session = configure(builder, c)
                .build()
                .await
                .map_err(|e| e.to_string())?;
            Ok(AnySession::Tcp(session))
        }
        #[cfg(feature = "tls")]
        Some(t) => {
            let node_config =
                tls::NodeRustlsConfigBuilder::new(t.name.clone(), Arc::clone(&t.config))
                    .with_version(PROTOCOL)
                    .with_contact_points(contact_points)
                    .with_authenticator_provider(auth)
                    .build()
                    .await
                    .map_err(|e| e.to_string())?;
            let builder = tls::RustlsSessionBuilder::new(token_aware(), node_config);
            let session = configure(builder, c)
                .build()
                .await
                .map_err(|e| e.to_string())?;
            Ok(AnySession::Tls(session))
        }
        #[cfg(not(feature = "tls"))]
        Some(TlsSetup) => Err("TLS needs the `tls` feature".into()),
    }
}

impl Cql {
    /// Connects within `connect_timeout`: an unreachable cluster, a wrong
    /// password and a missing keyspace each fail with their own error.
    pub(crate) async fn connect(c: &CassaConfig) -> Result<Cql, CassaError> {
        let label = c.label();
        let nodes: Vec<String> = c.nodes.iter().map(ToString::to_string).collect();
        let auth = authenticator(c);
        let tls = tls_setup(c)?;
        let mut reasons = Vec::new();
        let mut reachable = false;
        for node in &nodes {
            match probe(c, Arc::clone(&auth), tls.as_ref(), node).await {
                Ok(()) => {
                    reachable = true;
                    break;
                }
                Err(Refusal::Authentication(message)) => {
                    return Err(CassaError::Authentication {
                        server: node.clone(),
                        user: c.login.as_ref().map(|l| l.user.clone()).unwrap_or_default(),
                        message,
                    })
                }
                Err(Refusal::MissingKeyspace(message)) => {
                    return Err(CassaError::MissingKeyspace {
                        keyspace: c.keyspace.clone(),
                        nodes: nodes.join(","),
                        message,
                    })
                }
                Err(Refusal::Certificate(reason)) => {
                    return Err(backend_core::CommonError::tls(
                        &c.pool_name,
                        format!("{node} (verified as `{}`): {reason}", c.tls_server_name()),
                    )
                    .into())
                }
                Err(Refusal::Other(reason)) => reasons.push(format!("{node}: {reason}")),
            }
        }
        if !reachable {
            return Err(CassaError::Unreachable {
                nodes: nodes.join(","),
                reason: reasons.join("; "),
            });
        }
        let build = build_session(c, &nodes, auth, tls.as_ref());
        let session = match tokio::time::timeout(c.connect_timeout, build).await {
            Ok(Ok(s)) => s,
            Ok(Err(reason)) => {
                return Err(CassaError::Unreachable {
                    nodes: nodes.join(","),
                    reason,
                })
            }
            Err(_) => {
                return Err(CassaError::Unreachable {
                    nodes: nodes.join(","),
                    reason: format!("no session within {:?}", c.connect_timeout),
                })
            }
        };
        Ok(Cql {
            session,
            prepared: Mutex::new(HashMap::new()),
            consistency: driver_consistency(c.consistency),
            timeout: c.request_timeout,
            connect_timeout: c.connect_timeout,
            label,
        })
    }

    /// How long connecting may take (`connect_timeout`).
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// `nodes/keyspace`, for errors and logs.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    fn failed(
        &self,
        operation: &'static str,
    ) -> impl Fn(cdrs_tokio::error::Error) -> CassaError + '_ {
        move |source| CassaError::Cassandra {
            operation,
            server: self.label.clone(),
            source: Box::new(source),
        }
    }

    async fn within<T>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = Result<T, cdrs_tokio::error::Error>>,
    ) -> Result<T, CassaError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r.map_err(self.failed(operation)),
            Err(_) => Err(backend_core::CommonError::Timeout {
                operation,
                server: self.label.clone(),
                waiting_for: "answer",
                after: self.timeout,
            }
            .into()),
        }
    }

    /// The statement `cql`, prepared once per text.
    pub(crate) async fn prepare(
        &self,
        operation: &'static str,
        cql: &str,
    ) -> Result<Arc<Prepared>, CassaError> {
        if let Some(p) = self
            .prepared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cql)
        {
            return Ok(Arc::clone(p));
        }
        let raw =
            on_session!(&self.session, s => self.within(operation, s.prepare_raw(cql)).await)?;
        let params = raw
            .metadata
            .col_specs
            .iter()
            .map(|c| c.col_type.id)
            .collect();
        let query = on_session!(&self.session, s => self.within(operation, s.prepare(cql)).await)?;
        let prepared = Arc::new(Prepared { query, params });
        let mut cache = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        // Raw statements are user templates: a bounded set in practice,
        // but never let a stream of distinct texts grow the cache forever.
        if cache.len() >= 1024 {
            cache.clear();
        }
        cache.insert(cql.to_owned(), Arc::clone(&prepared));
        Ok(prepared)
    }

    /// Runs a prepared statement with its values; returns its rows, with
    /// the result's column types.
    pub(crate) async fn exec(
        &self,
        operation: &'static str,
        cql: &str,
        values: Vec<CqlValue>,
    ) -> Result<(Vec<ColType>, Vec<CqlRow>), CassaError> {
        let prepared = self.prepare(operation, cql).await?;
        self.exec_prepared(operation, &prepared, values).await
    }

    /// Runs an already prepared statement.
    pub(crate) async fn exec_prepared(
        &self,
        operation: &'static str,
        prepared: &Prepared,
        values: Vec<CqlValue>,
    ) -> Result<(Vec<ColType>, Vec<CqlRow>), CassaError> {
        let params = StatementParamsBuilder::new()
            .with_values(QueryValues::SimpleValues(values))
            .with_consistency(self.consistency)
            .build();
        let envelope = on_session!(&self.session, s => {
            self.within(operation, s.exec_with_params(&prepared.query, &params))
                .await
        })?;
        let body = envelope.response_body().map_err(self.failed(operation))?;
        let types = body
            .as_rows_metadata()
            .map(|m| m.col_specs.iter().map(|c| c.col_type.id).collect())
            .unwrap_or_default();
        Ok((types, body.into_rows().unwrap_or_default()))
    }

    /// Runs schema statements (not prepared).
    pub(crate) async fn ddl(&self, operation: &'static str, cql: &str) -> Result<(), CassaError> {
        let params = StatementParamsBuilder::new()
            .with_consistency(self.consistency)
            .build();
        on_session!(&self.session, s => {
            self.within(operation, s.query_with_params(cql, params)).await
        })
        .map(drop)
    }

    /// Runs prepared statements as one unlogged batch: one round trip.
    /// Callers keep a batch to one partition, or a few.
    pub(crate) async fn batch(
        &self,
        operation: &'static str,
        statements: Vec<(&str, Vec<CqlValue>)>,
    ) -> Result<(), CassaError> {
        match statements.len() {
            0 => return Ok(()),
            1 => {
                let mut statements = statements;
                if let Some((cql, values)) = statements.pop() {
                    self.exec(operation, cql, values).await?;
                }
                return Ok(());
            }
            _ => {}
        }
        // Built directly rather than through `BatchQueryBuilder`, which
        // copies each row's statement text and keyspace into a map: a
        // batch looks up each distinct statement once, and names them
        // (for the driver's re-preparing path) only if a node asks.
        let mut queries = Vec::with_capacity(statements.len());
        let mut used: Vec<Arc<Prepared>> = Vec::new();
        // The encoded size: per row its kind, id, value count and values;
        // the batch's own fields after them.
        let mut size = 16;
        for (cql, values) in statements {
            let prepared = match used.last() {
                Some(p) if p.query.query == cql => Arc::clone(p),
                _ => {
                    let p = self.prepare(operation, cql).await?;
                    used.push(Arc::clone(&p));
                    p
                }
            };
            size += 1 + prepared.query.id.serialized_len() + 2;
            size += values.iter().map(value_size).sum::<usize>();
            queries.push(BatchQuery {
                subject: BatchQuerySubj::PreparedId(prepared.query.id.clone()),
                values: QueryValues::SimpleValues(values),
            });
        }
        let body = BodyReqBatch {
            batch_type: BatchType::Unlogged,
            queries,
            consistency: self.consistency,
            serial_consistency: None,
            timestamp: None,
            keyspace: None,
            now_in_seconds: None,
        };
        // The driver's `Session::batch` clones the whole batch, every value
        // an owned buffer, before it encodes it (it keeps the original to
        // re-prepare from). So the batch is encoded here, from a borrow,
        // into one buffer of its size, and sent through the driver's own
        // routing and retry policy.
        let mut encoded = Vec::with_capacity(size);
        body.serialize(&mut std::io::Cursor::new(&mut encoded), PROTOCOL);
        let envelope = Envelope::new(
            PROTOCOL,
            Direction::Request,
            Flags::empty(),
            Opcode::Batch,
            0,
            encoded,
            None,
            Vec::new(),
        );
        let sent = on_session!(&self.session, s => {
            self.within(operation, send_batch(s, &envelope, self.consistency)).await
        });
        match sent {
            // A node that lost the statements (restarted, or its cache
            // evicted them): the driver's own path prepares them again there.
            Err(CassaError::Cassandra { source, .. }) if is_unprepared(&source) => {
                let texts: HashMap<CBytesShort, QueryBatchPreparedStatement> = used
                    .iter()
                    .map(|p| {
                        let statement = QueryBatchPreparedStatement::new(
                            p.query.query.clone(),
                            p.query.keyspace.clone(),
                        );
                        (p.query.id.clone(), statement)
                    })
                    .collect();
                let batch = QueryBatch::new(body, texts);
                on_session!(&self.session, s => self.within(operation, s.batch(batch)).await)
                    .map(drop)
            }
            other => other.map(drop),
        }
    }
}

/// The protocol version every session speaks (set on its node config).
const PROTOCOL: Version = Version::V4;

/// A bound value's encoded size: its length, then its bytes.
fn value_size(v: &CqlValue) -> usize {
    4 + match v {
        CqlValue::Some(bytes) => bytes.len(),
        _ => 0,
    }
}

/// Sends an encoded batch as `Session::batch` would: the load balancer's
/// plan for the session's keyspace, the session's retry policy.
async fn send_batch<T, CM, LB>(
    session: &Session<T, CM, LB>,
    envelope: &Envelope,
    consistency: DriverConsistency,
) -> Result<Envelope, cdrs_tokio::error::Error>
where
    T: CdrsTransport + 'static,
    CM: ConnectionManager<T> + 'static,
    LB: LoadBalancingStrategy<T, CM> + Send + Sync + 'static,
{
    let keyspace = session.current_keyspace();
    let request = Request::new(
        keyspace.as_deref().map(String::as_str),
        None,
        None,
        Some(consistency),
    );
    let plan = session.query_plan(Some(request));
    let sent = send_envelope(
        plan.nodes.into_iter(),
        envelope,
        false,
        session.retry_policy().new_session(),
    )
    .await;
    match sent {
        Some(result) => result,
        None => Err("no node to send the batch to".into()),
    }
}

fn is_unprepared(e: &cdrs_tokio::error::Error) -> bool {
    matches!(
        e,
        cdrs_tokio::error::Error::Server { body, .. } if matches!(body.ty, ErrorType::Unprepared(_))
    )
}
