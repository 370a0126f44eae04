//! Every rule of SPEC §4, table by table, plus properties over random envelopes.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::*;
use crate::config::{parse, Config};

const CONFIG: &str = r#"
[team]
domains = ["example.com", "example.org"]
private_address = "private@example.com"
never_archive = ["*@lawfirm.example", "judge@court.example"]

[[listen]]
address = "127.0.0.1:2525"

[deliver]
team = "smtp://127.0.0.1:2600"
outside = "smtp://127.0.0.1:2601"

[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com"]

[[list]]
address = "team@example.com"
members = ["sales@example.com", "carol@example.com", "dan@example.com", "bob@example.com"]

[[list]]
address = "support@example.com"
members = ["carol@example.com", "partner@agency.example"]

[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com"]
archive_of = ["*@example.com"]

[[list]]
address = "sales-archive@example.com"
members = ["erin@example.com", "alice@example.com"]
archive_of = ["sales@example.com"]

[[list]]
address = "org-archive@example.com"
members = ["frank@example.org"]
archive_of = ["*@example.org"]
"#;

fn config() -> Config {
    parse(CONFIG, Path::new("lists.toml")).expect("test config is valid")
}

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn addrs(list: &[&str]) -> Vec<Address> {
    list.iter().map(|s| a(s)).collect()
}

/// A message with From = sender and To = recipients, as `teamrelay route` builds it.
fn run(c: &Config, from: Option<&str>, to: &[&str], facts: MessageFacts, memory: Memory) -> Plan {
    let envelope = Envelope {
        sender: from.map(a),
        recipients: addrs(to),
    };
    let mut facts = facts;
    if facts.from.is_empty() {
        facts.from = from.map(a).into_iter().collect();
    }
    if facts.to.is_empty() {
        facts.to = addrs(to);
    }
    plan(c, &envelope, &facts, &memory, Ingress::Normal)
}

fn simple(from: &str, to: &[&str]) -> Plan {
    run(
        &config(),
        Some(from),
        to,
        MessageFacts::default(),
        Memory::default(),
    )
}

/// Recipients of deliveries of one kind, sorted.
fn of_kind(p: &Plan, pick: impl Fn(&DeliveryKind) -> bool) -> Vec<String> {
    let mut v: Vec<String> = p
        .deliveries
        .iter()
        .filter(|d| pick(&d.kind))
        .flat_map(|d| d.recipients.iter().map(|r| r.to_string()))
        .collect();
    v.sort();
    v
}

fn copies(p: &Plan) -> Vec<String> {
    of_kind(p, |k| matches!(k, DeliveryKind::Archive(_)))
}

fn originals(p: &Plan) -> Vec<String> {
    of_kind(p, |k| *k == DeliveryKind::Original)
}

fn skip_of(p: &Plan, who: &str) -> Option<SkipReason> {
    p.skipped
        .iter()
        .find(|s| s.address == a(who))
        .map(|s| s.reason.clone())
}

fn header<'p>(d: &'p Delivery, name: &str) -> Option<&'p str> {
    d.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn list_expansion_nesting_and_dedup() {
    // (recipients, expected list-delivery recipients, expected direct originals)
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["sales@example.com"],
            &["alice@example.com", "bob@example.com"],
            &[],
        ),
        (
            &["team@example.com"],
            &[
                "alice@example.com",
                "bob@example.com",
                "carol@example.com",
                "dan@example.com",
            ],
            &[],
        ),
        // Direct recipient wins over the list.
        (
            &["sales@example.com", "alice@example.com"],
            &["bob@example.com"],
            &["alice@example.com"],
        ),
        // Reached through two lists: once, through the first.
        (
            &["sales@example.com", "team@example.com"],
            &[
                "alice@example.com",
                "bob@example.com",
                "carol@example.com",
                "dan@example.com",
            ],
            &[],
        ),
        // The same list twice is one list.
        (
            &["sales@example.com", "SALES@example.com"],
            &["alice@example.com", "bob@example.com"],
            &[],
        ),
    ];
    for (to, listed, direct) in cases {
        let p = simple("carol@example.com", to);
        assert_eq!(
            of_kind(&p, |k| matches!(k, DeliveryKind::List(_))),
            *listed,
            "{to:?}"
        );
        assert_eq!(originals(&p), *direct, "{to:?}");
    }
    let p = simple(
        "carol@example.com",
        &["sales@example.com", "alice@example.com"],
    );
    assert_eq!(
        skip_of(&p, "alice@example.com"),
        Some(SkipReason::DirectRecipient)
    );
    let p = simple(
        "carol@example.com",
        &["sales@example.com", "team@example.com"],
    );
    assert_eq!(
        skip_of(&p, "alice@example.com"),
        Some(SkipReason::ViaEarlierList(a("sales@example.com")))
    );
}

