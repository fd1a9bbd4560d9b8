//! Manifests, indexes and image configs as served by a registry. The first
//! input byte picks the Content-Type the document arrives with; the rest is
//! the body.

#![no_main]

use ferry_fuzz::digest::Digest;
use ferry_fuzz::manifest::{self, Config, Document, Platform};
use libfuzzer_sys::fuzz_target;

const TYPES: &[Option<&str>] = &[
    None,
    Some(manifest::OCI_MANIFEST),
    Some(manifest::OCI_INDEX),
    Some(manifest::DOCKER_MANIFEST),
    Some(manifest::DOCKER_LIST),
    Some("application/json"),
    Some("application/octet-stream"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
    Some(""),
    Some("text/html"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let content_type = TYPES[usize::from(pick) % TYPES.len()];
    if let Ok((doc, media_type)) = manifest::parse(body, content_type) {
        let is_index = matches!(doc, Document::Index(_));
        assert_eq!(is_index, manifest::is_index_type(&media_type), "{media_type}");
    }
    if let Ok(config) = Config::parse(body) {
        let _ = config.platform().to_string();
    }
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = Platform::parse(text);
        if let Ok(d) = Digest::parse(text) {
            assert_eq!(d.to_string(), text);
        }
    }
});
