//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1): every challenge of
//! every header value, as scheme, parameters and token68.
//!
//! The grammar lets one header value hold several challenges and a
//! challenge hold several comma-separated parameters, so a comma is only
//! understood after looking at what follows it. Registries and proxies
//! bend the grammar, and the text comes from whatever answered the
//! request, so this parser keeps what it can read, skips what it cannot,
//! and never fails or panics. Choosing a challenge and acting on it is
//! the auth module's business.

/// One challenge: `Bearer realm="…",service="…"` or `Negotiate abc==`.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercased, since schemes are case-insensitive.
    pub scheme: String,
    /// In order of appearance; keys lowercased, values unescaped.
    pub params: Vec<(String, String)>,
    pub token68: Option<String>,
}

#[cfg_attr(not(test), allow(dead_code))]
impl Challenge {
    /// The value of parameter `key` (any case); the first wins when a
    /// server repeats one.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
}

/// Every challenge in `values`, the `WWW-Authenticate` header values in
/// the order received. Unreadable parts are skipped.
#[cfg_attr(not(test), allow(dead_code))]
pub fn parse(values: &[&str]) -> Vec<Challenge> {
    let mut out = Vec::new();
    for value in values {
        Parser { s: value.as_bytes(), i: 0 }.challenges(&mut out);
    }
    out
}

