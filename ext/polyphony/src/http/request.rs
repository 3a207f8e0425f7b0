//! A request's head, parsed by `httparse` and checked for what HTTP/1.1 asks of a server
//! (RFC 9112): one way of framing the body, one Host, a version this server speaks. No Ruby
//! here; [`super::env`] turns a [`Head`] into a Rack env.

use httparse::{Header, Request, Status, EMPTY_HEADER};

/// Header lines a request may have; one more is answered with 431.
pub const MAX_HEADERS: usize = 100;

/// Why a request cannot be served: the status to answer with, and what to log.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: &'static str,
}

const fn reject(status: u16, reason: &'static str) -> Rejection {
    Rejection { status, reason }
}

/// How the request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body (no Content-Length, no Transfer-Encoding).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head, borrowing the buffer it was read from.
pub struct Head<'b, 'h> {
    pub method: &'b str,
    /// The request target as sent (origin form `/path?query`, absolute form, or `*`).
    pub target: &'b str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: &'h [Header<'b>],
    pub body: Body,
    /// The bytes the head took, the blank line included.
    pub length: usize,
}

impl Head<'_, '_> {
    /// The target's path and query (empty when it has none), for any form of target.
    pub fn path_and_query(&self) -> (&str, &str) {
        let origin = match self.target.find("://") {
            // Absolute form: the path starts after the authority.
            Some(scheme_end) => {
                let after = &self.target[scheme_end + 3..];
                after.find('/').map_or("/", |slash| &after[slash..])
            }
            None if self.target == "*" => "",
            None => self.target,
        };
        match origin.split_once('?') {
            Some((path, query)) => (path, query),
            None => (origin, ""),
        }
    }

    /// The authority of an absolute-form target, which takes the place of Host (RFC 9112,
    /// 3.2.2).
    pub fn target_authority(&self) -> Option<&str> {
        let scheme_end = self.target.find("://")?;
        let after = &self.target[scheme_end + 3..];
        Some(after.split(['/', '?']).next().unwrap_or(after))
    }
}

/// Parses the head at the start of `buffer` into `headers`: `Ok(None)` while it is
/// incomplete (and under `max_length` bytes).
pub fn parse<'b, 'h>(
    buffer: &'b [u8],
    headers: &'h mut [Header<'b>; MAX_HEADERS],
    max_length: usize,
) -> Result<Option<Head<'b, 'h>>, Rejection> {
    let mut request = Request::new(headers);
    let length = match request.parse(buffer) {
        Ok(Status::Complete(length)) if length > max_length => {
            return Err(reject(431, "request head too large"))
        }
        Ok(Status::Complete(length)) => length,
        Ok(Status::Partial) if buffer.len() >= max_length => {
            return Err(reject(431, "request head too large"))
        }
        Ok(Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(reject(431, "too many header lines")),
        Err(httparse::Error::Version) => return Err(reject(505, "HTTP version not supported")),
        Err(_) => return Err(reject(400, "malformed request head")),
    };
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Err(reject(400, "malformed request head"));
    };
    let headers: &'h [Header<'b>] = request.headers;
    let body = framing(headers)?;
    if minor_version == 1 && !target.contains("://") && count(headers, "host") != 1 {
        return Err(reject(400, "an HTTP/1.1 request needs one Host header"));
    }
    if count(headers, "host") > 1 {
        return Err(reject(400, "more than one Host header"));
    }
    Ok(Some(Head {
        method,
        target,
        minor_version,
        headers,
        body,
        length,
    }))
}

fn count(headers: &[Header], name: &str) -> usize {
    headers
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case(name))
        .count()
}

/// The body's framing: a request with both Content-Length and Transfer-Encoding, several
/// different lengths, or a transfer coding that does not end in chunked is refused, as
/// RFC 9112 (6.1, 6.3) asks, so that no proxy in front reads it another way.
fn framing(headers: &[Header]) -> Result<Body, Rejection> {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = content_length(header.value)?;
            if length.is_some_and(|earlier| earlier != value) {
                return Err(reject(400, "conflicting Content-Length headers"));
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding counts; each header line continues the list.
            let last = header
                .value
                .rsplit(|&byte| byte == b',')
                .next()
                .unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }
    match (length, chunked) {
        (Some(_), Some(_)) => Err(reject(
            400,
            "both Content-Length and Transfer-Encoding given",
        )),
        (_, Some(false)) => Err(reject(501, "transfer coding not implemented")),
        (_, Some(true)) => Ok(Body::Chunked),
        (Some(length), None) => Ok(Body::Length(length)),
        (None, None) => Ok(Body::None),
    }
}

