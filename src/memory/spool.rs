//! The default backend: the memories in the spool's sled ([`crate::spool`] owns the
//! trees). Reads are direct; writes are ops returned to the caller, so they commit in
//! the same batch as the message and are durable exactly when it is.
//!
//! Between a session's remember and its commit, the records are not in sled yet; a
//! second session accepting the other half of a split message at that instant would
//! claim the same copies. So claims and deliveries are also held in memory (`pending`)
//! until they are surely committed or given back: the copy check and its record are one
//! step under a lock, as in Redis.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Backend, BoxFuture, MemoryError, Remembered};
use crate::address::Address;
use crate::route::{Absence, Memory, Query, Remember};
use crate::spool::{MemoryOp, Op, Spool};

/// How long a record stays pending: far longer than any commit takes (a commit that
/// fails answers `451` and releases its claims at once).
const PENDING: Duration = Duration::from_secs(60);

/// Memories in the spool.
pub struct SpoolMemory {
    spool: Spool,
    /// (Message-ID, address) recorded by a plan but maybe not committed yet.
    pending: Mutex<Pending>,
}

type Key = (String, String);

/// The pending records, and the order they came in so the stale ones go in O(1) each
/// (a scan of the whole map per message cost a fifth of the relay's CPU under load).
#[derive(Default)]
struct Pending {
    since: HashMap<Key, Instant>,
    order: VecDeque<(Instant, Key)>,
}

impl Pending {
    fn prune(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < PENDING {
                break;
            }
            let (at, key) = self.order.pop_front().expect("front exists");
            // A key recorded again later is younger: it stays.
            if self.since.get(&key) == Some(&at) {
                self.since.remove(&key);
            }
        }
    }

    fn insert(&mut self, key: Key, now: Instant) {
        self.since.insert(key.clone(), now);
        self.order.push_back((now, key));
    }

    fn contains(&self, key: &Key) -> bool {
        self.since.contains_key(key)
    }

    fn remove(&mut self, key: &Key) {
        self.since.remove(key);
    }
}

impl SpoolMemory {
    /// The memories of this spool.
    pub fn new(spool: Spool) -> SpoolMemory {
        SpoolMemory {
            spool,
            pending: Mutex::default(),
        }
    }

    /// The claims already taken (committed or pending), and this plan's records pending.
    fn claim(&self, r: &Remember) -> std::collections::HashSet<Address> {
        let Some(id) = &r.message_id else {
            return Default::default();
        };
        // A poisoned lock only means a panic while inserting into a map of plain values.
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        pending.prune(now);
        let mut lost = std::collections::HashSet::new();
        for c in &r.claims {
            let key = (id.clone(), c.clone());
            if pending.contains(&key) || self.spool.has_message(id, c) {
                lost.extend(Address::parse(c).ok());
            } else {
                pending.insert(key, now);
            }
        }
        for d in &r.delivered {
            pending.insert((id.clone(), d.clone()), now);
        }
        lost
    }
}

impl Backend for SpoolMemory {
    fn name(&self) -> &'static str {
        "spool"
    }

    fn recall<'a>(&'a self, q: &'a Query) -> BoxFuture<'a, Result<Memory, MemoryError>> {
        Box::pin(async move { Ok(self.spool.recall(q)) })
    }

    fn remember<'a>(&'a self, r: &'a Remember) -> BoxFuture<'a, Result<Remembered, MemoryError>> {
        let lost = self.claim(r);
        let ops = if r.is_empty() {
            Vec::new()
        } else {
            vec![Op::Memory(MemoryOp::Remember(Box::new(r.clone())))]
        };
        Box::pin(async move { Ok(Remembered { lost, ops }) })
    }

    fn release<'a>(&'a self, r: &'a Remember) -> BoxFuture<'a, Result<(), MemoryError>> {
        if let Some(id) = &r.message_id {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for c in &r.claims {
                pending.remove(&(id.clone(), c.clone()));
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn absences(&self) -> BoxFuture<'_, Result<Vec<Absence>, MemoryError>> {
        Box::pin(async move { Ok(self.spool.absences()) })
    }

    fn set_absence(&self, a: Absence) -> BoxFuture<'_, Result<(), MemoryError>> {
        Box::pin(async move {
            self.spool
                .commit(vec![Op::Memory(MemoryOp::SetAbsence(a))])
                .await
                .map_err(|e| MemoryError(e.to_string()))
        })
    }

    fn end_absence<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<bool, MemoryError>> {
        Box::pin(async move {
            let had = self.spool.absences().iter().any(|a| a.address == address);
            self.spool
                .commit(vec![Op::Memory(MemoryOp::EndAbsence(address.to_string()))])
                .await
                .map_err(|e| MemoryError(e.to_string()))?;
            Ok(had)
        })
    }

    fn sweep(&self) -> usize {
        self.spool.sweep_memories()
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    fn key(id: &str) -> Key {
        (id.to_string(), "bob@example.com".to_string())
    }

    #[test]
    fn stale_records_go_in_arrival_order_and_a_renewed_one_stays() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        p.insert(key("a"), t0);
        p.insert(key("b"), t0 + Duration::from_secs(10));
        p.insert(key("a"), t0 + Duration::from_secs(30));
        p.prune(t0 + PENDING + Duration::from_secs(15));
        assert!(p.contains(&key("a")), "renewed at +30 s: still pending");
        assert!(!p.contains(&key("b")), "recorded at +10 s: stale");
        p.prune(t0 + PENDING + Duration::from_secs(31));
        assert!(!p.contains(&key("a")));
        assert!(p.order.is_empty() && p.since.is_empty());
        p.insert(key("c"), t0);
        p.remove(&key("c"));
        assert!(!p.contains(&key("c")), "given back");
    }
}
