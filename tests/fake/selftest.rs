//! Tests of the fake itself, with raw std TcpStream requests (and ureq, the
//! client ferry uses, for keep-alive and TLS), so a failing ferry test can
//! be blamed on ferry and not on the fake.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use super::*;

const T: Duration = Duration::from_secs(5);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads one response with Content-Length framing off a kept-alive stream.
fn read_one(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "eof in head: {}", text(&head));
        head.push(byte[0]);
    }
    let head = text(&head);
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn keep_alive_serves_requests_in_order_on_one_connection() {
    let fake = Fake::http().serve(Routes::new().on("GET", "/a", Response::ok().body("first")).on(
        "GET",
        "/b",
        Response::ok().body("second"),
    ));
    let mut s = TcpStream::connect(fake.addr()).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    // Both requests in one write: the second is already buffered.
    s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (h1, b1) = read_one(&mut s);
    let (h2, b2) = read_one(&mut s);
    assert!(h1.starts_with("HTTP/1.1 200 OK\r\n"), "{h1}");
    assert_eq!(
        (b1.as_slice(), h2.starts_with("HTTP/1.1 200"), b2.as_slice()),
        (&b"first"[..], true, &b"second"[..])
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].connection, reqs[1].connection);
    assert_eq!(fake.connections(), 1);
}

#[test]
fn request_bodies_with_length_and_chunked_are_recorded() {
    let fake = Fake::http().serve(Routes::new().on("PUT|POST", "/up*", Response::new(201)));
    let raw = b"PUT /up?x=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
POST /up2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
    let out = text(&raw_exchange(fake.addr(), raw, T));
    assert_eq!(out.matches("HTTP/1.1 201 Created").count(), 2, "{out}");
    let reqs = fake.requests();
    assert_eq!(reqs[0].body, b"hello");
    assert_eq!(reqs[0].path, "/up");
    assert_eq!(reqs[0].query.as_deref(), Some("x=1"));
    assert_eq!(reqs[1].body, b"abcde");
    assert_eq!(reqs[1].method, "POST");
}

#[test]
fn expect_continue_gets_100_before_the_body() {
    let fake = Fake::http().serve(Routes::new().on("PUT", "/x", Response::new(201)));
    let mut s = TcpStream::connect(fake.addr()).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n").unwrap();
    let mut buf = [0u8; 25];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"ok").unwrap();
    let (head, _) = read_one(&mut s);
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    assert_eq!(fake.requests()[0].body, b"ok");
}

#[test]
fn head_gets_content_length_without_body() {
    let fake = Fake::http().serve(Routes::new().on("GET|HEAD", "/m", Response::ok().body("12345")));
    let mut s = TcpStream::connect(fake.addr()).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(b"HEAD /m HTTP/1.1\r\n\r\nGET /m HTTP/1.1\r\n\r\n").unwrap();
    // If HEAD carried a body, the next response would start inside it.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(text(&head).contains("Content-Length: 5\r\n"), "{}", text(&head));
    let (h2, b2) = read_one(&mut s);
    assert!(h2.starts_with("HTTP/1.1 200"), "{h2}");
    assert_eq!(b2, b"12345");
}

#[test]
fn seq_handle_guard_and_unmatched() {
    let fake = Fake::http().serve(
        Routes::new()
            .guard(|r| (r.path == "/locked").then(|| Response::unauthorized(&["Basic realm=x"])))
            .seq("GET", "/s", vec![Response::new(500), Response::new(429), Response::ok()])
            .handle("GET", "/n", |_, n| Response::ok().body(n.to_string()))
            .on("GET", "/q?a=1&b=2", Response::new(204)),
    );
    let get = |target: &str| {
        let raw = format!("GET {target} HTTP/1.1\r\nConnection: close\r\n\r\n");
        text(&raw_exchange(fake.addr(), raw.as_bytes(), T))
    };
    let statuses: Vec<String> = (0..4).map(|_| get("/s")[9..12].to_string()).collect();
    assert_eq!(statuses, ["500", "429", "200", "200"]);
    assert!(get("/n").ends_with("\r\n\r\n0"));
    assert!(get("/n").ends_with("\r\n\r\n1"));
    let locked = get("/locked");
    assert!(
        locked.starts_with("HTTP/1.1 401") && locked.contains("WWW-Authenticate: Basic realm=x")
    );
    assert!(get("/q?a=1&b=2").starts_with("HTTP/1.1 204"));
    let missing = get("/v2/a/manifests/t");
    assert!(
        missing.starts_with("HTTP/1.1 404") && missing.contains("MANIFEST_UNKNOWN"),
        "{missing}"
    );
    assert_eq!(fake.count("GET", "/s"), 4);
    assert_eq!(fake.requests().last().unwrap().raw_params(), Vec::<(&str, &str)>::new());
}

