//! Step 2 of SPEC §4: which archive copies a message gets, and why not when it gets none.

use std::collections::{HashMap, HashSet};

use super::expand::{push_by_route, Expanded};
use super::headers::{archive_block, MessageFacts};
use super::*;
use crate::address::Pattern;

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
        Pattern::Exact(a) if config.list(a).is_some() => config.members(a).contains(who),
        p => p.matches(who),
    }
}

/// On a tap, the provider's copy names the private address in a header (the envelope
/// is the tap's own).
fn tap_private(config: &Config, facts: &MessageFacts, ingress: Ingress) -> bool {
    ingress == Ingress::Tap
        && config.team.private_address.as_ref().is_some_and(|pa| {
            facts
                .header_addresses()
                .chain(&facts.original_to)
                .any(|a| a == pa)
        })
}

/// Who already has the message, or is about to, without an archive copy.
struct HasIt<'a> {
    envelope: &'a Envelope,
    memory: &'a Memory,
    ex: &'a Expanded,
    named: &'a HashSet<&'a Address>,
}

impl HasIt<'_> {
    /// Why member `m` gets no copy, checked in SPEC order before the earlier lists'
    /// copies: a primary recipient, the sender, named in the headers, already has it.
    fn reason(&self, m: &Address) -> Option<SkipReason> {
        if self.ex.primary.contains(m) {
            Some(SkipReason::PrimaryRecipient)
        } else if self.envelope.sender.as_ref() == Some(m) {
            Some(SkipReason::Sender)
        } else if self.named.contains(m) {
            Some(SkipReason::NamedInHeaders)
        } else if self.memory.already_has.contains(m) {
            Some(SkipReason::AlreadyHasMessage)
        } else {
            None
        }
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
    let addressed_private = ex.addressed_private || tap_private(config, facts, ingress);
    plan.private = addressed_private || memory.thread_private;
    let p = participants(config, envelope, facts, ingress);
    if let Some(why) = skip_reason(config, envelope, facts, memory, addressed_private, &p) {
        plan.archive_skip = Some(why);
        return;
    }
    let named: HashSet<&Address> = facts.header_addresses().chain(&facts.original_to).collect();
    let has_it = HasIt {
        envelope,
        memory,
        ex,
        named: &named,
    };
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
        for m in config.members(&list.address) {
            let private = config.team.private_address.as_ref() == Some(&m);
            let reason = has_it
                .reason(&m)
                .or_else(|| {
                    let first = copied_by.get(&m)?;
                    Some(SkipReason::CopyFromEarlierList(first.clone()))
                })
                .or(private.then_some(SkipReason::PrivateAddress));
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
