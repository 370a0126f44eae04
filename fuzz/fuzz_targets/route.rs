//! The routing policy's promises over arbitrary envelopes, headers and memories: nobody
//! gets a message twice, the private address is never a recipient, internal-only and
//! null-sender mail is never archived, every archive member without a copy has a reason.
#![no_main]

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use teamrelay::address::Address;
use teamrelay::config::Config;
use teamrelay::route::{plan, DeliveryKind, Envelope, Ingress, Memory, MessageFacts};

const UNIVERSE: &[&str] = &[
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dan@example.com",
    "sales@example.com",
    "team@example.com",
    "customers-archive@example.com",
    "private@example.com",
    "sales-bounces@example.com",
    "x@shop.example",
    "y@lawfirm.example",
    "z@example.org",
];

const CONFIG: &str = r#"
[team]
domains = ["example.com", "example.org"]
private_address = "private@example.com"
never_archive = ["*@lawfirm.example"]
[deliver]
team = "smtp://127.0.0.1:1"
outside = "smtp://127.0.0.1:2"
[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com"]
[[list]]
address = "team@example.com"
members = ["sales@example.com", "carol@example.com", "dan@example.com"]
[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com"]
archive_of = ["*@example.com"]
[[list]]
address = "org-archive@example.com"
members = ["z@example.org", "alice@example.com"]
archive_of = ["*@example.org", "sales@example.com"]
"#;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| teamrelay::config::parse(CONFIG, Path::new("fuzz.toml")).expect("valid"))
}

#[derive(Debug, Arbitrary)]
struct Input {
    sender: Option<u8>,
    rcpts: Vec<u8>,
    from: Vec<u8>,
    to: Vec<u8>,
    cc: Vec<u8>,
    original_to: Vec<u8>,
    auto_submitted: bool,
    precedence: Option<u8>,
    list_id: bool,
    archive_marker: bool,
    thread_private: bool,
    already: Vec<u8>,
    tap: bool,
}

fn pick(i: u8) -> Address {
    Address::parse(UNIVERSE[i as usize % UNIVERSE.len()]).expect("valid")
}

fn picks(v: &[u8]) -> Vec<Address> {
    v.iter().take(6).map(|&i| pick(i)).collect()
}

fuzz_target!(|input: Input| {
    let c = config();
    let envelope = Envelope {
        sender: input.sender.map(pick),
        recipients: picks(&input.rcpts),
    };
    if envelope.recipients.is_empty() {
        return;
    }
    let facts = MessageFacts {
        from: picks(&input.from),
        to: picks(&input.to),
        cc: picks(&input.cc),
        original_to: picks(&input.original_to),
        auto_submitted: input.auto_submitted.then(|| "auto-replied".to_string()),
        precedence: input
            .precedence
            .map(|p| ["bulk", "junk", "list", "normal"][p as usize % 4].to_string()),
        has_list_id: input.list_id,
        archive_marker: input.archive_marker,
        ..Default::default()
    };
    let memory = Memory {
        thread_private: input.thread_private,
        already_has: picks(&input.already).into_iter().collect(),
        ..Memory::default()
    };
    let ingress = if input.tap {
        Ingress::Tap
    } else {
        Ingress::Normal
    };
    let p = plan(c, &envelope, &facts, &memory, ingress);

    let mut seen = HashSet::new();
    for d in &p.deliveries {
        assert!(!d.recipients.is_empty());
        for r in &d.recipients {
            assert!(seen.insert(r.clone()), "{r} twice: {p:?}");
        }
    }
    assert!(
        !seen.contains(&pick(7)),
        "the private address is never a recipient"
    );
    let archive_addressed = ingress == Ingress::Normal
        && envelope
            .recipients
            .iter()
            .any(|r| c.list(r).is_some_and(|l| l.is_archive()));
    let mut participants: Vec<&Address> = envelope.sender.iter().collect();
    if ingress == Ingress::Normal {
        participants.extend(&envelope.recipients);
    } else {
        participants.extend(&facts.original_to);
    }
    participants.extend(facts.from.iter().chain(&facts.to).chain(&facts.cc));
    let internal_only = participants.iter().all(|a| c.is_internal(a));
    if (internal_only || envelope.sender.is_none()) && !archive_addressed {
        assert_eq!(p.archive_copies(), 0, "{p:?}");
    }
    if p.archive_skip.is_none() {
        for l in &p.archives_matched {
            assert!(c.list(l).is_some_and(|l| l.is_archive()));
            for m in c.members(l) {
                assert!(
                    seen.contains(&m) || p.skipped.iter().any(|s| s.address == m),
                    "{m} has no reason: {p:?}"
                );
            }
        }
        // A copy only ever comes from a list that matched.
        for d in &p.deliveries {
            if let DeliveryKind::Archive(l) = &d.kind {
                let addressed = envelope.recipients.contains(l);
                assert!(addressed || p.archives_matched.contains(l), "{p:?}");
            }
        }
    }
    for t in p.team_recipients() {
        assert!(c.is_internal(&t));
    }
});
