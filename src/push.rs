//! `ferry push` and `ferry delete`, and the uploading every push and copy
//! shares: `Pusher` puts blobs and manifests into one registry.
//!
//! A blob goes up as the distribution spec allows and the seed learnt:
//! `HEAD` first (200 present; 401 or 404 absent); on the same registry a
//! cross-repository mount, falling back to an upload when refused (202);
//! else `POST` for a session, then one monolithic `PUT` (or `PATCH` chunks
//! and a closing `PUT` under `--chunk-size`), then `HEAD` to check. The
//! bytes stream from a `Source` (a layout file, or a GET on another
//! registry for `copy`) through `Verify`, which hashes them on the way and
//! withholds the last bytes when the digest is wrong, so a bad blob is
//! never completed. A streamed body cannot be sent twice, so a failed
//! attempt starts a fresh upload session. Manifests go up byte for byte
//! with their own media type, after everything they name.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};

use crate::commands::Ctx;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Kind, Result};
use crate::http::{self, Body, Req, Response};
use crate::layout::REF_NAME;
use crate::manifest::{self, Descriptor, Document, Manifest};
use crate::pull::{Progress, human};
use crate::reference::{Reference, Registry};
use crate::remote::{Remote, push_scope, status_error};
use crate::url;
use crate::{info, msg, verbose, warn};

/// Largest `index.json` of a layout read.
const INDEX_LIMIT: u64 = 64 << 20;

/// Where a blob's bytes come from, opened afresh for each upload attempt.
pub trait Source {
    /// The blob `d` from its first byte.
    fn open(&mut self, d: &Descriptor) -> Result<Box<dyn Read + '_>>;
    /// Whether a failed read may pass on another attempt (a network
    /// source), or means the source itself is bad (a file).
    fn transient(&self) -> bool;
}

/// Blobs of an OCI layout on disk.
pub struct LayoutSource {
    dir: PathBuf,
}

impl LayoutSource {
    fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs").join(d.algorithm().name()).join(d.hex())
    }

    /// A small blob (manifest, index), checked against its descriptor.
    fn read_small(&self, d: &Descriptor) -> Result<Vec<u8>> {
        let path = self.path(&d.digest);
        if d.size > manifest::DOCUMENT_LIMIT {
            return Err(Error::failure(format!(
                "{}: {} bytes is more than a manifest may have",
                path.display(),
                d.size
            )));
        }
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|f| f.take(d.size + 1).read_to_end(&mut bytes))
            .map_err(|e| missing(&self.dir, &d.digest, &path, e))?;
        let actual = Digest::of(&bytes, d.digest.algorithm());
        if bytes.len() as u64 != d.size || actual != d.digest {
            return Err(Error::failure(format!(
                "{}: damaged ({} bytes with digest {actual}; expected {} bytes with {})",
                path.display(),
                bytes.len(),
                d.size,
                d.digest
            )));
        }
        Ok(bytes)
    }
}

fn missing(dir: &Path, d: &Digest, path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::failure(format!("blob {d} is not in the layout {}", dir.display()))
            .with_hint("pull the image into the layout again")
    } else {
        Error::io(path.display(), e)
    }
}

impl Source for LayoutSource {
    fn open(&mut self, d: &Descriptor) -> Result<Box<dyn Read + '_>> {
        let path = self.path(&d.digest);
        let file = File::open(&path).map_err(|e| missing(&self.dir, &d.digest, &path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path.display(), e))?.len();
        if len != d.size {
            return Err(Error::failure(format!(
                "{}: {len} bytes, but the manifest says {}",
                path.display(),
                d.size
            )));
        }
        Ok(Box::new(file))
    }

    fn transient(&self) -> bool {
        false
    }
}

/// What went wrong on the source side of an upload.
enum Failure {
    /// Reading failed or ended early: a cut connection, a short file.
    Read(String),
    /// All the bytes came, with the wrong digest.
    Content(Error),
}