#[test]
fn broken_behaviours() {
    let fake = Fake::http().serve(
        Routes::new()
            .on("GET", "/short", Response::ok().body(vec![b'x'; 100]).close_after(10))
            .on("GET", "/garbage", Response::raw("HTTP/1.1 2\0\0 nonsense\r\n"))
            .on("GET", "/drop", Response::drop_connection())
            .on("GET", "/chunked", Response::ok().body("abcdef").behaviour(Behaviour::Chunked))
            .on(
                "GET",
                "/chunked-cut",
                Response::ok().body("abc").behaviour(Behaviour::ChunkedTruncated),
            )
            .on(
                "GET",
                "/eof",
                Response::ok().body("until close").behaviour(Behaviour::CloseDelimited),
            )
            .on("GET", "/stall", Response::ok().body("late").stall(Duration::from_millis(300))),
    );
    let get = |p: &str| {
        text(&raw_exchange(
            fake.addr(),
            format!("GET {p} HTTP/1.1\r\nConnection: close\r\n\r\n").as_bytes(),
            T,
        ))
    };
    let short = get("/short");
    assert!(
        short.contains("Content-Length: 100\r\n") && short.ends_with("\r\n\r\nxxxxxxxxxx"),
        "{short}"
    );
    assert_eq!(get("/garbage"), "HTTP/1.1 2\0\0 nonsense\r\n");
    assert_eq!(get("/drop"), "");
    let chunked = get("/chunked");
    assert!(
        chunked.contains("Transfer-Encoding: chunked\r\n")
            && chunked.ends_with("\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n"),
        "{chunked}"
    );
    assert!(!chunked.contains("Content-Length"));
    assert!(get("/chunked-cut").ends_with("\r\n\r\n3\r\nabc\r\n"));
    let eof = get("/eof");
    assert!(!eof.contains("Content-Length") && eof.ends_with("\r\n\r\nuntil close"), "{eof}");
    let started = std::time::Instant::now();
    assert!(get("/stall").ends_with("late"));
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn other_host_is_127_0_0_2_and_records_authorization() {
    let other = Fake::other_http();
    assert_eq!(other.addr().ip().to_string(), "127.0.0.2");
    let raw =
        b"GET /v2/ HTTP/1.1\r\nAuthorization: Basic Zm9vOmJhcg==\r\nConnection: close\r\n\r\n";
    let out = text(&raw_exchange(other.addr(), raw, T));
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    assert_eq!(other.authorizations(), ["Basic Zm9vOmJhcg=="]);
}

#[test]
fn script_can_be_set_after_binding_and_name_other_fakes() {
    let a = Fake::http();
    let b = Fake::other_http();
    let b_url = b.url();
    a.set(
        Routes::new()
            .on("GET", "/go", Response::redirect(307, &format!("{b_url}/here")))
            .into_handler(),
    );
    b.set(Arc::new(|r: &Request| Response::ok().body(r.base_url())));
    let out = text(&raw_exchange(a.addr(), b"GET /go HTTP/1.1\r\nConnection: close\r\n\r\n", T));
    assert!(out.contains(&format!("Location: {b_url}/here")), "{out}");
    let out = text(&raw_exchange(b.addr(), b"GET /here HTTP/1.1\r\nConnection: close\r\n\r\n", T));
    assert!(out.ends_with(&b_url), "{out}");
}

#[test]
fn ureq_reuses_one_connection_and_sends_bodies() {
    let fake = Fake::http().serve(
        Routes::new().handle("GET", "/n", |_, n| Response::ok().body(format!("n={n}"))).on(
            "PUT",
            "/up",
            Response::new(201),
        ),
    );
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    for i in 0..3 {
        let mut r = agent.get(format!("{}/n", fake.url())).call().unwrap();
        assert_eq!(r.body_mut().read_to_string().unwrap(), format!("n={i}"));
    }
    let r = agent.put(format!("{}/up", fake.url())).send(&b"sized"[..]).unwrap();
    assert_eq!(r.status(), 201);
    let reader = std::io::Cursor::new(b"streamed".to_vec());
    let body = ureq::SendBody::from_owned_reader(reader);
    assert_eq!(agent.put(format!("{}/up", fake.url())).send(body).unwrap().status(), 201);
    let reqs = fake.requests();
    assert_eq!(reqs[3].body, b"sized");
    assert_eq!(reqs[4].body, b"streamed");
    assert_eq!(fake.connections(), 1, "{}", fake.log());
}

fn tls_agent() -> ureq::Agent {
    let pem = std::fs::read(Fake::ca_cert()).unwrap();
    let ca = ureq::tls::Certificate::from_pem(&pem).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[ca]))
        .build();
    ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).build().into()
}

