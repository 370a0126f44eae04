//! Idle connections to next hops, kept for reuse: most of the cost of relaying a small
//! message is the TCP and SMTP handshake, and a busy relay sends many messages to the same
//! one or two next hops. A connection is kept only after a transaction ended cleanly, and
//! only for [`IDLE`]; there are at most [`MAX_IDLE`] per route.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

// tokio's clock, so a paused test clock ages idle connections too.
use tokio::time::Instant;

use super::connection::Conn;

/// How long an idle connection is kept (well under the usual 300 s server timeout).
pub const IDLE: Duration = Duration::from_secs(20);
/// Idle connections kept per route.
pub const MAX_IDLE: usize = 32;

/// Idle connections by route key.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<(Instant, Conn)>>>,
}

impl Pool {
    /// An idle connection for `key`, if a fresh one is there.
    pub fn take(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((since, conn)) = list.pop() {
            if since.elapsed() < IDLE {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next transaction to `key`.
    pub fn put(&self, key: &str, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(key.to_string()).or_default();
        list.retain(|(since, _)| since.elapsed() < IDLE);
        if list.len() < MAX_IDLE {
            list.push((Instant::now(), conn));
        }
    }

    /// Drops connections idle for too long (closing them).
    pub fn prune(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        for list in idle.values_mut() {
            list.retain(|(since, _)| since.elapsed() < IDLE);
        }
    }
}
