//! Starting after a crash, and the checkpoints that bound how much a start replays (the
//! guarantees are in the module doc of [`super`]).

use tracing::{info, warn};

use super::commit::{self, Op};
use super::segment::{self, Kind, Position, Writer};
use super::{lock, Entry, MemoryOp, Spool, StoredBody};

/// The `spool` tree key holding the last checkpoint's [`Position`].
const CHECKPOINT: &[u8] = b"checkpoint";

impl Spool {
    /// Brings the queue up to the segments, starts a new segment, checkpoints, and tidies
    /// up: returns the writer for the committer.
    pub(super) fn recover(&self) -> Result<Writer, String> {
        let numbers = segment::list(&self.dir).map_err(|e| e.to_string())?;
        let from = self
            .meta
            .get(CHECKPOINT)
            .map_err(|e| e.to_string())?
            .and_then(|v| serde_json::from_slice::<Position>(&v).ok());
        let replayed = self.replay(&numbers, from)?;
        if replayed > 0 {
            info!(
                records = replayed,
                "spool: replayed the records since the last checkpoint"
            );
        }
        // Orphans first (they need the segments as they are), then what is live, and only
        // then may the checkpoint retire segments.
        self.remove_orphans();
        self.count_live();
        let next = numbers.last().map_or(1, |n| n + 1);
        let writer = Writer::create(&self.dir, next).map_err(|e| format!("new segment: {e}"))?;
        self.checkpoint(writer.position())?;
        self.records.rebuild_schedule();
        Ok(writer)
    }

    /// Applies every frame after `from` (every frame, without a checkpoint) in order.
    /// Frames already in sled are applied again: a record is the whole new state of its
    /// key, so the result is the same.
    fn replay(&self, numbers: &[u64], from: Option<Position>) -> Result<usize, String> {
        let mut applied = 0;
        for (i, &n) in numbers.iter().enumerate() {
            let offset = match from {
                Some(cp) if n < cp.segment => continue,
                Some(cp) if n == cp.segment => cp.offset,
                _ => 0,
            };
            let (frames, torn) = segment::read(&self.dir, n, offset).map_err(|e| e.to_string())?;
            if torn && i + 1 == numbers.len() {
                info!(segment = n, "spool: torn write at the end of the last segment dropped (it was never acknowledged)");
            } else if torn {
                warn!(
                    segment = n,
                    "spool: a corrupt frame ends this segment early; later segments still replayed"
                );
            }
            for frame in frames {
                let kind = frame.kind;
                match decode(frame) {
                    Some((op, at)) => {
                        commit::apply(self, std::slice::from_ref(&op), at)?;
                        applied += 1;
                    }
                    None if kind != Kind::Body => {
                        warn!(segment = n, kind = ?kind, "spool: a record this version cannot read was skipped");
                    }
                    None => {}
                }
            }
        }
        Ok(applied)
    }

    /// Writes the queue's changes and the memories into sled with `applied` as the new
    /// checkpoint (one flush), then deletes the segments before it that no queued
    /// message needs.
    pub(super) fn checkpoint(&self, applied: Position) -> Result<(), String> {
        let value = serde_json::to_vec(&applied).map_err(|e| e.to_string())?;
        self.records
            .checkpoint(&self.db, || self.meta.insert(CHECKPOINT, value).map(drop))?;
        self.retire(applied.segment);
        Ok(())
    }

    /// Deletes every segment before `before` holding no queued message's body: their
    /// records are in sled (checkpointed), their bodies delivered.
    fn retire(&self, before: u64) {
        let Ok(numbers) = segment::list(&self.dir) else {
            return;
        };
        for n in numbers.into_iter().filter(|&n| n < before) {
            if !self.segments.is_live(n) {
                let _ = std::fs::remove_file(segment::path(&self.dir, n));
            }
        }
    }

    /// Bodies without a record are messages that never got their `250`: removed. A
    /// record whose body is missing or cut short cannot be delivered; it cannot have
    /// been acknowledged either (a body is durable before its record), so it goes too.
    fn remove_orphans(&self) {
        for e in self.all() {
            if !self.body_complete(&e) {
                warn!(id = %e.id, "queue record without its body removed");
                self.records.change().remove(&e.id);
            }
        }
        let Ok(dir) = std::fs::read_dir(self.dir.join("bodies")) else {
            return;
        };
        for f in dir.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            let queued = self.get(&name);
            if queued.is_none_or(|e| e.body != StoredBody::File) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }

