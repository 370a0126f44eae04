//! The spool owns durability: a message's body and its record are on disk before anyone
//! says `250`, and a record leaves only when every recipient is delivered or bounced.
//! This doc is the spool's contract; the code below keeps it.
//!
//! # On disk, under `server.spool` (files `0600`, directories `0700`: SPEC §6)
//!
//! - `segments/NNNNNNNNNNNNNNNN` — append-only log files (16 hex digits, increasing; a
//!   new one at every start and every 16 MiB). The 8 bytes `TRSEG001`, then frames:
//!   `len` (u32 LE) ‖ `crc` (CRC-32 of the rest, u32 LE) ‖ kind (1 byte) ‖ payload.
//!   Kinds: **body** (id length, id, the body bytes), **put** (an [`Entry`] as JSON, the
//!   whole new state of one queued message), **update** (the same, applied only if the
//!   message is still queued: a try's outcome loses to a `queue delete`), **retry**
//!   (`[id, due]`: `queue retry`, only the due time changes), **remove** (an id: the
//!   message is done), **memory** (`[unix time, MemoryOp]` as JSON). Bodies up to 256 KiB
//!   live here; no frame is larger than 16 MiB.
//! - `bodies/ID` — the body of a larger message, its own file, streamed to disk while
//!   DATA arrived (a 35 MB message never sits in memory whole).
//!
//!   A body is the message exactly as received (CRLF, not dot-stuffed), without
//!   teamrelay's `Received:` field (that is in the record). `ID` is 16 upper-case hex
//!   digits, time-ordered ([`Spool::new_id`]). [`Entry::body`] says where it is.
//! - `db/` — sled, as of the last checkpoint, with these trees:
//!   - `queue`: `ID` → [`Entry`] as JSON: envelope sender, `Received:` field, size,
//!     where the body is, and per delivery (original, archive copy, cover, DSN…) its
//!     headers, route and each recipient's state (pending with the last error,
//!     delivered, failed). Changes since the checkpoint are in memory (see `records`):
//!     a message queued and delivered between two checkpoints never reaches sled;
//!   - `private`, `delivered`, `threads`, `owners`, `replies`, `away`: the routing
//!     memories of SPEC §4 and §9 (see `memory`), each value led by its expiry, written
//!     at commit time but flushed only by a checkpoint;
//!   - `spool`: the last checkpoint, a segment and an offset.
//!
//!   The schedule (due time and id of every queued message not being tried) is an
//!   index of the queue kept in memory and rebuilt on every start.
//!
//! # Writing: one door, one committer, one fdatasync per batch
//!
//! New messages enter only through [`Spool::accept`] (SMTP, DSNs, notices, backfill);
//! state changes go through [`Spool::commit`]. Both hand their ops to one committer task
//! that takes every request waiting at that moment as one batch (group commit) and:
//!
//! 1. if the batch has large bodies: `fdatasync`s their files (several threads at once,
//!    so the journal commits them together), then `fsync`s `bodies/`;
//! 2. encodes every frame of the batch (small bodies first within each request, each
//!    `put` told where its body went) and writes them to the current segment with one
//!    `write` and one `fdatasync`: from here the batch is durable;
//! 3. applies the records: each request's queue changes under one lock in memory (a
//!    message's recipients, a DSN and the failure it reports: seen together or not at
//!    all), then its memories into sled, unflushed;
//! 4. answers each request with its own result: the SMTP session says `250` now.
//!
//! Stage 1 of one batch overlaps stages 2–4 of the one before; batches are written in
//! order. Half a second after a commit, a **checkpoint** writes the queue changes still
//! standing into sled with the segment position they reach, and flushes sled (its own
//! timed flush is off); then every older segment that holds no queued message's body is
//! deleted. A finished message's body file is deleted once its `remove` frame is durable.
//!
//! # After a crash (kill -9, power loss), on the next start
//!
//! [`Spool::open`] replays every frame after the last checkpoint, in order, and
//! checkpoints: a `put` is its key's whole new state, so replaying one sled already has
//! changes nothing.
//! A frame that is cut short or fails its CRC ends its segment: the write it belongs to
//! never finished its `fdatasync`, so nobody got a `250` for it. Then:
//!
//! | state found | meaning | what `open` does |
//! |---|---|---|
//! | record and body | acknowledged (or about to be) | keeps it; the schedule is rebuilt, so a message taken off the schedule by a try that never finished is due again |
//! | body file without record | its `250` was never sent | deletes the file |
//! | record whose body is missing or cut short | impossible for an acknowledged message (body durable first) | deletes the record, logs a warning |
//! | segment holding no queued body | everything in it is done and in sled | deletes it |
//!
//! So an acknowledged message is never lost, and one may be delivered twice (the try
//! was under way when the process died): a possible duplicate is better than a possible
//! loss. If sled refuses a memory after its frame is durable (a full disk), that client
//! gets `451` (its message is queued all the same), no checkpoint passes the frame from
//! then on, and the next start replays it: again a duplicate, never a loss (until then
//! the queue's changes stay in memory as well as in the segments). A checkpoint sled
//! refuses keeps its changes in memory and the segments on disk; the next one tries
//! again.
//! `tests/crash_loop.rs` kills the relay at random points under load and checks exactly
//! this; the unit tests in `recover` tear writes and lose everything since the last
//! checkpoint, those in `records` fail a checkpoint.
//!
//! A spool from before segments (`bodies/` only) is read as it is. Older versions do not
//! understand segments: going back needs the spool from before the upgrade.
//!
//! # Time
//!
//! Every time the spool records (arrival, next try, memory expiry) comes from [`now`],
//! which follows tokio's clock, so the in-process tests move days under
//! `tokio::time::pause()`.

