//! The one door into the spool: [`Spool::accept`] queues new messages — received over
//! SMTP, DSNs, and any message teamrelay makes itself — and owns the three promises
//! every caller used to keep by hand:
//!
//! 1. **Body before record.** A small body goes into the segment with its record (one
//!    fsync covers both, and a torn write drops both); a large body's file is fsync'd,
//!    with its directory entry, before its record is written. `accept` returns once the
//!    segment is synced.
//! 2. **All or nothing.** A message's recipients are one record, and everything passed
//!    in one call — several messages plus the caller's other ops (routing memories,
//!    the delivery state a DSN reports) — is one commit.
//! 3. **Cleanup.** If anything fails, every body this call wrote is removed and the
//!    caller gets the error; nothing half-queued stays behind.

use super::body::Finished;
use super::{now, BodySink, CommitError, Entry, Op, Spool, StoredBody, StoredDelivery};

/// A body for a new message.
pub enum NewBody {
    /// Streamed in while DATA arrived.
    Received(BodySink),
    /// Made in memory (a DSN, a notice).
    Built(Vec<u8>),
}

/// A message to queue: its envelope and plan, without the spool's bookkeeping (arrival
/// time, attempts, schedule), which `accept` fills in.
pub struct NewMessage {
    /// From [`Spool::new_id`].
    pub id: String,
    /// Envelope sender; `None` for `<>`.
    pub sender: Option<String>,
    /// teamrelay's `Received:` field, prepended to every delivery.
    pub received: String,
    /// Body size in octets.
    pub size: u64,
    /// The transactions to make. A message without any is not queued (its body is
    /// dropped) while the other ops of the call are still committed.
    pub deliveries: Vec<StoredDelivery>,
    pub body: NewBody,
    /// MAIL carried `SMTPUTF8` (see [`Entry::smtputf8`]).
    pub smtputf8: bool,
    /// The body holds a byte above 127 (see [`Entry::eight_bit`]).
    pub eight_bit: bool,
}

/// The `Received:` field of a message teamrelay makes itself (a DSN, a notice, a
/// backfilled copy): no peer to name, just this host, the new queue id and the time.
pub fn local_received(hostname: &str, id: &str) -> String {
    let date = mail_parser::DateTime::from_timestamp(now() as i64).to_rfc822();
    format!("Received: by {hostname} (teamrelay) id {id};\r\n\t{date}")
}

impl NewMessage {
    /// Its body, and its record as first queued at `arrival`.
    fn into_parts(self, arrival: u64) -> (NewBody, Entry) {
        let entry = Entry {
            id: self.id,
            received_at: arrival,
            sender: self.sender,
            received: self.received,
            size: self.size,
            deliveries: self.deliveries,
            attempts: 0,
            next_try: arrival,
            smtputf8: self.smtputf8,
            eight_bit: self.eight_bit,
            // The committer puts in where the segment holds it.
            body: StoredBody::File,
        };
        (self.body, entry)
    }
}

impl Spool {
    /// Queues `messages` and applies `with` in one durable commit (see the module doc).
    pub async fn accept(
        &self,
        messages: Vec<NewMessage>,
        with: Vec<Op>,
    ) -> Result<(), CommitError> {
        let mut ops = Vec::with_capacity(messages.len() * 2 + with.len());
        let mut written = Vec::new();
        let arrival = now();
        for m in messages {
            if m.deliveries.is_empty() {
                if let NewBody::Received(sink) = m.body {
                    sink.discard().await;
                }
                continue;
            }
            // A body may become a file (BodySink decides): on failure, whatever file
            // this call made goes.
            written.push(m.id.clone());
            let (body, entry) = m.into_parts(arrival);
            match self.body_op(&entry.id, body).await {
                Ok(op) => ops.push(op),
                Err(e) => {
                    self.remove_bodies(&written).await;
                    return Err(CommitError::Body(e.to_string()));
                }
            }
            ops.push(Op::Put(entry));
        }
        ops.extend(with);
        if ops.is_empty() {
            return Ok(());
        }
        let result = self.commit(ops).await;
        if result.is_err() {
            self.remove_bodies(&written).await;
        }
        result
    }

