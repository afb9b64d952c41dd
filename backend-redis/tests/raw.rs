//! Raw `commands`: one request, each argument its own bulk string, and the
//! reply shaped as one row like `MemoryBackend` shapes it.

mod common;

use backend_core::testkit::unique;
use backend_core::{Backend, Bytes, ErrorKind, MemoryBackend, Statement, Value};

fn command(args: &[&[u8]]) -> Statement {
    Statement::Command {
        args: args.iter().map(|a| Bytes::copy_from_slice(a)).collect(),
    }
}

async fn row(b: &dyn Backend, args: &[&[u8]]) -> Vec<Value> {
    let rows = b
        .execute(&command(args))
        .await
        .unwrap_or_else(|e| panic!("{} on {}: {e}", String::from_utf8_lossy(args[0]), b.name()));
    assert_eq!(rows.len(), 1, "one row");
    rows.into_iter().next().unwrap_or_default()
}

/// The same commands give the same rows on Redis and on MemoryBackend.
#[tokio::test]
async fn replies_are_shaped_like_the_memory_backends() {
    let redis = common::backend().await;
    let memory = MemoryBackend::new();
    let k = unique("raw-shape");
    let (s, h, l, set, none) = (
        format!("{k}:s"),
        format!("{k}:h"),
        format!("{k}:l"),
        format!("{k}:set"),
        format!("{k}:none"),
    );
    let script: Vec<Vec<&[u8]>> = vec![
        vec![b"GET", s.as_bytes()],
        vec![b"SET", s.as_bytes(), b"41"],
        vec![b"INCR", s.as_bytes()],
        vec![b"GET", s.as_bytes()],
        vec![b"HSET", h.as_bytes(), b"f", b"v", b"g", b"w"],
        vec![b"HGET", h.as_bytes(), b"f"],
        vec![b"HMGET", h.as_bytes(), b"g", b"nope"],
        vec![b"HGETALL", none.as_bytes()],
        vec![b"RPUSH", l.as_bytes(), b"x", b"y", b"z"],
        vec![b"LRANGE", l.as_bytes(), b"-2", b"-1"],
        vec![b"SADD", set.as_bytes(), b"m"],
        vec![b"SMEMBERS", set.as_bytes()],
        vec![b"EXISTS", s.as_bytes(), h.as_bytes(), b"nope"],
        vec![
            b"DEL",
            s.as_bytes(),
            h.as_bytes(),
            l.as_bytes(),
            set.as_bytes(),
        ],
    ];
    for args in &script {
        let r = row(&redis, args).await;
        let m = row(&memory, args).await;
        assert_eq!(r, m, "{}", String::from_utf8_lossy(args[0]));
    }
    assert_eq!(
        row(&redis, &[b"PING"]).await,
        vec![Value::Text("PONG".into())]
    );
    let r = row(&redis, &[b"HGETALL", h.as_bytes()]).await;
    assert!(r.is_empty(), "an empty array is an empty row");
}

#[tokio::test]
async fn hostile_arguments_stay_single_arguments() {
    let b = common::backend().await;
    let k = unique("raw-hostile");
    let value: &[u8] = b"a b\r\nDEL x\r\n*1\r\n$4\r\nPING\r\n\x00 \"'";
    assert_eq!(
        row(&b, &[b"SET", k.as_bytes(), value]).await,
        vec![Value::Text("OK".into())]
    );
    assert_eq!(
        row(&b, &[b"GET", k.as_bytes()]).await,
        vec![Value::Bytes(Bytes::copy_from_slice(value))]
    );
    let _ = row(&b, &[b"DEL", k.as_bytes()]).await;
}

#[tokio::test]
async fn errors_and_refused_commands() {
    let b = common::backend().await;
    let k = unique("raw-err");
    let _ = row(&b, &[b"SET", k.as_bytes(), b"x"]).await;
    let e = b
        .execute(&command(&[b"HGET", k.as_bytes(), b"f"]))
        .await
        .expect_err("WRONGTYPE");
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    assert!(e.to_string().contains("WRONGTYPE"), "{e}");
    let e = b
        .execute(&command(&[b"NOSUCHCOMMAND"]))
        .await
        .expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::Query, "{e}");
    for refused in [
        &[b"SELECT".as_slice(), b"2"][..],
        &[b"multi"],
        &[b"SUBSCRIBE", b"ch"],
        &[b"CLIENT", b"REPLY", b"OFF"],
    ] {
        let e = b.execute(&command(refused)).await.expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    }
    // CLIENT subcommands that leave the connection as it is run.
    assert!(matches!(
        row(&b, &[b"CLIENT", b"ID"]).await.as_slice(),
        [Value::Int(_)]
    ));
    // The connection still reads the test database afterwards.
    assert_eq!(
        row(&b, &[b"GET", k.as_bytes()]).await,
        vec![Value::Bytes(Bytes::from_static(b"x"))]
    );
    let e = b
        .execute(&Statement::Query {
            text: "select 1".into(),
            params: vec![],
        })
        .await
        .expect_err("SQL");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let _ = row(&b, &[b"DEL", k.as_bytes()]).await;
}

/// A batch of many messages is one pipelined round trip: the server sees
/// one command (the store script) for the whole batch.
#[tokio::test]
async fn a_batch_is_one_command() {
    let b = common::backend().await;
    let mut c = common::plain().await;
    let topic = unique("one-trip");
    let msgs: Vec<backend_core::Message> = (0..500)
        .map(|i| {
            backend_core::Message::new("p", &topic, backend_core::QoS::AtLeastOnce, format!("{i}"))
        })
        .collect();
    // Warm up: the script is loaded once per server.
    b.store_messages(&msgs[..1], Default::default())
        .await
        .expect("warm up");
    let calls = |info: String| -> u64 {
        info.lines()
            .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    let before: String = common::cmd(&mut c, &[b"INFO", b"commandstats"]).await;
    b.store_messages(&msgs, Default::default())
        .await
        .expect("store");
    let after: String = common::cmd(&mut c, &[b"INFO", b"commandstats"]).await;
    let n = calls(after) - calls(before);
    // Other test binaries do not run concurrently; tests of this binary
    // might, so allow a little noise but far fewer than 500.
    assert!((1..10).contains(&n), "{n} script calls for a batch of 500");
    let count: i64 = common::cmd(
        &mut c,
        &[b"ZCARD", backend_redis::keys::msg_topic(&topic).as_bytes()],
    )
    .await;
    assert_eq!(count, 500);
    let _: () = common::cmd(
        &mut c,
        &[b"DEL", backend_redis::keys::msg_topic(&topic).as_bytes()],
    )
    .await;
}
