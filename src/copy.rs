//! `ferry copy SRC DST`: an image from one registry to another (or to
//! another repository of the same one), with no file in between.
//!
//! Each blob the destination lacks streams from the source's `GET`
//! straight into the destination's upload, hashed on the way by `push`'s
//! verifying reader; memory holds one buffer, never a blob. On the same
//! registry blobs are mounted instead. Manifests are copied byte for byte,
//! so every digest stays what it was.

use serde_json::json;

use crate::commands::{self, Ctx};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::info;
use crate::manifest::{Descriptor, Document, Platform};
use crate::push::{Pusher, Source, target_version};
use crate::reference::Reference;
use crate::remote::{Remote, status_error};

/// Blobs of one repository of the source registry, fetched as they are
/// uploaded.
struct RemoteSource<'a> {
    remote: &'a mut Remote,
    path: String,
}

impl Source for RemoteSource<'_> {
    fn open(&mut self, d: &Descriptor) -> Result<Box<dyn std::io::Read + '_>> {
        let response = self.remote.blob(&self.path, &d.digest, 0)?;
        if response.status != 200 {
            return Err(status_error(response, &format!("GET blob {}", d.digest)));
        }
        Ok(Box::new(response.into_reader()))
    }

    fn transient(&self) -> bool {
        true
    }
}

/// `ferry copy [--arch PLATFORM] SRC DST`; without `--arch` (or with
/// `all`) a multi-platform image is copied whole.
pub fn copy(
    ctx: &mut Ctx,
    src: &str,
    dst: &str,
    arch: Option<&str>,
    chunk_size: Option<u64>,
) -> Result<()> {
    let s = Reference::parse(src)?;
    let d = Reference::parse(dst)?;
    let wanted = match arch {
        None | Some("all") => None,
        Some(p) => Some(Platform::parse(p)?),
    };
    let mut from = ctx.remote(&s.registry)?;
    let mut to = Pusher::new(ctx.remote(&d.registry)?, chunk_size, ctx.global.retries);
    let what = format!("copy {s} to {d}");
    let digest = run(&mut from, &mut to, &s, &d, wanted.as_ref()).map_err(|e| e.context(&what))?;

    info!("copied {s} to {d} {digest}");
    info!("{}", to.stats.summary());
    let mut doc = to.stats.json();
    doc["source"] = json!(s.canonical());
    doc["destination"] = json!(d.canonical());
    doc["digest"] = json!(digest.to_string());
    ctx.print(doc, |_| Ok(()))
}

fn run(
    from: &mut Remote,
    to: &mut Pusher,
    s: &Reference,
    d: &Reference,
    wanted: Option<&Platform>,
) -> Result<Digest> {
    let same_registry = s.registry == d.registry && s.path != d.path;
    let top = from.manifest(&s.path, &s.version(), s.digest.as_ref())?;
    let mut source = RemoteSource { remote: from, path: s.path.clone() };

    // Which document ends up under the destination's name.
    let (bytes, media_type, digest) = match (&top.document, wanted) {
        (Document::Index(index), None) => {
            for m in &index.manifests {
                copy_manifest(&mut source, to, d, same_registry, &m.digest)?;
            }
            (top.bytes, top.media_type, top.digest)
        }
        (Document::Index(index), Some(p)) => {
            let chosen = index
                .manifests
                .iter()
                .find(|m| m.platform.as_ref().is_some_and(|x| p.matches(x)))
                .ok_or_else(|| commands::no_platform(s, p, index))?;
            let sub = copy_manifest(&mut source, to, d, same_registry, &chosen.digest)?;
            (sub.bytes, sub.media_type, sub.digest)
        }
        (Document::Manifest(m), _) => {
            if same_registry {
                remember(to, &s.path, [&m.config].into_iter().chain(&m.layers));
            }
            to.image_blobs(&d.path, m, &mut source)?;
            (top.bytes, top.media_type, top.digest)
        }
    };
    let version = target_version(d, &digest)?;
    to.manifest(&d.path, &version, &bytes, &media_type, &digest)?;
    Ok(digest)
}

/// Copies the image manifest `digest` and its blobs; returns it.
fn copy_manifest(
    source: &mut RemoteSource,
    to: &mut Pusher,
    d: &Reference,
    same_registry: bool,
    digest: &Digest,
) -> Result<crate::remote::Fetched> {
    let sub = source.remote.manifest(&source.path, &digest.to_string(), Some(digest))?;
    let Document::Manifest(m) = &sub.document else {
        return Err(Error::failure(format!(
            "index entry {digest} is itself an index; nested indexes are not supported"
        )));
    };
    if same_registry {
        let path = source.path.clone();
        remember(to, &path, [&m.config].into_iter().chain(&m.layers));
    }
    to.image_blobs(&d.path, m, source)?;
    to.manifest(&d.path, &digest.to_string(), &sub.bytes, &sub.media_type, digest)?;
    Ok(sub)
}

/// Marks blobs as held by repository `path` of the destination registry,
/// so they are mounted rather than uploaded.
fn remember<'d>(to: &mut Pusher, path: &str, blobs: impl Iterator<Item = &'d Descriptor>) {
    for b in blobs {
        to.known.entry(b.digest.clone()).or_insert_with(|| path.to_string());
    }
}
