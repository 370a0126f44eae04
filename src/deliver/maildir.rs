//! Maildir delivery: `DIR/domain/local/{tmp,new,cur}`, written to `tmp`, fsync'd, then
//! renamed into `new` (the Maildir protocol: a reader never sees half a message).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::outcome::Outcome;

/// Where `local@domain`'s Maildir is under `root`. Characters that could escape the
/// tree or confuse a shell are replaced; the parser already refuses `..` and `/` in
/// domains.
pub fn mailbox_dir(root: &Path, address: &str) -> PathBuf {
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, "unknown"));
    let clean = |s: &str| -> String {
        let s: String = s
            .to_lowercase()
            .chars()
            .map(|c| {
                if c == '/' || c == '\\' || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        if s.starts_with('.') {
            format!("_{s}")
        } else {
            s
        }
    };
    root.join(clean(domain)).join(clean(local))
}

/// Delivers one message file to each recipient; blocking, run it off the async threads.
pub fn deliver(
    root: &Path,
    rcpts: &[String],
    prefix: &str,
    body: &Path,
    id: &str,
) -> Vec<(String, Outcome)> {
    rcpts
        .iter()
        .map(|r| {
            let outcome = match deliver_one(&mailbox_dir(root, r), prefix, body, id) {
                Ok(()) => Outcome::Delivered,
                Err(e) => Outcome::Deferred(format!("maildir: {e}")),
            };
            (r.clone(), outcome)
        })
        .collect()
}

fn deliver_one(dir: &Path, prefix: &str, body: &Path, id: &str) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let name = format!(
        "{}.{}_{}.{}",
        crate::spool::now(),
        id,
        SEQ.fetch_add(1, Ordering::Relaxed),
        std::process::id()
    );
    let tmp = dir.join("tmp").join(&name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(prefix.as_bytes())?;
        std::io::copy(&mut std::fs::File::open(body)?, &mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join("new").join(&name))?;
        std::fs::File::open(dir.join("new"))?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_paths_stay_inside_the_root() {
        let root = Path::new("/m");
        assert_eq!(
            mailbox_dir(root, "Alice@Example.com"),
            Path::new("/m/example.com/alice")
        );
        assert_eq!(mailbox_dir(root, "a/b@x.y"), Path::new("/m/x.y/a_b"));
        assert_eq!(
            mailbox_dir(root, ".hidden@x.y"),
            Path::new("/m/x.y/_.hidden")
        );
    }

    #[test]
    fn writes_prefix_and_body_into_new() {
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("body");
        std::fs::write(&body, b"Subject: hi\r\n\r\nhello\r\n").unwrap();
        let root = dir.path().join("mail");
        let r = deliver(
            &root,
            &["bob@example.com".into()],
            "Received: x\r\n",
            &body,
            "ID1",
        );
        assert_eq!(r, vec![("bob@example.com".to_string(), Outcome::Delivered)]);
        let new = root.join("example.com/bob/new");
        let files: Vec<_> = std::fs::read_dir(&new).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(
            std::fs::read(files[0].path()).unwrap(),
            b"Received: x\r\nSubject: hi\r\n\r\nhello\r\n"
        );
        assert_eq!(
            std::fs::read_dir(root.join("example.com/bob/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
