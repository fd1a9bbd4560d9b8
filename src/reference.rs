//! Image references (`[HOST[:PORT]/]PATH[:TAG][@ALG:HEX]`) and registry
//! addresses (`HOST[:PORT]`), parsed into typed values with one canonical
//! string form.
//!
//! The rules are docker's, so a name that works with `docker pull` works
//! here and means the same image: Docker Hub is the default registry and
//! its one-component paths live under `library/`; the first component is
//! a host only if it contains `.` or `:` or is `localhost`; path
//! components are lowercase. `FERRY_DEFAULT_REGISTRY` replaces Docker Hub
//! as the default for references without a host. Whether the image exists
//! is not this module's business.

use std::fmt;
use std::net::Ipv6Addr;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::msg;

/// The host Docker Hub's registry API answers on; `docker.io` and
/// `index.docker.io` are names for people, not API endpoints.
const DOCKER_HUB: &str = "registry-1.docker.io";

/// docker's limit on a repository name, host included.
const NAME_MAX: usize = 255;

/// docker's limit on a tag.
const TAG_MAX: usize = 128;

/// A registry address. `host` is lowercase; an IPv6 address keeps its
/// brackets (`[::1]`) so that `host:port` and URLs can be built from it
/// as is.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registry {
    pub host: String,
    pub port: Option<u16>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Registry {
    /// Parses `HOST[:PORT]`, mapping `docker.io` and `index.docker.io` to
    /// Docker Hub's API host. Errors are usage errors naming the bad part.
    pub fn parse(text: &str) -> Result<Registry> {
        parse_registry(text).map_err(|why| {
            Error::usage(format!("invalid registry \"{}\": {}", msg::clean(text, 300), why))
        })
    }

    /// Docker Hub, the default registry.
    pub fn docker_hub() -> Registry {
        Registry { host: DOCKER_HUB.to_string(), port: None }
    }

    /// The registry for references without a host: `FERRY_DEFAULT_REGISTRY`
    /// when set and not empty, else Docker Hub.
    // Unit tests pass the default to `parse_with` instead of reading it here.
    #[allow(dead_code)]
    pub fn default_from_env() -> Result<Registry> {
        const VAR: &str = "FERRY_DEFAULT_REGISTRY";
        match std::env::var(VAR) {
            Ok(text) if !text.is_empty() => Registry::parse(&text).map_err(|e| e.context(VAR)),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(Registry::docker_hub()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(Error::usage(format!("{VAR}: not valid UTF-8")))
            }
        }
    }

    pub fn is_docker_hub(&self) -> bool {
        self.host == DOCKER_HUB && self.port.is_none()
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// A parsed image reference. `path` already carries `library/` where
/// Docker Hub needs it; `tag` and `digest` are what the user wrote.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub registry: Registry,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Reference {
    /// Parses a reference; one without a host goes to
    /// `FERRY_DEFAULT_REGISTRY` or Docker Hub.
    // Unit tests use `parse_with` to stay clear of the process environment.
    #[allow(dead_code)]
    pub fn parse(text: &str) -> Result<Reference> {
        let default = Registry::default_from_env()?;
        Reference::parse_with(text, &default)
    }

    /// Parses a reference; one without a host goes to `default`. Errors
    /// are usage errors that quote the reference and name the bad part.
    pub fn parse_with(text: &str, default: &Registry) -> Result<Reference> {
        parse_reference(text, default).map_err(|why| {
            Error::usage(format!(
                "invalid reference \"{}\": {}",
                msg::clean(text, 300),
                msg::clean(&why, 300)
            ))
        })
    }

    /// The tag, `latest` when none was given.
    pub fn tag(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// What goes after `/manifests/`: the digest when one was given (it
    /// decides what is fetched, even beside a tag), else the tag.
    pub fn version(&self) -> String {
        match &self.digest {
            Some(digest) => digest.to_string(),
            None => self.tag().to_string(),
        }
    }

    /// `HOST[:PORT]/PATH`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// `HOST[:PORT]/PATH:TAG`, plus `@DIGEST` when a digest was given; a
    /// reference with only a digest prints as `HOST[:PORT]/PATH@DIGEST`.
    pub fn canonical(&self) -> String {
        let mut out = self.repository();
        if self.tag.is_some() || self.digest.is_none() {
            out.push(':');
            out.push_str(self.tag());
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(&digest.to_string());
        }
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The reference, or why it is not one (without the quoted input).
fn parse_reference(text: &str, default: &Registry) -> std::result::Result<Reference, String> {
    if text.is_empty() {
        return Err("empty reference".into());
    }

    // The digest goes first: it is the only part after `@`.
    let (rest, digest) = match text.split_once('@') {
        Some((rest, digest)) => (rest, Some(Digest::parse(digest).map_err(|e| e.msg)?)),
        None => (text, None),
    };

    // A `:` after the last `/` starts the tag; one before it is a port.
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
            (&rest[..colon], Some(&rest[colon + 1..]))
        }
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        check_tag(tag)?;
    }
    if name.chars().count() > NAME_MAX {
        return Err(format!(
            "name is {} characters long, more than {NAME_MAX}",
            name.chars().count()
        ));
    }

    // docker's rule for telling `host/path` from `path/path`.
    let (registry, path) = match name.split_once('/') {
        Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
            (parse_registry(first)?, path)
        }
        _ => (default.clone(), name),
    };
    if path.is_empty() {
        return Err("empty path".into());
    }
    for component in path.split('/') {
        check_component(component, path)?;
    }

    // Docker Hub keeps its official images under `library/`.
    let path = if registry.is_docker_hub() && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    Ok(Reference { registry, path, tag: tag.map(str::to_string), digest })
}

/// One path component: `[a-z0-9]+` runs joined by `.`, `_`, `__` or any
/// number of `-`, as docker's grammar has it.
fn check_component(component: &str, path: &str) -> std::result::Result<(), String> {
    if component.is_empty() {
        return Err(format!("empty path component in \"{path}\""));
    }
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-');
    if let Some(bad) = component.chars().find(|&c| !allowed(c)) {
        if bad.is_ascii_uppercase() {
            return Err(format!("path component \"{component}\" must be lowercase"));
        }
        return Err(format!("path component \"{component}\" has invalid character {bad:?}"));
    }

    let misplaced = || {
        format!(
            "path component \"{component}\": separators (., _, __, -) must stand between \
             letters or digits"
        )
    };
    let bytes = component.as_bytes();
    let mut i = 0;
    loop {
        let run = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == run {
            return Err(misplaced());
        }
        if i == bytes.len() {
            return Ok(());
        }
        match bytes[i] {
            b'_' if bytes.get(i + 1) == Some(&b'_') => i += 2,
            b'.' | b'_' => i += 1,
            _ => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
        }
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let Some(first) = tag.chars().next() else {
        return Err("empty tag".into());
    };
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(format!("tag \"{tag}\" must start with a letter, digit or _"));
    }
    if let Some(bad) = tag.chars().find(|&c| !(c.is_ascii_alphanumeric() || "._-".contains(c))) {
        return Err(format!("tag \"{tag}\" has invalid character {bad:?}"));
    }
    if tag.len() > TAG_MAX {
        return Err(format!("tag is {} characters long, more than {TAG_MAX}", tag.len()));
    }
    Ok(())
}

/// `HOST[:PORT]` with HOST a DNS name, an IPv4 address or a bracketed
/// IPv6 address.
fn parse_registry(text: &str) -> std::result::Result<Registry, String> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let Some((addr, after)) = bracketed.split_once(']') else {
            return Err(format!("host \"{text}\" lacks the closing ]"));
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Err(format!("\"{addr}\" is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected \"{after}\" after the IPv6 address")),
            },
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        check_host(host)?;
        (host.to_ascii_lowercase(), port)
    };
    let port = port.map(check_port).transpose()?;

    // Docker Hub's public names are not its API host.
    if port.is_none() && (host == "docker.io" || host == "index.docker.io") {
        return Ok(Registry::docker_hub());
    }
    Ok(Registry { host, port })
}

