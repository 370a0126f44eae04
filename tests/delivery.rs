//! SPEC §6: per-recipient results over LMTP and SMTP, DSN bounces, expiry.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

fn with_team_url(url: &str, max_queue_time: &str) -> String {
    base_config("")
        .replace(
            "team = \"smtp://127.0.0.1:{port:upteam}\"",
            &format!("team = \"{url}\""),
        )
        .replace(
            "max_queue_time = \"1h\"",
            &format!("max_queue_time = \"{max_queue_time}\""),
        )
}

#[test]
fn lmtp_refusing_one_recipient_of_two_bounces_only_that_one() {
    let relay = Relay::start(&with_team_url("lmtp://127.0.0.1:{port:upteam}", "1h"));
    let team = Upstream::lmtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    team.script.lock().unwrap().lmtp_reply.insert(
        "bob@example.com".into(),
        "550 5.2.1 mailbox disabled".into(),
    );
    let msg = message(
        "alice@example.com",
        "bob@example.com, carol@example.com",
        "lmtp1@example.com",
        "",
    );
    let got = send_and_wait(
        relay.port("relay"),
        "alice@example.com",
        &["bob@example.com", "carol@example.com"],
        &msg,
        &team,
        1,
    );
    assert_eq!(got[0].rcpts, ["carol@example.com"]);
    // The DSN goes back to alice (a team address, so through the team route).
    let all = team.wait(2, T);
    assert_eq!(all.len(), 2, "{}", relay.log());
    let dsn = &all[1];
    assert_eq!(dsn.mail_from, "", "a DSN has the null sender");
    assert_eq!(dsn.rcpts, ["alice@example.com"]);
    let text = dsn.text();
    assert!(
        text.contains("Final-Recipient: rfc822; bob@example.com"),
        "{text}"
    );
    assert!(
        !text.contains("Final-Recipient: rfc822; carol@example.com"),
        "{text}"
    );
    assert!(text.contains("Status: 5.2.1"), "{text}");
    let parsed = mail_parser::MessageParser::default()
        .parse(text.as_bytes())
        .expect("DSN parses");
    assert_eq!(
        parsed.subject(),
        Some("Undelivered Mail Returned to Sender")
    );
    // carol got it once; nothing was retried.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(team.txns().len(), 2);
    assert!(outside.txns().is_empty());
}

#[test]
fn smtp_550_for_one_recipient_does_not_hold_back_the_others() {
    let relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    outside
        .script
        .lock()
        .unwrap()
        .rcpt_reply
        .insert("gone@shop.example".into(), "550 5.1.1 no such user".into());
    let msg = message(
        "alice@example.com",
        "gone@shop.example, here@shop.example",
        "smtp550@example.com",
        "",
    );
    let out = send_and_wait(
        relay.port("relay"),
        "alice@example.com",
        &["gone@shop.example", "here@shop.example"],
        &msg,
        &outside,
        1,
    );
    assert_eq!(out[0].rcpts, ["here@shop.example"]);
    // Team upstream: the archive copy and the DSN to alice.
    let got = team.wait(2, T);
    let dsn = got.iter().find(|t| t.mail_from.is_empty()).expect("a DSN");
    assert_eq!(dsn.rcpts, ["alice@example.com"]);
    assert!(dsn
        .text()
        .contains("Final-Recipient: rfc822; gone@shop.example"));
    assert_eq!(dsn.text().matches("Final-Recipient:").count(), 1);
}

#[test]
fn failures_of_list_deliveries_are_not_bounced_to_the_customer() {
    let relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    team.script
        .lock()
        .unwrap()
        .rcpt_reply
        .insert("bob@example.com".into(), "552 5.2.2 mailbox full".into());
    let msg = message(
        "customer@shop.example",
        "sales@example.com",
        "full1@shop.example",
        "",
    );
    send_and_wait(
        relay.port("mx"),
        "customer@shop.example",
        &["sales@example.com"],
        &msg,
        &team,
        2,
    );
    assert!(
        wait_for(T, || relay.log().contains("failure not bounced")),
        "{}",
        relay.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        outside.txns().is_empty(),
        "nothing goes back to the customer: {:?}",
        outside.txns()
    );
    assert!(team.txns().iter().all(|t| !t.mail_from.is_empty()));
}

#[test]
fn a_message_past_max_queue_time_bounces_once() {
    // The team upstream never answers (nothing listens), so delivery keeps failing.
    let relay = Relay::start(&with_team_url("smtp://127.0.0.1:{port:updown}", "2s"));
    let outside = Upstream::smtp(relay.port("upout"));
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "exp1@shop.example",
        "",
    );
    send_ok(
        relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &msg,
    );
    let dsn = outside.wait(1, Duration::from_secs(30));
    assert_eq!(dsn.len(), 1, "{}", relay.log());
    assert_eq!(dsn[0].mail_from, "");
    assert_eq!(dsn[0].rcpts, ["customer@shop.example"]);
    let text = dsn[0].text();
    assert!(
        text.contains("Final-Recipient: rfc822; alice@example.com"),
        "{text}"
    );
    assert!(text.contains("Status: 5.4.7"), "{text}");
    // Copies to bob/carol/dan came from customers-archive-bounces@: not bounced.
    assert!(!text.contains("bob@example.com"), "{text}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(outside.txns().len(), 1, "exactly one DSN");
}

