//! The queue's records and schedule as the relay reads them: sled's `queue` tree as of
//! the last checkpoint, with every change since kept here in memory on top of it.
//!
//! A commit only changes memory; its frames in the segment are the durable copy. A
//! checkpoint writes what is left of those changes into sled and flushes it, so a
//! message queued and delivered between two checkpoints (the usual case) never touches
//! sled at all. Memory holds at most the changes of one checkpoint interval, not the
//! queue: a large backlog stays in sled.
//!
//! The schedule is an index of the queue, rebuilt on every start, so it lives only here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Entry;

/// The newest state of one record: `None` when it was removed.
type Change = Option<Arc<Entry>>;

/// sled's queue tree plus the changes it does not have yet.
pub(super) struct Records {
    /// As of the last checkpoint; written only by [`Records::checkpoint`].
    pub(super) queue: sled::Tree,
    state: Mutex<State>,
}

struct State {
    /// Changes since the running checkpoint (or the last one) took its copy.
    recent: HashMap<String, Change>,
    /// The changes the running checkpoint is writing to sled: still read from here
    /// until they are flushed.
    writing: HashMap<String, Change>,
    /// How many messages are queued.
    len: usize,
    /// (due, id) of every message not being tried right now.
    schedule: BTreeSet<(u64, String)>,
}

/// One request's changes to the queue, made under one lock: every reader sees all of
/// them or none (a DSN and the failure it reports appear together).
pub(super) struct Changes<'a> {
    queue: &'a sled::Tree,
    state: MutexGuard<'a, State>,
}

