//! Authentication state for one registry: escalation, credentials, tokens.
//!
//! A run starts with no authorization. When the registry answers 401, `Http`
//! hands the parsed challenges to `Auth::escalate`, which moves one step up
//! the ladder the seed used and says whether a retry makes sense:
//!
//! - anonymous mode (the default): anonymous Bearer tokens only;
//! - authenticated mode (`--auth`, `FERRY_AUTH=yes`, or credentials given or
//!   found for the host): Basic, or Bearer tokens asked for with credentials.
//!   When the credentials would have to be prompted for, an anonymous token
//!   is tried first and the prompt comes only when that token is refused.
//!
//! Tokens are cached per realm, service and scope for the run and renewed
//! when `expires_in` has passed or the registry refuses them. This module
//! never prints a secret; `describe` functions show what is safe to log.

use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;

use crate::challenge::{self, Challenge};
use crate::creds::{self, Creds};
use crate::error::{Error, Kind, Result};
use crate::url::{self, Origin};
use crate::{debug, msg, verbose};

/// Largest token reply read, in bytes.
const TOKEN_LIMIT: u64 = 1 << 20;
/// Lifetime assumed when a token reply names none (the token spec's default).
const DEFAULT_EXPIRY: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Anonymous,
    Authenticated,
}

/// What authorization a request carried, so a 401 can be judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Nothing,
    Basic,
    /// A Bearer token; `fresh` when it was fetched for this very request.
    Token {
        with_creds: bool,
        fresh: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Scheme {
    None,
    Basic,
    Bearer { realm: String, service: Option<String> },
}

struct Token {
    realm: String,
    service: Option<String>,
    scope: String,
    value: String,
    expires: Instant,
    with_creds: bool,
}

/// The authorization state of one registry for the length of a run.
pub struct Auth {
    mode: Mode,
    /// `host[:port]` as credentials are looked up.
    host: String,
    origin: Origin,
    sources: creds::Sources,
    /// Forget credentials after each use (`--password-many`).
    forget: bool,
    creds: Option<Creds>,
    /// Whether credentials exist without asking anybody (None: not looked).
    found: Option<bool>,
    /// Bearer tokens are asked for with credentials from now on.
    want_creds: bool,
    scheme: Scheme,
    tokens: Vec<Token>,
}

impl Auth {
    pub fn new(
        host: String,
        origin: Origin,
        sources: creds::Sources,
        force_auth: bool,
        forget: bool,
    ) -> Result<Auth> {
        let mut auth = Auth {
            mode: Mode::Anonymous,
            host,
            origin,
            sources,
            forget,
            creds: None,
            found: None,
            want_creds: false,
            scheme: Scheme::None,
            tokens: Vec::new(),
        };
        let found = auth.creds_found()?;
        // A user name alone is credentials given: the password is asked for.
        let named = auth.sources.username.is_some();
        if force_auth || found || named {
            auth.mode = Mode::Authenticated;
            auth.want_creds = found;
        }
        verbose!(
            "auth: {} mode for {}{}",
            if auth.mode == Mode::Anonymous { "anonymous" } else { "authenticated" },
            auth.host,
            if found { " (credentials found)" } else { "" }
        );
        Ok(auth)
    }

    /// True when the registry was only ever reached anonymously.
    pub fn anonymous(&self) -> bool {
        self.mode == Mode::Anonymous
    }

    /// Looks for credentials that need no prompt, once.
    fn creds_found(&mut self) -> Result<bool> {
        if let Some(found) = self.found {
            return Ok(found);
        }
        let found = match creds::find(&self.sources, &self.host)? {
            Some((creds, origin)) => {
                verbose!("auth: credentials for {} from {origin}", self.host);
                if !self.forget {
                    self.creds = Some(creds);
                }
                true
            }
            None => false,
        };
        self.found = Some(found);
        Ok(found)
    }

    /// The credentials, found or prompted for; forgotten after use under
    /// `--password-many`.
    fn credentials(&mut self) -> Result<Creds> {
        if let Some(c) = &self.creds {
            return Ok(c.clone());
        }
        let creds = match creds::find(&self.sources, &self.host)? {
            Some((c, _)) => c,
            None => creds::prompt(&self.host, self.sources.username.as_deref())?,
        };
        if !self.forget {
            self.creds = Some(creds.clone());
        }
        Ok(creds)
    }

    /// The `Authorization` value for a request needing `scope`, fetching a
    /// token when the registry uses Bearer and none is cached.
    pub fn header(
        &mut self,
        agent: &ureq::Agent,
        scope: &str,
        plain_http: bool,
    ) -> Result<(Option<String>, Sent)> {
        match self.scheme.clone() {
            Scheme::None => Ok((None, Sent::Nothing)),
            Scheme::Basic => {
                let c = self.credentials()?;
                Ok((Some(basic(&c)), Sent::Basic))
            }
            Scheme::Bearer { realm, service } => {
                let now = Instant::now();
                self.tokens.retain(|t| t.expires > now);
                if let Some(t) = self.tokens.iter().find(|t| {
                    t.realm == realm
                        && t.service == service
                        && t.scope == scope
                        && (t.with_creds || !self.want_creds)
                }) {
                    let sent = Sent::Token { with_creds: t.with_creds, fresh: false };
                    return Ok((Some(format!("Bearer {}", t.value)), sent));
                }
                let mut token =
                    self.fetch_token(agent, &realm, service.as_deref(), scope, plain_http)?;
                if token.is_none() && !self.want_creds && self.mode == Mode::Authenticated {
                    verbose!("auth: anonymous token refused; asking with credentials");
                    self.want_creds = true;
                    token =
                        self.fetch_token(agent, &realm, service.as_deref(), scope, plain_http)?;
                }
                let Some(token) = token else {
                    // An anonymous token was refused: not authorized.
                    return Err(not_authorized(&self.host, self.mode));
                };
                let with_creds = token.with_creds;
                let header = format!("Bearer {}", token.value);
                self.tokens.push(token);
                Ok((Some(header), Sent::Token { with_creds, fresh: true }))
            }
        }
    }

    /// Reacts to a 401 whose `WWW-Authenticate` values are `values`. Returns
    /// the scope to ask for next when a retry makes sense, None when the
    /// caller should treat the 401 as "not found or not authorized".
    pub fn escalate(&mut self, values: &[&str], scope: &str, sent: Sent) -> Result<Option<String>> {
        let challenges = challenge::parse(values);
        if challenges.is_empty() {
            return Err(Error::new(
                Kind::NotFound,
                format!("{}: HTTP 401 without a usable WWW-Authenticate challenge", self.host),
            ));
        }
        let bearer = challenges.iter().find(|c| c.scheme == "bearer");
        let basic_c = challenges.iter().find(|c| c.scheme == "basic");
        if let Some(c) = bearer {
            return self.escalate_bearer(c, scope, sent);
        }
        if basic_c.is_some() {
            return self.escalate_basic(scope, sent);
        }
        let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        Err(Error::failure(format!(
            "{}: registry asks for unsupported authentication: {}",
            self.host,
            msg::clean(&schemes.join(", "), 100)
        )))
    }

    fn escalate_basic(&mut self, scope: &str, sent: Sent) -> Result<Option<String>> {
        if sent == Sent::Basic {
            self.creds = None;
            return Err(rejected(&self.host));
        }
        if self.mode == Mode::Anonymous {
            verbose!("auth: registry asks for Basic credentials; anonymous mode");
            return Ok(None);
        }
        verbose!("auth: escalating to Basic");
        self.scheme = Scheme::Basic;
        Ok(Some(scope.to_string()))
    }

    fn escalate_bearer(
        &mut self,
        c: &Challenge,
        scope: &str,
        sent: Sent,
    ) -> Result<Option<String>> {
        let Some(realm) = c.param("realm").filter(|r| !r.is_empty()) else {
            return Err(Error::failure(format!("{}: Bearer challenge without a realm", self.host)));
        };
        let scheme = Scheme::Bearer {
            realm: realm.to_string(),
            service: c.param("service").map(str::to_string),
        };
        // A challenge naming its scope knows best what the request needs.
        let scope = c.param("scope").filter(|s| !s.is_empty()).unwrap_or(scope).to_string();
        let changed = self.scheme != scheme;
        self.scheme = scheme;
        match sent {
            Sent::Nothing | Sent::Basic => {
                verbose!(
                    "auth: escalating to Bearer ({})",
                    if self.want_creds { "with credentials" } else { "anonymous" }
                );
                Ok(Some(scope))
            }
            Sent::Token { fresh: false, .. } => {
                verbose!("auth: token refused or expired; renewing");
                self.tokens.clear();
                Ok(Some(scope))
            }
            Sent::Token { fresh: true, .. } if changed => Ok(Some(scope)),
            Sent::Token { with_creds: false, fresh: true } if self.mode == Mode::Authenticated => {
                verbose!("auth: anonymous token not enough; escalating to Bearer with credentials");
                self.want_creds = true;
                Ok(Some(scope))
            }
            Sent::Token { .. } => Ok(None),
        }
    }

    /// GETs a token from `realm`. Ok(None) when an anonymous request is
    /// refused; a refusal with credentials is `Kind::Credentials`.
    fn fetch_token(
        &mut self,
        agent: &ureq::Agent,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        plain_http: bool,
    ) -> Result<Option<Token>> {
        let realm_origin = Origin::of(realm).map_err(|e| e.context("token realm"))?;
        if !realm_origin.https && !plain_http {
            return Err(Error::failure(format!(
                "{}: token realm {} is plain http; refusing to ask it for a token",
                self.host,
                msg::clean(url::without_query(realm), 200)
            ))
            .with_hint("a registry reached over https must hand out tokens over https"));
        }
        // Over plain http (the user's choice) credentials may only go back
        // to the registry's own host.
        let creds_ok = realm_origin.https || realm_origin.same_host(&self.origin);
        let creds = if self.want_creds {
            if !creds_ok {
                return Err(Error::failure(format!(
                    "{}: not sending credentials to plain-http token realm on {}",
                    self.host, realm_origin.host
                )));
            }
            Some(self.credentials()?)
        } else {
            None
        };

        let mut target = realm.to_string();
        if let Some(s) = service {
            target = url::append_query(&target, "service", s);
        }
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            target = url::append_query(&target, "scope", s);
        }
        verbose!(
            "auth: GET {} for scope {scope}{}",
            url::without_query(&target),
            if creds.is_some() { " with credentials" } else { " anonymously" }
        );

        let mut response = get_token(agent, &target, creds.as_ref())?;
        let status = response.status().as_u16();
        debug!("auth: token server answered {status}");
        if status == 401 || status == 403 {
            if creds.is_some() {
                self.creds = None;
                return Err(rejected(&self.host));
            }
            return Ok(None);
        }
        let body = read_limited(&mut response, TOKEN_LIMIT, "token reply")?;
        if status != 200 {
            return Err(Error::failure(format!(
                "{}: token server answered HTTP {status}{}",
                self.host,
                crate::http::error_detail(&body)
            )));
        }
        let reply =
            parse_reply(&body).map_err(|e| e.context(format!("{}: token reply", self.host)))?;
        Ok(Some(Token {
            realm: realm.to_string(),
            service: service.map(str::to_string),
            scope: scope.to_string(),
            value: reply.0,
            expires: Instant::now() + Duration::from_secs(reply.1),
            with_creds: creds.is_some(),
        }))
    }
}

