//! The broker hooks the backends act on, and the typed event of each.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::message::{Message, QoS, Timestamp};

/// One of the seven broker hooks of EMQX's storage backends.
///
/// ```
/// use backend_core::Hook;
/// let h: Hook = "message.publish".parse().unwrap();
/// assert_eq!(h, Hook::MessagePublish);
/// assert_eq!(h.to_string(), "message.publish");
/// assert!("message.published".parse::<Hook>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Hook {
    /// A client finished connecting.
    ClientConnected,
    /// A client disconnected.
    ClientDisconnected,
    /// A session subscribed to a filter.
    SessionSubscribed,
    /// A session unsubscribed from a filter.
    SessionUnsubscribed,
    /// A message was published.
    MessagePublish,
    /// A subscriber acknowledged a QoS 1/2 message.
    MessageAcked,
    /// A message was delivered to a subscriber.
    MessageDelivered,
}

impl Hook {
    /// Every hook, in the order [`crate::Config::rules`] sorts them.
    pub const ALL: [Hook; 7] = [
        Hook::ClientConnected,
        Hook::ClientDisconnected,
        Hook::SessionSubscribed,
        Hook::SessionUnsubscribed,
        Hook::MessagePublish,
        Hook::MessageAcked,
        Hook::MessageDelivered,
    ];

    /// The dotted name, as written in config keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Hook::ClientConnected => "client.connected",
            Hook::ClientDisconnected => "client.disconnected",
            Hook::SessionSubscribed => "session.subscribed",
            Hook::SessionUnsubscribed => "session.unsubscribed",
            Hook::MessagePublish => "message.publish",
            Hook::MessageAcked => "message.acked",
            Hook::MessageDelivered => "message.delivered",
        }
    }

    /// Position in [`Hook::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether a rule's `topic` filter is matched against a subscribed filter
    /// (session hooks) rather than a message topic (message hooks); client
    /// hooks have no topic.
    pub const fn topic_source(self) -> TopicSource {
        match self {
            Hook::ClientConnected | Hook::ClientDisconnected => TopicSource::None,
            Hook::SessionSubscribed | Hook::SessionUnsubscribed => TopicSource::Filter,
            _ => TopicSource::MessageTopic,
        }
    }
}

/// What a rule's `topic` is matched against for a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicSource {
    /// Client hooks: there is no topic; every rule applies.
    None,
    /// Session hooks: the subscribed filter, taken as a name.
    Filter,
    /// Message hooks: the message's topic.
    MessageTopic,
}

/// A hook name that is not one of the seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hook `{0}`; the hooks are client.connected, client.disconnected, session.subscribed, session.unsubscribed, message.publish, message.acked, message.delivered")]
pub struct UnknownHook(pub String);

impl FromStr for Hook {
    type Err = UnknownHook;
    fn from_str(s: &str) -> Result<Self, UnknownHook> {
        Hook::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| UnknownHook(s.to_owned()))
    }
}

impl TryFrom<String> for Hook {
    type Error = UnknownHook;
    fn try_from(s: String) -> Result<Self, UnknownHook> {
        s.parse()
    }
}

impl From<Hook> for String {
    fn from(h: Hook) -> String {
        h.as_str().to_owned()
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a client is. Every event about a client carries one as `client`
/// (connected, disconnected, subscribed, unsubscribed, acked, delivered),
/// so `${clientid}`, `${username}`, `${node}` and `${peerhost}` mean the
/// same in each of their templates. A broker that does not know the node
/// leaves it empty, and `${node}` is then NULL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientInfo {
    /// The MQTT client id.
    pub client_id: String,
    /// The username it logged in with, if any.
    pub username: Option<String>,
    /// The broker node it is connected to (e.g. `emqx@127.0.0.1`).
    pub node: String,
    /// The peer's address, if known (e.g. `127.0.0.1:50322`).
    pub peer_host: Option<String>,
}

impl ClientInfo {
    /// A client with this id on `node`, no username or peer address.
    pub fn new(client_id: impl Into<String>, node: impl Into<String>) -> Self {
        ClientInfo {
            client_id: client_id.into(),
            node: node.into(),
            ..ClientInfo::default()
        }
    }
}

/// `client.connected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConnected {
    /// The client.
    pub client: ClientInfo,
    /// When it connected.
    pub timestamp: Timestamp,
}

/// `client.disconnected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDisconnected {
    /// The client.
    pub client: ClientInfo,
    /// Why (e.g. `normal`, `keepalive_timeout`).
    pub reason: String,
    /// When it disconnected.
    pub timestamp: Timestamp,
}

