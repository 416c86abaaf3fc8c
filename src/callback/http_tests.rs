use super::*;
use std::time::Duration;
use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// The server reads the request (head and the 2-byte body), then writes `answer` and closes.
async fn run(answer: &'static [u8], max: usize) -> (Result<Response, ExchangeError>, Vec<u8>) {
    let (mut a, mut b) = duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.ends_with(b"\r\n\r\n{}") {
            let n = b.read(&mut buf).await.unwrap();
            assert!(n > 0, "request cut short");
            got.extend_from_slice(&buf[..n]);
        }
        b.write_all(answer).await.unwrap();
        drop(b);
        got
    });
    let head = request_head("/callback/checkWork", "h:1", "r-1", "c2ln", 2);
    let mut rb = ReadBuf::default();
    let r = exchange(&mut a, &mut rb, &head, Body::Bytes(b"{}"), max, soon()).await;
    (r, server.await.unwrap())
}

fn ok(status: u16, body: &str, reusable: bool) -> Response {
    Response {
        status,
        body: body.into(),
        reusable,
        location: None,
        note: None,
    }
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(buf)])
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.calls += 1;
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(self.per_call - n);
            self.got.extend_from_slice(&b[..take]);
            n += take;
        }
        Poll::Ready(Ok(n))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
impl tokio::io::AsyncRead for Gather {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Pending
    }
}

async fn send_all(g: &mut Gather, head: &[u8], body: &[u8]) -> Result<(), std::io::ErrorKind> {
    let mut s = Sender::new(head, Body::Bytes(body));
    match poll_fn(|cx| s.poll_send(g, cx)).await {
        Ok(()) => Ok(()),
        Err(SendError::Io(k)) => Err(k),
        Err(SendError::Aborted(m)) => panic!("{m}"),
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
    send_all(&mut g, head, body).await.unwrap();
    assert_eq!((g.got.as_slice(), g.calls), (whole.as_slice(), 1));
    for per_call in [1, 5, head.len(), head.len() + 1] {
        let mut g = Gather {
            got: Vec::new(),
            calls: 0,
            per_call,
        };
        send_all(&mut g, head, body).await.unwrap();
        assert_eq!(g.got, whole, "{per_call} bytes per write");
    }
    let mut g = Gather {
        got: Vec::new(),
        calls: 0,
        per_call: 0,
    };
    let e = send_all(&mut g, head, body).await.unwrap_err();
    assert_eq!(e, std::io::ErrorKind::WriteZero);
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
    assert_eq!(r.unwrap(), ok(200, "", true));
}

#[tokio::test]
async fn bodies_by_length_chunks_and_close() {
    let (r, _) = run(b"HTTP/1.1 400 Bad\r\nContent-Length: 5\r\n\r\nhello", 64).await;
    assert_eq!(r.unwrap(), ok(400, "hello", true));
    let (r, _) = run(
        b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n",
        64,
    )
    .await;
    assert_eq!(r.unwrap(), ok(500, "abcde", true));
    // Trailers after the last chunk are read, and the connection stays usable.
    let (r, _) = run(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n",
        64,
    )
    .await;
    assert_eq!(r.unwrap(), ok(200, "ok", true));
    let (r, _) = run(b"HTTP/1.1 404 X\r\nContent-Length: 10\r\n\r\n0123456789", 4).await;
    assert_eq!(r.unwrap(), ok(404, "0123", false));
    // A 2xx without a length: delivered, its body is not needed, the connection is not reused.
    let (r, _) = run(b"HTTP/1.1 200 X\r\n\r\nbye", 64).await;
    assert_eq!(r.unwrap(), ok(200, "", false));
    // Another status without a length: read to the close for the log line.
    let (r, _) = run(b"HTTP/1.1 503 X\r\n\r\nlater", 64).await;
    assert_eq!(r.unwrap(), ok(503, "later", false));
    let (r, _) = run(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        64,
    )
    .await;
    assert_eq!(r.unwrap().status, 201);
    let (r, _) = run(
        b"HTTP/1.1 308 P\r\nLocation: https://b/x\r\nContent-Length: 0\r\n\r\n",
        64,
    )
    .await;
    assert_eq!(r.unwrap().location.as_deref(), Some("https://b/x"));
}

#[tokio::test]
async fn after_a_status_line_every_problem_is_a_note_of_that_response() {
    // Transfer-Encoding wins over a Content-Length that would hang.
    let (r, _) = run(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        64,
    )
    .await;
    let r = r.unwrap();
    assert_eq!((r.status, r.reusable, r.note), (200, false, None));
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX: 1\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n",
    ] {
        let (r, _) = run(answer, 64).await;
        let r = r.unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(answer)));
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(answer));
        assert!(!r.reusable);
        assert!(r.note.is_some(), "{:?}", String::from_utf8_lossy(answer));
    }
    let (r, _) = run(b"HTTP/1.1 404 X\r\nContent-Length: -1\r\n\r\nxx", 64).await;
    let r = r.unwrap();
    assert_eq!((r.status, r.body.as_str(), r.reusable), (404, "", false));
    assert_eq!(r.note.as_deref(), Some("invalid Content-Length"));
}

