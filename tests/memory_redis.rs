//! SPEC §10 through the real binaries: two `teamrelay serve` instances with the same
//! lists.toml and separate spools share one real `redis-server` (started here on a free
//! loopback port, without persistence, stopped by PID), and behave as one instance seen
//! from the mailboxes. A Redis outage costs only `451`s.

mod common;

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use common::redis::Redis;
use common::*;

const T: Duration = Duration::from_secs(20);

/// Two relays on one Redis, delivering to the same two fake upstreams.
struct Pair {
    a: Relay,
    b: Relay,
    team: Upstream,
    outside: Upstream,
}

fn pair(redis: &Redis, extra_team: &str) -> Pair {
    let (upteam, upout) = (free_port(), free_port());
    let config = base_config(extra_team)
        .replace("{port:upteam}", &upteam.to_string())
        .replace("{port:upout}", &upout.to_string())
        + &format!("\n[memory]\nurl = \"redis://127.0.0.1:{}/0\"\n", redis.port)
        + "\n[admin]\nlisten = \"127.0.0.1:{port:admin}\"\n";
    Pair {
        a: Relay::start(&config),
        b: Relay::start(&config),
        team: Upstream::smtp(upteam),
        outside: Upstream::smtp(upout),
    }
}

/// One SMTP session for many transactions (raw socket: fast enough for hundreds).
struct Sender(Client);

impl Sender {
    fn new(port: u16) -> Sender {
        let mut c = Client::connect(port);
        assert!(c.read_reply().starts_with("220"));
        assert!(c.cmd("EHLO test.example").starts_with("250"));
        Sender(c)
    }

    /// One transaction; the reply to the end of DATA.
    fn send(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        assert!(self
            .0
            .cmd(&format!("MAIL FROM:<{from}>"))
            .starts_with("250"));
        for r in to {
            let reply = self.0.cmd(&format!("RCPT TO:<{r}>"));
            assert!(reply.starts_with("250"), "RCPT {r}: {reply}");
        }
        assert!(self.0.cmd("DATA").starts_with("354"));
        self.0.send(message);
        let reply = self.0.cmd(".");
        if !reply.starts_with("250") {
            self.0.cmd("RSET");
        }
        reply
    }
}

fn message_id_of(t: &Txn) -> String {
    let text = t.text();
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: <"))
        .map(|l| l.trim_end_matches('>').to_string())
        .unwrap_or_default()
}

/// How many times each (Message-ID, recipient) arrived at the team upstream.
fn copies(up: &Upstream) -> HashMap<(String, String), usize> {
    let mut n = HashMap::new();
    for (rcpt, t) in up.by_rcpt() {
        *n.entry((message_id_of(&t), rcpt)).or_insert(0) += 1;
    }
    n
}

fn total(up: &Upstream) -> usize {
    up.by_rcpt().len()
}

/// Waits for `n` recipient deliveries, then a moment more so extra ones would show.
fn settle(up: &Upstream, n: usize) {
    wait_for(T, || total(up) >= n);
    thread::sleep(Duration::from_millis(800));
}

#[test]
fn a_split_message_across_two_instances_gives_each_member_one_copy() {
    let redis = Redis::start();
    let p = pair(&redis, "");
    // Ten messages, each split into one transaction per recipient landing on A and B
    // at the same instant — as a large sender splitting across two MX hosts does.
    for i in 0..10 {
        let id = format!("split{i}@shop.example");
        let msg = message(
            "Customer <customer@shop.example>",
            "alice@example.com, carol@example.com",
            &id,
            "",
        );
        let (ma, mb) = (msg.clone(), msg);
        let (pa, pb) = (p.a.port("mx"), p.b.port("mx"));
        let ta = thread::spawn(move || {
            Sender::new(pa).send("customer@shop.example", &["alice@example.com"], &ma)
        });
        let tb = thread::spawn(move || {
            Sender::new(pb).send("customer@shop.example", &["carol@example.com"], &mb)
        });
        assert!(ta.join().unwrap().starts_with("250"));
        assert!(tb.join().unwrap().starts_with("250"));
    }
    settle(&p.team, 40);
    let got = copies(&p.team);
    for i in 0..10 {
        let id = format!("split{i}@shop.example");
        for who in ["alice", "bob", "carol", "dan"] {
            let n = got
                .get(&(id.clone(), format!("{who}@example.com")))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                n,
                1,
                "{who} got {n} copies of {id}\nA:\n{}\nB:\n{}",
                p.a.log(),
                p.b.log()
            );
        }
    }
    assert_eq!(total(&p.team), 40);
}

