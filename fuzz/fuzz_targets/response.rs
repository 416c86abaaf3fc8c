//! Fuzz the callback client's response reader: arbitrary bytes as the server's answer to one
//! request, through `callback::http::exchange` (the concurrent write and read, `response.rs`,
//! `head.rs`) on an in-memory stream that hands them over in pieces. Any panic, overflow or
//! out-of-bounds is a finding, and so is a broken invariant:
//! - a 2xx status line at the start is a delivery: the exchange returns that status, whatever
//!   follows (docs/protocol.md §2.3, "Delivered means a 2xx status line");
//! - a returned status is a final one (200 to 599) and the body kept is within `max_body`;
//! - a connection is said reusable only after a final head that keeps it open and delimits
//!   its body (a length, chunks, or none), never a body that ends with the close;
//! - an answer in HTTP/2 frames is named so, never taken for a response.
//!
//! Input: byte 0 sets how many bytes each read returns (1 to 256), bit 0 of byte 1 whether the
//! answer is already there before the request is written (an early answer) or comes after;
//! the rest is the answer. Also `head::parse` and `head::status_line` on the answer alone.
//!
//! Run (cargo-fuzz): `RUSTC_BOOTSTRAP=1 cargo fuzz run response fuzz/corpus/response
//! fuzz/seeds/response` from the repository root (see docs/testing.md).

#![no_main]

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use expirenza_agent::callback::head::{self, Framing, HeadError};
use expirenza_agent::callback::http::{self, Body, Failure, ReadBuf};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncWrite};

const MAX_BODY: usize = 64;

/// The server side as scripted bytes: reads hand out `chunk` bytes at a time, then the end.
struct Scripted<'a> {
    answer: &'a [u8],
    chunk: usize,
    /// Reads wait (`Pending`) until the request is written whole.
    after_request: bool,
    written: usize,
    want: usize,
}

impl AsyncRead for Scripted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.after_request && self.written < self.want {
            // The writer makes progress in the same poll; no wake-up is needed.
            return Poll::Pending;
        }
        let n = self.chunk.min(self.answer.len()).min(buf.remaining());
        let (now, rest) = self.answer.split_at(n);
        buf.put_slice(now);
        self.answer = rest;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The first non-1xx head of `b`, after any complete interim heads.
fn final_head(mut b: &[u8]) -> Option<head::Head> {
    loop {
        let h = head::parse(b).ok()??;
        if h.status >= 200 {
            return Some(h);
        }
        b = b.get(h.len..)?;
    }
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let (Some(&chunk), Some(&mode)) = (data.first(), data.get(1)) else {
        return;
    };
    let answer = &data[2..];

    // The pure parser: bounded, consistent.
    match head::parse(answer) {
        Ok(Some(h)) => {
            assert!(h.len <= answer.len() && h.len <= head::MAX_HEAD);
            assert!((100..=599).contains(&h.status));
            assert_eq!(head::status_line(answer), Ok(Some(h.status)));
        }
        Ok(None) => assert!(answer.len() < head::MAX_HEAD),
        Err(_) => {}
    }

    let head_bytes = http::request_head("/callback/getBill", "h", "r", "sig", 2);
    let want = head_bytes.len() + 2;
    let mut io = Scripted {
        answer,
        chunk: usize::from(chunk) + 1,
        after_request: mode & 1 == 1,
        written: 0,
        want,
    };
    let mut rb = ReadBuf::default();
    let r = rt().block_on(async {
        let until = tokio::time::Instant::now() + Duration::from_secs(3600);
        http::exchange(&mut io, &mut rb, &head_bytes, Body::Bytes(b"{}"), MAX_BODY, until).await
    });
    let delivered = match head::status_line(answer) {
        Ok(Some(s)) if (200..300).contains(&s) => Some(s),
        _ => None,
    };
    match r {
        Ok(resp) => {
            assert!((200..=599).contains(&resp.status), "{}", resp.status);
            assert!(resp.body.chars().count() <= MAX_BODY);
            if let Some(s) = delivered {
                assert_eq!(resp.status, s, "a 2xx status line keeps its status");
            }
            if resp.reusable {
                let h = final_head(answer).expect("reusable without a complete final head");
                assert!(!h.close, "reusable after a head that asks for the close");
                assert!(
                    matches!(h.framing, Framing::Length(_) | Framing::Chunked | Framing::Empty),
                    "reusable after a body delimited by the close: {:?}",
                    h.framing
                );
            }
        }
        Err(e) => {
            assert!(delivered.is_none(), "a 2xx status line was lost: {e}");
            if head::status_line(answer) == Err(HeadError::Http2) {
                assert_eq!(e.failure, Failure::Http2);
            }
        }
    }
});
