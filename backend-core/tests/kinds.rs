//! Open backend kinds: a kind declared outside core (here, in this test)
//! is read by `Config::parse` once registered, its keys checked as its
//! declaration says, and the engine decides by its capabilities: a kind
//! without `sweep` gets no sweeper.

use std::sync::Arc;

use backend_core::backend::Capabilities;
use backend_core::config::{KeySpec, KeyType, KindSpec, ProblemKind, Setting};
use backend_core::{BackendKind, Config, Engine, MemoryBackend};

/// A backend kind no crate of the workspace declares.
const PLAIN: BackendKind = BackendKind::declare(&KindSpec {
    name: "plainstore",
    pool_prefix: "plainstore",
    pool_keys: &[KeySpec::new("dir", KeyType::Text).with_default("/var/lib/plain")],
    global_keys: &[KeySpec::new("shard.count", KeyType::Count)],
    statements: None,
    // Rules only: no raw statements, no removal by age.
    capabilities: Capabilities::NONE,
});

const CONF: &str = "backend.plainstore.pool1.dir = /tmp/plain\n\
    backend.plainstore.shard.count = 4\n\
    backend.plainstore.time_range = 1h\n\
    backend.plainstore.hook.message.publish.1 = {\"topic\": \"#\", \"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\"}\n";

#[test]
fn an_unregistered_kind_is_refused_then_read_once_registered() {
    // Registration is process-wide: the refusal is checked on a name
    // nothing here registers.
    let e = Config::parse("backend.nosuchstore.pool1.dir = /tmp\n").unwrap_err();
    assert!(
        e.problems().iter().any(
            |p| matches!(&p.kind, ProblemKind::UnknownBackend { name, .. } if name == "nosuchstore")
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("no backend `nosuchstore` is linked"),
        "{e}"
    );

    PLAIN.register();
    PLAIN.register(); // twice is once
    assert_eq!(BackendKind::named("plainstore"), Some(PLAIN));
    let conf = Config::parse(CONF).expect("a registered kind parses");
    assert_eq!(conf.kind(), PLAIN);
    assert_eq!(conf.pools()["pool1"].text("dir"), Some("/tmp/plain"));
    assert_eq!(conf.global("shard.count"), Some(&Setting::Int(4)));
    assert_eq!(
        PLAIN.pool_key("dir").and_then(|k| k.default),
        Some("/var/lib/plain")
    );
    // The common keys come with every kind; the kind's own are checked.
    assert!(PLAIN.pool_key("batch_size").is_some());
    let bad = Config::parse("backend.plainstore.pool1.dirr = x\n").unwrap_err();
    assert!(bad.to_string().contains("did you mean `dir`"), "{bad}");
    let bad =
        Config::parse("backend.plainstore.shard.count = 0\nbackend.plainstore.pool1.dir = x\n")
            .unwrap_err();
    assert!(bad.to_string().contains("at least 1"), "{bad}");
    // No statement language: raw statements are refused at parse.
    let raw = Config::parse(
        "backend.plainstore.pool1.dir = x\n\
         backend.plainstore.hook.client.connected.1 = {\"action\": {\"sql\": [\"select 1\"]}, \"pool\": \"pool1\"}\n",
    )
    .unwrap_err();
    assert!(raw.to_string().contains("built-in functions only"), "{raw}");
}

#[tokio::test]
async fn a_kind_without_sweep_gets_no_sweeper() {
    PLAIN.register();
    let conf = Config::parse(CONF).expect("parses");
    let engine =
        Arc::new(Engine::with_backend(&conf, Arc::new(MemoryBackend::new())).expect("engine"));
    assert!(engine.sweep_metrics().is_empty(), "no pool is swept");
    assert!(engine.sweep().await.is_empty());
    assert!(engine
        .spawn_sweeper(std::time::Duration::from_millis(10))
        .is_none());
    // The same rules on a kind with `sweep` are swept.
    let swept = Config::parse(
        "backend.redis.pool1.server = x\n\
         backend.redis.time_range = 1h\n\
         backend.redis.hook.message.publish.1 = {\"topic\": \"#\", \"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\"}\n",
    )
    .expect("parses");
    let engine = Engine::with_backend(&swept, Arc::new(MemoryBackend::new())).expect("engine");
    assert_eq!(engine.sweep_metrics().len(), 1);
}
