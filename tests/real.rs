//! ferry against the real registry: the read-only commands, login and
//! logout, exit statuses, every auth escalation path that a real
//! registry can show, the no-thread promise (under strace) and the
//! no-secret promise (under `-vv`).
//!
//! Each test starts a registry of its own (see `harness`), pushes what it
//! needs with skopeo and runs the ferry binary in an isolated `Env`. ferry
//! is given the registry's self-signed CA:TRUE certificate with
//! `--ca-cert`, the way internal registries are used. What only a
//! scripted server can do (token expiry, 429, redirects, tag pagination,
//! which Debian's registry 2.8 does not offer) belongs to the fake
//! registry's tests.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::common::{Env, Run, require_tool, run_with_input};
use crate::harness::{Auth, ImageSpec, PASSWORD, Registry, USERNAME, sha256};

/// Runs ferry with `--ca-cert` for `reg` before `args`.
fn ferry(env: &Env, reg: &Registry, args: &[&str]) -> Run {
    env.run(with_ca(reg, args))
}

/// Like [`ferry`], with `input` on standard input.
fn ferry_input(env: &Env, reg: &Registry, args: &[&str], input: &str) -> Run {
    env.run_input(with_ca(reg, args), input)
}

/// Like [`ferry`], with the harness credentials in FERRY_USERNAME /
/// FERRY_PASSWORD.
fn ferry_creds(env: &Env, reg: &Registry, args: &[&str]) -> Run {
    let mut cmd = env.command(with_ca(reg, args));
    cmd.env("FERRY_USERNAME", USERNAME).env("FERRY_PASSWORD", PASSWORD);
    cmd.output().expect("run ferry").into()
}

/// stdout as raw bytes, for `--raw` and `--config`.
fn ferry_bytes(env: &Env, reg: &Registry, args: &[&str]) -> Vec<u8> {
    let mut cmd = env.command(with_ca(reg, args));
    cmd.env("FERRY_USERNAME", USERNAME).env("FERRY_PASSWORD", PASSWORD);
    let out = cmd.output().expect("run ferry");
    assert!(
        out.status.success(),
        "ferry {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn with_ca(reg: &Registry, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--ca-cert".to_string(), reg.ca_cert().display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\n{}", run.stdout, run.stderr))
}

/// The value of the first plain-output line `KEY value…`.
fn field<'a>(run: &'a Run, key: &str) -> &'a str {
    line_values(run, key).next().unwrap_or_else(|| panic!("no `{key}` line in:\n{}", run.stdout))
}