/// A cursor over one header value. Every step that can fail either
/// advances or leaves the loop, which is what keeps it from spinning on
/// hostile input.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn challenges(&mut self, out: &mut Vec<Challenge>) {
        loop {
            self.skip_separators();
            if self.eof() {
                return;
            }

            let scheme = self.token();
            if scheme.is_empty() {
                self.skip_element();
                continue;
            }
            let spaced = self.skip_spaces();
            if self.peek() == Some(b'=') {
                // `key=value` with no scheme before it: nothing to keep.
                self.skip_element();
                continue;
            }

            let mut challenge = Challenge {
                scheme: scheme.to_ascii_lowercase(),
                params: Vec::new(),
                token68: None,
            };
            if spaced && !self.eof() && self.peek() != Some(b',') {
                match self.token68() {
                    Some(token68) => challenge.token68 = Some(token68),
                    None => self.params(&mut challenge.params),
                }
            }
            out.push(challenge);
        }
    }

    /// Parameters up to the end of the value or the start of the next
    /// challenge, which is left for the caller.
    fn params(&mut self, params: &mut Vec<(String, String)>) {
        loop {
            let start = self.i;
            let key = self.token();
            if key.is_empty() {
                self.skip_element();
            } else {
                self.skip_spaces();
                if self.peek() != Some(b'=') {
                    // A token without `=` begins the next challenge.
                    self.i = start;
                    return;
                }
                self.i += 1;
                self.skip_spaces();
                let value = if self.peek() == Some(b'"') {
                    self.quoted()
                } else {
                    self.token().to_string()
                };
                params.push((key.to_ascii_lowercase(), value));
            }

            // A comma may separate two parameters or two challenges; so
            // may a bare space from servers that forget the comma.
            self.skip_spaces();
            match self.peek() {
                None => return,
                Some(b',') => self.skip_separators(),
                Some(_) => {}
            }
            if self.at_next_challenge() {
                return;
            }
        }
    }

    /// Whether a token not followed by `=` starts here: the next
    /// challenge's scheme rather than another parameter. Anything else is
    /// a parameter or garbage, and both stay with this challenge.
    fn at_next_challenge(&self) -> bool {
        let mut probe = Parser { s: self.s, i: self.i };
        !probe.token().is_empty() && {
            probe.skip_spaces();
            probe.peek() != Some(b'=')
        }
    }

    /// A token68 that fills the rest of the list element, or `None` with
    /// the cursor left where it was.
    fn token68(&mut self) -> Option<String> {
        let start = self.i;
        let body = self.take_while(is_token68_char);
        if body.is_empty() {
            return None;
        }
        self.take_while(|b| b == b'=');
        let end = self.i;
        self.skip_spaces();
        if self.eof() || self.peek() == Some(b',') {
            return Some(String::from_utf8_lossy(&self.s[start..end]).into_owned());
        }
        self.i = start;
        None
    }

    /// A quoted string starting at `"`, unescaped. An unterminated one
    /// runs to the end of the value, which is the most a reader can do.
    fn quoted(&mut self) -> String {
        let mut bytes = Vec::new();
        self.i += 1;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        bytes.push(escaped);
                        self.i += 1;
                    }
                }
                _ => bytes.push(b),
            }
        }
        // The input was a &str and only ASCII bytes were dropped, but an
        // escape before a multi-byte character could still split it.
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn token(&mut self) -> &'a str {
        let bytes = self.take_while(is_tchar);
        // tchar is ASCII only, so the slice is valid UTF-8.
        std::str::from_utf8(bytes).unwrap_or_default()
    }

    /// Skips an unreadable list element up to the next comma outside
    /// quotes, always moving at least one byte unless at a comma or end.
    fn skip_element(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b',' => return,
                b'"' => {
                    self.quoted();
                }
                _ => self.i += 1,
            }
        }
    }

    fn skip_separators(&mut self) {
        self.take_while(|b| matches!(b, b' ' | b'\t' | b','));
    }

    /// Skips spaces and tabs; says whether there were any.
    fn skip_spaces(&mut self) -> bool {
        !self.take_while(|b| matches!(b, b' ' | b'\t')).is_empty()
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.i;
        while self.peek().is_some_and(&keep) {
            self.i += 1;
        }
        &self.s[start..self.i]
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eof(&self) -> bool {
        self.i >= self.s.len()
    }
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 §11.2 token68 characters, before the trailing `=`s.
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            token68: None,
        }
    }

    fn one(value: &str) -> Vec<Challenge> {
        parse(&[value])
    }

    #[test]
    fn registry_bearer() {
        let got = one(r#"Bearer realm="https://a/token",service="reg",scope="repository:x:pull""#);
        assert_eq!(
            got,
            [ch(
                "bearer",
                &[("realm", "https://a/token"), ("service", "reg"), ("scope", "repository:x:pull")]
            )]
        );
        assert_eq!(got[0].param("realm"), Some("https://a/token"));
        assert_eq!(got[0].param("SCOPE"), Some("repository:x:pull"));
        assert_eq!(got[0].param("missing"), None);
    }

    #[test]
    fn several_challenges_in_one_value() {
        let got = one(r#"Basic realm="x", Bearer realm="y",service="z""#);
        assert_eq!(
            got,
            [ch("basic", &[("realm", "x")]), ch("bearer", &[("realm", "y"), ("service", "z")])]
        );

        let got =
            one(r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#);
        assert_eq!(
            got,
            [
                ch("newauth", &[("realm", "apps"), ("type", "1"), ("title", r#"Login to "apps""#)]),
                ch("basic", &[("realm", "simple")])
            ]
        );

        let got = one("Basic, Bearer");
        assert_eq!(got, [ch("basic", &[]), ch("bearer", &[])]);
    }

    #[test]
    fn quoting() {
        let got = one(r#"Bearer realm="a\"b\\c",scope="repository:a/b:pull,push""#);
        assert_eq!(got[0].param("realm"), Some(r#"a"b\c"#));
        assert_eq!(got[0].param("scope"), Some("repository:a/b:pull,push"));

        let got = one(r#"Bearer realm="", service="a\,b""#);
        assert_eq!(got[0].param("realm"), Some(""));
        assert_eq!(got[0].param("service"), Some("a,b"));

        // Unterminated: the rest of the value is the string.
        let got = one(r#"Bearer realm="https://a/tok, service=x"#);
        assert_eq!(got, [ch("bearer", &[("realm", "https://a/tok, service=x")])]);

        // A lone backslash at the end.
        assert_eq!(one(r#"Basic realm="x\"#)[0].param("realm"), Some("x"));
        assert_eq!(one("Basic realm=\"é\\ü\"")[0].param("realm"), Some("éü"));
    }

    #[test]
    fn case_and_spacing() {
        let want = [ch("bearer", &[("realm", "r"), ("service", "s")])];
        for value in [
            r#"BEARER Realm="r",SERVICE="s""#,
            r#"bEaReR   realm = "r" ,  service= s"#,
            "\tBearer\trealm=r,\tservice=\"s\"\t",
            r#"Bearer realm="r",service="s","#,
            r#",, Bearer realm="r",,, service="s" ,,"#,
            r#"Bearer realm="r" service="s""#,
        ] {
            assert_eq!(one(value), want, "{value:?}");
        }
    }

    #[test]
    fn token68() {
        let got = one("Negotiate abc==");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].scheme, "negotiate");
        assert_eq!(got[0].token68.as_deref(), Some("abc=="));
        assert!(got[0].params.is_empty());

        let got = one(r#"Negotiate a+b/c~d==, Basic realm="x""#);
        assert_eq!(got[0].token68.as_deref(), Some("a+b/c~d=="));
        assert_eq!(got[1], ch("basic", &[("realm", "x")]));

        let got = one(r#"Basic realm="x", Negotiate abc"#);
        assert_eq!(got[0], ch("basic", &[("realm", "x")]));
        assert_eq!(got[1].token68.as_deref(), Some("abc"));
    }

    #[test]
    fn several_header_values() {
        let got = parse(&[r#"Basic realm="x""#, "", r#"Bearer realm="y",service="z""#]);
        assert_eq!(
            got,
            [ch("basic", &[("realm", "x")]), ch("bearer", &[("realm", "y"), ("service", "z")])]
        );
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(parse(&[]).is_empty());
        assert!(one("").is_empty());
        assert!(one("   ,  , ").is_empty());
        assert!(one(r#"realm="x""#).is_empty());
        assert!(one(r#""quoted""#).is_empty());
        assert!(one("@@@ ;;;").is_empty());

        let got = one(r#"@@@, Bearer realm="y", {junk}, service="z""#);
        assert_eq!(got[0], ch("bearer", &[("realm", "y"), ("service", "z")]));

        // `Bearer =x` reads as a parameter without a scheme.
        let got = one(r#"Bearer =x, Basic realm="b""#);
        assert_eq!(got, [ch("basic", &[("realm", "b")])]);

        let got = one(r#"Basic realm="b"{junk}, charset="UTF-8""#);
        assert_eq!(got, [ch("basic", &[("realm", "b"), ("charset", "UTF-8")])]);

        let got = one("Basic realm={junk}");
        assert_eq!(got, [ch("basic", &[("realm", "")])]);

        let got = one("Bearer realm=");
        assert_eq!(got[0].token68.as_deref(), Some("realm="));
        let got = one("Bearer realm= ,service=s");
        assert_eq!(got[0].token68.as_deref(), Some("realm="));
        assert_eq!(got[1..], [] as [Challenge; 0], "service=s has no scheme");
    }

    #[test]
    fn duplicate_param_first_wins() {
        let got = one(r#"Bearer realm="a", realm="b""#);
        assert_eq!(got[0].param("realm"), Some("a"));
        assert_eq!(got[0].params.len(), 2);
    }

    /// Random bytes (mostly from the grammar's own alphabet, so the parser
    /// gets deep) must never panic or loop.
    #[test]
    fn random_input_never_panics() {
        const ALPHABET: &[u8] = b"Bearer realm=\"\\,, \t=abcXYZ019+/~-._!#$%&'*^`|@;:{}\x00\x7f";
        let mut seed: u64 = 0x5eed_f00d_cafe_beef;
        let mut next = || {
            // Knuth's MMIX LCG; the high bits are the well-mixed ones.
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        for _ in 0..20_000 {
            let len = next() % 64;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 8 == 0 { (r >> 3) as u8 } else { ALPHABET[(r >> 3) % ALPHABET.len()] }
                })
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            let second = String::from_utf8_lossy(&bytes[len / 2..]);
            for c in parse(&[&text, &second]) {
                assert!(!c.scheme.is_empty());
                assert!(c.scheme.bytes().all(is_tchar));
                assert!(c.scheme.bytes().all(|b| !b.is_ascii_uppercase()));
            }
        }
    }
}