#[test]
fn tls_on_both_hosts_verifies_with_the_test_ca() {
    let a = Fake::https().serve(Routes::new().on("GET", "/v2/", Response::ok().body("{}")));
    let b = Fake::other_https().serve(Routes::new().on("GET", "/v2/", Response::ok().body("b")));
    let agent = tls_agent();
    for (fake, want) in [(&a, "{}"), (&b, "b"), (&a, "{}")] {
        assert!(fake.url().starts_with("https://127.0.0."));
        let mut r = agent.get(format!("{}/v2/", fake.url())).call().unwrap();
        assert_eq!(r.body_mut().read_to_string().unwrap(), want);
    }
    assert_eq!(a.requests()[0].scheme, "https");
    assert_eq!(a.connections(), 1);

    // Without the CA the handshake fails, and no request is recorded.
    let plain: ureq::Agent = ureq::Agent::config_builder().build().into();
    assert!(plain.get(format!("{}/v2/", b.url())).call().is_err());
    assert_eq!(b.requests().len(), 1);
}

#[test]
fn tokens_expire() {
    let tokens = Tokens::new(Duration::from_millis(200));
    let t = tokens.issue();
    let fake = Fake::http();
    let req = |auth: &str| Request {
        method: "GET".into(),
        target: "/".into(),
        path: "/".into(),
        query: None,
        headers: vec![("Authorization".into(), auth.into())],
        body: Vec::new(),
        scheme: "http",
        host: fake.host(),
        connection: 0,
    };
    assert!(tokens.accepts(&req(&format!("Bearer {t}"))));
    assert!(!tokens.accepts(&req("Bearer tok-9")));
    std::thread::sleep(Duration::from_millis(250));
    assert!(!tokens.accepts(&req(&format!("Bearer {t}"))));
    assert_eq!(tokens.count(), 1);
    assert_eq!(basic("u", "p"), "Basic dTpw");
    assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
}

#[test]
fn image_fixture_digests_match() {
    let img = Image::new("x");
    assert_eq!(img.digest, sha256(&img.manifest));
    assert_ne!(img.digest, Image::new("y").digest);
    let fake = Fake::http().serve(Routes::new().image("a/b", "t", &img));
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(format!("{}/v2/a/b/manifests/t", fake.url())).call().unwrap();
    assert_eq!(r.headers().get("docker-content-digest").unwrap(), img.digest.as_str());
    assert_eq!(r.body_mut().read_to_vec().unwrap(), img.manifest);
    let r =
        agent.head(format!("{}/v2/a/b/blobs/{}", fake.url(), img.config_digest)).call().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn bearer_guard_and_token_endpoint_flow() {
    let fake = Fake::http();
    let tokens = Arc::new(Tokens::new(Duration::from_millis(300)));
    let challenge = bearer_challenge(&format!("{}/token", fake.url()), "svc", "repository:a:pull");
    fake.set(
        Routes::new()
            .token_endpoint("/token", tokens.clone(), Some(1))
            .require_bearer(tokens.clone(), &challenge)
            .on("GET", "/v2/a/tags/list", Response::ok().body("tags"))
            .into_handler(),
    );
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}/v2/a/tags/list", fake.url());
    let r = agent.get(&url).call().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), challenge.as_str());
    let ping = agent.get(format!("{}/v2/", fake.url())).call().unwrap();
    assert!(!ping.headers().get("www-authenticate").unwrap().to_str().unwrap().contains("scope"));

    let mut t = agent.get(format!("{}/token?service=svc", fake.url())).call().unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&t.body_mut().read_to_string().unwrap()).unwrap();
    let token = doc["token"].as_str().unwrap().to_string();
    assert!(token.contains(TOKEN_SECRET) && doc["expires_in"] == 1);
    let auth = format!("Bearer {token}");
    let r = agent.get(&url).header("Authorization", &auth).call().unwrap();
    assert_eq!(r.status(), 200);
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(agent.get(&url).header("Authorization", &auth).call().unwrap().status(), 401);
}