/// One token GET: redirects are not followed when credentials are attached;
/// without them, at most five, never from https to http.
fn get_token(
    agent: &ureq::Agent,
    target: &str,
    creds: Option<&Creds>,
) -> Result<ureq::http::Response<ureq::Body>> {
    let mut target = target.to_string();
    for _ in 0..=5 {
        let mut req = ureq::http::Request::get(&target);
        if let Some(c) = creds {
            req = req.header("Authorization", basic(c));
        }
        let req = req.body(()).map_err(|e| Error::failure(format!("token request: {e}")))?;
        let response = agent.run(req).map_err(|e| {
            crate::http::transport_error(e)
                .context(format!("token request to {}", url::without_query(&target)))
        })?;
        if !response.status().is_redirection() {
            return Ok(response);
        }
        if creds.is_some() {
            return Err(Error::failure(format!(
                "token server {} redirected a request carrying credentials; not following",
                url::without_query(&target)
            )));
        }
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::failure("token server redirected without a Location"))?;
        let next = url::resolve(&target, location)?;
        if Origin::of(&target)?.https && !Origin::of(&next)?.https {
            return Err(Error::failure("token server redirected from https to http; refusing"));
        }
        target = next;
    }
    Err(Error::failure("token server redirected too many times"))
}

fn read_limited(
    response: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>> {
    crate::http::read_body(response.body_mut(), limit, what)
}

#[derive(Deserialize)]
struct Reply {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<i64>,
}

/// The token and its lifetime in seconds from a token server's JSON reply.
fn parse_reply(body: &[u8]) -> Result<(String, u64)> {
    let reply: Reply = serde_json::from_slice(body)
        .map_err(|e| Error::failure(format!("not the JSON a token server sends: {e}")))?;
    let token = reply
        .token
        .filter(|t| !t.is_empty())
        .or(reply.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| Error::failure("neither \"token\" nor \"access_token\" in it"))?;
    // A token goes into a header: refuse anything that could split it.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::failure("the token holds characters a header cannot carry"));
    }
    let expires = match reply.expires_in {
        Some(n) if n > 0 => n as u64,
        _ => DEFAULT_EXPIRY,
    };
    Ok((token, expires))
}

