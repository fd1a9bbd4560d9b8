//! Content digests (`sha256:HEX`), hashing, and the two stream wrappers
//! that every download goes through: one hashes and counts what is
//! written, the other refuses to read past a size bound.
//!
//! A `Digest` is validated when it is made, so code holding one may put
//! its hex into a file name or a URL without checking again. Only sha256
//! and sha512 are accepted, as the OCI image spec registers; anything else
//! from a registry is refused rather than trusted. Comparing a computed
//! digest with an expected one is the caller's business.

use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{self, Error, Result};
use crate::msg;

/// A hash algorithm ferry accepts in digests.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Algorithm {
    /// The name used before the `:` in a digest string.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// How many hex digits a digest of this algorithm has.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated content digest: sha256 with 64 or sha512 with 128
/// lowercase hex digits. Displays and serializes as `ALGORITHM:HEX`.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Digest {
    /// Parses `ALGORITHM:HEX`. Digests come from registries and manifests,
    /// so the error quotes the value cleaned of control characters and
    /// says what is wrong with it.
    pub fn parse(text: &str) -> Result<Digest> {
        check(text).map_err(|why| {
            Error::failure(format!("invalid digest \"{}\": {why}", msg::clean(text, 200)))
        })
    }

    /// The digest of `data` with `algorithm`.
    pub fn of(data: &[u8], algorithm: Algorithm) -> Digest {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::of(data, Algorithm::Sha256)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part, safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

/// Why `text` is not a digest ferry accepts, or the digest itself.
fn check(text: &str) -> std::result::Result<Digest, String> {
    let Some((name, hex)) = text.split_once(':') else {
        return Err("expected ALGORITHM:HEX".into());
    };
    let Some(algorithm) = Algorithm::from_name(name) else {
        return Err(format!(
            "unsupported algorithm \"{}\" (ferry accepts sha256 and sha512)",
            msg::clean(name, 40)
        ));
    };

    // Checking every byte before the length keeps the message about the
    // worst problem: `sha256:../../x` is a path trick, not a short digest.
    if let Some(bad) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
        let why = if bad.is_ascii_uppercase() {
            "hex digits must be lowercase".to_string()
        } else {
            format!("{bad:?} is not a lowercase hex digit")
        };
        return Err(why);
    }
    if hex.len() != algorithm.hex_len() {
        return Err(format!(
            "{algorithm} needs {} hex digits, not {}",
            algorithm.hex_len(),
            hex.len()
        ));
    }
    Ok(Digest { algorithm, hex: hex.to_string() })
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(|e| serde::de::Error::custom(e.msg))
    }
}

