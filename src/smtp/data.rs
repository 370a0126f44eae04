//! The DATA reader: a state machine over bytes (content runs inside a line copied at
//! once) that removes dot-stuffing, finds the one true end of data (`CRLF.CRLF`), and
//! notices bare CR or LF and oversize messages without buffering the message.
//!
//! Only `CRLF.CRLF` ends the data. `LF.LF`, `CR.CR`, `LF.CRLF` and every other mix are
//! not an end: they are bare line endings, which make the whole message rejected
//! (`550 5.5.2`), so that no downstream server can see a second message hidden in this
//! one (SMTP smuggling, CVE-2023-51764). The state machine is pure so it can be fuzzed
//! and tested on every split of its input.

/// Where in a line the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the very beginning).
    LineStart,
    /// Saw `.` at the start of a line.
    Dot,
    /// Saw `.` CR at the start of a line.
    DotCr,
    /// Inside a line.
    Mid,
    /// Saw CR inside a line.
    MidCr,
    /// Saw the final CRLF.CRLF.
    Done,
}

/// What went wrong with a message, decided once the end of data is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// A CR or LF that was not part of CRLF.
    BareLineEnding,
    /// More than the size limit.
    TooBig,
}

/// Decodes one DATA phase.
#[derive(Debug)]
pub struct DotDecoder {
    state: State,
    max: usize,
    written: usize,
    error: Option<DataError>,
}

impl DotDecoder {
    /// A decoder that refuses more than `max` bytes of message.
    pub fn new(max: usize) -> DotDecoder {
        DotDecoder {
            state: State::LineStart,
            max,
            written: 0,
            error: None,
        }
    }