mod body;
mod commit;
mod door;
mod entry;
mod memory;
mod read;
mod records;
mod recover;
mod segment;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

pub use body::BodySink;
pub use commit::Op;
pub use door::{local_received, NewBody, NewMessage};
pub use entry::{Entry, Rcpt, RcptState, StoredBody, StoredDelivery, StoredKind};
pub use memory::MemoryOp;
pub use read::BodyLocation;
use segment::Position;

/// Seconds since the Unix epoch: the relay's one clock for schedules, expiry and memory
/// lifetimes.
///
/// It is the wall clock shifted by however far tokio's clock stands from the monotonic
/// one. In the binary they are the same clock, so the shift is nil and a stepped wall
/// clock (NTP at boot) is followed as it should be for `Date:` fields. Under
/// `tokio::time::pause()` (the in-process tests) tokio's clock stands still or jumps
/// ahead, and so do retries, `max_queue_time`, `auto_away` and `owner_memory`: a five-day
/// expiry is tested in milliseconds.
pub fn now() -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (tokio_now, real_now) = (
        tokio::time::Instant::now().into_std(),
        std::time::Instant::now(),
    );
    let shifted = match tokio_now.checked_duration_since(real_now) {
        Some(ahead) => wall + ahead,
        None => wall.saturating_sub(real_now - tokio_now),
    };
    shifted.as_secs()
}

/// Handle to the spool; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    db: sled::Db,
    records: Arc<records::Records>,
    memories: memory::Trees,
    /// The spool's own bookkeeping (the checkpoint).
    meta: sled::Tree,
    segments: Arc<Segments>,
    commits: mpsc::UnboundedSender<commit::Request>,
}

/// What the segments hold, kept in memory: how many queued messages have their body in
/// each segment (a segment is deleted at zero, once checkpointed), and how far the
/// applied records reach.
#[derive(Default)]
struct Segments {
    live: Mutex<HashMap<u64, usize>>,
    applied: Mutex<Option<Position>>,
    /// sled refused a memory whose frame is durable: no checkpoint may pass it (so the
    /// next start replays it) until then.
    stuck: std::sync::atomic::AtomicBool,
}

impl Segments {
    fn hold(&self, body: StoredBody) {
        if let StoredBody::Segment { segment, .. } = body {
            *lock(&self.live).entry(segment).or_default() += 1;
        }
    }

    fn release(&self, segment: u64) {
        let mut live = lock(&self.live);
        if let Some(n) = live.get_mut(&segment) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.remove(&segment);
            }
        }
    }

    fn is_live(&self, segment: u64) -> bool {
        lock(&self.live).contains_key(&segment)
    }

    fn applied(&self) -> Option<Position> {
        if self.stuck.load(Ordering::SeqCst) {
            return None;
        }
        *lock(&self.applied)
    }

    fn stop_checkpoints(&self) {
        self.stuck.store(true, Ordering::SeqCst);
    }

    fn set_applied(&self, p: Position) {
        *lock(&self.applied) = Some(p);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters and a position: a panic elsewhere cannot leave them half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Errors opening the spool.
#[derive(Debug)]
pub struct SpoolError(pub String);

/// Why a commit did not become durable. Whatever it carried is not on disk, so the
/// caller must not acknowledge it (an SMTP client gets `451`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitError {
    /// Writing a new body file failed.
    Body(String),
    /// fsync of a body file or of the bodies directory failed.
    BodySync(String),
    /// sled refused a record, or its flush failed.
    Records(String),
    /// The committer task is gone (the process is stopping) or panicked.
    Stopped,
}

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitError::Body(e) => write!(f, "cannot write body: {e}"),
            CommitError::BodySync(e) => write!(f, "body fsync failed: {e}"),
            CommitError::Records(e) => write!(f, "spool write failed: {e}"),
            CommitError::Stopped => write!(f, "spool committer stopped"),
        }
    }
}

