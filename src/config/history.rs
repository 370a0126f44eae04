//! `[history]` (SPEC §8): how long the customer history keeps a message, and where its
//! web page listens. Checked like every other table: each problem names file, line, key.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::checker::Checker;
use super::raw::SpStr;

/// Default `keep`: two years.
pub const DEFAULT_KEEP: Duration = Duration::from_secs(2 * 365 * 86400);

/// `[history]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHistory {
    pub keep: Option<SpStr>,
    pub listen: Option<SpStr>,
    pub tls: Option<SpStr>,
}

/// `[history]`, valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// Messages older than this (by acceptance time) are removed.
    pub keep: Duration,
    /// The web page's address, if it is served.
    pub listen: Option<SocketAddr>,
    /// The web page speaks TLS from the first byte (with `[tls]`).
    pub tls: bool,
}

/// `"2y"` and `"104w"` on top of the usual `s`/`m`/`h`/`d`: retention is counted in
/// years, and a year here is 365 days.
pub fn parse_keep(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (per, digits) = if let Some(d) = t.strip_suffix('y') {
        (365 * 86400, d)
    } else if let Some(d) = t.strip_suffix('w') {
        (7 * 86400, d)
    } else {
        return super::parse_duration(t)
            .map_err(|_| format!("{s:?} is not a duration like \"90d\", \"52w\", \"2y\""));
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like \"90d\", \"52w\", \"2y\""))?;
    n.checked_mul(per)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Checks `[history]`; `has_tls` says whether `[tls]` is present.
pub(super) fn check(c: &mut Checker, raw: &Spanned<RawHistory>, has_tls: bool) -> History {
    let r = raw.get_ref();
    let keep = match &r.keep {
        None => DEFAULT_KEEP,
        Some(s) => match parse_keep(s.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                c.error_at(s, "history.keep", "must be longer than zero");
                DEFAULT_KEEP
            }
            Err(e) => {
                c.error_at(s, "history.keep", e);
                DEFAULT_KEEP
            }
        },
    };
    let tls = super::validate::one_of(
        c,
        r.tls.as_ref(),
        "history.tls",
        &[("none", false), ("implicit", true)],
        |w| format!("{w:?} is not none or implicit"),
    );
    if tls && !has_tls {
        c.error_at(
            raw,
            "history.tls",
            "\"implicit\" needs a [tls] section with cert and key",
        );
    }
    let listen = r.listen.as_ref().and_then(|s| match s.get_ref().parse::<SocketAddr>() {
        Ok(a) if !tls && !a.ip().is_loopback() => {
            c.error_at(
                s,
                "history.listen",
                "off a loopback address needs tls = \"implicit\" (passwords and customer mail would travel in clear)",
            );
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            c.error_at(s, "history.listen", format!("{:?} is not ip:port", s.get_ref()));
            None
        }
    });
    History { keep, listen, tls }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_in_years_weeks_and_days() {
        assert_eq!(parse_keep("2y").unwrap(), DEFAULT_KEEP);
        assert_eq!(parse_keep("1w").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_keep("90d").unwrap(), Duration::from_secs(90 * 86400));
        assert!(parse_keep("y").is_err());
        assert!(parse_keep("2 years").is_err());
    }

    fn errors(history: &str) -> Vec<String> {
        let text = format!(
            "[team]\ndomains = [\"example.com\"]\n[deliver]\nteam = \"smtp://127.0.0.1:1\"\noutside = \"smtp://127.0.0.1:2\"\n[history]\n{history}"
        );
        match crate::config::parse(&text, std::path::Path::new("lists.toml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn history_errors_name_file_line_and_key() {
        assert_eq!(errors(""), Vec::<String>::new());
        assert_eq!(
            errors("listen = \"127.0.0.1:8025\"\nkeep = \"90d\""),
            Vec::<String>::new()
        );
        assert_eq!(
            errors("listen = \"0.0.0.0:8025\""),
            ["lists.toml:7: history.listen: off a loopback address needs tls = \"implicit\" (passwords and customer mail would travel in clear)"]
        );
        assert_eq!(
            errors("keep = \"forever\""),
            ["lists.toml:7: history.keep: \"forever\" is not a duration like \"90d\", \"52w\", \"2y\""]
        );
        assert_eq!(
            errors("tls = \"starttls\""),
            ["lists.toml:7: history.tls: \"starttls\" is not none or implicit"]
        );
        assert_eq!(
            errors("tls = \"implicit\""),
            ["lists.toml:6: history.tls: \"implicit\" needs a [tls] section with cert and key"]
        );
        assert_eq!(
            errors("color = \"blue\"")[0]
                .split(':')
                .take(2)
                .collect::<Vec<_>>(),
            ["lists.toml", "7"]
        );
    }
}
