//! Address and pattern parsing: total, and what parses prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teamrelay::address::{Address, Pattern};

fuzz_target!(|s: &str| {
    if let Ok(a) = Address::parse(s) {
        assert!(!a.domain().contains('@'));
        assert!(!a.local().is_empty() && !a.domain().is_empty());
        let again = Address::parse(&a.to_string()).expect("a parsed address re-parses");
        assert_eq!(again, a);
        assert_eq!(a.bounces().domain(), a.domain());
    }
    let _ = Pattern::parse(s);
});
