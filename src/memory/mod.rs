//! The routing memories behind one interface (SPEC §4, §9, §10): which team address has
//! which Message-ID, private threads, each Message-ID's thread and each thread's owner,
//! recent replies per thread, and absences.
//!
//! Two backends implement [`Backend`]: [`SpoolMemory`] (sled in the spool, the default:
//! its writes are ops committed together with the message, so they are durable before
//! the `250` exactly when the message is) and [`RedisMemory`] (`[memory] url`, shared
//! by several instances; Redis's own expiry; the copy check and its record one atomic
//! step). The policy never sees either: the session asks [`Backend::recall`] for plain
//! values, `route::plan` decides, and [`Backend::remember`] records what the plan says.
//!
//! A backend that cannot answer makes the end of DATA a `451 4.3.0`: a message is never
//! accepted without its memories (that could leak a private thread or duplicate a copy).

pub mod cli;
mod notice;
mod redis;
mod spool;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use self::redis::RedisMemory;
pub use self::spool::SpoolMemory;
pub use notice::{excerpt, notice};

use crate::address::Address;
use crate::config::Config;
use crate::route::{Absence, Memory, Query, Remember};
use crate::spool::{Op, Spool};

/// A boxed future, so the trait can be used as `dyn Backend`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The memory could not be read or written (Redis down or slow, the spool failing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryError(pub String);

impl std::fmt::Display for MemoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MemoryError {}

/// What recording a plan's memories gave.
#[derive(Debug, Default)]
pub struct Remembered {
    /// Archive-copy recipients that turned out to have the message already (another
    /// instance recorded it between our recall and our record): drop their copies.
    pub lost: HashSet<Address>,
    /// Ops to commit together with the message (the spool backend's records).
    pub ops: Vec<Op>,
}

/// One place the routing memories live.
pub trait Backend: Send + Sync {
    /// `"spool"` or `"redis"`, for logs and metrics.
    fn name(&self) -> &'static str;

    /// Everything remembered about a message with these headers.
    fn recall<'a>(&'a self, q: &'a Query) -> BoxFuture<'a, Result<Memory, MemoryError>>;

    /// Records what a plan asked for. Claims (archive copies) are checked and recorded
    /// in one atomic step; the ones already taken come back in `lost`.
    fn remember<'a>(&'a self, r: &'a Remember) -> BoxFuture<'a, Result<Remembered, MemoryError>>;

    /// Undoes the copy claims a [`Backend::remember`] won, when the message could not be
    /// spooled after all: the sender's retry must find them free again.
    fn release<'a>(&'a self, r: &'a Remember) -> BoxFuture<'a, Result<(), MemoryError>>;

    /// Absences that have not ended.
    fn absences(&self) -> BoxFuture<'_, Result<Vec<Absence>, MemoryError>>;

    /// Records (or replaces) an absence, durably.
    fn set_absence(&self, a: Absence) -> BoxFuture<'_, Result<(), MemoryError>>;

    /// Ends an absence; `false` when there was none.
    fn end_absence<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<bool, MemoryError>>;

    /// Drops expired records the backend does not expire itself; returns how many.
    fn sweep(&self) -> usize {
        0
    }
}

/// The backend a configuration asks for.
pub fn open(config: &Config, spool: &Spool) -> Arc<dyn Backend> {
    match &config.memory {
        None => {
            succeeded("spool");
            Arc::new(SpoolMemory::new(spool.clone()))
        }
        Some(m) => {
            let redis = RedisMemory::open(m);
            // `/metrics` tells the state even while no mail arrives.
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(redis.watch());
            }
            Arc::new(redis)
        }
    }
}

/// Counts a backend error and flags the backend down on `/metrics`.
fn failed(backend: &'static str, e: &MemoryError) {
    tracing::warn!(backend, error = %e, "routing memory unavailable");
    metrics::counter!("teamrelay_memory_errors_total", "backend" => backend).increment(1);
    metrics::gauge!("teamrelay_memory_up", "backend" => backend).set(0.0);
}

/// Flags the backend up on `/metrics`.
fn succeeded(backend: &'static str) {
    metrics::gauge!("teamrelay_memory_up", "backend" => backend).set(1.0);
}
