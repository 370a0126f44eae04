//! Step 1 of SPEC §4: recipients to deliveries — lists replaced by their members,
//! duplicates removed, the private and `-bounces` addresses taken out.

use std::collections::{HashMap, HashSet};

use super::headers::{archive_block, list_block, MessageFacts};
use super::participants::participants;
use super::*;

/// The envelope recipients sorted out.
#[derive(Debug, Default)]
pub struct Expanded {
    /// Recipients that are not lists, in envelope order, de-duplicated.
    pub direct: Vec<Address>,
    /// Each addressed list with the members it delivers to (after de-duplication).
    pub lists: Vec<(Address, Vec<Address>)>,
    /// `direct` plus every list member: the primary recipients.
    pub primary: HashSet<Address>,
    /// The private address was among the recipients.
    pub addressed_private: bool,
}

/// Sorts the envelope recipients into direct ones and list members, recording skips.
pub fn expand_recipients(config: &Config, envelope: &Envelope, plan: &mut Plan) -> Expanded {
    let mut ex = Expanded::default();
    let private = config.team.private_address.as_ref();
    let mut addressed_lists: Vec<Address> = Vec::new();
    for r in &envelope.recipients {
        if Some(r) == private {
            if !ex.addressed_private {
                plan.skipped.push(Skipped {
                    address: r.clone(),
                    reason: SkipReason::PrivateAddress,
                });
            }
            ex.addressed_private = true;
        } else if config.list(r).is_some() {
            if !addressed_lists.contains(r) {
                addressed_lists.push(r.clone());
            }
        } else if config.list_of_bounces(r).is_some() {
            if !plan.consumed_bounces.contains(r) {
                plan.consumed_bounces.push(r.clone());
                plan.skipped.push(Skipped {
                    address: r.clone(),
                    reason: SkipReason::BounceConsumed,
                });
            }
        } else if ex.primary.insert(r.clone()) {
            ex.direct.push(r.clone());
        }
    }
    let direct: HashSet<Address> = ex.direct.iter().cloned().collect();
    let mut reached_via: HashMap<Address, Address> = HashMap::new();
    for list in addressed_lists {
        let mut delivered = Vec::new();
        for m in config.members(&list) {
            if Some(&m) == private {
                plan.skipped.push(Skipped {
                    address: m,
                    reason: SkipReason::PrivateAddress,
                });
            } else if direct.contains(&m) {
                plan.skipped.push(Skipped {
                    address: m,
                    reason: SkipReason::DirectRecipient,
                });
            } else if let Some(first) = reached_via.get(&m) {
                plan.skipped.push(Skipped {
                    address: m,
                    reason: SkipReason::ViaEarlierList(first.clone()),
                });
            } else {
                reached_via.insert(m.clone(), list.clone());
                ex.primary.insert(m.clone());
                delivered.push(m);
            }
        }
        ex.lists.push((list, delivered));
    }
    ex
}

/// Adds the original and list deliveries (not used in tap mode, where the provider
/// already delivered the original).
pub fn add_deliveries(
    config: &Config,
    envelope: &Envelope,
    facts: &MessageFacts,
    owner: Option<&Address>,
    ex: &Expanded,
    plan: &mut Plan,
) {
    push_by_route(
        config,
        plan,
        DeliveryKind::Original,
        envelope.sender.clone(),
        &ex.direct,
        Vec::new(),
    );
    for (list, members) in &ex.lists {
        let is_archive = config.list(list).is_some_and(|l| l.is_archive());
        let (kind, headers) = if is_archive {
            // Mail sent straight to an archive list is marked as an archive copy, so it
            // gets the same filtering and the same loop guard.
            let p = participants(config, envelope, facts, Ingress::Normal);
            let block = archive_block(list, &p.team, p.inbound, owner, facts);
            (DeliveryKind::Archive(list.clone()), block)
        } else {
            (DeliveryKind::List(list.clone()), list_block(list, facts))
        };
        push_by_route(config, plan, kind, Some(list.bounces()), members, headers);
    }
}

/// Adds one delivery per route for `recipients` (none when it is empty).
pub fn push_by_route(
    config: &Config,
    plan: &mut Plan,
    kind: DeliveryKind,
    sender: Option<Address>,
    recipients: &[Address],
    headers: Vec<(String, String)>,
) {
    for route in [RouteKind::Team, RouteKind::Outside] {
        let rcpts: Vec<Address> = recipients
            .iter()
            .filter(|r| route_of(config, r) == route)
            .cloned()
            .collect();
        if !rcpts.is_empty() {
            plan.deliveries.push(Delivery {
                kind: kind.clone(),
                route,
                sender: sender.clone(),
                recipients: rcpts,
                headers: headers.clone(),
            });
        }
    }
}
