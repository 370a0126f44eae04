//! Turning permanent failures into DSNs (SPEC §6): one DSN per envelope sender per try,
//! queued like any message; none for the null sender or a `-bounces` sender — those
//! failures are logged and counted only, so bounces never bounce and a teammate's full
//! mailbox never reaches a customer.

use std::collections::BTreeMap;

use tracing::info;

use super::dsn::{self, Failure, Original};
use crate::address::Address;
use crate::config::Config;
use crate::route::route_of;
use crate::shared::Shared;
use crate::spool::{self, Entry, NewBody, NewMessage, Rcpt, RcptState, StoredDelivery, StoredKind};

/// Bytes of the original read for the DSN's header attachment.
const HEADER_LIMIT: usize = 64 * 1024;

/// The DSNs for `failed` (delivery index, recipient, error), to be queued through
/// [`spool::Spool::accept`] in the same commit as the delivery state they report.
pub async fn bounces(
    shared: &Shared,
    config: &Config,
    entry: &Entry,
    failed: &[(usize, String, String)],
) -> Vec<NewMessage> {
    let by_sender = by_sender(entry, failed);
    if by_sender.is_empty() {
        return Vec::new();
    }
    let headers = read_head(&shared.spool.body_of(entry)).await;
    let mut dsns = Vec::new();
    for (sender, failures) in by_sender {
        let Ok(to) = Address::parse(&sender) else {
            continue;
        };
        let original = Original {
            queue_id: &entry.id,
            arrival: entry.received_at,
            sender: &sender,
            headers: &headers,
        };
        let message = dsn::build(&config.server.hostname, &original, &failures);
        let id = spool::Spool::new_id();
        dsns.push(NewMessage {
            id: id.clone(),
            sender: None,
            received: spool::local_received(&config.server.hostname, &id),
            size: message.len() as u64,
            // The DSN's own text is ASCII, but it quotes the original's header section,
            // which may hold 8-bit bytes.
            smtputf8: false,
            eight_bit: !message.is_ascii(),
            deliveries: vec![StoredDelivery {
                kind: StoredKind::Dsn,
                team_route: route_of(config, &to) == crate::route::RouteKind::Team,
                sender: None,
                headers: Vec::new(),
                rcpts: vec![Rcpt {
                    address: sender.clone(),
                    state: RcptState::Pending { last_error: None },
                }],
            }],
            body: NewBody::Built(message),
        });
        metrics::counter!("teamrelay_dsn_total").increment(1);
        let rcpts: Vec<&str> = failures.iter().map(|f| f.recipient.as_str()).collect();
        crate::maillog::bounced(&entry.id, &id, &sender, &rcpts);
    }
    dsns
}

/// The failures to report, by envelope sender; those of null and `-bounces` senders
/// (and of DSNs themselves) are only logged and counted, so bounces never bounce.
fn by_sender(entry: &Entry, failed: &[(usize, String, String)]) -> BTreeMap<String, Vec<Failure>> {
    let mut by_sender: BTreeMap<String, Vec<Failure>> = BTreeMap::new();
    for (i, rcpt, error) in failed {
        let d = &entry.deliveries[*i];
        let sender = d.sender.as_deref().unwrap_or("");
        let is_bounce_sender = sender.is_empty()
            || sender
                .rsplit_once('@')
                .is_some_and(|(local, _)| local.to_ascii_lowercase().ends_with("-bounces"))
            || d.kind == StoredKind::Dsn;
        if is_bounce_sender {
            metrics::counter!("teamrelay_bounces_dropped_total").increment(1);
            info!(id = %entry.id, to = %rcpt, sender = %sender, error = %error, "failure not bounced (null or -bounces sender)");
            continue;
        }
        by_sender
            .entry(sender.to_string())
            .or_default()
            .push(Failure {
                recipient: rcpt.clone(),
                error: error.clone(),
            });
    }
    by_sender
}

async fn read_head(body: &spool::BodyLocation) -> Vec<u8> {
    use std::io::Read;
    let body = body.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        if let Ok(r) = body.open() {
            let _ = r.take(HEADER_LIMIT as u64).read_to_end(&mut out);
        }
        out
    })
    .await
    .unwrap_or_default()
}