#[test]
fn list_deliveries_carry_list_headers_and_bounce_sender_of_the_outer_list() {
    let p = simple("carol@example.com", &["team@example.com"]);
    let d = p
        .deliveries
        .iter()
        .find(|d| matches!(d.kind, DeliveryKind::List(_)))
        .unwrap();
    assert_eq!(d.kind, DeliveryKind::List(a("team@example.com")));
    assert_eq!(d.sender, Some(a("team-bounces@example.com")));
    assert_eq!(header(d, "List-Id"), Some("<team.example.com>"));
    assert_eq!(header(d, "Precedence"), Some("list"));
    // A message that already has them keeps its own.
    let facts = MessageFacts {
        has_list_id: true,
        precedence: Some("bulk".into()),
        ..Default::default()
    };
    let p = run(
        &config(),
        Some("carol@example.com"),
        &["sales@example.com"],
        facts,
        Memory::default(),
    );
    assert!(p.deliveries[0].headers.is_empty());
}

#[test]
fn routes_follow_the_recipient_domain() {
    let p = simple(
        "carol@example.com",
        &["support@example.com", "x@shop.example", "y@example.org"],
    );
    for d in &p.deliveries {
        for r in &d.recipients {
            let want = if r.domain().starts_with("example.") {
                RouteKind::Team
            } else {
                RouteKind::Outside
            };
            assert_eq!(d.route, want, "{r}");
        }
    }
    // A list with an outside member is split by route.
    let support: Vec<&Delivery> = p
        .deliveries
        .iter()
        .filter(|d| d.kind == DeliveryKind::List(a("support@example.com")))
        .collect();
    assert_eq!(support.len(), 2);
}

#[test]
fn customer_facing_inbound_and_outbound_get_copies() {
    // alice is a member of sales@, so sales-archive (archive_of sales@) matches too and
    // erin, who is only in that archive, gets a copy from it.
    let p = simple("cus@shop.example", &["alice@example.com"]);
    assert_eq!(
        copies(&p),
        [
            "bob@example.com",
            "carol@example.com",
            "dan@example.com",
            "erin@example.com"
        ]
    );
    let d = p
        .deliveries
        .iter()
        .find(|d| matches!(d.kind, DeliveryKind::Archive(_)))
        .unwrap();
    assert_eq!(d.sender, Some(a("customers-archive-bounces@example.com")));
    assert_eq!(
        header(d, "X-Teamrelay-Archive"),
        Some("customers-archive@example.com")
    );
    assert_eq!(header(d, "X-Teamrelay-For"), Some("alice@example.com"));
    assert_eq!(header(d, "X-Teamrelay-Direction"), Some("inbound"));
    assert_eq!(
        header(d, "List-Id"),
        Some("<customers-archive.example.com>")
    );
    assert_eq!(header(d, "Precedence"), Some("list"));
    assert_eq!(header(d, "X-Auto-Response-Suppress"), Some("All"));
    assert_eq!(
        skip_of(&p, "alice@example.com"),
        Some(SkipReason::PrimaryRecipient)
    );

    let p = simple("bob@example.com", &["cus@shop.example"]);
    assert_eq!(
        copies(&p),
        [
            "alice@example.com",
            "carol@example.com",
            "dan@example.com",
            "erin@example.com"
        ]
    );
    assert_eq!(skip_of(&p, "bob@example.com"), Some(SkipReason::Sender));
    let d = p
        .deliveries
        .iter()
        .find(|d| matches!(d.kind, DeliveryKind::Archive(_)))
        .unwrap();
    assert_eq!(header(d, "X-Teamrelay-Direction"), Some("outbound"));
    assert_eq!(originals(&p), ["cus@shop.example"]);
}

/// (envelope sender, recipients, headers, memory, the expected skip if any).
type Case<'a> = (
    Option<&'a str>,
    Vec<&'a str>,
    MessageFacts,
    Memory,
    Option<fn(&ArchiveSkip) -> bool>,
);

