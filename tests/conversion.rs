//! SPEC §6 "Conversion is never silent": an internationalised (SMTPUTF8) or 8-bit message
//! is never downgraded for a next hop that lacks the extension. It fails for good with
//! `5.6.7` (RFC 6531 §3.2) or `5.6.3` (RFC 6152), and the sender gets a DSN; a next hop
//! that offers both gets the message byte for byte.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// Sends one message over a raw session: `mail` is the whole MAIL command (with its
/// parameters), `body` the message before dot-stuffing (CRLF line ends). Returns the
/// reply to the end of DATA.
fn send_raw(port: u16, mail: &str, rcpts: &[&str], body: &[u8]) -> String {
    let mut c = Client::connect(port);
    c.read_reply();
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let r = c.cmd(mail);
    assert!(r.starts_with("250"), "{mail}: {r}");
    for rcpt in rcpts {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r.starts_with("250"), "{rcpt}: {r}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(body);
    let reply = c.cmd(".");
    c.cmd("QUIT");
    reply
}

/// The DSNs an upstream got: null sender, a delivery-status report.
fn dsns(up: &Upstream) -> Vec<Txn> {
    up.txns()
        .into_iter()
        .filter(|t| t.mail_from.is_empty() && t.text().contains("delivery-status"))
        .collect()
}

fn utf8_message() -> Vec<u8> {
    "From: alice@example.com\r\nTo: bob@shop.example\r\nSubject: Grüße aus Köln\r\n\
     Message-ID: <utf8@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\
     Content-Transfer-Encoding: 8bit\r\n\r\nDer Preis ist 10 €.\r\n"
        .as_bytes()
        .to_vec()
}

#[test]
fn rfc6531_smtputf8_message_to_a_next_hop_without_smtputf8_bounces_with_5_6_7() {
    let relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    team.script.lock().unwrap().smtputf8 = true;
    // The fake offers 8BITMIME but not SMTPUTF8 (Postfix's smtp-sink without it).
    let outside = Upstream::smtp(relay.port("upout"));

    let reply = send_raw(
        relay.port("relay"),
        "MAIL FROM:<alice@example.com> SMTPUTF8 BODY=8BITMIME",
        &["bob@shop.example"],
        &utf8_message(),
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(wait_for(T, || !dsns(&team).is_empty()), "{}", relay.log());
    let dsn = &dsns(&team)[0];
    assert_eq!(dsn.rcpts, ["alice@example.com"]);
    let text = dsn.text();
    assert!(
        text.contains("Final-Recipient: rfc822; bob@shop.example"),
        "{text}"
    );
    assert!(text.contains("Status: 5.6.7\r\n"), "{text}");
    assert!(outside.txns().is_empty(), "nothing was sent downgraded");
}

#[test]
fn rfc6152_8bit_body_to_a_next_hop_without_8bitmime_bounces_with_5_6_3() {
    let relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    outside.script.lock().unwrap().no_8bitmime = true;

    // No BODY=8BITMIME declared: the bytes decide, not the declaration.
    let reply = send_raw(
        relay.port("relay"),
        "MAIL FROM:<alice@example.com>",
        &["bob@shop.example"],
        &utf8_message(),
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(wait_for(T, || !dsns(&team).is_empty()), "{}", relay.log());
    let text = dsns(&team)[0].text();
    assert!(
        text.contains("Final-Recipient: rfc822; bob@shop.example"),
        "{text}"
    );
    assert!(text.contains("Status: 5.6.3\r\n"), "{text}");
    assert!(outside.txns().is_empty(), "nothing was sent converted");
}

#[test]
fn rfc6152_7bit_message_goes_to_a_7bit_next_hop() {
    let relay = Relay::start(&base_config(""));
    let _team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    outside.script.lock().unwrap().no_8bitmime = true;
    let msg = message(
        "alice@example.com",
        "bob@shop.example",
        "ascii@example.com",
        "",
    );
    let r = send_py(
        relay.port("relay"),
        "alice@example.com",
        &["bob@shop.example"],
        &msg,
    );
    assert!(r.success, "{}", r.output);
    let got = outside.wait(1, T);
    assert_eq!(got.len(), 1, "{}", relay.log());
    assert!(!got[0].mail_line.contains("BODY="), "{}", got[0].mail_line);
}

#[test]
fn rfc6531_next_hop_offering_smtputf8_and_8bitmime_gets_the_message_unchanged() {
    let relay = Relay::start(&base_config(""));
    let _team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    outside.script.lock().unwrap().smtputf8 = true;

    let body = utf8_message();
    let reply = send_raw(
        relay.port("relay"),
        "MAIL FROM:<alice@example.com> SMTPUTF8 BODY=8BITMIME",
        &["jürgen@shop.example"],
        &body,
    );
    assert!(reply.starts_with("250"), "{reply}");
    let got = outside.wait(1, T);
    assert_eq!(got.len(), 1, "{}", relay.log());
    assert_eq!(got[0].rcpts, ["jürgen@shop.example"]);
    let mail = &got[0].mail_line;
    assert!(
        mail.contains(" SMTPUTF8") && mail.contains("BODY=8BITMIME"),
        "{mail}"
    );
    assert!(
        got[0].data.ends_with(&body),
        "the original bytes follow the relay's header block unchanged"
    );
}

#[test]
fn rfc6152_lmtp_next_hop_without_8bitmime_bounces_with_5_6_3() {
    // Inbound: a customer writes to the team, whose provider speaks LMTP without 8BITMIME.
    let config = base_config("").replace(
        "team = \"smtp://127.0.0.1:{port:upteam}\"",
        "team = \"lmtp://127.0.0.1:{port:upteam}\"",
    );
    let relay = Relay::start(&config);
    let team = Upstream::lmtp(relay.port("upteam"));
    team.script.lock().unwrap().no_8bitmime = true;
    let outside = Upstream::smtp(relay.port("upout"));

    let body = "From: customer@shop.example\r\nTo: alice@example.com\r\nSubject: Grüße\r\n\
                Message-ID: <lmtp8@shop.example>\r\n\r\nÄrger mit der Rechnung.\r\n";
    let reply = send_raw(
        relay.port("mx"),
        "MAIL FROM:<customer@shop.example> BODY=8BITMIME",
        &["alice@example.com"],
        body.as_bytes(),
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(
        wait_for(T, || !dsns(&outside).is_empty()),
        "{}",
        relay.log()
    );
    let dsn = &dsns(&outside)[0];
    assert_eq!(dsn.rcpts, ["customer@shop.example"]);
    assert!(dsn.text().contains("Status: 5.6.3\r\n"), "{}", dsn.text());
    assert!(team.txns().is_empty(), "nothing was delivered converted");
}
