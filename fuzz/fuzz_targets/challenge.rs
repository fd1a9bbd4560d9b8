//! `WWW-Authenticate` values as a registry might send them: the input is
//! split on newlines into several header values, as when a response holds
//! the header more than once.

#![no_main]

use ferry_fuzz::challenge;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\n').collect();
    for c in challenge::parse(&values) {
        // What the parser promises its callers: lowercase scheme and keys,
        // and lookups that find what was parsed.
        assert_eq!(c.scheme, c.scheme.to_ascii_lowercase());
        for (key, value) in &c.params {
            assert_eq!(*key, key.to_ascii_lowercase());
            assert!(c.param(key).is_some(), "param {key:?} = {value:?} not found");
        }
    }
});
