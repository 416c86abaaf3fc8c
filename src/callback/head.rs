//! A response head read from bytes, with no I/O (so it can be fuzzed on its own).
//!
//! - [`status_line`]: the status code as soon as its digits and the byte after them are in. A
//!   2xx status line is a delivery, whatever follows it (docs/protocol.md §2.3), so it is known
//!   before the rest of the head, which may never come, may not parse or may not fit.
//! - [`parse`]: the whole head with `httparse` (at most [`MAX_HEADERS`] header lines in at most
//!   [`MAX_HEAD`] bytes) and the body's framing by RFC 9112 §6.3: no body for 1xx, 204 and 304;
//!   `Transfer-Encoding` wins over `Content-Length` (and the connection is then closed after the
//!   response); several `Content-Length` values must agree; an invalid or conflicting length
//!   makes the framing [`Framing::Invalid`]: the body is not read and the connection is closed,
//!   but the status stands.
//! - An answer in HTTP/2 (a server that speaks only HTTP/2 and ignored our HTTP/1.1 request) is
//!   recognised by its first frame and named as such ([`HeadError::Http2`]).

/// Largest response head (status line + headers + blank line) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines parsed in one response head.
pub const MAX_HEADERS: usize = 256;
/// Longest `Location` value kept (a longer one is treated as missing).
pub const MAX_LOCATION: usize = 2048;

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
    /// Invalid or conflicting `Content-Length`: the body cannot be delimited.
    Invalid(&'static str),
}

/// A complete response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub framing: Framing,
    /// The connection cannot carry another request after this response.
    pub close: bool,
    /// The `Location` header, if present, UTF-8 and at most [`MAX_LOCATION`] bytes.
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error(
        "the callback host answered in HTTP/2: it speaks only HTTP/2, and the agent speaks HTTP/1.1"
    )]
    Http2,
    #[error("malformed status line")]
    StatusLine,
    #[error("malformed response head: {0}")]
    Malformed(&'static str),
    #[error("response head over {MAX_HEAD} bytes")]
    TooLarge,
}

/// The status code of the response at the start of `buf`: `Ok(None)` until it is known.
/// `HTTP/1.x`, a space, a three-digit code from 100 to 599, then a space (before the reason
/// phrase) or the end of the line: the code is known once the byte after it is in, whatever
/// the reason phrase turns out to be.
pub fn status_line(buf: &[u8]) -> Result<Option<u16>, HeadError> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let n = buf.len().min(PREFIX.len());
    if buf.get(..n) != PREFIX.get(..n) {
        return if looks_like_http2(buf) {
            Err(HeadError::Http2)
        } else if buf.len() < 9 && could_be_http2(buf) {
            Ok(None)
        } else {
            Err(HeadError::StatusLine)
        };
    }
    // "HTTP/1.1 200" and the byte after the code.
    let (Some(&minor), Some(&space), Some(code), Some(&after)) =
        (buf.get(7), buf.get(8), buf.get(9..12), buf.get(12))
    else {
        // Too short to tell; what is there must still fit the shape.
        let fits = buf.get(7).is_none_or(u8::is_ascii_digit)
            && buf.get(8).is_none_or(|&b| b == b' ')
            && buf
                .get(9..)
                .unwrap_or_default()
                .iter()
                .all(u8::is_ascii_digit);
        return if fits {
            Ok(None)
        } else {
            Err(HeadError::StatusLine)
        };
    };
    if !minor.is_ascii_digit()
        || space != b' '
        || !code.iter().all(u8::is_ascii_digit)
        || !matches!(after, b' ' | b'\r' | b'\n')
    {
        return Err(HeadError::StatusLine);
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(HeadError::StatusLine);
    }
    Ok(Some(status))
}

/// An HTTP/2 frame header at the start: a SETTINGS (4) or GOAWAY (7) frame on stream 0, which
/// is what an HTTP/2-only server sends first (its connection preface) or on a bad preface.
fn looks_like_http2(buf: &[u8]) -> bool {
    match buf.get(..9) {
        Some([l0, l1, l2, kind, _flags, s0, s1, s2, s3]) => {
            let len = u32::from_be_bytes([0, *l0, *l1, *l2]);
            matches!(kind, 4 | 7) && [*s0 & 0x7f, *s1, *s2, *s3] == [0; 4] && len <= 16_384
        }
        _ => false,
    }
}

