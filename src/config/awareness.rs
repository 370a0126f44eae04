//! The keys of SPEC §9 and §10: `[team]` cover, auto_away, owner_memory and
//! collision_window, `assign` on a list, and `[memory]`. Checked here, with the same
//! file:line:key errors as everything else, so `validate` only calls in.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::checker::Checker;
use super::raw::{RawMemory, RawTeam};
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

/// `[memory]`: a `redis://` or `rediss://` URL, a readable `password_file` and `ca_file`.
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
    let mut file = |s: &Option<Spanned<String>>, key: &str| -> Option<PathBuf> {
        let s = s.as_ref()?;
        let path = c.path(s.get_ref());
        if let Err(e) = std::fs::read(&path) {
            c.error_at(s, key, format!("cannot read {}: {e}", path.display()));
        }
        Some(path)
    };
    let password_file = file(&m.password_file, "memory.password_file");
    let ca_file = file(&m.ca_file, "memory.ca_file");
    Some(MemoryConfig {
        url,
        password_file,
        ca_file,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::parse;

    const GOOD: &str = r#"[team]
domains = ["example.com"]

[[listen]]
address = "127.0.0.1:2525"

[deliver]
team = "smtp://127.0.0.1:2600"
outside = "smtp://127.0.0.1:2601"

[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com"]
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, Path::new("lists.toml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_and_values() {
        let c = parse(GOOD, Path::new("lists.toml")).unwrap();
        assert_eq!(c.team.aware.cover, None);
        assert_eq!(c.team.aware.auto_away, Duration::from_secs(86400));
        assert_eq!(c.team.aware.owner_memory, Duration::from_secs(90 * 86400));
        assert_eq!(c.team.aware.collision_window, Duration::from_secs(1800));
        assert!(c.memory.is_none());
        assert!(!c.lists[0].assign_owner);
        let text = GOOD
            .replace(
                "domains = [\"example.com\"]",
                "domains = [\"example.com\"]\ncover = \"sales@example.com\"\nauto_away = \"2d\"\nowner_memory = \"30d\"\ncollision_window = \"10m\"",
            )
            .replace("\"bob@example.com\"]", "\"bob@example.com\"]\nassign = \"owner\"")
            + "\n[memory]\nurl = \"redis://:pw@127.0.0.1:6379/0\"\n";
        let c = parse(&text, Path::new("lists.toml")).unwrap();
        assert_eq!(
            c.team.aware.cover.as_ref().unwrap().to_string(),
            "sales@example.com"
        );
        assert_eq!(c.team.aware.auto_away, Duration::from_secs(2 * 86400));
        assert_eq!(c.team.aware.owner_memory, Duration::from_secs(30 * 86400));
        assert_eq!(c.team.aware.collision_window, Duration::from_secs(600));
        assert!(c.lists[0].assign_owner);
        let m = c.memory.unwrap();
        assert_eq!(m.url, "redis://:pw@127.0.0.1:6379/0");
        assert!(
            !format!("{m:?}").contains("pw"),
            "the password stays out of Debug"
        );
    }

    #[test]
    fn each_problem_names_file_line_and_key() {
        let team = "domains = [\"example.com\"]";
        let cases: &[(&str, &str, &str)] = &[
            (team, "domains = [\"example.com\"]\ncover = \"dan@elsewhere.example\"", "lists.toml:3: team.cover: dan@elsewhere.example is not in team.domains"),
            (team, "domains = [\"example.com\"]\ncover = \"dan@\"", "lists.toml:3: team.cover: address \"dan@\" is not an email address (local part and domain must not be empty)"),
            (team, "domains = [\"example.com\"]\nauto_away = \"soon\"", "lists.toml:3: team.auto_away: \"soon\" is not a duration like \"30s\", \"5m\", \"1h\", \"5d\""),
            (team, "domains = [\"example.com\"]\nowner_memory = \"9x\"", "lists.toml:3: team.owner_memory: \"9x\" has unit \"x\"; use s, m, h or d (e.g. \"30s\")"),
            (team, "domains = [\"example.com\"]\ncollision_window = \"9x\"", "lists.toml:3: team.collision_window: \"9x\" has unit \"x\"; use s, m, h or d (e.g. \"30s\")"),
            (team, "domains = [\"example.com\"]\ncolision_window = \"9m\"", "lists.toml:3: unknown field `colision_window`, expected one of `domains`, `private_address`, `never_archive`, `archive_bulk`, `private_memory`, `mailboxes`, `cover`, `auto_away`, `owner_memory`, `collision_window`"),
            ("\"bob@example.com\"]", "\"bob@example.com\"]\nassign = \"first\"", "lists.toml:14: list \"sales@example.com\": assign \"first\" is not known (the only value is \"owner\")"),
            ("\"bob@example.com\"]", "\"bob@example.com\"]\n\n[memory]\nurl = \"http://127.0.0.1:6379\"", "lists.toml:16: memory.url: \"http://127.0.0.1:6379\" is not a redis:// or rediss:// URL"),
            ("\"bob@example.com\"]", "\"bob@example.com\"]\n\n[memory]\nurl = \"redis://127.0.0.1\"\npassword_file = \"/nonexistent/redis.pass\"", "lists.toml:17: memory.password_file: cannot read /nonexistent/redis.pass: No such file or directory (os error 2)"),
            ("\"bob@example.com\"]", "\"bob@example.com\"]\n\n[memory]\nurl = \"redis://x\"\nurll = 1", "lists.toml:17: unknown field `urll`, expected one of `url`, `password_file`, `ca_file`"),
        ];
        for (from, to, want) in cases {
            assert!(GOOD.contains(from), "{from}");
            let got = errors(&GOOD.replacen(from, to, 1));
            assert_eq!(got, [want.to_string()], "case {to:?}");
        }
    }
}
