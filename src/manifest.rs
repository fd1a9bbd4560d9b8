//! Image documents: media types, descriptors, manifests, indexes, configs
//! and platforms, parsed strictly enough that a hostile registry cannot make
//! one document pass for another.
//!
//! serde_json's recursion limit (128) keeps deeply nested input from
//! overflowing the stack.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::msg;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";

/// Largest manifest, index or config read, in bytes.
pub const DOCUMENT_LIMIT: u64 = 4 << 20;

/// Every manifest and index type ferry reads, for `Accept`.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Parses `ARCH`, `OS/ARCH` or `OS/ARCH/VARIANT` (OS defaults to linux).
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        };
        if parts.is_empty() || parts.len() > 3 || !parts.iter().all(ok) {
            return Err(Error::usage(format!(
                "invalid platform \"{}\": want ARCH, OS/ARCH or OS/ARCH/VARIANT",
                msg::clean(s, 100)
            )));
        }
        let (os, arch, variant) = match parts.as_slice() {
            [a] => ("linux", *a, None),
            [o, a] => (*o, *a, None),
            [o, a, v] => (*o, *a, Some(v.to_string())),
            _ => unreachable!("length checked above"),
        };
        Ok(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant,
            os_version: None,
        })
    }

    /// The platform this binary runs on, in OCI's words.
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// Whether `candidate` serves a request for `self`. A missing variant
    /// on either side matches, and arm64 means arm64/v8, arm arm/v7, as
    /// Charliecloud treats them.
    pub fn matches(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", None) => Some("v8".to_string()),
            ("arm", None) => Some("v7".to_string()),
            (_, v) => v.map(str::to_string),
        };
        match (&self.variant, &candidate.variant) {
            (None, _) | (_, None) => true,
            _ => norm(self) == norm(candidate),
        }
    }
}

/// An image manifest: config and layers.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An index (manifest list): one manifest per platform.
#[derive(Clone, Debug, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// What a manifest endpoint served.
#[derive(Clone, Debug)]
pub enum Document {
    Manifest(Box<Manifest>),
    Index(Index),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<i64>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

/// The bare media type of a `Content-Type` value (parameters dropped).
pub fn bare_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

pub fn is_index_type(t: &str) -> bool {
    t == OCI_INDEX || t == DOCKER_LIST
}

pub fn is_manifest_type(t: &str) -> bool {
    t == OCI_MANIFEST || t == DOCKER_MANIFEST
}

/// Parses manifest bytes served with `content_type` into a document and
/// its effective media type, refusing schema 1, hybrids (both `manifests`
/// and `layers`) and a `mediaType` that contradicts the header.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<(Document, String)> {
    let header = content_type.map(bare_type).filter(|t| !t.is_empty());
    if header.is_some_and(|t| t.starts_with(DOCKER_SCHEMA1)) {
        return Err(schema1());
    }
    let probe: Probe = serde_json::from_slice(bytes)
        .map_err(|e| Error::failure(format!("manifest is not valid JSON: {e}")))?;
    if probe.schema_version == Some(1) {
        return Err(schema1());
    }
    if probe.schema_version != Some(2) {
        return Err(Error::failure("manifest has no schemaVersion 2"));
    }
    if probe.manifests.is_some() && (probe.layers.is_some() || probe.config.is_some()) {
        return Err(Error::failure("document has both \"manifests\" and \"layers\"; refusing it"));
    }
    let body_type = probe.media_type.as_deref().filter(|t| !t.is_empty());
    if let (Some(h), Some(b)) = (header, body_type) {
        let generic = h == "application/json" || h == "application/octet-stream";
        if h != b && !generic {
            return Err(Error::failure(format!(
                "manifest says mediaType {} but was served as {}",
                msg::clean(b, 100),
                msg::clean(h, 100)
            )));
        }
    }
    let is_index = probe.manifests.is_some();
    let media_type = match body_type.or(header) {
        Some(t) if is_index_type(t) || is_manifest_type(t) => t.to_string(),
        Some(t) if t == "application/json" || t == "application/octet-stream" => {
            default_type(is_index)
        }
        None => default_type(is_index),
        Some(t) => {
            return Err(Error::failure(format!(
                "unsupported manifest type {}",
                msg::clean(t, 100)
            )));
        }
    };
    if is_index != is_index_type(&media_type) {
        return Err(Error::failure(format!("document contents contradict its type {media_type}")));
    }
    let doc = if is_index {
        Document::Index(serde_json::from_slice(bytes).map_err(|e| bad_doc("index", e))?)
    } else {
        Document::Manifest(Box::new(
            serde_json::from_slice(bytes).map_err(|e| bad_doc("manifest", e))?,
        ))
    };
    Ok((doc, media_type))
}

