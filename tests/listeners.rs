//! SPEC §5 and issue "listeners for the real world": STARTTLS and implicit TLS with a CA
//! made by rcgen at test time, submission with AUTH, LMTP in, BDAT, connection limits,
//! SIGHUP reload and SIGTERM drain.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

/// A relay with submission (STARTTLS), implicit TLS submission, an LMTP listener and
/// alice's account. Certificates are written before the relay starts.
fn tls_relay() -> (Relay, Upstream, Upstream) {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let hash = passwd("s3cret pass");
    let extra = format!(
        r#"
[[listen]]
address = "127.0.0.1:{{port:submission}}"
mode = "submission"
tls = "starttls"

[[listen]]
address = "127.0.0.1:{{port:smtps}}"
mode = "submission"
tls = "implicit"

[[listen]]
address = "127.0.0.1:{{port:lmtp}}"
mode = "mx"
protocol = "lmtp"

[tls]
cert = "{dir}/cert.pem"
key = "{dir}/key.pem"

[[user]]
name = "alice"
password_hash = "{hash}"
addresses = ["alice@example.com"]
"#,
        dir = certs.path().display()
    );
    let config = base_config("").replace("[deliver]", &format!("{extra}\n[deliver]"));
    let relay = Relay::start(&config);
    // Keep the CA where the python client can find it for the relay's lifetime.
    std::fs::copy(certs.path().join("ca.pem"), relay.dir.path().join("ca.pem")).unwrap();
    let team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    (relay, team, outside)
}

/// Runs a python3 snippet with `port`, `ca` and a message in scope; returns its stdout.
fn python(relay: &Relay, port: u16, body: &str) -> String {
    let script = format!(
        "import smtplib, ssl, socket, sys, base64\nport = {port}\nca = {ca:?}\nctx = ssl.create_default_context(cafile=ca)\nmsg = b'From: alice@example.com\\r\\nTo: customer@shop.example\\r\\nSubject: tls\\r\\nMessage-ID: <tls@example.com>\\r\\n\\r\\nhello\\r\\n'\n{body}",
        ca = relay.dir.path().join("ca.pem").display().to_string()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn submission_with_starttls_and_auth_delivers_outbound_with_archive_copies() {
    let (relay, team, outside) = tls_relay();
    let out = python(
        &relay,
        relay.port("submission"),
        "s = smtplib.SMTP('localhost', port, timeout=30)\n\
         s.ehlo()\n\
         print('before', s.has_extn('starttls'))\n\
         s.starttls(context=ctx)\n\
         s.ehlo()\n\
         print('after', s.has_extn('starttls'), s.has_extn('auth'))\n\
         s.login('alice', 's3cret pass')\n\
         print(s.sendmail('alice@example.com', ['customer@shop.example'], msg))\n\
         s.quit()",
    );
    assert!(
        out.contains("before True") && out.contains("after False True") && out.contains("{}"),
        "{out}"
    );
    assert_eq!(outside.wait(1, T)[0].rcpts, ["customer@shop.example"]);
    let copies = team.wait(1, T);
    assert!(copies[0].text().contains("X-Teamrelay-Direction: outbound"));
    assert!(
        copies[0].text().contains("with ESMTP"),
        "{}",
        copies[0].text()
    );
}

#[test]
fn implicit_tls_submission_works() {
    let (relay, _team, outside) = tls_relay();
    let out = python(
        &relay,
        relay.port("smtps"),
        "s = smtplib.SMTP_SSL('localhost', port, context=ctx, timeout=30)\n\
         s.login('alice', 's3cret pass')\n\
         print(s.sendmail('alice@example.com', ['customer@shop.example'], msg))\n\
         s.quit()",
    );
    assert!(out.contains("{}"), "{out}");
    assert_eq!(outside.wait(1, T).len(), 1);
}

#[test]
fn auth_failures_have_their_codes() {
    let (relay, _team, outside) = tls_relay();
    let mut c = Client::connect(relay.port("submission"));
    c.read_reply();
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.contains("STARTTLS") && ehlo.contains("AUTH PLAIN LOGIN"),
        "{ehlo}"
    );
    assert!(c
        .cmd("MAIL FROM:<alice@example.com>")
        .starts_with("530 5.7.0"));
    // PLAIN with a wrong password: \0alice\0wrong
    let started = std::time::Instant::now();
    assert!(c
        .cmd("AUTH PLAIN AGFsaWNlAHdyb25n")
        .starts_with("535 5.7.8"));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "failed AUTH is delayed"
    );
    // LOGIN with the right password.
    assert!(c.cmd("AUTH LOGIN").starts_with("334 VXNlcm5hbWU6"));
    assert!(c.cmd("YWxpY2U=").starts_with("334 UGFzc3dvcmQ6"));
    assert!(c.cmd("czNjcmV0IHBhc3M=").starts_with("235 2.7.0"));
    assert!(c
        .cmd("MAIL FROM:<bob@example.com>")
        .starts_with("553 5.7.1"));
    assert!(c.cmd("MAIL FROM:<alice@example.com>").starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<anyone@anywhere.example>")
        .starts_with("250"));
    c.cmd("QUIT");
    // Unknown user: same answer as a wrong password.
    let mut c = Client::connect(relay.port("submission"));
    c.read_reply();
    c.cmd("EHLO client.test");
    assert!(c
        .cmd("AUTH PLAIN AG1hbGxvcnkAczNjcmV0IHBhc3M=")
        .starts_with("535 5.7.8"));
    assert!(outside.txns().is_empty());
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let (relay, _team, outside) = tls_relay();
    let out = python(
        &relay,
        relay.port("submission"),
        "sock = socket.create_connection(('127.0.0.1', port), timeout=30)\n\
         f = sock.makefile('rb')\n\
         def reply(f):\n    lines = []\n    while True:\n        l = f.readline()\n        lines.append(l)\n        if len(l) < 4 or l[3:4] != b'-': return b''.join(lines)\n\
         reply(f)\n\
         sock.sendall(b'EHLO x\\r\\n'); reply(f)\n\
         sock.sendall(b'STARTTLS\\r\\nAUTH PLAIN AGFsaWNlAHMzY3JldCBwYXNz\\r\\nMAIL FROM:<alice@example.com>\\r\\n')\n\
         print('starttls', reply(f))\n\
         t = ctx.wrap_socket(sock, server_hostname='localhost')\n\
         tf = t.makefile('rb')\n\
         t.sendall(b'EHLO x\\r\\n'); reply(tf)\n\
         t.sendall(b'RCPT TO:<customer@shop.example>\\r\\n'); print('rcpt', reply(tf))\n\
         t.sendall(b'MAIL FROM:<alice@example.com>\\r\\n'); print('mail', reply(tf))",
    );
    assert!(out.contains("starttls b'220 2.0.0"), "{out}");
    // Neither the injected AUTH nor the injected MAIL took effect.
    assert!(out.contains("rcpt b'503 5.5.1"), "{out}");
    assert!(out.contains("mail b'530 5.7.0"), "{out}");
    assert!(relay
        .log()
        .contains("discarding commands pipelined after STARTTLS"));
    assert!(outside.txns().is_empty());
}

