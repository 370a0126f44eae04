//! What `teamrelay route` needs from the memory to explain a reply: the thread options
//! (`--in-reply-to`, `--references`, `--message FILE`) turned into header facts, and a
//! best-effort recall — from Redis, from the running server over the admin socket, or
//! from the spool directly — so the explanation names the real owner and absences.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Backend, RedisMemory, SpoolMemory};
use crate::address::Address;
use crate::config::Config;
use crate::route::{normalize_id, Absence, Memory, MessageFacts, Query, RecentReply};
use crate::spool::Spool;

/// The admin-socket verb for a recall.
pub const VERB: &str = "recall";

/// [`Memory`] as JSON, for the admin socket.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Recalled {
    pub thread_private: bool,
    pub already_has: Vec<String>,
    pub thread: String,
    pub owner: Option<String>,
    pub recent: Vec<RecentReply>,
    pub absences: Vec<Absence>,
    pub now: u64,
}

impl From<&Memory> for Recalled {
    fn from(m: &Memory) -> Recalled {
        Recalled {
            thread_private: m.thread_private,
            already_has: m.already_has.iter().map(|a| a.to_string()).collect(),
            thread: m.thread.clone(),
            owner: m.owner.as_ref().map(|a| a.to_string()),
            recent: m.recent.clone(),
            absences: m.absences.clone(),
            now: m.now,
        }
    }
}

impl From<Recalled> for Memory {
    fn from(r: Recalled) -> Memory {
        Memory {
            thread_private: r.thread_private,
            already_has: r
                .already_has
                .iter()
                .filter_map(|a| Address::parse(a).ok())
                .collect(),
            thread: r.thread,
            owner: r.owner.and_then(|o| Address::parse(&o).ok()),
            recent: r.recent,
            absences: r.absences,
            now: r.now,
        }
    }
}

/// Adds the thread options to the facts `route` built from its address options; a
/// message file replaces them all with the file's own headers.
pub fn facts_with(
    facts: MessageFacts,
    message: Option<&Path>,
    in_reply_to: Option<&str>,
    references: &[String],
) -> Result<MessageFacts, String> {
    let mut facts = match message {
        Some(path) => {
            let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            MessageFacts::from_message(&raw)
        }
        None => facts,
    };
    if let Some(id) = in_reply_to {
        facts.in_reply_to = vec![normalize_id(id)];
    }
    let refs: Vec<String> = references
        .iter()
        .flat_map(|r| r.split_whitespace())
        .map(normalize_id)
        .filter(|r| !r.is_empty())
        .collect();
    if !refs.is_empty() {
        facts.references = refs;
    }
    facts.thread_ids = facts.in_reply_to.clone();
    facts.thread_ids.extend(facts.references.iter().cloned());
    Ok(facts)
}

/// Serves a recall line (`recall QUERY-JSON`) for a running server.
pub async fn serve_line(memory: &dyn Backend, line: &str) -> String {
    let json = line.strip_prefix(VERB).unwrap_or("").trim();
    let answer: Result<Recalled, String> = match serde_json::from_str::<Query>(json) {
        Ok(q) => memory
            .recall(&q)
            .await
            .map(|m| Recalled::from(&m))
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("bad recall request: {e}")),
    };
    serde_json::to_string(&answer).unwrap_or_default()
}

/// What the memory holds for this message, as `serve` would see it now. Failing that
/// (Redis down, say), an empty memory and a warning on stderr.
pub fn recall(config: &Config, facts: &MessageFacts) -> Memory {
    let q = Query::of(facts);
    let run = async {
        if let Some(m) = &config.memory {
            return RedisMemory::open(m)
                .recall(&q)
                .await
                .map_err(|e| e.to_string());
        }
        let dir = &config.server.spool;
        if let Ok(mut s) = tokio::net::UnixStream::connect(crate::queue::socket_path(dir)).await {
            let line = format!("{VERB} {}\n", serde_json::to_string(&q).unwrap_or_default());
            s.write_all(line.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut out = String::new();
            s.read_to_string(&mut out)
                .await
                .map_err(|e| e.to_string())?;
            let answer: Result<Recalled, String> =
                serde_json::from_str(&out).map_err(|e| e.to_string())?;
            return answer.map(Memory::from);
        }
        if !dir.join("db").exists() {
            return Ok(Memory::default());
        }
        let spool = Spool::open(dir).map_err(|e| e.to_string())?;
        SpoolMemory::new(spool)
            .recall(&q)
            .await
            .map_err(|e| e.to_string())
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(run));
    let mut memory = result.unwrap_or_else(|e| {
        eprintln!(
            "teamrelay route: the routing memory cannot be read ({e}); explaining without it"
        );
        Memory::default()
    });
    if memory.now == 0 {
        memory.now = crate::spool::now();
    }
    if memory.thread.is_empty() {
        memory.thread = q.resolve(&[]);
    }
    memory
}
