//! The distribution API of one registry, on top of `Http`: manifests,
//! small blobs, tags and the catalog.
//!
//! Everything fetched is checked here before anyone uses it: manifests
//! against the digest asked for and the one the registry claims, configs
//! against their descriptor's size and digest. Blob streaming for pulls
//! lives with the pull code; this module only starts the blob GET.

use crate::digest::Digest;
use crate::error::{Error, Kind, Result};
use crate::http::{Http, Req, Response};
use crate::manifest::{self, Descriptor, Document};
use crate::reference::Reference;
use crate::url;
use crate::{msg, verbose};

/// Largest page of a tag list or catalog, in bytes.
const LIST_LIMIT: u64 = 4 << 20;
/// Most pages of a tag list or catalog followed.
const MAX_PAGES: usize = 10_000;

/// A manifest or index as served, with what was learnt about it.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
    pub document: Document,
}

/// A registry and the repository path requests are about.
pub struct Remote {
    pub http: Http,
}

impl Remote {
    pub fn new(http: Http) -> Remote {
        Remote { http }
    }

    /// `HOST/PATH:TAG` or `HOST/PATH@DIGEST`, for messages.
    pub fn name(&self, path: &str, version: &str) -> String {
        let host = self.http.base().split_once("://").map_or(self.http.base(), |(_, h)| h);
        let sep = if version.contains(':') { '@' } else { ':' };
        format!("{host}/{path}{sep}{version}")
    }

    /// `BASE/v2/PATH/KIND/ITEM`, e.g. kind `blobs` or `manifests`.
    pub fn url(&self, path: &str, kind: &str, item: &str) -> String {
        format!("{}/v2/{path}/{kind}/{item}", self.http.base())
    }

    /// GETs the manifest `version` (tag or digest) of `path`, verified:
    /// bounded to 4 MiB; hashed and compared with the digest asked for
    /// and with `Docker-Content-Digest`; parsed strictly.
    pub fn manifest(
        &mut self,
        path: &str,
        version: &str,
        expected: Option<&Digest>,
    ) -> Result<Fetched> {
        let what = format!("manifest {}", self.name(path, version));
        let req = Req::new("GET", self.url(path, "manifests", version), pull_scope(path))
            .header("Accept", manifest::ACCEPT);
        let response = self.http.send(&req)?;
        if response.status != 200 {
            return Err(status_error(response, &what));
        }
        let content_type = response.header("content-type").map(str::to_string);
        let claimed = response.header("docker-content-digest").map(str::to_string);
        let bytes = response.read(manifest::DOCUMENT_LIMIT, "manifest")?;
        let alg = expected.map(Digest::algorithm).unwrap_or(crate::digest::Algorithm::Sha256);
        let digest = Digest::of(&bytes, alg);
        if let Some(e) = expected.filter(|e| **e != digest) {
            return Err(Error::failure(format!(
                "{what}: served bytes have digest {digest}, not the {e} asked for"
            )));
        }
        if let Some(c) = claimed {
            let c = Digest::parse(c.trim())
                .map_err(|e| e.context(format!("{what}: Docker-Content-Digest")))?;
            if c.algorithm() == digest.algorithm() && c != digest {
                return Err(Error::failure(format!(
                    "{what}: registry claims digest {c} but the bytes have {digest}"
                )));
            }
        }
        let (document, media_type) =
            manifest::parse(&bytes, content_type.as_deref()).map_err(|e| e.context(&what))?;
        verbose!("{what}: {media_type}, {} bytes, {digest}", bytes.len());
        Ok(Fetched { bytes, digest, media_type, document })
    }

    /// The manifest digest of `reference` by HEAD, falling back to a GET
    /// (and hashing) when the registry sends no `Docker-Content-Digest`.
    pub fn digest(&mut self, r: &Reference) -> Result<Digest> {
        if let Some(d) = &r.digest {
            return Ok(self.manifest(&r.path, &r.version(), Some(d))?.digest);
        }
        let what = format!("manifest {}", self.name(&r.path, &r.version()));
        let req =
            Req::new("HEAD", self.url(&r.path, "manifests", &r.version()), pull_scope(&r.path))
                .header("Accept", manifest::ACCEPT);
        let response = self.http.send(&req)?;
        if response.status != 200 {
            return Err(status_error(response, &what));
        }
        if let Some(d) = response.header("docker-content-digest") {
            if let Ok(d) = Digest::parse(d.trim()) {
                return Ok(d);
            }
            verbose!("{what}: unreadable Docker-Content-Digest; fetching the manifest instead");
        } else {
            verbose!("{what}: no Docker-Content-Digest on HEAD; fetching the manifest instead");
        }
        Ok(self.manifest(&r.path, &r.version(), None)?.digest)
    }

