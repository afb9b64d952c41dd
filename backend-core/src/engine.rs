//! The rule engine: turns hook events into backend calls, and tells the
//! broker what to do next (subscriptions to apply, messages to deliver).
//!
//! ```
//! use std::sync::Arc;
//! use backend_core::{ClientInfo, Config, Engine, MemoryBackend, Message, QoS, SessionSubscribed};
//! # tokio_test_block_on(async {
//! let conf = Config::parse(r##"
//! backend.redis.pool1.server = 127.0.0.1:6379
//! backend.redis.hook.message.publish.1 = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}
//! backend.redis.hook.session.subscribed.1 = {"topic": "queue/#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}
//! "##).unwrap();
//! let engine = Engine::with_backend(&conf, Arc::new(MemoryBackend::new())).unwrap();
//! engine.on_message_publish(&Message::new("pub", "queue/a", QoS::AtLeastOnce, "hi")).await;
//! let sub = SessionSubscribed { client: ClientInfo::new("sub", "node1"), filter: "queue/#".into(), qos: QoS::AtLeastOnce };
//! let out = engine.on_session_subscribed(&sub).await;
//! assert!(out.errors.is_empty());
//! assert_eq!(&out.output.offline[0].payload[..], b"hi");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{
    since_for, Ack, Backend, BackendError, BackendResult, ErrorKind, FailureRecord, FetchRequest,
    WriteOptions,
};
use crate::config::{Action, BackendKind, Config, Function, Limits, RawStatement, Rule};
use crate::health::{HealthState, PoolHealth};
use crate::hook::{
    ClientConnected, ClientDisconnected, Event, Hook, MessageDelivery, SessionSubscribed,
    SessionUnsubscribed, TopicSource,
};
use crate::message::{Message, QoS, Subscription};
use crate::observe::{ReadOp, ReadOutcome, RuleObserver, Tally};
use crate::ordering::ClientLocks;
use crate::sweep::{PoolSweeper, SweepMetrics};
use crate::topic::{strip_shared, FilterTrie};
use crate::write::{
    PoolWriter, RuleWriteCounters, Submitted, Ticket, WriteMetrics, WriteOp, WritePolicy,
};

/// Backends by pool name.
pub type Pools = BTreeMap<String, Arc<dyn Backend>>;

/// Why an engine could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// A rule uses a pool for which no backend was given.
    #[error("no backend given for pool `{pool}`, used by {rule}")]
    MissingPool {
        /// The pool.
        pool: String,
        /// The first rule using it.
        rule: String,
    },
    /// A pool's disk buffer (`buffer = disk`) could not be opened.
    #[error(transparent)]
    DiskBuffer(#[from] crate::write::DiskBufferError),
}

/// A rule that failed for one event; the other rules still ran.
#[derive(Debug, thiserror::Error)]
#[error("{rule} (pool {pool}): {operation} failed: {source}")]
pub struct RuleError {
    /// The rule's config key.
    pub rule: String,
    /// Its pool.
    pub pool: String,
    /// The backend operation (`fetch_messages`, `execute`, ...).
    pub operation: &'static str,
    /// What the backend said.
    #[source]
    pub source: BackendError,
}

impl RuleError {
    /// Whether retrying the event may help.
    pub fn is_retryable(&self) -> bool {
        self.source.is_retryable()
    }
}

/// What a hook produced, and the rules that failed on the way. Each
/// failure was logged and counted in the rule metrics already; the broker
/// still has to act on `output`.
#[must_use = "a hook's outcome holds what the broker must act on, and the rules that failed"]
#[derive(Debug, Default)]
pub struct Outcome<T> {
    /// What the broker must act on.
    pub output: T,
    /// Failed rules, in rule order.
    pub errors: Vec<RuleError>,
}

/// The messages a new subscription must be sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// Offline messages, oldest first; deliver without the retain flag.
    pub offline: Vec<Message>,
    /// Retained messages matching the filter; deliver with the retain flag.
    pub retained: Vec<Message>,
}

/// The MQTT subscription options that decide what a new subscription gets
/// from storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// MQTT 5 No Local: the client never gets what it published itself.
    pub no_local: bool,
    /// Whether retained messages go out on this subscribe (MQTT 5 retain
    /// handling 0, or 1 for a new subscription; not 2).
    pub send_retained: bool,
}

impl Default for DeliveryOptions {
    /// MQTT 3.1.1's behaviour: retained messages sent, no No Local.
    fn default() -> Self {
        DeliveryOptions {
            no_local: false,
            send_retained: true,
        }
    }
}

impl Subscribed {
    /// What to deliver to `client_id` under `options`, so that storage
    /// never hands out what MQTT kept from the client: with No Local, none
    /// of the offline messages it published itself; without retained
    /// delivery, no retained messages; and an offline message that is also
    /// a retained one goes once, as retained.
    ///
    /// ```
    /// use backend_core::{engine::{DeliveryOptions, Subscribed}, Message, QoS};
    /// let own = Message::new("me", "a/b", QoS::AtLeastOnce, "mine");
    /// let other = Message::new("you", "a/b", QoS::AtLeastOnce, "yours");
    /// let s = Subscribed { offline: vec![own.clone(), other.clone()], retained: vec![other.clone()] };
    /// let d = s.to_deliver("me", DeliveryOptions { no_local: true, send_retained: true });
    /// assert!(d.offline.is_empty(), "own message kept back; the other goes as retained");
    /// assert_eq!(d.retained, vec![other.clone()]);
    /// // Retain handling 2: no retained messages; the stored one goes as offline.
    /// let s = Subscribed { offline: vec![own.clone(), other.clone()], retained: vec![other.clone()] };
    /// let d = s.to_deliver("me", DeliveryOptions { no_local: false, send_retained: false });
    /// assert_eq!((d.offline, d.retained), (vec![own, other], vec![]));
    /// ```
    pub fn to_deliver(self, client_id: &str, options: DeliveryOptions) -> Subscribed {
        let retained = if options.send_retained {
            self.retained
        } else {
            Vec::new()
        };
        let offline = self
            .offline
            .into_iter()
            .filter(|m| !(options.no_local && m.sender == client_id))
            .filter(|m| !retained.iter().any(|r| r.id == m.id))
            .collect();
        Subscribed { offline, retained }
    }
}

