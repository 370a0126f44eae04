//! The config loader: never panics, and every error names the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(errors) = teamrelay::config::parse(text, Path::new("fuzz.toml")) {
        assert!(!errors.0.is_empty());
        for e in &errors.0 {
            assert!(e.to_string().starts_with("fuzz.toml"), "{e}");
        }
    }
});
