//! The end of DATA: read the headers, ask the policy for a plan, make message and plan
//! durable, and only then answer `250`. Any failure before the commit answers `451` and
//! leaves nothing behind, so the client keeps responsibility for the message.

use std::panic::AssertUnwindSafe;

use tracing::{info, warn};

use super::session::{Session, Transaction};
use super::Reply;
use crate::config::Mode;
use crate::route::{self, Envelope, Ingress, MessageFacts};
use crate::shared::Shared;
use crate::spool::{self, BodySink, NewBody, NewMessage, Op, StoredDelivery};

/// More `Received:` fields than this means a mail loop (SPEC §5).
pub const MAX_RECEIVED: usize = 30;

impl Session {
    /// Routes and spools a fully received message; returns the reply for the client.
    pub async fn accept(
        &mut self,
        id: &str,
        txn: &Transaction,
        mut sink: BodySink,
        head: &[u8],
        size: usize,
    ) -> Reply {
        // mail-parser has had panics fixed in the past; a panic here must cost the
        // sender a retry, not the relay its process.
        let facts = std::panic::catch_unwind(AssertUnwindSafe(|| MessageFacts::from_message(head)))
            .unwrap_or_default();
        if facts.received_count > MAX_RECEIVED {
            return refuse_loop(id, &facts, self.peer, sink).await;
        }
        let config = self.config.clone();
        let ingress = if self.listener.mode == Mode::Tap {
            Ingress::Tap
        } else {
            Ingress::Normal
        };
        let envelope = Envelope {
            sender: txn.sender.clone(),
            recipients: txn.recipients.clone(),
        };
        let shared = self.shared.clone();
        let (plan, ops, mut notices) =
            match decide(&shared, id, &config, &envelope, &facts, ingress, head).await {
                Ok(x) => x,
                Err(reply) => {
                    sink.discard().await;
                    return reply;
                }
            };
        log_plan(id, &envelope, &plan, head);
        // SPEC §8: the history keeps its own copy, durable before the 250 like the spool.
        let history = match history_copy(&shared, id, &plan, &mut sink).await {
            Ok(history) => history,
            Err(()) => {
                sink.discard().await;
                return local_error(&shared, &plan).await;
            }
        };
        notices.insert(0, self.new_message(id, txn, size, &plan, sink));
        let accepted = crate::history::Accepted {
            config: &config,
            envelope: &envelope,
            facts: &facts,
            plan: &plan,
            ingress,
            id,
            now: spool::now(),
            owner: plan.owner.as_ref().map(|o| o.to_string()),
        };
        // Both at once: the history's fsync overlaps the spool's.
        let (spooled, kept) = tokio::join!(
            self.shared.spool.accept(notices, ops),
            Self::keep_in_history(history, &accepted, head)
        );
        if let Err(e) = kept {
            // The message is safe in the spool (or the client retries and the history
            // dedups by Message-ID); refusing it after the memories were recorded would
            // cost the resend its archive copies. Logged loudly instead.
            warn!(id = %id, error = %e, "history: message not kept");
        }
        if let Err(e) = spooled {
            warn!(id = %id, error = %e, "cannot spool message");
            return local_error(&shared, &plan).await;
        }
        log_accepted(id, txn, &facts, &plan, size, self.peer);
        if !plan.deliveries.is_empty() {
            self.shared.wake.notify_one();
        }
        Reply::queued(id)
    }

    /// The message as the spool's door takes it.
    fn new_message(
        &self,
        id: &str,
        txn: &Transaction,
        size: usize,
        plan: &route::Plan,
        sink: BodySink,
    ) -> NewMessage {
        NewMessage {
            id: id.to_string(),
            sender: txn.sender.as_ref().map(|s| s.to_string()),
            received: self.received_header(id, txn),
            size: size as u64,
            deliveries: plan.deliveries.iter().map(StoredDelivery::from).collect(),
            body: NewBody::Received(sink),
            smtputf8: txn.smtputf8,
            eight_bit: self.body_8bit,
        }
    }

