//! Test images the tests make themselves, pushed with skopeo.
//!
//! [`ImageSpec`] describes a small image (platform, layers as lists of
//! files, with or without `history`); [`write_layout`] and
//! [`write_index_layout`] write it as an OCI image layout, and
//! [`Registry::push`] / [`Registry::push_index`] copy it into a registry
//! with `skopeo copy` (`--all` for an index), so what lands there is what
//! a real client pushed; [`Registry::push_docker_list`] has skopeo make
//! the index a Docker manifest list. Nothing comes from the internet.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::registry::Registry;
use crate::common::require_tool;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// One image to build: its platform and its layers.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// Each layer is a list of (path, contents) regular files.
    pub layers: Vec<Vec<(String, Vec<u8>)>>,
    /// Whether the config carries `history` (Charliecloud needs it; some
    /// images lack it).
    pub history: bool,
    /// Push as Docker schema 2 (`skopeo copy --format v2s2`) instead of OCI.
    pub docker: bool,
}

impl ImageSpec {
    /// A linux/amd64 image of one layer holding `/hello` = `seed`; a
    /// different seed gives different blobs.
    pub fn small(seed: &str) -> ImageSpec {
        ImageSpec {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            layers: vec![vec![("hello".into(), format!("hello from {seed}\n").into_bytes())]],
            history: true,
            docker: false,
        }
    }

    /// The same image for `platform` given as `OS/ARCH[/VARIANT]`.
    pub fn platform(mut self, platform: &str) -> ImageSpec {
        let mut parts = platform.split('/');
        self.os = parts.next().expect("os").into();
        self.architecture = parts.next().expect("architecture").into();
        self.variant = parts.next().map(Into::into);
        self
    }

    /// Adds a layer of one file `name` holding `size` bytes that gzip
    /// cannot shrink (a deterministic stream seeded by `name`).
    pub fn with_random_layer(mut self, name: &str, size: usize) -> ImageSpec {
        let mut x =
            name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| (h ^ u64::from(b)).wrapping_mul(31))
                | 1;
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(size);
        self.layers.push(vec![(name.into(), data)]);
        self
    }

    /// `OS/ARCH[/VARIANT]`.
    pub fn platform_string(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// What [`write_layout`] wrote for one image.
#[derive(Clone, Debug)]
pub struct Built {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    /// (digest, size) of each compressed layer.
    pub layers: Vec<(String, u64)>,
    pub platform: String,
}

/// What a push left in the registry.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// `127.0.0.1:PORT/REPO:TAG`.
    pub reference: String,
    /// The manifest (or index) digest skopeo reports.
    pub digest: String,
    /// The manifest bytes as the registry serves them.
    pub raw: Vec<u8>,
    /// For an index: each platform's image; for one image: itself.
    pub images: Vec<Built>,
}

/// `sha256:HEX` of `data`.
pub fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut s = String::from("sha256:");
    for b in hash.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Writes `data` as a blob of the layout at `dir`; returns its digest.
fn write_blob(dir: &Path, data: &[u8]) -> String {
    let digest = sha256(data);
    let path = dir.join("blobs/sha256").join(&digest["sha256:".len()..]);
    fs::create_dir_all(path.parent().expect("blob dir")).expect("mkdir blobs");
    fs::write(path, data).expect("write blob");
    digest
}

/// Writes the blobs of one image into the layout at `dir` (no index.json).
fn write_image(dir: &Path, spec: &ImageSpec) -> Built {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for files in &spec.layers {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, data.as_slice()).expect("tar entry");
        }
        let tar = tar.into_inner().expect("finish tar");
        diff_ids.push(sha256(&tar));
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&tar).expect("gzip");
        let gz = gz.finish().expect("finish gzip");
        layers.push((write_blob(dir, &gz), gz.len() as u64));
    }

    let mut config = json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": spec.architecture,
        "os": spec.os,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if let Some(v) = &spec.variant {
        config["variant"] = json!(v);
    }
    if spec.history {
        let history: Vec<Value> = spec
            .layers
            .iter()
            .map(|_| json!({"created": "2024-01-01T00:00:00Z", "created_by": "ferry tests"}))
            .collect();
        config["history"] = json!(history);
    }
    let config = serde_json::to_vec(&config).expect("config json");
    let config_digest = write_blob(dir, &config);

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers.iter().map(|(d, s)| json!({
            "mediaType": OCI_LAYER, "digest": d, "size": s,
        })).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest json");
    let digest = write_blob(dir, &manifest);
    Built { manifest, digest, config, config_digest, layers, platform: spec.platform_string() }
}

