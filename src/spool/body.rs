//! Receiving a message body while DATA streams in. Up to [`FLUSH_AT`] it stays in memory
//! and goes into a segment with its record (one fsync for the batch); past that it is
//! written to its own file as it arrives, so a 35 MiB message never sits in memory whole.

use std::io::Write;
use std::path::PathBuf;

/// Buffered bytes that trigger a write to the file.
pub const FLUSH_AT: usize = 256 * 1024;

/// A received body, ready for the committer.
pub enum Finished {
    /// Small: goes into the segment with its record.
    Memory(Vec<u8>),
    /// Large: its own file, written but not yet synced.
    File(std::fs::File),
}

/// The body of one message being received.
pub struct BodySink {
    path: PathBuf,
    file: Option<std::fs::File>,
    /// Bytes not yet written.
    pub buf: Vec<u8>,
}

impl BodySink {
    pub(super) fn new(path: PathBuf) -> BodySink {
        BodySink {
            path,
            file: None,
            buf: Vec::new(),
        }
    }

    /// Writes the buffer out if it has grown past [`FLUSH_AT`].
    pub async fn maybe_flush(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.write_out(false).await?;
        }
        Ok(())
    }

    /// The whole body: in memory when it never outgrew [`FLUSH_AT`] (it goes into a
    /// segment), else its file with everything written, not yet fsync'd (the committer
    /// syncs all files of a batch in one go, `Op::SyncBody`).
    pub async fn finish(&mut self) -> std::io::Result<Finished> {
        if self.file.is_none() && self.buf.len() <= FLUSH_AT {
            return Ok(Finished::Memory(std::mem::take(&mut self.buf)));
        }
        self.write_out(false).await?;
        match &self.file {
            Some(f) => f.try_clone().map(Finished::File),
            None => Err(std::io::Error::other("body file missing")),
        }
    }

    /// The whole message, for the copy the history keeps: from memory when it is small,
    /// else read back from its (written, not yet synced) file.
    pub async fn contents(&mut self) -> std::io::Result<Vec<u8>> {
        if self.file.is_none() {
            return Ok(self.buf.clone());
        }
        self.write_out(false).await?;
        tokio::fs::read(&self.path).await
    }

    /// Removes the file (a rejected message).
    pub async fn discard(self) {
        if self.file.is_some() {
            let _ = tokio::fs::remove_file(&self.path).await;
        }
    }

    async fn write_out(&mut self, sync: bool) -> std::io::Result<()> {
        if self.buf.is_empty() && self.file.is_some() && !sync {
            return Ok(());
        }
        let path = self.path.clone();
        let mut file = self.file.take();
        let mut buf = std::mem::take(&mut self.buf);
        let (file, mut buf) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            let f = match file.as_mut() {
                Some(f) => f,
                None => file.insert(crate::private_fs::create_file(&path)?),
            };
            f.write_all(&buf)?;
            if sync {
                f.sync_all()?;
            }
            buf.clear();
            Ok((file, buf))
        })
        .await
        .map_err(std::io::Error::other)??;
        self.file = file;
        // Keep the allocation for the next chunk.
        std::mem::swap(&mut self.buf, &mut buf);
        Ok(())
    }
}