/// Counters of one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMetrics {
    /// The rule's config key.
    pub rule: String,
    /// Events whose topic matched the rule.
    pub matched: u64,
    /// Runs that succeeded.
    pub succeeded: u64,
    /// Runs that failed.
    pub failed: u64,
    /// Writes that failed retryably (or found earlier writes waiting) and
    /// were queued for retry.
    pub queued: u64,
    /// Queued writes that later succeeded.
    pub retried: u64,
    /// Writes given up: the queue was full, or a retry failed for a reason
    /// retrying cannot mend.
    pub dropped: u64,
}

/// The runs of one rule.
struct Counters {
    matched: Tally,
    succeeded: Tally,
    failed: Tally,
}

impl Counters {
    fn new(observe: &RuleObserver) -> Self {
        Counters {
            matched: Tally::new(observe.matched.clone()),
            succeeded: Tally::new(observe.succeeded.clone()),
            failed: Tally::new(observe.failed.clone()),
        }
    }
}

struct CompiledRule {
    rule: Rule,
    key: String,
    /// `key`, shared with the writes the rule has in a buffer.
    tag: Arc<str>,
    backend: Arc<dyn Backend>,
    counters: Counters,
    /// What became of the rule's buffered writes.
    retry: Arc<RuleWriteCounters>,
    writer: Arc<PoolWriter>,
}

#[derive(Default)]
struct HookRules {
    rules: Vec<CompiledRule>,
    /// Rules with a topic filter, by index into `rules`.
    trie: FilterTrie<usize>,
    /// Rules without a topic filter.
    always: Vec<usize>,
}

impl HookRules {
    /// Indices of the rules that apply, in rule order.
    fn select(&self, topic: Option<&str>) -> Vec<usize> {
        let mut picked = self.always.clone();
        if let (Some(t), false) = (topic, self.trie.is_empty()) {
            self.trie.for_each_match(t, |i| picked.push(*i));
            if picked.len() > self.always.len() {
                picked.sort_unstable();
            }
        }
        picked
    }
}

/// The rule engine for one configuration.
///
/// Its hooks run on a tokio runtime with the time driver on
/// (`enable_all`, as every broker's runtime has): reads are bounded by
/// each pool's `read_timeout`, and writes retry after a backoff.
pub struct Engine {
    kind: BackendKind,
    limits: Limits,
    hooks: [HookRules; 7],
    writers: BTreeMap<String, Arc<PoolWriter>>,
    /// Hooks under way, for [`Engine::flush`].
    active: AtomicUsize,
    /// Pools that store messages, for the sweeper.
    sweepers: Vec<PoolSweeper>,
    /// Every pool, for health checks.
    health: Vec<(Arc<dyn Backend>, HealthState)>,
    /// Orders each client's connect and disconnect writes.
    clients: Arc<ClientLocks>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("kind", &self.kind)
            .field("limits", &self.limits)
            .field(
                "rules",
                &self.hooks.iter().map(|h| h.rules.len()).sum::<usize>(),
            )
            .finish()
    }
}

impl Engine {
    /// An engine running `config`'s rules on the backends of `pools`, each
    /// pool writing as its conf says (`batch_size`, `buffer_size`, ...;
    /// see [`crate::write`]) with [`WritePolicy::default`] elsewhere.
    pub fn new(config: &Config, pools: &Pools) -> Result<Engine, EngineError> {
        Engine::with_policy(config, pools, WritePolicy::default())
    }

    /// An engine whose pools write by `policy`, except where a pool's conf
    /// sets its own keys (`WritePolicy::off()` runs each write alone and
    /// reports every failure at once).
    pub fn with_policy(
        config: &Config,
        pools: &Pools,
        policy: WritePolicy,
    ) -> Result<Engine, EngineError> {
        let policy_of = |name: &str| match config.pools().get(name) {
            Some(p) => policy.for_pool(p),
            None => policy,
        };
        let mut writers: BTreeMap<String, Arc<PoolWriter>> = BTreeMap::new();
        for (name, b) in pools {
            let writer = PoolWriter::open(
                name.clone(),
                Arc::clone(b),
                policy_of(name),
                config.pools().get(name),
            )?;
            writers.insert(name.clone(), writer);
        }
        let mut hooks: [HookRules; 7] = Default::default();
        for rule in config.rules() {
            let key = rule.key(config.kind());
            let missing = || EngineError::MissingPool {
                pool: rule.pool.clone(),
                rule: key.clone(),
            };
            let backend = pools.get(&rule.pool).ok_or_else(missing)?;
            // Built above for every pool of `pools`.
            let writer = writers.get(&rule.pool).cloned().ok_or_else(missing)?;
            let h = &mut hooks[rule.hook.index()];
            let idx = h.rules.len();
            match (&rule.topic, rule.hook.topic_source()) {
                (Some(filter), TopicSource::Filter | TopicSource::MessageTopic) => {
                    // Validated at config load; a failure here is unreachable
                    // but is not worth a panic: treat it as matching all.
                    if h.trie.insert(filter, idx).is_err() {
                        h.always.push(idx);
                    }
                }
                _ => h.always.push(idx),
            }
            let observe = RuleObserver::new(&key, &rule.pool, backend.info().name);
            h.rules.push(CompiledRule {
                rule: rule.clone(),
                tag: Arc::from(key.as_str()),
                backend: Arc::clone(backend),
                counters: Counters::new(&observe),
                retry: Arc::new(RuleWriteCounters::new(&observe)),
                writer,
                key,
            });
        }
        let mut storing: BTreeMap<&str, Arc<dyn Backend>> = BTreeMap::new();
        for r in config.rules() {
            if matches!(r.action, Action::Function(Function::MessagePublish)) {
                if let Some(b) = pools.get(&r.pool) {
                    storing.insert(r.pool.as_str(), Arc::clone(b));
                }
            }
        }
        // The engine decides by what the kind declares, never by its name.
        let sweeps = config.kind().spec().capabilities.sweep;
        if !sweeps && !storing.is_empty() {
            tracing::warn!(
                backend = %config.kind(),
                pools = ?storing.keys().collect::<Vec<_>>(),
                "this backend cannot remove messages by age: stored messages stay until \
                 acknowledged, and pubsub messages forever, so storage grows without bound"
            );
        }
        let sweepers = storing
            .into_iter()
            .filter(|_| sweeps)
            .map(|(pool, b)| PoolSweeper::new(pool.to_owned(), b))
            .collect();
        let health = pools
            .iter()
            .map(|(name, b)| (Arc::clone(b), HealthState::new(name.clone())))
            .collect();
        Ok(Engine {
            kind: config.kind(),
            limits: config.limits(),
            hooks,
            writers,
            active: AtomicUsize::new(0),
            sweepers,
            health,
            clients: Arc::default(),
        })
    }

