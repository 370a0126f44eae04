//! The segment log: append-only files that hold small message bodies and every spool
//! record, so that a batch of concurrent commits costs one `fdatasync` (the format and
//! the guarantees are in the module doc of [`super`]).
//!
//! A segment is `segments/NNNNNNNNNNNNNNNN` (16 hex digits, increasing): the 8 bytes
//! [`MAGIC`], then frames. A frame is `len` (u32 LE: bytes of kind + payload), `crc`
//! (u32 LE: CRC-32 of kind + payload), one kind byte and the payload. A reader stops at
//! the first frame that is short or fails its CRC: that is where a crash tore a write,
//! and nothing after it in that segment was ever acknowledged.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The first bytes of every segment.
pub const MAGIC: &[u8; 8] = b"TRSEG001";
/// A segment holding this much is closed and the next one begun.
pub const SEGMENT_SIZE: u64 = 16 * 1024 * 1024;
/// Largest frame a reader accepts; a bigger length is a torn or corrupt frame.
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;
/// Frame header: len and crc.
const HEADER: u64 = 8;

/// A place in the log: a segment and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A message body: id length (1 byte), id, then the body bytes.
    Body = 1,
    /// A queue record: the [`super::Entry`] as JSON.
    Put = 2,
    /// A finished message: its id.
    Remove = 3,
    /// Routing memories: `[at, op]` as JSON (see [`super::MemoryOp`]).
    Memory = 4,
    /// A queue record that replaces one only if it is still there (`Op::Update`).
    Update = 5,
    /// `[id, due]` as JSON: make a queued message due (`Op::Retry`).
    Retry = 6,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Body),
            2 => Some(Kind::Put),
            3 => Some(Kind::Remove),
            4 => Some(Kind::Memory),
            5 => Some(Kind::Update),
            6 => Some(Kind::Retry),
            _ => None,
        }
    }
}

/// The path of segment `n` under the spool directory `dir`.
pub fn path(dir: &Path, n: u64) -> PathBuf {
    dir.join("segments").join(format!("{n:016X}"))
}

/// The segment numbers present, in order.
pub fn list(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut numbers: Vec<u64> = std::fs::read_dir(dir.join("segments"))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?;
            (name.len() == 16)
                .then(|| u64::from_str_radix(name, 16).ok())
                .flatten()
        })
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// A batch of frames being encoded, to be written with one `write` and one sync.
#[derive(Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
}

impl Batch {
    /// Appends a frame; returns the offset of its payload within the batch.
    pub fn frame(&mut self, kind: Kind, parts: &[&[u8]]) -> u64 {
        let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind as u8]);
        for p in parts {
            crc.update(p);
        }
        self.bytes.extend_from_slice(&(len as u32).to_le_bytes());
        self.bytes.extend_from_slice(&crc.finalize().to_le_bytes());
        self.bytes.push(kind as u8);
        let payload = self.bytes.len() as u64;
        for p in parts {
            self.bytes.extend_from_slice(p);
        }
        payload
    }

    /// A body frame; returns the offset of the body bytes within the batch.
    pub fn body(&mut self, id: &str, body: &[u8]) -> u64 {
        let id = &id.as_bytes()[..id.len().min(255)];
        let start = self.frame(Kind::Body, &[&[id.len() as u8], id, body]);
        start + 1 + id.len() as u64
    }
}

/// The segment being appended to. Owned by the committer alone.
pub struct Writer {
    dir: PathBuf,
    file: File,
    segment: u64,
    len: u64,
    /// A write or sync failed: what is on disk after `len` is unknown, so the next batch
    /// goes to a new segment (after a failed fsync the page cache cannot be trusted).
    poisoned: bool,
}

impl Writer {
    /// Creates segment `n` and makes it durable: its header, and its directory entry.
    pub fn create(dir: &Path, n: u64) -> std::io::Result<Writer> {
        let mut file = crate::private_fs::create_new_file(&path(dir, n))?;
        let made = file
            .write_all(MAGIC)
            .and_then(|()| file.sync_all())
            .and_then(|()| File::open(dir.join("segments"))?.sync_all());
        if let Err(e) = made {
            // Half made: gone, so the next try can make it again.
            let _ = std::fs::remove_file(path(dir, n));
            return Err(e);
        }
        Ok(Writer {
            dir: dir.to_path_buf(),
            file,
            segment: n,
            len: MAGIC.len() as u64,
            poisoned: false,
        })
    }

    /// Where the next frame will start.
    pub fn position(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.len,
        }
    }

    /// Begins the next segment if this one is full or poisoned.
    pub fn rotate_if_needed(&mut self) -> std::io::Result<()> {
        if self.len >= SEGMENT_SIZE || self.poisoned {
            *self = Writer::create(&self.dir, self.segment + 1)?;
        }
        Ok(())
    }

    /// Writes `batch` at the end and `fdatasync`s: when this returns `Ok`, every frame of
    /// the batch is durable.
    pub fn append(&mut self, batch: &Batch) -> std::io::Result<()> {
        let written = self
            .file
            .write_all(&batch.bytes)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += batch.bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }
}