/// A Content-Length value: decimal digits only (no sign, no spaces inside).
fn content_length(value: &[u8]) -> Result<u64, Rejection> {
    let digits = value.trim_ascii();
    let invalid = || reject(400, "invalid Content-Length");
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(invalid)
}

/// Empty header slots for [`parse`].
pub fn header_slots<'b>() -> [Header<'b>; MAX_HEADERS] {
    [EMPTY_HEADER; MAX_HEADERS]
}

/// A chunk-size line at the start of `buffer` (RFC 9112, 7.1): `Ok(Some((line length,
/// chunk size)))`, `Ok(None)` while incomplete.
pub fn chunk_size(buffer: &[u8]) -> Result<Option<(usize, u64)>, Rejection> {
    match httparse::parse_chunk_size(buffer) {
        Ok(Status::Complete((length, size))) => Ok(Some((length, size))),
        Ok(Status::Partial) if buffer.len() > 1024 => Err(reject(400, "chunk size line too long")),
        Ok(Status::Partial) => Ok(None),
        Err(_) => Err(reject(400, "invalid chunk size")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A head's "METHOD path", query, minor version, body framing and length.
    type Parsed = (String, String, u8, Body, usize);

    fn parsed(text: &str) -> Result<Option<Parsed>, Rejection> {
        let mut slots = header_slots();
        parse(text.as_bytes(), &mut slots, 8192).map(|head| {
            head.map(|head| {
                let (path, query) = head.path_and_query();
                (
                    format!("{} {path}", head.method),
                    query.to_owned(),
                    head.minor_version,
                    head.body,
                    head.length,
                )
            })
        })
    }

    #[test]
    fn a_complete_head_and_its_length() {
        let text = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\nrest";
        let head = parsed(text).unwrap().unwrap();
        assert_eq!(head.0, "GET /a/b");
        assert_eq!(head.1, "x=1&y=2");
        assert_eq!((head.2, head.3, head.4), (1, Body::None, text.len() - 4));
    }

    #[test]
    fn an_incomplete_head_waits_until_the_limit() {
        assert_eq!(parsed("GET / HTTP/1.1\r\nHost: h\r\n").unwrap(), None);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        assert_eq!(parsed(&long).unwrap_err().status, 431);
    }

    #[test]
    fn framing_is_checked() {
        let both =
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parsed(both).unwrap_err().status, 400);
        let conflicting =
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(parsed(conflicting).unwrap_err().status, 400);
        let same = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(parsed(same).unwrap().unwrap().3, Body::Length(3));
        let signed = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n";
        assert_eq!(parsed(signed).unwrap_err().status, 400);
        let gzip = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert_eq!(parsed(gzip).unwrap_err().status, 501);
        let chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n";
        assert_eq!(parsed(chunked).unwrap().unwrap().3, Body::Chunked);
    }

    #[test]
    fn host_rules() {
        assert_eq!(parsed("GET / HTTP/1.1\r\n\r\n").unwrap_err().status, 400);
        let two = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
        assert_eq!(parsed(two).unwrap_err().status, 400);
        assert!(parsed("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        let absolute = "GET http://x:8/p?q HTTP/1.1\r\n\r\n";
        assert_eq!(parsed(absolute).unwrap().unwrap().0, "GET /p");
        let mut slots = header_slots();
        let head = parse(absolute.as_bytes(), &mut slots, 8192)
            .unwrap()
            .unwrap();
        assert_eq!(head.target_authority(), Some("x:8"));
    }

    #[test]
    fn malformed_heads_are_rejected() {
        assert_eq!(
            parsed("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parsed("GET / HTTP/2.0\r\nHost: h\r\n\r\n")
                .unwrap_err()
                .status,
            505
        );
        assert_eq!(
            parsed("\x01GET / HTTP/1.1\r\n\r\n").unwrap_err().status,
            400
        );
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(chunk_size(b"1a\r\nxyz").unwrap(), Some((4, 26)));
        assert_eq!(chunk_size(b"1a;ext=1\r\n").unwrap(), Some((10, 26)));
        assert_eq!(chunk_size(b"1a").unwrap(), None);
        assert!(chunk_size(b"zz\r\n").is_err());
    }
}
