//! `ferry push ROOTFS IMAGE`: a directory tree made into a one-layer image
//! and pushed, the way Charliecloud users publish what they built.
//!
//! The layer is a gzip tar of the tree made the same way every time:
//! entries depth first with siblings in byte order of their names, owners
//! 0:0 with no names, setuid and setgid dropped, times kept (or clamped to
//! `SOURCE_DATE_EPOCH`), GNU headers with long names as the tar crate
//! writes them, and a gzip header without name or time at a fixed level.
//! The same tree therefore gives the same layer, config and manifest
//! digests. Symlinks are stored, never followed; two paths sharing an inode
//! become a file and a hard link; sockets are left out. `ROOTFS/ch` is
//! Charliecloud's metadata, not image content: it is left out, and
//! `ch/environment` becomes the config's `Env`.
//!
//! The layer streams through two `DigestWriter`s (the tar's diff_id, then
//! the gzip's digest) into a temporary file that is unlinked as soon as it
//! is created, so nothing is left behind even when ferry is killed; the
//! open file is what the uploader reads. Pushing a layout is `push`'s
//! business; this module only decides which of the two a directory is.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use serde_json::json;
use tar::{EntryType, Header};

use crate::commands::Ctx;
use crate::digest::{Algorithm, Digest, DigestWriter};
use crate::error::{self, Error, Result};
use crate::manifest::{self, Descriptor, Platform};
use crate::push::{self, Pusher, Source};
use crate::reference::Reference;
use crate::{info, verbose, warn};

/// What a container gets when the tree carries no `ch/environment`:
/// the PATH docker gives images built from scratch.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Largest `ch/environment` read.
const ENV_LIMIT: u64 = 1 << 20;
/// Write buffer for the layer file.
const BUFFER: usize = 128 * 1024;
/// The gzip level, fixed: the level changes the bytes, hence the digest.
const LEVEL: u32 = 6;
/// Charliecloud's metadata directory at the top of a tree.
const CH_DIR: &str = "ch";
/// The latest `SOURCE_DATE_EPOCH` accepted: 9999-12-31T23:59:59Z, the end
/// of what RFC 3339's four-digit years can write.
const EPOCH_MAX: u64 = 253_402_300_799;

/// The media types of one flavour of image.
struct Types {
    manifest: &'static str,
    config: &'static str,
    layer: &'static str,
}

const OCI: Types = Types {
    manifest: manifest::OCI_MANIFEST,
    config: "application/vnd.oci.image.config.v1+json",
    layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};

/// What Docker's v2 schema 2 names the same things; old registries and
/// tools accept only these.
const DOCKER: Types = Types {
    manifest: manifest::DOCKER_MANIFEST,
    config: "application/vnd.docker.container.image.v1+json",
    layer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

/// What the first argument of `ferry push` names.
#[derive(Debug, PartialEq, Eq)]
pub enum PushSource {
    /// An OCI image layout, maybe as `DIR:REF`: `push` handles it.
    Layout,
    /// A root filesystem directory, to become a one-layer image.
    Tree(PathBuf),
}

/// Decides what `source` is. The rule: an existing directory holding an
/// `oci-layout` file is a layout; one holding neither `oci-layout` nor
/// `index.json` is a root filesystem; one holding `index.json` without
/// `oci-layout` could be either (a broken layout, or a tree with such a
/// file at its top) and is refused. Anything that is not a directory is
/// left to `push`, which reads it as `DIR:REF`.
pub fn classify(source: &str) -> Result<PushSource> {
    let path = Path::new(source);
    if !path.is_dir() {
        return Ok(PushSource::Layout);
    }
    let has = |name: &str| fs::symlink_metadata(path.join(name)).is_ok();
    if has("oci-layout") {
        return Ok(PushSource::Layout);
    }
    if has("index.json") {
        return Err(Error::usage(format!(
            "{}: holds index.json but no oci-layout file, so it is neither an OCI image \
             layout nor clearly a root filesystem",
            path.display()
        ))
        .with_hint(
            "add the oci-layout file to push it as a layout, or move index.json away to push \
             the tree",
        ));
    }
    Ok(PushSource::Tree(path.to_path_buf()))
}

/// How a tree becomes an image.
pub struct Options<'a> {
    /// `--arch`, else the host's platform.
    pub arch: Option<&'a str>,
    /// `--docker-types`: Docker v2 media types instead of OCI's.
    pub docker_types: bool,
    pub chunk_size: Option<u64>,
}

