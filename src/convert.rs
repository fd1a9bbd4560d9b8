//! `pull --oci-types`: Docker v2 schema 2 manifests and manifest lists
//! rewritten with OCI media types, for tools that read only those from a
//! layout (skopeo 1.9 and umoci 0.4 among them).
//!
//! Only the document changes. Config and layer blobs keep their bytes and
//! digests under the OCI name of their type: a Docker image config holds
//! every field of an OCI one, and OCI readers ignore the fields they do not
//! know. Every other field of the document is kept, descriptors in their
//! order. The output is compact JSON written from a parsed value, so the
//! same input always gives the same bytes, hence the same digest.
//!
//! Bytes in, bytes out: which documents to convert, and storing them, is
//! `pull`'s business.

use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, Descriptor, OCI_INDEX, OCI_MANIFEST};
use crate::msg;

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Docker config type → OCI. The image spec's compatibility matrix pairs
/// these two.
const CONFIGS: [(&str, &str); 1] = [("application/vnd.docker.container.image.v1+json", OCI_CONFIG)];

/// Docker layer types → OCI. The image spec's compatibility matrix names
/// the gzip pair; Docker's own image spec names the others' OCI
/// counterparts (foreign layers are OCI's non-distributable ones).
const LAYERS: [(&str, &str); 4] = [
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    ("application/vnd.docker.image.rootfs.diff.tar", "application/vnd.oci.image.layer.v1.tar"),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
    ),
];

/// Layer types the OCI image spec defines, kept as they are.
const OCI_LAYERS: [&str; 6] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

/// The image manifest `bytes` (already parsed and checked by
/// `manifest::parse`) as an OCI image manifest. A config or layer type
/// with no OCI counterpart is refused rather than left half-converted.
pub fn manifest(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut doc = object(bytes)?;
    doc.insert("mediaType".into(), OCI_MANIFEST.into());
    let config = doc.get_mut("config").ok_or_else(|| refused("the manifest has no config"))?;
    retype(config, "config", &CONFIGS, &[OCI_CONFIG])?;
    let layers = doc
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| refused("the manifest has no list of layers"))?;
    for (n, layer) in layers.iter_mut().enumerate() {
        retype(layer, &format!("layer {}", n + 1), &LAYERS, &OCI_LAYERS)?;
    }
    encode(doc)
}

/// The index `bytes` as an OCI image index whose entries for the manifests
/// in `converted` (registry digest, converted descriptor) name the
/// converted manifests instead; platforms, annotations and every other
/// field of an entry are kept. An entry left with a Docker type is refused.
pub fn index(bytes: &[u8], converted: &[(Digest, Descriptor)]) -> Result<Vec<u8>> {
    let mut doc = object(bytes)?;
    doc.insert("mediaType".into(), OCI_INDEX.into());
    let entries = doc
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| refused("the index has no list of manifests"))?;
    for entry in entries.iter_mut() {
        let entry =
            entry.as_object_mut().ok_or_else(|| refused("an index entry is not an object"))?;
        let digest = entry.get("digest").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some((_, to)) = converted.iter().find(|(from, _)| from.to_string() == digest) {
            entry.insert("mediaType".into(), to.media_type.clone().into());
            entry.insert("digest".into(), to.digest.to_string().into());
            entry.insert("size".into(), to.size.into());
        }
        let media_type = entry.get("mediaType").and_then(Value::as_str).unwrap_or_default();
        if media_type == DOCKER_MANIFEST || media_type == DOCKER_LIST {
            return Err(refused(&format!(
                "index entry {} keeps the Docker type {media_type}",
                msg::clean(&digest, 80)
            )));
        }
    }
    encode(doc)
}

/// Sets the `mediaType` of the descriptor `d` to its OCI name: mapped by
/// `docker`, or kept when already in `oci`.
fn retype(d: &mut Value, what: &str, docker: &[(&str, &str)], oci: &[&str]) -> Result<()> {
    let d = d.as_object_mut().ok_or_else(|| refused(&format!("{what} is not a descriptor")))?;
    let t = d.get("mediaType").and_then(Value::as_str).unwrap_or_default();
    if let Some((_, to)) = docker.iter().find(|(from, _)| *from == t) {
        d.insert("mediaType".into(), (*to).into());
        Ok(())
    } else if oci.contains(&t) {
        Ok(())
    } else if t.is_empty() {
        Err(refused(&format!("{what} has no media type")))
    } else {
        Err(refused(&format!(
            "{what} has type {}, which has no OCI equivalent",
            msg::clean(t, 100)
        )))
    }
}

fn object(bytes: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(doc)) => Ok(doc),
        Ok(_) => Err(refused("the document is not a JSON object")),
        Err(e) => Err(refused(&format!("the document is not valid JSON: {e}"))),
    }
}

/// Compact JSON of `doc`; serde_json writes a parsed value the same way
/// every time.
fn encode(doc: Map<String, Value>) -> Result<Vec<u8>> {
    serde_json::to_vec(&Value::Object(doc))
        .map_err(|e| Error::failure(format!("encoding the converted document: {e}")))
}