fn write_index_json(dir: &Path, media_type: &str, digest: &str, size: usize, ref_name: &str) {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": media_type,
            "digest": digest,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": ref_name},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).expect("json")).expect("index");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
}

/// Writes `spec` as an OCI layout at `dir` under the name `ref_name`.
pub fn write_layout(dir: &Path, ref_name: &str, spec: &ImageSpec) -> Built {
    let built = write_image(dir, spec);
    write_index_json(dir, OCI_MANIFEST, &built.digest, built.manifest.len(), ref_name);
    built
}

/// Writes an image index of one image per spec as an OCI layout at `dir`
/// under `ref_name`; returns the index bytes, its digest and the images.
pub fn write_index_layout(
    dir: &Path,
    ref_name: &str,
    specs: &[ImageSpec],
) -> (Vec<u8>, String, Vec<Built>) {
    let images: Vec<Built> = specs.iter().map(|s| write_image(dir, s)).collect();
    let manifests: Vec<Value> = specs
        .iter()
        .zip(&images)
        .map(|(s, b)| {
            let mut platform = json!({"architecture": s.architecture, "os": s.os});
            if let Some(v) = &s.variant {
                platform["variant"] = json!(v);
            }
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": b.digest,
                "size": b.manifest.len(),
                "platform": platform,
            })
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    let index = serde_json::to_vec(&index).expect("index json");
    let digest = write_blob(dir, &index);
    write_index_json(dir, OCI_INDEX, &digest, index.len(), ref_name);
    (index, digest, images)
}

impl Registry {
    /// Builds `spec` and pushes it to `REPO:TAG` (`repo_tag`) with skopeo.
    pub fn push(&self, repo_tag: &str, spec: &ImageSpec) -> Pushed {
        let layout = tempfile::tempdir().expect("temp dir");
        let built = write_layout(layout.path(), "img", spec);
        let digest = self.skopeo_copy(layout.path(), repo_tag, false, spec.docker);
        let reference = self.repo(repo_tag);
        let raw = if spec.docker {
            self.skopeo_raw(&reference)
        } else {
            assert_eq!(digest, built.digest, "skopeo changed the OCI manifest");
            built.manifest.clone()
        };
        Pushed { reference, digest, raw, images: vec![built] }
    }

    /// Builds a multi-platform index of `specs` (OCI) and pushes it with
    /// `skopeo copy --all`.
    pub fn push_index(&self, repo_tag: &str, specs: &[ImageSpec]) -> Pushed {
        let layout = tempfile::tempdir().expect("temp dir");
        let (index, index_digest, images) = write_index_layout(layout.path(), "img", specs);
        let digest = self.skopeo_copy(layout.path(), repo_tag, true, false);
        assert_eq!(digest, index_digest, "skopeo changed the index");
        Pushed { reference: self.repo(repo_tag), digest, raw: index, images }
    }