#[test]
fn archive_step_skips_in_spec_order() {
    let c = config();
    let auto = |h: &str, v: &str| {
        let mut f = MessageFacts::default();
        match h {
            "Auto-Submitted" => f.auto_submitted = Some(v.into()),
            "Precedence" => f.precedence = Some(v.into()),
            "List-Id" => f.has_list_id = true,
            "List-Unsubscribe" => f.has_list_unsubscribe = true,
            "X-Teamrelay-Archive" => f.archive_marker = true,
            _ => {}
        }
        f
    };
    let private_memory = Memory {
        thread_private: true,
        ..Default::default()
    };
    // (from, to, facts, memory, expected skip)
    let cases: Vec<Case> = vec![
        (
            Some("alice@example.com"),
            vec!["bob@example.com"],
            MessageFacts::default(),
            Memory::default(),
            Some(|s| *s == ArchiveSkip::NotCustomerFacing),
        ),
        (
            None,
            vec!["alice@example.com"],
            MessageFacts::default(),
            Memory::default(),
            Some(|s| *s == ArchiveSkip::NullSender),
        ),
        // SPEC §3: a null sender is never customer-facing, even with a customer in From.
        (
            None,
            vec!["alice@example.com"],
            MessageFacts {
                from: addrs(&["cus@shop.example"]),
                ..Default::default()
            },
            Memory::default(),
            Some(|s| *s == ArchiveSkip::NullSender),
        ),
        (
            Some("cus@shop.example"),
            vec!["alice@example.com"],
            auto("X-Teamrelay-Archive", ""),
            Memory::default(),
            Some(|s| *s == ArchiveSkip::AlreadyAnArchiveCopy),
        ),
        (
            Some("cus@shop.example"),
            vec!["alice@example.com", "private@example.com"],
            MessageFacts::default(),
            Memory::default(),
            Some(|s| *s == ArchiveSkip::PrivateAddress),
        ),
        (
            Some("cus@shop.example"),
            vec!["alice@example.com"],
            MessageFacts::default(),
            private_memory,
            Some(|s| *s == ArchiveSkip::PrivateThread),
        ),
        (
            Some("x@lawfirm.example"),
            vec!["alice@example.com"],
            MessageFacts::default(),
            Memory::default(),
            Some(|s| matches!(s, ArchiveSkip::NeverArchive(_))),
        ),
        (
            Some("judge@court.example"),
            vec!["alice@example.com"],
            MessageFacts::default(),
            Memory::default(),
            Some(|s| matches!(s, ArchiveSkip::NeverArchive(_))),
        ),
        (
            Some("cus@shop.example"),
            vec!["alice@example.com"],
            auto("Auto-Submitted", "auto-replied"),
            Memory::default(),
            Some(|s| matches!(s, ArchiveSkip::Automatic(_))),
        ),
        (
            Some("cus@shop.example"),
            vec!["alice@example.com"],
            auto("Precedence", "bulk"),
            Memory::default(),
            Some(|s| matches!(s, ArchiveSkip::Automatic(_))),
        ),
        (
            Some("cus@shop.example"),
            vec!["alice@example.com"],
            auto("Precedence", "junk"),
            Memory::default(),
            Some(|s| matches!(s, ArchiveSkip::Automatic(_))),
        ),
        (
            Some("cus@shop.example"),
            vec!["alice@example.com"],
            auto("Precedence", "list"),
            Memory::default(),
            Some(|s| matches!(s, ArchiveSkip::Automatic(_))),
        ),
        (
            Some("news@shop.example"),
            vec!["alice@example.com"],
            auto("List-Id", ""),
            Memory::default(),
            Some(|s| matches!(s, ArchiveSkip::Automatic(_))),
        ),
        (
            Some("news@shop.example"),
            vec!["alice@example.com"],
            auto("List-Unsubscribe", ""),
            Memory::default(),
            Some(|s| matches!(s, ArchiveSkip::Automatic(_))),
        ),
        // Not skipped: Auto-Submitted: no, List-Id from an internal sender, other Precedence.
        (
            Some("cus@shop.example"),
            vec!["alice@example.com"],
            auto("Auto-Submitted", "no"),
            Memory::default(),
            None,
        ),
        (
            Some("alice@example.com"),
            vec!["cus@shop.example"],
            auto("List-Id", ""),
            Memory::default(),
            None,
        ),
        (
            Some("cus@shop.example"),
            vec!["alice@example.com"],
            auto("Precedence", "first-class"),
            Memory::default(),
            None,
        ),
        // A never_archive address on a subdomain is not matched.
        (
            Some("x@sub.lawfirm.example"),
            vec!["alice@example.com"],
            MessageFacts::default(),
            Memory::default(),
            None,
        ),
    ];
    for (i, (from, to, facts, memory, want)) in cases.into_iter().enumerate() {
        let p = run(&c, from, &to, facts, memory);
        match (want, &p.archive_skip) {
            (Some(check), Some(got)) => assert!(check(got), "case {i}: {got:?}"),
            (None, None) => assert!(!copies(&p).is_empty(), "case {i}: copies expected"),
            (want, got) => panic!("case {i}: expected skip {}, got {got:?}", want.is_some()),
        }
        if p.archive_skip.is_some() {
            assert!(copies(&p).is_empty(), "case {i}");
        }
    }
}

