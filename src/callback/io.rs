//! A connection's bytes, shared by writing a request (`http.rs`) and reading its answer
//! (`response.rs`): the I/O stream, the read buffer kept with the connection, what an exchange
//! ends with (a [`Response`] or an [`ExchangeError`]).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

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
    /// Bytes arrived that are not an HTTP/1.x status line, the head was cut short, or only an
    /// interim 1xx came before the end: the server may have seen the request.
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
