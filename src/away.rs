//! `teamrelay away` (SPEC §9): list, set and end absences. The absences live in the
//! routing memory, so with `[memory]` the command talks to Redis itself; with the spool
//! memory it asks the running server over the admin socket (as `queue` does: one process
//! owns a sled directory) and, when none answers, opens the spool directly.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::address::Address;
use crate::config::Config;
use crate::memory::{Backend, RedisMemory, SpoolMemory};
use crate::route::{end_of_day, Absence};
use crate::spool::Spool;

/// What the admin socket's `away` verbs start with.
pub const VERB: &str = "away";

/// One absence as `away --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub address: String,
    /// The last day away, `YYYY-MM-DD` (UTC).
    pub until: String,
    /// Who covers (the absence's own cover, else `team.cover`); `null`: nobody.
    pub cover: Option<String>,
    /// `manual` or `auto-reply`.
    pub source: String,
}

/// The answer to one request.
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    List(Vec<View>),
    Done(String),
    Error(String),
}

/// What the command line asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    List,
    Set {
        address: String,
        until: u64,
        cover: Option<String>,
    },
    Back(String),
}

impl Request {
    /// The request from the command line's words; an error is bad usage (exit 2).
    pub fn parse(
        config: &Config,
        address: Option<&str>,
        until: Option<&str>,
        cover: Option<&str>,
        back: bool,
    ) -> Result<Request, String> {
        let team_address = |what: &str, s: &str| -> Result<Address, String> {
            let a = Address::parse(s.trim().trim_start_matches('<').trim_end_matches('>'))
                .map_err(|e| format!("{what} {s:?} is not an email address ({e})"))?;
            if !config.is_internal(&a) {
                return Err(format!("{what} {a} is not in team.domains"));
            }
            Ok(a)
        };
        let Some(address) = address else {
            if until.is_some() || cover.is_some() || back {
                return Err("name the teammate: away ADDR --until YYYY-MM-DD | ADDR --back".into());
            }
            return Ok(Request::List);
        };
        let address = team_address("address", address)?;
        if config.list(&address).is_some() {
            return Err(format!("{address} is a list; name a teammate"));
        }
        let address = address.key().to_string();
        match (until, back) {
            (Some(_), true) | (None, false) => {
                Err("give either --until YYYY-MM-DD or --back".into())
            }
            (None, true) if cover.is_some() => Err("--cover goes with --until".into()),
            (None, true) => Ok(Request::Back(address)),
            (Some(date), false) => {
                let until = end_of_day(date)
                    .ok_or_else(|| format!("--until {date:?} is not a date (YYYY-MM-DD)"))?;
                if until <= crate::spool::now() {
                    return Err(format!("--until {date} is in the past"));
                }
                let cover = cover
                    .map(|c| team_address("--cover", c).map(|a| a.key().to_string()))
                    .transpose()?;
                Ok(Request::Set {
                    address,
                    until,
                    cover,
                })
            }
        }
    }

    /// The line sent over the admin socket.
    pub fn to_line(&self) -> String {
        match self {
            Request::List => format!("{VERB} list"),
            Request::Set {
                address,
                until,
                cover,
            } => format!(
                "{VERB} set {address} {until} {}",
                cover.as_deref().unwrap_or("-")
            ),
            Request::Back(a) => format!("{VERB} back {a}"),
        }
    }

    /// The request an admin-socket line carries.
    pub fn from_line(line: &str) -> Option<Request> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [VERB, "list"] => Some(Request::List),
            [VERB, "set", a, until, cover] => Some(Request::Set {
                address: a.to_string(),
                until: until.parse().ok()?,
                cover: (*cover != "-").then(|| cover.to_string()),
            }),
            [VERB, "back", a] => Some(Request::Back(a.to_string())),
            _ => None,
        }
    }
}

fn view(config: &Config, a: &Absence) -> View {
    View {
        address: a.address.clone(),
        until: a.until_date(),
        cover: a
            .cover
            .clone()
            .or_else(|| config.team.aware.cover.as_ref().map(|c| c.to_string())),
        source: a.source.clone(),
    }
}

