//! The delivery adapter against a model of a broker session: a bounded
//! queue that drops what does not fit, an in-flight window, acks in order.
//! A backlog many times the session's size arrives whole, once, in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use backend_core::delivery::{Delivery, DeliveryConfig, LiveCopy, Outgoing, SubscribeOptions};
use backend_core::{ClientInfo, Config, Engine, MemoryBackend, Message, QoS, SessionSubscribed};

const RULES: &str = r##"
backend.redis.pool1.server = 127.0.0.1:6379
backend.redis.hook.session.subscribed.1  = {"topic": "queue/#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}
backend.redis.hook.session.subscribed.2  = {"topic": "pubsub/#", "action": {"function": "on_message_fetch_for_pubsub"}, "pool": "pool1"}
backend.redis.hook.message.publish.1     = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}
backend.redis.hook.message.acked.1       = {"topic": "queue/#", "action": {"function": "on_message_acked_for_queue"}, "pool": "pool1"}
backend.redis.hook.message.acked.2       = {"topic": "pubsub/#", "action": {"function": "on_message_acked_for_pubsub"}, "pool": "pool1"}
"##;

/// A broker session as rmqtt keeps one: a queue of at most `capacity`
/// in front of the client; when it is full the oldest is dropped.
struct Session {
    queue: VecDeque<(Message, bool)>,
    capacity: usize,
    next_packet: u16,
    received: Vec<Message>,
}

impl Session {
    fn new(capacity: usize) -> Self {
        Session {
            queue: VecDeque::new(),
            capacity,
            next_packet: 1,
            received: Vec::new(),
        }
    }

    /// Queues `m` (`fetched`: handed over by the adapter), dropping the
    /// oldest if the queue is full.
    fn queue(&mut self, d: &Delivery, client: &str, m: Message, fetched: bool) {
        if self.queue.len() >= self.capacity {
            if let Some((old, was_fetched)) = self.queue.pop_front() {
                d.dropped(client, &old.id, was_fetched);
            }
        }
        self.queue.push_back((m, fetched));
    }

    /// The broker hands the session stored messages.
    fn push(&mut self, d: &Delivery, client: &str, outgoing: Vec<Outgoing>) {
        for o in outgoing {
            self.queue(d, client, o.message, true);
        }
    }

    /// Sends everything queued, one at a time, each acked at once.
    async fn drain(&mut self, d: &Delivery, me: &ClientInfo) {
        while let Some((m, fetched)) = self.queue.pop_front() {
            if !fetched {
                match d.live_copy(&me.client_id, &m.id, &m.topic) {
                    LiveCopy::Send => {}
                    LiveCopy::HoldBack => continue,
                    LiveCopy::Fill => {
                        let more = d.fill(&me.client_id).await;
                        self.push(d, &me.client_id, more);
                        continue;
                    }
                    LiveCopy::Resume => panic!("the test subscribes again"),
                }
            }
            let packet = self.next_packet;
            self.next_packet = self.next_packet.wrapping_add(1).max(1);
            d.delivered(me, Some(packet), &m.id, &m.topic, m.qos).await;
            self.received.push(m.clone());
            let next = d.acked(me, packet, &m.topic, m.qos).await;
            self.push(d, &me.client_id, next);
        }
    }
}

fn engine() -> Arc<Engine> {
    let conf = Config::parse(RULES).expect("rules");
    Arc::new(Engine::with_backend(&conf, Arc::new(MemoryBackend::new())).expect("engine"))
}

fn assert_whole(received: &[Message], published: &[Message], what: &str) {
    let mut seen = HashSet::new();
    let mut last: HashMap<&str, usize> = HashMap::new();
    let order: HashMap<&str, usize> = published
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    for m in received {
        assert!(seen.insert(m.id.as_str()), "{what}: {} came twice", m.id);
        let i = order[m.id.as_str()];
        if let Some(prev) = last.insert(m.topic.as_str(), i) {
            assert!(prev < i, "{what}: {} out of order on {}", m.id, m.topic);
        }
    }
    assert_eq!(seen.len(), published.len(), "{what}: every message");
}

