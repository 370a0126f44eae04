//! The end of DATA: read the headers, ask the policy for a plan, make message and plan
//! durable, and only then answer `250`. Any failure before the commit answers `451` and
//! leaves nothing behind, so the client keeps responsibility for the message.

use std::panic::AssertUnwindSafe;

use tracing::{info, warn};

use super::session::Session;
use super::Reply;
use crate::address::Address;
use crate::config::Mode;
use crate::route::{self, Envelope, Ingress, MessageFacts};
use crate::spool::{self, BodySink, Entry, Op, StoredDelivery};

/// More `Received:` fields than this means a mail loop (SPEC §5).
pub const MAX_RECEIVED: usize = 30;

impl Session {
    /// Routes and spools a fully received message; returns the reply for the client.
    pub async fn accept(
        &mut self,
        id: &str,
        sender: Option<Address>,
        recipients: &[Address],
        mut sink: BodySink,
        head: &[u8],
        size: usize,
    ) -> Reply {
        // mail-parser has had panics fixed in the past; a panic here must cost the
        // sender a retry, not the relay its process.
        let facts = std::panic::catch_unwind(AssertUnwindSafe(|| MessageFacts::from_message(head)))
            .unwrap_or_default();
        if facts.received_count > MAX_RECEIVED {
            info!(id = %id, received = facts.received_count, "rejected: mail loop");
            crate::metrics::rejected("mail_loop");
            sink.discard().await;
            return Reply::loop_detected();
        }
        let config = self.config.clone();
        let ingress = if self.listener.mode == Mode::Tap {
            Ingress::Tap
        } else {
            Ingress::Normal
        };
        let envelope = Envelope {
            sender: sender.clone(),
            recipients: recipients.to_vec(),
        };
        let memory = self.spool().recall(&facts);
        let plan = route::plan(&config, &envelope, &facts, &memory, ingress);
        let team = plan.team_recipients();
        let writes = spool::memory_writes(&facts, plan.private, &team, config.team.private_memory);
        log_plan(id, &envelope, &plan, head);
        // SPEC §8: the history keeps its own copy, durable before the 250 like the spool.
        let history = match self.shared.history.get() {
            Some(h) if crate::history::is_kept(&plan) => match sink.contents().await {
                Ok(raw) => Some((h.clone(), raw)),
                Err(e) => {
                    warn!(id = %id, error = %e, "cannot read message body for the history");
                    sink.discard().await;
                    return Reply::local_error();
                }
            },
            _ => None,
        };

        let mut ops = Vec::new();
        if !writes.is_empty() {
            ops.push(Op::Remember(writes));
        }
        if plan.deliveries.is_empty() {
            sink.discard().await;
        } else {
            let file = match sink.finish().await {
                Ok(f) => f,
                Err(e) => {
                    warn!(id = %id, error = %e, "cannot write message body");
                    sink.discard().await;
                    crate::metrics::rejected("local_error");
                    return Reply::local_error();
                }
            };
            let now = spool::now();
            ops.push(Op::SyncBody(file));
            ops.push(Op::Put(Entry {
                id: id.to_string(),
                received_at: now,
                sender: sender.as_ref().map(|s| s.to_string()),
                received: self.received_header(id, recipients),
                size: size as u64,
                deliveries: plan.deliveries.iter().map(StoredDelivery::from).collect(),
                attempts: 0,
                next_try: now,
            }));
        }
        let kept = async {
            let Some((h, raw)) = history else {
                return Ok(());
            };
            let accepted = crate::history::Accepted {
                config: &config,
                envelope: &envelope,
                facts: &facts,
                plan: &plan,
                ingress,
                id,
                now: spool::now(),
                // SPEC §9: the thread owner from the owner memory, once it exists.
                owner: None,
            };
            h.keep(&accepted, head, raw).await
        };
        let spool = self.spool().clone();
        let spooled = async {
            if ops.is_empty() {
                return Ok(());
            }
            spool.commit(ops).await
        };
        // Both at once: the history's fsync overlaps the spool's.
        let (kept, spooled) = tokio::join!(kept, spooled);
        if let Err(e) = spooled {
            warn!(id = %id, error = %e, "cannot spool message");
            let _ = tokio::fs::remove_file(self.spool().body_path(id)).await;
            return Reply::local_error();
        }
        if let Err(e) = kept {
            // The message is safe in the spool and will be delivered; refusing it now
            // would make the client send it again after its memories were recorded.
            warn!(id = %id, error = %e, "history: message not kept");
        }
        let from = sender.as_ref().map_or(String::new(), |s| s.to_string());
        let rcpts: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
        info!(id = %id, from = %from, rcpts = %rcpts.join(","), size, peer = %self.peer, "accepted");
        metrics::counter!("teamrelay_messages_accepted_total").increment(1);
        metrics::counter!("teamrelay_archive_copies_total").increment(plan.archive_copies() as u64);
        metrics::counter!("teamrelay_list_bounces_total")
            .increment(plan.consumed_bounces.len() as u64);
        if !plan.deliveries.is_empty() {
            self.shared.wake.notify_one();
        }
        Reply::queued(id)
    }

