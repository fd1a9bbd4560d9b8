//! A Docker token server for the real registry's token auth, in a thread.
//!
//! It speaks https on 127.0.0.1 with the harness' server certificate and
//! answers `GET /token?service=S&scope=…&account=…` the way Docker's
//! token servers do: wrong Basic credentials get 401; no credentials get
//! `pull` on repositories under `public/` only; the right credentials get
//! `pull,push,delete` on any repository and `*` on `registry:catalog:*`.
//! Tokens are ES256 JWTs signed with the P-256 key of [`certs`], whose
//! certificate travels in the header's `x5c`; the registry checks them
//! against its `rootcertbundle` and never calls this server. Each request
//! is recorded so tests can assert on what ferry asked for.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::certs::certs;
use super::{PASSWORD, USERNAME};

/// The `service` the registry expects in the token's `aud`.
pub const SERVICE: &str = "ferry-test-registry";
/// The `iss` the registry expects.
pub const ISSUER: &str = "ferry-test-token-server";

/// One request the token server received.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// Path and query exactly as sent, e.g. `/token?scope=…&service=…`.
    pub target: String,
    /// The decoded `scope` parameters, in order.
    pub scopes: Vec<String>,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// The status the server answered.
    pub status: u16,
    /// The token handed out, if any (for "never printed" checks).
    pub token: Option<String>,
}

/// A running token server; it stops accepting when dropped.
pub struct TokenServer {
    port: u16,
    log: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    /// Seconds put in `expires_in` and `exp`.
    pub expires_in: u64,
}

impl TokenServer {
    /// Starts the server on a free port of 127.0.0.1.
    pub fn start() -> TokenServer {
        Self::start_with_expiry(300)
    }

    /// Starts the server handing out tokens valid for `expires_in` seconds.
    pub fn start_with_expiry(expires_in: u64) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = listener.local_addr().expect("local addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tls = Arc::new(server_config());
        let (log2, stop2) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (tls, log) = (tls.clone(), log2.clone());
                // One thread per connection: a client holding a keep-alive
                // connection open must not block the next one.
                std::thread::spawn(move || serve(conn, tls, log, expires_in));
            }
        });
        TokenServer { port, log, stop, expires_in }
    }

    /// The realm URL for the registry config, over https.
    pub fn realm(&self) -> String {
        format!("https://127.0.0.1:{}/token", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }

    /// How many token requests arrived.
    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Every token handed out so far.
    pub fn tokens(&self) -> Vec<String> {
        self.requests().into_iter().filter_map(|r| r.token).collect()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        // Wake the accept loop so it sees the flag and the port is freed.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn server_config() -> rustls::ServerConfig {
    let c = certs();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(c.server_cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.server_key_der.clone())),
        )
        .expect("token server TLS config")
}

/// Answers every request on one connection, then closes it.
fn serve(
    tcp: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    log: Arc<Mutex<Vec<TokenRequest>>>,
    expires_in: u64,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    loop {
        // Request line and headers; the server ignores any body.
        let mut reader = BufReader::new(&mut stream);
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut authorization = None;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (name, value) = h.split_once(':').unwrap_or((h, ""));
            match name.to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_string()),
                "connection" => close = value.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }

        let (req, status, body) = answer(&target, authorization.as_deref(), expires_in);
        log.lock().unwrap().push(req);
        let reason = if status == 200 { "OK" } else { "Error" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{}\r\n",
            body.len(),
            if status == 401 { "WWW-Authenticate: Basic realm=\"token\"\r\n" } else { "" },
        );
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body.as_bytes()).is_err()
        {
            return;
        }
        let _ = stream.flush();
        if close {
            stream.conn.send_close_notify();
            let _ = stream.flush();
            return;
        }
    }
}

/// Decides one request: the log entry, the status and the JSON body.
fn answer(
    target: &str,
    authorization: Option<&str>,
    expires_in: u64,
) -> (TokenRequest, u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut scopes = Vec::new();
    let mut service = None;
    let mut account = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        match k {
            "scope" => scopes.push(v),
            "service" => service = Some(v),
            "account" => account = Some(v),
            _ => {}
        }
    }
    let mut req = TokenRequest {
        target: target.to_string(),
        scopes: scopes.clone(),
        authorization: authorization.is_some(),
        status: 200,
        token: None,
    };

    let fail = |req: &mut TokenRequest, status: u16, code: &str, msg: &str| {
        req.status = status;
        let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{msg}","detail":null}}]}}"#);
        (req.clone(), status, body)
    };
    if path != "/token" {
        return fail(&mut req, 404, "NOT_FOUND", "no such endpoint");
    }
    if service.as_deref() != Some(SERVICE) {
        return fail(&mut req, 400, "INVALID_REQUEST", "unknown service");
    }

    // Who is asking: anonymous, or a user whose password must match.
    let user = match authorization {
        None => None,
        Some(value) => match basic_user(value) {
            Some(user) => Some(user),
            None => return fail(&mut req, 401, "UNAUTHORIZED", "authentication failed"),
        },
    };

    // What they get: each scope cut down to what they may do.
    let mut access = Vec::new();
    for scope in &scopes {
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let allowed: &[&str] = match (kind, &user) {
            ("repository", Some(_)) => &["pull", "push", "delete", "*"],
            ("repository", None) if name.starts_with("public/") => &["pull"],
            ("registry", Some(_)) if name == "catalog" => &["*"],
            _ => &[],
        };
        let granted: Vec<&str> = actions.split(',').filter(|a| allowed.contains(a)).collect();
        access.push(serde_json::json!({"type": kind, "name": name, "actions": granted}));
    }

    let subject = user.or(account).unwrap_or_default();
    let token = sign(&subject, access, expires_in);
    req.token = Some(token.clone());
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": expires_in,
        "issued_at": rfc3339(now()),
    });
    (req, 200, body.to_string())
}

/// The user name when `value` is Basic with the harness' credentials.
fn basic_user(value: &str) -> Option<String> {
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, pass) = text.split_once(':')?;
    (user == USERNAME && pass == PASSWORD).then(|| user.to_string())
}

/// A signed ES256 JWT with the claims the registry checks.
fn sign(subject: &str, access: Vec<serde_json::Value>, expires_in: u64) -> String {
    let c = certs();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [STANDARD.encode(&c.signing_cert_der)],
    });
    let now = now();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + expires_in,
        "nbf": now - 1,
        "iat": now,
        "jti": format!("{:x}", rand_u64()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let rng = SystemRandom::new();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &c.signing_key_pkcs8, &rng)
            .expect("signing key");
    let sig = key.sign(&rng, signing_input.as_bytes()).expect("sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b).expect("random");
    u64::from_le_bytes(b)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Percent-decoding of a query value (`+` is a space in forms).
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (days-to-civil, proleptic
/// Gregorian).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}
