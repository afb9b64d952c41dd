//! The SUB/UNSUB channel against the live Redis.

mod common;

use std::time::Duration;

use backend_core::testkit::unique;
use backend_core::{Config, ErrorKind, QoS};
use backend_redis::{ChannelCommand, ChannelStats};
use common::cmd;
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

async fn publish(c: &mut redis::aio::MultiplexedConnection, channel: &str, message: &str) {
    let receivers: i64 = cmd(c, &[b"PUBLISH", channel.as_bytes(), message.as_bytes()]).await;
    assert_eq!(receivers, 1, "one listener on {channel}");
}

async fn next(l: &mut backend_redis::ChannelListener) -> ChannelCommand {
    tokio::time::timeout(WAIT, l.recv())
        .await
        .expect("a command within 10 s")
        .expect("the listener is running")
}

async fn numsub(c: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = cmd(c, &[b"PUBSUB", b"NUMSUB", channel.as_bytes()]).await;
    n
}

#[tokio::test]
async fn subscribe_unsubscribe_and_malformed_messages() {
    let channel = unique("mqtt_channel");
    let b = common::backend_with(&[("channel", &channel)], &Config::new(backend_redis::KIND)).await;
    let mut listener = b.listen().expect("listen");
    assert_eq!(listener.channel(), channel);
    assert!(listener.wait_subscribed(WAIT).await, "subscribed");
    let mut c = common::plain().await;

    // The seed's two examples, verbatim.
    publish(
        &mut c,
        &channel,
        r#"{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": "0"}"#,
    )
    .await;
    assert_eq!(
        next(&mut listener).await,
        ChannelCommand::Subscribe {
            client_id: "test".into(),
            topic: "topic0".into(),
            qos: QoS::AtMostOnce
        }
    );
    publish(
        &mut c,
        &channel,
        r#"{"type": "unsubscribe", "topic": "test_topic0", "clientid": "test"}"#,
    )
    .await;
    assert_eq!(
        next(&mut listener).await,
        ChannelCommand::Unsubscribe {
            client_id: "test".into(),
            topic: "test_topic0".into()
        }
    );

    // Malformed messages are counted and skipped; the next good one arrives.
    for bad in [
        "not json at all",
        r#"{"type": "publish", "topic": "t", "clientid": "c"}"#,
        r#"{"type": "subscribe", "topic": "t", "clientid": "c", "qos": 7}"#,
        r#"{"type": "subscribe", "topic": "a/#/b", "clientid": "c"}"#,
    ] {
        publish(&mut c, &channel, bad).await;
    }
    publish(
        &mut c,
        &channel,
        r#"{"type": "subscribe", "topic": "sensors/+/temp", "clientid": "c2", "qos": 2}"#,
    )
    .await;
    // As a Stream too.
    let cmd = tokio::time::timeout(WAIT, listener.next())
        .await
        .expect("in time")
        .expect("running");
    assert_eq!(
        cmd,
        ChannelCommand::Subscribe {
            client_id: "c2".into(),
            topic: "sensors/+/temp".into(),
            qos: QoS::ExactlyOnce
        }
    );
    assert_eq!(
        listener.stats(),
        ChannelStats {
            received: 7,
            commands: 3,
            malformed: 4,
            connections: 1
        }
    );

    // Dropping the listener ends its subscription.
    assert_eq!(numsub(&mut c, &channel).await, 1);
    drop(listener);
    let gone = common::eventually(WAIT, || {
        let mut c = c.clone();
        let channel = channel.clone();
        async move {
            match numsub(&mut c, &channel).await {
                0 => Ok(()),
                n => Err(n),
            }
        }
    })
    .await;
    assert_eq!(gone, Ok(()), "no subscriber left after drop");
}

#[tokio::test]
async fn listening_needs_a_channel() {
    let b = common::backend().await;
    let e = b.listen().expect_err("no channel configured");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("channel"), "{e}");
    // listen_to works with any name.
    let l = b.listen_to(unique("other")).expect("listen_to");
    assert!(l.wait_subscribed(WAIT).await);
}
