//! SPEC §8 through the real binary: what the history keeps, `history show`, `search`,
//! `export`, `forget` (with the bytes gone from disk) and `backfill`, both while
//! `serve` runs (over its socket) and when it does not.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn config() -> String {
    base_config("") + "\n[history]\nkeep = \"2y\"\n"
}

fn history(relay: &Relay, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_teamrelay"))
        .arg("history")
        .arg("--config")
        .arg(&relay.config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn json(relay: &Relay, args: &[&str]) -> serde_json::Value {
    let (code, out, err) = history(relay, args);
    assert_eq!(code, 0, "history {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn mail(from: &str, to: &str, id: &str, subject: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n{extra}\r\n{body}\r\n"
    )
    .into_bytes()
}

fn send(relay: &Relay, port: &str, from: &str, to: &[&str], msg: &[u8]) {
    let r = send_py(relay.port(port), from, to, msg);
    assert!(r.success, "{}", r.output);
}

/// A customer's inbound question, the team's answer, and mail the history must not keep.
fn conversation(relay: &Relay) {
    let q = mail(
        "cus@shop.example",
        "alice@example.com",
        "q1@shop.example",
        "Quote request",
        "",
        "What discount did we get last time? zebratoken42",
    );
    send(relay, "mx", "cus@shop.example", &["alice@example.com"], &q);
    let a = mail(
        "bob@example.com",
        "cus@shop.example",
        "a1@example.com",
        "Re: Quote request",
        "In-Reply-To: <q1@shop.example>\r\n",
        "You got a 15% discount.",
    );
    send(relay, "relay", "bob@example.com", &["cus@shop.example"], &a);
    // Never kept: internal, private, bulk.
    let internal = mail(
        "alice@example.com",
        "bob@example.com",
        "i1@example.com",
        "lunch discount",
        "",
        "x",
    );
    send(
        relay,
        "relay",
        "alice@example.com",
        &["bob@example.com"],
        &internal,
    );
    let private = mail(
        "cus@shop.example",
        "alice@example.com",
        "p1@shop.example",
        "private discount",
        "",
        "x",
    );
    send(
        relay,
        "mx",
        "cus@shop.example",
        &["alice@example.com", "private@example.com"],
        &private,
    );
    let bulk = mail(
        "news@shop.example",
        "alice@example.com",
        "n1@shop.example",
        "newsletter discount",
        "Precedence: bulk\r\n",
        "x",
    );
    send(
        relay,
        "mx",
        "news@shop.example",
        &["alice@example.com"],
        &bulk,
    );
}

fn assert_conversation(relay: &Relay) {
    let v = json(relay, &["show", "cus@shop.example", "--json"]);
    assert_eq!(v["customer"], "cus@shop.example");
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{v}");
    let t = &threads[0];
    assert_eq!(t["thread"], "q1@shop.example");
    assert_eq!(t["subject"], "Quote request");
    assert_eq!(t["first"], "2026-12-01T10:00:00Z");
    assert_eq!(t["owner"], serde_json::Value::Null);
    let m = t["messages"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{v}");
    assert_eq!(m[0]["direction"], "inbound");
    assert_eq!(m[0]["from"], "cus@shop.example");
    assert_eq!(m[0]["to"], serde_json::json!(["alice@example.com"]));
    assert_eq!(m[0]["team"], serde_json::json!(["alice@example.com"]));
    assert_eq!(m[1]["direction"], "outbound");
    assert_eq!(m[1]["message_id"], "a1@example.com");
    assert_eq!(m[1]["subject"], "Re: Quote request");

    let s = json(relay, &["search", "DISCOUNT", "--json"]);
    assert_eq!(s["query"], "DISCOUNT");
    let hits = s["messages"].as_array().unwrap();
    let subjects: Vec<&str> = hits
        .iter()
        .map(|h| h["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects.len(), 2, "only the kept conversation: {s}");
    assert!(subjects.contains(&"Quote request") && subjects.contains(&"Re: Quote request"));
    assert_eq!(
        hits[0]["customers"],
        serde_json::json!(["cus@shop.example"])
    );
    assert!(
        hits.iter()
            .any(|h| h["snippet"].as_str().unwrap().contains("15% discount")),
        "{s}"
    );
    let s = json(relay, &["search", "discount", "zebratoken42", "--json"]);
    assert_eq!(s["messages"].as_array().unwrap().len(), 1);
    let s = json(relay, &["search", "discount", "--json", "--limit", "1"]);
    assert_eq!(s["messages"].as_array().unwrap().len(), 1);

    let d = json(relay, &["show", "@shop.example", "--json"]);
    assert_eq!(d["domain"], "shop.example");
    assert_eq!(
        d["customers"],
        serde_json::json!([{"address": "cus@shop.example", "messages": 2, "last": "2026-12-01T10:00:00Z"}])
    );
    let (code, text, _) = history(relay, &["show", "cus@shop.example"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("Quote request") && text.contains("outbound"),
        "{text}"
    );

    let (code, mbox, _) = history(relay, &["export", "cus@shop.example"]);
    assert_eq!(code, 0);
    assert!(mbox.starts_with("From cus@shop.example "), "{mbox}");
    assert_eq!(mbox.matches("\nFrom ").count() + 1, 2, "{mbox}");
    assert!(mbox.contains("Subject: Quote request\r\n") && mbox.contains("zebratoken42"));
    assert!(!mbox.contains("X-Teamrelay"), "kept as received: {mbox}");
}

/// Every file under `dir` that contains `token`, and any file or directory that is
/// not owner-only.
fn scan(dir: &Path, token: &[u8], found: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let mode = e.metadata().unwrap().mode() & 0o777;
        if p.is_dir() {
            assert_eq!(mode, 0o700, "{}", p.display());
            scan(&p, token, found);
        } else {
            assert_eq!(mode, 0o600, "{}", p.display());
            let bytes = std::fs::read(&p).unwrap_or_default();
            if bytes.windows(token.len()).any(|w| w == token) {
                found.push(p.display().to_string());
            }
        }
    }
}

fn forget_and_check(relay: &Relay) {
    let dir = relay.dir.path().join("spool/history");
    let mut found = Vec::new();
    scan(&dir, b"zebratoken42", &mut found);
    assert!(!found.is_empty(), "the token is kept before forget");
    let (code, out, err) = history(relay, &["forget", "cus@shop.example"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "forgot 2 messages\n");
    let mut found = Vec::new();
    scan(&dir, b"zebratoken42", &mut found);
    scan(&dir, b"cus@shop.example", &mut found);
    assert!(found.is_empty(), "left after forget: {found:?}");
    let v = json(relay, &["show", "cus@shop.example", "--json"]);
    assert_eq!(v["threads"], serde_json::json!([]));
    let s = json(relay, &["search", "discount", "--json"]);
    assert_eq!(s["messages"], serde_json::json!([]));
}

#[test]
fn history_keeps_shows_searches_exports_and_forgets_while_serve_runs() {
    let relay = Relay::start(&config());
    let _team = Upstream::smtp(relay.port("upteam"));
    let _out = Upstream::smtp(relay.port("upout"));
    conversation(&relay);
    assert_conversation(&relay);
    forget_and_check(&relay);
}

#[test]
fn history_works_without_serve_and_survives_kill_9() {
    let mut relay = Relay::start(&config());
    let _team = Upstream::smtp(relay.port("upteam"));
    let _out = Upstream::smtp(relay.port("upout"));
    conversation(&relay);
    // Acknowledged means kept: no chance to commit the index.
    relay.kill9();
    assert!(wait_for(Duration::from_secs(5), || !relay
        .dir
        .path()
        .join("spool/history.sock")
        .exists()
        || std::os::unix::net::UnixStream::connect(
            relay.dir.path().join("spool/history.sock")
        )
        .is_err()));
    assert_conversation(&relay);
    forget_and_check(&relay);
}

#[test]
fn history_bad_arguments_are_one_line_and_exit_2() {
    let relay = Relay::start(&config());
    for args in [
        &["show", "not-an-address"][..],
        &["show"],
        &["show", "@"],
        &["search"],
        &["search", "x", "--limit", "many"],
        &["export", "nobody"],
        &["forget"],
        &["backfill", "x@"],
        &["backfill", "erin@example.com", "--since", "soon"],
    ] {
        let (code, out, err) = history(&relay, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty());
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("teamrelay history: "), "{err}");
    }
    // An address with nothing kept is not an error.
    let v = json(&relay, &["show", "nobody@else.example", "--json"]);
    assert_eq!(
        v,
        serde_json::json!({"customer": "nobody@else.example", "threads": []})
    );
}

fn backfill_config(members: &str) -> String {
    config().replace(
        r#"members = ["alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com"]"#,
        members,
    )
}

#[test]
fn backfill_gives_a_new_teammate_the_past_once() {
    let old = r#"members = ["alice@example.com", "bob@example.com"]"#;
    let mut relay = Relay::start(&backfill_config(old));
    let team = Upstream::smtp(relay.port("upteam"));
    let _out = Upstream::smtp(relay.port("upout"));
    conversation(&relay);
    // bob and alice each have both messages already; wait for the originals and copies.
    team.wait(6, Duration::from_secs(10));
    let before = team.txns().len();
    let new = r#"members = ["alice@example.com", "bob@example.com", "erin@example.com", "fred@example.com"]"#;
    let text = std::fs::read_to_string(&relay.config)
        .unwrap()
        .replace(old, new);
    std::fs::write(&relay.config, text).unwrap();
    relay.signal("HUP");
    assert!(wait_for(Duration::from_secs(5), || relay
        .log()
        .contains("configuration reloaded")));

    let (code, out, err) = history(&relay, &["backfill", "erin@example.com"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "queued 2 archive copies\n");
    let erin = |team: &Upstream| -> Vec<Txn> {
        team.by_rcpt()
            .into_iter()
            .filter(|(r, _)| r == "erin@example.com")
            .map(|(_, t)| t)
            .collect()
    };
    assert!(wait_for(Duration::from_secs(10), || erin(&team).len() == 2));
    for t in erin(&team) {
        let text = t.text();
        assert_eq!(t.mail_from, "customers-archive-bounces@example.com");
        assert!(
            text.contains("X-Teamrelay-Archive: customers-archive@example.com\r\n"),
            "{text}"
        );
        assert!(text.contains("X-Teamrelay-Backfill: yes\r\n"), "{text}");
        assert!(
            text.contains("Precedence: list\r\n")
                && text.contains("X-Auto-Response-Suppress: All\r\n")
        );
        assert!(
            text.contains("Subject: Quote request") || text.contains("Subject: Re: Quote request")
        );
    }
    let dirs: Vec<String> = erin(&team)
        .iter()
        .map(|t| {
            t.text()
                .lines()
                .find(|l| l.starts_with("X-Teamrelay-Direction"))
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        dirs.contains(&"X-Teamrelay-Direction: inbound".to_string()),
        "{dirs:?}"
    );
    assert!(
        dirs.contains(&"X-Teamrelay-Direction: outbound".to_string()),
        "{dirs:?}"
    );
    // Nobody else got anything; a second run queues nothing.
    let (_, out, _) = history(&relay, &["backfill", "erin@example.com"]);
    assert_eq!(out, "queued 0 archive copies\n");
    // Members who had it get nothing.
    let (_, out, _) = history(&relay, &["backfill", "alice@example.com"]);
    assert_eq!(out, "queued 0 archive copies\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(team.txns().len(), before + 2);

    // Without serve: queued into the spool, delivered at the next start.
    assert_eq!(relay.terminate(), Some(0));
    let (code, out, err) = history(&relay, &["backfill", "fred@example.com", "--since", "1d"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "queued 2 archive copies\n");
    relay.spawn();
    let fred = |team: &Upstream| {
        team.by_rcpt()
            .into_iter()
            .filter(|(r, _)| r == "fred@example.com")
            .count()
    };
    assert!(wait_for(Duration::from_secs(10), || fred(&team) == 2));
}

#[test]
fn tap_copies_are_kept_once_per_message_id() {
    let config = config()
        + "\n[[listen]]\naddress = \"127.0.0.1:{port:tap}\"\nmode = \"tap\"\nallow = [\"127.0.0.0/8\"]\n";
    let relay = Relay::start(&config);
    let _team = Upstream::smtp(relay.port("upteam"));
    let _out = Upstream::smtp(relay.port("upout"));
    let m = mail(
        "cus@shop.example",
        "alice@example.com, bob@example.com",
        "t1@shop.example",
        "Tapped question",
        "",
        "about the walnut tables",
    );
    // The provider copies once per recipient: two transactions, one message.
    send(&relay, "tap", "cus@shop.example", &["tap@example.com"], &m);
    send(&relay, "tap", "cus@shop.example", &["tap@example.com"], &m);
    let v = json(&relay, &["show", "cus@shop.example", "--json"]);
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{v}");
    let msgs = threads[0]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "kept once: {v}");
    assert_eq!(msgs[0]["direction"], "inbound");
    assert_eq!(
        msgs[0]["team"],
        serde_json::json!(["alice@example.com", "bob@example.com"])
    );
    let s = json(&relay, &["search", "walnut", "--json"]);
    assert_eq!(s["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn retention_removes_messages_older_than_keep_at_start() {
    let mut relay = Relay::start(&config().replace("keep = \"2y\"", "keep = \"2s\""));
    let _team = Upstream::smtp(relay.port("upteam"));
    let _out = Upstream::smtp(relay.port("upout"));
    conversation(&relay);
    let v = json(&relay, &["show", "cus@shop.example", "--json"]);
    assert_eq!(
        v["threads"].as_array().unwrap().len(),
        1,
        "kept while young: {v}"
    );
    assert_eq!(relay.terminate(), Some(0));
    std::thread::sleep(Duration::from_secs(3));
    relay.spawn();
    assert!(wait_for(Duration::from_secs(10), || relay
        .log()
        .contains("messages past their retention removed")));
    let v = json(&relay, &["show", "cus@shop.example", "--json"]);
    assert_eq!(v["threads"], serde_json::json!([]));
    let mut found = Vec::new();
    scan(
        &relay.dir.path().join("spool/history"),
        b"zebratoken42",
        &mut found,
    );
    assert!(found.is_empty(), "{found:?}");
}
