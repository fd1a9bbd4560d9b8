//! Hostile documents and broken transports, driven through `inspect` and
//! `digest` against the scripted fake: every case ends in a clear error
//! (or a clean success where the case is only odd), no request is built
//! from a bad digest, and no bound is exceeded.
//!
//! The pull-side cases (blobs, the layout on disk) live with the pull
//! tests; the auth and redirect cases in `faults`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fake::{Behaviour, Fake, Image, Response, Routes, Tokens, quote};
use crate::faults::{MANIFEST, REPO, assert_clean_failure, assert_digest, base, ferry, image_ref};

const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// A manifest naming `config` (digest, size) and one layer `layer`.
fn manifest_with(config: (&str, i128), layer: (&str, i128)) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config.0, "size": config.1 },
        "layers": [{ "mediaType": LAYER_TYPE, "digest": layer.0, "size": layer.1 }],
    }))
    .unwrap()
}

fn serve_manifest(fake: &Fake, body: Vec<u8>, extra: Routes) {
    let resp = Response::ok().header("Content-Type", MANIFEST_TYPE).body(body);
    fake.set(extra.on("GET|HEAD", MANIFEST, resp).into_handler());
}

#[test]
fn malformed_digests_are_refused_before_any_url_is_built() {
    let good = Image::new("digests");
    let hex = &good.layer_digest["sha256:".len()..];
    let bad = [
        "sha256:../../../../etc/passwd".to_string(),
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha256:{}", &hex[..40]),
        format!("sha256:{hex}00"),
        format!("md5:{}", &hex[..32]),
        format!("sha256:{}/{}", &hex[..31], &hex[32..]),
        format!("sha256:{}\u{0}", &hex[..63]),
        format!("SHA256:{hex}"),
    ];
    for digest in &bad {
        let fake = Fake::http();
        // The bad digest as config and as layer: neither may be fetched.
        for (config, layer) in [
            (digest.as_str(), good.layer_digest.as_str()),
            (good.config_digest.as_str(), digest.as_str()),
        ] {
            serve_manifest(&fake, manifest_with((config, 10), (layer, 10)), base());
            let run = ferry(&fake, &["inspect", &image_ref(&fake)], &[]);
            assert_clean_failure(&run, &[1]);
            assert!(run.stderr.contains("invalid digest"), "{digest}: {run:?}");
            let blob_gets = fake.requests().iter().filter(|r| r.path.contains("/blobs/")).count();
            assert_eq!(blob_gets, 0, "{digest}: {}", fake.log());
        }
    }
}

#[test]
fn absurd_and_negative_sizes_are_refused() {
    let image = Image::new("sizes");
    let fake = Fake::http();
    // A config "size" of a petabyte is never fetched.
    let huge = manifest_with((&image.config_digest, 1 << 50), (&image.layer_digest, 5));
    serve_manifest(&fake, huge, base().image(REPO, "other", &image));
    let run = ferry(&fake, &["inspect", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1]);
    assert_eq!(
        fake.requests().iter().filter(|r| r.path.contains("/blobs/")).count(),
        0,
        "{}",
        fake.log()
    );

    let negative = manifest_with((&image.config_digest, -1), (&image.layer_digest, 5));
    serve_manifest(&fake, negative, base());
    assert_clean_failure(&ferry(&fake, &["inspect", &image_ref(&fake)], &[]), &[1]);
}

#[test]
fn config_bytes_must_match_size_and_digest() {
    let image = Image::new("config");
    let fake = Fake::http();
    let config_path = format!("/v2/{REPO}/blobs/{}", image.config_digest);
    // Longer, shorter, and same length with other bytes.
    let mut other = image.config.clone();
    other[0] ^= 1;
    let longer = [image.config.clone(), b"extra".to_vec()].concat();
    let shorter = image.config[..image.config.len() - 1].to_vec();
    for body in [longer, shorter, other] {
        fake.set(
            base()
                .on("GET|HEAD", MANIFEST, image.manifest_response())
                .on("GET", &config_path, Response::ok().body(body))
                .into_handler(),
        );
        let run = ferry(&fake, &["inspect", &image_ref(&fake)], &[]);
        assert_clean_failure(&run, &[1]);
        assert!(run.stderr.contains(&image.config_digest), "{run:?}");
    }
}

