//! `ferry pull` into an OCI image layout: against the real registry for
//! what skopeo and umoci must accept and for blob sharing, and against the
//! scripted fake for broken transfers, resumes and redirects.
//!
//! Layers are a few MiB at most so the suite stays fast; the fault tests
//! use one layer of 1 MiB that the fake serves with or without `Range`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Env, Run, output_within, require_tool};
use crate::fake::{self, Fake, Request, Response, Routes, basic, sha256};
use crate::harness::{Auth, ImageSpec, Registry};

/// Longest any single ferry run may take before the test calls it hung.
const LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------
// Helpers for the real registry.

/// Runs ferry with `--ca-cert` for `reg` and `args`.
fn ferry(env: &Env, reg: &Registry, args: &[&str]) -> Run {
    let mut all = vec!["--ca-cert".to_string(), reg.ca_cert().display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    output_within(env.command(all), LIMIT)
}

/// The `index.json` of the layout at `dir`.
fn index_json(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("index.json")).expect("read index.json"))
        .expect("index.json is JSON")
}

/// The index.json entry whose ref name is `name`.
fn entry(dir: &Path, name: &str) -> Value {
    let index = index_json(dir);
    let found: Vec<&Value> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one entry named {name} in {index:#}");
    assert_eq!(found[0]["annotations"]["io.containerd.image.name"], name);
    found[0].clone()
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("ALG:HEX");
    dir.join("blobs").join(alg).join(hex)
}

/// Every blob file is named by the digest of its content.
fn assert_blobs_valid(dir: &Path) {
    for e in fs::read_dir(dir.join("blobs/sha256")).expect("blobs/sha256") {
        let e = e.expect("entry");
        let bytes = fs::read(e.path()).expect("read blob");
        let name = e.file_name().into_string().expect("utf-8 name");
        assert_eq!(sha256(&bytes), format!("sha256:{name}"), "blob {name} is damaged");
    }
}

fn skopeo() -> Command {
    require_tool("skopeo", "skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.env_remove("REGISTRY_AUTH_FILE").env("XDG_RUNTIME_DIR", "/nonexistent-ferry-tests");
    cmd
}

/// `skopeo inspect [--raw] oci:DIR:NAME`, asserted to succeed.
fn skopeo_inspect(dir: &Path, name: &str, raw: bool) -> Vec<u8> {
    let mut cmd = skopeo();
    cmd.arg("inspect");
    if raw {
        cmd.arg("--raw");
    }
    let out = cmd.arg(format!("oci:{}:{name}", dir.display())).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `skopeo copy oci:DIR:NAME dir:TO`, asserted to succeed.
fn skopeo_copy_out(dir: &Path, name: &str, to: &Path) {
    let out = skopeo()
        .arg("copy")
        .arg(format!("oci:{}:{name}", dir.display()))
        .arg(format!("dir:{}", to.display()))
        .output()
        .expect("run skopeo");
    assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
}

/// `umoci unpack --rootless --image DIR:NAME BUNDLE`; returns the rootfs.
fn umoci_unpack(dir: &Path, name: &str, bundle: &Path) -> PathBuf {
    require_tool("umoci", "umoci");
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{name}", dir.display()))
        .arg(bundle)
        .output()
        .expect("run umoci");
    assert!(out.status.success(), "umoci unpack: {}", String::from_utf8_lossy(&out.stderr));
    bundle.join("rootfs")
}

// ---------------------------------------------------------------------
// The real registry.

#[test]
fn oci_image_is_what_skopeo_and_umoci_read() {
    let reg = Registry::start(Auth::None);
    let spec = ImageSpec::small("oci-pull").with_random_layer("data.bin", 256 * 1024);
    let pushed = reg.push("lib/app:1", &spec);
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = ferry(&env, &reg, &["--json", "pull", &pushed.reference, dir.to_str().unwrap()]);
    run.ok();

    let summary: Value = serde_json::from_str(&run.stdout).expect("--json output");
    assert_eq!(summary["images"][0]["reference"], pushed.reference);
    assert_eq!(summary["images"][0]["digest"], pushed.digest);
    assert_eq!(summary["images"][0]["source_digest"], pushed.digest);
    assert_eq!(summary["images"][0]["platforms"], json!(["linux/amd64"]));
    assert_eq!(summary["layout"], dir.to_str().unwrap());
    assert_eq!(summary["blobs_fetched"], 3, "{summary:#}");
    assert_eq!(summary["blobs_reused"], 0);
    let layer_bytes: u64 = pushed.images[0].layers.iter().map(|(_, s)| s).sum();
    let config_bytes = pushed.images[0].config.len() as u64;
    assert_eq!(summary["bytes_transferred"], layer_bytes + config_bytes);

    let e = entry(&dir, &pushed.reference);
    assert_eq!(e["digest"], pushed.digest);
    assert_eq!(e["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(fs::read(blob_path(&dir, &pushed.digest)).unwrap(), pushed.raw);
    assert_eq!(
        fs::read_to_string(dir.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    assert_blobs_valid(&dir);
    assert!(fs::read_dir(dir.join(".ferry/partial")).unwrap().next().is_none());

    assert_eq!(sha256(&skopeo_inspect(&dir, &pushed.reference, true)), pushed.digest);
    let info: Value = serde_json::from_slice(&skopeo_inspect(&dir, &pushed.reference, false))
        .expect("skopeo inspect JSON");
    assert_eq!(info["Digest"], pushed.digest);
    let rootfs = umoci_unpack(&dir, &pushed.reference, &env.path().join("bundle"));
    assert_eq!(fs::read_to_string(rootfs.join("hello")).unwrap(), "hello from oci-pull\n");
    assert_eq!(fs::metadata(rootfs.join("data.bin")).unwrap().len(), 256 * 1024);

    // skopeo can copy out of the layout too.
    skopeo_copy_out(&dir, &pushed.reference, &env.path().join("copied"));
}

#[test]
fn docker_image_without_history_keeps_its_digest() {
    let reg = Registry::start(Auth::None);
    let mut spec = ImageSpec::small("docker-pull");
    spec.docker = true;
    spec.history = false;
    let pushed = reg.push("lib/docker:2", &spec);
    let env = Env::new();
    let dir = env.path().join("layout");
    ferry(&env, &reg, &["pull", &pushed.reference, dir.to_str().unwrap()]).ok();

    let e = entry(&dir, &pushed.reference);
    assert_eq!(e["digest"], pushed.digest);
    assert_eq!(e["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(fs::read(blob_path(&dir, &pushed.digest)).unwrap(), pushed.raw);
    assert!(blob_path(&dir, &pushed.images[0].config_digest).is_file());
    assert_blobs_valid(&dir);
    // skopeo 1.9 and umoci 0.4 look only at OCI-type entries of a layout
    // (skopeo itself converts Docker images to OCI, changing the digest),
    // so they cannot read this one; ferry keeps the digest instead, unless
    // asked for --oci-types (`docker_image_with_oci_types_...` below).
}

// ---------------------------------------------------------------------
// --oci-types: Docker manifests and lists stored with OCI media types.

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The JSON of blob `digest` of the layout at `dir`.
fn blob_json(dir: &Path, digest: &str) -> Value {
    serde_json::from_slice(&fs::read(blob_path(dir, digest)).expect("read blob"))
        .expect("blob is JSON")
}

/// (digest, size) of the config and then each layer of manifest `m`.
fn blobs_of(m: &Value) -> Vec<(String, u64)> {
    let layers = m["layers"].as_array().expect("layers");
    [&m["config"]]
        .into_iter()
        .chain(layers)
        .map(|d| (d["digest"].as_str().expect("digest").into(), d["size"].as_u64().expect("size")))
        .collect()
}

/// `ferry pull --json ARGS... DIR`, asserted to succeed; its summary.
fn pull_json(env: &Env, reg: &Registry, args: &[&str], dir: &Path) -> (Value, String) {
    let mut all = vec!["--json", "pull"];
    all.extend(args);
    all.push(dir.to_str().unwrap());
    let run = ferry(env, reg, &all);
    run.ok();
    (serde_json::from_str(&run.stdout).expect("--json output"), run.stderr.clone())
}

#[test]
fn docker_image_with_oci_types_is_what_skopeo_and_umoci_read() {
    let reg = Registry::start(Auth::None);
    let mut spec = ImageSpec::small("docker-oci").with_random_layer("data.bin", 64 * 1024);
    spec.docker = true;
    let pushed = reg.push("lib/docker:oci", &spec);
    let served: Value = serde_json::from_slice(&pushed.raw).unwrap();
    assert_eq!(served["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let env = Env::new();
    let dir = env.path().join("layout");
    let (summary, stderr) = pull_json(&env, &reg, &["--oci-types", &pushed.reference], &dir);

    // The layout names the converted manifest; the registry's is reported.
    let e = entry(&dir, &pushed.reference);
    let stored = e["digest"].as_str().unwrap().to_string();
    assert_ne!(stored, pushed.digest);
    assert_eq!(e["mediaType"], OCI_MANIFEST);
    let bytes = fs::read(blob_path(&dir, &stored)).unwrap();
    assert_eq!(e["size"], bytes.len());
    let image = &summary["images"][0];
    assert_eq!(image["digest"], stored.as_str(), "{summary:#}");
    assert_eq!(image["source_digest"], pushed.digest, "{summary:#}");
    assert_eq!(image["media_type"], OCI_MANIFEST);
    assert!(
        stderr.contains(&format!("{stored}, converted to OCI media types from {}", pushed.digest)),
        "{stderr}"
    );
    assert!(!blob_path(&dir, &pushed.digest).exists(), "the Docker manifest is not kept");

    // Only the types changed: the same blobs of the same sizes, in order.
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let layer_types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(layer_types, ["application/vnd.oci.image.layer.v1.tar+gzip"; 2]);
    assert_eq!(blobs_of(&manifest), blobs_of(&served));
    assert_eq!(manifest["config"]["digest"], pushed.images[0].config_digest.as_str());
    assert_blobs_valid(&dir);

    // skopeo and umoci read it.
    assert_eq!(skopeo_inspect(&dir, &pushed.reference, true), bytes);
    let info: Value = serde_json::from_slice(&skopeo_inspect(&dir, &pushed.reference, false))
        .expect("skopeo inspect JSON");
    assert_eq!(info["Digest"], stored.as_str());
    skopeo_copy_out(&dir, &pushed.reference, &env.path().join("copied"));
    let rootfs = umoci_unpack(&dir, &pushed.reference, &env.path().join("bundle"));
    assert_eq!(fs::read_to_string(rootfs.join("hello")).unwrap(), "hello from docker-oci\n");
    assert_eq!(fs::metadata(rootfs.join("data.bin")).unwrap().len(), 64 * 1024);

    // The same pull into another layout gives the same bytes, so the same
    // digest; without --oci-types the registry's digest is kept.
    let again = env.path().join("again");
    let (summary, _) = pull_json(&env, &reg, &["--oci-types", &pushed.reference], &again);
    assert_eq!(summary["images"][0]["digest"], stored.as_str());
    assert_eq!(fs::read(blob_path(&again, &stored)).unwrap(), bytes);
    let plain = env.path().join("plain");
    let (summary, stderr) = pull_json(&env, &reg, &[&pushed.reference], &plain);
    assert_eq!(summary["images"][0]["digest"], pushed.digest);
    assert_eq!(summary["images"][0]["source_digest"], pushed.digest);
    assert!(!stderr.contains("converted"), "{stderr}");
}

#[test]
fn docker_list_with_oci_types_becomes_an_oci_index() {
    let reg = Registry::start(Auth::None);
    let pushed = reg.push_two_platform_docker("multi/docker:1");
    let served: Value = serde_json::from_slice(&pushed.raw).unwrap();
    let env = Env::new();
    let dir = env.path().join("layout");
    let args = ["--arch", "all", "--oci-types", &pushed.reference];
    let (summary, stderr) = pull_json(&env, &reg, &args, &dir);
    assert_eq!(summary["images"][0]["platforms"], json!(["linux/amd64", "linux/arm64/v8"]));

    // The index and both manifests are converted; the Docker ones are not kept.
    let e = entry(&dir, &pushed.reference);
    let stored = e["digest"].as_str().unwrap().to_string();
    assert_ne!(stored, pushed.digest);
    assert_eq!(e["mediaType"], OCI_INDEX);
    assert_eq!(summary["images"][0]["digest"], stored.as_str());
    assert_eq!(summary["images"][0]["source_digest"], pushed.digest);
    let note = format!("converted to OCI media types from {}", pushed.digest);
    assert!(stderr.contains(&note), "{stderr}");
    let index_bytes = fs::read(blob_path(&dir, &stored)).unwrap();
    assert_eq!(e["size"], index_bytes.len());
    let index: Value = serde_json::from_slice(&index_bytes).unwrap();
    assert_eq!(index["mediaType"], OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for ((entry, was), img) in
        entries.iter().zip(served["manifests"].as_array().unwrap()).zip(&pushed.images)
    {
        assert_eq!(entry["mediaType"], OCI_MANIFEST);
        assert_eq!(entry["platform"], was["platform"]);
        assert_eq!(was["digest"], img.digest.as_str());
        let d = entry["digest"].as_str().unwrap();
        assert_ne!(d, img.digest);
        assert!(!blob_path(&dir, &img.digest).exists());
        assert_eq!(entry["size"], fs::metadata(blob_path(&dir, d)).unwrap().len());
        let manifest = blob_json(&dir, d);
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        let docker: Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(blobs_of(&manifest), blobs_of(&docker));
    }
    assert!(!blob_path(&dir, &pushed.digest).exists());
    assert_blobs_valid(&dir);

    // skopeo reads the OCI index, and the host's image through it.
    assert_eq!(skopeo_inspect(&dir, &pushed.reference, true), index_bytes);
    let info: Value =
        serde_json::from_slice(&skopeo_inspect(&dir, &pushed.reference, false)).unwrap();
    assert!(info["Layers"].as_array().is_some_and(|l| l.len() == 1), "{info:#}");

    // One platform: its converted manifest alone, the same bytes as in
    // the index, named with its platform.
    let one = env.path().join("one");
    let (summary, _) =
        pull_json(&env, &reg, &["--arch", "arm64", "--oci-types", &pushed.reference], &one);
    let arm = &entries[1];
    let e = entry(&one, &pushed.reference);
    assert_eq!(e["digest"], arm["digest"]);
    assert_eq!(e["mediaType"], OCI_MANIFEST);
    assert_eq!(e["platform"]["architecture"], "arm64");
    assert_eq!(summary["images"][0]["digest"], arm["digest"]);
    assert_eq!(summary["images"][0]["source_digest"], pushed.images[1].digest.as_str());
    assert!(!blob_path(&one, &stored).exists(), "the index is not kept");
    let arm_bytes = fs::read(blob_path(&one, arm["digest"].as_str().unwrap())).unwrap();
    assert_eq!(skopeo_inspect(&one, &pushed.reference, true), arm_bytes);
    let rootfs = umoci_unpack(&one, &pushed.reference, &env.path().join("bundle"));
    assert!(fs::read_to_string(rootfs.join("hello")).unwrap().contains("arm64"));

    // Pulled again, the index has the same digest.
    let again = env.path().join("again");
    let (summary, _) = pull_json(&env, &reg, &args, &again);
    assert_eq!(summary["images"][0]["digest"], stored.as_str());
}

#[test]
fn ferry_unpacks_and_pushes_what_oci_types_stored() {
    let reg = Registry::start(Auth::None);
    let mut spec = ImageSpec::small("docker-back");
    spec.docker = true;
    let pushed = reg.push("lib/docker:back", &spec);
    let list = reg.push_two_platform_docker("multi/docker:back");
    let env = Env::new();
    let dir = env.path().join("layout");
    let d = dir.to_str().unwrap();
    ferry(&env, &reg, &["pull", "--oci-types", &pushed.reference, d]).ok();
    ferry(&env, &reg, &["pull", "--oci-types", "--arch", "all", &list.reference, d]).ok();
    assert_eq!(entry(&dir, &pushed.reference)["mediaType"], OCI_MANIFEST);
    assert_eq!(entry(&dir, &list.reference)["mediaType"], OCI_INDEX);

    // unpack reads the converted manifest, and the converted index.
    let rootfs = env.path().join("rootfs");
    let source = format!("{d}:{}", pushed.reference);
    ferry(&env, &reg, &["unpack", &source, rootfs.to_str().unwrap()]).ok();
    assert_eq!(fs::read_to_string(rootfs.join("hello")).unwrap(), "hello from docker-back\n");
    let rootfs = env.path().join("arm");
    let source = format!("{d}:{}", list.reference);
    ferry(&env, &reg, &["unpack", "--arch", "arm64", &source, rootfs.to_str().unwrap()]).ok();
    assert!(fs::read_to_string(rootfs.join("hello")).unwrap().contains("arm64"));

    // push sends them back byte for byte: the registry serves the
    // converted documents under the digests the layout has.
    for (name, to) in
        [(&pushed.reference, "lib/converted:1"), (&list.reference, "multi/converted:1")]
    {
        let stored = entry(&dir, name)["digest"].as_str().unwrap().to_string();
        let dest = reg.repo(to);
        ferry(&env, &reg, &["push", &format!("{d}:{name}"), &dest]).ok();
        let raw = reg.skopeo_raw(&dest);
        assert_eq!(sha256(&raw), stored);
        assert_eq!(raw, fs::read(blob_path(&dir, &stored)).unwrap());
    }
}

#[test]
fn oci_types_leaves_oci_images_alone() {
    let reg = Registry::start(Auth::None);
    let pushed = reg.push_two_platform("multi/oci:1");
    let env = Env::new();
    let dir = env.path().join("layout");
    let args = ["--arch", "all", "--oci-types", &pushed.reference];
    let (summary, stderr) = pull_json(&env, &reg, &args, &dir);
    assert_eq!(summary["images"][0]["digest"], pushed.digest);
    assert_eq!(summary["images"][0]["source_digest"], pushed.digest);
    assert!(!stderr.contains("converted"), "{stderr}");
    assert_eq!(fs::read(blob_path(&dir, &pushed.digest)).unwrap(), pushed.raw);
    for img in &pushed.images {
        assert_eq!(fs::read(blob_path(&dir, &img.digest)).unwrap(), img.manifest);
    }
}

#[test]
fn arch_all_keeps_the_index_and_its_digest() {
    let reg = Registry::start(Auth::None);
    let pushed = reg.push_two_platform("multi/arch:1");
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = ferry(
        &env,
        &reg,
        &["--json", "pull", "--arch", "all", &pushed.reference, dir.to_str().unwrap()],
    );
    run.ok();
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["images"][0]["platforms"], json!(["linux/amd64", "linux/arm64/v8"]));

    let e = entry(&dir, &pushed.reference);
    assert_eq!(e["digest"], pushed.digest);
    assert_eq!(e["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(fs::read(blob_path(&dir, &pushed.digest)).unwrap(), pushed.raw);
    for img in &pushed.images {
        assert_eq!(fs::read(blob_path(&dir, &img.digest)).unwrap(), img.manifest);
        assert!(blob_path(&dir, &img.config_digest).is_file());
        for (d, size) in &img.layers {
            assert_eq!(fs::metadata(blob_path(&dir, d)).unwrap().len(), *size);
        }
    }
    assert_blobs_valid(&dir);
    assert_eq!(sha256(&skopeo_inspect(&dir, &pushed.reference, true)), pushed.digest);
}

#[test]
fn arch_arm64_picks_arm64_v8_and_missing_platforms_are_listed() {
    let reg = Registry::start(Auth::None);
    let pushed = reg.push_two_platform("multi/arch:2");
    let env = Env::new();
    let dir = env.path().join("layout");
    ferry(&env, &reg, &["pull", "--arch", "arm64", &pushed.reference, dir.to_str().unwrap()]).ok();
    let arm = &pushed.images[1];
    assert_eq!(arm.platform, "linux/arm64/v8");
    let e = entry(&dir, &pushed.reference);
    assert_eq!(e["digest"], arm.digest);
    assert_eq!(e["platform"]["architecture"], "arm64");
    assert!(!blob_path(&dir, &pushed.digest).exists(), "the index is not kept");
    assert!(!blob_path(&dir, &pushed.images[0].digest).exists(), "amd64 is not fetched");
    let rootfs = umoci_unpack(&dir, &pushed.reference, &env.path().join("bundle"));
    assert!(fs::read_to_string(rootfs.join("hello")).unwrap().contains("arm64"));

    let missing =
        ferry(&env, &reg, &["pull", "--arch", "s390x", &pushed.reference, dir.to_str().unwrap()]);
    missing.expect_code(3);
    assert!(
        missing.stderr.contains("linux/amd64") && missing.stderr.contains("linux/arm64/v8"),
        "{}",
        missing.stderr
    );
    // The failed pull left the earlier one as it was.
    assert_eq!(entry(&dir, &pushed.reference)["digest"], arm.digest);
}

#[test]
fn shared_layers_are_fetched_once() {
    let reg = Registry::start(Auth::None);
    // Same name, so the same bytes: one layer shared by both images.
    let a = reg
        .push("share/app:a", &ImageSpec::small("share-a").with_random_layer("shared.bin", 2 << 20));
    let b = reg
        .push("share/app:b", &ImageSpec::small("share-b").with_random_layer("shared.bin", 2 << 20));
    let shared = &a.images[0].layers[1].0;
    assert_eq!(shared, &b.images[0].layers[1].0, "the test images share a layer");
    let c = reg.push(
        "share/other:c",
        &ImageSpec::small("share-c").with_random_layer("shared.bin", 2 << 20),
    );

    let env = Env::new();
    let dir = env.path().join("layout");
    let d = dir.to_str().unwrap();
    // Two images in one call, then a third (another repository) later.
    let run = ferry(&env, &reg, &["--json", "pull", &a.reference, &b.reference, d]);
    run.ok();
    let first: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(first["blobs_fetched"], 5, "{first:#}");
    assert_eq!(first["blobs_reused"], 1, "{first:#}");
    let run = ferry(&env, &reg, &["--json", "pull", &c.reference, d]);
    run.ok();
    let second: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(second["blobs_reused"], 1, "{second:#}");
    assert_eq!(second["blobs_fetched"], 2, "{second:#}");

    let gets = reg.count_requests(&format!("GET /v2/share/app/blobs/{shared}"))
        + reg.count_requests(&format!("GET /v2/share/other/blobs/{shared}"));
    assert_eq!(gets, 1, "shared blob fetched {gets} times\n{}", reg.log());
    for p in [&a, &b, &c] {
        assert_eq!(entry(&dir, &p.reference)["digest"], p.digest);
    }
    assert_eq!(index_json(&dir)["manifests"].as_array().unwrap().len(), 3);

    // Pulling a reference again replaces its entry and fetches nothing.
    let run = ferry(&env, &reg, &["--json", "pull", &a.reference, d]);
    run.ok();
    let again: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(again["blobs_fetched"], 0);
    assert_eq!(again["bytes_transferred"], 0);
    assert_eq!(index_json(&dir)["manifests"].as_array().unwrap().len(), 3);
}

#[test]
fn verify_refetches_a_damaged_blob() {
    let reg = Registry::start(Auth::None);
    let pushed = reg.push("v/app:1", &ImageSpec::small("verify"));
    let env = Env::new();
    let dir = env.path().join("layout");
    let d = dir.to_str().unwrap();
    ferry(&env, &reg, &["pull", &pushed.reference, d]).ok();
    let layer = blob_path(&dir, &pushed.images[0].layers[0].0);
    let mut bytes = fs::read(&layer).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&layer, &bytes).unwrap();

    // Without --verify the size is all that is checked.
    let run = ferry(&env, &reg, &["--json", "pull", &pushed.reference, d]);
    run.ok();
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap()["blobs_fetched"], 0);
    let run = ferry(&env, &reg, &["--json", "pull", "--verify", &pushed.reference, d]);
    run.ok();
    assert_eq!(serde_json::from_str::<Value>(&run.stdout).unwrap()["blobs_fetched"], 1);
    assert!(run.stderr.contains("damaged"), "{}", run.stderr);
    assert_blobs_valid(&dir);
}

// ---------------------------------------------------------------------
// The scripted fake.

/// Size of the fake's layer: big enough to cut in the middle.
const LAYER: usize = 1 << 20;
const REPO: &str = "f/img";

/// An OCI image whose one layer is `LAYER` pseudo-random bytes.
struct FakeImage {
    manifest: Vec<u8>,
    digest: String,
    config: Vec<u8>,
    config_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
}

impl FakeImage {
    fn new(seed: u64) -> FakeImage {
        let mut x = seed | 1;
        let mut layer = Vec::with_capacity(LAYER);
        while layer.len() < LAYER {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            layer.extend_from_slice(&x.to_le_bytes());
        }
        layer.truncate(LAYER);
        let layer_digest = sha256(&layer);
        let config = json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        })
        .to_string()
        .into_bytes();
        let config_digest = sha256(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": fake::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer.len()}],
        })
        .to_string()
        .into_bytes();
        FakeImage {
            digest: sha256(&manifest),
            manifest,
            config,
            config_digest,
            layer,
            layer_digest,
        }
    }

    fn layer_path(&self) -> String {
        format!("/v2/{REPO}/blobs/{}", self.layer_digest)
    }

    /// `/v2/`, the manifest and the config; the layer is the test's.
    fn routes(&self) -> Routes {
        let manifest = Response::ok()
            .header("Content-Type", fake::OCI_MANIFEST)
            .header("Docker-Content-Digest", &self.digest)
            .body(self.manifest.clone());
        Routes::new()
            .on("GET|HEAD", "/v2/", Response::ok().json(&json!({})))
            .on("GET|HEAD", &format!("/v2/{REPO}/manifests/t"), manifest.clone())
            .on("GET|HEAD", &format!("/v2/{REPO}/manifests/{}", self.digest), manifest)
            .on(
                "GET",
                &format!("/v2/{REPO}/blobs/{}", self.config_digest),
                Response::ok().body(self.config.clone()),
            )
    }
}

/// The layer answer to `req`: 206 from the `Range` start when asked for
/// one and `honour` is set, else 200 with everything.
fn ranged(layer: &[u8], req: &Request, honour: bool) -> Response {
    match range_start(req).filter(|_| honour) {
        Some(from) => Response::new(206)
            .header("Content-Range", &format!("bytes {from}-{}/{}", layer.len() - 1, layer.len()))
            .body(layer[from..].to_vec()),
        None => Response::ok().body(layer.to_vec()),
    }
}

/// N from `Range: bytes=N-`.
fn range_start(req: &Request) -> Option<usize> {
    let v = req.header("range")?;
    v.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()
}

/// Runs ferry over plain http with a short timeout (for the fakes).
fn ferry_fake(env: &Env, args: &[&str]) -> Run {
    let mut all = vec!["--plain-http", "--timeout", "5"];
    all.extend_from_slice(args);
    output_within(env.command(all), LIMIT)
}

fn pull_fake(env: &Env, fake: &Fake, dir: &Path, extra: &[&str]) -> Run {
    let image = format!("{}/{REPO}:t", fake.host());
    let mut args = extra.to_vec();
    args.extend(["pull", &image, dir.to_str().unwrap()]);
    ferry_fake(env, &args)
}

/// The layer GETs `fake` received, with their `Range` headers.
fn layer_gets(fake: &Fake, img: &FakeImage) -> Vec<Option<String>> {
    fake.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == img.layer_path())
        .map(|r| r.header("range").map(str::to_string))
        .collect()
}

/// The layer is nowhere under its final name and the layout names nothing.
fn assert_not_stored(dir: &Path, img: &FakeImage) {
    assert!(!blob_path(dir, &img.layer_digest).exists(), "layer stored under its final name");
    assert!(!dir.join("index.json").exists(), "index.json written for a failed pull");
}

/// A fake serving `img` whose first layer GET is cut halfway; later ones
/// get the range asked for when `honour_range`, the whole layer when not.
fn cut_at_half(img: &FakeImage, honour_range: bool) -> Fake {
    let layer = img.layer.clone();
    Fake::http().serve(img.routes().handle("GET", &img.layer_path(), move |req, n| {
        if n == 0 {
            Response::ok().body(layer.clone()).close_after(LAYER / 2)
        } else {
            ranged(&layer, req, honour_range)
        }
    }))
}

fn partial(dir: &Path, img: &FakeImage) -> PathBuf {
    dir.join(".ferry/partial").join(img.layer_digest.replace(':', "-"))
}

#[test]
fn connection_cut_at_half_resumes_with_range() {
    let img = FakeImage::new(1);
    let fake = cut_at_half(&img, true);
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = pull_fake(&env, &fake, &dir, &["--json"]);
    run.ok();
    assert_eq!(layer_gets(&fake, &img), vec![None, Some(format!("bytes={}-", LAYER / 2))]);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["bytes_transferred"], LAYER + img.config.len(), "bytes fetched twice");
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
    assert!(!partial(&dir, &img).exists());
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
}

#[test]
fn truncated_body_fails_after_retries_and_keeps_the_partial_file() {
    let img = FakeImage::new(2);
    let layer = img.layer.clone();
    // Two answers stop after a quarter of the layer, later ones at once.
    let fake = Fake::http().serve(img.routes().handle("GET", &img.layer_path(), move |req, n| {
        ranged(&layer, req, true).close_after(if n < 2 { LAYER / 4 } else { 0 })
    }));
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = pull_fake(&env, &fake, &dir, &["--retries", "1"]);
    run.expect_code(5);
    assert!(run.stderr.contains(&img.layer_digest), "{}", run.stderr);
    assert!(run.stderr.contains("hint: run the same pull again"), "{}", run.stderr);
    assert_not_stored(&dir, &img);
    let kept = fs::metadata(partial(&dir, &img)).expect("partial file kept").len();
    assert_eq!(kept, 2 * (LAYER as u64 / 4));

    // The registry heals; the next run fetches only what is missing.
    let layer = img.layer.clone();
    fake.set(
        img.routes()
            .handle("GET", &img.layer_path(), move |req, _| ranged(&layer, req, true))
            .into_handler(),
    );
    let run = pull_fake(&env, &fake, &dir, &["--json"]);
    run.ok();
    assert_eq!(
        layer_gets(&fake, &img).last().unwrap().as_deref(),
        Some(&*format!("bytes={kept}-"))
    );
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    // The config came in the first run.
    assert_eq!(summary["bytes_transferred"], LAYER as u64 - kept);
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
}

#[test]
fn wrong_digest_is_refused_and_removed() {
    let img = FakeImage::new(3);
    let mut bad = img.layer.clone();
    bad[LAYER / 3] ^= 1;
    let fake = Fake::http().serve(img.routes().on(
        "GET",
        &img.layer_path(),
        Response::ok().body(bad.clone()),
    ));
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = pull_fake(&env, &fake, &dir, &[]);
    run.expect_code(1);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("content has digest"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(line.contains(&sha256(&bad)) && line.contains(&img.layer_digest), "{line}");
    assert_not_stored(&dir, &img);
    assert!(!partial(&dir, &img).exists(), "a wrong blob is not kept for resuming");
}

#[test]
fn wrong_size_is_refused_longer_or_shorter() {
    let img = FakeImage::new(4);
    let mut longer = img.layer.clone();
    longer.extend_from_slice(b"trailing garbage");
    let fake =
        Fake::http().serve(img.routes().on("GET", &img.layer_path(), Response::ok().body(longer)));
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = pull_fake(&env, &fake, &dir, &[]);
    run.expect_code(1);
    assert!(run.stderr.contains(&format!("larger than {LAYER} bytes")), "{}", run.stderr);
    assert_not_stored(&dir, &img);
    assert!(!partial(&dir, &img).exists());

    // Shorter, with a Content-Length that says so: no Range can help.
    let shorter = img.layer[..LAYER - 100].to_vec();
    fake.set(
        img.routes()
            .handle("GET", &img.layer_path(), move |req, _| match range_start(req) {
                Some(_) => Response::errors(416, "RANGE_INVALID", "range not satisfiable"),
                None => Response::ok().body(shorter.clone()),
            })
            .into_handler(),
    );
    let run = pull_fake(&env, &fake, &dir, &[]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!("expected {LAYER}"))
            || run.stderr.contains(&format!("says {LAYER}")),
        "{}",
        run.stderr
    );
    assert_not_stored(&dir, &img);
    assert!(!partial(&dir, &img).exists());
}

#[test]
fn server_ignoring_range_starts_over() {
    let img = FakeImage::new(5);
    let fake = cut_at_half(&img, false);
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = pull_fake(&env, &fake, &dir, &["-v"]);
    run.ok();
    assert_eq!(layer_gets(&fake, &img), vec![None, Some(format!("bytes={}-", LAYER / 2))]);
    assert!(run.stderr.contains("ignored Range"), "{}", run.stderr);
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
}

#[test]
fn content_range_that_does_not_match_starts_over() {
    let img = FakeImage::new(6);
    let layer = img.layer.clone();
    let fake = Fake::http().serve(img.routes().handle("GET", &img.layer_path(), move |req, n| {
        match n {
            0 => Response::ok().body(layer.clone()).close_after(LAYER / 2),
            // Claims the right start but sends bytes from elsewhere.
            1 => Response::new(206)
                .header("Content-Range", &format!("bytes 0-{}/{LAYER}", LAYER - 1))
                .body(layer.clone()),
            _ => ranged(&layer, req, true),
        }
    }));
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = pull_fake(&env, &fake, &dir, &[]);
    run.ok();
    assert_eq!(layer_gets(&fake, &img), vec![None, Some(format!("bytes={}-", LAYER / 2)), None]);
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
}

#[test]
fn error_500_then_200() {
    let img = FakeImage::new(7);
    let fake = Fake::http().serve(img.routes().seq(
        "GET",
        &img.layer_path(),
        vec![
            Response::errors(500, "INTERNAL", "try again"),
            Response::ok().body(img.layer.clone()),
        ],
    ));
    let env = Env::new();
    let dir = env.path().join("layout");
    pull_fake(&env, &fake, &dir, &[]).ok();
    assert_eq!(layer_gets(&fake, &img).len(), 2);
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
}

#[test]
fn cross_host_blob_redirect_sends_no_authorization() {
    let img = FakeImage::new(8);
    let storage = Fake::other_http().serve(Routes::new().on(
        "GET",
        "/storage/layer",
        Response::ok().body(img.layer.clone()),
    ));
    let location = format!("{}/storage/layer?sig=abc", storage.url());
    let fake = Fake::http().serve(
        img.routes()
            .on("GET", &img.layer_path(), Response::redirect(307, &location))
            .require_basic("u", "p", &["Basic realm=\"fake\""]),
    );
    let env = Env::new();
    let dir = env.path().join("layout");
    let image = format!("{}/{REPO}:t", fake.host());
    let mut cmd =
        env.command(["--plain-http", "--timeout", "5", "pull", &image, dir.to_str().unwrap()]);
    cmd.env("FERRY_USERNAME", "u").env("FERRY_PASSWORD", "p");
    output_within(cmd, LIMIT).ok();

    assert_eq!(storage.count("GET", "/storage/layer"), 1);
    assert!(storage.authorizations().is_empty(), "storage got {:?}", storage.authorizations());
    let to_registry = fake
        .requests()
        .iter()
        .filter(|r| r.path == img.layer_path())
        .filter_map(|r| r.authorization().map(str::to_string))
        .collect::<Vec<_>>();
    assert!(!to_registry.is_empty(), "{}", fake.log());
    assert!(to_registry.iter().all(|a| *a == basic("u", "p")), "{}", fake.log());
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
}

/// A one-route blob server on 127.0.0.1 that, on its first connection,
/// sends the headers and half the layer and then stalls; later connections
/// honour `Range`. Records the `Range` header of every request.
struct StallingStorage {
    port: u16,
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl StallingStorage {
    fn start(layer: Vec<u8>) -> StallingStorage {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let log = ranges.clone();
        thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut range = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("range")
                    {
                        range = Some(v.trim().to_string());
                    }
                }
                log.lock().unwrap().push(range.clone());
                let from: usize = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok())
                    .unwrap_or(0);
                let head = if from > 0 {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n",
                        layer.len() - from,
                        layer.len() - 1,
                        layer.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        layer.len()
                    )
                };
                let _ = stream.write_all(head.as_bytes());
                if n == 0 {
                    let _ = stream.write_all(&layer[..layer.len() / 2]);
                    let _ = stream.flush();
                    // Hold the connection open until the test kills ferry,
                    // while later connections are served.
                    thread::spawn(move || {
                        thread::sleep(Duration::from_secs(30));
                        drop(stream);
                    });
                } else {
                    let _ = stream.write_all(&layer[from..]);
                }
            }
        });
        StallingStorage { port, ranges }
    }
}

#[test]
fn killed_mid_blob_the_next_run_fetches_only_the_rest() {
    let img = FakeImage::new(9);
    let storage = StallingStorage::start(img.layer.clone());
    let location = format!("http://127.0.0.1:{}/layer", storage.port);
    let fake = Fake::http().serve(img.routes().on(
        "GET",
        &img.layer_path(),
        Response::redirect(307, &location),
    ));
    let env = Env::new();
    let dir = env.path().join("layout");
    let image = format!("{}/{REPO}:t", fake.host());

    let mut child = env
        .command(["--plain-http", "--timeout", "20", "pull", &image, dir.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ferry");
    let part = partial(&dir, &img);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::metadata(&part).map_or(0, |m| m.len()) < (LAYER / 2) as u64 {
        assert!(Instant::now() < deadline, "ferry never wrote half the layer");
        assert!(child.try_wait().unwrap().is_none(), "ferry ended before it was killed");
        thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL ferry");
    child.wait().unwrap();
    assert_not_stored(&dir, &img);
    assert_eq!(fs::metadata(&part).unwrap().len(), (LAYER / 2) as u64);

    let run = ferry_fake(&env, &["--json", "pull", &image, dir.to_str().unwrap()]);
    run.ok();
    let ranges = storage.ranges.lock().unwrap().clone();
    assert_eq!(ranges, vec![None, Some(format!("bytes={}-", LAYER / 2))]);
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    // The config came in the first run; only the layer's second half now.
    assert_eq!(summary["bytes_transferred"], LAYER / 2, "{summary:#}");
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
    assert!(!part.exists());
}

#[test]
fn concurrent_pulls_into_one_layout_both_succeed() {
    let img = FakeImage::new(10);
    let fake = Fake::http().serve(img.routes().on(
        "GET",
        &img.layer_path(),
        Response::ok().body(img.layer.clone()).delay(Duration::from_millis(300)),
    ));
    let env = Env::new();
    let dir = env.path().join("layout");
    let image = format!("{}/{REPO}:t", fake.host());
    let args = ["--plain-http", "--json", "pull", &image, dir.to_str().unwrap()];
    let start = || {
        env.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let fetched: u64 = [a, b]
        .iter()
        .map(|o| {
            serde_json::from_slice::<Value>(&o.stdout).unwrap()["blobs_fetched"].as_u64().unwrap()
        })
        .sum();
    // The second waited for the lock and found everything there.
    assert_eq!(fetched, 2);
    assert_eq!(layer_gets(&fake, &img).len(), 1);
    assert_eq!(index_json(&dir)["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn usage_and_platform_warnings() {
    let env = Env::new();
    env.run(["pull", "only-one-argument"]).expect_code(2);
    env.run(["pull", "a/b", "dir", "--raw"]).expect_code(2);
    env.run(["tags", "a/b", "--verify"]).expect_code(2);

    // A single-platform image for another platform is taken, with a warning.
    let img = FakeImage::new(11);
    let fake = Fake::http().serve(img.routes().on(
        "GET",
        &img.layer_path(),
        Response::ok().body(img.layer.clone()),
    ));
    let dir = env.path().join("layout");
    let run = pull_fake(&env, &fake, &dir, &["--arch", "arm64"]);
    run.ok();
    assert!(run.stderr.contains("warning") && run.stderr.contains("linux/amd64"), "{}", run.stderr);
    let quiet = pull_fake(&env, &fake, &dir, &["-q"]);
    quiet.ok();
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

/// A name the registry does not know leaves no layout behind, and a DIR
/// that is a file is refused before the registry is asked.
#[test]
fn a_missing_image_makes_no_layout() {
    let env = Env::new();
    let fake = Fake::http(); // a 404 for everything
    let dir = env.path().join("new-layout");
    let run = pull_fake(&env, &fake, &dir, &[]);
    run.expect_code(3);
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    assert!(!dir.exists(), "a failed pull made {}", dir.display());

    let file = env.path().join("file");
    fs::write(&file, "x").unwrap();
    let asked = fake.requests().len();
    let run = pull_fake(&env, &fake, &file, &[]);
    run.expect_code(2);
    assert!(run.stderr.contains("is not a directory"), "{}", run.stderr);
    assert_eq!(fake.requests().len(), asked, "the registry was asked");
}

#[test]
fn bad_partial_file_from_an_earlier_run_is_fetched_again_whole() {
    let img = FakeImage::new(12);
    let layer = img.layer.clone();
    let fake = Fake::http().serve(
        img.routes().handle("GET", &img.layer_path(), move |req, _| ranged(&layer, req, true)),
    );
    let env = Env::new();
    let dir = env.path().join("layout");
    fs::create_dir_all(dir.join(".ferry/partial")).unwrap();
    fs::write(partial(&dir, &img), vec![0u8; LAYER / 3]).unwrap();
    let run = pull_fake(&env, &fake, &dir, &[]);
    run.ok();
    assert_eq!(layer_gets(&fake, &img), vec![Some(format!("bytes={}-", LAYER / 3)), None]);
    assert!(run.stderr.contains("fetching it whole"), "{}", run.stderr);
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
}

#[test]
fn rate_limited_blob_waits_for_retry_after() {
    let img = FakeImage::new(13);
    let fake = Fake::http().serve(img.routes().seq(
        "GET",
        &img.layer_path(),
        vec![
            Response::errors(429, "TOOMANYREQUESTS", "slow down").header("Retry-After", "1"),
            Response::ok().body(img.layer.clone()),
        ],
    ));
    let env = Env::new();
    let dir = env.path().join("layout");
    let started = Instant::now();
    pull_fake(&env, &fake, &dir, &[]).ok();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(layer_gets(&fake, &img).len(), 2);
    assert_eq!(fs::read(blob_path(&dir, &img.layer_digest)).unwrap(), img.layer);
}

#[test]
fn disk_full_is_a_clear_error_and_leaves_no_partial_blob() {
    require_tool("unshare", "util-linux");
    let img = FakeImage::new(14);
    let fake = Fake::http().serve(img.routes().on(
        "GET",
        &img.layer_path(),
        Response::ok().body(img.layer.clone()),
    ));
    let env = Env::new();
    let mnt = env.path().join("small");
    fs::create_dir_all(&mnt).unwrap();
    let image = format!("{}/{REPO}:t", fake.host());
    // A private mount namespace: the tmpfs of 3/4 of the layer disappears
    // with it, so the listing is made inside.
    let script = r#"mount -t tmpfs -o size=768k tmpfs "$1" || exit 99
"$2" --plain-http --timeout 5 pull "$3" "$1/layout"; echo "rc=$?"
cd "$1/layout" && find . -type f | sort"#;
    let mut cmd = Command::new("unshare");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.path())
        .env("XDG_CONFIG_HOME", env.path().join(".config"))
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(&mnt)
        .arg(crate::common::ferry_bin())
        .arg(&image);
    let run = output_within(cmd, LIMIT);
    assert!(run.stdout.contains("rc=1\n"), "{run:?}");
    assert!(run.stderr.contains("No space left on device"), "{}", run.stderr);
    assert!(run.stderr.contains("ferry: pull "), "{}", run.stderr);
    let files: Vec<&str> =
        run.stdout.lines().skip_while(|l| !l.starts_with("rc=")).skip(1).collect();
    let config = format!("./blobs/sha256/{}", &img.config_digest["sha256:".len()..]);
    assert_eq!(files, vec!["./.ferry/lock", config.as_str(), "./oci-layout"], "{run:?}");
}

#[test]
fn thirty_small_layers() {
    let reg = Registry::start(Auth::None);
    let mut spec = ImageSpec::small("thirty");
    spec.layers =
        (0..30).map(|i| vec![(format!("f{i}"), format!("file {i}\n").into_bytes())]).collect();
    let pushed = reg.push("many/layers:1", &spec);
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = ferry(&env, &reg, &["--json", "pull", &pushed.reference, dir.to_str().unwrap()]);
    run.ok();
    let summary: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(summary["blobs_fetched"], 31);
    assert_eq!(entry(&dir, &pushed.reference)["digest"], pushed.digest);
    let rootfs = umoci_unpack(&dir, &pushed.reference, &env.path().join("bundle"));
    assert_eq!(fs::read_to_string(rootfs.join("f29")).unwrap(), "file 29\n");
}

#[test]
fn a_resumed_pull_creates_no_thread() {
    require_tool("strace", "strace");
    let img = FakeImage::new(15);
    let fake = cut_at_half(&img, true);
    let env = Env::new();
    let dir = env.path().join("layout");
    let trace = env.path().join("strace.out");
    let template = env.command(["unused"]);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-e", "trace=clone,clone3", "-o"]).arg(&trace);
    cmd.arg(crate::common::ferry_bin());
    cmd.args(["--plain-http", "--timeout", "5", "pull"]);
    cmd.arg(format!("{}/{REPO}:t", fake.host())).arg(&dir);
    cmd.env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    output_within(cmd, LIMIT).ok();
    assert_eq!(layer_gets(&fake, &img).len(), 2, "the blob was resumed");
    let trace = fs::read_to_string(&trace).expect("strace output");
    let clones: Vec<&str> = trace.lines().filter(|l| l.contains("clone")).collect();
    assert!(clones.is_empty(), "ferry cloned:\n{trace}");
}

/// One 200 MB layer streams through with the digest skopeo reports, and
/// what lands in the layout is exactly the registry's blob.
#[test]
fn a_200_mb_layer() {
    let reg = Registry::start(Auth::None);
    let spec = ImageSpec::small("big-layer").with_random_layer("big", 200 << 20);
    let pushed = reg.push("big/layer:1", &spec);
    let env = Env::new();
    let dir = env.path().join("layout");
    let run = ferry(&env, &reg, &["--json", "pull", &pushed.reference, dir.to_str().unwrap()]);
    run.ok();
    assert_eq!(entry(&dir, &pushed.reference)["digest"], pushed.digest);
    let (digest, size) =
        pushed.images[0].layers.iter().find(|(_, size)| *size > 200 << 20).expect("the big layer");
    let bytes =
        fs::read(dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap();
    assert_eq!(bytes.len() as u64, *size);
    assert_eq!(sha256(&bytes), *digest);
}
