//! Small, deterministic images for scripts: a config, one layer, and the
//! OCI manifest naming them, with their digests.
//!
//! Nothing here is a valid filesystem layer; the fake only needs bytes
//! whose digests ferry can check. Different seeds give different images.

use sha2::{Digest as _, Sha256};

use super::script::Response;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `sha256:HEX` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let sum = Sha256::digest(bytes);
    let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

pub struct Image {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
}

impl Image {
    /// A linux/amd64 image whose contents depend on `seed`.
    pub fn new(seed: &str) -> Image {
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Env": [format!("SEED={seed}")] },
            "rootfs": { "type": "layers", "diff_ids": [] },
            "history": [{ "created_by": "ferry fake" }],
        })
        .to_string()
        .into_bytes();
        let layer = format!("layer bytes of {seed}").into_bytes();
        let config_digest = sha256(&config);
        let layer_digest = sha256(&layer);
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len() }],
        }))
        .expect("serialize manifest");
        Image { digest: sha256(&manifest), manifest, config, config_digest, layer, layer_digest }
    }

    /// The manifest as a registry serves it.
    pub fn manifest_response(&self) -> Response {
        Response::ok()
            .header("Content-Type", OCI_MANIFEST)
            .header("Docker-Content-Digest", &self.digest)
            .body(self.manifest.clone())
    }

    /// (digest, bytes) of every blob.
    pub fn blobs(&self) -> Vec<(String, Vec<u8>)> {
        vec![
            (self.config_digest.clone(), self.config.clone()),
            (self.layer_digest.clone(), self.layer.clone()),
        ]
    }
}