    /// An engine whose every pool is `backend`.
    pub fn with_backend(config: &Config, backend: Arc<dyn Backend>) -> Result<Engine, EngineError> {
        let mut pools = Pools::new();
        for rule in config.rules() {
            pools.insert(rule.pool.clone(), Arc::clone(&backend));
        }
        for name in config.pools().keys() {
            pools.insert(name.clone(), Arc::clone(&backend));
        }
        Engine::new(config, &pools)
    }

    /// The health of every pool as last checked, with the writes in its
    /// buffer and whether its server was found away since.
    pub fn health(&self) -> Vec<PoolHealth> {
        self.health
            .iter()
            .map(|(_, h)| {
                let writer = self.writers.get(&h.pool);
                h.snapshot(writer.map_or(0, |w| w.len()), writer.and_then(|w| w.away()))
            })
            .collect()
    }

    /// Each pool's write counters: flushes, the writes they carried, the
    /// largest batch, what is buffered, what was dropped.
    pub fn write_metrics(&self) -> Vec<WriteMetrics> {
        self.writers.values().map(|w| w.metrics()).collect()
    }

    /// Waits until every hook under way has returned and every pool's
    /// buffer is empty, or `timeout` has passed: what a broker calls on
    /// shutdown, after it stopped taking connections and before it exits.
    /// Returns the writes still buffered (0: everything landed); those are
    /// logged with their count, since they are lost when the process
    /// exits.
    pub async fn flush(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = self.pending_writes();
            if left == 0 && self.active.load(Ordering::SeqCst) == 0 {
                tracing::info!("storage flushed: every write landed");
                return 0;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(
                    writes = left,
                    hooks = self.active.load(Ordering::SeqCst),
                    ?timeout,
                    "storage not flushed in time: these writes are lost"
                );
                return left;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Pings every pool (each within [`crate::health::PING_TIMEOUT`]) and
    /// records the result; a change of state is logged. Returns the new
    /// health.
    pub async fn check_health(&self) -> Vec<PoolHealth> {
        let pings = self.health.iter().map(|(b, h)| async move {
            // Never dropped mid-request (see `bounded_read`): a ping past
            // its timeout ends on its own.
            let b = Arc::clone(b);
            let ping = tokio::spawn(async move { b.ping().await });
            let r = match tokio::time::timeout(crate::health::PING_TIMEOUT, ping).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(FailureRecord::from(&e)),
                Ok(Err(e)) => Err(FailureRecord {
                    kind: ErrorKind::Query,
                    message: format!("the ping's task ended without an answer: {e}"),
                }),
                Err(_) => Err(FailureRecord {
                    kind: ErrorKind::Timeout,
                    message: format!("no answer within {:?}", crate::health::PING_TIMEOUT),
                }),
            };
            h.record(r);
        });
        join_all(pings).await;
        self.health()
    }

    /// Runs [`Engine::check_health`] at once and then every `every`
    /// ([`crate::health::DEFAULT_INTERVAL`] is EMQX 5's 15 s) on the
    /// current tokio runtime, until the engine is dropped or the task
    /// aborted. `None` without a runtime.
    pub fn spawn_health_checks(
        self: &Arc<Self>,
        every: Duration,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.spawn_every(every, |engine| async move {
            engine.check_health().await;
        })
    }

    /// Runs `job` at once and then every `every` on the current tokio
    /// runtime, until the engine is dropped (the task holds it weakly) or
    /// the task aborted. `None` without a runtime.
    fn spawn_every<F, Fut>(
        self: &Arc<Self>,
        every: Duration,
        job: F,
    ) -> Option<tokio::task::JoinHandle<()>>
    where
        F: Fn(Arc<Engine>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let weak = Arc::downgrade(self);
        let every = every.max(Duration::from_millis(10));
        Some(handle.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = weak.upgrade() else { return };
                job(engine).await;
            }
        }))
    }

    /// How long stored messages stay useful: the configuration's
    /// `time_range` (`None` for `infinity`). The sweeper removes older ones.
    pub fn retention(&self) -> Option<Duration> {
        self.limits.time_range
    }

    /// One sweep of every pool that stores messages: removes those older
    /// than [`Engine::retention`] (see [`crate::sweep`]). Returns the
    /// messages removed per pool, or why a pool's sweep failed; nothing
    /// when the retention is infinite.
    pub async fn sweep(&self) -> Vec<(String, Result<u64, FailureRecord>)> {
        let Some(retention) = self.retention() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.sweepers.len());
        for s in &self.sweepers {
            out.push((s.pool.clone(), s.sweep(retention).await));
        }
        out
    }

    /// What the sweeper did, per pool that stores messages.
    pub fn sweep_metrics(&self) -> Vec<SweepMetrics> {
        self.sweepers.iter().map(PoolSweeper::metrics).collect()
    }

    /// Runs [`Engine::sweep`] every `every` (see
    /// [`crate::sweep::default_interval`]) on the current tokio runtime
    /// until the engine is dropped or the task aborted. `None` when there
    /// is nothing to sweep (infinite `time_range`, or no pool stores
    /// messages) or no runtime.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration) -> Option<tokio::task::JoinHandle<()>> {
        self.retention()?;
        if self.sweepers.is_empty() {
            return None;
        }
        self.spawn_every(every, |engine| async move {
            engine.sweep().await;
        })
    }

    /// Starts the engine's background work on the current tokio runtime,
    /// with its defaults: every pool's health checked now and every
    /// [`crate::health::DEFAULT_INTERVAL`] (each change logged), and, with
    /// a `time_range`, stored messages past it swept every
    /// [`crate::sweep::default_interval`]. (A pool started without its
    /// server keeps connecting in the background by itself, see
    /// [`crate::pool`].) The tasks end when the engine is dropped; their
    /// handles abort them sooner.
    pub fn start_background(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> = self
            .spawn_health_checks(crate::health::DEFAULT_INTERVAL)
            .into_iter()
            .collect();
        if let Some(retention) = self.retention() {
            let every = crate::sweep::default_interval(retention);
            if let Some(t) = self.spawn_sweeper(every) {
                tracing::info!(
                    ?retention,
                    ?every,
                    "sweeping stored messages past time_range"
                );
                tasks.push(t);
            }
        }
        tasks
    }

    /// Whether any rule is configured for `hook`: a broker may skip building
    /// the event when not.
    pub fn has_rules(&self, hook: Hook) -> bool {
        !self.hooks[hook.index()].rules.is_empty()
    }

    /// Writes waiting or in flight in the buffers of all pools.
    pub fn pending_writes(&self) -> usize {
        self.writers.values().map(|w| w.len()).sum()
    }

    /// The counters of every rule, in rule order.
    pub fn metrics(&self) -> Vec<RuleMetrics> {
        self.hooks
            .iter()
            .flat_map(|h| h.rules.iter())
            .map(|r| RuleMetrics {
                rule: r.key.clone(),
                matched: r.counters.matched.get(),
                succeeded: r.counters.succeeded.get() + r.retry.landed.get(),
                failed: r.counters.failed.get() + r.retry.failed.get(),
                queued: r.retry.queued.get(),
                retried: r.retry.retried.get(),
                dropped: r.retry.dropped.get(),
            })
            .collect()
    }

    /// `client.connected`: records the client online and returns its stored
    /// subscriptions (from `on_subscribe_lookup`), which the broker applies.
    /// A lookup takes at most the pool's `read_timeout`; past it, it fails
    /// with a timeout and the client goes on without the subscriptions (see
    /// [`Engine::on_client_connected_then`] to have them later instead).
    pub async fn on_client_connected(&self, ev: &ClientConnected) -> Outcome<Vec<Subscription>> {
        self.connected(ev, None).await
    }

    /// `client.connected`, as [`Engine::on_client_connected`], but a lookup
    /// still running at `read_timeout` is not given up: the returned
    /// subscriptions are those found within it (the CONNACK's wait), and
    /// each lookup that answers later (within `fetch_timeout` in all)
    /// hands its subscriptions to `late`, which the broker applies to the
    /// client's session as it would have at the connect.
    ///
    /// A late answer was read before whatever the client did after its
    /// CONNACK: [`crate::delivery::Delivery::connected`] leaves out the
    /// filters the client has subscribed or unsubscribed since, and drops
    /// the answer if the client has connected again.
    pub async fn on_client_connected_then(
        &self,
        ev: &ClientConnected,
        late: LateSubscriptions,
    ) -> Outcome<Vec<Subscription>> {
        self.connected(ev, Some(&late)).await
    }

    async fn connected(
        &self,
        ev: &ClientConnected,
        late: Option<&LateSubscriptions>,
    ) -> Outcome<Vec<Subscription>> {
        // After a detached disconnect of the same client, never before it.
        let _ordered = self.clients.lock(&ev.client.client_id).await;
        let mut out = Outcome::<Vec<Subscription>>::default();
        let _active = Active::enter(&self.active);
        let mut steps: Steps = Vec::new();
        let event = Event::Connected(ev);
        for rule in self.matching(&event) {
            let result = match &rule.rule.action {
                Action::Function(Function::ClientConnected) => {
                    write(rule, WriteOp::Online(ev.client.clone(), ev.timestamp)).await
                }
                Action::Function(Function::SubscribeLookup) => {
                    match lookup_subscriptions(rule, &ev.client.client_id, late).await {
                        Ok(subs) => {
                            for s in subs {
                                out.output.retain(|o| o.filter != s.filter);
                                out.output.push(s);
                            }
                            Ok(Step::Done)
                        }
                        Err(e) => Err(("lookup_subscriptions", e)),
                    }
                }
                Action::Statements(list) => run_statements(rule, list, &event).await,
                Action::Function(_) => Ok(Step::Done),
            };
            steps.push((rule, result));
        }
        settle(steps, &mut out.errors).await;
        out
    }

    /// `client.disconnected`: records the client offline.
    pub async fn on_client_disconnected(&self, ev: &ClientDisconnected) -> Outcome<()> {
        let _ordered = self.clients.lock(&ev.client.client_id).await;
        self.client_disconnected(ev).await
    }

    /// `client.disconnected` without waiting for the database: returns once
    /// the event is in line behind the client's earlier connect and
    /// disconnect writes, and runs it on the current tokio runtime; the
    /// client's next [`Engine::on_client_connected`] runs after it. What a
    /// broker's disconnect hook should call, so that a session being taken
    /// over by a quick reconnect is never held up by the database. Errors
    /// are logged and counted in the rule metrics. Without a runtime it
    /// runs in place.
    pub async fn detach_client_disconnected(self: &Arc<Self>, ev: ClientDisconnected) {
        let ordered = self.clients.lock(&ev.client.client_id).await;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            let _ = self.client_disconnected(&ev).await;
            return;
        };
        let engine = Arc::clone(self);
        // Under way from now, so that a flush waits for it.
        self.active.fetch_add(1, Ordering::SeqCst);
        handle.spawn(async move {
            // Each failed rule was logged and counted where it ran.
            let _ = engine.client_disconnected(&ev).await;
            drop(ordered);
            engine.active.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Clients with connect or disconnect writes under way (for tests).
    pub fn clients_in_flight(&self) -> usize {
        self.clients.len()
    }

    async fn client_disconnected(&self, ev: &ClientDisconnected) -> Outcome<()> {
        let mut out = Outcome::default();
        let _active = Active::enter(&self.active);
        let mut steps: Steps = Vec::new();
        let event = Event::Disconnected(ev);
        for rule in self.matching(&event) {
            let result = match &rule.rule.action {
                Action::Function(Function::ClientDisconnected) => {
                    write(rule, WriteOp::Offline(ev.client.clone(), ev.timestamp)).await
                }
                Action::Statements(list) => run_statements(rule, list, &event).await,
                Action::Function(_) => Ok(Step::Done),
            };
            steps.push((rule, result));
        }
        settle(steps, &mut out.errors).await;
        out
    }

    /// `session.subscribed`: returns the subscription's offline messages
    /// (only for QoS > 0) and the retained messages matching its filter.
    /// It returns the whole stored backlog at once; a broker whose session
    /// holds only so many messages reads it page by page with
    /// [`Engine::on_session_subscribed_paged`], or lets
    /// [`crate::delivery::Delivery`] do it.
    pub async fn on_session_subscribed(&self, ev: &SessionSubscribed) -> Outcome<Subscribed> {
        self.subscribed(ev, None, true).await
    }

    /// `session.subscribed` with the backlog's first page only: as
    /// [`Engine::on_session_subscribed`], but the offline messages are the
    /// oldest `page` of each fetch rule (see [`Engine::backlog_page`]).
    pub async fn on_session_subscribed_paged(
        &self,
        ev: &SessionSubscribed,
        page: usize,
    ) -> Outcome<Subscribed> {
        self.subscribed(ev, self.backlog_page(page), true).await
    }

    /// The next page of a subscription's stored backlog: the oldest `page`
    /// messages each fetch rule of the subscription still has (those
    /// acknowledged since the last page are gone from it). Only the fetch
    /// rules run; the subscription's statements and retained lookups ran
    /// on `session.subscribed`.
    pub async fn fetch_backlog(
        &self,
        ev: &SessionSubscribed,
        page: usize,
    ) -> Outcome<Vec<Message>> {
        let out = self.subscribed(ev, self.backlog_page(page), false).await;
        Outcome {
            output: out.output.offline,
            errors: out.errors,
        }
    }

    /// The page size a backlog read of `page` uses: `None` (the whole
    /// backlog at once) when `max_returned_count` is set, since that cap
    /// already bounds what one subscribe returns and it keeps the newest,
    /// which pages read oldest first cannot.
    pub fn backlog_page(&self, page: usize) -> Option<usize> {
        match self.limits.max_returned_count {
            Some(_) => None,
            None => Some(page.max(1)),
        }
    }

    async fn subscribed(
        &self,
        ev: &SessionSubscribed,
        page: Option<usize>,
        first: bool,
    ) -> Outcome<Subscribed> {
        let mut out = Outcome::<Subscribed>::default();
        let _active = Active::enter(&self.active);
        let mut steps: Steps = Vec::new();
        let event = Event::Subscribed(ev);
        let filter = strip_shared(&ev.filter);
        let rules = self.selected(&event).filter(|r| {
            first || matches!(r.rule.action, Action::Function(Function::MessageFetch(_)))
        });
        for rule in rules {
            rule.counters.matched.add(1);
            let result = match &rule.rule.action {
                Action::Function(Function::MessageFetch(mode)) if ev.qos > QoS::AtMostOnce => {
                    let request = FetchRequest {
                        client_id: ev.client.client_id.clone(),
                        filter: filter.to_owned(),
                        mode: *mode,
                        max_count: self.limits.max_returned_count,
                        since: since_for(self.limits.time_range),
                        page,
                    };
                    let backend = rule.backend.clone();
                    let fetch = async move { backend.fetch_messages(&request).await };
                    match read(rule, ReadOp::FetchMessages, literal(filter), fetch).await {
                        Ok(msgs) => {
                            rule.writer.reads.fetched.increment(msgs.len() as u64);
                            for m in msgs {
                                if !out.output.offline.iter().any(|o| o.id == m.id) {
                                    out.output.offline.push(m);
                                }
                            }
                            Ok(Step::Done)
                        }
                        Err(e) => Err(("fetch_messages", e)),
                    }
                }
                Action::Function(Function::RetainLookup) => {
                    let (backend, owned) = (rule.backend.clone(), filter.to_owned());
                    let lookup = async move { backend.lookup_retained(&owned).await };
                    match read(rule, ReadOp::LookupRetained, literal(filter), lookup).await {
                        Ok(msgs) => {
                            for m in msgs {
                                out.output.retained.retain(|o| o.topic != m.topic);
                                out.output.retained.push(m);
                            }
                            Ok(Step::Done)
                        }
                        Err(e) => Err(("lookup_retained", e)),
                    }
                }
                Action::Statements(list) => run_statements(rule, list, &event).await,
                Action::Function(_) => Ok(Step::Done),
            };
            steps.push((rule, result));
        }
        settle(steps, &mut out.errors).await;
        out
    }

    /// `session.unsubscribed`: runs the user's statements (such as the
    /// seed's "delete ack").
    pub async fn on_session_unsubscribed(&self, ev: &SessionUnsubscribed) -> Outcome<()> {
        self.statements_only(Event::Unsubscribed(ev)).await
    }

    /// `message.publish`: stores QoS 1/2 messages (`on_message_publish`),
    /// stores or deletes the retained message (`on_message_retain`,
    /// `on_retain_delete`; an empty payload deletes).
    pub async fn on_message_publish(&self, msg: &Message) -> Outcome<()> {
        self.publish(Cow::Borrowed(msg)).await
    }

    /// [`Engine::on_message_publish`], handed the message: the last rule
    /// that reads it takes it, so a message stored by one rule is stored
    /// without a copy (a broker builds the message for this call).
    pub async fn on_message_publish_owned(&self, msg: Message) -> Outcome<()> {
        self.publish(Cow::Owned(msg)).await
    }

    /// The rules before the last that reads the message borrow it; that
    /// one takes it (a copy only if it was borrowed to begin with).
    async fn publish(&self, msg: Cow<'_, Message>) -> Outcome<()> {
        let mut out = Outcome::default();
        let _active = Active::enter(&self.active);
        let rules: Vec<&CompiledRule> = self.matching(&Event::Publish(&msg)).collect();
        let last = rules
            .iter()
            .rposition(|r| !matches!(publish_use(&r.rule.action, &msg), PublishUse::Nothing));
        let mut msg = Some(msg);
        let mut steps: Steps = Vec::with_capacity(rules.len());
        for (k, rule) in rules.into_iter().enumerate() {
            let this = if Some(k) == last {
                msg.take()
            } else {
                msg.as_deref().map(Cow::Borrowed)
            };
            let result = match this {
                Some(m) => publish_step(rule, m).await,
                // Past the last rule that reads it: nothing to do.
                None => Ok(Step::Done),
            };
            steps.push((rule, result));
        }
        settle(steps, &mut out.errors).await;
        out
    }

    /// `message.acked`: records the ack (`on_message_acked*`).
    pub async fn on_message_acked(&self, ev: &MessageDelivery) -> Outcome<()> {
        let mut out = Outcome::default();
        let _active = Active::enter(&self.active);
        let mut steps: Steps = Vec::new();
        let event = Event::Acked(ev);
        for rule in self.matching(&event) {
            let result = match &rule.rule.action {
                Action::Function(Function::MessageAcked(mode)) => {
                    let ack = Ack {
                        client_id: ev.client.client_id.clone(),
                        topic: ev.topic.clone(),
                        message_id: ev.message_id.clone(),
                    };
                    write(rule, WriteOp::Ack(*mode, vec![ack])).await
                }
                Action::Statements(list) => run_statements(rule, list, &event).await,
                Action::Function(_) => Ok(Step::Done),
            };
            steps.push((rule, result));
        }
        settle(steps, &mut out.errors).await;
        out
    }

    /// `message.delivered`: runs the user's statements.
    pub async fn on_message_delivered(&self, ev: &MessageDelivery) -> Outcome<()> {
        self.statements_only(Event::Delivered(ev)).await
    }

    async fn statements_only(&self, event: Event<'_>) -> Outcome<()> {
        let mut out = Outcome::default();
        let _active = Active::enter(&self.active);
        let mut steps: Steps = Vec::new();
        for rule in self.matching(&event) {
            let result = match &rule.rule.action {
                Action::Statements(list) => run_statements(rule, list, &event).await,
                Action::Function(_) => Ok(Step::Done),
            };
            steps.push((rule, result));
        }
        settle(steps, &mut out.errors).await;
        out
    }

    fn matching<'a>(&'a self, event: &Event<'_>) -> impl Iterator<Item = &'a CompiledRule> + 'a {
        self.selected(event).inspect(|r| {
            r.counters.matched.add(1);
        })
    }

    /// The rules of the event's hook whose filter matches it, in rule
    /// order, not counted.
    fn selected<'a>(&'a self, event: &Event<'_>) -> impl Iterator<Item = &'a CompiledRule> + 'a {
        let hook = &self.hooks[event.hook().index()];
        let picked = hook.select(event.topic());
        picked.into_iter().map(move |i| &hook.rules[i])
    }

    /// Whether a rule stores retained messages (`on_message_retain`): a
    /// broker then advertises retained messages as available (MQTT 5
    /// CONNACK Retain Available).
    pub fn keeps_retained(&self) -> bool {
        self.hooks[Hook::MessagePublish.index()]
            .rules
            .iter()
            .any(|r| matches!(r.rule.action, Action::Function(Function::MessageRetain)))
    }

    /// Whether a QoS 1/2 message on `topic` is stored as an offline
    /// message (an `on_message_publish` rule matches it) and fetched back
    /// on subscribe (an offline-message fetch rule matches it): the stored
    /// backlog brings it, so a broker may hold back its own copy.
    pub fn stores_offline(&self, topic: &str) -> bool {
        let has = |hook: Hook, wanted: fn(&Action) -> bool| {
            let hook = &self.hooks[hook.index()];
            hook.select(Some(topic))
                .into_iter()
                .any(|i| wanted(&hook.rules[i].rule.action))
        };
        has(Hook::MessagePublish, |a| {
            matches!(a, Action::Function(Function::MessagePublish))
        }) && has(Hook::SessionSubscribed, |a| {
            matches!(a, Action::Function(Function::MessageFetch(_)))
        })
    }
}