#[test]
fn archive_bulk_archives_automatic_mail() {
    let text = CONFIG.replace("never_archive", "archive_bulk = true\nnever_archive");
    let c = parse(&text, Path::new("lists.toml")).unwrap();
    let facts = MessageFacts {
        auto_submitted: Some("auto-replied".into()),
        has_list_id: true,
        ..Default::default()
    };
    let p = run(
        &c,
        Some("cus@shop.example"),
        &["alice@example.com"],
        facts,
        Memory::default(),
    );
    assert_eq!(p.archive_skip, None);
    assert_eq!(copies(&p).len(), 4);
    // The copy keeps the message's own List-Id.
    let d = p
        .deliveries
        .iter()
        .find(|d| matches!(d.kind, DeliveryKind::Archive(_)))
        .unwrap();
    assert_eq!(header(d, "List-Id"), None);
}

#[test]
fn private_address_is_dropped_and_remembered() {
    let p = simple(
        "alice@example.com",
        &["cus@shop.example", "private@example.com"],
    );
    assert!(p.private);
    assert_eq!(
        skip_of(&p, "private@example.com"),
        Some(SkipReason::PrivateAddress)
    );
    assert!(p
        .deliveries
        .iter()
        .all(|d| !d.recipients.contains(&a("private@example.com"))));
    assert_eq!(originals(&p), ["cus@shop.example"]);
    // A thread remembered private is remembered again (privacy follows the thread).
    let p = run(
        &config(),
        Some("cus@shop.example"),
        &["alice@example.com"],
        MessageFacts::default(),
        Memory {
            thread_private: true,
            ..Default::default()
        },
    );
    assert!(p.private);
    // Only the private address: nothing is delivered at all.
    let p = simple("alice@example.com", &["private@example.com"]);
    assert!(p.deliveries.is_empty());
}

#[test]
fn one_copy_per_member_across_archive_lists() {
    // A customer writes to sales@: customers-archive (all of example.com) and
    // sales-archive (members of sales@) both match; alice is in both archives but is a
    // primary recipient; erin is only in sales-archive.
    let p = simple("cus@shop.example", &["sales@example.com"]);
    assert_eq!(
        copies(&p),
        ["carol@example.com", "dan@example.com", "erin@example.com"]
    );
    let from_sales_archive = of_kind(&p, |k| {
        *k == DeliveryKind::Archive(a("sales-archive@example.com"))
    });
    assert_eq!(from_sales_archive, ["erin@example.com"]);
    // dan is in both customers-archive and (via nothing else) — one copy only.
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in copies(&p) {
        *counts.entry(r).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1));
    // A member of two archives that both match gets its copy from the first.
    let p = simple("cus@shop.example", &["bob@example.com"]);
    let first = of_kind(&p, |k| {
        *k == DeliveryKind::Archive(a("customers-archive@example.com"))
    });
    assert!(first.contains(&"alice@example.com".to_string()));
    assert_eq!(
        skip_of(&p, "alice@example.com"),
        Some(SkipReason::CopyFromEarlierList(a(
            "customers-archive@example.com"
        )))
    );
}

