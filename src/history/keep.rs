//! What the history keeps (SPEC §8), as pure functions: whether a planned message is
//! kept at all, the thread it joins, and the [`Record`] made of it. No I/O, no clock.

use mail_parser::{HeaderValue, MessageParser};

use super::record::{Direction, Record};
use crate::config::Config;
use crate::route::{self, ArchiveSkip, Envelope, Ingress, MessageFacts, Plan};

/// Kept: customer-facing, and no whole-message rule of §4 step 2 skipped it. "No archive
/// list covers it" is not such a rule: the history keeps those too.
pub fn is_kept(plan: &Plan) -> bool {
    matches!(plan.archive_skip, None | Some(ArchiveSkip::NoArchiveList))
}

/// The headers the history needs beyond the routing facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub subject: String,
    /// The `Date` header, Unix seconds.
    pub date: Option<i64>,
    /// `References`, in order.
    pub references: Vec<String>,
    pub in_reply_to: Vec<String>,
}

/// Reads subject, date and threading headers (decoded by mail-parser).
pub fn read_headers(head: &[u8]) -> Headers {
    let Some(msg) = MessageParser::default().parse_headers(head) else {
        return Headers::default();
    };
    let ids = |v: &HeaderValue| -> Vec<String> {
        let all = match v {
            HeaderValue::Text(t) => vec![route::normalize_id(t)],
            HeaderValue::TextList(l) => l.iter().map(|t| route::normalize_id(t)).collect(),
            _ => Vec::new(),
        };
        all.into_iter().filter(|s| !s.is_empty()).collect()
    };
    Headers {
        subject: msg.subject().unwrap_or("").trim().to_string(),
        date: msg.date().map(|d| d.to_timestamp()),
        references: ids(msg.references()),
        in_reply_to: ids(msg.in_reply_to()),
    }
}

/// SPEC §8's thread rule: the thread of the first message named (`References` in
/// order, then `In-Reply-To`) that the history has seen; else the first `References`
/// entry, else `In-Reply-To`, else the message's own id.
pub fn thread_of(h: &Headers, own: &str, seen: impl Fn(&str) -> Option<String>) -> String {
    let named = h.references.iter().chain(&h.in_reply_to);
    if let Some(t) = named.clone().find_map(|id| seen(id)) {
        return t;
    }
    named
        .clone()
        .next()
        .cloned()
        .unwrap_or_else(|| own.to_string())
}

/// Everything [`record`] needs about one accepted message.
pub struct Accepted<'a> {
    pub config: &'a Config,
    pub envelope: &'a Envelope,
    pub facts: &'a MessageFacts,
    pub plan: &'a Plan,
    pub ingress: Ingress,
    /// The queue id of the transaction.
    pub id: &'a str,
    pub now: u64,
    /// The thread's owner (SPEC §9), from the owner memory once it exists.
    pub owner: Option<String>,
}