/// A filter without wildcards is its one topic: a read of it depends on
/// that topic's writes only.
fn literal(filter: &str) -> Option<&str> {
    (!crate::topic::has_wildcards(filter)).then_some(filter)
}

/// How a rule's step ended, when it did not fail.
enum Step {
    /// It ran.
    Done,
    /// Its writes are in the pool's buffer; their outcomes come later, so
    /// that the writes of every rule of an event are flushed together.
    Later(Vec<(&'static str, Ticket)>),
}

type StepResult = Result<Step, (&'static str, BackendError)>;

/// Rules whose steps were taken, in rule order, waiting to be settled.
type Steps<'a> = Vec<(&'a CompiledRule, StepResult)>;

/// A rule's read (`query`, which runs only here), after what it waits for
/// first: the buffered writes it depends on (see
/// [`PoolWriter::barrier`]), unless the server is found away meanwhile (a
/// write failed, or had no answer for many times the usual flush time);
/// then the query. The two together take at most `read_timeout` (the
/// subscription lookup a CONNACK waits for) or `fetch_timeout` (fetches).
/// While the pool's server is away (a write or read could not reach it,
/// or a write stalled, and no write has landed since) the read fails at
/// once with a retryable error: a client connecting during an outage gets
/// its CONNACK without a wait.
async fn read<T: Send + 'static>(
    rule: &CompiledRule,
    op: ReadOp,
    key: Option<&str>,
    query: impl std::future::Future<Output = BackendResult<T>> + Send + 'static,
) -> BackendResult<T> {
    let (lookup, fetch) = rule.writer.read_timeouts();
    let bound = match op {
        ReadOp::LookupSubscriptions => lookup,
        ReadOp::FetchMessages | ReadOp::LookupRetained => fetch,
    };
    bounded_read(&rule.rule.pool, &rule.writer, op, key, bound, query).await
}

/// [`read`], from parts a task can own, within `bound` (named by `op`'s
/// timeout key in errors).
///
/// The query runs in a task of its own, which the bound stops waiting for
/// but never cancels: drivers are not all safe to drop mid-operation (the
/// MongoDB driver's documentation warns against dropping its futures
/// before they complete). A query past its bound ends by the driver's own
/// timeouts, or when the server answers.
async fn bounded_read<T: Send + 'static>(
    pool: &str,
    writer: &PoolWriter,
    op: ReadOp,
    key: Option<&str>,
    bound: Duration,
    query: impl std::future::Future<Output = BackendResult<T>> + Send + 'static,
) -> BackendResult<T> {
    let reads = &writer.reads;
    let away = |why: String| {
        BackendError::new(
            ErrorKind::Connection,
            format!("pool {pool}: the server is away ({why}); not read until it answers again"),
        )
    };
    if let Some(why) = writer.away() {
        reads.record(op, ReadOutcome::Away, None);
        return Err(away(why));
    }
    let key_name = match op {
        ReadOp::LookupSubscriptions => "read_timeout",
        ReadOp::FetchMessages | ReadOp::LookupRetained => "fetch_timeout",
    };
    let start = tokio::time::Instant::now();
    // One deadline for the wait and the query: the bound is what the
    // client waits, whichever part takes the time.
    let deadline = start + bound;
    // The barrier ends early in a lane whose writes failed or stalled.
    match tokio::time::timeout_at(deadline, writer.barrier(key)).await {
        Ok(()) => {
            if let Some(why) = writer.away() {
                reads.record(op, ReadOutcome::Away, None);
                return Err(away(why));
            }
        }
        Err(_) => {
            // The buffer is behind: no finding about the server itself.
            reads.record(
                op,
                ReadOutcome::Timeout,
                Some(start.elapsed().as_secs_f64()),
            );
            return Err(BackendError::new(
                ErrorKind::Timeout,
                format!("pool {pool}: the writes before this read took longer than {key_name} ({bound:?})"),
            ));
        }
    }
    let mut task = tokio::spawn(query);
    let result = match tokio::time::timeout_at(deadline, &mut task).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Ok(Err(BackendError::new(
            ErrorKind::Query,
            format!("pool {pool}: the read's task ended without an answer: {e}"),
        ))),
        Err(elapsed) => Err(elapsed),
    };
    let took = Some(start.elapsed().as_secs_f64());
    match result {
        Ok(Err(e)) => {
            reads.record(op, ReadOutcome::Error, took);
            if e.kind() == ErrorKind::Connection {
                writer.found_away_by_read(e.to_string());
            }
            Err(e)
        }
        Ok(done) => {
            reads.record(op, ReadOutcome::Ok, took);
            done
        }
        // A slow answer is no finding that the server is away: a hung one
        // is found by its stalled writes.
        Err(_) => {
            reads.record(op, ReadOutcome::Timeout, took);
            Err(BackendError::new(
                ErrorKind::Timeout,
                format!("pool {pool}: no answer to a read within {key_name} ({bound:?})"),
            ))
        }
    }
}