    /// Finishes a new message's body: the op that makes it durable with its record.
    async fn body_op(&self, id: &str, body: NewBody) -> std::io::Result<Op> {
        let finished = match body {
            NewBody::Received(mut sink) => sink.finish().await,
            NewBody::Built(bytes) => {
                let mut sink = self.body_sink(id);
                sink.buf = bytes;
                sink.finish().await
            }
        }?;
        Ok(match finished {
            Finished::Memory(bytes) => Op::AppendBody {
                id: id.to_string(),
                bytes,
            },
            Finished::File(file) => Op::SyncBody(file),
        })
    }

    async fn remove_bodies(&self, ids: &[String]) {
        for id in ids {
            let _ = tokio::fs::remove_file(self.body_path(id)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Rcpt, RcptState, StoredKind};

    fn delivery(to: &str) -> StoredDelivery {
        StoredDelivery {
            kind: StoredKind::Original,
            team_route: true,
            sender: None,
            headers: Vec::new(),
            rcpts: vec![Rcpt {
                address: to.into(),
                state: RcptState::Pending { last_error: None },
            }],
        }
    }

    fn built(id: &str, deliveries: Vec<StoredDelivery>) -> NewMessage {
        NewMessage {
            id: id.into(),
            sender: None,
            received: "Received: test".into(),
            size: 5,
            deliveries,
            body: NewBody::Built(b"hello".to_vec()),
            smtputf8: false,
            eight_bit: false,
        }
    }

    #[tokio::test]
    async fn several_messages_are_one_commit_with_bodies_first() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let (a, b) = (Spool::new_id(), Spool::new_id());
        let messages = vec![
            built(&a, vec![delivery("x@example.com")]),
            built(&b, vec![delivery("y@example.com")]),
        ];
        spool.accept(messages, Vec::new()).await.unwrap();
        for id in [&a, &b] {
            let entry = spool.get(id).expect("record");
            assert_eq!(entry.attempts, 0);
            assert!(matches!(entry.body, StoredBody::Segment { len: 5, .. }));
            assert_eq!(spool.body_of(&entry).read_all().unwrap(), b"hello");
            assert!(!spool.body_path(id).exists(), "a small body has no file");
        }
        assert_eq!(spool.take_due(now(), 10).len(), 2);
    }

    #[tokio::test]
    async fn a_message_without_deliveries_leaves_no_body_or_record() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let id = Spool::new_id();
        let mut sink = spool.body_sink(&id);
        sink.buf
            .extend_from_slice(b"x".repeat(300 * 1024).as_slice());
        sink.maybe_flush().await.unwrap();
        assert!(spool.body_path(&id).exists());
        let m = NewMessage {
            body: NewBody::Received(sink),
            ..built(&id, Vec::new())
        };
        spool.accept(vec![m], Vec::new()).await.unwrap();
        assert!(spool.get(&id).is_none());
        assert!(!spool.body_path(&id).exists());
    }
}

#[cfg(test)]
mod large_tests {
    use super::*;
    use crate::spool::body::FLUSH_AT;
    use crate::spool::{Rcpt, RcptState, StoredKind};

    #[tokio::test]
    async fn a_large_body_keeps_its_own_file_and_a_small_one_goes_into_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let (big, small) = (Spool::new_id(), Spool::new_id());
        let delivery = StoredDelivery {
            kind: StoredKind::Original,
            team_route: true,
            sender: None,
            headers: Vec::new(),
            rcpts: vec![Rcpt {
                address: "x@example.com".into(),
                state: RcptState::Pending { last_error: None },
            }],
        };
        let big_body = b"y".repeat(FLUSH_AT + 1);
        let message = |id: &str, body: Vec<u8>| NewMessage {
            id: id.into(),
            sender: None,
            received: "Received: test".into(),
            size: body.len() as u64,
            deliveries: vec![delivery.clone()],
            body: NewBody::Built(body),
            smtputf8: false,
            eight_bit: false,
        };
        let messages = vec![
            message(&big, big_body.clone()),
            message(&small, b"tiny".to_vec()),
        ];
        spool.accept(messages, Vec::new()).await.unwrap();
        let (b, s) = (spool.get(&big).unwrap(), spool.get(&small).unwrap());
        assert_eq!(b.body, StoredBody::File);
        assert_eq!(std::fs::read(spool.body_path(&big)).unwrap(), big_body);
        assert_eq!(spool.body_of(&b).read_all().unwrap(), big_body);
        assert!(matches!(s.body, StoredBody::Segment { .. }));
        assert_eq!(spool.body_of(&s).read_all().unwrap(), b"tiny");
    }
}
