//! Delivering stored messages through a broker's sessions exactly once:
//! [`Delivery`], the adapter a broker's hooks call, and the
//! [`DeliveryTracker`] it keeps.
//!
//! [`Delivery`] owns the bookkeeping every broker needs: it pages a
//! stored backlog into a session as the client acknowledges (never more
//! than [`DeliveryConfig::window`] unacknowledged at once, so a backlog of
//! any size arrives whole), applies MQTT's subscription options to what
//! storage returns, maps acks back to stored ids, hands again what a
//! session dropped, and tells the broker which live copies to hold back.
//!
//! A broker has two paths to a subscriber: its own session (live routing,
//! and a queue for persistent sessions while offline) and the backend's
//! offline messages, fetched on `session.subscribed`. A client that
//! reconnects to a persistent session and subscribes again would get the
//! messages of both. The tracker remembers, per client, the stored messages
//! already handed to the broker's session and not yet acknowledged, so the
//! fetch can skip them; and it maps the MQTT packet id of a delivery back to
//! the stored message id, which `message.acked` needs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use crate::message::Message;

mod adapter;
mod late;

pub use adapter::{Delivery, DeliveryConfig, LiveCopy, Outgoing, RetainHandling, SubscribeOptions};

/// Per-client record of stored messages in flight to the broker's sessions.
///
/// ```
/// use backend_core::{delivery::DeliveryTracker, Message, QoS};
/// let t = DeliveryTracker::new();
/// let m = Message::new("pub", "a", QoS::AtLeastOnce, "x");
/// t.handed_over("sub", &m.id);              // the broker queued it for `sub`
/// assert!(t.skip_pending("sub", vec![m.clone()]).is_empty());
/// t.delivered("sub", 7, &m.id);             // sent as packet 7
/// assert_eq!(t.acked("sub", 7), Some(m.id.clone()));
/// assert_eq!(t.skip_pending("sub", vec![m.clone()]).len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct DeliveryTracker {
    clients: Mutex<HashMap<String, Client>>,
}

#[derive(Debug, Default)]
struct Client {
    /// Stored message ids handed to the session and not yet acknowledged.
    pending: HashSet<String>,
    /// Packet id of an unacknowledged delivery -> stored message id.
    packets: HashMap<u16, String>,
    /// Ids the backend's fetch handed to this session, newest last (at
    /// most [`FETCHED_KEPT`]): a live copy of one of them arriving later
    /// is a duplicate.
    fetched: HashSet<String>,
    fetched_order: VecDeque<String>,
}

/// How many fetched ids a session remembers.
pub const FETCHED_KEPT: usize = 4096;

impl Client {
    fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.packets.is_empty() && self.fetched.is_empty()
    }

    fn remember_fetched(&mut self, id: &str) {
        if self.fetched.insert(id.to_owned()) {
            self.fetched_order.push_back(id.to_owned());
            if self.fetched_order.len() > FETCHED_KEPT {
                if let Some(old) = self.fetched_order.pop_front() {
                    self.fetched.remove(&old);
                }
            }
        }
    }
}

impl DeliveryTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Client>> {
        // Every operation leaves the maps consistent, so a poisoned lock
        // (a panic elsewhere while holding it) is still safe to use.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker's session took `message_id` for `client` (queued while
    /// offline, or about to be sent).
    pub fn handed_over(&self, client: &str, message_id: &str) {
        self.lock()
            .entry(client.to_owned())
            .or_default()
            .pending
            .insert(message_id.to_owned());
    }

    /// `message_id` was sent to `client` as MQTT packet `packet_id`.
    pub fn delivered(&self, client: &str, packet_id: u16, message_id: &str) {
        let mut clients = self.lock();
        let c = clients.entry(client.to_owned()).or_default();
        c.pending.insert(message_id.to_owned());
        c.packets.insert(packet_id, message_id.to_owned());
    }

    /// `client` acknowledged packet `packet_id`: returns the stored message
    /// id it carried, and forgets it.
    pub fn acked(&self, client: &str, packet_id: u16) -> Option<String> {
        let id = self.take_packet(client, packet_id)?;
        self.settle(client, &id);
        Some(id)
    }

    /// The first half of [`DeliveryTracker::acked`]: the stored id packet
    /// `packet_id` carried, which stays pending (a fetch keeps skipping
    /// it) until [`DeliveryTracker::settle`], once the ack is on its way
    /// to the backend.
    pub fn take_packet(&self, client: &str, packet_id: u16) -> Option<String> {
        self.lock().get_mut(client)?.packets.remove(&packet_id)
    }

