//! What real registries rarely do, driven through the ferry binary against
//! the scripted fake: odd challenges, token replies and lifetimes, retries,
//! redirects, realms on other hosts and schemes, hostile error bodies.
//!
//! Each test scripts one fake (or two, for "another host" on 127.0.0.2),
//! runs one ferry command with a bounded timeout, and asserts the exit
//! status, the output, and what the fake recorded. Auth tests also check
//! that nothing secret reached the wrong host or the terminal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Env, Run, output_within};
use crate::fake::{
    Fake, Image, Request, Response, Routes, TOKEN_SECRET, Tokens, basic, basic_value,
    bearer_challenge,
};

const USER: &str = "fake-user";
const PASS: &str = "pw-Very-S3cret-17";
pub(crate) const REPO: &str = "a/b";
pub(crate) const MANIFEST: &str = "/v2/a/b/manifests/t";

/// Longest any single ferry run may take before the test calls it hung.
const LIMIT: Duration = Duration::from_secs(40);

/// Runs ferry with `--timeout 5`, the transport flag for `fake`, `args`, and
/// `envs` added to the isolated environment.
pub(crate) fn ferry(fake: &Fake, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let ca = Fake::ca_cert();
    let mut all: Vec<String> = vec!["--timeout".into(), "5".into()];
    if fake.is_tls() {
        all.extend(["--ca-cert".into(), ca.display().to_string()]);
    } else {
        all.push("--plain-http".into());
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let env = Env::new();
    let mut cmd = env.command(&all);
    cmd.envs(envs.iter().copied());
    let run = output_within(cmd, LIMIT);
    // Whatever the verbosity, no run ever prints a secret.
    let printed = format!("{}{}", run.stdout, run.stderr);
    assert_no_secret(&printed, &[PASS, &basic_value(USER, PASS), TOKEN_SECRET]);
    // FERRY_SHOW_RUNS=1 cargo test faults -- --nocapture shows every run.
    if std::env::var_os("FERRY_SHOW_RUNS").is_some() {
        eprintln!("ferry {}\n=> exit {}\n{}{}", all.join(" "), run.code, run.stdout, run.stderr);
    }
    run
}

fn creds() -> [(&'static str, &'static str); 2] {
    [("FERRY_USERNAME", USER), ("FERRY_PASSWORD", PASS)]
}

/// `HOST:PORT/a/b:t` on `fake`.
pub(crate) fn image_ref(fake: &Fake) -> String {
    format!("{}/{REPO}:t", fake.host())
}

/// Routes every script starts from: `/v2/` answers like a registry.
pub(crate) fn base() -> Routes {
    Routes::new().on("GET|HEAD", "/v2/", Response::ok().json(&serde_json::json!({})))
}

/// A failure that is an error message, not a crash: one of `codes`, nothing
/// on stdout, every stderr line `ferry: …` or `hint: …`, and few of them.
#[track_caller]
pub(crate) fn assert_clean_failure(run: &Run, codes: &[i32]) {
    assert!(codes.contains(&run.code), "exit {} not in {codes:?}\n{run:?}", run.code);
    assert!(run.stdout.is_empty(), "stdout on failure\n{run:?}");
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"), "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty() && lines.len() <= 4, "expected a short error\n{run:?}");
    for l in &lines {
        assert!(l.starts_with("ferry: ") || l.starts_with("hint: "), "stray line {l:?}\n{run:?}");
    }
}

#[track_caller]
pub(crate) fn assert_digest(run: &Run, image: &Image) {
    run.ok();
    assert_eq!(run.stdout.trim(), image.digest, "{run:?}");
}

/// The registry on `fake` with Bearer auth: token endpoint `/token` on the
/// same fake, `image` behind it. Returns the tokens for assertions.
fn bearer_registry(fake: &Fake, image: &Image, expires_in: Option<u64>) -> Arc<Tokens> {
    let tokens = Arc::new(Tokens::forever());
    let challenge =
        bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull");
    fake.set(
        base()
            .token_endpoint("/token", tokens.clone(), expires_in)
            .require_bearer(tokens.clone(), &challenge)
            .image(REPO, "t", image)
            .into_handler(),
    );
    tokens
}

