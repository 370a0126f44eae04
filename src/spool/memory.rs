//! The routing memories kept in the spool's sled (the default backend of
//! [`crate::memory`]): private Message-IDs, who has which Message-ID (7 days), the
//! thread of each Message-ID and each thread's owner, recent replies per thread, and
//! absences. Each record carries its expiry; expired records are ignored when read and
//! swept hourly. Writes ride in the same commit as the message they belong to.
//!
//! Trees: `private` (ID → expiry), `delivered` (ID NUL address → expiry), `threads`
//! (ID → expiry, thread), `owners` (thread → expiry, address), `replies` (thread NUL
//! time NUL address → expiry, JSON), `away` (address → JSON absence).

use std::collections::HashSet;

use crate::address::Address;
use crate::route::{Absence, Memory, Query, Remember};

use super::{now, Spool};

/// The sled trees this module owns.
#[derive(Clone)]
pub(super) struct Trees {
    pub private: sled::Tree,
    pub delivered: sled::Tree,
    pub threads: sled::Tree,
    pub owners: sled::Tree,
    pub replies: sled::Tree,
    pub away: sled::Tree,
}

impl Trees {
    pub(super) fn open(db: &sled::Db) -> sled::Result<Trees> {
        Ok(Trees {
            private: db.open_tree("private")?,
            delivered: db.open_tree("delivered")?,
            threads: db.open_tree("threads")?,
            owners: db.open_tree("owners")?,
            replies: db.open_tree("replies")?,
            away: db.open_tree("away")?,
        })
    }

    fn all(&self) -> [&sled::Tree; 5] {
        [
            &self.private,
            &self.delivered,
            &self.threads,
            &self.owners,
            &self.replies,
        ]
    }
}

