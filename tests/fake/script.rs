//! What the fake registry answers: scripted responses, including broken
//! transports, and `Routes`, a rule list matched by method and path.
//!
//! A script is any `Fn(&Request) -> Response`; `Routes` is the usual one.
//! Rules are tried in order after the guards; a rule answers with a fixed
//! response, a sequence (the last one repeats), or a closure that also gets
//! how many times the rule matched before. Unmatched requests get a
//! registry-style 404 so a missing rule shows up as "not found".

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::Request;

/// How a response leaves the fake: normally, or broken on purpose.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Headers with Content-Length, then the body; the connection stays open.
    Normal,
    /// Headers with the full Content-Length, then only N body bytes, then close.
    CloseAfter(usize),
    /// Headers, then silence for the duration, then the body and close.
    StallAfterHeaders(Duration),
    /// No Content-Length: the body ends when the connection closes.
    CloseDelimited,
    /// `Transfer-Encoding: chunked`, 8 KiB chunks, properly terminated.
    Chunked,
    /// Chunked, but the last (zero) chunk never comes; then close.
    ChunkedTruncated,
    /// These bytes instead of an HTTP response, then close.
    Raw(Vec<u8>),
    /// Close the connection without answering at all.
    Drop,
}

/// One scripted answer. For HEAD the body is not sent but still sets the
/// Content-Length, so one response serves GET and HEAD alike.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Sleep before answering (a slow registry, a token outliving its life).
    pub delay: Option<Duration>,
    /// Send `Connection: close` and close after this response.
    pub close: bool,
    pub behaviour: Behaviour,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
            close: false,
            behaviour: Behaviour::Normal,
        }
    }

    pub fn ok() -> Response {
        Response::new(200)
    }

    /// A redirect with `Location: location` (absolute or relative).
    pub fn redirect(status: u16, location: &str) -> Response {
        Response::new(status).header("Location", location)
    }

    /// 401 with one `WWW-Authenticate` header per given value (none when
    /// `values` is empty), and a registry UNAUTHORIZED body.
    pub fn unauthorized(values: &[&str]) -> Response {
        let mut r = Response::errors(401, "UNAUTHORIZED", "authentication required");
        for v in values {
            r = r.header("WWW-Authenticate", v);
        }
        r
    }

    /// A registry error document `{"errors":[{"code","message"}]}`.
    pub fn errors(status: u16, code: &str, message: &str) -> Response {
        Response::new(status).json(&serde_json::json!({
            "errors": [{"code": code, "message": message, "detail": null}]
        }))
    }

    /// A token endpoint's reply: `{"token": T, "expires_in": S}`.
    pub fn token(token: &str, expires_in: Option<u64>) -> Response {
        let mut doc = serde_json::json!({ "token": token });
        if let Some(s) = expires_in {
            doc["expires_in"] = s.into();
        }
        Response::ok().json(&doc)
    }

    /// A raw byte answer instead of HTTP (garbage, a half status line).
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Response {
        Response::new(0).behaviour(Behaviour::Raw(bytes.into()))
    }

    /// Closes the connection without an answer.
    pub fn drop_connection() -> Response {
        Response::new(0).behaviour(Behaviour::Drop)
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// The body is `doc` as JSON, with `Content-Type: application/json`.
    pub fn json(self, doc: &serde_json::Value) -> Response {
        self.header("Content-Type", "application/json").body(doc.to_string())
    }

    pub fn delay(mut self, d: Duration) -> Response {
        self.delay = Some(d);
        self
    }

    pub fn close(mut self) -> Response {
        self.close = true;
        self
    }

    pub fn behaviour(mut self, b: Behaviour) -> Response {
        self.behaviour = b;
        self
    }

    /// Sends the headers and only `n` bytes of the body, then closes.
    pub fn close_after(self, n: usize) -> Response {
        self.behaviour(Behaviour::CloseAfter(n))
    }

    /// Sends the headers, then nothing for `d`.
    pub fn stall(self, d: Duration) -> Response {
        self.behaviour(Behaviour::StallAfterHeaders(d))
    }
}

type Answerer = Box<dyn Fn(&Request, usize) -> Response + Send + Sync>;
type Guard = Box<dyn Fn(&Request) -> Option<Response> + Send + Sync>;

