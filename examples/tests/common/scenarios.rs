//! End-to-end scenarios run against each database: the broker process,
//! real MQTT clients, and the database read directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::QoS;

use super::db::Db;
use super::{payloads, unique, Broker, Client};

const WAIT: Duration = Duration::from_secs(15);

async fn start(db: &Db, name: &str, extra: &[String]) -> Broker {
    let args = db.broker_args(name, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Broker::start(&refs).await
}

/// `id` connects (clean session or not), subscribes to `topic` at QoS 1
/// and goes away.
pub async fn subscribe_and_leave(port: u16, id: &str, clean: bool, topic: &str) {
    let mut sub = Client::connect(port, id, clean).await;
    sub.subscribe(topic, QoS::AtLeastOnce).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sub.disconnect().await;
}

/// A new clean client publishes `n` QoS 1 messages on `topic`,
/// `<prefix>0`, `<prefix>1`, ..., waits `settle` for them to be stored,
/// and leaves.
pub async fn publish_numbered(port: u16, topic: &str, prefix: &str, n: usize, settle: Duration) {
    let publisher = Client::connect(port, &unique("pub"), true).await;
    for i in 0..n {
        publisher
            .publish(
                topic,
                QoS::AtLeastOnce,
                false,
                format!("{prefix}{i}").as_bytes(),
            )
            .await;
    }
    tokio::time::sleep(settle).await;
    publisher.disconnect().await;
}

/// `id` connects again, subscribes to `topic` again, and gets nothing
/// within `max`: `what` names what must not come.
pub async fn nothing_comes_again(
    port: u16,
    id: &str,
    clean: bool,
    topic: &str,
    max: Duration,
    what: &str,
) {
    let mut sub = Client::connect(port, id, clean).await;
    sub.subscribe(topic, QoS::AtLeastOnce).await;
    let again = sub.collect(Duration::from_secs(1), max).await;
    assert!(
        again.is_empty(),
        "{what} came again: {:?}",
        payloads(&again)
    );
}

/// A persistent QoS 1 subscriber goes offline; messages are published; the
/// broker restarts (its own session state is gone); the subscriber comes
/// back and gets each message once, in order, from the database; acked,
/// they never come again.
pub async fn offline_messages_survive_a_broker_restart(db: &Db) {
    let broker = start(db, &unique("offline"), &[]).await;
    let topic = format!("pubsub/{}", unique("t"));
    let sub_id = unique("sub");
    subscribe_and_leave(broker.port, &sub_id, false, &topic).await;
    publish_numbered(broker.port, &topic, "m", 5, Duration::from_millis(800)).await;

    let broker = broker.restart().await;
    let mut sub = Client::connect(broker.port, &sub_id, false).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    let got = sub.expect(5, WAIT).await;
    assert_eq!(
        payloads(&got),
        vec!["m0", "m1", "m2", "m3", "m4"],
        "broker log:\n{}",
        broker.log_text()
    );
    sub.disconnect().await;
    let max = Duration::from_secs(3);
    nothing_comes_again(broker.port, &sub_id, false, &topic, max, "acked messages").await;
}

/// Without a restart the broker's own persistent session and the database
/// both hold the messages; the subscriber still gets each exactly once, and
/// once acked never again.
pub async fn persistent_session_gets_each_message_once(db: &Db) {
    let broker = start(db, &unique("once"), &[]).await;
    let topic = format!("pubsub/{}", unique("t"));
    let sub_id = unique("sub");
    subscribe_and_leave(broker.port, &sub_id, false, &topic).await;
    publish_numbered(broker.port, &topic, "p", 4, Duration::from_millis(800)).await;
    let mut sub = Client::connect(broker.port, &sub_id, false).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    let got = sub.expect(4, WAIT).await;
    assert_eq!(
        payloads(&got),
        vec!["p0", "p1", "p2", "p3"],
        "broker log:\n{}",
        broker.log_text()
    );
    sub.disconnect().await;
    let max = Duration::from_secs(3);
    nothing_comes_again(broker.port, &sub_id, false, &topic, max, "acked messages").await;
}

/// Subscriptions stored in the database are applied when the client connects.
pub async fn stored_subscriptions_are_applied_on_connect(db: &Db) {
    let broker = start(db, &unique("proxy"), &[]).await;
    let client_id = unique("dev");
    let topic = format!("cmd/{client_id}");
    db.add_subscription(&client_id, &topic, 1).await;
    let mut device = Client::connect(broker.port, &client_id, true).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let publisher = Client::connect(broker.port, &unique("pub"), true).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, false, b"reboot")
        .await;
    let got = device.expect(1, WAIT).await;
    assert_eq!(
        payloads(&got),
        vec!["reboot"],
        "broker log:\n{}",
        broker.log_text()
    );
    device.disconnect().await;
    publisher.disconnect().await;
}

/// A client with stored subscriptions connects while the database hangs
/// (Redis frozen): its CONNACK comes at the `read_timeout` (1 s), not when
/// the server answers, and once the server is back its lookup's answer is
/// applied to the session: a message on the stored filter reaches it.
pub async fn stored_subscriptions_come_after_a_hung_lookup(db: &Db) {
    let broker = start(db, &unique("hung"), &[]).await;
    let client_id = unique("hungdev");
    let topic = format!("cmd/{client_id}");
    db.add_subscription(&client_id, &topic, 1).await;
    let outage = db.outage();
    let started = Instant::now();
    let mut device = Client::connect(broker.port, &client_id, true).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(2500),
        "the CONNACK took {waited:?} with the database hung:\n{}",
        broker.log_text()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    outage.end();
    let publisher = Client::connect(broker.port, &unique("pub"), true).await;
    // The late lookup's subscribe is applied once the server answers.
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.is_empty() && Instant::now() < deadline {
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, b"reboot")
            .await;
        got = device
            .collect(Duration::from_millis(500), Duration::from_millis(500))
            .await;
    }
    assert!(
        !got.is_empty() && payloads(&got).iter().all(|p| p == "reboot"),
        "the stored subscription was not applied after the outage:\n{}",
        broker.log_text()
    );
    device.disconnect().await;
    publisher.disconnect().await;
}

/// A retained message survives a broker restart and reaches a new
/// subscriber on a wildcard filter.
pub async fn retained_message_survives_a_restart(db: &Db) {
    let broker = start(db, &unique("retain"), &[]).await;
    let root = unique("dev");
    let publisher = Client::connect(broker.port, &unique("pub"), true).await;
    publisher
        .publish(&format!("{root}/status"), QoS::AtLeastOnce, true, b"online")
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    publisher.disconnect().await;
    let broker = broker.restart().await;
    let mut sub = Client::connect(broker.port, &unique("sub"), true).await;
    sub.subscribe(&format!("{root}/+"), QoS::AtLeastOnce).await;
    let got = sub.expect(1, WAIT).await;
    assert_eq!(
        payloads(&got),
        vec!["online"],
        "broker log:\n{}",
        broker.log_text()
    );
    assert!(got[0].retain, "delivered as retained");
    sub.disconnect().await;
}