/// Reads exactly `size` bytes of a source, hashing them; the read that
/// would complete the blob fails instead when the digest is wrong, so the
/// registry never gets a whole wrong blob. Failures are kept for the
/// uploader to judge, since ureq reports them only as a broken body.
struct Verify<'a> {
    inner: Box<dyn Read + 'a>,
    hasher: Option<Hasher>,
    expected: &'a Digest,
    size: u64,
    read: u64,
    failure: Option<Failure>,
    progress: &'a mut Progress,
}

impl<'a> Verify<'a> {
    fn new(inner: Box<dyn Read + 'a>, d: &'a Descriptor, progress: &'a mut Progress) -> Verify<'a> {
        Verify {
            inner,
            hasher: Some(Hasher::new(d.digest.algorithm())),
            expected: &d.digest,
            size: d.size,
            read: 0,
            failure: None,
            progress,
        }
    }

    fn fail(&mut self, f: Failure) -> io::Error {
        let text = match &f {
            Failure::Read(m) => m.clone(),
            Failure::Content(e) => e.msg.clone(),
        };
        self.failure = Some(f);
        io::Error::other(text)
    }

    /// Checks the digest once every byte was read (also for empty blobs).
    fn check(&mut self) -> std::result::Result<(), io::Error> {
        if self.read == self.size
            && let Some(h) = self.hasher.take()
        {
            let actual = h.finish();
            if actual != *self.expected {
                let e =
                    Error::failure(format!("blob {}: content has digest {actual}", self.expected));
                return Err(self.fail(Failure::Content(e)));
            }
        }
        Ok(())
    }
}

impl Read for Verify<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.size - self.read;
        if left == 0 || buf.is_empty() {
            self.check()?;
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(0) => {
                let m = format!("source ended after {} of {} bytes", self.read, self.size);
                return Err(self.fail(Failure::Read(m)));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let m = format!("reading the source: {}", msg::clean(&e.to_string(), 200));
                return Err(self.fail(Failure::Read(m)));
            }
        };
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        self.check()?;
        self.progress.update(self.read);
        Ok(n)
    }
}

/// How one upload attempt ended, when not with success.
enum Attempt {
    /// Worth a fresh upload session: 5xx, a cut connection, a token that
    /// expired under a streamed body.
    Retry(Error),
    Fatal(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Attempt {
        if e.transient { Attempt::Retry(e) } else { Attempt::Fatal(e) }
    }
}

/// What happened to the blobs of a run, for the summary.
#[derive(Default)]
pub struct Stats {
    pub present: u64,
    pub mounted: u64,
    pub uploaded: u64,
    pub bytes: u64,
}

impl Stats {
    pub fn json(&self) -> Value {
        json!({
            "blobs_present": self.present,
            "blobs_mounted": self.mounted,
            "blobs_uploaded": self.uploaded,
            "bytes_uploaded": self.bytes,
        })
    }

    pub fn summary(&self) -> String {
        format!(
            "{} blobs uploaded ({}), {} mounted, {} already present",
            self.uploaded,
            human(self.bytes),
            self.mounted,
            self.present
        )
    }
}

/// Puts blobs and manifests into one registry.
pub struct Pusher {
    pub remote: Remote,
    chunk_size: Option<u64>,
    retries: u32,
    pub stats: Stats,
    /// Repositories of this registry known to hold a blob: mount sources.
    pub known: HashMap<Digest, String>,
}

impl Pusher {
    pub fn new(remote: Remote, chunk_size: Option<u64>, retries: u32) -> Pusher {
        Pusher { remote, chunk_size, retries, stats: Stats::default(), known: HashMap::new() }
    }