/// `ferry push SOURCE IMAGE` in every form: a root filesystem here, a
/// layout (and `--all`) in `push`. Options that apply to one form only
/// are refused on the other.
pub fn push_command(
    ctx: &mut Ctx,
    source: &str,
    dest: &str,
    all: bool,
    opts: &Options,
) -> Result<()> {
    match classify(source)? {
        PushSource::Tree(rootfs) if all => Err(Error::usage(format!(
            "push --all takes an OCI image layout; {} is a directory tree",
            rootfs.display()
        ))),
        PushSource::Tree(rootfs) => push_tree(ctx, &rootfs, dest, opts),
        PushSource::Layout if opts.arch.is_some() || opts.docker_types => Err(Error::usage(
            "--arch and --docker-types apply when pushing a directory tree, not a layout",
        )
        .with_hint("a layout's images keep their own platform and media types")),
        PushSource::Layout => push::push(ctx, source, dest, all, opts.chunk_size),
    }
}

/// Makes the tree `rootfs` into an image and pushes it to `dest`.
fn push_tree(ctx: &mut Ctx, rootfs: &Path, dest: &str, opts: &Options) -> Result<()> {
    let r = Reference::parse(dest)?;
    let platform = match opts.arch {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let epoch = source_date_epoch()?;
    let types = if opts.docker_types { &DOCKER } else { &OCI };
    let label = rootfs.display().to_string();

    // The layer, then the config naming its diff_id, then the manifest.
    verbose!("making a layer of {label}");
    let layer = build_layer(rootfs, epoch).map_err(|e| e.context(format!("push {label}")))?;
    verbose!(
        "layer {}: {} entries, {} bytes ({} uncompressed, diff_id {})",
        layer.digest,
        layer.entries,
        layer.size,
        layer.tar_size,
        layer.diff_id
    );
    let env = environment(rootfs)?;
    let config = config_json(&platform, &env, &layer.diff_id, epoch);
    let config_desc = descriptor(types.config, Digest::sha256_of(&config), config.len() as u64);
    let layer_desc = descriptor(types.layer, layer.digest.clone(), layer.size);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": types.manifest,
        "config": config_desc,
        "layers": [layer_desc],
    }))
    // Serializing a Value holding only strings and numbers cannot fail.
    .expect("a JSON value serializes");
    let digest = Digest::sha256_of(&manifest);
    let version = push::target_version(&r, &digest)?;

    // Blobs first, the manifest last, as for any push.
    let remote = ctx.remote(&r.registry)?;
    let mut pusher = Pusher::new(remote, opts.chunk_size, ctx.global.retries);
    let mut blobs =
        Blobs { layer: layer.file, config: &config, config_digest: &config_desc.digest };
    let pushed = (|| {
        pusher.blob(&r.path, &layer_desc, &mut blobs)?;
        pusher.blob(&r.path, &config_desc, &mut blobs)?;
        pusher.manifest(&r.path, &version, &manifest, types.manifest, &digest)
    })();
    pushed.map_err(|e| e.context(format!("push {label} to {r}")))?;
    info!("pushed {label} to {r} {digest}");
    info!("{}", pusher.stats.summary());

    let mut doc = pusher.stats.json();
    doc["rootfs"] = json!(rootfs);
    doc["images"] = json!([{
        "source": label,
        "destination": r.canonical(),
        "digest": digest.to_string(),
    }]);
    doc["media_type"] = json!(types.manifest);
    doc["config"] = json!({"digest": config_desc.digest.to_string(), "size": config_desc.size});
    doc["layer"] = json!({
        "digest": layer.digest.to_string(),
        "size": layer.size,
        "diff_id": layer.diff_id.to_string(),
        "entries": layer.entries,
    });
    ctx.print(doc, |_| Ok(()))
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        platform: None,
        annotations: None,
        urls: None,
    }
}

