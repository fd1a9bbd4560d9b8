//! The read-only commands and login/logout: each takes parsed options,
//! talks to a registry through `Remote`, and prints its result on stdout
//! (plain lines, or one JSON document with `--json`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::cli::Global;
use crate::creds;
use crate::error::{Error, Result};
use crate::http::{self, Http};
use crate::manifest::{Config, Document, Platform};
use crate::reference::{Reference, Registry};
use crate::remote::Remote;
use crate::{auth, info, tls, warn};

/// What every command needs from the command line, resolved once.
pub struct Ctx {
    pub global: Global,
    /// TLS trust per registry `host[:port]`: certs.d differs by host, and a
    /// run may talk to several (copy, pull of many images).
    tls: HashMap<String, Arc<rustls::ClientConfig>>,
}

impl Ctx {
    pub fn new(global: Global) -> Ctx {
        Ctx { global, tls: HashMap::new() }
    }

    fn sources(&self) -> creds::Sources {
        creds::Sources {
            username: self.global.username.clone(),
            password: self.global.password.clone(),
            authfile: self.global.authfile.clone(),
            env: creds::Env::from_process(),
        }
    }

    /// A connection to `registry`, with TLS trust for its host.
    pub fn remote(&mut self, registry: &Registry) -> Result<Remote> {
        self.remote_with(registry, self.sources(), self.force_auth())
    }

    fn force_auth(&self) -> bool {
        self.global.auth
            || std::env::var("FERRY_AUTH").is_ok_and(|v| matches!(v.as_str(), "yes" | "1" | "true"))
    }

    fn remote_with(
        &mut self,
        registry: &Registry,
        sources: creds::Sources,
        force_auth: bool,
    ) -> Result<Remote> {
        let host = registry.to_string();
        if self.tls.is_empty() && self.global.tls_no_verify {
            warn!(
                "--tls-no-verify: TLS certificates are not checked; anyone on the path can read and change what is sent"
            );
        }
        let tls = match self.tls.get(&host) {
            Some(tls) => tls.clone(),
            None => {
                let tls = tls::client_config(&tls::TlsOptions::new(
                    self.global.ca_certs.clone(),
                    self.global.tls_no_verify,
                    vec![host.clone()],
                ))?;
                self.tls.insert(host.clone(), tls.clone());
                tls
            }
        };
        let opts = http::Options {
            timeout: self.global.timeout,
            retries: self.global.retries,
            plain_http: self.global.plain_http,
            tls,
        };
        let forget = self.global.password_many;
        let http = Http::new(&host, &opts, |origin| {
            auth::Auth::new(host.clone(), origin, sources, force_auth, forget)
        })?;
        Ok(Remote::new(http))
    }

    /// Prints `json` under `--json`, else what `plain` writes.
    pub fn print(
        &self,
        json: Value,
        plain: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let written = if self.global.json {
            serde_json::to_writer_pretty(&mut out, &json)
                .map_err(std::io::Error::other)
                .and_then(|()| writeln!(out))
        } else {
            plain(&mut out)
        };
        written.and_then(|()| out.flush()).map_err(|e| Error::io("writing to standard output", e))
    }
}

pub fn inspect(
    ctx: &mut Ctx,
    image: &str,
    raw: bool,
    config: bool,
    arch: Option<&str>,
) -> Result<()> {
    let r = Reference::parse(image)?;
    let wanted = arch.map(Platform::parse).transpose()?.unwrap_or_else(Platform::host);
    let mut remote = ctx.remote(&r.registry)?;
    let top = remote.manifest(&r.path, &r.version(), r.digest.as_ref())?;
    if raw {
        return write_raw(&top.bytes);
    }

    let mut doc = json!({
        "reference": r.canonical(),
        "digest": top.digest.to_string(),
        "media_type": top.media_type,
        "size": top.bytes.len(),
    });
    let mut lines = vec![
        format!("reference {}", r.canonical()),
        format!("digest {}", top.digest),
        format!("media-type {}", top.media_type),
        format!("size {}", top.bytes.len()),
    ];
    match &top.document {
        Document::Index(index) => {
            let mut platforms = Vec::new();
            for m in &index.manifests {
                let p = m.platform.as_ref().map_or("unknown".to_string(), |p| p.to_string());
                lines.push(format!("platform {p} {}", m.digest));
                platforms.push(platform_json(m.platform.as_ref(), &m.digest.to_string(), m.size));
            }
            doc["multi_platform"] = json!(true);
            doc["platforms"] = json!(platforms);
            if config {
                let chosen = index
                    .manifests
                    .iter()
                    .find(|m| m.platform.as_ref().is_some_and(|p| wanted.matches(p)))
                    .ok_or_else(|| no_platform(&r, &wanted, index))?;
                let sub =
                    remote.manifest(&r.path, &chosen.digest.to_string(), Some(&chosen.digest))?;
                let Document::Manifest(m) = sub.document else {
                    return Err(Error::failure(format!(
                        "{}: index entry {} is not an image manifest",
                        r, chosen.digest
                    )));
                };
                return write_raw(&remote.small_blob(&r.path, &m.config)?);
            }
        }
        Document::Manifest(m) => {
            let config_bytes = remote.small_blob(&r.path, &m.config)?;
            if config {
                return write_raw(&config_bytes);
            }
            let cfg = Config::parse(&config_bytes)?;
            let p = cfg.platform();
            lines.push(format!("platform {p} {}", top.digest));
            lines.push(format!("config {} {}", m.config.digest, m.config.size));
            for l in &m.layers {
                lines.push(format!("layer {} {}", l.digest, l.size));
            }
            doc["multi_platform"] = json!(false);
            doc["platforms"] =
                json!([platform_json(Some(&p), &top.digest.to_string(), top.bytes.len() as u64)]);
            doc["config"] = json!({"digest": m.config.digest.to_string(), "size": m.config.size});
            doc["layers"] = json!(m
                .layers
                .iter()
                .map(|l| json!({"digest": l.digest.to_string(), "size": l.size, "media_type": l.media_type}))
                .collect::<Vec<_>>());
        }
    }
    ctx.print(doc, |out| lines.iter().try_for_each(|l| writeln!(out, "{l}")))
}

