//! [`Delivery`]: the broker-neutral adapter between a broker's hooks and
//! the [`Engine`], owning the delivery bookkeeping.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::{DeliveryOptions, Engine, LateSubscriptions, Subscribed};
use crate::hook::{ClientConnected, ClientDisconnected, ClientInfo, Hook, MessageDelivery};
use crate::hook::{SessionSubscribed, SessionUnsubscribed};
use crate::message::{Message, QoS, Subscription, Timestamp};
use crate::observe::DeliveryObserver;
use crate::properties::Expiry;
use crate::topic::{matches, strip_shared};

use super::late::LateWatches;
use super::DeliveryTracker;

/// How [`Delivery`] feeds a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// The most stored messages handed to one session and not yet
    /// acknowledged. Keep it below what the broker's session holds (its
    /// in-flight window plus its queue), with room for live traffic: a
    /// backlog larger than this is read page by page as the client
    /// acknowledges. The next page is read once half the window is free.
    pub window: usize,
    /// The most messages the broker's session queues (rmqtt's
    /// `max_mqueue_len`). Stored messages handed over and the session's own
    /// offline copies still to pass [`Delivery::live_copy`] are kept within
    /// it together: a broker whose full queue drops its oldest message
    /// would otherwise drop a stored one and break the per-topic order.
    pub session_queue: usize,
}

impl DeliveryConfig {
    /// The default window: half of the 1,000-message session queue common
    /// to rmqtt, mosquitto and EMQX.
    pub const DEFAULT_WINDOW: usize = 500;
    /// The default session queue: rmqtt's, mosquitto's and EMQX's 1,000.
    pub const DEFAULT_SESSION_QUEUE: usize = 1000;
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            window: Self::DEFAULT_WINDOW,
            session_queue: Self::DEFAULT_SESSION_QUEUE,
        }
    }
}

/// MQTT 5 retain handling of a subscription (MQTT 3.1.1: always send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetainHandling {
    /// 0: send the retained messages on every subscribe.
    #[default]
    Send,
    /// 1: send them only if the session did not have the subscription.
    SendIfNew,
    /// 2: never send them on subscribe.
    DoNotSend,
}

/// The MQTT subscription options that decide what storage hands a new
/// subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeOptions {
    /// MQTT 5 No Local: the client never gets what it published itself.
    pub no_local: bool,
    /// MQTT 5 retain handling.
    pub retain_handling: RetainHandling,
}

/// What to do with a copy of a stored message that [`Delivery`] did not
/// hand over (see [`Delivery::live_copy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveCopy {
    /// Send it.
    Send,
    /// Do not send it: the client gets the message from storage.
    HoldBack,
    /// Do not send it, and call [`Delivery::resume`] for each of the
    /// session's subscriptions: storage brings their backlogs.
    Resume,
    /// Do not send it, and hand the session what [`Delivery::fill`]
    /// returns: the session's own copies passing made room for more of a
    /// backlog being paged in.
    Fill,
}

/// A stored message for the broker to hand to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The message, with its stored id (carry it to the ack).
    pub message: Message,
    /// The QoS to deliver at: the message's, capped by the granted QoS.
    pub qos: QoS,
    /// Send with the retain flag (a retained message on subscribe).
    pub retain: bool,
}

