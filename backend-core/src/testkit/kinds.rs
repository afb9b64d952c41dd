//! Stand-ins for the five backend crates' kinds, for core's own tests and
//! examples, which link no backend crate. Each crate declares its real
//! kind (`backend_redis::KIND`, …); where both are linked, the crate's is
//! the one [`crate::Config::parse`] uses. Each of the five checks that
//! its stand-in here is the same declaration ([`assert_stand_in_matches`]),
//! so the two never drift apart.

use crate::backend::Capabilities;
use crate::config::{KeySpec, KeyType::*, KindRegistration, KindSpec, StatementLanguage};
use crate::template::Placeholders;
use crate::BackendKind;

/// Shaped as `backend.redis.*`.
pub const REDIS: BackendKind = BackendKind::declare(&KindSpec {
    name: "redis",
    pool_prefix: "redis",
    pool_keys: &[
        KeySpec::new("server", Text).with_default("127.0.0.1:6379"),
        KeySpec::new("sentinel", Text),
        KeySpec::new("pool_size", Count).with_default("8"),
        KeySpec::new("database", Int).with_default("0"),
        KeySpec::new("username", Text),
        KeySpec::new("password", Secret),
        KeySpec::new("channel", Text),
        KeySpec::new("type", OneOf(&["single", "sentinel", "cluster"])).with_default("single"),
        KeySpec::new("replica_acks", Natural).with_default("0"),
    ],
    global_keys: &[KeySpec::new("msg.expired_after", Int).with_default("7200")],
    statements: Some(StatementLanguage::Commands),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_channel()
        .with_admin()
        .with_sweep(),
});

/// Shaped as `backend.mysql.*`.
pub const MYSQL: BackendKind = BackendKind::declare(&KindSpec {
    name: "mysql",
    pool_prefix: "mysql",
    pool_keys: &[
        KeySpec::new("server", Text).with_default("127.0.0.1:3306"),
        KeySpec::new("pool_size", Count).with_default("8"),
        KeySpec::new("user", Text).with_default("root"),
        KeySpec::new("password", Secret),
        KeySpec::new("database", Text).with_default("mqtt"),
        KeySpec::new("create_tables", Bool).with_default("false"),
    ],
    global_keys: &[],
    statements: Some(StatementLanguage::Sql(Placeholders::Question)),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_admin()
        .with_sweep(),
});

/// Shaped as `backend.pgsql.*`.
pub const PGSQL: BackendKind = BackendKind::declare(&KindSpec {
    name: "pgsql",
    pool_prefix: "pgsql",
    pool_keys: &[
        KeySpec::new("server", Text).with_default("127.0.0.1:5432"),
        KeySpec::new("pool_size", Count).with_default("8"),
        KeySpec::new("username", Text).with_default("root"),
        KeySpec::new("password", Secret),
        KeySpec::new("database", Text).with_default("mqtt"),
        KeySpec::new("create_tables", Bool).with_default("false"),
    ],
    global_keys: &[],
    statements: Some(StatementLanguage::Sql(Placeholders::Numbered)),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_admin()
        .with_sweep(),
});

