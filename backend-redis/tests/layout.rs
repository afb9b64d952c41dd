//! The key layout, read back with plain commands exactly as the seed shows
//! it, data written by plain commands read by the backend, and the seed's
//! whole Redis configuration run through the engine.

mod common;

use backend_core::testkit::unique;
use backend_core::{
    Ack, Backend, ClientConnected, ClientInfo, Config, Engine, FetchRequest, Message,
    MessageDelivery, OfflineMode, QoS, SessionSubscribed, SessionUnsubscribed, Subscription,
    Timestamp,
};
use backend_redis::keys;
use common::cmd;

fn strings(v: Vec<Vec<u8>>) -> Vec<String> {
    v.into_iter()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

async fn hgetall(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<String> {
    strings(cmd(c, &[b"HGETALL", key.as_bytes()]).await)
}

#[tokio::test]
async fn client_hash_and_node_hash_as_the_seed_shows_them() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let id = unique("test");
    let node = unique("emqx@127.0.0.1");
    let client = ClientInfo::new(id.clone(), node.clone());
    b.client_online(&client, Timestamp::from_secs(1_481_685_802))
        .await
        .expect("client_online");
    assert_eq!(
        hgetall(&mut c, &keys::client(&id)).await,
        [
            "state",
            "1",
            "online_at",
            "1481685802",
            "offline_at",
            "undefined",
            "node",
            &node
        ],
        "HGETALL mqtt:client:<id> while online"
    );
    assert_eq!(
        hgetall(&mut c, &keys::node(&node)).await,
        [id.as_str(), "1481685802"],
        "HGETALL mqtt:node:<node>"
    );
    let status = b.client_status(&id).await.expect("status").expect("some");
    assert_eq!(status.offline_at, None, "`undefined` reads back as None");
    b.client_offline(&client, Timestamp::from_secs(1_481_685_924))
        .await
        .expect("client_offline");
    assert_eq!(
        hgetall(&mut c, &keys::client(&id)).await,
        [
            "state",
            "0",
            "online_at",
            "1481685802",
            "offline_at",
            "1481685924",
            "node",
            &node
        ],
        "HGETALL mqtt:client:<id> after disconnecting"
    );
    assert!(
        hgetall(&mut c, &keys::node(&node)).await.is_empty(),
        "an offline client leaves its node's hash"
    );

    // Reconnecting on another node moves it between node hashes.
    let other = unique("emqx@10.0.0.2");
    b.client_online(&client, Timestamp::from_secs(1_481_690_000))
        .await
        .expect("online");
    b.client_online(
        &ClientInfo::new(id.clone(), other.clone()),
        Timestamp::from_secs(1_481_690_001),
    )
    .await
    .expect("online elsewhere");
    assert!(hgetall(&mut c, &keys::node(&node)).await.is_empty());
    assert_eq!(
        hgetall(&mut c, &keys::node(&other)).await,
        [id.as_str(), "1481690001"]
    );
    let _: () = cmd(
        &mut c,
        &[
            b"DEL",
            keys::client(&id).as_bytes(),
            keys::node(&other).as_bytes(),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_status_written_by_plain_commands_is_read() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let id = unique("plain-status");
    let key = keys::client(&id);
    let _: () = cmd(
        &mut c,
        &[
            b"HMSET",
            key.as_bytes(),
            b"state",
            b"1",
            b"online_at",
            b"1481685802",
            b"offline_at",
            b"undefined",
        ],
    )
    .await;
    let s = b.client_status(&id).await.expect("status").expect("some");
    assert!(s.online);
    assert_eq!(s.online_at, Some(Timestamp::from_secs(1_481_685_802)));
    assert_eq!(s.offline_at, None);
    assert_eq!(s.node, "", "the seed's hash has no node");
    let _: () = cmd(&mut c, &[b"HSET", key.as_bytes(), b"state", b"maybe"]).await;
    let e = b.client_status(&id).await.expect_err("a bad state");
    assert_eq!(e.kind(), backend_core::ErrorKind::Data);
    assert!(e.to_string().contains(&key), "{e}");
    let _: () = cmd(&mut c, &[b"DEL", key.as_bytes()]).await;
}

#[tokio::test]
async fn subscription_hash_as_the_seed_shows_it() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let id = unique("test");
    b.store_subscriptions(
        &id,
        &[
            Subscription::new("topic1", QoS::AtLeastOnce),
            Subscription::new("topic2", QoS::ExactlyOnce),
        ],
    )
    .await
    .expect("store");
    assert_eq!(
        hgetall(&mut c, &keys::sub(&id)).await,
        ["topic1", "1", "topic2", "2"],
        "HGETALL mqtt:sub:test"
    );
    // The seed's own way of adding one: HSET "mqtt:sub:test" "topic3" 0.
    let _: () = cmd(
        &mut c,
        &[b"HSET", keys::sub(&id).as_bytes(), b"topic3", b"0"],
    )
    .await;
    assert_eq!(
        b.lookup_subscriptions(&id).await.expect("lookup"),
        vec![
            Subscription::new("topic1", QoS::AtLeastOnce),
            Subscription::new("topic2", QoS::ExactlyOnce),
            Subscription::new("topic3", QoS::AtMostOnce),
        ]
    );
    let _: () = cmd(&mut c, &[b"DEL", keys::sub(&id).as_bytes()]).await;
}

fn seed_message(topic: &str, retain: bool) -> Message {
    let mut m = Message::new("test", topic, QoS::AtLeastOnce, "Hello world!").retained(retain);
    m.timestamp = Timestamp::from_secs(1_481_690_659);
    m
}

#[tokio::test]
async fn retained_hash_as_the_seed_shows_it() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let topic = unique("topic");
    let m = seed_message(&topic, true);
    b.store_retained(std::slice::from_ref(&m), Default::default())
        .await
        .expect("store_retained");
    assert_eq!(
        hgetall(&mut c, &keys::retain(&topic)).await,
        [
            "id",
            &m.id,
            "from",
            "test",
            "qos",
            "1",
            "topic",
            &topic,
            "retain",
            "1",
            "payload",
            "Hello world!",
            "ts",
            "1481690659"
        ],
        "HGETALL mqtt:retain:<topic>"
    );
    let score: Option<f64> = cmd(
        &mut c,
        &[
            b"ZSCORE",
            keys::retain_topics().as_bytes(),
            topic.as_bytes(),
        ],
    )
    .await;
    assert_eq!(score, Some(0.0), "the topic is in the retained index");
    b.delete_retained(std::slice::from_ref(&topic))
        .await
        .expect("delete");
    let exists: i64 = cmd(&mut c, &[b"EXISTS", keys::retain(&topic).as_bytes()]).await;
    assert_eq!(exists, 0);
    let score: Option<f64> = cmd(
        &mut c,
        &[
            b"ZSCORE",
            keys::retain_topics().as_bytes(),
            topic.as_bytes(),
        ],
    )
    .await;
    assert_eq!(score, None, "deleting leaves the index");
}

#[tokio::test]
async fn a_retained_hash_written_like_the_seed_is_read_and_reindexed() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let root = unique("seedret");
    let topic = format!("{root}/topic");
    // Exactly the seed's example, as another tool would write it.
    let _: () = cmd(
        &mut c,
        &[
            b"HMSET",
            keys::retain(&topic).as_bytes(),
            b"id",
            b"6P9NLcJ65VXBbC22sYb4",
            b"from",
            b"test",
            b"qos",
            b"1",
            b"topic",
            topic.as_bytes(),
            b"retain",
            b"true",
            b"payload",
            b"Hello world!",
            b"ts",
            b"1481690659",
        ],
    )
    .await;
    let got = b.lookup_retained(&topic).await.expect("exact lookup");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, "6P9NLcJ65VXBbC22sYb4");
    assert!(got[0].retain);
    assert_eq!(&got[0].payload[..], b"Hello world!");
    let wild = format!("{root}/+");
    assert!(
        b.lookup_retained(&wild).await.expect("wildcard").is_empty(),
        "not indexed yet"
    );
    let stats = b.rebuild_indexes().await.expect("rebuild");
    assert!(stats.retained_topics >= 1, "{stats:?}");
    assert_eq!(b.lookup_retained(&wild).await.expect("wildcard").len(), 1);
    // A hash deleted by hand leaves the index on the next wildcard lookup.
    let _: () = cmd(&mut c, &[b"DEL", keys::retain(&topic).as_bytes()]).await;
    assert!(b.lookup_retained(&wild).await.expect("wildcard").is_empty());
    let score: Option<f64> = cmd(
        &mut c,
        &[
            b"ZSCORE",
            keys::retain_topics().as_bytes(),
            topic.as_bytes(),
        ],
    )
    .await;
    assert_eq!(score, None, "the dangling index entry was removed");
}