impl Records {
    pub(super) fn new(queue: sled::Tree) -> Records {
        let len = queue.len();
        Records {
            queue,
            state: Mutex::new(State {
                recent: HashMap::new(),
                writing: HashMap::new(),
                len,
                schedule: BTreeSet::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is one map insert: a panic elsewhere cannot leave it half-made.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a request's changes.
    pub(super) fn change(&self) -> Changes<'_> {
        Changes {
            queue: &self.queue,
            state: self.lock(),
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<Entry> {
        self.lock().get(&self.queue, id).map(|e| (*e).clone())
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len
    }

    /// Every queued message, in id order.
    pub(super) fn all(&self) -> Vec<Entry> {
        let state = self.lock();
        let mut all: std::collections::BTreeMap<String, Arc<Entry>> = self
            .queue
            .iter()
            .filter_map(|kv| kv.ok())
            .filter_map(|(_, v)| serde_json::from_slice::<Entry>(&v).ok())
            .map(|e| (e.id.clone(), Arc::new(e)))
            .collect();
        for (id, change) in state.writing.iter().chain(state.recent.iter()) {
            match change {
                Some(e) => all.insert(id.clone(), e.clone()),
                None => all.remove(id),
            };
        }
        all.into_values().map(|e| (*e).clone()).collect()
    }

    /// The id of the oldest queued message (ids begin with their arrival time).
    pub(super) fn first_id(&self) -> Option<String> {
        let state = self.lock();
        let newer = |id: &str| {
            state
                .recent
                .get(id)
                .or_else(|| state.writing.get(id))
                .cloned()
        };
        let in_sled = self
            .queue
            .iter()
            .keys()
            .filter_map(|k| k.ok())
            .filter_map(|k| String::from_utf8(k.to_vec()).ok())
            .find(|id| newer(id).is_none_or(|c| c.is_some()));
        let in_memory = state
            .writing
            .keys()
            .chain(state.recent.keys())
            .filter(|id| newer(id).is_some_and(|c| c.is_some()))
            .min()
            .cloned();
        in_sled.into_iter().chain(in_memory).min()
    }

    /// Takes up to `limit` messages due at `now` off the schedule.
    pub(super) fn take_due(&self, now: u64, limit: usize) -> Vec<String> {
        let mut state = self.lock();
        let mut ids = Vec::new();
        while ids.len() < limit {
            match state.schedule.first() {
                Some((due, _)) if *due <= now => {
                    let (_, id) = state.schedule.pop_first().expect("just seen");
                    ids.push(id);
                }
                _ => break,
            }
        }
        ids
    }

    pub(super) fn schedule(&self, due: u64, id: &str) {
        self.lock().schedule.insert((due, id.to_string()));
    }

    pub(super) fn next_due(&self) -> Option<u64> {
        self.lock().schedule.first().map(|(due, _)| *due)
    }

    /// Puts every queued message on the schedule at its next try (on start).
    pub(super) fn rebuild_schedule(&self) {
        let all = self.all();
        let mut state = self.lock();
        state.schedule = all.into_iter().map(|e| (e.next_try, e.id)).collect();
    }

    /// Writes the changes made so far into sled and flushes it, with `then` (the
    /// checkpoint record) in the same flush. On failure the changes stay in memory for
    /// the next checkpoint.
    pub(super) fn checkpoint(
        &self,
        db: &sled::Db,
        then: impl FnOnce() -> sled::Result<()>,
    ) -> Result<(), String> {
        let copy: Vec<(String, Change)> = {
            let mut state = self.lock();
            let recent = std::mem::take(&mut state.recent);
            // A failed checkpoint left its changes in `writing`; newer ones win.
            state.writing.extend(recent);
            state
                .writing
                .iter()
                .map(|(id, c)| (id.clone(), c.clone()))
                .collect()
        };
        let written = (|| {
            let mut batch = sled::Batch::default();
            for (id, change) in &copy {
                match change {
                    Some(e) => batch.insert(
                        id.as_bytes(),
                        serde_json::to_vec(&**e).map_err(|e| e.to_string())?,
                    ),
                    None => batch.remove(id.as_bytes()),
                }
            }
            self.queue.apply_batch(batch).map_err(|e| e.to_string())?;
            then().map_err(|e| e.to_string())?;
            db.flush().map_err(|e| format!("flush: {e}"))?;
            Ok(())
        })();
        let mut state = self.lock();
        if written.is_ok() {
            state.writing.clear();
        } else {
            let writing = std::mem::take(&mut state.writing);
            for (id, change) in writing {
                state.recent.entry(id).or_insert(change);
            }
        }
        written
    }

    /// Forgets every change not yet checkpointed: what a crash does (tests).
    #[cfg(test)]
    pub(super) fn forget_unflushed(&self) {
        let mut state = self.lock();
        state.recent.clear();
        state.writing.clear();
        state.len = self.queue.len();
    }
}

impl State {
    fn get(&self, queue: &sled::Tree, id: &str) -> Option<Arc<Entry>> {
        if let Some(change) = self.recent.get(id).or_else(|| self.writing.get(id)) {
            return change.clone();
        }
        let bytes = queue.get(id.as_bytes()).ok()??;
        serde_json::from_slice(&bytes).ok().map(Arc::new)
    }
}

impl Changes<'_> {
    pub(super) fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.state.get(self.queue, id)
    }

    /// Records `entry` as its message's whole new state and schedules it at its next
    /// try; returns the state it replaced.
    pub(super) fn put(&mut self, entry: Entry) -> Option<Arc<Entry>> {
        let before = self.get(&entry.id);
        self.replace(before.as_deref(), entry);
        before
    }

    /// [`Changes::put`] for a caller that has just looked up `before`, the message's
    /// current state (no second lookup: a record only in sled is parsed once).
    pub(super) fn replace(&mut self, before: Option<&Entry>, entry: Entry) {
        let state = &mut *self.state;
        match before {
            Some(old) => {
                state.schedule.remove(&(old.next_try, old.id.clone()));
            }
            None => state.len += 1,
        }
        state.schedule.insert((entry.next_try, entry.id.clone()));
        state.recent.insert(entry.id.clone(), Some(Arc::new(entry)));
    }

    /// Removes a message's record and schedule; returns the record.
    pub(super) fn remove(&mut self, id: &str) -> Option<Arc<Entry>> {
        let before = self.get(id)?;
        let state = &mut *self.state;
        state.schedule.remove(&(before.next_try, id.to_string()));
        state.len = state.len.saturating_sub(1);
        state.recent.insert(id.to_string(), None);
        Some(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::StoredBody;

    fn records() -> (sled::Db, Records) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let queue = db.open_tree("queue").unwrap();
        (db, Records::new(queue))
    }

    fn entry(id: &str, next_try: u64) -> Entry {
        Entry {
            id: id.into(),
            received_at: 1,
            sender: None,
            received: "Received: x".into(),
            size: 1,
            deliveries: Vec::new(),
            attempts: 0,
            next_try,
            smtputf8: false,
            eight_bit: false,
            body: StoredBody::File,
        }
    }

    fn checkpoint(db: &sled::Db, r: &Records) {
        r.checkpoint(db, || Ok(())).unwrap();
    }

    fn in_sled(r: &Records) -> Vec<String> {
        r.queue
            .iter()
            .keys()
            .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_message_queued_and_finished_between_checkpoints_never_reaches_sled() {
        let (db, r) = records();
        r.change().put(entry("A1", 5));
        assert_eq!(r.len(), 1);
        assert!(r.change().remove("A1").is_some());
        checkpoint(&db, &r);
        assert!(in_sled(&r).is_empty());
        assert_eq!((r.len(), r.get("A1")), (0, None));
        assert!(r.take_due(100, 10).is_empty());
    }

    #[test]
    fn reads_see_one_queue_across_memory_and_sled_and_a_checkpoint_writes_what_is_left() {
        let (db, r) = records();
        r.change().put(entry("A1", 5));
        r.change().put(entry("B2", 5));
        checkpoint(&db, &r);
        assert_eq!(in_sled(&r), ["A1", "B2"]);
        // Since the checkpoint: A1 finished, B2 retried later, C3 arrived.
        r.change().remove("A1");
        let mut later = entry("B2", 50);
        later.attempts = 1;
        r.change().put(later.clone());
        r.change().put(entry("C3", 7));
        assert_eq!(r.get("A1"), None, "memory hides sled's stale record");
        assert_eq!(r.get("B2"), Some(later.clone()));
        let ids: Vec<String> = r.all().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["B2", "C3"]);
        assert_eq!((r.len(), r.first_id().as_deref()), (2, Some("B2")));
        checkpoint(&db, &r);
        assert_eq!(in_sled(&r), ["B2", "C3"]);
        // A start reads sled alone.
        let reopened = Records::new(r.queue.clone());
        assert_eq!(reopened.get("B2"), Some(later));
        assert_eq!(reopened.len(), 2);
    }

    #[test]
    fn a_failed_checkpoint_keeps_its_changes_and_a_change_made_meanwhile_wins() {
        let (db, r) = records();
        r.change().put(entry("A1", 5));
        r.change().put(entry("B2", 5));
        let failed = r.checkpoint(&db, || {
            // B2 finishes while the checkpoint is writing; then the checkpoint fails.
            r.change().remove("B2");
            Err(sled::Error::Unsupported("staged".into()))
        });
        assert!(failed.is_err());
        assert_eq!(
            r.get("B2"),
            None,
            "the newer change lost to the failed copy"
        );
        assert!(r.get("A1").is_some());
        assert_eq!(r.len(), 1);
        checkpoint(&db, &r);
        assert_eq!(
            in_sled(&r),
            ["A1"],
            "the next checkpoint writes what was kept"
        );
    }

    #[test]
    fn the_schedule_follows_each_record_and_gives_due_messages_once() {
        let (_db, r) = records();
        r.change().put(entry("A1", 10));
        r.change().put(entry("B2", 20));
        r.change().put(entry("C3", 30));
        assert_eq!(r.next_due(), Some(10));
        assert_eq!(r.take_due(25, 10), ["A1", "B2"]);
        assert!(r.take_due(25, 10).is_empty(), "taken once");
        // C3 is moved earlier, then finished: it must not stay due at either time.
        r.change().put(entry("C3", 15));
        assert_eq!(r.next_due(), Some(15));
        r.change().remove("C3");
        assert_eq!(r.next_due(), None);
        r.schedule(40, "A1");
        r.rebuild_schedule();
        assert_eq!(
            r.take_due(100, 1),
            ["A1"],
            "rebuilt at each next try, limit kept"
        );
        assert_eq!(r.take_due(100, 10), ["B2"]);
    }
}
