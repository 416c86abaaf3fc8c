//! One HTTP/1.1 exchange on an open connection: write the request, read a bounded response.
//!
//! The request head is written byte for byte as the protocol's clients write it: `restoId`,
//! `signature`, `Content-Type` and `Content-Length` keep their exact casing on the wire (a
//! generic client built on the `http` crate lowercases every header name). The response is
//! read with `httparse`: a head of at most [`MAX_HEAD`] bytes, then the body by
//! `Content-Length`, by chunks, or to the end of the stream, keeping at most `max_body` bytes
//! (for the log line of a refusal). A response whose body is longer than that, or that asks
//! for `Connection: close`, or that has no length, leaves the connection unusable for reuse.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest response head (status line + headers) accepted from the cloud.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers parsed in a response.
const MAX_HEADERS: usize = 32;

/// An I/O stream a request can run on (TCP, or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What the cloud answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The body, cut to `max_body` bytes, as lossy text (for log lines).
    pub body: String,
    /// The connection may carry the next request.
    pub reusable: bool,
}

/// Why an exchange failed. `sent_nothing` errors on a reused connection are safe to repeat
/// at once on a fresh one (the server closed an idle keep-alive connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExchangeError {
    pub message: String,
    /// No response byte arrived: the peer may have closed an idle connection.
    pub no_response: bool,
}

fn err(message: impl Into<String>, no_response: bool) -> ExchangeError {
    ExchangeError {
        message: message.into(),
        no_response,
    }
}

/// The request head. Header names are written exactly as given here.
pub fn request_head(
    target: &str,
    host: &str,
    resto_id: &str,
    signature: &str,
    content_length: usize,
) -> Vec<u8> {
    format!(
        "POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: expirenza-agent/{}\r\n\
         restoId: {resto_id}\r\nsignature: {signature}\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// A read buffer kept with its connection (bytes past one response are never expected, but a
/// read may return more than the head; they are kept for the body).
#[derive(Default)]
pub struct ReadBuf {
    buf: Vec<u8>,
}

impl ReadBuf {
    async fn fill(&mut self, io: &mut dyn Io, limit: usize) -> Result<usize, std::io::Error> {
        let mut chunk = [0u8; 4096];
        let room = limit.saturating_sub(self.buf.len()).clamp(1, chunk.len());
        let n = io.read(chunk.get_mut(..room).unwrap_or_default()).await?;
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }
}

/// Write `head` + `body`, then read the response.
pub async fn exchange(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    head: &[u8],
    body: &[u8],
    max_body: usize,
) -> Result<Response, ExchangeError> {
    rb.buf.clear();
    let w = |e: std::io::Error| err(format!("network error while sending: {}", e.kind()), true);
    write_all_two(io, head, body).await.map_err(w)?;
    io.flush().await.map_err(w)?;
    read_response(io, rb, max_body).await
}

/// `head` then `body`, gathered into one write where the stream can (`writev` on TCP): one
/// segment and one wake-up of the receiver for a body that fits, not one for the head and
/// another for the body.
async fn write_all_two(io: &mut dyn Io, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        let parts = [std::io::IoSlice::new(head), std::io::IoSlice::new(body)];
        let n = io.write_vectored(&parts).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = head.get(from_head..).unwrap_or_default();
        body = body.get(n - from_head..).unwrap_or_default();
    }
    Ok(())
}

/// Write `head`, then the streamed body as its second pass produces it (chunk by chunk, never
/// more than `CHUNKS_IN_FLIGHT` of them in memory), then read the response. If the pass fails
/// or its bytes differ from the signed first pass, the body is left incomplete (the last
/// chunk is held back) and the error ends the exchange: the caller drops the connection, so
/// the cloud never receives a complete body that is not the signed one.
pub async fn exchange_stream(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    head: &[u8],
    body: &crate::body_stream::StreamBody,
    max_body: usize,
) -> Result<Response, ExchangeError> {
    rb.buf.clear();
    let w = |e: std::io::Error| err(format!("network error while sending: {}", e.kind()), true);
    io.write_all(head).await.map_err(w)?;
    let mut chunks = body.chunks();
    let mut sent = 0usize;
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk.map_err(|e| err(format!("streamed body aborted: {e}"), false))?;
        sent += chunk.len();
        io.write_all(&chunk).await.map_err(w)?;
    }
    if sent != body.len() {
        return Err(err(
            format!("streamed body aborted after {sent} of {} bytes", body.len()),
            false,
        ));
    }
    io.flush().await.map_err(w)?;
    read_response(io, rb, max_body).await
}

