//! SPEC §8's web page through the real binary: login with a `[[user]]`, the session
//! cookie, 303 without a session, 405 for writes, the CSP, escaping — over plain HTTP on
//! loopback — and, in a real browser (Debian's chromium driven by Python's selenium),
//! what a teammate sees: `tests/browser/history_test.py`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::*;

fn config() -> String {
    let hash = passwd("s3cret pass");
    base_config("")
        + &format!(
            "\n[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\naddresses = [\"alice@example.com\"]\n\n[history]\nlisten = \"127.0.0.1:{{port:web}}\"\n"
        )
}

/// One HTTP/1.1 exchange; the whole response as text.
fn http(port: u16, method: &str, path: &str, headers: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

fn status(resp: &str) -> &str {
    resp.split(' ').nth(1).unwrap_or("")
}

fn header<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    let head = resp.split("\r\n\r\n").next()?;
    head.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

fn login(port: u16, password: &str) -> String {
    let form = format!("name=alice&password={}", password.replace(' ', "+"));
    http(
        port,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        &form,
    )
}

/// A small conversation, one subject trying to inject a script.
fn conversation(relay: &Relay) {
    let msgs = [
        (
            "cus@shop.example",
            "alice@example.com",
            "w1@shop.example",
            "Quote for 40 chairs",
            "",
            "Can we get a discount on 40 chairs?",
        ),
        (
            "alice@example.com",
            "cus@shop.example",
            "w2@example.com",
            "Re: Quote for 40 chairs",
            "In-Reply-To: <w1@shop.example>\r\n",
            "Yes: 12% discount, as last time.",
        ),
        (
            "cus@shop.example",
            "alice@example.com",
            "w3@shop.example",
            "<script>alert(1)</script> urgent",
            "",
            "Hello <b>team</b>",
        ),
    ];
    for (from, to, id, subject, extra, body) in msgs {
        let port = if from.ends_with("example.com") {
            "relay"
        } else {
            "mx"
        };
        let m = format!("From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{extra}\r\n{body}\r\n");
        let r = send_py(relay.port(port), from, &[to], m.as_bytes());
        assert!(r.success, "{}", r.output);
    }
}

#[test]
fn web_page_needs_a_login_is_read_only_and_escapes_mail() {
    let relay = Relay::start(&config());
    let _team = Upstream::smtp(relay.port("upteam"));
    let _out = Upstream::smtp(relay.port("upout"));
    conversation(&relay);
    let port = relay.port("web");
    let csp = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'";

    for path in [
        "/",
        "/customer/cus@shop.example",
        "/search?q=discount",
        "/thread/w1@shop.example",
        "/message/0.eml",
        "/nope",
    ] {
        let r = http(port, "GET", path, "", "");
        assert_eq!(status(&r), "303", "{path}: {r}");
        assert_eq!(header(&r, "location"), Some("/login"), "{path}");
        assert_eq!(header(&r, "content-security-policy"), Some(csp));
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = http(port, method, "/customer/cus@shop.example", "", "");
        assert_eq!(status(&r), "405", "{method}: {r}");
    }
    let r = http(port, "GET", "/login", "", "");
    assert_eq!(status(&r), "200");
    assert_eq!(header(&r, "content-security-policy"), Some(csp));
    assert!(!r.contains("<script"), "no script on the page");

    let started = std::time::Instant::now();
    let r = login(port, "wrong");
    assert_eq!(status(&r), "401");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "a failed login waits a second"
    );
    assert!(header(&r, "set-cookie").is_none());

    let r = login(port, "s3cret pass");
    assert_eq!(status(&r), "303", "{r}");
    assert_eq!(header(&r, "location"), Some("/"));
    let cookie = header(&r, "set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    let session = format!("Cookie: {}\r\n", cookie.split(';').next().unwrap());

    let r = http(port, "GET", "/customer/cus@shop.example", &session, "");
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(header(&r, "content-security-policy"), Some(csp));
    assert!(r.contains("Quote for 40 chairs") && r.contains("outbound") && r.contains("inbound"));
    assert!(
        r.contains("&lt;script&gt;alert(1)&lt;/script&gt; urgent"),
        "{r}"
    );
    assert!(!r.contains("<script>"), "mail is escaped: {r}");

    let r = http(port, "GET", "/search?q=discount", &session, "");
    assert!(r.contains("12% discount, as last time."), "{r}");
    let r = http(port, "GET", "/thread/w1@shop.example", &session, "");
    assert!(
        r.contains("Can we get a discount on 40 chairs?") && r.contains("Yes: 12% discount"),
        "{r}"
    );
    let r = http(port, "GET", "/thread/w3@shop.example", &session, "");
    assert!(r.contains("Hello &lt;b&gt;team&lt;/b&gt;"), "{r}");
    let eml = r
        .split("href=\"/message/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = http(port, "GET", &format!("/message/{eml}"), &session, "");
    assert_eq!(header(&r, "content-type"), Some("message/rfc822"));
    assert!(r.contains("\r\n\r\nFrom: cus@shop.example\r\n"), "{r}");
    let r = http(port, "HEAD", "/", &session, "");
    assert_eq!(status(&r), "200");
    let r = http(port, "POST", "/", &session, "");
    assert_eq!(status(&r), "405", "a session does not make writes possible");

    let r = http(port, "POST", "/logout", &session, "");
    assert_eq!(status(&r), "303");
    let r = http(port, "GET", "/", &session, "");
    assert_eq!(status(&r), "303", "the session is gone after logout");
}

#[test]
fn web_page_in_a_real_browser() {
    assert!(
        std::path::Path::new("/usr/bin/chromedriver").exists(),
        "this test needs Debian's chromium and chromium-driver, and python3-selenium"
    );
    let relay = Relay::start(&config());
    let _team = Upstream::smtp(relay.port("upteam"));
    let _out = Upstream::smtp(relay.port("upout"));
    conversation(&relay);
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("history-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/history_test.py"
        ))
        .arg(format!("http://127.0.0.1:{}", relay.port("web")))
        .args(["alice", "s3cret pass"])
        .arg(&shots)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser test failed:\n{text}");
    assert!(shots.join("customer.png").exists());
}

#[test]
fn web_page_over_implicit_tls_sets_a_secure_cookie() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let dir = certs.path().display().to_string();
    let config = config().replace(
        "listen = \"127.0.0.1:{port:web}\"\n",
        "listen = \"127.0.0.1:{port:web}\"\ntls = \"implicit\"\n",
    ) + &format!("\n[tls]\ncert = \"{dir}/cert.pem\"\nkey = \"{dir}/key.pem\"\n");
    let relay = Relay::start(&config);
    let script = r#"
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ctx, timeout=20)
c.request("POST", "/login", "name=alice&password=s3cret+pass", {"Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); r.read()
print(r.status, r.getheader("Set-Cookie"))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &relay.port("web").to_string()])
        .arg(certs.path().join("ca.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("303 "), "{text}");
    assert!(
        text.contains("HttpOnly") && text.contains("SameSite=Strict") && text.contains("Secure"),
        "{text}"
    );
    // Plain HTTP on the TLS port gets nothing.
    let r = http(relay.port("web"), "GET", "/login", "", "");
    assert!(!r.starts_with("HTTP/1.1 200"), "{r}");
}
