//! Step 2 of SPEC §4: which archive copies a message gets, and why not when it gets none.

use std::collections::{HashMap, HashSet};

use super::expand::{members, push_by_route, Expanded};
use super::headers::{archive_block, MessageFacts};
use super::*;
use crate::address::Pattern;

/// The participants of a message (SPEC §3), sorted out.
#[derive(Debug, Default)]
pub struct Participants {
    /// External participants, in the order first seen.
    pub external: Vec<Address>,
    /// Internal participants with the lists they name expanded, without the private
    /// address and `-bounces` addresses.
    pub team: Vec<Address>,
    /// The message comes from outside (judged on the envelope sender).
    pub inbound: bool,
}

/// Collects participants: envelope sender, envelope recipients (not in tap mode, where
/// the only recipient is the tap address) and the From/To/Cc headers (plus the
/// original-recipient headers in tap mode).
pub fn participants(
    config: &Config,
    envelope: &Envelope,
    facts: &MessageFacts,
    ingress: Ingress,
) -> Participants {
    let mut all: Vec<&Address> = envelope.sender.iter().collect();
    if ingress == Ingress::Normal {
        all.extend(&envelope.recipients);
    } else {
        all.extend(&facts.original_to);
    }
    all.extend(facts.header_addresses());
    let mut p = Participants::default();
    let mut seen = HashSet::new();
    let mut add_team = |p: &mut Participants, a: &Address| {
        let skip = Some(a) == config.team.private_address.as_ref()
            || config.list_of_bounces(a).is_some()
            || !config.is_internal(a);
        if !skip && seen.insert(a.clone()) {
            p.team.push(a.clone());
        }
    };
    for a in all {
        if !config.is_internal(a) {
            if !p.external.contains(a) {
                p.external.push(a.clone());
            }
        } else if config.list(a).is_some() {
            for m in members(config, a) {
                add_team(&mut p, &m);
            }
        } else {
            add_team(&mut p, a);
        }
    }
    p.inbound = match &envelope.sender {
        Some(s) if config.is_internal(s) => false,
        Some(_) if ingress == Ingress::Tap => {
            // Providers may rewrite the envelope sender of the copies they make (SRS);
            // the author's From then tells the direction.
            !facts.from.first().is_some_and(|f| config.is_internal(f))
        }
        Some(_) => true,
        None => false,
    };
    p
}

/// The reason the whole archive step is skipped, if any, in SPEC order.
fn skip_reason(
    config: &Config,
    envelope: &Envelope,
    facts: &MessageFacts,
    memory: &Memory,
    addressed_private: bool,
    p: &Participants,
) -> Option<ArchiveSkip> {
    if envelope.sender.is_none() {
        return Some(ArchiveSkip::NullSender);
    }
    if p.external.is_empty() {
        return Some(ArchiveSkip::NotCustomerFacing);
    }
    if facts.archive_marker {
        return Some(ArchiveSkip::AlreadyAnArchiveCopy);
    }
    if addressed_private {
        return Some(ArchiveSkip::PrivateAddress);
    }
    if memory.thread_private {
        return Some(ArchiveSkip::PrivateThread);
    }
    let never = &config.team.never_archive;
    if let Some(a) = p
        .external
        .iter()
        .find(|a| never.iter().any(|n| n.matches(a)))
    {
        return Some(ArchiveSkip::NeverArchive(a.clone()));
    }
    if !config.team.archive_bulk {
        if let Some(why) = facts.automatic() {
            return Some(ArchiveSkip::Automatic(why));
        }
        let external_sender = envelope
            .sender
            .as_ref()
            .is_some_and(|s| !config.is_internal(s));
        if external_sender && (facts.has_list_id || facts.has_list_unsubscribe) {
            let h = if facts.has_list_id {
                "List-Id"
            } else {
                "List-Unsubscribe"
            };
            return Some(ArchiveSkip::Automatic(format!(
                "{h} from an external sender"
            )));
        }
    }
    None
}

/// Whether one `archive_of` entry covers a team participant.
fn covers(config: &Config, pattern: &Pattern, who: &Address) -> bool {
    match pattern {
        Pattern::Exact(a) if config.list(a).is_some() => members(config, a).contains(who),
        p => p.matches(who),
    }
}

/// Adds archive copies to the plan, or records why there are none.
pub fn choose_copies(
    config: &Config,
    envelope: &Envelope,
    facts: &MessageFacts,
    memory: &Memory,
    ingress: Ingress,
    ex: &Expanded,
    plan: &mut Plan,
) {
    let tap_private = ingress == Ingress::Tap
        && config.team.private_address.as_ref().is_some_and(|pa| {
            facts
                .header_addresses()
                .chain(&facts.original_to)
                .any(|a| a == pa)
        });
    let addressed_private = ex.addressed_private || tap_private;
    plan.private = addressed_private || memory.thread_private;
    let p = participants(config, envelope, facts, ingress);
    if let Some(why) = skip_reason(config, envelope, facts, memory, addressed_private, &p) {
        plan.archive_skip = Some(why);
        return;
    }
    let named: HashSet<&Address> = facts.header_addresses().chain(&facts.original_to).collect();
    let mut copied_by: HashMap<Address, Address> = HashMap::new();
    let mut any_list = false;
    for list in config.lists.iter().filter(|l| l.is_archive()) {
        let concerns: Vec<Address> = p
            .team
            .iter()
            .filter(|who| list.archive_of.iter().any(|pat| covers(config, pat, who)))
            .cloned()
            .collect();
        if concerns.is_empty() {
            continue;
        }
        any_list = true;
        plan.archives_matched.push(list.address.clone());
        let mut copies = Vec::new();
        for m in members(config, &list.address) {
            let reason = if ex.primary.contains(&m) {
                Some(SkipReason::PrimaryRecipient)
            } else if envelope.sender.as_ref() == Some(&m) {
                Some(SkipReason::Sender)
            } else if named.contains(&m) {
                Some(SkipReason::NamedInHeaders)
            } else if memory.already_has.contains(&m) {
                Some(SkipReason::AlreadyHasMessage)
            } else if let Some(first) = copied_by.get(&m) {
                Some(SkipReason::CopyFromEarlierList(first.clone()))
            } else if config.team.private_address.as_ref() == Some(&m) {
                Some(SkipReason::PrivateAddress)
            } else {
                None
            };
            match reason {
                Some(reason) => plan.skipped.push(Skipped { address: m, reason }),
                None => {
                    copied_by.insert(m.clone(), list.address.clone());
                    copies.push(m);
                }
            }
        }
        let headers = archive_block(
            &list.address,
            &concerns,
            p.inbound,
            memory.owner.as_ref(),
            facts,
        );
        let kind = DeliveryKind::Archive(list.address.clone());
        push_by_route(
            config,
            plan,
            kind,
            Some(list.address.bounces()),
            &copies,
            headers,
        );
    }
    if !any_list {
        plan.archive_skip = Some(ArchiveSkip::NoArchiveList);
    }
}