impl std::error::Error for CommitError {}

impl std::fmt::Display for SpoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpoolError {}

impl Spool {
    /// Opens (creating if needed) the spool at `dir` and starts its committer. Must run
    /// inside a tokio runtime. Replays the segments written since the last checkpoint
    /// (see the module doc, "After a crash"), then rebuilds the schedule from the queue,
    /// so a crash between taking a message off the schedule and finishing it loses
    /// nothing.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            SpoolError(format!("spool {}: {what}: {e}", dir.display()))
        };
        for d in [dir.to_path_buf(), dir.join("bodies"), dir.join("segments")] {
            crate::private_fs::create_dir_all(&d).map_err(|e| err("cannot create", &e))?;
        }
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(64 * 1024 * 1024)
            // The committer's checkpoints flush sled; the segments are the durable copy
            // in between (see "Writing" above).
            .flush_every_ms(None)
            .open()
            .map_err(|e| err("cannot open (is another teamrelay using it?)", &e))?;
        // sled made its files with the umask of whoever ran first; customer mail is
        // private (SPEC §6).
        crate::private_fs::restrict_tree(dir).map_err(|e| err("cannot make private", &e))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| err("cannot open tree", &e));
        let (queue, meta) = (tree("queue")?, tree("spool")?);
        // Older versions kept the schedule in sled; it lives in memory now.
        let _ = db.drop_tree("schedule");
        let memories = memory::Trees::open(&db).map_err(|e| err("cannot open tree", &e))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let spool = Spool {
            dir: dir.to_path_buf(),
            db,
            records: Arc::new(records::Records::new(queue)),
            memories,
            meta,
            segments: Arc::default(),
            commits: tx,
        };
        let writer = spool.recover().map_err(|e| err("cannot recover", &e))?;
        tokio::spawn(commit::run(spool.clone(), writer, rx));
        Ok(spool)
    }

    /// A fresh queue id: time-ordered, unique within this process, 16 hex digits.
    pub fn new_id() -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:011X}{:05X}",
            micros & 0xFFF_FFFF_FFFF,
            (n ^ std::process::id() as u64) & 0xFFFFF
        )
    }

    /// Where the body file of message `id` is (a large body; see [`Spool::body_of`]).
    pub fn body_path(&self, id: &str) -> PathBuf {
        self.dir.join("bodies").join(id)
    }

    /// A writer for the body of a new message.
    pub fn body_sink(&self, id: &str) -> BodySink {
        BodySink::new(self.body_path(id))
    }

    /// Applies `ops` durably: returns once they are flushed to disk together with
    /// whatever else was waiting (group commit).
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), CommitError> {
        let (done, wait) = oneshot::channel();
        self.commits
            .send(commit::Request { ops, done })
            .map_err(|_| CommitError::Stopped)?;
        wait.await.map_err(|_| CommitError::Stopped)?
    }

    /// One queued message.
    pub fn get(&self, id: &str) -> Option<Entry> {
        self.records.get(id)
    }

    /// Every queued message, oldest first.
    pub fn all(&self) -> Vec<Entry> {
        let mut v = self.records.all();
        v.sort_by_key(|e: &Entry| (e.received_at, e.id.clone()));
        v
    }

    /// When the oldest queued message arrived (Unix seconds). Ids start with the
    /// arrival time, so the first id is the oldest.
    pub fn oldest_received(&self) -> Option<u64> {
        let id = self.records.first_id()?;
        self.get(&id).map(|e| e.received_at)
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every message due at `now` off the schedule and returns their ids. The
    /// caller owns them until it commits a new schedule or removes them.
    pub fn take_due(&self, now: u64, limit: usize) -> Vec<String> {
        self.records.take_due(now, limit)
    }

    /// Puts message `id` back on the schedule at `due` without a commit (a try whose
    /// outcome could not be recorded). The schedule is rebuilt from the queue on start.
    pub fn schedule_again(&self, id: &str, due: u64) {
        self.records.schedule(due, id);
    }

    /// When the next scheduled message is due, if any.
    pub fn next_due(&self) -> Option<u64> {
        self.records.next_due()
    }
}
