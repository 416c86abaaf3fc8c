//! One HTTP/1.1 exchange on an open connection: write the request while watching for an early
//! answer, then read a bounded response ([`super::response`]).
//!
//! The request head is written byte for byte as the protocol's clients write it: `restoId`,
//! `signature`, `Content-Type` and `Content-Length` keep their exact casing on the wire (a
//! generic client built on the `http` crate lowercases every header name).
//!
//! The response is read *while* the body is written: a server may answer before it has read
//! the whole body (an early 413 or another 4xx), and then usually stops reading. Writing and
//! reading are polled together in one future (no task, no thread); as soon as a final status
//! line has arrived the rest of the body is not sent and the connection is not reused. Every
//! wait is bounded by the attempt's end (`until`).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::head::{self, MAX_HEAD};
use crate::body_stream::{StreamBody, StreamError};

/// An I/O stream a request can run on (TCP, or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The body, cut to `max_body` bytes, as lossy text (for log lines).
    pub body: String,
    /// The connection may carry the next request.
    pub reusable: bool,
    /// The `Location` header (redirects).
    pub location: Option<String>,
    /// What went wrong after the status line (the status stands): for the log.
    pub note: Option<String>,
}

/// How an exchange failed before a usable status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection turned out closed (end of stream, reset, broken pipe) before any byte of
    /// a response: on a reused connection, the server closed it while it was idle.
    Closed,
    /// No response byte arrived (timeout, other network error, our streamed body aborted).
    NoResponse,
    /// Bytes arrived that are not an HTTP/1.x status line, or the head was cut short.
    Garbled,
    /// The server answered in HTTP/2.
    Http2,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExchangeError {
    pub message: String,
    pub failure: Failure,
}

pub(super) fn err(message: impl Into<String>, failure: Failure) -> ExchangeError {
    ExchangeError {
        message: message.into(),
        failure,
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

/// How the read side of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Eof,
    Error(std::io::ErrorKind),
}

/// Why a read returned no bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Ended(End),
    TimedOut,
}

/// A read buffer kept with its connection. Bytes of one response only: a connection whose
/// buffer still holds bytes after a response is not reused.
#[derive(Default)]
pub struct ReadBuf {
    pub(super) buf: Vec<u8>,
    /// The read side has ended; nothing more will be read.
    pub(super) end: Option<End>,
}

impl ReadBuf {
    /// Read what is available (at most up to `limit` bytes in the buffer, and at least one).
    pub(super) fn poll_fill(
        &mut self,
        io: &mut dyn Io,
        cx: &mut Context<'_>,
        limit: usize,
    ) -> Poll<Result<usize, End>> {
        if let Some(end) = self.end {
            return Poll::Ready(Err(end));
        }
        let mut chunk = [0u8; 4096];
        let room = limit.saturating_sub(self.buf.len()).clamp(1, chunk.len());
        let mut rb = tokio::io::ReadBuf::new(chunk.get_mut(..room).unwrap_or_default());
        let r = ready!(Pin::new(io).poll_read(cx, &mut rb));
        let end = match r {
            Ok(()) if rb.filled().is_empty() => End::Eof,
            Ok(()) => {
                self.buf.extend_from_slice(rb.filled());
                return Poll::Ready(Ok(rb.filled().len()));
            }
            Err(e) => End::Error(e.kind()),
        };
        self.end = Some(end);
        Poll::Ready(Err(end))
    }

