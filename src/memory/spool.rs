//! The default backend: the memories in the spool's sled ([`crate::spool`] owns the
//! trees). Reads are direct; writes are ops returned to the caller, so they commit in
//! the same batch as the message and are durable exactly when it is.

use super::{Backend, BoxFuture, MemoryError, Remembered};
use crate::address::Address;
use crate::route::{Absence, Memory, Query, Remember};
use crate::spool::{MemoryOp, Op, Spool};

/// Memories in the spool.
pub struct SpoolMemory {
    spool: Spool,
}

impl SpoolMemory {
    /// The memories of this spool.
    pub fn new(spool: Spool) -> SpoolMemory {
        SpoolMemory { spool }
    }
}

impl Backend for SpoolMemory {
    fn name(&self) -> &'static str {
        "spool"
    }

    fn recall<'a>(&'a self, q: &'a Query) -> BoxFuture<'a, Result<Memory, MemoryError>> {
        Box::pin(async move { Ok(self.spool.recall(q)) })
    }

    fn remember<'a>(&'a self, r: &'a Remember) -> BoxFuture<'a, Result<Remembered, MemoryError>> {
        // One process owns the spool, and the records are written with the message:
        // a claim already recorded since the recall is lost, the rest ride along.
        let lost = match &r.message_id {
            Some(id) => r
                .claims
                .iter()
                .filter(|c| self.spool.has_message(id, c))
                .filter_map(|c| Address::parse(c).ok())
                .collect(),
            None => Default::default(),
        };
        let ops = if r.is_empty() {
            Vec::new()
        } else {
            vec![Op::Memory(MemoryOp::Remember(Box::new(r.clone())))]
        };
        Box::pin(async move { Ok(Remembered { lost, ops }) })
    }

    fn absences(&self) -> BoxFuture<'_, Result<Vec<Absence>, MemoryError>> {
        Box::pin(async move { Ok(self.spool.absences()) })
    }

    fn set_absence(&self, a: Absence) -> BoxFuture<'_, Result<(), MemoryError>> {
        Box::pin(async move {
            self.spool
                .commit(vec![Op::Memory(MemoryOp::SetAbsence(a))])
                .await
                .map_err(MemoryError)
        })
    }

    fn end_absence<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<bool, MemoryError>> {
        Box::pin(async move {
            let had = self.spool.absences().iter().any(|a| a.address == address);
            self.spool
                .commit(vec![Op::Memory(MemoryOp::EndAbsence(address.to_string()))])
                .await
                .map_err(MemoryError)?;
            Ok(had)
        })
    }

    fn sweep(&self) -> usize {
        self.spool.sweep_memories()
    }
}