    /// Puts blob `d` into repository `path` unless it is there.
    pub fn blob(&mut self, path: &str, d: &Descriptor, source: &mut dyn Source) -> Result<()> {
        let what = format!("blob {}", d.digest);
        if self.exists(path, &d.digest)? {
            note(&format!("{what}: already present"));
            self.stats.present += 1;
            self.known.insert(d.digest.clone(), path.to_string());
            return Ok(());
        }
        let mut session = None;
        if let Some(from) = self.known.get(&d.digest).filter(|f| *f != path).cloned() {
            match self.mount(path, &d.digest, &from)? {
                Mount::Done => {
                    self.verify(path, &d.digest)?;
                    note(&format!("{what}: mounted from {from}"));
                    self.stats.mounted += 1;
                    self.known.insert(d.digest.clone(), path.to_string());
                    return Ok(());
                }
                Mount::Session(location) => session = Some(location),
                Mount::Refused => {}
            }
        }

        let mut progress = Progress::new(&d.digest.to_string(), d.size, 0);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match self.upload_once(path, d, source, session.take(), &mut progress) {
                Ok(()) => break,
                Err(Attempt::Fatal(e)) => {
                    progress.abandon();
                    return Err(e.context(&what));
                }
                Err(Attempt::Retry(e)) => {
                    progress.interrupt();
                    if attempt >= self.retries {
                        return Err(e
                            .context(&what)
                            .with_hint("check the registry, or raise --retries"));
                    }
                    attempt += 1;
                    let wait = http::backoff(attempt - 1);
                    warn!(
                        "{what}: {}; new upload session {attempt} of {} in {:.1} s",
                        e.msg,
                        self.retries,
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                    progress = Progress::new(&d.digest.to_string(), d.size, 0);
                }
            }
        }
        self.verify(path, &d.digest)?;
        progress.interrupt();
        note(&format!(
            "{what}: uploaded, {} in {:.1} s",
            human(d.size),
            started.elapsed().as_secs_f64()
        ));
        self.stats.uploaded += 1;
        self.stats.bytes += d.size;
        self.known.insert(d.digest.clone(), path.to_string());
        Ok(())
    }

    /// Config and layers of `m`, skipping foreign layers the source lacks.
    pub fn image_blobs(&mut self, path: &str, m: &Manifest, source: &mut dyn Source) -> Result<()> {
        self.blob(path, &m.config, source)?;
        for layer in &m.layers {
            self.blob(path, layer, source)?;
        }
        Ok(())
    }

    /// HEAD: 200 present; 401 and 404 absent (a registry may answer 401
    /// for what it lacks even with a good token).
    fn exists(&mut self, path: &str, d: &Digest) -> Result<bool> {
        let req =
            Req::new("HEAD", self.remote.url(path, "blobs", &d.to_string()), push_scope(path));
        let response = self.remote.http.send(&req)?;
        match response.status {
            200 => Ok(true),
            401 | 404 => Ok(false),
            _ => Err(status_error(response, &format!("HEAD blob {d}"))),
        }
    }

    /// The HEAD after an upload or mount: the registry must now have it.
    fn verify(&mut self, path: &str, d: &Digest) -> Result<()> {
        if self.exists(path, d)? {
            Ok(())
        } else {
            Err(Error::failure(format!("blob {d}: not in {path} right after it was put there")))
        }
    }

    /// Asks the registry to link blob `d` of repository `from` into `path`.
    fn mount(&mut self, path: &str, d: &Digest, from: &str) -> Result<Mount> {
        let target = url::append_query(
            &url::append_query(&self.uploads_url(path), "mount", &d.to_string()),
            "from",
            from,
        );
        let scope = format!("{} repository:{from}:pull", push_scope(path));
        let req = Req::new("POST", target, scope).body(Body::Bytes(b""));
        let response = self.remote.http.send(&req)?;
        match response.status {
            201 => Ok(Mount::Done),
            202 => {
                verbose!("blob {d}: mount from {from} refused; uploading");
                Ok(location(&response).map_or(Mount::Refused, |(l, _)| Mount::Session(l)))
            }
            s => {
                verbose!("blob {d}: mount from {from} answered HTTP {s}; uploading");
                Ok(Mount::Refused)
            }
        }
    }

