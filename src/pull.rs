//! `ferry pull`: images from a registry into an OCI image layout.
//!
//! For each reference: fetch and check the manifest (`Remote::manifest`),
//! choose a platform on an index (or keep the whole index with `--arch
//! all`), then fetch config and layers, then write manifests, and name the
//! image in `index.json` last, so the layout never points at a missing
//! blob. Layers stream through a `DigestWriter` into
//! `.ferry/partial/<alg>-<hex>`, read through a `LimitReader` at the
//! descriptor's size; a cut connection resumes with `Range`, a killed run
//! resumes from the partial file, re-hashing what is there. Only a blob
//! whose size and digest both match is synced and renamed into place.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::commands::{self, Ctx};
use crate::convert;
use crate::digest::{Digest, DigestWriter, LimitReader};
use crate::error::{Error, Result};
use crate::http;
use crate::layout::Layout;
use crate::manifest::{self, Config, Descriptor, Document, Manifest, Platform};
use crate::reference::Reference;
use crate::remote::{Fetched, Remote, status_error};
use crate::{info, msg, verbose, warn};

/// Bytes read from the network per call: large enough that the syscalls
/// cost nothing next to the transfer, small enough to stay out of RSS.
const CHUNK: usize = 128 * 1024;
/// Media types of image configs, whose `rootfs.diff_ids` must match the
/// layers; other configs (artifacts) are stored as they are.
const IMAGE_CONFIGS: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

/// What to take from an index.
enum Choice {
    /// `--arch all`: the index itself and every platform in it.
    All,
    /// One platform; `explicit` when the user named it.
    One { wanted: Platform, explicit: bool },
}

/// Totals for the summary.
#[derive(Default)]
struct Stats {
    fetched: u64,
    reused: u64,
    bytes: u64,
}

/// Pulls every image of `images` into the layout at `dir`; with
/// `oci_types`, Docker-type manifests and lists are stored converted to
/// OCI media types (`convert`).
pub fn pull(
    ctx: &mut Ctx,
    images: &[String],
    dir: &str,
    arch: Option<&str>,
    verify: bool,
    oci_types: bool,
) -> Result<()> {
    let refs = images.iter().map(|i| Reference::parse(i)).collect::<Result<Vec<_>>>()?;
    let choice = match arch {
        Some("all") => Choice::All,
        Some(p) => Choice::One { wanted: Platform::parse(p)?, explicit: true },
        None => Choice::One { wanted: Platform::host(), explicit: false },
    };
    // DIR is made only once the first manifest is fetched, so a mistyped
    // name leaves nothing behind; a DIR that cannot be one fails first.
    Layout::check(Path::new(dir))?;
    let mut layout: Option<Layout> = None;
    let mut stats = Stats::default();
    let mut pulled = Vec::new();
    // One connection per registry for the run: tokens and the rate-limit
    // line are per `Http`.
    let mut remotes: Vec<(String, Remote)> = Vec::new();
    for r in &refs {
        let host = r.registry.to_string();
        let at = match remotes.iter().position(|(h, _)| *h == host) {
            Some(at) => at,
            None => {
                remotes.push((host, ctx.remote(&r.registry)?));
                remotes.len() - 1
            }
        };
        let remote = &mut remotes[at].1;
        let top = remote
            .manifest(&r.path, &r.version(), r.digest.as_ref())
            .map_err(|e| e.context(format!("pull {r}")))?;
        let layout = match layout {
            Some(ref l) => l,
            None => layout.insert(Layout::open(Path::new(dir))?),
        };
        let mut p = Puller {
            remote,
            layout,
            path: r.path.clone(),
            verify,
            oci_types,
            retries: ctx.global.retries,
            stats: &mut stats,
        };
        let Pulled { target, source, platforms } =
            p.image(r, top, &choice).map_err(|e| e.context(format!("pull {r}")))?;
        layout.set_ref(&r.canonical(), &target)?;
        let platforms_text = platforms.join(", ");
        if source == target.digest {
            info!("pulled {r} ({platforms_text}) {}", target.digest);
        } else {
            info!(
                "pulled {r} ({platforms_text}) {}, converted to OCI media types from {source}",
                target.digest
            );
        }
        // `digest` is what the layout holds; `source_digest` what the
        // registry serves, different only when --oci-types converted it.
        pulled.push(json!({
            "reference": r.canonical(),
            "digest": target.digest.to_string(),
            "source_digest": source.to_string(),
            "media_type": target.media_type,
            "platforms": platforms,
        }));
    }
    info!(
        "{} blobs fetched ({}), {} already present, in {dir}",
        stats.fetched,
        human(stats.bytes),
        stats.reused
    );
    ctx.print(
        json!({
            "layout": dir,
            "images": pulled,
            "blobs_fetched": stats.fetched,
            "blobs_reused": stats.reused,
            "bytes_transferred": stats.bytes,
        }),
        |_| Ok(()),
    )
}

