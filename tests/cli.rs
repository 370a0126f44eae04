//! SPEC §7: the commands an administrator runs before going live, on the real binary.

mod common;

use std::path::Path;
use std::process::Command;

fn teamrelay(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_teamrelay"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("lists.toml")
        .display()
        .to_string()
}

#[test]
fn check_summarizes_the_sample() {
    let (code, out, err) = teamrelay(&["check", "--config", &sample()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Team domains: example.com"), "{out}");
    assert!(
        out.contains("127.0.0.1:2525") && out.contains("mx"),
        "{out}"
    );
    assert!(
        out.contains("sales@example.com → alice@example.com, bob@example.com"),
        "{out}"
    );
    assert!(out.contains("customers-archive@example.com → alice@example.com, bob@example.com, carol@example.com, dan@example.com"), "{out}");
    assert!(
        out.contains("copies customer mail of: *@example.com"),
        "{out}"
    );
    assert!(err.is_empty());
}

#[test]
fn check_refuses_a_bad_file_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lists.toml");
    let text = std::fs::read_to_string(sample()).unwrap().replace(
        "members = [\"alice@example.com\", \"bob@example.com\"]\n",
        "members = [\"alice@example.com\", \"bob@\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let (code, out, err) = teamrelay(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    let line = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .position(|l| l.contains("\"bob@\""))
        .unwrap()
        + 1;
    let want = format!(
        "{}:{line}: list \"sales@example.com\": member \"bob@\" is not an email address",
        path.display()
    );
    assert!(err.contains(&want), "want {want}\n{err}");
    assert!(err.contains("1 problem found"), "{err}");
}

#[test]
fn a_missing_file_and_bad_usage_exit_2() {
    let (code, _, err) = teamrelay(&["check", "--config", "/nonexistent/lists.toml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/lists.toml: cannot read"),
        "{err}"
    );
    let (code, _, _) = teamrelay(&["frobnicate"]);
    assert_eq!(code, 2);
    let (code, _, err) = teamrelay(&[
        "route",
        "--config",
        &sample(),
        "--from",
        "bad@",
        "--to",
        "alice@example.com",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--from \"bad@\" is not an email address"),
        "{err}"
    );
}

#[test]
fn route_explains_a_customer_message() {
    let (code, out, err) = teamrelay(&[
        "route",
        "--config",
        &sample(),
        "--from",
        "customer@shop.example",
        "--to",
        "alice@example.com",
    ]);
    assert_eq!(code, 0, "{err}");
    let original = out.find("original:").unwrap();
    let copy = out
        .find("archive copy from customers-archive@example.com:")
        .unwrap();
    assert!(out[original..copy].contains("alice@example.com"), "{out}");
    for who in ["bob@example.com", "carol@example.com", "dan@example.com"] {
        assert!(out[copy..].contains(who), "{who}: {out}");
    }
    assert!(
        out.contains("envelope sender customers-archive-bounces@example.com"),
        "{out}"
    );
    assert!(out.contains("X-Teamrelay-Direction: inbound"), "{out}");
    assert!(
        out.contains("alice@example.com: already a recipient of the message"),
        "{out}"
    );
}

#[test]
fn route_says_internal_mail_gets_no_copies() {
    let (code, out, _) = teamrelay(&[
        "route",
        "--config",
        &sample(),
        "--from",
        "alice@example.com",
        "--to",
        "bob@example.com",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("No archive copies: internal mail (no external participant)."),
        "{out}"
    );
    let (_, out, _) = teamrelay(&[
        "route",
        "--config",
        &sample(),
        "--from",
        "alice@example.com",
        "--to",
        "customer@shop.example",
        "--header-cc",
        "dan@example.com",
    ]);
    assert!(
        out.contains("dan@example.com: named in From/To/Cc"),
        "{out}"
    );
    let (_, out, _) = teamrelay(&[
        "route",
        "--config",
        &sample(),
        "--from",
        "alice@example.com",
        "--to",
        "customer@shop.example",
        "--to",
        "private@example.com",
    ]);
    assert!(
        out.contains("No archive copies: addressed to the private address."),
        "{out}"
    );
}

#[test]
fn passwd_prints_an_argon2id_hash() {
    let hash = common::passwd("correct horse");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert_ne!(
        hash,
        common::passwd("correct horse"),
        "a fresh salt each time"
    );
}
