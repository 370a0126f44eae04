//! The committer: one task takes every request waiting at that moment as one batch
//! (group commit). The batch's frames go into the current segment with one write and one
//! `fdatasync`; then its records go into sled, unflushed (the segment is their durable
//! copy until the next checkpoint); then every request of the batch is answered. Once a
//! second, a checkpoint flushes sled and retires segments nothing needs any more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use super::segment::{self, Batch, Kind, Position, Writer};
use super::{now, schedule_key, CommitError, Entry, MemoryOp, Spool, StoredBody};

/// How long after a commit sled is flushed and finished segments are deleted. sled's own
/// timed flush is off (`Spool::open`): its fsync would land at random moments and hold
/// up the segment's (one journal), so the only sled flush is this coordinated one.
/// 200 ms, 500 ms and 1 s measured alike within the noise of `benches/compare.sh`.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// One durable change.
#[derive(Debug)]
pub enum Op {
    /// Insert or replace a queued message and schedule it at its `next_try`.
    Put(Entry),
    /// Replace a message's record only if it is still queued: a try's outcome or a
    /// `queue retry` must not bring back a message `queue delete` removed meanwhile (the
    /// committer applies ops one at a time, so the check and the write are one step).
    Update(Entry),
    /// `queue retry`: make a queued message due at `due`, changing nothing else of its
    /// current record (a try that finished meanwhile keeps its outcome).
    Retry { id: String, due: u64 },
    /// Remove a finished message (its body goes once that is durable).
    Remove(String),
    /// Record routing memories.
    Memory(MemoryOp),
    /// A new message's large body, in its own file: make it durable (data and directory
    /// entry) before any record of the batch is written.
    SyncBody(std::fs::File),
    /// A new message's small body: into the segment, and the message's `Put` in the
    /// same request learns where.
    AppendBody { id: String, bytes: Vec<u8> },
}

/// A batch of ops and whom to tell when they are durable.
pub struct Request {
    pub ops: Vec<Op>,
    pub done: oneshot::Sender<Result<(), CommitError>>,
}

/// Runs for the life of the runtime: the handle it keeps holds the channel open, so there
/// is no last flush on the way out, nor any need for one (a start replays the segments
/// from the last checkpoint, at most half a second old).
///
/// Two stages, overlapped: while one batch is written to the segment and sled, the next
/// batch's large body files are synced. A batch's records are written only after its
/// own body files are durable, and batches are written in order.
pub async fn run(
    db: sled::Db,
    spool: Spool,
    writer: Writer,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    let writer = Arc::new(Mutex::new(writer));
    let mut writing: Option<tokio::task::JoinHandle<()>> = None;
    let mut checkpoint = Checkpoints::default();
    // A checkpoint is due a second after the first commit since the last one; an idle
    // spool has no timer at all.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let first = tokio::select! {
            r = rx.recv() => match r { Some(r) => r, None => break },
            _ = sleep_until(due), if due.is_some() => {
                // Still running from last time: look again later instead of dropping it.
                due = (!checkpoint.maybe_start(&spool, &db))
                    .then(|| tokio::time::Instant::now() + CHECKPOINT_EVERY);
                continue;
            }
        };
        due.get_or_insert_with(|| tokio::time::Instant::now() + CHECKPOINT_EVERY);
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let requests: Vec<Vec<Op>> = batch
            .iter_mut()
            .map(|r| std::mem::take(&mut r.ops))
            .collect();
        let has_files = requests
            .iter()
            .flatten()
            .any(|op| matches!(op, Op::SyncBody(_)));
        let synced = if has_files {
            let bodies = spool.dir.join("bodies");
            tokio::task::spawn_blocking(move || {
                let r = sync_bodies(&bodies, &requests);
                (requests, r)
            })
            .await
        } else {
            // Small bodies only (the usual batch): no trip to the blocking pool.
            Ok((requests, Ok(())))
        };
        if let Some(previous) = writing.take() {
            let _ = previous.await;
        }
        let (spool2, writer2) = (spool.clone(), writer.clone());
        // One hop to the blocking pool, which also answers the sessions (a panic there
        // drops the senders: every waiter gets `Stopped`).
        writing = Some(tokio::task::spawn_blocking(move || {
            let n = batch.len();
            let results = match synced {
                Ok((requests, Ok(()))) => {
                    let mut w = writer2.lock().unwrap_or_else(|e| e.into_inner());
                    write_batch(&spool2, &mut w, requests)
                }
                Ok((_, Err(e))) => vec![Err(e); n],
                Err(_) => vec![Err(CommitError::Stopped); n],
            };
            for (req, result) in batch.into_iter().zip(results) {
                if let Err(e) = &result {
                    error!(error = %e, "spool commit failed");
                }
                let _ = req.done.send(result);
            }
        }));
    }
    if let Some(previous) = writing.take() {
        let _ = previous.await;
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    if let Some(at) = due {
        tokio::time::sleep_until(at).await;
    }
}