    fn uploads_url(&self, path: &str) -> String {
        format!("{}/v2/{path}/blobs/uploads/", self.remote.http.base())
    }

    /// POST for a new upload session: its absolute URL and the smallest
    /// chunk the registry takes (`OCI-Chunk-Min-Length`).
    fn start(&mut self, path: &str) -> std::result::Result<(String, u64), Attempt> {
        let req = Req::new("POST", self.uploads_url(path), push_scope(path)).body(Body::Bytes(b""));
        let response = self.remote.http.send(&req)?;
        if response.status != 202 {
            let transient = (500..600).contains(&response.status);
            let e = status_error(response, &format!("POST {}", self.uploads_url(path)));
            return Err(if transient { Attempt::Retry(e) } else { Attempt::Fatal(e) });
        }
        location(&response).ok_or_else(|| {
            Attempt::Fatal(Error::failure("upload session started without a valid Location"))
        })
    }

    /// One attempt: a session (given, or started now), the bytes, the end.
    fn upload_once(
        &mut self,
        path: &str,
        d: &Descriptor,
        source: &mut dyn Source,
        session: Option<String>,
        progress: &mut Progress,
    ) -> std::result::Result<(), Attempt> {
        let (mut at, min_chunk) = match session {
            Some(l) => (l, 0),
            None => self.start(path)?,
        };
        let transient = source.transient();
        let mut body = Verify::new(source.open(d)?, d, progress);
        let scope = push_scope(path);

        if let Some(chunk) = self.chunk_size {
            let chunk = chunk.max(min_chunk).max(1);
            let mut offset = 0;
            while offset < d.size {
                let n = chunk.min(d.size - offset);
                let mut part = (&mut body).take(n);
                let req = Req::new("PATCH", at.clone(), scope.clone())
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", format!("{offset}-{}", offset + n - 1))
                    .body(Body::stream(&mut part, n));
                let sent = self.remote.http.send(&req);
                drop(req);
                let response = judge(sent, &body, transient, 202, false)?;
                at = location(&response).map(|(l, _)| l).ok_or_else(|| {
                    Attempt::Fatal(Error::failure("PATCH answered without a valid Location"))
                })?;
                offset += n;
            }
            body.check().map_err(|_| source_failure(&body, transient))?;
            let req =
                Req::new("PUT", url::append_query(&at, "digest", &d.digest.to_string()), scope)
                    .body(Body::Bytes(b""));
            let sent = self.remote.http.send(&req);
            judge(sent, &body, transient, 201, false)?;
        } else {
            let req =
                Req::new("PUT", url::append_query(&at, "digest", &d.digest.to_string()), scope)
                    .header("Content-Type", "application/octet-stream")
                    .body(Body::stream(&mut body, d.size));
            let sent = self.remote.http.send(&req);
            drop(req);
            judge(sent, &body, transient, 201, true)?;
        }
        Ok(())
    }

