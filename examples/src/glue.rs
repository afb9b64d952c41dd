//! The glue between rmqtt's hooks and the backend [`Engine`]: one hook
//! handler that turns each rmqtt event into the engine's typed event and
//! carries out what the engine returns (subscriptions to apply, messages
//! to deliver).
//!
//! A stored message's id travels with it through rmqtt as an MQTT v5 user
//! property, from `message.publish` (or the fetch) to the delivery, where
//! it is taken off again before the packet is sent and remembered by
//! packet id in a [`DeliveryTracker`] for the ack.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_core::delivery::DeliveryTracker;
use backend_core::{
    new_message_id, ClientConnected, ClientDisconnected, ClientInfo, DeliveryOptions, Engine,
    Message, MessageDelivery, QoS, SessionSubscribed, SessionUnsubscribed, Subscribed,
    Subscription, Timestamp,
};
use bytestring::ByteString;

use crate::backends::SubscriptionCommand;
use rmqtt::codec::types::Publish as CodecPublish;
use rmqtt::codec::v5::{PublishProperties, RetainHandling};
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::session::Session;
use rmqtt::types::{
    From, Id, Message as SessionMessage, Publish, QoS as RQoS, Subscribe, Unsubscribe,
};

/// The user property that carries a stored message's id inside rmqtt.
pub const MESSAGE_ID_PROPERTY: &str = "x-storage-message-id";

/// The user property that marks a stored message the backend's fetch
/// delivers (as opposed to a live copy of it).
pub const FETCHED_PROPERTY: &str = "x-storage-fetched";

/// The hooks this glue listens to.
const HOOKS: [Type; 12] = [
    Type::ClientConnect,
    Type::ClientSubscribe,
    Type::ClientConnected,
    Type::ClientDisconnected,
    Type::SessionSubscribed,
    Type::SessionUnsubscribed,
    Type::SessionTerminated,
    Type::MessagePublish,
    Type::MessageDelivered,
    Type::MessageAcked,
    Type::OfflineMessage,
    Type::MessageExpiryCheck,
];

/// Registers the storage hooks on rmqtt and starts them.
pub async fn install(scx: &ServerContext, engine: Arc<Engine>, node: String) -> Arc<StorageHooks> {
    let hooks = Arc::new(StorageHooks {
        engine,
        tracker: DeliveryTracker::new(),
        resubscribed: Mutex::default(),
        node,
        scx: scx.clone(),
    });
    let register = scx.extends.hook_mgr().register();
    for typ in HOOKS {
        register
            .add(typ, Box::new(HookRef(Arc::clone(&hooks))))
            .await;
    }
    register.start().await;
    hooks
}

/// What rmqtt calls; one instance behind every hook type.
pub struct StorageHooks {
    engine: Arc<Engine>,
    tracker: DeliveryTracker,
    /// (client, filter) of SUBSCRIBEs whose filter the session already
    /// had: MQTT 5 retain handling 1 sends no retained messages for them.
    resubscribed: Mutex<HashSet<(String, String)>>,
    node: String,
    scx: ServerContext,
}

struct HookRef(Arc<StorageHooks>);

#[async_trait]
impl Handler for HookRef {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let h = &self.0;
        match param {
            Parameter::ClientConnect(info) => h.await_takeover(info.id()).await,
            Parameter::ClientSubscribe(s, sub) => h.before_subscribe(s, sub).await,
            Parameter::ClientConnected(s) => h.connected(s).await,
            Parameter::ClientDisconnected(s, reason) => h.disconnected(s, reason.to_string()).await,
            Parameter::SessionSubscribed(s, sub) => h.subscribed(s, sub).await,
            Parameter::SessionUnsubscribed(s, unsub) => h.unsubscribed(s, unsub).await,
            Parameter::SessionTerminated(s, _) => h.tracker.forget(&s.id.client_id),
            Parameter::MessagePublish(_, from, p) => {
                // A handler before this one may have changed the message.
                let p = match &acc {
                    Some(HookResult::Publish(changed)) => changed,
                    _ => *p,
                };
                if let Some(tagged) = h.published(from, p).await {
                    return (true, Some(HookResult::Publish(tagged)));
                }
            }
            Parameter::MessageDelivered(s, _, p) => {
                if let Some(untagged) = h.delivered(s, p).await {
                    return (true, Some(HookResult::Publish(untagged)));
                }
            }
            Parameter::MessageAcked(s, _, p) => h.acked(s, p).await,
            // rmqtt drops a message whose expiry check fails.
            Parameter::MessageExpiryCheck(s, _, p) if h.is_duplicate(s, p) => {
                return (false, Some(HookResult::MessageExpiry));
            }
            Parameter::OfflineMessage(s, _, p) => {
                if let Some(id) = message_id(p) {
                    h.tracker.handed_over(&s.id.client_id, &id);
                }
            }
            _ => {}
        }
        (true, acc)
    }
}

