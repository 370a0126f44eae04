//! SPEC §9 rule by rule: thread, owner, assignment, absences and cover, collision notice.

use std::path::Path;

use super::*;
use crate::config::{parse, Config};

const CONFIG: &str = r#"
[team]
domains = ["example.com"]
private_address = "private@example.com"
cover = "bob@example.com"
auto_away = "24h"
collision_window = "30m"

[[listen]]
address = "127.0.0.1:2525"

[deliver]
team = "smtp://127.0.0.1:2600"
outside = "smtp://127.0.0.1:2601"

[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com", "eve@example.com"]
assign = "owner"

[[list]]
address = "support@example.com"
members = ["carol@example.com", "dan@example.com"]

[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com"]
archive_of = ["*@example.com"]
"#;

/// 2026-12-01 12:00 UTC.
const NOW: u64 = 1796126400;
const CUSTOMER: &str = "customer@shop.example";

fn config() -> Config {
    parse(CONFIG, Path::new("lists.toml")).expect("test config is valid")
}

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn memory() -> Memory {
    Memory {
        thread: "t1@shop.example".into(),
        now: NOW,
        ..Memory::default()
    }
}

fn away(who: &str, until: u64, cover: Option<&str>) -> Absence {
    Absence {
        address: who.into(),
        until,
        cover: cover.map(str::to_string),
        source: "manual".into(),
    }
}

fn facts_of(raw: &str) -> MessageFacts {
    MessageFacts::from_message(raw.replace('\n', "\r\n").as_bytes())
}

fn run(c: &Config, from: &str, to: &[&str], facts: MessageFacts, memory: &Memory) -> Plan {
    let envelope = Envelope {
        sender: Some(a(from)),
        recipients: to.iter().map(|t| a(t)).collect(),
    };
    let mut facts = facts;
    if facts.from.is_empty() {
        facts.from = vec![a(from)];
        facts.to = envelope.recipients.clone();
    }
    plan(c, &envelope, &facts, memory, Ingress::Normal)
}

fn with_id(id: &str) -> MessageFacts {
    MessageFacts {
        message_id: Some(id.into()),
        ..MessageFacts::default()
    }
}

fn rcpts(p: &Plan, pick: impl Fn(&DeliveryKind) -> bool) -> Vec<String> {
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
    rcpts(p, |k| matches!(k, DeliveryKind::Archive(_)))
}

fn header<'p>(p: &'p Plan, kind: impl Fn(&DeliveryKind) -> bool, name: &str) -> Option<&'p str> {
    p.deliveries
        .iter()
        .filter(|d| kind(&d.kind))
        .flat_map(|d| d.headers.iter())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_thread_is_the_first_known_reference_then_in_reply_to_then_the_fallbacks() {
    let f =
        facts_of("Message-ID: <m3@x>\nIn-Reply-To: <m2@x>\nReferences: <m0@x> <m1@x> <m2@x>\n\n");
    let q = Query::of(&f);
    assert_eq!(q.candidates, ["m0@x", "m1@x", "m2@x"]);
    assert_eq!(q.fallback, "m0@x");
    assert_eq!(q.private_ids, ["m3@x", "m2@x", "m0@x", "m1@x", "m2@x"]);
    assert_eq!(q.resolve(&[None, Some("T".into()), Some("U".into())]), "T");
    assert_eq!(q.resolve(&[None, None, None]), "m0@x");
    let only_parent = Query::of(&facts_of("Message-ID: <m3@x>\nIn-Reply-To: <m2@x>\n\n"));
    assert_eq!(only_parent.fallback, "m2@x");
    let root = Query::of(&facts_of("Message-ID: <m3@x>\n\n"));
    assert_eq!(root.fallback, "m3@x");
    assert_eq!(Query::of(&MessageFacts::default()).fallback, "");
}

#[test]
fn the_first_teammate_to_write_to_the_customer_becomes_the_owner() {
    let c = config();
    let p = run(
        &c,
        "alice@example.com",
        &[CUSTOMER],
        with_id("o1@example.com"),
        &memory(),
    );
    assert_eq!(p.remember.owner.as_deref(), Some("alice@example.com"));
    assert_eq!(p.remember.thread.as_deref(), Some("t1@shop.example"));
    // An owner already there stays.
    let mut m = memory();
    m.owner = Some(a("bob@example.com"));
    let p = run(
        &c,
        "alice@example.com",
        &[CUSTOMER],
        with_id("o2@example.com"),
        &m,
    );
    assert_eq!(p.remember.owner, None);
    // Internal mail, inbound mail, a list sender and private mail make nobody owner.
    let p = run(
        &c,
        "alice@example.com",
        &["carol@example.com"],
        with_id("o3@example.com"),
        &memory(),
    );
    assert_eq!(p.remember.owner, None);
    let p = run(
        &c,
        CUSTOMER,
        &["alice@example.com"],
        with_id("o4@shop.example"),
        &memory(),
    );
    assert_eq!(p.remember.owner, None);
    let p = run(
        &c,
        "sales@example.com",
        &[CUSTOMER],
        with_id("o5@example.com"),
        &memory(),
    );
    assert_eq!(p.remember.owner, None);
    let p = run(
        &c,
        "alice@example.com",
        &[CUSTOMER, "private@example.com"],
        with_id("o6@example.com"),
        &memory(),
    );
    assert_eq!(p.remember.owner, None);
}

#[test]
fn archive_copies_in_an_owned_thread_name_the_owner_after_the_direction() {
    let c = config();
    let mut m = memory();
    m.owner = Some(a("alice@example.com"));
    let p = run(
        &c,
        CUSTOMER,
        &["carol@example.com"],
        with_id("h1@shop.example"),
        &m,
    );
    let d = p
        .deliveries
        .iter()
        .find(|d| matches!(d.kind, DeliveryKind::Archive(_)))
        .expect("an archive copy");
    let names: Vec<&str> = d.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..4],
        [
            "X-Teamrelay-Archive",
            "X-Teamrelay-For",
            "X-Teamrelay-Direction",
            "X-Teamrelay-Owner"
        ]
    );
    assert_eq!(d.headers[3].1, "alice@example.com");
    // Originals never carry it; an unowned thread's copies neither.
    assert_eq!(
        header(&p, |k| *k == DeliveryKind::Original, "X-Teamrelay-Owner"),
        None
    );
    let p = run(
        &c,
        CUSTOMER,
        &["carol@example.com"],
        with_id("h2@shop.example"),
        &memory(),
    );
    assert_eq!(
        header(
            &p,
            |k| matches!(k, DeliveryKind::Archive(_)),
            "X-Teamrelay-Owner"
        ),
        None
    );
}