/// The adapter a broker's hooks call: it runs the [`Engine`] and keeps
/// what a broker needs so that every stored message reaches each
/// subscription once.
///
/// - **Backlog paging.** A subscription's stored backlog is read page by
///   page: at most [`DeliveryConfig::window`] stored messages are handed
///   to a session unacknowledged; each ack frees room, and once half the
///   window is free the next messages go out ([`Delivery::acked`] returns
///   them). A message the session dropped comes again
///   ([`Delivery::dropped`]).
/// - **Subscription options.** No Local and retain handling, a retained
///   message that is also an offline message sent once.
/// - **Ids.** A packet id maps back to the stored message id for the ack.
/// - **Live and offline copies.** [`Delivery::live_copy`] says when the
///   broker's own copy of a stored message must not be sent: the fetch
///   already handed it over, or the subscription's backlog, which brings
///   it in order, is still being paged in. Storage, read in store order,
///   is the one source of a backlog: the session's own offline queue
///   (bounded, dropping its oldest when full) never decides what arrives.
///
/// ```
/// use std::sync::Arc;
/// use backend_core::{delivery::*, ClientInfo, Config, Engine, MemoryBackend, Message, QoS, SessionSubscribed};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let conf = Config::parse(r##"
/// backend.redis.pool1.server = 127.0.0.1:6379
/// backend.redis.hook.message.publish.1 = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}
/// backend.redis.hook.session.subscribed.1 = {"topic": "queue/#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}
/// backend.redis.hook.message.acked.1 = {"topic": "queue/#", "action": {"function": "on_message_acked_for_queue"}, "pool": "pool1"}
/// "##).unwrap();
/// let engine = Arc::new(Engine::with_backend(&conf, Arc::new(MemoryBackend::new())).unwrap());
/// let delivery = Delivery::new(engine, DeliveryConfig { window: 2, ..Default::default() });
/// for i in 0..3 {
///     delivery.published(Message::new("pub", "queue/a", QoS::AtLeastOnce, vec![i])).await;
/// }
/// let me = ClientInfo::new("sub", "node1");
/// let sub = SessionSubscribed { client: me.clone(), filter: "queue/#".into(), qos: QoS::AtLeastOnce };
/// let first = delivery.subscribed(&sub, SubscribeOptions::default()).await;
/// assert_eq!(first.len(), 2, "a window's worth");
/// delivery.delivered(&me, Some(1), &first[0].message.id, "queue/a", QoS::AtLeastOnce).await;
/// let next = delivery.acked(&me, 1, "queue/a", QoS::AtLeastOnce).await;
/// assert_eq!(next[0].message.payload[0], 2, "the ack brings the next one");
/// # });
/// ```
#[derive(Debug)]
pub struct Delivery {
    engine: Arc<Engine>,
    tracker: DeliveryTracker,
    clients: Mutex<HashMap<String, Client>>,
    window: usize,
    session_queue: usize,
    observe: DeliveryObserver,
    /// What each client did since its connect, for late subscriptions.
    late: Arc<LateWatches>,
    /// Connections open per client id (a takeover opens the new one
    /// before the old one's disconnect is reported).
    online: Mutex<HashMap<String, u32>>,
}

/// One client's subscriptions whose backlog is being paged in.
#[derive(Debug, Default)]
struct Client {
    backlogs: Vec<Backlog>,
    /// Handed over and not yet acknowledged, by id: what is handed again
    /// if the session drops it.
    handed: HashMap<String, Outgoing>,
    /// Handed over and not yet sent to the client: what a connection
    /// taken over may have lost (see [`Delivery::connected`]).
    unsent: HashSet<String>,
    /// Handed to a previous connection, not sent, and not seen since: its
    /// copy either comes with the session taken over (then it is sent) or
    /// was lost (then [`Delivery::idle_refill`] hands it again). Pages
    /// read meanwhile skip it.
    suspect: HashMap<String, Outgoing>,
    /// Dropped by the session: handed again first.
    returned: VecDeque<Outgoing>,
    /// Stored messages the session queued itself while offline: its own
    /// copies, held back for the stored backlog that brings them in order.
    own: HashSet<String>,
    /// A page is being read: one at a time per client.
    reading: bool,
    /// The broker was asked to resume the session's subscriptions.
    resuming: bool,
    /// Filters the session already had when they were subscribed again.
    existing: HashSet<String>,
    /// Numbers the backlogs, so a page read for a subscription that was
    /// replaced meanwhile is dropped.
    generation: u64,
    /// When the session last sent, dropped, or had acknowledged a stored
    /// message, or was handed one (see [`Delivery::idle_refill`]).
    last_event: Option<Instant>,
}

impl Client {
    /// Whether [`Delivery::idle_refill`] should look at this client: a
    /// backlog still to page in, or messages to hand again, no page being
    /// read, and nothing stored moving for `quiet`.
    fn idle(&self, now: Instant, quiet: Duration) -> bool {
        !self.reading
            && (self.backlogs.iter().any(Backlog::draining)
                || !self.returned.is_empty()
                || !self.suspect.is_empty())
            && self
                .last_event
                .is_none_or(|t| now.duration_since(t) >= quiet)
    }
}

#[derive(Debug)]
struct Backlog {
    sub: SessionSubscribed,
    no_local: bool,
    /// Read and not yet handed over (the window was full).
    queued: VecDeque<Message>,
    /// More may be stored than was read.
    more: bool,
    generation: u64,
}

impl Backlog {
    fn draining(&self) -> bool {
        self.more || !self.queued.is_empty()
    }
}

