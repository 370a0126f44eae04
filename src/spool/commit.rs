//! The committer: one task takes every request waiting at that moment as one batch
//! (group commit). The batch's frames go into the current segment with one write and one
//! `fdatasync`; then its records are applied (the queue in memory, memories into sled
//! unflushed: the segment is their durable copy until the next checkpoint); then every
//! request of the batch is answered. Half a second later a checkpoint writes the queue
//! changes still standing into sled, flushes it and retires segments nothing needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use super::segment::{self, Batch, Kind, Position, Writer};
use super::{now, CommitError, Entry, MemoryOp, Spool, StoredBody};

/// How long after a commit the queue changes go into sled, sled is flushed and finished
/// segments are deleted. sled's own timed flush is off (`Spool::open`): its fsync would
/// land at random moments and hold up the segment's (one journal), so the only sled
/// flush is this coordinated one. It also bounds what a start replays and how many
/// changes wait in memory.
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
/// Two stages, overlapped: while one batch is written to the segment and applied, the next
/// batch's large body files are synced. A batch's records are written only after its
/// own body files are durable, and batches are written in order.
pub async fn run(spool: Spool, writer: Writer, mut rx: mpsc::UnboundedReceiver<Request>) {
    let writer = Arc::new(Mutex::new(writer));
    let mut writing: Option<tokio::task::JoinHandle<()>> = None;
    let mut checkpoint = Checkpoints::default();
    // A checkpoint is due CHECKPOINT_EVERY after the first commit since the last one;
    // an idle spool has no timer at all.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let first = tokio::select! {
            r = rx.recv() => match r { Some(r) => r, None => break },
            _ = sleep_until(due), if due.is_some() => {
                // Still running from last time: look again later instead of dropping it.
                due = (!checkpoint.maybe_start(&spool))
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
        let synced = sync_stage(&spool, requests).await;
        if let Some(previous) = writing.take() {
            let _ = previous.await;
        }
        writing = Some(write_stage(&spool, &writer, batch, synced));
    }
    if let Some(previous) = writing.take() {
        let _ = previous.await;
    }
}

/// A batch's ops once stage one is done: their large body files are durable.
type Synced = Result<Vec<Vec<Op>>, CommitError>;

/// Stage one: syncs the batch's large body files, if it has any.
async fn sync_stage(spool: &Spool, requests: Vec<Vec<Op>>) -> Synced {
    let has_files = requests
        .iter()
        .flatten()
        .any(|op| matches!(op, Op::SyncBody(_)));
    if !has_files {
        // Small bodies only (the usual batch): no trip to the blocking pool.
        return Ok(requests);
    }
    let bodies = spool.dir.join("bodies");
    tokio::task::spawn_blocking(move || sync_bodies(&bodies, &requests).map(|()| requests))
        .await
        .unwrap_or(Err(CommitError::Stopped))
}

/// Stage two, on the blocking pool, which also answers the sessions (a panic there
/// drops the senders: every waiter gets `Stopped`).
fn write_stage(
    spool: &Spool,
    writer: &Arc<Mutex<Writer>>,
    batch: Vec<Request>,
    synced: Synced,
) -> tokio::task::JoinHandle<()> {
    let (spool, writer) = (spool.clone(), writer.clone());
    tokio::task::spawn_blocking(move || {
        let results = match synced {
            Ok(requests) => {
                let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                write_batch(&spool, &mut w, requests)
            }
            Err(e) => vec![Err(e); batch.len()],
        };
        for (req, result) in batch.into_iter().zip(results) {
            if let Err(e) = &result {
                error!(error = %e, "spool commit failed");
            }
            let _ = req.done.send(result);
        }
    })
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
    fn maybe_start(&mut self, spool: &Spool) -> bool {
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
        let spool = spool.clone();
        self.running = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = spool.checkpoint(applied) {
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
/// the records applied in request order. One result per request: a request whose
/// memories sled refuses fails alone (its frames are durable, so the next start replays
/// it: from then on no checkpoint is taken, see [`super::Segments`]).
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
                    batch.frame(Kind::Put, &[&json_frame(&*entry)?]);
                }
                Op::Update(entry) => {
                    batch.frame(Kind::Update, &[&json_frame(&*entry)?]);
                }
                Op::Retry { id, due } => {
                    batch.frame(Kind::Retry, &[&json_frame((&*id, *due))?]);
                }
                Op::Remove(id) => {
                    batch.frame(Kind::Remove, &[id.as_bytes()]);
                }
                Op::Memory(m) => {
                    batch.frame(Kind::Memory, &[&json_frame((at, &*m))?]);
                }
                Op::SyncBody(_) => {}
            }
        }
    }
    Ok(batch)
}

/// A record as a frame's JSON payload. A frame a reader would take for a torn one
/// (over [`segment::MAX_FRAME`]) must never be written: refused here instead.
fn json_frame(record: impl serde::Serialize) -> Result<Vec<u8>, CommitError> {
    let json = serde_json::to_vec(&record).map_err(|e| CommitError::Records(e.to_string()))?;
    if json.len() < segment::MAX_FRAME as usize {
        Ok(json)
    } else {
        Err(CommitError::Records(format!(
            "record of {} bytes too large",
            json.len()
        )))
    }
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

/// Applies one request: its queue records change together in memory (see
/// [`super::records`]: a DSN and the recipient state that caused it appear together),
/// then its memories go into sled, unflushed. Also used to replay the segments on start.
pub(super) fn apply(spool: &Spool, ops: &[Op], at: u64) -> Result<(), String> {
    let mut finished = Vec::new();
    {
        let mut queue = spool.records.change();
        for op in ops {
            match op {
                Op::Put(entry) => {
                    if queue.put(entry.clone()).is_none() {
                        spool.segments.hold(entry.body);
                    }
                }
                Op::Update(entry) => match queue.get(&entry.id) {
                    Some(before) => queue.replace(Some(&before), entry.clone()),
                    None => tracing::info!(id = %entry.id, "deleted meanwhile: not recorded"),
                },
                Op::Retry { id, due } => {
                    if let Some(before) = queue.get(id) {
                        let mut entry = (*before).clone();
                        entry.next_try = *due;
                        queue.replace(Some(&before), entry);
                    }
                }
                Op::Remove(id) => finished.extend(queue.remove(id)),
                Op::Memory(_) | Op::SyncBody(_) | Op::AppendBody { .. } => {}
            }
        }
    }
    for entry in finished {
        spool.release_body(&entry);
    }
    // Memories last: a request sled refused must not leave claims behind (the client's
    // retry would then lose those copies). Its queue records are in: the message may
    // then be delivered and also sent again by the client, a duplicate but no loss.
    for op in ops {
        if let Op::Memory(m) = op {
            m.apply_at(&spool.memories, at).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
