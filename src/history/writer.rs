//! Group commit for message files: every keep waiting at one moment is written to
//! `tmp/`, fdatasync'd (a few at a time), renamed into `messages/`, and the directory is
//! synced once for the batch — so concurrent sessions share the trip to the disk, as the
//! spool's committer does for its bodies.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

/// One file to make durable.
pub struct Write {
    pub id: String,
    pub bytes: Vec<u8>,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// Most files in one batch.
const BATCH: usize = 256;

/// Runs until every sender is gone.
pub async fn run(root: PathBuf, mut rx: mpsc::UnboundedReceiver<Write>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let root = root.clone();
        let (batch, result) = match tokio::task::spawn_blocking(move || {
            let r = write_batch(&root, &batch);
            (batch, r)
        })
        .await
        {
            Ok(x) => x,
            Err(_) => continue,
        };
        for w in batch {
            let _ = w.done.send(result.clone());
        }
    }
}

fn write_batch(root: &std::path::Path, batch: &[Write]) -> Result<(), String> {
    let tmp = root.join("tmp");
    let messages = root.join("messages");
    let files = batch
        .iter()
        .map(|w| super::files::write_new(&tmp.join(&w.id), &w.bytes))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| format!("history: cannot write message: {e}"))?;
    std::thread::scope(|s| {
        let chunk = files.len().div_ceil(4).max(1);
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().try_for_each(|f| f.sync_data())))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(std::io::Error::other("panic")))
        })
    })
    .map_err(|e| format!("history: fsync failed: {e}"))?;
    for w in batch {
        std::fs::rename(tmp.join(&w.id), messages.join(&w.id))
            .map_err(|e| format!("history: cannot rename message: {e}"))?;
    }
    super::files::sync_dir(&messages).map_err(|e| format!("history: directory fsync failed: {e}"))
}
