//! The sample configurations in `deploy/` are usable as shipped: `teamrelay check`
//! accepts each of them, and the Postfix + Dovecot recipe's Postfix files agree with its
//! `lists.postfix-dovecot.toml` (every address teamrelay answers for is one Postfix
//! accepts, and the ports meet), so the recipe cannot drift from the config.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn check(file: &Path) -> (i32, String, String) {
    common::teamrelay(&["check".as_ref(), "--config".as_ref(), file.as_os_str()])
}

#[test]
fn check_accepts_every_deploy_sample() {
    let names = [
        "lists.toml",
        "lists.workspace.toml",
        "lists.m365.toml",
        "lists.postfix-dovecot.toml",
        "lists.tap.toml",
    ];
    for name in names {
        let (code, out, err) = check(&deploy().join(name));
        assert_eq!(code, 0, "teamrelay check refused deploy/{name}:\n{err}");
        assert!(out.contains(": OK"), "deploy/{name}: no OK line in\n{out}");
    }
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy().join(name)).unwrap_or_else(|e| panic!("deploy/{name}: {e}"))
}

/// The left-hand keys of a Postfix lookup table (comments and blank lines skipped).
fn table_keys(name: &str) -> BTreeSet<String> {
    read(name)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_lowercase)
        .collect()
}

fn strings(value: Option<&toml::Value>) -> Vec<String> {
    value
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

/// Every address teamrelay answers for in a config: mailboxes, lists, their -bounces
/// addresses and the private address.
fn teamrelay_addresses(config: &toml::Table) -> BTreeSet<String> {
    let team = config["team"].as_table().unwrap();
    let mut all: BTreeSet<String> = strings(team.get("mailboxes")).into_iter().collect();
    if let Some(p) = team.get("private_address").and_then(|v| v.as_str()) {
        all.insert(p.to_lowercase());
    }
    for list in config["list"].as_array().unwrap() {
        let address = list["address"].as_str().unwrap().to_lowercase();
        let (local, domain) = address.split_once('@').unwrap();
        all.insert(format!("{local}-bounces@{domain}"));
        all.insert(address);
    }
    all
}

#[test]
fn postfix_accepts_exactly_what_teamrelay_answers_for() {
    let config: toml::Table = read("lists.postfix-dovecot.toml").parse().unwrap();
    let want = teamrelay_addresses(&config);
    let have = table_keys("postfix-dovecot/teamrelay_recipients");
    assert_eq!(
        have, want,
        "postfix-dovecot/teamrelay_recipients must list every address of lists.postfix-dovecot.toml"
    );
    // Postfix's own bounces for teamrelay's non-mailbox addresses go to teamrelay.
    let mailboxes: BTreeSet<String> = strings(config["team"].get("mailboxes"))
        .into_iter()
        .collect();
    let routed: BTreeSet<String> = want.difference(&mailboxes).cloned().collect();
    assert_eq!(table_keys("postfix-dovecot/teamrelay_transport"), routed);
    // The logins Postfix knows are the mailboxes.
    assert_eq!(table_keys("postfix-dovecot/sender_logins"), mailboxes);
}

/// The port of a `host:port` or `scheme://host:port` string.
fn port(s: &str) -> String {
    s.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

#[test]
fn postfix_filter_ports_meet_teamrelays_listeners() {
    let config: toml::Table = read("lists.postfix-dovecot.toml").parse().unwrap();
    let master = read("postfix-dovecot/master.cf");
    for listen in config["listen"].as_array().unwrap() {
        let addr = listen["address"].as_str().unwrap();
        let filter = format!("content_filter=teamrelay:[127.0.0.1]:{}", port(addr));
        assert!(
            master.contains(&filter),
            "master.cf has no {filter} for listener {addr}"
        );
    }
    let deliver = config["deliver"].as_table().unwrap();
    for key in ["team", "outside"] {
        let url = deliver[key].as_str().unwrap();
        let entry = format!("\n127.0.0.1:{} inet", port(url));
        assert!(
            master.contains(&entry),
            "deliver.{key} = {url}: no re-injection smtpd on that port"
        );
    }
    let reinject = master
        .split("\n127.0.0.1:10026 inet")
        .nth(1)
        .expect("re-injection entry");
    let reinject = reinject.split("\n#").next().unwrap();
    assert!(
        reinject.contains("-o content_filter=\n"),
        "the re-injection port must clear content_filter"
    );
}