/// One image's pull from one repository into the layout.
struct Puller<'a> {
    remote: &'a mut Remote,
    layout: &'a Layout,
    path: String,
    verify: bool,
    /// Store Docker-type manifests and lists with OCI media types.
    oci_types: bool,
    retries: u32,
    stats: &'a mut Stats,
}

/// What one reference became in the layout.
struct Pulled {
    /// The descriptor `index.json` names the image by.
    target: Descriptor,
    /// The registry's digest of the document `target` was made from: the
    /// same as `target.digest` unless `--oci-types` converted it.
    source: Digest,
    platforms: Vec<String>,
}

impl Puller<'_> {
    /// Fetches what `r` names and everything below it.
    fn image(&mut self, r: &Reference, top: Fetched, choice: &Choice) -> Result<Pulled> {
        let platform_name =
            |d: &Descriptor| d.platform.as_ref().map_or("unknown".into(), |p| p.to_string());
        let pulled = match (&top.document, choice) {
            (Document::Index(index), Choice::All) => {
                let mut platforms = Vec::new();
                let mut converted = Vec::new();
                for m in &index.manifests {
                    let kept = self.platform_manifest(m)?;
                    if kept.digest != m.digest {
                        converted.push((m.digest.clone(), kept));
                    }
                    platforms.push(platform_name(m));
                }
                // The index goes in last, so everything it names is present.
                let (bytes, target) = self.stored_form(&top, &converted)?;
                self.layout.put_blob(&bytes, &target.digest)?;
                Pulled { target, source: top.digest.clone(), platforms }
            }
            (Document::Index(index), Choice::One { wanted, .. }) => {
                let chosen = index
                    .manifests
                    .iter()
                    .find(|m| m.platform.as_ref().is_some_and(|p| wanted.matches(p)))
                    .ok_or_else(|| commands::no_platform(r, wanted, index))?;
                let kept = self.platform_manifest(chosen)?;
                // The index one platform was taken from is not kept.
                let target = Descriptor {
                    media_type: kept.media_type,
                    digest: kept.digest,
                    size: kept.size,
                    annotations: None,
                    ..chosen.clone()
                };
                Pulled {
                    target,
                    source: chosen.digest.clone(),
                    platforms: vec![platform_name(chosen)],
                }
            }
            (Document::Manifest(m), choice) => {
                // Converted before the blobs are fetched, so a type without
                // an OCI equivalent fails early.
                let (bytes, target) = self.stored_form(&top, &[])?;
                let found = self.manifest(m)?;
                if let Choice::One { wanted, explicit } = choice
                    && !wanted.matches(&found)
                {
                    warn!(
                        "{r} is a single-platform image for {found}, not {wanted}{}",
                        if *explicit { "" } else { " (this host)" }
                    );
                }
                self.layout.put_blob(&bytes, &target.digest)?;
                Pulled { target, source: top.digest.clone(), platforms: vec![found.to_string()] }
            }
        };
        Ok(pulled)
    }

    /// Fetches the image manifest an index entry names, and all it needs;
    /// returns the descriptor of the manifest as stored.
    fn platform_manifest(&mut self, entry: &Descriptor) -> Result<Descriptor> {
        let sub =
            self.remote.manifest(&self.path, &entry.digest.to_string(), Some(&entry.digest))?;
        let Document::Manifest(m) = &sub.document else {
            return Err(Error::failure(format!(
                "index entry {} is itself an index; nested indexes are not supported",
                entry.digest
            )));
        };
        let (bytes, kept) = self.stored_form(&sub, &[])?;
        self.manifest(m)?;
        self.layout.put_blob(&bytes, &kept.digest)?;
        Ok(kept)
    }

    /// The bytes and descriptor the layout keeps for `fetched`: as served,
    /// or with `--oci-types` converted when it has a Docker type or names
    /// manifests that were converted (`converted`: registry digest and
    /// converted descriptor of each).
    fn stored_form<'f>(
        &self,
        fetched: &'f Fetched,
        converted: &[(Digest, Descriptor)],
    ) -> Result<(Cow<'f, [u8]>, Descriptor)> {
        let docker = [manifest::DOCKER_MANIFEST, manifest::DOCKER_LIST]
            .contains(&fetched.media_type.as_str());
        let (bytes, media_type, digest) = match &fetched.document {
            _ if !self.oci_types || (!docker && converted.is_empty()) => {
                let bytes = Cow::Borrowed(fetched.bytes.as_slice());
                (bytes, fetched.media_type.clone(), fetched.digest.clone())
            }
            Document::Manifest(_) => {
                let bytes = convert::manifest(&fetched.bytes)?;
                let digest = Digest::sha256_of(&bytes);
                (Cow::Owned(bytes), manifest::OCI_MANIFEST.to_string(), digest)
            }
            Document::Index(_) => {
                let bytes = convert::index(&fetched.bytes, converted)?;
                let digest = Digest::sha256_of(&bytes);
                (Cow::Owned(bytes), manifest::OCI_INDEX.to_string(), digest)
            }
        };
        let target = Descriptor {
            media_type,
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        };
        Ok((bytes, target))
    }

    /// Fetches config and layers of `m`; returns the config's platform.
    fn manifest(&mut self, m: &Manifest) -> Result<Platform> {
        let config = if self.layout.has_blob(&m.config, self.verify)? {
            self.stats.reused += 1;
            read_small(&self.layout.blob_path(&m.config.digest))?
        } else {
            let bytes = self.remote.small_blob(&self.path, &m.config)?;
            self.layout.put_blob(&bytes, &m.config.digest)?;
            self.stats.fetched += 1;
            self.stats.bytes += bytes.len() as u64;
            bytes
        };
        let is_image = IMAGE_CONFIGS.contains(&m.config.media_type.as_str());
        // Other configs (artifacts) need not be JSON and name no platform.
        let platform = match Config::parse(&config) {
            Ok(c) => c.platform(),
            Err(e) if is_image => return Err(e.context(format!("config {}", m.config.digest))),
            Err(_) => Platform::parse("unknown/unknown")?,
        };
        if is_image {
            #[derive(serde::Deserialize)]
            struct RootFs {
                #[serde(default)]
                diff_ids: Vec<serde_json::Value>,
            }
            #[derive(serde::Deserialize)]
            struct Layers {
                rootfs: Option<RootFs>,
            }
            let parsed: Layers = serde_json::from_slice(&config)
                .map_err(|e| Error::failure(format!("malformed image config: {e}")))?;
            let n = parsed.rootfs.map_or(0, |r| r.diff_ids.len());
            if n != m.layers.len() {
                return Err(Error::failure(format!(
                    "config {} lists {n} layer diff_ids but the manifest has {} layers",
                    m.config.digest,
                    m.layers.len()
                )));
            }
        }
        for layer in &m.layers {
            self.blob(layer)?;
        }
        Ok(platform)
    }

    /// Puts blob `d` into the layout unless it is there.
    fn blob(&mut self, d: &Descriptor) -> Result<()> {
        if self.layout.has_blob(d, self.verify)? {
            verbose!("blob {}: already present", d.digest);
            self.stats.reused += 1;
            return Ok(());
        }
        let what = format!("blob {}", d.digest);
        let partial = self.layout.partial_path(&d.digest);
        let from_disk = fs::metadata(&partial).is_ok_and(|m| m.len() > 0);
        let mut mismatch = self.transfer(d, &what)?;
        if mismatch.is_some() && from_disk {
            // The bytes kept from an earlier run may be what was wrong.
            warn!("{what}: did not match after resuming an earlier run; fetching it whole");
            mismatch = self.transfer(d, &what)?;
        }
        if let Some(actual) = mismatch {
            return Err(Error::failure(format!(
                "{what}: content has digest {actual}, expected {}",
                d.digest
            )));
        }
        self.stats.fetched += 1;
        Ok(())
    }

    /// Streams blob `d` into its partial file, resuming after a cut, and
    /// renames it into place when size and digest match. A digest that
    /// does not match removes the partial file and is returned.
    fn transfer(&mut self, d: &Descriptor, what: &str) -> Result<Option<Digest>> {
        let partial = self.layout.partial_path(&d.digest);
        let disk = |e: io::Error| Error::io(partial.display(), e);
        let file =
            OpenOptions::new().create(true).append(true).read(true).open(&partial).map_err(disk)?;
        let mut have = file.metadata().map_err(disk)?.len();
        if have > d.size {
            file.set_len(0).map_err(disk)?;
            have = 0;
        }

        // Bytes kept from an earlier run are hashed again, not fetched again.
        let alg = d.digest.algorithm();
        let mut sink = DigestWriter::new(Resume::new(file, have), alg);
        if have > 0 {
            verbose!("{what}: resuming at {have} of {} bytes", d.size);
            let mut old = File::open(&partial).map_err(disk)?.take(have);
            io::copy(&mut old, &mut sink).map_err(disk)?;
            if sink.written() != have {
                return Err(Error::failure(format!("{}: changed while read", partial.display())));
            }
        }

        let mut progress = Progress::new(&d.digest.to_string(), d.size, have);
        let mut failures = 0;
        let mut short_ends = 0;
        while sink.written() < d.size {
            let from = sink.written();
            let response = self.remote.blob(&self.path, &d.digest, from)?;
            match response.status {
                200 if from > 0 => {
                    verbose!("{what}: registry ignored Range; starting over");
                    sink = restart(sink, alg).map_err(disk)?;
                }
                200 => {}
                206 if content_range_ok(response.header("content-range"), from, d.size) => {}
                206 if from > 0 => {
                    let got = msg::clean(response.header("content-range").unwrap_or("none"), 100);
                    warn!(
                        "{what}: asked for bytes {from}- and got Content-Range {got}; starting over"
                    );
                    sink = restart(sink, alg).map_err(disk)?;
                    continue;
                }
                206 => {
                    let got = msg::clean(response.header("content-range").unwrap_or("none"), 100);
                    return Err(Error::failure(format!(
                        "{what}: asked for bytes {from}- and got Content-Range {got}"
                    )));
                }
                416 if from > 0 => {
                    drop(sink);
                    let _ = fs::remove_file(&partial);
                    return Err(Error::failure(format!(
                        "{what}: registry has only {from} bytes; the descriptor says {}",
                        d.size
                    )));
                }
                _ => return Err(status_error(response, what)),
            }

            let start = sink.written();
            let mut body = LimitReader::new(response.into_reader(), d.size - start, what);
            let copied = copy_body(&mut body, &mut sink, &mut progress);
            let got = sink.written() - start;
            self.stats.bytes += got;
            match copied {
                Ok(()) if sink.written() < d.size => {
                    // A body that ends early without a transport error
                    // (close-delimited) may be a cut; one resume decides.
                    short_ends += 1;
                    if short_ends > 1 || got == 0 {
                        let n = sink.written();
                        drop(sink);
                        let _ = fs::remove_file(&partial);
                        return Err(Error::failure(format!(
                            "{what}: got {n} bytes, expected {}",
                            d.size
                        )));
                    }
                }
                Ok(()) => {}
                Err(Copy::Write(e)) => {
                    drop(sink);
                    let _ = fs::remove_file(&partial);
                    return Err(Error::io(format!("writing {}", partial.display()), e));
                }
                Err(Copy::Read(e)) if e.get_ref().is_some_and(|x| x.is::<Error>()) => {
                    // Our own bound: the registry sent more than the size.
                    drop(sink);
                    let _ = fs::remove_file(&partial);
                    return Err(crate::error::from_io(what, e));
                }
                Err(Copy::Read(e)) => {
                    if got > 0 {
                        failures = 0;
                    }
                    failures += 1;
                    let cause = msg::clean(&e.to_string(), 200);
                    if failures > self.retries {
                        progress.abandon();
                        return Err(Error::network(format!(
                            "{what}: {cause} after {} of {} bytes",
                            sink.written(),
                            d.size
                        ))
                        .with_hint("run the same pull again: it resumes where this one stopped"));
                    }
                    let wait = http::backoff(failures - 1);
                    progress.interrupt();
                    warn!(
                        "{what}: {cause} after {} of {} bytes; resuming in {:.1} s",
                        sink.written(),
                        d.size,
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                }
            }
        }

        let (resume, actual) = sink.finish();
        if actual != d.digest {
            drop(resume);
            let _ = fs::remove_file(&partial);
            progress.abandon();
            return Ok(Some(actual));
        }
        resume.file.sync_all().map_err(disk)?;
        drop(resume);
        self.layout.commit_blob(&partial, &d.digest)?;
        progress.done();
        Ok(None)
    }
}

