//! The spool owns durability: a message's body (a file, fsync'd) and its record (sled,
//! flushed) are on disk before anyone says `250`, and a record leaves only when every
//! recipient is delivered or bounced.
//!
//! Layout under `server.spool`:
//! - `bodies/ID` — the message as received, one file each (sled must not hold bodies:
//!   large values make it grow without bound, see CRATES.md);
//! - `db/` — sled with trees `queue` (ID → [`Entry`] as JSON), `schedule` ((due, ID)
//!   big-endian → nothing), and the routing memories' trees (see `memory`).
//!
//! Writes go through one committer task that applies every request waiting at that
//! moment and then flushes once (group commit): concurrent sessions share an fsync.

mod body;
mod commit;
mod door;
mod entry;
mod memory;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

pub use body::BodySink;
pub use commit::Op;
pub use door::{local_received, NewBody, NewMessage};
pub use entry::{Entry, Rcpt, RcptState, StoredDelivery, StoredKind};
pub use memory::MemoryOp;

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Handle to the spool; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    dir: PathBuf,
    queue: sled::Tree,
    schedule: sled::Tree,
    memories: memory::Trees,
    commits: mpsc::UnboundedSender<commit::Request>,
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
    /// inside a tokio runtime. Rebuilds the schedule from the queue, so a crash between
    /// taking a message off the schedule and finishing it loses nothing.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            SpoolError(format!("spool {}: {what}: {e}", dir.display()))
        };
        crate::private_fs::create_dir_all(dir).map_err(|e| err("cannot create", &e))?;
        crate::private_fs::create_dir_all(&dir.join("bodies"))
            .map_err(|e| err("cannot create", &e))?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(64 * 1024 * 1024)
            .open()
            .map_err(|e| err("cannot open (is another teamrelay using it?)", &e))?;
        // sled made its files with the umask of whoever ran first; customer mail is
        // private (SPEC §6).
        crate::private_fs::restrict_tree(dir).map_err(|e| err("cannot make private", &e))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| err("cannot open tree", &e));
        let (queue, schedule) = (tree("queue")?, tree("schedule")?);
        let memories = memory::Trees::open(&db).map_err(|e| err("cannot open tree", &e))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let spool = Spool {
            dir: dir.to_path_buf(),
            queue,
            schedule,
            memories,
            commits: tx,
        };
        spool
            .rebuild_schedule()
            .map_err(|e| err("cannot rebuild schedule", &e))?;
        spool.remove_orphan_bodies();
        tokio::spawn(commit::run(db, spool.clone(), rx));
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

    /// Where the body of message `id` lives.
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
        let bytes = self.queue.get(id.as_bytes()).ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every queued message, oldest first.
    pub fn all(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .queue
            .iter()
            .filter_map(|kv| kv.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect();
        v.sort_by_key(|e: &Entry| (e.received_at, e.id.clone()));
        v
    }

    /// When the oldest queued message arrived (Unix seconds). Ids start with the
    /// arrival time, so the first key is the oldest.
    pub fn oldest_received(&self) -> Option<u64> {
        let (_, v) = self.queue.first().ok()??;
        serde_json::from_slice::<Entry>(&v)
            .ok()
            .map(|e| e.received_at)
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Takes every message due at `now` off the schedule and returns their ids. The
    /// caller owns them until it commits a new schedule or removes them.
    pub fn take_due(&self, now: u64, limit: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let end = (now + 1).to_be_bytes();
        for kv in self.schedule.range(..end.as_slice()).take(limit) {
            let Ok((key, _)) = kv else { continue };
            if self.schedule.remove(&key).ok().flatten().is_some() {
                if let Ok(id) = std::str::from_utf8(&key[8..]) {
                    ids.push(id.to_string());
                }
            }
        }
        ids
    }

    /// When the next scheduled message is due, if any.
    pub fn next_due(&self) -> Option<u64> {
        let (key, _) = self.schedule.first().ok()??;
        Some(u64::from_be_bytes(key[..8].try_into().ok()?))
    }

    fn rebuild_schedule(&self) -> sled::Result<()> {
        self.schedule.clear()?;
        for e in self.all() {
            self.schedule.insert(schedule_key(e.next_try, &e.id), &[])?;
        }
        Ok(())
    }

    /// Bodies without a record are messages that never got their `250`: remove them.
    /// A record without a body cannot be delivered; it cannot have been acknowledged
    /// either (the body is synced before the record is written), so it goes too.
    fn remove_orphan_bodies(&self) {
        for e in self.all() {
            if !self.body_path(&e.id).exists() {
                tracing::warn!(id = %e.id, "queue record without its body removed");
                let _ = self.queue.remove(e.id.as_bytes());
                let _ = self.schedule.remove(schedule_key(e.next_try, &e.id));
            }
        }
        let Ok(dir) = std::fs::read_dir(self.dir.join("bodies")) else {
            return;
        };
        for f in dir.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if !self.queue.contains_key(name.as_bytes()).unwrap_or(true) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
}

/// `(due, id)` as a key that sorts by due time.
fn schedule_key(due: u64, id: &str) -> Vec<u8> {
    let mut k = due.to_be_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}
