//! The committer: one task applies every waiting write to sled and flushes once for the
//! whole batch, so N concurrent sessions cost one fsync, not N.

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::{schedule_key, Entry, MemoryWrites, Spool};

/// One durable change.
#[derive(Debug)]
pub enum Op {
    /// Insert or replace a queued message and schedule it at its `next_try`.
    Put(Entry),
    /// Remove a finished message (its body file is deleted after the flush).
    Remove(String),
    /// Record routing memories.
    Remember(MemoryWrites),
    /// Make a new body file's directory entry durable (it was fsync'd itself already).
    SyncBodies,
}

/// A batch of ops and whom to tell when they are durable.
pub struct Request {
    pub ops: Vec<Op>,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Runs until every [`Spool`] handle is dropped.
pub async fn run(db: sled::Db, spool: Spool, mut rx: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut removed = Vec::new();
        let mut sync_dir = false;
        let mut result = Ok(());
        for req in &batch {
            if let Err(e) = apply(&spool, &req.ops, &mut removed, &mut sync_dir) {
                result = Err(format!("spool write failed: {e}"));
            }
        }
        if result.is_ok() && sync_dir {
            let dir = spool.dir.join("bodies");
            let synced = tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()).await;
            if let Err(e) = synced.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                result = Err(format!("spool directory fsync failed: {e}"));
            }
        }
        if result.is_ok() {
            if let Err(e) = db.flush_async().await {
                result = Err(format!("spool flush failed: {e}"));
            }
        }
        if let Err(e) = &result {
            error!(error = %e, "spool commit failed");
        }
        for req in batch {
            let _ = req.done.send(result.clone());
        }
        if result.is_ok() {
            for id in removed {
                let _ = std::fs::remove_file(spool.body_path(&id));
            }
        }
    }
    // Last handle gone: make sure everything applied is on disk.
    let _ = db.flush_async().await;
}

/// Applies one request. Its queue records change in one atomic sled batch, so a DSN
/// and the recipient state that caused it are recorded together or not at all.
fn apply(spool: &Spool, ops: &[Op], removed: &mut Vec<String>, sync_dir: &mut bool) -> Result<(), String> {
    let mut batch = sled::Batch::default();
    let mut schedule_old = Vec::new();
    let mut schedule_new = Vec::new();
    for op in ops {
        match op {
            Op::Put(entry) => {
                let json = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
                batch.insert(entry.id.as_bytes(), json);
                schedule_old.push(entry.id.clone());
                schedule_new.push(schedule_key(entry.next_try, &entry.id));
            }
            Op::Remove(id) => {
                batch.remove(id.as_bytes());
                schedule_old.push(id.clone());
                removed.push(id.clone());
            }
            Op::Remember(m) => m.apply(&spool.private, &spool.delivered).map_err(|e| e.to_string())?,
            Op::SyncBodies => *sync_dir = true,
        }
    }
    // Old schedule keys: a rescheduled or finished message must not stay due.
    for id in &schedule_old {
        if let Some(old) = spool.get(id) {
            let _ = spool.schedule.remove(schedule_key(old.next_try, &old.id));
        }
    }
    spool.queue.apply_batch(batch).map_err(|e| e.to_string())?;
    for key in schedule_new {
        spool.schedule.insert(key, &[]).map_err(|e| e.to_string())?;
    }
    Ok(())
}