struct Rule {
    methods: Vec<String>,
    pattern: String,
    answer: Answerer,
    hits: AtomicUsize,
}

impl Rule {
    fn matches(&self, req: &Request) -> bool {
        let method_ok = self.methods.iter().any(|m| m == "*" || *m == req.method);
        // A pattern with `?` is matched against path and query, else the path.
        let subject = if self.pattern.contains('?') { &req.target } else { &req.path };
        let path_ok = match self.pattern.strip_suffix('*') {
            Some(prefix) => subject.starts_with(prefix),
            None => *subject == self.pattern,
        };
        method_ok && path_ok
    }
}

/// A script made of guards and rules.
///
/// `method` is `"GET"`, several joined by `|` (`"GET|HEAD"`), or `"*"`.
/// `pattern` is an exact path (`/v2/a/manifests/t`), a path with a trailing
/// `*` for a prefix, or, when it contains `?`, an exact path and query.
#[derive(Default)]
pub struct Routes {
    guards: Vec<Guard>,
    rules: Vec<Rule>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Always answers `resp` when the rule matches.
    pub fn on(self, method: &str, pattern: &str, resp: Response) -> Routes {
        self.handle(method, pattern, move |_, _| resp.clone())
    }

    /// Answers the responses in order; the last one repeats.
    pub fn seq(self, method: &str, pattern: &str, resps: Vec<Response>) -> Routes {
        assert!(!resps.is_empty(), "seq needs at least one response");
        self.handle(method, pattern, move |_, n| resps[n.min(resps.len() - 1)].clone())
    }

    /// Answers with `f(request, times this rule matched before)`.
    pub fn handle<F>(mut self, method: &str, pattern: &str, f: F) -> Routes
    where
        F: Fn(&Request, usize) -> Response + Send + Sync + 'static,
    {
        self.rules.push(Rule {
            methods: method.split('|').map(str::to_string).collect(),
            pattern: pattern.to_string(),
            answer: Box::new(f),
            hits: AtomicUsize::new(0),
        });
        self
    }

    /// Runs before every rule; `Some` answers the request instead of the
    /// rules (an auth check that refuses without a valid Authorization).
    pub fn guard<F>(mut self, f: F) -> Routes
    where
        F: Fn(&Request) -> Option<Response> + Send + Sync + 'static,
    {
        self.guards.push(Box::new(f));
        self
    }

    /// Serves an image: its manifest by tag and by digest (GET and HEAD, with
    /// Content-Type and Docker-Content-Digest) and its blobs.
    pub fn image(self, repo: &str, tag: &str, image: &super::Image) -> Routes {
        let manifest = image.manifest_response();
        let mut routes = self
            .on("GET|HEAD", &format!("/v2/{repo}/manifests/{tag}"), manifest.clone())
            .on("GET|HEAD", &format!("/v2/{repo}/manifests/{}", image.digest), manifest);
        for (digest, bytes) in image.blobs() {
            let resp = Response::ok()
                .header("Content-Type", "application/octet-stream")
                .header("Docker-Content-Digest", &digest)
                .body(bytes);
            routes = routes.on("GET|HEAD", &format!("/v2/{repo}/blobs/{digest}"), resp);
        }
        routes
    }

    /// Answers one request; shared so the server can hold it behind an Arc.
    pub fn answer(&self, req: &Request) -> Response {
        for g in &self.guards {
            if let Some(resp) = g(req) {
                return resp;
            }
        }
        for rule in &self.rules {
            if rule.matches(req) {
                let n = rule.hits.fetch_add(1, Ordering::SeqCst);
                return (rule.answer)(req, n);
            }
        }
        not_found(req)
    }

    pub fn into_handler(self) -> Handler {
        let routes = Arc::new(self);
        Arc::new(move |req: &Request| routes.answer(req))
    }
}

/// The script behind a running fake.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// The answer to anything the script does not know: what a registry says
/// for an unknown name (manifests, blobs) or an unknown endpoint.
pub fn not_found(req: &Request) -> Response {
    if req.path.contains("/manifests/") {
        Response::errors(404, "MANIFEST_UNKNOWN", "manifest unknown")
    } else if req.path.contains("/blobs/") {
        Response::errors(404, "BLOB_UNKNOWN", "blob unknown to registry")
    } else {
        Response::errors(404, "NAME_UNKNOWN", "repository name not known to registry")
    }
}
