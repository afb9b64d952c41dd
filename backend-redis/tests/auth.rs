//! Passwords and ACL users against a Redis that requires them (started by
//! the test on port 6393 under `target/`): the right credentials work, wrong
//! ones fail with a configuration error, and no password ever shows in an
//! error, a `Debug` or the listener.

mod common;

use backend_core::testkit::OrPanic;
use std::time::Duration;

use backend_core::config::PoolConfig;
use backend_core::{Backend, Bytes, Config, ErrorKind, Statement};
use backend_redis::{RedisBackend, RedisError};

const PORT: u16 = 6393;
const PASSWORD: &str = "default-pw-7f3a9c";
const BOB_PASSWORD: &str = "bob-pw-51e0d2";

fn pool(extra: &[(&str, &str)]) -> PoolConfig {
    let mut p = PoolConfig::new(backend_redis::KIND, "auth");
    p.set("server", &format!("127.0.0.1:{PORT}"))
        .expect("server");
    p.set("channel", "auth-channel").expect("channel");
    for (k, v) in extra {
        p.set(k, v).or_panic(k);
    }
    p
}

async fn connect(extra: &[(&str, &str)]) -> Result<RedisBackend, RedisError> {
    RedisBackend::connect(&pool(extra), &Config::new(backend_redis::KIND)).await
}

fn assert_hidden(text: &str) {
    for secret in [PASSWORD, BOB_PASSWORD, "wrong-pw-0b7c"] {
        assert!(!text.contains(secret), "a password shows in: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_acl_users() {
    let dir = common::scratch_dir("auth");
    let server = common::Server::start(
        "redis-server",
        "redis-auth",
        PORT,
        &dir,
        &[
            "--port".into(),
            PORT.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--requirepass".into(),
            PASSWORD.into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
        ],
    );
    let b = common::eventually(Duration::from_secs(10), || {
        connect(&[("password", PASSWORD)])
    })
    .await
    .unwrap_or_else(|e| panic!("connect with the password: {e}\n{}", server.log_tail()));
    assert_hidden(&format!("{b:?}"));
    assert_hidden(&format!("{:?}", b.settings()));

    // An ACL user, created through the backend's raw commands.
    let cmd = |args: &[&str]| Statement::Command {
        args: args.iter().map(|a| Bytes::from(a.to_string())).collect(),
    };
    b.execute(&cmd(&[
        "ACL",
        "SETUSER",
        "bob",
        "on",
        &format!(">{BOB_PASSWORD}"),
        "~*",
        "&*",
        "+@all",
    ]))
    .await
    .expect("ACL SETUSER");
    let bob = connect(&[("username", "bob"), ("password", BOB_PASSWORD)])
        .await
        .expect("connect as bob");
    let who = bob.execute(&cmd(&["ACL", "WHOAMI"])).await.expect("whoami");
    assert_eq!(who[0][0].as_str(), Some("bob"));
    let mut l = bob.listen().expect("listen as bob");
    assert!(l.wait_subscribed(Duration::from_secs(10)).await);
    assert_hidden(&format!("{l:?}"));
    b.execute(&cmd(&[
        "PUBLISH",
        "auth-channel",
        r#"{"type":"unsubscribe","topic":"t","clientid":"c"}"#,
    ]))
    .await
    .expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(10), l.recv())
        .await
        .expect("in time")
        .expect("running");
    assert_eq!(got.client_id(), "c");

    // Wrong or missing credentials: a configuration error, password hidden.
    for extra in [
        vec![("password", "wrong-pw-0b7c")],
        vec![("username", "bob"), ("password", "wrong-pw-0b7c")],
    ] {
        let e = connect(&extra).await.expect_err("wrong password");
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert_hidden(&e.to_string());
        assert_hidden(&format!("{e:?}"));
        let be: backend_core::BackendError = e.into();
        assert!(!be.is_retryable());
        assert_hidden(&format!("{be} {be:?}"));
    }
    let e = connect(&[]).await.expect_err("no password");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("NOAUTH"), "{e}");
    assert_hidden(&format!("{e} {e:?}"));
    drop(server);
}