async fn read_response(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    max_body: usize,
) -> Result<Response, ExchangeError> {
    loop {
        let (status, head_len, framing, close) = read_head(io, rb).await?;
        rb.consume(head_len);
        if (100..200).contains(&status) {
            continue; // 100 Continue and friends: the real answer follows.
        }
        let (bytes, complete) = match framing {
            Framing::Length(n) => read_length(io, rb, n, max_body).await?,
            Framing::Chunked => read_chunked(io, rb, max_body).await?,
            Framing::None if status == 204 || status == 304 => (Vec::new(), true),
            Framing::None => (read_to_end(io, rb, max_body).await?, false),
        };
        return Ok(Response {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            reusable: complete && !close,
        });
    }
}

enum Framing {
    Length(usize),
    Chunked,
    None,
}

async fn read_head(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
) -> Result<(u16, usize, Framing, bool), ExchangeError> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&rb.buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let mut framing = Framing::None;
                let mut close = resp.version == Some(0);
                for h in resp.headers.iter() {
                    let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        let n = v
                            .parse::<usize>()
                            .map_err(|_| err(format!("bad Content-Length {v:?}"), false))?;
                        framing = Framing::Length(n);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                        && v.to_ascii_lowercase().ends_with("chunked")
                    {
                        framing = Framing::Chunked;
                    } else if h.name.eq_ignore_ascii_case("connection") {
                        close |= v.eq_ignore_ascii_case("close");
                    }
                }
                return Ok((status, len, framing, close));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(err(format!("malformed response head: {e}"), false)),
        }
        if rb.buf.len() >= MAX_HEAD {
            return Err(err(format!("response head over {MAX_HEAD} bytes"), false));
        }
        let first = rb.buf.is_empty();
        match rb.fill(io, MAX_HEAD).await {
            Ok(0) => return Err(err("connection closed before a response", first)),
            Ok(_) => {}
            Err(e) => {
                return Err(err(
                    format!("network error while reading: {}", e.kind()),
                    first,
                ))
            }
        }
    }
}

fn read_err(e: std::io::Error) -> ExchangeError {
    err(format!("network error while reading: {}", e.kind()), false)
}

/// Read a body of `n` bytes, keeping `max` of them. Complete only if all `n` were read.
async fn read_length(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    n: usize,
    max: usize,
) -> Result<(Vec<u8>, bool), ExchangeError> {
    let want = n.min(max);
    while rb.buf.len() < want {
        if rb.fill(io, want).await.map_err(read_err)? == 0 {
            return Err(err("connection closed inside the response body", false));
        }
    }
    let kept = rb.buf.get(..want).unwrap_or_default().to_vec();
    Ok((kept, n <= max))
}

/// Read a chunked body, keeping at most `max` bytes of data; complete only if it ended within
/// that bound.
async fn read_chunked(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    max: usize,
) -> Result<(Vec<u8>, bool), ExchangeError> {
    let mut out = Vec::new();
    let limit = max.saturating_add(MAX_HEAD);
    loop {
        let (used, size) = loop {
            match httparse::parse_chunk_size(&rb.buf) {
                Ok(httparse::Status::Complete((used, size))) => break (used, size),
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(err("malformed chunked response", false)),
            }
            if rb.buf.len() >= MAX_HEAD {
                return Err(err("malformed chunked response", false));
            }
            if rb.fill(io, limit).await.map_err(read_err)? == 0 {
                return Err(err("connection closed inside a chunked response", false));
            }
        };
        rb.consume(used);
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size == 0 {
            // Trailers (rare) end with an empty line; without them the CRLF follows at once.
            while !rb.buf.starts_with(b"\r\n") && find(&rb.buf, b"\r\n\r\n").is_none() {
                if rb.buf.len() >= MAX_HEAD || rb.fill(io, limit).await.map_err(read_err)? == 0 {
                    return Ok((out, false));
                }
            }
            return Ok((out, true));
        }
        if out.len().saturating_add(size) > max {
            return Ok((out, false)); // too long to keep: the connection is not reused
        }
        let need = size.saturating_add(2);
        while rb.buf.len() < need {
            if rb.fill(io, need).await.map_err(read_err)? == 0 {
                return Err(err("connection closed inside a chunked response", false));
            }
        }
        out.extend_from_slice(rb.buf.get(..size).unwrap_or_default());
        rb.consume(need);
    }
}

