//! The shipped systemd unit stays hardened: `systemd-analyze security` scores it at most
//! 2.0, it keeps the settings an administrator relies on (notify, private files, no
//! restart loop on a bad config), and every path the deploy samples write to is writable
//! under its `ProtectSystem=strict`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn unit_text() -> String {
    std::fs::read_to_string(deploy().join("teamrelay.service")).expect("deploy/teamrelay.service")
}

/// Every value of `key=` in the unit, in order (a key may repeat, like ExecReload=).
fn values(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
        .collect()
}

fn one(unit: &str, key: &str) -> String {
    let all = values(unit, key);
    assert_eq!(
        all.len(),
        1,
        "the unit must set {key}= exactly once, has {all:?}"
    );
    all[0].clone()
}

#[test]
fn systemd_analyze_scores_the_unit_at_most_2() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(deploy().join("teamrelay.service"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "systemd-analyze is needed for this test and could not run ({e}); \
                 install it with `apt-get install -y systemd` (CI does)"
            )
        });
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no overall score in systemd-analyze output:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .rsplit_once(": ")
        .and_then(|(_, v)| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}

#[test]
fn unit_notifies_keeps_files_private_and_does_not_loop_on_a_bad_config() {
    let unit = unit_text();
    assert_eq!(one(&unit, "Type"), "notify");
    assert_eq!(one(&unit, "NotifyAccess"), "main");
    assert_eq!(one(&unit, "UMask"), "0077");
    assert_eq!(one(&unit, "RestartPreventExitStatus"), "2");
    assert_eq!(one(&unit, "StateDirectory"), "teamrelay");
    assert_eq!(one(&unit, "StateDirectoryMode"), "0700");
    assert_eq!(one(&unit, "User"), "teamrelay");
    assert_eq!(one(&unit, "AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one(&unit, "CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one(&unit, "ProtectSystem"), "strict");
    assert!(values(&unit, "SystemCallFilter").contains(&"@system-service".to_string()));
    // Reload checks the file before the HUP: the check comes first, then the signal.
    let reload = values(&unit, "ExecReload");
    assert_eq!(reload.len(), 2, "ExecReload: {reload:?}");
    assert!(reload[0].contains("teamrelay check --config"), "{reload:?}");
    assert!(reload[1].contains("kill -HUP $MAINPID"), "{reload:?}");
}

#[test]
fn sysusers_file_creates_the_units_user() {
    let text = std::fs::read_to_string(deploy().join("sysusers.d/teamrelay.conf"))
        .expect("deploy/sysusers.d/teamrelay.conf");
    let user = text
        .lines()
        .find(|l| l.starts_with("u "))
        .expect("a `u` line in the sysusers file");
    assert_eq!(user.split_whitespace().nth(1), Some("teamrelay"), "{user}");
}

/// Folders the service may write: its StateDirectory and any ReadWritePaths.
fn writable_roots(unit: &str) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = values(unit, "StateDirectory")
        .iter()
        .flat_map(|v| {
            v.split_whitespace()
                .map(|d| Path::new("/var/lib").join(d))
                .collect::<Vec<_>>()
        })
        .collect();
    for v in values(unit, "ReadWritePaths") {
        roots.extend(
            v.split_whitespace()
                .map(|p| PathBuf::from(p.trim_start_matches('-'))),
        );
    }
    roots
}

/// The paths a config writes to: the spool and every `maildir://` delivery.
fn written_paths(config: &toml::Table) -> Vec<String> {
    let mut paths = Vec::new();
    if let Some(spool) = config.get("server").and_then(|s| s.get("spool")) {
        paths.push(spool.as_str().expect("spool is a string").to_string());
    }
    if let Some(deliver) = config.get("deliver").and_then(|d| d.as_table()) {
        for key in ["team", "outside"] {
            if let Some(dir) = deliver
                .get(key)
                .and_then(|v| v.as_str())
                .and_then(|u| u.strip_prefix("maildir://"))
            {
                paths.push(dir.to_string());
            }
        }
    }
    paths
}

#[test]
fn deploy_samples_write_only_where_the_unit_allows() {
    let roots = writable_roots(&unit_text());
    let mut seen = 0;
    for entry in std::fs::read_dir(deploy()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("lists") && name.ends_with(".toml")) {
            continue;
        }
        seen += 1;
        let config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        for written in written_paths(&config) {
            let p = Path::new(&written);
            assert!(
                p.is_absolute(),
                "{name}: {written} is relative, i.e. under the read-only /etc/teamrelay"
            );
            assert!(
                roots.iter().any(|r| p.starts_with(r)),
                "{name}: {written} is not under a writable folder of the unit ({roots:?})"
            );
        }
    }
    assert!(
        seen >= 5,
        "expected lists.toml and the four provider samples in deploy/, found {seen}"
    );
}
