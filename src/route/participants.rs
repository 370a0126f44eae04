//! SPEC §3: who takes part in a message — the external participants (customers) and
//! the team participants with their lists expanded — and its direction. Both steps of
//! §4 and the awareness rules of §9 start from here.

use std::collections::HashSet;

use super::headers::MessageFacts;
use super::{Envelope, Ingress};
use crate::address::Address;
use crate::config::Config;

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
            for m in config.members(a) {
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
