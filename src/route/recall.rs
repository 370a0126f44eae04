//! The values exchanged with the routing memory (SPEC §4, §9): what a message asks it
//! ([`Query`]: the §8 thread rule's candidates), the records it holds ([`Absence`],
//! [`RecentReply`]) and what a plan asks it to record ([`Remember`]). Plain data, so
//! either backend can store it and the policy stays free of I/O.

use serde::{Deserialize, Serialize};

use super::headers::MessageFacts;

/// How much of an outbound reply is kept for a collision notice.
pub const EXCERPT_CHARS: usize = 300;

/// A teammate marked absent (`teamrelay away`, or an auto-reply).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absence {
    pub address: String,
    /// End of the absence, Unix seconds (exclusive).
    pub until: u64,
    /// Who covers; `None`: `team.cover` at the time a message arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover: Option<String>,
    /// `"manual"` or `"auto-reply"`.
    pub source: String,
}

impl Absence {
    /// The absence's last day, `YYYY-MM-DD` (UTC): `until` is exclusive.
    pub fn until_date(&self) -> String {
        ymd(self.until.saturating_sub(1))
    }
}

/// One recent outbound reply in a thread, kept for `team.collision_window`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentReply {
    pub from: String,
    pub message_id: String,
    pub at: u64,
    #[serde(default)]
    pub subject: String,
    /// The first lines of its text.
    #[serde(default)]
    pub excerpt: String,
}

/// Everything the plan wants remembered once the message is accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remember {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Remember `message_id` as private.
    pub private: bool,
    /// Team addresses that get the message as original, list delivery or cover.
    pub delivered: Vec<String>,
    /// Archive-copy recipients: recorded only when they do not have the message yet,
    /// and a copy whose record loses that race is dropped (one atomic step per member).
    pub claims: Vec<String>,
    /// The thread the message belongs to (recorded for its Message-ID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// Becomes the thread's owner unless it has one already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<RecentReply>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub away: Option<Absence>,
    /// Lifetimes in seconds: private threads, delivered Message-IDs, owners and threads,
    /// recent replies.
    pub private_ttl: u64,
    pub delivered_ttl: u64,
    pub owner_ttl: u64,
    pub reply_ttl: u64,
}

/// How long "who has this Message-ID" is remembered (SPEC §4).
pub const DELIVERED_TTL: u64 = 7 * 86400;

impl Remember {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.message_id.is_none()
            && self.owner.is_none()
            && self.reply.is_none()
            && self.away.is_none()
    }
}

/// What the memory is asked for one message: derived from its headers alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The message's own Message-ID and every one it names: any private one makes the
    /// message private.
    pub private_ids: Vec<String>,
    /// Message-IDs whose thread is looked up, first known wins: References in order,
    /// then In-Reply-To (SPEC §8).
    pub candidates: Vec<String>,
    /// The thread when no candidate is known: the first References entry, else
    /// In-Reply-To, else the own Message-ID, else empty.
    pub fallback: String,
}

impl Query {
    /// The question for a message with these headers.
    pub fn of(facts: &MessageFacts) -> Query {
        let mut candidates: Vec<String> = facts.references.clone();
        for id in &facts.in_reply_to {
            if !candidates.contains(id) {
                candidates.push(id.clone());
            }
        }
        let fallback = facts
            .references
            .first()
            .or(facts.in_reply_to.first())
            .or(facts.message_id.as_ref())
            .cloned()
            .unwrap_or_default();
        Query {
            message_id: facts.message_id.clone(),
            private_ids: facts
                .message_id
                .iter()
                .chain(&facts.thread_ids)
                .cloned()
                .collect(),
            candidates,
            fallback,
        }
    }

    /// The thread, given the recorded thread of each candidate (same order).
    pub fn resolve(&self, known: &[Option<String>]) -> String {
        known
            .iter()
            .flatten()
            .next()
            .cloned()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

/// `YYYY-MM-DD` of a Unix time (UTC).
pub fn ymd(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

/// The Unix time at which `YYYY-MM-DD` (UTC) ends, or `None` when it is not a date.
pub fn end_of_day(date: &str) -> Option<u64> {
    let mut parts = date.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = (days + 1) * 86400;
    // 2025-02-31 and the like: the round trip catches a day past the month's end.
    (ymd((secs - 1) as u64) == format!("{y:04}-{m:02}-{d:02}")).then_some(secs as u64)
}
