//! `Http`: every call to one registry, made one after another.
//!
//! It owns the ureq agent (TLS through `tls`, no thread ever: connect and
//! read timeouts only) and the registry's `Auth`. A request goes through
//! three loops, innermost first: redirects (followed by hand, at most five,
//! `Authorization` kept only on the registry's own origin, never https to
//! http), authentication (a 401 escalates and the request is sent again),
//! and retries (network errors, 408, 429 and 5xx, with capped backoff).
//! Bodies are read by the caller: bounded for documents, streamed for blobs.

use std::cell::Cell;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::http::Response as UreqResponse;

use crate::auth::{Auth, Sent};
use crate::error::{Error, Kind, Result};
use crate::url::{self, Origin};
use crate::{debug, info, msg, verbose, warn};

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;
/// Most escalations for one request: enough for none → token → wider token.
const MAX_ESCALATIONS: usize = 4;
/// Longest wait for a 429's `Retry-After`.
const MAX_RETRY_AFTER: u64 = 60;
/// Largest error body read, in bytes.
pub const ERROR_LIMIT: u64 = 1 << 20;

/// Transport settings shared by every registry of a run.
pub struct Options {
    pub timeout: Duration,
    pub retries: u32,
    pub plain_http: bool,
    pub tls: std::sync::Arc<rustls::ClientConfig>,
}

/// What a request sends after its headers.
pub enum Body<'a> {
    None,
    /// Bytes in memory (manifests, empty upload requests): sent again on a
    /// retry, an escalation or a 307.
    Bytes(&'a [u8]),
    /// Exactly `len` bytes read from a stream (blob uploads), sent with
    /// `Content-Length`. It can be sent once only, so `Http` neither
    /// retries nor escalates nor follows redirects for it: the caller gets
    /// the first answer and starts a fresh upload session on failure.
    Stream {
        reader: Cell<Option<&'a mut dyn Read>>,
        len: u64,
    },
}

impl<'a> Body<'a> {
    /// A stream of exactly `len` bytes.
    pub fn stream(reader: &'a mut dyn Read, len: u64) -> Body<'a> {
        Body::Stream { reader: Cell::new(Some(reader)), len }
    }

    fn is_some(&self) -> bool {
        !matches!(self, Body::None)
    }

    fn is_stream(&self) -> bool {
        matches!(self, Body::Stream { .. })
    }
}

/// One request: method, absolute URL, the token scope it needs (several
/// scopes separated by spaces get one token), headers and a body.
pub struct Req<'a> {
    pub method: &'static str,
    pub url: String,
    pub scope: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body<'a>,
}

impl<'a> Req<'a> {
    pub fn new(method: &'static str, url: String, scope: impl Into<String>) -> Req<'a> {
        Req { method, url, scope: scope.into(), headers: Vec::new(), body: Body::None }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Req<'a> {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Body<'a>) -> Req<'a> {
        self.body = body;
        self
    }
}

/// A response whose body has not been read yet.
pub struct Response {
    pub status: u16,
    /// The URL that answered, after redirects.
    pub url: String,
    inner: UreqResponse<ureq::Body>,
}

impl Response {
    /// A header's value, when present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole body, refusing more than `limit` bytes.
    pub fn read(mut self, limit: u64, what: &str) -> Result<Vec<u8>> {
        read_body(self.inner.body_mut(), limit, what)
    }

    /// The body as an unbounded stream, for blobs: the caller bounds it
    /// (pull reads through a `LimitReader` at the descriptor's size).
    pub fn into_reader(self) -> ureq::BodyReader<'static> {
        self.inner.into_body().into_reader()
    }

    /// An error for an unexpected status, with the registry's own words.
    pub fn error(self, what: &str) -> Error {
        let status = self.status;
        let body = self.read(ERROR_LIMIT, "error body").unwrap_or_default();
        let kind = match status {
            401 | 403 | 404 => Kind::NotFound,
            _ => Kind::Failure,
        };
        Error::new(kind, format!("{what}: HTTP {status}{}", error_detail(&body)))
    }
}

/// The transport to one registry.
pub struct Http {
    agent: ureq::Agent,
    origin: Origin,
    base: String,
    retries: u32,
    plain_http: bool,
    auth: Auth,
    rate_limit_shown: bool,
}

