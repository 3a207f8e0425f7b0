//! A response's head: the status line, the application's headers, and what the server adds
//! (Date, the body's framing, Connection). No Ruby here; [`super::bind`] hands over the
//! headers of a Rack response.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// How the body that follows the head is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The status has no body (1xx, 204, 304).
    NoBody,
    /// As the application gives it: the head says its length (the application's
    /// Content-Length or the one the server computed) or the application encodes it itself
    /// (its own Transfer-Encoding).
    AsIs,
    /// In chunks (`Transfer-Encoding: chunked`, added by the server).
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and no length).
    UntilClose,
}

/// What the request asked and what the server knows of the body.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// The client speaks HTTP/1.1 (it can read chunks).
    pub http11: bool,
    /// The connection stays open after this response, unless the response says otherwise.
    pub keep_alive: bool,
    /// The body's length when the server knows it (an Array body), for a Content-Length.
    pub body_length: Option<u64>,
}

/// A header the application gave that the server cannot send.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidHeader(pub String);

fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

fn is_field_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&byte| byte == b'\t' || (byte >= b' ' && byte != 0x7f))
}

/// Writes the head of a response with `status` and `headers` (one line each, none of
/// them `rack.*`, which are for the server) to `out`;
/// returns how the body is to be sent and whether the connection stays open after it.
pub fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&[u8], &[u8])],
    request: Request,
) -> Result<(Framing, bool), InvalidHeader> {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let (mut has_length, mut has_coding, mut has_date) = (false, false, false);
    let mut keep_alive = request.keep_alive;
    for &(name, value) in headers {
        if !is_token(name) {
            let name = String::from_utf8_lossy(name);
            return Err(InvalidHeader(format!("invalid header name {name:?}")));
        }
        if !is_field_value(value) {
            let name = String::from_utf8_lossy(name);
            return Err(InvalidHeader(format!(
                "invalid value for header {name:?} (control characters)"
            )));
        }
        let hop_by_hop =
            name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive");
        if hop_by_hop && status != 101 {
            // Hop by hop: the server says what becomes of the connection; an application
            // that asks for it to close is obeyed.
            keep_alive &= !value.to_ascii_lowercase().windows(5).any(|w| w == b"close");
            continue;
        }
        has_length |= name.eq_ignore_ascii_case(b"content-length");
        has_coding |= name.eq_ignore_ascii_case(b"transfer-encoding");
        has_date |= name.eq_ignore_ascii_case(b"date");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"Date: ");
        with_date(|date| out.extend_from_slice(date));
        out.extend_from_slice(b"\r\n");
    }
    let framing = if status < 200 || status == 204 || status == 304 {
        Framing::NoBody
    } else if has_length || has_coding {
        Framing::AsIs
    } else if let Some(length) = request.body_length {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(length.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        Framing::AsIs
    } else if request.http11 {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        Framing::Chunked
    } else {
        Framing::UntilClose
    };
    keep_alive &= framing != Framing::UntilClose && status != 101;
    if status == 101 {
        // Switching protocols: the application's Connection and Upgrade headers stand, and
        // the connection is no longer HTTP/1.1's.
    } else if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if !request.http11 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok((framing, keep_alive))
}

thread_local! {
    /// The Date header's value and the second it was made for.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Calls `write` with the current Date header value (IMF-fixdate), made once a second.
fn with_date(write: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    DATE.with_borrow_mut(|(made_for, date)| {
        if *made_for != second {
            *made_for = second;
            *date = httpdate::fmt_http_date(now);
        }
        write(date.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16, headers: &[(&str, &str)], request: Request) -> (String, Framing, bool) {
        let headers: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .collect();
        let mut out = Vec::new();
        let (framing, keep_alive) = write_head(&mut out, status, &headers, request).unwrap();
        let text = String::from_utf8(out).unwrap();
        let without_date = text
            .lines()
            .filter(|line| !line.starts_with("Date: "))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("\r\nDate: ") || headers.iter().any(|h| h.0 == b"date"));
        (without_date, framing, keep_alive)
    }

    const KEEP_11: Request = Request {
        http11: true,
        keep_alive: true,
        body_length: None,
    };

    #[test]
    fn a_known_length_is_sent() {
        let request = Request {
            body_length: Some(5),
            ..KEEP_11
        };
        let (text, framing, keep) = head(200, &[("content-type", "text/plain")], request);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\ncontent-type: text/plain\nContent-Length: 5\n"
        );
        assert_eq!((framing, keep), (Framing::AsIs, true));
    }

    #[test]
    fn an_unknown_length_is_chunked_or_closes() {
        let (text, framing, _) = head(200, &[], KEEP_11);
        assert!(text.contains("Transfer-Encoding: chunked"));
        assert_eq!(framing, Framing::Chunked);
        let http10 = Request {
            http11: false,
            ..KEEP_11
        };
        let (text, framing, keep) = head(200, &[], http10);
        assert!(text.contains("Connection: close"));
        assert_eq!((framing, keep), (Framing::UntilClose, false));
    }

    #[test]
    fn http10_keep_alive_is_said() {
        let request = Request {
            http11: false,
            keep_alive: true,
            body_length: Some(0),
        };
        let (text, _, keep) = head(404, &[], request);
        assert!(text.starts_with("HTTP/1.1 404 Not Found\n"));
        assert!(text.contains("Connection: keep-alive"));
        assert!(keep);
    }

    #[test]
    fn the_application_framing_and_connection() {
        let (text, framing, keep) = head(
            200,
            &[("Content-Length", "3"), ("Connection", "Close")],
            KEEP_11,
        );
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\nContent-Length: 3\nConnection: close\n"
        );
        assert_eq!((framing, keep), (Framing::AsIs, false));
        let (_, framing, _) = head(204, &[], KEEP_11);
        assert_eq!(framing, Framing::NoBody);
        let upgrade = [("Connection", "Upgrade"), ("Upgrade", "websocket")];
        let (text, framing, keep) = head(101, &upgrade, KEEP_11);
        assert_eq!(
            text,
            "HTTP/1.1 101 Switching Protocols\nConnection: Upgrade\nUpgrade: websocket\n"
        );
        assert_eq!((framing, keep), (Framing::NoBody, false));
        let (text, _, _) = head(299, &[], KEEP_11);
        assert!(text.starts_with("HTTP/1.1 299 \n"));
    }

    #[test]
    fn invalid_headers_are_refused() {
        let mut out = Vec::new();
        let split: &[(&[u8], &[u8])] = &[(b"x", b"a\r\nSet-Cookie: b")];
        assert!(write_head(&mut out, 200, split, KEEP_11).is_err());
        let name: &[(&[u8], &[u8])] = &[(b"a b", b"c")];
        assert!(write_head(&mut out, 200, name, KEEP_11).is_err());
    }
}
