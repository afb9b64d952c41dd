//! The glue between rmqtt's hooks and the storage [`Delivery`] adapter:
//! one hook handler that maps each rmqtt event to the adapter's typed
//! call and hands the stored messages it returns to the session. The
//! delivery logic (backlog paging, ids, subscription options, live copies)
//! is the adapter's; what is here is rmqtt's types and two rmqtt specifics
//! (carrying a stored id through rmqtt, and quick reconnects).
//!
//! A stored message's id travels with it through rmqtt as an MQTT v5 user
//! property, from `message.publish` (or the fetch) to the delivery, where
//! it is taken off again before the packet is sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_core::delivery::{
    Delivery, DeliveryConfig, LiveCopy, Outgoing, RetainHandling as Handling, SubscribeOptions,
};
use backend_core::{
    new_message_id, ClientConnected, ClientDisconnected, ClientInfo, Engine, Message, Properties,
    QoS, SessionSubscribed, SessionUnsubscribed, Subscription, Timestamp,
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
const HOOKS: [Type; 13] = [
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
    Type::MessageDropped,
    Type::OfflineMessage,
    Type::MessageExpiryCheck,
];

/// Registers the storage hooks on rmqtt and starts them.
pub async fn install(
    scx: &ServerContext,
    engine: Arc<Engine>,
    node: String,
    config: DeliveryConfig,
) -> Arc<StorageHooks> {
    let hooks = Arc::new(StorageHooks {
        delivery: Delivery::new(engine, config),
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

/// rmqtt's retained-message store when storage keeps retained messages:
/// it keeps nothing itself (storage stores them on `message.publish` and
/// hands them out on subscribe, with MQTT 5's retain handling), but it
/// tells rmqtt that retained messages are available, so an MQTT 5 CONNACK
/// says Retain Available = 1 and clients keep the retain flag.
pub struct StorageRetain;

#[async_trait]
impl rmqtt::retain::RetainStorage for StorageRetain {
    fn enable(&self) -> bool {
        true
    }

    async fn set(
        &self,
        _topic: &rmqtt::types::TopicName,
        _retain: rmqtt::types::Retain,
        _expiry: Option<Duration>,
    ) -> rmqtt::Result<()> {
        Ok(())
    }

    async fn get(
        &self,
        _filter: &rmqtt::types::TopicFilter,
    ) -> rmqtt::Result<Vec<(rmqtt::types::TopicName, rmqtt::types::Retain)>> {
        Ok(Vec::new())
    }

    async fn count(&self) -> isize {
        0
    }

    async fn max(&self) -> isize {
        0
    }
}

/// Makes rmqtt advertise Retain Available when `engine` keeps retained
/// messages (an `on_message_retain` rule).
pub async fn advertise_retained(scx: &ServerContext, engine: &Engine) {
    if engine.keeps_retained() {
        *scx.extends.retain_mut().await = Box::new(StorageRetain);
    }
}

/// What rmqtt calls; one instance behind every hook type.
pub struct StorageHooks {
    delivery: Delivery,
    node: String,
    scx: ServerContext,
}

struct HookRef(Arc<StorageHooks>);

#[async_trait]
impl Handler for HookRef {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let h = &self.0;
        let d = &h.delivery;
        match param {
            Parameter::ClientConnect(info) => h.await_takeover(info.id()).await,
            Parameter::ClientSubscribe(s, sub) => {
                let existed = match s.subscriptions().await {
                    Ok(subs) => subs.read().await.contains_key(&sub.topic_filter),
                    Err(_) => false,
                };
                d.before_subscribe(&s.id.client_id, &sub.topic_filter, existed);
            }
            Parameter::ClientConnected(s) => {
                let ev = ClientConnected {
                    client: h.client_info(s),
                    timestamp: Timestamp::now(),
                };
                let subs = d.connected(&ev).await;
                if !subs.is_empty() {
                    subscribe(&s.scx, &s.id, &subs);
                }
            }
            Parameter::ClientDisconnected(s, reason) => {
                let ev = ClientDisconnected {
                    client: h.client_info(s),
                    reason: reason.to_string(),
                    timestamp: Timestamp::now(),
                };
                d.disconnected(ev).await;
            }
            Parameter::SessionSubscribed(s, sub) => {
                let ev = SessionSubscribed {
                    client: h.client_info(s),
                    filter: sub.topic_filter.to_string(),
                    qos: from_rmqtt_qos(sub.opts.qos()),
                };
                let options = SubscribeOptions {
                    no_local: sub.opts.no_local().unwrap_or(false),
                    retain_handling: match sub.opts.retain_handling() {
                        Some(RetainHandling::NoAtSubscribe) => Handling::DoNotSend,
                        Some(RetainHandling::AtSubscribeNew) => Handling::SendIfNew,
                        _ => Handling::Send,
                    },
                };
                h.hand_over(s, d.subscribed(&ev, options).await).await;
            }
            Parameter::SessionUnsubscribed(s, unsub) => {
                let ev = SessionUnsubscribed {
                    client: h.client_info(s),
                    filter: unsub.topic_filter.to_string(),
                };
                d.unsubscribed(&ev).await;
            }
            Parameter::SessionTerminated(s, _) => d.session_ended(&s.id.client_id),
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
                if let Some((untagged, id)) = without_message_id(p) {
                    let packet = p.packet_id.map(|n| n.get());
                    let qos = from_rmqtt_qos(p.qos);
                    d.delivered(&h.client_info(s), packet, &id, &p.topic, qos)
                        .await;
                    return (true, Some(HookResult::Publish(untagged)));
                }
            }
            Parameter::MessageAcked(s, _, p) => {
                if let Some(packet) = p.packet_id {
                    let qos = from_rmqtt_qos(p.qos);
                    let client = h.client_info(s);
                    let next = d.acked(&client, packet.get(), &p.topic, qos).await;
                    h.hand_over(s, next).await;
                }
            }
            // rmqtt drops a message whose expiry check fails.
            Parameter::MessageExpiryCheck(s, _, p) => match h.live_copy(s, p) {
                LiveCopy::Send => {}
                LiveCopy::HoldBack => return (false, Some(HookResult::MessageExpiry)),
                LiveCopy::Resume => {
                    let (hooks, s) = (Arc::clone(h), Session::clone(s));
                    tokio::spawn(async move { hooks.resume(&s).await });
                    return (false, Some(HookResult::MessageExpiry));
                }
            },
            Parameter::MessageDropped(Some(to), _, p, reason)
                if matches!(reason, rmqtt::types::Reason::MessageQueueFull) =>
            {
                if let Some(id) = message_id(p) {
                    d.dropped(&to.client_id, &id, has_property(p, FETCHED_PROPERTY));
                }
            }
            Parameter::OfflineMessage(s, _, p) => {
                if let Some(id) = message_id(p) {
                    d.queued_offline(&s.id.client_id, &id);
                }
            }
            _ => {}
        }
        (true, acc)
    }
}

impl StorageHooks {
    /// The delivery adapter, for inspection.
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
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

    /// Hands stored messages to the session, marked as fetched; one the
    /// session cannot take is handed again later.
    async fn hand_over(&self, s: &Session, outgoing: Vec<Outgoing>) {
        if outgoing.is_empty() {
            return;
        }
        let entry = s.scx.extends.shared().await.entry(s.id.clone());
        for o in outgoing {
            let p = fetched(to_publish(&o.message, o.retain, to_rmqtt_qos(o.qos)));
            if let Err((_, _, reason)) = entry.publish(From::from_custom(s.id.clone()), p).await {
                tracing::warn!(client = %s.id.client_id, message = %o.message.id, %reason, "could not hand a stored message to the session");
                self.delivery.dropped(&s.id.client_id, &o.message.id, true);
            }
        }
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
            properties: from_rmqtt_properties(p.properties.as_ref()),
        };
        self.delivery.published(&msg).await;
        (p.qos != RQoS::AtMostOnce).then(|| with_message_id(p.clone(), &id))
    }

    /// What to do with a copy of a stored message that the adapter did
    /// not hand over (a live copy, or the session's own offline copy); a
    /// retransmission or a retained message is always sent.
    fn live_copy(&self, s: &Session, p: &Publish) -> LiveCopy {
        if p.dup || p.retain || has_property(p, FETCHED_PROPERTY) {
            return LiveCopy::Send;
        }
        match message_id(p) {
            Some(id) => self.delivery.live_copy(&s.id.client_id, &id, &p.topic),
            None => LiveCopy::Send,
        }
    }

    /// A persistent session resumed: its subscriptions' stored backlogs
    /// are paged in as if it had subscribed again.
    async fn resume(&self, s: &Session) {
        let Ok(subs) = s.subscriptions().await else {
            return;
        };
        let subs: Vec<_> = subs
            .read()
            .await
            .iter()
            .map(|(filter, opts)| (filter.to_string(), opts.qos(), opts.no_local()))
            .collect();
        for (filter, qos, no_local) in subs {
            let ev = SessionSubscribed {
                client: self.client_info(s),
                filter,
                qos: from_rmqtt_qos(qos),
            };
            let options = SubscribeOptions {
                no_local: no_local.unwrap_or(false),
                retain_handling: Handling::DoNotSend,
            };
            let next = self.delivery.resume(&ev, options).await;
            self.hand_over(s, next).await;
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
///
/// Its MQTT 5 properties go with it, the message expiry already counted
/// down by the adapter (so rmqtt counts from now).
fn to_publish(m: &Message, retain: bool, granted: RQoS) -> Publish {
    let qos = to_rmqtt_qos(m.qos).less_value(granted);
    let inner = CodecPublish {
        dup: false,
        retain,
        qos,
        topic: ByteString::from(m.topic.as_str()),
        packet_id: None,
        payload: m.payload.clone(),
        properties: to_rmqtt_properties(&m.properties),
    };
    let p = Publish {
        inner: Box::new(inner),
        target_clientid: None,
        delay_interval: None,
        create_time: Some(Timestamp::now().as_millis()),
    };
    if qos == RQoS::AtMostOnce {
        p
    } else {
        with_message_id(p, &m.id)
    }
}

/// The MQTT 5 properties storage keeps, from rmqtt's (without the ones
/// this glue adds, and without the connection's topic alias and
/// subscription ids).
fn from_rmqtt_properties(p: Option<&PublishProperties>) -> Properties {
    let Some(p) = p else {
        return Properties::default();
    };
    Properties {
        payload_format_indicator: p.is_utf8_payload.then_some(1),
        message_expiry_interval: p.message_expiry_interval.map(|n| n.get()),
        content_type: p.content_type.as_ref().map(|s| s.to_string()),
        response_topic: p.response_topic.as_ref().map(|s| s.to_string()),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .filter(|(k, _)| k != MESSAGE_ID_PROPERTY && k != FETCHED_PROPERTY)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn to_rmqtt_properties(p: &Properties) -> Option<PublishProperties> {
    if p.is_empty() {
        return None;
    }
    Some(PublishProperties {
        is_utf8_payload: p.payload_format_indicator == Some(1),
        message_expiry_interval: p
            .message_expiry_interval
            .and_then(std::num::NonZeroU32::new),
        content_type: p.content_type.as_deref().map(ByteString::from),
        response_topic: p.response_topic.as_deref().map(ByteString::from),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .map(|(k, v)| (ByteString::from(k.as_str()), ByteString::from(v.as_str())))
            .collect(),
        ..PublishProperties::default()
    })
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