/// The subscription lookup of a connecting client. Without `late`, a read
/// bounded by `read_timeout`. With it, the CONNACK still waits at most
/// `read_timeout`, but a lookup not done by then goes on in a task of its
/// own (up to `fetch_timeout` in all) and hands what it finds to `late`:
/// a slow server delays a client's stored subscriptions, it does not lose
/// them.
async fn lookup_subscriptions(
    rule: &CompiledRule,
    client_id: &str,
    late: Option<&LateSubscriptions>,
) -> BackendResult<Vec<Subscription>> {
    let Some(late) = late else {
        let (backend, id) = (rule.backend.clone(), client_id.to_owned());
        let query = async move { backend.lookup_subscriptions(&id).await };
        return read(rule, ReadOp::LookupSubscriptions, Some(client_id), query).await;
    };
    let (connack_bound, fetch) = rule.writer.read_timeouts();
    let whole = fetch.max(connack_bound);
    let (pool, writer, backend) = (
        rule.rule.pool.clone(),
        rule.writer.clone(),
        rule.backend.clone(),
    );
    let id = client_id.to_owned();
    let mut lookup = Box::pin(async move {
        let query = {
            let id = id.clone();
            async move { backend.lookup_subscriptions(&id).await }
        };
        bounded_read(
            &pool,
            &writer,
            ReadOp::LookupSubscriptions,
            Some(&id),
            whole,
            query,
        )
        .await
    });
    match tokio::time::timeout(connack_bound, &mut lookup).await {
        Ok(result) => result,
        Err(_) => {
            tracing::info!(pool = %rule.rule.pool, client = client_id, bound = ?connack_bound,
                "subscription lookup slower than read_timeout: the CONNACK goes now, the subscriptions when it answers");
            let late = Arc::clone(late);
            let (pool, id) = (rule.rule.pool.clone(), client_id.to_owned());
            tokio::spawn(async move {
                match lookup.await {
                    Ok(subs) if subs.is_empty() => {}
                    Ok(subs) => late(subs),
                    Err(e) => {
                        tracing::warn!(pool = %pool, client = %id, error = %e,
                            "late subscription lookup failed: the client goes on without its stored subscriptions")
                    }
                }
            });
            Ok(Vec::new())
        }
    }
}