    /// [`ReadBuf::poll_fill`] until `until`.
    pub(super) async fn fill(
        &mut self,
        io: &mut dyn Io,
        limit: usize,
        until: Instant,
    ) -> Result<usize, Stop> {
        match tokio::time::timeout_at(until, poll_fn(|cx| self.poll_fill(io, cx, limit))).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(end)) => Err(Stop::Ended(end)),
            Err(_) => Err(Stop::TimedOut),
        }
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Whether an idle connection's read side is quiet: no byte waiting, not closed. Looks
    /// without waiting (one poll with a no-op waker). `Err` says what was found.
    pub fn check_idle(&mut self, io: &mut dyn Io) -> Result<(), String> {
        if !self.buf.is_empty() {
            return Err(format!("{} bytes left over", self.buf.len()));
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.poll_fill(io, &mut cx, 256) {
            Poll::Pending => Ok(()),
            Poll::Ready(Err(End::Eof)) => Err("closed by the server".into()),
            Poll::Ready(Err(End::Error(k))) => Err(format!("network error: {k}")),
            Poll::Ready(Ok(_)) => {
                let first = self.buf.split(|&b| b == b'\n').next().unwrap_or_default();
                let first = String::from_utf8_lossy(first.get(..80).unwrap_or(first));
                Err(format!(
                    "unsolicited bytes from the server ({:?})",
                    first.trim_end()
                ))
            }
        }
    }
}

/// The body after the head.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Bytes(&'a [u8]),
    /// Generated again for each exchange (its second pass), chunk by chunk.
    Stream(&'a StreamBody),
}

/// Writes the head and the body, as far as the stream accepts them.
struct Sender<'a> {
    head: &'a [u8],
    body: Source<'a>,
    flushed: bool,
}

enum Source<'a> {
    Bytes(&'a [u8]),
    Stream {
        rx: mpsc::Receiver<Result<Vec<u8>, StreamError>>,
        chunk: Vec<u8>,
        pos: usize,
        received: usize,
        want: usize,
        ended: bool,
    },
}

/// Why the request could not be written whole.
enum SendError {
    Io(std::io::ErrorKind),
    /// The streamed body's second pass failed or did not match the first.
    Aborted(String),
}

impl<'a> Sender<'a> {
    fn new(head: &'a [u8], body: Body<'a>) -> Sender<'a> {
        let body = match body {
            Body::Bytes(b) => Source::Bytes(b),
            Body::Stream(s) => Source::Stream {
                rx: s.chunks(),
                chunk: Vec::new(),
                pos: 0,
                received: 0,
                want: s.len(),
                ended: false,
            },
        };
        Sender {
            head,
            body,
            flushed: false,
        }
    }

    fn poll_send(&mut self, io: &mut dyn Io, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        let io_err = |e: std::io::Error| SendError::Io(e.kind());
        loop {
            match &mut self.body {
                Source::Bytes(body) => {
                    if self.head.is_empty() && body.is_empty() {
                        break;
                    }
                    // Head and body gathered into one write where the stream can (`writev` on
                    // TCP): one segment for a body that fits, not one for each part.
                    let parts = [
                        std::io::IoSlice::new(self.head),
                        std::io::IoSlice::new(body),
                    ];
                    let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &parts))
                        .map_err(io_err)?;
                    if n == 0 {
                        return Poll::Ready(Err(SendError::Io(std::io::ErrorKind::WriteZero)));
                    }
                    let from_head = n.min(self.head.len());
                    self.head = self.head.get(from_head..).unwrap_or_default();
                    *body = body.get(n - from_head..).unwrap_or_default();
                }
                Source::Stream {
                    rx,
                    chunk,
                    pos,
                    received,
                    want,
                    ended,
                } => {
                    let pending = if self.head.is_empty() {
                        chunk.get(*pos..).unwrap_or_default()
                    } else {
                        self.head
                    };
                    if !pending.is_empty() {
                        let n =
                            ready!(Pin::new(&mut *io).poll_write(cx, pending)).map_err(io_err)?;
                        if n == 0 {
                            return Poll::Ready(Err(SendError::Io(std::io::ErrorKind::WriteZero)));
                        }
                        if self.head.is_empty() {
                            *pos += n;
                        } else {
                            self.head = self.head.get(n..).unwrap_or_default();
                        }
                        continue;
                    }
                    if *ended {
                        break;
                    }
                    match ready!(rx.poll_recv(cx)) {
                        Some(Ok(c)) => {
                            *received += c.len();
                            *chunk = c;
                            *pos = 0;
                        }
                        Some(Err(e)) => {
                            return Poll::Ready(Err(SendError::Aborted(format!(
                                "streamed body aborted: {e}"
                            ))))
                        }
                        None if *received != *want => {
                            return Poll::Ready(Err(SendError::Aborted(format!(
                                "streamed body aborted after {received} of {want} bytes"
                            ))))
                        }
                        None => *ended = true,
                    }
                }
            }
        }
        if !self.flushed {
            ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(io_err)?;
            self.flushed = true;
        }
        Poll::Ready(Ok(()))
    }
}