#[test]
fn an_assigned_list_hands_the_customers_reply_to_the_owner_alone() {
    let c = config();
    let mut m = memory();
    m.owner = Some(a("alice@example.com"));
    let p = run(
        &c,
        CUSTOMER,
        &["sales@example.com"],
        with_id("s1@shop.example"),
        &m,
    );
    assert_eq!(
        rcpts(&p, |k| matches!(k, DeliveryKind::List(_))),
        ["alice@example.com"]
    );
    assert_eq!(
        p.assigned,
        [(a("sales@example.com"), a("alice@example.com"))]
    );
    let eve = p
        .skipped
        .iter()
        .find(|s| s.address == a("eve@example.com"))
        .unwrap();
    assert_eq!(
        eve.reason,
        SkipReason::AssignedToOwner(a("sales@example.com"), a("alice@example.com"))
    );
    // The rest of the team sees it through the archive step.
    assert_eq!(
        copies(&p),
        ["bob@example.com", "carol@example.com", "dan@example.com"]
    );
    // A new thread goes to the whole list.
    let p = run(
        &c,
        CUSTOMER,
        &["sales@example.com"],
        with_id("s2@shop.example"),
        &memory(),
    );
    assert_eq!(
        rcpts(&p, |k| matches!(k, DeliveryKind::List(_))),
        ["alice@example.com", "bob@example.com", "eve@example.com"]
    );
    // So does a thread whose owner is away, or not on the list.
    let mut m2 = m.clone();
    m2.absences = vec![away("alice@example.com", NOW + 86400, None)];
    let p = run(
        &c,
        CUSTOMER,
        &["sales@example.com"],
        with_id("s3@shop.example"),
        &m2,
    );
    assert_eq!(rcpts(&p, |k| matches!(k, DeliveryKind::List(_))).len(), 3);
    assert!(
        p.assign_notes[0].contains("away until"),
        "{:?}",
        p.assign_notes
    );
    let mut m3 = m.clone();
    m3.owner = Some(a("carol@example.com"));
    let p = run(
        &c,
        CUSTOMER,
        &["sales@example.com"],
        with_id("s4@shop.example"),
        &m3,
    );
    assert_eq!(rcpts(&p, |k| matches!(k, DeliveryKind::List(_))).len(), 3);
    // A list without `assign` is never narrowed.
    let mut m4 = m.clone();
    m4.owner = Some(a("carol@example.com"));
    let p = run(
        &c,
        CUSTOMER,
        &["support@example.com"],
        with_id("s5@shop.example"),
        &m4,
    );
    assert_eq!(rcpts(&p, |k| matches!(k, DeliveryKind::List(_))).len(), 2);
    // Outbound mail to the list, and a private thread, are left alone.
    let p = run(
        &c,
        "dan@example.com",
        &["sales@example.com", CUSTOMER],
        with_id("s6@example.com"),
        &m,
    );
    assert_eq!(rcpts(&p, |k| matches!(k, DeliveryKind::List(_))).len(), 3);
    let mut m5 = m.clone();
    m5.thread_private = true;
    let p = run(
        &c,
        CUSTOMER,
        &["sales@example.com"],
        with_id("s7@shop.example"),
        &m5,
    );
    assert_eq!(rcpts(&p, |k| matches!(k, DeliveryKind::List(_))).len(), 3);
}

