//! SPEC §5 rules for the open Internet, each named for the RFC or SPEC rule it checks:
//! relay trust, internationalised mail, ESMTP parameters, quoted local parts, the
//! `Received:` protocol words, HTTP probes and IDNA. Real binary, raw SMTP in, fake
//! upstreams (or Maildir) out.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

fn setup() -> (Relay, Upstream, Upstream) {
    let relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    (relay, team, outside)
}

fn ehlo(port: u16) -> Client {
    let mut c = Client::connect(port);
    assert!(c.read_reply().starts_with("220 "));
    assert!(c.cmd("EHLO client.example").starts_with("250"));
    c
}

/// The reply to `RCPT TO:<to>` after `MAIL FROM:<from>` in a fresh transaction.
fn rcpt_reply(c: &mut Client, from: &str, to: &str) -> String {
    let mail = c.cmd(&format!("MAIL FROM:<{from}>"));
    assert!(mail.starts_with("250"), "MAIL FROM:<{from}>: {mail}");
    let reply = c.cmd(&format!("RCPT TO:<{to}>"));
    assert!(c.cmd("RSET").starts_with("250"));
    reply
}

/// SPEC §5: a client from an `allow` network relays outward only with a null or
/// team-domain sender (the RCPT-level rules are in tests/dialogs/relay-listener-*.dialog);
/// a stranger's whole message through smtplib is refused and nothing reaches the outside
/// (the shared-ranges open relay of the Google Workspace sample).
#[test]
fn spec5_a_strangers_message_through_the_relay_listener_is_refused() {
    let (relay, _team, outside) = setup();
    let r = send_py(
        relay.port("relay"),
        "anyone@evil.example",
        &["victim@elsewhere.example"],
        &message(
            "anyone@evil.example",
            "victim@elsewhere.example",
            "or1@evil.example",
            "",
        ),
    );
    assert!(!r.success, "{r:?}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(outside.txns().is_empty());
    // One vocabulary for refusals: the log names the stage, the address and the reply.
    let log = relay.log();
    assert!(
        log.lines().any(
            |l| l.contains("rejected id=- stage=rcpt what=victim@elsewhere.example")
                && l.contains("code=554 reply=\"554 5.7.1 relay access denied\"")
        ),
        "{log}"
    );
}

/// RFC 5321 §4.1.2 / SPEC §5: a quoted local part is a customer's valid address: it is
/// accepted and passed on exactly as written; in a team domain it is still refused.
#[test]
fn rfc5321_quoted_local_part_is_passed_on_as_written() {
    let (relay, team, outside) = setup();
    let inbound = message(
        "\"john doe\"@shop.example",
        "alice@example.com",
        "q1@shop.example",
        "",
    );
    let mut c = ehlo(relay.port("mx"));
    assert!(c
        .cmd("MAIL FROM:<\"john doe\"@shop.example>")
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&inbound);
    assert!(c.cmd(".").starts_with("250"));
    let arrived = wait_for(T, || {
        team.txns()
            .iter()
            .any(|t| t.mail_from == "\"john doe\"@shop.example")
    });
    assert!(arrived, "{:?}", team.txns());
    let bad = rcpt_reply(&mut c, "customer@shop.example", "\"alice\"@example.com");
    assert!(bad.starts_with("501 5.1.3"), "{bad}");
    c.cmd("QUIT");

    let outbound = message(
        "alice@example.com",
        "\"john doe\"@shop.example",
        "q2@example.com",
        "",
    );
    let mut c = ehlo(relay.port("relay"));
    assert!(c.cmd("MAIL FROM:<alice@example.com>").starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<\"john doe\"@shop.example>")
        .starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&outbound);
    assert!(c.cmd(".").starts_with("250"));
    let out = outside.wait(1, T);
    assert_eq!(out[0].rcpts, ["\"john doe\"@shop.example"]);
}

/// A config whose team deliveries land in a Maildir, to read the `Received:` field.
fn maildir_config() -> String {
    base_config("").replace(
        "team = \"smtp://127.0.0.1:{port:upteam}\"",
        "team = \"maildir://{dir}/mail\"",
    ) + r#"
[[listen]]
address = "127.0.0.1:{port:lmtp}"
mode = "mx"
protocol = "lmtp"

[[listen]]
address = "127.0.0.1:{port:submission}"
mode = "submission"

[[user]]
name = "alice"
password_hash = "HASH"
addresses = ["alice@example.com"]
"#
}

fn received_of_delivery(relay: &Relay, addr: &str, id: &str) -> String {
    let dir = maildir(&relay.dir.path().join("mail"), addr);
    let mut found = String::new();
    wait_for(T, || {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if text.contains(id) {
                found = text;
                return true;
            }
        }
        false
    });
    assert!(!found.is_empty(), "no delivery of {id} to {addr}");
    let start = found.find("Received:").expect("a Received field");
    let end = found[start..].find(';').unwrap() + start;
    found[start..end].to_string()
}

