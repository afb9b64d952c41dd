//! Sentinel for real: the test starts a master (6390), a replica (6391) and
//! a Sentinel (26390, Debian's `redis-sentinel`) on loopback under
//! `target/`, connects through the Sentinel, forces a failover and checks
//! the backend and the channel listener then work against the new master.
//! The servers are killed when the test ends, however it ends.

mod common;

use backend_core::testkit::OrPanic;
use std::time::{Duration, Instant};

use backend_core::config::PoolConfig;
use backend_core::testkit::unique;
use backend_core::{Backend, Config, FetchRequest, Message, OfflineMode, QoS};
use backend_redis::{keys, RedisBackend, RedisSettings};
use common::{cmd, Server};

const MASTER: u16 = 6390;
const REPLICA: u16 = 6391;
const SENTINEL: u16 = 26390;
const NAME: &str = "backend-redis-test";
const WAIT: Duration = Duration::from_secs(30);

async fn local(port: u16) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .or_panic(&format!("client for {port}"));
    // WAIT below may take a second (replicas ack once a second): more than
    // the driver's default reply timeout.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .or_panic(&format!("connect to {port}"))
}

/// One command on a fresh connection; `None` on any error.
async fn try_cmd<T: redis::FromRedisValue>(port: u16, args: &[&[u8]]) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut c = client.get_multiplexed_async_connection().await.ok()?;
    let mut command = redis::Cmd::new();
    for a in args {
        command.arg(*a);
    }
    command.query_async(&mut c).await.ok()
}

fn data_server(dir: &std::path::Path, name: &str, port: u16, extra: &[&str]) -> Server {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        &data.display().to_string(),
        "--repl-diskless-sync-delay",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start("redis-server", name, port, dir, &args)
}

/// Polls `check` until it returns `Some`, or fails with `what`.
async fn until<T, F, Fut>(what: &str, servers: &[&Server], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = servers
                .iter()
                .map(|s| format!("---- {} ----\n{}", s.name, s.log_tail()))
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Publishes a subscribe command for `client` on the new master (6391)
/// every second until the listener hands one over; returns its client id.
async fn publish_until_received(
    listener: &mut backend_redis::ChannelListener,
    client: &str,
) -> Option<String> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let _: Option<i64> = try_cmd(
            REPLICA,
            &[
                b"PUBLISH",
                b"sentinel-channel",
                format!(r#"{{"type":"subscribe","topic":"t","clientid":"{client}","qos":1}}"#)
                    .as_bytes(),
            ],
        )
        .await;
        if let Ok(Some(cmd)) = tokio::time::timeout(Duration::from_secs(1), listener.recv()).await {
            return Some(cmd.client_id().to_owned());
        }
    }
    None
}