const GMAIL_VACATION: &str = "From: Alice <alice@example.com>
To: customer@shop.example
Subject: Re: Order 1234
Message-ID: <CAvac@mail.gmail.com>
In-Reply-To: <q1@shop.example>
Auto-Submitted: auto-replied
X-Autoreply: yes
Precedence: bulk

I am on holiday until Monday.
";

const OUTLOOK_AUTO_REPLY: &str = "From: Alice <alice@example.com>
To: customer@shop.example
Subject: Automatic reply: Order 1234
Message-ID: <auto1@example.com>
X-MS-Exchange-Organization-AutoReplyingMessage: true
X-Auto-Response-Suppress: All

I am out of the office.
";

const NORMAL_REPLY: &str = "From: Alice <alice@example.com>
To: customer@shop.example
Subject: Re: Automatic reply: Order 1234
Message-ID: <human1@example.com>
In-Reply-To: <q1@shop.example>

Sorry, I am back now: your order ships today.
";

#[test]
fn a_teammates_auto_reply_marks_them_away_with_the_default_cover() {
    let c = config();
    for (name, raw) in [("gmail", GMAIL_VACATION), ("outlook", OUTLOOK_AUTO_REPLY)] {
        let f = facts_of(raw);
        assert!(f.is_auto_reply(), "{name}");
        let p = run(&c, "alice@example.com", &[CUSTOMER], f, &memory());
        let away = p.remember.away.expect(name);
        assert_eq!(away.address, "alice@example.com");
        assert_eq!(away.until, NOW + 86400);
        assert_eq!(away.cover.as_deref(), Some("bob@example.com"));
        assert_eq!(away.source, "auto-reply");
        assert_eq!(p.remember.owner, None, "an auto-reply owns nothing");
        assert_eq!(p.remember.reply, None);
    }
    let out_of_office = facts_of("Subject: Out of Office: Order 1234\n\n");
    assert!(out_of_office.is_auto_reply());
    let f = facts_of(NORMAL_REPLY);
    assert!(!f.is_auto_reply());
    let p = run(&c, "alice@example.com", &[CUSTOMER], f, &memory());
    assert_eq!(p.remember.away, None);
    assert_eq!(p.remember.owner.as_deref(), Some("alice@example.com"));
    // An auto-generated notice is not an auto-reply; a customer's auto-reply marks nobody.
    assert!(!facts_of("Auto-Submitted: auto-generated\n\n").is_auto_reply());
    let p = run(
        &c,
        CUSTOMER,
        &["alice@example.com"],
        facts_of(GMAIL_VACATION),
        &memory(),
    );
    assert_eq!(p.remember.away, None);
}