/// The client's online state is in the database while it is connected and
/// after it disconnects.
pub async fn client_status_is_recorded(db: &Db) {
    let broker = start(db, &unique("status"), &[]).await;
    let id = unique("st");
    let client = Client::connect(broker.port, &id, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let online = db
        .status(&id)
        .await
        .unwrap_or_else(|| panic!("no status for {id}:\n{}", broker.log_text()));
    assert_eq!(online.state, 1, "online: {online:?}");
    assert!(online.online_at && !online.offline_at, "{online:?}");
    assert_eq!(online.node, format!("broker@127.0.0.1:{}", broker.port));
    client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let offline = db
        .status(&id)
        .await
        .unwrap_or_else(|| panic!("no status for {id}"));
    assert_eq!(offline.state, 0, "offline: {offline:?}");
    assert!(offline.online_at && offline.offline_at, "{offline:?}");
}

/// A v3.1.1 client connects, disconnects and connects again at once with
/// the same client id, twenty times: every CONNACK accepts it, as without
/// storage; and after the last connect the database records it online
/// (the detached disconnect writes never land after the next connect).
pub async fn quick_reconnects_are_accepted(db: &Db) {
    let broker = start(db, &unique("quick"), &[]).await;
    quick_reconnects_on(db, broker).await;
}

/// [`quick_reconnects_are_accepted`] on a running broker.
pub async fn quick_reconnects_on(db: &Db, broker: Broker) {
    use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Outgoing, Packet};
    let id = unique("quick");
    let connect = |round: usize| {
        let id = id.clone();
        let port = broker.port;
        async move {
            let mut opts = MqttOptions::new(&id, "127.0.0.1", port);
            opts.set_clean_session(true);
            let (client, mut el) = AsyncClient::new(opts, 10);
            let ack = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match el.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => return Ok(ack.code),
                        Ok(_) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            })
            .await
            .unwrap_or_else(|_| panic!("round {round}: no CONNACK within 10 s"));
            (client, el, ack)
        }
    };
    for round in 0..20 {
        let (client, mut el, ack) = connect(round).await;
        assert_eq!(
            ack,
            Ok(ConnectReturnCode::Success),
            "round {round}: the reconnect was refused; broker log:\n{}",
            broker.log_text()
        );
        client.disconnect().await.expect("send DISCONNECT");
        // Until the DISCONNECT is on the wire, then connect again at once.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match el.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    let (_client, mut el, ack) = connect(20).await;
    assert_eq!(ack, Ok(ConnectReturnCode::Success));
    let poller = tokio::spawn(async move { while el.poll().await.is_ok() {} });
    if !matches!(db, Db::Memory) {
        let started = std::time::Instant::now();
        loop {
            let s = db.status(&id).await;
            if s.as_ref().is_some_and(|s| s.state == 1) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "still recorded {s:?} after the last connect"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // And it stays online: no late offline write lands after.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(db.status(&id).await.map(|s| s.state), Some(1));
    }
    poller.abort();
}

/// MQTT 5 No Local: a client subscribed with No Local publishes QoS 1
/// messages it rightly does not get; it reconnects with clean start and
/// subscribes again (queue and pubsub filters): the backend must not hand
/// it its own messages either. Another client's message still arrives.
pub async fn no_local_is_kept_for_stored_messages(db: &Db) {
    use rumqttc::v5::mqttbytes::v5::{Filter, Packet};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let broker = start(db, &unique("nolocal"), &[]).await;
    let id = unique("nl");
    let root = unique("nl");
    let filters = [format!("queue/{root}/q"), format!("pubsub/{root}/p")];
    let v5 = |port: u16, id: &str| {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_start(true);
        AsyncClient::new(o, 100)
    };
    // Runs the event loop, collecting publishes, until `quiet` passes.
    async fn received(el: &mut rumqttc::v5::EventLoop, quiet: Duration) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(ev) = tokio::time::timeout(quiet, el.poll()).await {
            match ev {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    got.push(String::from_utf8_lossy(&p.payload).into_owned())
                }
                Ok(_) => {}
                Err(e) => panic!("event loop: {e}"),
            }
        }
        got
    }
    let no_local = |f: &str| {
        let mut filter = Filter::new(f, Q5::AtLeastOnce);
        filter.nolocal = true;
        filter
    };
    let (client, mut el) = v5(broker.port, &id);
    client
        .subscribe_many(filters.iter().map(|f| no_local(f)))
        .await
        .expect("SUBSCRIBE");
    assert!(received(&mut el, Duration::from_millis(500))
        .await
        .is_empty());
    for f in &filters {
        client
            .publish(f.as_str(), Q5::AtLeastOnce, false, format!("own {f}"))
            .await
            .expect("PUBLISH");
    }
    let got = received(&mut el, Duration::from_millis(800)).await;
    assert!(got.is_empty(), "No Local delivered live: {got:?}");
    client.disconnect().await.expect("DISCONNECT");
    let _ = received(&mut el, Duration::from_millis(300)).await;
    // A client closes its connection after DISCONNECT.
    drop((client, el));

    // Someone else publishes too: that one must arrive.
    let other = Client::connect(broker.port, &unique("nl-other"), true).await;
    other
        .publish(&filters[1], QoS::AtLeastOnce, false, b"from another")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    other.disconnect().await;

    let (client, mut el) = v5(broker.port, &id);
    client
        .subscribe_many(filters.iter().map(|f| no_local(f)))
        .await
        .expect("SUBSCRIBE");
    let got = received(&mut el, Duration::from_millis(1500)).await;
    assert!(
        got.iter().all(|p| !p.starts_with("own ")),
        "the backend handed a No Local subscriber its own messages: {got:?}\n{}",
        broker.log_text()
    );
    assert!(
        got.iter().any(|p| p == "from another"),
        "another client's stored message still arrives: {got:?}\n{}",
        broker.log_text()
    );
    let _ = client.disconnect().await;
}