    fn body_complete(&self, e: &Entry) -> bool {
        match e.body {
            StoredBody::File => self.body_path(&e.id).exists(),
            StoredBody::Segment {
                segment: n,
                offset,
                len,
            } => {
                let end = offset.checked_add(len);
                std::fs::metadata(segment::path(&self.dir, n))
                    .is_ok_and(|m| end.is_some_and(|end| m.len() >= end))
            }
        }
    }

    /// The live count of each segment, from the queue.
    fn count_live(&self) {
        lock(&self.segments.live).clear();
        for e in self.all() {
            self.segments.hold(e.body);
        }
    }
}

/// A replayed frame as the op it recorded, with the time a memory frame was committed
/// (the other ops do not read the time: 0).
fn decode(frame: segment::Frame) -> Option<(Op, u64)> {
    match frame.kind {
        Kind::Body => None,
        Kind::Put => {
            let entry: Entry = serde_json::from_slice(&frame.payload).ok()?;
            Some((Op::Put(entry), 0))
        }
        Kind::Retry => {
            let (id, due): (String, u64) = serde_json::from_slice(&frame.payload).ok()?;
            Some((Op::Retry { id, due }, 0))
        }
        Kind::Update => {
            let entry: Entry = serde_json::from_slice(&frame.payload).ok()?;
            Some((Op::Update(entry), 0))
        }
        Kind::Remove => Some((Op::Remove(String::from_utf8(frame.payload).ok()?), 0)),
        Kind::Memory => {
            let (at, op): (u64, MemoryOp) = serde_json::from_slice(&frame.payload).ok()?;
            Some((Op::Memory(op), at))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spool::{NewBody, NewMessage, Rcpt, RcptState, StoredDelivery, StoredKind};

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn message(id: &str, body: &[u8]) -> NewMessage {
        NewMessage {
            id: id.into(),
            sender: Some("customer@shop.example".into()),
            received: "Received: test".into(),
            size: body.len() as u64,
            deliveries: vec![StoredDelivery {
                kind: StoredKind::Original,
                team_route: true,
                sender: None,
                headers: Vec::new(),
                rcpts: vec![Rcpt {
                    address: "alice@example.com".into(),
                    state: RcptState::Pending { last_error: None },
                }],
            }],
            body: NewBody::Built(body.to_vec()),
            smtputf8: false,
            eight_bit: false,
        }
    }

    /// Runs `f` on a spool opened in its own runtime, then drops both, as a process that
    /// stops (or dies: nothing is flushed on the way out but what `f` flushes).
    fn with_spool<T>(dir: &Path, f: impl AsyncFnOnce(&Spool) -> T) -> T {
        runtime().block_on(async {
            let spool = open_again(dir).await;
            f(&spool).await
        })
    }

    /// Opens the spool, waiting (a bounded while) for the previous runtime's sled to let
    /// go of its lock: sled's background threads may still hold the last reference for a
    /// moment after the runtime that used it is dropped.
    async fn open_again(dir: &Path) -> Spool {
        for _ in 0..100 {
            match Spool::open(dir) {
                Ok(spool) => return spool,
                Err(e) if e.0.contains("could not acquire lock") => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the spool's lock was not released within 5 s");
    }

    /// What a crash that lost everything since `checkpoint` leaves: the changes in
    /// memory gone, the records of `ids` not in sled, and the checkpoint back where it
    /// was.
    fn lose_since(spool: &Spool, checkpoint: &sled::IVec, ids: &[&str]) {
        for id in ids {
            spool.records.queue.remove(id.as_bytes()).unwrap();
        }
        spool.meta.insert(CHECKPOINT, checkpoint.clone()).unwrap();
        spool.db.flush().unwrap();
        spool.records.forget_unflushed();
    }

    /// A checkpoint now, instead of half a second after the commit.
    fn checkpoint_now(spool: &Spool) {
        spool
            .checkpoint(spool.segments.applied().expect("a commit was applied"))
            .unwrap();
    }

    #[test]
    fn an_acknowledged_message_sled_lost_is_replayed_from_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let id = Spool::new_id();
        with_spool(dir.path(), async |spool| {
            let before = spool.meta.get(CHECKPOINT).unwrap().unwrap();
            let m = message(&id, b"Subject: quote\r\n\r\n10% off\r\n");
            spool.accept(vec![m], Vec::new()).await.unwrap();
            lose_since(spool, &before, &[&id]);
            assert!(spool.get(&id).is_none());
        });
        with_spool(dir.path(), async |spool| {
            let entry = spool.get(&id).expect("replayed from the segment");
            let body = spool.body_of(&entry).read_all().unwrap();
            assert_eq!(body, b"Subject: quote\r\n\r\n10% off\r\n");
            assert_eq!(spool.take_due(crate::spool::now(), 10), vec![id]);
        });
    }

    #[test]
    fn a_finished_message_stays_finished_after_replay_and_its_segment_goes() {
        let dir = tempfile::tempdir().unwrap();
        let (done, kept) = (Spool::new_id(), Spool::new_id());
        let first_segment = with_spool(dir.path(), async |spool| {
            let before = spool.meta.get(CHECKPOINT).unwrap().unwrap();
            let messages = vec![message(&done, b"one\r\n"), message(&kept, b"two\r\n")];
            spool.accept(messages, Vec::new()).await.unwrap();
            checkpoint_now(spool);
            let done_record = spool.records.queue.get(done.as_bytes()).unwrap().unwrap();
            spool.commit(vec![Op::Remove(done.clone())]).await.unwrap();
            // sled lost kept's record and done's removal; the segments have both.
            lose_since(spool, &before, &[&kept]);
            spool
                .records
                .queue
                .insert(done.as_bytes(), done_record)
                .unwrap();
            spool.db.flush().unwrap();
            segment::list(&spool.dir).unwrap()[0]
        });
        with_spool(dir.path(), async |spool| {
            assert!(spool.get(&done).is_none(), "a delivered message came back");
            assert!(spool.get(&kept).is_some(), "a queued message was lost");
            let segments = segment::list(&spool.dir).unwrap();
            assert!(segments.contains(&first_segment), "kept's body is there");
            spool.commit(vec![Op::Remove(kept.clone())]).await.unwrap();
        });
        with_spool(dir.path(), async |spool| {
            assert!(spool.is_empty());
            let segments = segment::list(&spool.dir).unwrap();
            assert_eq!(
                segments.len(),
                1,
                "only the new segment is left: {segments:?}"
            );
            assert!(segments[0] > first_segment);
        });
    }

    #[test]
    fn a_try_recorded_after_a_delete_does_not_bring_the_message_back() {
        let dir = tempfile::tempdir().unwrap();
        let id = Spool::new_id();
        with_spool(dir.path(), async |spool| {
            let before = spool.meta.get(CHECKPOINT).unwrap().unwrap();
            spool
                .accept(vec![message(&id, b"hi\r\n")], Vec::new())
                .await
                .unwrap();
            let mut tried = spool.get(&id).unwrap();
            tried.attempts = 1;
            // `queue delete` lands while the try is under way; then the try records.
            spool.commit(vec![Op::Remove(id.clone())]).await.unwrap();
            spool.commit(vec![Op::Update(tried)]).await.unwrap();
            assert!(spool.get(&id).is_none(), "the delete lost to the try");
            lose_since(spool, &before, &[]);
        });
        with_spool(dir.path(), async |spool| {
            assert!(spool.get(&id).is_none(), "replay brought it back");
        });
    }

    #[test]
    fn queue_retry_moves_the_due_time_and_keeps_what_a_try_recorded_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let id = Spool::new_id();
        with_spool(dir.path(), async |spool| {
            let before = spool.meta.get(CHECKPOINT).unwrap().unwrap();
            spool
                .accept(vec![message(&id, b"hi\r\n")], Vec::new())
                .await
                .unwrap();
            let mut tried = spool.get(&id).unwrap();
            tried.attempts = 1;
            tried.next_try += 3600;
            tried.deliveries[0].rcpts[0].state = RcptState::Pending {
                last_error: Some("451 4.3.0 later".into()),
            };
            // The try records, then a `queue retry` read before it lands.
            spool.commit(vec![Op::Update(tried)]).await.unwrap();
            spool
                .commit(vec![Op::Retry {
                    id: id.clone(),
                    due: 5,
                }])
                .await
                .unwrap();
            let check = |e: Entry| {
                assert_eq!(e.attempts, 1, "the try's outcome was overwritten");
                assert_eq!(e.next_try, 5);
                assert_eq!(e.last_error(), Some("451 4.3.0 later"));
            };
            check(spool.get(&id).unwrap());
            assert_eq!(spool.take_due(5, 10), vec![id.clone()]);
            lose_since(spool, &before, &[&id]);
        });
        with_spool(dir.path(), async |spool| {
            let e = spool.get(&id).expect("replayed");
            assert_eq!((e.attempts, e.next_try), (1, 5), "replay differs");
        });
    }

    #[test]
    fn a_record_too_large_for_a_frame_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        with_spool(dir.path(), async |spool| {
            let id = Spool::new_id();
            let mut huge = message(&id, b"x\r\n");
            huge.sender = Some("a".repeat(segment::MAX_FRAME as usize));
            let before = std::fs::metadata(segment::path(&spool.dir, 1))
                .unwrap()
                .len();
            let refused = spool.accept(vec![huge], Vec::new()).await;
            assert!(
                matches!(refused, Err(crate::spool::CommitError::Records(_))),
                "{refused:?}"
            );
            assert!(spool.get(&id).is_none());
            let after = std::fs::metadata(segment::path(&spool.dir, 1))
                .unwrap()
                .len();
            assert_eq!(before, after, "a frame a reader would drop was written");
            let ok = Spool::new_id();
            spool
                .accept(vec![message(&ok, b"fine\r\n")], Vec::new())
                .await
                .unwrap();
            assert!(spool.get(&ok).is_some(), "the spool goes on");
        });
    }

    #[test]
    fn a_write_torn_by_a_crash_is_dropped_and_everything_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, torn) = (Spool::new_id(), Spool::new_id());
        let segment_path = with_spool(dir.path(), async |spool| {
            let before = spool.meta.get(CHECKPOINT).unwrap().unwrap();
            spool
                .accept(vec![message(&first, b"first\r\n")], Vec::new())
                .await
                .unwrap();
            let path = segment::path(
                &spool.dir,
                *segment::list(&spool.dir).unwrap().last().unwrap(),
            );
            let whole = std::fs::metadata(&path).unwrap().len();
            spool
                .accept(vec![message(&torn, b"second\r\n")], Vec::new())
                .await
                .unwrap();
            lose_since(spool, &before, &[&first, &torn]);
            (path, whole)
        });
        // The second batch only half reached the disk.
        let (path, whole) = segment_path;
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(whole + (len - whole) / 2).unwrap();
        with_spool(dir.path(), async |spool| {
            let entry = spool.get(&first).expect("the whole batch before the tear");
            assert_eq!(spool.body_of(&entry).read_all().unwrap(), b"first\r\n");
            assert!(spool.get(&torn).is_none(), "a torn record was replayed");
            assert_eq!(spool.len(), 1);
        });
    }

    #[test]
    fn a_record_whose_segment_is_cut_short_is_removed_not_delivered_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let id = Spool::new_id();
        let path = with_spool(dir.path(), async |spool| {
            spool
                .accept(vec![message(&id, b"a body of some length\r\n")], Vec::new())
                .await
                .unwrap();
            let StoredBody::Segment {
                segment: n, offset, ..
            } = spool.get(&id).unwrap().body
            else {
                panic!("a small body in a segment");
            };
            // The record is in sled for sure; only the segment is damaged.
            checkpoint_now(spool);
            assert!(spool.records.queue.contains_key(id.as_bytes()).unwrap());
            (segment::path(&spool.dir, n), offset)
        });
        let (path, offset) = path;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(offset + 3).unwrap();
        with_spool(dir.path(), async |spool| {
            assert!(spool.get(&id).is_none());
        });
    }
}
