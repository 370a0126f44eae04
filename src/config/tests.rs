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

#[test]
fn each_problem_names_file_line_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        // (replace this, with this, expected error)
        ("\"bob@example.com\"]", "\"bob@\"]", "lists.toml:13: list \"sales@example.com\": member \"bob@\" is not an email address (local part and domain must not be empty)"),
        ("[[list]]\naddress = \"sales@example.com\"", "[[list]]\naddress = \"sales@elsewhere.example\"", "lists.toml:12: list \"sales@elsewhere.example\": a list address must be in team.domains"),
        ("domains = [\"example.com\"]", "domains = [\"example.com\"]\ndomian = 1", "lists.toml:3: unknown field `domian`"),
        ("[deliver]", "[deliver]\nretry = [\"5x\"]", "lists.toml:8: deliver.retry: \"5x\" has unit \"x\"; use s, m, h or d (e.g. \"30s\")"),
        ("team = \"smtp://127.0.0.1:2600\"", "team = \"ftp://x:1\"", "lists.toml:8: deliver.team: \"ftp://x:1\": unknown scheme \"ftp\"; use smtp, smtp+starttls, smtps, lmtp, lmtp+unix or maildir"),
        ("address = \"127.0.0.1:2525\"", "address = \"127.0.0.1:2525\"\nmode = \"submission\"\ntls = \"starttls\"", "lists.toml:4: listen[0]: uses TLS but there is no [tls] section with cert and key"),
        ("address = \"127.0.0.1:2525\"", "address = \"0.0.0.0:587\"\nmode = \"submission\"", "lists.toml:4: listen[0]: a submission listener without TLS is only allowed on a loopback address (passwords would travel in clear)"),
        ("address = \"127.0.0.1:2525\"", "address = \"127.0.0.1:2525\"\nmode = \"relay\"\nallow = [\"10.0.0.0/33\"]", "lists.toml:7: listen[0]: allow: \"10.0.0.0/33\" has a bad prefix length"),
        ("address = \"127.0.0.1:2525\"", "address = \"localhost\"", "lists.toml:5: listen[0]: address \"localhost\" is not ip:port"),
        ("[deliver]", "[admin]\nlisten = \"0.0.0.0:9025\"\n\n[deliver]", "lists.toml:8: admin.listen: must be a loopback address (metrics and queue control are not for the world)"),
        ("domains = [\"example.com\"]", "domains = [\"example.com\"]\nprivate_address = \"private@elsewhere.example\"", "lists.toml:3: team.private_address: private@elsewhere.example is not in team.domains"),
        ("domains = [\"example.com\"]", "domains = [\"example.com\"", "lists.toml:4: missing comma between array elements"),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let got = errors(&GOOD.replacen(from, to, 1));
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "want {want:?}\ngot {got:#?}"
        );
    }
}

#[test]
fn nested_lists_must_not_form_a_cycle() {
    let text = format!(
        "{GOOD}\n[[list]]\naddress = \"a@example.com\"\nmembers = [\"b@example.com\"]\n\n[[list]]\naddress = \"b@example.com\"\nmembers = [\"a@example.com\"]\n"
    );
    let got = errors(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0], "lists.toml:16: list \"a@example.com\": nested lists form a cycle: a@example.com → b@example.com → a@example.com");
}

#[test]
fn archive_lists_and_duplicates() {
    let dup = format!(
        "{GOOD}\n[[list]]\naddress = \"SALES@example.com\"\nmembers = [\"carol@example.com\"]\n"
    );
    assert!(
        errors(&dup).iter().any(|e| e.contains("is defined twice")),
        "{:?}",
        errors(&dup)
    );
    let bad_archive = format!(
        "{GOOD}\n[[list]]\naddress = \"archive@example.com\"\nmembers = [\"carol@example.com\"]\narchive_of = [\"*@other.example\", \"bob@\"]\n"
    );
    let got = errors(&bad_archive);
    assert!(
        got.iter()
            .any(|e| e.contains("archive_of \"*@other.example\" is not a team domain")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|e| e.contains("archive_of \"bob@\" is not an address, list or *@domain")),
        "{got:?}"
    );
    let ok_archive = format!(
        "{GOOD}\n[[list]]\naddress = \"archive@example.com\"\nmembers = [\"carol@example.com\"]\narchive_of = [\"sales@example.com\", \"*@example.com\", \"dan@example.com\"]\n"
    );
    assert!(errors(&ok_archive).is_empty(), "{:?}", errors(&ok_archive));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = GOOD
        .replace("\"bob@example.com\"]", "\"bob@\", \"carol@@x\"]")
        .replace("team = \"smtp://127.0.0.1:2600\"", "team = \"nope\"")
        .replace(
            "address = \"127.0.0.1:2525\"",
            "address = \"127.0.0.1:2525\"\nmode = \"smtp\"",
        );
    let got = errors(&text);
    assert_eq!(got.len(), 4, "{got:#?}");
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

    let bad = GOOD.replace(outside, "outside = \"mx\"\nresolver = \"dns.example\"");
    let got = errors(&bad);
    assert!(
        got.iter().any(|e| e
            .starts_with("lists.toml:10: deliver.resolver: \"dns.example\" is not a DNS server")),
        "{got:#?}"
    );
    let team_mx = GOOD.replace("team = \"smtp://127.0.0.1:2600\"", "team = \"mx\"");
    let got = errors(&team_mx);
    assert!(
        got.iter().any(
            |e| e.starts_with("lists.toml:8: deliver.team: \"mx\" is only for deliver.outside")
        ),
        "{got:#?}"
    );
}
