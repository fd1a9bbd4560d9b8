//! `ferry unpack`: an image of an OCI layout made into a root filesystem
//! directory, the way Charliecloud and apptainer sandboxes use one.
//!
//! Layers are applied in order into `ROOTFS.ferry-tmp-<random>` beside ROOTFS,
//! which is renamed into place only when every layer applied and matched
//! its `diff_id`; a failure removes the temporary tree and leaves ROOTFS as
//! it was. The extraction policy is ours, not the tar crate's: entries are
//! read one by one and every file is made here. Nothing is written outside
//! the tree whatever a layer holds: names with `..` are refused, absolute
//! names made relative, and every directory on the way to an entry is
//! checked with `symlink_metadata` right before use, so no path is ever
//! followed through a symlink. This is sound because ferry is one thread
//! and the tree is private to it while it is being built. Fetching the
//! image is `pull`'s business; this module reads a layout already on disk.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use flate2::bufread::MultiGzDecoder;
use serde_json::{Value, json};

use crate::commands::{self, Ctx};
use crate::digest::{Digest, Hasher, LimitReader};
use crate::error::{self, Error, Result};
use crate::layout::REF_NAME;
use crate::manifest::{self, Config, Descriptor, Document, Manifest, Platform};
use crate::reference::Reference;
use crate::{info, msg, verbose};

/// Largest `index.json` read.
const INDEX_LIMIT: u64 = 64 << 20;
/// Read buffer for layer blobs and their decompressed streams.
const BUFFER: usize = 128 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// How to unpack.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Replace a non-empty ROOTFS.
    pub force: bool,
    /// Keep uids, gids and setuid/setgid bits (root only).
    pub preserve_owners: bool,
}

/// `ferry unpack DIR[:REF] ROOTFS`.
pub fn unpack(
    ctx: &mut Ctx,
    source: &str,
    rootfs: &Path,
    arch: Option<&str>,
    opts: Options,
) -> Result<()> {
    let (dir, name) = split_source(source)?;
    let (ref_name, layers) = unpack_from(&dir, name.as_deref(), rootfs, arch, opts)?;
    ctx.print(json!({"reference": ref_name, "rootfs": rootfs, "layers": layers}), |_| Ok(()))
}

