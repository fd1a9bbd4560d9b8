//! `ferry push`, `copy` and `delete`: the air-gap round trip and copies
//! between real registries (digests compared with skopeo), layouts other
//! tools wrote, and the upload faults only the scripted fake produces.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::{Env, Run, output_within, require_tool};
use crate::fake::{Fake, Request, Response, Routes, Tokens, bearer_challenge};
use crate::harness::images::write_layout;
use crate::harness::registry::Options;
use crate::harness::{Auth, ImageSpec, PASSWORD, Registry, USERNAME, sha256};

/// Longest any single ferry run may take before the test calls it hung.
const LIMIT: Duration = Duration::from_secs(90);

/// Runs ferry trusting the harness certificate, with the harness user's
/// credentials in the environment (registries without auth ignore them).
fn ferry(env: &Env, args: &[&str]) -> Run {
    let ca = crate::harness::certs::certs().server_cert.display().to_string();
    let mut all = vec!["--ca-cert", ca.as_str()];
    all.extend_from_slice(args);
    let mut cmd = env.command(&all);
    cmd.env("FERRY_USERNAME", USERNAME).env("FERRY_PASSWORD", PASSWORD);
    output_within(cmd, LIMIT)
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("--json output: {e}\n{run:?}"))
}

/// The digest of what `reg` serves for `reference`, by skopeo.
fn served_digest(reg: &Registry, reference: &str) -> String {
    sha256(&reg.skopeo_raw(reference))
}