/// Incremental sha256 or sha512, by ring's digest (the same code that
/// rustls uses, with the CPU's SHA extensions where it has them).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone)]
pub struct Hasher {
    algorithm: Algorithm,
    context: ring::digest::Context,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        let ring_algorithm = match algorithm {
            Algorithm::Sha256 => &ring::digest::SHA256,
            Algorithm::Sha512 => &ring::digest::SHA512,
        };
        Hasher { algorithm, context: ring::digest::Context::new(ring_algorithm) }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.context.update(data);
    }

    pub fn finish(self) -> Digest {
        Digest { algorithm: self.algorithm, hex: to_hex(self.context.finish().as_ref()) }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Passes writes through to `W`, hashing and counting exactly the bytes
/// the inner writer accepted, so a short write never skews the digest.
#[cfg_attr(not(test), allow(dead_code))]
pub struct DigestWriter<W: Write> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

#[cfg_attr(not(test), allow(dead_code))]
impl<W: Write> DigestWriter<W> {
    pub fn new(inner: W, algorithm: Algorithm) -> DigestWriter<W> {
        DigestWriter { inner, hasher: Hasher::new(algorithm), written: 0 }
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Writing through this reference bypasses the hash; it is for
    /// flushing or syncing, not for data.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer; the hash so far is dropped.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Bytes written through so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The inner writer and the digest of everything written through.
    /// It does not flush: the caller decides how durable the data must be.
    pub fn finish(self) -> (W, Digest) {
        (self.inner, self.hasher.finish())
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // A writer that claims more than it was given is broken; hashing
        // only what exists keeps us from panicking on its word.
        let accepted = &buf[..n.min(buf.len())];
        self.hasher.update(accepted);
        self.written += accepted.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads at most `limit` bytes from `R`. A stream that has more fails
/// with an `io::Error` carrying `Error::failure("WHAT larger than N
/// bytes")`, which `error::from_io` recovers, instead of silently
/// truncating: a hostile server must not make a cut-off body look whole.
#[cfg_attr(not(test), allow(dead_code))]
pub struct LimitReader<R: Read> {
    inner: R,
    limit: u64,
    read: u64,
    what: String,
}

#[cfg_attr(not(test), allow(dead_code))]
impl<R: Read> LimitReader<R> {
    /// `what` names the stream in the error, e.g. "manifest".
    pub fn new(inner: R, limit: u64, what: &str) -> LimitReader<R> {
        LimitReader { inner, limit, read: 0, what: what.to_string() }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn too_large(&self) -> io::Error {
        error::into_io(Error::failure(format!("{} larger than {} bytes", self.what, self.limit)))
    }
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }

        // At the limit, one more byte decides between a clean end and an
        // oversized stream; it is never handed to the caller.
        let left = self.limit - self.read;
        if left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(self.too_large()),
            };
        }

        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        // Trust no more than was asked for, so `read` never passes `limit`.
        let n = n.min(want);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC_SHA512: &str = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                              2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

    fn hex64() -> String {
        "0123456789abcdef".repeat(4)
    }

    #[test]
    fn parses_sha256_and_sha512() {
        let d = Digest::parse(&format!("sha256:{}", hex64())).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex(), hex64());
        assert_eq!(d.to_string(), format!("sha256:{}", hex64()));

        let d = Digest::parse(&format!("sha512:{ABC_SHA512}")).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.hex().len(), 128);
    }

    #[test]
    fn rejects_bad_digests() {
        let long = format!("sha256:{}0", hex64());
        let short = format!("sha256:{}", &hex64()[1..]);
        let upper = format!("sha256:{}", hex64().to_uppercase());
        let nul = format!("sha256:{}\0", &hex64()[1..]);
        let slash = format!("sha256:{}/", &hex64()[1..]);
        let sha512_short = format!("sha512:{}", hex64());
        let md5 = "md5:d41d8cd98f00b204e9800998ecf8427e".to_string();
        let cases = [
            ("sha256:../../x", "not a lowercase hex digit"),
            (&long, "needs 64 hex digits, not 65"),
            (&short, "needs 64 hex digits, not 63"),
            (&upper, "must be lowercase"),
            (&nul, "not a lowercase hex digit"),
            (&slash, "'/' is not a lowercase hex digit"),
            (&sha512_short, "sha512 needs 128 hex digits, not 64"),
            (&md5, "unsupported algorithm \"md5\""),
            ("SHA256:abc", "unsupported algorithm"),
            ("", "expected ALGORITHM:HEX"),
            ("sha256", "expected ALGORITHM:HEX"),
            ("sha256:", "needs 64 hex digits, not 0"),
            (":abc", "unsupported algorithm \"\""),
            ("sha256: abc", "not a lowercase hex digit"),
        ];
        for (text, why) in cases {
            let err = Digest::parse(text).unwrap_err();
            assert_eq!(err.kind, Kind::Failure, "{text:?}");
            assert!(err.msg.starts_with("invalid digest \""), "{text:?}: {}", err.msg);
            assert!(err.msg.contains(why), "{text:?}: {}", err.msg);
        }
    }

    #[test]
    fn error_message_is_cleaned() {
        let err = Digest::parse("sha256:\x1b[2Jabc").unwrap_err();
        assert!(!err.msg.contains('\x1b'), "{}", err.msg);
    }

    #[test]
    fn hashes_known_vectors() {
        assert_eq!(Digest::sha256_of(b"").to_string(), format!("sha256:{EMPTY_SHA256}"));
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish().hex(), ABC_SHA512);
    }

    #[test]
    fn serde_round_trip_validates() {
        let d = Digest::sha256_of(b"");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"sha256:{EMPTY_SHA256}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);

        let err = serde_json::from_str::<Digest>("\"sha256:../../etc\"").unwrap_err();
        assert!(err.to_string().contains("invalid digest"), "{err}");
        assert!(serde_json::from_str::<Digest>("42").is_err());
    }

    #[test]
    fn digest_writer_hashes_and_counts() {
        let mut w = DigestWriter::new(Vec::new(), Algorithm::Sha256);
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        w.flush().unwrap();
        assert_eq!(w.written(), 11);
        assert_eq!(w.get_ref().len(), 11);
        w.get_mut().clear();
        let (out, digest) = w.finish();
        assert!(out.is_empty());
        assert_eq!(digest, Digest::sha256_of(b"hello world"));

        let w = DigestWriter::new(vec![1u8], Algorithm::Sha512);
        assert_eq!(w.into_inner(), vec![1u8]);
    }

    /// Accepts at most 3 bytes per call, like a pipe under pressure.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn digest_writer_hashes_only_accepted_bytes() {
        let mut w = DigestWriter::new(Trickle(Vec::new()), Algorithm::Sha256);
        assert_eq!(w.write(b"abcdef").unwrap(), 3);
        assert_eq!(w.written(), 3);
        w.write_all(b"defgh").unwrap();
        let (inner, digest) = w.finish();
        assert_eq!(inner.0, b"abcdefgh");
        assert_eq!(digest, Digest::sha256_of(b"abcdefgh"));
    }

    fn read_all(data: &[u8], limit: u64) -> std::result::Result<Vec<u8>, Error> {
        let mut r = LimitReader::new(data, limit, "manifest");
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| error::from_io("reading manifest", e))?;
        Ok(out)
    }

    #[test]
    fn limit_reader_allows_exactly_the_limit() {
        assert_eq!(read_all(b"12345", 5).unwrap(), b"12345");
        assert_eq!(read_all(b"1234", 5).unwrap(), b"1234");
        assert_eq!(read_all(b"", 0).unwrap(), b"");
    }

    #[test]
    fn limit_reader_fails_one_past_the_limit() {
        let err = read_all(b"123456", 5).unwrap_err();
        assert_eq!(err.kind, Kind::Failure);
        assert_eq!(err.msg, "manifest larger than 5 bytes");
        let err = read_all(b"x", 0).unwrap_err();
        assert_eq!(err.msg, "manifest larger than 0 bytes");
    }

    #[test]
    fn limit_reader_never_hands_out_more_than_the_limit() {
        let data = [7u8; 100];
        let mut r = LimitReader::new(&data[..], 10, "token");
        let mut buf = [0u8; 64];
        assert_eq!(r.read(&mut buf).unwrap(), 10);
        assert_eq!(r.read(&mut []).unwrap(), 0);
        assert!(r.read(&mut buf).is_err());
        assert_eq!(r.get_ref().len(), 89, "only the one probe byte is consumed");
        assert_eq!(r.into_inner().len(), 89);
    }

    #[test]
    fn limit_reader_passes_plain_io_errors() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
            }
        }
        let mut r = LimitReader::new(Broken, 10, "blob");
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        let err = error::from_io("reading blob", err);
        assert_eq!(err.msg, "reading blob: reset");
    }
}