fn joined(a: &str, b: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// A value: 8 bytes of expiry (big-endian Unix seconds), then the payload.
fn with_expiry(expiry: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = expiry.to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// The payload of an unexpired value.
fn live(v: &[u8], now: u64) -> Option<&[u8]> {
    let exp = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    (exp > now).then(|| &v[8..])
}

fn live_string(v: Option<sled::IVec>, now: u64) -> Option<String> {
    let v = v?;
    live(&v, now).and_then(|p| std::str::from_utf8(p).ok().map(str::to_string))
}

impl Spool {
    /// What the relay remembers about a message (SPEC §4, §9).
    pub fn recall(&self, q: &Query) -> Memory {
        let now = now();
        let t = &self.memories;
        let thread_private = q
            .private_ids
            .iter()
            .any(|id| live_string(t.private.get(id.as_bytes()).ok().flatten(), now).is_some());
        let mut already_has = HashSet::new();
        if let Some(id) = &q.message_id {
            let prefix = joined(id, "");
            for (k, v) in t.delivered.scan_prefix(&prefix).flatten() {
                if live(&v, now).is_some() {
                    if let Some(a) = std::str::from_utf8(&k[prefix.len()..])
                        .ok()
                        .and_then(|s| Address::parse(s).ok())
                    {
                        already_has.insert(a);
                    }
                }
            }
        }
        let known: Vec<Option<String>> = q
            .candidates
            .iter()
            .map(|c| live_string(t.threads.get(c.as_bytes()).ok().flatten(), now))
            .collect();
        let thread = q.resolve(&known);
        let (owner, recent) = if thread.is_empty() {
            (None, Vec::new())
        } else {
            let owner = live_string(t.owners.get(thread.as_bytes()).ok().flatten(), now)
                .and_then(|s| Address::parse(&s).ok());
            let recent = t
                .replies
                .scan_prefix(joined(&thread, ""))
                .flatten()
                .filter_map(|(_, v)| serde_json::from_slice(live(&v, now)?).ok())
                .collect();
            (owner, recent)
        };
        Memory {
            thread_private,
            already_has,
            thread,
            owner,
            recent,
            absences: self.absences(),
            now,
        }
    }

    /// Whether `address` is recorded as having Message-ID `id`.
    pub fn has_message(&self, id: &str, address: &str) -> bool {
        let v = self
            .memories
            .delivered
            .get(joined(id, address))
            .ok()
            .flatten();
        v.is_some_and(|v| live(&v, now()).is_some())
    }

    /// Every recorded absence that has not ended.
    pub fn absences(&self) -> Vec<Absence> {
        let now = now();
        self.memories
            .away
            .iter()
            .flatten()
            .filter_map(|(_, v)| serde_json::from_slice::<Absence>(&v).ok())
            .filter(|a| a.until > now)
            .collect()
    }

    /// Deletes expired memories; returns how many.
    pub fn sweep_memories(&self) -> usize {
        let now = now();
        let mut n = 0;
        for tree in self.memories.all() {
            for (k, v) in tree.iter().flatten() {
                if live(&v, now).is_none() && tree.remove(k).is_ok() {
                    n += 1;
                }
            }
        }
        for (k, v) in self.memories.away.iter().flatten() {
            let ended = serde_json::from_slice::<Absence>(&v).map_or(true, |a| a.until <= now);
            if ended && self.memories.away.remove(k).is_ok() {
                n += 1;
            }
        }
        n
    }
}

/// One memory change, applied by the committer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum MemoryOp {
    /// What a plan asked to remember (everything of one accepted message).
    Remember(Box<Remember>),
    /// `teamrelay away ADDR --until`.
    SetAbsence(Absence),
    /// `teamrelay away ADDR --back`.
    EndAbsence(String),
}

impl MemoryOp {
    /// Applies the op as of `now` (Unix seconds): the committer logs that time with the
    /// op, so a replay after a crash sets the same expiries.
    pub(super) fn apply_at(&self, t: &Trees, now: u64) -> sled::Result<()> {
        match self {
            MemoryOp::Remember(r) => apply_remember(t, r, now),
            MemoryOp::SetAbsence(a) => {
                let json = serde_json::to_vec(a).unwrap_or_default();
                t.away.insert(a.address.as_bytes(), json).map(|_| ())
            }
            MemoryOp::EndAbsence(addr) => t.away.remove(addr.as_bytes()).map(|_| ()),
        }
    }
}

fn apply_remember(t: &Trees, r: &Remember, now: u64) -> sled::Result<()> {
    if let Some(id) = &r.message_id {
        if r.private {
            t.private
                .insert(id.as_bytes(), with_expiry(now + r.private_ttl, b""))?;
        }
        for a in r.delivered.iter().chain(&r.claims) {
            t.delivered
                .insert(joined(id, a), with_expiry(now + r.delivered_ttl, b""))?;
        }
        if let Some(thread) = &r.thread {
            t.threads.insert(
                id.as_bytes(),
                with_expiry(now + r.owner_ttl, thread.as_bytes()),
            )?;
        }
    }
    let thread = r.thread.clone().unwrap_or_default();
    if let (Some(owner), false) = (&r.owner, thread.is_empty()) {
        // The first owner stays: one committer applies writes in order, so this check
        // and the write cannot interleave with another message's.
        let has = live_string(t.owners.get(thread.as_bytes())?, now).is_some();
        if !has {
            t.owners.insert(
                thread.as_bytes(),
                with_expiry(now + r.owner_ttl, owner.as_bytes()),
            )?;
        }
    }
    if let (Some(reply), false) = (&r.reply, thread.is_empty()) {
        let key = joined(&thread, &format!("{:016x}\0{}", reply.at, reply.from));
        let json = serde_json::to_vec(reply).unwrap_or_default();
        t.replies
            .insert(key, with_expiry(now + r.reply_ttl, &json))?;
    }
    if let Some(a) = &r.away {
        let json = serde_json::to_vec(a).unwrap_or_default();
        t.away.insert(a.address.as_bytes(), json)?;
    }
    Ok(())
}
