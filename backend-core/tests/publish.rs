//! `message.publish` handed the message (`Engine::on_message_publish_owned`,
//! what `Delivery::published` calls): the last rule that reads it takes it,
//! and every rule still sees it. Stores, retains and deletes land as with
//! the borrowing call.

use std::sync::Arc;
use std::time::Duration;

use backend_core::{
    Backend, Config, Engine, FetchRequest, MemoryBackend, Message, OfflineMode, QoS,
};

const CONF: &str = "backend.redis.pool1.server = 127.0.0.1:6379\n\
    backend.redis.hook.message.publish.1 = {\"topic\": \"#\", \"action\": {\"function\": \"on_message_publish\"}, \"pool\": \"pool1\"}\n\
    backend.redis.hook.message.publish.2 = {\"topic\": \"#\", \"action\": {\"function\": \"on_message_retain\"}, \"pool\": \"pool1\"}\n\
    backend.redis.hook.message.publish.3 = {\"topic\": \"#\", \"action\": {\"function\": \"on_retain_delete\"}, \"pool\": \"pool1\"}\n";

fn queue(filter: &str) -> FetchRequest {
    FetchRequest::new("reader", filter, OfflineMode::Queue)
}

async fn engine() -> (Engine, Arc<MemoryBackend>) {
    let conf = Config::parse(CONF).expect("parses");
    let backend = Arc::new(MemoryBackend::new());
    let engine = Engine::with_backend(&conf, backend.clone()).expect("engine");
    (engine, backend)
}

#[tokio::test]
async fn an_owned_message_is_stored_retained_and_deleted_as_a_borrowed_one() {
    let (engine, backend) = engine().await;
    let plain = Message::new("pub", "t/plain", QoS::AtLeastOnce, "p");
    let retained = Message::new("pub", "t/kept", QoS::AtLeastOnce, "r").retained(true);
    let borrowed = Message::new("pub", "t/borrowed", QoS::AtLeastOnce, "b").retained(true);
    let outcomes = [
        engine.on_message_publish_owned(plain.clone()).await,
        engine.on_message_publish_owned(retained.clone()).await,
        engine.on_message_publish(&borrowed).await,
    ];
    for o in &outcomes {
        assert!(o.errors.is_empty(), "{:?}", o.errors);
    }
    assert_eq!(engine.flush(Duration::from_secs(5)).await, 0, "all landed");

    let stored = backend.fetch_messages(&queue("t/#")).await.expect("fetch");
    let mut ids: Vec<&str> = stored.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![
        plain.id.as_str(),
        retained.id.as_str(),
        borrowed.id.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(ids, want, "each QoS 1 message stored once");
    let kept = stored.iter().find(|m| m.id == retained.id).expect("kept");
    assert_eq!(kept, &retained, "stored whole");

    // The owned retained message reached both rules: stored above, and
    // retained here.
    let r = backend.lookup_retained("t/#").await.expect("lookup");
    let mut topics: Vec<&str> = r.iter().map(|m| m.topic.as_str()).collect();
    topics.sort_unstable();
    assert_eq!(topics, ["t/borrowed", "t/kept"]);

    // An owned empty retained message deletes (and is not stored).
    let delete = Message::new("pub", "t/kept", QoS::AtLeastOnce, "").retained(true);
    let o = engine.on_message_publish_owned(delete.clone()).await;
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(engine.flush(Duration::from_secs(5)).await, 0);
    let r = backend.lookup_retained("t/kept").await.expect("lookup");
    assert!(r.is_empty(), "deleted: {r:?}");
    let stored = backend
        .fetch_messages(&queue("t/kept"))
        .await
        .expect("fetch");
    assert!(stored.iter().all(|m| m.id != delete.id), "not stored");
}