/// Fewer than 9 bytes that may still become an HTTP/2 frame header.
fn could_be_http2(buf: &[u8]) -> bool {
    // The length's first byte is 0 for any frame of at most 64 KiB.
    buf.first().is_none_or(|&b| b == 0)
}

/// The whole head at the start of `buf`: `Ok(None)` until it is complete.
pub fn parse(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let Some(status) = status_line(buf)? else {
        return Ok(None);
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Malformed("more than 256 header lines"))
        }
        Err(_) => return Err(HeadError::Malformed("invalid header line")),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let http10 = resp.version == Some(0);
    let mut te_last: Option<&[u8]> = None;
    let mut te_seen = false;
    let mut lengths = LengthSeen::None;
    let (mut close, mut keep_alive) = (false, false);
    let mut location = None;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            te_seen = true;
            // The last coding of the last field is what delimits the body.
            if let Some(last) = h.value.rsplit(|&b| b == b',').next() {
                te_last = Some(trim(last));
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            lengths = lengths.add(h.value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(trim) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("location") && location.is_none() {
            location = std::str::from_utf8(trim(h.value))
                .ok()
                .filter(|l| !l.is_empty() && l.len() <= MAX_LOCATION)
                .map(str::to_string);
        }
    }
    if http10 && !keep_alive {
        close = true;
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if te_seen {
        // RFC 9112 §6.3 (3): Transfer-Encoding overrides Content-Length; a message with both
        // may be an attempt at smuggling, so the connection is not reused after it. An
        // HTTP/1.0 message with Transfer-Encoding has faulty framing (§6.1): read to the close.
        if !matches!(lengths, LengthSeen::None) {
            close = true;
        }
        if !http10 && te_last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")) {
            Framing::Chunked
        } else {
            close = true;
            Framing::UntilClose
        }
    } else {
        match lengths {
            LengthSeen::None => {
                close = true;
                Framing::UntilClose
            }
            LengthSeen::One(n) => Framing::Length(n),
            LengthSeen::Bad(why) => {
                close = true;
                Framing::Invalid(why)
            }
        }
    };
    Ok(Some(Head {
        status,
        len,
        framing,
        close,
        location,
    }))
}