    /// Keeps the message in the history when there is one to keep it in.
    async fn keep_in_history(
        history: Option<(&crate::history::History, Vec<u8>)>,
        accepted: &crate::history::Accepted<'_>,
        head: &[u8],
    ) -> Result<(), String> {
        match history {
            Some((h, raw)) => h.keep(accepted, head, raw).await,
            None => Ok(()),
        }
    }

    /// teamrelay's trace field (RFC 5321 §4.4), without the final CRLF.
    fn received_header(&self, id: &str, txn: &Transaction) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        // Only characters safe in a header: the HELO name is the client's to choose.
        let helo: String = helo
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(100)
            .collect();
        let with = Trace {
            lmtp: self.listener.protocol == crate::config::Protocol::Lmtp,
            esmtp: self.esmtp,
            smtputf8: txn.smtputf8,
            tls: self.tls_active,
            auth: self.auth_user.is_some(),
        }
        .with_word();
        let for_part = match txn.recipients.as_slice() {
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

/// Too many `Received:` fields: a mail loop, refused.
async fn refuse_loop(
    id: &str,
    facts: &MessageFacts,
    peer: std::net::SocketAddr,
    sink: BodySink,
) -> Reply {
    let reply = Reply::loop_detected();
    let what = format!("{} Received fields", facts.received_count);
    crate::maillog::rejected("data", Some(id), &what, peer, &reply);
    crate::metrics::rejected_message(reply.reason());
    sink.discard().await;
    reply
}

/// `451` once a plan was made: the sender retries, so the copies this attempt claimed
/// must be claimable again.
async fn local_error(shared: &Shared, plan: &route::Plan) -> Reply {
    let _ = shared.memory.release(&plan.remember).await;
    let reply = Reply::local_error();
    crate::metrics::rejected_message(reply.reason());
    reply
}

/// The history and the whole message for it, when this message is to be kept; `Err`
/// when the body cannot be read back (logged).
async fn history_copy<'a>(
    shared: &'a Shared,
    id: &str,
    plan: &route::Plan,
    sink: &mut BodySink,
) -> Result<Option<(&'a crate::history::History, Vec<u8>)>, ()> {
    match shared.history.get() {
        Some(h) if crate::history::is_kept(plan) => match sink.contents().await {
            Ok(raw) => Ok(Some((h, raw))),
            Err(e) => {
                warn!(id = %id, error = %e, "cannot read message body for the history");
                Err(())
            }
        },
        _ => Ok(None),
    }
}

/// How a message came in, as the `with` word of a `Received:` field tells it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Trace {
    /// An LMTP listener.
    pub lmtp: bool,
    /// EHLO (or LHLO) rather than HELO.
    pub esmtp: bool,
    /// MAIL carried SMTPUTF8.
    pub smtputf8: bool,
    /// Under STARTTLS or implicit TLS.
    pub tls: bool,
    /// The client authenticated.
    pub auth: bool,
}

impl Trace {
    /// RFC 3848 (`ESMTPS`, `ESMTPA`, `ESMTPSA`, `LMTP` and its `S`/`A` forms) and
    /// RFC 6531 §4.3 (`UTF8SMTP`, `UTF8SMTPS`, `UTF8SMTPA`, `UTF8SMTPSA`). Plain HELO
    /// stays `SMTP`.
    pub fn with_word(&self) -> String {
        let base = match (self.lmtp, self.esmtp, self.smtputf8) {
            (true, _, _) => "LMTP",
            (false, false, _) => "SMTP",
            (false, true, true) => "UTF8SMTP",
            (false, true, false) => "ESMTP",
        };
        if base == "SMTP" {
            return base.to_string();
        }
        let suffix = match (self.tls, self.auth) {
            (false, false) => "",
            (true, false) => "S",
            (false, true) => "A",
            (true, true) => "SA",
        };
        format!("{base}{suffix}")
    }
}