/// Where stored subscriptions go that a connecting client's lookup returned
/// after its CONNACK (see [`Engine::on_client_connected_then`]). It is
/// called from a task of its own, once per late lookup, with the client's
/// subscriptions from that pool.
pub type LateSubscriptions = Arc<dyn Fn(Vec<Subscription>) + Send + Sync>;

/// What a `message.publish` rule does with a message.
enum PublishUse<'r> {
    Store,
    StoreRetained,
    DeleteRetained,
    Statements(&'r [RawStatement]),
    Nothing,
}

fn publish_use<'r>(action: &'r Action, msg: &Message) -> PublishUse<'r> {
    match action {
        Action::Function(Function::MessagePublish)
            if msg.qos > QoS::AtMostOnce && !(msg.retain && msg.payload.is_empty()) =>
        {
            PublishUse::Store
        }
        Action::Function(Function::MessageRetain) if msg.retain && !msg.payload.is_empty() => {
            PublishUse::StoreRetained
        }
        Action::Function(Function::RetainDelete) if msg.retain && msg.payload.is_empty() => {
            PublishUse::DeleteRetained
        }
        Action::Statements(list) => PublishUse::Statements(list),
        Action::Function(_) => PublishUse::Nothing,
    }
}

/// One `message.publish` rule's step: a write takes the message when it
/// is owned, and copies it when borrowed.
async fn publish_step(rule: &CompiledRule, msg: Cow<'_, Message>) -> StepResult {
    let options = WriteOptions {
        payload_format: rule.rule.payload_format,
        ..WriteOptions::default()
    };
    match publish_use(&rule.rule.action, &msg) {
        PublishUse::Store => write(rule, WriteOp::Store(vec![msg.into_owned()], options)).await,
        PublishUse::StoreRetained => {
            write(
                rule,
                WriteOp::StoreRetained(vec![msg.into_owned()], options),
            )
            .await
        }
        PublishUse::DeleteRetained => {
            write(rule, WriteOp::DeleteRetained(vec![msg.topic.clone()])).await
        }
        PublishUse::Statements(list) => run_statements(rule, list, &Event::Publish(&msg)).await,
        PublishUse::Nothing => Ok(Step::Done),
    }
}