fn platform_json(p: Option<&Platform>, digest: &str, size: u64) -> Value {
    let mut v = json!({"digest": digest, "size": size});
    match p {
        Some(p) => {
            v["platform"] = json!(p.to_string());
            v["os"] = json!(p.os);
            v["architecture"] = json!(p.architecture);
            if let Some(variant) = &p.variant {
                v["variant"] = json!(variant);
            }
        }
        None => v["platform"] = json!("unknown"),
    }
    v
}

/// "no PLATFORM in IMAGE; it has: …" for an index without the platform.
pub fn no_platform(r: &Reference, wanted: &Platform, index: &crate::manifest::Index) -> Error {
    let have: Vec<String> =
        index.manifests.iter().filter_map(|m| m.platform.as_ref().map(|p| p.to_string())).collect();
    Error::not_found(format!("{r}: no image for platform {wanted}; available: {}", have.join(", ")))
        .with_hint("choose one with --arch")
}

fn write_raw(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("writing to standard output", e))
}

pub fn digest(ctx: &mut Ctx, image: &str) -> Result<()> {
    let r = Reference::parse(image)?;
    let mut remote = ctx.remote(&r.registry)?;
    let d = remote.digest(&r)?;
    ctx.print(json!({"reference": r.canonical(), "digest": d.to_string()}), |out| {
        writeln!(out, "{d}")
    })
}

pub fn tags(ctx: &mut Ctx, repo: &str) -> Result<()> {
    let r = Reference::parse(repo)?;
    if r.tag.is_some() || r.digest.is_some() {
        return Err(Error::usage(format!("tags takes a repository, not an image: \"{repo}\"")));
    }
    let mut remote = ctx.remote(&r.registry)?;
    let tags = remote.tags(&r.path)?;
    ctx.print(json!({"repository": r.repository(), "tags": tags}), |out| {
        tags.iter().try_for_each(|t| writeln!(out, "{t}"))
    })
}

pub fn catalog(ctx: &mut Ctx, registry: &str) -> Result<()> {
    let reg = Registry::parse(registry)?;
    let mut remote = ctx.remote(&reg)?;
    let repos = remote.catalog()?;
    ctx.print(json!({"registry": reg.to_string(), "repositories": repos}), |out| {
        repos.iter().try_for_each(|t| writeln!(out, "{t}"))
    })
}

pub fn login(ctx: &mut Ctx, registry: &str) -> Result<()> {
    let reg = Registry::parse(registry)?;
    let host = reg.to_string();
    let sources = ctx.sources();
    let creds = match creds::find(&sources, &host)? {
        Some((c, origin)) => {
            info!("logging in to {host} with credentials from {origin}");
            c
        }
        None => creds::prompt(&host, ctx.global.username.as_deref())?,
    };
    // Check exactly these credentials, whatever else is configured.
    let checked = creds::Sources {
        username: Some(creds.username.clone()),
        password: Some(creds.password.clone()),
        authfile: None,
        env: creds::Env::default(),
    };
    let mut remote = ctx.remote_with(&reg, checked, true)?;
    remote.ping().map_err(|e| e.context(format!("login to {host}")))?;
    let file = creds::login_file(&sources)?;
    creds::store(&file, &host, &creds)?;
    info!("login succeeded; credentials for {host} stored in {}", file.display());
    ctx.print(json!({"registry": host, "authfile": file}), |_| Ok(()))
}

pub fn logout(ctx: &mut Ctx, registry: &str) -> Result<()> {
    let reg = Registry::parse(registry)?;
    let host = reg.to_string();
    let file = creds::login_file(&ctx.sources())?;
    let removed = creds::remove(&file, &host)?;
    if removed {
        info!("removed credentials for {host} from {}", file.display());
    } else {
        warn!("no credentials for {host} in {}", file.display());
    }
    ctx.print(json!({"registry": host, "authfile": file, "removed": removed}), |_| Ok(()))
}
