//! The delivery adapter against a model of a broker session: a bounded
//! queue that drops what does not fit, an in-flight window, acks in order.
//! A backlog many times the session's size arrives whole, once, in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use backend_core::delivery::{
    Delivery, DeliveryConfig, LiveCopy, Outgoing, RetainHandling, SubscribeOptions,
};
use backend_core::{
    ClientConnected, ClientDisconnected, ClientInfo, Config, Engine, MemoryBackend, Message, QoS,
    SessionSubscribed, Timestamp,
};

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

/// rmqtt's session just after a persistent client reconnected, one step at
/// a time, as its one task runs them in whatever order they become ready:
/// forwarded messages (its own offline copies moved over, and what the
/// adapter hands it) wait in `rx` until they enter its bounded queue,
/// which drops its oldest when full; it sends from the queue while its
/// in-flight window has room, asking [`Delivery::live_copy`] about every
/// copy the adapter did not hand over; the client acknowledges in order;
/// the client's SUBSCRIBE comes at any point.
///
/// With a takeover, the client connects once more while this connection
/// is still open, as rmqtt 0.24 does it: what waits in `rx` is lost
/// without a word, the queue moves over in order, the in-flight window is
/// sent again newest first (as duplicates, which the broker's glue sends
/// without asking), and the client subscribes again.
struct Reconnect<'a> {
    d: &'a Delivery,
    me: ClientInfo,
    sub: SessionSubscribed,
    /// Forwarded: (message, handed over by the adapter, the packet id of
    /// a duplicate sent again).
    rx: VecDeque<(Message, bool, Option<u16>)>,
    queue: VecDeque<(Message, bool, Option<u16>)>,
    capacity: usize,
    inflight: VecDeque<(u16, Message, bool)>,
    max_inflight: usize,
    next_packet: u16,
    subscribed: bool,
    takeover: bool,
    received: Vec<Message>,
    /// Ids sent again as duplicates (they may arrive twice).
    resent: HashSet<String>,
}

