//! The headers routing looks at ([`MessageFacts`]) and the header blocks it adds.
//!
//! Reading headers is parsing, not I/O, so it lives with the policy; mail-parser does
//! the RFC 5322 work (folding, encoded words, groups). A message whose headers cannot be
//! parsed simply has no facts: it is still delivered, and with no external header
//! participants it can only be archived on envelope evidence.

use mail_parser::{HeaderValue, MessageParser};

use crate::address::Address;

/// What routing needs to know about a message's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFacts {
    pub from: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// `X-Gm-Original-To`, `X-Original-To`, `Delivered-To`: participants in tap mode.
    pub original_to: Vec<Address>,
    pub message_id: Option<String>,
    /// Message-IDs named by `In-Reply-To` and `References`.
    pub thread_ids: Vec<String>,
    /// `In-Reply-To` alone, and `References` alone in order (the thread rule of §8).
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The `Subject`, decoded.
    pub subject: String,
    /// `X-Autoreply: yes` (Gmail's vacation responder).
    pub x_autoreply: bool,
    /// `X-Teamrelay-Archive` is present (loop guard).
    pub archive_marker: bool,
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    pub has_list_id: bool,
    pub has_list_unsubscribe: bool,
    /// Number of `Received:` fields (more than 30 means a loop: SPEC §5).
    pub received_count: usize,
}

impl MessageFacts {
    /// Reads the facts from a message's header section (the body may follow; it is
    /// not looked at).
    pub fn from_message(raw: &[u8]) -> MessageFacts {
        let mut facts = MessageFacts::default();
        let Some(msg) = MessageParser::default().parse_headers(raw) else {
            return facts;
        };
        let collect = |v: Option<&mail_parser::Address>| -> Vec<Address> {
            v.into_iter()
                .flat_map(|a| a.iter())
                .filter_map(|a| a.address())
                .filter_map(|a| Address::parse(a.trim()).ok())
                .collect()
        };
        facts.from = collect(msg.from());
        facts.to = msg.all_to().flat_map(|a| collect(Some(a))).collect();
        facts.cc = msg.all_cc().flat_map(|a| collect(Some(a))).collect();
        facts.message_id = msg.message_id().map(normalize_id);
        facts.in_reply_to = ids(msg.in_reply_to());
        facts.references = ids(msg.references());
        facts.thread_ids = facts.in_reply_to.clone();
        facts.thread_ids.extend(facts.references.iter().cloned());
        facts.subject = msg.subject().unwrap_or("").trim().to_string();
        for (name, value) in msg.headers_raw() {
            let value = value.trim();
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("X-Teamrelay-Archive") {
                facts.archive_marker = true;
            } else if is("Auto-Submitted") {
                facts.auto_submitted = Some(value.to_ascii_lowercase());
            } else if is("Precedence") {
                facts.precedence = Some(value.to_ascii_lowercase());
            } else if is("List-Id") {
                facts.has_list_id = true;
            } else if is("List-Unsubscribe") {
                facts.has_list_unsubscribe = true;
            } else if is("X-Autoreply") {
                facts.x_autoreply = value.eq_ignore_ascii_case("yes");
            } else if is("Received") {
                facts.received_count += 1;
            } else if is("X-Gm-Original-To") || is("X-Original-To") || is("Delivered-To") {
                let bare = value.trim_start_matches('<').trim_end_matches('>');
                if let Ok(a) = Address::parse(bare) {
                    facts.original_to.push(a);
                }
            }
        }
        facts
    }

    /// From, To and Cc together.
    pub fn header_addresses(&self) -> impl Iterator<Item = &Address> {
        self.from.iter().chain(&self.to).chain(&self.cc)
    }

    /// An auto-reply of the kind SPEC §9 reads as "away": `Auto-Submitted: auto-replied`,
    /// `X-Autoreply: yes`, or a Subject starting `Automatic reply:` (Outlook/Exchange)
    /// or `Out of Office:`. A person's reply `Re: Automatic reply: …` does not count.
    pub fn is_auto_reply(&self) -> bool {
        let kind = self
            .auto_submitted
            .as_deref()
            .and_then(|v| v.split(';').next())
            .map(str::trim);
        let subject = self.subject.to_ascii_lowercase();
        kind == Some("auto-replied")
            || self.x_autoreply
            || subject.starts_with("automatic reply:")
            || subject.starts_with("out of office:")
    }

    /// `Auto-Submitted` other than `no`, or `Precedence: bulk|junk|list` — the header that
    /// makes this automatic mail, if any.
    pub fn automatic(&self) -> Option<String> {
        if let Some(v) = &self.auto_submitted {
            let kind = v.split(';').next().unwrap_or("").trim();
            if kind != "no" {
                return Some(format!("Auto-Submitted: {kind}"));
            }
        }
        match self.precedence.as_deref().map(str::trim) {
            Some(p @ ("bulk" | "junk" | "list")) => Some(format!("Precedence: {p}")),
            _ => None,
        }
    }
}

