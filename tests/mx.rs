//! SPEC §6 "Direct delivery": `deliver.outside = "mx"` through the real binary, with a DNS
//! server inside the test process (tests/common/dns.rs) and fake MX hosts listening on
//! port 25 of loopback addresses 127.x.y.z.

mod common;

use std::time::Duration;

use common::dns::FakeDns;
use common::*;

const T: Duration = Duration::from_secs(30);

/// A relay whose outside mail goes by MX, asking `dns`; team mail (and so every DSN to
/// a team sender) goes to the `upteam` fake.
fn start(dns: &FakeDns) -> Relay {
    let config = base_config("")
        .replace(
            "outside = \"smtp://127.0.0.1:{port:upout}\"",
            &format!("outside = \"mx\"\nresolver = \"{}\"", dns.address()),
        )
        .replace(
            "[deliver]",
            "[admin]\nlisten = \"127.0.0.1:{port:admin}\"\n\n[deliver]",
        );
    assert!(config.contains("outside = \"mx\""));
    Relay::start(&config)
}

/// alice@example.com sends one message to `to` through the relay listener.
fn send(relay: &Relay, to: &[&str], id: &str) {
    let msg = message("alice@example.com", &to.join(", "), id, "");
    let r = send_py(relay.port("relay"), "alice@example.com", to, &msg);
    assert!(r.success, "{}", r.output);
}

/// The DSNs the team upstream got: null sender, a delivery-status report.
fn dsns(team: &Upstream) -> Vec<Txn> {
    team.txns()
        .into_iter()
        .filter(|t| t.mail_from.is_empty() && t.text().contains("delivery-status"))
        .collect()
}

