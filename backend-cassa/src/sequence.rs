//! Store order: each stored message gets a `seq`, the microseconds since
//! the epoch at the moment it is stored, made strictly increasing in this
//! process. A topic's rows cluster by it, so they come back in store order.
//!
//! Reads never pass a write still in flight on their topic: every `seq`
//! handed out stays registered until its write returns, and a read of a
//! topic stops below the lowest one there ([`ceiling`]). Otherwise a reader
//! could see and ack a later message while an earlier one is still being
//! written, and that one, marked read by the ack, would never be
//! delivered. Writes on other topics never hold a read back. The registry
//! is per process: brokers on several nodes writing one topic each order
//! by their own clock (see the README).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

struct State {
    last: i64,
    /// Per topic, the numbers in flight (a number may repeat only across
    /// topics, never within one).
    in_flight: Option<HashMap<String, BTreeMap<i64, usize>>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    last: 0,
    in_flight: None,
});

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Sequence numbers being written; dropping it (the write returned, or
/// failed) lets readers pass them.
#[derive(Debug)]
pub(crate) struct InFlight {
    seqs: Vec<(String, i64)>,
}

impl InFlight {
    /// The numbers, in the order they were handed out.
    pub(crate) fn seqs(&self) -> impl Iterator<Item = i64> + '_ {
        self.seqs.iter().map(|(_, seq)| *seq)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = STATE.lock().unwrap_or_else(|p| p.into_inner());
        let Some(map) = s.in_flight.as_mut() else {
            return;
        };
        for (topic, seq) in &self.seqs {
            if let Some(seqs) = map.get_mut(topic) {
                if let Some(n) = seqs.get_mut(seq) {
                    *n -= 1;
                    if *n == 0 {
                        seqs.remove(seq);
                    }
                }
                if seqs.is_empty() {
                    map.remove(topic);
                }
            }
        }
    }
}

/// New increasing numbers, one per topic given (in order), registered as
/// in flight on their topics.
pub(crate) fn allocate<'a>(topics: impl IntoIterator<Item = &'a str>) -> InFlight {
    let now = now_micros();
    let mut s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let mut seqs = Vec::new();
    for topic in topics {
        let next = now.max(s.last.saturating_add(1));
        s.last = next;
        *s.in_flight
            .get_or_insert_with(HashMap::new)
            .entry(topic.to_owned())
            .or_default()
            .entry(next)
            .or_insert(0) += 1;
        seqs.push((topic.to_owned(), next));
    }
    InFlight { seqs }
}

/// The next number to be handed out: every message stored from now on
/// gets a higher one.
pub(crate) fn next() -> i64 {
    let now = now_micros();
    let s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    now.max(s.last.saturating_add(1))
}

/// The bound a read of `topic` stays below: the lowest number in flight
/// there, or the next one to be handed out. Every message of the topic
/// under it is either stored or was handed out by another process.
pub(crate) fn ceiling(topic: &str) -> i64 {
    let s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let next = now_micros().max(s.last.saturating_add(1));
    s.in_flight
        .as_ref()
        .and_then(|m| m.get(topic))
        .and_then(|seqs| seqs.keys().next().copied())
        .map_or(next, |lowest| lowest.min(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_increase_and_bound_reads_of_their_topic_while_in_flight() {
        let a = allocate(["seq-test/a", "seq-test/a", "seq-test/b"]);
        let s: Vec<i64> = a.seqs().collect();
        assert!(s[0] < s[1] && s[1] < s[2]);
        assert!(
            ceiling("seq-test/a") <= s[0],
            "a read stops below the oldest write"
        );
        assert!(ceiling("seq-test/b") <= s[2]);
        assert!(
            ceiling("seq-test/c") > s[2],
            "other topics are not held back"
        );
        let b = allocate(["seq-test/a"]);
        let b0 = b.seqs().next().unwrap_or_default();
        assert!(b0 > s[2]);
        drop(a);
        assert!(ceiling("seq-test/a") <= b0);
        assert!(ceiling("seq-test/b") > s[2]);
        drop(b);
        assert!(ceiling("seq-test/a") > b0);
    }
}