/// Message-IDs compare without their angle brackets and surrounding space.
pub fn normalize_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn ids(v: &HeaderValue) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![normalize_id(t)],
        HeaderValue::TextList(l) => l.iter().map(|t| normalize_id(t)).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

/// `List-Id` and `Precedence` for a list delivery, each only if the message lacks it.
pub fn list_block(list: &Address, facts: &MessageFacts) -> Vec<(String, String)> {
    let mut h = Vec::new();
    if !facts.has_list_id {
        h.push(("List-Id".to_string(), format!("<{}>", list.list_id())));
    }
    if facts.precedence.is_none() {
        h.push(("Precedence".to_string(), "list".to_string()));
    }
    h
}

/// The header block of an archive copy (SPEC §4), in its documented order.
pub fn archive_block(
    list: &Address,
    concerns: &[Address],
    inbound: bool,
    owner: Option<&Address>,
    facts: &MessageFacts,
) -> Vec<(String, String)> {
    let for_list: Vec<String> = concerns.iter().map(|a| a.to_string()).collect();
    let mut h = vec![
        ("X-Teamrelay-Archive".to_string(), list.to_string()),
        ("X-Teamrelay-For".to_string(), for_list.join(", ")),
        (
            "X-Teamrelay-Direction".to_string(),
            if inbound { "inbound" } else { "outbound" }.to_string(),
        ),
    ];
    if let Some(owner) = owner {
        // SPEC §9: right after the direction, so filters can rely on the order.
        h.push(("X-Teamrelay-Owner".to_string(), owner.to_string()));
    }
    let list_headers = list_block(list, facts);
    h.extend(list_headers);
    h.push(("X-Auto-Response-Suppress".to_string(), "All".to_string()));
    h
}

/// Renders header fields as wire text (CRLF line ends), ready to prepend.
pub fn render(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn reads_participants_and_markers() {
        let raw = b"From: \"Cus Tomer\" <cus@shop.example>\r\n\
To: alice@example.com, Sales <sales@example.com>\r\n\
Cc: undisclosed:;, bob@example.com\r\n\
Message-ID: <abc@shop.example>\r\n\
In-Reply-To: <p1@example.com>\r\n\
References: <p0@example.com>\r\n <p1@example.com>\r\n\
Received: from a\r\nReceived: from b\r\n\
Auto-Submitted: auto-replied; x=1\r\n\
X-Teamrelay-Archive: x@example.com\r\n\
\r\nbody From: nobody@evil.example\r\n";
        let f = MessageFacts::from_message(raw);
        assert_eq!(f.from, vec![a("cus@shop.example")]);
        assert_eq!(f.to, vec![a("alice@example.com"), a("sales@example.com")]);
        assert!(f.cc.contains(&a("bob@example.com")));
        assert_eq!(f.message_id.as_deref(), Some("abc@shop.example"));
        assert!(f.thread_ids.contains(&"p1@example.com".to_string()));
        assert!(f.thread_ids.contains(&"p0@example.com".to_string()));
        assert_eq!(f.received_count, 2);
        assert!(f.archive_marker);
        assert_eq!(
            f.automatic().as_deref(),
            Some("Auto-Submitted: auto-replied")
        );
    }

    #[test]
    fn automatic_mail_rules() {
        let mut f = MessageFacts::default();
        assert_eq!(f.automatic(), None);
        f.auto_submitted = Some("no".into());
        assert_eq!(f.automatic(), None);
        for p in ["bulk", "junk", "list"] {
            f.precedence = Some(p.into());
            assert!(f.automatic().is_some(), "{p}");
        }
        f.precedence = Some("first-class".into());
        assert_eq!(f.automatic(), None);
    }

    #[test]
    fn junk_headers_give_empty_facts() {
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"\xff\xfe\x00",
            b"From: <<<@@@>>>\r\n\r\n",
        ] {
            let f = MessageFacts::from_message(raw);
            assert!(f.from.is_empty());
        }
    }

    #[test]
    fn blocks_keep_existing_list_headers() {
        let list = a("customers-archive@example.com");
        let mut facts = MessageFacts::default();
        let block = archive_block(&list, &[a("alice@example.com")], true, None, &facts);
        let names: Vec<&str> = block.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "X-Teamrelay-Archive",
                "X-Teamrelay-For",
                "X-Teamrelay-Direction",
                "List-Id",
                "Precedence",
                "X-Auto-Response-Suppress"
            ]
        );
        assert_eq!(block[3].1, "<customers-archive.example.com>");
        facts.has_list_id = true;
        facts.precedence = Some("bulk".into());
        let block = archive_block(&list, &[], false, None, &facts);
        assert!(block
            .iter()
            .all(|(n, _)| n != "List-Id" && n != "Precedence"));
        assert_eq!(block[2].1, "outbound");
        assert_eq!(
            render(&block[..1]),
            "X-Teamrelay-Archive: customers-archive@example.com\r\n"
        );
    }
}