/// `Basic base64(user:password)`.
fn basic(c: &Creds) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

fn rejected(host: &str) -> Error {
    Error::new(Kind::Credentials, format!("{host}: credentials rejected"))
        .with_hint(format!("check the user name and password, or run `ferry login {host}`"))
}

fn not_authorized(host: &str, mode: Mode) -> Error {
    let e = Error::not_found(format!("{host}: not found or not authorized"));
    if mode == Mode::Anonymous {
        e.with_hint("anonymous access was refused; try --auth or give credentials")
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_replies() {
        assert_eq!(
            parse_reply(br#"{"token":"abc","expires_in":300}"#).unwrap(),
            ("abc".into(), 300)
        );
        assert_eq!(parse_reply(br#"{"access_token":"xyz"}"#).unwrap(), ("xyz".into(), 60));
        assert_eq!(parse_reply(br#"{"token":"a","expires_in":0}"#).unwrap().1, 60);
        assert_eq!(parse_reply(br#"{"token":"","access_token":"b"}"#).unwrap().0, "b");
        assert!(parse_reply(br#"{"expires_in":3}"#).is_err());
        assert!(parse_reply(b"").is_err());
        assert!(parse_reply(b"<html>").is_err());
        assert!(parse_reply(br#"{"token":"a\r\nX-Injected: 1"}"#).is_err());
    }

    #[test]
    fn basic_header() {
        let c = Creds { username: "u".into(), password: "p:w".into() };
        assert_eq!(basic(&c), "Basic dTpwOnc=");
    }
}