    /// Builds a multi-platform image of `specs` and pushes it with
    /// `skopeo copy --all --format v2s2`, which makes it a Docker manifest
    /// list of Docker manifests. `raw` and each image's `manifest` and
    /// `digest` are then the registry's Docker documents; configs and
    /// layers are the blobs built (checked here).
    pub fn push_docker_list(&self, repo_tag: &str, specs: &[ImageSpec]) -> Pushed {
        let layout = tempfile::tempdir().expect("temp dir");
        let (_, _, mut images) = write_index_layout(layout.path(), "img", specs);
        let digest = self.skopeo_copy(layout.path(), repo_tag, true, true);
        let reference = self.repo(repo_tag);
        let raw = self.skopeo_raw(&reference);
        assert_eq!(sha256(&raw), digest, "skopeo's digest file names another list");
        let list: Value = serde_json::from_slice(&raw).expect("list JSON");
        assert_eq!(list["mediaType"], DOCKER_LIST, "skopeo made no Docker list: {list:#}");
        let entries = list["manifests"].as_array().expect("manifests");
        assert_eq!(entries.len(), images.len(), "{list:#}");
        let (repo, _) = repo_tag.split_once(':').expect("REPO:TAG");
        for (img, entry) in images.iter_mut().zip(entries) {
            assert_eq!(entry["mediaType"], DOCKER_MANIFEST, "{list:#}");
            let p = &entry["platform"];
            let parts = [&p["os"], &p["architecture"], &p["variant"]];
            let platform: Vec<&str> = parts.iter().filter_map(|v| v.as_str()).collect();
            assert_eq!(platform.join("/"), img.platform, "skopeo reordered the list");
            img.digest = entry["digest"].as_str().expect("digest").to_string();
            img.manifest = self.skopeo_raw(&self.repo(&format!("{repo}@{}", img.digest)));
            let m: Value = serde_json::from_slice(&img.manifest).expect("manifest JSON");
            assert_eq!(m["config"]["digest"], img.config_digest.as_str(), "{m:#}");
            let layers: Vec<(String, u64)> = m["layers"]
                .as_array()
                .expect("layers")
                .iter()
                .map(|l| (l["digest"].as_str().unwrap().to_string(), l["size"].as_u64().unwrap()))
                .collect();
            assert_eq!(layers, img.layers, "skopeo changed the layers");
        }
        Pushed { reference, digest, raw, images }
    }

    /// The usual two-platform index: linux/amd64 and linux/arm64/v8.
    pub fn push_two_platform(&self, repo_tag: &str) -> Pushed {
        self.push_index(repo_tag, &self.two_platforms(repo_tag))
    }

    /// The usual two platforms as a Docker manifest list.
    pub fn push_two_platform_docker(&self, repo_tag: &str) -> Pushed {
        self.push_docker_list(repo_tag, &self.two_platforms(repo_tag))
    }

    /// linux/amd64 and linux/arm64/v8 images, different for each registry
    /// and tag.
    fn two_platforms(&self, repo_tag: &str) -> [ImageSpec; 2] {
        let seed = format!("{}-{repo_tag}", self.port());
        [
            ImageSpec::small(&format!("{seed}-amd64")),
            ImageSpec::small(&format!("{seed}-arm64")).platform("linux/arm64/v8"),
        ]
    }

    /// `skopeo inspect --raw` of `reference` (`HOST:PORT/REPO:TAG`).
    pub fn skopeo_raw(&self, reference: &str) -> Vec<u8> {
        let mut cmd = skopeo();
        cmd.args(["inspect", "--raw", "--cert-dir"]).arg(self.cert_dir());
        if let Some(c) = self.creds() {
            cmd.args(["--creds", &c]);
        }
        cmd.arg(format!("docker://{reference}"));
        let out = cmd.output().expect("run skopeo");
        assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// `skopeo copy [--all] oci:LAYOUT:img docker://HOST/REPO_TAG`;
    /// returns the digest skopeo wrote with `--digestfile`.
    fn skopeo_copy(&self, layout: &Path, repo_tag: &str, all: bool, docker: bool) -> String {
        let digestfile = layout.join("pushed.digest");
        let mut cmd = skopeo();
        cmd.args(["copy", "--quiet", "--dest-cert-dir"]).arg(self.cert_dir());
        cmd.arg("--digestfile").arg(&digestfile);
        if let Some(c) = self.creds() {
            cmd.args(["--dest-creds", &c]);
        }
        if all {
            cmd.arg("--all");
        }
        if docker {
            cmd.args(["--format", "v2s2"]);
        }
        cmd.arg(format!("oci:{}:img", layout.display()));
        cmd.arg(format!("docker://{}", self.repo(repo_tag)));
        let out = cmd.output().expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy to {repo_tag}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        fs::read_to_string(&digestfile).expect("digest file").trim().to_string()
    }
}

/// skopeo with a home of its own, so no auth file of the machine's user
/// takes part.
fn skopeo() -> Command {
    require_tool("skopeo", "skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.env_remove("REGISTRY_AUTH_FILE").env("XDG_RUNTIME_DIR", "/nonexistent-ferry-tests");
    cmd
}