fn skopeo() -> Command {
    require_tool("skopeo", "skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.env_remove("REGISTRY_AUTH_FILE").env("XDG_RUNTIME_DIR", "/nonexistent-ferry-tests");
    cmd
}

/// The digest `index.json` of the layout `dir` gives `name`.
fn layout_digest(dir: &Path, name: &str) -> String {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {index:#}"))["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------
// The real registry.

#[test]
fn air_gap_round_trip_keeps_digests() {
    let outside = Registry::start(Auth::None);
    let single = outside.push("lib/app:1", &ImageSpec::small("air-gap"));
    let index = outside.push_two_platform("lib/multi:2");
    let env = Env::new();
    let dir = env.path().join("carried");
    let d = dir.to_str().unwrap();
    ferry(&env, &["pull", "--arch", "all", &single.reference, &index.reference, d]).ok();

    let inside = Registry::start(Auth::Basic);
    let target = format!("{}/mirror", inside.host_port());
    let run = ferry(&env, &["--json", "push", "--all", d, &target]);
    run.ok();
    let summary = json(&run);
    assert_eq!(summary["images"].as_array().unwrap().len(), 2, "{summary:#}");
    // A config and a layer per image: 2 + 2 × 2 blobs.
    assert_eq!(summary["blobs_uploaded"], 6, "{summary:#}");

    for (pushed, path) in [(&single, "lib/app:1"), (&index, "lib/multi:2")] {
        let there = format!("{target}/{path}");
        assert_eq!(served_digest(&inside, &there), pushed.digest, "{there}");
        let entry = summary["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["destination"] == there.as_str())
            .unwrap_or_else(|| panic!("{there} not reported: {summary:#}"))
            .clone();
        assert_eq!(entry["digest"], pushed.digest.as_str());
    }
    // The platform manifests are there by digest too.
    for image in &index.images {
        let by_digest = format!("{target}/lib/multi@{}", image.digest);
        assert_eq!(served_digest(&inside, &by_digest), image.digest);
    }

    // Again: everything is there, nothing is uploaded.
    let again = json(ferry(&env, &["--json", "push", "--all", d, &target]).ok());
    assert_eq!(again["blobs_uploaded"], 0, "{again:#}");
    assert_eq!(again["blobs_present"], 6, "{again:#}");
}

/// A layout name by digest whose entry holds another document (one
/// platform of an index pulled by digest; an image converted by
/// `--oci-types`) is pushed by the digest of what it holds: a registry
/// files a manifest under its own digest only.
#[test]
fn names_by_digest_push_what_the_layout_holds() {
    let outside = Registry::start(Auth::None);
    let index = outside.push_two_platform("lib/multi:3");
    let arm = &index.images[1];
    let mut spec = ImageSpec::small("by-digest-docker");
    spec.docker = true;
    let docker = outside.push("lib/dock:1", &spec);
    let host = outside.host_port();
    let by_index = format!("{host}/lib/multi@{}", index.digest);
    let by_docker = format!("{host}/lib/dock@{}", docker.digest);
    let env = Env::new();
    let dir = env.path().join("carried");
    let d = dir.to_str().unwrap();
    ferry(&env, &["pull", "--arch", &arm.platform, &by_index, d]).ok();
    ferry(&env, &["pull", "--oci-types", &by_docker, d]).ok();
    let converted = layout_digest(&dir, &by_docker);
    assert_ne!(converted, docker.digest);

    let inside = Registry::start(Auth::None);
    let target = format!("{}/mirror", inside.host_port());
    let run = ferry(&env, &["--json", "push", "--all", d, &target]);
    run.ok();
    assert_eq!(run.stderr.matches("pushing it by that digest").count(), 2, "{run:?}");
    let multi = format!("{target}/lib/multi@{}", arm.digest);
    assert_eq!(served_digest(&inside, &multi), arm.digest);
    let dock = format!("{target}/lib/dock@{converted}");
    assert_eq!(served_digest(&inside, &dock), converted);
    let destinations: Vec<_> =
        json(&run)["images"].as_array().unwrap().iter().map(|i| i["destination"].clone()).collect();
    assert!(destinations.contains(&Value::from(multi)), "{destinations:?}");
    assert!(destinations.contains(&Value::from(dock)), "{destinations:?}");
}

#[test]
fn layouts_from_skopeo_and_umoci_push_and_pull_back() {
    let reg = Registry::start(Auth::None);
    let pushed = reg.push("src/app:1", &ImageSpec::small("skopeo-layout"));
    let env = Env::new();

    // skopeo writes a layout with the short name "app".
    let by_skopeo = env.path().join("by-skopeo");
    let out = skopeo()
        .args(["copy", "--quiet", "--src-cert-dir"])
        .arg(reg.cert_dir())
        .arg(format!("docker://{}", pushed.reference))
        .arg(format!("oci:{}:app", by_skopeo.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));

    // umoci makes an image of its own with one inserted file.
    require_tool("umoci", "umoci");
    let by_umoci = env.path().join("by-umoci");
    let file = env.path().join("hello.txt");
    fs::write(&file, "hello from umoci\n").unwrap();
    let u = by_umoci.display().to_string();
    for args in [
        vec!["init", "--layout", u.as_str()],
        vec!["new", "--image", &format!("{u}:base")],
        vec![
            "insert",
            "--rootless",
            "--image",
            &format!("{u}:base"),
            file.to_str().unwrap(),
            "/hello",
        ],
    ] {
        let out = Command::new("umoci").args(&args).output().unwrap();
        assert!(out.status.success(), "umoci {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    for (dir, name, dest) in [(&by_skopeo, "app", "s/app:1"), (&by_umoci, "base", "u/base:1")] {
        let expected = layout_digest(dir, name);
        let target = reg.repo(dest);
        // Each layout holds one image, so the REF may be left out.
        ferry(&env, &["push", dir.to_str().unwrap(), &target]).ok();
        assert_eq!(served_digest(&reg, &target), expected, "{target}");
        let back = env.path().join(format!("back-{name}"));
        ferry(&env, &["pull", &target, back.to_str().unwrap()]).ok();
        assert_eq!(layout_digest(&back, &target), expected);
    }
    assert_eq!(layout_digest(&by_skopeo, "app"), pushed.digest);
}

#[test]
fn copy_between_registries_streams_once() {
    let from = Registry::start(Auth::None);
    let index = from.push_two_platform("lib/multi:2");
    let to = Registry::start(Auth::Token);
    let env = Env::new();
    let dst = to.repo("copied/multi:2");

    let run = ferry(&env, &["--json", "copy", &index.reference, &dst]);
    run.ok();
    let first = json(&run);
    assert_eq!(first["digest"], index.digest.as_str());
    assert_eq!(first["blobs_uploaded"], 4, "{first:#}");
    assert_eq!(served_digest(&to, &dst), index.digest);
    let gets = from.blob_gets("lib/multi");
    assert_eq!(gets, 4, "each blob fetched once:\n{}", from.log());

    // Again: the destination has every blob; none is fetched or sent.
    let uploads = to.count_requests("\"POST /v2/copied/multi/blobs/uploads");
    let again = json(ferry(&env, &["--json", "copy", &index.reference, &dst]).ok());
    assert_eq!(again["blobs_uploaded"], 0, "{again:#}");
    assert_eq!(again["blobs_present"], 4, "{again:#}");
    assert_eq!(from.blob_gets("lib/multi"), gets, "a blob was fetched again");
    assert_eq!(to.count_requests("\"POST /v2/copied/multi/blobs/uploads"), uploads);

    // Within the token registry blobs are mounted, with one token that
    // covers both repositories.
    let other = to.repo("other/multi:2");
    let mounted = json(ferry(&env, &["--json", "copy", &dst, &other]).ok());
    assert_eq!(mounted["blobs_mounted"], 4, "{mounted:#}");
    assert_eq!(served_digest(&to, &other), index.digest);
    let both = to.token_server().requests().into_iter().any(|r| {
        r.scopes.contains(&"repository:other/multi:pull,push".to_string())
            && r.scopes.contains(&"repository:copied/multi:pull".to_string())
    });
    assert!(both, "no token asked for both repositories");

    // One platform only, by --arch.
    let one = to.repo("one/multi:arm");
    let run =
        json(ferry(&env, &["--json", "copy", "--arch", "arm64", &index.reference, &one]).ok());
    let arm = &index.images[1];
    assert_eq!(run["digest"], arm.digest.as_str());
    assert_eq!(served_digest(&to, &one), arm.digest);
}

#[test]
fn delete_removes_a_manifest() {
    let reg = Registry::start(Auth::Basic);
    let pushed = reg.push("del/app:1", &ImageSpec::small("delete-me"));
    let env = Env::new();
    let run = ferry(&env, &["--json", "delete", &pushed.reference]);
    run.ok();
    assert_eq!(json(&run)["digest"], pushed.digest.as_str());
    let gone = ferry(&env, &["digest", &pushed.reference]);
    gone.expect_code(3);
}

#[test]
fn delete_disabled_says_so() {
    let reg = Registry::start_with(Options { deletes: false, ..Options::new(Auth::None) });
    let pushed = reg.push("del/app:1", &ImageSpec::small("keep-me"));
    let env = Env::new();
    let run = ferry(&env, &["delete", &pushed.reference]);
    run.expect_code(1);
    assert!(run.stderr.contains("does not allow deletes"), "{run:?}");
    assert!(run.stderr.contains("HTTP 405"), "{run:?}");
    assert!(run.stderr.contains("hint: "), "{run:?}");
    assert_eq!(served_digest(&reg, &pushed.reference), pushed.digest);
}

// ---------------------------------------------------------------------
// The scripted fake: a registry that takes uploads, with knobs.

/// How the fake's upload endpoints behave.
#[derive(Clone, Default)]
struct Knobs {
    /// `Location` of sessions: "absolute", "relative" or "query" (an
    /// absolute URL with `?_state=…` that PUT must keep).
    location: &'static str,
    /// Statuses the blob PUTs answer first, in order, before succeeding.
    put_failures: Vec<u16>,
    /// Every monolithic blob PUT (with a body) gets 413.
    refuse_bodies: bool,
    /// Answer mount requests 202 with a session instead of 201.
    mount_202: bool,
    /// `OCI-Chunk-Min-Length` on new sessions.
    min_chunk: Option<u64>,
    /// Delay of the first POST (to let a token expire under it).
    first_post_delay: Option<Duration>,
}

/// What the fake holds: blobs and manifests per repository, sessions.
#[derive(Default)]
struct Store {
    blobs: Mutex<HashMap<(String, String), Vec<u8>>>,
    manifests: Mutex<HashMap<(String, String), Vec<u8>>>,
    sessions: Mutex<HashMap<String, Vec<u8>>>,
    next: AtomicUsize,
    puts: AtomicUsize,
    posts: AtomicUsize,
}

/// `(repo, kind, rest)` of `/v2/REPO/KIND/REST`.
fn split(path: &str) -> Option<(String, &'static str, String)> {
    let rest = path.strip_prefix("/v2/")?;
    for kind in ["blobs/uploads", "blobs", "manifests"] {
        if let Some(i) = rest.find(&format!("/{kind}/")) {
            return Some((rest[..i].to_string(), kind, rest[i + kind.len() + 2..].to_string()));
        }
    }
    None
}

fn param<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.raw_params().into_iter().find(|(k, _)| *k == name).map(|(_, v)| v)
}

fn session_location(req: &Request, knobs: &Knobs, repo: &str, id: &str) -> String {
    let path = format!("/v2/{repo}/blobs/uploads/{id}");
    match knobs.location {
        "relative" => path,
        "query" => format!("{}{path}?_state=st-{id}", req.base_url()),
        _ => format!("{}{path}", req.base_url()),
    }
}

fn new_session(req: &Request, knobs: &Knobs, store: &Store, repo: &str) -> Response {
    let id = format!("u{}", store.next.fetch_add(1, Ordering::SeqCst));
    store.sessions.lock().unwrap().insert(id.clone(), Vec::new());
    let mut r = Response::new(202).header("Location", &session_location(req, knobs, repo, &id));
    if let Some(m) = knobs.min_chunk {
        r = r.header("OCI-Chunk-Min-Length", &m.to_string());
    }
    r
}

/// Answers `/v2/…` as a registry that stores what it is sent.
fn answer(req: &Request, knobs: &Knobs, store: &Store) -> Response {
    if req.path == "/v2/" {
        return Response::ok();
    }
    let Some((repo, kind, rest)) = split(&req.path) else { return Response::new(404) };
    match (req.method.as_str(), kind) {
        ("HEAD" | "GET", "blobs") => match store.blobs.lock().unwrap().get(&(repo, rest)) {
            Some(b) => Response::ok().body(b.clone()),
            None => Response::errors(404, "BLOB_UNKNOWN", "blob unknown"),
        },
        ("POST", "blobs/uploads") => {
            if let (Some(d), Some(from)) = (param(req, "mount"), param(req, "from")) {
                let d = d.replace("%3A", ":");
                let from = from.replace("%2F", "/");
                let held = store.blobs.lock().unwrap().get(&(from, d.clone())).cloned();
                if let (Some(b), false) = (held, knobs.mount_202) {
                    store.blobs.lock().unwrap().insert((repo, d), b);
                    return Response::new(201);
                }
                return new_session(req, knobs, store, &repo);
            }
            let n = store.posts.fetch_add(1, Ordering::SeqCst);
            let r = new_session(req, knobs, store, &repo);
            match knobs.first_post_delay {
                Some(d) if n == 0 => r.delay(d),
                _ => r,
            }
        }
        ("PATCH", "blobs/uploads") => {
            let mut sessions = store.sessions.lock().unwrap();
            let Some(data) = sessions.get_mut(&rest) else { return Response::new(404) };
            let start = data.len();
            let want = format!("{start}-{}", start + req.body.len() - 1);
            if req.header("content-range") != Some(want.as_str()) {
                return Response::errors(416, "BLOB_UPLOAD_INVALID", "bad Content-Range");
            }
            data.extend_from_slice(&req.body);
            Response::new(202)
                .header("Location", &session_location(req, knobs, &repo, &rest))
                .header("Range", &format!("0-{}", data.len() - 1))
        }
        ("PUT", "blobs/uploads") => {
            let n = store.puts.fetch_add(1, Ordering::SeqCst);
            if let Some(s) = knobs.put_failures.get(n) {
                return Response::errors(*s, "UNKNOWN", "scripted failure");
            }
            if knobs.refuse_bodies && !req.body.is_empty() {
                return Response::errors(413, "SIZE_INVALID", "body too large");
            }
            if knobs.location == "query" && param(req, "_state") != Some(&format!("st-{rest}")) {
                return Response::errors(400, "BLOB_UPLOAD_INVALID", "upload state lost");
            }
            let Some(mut data) = store.sessions.lock().unwrap().remove(&rest) else {
                return Response::errors(404, "BLOB_UPLOAD_UNKNOWN", "no such session");
            };
            data.extend_from_slice(&req.body);
            let Some(d) = param(req, "digest").map(|d| d.replace("%3A", ":")) else {
                return Response::errors(400, "DIGEST_INVALID", "no digest");
            };
            if crate::fake::sha256(&data) != d {
                return Response::errors(400, "DIGEST_INVALID", "digest mismatch");
            }
            store.blobs.lock().unwrap().insert((repo, d.clone()), data);
            Response::new(201).header("Docker-Content-Digest", &d)
        }
        ("PUT", "manifests") => {
            let d = crate::fake::sha256(&req.body);
            let mut m = store.manifests.lock().unwrap();
            m.insert((repo.clone(), rest), req.body.clone());
            m.insert((repo, d.clone()), req.body.clone());
            Response::new(201).header("Docker-Content-Digest", &d)
        }
        _ => Response::new(405),
    }
}

/// A fake registry with `knobs`, behind Bearer auth when `tokens` is given.
fn upload_fake(knobs: Knobs, tokens: Option<Arc<Tokens>>) -> (Fake, Arc<Store>) {
    let fake = Fake::http();
    let store = Arc::new(Store::default());
    let s = store.clone();
    let mut routes = Routes::new();
    if let Some(t) = tokens {
        let challenge =
            bearer_challenge(&format!("{}/token", fake.url()), "fake", "repository:a/b:pull,push");
        routes = routes.token_endpoint("/token", t.clone(), None).require_bearer(t, &challenge);
    }
    routes = routes.handle("*", "/v2/*", move |req, _| answer(req, &knobs, &s));
    (fake.serve(routes), store)
}

/// A layout holding one image named `img`, with a layer of `size` bytes
/// that does not compress.
fn one_image_layout(env: &Env, seed: &str, size: usize) -> (String, String, usize) {
    let dir = env.path().join("layout");
    let built = write_layout(&dir, "img", &ImageSpec::small(seed).with_random_layer("data", size));
    let blobs = 1 + built.layers.len();
    (dir.display().to_string(), built.digest, blobs)
}

fn ferry_fake(env: &Env, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut all = vec!["--plain-http", "--timeout", "5", "--retries", "2"];
    all.extend_from_slice(args);
    let mut cmd = env.command(&all);
    cmd.envs(envs.iter().copied());
    output_within(cmd, LIMIT)
}

/// Pushes the layout to `a/b:t` on `fake`; asserts it all arrived.
#[track_caller]
fn push_ok(fake: &Fake, store: &Store, extra: &[&str], envs: &[(&str, &str)]) -> Run {
    let env = Env::new();
    let (dir, digest, blobs) = one_image_layout(&env, "fake-push", 40_000);
    let dest = format!("{}/a/b:t", fake.host());
    let mut args = vec!["-v", "push"];
    args.extend_from_slice(extra);
    args.extend([dir.as_str(), dest.as_str()]);
    let run = ferry_fake(&env, &args, envs);
    assert_eq!(run.code, 0, "{run:?}\n{}", fake.log());
    assert_eq!(store.blobs.lock().unwrap().len(), blobs, "{}", fake.log());
    let m = store.manifests.lock().unwrap();
    assert!(m.contains_key(&("a/b".into(), "t".into())), "{}", fake.log());
    assert!(m.contains_key(&("a/b".into(), digest)), "digest changed: {}", fake.log());
    run
}

#[test]
fn relative_location_is_resolved() {
    let (fake, store) = upload_fake(Knobs { location: "relative", ..Knobs::default() }, None);
    push_ok(&fake, &store, &[], &[]);
}

#[test]
fn location_query_is_kept() {
    let (fake, store) = upload_fake(Knobs { location: "query", ..Knobs::default() }, None);
    push_ok(&fake, &store, &[], &[]);
    for r in fake.requests().iter().filter(|r| r.method == "PUT" && r.path.contains("/uploads/")) {
        let q = r.query.as_deref().unwrap_or("");
        assert!(q.starts_with("_state=") && q.contains("&digest=sha256%3A"), "{}", r.target);
    }
}

#[test]
fn chunks_honour_the_minimum_length() {
    let knobs = Knobs { min_chunk: Some(16 * 1024), ..Knobs::default() };
    let (fake, store) = upload_fake(knobs, None);
    push_ok(&fake, &store, &["--chunk-size", "1K"], &[]);
    let patches: Vec<Request> =
        fake.requests().into_iter().filter(|r| r.method == "PATCH").collect();
    assert!(patches.len() >= 3, "{}", fake.log());
    // Every chunk but a session's last is at least the minimum.
    for (i, p) in patches.iter().enumerate() {
        let last = !patches[i + 1..].iter().any(|q| q.path == p.path);
        assert!(p.body.len() >= 16 * 1024 || last, "short chunk of {} bytes", p.body.len());
    }
}

#[test]
fn mount_answered_202_uploads_into_that_session() {
    let (fake, store) = upload_fake(Knobs { mount_202: true, ..Knobs::default() }, None);
    let env = Env::new();
    let dir = env.path().join("layout");
    let built = write_layout(&dir, "x.io/one/app:1", &ImageSpec::small("mount"));
    // A second name for the same image in another repository.
    let mut index: Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut second = index["manifests"][0].clone();
    second["annotations"]["org.opencontainers.image.ref.name"] = "x.io/two/app:1".into();
    index["manifests"].as_array_mut().unwrap().push(second);
    fs::write(dir.join("index.json"), index.to_string()).unwrap();

    let run = ferry_fake(
        &env,
        &["--json", "-v", "push", "--all", dir.to_str().unwrap(), &format!("{}/p", fake.host())],
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}\n{}", fake.log());
    let summary = json(&run);
    assert_eq!(summary["blobs_uploaded"], 4, "{summary:#}");
    let mounts = fake.requests().into_iter().filter(|r| param(r, "mount").is_some()).count();
    assert_eq!(mounts, 2, "{}", fake.log());
    // The sessions the refused mounts opened were used: no plain POST for two.
    assert_eq!(fake.count("POST", "/v2/p/two/app/blobs/uploads/") - mounts, 0, "{}", fake.log());
    let blobs = store.blobs.lock().unwrap();
    assert!(blobs.contains_key(&("p/two/app".into(), built.config_digest.clone())));
}

#[test]
fn refused_large_body_hints_at_chunks() {
    let (fake, store) = upload_fake(Knobs { refuse_bodies: true, ..Knobs::default() }, None);
    let env = Env::new();
    let (dir, _, _) = one_image_layout(&env, "too-large", 10_000);
    let dest = format!("{}/a/b:t", fake.host());
    let run = ferry_fake(&env, &["push", &dir, &dest], &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("413"), "{run:?}");
    assert!(run.stderr.contains("hint: ") && run.stderr.contains("--chunk-size"), "{run:?}");
    // 413 is not retried.
    assert_eq!(store.posts.load(Ordering::SeqCst), 1, "{}", fake.log());
    // With chunks the same registry takes it (chunks of 4 KiB and an empty PUT).
    push_ok(&fake, &store, &["--chunk-size", "4K"], &[]);
}

#[test]
fn failed_put_starts_a_new_session() {
    let (fake, store) = upload_fake(Knobs { put_failures: vec![500], ..Knobs::default() }, None);
    let run = push_ok(&fake, &store, &[], &[]);
    assert!(run.stderr.contains("new upload session"), "{run:?}");
    // Three blobs, the first of them twice.
    assert_eq!(store.posts.load(Ordering::SeqCst), 4, "{}", fake.log());
    assert_eq!(store.puts.load(Ordering::SeqCst), 4, "{}", fake.log());
}

#[test]
fn cut_connection_during_upload_starts_a_new_session() {
    let knobs = Knobs::default();
    let (fake, store) = upload_fake(knobs.clone(), None);
    // The first blob PUT is answered by closing the connection.
    let s = store.clone();
    let cut = Arc::new(AtomicUsize::new(0));
    fake.set(Arc::new(move |req: &Request| {
        if req.method == "PUT"
            && req.path.contains("/uploads/")
            && cut.fetch_add(1, Ordering::SeqCst) == 0
        {
            return Response::drop_connection();
        }
        answer(req, &knobs, &s)
    }));
    push_ok(&fake, &store, &[], &[]);
    assert_eq!(store.posts.load(Ordering::SeqCst), 4, "{}", fake.log());
}

#[test]
fn token_expiring_mid_push_is_renewed() {
    let tokens = Arc::new(Tokens::new(Duration::from_millis(1000)));
    let knobs = Knobs { first_post_delay: Some(Duration::from_millis(1500)), ..Knobs::default() };
    let (fake, store) = upload_fake(knobs, Some(tokens.clone()));
    let creds = [("FERRY_USERNAME", "u"), ("FERRY_PASSWORD", "p")];
    push_ok(&fake, &store, &[], &creds);
    assert!(tokens.count() >= 2, "token not renewed: {}", fake.log());
    // Three blobs; the PUT under the expired token was one more.
    let puts = fake
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/uploads/"))
        .count();
    assert_eq!(puts, 4, "{}", fake.log());
}

/// A source GET cut in the middle of a blob during `copy`: the upload in
/// flight is abandoned, a fresh session takes the blob from a fresh GET,
/// and the destination ends with the exact image.
#[test]
fn copy_survives_a_source_cut_mid_blob() {
    let image = crate::fake::Image::new("copy-cut");
    let layer_path = format!("/v2/src/img/blobs/{}", image.layer_digest);
    let layer = image.layer.clone();
    let source = Fake::http().serve(
        Routes::new()
            .on("GET|HEAD", "/v2/", Response::ok())
            .handle("GET", &layer_path, move |_, n| {
                let full = Response::ok().body(layer.clone());
                if n == 0 { full.close_after(layer.len() / 2) } else { full }
            })
            .image("src/img", "t", &image),
    );
    let (dest, store) = upload_fake(Knobs::default(), None);
    let env = Env::new();
    let from = format!("{}/src/img:t", source.host());
    let to = format!("{}/a/b:t", dest.host());
    let run = ferry_fake(&env, &["copy", &from, &to], &[]);
    assert_eq!(run.code, 0, "{run:?}\n{}\n{}", source.log(), dest.log());
    let blobs = store.blobs.lock().unwrap();
    assert_eq!(blobs.get(&("a/b".into(), image.layer_digest.clone())), Some(&image.layer));
    let manifests = store.manifests.lock().unwrap();
    assert_eq!(manifests.get(&("a/b".into(), image.digest.clone())), Some(&image.manifest));
    assert!(source.count("GET", &layer_path) >= 2, "{}", source.log());
}