/// Unpacks the image `name` (or the only one) of the layout `dir`;
/// returns the image's ref name and its number of layers.
pub fn unpack_from(
    dir: &Path,
    name: Option<&str>,
    rootfs: &Path,
    arch: Option<&str>,
    opts: Options,
) -> Result<(String, usize)> {
    let wanted = match arch {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let (ref_name, manifest, config_bytes) = resolve(dir, name, &wanted)?;
    let config = Config::parse(&config_bytes)?;
    let diff_ids = config.rootfs.as_ref().map(|r| r.diff_ids.clone()).unwrap_or_default();
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::failure(format!(
            "{ref_name}: config lists {} diff_ids but the manifest has {} layers",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    check_target(rootfs, opts.force)?;

    // Build beside ROOTFS so the final rename stays on one filesystem.
    let tmp = temp_path(rootfs, "tmp")?;
    fs::create_dir(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    let built = (|| {
        let mut tree = Tree::new(&tmp, opts)?;
        for (i, (layer, diff_id)) in manifest.layers.iter().zip(&diff_ids).enumerate() {
            let what = format!("layer {} of {} ({})", i + 1, manifest.layers.len(), layer.digest);
            verbose!("applying {what}");
            let blob = blob_path(dir, &layer.digest);
            tree.apply_layer(&blob, layer, diff_id).map_err(|e| e.context(&what))?;
        }
        tree.finish()?;
        write_ch(&tmp, &config_bytes, &config)
    })();
    if let Err(e) = built {
        remove_tree(&tmp);
        return Err(e.context(format!("unpack {ref_name}")));
    }
    if let Err(e) = put_in_place(&tmp, rootfs) {
        remove_tree(&tmp);
        return Err(e);
    }
    info!("unpacked {ref_name} into {}", rootfs.display());
    Ok((ref_name, manifest.layers.len()))
}

// ---------------------------------------------------------------------
// Finding the image in the layout.

/// Splits `DIR[:REF]`: the whole string when it names a layout, else at
/// the first `:` whose left side is one (a REF may itself hold `:`).
fn split_source(source: &str) -> Result<(PathBuf, Option<String>)> {
    let is_layout = |d: &str| Path::new(d).join("oci-layout").is_file();
    if is_layout(source) {
        return Ok((PathBuf::from(source), None));
    }
    for (at, _) in source.match_indices(':') {
        let (dir, name) = (&source[..at], &source[at + 1..]);
        if is_layout(dir) {
            let name = (!name.is_empty()).then(|| name.to_string());
            return Ok((PathBuf::from(dir), name));
        }
    }
    Err(Error::failure(format!("{source}: not an OCI image layout (no oci-layout file)")))
}

/// Reads at most `limit` bytes of `path`.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path.display(), e))?;
    if bytes.len() as u64 > limit {
        return Err(Error::failure(format!("{}: larger than {limit} bytes", path.display())));
    }
    Ok(bytes)
}

fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs").join(d.algorithm().name()).join(d.hex())
}

/// A small blob (manifest, index, config), checked against its descriptor.
fn small_blob(dir: &Path, d: &Descriptor) -> Result<Vec<u8>> {
    let path = blob_path(dir, &d.digest);
    if !path.is_file() {
        return Err(Error::failure(format!("blob {} is missing from {}", d.digest, dir.display())));
    }
    let bytes = read_bounded(&path, manifest::DOCUMENT_LIMIT)?;
    let actual = Digest::of(&bytes, d.digest.algorithm());
    if actual != d.digest || bytes.len() as u64 != d.size {
        return Err(Error::failure(format!(
            "{}: damaged blob: {} bytes with digest {actual}, expected {} bytes with {}",
            path.display(),
            bytes.len(),
            d.size,
            d.digest
        )));
    }
    Ok(bytes)
}

/// The image `name` names in `dir`'s `index.json` (or its only image):
/// its ref name, manifest and config bytes. An index is narrowed to
/// `wanted`.
fn resolve(
    dir: &Path,
    name: Option<&str>,
    wanted: &Platform,
) -> Result<(String, Manifest, Vec<u8>)> {
    let index_path = dir.join("index.json");
    let index: Value = serde_json::from_slice(&read_bounded(&index_path, INDEX_LIMIT)?)
        .map_err(|e| Error::failure(format!("{}: {e}", index_path.display())))?;
    let entries: Vec<&Value> = index["manifests"].as_array().into_iter().flatten().collect();
    let ref_of = |m: &Value| m["annotations"][REF_NAME].as_str().unwrap_or("").to_string();
    let found: Vec<&Value> = match name {
        None => entries.clone(),
        Some(n) => {
            let exact: Vec<&Value> = entries.iter().copied().filter(|m| ref_of(m) == n).collect();
            if exact.is_empty() {
                // `alpine:3.20` finds what pull named `registry-1.docker.io/library/alpine:3.20`.
                let canonical = Reference::parse(n).map(|r| r.canonical()).unwrap_or_default();
                entries.iter().copied().filter(|m| ref_of(m) == canonical).collect()
            } else {
                exact
            }
        }
    };
    let names: Vec<String> = entries.iter().map(|m| ref_of(m)).collect();
    let entry = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::not_found(format!(
                "{}: no image named {}; it has: {}",
                dir.display(),
                msg::clean(name.unwrap_or(""), 200),
                names.join(", ")
            )));
        }
        _ => {
            return Err(Error::usage(format!(
                "{} holds {} images; name one as DIR:REF ({})",
                dir.display(),
                found.len(),
                names.join(", ")
            )));
        }
    };
    let ref_name = match ref_of(entry) {
        n if n.is_empty() => dir.display().to_string(),
        n => n,
    };
    let desc: Descriptor = serde_json::from_value(entry.clone())
        .map_err(|e| Error::failure(format!("{}: bad entry: {e}", index_path.display())))?;

    let bytes = small_blob(dir, &desc)?;
    let (doc, _) = manifest::parse(&bytes, Some(&desc.media_type))?;
    let manifest = match doc {
        Document::Manifest(m) => *m,
        Document::Index(index) => {
            let chosen = index
                .manifests
                .iter()
                .find(|m| m.platform.as_ref().is_some_and(|p| wanted.matches(p)))
                .ok_or_else(|| {
                    let r = Reference::parse(&ref_name);
                    match r {
                        Ok(r) => commands::no_platform(&r, wanted, &index),
                        Err(_) => Error::not_found(format!("{ref_name}: no image for {wanted}")),
                    }
                })?;
            let bytes = small_blob(dir, chosen)?;
            match manifest::parse(&bytes, Some(&chosen.media_type))?.0 {
                Document::Manifest(m) => *m,
                Document::Index(_) => {
                    return Err(Error::failure(format!(
                        "{ref_name}: nested indexes are not supported"
                    )));
                }
            }
        }
    };
    let config = small_blob(dir, &manifest.config)?;
    Ok((ref_name, manifest, config))
}