#[test]
fn archive_of_matches_domains_exactly_and_lists_by_members() {
    // example.org participant: only org-archive covers it.
    let p = simple("cus@shop.example", &["zoe@example.org"]);
    assert_eq!(copies(&p), ["frank@example.org"]);
    // sales-archive covers sales@'s members, so a message to bob alone matches it.
    let p = simple("cus@shop.example", &["bob@example.com"]);
    let sales_copies = of_kind(&p, |k| {
        *k == DeliveryKind::Archive(a("sales-archive@example.com"))
    });
    assert_eq!(sales_copies, ["erin@example.com"]);
    // carol is not a member of sales@: sales-archive does not match.
    let p = simple("cus@shop.example", &["carol@example.com"]);
    assert!(of_kind(&p, |k| *k
        == DeliveryKind::Archive(a("sales-archive@example.com")))
    .is_empty());
}

#[test]
fn members_named_in_headers_or_already_having_the_message_are_excluded() {
    let facts = MessageFacts {
        cc: addrs(&["carol@example.com"]),
        ..Default::default()
    };
    let memory = Memory {
        already_has: addrs(&["dan@example.com"]).into_iter().collect(),
        ..Default::default()
    };
    let p = run(
        &config(),
        Some("cus@shop.example"),
        &["alice@example.com"],
        facts,
        memory,
    );
    assert_eq!(copies(&p), ["bob@example.com", "erin@example.com"]);
    assert_eq!(
        skip_of(&p, "carol@example.com"),
        Some(SkipReason::NamedInHeaders)
    );
    assert_eq!(
        skip_of(&p, "dan@example.com"),
        Some(SkipReason::AlreadyHasMessage)
    );
}

#[test]
fn list_bounces_are_consumed() {
    let p = simple("mailer-daemon@shop.example", &["sales-bounces@example.com"]);
    assert!(p.deliveries.is_empty());
    assert_eq!(p.consumed_bounces, addrs(&["sales-bounces@example.com"]));
    assert_eq!(
        skip_of(&p, "sales-bounces@example.com"),
        Some(SkipReason::BounceConsumed)
    );
}

#[test]
fn mail_straight_to_an_archive_list_is_an_archive_copy() {
    let p = simple("cus@shop.example", &["customers-archive@example.com"]);
    let d = &p.deliveries[0];
    assert_eq!(
        d.kind,
        DeliveryKind::Archive(a("customers-archive@example.com"))
    );
    assert_eq!(
        header(d, "X-Teamrelay-Archive"),
        Some("customers-archive@example.com")
    );
    assert_eq!(d.sender, Some(a("customers-archive-bounces@example.com")));
    let mut all: Vec<String> = p
        .deliveries
        .iter()
        .flat_map(|d| d.recipients.iter().map(|r| r.to_string()))
        .collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "nobody twice");
}

#[test]
fn tap_mode_delivers_no_original_and_reads_participants_from_headers() {
    let c = config();
    let facts = MessageFacts {
        from: addrs(&["cus@shop.example"]),
        to: addrs(&["alice@example.com"]),
        original_to: addrs(&["bob@example.com"]),
        ..Default::default()
    };
    let envelope = Envelope {
        sender: Some(a("cus@shop.example")),
        recipients: addrs(&["tap@example.com"]),
    };
    let p = plan(&c, &envelope, &facts, &Memory::default(), Ingress::Tap);
    assert!(originals(&p).is_empty());
    assert_eq!(
        copies(&p),
        ["carol@example.com", "dan@example.com", "erin@example.com"]
    );
    // Outbound tap copy with a rewritten (SRS) envelope sender: the From decides.
    let facts = MessageFacts {
        from: addrs(&["alice@example.com"]),
        to: addrs(&["cus@shop.example"]),
        ..Default::default()
    };
    let envelope = Envelope {
        sender: Some(a("srs0=x@forwarder.example")),
        recipients: addrs(&["tap@example.com"]),
    };
    let p = plan(&c, &envelope, &facts, &Memory::default(), Ingress::Tap);
    let d = p
        .deliveries
        .iter()
        .find(|d| matches!(d.kind, DeliveryKind::Archive(_)))
        .unwrap();
    assert_eq!(header(d, "X-Teamrelay-Direction"), Some("outbound"));
}