/// The layer file and the config, for the uploader.
struct Blobs<'a> {
    layer: File,
    config: &'a [u8],
    config_digest: &'a Digest,
}

impl Source for Blobs<'_> {
    fn open(&mut self, d: &Descriptor) -> Result<Box<dyn Read + '_>> {
        if d.digest == *self.config_digest {
            return Ok(Box::new(self.config));
        }
        // Each attempt reads the unlinked layer file from its start.
        self.layer
            .seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("rewinding the temporary layer file", e))?;
        Ok(Box::new(&self.layer))
    }

    fn transient(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------
// The environment, the dates and the config.

/// `SOURCE_DATE_EPOCH` (reproducible-builds.org): seconds since 1970.
fn source_date_epoch() -> Result<Option<u64>> {
    let Some(value) = std::env::var_os("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    match text.trim().parse::<u64>() {
        Ok(n) if n <= EPOCH_MAX => Ok(Some(n)),
        _ => Err(Error::usage(format!(
            "SOURCE_DATE_EPOCH: \"{}\" is not a number of seconds since 1970 (up to {EPOCH_MAX})",
            crate::msg::clean(&text, 40)
        ))),
    }
}

/// The `Env` of the image: `ROOTFS/ch/environment` (one `NAME=value` per
/// line, as unpack and Charliecloud write it) when present, else PATH.
fn environment(rootfs: &Path) -> Result<Vec<String>> {
    let path = rootfs.join(CH_DIR).join("environment");
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![DEFAULT_PATH.into()]),
        Err(e) => return Err(Error::io(path.display(), e)),
    };
    // A symlink could point anywhere on this machine; its target's text
    // would go into a published image.
    if !meta.is_file() {
        return Err(Error::failure(format!("{}: not a regular file", path.display())));
    }
    let mut bytes = Vec::new();
    File::open(&path)
        .and_then(|f| f.take(ENV_LIMIT + 1).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path.display(), e))?;
    if bytes.len() as u64 > ENV_LIMIT {
        return Err(Error::failure(format!("{}: larger than {ENV_LIMIT} bytes", path.display())));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::failure(format!("{}: not UTF-8 text", path.display())))?;
    let mut env = Vec::new();
    for line in text.lines() {
        match line.split_once('=') {
            Some((name, _)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                env.push(line.to_string());
            }
            _ if line.trim().is_empty() => {}
            _ => warn!("{}: ignoring a line that is not NAME=value", path.display()),
        }
    }
    verbose!("environment from {}: {} variables", path.display(), env.len());
    Ok(env)
}