/// A broker stopped with SIGTERM right after a subscriber acknowledged its
/// stored messages flushes those acks before it exits: after a restart,
/// nothing acknowledged comes again. The pool lingers 2 s before each
/// flush (`batch_time = 2s`), so the acks are still in its buffer when the
/// signal comes: without the graceful flush they would be lost.
pub async fn acks_survive_a_sigterm(db: &Db) {
    let kind = db.kind().pool_prefix();
    let extra = [format!("backend.{kind}.pool1.batch_time = 2s")];
    let broker = start(db, &unique("term"), &extra).await;
    let topic = format!("queue/{}", unique("t"));
    let sub_id = unique("sub");
    subscribe_and_leave(broker.port, &sub_id, false, &topic).await;
    // Stored after the 2 s linger; the broker's own session state then
    // goes with a kill, so what comes next comes from the database.
    publish_numbered(broker.port, &topic, "a", 3, Duration::from_millis(3000)).await;
    let mut broker = broker.restart().await;
    let mut sub = Client::connect(broker.port, &sub_id, false).await;
    sub.subscribe(&topic, QoS::AtLeastOnce).await;
    let got = sub.expect(3, WAIT).await;
    assert_eq!(
        payloads(&got),
        vec!["a0", "a1", "a2"],
        "broker log:\n{}",
        broker.log_text()
    );
    sub.disconnect().await;
    let status = broker.terminate();
    assert!(
        status.success(),
        "the broker's shutdown reported lost writes ({status}):\n{}",
        broker.log_text()
    );
    let broker = broker.restart().await;
    let max = Duration::from_secs(4);
    let what = "acknowledged messages (after SIGTERM)";
    nothing_comes_again(broker.port, &sub_id, false, &topic, max, what).await;
}

/// A QoS 1 publisher on a connection of its own, returned once the broker
/// accepted the connection: sends `payloads` on `topic`, one per `pace`
/// (or as fast as its in-flight window allows), and returns the PUBACKs
/// that came, once all came. With a `gate`, it sends nothing before the
/// gate opens (its sender sends or drops). Panics if its connection breaks.
async fn spawn_acked_publisher(
    port: u16,
    topic: String,
    payloads: Vec<String>,
    pace: Option<Duration>,
    gate: Option<tokio::sync::oneshot::Receiver<()>>,
) -> tokio::task::JoinHandle<usize> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
    let mut opts = MqttOptions::new(unique("apub"), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(60));
    opts.set_inflight(100);
    let (client, mut ev) = AsyncClient::new(opts, 1000);
    let count = payloads.len();
    loop {
        match ev.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("a publisher could not connect: {e}"),
        }
    }
    tokio::spawn(async move {
        let sender = tokio::spawn({
            let client = client.clone();
            async move {
                if let Some(gate) = gate {
                    let _ = gate.await;
                }
                let mut tick = pace.map(tokio::time::interval);
                for p in payloads {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, p)
                        .await
                        .expect("queue PUBLISH");
                }
            }
        });
        let mut acked = 0;
        while acked < count {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("a publisher lost its connection: {e}"),
            }
        }
        sender.await.expect("sender");
        let _ = client.disconnect().await;
        acked
    })
}

/// `publishers` publishers at `pace`, publisher `p` sending `p:0` to
/// `p:{count - 1}` on `{run}/{p}` (see [`spawn_acked_publisher`]), each
/// with how long it waited for its CONNACK.
async fn spawn_numbered_publishers(
    port: u16,
    run: &str,
    publishers: usize,
    count: usize,
    pace: Option<Duration>,
) -> Vec<(tokio::task::JoinHandle<usize>, Duration)> {
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let payloads = (0..count).map(|i| format!("{p}:{i}")).collect();
        let started = Instant::now();
        let task = spawn_acked_publisher(port, format!("{run}/{p}"), payloads, pace, None).await;
        tasks.push((task, started.elapsed()));
    }
    tasks
}

/// The PUBACKs the publishers got, all of them within `max`.
async fn all_acked(
    tasks: Vec<(tokio::task::JoinHandle<usize>, Duration)>,
    max: Duration,
    broker: &Broker,
) -> usize {
    tokio::time::timeout(max, async {
        let mut acked = 0;
        for (t, _) in tasks {
            acked += t.await.expect("publisher task");
        }
        acked
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "publishers did not finish within {max:?}:\n{}",
            broker.log_text()
        )
    })
}

/// The database goes away for 10 s while three publishers send QoS 1
/// messages through the broker: every publisher finishes (each PUBACK
/// comes), and after the broker's graceful stop every PUBACKed message is
/// in the database exactly once.
pub async fn database_outage_under_load_loses_nothing(db: &Db) {
    const PUBLISHERS: usize = 3;
    const SECONDS: u64 = 16;
    // FerretDB over SQLite, the test stand-in for MongoDB, stores a few
    // hundred messages a second at best, and fewer as its collections
    // grow: a load it can drain within the test.
    let per_second: u64 = match db {
        Db::Mongo { .. } => 40,
        _ => 150,
    };
    let mut broker = start(db, &unique("outage"), &[]).await;
    let run = unique("outage");
    let count = (per_second * SECONDS) as usize;
    let pace = Some(Duration::from_micros(1_000_000 / per_second));
    let tasks = spawn_numbered_publishers(broker.port, &run, PUBLISHERS, count, pace).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let outage = db.outage();
    tokio::time::sleep(Duration::from_secs(10)).await;
    outage.end();
    let finished = all_acked(tasks, Duration::from_secs(120), &broker).await;
    assert_eq!(finished, PUBLISHERS * count, "every publish was PUBACKed");
    // The buffer drains at the database's pace (FerretDB over SQLite takes
    // a few hundred messages a second): the shutdown comes once it has,
    // or after a minute, when its drain timeout decides.
    let filter = format!("{run}/#");
    stop_and_assert_stored_once(db, &mut broker, &filter, PUBLISHERS, count).await;
    db.remove_messages(&filter).await;
}