#[test]
fn team_recipients_are_what_the_memory_records() {
    let p = simple(
        "cus@shop.example",
        &["alice@example.com", "other@shop.example"],
    );
    let team: Vec<String> = p.team_recipients().iter().map(|a| a.to_string()).collect();
    assert_eq!(
        team,
        [
            "alice@example.com",
            "bob@example.com",
            "carol@example.com",
            "dan@example.com",
            "erin@example.com"
        ]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const UNIVERSE: &[&str] = &[
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "erin@example.com",
        "zoe@example.org",
        "sales@example.com",
        "team@example.com",
        "support@example.com",
        "customers-archive@example.com",
        "private@example.com",
        "sales-bounces@example.com",
        "cus@shop.example",
        "y@lawfirm.example",
        "partner@agency.example",
    ];

    fn addr() -> impl Strategy<Value = Address> {
        proptest::sample::select(UNIVERSE).prop_map(a)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn invariants_hold(
            sender in proptest::option::of(addr()),
            rcpts in proptest::collection::vec(addr(), 1..5),
            cc in proptest::collection::vec(addr(), 0..3),
            auto in any::<bool>(),
            thread_private in any::<bool>(),
            already in proptest::collection::vec(addr(), 0..3),
            tap in any::<bool>(),
        ) {
            let c = config();
            let facts = MessageFacts {
                from: sender.iter().cloned().collect(),
                to: rcpts.clone(),
                cc: cc.clone(),
                auto_submitted: auto.then(|| "auto-replied".to_string()),
                ..Default::default()
            };
            let memory = Memory { thread_private, already_has: already.into_iter().collect(), ..Memory::default() };
            let envelope = Envelope { sender: sender.clone(), recipients: rcpts.clone() };
            let ingress = if tap { Ingress::Tap } else { Ingress::Normal };
            let p = plan(&c, &envelope, &facts, &memory, ingress);

            // Nobody gets the message twice.
            let mut seen = HashSet::new();
            for d in &p.deliveries {
                for r in &d.recipients {
                    prop_assert!(seen.insert(r.clone()), "{} twice in {:?}", r, p.deliveries);
                }
            }
            // The private address is never a recipient.
            prop_assert!(!seen.contains(&a("private@example.com")));
            // Lists and -bounces addresses are never delivered as such.
            for l in &c.lists {
                prop_assert!(!seen.contains(&l.address));
                prop_assert!(!seen.contains(&l.address.bounces()));
            }
            // Internal-only or null-sender mail yields no archive copy (unless an archive
            // list was addressed directly, which is a list delivery marked as a copy).
            let archive_addressed = rcpts.iter().any(|r| c.list(r).is_some_and(|l| l.is_archive()));
            let mut participants: Vec<&Address> = sender.iter().collect();
            participants.extend(&rcpts);
            participants.extend(&cc);
            let internal_only = participants.iter().all(|p| c.is_internal(p));
            if (internal_only || sender.is_none()) && !archive_addressed {
                prop_assert!(p.archive_copies() == 0, "{:?}", p);
            }
            // Every archive-list member who got nothing from an archive step that ran has
            // a recorded reason.
            if p.archive_skip.is_none() {
                for l in &p.archives_matched {
                    for m in c.members(l) {
                        prop_assert!(seen.contains(&m) || p.skipped.iter().any(|s| s.address == m), "{} has no reason", m);
                    }
                }
            }
            // The memory records only team addresses.
            for t in p.team_recipients() {
                prop_assert!(c.is_internal(&t));
            }
            // Tap mode never delivers an original.
            if tap {
                prop_assert!(p.deliveries.iter().all(|d| d.kind != DeliveryKind::Original));
            }
        }
    }
}

/// Fuzzer regression (`fuzz/regressions/route/archive-member-of-unmatched-list`): a
/// member skipped by one archive list is also a member of another archive list that did
/// not match; only matched lists owe a reason for every member.
#[test]
fn regression_reasons_are_owed_only_by_matched_archive_lists() {
    let p = simple("dan@example.com", &["dan@example.com"]);
    assert_eq!(p.archive_skip, Some(ArchiveSkip::NotCustomerFacing));
    let facts = MessageFacts {
        from: addrs(&["cus@shop.example"]),
        ..Default::default()
    };
    let p = run(
        &config(),
        Some("cus@shop.example"),
        &["carol@example.com"],
        facts,
        Memory::default(),
    );
    assert_eq!(
        p.archives_matched,
        addrs(&["customers-archive@example.com"])
    );
    for m in config().members(&a("customers-archive@example.com")) {
        let covered = p.deliveries.iter().any(|d| d.recipients.contains(&m))
            || p.skipped.iter().any(|s| s.address == m);
        assert!(covered, "{m}");
    }
}
