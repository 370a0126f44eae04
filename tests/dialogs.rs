//! SPEC §5 as wire dialogs (chasquid's t-12 shape): every `tests/dialogs/*.dialog` file is
//! one behaviour, replayed on a fresh connection to ONE real relay. Every failing file is
//! reported by name and line, not just the first. The format is in
//! `tests/dialogs/README.md`; in short:
//!
//! ```text
//! # SPEC §5: unknown command → 502 5.5.1          (header: the rule checked)
//! listener: mx                                    (optional: mx, relay, lmtp, submission, tap)
//! S: 220 relay.test ESMTP teamrelay               (the next reply's last line)
//! C: FOO                                          (sent with CRLF added)
//! S: 502 5.5.1                                    (code, enhanced code, optional text prefix)
//! ```

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Fewer files than this means the folder went missing, not that all is well.
const AT_LEAST: usize = 25;

/// One step of a dialog.
#[derive(Debug, PartialEq)]
enum Step {
    /// Bytes to send; consecutive sends go out in one write (a pipelined group).
    Send(Vec<u8>),
    /// The next reply: each `dash` line must match one of its lines (in order, the
    /// last line included), `last` is matched against its last line.
    Expect {
        line: usize,
        dash: Vec<String>,
        last: String,
    },
    /// The server closed the connection.
    Closed { line: usize },
}

/// A parsed `.dialog` file.
#[derive(Debug)]
struct Dialog {
    listener: String,
    steps: Vec<Step>,
}

/// Reads the format of the module doc; an error names the line.
fn parse(text: &str) -> Result<Dialog, String> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !header.starts_with('#') || !(header.contains("SPEC") || header.contains("RFC")) {
        return Err("1: the first line must be a # comment naming the SPEC or RFC rule".into());
    }
    let mut dialog = Dialog {
        listener: "mx".into(),
        steps: Vec::new(),
    };
    let mut dash: Vec<String> = Vec::new();
    for (n, line) in lines.by_ref() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (tag, rest) = line
            .split_once(':')
            .ok_or(format!("{n}: expected C:, R:, S: or listener:"))?;
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        if tag != "S" && !dash.is_empty() {
            return Err(format!("{n}: S: CODE- lines must end with an S: CODE line"));
        }
        match tag {
            "listener" if dialog.steps.is_empty() => dialog.listener = rest.trim().into(),
            "C" => {
                let mut bytes = unescape(rest).map_err(|e| format!("{n}: {e}"))?;
                bytes.extend_from_slice(b"\r\n");
                dialog.steps.push(Step::Send(bytes));
            }
            "R" => {
                let bytes = unescape(rest).map_err(|e| format!("{n}: {e}"))?;
                dialog.steps.push(Step::Send(bytes));
            }
            "S" if rest == "<closed>" => dialog.steps.push(Step::Closed { line: n }),
            "S" if rest.as_bytes().get(3) == Some(&b'-') => dash.push(rest.into()),
            "S" => dialog.steps.push(Step::Expect {
                line: n,
                dash: std::mem::take(&mut dash),
                last: rest.into(),
            }),
            _ => return Err(format!("{n}: unknown line {line:?}")),
        }
    }
    if !dash.is_empty() {
        return Err("S: CODE- lines at the end without their last line".into());
    }
    Ok(dialog)
}

/// `\r`, `\n`, `\t`, `\\`, `\xHH` (one byte) and `\{N:TEXT}` (TEXT up to the last `}`,
/// itself escaped, N times); everything else, UTF-8 included, is sent as written.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..i]);
        let esc = &rest[i + 1..];
        let (bytes, used) = match esc.chars().next() {
            Some('r') => (b"\r".to_vec(), 1),
            Some('n') => (b"\n".to_vec(), 1),
            Some('t') => (b"\t".to_vec(), 1),
            Some('\\') => (b"\\".to_vec(), 1),
            Some('x') => {
                let hex = esc.get(1..3).ok_or("\\x needs two hex digits")?;
                let b = u8::from_str_radix(hex, 16).map_err(|_| format!("bad \\x{hex}"))?;
                (vec![b], 3)
            }
            Some('{') => {
                let end = esc.rfind('}').ok_or("\\{ without }")?;
                let (count, text) = esc[1..end].split_once(':').ok_or("\\{N:TEXT}")?;
                let count: usize = count.parse().map_err(|_| format!("bad count {count:?}"))?;
                (unescape(text)?.repeat(count), end + 1)
            }
            other => return Err(format!("unknown escape \\{other:?}")),
        };
        out.extend_from_slice(&bytes);
        rest = &esc[used..];
    }
    out.extend_from_slice(rest.as_bytes());
    Ok(out)
}