impl Http {
    /// A transport to `host_port` (as in a reference) authorized by `auth`.
    pub fn new(
        host_port: &str,
        opts: &Options,
        auth_for: impl FnOnce(Origin) -> Result<Auth>,
    ) -> Result<Http> {
        let scheme = if opts.plain_http { "http" } else { "https" };
        let base = format!("{scheme}://{host_port}");
        let origin = Origin::of(&base)?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(ureq::Proxy::try_from_env())
            .timeout_connect(Some(opts.timeout))
            .timeout_per_read(Some(opts.timeout))
            .timeout_per_write(Some(opts.timeout))
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .accept("")
            .build();
        // DefaultResolver spawns a thread only when a resolve, per-call or
        // global timeout is set; none is.
        let agent = ureq::Agent::with_parts(
            config,
            crate::tls::connector(opts.tls.clone()),
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        let auth = auth_for(origin.clone())?;
        Ok(Http {
            agent,
            origin,
            base,
            retries: opts.retries,
            plain_http: opts.plain_http,
            auth,
            rate_limit_shown: false,
        })
    }

    /// `https://HOST:PORT` (or `http://` under `--plain-http`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `req`, retrying, escalating and following redirects; returns
    /// whatever final status the registry gave.
    pub fn send(&mut self, req: &Req) -> Result<Response> {
        let mut attempt = 0;
        loop {
            let outcome = self.send_authorized(req);
            let wait = match &outcome {
                Err(e) if e.transient => Some(backoff(attempt)),
                Ok(r) if r.status == 429 => Some(retry_after(r.header("retry-after"), attempt)),
                Ok(r) if r.status == 408 || (500..600).contains(&r.status) => {
                    Some(backoff(attempt))
                }
                _ => None,
            };
            let Some(wait) = wait else { return outcome };
            if req.body.is_stream() {
                // The stream is spent; the caller retries with a new one.
                return outcome;
            }
            if attempt >= self.retries {
                return match outcome {
                    Ok(r) if r.status == 429 => {
                        let e =
                            r.error(&format!("{} {}", req.method, url::without_query(&req.url)));
                        let e = Error { kind: Kind::Failure, ..e }.context("rate limit exceeded");
                        Err(if self.auth.anonymous() {
                            e.with_hint("the registry limits anonymous clients more: try --auth with credentials")
                        } else {
                            e.with_hint("wait and run again, or raise --retries")
                        })
                    }
                    Err(e) => {
                        Err(e.with_hint("check the network, or raise --retries or --timeout"))
                    }
                    other => other,
                };
            }
            attempt += 1;
            match &outcome {
                Ok(r) => warn!(
                    "{} {}: HTTP {}; retry {attempt} of {} in {:.1} s",
                    req.method,
                    url::without_query(&req.url),
                    r.status,
                    self.retries,
                    wait.as_secs_f64()
                ),
                Err(e) => warn!(
                    "{}; retry {attempt} of {} in {:.1} s",
                    e,
                    self.retries,
                    wait.as_secs_f64()
                ),
            }
            std::thread::sleep(wait);
        }
    }

    /// One attempt: the request with authorization, escalating on 401.
    fn send_authorized(&mut self, req: &Req) -> Result<Response> {
        let mut scope = req.scope.clone();
        for _ in 0..=MAX_ESCALATIONS {
            let (authorization, sent) = self.auth.header(&self.agent, &scope, self.plain_http)?;
            let response = self.send_following(req, authorization.as_deref(), sent)?;
            if response.status != 401 || req.body.is_stream() {
                return Ok(response);
            }
            let values: Vec<&str> = response
                .inner
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            match self.auth.escalate(&values, &scope, sent)? {
                Some(next) => scope = next,
                None => return Ok(response),
            }
        }
        Err(Error::not_found(format!(
            "{} {}: still unauthorized after {MAX_ESCALATIONS} attempts to authenticate",
            req.method,
            url::without_query(&req.url)
        )))
    }

    /// Sends and follows redirects by hand: the header goes only to the
    /// registry's own scheme, host and port.
    fn send_following(
        &mut self,
        req: &Req,
        authorization: Option<&str>,
        sent: Sent,
    ) -> Result<Response> {
        let mut target = req.url.clone();
        for hop in 0..=MAX_REDIRECTS {
            let here = Origin::of(&target)?;
            let auth_here = if here == self.origin { authorization } else { None };
            let response = self.send_raw(req, &target, auth_here, sent)?;
            let status = response.status().as_u16();
            if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                return Ok(Response { status, url: target, inner: response });
            }
            let Some(location) = response.headers().get("location").and_then(|v| v.to_str().ok())
            else {
                return Ok(Response { status, url: target, inner: response });
            };
            let next = url::resolve(&target, location)?;
            let there = Origin::of(&next)?;
            if here.https && !there.https {
                return Err(Error::failure(format!(
                    "{} {}: redirected from https to http ({}); refusing",
                    req.method,
                    url::without_query(&req.url),
                    msg::clean(url::without_query(&next), 200)
                )));
            }
            if req.body.is_stream() || (req.body.is_some() && !matches!(status, 307 | 308)) {
                return Err(Error::failure(format!(
                    "{} {}: HTTP {status} redirect of a request with a body",
                    req.method,
                    url::without_query(&req.url)
                )));
            }
            verbose!(
                "{} {}: HTTP {status} to {}{}",
                req.method,
                url::without_query(&target),
                msg::clean(url::without_query(&next), 200),
                if there != self.origin && authorization.is_some() {
                    " (without credentials)"
                } else {
                    ""
                }
            );
            if hop == MAX_REDIRECTS {
                break;
            }
            target = next;
        }
        Err(Error::failure(format!(
            "{} {}: more than {MAX_REDIRECTS} redirects",
            req.method,
            url::without_query(&req.url)
        )))
    }