#[tokio::test]
async fn message_hash_topic_set_and_sequence() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let topic = unique("msgs");
    let msgs = [
        seed_message(&topic, false),
        seed_message(&topic, false),
        seed_message(&topic, false),
    ];
    b.store_messages(&msgs, Default::default())
        .await
        .expect("store");
    assert_eq!(
        hgetall(&mut c, &keys::msg(&msgs[0].id)).await,
        [
            "id",
            &msgs[0].id,
            "from",
            "test",
            "qos",
            "1",
            "topic",
            &topic,
            "retain",
            "0",
            "payload",
            "Hello world!",
            "ts",
            "1481690659"
        ],
        "HGETALL mqtt:msg:<msgid>"
    );
    let ttl: i64 = cmd(&mut c, &[b"TTL", keys::msg(&msgs[0].id).as_bytes()]).await;
    assert!(
        ttl > 7000 && ttl <= 7200,
        "expires after the default 7200 s: {ttl}"
    );
    let set: Vec<(String, f64)> = cmd(
        &mut c,
        &[
            b"ZRANGE",
            keys::msg_topic(&topic).as_bytes(),
            b"0",
            b"-1",
            b"WITHSCORES",
        ],
    )
    .await;
    let ids: Vec<&str> = set.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(ids, msgs.iter().map(|m| m.id.as_str()).collect::<Vec<_>>());
    assert!(
        set.windows(2).all(|w| w[1].1 == w[0].1 + 1.0),
        "consecutive sequence numbers within one batch, never a constant: {set:?}"
    );
    let seq: i64 = cmd(&mut c, &[b"GET", keys::msg_seq().as_bytes()]).await;
    assert!(seq as f64 >= set[2].1, "scores come from mqtt:msg_seq");
    let ttl: i64 = cmd(&mut c, &[b"TTL", keys::msg_topic(&topic).as_bytes()]).await;
    assert!(
        ttl > 7000,
        "the topic set lives as long as its newest message"
    );
    let score: Option<f64> = cmd(
        &mut c,
        &[b"ZSCORE", keys::msg_topics().as_bytes(), topic.as_bytes()],
    )
    .await;
    assert_eq!(score, Some(0.0), "the topic is in the message-topic index");

    // Queue acks delete the hash and the member; the last one the index entry.
    b.ack_messages(
        OfflineMode::Queue,
        &msgs
            .iter()
            .map(|m| Ack {
                client_id: "q".into(),
                topic: topic.clone(),
                message_id: m.id.clone(),
            })
            .collect::<Vec<_>>(),
    )
    .await
    .expect("ack");
    let exists: i64 = cmd(
        &mut c,
        &[
            b"EXISTS",
            keys::msg(&msgs[0].id).as_bytes(),
            keys::msg_topic(&topic).as_bytes(),
        ],
    )
    .await;
    assert_eq!(exists, 0);
    let score: Option<f64> = cmd(
        &mut c,
        &[b"ZSCORE", keys::msg_topics().as_bytes(), topic.as_bytes()],
    )
    .await;
    assert_eq!(score, None);
}

