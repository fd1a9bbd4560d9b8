//! The little URL handling ferry needs: origins, resolving a `Location` or
//! `Link` against the request URL, and encoding query values.
//!
//! Registry URLs are built by ferry from validated parts, so this is not a
//! general URL parser; it only has to be exact about scheme, host and port,
//! which decide where credentials may go.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Error, Result};

/// Scheme, host and port of a URL; credentials never cross from one origin
/// to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// The origin of an absolute `http://` or `https://` URL.
    pub fn of(url: &str) -> Result<Origin> {
        let (https, rest) = if let Some(r) = strip_prefix_ci(url, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(url, "http://") {
            (false, r)
        } else {
            return Err(bad(url, "not an http or https URL"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if authority.contains('@') {
            return Err(bad(url, "user information in URLs is not accepted"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| bad(url, "bad host or port"))?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        Ok(Origin { https, host: host.to_ascii_lowercase(), port })
    }

    /// Same host and port, whatever the scheme.
    pub fn same_host(&self, other: &Origin) -> bool {
        self.host == other.host && self.port == other.port
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn bad(url: &str, why: &str) -> Error {
    Error::failure(format!("bad URL \"{}\": {why}", crate::msg::clean(url, 200)))
}

/// Splits `host[:port]` or `[v6]:port`; None when malformed or empty.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = &authority[..close + 2];
        match &rest[close + 1..] {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return None,
        },
    };
    Some((host, port))
}

/// Resolves `reference` (a `Location` or `Link` target) against the absolute
/// URL `base`, as RFC 3986 §5.2 does for the forms servers send.
pub fn resolve(base: &str, reference: &str) -> Result<String> {
    let reference = reference.trim();
    if reference.is_empty() {
        return Err(bad(reference, "empty"));
    }
    if reference.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad(reference, "contains spaces or control characters"));
    }
    if strip_prefix_ci(reference, "https://").is_some()
        || strip_prefix_ci(reference, "http://").is_some()
    {
        Origin::of(reference)?;
        return Ok(reference.to_string());
    }
    if reference.contains("://")
        || reference.split(['/', '?']).next().is_some_and(|s| s.contains(':'))
    {
        return Err(bad(reference, "not an http or https URL"));
    }
    let scheme_end = base.find("://").ok_or_else(|| bad(base, "not absolute"))? + 3;
    let authority_end =
        base[scheme_end..].find(['/', '?', '#']).map_or(base.len(), |i| i + scheme_end);
    if let Some(rest) = reference.strip_prefix("//") {
        let url = format!("{}{rest}", &base[..scheme_end]);
        Origin::of(&url)?;
        return Ok(url);
    }
    let root = &base[..authority_end];
    if reference.starts_with('/') {
        return Ok(format!("{root}{reference}"));
    }
    // A path or query relative to the base's path.
    let path_end = base[authority_end..].find(['?', '#']).map_or(base.len(), |i| i + authority_end);
    let path = &base[authority_end..path_end];
    if reference.starts_with('?') {
        return Ok(format!("{root}{path}{reference}"));
    }
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    Ok(format!("{root}{dir}{reference}"))
}

/// Characters left as they are in a query value: RFC 3986 unreserved.
const QUERY_VALUE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a query value, so `&`, `#`, `%` and spaces in a scope or
/// service cannot add parameters of their own.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Appends `key=value` (value encoded) to `url`'s query, keeping any query
/// it already has.
pub fn append_query(url: &str, key: &str, value: &str) -> String {
    let (head, fragment) = match url.find('#') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let sep = if !head.contains('?') {
        "?"
    } else if head.ends_with('?') || head.ends_with('&') {
        ""
    } else {
        "&"
    };
    format!("{head}{sep}{key}={}{fragment}", encode(value))
}

/// The URL without its query, for messages that must not show tokens or
/// upload state kept in the query string.
pub fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let o = Origin::of("https://Reg.example:5000/v2/").unwrap();
        assert_eq!(o, Origin { https: true, host: "reg.example".into(), port: 5000 });
        assert_eq!(Origin::of("http://h/x").unwrap().port, 80);
        assert_eq!(Origin::of("https://[::1]:8443/").unwrap().host, "[::1]");
        assert!(Origin::of("ftp://h/").is_err());
        assert!(Origin::of("https://user:pw@h/").is_err());
        assert!(Origin::of("https://h:0/").is_err());
        assert!(Origin::of("https://h:99999/").is_err());
        assert!(Origin::of("https:///x").is_err());
    }

    #[test]
    fn resolving() {
        let base = "https://r:5000/v2/a/blobs/uploads/?x=1";
        assert_eq!(
            resolve(base, "/v2/a/blobs/uploads/u1?s=2").unwrap(),
            "https://r:5000/v2/a/blobs/uploads/u1?s=2"
        );
        assert_eq!(resolve(base, "u2").unwrap(), "https://r:5000/v2/a/blobs/uploads/u2");
        assert_eq!(resolve(base, "?n=2").unwrap(), "https://r:5000/v2/a/blobs/uploads/?n=2");
        assert_eq!(resolve(base, "//cdn.example/b").unwrap(), "https://cdn.example/b");
        assert_eq!(resolve(base, "http://other/x").unwrap(), "http://other/x");
        assert!(resolve(base, "file:///etc/passwd").is_err());
        assert!(resolve(base, "javascript:alert(1)").is_err());
        assert!(resolve(base, "").is_err());
        assert!(resolve(base, "/a b").is_err());
    }

    #[test]
    fn queries() {
        assert_eq!(encode("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
        assert_eq!(encode("a&b=c#d %"), "a%26b%3Dc%23d%20%25");
        assert_eq!(
            append_query("https://h/u", "digest", "sha256:ab"),
            "https://h/u?digest=sha256%3Aab"
        );
        assert_eq!(append_query("https://h/u?s=1", "digest", "x"), "https://h/u?s=1&digest=x");
        assert_eq!(append_query("https://h/u?", "d", "x"), "https://h/u?d=x");
        assert_eq!(without_query("https://h/u?_state=secret"), "https://h/u");
    }
}
