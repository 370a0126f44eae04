//! The routing policy of SPEC §4 as one pure function: [`plan`] turns a configuration, an
//! envelope, the few headers that matter and what the relay remembers into the complete
//! list of deliveries, plus a reason for every address that did not get one.
//!
//! No I/O, no clock, no async: the caller looks up the memories (private threads, who
//! already has this Message-ID) and passes the answers in, then persists what the plan
//! says to remember. That keeps the policy exhaustively testable and lets `teamrelay
//! route` print exactly what `serve` would do.

mod archive;
mod awareness;
#[cfg(test)]
mod awareness_tests;
mod expand;
mod explain;
mod headers;
mod participants;
mod recall;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;

pub use participants::{participants, Participants};

pub use explain::explain;
pub use headers::{archive_block, normalize_id, render, MessageFacts};
pub use recall::{
    end_of_day, ymd, Absence, Query, RecentReply, Remember, DELIVERED_TTL, EXCERPT_CHARS,
};

use crate::address::Address;
use crate::config::Config;

/// Who sent the message to whom, as said in MAIL FROM and RCPT TO.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// `None` for the null sender `<>`.
    pub sender: Option<Address>,
    pub recipients: Vec<Address>,
}

/// What the relay remembers about this message (SPEC §4), looked up by the caller.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// The message belongs to a thread marked private: its own Message-ID, or one named
    /// in In-Reply-To/References, is remembered as private.
    pub thread_private: bool,
    /// Team addresses that already received this Message-ID in the last 7 days.
    pub already_has: HashSet<Address>,
    /// The message's thread (SPEC §8), resolved against the threads seen; empty when
    /// the message names no Message-ID at all.
    pub thread: String,
    /// The thread's owner (SPEC §9), if it has one.
    pub owner: Option<Address>,
    /// Recent outbound replies in the thread (for the collision notice).
    pub recent: Vec<RecentReply>,
    /// Every recorded absence (expired ones are ignored by the policy).
    pub absences: Vec<Absence>,
    /// The time of the decision, Unix seconds: the policy has no clock of its own.
    pub now: u64,
}

/// How the message came in: a normal listener delivers originals; a tap listener only
/// produces archive copies of mail the provider already delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ingress {
    #[default]
    Normal,
    Tap,
}

/// Which `[deliver]` route a recipient goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// `deliver.team`: the team's provider.
    Team,
    /// `deliver.outside`: everyone else.
    Outside,
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouteKind::Team => "team",
            RouteKind::Outside => "outside",
        })
    }
}

/// What one delivery is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    /// The message as sent, to direct recipients.
    Original,
    /// To the members of the list that was addressed.
    List(Address),
    /// An archive copy from this archive list.
    Archive(Address),
}

/// One transaction to make: same route, same envelope sender, same extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub kind: DeliveryKind,
    pub route: RouteKind,
    pub sender: Option<Address>,
    pub recipients: Vec<Address>,
    /// Header fields to prepend, in order, below teamrelay's `Received:`.
    pub headers: Vec<(String, String)>,
}

/// Why an address got nothing (or nothing more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// `team.private_address`: it marks the message private and is never delivered.
    PrivateAddress,
    /// `LIST-bounces@`: a bounce of a list delivery, consumed and logged.
    BounceConsumed,
    /// A list member who is also a direct recipient gets the direct delivery only.
    DirectRecipient,
    /// A member reached through two lists gets it through the first.
    ViaEarlierList(Address),
    /// Already among the primary recipients.
    PrimaryRecipient,
    /// The envelope sender.
    Sender,
    /// Named in From, To or Cc: they have (or sent) the message already.
    NamedInHeaders,
    /// Received this Message-ID already (another transaction of the same message).
    AlreadyHasMessage,
    /// Gets its copy from an earlier archive list.
    CopyFromEarlierList(Address),
    /// Left out of an `assign = "owner"` list delivery: (list, owner) — the thread's
    /// owner got it (step 2 may still give an archive copy).
    AssignedToOwner(Address, Address),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::PrivateAddress => write!(
                f,
                "the private address: marks the message private, never delivered"
            ),
            SkipReason::BounceConsumed => write!(
                f,
                "a list bounce address: the bounce is logged and counted, not delivered"
            ),
            SkipReason::DirectRecipient => write!(f, "already a direct recipient"),
            SkipReason::ViaEarlierList(l) => write!(f, "already gets it through list {l}"),
            SkipReason::PrimaryRecipient => write!(f, "already a recipient of the message"),
            SkipReason::Sender => write!(f, "the sender"),
            SkipReason::NamedInHeaders => write!(f, "named in From/To/Cc"),
            SkipReason::AlreadyHasMessage => write!(f, "already has this Message-ID"),
            SkipReason::CopyFromEarlierList(l) => write!(f, "gets one copy, from {l}"),
            SkipReason::AssignedToOwner(l, o) => {
                write!(
                    f,
                    "not in the list delivery: {l} went to the thread's owner {o}"
                )
            }
        }
    }
}

/// One address that got nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub address: Address,
    pub reason: SkipReason,
}

/// Why the whole archive step was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveSkip {
    /// Every participant is internal.
    NotCustomerFacing,
    /// The envelope sender is null (a DSN or another automatic message): never
    /// customer-facing, whoever its headers name (SPEC §3).
    NullSender,
    /// It carries `X-Teamrelay-Archive` already (loop guard).
    AlreadyAnArchiveCopy,
    /// Addressed to the private address.
    PrivateAddress,
    /// In reply to a private thread.
    PrivateThread,
    /// An external participant matches `team.never_archive`.
    NeverArchive(Address),
    /// Auto-reply, bulk or newsletter (the detail names the header).
    Automatic(String),
    /// No archive list covers any team participant.
    NoArchiveList,
}