// ---------------------------------------------------------------------
// ROOTFS itself: refusing, building beside, renaming into place.

/// Refuses an existing non-empty ROOTFS unless `force`.
fn check_target(rootfs: &Path, force: bool) -> Result<()> {
    match fs::symlink_metadata(rootfs) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(rootfs.display(), e)),
        Ok(m) if m.is_dir() => {
            let mut entries = fs::read_dir(rootfs).map_err(|e| Error::io(rootfs.display(), e))?;
            if entries.next().is_none() || force {
                Ok(())
            } else {
                Err(Error::failure(format!("{}: exists and is not empty", rootfs.display()))
                    .with_hint("use --force to replace it"))
            }
        }
        Ok(_) if force => Ok(()),
        Ok(_) => {
            Err(Error::failure(format!("{}: exists and is not a directory", rootfs.display()))
                .with_hint("use --force to replace it"))
        }
    }
}

/// `ROOTFS.ferry-WHAT-<8 random characters>` in ROOTFS's parent.
fn temp_path(rootfs: &Path, what: &str) -> Result<PathBuf> {
    let Some(base) = rootfs.file_name() else {
        return Err(Error::usage(format!("{}: not a directory name", rootfs.display())));
    };
    let mut b = [0u8; 4];
    if getrandom::getrandom(&mut b).is_err() {
        b = std::process::id().to_le_bytes();
    }
    let suffix: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let mut name = base.to_os_string();
    name.push(format!(".ferry-{what}-{suffix}"));
    let parent = rootfs.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    Ok(parent.join(name))
}

/// Renames the finished tree `tmp` to `rootfs`, moving an old one aside
/// first and removing it after.
fn put_in_place(tmp: &Path, rootfs: &Path) -> Result<()> {
    let renamed = |e| Error::io(format!("renaming {} to {}", tmp.display(), rootfs.display()), e);
    let old = match fs::symlink_metadata(rootfs) {
        Err(_) => None,
        // rename(2) replaces an empty directory in one step.
        Ok(m) if m.is_dir() && fs::read_dir(rootfs).is_ok_and(|mut d| d.next().is_none()) => None,
        Ok(_) => {
            let aside = temp_path(rootfs, "old")?;
            fs::rename(rootfs, &aside)
                .map_err(|e| Error::io(format!("moving {} aside", rootfs.display()), e))?;
            Some(aside)
        }
    };
    if let Err(e) = fs::rename(tmp, rootfs) {
        if let Some(aside) = &old {
            let _ = fs::rename(aside, rootfs);
        }
        return Err(renamed(e));
    }
    if let Some(aside) = old {
        remove_tree(&aside);
    }
    Ok(())
}

/// Removes a tree ferry made, or a replaced ROOTFS, as far as it can.
fn remove_tree(path: &Path) {
    let gone = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
    if let Err(e) = gone {
        crate::warn!("could not remove {}: {e}", path.display());
    }
}

/// `ch/config.pulled.json` and `ch/environment`, as Charliecloud keeps
/// them, so `ch-run --set-env` works on the tree.
fn write_ch(root: &Path, config_bytes: &[u8], config: &Config) -> Result<()> {
    let ch = root.join("ch");
    match fs::symlink_metadata(&ch) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => remove_tree(&ch),
        Err(_) => {}
    }
    if !ch.is_dir() {
        fs::create_dir(&ch).map_err(|e| Error::io(ch.display(), e))?;
    }
    let mut env = String::new();
    for var in config.config.as_ref().and_then(|c| c.env.as_ref()).into_iter().flatten() {
        if var.contains('=') && !var.contains('\n') {
            env.push_str(var);
            env.push('\n');
        }
    }
    for (name, bytes) in [("config.pulled.json", config_bytes), ("environment", env.as_bytes())] {
        let path = ch.join(name);
        if fs::symlink_metadata(&path).is_ok() {
            remove_tree(&path);
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| Error::io(path.display(), e))?;
        f.write_all(bytes).map_err(|e| Error::io(path.display(), e))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------
// Reading a layer.

/// Hashes and counts every byte read through it.
struct HashReader<R> {
    inner: R,
    hasher: Hasher,
    read: u64,
}

impl<R: Read> HashReader<R> {
    fn new(inner: R, d: &Digest) -> HashReader<R> {
        HashReader { inner, hasher: Hasher::new(d.algorithm()), read: 0 }
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// How a layer blob is compressed.
#[derive(Debug, PartialEq, Eq)]
enum Compression {
    Plain,
    Gzip,
}

/// Decides from the media type and the first bytes; zstd is refused.
fn compression(media_type: &str, head: &[u8]) -> Result<Compression> {
    if media_type.contains("zstd") || head.starts_with(&ZSTD_MAGIC) {
        return Err(Error::failure("zstd-compressed layers are not supported").with_hint(
            "convert the image to gzip layers, e.g. `skopeo copy --dest-compress-format gzip`",
        ));
    }
    if head.starts_with(&GZIP_MAGIC) {
        return Ok(Compression::Gzip);
    }
    if media_type.ends_with("gzip") && !head.is_empty() {
        return Err(Error::failure(format!("media type is {media_type} but the data is not gzip")));
    }
    Ok(Compression::Plain)
}

// ---------------------------------------------------------------------
// Names in a layer.

/// A tar name made relative to the root: leading `/` and `.` components
/// dropped; `..` anywhere refused. The empty path is the root itself.
fn clean_name(raw: &[u8]) -> std::result::Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("name contains \"..\""),
            p => out.push(OsStr::from_bytes(p)),
        }
    }
    Ok(out)
}

