//! Relay tricks, smuggling, abuse limits and upstream faults (issue "reliability and
//! security"): each case states what a hostile or broken peer does and what must happen.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

fn setup() -> (Relay, Upstream, Upstream) {
    let relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    (relay, team, outside)
}

/// Classic open-relay tricks on an `mx` listener: none may reach the outside.
#[test]
fn open_relay_table() {
    let (relay, team, outside) = setup();
    let tricks = [
        "victim@elsewhere.example",
        "user%elsewhere.example@example.com",
        "elsewhere.example!user@example.com",
        "\"user@elsewhere.example\"@example.com",
        "@example.com:user@elsewhere.example",
        "@example.com,@other.example:user@elsewhere.example",
        "user@elsewhere.example@example.com",
        "user@example.com.",
        "user@example.com.elsewhere.example",
        "user@[127.0.0.1]",
        "user@[IPv6:::1]",
        "USER@ELSEWHERE.EXAMPLE",
        "user@EXAMPLE.COM.evil.example",
        "user@exаmple.com",
        "user@example.com\u{ff0e}evil.example",
        "user@sub.example.com",
        "user@example.co",
        "user@xexample.com",
        "\"user%elsewhere.example\"@example.com",
        "user@elsewhere.example%example.com",
        "user\\@elsewhere.example@example.com",
        "user@localhost",
        "postmaster@elsewhere.example",
        "user@example.com@",
    ];
    let mut c = Client::connect(relay.port("mx"));
    c.read_reply();
    c.cmd("EHLO attacker.example");
    let mut accepted = Vec::new();
    for (i, trick) in tricks.iter().enumerate() {
        if i % 8 == 0 {
            // Stay under the ten-error limit.
            c.cmd("QUIT");
            c = Client::connect(relay.port("mx"));
            c.read_reply();
            c.cmd("EHLO attacker.example");
        }
        c.cmd("RSET");
        assert!(c
            .cmd("MAIL FROM:<attacker@evil.example>")
            .starts_with("250"));
        let reply = c.cmd(&format!("RCPT TO:<{trick}>"));
        assert!(reply.starts_with('5'), "{trick:?} got {reply:?}");
        if reply.starts_with("250") {
            accepted.push(trick);
        }
    }
    assert!(accepted.is_empty(), "{accepted:?}");
    // And the one trick that is a valid team address goes only to the team route.
    let msg = b"Subject: x\r\n\r\nx\r\n";
    send_and_wait(
        relay.port("mx"),
        "attacker@evil.example",
        &["postmaster"],
        msg,
        &team,
        1,
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(outside.txns().is_empty(), "{:?}", outside.txns());
}

/// Every end-of-data look-alike with bare CR or LF, in DATA and in BDAT: never a second
/// message, and the message is refused.
#[test]
fn smuggling_vectors_in_data_and_bdat() {
    let (relay, team, _outside) = setup();
    let fakes = [
        "\n.\n",
        "\n.\r\n",
        "\r.\r",
        "\r\n.\n",
        "\r.\r\n",
        "\n.\r",
        "\r\n.\r",
        ".\n",
        "\r\r\n.\r\r\n",
    ];
    for fake in fakes {
        for bdat in [false, true] {
            let mut c = Client::connect(relay.port("mx"));
            c.read_reply();
            c.cmd("EHLO client.test");
            assert!(c
                .cmd("MAIL FROM:<customer@shop.example>")
                .starts_with("250"));
            assert!(c.cmd("RCPT TO:<alice@example.com>").starts_with("250"));
            let body = format!(
                "Subject: a\r\n\r\nx{fake}MAIL FROM:<customer@shop.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nz\r\n"
            );
            let reply = if bdat {
                c.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
                c.send(body.as_bytes());
                c.read_reply()
            } else {
                assert!(c.cmd("DATA").starts_with("354"));
                c.send(format!("{body}.\r\n").as_bytes());
                c.read_reply()
            };
            assert!(
                reply.starts_with("550 5.5.2"),
                "{fake:?} bdat={bdat}: {reply}"
            );
            assert!(
                c.cmd("NOOP").starts_with("250"),
                "{fake:?}: one reply only, session in sync"
            );
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(team.txns().is_empty(), "{:?}", team.txns());
}

/// Commands sent before the greeting or pipelined behind EHLO are discarded.
#[test]
fn commands_pipelined_before_the_greeting_are_discarded() {
    let (relay, team, _outside) = setup();
    let mut c = Client::connect(relay.port("mx"));
    c.send(b"EHLO early.example\r\nMAIL FROM:<customer@shop.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n");
    assert!(c.read_reply().starts_with("220"));
    assert!(c.read_reply().starts_with("250-relay.test"));
    // Nothing else was answered: the rest was dropped.
    assert!(c
        .cmd("RCPT TO:<alice@example.com>")
        .starts_with("503 5.5.1"));
    assert!(relay
        .log()
        .contains("discarding commands pipelined behind HELO/EHLO"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(team.txns().is_empty());
}

#[test]
fn slowloris_is_timed_out_and_others_are_served() {
    let config = base_config("").replace("idle_timeout = \"5s\"", "idle_timeout = \"2s\"");
    let relay = Relay::start(&config);
    let team = Upstream::smtp(relay.port("upteam"));
    let mut slow = Client::connect(relay.port("mx"));
    slow.read_reply();
    // One byte a second: each read is quick, but the line takes 11 s in all. Only a
    // deadline on the whole line stops it (a per-read timeout would answer 250).
    let mut w = slow.writer.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for b in b"EHLO slow.x\r\n" {
            if w.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let reply = slow.read_reply();
    assert!(reply.starts_with("421 4.4.2"), "{reply:?}");
    trickle.join().unwrap();
    // Meanwhile a normal client is served.
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "slow1@shop.example",
        "",
    );
    assert_eq!(
        send_and_wait(
            relay.port("mx"),
            "customer@shop.example",
            &["alice@example.com"],
            &msg,
            &team,
            2
        )
        .len(),
        2
    );
}

#[test]
fn a_thousand_connections_from_one_address_hit_the_limit() {
    let (relay, team, _outside) = setup();
    let script = format!(
        r#"
import socket, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
socks, greeted, refused = [], 0, 0
for i in range(1000):
    s = socket.create_connection(('127.0.0.1', {port}), timeout=10)
    socks.append(s)
for s in socks:
    line = s.makefile('rb').readline()
    if line.startswith(b'220'): greeted += 1
    elif line.startswith(b'421 4.7.0'): refused += 1
print(greeted, refused)
"#,
        port = relay.port("mx")
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let nums: Vec<usize> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{text}");
    assert_eq!(nums[0], 100, "the default per-address limit is 100: {text}");
    assert_eq!(nums[1], 900, "{text}");
    // Once they are gone, service resumes.
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "k1@shop.example",
        "",
    );
    assert!(wait_for(T, || send_py(
        relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &msg
    )
    .success));
    assert!(team.wait(2, T).len() >= 2);
}

#[test]
fn a_100_mib_message_is_refused_and_the_relay_keeps_serving() {
    let (relay, team, _outside) = setup();
    let mut c = Client::connect(relay.port("mx"));
    c.read_reply();
    c.cmd("EHLO big.example");
    assert!(c
        .cmd("MAIL FROM:<customer@shop.example>")
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let line = format!("{}\r\n", "x".repeat(1022));
    let chunk = line.repeat(1024);
    for _ in 0..100 {
        c.send(chunk.as_bytes());
    }
    c.send(b".\r\n");
    assert!(c.read_reply().starts_with("552 5.3.4"));
    let msg = message(
        "customer@shop.example",
        "alice@example.com",
        "big2@shop.example",
        "",
    );
    assert_eq!(
        send_and_wait(
            relay.port("mx"),
            "customer@shop.example",
            &["alice@example.com"],
            &msg,
            &team,
            2
        )
        .len(),
        2
    );
}

/// Breaks the fake upstream in one way.
type Fault = Box<dyn Fn(&mut Script)>;

/// Upstream faults: each gives a retry (and eventual delivery) or a DSN, never a loss,
/// never a second copy to a recipient already accepted.
#[test]
fn upstream_faults_are_retried_or_bounced() {
    let cases: Vec<(&str, Fault, bool)> = vec![
        (
            "421 at greeting",
            Box::new(|s: &mut Script| s.greeting = Some("421 4.3.2 busy".into())),
            true,
        ),
        (
            "451 at MAIL",
            Box::new(|s: &mut Script| s.mail_reply = Some("451 4.3.0 later".into())),
            true,
        ),
        (
            "553 at MAIL",
            Box::new(|s: &mut Script| s.mail_reply = Some("553 5.7.1 sender refused".into())),
            false,
        ),
        (
            "450 at RCPT",
            Box::new(|s: &mut Script| {
                s.rcpt_reply
                    .insert("bob@example.com".into(), "450 4.2.1 later".into());
            }),
            true,
        ),
        (
            "554 after DATA",
            Box::new(|s: &mut Script| s.data_reply = Some(("554 5.6.0 content refused".into(), 1))),
            false,
        ),
        (
            "dropped mid-DATA",
            Box::new(|s: &mut Script| s.drop_in_data = 1),
            true,
        ),
    ];
    for (name, fault, temporary) in cases {
        let relay = Relay::start(&base_config(""));
        let team = Upstream::smtp(relay.port("upteam"));
        let outside = Upstream::smtp(relay.port("upout"));
        fault(&mut team.script.lock().unwrap());
        let msg = message(
            "customer@shop.example",
            "bob@example.com",
            "fault@shop.example",
            "",
        );
        assert!(
            send_py(
                relay.port("mx"),
                "customer@shop.example",
                &["bob@example.com"],
                &msg
            )
            .success,
            "{name}"
        );
        if temporary {
            assert!(
                wait_for(T, || relay.log().contains("deferred")),
                "{name}: {}",
                relay.log()
            );
            *team.script.lock().unwrap() = Script::default();
            let got = team.wait(2, Duration::from_secs(30));
            let bob: Vec<_> = got
                .iter()
                .filter(|t| t.rcpts.contains(&"bob@example.com".to_string()))
                .collect();
            assert_eq!(
                bob.len(),
                1,
                "{name}: bob gets the original exactly once: {got:?}"
            );
            assert!(
                outside.txns().is_empty(),
                "{name}: no DSN for a temporary failure"
            );
        } else {
            let dsn = outside.wait(1, T);
            assert_eq!(dsn.len(), 1, "{name}: {}", relay.log());
            assert_eq!(dsn[0].rcpts, ["customer@shop.example"], "{name}");
            assert!(
                dsn[0]
                    .text()
                    .contains("Final-Recipient: rfc822; bob@example.com"),
                "{name}"
            );
        }
    }
}

#[test]
fn a_stalled_upstream_times_out_and_is_retried() {
    let config = base_config("").replace("retry = [\"1s\"]", "retry = [\"1s\"]\ntimeout = \"2s\"");
    let relay = Relay::start(&config);
    let team = Upstream::smtp(relay.port("upteam"));
    team.script.lock().unwrap().stall_after_data = true;
    let msg = message(
        "alice@example.com",
        "bob@example.com",
        "stall@example.com",
        "",
    );
    send_ok(
        relay.port("mx"),
        "alice@example.com",
        &["bob@example.com"],
        &msg,
    );
    assert!(
        wait_for(T, || relay.log().contains("no reply")),
        "{}",
        relay.log()
    );
    team.script.lock().unwrap().stall_after_data = false;
    assert_eq!(team.wait(1, T).len(), 1, "{}", relay.log());
}

#[test]
fn lmtp_partial_answers_retry_452_and_bounce_550() {
    let config = base_config("").replace("team = \"smtp://", "team = \"lmtp://");
    let relay = Relay::start(&config);
    let team = Upstream::lmtp(relay.port("upteam"));
    {
        let mut s = team.script.lock().unwrap();
        s.lmtp_reply
            .insert("bob@example.com".into(), "452 4.2.2 over quota".into());
        s.lmtp_reply
            .insert("carol@example.com".into(), "550 5.1.1 no such user".into());
    }
    let msg = message(
        "alice@example.com",
        "bob@example.com, carol@example.com, dan@example.com",
        "lmtp2@example.com",
        "",
    );
    let to = ["bob@example.com", "carol@example.com", "dan@example.com"];
    assert!(send_py(relay.port("mx"), "alice@example.com", &to, &msg).success);
    assert_eq!(team.wait(1, T)[0].rcpts, ["dan@example.com"]);
    assert!(wait_for(T, || relay.log().contains("deferred")));
    team.script
        .lock()
        .unwrap()
        .lmtp_reply
        .remove("bob@example.com");
    // bob on retry; the DSN for carol to alice.
    let got = team.wait(3, Duration::from_secs(30));
    let count = |who: &str| {
        got.iter()
            .filter(|t| t.rcpts.contains(&who.to_string()))
            .count()
    };
    assert_eq!(count("dan@example.com"), 1, "{got:?}");
    assert_eq!(count("bob@example.com"), 1, "{got:?}");
    let dsn = got.iter().find(|t| t.mail_from.is_empty()).expect("DSN");
    assert!(dsn
        .text()
        .contains("Final-Recipient: rfc822; carol@example.com"));
    assert!(!dsn
        .text()
        .contains("Final-Recipient: rfc822; bob@example.com"));
    let _ = TcpStream::connect(("127.0.0.1", relay.port("mx")));
}
