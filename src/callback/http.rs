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

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::head::{self, MAX_HEAD};
use super::io::{closed_kind, err};
pub use super::io::{ExchangeError, Failure, Io, ReadBuf, Response};
use crate::body_stream::{StreamBody, StreamError};

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
