//! Store order: each stored message gets a `seq`, the microseconds since
//! the epoch at the moment it is stored, made strictly increasing in this
//! process. A topic's rows cluster by it, so they come back in store order.
//!
//! Pubsub reads never pass a write still in flight: every `seq` handed out
//! stays registered until its write returns, and a pubsub read stops below
//! the lowest one ([`ceiling`]). Otherwise a reader could see and ack a
//! later message while an earlier one is still being written, and that
//! one, marked read by the ack, would never be delivered. The registry is
//! per process: brokers on several nodes writing one topic each order by
//! their own clock (see the README).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

struct State {
    last: i64,
    in_flight: BTreeMap<i64, usize>,
}

static STATE: Mutex<State> = Mutex::new(State {
    last: 0,
    in_flight: BTreeMap::new(),
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
    seqs: Vec<i64>,
}

impl InFlight {
    /// The numbers, in the order they were handed out.
    pub(crate) fn seqs(&self) -> &[i64] {
        &self.seqs
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = STATE.lock().unwrap_or_else(|p| p.into_inner());
        for seq in &self.seqs {
            if let Some(n) = s.in_flight.get_mut(seq) {
                *n -= 1;
                if *n == 0 {
                    s.in_flight.remove(seq);
                }
            }
        }
    }
}

/// `n` new increasing numbers, registered as in flight.
pub(crate) fn allocate(n: usize) -> InFlight {
    let now = now_micros();
    let mut s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let mut seqs = Vec::with_capacity(n);
    for _ in 0..n {
        let next = now.max(s.last.saturating_add(1));
        s.last = next;
        *s.in_flight.entry(next).or_insert(0) += 1;
        seqs.push(next);
    }
    InFlight { seqs }
}

/// The bound a pubsub read stays below: the lowest number in flight, or
/// the next one to be handed out. Every message under it is either stored
/// or was handed out by another process.
pub(crate) fn ceiling() -> i64 {
    let now = now_micros();
    let s = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let next = now.max(s.last.saturating_add(1));
    s.in_flight.keys().next().copied().unwrap_or(next).min(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_increase_and_bound_reads_while_in_flight() {
        let a = allocate(3);
        let s = a.seqs().to_vec();
        assert!(s[0] < s[1] && s[1] < s[2]);
        assert!(ceiling() <= s[0], "a read stops below the oldest write");
        let b = allocate(1);
        assert!(b.seqs()[0] > s[2]);
        drop(a);
        assert!(ceiling() <= b.seqs()[0]);
        drop(b);
        assert!(ceiling() > s[2]);
    }
}