    /// Feeds bytes from the wire; appends message bytes to `out`. Returns how many input
    /// bytes belong to the DATA phase: `Some(n)` once the end of data was found (bytes
    /// after `n` are the next command), `None` if more input is needed.
    ///
    /// After an error the decoder keeps looking for the end of data but writes nothing
    /// more, so memory stays bounded whatever the peer sends.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Mid {
                // Inside a line every byte but CR and LF is content, kept as it is: copy
                // the run up to the next one at once (what `mid` would do byte by byte).
                let rest = &input[i..];
                let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
                if run > 0 {
                    self.emit(&rest[..run], out);
                    i += run;
                    continue;
                }
            }
            self.step(input[i], out);
            i += 1;
            if self.state == State::Done {
                return Some(i);
            }
        }
        None
    }

    /// The verdict once [`feed`](Self::feed) returned `Some`.
    pub fn result(&self) -> Result<usize, DataError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.written),
        }
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.error.is_some() {
            return;
        }
        if self.written + bytes.len() > self.max {
            self.error = Some(DataError::TooBig);
            return;
        }
        self.written += bytes.len();
        out.extend_from_slice(bytes);
    }

    fn bare(&mut self) {
        // A bare line ending outranks "too big": it is the more serious finding.
        self.error = Some(DataError::BareLineEnding);
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        self.state = match (self.state, b) {
            (State::LineStart, b'.') => State::Dot,
            (State::Dot, b'\r') => State::DotCr,
            (State::DotCr, b'\n') => State::Done,
            (State::DotCr, _) => {
                // ".\r" then something else: the CR was bare.
                self.bare();
                return self.mid(b, out);
            }
            // A stuffed dot: drop it, the rest of the line is content.
            (State::Dot, _) => return self.mid(b, out),
            (State::MidCr, b'\n') => {
                self.emit(b"\r\n", out);
                State::LineStart
            }
            (State::MidCr, _) => {
                self.bare();
                return self.mid(b, out);
            }
            (State::LineStart | State::Mid, _) => return self.mid(b, out),
            (State::Done, _) => State::Done,
        };
    }

    fn mid(&mut self, b: u8, out: &mut Vec<u8>) {
        self.state = match b {
            b'\r' => State::MidCr,
            b'\n' => {
                // Bare LF: not a line end, so a following ".\r\n" cannot end the data.
                self.bare();
                State::Mid
            }
            _ => {
                self.emit(&[b], out);
                State::Mid
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `chunk` bytes.
    fn decode(
        input: &[u8],
        chunk: usize,
        max: usize,
    ) -> (Option<usize>, Result<Vec<u8>, DataError>) {
        let mut d = DotDecoder::new(max);
        let mut out = Vec::new();
        let mut offset = 0;
        for piece in input.chunks(chunk.max(1)) {
            if let Some(n) = d.feed(piece, &mut out) {
                return (Some(offset + n), d.result().map(|_| out));
            }
            offset += piece.len();
        }
        (None, Ok(out))
    }

    #[test]
    fn decodes_on_every_split() {
        let cases: &[(&[u8], &[u8], usize)] = &[
            (b".\r\n", b"", 3),
            (b"hello\r\n.\r\n", b"hello\r\n", 10),
            (b"..dot\r\n.\r\nQUIT\r\n", b".dot\r\n", 10),
            (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", 10),
            (b"a\r\n.b\r\n.\r\n", b"a\r\nb\r\n", 10),
            (b"\r\n\r\n.\r\n", b"\r\n\r\n", 7),
        ];
        for &(input, want, end) in cases {
            for chunk in 1..=input.len() {
                let (n, body) = decode(input, chunk, 1000);
                assert_eq!(n, Some(end), "{input:?} chunk {chunk}");
                assert_eq!(body.as_deref(), Ok(want), "{input:?} chunk {chunk}");
            }
        }
    }

    #[test]
    fn smuggling_variants_never_end_data_early() {
        // Each has a fake end of data followed by a smuggled message, then the real end.
        let fakes: &[&[u8]] = &[
            b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\n", b"\r.\r\n", b"\n.\r", b"\r\n.\r",
        ];
        for fake in fakes {
            let mut input = b"x".to_vec();
            input.extend_from_slice(fake);
            input.extend_from_slice(b"MAIL FROM:<a@b.c>\r\n");
            let real_end = input.len() + 5;
            input.extend_from_slice(b"\r\n.\r\n");
            for chunk in [1, 2, 3, 7, input.len()] {
                let (n, body) = decode(&input, chunk, 1000);
                assert_eq!(n, Some(real_end), "{fake:?} chunk {chunk}");
                assert_eq!(body, Err(DataError::BareLineEnding), "{fake:?}");
            }
        }
    }

    #[test]
    fn bare_endings_are_errors() {
        for input in [
            &b"a\nb\r\n.\r\n"[..],
            b"a\rb\r\n.\r\n",
            b"a\r\n.\rx\r\n.\r\n",
            b"a\r\r\n.\r\n",
        ] {
            assert_eq!(
                decode(input, 1, 1000).1,
                Err(DataError::BareLineEnding),
                "{input:?}"
            );
        }
    }

    #[test]
    fn size_cap_is_exact_and_keeps_scanning() {
        let ok = decode(b"12345678\r\n.\r\n", 4, 10);
        assert_eq!(ok.1, Ok(b"12345678\r\n".to_vec()));
        let big = decode(b"123456789\r\n.\r\nNEXT", 4, 10);
        assert_eq!(big, (Some(14), Err(DataError::TooBig)));
    }

    #[test]
    fn incomplete_input_asks_for_more() {
        assert_eq!(decode(b"hello\r\n.", 100, 100).0, None);
        assert_eq!(decode(b"hello\r\n.\r", 100, 100).0, None);
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Dot-stuffing any CRLF-only message and decoding it gives it back, on any split.
        #[test]
        fn stuff_then_decode_round_trips(
            lines in proptest::collection::vec("[ -~]{0,20}", 0..8),
            chunk in 1usize..16,
        ) {
            let mut message = Vec::new();
            for l in &lines {
                message.extend_from_slice(l.as_bytes());
                message.extend_from_slice(b"\r\n");
            }
            let mut wire = Vec::new();
            for l in &lines {
                if l.starts_with('.') { wire.push(b'.'); }
                wire.extend_from_slice(l.as_bytes());
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            let mut d = DotDecoder::new(usize::MAX);
            let mut out = Vec::new();
            let mut end = None;
            let mut offset = 0;
            for piece in wire.chunks(chunk) {
                if let Some(n) = d.feed(piece, &mut out) { end = Some(offset + n); break; }
                offset += piece.len();
            }
            prop_assert_eq!(end, Some(wire.len()));
            prop_assert_eq!(d.result(), Ok(message.len()));
            prop_assert_eq!(out, message);
        }

        /// Copying content runs at once decides exactly what stepping byte by byte
        /// decides: where the data ends, the verdict, and (when accepted) the message.
        #[test]
        fn runs_decode_as_single_steps_do(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b'a'), any::<u8>()],
                0..300,
            ),
            chunk in 1usize..40,
            max in 0usize..400,
        ) {
            // Ended as a message would be, so most cases reach a verdict.
            let mut input = input;
            input.extend_from_slice(b"\r\n.\r\n");
            let mut one = DotDecoder::new(max);
            let mut one_out = Vec::new();
            let mut one_end = None;
            for (i, &b) in input.iter().enumerate() {
                one.step(b, &mut one_out);
                if one.state == State::Done { one_end = Some(i + 1); break; }
            }
            let mut runs = DotDecoder::new(max);
            let mut runs_out = Vec::new();
            let (mut runs_end, mut offset) = (None, 0);
            for piece in input.chunks(chunk) {
                if let Some(n) = runs.feed(piece, &mut runs_out) { runs_end = Some(offset + n); break; }
                offset += piece.len();
            }
            prop_assert_eq!(runs_end, one_end);
            prop_assert!(one_end.is_some(), "the appended end is always an end");
            prop_assert_eq!(runs.result(), one.result());
            if one.result().is_ok() { prop_assert_eq!(runs_out, one_out); }
        }

        /// Whatever arrives, the decoder never writes more than its cap and never a bare LF.
        #[test]
        fn output_is_bounded_and_clean(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut d = DotDecoder::new(50);
            let mut out = Vec::new();
            let done = d.feed(&input, &mut out);
            prop_assert!(out.len() <= 50);
            if done.is_some() && d.result().is_ok() {
                for (i, &b) in out.iter().enumerate() {
                    if b == b'\n' { prop_assert!(i > 0 && out[i - 1] == b'\r'); }
                    if b == b'\r' { prop_assert_eq!(out.get(i + 1), Some(&b'\n')); }
                }
            }
        }
    }
}
