//! The file as written: serde types that mirror `lists.toml` one to one.
//!
//! Every table denies unknown keys so a typo (`member =` for `members =`) is an error
//! instead of a silently ignored setting. Values that later checks may complain about are
//! `Spanned`, so each complaint can name its line.

use serde::Deserialize;
use toml::Spanned;

/// A string with its place in the file.
pub type SpStr = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub team: Spanned<RawTeam>,
    #[serde(default)]
    pub listen: Vec<Spanned<RawListen>>,
    pub tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub user: Vec<Spanned<RawUser>>,
    pub deliver: Spanned<RawDeliver>,
    #[serde(default)]
    pub list: Vec<Spanned<RawList>>,
    pub admin: Option<RawAdmin>,
    pub memory: Option<Spanned<RawMemory>>,
    pub history: Option<Spanned<super::history::RawHistory>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub hostname: Option<SpStr>,
    pub spool: Option<SpStr>,
    pub max_message_size: Option<Spanned<i64>>,
    pub max_recipients: Option<Spanned<i64>>,
    pub idle_timeout: Option<SpStr>,
    pub max_connections: Option<Spanned<i64>>,
    pub max_connections_per_ip: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeam {
    pub domains: Vec<SpStr>,
    pub private_address: Option<SpStr>,
    #[serde(default)]
    pub never_archive: Vec<SpStr>,
    #[serde(default)]
    pub archive_bulk: bool,
    pub private_memory: Option<SpStr>,
    pub mailboxes: Option<Vec<SpStr>>,
    pub cover: Option<SpStr>,
    pub auto_away: Option<SpStr>,
    pub owner_memory: Option<SpStr>,
    pub collision_window: Option<SpStr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub address: SpStr,
    pub mode: Option<SpStr>,
    pub protocol: Option<SpStr>,
    pub tls: Option<SpStr>,
    #[serde(default)]
    pub allow: Vec<SpStr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: SpStr,
    pub key: SpStr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: SpStr,
    pub password_hash: SpStr,
    #[serde(default)]
    pub addresses: Vec<SpStr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeliver {
    pub team: SpStr,
    pub outside: SpStr,
    pub resolver: Option<SpStr>,
    pub retry: Option<Vec<SpStr>>,
    pub max_queue_time: Option<SpStr>,
    pub timeout: Option<SpStr>,
    pub team_auth: Option<Spanned<RawAuth>>,
    pub outside_auth: Option<Spanned<RawAuth>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    pub username: Option<SpStr>,
    pub password_file: Option<SpStr>,
    pub ca_file: Option<SpStr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawList {
    pub address: SpStr,
    #[serde(default)]
    pub members: Vec<SpStr>,
    pub archive_of: Option<Vec<SpStr>>,
    pub assign: Option<SpStr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: SpStr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMemory {
    pub url: SpStr,
    pub password_file: Option<SpStr>,
    pub ca_file: Option<SpStr>,
}