    /// PUTs a manifest or index byte for byte under `version` (tag or
    /// digest) with its own media type; the registry must agree on its
    /// digest.
    pub fn manifest(
        &mut self,
        path: &str,
        version: &str,
        bytes: &[u8],
        media_type: &str,
        digest: &Digest,
    ) -> Result<()> {
        let what = format!("PUT manifest {}", self.remote.name(path, version));
        let req = Req::new("PUT", self.remote.url(path, "manifests", version), push_scope(path))
            .header("Content-Type", media_type)
            .body(Body::Bytes(bytes));
        let response = self.remote.http.send(&req)?;
        if !matches!(response.status, 200 | 201) {
            return Err(status_error(response, &what));
        }
        if let Some(c) = response.header("docker-content-digest")
            && let Ok(c) = Digest::parse(c.trim())
            && c.algorithm() == digest.algorithm()
            && c != *digest
        {
            return Err(Error::failure(format!(
                "{what}: the registry stored it as {c}, not {digest}"
            )));
        }
        verbose!("{what}: {media_type}, {} bytes, {digest}", bytes.len());
        Ok(())
    }
}

enum Mount {
    Done,
    /// Refused with an upload session to use instead.
    Session(String),
    Refused,
}

/// The absolute `Location` of an upload response (resolved against the
/// URL that answered, its query kept) and its `OCI-Chunk-Min-Length`.
fn location(response: &Response) -> Option<(String, u64)> {
    let l = response.header("location")?;
    let resolved = url::resolve(&response.url, l).ok()?;
    let min = response
        .header("oci-chunk-min-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some((resolved, min))
}

fn source_failure(body: &Verify, transient: bool) -> Attempt {
    match &body.failure {
        Some(Failure::Content(e)) => Attempt::Fatal(Error::failure(e.msg.clone())),
        Some(Failure::Read(m)) if transient => Attempt::Retry(Error::network(m.clone())),
        Some(Failure::Read(m)) => Attempt::Fatal(Error::failure(m.clone())),
        None => Attempt::Fatal(Error::failure("upload body incomplete")),
    }
}

/// Judges the answer to an upload request: a source failure first, then
/// the transport, then the status.
fn judge(
    sent: Result<Response>,
    body: &Verify,
    transient: bool,
    expected: u16,
    monolithic: bool,
) -> std::result::Result<Response, Attempt> {
    if body.failure.is_some() {
        return Err(source_failure(body, transient));
    }
    let response = sent?;
    let status = response.status;
    if status == expected {
        return Ok(response);
    }
    let what = format!("upload to {}", url::without_query(&response.url));
    match status {
        413 if monolithic => Err(Attempt::Fatal(
            response
                .error(&what)
                .with_hint("the registry or a proxy refuses large bodies: try --chunk-size 16M"),
        )),
        // The token expired under a body that cannot be sent again: the
        // next session's POST renews it.
        401 | 408 | 429 | 500..=599 => Err(Attempt::Retry(response.error(&what))),
        _ => Err(Attempt::Fatal(status_error(response, &what))),
    }
}

/// A per-blob line: on a terminal always, otherwise under `-v`.
fn note(text: &str) {
    if msg::level() >= 0 && io::stderr().is_terminal() {
        info!("{text}");
    } else {
        verbose!("{text}");
    }
}

// ---------------------------------------------------------------------
// ferry push

/// An image named in a layout's `index.json`.
struct Entry {
    name: Option<String>,
    target: Descriptor,
}

/// The entries of the layout at `dir`, read without locking it: pull
/// renames complete files into place, so a reader never sees half of one.
fn entries(dir: &Path) -> Result<Vec<Entry>> {
    let path = dir.join("index.json");
    let mut bytes = Vec::new();
    File::open(&path).and_then(|f| f.take(INDEX_LIMIT + 1).read_to_end(&mut bytes)).map_err(
        |e| {
            Error::io(path.display(), e)
                .with_hint("DIR must be an OCI image layout, as pull writes")
        },
    )?;
    if bytes.len() as u64 > INDEX_LIMIT {
        return Err(Error::failure(format!("{}: too large", path.display())));
    }
    #[derive(serde::Deserialize)]
    struct Index {
        manifests: Vec<Descriptor>,
    }
    let index: Index = serde_json::from_slice(&bytes)
        .map_err(|e| Error::failure(format!("{}: {e}", path.display())))?;
    Ok(index
        .manifests
        .into_iter()
        .map(|d| Entry {
            name: d.annotations.as_ref().and_then(|a| a.get(REF_NAME)).cloned(),
            target: d,
        })
        .collect())
}

/// Splits `DIR[:REF]`: the longest DIR that is a directory holding
/// `index.json` wins, so paths with `:` work too.
fn split_source(source: &str) -> Result<(PathBuf, Option<String>)> {
    let is_layout = |p: &str| Path::new(p).join("index.json").is_file();
    if is_layout(source) {
        return Ok((PathBuf::from(source), None));
    }
    for (i, _) in source.match_indices(':') {
        if is_layout(&source[..i]) {
            return Ok((PathBuf::from(&source[..i]), Some(source[i + 1..].to_string())));
        }
    }
    Err(Error::usage(format!(
        "{}: not an OCI image layout (no index.json)",
        msg::clean(source, 200)
    )))
}

/// The entry of `entries` named `wanted`, or the only one.
fn choose<'e>(entries: &'e [Entry], wanted: Option<&str>, dir: &Path) -> Result<&'e Entry> {
    let names = || entries.iter().filter_map(|e| e.name.as_deref()).collect::<Vec<_>>().join(", ");
    let Some(wanted) = wanted else {
        return match entries {
            [one] => Ok(one),
            [] => Err(Error::not_found(format!("{}: the layout holds no image", dir.display()))),
            _ => Err(Error::usage(format!(
                "{} holds {} images; say which as DIR:REF: {}",
                dir.display(),
                entries.len(),
                names()
            ))),
        };
    };
    if let Some(e) = entries.iter().find(|e| e.name.as_deref() == Some(wanted)) {
        return Ok(e);
    }
    // `alpine:3.20` finds `registry-1.docker.io/library/alpine:3.20`.
    if let Ok(r) = Reference::parse(wanted) {
        let canonical = r.canonical();
        if let Some(e) = entries.iter().find(|e| e.name.as_deref() == Some(canonical.as_str())) {
            return Ok(e);
        }
    }
    Err(Error::not_found(format!(
        "{}: no image named {}; it has: {}",
        dir.display(),
        msg::clean(wanted, 200),
        names()
    )))
}