/// Token requests `fake` received at `/token`.
fn token_requests(fake: &Fake) -> Vec<Request> {
    fake.requests().into_iter().filter(|r| r.path == "/token").collect()
}

/// Asserts none of `secrets` appears in `text`.
#[track_caller]
fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "secret {s:?} leaked into:\n{text}");
    }
}

// ---- Challenges ----

#[test]
fn unauthorized_without_challenge_is_a_clear_error() {
    let fake = Fake::http().serve(Routes::new().on("*", "/v2/*", Response::unauthorized(&[])));
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1, 3]);
}

#[test]
fn several_challenges_in_one_header_anonymous_picks_bearer() {
    let image = Image::new("one-header");
    let fake = Fake::http();
    let tokens = Arc::new(Tokens::forever());
    let bearer = bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull");
    let newauth = r#"Newauth realm="apps", type=1, title="Login to \"apps\", ok""#;
    let header = format!(r#"{newauth}, {bearer}, Basic realm="simple""#);
    let t = tokens.clone();
    fake.set(
        base()
            .token_endpoint("/token", tokens.clone(), Some(300))
            .guard(move |r| {
                (r.path.starts_with("/v2/") && !t.accepts(r))
                    .then(|| Response::unauthorized(&[&header]))
            })
            .image(REPO, "t", &image)
            .into_handler(),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
    let token_reqs = token_requests(&fake);
    assert!(!token_reqs.is_empty(), "{}", fake.log());
    assert!(
        token_reqs.iter().all(|r| r.authorization().is_none()),
        "anonymous run sent credentials"
    );
}

#[test]
fn challenges_in_several_headers_anonymous_picks_bearer() {
    let image = Image::new("headers-bearer");
    let fake = Fake::http();
    let tokens = Arc::new(Tokens::forever());
    let bearer = bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull");
    let t = tokens.clone();
    fake.set(
        base()
            .token_endpoint("/token", tokens.clone(), Some(300))
            .guard(move |r| {
                let refuse = r.path.starts_with("/v2/") && !t.accepts(r);
                refuse.then(|| Response::unauthorized(&[r#"Basic realm="fake""#, &bearer]))
            })
            .image(REPO, "t", &image)
            .into_handler(),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
    assert!(tokens.count() >= 1, "{}", fake.log());
}

#[test]
fn challenges_in_several_headers_with_credentials_picks_basic() {
    let image = Image::new("headers-basic");
    let fake = Fake::http().serve(
        base()
            .require_basic(USER, PASS, &[r#"Newauth realm="x", type=1"#, r#"basic Realm="fake""#])
            .image(REPO, "t", &image),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &creds());
    assert_digest(&run, &image);
    assert!(fake.authorizations().contains(&basic(USER, PASS)), "{}", fake.log());
}

// ---- Token replies ----

#[test]
fn token_reply_with_access_token_only_works() {
    let image = Image::new("access-token");
    let fake = Fake::http();
    let tokens = Arc::new(Tokens::forever());
    let challenge =
        bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull");
    let t = tokens.clone();
    fake.set(
        base()
            .handle("GET", "/token", move |_, _| {
                Response::ok()
                    .json(&serde_json::json!({ "access_token": t.issue(), "expires_in": 300 }))
            })
            .require_bearer(tokens.clone(), &challenge)
            .image(REPO, "t", &image)
            .into_handler(),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
}

/// Bearer registry whose token endpoint always answers `reply`.
fn token_reply_fails(reply: Response) {
    let fake = Fake::http();
    let challenge =
        bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull");
    fake.set(
        base()
            .on("GET", "/token", reply)
            .require_bearer(Arc::new(Tokens::forever()), &challenge)
            .into_handler(),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1, 3, 4]);
    assert!(token_requests(&fake).len() <= 5, "token endpoint hammered\n{}", fake.log());
}

#[test]
fn token_reply_not_json_is_a_clear_error() {
    token_reply_fails(Response::ok().header("Content-Type", "text/html").body("<html>hi</html>"));
}

#[test]
fn token_reply_without_token_is_a_clear_error() {
    token_reply_fails(Response::ok().json(&serde_json::json!({ "expires_in": 300, "tokn": "x" })));
}

#[test]
fn token_reply_over_1mib_is_a_clear_error() {
    let huge = format!(r#"{{"token":"{}"}}"#, "t".repeat(1024 * 1024 + 16));
    token_reply_fails(Response::ok().header("Content-Type", "application/json").body(huge));
}

#[test]
fn token_expiring_mid_run_is_renewed() {
    // Tokens live 1 s; page one takes 1.5 s, so page two needs a new one,
    // whether ferry notices the expiry itself or from the 401.
    let fake = Fake::http();
    let tokens = Arc::new(Tokens::new(Duration::from_secs(1)));
    let challenge =
        bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull");
    fake.set(
        base()
            .token_endpoint("/token", tokens.clone(), Some(1))
            .require_bearer(tokens.clone(), &challenge)
            .handle("GET", "/v2/a/b/tags/list", |r, _| {
                if r.query.as_deref().unwrap_or("").contains("last=t2") {
                    Response::ok().json(&serde_json::json!({ "name": "a/b", "tags": ["t3", "t4"] }))
                } else {
                    Response::ok()
                        .header("Link", r#"</v2/a/b/tags/list?last=t2&n=2>; rel="next""#)
                        .json(&serde_json::json!({ "name": "a/b", "tags": ["t1", "t2"] }))
                        .delay(Duration::from_millis(1500))
                }
            })
            .into_handler(),
    );
    let run = ferry(&fake, &["tags", &format!("{}/{REPO}", fake.host())], &[]);
    run.ok();
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), ["t1", "t2", "t3", "t4"], "{run:?}");
    let scoped = token_requests(&fake)
        .iter()
        .filter(|r| r.query.as_deref().unwrap_or("").contains("scope="))
        .count();
    assert_eq!(scoped, 2, "token endpoint hits for the repository\n{}", fake.log());
}

#[test]
fn persistent_401_after_fresh_token_stops() {
    let fake = Fake::http();
    let challenge =
        bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull");
    // Tokens are issued but never accepted.
    let issued = Arc::new(Tokens::forever());
    let refused = Arc::new(Tokens::new(Duration::ZERO));
    fake.set(
        base()
            .token_endpoint("/token", issued.clone(), Some(300))
            .require_bearer(refused, &challenge)
            .into_handler(),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[3]);
    assert!(issued.count() <= 3, "token endpoint hit {} times\n{}", issued.count(), fake.log());
    assert!(fake.requests().len() <= 12, "{}", fake.log());
}

#[test]
fn token_reply_without_expires_in_or_zero_works() {
    for expires_in in [None, Some(0)] {
        let image = Image::new("expiry-edge");
        let fake = Fake::http();
        let tokens = bearer_registry(&fake, &image, expires_in);
        let run = ferry(&fake, &["inspect", &image_ref(&fake)], &[]);
        run.ok();
        // Manifest and config: a zero lifetime may cost a token each, no more.
        assert!((1..=4).contains(&tokens.count()), "{expires_in:?}: {}", fake.log());
    }
}

#[test]
fn token_request_redirect_does_not_carry_credentials() {
    let image = Image::new("token-redirect");
    let third = Fake::other_http();
    let tokens = Arc::new(Tokens::forever());
    third.set(Routes::new().token_endpoint("/token", tokens.clone(), Some(300)).into_handler());
    let fake = Fake::http();
    let challenge =
        bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull");
    let elsewhere = format!("{}/token", third.url());
    fake.set(
        base()
            .handle("GET", "/token", move |r, _| {
                let to = format!("{elsewhere}?{}", r.query.as_deref().unwrap_or(""));
                Response::redirect(302, &to)
            })
            .require_bearer(tokens, &challenge)
            .image(REPO, "t", &image)
            .into_handler(),
    );
    let run = ferry(&fake, &["-vv", "digest", &image_ref(&fake)], &creds());
    assert_ne!(run.code, 101, "{run:?}");
    assert!(token_requests(&fake).iter().any(|r| r.authorization().is_some()), "{}", fake.log());
    assert_eq!(third.authorizations(), Vec::<String>::new(), "credentials followed the redirect");
}

// ---- Retries ----

#[test]
fn retry_after_429_waits_then_succeeds() {
    let image = Image::new("429");
    let fake = Fake::http().serve(base().seq(
        "GET|HEAD",
        MANIFEST,
        vec![
            Response::errors(429, "TOOMANYREQUESTS", "slow down").header("Retry-After", "1"),
            image.manifest_response(),
        ],
    ));
    let started = Instant::now();
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
    assert!(started.elapsed() >= Duration::from_millis(950), "did not wait for Retry-After");
    assert_eq!(fake.count("*", MANIFEST), 2, "{}", fake.log());
}

#[test]
fn server_error_then_success_is_retried() {
    let image = Image::new("500");
    let fake = Fake::http().serve(base().seq(
        "GET|HEAD",
        MANIFEST,
        vec![Response::errors(500, "UNKNOWN", "oops"), image.manifest_response()],
    ));
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
    assert_eq!(fake.count("*", MANIFEST), 2, "{}", fake.log());
}

#[test]
fn not_found_is_not_retried() {
    let fake = Fake::http().serve(base());
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[3]);
    assert_eq!(fake.count("*", MANIFEST), 1, "{}", fake.log());
}

#[test]
fn retries_exhausted_on_429_anonymous_hints_at_auth() {
    let fake = Fake::http().serve(base().on(
        "GET|HEAD",
        MANIFEST,
        Response::errors(429, "TOOMANYREQUESTS", "slow down").header("Retry-After", "0"),
    ));
    let run = ferry(&fake, &["--retries", "2", "digest", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1, 5]);
    assert!(run.stderr.contains("--auth"), "no --auth hint\n{run:?}");
    assert_eq!(fake.count("*", MANIFEST), 3, "{}", fake.log());
}

#[test]
fn retries_zero_makes_one_attempt() {
    let fake = Fake::http().serve(base().on(
        "GET|HEAD",
        MANIFEST,
        Response::errors(503, "UNAVAILABLE", "down"),
    ));
    let run = ferry(&fake, &["--retries", "0", "digest", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1, 5]);
    assert_eq!(fake.count("*", MANIFEST), 1, "{}", fake.log());
}

// ---- Redirects ----

/// A Basic-auth registry whose manifest GET/HEAD answers 307 to `location`.
fn redirecting_registry(fake: &Fake, location: &str) {
    fake.set(
        base()
            .require_basic(USER, PASS, &[r#"Basic realm="fake""#])
            .on("GET|HEAD", MANIFEST, Response::redirect(307, location))
            .into_handler(),
    );
}

#[test]
fn redirect_to_same_host_keeps_authorization() {
    let image = Image::new("same-host");
    let fake = Fake::http();
    fake.set(
        base()
            .require_basic(USER, PASS, &[r#"Basic realm="fake""#])
            .on("GET|HEAD", MANIFEST, Response::redirect(307, &format!("{}/store/m1", fake.url())))
            .on("GET|HEAD", "/store/m1", image.manifest_response())
            .into_handler(),
    );
    let run = ferry(&fake, &["inspect", "--raw", &image_ref(&fake)], &creds());
    run.ok();
    assert_eq!(run.stdout.as_bytes(), image.manifest);
    let followed: Vec<Request> =
        fake.requests().into_iter().filter(|r| r.path == "/store/m1").collect();
    assert!(!followed.is_empty(), "{}", fake.log());
    let want = basic(USER, PASS);
    assert!(followed.iter().all(|r| r.authorization() == Some(want.as_str())), "{}", fake.log());
}

#[test]
fn redirect_to_other_host_drops_authorization() {
    let image = Image::new("other-host");
    let other = Fake::other_http().serve(Routes::new().on(
        "GET|HEAD",
        "/store/m1",
        image.manifest_response(),
    ));
    let fake = Fake::http();
    redirecting_registry(&fake, &format!("{}/store/m1", other.url()));
    let run = ferry(&fake, &["-vv", "inspect", "--raw", &image_ref(&fake)], &creds());
    run.ok();
    assert_eq!(run.stdout.as_bytes(), image.manifest);
    assert!(!other.requests().is_empty(), "redirect not followed\n{}", fake.log());
    assert_eq!(other.authorizations(), Vec::<String>::new(), "credentials reached another host");
}

#[test]
fn redirect_from_https_to_http_is_refused() {
    let image = Image::new("downgrade");
    let other = Fake::other_http().serve(Routes::new().on(
        "GET|HEAD",
        "/store/m1",
        image.manifest_response(),
    ));
    let fake = Fake::https();
    redirecting_registry(&fake, &format!("{}/store/m1", other.url()));
    let run = ferry(&fake, &["inspect", "--raw", &image_ref(&fake)], &creds());
    assert_clean_failure(&run, &[1, 3, 5]);
    assert!(other.requests().is_empty(), "followed https→http\n{}", other.log());
}

#[test]
fn redirect_loop_is_bounded() {
    let fake =
        Fake::http().serve(base().on("GET|HEAD", MANIFEST, Response::redirect(307, "/loop")).on(
            "GET|HEAD",
            "/loop",
            Response::redirect(307, "/loop"),
        ));
    let run = ferry(&fake, &["inspect", "--raw", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1, 3, 5]);
    let hops = fake.count("*", "/loop");
    assert!((1..=5).contains(&hops), "{hops} hops\n{}", fake.log());
}

#[test]
fn relative_locations_are_resolved() {
    // t → "t2" (relative to the manifests directory) → an absolute path.
    let image = Image::new("relative");
    let fake = Fake::http().serve(
        base()
            .on("GET|HEAD", MANIFEST, Response::redirect(307, "t2"))
            .on("GET|HEAD", "/v2/a/b/manifests/t2", Response::redirect(302, "/store/m1"))
            .on("GET|HEAD", "/store/m1", image.manifest_response()),
    );
    let run = ferry(&fake, &["inspect", "--raw", &image_ref(&fake)], &[]);
    run.ok();
    assert_eq!(run.stdout.as_bytes(), image.manifest);
}

// ---- Realms ----

#[test]
fn plain_http_realm_of_https_registry_never_gets_credentials() {
    let image = Image::new("http-realm");
    let realm = Fake::http();
    let tokens = Arc::new(Tokens::forever());
    realm.set(Routes::new().token_endpoint("/token", tokens.clone(), Some(300)).into_handler());
    let fake = Fake::https();
    let challenge =
        bearer_challenge(&format!("{}/token", realm.url()), "fake", "repository:a/b:pull");
    fake.set(base().require_bearer(tokens, &challenge).image(REPO, "t", &image).into_handler());
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &creds());
    // ferry refuses the plain-http realm outright, with or without credentials.
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("plain http"), "{run:?}");
    assert!(realm.requests().is_empty(), "token asked over http: {}", realm.log());
    assert_eq!(realm.authorizations(), Vec::<String>::new(), "credentials sent over http");
    assert_no_secret(&realm.log(), &[PASS, &basic_value(USER, PASS)]);
}

#[test]
fn https_realm_on_other_host_gets_credentials_only_there() {
    let image = Image::new("other-realm");
    let tokens = Arc::new(Tokens::forever());
    let t = tokens.clone();
    let want = basic(USER, PASS);
    let realm = Fake::other_https().serve(Routes::new().handle("GET", "/token", move |r, _| {
        if r.authorization() == Some(want.as_str()) {
            Response::token(&t.issue(), Some(300))
        } else {
            Response::unauthorized(&[r#"Basic realm="tokens""#])
        }
    }));
    let fake = Fake::https();
    let challenge =
        bearer_challenge(&format!("{}/token", realm.url()), "fake", "repository:a/b:pull");
    fake.set(
        base().require_bearer(tokens.clone(), &challenge).image(REPO, "t", &image).into_handler(),
    );
    let run = ferry(&fake, &["-vv", "digest", &image_ref(&fake)], &creds());
    assert_digest(&run, &image);
    assert!(realm.authorizations().contains(&basic(USER, PASS)), "{}", realm.log());
    for a in fake.authorizations() {
        assert!(a.starts_with("Bearer "), "registry got {a:?}");
    }
}

#[test]
fn scope_and_service_are_percent_encoded() {
    let image = Image::new("encoding");
    let fake = Fake::http();
    let tokens = Arc::new(Tokens::forever());
    let service = "svc &x=1#frag%20 y";
    let scope = "repository:a/b:pull";
    let challenge = bearer_challenge(&format!("{}/token", fake.url()), service, scope);
    fake.set(
        base()
            .token_endpoint("/token", tokens.clone(), Some(300))
            .require_bearer(tokens, &challenge)
            .image(REPO, "t", &image)
            .into_handler(),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    let token_reqs = token_requests(&fake);
    assert!(!token_reqs.is_empty(), "no token request\n{run:?}\n{}", fake.log());
    for r in &token_reqs {
        let q = r.query.as_deref().unwrap_or("");
        assert!(!q.contains(' ') && !q.contains('#'), "raw query {q:?}");
        let decode = |v: &str| {
            let v = v.replace('+', " ");
            percent_encoding::percent_decode_str(&v).decode_utf8_lossy().into_owned()
        };
        let params: Vec<(&str, String)> =
            r.raw_params().iter().map(|(k, v)| (*k, decode(v))).collect();
        for (k, v) in &params {
            match *k {
                "service" => assert_eq!(v, service, "raw query {q:?}"),
                "scope" => assert_eq!(v, scope, "raw query {q:?}"),
                "account" | "client_id" | "offline_token" => {}
                other => panic!("unexpected parameter {other:?} in raw query {q:?}"),
            }
        }
        assert!(params.iter().any(|(k, _)| *k == "service"), "no service in {q:?}");
    }
    assert_digest(&run, &image);
}

// ---- Error bodies and rate limits ----

#[test]
fn oversized_error_body_is_bounded() {
    let message = "A".repeat(2 * 1024 * 1024);
    let fake = Fake::http().serve(base().on(
        "GET|HEAD",
        MANIFEST,
        Response::errors(403, "DENIED", &message),
    ));
    let run = ferry(&fake, &["inspect", "--raw", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1, 3]);
    assert!(run.stderr.len() < 4096, "stderr of {} bytes", run.stderr.len());
}

#[test]
fn error_message_control_characters_are_stripped() {
    let message = "access \u{1b}[31mdenied\u{7}\r\nfor\u{0}you";
    let fake = Fake::http().serve(base().on(
        "GET|HEAD",
        MANIFEST,
        Response::errors(403, "DENIED", message),
    ));
    let run = ferry(&fake, &["inspect", "--raw", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1, 3]);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("access") && l.contains("denied") && l.contains("you")),
        "server message not shown on one line\n{run:?}"
    );
    for c in run.stderr.chars() {
        assert!(c == '\n' || !c.is_control(), "control character {c:?} in\n{run:?}");
    }
}

#[test]
fn docker_hub_rate_limit_headers_give_one_info_line() {
    let image = Image::new("ratelimit");
    let limited = |r: Response| {
        r.header("RateLimit-Limit", "187;w=21600")
            .header("RateLimit-Remaining", "93;w=21600")
            .header("Docker-RateLimit-Source", "203.0.113.7")
    };
    let fake = Fake::http().serve(
        Routes::new()
            .on("GET|HEAD", "/v2/", limited(Response::ok().json(&serde_json::json!({}))))
            .on("GET|HEAD", MANIFEST, limited(image.manifest_response())),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.contains("93")).collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].starts_with("ferry: "), "{run:?}");
}

// ---- Digests ----

#[test]
fn digest_without_header_falls_back_to_get_and_hashes() {
    let image = Image::new("no-header");
    let bare = Response::ok()
        .header("Content-Type", crate::fake::OCI_MANIFEST)
        .body(image.manifest.clone());
    let fake = Fake::http().serve(base().on("GET|HEAD", MANIFEST, bare));
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
    assert_eq!(fake.count("GET", MANIFEST), 1, "{}", fake.log());
}

#[test]
fn manifest_by_digest_with_other_bytes_is_refused() {
    let wanted = Image::new("wanted");
    let served = Image::new("served");
    let path = format!("/v2/a/b/manifests/{}", wanted.digest);
    // The registry even claims the requested digest in its header.
    let lie = Response::ok()
        .header("Content-Type", crate::fake::OCI_MANIFEST)
        .header("Docker-Content-Digest", &wanted.digest)
        .body(served.manifest.clone());
    let fake = Fake::http().serve(base().on("GET|HEAD", &path, lie));
    let reference = format!("{}/{REPO}@{}", fake.host(), wanted.digest);
    let run = ferry(&fake, &["inspect", "--raw", &reference], &[]);
    assert_clean_failure(&run, &[1]);
}

// ---- Secrets in -vv ----

#[test]
fn vv_output_of_basic_auth_has_no_secret() {
    let image = Image::new("vv-basic");
    let fake = Fake::http().serve(
        base().require_basic(USER, PASS, &[r#"Basic realm="fake""#]).image(REPO, "t", &image),
    );
    let run = ferry(&fake, &["-vv", "inspect", &image_ref(&fake)], &creds());
    run.ok();
    assert!(fake.authorizations().contains(&basic(USER, PASS)));
    assert!(run.stderr.lines().count() >= 2, "-vv said nothing\n{run:?}");
    assert_no_secret(&run.stderr, &[PASS, &basic_value(USER, PASS)]);
    assert_no_secret(&run.stdout, &[PASS, &basic_value(USER, PASS)]);
}

#[test]
fn vv_output_of_bearer_auth_has_no_secret() {
    let image = Image::new("vv-bearer");
    let fake = Fake::http();
    let tokens = bearer_registry(&fake, &image, Some(300));
    let run = ferry(&fake, &["-vv", "inspect", &image_ref(&fake)], &creds());
    run.ok();
    assert!(tokens.count() >= 1, "{}", fake.log());
    assert!(token_requests(&fake).iter().any(|r| r.authorization() == Some(&basic(USER, PASS))));
    let all = format!("{}{}", run.stderr, run.stdout);
    assert_no_secret(&all, &[PASS, &basic_value(USER, PASS), TOKEN_SECRET]);
    for t in tokens.all() {
        assert_no_secret(&all, &[&t]);
    }
}

// ---- Proxies ----

/// HTTP_PROXY is honoured: ferry tunnels through the proxy with CONNECT
/// and never resolves the registry's name itself (`registry.invalid`
/// does not exist). Here the proxy answers the tunnelled requests too.
#[test]
fn proxy_from_environment_is_used() {
    let image = Image::new("proxied");
    let proxy = Fake::http();
    proxy.set(base().on("CONNECT", "*", Response::ok()).image(REPO, "t", &image).into_handler());
    let proxy_url = proxy.url();
    for var in ["HTTP_PROXY", "http_proxy"] {
        let reference = format!("registry.invalid:5000/{REPO}:t");
        let run = ferry(&proxy, &["digest", &reference], &[(var, &proxy_url)]);
        assert_digest(&run, &image);
    }
    let connects: Vec<Request> =
        proxy.requests().into_iter().filter(|r| r.method == "CONNECT").collect();
    assert!(!connects.is_empty(), "no CONNECT: {}", proxy.log());
    assert!(connects.iter().all(|r| r.target == "registry.invalid:5000"), "{}", proxy.log());
}

/// NO_PROXY names hosts reached directly: a proxy that does not exist is
/// not tried for them.
#[test]
fn no_proxy_bypasses_the_proxy() {
    let image = Image::new("direct");
    let fake = Fake::http();
    fake.set(base().image(REPO, "t", &image).into_handler());
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    for no_proxy in [("NO_PROXY", "127.0.0.1"), ("no_proxy", "127.0.0.1")] {
        let run = ferry(&fake, &["digest", &image_ref(&fake)], &[("HTTP_PROXY", &dead), no_proxy]);
        assert_digest(&run, &image);
    }
}
