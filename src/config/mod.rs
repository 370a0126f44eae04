//! `lists.toml`: the typed configuration, and the one way to get it — [`load`], which
//! checks every rule of SPEC §2 and reports every problem at once, each with file, line
//! and key. A `Config` value is therefore always valid; nothing downstream re-checks it.

mod awareness;
mod checker;
mod duration;
pub mod history;
mod lists;
mod raw;
mod summary;
mod target;
#[cfg(test)]
mod tests;
mod tls;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use duration::{format_duration, parse_duration};
pub use summary::{summary, warnings};
pub use target::{parse_resolver, Cidr, Target, TargetTls};

use crate::address::{Address, Pattern};

/// Default `max_message_size`: 35 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 35 * 1024 * 1024;

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (relative paths inside were resolved against its folder).
    pub path: PathBuf,
    pub server: Server,
    pub team: Team,
    pub listen: Vec<Listener>,
    pub tls: Option<TlsFiles>,
    pub users: Vec<User>,
    pub deliver: Deliver,
    pub lists: Vec<List>,
    pub admin: Option<SocketAddr>,
    /// `[memory]`: where the routing memories live; `None`: in the spool.
    pub memory: Option<MemoryConfig>,
    /// `[history]`: the customer history (SPEC §8), when configured.
    pub history: Option<history::History>,
    /// Index into `lists` by list address.
    list_index: HashMap<Address, usize>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    pub hostname: String,
    pub spool: PathBuf,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub idle_timeout: Duration,
    /// Open connections over all listeners; more get `421 4.7.0`.
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_connections_per_ip: usize,
}

/// `[team]`.
#[derive(Debug, Clone)]
pub struct Team {
    /// Lower-cased, exact-match domains.
    pub domains: Vec<String>,
    pub private_address: Option<Address>,
    pub never_archive: Vec<Pattern>,
    pub archive_bulk: bool,
    pub private_memory: Duration,
    /// `None`: every address in the team's domains is accepted.
    pub mailboxes: Option<Vec<Pattern>>,
    /// Team awareness (SPEC §9).
    pub aware: TeamAwareness,
}

/// The `[team]` keys of SPEC §9.
#[derive(Debug, Clone)]
pub struct TeamAwareness {
    /// Who covers for an absent teammate by default; also what an auto-reply needs.
    pub cover: Option<Address>,
    /// How long an auto-reply marks its sender away.
    pub auto_away: Duration,
    /// How long a thread's owner (and a Message-ID's thread) is remembered.
    pub owner_memory: Duration,
    /// Two teammates answering one thread within this get a notice.
    pub collision_window: Duration,
}

/// `[memory]` (SPEC §10).
#[derive(Clone)]
pub struct MemoryConfig {
    /// `redis://…` or `rediss://…`, possibly with a password in it.
    pub url: String,
    /// A file holding the password, read when connecting.
    pub password_file: Option<PathBuf>,
    /// `rediss://`: trust this CA (PEM) instead of the system roots.
    pub ca_file: Option<PathBuf>,
}

impl MemoryConfig {
    /// The URL without the password it may carry, for logs and `check`.
    pub fn shown_url(&self) -> String {
        match self.url.rsplit_once('@') {
            Some((head, tail)) => format!("{}://…@{tail}", head.split("://").next().unwrap_or("")),
            None => self.url.clone(),
        }
    }
}

impl fmt::Debug for MemoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("MemoryConfig")
            .field("url", &self.shown_url())
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What a listener is for (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Mx,
    Submission,
    Relay,
    Tap,
}

/// The protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Smtp,
    Lmtp,
}

/// TLS on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenTls {
    None,
    StartTls,
    Implicit,
}

/// One `[[listen]]`.
#[derive(Debug, Clone)]
pub struct Listener {
    pub address: SocketAddr,
    pub mode: Mode,
    pub protocol: Protocol,
    pub tls: ListenTls,
    pub allow: Vec<Cidr>,
}

/// `[tls]`: certificate chain and key, PEM, and the server config made from them.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server: std::sync::Arc<tokio_rustls::rustls::ServerConfig>,
    /// Names and expiry of the leaf certificate, for `check`.
    pub certificate: Option<tls::CertificateInfo>,
}

/// One `[[user]]` (submission account).
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password_hash: String,
    pub addresses: Vec<Address>,
}

/// `[deliver]`.
#[derive(Debug, Clone)]
pub struct Deliver {
    pub team: Target,
    pub outside: Target,
    /// `deliver.resolver`: the DNS server for `mx` delivery; `None`: the system's.
    pub resolver: Option<std::net::SocketAddr>,
    pub retry: Vec<Duration>,
    pub max_queue_time: Duration,
    /// How long to wait for each reply of a next hop (a stalled server is a temporary
    /// failure after this).
    pub timeout: Duration,
    pub team_auth: Option<RouteAuth>,
    pub outside_auth: Option<RouteAuth>,
}

/// Credentials and trust for one delivery route. The password stays in its file and is
/// read when a connection needs it, so it never sits in a log or a `Debug` dump.
#[derive(Debug, Clone, Default)]
pub struct RouteAuth {
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

/// One `[[list]]`.
#[derive(Debug, Clone)]
pub struct List {
    pub address: Address,
    pub members: Vec<Address>,
    /// Empty for plain lists; non-empty makes this an archive list.
    pub archive_of: Vec<Pattern>,
    /// `assign = "owner"` (SPEC §9).
    pub assign_owner: bool,
}

impl List {
    /// Whether this is an archive list.
    pub fn is_archive(&self) -> bool {
        !self.archive_of.is_empty()
    }
}

impl Config {
    /// Every leaf member of a list, depth first in file order, each once. Safe on
    /// cycles (validation forbids them, but the policy must not loop if handed one).
    pub fn members(&self, list: &Address) -> Vec<Address> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut visiting = std::collections::HashSet::new();
        self.walk_members(list, &mut out, &mut seen, &mut visiting);
        out
    }

    fn walk_members(
        &self,
        list: &Address,
        out: &mut Vec<Address>,
        seen: &mut std::collections::HashSet<Address>,
        visiting: &mut std::collections::HashSet<Address>,
    ) {
        let Some(l) = self.list(list) else { return };
        if !visiting.insert(list.clone()) {
            return;
        }
        for m in &l.members {
            if self.list(m).is_some() {
                self.walk_members(m, out, seen, visiting);
            } else if seen.insert(m.clone()) {
                out.push(m.clone());
            }
        }
    }

    /// Whether `addr` is in one of the team's domains.
    pub fn is_internal(&self, addr: &Address) -> bool {
        self.team.domains.iter().any(|d| d == addr.domain())
    }

    /// The list with this address.
    pub fn list(&self, addr: &Address) -> Option<&List> {
        self.list_index.get(addr).map(|&i| &self.lists[i])
    }

    /// The list whose `-bounces` address this is.
    pub fn list_of_bounces(&self, addr: &Address) -> Option<&List> {
        let local = addr.local().strip_suffix("-bounces")?;
        self.lists
            .iter()
            .find(|l| l.address.local() == local && l.address.domain() == addr.domain())
    }

    /// Whether a team address is a mailbox we accept mail for (`team.mailboxes`).
    pub fn is_known_mailbox(&self, addr: &Address) -> bool {
        match &self.team.mailboxes {
            None => true,
            Some(patterns) => patterns.iter().any(|p| p.matches(addr)),
        }
    }

    /// The submission account with this name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// One problem in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: ", self.file, line)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found, in file order.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse(&text, path)
}

/// Validates config text as if it had been read from `path` (which names it in errors
/// and anchors relative paths).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    validate::validate(text, path)
}