/// The partial file, appended to after `skip` bytes that are already in
/// it: re-hashing them through the `DigestWriter` writes nothing.
///
/// Every few MiB it asks the kernel to start writing the new bytes out, so
/// the `fsync` before the rename finds them on disk already instead of
/// waiting for the whole blob after the transfer.
struct Resume {
    file: File,
    skip: u64,
    /// File offset of the next byte written.
    end: u64,
    /// Bytes before this offset have been handed to writeback.
    flushed: u64,
}

/// How much is written before writeback of it is started.
const WRITEBACK_STEP: u64 = 8 << 20;

impl Resume {
    /// Appends to `file`, whose first `skip` bytes are already there.
    fn new(file: File, skip: u64) -> Resume {
        Resume { file, skip, end: skip, flushed: skip }
    }
}

impl Write for Resume {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.skip > 0 {
            let n = buf.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            self.skip -= n as u64;
            return Ok(n);
        }
        let n = self.file.write(buf)?;
        self.end += n as u64;
        if self.end - self.flushed >= WRITEBACK_STEP {
            start_writeback(&self.file, self.flushed, self.end - self.flushed);
            self.flushed = self.end;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Starts writing `len` bytes at `offset` of `file` to disk without
/// waiting (Linux's `sync_file_range` with `SYNC_FILE_RANGE_WRITE`). Only
/// a head start for the `fsync` that follows: a failure changes nothing.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        // glibc and musl both export it with 64-bit offsets on 64-bit Linux.
        fn sync_file_range(fd: i32, offset: i64, nbytes: i64, flags: u32) -> i32;
    }
    const SYNC_FILE_RANGE_WRITE: u32 = 2;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else { return };
    // SAFETY: the descriptor is open for as long as `file` is borrowed, and
    // the call only reads its arguments; it touches no memory of ours.
    unsafe {
        sync_file_range(file.as_raw_fd(), offset, len, SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &File, _: u64, _: u64) {}

/// Empties the partial file and starts the hash over.
fn restart(
    sink: DigestWriter<Resume>,
    alg: crate::digest::Algorithm,
) -> io::Result<DigestWriter<Resume>> {
    let resume = sink.into_inner();
    resume.file.set_len(0)?;
    Ok(DigestWriter::new(Resume::new(resume.file, 0), alg))
}

/// Whether `Content-Range` says exactly `bytes FROM-(SIZE-1)/SIZE` (or
/// `/*`): anything else would splice the wrong bytes in.
fn content_range_ok(value: Option<&str>, from: u64, size: u64) -> bool {
    let Some(rest) = value.and_then(|v| v.trim().strip_prefix("bytes ")) else { return false };
    let Some((range, total)) = rest.split_once('/') else { return false };
    let Some((first, last)) = range.split_once('-') else { return false };
    let total_ok = total == "*" || total.parse::<u64>() == Ok(size);
    first.parse::<u64>() == Ok(from) && last.parse::<u64>() == Ok(size - 1) && total_ok
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `body` into `sink` until it ends, telling read failures (the
/// network, resumable) from write failures (the disk, not).
fn copy_body(
    body: &mut impl Read,
    sink: &mut DigestWriter<Resume>,
    progress: &mut Progress,
) -> std::result::Result<(), Copy> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        sink.write_all(&buf[..n]).map_err(Copy::Write)?;
        progress.update(sink.written());
    }
}

/// Reads a config already in the layout; `has_blob` checked its size.
fn read_small(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(manifest::DOCUMENT_LIMIT).read_to_end(&mut bytes))
        .map_err(|e| Error::io(path.display(), e))?;
    Ok(bytes)
}

/// One blob's progress: redrawn in place on a terminal, one line at the
/// end under `-v` otherwise, nothing under `-q`.
pub(crate) struct Progress {
    label: String,
    total: u64,
    start_bytes: u64,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    terminal: bool,
}

impl Progress {
    pub(crate) fn new(digest: &str, total: u64, have: u64) -> Progress {
        // `sha256:` and twelve hex digits tell blobs apart on a line.
        let label: String = digest.chars().take(19).collect();
        Progress {
            label,
            total,
            start_bytes: have,
            done: have,
            started: Instant::now(),
            drawn: None,
            terminal: msg::level() >= 0 && io::stderr().is_terminal(),
        }
    }