impl StorageHooks {
    /// The tracker of stored messages in flight, for inspection.
    pub fn tracker(&self) -> &DeliveryTracker {
        &self.tracker
    }

    fn client_info(&self, s: &Session) -> ClientInfo {
        ClientInfo {
            client_id: s.id.client_id.to_string(),
            username: s.id.username.as_ref().map(|u| u.to_string()),
            node: self.node.clone(),
            peer_host: s.id.remote_addr.map(|a| a.to_string()),
        }
    }

    /// A clean session that received DISCONNECT stops reading its messages
    /// at once but leaves rmqtt's registry only after its disconnect work;
    /// a client reconnecting at once with the same id meanwhile sends its
    /// takeover ("kick") to that session, which never answers, and rmqtt
    /// refuses the connection (CONNACK 3, "server unavailable"). So a new
    /// connection first waits (up to 3 s) until such a session is gone.
    /// The DISCONNECT may still be unread in the old session's socket when
    /// the new connection arrives, so a clean session that looks alive is
    /// watched for 100 ms before it is taken over. A persistent session
    /// answers the kick from its offline loop: it is not waited for.
    async fn await_takeover(&self, id: &Id) {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(3);
        let grace = start + Duration::from_millis(100);
        let mut waited = false;
        loop {
            let old = self.scx.extends.shared().await.entry(id.clone()).session();
            let Some(old) = old.filter(|o| o.id != *id) else {
                break;
            };
            if !is_clean(&old).await {
                break;
            }
            let leaving = !old.connected().await.unwrap_or(true)
                || old.disconnect().await.ok().flatten().is_some();
            if !leaving && Instant::now() >= grace {
                // Alive: an ordinary takeover, which it answers.
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(client = %id.client_id, "the previous session is still leaving after 3 s");
                break;
            }
            waited = true;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if waited {
            tracing::debug!(client = %id.client_id, waited = ?start.elapsed(), "waited for the previous clean session to leave");
        }
    }

    async fn connected(&self, s: &Session) {
        let ev = ClientConnected {
            client: self.client_info(s),
            timestamp: Timestamp::now(),
        };
        let subs = self.engine.on_client_connected(&ev).await.output;
        if !subs.is_empty() {
            subscribe(&s.scx, &s.id, &subs);
        }
    }

    async fn disconnected(&self, s: &Session, reason: String) {
        let ev = ClientDisconnected {
            client: self.client_info(s),
            reason,
            timestamp: Timestamp::now(),
        };
        // Detached: a session being taken over by a quick reconnect must
        // not wait for the database (the engine keeps the client's writes
        // in order).
        self.engine.detach_client_disconnected(ev).await;
    }

    /// Notes whether the session already has the filter, before rmqtt
    /// adds (or replaces) the subscription.
    async fn before_subscribe(&self, s: &Session, sub: &Subscribe) {
        let existed = match s.subscriptions().await {
            Ok(subs) => subs.read().await.contains_key(&sub.topic_filter),
            Err(_) => false,
        };
        let key = (s.id.client_id.to_string(), sub.topic_filter.to_string());
        let mut set = self.resubscribed.lock().unwrap_or_else(|p| p.into_inner());
        if existed {
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }

    async fn subscribed(&self, s: &Session, sub: &Subscribe) {
        let client_id = s.id.client_id.to_string();
        let existed = self
            .resubscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(client_id.clone(), sub.topic_filter.to_string()));
        let granted = sub.opts.qos();
        let ev = SessionSubscribed {
            client: self.client_info(s),
            filter: sub.topic_filter.to_string(),
            qos: from_rmqtt_qos(granted),
        };
        let options = DeliveryOptions {
            no_local: sub.opts.no_local().unwrap_or(false),
            send_retained: match sub.opts.retain_handling() {
                Some(RetainHandling::NoAtSubscribe) => false,
                Some(RetainHandling::AtSubscribeNew) => !existed,
                _ => true,
            },
        };
        // Nothing MQTT kept from the client (No Local, retain handling);
        // a retained message that is also stored goes out once, as retained.
        let Subscribed { offline, retained } = self
            .engine
            .on_session_subscribed(&ev)
            .await
            .output
            .to_deliver(&client_id, options);
        // And nothing the session already holds for the client goes again.
        let offline = self.tracker.skip_pending(&client_id, offline);
        if retained.is_empty() && offline.is_empty() {
            return;
        }
        let entry = s.scx.extends.shared().await.entry(s.id.clone());
        for (m, retain) in retained
            .iter()
            .map(|m| (m, true))
            .chain(offline.iter().map(|m| (m, false)))
        {
            let p = fetched(to_publish(m, retain, granted));
            if let Err((_, _, reason)) = entry.publish(From::from_custom(s.id.clone()), p).await {
                tracing::warn!(client = %client_id, message = %m.id, %reason, "could not deliver a stored message");
            }
        }
    }

    async fn unsubscribed(&self, s: &Session, unsub: &Unsubscribe) {
        let ev = SessionUnsubscribed {
            client: self.client_info(s),
            filter: unsub.topic_filter.to_string(),
        };
        // Failed rules were logged and counted by the engine: nothing to act on.
        let _ = self.engine.on_session_unsubscribed(&ev).await;
    }

    /// Runs `message.publish` and, for QoS 1/2, returns the message tagged
    /// with its stored id.
    async fn published(&self, from: &From, p: &Publish) -> Option<Publish> {
        let id = new_message_id();
        let msg = Message {
            id: id.clone(),
            sender: from.id.client_id.to_string(),
            username: from.id.username.as_ref().map(|u| u.to_string()),
            topic: p.topic.to_string(),
            qos: from_rmqtt_qos(p.qos),
            retain: p.retain,
            payload: p.payload.clone(),
            timestamp: p
                .create_time
                .map_or_else(Timestamp::now, Timestamp::from_millis),
        };
        // Failed rules were logged and counted by the engine: nothing to act on.
        let _ = self.engine.on_message_publish(&msg).await;
        (p.qos != RQoS::AtMostOnce).then(|| with_message_id(p.clone(), &id))
    }

    /// A live (not fetched, not retransmitted, not retained) stored
    /// message that the backend's fetch already gave this session: the
    /// subscribe race, where a message published just after the
    /// subscription was stored in time for the fetch to find it too.
    fn is_duplicate(&self, s: &Session, p: &Publish) -> bool {
        if p.dup || p.retain || has_property(p, FETCHED_PROPERTY) {
            return false;
        }
        message_id(p).is_some_and(|id| self.tracker.fetched_before(&s.id.client_id, &id))
    }

    /// Takes the id off a message about to be sent and remembers it by
    /// packet id; returns the message to send instead, if it changed.
    async fn delivered(&self, s: &Session, p: &Publish) -> Option<Publish> {
        let (untagged, id) = without_message_id(p)?;
        if let Some(packet_id) = p.packet_id {
            self.tracker
                .delivered(&s.id.client_id, packet_id.get(), &id);
        }
        if self.engine.has_rules(backend_core::Hook::MessageDelivered) {
            let ev = delivery(self.client_info(s), p, id);
            // Failed rules were logged and counted by the engine: nothing to act on.
            let _ = self.engine.on_message_delivered(&ev).await;
        }
        Some(untagged)
    }

    async fn acked(&self, s: &Session, p: &Publish) {
        let Some(packet_id) = p.packet_id else {
            return;
        };
        if let Some(id) = self.tracker.acked(&s.id.client_id, packet_id.get()) {
            let ev = delivery(self.client_info(s), p, id);
            // Failed rules were logged and counted by the engine: nothing to act on.
            let _ = self.engine.on_message_acked(&ev).await;
        }
    }
}

/// Whether a session ends when it disconnects (MQTT 3.1.1 clean session;
/// MQTT 5 session expiry 0, from CONNECT or DISCONNECT), as rmqtt decides.
async fn is_clean(s: &Session) -> bool {
    let disconnect = s.disconnect().await.ok().flatten();
    match s.connect_info().await.as_deref() {
        Ok(rmqtt::types::ConnectInfo::V3(_, c)) => c.clean_session,
        Ok(_) => s
            .fitter
            .session_expiry_interval(disconnect.as_ref())
            .is_zero(),
        Err(_) => true,
    }
}

/// Closes every client connection, as an administrator's kick, each
/// within rmqtt's own 5 s: what the broker does on shutdown once it has
/// stopped taking connections, so that no new hook starts while
/// [`Engine::flush`] drains the storage. Returns the clients closed.
pub async fn disconnect_all(scx: &ServerContext) -> usize {
    let shared = scx.extends.shared().await;
    let ids: Vec<Id> = shared.iter().map(|e| e.id()).collect();
    let n = ids.len();
    let mut kicks = tokio::task::JoinSet::new();
    for id in ids {
        let entry = shared.entry(id);
        kicks.spawn(async move {
            if let Ok(mut locked) = entry.try_lock().await {
                // A client that is already gone has nothing to close.
                let _ = locked.kick(false, false, true).await;
            }
        });
    }
    while kicks.join_next().await.is_some() {}
    n
}

/// Carries out a subscription change asked for from outside (the Redis
/// channel) on the client's session, if it is connected to this broker.
pub fn apply_command(scx: &ServerContext, cmd: SubscriptionCommand) {
    let id = |client_id: &str| {
        Id::new(
            scx.node.id(),
            0,
            None,
            None,
            ByteString::from(client_id),
            None,
        )
    };
    match cmd {
        SubscriptionCommand::Subscribe {
            client_id,
            filter,
            qos,
        } => subscribe(scx, &id(&client_id), &[Subscription::new(filter, qos)]),
        SubscriptionCommand::Unsubscribe { client_id, filter } => {
            unsubscribe(scx, &id(&client_id), &filter)
        }
    }
}

/// Subscribes a connected client to `subs` through its session, as if it
/// had sent SUBSCRIBE: the session hooks (and so the fetches) run.
pub fn subscribe(scx: &ServerContext, id: &Id, subs: &[Subscription]) {
    let mut list = Vec::with_capacity(subs.len());
    for sub in subs {
        let filter = ByteString::from(sub.filter.as_str());
        match Subscribe::from_v3(
            &filter,
            to_rmqtt_qos(sub.qos),
            shared_subscriptions(),
            false,
        ) {
            Ok(s) => list.push(s),
            Err(e) => {
                tracing::warn!(client = %id.client_id, filter = %sub.filter, error = %e, "skipping a stored subscription")
            }
        }
    }
    send_to_session(scx, id, SessionMessage::Subscribes(list, None));
}

/// Unsubscribes a connected client from `filter` through its session.
pub fn unsubscribe(scx: &ServerContext, id: &Id, filter: &str) {
    let filter = ByteString::from(filter);
    match Unsubscribe::from(&filter, shared_subscriptions(), false) {
        Ok(unsub) => {
            let (tx, _rx) = tokio::sync::oneshot::channel();
            send_to_session(scx, id, SessionMessage::Unsubscribe(unsub, tx));
        }
        Err(e) => {
            tracing::warn!(client = %id.client_id, %filter, error = %e, "bad filter to unsubscribe")
        }
    }
}

fn send_to_session(scx: &ServerContext, id: &Id, msg: SessionMessage) {
    let scx = scx.clone();
    let id = id.clone();
    // The shared registry is behind an async lock; the session does the rest.
    tokio::spawn(async move {
        let tx = scx.extends.shared().await.entry(id.clone()).tx();
        match tx {
            Some(tx) => {
                if tx.unbounded_send(msg).is_err() {
                    tracing::warn!(client = %id.client_id, "session closed before it could be told");
                }
            }
            None => tracing::info!(client = %id.client_id, "client is not connected here"),
        }
    });
}

fn shared_subscriptions() -> bool {
    false
}

fn delivery(client: ClientInfo, p: &Publish, message_id: String) -> MessageDelivery {
    MessageDelivery {
        client,
        message_id,
        topic: p.topic.to_string(),
        qos: from_rmqtt_qos(p.qos),
    }
}

fn from_rmqtt_qos(q: RQoS) -> QoS {
    match q {
        RQoS::AtMostOnce => QoS::AtMostOnce,
        RQoS::AtLeastOnce => QoS::AtLeastOnce,
        RQoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn to_rmqtt_qos(q: QoS) -> RQoS {
    match q {
        QoS::AtMostOnce => RQoS::AtMostOnce,
        QoS::AtLeastOnce => RQoS::AtLeastOnce,
        QoS::ExactlyOnce => RQoS::ExactlyOnce,
    }
}

/// A stored message as rmqtt delivers it, tagged with its id.
fn to_publish(m: &Message, retain: bool, granted: RQoS) -> Publish {
    let qos = to_rmqtt_qos(m.qos).less_value(granted);
    let inner = CodecPublish {
        dup: false,
        retain,
        qos,
        topic: ByteString::from(m.topic.as_str()),
        packet_id: None,
        payload: m.payload.clone(),
        properties: None,
    };
    let p = Publish {
        inner: Box::new(inner),
        target_clientid: None,
        delay_interval: None,
        create_time: Some(m.timestamp.as_millis()),
    };
    if qos == RQoS::AtMostOnce {
        p
    } else {
        with_message_id(p, &m.id)
    }
}

fn with_message_id(p: Publish, id: &str) -> Publish {
    with_property(p, MESSAGE_ID_PROPERTY, id)
}

fn with_property(mut p: Publish, key: &str, value: &str) -> Publish {
    let props = p.properties.get_or_insert_with(PublishProperties::default);
    props
        .user_properties
        .push((ByteString::from(key), ByteString::from(value)));
    p
}

/// Marks a message delivered from the backend's fetch.
fn fetched(p: Publish) -> Publish {
    if p.qos == RQoS::AtMostOnce {
        return p;
    }
    with_property(p, FETCHED_PROPERTY, "1")
}

fn has_property(p: &Publish, key: &str) -> bool {
    p.properties
        .as_ref()
        .is_some_and(|props| props.user_properties.iter().any(|(k, _)| k == key))
}

fn message_id(p: &Publish) -> Option<String> {
    p.properties
        .as_ref()?
        .user_properties
        .iter()
        .find(|(k, _)| k == MESSAGE_ID_PROPERTY)
        .map(|(_, v)| v.to_string())
}

/// The message without its id property (and without properties at all if
/// that was the only one), and the id.
fn without_message_id(p: &Publish) -> Option<(Publish, String)> {
    let id = message_id(p)?;
    let mut p = p.clone();
    if let Some(props) = p.properties.as_mut() {
        props
            .user_properties
            .retain(|(k, _)| k != MESSAGE_ID_PROPERTY && k != FETCHED_PROPERTY);
        if *props == PublishProperties::default() {
            p.properties = None;
        }
    }
    Some((p, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_property_round_trips_and_is_removed() {
        let m = Message::new("c", "t/1", QoS::AtLeastOnce, "x");
        let p = to_publish(&m, false, RQoS::ExactlyOnce);
        assert_eq!(message_id(&p).as_deref(), Some(m.id.as_str()));
        let (clean, id) = without_message_id(&p).expect("tagged");
        assert_eq!(id, m.id);
        assert!(
            clean.properties.is_none(),
            "a v3-style message gets no properties back"
        );
        let mut v5 = to_publish(&m, false, RQoS::AtLeastOnce);
        v5.properties
            .get_or_insert_with(Default::default)
            .content_type = Some("text/plain".into());
        let (clean, _) = without_message_id(&v5).expect("tagged");
        assert_eq!(
            clean.properties.as_ref().map(|p| p.content_type.clone()),
            Some(Some("text/plain".into()))
        );
        let q0 = to_publish(&m, false, RQoS::AtMostOnce);
        assert_eq!(q0.qos, RQoS::AtMostOnce, "granted QoS caps delivery");
        assert!(
            message_id(&q0).is_none(),
            "QoS 0 is never acked, so carries no id"
        );
    }
}