/// A name as the user should read it in a message.
fn shown(raw: &[u8]) -> String {
    msg::clean(&String::from_utf8_lossy(raw), 200)
}

/// An entry ferry will not write.
fn refused(raw: &[u8], why: impl std::fmt::Display) -> Error {
    Error::failure(format!("refusing entry \"{}\": {why}", shown(raw)))
}

// ---------------------------------------------------------------------
// The tree being built.

/// Mode, times and owner of a directory, applied after all layers so
/// later entries inside it neither change its time nor meet a read-only
/// directory.
#[derive(Clone, Copy, Debug)]
struct DirMeta {
    mode: u32,
    mtime: u64,
    uid: u64,
    gid: u64,
}

struct Tree {
    root: PathBuf,
    opts: Options,
    dirs: BTreeMap<PathBuf, DirMeta>,
    /// Paths this layer brought or passed through: an opaque whiteout
    /// keeps them and removes everything else below its directory.
    layer: HashSet<PathBuf>,
    opaque: Vec<PathBuf>,
}

impl Tree {
    fn new(root: &Path, opts: Options) -> Result<Tree> {
        if opts.preserve_owners {
            // The owner of a directory just made is this process's euid.
            let uid = fs::metadata(root).map_err(|e| Error::io(root.display(), e))?.uid();
            if uid != 0 {
                return Err(Error::usage("--preserve-owners needs root"));
            }
        }
        Ok(Tree {
            root: root.to_path_buf(),
            opts,
            dirs: BTreeMap::new(),
            layer: HashSet::new(),
            opaque: Vec::new(),
        })
    }

