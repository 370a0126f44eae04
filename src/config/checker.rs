//! The [`Checker`]: what every validation step writes its problems into — file, line
//! (from the TOML span) and key — plus the small typed readers (addresses, durations,
//! paths) they share. Validation modules depend on it; it depends on none of them.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::raw::SpStr;
use super::{parse_duration, ConfigError};
use crate::address::Address;

/// Collects problems while building the typed config.
pub(super) struct Checker<'a> {
    pub(super) file: String,
    pub(super) text: &'a str,
    /// The config file's directory: relative paths are relative to it.
    pub(super) base: PathBuf,
    pub(super) errors: Vec<ConfigError>,
}

impl Checker<'_> {
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn error_at<T>(
        &mut self,
        at: &Spanned<T>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = Some(self.line_of(at.span().start));
        self.push(line, key.into(), message.into());
    }

    pub(super) fn push(&mut self, line: Option<usize>, key: String, message: String) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            key,
            message,
        });
    }

    pub(super) fn address(&mut self, s: &SpStr, key: &str, what: &str) -> Option<Address> {
        match Address::parse(s.get_ref()) {
            // A quoted local part is valid RFC 5321 for a customer's address, but
            // teamrelay never routes one of its own (SPEC §5), so the file cannot name one.
            Ok(a) if a.is_quoted() => {
                self.error_at(
                    s,
                    key,
                    format!("{what} {:?} has a quoted local part", s.get_ref()),
                );
                None
            }
            Ok(a) => Some(a),
            Err(e) => {
                self.error_at(
                    s,
                    key,
                    format!("{what} {:?} is not an email address ({e})", s.get_ref()),
                );
                None
            }
        }
    }

    pub(super) fn duration(&mut self, s: &Option<SpStr>, key: &str, default: Duration) -> Duration {
        match s {
            None => default,
            Some(s) => parse_duration(s.get_ref()).unwrap_or_else(|e| {
                self.error_at(s, key, e);
                default
            }),
        }
    }

    pub(super) fn path(&self, s: &str) -> PathBuf {
        // Normalizes "./x" inside "./": `Path::components` drops inner `.` parts.
        self.base.join(s).components().collect()
    }
}