/// A write through the pool's buffer.
async fn write(rule: &CompiledRule, op: WriteOp) -> StepResult {
    let name = op.name();
    let client_event = op.is_status();
    let ticket = rule
        .writer
        .submit(op, client_event, &rule.retry, &rule.tag)
        .await;
    Ok(Step::Later(vec![(name, ticket)]))
}

async fn run_statements(
    rule: &CompiledRule,
    list: &[RawStatement],
    event: &Event<'_>,
) -> StepResult {
    // A statement keeps its order with others on the same topic (or, for
    // client events, of the same client).
    let topic = event.topic();
    let key = topic.unwrap_or_else(|| event.client_id());
    let mut tickets = Vec::with_capacity(list.len());
    for s in list {
        let op = WriteOp::Execute(s.compiled.render(event), key.to_owned());
        tickets.push((
            "execute",
            rule.writer
                .submit(op, topic.is_none(), &rule.retry, &rule.tag)
                .await,
        ));
    }
    Ok(Step::Later(tickets))
}

/// Waits for each rule's writes, in rule order, then counts and reports
/// the outcome.
async fn settle(steps: Steps<'_>, errors: &mut Vec<RuleError>) {
    for (rule, result) in steps {
        let result = match result {
            Ok(Step::Later(tickets)) => {
                let mut queued = false;
                let mut buffered = false;
                let mut failed = None;
                for (name, t) in tickets {
                    match t.outcome().await {
                        Submitted::Done => {}
                        // Counted when it lands.
                        Submitted::Buffered => buffered = true,
                        Submitted::Queued => queued = true,
                        Submitted::Failed(e) => {
                            failed.get_or_insert((name, e));
                        }
                    }
                }
                match failed {
                    Some(f) => Err(f),
                    None if queued => {
                        tracing::debug!(rule = %rule.key, "rule's write kept in the buffer for retry");
                        continue;
                    }
                    None if buffered => continue,
                    None => Ok(Step::Done),
                }
            }
            other => other,
        };
        finish(rule, result, errors);
    }
}

fn finish(rule: &CompiledRule, result: StepResult, errors: &mut Vec<RuleError>) {
    match result {
        Ok(_) => {
            rule.counters.succeeded.add(1);
            tracing::trace!(rule = %rule.key, "rule ran");
        }
        Err((operation, source)) => {
            rule.counters.failed.add(1);
            let error = RuleError {
                rule: rule.key.clone(),
                pool: rule.rule.pool.clone(),
                operation,
                source,
            };
            tracing::warn!(
                rule = %error.rule,
                pool = %error.pool,
                operation,
                retryable = error.is_retryable(),
                error = %error.source,
                "backend rule failed"
            );
            errors.push(error);
        }
    }
}

/// Counts a hook as under way until dropped.
struct Active<'a>(&'a AtomicUsize);

impl<'a> Active<'a> {
    fn enter(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Active(n)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs futures concurrently and waits for all (the engine has no
/// `futures` dependency).
async fn join_all<F: std::future::Future<Output = ()>>(futs: impl IntoIterator<Item = F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
