//! Auth pieces for scripts: a token issuer with lifetimes, challenge
//! strings, and Basic values, so auth scripts stay a few lines each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::Request;

/// Issues Bearer tokens `tok-N-<secret>` and checks them. Every token has
/// the same lifetime; a token older than that is refused.
pub struct Tokens {
    issued: Mutex<Vec<(String, Instant)>>,
    life: Duration,
}

/// Part of every token so `-vv` leak checks have something to look for.
pub const TOKEN_SECRET: &str = "s3cr3t-t0k3n";

impl Tokens {
    pub fn new(life: Duration) -> Tokens {
        Tokens { issued: Mutex::new(Vec::new()), life }
    }

    /// Tokens that never expire during a test.
    pub fn forever() -> Tokens {
        Tokens::new(Duration::from_secs(3600))
    }

    pub fn issue(&self) -> String {
        let mut issued = self.issued.lock().unwrap();
        let token = format!("tok-{}-{TOKEN_SECRET}", issued.len() + 1);
        issued.push((token.clone(), Instant::now()));
        token
    }

    /// Whether `req` carries `Authorization: Bearer T` with a live token.
    pub fn accepts(&self, req: &Request) -> bool {
        let Some(t) = req.authorization().and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        let issued = self.issued.lock().unwrap();
        issued.iter().any(|(tok, at)| tok == t && at.elapsed() < self.life)
    }

    /// How many tokens were issued.
    pub fn count(&self) -> usize {
        self.issued.lock().unwrap().len()
    }

    /// Every token issued, for leak checks.
    pub fn all(&self) -> Vec<String> {
        self.issued.lock().unwrap().iter().map(|(t, _)| t.clone()).collect()
    }
}

/// `Bearer realm="REALM",service="SERVICE",scope="SCOPE"` with `"` and `\`
/// escaped as RFC 9110 quoted strings require.
pub fn bearer_challenge(realm: &str, service: &str, scope: &str) -> String {
    format!("Bearer realm={},service={},scope={}", quote(realm), quote(service), quote(scope))
}

pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `Basic base64(USER:PASS)`.
pub fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", basic_value(user, pass))
}

/// The base64 part of a Basic header, for leak checks.
pub fn basic_value(user: &str, pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

impl super::Routes {
    /// Refuses every `/v2/…` request without a live token from `tokens` with
    /// 401 and `challenge` (a realistic registry: `/v2/` itself gets the
    /// challenge without its `scope` parameter).
    pub fn require_bearer(self, tokens: Arc<Tokens>, challenge: &str) -> super::Routes {
        let challenge = challenge.to_string();
        self.guard(move |r| {
            if !r.path.starts_with("/v2/") || tokens.accepts(r) {
                return None;
            }
            let c = if r.path == "/v2/" { without_scope(&challenge) } else { challenge.clone() };
            Some(super::Response::unauthorized(&[&c]))
        })
    }

    /// Refuses every `/v2/…` request without `Basic USER:PASS` with 401 and
    /// the given challenges (one `WWW-Authenticate` header each).
    pub fn require_basic(self, user: &str, pass: &str, challenges: &[&str]) -> super::Routes {
        let want = basic(user, pass);
        let challenges: Vec<String> = challenges.iter().map(|c| c.to_string()).collect();
        self.guard(move |r| {
            let ok = !r.path.starts_with("/v2/") || r.authorization() == Some(want.as_str());
            let refs: Vec<&str> = challenges.iter().map(String::as_str).collect();
            (!ok).then(|| super::Response::unauthorized(&refs))
        })
    }

    /// A token endpoint at `path` issuing tokens from `tokens` with
    /// `expires_in` (None: field absent). Accepts any credentials or none;
    /// tests assert on what it recorded.
    pub fn token_endpoint(
        self,
        path: &str,
        tokens: Arc<Tokens>,
        expires_in: Option<u64>,
    ) -> super::Routes {
        self.handle("GET", path, move |_, _| super::Response::token(&tokens.issue(), expires_in))
    }
}

/// The challenge with any `,scope="…"` parameter removed.
fn without_scope(challenge: &str) -> String {
    match challenge.find(",scope=") {
        Some(i) => challenge[..i].to_string(),
        None => challenge.to_string(),
    }
}