    pub(crate) fn update(&mut self, done: u64) {
        self.done = done;
        if !self.terminal {
            return;
        }
        let now = Instant::now();
        if self.drawn.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
            return;
        }
        self.drawn = Some(now);
        self.draw();
    }

    fn draw(&self) {
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(100);
        eprint!(
            "\rferry: {}  {} / {}  {pct:3}%  {}/s\x1b[K",
            self.label,
            human(self.done),
            human(self.total),
            human(self.speed())
        );
    }

    fn speed(&self) -> u64 {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        ((self.done - self.start_bytes.min(self.done)) as f64 / secs) as u64
    }

    /// Ends the line before a warning is printed.
    pub(crate) fn interrupt(&mut self) {
        if self.drawn.take().is_some() {
            eprintln!();
        }
    }

    pub(crate) fn abandon(&mut self) {
        self.interrupt();
    }

    pub(crate) fn done(&mut self) {
        if self.terminal {
            self.draw();
            eprintln!();
        } else {
            verbose!(
                "{}: {} in {:.1} s ({}/s)",
                self.label,
                human(self.total),
                self.started.elapsed().as_secs_f64(),
                human(self.speed())
            );
        }
    }
}

/// `12.3 MiB`-style sizes.
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert!(content_range_ok(Some("bytes 10-99/100"), 10, 100));
        assert!(content_range_ok(Some("bytes 10-99/*"), 10, 100));
        assert!(!content_range_ok(Some("bytes 0-99/100"), 10, 100));
        assert!(!content_range_ok(Some("bytes 10-98/100"), 10, 100));
        assert!(!content_range_ok(Some("bytes 10-99/101"), 10, 100));
        assert!(!content_range_ok(None, 10, 100));
        assert!(!content_range_ok(Some("items 10-99/100"), 10, 100));
    }

    #[test]
    fn resume_rehashes_without_rewriting() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p");
        fs::write(&path, b"hello ").unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let mut w = DigestWriter::new(Resume::new(file, 6), crate::digest::Algorithm::Sha256);
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (_, d) = w.finish();
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        assert_eq!(d, crate::digest::Digest::sha256_of(b"hello world"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(5), "5 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
