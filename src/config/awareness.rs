//! The keys of SPEC §9 and §10: `[team]` cover, auto_away, owner_memory and
//! collision_window, `assign` on a list, and `[memory]`. Checked here, with the same
//! file:line:key errors as everything else, so `validate` only calls in.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::{RawMemory, RawTeam};
use super::validate::Checker;
use super::{List, MemoryConfig, TeamAwareness};
use crate::address::Address;

/// `[team]`'s team-awareness keys. `cover` is checked against the lists afterwards.
pub(super) fn check_team(c: &mut Checker, t: &RawTeam, domains: &[String]) -> TeamAwareness {
    let cover = t.cover.as_ref().and_then(|s| {
        let a = c.address(s, "team.cover", "address")?;
        if !domains.iter().any(|d| d == a.domain()) {
            c.error_at(s, "team.cover", format!("{a} is not in team.domains"));
        }
        Some(a)
    });
    TeamAwareness {
        cover,
        auto_away: c.duration(&t.auto_away, "team.auto_away", Duration::from_secs(86400)),
        owner_memory: c.duration(
            &t.owner_memory,
            "team.owner_memory",
            Duration::from_secs(90 * 86400),
        ),
        collision_window: c.duration(
            &t.collision_window,
            "team.collision_window",
            Duration::from_secs(30 * 60),
        ),
    }
}

/// `assign` on one list: only `"owner"` is known.
pub(super) fn check_assign(c: &mut Checker, s: &Option<Spanned<String>>, key: &str) -> bool {
    match s {
        None => false,
        Some(v) if v.get_ref() == "owner" => true,
        Some(v) => {
            c.error_at(
                v,
                key,
                format!(
                    "assign {:?} is not known (the only value is \"owner\")",
                    v.get_ref()
                ),
            );
            false
        }
    }
}

/// `team.private_address` must not be the cover; the cover must be a team address.
pub(super) fn check_cover(c: &mut Checker, raw: &RawTeam, cover: &Option<Address>, lists: &[List]) {
    let (Some(cover), Some(s)) = (cover, &raw.cover) else {
        return;
    };
    if lists.iter().any(|l| &l.address == cover && l.is_archive()) {
        c.error_at(
            s,
            "team.cover",
            "must not be an archive list (a cover gets originals)",
        );
    }
}

/// `[memory]`: a `redis://` or `rediss://` URL, and a readable `password_file`.
pub(super) fn check_memory(c: &mut Checker, raw: &Spanned<RawMemory>) -> Option<MemoryConfig> {
    let m = raw.get_ref();
    let url = m.url.get_ref().trim().to_string();
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !scheme_ok
        || url
            .split_once("://")
            .is_none_or(|(_, rest)| rest.is_empty())
    {
        c.error_at(
            &m.url,
            "memory.url",
            format!("{url:?} is not a redis:// or rediss:// URL"),
        );
        return None;
    }
    let password_file: Option<PathBuf> = m.password_file.as_ref().map(|p| c.path(p.get_ref()));
    if let (Some(path), Some(s)) = (&password_file, &m.password_file) {
        if let Err(e) = std::fs::read_to_string(path) {
            c.error_at(
                s,
                "memory.password_file",
                format!("cannot read {}: {e}", path.display()),
            );
        }
    }
    Some(MemoryConfig { url, password_file })
}
