//! Reading a queued message's body, wherever the spool keeps it: its own file or a
//! stretch of a segment.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{segment, Entry, Spool, StoredBody};

/// Where one body is: a file, or `len` bytes at `offset` of a file.
#[derive(Debug, Clone)]
pub struct BodyLocation {
    path: PathBuf,
    offset: u64,
    len: Option<u64>,
}

impl BodyLocation {
    /// A body that is the whole of `path`.
    pub fn file(path: PathBuf) -> BodyLocation {
        BodyLocation {
            path,
            offset: 0,
            len: None,
        }
    }

    /// A reader of exactly the body's bytes.
    pub fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        let mut file = std::fs::File::open(&self.path)?;
        match self.len {
            None => Ok(Box::new(file)),
            Some(len) => {
                file.seek(SeekFrom::Start(self.offset))?;
                Ok(Box::new(file.take(len)))
            }
        }
    }

    /// The whole body in memory. A body cut short (a segment shorter than its record
    /// says) is an error, never a shorter message.
    pub fn read_all(&self) -> std::io::Result<Vec<u8>> {
        // The length comes from a record on disk: trust it for a hint only.
        let hint = self.len.unwrap_or(0).min(1024 * 1024) as usize;
        let mut out = Vec::with_capacity(hint);
        self.copy_to(&mut out)?;
        Ok(out)
    }

    /// Copies the body into `to`; a body cut short is an error (see [`Self::read_all`]).
    pub fn copy_to(&self, to: &mut impl std::io::Write) -> std::io::Result<u64> {
        let copied = std::io::copy(&mut self.open()?, to)?;
        match self.len {
            Some(len) if copied != len => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("body cut short: {copied} of {len} bytes"),
            )),
            _ => Ok(copied),
        }
    }

    /// The file, when the body is a whole file of its own (it can be streamed).
    pub fn whole_file(&self) -> Option<&Path> {
        self.len.is_none().then_some(self.path.as_path())
    }
}

impl Spool {
    /// Where the body of `entry` is.
    pub fn body_of(&self, entry: &Entry) -> BodyLocation {
        match entry.body {
            StoredBody::File => BodyLocation {
                path: self.body_path(&entry.id),
                offset: 0,
                len: None,
            },
            StoredBody::Segment {
                segment: n,
                offset,
                len,
            } => BodyLocation {
                path: segment::path(&self.dir, n),
                offset,
                len: Some(len),
            },
        }
    }

    /// The body of a finished message is no longer needed: delete its file, or let its
    /// segment go once nothing else in it is queued.
    pub(super) fn release_body(&self, entry: &Entry) {
        match entry.body {
            StoredBody::File => {
                let _ = std::fs::remove_file(self.body_path(&entry.id));
            }
            StoredBody::Segment { segment, .. } => self.segments.release(segment),
        }
    }
}