#[tokio::test]
async fn bytes_after_the_response_end_the_connection() {
    let (r, _) = run(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 408 Request Timeout\r\n\r\n",
        64,
    )
    .await;
    assert_eq!(r.unwrap(), ok(200, "", false));
}

#[tokio::test]
async fn failures_before_a_status_line_are_classed() {
    let (r, _) = run(b"", 64).await;
    assert_eq!(r.unwrap_err().failure, Failure::Closed);
    let (r, _) = run(b"garbage\r\n\r\n", 64).await;
    assert_eq!(r.unwrap_err().failure, Failure::Garbled);
    let (r, _) = run(b"HTTP/1.1 20", 64).await;
    assert_eq!(r.unwrap_err().failure, Failure::Garbled);
    let (r, _) = run(
        b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64",
        64,
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.failure, Failure::Http2);
    assert!(e.message.contains("HTTP/2"), "{e}");
}

/// The server answers 413 after the head and stops reading; the body is far larger than the
/// pipe. The answer is read while the body is still being written, and it is final.
#[tokio::test]
async fn an_early_answer_is_read_while_the_body_is_written() {
    let (mut a, mut b) = duplex(4 * 1024);
    let server = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = b.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        b.write_all(
            b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbig",
        )
        .await
        .unwrap();
        // Keep the stream open and unread: the client's writes block.
        b
    });
    let body = vec![b'x'; 1 << 20];
    let head = request_head("/cb/menuInfo", "h", "r", "s", body.len());
    let mut rb = ReadBuf::default();
    let r = exchange(&mut a, &mut rb, &head, Body::Bytes(&body), 64, soon()).await;
    let r = r.unwrap();
    assert_eq!((r.status, r.body.as_str(), r.reusable), (413, "big", false));
    drop(server.await.unwrap());
}

/// A 2xx status line, then nothing: the attempt's end comes, the answer stands.
#[tokio::test(start_paused = true)]
async fn a_2xx_status_line_then_silence_is_still_a_2xx() {
    let (mut a, mut b): (DuplexStream, DuplexStream) = duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        let _ = b.read(&mut buf).await.unwrap();
        b.write_all(b"HTTP/1.1 200 OK\r\nContent-Len")
            .await
            .unwrap();
        b
    });
    let head = request_head("/cb/x", "h", "r", "s", 2);
    let mut rb = ReadBuf::default();
    let until = Instant::now() + Duration::from_secs(10);
    let r = exchange(&mut a, &mut rb, &head, Body::Bytes(b"{}"), 64, until)
        .await
        .unwrap();
    assert_eq!((r.status, r.reusable), (200, false));
    assert!(r.note.unwrap().contains("timed out"));
    drop(server.await.unwrap());
}

#[tokio::test]
async fn an_idle_connection_is_looked_at_without_waiting() {
    let (mut a, mut b) = duplex(1024);
    let mut rb = ReadBuf::default();
    assert_eq!(rb.check_idle(&mut a), Ok(()));
    b.write_all(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let e = rb.check_idle(&mut a).unwrap_err();
    assert!(e.contains("unsolicited") && e.contains("408"), "{e}");
    let (mut a, b) = duplex(1024);
    drop(b);
    let mut rb = ReadBuf::default();
    assert_eq!(rb.check_idle(&mut a), Err("closed by the server".into()));
}

/// The attempt's end is the bound, to the millisecond: an answer that starts 1 ms before it is
/// the answer, one that starts 1 ms after it is a timeout. On a paused clock, so the margins
/// are exact whatever the machine's load (tests/faults_callback.rs shows a late answer through
/// the whole agent, sequenced by events).
#[tokio::test(start_paused = true)]
async fn an_answer_late_in_the_attempt_counts_and_one_after_it_does_not() {
    for (after_ms, counts) in [(1_999u64, true), (2_001, false)] {
        let (mut a, mut b) = duplex(64 * 1024);
        let server = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.ends_with(b"\r\n\r\n{}") {
                let n = b.read(&mut buf).await.unwrap();
                assert!(n > 0, "request cut short");
                got.extend_from_slice(&buf[..n]);
            }
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let _ = b
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
            b
        });
        let head = request_head("/cb/getBill", "h", "r", "s", 2);
        let mut rb = ReadBuf::default();
        let until = Instant::now() + Duration::from_secs(2);
        let r = exchange(&mut a, &mut rb, &head, Body::Bytes(b"{}"), 64, until).await;
        if counts {
            assert_eq!(r.unwrap().status, 200, "{after_ms} ms");
        } else {
            let e = r.unwrap_err();
            assert_eq!(
                e.failure,
                Failure::NoResponse,
                "{after_ms} ms: {}",
                e.message
            );
        }
        drop(server.await.unwrap());
    }
}
