//! The SUB/UNSUB channel: a business server publishes JSON commands to a
//! Redis channel, and the broker subscribes or unsubscribes clients
//! accordingly.
//!
//! ```text
//! PUBLISH "mqtt_channel" "{\"type\": \"subscribe\", \"topic\": \"topic0\", \"clientid\": \"test\", \"qos\": \"0\"}"
//! PUBLISH "mqtt_channel" "{\"type\": \"unsubscribe\", \"topic\": \"test_topic0\", \"clientid\": \"test\"}"
//! ```
//!
//! [`ChannelListener`] (from [`crate::RedisBackend::listen`]) holds a
//! subscription on its own connection and turns each message into a
//! [`ChannelCommand`]. A malformed message is logged and counted, never
//! fatal. When the connection breaks (or stops answering pings) the listener
//! reconnects with exponential backoff, through Sentinel to the current
//! master when configured; messages published while it is disconnected are
//! lost (Redis pub/sub keeps nothing). Dropping the listener stops it.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use backend_core::topic::validate_filter;
use backend_core::QoS;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::conn::Connections;
use crate::error::RedisError;

/// A command received on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelCommand {
    /// Subscribe `client_id` to `topic` with `qos`.
    Subscribe {
        /// The client.
        client_id: String,
        /// The topic filter.
        topic: String,
        /// The QoS (0 when the message gives none).
        qos: QoS,
    },
    /// Unsubscribe `client_id` from `topic`.
    Unsubscribe {
        /// The client.
        client_id: String,
        /// The topic filter.
        topic: String,
    },
}

/// Why a channel message is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed channel message: {0}")]
pub struct MalformedMessage(String);

impl ChannelCommand {
    /// Parses one channel message: a JSON object with `type`
    /// (`subscribe`/`unsubscribe`), `topic` (a valid filter) and `clientid`
    /// (non-empty strings), and for `subscribe` an optional `qos`: 0, 1 or
    /// 2 as a number or a numeric string (the seed's example sends `"0"`);
    /// absent means 0. Other fields are ignored.
    ///
    /// ```
    /// use backend_redis::ChannelCommand;
    /// use backend_core::QoS;
    /// let c = ChannelCommand::parse(br#"{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": "0"}"#)?;
    /// assert_eq!(c, ChannelCommand::Subscribe { client_id: "test".into(), topic: "topic0".into(), qos: QoS::AtMostOnce });
    /// assert!(ChannelCommand::parse(b"{not json").is_err());
    /// # Ok::<(), backend_redis::channel::MalformedMessage>(())
    /// ```
    pub fn parse(payload: &[u8]) -> Result<ChannelCommand, MalformedMessage> {
        let bad = |m: String| MalformedMessage(m);
        let v: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| bad(format!("not JSON ({e})")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let text = |field: &str| -> Result<String, MalformedMessage> {
            match obj.get(field) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(serde_json::Value::String(_)) => Err(bad(format!("`{field}` is empty"))),
                Some(_) => Err(bad(format!("`{field}` is not a string"))),
                None => Err(bad(format!("`{field}` is missing"))),
            }
        };
        let kind = text("type")?;
        let topic = text("topic")?;
        let client_id = text("clientid")?;
        validate_filter(&topic).map_err(|e| bad(format!("`topic` `{topic}`: {e}")))?;
        match kind.to_ascii_lowercase().as_str() {
            "subscribe" => {
                let qos = match obj.get("qos") {
                    None | Some(serde_json::Value::Null) => QoS::AtMostOnce,
                    Some(q) => {
                        let n = match q {
                            serde_json::Value::Number(n) => n.as_i64(),
                            serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
                            _ => None,
                        };
                        n.and_then(|n| QoS::try_from(n).ok())
                            .ok_or_else(|| bad(format!("`qos` {q} is not 0, 1 or 2")))?
                    }
                };
                Ok(ChannelCommand::Subscribe {
                    client_id,
                    topic,
                    qos,
                })
            }
            "unsubscribe" => Ok(ChannelCommand::Unsubscribe { client_id, topic }),
            other => Err(bad(format!(
                "`type` is `{other}`, not subscribe or unsubscribe"
            ))),
        }
    }

    /// The client the command is for.
    pub fn client_id(&self) -> &str {
        match self {
            ChannelCommand::Subscribe { client_id, .. }
            | ChannelCommand::Unsubscribe { client_id, .. } => client_id,
        }
    }
}

/// Counters of a [`ChannelListener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelStats {
    /// Messages received on the channel.
    pub received: u64,
    /// Of those, commands handed to the broker.
    pub commands: u64,
    /// Of those, malformed messages (logged and dropped).
    pub malformed: u64,
    /// Successful subscriptions to the channel: 1, plus one per reconnect.
    pub connections: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    commands: AtomicU64,
    malformed: AtomicU64,
    connections: AtomicU64,
}

