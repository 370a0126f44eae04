//! The DATA reader: whatever arrives, in whatever pieces, the result is the same, the
//! output stays under the cap, and an accepted message has only CRLF line ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teamrelay::smtp::data::DotDecoder;

const CAP: usize = 4096;

fn run(
    input: &[u8],
    split: usize,
) -> (
    Option<usize>,
    Vec<u8>,
    Result<usize, teamrelay::smtp::data::DataError>,
) {
    let mut d = DotDecoder::new(CAP);
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in input.chunks(split.max(1)) {
        if let Some(n) = d.feed(piece, &mut out) {
            return (Some(offset + n), out, d.result());
        }
        offset += piece.len();
    }
    (None, out, d.result())
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let whole = run(input, input.len());
    let pieces = run(input, first as usize % 17 + 1);
    assert_eq!(
        whole.0, pieces.0,
        "end of data depends on how input was split"
    );
    assert!(whole.1.len() <= CAP);
    if whole.0.is_some() {
        assert_eq!(whole.2, pieces.2);
        if whole.2.is_ok() {
            assert_eq!(whole.1, pieces.1);
            let out = &whole.1;
            for (i, &b) in out.iter().enumerate() {
                if b == b'\n' {
                    assert!(i > 0 && out[i - 1] == b'\r', "bare LF in accepted output");
                }
                if b == b'\r' {
                    assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR in accepted output");
                }
            }
        }
    }
});
