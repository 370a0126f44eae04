//! Queue control (`teamrelay queue list|show|retry|delete`). sled lets one process open
//! the spool, so while `serve` runs the command talks to it over a Unix socket in the
//! spool directory (`admin.sock`, owner-only); when no server answers there, the command
//! opens the spool itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::shared::Shared;
use crate::spool::{self, Entry, Op, Spool};

/// One line of `queue list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub id: String,
    pub age_secs: u64,
    pub sender: String,
    pub pending: Vec<String>,
    pub last_error: Option<String>,
    pub next_try_in_secs: u64,
}

/// What the server answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    List(Vec<Summary>),
    Show(Box<Entry>),
    Done(String),
    Error(String),
}

/// A request: `list`, `show ID`, `retry ID`, `delete ID`.
pub fn execute(spool: &Spool, request: &str) -> (Answer, Vec<Op>) {
    let mut words = request.split_whitespace();
    let verb = words.next().unwrap_or("");
    let id = words.next().unwrap_or("").to_string();
    let now = spool::now();
    match verb {
        "list" => (
            Answer::List(spool.all().iter().map(|e| summary(e, now)).collect()),
            Vec::new(),
        ),
        "show" | "retry" | "delete" => {
            let Some(entry) = spool.get(&id) else {
                return (
                    Answer::Error(format!("no queued message {id:?}")),
                    Vec::new(),
                );
            };
            match verb {
                "show" => (Answer::Show(Box::new(entry)), Vec::new()),
                "retry" => (
                    Answer::Done(format!("{id}: will be retried now")),
                    vec![Op::Retry { id, due: now }],
                ),
                _ => (
                    Answer::Done(format!("{id}: deleted without delivery or bounce")),
                    vec![Op::Remove(id)],
                ),
            }
        }
        _ => (
            Answer::Error(format!("unknown queue command {verb:?}")),
            Vec::new(),
        ),
    }
}

fn summary(e: &Entry, now: u64) -> Summary {
    Summary {
        id: e.id.clone(),
        age_secs: now.saturating_sub(e.received_at),
        sender: e.sender.clone().unwrap_or_else(|| "<>".into()),
        pending: e
            .pending_addresses()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        last_error: e.last_error().map(str::to_string),
        next_try_in_secs: e.next_try.saturating_sub(now),
    }
}

/// The admin socket's path for a spool.
pub fn socket_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("admin.sock")
}

/// Serves queue (and away, recall) requests on the admin socket until `shutdown`.
pub async fn serve_socket(
    path: PathBuf,
    shared: std::sync::Arc<Shared>,
    shutdown: CancellationToken,
) {
    crate::control::serve(path, "queue", shutdown, move |line: String| {
        let shared = shared.clone();
        async move { answer(&shared, &line).await }
    })
    .await
}

/// One admin-socket request, answered as JSON.
async fn answer(shared: &Shared, line: &str) -> String {
    if line.starts_with(crate::memory::cli::VERB) {
        return crate::memory::cli::serve_line(&*shared.memory, line).await;
    }
    if line.starts_with(crate::away::VERB) {
        let config = shared.config();
        return crate::away::serve_line(&*shared.memory, &config, line).await;
    }
    let (answer, ops) = execute(&shared.spool, line);
    let answer = if ops.is_empty() {
        answer
    } else {
        match shared.spool.commit(ops).await {
            Ok(()) => {
                info!(request = %line, "queue command");
                shared.wake.notify_one();
                answer
            }
            Err(e) => Answer::Error(e.to_string()),
        }
    };
    serde_json::to_string(&answer).unwrap_or_default()
}

/// Runs one request for the CLI: through the running server if there is one, else on
/// the spool directly.
pub async fn request(spool_dir: &Path, request: &str) -> Result<Answer, String> {
    if let Some(out) = crate::control::ask(&socket_path(spool_dir), request).await {
        return serde_json::from_str(&out?).map_err(|e| format!("bad answer from the server: {e}"));
    }
    let spool = Spool::open(spool_dir).map_err(|e| e.to_string())?;
    let (answer, ops) = execute(&spool, request);
    if !ops.is_empty() {
        spool.commit(ops).await.map_err(|e| e.to_string())?;
    }
    Ok(answer)
}

/// `queue list` as text: one line per message.
pub fn format_list(items: &[Summary]) -> String {
    let mut out = String::new();
    for s in items {
        out.push_str(&format!(
            "{}  age {}  from {}  pending {}  next try in {}  last error: {}\n",
            s.id,
            crate::config::format_duration(std::time::Duration::from_secs(s.age_secs)),
            s.sender,
            if s.pending.is_empty() {
                "-".to_string()
            } else {
                s.pending.join(",")
            },
            crate::config::format_duration(std::time::Duration::from_secs(s.next_try_in_secs)),
            s.last_error.as_deref().unwrap_or("-"),
        ));
    }
    if items.is_empty() {
        out.push_str("queue is empty\n");
    }
    out
}