/// The values of every plain-output line `KEY value…`, in order.
fn line_values<'a>(run: &'a Run, key: &str) -> impl Iterator<Item = &'a str> + use<'a> {
    let prefix = format!("{key} ");
    run.stdout.lines().filter_map(move |l| l.strip_prefix(prefix.as_str()))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn basic_value() -> String {
    STANDARD.encode(format!("{USERNAME}:{PASSWORD}"))
}

/// Panics when `run` exited `code` without a `ferry: ` error line.
#[track_caller]
fn expect_error(run: &Run, code: i32) {
    run.expect_code(code);
    assert!(
        run.stderr.lines().any(|l| l.starts_with("ferry: ")),
        "no `ferry: ` error line:\n{}",
        run.stderr
    );
}

// ---- inspect ---------------------------------------------------------

#[test]
fn inspect_single_manifest_plain() {
    let reg = Registry::start(Auth::None);
    let p = reg.push("a/b:t", &ImageSpec::small("inspect").with_random_layer("big", 5000));
    let img = &p.images[0];
    let env = Env::new();
    let run = ferry(&env, &reg, &["inspect", &p.reference]);
    run.ok();
    assert_eq!(field(&run, "reference"), p.reference);
    assert_eq!(field(&run, "digest"), p.digest);
    assert_eq!(field(&run, "media-type"), "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(field(&run, "size"), p.raw.len().to_string());
    assert_eq!(field(&run, "platform"), format!("linux/amd64 {}", p.digest));
    assert_eq!(field(&run, "config"), format!("{} {}", img.config_digest, img.config.len()));
    let layers: Vec<&str> = line_values(&run, "layer").collect();
    let want: Vec<String> = img.layers.iter().map(|(d, s)| format!("{d} {s}")).collect();
    assert_eq!(layers, want);
}

#[test]
fn inspect_json_single_manifest() {
    let reg = Registry::start(Auth::None);
    let p = reg.push("a/b:t", &ImageSpec::small("json"));
    let img = &p.images[0];
    let env = Env::new();
    let run = ferry(&env, &reg, &["inspect", "--json", &p.reference]);
    run.ok();
    let j = json(&run);
    assert_eq!(j["reference"], p.reference);
    assert_eq!(j["digest"], p.digest);
    assert_eq!(j["media_type"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(j["size"], p.raw.len());
    assert_eq!(j["multi_platform"], false);
    assert_eq!(j["config"]["digest"], img.config_digest);
    assert_eq!(j["config"]["size"], img.config.len());
    let layers = j["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["digest"], img.layers[0].0);
    assert_eq!(layers[0]["size"], img.layers[0].1);
    assert_eq!(layers[0]["media_type"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let platforms = j["platforms"].as_array().expect("platforms");
    assert_eq!(platforms.len(), 1);
    assert_eq!(platforms[0]["platform"], "linux/amd64");
    assert_eq!(platforms[0]["digest"], p.digest);
}

#[test]
fn inspect_raw_is_the_bytes_skopeo_sees() {
    let reg = Registry::start(Auth::Basic);
    let single = reg.push("raw/one:1", &ImageSpec::small("raw"));
    let index = reg.push_two_platform("raw/multi:1");
    let env = Env::new();
    for p in [&single, &index] {
        let raw = ferry_bytes(&env, &reg, &["inspect", "--raw", &p.reference]);
        assert_eq!(raw, reg.skopeo_raw(&p.reference), "{}", p.reference);
        assert_eq!(sha256(&raw), p.digest);
    }
}

#[test]
fn inspect_config_prints_the_config_bytes() {
    let reg = Registry::start(Auth::None);
    let single = reg.push("c:1", &ImageSpec::small("config"));
    let index = reg.push_two_platform("c:multi");
    let env = Env::new();
    let config = ferry_bytes(&env, &reg, &["inspect", "--config", &single.reference]);
    assert_eq!(config, single.images[0].config);

    // On an index, --arch picks the platform whose config is printed.
    let args = ["inspect", "--config", "--arch", "linux/arm64/v8", &index.reference];
    let config = ferry_bytes(&env, &reg, &args);
    assert_eq!(config, index.images[1].config);
    let args = ["inspect", "--config", "--arch", "linux/amd64", &index.reference];
    let config = ferry_bytes(&env, &reg, &args);
    assert_eq!(config, index.images[0].config);
}

#[test]
fn inspect_index_lists_both_platforms() {
    let reg = Registry::start(Auth::None);
    let p = reg.push_two_platform("multi/arch:latest");
    let (amd, arm) = (&p.images[0], &p.images[1]);
    let env = Env::new();

    let run = ferry(&env, &reg, &["inspect", &p.reference]);
    run.ok();
    assert_eq!(field(&run, "digest"), p.digest);
    assert_eq!(field(&run, "media-type"), "application/vnd.oci.image.index.v1+json");
    assert_eq!(field(&run, "size"), p.raw.len().to_string());
    let platforms: Vec<&str> = line_values(&run, "platform").collect();
    assert_eq!(
        platforms,
        [format!("linux/amd64 {}", amd.digest), format!("linux/arm64/v8 {}", arm.digest)]
    );

    let run = ferry(&env, &reg, &["--json", "inspect", &p.reference]);
    run.ok();
    let j = json(&run);
    assert_eq!(j["multi_platform"], true);
    assert_eq!(j["digest"], p.digest);
    let platforms = j["platforms"].as_array().expect("platforms");
    assert_eq!(platforms.len(), 2);
    assert_eq!(platforms[0]["platform"], "linux/amd64");
    assert_eq!(platforms[0]["os"], "linux");
    assert_eq!(platforms[0]["architecture"], "amd64");
    assert_eq!(platforms[0]["digest"], amd.digest);
    assert_eq!(platforms[0]["size"], amd.manifest.len());
    assert_eq!(platforms[1]["platform"], "linux/arm64/v8");
    assert_eq!(platforms[1]["architecture"], "arm64");
    assert_eq!(platforms[1]["variant"], "v8");
    assert_eq!(platforms[1]["digest"], arm.digest);
}

#[test]
fn inspect_docker_media_type_without_history() {
    let reg = Registry::start(Auth::None);
    let mut spec = ImageSpec::small("docker");
    spec.docker = true;
    spec.history = false;
    let p = reg.push("dock/er:v2", &spec);
    let env = Env::new();
    let run = ferry(&env, &reg, &["inspect", &p.reference]);
    run.ok();
    assert_eq!(field(&run, "digest"), p.digest);
    assert_eq!(field(&run, "media-type"), "application/vnd.docker.distribution.manifest.v2+json");
}

#[test]
fn inspect_by_digest_and_options_after_the_command() {
    let reg = Registry::start(Auth::None);
    let p = reg.push("by/digest:t", &ImageSpec::small("by-digest"));
    let env = Env::new();
    let by_digest = format!("{}@{}", reg.repo("by/digest"), p.digest);
    let ca = reg.ca_cert().display().to_string();
    let run = env.run(["inspect", &by_digest, "--json", "--ca-cert", &ca]);
    run.ok();
    assert_eq!(json(&run)["digest"], p.digest);
}

// ---- tags, catalog, digest --------------------------------------------

#[test]
fn tags_lists_every_tag() {
    let reg = Registry::start(Auth::None);
    reg.push("many/tags:first", &ImageSpec::small("tags"));
    let mut want = vec!["first".to_string()];
    for i in 0..12 {
        let tag = format!("v1.{i}");
        reg.copy_tag("many/tags", "first", &tag);
        want.push(tag);
    }
    let want = sorted(want);
    let env = Env::new();

    let run = ferry(&env, &reg, &["tags", &reg.repo("many/tags")]);
    run.ok();
    assert_eq!(sorted(run.stdout.lines().map(String::from).collect()), want);

    let run = ferry(&env, &reg, &["tags", "--json", &reg.repo("many/tags")]);
    run.ok();
    let j = json(&run);
    assert_eq!(j["repository"], reg.repo("many/tags"));
    let tags: Vec<String> = serde_json::from_value(j["tags"].clone()).expect("tags array");
    assert_eq!(sorted(tags), want);
}

/// The registry answers `_catalog` 100 entries at a time with a `Link`
/// header, so 121 repositories need ferry to follow it.
#[test]
fn catalog_follows_link_pagination() {
    let reg = Registry::start(Auth::None);
    reg.push("base/image:1", &ImageSpec::small("catalog"));
    let mut want = vec!["base/image".to_string()];
    for i in 0..120 {
        let repo = format!("copies/r{i:03}");
        reg.copy_repo("base/image", &repo);
        want.push(repo);
    }
    let want = sorted(want);
    let env = Env::new();

    let run = ferry(&env, &reg, &["catalog", &reg.host_port()]);
    run.ok();
    assert_eq!(sorted(run.stdout.lines().map(String::from).collect()), want);
    assert!(reg.count_requests("\"GET /v2/_catalog?") >= 1, "Link not followed:\n{}", reg.log());

    let run = ferry(&env, &reg, &["catalog", "--json", &reg.host_port()]);
    run.ok();
    let j = json(&run);
    assert_eq!(j["registry"], reg.host_port());
    let repos: Vec<String> = serde_json::from_value(j["repositories"].clone()).expect("array");
    assert_eq!(sorted(repos), want);
}

#[test]
fn digest_equals_skopeo() {
    let reg = Registry::start(Auth::None);
    let single = reg.push("dig/est:1", &ImageSpec::small("digest"));
    let index = reg.push_two_platform("dig/est:multi");
    let env = Env::new();
    for p in [&single, &index] {
        let run = ferry(&env, &reg, &["digest", &p.reference]);
        run.ok();
        assert_eq!(run.stdout.trim_end(), p.digest);
        assert_eq!(sha256(&reg.skopeo_raw(&p.reference)), p.digest);
    }
    assert!(reg.count_requests("\"HEAD /v2/dig/est/manifests/") >= 2, "digest used no HEAD");

    let run = ferry(&env, &reg, &["digest", "--json", &single.reference]);
    run.ok();
    let j = json(&run);
    assert_eq!(j["digest"], single.digest);
    assert_eq!(j["reference"], single.reference);
}

#[test]
fn missing_repository_or_tag_exits_3() {
    let reg = Registry::start(Auth::None);
    reg.push("there:1", &ImageSpec::small("missing"));
    let env = Env::new();
    for args in [
        vec!["inspect".to_string(), reg.repo("not/there:1")],
        vec!["inspect".to_string(), reg.repo("there:2")],
        vec!["digest".to_string(), reg.repo("not/there:1")],
        vec!["tags".to_string(), reg.repo("not/there")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_error(&ferry(&env, &reg, &args), 3);
    }
}

#[test]
fn untrusted_certificate_is_a_tls_failure() {
    let reg = Registry::start(Auth::None);
    let p = reg.push("tls:1", &ImageSpec::small("tls"));
    let env = Env::new();
    let run = env.run(["--retries", "0", "inspect", &p.reference]);
    expect_error(&run, 5);
}

#[test]
fn certs_d_directory_is_honoured() {
    let reg = Registry::start(Auth::None);
    let p = reg.push("certsd:1", &ImageSpec::small("certsd"));
    let env = Env::new();
    let certs_d = env.path().join("certs.d");
    let host_dir = certs_d.join(reg.host_port());
    fs::create_dir_all(&host_dir).unwrap();
    fs::copy(reg.ca_cert(), host_dir.join("ca.crt")).unwrap();
    let mut cmd = env.command(["digest", &p.reference]);
    cmd.env("FERRY_CERTS_D", &certs_d);
    let run: Run = cmd.output().expect("run ferry").into();
    run.ok();
    assert_eq!(run.stdout.trim_end(), p.digest);
}

// ---- Basic auth -------------------------------------------------------

/// none → Basic: the 401 with a Basic challenge is answered with the
/// credentials given by `--username` and `--password-stdin`.
#[test]
fn basic_with_password_stdin() {
    let reg = Registry::start(Auth::Basic);
    let p = reg.push("sec/ret:1", &ImageSpec::small("basic"));
    let env = Env::new();
    let args = ["--username", USERNAME, "--password-stdin", "digest", &p.reference];
    let run = ferry_input(&env, &reg, &args, &format!("{PASSWORD}\n"));
    run.ok();
    assert_eq!(run.stdout.trim_end(), p.digest);
}

#[test]
fn basic_with_environment_credentials() {
    let reg = Registry::start(Auth::Basic);
    let p = reg.push("sec/ret:1", &ImageSpec::small("basic-env"));
    let env = Env::new();
    let run = ferry_creds(&env, &reg, &["inspect", &p.reference]);
    run.ok();
    assert_eq!(field(&run, "digest"), p.digest);
    let run = ferry_creds(&env, &reg, &["catalog", &reg.host_port()]);
    run.ok();
    assert_eq!(run.stdout.trim_end(), "sec/ret");

    // Charliecloud's variable names work too.
    let mut cmd = env.command(with_ca(&reg, &["tags", &reg.repo("sec/ret")]));
    cmd.env("CH_IMAGE_USERNAME", USERNAME).env("CH_IMAGE_PASSWORD", PASSWORD);
    let run: Run = cmd.output().expect("run ferry").into();
    run.ok();
    assert_eq!(run.stdout.trim_end(), "1");
}

#[test]
fn basic_without_credentials_exits_3() {
    let reg = Registry::start(Auth::Basic);
    let p = reg.push("sec/ret:1", &ImageSpec::small("basic-none"));
    let env = Env::new();
    expect_error(&ferry(&env, &reg, &["inspect", &p.reference]), 3);
}

#[test]
fn wrong_password_exits_4_basic() {
    let reg = Registry::start(Auth::Basic);
    let p = reg.push("sec/ret:1", &ImageSpec::small("basic-wrong"));
    let env = Env::new();
    let args = ["--username", USERNAME, "--password-stdin", "inspect", &p.reference];
    let run = ferry_input(&env, &reg, &args, "not-the-password\n");
    expect_credentials_rejected(&run);
}

#[track_caller]
fn expect_credentials_rejected(run: &Run) {
    expect_error(run, 4);
    let err = run.stderr.to_lowercase();
    assert!(
        ["credential", "password", "rejected", "denied", "authentication"]
            .iter()
            .any(|w| err.contains(w)),
        "message does not say the credentials were rejected:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not-the-password"), "password printed:\n{}", run.stderr);
}

/// Authenticated mode without a password and without a terminal to ask
/// on fails at once, saying so, whichever way the mode was asked for.
#[test]
fn authenticated_mode_without_password_fails_clearly() {
    let reg = Registry::start(Auth::Basic);
    let p = reg.push("sec/ret:1", &ImageSpec::small("no-password"));
    let env = Env::new();
    let host = reg.host_port();
    let mut runs = vec![
        ferry(&env, &reg, &["--auth", "inspect", &p.reference]),
        ferry(&env, &reg, &["login", &host]),
        // A user name alone asks for authenticated mode too.
        ferry(&env, &reg, &["--username", USERNAME, "inspect", &p.reference]),
    ];
    let mut cmd = env.command(with_ca(&reg, &["digest", &p.reference]));
    cmd.env("FERRY_AUTH", "yes");
    runs.push(cmd.output().expect("run ferry").into());
    for run in &runs {
        assert_ne!(run.code, 0, "{}", run.stderr);
        let err = run.stderr.to_lowercase();
        assert!(
            err.contains("terminal") || err.contains("password"),
            "does not say that a password is missing:\n{}",
            run.stderr
        );
    }
}

// ---- login / logout ---------------------------------------------------

#[test]
fn login_stores_credentials_and_logout_removes_them() {
    let reg = Registry::start(Auth::Basic);
    let p = reg.push("log/in:1", &ImageSpec::small("login"));
    let env = Env::new();
    let host = reg.host_port();

    let args = ["login", &host, "--username", USERNAME, "--password-stdin"];
    let run = ferry_input(&env, &reg, &args, &format!("{PASSWORD}\n"));
    run.ok();
    assert!(run.stderr.contains("login succeeded"), "{}", run.stderr);
    assert!(!run.stderr.contains(PASSWORD) && !run.stdout.contains(PASSWORD));

    // Stored base64 in $XDG_CONFIG_HOME/containers/auth.json, mode 0600.
    let file = env.path().join(".config/containers/auth.json");
    let mode = fs::metadata(&file).expect("auth file written").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "auth file mode {mode:o}");
    let stored: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["auths"][&host]["auth"], basic_value());

    // A later run finds the stored credentials by itself.
    let run = ferry(&env, &reg, &["digest", &p.reference]);
    run.ok();
    assert_eq!(run.stdout.trim_end(), p.digest);

    // Logout removes the entry, after which the registry refuses us.
    ferry(&env, &reg, &["logout", &host]).ok();
    let stored: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert!(stored["auths"].get(&host).is_none(), "entry left: {stored}");
    expect_error(&ferry(&env, &reg, &["digest", &p.reference]), 3);
}

#[test]
fn login_with_authfile_on_token_registry() {
    let reg = Registry::start(Auth::Token);
    let p = reg.push("private/img:1", &ImageSpec::small("login-token"));
    let env = Env::new();
    let host = reg.host_port();
    let authfile = env.path().join("my-auth.json");
    let authfile = authfile.to_str().unwrap();

    let args = ["--authfile", authfile, "login", &host, "--username", USERNAME, "--password-stdin"];
    let run = ferry_input(&env, &reg, &args, &format!("{PASSWORD}\n"));
    run.ok();
    assert!(run.stderr.contains("login succeeded"), "{}", run.stderr);
    let mode = fs::metadata(authfile).expect("auth file written").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "auth file mode {mode:o}");

    let run = ferry(&env, &reg, &["--authfile", authfile, "digest", &p.reference]);
    run.ok();
    assert_eq!(run.stdout.trim_end(), p.digest);

    // REGISTRY_AUTH_FILE names the same file.
    let mut cmd = env.command(with_ca(&reg, &["digest", &p.reference]));
    cmd.env("REGISTRY_AUTH_FILE", authfile);
    let run: Run = cmd.output().expect("run ferry").into();
    run.ok();
}

#[test]
fn login_with_wrong_password_exits_4_and_stores_nothing() {
    let reg = Registry::start(Auth::Basic);
    let env = Env::new();
    let args = ["login", &reg.host_port(), "--username", USERNAME, "--password-stdin"];
    let run = ferry_input(&env, &reg, &args, "not-the-password\n");
    expect_credentials_rejected(&run);
    let file = env.path().join(".config/containers/auth.json");
    if let Ok(text) = fs::read_to_string(&file) {
        assert!(!text.contains(&reg.host_port()), "stored after a failed login: {text}");
    }
}

// ---- token auth -------------------------------------------------------

/// none → anonymous Bearer: a `public/` repository needs no credentials,
/// and the token request carries none.
#[test]
fn token_anonymous_pull_of_public_repository() {
    let reg = Registry::start(Auth::Token);
    let p = reg.push("public/x:1", &ImageSpec::small("anon"));
    let before = reg.token_server().count();
    let env = Env::new();
    let run = ferry(&env, &reg, &["inspect", &p.reference]);
    run.ok();
    assert_eq!(field(&run, "digest"), p.digest);
    let asked = &reg.token_server().requests()[before..];
    assert!(!asked.is_empty(), "no token requested");
    assert!(asked.iter().all(|r| !r.authorization), "anonymous run sent credentials");
    assert!(
        asked.iter().any(|r| r.scopes.iter().any(|s| s == "repository:public/x:pull")),
        "scopes asked: {asked:?}"
    );
    let run = ferry(&env, &reg, &["tags", &reg.repo("public/x")]);
    run.ok();
    assert_eq!(run.stdout.trim_end(), "1");
}

#[test]
fn token_anonymous_cannot_read_private_repository() {
    let reg = Registry::start(Auth::Token);
    let p = reg.push("private/x:1", &ImageSpec::small("anon-private"));
    let env = Env::new();
    expect_error(&ferry(&env, &reg, &["inspect", &p.reference]), 3);
    expect_error(&ferry(&env, &reg, &["catalog", &reg.host_port()]), 3);
}

/// none → Bearer with credentials in authenticated mode (`--auth`, with
/// the credentials from the environment).
#[test]
fn token_with_credentials_reads_private_repository() {
    let reg = Registry::start(Auth::Token);
    let p = reg.push_two_platform("private/multi:1");
    let before = reg.token_server().count();
    let env = Env::new();
    let run = ferry_creds(&env, &reg, &["--auth", "inspect", "--json", &p.reference]);
    run.ok();
    assert_eq!(json(&run)["digest"], p.digest);
    let asked = &reg.token_server().requests()[before..];
    assert!(asked.iter().any(|r| r.authorization && r.status == 200), "{asked:?}");

    let args = ["--username", USERNAME, "--password-stdin", "digest", &p.reference];
    let run = ferry_input(&env, &reg, &args, &format!("{PASSWORD}\n"));
    run.ok();
    assert_eq!(run.stdout.trim_end(), p.digest);
}

/// anonymous Bearer → Bearer with credentials: the catalog scope is not
/// granted anonymously, so a run with credentials must get a token with
/// them for `registry:catalog:*`.
#[test]
fn token_wider_scope_uses_credentials() {
    let reg = Registry::start(Auth::Token);
    reg.push("public/a:1", &ImageSpec::small("wide-a"));
    reg.push("private/b:1", &ImageSpec::small("wide-b"));
    let env = Env::new();
    let before = reg.token_server().count();
    let run = ferry_creds(&env, &reg, &["--auth", "catalog", &reg.host_port()]);
    run.ok();
    assert_eq!(sorted(run.stdout.lines().map(String::from).collect()), ["private/b", "public/a"]);
    let asked = &reg.token_server().requests()[before..];
    assert!(
        asked.iter().any(|r| r.authorization
            && r.status == 200
            && r.scopes.iter().any(|s| s == "registry:catalog:*")),
        "no authenticated catalog token: {asked:?}"
    );

    // A private repository after a public one, in authenticated mode.
    let run = ferry_creds(&env, &reg, &["--auth", "tags", &reg.repo("private/b")]);
    run.ok();
    assert_eq!(run.stdout.trim_end(), "1");
}

#[test]
fn wrong_password_exits_4_token() {
    let reg = Registry::start(Auth::Token);
    let p = reg.push("private/x:1", &ImageSpec::small("token-wrong"));
    let env = Env::new();
    let args = ["--username", USERNAME, "--password-stdin", "inspect", &p.reference];
    let run = ferry_input(&env, &reg, &args, "not-the-password\n");
    expect_credentials_rejected(&run);
    assert!(reg.token_server().requests().iter().any(|r| r.status == 401));
}

// ---- promises: no threads, no secrets -----------------------------------

/// ferry is thread-free: an inspect over TLS with token auth and
/// credentials makes no clone at all, and certainly none with
/// CLONE_THREAD.
#[test]
fn no_thread_is_created() {
    require_tool("strace", "strace");
    let reg = Registry::start(Auth::Token);
    let p = reg.push_two_platform("private/strace:1");
    let env = Env::new();
    let trace = env.path().join("strace.out");
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-e", "trace=clone,clone3", "-o"]).arg(&trace);
    cmd.arg(crate::common::ferry_bin());
    cmd.args(with_ca(&reg, &["--username", USERNAME, "--password-stdin", "inspect"]));
    cmd.arg(&p.reference);
    // The same isolated environment ferry gets in every other test.
    let template = env.command(["unused"]);
    cmd.env_clear();
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let run = run_with_input(cmd, &format!("{PASSWORD}\n"));
    run.ok();
    assert_eq!(field(&run, "digest"), p.digest);

    let trace = fs::read_to_string(&trace).expect("strace output");
    assert!(!trace.contains("CLONE_THREAD"), "ferry created a thread:\n{trace}");
    let clones: Vec<&str> = trace.lines().filter(|l| l.contains("clone")).collect();
    assert!(clones.is_empty(), "ferry cloned (no process expected either):\n{trace}");
}

/// `-vv` shows headers, but never the password, the Basic value or a
/// token, whichever way the credentials came.
#[test]
fn verbose_output_shows_no_secret() {
    let basic = Registry::start(Auth::Basic);
    let token = Registry::start(Auth::Token);
    let pb = basic.push("private/v:1", &ImageSpec::small("vv-basic"));
    let pt = token.push("private/v:1", &ImageSpec::small("vv-token"));
    let env = Env::new();
    let mut runs = Vec::new();
    for (reg, p) in [(&basic, &pb), (&token, &pt)] {
        let args = ["-vv", "--username", USERNAME, "--password-stdin", "inspect", &p.reference];
        runs.push(ferry_input(&env, reg, &args, &format!("{PASSWORD}\n")));
        runs.push(ferry_creds(&env, reg, &["-vv", "--auth", "digest", &p.reference]));
        let args = ["-vv", "login", &reg.host_port(), "--username", USERNAME, "--password-stdin"];
        runs.push(ferry_input(&env, reg, &args, &format!("{PASSWORD}\n")));
        runs.push(ferry(&env, reg, &["-vv", "tags", &reg.repo("private/v")]));
    }
    let tokens = token.token_server().tokens();
    assert!(!tokens.is_empty(), "no token was issued");
    let mut secrets = vec![PASSWORD.to_string(), basic_value()];
    for t in &tokens {
        secrets.push(t.clone());
        // The signature alone is secret enough to look for.
        secrets.push(t.rsplit('.').next().unwrap().to_string());
    }
    for run in &runs {
        run.ok();
        assert!(!run.stderr.is_empty(), "-vv printed nothing");
        for s in &secrets {
            assert!(
                !run.stderr.contains(s.as_str()) && !run.stdout.contains(s.as_str()),
                "secret {s:.12}… printed:\nstdout:\n{}\nstderr:\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
}

// ---- escalation from an anonymous token to credentials -------------------

/// In authenticated mode with only a user name, ferry first tries an
/// anonymous token; when the registry refuses it, ferry asks for the
/// password on the terminal and gets a token with credentials.
#[test]
fn anonymous_token_escalates_to_credentials_on_a_terminal() {
    let script = require_tool("script", "bsdutils");
    let reg = Registry::start(Auth::Token);
    let p = reg.push("private/esc:1", &ImageSpec::small("escalate"));
    let env = Env::new();
    let before = reg.token_server().count();

    // script(1) gives ferry a pseudo-terminal; the password is typed ahead.
    let base = env.command(with_ca(&reg, &["--username", USERNAME, "digest", &p.reference]));
    let line: Vec<String> = std::iter::once(base.get_program().to_string_lossy().into_owned())
        .chain(base.get_args().map(|a| a.to_string_lossy().into_owned()))
        .map(|a| format!("'{a}'"))
        .collect();
    let mut cmd = std::process::Command::new(script);
    cmd.env_clear().args(["-qec", &line.join(" "), "/dev/null"]);
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let run = run_with_input(cmd, &format!("{PASSWORD}\n"));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&p.digest), "{run:?}");

    let asked = &reg.token_server().requests()[before..];
    let first = asked.first().expect("a token request");
    assert!(!first.authorization, "first token request should be anonymous: {asked:?}");
    assert!(
        asked.iter().any(|r| r.authorization && r.status == 200),
        "no token asked for with credentials: {asked:?}"
    );
    // Typed ahead, the password is echoed by the terminal before ferry
    // turns echo off; after the question it must not show.
    let after = run.stdout.split("Password for").nth(1).expect("a password prompt");
    assert!(!after.contains(PASSWORD), "password echoed: {run:?}");
}

/// certs.d counts for every registry of a run, not only the first one
/// opened: a copy whose two registries are trusted through their own
/// certs.d directories only (one named 127.0.0.1, the other localhost).
#[test]
fn certs_d_counts_for_each_registry_of_a_run() {
    let from = Registry::start(Auth::None);
    let to = Registry::start(Auth::None);
    let p = from.push("src/img:1", &ImageSpec::small("certsd-two"));
    let env = Env::new();
    let certs_d = env.path().join("certs.d");
    let to_host = to.host_port().replace("127.0.0.1", "localhost");
    for host in [from.host_port(), to_host.clone()] {
        let dir = certs_d.join(host);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(from.ca_cert(), dir.join("ca.crt")).unwrap();
    }
    let dst = format!("{to_host}/dst/img:1");
    let mut cmd = env.command(["copy", &p.reference, &dst]);
    cmd.env("FERRY_CERTS_D", &certs_d);
    let run: Run = cmd.output().expect("run ferry").into();
    run.ok();
    let mut cmd = env.command(["digest", &dst]);
    cmd.env("FERRY_CERTS_D", &certs_d);
    let run: Run = cmd.output().expect("run ferry").into();
    assert_eq!(run.ok().stdout.trim_end(), p.digest);
}
