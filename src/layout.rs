//! An OCI image layout on disk: `oci-layout`, `index.json` and
//! `blobs/<alg>/<hex>`, plus ferry's own working area `.ferry/`.
//!
//! A file appears under its final name only complete, verified and
//! synced: blobs are renamed into place from `.ferry/partial/<alg>-<hex>`,
//! small files and `index.json` from a temporary file in `.ferry/`. A lock
//! on `.ferry/lock` (std's `File::lock`, released by the kernel when its
//! holder dies) keeps concurrent ferry runs on one layout in turn. What to
//! fetch and how to check it is `pull`'s business, not this module's.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::digest::{Digest, DigestWriter};
use crate::error::{Error, Result};
use crate::info;
use crate::manifest::{self, Descriptor};

/// The annotation OCI tools look an image up by.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd's importer names the image by.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Largest `index.json` read: room for many thousands of entries.
const INDEX_LIMIT: u64 = 64 << 20;

/// An open, locked layout.
pub struct Layout {
    dir: PathBuf,
    /// Held for the life of the value; the kernel drops the lock with it.
    _lock: File,
}

impl Layout {
    /// Opens the layout at `dir`, creating it if absent, and waits for the
    /// lock on it.
    pub fn open(dir: &Path) -> Result<Layout> {
        Layout::check(dir)?;
        let work = dir.join(".ferry");
        fs::create_dir_all(work.join("partial")).map_err(|e| Error::io(work.display(), e))?;
        let lock_path = work.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(lock_path.display(), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                info!("waiting for another ferry using {}", dir.display());
                lock.lock().map_err(|e| Error::io(format!("locking {}", dir.display()), e))?;
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", dir.display()), e));
            }
        }
        let layout = Layout { dir: dir.to_path_buf(), _lock: lock };

        // The marker file goes last so a layout is never half-announced.
        let marker = dir.join("oci-layout");
        match fs::read(&marker) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                layout.write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
            Err(e) => return Err(Error::io(marker.display(), e)),
        }
        Ok(layout)
    }

    /// Fails when `dir` exists and is not a directory, so a command can
    /// say so before it goes to the network.
    pub fn check(dir: &Path) -> Result<()> {
        if fs::metadata(dir).is_ok_and(|m| !m.is_dir()) {
            return Err(Error::usage(format!(
                "layout {}: exists and is not a directory",
                dir.display()
            )));
        }
        Ok(())
    }

    /// `blobs/<alg>/<hex>`; the digest was validated when parsed.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs").join(d.algorithm().name()).join(d.hex())
    }

    /// Where a blob being fetched lives until it is complete.
    pub fn partial_path(&self, d: &Digest) -> PathBuf {
        self.dir.join(".ferry/partial").join(format!("{}-{}", d.algorithm().name(), d.hex()))
    }

    /// Whether the blob `d` is present with the right size; with `verify`
    /// also the right digest. A wrong one is removed so it can be fetched
    /// again.
    pub fn has_blob(&self, d: &Descriptor, verify: bool) -> Result<bool> {
        let path = self.blob_path(&d.digest);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io(path.display(), e)),
        };
        let why = if len != d.size {
            format!("{len} bytes, expected {}", d.size)
        } else if verify {
            let file = File::open(&path).map_err(|e| Error::io(path.display(), e))?;
            let mut w = DigestWriter::new(io::sink(), d.digest.algorithm());
            io::copy(&mut file.take(d.size), &mut w).map_err(|e| Error::io(path.display(), e))?;
            let (_, actual) = w.finish();
            if actual == d.digest {
                return Ok(true);
            }
            format!("content has digest {actual}")
        } else {
            return Ok(true);
        };
        crate::warn!(
            "blob {} in {} is damaged ({why}); fetching it again",
            d.digest,
            self.dir.display()
        );
        fs::remove_file(&path).map_err(|e| Error::io(path.display(), e))?;
        Ok(false)
    }

    /// Moves the synced, verified file `from` into place as blob `d`.
    pub fn commit_blob(&self, from: &Path, d: &Digest) -> Result<()> {
        let to = self.blob_path(d);
        // blob_path always ends in blobs/<alg>/<hex>, so it has a parent.
        let parent = to.parent().expect("a blob path has blobs/<alg> above it");
        fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        fs::rename(from, &to).map_err(|e| Error::io(format!("renaming to {}", to.display()), e))?;
        sync_dir(parent)
    }

    /// Writes a small blob already checked in memory (manifest, index,
    /// config) unless it is there.
    pub fn put_blob(&self, bytes: &[u8], d: &Digest) -> Result<()> {
        let to = self.blob_path(d);
        if fs::metadata(&to).is_ok_and(|m| m.len() == bytes.len() as u64) {
            return Ok(());
        }
        // blob_path always ends in blobs/<alg>/<hex>, so it has a parent.
        let parent = to.parent().expect("a blob path has blobs/<alg> above it");
        fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        self.write_atomic(&to, bytes)
    }

    /// Points `name` at `target` in `index.json`: an entry with the same
    /// ref name is replaced, every other entry kept as it was.
    pub fn set_ref(&self, name: &str, target: &Descriptor) -> Result<()> {
        let path = self.dir.join("index.json");
        let mut index = match File::open(&path) {
            Ok(f) => {
                let mut bytes = Vec::new();
                f.take(INDEX_LIMIT + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::io(path.display(), e))?;
                if bytes.len() as u64 > INDEX_LIMIT {
                    return Err(Error::failure(format!(
                        "{}: larger than {INDEX_LIMIT} bytes",
                        path.display()
                    )));
                }
                let v: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::failure(format!("{}: {e}", path.display())))?;
                if !v.get("manifests").is_some_and(Value::is_array) {
                    return Err(Error::failure(format!(
                        "{}: not an image index (no \"manifests\" list)",
                        path.display()
                    )));
                }
                v
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => json!({
                "schemaVersion": 2,
                "mediaType": manifest::OCI_INDEX,
                "manifests": [],
            }),
            Err(e) => return Err(Error::io(path.display(), e)),
        };

        let mut entry = target.clone();
        let mut annotations = entry.annotations.take().unwrap_or_default();
        annotations.insert(REF_NAME.to_string(), name.to_string());
        annotations.insert(CONTAINERD_NAME.to_string(), name.to_string());
        entry.annotations = Some(annotations);
        let entry = serde_json::to_value(&entry)
            .map_err(|e| Error::failure(format!("encoding an index entry: {e}")))?;

        // Either read and checked to hold an array, or made just above.
        let manifests = index["manifests"].as_array_mut().expect("checked to be an array above");
        manifests.retain(|m| m["annotations"][REF_NAME].as_str() != Some(name));
        manifests.push(entry);
        let mut bytes = serde_json::to_vec_pretty(&index)
            .map_err(|e| Error::failure(format!("encoding index.json: {e}")))?;
        bytes.push(b'\n');
        self.write_atomic(&path, &bytes)
    }

    /// The ref names in `index.json` with their targets' digests.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn refs(&self) -> Result<BTreeMap<String, String>> {
        let path = self.dir.join("index.json");
        let bytes = fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::failure(format!("{}: {e}", path.display())))?;
        let mut out = BTreeMap::new();
        for m in v["manifests"].as_array().into_iter().flatten() {
            if let (Some(n), Some(d)) = (m["annotations"][REF_NAME].as_str(), m["digest"].as_str())
            {
                out.insert(n.to_string(), d.to_string());
            }
        }
        Ok(out)
    }

    /// Writes `bytes` to `to` through a synced temporary file in `.ferry/`
    /// and a rename, so readers see the old file or the new, never half.
    fn write_atomic(&self, to: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.dir.join(".ferry").join(format!("tmp-{}", random_hex()));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(format!("writing {}", to.display()), e));
        }
        if let Err(e) = fs::rename(&tmp, to) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(format!("renaming to {}", to.display()), e));
        }
        sync_dir(to.parent().unwrap_or(&self.dir))
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir.display(), e))
}

