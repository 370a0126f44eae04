//! SPEC §4–§6 end to end: the real binary, a real SMTP client (python3 smtplib or a raw
//! socket), and fake upstreams that record what they receive.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

struct Setup {
    relay: Relay,
    team: Upstream,
    outside: Upstream,
}

fn setup(extra_team: &str) -> Setup {
    let relay = Relay::start(&base_config(extra_team));
    let team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    Setup {
        relay,
        team,
        outside,
    }
}

/// The message as delivered, after teamrelay's Received field and any header block.
fn after_received(data: &str) -> &str {
    assert!(
        data.starts_with("Received: from "),
        "no Received first: {data}"
    );
    // The Received field is folded over several lines; it ends at the first line that
    // does not start with a tab.
    let mut offset = 0;
    for (i, line) in data.split_inclusive("\r\n").enumerate() {
        if i > 0 && !line.starts_with('\t') {
            return &data[offset..];
        }
        offset += line.len();
    }
    ""
}

#[test]
fn inbound_customer_mail_reaches_the_recipient_and_the_archive() {
    let s = setup("");
    let msg = message(
        "Customer <customer@shop.example>",
        "alice@example.com",
        "in1@shop.example",
        "",
    );
    let r = send_py(
        s.relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &msg,
    );
    assert!(r.success, "{r:?}");
    let txns = s.team.wait(2, T);
    assert_eq!(txns.len(), 2, "{txns:?}\n{}", s.relay.log());
    let original = txns
        .iter()
        .find(|t| t.rcpts == ["alice@example.com"])
        .expect("original");
    assert_eq!(original.mail_from, "customer@shop.example");
    // The original is untouched below teamrelay's Received field.
    assert_eq!(after_received(&original.text()).as_bytes(), &msg[..]);
    let copy = txns
        .iter()
        .find(|t| t.rcpts != ["alice@example.com"])
        .expect("archive copy");
    let mut rcpts = copy.rcpts.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        ["bob@example.com", "carol@example.com", "dan@example.com"]
    );
    assert_eq!(copy.mail_from, "customers-archive-bounces@example.com");
    let block = "X-Teamrelay-Archive: customers-archive@example.com\r\n\
X-Teamrelay-For: alice@example.com\r\n\
X-Teamrelay-Direction: inbound\r\n\
List-Id: <customers-archive.example.com>\r\n\
Precedence: list\r\n\
X-Auto-Response-Suppress: All\r\n";
    let mut want = block.as_bytes().to_vec();
    want.extend_from_slice(&msg);
    assert_eq!(after_received(&copy.text()).as_bytes(), &want[..]);
    assert!(s.outside.txns().is_empty());
    // The delivered lines are logfmt: the next hop's reply is one quoted value, and the
    // accepted line names the Message-ID, so a message can be followed across hosts.
    assert!(
        wait_for(T, || s
            .relay
            .log()
            .contains("reply=\"end of DATA: 250 2.0.0 queued\"")),
        "{}",
        s.relay.log()
    );
    assert!(
        s.relay.log().contains("message_id=in1@shop.example"),
        "{}",
        s.relay.log()
    );
    // SPEC §4: the archive step is logged, one `archived` line per archive list.
    let log = s.relay.log();
    let archived = log
        .lines()
        .find(|l| l.contains("archived id="))
        .unwrap_or_else(|| panic!("no archived line:\n{log}"));
    assert!(
        archived.contains(
            "list=customers-archive@example.com to=bob@example.com,carol@example.com,dan@example.com"
        ),
        "{archived}"
    );
}

#[test]
fn list_mail_is_expanded_with_list_headers_and_bounce_sender() {
    let s = setup("");
    let msg = message(
        "carol@example.com",
        "sales@example.com",
        "l1@example.com",
        "",
    );
    let txns = send_and_wait(
        s.relay.port("mx"),
        "carol@example.com",
        &["sales@example.com"],
        &msg,
        &s.team,
        1,
    );
    assert_eq!(txns.len(), 1);
    let mut rcpts = txns[0].rcpts.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["alice@example.com", "bob@example.com"]);
    assert_eq!(txns[0].mail_from, "sales-bounces@example.com");
    let body = after_received(&txns[0].text()).to_string();
    assert!(
        body.starts_with("List-Id: <sales.example.com>\r\nPrecedence: list\r\nFrom: carol"),
        "{body}"
    );
    // Internal: no archive copies.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.team.txns().len(), 1);
}