/// Where a layout image named `name` goes under `REGISTRY[/PREFIX]`.
/// A name by digest alone goes by `held`, the digest of what the layout
/// holds under it: a pull by digest that kept one platform of an index, or
/// converted the image with `--oci-types`, holds another document than the
/// one the name's digest is of, and a registry files a manifest under its
/// own digest only.
fn rerooted(name: &str, registry: &Registry, prefix: &str, held: &Digest) -> Result<Reference> {
    let r = Reference::parse(name)?;
    let mut dest = registry.to_string();
    if !prefix.is_empty() {
        dest.push('/');
        dest.push_str(prefix);
    }
    dest.push('/');
    dest.push_str(&r.path);
    match (&r.tag, &r.digest) {
        (Some(t), _) => dest.push_str(&format!(":{t}")),
        (None, Some(d)) => {
            if d != held {
                warn!(
                    "{name} holds {held} (one platform of the index, or converted by \
                     --oci-types); pushing it by that digest"
                );
            }
            dest.push_str(&format!("@{held}"));
        }
        (None, None) => dest.push_str(":latest"),
    }
    Reference::parse(&dest)
}

/// `ferry push DIR[:REF] IMAGE` and `ferry push --all DIR REGISTRY[/PREFIX]`.
pub fn push(
    ctx: &mut Ctx,
    source: &str,
    dest: &str,
    all: bool,
    chunk_size: Option<u64>,
) -> Result<()> {
    let (dir, wanted) = split_source(source)?;
    let list = entries(&dir)?;
    let mut jobs: Vec<(&Entry, Reference)> = Vec::new();
    if all {
        if wanted.is_some() {
            return Err(Error::usage("push --all takes DIR, not DIR:REF"));
        }
        let (host, prefix) = dest.split_once('/').unwrap_or((dest, ""));
        let registry = Registry::parse(host)?;
        let prefix = prefix.trim_end_matches('/');
        for e in &list {
            let Some(name) = &e.name else {
                warn!("{}: an image without a name ({}); skipped", dir.display(), e.target.digest);
                continue;
            };
            let r =
                rerooted(name, &registry, prefix, &e.target.digest).map_err(|x| x.context(name))?;
            jobs.push((e, r));
        }
        if jobs.is_empty() {
            return Err(Error::not_found(format!("{}: no named image to push", dir.display())));
        }
    } else {
        let e = choose(&list, wanted.as_deref(), &dir)?;
        jobs.push((e, Reference::parse(dest)?));
    }

    let mut layout = LayoutSource { dir: dir.clone() };
    let mut pushers: Vec<(Registry, Pusher)> = Vec::new();
    let mut report = Vec::new();
    for (entry, r) in jobs {
        let i = match pushers.iter().position(|(reg, _)| *reg == r.registry) {
            Some(i) => i,
            None => {
                let remote = ctx.remote(&r.registry)?;
                pushers.push((
                    r.registry.clone(),
                    Pusher::new(remote, chunk_size, ctx.global.retries),
                ));
                pushers.len() - 1
            }
        };
        let pusher = &mut pushers[i].1;
        let label = match &entry.name {
            Some(n) => format!("{}:{n}", dir.display()),
            None => dir.display().to_string(),
        };
        let digest = push_image(pusher, &mut layout, &entry.target, &r)
            .map_err(|e| e.context(format!("push {label} to {r}")))?;
        info!("pushed {label} to {r} {digest}");
        report.push(json!({
            "source": label,
            "destination": r.canonical(),
            "digest": digest.to_string(),
        }));
    }

    let mut stats = Stats::default();
    for (_, p) in &pushers {
        stats.present += p.stats.present;
        stats.mounted += p.stats.mounted;
        stats.uploaded += p.stats.uploaded;
        stats.bytes += p.stats.bytes;
    }
    info!("{}", stats.summary());
    let mut doc = stats.json();
    doc["layout"] = json!(dir);
    doc["images"] = json!(report);
    ctx.print(doc, |_| Ok(()))
}