/// Sixteen random hex digits for a temporary name; the lock makes a
/// clash harmless, so a failing random source falls back to the pid.
fn random_hex() -> String {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        b = u64::from(std::process::id()).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: manifest::OCI_MANIFEST.into(),
            digest: Digest::sha256_of(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        }
    }

    #[test]
    fn creates_and_names_images() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("img");
        let layout = Layout::open(&dir).unwrap();
        assert!(dir.join("oci-layout").is_file());
        let a = desc(b"a");
        layout.put_blob(b"a", &a.digest).unwrap();
        assert!(layout.has_blob(&a, true).unwrap());
        layout.set_ref("h/x:1", &a).unwrap();
        let b = desc(b"b");
        layout.set_ref("h/x:2", &b).unwrap();
        layout.set_ref("h/x:1", &b).unwrap();
        let refs = layout.refs().unwrap();
        assert_eq!(refs.len(), 2);
        assert_eq!(refs["h/x:1"], b.digest.to_string());
        let text = fs::read_to_string(dir.join("index.json")).unwrap();
        assert!(text.contains(CONTAINERD_NAME));
        // Nothing temporary is left behind.
        let left: Vec<_> = fs::read_dir(dir.join(".ferry")).unwrap().collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn damaged_blobs_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::open(tmp.path()).unwrap();
        let a = desc(b"abc");
        let path = layout.blob_path(&a.digest);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"abd").unwrap();
        assert!(layout.has_blob(&a, false).unwrap());
        assert!(!layout.has_blob(&a, true).unwrap());
        assert!(!path.exists());
        fs::write(&path, b"ab").unwrap();
        assert!(!layout.has_blob(&a, false).unwrap());
    }

    #[test]
    fn a_file_is_not_a_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = Layout::open(&file).err().expect("a file opened as a layout");
        assert!(err.to_string().contains("is not a directory"), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"x");
    }

    #[test]
    fn the_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let _held = Layout::open(tmp.path()).unwrap();
        let other = File::open(tmp.path().join(".ferry/lock")).unwrap();
        assert!(matches!(other.try_lock(), Err(fs::TryLockError::WouldBlock)));
    }
}