/// How a listener paces itself.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    /// First wait before reconnecting; doubles up to `max_backoff`.
    min_backoff: Duration,
    max_backoff: Duration,
    /// How often an idle subscription is pinged (and, with Sentinel, the
    /// master looked up), and how long that may take.
    check_every: Duration,
    check_timeout: Duration,
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How many commands wait for the broker before the listener stops reading
/// (Redis then buffers, up to its pub/sub output limit).
const QUEUE: usize = 1024;

/// Listens to a channel and hands the broker [`ChannelCommand`]s, through
/// [`ChannelListener::recv`] or as a [`futures::Stream`]. Stops when dropped.
///
/// ```no_run
/// # async fn run(backend: backend_redis::RedisBackend) -> Result<(), backend_redis::RedisError> {
/// use backend_redis::ChannelCommand;
/// let mut listener = backend.listen()?;
/// while let Some(cmd) = listener.recv().await {
///     match cmd {
///         ChannelCommand::Subscribe { client_id, topic, qos } => { /* subscribe the session */ }
///         ChannelCommand::Unsubscribe { client_id, topic } => { /* unsubscribe it */ }
///     }
/// }
/// # Ok(()) }
/// ```
pub struct ChannelListener {
    channel: String,
    rx: mpsc::Receiver<ChannelCommand>,
    counters: Arc<Counters>,
    subscribed: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ChannelListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelListener")
            .field("channel", &self.channel)
            .field("subscribed", &*self.subscribed.borrow())
            .field("stats", &self.stats())
            .finish()
    }
}

