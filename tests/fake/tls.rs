//! TLS for the fake registry: a test CA and a server certificate made once
//! per build directory with the `openssl` command, and the rustls config.
//!
//! The server certificate is a proper leaf (CA:FALSE) signed by a separate
//! CA, valid for IP 127.0.0.1, IP 127.0.0.2 and DNS localhost, so one
//! certificate serves both fake hosts. Tests pass `Fake::ca_cert()` to
//! ferry's `--ca-cert`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the test CA and server key pair live.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

/// The certificates, made on first use. They are kept in the target
/// directory across runs (ten years valid), built in a scratch directory
/// and renamed into place so concurrent test runs never see half a set.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fake-tls-v1");
        if !dir.join("server.key").is_file() {
            crate::common::require_tool("openssl", "openssl");
            let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch dir");
            generate(scratch.path());
            let made = scratch.keep();
            if fs::rename(&made, &dir).is_err() {
                // Another run won the race; its set is as good as ours.
                let _ = fs::remove_dir_all(&made);
            }
        }
        Certs { dir }
    })
}

fn generate(dir: &Path) {
    fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\n\
         basicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("write leaf.ext");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
            &["-days", "3650", "-subj", "/CN=ferry fake CA"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
            &["-subj", "/CN=localhost"],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "leaf.ext",
            "-out",
            "server.pem",
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rustls server configuration every TLS fake shares.
pub fn server_config() -> Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let certs = certs();
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certs.cert())
                .expect("read server.pem")
                .collect::<Result<_, _>>()
                .expect("parse server.pem");
            let key = PrivateKeyDer::from_pem_file(certs.key()).expect("read server.key");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server certificate");
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}
