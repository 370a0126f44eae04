//! `teamrelay history ...` (SPEC §7, §8): arguments checked here — a bad one is one
//! line on stderr and exit 2 — then one [`Request`] through the running server or on
//! the history directly.

use std::io::Write;
use std::process::ExitCode;

use base64::Engine;
use clap::Subcommand;

use super::admin::{self, Answer, Request};
use super::query;
use crate::address::Address;
use crate::config::Config;

/// `teamrelay history ...`
#[derive(Debug, Subcommand)]
pub enum HistoryAction {
    /// A customer's threads (ADDR), or a domain's customers (@DOMAIN).
    Show {
        target: Option<String>,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Kept messages whose subject or text contains every word, newest first.
    Search {
        words: Vec<String>,
        #[arg(long)]
        json: bool,
        /// At most this many messages (default 50).
        #[arg(long)]
        limit: Option<String>,
    },
    /// The customer's messages, oldest first, as an mboxrd file on stdout.
    Export { addr: Option<String> },
    /// Erase every kept message in which ADDR is a participant.
    Forget { addr: Option<String> },
    /// Queue archive copies of past conversations for a (new) teammate.
    Backfill {
        member: Option<String>,
        /// Only messages of this last period, e.g. "90d", "1y" (default: all).
        #[arg(long)]
        since: Option<String>,
    },
}

fn usage(msg: String) -> ExitCode {
    eprintln!("teamrelay history: {msg}");
    ExitCode::from(2)
}

fn address(what: &str, s: Option<&String>) -> Result<String, String> {
    let s = s.ok_or_else(|| format!("{what} needs an email address"))?;
    let bare = s.trim().trim_start_matches('<').trim_end_matches('>');
    Address::parse(bare)
        .map(|a| a.to_string())
        .map_err(|e| format!("{what}: {s:?} is not an email address ({e})"))
}

/// The request an action makes, and whether JSON was asked for.
fn request(action: &HistoryAction) -> Result<(Request, bool), String> {
    Ok(match action {
        HistoryAction::Show { target, json } => {
            let t = target.as_deref().ok_or("show needs ADDR or @DOMAIN")?;
            match t.strip_prefix('@') {
                Some(d)
                    if !d.is_empty()
                        && !d.contains('@')
                        && Address::parse(&format!("x@{d}")).is_ok() =>
                {
                    (Request::Domain(d.to_lowercase()), *json)
                }
                Some(_) => return Err(format!("show: {t:?} is not @DOMAIN")),
                None => (Request::Customer(address("show", target.as_ref())?), *json),
            }
        }
        HistoryAction::Search { words, json, limit } => {
            if words.iter().all(|w| w.trim().is_empty()) {
                return Err("search needs at least one word".into());
            }
            let limit = match limit {
                None => query::DEFAULT_LIMIT,
                Some(l) => l
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--limit {l:?} is not a positive number"))?,
            };
            (
                Request::Search {
                    words: words.join(" "),
                    limit,
                },
                *json,
            )
        }
        HistoryAction::Export { addr } => {
            (Request::Export(address("export", addr.as_ref())?), false)
        }
        HistoryAction::Forget { addr } => {
            (Request::Forget(address("forget", addr.as_ref())?), false)
        }
        HistoryAction::Backfill { member, since } => {
            let since_secs = match since {
                None => None,
                Some(s) => Some(
                    crate::config::history::parse_keep(s)
                        .map_err(|e| format!("--since: {e}"))?
                        .as_secs(),
                ),
            };
            (
                Request::Backfill {
                    member: address("backfill", member.as_ref())?,
                    since_secs,
                },
                false,
            )
        }
    })
}

/// Runs `teamrelay history ACTION`; the exit code of SPEC §7.
pub fn run(config: &Config, action: HistoryAction) -> ExitCode {
    let (req, json) = match request(&action) {
        Ok(x) => x,
        Err(e) => return usage(e),
    };
    if config.history.is_none() {
        return usage(format!(
            "{} has no [history] section",
            config.path.display()
        ));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("teamrelay history: {e}");
            return ExitCode::from(1);
        }
    };
    let forget = matches!(req, Request::Forget(_));
    let answer = runtime.block_on(admin::request(config, req));
    let pretty = |v: &dyn erased::Json| v.pretty();
    let out = match answer {
        Ok(Answer::Customer(v)) if json => pretty(&v),
        Ok(Answer::Customer(v)) => query::format_customer(&v),
        Ok(Answer::Domain(v)) if json => pretty(&v),
        Ok(Answer::Domain(v)) => query::format_domain(&v),
        Ok(Answer::Search(v)) if json => pretty(&v),
        Ok(Answer::Search(v)) => query::format_search(&v),
        Ok(Answer::Export(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            let _ = std::io::stdout().write_all(&bytes);
            String::new()
        }
        Ok(Answer::Count(n)) if forget => {
            format!("forgot {n} message{}\n", if n == 1 { "" } else { "s" })
        }
        Ok(Answer::Count(n)) => format!(
            "queued {n} archive cop{}\n",
            if n == 1 { "y" } else { "ies" }
        ),
        Ok(Answer::Error(e)) | Err(e) => {
            eprintln!("teamrelay history: {e}");
            return ExitCode::from(1);
        }
    };
    print!("{out}");
    ExitCode::SUCCESS
}

mod erased {
    /// Any answer value printed as pretty JSON with a final newline.
    pub trait Json {
        fn pretty(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn pretty(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
        }
    }
}