#[test]
fn internal_mail_is_left_alone() {
    let s = setup("");
    let msg = message(
        "alice@example.com",
        "bob@example.com",
        "int1@example.com",
        "",
    );
    let txns = send_and_wait(
        s.relay.port("mx"),
        "alice@example.com",
        &["bob@example.com"],
        &msg,
        &s.team,
        1,
    );
    std::thread::sleep(Duration::from_millis(300));
    let txns = if txns.len() == 1 { s.team.txns() } else { txns };
    assert_eq!(txns.len(), 1, "{txns:?}");
    assert_eq!(txns[0].rcpts, ["bob@example.com"]);
    assert_eq!(txns[0].mail_from, "alice@example.com");
    assert_eq!(after_received(&txns[0].text()).as_bytes(), &msg[..]);
    assert!(s.relay.log().contains("internal mail"), "{}", s.relay.log());
}

#[test]
fn outbound_mail_through_the_relay_listener_is_archived_as_outbound() {
    let s = setup("");
    let msg = message(
        "alice@example.com",
        "customer@shop.example",
        "out1@example.com",
        "",
    );
    let r = send_py(
        s.relay.port("relay"),
        "alice@example.com",
        &["customer@shop.example"],
        &msg,
    );
    assert!(r.success, "{r:?}");
    let out = s.outside.wait(1, T);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rcpts, ["customer@shop.example"]);
    assert_eq!(out[0].mail_from, "alice@example.com");
    assert_eq!(after_received(&out[0].text()).as_bytes(), &msg[..]);
    let copies = s.team.wait(1, T);
    assert_eq!(copies.len(), 1);
    let mut rcpts = copies[0].rcpts.clone();
    rcpts.sort();
    // alice sent it: she is excluded.
    assert_eq!(
        rcpts,
        ["bob@example.com", "carol@example.com", "dan@example.com"]
    );
    assert!(copies[0]
        .text()
        .contains("X-Teamrelay-Direction: outbound\r\n"));
}

#[test]
fn private_mail_and_its_thread_stay_off_the_archive() {
    let s = setup("");
    // alice writes to a customer and Bccs the private address.
    let msg = message(
        "alice@example.com",
        "customer@shop.example",
        "p1@example.com",
        "",
    );
    let r = send_py(
        s.relay.port("relay"),
        "alice@example.com",
        &["customer@shop.example", "private@example.com"],
        &msg,
    );
    assert!(r.success, "{r:?}");
    let out = s.outside.wait(1, T);
    assert_eq!(out[0].rcpts, ["customer@shop.example"]);
    // The customer answers; the reply names the private message.
    let reply = message(
        "customer@shop.example",
        "alice@example.com",
        "r1@shop.example",
        "In-Reply-To: <p1@example.com>\r\n",
    );
    let team = send_and_wait(
        s.relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &reply,
        &s.team,
        1,
    );
    std::thread::sleep(Duration::from_millis(500));
    let team = if team.len() == 1 { s.team.txns() } else { team };
    assert_eq!(team.len(), 1, "only the original: {team:?}");
    assert_eq!(team[0].rcpts, ["alice@example.com"]);
    // The private address was never delivered anywhere.
    let all: Vec<String> = s
        .team
        .by_rcpt()
        .into_iter()
        .chain(s.outside.by_rcpt())
        .map(|(r, _)| r)
        .collect();
    assert!(!all.iter().any(|r| r == "private@example.com"));
    assert!(
        s.relay.log().contains("thread marked private"),
        "{}",
        s.relay.log()
    );
}

#[test]
fn never_archive_correspondents_are_not_copied() {
    let s = setup("");
    let msg = message(
        "lawyer@lawfirm.example",
        "alice@example.com",
        "law1@lawfirm.example",
        "",
    );
    send_and_wait(
        s.relay.port("mx"),
        "lawyer@lawfirm.example",
        &["alice@example.com"],
        &msg,
        &s.team,
        1,
    );
    std::thread::sleep(Duration::from_millis(300));
    let txns = s.team.txns();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].rcpts, ["alice@example.com"]);
}