/// Whether one reply line (`250 2.1.0 sender OK`) matches `want` (`250 2.1.0 sender`):
/// same code, the same enhanced code when `want` names one, and `want`'s text as a prefix
/// of the rest.
fn line_matches(want: &str, got: &str) -> bool {
    let (Some(want_code), Some(got_code)) = (want.get(..3), got.get(..3)) else {
        return false;
    };
    // The separator: `-` on a continuation line, a space (or nothing) on the last.
    let sep = |l: &str| l.get(3..4).unwrap_or(" ").to_string();
    if want_code != got_code || sep(want) != sep(got) {
        return false;
    }
    let want_rest = want.get(4..).unwrap_or("").trim_start();
    let got_rest = got.get(4..).unwrap_or("");
    let first = want_rest.split(' ').next().unwrap_or("");
    if is_enhanced(first) {
        let got_first = got_rest.split(' ').next().unwrap_or("");
        if got_first != first {
            return false;
        }
        let want_text = want_rest[first.len()..].trim_start();
        let got_text = got_rest[got_first.len()..].trim_start();
        return got_text.starts_with(want_text);
    }
    got_rest.starts_with(want_rest)
}

/// An RFC 3463 status code: class.subject.detail.
fn is_enhanced(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks a whole reply (CRLF-separated lines) against an `Expect` step.
fn reply_matches(dash: &[String], last: &str, reply: &str) -> bool {
    let lines: Vec<&str> = reply.split("\r\n").filter(|l| !l.is_empty()).collect();
    let Some((final_line, continuation)) = lines.split_last() else {
        return false;
    };
    if final_line.as_bytes().get(3) == Some(&b'-') || !line_matches(last, final_line) {
        return false;
    }
    // A dash expectation names a line of the reply wherever it stands: which capability
    // an EHLO reply lists last is no contract. The last line is compared as a dash line.
    let last_as_dash = format!("{}-{}", &final_line[..3], final_line.get(4..).unwrap_or(""));
    let mut pending = continuation.iter().copied().chain([last_as_dash.as_str()]);
    dash.iter()
        .all(|want| pending.any(|got| line_matches(want, got)))
}

/// Replays one dialog; the first mismatch, as `LINE: expected …, got …`.
fn replay(dialog: &Dialog, port: u16) -> Result<(), String> {
    let mut c = Client::connect(port);
    let mut pending: Vec<u8> = Vec::new();
    for step in &dialog.steps {
        match step {
            Step::Send(bytes) => pending.extend_from_slice(bytes),
            Step::Expect { line, dash, last } => {
                c.send(&std::mem::take(&mut pending));
                let reply = c.read_reply();
                if !reply_matches(dash, last, &reply) {
                    let want = dash.iter().chain([last]).cloned().collect::<Vec<_>>();
                    return Err(format!("{line}: expected {want:?}, got {reply:?}"));
                }
            }
            Step::Closed { line } => {
                c.send(&std::mem::take(&mut pending));
                if !c.closed() {
                    return Err(format!("{line}: expected the connection closed"));
                }
            }
        }
    }
    c.send(&pending);
    Ok(())
}

/// The dialogs' relay: the harness's base config, plus a second team domain whose
/// mailboxes are listed (for 550 5.1.1), an LMTP listener, a loopback submission
/// listener with alice's account (password "pw"), and a tap no loopback client may use.
fn dialog_config() -> String {
    let extra = format!(
        r#"
[[listen]]
address = "127.0.0.1:{{port:lmtp}}"
mode = "mx"
protocol = "lmtp"

[[listen]]
address = "127.0.0.1:{{port:submission}}"
mode = "submission"

[[listen]]
address = "127.0.0.1:{{port:tap}}"
mode = "tap"
allow = ["192.0.2.0/24"]

[[user]]
name = "alice"
password_hash = "{hash}"
addresses = ["alice@example.com"]
"#,
        hash = passwd("pw")
    );
    base_config("mailboxes = [\"*@example.com\", \"alice@small.example\"]")
        .replace(
            "domains = [\"example.com\"]",
            "domains = [\"example.com\", \"small.example\"]",
        )
        .replace("[deliver]", &format!("{extra}\n[deliver]"))
}

fn dialog_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dialogs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dialog"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_dialog_file_holds() {
    let relay = Relay::start(&dialog_config());
    let _team = Upstream::smtp(relay.port("upteam"));
    let outside = Upstream::smtp(relay.port("upout"));
    let files = dialog_files();
    assert!(files.len() >= AT_LEAST, "only {} dialogs", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let outcome = parse(&text).and_then(|d| match relay.ports.get(&d.listener) {
            Some(&port) => replay(&d, port),
            None => Err(format!("no listener {:?}", d.listener)),
        });
        if let Err(e) = outcome {
            failures.push(format!("{name}:{e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} dialogs failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    // No dialog sends a message outward: anything the outside got was relayed by mistake.
    std::thread::sleep(Duration::from_millis(300));
    assert!(outside.txns().is_empty(), "{:?}", outside.txns());
}

/// The matcher itself: a wrong code, enhanced code or text, a missing continuation line
/// and a missing last line each fail.
#[test]
fn the_matcher_rejects_what_differs() {
    let ok = "554 5.7.1 relay access denied\r\n";
    assert!(reply_matches(&[], "554", ok));
    assert!(reply_matches(&[], "554 5.7.1", ok));
    assert!(reply_matches(&[], "554 5.7.1 relay access", ok));
    assert!(!reply_matches(&[], "550 5.7.1", ok));
    assert!(!reply_matches(&[], "554 5.7.0", ok));
    assert!(!reply_matches(&[], "554 5.7.1 relay allowed", ok));
    assert!(!reply_matches(&[], "554", ""));
    let ehlo = "250-relay.test\r\n250-SIZE 100000\r\n250 CHUNKING\r\n";
    assert!(reply_matches(&["250-SIZE 100000".into()], "250", ehlo));
    assert!(reply_matches(
        &["250-relay.test".into(), "250-SIZE".into()],
        "250 CHUNKING",
        ehlo
    ));
    assert!(!reply_matches(&["250-STARTTLS".into()], "250", ehlo));
    assert!(!reply_matches(
        &["250-SIZE".into(), "250-relay.test".into()],
        "250",
        ehlo
    ));
    assert!(!reply_matches(&[], "250", "250-relay.test\r\n"));
    assert!(reply_matches(&["250-CHUNKING".into()], "250", ehlo));
    // An enhanced code in the reply that the expectation leaves out still matches on code.
    assert!(reply_matches(
        &[],
        "220 relay.test ESMTP",
        "220 relay.test ESMTP teamrelay\r\n"
    ));
}

#[test]
fn the_parser_reads_the_documented_format() {
    let d = parse("# SPEC §5: x\nlistener: relay\nS: 220\nC: A\\r\\x00\\{3:y}\nR: B\nS: 250-X\nS: 250 2.0.0\nS: <closed>\n").unwrap();
    assert_eq!(d.listener, "relay");
    assert_eq!(
        d.steps,
        [
            Step::Expect {
                line: 3,
                dash: vec![],
                last: "220".into()
            },
            Step::Send(b"A\r\x00yyy\r\n".to_vec()),
            Step::Send(b"B".to_vec()),
            Step::Expect {
                line: 7,
                dash: vec!["250-X".into()],
                last: "250 2.0.0".into()
            },
            Step::Closed { line: 8 },
        ]
    );
    assert!(parse("S: 220\n").is_err(), "no header");
    assert!(
        parse("# RFC 5321\nS: 250-X\nC: y\n").is_err(),
        "unfinished reply"
    );
    assert!(parse("# RFC 5321\nX: y\n").is_err());
}