/// Waits (up to a minute) until the database holds every message `p:i`
/// (`p < publishers`, `i < count`) under `filter`, stops the broker
/// (whose exit must report no lost write), and checks each is stored once.
async fn stop_and_assert_stored_once(
    db: &Db,
    broker: &mut Broker,
    filter: &str,
    publishers: usize,
    count: usize,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.stored_payloads(filter).await.len() < publishers * count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = broker.terminate();
    assert!(
        status.success(),
        "the broker's shutdown reported lost writes ({status}):\n{}",
        broker.log_text()
    );
    let stored = db.stored_payloads(filter).await;
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for p in &stored {
        *seen.entry(p.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let mut missing = Vec::new();
    for p in 0..publishers {
        for i in 0..count {
            let key = format!("{p}:{i}");
            if !seen.contains_key(key.as_str()) {
                missing.push(key);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} PUBACKed messages not stored (first: {:?})",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// No client waits on a database that is down: with the server stopped,
/// 8 new publishers connect (each CONNACK within a client's usual 5 s
/// connect timeout) and get a PUBACK for each of 800 QoS 1 messages at
/// 400 msg/s, and a new subscriber to them connects and subscribes (its
/// stored subscriptions and backlog cannot be read) and gets them live;
/// all 800 are stored once when the server is back.
pub async fn clients_connect_while_the_database_is_down(db: &Db) {
    const PUBLISHERS: usize = 8;
    const COUNT: usize = 100;
    let mut broker = start(db, &unique("down"), &[]).await;
    let run = format!("pubsub/{}", unique("down"));
    let filter = format!("{run}/#");
    let outage = db.outage();
    let started = Instant::now();
    let mut sub = Client::connect(broker.port, &unique("downsub"), false).await;
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(3000),
        "a subscriber's CONNACK took {waited:?} with the database down:\n{}",
        broker.log_text()
    );
    sub.subscribe(&filter, QoS::AtLeastOnce).await;
    // Each publisher at 50 msg/s: 400 msg/s in all.
    let pace = Some(Duration::from_millis(20));
    let tasks = spawn_numbered_publishers(broker.port, &run, PUBLISHERS, COUNT, pace).await;
    for (p, (_, waited)) in tasks.iter().enumerate() {
        assert!(
            *waited < Duration::from_millis(3000),
            "publisher {p}'s CONNACK took {waited:?} with the database down:\n{}",
            broker.log_text()
        );
    }
    let acked = all_acked(tasks, Duration::from_secs(30), &broker).await;
    assert_eq!(acked, PUBLISHERS * COUNT, "every publish was PUBACKed");
    let live = sub
        .expect(PUBLISHERS * COUNT, Duration::from_secs(30))
        .await;
    assert_eq!(
        live.len(),
        PUBLISHERS * COUNT,
        "the subscriber got each message once"
    );
    sub.disconnect().await;
    outage.end();
    stop_and_assert_stored_once(db, &mut broker, &filter, PUBLISHERS, COUNT).await;
    db.remove_messages(&filter).await;
}

/// Runs a v5 event loop, collecting the payloads of publishes, until
/// `quiet` passes with nothing new.
async fn v5_received(el: &mut rumqttc::v5::EventLoop, quiet: Duration) -> Vec<String> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    let mut got = Vec::new();
    while let Ok(ev) = tokio::time::timeout(quiet, el.poll()).await {
        match ev {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                got.push(String::from_utf8_lossy(&p.payload).into_owned())
            }
            Ok(_) => {}
            Err(e) => panic!("event loop: {e}"),
        }
    }
    got
}

fn v5_client(
    port: u16,
    id: &str,
    clean_start: bool,
) -> (rumqttc::v5::AsyncClient, rumqttc::v5::EventLoop) {
    let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_start(clean_start);
    if !clean_start {
        o.set_session_expiry_interval(Some(300));
    }
    rumqttc::v5::AsyncClient::new(o, 100)
}

fn duplicates(got: &[String]) -> Vec<&String> {
    let mut seen = std::collections::HashSet::new();
    got.iter().filter(|p| !seen.insert(*p)).collect()
}

/// MQTT 5 with a session expiry: a client subscribes to `pubsub/+/+` and
/// goes away; another publishes at QoS 0, 1 and 2 on three topics; back
/// with clean start off, the first gets each message at most once (the
/// broker's session and the backend both hold the QoS 1 and 2 ones).
pub async fn persistent_v5_session_gets_each_message_once(db: &Db) {
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let broker = start(db, &unique("v5once"), &[]).await;
    let root = unique("v5");
    let id = unique("v5sub");
    let (client, mut el) = v5_client(broker.port, &id, false);
    client
        .subscribe(format!("pubsub/{root}/+"), Q5::ExactlyOnce)
        .await
        .expect("SUBSCRIBE");
    let _ = v5_received(&mut el, Duration::from_millis(500)).await;
    client.disconnect().await.expect("DISCONNECT");
    let _ = v5_received(&mut el, Duration::from_millis(300)).await;
    drop((client, el));
    let publisher = Client::connect(broker.port, &unique("v5pub"), true).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .publish(
                &format!("pubsub/{root}/t{i}"),
                qos,
                false,
                format!("q{i}").as_bytes(),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    publisher.disconnect().await;
    let (client, mut el) = v5_client(broker.port, &id, false);
    let got = v5_received(&mut el, Duration::from_millis(2000)).await;
    assert!(
        duplicates(&got).is_empty(),
        "received more than once: {got:?}\n{}",
        broker.log_text()
    );
    for p in ["q1", "q2"] {
        assert!(got.iter().any(|g| g == p), "{p} missing: {got:?}");
    }
    let _ = client.disconnect().await;
}

/// Every v5 publish received until `quiet` passes: payload and user
/// properties.
async fn v5_received_props(
    el: &mut rumqttc::v5::EventLoop,
    quiet: Duration,
) -> Vec<(String, Vec<(String, String)>)> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    let mut got = Vec::new();
    while let Ok(ev) = tokio::time::timeout(quiet, el.poll()).await {
        match ev {
            Ok(Event::Incoming(Packet::Publish(p))) => got.push((
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.properties
                    .map(|pp| pp.user_properties)
                    .unwrap_or_default(),
            )),
            Ok(_) => {}
            Err(e) => panic!("event loop: {e}"),
        }
    }
    got
}

/// MQTT 5 user properties, with storage on: a message published with user
/// properties reaches an online subscriber once, with its properties; and
/// a persistent subscriber that was away, back and subscribing again, gets
/// the one published meanwhile once, with its properties (the broker's
/// session holds it, so the backend's copy, which keeps no properties, is
/// not sent as well).
pub async fn user_properties_arrive_once(db: &Db) {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let broker = start(db, &unique("v5props"), &[]).await;
    let topic = format!("pubsub/{}/up", unique("v5p"));
    let id = unique("v5psub");
    let (sub, mut sub_el) = v5_client(broker.port, &id, false);
    sub.subscribe(topic.clone(), Q5::AtLeastOnce)
        .await
        .expect("SUBSCRIBE");
    let _ = v5_received_props(&mut sub_el, Duration::from_millis(500)).await;
    let (publisher, mut pub_el) = v5_client(broker.port, &unique("v5ppub"), true);
    let props = |v: &str| PublishProperties {
        user_properties: vec![("k".to_owned(), v.to_owned())],
        ..PublishProperties::default()
    };
    let pump = tokio::spawn(async move {
        // The publisher's event loop sends and acknowledges.
        while pub_el.poll().await.is_ok() {}
    });
    publisher
        .publish_with_properties(topic.clone(), Q5::AtLeastOnce, false, "live", props("1"))
        .await
        .expect("PUBLISH");
    let got = v5_received_props(&mut sub_el, Duration::from_millis(1500)).await;
    assert_eq!(
        got,
        vec![("live".to_owned(), vec![("k".to_owned(), "1".to_owned())])],
        "online: once, with its user property\n{}",
        broker.log_text()
    );
    sub.disconnect().await.expect("DISCONNECT");
    let _ = v5_received_props(&mut sub_el, Duration::from_millis(300)).await;
    drop((sub, sub_el));
    publisher
        .publish_with_properties(topic.clone(), Q5::AtLeastOnce, false, "away", props("2"))
        .await
        .expect("PUBLISH");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (sub, mut sub_el) = v5_client(broker.port, &id, false);
    // Subscribing again, as devices do, makes the backend fetch too.
    sub.subscribe(topic.clone(), Q5::AtLeastOnce)
        .await
        .expect("SUBSCRIBE");
    let got = v5_received_props(&mut sub_el, Duration::from_millis(2000)).await;
    assert_eq!(
        got,
        vec![("away".to_owned(), vec![("k".to_owned(), "2".to_owned())])],
        "back from away: once, with its user property\n{}",
        broker.log_text()
    );
    let _ = sub.disconnect().await;
    pump.abort();
}

/// A client publishes three retained messages, then subscribes to a
/// wildcard covering them: it gets each once.
pub async fn retained_messages_come_once(db: &Db) {
    let broker = start(db, &unique("ret-once"), &[]).await;
    // Under pubsub/: QoS 1 retained messages are stored as offline
    // messages too, and must still come once.
    let root = format!("pubsub/{}", unique("ret"));
    let mut c = Client::connect(broker.port, &unique("ret-c"), true).await;
    for t in ["a", "b", "c"] {
        c.publish(&format!("{root}/{t}"), QoS::AtLeastOnce, true, t.as_bytes())
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.subscribe(&format!("{root}/#"), QoS::AtLeastOnce).await;
    let got = payloads(&c.collect(Duration::from_millis(1500), WAIT).await);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["a", "b", "c"],
        "broker log:\n{}",
        broker.log_text()
    );
}

/// B subscribes and gets its SUBACK; A then publishes one QoS 1 message on
/// a stored topic: B gets it once (live), not again from the backend.
pub async fn a_message_after_the_suback_comes_once(db: &Db) {
    let broker = start(db, &unique("race"), &[]).await;
    for round in 0..5 {
        let topic = format!("pubsub/{}", unique("race"));
        let mut b = Client::connect(broker.port, &unique("race-b"), true).await;
        b.subscribe(&topic, QoS::AtLeastOnce).await;
        // rumqttc's subscribe returns once queued: give the SUBACK time.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let a = Client::connect(broker.port, &unique("race-a"), true).await;
        a.publish(
            &topic,
            QoS::AtLeastOnce,
            false,
            format!("r{round}").as_bytes(),
        )
        .await;
        let got = payloads(&b.collect(Duration::from_millis(1000), WAIT).await);
        assert_eq!(
            got,
            [format!("r{round}")],
            "round {round}\n{}",
            broker.log_text()
        );
        a.disconnect().await;
        b.disconnect().await;
    }
}

/// `buffer = disk`: with the database away, a publisher sends QoS 1
/// messages and gets every PUBACK; the broker is then killed with SIGKILL
/// while the database is still away. The database comes back, the broker
/// starts again on the same buffer file, and every PUBACKed message is
/// stored exactly once.
pub async fn disk_buffer_survives_a_crash(db: &Db) {
    const COUNT: usize = 300;
    let kind = db.kind().pool_prefix();
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.redb", unique("buffer")));
    let extra = [
        format!("backend.{kind}.pool1.buffer = disk"),
        format!("backend.{kind}.pool1.buffer_path = {}", file.display()),
    ];
    let broker = start(db, &unique("disk"), &extra).await;
    let run = unique("disk");
    // Connected first: at the start of an outage a connect waits for the
    // database's first failure (the subscription lookup), which for a
    // server that hangs rather than refuses is its timeout.
    let payloads = (0..COUNT).map(|i| format!("d{i}")).collect();
    let (open, gate) = tokio::sync::oneshot::channel::<()>();
    let publisher =
        spawn_acked_publisher(broker.port, format!("{run}/t"), payloads, None, Some(gate)).await;
    let outage = db.outage();
    let _ = open.send(());
    let acked = tokio::time::timeout(Duration::from_secs(120), publisher)
        .await
        .unwrap_or_else(|_| panic!("not every PUBACK came:\n{}", broker.log_text()))
        .expect("publisher task");
    assert_eq!(acked, COUNT);
    // The crash: SIGKILL, database still away.
    let log = broker.log_text();
    let broker = {
        let mut b = broker;
        b.stop();
        outage.end();
        b.restart().await
    };
    let filter = format!("{run}/#");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = db.stored_payloads(&filter).await.len();
        if n >= COUNT || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut broker = broker;
    let status = broker.terminate();
    assert!(
        status.success(),
        "shutdown lost writes:\n{}",
        broker.log_text()
    );
    let stored = db.stored_payloads(&filter).await;
    let mut sorted = stored.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        stored.len(),
        "stored more than once after the replay"
    );
    assert_eq!(
        stored.len(),
        COUNT,
        "PUBACKed messages lost in the crash\nbefore the crash:\n{log}\nafter:\n{}",
        broker.log_text()
    );
    let _ = std::fs::remove_file(&file);
}

/// MQTT 5 retain handling with stored retained messages: 0 sends them on
/// every SUBSCRIBE, 1 only when the subscription is new, 2 never.
pub async fn retain_handling_holds_for_stored_retained_messages(db: &Db) {
    use rumqttc::v5::mqttbytes::v5::{Filter, RetainForwardRule};
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let broker = start(db, &unique("rh"), &[]).await;
    let topic = format!("pubsub/{}", unique("rh"));
    let publisher = Client::connect(broker.port, &unique("rh-pub"), true).await;
    publisher
        .publish(&topic, QoS::AtLeastOnce, true, b"kept")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    publisher.disconnect().await;
    let (client, mut el) = v5_client(broker.port, &unique("rh-sub"), true);
    let filter = |rule: RetainForwardRule| {
        let mut f = Filter::new(topic.clone(), Q5::AtLeastOnce);
        f.retain_forward_rule = rule;
        f
    };
    let round = |rule: RetainForwardRule| {
        let client = client.clone();
        let f = filter(rule);
        async move {
            client.subscribe_many([f]).await.expect("SUBSCRIBE");
        }
    };
    round(RetainForwardRule::OnNewSubscribe).await;
    let first = v5_received(&mut el, Duration::from_millis(1000)).await;
    round(RetainForwardRule::OnNewSubscribe).await;
    let again = v5_received(&mut el, Duration::from_millis(1000)).await;
    round(RetainForwardRule::Never).await;
    let never = v5_received(&mut el, Duration::from_millis(1000)).await;
    round(RetainForwardRule::OnEverySubscribe).await;
    let every = v5_received(&mut el, Duration::from_millis(1000)).await;
    let log = broker.log_text();
    assert_eq!(first, ["kept"], "handling 1, new subscription\n{log}");
    assert!(
        again.is_empty(),
        "handling 1, existing subscription: {again:?}"
    );
    assert!(never.is_empty(), "handling 2: {never:?}");
    assert_eq!(every, ["kept"], "handling 0\n{log}");
    let _ = client.disconnect().await;
}

/// `topics.len()` clean publishers, one per topic, each publish
/// `per_topic` QoS 1 messages `<topic index>:<n>` at once; returns when
/// every one is acknowledged (stored).
pub async fn publish_acked(port: u16, topics: &[String], per_topic: usize) {
    let publishers = topics.iter().enumerate().map(|(k, topic)| {
        let topic = topic.clone();
        async move {
            let mut opts = rumqttc::MqttOptions::new(unique("bulk"), "127.0.0.1", port);
            opts.set_keep_alive(Duration::from_secs(30));
            let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
            let acks = tokio::spawn(async move {
                let mut acked = 0;
                while acked < per_topic {
                    match eventloop.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                        Ok(_) => {}
                        Err(e) => panic!("publisher connection failed after {acked} acks: {e}"),
                    }
                }
                eventloop
            });
            for i in 0..per_topic {
                client
                    .publish(&topic, QoS::AtLeastOnce, false, format!("{k}:{i}"))
                    .await
                    .expect("queue PUBLISH");
            }
            let mut eventloop = tokio::time::timeout(Duration::from_secs(180), acks)
                .await
                .unwrap_or_else(|_| panic!("{topic}: not every PUBLISH acked within 180 s"))
                .expect("publisher task");
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
        }
    });
    futures_join_all(publishers).await;
}