/// How the sending phase ended.
enum Sent {
    /// The whole request is written and flushed.
    All,
    /// The server answered, closed or failed before the request was written whole.
    Interrupted,
    Failed(SendError),
}

/// Write the request (`head`, then `body`) while reading whatever the server sends, then read
/// the response; everything by `until`. Once a status line has arrived, every later problem
/// (a timeout, a closed connection, invalid framing) is a [`Response::note`] of a response
/// that keeps its status, and the connection is not reused.
pub async fn exchange(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    head: &[u8],
    body: Body<'_>,
    max_body: usize,
    until: Instant,
) -> Result<Response, ExchangeError> {
    rb.buf.clear();
    rb.end = None;
    let mut sender = Sender::new(head, body);
    let sending = poll_fn(|cx| {
        // The read side first: an answer that is already there stops the writing.
        while rb.end.is_none() && rb.buf.len() < MAX_HEAD {
            match rb.poll_fill(io, cx, MAX_HEAD) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        if rb.end.is_some() || rb.buf.len() >= MAX_HEAD || final_answer_started(&rb.buf) {
            return Poll::Ready(Sent::Interrupted);
        }
        match sender.poll_send(io, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Sent::All),
            Poll::Ready(Err(e)) => Poll::Ready(Sent::Failed(e)),
            Poll::Pending => Poll::Pending,
        }
    });
    let sent = match tokio::time::timeout_at(until, sending).await {
        Ok(s) => s,
        Err(_) => {
            return Err(err(
                "timed out while sending the request (no answer)",
                Failure::NoResponse,
            ))
        }
    };
    let (complete, write_failed) = match sent {
        Sent::All => (true, None),
        Sent::Interrupted => (false, None),
        Sent::Failed(SendError::Aborted(m)) => return Err(err(m, Failure::NoResponse)),
        // The server may have answered before it closed (an early 413): what it sent is read
        // (a dead connection ends the read at once).
        Sent::Failed(SendError::Io(kind)) => (false, Some(kind)),
    };
    match super::response::read(io, rb, max_body, until).await {
        Ok(mut resp) => {
            resp.reusable &= complete;
            Ok(resp)
        }
        Err(mut e) => {
            if let Some(kind) = write_failed {
                if matches!(e.failure, Failure::Closed | Failure::NoResponse) {
                    e.message = format!("network error while sending: {kind}");
                    e.failure = if closed_kind(kind) {
                        Failure::Closed
                    } else {
                        Failure::NoResponse
                    };
                }
            }
            Err(e)
        }
    }
}

/// An I/O error that means the peer closed or reset the connection.
pub(super) fn closed_kind(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionReset
            | K::ConnectionAborted
            | K::BrokenPipe
            | K::UnexpectedEof
            | K::NotConnected
    )
}

/// A final (non-1xx) status line, or bytes that cannot be one, at the start of `buf` after
/// any complete interim (1xx) heads.
fn final_answer_started(mut buf: &[u8]) -> bool {
    loop {
        match head::parse(buf) {
            Ok(Some(h)) if h.status < 200 && h.status != 101 => {
                buf = buf.get(h.len..).unwrap_or_default();
            }
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) => return !matches!(head::status_line(buf), Ok(None) | Ok(Some(100..=199))),
        }
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
