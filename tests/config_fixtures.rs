//! SPEC §2 validation as fixtures (chasquid's t-20 shape): every
//! `tests/configs/bad/NAME.toml` is refused by the real `teamrelay check --config NAME.toml`
//! with exit code 2, and its stderr is exactly the lines of `NAME.err` (each
//! `NAME.toml:LINE: KEY: MESSAGE`, the file named relative to that folder so the text is
//! stable) followed by the `N problem(s) found` line. Each fixture is
//! `tests/configs/good/minimal.toml` with one thing broken, and starts with a comment
//! naming the rule it breaks.
//!
//! After a deliberate change of wording, `BLESS=1 cargo test --test config_fixtures`
//! rewrites the `.err` files from what the binary prints; review the diff before committing.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Fewer fixtures than this means the folder went missing, not that all is well.
const AT_LEAST: usize = 40;

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

/// The stderr `teamrelay check` must print for these error lines.
fn expected_stderr(lines: &str) -> String {
    let n = lines.lines().count();
    let s = if n == 1 { "" } else { "s" };
    format!("{lines}{n} problem{s} found; nothing was started.\n")
}

/// What is wrong with one fixture, if anything.
fn check_fixture(dir: &Path, name: &str, bless: bool) -> Result<(), String> {
    let toml = format!("{name}.toml");
    let text = std::fs::read_to_string(dir.join(&toml)).map_err(|e| e.to_string())?;
    if !text.starts_with("# SPEC") {
        return Err("the first line must be a `# SPEC §N: rule` comment".into());
    }
    let (code, out, err) = teamrelay_in(dir, &["check", "--config", &toml]);
    let err_file = dir.join(format!("{name}.err"));
    if bless {
        let lines = err.lines().filter(|l| !l.ends_with("nothing was started."));
        let body: String = lines.map(|l| format!("{l}\n")).collect();
        std::fs::write(&err_file, body).map_err(|e| e.to_string())?;
    }
    let want = std::fs::read_to_string(&err_file).map_err(|e| format!("{name}.err: {e}"))?;
    if want.trim().is_empty() {
        return Err(format!("{name}.err is empty"));
    }
    if code != 2 || !out.is_empty() {
        return Err(format!("exit code {code} (want 2), stdout {out:?}"));
    }
    if err != expected_stderr(&want) {
        return Err(format!("stderr differs:\n  want {want:?}\n  got  {err:?}"));
    }
    Ok(())
}

#[test]
fn every_bad_config_gives_its_exact_error() {
    let dir = configs().join("bad");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".toml").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= AT_LEAST, "only {} fixtures", names.len());
    let bless = std::env::var_os("BLESS").is_some();
    let failures: Vec<String> = names
        .iter()
        .filter_map(|name| {
            check_fixture(&dir, name, bless)
                .err()
                .map(|e| format!("{name}.toml: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

/// Every `.err` has its `.toml`: a renamed fixture does not leave a check behind unrun.
#[test]
fn no_err_file_without_its_config() {
    let dir = configs().join("bad");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "err") {
            assert!(
                path.with_extension("toml").exists(),
                "{} has no .toml",
                path.display()
            );
        }
    }
}

/// The file every fixture breaks loads, so each fixture's error is its one change.
#[test]
fn the_good_base_loads() {
    let (code, out, err) = teamrelay_in(
        &configs().join("good"),
        &["check", "--config", "minimal.toml"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sales@example.com → alice@example.com, bob@example.com"),
        "{out}"
    );
    assert!(err.is_empty(), "{err}");
}