/// One frame read back.
pub struct Frame {
    pub kind: Kind,
    pub payload: Vec<u8>,
}

/// Every whole frame of segment `n` from `offset` (at least past the magic), in order,
/// and whether the segment ended in a torn or corrupt frame.
pub fn read(dir: &Path, n: u64, offset: u64) -> std::io::Result<(Vec<Frame>, bool)> {
    let data = std::fs::read(path(dir, n))?;
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Ok((Vec::new(), true));
    }
    let mut at = offset.max(MAGIC.len() as u64) as usize;
    let mut frames = Vec::new();
    while at < data.len() {
        let Some(frame) = parse(&data[at..]) else {
            return Ok((frames, true));
        };
        at += HEADER as usize + frame.payload.len() + 1;
        frames.push(frame);
    }
    Ok((frames, false))
}

fn parse(data: &[u8]) -> Option<Frame> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    if len == 0 || len > MAX_FRAME {
        return None;
    }
    let body = data.get(8..8 + len as usize)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    Some(Frame {
        kind: Kind::from_byte(body[0])?,
        payload: body[1..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("segments")).unwrap();
        d
    }

    #[test]
    fn frames_read_back_in_order_and_bodies_are_found_by_offset() {
        let d = dir();
        let mut w = Writer::create(d.path(), 7).unwrap();
        let start = w.position();
        let mut b = Batch::default();
        let body_at = b.body("0001", b"Subject: x\r\n\r\nhi\r\n");
        b.frame(Kind::Put, &[b"{\"id\":\"0001\"}"]);
        b.frame(Kind::Remove, &[b"0000"]);
        w.append(&b).unwrap();
        let (frames, torn) = read(d.path(), 7, start.offset).unwrap();
        assert!(!torn);
        let kinds: Vec<Kind> = frames.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Kind::Body, Kind::Put, Kind::Remove]);
        assert_eq!(frames[1].payload, b"{\"id\":\"0001\"}");
        let file = std::fs::read(path(d.path(), 7)).unwrap();
        let at = (start.offset + body_at) as usize;
        assert_eq!(&file[at..at + 18], b"Subject: x\r\n\r\nhi\r\n");
        assert_eq!(list(d.path()).unwrap(), [7]);
    }

    #[test]
    fn a_torn_tail_ends_the_segment_and_keeps_every_whole_frame_before_it() {
        let d = dir();
        let mut w = Writer::create(d.path(), 1).unwrap();
        let mut b = Batch::default();
        b.frame(Kind::Put, &[b"first"]);
        b.frame(Kind::Put, &[b"second"]);
        w.append(&b).unwrap();
        let full = std::fs::read(path(d.path(), 1)).unwrap();
        // Every cut inside the second frame, and a flipped byte in it.
        let second = full.len() - (8 + 1 + 6);
        for cut in second + 1..full.len() {
            std::fs::write(path(d.path(), 1), &full[..cut]).unwrap();
            let (frames, torn) = read(d.path(), 1, 0).unwrap();
            assert!(torn, "cut at {cut}");
            assert_eq!(frames.len(), 1, "cut at {cut}");
            assert_eq!(frames[0].payload, b"first");
        }
        let mut flipped = full.clone();
        *flipped.last_mut().unwrap() ^= 0x20;
        std::fs::write(path(d.path(), 1), &flipped).unwrap();
        let (frames, torn) = read(d.path(), 1, 0).unwrap();
        assert!(torn);
        assert_eq!(frames.len(), 1);
        std::fs::write(path(d.path(), 1), b"garbage!").unwrap();
        assert!(read(d.path(), 1, 0).unwrap().1, "a bad magic is torn");
    }

    #[test]
    fn a_full_segment_rotates_to_the_next_number() {
        let d = dir();
        let mut w = Writer::create(d.path(), 3).unwrap();
        w.len = SEGMENT_SIZE;
        w.rotate_if_needed().unwrap();
        assert_eq!(w.position().segment, 4);
        assert_eq!(w.position().offset, MAGIC.len() as u64);
        assert_eq!(list(d.path()).unwrap(), [3, 4]);
    }

    #[test]
    fn a_segment_that_cannot_be_begun_is_an_error_and_the_next_batch_tries_again() {
        let d = dir();
        let mut w = Writer::create(d.path(), 3).unwrap();
        w.len = SEGMENT_SIZE;
        // Something in the way of segment 4 (as a full disk or a bad directory would be).
        std::fs::create_dir(path(d.path(), 4)).unwrap();
        assert!(w.rotate_if_needed().is_err());
        assert_eq!(w.position().segment, 3, "no half-made writer");
        std::fs::remove_dir(path(d.path(), 4)).unwrap();
        w.rotate_if_needed().unwrap();
        assert_eq!(w.position().segment, 4);
        assert_eq!(list(d.path()).unwrap(), [3, 4]);
    }
}
