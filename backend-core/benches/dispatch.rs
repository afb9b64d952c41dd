//! How much a hook costs when rules are picked: the filter trie against a
//! linear scan of `matches` over the same filters (the baseline, measured
//! in the same run), and a whole `Engine` hook call with no matching rule.
//!
//! `cargo bench -p mqtt-storage-core --bench dispatch`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend_core::config::{ActionJson, ConfigSpec, RuleJson, RuleSpec};
use backend_core::topic::{matches, FilterTrie};
use backend_core::{Config, Engine, Hook, MemoryBackend, Message, QoS};

/// Runs `f` repeatedly for about `budget` and returns nanoseconds per call.
fn time_per_call(budget: Duration, mut f: impl FnMut()) -> f64 {
    let mut iters: u64 = 1;
    loop {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let took = start.elapsed();
        if took >= budget {
            return took.as_nanos() as f64 / iters as f64;
        }
        iters = iters.saturating_mul(2);
    }
}

fn filters(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 4 {
            0 => format!("site/{i}/+/temp"),
            1 => format!("site/{i}/#"),
            2 => format!("fleet/{}/truck/{i}", i % 7),
            _ => format!("+/{i}/status"),
        })
        .collect()
}

fn main() {
    let budget = Duration::from_millis(300);
    let topic = "site/17/room-4/temp";
    let miss = "other/tree/entirely/x";
    println!("rule selection for one topic ({topic}); baseline = linear scan with topic::matches");
    println!(
        "{:>8}  {:>14}  {:>14}  {:>14}  {:>14}",
        "filters", "trie hit ns", "scan hit ns", "trie miss ns", "scan miss ns"
    );
    for n in [10, 100, 1_000, 10_000] {
        let fs = filters(n);
        let mut trie = FilterTrie::new();
        for (i, f) in fs.iter().enumerate() {
            trie.insert(f, i).expect("valid filter");
        }
        let trie_hit = time_per_call(budget, || {
            black_box(trie.matching(black_box(topic)).len());
        });
        let scan_hit = time_per_call(budget, || {
            black_box(fs.iter().filter(|f| matches(f, black_box(topic))).count());
        });
        let trie_miss = time_per_call(budget, || {
            black_box(trie.matching(black_box(miss)).len());
        });
        let scan_miss = time_per_call(budget, || {
            black_box(fs.iter().filter(|f| matches(f, black_box(miss))).count());
        });
        println!(
            "{n:>8}  {trie_hit:>14.1}  {scan_hit:>14.1}  {trie_miss:>14.1}  {scan_miss:>14.1}"
        );
    }

    // A whole hook call whose topic matches none of 1000 rules.
    let mut spec = ConfigSpec::new(backend_core::testkit::kinds::REDIS);
    spec.pools.insert("pool1".into(), Default::default());
    for f in filters(1_000) {
        spec.rules.push(RuleSpec {
            hook: Hook::MessagePublish,
            index: None,
            rule: RuleJson {
                topic: Some(f),
                action: ActionJson {
                    function: Some("on_message_publish".into()),
                    ..ActionJson::default()
                },
                pool: "pool1".into(),
                payload_format: None,
            },
        });
    }
    let config = Config::from_spec(spec).expect("valid config");
    let engine = Engine::with_backend(&config, Arc::new(MemoryBackend::new())).expect("engine");
    let msg = Message::new("bench", miss, QoS::AtLeastOnce, "x");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let per_hook = time_per_call(budget, || {
        rt.block_on(async {
            black_box(
                engine
                    .on_message_publish(black_box(&msg))
                    .await
                    .errors
                    .len(),
            )
        });
    });
    let per_block_on = time_per_call(budget, || {
        rt.block_on(async { black_box(0) });
    });
    println!();
    println!("Engine::on_message_publish, 1000 rules, none matching: {per_hook:.1} ns per call");
    println!("  of which the runtime's block_on alone (baseline): {per_block_on:.1} ns");
}
