//! TLS trust and the ureq connector that speaks TLS for ferry.
//!
//! This module decides which server certificates a run accepts: the
//! system's roots (`SSL_CERT_FILE`, `SSL_CERT_DIR`, the distro bundle, or
//! webpki-roots' bundled set as the last resort), `--ca-cert` files, and
//! `certs.d` directories the way docker and containers/image read them. It
//! also builds the ureq connector chain (CONNECT proxy, TCP, our rustls
//! wrapper). It does not build the ureq `Agent`, pick timeouts, or print
//! the `--tls-no-verify` warning: those belong to `http.rs` and `main`.

use std::collections::HashMap;
use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout,
    TcpConnector, Transport, TransportAdapter,
};

use crate::error::{Error, Result};
use crate::{debug, warn};

/// Distro CA bundles, tried in order when neither `SSL_CERT_FILE` nor
/// `SSL_CERT_DIR` is set (Debian/Ubuntu, Fedora/RHEL, openSUSE, RHEL's
/// extracted bundle, Alpine and the BSDs).
const DISTRO_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Where podman/skopeo and docker look for per-registry certificates.
const CERTS_D: &[&str] = &["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// What the user told us about trust for this run.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// `--ca-cert FILE` (repeatable): PEM files whose certificates become
    /// extra roots, and are accepted as the server's own certificate when
    /// it presents one of them byte for byte.
    pub ca_certs: Vec<PathBuf>,
    /// `--tls-no-verify`: accept any certificate (the caller warns once).
    pub no_verify: bool,
    /// Registries this run talks to, as "host" or "host:port"; their
    /// `certs.d` directories are read and trusted for that host name only.
    pub hosts: Vec<String>,
    /// Base `certs.d` directories; normally `TlsOptions::certs_d_dirs()`.
    pub certs_d: Vec<PathBuf>,
}

impl TlsOptions {
    /// Options with `certs_d` filled from the environment.
    pub fn new(ca_certs: Vec<PathBuf>, no_verify: bool, hosts: Vec<String>) -> TlsOptions {
        TlsOptions { ca_certs, no_verify, hosts, certs_d: TlsOptions::certs_d_dirs() }
    }