    /// Applies the layer blob at `path`, checking its size and digest and
    /// the digest of its uncompressed stream against `diff_id`.
    fn apply_layer(&mut self, path: &Path, d: &Descriptor, diff_id: &Digest) -> Result<()> {
        let file = File::open(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::failure(format!("blob {} is missing from the layout", d.digest))
            } else {
                Error::io(path.display(), e)
            }
        })?;
        let what = format!("blob {}", d.digest);
        let blob = HashReader::new(LimitReader::new(file, d.size, &what), &d.digest);
        let mut blob = BufReader::with_capacity(BUFFER, blob);
        let head = blob.fill_buf().map_err(|e| Error::io(path.display(), e))?;
        let kind = compression(&d.media_type, head)?;
        let stream: Box<dyn Read + '_> = match kind {
            Compression::Gzip => Box::new(MultiGzDecoder::new(&mut blob)),
            Compression::Plain => Box::new(&mut blob),
        };
        let tar = BufReader::with_capacity(BUFFER, HashReader::new(stream, diff_id));

        self.layer.clear();
        self.opaque.clear();
        let mut archive = tar::Archive::new(tar);
        let entries = archive.entries().map_err(|e| read_error(&what, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| read_error(&what, e))?;
            self.entry(entry)?;
        }
        for dir in std::mem::take(&mut self.opaque) {
            self.prune(&dir)?;
        }

        // The diff_id covers the whole stream, the tar's end blocks and any
        // padding after them included.
        let mut tar = archive.into_inner();
        io::copy(&mut tar, &mut io::sink()).map_err(|e| read_error(&what, e))?;
        let uncompressed = tar.into_inner().hasher.finish();
        if &uncompressed != diff_id {
            return Err(Error::failure(format!(
                "uncompressed content has digest {uncompressed}, but the config's diff_id is {diff_id}"
            )));
        }
        io::copy(&mut blob, &mut io::sink()).map_err(|e| read_error(&what, e))?;
        let blob = blob.into_inner();
        let (read, actual) = (blob.read, blob.hasher.finish());
        if read != d.size || actual != d.digest {
            return Err(Error::failure(format!(
                "{what}: {read} bytes with digest {actual}, expected {} bytes",
                d.size
            )));
        }
        Ok(())
    }

    /// Applies one tar entry.
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let rel = clean_name(&raw).map_err(|why| refused(&raw, why))?;
        let header = entry.header();
        let kind = header.entry_type();
        let meta = DirMeta {
            mode: header.mode().map_err(|e| refused(&raw, e))?,
            mtime: header.mtime().unwrap_or(0),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
        };

        // Whiteouts remove what lower layers brought and are not written.
        if let Some(base) = rel.file_name().map(OsStr::as_bytes)
            && let Some(target) = base.strip_prefix(WHITEOUT.as_bytes())
        {
            // `.wh...` would name the parent of its directory as the victim
            // (the root's parent at the top), `.wh..` the directory itself.
            if target == b"." || target == b".." {
                return Err(refused(&raw, "whiteout of \".\" or \"..\""));
            }
            let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
            if !self.parents(&rel, &raw, false)? {
                // Nothing below a missing directory to remove.
            } else if base == OPAQUE.as_bytes() {
                self.opaque.push(parent);
            } else if target.starts_with(WHITEOUT.as_bytes()) || target.is_empty() {
                verbose!("skipping whiteout metadata \"{}\"", shown(&raw));
            } else {
                let victim = parent.join(OsStr::from_bytes(target));
                if !self.layer.contains(&victim) {
                    self.remove(&victim)?;
                }
            }
            return Ok(());
        }

        if rel.as_os_str().is_empty() {
            if kind.is_dir() {
                self.dirs.insert(rel, meta);
                return Ok(());
            }
            return Err(refused(&raw, "only a directory may stand for the root itself"));
        }
        self.parents(&rel, &raw, true)?;
        let path = self.root.join(&rel);
        let existing = fs::symlink_metadata(&path).ok();
        self.layer.insert(rel.clone());

        match kind {
            tar::EntryType::Directory => {
                if !existing.as_ref().is_some_and(|m| m.is_dir()) {
                    if existing.is_some() {
                        self.remove(&rel)?;
                    }
                    self.mkdir(&path)?;
                }
                self.dirs.insert(rel, meta);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if existing.is_some() {
                    self.remove(&rel)?;
                }
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| Error::io(path.display(), e))?;
                io::copy(&mut entry, &mut f).map_err(|e| Error::io(path.display(), e))?;
                if self.opts.preserve_owners {
                    std::os::unix::fs::fchown(&f, Some(id(meta.uid)), Some(id(meta.gid)))
                        .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
                }
                f.set_permissions(Permissions::from_mode(self.file_mode(meta.mode)))
                    .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
                f.set_times(times(meta.mtime))
                    .map_err(|e| Error::io(format!("setting times of {}", path.display()), e))?;
            }
            tar::EntryType::Symlink => {
                let Some(target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                    return Err(refused(&raw, "symlink without a target"));
                };
                if existing.is_some() {
                    self.remove(&rel)?;
                }
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(|e| Error::io(path.display(), e))?;
                if self.opts.preserve_owners {
                    std::os::unix::fs::lchown(&path, Some(id(meta.uid)), Some(id(meta.gid)))
                        .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
                }
            }
            tar::EntryType::Link => {
                let Some(target) = entry.link_name_bytes().map(|t| t.into_owned()) else {
                    return Err(refused(&raw, "hard link without a target"));
                };
                let target_rel = clean_name(&target).map_err(|why| refused(&raw, why))?;
                if target_rel == rel {
                    return Ok(());
                }
                self.check_link_target(&target_rel, &raw)?;
                if existing.is_some() {
                    self.remove(&rel)?;
                }
                // link(2) does not follow a symlink at the target, and the
                // target's directories were just checked.
                fs::hard_link(self.root.join(&target_rel), &path)
                    .map_err(|e| Error::io(format!("linking {}", path.display()), e))?;
            }
            tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo
            | tar::EntryType::GNUSparse => {
                verbose!("skipping {:?} entry \"{}\"", kind, shown(&raw));
                self.layer.remove(&rel);
            }
            other => {
                verbose!("skipping entry \"{}\" of tar type {:?}", shown(&raw), other);
                self.layer.remove(&rel);
            }
        }
        Ok(())
    }

    /// Makes sure every directory above `rel` is a real directory in the
    /// tree, creating missing ones when `create`; a symlink or a file on
    /// the way is refused, never followed. Returns whether they all exist.
    fn parents(&mut self, rel: &Path, raw: &[u8], create: bool) -> Result<bool> {
        let Some(parent) = rel.parent() else { return Ok(true) };
        let mut here = self.root.clone();
        let mut sofar = PathBuf::new();
        for part in parent.components() {
            let Component::Normal(part) = part else {
                return Err(refused(raw, "unexpected path component"));
            };
            here.push(part);
            sofar.push(part);
            match fs::symlink_metadata(&here) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(refused(
                        raw,
                        format!("\"{}\" is a symlink; ferry does not follow it", sofar.display()),
                    ));
                }
                Ok(_) => {
                    return Err(refused(
                        raw,
                        format!("\"{}\" is not a directory", sofar.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => self.mkdir(&here)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(Error::io(here.display(), e)),
            }
            if create {
                self.layer.insert(sofar.clone());
            }
        }
        Ok(true)
    }

    /// A hard link's target must be a regular file already in the tree,
    /// reached through real directories only.
    fn check_link_target(&self, target: &Path, raw: &[u8]) -> Result<()> {
        if target.as_os_str().is_empty() {
            return Err(refused(raw, "hard link to the root"));
        }
        let mut here = self.root.clone();
        let count = target.components().count();
        for (i, part) in target.components().enumerate() {
            here.push(part);
            let m = fs::symlink_metadata(&here).map_err(|_| {
                refused(raw, "hard link target is not a file in the root filesystem")
            })?;
            let last = i + 1 == count;
            if !last && !m.is_dir() {
                return Err(refused(raw, "hard link target is reached through a non-directory"));
            }
            if last && !m.is_file() {
                return Err(refused(raw, "hard link to something other than a regular file"));
            }
        }
        Ok(())
    }

    /// `mkdir` with room for the owner to fill it; the entry's own mode
    /// comes at the end.
    fn mkdir(&self, path: &Path) -> Result<()> {
        fs::create_dir(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))
    }

    /// Removes `rel` (whatever it is, a directory with all below it)
    /// without following a symlink; a missing path is fine.
    fn remove(&mut self, rel: &Path) -> Result<()> {
        let path = self.root.join(rel);
        let gone = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
            Ok(_) => fs::remove_file(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        gone.map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        // Metadata of directories that no longer exist is forgotten.
        let stale: Vec<PathBuf> = self
            .dirs
            .range(rel.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(rel))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            self.dirs.remove(&p);
        }
        Ok(())
    }

    /// Opaque directory `dir`: removes everything below it this layer did
    /// not bring.
    fn prune(&mut self, dir: &Path) -> Result<()> {
        let path = self.root.join(dir);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            _ => return Ok(()),
        }
        let mut children = Vec::new();
        for child in fs::read_dir(&path).map_err(|e| Error::io(path.display(), e))? {
            let child = child.map_err(|e| Error::io(path.display(), e))?;
            children.push(dir.join(child.file_name()));
        }
        for child in children {
            if !self.layer.contains(&child) {
                self.remove(&child)?;
            } else if fs::symlink_metadata(self.root.join(&child)).is_ok_and(|m| m.is_dir()) {
                self.prune(&child)?;
            }
        }
        Ok(())
    }

    fn file_mode(&self, mode: u32) -> u32 {
        if self.opts.preserve_owners { mode & 0o7777 } else { (mode & 0o1777) | 0o600 }
    }

    fn dir_mode(&self, mode: u32) -> u32 {
        if self.opts.preserve_owners { mode & 0o7777 } else { (mode & 0o1777) | 0o700 }
    }

    /// Gives every directory its mode, owner and time, deepest first so a
    /// parent's time is set after its children are done.
    fn finish(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for (rel, meta) in dirs.iter().rev() {
            let path = self.root.join(rel);
            // Every directory on the way must still be real: a later layer
            // may have put a symlink where one was.
            let mut here = self.root.clone();
            let real = rel.components().all(|c| {
                here.push(c);
                fs::symlink_metadata(&here).is_ok_and(|m| m.is_dir())
            });
            if !real {
                continue;
            }
            if self.opts.preserve_owners {
                std::os::unix::fs::lchown(&path, Some(id(meta.uid)), Some(id(meta.gid)))
                    .map_err(|e| Error::io(format!("chown {}", path.display()), e))?;
            }
            fs::set_permissions(&path, Permissions::from_mode(self.dir_mode(meta.mode)))
                .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
            let dir = File::open(&path).map_err(|e| Error::io(path.display(), e))?;
            dir.set_times(times(meta.mtime))
                .map_err(|e| Error::io(format!("setting times of {}", path.display()), e))?;
        }
        Ok(())
    }
}