#[test]
fn one_message_in_two_transactions_gives_no_duplicate_copies() {
    let s = setup("");
    let msg = message(
        "customer@shop.example",
        "alice@example.com, bob@example.com",
        "split1@shop.example",
        "",
    );
    send_and_wait(
        s.relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &msg,
        &s.team,
        2,
    );
    send_and_wait(
        s.relay.port("mx"),
        "customer@shop.example",
        &["bob@example.com"],
        &msg,
        &s.team,
        3,
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut counts = std::collections::HashMap::new();
    for (r, _) in s.team.by_rcpt() {
        *counts.entry(r).or_insert(0) += 1;
    }
    for who in [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dan@example.com",
    ] {
        assert_eq!(counts.get(who), Some(&1), "{who}: {counts:?}");
    }
}

#[test]
fn smuggled_end_of_data_is_rejected_and_nothing_is_delivered() {
    let s = setup("");
    for fake in ["\n.\n", "\n.\r\n", "\r.\r", "\r\n.\n"] {
        let mut c = Client::connect(s.relay.port("mx"));
        c.read_reply();
        c.cmd("EHLO client.test");
        assert!(c
            .cmd("MAIL FROM:<customer@shop.example>")
            .starts_with("250"));
        assert!(c.cmd("RCPT TO:<alice@example.com>").starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        let body = format!(
            "Subject: a\r\n\r\nx{fake}MAIL FROM:<customer@shop.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n"
        );
        c.send(body.as_bytes());
        assert_eq!(
            c.read_reply(),
            "550 5.5.2 bare CR or LF in message: only CRLF line endings are accepted\r\n",
            "{fake:?}"
        );
        assert!(
            c.cmd("NOOP").starts_with("250"),
            "session continues after {fake:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(s.team.txns().is_empty(), "{:?}", s.team.txns());
}

/// SPEC §5: a message over max_message_size is refused at the end of DATA with
/// `552 5.3.4` and nothing of it is delivered. (SIZE=, the recipient limit, long lines,
/// unknown commands and bad addresses are in tests/dialogs/.)
#[test]
fn a_message_over_the_size_limit_is_552_5_3_4_and_not_delivered() {
    let s = setup("");
    let mut c = Client::connect(s.relay.port("mx"));
    c.read_reply();
    assert!(c.cmd("EHLO client.test").contains("SIZE 100000"));
    assert!(c
        .cmd("MAIL FROM:<customer@shop.example>")
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<user0@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let big = "x".repeat(1000);
    for _ in 0..120 {
        c.send(format!("{big}\r\n").as_bytes());
    }
    c.send(b".\r\n");
    assert!(c.read_reply().starts_with("552 5.3.4"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.team.txns().is_empty());
}

#[test]
fn pipelined_commands_get_replies_in_order() {
    let s = setup("");
    let mut c = Client::connect(s.relay.port("mx"));
    c.read_reply();
    c.cmd("EHLO client.test");
    let msg = String::from_utf8(message(
        "customer@shop.example",
        "alice@example.com",
        "pipe1@shop.example",
        "",
    ))
    .unwrap();
    c.send(
        b"MAIL FROM:<customer@shop.example>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<nobody@elsewhere.example>\r\nDATA\r\n",
    );
    assert!(c.read_reply().starts_with("250 2.1.0"));
    assert!(c.read_reply().starts_with("250 2.1.5"));
    assert!(c.read_reply().starts_with("554 5.7.1"));
    assert!(c.read_reply().starts_with("354"));
    c.send(format!("{}.\r\nQUIT\r\n", msg.replace("\r\n.", "\r\n..")).as_bytes());
    assert!(c.read_reply().starts_with("250 2.0.0 OK queued as "));
    assert!(c.read_reply().starts_with("221"));
    let txns = s.team.wait(2, T);
    let original = txns
        .iter()
        .find(|t| t.rcpts == ["alice@example.com"])
        .unwrap();
    assert_eq!(after_received(&original.text()), msg);
}

#[test]
fn junk_input_then_a_good_session() {
    let s = setup("");
    let mut c = Client::connect(s.relay.port("mx"));
    c.read_reply();
    c.send(b"\x00\xff\xfe garbage\r\n\x16\x03\x01 tls hello?\r\nMAIL FROM:<x@y.z>\r\n");
    let mut errors = 0;
    for _ in 0..3 {
        let r = c.read_reply();
        assert!(r.starts_with('5'), "{r}");
        errors += 1;
    }
    // Ten errors end the session with 421.
    for _ in errors..10 {
        assert!(c.cmd("BOGUS").starts_with("502"));
    }
    let last = c.read_reply();
    assert!(last.starts_with("421 4.7.0"), "{last}");
    assert!(c.closed());
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "junk1@shop.example",
        "",
    );
    assert_eq!(
        send_and_wait(
            s.relay.port("mx"),
            "customer@shop.example",
            &["alice@example.com"],
            &msg,
            &s.team,
            2
        )
        .len(),
        2
    );
}

#[test]
fn a_451_is_retried_until_delivered() {
    let s = setup("");
    s.team.script.lock().unwrap().data_reply = Some(("451 4.3.0 try later".into(), 1));
    let msg = message(
        "alice@example.com",
        "bob@example.com",
        "retry1@example.com",
        "",
    );
    send_ok(
        s.relay.port("mx"),
        "alice@example.com",
        &["bob@example.com"],
        &msg,
    );
    let txns = s.team.wait(1, Duration::from_secs(30));
    assert_eq!(txns.len(), 1, "{}", s.relay.log());
    assert_eq!(txns[0].rcpts, ["bob@example.com"]);
    let log = s.relay.log();
    assert!(
        log.contains("deferred") && log.contains("451 try later") || log.contains("451"),
        "{log}"
    );
}

#[test]
fn a_message_acknowledged_before_kill_9_is_delivered_after_restart() {
    // The upstream is down, so the message stays queued.
    let mut relay = Relay::start(&base_config(""));
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "crash1@shop.example",
        "",
    );
    send_ok(
        relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &msg,
    );
    relay.kill9();
    let team = Upstream::smtp(relay.port("upteam"));
    relay.spawn();
    let txns = team.wait(2, Duration::from_secs(30));
    assert_eq!(txns.len(), 2, "{}", relay.log());
    let original = txns
        .iter()
        .find(|t| t.rcpts == ["alice@example.com"])
        .unwrap();
    assert_eq!(after_received(&original.text()).as_bytes(), &msg[..]);
}

#[test]
fn sigterm_exits_cleanly() {
    let s = setup("");
    let mut relay = s.relay;
    assert_eq!(relay.terminate(), Some(0), "{}", relay.log());
}

#[test]
fn maildir_delivery_lands_in_each_mailbox() {
    let config = base_config("")
        .replace(
            "team = \"smtp://127.0.0.1:{port:upteam}\"",
            "team = \"maildir://./mail\"",
        )
        .replace(
            "outside = \"smtp://127.0.0.1:{port:upout}\"",
            "outside = \"maildir://./mail\"",
        );
    let relay = Relay::start(&config);
    let msg = message(
        "Customer <customer@shop.example>",
        "alice@example.com",
        "md1@shop.example",
        "",
    );
    send_ok(
        relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &msg,
    );
    // Relative to the config file's folder.
    let root = relay.dir.path().join("mail");
    let read_one = |who: &str| -> Option<String> {
        let dir = maildir(&root, who);
        let file = std::fs::read_dir(&dir).ok()?.flatten().next()?;
        std::fs::read_to_string(file.path()).ok()
    };
    assert!(
        wait_for(T, || ["alice", "bob", "carol", "dan"]
            .iter()
            .all(|w| read_one(&format!("{w}@example.com")).is_some())),
        "{}",
        relay.log()
    );
    // SPEC §6: Maildir files use LF line endings; otherwise the bytes received.
    let lf = |s: &str| s.replace("\r\n", "\n");
    let msg_lf = lf(std::str::from_utf8(&msg).unwrap());
    let alice = lf(&read_one("alice@example.com").unwrap()).replace('\n', "\r\n");
    assert_eq!(lf(after_received(&alice)), msg_lf);
    let bob = read_one("bob@example.com").unwrap();
    assert!(!bob.contains('\r'), "{bob:?}");
    let bob = bob.replace('\n', "\r\n");
    assert!(
        after_received(&bob).starts_with("X-Teamrelay-Archive: customers-archive@example.com\r\n")
    );
    assert!(lf(&bob).ends_with(&msg_lf));
    // Nothing half-written is left in tmp/.
    let tmp = maildir(&root, "alice@example.com")
        .parent()
        .unwrap()
        .join("tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
}

#[test]
fn mail_send_as_the_client_works_too() {
    let s = setup("");
    let port = s.relay.port("mx");
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "ms1@shop.example",
        "",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = rt.block_on(async {
        let mut client = mail_send::SmtpClientBuilder::new("127.0.0.1", port)
            .unwrap()
            .implicit_tls(false)
            .timeout(Duration::from_secs(20))
            .connect_plain()
            .await
            .unwrap();
        let message = mail_send::smtp::message::Message::new(
            "customer@shop.example",
            ["alice@example.com"],
            msg.clone(),
        );
        client.send(message).await
    });
    let reply = reply.expect("accepted");
    assert!(reply.message.starts_with("OK queued as "), "{reply:?}");
    let txns = s.team.wait(2, T);
    let original = txns
        .iter()
        .find(|t| t.rcpts == ["alice@example.com"])
        .unwrap();
    // mail-send always writes CRLF before the final dot, so what it sent is the message
    // plus one empty line; teamrelay passes on exactly what it received.
    let mut sent = msg.clone();
    sent.extend_from_slice(b"\r\n");
    assert_eq!(after_received(&original.text()).as_bytes(), &sent[..]);
}
