//! The bytes of one delivery: teamrelay's `Received:`, the plan's header block, then the
//! message exactly as received, read from its spool file in chunks (never whole).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::route::render;
use crate::spool::{Entry, StoredDelivery};

/// Chunk size for reading the body file.
const CHUNK: usize = 64 * 1024;

/// The text that goes before the body: `Received:` plus the delivery's headers.
pub fn prefix(entry: &Entry, delivery: &StoredDelivery) -> String {
    format!("{}\r\n{}", entry.received, render(&delivery.headers))
}

/// Adds SMTP dot-stuffing (RFC 5321 §4.5.2) to a stream of chunks, remembering across
/// chunk boundaries whether a line just started.
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
        }
    }
}

impl DotStuffer {
    /// Appends `chunk`, stuffed, to `out`.
    pub fn stuff(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len());
        while let Some(&first) = chunk.first() {
            if self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            // A line at a time: only a line's first byte can need a dot.
            match memchr::memchr(b'\n', chunk) {
                Some(end) => {
                    out.extend_from_slice(&chunk[..=end]);
                    chunk = &chunk[end + 1..];
                    self.at_line_start = true;
                }
                None => {
                    out.extend_from_slice(chunk);
                    self.at_line_start = false;
                    return;
                }
            }
        }
    }

    /// The end-of-data marker, with a CRLF first if the message did not end in one.
    pub fn end(&self) -> &'static [u8] {
        if self.at_line_start {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        }
    }
}

/// Prefix and an in-memory body, stuffed and terminated, ready to write in one go.
pub fn stuff_all(prefix: &str, body: &[u8]) -> Vec<u8> {
    let mut stuffer = DotStuffer::default();
    let mut wire = Vec::with_capacity(prefix.len() + body.len() + body.len() / 64 + 8);
    stuffer.stuff(prefix.as_bytes(), &mut wire);
    stuffer.stuff(body, &mut wire);
    wire.extend_from_slice(stuffer.end());
    wire
}

/// Writes prefix and body with dot-stuffing and the final `.`, for DATA.
pub async fn write_data<W: AsyncWrite + Unpin>(
    out: &mut W,
    prefix: &str,
    body: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<()> {
    let mut stuffer = DotStuffer::default();
    let mut wire = Vec::with_capacity(CHUNK + CHUNK / 8);
    stuffer.stuff(prefix.as_bytes(), &mut wire);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stuffer.stuff(&buf[..n], &mut wire);
        out.write_all(&wire).await?;
        wire.clear();
    }
    wire.extend_from_slice(stuffer.end());
    out.write_all(&wire).await?;
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffs_across_chunks() {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        for chunk in [&b".a\r"[..], b"\n", b".", b"b\r\n..c\r\n"] {
            s.stuff(chunk, &mut out);
        }
        assert_eq!(out, b"..a\r\n..b\r\n...c\r\n");
        assert_eq!(s.end(), b".\r\n");
        s.stuff(b"no newline", &mut out);
        assert_eq!(s.end(), b"\r\n.\r\n");
    }

    proptest::proptest! {
        /// A line at a time stuffs what a byte at a time would, on any split.
        #[test]
        fn stuffing_by_lines_matches_stuffing_by_bytes(
            body in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just(b'.'),
                    proptest::strategy::Just(b'\n'),
                    proptest::strategy::Just(b'\r'),
                    proptest::num::u8::ANY,
                ],
                0..200,
            ),
            chunk in 1usize..30,
        ) {
            let mut want = Vec::new();
            let mut at_line_start = true;
            for &b in &body {
                if at_line_start && b == b'.' { want.push(b'.'); }
                want.push(b);
                at_line_start = b == b'\n';
            }
            let mut s = DotStuffer::default();
            let mut out = Vec::new();
            for piece in body.chunks(chunk) { s.stuff(piece, &mut out); }
            proptest::prop_assert_eq!(out, want);
            proptest::prop_assert_eq!(s.at_line_start, at_line_start);
        }
    }

    #[tokio::test]
    async fn data_round_trips_through_the_decoder() {
        let body = b"Subject: x\r\n\r\n.hidden\r\nline\r\n".to_vec();
        let mut wire = Vec::new();
        write_data(&mut wire, "Received: x\r\n", &mut &body[..])
            .await
            .unwrap();
        let mut d = crate::smtp::data::DotDecoder::new(1 << 20);
        let mut out = Vec::new();
        assert_eq!(d.feed(&wire, &mut out), Some(wire.len()));
        let mut want = b"Received: x\r\n".to_vec();
        want.extend_from_slice(&body);
        assert_eq!(out, want);
    }
}
