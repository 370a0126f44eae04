//! The history's files on disk, all owner-only whatever the umask (SPEC §6): one file
//! per kept message, `messages/ID`, holding the [`Record`] as a JSON line followed by the
//! message byte for byte as received. Written, fsync'd and entered in a synced directory
//! before the message counts as kept.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::record::Record;

/// Creates `dir` (and parents) as 0700, and makes an existing one 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(0o700))
}

/// Makes every file under `dir` 0600 and every directory 0700: for files that libraries
/// (tantivy, sled) create with the process umask.
pub fn private_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                let _ = std::fs::set_permissions(&path, Permissions::from_mode(0o700));
                private_tree(&path);
            }
            Ok(t) if t.is_file() => {
                let _ = std::fs::set_permissions(&path, Permissions::from_mode(0o600));
            }
            _ => {}
        }
    }
}

/// The path of message `id` under `messages`.
pub fn message_path(messages: &Path, id: &str) -> PathBuf {
    messages.join(id)
}

/// The file content: the record's JSON line, then the raw message.
pub fn encode(record: &Record, raw: &[u8]) -> Vec<u8> {
    // serde_json escapes control characters, so the JSON is one line.
    let mut out = serde_json::to_vec(record).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(raw);
    out
}

/// Writes a new message file (0600) and syncs its data. Not yet durable: its directory
/// entry is synced with the batch ([`sync_dir`]).
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    Ok(f)
}

/// fsync of a directory, so the names created in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads just the record of a message file.
pub fn read_record(path: &Path) -> Option<Record> {
    let mut line = Vec::new();
    BufReader::with_capacity(4096, File::open(path).ok()?)
        .read_until(b'\n', &mut line)
        .ok()?;
    serde_json::from_slice(&line).ok()
}

/// Reads the record and the raw message.
pub fn read_all(path: &Path) -> Option<(Record, Vec<u8>)> {
    let mut bytes = Vec::new();
    File::open(path).ok()?.read_to_end(&mut bytes).ok()?;
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let record = serde_json::from_slice(&bytes[..nl]).ok()?;
    Some((record, bytes.split_off(nl + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn files_are_private_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        // SAFETY: umask only changes this process's file-creation mask.
        let old = unsafe { libc::umask(0) };
        private_dir(&sub).unwrap();
        let f = sub.join("m");
        write_new(&f, b"x").unwrap();
        unsafe { libc::umask(old) };
        assert_eq!(std::fs::metadata(&sub).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
    }
}
