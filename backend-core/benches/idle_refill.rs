//! What the broker's once-a-second `Delivery::idle_refill` costs with many
//! connected clients, none of them stuck: every client connected and
//! subscribed to a stored topic, its backlog read whole. Beside it, the
//! baseline measured in the same run: copying every online client's id
//! into a set, a cost in proportion to all connected clients, which the
//! call avoids by looking only at clients whose backlog has stalled.
//!
//! `cargo bench -p mqtt-storage-core --bench idle_refill`

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::delivery::{Delivery, DeliveryConfig, SubscribeOptions};
use backend_core::{
    ClientConnected, ClientInfo, Config, Engine, MemoryBackend, QoS, SessionSubscribed, Timestamp,
};

const RULES: &str = r##"
backend.redis.pool1.server = 127.0.0.1:6379
backend.redis.hook.session.subscribed.1 = {"topic": "queue/#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}
backend.redis.hook.message.publish.1    = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}
"##;

/// Microseconds per call of `f`, over about `budget`.
async fn micros_per_call<F, Fut>(budget: Duration, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut calls = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        f().await;
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

async fn delivery_with(clients: usize) -> (Delivery, Vec<String>) {
    let conf = Config::parse(RULES).expect("rules");
    let engine =
        Arc::new(Engine::with_backend(&conf, Arc::new(MemoryBackend::new())).expect("engine"));
    let d = Delivery::new(engine, DeliveryConfig::default());
    let mut ids = Vec::with_capacity(clients);
    for i in 0..clients {
        let client = ClientInfo::new(format!("client-{i}"), "node1");
        let connect = ClientConnected {
            client: client.clone(),
            timestamp: Timestamp::now(),
        };
        d.connected(&connect, |_| {}).await;
        let sub = SessionSubscribed {
            client: client.clone(),
            filter: format!("queue/{i}"),
            qos: QoS::AtLeastOnce,
        };
        d.subscribed(&sub, SubscribeOptions::default()).await;
        ids.push(client.client_id.to_string());
    }
    (d, ids)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let budget = Duration::from_millis(500);
    println!("Delivery::idle_refill with every client connected and none stuck");
    println!(
        "{:>9}  {:>16}  {:>30}",
        "clients", "idle_refill µs", "baseline: copy the online ids µs"
    );
    for n in [1_000, 10_000, 100_000] {
        let (d, ids) = delivery_with(n).await;
        let refill = micros_per_call(budget, || async {
            assert!(d.idle_refill(Duration::ZERO).await.is_empty());
        })
        .await;
        let copy = micros_per_call(budget, || async {
            let online: HashSet<String> = ids.iter().cloned().collect();
            black_box(online.len());
        })
        .await;
        println!("{n:>9}  {refill:>16.1}  {copy:>30.1}");
    }
}