/// The image config. Its `created` date is `SOURCE_DATE_EPOCH` when set,
/// else the epoch itself: the newest mtime of the tree or the current
/// time would make the digest depend on when files were touched or
/// pushed, and the whole point is that one tree gives one digest.
fn config_json(
    platform: &Platform,
    env: &[String],
    diff_id: &Digest,
    epoch: Option<u64>,
) -> Vec<u8> {
    let created = rfc3339(epoch.unwrap_or(0));
    let mut config = json!({
        "created": created,
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created": created, "created_by": "ferry push"}],
    });
    if let Some(v) = &platform.variant {
        config["variant"] = json!(v);
    }
    // Object keys come out sorted (or, should a dependency turn on
    // serde_json's preserve_order, in the fixed order above), so the bytes
    // depend only on the values. A Value of strings cannot fail to
    // serialize.
    serde_json::to_vec(&config).expect("a JSON value serializes")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (UTC).
fn rfc3339(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to a civil date, after Howard Hinnant's `civil_from_days`
    // (proleptic Gregorian, eras of 400 years starting 0000-03-01).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

// ---------------------------------------------------------------------
// The layer.

struct Layer {
    /// The gzip, unlinked, read from the start by each upload attempt.
    file: File,
    diff_id: Digest,
    digest: Digest,
    size: u64,
    tar_size: u64,
    entries: u64,
}

/// A fresh file in the temporary directory, unlinked at once: only the
/// open descriptor keeps it, so it goes away however ferry ends.
fn scratch_file() -> Result<File> {
    let dir = std::env::temp_dir();
    let mut attempts = 0;
    loop {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).map_err(|e| Error::failure(format!("randomness: {e}")))?;
        let name: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let path = dir.join(format!("ferry-layer-{name}.tar.gz"));
        let opened =
            OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path);
        match opened {
            Ok(file) => {
                fs::remove_file(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => attempts += 1,
            Err(e) => {
                return Err(Error::io(format!("creating a file in {}", dir.display()), e)
                    .with_hint("set TMPDIR to a writable directory with room for the layer"));
            }
        }
    }
}

type TarOut = DigestWriter<flate2::write::GzEncoder<DigestWriter<BufWriter<File>>>>;

/// Writes the tree `root` as a gzip tar into a scratch file: tar bytes
/// hashed for the diff_id, compressed, hashed again for the digest.
fn build_layer(root: &Path, epoch: Option<u64>) -> Result<Layer> {
    let file = scratch_file()?;
    let compressed = DigestWriter::new(BufWriter::with_capacity(BUFFER, file), Algorithm::Sha256);
    // No file name and time 0 in the gzip header; the OS byte is flate2's
    // fixed "unknown".
    let gz = GzBuilder::new().mtime(0).write(compressed, Compression::new(LEVEL));
    let mut tar = tar::Builder::new(DigestWriter::new(gz, Algorithm::Sha256));

    let entries =
        Walker { root, epoch, tar: &mut tar, inodes: HashMap::new(), entries: 0 }.walk()?;

    let wrote = |e| error::from_io("writing the layer", e);
    let plain: TarOut = tar.into_inner().map_err(wrote)?;
    let tar_size = plain.written();
    let (gz, diff_id) = plain.finish();
    let compressed = gz.finish().map_err(wrote)?;
    let size = compressed.written();
    let (buffered, digest) = compressed.finish();
    let file = buffered.into_inner().map_err(|e| wrote(e.into_error()))?;
    Ok(Layer { file, diff_id, digest, size, tar_size, entries })
}

/// Walks a tree into a tar, one entry per path.
struct Walker<'a> {
    root: &'a Path,
    epoch: Option<u64>,
    tar: &'a mut tar::Builder<TarOut>,
    /// (device, inode) of files with several links → the path first seen.
    inodes: HashMap<(u64, u64), PathBuf>,
    entries: u64,
}

impl Walker<'_> {
    /// Depth first, siblings in byte order, from an explicit stack so a
    /// deep tree cannot exhaust the call stack.
    fn walk(mut self) -> Result<u64> {
        let mut stack = self.children(Path::new(""))?;
        stack.reverse();
        while let Some(rel) = stack.pop() {
            let full = self.root.join(&rel);
            let meta = fs::symlink_metadata(&full).map_err(|e| Error::io(full.display(), e))?;
            let is_dir = meta.file_type().is_dir();
            self.entry(&rel, &full, &meta)
                .map_err(|e| error::from_io(format!("{}", full.display()), e))?;
            if is_dir {
                let mut children = self.children(&rel)?;
                children.reverse();
                stack.append(&mut children);
            }
        }
        Ok(self.entries)
    }

    /// The names in directory `rel`, sorted, as paths relative to the
    /// root; at the top, Charliecloud's `ch` directory is left out.
    fn children(&self, rel: &Path) -> Result<Vec<PathBuf>> {
        let dir = self.root.join(rel);
        let mut names = fs::read_dir(&dir)
            .and_then(|entries| {
                entries.map(|e| e.map(|e| e.file_name())).collect::<io::Result<Vec<OsString>>>()
            })
            .map_err(|e| Error::io(dir.display(), e))?;
        if rel.as_os_str().is_empty()
            && fs::symlink_metadata(dir.join(CH_DIR)).is_ok_and(|m| m.is_dir())
        {
            verbose!("leaving out {} (Charliecloud's metadata)", dir.join(CH_DIR).display());
            names.retain(|n| n != CH_DIR);
        }
        // OsString orders by bytes on Unix, the same on every machine.
        names.sort();
        Ok(names.into_iter().map(|n| rel.join(n)).collect())
    }

    /// A header with what every entry shares: type, mode without setuid
    /// and setgid, owner 0:0 without names, the clamped mtime.
    fn header(&self, meta: &Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777 & !0o6000);
        h.set_uid(0);
        h.set_gid(0);
        let mtime = u64::try_from(meta.mtime()).unwrap_or(0);
        h.set_mtime(self.epoch.map_or(mtime, |e| mtime.min(e)));
        h.set_size(0);
        h
    }

    fn entry(&mut self, rel: &Path, full: &Path, meta: &Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        let mut h;
        if ft.is_dir() {
            h = self.header(meta, EntryType::Directory);
            let mut name = rel.as_os_str().to_owned();
            name.push("/");
            self.tar.append_data(&mut h, name, io::empty())?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.inodes.get(&key) {
                    h = self.header(meta, EntryType::Link);
                    let first = first.clone();
                    self.tar.append_link(&mut h, rel, first)?;
                    self.entries += 1;
                    return Ok(());
                }
                self.inodes.insert(key, rel.to_path_buf());
            }
            h = self.header(meta, EntryType::Regular);
            let file = File::open(full)?;
            let now = file.metadata()?;
            // Replaced between the walk's lstat and the open (maybe by a
            // symlink to a file elsewhere): refuse rather than follow.
            if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
                return Err(changed(full));
            }
            h.set_size(meta.len());
            let exact = ExactReader { inner: file, left: meta.len(), path: full };
            self.tar.append_data(&mut h, rel, exact)?;
        } else if ft.is_symlink() {
            h = self.header(meta, EntryType::Symlink);
            let target = fs::read_link(full)?;
            self.tar.append_link(&mut h, rel, target)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                EntryType::Fifo
            } else if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            h = self.header(meta, kind);
            if !ft.is_fifo() {
                let (major, minor) = device_numbers(meta.rdev());
                h.set_device_major(major)?;
                h.set_device_minor(minor)?;
            }
            self.tar.append_data(&mut h, rel, io::empty())?;
        } else {
            // Sockets belong to a running process, not to an image.
            verbose!("{}: a socket; left out", full.display());
            return Ok(());
        }
        self.entries += 1;
        Ok(())
    }
}