    /// `message_id` is no longer pending for `client`: its ack reached the
    /// backend's write path, or the session dropped it.
    pub fn settle(&self, client: &str, message_id: &str) {
        let mut clients = self.lock();
        if let Some(c) = clients.get_mut(client) {
            c.pending.remove(message_id);
            if c.is_empty() {
                clients.remove(client);
            }
        }
    }

    /// How many stored messages `client`'s session holds unacknowledged.
    pub fn pending(&self, client: &str) -> usize {
        self.lock().get(client).map_or(0, |c| c.pending.len())
    }

    /// Whether `message_id` is pending for `client`.
    pub fn is_pending(&self, client: &str, message_id: &str) -> bool {
        self.lock()
            .get(client)
            .is_some_and(|c| c.pending.contains(message_id))
    }

    /// `message_id` handed to `client`'s session by a fetch: pending, and
    /// remembered as fetched (see [`DeliveryTracker::fetched_before`]).
    pub fn hand_over_fetched(&self, client: &str, message_id: &str) {
        let mut clients = self.lock();
        let c = clients.entry(client.to_owned()).or_default();
        c.pending.insert(message_id.to_owned());
        c.remember_fetched(message_id);
    }

    /// `message_id` handed to `client`'s session by a fetch at QoS 0: not
    /// pending (no ack comes), but remembered as fetched.
    pub fn remember_fetched(&self, client: &str, message_id: &str) {
        self.lock()
            .entry(client.to_owned())
            .or_default()
            .remember_fetched(message_id);
    }

    /// `messages` without those pending for `client`; nothing is recorded.
    pub fn without_pending(&self, client: &str, mut messages: Vec<Message>) -> Vec<Message> {
        if let Some(c) = self.lock().get(client) {
            messages.retain(|m| !c.pending.contains(&m.id));
        }
        messages
    }

    /// Drops the messages already pending for `client` from a fetch result
    /// and records the rest as handed over, and as fetched (see
    /// [`DeliveryTracker::fetched_before`]).
    pub fn skip_pending(&self, client: &str, messages: Vec<Message>) -> Vec<Message> {
        if messages.is_empty() {
            return messages;
        }
        let mut clients = self.lock();
        let c = clients.entry(client.to_owned()).or_default();
        let kept: Vec<Message> = messages
            .into_iter()
            .filter(|m| c.pending.insert(m.id.clone()))
            .collect();
        for m in &kept {
            c.remember_fetched(&m.id);
        }
        kept
    }

    /// Whether the backend's fetch already handed `message_id` to
    /// `client`'s session: a live copy of it (routed to the session after
    /// the subscription took effect, but stored in time for the fetch to
    /// find it) must then be dropped, or the client gets it twice. A
    /// broker asks this just before it sends a live message that is not a
    /// retransmission.
    ///
    /// ```
    /// use backend_core::{delivery::DeliveryTracker, Message, QoS};
    /// let t = DeliveryTracker::new();
    /// let m = Message::new("pub", "a", QoS::AtLeastOnce, "x");
    /// assert!(!t.fetched_before("sub", &m.id));
    /// t.skip_pending("sub", vec![m.clone()]);
    /// assert!(t.fetched_before("sub", &m.id));
    /// t.forget("sub");
    /// assert!(!t.fetched_before("sub", &m.id));
    /// ```
    pub fn fetched_before(&self, client: &str, message_id: &str) -> bool {
        self.lock()
            .get(client)
            .is_some_and(|c| c.fetched.contains(message_id))
    }

    /// Forgets a client whose session ended: the broker's queue and
    /// in-flight window for it are gone, so its stored messages must be
    /// fetchable again.
    pub fn forget(&self, client: &str) {
        self.lock().remove(client);
    }

    /// Number of clients with something pending.
    pub fn clients(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::QoS;

    #[test]
    fn fetch_skips_what_the_session_holds() {
        let t = DeliveryTracker::new();
        let a = Message::new("p", "t", QoS::AtLeastOnce, "a");
        let b = Message::new("p", "t", QoS::AtLeastOnce, "b");
        t.delivered("c", 1, &a.id);
        let got = t.skip_pending("c", vec![a.clone(), b.clone()]);
        assert_eq!(got, vec![b.clone()]);
        assert!(
            t.skip_pending("c", vec![b.clone()]).is_empty(),
            "b is pending now"
        );
        assert!(
            t.skip_pending("other", vec![a.clone()]).len() == 1,
            "clients are separate"
        );
        assert_eq!(t.acked("c", 2), None);
        assert_eq!(t.acked("c", 1), Some(a.id.clone()));
        assert_eq!(t.acked("c", 1), None, "an ack is consumed once");
        t.forget("c");
        assert_eq!(t.skip_pending("c", vec![b.clone()]), vec![b]);
        t.forget("c");
        t.forget("other");
        assert_eq!(t.clients(), 0);
    }
}