/// Dot-separated labels of letters, digits and inner hyphens; IPv4
/// addresses fit the same shape.
fn check_host(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() {
        return Err("empty host".into());
    }
    if let Some(bad) = host.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
    {
        return Err(format!("host \"{host}\" has invalid character {bad:?}"));
    }
    for label in host.split('.') {
        if label.is_empty() || label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "host \"{host}\": each dot-separated part must start and end with a letter or \
                 digit"
            ));
        }
    }
    Ok(())
}

fn check_port(port: &str) -> std::result::Result<u16, String> {
    if port.is_empty() {
        return Err("empty port".into());
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port \"{port}\" is not a number"));
    }
    match port.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("port {port} is out of range 1-65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn hex() -> String {
        "0123456789abcdef".repeat(4)
    }

    fn hub(text: &str) -> Reference {
        Reference::parse_with(text, &Registry::docker_hub())
            .unwrap_or_else(|e| panic!("{text:?}: {}", e.msg))
    }

    fn bad(text: &str) -> String {
        let err = Reference::parse_with(text, &Registry::docker_hub())
            .map(|r| panic!("{text:?} parsed as {r}"))
            .unwrap_err();
        assert_eq!(err.kind, Kind::Usage, "{text:?}");
        err.msg
    }

    #[track_caller]
    fn rejects(text: &str, why: &str) {
        let msg = bad(text);
        assert!(msg.starts_with("invalid reference \""), "{text:?}: {msg}");
        assert!(msg.contains(why), "{text:?}: {msg:?} lacks {why:?}");
    }

    #[test]
    fn docker_hub_defaults() {
        let r = hub("alpine");
        assert_eq!(r.registry, Registry::docker_hub());
        assert_eq!(r.path, "library/alpine");
        assert_eq!(r.tag, None);
        assert_eq!(r.tag(), "latest");
        assert_eq!(r.version(), "latest");
        assert_eq!(r.repository(), "registry-1.docker.io/library/alpine");
        assert_eq!(r.canonical(), "registry-1.docker.io/library/alpine:latest");
        assert_eq!(r.to_string(), r.canonical());

        for text in ["docker.io/x", "index.docker.io/x", "docker.io/library/x", "x"] {
            assert_eq!(hub(text).canonical(), "registry-1.docker.io/library/x:latest", "{text}");
        }
        assert_eq!(hub("docker.io/a/b:1.0").canonical(), "registry-1.docker.io/a/b:1.0");
        assert_eq!(hub("user/app").path, "user/app");
    }

    #[test]
    fn hosts_ports_and_tags() {
        let r = hub("localhost:5000/a/b:t");
        assert_eq!(r.registry, Registry { host: "localhost".into(), port: Some(5000) });
        assert_eq!(r.path, "a/b");
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.canonical(), "localhost:5000/a/b:t");
        assert_eq!(r.repository(), "localhost:5000/a/b");

        let r = hub("localhost/x");
        assert_eq!(r.canonical(), "localhost/x:latest");

        let r = hub("127.0.0.1:5000/x");
        assert_eq!(r.registry.to_string(), "127.0.0.1:5000");
        assert_eq!(r.path, "x", "library/ is only for Docker Hub");

        let r = hub("example.com/a/b");
        assert_eq!(r.registry, Registry { host: "example.com".into(), port: None });
        assert_eq!(r.canonical(), "example.com/a/b:latest");

        let r = hub("Example.COM:443/a");
        assert_eq!(r.registry.host, "example.com");
        assert_eq!(r.registry.port, Some(443));

        let r = hub("[::1]:5000/a/b:t");
        assert_eq!(r.registry, Registry { host: "[::1]".into(), port: Some(5000) });
        assert_eq!(r.canonical(), "[::1]:5000/a/b:t");
        assert_eq!(hub("[fe80::1]/x").registry.to_string(), "[fe80::1]");

        // Without `.`, `:` or `localhost` the first component is a path.
        let r = hub("registry/x");
        assert_eq!(r.registry, Registry::docker_hub());
        assert_eq!(r.path, "registry/x");

        // A lone `localhost:5000` is docker's `library/localhost:5000` too.
        let r = hub("localhost:5000");
        assert_eq!(r.path, "library/localhost");
        assert_eq!(r.tag(), "5000");
    }

    #[test]
    fn digests() {
        let text = format!("alpine@sha256:{}", hex());
        let r = hub(&text);
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().unwrap().hex(), hex());
        assert_eq!(r.version(), format!("sha256:{}", hex()));
        assert_eq!(r.canonical(), format!("registry-1.docker.io/library/alpine@sha256:{}", hex()));

        let r = hub(&format!("a/b:t@sha256:{}", hex()));
        assert_eq!(r.tag(), "t");
        assert_eq!(r.version(), format!("sha256:{}", hex()), "the digest decides");
        assert_eq!(r.canonical(), format!("registry-1.docker.io/a/b:t@sha256:{}", hex()));

        let sha512 = format!("localhost:5000/a@sha512:{}", hex().repeat(2));
        assert_eq!(hub(&sha512).canonical(), sha512);
    }

    #[test]
    fn round_trips_through_canonical() {
        let texts = [
            "alpine".to_string(),
            "localhost:5000/a/b:t".into(),
            "[::1]:5000/a".into(),
            format!("a/b:t@sha256:{}", hex()),
            format!("example.com/x@sha256:{}", hex()),
        ];
        for text in texts {
            let r = hub(&text);
            assert_eq!(hub(&r.canonical()).canonical(), r.canonical(), "{text}");
        }
    }

    #[test]
    fn default_registry_applies_only_without_host() {
        let mirror = Registry::parse("mirror.example:5000").unwrap();
        let parse = |text: &str| Reference::parse_with(text, &mirror).unwrap();

        let r = parse("alpine");
        assert_eq!(r.canonical(), "mirror.example:5000/alpine:latest", "no library/ off the Hub");
        assert_eq!(parse("a/b").canonical(), "mirror.example:5000/a/b:latest");
        assert_eq!(parse("localhost:5000/a").registry.to_string(), "localhost:5000");
        assert_eq!(parse("docker.io/x").canonical(), "registry-1.docker.io/library/x:latest");

        // A default that is Docker Hub by another name behaves as the Hub.
        let hub_alias = Registry::parse("docker.io").unwrap();
        let r = Reference::parse_with("alpine", &hub_alias).unwrap();
        assert_eq!(r.path, "library/alpine");
    }

    #[test]
    fn path_components() {
        for ok in ["a.b", "a_b", "a__b", "a-b", "a---b", "a0/b.c_d__e-f", "0", "a-b.c_d"] {
            hub(ok);
        }
        rejects("A/b", "path component \"A\" must be lowercase");
        assert_eq!(bad("A/b"), "invalid reference \"A/b\": path component \"A\" must be lowercase");
        rejects("a/Bc", "path component \"Bc\" must be lowercase");
        rejects("localhost:5000/a/B", "path component \"B\" must be lowercase");
        rejects("a//b", "empty path component in \"a//b\"");
        rejects("a/", "empty path component");
        rejects("/a", "empty path component");
        rejects("localhost:5000/", "empty path");
        rejects("a$b", "path component \"a$b\" has invalid character '$'");
        rejects("a b", "invalid character ' '");
        for misplaced in ["a..b", "a___b", "_a", "a_", "-a", "a-", ".a", "a._b", "a-.b", "a_-b"] {
            rejects(misplaced, "separators (., _, __, -) must stand between letters or digits");
        }
    }

    #[test]
    fn tags() {
        let tag128 = format!("a/b:{}", "t".repeat(128));
        assert_eq!(hub(&tag128).tag().len(), 128);
        hub("a:_x");
        hub("a:v1.2-rc_3");
        hub("a:UPPER");
        rejects(&format!("a/b:{}", "t".repeat(129)), "tag is 129 characters long, more than 128");
        rejects("a:", "empty tag");
        rejects("a:-x", "tag \"-x\" must start with a letter, digit or _");
        rejects("a:.x", "must start with");
        rejects("a:x$", "tag \"x$\" has invalid character '$'");
        rejects("a:b:c", "path component \"a:b\" has invalid character ':'");
    }

    #[test]
    fn malformed_digests() {
        rejects("a@sha256:abc", "invalid digest \"sha256:abc\": sha256 needs 64 hex digits");
        rejects("a@", "invalid digest \"\"");
        rejects("a@sha256:../../x", "invalid digest");
        rejects(&format!("a@md5:{}", hex()), "unsupported algorithm \"md5\"");
        rejects(&format!("a@sha256:{}", hex().to_uppercase()), "lowercase");
        rejects(&format!("a@sha256:{}@x", hex()), "invalid digest");
        rejects(&format!("@sha256:{}", hex()), "empty path");
    }

    #[test]
    fn hosts_and_ports() {
        rejects("localhost:0/a", "port 0 is out of range 1-65535");
        rejects("localhost:65536/a", "port 65536 is out of range 1-65535");
        rejects("localhost:99999999999999999999/a", "out of range");
        rejects("localhost:http/a", "port \"http\" is not a number");
        rejects("localhost:+80/a", "not a number");
        rejects("localhost:/a", "empty port");
        rejects("a_b.com/x", "host \"a_b.com\" has invalid character '_'");
        rejects("-a.com/x", "each dot-separated part must start and end");
        rejects("a..com/x", "each dot-separated part");
        rejects("a.com:1:2/x", "port \"1:2\" is not a number");
        rejects(":5000/x", "empty host");
        rejects("[::1/x", "lacks the closing ]");
        rejects("[zz]:5000/x", "\"zz\" is not an IPv6 address");
        rejects("[::1]x/a", "unexpected \"x\" after the IPv6 address");
        hub("localhost:65535/a");
        hub("localhost:1/a");
    }

    #[test]
    fn length_limit() {
        let name = format!("a/{}", "b".repeat(253));
        assert_eq!(name.len(), 255);
        hub(&name);
        hub(&format!("{name}:{}@sha256:{}", "t".repeat(128), hex()));
        rejects(&format!("{name}b"), "name is 256 characters long, more than 255");
        rejects(&format!("x.io/{}", "b".repeat(300)), "more than 255");
    }

    #[test]
    fn garbage_never_panics() {
        for text in ["", "@", ":", "/", "//", "[", "]", "[]:", "[]/a", "é", "a/é", "\0", "a\n"] {
            let _ = Reference::parse_with(text, &Registry::docker_hub());
        }
        rejects("", "empty reference");
        let msg = bad("a/\x1b[31m");
        assert!(!msg.contains('\x1b'), "{msg:?}");
    }

    #[test]
    fn registry_parse() {
        let r = Registry::parse("localhost:5000").unwrap();
        assert_eq!(r, Registry { host: "localhost".into(), port: Some(5000) });
        assert_eq!(r.to_string(), "localhost:5000");
        assert!(!r.is_docker_hub());
        for hub in ["docker.io", "index.docker.io", "registry-1.docker.io", "DOCKER.IO"] {
            let r = Registry::parse(hub).unwrap();
            assert!(r.is_docker_hub(), "{hub}");
            assert_eq!(r.to_string(), "registry-1.docker.io");
        }
        assert_eq!(Registry::parse("docker.io:5000").unwrap().to_string(), "docker.io:5000");
        assert_eq!(Registry::parse("[::1]").unwrap().to_string(), "[::1]");
        assert_eq!(Registry::parse("registry").unwrap().host, "registry");

        let err = Registry::parse("host:0").unwrap_err();
        assert_eq!(err.kind, Kind::Usage);
        assert_eq!(err.msg, "invalid registry \"host:0\": port 0 is out of range 1-65535");
        assert!(Registry::parse("host/path").is_err());
        assert!(Registry::parse("").is_err());
    }
}
