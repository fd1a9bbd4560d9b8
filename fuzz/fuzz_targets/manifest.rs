//! Manifests, indexes and image configs as served by a registry. The first
//! input byte picks the Content-Type the document arrives with; the rest is
//! the body.

#![no_main]

use ferry_fuzz::digest::Digest;
use ferry_fuzz::convert;
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
        converted_the_same(&doc, body);
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

/// What `pull --oci-types` makes of a document `manifest::parse` took must
/// parse again as the OCI type, naming the same blobs (an index: the same
/// entries, none converted here).
fn converted_the_same(doc: &Document, body: &[u8]) {
    match doc {
        Document::Manifest(m) => {
            let Ok(bytes) = convert::manifest(body) else { return };
            let (again, t) = manifest::parse(&bytes, Some(manifest::OCI_MANIFEST))
                .expect("a converted manifest parses");
            assert_eq!(t, manifest::OCI_MANIFEST);
            let Document::Manifest(c) = again else { panic!("converted to an index") };
            assert_eq!(c.config.digest, m.config.digest);
            let digests = |m: &manifest::Manifest| {
                m.layers.iter().map(|l| (l.digest.clone(), l.size)).collect::<Vec<_>>()
            };
            assert_eq!(digests(&c), digests(m));
        }
        Document::Index(i) => {
            let Ok(bytes) = convert::index(body, &[]) else { return };
            let (again, t) = manifest::parse(&bytes, Some(manifest::OCI_INDEX))
                .expect("a converted index parses");
            assert_eq!(t, manifest::OCI_INDEX);
            let Document::Index(c) = again else { panic!("converted to a manifest") };
            assert_eq!(c.manifests.len(), i.manifests.len());
        }
    }
}
