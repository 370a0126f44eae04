//! `history backfill MEMBER`: the past for a new teammate. Every kept message that
//! MEMBER did not get, and that one of MEMBER's archive lists covers, is queued to
//! MEMBER through the normal spool as that list's archive copy (SPEC §4's header block)
//! plus `X-Teamrelay-Backfill: yes`. What was queued is recorded as received, so a
//! second run queues nothing.

use std::time::Duration;

use tracing::info;

use super::record::{Direction, Record};
use super::store::History;
use crate::address::{Address, Pattern};
use crate::config::{Config, List};
use crate::route::{archive_block, route_of, MessageFacts, RouteKind};
use crate::spool::{self, NewBody, NewMessage, Rcpt, RcptState, Spool, StoredDelivery, StoredKind};

/// Messages queued per spool commit.
const CHUNK: usize = 100;

/// Whether `member` already has the message: named in it, a recipient of it, or given
/// it later (another transaction, an earlier backfill).
fn has_it(h: &History, r: &Record, member: &Address) -> bool {
    let same = |s: &String| Address::parse(s).is_ok_and(|a| &a == member);
    r.team.iter().any(same)
        || r.team_recipients.iter().any(same)
        || r.participants.iter().any(same)
        || h.received_later(&r.id).iter().any(same)
}

/// Whether one `archive_of` entry covers a team participant (as in SPEC §4).
fn covers(config: &Config, pattern: &Pattern, who: &Address) -> bool {
    match pattern {
        Pattern::Exact(a) if config.list(a).is_some() => config.members(a).contains(who),
        p => p.matches(who),
    }
}

/// The first archive list (in file order) of which `member` is a member and that
/// covers a team participant of the message, with the participants it concerns.
pub fn covering_list<'a>(
    config: &'a Config,
    member: &Address,
    team: &[Address],
) -> Option<(&'a List, Vec<Address>)> {
    config
        .lists
        .iter()
        .filter(|l| l.is_archive())
        .filter(|l| config.members(&l.address).contains(member))
        .find_map(|l| {
            let concerns: Vec<Address> = team
                .iter()
                .filter(|who| l.archive_of.iter().any(|p| covers(config, p, who)))
                .cloned()
                .collect();
            (!concerns.is_empty()).then_some((l, concerns))
        })
}

/// Queues the copies; returns how many.
pub async fn run(
    h: &History,
    config: &Config,
    spool: &Spool,
    member: &Address,
    since: Option<Duration>,
) -> Result<usize, String> {
    h.index().flush().await;
    let now = spool::now();
    let from = since.map_or(0, |d| now.saturating_sub(d.as_secs()));
    let mut ids: Vec<(u64, String)> = h
        .index()
        .all()
        .into_iter()
        .filter(|(_, accepted)| *accepted >= from)
        .map(|(id, accepted)| (accepted, id))
        .collect();
    ids.sort();
    let mut queued = 0;
    let mut copies = Vec::new();
    let mut done = Vec::new();
    for (_, id) in ids {
        let Some((record, raw)) = h.message(&id) else {
            continue;
        };
        if has_it(h, &record, member) {
            continue;
        }
        let team: Vec<Address> = record
            .team
            .iter()
            .filter_map(|t| Address::parse(t).ok())
            .collect();
        let Some((list, concerns)) = covering_list(config, member, &team) else {
            continue;
        };
        copies.push(copy(config, list, &concerns, member, &record, raw));
        done.push(id);
        if done.len() >= CHUNK {
            queued += commit(h, spool, member, &mut copies, &mut done).await?;
        }
    }
    queued += commit(h, spool, member, &mut copies, &mut done).await?;
    info!(member = %member, queued, "history backfill");
    Ok(queued)
}

/// Spools the copies, then records them as received: a crash in between can mean a
/// second copy on the next run, never a lost one.
async fn commit(
    h: &History,
    spool: &Spool,
    member: &Address,
    copies: &mut Vec<NewMessage>,
    done: &mut Vec<String>,
) -> Result<usize, String> {
    if done.is_empty() {
        return Ok(0);
    }
    spool
        .accept(std::mem::take(copies), Vec::new())
        .await
        .map_err(|e| e.to_string())?;
    let who = [member.to_string()];
    for id in done.iter() {
        h.mark_received(id, &who).await?;
    }
    let n = done.len();
    done.clear();
    Ok(n)
}

/// One archive copy of a kept message to `member`, for [`Spool::accept`].
fn copy(
    config: &Config,
    list: &List,
    concerns: &[Address],
    member: &Address,
    record: &Record,
    raw: Vec<u8>,
) -> NewMessage {
    let facts = MessageFacts::from_message(&raw);
    let inbound = record.direction == Direction::Inbound;
    let owner = record.owner.as_deref().and_then(|o| Address::parse(o).ok());
    let mut headers = archive_block(&list.address, concerns, inbound, owner.as_ref(), &facts);
    headers.push(("X-Teamrelay-Backfill".to_string(), "yes".to_string()));
    let id = Spool::new_id();
    let bounces = list.address.bounces().to_string();
    NewMessage {
        received: spool::local_received(&config.server.hostname, &id),
        id,
        sender: Some(bounces.clone()),
        size: raw.len() as u64,
        deliveries: vec![StoredDelivery {
            kind: StoredKind::Archive(list.address.to_string()),
            team_route: route_of(config, member) == RouteKind::Team,
            sender: Some(bounces),
            headers,
            rcpts: vec![Rcpt {
                address: member.to_string(),
                state: RcptState::Pending { last_error: None },
            }],
        }],
        // A kept message may have come in with SMTPUTF8 or 8-bit bytes; the next hop
        // must offer what it needs (SPEC §6), so say what is in it.
        smtputf8: facts_need_utf8(&raw),
        eight_bit: !raw.is_ascii(),
        body: NewBody::Built(raw),
    }
}

/// Whether a kept message needs SMTPUTF8: non-ASCII in its header section (RFC 6532
/// headers), which only an SMTPUTF8 transaction may carry.
fn facts_need_utf8(raw: &[u8]) -> bool {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    !raw[..end].is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn the_first_covering_list_of_the_member_gives_the_copy() {
        let c = crate::config::parse(
            r#"
[team]
domains = ["example.com"]
[deliver]
team = "smtp://127.0.0.1:1"
outside = "smtp://127.0.0.1:2"
[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com"]
[[list]]
address = "sales-archive@example.com"
members = ["erin@example.com"]
archive_of = ["sales@example.com"]
[[list]]
address = "all-archive@example.com"
members = ["erin@example.com", "fred@example.com"]
archive_of = ["*@example.com"]
"#,
            std::path::Path::new("lists.toml"),
        )
        .unwrap();
        let team = [a("alice@example.com"), a("dan@example.com")];
        let (list, concerns) = covering_list(&c, &a("erin@example.com"), &team).unwrap();
        assert_eq!(list.address, a("sales-archive@example.com"));
        assert_eq!(concerns, [a("alice@example.com")]);
        let (list, concerns) = covering_list(&c, &a("fred@example.com"), &team).unwrap();
        assert_eq!(list.address, a("all-archive@example.com"));
        assert_eq!(concerns, team);
        // Only dan: the sales archive does not cover him; the catch-all does.
        let (list, _) = covering_list(&c, &a("erin@example.com"), &[a("dan@example.com")]).unwrap();
        assert_eq!(list.address, a("all-archive@example.com"));
        // Not a member of any archive list: nothing.
        assert!(covering_list(&c, &a("alice@example.com"), &team).is_none());
    }
}
