//! The two routing memories of SPEC §4, kept in sled with an expiry each: Message-IDs of
//! private threads, and which team addresses already have which Message-ID (7 days).

use std::collections::HashSet;
use std::time::Duration;

use crate::address::Address;
use crate::route::{Memory, MessageFacts};

use super::{now, Spool};

/// How long "who has this Message-ID" is remembered.
pub const DELIVERED_MEMORY: Duration = Duration::from_secs(7 * 86400);

/// Memories to record for one accepted message.
#[derive(Debug, Default, Clone)]
pub struct MemoryWrites {
    /// Message-IDs to remember as private, with their expiry (Unix seconds).
    pub private: Vec<(String, u64)>,
    /// `(Message-ID, team address)` pairs, with their expiry.
    pub delivered: Vec<(String, String, u64)>,
}

impl MemoryWrites {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.private.is_empty() && self.delivered.is_empty()
    }

    pub(super) fn apply(&self, private: &sled::Tree, delivered: &sled::Tree) -> sled::Result<()> {
        for (id, expiry) in &self.private {
            private.insert(id.as_bytes(), &expiry.to_be_bytes())?;
        }
        for (id, addr, expiry) in &self.delivered {
            delivered.insert(delivered_key(id, addr), &expiry.to_be_bytes())?;
        }
        Ok(())
    }
}

fn delivered_key(id: &str, addr: &str) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(addr.as_bytes());
    k
}

fn unexpired(v: &[u8], now: u64) -> bool {
    v.try_into()
        .map(u64::from_be_bytes)
        .is_ok_and(|exp| exp > now)
}

impl Spool {
    /// What the relay remembers about a message with these headers.
    pub fn recall(&self, facts: &MessageFacts) -> Memory {
        let now = now();
        let is_private = |id: &str| {
            self.private
                .get(id.as_bytes())
                .ok()
                .flatten()
                .is_some_and(|v| unexpired(&v, now))
        };
        let thread_private = facts
            .message_id
            .iter()
            .chain(&facts.thread_ids)
            .any(|id| is_private(id));
        let mut already_has = HashSet::new();
        if let Some(id) = &facts.message_id {
            let mut prefix = id.as_bytes().to_vec();
            prefix.push(0);
            for (k, v) in self.delivered.scan_prefix(&prefix).flatten() {
                if unexpired(&v, now) {
                    if let Some(a) = std::str::from_utf8(&k[prefix.len()..])
                        .ok()
                        .and_then(|s| Address::parse(s).ok())
                    {
                        already_has.insert(a);
                    }
                }
            }
        }
        Memory {
            thread_private,
            already_has,
        }
    }

    /// Deletes expired memories; returns how many.
    pub fn sweep_memories(&self) -> usize {
        let now = now();
        let mut n = 0;
        for tree in [&self.private, &self.delivered] {
            for (k, v) in tree.iter().flatten() {
                if !unexpired(&v, now) && tree.remove(k).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }
}

/// The writes SPEC §4 asks for once a message is accepted: its Message-ID as private
/// when the plan says so, and every team recipient as having it.
pub fn writes_for(
    facts: &MessageFacts,
    private: bool,
    team_recipients: &[Address],
    private_memory: Duration,
) -> MemoryWrites {
    let mut w = MemoryWrites::default();
    let Some(id) = &facts.message_id else {
        return w;
    };
    let now = now();
    if private {
        w.private.push((id.clone(), now + private_memory.as_secs()));
    }
    for a in team_recipients {
        w.delivered.push((
            id.clone(),
            a.key().to_string(),
            now + DELIVERED_MEMORY.as_secs(),
        ));
    }
    w
}