impl Reconnect<'_> {
    fn forward(&mut self, outgoing: Vec<Outgoing>) {
        self.rx
            .extend(outgoing.into_iter().map(|o| (o.message, true, None)));
    }

    /// The steps that can run now: 0 queue a forwarded message, 1 send the
    /// queue's oldest, 2 the client's ack of the oldest in flight, 3 the
    /// client's SUBSCRIBE, 4 the takeover.
    fn ready(&self) -> Vec<u8> {
        let mut steps = Vec::new();
        if !self.rx.is_empty() {
            steps.push(0);
        }
        if !self.queue.is_empty() && self.inflight.len() < self.max_inflight {
            steps.push(1);
        }
        if !self.inflight.is_empty() {
            steps.push(2);
        }
        if !self.subscribed {
            steps.push(3);
        }
        if self.takeover && self.subscribed {
            steps.push(4);
        }
        steps
    }

    async fn step(&mut self, step: u8) {
        let client = self.me.client_id.clone();
        match step {
            0 => {
                let Some(item) = self.rx.pop_front() else {
                    return;
                };
                if self.queue.len() >= self.capacity {
                    if let Some((old, was_fetched, _)) = self.queue.pop_front() {
                        self.d.dropped(&client, &old.id, was_fetched);
                    }
                }
                self.queue.push_back(item);
            }
            1 => {
                let Some((m, fetched, again)) = self.queue.pop_front() else {
                    return;
                };
                if fetched && again.is_none() {
                    // The glue asks about every copy it was handed.
                    if self.d.fetched_copy(&client, &m.id, m.qos) == LiveCopy::HoldBack {
                        return;
                    }
                }
                if !fetched && again.is_none() {
                    match self.d.live_copy(&client, &m.id, &m.topic) {
                        LiveCopy::Send => {}
                        LiveCopy::HoldBack => return,
                        LiveCopy::Fill => {
                            let more = self.d.fill(&client).await;
                            self.forward(more);
                            return;
                        }
                        LiveCopy::Resume => {
                            // The session has the subscription it had
                            // before it went offline.
                            let options = SubscribeOptions {
                                retain_handling: RetainHandling::DoNotSend,
                                ..SubscribeOptions::default()
                            };
                            let more = self.d.resume(&self.sub, options).await;
                            self.forward(more);
                            return;
                        }
                    }
                }
                let packet = again.unwrap_or_else(|| {
                    let p = self.next_packet;
                    self.next_packet = self.next_packet.wrapping_add(1).max(1);
                    p
                });
                self.d
                    .delivered(&self.me, Some(packet), &m.id, &m.topic, m.qos)
                    .await;
                self.received.push(m.clone());
                self.inflight.push_back((packet, m, fetched));
            }
            2 => {
                let Some((packet, m, _)) = self.inflight.pop_front() else {
                    return;
                };
                let next = self.d.acked(&self.me, packet, &m.topic, m.qos).await;
                self.forward(next);
            }
            3 => {
                self.subscribed = true;
                let first = self
                    .d
                    .subscribed(&self.sub, SubscribeOptions::default())
                    .await;
                self.forward(first);
            }
            _ => {
                self.takeover = false;
                self.rx.clear();
                let ev = ClientConnected {
                    client: self.me.clone(),
                    timestamp: Timestamp::now(),
                };
                self.d.connected(&ev, |_| {}).await;
                // The old connection's end is reported after the new one.
                self.d
                    .disconnected(ClientDisconnected {
                        client: self.me.clone(),
                        reason: "kicked".into(),
                        timestamp: Timestamp::now(),
                    })
                    .await;
                // Sent again with their packet ids (new ones come after
                // them, as rmqtt moves its id allocator past them).
                let mut moved = VecDeque::new();
                for (packet, m, fetched) in std::mem::take(&mut self.inflight).into_iter().rev() {
                    self.resent.insert(m.id.clone());
                    moved.push_back((m, fetched, Some(packet)));
                }
                moved.extend(std::mem::take(&mut self.queue));
                self.rx = moved;
                self.subscribed = false;
            }
        }
    }
}

/// A small xorshift, so that a proptest seed names one interleaving.
struct Steps(u64);

impl Steps {
    fn pick(&mut self, ready: &[u8]) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ready[(self.0 % ready.len() as u64) as usize]
    }
}

/// What a reconnect case ends with.
struct Ended {
    received: Vec<Message>,
    published: Vec<Message>,
    resent: HashSet<String>,
    pending: usize,
}

/// Runs one reconnect of a subscriber with `n` messages stored on 4
/// topics while it was offline, in any interleaving (`seed`) of the
/// session's steps, with a takeover or not.
async fn reconnect_case(
    mode: &str,
    n: usize,
    config: DeliveryConfig,
    max_inflight: usize,
    takeover: bool,
    seed: u64,
) -> Ended {
    let d = Delivery::new(engine(), config);
    let me = ClientInfo::new("sub", "node1");
    let sub = SessionSubscribed {
        client: me.clone(),
        filter: format!("{mode}/r/#"),
        qos: QoS::AtLeastOnce,
    };
    let connect = ClientConnected {
        client: me.clone(),
        timestamp: Timestamp::now(),
    };
    d.connected(&connect, |_| {}).await;
    d.subscribed(&sub, SubscribeOptions::default()).await;
    d.disconnected(ClientDisconnected {
        client: me.clone(),
        reason: "gone".into(),
        timestamp: Timestamp::now(),
    })
    .await;
    let mut offline: VecDeque<Message> = VecDeque::new();
    let mut published = Vec::new();
    for i in 0..n {
        let topic = format!("{mode}/r/{}", i % 4);
        let m = Message::new("pub", topic, QoS::AtLeastOnce, format!("{i}"));
        d.published(m.clone()).await;
        d.queued_offline("sub", &m.id);
        if offline.len() >= config.session_queue {
            if let Some(old) = offline.pop_front() {
                d.dropped("sub", &old.id, false);
            }
        }
        offline.push_back(m.clone());
        published.push(m);
    }
    d.connected(&connect, |_| {}).await;
    let mut session = Reconnect {
        d: &d,
        me,
        sub,
        rx: offline.into_iter().map(|m| (m, false, None)).collect(),
        queue: VecDeque::new(),
        capacity: config.session_queue,
        inflight: VecDeque::new(),
        max_inflight,
        next_packet: 1,
        subscribed: false,
        takeover,
        received: Vec::new(),
        resent: HashSet::new(),
    };
    let mut steps = Steps(seed | 1);
    let mut taken = 0;
    loop {
        let ready = session.ready();
        if ready.is_empty() {
            // Nothing moves: what the broker's idle check hands over.
            let idle = d.idle_refill(std::time::Duration::ZERO).await;
            if idle.is_empty() {
                break;
            }
            for (_, more) in idle {
                session.forward(more);
            }
            continue;
        }
        taken += 1;
        assert!(taken < 1_000_000, "the session never settles");
        session.step(steps.pick(&ready)).await;
    }
    Ended {
        pending: d.tracker().pending("sub"),
        received: session.received,
        published,
        resent: session.resent,
    }
}

