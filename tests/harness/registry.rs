//! The real registry as a test fixture: Debian's `docker-registry`.
//!
//! Each [`Registry`] is a `docker-registry serve` process of its own on
//! 127.0.0.1 with a free port, TLS with the harness' self-signed server
//! certificate, storage in a temporary directory (deletes enabled unless
//! `Options::deletes` is false), and
//! one kind of auth: none, htpasswd Basic, or token auth backed by a
//! [`TokenServer`] started with it. The process is killed on drop. Its
//! output, which holds the access log, goes to a file tests can count
//! requests in. The registry reads its storage directory afresh on every
//! request, so tests may add repositories and tags there directly, which
//! is far faster than pushing hundreds of them.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::certs::certs;
use super::token::{ISSUER, SERVICE, TokenServer};
use super::{PASSWORD, USERNAME};
use crate::common::require_tool;

/// The kind of authentication a registry demands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone may pull and push.
    None,
    /// htpasswd Basic auth with [`USERNAME`] / [`PASSWORD`].
    Basic,
    /// Token auth: the registry sends clients to the harness' token server.
    Token,
}

/// How to start a registry beyond its auth; `Options::new(auth)` gives
/// the plain set-up [`Registry::start`] uses.
#[derive(Clone, Debug)]
pub struct Options {
    pub auth: Auth,
    /// Seconds the token server's tokens live (token auth only). The
    /// registry allows 60 s of leeway past `exp` on its side.
    pub token_expiry: u64,
    /// `middleware.storage` `redirect` with this `baseurl`: blob GETs and
    /// HEADs answer 307 to `SCHEME://HOST[:PORT]/docker/registry/v2/blobs/
    /// sha256/XX/HEX/data` (the registry keeps only scheme and host of the
    /// URL), a real cross-host redirect; a server there can answer from
    /// [`Registry::storage`]. Pushes still work.
    pub redirect_baseurl: Option<String>,
    /// `http.relativeurls: true`: upload `Location` headers are relative.
    pub relative_urls: bool,
    /// `storage.delete.enabled`; when false, manifest DELETE gets 405.
    pub deletes: bool,
}

impl Options {
    pub fn new(auth: Auth) -> Options {
        Options {
            auth,
            token_expiry: 300,
            redirect_baseurl: None,
            relative_urls: false,
            deletes: true,
        }
    }
}

/// A running registry; killed when dropped.
pub struct Registry {
    child: Child,
    port: u16,
    auth: Auth,
    dir: tempfile::TempDir,
    log: PathBuf,
    token: Option<TokenServer>,
}

impl Registry {
    /// Starts a registry with `auth`, waiting until `/v2/` answers.
    pub fn start(auth: Auth) -> Registry {
        Registry::start_with(Options::new(auth))
    }

