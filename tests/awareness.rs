//! SPEC §9 through the real binary (spool memory): real SMTP in, fake upstreams out,
//! `teamrelay away` against the running server and without one.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);
const CUSTOMER: &str = "customer@shop.example";

struct Setup {
    relay: Relay,
    team: Upstream,
    outside: Upstream,
}

/// The base config with `team.cover = dan@` and `assign = "owner"` on sales@.
fn setup() -> Setup {
    let config = base_config("cover = \"dan@example.com\"").replacen(
        "members = [\"alice@example.com\", \"bob@example.com\"]\n",
        "members = [\"alice@example.com\", \"bob@example.com\"]\nassign = \"owner\"\n",
        1,
    );
    assert!(config.contains("assign = \"owner\""));
    let relay = Relay::start(&config);
    let team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    Setup {
        relay,
        team,
        outside,
    }
}

fn mail(headers: &str, body: &str) -> Vec<u8> {
    format!("{}\r\n\r\n{body}\r\n", headers.trim().replace('\n', "\r\n")).into_bytes()
}

/// A teammate's message out through the relay listener.
fn send_out(s: &Setup, from: &str, to: &[&str], msg: &[u8]) {
    let r = send_py(s.relay.port("relay"), from, to, msg);
    assert!(r.success, "{r:?}\n{}", s.relay.log());
}

/// A customer's message in through the MX listener.
fn send_in(s: &Setup, to: &[&str], msg: &[u8]) {
    let r = send_py(s.relay.port("mx"), CUSTOMER, to, msg);
    assert!(r.success, "{r:?}\n{}", s.relay.log());
}

/// Team-side transactions carrying this Message-ID.
fn team_txns(s: &Setup, id: &str) -> Vec<Txn> {
    s.team
        .txns()
        .into_iter()
        .filter(|t| t.text().contains(&format!("Message-ID: <{id}>")))
        .collect()
}

fn wait_team(s: &Setup, id: &str, n: usize) -> Vec<Txn> {
    wait_for(T, || team_txns(s, id).len() >= n);
    std::thread::sleep(Duration::from_millis(300));
    team_txns(s, id)
}

