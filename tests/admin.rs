//! SPEC §7: `teamrelay queue` against a running server and without one, and the
//! Prometheus `/metrics` endpoint.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

fn queue(relay: &Relay, args: &[&str]) -> (i32, String, String) {
    let config = relay.config.to_str().unwrap();
    teamrelay(&[&["queue", "--config", config], args].concat())
}

fn config_with_admin() -> String {
    base_config("").replace(
        "[deliver]",
        "[admin]\nlisten = \"127.0.0.1:{port:admin}\"\n\n[deliver]",
    )
}

#[test]
fn queue_commands_work_against_a_running_server() {
    // Upstreams are down: messages stay queued.
    let relay = Relay::start(&config_with_admin());
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "q1@shop.example",
        "",
    );
    send_ok(
        relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &msg,
    );
    assert!(
        wait_for(T, || relay.log().contains("deferred")),
        "{}",
        relay.log()
    );

    let (code, out, err) = queue(&relay, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("from customer@shop.example"), "{out}");
    assert!(
        out.contains("alice@example.com") && out.contains("bob@example.com"),
        "{out}"
    );
    assert!(out.contains("connect 127.0.0.1"), "last error shown: {out}");
    let id = out.split_whitespace().next().unwrap().to_string();

    let (code, json, _) = queue(&relay, &["list", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["id"], id);

    let (code, show, _) = queue(&relay, &["show", &id]);
    assert_eq!(code, 0);
    assert!(
        show.contains("customers-archive-bounces@example.com"),
        "{show}"
    );

    // Bring the team upstream up and retry now instead of waiting.
    let team = Upstream::smtp(relay.port("upteam"));
    let (code, out, _) = queue(&relay, &["retry", &id]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(team.wait(2, T).len(), 2, "{}", relay.log());
    assert!(wait_for(T, || queue(&relay, &["list"])
        .1
        .contains("queue is empty")));

    let (code, _, err) = queue(&relay, &["show", "NOSUCHID"]);
    assert_eq!(code, 1);
    assert!(err.contains("no queued message"), "{err}");
}

#[test]
fn queue_delete_works_without_a_server() {
    let mut relay = Relay::start(&base_config(""));
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "q2@shop.example",
        "",
    );
    send_ok(
        relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &msg,
    );
    assert_eq!(relay.terminate(), Some(0));
    let (code, out, err) = queue(&relay, &["list"]);
    assert_eq!(code, 0, "{err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    let (code, out, _) = queue(&relay, &["delete", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("deleted"));
    assert!(queue(&relay, &["list"]).1.contains("queue is empty"));
}

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_what_was_sent() {
    let relay = Relay::start(&config_with_admin());
    let team = Upstream::smtp(relay.port("upteam"));
    let _outside = Upstream::smtp(relay.port("upout"));
    for i in 0..3 {
        let msg = message(
            "customer@shop.example",
            "alice@example.com",
            &format!("m{i}@shop.example"),
            "",
        );
        send_ok(
            relay.port("mx"),
            "customer@shop.example",
            &["alice@example.com"],
            &msg,
        );
    }
    let refused = send_py(
        relay.port("mx"),
        "spam@evil.example",
        &["victim@elsewhere.example"],
        b"Subject: x\r\n\r\nx\r\n",
    );
    assert!(!refused.success);
    team.wait(6, T);
    let ok = wait_for(T, || {
        metric(
            &scrape(relay.port("admin")),
            "teamrelay_deliveries_total{route=\"team\",result=\"delivered\"}",
        ) >= 12.0
    });
    let text = scrape(relay.port("admin"));
    assert!(ok, "{text}");
    assert_eq!(
        metric(&text, "teamrelay_messages_accepted_total"),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "teamrelay_archive_copies_total"),
        9.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "teamrelay_recipients_rejected_total{reason=\"relay_denied\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "teamrelay_deliveries_total{route=\"team\",result=\"delivered\"}"
        ),
        12.0,
        "{text}"
    );
    assert!(text.contains("teamrelay_queue_depth"), "{text}");
    assert!(text.contains("teamrelay_connections_open"), "{text}");
    assert_eq!(
        metric(&text, "teamrelay_message_size_bytes_count"),
        3.0,
        "{text}"
    );
    assert!(
        text.contains("# HELP teamrelay_delivery_duration_seconds"),
        "{text}"
    );
    assert!(
        metric(
            &text,
            "teamrelay_delivery_duration_seconds_count{route=\"team\"}"
        ) >= 1.0,
        "{text}"
    );
}

/// Before any mail: every series is there at zero with its `# HELP`, and the build is
/// named, so dashboards and `rate()` alerts work from the first scrape.
#[test]
fn metrics_are_described_and_present_from_the_start() {
    let relay = Relay::start(&config_with_admin());
    let mut text = String::new();
    wait_for(T, || {
        text = scrape(relay.port("admin"));
        text.contains("teamrelay_build_info")
    });
    for series in [
        "teamrelay_messages_accepted_total 0",
        "teamrelay_messages_rejected_total{reason=\"too_big\"} 0",
        "teamrelay_recipients_rejected_total{reason=\"relay_denied\"} 0",
        "teamrelay_connections_rejected_total{reason=\"too_many_connections\"} 0",
        "teamrelay_auth_failures_total 0",
        "teamrelay_deliveries_total{route=\"outside\",result=\"failed\"} 0",
    ] {
        assert!(text.contains(series), "{series} missing:\n{text}");
    }
    for help in [
        "# HELP teamrelay_messages_accepted_total",
        "# HELP teamrelay_recipients_rejected_total",
        "# HELP teamrelay_queue_depth",
    ] {
        assert!(text.contains(help), "{help} missing:\n{text}");
    }
    let version = format!(
        "teamrelay_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&version), "{text}");
}