/// Pushes the image or index `top` of the layout to `r`: blobs, platform
/// manifests, then `top` under r's tag (or digest).
fn push_image(
    pusher: &mut Pusher,
    layout: &mut LayoutSource,
    top: &Descriptor,
    r: &Reference,
) -> Result<Digest> {
    let bytes = layout.read_small(top)?;
    let declared = Some(top.media_type.as_str()).filter(|t| !t.is_empty());
    let (doc, media_type) = manifest::parse(&bytes, declared)?;
    let version = target_version(r, &top.digest)?;
    match &doc {
        Document::Index(index) => {
            for m in &index.manifests {
                let sub = layout.read_small(m).map_err(|e| e.context("index entry"))?;
                let declared = Some(m.media_type.as_str()).filter(|t| !t.is_empty());
                let (Document::Manifest(inner), sub_type) = manifest::parse(&sub, declared)? else {
                    return Err(Error::failure(format!(
                        "index entry {} is itself an index; nested indexes are not supported",
                        m.digest
                    )));
                };
                pusher.image_blobs(&r.path, &inner, layout)?;
                pusher.manifest(&r.path, &m.digest.to_string(), &sub, &sub_type, &m.digest)?;
            }
        }
        Document::Manifest(m) => pusher.image_blobs(&r.path, m, layout)?,
    }
    pusher.manifest(&r.path, &version, &bytes, &media_type, &top.digest)?;
    Ok(top.digest.clone())
}

/// What goes after `/manifests/` for a destination: its tag, or the
/// digest when only a digest was given (which must be the image's).
pub fn target_version(r: &Reference, digest: &Digest) -> Result<String> {
    if let Some(d) = &r.digest
        && d != digest
    {
        return Err(Error::usage(format!(
            "destination names digest {d}, but the image is {digest}"
        )));
    }
    Ok(match (&r.tag, &r.digest) {
        (None, Some(d)) => d.to_string(),
        _ => r.tag().to_string(),
    })
}

// ---------------------------------------------------------------------
// ferry delete

