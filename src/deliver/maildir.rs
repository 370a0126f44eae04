//! Maildir delivery: `DIR/domain/local/{tmp,new,cur}`, written to `tmp`, fsync'd, then
//! renamed into `new` (the Maildir protocol: a reader never sees half a message).
//! Messages are stored with LF line endings, the Maildir convention that Dovecot and
//! mutt expect (SPEC §6); the bytes are otherwise those received. Files are `0600` and
//! directories `0700`: a mailbox is customer mail.

use crate::spool::BodyLocation;
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
    body: &BodyLocation,
    id: &str,
) -> Vec<(String, Outcome)> {
    rcpts
        .iter()
        .map(|r| {
            let outcome = match deliver_one(&mailbox_dir(root, r), prefix, body, id) {
                Ok(()) => Outcome::Delivered("maildir: written to new/".into()),
                Err(e) => Outcome::Deferred(format!("maildir: {e}")),
            };
            (r.clone(), outcome)
        })
        .collect()
}

fn deliver_one(dir: &Path, prefix: &str, body: &BodyLocation, id: &str) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    for sub in ["tmp", "new", "cur"] {
        crate::private_fs::create_dir_all(&dir.join(sub))?;
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
        let mut f = crate::private_fs::create_file(&tmp)?;
        let mut lf = LfWriter::new(std::io::BufWriter::new(&mut f));
        lf.write_all(prefix.as_bytes())?;
        body.copy_to(&mut lf)?;
        lf.finish()?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join("new").join(&name))?;
        std::fs::File::open(dir.join("new"))?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Turns CRLF into LF while copying; a CR not followed by LF is kept (the spool
/// holds none, SMTP refused bare CRs, but a CR at the end of one write may be the first
/// half of a CRLF split across two).
struct LfWriter<W: Write> {
    inner: W,
    pending_cr: bool,
}

impl<W: Write> LfWriter<W> {
    fn new(inner: W) -> Self {
        LfWriter {
            inner,
            pending_cr: false,
        }
    }

    /// Writes a trailing lone CR and flushes.
    fn finish(mut self) -> std::io::Result<()> {
        if self.pending_cr {
            self.inner.write_all(b"\r")?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Write for LfWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut start = 0;
        if self.pending_cr {
            self.pending_cr = false;
            if buf.first() != Some(&b'\n') {
                self.inner.write_all(b"\r")?;
            }
        }
        for i in 0..buf.len() {
            if buf[i] != b'\r' {
                continue;
            }
            self.inner.write_all(&buf[start..i])?;
            start = i + 1;
            match buf.get(i + 1) {
                Some(b'\n') => {}
                Some(_) => self.inner.write_all(b"\r")?,
                None => self.pending_cr = true,
            }
        }
        self.inner.write_all(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_becomes_lf_across_every_split() {
        let input = b"A: 1\r\nB: 2\r\n\r\nbody\rstays\r\nend\r\n";
        let want = b"A: 1\nB: 2\n\nbody\rstays\nend\n".to_vec();
        for split in 0..=input.len() {
            let mut out = Vec::new();
            let mut w = LfWriter::new(&mut out);
            w.write_all(&input[..split]).unwrap();
            w.write_all(&input[split..]).unwrap();
            w.finish().unwrap();
            assert_eq!(out, want, "split at {split}");
        }
    }

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
            &BodyLocation::file(body),
            "ID1",
        );
        assert_eq!(
            r,
            vec![(
                "bob@example.com".to_string(),
                Outcome::Delivered("maildir: written to new/".into())
            )]
        );
        let new = root.join("example.com/bob/new");
        let files: Vec<_> = std::fs::read_dir(&new).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(
            std::fs::read(files[0].path()).unwrap(),
            b"Received: x\nSubject: hi\n\nhello\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files[0].path()), 0o600);
        assert_eq!(mode(&new), 0o700);
        assert_eq!(
            std::fs::read_dir(root.join("example.com/bob/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