/// `session.subscribed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSubscribed {
    /// The subscribing client.
    pub client: ClientInfo,
    /// The filter subscribed to, as the client sent it (`$share/...` included).
    pub filter: String,
    /// The granted QoS.
    pub qos: QoS,
}

/// `session.unsubscribed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUnsubscribed {
    /// The client.
    pub client: ClientInfo,
    /// The filter unsubscribed from.
    pub filter: String,
}

/// `message.acked` and `message.delivered`: a message and the client it
/// went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageDelivery {
    /// The client that received (or acknowledged) the message.
    pub client: ClientInfo,
    /// The message id, as stored by the backend.
    pub message_id: String,
    /// The message's topic.
    pub topic: String,
    /// The QoS of the delivery.
    pub qos: QoS,
}

impl MessageDelivery {
    /// The delivery of `message` to `client_id` (no username; node
    /// unknown).
    pub fn of(message: &Message, client_id: impl Into<String>) -> Self {
        MessageDelivery {
            client: ClientInfo::new(client_id, ""),
            message_id: message.id.clone(),
            topic: message.topic.clone(),
            qos: message.qos,
        }
    }
}

/// Any hook's event, borrowed: what templates take their variables from.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// `client.connected`
    Connected(&'a ClientConnected),
    /// `client.disconnected`
    Disconnected(&'a ClientDisconnected),
    /// `session.subscribed`
    Subscribed(&'a SessionSubscribed),
    /// `session.unsubscribed`
    Unsubscribed(&'a SessionUnsubscribed),
    /// `message.publish`
    Publish(&'a Message),
    /// `message.acked`
    Acked(&'a MessageDelivery),
    /// `message.delivered`
    Delivered(&'a MessageDelivery),
}

impl Event<'_> {
    /// The hook this event belongs to.
    pub fn hook(&self) -> Hook {
        match self {
            Event::Connected(_) => Hook::ClientConnected,
            Event::Disconnected(_) => Hook::ClientDisconnected,
            Event::Subscribed(_) => Hook::SessionSubscribed,
            Event::Unsubscribed(_) => Hook::SessionUnsubscribed,
            Event::Publish(_) => Hook::MessagePublish,
            Event::Acked(_) => Hook::MessageAcked,
            Event::Delivered(_) => Hook::MessageDelivered,
        }
    }

    /// The client the event is about; `None` for `publish`, whose message
    /// names its sender (and username) itself.
    pub fn client(&self) -> Option<&ClientInfo> {
        match self {
            Event::Connected(c) => Some(&c.client),
            Event::Disconnected(c) => Some(&c.client),
            Event::Subscribed(s) => Some(&s.client),
            Event::Unsubscribed(u) => Some(&u.client),
            Event::Publish(_) => None,
            Event::Acked(d) | Event::Delivered(d) => Some(&d.client),
        }
    }

    /// The client the event is about (a message's sender for `publish`).
    pub fn client_id(&self) -> &str {
        match (self, self.client()) {
            (Event::Publish(m), _) => &m.sender,
            (_, Some(c)) => &c.client_id,
            (_, None) => "",
        }
    }

    /// The topic a rule's filter is matched against, if the hook has one.
    pub fn topic(&self) -> Option<&str> {
        match self {
            Event::Connected(_) | Event::Disconnected(_) => None,
            Event::Subscribed(s) => Some(crate::topic::strip_shared(&s.filter)),
            Event::Unsubscribed(u) => Some(crate::topic::strip_shared(&u.filter)),
            Event::Publish(m) => Some(&m.topic),
            Event::Acked(d) | Event::Delivered(d) => Some(&d.topic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for h in Hook::ALL {
            assert_eq!(h.as_str().parse::<Hook>(), Ok(h));
            assert_eq!(Hook::ALL[h.index()], h);
            let json = serde_json::to_string(&h).unwrap();
            assert_eq!(serde_json::from_str::<Hook>(&json).unwrap(), h);
        }
        assert!("client".parse::<Hook>().is_err());
        assert!("".parse::<Hook>().is_err());
    }

    #[test]
    fn event_topics() {
        let s = SessionSubscribed {
            client: ClientInfo::new("c", "n"),
            filter: "$share/g/a/+".into(),
            qos: QoS::AtLeastOnce,
        };
        assert_eq!(Event::Subscribed(&s).topic(), Some("a/+"));
        assert_eq!(Event::Subscribed(&s).client_id(), "c");
        assert_eq!(Event::Subscribed(&s).hook(), Hook::SessionSubscribed);
        let c = ClientConnected {
            client: ClientInfo::new("c", "n"),
            timestamp: Timestamp::now(),
        };
        assert_eq!(Event::Connected(&c).topic(), None);
        assert_eq!(
            Hook::SessionUnsubscribed.topic_source(),
            TopicSource::Filter
        );
    }
}