#[tokio::test]
async fn pubsub_positions_in_acked_keys() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let root = unique("acked");
    let filter = format!("{root}/+");
    let topic = format!("{root}/a");
    let client = unique("sub");
    let req = FetchRequest {
        client_id: client.clone(),
        filter: filter.clone(),
        mode: OfflineMode::Pubsub,
        max_count: None,
        since: None,
        page: None,
    };
    assert!(b.fetch_messages(&req).await.expect("first").is_empty());
    let start: i64 = cmd(&mut c, &[b"GET", keys::acked(&client, &filter).as_bytes()]).await;
    let seq: i64 = cmd(&mut c, &[b"GET", keys::msg_seq().as_bytes()]).await;
    assert!(start <= seq, "the start is a sequence value");
    let msgs = [seed_message(&topic, false), seed_message(&topic, false)];
    b.store_messages(&msgs, Default::default())
        .await
        .expect("store");
    assert_eq!(b.fetch_messages(&req).await.expect("fetch").len(), 2);
    b.ack_messages(
        OfflineMode::Pubsub,
        &[Ack {
            client_id: client.clone(),
            topic: topic.clone(),
            message_id: msgs[0].id.clone(),
        }],
    )
    .await
    .expect("ack");
    let score: f64 = cmd(
        &mut c,
        &[
            b"ZSCORE",
            keys::msg_topic(&topic).as_bytes(),
            msgs[0].id.as_bytes(),
        ],
    )
    .await;
    let acked: String = cmd(&mut c, &[b"GET", keys::acked(&client, &topic).as_bytes()]).await;
    assert_eq!(
        acked,
        (score as i64).to_string(),
        "the acked message's score"
    );
    // An older ack never moves the position back.
    let _: () = cmd(
        &mut c,
        &[
            b"SET",
            keys::acked(&client, &topic).as_bytes(),
            b"999999999999",
        ],
    )
    .await;
    b.ack_messages(
        OfflineMode::Pubsub,
        &[Ack {
            client_id: client.clone(),
            topic: topic.clone(),
            message_id: msgs[1].id.clone(),
        }],
    )
    .await
    .expect("ack");
    let acked: String = cmd(&mut c, &[b"GET", keys::acked(&client, &topic).as_bytes()]).await;
    assert_eq!(acked, "999999999999");
}