fn queue_list(relay: &Relay) -> String {
    let config = relay.config.to_str().unwrap();
    let (code, out, err) = teamrelay(&["queue", "--config", config, "list"]);
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn rfc5321_mx_preference_fallback_to_the_next_host() {
    let dns = FakeDns::start();
    let (down, busy, grey, good) = (loopback_ip(), loopback_ip(), loopback_ip(), loopback_ip());
    // Preference 10 refuses the connection (nothing listens), 20 greets with 421, 25
    // defers the recipient (greylisting), 30 takes the mail. Listed out of order: the
    // relay must sort them.
    dns.mx("shop.example", 30, "mx4.shop.example")
        .mx("shop.example", 10, "mx1.shop.example")
        .mx("shop.example", 25, "mx3.shop.example")
        .mx("shop.example", 20, "mx2.shop.example")
        .addr("mx1.shop.example", &down)
        .addr("mx2.shop.example", &busy)
        .addr("mx3.shop.example", &grey)
        .addr("mx4.shop.example", &good);
    let mx2 = Upstream::start_mx(&busy);
    mx2.script.lock().unwrap().greeting = Some("421 4.3.2 busy, try later".into());
    let mx3 = Upstream::start_mx(&grey);
    mx3.script.lock().unwrap().rcpt_reply.insert(
        "bob@shop.example".into(),
        "451 4.7.1 greylisted, come back later".into(),
    );
    let mx4 = Upstream::start_mx(&good);
    let relay = start(&dns);
    let _team = Upstream::smtp(relay.port("upteam"));

    send(&relay, &["bob@shop.example"], "pref@example.com");
    let got = mx4.wait(1, T);
    assert_eq!(got.len(), 1, "{}", relay.log());
    assert_eq!(got[0].rcpts, ["bob@shop.example"]);
    assert_eq!(got[0].mail_from, "alice@example.com");
    assert!(got[0].text().contains("Message-ID: <pref@example.com>"));
    assert!(mx2.txns().is_empty() && mx3.txns().is_empty());
    assert_eq!(mx3.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(wait_for(T, || relay.log().contains("delivered")));
    let log = relay.log();
    let line = log
        .lines()
        .find(|l| l.contains("delivered") && l.contains("bob@shop.example"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("mx=mx4.shop.example") && line.contains(&format!("ip={good}")),
        "the delivered line names the MX host and address: {line}"
    );
    assert!(
        log.contains("mx=mx1.shop.example") && log.contains("mx=mx2.shop.example"),
        "the skipped hosts are logged: {log}"
    );
}

#[test]
fn rfc5321_implicit_mx_delivers_to_the_domains_own_address() {
    let dns = FakeDns::start();
    let ip = loopback_ip();
    // No MX record at all: the domain's A record is the one host.
    dns.addr("plain.example", &ip);
    let host = Upstream::start_mx(&ip);
    let relay = start(&dns);
    let _team = Upstream::smtp(relay.port("upteam"));

    send(&relay, &["carol@plain.example"], "implicit@example.com");
    let got = host.wait(1, T);
    assert_eq!(got.len(), 1, "{}", relay.log());
    assert_eq!(got[0].rcpts, ["carol@plain.example"]);
    assert!(dns.asked("plain.example", "MX") >= 1);
}

#[test]
fn rfc5321_each_address_of_a_host_in_turn_ipv4_then_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    }
    let dns = FakeDns::start();
    let down = loopback_ip();
    // The host's IPv4 address refuses; its IPv6 address takes the mail.
    dns.mx("dual.example", 10, "mx.dual.example")
        .addr("mx.dual.example", &down)
        .addr("mx.dual.example", "::1");
    let host = Upstream::start_mx("::1");
    let relay = start(&dns);
    let _team = Upstream::smtp(relay.port("upteam"));

    send(&relay, &["dan@dual.example"], "v6@example.com");
    let got = host.wait(1, T);
    assert_eq!(got.len(), 1, "{}", relay.log());
    assert_eq!(got[0].rcpts, ["dan@dual.example"]);
    assert!(
        wait_for(T, || relay.log().contains("ip=::1")),
        "{}",
        relay.log()
    );
    assert!(
        relay.log().contains(&format!("ip={down}")),
        "IPv4 was tried first"
    );
}

#[test]
fn rfc7505_null_mx_bounces_with_5_1_10() {
    let dns = FakeDns::start();
    dns.mx("nomail.example", 0, ".");
    let relay = start(&dns);
    let team = Upstream::smtp(relay.port("upteam"));

    send(&relay, &["someone@nomail.example"], "null@example.com");
    assert!(wait_for(T, || !dsns(&team).is_empty()), "{}", relay.log());
    let dsn = &dsns(&team)[0];
    assert_eq!(dsn.rcpts, ["alice@example.com"]);
    let text = dsn.text();
    assert!(
        text.contains("Final-Recipient: rfc822; someone@nomail.example"),
        "{text}"
    );
    assert!(text.contains("Status: 5.1.10\r\n"), "{text}");
    assert!(text.contains("Action: failed"), "{text}");
}

#[test]
fn rfc5321_nxdomain_bounces_with_5_1_2() {
    let dns = FakeDns::start();
    // The fake answers NXDOMAIN for every name it has no entry for.
    let relay = start(&dns);
    let team = Upstream::smtp(relay.port("upteam"));

    send(&relay, &["someone@gone.example"], "nx@example.com");
    assert!(wait_for(T, || !dsns(&team).is_empty()), "{}", relay.log());
    let text = dsns(&team)[0].text();
    assert!(
        text.contains("Final-Recipient: rfc822; someone@gone.example"),
        "{text}"
    );
    assert!(text.contains("Status: 5.1.2\r\n"), "{text}");
}

#[test]
fn rfc5321_servfail_is_temporary_and_stays_queued_without_dsn() {
    let dns = FakeDns::start();
    dns.servfail("flaky.example");
    let relay = start(&dns);
    let team = Upstream::smtp(relay.port("upteam"));

    send(&relay, &["someone@flaky.example"], "servfail@example.com");
    // Two tries (retry is 1s): still deferred, never bounced.
    assert!(
        wait_for(T, || relay
            .log()
            .matches("MX lookup for flaky.example")
            .count()
            >= 2),
        "{}",
        relay.log()
    );
    let list = queue_list(&relay);
    assert!(
        list.contains("someone@flaky.example"),
        "still queued: {list}"
    );
    assert!(dsns(&team).is_empty(), "no DSN for a temporary failure");
    assert!(!relay.log().contains("bounced"), "{}", relay.log());
}

#[test]
fn rfc5321_one_transaction_per_recipient_domain() {
    let dns = FakeDns::start();
    let (ip1, ip2) = (loopback_ip(), loopback_ip());
    dns.mx("one.example", 10, "mx.one.example")
        .addr("mx.one.example", &ip1)
        .mx("two.example", 10, "mx.two.example")
        .addr("mx.two.example", &ip2);
    let one = Upstream::start_mx(&ip1);
    let two = Upstream::start_mx(&ip2);
    let relay = start(&dns);
    let _team = Upstream::smtp(relay.port("upteam"));

    send(
        &relay,
        &["a@one.example", "c@two.example", "b@one.example"],
        "two-domains@example.com",
    );
    let got_one = one.wait(1, T);
    let got_two = two.wait(1, T);
    assert_eq!(got_one.len(), 1, "{}", relay.log());
    assert_eq!(got_one[0].rcpts, ["a@one.example", "b@one.example"]);
    assert_eq!(got_two.len(), 1, "{}", relay.log());
    assert_eq!(got_two[0].rcpts, ["c@two.example"]);
    // Nothing crosses over: each host only ever sees its own domain.
    thread_sleep_ms(500);
    assert_eq!(one.txns().len(), 1);
    assert_eq!(two.txns().len(), 1);
}

#[test]
fn rfc5321_two_domains_on_one_mx_host_two_transactions_one_connection() {
    let dns = FakeDns::start();
    let ip = loopback_ip();
    // A hosted-mail provider: both customers' domains point at the same MX.
    dns.mx("a.example", 10, "mx.provider.example")
        .mx("b.example", 10, "mx.provider.example")
        .addr("mx.provider.example", &ip);
    let host = Upstream::start_mx(&ip);
    let relay = start(&dns);
    let _team = Upstream::smtp(relay.port("upteam"));

    send(
        &relay,
        &["x@a.example", "y@b.example"],
        "shared-mx@example.com",
    );
    let got = host.wait(2, T);
    assert_eq!(got.len(), 2, "{}", relay.log());
    let mut rcpts: Vec<Vec<String>> = got.iter().map(|t| t.rcpts.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, [vec!["x@a.example"], vec!["y@b.example"]]);
    assert_eq!(
        host.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the pooled connection to the host carried both transactions"
    );
}

#[test]
fn rfc3207_mx_host_offering_starttls_gets_the_mail_over_tls() {
    let dns = FakeDns::start();
    let ip = loopback_ip();
    dns.mx("tls.example", 10, "mx.tls.example")
        .addr("mx.tls.example", &ip);
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    // A certificate for "localhost", not for mx.tls.example: opportunistic TLS as on
    // smtp:// does not check it (Postfix's `may`).
    let host = Upstream::on(
        &ip,
        25,
        UpOptions::smtp().tls(UpTls::StartTls(server_tls(certs.path()))),
    );
    let relay = start(&dns);
    let _team = Upstream::smtp(relay.port("upteam"));

    send(&relay, &["z@tls.example"], "tls@example.com");
    let got = host.wait(1, T);
    assert_eq!(got.len(), 1, "{}", relay.log());
    assert!(got[0].tls, "the transaction ran after STARTTLS");
}

fn thread_sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn rfc6152_mx_host_without_8bitmime_bounces_with_5_6_3() {
    let dns = FakeDns::start();
    let ip = loopback_ip();
    dns.mx("old.example", 10, "mx.old.example")
        .addr("mx.old.example", &ip);
    let host = Upstream::start_mx(&ip);
    host.script.lock().unwrap().no_8bitmime = true;
    let relay = start(&dns);
    let team = Upstream::smtp(relay.port("upteam"));

    let msg = "From: alice@example.com\r\nTo: eve@old.example\r\nSubject: Preis\r\n\
               Message-ID: <mx8@example.com>\r\n\r\nDer Preis ist 10 \u{20ac}.\r\n";
    let r = send_py(
        relay.port("relay"),
        "alice@example.com",
        &["eve@old.example"],
        msg.as_bytes(),
    );
    assert!(r.success, "{}", r.output);
    assert!(wait_for(T, || !dsns(&team).is_empty()), "{}", relay.log());
    let text = dsns(&team)[0].text();
    assert!(
        text.contains("Final-Recipient: rfc822; eve@old.example"),
        "{text}"
    );
    assert!(text.contains("Status: 5.6.3\r\n"), "{text}");
    assert!(host.txns().is_empty(), "nothing was sent converted");
    let log = relay.log();
    let failed = log
        .lines()
        .find(|l| l.contains("failed") && l.contains("eve@old.example"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(failed.contains("mx=mx.old.example"), "{failed}");
}

#[test]
fn check_shows_outside_mx_and_the_resolver() {
    let dns = FakeDns::start();
    let relay = start(&dns);
    let (code, text, err) = teamrelay(&["check", "--config", relay.config.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("outside mail → mx"), "{text}");
    assert!(
        text.contains(&format!("MX lookups   → {}", dns.address())),
        "{text}"
    );
}