#[test]
fn without_a_team_cover_auto_replies_mark_nobody_and_manual_absences_stay() {
    let c = parse(
        &CONFIG.replace("cover = \"bob@example.com\"\n", ""),
        Path::new("l.toml"),
    )
    .unwrap();
    let p = run(
        &c,
        "alice@example.com",
        &[CUSTOMER],
        facts_of(GMAIL_VACATION),
        &memory(),
    );
    assert_eq!(p.remember.away, None);
    let c = config();
    let mut m = memory();
    m.absences = vec![away(
        "alice@example.com",
        NOW + 10 * 86400,
        Some("dan@example.com"),
    )];
    let p = run(
        &c,
        "alice@example.com",
        &[CUSTOMER],
        facts_of(GMAIL_VACATION),
        &m,
    );
    assert_eq!(p.remember.away, None, "a manual absence is not shortened");
}

#[test]
fn while_a_teammate_is_away_inbound_customer_mail_also_goes_to_the_cover() {
    let c = config();
    let until = end_of_day("2026-12-05").unwrap();
    let mut m = memory();
    m.absences = vec![away(
        "alice@example.com",
        until,
        Some("support@example.com"),
    )];
    let p = run(
        &c,
        CUSTOMER,
        &["alice@example.com"],
        with_id("c1@shop.example"),
        &m,
    );
    let covers: Vec<&Delivery> = p
        .deliveries
        .iter()
        .filter(|d| d.headers.iter().any(|(n, _)| n == "X-Teamrelay-Cover"))
        .collect();
    assert_eq!(covers.len(), 1);
    assert_eq!(covers[0].kind, DeliveryKind::Original);
    assert_eq!(
        covers[0].recipients,
        [a("carol@example.com"), a("dan@example.com")]
    );
    assert_eq!(
        covers[0].headers,
        [(
            "X-Teamrelay-Cover".to_string(),
            "alice@example.com away until 2026-12-05".to_string()
        )]
    );
    assert_eq!(covers[0].sender, Some(a(CUSTOMER)));
    // The covers have it now: no archive copy for them on top.
    assert_eq!(copies(&p), ["bob@example.com"]);
    assert!(p
        .remember
        .delivered
        .contains(&"carol@example.com".to_string()));
    // Default cover: team.cover.
    m.absences = vec![away("alice@example.com", until, None)];
    let p = run(
        &c,
        CUSTOMER,
        &["alice@example.com"],
        with_id("c2@shop.example"),
        &m,
    );
    assert_eq!(
        header(&p, |k| *k == DeliveryKind::Original, "X-Teamrelay-Cover"),
        Some("alice@example.com away until 2026-12-05")
    );
    assert!(rcpts(&p, |k| *k == DeliveryKind::Original).contains(&"bob@example.com".to_string()));
}

#[test]
fn private_mail_outbound_mail_and_ended_absences_never_go_to_a_cover() {
    let c = config();
    let cover_of = |p: &Plan| header(p, |_| true, "X-Teamrelay-Cover").map(str::to_string);
    let mut m = memory();
    m.absences = vec![away("alice@example.com", NOW + 86400, None)];
    let p = run(
        &c,
        CUSTOMER,
        &["alice@example.com", "private@example.com"],
        with_id("n1@shop.example"),
        &m,
    );
    assert_eq!(cover_of(&p), None);
    assert_eq!(rcpts(&p, |_| true), ["alice@example.com"]);
    let mut private = m.clone();
    private.thread_private = true;
    let p = run(
        &c,
        CUSTOMER,
        &["alice@example.com"],
        with_id("n2@shop.example"),
        &private,
    );
    assert_eq!(cover_of(&p), None);
    assert_eq!(rcpts(&p, |_| true), ["alice@example.com"]);
    let p = run(
        &c,
        "carol@example.com",
        &["alice@example.com", CUSTOMER],
        with_id("n3@example.com"),
        &m,
    );
    assert_eq!(cover_of(&p), None);
    let p = run(
        &c,
        "carol@example.com",
        &["alice@example.com"],
        with_id("n4@example.com"),
        &m,
    );
    assert_eq!(cover_of(&p), None, "internal mail is not customer mail");
    let mut ended = memory();
    ended.absences = vec![away("alice@example.com", NOW, None)];
    let p = run(
        &c,
        CUSTOMER,
        &["alice@example.com"],
        with_id("n5@shop.example"),
        &ended,
    );
    assert_eq!(cover_of(&p), None);
}