/// The checkpoint in flight, and the position of the last one.
#[derive(Default)]
struct Checkpoints {
    running: Option<tokio::task::JoinHandle<()>>,
    last: Option<Position>,
}

impl Checkpoints {
    /// Starts a checkpoint if there is news since the last and none is running; false
    /// only when one is still running.
    fn maybe_start(&mut self, spool: &Spool, db: &sled::Db) -> bool {
        if self.running.as_ref().is_some_and(|r| !r.is_finished()) {
            return false;
        }
        let Some(applied) = spool.segments.applied() else {
            return true;
        };
        if self.last == Some(applied) {
            return true;
        }
        self.last = Some(applied);
        let (spool, db) = (spool.clone(), db.clone());
        self.running = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = spool.checkpoint(&db, applied) {
                warn!(error = %e, "spool checkpoint failed; the segments are kept");
            }
        }));
        true
    }
}

/// Stage one: the batch's large body files and their directory entries, durable.
fn sync_bodies(bodies: &std::path::Path, requests: &[Vec<Op>]) -> Result<(), CommitError> {
    let files: Vec<&std::fs::File> = requests
        .iter()
        .flatten()
        .filter_map(|op| match op {
            Op::SyncBody(f) => Some(f),
            _ => None,
        })
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    sync_all_parallel(&files).map_err(|e| CommitError::BodySync(e.to_string()))?;
    // Every file body lives in `bodies/`; a batch's files share its fsync.
    std::fs::File::open(bodies)
        .and_then(|d| d.sync_all())
        .map_err(|e| CommitError::BodySync(format!("bodies directory: {e}")))
}

/// Stage two: every frame of the batch into the segment (one write, one fdatasync), then
/// the records into sled in request order. One result per request: a request sled
/// refuses fails alone (its frames are durable, so the next start replays it: from then
/// on no checkpoint is taken, see [`super::Segments`]).
fn write_batch(
    spool: &Spool,
    writer: &mut Writer,
    mut requests: Vec<Vec<Op>>,
) -> Vec<Result<(), CommitError>> {
    let n = requests.len();
    let durable = (|| {
        writer
            .rotate_if_needed()
            .map_err(|e| CommitError::Records(format!("cannot begin a segment: {e}")))?;
        let at = now();
        let frames = encode(writer.position(), at, &mut requests)?;
        if !frames.bytes.is_empty() {
            writer
                .append(&frames)
                .map_err(|e| CommitError::Records(format!("segment write: {e}")))?;
        }
        Ok(at)
    })();
    let at = match durable {
        Ok(at) => at,
        Err(e) => return vec![Err(e); n],
    };
    let results: Vec<Result<(), CommitError>> = requests
        .iter()
        .map(|ops| apply(spool, ops, at).map_err(CommitError::Records))
        .collect();
    if results.iter().any(|r| r.is_err()) {
        spool.segments.stop_checkpoints();
    }
    spool.segments.set_applied(writer.position());
    results
}