#[test]
fn oversized_manifest_and_config_are_bounded() {
    let image = Image::new("big");
    let fake = Fake::http();
    // 5 MiB of valid-looking JSON.
    let mut big = br#"{"schemaVersion":2,"pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 5 << 20));
    big.extend(br#""}"#);
    serve_manifest(&fake, big, base());
    let run = ferry(&fake, &["inspect", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1]);
    assert!(run.stderr.contains("larger than"), "{run:?}");

    // A config descriptor of 5 MiB is refused before it is fetched.
    let manifest = manifest_with((&image.config_digest, 5 << 20), (&image.layer_digest, 5));
    serve_manifest(&fake, manifest, base());
    let before = fake.requests().len();
    let run = ferry(&fake, &["inspect", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1]);
    assert!(
        fake.requests()[before..].iter().all(|r| !r.path.contains("/blobs/")),
        "{}",
        fake.log()
    );
}

#[test]
fn deeply_nested_json_is_an_error_not_a_crash() {
    let fake = Fake::http();
    let deep = format!(r#"{{"schemaVersion":2,"manifests":{}}}"#, "[".repeat(100_000));
    serve_manifest(&fake, deep.into_bytes(), base());
    let run = ferry(&fake, &["inspect", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1]);
}

#[test]
fn disagreeing_docker_content_digest_is_refused() {
    let image = Image::new("claims");
    let other = Image::new("other");
    let fake = Fake::http();
    let resp = Response::ok()
        .header("Content-Type", MANIFEST_TYPE)
        .header("Docker-Content-Digest", &other.digest)
        .body(image.manifest.clone());
    fake.set(base().on("GET", MANIFEST, resp).into_handler());
    let run = ferry(&fake, &["inspect", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1]);
    assert!(run.stderr.contains("claims"), "{run:?}");
}

#[test]
fn index_without_the_platform_lists_what_it_has() {
    let image = Image::new("plat");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": MANIFEST_TYPE, "digest": image.digest, "size": image.manifest.len(),
              "platform": { "architecture": "amd64", "os": "linux" } },
            { "mediaType": MANIFEST_TYPE, "digest": image.digest, "size": image.manifest.len(),
              "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" } },
        ],
    }))
    .unwrap();
    let fake = Fake::http();
    let resp = Response::ok()
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(index);
    fake.set(base().on("GET|HEAD", MANIFEST, resp).into_handler());
    let run =
        ferry(&fake, &["inspect", "--config", "--arch", "linux/s390x", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[3]);
    assert!(run.stderr.contains("linux/amd64") && run.stderr.contains("linux/arm64/v8"), "{run:?}");
    assert!(run.stderr.contains("hint:") && run.stderr.contains("--arch"), "{run:?}");
}

#[test]
fn bad_gateway_and_unavailable_are_retried() {
    let image = Image::new("5xx");
    for status in [502, 503] {
        let fake = Fake::http();
        fake.set(
            base()
                .seq(
                    "GET|HEAD",
                    MANIFEST,
                    vec![
                        Response::errors(status, "UNAVAILABLE", "later"),
                        image.manifest_response(),
                    ],
                )
                .into_handler(),
        );
        let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
        assert_digest(&run, &image);
        assert_eq!(fake.count("HEAD", MANIFEST), 2, "{}", fake.log());
    }
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let image = Image::new("date");
    let fake = Fake::http();
    // A date in the past: retry at once.
    let limited = Response::errors(429, "TOOMANYREQUESTS", "slow down")
        .header("Retry-After", "Thu, 01 Jan 1970 00:00:00 GMT");
    fake.set(
        base().seq("GET|HEAD", MANIFEST, vec![limited, image.manifest_response()]).into_handler(),
    );
    let start = Instant::now();
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
}

#[test]
fn a_server_stalling_after_the_headers_times_out() {
    let image = Image::new("stall");
    let fake = Fake::http();
    let stalled =
        image.manifest_response().behaviour(Behaviour::StallAfterHeaders(Duration::from_secs(20)));
    fake.set(base().on("GET|HEAD", MANIFEST, stalled).into_handler());
    let start = Instant::now();
    let run =
        ferry(&fake, &["--timeout", "1", "--retries", "0", "inspect", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[5]);
    assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
}

#[test]
fn bodies_cut_short_are_errors() {
    let image = Image::new("cut");
    for behaviour in [
        Behaviour::ChunkedTruncated,
        Behaviour::CloseAfter(10),
        Behaviour::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"schemaVersion\":2".to_vec(),
        ),
    ] {
        let fake = Fake::http();
        let resp = image.manifest_response().behaviour(behaviour.clone());
        fake.set(base().on("GET|HEAD", MANIFEST, resp).into_handler());
        let run = ferry(&fake, &["--retries", "0", "inspect", &image_ref(&fake)], &[]);
        assert_clean_failure(&run, &[1, 5]);
    }
    // Close-delimited and complete is fine; close-delimited and short is
    // caught by the digest of a by-digest reference.
    let fake = Fake::http();
    let whole = image.manifest_response().behaviour(Behaviour::CloseDelimited);
    fake.set(base().image(REPO, "x", &image).on("GET|HEAD", MANIFEST, whole).into_handler());
    ferry(&fake, &["inspect", &image_ref(&fake)], &[]).ok();
    let short = Response::ok()
        .header("Content-Type", MANIFEST_TYPE)
        .body(image.manifest[..image.manifest.len() - 3].to_vec())
        .behaviour(Behaviour::CloseDelimited);
    let by_digest = format!("/v2/{REPO}/manifests/{}", image.digest);
    fake.set(base().on("GET|HEAD", &by_digest, short).into_handler());
    let reference = format!("{}/{REPO}@{}", fake.host(), image.digest);
    assert_clean_failure(&ferry(&fake, &["inspect", &reference], &[]), &[1]);
}

