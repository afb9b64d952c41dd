//! The glue between rmqtt's hooks and the storage [`Delivery`] adapter:
//! one hook handler that maps each rmqtt event to the adapter's typed
//! call and hands the stored messages it returns to the session. The
//! delivery logic (backlog paging, ids, subscription options, live copies)
//! is the adapter's; what is here maps rmqtt's types (`convert`) and
//! carries a stored message's id through rmqtt.
//!
//! A stored message's id travels with it through rmqtt as an MQTT v5 user
//! property, from `message.publish` (or the fetch) to the delivery, where
//! it is taken off again before the packet is sent.

use std::sync::Arc;

use async_trait::async_trait;
use backend_core::delivery::{
    Delivery, DeliveryConfig, LiveCopy, Outgoing, RetainHandling as Handling, SubscribeOptions,
};
use backend_core::{
    new_message_id, ClientConnected, ClientDisconnected, ClientInfo, Engine, Message,
    SessionSubscribed, SessionUnsubscribed, Subscription, Timestamp,
};
use rmqtt::codec::v5::RetainHandling;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::session::Session;
use rmqtt::types::{From, Publish, QoS as RQoS};

use crate::session::{await_takeover, session_id, subscribe};
use convert::*;

pub(crate) mod convert;

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
    let idle = Arc::downgrade(&hooks);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(IDLE_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(hooks) = idle.upgrade() else {
                return;
            };
            hooks.hand_over_idle().await;
        }
    });
    hooks
}

/// How often the sessions whose stored backlog stopped are looked at, and
/// how long one must have been quiet (see [`Delivery::idle_refill`]).
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
const IDLE_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

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
            Parameter::ClientConnect(info) => await_takeover(&h.scx, info.id()).await,
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
                let (scx, id) = (s.scx.clone(), s.id.clone());
                let late = move |subs: Vec<Subscription>| subscribe(&scx, &id, &subs);
                let subs = d.connected(&ev, late).await;
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
                LiveCopy::Fill => {
                    let more = d.fill(&s.id.client_id).await;
                    h.hand_over(s, more).await;
                    return (false, Some(HookResult::MessageExpiry));
                }
                LiveCopy::Resume => {
                    // In the session's own task, like every other hand-over,
                    // so the session takes stored messages in order.
                    h.resume(s).await;
                    return (false, Some(HookResult::MessageExpiry));
                }
            },
            Parameter::MessageDropped(Some(to), _, p, rmqtt::types::Reason::MessageQueueFull) => {
                if let Some(id) = message_id(p) {
                    d.dropped(&to.client_id, &id, has_property(p, FETCHED_PROPERTY));
                }
            }
            // A stored message the adapter handed over is tracked as such
            // (pending) wherever the session keeps it; only the session's
            // own copies are reported.
            Parameter::OfflineMessage(s, _, p) if !has_property(p, FETCHED_PROPERTY) => {
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
            client_id: str::to_owned(&s.id.client_id),
            username: s.id.username.as_deref().map(str::to_owned),
            node: self.node.clone(),
            peer_host: s.id.remote_addr.map(|a| a.to_string()),
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
            // `str::to_owned`: a ByteString's `to_string` goes through
            // `Display`, which costs more than the copy.
            sender: str::to_owned(&from.id.client_id),
            username: from.id.username.as_deref().map(str::to_owned),
            topic: str::to_owned(&p.topic),
            qos: from_rmqtt_qos(p.qos),
            retain: p.retain,
            payload: p.payload.clone(),
            timestamp: p
                .create_time
                .map_or_else(Timestamp::now, Timestamp::from_millis),
            properties: from_rmqtt_properties(p.properties.as_ref()),
        };
        self.delivery.published(msg).await;
        (p.qos != RQoS::AtMostOnce).then(|| with_message_id(p.clone(), &id))
    }

    /// What to do with a copy of a stored message about to be sent: one
    /// the adapter handed over (`Delivery::fetched_copy`), or a live copy
    /// or the session's own offline copy (`Delivery::live_copy`); a
    /// retransmission, or a retained message not handed over, is sent.
    fn live_copy(&self, s: &Session, p: &Publish) -> LiveCopy {
        if p.dup {
            return LiveCopy::Send;
        }
        if has_property(p, FETCHED_PROPERTY) {
            return match message_id(p) {
                Some(id) => self
                    .delivery
                    .fetched_copy(&s.id.client_id, &id, from_rmqtt_qos(p.qos)),
                None => LiveCopy::Send,
            };
        }
        if p.retain {
            return LiveCopy::Send;
        }
        match message_id(p) {
            Some(id) => self.delivery.live_copy(&s.id.client_id, &id, &p.topic),
            None => LiveCopy::Send,
        }
    }

    /// Hands each connected session whose backlog stopped with nothing in
    /// flight what the adapter has for it.
    async fn hand_over_idle(&self) {
        for (client_id, outgoing) in self.delivery.idle_refill(IDLE_QUIET).await {
            let id = session_id(&self.scx, &client_id);
            let session = self.scx.extends.shared().await.entry(id).session();
            match session {
                Some(s) => self.hand_over(&s, outgoing).await,
                None => {
                    for o in outgoing {
                        self.delivery.dropped(&client_id, &o.message.id, true);
                    }
                }
            }
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
