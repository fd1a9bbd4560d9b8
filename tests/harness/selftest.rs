//! Checks of the harness itself, without ferry: each registry variant
//! starts, takes a push from skopeo, and enforces its auth; the token
//! server's tokens are accepted by the registry; storage edits show up.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::token::SERVICE;
use super::*;

fn basic() -> String {
    format!("Basic {}", STANDARD.encode(format!("{USERNAME}:{PASSWORD}")))
}

fn token(reg: &Registry, scope: &str, auth: Option<&str>) -> (u16, String) {
    let url = format!(
        "{}?service={SERVICE}&scope={}",
        reg.token_server().realm(),
        scope.replace(':', "%3A")
    );
    let resp = registry::get(&url, auth);
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    (resp.status, body["token"].as_str().unwrap_or("").to_string())
}

#[test]
fn no_auth_registry_takes_a_push() {
    let reg = Registry::start(Auth::None);
    let pushed = reg.push("a/b:t", &ImageSpec::small("none"));
    assert_eq!(pushed.digest, sha256(&pushed.raw));
    assert_eq!(reg.skopeo_raw(&pushed.reference), pushed.raw);
    assert_eq!(reg.get("/v2/", None).status, 200);
    let r = reg.get(&format!("/v2/a/b/manifests/{}", pushed.digest), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("docker-content-digest"), Some(pushed.digest.as_str()));
    assert!(reg.count_requests("\"PUT /v2/a/b/manifests/t") == 1, "{}", reg.log());

    // The access log counts blob GETs.
    let layer = &pushed.images[0].layers[0].0;
    let before = reg.blob_gets("a/b");
    assert_eq!(reg.get(&format!("/v2/a/b/blobs/{layer}"), None).status, 200);
    assert_eq!(reg.blob_gets("a/b"), before + 1);
}

#[test]
fn basic_registry_wants_the_password() {
    let reg = Registry::start(Auth::Basic);
    reg.push("x/y:1", &ImageSpec::small("basic"));
    let r = reg.get("/v2/", None);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic realm="));
    assert_eq!(reg.get("/v2/", Some(&basic())).status, 200);
    assert_eq!(reg.get("/v2/", Some("Basic Zm9vOmJhcg==")).status, 401);
}

#[test]
fn token_registry_accepts_harness_tokens() {
    let reg = Registry::start(Auth::Token);
    let pushed = reg.push("private/img:1", &ImageSpec::small("tok"));
    reg.push("public/img:1", &ImageSpec::small("tok-pub"));
    let r = reg.get("/v2/", None);
    assert_eq!(r.status, 401);
    let challenge = r.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer realm=\"https://127.0.0.1:"), "{challenge}");
    assert!(challenge.contains(&format!("service=\"{SERVICE}\"")), "{challenge}");

    // Anonymous: pull on public/ only.
    let (status, anon) = token(&reg, "repository:public/img:pull", None);
    assert_eq!(status, 200);
    let r = reg.get("/v2/public/img/manifests/1", Some(&format!("Bearer {anon}")));
    assert_eq!(r.status, 200, "{}", reg.log());
    let (_, anon_private) = token(&reg, "repository:private/img:pull", None);
    let r = reg.get("/v2/private/img/manifests/1", Some(&format!("Bearer {anon_private}")));
    assert_eq!(r.status, 401);

    // With credentials: the private repository and the catalog.
    let (status, full) = token(&reg, "repository:private/img:pull", Some(&basic()));
    assert_eq!(status, 200);
    let r = reg.get("/v2/private/img/manifests/1", Some(&format!("Bearer {full}")));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("docker-content-digest"), Some(pushed.digest.as_str()));
    let (_, cat) = token(&reg, "registry:catalog:*", Some(&basic()));
    let r = reg.get("/v2/_catalog", Some(&format!("Bearer {cat}")));
    assert_eq!(r.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["repositories"], serde_json::json!(["private/img", "public/img"]));

    // Wrong password: 401 with a JSON body, and it is logged.
    let (status, _) = token(&reg, "repository:private/img:pull", Some("Basic Zm9vOmJhcg=="));
    assert_eq!(status, 401);
    let log = reg.token_server().requests();
    assert!(log.iter().any(|r| r.status == 401 && r.authorization));
    assert!(log.iter().any(|r| r.scopes == ["registry:catalog:*"]));
}

#[test]
fn two_platform_index_and_storage_edits() {
    let reg = Registry::start(Auth::None);
    let pushed = reg.push_two_platform("multi:latest");
    assert_eq!(reg.skopeo_raw(&pushed.reference), pushed.raw);
    let index: serde_json::Value = serde_json::from_slice(&pushed.raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(pushed.images[1].platform, "linux/arm64/v8");

    // Tags and repositories added in storage are served, and `n` pages.
    for i in 0..5 {
        reg.copy_tag("multi", "latest", &format!("t{i}"));
    }
    reg.copy_repo("multi", "multi2");
    let r = reg.get("/v2/multi/tags/list", None);
    let tags: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 6, "{tags}");
    let r = reg.get("/v2/_catalog?n=1", None);
    assert_eq!(r.status, 200);
    assert!(r.header("link").unwrap().contains("rel=\"next\""), "{:?}", r.headers);
    let r = reg.get("/v2/multi2/manifests/t3", None);
    assert_eq!(r.header("docker-content-digest"), Some(pushed.digest.as_str()));
}

#[test]
fn docker_format_push() {
    let reg = Registry::start(Auth::None);
    let mut spec = ImageSpec::small("docker");
    spec.docker = true;
    spec.history = false;
    let pushed = reg.push("d:1", &spec);
    let m: serde_json::Value = serde_json::from_slice(&pushed.raw).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(pushed.digest, sha256(&pushed.raw));
}

#[test]
fn redirect_middleware_sends_blobs_elsewhere() {
    let mut opts = registry::Options::new(Auth::None);
    opts.redirect_baseurl = Some("https://127.0.0.2:9".into());
    let reg = Registry::start_with(opts);
    let pushed = reg.push("r:1", &ImageSpec::small("redirect"));
    let layer = &pushed.images[0].layers[0].0;
    let r = reg.get(&format!("/v2/r/blobs/{layer}"), None);
    assert_eq!(r.status, 307);
    let location = r.header("location").unwrap();
    let path = location.strip_prefix("https://127.0.0.2:9/").expect(location);
    assert!(reg.storage().join(path).is_file(), "{location} is not a path in storage");
}
