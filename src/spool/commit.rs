//! The committer: one task applies every waiting write to sled and flushes once for the
//! whole batch, so N concurrent sessions cost one fsync, not N.

use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::{schedule_key, CommitError, Entry, MemoryOp, Spool};

/// One durable change.
#[derive(Debug)]
pub enum Op {
    /// Insert or replace a queued message and schedule it at its `next_try`.
    Put(Entry),
    /// Remove a finished message (its body file is deleted after the flush).
    Remove(String),
    /// Record routing memories.
    Memory(MemoryOp),
    /// Make a new body file durable: its data, and its entry in the directory.
    SyncBody(std::fs::File),
}

/// A batch of ops and whom to tell when they are durable.
pub struct Request {
    pub ops: Vec<Op>,
    pub done: oneshot::Sender<Result<(), CommitError>>,
}

/// Runs until every [`Spool`] handle is dropped.
///
/// Two stages, overlapped: while one batch's records are written and sled flushes, the
/// next batch's body files are synced. Records are always written after their bodies are
/// durable, and batches' records are written in order.
pub async fn run(db: sled::Db, spool: Spool, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut writing: Option<tokio::task::JoinHandle<()>> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let requests: Vec<Vec<Op>> = batch
            .iter_mut()
            .map(|r| std::mem::take(&mut r.ops))
            .collect();
        let spool2 = spool.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let r = sync_bodies(&spool2, &requests);
            (requests, r)
        })
        .await;
        if let Some(previous) = writing.take() {
            let _ = previous.await;
        }
        let (spool3, db3, spool4) = (spool.clone(), db.clone(), spool.clone());
        writing = Some(tokio::spawn(async move {
            let (result, removed) = match synced {
                Ok((requests, Ok(()))) => {
                    tokio::task::spawn_blocking(move || write_records(&spool3, &db3, &requests))
                        .await
                        .unwrap_or_else(|_| (Err(CommitError::Stopped), Vec::new()))
                }
                Ok((_, Err(e))) => (Err(e), Vec::new()),
                Err(_) => (Err(CommitError::Stopped), Vec::new()),
            };
            if let Err(e) = &result {
                error!(error = %e, "spool commit failed");
            }
            for req in batch {
                let _ = req.done.send(result.clone());
            }
            if result.is_ok() {
                for id in removed {
                    let _ = std::fs::remove_file(spool4.body_path(&id));
                }
            }
        }));
    }
    if let Some(previous) = writing.take() {
        let _ = previous.await;
    }
    // Last handle gone: make sure everything applied is on disk.
    let _ = db.flush_async().await;
}

/// Stage one: the batch's body files and their directory entries, durable.
fn sync_bodies(spool: &Spool, requests: &[Vec<Op>]) -> Result<(), CommitError> {
    let files: Vec<&std::fs::File> = requests
        .iter()
        .flatten()
        .filter_map(|op| {
            if let Op::SyncBody(f) = op {
                Some(f)
            } else {
                None
            }
        })
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    sync_all_parallel(&files).map_err(|e| CommitError::BodySync(e.to_string()))?;
    std::fs::File::open(spool.dir.join("bodies"))
        .and_then(|d| d.sync_all())
        .map_err(|e| CommitError::BodySync(format!("bodies directory: {e}")))
}

/// Stage two: the batch's records, then sled's flush. Returns the result and the ids
/// whose body files can go.
fn write_records(
    spool: &Spool,
    db: &sled::Db,
    requests: &[Vec<Op>],
) -> (Result<(), CommitError>, Vec<String>) {
    let mut removed = Vec::new();
    let mut result = Ok(());
    for ops in requests {
        if let Err(e) = apply(spool, ops, &mut removed) {
            result = Err(CommitError::Records(e));
        }
    }
    if result.is_ok() {
        if let Err(e) = db.flush() {
            result = Err(CommitError::Records(format!("flush: {e}")));
        }
    }
    (result, removed)
}

/// fdatasync of every file, several at a time: the journal then commits them together,
/// so a batch costs about one disk round trip instead of one per file.
fn sync_all_parallel(files: &[&std::fs::File]) -> std::io::Result<()> {
    const THREADS: usize = 4;
    if files.len() < 4 {
        return files.iter().try_for_each(|f| f.sync_data());
    }
    let per_thread = files.len().div_ceil(THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().try_for_each(|f| f.sync_data())))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread panicked")))
        })
    })
}

/// Applies one request. Its queue records change in one atomic sled batch, so a DSN
/// and the recipient state that caused it are recorded together or not at all.
fn apply(spool: &Spool, ops: &[Op], removed: &mut Vec<String>) -> Result<(), String> {
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
            Op::Memory(m) => m.apply(&spool.memories).map_err(|e| e.to_string())?,
            Op::SyncBody(_) => {}
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