/// The layer walker as `unpack_from` runs it, for the `layer` fuzz target
/// (fuzz/fuzz_targets/layer.rs): each `(blob, descriptor, diff_id)`
/// applied in turn to a tree at `root` with default options, then the
/// directories' modes and times set as after an image's last layer.
#[cfg(fuzzing)]
pub fn fuzz_apply_layers(root: &Path, layers: &[(PathBuf, Descriptor, Digest)]) -> Result<()> {
    let mut tree = Tree::new(root, Options::default())?;
    for (blob, d, diff_id) in layers {
        tree.apply_layer(blob, d, diff_id)?;
    }
    tree.finish()
}

/// A tar uid or gid as the system's; out-of-range ids become nobody.
fn id(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(65534)
}

fn times(mtime: u64) -> FileTimes {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
    FileTimes::new().set_modified(t).set_accessed(t)
}

/// A read failure inside a layer: our own error carried through
/// `io::Read` (a size bound), or a broken stream.
fn read_error(what: &str, e: io::Error) -> Error {
    let e = error::from_io(what, e);
    Error { msg: msg::clean(&e.msg, 300), ..e }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> std::result::Result<String, &'static str> {
        clean_name(s.as_bytes()).map(|p| p.display().to_string())
    }

    #[test]
    fn names_are_made_relative_and_dotdot_refused() {
        assert_eq!(clean("etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(clean("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(clean("./etc//x/").unwrap(), "etc/x");
        assert_eq!(clean("///").unwrap(), "");
        assert_eq!(clean(".").unwrap(), "");
        assert!(clean("../x").is_err());
        assert!(clean("a/../../x").is_err());
        assert!(clean("a/..").is_err());
        assert!(clean("/..").is_err());
        assert_eq!(clean("a/..b/c").unwrap(), "a/..b/c");
        assert_eq!(clean("...").unwrap(), "...");
    }

    #[test]
    fn compression_is_sniffed() {
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(compression(gz, &[0x1f, 0x8b, 8]).unwrap(), Compression::Gzip);
        assert_eq!(
            compression("application/vnd.oci.image.layer.v1.tar", b"etc/").unwrap(),
            Compression::Plain
        );
        assert_eq!(compression("", &[0x1f, 0x8b]).unwrap(), Compression::Gzip);
        assert!(compression(gz, b"plain").is_err());
        assert!(compression("application/vnd.oci.image.layer.v1.tar+zstd", &[]).is_err());
        let e = compression("application/vnd.oci.image.layer.v1.tar", &ZSTD_MAGIC).unwrap_err();
        assert!(e.msg.contains("not supported"), "{}", e.msg);
    }

    fn layer(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_mtime(1_600_000_000);
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                h.set_size(0);
                // The builder's own checks would refuse hostile names.
                let name_field = &mut h.as_old_mut().name;
                name_field[..name.len()].copy_from_slice(name.as_bytes());
                let link = &mut h.as_old_mut().linkname;
                link[..data.len()].copy_from_slice(data.as_bytes());
                h.set_cksum();
                b.append(&h, io::empty()).unwrap();
            } else {
                h.set_size(data.len() as u64);
                let name_field = &mut h.as_old_mut().name;
                name_field[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                b.append(&h, data.as_bytes()).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    /// Applies `layers` (plain tars) into a fresh tree under a temporary
    /// directory that also holds a canary next to the tree.
    fn apply(layers: &[Vec<u8>]) -> (tempfile::TempDir, Result<()>) {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("canary"), b"canary").unwrap();
        let root = tmp.path().join("root");
        fs::create_dir(&root).unwrap();
        let mut tree = Tree::new(&root, Options::default()).unwrap();
        let mut result = Ok(());
        for (i, l) in layers.iter().enumerate() {
            let path = tmp.path().join(format!("layer{i}"));
            fs::write(&path, l).unwrap();
            let d = Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: Digest::sha256_of(l),
                size: l.len() as u64,
                platform: None,
                annotations: None,
                urls: None,
            };
            result = tree.apply_layer(&path, &d, &Digest::sha256_of(l));
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = tree.finish();
        }
        (tmp, result)
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    #[test]
    fn writes_through_symlinks_are_refused() {
        for (a, b) in [
            (vec![("l", S, "..")], vec![("l/canary", F, "pwned")]),
            (vec![("l", S, "/")], vec![("l/x", F, "pwned")]),
            (vec![("l", S, "..")], vec![("l/.wh.canary", F, "")]),
            (vec![("d", D, ""), ("d/l", S, "../..")], vec![("d/l/canary", F, "x")]),
        ] {
            let (tmp, r) = apply(&[layer(&a), layer(&b)]);
            let e = r.unwrap_err();
            assert!(e.msg.contains("symlink"), "{}", e.msg);
            assert_eq!(fs::read(tmp.path().join("canary")).unwrap(), b"canary");
        }
    }

    #[test]
    fn hostile_names_and_links_are_refused() {
        for entries in [
            vec![("../canary", F, "pwned")],
            vec![("x", H, "../canary")],
            vec![("x", H, "/nonexistent")],
            vec![("l", S, "."), ("x", H, "l")],
            vec![(".", S, "..")],
        ] {
            let (tmp, r) = apply(&[layer(&entries)]);
            assert!(r.is_err(), "{entries:?} accepted");
            assert_eq!(fs::read(tmp.path().join("canary")).unwrap(), b"canary");
        }
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let (tmp, r) = apply(&[
            layer(&[("a", F, "file"), ("b", D, ""), ("b/x", F, "x"), ("c", S, "..")]),
            layer(&[("a", D, ""), ("b", S, "a"), ("c", D, ""), ("c/y", F, "y")]),
        ]);
        r.unwrap();
        let root = tmp.path().join("root");
        assert!(fs::symlink_metadata(root.join("a")).unwrap().is_dir());
        assert_eq!(fs::read_link(root.join("b")).unwrap(), Path::new("a"));
        assert_eq!(fs::read(root.join("c/y")).unwrap(), b"y");
        assert!(!tmp.path().join("y").exists());
    }

    #[test]
    fn whiteouts_and_opaque_directories() {
        let (tmp, r) = apply(&[
            layer(&[("a", D, ""), ("a/1", F, "1"), ("a/2", F, "2"), ("b", D, ""), ("b/k", F, "")]),
            layer(&[("a/.wh.1", F, ""), ("b/new", F, "n"), ("b/.wh..wh..opq", F, "")]),
        ]);
        r.unwrap();
        let root = tmp.path().join("root");
        assert!(!root.join("a/1").exists());
        assert!(root.join("a/2").exists());
        assert!(!root.join("a/.wh.1").exists());
        assert!(!root.join("b/k").exists());
        assert!(root.join("b/new").exists());
        assert!(!root.join("b/.wh..wh..opq").exists());
    }

    /// Found by the `layer` fuzz target: `.wh...` named the root's parent
    /// as its victim and emptied the directory holding the tree.
    #[test]
    fn whiteouts_of_dot_and_dotdot_are_refused() {
        for name in [".wh...", ".wh..", "a/.wh...", "a/.wh.."] {
            let (tmp, r) = apply(&[
                layer(&[("a", D, ""), ("a/f", F, "f"), ("b", F, "b")]),
                layer(&[(name, F, "")]),
            ]);
            let e = r.unwrap_err();
            assert!(e.msg.contains("whiteout"), "{name}: {}", e.msg);
            assert_eq!(fs::read(tmp.path().join("canary")).unwrap(), b"canary");
            assert!(tmp.path().join("layer0").exists(), "{name}");
            assert_eq!(fs::read(tmp.path().join("root/a/f")).unwrap(), b"f", "{name}");
            assert_eq!(fs::read(tmp.path().join("root/b")).unwrap(), b"b", "{name}");
        }
    }

    #[test]
    fn modes_let_the_owner_delete_the_tree() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, mode) in [("d", D, 0o555), ("d/f", F, 0o4755), ("g", F, 0o000)] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(0);
            b.append_data(&mut h, name, io::empty()).unwrap();
        }
        let (tmp, r) = apply(&[b.into_inner().unwrap()]);
        r.unwrap();
        let root = tmp.path().join("root");
        let mode = |p: &str| fs::symlink_metadata(root.join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("d"), 0o755);
        assert_eq!(mode("d/f"), 0o755);
        assert_eq!(mode("g"), 0o600);
    }
}