async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futs: impl IntoIterator<Item = F>,
) {
    let tasks: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    for t in tasks {
        t.await.expect("publisher");
    }
}

/// Checks that `got` holds `topics × per_topic` messages of
/// [`publish_acked`], each once, and each topic's in the order published.
fn assert_whole_backlog(got: &[rumqttc::Publish], topics: usize, per_topic: usize, what: &str) {
    assert_backlog(got, topics, per_topic, true, what)
}

/// [`assert_whole_backlog`], with the per-topic order checked or not.
fn assert_backlog(
    got: &[rumqttc::Publish],
    topics: usize,
    per_topic: usize,
    in_order: bool,
    what: &str,
) {
    let mut seen = std::collections::HashMap::new();
    let mut newest = vec![None::<usize>; topics];
    let mut out_of_order = Vec::new();
    for (n, p) in got.iter().enumerate() {
        let text = String::from_utf8_lossy(&p.payload).into_owned();
        let (k, i) = text
            .split_once(':')
            .and_then(|(k, i)| Some((k.parse::<usize>().ok()?, i.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("{what}: an unexpected message {text:?}"));
        assert!(
            k < topics && i < per_topic,
            "{what}: {text} was never published"
        );
        if let Some(first) = seen.insert((k, i), n) {
            panic!(
                "{what}: {text} came twice, as message {first} and {n} of {}",
                got.len()
            );
        }
        if let Some(m) = newest[k].filter(|&m| m > i) {
            if out_of_order.len() < 5 {
                out_of_order.push(format!("{text} (message {n}) after {k}:{m}"));
            }
        }
        newest[k] = newest[k].max(Some(i));
    }
    if seen.len() != topics * per_topic {
        let missing: Vec<String> = (0..topics)
            .flat_map(|k| (0..per_topic).map(move |i| (k, i)))
            .filter(|ki| !seen.contains_key(ki))
            .take(10)
            .map(|(k, i)| format!("{k}:{i}"))
            .collect();
        panic!(
            "{what}: {} of {} arrived; missing (first 10): {}",
            seen.len(),
            topics * per_topic,
            missing.join(", ")
        );
    }
    assert!(
        !in_order || out_of_order.is_empty(),
        "{what}: out of order on their topic: {}",
        out_of_order.join(", ")
    );
}

/// A persistent subscriber that acknowledges each message only once the
/// test has counted it: what it read and acked is exactly what the broker
/// may never send again.
struct CountingSubscriber {
    client: rumqttc::AsyncClient,
    rx: tokio::sync::mpsc::UnboundedReceiver<rumqttc::Publish>,
    task: tokio::task::JoinHandle<()>,
    /// Its connections and connection errors, for a failure's message.
    connections: Arc<std::sync::Mutex<Vec<String>>>,
    /// Set: the client stops reading its connection but keeps it open.
    freeze: tokio::sync::watch::Sender<bool>,
}

impl CountingSubscriber {
    async fn connect(port: u16, id: &str, filter: &str) -> Self {
        let mut opts = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(false);
        opts.set_manual_acks(true);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 100);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let connections = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&connections);
        let started = tokio::time::Instant::now();
        let note = move |what: String| {
            let at = started.elapsed().as_secs_f64();
            seen.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{at:.2}s {what}"));
        };
        let (freeze, mut frozen) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    biased;
                    _ = async { drop(frozen.wait_for(|f| *f).await) } => {
                        // Holds the connection open, unread, until aborted.
                        std::future::pending::<()>().await;
                        continue;
                    }
                    event = eventloop.poll() => event,
                };
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = tx.send(p);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(c))) => {
                        note(format!("CONNACK {:?}", c.code))
                    }
                    Ok(_) => {}
                    Err(e) => {
                        note(format!("connection error: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                }
            }
        });
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("send SUBSCRIBE");
        CountingSubscriber {
            client,
            rx,
            task,
            connections,
            freeze,
        }
    }

    /// Reads and acks up to `n` messages, for at most `max`: fewer when
    /// they stop coming (the caller's check then names what is missing).
    async fn read(&mut self, n: usize, max: Duration) -> Vec<rumqttc::Publish> {
        let deadline = tokio::time::Instant::now() + max;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(p)) => {
                    self.client.ack(&p).await.expect("queue PUBACK");
                    got.push(p);
                }
                _ => {
                    let connections = self
                        .connections
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .join("; ");
                    eprintln!(
                        "expected {n} messages, got {} within {max:?}; the subscriber's connections: {connections}",
                        got.len()
                    );
                    break;
                }
            }
        }
        got
    }

    /// Reads and acks whatever comes until `quiet` passes with nothing.
    async fn read_rest(&mut self, quiet: Duration) -> Vec<rumqttc::Publish> {
        let mut got = Vec::new();
        while let Ok(Some(p)) = tokio::time::timeout(quiet, self.rx.recv()).await {
            self.client.ack(&p).await.expect("queue PUBACK");
            got.push(p);
        }
        got
    }

    /// Disconnects; what arrived and was not read stays unacknowledged.
    async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.task.abort();
    }
}

