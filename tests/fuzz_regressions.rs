//! Inputs the fuzzers once broke, replayed through the same public APIs on every test
//! run (see `fuzz/regressions/TARGET/NAME`; each has a named unit test beside the code
//! it exercised too).

use std::path::Path;

use teamrelay::address::Address;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn address_regressions() {
    let cases = inputs("address");
    assert!(
        !cases.is_empty(),
        "the committed regression inputs are present"
    );
    for (name, bytes) in cases {
        let text = String::from_utf8_lossy(&bytes);
        for candidate in [text.as_ref(), "İ@e", "İnci@Example.com"] {
            if let Ok(a) = Address::parse(candidate) {
                let again = Address::parse(&a.to_string())
                    .unwrap_or_else(|e| panic!("{name}: {candidate:?}: {e}"));
                assert_eq!(again, a, "{name}");
                assert!(!a.domain().contains('@'), "{name}");
            }
        }
    }
}
