//! Late subscriptions, kept to what the client still wants: what a
//! subscription lookup answers after the CONNACK is applied only to the
//! connection that asked for it, and never over a filter the client has
//! subscribed or unsubscribed itself since.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::message::Subscription;

/// What each client did since its connect, while a late lookup of that
/// connect may still answer.
#[derive(Debug, Default)]
pub(super) struct LateWatches {
    next: AtomicU64,
    clients: Mutex<HashMap<String, Watch>>,
}

#[derive(Debug)]
struct Watch {
    connect: u64,
    /// Filters the client subscribed or unsubscribed since the connect.
    touched: HashSet<String>,
}

impl LateWatches {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Watch>> {
        // Every operation leaves the map consistent.
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client connects: watches it until the returned guard is dropped
    /// (when no lookup of this connect can answer any more).
    pub(super) fn connect(self: &Arc<Self>, client_id: &str) -> LateGuard {
        let connect = self.next.fetch_add(1, Ordering::Relaxed);
        let watch = Watch {
            connect,
            touched: HashSet::new(),
        };
        self.lock().insert(client_id.to_owned(), watch);
        LateGuard {
            watches: Arc::clone(self),
            client_id: client_id.to_owned(),
            connect,
        }
    }

    /// The client subscribed or unsubscribed `filter` itself.
    pub(super) fn touch(&self, client_id: &str, filter: &str) {
        if let Some(w) = self.lock().get_mut(client_id) {
            w.touched.insert(filter.to_owned());
        }
    }

    /// Clients watched now (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// One connect's watch; dropping it ends the watch.
#[derive(Debug)]
pub(super) struct LateGuard {
    watches: Arc<LateWatches>,
    client_id: String,
    connect: u64,
}

impl LateGuard {
    /// Of a late answer, what still applies: nothing if the client has
    /// connected again since, and no filter it has touched itself.
    pub(super) fn still_wanted(&self, mut subs: Vec<Subscription>) -> Vec<Subscription> {
        match self.watches.lock().get(&self.client_id) {
            Some(w) if w.connect == self.connect => {
                subs.retain(|s| !w.touched.contains(&s.filter));
                subs
            }
            _ => Vec::new(),
        }
    }
}

impl Drop for LateGuard {
    fn drop(&mut self) {
        let mut clients = self.watches.lock();
        if clients
            .get(&self.client_id)
            .is_some_and(|w| w.connect == self.connect)
        {
            clients.remove(&self.client_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QoS;

    fn subs(filters: &[&str]) -> Vec<Subscription> {
        filters
            .iter()
            .map(|f| Subscription::new(*f, QoS::AtLeastOnce))
            .collect()
    }

    #[test]
    fn a_late_answer_skips_touched_filters_and_later_connects() {
        let w = Arc::new(LateWatches::default());
        let first = w.connect("c");
        w.touch("c", "a/#");
        w.touch("other", "b/#");
        let kept = first.still_wanted(subs(&["a/#", "b/#"]));
        assert_eq!(kept, subs(&["b/#"]));
        // The client connects again: the first connect's answer is stale.
        let second = w.connect("c");
        assert!(first.still_wanted(subs(&["b/#"])).is_empty());
        drop(first);
        assert_eq!(w.len(), 1, "the newer watch stays");
        assert_eq!(second.still_wanted(subs(&["a/#"])), subs(&["a/#"]));
        drop(second);
        assert_eq!(w.len(), 0, "no watch outlives its connect");
    }
}
