//! rmqtt's side of the example broker, apart from storage: quick
//! reconnects, shutdown, subscription commands from a backend's channel,
//! and Retain Available.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use backend_core::{Engine, Subscription};
use bytestring::ByteString;
use rmqtt::context::ServerContext;
use rmqtt::session::Session;
use rmqtt::types::{Id, Message as SessionMessage, Subscribe, Unsubscribe};

use crate::backends::SubscriptionCommand;
use crate::glue::convert::to_rmqtt_qos;

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
pub async fn await_takeover(scx: &ServerContext, id: &Id) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(3);
    let grace = start + Duration::from_millis(100);
    let mut waited = false;
    loop {
        let old = scx.extends.shared().await.entry(id.clone()).session();
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
    let id = |client_id: &str| session_id(scx, client_id);
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

/// The id rmqtt's registry finds `client_id`'s session by on this node.
pub fn session_id(scx: &ServerContext, client_id: &str) -> Id {
    Id::new(
        scx.node.id(),
        0,
        None,
        None,
        ByteString::from(client_id),
        None,
    )
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
