//! Validation: each bad file and the exact error an administrator sees.

use std::path::Path;

use super::*;

const GOOD: &str = r#"[team]
domains = ["example.com"]

[[listen]]
address = "127.0.0.1:2525"

[deliver]
team = "smtp://127.0.0.1:2600"
outside = "smtp://127.0.0.1:2601"

[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com"]
"#;

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new("lists.toml")) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn the_good_file_and_the_sample_load() {
    assert!(errors(GOOD).is_empty());
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("lists.toml");
    let c = load(&sample).expect("the sample lists.toml is valid");
    assert_eq!(c.team.domains, ["example.com"]);
    assert!(c
        .list(&"customers-archive@example.com".parse().unwrap())
        .unwrap()
        .is_archive());
    // Relative paths are relative to the file's folder.
    assert_eq!(
        c.server.spool,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("spool")
    );
}

// Each refused file and its exact error is a fixture in tests/configs/bad/ (run by
// tests/config_fixtures.rs through the real `teamrelay check`); here only what loads.

#[test]
fn archive_of_takes_lists_team_domains_and_team_addresses() {
    let ok_archive = format!(
        "{GOOD}\n[[list]]\naddress = \"archive@example.com\"\nmembers = [\"carol@example.com\"]\narchive_of = [\"sales@example.com\", \"*@example.com\", \"dan@example.com\"]\n"
    );
    assert!(errors(&ok_archive).is_empty(), "{:?}", errors(&ok_archive));
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = parse(GOOD, Path::new("lists.toml")).unwrap();
    assert_eq!(c.server.max_message_size, 35 * 1024 * 1024);
    assert_eq!(c.server.max_recipients, 100);
    assert_eq!(c.server.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.deliver.retry.len(), 5);
    assert_eq!(c.deliver.max_queue_time, Duration::from_secs(5 * 86400));
    assert_eq!(c.team.private_memory, Duration::from_secs(90 * 86400));
    assert_eq!(c.listen[0].mode, Mode::Mx);
    assert_eq!(c.listen[0].protocol, Protocol::Smtp);
    assert_eq!(c.listen[0].tls, ListenTls::None);
    assert!(c.is_known_mailbox(&"anyone@example.com".parse().unwrap()));
}

#[test]
fn outside_mx_with_a_resolver() {
    let outside = "outside = \"smtp://127.0.0.1:2601\"";
    let mx = GOOD.replace(outside, "outside = \"mx\"\nresolver = \"127.0.0.1:5353\"");
    let c = parse(&mx, Path::new("lists.toml")).expect("valid");
    assert_eq!(c.deliver.outside, Target::Mx);
    assert_eq!(c.deliver.resolver, Some("127.0.0.1:5353".parse().unwrap()));
    assert_eq!(
        parse(GOOD, Path::new("lists.toml"))
            .unwrap()
            .deliver
            .resolver,
        None
    );
}
