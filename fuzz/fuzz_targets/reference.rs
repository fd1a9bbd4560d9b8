//! Image references and registry names as typed on the command line or
//! found in scripts: any string is either refused or parsed into a
//! reference whose canonical form parses back to the same reference.

#![no_main]

use ferry_fuzz::reference::{Reference, Registry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Registry::parse(text);
    let defaults =
        [Registry::docker_hub(), Registry { host: "127.0.0.1".into(), port: Some(5000) }];
    for default in &defaults {
        let Ok(r) = Reference::parse_with(text, default) else { continue };
        let _ = (r.tag(), r.version(), r.repository());
        let canonical = r.canonical();
        // Adding the default host and `library/` can push a long reference
        // past the 255-character limit; below that it must parse back.
        match Reference::parse_with(&canonical, default) {
            // The canonical form spells out the default tag `latest`.
            Ok(again) => assert_eq!(
                (&again.registry, &again.path, again.tag(), &again.digest),
                (&r.registry, &r.path, r.tag(), &r.digest),
                "{text:?} -> {canonical:?}"
            ),
            Err(e) if canonical.len() <= 255 => panic!("{text:?} -> {canonical:?}: {e}"),
            Err(_) => {}
        }
    }
});