impl ChannelListener {
    pub(crate) fn spawn(conns: Arc<Connections>, channel: String) -> Result<Self, RedisError> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| RedisError::Unsupported {
                pool: conns.settings.pool.clone(),
                message: "a channel listener must be started inside a tokio runtime".into(),
            })?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (sub_tx, subscribed) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let pacing = Pacing {
            min_backoff: MIN_BACKOFF,
            max_backoff: MAX_BACKOFF,
            check_every: conns.settings.check_interval,
            check_timeout: conns.settings.connection_timeout,
        };
        let task = handle.spawn(listen(
            conns,
            channel.clone(),
            tx,
            sub_tx,
            Arc::clone(&counters),
            pacing,
        ));
        Ok(ChannelListener {
            channel,
            rx,
            counters,
            subscribed,
            task,
        })
    }

    /// The channel listened to.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The next command; `None` once the listener has stopped.
    pub async fn recv(&mut self) -> Option<ChannelCommand> {
        self.rx.recv().await
    }

    /// A command if one is waiting.
    pub fn try_recv(&mut self) -> Option<ChannelCommand> {
        self.rx.try_recv().ok()
    }

    /// The counters so far.
    pub fn stats(&self) -> ChannelStats {
        let c = &self.counters;
        ChannelStats {
            received: c.received.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
        }
    }

    /// Whether the channel subscription is currently up.
    pub fn is_subscribed(&self) -> bool {
        *self.subscribed.borrow()
    }

    /// Waits until the channel subscription is up (messages published from
    /// then on are received), at most `timeout`; returns whether it is.
    pub async fn wait_subscribed(&self, timeout: Duration) -> bool {
        let mut rx = self.subscribed.clone();
        tokio::time::timeout(timeout, rx.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops listening (as dropping does).
    pub fn stop(self) {}
}

impl Drop for ChannelListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl futures::Stream for ChannelListener {
    type Item = ChannelCommand;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ChannelCommand>> {
        self.rx.poll_recv(cx)
    }
}

fn preview(payload: &[u8]) -> String {
    const MAX: usize = 200;
    let cut = &payload[..payload.len().min(MAX)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if payload.len() > MAX {
        s.push('…');
    }
    s
}

/// The listener task: subscribe, forward, reconnect; ends when the
/// receiver is dropped (or the task is aborted).
async fn listen(
    conns: Arc<Connections>,
    channel: String,
    tx: mpsc::Sender<ChannelCommand>,
    subscribed: watch::Sender<bool>,
    counters: Arc<Counters>,
    pacing: Pacing,
) {
    let pool = conns.settings.pool.clone();
    let mut backoff = pacing.min_backoff;
    let mut master_changes = conns.master_changes.subscribe();
    loop {
        master_changes.mark_unchanged();
        let connect = async {
            let client = conns.connector.client().await?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let attempt = tokio::select! {
            r = tokio::time::timeout(conns.settings.connection_timeout, connect) => r,
            _ = tx.closed() => return,
        };
        let pubsub = match attempt {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                warn!(pool = %pool, channel = %channel, error = %e, retry_in = ?backoff, "redis channel: cannot subscribe");
                if sleep_or_closed(&tx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(pacing.max_backoff);
                continue;
            }
            Err(_) => {
                warn!(pool = %pool, channel = %channel, retry_in = ?backoff, "redis channel: subscribing timed out");
                if sleep_or_closed(&tx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(pacing.max_backoff);
                continue;
            }
        };
        let n = counters.connections.fetch_add(1, Ordering::Relaxed) + 1;
        if n > 1 {
            info!(pool = %pool, channel = %channel, "redis channel: subscribed again");
        } else {
            debug!(pool = %pool, channel = %channel, "redis channel: subscribed");
        }
        backoff = pacing.min_backoff;
        subscribed.send_replace(true);
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(pacing.check_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        warn!(pool = %pool, channel = %channel, "redis channel: connection lost; reconnecting");
                        break;
                    };
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    let payload = msg.get_payload_bytes();
                    match ChannelCommand::parse(payload) {
                        Ok(cmd) => {
                            debug!(pool = %pool, channel = %channel, command = ?cmd, "redis channel: command");
                            counters.commands.fetch_add(1, Ordering::Relaxed);
                            if tx.send(cmd).await.is_err() {
                                subscribed.send_replace(false);
                                return;
                            }
                        }
                        Err(e) => {
                            counters.malformed.fetch_add(1, Ordering::Relaxed);
                            warn!(pool = %pool, channel = %channel, error = %e, message = %preview(payload), "redis channel: dropping a malformed message");
                        }
                    }
                }
                _ = ping.tick() => {
                    match tokio::time::timeout(pacing.check_timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            warn!(pool = %pool, channel = %channel, error = %e, "redis channel: ping failed; reconnecting");
                            break;
                        }
                        Err(_) => {
                            warn!(pool = %pool, channel = %channel, "redis channel: ping timed out; reconnecting");
                            break;
                        }
                    }
                }
                _ = master_changes.changed() => {
                    info!(pool = %pool, channel = %channel, "redis channel: the Sentinel master moved; resubscribing there");
                    backoff = Duration::ZERO;
                    break;
                }
                _ = tx.closed() => {
                    subscribed.send_replace(false);
                    return;
                }
            }
        }
        subscribed.send_replace(false);
        if sleep_or_closed(&tx, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(pacing.max_backoff);
    }
}

/// Sleeps; returns true if the receiver went away meanwhile.
async fn sleep_or_closed(tx: &mpsc::Sender<ChannelCommand>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = tx.closed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ChannelCommand, MalformedMessage> {
        ChannelCommand::parse(s.as_bytes())
    }

    #[test]
    fn seed_examples() {
        assert_eq!(
            parse(r#"{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": "0"}"#),
            Ok(ChannelCommand::Subscribe {
                client_id: "test".into(),
                topic: "topic0".into(),
                qos: QoS::AtMostOnce
            })
        );
        assert_eq!(
            parse(r#"{"type": "unsubscribe", "topic": "test_topic0", "clientid": "test"}"#),
            Ok(ChannelCommand::Unsubscribe {
                client_id: "test".into(),
                topic: "test_topic0".into()
            })
        );
    }

    #[test]
    fn qos_forms() {
        let q = |v: &str| {
            parse(&format!(
                r#"{{"type":"subscribe","topic":"a/+","clientid":"c","qos":{v}}}"#
            ))
        };
        assert!(matches!(
            q("2"),
            Ok(ChannelCommand::Subscribe {
                qos: QoS::ExactlyOnce,
                ..
            })
        ));
        assert!(matches!(
            q("\" 1 \""),
            Ok(ChannelCommand::Subscribe {
                qos: QoS::AtLeastOnce,
                ..
            })
        ));
        assert!(matches!(
            q("null"),
            Ok(ChannelCommand::Subscribe {
                qos: QoS::AtMostOnce,
                ..
            })
        ));
        for bad in ["3", "-1", "1.5", "\"one\"", "true", "[1]"] {
            assert!(q(bad).is_err(), "qos {bad}");
        }
    }

    #[test]
    fn malformed() {
        for m in [
            "",
            "{",
            "[]",
            "\"subscribe\"",
            r#"{"topic":"t","clientid":"c"}"#,
            r#"{"type":"publish","topic":"t","clientid":"c"}"#,
            r#"{"type":"subscribe","clientid":"c"}"#,
            r#"{"type":"subscribe","topic":"","clientid":"c"}"#,
            r#"{"type":"subscribe","topic":"a/#/b","clientid":"c"}"#,
            r#"{"type":"subscribe","topic":"t","clientid":7}"#,
            r#"{"type":"subscribe","topic":"t"}"#,
        ] {
            assert!(parse(m).is_err(), "{m:?} should be malformed");
        }
        assert_eq!(preview(&[b'x'; 300]).chars().count(), 201);
    }
}