    /// The base `certs.d` directories: `/etc/containers/certs.d` and
    /// `/etc/docker/certs.d`, or only `$FERRY_CERTS_D` when that is set.
    /// `FERRY_CERTS_D` is a test hook: integration tests cannot write
    /// under /etc, and must not be affected by what the machine has there.
    pub fn certs_d_dirs() -> Vec<PathBuf> {
        match env::var_os("FERRY_CERTS_D") {
            Some(dir) => vec![PathBuf::from(dir)],
            None => CERTS_D.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Builds the rustls client configuration for a run: ring, TLS 1.2 and
/// 1.3, and ferry's verifier (or none at all under `no_verify`). Fails
/// with `Kind::Usage` on a `--ca-cert` file that cannot be read or holds
/// no certificate, and with `Kind::Failure` on an unreadable certs.d file.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| Error::failure(format!("TLS setup: {e}")))?;

    let verifier: Arc<dyn ServerCertVerifier> = if opts.no_verify {
        Arc::new(NoVerifier(provider.signature_verification_algorithms))
    } else {
        Arc::new(Verifier::new(opts, &provider)?)
    };
    let config =
        builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    Ok(Arc::new(config))
}

/// The connector chain for `ureq::Agent::with_parts`: a CONNECT proxy when
/// `HTTPS_PROXY`/`HTTP_PROXY` apply, then TCP, then TLS with `config` for
/// https URLs. Build the agent as
/// `Agent::with_parts(cfg, tls::connector(tls), DefaultResolver::default())`.
/// `DefaultResolver` resolves on the calling thread unless a resolve,
/// global or per-call timeout applies (ureq 3.5's `resolver.rs` spawns a
/// thread only to bound the lookup, and `timings.rs` checks just those
/// three for it), so with connect and receive timeouts alone no thread is
/// ever started.
pub fn connector(config: Arc<ClientConfig>) -> impl Connector {
    ().chain(ConnectProxyConnector::default())
        .chain(TcpConnector::default())
        .chain(TlsConnector { config })
}

// ---------------------------------------------------------------------------
// Roots

/// The system's roots: what `SSL_CERT_FILE`/`SSL_CERT_DIR` name when either
/// is set (as OpenSSL reads them), else the first distro bundle found; and
/// when that yields nothing usable, webpki-roots' bundled set, so ferry
/// still works in a scratch container without a CA bundle.
fn system_roots() -> RootCertStore {
    roots_from(env::var_os("SSL_CERT_FILE"), env::var_os("SSL_CERT_DIR"))
}

/// `system_roots` with the two variables passed in, for tests.
fn roots_from(file: Option<OsString>, dir: Option<OsString>) -> RootCertStore {
    let mut certs = Vec::new();
    let source;
    if file.is_some() || dir.is_some() {
        source = "SSL_CERT_FILE/SSL_CERT_DIR".to_string();
        if let Some(file) = file {
            certs.extend(pem_certs_lenient(Path::new(&file)));
        }
        for dir in dir.iter().flat_map(env::split_paths) {
            for path in sorted_dir(&dir).unwrap_or_default() {
                certs.extend(pem_certs_lenient(&path));
            }
        }
    } else if let Some(bundle) = DISTRO_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        source = bundle.display().to_string();
        certs = pem_certs_lenient(bundle);
    } else {
        source = "no system bundle".to_string();
    }

    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        debug!("TLS roots: nothing usable from {source}, using bundled webpki roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        debug!("TLS roots: {added} from {source}");
    }
    roots
}

/// Every PEM certificate in `path`, skipping what does not parse: system
/// stores hold other files (hash links, keys, READMEs) we must not fail on.
fn pem_certs_lenient(path: &Path) -> Vec<CertificateDer<'static>> {
    match fs::read(path) {
        Ok(bytes) => CertificateDer::pem_slice_iter(&bytes).filter_map(|c| c.ok()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The entries of `dir`, sorted so trust never depends on readdir order.
fn sorted_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> =
        fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

/// The certificates in a user-supplied PEM file's `bytes`: at least one,
/// and every PEM section well formed (a damaged file is not half used).
fn pem_certs(bytes: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".to_string());
    }
    Ok(certs)
}

/// Adds `certs` to `roots`, failing on the first that is not a usable
/// X.509 certificate (a typo'd file must not silently trust nothing).
fn add_roots(
    roots: &mut RootCertStore,
    certs: &[CertificateDer<'static>],
) -> std::result::Result<(), String> {
    for cert in certs {
        roots.add(cert.clone()).map_err(|e| format!("bad certificate: {e}"))?;
    }
    Ok(())
}

/// The `*.crt` files under each base's `entry` directory (`HOST:PORT`, or
/// `HOST` when the user gave no port). A missing directory is normal.
fn certs_d_files(bases: &[PathBuf], entry: &str) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for base in bases {
        let dir = base.join(entry);
        match sorted_dir(&dir) {
            Ok(paths) => files
                .extend(paths.into_iter().filter(|p| p.extension().is_some_and(|x| x == "crt"))),
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {}
            Err(e) => return Err(Error::io(dir.display(), e)),
        }
    }
    Ok(files)
}

/// The host part of "host", "host:port", "[v6]" or "[v6]:port", in the
/// form `name_key` gives a server name, so the two can be compared.
fn host_key(entry: &str) -> String {
    let host = match entry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None if entry.matches(':').count() == 1 => entry.split(':').next().unwrap_or(entry),
        None => entry,
    };
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

/// The server name rustls verifies, as a `host_key`.
fn name_key(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_ascii_lowercase(),
        ServerName::IpAddress(ip) => IpAddr::from(*ip).to_string(),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Verification

/// Extra trust for one registry host, from its certs.d directories.
#[derive(Debug)]
struct HostTrust {
    /// System roots plus --ca-cert plus this host's certs.d certificates.
    verifier: Arc<WebPkiServerVerifier>,
    /// This host's certs.d certificates, accepted byte for byte as leaf.
    given: Vec<CertificateDer<'static>>,
}

/// Normal webpki verification, plus docker's rule for certificates the
/// user handed us: a server certificate byte-identical to one of them is
/// accepted if it is valid now and names the host, whatever its CA bit or
/// issuer. That is what Go's x509 does for a leaf found in the root pool,
/// and it is how `openssl req -x509` certificates (CA:TRUE, which webpki
/// rejects as `CaUsedAsEndEntity`) work with docker and skopeo.
///
/// certs.d trust is keyed by host name: rustls gives the verifier no port,
/// so certificates from `certs.d/HOST:PORT` also apply to other ports of
/// HOST within the run. Extended key usage of a pinned certificate is not
/// checked; the user vouched for that exact certificate.
#[derive(Debug)]
struct Verifier {
    general: Arc<WebPkiServerVerifier>,
    /// --ca-cert certificates, accepted byte for byte as leaf for any host.
    given: Vec<CertificateDer<'static>>,
    per_host: HashMap<String, HostTrust>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Verifier {
    fn new(opts: &TlsOptions, provider: &Arc<CryptoProvider>) -> Result<Verifier> {
        let mut roots = system_roots();

        // --ca-cert: a file named on the command line must be usable.
        let mut given = Vec::new();
        for path in &opts.ca_certs {
            let fail = |why: String| Error::usage(format!("--ca-cert {}: {why}", path.display()));
            let bytes = fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
            let certs = pem_certs(&bytes).map_err(fail)?;
            add_roots(&mut roots, &certs).map_err(fail)?;
            given.extend(certs);
        }

        // certs.d: collect per host name first, since "h:5000" and "h" share one.
        let mut host_certs: HashMap<String, Vec<CertificateDer<'static>>> = HashMap::new();
        for entry in &opts.hosts {
            for file in certs_d_files(&opts.certs_d, entry)? {
                let bytes = fs::read(&file).map_err(|e| Error::io(file.display(), e))?;
                match pem_certs(&bytes) {
                    Ok(certs) => host_certs.entry(host_key(entry)).or_default().extend(certs),
                    // docker skips a .crt it cannot parse; say so instead of failing.
                    Err(why) => warn!("ignoring {}: {why}", file.display()),
                }
            }
        }

        let mut per_host = HashMap::new();
        for (host, certs) in host_certs {
            let mut host_roots = roots.clone();
            for cert in &certs {
                if let Err(e) = host_roots.add(cert.clone()) {
                    warn!("certs.d certificate for {host} not usable as a root: {e}");
                }
            }
            debug!("TLS: {} certs.d certificate(s) for {host}", certs.len());
            let verifier = build_webpki(host_roots, provider)?;
            per_host.insert(host, HostTrust { verifier, given: certs });
        }

        Ok(Verifier {
            general: build_webpki(roots, provider)?,
            given,
            per_host,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    /// Docker's rule for a certificate the user supplied (see the type).
    fn verify_given(
        &self,
        end_entity: &CertificateDer<'_>,
        given: &[CertificateDer<'static>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> std::result::Result<bool, rustls::Error> {
        let pinned = self.given.iter().chain(given).any(|c| c.as_ref() == end_entity.as_ref());
        if !pinned {
            return Ok(false);
        }
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        let Some((not_before, not_after)) = validity(end_entity.as_ref()) else {
            return Err(CertificateError::BadEncoding.into());
        };
        let now = now.as_secs() as i64;
        if now < not_before {
            return Err(CertificateError::NotValidYet.into());
        }
        if now > not_after {
            return Err(CertificateError::Expired.into());
        }
        Ok(true)
    }
}

fn build_webpki(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::failure(format!("TLS setup: {e}")))
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let host = self.per_host.get(&name_key(server_name));
        let webpki = host.map_or(&self.general, |h| &h.verifier);
        let err = match webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(err) => err,
        };
        let host_given = host.map_or(&[][..], |h| &h.given[..]);
        match self.verify_given(end_entity, host_given, server_name, now)? {
            true => Ok(ServerCertVerified::assertion()),
            false => Err(err),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `--tls-no-verify`: every certificate and signature is accepted.
#[derive(Debug)]
struct NoVerifier(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

// ---------------------------------------------------------------------------
// Certificate validity (webpki does not expose it for a certificate it
// refuses as a leaf, so we read the two dates from the DER ourselves)

/// notBefore and notAfter of a DER X.509 certificate, in Unix seconds.
fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (cert, _) = der_take(der, 0x30)?;
    let (tbs, _) = der_take(cert, 0x30)?;
    let mut rest = tbs;
    // Optional [0] version, then serialNumber, signature, issuer.
    if rest.first() == Some(&0xa0) {
        rest = der_take(rest, 0xa0)?.1;
    }
    for tag in [0x02, 0x30, 0x30] {
        rest = der_take(rest, tag)?.1;
    }
    let (dates, _) = der_take(rest, 0x30)?;
    let (not_before, rest) = der_time(dates)?;
    let (not_after, _) = der_time(rest)?;
    Some((not_before, not_after))
}

/// Splits one DER element with `tag` off `input`: (contents, rest).
fn der_take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len_byte, mut rest) = rest.split_first()?;
    let len = if len_byte < 0x80 {
        usize::from(len_byte)
    } else {
        let n = usize::from(len_byte & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A UTCTime or GeneralizedTime "…Z" element (RFC 5280 §4.1.2.5) as Unix
/// seconds, and what follows it.
fn der_time(input: &[u8]) -> Option<(i64, &[u8])> {
    let tag = *input.first()?;
    let (body, rest) = der_take(input, tag)?;
    let digits = body.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |s: &[u8]| s.iter().fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    let (year, fields) = match (tag, digits.len()) {
        // RFC 5280: two-digit years 50..99 are 19xx, 00..49 are 20xx.
        (0x17, 12) => {
            let yy = num(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (num(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| num(&fields[2 * i..2 * i + 2]);
    let days = days_from_civil(year, field(0), field(1));
    Some((days * 86_400 + field(2) * 3600 + field(3) * 60 + field(4), rest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12),
/// counting years from March so the leap day falls at the end.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ---------------------------------------------------------------------------
// The ureq connector and transport

/// Wraps an https connection in rustls with our `ClientConfig`; plain
/// http passes through untouched.
#[derive(Debug)]
struct TlsConnector {
    config: Arc<ClientConfig>,
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> std::result::Result<Option<Self::Out>, ureq::Error> {
        // TcpConnector always yields a connection; without one there is nothing to wrap.
        let Some(transport) = chained else {
            return Ok(None);
        };
        // An https proxy's connection is already TLS; the tunnel inside it gets its own below.
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }

        let host = details.uri.host().ok_or(ureq::Error::Tls("no host name for TLS"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| ureq::Error::Tls("invalid host name for TLS"))?;

        let mut conn = ClientConnection::new(self.config.clone(), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        // The handshake counts against the connect timeout, started now.
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock).map_err(handshake_error)?;

        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport { buffers, stream: StreamOwned::new(conn, sock) })))
    }
}

/// Hands a certificate or protocol failure back as `ureq::Error::Rustls`
/// rather than a generic I/O error, so `http.rs` can tell TLS failures
/// apart and say which certificate problem it was.
fn handshake_error(err: io::Error) -> ureq::Error {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls) => ureq::Error::Rustls(tls.clone()),
        None => err.into(),
    }
}

/// An established TLS connection over the chained transport.
struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(
        &mut self,
        amount: usize,
        timeout: NextTimeout,
    ) -> std::result::Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> std::result::Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTransport").field("inner", &self.stream.sock.inner()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::process::Command;
    use std::thread;
    use std::time::Duration;

    use rustls::ServerConfig;
    use rustls::pki_types::PrivateKeyDer;
    use tempfile::TempDir;
    use ureq::unversioned::resolver::DefaultResolver;

    use super::*;

    /// Runs `openssl` in `dir` with `args` split on spaces (none has one).
    fn openssl(dir: &Path, args: &str) {
        let args: Vec<&str> = args.split(' ').collect();
        let out = Command::new("openssl").current_dir(dir).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "openssl {args:?}: {stderr}");
    }

    const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

    /// `openssl req -x509` as internal registries do it: CA:TRUE, self-signed.
    fn self_signed(dir: &Path, name: &str, san: &str) -> (PathBuf, PathBuf) {
        openssl(
            dir,
            &format!(
                "req -x509 {EC} -keyout {name}.key -out {name}.crt -days 2 \
                 -subj /CN={name} -addext subjectAltName={san}"
            ),
        );
        (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")))
    }

    /// A CA (ca.crt) and a leaf it signed (leaf.crt, leaf.key) for 127.0.0.1.
    fn ca_and_leaf(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let (ca, _) = self_signed(dir, "ca", "DNS:ca.invalid");
        openssl(dir, &format!("req -new {EC} -keyout leaf.key -out leaf.csr -subj /CN=leaf"));
        fs::write(
            dir.join("leaf.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        openssl(
            dir,
            "x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 2 \
             -extfile leaf.ext -out leaf.crt",
        );
        (ca, dir.join("leaf.crt"), dir.join("leaf.key"))
    }

    /// A one-connection https server on 127.0.0.1 answering "ok"; its port.
    fn serve(crt: &Path, key: &Path) -> u16 {
        let certs: Vec<_> = CertificateDer::pem_file_iter(crt)
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            let conn = rustls::ServerConnection::new(config).unwrap();
            let mut tls = StreamOwned::new(conn, tcp);
            // A client that rejects the certificate ends the handshake here.
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                match tls.read(&mut byte) {
                    Ok(1) => request.push(byte[0]),
                    _ => return,
                }
            }
            let reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            let _ = tls.write_all(reply.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        port
    }

    /// GET https://HOST:PORT/v2/ through our connector; the body or the error.
    fn get(opts: &TlsOptions, host: &str, port: u16) -> std::result::Result<String, String> {
        let tls = client_config(opts).map_err(|e| e.msg)?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_recv_response(Some(Duration::from_secs(5)))
            .timeout_recv_body(Some(Duration::from_secs(5)))
            .proxy(None)
            .build();
        let agent = ureq::Agent::with_parts(config, connector(tls), DefaultResolver::default());
        let mut response =
            agent.get(format!("https://{host}:{port}/v2/")).call().map_err(|e| e.to_string())?;
        response.body_mut().read_to_string().map_err(|e| e.to_string())
    }

    /// Options that never read the machine's certs.d.
    fn opts(ca_certs: &[&Path], hosts: &[String], certs_d: &[&Path]) -> TlsOptions {
        TlsOptions {
            ca_certs: ca_certs.iter().map(|p| p.to_path_buf()).collect(),
            no_verify: false,
            hosts: hosts.to_vec(),
            certs_d: certs_d.iter().map(|p| p.to_path_buf()).collect(),
        }
    }

    #[test]
    fn self_signed_works_only_when_given() {
        let dir = TempDir::new().unwrap();
        let (crt, key) = self_signed(dir.path(), "registry", "IP:127.0.0.1,DNS:localhost");

        let port = serve(&crt, &key);
        assert_eq!(get(&opts(&[&crt], &[], &[]), "127.0.0.1", port).unwrap(), "ok");

        // What the fallback is for: webpki alone refuses it even as a root.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Verifier::new(&opts(&[&crt], &[], &[]), &provider).unwrap();
        let der = CertificateDer::from_pem_file(&crt).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let err = verifier.general.verify_server_cert(&der, &[], &name, &[], UnixTime::now());
        assert!(format!("{err:?}").contains("CaUsedAsEndEntity"), "{err:?}");

        let port = serve(&crt, &key);
        let err = get(&opts(&[], &[], &[]), "127.0.0.1", port).unwrap_err();
        assert!(err.contains("certificate"), "{err}");
    }

    #[test]
    fn given_certificate_must_be_current() {
        let dir = TempDir::new().unwrap();
        let (crt, _) = self_signed(dir.path(), "registry", "IP:127.0.0.1");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Verifier::new(&opts(&[&crt], &[], &[]), &provider).unwrap();
        let der = CertificateDer::from_pem_file(&crt).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let at = |days: i64| {
            let secs = UnixTime::now().as_secs() as i64 + days * 86_400;
            UnixTime::since_unix_epoch(Duration::from_secs(secs as u64))
        };
        assert_eq!(verifier.verify_given(&der, &[], &name, at(0)), Ok(true));
        let expired = verifier.verify_given(&der, &[], &name, at(3));
        assert_eq!(expired, Err(CertificateError::Expired.into()));
        let early = verifier.verify_given(&der, &[], &name, at(-1));
        assert_eq!(early, Err(CertificateError::NotValidYet.into()));
    }

    #[test]
    fn given_self_signed_must_name_the_host() {
        let dir = TempDir::new().unwrap();
        let (crt, key) = self_signed(dir.path(), "other", "DNS:other.example");
        let port = serve(&crt, &key);
        let err = get(&opts(&[&crt], &[], &[]), "127.0.0.1", port).unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
    }

    #[test]
    fn ca_signed_leaf_works_with_the_ca() {
        let dir = TempDir::new().unwrap();
        let (ca, leaf, key) = ca_and_leaf(dir.path());
        let port = serve(&leaf, &key);
        assert_eq!(get(&opts(&[&ca], &[], &[]), "127.0.0.1", port).unwrap(), "ok");

        let port = serve(&leaf, &key);
        let err = get(&opts(&[], &[], &[]), "127.0.0.1", port).unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn certs_d_applies_to_its_host_only() {
        let dir = TempDir::new().unwrap();
        let (crt, key) = self_signed(dir.path(), "registry", "IP:127.0.0.1,DNS:localhost");
        let base = dir.path().join("certs.d");

        // Self-signed in certs.d/HOST:PORT, listed in hosts: trusted.
        let port = serve(&crt, &key);
        let entry = format!("127.0.0.1:{port}");
        fs::create_dir_all(base.join(&entry)).unwrap();
        fs::copy(&crt, base.join(&entry).join("ca.crt")).unwrap();
        assert_eq!(
            get(&opts(&[], std::slice::from_ref(&entry), &[&base]), "127.0.0.1", port).unwrap(),
            "ok"
        );

        // Same directory, but this run talks to another registry: not trusted.
        let port2 = serve(&crt, &key);
        let other = format!("127.0.0.1:{port2}");
        let err = get(&opts(&[], &[other], &[&base]), "127.0.0.1", port2).unwrap_err();
        assert!(err.contains("certificate"), "{err}");

        // A CA in certs.d trusts the leaves it signed, for that host.
        let (ca, leaf, leaf_key) = ca_and_leaf(dir.path());
        let port3 = serve(&leaf, &leaf_key);
        let entry3 = format!("127.0.0.1:{port3}");
        fs::create_dir_all(base.join(&entry3)).unwrap();
        fs::copy(&ca, base.join(&entry3).join("ca.crt")).unwrap();
        assert_eq!(get(&opts(&[], &[entry3], &[&base]), "127.0.0.1", port3).unwrap(), "ok");
    }

    #[test]
    fn no_verify_accepts_anything() {
        let dir = TempDir::new().unwrap();
        let (crt, key) = self_signed(dir.path(), "other", "DNS:other.example");
        let port = serve(&crt, &key);
        let mut options = opts(&[], &[], &[]);
        options.no_verify = true;
        assert_eq!(get(&options, "127.0.0.1", port).unwrap(), "ok");
    }

    #[test]
    fn bad_ca_cert_files_are_usage_errors() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_config(&opts(&[&missing], &[], &[])).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Usage);
        assert!(err.msg.contains("missing.pem") && err.msg.contains("cannot read"), "{}", err.msg);

        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config(&opts(&[&empty], &[], &[])).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Usage);
        assert!(err.msg.contains("empty.pem") && err.msg.contains("no PEM"), "{}", err.msg);
    }

    #[test]
    fn reads_certificate_dates() {
        let dir = TempDir::new().unwrap();
        let (crt, _) = self_signed(dir.path(), "dates", "DNS:localhost");
        let der = CertificateDer::from_pem_file(&crt).unwrap();
        let (not_before, not_after) = validity(der.as_ref()).unwrap();
        assert_eq!(not_after - not_before, 2 * 86_400);
        let now = UnixTime::now().as_secs() as i64;
        assert!(not_before <= now && now < not_after);

        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        let utc = |s: &str| der_time(&[&[0x17, s.len() as u8], s.as_bytes()].concat()).unwrap().0;
        assert_eq!(utc("000101000000Z"), 946_684_800);
        assert_eq!(utc("500101000000Z"), -631_152_000);
        let gen_time = b"\x18\x0f20491231235959Z";
        assert_eq!(der_time(gen_time).unwrap().0, 2_524_607_999);
        assert!(der_time(b"\x17\x0d0001010000+0Z").is_none());
    }

    #[test]
    fn roots_come_from_ssl_cert_file_else_bundled() {
        let dir = TempDir::new().unwrap();
        let (crt, _) = self_signed(dir.path(), "root", "DNS:root.invalid");
        assert_eq!(roots_from(Some(crt.into()), None).len(), 1);
        assert_eq!(roots_from(None, Some(dir.path().into())).len(), 1);

        let bundled = webpki_roots::TLS_SERVER_ROOTS.len();
        let nothing = dir.path().join("root.key");
        assert_eq!(roots_from(Some(nothing.into()), None).len(), bundled);
    }

    #[test]
    fn host_keys_match_server_names() {
        assert_eq!(host_key("Registry.Example:5000"), "registry.example");
        assert_eq!(host_key("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_key("[::1]:5000"), "::1");
        let name = ServerName::try_from("REGISTRY.example").unwrap();
        assert_eq!(name_key(&name), "registry.example");
        let ip = ServerName::try_from("127.0.0.1").unwrap();
        assert_eq!(name_key(&ip), host_key("127.0.0.1:443"));
    }
}