/// A relay whose team route is `url` with `auth` (a TOML inline table) and certificates
/// in a temp dir that also holds `team.pass`.
fn tls_route(url: &str, auth: &str) -> (Relay, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    std::fs::write(certs.path().join("team.pass"), "hunter2\n").unwrap();
    let auth = auth.replace("{certs}", certs.path().to_str().unwrap());
    let config = with_team_url(url, "1h").replace(
        "retry = [\"1s\"]",
        &format!("retry = [\"1s\"]\nteam_auth = {auth}"),
    );
    (Relay::start(&config), certs)
}

#[test]
fn smtp_starttls_route_verifies_the_certificate_and_authenticates() {
    let (relay, certs) = tls_route(
        "smtp+starttls://localhost:{port:upteam}",
        r#"{ username = "relay@example.com", password_file = "{certs}/team.pass", ca_file = "{certs}/ca.pem" }"#,
    );
    let team = Upstream::with(
        relay.port("upteam"),
        UpOptions::smtp()
            .tls(UpTls::StartTls(server_tls(certs.path())))
            .offering_auth(),
    );
    let msg = message(
        "alice@example.com",
        "bob@example.com",
        "tls1@example.com",
        "",
    );
    let txns = send_and_wait(
        relay.port("mx"),
        "alice@example.com",
        &["bob@example.com"],
        &msg,
        &team,
        1,
    );
    assert_eq!(txns.len(), 1, "{}", relay.log());
    assert!(txns[0].tls, "delivered over TLS");
    assert_eq!(txns[0].auth.as_deref(), Some("relay@example.com:hunter2"));
    assert!(
        !relay.log().contains("hunter2"),
        "the secret never reaches the log"
    );
}

#[test]
fn smtps_route_delivers_over_implicit_tls() {
    let (relay, certs) = tls_route(
        "smtps://localhost:{port:upteam}",
        r#"{ ca_file = "{certs}/ca.pem" }"#,
    );
    let team = Upstream::with(
        relay.port("upteam"),
        UpOptions::smtp().tls(UpTls::Implicit(server_tls(certs.path()))),
    );
    let msg = message(
        "alice@example.com",
        "bob@example.com",
        "tls2@example.com",
        "",
    );
    let txns = send_and_wait(
        relay.port("mx"),
        "alice@example.com",
        &["bob@example.com"],
        &msg,
        &team,
        1,
    );
    assert_eq!(txns.len(), 1, "{}", relay.log());
    assert!(txns[0].tls);
}

#[test]
fn required_tls_is_never_skipped() {
    // smtp+starttls:// to a server that does not offer STARTTLS: deferred, not sent in clear.
    let (relay, _certs) = tls_route("smtp+starttls://localhost:{port:upteam}", "{}");
    let team = Upstream::smtp(relay.port("upteam"));
    let msg = message(
        "alice@example.com",
        "bob@example.com",
        "tls3@example.com",
        "",
    );
    send_ok(
        relay.port("mx"),
        "alice@example.com",
        &["bob@example.com"],
        &msg,
    );
    assert!(
        wait_for(T, || relay
            .log()
            .contains("STARTTLS required but not offered")),
        "{}",
        relay.log()
    );
    assert!(team.txns().is_empty());
}

#[test]
fn untrusted_certificate_on_a_verified_route_is_a_temporary_failure() {
    // smtps:// verified against the system roots, which do not know the test CA.
    let (relay, certs) = tls_route("smtps://localhost:{port:upteam}", "{}");
    let team = Upstream::with(
        relay.port("upteam"),
        UpOptions::smtp().tls(UpTls::Implicit(server_tls(certs.path()))),
    );
    let msg = message(
        "alice@example.com",
        "bob@example.com",
        "tls4@example.com",
        "",
    );
    send_ok(
        relay.port("mx"),
        "alice@example.com",
        &["bob@example.com"],
        &msg,
    );
    assert!(
        wait_for(T, || relay.log().contains("deferred")),
        "{}",
        relay.log()
    );
    assert!(team.txns().is_empty());
    assert!(!relay.log().contains("bounced"));
}

#[test]
fn plain_smtp_route_uses_starttls_when_offered_without_checking_the_certificate() {
    let (relay, certs) = tls_route("smtp://localhost:{port:upteam}", "{}");
    let team = Upstream::with(
        relay.port("upteam"),
        UpOptions::smtp().tls(UpTls::StartTls(server_tls(certs.path()))),
    );
    let msg = message(
        "alice@example.com",
        "bob@example.com",
        "tls5@example.com",
        "",
    );
    let txns = send_and_wait(
        relay.port("mx"),
        "alice@example.com",
        &["bob@example.com"],
        &msg,
        &team,
        1,
    );
    assert_eq!(txns.len(), 1, "{}", relay.log());
    assert!(txns[0].tls, "opportunistic STARTTLS was used");
}