/// A persistent subscriber on a wildcard away while `per_topic` QoS 1
/// messages went to each of 8 topics.
struct Backlog {
    broker: Broker,
    filter: String,
    topics: Vec<String>,
    sub_id: String,
    total: usize,
}

impl Backlog {
    /// A broker on `db`, the subscriber away, the messages stored, in
    /// `mode` ("pubsub" or "queue": the backend's queue functions; the
    /// project's confs fetch in pubsub mode, but Redis's on `queue/#`).
    async fn stored(db: &Db, mode: &str, per_topic: usize) -> Backlog {
        let extra = if mode == "queue" {
            db.queue_rules()
        } else {
            Vec::new()
        };
        let broker = start(db, &unique("backlog"), &extra).await;
        let root = format!("{mode}/{}", unique("bl"));
        let filter = format!("{root}/#");
        let topics: Vec<String> = (0..8).map(|k| format!("{root}/{k}")).collect();
        let sub_id = unique("drain");
        subscribe_and_leave(broker.port, &sub_id, false, &filter).await;
        publish_acked(broker.port, &topics, per_topic).await;
        let total = topics.len() * per_topic;
        Backlog {
            broker,
            filter,
            topics,
            sub_id,
            total,
        }
    }
}

/// A backlog ten times a session's queue: a persistent subscriber on a
/// wildcard is offline while `per_topic` QoS 1 messages go to each of 8
/// topics; when it comes back every one arrives, once, in per-topic order,
/// in pubsub and in queue mode, with rmqtt's default session limits (1,000
/// queued). With `restart`, the subscriber leaves in the middle of the
/// drain and the broker is stopped and started again: nothing it acked
/// comes again, nothing is lost.
pub async fn backlog_arrives_whole(db: &Db, per_topic: usize, restart: bool) {
    for mode in ["pubsub", "queue"] {
        let Backlog {
            mut broker,
            filter,
            topics,
            sub_id,
            total,
        } = Backlog::stored(db, mode, per_topic).await;
        let what = format!("{mode}: {total} messages on {filter}");

        let mut sub = CountingSubscriber::connect(broker.port, &sub_id, &filter).await;
        let mut got = Vec::with_capacity(total);
        if restart {
            // Half read and acked; what came after is left unacked, so it
            // comes again after the restart.
            got.extend(sub.read(total / 2, Duration::from_secs(120)).await);
            sub.disconnect().await;
            broker = broker.restart_gracefully().await;
            sub = CountingSubscriber::connect(broker.port, &sub_id, &filter).await;
        }
        let left = total.saturating_sub(got.len());
        got.extend(sub.read(left, Duration::from_secs(180)).await);
        got.extend(sub.read_rest(Duration::from_secs(2)).await);
        sub.disconnect().await;
        assert_whole_backlog(&got, topics.len(), per_topic, &what);
        let max = Duration::from_secs(3);
        nothing_comes_again(broker.port, &sub_id, false, &filter, max, "acked messages").await;
        db.remove_messages(&filter).await;
    }
}