    fn send_raw(
        &mut self,
        req: &Req,
        target: &str,
        authorization: Option<&str>,
        sent: Sent,
    ) -> Result<UreqResponse<ureq::Body>> {
        let mut builder = ureq::http::Request::builder().method(req.method).uri(target);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value.as_str());
        }
        if let Some(a) = authorization {
            builder = builder.header("Authorization", a);
        }
        debug!("> {} {}", req.method, url::without_query(target));
        for (name, value) in &req.headers {
            debug!(">   {name}: {}", msg::clean(value, 300));
        }
        if authorization.is_some() {
            debug!(
                ">   Authorization: {} <redacted>",
                match sent {
                    Sent::Basic => "Basic",
                    _ => "Bearer",
                }
            );
        }
        let what = || format!("{} {}", req.method, url::without_query(target));
        let result = match &req.body {
            Body::None => builder.body(()).map(|r| self.agent.run(r)),
            Body::Bytes(bytes) => builder.body(*bytes).map(|r| self.agent.run(r)),
            Body::Stream { reader, len } => {
                let Some(reader) = reader.take() else {
                    return Err(Error::failure(format!("{}: upload body already sent", what())));
                };
                // ureq sends exactly the length it is told, not chunked.
                builder
                    .header("Content-Length", len.to_string())
                    .body(ureq::SendBody::from_reader(reader))
                    .map(|r| self.agent.run(r))
            }
        };
        let response = result
            .map_err(|e| Error::failure(format!("{}: {e}", what())))?
            .map_err(|e| transport_error(e).context(what()))?;
        verbose!("{} → {}", what(), response.status().as_u16());
        for (name, value) in response.headers() {
            if name.as_str() != "set-cookie" {
                debug!("<   {name}: {}", msg::clean(value.to_str().unwrap_or("<binary>"), 300));
            }
        }
        self.rate_limit(&response);
        Ok(response)
    }

    /// Docker Hub's pull allowance, shown once per run.
    fn rate_limit(&mut self, response: &UreqResponse<ureq::Body>) {
        if self.rate_limit_shown {
            return;
        }
        let get = |n: &str| response.headers().get(n).and_then(|v| v.to_str().ok());
        let (Some(limit), Some(remaining)) = (get("ratelimit-limit"), get("ratelimit-remaining"))
        else {
            return;
        };
        self.rate_limit_shown = true;
        let number = |s: &str| s.split(';').next().unwrap_or("").trim().parse::<u64>().ok();
        let window = limit
            .split(';')
            .find_map(|p| p.trim().strip_prefix("w="))
            .and_then(|w| w.parse::<u64>().ok());
        let (Some(limit_n), Some(left)) = (number(limit), number(remaining)) else {
            warn!("cannot read the registry's rate limit headers");
            return;
        };
        let per = window.map_or(String::new(), |w| format!(" per {} hours", w as f64 / 3600.0));
        let source = match get("docker-ratelimit-source") {
            Some(s) if s.contains(['.', ':']) => " (counted by IP address)",
            Some(_) => " (counted by account)",
            None => "",
        };
        info!("registry rate limit: {left} of {limit_n} pulls left{per}{source}");
    }
}