impl Delivery {
    /// An adapter over `engine`.
    pub fn new(engine: Arc<Engine>, config: DeliveryConfig) -> Self {
        Delivery {
            engine,
            tracker: DeliveryTracker::new(),
            clients: Mutex::default(),
            window: config.window.max(1),
            session_queue: config.session_queue.max(1),
            observe: DeliveryObserver::new(),
            late: Arc::default(),
            online: Mutex::default(),
        }
    }

    /// How many more stored messages `client`'s session can be handed
    /// now: what the window has left, and what its queue has left beside
    /// the stored messages pending and its own copies still queued.
    fn room(&self, client: &str, c: &Client) -> usize {
        let pending = self.tracker.pending(client);
        let queue = self
            .session_queue
            .saturating_sub(pending + c.own.len() + c.suspect.len());
        self.window.saturating_sub(pending).min(queue)
    }

    /// The room a refill waits for after an ack: half of what the window
    /// (or a smaller session queue) holds, so pages are read in halves.
    fn refill_at(&self) -> usize {
        let most = self.window.min(self.session_queue);
        most - most / 2
    }

    /// The engine it runs.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The tracker of stored messages in flight, for inspection.
    pub fn tracker(&self) -> &DeliveryTracker {
        &self.tracker
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Client>> {
        // Every operation leaves the map consistent.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `client.connected`: the client's stored subscriptions, which the
    /// broker applies as if the client had subscribed. The CONNACK waits
    /// at most each pool's `read_timeout` for them; a lookup that answers
    /// later hands its subscriptions to `late` (from a task of its own),
    /// which applies them the same way to the client's session, if it is
    /// still connected. A late answer is dropped if the client has
    /// connected again since, and leaves out the filters the client has
    /// subscribed or unsubscribed itself since the connect (reported
    /// through [`Delivery::before_subscribe`] and
    /// [`Delivery::unsubscribed`]): the client's own choice stands.
    pub async fn connected(
        &self,
        ev: &ClientConnected,
        late: impl Fn(Vec<Subscription>) + Send + Sync + 'static,
    ) -> Vec<Subscription> {
        *self
            .online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ev.client.client_id.clone())
            .or_default() += 1;
        if let Some(c) = self.lock().get_mut(&ev.client.client_id) {
            // A resumed session's subscriptions may be resumed once more.
            c.resuming = false;
            // What was handed to the previous connection and not yet sent
            // may be lost with it: a broker taking a session over from an
            // open connection can drop what was on its way into that
            // connection's queue (rmqtt 0.24 does). Each is in doubt until
            // its copy comes with the session or the session goes idle
            // without it.
            let client = ev.client.client_id.as_str();
            for id in std::mem::take(&mut c.unsent) {
                if let Some(o) = c.handed.remove(&id) {
                    self.tracker.settle(client, &id);
                    c.suspect.insert(id, o);
                }
            }
        }
        let watch = self.late.connect(&ev.client.client_id);
        let late: LateSubscriptions = Arc::new(move |subs: Vec<Subscription>| {
            let subs = watch.still_wanted(subs);
            if !subs.is_empty() {
                late(subs);
            }
        });
        self.engine.on_client_connected_then(ev, late).await.output
    }

    /// `client.disconnected`, detached: a session being taken over by a
    /// quick reconnect does not wait for the database (the engine keeps the
    /// client's writes in order).
    pub async fn disconnected(&self, ev: ClientDisconnected) {
        {
            let mut online = self.online.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = online.get_mut(&ev.client.client_id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    online.remove(&ev.client.client_id);
                }
            }
        }
        self.engine.detach_client_disconnected(ev).await;
    }