/// A backlog ten times a session's queue, and in the middle of its drain
/// the subscriber connects again while its first connection is still open
/// (a client that gave up on a connection the broker still holds): the
/// broker takes the session over from the open connection. Every message
/// arrives; one the first connection received may come again (its ack may
/// not have been sent), nothing else twice, and nothing after the drain.
/// The order is not checked: rmqtt sends the taken-over in-flight window
/// again in reverse.
pub async fn backlog_survives_a_takeover(db: &Db, per_topic: usize) {
    for mode in ["pubsub", "queue"] {
        let Backlog {
            broker,
            filter,
            topics,
            sub_id,
            total,
        } = Backlog::stored(db, mode, per_topic).await;
        let what = format!("{mode}: {total} messages on {filter}, taken over");

        let mut first = CountingSubscriber::connect(broker.port, &sub_id, &filter).await;
        let early = first.read(total / 3, Duration::from_secs(120)).await;
        // The first connection stays open, unread: the broker kicks it.
        let _ = first.freeze.send(true);
        let mut second = CountingSubscriber::connect(broker.port, &sub_id, &filter).await;
        let left = total - early.len();
        let mut got = second.read(left, Duration::from_secs(120)).await;
        got.extend(second.read_rest(Duration::from_secs(2)).await);
        let early_late = first.read_rest(Duration::from_millis(10)).await;
        first.task.abort();
        second.disconnect().await;
        // What the first connection got may come again; the rest once.
        let again: std::collections::HashSet<String> = early
            .iter()
            .chain(&early_late)
            .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
            .collect();
        let mut whole: Vec<rumqttc::Publish> = early.into_iter().chain(early_late).collect();
        whole.extend(
            got.into_iter()
                .filter(|p| !again.contains(&*String::from_utf8_lossy(&p.payload))),
        );
        // Not in order: rmqtt 0.24 sends the in-flight window it takes
        // over from the old connection again newest first.
        assert_backlog(&whole, topics.len(), per_topic, false, &what);
        let max = Duration::from_secs(3);
        nothing_comes_again(broker.port, &sub_id, false, &filter, max, "acked messages").await;
        db.remove_messages(&filter).await;
    }
}

/// The publishes an MQTT 5 event loop receives until `quiet` passes with
/// nothing new, whole.
async fn v5_received_whole(
    el: &mut rumqttc::v5::EventLoop,
    quiet: Duration,
) -> Vec<rumqttc::v5::mqttbytes::v5::Publish> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    let mut got = Vec::new();
    while let Ok(ev) = tokio::time::timeout(quiet, el.poll()).await {
        match ev {
            Ok(Event::Incoming(Packet::Publish(p))) => got.push(p),
            Ok(_) => {}
            Err(e) => panic!("event loop: {e}"),
        }
    }
    got
}

/// Polls until the CONNACK; returns its Retain Available (`None`: absent,
/// which means available).
async fn v5_connack_retain_available(el: &mut rumqttc::v5::EventLoop) -> Option<u8> {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::Event;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                return ack.properties.and_then(|p| p.retain_available)
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("event loop: {e}"),
            Err(_) => panic!("no CONNACK within 10 s"),
        }
    }
}