fn default_type(is_index: bool) -> String {
    (if is_index { OCI_INDEX } else { OCI_MANIFEST }).to_string()
}

fn schema1() -> Error {
    Error::failure("schema 1 manifests are not supported").with_hint(
        "the image is too old for OCI tools; rebuild or re-push it with a current client",
    )
}

fn bad_doc(what: &str, e: serde_json::Error) -> Error {
    Error::failure(format!("malformed {what}: {e}"))
}

/// The parts of an image config ferry reads.
#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    /// The layers' uncompressed digests, in order (`rootfs.diff_ids`).
    #[serde(default)]
    pub rootfs: Option<RootFs>,
    /// What a container of this image runs with; ferry reads `Env`.
    #[serde(default)]
    pub config: Option<RunConfig>,
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// The part of an image config's `config` ferry reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config> {
        serde_json::from_slice(bytes).map_err(|e| bad_doc("image config", e))
    }

    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
            os_version: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn manifest(media_type: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"c","digest":"{D}","size":2}},"layers":[]}}"#
        )
    }

    #[test]
    fn parses_manifests_and_indexes() {
        let (doc, t) = parse(manifest(OCI_MANIFEST).as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert!(matches!(doc, Document::Manifest(_)));
        assert_eq!(t, OCI_MANIFEST);
        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":3,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#
        );
        let (doc, t) =
            parse(idx.as_bytes(), Some("application/vnd.oci.image.index.v1+json; charset=utf-8"))
                .unwrap();
        assert_eq!(t, OCI_INDEX);
        let Document::Index(i) = doc else { panic!() };
        assert_eq!(i.manifests[0].platform.as_ref().unwrap().to_string(), "linux/arm64/v8");
    }

    #[test]
    fn refuses_contradictions() {
        assert!(parse(manifest(OCI_MANIFEST).as_bytes(), Some(OCI_INDEX)).is_err());
        assert!(parse(manifest(OCI_INDEX).as_bytes(), None).is_err());
        let hybrid = format!(
            r#"{{"schemaVersion":2,"manifests":[],"layers":[],"config":{{"digest":"{D}","size":1}}}}"#
        );
        assert!(parse(hybrid.as_bytes(), None).is_err());
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).is_err());
        assert!(
            parse(b"{}", Some("application/vnd.docker.distribution.manifest.v1+prettyjws"))
                .is_err()
        );
        let negative = manifest(OCI_MANIFEST).replace("\"size\":2", "\"size\":-2");
        assert!(parse(negative.as_bytes(), None).is_err());
        let bad_digest = manifest(OCI_MANIFEST).replace(D, "sha256:../../x");
        assert!(parse(bad_digest.as_bytes(), None).is_err());
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes(), None).is_err());
        let deep_obj = format!(r#"{{"schemaVersion":2,"x":{}}}"#, "[".repeat(100_000));
        assert!(parse(deep_obj.as_bytes(), None).is_err());
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("arm64").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        let v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(p.matches(&v8) && v8.matches(&p));
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(Platform::parse("linux/arm/v7").unwrap().matches(&arm));
        assert!(
            !Platform::parse("linux/arm/v6")
                .unwrap()
                .matches(&Platform::parse("linux/arm/v7").unwrap())
        );
        assert!(!Platform::parse("amd64").unwrap().matches(&v8));
        assert!(Platform::parse("a/b/c/d").is_err());
        assert!(Platform::parse("linux//x").is_err());
    }
}