fn send_raw(c: &mut Client, mail: &str, rcpt: &str, msg: &[u8]) {
    assert!(c.cmd(mail).starts_with("250"), "{mail}");
    assert!(c.cmd(rcpt).starts_with("250"), "{rcpt}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(msg);
    let done = c.cmd(".");
    assert!(done.starts_with("250"), "{done}");
}

/// RFC 3848 and RFC 6531 §4.3: the `with` word names ESMTP, its AUTH form, the
/// SMTPUTF8 form and LMTP.
#[test]
fn rfc3848_rfc6531_received_with_words() {
    let hash = passwd("pw");
    let relay = Relay::start(&maildir_config().replace("HASH", &hash));
    let _outside = Upstream::smtp(relay.port("upout"));

    let mut c = ehlo(relay.port("mx"));
    let m = message(
        "customer@shop.example",
        "alice@example.com",
        "w1@shop.example",
        "",
    );
    send_raw(
        &mut c,
        "MAIL FROM:<customer@shop.example>",
        "RCPT TO:<alice@example.com>",
        &m,
    );
    let m = message(
        "jürgen@shop.example",
        "alice@example.com",
        "w2@shop.example",
        "",
    );
    send_raw(
        &mut c,
        "MAIL FROM:<jürgen@shop.example> SMTPUTF8",
        "RCPT TO:<alice@example.com>",
        &m,
    );
    c.cmd("QUIT");

    let mut c = ehlo(relay.port("submission"));
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0pw");
    assert!(c.cmd(&format!("AUTH PLAIN {token}")).starts_with("235"));
    let m = message("alice@example.com", "bob@example.com", "w3@example.com", "");
    send_raw(
        &mut c,
        "MAIL FROM:<alice@example.com>",
        "RCPT TO:<bob@example.com>",
        &m,
    );
    c.cmd("QUIT");

    let mut c = Client::connect(relay.port("lmtp"));
    c.read_reply();
    assert!(c.cmd("LHLO client.example").starts_with("250"));
    let m = message(
        "customer@shop.example",
        "carol@example.com",
        "w4@shop.example",
        "",
    );
    send_raw(
        &mut c,
        "MAIL FROM:<customer@shop.example>",
        "RCPT TO:<carol@example.com>",
        &m,
    );

    let words = [
        ("alice@example.com", "w1@shop.example", "with ESMTP id"),
        ("alice@example.com", "w2@shop.example", "with UTF8SMTP id"),
        ("bob@example.com", "w3@example.com", "with ESMTPA id"),
        ("carol@example.com", "w4@shop.example", "with LMTP id"),
    ];
    for (addr, id, word) in words {
        let received = received_of_delivery(&relay, addr, id);
        assert!(received.contains(word), "{id}: {received}");
    }
}

/// UTS #46 / SPEC §2: `bücher.example` and `xn--bcher-kva.example` are one domain, in
/// the config and on the wire.
#[test]
fn uts46_both_spellings_of_a_domain_are_one_domain() {
    let config = base_config("").replace(
        "domains = [\"example.com\"]",
        "domains = [\"example.com\", \"bücher.example\"]",
    ) + r#"
[[list]]
address = "info@xn--bcher-kva.example"
members = ["alice@example.com", "bob@example.com"]
"#;
    let relay = Relay::start(&config);
    let team = Upstream::smtp(relay.port("upteam"));
    // The second message carries SMTPUTF8: only a next hop offering it may take it (SPEC §6).
    team.script.lock().unwrap().smtputf8 = true;
    let _outside = Upstream::smtp(relay.port("upout"));
    let mut c = ehlo(relay.port("mx"));
    // The A-label spelling of the configured U-label domain is internal...
    let m = message(
        "customer@shop.example",
        "info@xn--bcher-kva.example",
        "i1@shop.example",
        "",
    );
    send_raw(
        &mut c,
        "MAIL FROM:<customer@shop.example>",
        "RCPT TO:<info@xn--bcher-kva.example>",
        &m,
    );
    // ...and the U-label spelling of the A-label list address is that list.
    let m = message(
        "customer@shop.example",
        "info@bücher.example",
        "i2@shop.example",
        "",
    );
    send_raw(
        &mut c,
        "MAIL FROM:<customer@shop.example> SMTPUTF8",
        "RCPT TO:<info@Bücher.example>",
        &m,
    );
    wait_for(T, || {
        team.txns()
            .iter()
            .filter(|t| t.text().contains("List-Id: <info"))
            .count()
            >= 2
    });
    let got = team.txns();
    for id in ["i1@shop.example", "i2@shop.example"] {
        let to: Vec<String> = got
            .iter()
            .filter(|t| {
                t.text().contains(id) && t.text().contains("List-Id: <info.xn--bcher-kva.example>")
            })
            .flat_map(|t| t.rcpts.clone())
            .collect();
        assert!(
            to.contains(&"alice@example.com".to_string())
                && to.contains(&"bob@example.com".to_string()),
            "{id}: {got:?}"
        );
    }
}

/// SPEC §3: a null-sender message is never customer-facing; the log names that rule,
/// not "internal mail", even when its From is a customer.
#[test]
fn spec3_null_sender_skip_names_the_null_sender_rule() {
    let (relay, team, _outside) = setup();
    let m = message(
        "customer@shop.example",
        "alice@example.com",
        "n1@shop.example",
        "",
    );
    let mut c = ehlo(relay.port("mx"));
    send_raw(&mut c, "MAIL FROM:<>", "RCPT TO:<alice@example.com>", &m);
    let got = team.wait(1, T);
    assert_eq!(got.len(), 1, "only the original: {got:?}");
    assert!(wait_for(T, || relay
        .log()
        .contains("null sender (never customer-facing)")));
    assert!(!relay
        .log()
        .contains("internal mail (no external participant)"));
}