/// A body without length: read until the peer closes, keeping at most `max` bytes.
async fn read_to_end(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    max: usize,
) -> Result<Vec<u8>, ExchangeError> {
    while rb.buf.len() < max {
        if rb.fill(io, max).await.map_err(read_err)? == 0 {
            break;
        }
    }
    rb.buf.truncate(max);
    Ok(std::mem::take(&mut rb.buf))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncWriteExt};

    async fn run(answer: &'static [u8], max: usize) -> (Result<Response, ExchangeError>, Vec<u8>) {
        let (mut a, mut b) = duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut got = vec![0u8; 512];
            let n = b.read(&mut got).await.unwrap();
            got.truncate(n);
            b.write_all(answer).await.unwrap();
            drop(b);
            got
        });
        let head = request_head("/callback/checkWork", "h:1", "r-1", "c2ln", 2);
        let mut rb = ReadBuf::default();
        let r = exchange(&mut a, &mut rb, &head, b"{}", max).await;
        (r, server.await.unwrap())
    }

    /// A stream that takes at most `per_call` bytes per write, gathering across slices, and
    /// counts its write calls.
    struct Gather {
        got: Vec<u8>,
        calls: usize,
        per_call: usize,
    }
    impl tokio::io::AsyncWrite for Gather {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.per_call - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
            }
            std::task::Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }
    impl tokio::io::AsyncRead for Gather {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn head_and_body_go_out_in_one_write_when_they_fit_and_whole_when_they_do_not() {
        let (head, body) = (
            b"POST / HTTP/1.1\r\n\r\n".as_slice(),
            b"{\"a\":1}".as_slice(),
        );
        let mut whole = head.to_vec();
        whole.extend_from_slice(body);
        let mut g = Gather {
            got: Vec::new(),
            calls: 0,
            per_call: usize::MAX / 2,
        };
        write_all_two(&mut g, head, body).await.unwrap();
        assert_eq!((g.got.as_slice(), g.calls), (whole.as_slice(), 1));
        for per_call in [1, 5, head.len(), head.len() + 1] {
            let mut g = Gather {
                got: Vec::new(),
                calls: 0,
                per_call,
            };
            write_all_two(&mut g, head, body).await.unwrap();
            assert_eq!(g.got, whole, "{per_call} bytes per write");
        }
        let mut g = Gather {
            got: Vec::new(),
            calls: 0,
            per_call: 0,
        };
        let e = write_all_two(&mut g, head, body).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WriteZero);
    }

    #[tokio::test]
    async fn exact_header_spelling_on_the_wire() {
        let (r, sent) = run(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 64).await;
        let text = String::from_utf8(sent).unwrap();
        assert!(text.starts_with("POST /callback/checkWork HTTP/1.1\r\n"));
        for h in [
            "\r\nrestoId: r-1\r\n",
            "\r\nsignature: c2ln\r\n",
            "\r\nContent-Type: application/json\r\n",
            "\r\nContent-Length: 2\r\n",
        ] {
            assert!(text.contains(h), "{h:?} missing in {text:?}");
        }
        assert!(text.ends_with("\r\n\r\n{}"));
        assert_eq!(
            r.unwrap(),
            Response {
                status: 200,
                body: String::new(),
                reusable: true
            }
        );
    }

    #[tokio::test]
    async fn bodies_by_length_chunks_and_close() {
        let (r, _) = run(b"HTTP/1.1 400 Bad\r\nContent-Length: 5\r\n\r\nhello", 64).await;
        assert_eq!(
            r.unwrap(),
            Response {
                status: 400,
                body: "hello".into(),
                reusable: true
            }
        );
        let (r, _) = run(
            b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            64,
        )
        .await;
        assert_eq!(
            r.unwrap(),
            Response {
                status: 500,
                body: "abcde".into(),
                reusable: true
            }
        );
        let (r, _) = run(b"HTTP/1.1 404 X\r\nContent-Length: 10\r\n\r\n0123456789", 4).await;
        assert_eq!(
            r.unwrap(),
            Response {
                status: 404,
                body: "0123".into(),
                reusable: false
            }
        );
        let (r, _) = run(b"HTTP/1.1 200 X\r\nConnection: close\r\n\r\nbye", 64).await;
        assert_eq!(
            r.unwrap(),
            Response {
                status: 200,
                body: "bye".into(),
                reusable: false
            }
        );
        let (r, _) = run(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            64,
        )
        .await;
        assert_eq!(r.unwrap().status, 201);
    }

    #[tokio::test]
    async fn errors_are_reported_not_panicked() {
        let (r, _) = run(b"", 64).await;
        assert!(r.unwrap_err().no_response);
        let (r, _) = run(b"garbage\r\n\r\n", 64).await;
        assert!(!r.unwrap_err().no_response);
        let (r, _) = run(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", 64).await;
        assert!(r.is_err());
        let (r, _) = run(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            64,
        )
        .await;
        assert!(r.is_err());
    }
}
