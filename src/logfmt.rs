//! Log fields in logfmt: `key=value`, with values that hold spaces, quotes or `=`
//! quoted and escaped, so `grep`, `awk` and logfmt parsers (Loki, Vector, lnav) see one
//! value where tracing-subscriber's default would print several words.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// Formats one value the logfmt way: bare when it is one plain word, else quoted with
/// `"` and `\` escaped and control characters written as escapes.
pub fn value(out: &mut impl fmt::Write, v: &str) -> fmt::Result {
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '=' | '\\'));
    if plain {
        return out.write_str(v);
    }
    out.write_char('"')?;
    for c in v.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// The `fmt_fields` of teamrelay's subscriber: `MakeVisitor` for [`Visitor`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Logfmt;

impl<'w> MakeVisitor<Writer<'w>> for Logfmt {
    type Visitor = Visitor<'w>;
    fn make_visitor(&self, target: Writer<'w>) -> Visitor<'w> {
        Visitor {
            out: target,
            first: true,
            result: Ok(()),
        }
    }
}

/// Writes the event's message first (as tracing does), then `key=value` pairs.
pub struct Visitor<'w> {
    out: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn field(&mut self, field: &Field, v: &str) {
        if self.result.is_err() {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.out, "{sep}{v}")
        } else {
            write!(self.out, "{sep}{}=", field.name()).and_then(|_| value(&mut self.out, v))
        };
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, v: &str) {
        self.field(field, v);
    }

    fn record_debug(&mut self, field: &Field, v: &dyn fmt::Debug) {
        self.field(field, &format!("{v:?}"));
    }
}

impl VisitOutput<fmt::Result> for Visitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for Visitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.out
    }
}

#[cfg(test)]
mod tests {
    use super::value;

    #[test]
    fn logfmt_values() {
        let cases = [
            ("0123ABCD", "0123ABCD"),
            (
                "alice@example.com,bob@example.com",
                "alice@example.com,bob@example.com",
            ),
            ("550 5.1.1 no such user", "\"550 5.1.1 no such user\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("a=b", "\"a=b\""),
            ("", "\"\""),
            ("line\nbreak", "\"line\\nbreak\""),
        ];
        for (raw, want) in cases {
            let mut out = String::new();
            value(&mut out, raw).unwrap();
            assert_eq!(out, want, "{raw:?}");
        }
    }
}
