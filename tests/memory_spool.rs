//! SPEC §4 with the default (spool) memory: the two halves of a split message arriving
//! on one instance at the same instant still give each member one copy — the copy check
//! and its record are one step there too.

mod common;

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use common::*;

#[test]
fn concurrent_halves_of_a_split_message_give_each_member_one_copy() {
    let relay = Relay::start(&base_config(""));
    let team = Upstream::smtp(relay.port("upteam"));
    let port = relay.port("mx");
    for i in 0..10 {
        let msg = message(
            "customer@shop.example",
            "alice@example.com, carol@example.com",
            &format!("half{i}@shop.example"),
            "",
        );
        let halves: Vec<_> = ["alice@example.com", "carol@example.com"]
            .into_iter()
            .map(|to| {
                let m = msg.clone();
                thread::spawn(move || send_py(port, "customer@shop.example", &[to], &m))
            })
            .collect();
        for h in halves {
            assert!(h.join().unwrap().success);
        }
    }
    wait_for(Duration::from_secs(20), || team.by_rcpt().len() >= 40);
    thread::sleep(Duration::from_millis(800));
    let mut n: HashMap<(String, String), usize> = HashMap::new();
    for (rcpt, t) in team.by_rcpt() {
        let id = t
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
            .unwrap_or_default();
        *n.entry((id, rcpt)).or_default() += 1;
    }
    let dup: Vec<_> = n.iter().filter(|(_, &c)| c > 1).collect();
    assert!(dup.is_empty(), "duplicates: {dup:?}\n{}", relay.log());
    assert_eq!(n.len(), 40, "{n:?}");
}