#[test]
fn a_thread_marked_private_on_one_instance_stays_private_on_the_other() {
    let redis = Redis::start();
    let p = pair(&redis, "");
    // alice writes to a customer through A with private@ in Bcc.
    let first = message(
        "alice@example.com",
        "customer@shop.example",
        "secret1@example.com",
        "",
    );
    let r = Sender::new(p.a.port("relay")).send(
        "alice@example.com",
        &["customer@shop.example", "private@example.com"],
        &first,
    );
    assert!(r.starts_with("250"), "{r}");
    // The customer's reply lands on B.
    let reply = message(
        "customer@shop.example",
        "alice@example.com",
        "reply1@shop.example",
        "In-Reply-To: <secret1@example.com>\r\n",
    );
    let r =
        Sender::new(p.b.port("mx")).send("customer@shop.example", &["alice@example.com"], &reply);
    assert!(r.starts_with("250"), "{r}");
    // And its follow-up, naming only the reply, on A again.
    let again = message(
        "customer@shop.example",
        "alice@example.com",
        "reply2@shop.example",
        "References: <reply1@shop.example>\r\n",
    );
    let r =
        Sender::new(p.a.port("mx")).send("customer@shop.example", &["alice@example.com"], &again);
    assert!(r.starts_with("250"), "{r}");
    settle(&p.team, 2);
    let team = p.team.by_rcpt();
    let rcpts: Vec<&str> = team.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        rcpts,
        ["alice@example.com", "alice@example.com"],
        "{}",
        p.b.log()
    );
    assert!(team
        .iter()
        .all(|(_, t)| !t.text().contains("X-Teamrelay-Archive")));
    assert_eq!(p.outside.wait(1, T).len(), 1);
    assert!(
        p.b.log().contains("part of a thread marked private"),
        "{}",
        p.b.log()
    );
}