fn refused(why: &str) -> Error {
    Error::failure(format!("cannot convert to OCI media types: {why}"))
        .with_hint("pull without --oci-types to store the image as the registry serves it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{self, Document};

    const C: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const L1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const L2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const L3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

    /// A Docker manifest with a foreign layer, annotations and a field
    /// no spec defines, pretty-printed as some registries serve it.
    fn docker_manifest(layer_type: &str) -> String {
        format!(
            r#"{{
   "schemaVersion": 2,
   "mediaType": "{DOCKER_MANIFEST}",
   "config": {{
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1469,
      "digest": "{C}"
   }},
   "layers": [
      {{
         "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
         "size": 5,
         "digest": "{L1}",
         "urls": ["https://example.com/l1"]
      }},
      {{
         "mediaType": "{layer_type}",
         "size": 6,
         "digest": "{L2}",
         "annotations": {{"z": "last", "a": "first"}}
      }},
      {{
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar",
         "size": 7,
         "digest": "{L3}"
      }}
   ],
   "x-vendor": {{"keep": [1, 2, 3]}}
}}"#
        )
    }

    #[test]
    fn manifest_types_become_oci_and_the_rest_is_kept() {
        let input = docker_manifest("application/vnd.docker.image.rootfs.diff.tar.gzip");
        let out = manifest(input.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["mediaType"], OCI_MANIFEST);
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["config"]["mediaType"], OCI_CONFIG);
        assert_eq!(v["config"]["digest"], C);
        assert_eq!(v["config"]["size"], 1469);
        let layers = v["layers"].as_array().unwrap();
        let types: Vec<&str> = layers.iter().map(|l| l["mediaType"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar",
            ]
        );
        let digests: Vec<&str> = layers.iter().map(|l| l["digest"].as_str().unwrap()).collect();
        assert_eq!(digests, [L1, L2, L3]);
        let sizes: Vec<u64> = layers.iter().map(|l| l["size"].as_u64().unwrap()).collect();
        assert_eq!(sizes, [5, 6, 7]);
        assert_eq!(layers[0]["urls"][0], "https://example.com/l1");
        assert_eq!(layers[1]["annotations"]["z"], "last");
        assert_eq!(v["x-vendor"]["keep"], serde_json::json!([1, 2, 3]));
        assert_eq!(v.as_object().unwrap().len(), 5, "{v:#}");

        // Compact, and what ferry's own readers (push, unpack) accept.
        assert!(!out.contains(&b'\n') && !out.contains(&b' '));
        let (doc, t) = manifest::parse(&out, Some(OCI_MANIFEST)).unwrap();
        assert_eq!(t, OCI_MANIFEST);
        let Document::Manifest(m) = doc else { panic!("not a manifest") };
        assert_eq!(m.layers.len(), 3);
        assert_eq!(m.config.digest.to_string(), C);
    }

    #[test]
    fn same_document_same_bytes() {
        let input = docker_manifest("application/vnd.docker.image.rootfs.diff.tar.gzip");
        let once = manifest(input.as_bytes()).unwrap();
        assert_eq!(manifest(input.as_bytes()).unwrap(), once);
        // Converting what was converted changes nothing.
        assert_eq!(manifest(&once).unwrap(), once);
    }

    #[test]
    fn oci_layer_types_are_kept() {
        let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
        let out = manifest(docker_manifest(zstd).as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["layers"][1]["mediaType"], zstd);
    }

    #[test]
    fn types_without_an_oci_equivalent_are_refused() {
        let odd = "application/vnd.docker.image.rootfs.diff.tar.zstd";
        let e = manifest(docker_manifest(odd).as_bytes()).unwrap_err();
        assert!(e.msg.contains("layer 2") && e.msg.contains(odd), "{}", e.msg);
        assert!(!e.msg.contains('\n'));
        assert!(e.hint.unwrap().contains("without --oci-types"));

        let helm = docker_manifest("application/vnd.docker.image.rootfs.diff.tar.gzip").replace(
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.cncf.helm.config.v1+json",
        );
        let e = manifest(helm.as_bytes()).unwrap_err();
        assert!(e.msg.contains("config") && e.msg.contains("helm"), "{}", e.msg);

        let untyped = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{OCI_CONFIG}","digest":"{C}","size":1}},"layers":[{{"digest":"{L1}","size":1}}]}}"#
        );
        let e = manifest(untyped.as_bytes()).unwrap_err();
        assert!(e.msg.contains("layer 1 has no media type"), "{}", e.msg);
    }

    fn entry(media_type: &str, digest: &str, size: u64, arch: &str) -> Value {
        serde_json::json!({
            "mediaType": media_type, "digest": digest, "size": size,
            "platform": {"architecture": arch, "os": "linux"},
            "annotations": {"note": arch},
        })
    }

    #[test]
    fn index_entries_name_the_converted_manifests() {
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                entry(DOCKER_MANIFEST, L1, 100, "amd64"),
                entry(OCI_MANIFEST, L2, 200, "arm64"),
            ],
        })
        .to_string();
        let to = Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: Digest::parse(L3).unwrap(),
            size: 90,
            platform: None,
            annotations: None,
            urls: None,
        };
        let converted = [(Digest::parse(L1).unwrap(), to)];
        let out = index(list.as_bytes(), &converted).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["mediaType"], OCI_INDEX);
        assert_eq!(v["manifests"][0], entry(OCI_MANIFEST, L3, 90, "amd64"));
        assert_eq!(v["manifests"][1], entry(OCI_MANIFEST, L2, 200, "arm64"));
        let (doc, t) = manifest::parse(&out, Some(OCI_INDEX)).unwrap();
        assert!(matches!(doc, Document::Index(_)) && t == OCI_INDEX);
        assert_eq!(index(list.as_bytes(), &converted).unwrap(), out);

        // A Docker entry nobody converted would leave the index half-done.
        let e = index(list.as_bytes(), &[]).unwrap_err();
        assert!(e.msg.contains(L1) && e.msg.contains(DOCKER_MANIFEST), "{}", e.msg);
    }
}
