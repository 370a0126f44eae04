//! The CLI's history requests and their answers. sled and tantivy let one process
//! write the history, so while `serve` runs the CLI asks it over a Unix socket in the
//! spool directory (`history.sock`, owner-only) — one JSON request line, one JSON
//! answer — and when no server answers there, the CLI opens the history itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::record::{CustomerView, DomainView, SearchView};
use super::{query, History};
use crate::address::Address;
use crate::config::Config;
use crate::shared::Shared;
use crate::spool::Spool;

/// One request. Arguments were checked by the CLI.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Customer(String),
    Domain(String),
    Search {
        words: String,
        limit: usize,
    },
    Export(String),
    Forget(String),
    Backfill {
        member: String,
        since_secs: Option<u64>,
    },
}

/// What the history answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    Customer(CustomerView),
    Domain(DomainView),
    Search(SearchView),
    /// The mboxrd bytes, base64 (JSON carries text).
    Export(String),
    /// How many messages were forgotten or queued.
    Count(usize),
    Error(String),
}

/// The socket's path for a spool.
pub fn socket_path(spool_dir: &Path) -> PathBuf {
    spool_dir.join("history.sock")
}

fn parse(addr: &str) -> Result<Address, String> {
    Address::parse(addr).map_err(|e| format!("{addr:?} is not an email address ({e})"))
}

/// Answers one request. Every read first makes all kept messages visible.
pub async fn execute(h: &History, config: &Config, spool: &Spool, r: Request) -> Answer {
    h.index().flush().await;
    let result = match r {
        Request::Customer(a) => parse(&a).map(|a| Answer::Customer(query::customer(h, &a))),
        Request::Domain(d) => Ok(Answer::Domain(query::domain(h, &d))),
        Request::Search { words, limit } => Ok(Answer::Search(query::search(h, &words, limit))),
        Request::Export(a) => parse(&a).map(|a| {
            Answer::Export(base64::engine::general_purpose::STANDARD.encode(query::export(h, &a)))
        }),
        Request::Forget(a) => match parse(&a) {
            Ok(a) => h.forget(&a).await.map(Answer::Count),
            Err(e) => Err(e),
        },
        Request::Backfill { member, since_secs } => match parse(&member) {
            Ok(m) => {
                super::backfill::run(h, config, spool, &m, since_secs.map(Duration::from_secs))
                    .await
                    .map(Answer::Count)
            }
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(Answer::Error)
}

/// Serves requests on the socket until `shutdown`.
pub async fn serve_socket(
    path: PathBuf,
    h: History,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    crate::control::serve(path, "history", shutdown, move |line: String| {
        let (h, shared) = (h.clone(), shared.clone());
        async move {
            let answer = match serde_json::from_str::<Request>(&line) {
                Ok(r) => {
                    info!(request = ?r, "history command");
                    let backfill = matches!(r, Request::Backfill { .. });
                    let a = execute(&h, &shared.config(), &shared.spool, r).await;
                    if backfill {
                        shared.wake.notify_one();
                    }
                    a
                }
                Err(e) => Answer::Error(format!("bad request: {e}")),
            };
            serde_json::to_string(&answer).unwrap_or_default()
        }
    })
    .await
}

/// Runs one request for the CLI: through the running server if there is one, else on
/// the history (and, for a backfill, the spool) directly.
pub async fn request(config: &Config, r: Request) -> Result<Answer, String> {
    let spool_dir = &config.server.spool;
    let line = serde_json::to_string(&r).map_err(|e| e.to_string())?;
    if let Some(out) = crate::control::ask(&socket_path(spool_dir), &line).await {
        return serde_json::from_str(&out?).map_err(|e| format!("bad answer from the server: {e}"));
    }
    let keep = config.history.as_ref().map(|h| h.keep).unwrap_or_default();
    let h = History::open(spool_dir, keep)?;
    let spool = Spool::open(spool_dir).map_err(|e| e.to_string())?;
    let answer = execute(&h, config, &spool, r).await;
    // Queued copies must be on disk before this process ends.
    spool.commit(Vec::new()).await.map_err(|e| e.to_string())?;
    Ok(answer)
}

/// Opens the history for `serve` (when `[history]` is configured), makes it the one
/// sessions keep into, and starts its socket, its retention and its web page.
pub async fn start(shared: Arc<Shared>, shutdown: CancellationToken) -> Result<(), String> {
    let config = shared.config();
    let Some(hc) = config.history.clone() else {
        return Ok(());
    };
    let h = History::open(&config.server.spool, hc.keep)?;
    let _ = shared.history.set(h.clone());
    tokio::spawn(serve_socket(
        socket_path(&config.server.spool),
        h.clone(),
        shared.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(retention(h.clone(), shutdown.clone()));
    if let Some(addr) = hc.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (history web page): {e}"))?;
        let tls = if hc.tls {
            config.tls.as_ref().map(|t| t.server.clone())
        } else {
            None
        };
        tokio::spawn(super::web::run(listener, tls, h, shared, shutdown));
    }
    Ok(())
}

/// Removes messages older than `keep`, at start and every hour.
async fn retention(h: History, shutdown: CancellationToken) {
    loop {
        match h.sweep(crate::spool::now()).await {
            Ok(0) => {}
            Ok(n) => info!(
                removed = n,
                "history: messages past their retention removed"
            ),
            Err(e) => warn!(error = %e, "history: retention sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
