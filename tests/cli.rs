//! SPEC §7: the commands an administrator runs before going live, on the real binary.

mod common;

use std::path::Path;

use common::teamrelay;

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

/// Writes `extra` after the sample config into a temp dir; returns (dir, path).
fn sample_plus(extra: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lists.toml");
    let text = std::fs::read_to_string(sample())
        .unwrap()
        .replace("./mail", &dir.path().join("mail").display().to_string())
        .replace("./spool", &dir.path().join("spool").display().to_string());
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    (dir, path.display().to_string())
}

fn line_of(path: &str, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .position(|l| l.contains(needle))
        .unwrap()
        + 1
}

/// SPEC §2: the deploy sample's placeholder hash can never log anyone in: `check` fails
/// with file, line and key.
#[test]
fn check_refuses_a_placeholder_password_hash() {
    let (_dir, path) = sample_plus(
        "[[user]]\nname = \"alice\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$REPLACE$WITH_OUTPUT_OF_teamrelay_passwd\"\naddresses = [\"alice@example.com\"]\n",
    );
    let (code, out, err) = teamrelay(&["check", "--config", &path]);
    assert_eq!(code, 2, "{out}");
    let want = format!(
        "{path}:{}: user \"alice\": password_hash is not a usable argon2 hash",
        line_of(&path, "REPLACE")
    );
    assert!(err.contains(&want), "want {want}\n{err}");
}

/// SPEC §2: a `password_file` that does not exist fails `check` (it would otherwise
/// show up as deferred mail days later).
#[test]
fn check_refuses_a_missing_password_file() {
    let text = std::fs::read_to_string(sample()).unwrap();
    let deliver = text
        .find("\n[deliver]\n")
        .expect("the sample has [deliver]")
        + 1;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lists.toml");
    let text = format!(
        "{}[deliver]\noutside_auth = {{ username = \"relay@example.com\", password_file = \"/nonexistent/relay.pass\" }}\n{}",
        &text[..deliver],
        &text[deliver + "[deliver]\n".len()..]
    )
    .replace("./mail", &dir.path().join("mail").display().to_string());
    std::fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    let (code, _, err) = teamrelay(&["check", "--config", &path]);
    assert_eq!(code, 2, "{err}");
    let want = format!(
        "{path}:{}: deliver.outside_auth.password_file: cannot read \"/nonexistent/relay.pass\"",
        line_of(&path, "/nonexistent/relay.pass")
    );
    assert!(err.contains(&want), "want {want}\n{err}");
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// A self-signed certificate for `mail.example.com` valid for `days` more days.
fn cert_expiring_in(dir: &Path, days: i64) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mail.example.com".to_string()]).unwrap();
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 86400;
    let (y, m, d) = civil(today - 30);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil(today + days);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// `check` prints the certificate's names and expiry, and warns (exit 0) when it
/// expires within 14 days.
#[test]
fn check_prints_certificate_names_and_warns_before_expiry() {
    for (days, warned) in [(90, false), (5, true)] {
        let (dir, path) = sample_plus("");
        cert_expiring_in(dir.path(), days);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = if text.contains("\n[tls]") {
            text
        } else {
            let first_list = text.find("[[list]]").unwrap();
            format!(
                "{}[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\n{}",
                &text[..first_list],
                &text[first_list..]
            )
        };
        std::fs::write(&path, text).unwrap();
        let (code, out, err) = teamrelay(&["check", "--config", &path]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("names mail.example.com; expires "), "{out}");
        assert!(
            out.contains(&format!("(in {} days)", days - 1))
                || out.contains(&format!("(in {days} days)")),
            "{out}"
        );
        assert_eq!(
            err.contains("warning:") && err.contains("expires in"),
            warned,
            "{err}"
        );
    }
}

/// SPEC §3: the null-sender rule is named as such, even with a customer in the headers.
#[test]
fn route_names_the_null_sender_rule() {
    let (code, out, _) = teamrelay(&[
        "route",
        "--config",
        &sample(),
        "--from",
        "<>",
        "--to",
        "alice@example.com",
        "--header-cc",
        "customer@shop.example",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("No archive copies: null sender (never customer-facing)."),
        "{out}"
    );
}
