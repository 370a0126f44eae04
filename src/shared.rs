//! What the listeners, the delivery worker, the admin sockets and the history page all
//! share: the current configuration, the spool, the routing memory, the history and the
//! worker's wake-up. It sits below every one of them, so none has to import another
//! just for it.

use std::sync::{Arc, RwLock};

use tokio::sync::Notify;
use tracing::warn;

use crate::config::Config;
use crate::spool::Spool;

/// What every session shares.
pub struct Shared {
    /// The current configuration; replaced as a whole on reload.
    config: RwLock<Arc<Config>>,
    pub spool: Spool,
    /// Where the routing memories live (the spool, or Redis: SPEC §10).
    pub memory: Arc<dyn crate::memory::Backend>,
    /// Wakes the delivery worker when a message was queued.
    pub wake: Arc<Notify>,
    /// The customer history (SPEC §8), once `serve` opened it.
    pub history: std::sync::OnceLock<crate::history::History>,
}

impl Shared {
    /// Shared state for a server with this configuration and spool.
    pub fn new(config: Config, spool: Spool, wake: Arc<Notify>) -> Shared {
        let memory = crate::memory::open(&config, &spool);
        Shared {
            config: RwLock::new(Arc::new(config)),
            spool,
            memory,
            wake,
            history: std::sync::OnceLock::new(),
        }
    }

    /// A snapshot of the configuration; a session keeps one for its whole transaction.
    pub fn config(&self) -> Arc<Config> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the value
        // inside is still a complete config.
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the configuration (SIGHUP). The memory backend stays the one opened at
    /// start: switching it under running sessions could split one message's records.
    pub fn set_config(&self, config: Config) {
        let url = |c: &Config| c.memory.as_ref().map(|m| m.url.clone());
        if url(&config) != url(&self.config()) {
            warn!("[memory] changed: takes effect at the next restart");
        }
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}
