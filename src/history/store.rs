//! The history store: keeping a message (durable before the `250`), reading records
//! and messages back, erasing a customer, and retention.
//!
//! Layout under `SPOOL/history/` (0700):
//! - `messages/ID` — the record as a JSON line, then the message as received (0600);
//! - `tmp/` — files being written (a crash leaves only never-acknowledged ones here);
//! - `index/` — tantivy: ids and index terms only ([`super::index`]);
//! - `db/` — sled, tree `received`: `ID NUL address` for team addresses that got a
//!   message after its first transaction (a split transaction, a backfill). Keys hold
//!   ids and team addresses only — never customer data — because sled may keep deleted
//!   keys in its log until it compacts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::files;
use super::index::{By, Index, Pending};
use super::keep::{self, Accepted};
use super::record::Record;
use super::writer::{self, Write};
use crate::address::Address;

/// Handle to the history; cheap to clone.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    keep: Duration,
    index: Index,
    pending: Pending,
    received: sled::Tree,
    db: sled::Db,
    writes: mpsc::UnboundedSender<Write>,
}

/// Where the history of a spool lives.
pub fn dir_of(spool: &Path) -> PathBuf {
    spool.join("history")
}

impl History {
    /// Opens (creating) the history next to the spool. Must run inside a tokio runtime.
    /// Re-indexes messages kept but not yet indexed when the last process stopped.
    pub fn open(spool: &Path, keep: Duration) -> Result<History, String> {
        let root = dir_of(spool);
        for d in ["messages", "tmp", "index", "db"] {
            files::private_dir(&root.join(d))
                .map_err(|e| format!("history {}: {e}", root.display()))?;
        }
        // Never acknowledged: written but not yet renamed into messages/.
        if let Ok(entries) = std::fs::read_dir(root.join("tmp")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let db = sled::Config::new()
            .path(root.join("db"))
            .open()
            .map_err(|e| format!("history db (is another teamrelay using it?): {e}"))?;
        let received = db.open_tree("received").map_err(|e| e.to_string())?;
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let index = Index::open(&root.join("index"), pending.clone())?;
        let (writes, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(root.clone(), rx));
        // Only the libraries' files: messages are created 0600 by us, and walking
        // 100,000 of them would slow every start (and every offline CLI command).
        files::private_tree(&root.join("index"));
        files::private_tree(&root.join("db"));
        let h = History {
            inner: Arc::new(Inner {
                root,
                keep,
                index,
                pending,
                received,
                db,
                writes,
            }),
        };
        h.reconcile();
        Ok(h)
    }

    /// The index, for queries.
    pub fn index(&self) -> &Index {
        &self.inner.index
    }

    /// How long messages are kept.
    pub fn keep_for(&self) -> Duration {
        self.inner.keep
    }

    fn path(&self, id: &str) -> PathBuf {
        files::message_path(&self.inner.root.join("messages"), id)
    }

    /// Keeps an accepted message (the caller checked [`keep::is_kept`]): durable when
    /// this returns `Ok`. A Message-ID already kept only adds its team recipients.
    pub async fn keep(&self, a: &Accepted<'_>, head: &[u8], raw: Vec<u8>) -> Result<(), String> {
        let headers = keep::read_headers(head);
        let mid = a.facts.message_id.clone();
        let thread = match self.claim(a, &headers) {
            Claim::Known(id) => {
                let team: Vec<String> = a
                    .plan
                    .team_recipients()
                    .iter()
                    .map(|t| t.to_string())
                    .collect();
                return self.mark_received(&id, &team).await;
            }
            Claim::New(thread) => thread,
        };
        let record = keep::record(a, &headers, thread);
        let (done, wait) = oneshot::channel();
        let write = Write {
            id: record.id.clone(),
            bytes: files::encode(&record, &raw),
            done,
        };
        let result = match self.inner.writes.send(write) {
            Ok(()) => wait
                .await
                .unwrap_or_else(|_| Err("history writer stopped".into())),
            Err(_) => Err("history writer stopped".into()),
        };
        match &result {
            Ok(()) => self.inner.index.add(record, raw),
            Err(_) => {
                if let Some(m) = &mid {
                    self.inner
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(m);
                }
            }
        }
        result
    }

    /// Finds the message's thread and claims its Message-ID, unless it is kept already.
    fn claim(&self, a: &Accepted<'_>, headers: &keep::Headers) -> Claim {
        let mid = &a.facts.message_id;
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = mid {
            let known = pending.get(m).map(|(id, _)| id.clone());
            if let Some(id) = known.or_else(|| self.inner.index.by_message_id(m)) {
                return Claim::Known(id);
            }
        }
        let own = mid.clone().unwrap_or_else(|| a.id.to_string());
        let thread = keep::thread_of(headers, &own, |m| {
            pending.get(m).map(|(_, t)| t.clone()).or_else(|| {
                let id = self.inner.index.by_message_id(m)?;
                Some(self.record(&id)?.thread)
            })
        });
        if let Some(m) = mid {
            pending.insert(m.clone(), (a.id.to_string(), thread.clone()));
        }
        Claim::New(thread)
    }

    /// Records that team addresses got message `id` (durable on return).
    pub async fn mark_received(&self, id: &str, who: &[String]) -> Result<(), String> {
        for w in who {
            let key = received_key(id, w);
            self.inner
                .received
                .insert(key, &[])
                .map_err(|e| e.to_string())?;
        }
        self.inner
            .db
            .flush_async()
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Team addresses that got message `id` after its first transaction.
    pub fn received_later(&self, id: &str) -> Vec<String> {
        let prefix = received_key(id, "");
        self.inner
            .received
            .scan_prefix(&prefix)
            .filter_map(|kv| kv.ok())
            .filter_map(|(k, _)| String::from_utf8(k[prefix.len()..].to_vec()).ok())
            .collect()
    }

    /// The record of message `id`.
    pub fn record(&self, id: &str) -> Option<Record> {
        files::read_record(&self.path(id))
    }

    /// The record and the message as kept.
    pub fn message(&self, id: &str) -> Option<(Record, Vec<u8>)> {
        files::read_all(&self.path(id))
    }

    /// Records of these ids (those still there).
    pub fn records(&self, ids: &[String]) -> Vec<Record> {
        ids.iter().filter_map(|i| self.record(i)).collect()
    }

    /// Erases every message in which `addr` is a participant; returns how many.
    pub async fn forget(&self, addr: &Address) -> Result<usize, String> {
        self.inner.index.flush().await;
        let ids = self.inner.index.ids(By::Participant, addr.key());
        self.erase(ids).await
    }

    async fn erase(&self, ids: Vec<String>) -> Result<usize, String> {
        if ids.is_empty() {
            return Ok(0);
        }
        for id in &ids {
            if let Some(r) = self.record(id) {
                if let Some(m) = r.message_id {
                    self.inner
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&m);
                }
            }
            match std::fs::remove_file(self.path(id)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("history: cannot remove {id}: {e}")),
            }
            for k in self
                .inner
                .received
                .scan_prefix(received_key(id, ""))
                .keys()
                .flatten()
            {
                let _ = self.inner.received.remove(k);
            }
        }
        files::sync_dir(&self.inner.root.join("messages")).map_err(|e| e.to_string())?;
        self.inner
            .db
            .flush_async()
            .await
            .map_err(|e| e.to_string())?;
        // sled makes new files (snapshots) with the umask's mode.
        files::private_tree(&self.inner.root.join("db"));
        self.inner.index.remove(ids.clone()).await?;
        Ok(ids.len())
    }

