//! Crash-only correctness: a client sends continuously while the relay is killed with
//! SIGKILL at random moments and restarted, 50 times. Every message that got a `250`
//! must reach the upstream at least once; duplicates (the at-least-once window between
//! the upstream's acceptance and our record of it) are counted and reported.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;

const KILLS: usize = 50;

/// Sends one message over a fresh connection; `true` only on a `250` to the end of DATA.
fn send_one(port: u16, n: usize) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut w = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return false,
    };
    let mut r = BufReader::new(stream);
    let reply = |r: &mut BufReader<TcpStream>| -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    if !reply(&mut r).starts_with("220") {
        return false;
    }
    let steps = [
        "EHLO crash.test\r\n".to_string(),
        "MAIL FROM:<alice@example.com>\r\n".to_string(),
        "RCPT TO:<bob@example.com>\r\n".to_string(),
        "DATA\r\n".to_string(),
        format!("Subject: crash {n}\r\nMessage-ID: <cl-{n}@example.com>\r\n\r\nbody {n}\r\n.\r\n"),
    ];
    let want = ["250", "250", "250", "354", "250"];
    for (step, want) in steps.iter().zip(want) {
        if w.write_all(step.as_bytes()).is_err() || !reply(&mut r).starts_with(want) {
            return false;
        }
    }
    let _ = w.write_all(b"QUIT\r\n");
    true
}

/// A small deterministic pseudo-random sequence (xorshift), so failures can be replayed.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn fifty_kill_9_restarts_lose_no_acknowledged_message() {
    let mut relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    let port = relay.port("mx");
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, stop) = (acked.clone(), stop.clone());
        thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if send_one(port, n) {
                    acked.lock().unwrap().push(n);
                } else {
                    thread::sleep(Duration::from_millis(10));
                }
            }
        })
    };
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(20 + next(&mut seed) % 180));
        relay.kill9();
        relay.spawn();
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= KILLS,
        "the client got through between kills: {} acked",
        acked.len()
    );

    let id_of = |t: &Txn| -> Option<usize> {
        let text = t.text();
        let start = text.find("Message-ID: <cl-")? + "Message-ID: <cl-".len();
        text[start..].split('@').next()?.parse().ok()
    };
    let all_arrived = wait_for(Duration::from_secs(90), || {
        let got: std::collections::HashSet<usize> = team.txns().iter().filter_map(id_of).collect();
        acked.iter().all(|n| got.contains(n))
    });
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for t in team.txns() {
        if let Some(n) = id_of(&t) {
            *counts.entry(n).or_default() += 1;
        }
    }
    let missing: Vec<&usize> = acked.iter().filter(|n| !counts.contains_key(n)).collect();
    let duplicates = counts.values().filter(|&&c| c > 1).count();
    println!(
        "crash loop: {KILLS} kills, {} acknowledged, {} delivered, {} missing, {duplicates} duplicated",
        acked.len(),
        counts.len(),
        missing.len()
    );
    assert!(
        all_arrived && missing.is_empty(),
        "lost acknowledged messages: {missing:?}\n{}",
        relay.log()
    );
}