fn away(s: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_teamrelay"))
        .arg("away")
        .arg("--config")
        .arg(&s.relay.config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// alice opens a thread with the customer: she becomes its owner.
fn alice_opens(s: &Setup, id: &str) {
    let m = mail(
        &format!(
            "From: alice@example.com\nTo: {CUSTOMER}\nSubject: Your quote\nMessage-ID: <{id}>"
        ),
        "Here is the quote.",
    );
    send_out(s, "alice@example.com", &[CUSTOMER], &m);
    assert_eq!(s.outside.wait(1, T).len(), 1);
    wait_team(s, id, 1);
}

#[test]
fn archive_copies_in_an_owned_thread_carry_the_owner() {
    let s = setup();
    alice_opens(&s, "q1@example.com");
    // The opening message itself has no owner yet on its copies.
    let first = team_txns(&s, "q1@example.com");
    assert!(first
        .iter()
        .all(|t| header(&t.text(), "X-Teamrelay-Owner").is_none()));
    let reply = mail(
        &format!("From: {CUSTOMER}\nTo: alice@example.com\nSubject: Re: Your quote\nMessage-ID: <r1@shop.example>\nIn-Reply-To: <q1@example.com>"),
        "Looks good.",
    );
    send_in(&s, &["alice@example.com"], &reply);
    let txns = wait_team(&s, "r1@shop.example", 2);
    let copy = txns
        .iter()
        .find(|t| t.rcpts.contains(&"bob@example.com".to_string()))
        .expect("archive copy");
    let text = copy.text();
    assert_eq!(
        header(&text, "X-Teamrelay-Owner"),
        Some("alice@example.com")
    );
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .filter(|n| n.starts_with("X-Teamrelay-"))
        .collect();
    assert_eq!(
        names,
        [
            "X-Teamrelay-Archive",
            "X-Teamrelay-For",
            "X-Teamrelay-Direction",
            "X-Teamrelay-Owner"
        ]
    );
    let original = txns
        .iter()
        .find(|t| t.rcpts == ["alice@example.com"])
        .unwrap();
    assert_eq!(header(&original.text(), "X-Teamrelay-Owner"), None);
}

#[test]
fn a_reply_to_an_assigned_list_goes_to_the_owner_and_the_rest_see_the_archive_copy() {
    let s = setup();
    alice_opens(&s, "q2@example.com");
    let reply = mail(
        &format!("From: {CUSTOMER}\nTo: sales@example.com\nSubject: Re: Your quote\nMessage-ID: <r2@shop.example>\nReferences: <q2@example.com>"),
        "Can we sign today?",
    );
    send_in(&s, &["sales@example.com"], &reply);
    let txns = wait_team(&s, "r2@shop.example", 2);
    let list = txns
        .iter()
        .find(|t| header(&t.text(), "List-Id") == Some("<sales.example.com>"))
        .expect("list delivery");
    assert_eq!(list.rcpts, ["alice@example.com"]);
    let copy = txns
        .iter()
        .find(|t| header(&t.text(), "X-Teamrelay-Archive").is_some())
        .expect("archive copy");
    let mut r = copy.rcpts.clone();
    r.sort();
    assert_eq!(
        r,
        ["bob@example.com", "carol@example.com", "dan@example.com"]
    );
    // A new thread to sales@ goes to the whole list.
    let fresh = mail(
        &format!("From: {CUSTOMER}\nTo: sales@example.com\nSubject: New order\nMessage-ID: <n2@shop.example>"),
        "Hello sales.",
    );
    send_in(&s, &["sales@example.com"], &fresh);
    let txns = wait_team(&s, "n2@shop.example", 2);
    let list = txns
        .iter()
        .find(|t| header(&t.text(), "List-Id") == Some("<sales.example.com>"))
        .expect("list delivery");
    let mut r = list.rcpts.clone();
    r.sort();
    assert_eq!(r, ["alice@example.com", "bob@example.com"]);
}

#[test]
fn a_manual_absence_sends_customer_mail_to_the_cover_but_never_private_mail() {
    let s = setup();
    let (code, out, err) = away(
        &s,
        &[
            "bob@example.com",
            "--until",
            "2099-12-31",
            "--cover",
            "carol@example.com",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("bob@example.com is away until 2099-12-31"),
        "{out}"
    );
    let (code, out, _) = away(&s, &["--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"address": "bob@example.com", "until": "2099-12-31", "cover": "carol@example.com", "source": "manual"}])
    );
    let m = message(CUSTOMER, "bob@example.com", "c1@shop.example", "");
    send_in(&s, &["bob@example.com"], &m);
    let txns = wait_team(&s, "c1@shop.example", 3);
    let cover = txns
        .iter()
        .find(|t| t.rcpts == ["carol@example.com"])
        .expect("cover delivery");
    let text = cover.text();
    assert_eq!(
        header(&text, "X-Teamrelay-Cover"),
        Some("bob@example.com away until 2099-12-31")
    );
    assert_eq!(
        header(&text, "X-Teamrelay-Archive"),
        None,
        "an original, not a copy"
    );
    assert_eq!(cover.mail_from, CUSTOMER);
    // Private: alice's private message, then the customer's reply to bob: no cover.
    let private = message("alice@example.com", CUSTOMER, "p1@example.com", "");
    send_out(
        &s,
        "alice@example.com",
        &[CUSTOMER, "private@example.com"],
        &private,
    );
    let reply = message(
        CUSTOMER,
        "bob@example.com",
        "p2@shop.example",
        "In-Reply-To: <p1@example.com>\r\n",
    );
    send_in(&s, &["bob@example.com"], &reply);
    let txns = wait_team(&s, "p2@shop.example", 1);
    assert_eq!(txns.len(), 1, "{txns:?}");
    assert_eq!(txns[0].rcpts, ["bob@example.com"]);
    // Back: no cover any more.
    let (code, out, _) = away(&s, &["bob@example.com", "--back"]);
    assert_eq!((code, out.trim()), (0, "bob@example.com is back"));
    send_in(
        &s,
        &["bob@example.com"],
        &message(CUSTOMER, "bob@example.com", "c2@shop.example", ""),
    );
    let txns = wait_team(&s, "c2@shop.example", 2);
    assert!(txns
        .iter()
        .all(|t| header(&t.text(), "X-Teamrelay-Cover").is_none()));
    let (_, out, _) = away(&s, &[]);
    assert_eq!(out.trim(), "nobody is away");
}

#[test]
fn away_works_without_a_running_server_and_rejects_bad_dates() {
    let mut s = setup();
    assert_eq!(s.relay.terminate(), Some(0));
    let (code, _, err) = away(&s, &["bob@example.com", "--until", "2099-02-30"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a date"), "{err}");
    let (code, _, err) = away(&s, &["bob@shop.example", "--until", "2099-01-01"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = away(&s, &["sales@example.com", "--until", "2099-01-01"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a list"), "{err}");
    let (code, _, err) = away(&s, &["bob@example.com"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, err) = away(&s, &["bob@example.com", "--until", "2099-01-01"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cover: dan@example.com"), "{out}");
    s.relay.spawn();
    // Right after the start (the admin socket may not be open yet) it still answers.
    let want = "bob@example.com  away until 2099-01-01  cover dan@example.com  (manual)";
    let (code, out, err) = away(&s, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(want), "{out}");
}

const GMAIL_VACATION: &str = "From: Alice <alice@example.com>
To: customer@shop.example
Subject: Re: Order 1234
Message-ID: <CAvac1@mail.gmail.com>
In-Reply-To: <o1@shop.example>
Auto-Submitted: auto-replied
X-Autoreply: yes
Precedence: bulk";

const OUTLOOK_AUTO_REPLY: &str = "From: Alice <alice@example.com>
To: customer@shop.example
Subject: Automatic reply: Order 1234
Message-ID: <auto1@example.com>
X-MS-Exchange-Organization-AutoReplyingMessage: true
X-Auto-Response-Suppress: All";

const NORMAL_REPLY: &str = "From: Alice <alice@example.com>
To: customer@shop.example
Subject: Re: Automatic reply: Order 1234
Message-ID: <human1@example.com>
In-Reply-To: <o1@shop.example>";

#[test]
fn a_teammates_auto_reply_marks_them_away_and_their_customer_mail_goes_to_the_cover() {
    for (name, vacation) in [("gmail", GMAIL_VACATION), ("outlook", OUTLOOK_AUTO_REPLY)] {
        let s = setup();
        // A normal reply first: it must not count.
        send_out(
            &s,
            "alice@example.com",
            &[CUSTOMER],
            &mail(NORMAL_REPLY, "Back now."),
        );
        assert_eq!(s.outside.wait(1, T).len(), 1);
        let (_, out, _) = away(&s, &["--json"]);
        assert_eq!(
            out.trim(),
            "[]",
            "{name}: a normal reply marked someone away"
        );
        send_out(
            &s,
            "alice@example.com",
            &[CUSTOMER],
            &mail(vacation, "I am on holiday."),
        );
        assert_eq!(s.outside.wait(2, T).len(), 2);
        let (_, out, _) = away(&s, &["--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["address"], "alice@example.com", "{name}: {out}");
        assert_eq!(v[0]["source"], "auto-reply");
        assert_eq!(v[0]["cover"], "dan@example.com");
        send_in(
            &s,
            &["alice@example.com"],
            &message(CUSTOMER, "alice@example.com", "v1@shop.example", ""),
        );
        let txns = wait_team(&s, "v1@shop.example", 2);
        let cover = txns
            .iter()
            .find(|t| t.rcpts == ["dan@example.com"])
            .expect(name);
        let text = cover.text();
        let h = header(&text, "X-Teamrelay-Cover").unwrap_or_default();
        assert!(
            h.starts_with("alice@example.com away until 20"),
            "{name}: {h}"
        );
    }
}

#[test]
fn answering_a_thread_a_teammate_just_answered_brings_a_collision_notice() {
    let s = setup();
    let question = message(CUSTOMER, "sales@example.com", "ask1@shop.example", "");
    send_in(&s, &["sales@example.com"], &question);
    wait_team(&s, "ask1@shop.example", 2);
    let bob = mail(
        &format!("From: bob@example.com\nTo: {CUSTOMER}\nSubject: Re: test\nMessage-ID: <bob1@example.com>\nIn-Reply-To: <ask1@shop.example>"),
        "We can ship on Monday, with a 10% discount.\r\n\r\nOn Tue, customer wrote:\r\n> question",
    );
    send_out(&s, "bob@example.com", &[CUSTOMER], &bob);
    wait_team(&s, "bob1@example.com", 1);
    let alice = mail(
        &format!("From: alice@example.com\nTo: {CUSTOMER}\nSubject: Re: test\nMessage-ID: <alice1@example.com>\nIn-Reply-To: <ask1@shop.example>"),
        "Shipping is next week.",
    );
    send_out(&s, "alice@example.com", &[CUSTOMER], &alice);
    assert_eq!(
        s.outside.wait(2, T).len(),
        2,
        "both replies reach the customer"
    );
    let notice_of = |s: &Setup| {
        s.team
            .txns()
            .into_iter()
            .filter(|t| header(&t.text(), "X-Teamrelay-Notice") == Some("collision"))
            .collect::<Vec<_>>()
    };
    assert!(
        wait_for(T, || !notice_of(&s).is_empty()),
        "{}",
        s.relay.log()
    );
    let n = &notice_of(&s)[0];
    let text = n.text();
    assert_eq!(n.mail_from, "");
    assert_eq!(n.rcpts, ["alice@example.com"]);
    assert_eq!(
        header(&text, "From"),
        Some("teamrelay <postmaster@relay.test>")
    );
    assert_eq!(header(&text, "Subject"), Some("Already answered: Re: test"));
    assert_eq!(header(&text, "Auto-Submitted"), Some("auto-generated"));
    assert_eq!(header(&text, "X-Teamrelay-Archive"), None);
    assert!(
        text.contains("bob@example.com answered this customer thread"),
        "{text}"
    );
    assert!(
        text.contains("> We can ship on Monday, with a 10% discount."),
        "{text}"
    );
    assert!(
        !text.contains("> question"),
        "the quote is bob's own text: {text}"
    );
    // Never to the customer, never archived.
    assert!(s
        .outside
        .txns()
        .iter()
        .all(|t| !t.text().contains("X-Teamrelay-Notice")));
    // A reply that names bob's answer has seen it: no second notice.
    let seen = mail(
        &format!("From: carol@example.com\nTo: {CUSTOMER}\nSubject: Re: test\nMessage-ID: <carol1@example.com>\nIn-Reply-To: <bob1@example.com>\nReferences: <ask1@shop.example> <bob1@example.com> <alice1@example.com>"),
        "Adding to both.",
    );
    send_out(&s, "carol@example.com", &[CUSTOMER], &seen);
    assert_eq!(s.outside.wait(3, T).len(), 3);
    wait_team(&s, "carol1@example.com", 1);
    assert_eq!(notice_of(&s).len(), 1);
}

#[test]
fn route_explains_owner_assignment_and_absences_from_the_running_servers_memory() {
    let s = setup();
    alice_opens(&s, "q9@example.com");
    let (code, _, err) = away(&s, &["bob@example.com", "--until", "2099-12-31"]);
    assert_eq!(code, 0, "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_teamrelay"))
        .args(["route", "--config"])
        .arg(&s.relay.config)
        .args([
            "--from",
            CUSTOMER,
            "--to",
            "sales@example.com",
            "--in-reply-to",
            "<q9@example.com>",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("thread: <q9@example.com>"), "{text}");
    assert!(text.contains("owner: alice@example.com"), "{text}");
    assert!(
        text.contains(
            "away: bob@example.com away until 2099-12-31, cover dan@example.com (manual)"
        ),
        "{text}"
    );
    assert!(
        text.contains("assigned: sales@example.com went to alice@example.com alone"),
        "{text}"
    );
    let list = text
        .split("list delivery from sales@example.com:\n")
        .nth(1)
        .unwrap_or("");
    assert!(list.starts_with("    alice@example.com\n  route"), "{text}");
    // A message file works the same; a new thread names nobody as owner.
    let file = s.relay.dir.path().join("new.eml");
    std::fs::write(&file, format!("From: {CUSTOMER}\r\nTo: sales@example.com\r\nMessage-ID: <new9@shop.example>\r\n\r\nhi\r\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_teamrelay"))
        .args(["route", "--config"])
        .arg(&s.relay.config)
        .args(["--from", CUSTOMER, "--to", "sales@example.com", "--message"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("thread: <new9@shop.example>") && text.contains("owner: none"),
        "{text}"
    );
    assert!(!text.contains("assigned:"), "{text}");
}
