//! The out-of-order commit, reproduced on purpose: a writer that has taken
//! its message id but not yet made the message visible, and a pubsub
//! reader that must not read (and ack) past it.
//!
//! A backend crate implements [`InFlightWriter`] with its own store path
//! stopped half-way (an open transaction in SQL, an id taken from the
//! counter but not yet inserted in MongoDB) and calls
//! [`reader_never_passes_a_writer_in_flight`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Ack, Backend, FetchRequest};
use crate::config::OfflineMode;
use crate::message::{Message, QoS};
use crate::testkit::unique;

/// A store stopped half-way.
#[async_trait]
pub trait InFlightWriter: Send {
    /// Stores `message` the way the backend does up to the point where it
    /// has its id but is not yet visible to readers, and stops there.
    async fn begin(&mut self, message: &Message);
    /// Lets the store finish: the message becomes visible.
    async fn finish(&mut self);
}

async fn fetch(b: &dyn Backend, client: &str, filter: &str) -> Vec<Message> {
    let req = FetchRequest {
        client_id: client.into(),
        filter: filter.into(),
        mode: OfflineMode::Pubsub,
        max_count: None,
        since: None,
        page: None,
    };
    match b.fetch_messages(&req).await {
        Ok(m) => m,
        Err(e) => panic!("fetch_messages failed: {e}"),
    }
}

/// A reader subscribes; a slow writer takes an id; the backend stores a
/// second message while the first is in flight; the reader fetches and
/// acks the newest it got; the slow writer finishes. The reader must get
/// both messages, each once, the first before the second. Without a guard
/// the reader gets (and acks) the second alone, which marks the first read
/// for good.
pub async fn reader_never_passes_a_writer_in_flight(
    backend: Arc<dyn Backend>,
    writer: &mut dyn InFlightWriter,
) {
    let root = unique("inflight");
    let topic = format!("{root}/t");
    let reader = format!("{root}-reader");
    assert!(
        fetch(&*backend, &reader, &topic).await.is_empty(),
        "the first fetch only marks the start"
    );
    let first = Message::new("slow", &topic, QoS::AtLeastOnce, "first");
    let second = Message::new("fast", &topic, QoS::AtLeastOnce, "second");
    writer.begin(&first).await;
    let store = {
        let (b, m) = (Arc::clone(&backend), second.clone());
        tokio::spawn(async move { b.store_messages(&[m], Default::default()).await })
    };
    // Time for the second store to land, if the backend lets it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_before = fetch(&*backend, &reader, &topic).await;
    if let Some(newest) = got_before.last() {
        let ack = Ack {
            client_id: reader.clone(),
            topic: newest.topic.clone(),
            message_id: newest.id.clone(),
        };
        if let Err(e) = backend.ack_messages(OfflineMode::Pubsub, &[ack]).await {
            panic!("ack_messages failed: {e}");
        }
    }
    writer.finish().await;
    match tokio::time::timeout(Duration::from_secs(30), store).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => panic!("storing the second message failed: {e}"),
        Ok(Err(e)) => panic!("the store task failed: {e}"),
        Err(_) => panic!("storing the second message did not finish within 30 s of the first"),
    }
    let got_after = fetch(&*backend, &reader, &topic).await;
    let payloads: Vec<String> = got_before
        .iter()
        .chain(&got_after)
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(
        payloads,
        ["first", "second"],
        "before the slow writer finished the reader got {:?}, after it {:?}",
        got_before
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload))
            .collect::<Vec<_>>(),
        got_after
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload))
            .collect::<Vec<_>>(),
    );
}