/// The `accepted` line and its counters.
fn log_accepted(
    id: &str,
    txn: &Transaction,
    facts: &MessageFacts,
    plan: &route::Plan,
    size: usize,
    peer: std::net::SocketAddr,
) {
    crate::maillog::accepted(
        id,
        txn.sender.as_ref(),
        &txn.recipients,
        size,
        facts.message_id.as_deref(),
        peer,
    );
    for d in &plan.deliveries {
        if let route::DeliveryKind::Archive(list) = &d.kind {
            let to: Vec<String> = d.recipients.iter().map(|r| r.to_string()).collect();
            crate::maillog::archived(id, &list.to_string(), &to);
        }
    }
    metrics::counter!("teamrelay_messages_accepted_total").increment(1);
    metrics::histogram!(crate::metrics::MESSAGE_BYTES).record(size as f64);
    metrics::counter!("teamrelay_archive_copies_total").increment(plan.archive_copies() as u64);
    metrics::counter!("teamrelay_list_bounces_total").increment(plan.consumed_bounces.len() as u64);
}

/// Recalls the memories, plans, and records what the plan asks (SPEC §4, §9, §10).
/// Returns the plan and the ops to commit with the message, or the `451` to give
/// when the memory cannot answer: never accept without the memories.
async fn decide(
    shared: &crate::shared::Shared,
    id: &str,
    config: &crate::config::Config,
    envelope: &Envelope,
    facts: &MessageFacts,
    ingress: Ingress,
    head: &[u8],
) -> Result<(route::Plan, Vec<Op>, Vec<NewMessage>), Reply> {
    let backend = shared.memory.clone();
    let unavailable = |e: crate::memory::MemoryError| {
        warn!(id = %id, backend = backend.name(), error = %e, "routing memory unavailable: message not accepted");
        let reply = Reply::local_error().because("memory_unavailable");
        crate::metrics::rejected_message(reply.reason());
        reply
    };
    let memory = backend
        .recall(&route::Query::of(facts))
        .await
        .map_err(unavailable)?;
    let mut plan = route::plan(config, envelope, facts, &memory, ingress);
    if let Some(reply) = plan.remember.reply.as_mut() {
        reply.excerpt = crate::memory::excerpt(head);
    }
    let remembered = backend
        .remember(&plan.remember)
        .await
        .map_err(unavailable)?;
    plan.drop_copies(&remembered.lost);
    let mut notices = Vec::new();
    if let Some(c) = &plan.collision {
        if let Some(notice) = crate::memory::notice(config, c) {
            info!(id = %id, to = %c.to, other = %c.other.from, notice = %notice.id, "collision notice");
            notices.push(notice);
        }
    }
    Ok((plan, remembered.ops, notices))
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
    fn rfc3848_and_rfc6531_with_words() {
        use super::Trace;
        let plain = Trace::default();
        let esmtp = Trace {
            esmtp: true,
            ..plain
        };
        let utf8 = Trace {
            smtputf8: true,
            ..esmtp
        };
        let lmtp = Trace {
            lmtp: true,
            ..esmtp
        };
        let tls = |t: Trace| Trace { tls: true, ..t };
        let auth = |t: Trace| Trace { auth: true, ..t };
        let table = [
            (plain, "SMTP"),
            (tls(auth(plain)), "SMTP"),
            (esmtp, "ESMTP"),
            (tls(esmtp), "ESMTPS"),
            (auth(esmtp), "ESMTPA"),
            (tls(auth(esmtp)), "ESMTPSA"),
            (utf8, "UTF8SMTP"),
            (tls(utf8), "UTF8SMTPS"),
            (auth(utf8), "UTF8SMTPA"),
            (tls(auth(utf8)), "UTF8SMTPSA"),
            (lmtp, "LMTP"),
            (tls(lmtp), "LMTPS"),
            (auth(lmtp), "LMTPA"),
            (
                tls(Trace {
                    smtputf8: true,
                    ..lmtp
                }),
                "LMTPS",
            ),
        ];
        for (trace, want) in table {
            assert_eq!(trace.with_word(), want, "{trace:?}");
        }
    }

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
