//! SPEC §6 "Files are private": the spool and Maildir deliveries are owner-only
//! (`0600` files, `0700` directories) even when teamrelay is started with a permissive
//! umask, and Maildir messages use LF line endings. Its own test binary, because it
//! changes the umask of the process that starts the relay.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(20);

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file and directory under `dir`, with its mode.
fn walk(dir: &Path, out: &mut Vec<(std::path::PathBuf, u32)>) {
    out.push((dir.to_path_buf(), mode(dir)));
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push((p.clone(), mode(&p)));
        }
    }
}

#[test]
fn spec6_spool_and_maildir_are_owner_only_with_lf_line_endings() {
    // SAFETY: umask only swaps the file-creation mask; this test binary has no other test.
    unsafe { libc::umask(0o000) };
    // Team mail goes to a Maildir; outside mail to a port nobody listens on, so its
    // body stays in the spool to be looked at.
    let config = base_config("").replace(
        "team = \"smtp://127.0.0.1:{port:upteam}\"",
        "team = \"maildir://{dir}/mail\"",
    );
    let relay = Relay::start(&config);
    let inbound = message(
        "customer@shop.example",
        "alice@example.com",
        "pf1@shop.example",
        "",
    );
    send_ok(
        relay.port("mx"),
        "customer@shop.example",
        &["alice@example.com"],
        &inbound,
    );
    let outbound = message(
        "alice@example.com",
        "customer@shop.example",
        "pf2@example.com",
        "",
    );
    send_ok(
        relay.port("relay"),
        "alice@example.com",
        &["customer@shop.example"],
        &outbound,
    );

    let mail = relay.dir.path().join("mail");
    let alice = maildir(&mail, "alice@example.com");
    assert!(wait_for(T, || std::fs::read_dir(&alice)
        .map(|d| d.count() > 0)
        .unwrap_or(false)));
    let spool = relay.dir.path().join("spool");
    // The outbound message waits in the spool (no outside upstream): its body and
    // record are in a segment, past the segment's 8-byte header.
    assert!(wait_for(T, || std::fs::read_dir(spool.join("segments"))
        .map(|d| d.flatten().any(|f| f.metadata().is_ok_and(|m| m.len() > 8)))
        .unwrap_or(false)));

    let mut entries = Vec::new();
    walk(&spool, &mut entries);
    walk(&mail, &mut entries);
    assert!(entries.len() > 6, "{entries:?}");
    for (path, m) in &entries {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        // The admin socket is the one file others may need to reach (its directory is
        // private anyway).
        if path.extension().is_some_and(|e| e == "sock") {
            continue;
        }
        assert_eq!(*m, want, "{} is {m:o}", path.display());
    }

    let file = std::fs::read_dir(&alice)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read(&file).unwrap();
    assert!(
        !text.windows(2).any(|w| w == b"\r\n"),
        "CRLF in the Maildir file"
    );
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("\nMessage-ID: <pf1@shop.example>\n"),
        "{text}"
    );
    assert!(text.ends_with("Hello.\n.leading dot\n"), "{text:?}");
}