#[test]
fn lmtp_listener_replies_once_per_recipient() {
    let (relay, team, _outside) = tls_relay();
    let mut c = Client::connect(relay.port("lmtp"));
    assert!(c.read_reply().starts_with("220"));
    assert!(c.cmd("EHLO x").starts_with("503"), "LMTP wants LHLO");
    assert!(c.cmd("LHLO postfix.local").starts_with("250-relay.test"));
    assert!(c
        .cmd("MAIL FROM:<customer@shop.example>")
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@example.com>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(&message(
        "customer@shop.example",
        "alice@example.com, bob@example.com",
        "lmtpin@shop.example",
        "",
    ));
    c.send(b".\r\n");
    assert!(c.read_reply().starts_with("250 2.0.0"));
    assert!(c.read_reply().starts_with("250 2.0.0"));
    let txns = team.wait(2, T);
    assert!(
        txns.iter().any(|t| t.text().contains("with LMTP")),
        "{txns:?}"
    );
}

#[test]
fn bdat_chunks_are_accepted_and_bare_line_endings_refused() {
    let (relay, team, _outside) = tls_relay();
    let mut c = Client::connect(relay.port("mx"));
    c.read_reply();
    assert!(c.cmd("EHLO x").contains("CHUNKING"));
    assert!(c.cmd("MAIL FROM:<alice@example.com>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.com>").starts_with("250"));
    let part1 = b"From: alice@example.com\r\nTo: bob@example.com\r\nSub";
    let part2 = b"ject: chunks\r\n\r\n.not stuffed\r\n";
    c.send(format!("BDAT {}\r\n", part1.len()).as_bytes());
    c.send(part1);
    assert!(c.read_reply().starts_with("250"));
    c.send(format!("BDAT {} LAST\r\n", part2.len()).as_bytes());
    c.send(part2);
    assert!(c.read_reply().starts_with("250 2.0.0 OK queued"));
    let txns = team.wait(1, T);
    assert!(
        txns[0]
            .text()
            .ends_with("Subject: chunks\r\n\r\n.not stuffed\r\n"),
        "{}",
        txns[0].text()
    );
    // A bare LF inside a chunk, and a CR at a chunk's end followed by no LF.
    for (a, b) in [(&b"x\ny\r\n"[..], &b""[..]), (&b"x\r"[..], &b"y\r\n"[..])] {
        assert!(c.cmd("MAIL FROM:<alice@example.com>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<bob@example.com>").starts_with("250"));
        c.send(format!("BDAT {}\r\n", a.len()).as_bytes());
        c.send(a);
        assert!(c.read_reply().starts_with("250"));
        c.send(format!("BDAT {} LAST\r\n", b.len()).as_bytes());
        c.send(b);
        assert!(c.read_reply().starts_with("550 5.5.2"));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(team.txns().len(), 1);
}

#[test]
fn connections_past_the_per_ip_limit_get_421() {
    let config = base_config("").replace(
        "idle_timeout = \"5s\"",
        "idle_timeout = \"5s\"\nmax_connections_per_ip = 3",
    );
    let relay = Relay::start(&config);
    // Let the start-up probe connections end first.
    std::thread::sleep(Duration::from_millis(500));
    let mut open: Vec<Client> = (0..3).map(|_| Client::connect(relay.port("mx"))).collect();
    for c in &mut open {
        assert!(c.read_reply().starts_with("220"));
    }
    let mut extra = Client::connect(relay.port("mx"));
    assert!(extra.read_reply().starts_with("421 4.7.0"));
    drop(open.pop());
    assert!(wait_for(T, || {
        let mut c = Client::connect(relay.port("mx"));
        c.read_reply().starts_with("220")
    }));
}

#[test]
fn sighup_reloads_a_good_file_and_keeps_the_old_one_on_a_bad_file() {
    let relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    let mut c = Client::connect(relay.port("mx"));
    c.read_reply();
    c.cmd("EHLO x");
    let original = std::fs::read_to_string(&relay.config).unwrap();
    let with_support = format!("{original}\n[[list]]\naddress = \"support@example.com\"\nmembers = [\"carol@example.com\"]\n");
    std::fs::write(&relay.config, &with_support).unwrap();
    relay.signal("HUP");
    assert!(
        wait_for(T, || relay.log().contains("configuration reloaded")),
        "{}",
        relay.log()
    );
    // The connected client still works, and the new list is known.
    assert!(c.cmd("MAIL FROM:<alice@example.com>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<support@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: s\r\n\r\nx\r\n.\r\n");
    assert!(c.read_reply().starts_with("250"));
    let txns = team.wait(1, T);
    assert_eq!(txns[0].rcpts, ["carol@example.com"]);
    assert_eq!(txns[0].mail_from, "support-bounces@example.com");
    // A bad file is refused and the running config stays.
    std::fs::write(&relay.config, format!("{with_support}\nbogus_key = 1\n")).unwrap();
    relay.signal("HUP");
    assert!(
        wait_for(T, || relay.log().contains("reload refused")),
        "{}",
        relay.log()
    );
    assert!(c.cmd("MAIL FROM:<alice@example.com>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<support@example.com>").starts_with("250"));
}

#[test]
fn sigterm_during_a_transaction_loses_nothing_acknowledged() {
    let mut relay = Relay::start(&base_config(""));
    let mut c = Client::connect(relay.port("mx"));
    c.read_reply();
    c.cmd("EHLO x");
    assert!(c
        .cmd("MAIL FROM:<customer@shop.example>")
        .starts_with("250"));
    assert!(c.cmd("RCPT TO:<alice@example.com>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.send(b"Subject: in flight\r\nMessage-ID: <term@shop.example>\r\n\r\nfirst half\r\n");
    relay.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    c.send(b"second half\r\n.\r\n");
    let reply = c.read_reply();
    assert!(
        reply.starts_with("250") || reply.starts_with("4"),
        "{reply}"
    );
    let code = relay.terminate();
    assert_eq!(code, Some(0), "{}", relay.log());
    // Whatever was acknowledged is delivered after a restart.
    let team = Upstream::smtp(relay.port("upteam"));
    relay.spawn();
    if reply.starts_with("250") {
        let txns = team.wait(2, T);
        let original = txns
            .iter()
            .find(|t| t.rcpts == ["alice@example.com"])
            .expect("delivered after restart");
        assert!(original.text().contains("first half\r\nsecond half\r\n"));
    }
}