    /// teamrelay's trace field (RFC 5321 §4.4), without the final CRLF.
    fn received_header(&self, id: &str, recipients: &[Address]) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        // Only characters safe in a header: the HELO name is the client's to choose.
        let helo: String = helo
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(100)
            .collect();
        let with = if self.listener.protocol == crate::config::Protocol::Lmtp {
            "LMTP"
        } else if self.esmtp {
            "ESMTP"
        } else {
            "SMTP"
        };
        let for_part = match recipients {
            [one] => format!("\r\n\tfor <{one}>"),
            _ => String::new(),
        };
        let date = mail_parser::DateTime::from_timestamp(spool::now() as i64).to_rfc822();
        format!(
            "Received: from {helo} ([{}])\r\n\tby {} (teamrelay) with {with} id {id}{for_part};\r\n\t{date}",
            self.peer.ip(),
            self.config.server.hostname
        )
    }
}

/// One log line per decision, so an operator can grep a message's fate.
fn log_plan(id: &str, envelope: &Envelope, plan: &route::Plan, head: &[u8]) {
    if let Some(why) = &plan.archive_skip {
        info!(id = %id, reason = %why, "archive skipped");
    }
    for s in &plan.skipped {
        info!(id = %id, address = %s.address, reason = %s.reason, "skipped");
    }
    for b in &plan.consumed_bounces {
        let failed = reported_recipient(head).unwrap_or_else(|| "unknown".into());
        let from = envelope
            .sender
            .as_ref()
            .map_or("<>".to_string(), |s| s.to_string());
        info!(id = %id, to = %b, from = %from, failed_recipient = %failed, "list bounce consumed");
    }
}

/// The recipient a bounce reports: `Final-Recipient:` of a DSN, or Exim's
/// `X-Failed-Recipients:`.
fn reported_recipient(head: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        if name.eq_ignore_ascii_case("Final-Recipient") {
            Some(value.rsplit(';').next()?.trim().to_string())
        } else if name.eq_ignore_ascii_case("X-Failed-Recipients") {
            Some(value.trim().to_string())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_reported_recipient() {
        let dsn =
            b"From: MAILER-DAEMON@x\r\n\r\n--b\r\nFinal-Recipient: rfc822; bob@example.com\r\n";
        assert_eq!(
            super::reported_recipient(dsn).as_deref(),
            Some("bob@example.com")
        );
        let exim = b"X-Failed-Recipients: carol@example.com\r\n\r\n";
        assert_eq!(
            super::reported_recipient(exim).as_deref(),
            Some("carol@example.com")
        );
        assert_eq!(super::reported_recipient(b"Subject: hi\r\n\r\n"), None);
    }
}
