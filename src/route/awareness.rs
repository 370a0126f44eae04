//! Team awareness (SPEC §9) as policy: the owner of a thread, owner assignment of
//! `assign = "owner"` lists, absences and their cover, auto-away, and the collision
//! notice. Pure like the rest of `route`: the memories come in as [`Memory`], the clock
//! as `Memory::now`, and what to record goes out in [`Remember`].

use super::headers::MessageFacts;
use super::*;

/// What the §9 rules need to know about one message, worked out once.
pub struct Context<'a> {
    config: &'a Config,
    envelope: &'a Envelope,
    facts: &'a MessageFacts,
    memory: &'a Memory,
    /// The sender is a teammate: internal, not a list, not a `-bounces` address.
    person: Option<&'a Address>,
    inbound: bool,
    customer_facing: bool,
    /// Addressed to the private address, or in a private thread.
    private: bool,
}

impl<'a> Context<'a> {
    /// Sorts the message out for the §9 rules.
    pub fn new(
        config: &'a Config,
        envelope: &'a Envelope,
        facts: &'a MessageFacts,
        memory: &'a Memory,
        ingress: Ingress,
        ex: &expand::Expanded,
    ) -> Context<'a> {
        let p = participants::participants(config, envelope, facts, ingress);
        let person = envelope.sender.as_ref().filter(|s| {
            config.is_internal(s) && config.list(s).is_none() && config.list_of_bounces(s).is_none()
        });
        let tap_private = ingress == Ingress::Tap
            && config
                .team
                .private_address
                .as_ref()
                .is_some_and(|pa| facts.header_addresses().any(|a| a == pa));
        Context {
            config,
            envelope,
            facts,
            memory,
            person,
            inbound: p.inbound,
            customer_facing: envelope.sender.is_some() && !p.external.is_empty(),
            private: ex.addressed_private || tap_private || memory.thread_private,
        }
    }

    /// The active absence of `who`, if any.
    fn absence(&self, who: &Address) -> Option<&'a Absence> {
        self.memory.absences.iter().find(|a| {
            a.until > self.memory.now && Address::parse(&a.address).ok().as_ref() == Some(who)
        })
    }

    /// `assign = "owner"`: an inbound customer reply in an owned thread goes to the owner
    /// alone. Private threads are left alone (the rest of the list would otherwise see
    /// nothing, not even an archive copy).
    pub fn assign(&self, ex: &mut expand::Expanded, plan: &mut Plan) {
        let Some(owner) = &self.memory.owner else {
            return;
        };
        if !self.inbound || !self.customer_facing || self.private {
            return;
        }
        let mut changed = false;
        for (list, delivered) in &mut ex.lists {
            if !self.config.list(list).is_some_and(|l| l.assign_owner) {
                continue;
            }
            if !self.config.members(list).contains(owner) {
                plan.assign_notes.push(format!(
                    "{list}: the thread's owner {owner} is not a member, the whole list gets it"
                ));
                continue;
            }
            if let Some(a) = self.absence(owner) {
                plan.assign_notes.push(format!(
                    "{list}: the thread's owner {owner} is away until {}, the whole list gets it",
                    a.until_date()
                ));
                continue;
            }
            for m in delivered.iter().filter(|m| *m != owner) {
                plan.skipped.push(Skipped {
                    address: m.clone(),
                    reason: SkipReason::AssignedToOwner(list.clone(), owner.clone()),
                });
            }
            delivered.retain(|m| m == owner);
            plan.assigned.push((list.clone(), owner.clone()));
            changed = true;
        }
        if changed {
            // The others are no longer primary recipients: step 2 judges them.
            ex.primary = ex.direct.iter().cloned().collect();
            for (_, delivered) in &ex.lists {
                ex.primary.extend(delivered.iter().cloned());
            }
        }
    }

    /// While a primary recipient is away, inbound customer mail also goes to the cover,
    /// as an original with `X-Teamrelay-Cover`. Never for private mail.
    pub fn cover(&self, ex: &mut expand::Expanded, plan: &mut Plan) {
        if !self.inbound || !self.customer_facing || self.private {
            return;
        }
        let mut primary: Vec<Address> = ex.primary.iter().cloned().collect();
        primary.sort();
        for absent in primary {
            let Some(a) = self.absence(&absent) else {
                continue;
            };
            let cover = a
                .cover
                .as_deref()
                .and_then(|c| Address::parse(c).ok())
                .or_else(|| self.config.team.aware.cover.clone());
            let Some(cover) = cover else { continue };
            let targets = if self.config.list(&cover).is_some() {
                self.config.members(&cover)
            } else {
                vec![cover]
            };
            let fresh: Vec<Address> = targets
                .into_iter()
                .filter(|t| {
                    !ex.primary.contains(t) && self.config.team.private_address.as_ref() != Some(t)
                })
                .collect();
            let until = a.until_date();
            if !fresh.is_empty() {
                let header = (
                    "X-Teamrelay-Cover".to_string(),
                    format!("{absent} away until {until}"),
                );
                let sender = self.envelope.sender.clone();
                expand::push_by_route(
                    self.config,
                    plan,
                    DeliveryKind::Original,
                    sender,
                    &fresh,
                    vec![header],
                );
                ex.primary.extend(fresh.iter().cloned());
            }
            plan.covered.push((absent, until, fresh));
        }
    }

    /// Owner, collision notice, auto-away, and what to remember.
    pub fn finish(&self, ex: &expand::Expanded, plan: &mut Plan) {
        let now = self.memory.now;
        let team = &self.config.team;
        plan.thread = self.memory.thread.clone();
        plan.owner = self.memory.owner.clone();
        for a in self.memory.absences.iter().filter(|a| a.until > now) {
            let cover = a
                .cover
                .clone()
                .or_else(|| team.aware.cover.as_ref().map(|c| c.to_string()))
                .unwrap_or_else(|| "nobody".into());
            plan.away.push(format!(
                "{} away until {}, cover {cover} ({})",
                a.address,
                a.until_date(),
                a.source
            ));
        }
        let mut r = Remember {
            message_id: self.facts.message_id.clone(),
            private: plan.private,
            private_ttl: team.private_memory.as_secs(),
            delivered_ttl: DELIVERED_TTL,
            owner_ttl: team.aware.owner_memory.as_secs(),
            reply_ttl: team.aware.collision_window.as_secs(),
            ..Remember::default()
        };
        for d in plan
            .deliveries
            .iter()
            .filter(|d| d.route == RouteKind::Team)
        {
            for a in &d.recipients {
                // Archive copies of step 2 are claimed; whoever was addressed (even an
                // archive list written to directly) gets the message in any case.
                let copy = matches!(d.kind, DeliveryKind::Archive(_)) && !ex.primary.contains(a);
                let into = if copy {
                    &mut r.claims
                } else {
                    &mut r.delivered
                };
                into.push(a.key().to_string());
            }
        }
        r.delivered.sort();
        r.delivered.dedup();
        r.claims.retain(|c| !r.delivered.contains(c));
        r.claims.sort();
        r.claims.dedup();
        // Threads matter for customer conversations only; internal mail adds no record.
        if r.message_id.is_some() && !self.memory.thread.is_empty() && self.customer_facing {
            r.thread = Some(self.memory.thread.clone());
        }
        if let Some(person) = self.person {
            self.sender_rules(person, now, plan, &mut r);
        }
        plan.remember = r;
    }

    /// The rules about an outbound message from a teammate: auto-away, owner, collision.
    fn sender_rules(&self, person: &Address, now: u64, plan: &mut Plan, r: &mut Remember) {
        let team = &self.config.team;
        if self.facts.is_auto_reply() {
            let manual = self.absence(person).is_some_and(|a| a.source == "manual");
            if let (Some(cover), false) = (&team.aware.cover, manual) {
                r.away = Some(Absence {
                    address: person.key().to_string(),
                    until: now + team.aware.auto_away.as_secs(),
                    cover: Some(cover.to_string()),
                    source: "auto-reply".to_string(),
                });
            }
            return;
        }
        let thread = &self.memory.thread;
        if !self.customer_facing
            || self.private
            || thread.is_empty()
            || self.facts.automatic().is_some()
        {
            return;
        }
        if self.memory.owner.is_none() {
            r.owner = Some(person.key().to_string());
        }
        let window = team.aware.collision_window.as_secs();
        let other = self
            .memory
            .recent
            .iter()
            .filter(|x| {
                Address::parse(&x.from).ok().as_ref() != Some(person)
                    && now.saturating_sub(x.at) <= window
                    && !self.facts.thread_ids.contains(&x.message_id)
                    && self.facts.message_id.as_ref() != Some(&x.message_id)
            })
            .max_by_key(|x| x.at);
        if let Some(other) = other {
            plan.collision = Some(Collision {
                to: person.clone(),
                other: other.clone(),
                ago_secs: now.saturating_sub(other.at),
                subject: self.facts.subject.clone(),
            });
        }
        if let Some(id) = &self.facts.message_id {
            r.reply = Some(RecentReply {
                from: person.key().to_string(),
                message_id: id.clone(),
                at: now,
                subject: self.facts.subject.clone(),
                excerpt: String::new(),
            });
        }
    }
}