/// glibc's `major()` and `minor()` of a `dev_t`.
fn device_numbers(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    // Both fit in 32 bits by the masks above.
    (major as u32, minor as u32)
}

fn changed(path: &Path) -> io::Error {
    error::into_io(
        Error::failure(format!("{}: changed while being read", path.display()))
            .with_hint("push a tree nothing else is writing to"),
    )
}

/// Reads exactly `left` bytes, the size the tar header already promised;
/// a file that shrank is an error instead of a corrupt archive, and one
/// that grew is cut at the size seen.
struct ExactReader<'a> {
    inner: File,
    left: u64,
    path: &'a Path,
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(changed(self.path));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(EPOCH_MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn devices() {
        // makedev(8, 1) and makedev(259, 70000) as glibc encodes them.
        assert_eq!(device_numbers(0x801), (8, 1));
        let rdev = (259u64 & 0xfff) << 8 | (70_000u64 & 0xff) | ((70_000u64 & !0xff) << 12);
        assert_eq!(device_numbers(rdev), (259, 70_000));
    }

    fn tar_listing(root: &Path, epoch: Option<u64>) -> (Layer, Vec<(String, EntryType, u32, u64)>) {
        let mut layer = build_layer(root, epoch).unwrap();
        layer.file.seek(SeekFrom::Start(0)).unwrap();
        let mut gz = Vec::new();
        (&layer.file).read_to_end(&mut gz).unwrap();
        assert_eq!(Digest::sha256_of(&gz), layer.digest);
        assert_eq!(&gz[4..10], &[0, 0, 0, 0, 0, 255], "gzip header: no time, OS unknown");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut plain).unwrap();
        assert_eq!(Digest::sha256_of(&plain), layer.diff_id);
        let mut archive = tar::Archive::new(&plain[..]);
        let list = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
                assert_eq!(h.username_bytes(), Some(&b""[..]));
                let name = e.path().unwrap().display().to_string();
                (name, h.entry_type(), h.mode().unwrap(), h.mtime().unwrap())
            })
            .collect();
        (layer, list)
    }

    #[test]
    fn layers_are_sorted_deterministic_and_leave_out_ch() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::create_dir_all(root.join("ch")).unwrap();
        fs::write(root.join("ch/environment"), "A=1\n\nB=two words\n").unwrap();
        fs::write(root.join("a"), "a").unwrap();
        fs::write(root.join("b/c/d"), "d").unwrap();
        fs::set_permissions(root.join("a"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(root.join("a"), root.join("b/a-link")).unwrap();
        symlink("../a", root.join("b/s")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();

        let (first, list) = tar_listing(&root, Some(1000));
        let names: Vec<&str> = list.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["a", "b/", "b/a-link", "b/c/", "b/c/d", "b/s"]);
        assert_eq!(list[0].1, EntryType::Regular);
        assert_eq!(list[0].2, 0o755, "setuid dropped");
        assert_eq!(list[2].1, EntryType::Link);
        assert_eq!(list[5].1, EntryType::Symlink);
        assert!(list.iter().all(|e| e.3 <= 1000), "clamped: {list:?}");
        assert_eq!(first.entries, 6);

        let (again, _) = tar_listing(&root, Some(1000));
        assert_eq!((again.digest, again.diff_id), (first.digest.clone(), first.diff_id));
        assert_eq!(environment(&root).unwrap(), ["A=1", "B=two words"]);
        fs::remove_dir_all(root.join("ch")).unwrap();
        assert_eq!(environment(&root).unwrap(), [DEFAULT_PATH]);
    }

    #[test]
    fn long_names_and_classification() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let long = "x".repeat(150);
        fs::create_dir_all(root.join(&long)).unwrap();
        fs::write(root.join(&long).join(&long), "deep").unwrap();
        let (_, list) = tar_listing(&root, None);
        assert_eq!(list[1].0, format!("{long}/{long}"));

        let s = root.to_str().unwrap();
        assert_eq!(classify(s).unwrap(), PushSource::Tree(root.clone()));
        fs::write(root.join("index.json"), "{}").unwrap();
        assert_eq!(classify(s).unwrap_err().kind, crate::error::Kind::Usage);
        fs::write(root.join("oci-layout"), "{}").unwrap();
        assert_eq!(classify(s).unwrap(), PushSource::Layout);
        assert_eq!(classify(&format!("{s}:ref")).unwrap(), PushSource::Layout);
    }

    #[test]
    fn configs() {
        let d = Digest::sha256_of(b"x");
        let p = Platform::parse("linux/arm64/v8").unwrap();
        let c: serde_json::Value =
            serde_json::from_slice(&config_json(&p, &["A=1".into()], &d, Some(86_400))).unwrap();
        assert_eq!(c["created"], "1970-01-02T00:00:00Z");
        assert_eq!(c["variant"], "v8");
        assert_eq!(c["config"]["Env"][0], "A=1");
        assert_eq!(c["rootfs"]["diff_ids"][0], d.to_string());
        assert_eq!(c["history"].as_array().unwrap().len(), 1);
    }
}