/// Shaped as `backend.mongo.*`.
pub const MONGO: BackendKind = BackendKind::declare(&KindSpec {
    name: "mongo",
    pool_prefix: "mongo",
    pool_keys: &[
        KeySpec::new("type", OneOf(&["single", "unknown", "sharded", "rs"])).with_default("single"),
        KeySpec::new("rs_set_name", Text),
        KeySpec::new("server", Text).with_default("127.0.0.1:27017"),
        KeySpec::new("c_pool_size", Count),
        KeySpec::new("database", Text).with_default("mqtt"),
        KeySpec::new("login", Text),
        KeySpec::new("password", Secret),
        KeySpec::new("auth_source", Text),
        KeySpec::new("w_mode", OneOf(&["safe", "unsafe"])).with_default("safe"),
        KeySpec::new("r_mode", OneOf(&["master", "slave_ok"])).with_default("master"),
    ],
    global_keys: &[
        KeySpec::new("topology.pool_size", Int),
        KeySpec::new("topology.max_overflow", Int),
        KeySpec::new("topology.overflow_ttl", Int),
        KeySpec::new("topology.overflow_check_period", Int),
        KeySpec::new("topology.local_threshold_ms", Int),
        KeySpec::new("topology.connect_timeout_ms", Int),
        KeySpec::new("topology.socket_timeout_ms", Int),
        KeySpec::new("topology.server_selection_timeout_ms", Int),
        KeySpec::new("topology.wait_queue_timeout_ms", Int),
        KeySpec::new("topology.heartbeat_frequency_ms", Int),
        KeySpec::new("topology.min_heartbeat_frequency_ms", Int),
    ],
    statements: None,
    capabilities: Capabilities::NONE
        .with_payload_format()
        .with_admin()
        .with_sweep(),
});

/// Shaped as `backend.cassa.*`, with pools under `backend.ecql.*`.
pub const CASSA: BackendKind = BackendKind::declare(&KindSpec {
    name: "cassa",
    pool_prefix: "ecql",
    pool_keys: &[
        KeySpec::new("nodes", Text).with_default("127.0.0.1:9042"),
        KeySpec::new("size", Count).with_default("8"),
        KeySpec::new("auto_reconnect", Bool).with_default("true"),
        KeySpec::new("username", Text),
        KeySpec::new("password", Secret),
        KeySpec::new("keyspace", Text).with_default("mqtt"),
        KeySpec::new(
            "logger",
            OneOf(&["debug", "info", "notice", "warning", "error", "critical"]),
        ),
        KeySpec::new("create_tables", Bool).with_default("true"),
        KeySpec::new(
            "consistency",
            OneOf(&[
                "any",
                "one",
                "two",
                "three",
                "quorum",
                "all",
                "local_quorum",
                "each_quorum",
                "local_one",
            ]),
        ),
        KeySpec::new("connect_timeout", Millis).with_default("5s"),
        KeySpec::new("request_timeout", Millis).with_default("10s"),
        KeySpec::new("server_name_indication", Text),
    ],
    global_keys: &[],
    statements: Some(StatementLanguage::Cql),
    capabilities: Capabilities::NONE
        .with_raw_statements()
        .with_admin()
        .with_sweep(),
});

inventory::submit! { KindRegistration { kind: REDIS, stand_in: true } }
inventory::submit! { KindRegistration { kind: MYSQL, stand_in: true } }
inventory::submit! { KindRegistration { kind: PGSQL, stand_in: true } }
inventory::submit! { KindRegistration { kind: MONGO, stand_in: true } }
inventory::submit! { KindRegistration { kind: CASSA, stand_in: true } }

/// Asserts that the stand-in of `kind`'s name declares exactly what
/// `kind` does: its prefix, pool and global keys (types and defaults),
/// statement language and capabilities. A backend crate with a stand-in
/// calls it from a test.
pub fn assert_stand_in_matches(kind: BackendKind) {
    let stand_in = [REDIS, MYSQL, PGSQL, MONGO, CASSA]
        .into_iter()
        .find(|k| k.name() == kind.name())
        .unwrap_or_else(|| panic!("no stand-in of `{}`", kind.name()));
    let (real, mirror) = (kind.spec(), stand_in.spec());
    assert_eq!(real.pool_prefix, mirror.pool_prefix, "pool prefix");
    assert_eq!(real.pool_keys, mirror.pool_keys, "pool keys of `{}`", kind);
    assert_eq!(
        real.global_keys, mirror.global_keys,
        "global keys of `{}`",
        kind
    );
    assert_eq!(
        real.statements, mirror.statements,
        "statements of `{}`",
        kind
    );
    assert_eq!(
        real.capabilities, mirror.capabilities,
        "capabilities of `{}`",
        kind
    );
}
