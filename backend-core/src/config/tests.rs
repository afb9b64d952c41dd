use std::time::Duration;

use super::*;
use crate::template::StatementTemplate;
use proptest::prelude::*;

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text) {
        Ok(c) => panic!("expected errors, parsed {c:?}"),
        Err(e) => e.problems().to_vec(),
    }
}

const POOL: &str = "backend.redis.pool1.server = 127.0.0.1:6379\n";

#[test]
fn rules_are_ordered_by_hook_then_number() {
    let text = format!(
        "{POOL}backend.redis.hook.message.publish.10 = {{\"topic\": \"#\", \"action\": {{\"function\": \"on_message_publish\"}}, \"pool\": \"pool1\"}}
backend.redis.hook.message.publish.2 = {{\"action\": {{\"function\": \"on_message_retain\"}}, \"pool\": \"pool1\"}}
backend.redis.hook.client.connected.1 = {{\"action\": {{\"function\": \"on_client_connected\"}}, \"pool\": \"pool1\"}}"
    );
    let c = Config::parse(&text).unwrap();
    let order: Vec<(Hook, u32)> = c.rules().iter().map(|r| (r.hook, r.index)).collect();
    assert_eq!(
        order,
        vec![
            (Hook::ClientConnected, 1),
            (Hook::MessagePublish, 2),
            (Hook::MessagePublish, 10)
        ]
    );
    assert_eq!(c.rules()[0].line, Some(4));
    assert_eq!(c.rules()[2].topic.as_deref(), Some("#"));
}

#[test]
fn globals() {
    let c = Config::parse(&format!(
        "{POOL}backend.redis.max_returned_count = 500\nbackend.redis.time_range = 2h\nbackend.redis.msg.expired_after = 0\n"
    ))
    .unwrap();
    assert_eq!(c.limits().max_returned_count, Some(500));
    assert_eq!(c.limits().time_range, Some(Duration::from_secs(7200)));
    assert_eq!(c.global("msg.expired_after"), Some(&Setting::Int(0)));
    let c = Config::parse(&format!(
        "{POOL}backend.redis.max_returned_count = infinity\nbackend.redis.time_range = infinity\nbackend.redis.msg.expired_after = 3600\n"
    ))
    .unwrap();
    assert_eq!(c.limits(), Limits::default());
    assert_eq!(c.global("msg.expired_after"), Some(&Setting::Int(3600)));
    let p = problems(&format!(
        "{POOL}backend.redis.time_range = 2x\nbackend.redis.max_returned_count = -1\n"
    ));
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].line, Some(2));
    assert!(p[0].to_string().contains("bad duration `2x`"), "{}", p[0]);
    assert!(p[1].to_string().contains("bad number `-1`"), "{}", p[1]);
}

#[test]
fn every_error_names_line_and_key() {
    let text = "\
backend.pgsql.pool1.server = 127.0.0.1:5432
backend.pgsql.pool1.pool_size = eight
backend.pgsql.pool1.servr = x
backend.pgsql.hook.client.conected.1 = {\"action\": {\"function\": \"on_client_connected\"}, \"pool\": \"pool1\"}
backend.pgsql.hook.client.connected.1 = {\"action\": {\"function\": \"on_client_conected\"}, \"pool\": \"pool1\"}
backend.pgsql.hook.client.connected.2 = {\"action\": {\"function\": \"on_retain_lookup\"}, \"pool\": \"pool1\"}
backend.pgsql.hook.client.connected.3 = {\"action\": {\"sql\": [\"insert into t values(${payload})\"]}, \"pool\": \"pool1\"}
backend.pgsql.hook.client.connected.4 = {\"action\": {\"function\": \"on_client_connected\"}, \"pool\": \"pool9\"}
backend.pgsql.hook.client.connected.5 = {\"action\": {\"commands\": [\"SET a b\"]}, \"pool\": \"pool1\"}
backend.pgsql.hook.client.connected.6 = {\"action\": {}, \"pool\": \"pool1\"}
backend.pgsql.hook.message.publish.1 = {\"topic\": \"a/#/b\", \"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\"}
backend.pgsql.hook.message.publish.2 = not json
backend.mysql.pool1.server = x
this is not a setting
backend.pgsql.hook.message.publish.3 = {\"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\", \"payload_format\": \"plain_text\"}
backend.pgsql.hook.message.publish.x = {\"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\"}
backend.pgsql.pool1.password = hunter2hunter2
backend.pgsql.pool1.ssl = maybe
backend.pgsql.hok.message.publish.4 = {}
";
    let p = problems(text);
    let lines: Vec<usize> = p.iter().filter_map(|p| p.line).collect();
    assert_eq!(
        lines,
        vec![2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19]
    );
    let msg: Vec<String> = p.iter().map(ToString::to_string).collect();
    let has = |line: usize, needle: &str| {
        let m = msg
            .iter()
            .find(|m| m.starts_with(&format!("line {line}: ")))
            .unwrap_or_else(|| panic!("no problem on line {line}: {msg:#?}"));
        assert!(m.contains(needle), "line {line}: `{m}` lacks `{needle}`");
    };
    has(2, "backend.pgsql.pool1.pool_size: bad value `eight`");
    has(3, "did you mean `server`?");
    has(
        4,
        "unknown hook `client.conected`; did you mean `client.connected`?",
    );
    has(
        5,
        "unknown function `on_client_conected`; did you mean `on_client_connected`?",
    );
    has(
        6,
        "function `on_retain_lookup` runs on session.subscribed, not client.connected",
    );
    has(
        7,
        "variable `${payload}` is not available in client.connected",
    );
    has(8, "pool `pool9` is not configured (configured: pool1)");
    has(
        9,
        "`commands` is not offered by the pgsql backend; its statements go in `sql`",
    );
    has(10, "exactly one of `function` or `sql`");
    has(11, "invalid topic filter `a/#/b`");
    has(12, "invalid JSON");
    has(
        13,
        "this configuration is for pgsql (from line 1), not mysql",
    );
    has(14, "expected `key = value`");
    has(15, "`payload_format` is not offered by the pgsql backend");
    has(16, "rule number `x` must be a whole number");
    has(18, "bad value `maybe`: expected true or false");
    has(19, "did you mean `backend.pgsql.hook.message.publish.4`?");
    assert!(!format!("{p:?}").contains("hunter2"));
}

#[test]
fn duplicates_name_both_lines_and_still_check_the_value() {
    let text = format!(
        "{POOL}backend.redis.hook.client.connected.1 = {{\"action\": {{\"function\": \"on_client_connected\"}}, \"pool\": \"pool1\"}}
backend.redis.hook.client.connected.1 = {{action\": {{}}}}
"
    );
    let p = problems(&text);
    assert_eq!(p.len(), 2, "{p:#?}");
    assert_eq!(
        p[0].to_string(),
        "line 3: backend.redis.hook.client.connected.1: duplicate key: also set on line 2"
    );
    assert!(p[1].to_string().starts_with("line 3: backend.redis.hook.client.connected.1: invalid JSON: key must be a string at column 2"), "{}", p[1]);
}

#[test]
fn secrets_are_never_printed() {
    let c = Config::parse("backend.mysql.pool1.password = public-secret\n").unwrap();
    assert_eq!(
        c.pools()["pool1"].secret("password").map(Secret::expose),
        Some("public-secret")
    );
    assert!(!format!("{c:?}").contains("public-secret"));
    let e = Config::parse(
        "backend.mysql.pool1.password = x\nbackend.mysql.pool1.password = public-secret\n",
    )
    .unwrap_err();
    assert!(!e.to_string().contains("public-secret"));
}

#[test]
fn kind_specific_keys() {
    let c = Config::parse(
        "backend.ecql.pool1.nodes = 127.0.0.1:9042\nbackend.ecql.pool1.auto_reconnect = 1\nbackend.cassa.time_range = 1d\n",
    )
    .unwrap();
    assert_eq!(c.kind(), crate::testkit::kinds::CASSA);
    assert_eq!(c.pools()["pool1"].bool("auto_reconnect"), Some(true));
    assert_eq!(c.limits().time_range, Some(Duration::from_secs(86_400)));
    let c = Config::parse("backend.mongo.pool1.type = rs\nbackend.mongo.topology.pool_size = 1\n")
        .unwrap();
    assert_eq!(c.global("topology.pool_size"), Some(&Setting::Int(1)));
    let p = problems("backend.mongo.pool1.type = cluster\nbackend.mongo.topology.poolsize = 1\nbackend.mysql.x = 1\n");
    assert!(p[0]
        .to_string()
        .contains("one of single, unknown, sharded, rs"));
    assert!(p[1]
        .to_string()
        .contains("did you mean `topology.pool_size`?"));
    let p = problems("backend.mysql.pool1.server = x\nbackend.mysql.msg.expired_after = 5\n");
    assert_eq!(p[0].line, Some(2));
    let p = problems("backend.mongo.pool1.server = x\nbackend.mongo.hook.client.connected.1 = {\"action\": {\"sql\": [\"x\"]}, \"pool\": \"pool1\"}\n");
    assert!(p[0]
        .to_string()
        .contains("its rules take built-in functions only"));
    assert_eq!(problems("")[0].kind, ProblemKind::Empty);
    assert!(problems("foo.bar = 1\n")[0]
        .to_string()
        .starts_with("line 1: foo.bar: unknown key"));
}

#[test]
fn functions_and_aliases() {
    for (name, f) in Function::NAMES {
        assert_eq!(name.parse::<Function>(), Ok(f));
        assert_eq!(
            f.name().parse::<Function>(),
            Ok(f),
            "canonical name of {name}"
        );
    }
    assert_eq!(
        "on_subscription_lookup".parse::<Function>(),
        Ok(Function::SubscribeLookup)
    );
    assert_eq!(
        "on_message_fetch".parse::<Function>(),
        Ok(Function::MessageFetch(OfflineMode::Pubsub))
    );
}

#[test]
fn serde_and_code_built_configs_are_checked_the_same_way() {
    let bad: Result<Config, _> = serde_json::from_str(
        r#"{"kind": "redis", "pools": {"pool1": {"pool_size": 0}},
            "rules": [{"hook": "client.connected", "action": {"function": "on_message_publish"}, "pool": "pool2"}]}"#,
    );
    let e = bad.unwrap_err().to_string();
    assert!(
        e.contains("backend.redis.pool1.pool_size: bad value `0`"),
        "{e}"
    );
    assert!(e.contains("backend.redis.hook.client.connected.1: function `on_message_publish` runs on message.publish"), "{e}");
    let mut spec = ConfigSpec::new(crate::testkit::kinds::MYSQL);
    spec.pools.insert(
        "p".into(),
        BTreeMap::from([("pool_size".to_owned(), serde_json::json!(4))]),
    );
    spec.max_returned_count = Some(CountSpec::Word("infinity".into()));
    spec.rules.push(RuleSpec {
        hook: Hook::MessagePublish,
        index: None,
        rule: RuleJson {
            topic: Some("t/#".into()),
            action: ActionJson {
                sql: Some(OneOrMany::One("insert into m(t) values(${topic})".into())),
                ..ActionJson::default()
            },
            pool: "p".into(),
            payload_format: None,
        },
    });
    let c = Config::from_spec(spec).unwrap();
    assert_eq!(c.rules()[0].index, 1);
    let Action::Statements(s) = &c.rules()[0].action else {
        panic!("statements")
    };
    let StatementTemplate::Query(q) = &s[0].compiled else {
        panic!("query")
    };
    assert_eq!(q.text(), "insert into m(t) values(?)");
    let mut pool = PoolConfig::new(crate::testkit::kinds::MYSQL, "p2");
    pool.set("server", "db:3306").unwrap();
    let c = Config::new(crate::testkit::kinds::MYSQL).with_pool(pool);
    assert_eq!(c.pools()["p2"].text("server"), Some("db:3306"));
}

/// Found by `parse_never_panics`: a duplicate of a key that names no
/// backend kind (here the empty key of `=`) was parsed as a `backend.` key
/// and sliced past its end.
#[test]
fn duplicate_of_a_key_without_kind_is_reported_not_parsed() {
    let p = problems("=\nbackend.redis.hook.client.connected.1 = {\n=");
    assert!(
        p.iter().any(
            |p| matches!(p.kind, ProblemKind::Duplicate { first_line: 1 }) && p.line == Some(3)
        ),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| matches!(p.kind, ProblemKind::InvalidJson(_)) && p.line == Some(2)),
        "{p:?}"
    );
    // Short keys of the right kind never index past their end either.
    for text in [
        "backend.redis = 1",
        "backend.redis. = 1",
        "backend.ecql = x",
        "backend.redis = 1\nbackend.redis = 2",
    ] {
        let _ = Config::parse(text);
    }
}

proptest! {
    #[test]
    fn parse_never_panics(lines in prop::collection::vec(
        prop_oneof![
            ".{0,30}".prop_map(|s| s),
            "[a-z.]{0,20} = .{0,20}".prop_map(|s| format!("backend.{s}")),
            "\\{.{0,40}".prop_map(|s| format!("backend.redis.hook.client.connected.1 = {s}")),
        ], 0..8)) {
        let _ = Config::parse(&lines.join("\n"));
    }
}
