//! The callback server's TCP stream as hyper sees it, with two things hyper cannot give:
//!
//! * the **raw request heads**, byte for byte as they arrived (hyper lowercases header
//!   names; a test of the exact spelling `restoId` on the wire needs the original bytes);
//! * a **reset**: when a script says [`Reply::Reset`](crate::http::Reply::Reset), the stream
//!   is closed with `SO_LINGER = 0` (an RST) instead of a FIN, and nothing more is written.
//!
//! Head capture follows the requests on the connection: [`TapHandle::take_head`] returns the
//! bytes up to the blank line of the oldest request not yet taken, then the stream skips that
//! request's `Content-Length` body bytes. A chunked body has no length known here, so capture
//! stops for the rest of that connection (`take_head` then returns `None`). At most
//! [`MAX_PENDING`] unclaimed bytes are kept; past that, capture stops too.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::wait::lock;

/// Unclaimed captured bytes kept per connection (a head is at most `MAX_HEAD`).
pub const MAX_PENDING: usize = 64 * 1024;

#[derive(Default)]
struct Capture {
    /// Bytes read and not yet claimed by `take_head` (or skipped as a body).
    pending: Vec<u8>,
    /// Body bytes still to drop as they arrive.
    skip: usize,
    /// Capture gave up on this connection (chunked body, or over `MAX_PENDING`).
    off: bool,
}

impl Capture {
    fn feed(&mut self, mut data: &[u8]) {
        if self.off {
            return;
        }
        let n = self.skip.min(data.len());
        self.skip -= n;
        data = &data[n..];
        if self.pending.len() + data.len() > MAX_PENDING {
            self.off = true;
            self.pending = Vec::new();
            return;
        }
        self.pending.extend_from_slice(data);
    }
}

#[derive(Default)]
struct Shared {
    capture: Mutex<Capture>,
    reset: AtomicBool,
}

/// What the request handler holds of its connection's [`Tap`].
#[derive(Clone)]
pub(crate) struct TapHandle(Arc<Shared>);

impl TapHandle {
    /// The raw head (request line, headers, blank line) of the oldest request not yet taken;
    /// its `body_len` following bytes are skipped. `None` once capture stopped, and for a
    /// request with an unknown body length (`None`), after which capture stops.
    pub(crate) fn take_head(&self, body_len: Option<usize>) -> Option<Vec<u8>> {
        let mut c = lock(&self.0.capture);
        if c.off {
            return None;
        }
        let end = c.pending.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head: Vec<u8> = c.pending.drain(..end).collect();
        match body_len {
            Some(len) => {
                let present = len.min(c.pending.len());
                c.pending.drain(..present);
                c.skip = len - present;
            }
            None => {
                c.off = true;
                c.pending = Vec::new();
            }
        }
        Some(head)
    }

    /// Make the connection end with an RST: nothing more is written, no FIN is sent.
    pub(crate) fn reset(&self) {
        self.0.reset.store(true, Ordering::SeqCst);
    }
}

/// A `TcpStream` that records what it reads (see the module docs) and can end in an RST.
pub(crate) struct Tap {
    tcp: TcpStream,
    shared: Arc<Shared>,
}

impl Tap {
    pub(crate) fn new(tcp: TcpStream) -> (Tap, TapHandle) {
        let shared = Arc::new(Shared::default());
        (
            Tap {
                tcp,
                shared: shared.clone(),
            },
            TapHandle(shared),
        )
    }

    fn resetting(&self) -> bool {
        self.shared.reset.load(Ordering::SeqCst)
    }
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "fake cloud: reset by script",
    )
}

impl AsyncRead for Tap {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.resetting() {
            return Poll::Ready(Err(reset_error()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            lock(&this.shared.capture).feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.resetting() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut this.tcp).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.resetting() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.resetting() {
            return Poll::Ready(Ok(())); // no FIN: the drop sends the RST
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if self.resetting() {
            let _ = self.tcp.set_zero_linger();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(chunks: &[&[u8]]) -> Capture {
        let mut c = Capture::default();
        for ch in chunks {
            c.feed(ch);
        }
        c
    }

    #[test]
    fn heads_are_taken_in_order_and_bodies_skipped() {
        let shared = Arc::new(Shared::default());
        let h = TapHandle(shared.clone());
        *lock(&shared.capture) =
            capture(&[b"POST /a HTTP/1.1\r\nrestoId: 1\r\n\r\n{}POST /b HTTP/1.1\r\n"]);
        assert_eq!(
            h.take_head(Some(2)).unwrap(),
            b"POST /a HTTP/1.1\r\nrestoId: 1\r\n\r\n"
        );
        assert!(h.take_head(Some(0)).is_none(), "second head incomplete");
        lock(&shared.capture).feed(b"X-A: b\r\n\r\n12345");
        assert_eq!(
            h.take_head(Some(10)).unwrap(),
            b"POST /b HTTP/1.1\r\nX-A: b\r\n\r\n"
        );
        // 5 of the 10 body bytes are still to come: they are skipped, the next head is kept.
        lock(&shared.capture).feed(b"67890GET /c HTTP/1.1\r\n\r\n");
        assert_eq!(h.take_head(Some(0)).unwrap(), b"GET /c HTTP/1.1\r\n\r\n");
        // An unknown body length ends capture for the connection.
        lock(&shared.capture).feed(b"POST /d HTTP/1.1\r\n\r\n");
        assert!(h.take_head(None).is_some());
        lock(&shared.capture).feed(b"GET /e HTTP/1.1\r\n\r\n");
        assert!(h.take_head(Some(0)).is_none());
    }

    #[test]
    fn capture_is_bounded() {
        let big = vec![b'x'; MAX_PENDING + 1];
        let c = capture(&[&big]);
        assert!(c.off && c.pending.is_empty());
    }
}
