//! The tar layer walker (`unpack`'s `Tree`): whatever the layers hold,
//! nothing is written outside the root filesystem being built.
//!
//! The input is one to three layer blobs separated by `SEPARATOR`, so a
//! symlink planted by one layer can be written through by the next. Each
//! blob is applied as a plain tar (one starting with the gzip magic takes
//! the gzip path, and then fails its diff_id at the end, after its
//! entries were applied). Per input, in a fresh directory of its own:
//!
//!   N/outside/canary, N/outside/layer0.. the blobs, outside the tree
//!   N/root/                              the tree
//!
//! and afterwards, whatever the result: the canary and the blobs are
//! unchanged, still plain files with one link each, and nothing else
//! exists in N, N/outside or the directory holding N.

#![no_main]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_fuzz::digest::Digest;
use ferry_fuzz::manifest::Descriptor;
use ferry_fuzz::unpack::fuzz_apply_layers;
use libfuzzer_sys::fuzz_target;

const SEPARATOR: &[u8] = b"%%ferry-layer%%";
const MAX_LAYERS: usize = 3;
const CANARY: &[u8] = b"canary: must not change";
const MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// This process's own directory under the system's temporary directory.
fn jail() -> PathBuf {
    std::env::temp_dir().join(format!("ferry-fuzz-layer-{}", std::process::id()))
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut layers = Vec::new();
    let mut rest = data;
    while layers.len() + 1 < MAX_LAYERS {
        let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) else { break };
        layers.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    layers.push(rest);
    layers
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A plain file with one link and exactly `content`.
fn untouched(path: &Path, content: &[u8]) {
    let m = fs::symlink_metadata(path).unwrap();
    assert!(m.is_file(), "{} is no longer a plain file", path.display());
    assert_eq!(m.nlink(), 1, "{} gained a hard link", path.display());
    assert!(fs::read(path).unwrap() == content, "{} changed", path.display());
}

/// `remove_dir_all`, after giving the owner every directory back should a
/// layer have left one without write or search permission.
fn remove(dir: &Path) {
    fn open_up(dir: &Path) {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    open_up(&e.path());
                }
            }
        }
    }
    if fs::remove_dir_all(dir).is_err() {
        open_up(dir);
        fs::remove_dir_all(dir).unwrap();
    }
}

fuzz_target!(|data: &[u8]| {
    let jail = jail();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = jail.join(n.to_string());
    let outside = base.join("outside");
    let root = base.join("root");
    fs::create_dir_all(&outside).unwrap();
    fs::create_dir(&root).unwrap();
    fs::write(outside.join("canary"), CANARY).unwrap();

    let blobs = split(data);
    let mut layers = Vec::new();
    let mut expected = vec!["canary".to_string()];
    for (i, blob) in blobs.iter().enumerate() {
        let path = outside.join(format!("layer{i}"));
        fs::write(&path, blob).unwrap();
        expected.push(format!("layer{i}"));
        let digest = Digest::sha256_of(blob);
        let d = Descriptor {
            media_type: MEDIA_TYPE.to_string(),
            digest: digest.clone(),
            size: blob.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        };
        layers.push((path, d, digest));
    }

    let _ = fuzz_apply_layers(&root, &layers);

    assert_eq!(names(&jail), [n.to_string()], "written beside the test directory");
    assert_eq!(names(&base), ["outside", "root"], "written beside the root");
    assert_eq!(names(&outside), expected, "written into outside/");
    untouched(&outside.join("canary"), CANARY);
    for (i, blob) in blobs.iter().enumerate() {
        untouched(&outside.join(format!("layer{i}")), blob);
    }
    assert!(fs::symlink_metadata(&root).unwrap().is_dir(), "root replaced");
    remove(&base);
    let _ = fs::remove_dir(&jail);
});
