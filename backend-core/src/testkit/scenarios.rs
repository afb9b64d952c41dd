//! The scenarios of the conformance suite: each checks one part of the
//! behaviour contract ([`crate::contract`]) through the [`Backend`] trait, or
//! through an [`Engine`] over it where the contract is the engine's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;

use super::{unique, Ctx};
use crate::backend::{Ack, Backend, ErrorKind, FetchRequest};
use crate::config::{ActionJson, Config, ConfigSpec, OfflineMode, RuleJson, RuleSpec};
use crate::engine::Engine;
use crate::hook::{ClientInfo, Event, Hook, SessionSubscribed};
use crate::message::{Message, QoS, Subscription, Timestamp};
use crate::template::{Statement, Template};
use crate::value::Value;

mod clients;
mod concurrency;
mod hostile;
mod limits;
mod offline;
mod retained;
mod sweep;
mod through_engine;

pub use clients::*;
pub use concurrency::*;
pub use hostile::*;
pub use limits::*;
pub use offline::*;
pub use retained::*;
pub use sweep::*;
pub use through_engine::*;

fn msg(sender: &str, topic: &str, qos: QoS, payload: impl Into<Bytes>) -> Message {
    Message::new(sender, topic, qos, payload)
}

fn request(client: &str, filter: &str, mode: OfflineMode) -> FetchRequest {
    FetchRequest {
        client_id: client.to_owned(),
        filter: filter.to_owned(),
        mode,
        max_count: None,
        since: None,
        page: None,
    }
}

async fn fetch(b: &dyn Backend, client: &str, filter: &str, mode: OfflineMode) -> Vec<Message> {
    match b.fetch_messages(&request(client, filter, mode)).await {
        Ok(m) => m,
        Err(e) => panic!("fetch_messages({client}, {filter}, {mode:?}) failed: {e}"),
    }
}

async fn store(b: &dyn Backend, msgs: &[Message]) {
    if let Err(e) = b.store_messages(msgs, Default::default()).await {
        panic!("store_messages failed: {e}");
    }
}

async fn ack(b: &dyn Backend, mode: OfflineMode, client: &str, msgs: &[&Message]) {
    let acks: Vec<Ack> = msgs
        .iter()
        .map(|m| Ack {
            client_id: client.to_owned(),
            topic: m.topic.clone(),
            message_id: m.id.clone(),
        })
        .collect();
    if let Err(e) = b.ack_messages(mode, &acks).await {
        panic!("ack_messages({mode:?}) failed: {e}");
    }
}

fn ids(msgs: &[Message]) -> Vec<&str> {
    msgs.iter().map(|m| m.id.as_str()).collect()
}

/// Asserts the returned messages are `want`, in order, field for field
/// (times are compared to the second, since some stores keep no more).
fn assert_same(got: &[Message], want: &[&Message], what: &str) {
    let got_ids = ids(got);
    let want_ids: Vec<&str> = want.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got_ids, want_ids, "{what}: message ids");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.topic, w.topic, "{what}: topic of {}", w.id);
        assert_eq!(g.sender, w.sender, "{what}: sender of {}", w.id);
        assert_eq!(g.qos, w.qos, "{what}: qos of {}", w.id);
        assert!(
            g.payload == w.payload,
            "{what}: payload of {} differs ({} vs {} bytes)",
            w.id,
            g.payload.len(),
            w.payload.len()
        );
        assert_eq!(
            g.timestamp.as_secs(),
            w.timestamp.as_secs(),
            "{what}: timestamp of {}",
            w.id
        );
        assert_eq!(g.properties, w.properties, "{what}: properties of {}", w.id);
    }
}

fn function_rule(hook: Hook, topic: Option<&str>, function: &str) -> RuleSpec {
    RuleSpec {
        hook,
        index: None,
        rule: RuleJson {
            topic: topic.map(str::to_owned),
            action: ActionJson {
                function: Some(function.to_owned()),
                ..ActionJson::default()
            },
            pool: "pool1".into(),
            payload_format: None,
        },
    }
}

/// An engine with the seed's Redis rules (queue and pubsub under `root`).
fn seed_engine(backend: Arc<dyn Backend>, root: &str) -> Engine {
    let mut spec = ConfigSpec::new(crate::testkit::kinds::REDIS);
    spec.pools.insert("pool1".into(), BTreeMap::new());
    spec.rules = vec![
        function_rule(
            Hook::SessionSubscribed,
            Some(&format!("{root}/queue/#")),
            "on_message_fetch_for_queue",
        ),
        function_rule(
            Hook::SessionSubscribed,
            Some(&format!("{root}/pubsub/#")),
            "on_message_fetch_for_pubsub",
        ),
        function_rule(Hook::SessionSubscribed, None, "on_retain_lookup"),
        function_rule(Hook::MessagePublish, Some("#"), "on_message_publish"),
        function_rule(Hook::MessagePublish, Some("#"), "on_message_retain"),
        function_rule(Hook::MessagePublish, Some("#"), "on_retain_delete"),
        function_rule(
            Hook::MessageAcked,
            Some(&format!("{root}/queue/#")),
            "on_message_acked_for_queue",
        ),
        function_rule(
            Hook::MessageAcked,
            Some(&format!("{root}/pubsub/#")),
            "on_message_acked_for_pubsub",
        ),
    ];
    let config = match Config::from_spec(spec) {
        Ok(c) => c,
        Err(e) => panic!("the suite's own config is invalid: {e}"),
    };
    match Engine::with_backend(&config, backend) {
        Ok(e) => e,
        Err(e) => panic!("cannot build the engine: {e}"),
    }
}