impl fmt::Display for ArchiveSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveSkip::NotCustomerFacing => write!(f, "internal mail (no external participant)"),
            ArchiveSkip::NullSender => write!(f, "null sender (never customer-facing)"),
            ArchiveSkip::AlreadyAnArchiveCopy => {
                write!(f, "already an archive copy (X-Teamrelay-Archive)")
            }
            ArchiveSkip::PrivateAddress => write!(f, "addressed to the private address"),
            ArchiveSkip::PrivateThread => write!(f, "part of a thread marked private"),
            ArchiveSkip::NeverArchive(a) => write!(f, "{a} matches team.never_archive"),
            ArchiveSkip::Automatic(why) => write!(f, "automatic or bulk mail ({why})"),
            ArchiveSkip::NoArchiveList => write!(f, "no archive list covers its team participants"),
        }
    }
}

/// The full decision for one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub deliveries: Vec<Delivery>,
    pub skipped: Vec<Skipped>,
    /// `None` when archive copies were chosen (possibly zero, see `skipped`).
    pub archive_skip: Option<ArchiveSkip>,
    /// Remember this message's Message-ID as private (SPEC §4).
    pub private: bool,
    /// `LIST-bounces@` recipients whose mail is consumed.
    pub consumed_bounces: Vec<Address>,
    /// Archive lists whose `archive_of` covered a team participant (each of their
    /// members then got a copy or has a `skipped` reason).
    pub archives_matched: Vec<Address>,
    /// The thread of the message (SPEC §8) and its owner before this message.
    pub thread: String,
    pub owner: Option<Address>,
    /// `assign = "owner"` lists that went to their owner alone: (list, owner).
    pub assigned: Vec<(Address, Address)>,
    /// Why an `assign = "owner"` list went to the whole list, when it did.
    pub assign_notes: Vec<String>,
    /// Absent primary recipients whose mail also went to a cover: (absent, until date,
    /// cover recipients).
    pub covered: Vec<(Address, String, Vec<Address>)>,
    /// A collision notice to queue for the sender.
    pub collision: Option<Collision>,
    /// Every teammate away at the time, in words (for `teamrelay route`).
    pub away: Vec<String>,
    /// What to record once the message is accepted.
    pub remember: Remember,
}

/// SPEC §9: the sender answered a thread another teammate answered moments ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// Who gets the notice: the sender of the new reply.
    pub to: Address,
    /// The other teammate's reply.
    pub other: RecentReply,
    /// Seconds between the two replies.
    pub ago_secs: u64,
    /// The new reply's subject.
    pub subject: String,
}

impl Plan {
    /// Every team address that gets the message, original or copy: what the 7-day
    /// Message-ID memory records.
    pub fn team_recipients(&self) -> Vec<Address> {
        let mut out: Vec<Address> = self
            .deliveries
            .iter()
            .filter(|d| d.route == RouteKind::Team)
            .flat_map(|d| d.recipients.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Drops archive copies to members who turned out to have the message already
    /// (another instance recorded it first, SPEC §10), and their claims.
    pub fn drop_copies(&mut self, lost: &HashSet<Address>) {
        if lost.is_empty() {
            return;
        }
        for d in &mut self.deliveries {
            if matches!(d.kind, DeliveryKind::Archive(_)) {
                d.recipients.retain(|r| !lost.contains(r));
            }
        }
        self.deliveries.retain(|d| !d.recipients.is_empty());
        // What is left in `claims` is what this message won (and may have to release).
        self.remember
            .claims
            .retain(|c| Address::parse(c).map_or(true, |a| !lost.contains(&a)));
        for a in lost {
            self.skipped.push(Skipped {
                address: a.clone(),
                reason: SkipReason::AlreadyHasMessage,
            });
        }
    }

    /// Number of archive-copy recipients.
    pub fn archive_copies(&self) -> usize {
        self.deliveries
            .iter()
            .filter(|d| matches!(d.kind, DeliveryKind::Archive(_)))
            .map(|d| d.recipients.len())
            .sum()
    }
}

/// Plans the deliveries of one message. See the module doc and SPEC §4.
pub fn plan(
    config: &Config,
    envelope: &Envelope,
    facts: &MessageFacts,
    memory: &Memory,
    ingress: Ingress,
) -> Plan {
    let mut plan = Plan::default();
    let mut expanded = expand::expand_recipients(config, envelope, &mut plan);
    let aware = awareness::Context::new(config, envelope, facts, memory, ingress, &expanded);
    if ingress == Ingress::Normal {
        aware.assign(&mut expanded, &mut plan);
        let owner = memory.owner.as_ref();
        expand::add_deliveries(config, envelope, facts, owner, &expanded, &mut plan);
        aware.cover(&mut expanded, &mut plan);
    }
    archive::choose_copies(
        config, envelope, facts, memory, ingress, &expanded, &mut plan,
    );
    aware.finish(&expanded, &mut plan);
    plan
}

/// The route for one recipient.
pub fn route_of(config: &Config, addr: &Address) -> RouteKind {
    if config.is_internal(addr) {
        RouteKind::Team
    } else {
        RouteKind::Outside
    }
}
