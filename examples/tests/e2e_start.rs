//! Starting the broker without its database: it starts, takes QoS 1
//! publishes, and stores them once the database comes up; a wrong password
//! still fails at start, as does an unreachable database with
//! `--require-storage`. Needs `--features redis,pgsql`.
#![cfg(all(feature = "redis", feature = "pgsql"))]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::db::Db;
use common::{free_port, unique, Broker, Client};
use rumqttc::QoS;

/// A private redis-server on `port`, killed on drop.
struct PrivateRedis(std::process::Child);

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("redis-{port}"));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let child = Command::new(
            std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()),
        )
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); run scripts/services.sh redis to install it")
        });
        PrivateRedis(child)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_starts_without_its_database_and_stores_once_it_is_up() {
    let port = free_port();
    let db = Db::Redis {
        url: format!("redis://127.0.0.1:{port}"),
    };
    let args = db.broker_args("start-without-db", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let broker = Broker::start(&args).await;
    let client = Client::connect(broker.port, &unique("start-pub"), true).await;
    let topic = format!("queue/{}", unique("start"));
    for i in 0..5 {
        client
            .publish(&topic, QoS::AtLeastOnce, false, format!("m{i}").as_bytes())
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = broker.log_text();
    assert!(
        log.contains("starting without it") && log.contains("pool down"),
        "the broker says it started without its database:\n{log}"
    );
    let _redis = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}/1");
    let started = Instant::now();
    let stored = loop {
        let n: Option<i64> = async {
            let client = redis::Client::open(url.as_str()).ok()?;
            let mut c = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("ZCARD")
                .arg(format!("mqtt:msg:{topic}"))
                .query_async(&mut c)
                .await
                .ok()
        }
        .await;
        if n == Some(5) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the 5 messages published while Redis was down are not stored ({n:?}):\n{}",
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("stored {stored:?} after Redis came up");
    assert!(
        broker.log_text().contains("connected"),
        "{}",
        broker.log_text()
    );
}

/// Runs the broker to its exit (within 30 s); its status and log.
fn run_to_exit(args: &[String]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_broker"))
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the broker");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            return (status, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the broker did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_at_start_without_showing_it() {
    let db = Db::pgsql().await;
    let args = db.broker_args(
        "wrong-password",
        &["backend.pgsql.pool1.password = not-the-Pa55word".to_owned()],
    );
    let (status, log) = run_to_exit(&args);
    assert!(!status.success(), "{log}");
    assert!(log.contains("cannot start the pgsql backend"), "{log}");
    assert!(log.contains("password"), "says what is wrong: {log}");
    assert!(
        !log.contains("not-the-Pa55word"),
        "never prints the password: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_storage_fails_at_start_when_the_database_is_down() {
    let db = Db::Redis {
        url: format!("redis://127.0.0.1:{}", free_port()),
    };
    let mut args = db.broker_args("require-storage", &[]);
    args.push("--require-storage".into());
    let (status, log) = run_to_exit(&args);
    assert!(!status.success(), "{log}");
    assert!(log.contains("cannot start the redis backend"), "{log}");
}