/// The `Content-Length` values seen so far (RFC 9110 §8.6: a list of equal values is one).
#[derive(Clone, Copy)]
enum LengthSeen {
    None,
    One(u64),
    Bad(&'static str),
}

impl LengthSeen {
    fn add(self, value: &[u8]) -> LengthSeen {
        let mut acc = self;
        for part in value.split(|&b| b == b',').map(trim) {
            let n = match parse_length(part) {
                Some(n) => n,
                None => return LengthSeen::Bad("invalid Content-Length"),
            };
            acc = match acc {
                LengthSeen::None => LengthSeen::One(n),
                LengthSeen::One(m) if m == n => LengthSeen::One(n),
                LengthSeen::One(_) => return LengthSeen::Bad("conflicting Content-Length values"),
                bad @ LengthSeen::Bad(_) => return bad,
            };
        }
        acc
    }
}

/// `1*DIGIT`, at most 18 digits (no sign, no spaces inside, no overflow).
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        parse(text.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn status_line_is_known_before_the_rest_of_the_head() {
        assert_eq!(status_line(b""), Ok(None));
        assert_eq!(status_line(b"HTTP/1.1 20"), Ok(None));
        assert_eq!(status_line(b"HTTP/1.1 200"), Ok(None), "could be 2000");
        assert_eq!(status_line(b"HTTP/1.1 200 "), Ok(Some(200)));
        assert_eq!(status_line(b"HTTP/1.1 200\r"), Ok(Some(200)));
        assert_eq!(status_line(b"HTTP/1.1 2x"), Err(HeadError::StatusLine));
        assert_eq!(status_line(b"HTTP/1.x"), Err(HeadError::StatusLine));
        assert_eq!(status_line(b"HTTP/1.1 200 OK\r\nX-"), Ok(Some(200)));
        assert_eq!(status_line(b"HTTP/1.0 404\r\n"), Ok(Some(404)));
        assert_eq!(status_line(b"HTTP/1.1 204\n"), Ok(Some(204)));
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nX-"), Ok(None));
        for bad in [
            &b"HTTP/1.1 2000 OK\r\n"[..],
            b"HTTP/1.1 099 X\r\n",
            b"HTTP/1.1 600 X\r\n",
            b"HTTP/1.1 2x0 X\r\n",
            b"HTTP/1.1  200 X\r\n",
            b"HTTP/2 200\r\n",
            b"garbage\r\n\r\n",
            b"ICY 200 OK\r\n",
        ] {
            assert_eq!(
                status_line(bad),
                Err(HeadError::StatusLine),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn an_http2_answer_is_named() {
        // SETTINGS (6 bytes: one setting) on stream 0, then GOAWAY.
        let settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64";
        assert_eq!(status_line(settings), Err(HeadError::Http2));
        assert_eq!(parse(settings), Err(HeadError::Http2));
        assert_eq!(
            status_line(&settings[..5]),
            Ok(None),
            "may still be a frame"
        );
        let goaway = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01";
        assert_eq!(status_line(goaway), Err(HeadError::Http2));
        // A DATA frame on stream 1 is not what a server sends first: just malformed.
        assert_eq!(
            status_line(b"\x00\x00\x01\x00\x00\x00\x00\x00\x01x"),
            Err(HeadError::StatusLine)
        );
    }

    #[test]
    fn transfer_encoding_wins_over_content_length_and_closes_the_connection() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n",
        ] {
            let h = head(text);
            assert_eq!((h.framing, h.close), (Framing::Chunked, true), "{text}");
        }
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Chunked, false));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::UntilClose, true));
        let h = head("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::UntilClose, true));
    }

    #[test]
    fn lengths_must_be_valid_and_agree() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Length(5), false));
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        for bad in [
            "5, 6",
            "-1",
            "+5",
            "0x10",
            "",
            "99999999999999999999",
            "5 5",
        ] {
            let h = head(&format!("HTTP/1.1 404 X\r\nContent-Length: {bad}\r\n\r\n"));
            assert!(matches!(h.framing, Framing::Invalid(_)), "{bad:?}");
            assert!(h.close, "{bad:?}");
            assert_eq!(h.status, 404);
        }
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
        assert_eq!(
            h.framing,
            Framing::Invalid("conflicting Content-Length values")
        );
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::UntilClose, true));
        let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Empty, false));
    }

    #[test]
    fn connection_location_and_many_headers() {
        let h =
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n");
        assert!(h.close);
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(h.close);
        let h = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.close);
        let h = head("HTTP/1.1 308 P\r\nLocation:  https://b/x \r\nLocation: /y\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.location.as_deref(), Some("https://b/x"));
        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..150 {
            many.push_str(&format!("X-Pad-{i}: {i}\r\n"));
        }
        many.push_str("Content-Length: 2\r\n\r\n");
        let h = head(&many);
        assert_eq!(
            (h.status, h.framing, h.len),
            (200, Framing::Length(2), many.len())
        );
        let mut too_many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            too_many.push_str(&format!("X{i}: v\r\n"));
        }
        too_many.push_str("\r\n");
        assert!(matches!(
            parse(too_many.as_bytes()),
            Err(HeadError::Malformed(_))
        ));
        assert_eq!(status_line(too_many.as_bytes()), Ok(Some(200)));
    }

    #[test]
    fn a_head_past_the_cap_is_refused() {
        let mut big = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse(&big), Err(HeadError::TooLarge));
        // A reason phrase past the cap: the head is refused, the status is known.
        let mut line = b"HTTP/1.1 200 ".to_vec();
        line.resize(MAX_HEAD + 10, b'a');
        assert_eq!(parse(&line), Err(HeadError::TooLarge));
        assert_eq!(status_line(&line), Ok(Some(200)));
    }
}