/// MQTT 5 end to end through storage: the broker advertises retained
/// messages; a persistent subscriber is away while a message with every
/// property storage keeps, one that expires after 1 s, and a retained
/// message with properties are published; the broker restarts (only
/// storage holds them); back, the subscriber gets the first with each
/// property intact and its expiry counted down, the retained one with its
/// properties and the retain flag, and never the expired one.
pub async fn mqtt5_properties_come_back_from_storage(db: &Db) {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS as Q5;
    let broker = start(db, &unique("v5store"), &[]).await;
    let root = format!("pubsub/{}", unique("v5s"));
    let id = unique("v5ssub");
    let (sub, mut sub_el) = v5_client(broker.port, &id, false);
    assert_ne!(
        v5_connack_retain_available(&mut sub_el).await,
        Some(0),
        "CONNACK: Retain Available"
    );
    sub.subscribe(format!("{root}/+"), Q5::AtLeastOnce)
        .await
        .expect("SUBSCRIBE");
    let _ = v5_received_whole(&mut sub_el, Duration::from_millis(500)).await;
    sub.disconnect().await.expect("DISCONNECT");
    let _ = v5_received_whole(&mut sub_el, Duration::from_millis(300)).await;
    drop((sub, sub_el));

    let full = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(300),
        response_topic: Some(format!("{root}/reply")),
        correlation_data: Some(backend_core::Bytes::from_static(b"\x00corr\xff")),
        user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2".into())],
        content_type: Some("application/json".into()),
        ..PublishProperties::default()
    };
    let short = PublishProperties {
        message_expiry_interval: Some(1),
        ..PublishProperties::default()
    };
    let (publisher, mut pub_el) = v5_client(broker.port, &unique("v5spub"), true);
    let pump = tokio::spawn(async move { while pub_el.poll().await.is_ok() {} });
    publisher
        .publish_with_properties(
            format!("{root}/a"),
            Q5::AtLeastOnce,
            false,
            "full",
            full.clone(),
        )
        .await
        .expect("PUBLISH");
    publisher
        .publish_with_properties(format!("{root}/a"), Q5::AtLeastOnce, false, "short", short)
        .await
        .expect("PUBLISH");
    publisher
        .publish_with_properties(
            format!("{root}/r"),
            Q5::AtLeastOnce,
            true,
            "kept",
            full.clone(),
        )
        .await
        .expect("PUBLISH");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _ = publisher.disconnect().await;
    pump.abort();

    let broker = broker.restart_gracefully().await;
    let (sub, mut sub_el) = v5_client(broker.port, &id, false);
    sub.subscribe(format!("{root}/+"), Q5::AtLeastOnce)
        .await
        .expect("SUBSCRIBE");
    let got = v5_received_whole(&mut sub_el, Duration::from_millis(2000)).await;
    let text =
        |p: &rumqttc::v5::mqttbytes::v5::Publish| String::from_utf8_lossy(&p.payload).into_owned();
    let mut payloads: Vec<String> = got.iter().map(text).collect();
    payloads.sort();
    assert_eq!(
        payloads,
        vec!["full", "kept"],
        "the expired message never comes, the others once\n{}",
        broker.log_text()
    );
    for p in &got {
        let props = p.properties.clone().unwrap_or_default();
        let what = text(p);
        assert!(
            props
                .message_expiry_interval
                .is_some_and(|e| (290..300).contains(&e)),
            "{what}: the expiry counted down: {:?}",
            props.message_expiry_interval
        );
        let expected = PublishProperties {
            message_expiry_interval: props.message_expiry_interval,
            ..full.clone()
        };
        assert_eq!(props, expected, "{what}: every property intact");
        assert_eq!(p.retain, what == "kept", "{what}: the retain flag");
    }
    let _ = sub.disconnect().await;
}

/// The value of the Prometheus sample `name` whose labels include
/// `pool="pool1"`, in the text `body` (0 when absent).
fn pool1_sample(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains("pool=\"pool1\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// `--metrics` during a 10 s database outage under load, scraped with a
/// real HTTP client: `/metrics` shows the buffer depth rise and fall back
/// to 0 and the server found away, `/healthz` answers 503 naming the pool
/// and then 200 again; every message is stored once.
pub async fn metrics_show_an_outage(db: &Db) {
    const PUBLISHERS: usize = 2;
    const COUNT: usize = 1200;
    let metrics_port = super::free_port();
    let mut args = db.broker_args(&unique("metrics"), &[]);
    args.extend(["--metrics".to_owned(), format!("127.0.0.1:{metrics_port}")]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut broker = Broker::start(&refs).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client");
    let base = format!("http://127.0.0.1:{metrics_port}");
    let scrape = |path: &'static str| {
        let http = http.clone();
        let url = format!("{base}{path}");
        async move {
            let r = http
                .get(&url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {url}: {e}"));
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
    };
    // Health is checked at start: up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape("/healthz").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/healthz never said 200 at start:\n{}",
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = format!("pubsub/{}", unique("metrics"));
    let filter = format!("{run}/#");
    let pace = Some(Duration::from_millis(10));
    let tasks = spawn_numbered_publishers(broker.port, &run, PUBLISHERS, COUNT, pace).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outage = db.outage();
    let mut deepest = 0.0f64;
    let mut unhealthy = None;
    let mut away = 0.0f64;
    let outage_end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < outage_end {
        let (_, body) = scrape("/metrics").await;
        deepest = deepest.max(pool1_sample(&body, "mqtt_storage_buffer_depth"));
        away = away.max(pool1_sample(&body, "mqtt_storage_server_away"));
        let (status, text) = scrape("/healthz").await;
        if status == 503 {
            unhealthy.get_or_insert(text);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    outage.end();
    assert!(
        deepest > 0.0,
        "the buffer depth never rose during the outage"
    );
    assert_eq!(away, 1.0, "the server was never shown away");
    let text = unhealthy.expect("/healthz never said 503 during the outage");
    assert!(
        text.contains("pool pool1"),
        "/healthz names the pool: {text}"
    );
    for (t, _) in tasks {
        assert_eq!(t.await.expect("publisher"), COUNT, "every publish PUBACKed");
    }
    // Back: the buffer drains to 0 and /healthz says 200.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = scrape("/metrics").await;
        let depth = pool1_sample(&body, "mqtt_storage_buffer_depth");
        let (status, text) = scrape("/healthz").await;
        if depth == 0.0 && status == 200 {
            assert!(pool1_sample(&body, "mqtt_storage_writes_flushed_total") > 0.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the outage: depth {depth}, /healthz {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop_and_assert_stored_once(db, &mut broker, &filter, PUBLISHERS, COUNT).await;
    db.remove_messages(&filter).await;
}