fn queue(filter: &str) -> FetchRequest {
    FetchRequest {
        client_id: "sentinel".into(),
        filter: filter.into(),
        mode: OfflineMode::Queue,
        max_count: None,
        since: None,
        page: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_replica() {
    let dir = common::scratch_dir("sentinel");
    let mut master = data_server(&dir, "master-6390", MASTER, &[]);
    let replica = data_server(
        &dir,
        "replica-6391",
        REPLICA,
        &["--replicaof", "127.0.0.1", &MASTER.to_string()],
    );
    common::wait_ping(&master, WAIT).await;
    common::wait_ping(&replica, WAIT).await;
    until("the replica to sync", &[&master, &replica], || async {
        let info: String = try_cmd(REPLICA, &[b"INFO", b"replication"]).await?;
        info.contains("master_link_status:up").then_some(())
    })
    .await;
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {SENTINEL}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {NAME} 127.0.0.1 {MASTER} 1\n\
             sentinel down-after-milliseconds {NAME} 1000\n\
             sentinel failover-timeout {NAME} 5000\n\
             sentinel parallel-syncs {NAME} 1\n",
            dir.display()
        ),
    )
    .expect("sentinel.conf");
    let sentinel = Server::start(
        "redis-sentinel",
        "sentinel-26390",
        SENTINEL,
        &dir,
        &[conf.display().to_string()],
    );
    common::wait_ping(&sentinel, WAIT).await;
    let all = [&master, &replica, &sentinel];
    until("the Sentinel to see the replica", &all, || async {
        let replicas: Vec<std::collections::HashMap<String, String>> =
            try_cmd(SENTINEL, &[b"SENTINEL", b"REPLICAS", NAME.as_bytes()]).await?;
        replicas
            .iter()
            .any(|r| r.get("flags").map(String::as_str) == Some("slave"))
            .then_some(())
    })
    .await;

    // The backend, through the Sentinel.
    let mut pool = PoolConfig::new(backend_redis::KIND, "sentinel");
    for (k, v) in [
        ("server", format!("127.0.0.1:{SENTINEL}")),
        ("sentinel", NAME.to_owned()),
        ("pool_size", "3".to_owned()),
        ("channel", "sentinel-channel".to_owned()),
    ] {
        pool.set(k, &v).or_panic(k);
    }
    let settings =
        RedisSettings::from_pool(&pool, &Config::new(backend_redis::KIND)).or_panic("settings");
    // The +switch-master events are followed at once; the periodic check
    // is the fallback, left at its default here.
    assert_eq!(settings.check_interval, Duration::from_secs(10));
    let b = RedisBackend::connect_with(settings)
        .await
        .or_panic("connect through the Sentinel");
    assert!(b.settings().target().contains(NAME));
    let mut listener = b.listen().expect("listen");
    assert!(listener.wait_subscribed(WAIT).await, "listener subscribed");
    let topic = unique("sentinel");
    let before = Message::new("p", &topic, QoS::AtLeastOnce, "before");
    b.store_messages(std::slice::from_ref(&before), Default::default())
        .await
        .expect("store on the first master");
    let mut m = local(MASTER).await;
    let exists: i64 = cmd(&mut m, &[b"EXISTS", keys::msg(&before.id).as_bytes()]).await;
    assert_eq!(exists, 1, "written to 6390, the master");
    let acked: i64 = cmd(&mut m, &[b"WAIT", b"1", b"5000"]).await;
    assert_eq!(acked, 1, "replicated before the failover");

    // Failover.
    let mut s = local(SENTINEL).await;
    let _: String = cmd(&mut s, &[b"SENTINEL", b"FAILOVER", NAME.as_bytes()]).await;
    let started = Instant::now();
    until("the replica to become the master", &all, || async {
        // Sentinel kills client connections during the failover: a failed
        // poll is just polled again.
        let addr: Vec<String> = try_cmd(
            SENTINEL,
            &[b"SENTINEL", b"GET-MASTER-ADDR-BY-NAME", NAME.as_bytes()],
        )
        .await?;
        let role: Vec<redis::Value> = try_cmd(REPLICA, &[b"ROLE"]).await?;
        let is_master = matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master");
        (addr.get(1).map(String::as_str) == Some("6391") && is_master).then_some(())
    })
    .await;
    let failover = started.elapsed();

    // The backend follows the Sentinels' +switch-master event: its
    // connections to the old master are dropped and its listener
    // resubscribes on the new one. The old master is demoted only seconds
    // later (when a Sentinel next reaches it); writes it took meanwhile
    // would be lost when it resynchronises, so following at once matters.
    until(
        "the listener to subscribe on the new master",
        &all,
        || async {
            let (_, n): (String, i64) =
                try_cmd(REPLICA, &[b"PUBSUB", b"NUMSUB", b"sentinel-channel"]).await?;
            (n == 1).then_some(())
        },
    )
    .await;
    let followed = started.elapsed();
    let old_role: Option<Vec<redis::Value>> = try_cmd(MASTER, &[b"ROLE"]).await;
    let old_still_master = matches!(
        old_role.as_deref().and_then(|r| r.first()),
        Some(redis::Value::BulkString(b)) if b == b"master"
    );

    // The first operation may meet a connection the failover broke (or one
    // answering READONLY), which it replaces and retries on.
    let after = Message::new("p", &topic, QoS::AtLeastOnce, "after");
    let mut attempts = 0;
    let stored = common::eventually(WAIT, || {
        attempts += 1;
        b.store_messages(std::slice::from_ref(&after), Default::default())
    })
    .await;
    stored.or_panic("store after the failover");
    assert!(
        attempts <= 3,
        "{attempts} attempts to store after the failover"
    );
    let exists: i64 = try_cmd(REPLICA, &[b"EXISTS", keys::msg(&after.id).as_bytes()])
        .await
        .expect("EXISTS on 6391");
    assert_eq!(exists, 1, "written to 6391, the new master");
    let got = b.fetch_messages(&queue(&topic)).await.expect("fetch");
    let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [before.id.as_str(), after.id.as_str()],
        "both, in order"
    );

    // The channel: published on the new master, received. Messages
    // published while the listener reconnects are lost (pub/sub keeps
    // nothing), so publish until one arrives.
    assert_eq!(
        publish_until_received(&mut listener, "one").await,
        Some("one".to_owned()),
        "the listener receives after the failover"
    );

    // Kill the old master: whatever was still connected to it reconnects
    // through the Sentinel to the new one.
    master.kill();
    let late = Message::new("p", &topic, QoS::AtLeastOnce, "late");
    common::eventually(WAIT, || {
        b.store_messages(std::slice::from_ref(&late), Default::default())
    })
    .await
    .or_panic("store with the old master gone");
    assert_eq!(
        b.fetch_messages(&queue(&topic)).await.expect("fetch").len(),
        3
    );
    assert_eq!(
        publish_until_received(&mut listener, "two").await,
        Some("two".to_owned()),
        "the listener follows the new master"
    );
    eprintln!(
        "sentinel: failover took {failover:?}; the backend followed after {followed:?} \
         (old master not yet demoted then: {old_still_master}); the store after it needed \
         {attempts} attempt(s); listener {:?}",
        listener.stats()
    );
    drop(listener);
    drop(b);
    drop(sentinel);
    drop(replica);
}