/// The record of a kept message in `thread`.
pub fn record(a: &Accepted, h: &Headers, thread: String) -> Record {
    let p = route::participants(a.config, a.envelope, a.facts, a.ingress);
    let strings = |v: &[crate::address::Address]| v.iter().map(|x| x.to_string()).collect();
    let mut participants: Vec<String> = a.envelope.sender.iter().map(|s| s.to_string()).collect();
    if a.ingress == Ingress::Normal {
        participants.extend(a.envelope.recipients.iter().map(|r| r.to_string()));
    } else {
        participants.extend(a.facts.original_to.iter().map(|r| r.to_string()));
    }
    participants.extend(a.facts.header_addresses().map(|r| r.to_string()));
    participants.extend(p.team.iter().map(|r| r.to_string()));
    participants.sort();
    participants.dedup();
    let from = a
        .facts
        .from
        .first()
        .or(a.envelope.sender.as_ref())
        .map_or(String::new(), |f| f.to_string());
    Record {
        id: a.id.to_string(),
        message_id: a.facts.message_id.clone(),
        accepted: a.now,
        date: h.date.unwrap_or(a.now as i64),
        direction: if p.inbound {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        from,
        to: strings(&a.facts.to),
        cc: strings(&a.facts.cc),
        subject: h.subject.clone(),
        team: strings(&p.team),
        team_recipients: strings(&a.plan.team_recipients()),
        customers: strings(&p.external),
        participants,
        thread,
        owner: a.owner.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Memory;

    fn h(refs: &[&str], irt: &[&str]) -> Headers {
        Headers {
            references: refs.iter().map(|s| s.to_string()).collect(),
            in_reply_to: irt.iter().map(|s| s.to_string()).collect(),
            ..Headers::default()
        }
    }

    #[test]
    fn thread_rule_follows_the_first_seen_message() {
        let seen = |id: &str| match id {
            "b@x" => Some("T1".to_string()),
            "c@x" => Some("T2".to_string()),
            _ => None,
        };
        // References in order: a is unknown, b is seen first.
        assert_eq!(thread_of(&h(&["a@x", "b@x", "c@x"], &[]), "me", seen), "T1");
        // In-Reply-To is looked at after every References entry.
        assert_eq!(thread_of(&h(&["a@x", "c@x"], &["b@x"]), "me", seen), "T2");
        // A reply naming only its (seen) parent joins the parent's thread.
        assert_eq!(thread_of(&h(&[], &["b@x"]), "me", seen), "T1");
        // Nothing seen: first References entry, else In-Reply-To, else itself.
        assert_eq!(thread_of(&h(&["a@x", "z@x"], &["y@x"]), "me", seen), "a@x");
        assert_eq!(thread_of(&h(&[], &["y@x"]), "me", seen), "y@x");
        assert_eq!(thread_of(&h(&[], &[]), "me", seen), "me");
    }

    fn config() -> Config {
        crate::config::parse(
            r#"
[team]
domains = ["example.com"]
private_address = "private@example.com"
never_archive = ["*@lawfirm.example"]
[deliver]
team = "smtp://127.0.0.1:1"
outside = "smtp://127.0.0.1:2"
[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "bob@example.com"]
archive_of = ["alice@example.com"]
"#,
            std::path::Path::new("lists.toml"),
        )
        .unwrap()
    }

    fn plan_of(c: &Config, from: &str, to: &[&str], extra: &str, private: bool) -> Plan {
        let a = |s: &str| crate::address::Address::parse(s).unwrap();
        let env = Envelope {
            sender: (!from.is_empty()).then(|| a(from)),
            recipients: to.iter().map(|t| a(t)).collect(),
        };
        let head = format!("From: {from}\r\nTo: {}\r\n{extra}\r\n", to.join(", "));
        let facts = MessageFacts::from_message(head.as_bytes());
        let memory = Memory {
            thread_private: private,
            ..Memory::default()
        };
        route::plan(c, &env, &facts, &memory, Ingress::Normal)
    }

    #[test]
    fn what_is_kept() {
        let c = config();
        let kept =
            |from, to: &[&str], extra, private| is_kept(&plan_of(&c, from, to, extra, private));
        // Customer-facing, both directions, archived or not.
        assert!(kept("cus@shop.example", &["alice@example.com"], "", false));
        assert!(kept("bob@example.com", &["cus@shop.example"], "", false));
        // No archive list covers bob, yet the history keeps it.
        assert!(kept("cus@shop.example", &["bob@example.com"], "", false));
        // Never kept: internal, null sender, private, never_archive, bulk, archive copies.
        assert!(!kept("alice@example.com", &["bob@example.com"], "", false));
        assert!(!kept(
            "",
            &["alice@example.com"],
            "From: cus@shop.example\r\n",
            false
        ));
        assert!(!kept(
            "cus@shop.example",
            &["alice@example.com", "private@example.com"],
            "",
            false
        ));
        assert!(!kept("cus@shop.example", &["alice@example.com"], "", true));
        assert!(!kept(
            "lawyer@lawfirm.example",
            &["alice@example.com"],
            "",
            false
        ));
        assert!(!kept(
            "news@shop.example",
            &["alice@example.com"],
            "Precedence: bulk\r\n",
            false
        ));
        assert!(!kept(
            "news@shop.example",
            &["alice@example.com"],
            "List-Unsubscribe: <mailto:u@shop.example>\r\n",
            false
        ));
        assert!(!kept(
            "cus@shop.example",
            &["alice@example.com"],
            "Auto-Submitted: auto-replied\r\n",
            false
        ));
        assert!(!kept(
            "cus@shop.example",
            &["alice@example.com"],
            "X-Teamrelay-Archive: customers-archive@example.com\r\n",
            false
        ));
    }

    #[test]
    fn headers_are_decoded() {
        let hd = read_headers(
            b"Subject: =?utf-8?q?R=C3=A9duction?=\r\nDate: Thu, 01 Jan 1970 00:01:00 +0000\r\nReferences: <a@x> <b@x>\r\nIn-Reply-To: <b@x>\r\n\r\n",
        );
        assert_eq!(hd.subject, "Réduction");
        assert_eq!(hd.date, Some(60));
        assert_eq!(hd.references, ["a@x", "b@x"]);
        assert_eq!(hd.in_reply_to, ["b@x"]);
    }
}