fn reply(from: &str, id: &str, at: u64) -> RecentReply {
    RecentReply {
        from: from.into(),
        message_id: id.into(),
        at,
        subject: "Re: Order 1234".into(),
        excerpt: "It ships today.".into(),
    }
}

#[test]
fn answering_a_thread_a_teammate_just_answered_unseen_gives_a_collision_notice() {
    let c = config();
    let mut m = memory();
    m.recent = vec![reply("bob@example.com", "b1@example.com", NOW - 300)];
    let mut f = with_id("a1@example.com");
    f.subject = "Re: Order 1234".into();
    f.thread_ids = vec!["q1@shop.example".into()];
    let p = run(&c, "alice@example.com", &[CUSTOMER], f.clone(), &m);
    let n = p.collision.expect("a notice");
    assert_eq!(n.to, a("alice@example.com"));
    assert_eq!(n.other.from, "bob@example.com");
    assert_eq!(n.ago_secs, 300);
    assert_eq!(n.subject, "Re: Order 1234");
    // The new reply is remembered for the next one.
    let r = p.remember.reply.expect("recorded");
    assert_eq!(
        (r.from.as_str(), r.message_id.as_str(), r.at),
        ("alice@example.com", "a1@example.com", NOW)
    );
    // Seen (referenced), too old, or one's own earlier reply: no notice.
    let mut seen = f.clone();
    seen.thread_ids.push("b1@example.com".into());
    assert_eq!(
        run(&c, "alice@example.com", &[CUSTOMER], seen, &m).collision,
        None
    );
    let mut old = m.clone();
    old.recent = vec![reply("bob@example.com", "b1@example.com", NOW - 31 * 60)];
    assert_eq!(
        run(&c, "alice@example.com", &[CUSTOMER], f.clone(), &old).collision,
        None
    );
    let mut own = m.clone();
    own.recent = vec![reply("alice@example.com", "a0@example.com", NOW - 60)];
    assert_eq!(
        run(&c, "alice@example.com", &[CUSTOMER], f.clone(), &own).collision,
        None
    );
    // Internal mail and private threads neither record nor notify.
    let p = run(
        &c,
        "alice@example.com",
        &["carol@example.com"],
        f.clone(),
        &m,
    );
    assert_eq!((p.collision, p.remember.reply), (None, None));
    let mut private = m.clone();
    private.thread_private = true;
    let p = run(&c, "alice@example.com", &[CUSTOMER], f, &private);
    assert_eq!((p.collision, p.remember.reply), (None, None));
}

#[test]
fn copies_are_claims_and_addressed_recipients_are_plain_records() {
    let c = config();
    let p = run(
        &c,
        CUSTOMER,
        &["alice@example.com"],
        with_id("k1@shop.example"),
        &memory(),
    );
    assert_eq!(p.remember.delivered, ["alice@example.com"]);
    assert_eq!(
        p.remember.claims,
        ["bob@example.com", "carol@example.com", "dan@example.com"]
    );
    let mut p2 = p.clone();
    p2.drop_copies(&[a("carol@example.com")].into_iter().collect());
    assert_eq!(copies(&p2), ["bob@example.com", "dan@example.com"]);
    assert_eq!(p2.remember.claims, ["bob@example.com", "dan@example.com"]);
    assert!(p2
        .skipped
        .iter()
        .any(|s| s.address == a("carol@example.com") && s.reason == SkipReason::AlreadyHasMessage));
}

#[test]
fn dates_are_utc_days() {
    let end = end_of_day("2026-12-05").unwrap();
    assert_eq!(ymd(end - 1), "2026-12-05");
    assert_eq!(ymd(end), "2026-12-06");
    assert_eq!(end % 86400, 0);
    assert_eq!(ymd(NOW), "2026-12-01");
    assert_eq!(
        end_of_day("2024-02-29").map(|e| ymd(e - 1)),
        Some("2024-02-29".into())
    );
    for bad in ["2025-02-29", "2026-13-01", "tomorrow", "2026-12", ""] {
        assert_eq!(end_of_day(bad), None, "{bad}");
    }
}