/// The seed's Redis configuration, verbatim but for the server address and
/// database, run through the engine.
#[tokio::test]
async fn the_seeds_configuration_end_to_end() {
    let t = common::target();
    // query_mode = sync: each hook's writes are in Redis when it returns,
    // which this test reads directly.
    let mut text = format!(
        "backend.redis.pool1.server = {}:{}\nbackend.redis.pool1.pool_size = 8\nbackend.redis.pool1.database = {}\nbackend.redis.pool1.channel = mqtt_channel\nbackend.redis.pool1.query_mode = sync\n",
        t.host, t.port, t.db
    );
    if let Some(p) = &t.password {
        text.push_str(&format!("backend.redis.pool1.password = {p}\n"));
    }
    text.push_str(
        r##"
## Expired after seconds, if =< 0 take the default value
backend.redis.msg.expired_after = 3600
backend.redis.hook.client.connected.1    = {"action": {"function": "on_client_connected"}, "pool": "pool1"}
backend.redis.hook.client.connected.2    = {"action": {"function": "on_subscribe_lookup"}, "pool": "pool1"}
backend.redis.hook.client.disconnected.1 = {"action": {"function": "on_client_disconnected"}, "pool": "pool1"}
backend.redis.hook.session.subscribed.1  = {"topic": "queue/#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}
backend.redis.hook.session.subscribed.2  = {"topic": "pubsub/#", "action": {"function": "on_message_fetch_for_pubsub"}, "pool": "pool1"}
backend.redis.hook.session.subscribed.3  = {"action": {"function": "on_retain_lookup"}, "pool": "pool1"}
backend.redis.hook.session.unsubscribed.1= {"topic": "#", "action": {"commands": ["DEL mqtt:acked:${clientid}:${topic}"]}, "pool": "pool1"}
backend.redis.hook.message.publish.1     = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}
backend.redis.hook.message.publish.2     = {"topic": "#", "action": {"function": "on_message_retain"}, "pool": "pool1"}
backend.redis.hook.message.publish.3     = {"topic": "#", "action": {"function": "on_retain_delete"}, "pool": "pool1"}
backend.redis.hook.message.acked.1       = {"topic": "queue/#", "action": {"function": "on_message_acked_for_queue"}, "pool": "pool1"}
backend.redis.hook.message.acked.2       = {"topic": "pubsub/#", "action": {"function": "on_message_acked_for_pubsub"}, "pool": "pool1"}
backend.redis.hook.client.connected.3 = {"action": {"commands": ["SET conn:${clientid} ${clientid}"]}, "pool": "pool1"}
"##,
    );
    let conf = Config::parse(&text).expect("the seed's configuration parses");
    let pools = backend_redis::connect_pools(&conf)
        .await
        .expect("connect pools");
    let engine = Engine::new(&conf, &pools).expect("engine");
    let mut c = common::plain().await;
    let u = unique("seed");
    let client = format!("{u}-client");

    // client.connected: status, proxy subscriptions, the raw SET.
    let _: () = cmd(
        &mut c,
        &[
            b"HSET",
            keys::sub(&client).as_bytes(),
            format!("pubsub/{u}/#").as_bytes(),
            b"1",
        ],
    )
    .await;
    let out = engine
        .on_client_connected(&ClientConnected {
            client: ClientInfo::new(client.clone(), "emqx@127.0.0.1"),
            timestamp: Timestamp::now(),
        })
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        out.output,
        vec![Subscription::new(format!("pubsub/{u}/#"), QoS::AtLeastOnce)]
    );
    let conn: String = cmd(&mut c, &[b"GET", format!("conn:{client}").as_bytes()]).await;
    assert_eq!(conn, client);

    let subscribe = |filter: String| SessionSubscribed {
        client: backend_core::ClientInfo::new(client.as_str(), "node1"),
        filter,
        qos: QoS::AtLeastOnce,
    };
    let pubsub_filter = format!("pubsub/{u}/#");
    let queue_filter = format!("queue/{u}/#");
    // First pubsub subscription: the start is recorded, nothing returned.
    let out = engine
        .on_session_subscribed(&subscribe(pubsub_filter.clone()))
        .await;
    assert!(out.errors.is_empty() && out.output.offline.is_empty());

    let p1 = Message::new("pub", format!("pubsub/{u}/a"), QoS::AtLeastOnce, "p1");
    let p2 = Message::new("pub", format!("pubsub/{u}/b"), QoS::ExactlyOnce, "p2");
    let q1 = Message::new("pub", format!("queue/{u}/a"), QoS::AtLeastOnce, "q1");
    let r1 = Message::new("pub", format!("queue/{u}/r"), QoS::AtMostOnce, "r1").retained(true);
    for m in [&p1, &p2, &q1, &r1] {
        let out = engine.on_message_publish(m).await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
    }
    let out = engine
        .on_session_subscribed(&subscribe(pubsub_filter.clone()))
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let ids: Vec<&str> = out.output.offline.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [p1.id.as_str(), p2.id.as_str()]);
    let out = engine
        .on_session_subscribed(&subscribe(queue_filter.clone()))
        .await;
    let ids: Vec<&str> = out.output.offline.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [q1.id.as_str()], "QoS 0 r1 is not stored");
    assert_eq!(out.output.retained.len(), 1, "r1 is retained");

    // Acks: pubsub moves the position, queue deletes.
    for m in [&p1, &q1] {
        let out = engine
            .on_message_acked(&MessageDelivery::of(m, client.clone()))
            .await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
    }
    let out = engine
        .on_session_subscribed(&subscribe(pubsub_filter.clone()))
        .await;
    let ids: Vec<&str> = out.output.offline.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [p2.id.as_str()], "p1 acked");
    let out = engine
        .on_session_subscribed(&subscribe(queue_filter.clone()))
        .await;
    assert!(out.output.offline.is_empty(), "q1 deleted");

    // Unsubscribing runs the seed's "Delete Ack" raw rule: the position
    // starts afresh at the next subscription.
    let out = engine
        .on_session_unsubscribed(&SessionUnsubscribed {
            client: backend_core::ClientInfo::new(client.as_str(), "node1"),
            filter: pubsub_filter.clone(),
        })
        .await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let exists: i64 = cmd(
        &mut c,
        &[b"EXISTS", keys::acked(&client, &pubsub_filter).as_bytes()],
    )
    .await;
    assert_eq!(exists, 0);
    let out = engine
        .on_session_subscribed(&subscribe(pubsub_filter.clone()))
        .await;
    assert!(out.output.offline.is_empty(), "a new start");
    let p3 = Message::new("pub", format!("pubsub/{u}/a"), QoS::AtLeastOnce, "p3");
    assert!(engine.on_message_publish(&p3).await.errors.is_empty());
    let out = engine
        .on_session_subscribed(&subscribe(pubsub_filter.clone()))
        .await;
    let ids: Vec<&str> = out.output.offline.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [p3.id.as_str()]);
    assert!(
        engine.metrics().iter().all(|m| m.failed == 0),
        "{:?}",
        engine.metrics()
    );

    // Cleanup of what is not under a unique prefix of its own.
    let _: () = cmd(
        &mut c,
        &[
            b"DEL",
            format!("conn:{client}").as_bytes(),
            keys::retain(&r1.topic).as_bytes(),
        ],
    )
    .await;
    let _: () = cmd(
        &mut c,
        &[
            b"ZREM",
            keys::retain_topics().as_bytes(),
            r1.topic.as_bytes(),
        ],
    )
    .await;
}

