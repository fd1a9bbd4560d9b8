//! A scripted fake registry: an HTTP/1.1 server on loopback, plain or TLS,
//! that answers from a script and records every request it gets.
//!
//! It exists for what real registries rarely do (odd challenges, expiring
//! tokens, redirects to other hosts, broken transports). Each `Fake` listens
//! on its own port of 127.0.0.1, or of 127.0.0.2 to play "another host"
//! (Linux routes all of 127.0.0.0/8 to loopback); one thread accepts, one
//! thread per connection serves keep-alive requests in order. The script
//! can be set after binding, so scripts of two fakes can name each other.
//!
//! The wire format is in `wire`, scripts in `script`, certificates in `tls`,
//! image fixtures in `image`; the fake's own tests are in `selftest`.

#![allow(dead_code)] // A toolbox: not every test uses every tool.

mod auth;
mod image;
mod script;
mod selftest;
mod tls;
mod wire;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

pub use auth::{TOKEN_SECRET, Tokens, basic, basic_value, bearer_challenge, quote};
pub use image::{Image, OCI_MANIFEST, sha256};
pub use script::{Behaviour, Handler, Response, Routes};

use wire::Conn;

/// How long an idle connection is kept before the fake gives up on it.
const IDLE: Duration = Duration::from_secs(30);

/// One request the fake received, as the script sees it and as it is
/// recorded for assertions.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query exactly as sent (`/v2/a/tags/list?n=2`).
    pub target: String,
    pub path: String,
    /// The raw query string after `?`, not decoded.
    pub query: Option<String>,
    /// Header names as sent; look them up with `header`.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// `http` or `https`: which kind of fake received it.
    pub scheme: &'static str,
    /// The fake's own `HOST:PORT`.
    pub host: String,
    /// Which connection of this fake carried it (0, 1, …).
    pub connection: usize,
}

impl Request {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    /// Query parameters, split on `&` and `=` but not decoded.
    pub fn raw_params(&self) -> Vec<(&str, &str)> {
        let q = self.query.as_deref().unwrap_or("");
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect()
    }

    /// This fake's base URL, for building absolute Locations and realms.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

struct Shared {
    handler: RwLock<Handler>,
    log: Mutex<Vec<Request>>,
    stop: AtomicBool,
    connections: AtomicUsize,
    /// Set when the script panicked; reported when the fake is dropped.
    script_panicked: AtomicBool,
}

/// A running fake registry; stops accepting when dropped.
pub struct Fake {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
}

impl Fake {
    /// Plain HTTP on 127.0.0.1.
    pub fn http() -> Fake {
        Fake::bind(Ipv4Addr::LOCALHOST, false)
    }

    /// TLS on 127.0.0.1 with the test CA's certificate (`Fake::ca_cert`).
    pub fn https() -> Fake {
        Fake::bind(Ipv4Addr::LOCALHOST, true)
    }

    /// The "other host": plain HTTP on 127.0.0.2.
    pub fn other_http() -> Fake {
        Fake::bind(Ipv4Addr::new(127, 0, 0, 2), false)
    }

    /// The "other host" over TLS on 127.0.0.2.
    pub fn other_https() -> Fake {
        Fake::bind(Ipv4Addr::new(127, 0, 0, 2), true)
    }

    /// Binds a free port of `ip` and starts serving; until a script is set,
    /// every request gets a 404.
    pub fn bind(ip: Ipv4Addr, tls: bool) -> Fake {
        let listener = TcpListener::bind((IpAddr::V4(ip), 0)).expect("bind fake registry");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            handler: RwLock::new(Routes::new().into_handler()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            script_panicked: AtomicBool::new(false),
        });
        let config = tls.then(tls::server_config);
        let s = shared.clone();
        thread::spawn(move || accept_loop(listener, addr, config, s));
        Fake { addr, tls, shared }
    }

    /// Replaces the script with `routes`; returns self for chaining.
    pub fn serve(self, routes: Routes) -> Fake {
        self.set(routes.into_handler());
        self
    }