    /// What to hand the sessions whose backlog stopped with nothing left
    /// to wait for: a connected client with a backlog still to page in (or
    /// messages its session dropped), nothing of it unacknowledged, and no
    /// stored message sent, acknowledged or dropped for `quiet`. Its
    /// session's own copies counted as still queued are then gone (a
    /// session taken over from an open connection can lose them without a
    /// word): they no longer hold the backlog back. A broker calls this
    /// every second or so and hands each session what it returns, as
    /// after an ack; it never reads for a client that has work in flight.
    pub async fn idle_refill(&self, quiet: Duration) -> Vec<(String, Vec<Outgoing>)> {
        // Cheap checks first, over the clients with a record; no other
        // lock is taken while the map's is held, and only candidates'
        // ids are copied: this runs every second over every client.
        let now = Instant::now();
        let mut candidates: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, c)| c.idle(now, quiet))
            .map(|(id, _)| id.clone())
            .collect();
        if candidates.is_empty() {
            return Vec::new();
        }
        {
            let online = self.online.lock().unwrap_or_else(|p| p.into_inner());
            candidates.retain(|id| online.contains_key(id));
        }
        candidates.retain(|id| self.tracker.pending(id) == 0);
        let stuck: Vec<String> = {
            let mut clients = self.lock();
            candidates
                .into_iter()
                .filter(|id| {
                    // Still idle: an event may have come between the looks.
                    let Some(c) = clients.get_mut(id) else {
                        return false;
                    };
                    if !c.idle(now, quiet) {
                        return false;
                    }
                    if !c.own.is_empty() {
                        tracing::info!(
                            client = %id,
                            own = c.own.len(),
                            "the session's own copies of stored messages never came; the backlog goes on without them"
                        );
                        c.own.clear();
                    }
                    if !c.suspect.is_empty() {
                        tracing::info!(
                            client = %id,
                            lost = c.suspect.len(),
                            "stored messages handed to a connection taken over never came; they are handed again"
                        );
                        self.observe.handed_again.increment(c.suspect.len() as u64);
                        let mut lost: Vec<Outgoing> = c.suspect.drain().map(|(_, o)| o).collect();
                        // Oldest first, as they were handed.
                        lost.sort_by(|a, b| a.message.id.cmp(&b.message.id));
                        c.returned.extend(lost);
                    }
                    c.last_event = Some(now);
                    true
                })
                .collect()
        };
        let mut out = Vec::new();
        for client in stuck {
            let more = self.refill(&client, false).await;
            if !more.is_empty() {
                out.push((client, more));
            }
        }
        out
    }

    /// The client's session ended (a clean session closed, or a persistent
    /// one expired): whatever it held is gone, so its stored messages are
    /// fetched again on the next subscribe.
    pub fn session_ended(&self, client_id: &str) {
        self.tracker.forget(client_id);
        self.lock().remove(client_id);
    }

    /// Called before the broker applies a SUBSCRIBE: whether the session
    /// already had `filter` (for retain handling 1). A late answer to the
    /// client's subscription lookup then leaves `filter` alone.
    pub fn before_subscribe(&self, client_id: &str, filter: &str, existed: bool) {
        self.late.touch(client_id, filter);
        let mut clients = self.lock();
        if existed {
            let c = clients.entry(client_id.to_owned()).or_default();
            c.existing.insert(filter.to_owned());
        } else if let Some(c) = clients.get_mut(client_id) {
            c.existing.remove(filter);
        }
    }

    /// `session.subscribed`: what to hand the session now: the retained
    /// messages (as MQTT's options allow) and the first page of the
    /// stored backlog. The rest follows as the client acknowledges.
    pub async fn subscribed(
        &self,
        ev: &SessionSubscribed,
        options: SubscribeOptions,
    ) -> Vec<Outgoing> {
        let client = ev.client.client_id.as_str();
        let existed = self
            .lock()
            .get_mut(client)
            .is_some_and(|c| c.existing.remove(&ev.filter));
        let send_retained = match options.retain_handling {
            RetainHandling::Send => true,
            RetainHandling::SendIfNew => !existed,
            RetainHandling::DoNotSend => false,
        };
        let first = self
            .engine
            .on_session_subscribed_paged(ev, self.window)
            .await
            .output;
        self.start_backlog(ev, options, first, send_retained, true)
            .await
    }

    /// Hands over `first`'s retained messages and first page, and keeps
    /// the subscription's backlog for the pages that follow (in place of
    /// one the filter has, if `replace`; otherwise an existing one stays).
    async fn start_backlog(
        &self,
        ev: &SessionSubscribed,
        options: SubscribeOptions,
        first: Subscribed,
        send_retained: bool,
        replace: bool,
    ) -> Vec<Outgoing> {
        let client = ev.client.client_id.as_str();
        let more = self
            .engine
            .backlog_page(self.window)
            .is_some_and(|page| first.offline.len() >= page);
        let Subscribed { offline, retained } = first.to_deliver(
            client,
            DeliveryOptions {
                no_local: options.no_local,
                send_retained,
            },
        );
        let mut out = Vec::new();
        {
            let mut clients = self.lock();
            let c = clients.entry(client.to_owned()).or_default();
            if !replace && c.backlogs.iter().any(|b| b.sub.filter == ev.filter) {
                return out;
            }
            let now = Timestamp::now();
            for m in retained {
                let o = Outgoing {
                    qos: m.qos.min(ev.qos),
                    retain: true,
                    message: m,
                };
                // An expired retained message is not sent.
                if let Some(o) = fresh(o, now) {
                    self.hand_over(client, c, &o);
                    out.push(o);
                }
            }
            c.generation += 1;
            let generation = c.generation;
            c.backlogs.retain(|b| b.sub.filter != ev.filter);
            // Messages in doubt come with the session taken over, or
            // again once it is idle: not from this read.
            let queued: VecDeque<Message> = self
                .tracker
                .without_pending(client, offline)
                .into_iter()
                .filter(|m| !c.suspect.contains_key(&m.id))
                .collect();
            if more || !queued.is_empty() {
                c.backlogs.push(Backlog {
                    sub: ev.clone(),
                    no_local: options.no_local,
                    queued,
                    more,
                    generation,
                });
            }
        }
        out.extend(self.refill(client, true).await);
        out
    }

    /// `session.unsubscribed`: runs the user's statements; the filter's
    /// backlog is no longer paged in.
    pub async fn unsubscribed(&self, ev: &SessionUnsubscribed) {
        self.late.touch(&ev.client.client_id, &ev.filter);
        if let Some(c) = self.lock().get_mut(&ev.client.client_id) {
            c.backlogs.retain(|b| b.sub.filter != ev.filter);
        }
        // Failed rules were logged and counted by the engine.
        let _ = self.engine.on_session_unsubscribed(ev).await;
    }

    /// `message.publish`: stores the message as the rules say. Returns once
    /// it is stored or in the pool's buffer (see [`crate::write`]). The
    /// message is handed over: the rule that stores it takes it, uncopied.
    pub async fn published(&self, msg: Message) {
        // Failed rules were logged and counted by the engine.
        let _ = self.engine.on_message_publish_owned(msg).await;
    }

    /// A persistent session that is offline queued `message_id`: its own
    /// copy. When storage keeps the message for a subscription's backlog,
    /// [`Delivery::live_copy`] holds the copy back and the backlog, read in
    /// store order, brings the message; the session's queue (bounded, and
    /// dropping its oldest when full) never decides what arrives.
    pub fn queued_offline(&self, client_id: &str, message_id: &str) {
        tracing::trace!(client = client_id, message = message_id, "queued offline");
        self.lock()
            .entry(client_id.to_owned())
            .or_default()
            .own
            .insert(message_id.to_owned());
    }

    /// `message.delivered`: stored message `message_id` goes to `client`
    /// as packet `packet_id` (none for QoS 0); its ack comes back by that
    /// id. Runs the user's statements.
    pub async fn delivered(
        &self,
        client: &ClientInfo,
        packet_id: Option<u16>,
        message_id: &str,
        topic: &str,
        qos: QoS,
    ) {
        if let Some(c) = self.lock().get_mut(&client.client_id) {
            c.unsent.remove(message_id);
            c.last_event = Some(Instant::now());
        }
        if let Some(packet_id) = packet_id {
            tracing::trace!(client = %client.client_id, message = message_id, packet_id, "delivered");
            self.tracker
                .delivered(&client.client_id, packet_id, message_id);
        }
        if self.engine.has_rules(Hook::MessageDelivered) {
            let ev = MessageDelivery {
                client: client.clone(),
                message_id: message_id.to_owned(),
                topic: topic.to_owned(),
                qos,
            };
            // Failed rules were logged and counted by the engine.
            let _ = self.engine.on_message_delivered(&ev).await;
        }
    }

    /// `message.acked`: `client` acknowledged packet `packet_id` (PUBACK,
    /// or PUBREC for QoS 2). Records the ack of the stored message it
    /// carried, and returns the next stored messages to hand the session,
    /// if the window has room for them.
    pub async fn acked(
        &self,
        client: &ClientInfo,
        packet_id: u16,
        topic: &str,
        qos: QoS,
    ) -> Vec<Outgoing> {
        let client_id = client.client_id.as_str();
        let Some(id) = self.tracker.take_packet(client_id, packet_id) else {
            return Vec::new();
        };
        tracing::trace!(client = client_id, message = %id, packet_id, "acked");
        let ev = MessageDelivery {
            client: client.clone(),
            message_id: id,
            topic: topic.to_owned(),
            qos,
        };
        // Failed rules were logged and counted by the engine.
        let _ = self.engine.on_message_acked(&ev).await;
        // Pending until now: a page read meanwhile skips it. From here on
        // a read sees the ack (reads wait for the writes before them).
        self.tracker.settle(client_id, &ev.message_id);
        if let Some(c) = self.lock().get_mut(client_id) {
            c.handed.remove(&ev.message_id);
            c.unsent.remove(&ev.message_id);
            c.last_event = Some(Instant::now());
        }
        self.refill(client_id, false).await
    }

    /// The session dropped stored message `message_id` (its queue was
    /// full). A copy [`Delivery`] handed over (`fetched`) is handed again
    /// once the window has room; the session's own offline copy is
    /// forgotten (the backlog reads it).
    pub fn dropped(&self, client_id: &str, message_id: &str, fetched: bool) {
        let mut clients = self.lock();
        let Some(c) = clients.get_mut(client_id) else {
            return;
        };
        tracing::trace!(
            client = client_id,
            message = message_id,
            fetched,
            "dropped by the session"
        );
        c.last_event = Some(Instant::now());
        if !fetched {
            c.own.remove(message_id);
        } else if let Some(o) = c.suspect.remove(message_id) {
            // Its copy came with the session taken over, which dropped it.
            self.observe.handed_again.increment(1);
            c.returned.push_back(o);
        } else if let Some(o) = c.handed.remove(message_id) {
            c.unsent.remove(message_id);
            tracing::info!(
                client = client_id,
                message = message_id,
                "the session dropped a stored message it was handed; it is handed again"
            );
            self.tracker.settle(client_id, message_id);
            self.observe.handed_again.increment(1);
            c.returned.push_back(o);
        }
    }

    /// What the broker does with a copy of stored message `message_id`
    /// that [`Delivery`] handed over at `qos`, about to be sent to
    /// `client_id` for the first time (not a retransmission): [`LiveCopy::Send`]
    /// if it is the copy handed to this connection, or one handed to the
    /// connection the session was taken over from (in doubt until now);
    /// [`LiveCopy::HoldBack`] for a copy of a message this session was
    /// handed and has acknowledged since: the client gets each stored
    /// message once. A copy the adapter knows nothing of (its session
    /// ended meanwhile) is sent, and so is one at QoS 0, which is never
    /// acknowledged and so never in doubt.
    pub fn fetched_copy(&self, client_id: &str, message_id: &str, qos: QoS) -> LiveCopy {
        if qos == QoS::AtMostOnce {
            return LiveCopy::Send;
        }
        let mut clients = self.lock();
        let Some(c) = clients.get_mut(client_id) else {
            return LiveCopy::Send;
        };
        c.last_event = Some(Instant::now());
        if let Some(o) = c.suspect.remove(message_id) {
            self.tracker.hand_over_fetched(client_id, message_id);
            c.handed.insert(message_id.to_owned(), o);
            return LiveCopy::Send;
        }
        if c.handed.contains_key(message_id) || !self.tracker.fetched_before(client_id, message_id)
        {
            LiveCopy::Send
        } else {
            tracing::debug!(
                client = client_id,
                message = message_id,
                "a copy of a stored message handed and acknowledged before; not sent"
            );
            LiveCopy::HoldBack
        }
    }

    /// What the broker does with a copy of stored message `message_id` on
    /// `topic` that it is about to send to `client_id` and that
    /// [`Delivery`] did not hand over: a live copy routed to the online
    /// session, or the session's own copy queued while it was offline
    /// ([`Delivery::queued_offline`]). Ask it for every such message that
    /// is not a retransmission.
    ///
    /// - The fetch already handed the message over (a subscribe that raced
    ///   the publish): hold it back.
    /// - A subscription of the client matching `topic` is still paging in
    ///   its backlog, which will bring the message in order: hold it back.
    /// - The session's own copy of a message storage keeps for the backlog,
    ///   and no backlog is being read (a persistent session resumed without
    ///   subscribing again): hold it back, and resume the session's
    ///   subscriptions ([`Delivery::resume`]).
    pub fn live_copy(&self, client_id: &str, message_id: &str, topic: &str) -> LiveCopy {
        let decision = self.decide_live_copy(client_id, message_id, topic);
        tracing::trace!(
            client = client_id,
            message = message_id,
            ?decision,
            "live copy"
        );
        decision
    }

    fn decide_live_copy(&self, client_id: &str, message_id: &str, topic: &str) -> LiveCopy {
        let mut clients = self.lock();
        let Some(c) = clients.get_mut(client_id) else {
            return LiveCopy::Send;
        };
        c.last_event = Some(Instant::now());
        let room_before = self.room(client_id, c);
        let own = c.own.remove(message_id);
        if self.tracker.fetched_before(client_id, message_id) {
            return LiveCopy::HoldBack;
        }
        let draining: Vec<usize> = c
            .backlogs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.draining() && matches(strip_shared(&b.sub.filter), topic))
            .map(|(i, _)| i)
            .collect();
        // The common case, a live message to a client with no backlog
        // being read: no rule lookup.
        if (draining.is_empty() && !own) || !self.engine.stores_offline(topic) {
            return LiveCopy::Send;
        }
        let covered = !draining.is_empty();
        for i in draining {
            // Stored after the last page was read, or not yet read: a
            // later page reads it.
            c.backlogs[i].more = true;
        }
        match (covered, own) {
            // The session's own copies made room for the backlog's next
            // messages, which wait for no ack.
            (true, true)
                if !c.reading
                    && room_before < self.refill_at()
                    && self.room(client_id, c) >= self.refill_at() =>
            {
                LiveCopy::Fill
            }
            (true, _) => LiveCopy::HoldBack,
            (false, true) if !c.resuming => {
                c.resuming = true;
                LiveCopy::Resume
            }
            (false, true) => LiveCopy::HoldBack,
            (false, false) => LiveCopy::Send,
        }
    }

    /// Pages in the stored backlog of a subscription the session already
    /// had (a persistent session resumed), as [`Delivery::subscribed`] but
    /// without retained messages or the user's statements, unless it is
    /// being paged in already. Returns what to hand the session now.
    pub async fn resume(&self, ev: &SessionSubscribed, options: SubscribeOptions) -> Vec<Outgoing> {
        let client = ev.client.client_id.as_str();
        let known = self
            .lock()
            .get(client)
            .is_some_and(|c| c.backlogs.iter().any(|b| b.sub.filter == ev.filter));
        if known || ev.qos == QoS::AtMostOnce {
            return Vec::new();
        }
        let page = self.engine.fetch_backlog(ev, self.window).await;
        let first = Subscribed {
            offline: page.output,
            retained: Vec::new(),
        };
        self.start_backlog(ev, options, first, false, false).await
    }

    /// What `client`'s session has room for now of its backlogs being
    /// paged in (see [`LiveCopy::Fill`]); [`Delivery::acked`] does the
    /// same after an ack.
    pub async fn fill(&self, client_id: &str) -> Vec<Outgoing> {
        self.refill(client_id, false).await
    }

    /// Records `o` as handed to `client`'s session.
    fn hand_over(&self, client: &str, c: &mut Client, o: &Outgoing) {
        tracing::trace!(client, message = %o.message.id, topic = %o.message.topic, "handed over");
        self.observe.handed.increment(1);
        c.last_event = Some(Instant::now());
        if o.qos > QoS::AtMostOnce {
            // QoS 0 is never acknowledged: it takes no room in the window.
            self.tracker.hand_over_fetched(client, &o.message.id);
            c.handed.insert(o.message.id.clone(), o.clone());
            c.unsent.insert(o.message.id.clone());
        } else {
            self.tracker.remember_fetched(client, &o.message.id);
        }
    }

    /// Hands over what the window has room for: messages the session
    /// dropped, then the backlogs' read messages, reading the next page of
    /// a backlog when its read messages run out. After an ack it waits
    /// until half the window is free, so pages are read in halves.
    async fn refill(&self, client: &str, subscribing: bool) -> Vec<Outgoing> {
        let mut out = Vec::new();
        if !subscribing {
            // Half the window is waited for only while acks are to come:
            // with none outstanding, nothing else would read on.
            let waits = self.lock().get(client).is_some_and(|c| {
                self.room(client, c) < self.refill_at() && self.tracker.pending(client) > 0
            });
            if waits {
                return out;
            }
        }
        loop {
            let mut expired = Vec::new();
            let next = self.hand_over_queued(client, &mut out, &mut expired);
            self.discard_expired(expired).await;
            let Some((sub, generation)) = next else {
                return out;
            };
            let reading = ReadingGuard {
                delivery: self,
                client,
            };
            let page = self.engine.fetch_backlog(&sub, self.window).await;
            tracing::debug!(client, filter = %sub.filter, read = page.output.len(), "read a page of the stored backlog");
            let full = self
                .engine
                .backlog_page(self.window)
                .is_some_and(|p| page.output.len() >= p);
            let failed = !page.errors.is_empty();
            let fresh = self.tracker.without_pending(client, page.output);
            drop(reading);
            let mut clients = self.lock();
            let Some(c) = clients.get_mut(client) else {
                return out;
            };
            let Some(b) = c.backlogs.iter_mut().find(|b| b.generation == generation) else {
                // Unsubscribed or subscribed again meanwhile.
                continue;
            };
            if failed {
                // The rest stays stored and comes on the next subscribe;
                // live copies flow again meanwhile.
                tracing::warn!(client, filter = %sub.filter, "a page of the stored backlog could not be read; the rest comes on the next subscribe");
                b.more = false;
                c.backlogs.retain(Backlog::draining);
                return out;
            }
            b.more = full;
            b.queued = fresh
                .into_iter()
                .filter(|m| {
                    let own_publish = b.no_local && m.sender == client;
                    !own_publish && !c.suspect.contains_key(&m.id)
                })
                .collect();
            if b.queued.is_empty() && full {
                // A full page of messages the session holds already: the
                // next ack reads on.
                return out;
            }
        }
    }

    /// The part of [`Delivery::refill`] under the lock: hands over what is
    /// queued, within the window, into `out` (expired messages go to
    /// `expired` instead), and names the backlog to read a page of next,
    /// if the window has room and no page is being read.
    fn hand_over_queued(
        &self,
        client: &str,
        out: &mut Vec<Outgoing>,
        expired: &mut Vec<(ClientInfo, Message)>,
    ) -> Option<(SessionSubscribed, u64)> {
        let now = Timestamp::now();
        let mut clients = self.lock();
        let c = clients.get_mut(client)?;
        if c.reading {
            // The reader hands over what this call would have.
            return None;
        }
        let mut room = self.room(client, c);
        let mut taken = Vec::new();
        while room > 0 {
            let Some(o) = c.returned.pop_front() else {
                break;
            };
            if let Some(o) = fresh(o, now) {
                taken.push(o);
                room -= 1;
            }
        }
        for b in c.backlogs.iter_mut() {
            while room > 0 {
                let Some(m) = b.queued.pop_front() else {
                    break;
                };
                if self.tracker.is_pending(client, &m.id) {
                    continue;
                }
                let o = Outgoing {
                    qos: m.qos.min(b.sub.qos),
                    retain: false,
                    message: m,
                };
                match fresh(o.clone(), now) {
                    Some(o) => {
                        taken.push(o);
                        room -= 1;
                    }
                    None => expired.push((b.sub.client.clone(), o.message)),
                }
            }
        }
        for o in taken {
            self.hand_over(client, c, &o);
            out.push(o);
        }
        c.backlogs.retain(Backlog::draining);
        if room == 0 {
            return None;
        }
        let next = c
            .backlogs
            .iter()
            .find(|b| b.queued.is_empty() && b.more)
            .map(|b| (b.sub.clone(), b.generation))?;
        c.reading = true;
        Some(next)
    }

    /// Stored messages whose MQTT 5 expiry passed before they could be
    /// delivered are never delivered [MQTT-3.3.2-5]: each is acknowledged
    /// for the client, so it leaves the backlog as if delivered.
    async fn discard_expired(&self, expired: Vec<(ClientInfo, Message)>) {
        for (client, m) in expired {
            tracing::debug!(client = %client.client_id, message = %m.id, "a stored message expired before delivery; not delivered");
            self.observe.expired.increment(1);
            let ev = MessageDelivery {
                client,
                message_id: m.id,
                topic: m.topic,
                qos: m.qos,
            };
            // Failed rules were logged and counted by the engine.
            let _ = self.engine.on_message_acked(&ev).await;
        }
    }
}

/// `o` as it may go out at `now`: `None` once its MQTT 5 message expiry
/// has passed; otherwise with the interval left [MQTT-3.3.2-6].
fn fresh(mut o: Outgoing, now: Timestamp) -> Option<Outgoing> {
    match o.message.expiry(now) {
        Expiry::Never => Some(o),
        Expiry::Left(secs) => {
            o.message.properties.message_expiry_interval = Some(secs);
            Some(o)
        }
        Expiry::Expired => None,
    }
}

/// Marks a page read over when dropped, so a read cut short (its future
/// dropped) does not stop the client's backlog for good.
struct ReadingGuard<'a> {
    delivery: &'a Delivery,
    client: &'a str,
}

impl Drop for ReadingGuard<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.delivery.lock().get_mut(self.client) {
            c.reading = false;
        }
    }
}