    /// Starts a registry set up as `opts` says.
    pub fn start_with(opts: Options) -> Registry {
        require_tool("docker-registry", "docker-registry");
        let auth = opts.auth;
        let dir = tempfile::Builder::new().prefix("ferry-registry-").tempdir().expect("temp dir");
        let token =
            (auth == Auth::Token).then(|| TokenServer::start_with_expiry(opts.token_expiry));
        if auth == Auth::Basic {
            write_htpasswd(&dir.path().join("htpasswd"));
        }

        // A port taken between our probe and the registry's bind makes the
        // registry exit at once; then we try another.
        let mut last_log = String::new();
        for attempt in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(&config, config_yaml(dir.path(), port, &opts, token.as_ref()))
                .expect("write registry config");
            let log = dir.path().join(format!("registry-{attempt}.log"));
            let out = fs::File::create(&log).expect("registry log");
            let err = out.try_clone().expect("clone log handle");
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("start docker-registry");
            if wait_ready(&mut child, port) {
                return Registry { child, port, auth, dir, log, token };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("docker-registry did not start:\n{last_log}");
    }

    /// `127.0.0.1:PORT`, the registry part of references to it.
    pub fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/PATH` for a repository.
    pub fn repo(&self, path: &str) -> String {
        format!("127.0.0.1:{}/{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn auth(&self) -> Auth {
        self.auth
    }

    /// The certificate to give `ferry --ca-cert` (the server's own,
    /// self-signed, CA:TRUE).
    pub fn ca_cert(&self) -> &'static Path {
        &certs().server_cert
    }

    /// A directory holding `ca.crt`, for skopeo's `--*-cert-dir`.
    pub fn cert_dir(&self) -> &'static Path {
        &certs().cert_dir
    }

    /// `user:pass` for skopeo when the registry wants credentials.
    pub fn creds(&self) -> Option<String> {
        (self.auth != Auth::None).then(|| format!("{USERNAME}:{PASSWORD}"))
    }

    /// The token server of a token-auth registry.
    pub fn token_server(&self) -> &TokenServer {
        self.token.as_ref().expect("registry started with Auth::Token")
    }

    /// Everything the registry wrote so far (access log included).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Access log lines containing `pattern`, e.g. `"GET /v2/a/b/blobs/"`.
    /// Only the access log has `METHOD /path`; the registry's own lines
    /// spell the method as `http.request.method=GET`.
    pub fn count_requests(&self, pattern: &str) -> usize {
        self.log().lines().filter(|l| l.contains(pattern)).count()
    }

    /// Blob GETs for `repo` so far.
    pub fn blob_gets(&self, repo: &str) -> usize {
        self.count_requests(&format!("\"GET /v2/{repo}/blobs/"))
    }

    /// The storage root (`docker/registry/v2/…` lies below it).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn repositories(&self) -> PathBuf {
        self.storage().join("docker/registry/v2/repositories")
    }

    /// Makes repository `to` a copy of `from` directly in storage (links
    /// only; blobs are shared), so a test can have hundreds of
    /// repositories without pushing each.
    pub fn copy_repo(&self, from: &str, to: &str) {
        let src = self.repositories().join(from);
        let dst = self.repositories().join(to);
        assert!(src.is_dir(), "no repository {from} in storage");
        copy_dir(&src, &dst);
    }

    /// Adds tag `to` naming the same manifest as tag `from`, in storage.
    pub fn copy_tag(&self, repo: &str, from: &str, to: &str) {
        let tags = self.repositories().join(repo).join("_manifests/tags");
        assert!(tags.join(from).is_dir(), "no tag {repo}:{from} in storage");
        copy_dir(&tags.join(from), &tags.join(to));
    }

    /// A raw GET on the registry, verification off (the harness knows
    /// whom it talks to). `authorization` is sent as is. Returns the
    /// status, the headers (names lowercase) and the body.
    pub fn get(&self, path: &str, authorization: Option<&str>) -> Response {
        get(&format!("https://127.0.0.1:{}{path}", self.port), authorization)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`Registry::get`] returns.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// Every manifest type, so the registry serves what it holds as is.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// A GET with verification off and statuses as values, not errors; it
/// accepts every manifest type.
pub fn get(url: &str, authorization: Option<&str>) -> Response {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().disable_verification(true).build())
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut req = agent.get(url).header("Accept", ACCEPT);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let mut resp = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = resp.body_mut().read_to_vec().unwrap_or_default();
    Response { status, headers, body }
}

/// Polls until `/v2/` answers (any status) or the process has exited.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().disable_verification(true).build())
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .into();
    let url = format!("https://127.0.0.1:{port}/v2/");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(resp) = agent.get(&url).call() {
            // Another process that took the port would not speak the
            // registry API; ours sets this header on every answer.
            if resp.headers().contains_key("docker-distribution-api-version") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

fn write_htpasswd(file: &Path) {
    require_tool("htpasswd", "apache2-utils");
    let out =
        Command::new("htpasswd").args(["-Bbn", USERNAME, PASSWORD]).output().expect("run htpasswd");
    assert!(out.status.success(), "htpasswd: {}", String::from_utf8_lossy(&out.stderr));
    fs::write(file, out.stdout).expect("write htpasswd");
}

fn config_yaml(dir: &Path, port: u16, opts: &Options, token: Option<&TokenServer>) -> String {
    let c = certs();
    let middleware = match &opts.redirect_baseurl {
        Some(url) => format!(
            "middleware:\n  storage:\n    - name: redirect\n      options:\n        \
             baseurl: {url}\n"
        ),
        None => String::new(),
    };
    let relative = if opts.relative_urls { "  relativeurls: true\n" } else { "" };
    let auth = match opts.auth {
        Auth::None => String::new(),
        Auth::Basic => format!(
            "auth:\n  htpasswd:\n    realm: ferry-test\n    path: {}\n",
            dir.join("htpasswd").display()
        ),
        Auth::Token => {
            let t = token.expect("token server for token auth");
            format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    \
                 rootcertbundle: {}\n",
                t.realm(),
                c.signing_cert.display()
            )
        }
    };
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: {deletes}\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         {middleware}\
         http:\n  addr: 127.0.0.1:{port}\n  secret: ferry-test-secret\n{relative}\
         \x20 tls:\n    certificate: {cert}\n    key: {key}\n\
         {auth}",
        storage = dir.join("storage").display(),
        deletes = opts.deletes,
        cert = c.server_cert.display(),
        key = c.server_key.display(),
    )
}

fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir");
    for entry in fs::read_dir(src).expect("read dir") {
        let entry = entry.expect("dir entry");
        let to = dst.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).expect("copy file");
        }
    }
}