    /// Replaces the script with a closure.
    pub fn serve_fn<F>(self, f: F) -> Fake
    where
        F: Fn(&Request) -> Response + Send + Sync + 'static,
    {
        self.set(Arc::new(f));
        self
    }

    /// Replaces the script of a fake already in use.
    pub fn set(&self, handler: Handler) {
        *self.shared.handler.write().unwrap() = handler;
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `IP:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://IP:PORT` or `https://IP:PORT`.
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.addr)
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The PEM file of the CA that signed every TLS fake's certificate.
    pub fn ca_cert() -> PathBuf {
        tls::certs().ca()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many requests matched `method` (`"*"` for any) and `path`
    /// (compared without the query).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| (method == "*" || r.method == method) && r.path == path)
            .count()
    }

    /// Every Authorization header value received, in order.
    pub fn authorizations(&self) -> Vec<String> {
        self.requests().iter().filter_map(|r| r.authorization().map(str::to_string)).collect()
    }

    /// How many connections were accepted (TLS: including failed handshakes).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// A one-line-per-request summary for assertion messages.
    pub fn log(&self) -> String {
        self.requests()
            .iter()
            .map(|r| {
                let auth = r.authorization().map(|a| a.split(' ').next().unwrap_or(""));
                format!("{} {} auth={:?} conn={}\n", r.method, r.target, auth, r.connection)
            })
            .collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if self.shared.script_panicked.load(Ordering::SeqCst) && !thread::panicking() {
            panic!("the fake registry's script panicked (see the output above)");
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let tls = tls.clone();
        thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(IDLE));
            let _ = stream.set_write_timeout(Some(IDLE));
            let _ = stream.set_nodelay(true);
            let host = addr.to_string();
            match tls {
                None => serve_connection(Conn::new(Plain(stream)), "http", host, id, &shared),
                Some(config) => {
                    let Ok(server) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let stream = Tls(rustls::StreamOwned::new(server, stream));
                    serve_connection(Conn::new(stream), "https", host, id, &shared)
                }
            }
        });
    }
}

/// A byte stream that can be closed politely (TLS sends close_notify).
trait Transport: Read + Write {
    fn close(&mut self);
}

struct Plain(TcpStream);

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Plain {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Transport for Plain {
    fn close(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

struct Tls(rustls::StreamOwned<rustls::ServerConnection, TcpStream>);

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Transport for Tls {
    fn close(&mut self) {
        self.0.conn.send_close_notify();
        let _ = self.0.flush();
        let _ = self.0.sock.shutdown(Shutdown::Both);
    }
}

/// Answers requests on one connection until either side closes it.
fn serve_connection<S: Transport>(
    mut conn: Conn<S>,
    scheme: &'static str,
    host: String,
    connection: usize,
    shared: &Shared,
) {
    loop {
        let incoming = match conn.read_request() {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => return,
        };
        let (path, query) = match incoming.target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (incoming.target.clone(), None),
        };
        let req = Request {
            method: incoming.method.clone(),
            target: incoming.target.clone(),
            path,
            query,
            headers: incoming.headers.clone(),
            body: incoming.body.clone(),
            scheme,
            host: host.clone(),
            connection,
        };
        shared.log.lock().unwrap().push(req.clone());

        // The handler is cloned out so a slow script never holds the lock.
        let handler = shared.handler.read().unwrap().clone();
        let resp = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&req))) {
            Ok(resp) => resp,
            Err(_) => {
                shared.script_panicked.store(true, Ordering::SeqCst);
                Response::errors(500, "FAKE_SCRIPT_PANIC", "the fake's script panicked")
            }
        };
        let keep = matches!(conn.write_response(&req.method, &resp), Ok(true));
        if !keep || incoming.wants_close() {
            if !matches!(resp.behaviour, Behaviour::Drop) {
                conn.stream.close();
            }
            return;
        }
    }
}

/// Sends `raw` (a whole request) to `addr` on a fresh connection and returns
/// everything the server sent until it closed or `timeout` passed.
pub fn raw_exchange(addr: SocketAddr, raw: &[u8], timeout: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).expect("connect to fake");
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(raw).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}
