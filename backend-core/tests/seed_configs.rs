//! The seed's configuration blocks, pasted verbatim, and the project's
//! `etc/` files parse; the seed's two mistakes are reported with their lines.

use backend_core::config::{Action, Function, OfflineMode, ProblemKind};
use backend_core::testkit::OrPanic;
use backend_core::{Config, Hook};

fn seed(kind: &str) -> String {
    let path = format!("{}/tests/seed/{kind}.conf", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).or_panic(&path)
}

fn etc(kind: &str) -> String {
    let path = format!(
        "{}/../etc/emqx_backend_{kind}.conf",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).or_panic(&path)
}

fn functions(c: &Config, hook: Hook) -> Vec<Function> {
    c.rules()
        .iter()
        .filter(|r| r.hook == hook)
        .filter_map(|r| match r.action {
            Action::Function(f) => Some(f),
            Action::Statements(_) => None,
        })
        .collect()
}

#[test]
fn seed_redis_mysql_pgsql_mongo_blocks_parse() {
    for (kind, expect, rules) in [
        ("redis", backend_core::testkit::kinds::REDIS, 13),
        ("mysql", backend_core::testkit::kinds::MYSQL, 11),
        ("pgsql", backend_core::testkit::kinds::PGSQL, 11),
        ("mongo", backend_core::testkit::kinds::MONGO, 9),
    ] {
        let c = Config::parse(&seed(kind)).unwrap_or_else(|e| panic!("seed {kind}:\n{e}"));
        assert_eq!(c.kind(), expect);
        assert_eq!(c.rules().len(), rules, "{kind} rules");
        assert!(c.pools().contains_key("pool1"));
    }
    let redis = Config::parse(&seed("redis")).unwrap();
    assert_eq!(
        redis.global("msg.expired_after"),
        Some(&backend_core::config::Setting::Int(3600))
    );
    assert_eq!(
        functions(&redis, Hook::SessionSubscribed),
        vec![
            Function::MessageFetch(OfflineMode::Queue),
            Function::MessageFetch(OfflineMode::Pubsub),
            Function::RetainLookup
        ]
    );
    assert_eq!(redis.pools()["pool1"].int("database"), Some(1));
    assert_eq!(redis.pools()["pool1"].text("channel"), Some("mqtt_channel"));
    let mongo = Config::parse(&seed("mongo")).unwrap();
    assert_eq!(mongo.pools()["pool1"].int("c_pool_size"), Some(8));
}

#[test]
fn seed_cassandra_block_reports_its_two_mistakes_with_lines() {
    let text = seed("cassa");
    let err = Config::parse(&text)
        .expect_err("the seed's Cassandra block has a missing quote and a duplicate key");
    let first = 1 + text
        .lines()
        .position(|l| l.contains("session.unsubscribed.1"))
        .unwrap();
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("session.unsubscribed.1"))
        .map(|(i, _)| i + 1)
        .last()
        .unwrap();
    assert_ne!(first, second);
    let problems = err.problems();
    assert_eq!(problems.len(), 2, "{err}");
    assert!(problems.iter().all(|p| p.line == Some(second)), "{err}");
    assert!(
        problems
            .iter()
            .any(|p| p.kind == ProblemKind::Duplicate { first_line: first }),
        "{err}"
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::InvalidJson(_))),
        "{err}"
    );
    let shown = err.to_string();
    assert!(shown.contains(&format!("line {second}: backend.cassa.hook.session.unsubscribed.1: duplicate key: also set on line {first}")), "{shown}");
    assert!(shown.contains(&format!("line {second}: backend.cassa.hook.session.unsubscribed.1: invalid JSON: key must be a string")), "{shown}");
}

#[test]
fn etc_files_parse() {
    for kind in ["redis", "mysql", "pgsql", "mongo", "cassa"] {
        let c = Config::parse(&etc(kind))
            .unwrap_or_else(|e| panic!("etc/emqx_backend_{kind}.conf:\n{e}"));
        assert_eq!(c.kind().name(), kind);
        assert!(!c.rules().is_empty());
    }
    let cassa = Config::parse(&etc("cassa")).unwrap();
    assert_eq!(
        functions(&cassa, Hook::ClientConnected),
        vec![Function::ClientConnected, Function::SubscribeLookup]
    );
    assert_eq!(cassa.pools()["pool1"].text("keyspace"), Some("mqtt"));
}