#[test]
fn redis_down_means_451_and_acceptance_resumes_when_it_is_back() {
    let mut redis = Redis::start();
    let p = pair(&redis, "");
    // Before any mail, /metrics already tells the backend is up.
    let up = "teamrelay_memory_up{backend=\"redis\"} 1";
    assert!(wait_for(T, || scrape(p.b.port("admin")).contains(up)));
    let msg = |id: &str| message("customer@shop.example", "alice@example.com", id, "");
    let mut s = Sender::new(p.a.port("mx"));
    assert!(s
        .send(
            "customer@shop.example",
            &["alice@example.com"],
            &msg("before@shop.example")
        )
        .starts_with("250"));
    redis.stop();
    let started = std::time::Instant::now();
    let r = s.send(
        "customer@shop.example",
        &["alice@example.com"],
        &msg("during@shop.example"),
    );
    assert!(r.starts_with("451 4.3.0"), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The listener keeps answering new sessions meanwhile.
    let mut fresh = Client::connect(p.b.port("mx"));
    assert!(fresh.read_reply().starts_with("220"));
    assert!(fresh.cmd("EHLO x").starts_with("250"));
    let m = scrape(p.a.port("admin"));
    assert!(
        m.contains("teamrelay_memory_up{backend=\"redis\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("teamrelay_memory_errors_total{backend=\"redis\"}"),
        "{m}"
    );
    redis.spawn();
    // Resumes by itself: the next transactions are accepted (allow the reconnect a moment).
    let ok = wait_for(T, || {
        s.send(
            "customer@shop.example",
            &["alice@example.com"],
            &msg("after@shop.example"),
        )
        .starts_with("250")
    });
    assert!(ok, "{}", p.a.log());
    settle(&p.team, 2);
    let got = copies(&p.team);
    assert!(got.contains_key(&("before@shop.example".into(), "alice@example.com".into())));
    assert!(got.contains_key(&("after@shop.example".into(), "alice@example.com".into())));
    assert!(
        !got.keys().any(|(id, _)| id == "during@shop.example"),
        "{got:?}"
    );
    assert!(p.a.log().contains("routing memory unavailable"));
    let m = scrape(p.a.port("admin"));
    assert!(
        m.contains("teamrelay_memory_up{backend=\"redis\"} 1"),
        "{m}"
    );
}

fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The replay: a few hundred mixed transactions, alternating between the instances.
#[test]
fn a_replay_alternating_between_instances_has_no_duplicate_and_no_private_leak() {
    let redis = Redis::start();
    let p = pair(&redis, "");
    let (mut a_mx, mut b_mx) = (Sender::new(p.a.port("mx")), Sender::new(p.b.port("mx")));
    let mut a_relay = Sender::new(p.a.port("relay"));
    let cust = "customer@shop.example";
    let mut expected_team = 0;
    let mut txns = 0;
    for i in 0..90 {
        let (first, second) = if i % 2 == 0 {
            (&mut a_mx, &mut b_mx)
        } else {
            (&mut b_mx, &mut a_mx)
        };
        match i % 3 {
            0 => {
                // Split across both: originals to alice and carol, copies to bob and dan.
                let m = message(
                    cust,
                    "alice@example.com, carol@example.com",
                    &format!("s{i}@shop.example"),
                    "",
                );
                assert!(first
                    .send(cust, &["alice@example.com"], &m)
                    .starts_with("250"));
                assert!(second
                    .send(cust, &["carol@example.com"], &m)
                    .starts_with("250"));
                expected_team += 4;
                txns += 2;
            }
            1 => {
                // Private on A, the customer's replies on either instance.
                let m = message("alice@example.com", cust, &format!("p{i}@example.com"), "");
                let r = a_relay.send("alice@example.com", &[cust, "private@example.com"], &m);
                assert!(r.starts_with("250"), "{r}");
                let re = message(
                    cust,
                    "alice@example.com",
                    &format!("r{i}@shop.example"),
                    &format!("In-Reply-To: <p{i}@example.com>\r\n"),
                );
                assert!(second
                    .send(cust, &["alice@example.com"], &re)
                    .starts_with("250"));
                let re2 = message(
                    cust,
                    "bob@example.com",
                    &format!("q{i}@shop.example"),
                    &format!("References: <p{i}@example.com> <r{i}@shop.example>\r\n"),
                );
                assert!(first
                    .send(cust, &["bob@example.com"], &re2)
                    .starts_with("250"));
                expected_team += 2;
                txns += 3;
            }
            _ => {
                // The list first on one instance, the direct Cc on the other.
                let m = message(
                    cust,
                    "sales@example.com",
                    &format!("l{i}@shop.example"),
                    "Cc: dan@example.com\r\n",
                );
                assert!(first
                    .send(cust, &["sales@example.com"], &m)
                    .starts_with("250"));
                assert!(second
                    .send(cust, &["dan@example.com"], &m)
                    .starts_with("250"));
                expected_team += 4;
                txns += 2;
            }
        }
    }
    assert!(txns >= 200, "{txns}");
    settle(&p.team, expected_team);
    let got = copies(&p.team);
    let dup: Vec<_> = got.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dup.is_empty(), "duplicates: {dup:?}");
    assert_eq!(total(&p.team), expected_team);
    let leaks: Vec<String> = p
        .team
        .txns()
        .iter()
        .filter(|t| {
            let id = message_id_of(t);
            (id.starts_with('p') || id.starts_with('r') || id.starts_with('q'))
                && t.text().contains("X-Teamrelay-Archive")
        })
        .map(message_id_of)
        .collect();
    assert!(leaks.is_empty(), "private threads archived: {leaks:?}");
}

/// §9 states live in Redis too: an absence set through one instance's config, an owner
/// recorded on A, a reply remembered on B — each seen by the other instance.
#[test]
fn owners_absences_and_recent_replies_are_shared_between_instances() {
    let redis = Redis::start();
    let p = pair(&redis, "cover = \"dan@example.com\"");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_teamrelay"))
        .args(["away", "--config"])
        .arg(&p.a.config)
        .args([
            "bob@example.com",
            "--until",
            "2099-12-31",
            "--cover",
            "carol@example.com",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cust = "customer@shop.example";
    // The customer writes to bob through B: carol covers.
    let m = message(cust, "bob@example.com", "x1@shop.example", "");
    assert!(Sender::new(p.b.port("mx"))
        .send(cust, &["bob@example.com"], &m)
        .starts_with("250"));
    // alice opens a thread through A; the customer's reply through B names her as owner.
    let open = message("alice@example.com", cust, "x2@example.com", "");
    assert!(Sender::new(p.a.port("relay"))
        .send("alice@example.com", &[cust], &open)
        .starts_with("250"));
    let reply = message(
        cust,
        "alice@example.com",
        "x3@shop.example",
        "In-Reply-To: <x2@example.com>\r\n",
    );
    assert!(Sender::new(p.b.port("mx"))
        .send(cust, &["alice@example.com"], &reply)
        .starts_with("250"));
    // carol answers x3 through A, then dan through B without seeing it: a notice for dan.
    let carol = message(
        "carol@example.com",
        cust,
        "x4@example.com",
        "In-Reply-To: <x3@shop.example>\r\n",
    );
    assert!(Sender::new(p.a.port("relay"))
        .send("carol@example.com", &[cust], &carol)
        .starts_with("250"));
    let dan = message(
        "dan@example.com",
        cust,
        "x5@example.com",
        "In-Reply-To: <x3@shop.example>\r\n",
    );
    assert!(Sender::new(p.b.port("relay"))
        .send("dan@example.com", &[cust], &dan)
        .starts_with("250"));
    let find = |pred: &dyn Fn(&Txn) -> bool| wait_for(T, || p.team.txns().iter().any(pred));
    assert!(
        find(&|t| t.rcpts == ["carol@example.com"]
            && t.text()
                .contains("X-Teamrelay-Cover: bob@example.com away until 2099-12-31")),
        "no cover on B\n{}",
        p.b.log()
    );
    assert!(
        find(&|t| message_id_of(t) == "x3@shop.example"
            && t.text().contains("X-Teamrelay-Owner: alice@example.com")),
        "no owner header on B\n{}",
        p.b.log()
    );
    assert!(
        find(&|t| t.rcpts == ["dan@example.com"]
            && t.text().contains("X-Teamrelay-Notice: collision")
            && t.text().contains("carol@example.com answered")),
        "no collision notice on B\n{}",
        p.b.log()
    );
}

/// A Redis that answers too slowly counts as down: `451` within the bound, then fine.
#[test]
fn a_stalled_redis_costs_a_451_within_the_bound() {
    use std::io::Write;
    let redis = Redis::start();
    let p = pair(&redis, "");
    let msg = |id: &str| message("customer@shop.example", "alice@example.com", id, "");
    let mut s = Sender::new(p.a.port("mx"));
    assert!(s
        .send(
            "customer@shop.example",
            &["alice@example.com"],
            &msg("slow0@shop.example")
        )
        .starts_with("250"));
    // CLIENT PAUSE holds every other client's commands for four seconds.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", redis.port)).unwrap();
    c.write_all(b"CLIENT PAUSE 4000 ALL\r\n").unwrap();
    thread::sleep(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let r = s.send(
        "customer@shop.example",
        &["alice@example.com"],
        &msg("slow1@shop.example"),
    );
    let took = started.elapsed();
    assert!(r.starts_with("451 4.3.0"), "{r}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    let ok = wait_for(T, || {
        s.send(
            "customer@shop.example",
            &["alice@example.com"],
            &msg("slow2@shop.example"),
        )
        .starts_with("250")
    });
    assert!(ok, "{}", p.a.log());
}