/// Runs a request against a memory backend.
pub async fn execute(memory: &dyn Backend, config: &Config, request: Request) -> Answer {
    let result = match request {
        Request::List => memory.absences().await.map(|mut all| {
            all.sort_by(|a, b| a.address.cmp(&b.address));
            Answer::List(all.iter().map(|a| view(config, a)).collect())
        }),
        Request::Set {
            address,
            until,
            cover,
        } => {
            let a = Absence {
                address,
                until,
                cover,
                source: "manual".into(),
            };
            let v = view(config, &a);
            memory.set_absence(a).await.map(|()| {
                tracing::info!(address = %v.address, until = %v.until, cover = ?v.cover, "away");
                let cover = v.cover.as_deref().unwrap_or("nobody");
                Answer::Done(format!(
                    "{} is away until {} (end of day, UTC); cover: {cover}",
                    v.address, v.until
                ))
            })
        }
        Request::Back(address) => memory.end_absence(&address).await.map(|had| {
            tracing::info!(address = %address, "back");
            Answer::Done(if had {
                format!("{address} is back")
            } else {
                format!("{address} was not away")
            })
        }),
    };
    result.unwrap_or_else(|e| Answer::Error(e.to_string()))
}

/// Serves one admin-socket line for a running server; the JSON answer.
pub async fn serve_line(memory: &dyn Backend, config: &Config, line: &str) -> String {
    let answer = match Request::from_line(line) {
        Some(r) => execute(memory, config, r).await,
        None => Answer::Error(format!("unknown away request {line:?}")),
    };
    serde_json::to_string(&answer).unwrap_or_default()
}

/// Runs a request for the command line: Redis directly, else the running server, else
/// the spool itself.
pub async fn request(config: &Config, request: Request) -> Result<Answer, String> {
    if let Some(m) = &config.memory {
        return Ok(execute(&RedisMemory::open(m), config, request).await);
    }
    let dir: &Path = &config.server.spool;
    // A server that is just starting holds the spool before its admin socket opens:
    // ask again for a moment rather than fail.
    let mut tries = 0;
    loop {
        if let Ok(stream) = UnixStream::connect(crate::queue::socket_path(dir)).await {
            return over_socket(stream, &request).await;
        }
        match Spool::open(dir) {
            Ok(spool) => {
                let answer = execute(&SpoolMemory::new(spool.clone()), config, request).await;
                // Make sure the committer flushed before the process ends.
                spool.commit(Vec::new()).await.map_err(|e| e.to_string())?;
                return Ok(answer);
            }
            Err(e) if tries >= 30 => return Err(e.to_string()),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// One request to the running server.
async fn over_socket(mut stream: UnixStream, request: &Request) -> Result<Answer, String> {
    stream
        .write_all(format!("{}\n", request.to_line()).as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&out).map_err(|e| format!("bad answer from the server: {e}"))
}

/// `away` as text: one line per absence.
pub fn format_list(items: &[View]) -> String {
    if items.is_empty() {
        return "nobody is away\n".into();
    }
    items
        .iter()
        .map(|v| {
            format!(
                "{}  away until {}  cover {}  ({})\n",
                v.address,
                v.until,
                v.cover.as_deref().unwrap_or("-"),
                v.source
            )
        })
        .collect()
}

/// The whole command: returns the exit code (0 ok, 1 runtime failure, 2 bad usage).
pub fn command(
    config: &Config,
    address: Option<&str>,
    until: Option<&str>,
    cover: Option<&str>,
    back: bool,
    json: bool,
) -> u8 {
    let req = match Request::parse(config, address, until, cover, back) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("teamrelay away: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("teamrelay away: {e}");
            return 1;
        }
    };
    match runtime.block_on(request(config, req)) {
        Ok(Answer::List(items)) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&items).unwrap_or_default()
            )
        }
        Ok(Answer::List(items)) => print!("{}", format_list(&items)),
        Ok(Answer::Done(text)) if json => println!("{}", serde_json::json!({ "done": text })),
        Ok(Answer::Done(text)) => println!("{text}"),
        Ok(Answer::Error(e)) | Err(e) => {
            eprintln!("teamrelay away: {e}");
            return 1;
        }
    }
    0
}