    /// Removes messages accepted longer than `keep` ago; returns how many.
    pub async fn sweep(&self, now: u64) -> Result<usize, String> {
        let cutoff = now.saturating_sub(self.inner.keep.as_secs());
        self.inner.index.flush().await;
        let old: Vec<String> = self
            .inner
            .index
            .all()
            .into_iter()
            .filter(|(_, accepted)| *accepted < cutoff)
            .map(|(id, _)| id)
            .collect();
        self.erase(old).await
    }

    /// Messages on disk but not in the index (kept, then a crash before the commit) are
    /// indexed; index entries without their file (a crash during an erasure) go.
    fn reconcile(&self) {
        let indexed: std::collections::HashSet<String> = self
            .inner
            .index
            .all()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut on_disk = std::collections::HashSet::new();
        if let Ok(entries) = std::fs::read_dir(self.inner.root.join("messages")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !indexed.contains(&id) {
                    match self.message(&id) {
                        Some((r, raw)) => {
                            // Visible to the Message-ID check before the commit, too.
                            if let Some(m) = &r.message_id {
                                let mut p =
                                    self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
                                p.insert(m.clone(), (r.id.clone(), r.thread.clone()));
                            }
                            self.inner.index.add(r, raw)
                        }
                        None => warn!(id = %id, "history: unreadable message file"),
                    }
                }
                on_disk.insert(id);
            }
        }
        let gone: Vec<String> = indexed.difference(&on_disk).cloned().collect();
        if !gone.is_empty() {
            info!(
                count = gone.len(),
                "history: index entries without a message removed"
            );
            let index = self.inner.index.clone();
            tokio::spawn(async move { index.remove(gone).await });
        }
    }
}

/// What [`History::claim`] found.
enum Claim {
    /// The Message-ID is kept already, as this id.
    Known(String),
    /// A new message, in this thread.
    New(String),
}

fn received_key(id: &str, who: &str) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(who.to_ascii_lowercase().as_bytes());
    k
}