/// A ureq failure as ferry's error: network and TLS failures are
/// `Kind::Network` (retried, then exit 5).
pub fn transport_error(e: ureq::Error) -> Error {
    match e {
        ureq::Error::BodyExceedsLimit(n) => Error::failure(format!("response larger than {n} bytes")),
        ureq::Error::BadUri(u) => Error::failure(format!("bad URL: {}", msg::clean(&u, 200))),
        ureq::Error::Timeout(t) => Error::network(format!("timed out ({t})")),
        // Trust failures do not pass by themselves: not retried.
        ureq::Error::Rustls(e) => Error::new(Kind::Network, format!("TLS: {}", msg::clean(&e.to_string(), 300)))
            .with_hint("give the registry's certificate or CA with --ca-cert FILE, or put it in /etc/containers/certs.d/HOST:PORT/"),
        ureq::Error::Tls(e) => Error::new(Kind::Network, format!("TLS: {e}")),
        other => Error::network(msg::clean(&other.to_string(), 300)),
    }
}

/// Reads a whole body of at most `limit` bytes.
pub fn read_body(body: &mut ureq::Body, limit: u64, what: &str) -> Result<Vec<u8>> {
    body.with_config().limit(limit).read_to_vec().map_err(|e| match e {
        ureq::Error::BodyExceedsLimit(_) => {
            Error::failure(format!("{what} larger than {limit} bytes"))
        }
        other => transport_error(other).context(format!("reading {what}")),
    })
}

/// `: CODE message` from a registry's JSON `errors[]`, cleaned for
/// printing; empty when the body says nothing readable.
pub fn error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Errors>(body) else {
        return String::new();
    };
    let parts: Vec<String> = parsed
        .errors
        .iter()
        .take(3)
        .map(|e| {
            let code = e.code.as_deref().unwrap_or("");
            let message = e.message.as_deref().unwrap_or("");
            msg::clean(&format!("{code} {message}"), 200)
        })
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() { String::new() } else { format!(": {}", parts.join("; ")) }
}

/// Exponential backoff from 0.5 s, capped at 10 s, with up to 50% jitter.
/// Pull waits this long before resuming a blob cut off mid-body.
pub fn backoff(attempt: u32) -> Duration {
    let base = (500u64 << attempt.min(5)).min(10_000);
    let mut r = [0u8; 2];
    let jitter = match getrandom::getrandom(&mut r) {
        Ok(()) => u64::from(u16::from_le_bytes(r)) * base / 2 / 65535,
        Err(_) => 0,
    };
    Duration::from_millis(base + jitter)
}

/// The wait a 429 asks for, in seconds or as an HTTP date, capped at a
/// minute; backoff when absent or unreadable.
fn retry_after(value: Option<&str>, attempt: u32) -> Duration {
    let Some(v) = value.map(str::trim) else { return backoff(attempt) };
    let secs = if let Ok(n) = v.parse::<u64>() {
        n
    } else if let Some(at) = parse_http_date(v) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        at.saturating_sub(now)
    } else {
        return backoff(attempt);
    };
    Duration::from_secs(secs.min(MAX_RETRY_AFTER))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<u64> {
    let mut parts = s.split_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| Some(*m) == parts.clone().next())? as u64
        + 1;
    parts.next();
    let year: u64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT"
        || !(1..=31).contains(&day)
        || year < 1970
        || h > 23
        || m > 59
        || sec > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + m * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"), Some(1835438400));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 CET"), None);
    }

    #[test]
    fn retry_after_is_capped() {
        assert_eq!(retry_after(Some("3"), 0), Duration::from_secs(3));
        assert_eq!(retry_after(Some("100000"), 0), Duration::from_secs(60));
        assert_eq!(retry_after(Some("Thu, 01 Jan 1970 00:00:00 GMT"), 0), Duration::ZERO);
        assert!(retry_after(Some("soon"), 0) >= Duration::from_millis(500));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert!(
            backoff(0) >= Duration::from_millis(500) && backoff(0) <= Duration::from_millis(750)
        );
        assert!(backoff(10) >= Duration::from_secs(10) && backoff(10) <= Duration::from_secs(15));
    }

    #[test]
    fn registry_errors() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest \u001b[31munknown"}]}"#;
        assert_eq!(error_detail(body), ": MANIFEST_UNKNOWN manifest  [31munknown");
        assert_eq!(error_detail(b"<html>"), "");
    }
}
