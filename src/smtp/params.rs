//! What smtp-proto's grammar loses or gets wrong on a MAIL/RCPT line, read from the raw
//! line: the path exactly as written (smtp-proto strips the quotes of a quoted local
//! part, SPEC §5 wants it passed on as written), the `SIZE=` value however many digits
//! it has (smtp-proto wraps numbers past 20 digits to small ones), and HTTP probes.
//! Pure functions over bytes, table-tested.

/// A `SIZE=` parameter as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeParam {
    /// No `SIZE=` on the line.
    Absent,
    /// Digits only; `None` when the number does not fit in a `u64` (so it is above any
    /// limit).
    Number(Option<u64>),
    /// Anything else after `SIZE=` (RFC 1870: `size-value ::= 1*20DIGIT`).
    NotANumber,
}

/// The `SIZE=` parameter of a MAIL line.
pub fn size_param(line: &[u8]) -> SizeParam {
    let text = String::from_utf8_lossy(line);
    let Some(rest) = after_path(&text) else {
        return SizeParam::Absent;
    };
    for word in rest.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        if !key.eq_ignore_ascii_case("SIZE") {
            continue;
        }
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return SizeParam::NotANumber;
        }
        return SizeParam::Number(value.parse().ok());
    }
    SizeParam::Absent
}

/// The path of a MAIL or RCPT line without its angle brackets, exactly as written
/// (`"john doe"@shop.example` keeps its quotes). `None` if there is no `<…>`.
pub fn raw_path(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    let open = text.find('<')?;
    let inner = &text[open + 1..];
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Some(inner[..i].to_string()),
            _ => {}
        }
    }
    None
}

/// The text after the closing `>` of the path (the ESMTP parameters).
fn after_path(text: &str) -> Option<&str> {
    let open = text.find('<')?;
    let path = raw_path(&text.as_bytes()[open..])?;
    Some(&text[open + path.len() + 2..])
}

/// Whether a line is the start of an HTTP request (a browser or proxy probe).
pub fn is_http_request(line: &[u8]) -> bool {
    const METHODS: [&[u8]; 5] = [b"GET ", b"POST ", b"HEAD ", b"PUT ", b"CONNECT "];
    METHODS
        .iter()
        .any(|m| line.len() >= m.len() && line[..m.len()].eq_ignore_ascii_case(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1870_size_values() {
        let cases: [(&str, SizeParam); 8] = [
            ("MAIL FROM:<a@b.c>\r\n", SizeParam::Absent),
            (
                "MAIL FROM:<a@b.c> SIZE=1000\r\n",
                SizeParam::Number(Some(1000)),
            ),
            (
                "MAIL FROM:<a@b.c> size=7 BODY=8BITMIME\r\n",
                SizeParam::Number(Some(7)),
            ),
            (
                "MAIL FROM:<a@b.c> SIZE=123456789012345678901234567\r\n",
                SizeParam::Number(None),
            ),
            ("MAIL FROM:<a@b.c> SIZE=12x\r\n", SizeParam::NotANumber),
            ("MAIL FROM:<a@b.c> SIZE=\r\n", SizeParam::NotANumber),
            ("MAIL FROM:<a@b.c> SIZE=-1\r\n", SizeParam::NotANumber),
            ("MAIL FROM:<\"SIZE=1 x\"@b.c>\r\n", SizeParam::Absent),
        ];
        for (line, want) in cases {
            assert_eq!(size_param(line.as_bytes()), want, "{line}");
        }
    }

    #[test]
    fn paths_as_written() {
        let cases = [
            ("MAIL FROM:<a@b.c>\r\n", Some("a@b.c")),
            ("MAIL FROM:<>\r\n", Some("")),
            (
                "MAIL FROM:<\"john doe\"@shop.example> SIZE=10\r\n",
                Some("\"john doe\"@shop.example"),
            ),
            (
                "RCPT TO:<\"a>b\"@shop.example>\r\n",
                Some("\"a>b\"@shop.example"),
            ),
            (
                "RCPT TO:<\"a\\\"b\"@x.example>\r\n",
                Some("\"a\\\"b\"@x.example"),
            ),
            ("RCPT TO:a@b.c\r\n", None),
            ("RCPT TO:<\"open@b.c>\r\n", None),
        ];
        for (line, want) in cases {
            assert_eq!(raw_path(line.as_bytes()).as_deref(), want, "{line}");
        }
    }

    #[test]
    fn http_methods_are_probes() {
        for probe in [
            "GET / HTTP/1.1\r\n",
            "post /x HTTP/1.0\r\n",
            "CONNECT a:25 HTTP/1.1\r\n",
            "HEAD / HTTP/1.1\r\n",
            "PUT /x HTTP/1.1\r\n",
        ] {
            assert!(is_http_request(probe.as_bytes()), "{probe}");
        }
        for smtp in ["EHLO x\r\n", "GETX\r\n", "HELO get\r\n"] {
            assert!(!is_http_request(smtp.as_bytes()), "{smtp}");
        }
    }
}