/// Runs [`reconnect_case`] on its own runtime; returns what it ended
/// with and a description of the case.
fn run_case(
    queue_mode: bool,
    n: usize,
    config: DeliveryConfig,
    max_inflight: usize,
    takeover: bool,
    seed: u64,
) -> (Ended, String) {
    let mode = if queue_mode { "queue" } else { "pubsub" };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let end = rt.block_on(reconnect_case(
        mode,
        n,
        config,
        max_inflight,
        takeover,
        seed,
    ));
    let what = format!(
        "{mode}, {n} messages, {config:?}, in flight {max_inflight}, seed {seed}, takeover {takeover}"
    );
    (end, what)
}

proptest::prop_compose! {
    /// A reconnect case: the mode, the messages stored, the adapter's
    /// window and session queue, the session's in-flight window, the seed
    /// of its interleaving.
    fn reconnects()(
        queue_mode in proptest::bool::ANY,
        n in 1usize..300,
        session_queue in 2usize..40,
        window in 1usize..40,
        max_inflight in 1usize..12,
        seed in proptest::num::u64::ANY,
    ) -> (bool, usize, DeliveryConfig, usize, u64) {
        (queue_mode, n, DeliveryConfig { window, session_queue }, max_inflight, seed)
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever order the session's steps run in, a backlog many times
    /// the session's queue arrives whole, once, in order on each topic,
    /// and nothing stays pending.
    #[test]
    fn any_interleaving_of_a_reconnect_delivers_the_backlog_whole(
        (queue_mode, n, config, max_inflight, seed) in reconnects(),
    ) {
        let (end, what) = run_case(queue_mode, n, config, max_inflight, false, seed);
        assert_whole(&end.received, &end.published, &what);
        proptest::prop_assert_eq!(end.pending, 0, "{}: nothing left pending", what);
    }

    /// The same with a takeover at any point, which loses what was on its
    /// way into the old connection's queue: every message still arrives,
    /// and none twice but those sent again from the in-flight window.
    #[test]
    fn a_takeover_in_the_middle_loses_nothing(
        (queue_mode, n, config, max_inflight, seed) in reconnects(),
    ) {
        let (end, what) = run_case(queue_mode, n, config, max_inflight, true, seed);
        let mut count: HashMap<&str, usize> = HashMap::new();
        for m in &end.received {
            *count.entry(m.id.as_str()).or_default() += 1;
        }
        for m in &end.published {
            let got = count.get(m.id.as_str()).copied().unwrap_or(0);
            proptest::prop_assert!(got >= 1, "{}: {} never arrived", what, m.id);
            proptest::prop_assert!(
                got == 1 || end.resent.contains(&m.id),
                "{}: {} arrived {} times", what, m.id, got
            );
        }
        proptest::prop_assert_eq!(end.pending, 0, "{}: nothing left pending", what);
    }
}