/// A message stored again replaces its hash's fields: a `props` field the
/// new copy lacks goes, and under another topic only the new topic's fetch
/// returns it (the old set's member, now naming another topic, is dropped
/// by the read).
#[tokio::test]
async fn a_message_stored_again_replaces_its_hash() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let again = backend_core::WriteOptions {
        again: true,
        ..Default::default()
    };
    let topic = unique("again");
    let mut m = seed_message(&topic, false);
    m.properties.content_type = Some("text/plain".into());
    b.store_messages(std::slice::from_ref(&m), Default::default())
        .await
        .expect("store");
    let fields = hgetall(&mut c, &keys::msg(&m.id)).await;
    assert!(
        fields.iter().any(|f| f == "props"),
        "stored with properties: {fields:?}"
    );

    let mut plain = m.clone();
    plain.properties = Default::default();
    plain.payload = "second".into();
    b.store_messages(std::slice::from_ref(&plain), again)
        .await
        .expect("store again");
    let fields = hgetall(&mut c, &keys::msg(&m.id)).await;
    assert!(
        !fields.iter().any(|f| f == "props"),
        "the copy without properties leaves none: {fields:?}"
    );
    assert!(fields.iter().any(|f| f == "second"), "{fields:?}");

    let other = unique("again-other");
    let mut moved = plain.clone();
    moved.topic = other.clone();
    b.store_messages(std::slice::from_ref(&moved), again)
        .await
        .expect("store under another topic");
    let old = b
        .fetch_messages(&FetchRequest::new("c", topic.as_str(), OfflineMode::Queue))
        .await
        .expect("fetch old topic");
    assert!(old.is_empty(), "nothing left under the old topic: {old:?}");
    let left: i64 = cmd(&mut c, &[b"ZCARD", keys::msg_topic(&topic).as_bytes()]).await;
    assert_eq!(left, 0, "the read dropped the old topic's member");
    let new = b
        .fetch_messages(&FetchRequest::new("c", other.as_str(), OfflineMode::Queue))
        .await
        .expect("fetch new topic");
    assert_eq!(new.len(), 1, "once, under its new topic: {new:?}");
    assert_eq!(new[0].payload, moved.payload);
}
