//! A steady write load while a test disturbs the servers under a backend
//! (a node killed, slots moved, a node stopped): writers that store one
//! QoS 1 message at a time, count what was acknowledged, and afterwards the
//! check that every acknowledged message is stored, once.

use crate::testkit::OrPanic;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::{Backend, FetchRequest, WriteOptions};
use crate::config::OfflineMode;
use crate::message::{Message, QoS};

/// Writers storing messages through one backend until [`WriteLoad::finish`].
///
/// Each writer stores one message at a time on the topics in turn. A write
/// that fails must fail with a retryable error (a writer panics otherwise,
/// and `finish` reports it); it is counted, and after a pause the writer
/// goes on with a new message, as a publisher whose PUBLISH was not
/// acknowledged sends again.
#[derive(Debug)]
pub struct WriteLoad {
    acked: Arc<Mutex<Vec<Message>>>,
    failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

/// What a [`WriteLoad`] did, and the check of what is stored.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The messages whose write was acknowledged, in no particular order.
    pub acked: Vec<Message>,
    /// Writes that failed (with a retryable error).
    pub failures: u64,
}

/// What a fetch found of a [`LoadReport`]'s messages.
#[derive(Debug, Clone, Default)]
pub struct StoredCheck {
    /// Messages the fetch returned.
    pub fetched: usize,
    /// Distinct message ids among them (equal to `fetched` when each
    /// message is stored once).
    pub distinct: usize,
    /// Ids of acknowledged messages the fetch did not return.
    pub lost: Vec<String>,
}

impl WriteLoad {
    /// Starts `writers` writers on `topics` (at least one) on the current
    /// tokio runtime; `pause` is how long a writer waits after a failed
    /// write.
    pub fn start(
        backend: Arc<dyn Backend>,
        topics: Vec<String>,
        writers: usize,
        pause: Duration,
    ) -> WriteLoad {
        assert!(!topics.is_empty(), "a write load needs a topic");
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let topics = Arc::new(topics);
        let writers = (0..writers)
            .map(|w| {
                let (b, topics) = (Arc::clone(&backend), Arc::clone(&topics));
                let (acked, failures, stop) =
                    (Arc::clone(&acked), Arc::clone(&failures), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let topic = topics[(w + n) % topics.len()].as_str();
                        let m = Message::new("load", topic, QoS::AtLeastOnce, format!("{w}-{n}"));
                        n += 1;
                        let one = std::slice::from_ref(&m);
                        match b.store_messages(one, WriteOptions::default()).await {
                            Ok(()) => {
                                lock(&acked).push(m);
                                // A store that never waits (the memory
                                // backend) must not hold the thread.
                                tokio::task::yield_now().await;
                            }
                            Err(e) => {
                                assert!(e.is_retryable(), "a write failed for good: {e}");
                                failures.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(pause).await;
                            }
                        }
                    }
                })
            })
            .collect();
        WriteLoad {
            acked,
            failures,
            stop,
            writers,
        }
    }

    /// How many writes were acknowledged so far.
    pub fn acked(&self) -> usize {
        lock(&self.acked).len()
    }

    /// How many writes failed so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` writes are acknowledged in all, or panics
    /// after `within`, saying `what` did not happen.
    pub async fn wait_for_acked(&self, n: usize, within: Duration, what: &str) {
        let deadline = tokio::time::Instant::now() + within;
        while self.acked() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: {} of {n} writes acknowledged after {within:?}",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the writers and waits for them; panics if one panicked (a
    /// write that failed for good).
    pub async fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.writers {
            if let Err(e) = w.await {
                match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(e) => panic!("a writer did not finish: {e}"),
                }
            }
        }
        LoadReport {
            acked: std::mem::take(&mut *lock(&self.acked)),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}

impl LoadReport {
    /// Fetches `filter` (queue mode, everything) and compares what it
    /// returns with the acknowledged messages.
    pub async fn check_stored(&self, backend: &dyn Backend, filter: &str) -> StoredCheck {
        let request = FetchRequest {
            client_id: "load-check".into(),
            filter: filter.into(),
            mode: OfflineMode::Queue,
            max_count: None,
            since: None,
            page: None,
        };
        let got = backend
            .fetch_messages(&request)
            .await
            .or_panic(&format!("fetching {filter} after the load"));
        let stored: HashSet<&str> = got.iter().map(|m| m.id.as_str()).collect();
        StoredCheck {
            fetched: got.len(),
            distinct: stored.len(),
            lost: self
                .acked
                .iter()
                .filter(|m| !stored.contains(m.id.as_str()))
                .map(|m| m.id.clone())
                .collect(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_acknowledged_write_is_found_once() {
        let b: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let root = crate::testkit::unique("load");
        let topics = (0..3).map(|i| format!("{root}/{i}")).collect();
        let load = WriteLoad::start(Arc::clone(&b), topics, 2, Duration::from_millis(10));
        load.wait_for_acked(50, Duration::from_secs(10), "the memory backend")
            .await;
        let report = load.finish().await;
        assert!(report.acked.len() >= 50);
        assert_eq!(report.failures, 0);
        let check = report.check_stored(&*b, &format!("{root}/#")).await;
        assert!(check.lost.is_empty(), "{:?}", check.lost);
        assert_eq!(
            (check.fetched, check.distinct),
            (report.acked.len(), report.acked.len())
        );
        let other = report.check_stored(&*b, "elsewhere/#").await;
        assert_eq!(
            other.lost.len(),
            report.acked.len(),
            "a check that can fail"
        );
    }
}