/// The batch's frames, with every new `Put` told where its body went.
fn encode(base: Position, at: u64, requests: &mut [Vec<Op>]) -> Result<Batch, CommitError> {
    let mut batch = Batch::default();
    let bad = |e: serde_json::Error| CommitError::Records(e.to_string());
    // A frame a reader would take for a torn one must never be written.
    let fits = |json: Vec<u8>| {
        if json.len() < segment::MAX_FRAME as usize {
            Ok(json)
        } else {
            Err(CommitError::Records(format!(
                "record of {} bytes too large",
                json.len()
            )))
        }
    };
    for ops in requests.iter_mut() {
        let mut placed: HashMap<String, StoredBody> = HashMap::new();
        for op in ops.iter_mut() {
            match op {
                Op::AppendBody { id, bytes } => {
                    let offset = base.offset + batch.body(id, bytes);
                    let body = StoredBody::Segment {
                        segment: base.segment,
                        offset,
                        len: bytes.len() as u64,
                    };
                    placed.insert(id.clone(), body);
                }
                Op::Put(entry) => {
                    if let Some(body) = placed.get(&entry.id) {
                        entry.body = *body;
                    }
                    batch.frame(
                        Kind::Put,
                        &[&fits(serde_json::to_vec(entry).map_err(bad)?)?],
                    );
                }
                Op::Update(entry) => {
                    batch.frame(
                        Kind::Update,
                        &[&fits(serde_json::to_vec(entry).map_err(bad)?)?],
                    );
                }
                Op::Retry { id, due } => {
                    batch.frame(
                        Kind::Retry,
                        &[&serde_json::to_vec(&(&*id, *due)).map_err(bad)?],
                    );
                }
                Op::Remove(id) => {
                    batch.frame(Kind::Remove, &[id.as_bytes()]);
                }
                Op::Memory(m) => {
                    let json = fits(serde_json::to_vec(&(at, &*m)).map_err(bad)?)?;
                    batch.frame(Kind::Memory, &[&json]);
                }
                Op::SyncBody(_) => {}
            }
        }
    }
    Ok(batch)
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

/// Applies one request to sled. Its queue records change in one atomic sled batch, so a
/// DSN and the recipient state that caused it are recorded together or not at all.
/// Also used to replay the segments on start.
pub(super) fn apply(spool: &Spool, ops: &[Op], at: u64) -> Result<(), String> {
    let mut batch = sled::Batch::default();
    let mut old = Vec::new();
    let mut schedule_new = Vec::new();
    let mut added = Vec::new();
    let mut gone = Vec::new();
    let mut put = |entry: &Entry, before: Option<Entry>, batch: &mut sled::Batch| {
        let json = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        batch.insert(entry.id.as_bytes(), json);
        if before.is_none() {
            added.push(entry.body);
        }
        old.extend(before);
        schedule_new.push(schedule_key(entry.next_try, &entry.id));
        Ok::<(), String>(())
    };
    for op in ops {
        match op {
            Op::Put(entry) => put(entry, spool.get(&entry.id), &mut batch)?,
            Op::Update(entry) => match spool.get(&entry.id) {
                Some(before) => put(entry, Some(before), &mut batch)?,
                None => tracing::info!(id = %entry.id, "deleted meanwhile: not recorded"),
            },
            Op::Retry { id, due } => {
                if let Some(mut entry) = spool.get(id) {
                    let before = entry.clone();
                    entry.next_try = *due;
                    put(&entry, Some(before), &mut batch)?;
                }
            }
            Op::Remove(id) => {
                batch.remove(id.as_bytes());
                gone.extend(spool.get(id));
            }
            Op::Memory(_) | Op::SyncBody(_) | Op::AppendBody { .. } => {}
        }
    }
    old.extend(gone);
    spool.queue.apply_batch(batch).map_err(|e| e.to_string())?;
    // The records are in: count their bodies before anything else can fail.
    for body in added {
        spool.segments.hold(body);
    }
    // Old schedule keys: a rescheduled or finished message must not stay due.
    for e in &old {
        let _ = spool.schedule.remove(schedule_key(e.next_try, &e.id));
    }
    for key in schedule_new {
        spool.schedule.insert(key, &[]).map_err(|e| e.to_string())?;
    }
    for op in ops {
        if let Op::Remove(id) = op {
            if let Some(e) = old.iter().find(|e| &e.id == id) {
                spool.release_body(e);
            }
        }
    }
    // Memories last: a request sled refused must not leave claims behind (the client's
    // retry would then lose those copies).
    for op in ops {
        if let Op::Memory(m) = op {
            m.apply_at(&spool.memories, at).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