    /// GETs a small blob (a config) of `path` and checks its size and
    /// digest against `d`.
    pub fn small_blob(&mut self, path: &str, d: &Descriptor) -> Result<Vec<u8>> {
        let what = format!("blob {}", d.digest);
        if d.size > manifest::DOCUMENT_LIMIT {
            return Err(Error::failure(format!(
                "{what}: {} bytes is more than the {} a config may have",
                d.size,
                manifest::DOCUMENT_LIMIT
            )));
        }
        let req = Req::new("GET", self.url(path, "blobs", &d.digest.to_string()), pull_scope(path));
        let response = self.http.send(&req)?;
        if response.status != 200 {
            return Err(status_error(response, &what));
        }
        let bytes = response.read(d.size, &what)?;
        if bytes.len() as u64 != d.size {
            return Err(Error::failure(format!(
                "{what}: got {} bytes, expected {}",
                bytes.len(),
                d.size
            )));
        }
        let actual = Digest::of(&bytes, d.digest.algorithm());
        if actual != d.digest {
            return Err(Error::failure(format!("{what}: content has digest {actual}")));
        }
        Ok(bytes)
    }

    /// Starts a GET of blob `digest` of `path`, from byte `from` on
    /// (`Range: bytes=FROM-` when not zero). The status is the caller's to
    /// judge: a registry may answer 200 to a Range request.
    pub fn blob(&mut self, path: &str, digest: &Digest, from: u64) -> Result<Response> {
        let mut req =
            Req::new("GET", self.url(path, "blobs", &digest.to_string()), pull_scope(path));
        if from > 0 {
            req = req.header("Range", format!("bytes={from}-"));
        }
        self.http.send(&req)
    }

    /// Every tag of `path`, following `Link` pagination.
    pub fn tags(&mut self, path: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let first = format!("{}/v2/{path}/tags/list", self.http.base());
        let mut tags = Vec::new();
        self.pages(&first, &pull_scope(path), &format!("tags of {path}"), |bytes| {
            let page: Page = serde_json::from_slice(bytes)
                .map_err(|e| Error::failure(format!("malformed tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            Ok(())
        })?;
        Ok(tags)
    }

    /// Every repository of the registry, following `Link` pagination.
    pub fn catalog(&mut self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            repositories: Option<Vec<String>>,
        }
        let first = format!("{}/v2/_catalog", self.http.base());
        let mut repos = Vec::new();
        self.pages(&first, "registry:catalog:*", "catalog", |bytes| {
            let page: Page = serde_json::from_slice(bytes)
                .map_err(|e| Error::failure(format!("malformed catalog: {e}")))?;
            repos.extend(page.repositories.unwrap_or_default());
            Ok(())
        })?;
        Ok(repos)
    }

    fn pages(
        &mut self,
        first: &str,
        scope: &str,
        what: &str,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let origin = url::Origin::of(first)?;
        let mut next = Some(first.to_string());
        let mut seen = std::collections::HashSet::new();
        while let Some(target) = next.take() {
            if !seen.insert(target.clone()) || seen.len() > MAX_PAGES {
                return Err(Error::failure(format!("{what}: pagination loops")));
            }
            let response = self.http.send(&Req::new("GET", target.clone(), scope))?;
            if response.status != 200 {
                return Err(status_error(response, what));
            }
            if let Some(link) = response.header("link").and_then(next_link) {
                let resolved = url::resolve(&response.url, &link)?;
                if url::Origin::of(&resolved)? != origin {
                    return Err(Error::failure(format!(
                        "{what}: next page is on another origin ({})",
                        msg::clean(url::without_query(&resolved), 200)
                    )));
                }
                next = Some(resolved);
            }
            each(&response.read(LIST_LIMIT, what)?)?;
        }
        Ok(())
    }

    /// GET /v2/: checks that the registry answers and the credentials work.
    pub fn ping(&mut self) -> Result<()> {
        let response = self.http.send(&Req::new("GET", format!("{}/v2/", self.http.base()), ""))?;
        match response.status {
            200 => Ok(()),
            401 => Err(Error::new(Kind::Credentials, "registry refused the credentials")),
            _ => Err(status_error(response, "GET /v2/")),
        }
    }
}

/// The scope for writing `path` (a push reads too: HEAD, mounts).
pub fn push_scope(path: &str) -> String {
    format!("repository:{path}:pull,push")
}

/// The scope for reading `path`.
pub fn pull_scope(path: &str) -> String {
    format!("repository:{path}:pull")
}

/// An unexpected status as an error: 401/403/404 are "not found or not
/// authorized" (registries do not tell them apart), exit 3.
pub fn status_error(response: crate::http::Response, what: &str) -> Error {
    let status = response.status;
    let e = response.error(what);
    if matches!(status, 401 | 403 | 404) {
        Error { kind: Kind::NotFound, ..e }
            .with_hint("check the name, or the credentials if the repository is private")
    } else {
        e
    }
}

/// The target of `rel="next"` in a `Link` header value.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://x/a>; rel="prev", </b>; rel=next"#).as_deref(),
            Some("/b")
        );
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link(r#"</a>; rel="last""#), None);
    }
}