/// `ferry delete IMAGE`: resolves a tag to its digest and deletes that
/// manifest (every tag naming it goes with it).
pub fn delete(ctx: &mut Ctx, image: &str) -> Result<()> {
    let r = Reference::parse(image)?;
    let mut remote = ctx.remote(&r.registry)?;
    let digest = match &r.digest {
        Some(d) => d.clone(),
        None => remote.digest(&r)?,
    };
    let what = format!("delete {}", remote.name(&r.path, &digest.to_string()));
    let scope = format!("repository:{}:pull,delete", r.path);
    let req = Req::new("DELETE", remote.url(&r.path, "manifests", &digest.to_string()), scope);
    let response = remote.http.send(&req)?;
    match response.status {
        200 | 202 | 204 => {}
        405 => {
            let e = response.error(&what);
            return Err(Error { kind: Kind::Failure, ..e }
                .context("the registry does not allow deletes")
                .with_hint(
                    "its operator must enable them (docker registry: storage.delete.enabled: true)",
                ));
        }
        _ => return Err(status_error(response, &what)),
    }
    info!("deleted {r} ({digest})");
    ctx.print(
        json!({"reference": r.canonical(), "digest": digest.to_string(), "deleted": true}),
        |_| Ok(()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn rerooting() {
        let reg = Registry::parse("inside:5000").unwrap();
        let held = Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap();
        let r = rerooted("registry-1.docker.io/library/alpine:3.20", &reg, "mirror", &held);
        assert_eq!(r.unwrap().canonical(), "inside:5000/mirror/library/alpine:3.20");
        let r = rerooted("quay.io/a/b:1", &reg, "", &held).unwrap();
        assert_eq!(r.canonical(), "inside:5000/a/b:1");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = rerooted(&format!("h.io/x@{held}"), &reg, "p/q", &held).unwrap();
        assert_eq!(r.canonical(), format!("inside:5000/p/q/x@{held}"));
        // Named by the index's digest, holding one platform's manifest.
        let r = rerooted(&format!("h.io/x@{d}"), &reg, "", &held).unwrap();
        assert_eq!(r.canonical(), format!("inside:5000/x@{held}"));
    }

    #[test]
    fn verify_withholds_a_wrong_blob() {
        let data = b"hello world".to_vec();
        let good = Descriptor {
            media_type: String::new(),
            digest: Digest::sha256_of(&data),
            size: data.len() as u64,
            platform: None,
            annotations: None,
            urls: None,
        };
        let mut p = Progress::new("sha256:x", good.size, 0);
        let mut v = Verify::new(Box::new(&data[..]), &good, &mut p);
        let mut out = Vec::new();
        v.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);

        let bad = Descriptor { digest: Digest::sha256_of(b"other"), ..good.clone() };
        let mut p = Progress::new("sha256:x", bad.size, 0);
        let mut v = Verify::new(Box::new(&data[..]), &bad, &mut p);
        let mut out = Vec::new();
        assert!(v.read_to_end(&mut out).is_err());
        assert!(out.len() < data.len());
        assert!(matches!(v.failure, Some(Failure::Content(_))));

        let short = Descriptor { size: 20, ..good.clone() };
        let mut p = Progress::new("sha256:x", 20, 0);
        let mut v = Verify::new(Box::new(&data[..]), &short, &mut p);
        assert!(v.read_to_end(&mut Vec::new()).is_err());
        assert!(matches!(v.failure, Some(Failure::Read(_))));
    }

    #[test]
    fn sources_with_colons() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a:b");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("index.json"), "{}").unwrap();
        let s = dir.display().to_string();
        assert_eq!(split_source(&s).unwrap(), (dir.clone(), None));
        let (d, r) = split_source(&format!("{s}:h:5000/x:1")).unwrap();
        assert_eq!((d, r.as_deref()), (dir, Some("h:5000/x:1")));
        assert!(split_source("/nonexistent:x").is_err());
    }
}
