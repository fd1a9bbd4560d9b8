//! Certificates for one test process, made with the `openssl` command.
//!
//! The server certificate is made the way internal registries make theirs,
//! `openssl req -x509`, so it is CA:TRUE and presented as the server's own:
//! exactly the case where rustls alone says `CaUsedAsEndEntity`. A second,
//! EC P-256 key and self-signed certificate sign the token server's JWTs;
//! the registry trusts it through `rootcertbundle`. Everything is made once
//! per process and shared by every test, which keeps the suite fast.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::common::require_tool;

/// Paths of the generated files; they live as long as the test process.
pub struct Certs {
    /// Keeps the directory alive for the whole process.
    _dir: tempfile::TempDir,
    /// PEM of the self-signed server certificate (SAN 127.0.0.1, 127.0.0.2,
    /// localhost); also what tests pass to `ferry --ca-cert`.
    pub server_cert: PathBuf,
    /// PEM of the server certificate's private key.
    pub server_key: PathBuf,
    /// A directory holding `ca.crt` (= `server_cert`), the form skopeo's
    /// `--src-cert-dir` / `--dest-cert-dir` take.
    pub cert_dir: PathBuf,
    /// DER of the server certificate and PKCS#8 DER of its key, for the
    /// harness' own TLS server (the token server).
    pub server_cert_der: Vec<u8>,
    pub server_key_der: Vec<u8>,
    /// PEM of the token-signing certificate: the registry's `rootcertbundle`.
    pub signing_cert: PathBuf,
    /// DER of the token-signing certificate, for the JWT header's `x5c`.
    pub signing_cert_der: Vec<u8>,
    /// PKCS#8 DER of the P-256 token-signing key, for ring.
    pub signing_key_pkcs8: Vec<u8>,
}

/// The certificates of this test process, generated on first use.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(generate)
}

fn generate() -> Certs {
    require_tool("openssl", "openssl");
    // A static is never dropped, so the directory goes under cargo's
    // target tmpdir (removed by `cargo clean`) instead of littering /tmp.
    let dir = tempfile::Builder::new()
        .prefix("ferry-certs-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir");
    let d = dir.path();

    // The server certificate, as `openssl req -x509` makes it (CA:TRUE).
    let server_cert = d.join("server.crt");
    let server_key = d.join("server.key");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ferry test registry",
        "-addext",
        "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost",
        "-keyout",
        path(&server_key),
        "-out",
        path(&server_cert),
    ]);
    let server_cert_der = to_der(&["x509", "-in", path(&server_cert)], d, "server.der");
    let server_key_der =
        to_der(&["pkcs8", "-topk8", "-nocrypt", "-in", path(&server_key)], d, "server.key.der");
    let cert_dir = d.join("certdir");
    fs::create_dir(&cert_dir).expect("mkdir certdir");
    fs::copy(&server_cert, cert_dir.join("ca.crt")).expect("copy ca.crt");

    // The token-signing key and its certificate.
    let signing_key = d.join("signing.key");
    let signing_cert = d.join("signing.crt");
    openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path(&signing_key)]);
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        path(&signing_key),
        "-days",
        "2",
        "-subj",
        "/CN=ferry test token signer",
        "-out",
        path(&signing_cert),
    ]);
    let signing_cert_der = to_der(&["x509", "-in", path(&signing_cert)], d, "signing.der");
    let signing_key_pkcs8 =
        to_der(&["pkcs8", "-topk8", "-nocrypt", "-in", path(&signing_key)], d, "signing.key.der");

    Certs {
        _dir: dir,
        server_cert,
        server_key,
        cert_dir,
        server_cert_der,
        server_key_der,
        signing_cert,
        signing_cert_der,
        signing_key_pkcs8,
    }
}

/// Runs `openssl ARGS -outform DER -out FILE` and returns the bytes.
fn to_der(args: &[&str], dir: &Path, name: &str) -> Vec<u8> {
    let out = dir.join(name);
    let mut all = args.to_vec();
    all.extend(["-outform", "DER", "-out", path(&out)]);
    openssl(&all);
    fs::read(&out).expect("read DER")
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
