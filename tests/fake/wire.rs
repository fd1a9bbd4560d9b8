//! The fake registry's HTTP/1.1 wire format: reading requests off a
//! connection and writing scripted responses, including the broken ones.
//!
//! Deliberately small and strict: it understands exactly what ferry's ureq
//! sends (Content-Length or chunked request bodies, keep-alive) and bounds
//! everything it reads, so a client bug cannot hang or exhaust a test. It
//! knows nothing about routes or recording; `mod.rs` owns those.

use std::io::{self, Read, Write};
use std::thread;

use super::script::{Behaviour, Response};

/// Longest request head (request line plus headers) the fake accepts.
const MAX_HEAD: usize = 64 * 1024;

/// Longest request body the fake accepts; ferry's uploads in these tests
/// are small, and a bound keeps a runaway client from eating memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One request as it arrived, before the fake adds where it came in.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the client asked to close the connection after this exchange.
    pub fn wants_close(&self) -> bool {
        match self.header("connection") {
            Some(v) => v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")),
            None => self.version == "HTTP/1.0",
        }
    }
}

/// A connection with its own read buffer, since bytes of the next
/// keep-alive request may arrive with the current one.
pub struct Conn<S> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: Read + Write> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        Conn { stream, buf: Vec::new() }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    /// Reads one line ending in CRLF (the CRLF removed), bounded.
    fn line(&mut self, limit: usize) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.take(i + 2);
                return Ok(line[..i].to_vec());
            }
            if self.buf.len() > limit {
                return Err(bad("line too long"));
            }
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.take(n))
    }

    /// Reads the next request; `Ok(None)` when the client closed cleanly
    /// between requests (the normal end of a keep-alive connection).
    pub fn read_request(&mut self) -> io::Result<Option<Incoming>> {
        // Request head, up to the blank line.
        while !self.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            if self.buf.len() > MAX_HEAD {
                return Err(bad("request head too long"));
            }
            if !self.fill()? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let request_line = String::from_utf8(self.line(MAX_HEAD)?).map_err(|_| bad("not UTF-8"))?;
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("malformed request line"));
        };
        let mut req = Incoming {
            method: method.to_string(),
            target: target.to_string(),
            version: version.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        loop {
            let line = self.line(MAX_HEAD)?;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8(line).map_err(|_| bad("header not UTF-8"))?;
            let (k, v) = line.split_once(':').ok_or_else(|| bad("header without colon"))?;
            req.headers.push((k.trim().to_string(), v.trim().to_string()));
        }

        // A client waiting for permission to send its body gets it.
        if req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            self.stream.flush()?;
        }

        // Body: chunked wins over Content-Length (RFC 9112 §6.3).
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            req.body = self.chunked_body()?;
        } else if let Some(len) = req.header("content-length") {
            let len: usize = len.parse().map_err(|_| bad("bad Content-Length"))?;
            if len > MAX_BODY {
                return Err(bad("request body too large"));
            }
            req.body = self.exact(len)?;
        }
        Ok(Some(req))
    }

    fn chunked_body(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size_line = String::from_utf8(self.line(1024)?).map_err(|_| bad("chunk size"))?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("chunk size"))?;
            if body.len() + size > MAX_BODY {
                return Err(bad("request body too large"));
            }
            if size == 0 {
                // Trailers, then the blank line.
                while !self.line(MAX_HEAD)?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.exact(size)?);
            if !self.exact(2)?.eq(b"\r\n") {
                return Err(bad("chunk not followed by CRLF"));
            }
        }
    }

    /// Writes `resp` as the answer to a request with `method`; returns
    /// whether the connection may carry another request afterwards.
    pub fn write_response(&mut self, method: &str, resp: &Response) -> io::Result<bool> {
        if let Some(d) = resp.delay {
            thread::sleep(d);
        }
        let head_only = method == "HEAD" || resp.status == 204 || resp.status == 304;
        let body: &[u8] = if head_only { &[] } else { &resp.body };

        match &resp.behaviour {
            Behaviour::Drop => return Ok(false),
            Behaviour::Raw(bytes) => {
                self.stream.write_all(bytes)?;
                self.stream.flush()?;
                return Ok(false);
            }
            _ => {}
        }

        // Status line and headers; framing headers are added unless the
        // script set them itself (a script may lie about the length).
        let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let has = |name: &str| resp.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let chunked = matches!(resp.behaviour, Behaviour::Chunked | Behaviour::ChunkedTruncated);
        let close_delimited = matches!(resp.behaviour, Behaviour::CloseDelimited);
        if chunked {
            if !has("transfer-encoding") {
                head.push_str("Transfer-Encoding: chunked\r\n");
            }
        } else if !close_delimited && !has("content-length") {
            head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
        }
        let closes = close_delimited
            || resp.close
            || !matches!(resp.behaviour, Behaviour::Normal | Behaviour::Chunked);
        if closes && !has("connection") {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes())?;
        self.stream.flush()?;

        match &resp.behaviour {
            Behaviour::Normal | Behaviour::CloseDelimited => self.stream.write_all(body)?,
            Behaviour::CloseAfter(n) => self.stream.write_all(&body[..(*n).min(body.len())])?,
            Behaviour::StallAfterHeaders(d) => {
                thread::sleep(*d);
                self.stream.write_all(body)?;
            }
            Behaviour::Chunked | Behaviour::ChunkedTruncated => {
                for piece in body.chunks(8 * 1024) {
                    self.stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                    self.stream.write_all(piece)?;
                    self.stream.write_all(b"\r\n")?;
                }
                if matches!(resp.behaviour, Behaviour::Chunked) && !head_only {
                    self.stream.write_all(b"0\r\n\r\n")?;
                }
            }
            Behaviour::Drop | Behaviour::Raw(_) => unreachable!("handled above"),
        }
        self.stream.flush()?;
        Ok(!closes)
    }
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}