/// 10,000 messages on 8 topics while a persistent subscriber is offline;
/// its session kept the newest 1,000 (its own copies) and dropped the
/// rest. Back online it gets all 10,000 once, in order on each topic,
/// whether its own copies reach the new session before the first page or
/// after it (rmqtt moves them over in a message of their own, which may
/// come after the client's SUBSCRIBE: were the queue full then, its
/// oldest, stored messages, would be dropped and come late).
#[tokio::test]
async fn a_backlog_ten_times_the_session_arrives_whole() {
    for (mode, own_after) in [
        ("pubsub", false),
        ("queue", false),
        ("pubsub", true),
        ("queue", true),
    ] {
        let what = format!("{mode}, own copies after the first page: {own_after}");
        let d = Delivery::new(engine(), DeliveryConfig::default());
        let me = ClientInfo::new("sub", "node1");
        let sub = SessionSubscribed {
            client: me.clone(),
            filter: format!("{mode}/bl/#"),
            qos: QoS::AtLeastOnce,
        };
        assert!(d
            .subscribed(&sub, SubscribeOptions::default())
            .await
            .is_empty());
        let mut offline = Session::new(1000);
        let mut published = Vec::new();
        for i in 0..10_000 {
            let topic = format!("{mode}/bl/{}", i % 8);
            let m = Message::new("pub", topic, QoS::AtLeastOnce, format!("{i}"));
            d.published(m.clone()).await;
            d.queued_offline("sub", &m.id);
            offline.queue(&d, "sub", m.clone(), false);
            published.push(m);
        }
        let mut session = Session::new(1000);
        if !own_after {
            session.queue = std::mem::take(&mut offline.queue);
        }
        let first = d.subscribed(&sub, SubscribeOptions::default()).await;
        session.push(&d, "sub", first);
        for (m, fetched) in std::mem::take(&mut offline.queue) {
            session.queue(&d, "sub", m, fetched);
        }
        session.drain(&d, &me).await;
        assert_whole(&session.received, &published, &what);
        assert_eq!(
            d.tracker().pending("sub"),
            0,
            "{what}: nothing left pending"
        );
    }
}

/// Live messages published while the backlog pages in are held back and
/// come with the backlog, in order; once it is drained they flow live.
#[tokio::test]
async fn live_copies_wait_for_the_backlog() {
    let d = Delivery::new(
        engine(),
        DeliveryConfig {
            window: 10,
            ..DeliveryConfig::default()
        },
    );
    let me = ClientInfo::new("sub", "node1");
    let sub = SessionSubscribed {
        client: me.clone(),
        filter: "pubsub/live/#".into(),
        qos: QoS::AtLeastOnce,
    };
    d.subscribed(&sub, SubscribeOptions::default()).await;
    let mut published = Vec::new();
    for i in 0..50 {
        let m = Message::new("pub", "pubsub/live/a", QoS::AtLeastOnce, format!("{i}"));
        d.published(m.clone()).await;
        published.push(m);
    }
    let mut session = Session::new(1000);
    let first = d.subscribed(&sub, SubscribeOptions::default()).await;
    assert_eq!(first.len(), 10, "one window");
    session.push(&d, "sub", first);
    // A live message arrives while the backlog still pages in.
    let live = Message::new("pub", "pubsub/live/a", QoS::AtLeastOnce, "live");
    d.published(live.clone()).await;
    session.queue(&d, "sub", live.clone(), false);
    published.push(live);
    session.drain(&d, &me).await;
    assert_whole(&session.received, &published, "live during the backlog");
    let after = Message::new("pub", "pubsub/live/a", QoS::AtLeastOnce, "after");
    d.published(after.clone()).await;
    assert_eq!(
        d.live_copy("sub", &after.id, &after.topic),
        LiveCopy::Send,
        "a drained backlog holds nothing back"
    );
}