#[test]
fn a_messy_but_valid_challenge_is_understood() {
    let image = Image::new("messy");
    let fake = Fake::http();
    let tokens = Arc::new(Tokens::forever());
    let realm = format!("{}/token", fake.url());
    // Mixed case, extra spaces, an escaped quote, a comma inside quotes,
    // a trailing comma, and a Basic challenge before it.
    let header = format!(
        "Basic realm=\"x, y\",   bEaReR   realm={} ,service=\"fa\\\"ke\",  scope=\"repository:a/b:pull\",",
        quote(&realm)
    );
    fake.set(
        base()
            .token_endpoint("/token", tokens.clone(), Some(300))
            .require_bearer(tokens.clone(), &header)
            .image(REPO, "t", &image)
            .into_handler(),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_digest(&run, &image);
    let asked: Vec<_> = fake.requests().into_iter().filter(|r| r.path == "/token").collect();
    assert!(asked.iter().any(|r| r.target.contains("service=fa%22ke")), "{}", fake.log());
}

#[test]
fn an_empty_token_reply_is_a_clear_error() {
    let image = Image::new("empty-token");
    let fake = Fake::http();
    let tokens = Arc::new(Tokens::forever());
    let header =
        format!("Bearer realm={},service=\"fake\"", quote(&format!("{}/token", fake.url())));
    fake.set(
        base()
            .on("GET", "/token", Response::ok())
            .require_bearer(tokens, &header)
            .image(REPO, "t", &image)
            .into_handler(),
    );
    let run = ferry(&fake, &["digest", &image_ref(&fake)], &[]);
    assert_clean_failure(&run, &[1]);
    assert!(run.stderr.contains("token"), "{run:?}");
}

/// A blob whose chunked encoding never ends, or whose close-delimited body
/// stops short, is never stored under its digest.
#[test]
fn blobs_cut_short_never_land_in_the_layout() {
    let image = Image::new("cut-blob");
    let layer_path = format!("/v2/{REPO}/blobs/{}", image.layer_digest);
    let short = image.layer[..image.layer.len() - 4].to_vec();
    for resp in [
        Response::ok().body(image.layer.clone()).behaviour(Behaviour::ChunkedTruncated),
        Response::ok().body(short).behaviour(Behaviour::CloseDelimited),
    ] {
        let fake = Fake::http();
        fake.set(base().on("GET", &layer_path, resp).image(REPO, "t", &image).into_handler());
        let env = crate::common::Env::new();
        let layout = env.path().join("layout");
        let run = ferry(
            &fake,
            &["--retries", "1", "pull", &image_ref(&fake), layout.to_str().unwrap()],
            &[],
        );
        assert_clean_failure(&run, &[1, 5]);
        let final_name = layout.join("blobs/sha256").join(&image.layer_digest["sha256:".len()..]);
        assert!(!final_name.exists(), "{run:?}");
        assert!(
            !layout.join("index.json").exists()
                || !std::fs::read_to_string(layout.join("index.json"))
                    .unwrap()
                    .contains(&image.digest)
        );
    }
}

/// A layer descriptor's foreign `urls` are not followed: the blob comes
/// from the registry (with its credentials), and the other host sees
/// nothing at all.
#[test]
fn foreign_layer_urls_are_not_followed() {
    let image = Image::new("foreign");
    let other = Fake::other_http();
    other.set(Routes::new().into_handler());
    // A config that names the one layer (the fake's own names none).
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [image.layer_digest] },
    }))
    .unwrap();
    let config_digest = crate::fake::sha256(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": { "mediaType": CONFIG_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "digest": image.layer_digest, "size": image.layer.len(),
            "urls": [format!("{}/foreign/layer", other.url())],
        }],
    }))
    .unwrap();
    let fake = Fake::http();
    let resp = Response::ok().header("Content-Type", MANIFEST_TYPE).body(manifest);
    let config_path = format!("/v2/{REPO}/blobs/{config_digest}");
    fake.set(
        base()
            .on("GET|HEAD", MANIFEST, resp)
            .on("GET", &config_path, Response::ok().body(config))
            .image(REPO, "other", &image)
            .into_handler(),
    );
    let env = crate::common::Env::new();
    let layout = env.path().join("layout");
    let creds = [("FERRY_USERNAME", "u"), ("FERRY_PASSWORD", "p-secret")];
    let run = ferry(&fake, &["pull", &image_ref(&fake), layout.to_str().unwrap()], &creds);
    run.ok();
    assert!(other.requests().is_empty(), "foreign URL contacted: {}", other.log());
    let blob = layout.join("blobs/sha256").join(&image.layer_digest["sha256:".len()..]);
    assert_eq!(std::fs::read(blob).unwrap(), image.layer);
}
