//! Bodies too large to hold: generated twice, signed by the first pass, streamed by the second.
//!
//! The protocol signs the exact body bytes (HMAC-SHA256 in the `signature` header), so the
//! signature must be known before the first byte of the body is sent, and HTTP/1.1 wants the
//! `Content-Length` in the head. A menu of 20 000 dishes is tens of megabytes: holding it
//! would make the agent's memory grow with the menu. Instead a [`BodySource`] produces the
//! body from one read snapshot (a read transaction on its own mirror connection), as often as
//! asked, byte for byte the same:
//!
//! 1. [`prepare`] runs it once into a tee: up to `keep` bytes are buffered; a body that fits is
//!    returned whole ([`Prepared::Small`], the ordinary in-memory path). Past `keep` the buffer
//!    is hashed and dropped and the rest only hashed: [`Prepared::Large`] carries the length and
//!    the signature and keeps the source (and its snapshot) for the second pass.
//! 2. [`StreamBody::chunks`] (or [`StreamBody::stream_blocking`]) runs it again and hands out
//!    chunks of at most [`CHUNK`] bytes. The second pass is hashed too, and its **last chunk is
//!    held back until the hash and the length match the first pass**: if the bytes could not be
//!    reproduced, the consumer gets an error instead of the last chunk and must abort the
//!    request, so the cloud never receives a complete body that differs from the signed one.
//!
//! Memory is one chunk being filled plus the chunks in flight ([`CHUNKS_IN_FLIGHT`]), whatever
//! the size of the body. A pass on the blocking pool holds its thread while the consumer (the
//! network) takes the chunks: the dispatcher bounds how many streamed bodies are sent at once
//! (`[limits] max_streaming`), and one body runs one pass at a time (a retry's pass takes a
//! thread only once the pass of the attempt before has let go of the source).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

use crate::json::{BodyTooLarge, JsonBuf, Sink, SinkClosed, StreamStopped};
use crate::secret::Secret;
use crate::sign::StreamSigner;

/// Bytes per chunk of a streamed body.
pub const CHUNK: usize = 16 * 1024;
/// Chunks queued between the generating thread and the transport.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// Produces a body into a streaming [`JsonBuf`]; every call must produce the same bytes.
pub trait BodySource: Send + 'static {
    fn generate(&mut self, out: &mut JsonBuf) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    TooLarge(#[from] BodyTooLarge),
    #[error("generating the body: {0}")]
    Source(String),
    #[error("the body's consumer went away")]
    Closed,
    #[error(
        "the second pass produced other bytes than the signed first ({got} bytes against {want}); \
         the request must be aborted"
    )]
    Mismatch { got: usize, want: usize },
}

/// The outcome of the first pass.
pub enum Prepared {
    /// The body fitted in `keep` bytes: here it is.
    Small(Vec<u8>),
    /// Too large to keep: its length and signature, and the source for the second pass.
    Large(StreamBody),
}

/// A body to stream: length and signature from the first pass, and the source to run again.
#[derive(Clone)]
pub struct StreamBody {
    len: usize,
    signature: String,
    cap: usize,
    secret: Secret,
    source: Arc<Mutex<Box<dyn BodySource>>>,
}

impl std::fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamBody")
            .field("len", &self.len)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// First pass: buffer up to `keep` bytes; past that, hash and count only. `cap` bounds the
/// whole body (a streamed body is still bounded).
pub fn prepare(
    secret: &Secret,
    mut source: Box<dyn BodySource>,
    keep: usize,
    cap: usize,
) -> Result<Prepared, StreamError> {
    let tee = Tee {
        buf: Vec::new(),
        keep,
        signer: None,
        secret: secret.clone(),
    };
    let mut j = JsonBuf::streaming(Box::new(tee), cap);
    source.generate(&mut j).map_err(StreamError::Source)?;
    let tee = downcast::<Tee>(j.into_sink())?;
    Ok(match tee.signer {
        None => Prepared::Small(tee.buf),
        Some(signer) => {
            let (len, signature) = signer.finish();
            Prepared::Large(StreamBody {
                len,
                signature,
                cap,
                secret: secret.clone(),
                source: Arc::new(Mutex::new(source)),
            })
        }
    })
}

fn downcast<T: Sink>(sink: Result<Box<dyn Sink>, StreamStopped>) -> Result<Box<T>, StreamError> {
    let sink: Box<dyn std::any::Any> = match sink {
        Ok(s) => s,
        Err(StreamStopped::TooLarge(e)) => return Err(e.into()),
        Err(StreamStopped::Closed(_)) => return Err(StreamError::Closed),
        Err(StreamStopped::NotStreaming) => unreachable!("the writer was made streaming"),
    };
    Ok(sink
        .downcast::<T>()
        .expect("the sink given to JsonBuf::streaming"))
}

impl StreamBody {
    /// The body's length in bytes (`Content-Length`).
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// base64 HMAC-SHA256 of the body (the `signature` header).
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Second pass on this thread: `emit` receives the body in chunks of at most [`CHUNK`]
    /// bytes. `Ok` only when every byte was emitted and they are the signed ones; on
    /// `Err`, the bytes emitted so far are not the whole body (the last chunk is held back).
    /// Not on an async task: it waits for a pass in progress (a retry's) to end.
    pub fn stream_blocking(
        &self,
        emit: impl FnMut(Vec<u8>) -> Result<(), SinkClosed> + Send + 'static,
    ) -> Result<(), StreamError> {
        let mut src = self.source.blocking_lock();
        self.pass(&mut **src, Box::new(emit))
    }

    /// One pass of `src` (this body's source, held by the caller) into `emit`.
    fn pass(&self, src: &mut dyn BodySource, emit: Emit) -> Result<(), StreamError> {
        let overrun = Arc::new(AtomicBool::new(false));
        let sink = Chunker {
            chunk: Vec::with_capacity(CHUNK),
            emit,
            check: StreamSigner::new(&self.secret),
            emitted: 0,
            want_len: self.len,
            overrun: overrun.clone(),
        };
        let mut j = JsonBuf::streaming(Box::new(sink), self.cap);
        src.generate(&mut j).map_err(StreamError::Source)?;
        match downcast::<Chunker>(j.into_sink()) {
            Ok(chunker) => chunker.finish(&self.signature),
            Err(StreamError::Closed) if overrun.load(Ordering::Relaxed) => {
                Err(StreamError::Mismatch {
                    got: self.len + 1,
                    want: self.len,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Second pass on the blocking pool: chunks arrive on the receiver (at most
    /// [`CHUNKS_IN_FLIGHT`] queued). The body is complete and correct only if the channel
    /// closes after exactly [`StreamBody::len`] bytes with no `Err` item; on an `Err` item (or a
    /// short body) the transport must abort the request, never finish it. Must be called
    /// within a tokio runtime. Each call is a new pass (a retry calls it again); it takes a
    /// thread once the pass before it (an earlier attempt's, whose receiver is gone) has ended,
    /// waiting for that on a task, holding no thread.
    pub fn chunks(&self) -> mpsc::Receiver<Result<Vec<u8>, StreamError>> {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let this = self.clone();
        tokio::spawn(async move {
            let mut src = tokio::select! {
                s = this.source.clone().lock_owned() => s,
                _ = tx.closed() => return,
            };
            tokio::task::spawn_blocking(move || {
                let data = tx.clone();
                let emit: Emit =
                    Box::new(move |c| data.blocking_send(Ok(c)).map_err(|_| SinkClosed));
                if let Err(e) = this.pass(&mut **src, emit) {
                    let _ = tx.blocking_send(Err(e));
                }
            });
        });
        rx
    }
}

/// First-pass sink: keeps up to `keep` bytes; past that, switches to hashing.
struct Tee {
    buf: Vec<u8>,
    keep: usize,
    signer: Option<StreamSigner>,
    secret: Secret,
}

impl Sink for Tee {
    fn put(&mut self, bytes: &[u8]) -> Result<(), SinkClosed> {
        if let Some(s) = &mut self.signer {
            s.update(bytes);
        } else if self.buf.len() + bytes.len() <= self.keep {
            let need = self.buf.len() + bytes.len();
            if need > self.buf.capacity() {
                // Double, but never reserve past `keep`.
                let target = (self.buf.capacity() * 2).max(need).max(4096).min(self.keep);
                self.buf.reserve_exact(target - self.buf.len());
            }
            self.buf.extend_from_slice(bytes);
        } else {
            let mut s = StreamSigner::new(&self.secret);
            s.update(&self.buf);
            s.update(bytes);
            self.buf = Vec::new();
            self.signer = Some(s);
        }
        Ok(())
    }
}

type Emit = Box<dyn FnMut(Vec<u8>) -> Result<(), SinkClosed> + Send>;

/// Second-pass sink: fills chunks, emits a full one only when more bytes follow and at least
/// one byte of the signed length stays unsent (so the end is always held back for
/// [`Chunker::finish`], even when this pass runs longer than the first), hashes everything.
struct Chunker {
    chunk: Vec<u8>,
    emit: Emit,
    check: StreamSigner,
    emitted: usize,
    want_len: usize,
    /// Set when this pass ran past the signed length (then `put` refuses).
    overrun: Arc<AtomicBool>,
}

impl Sink for Chunker {
    fn put(&mut self, mut bytes: &[u8]) -> Result<(), SinkClosed> {
        self.check.update(bytes);
        while !bytes.is_empty() {
            if self.chunk.len() == CHUNK {
                if self.emitted + CHUNK >= self.want_len {
                    // More bytes than were signed: never hand out a complete body.
                    self.overrun.store(true, Ordering::Relaxed);
                    return Err(SinkClosed);
                }
                let full = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
                self.emitted += full.len();
                (self.emit)(full)?;
            }
            let n = (CHUNK - self.chunk.len()).min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            self.chunk.extend_from_slice(now);
            bytes = rest;
        }
        Ok(())
    }
}

impl Chunker {
    fn finish(mut self: Box<Self>, want_sig: &str) -> Result<(), StreamError> {
        let chunk = std::mem::take(&mut self.chunk);
        let want_len = self.want_len;
        let (len, sig) = self.check.finish();
        if len != want_len || sig != want_sig {
            return Err(StreamError::Mismatch {
                got: len,
                want: want_len,
            });
        }
        if !chunk.is_empty() {
            (self.emit)(chunk).map_err(|_| StreamError::Closed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::sign;
    use std::sync::Mutex;

    /// `n` objects; `drift` replaces the name on the second and later passes.
    struct Numbers {
        n: usize,
        passes: usize,
        drift: Option<&'static str>,
    }
    impl BodySource for Numbers {
        fn generate(&mut self, j: &mut JsonBuf) -> Result<(), String> {
            self.passes += 1;
            let name = match self.drift {
                Some(other) if self.passes > 1 => other,
                _ => "Борщ",
            };
            j.begin_obj().f_str("rID", "r-1").key("items").begin_arr();
            for i in 0..self.n {
                j.begin_obj()
                    .f_int("i", i as i64)
                    .f_str("name", name)
                    .end_obj();
                if j.overflowed() {
                    break;
                }
            }
            j.end_arr().end_obj();
            Ok(())
        }
    }

    fn src(n: usize, drift: Option<&'static str>) -> Box<dyn BodySource> {
        Box::new(Numbers {
            n,
            passes: 0,
            drift,
        })
    }

    #[test]
    fn a_small_body_comes_back_whole() {
        let k = Secret::new("k");
        match prepare(&k, src(3, None), 1024, 1 << 20).unwrap() {
            Prepared::Small(b) => assert!(b.starts_with(br#"{"rID":"r-1","items":[{"i":0"#)),
            Prepared::Large(_) => panic!("fits in 1 KiB"),
        }
    }

    #[test]
    fn a_large_body_streams_the_signed_bytes_in_bounded_chunks() {
        let k = Secret::new("k");
        let Prepared::Large(body) = prepare(&k, src(20_000, None), 1024, 4 << 20).unwrap() else {
            panic!("20 000 items do not fit in 1 KiB")
        };
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        body.stream_blocking(move |c| {
            assert!(!c.is_empty() && c.len() <= CHUNK);
            g.lock().unwrap().extend_from_slice(&c);
            Ok(())
        })
        .unwrap();
        let got = got.lock().unwrap();
        assert_eq!(got.len(), body.len());
        assert_eq!(sign(&k, &got), body.signature());
        // A retry is a new pass with the same bytes.
        let again = Arc::new(Mutex::new(0usize));
        let a = again.clone();
        body.stream_blocking(move |c| {
            *a.lock().unwrap() += c.len();
            Ok(())
        })
        .unwrap();
        assert_eq!(*again.lock().unwrap(), body.len());
    }

    #[test]
    fn other_bytes_on_the_second_pass_withhold_the_end() {
        // Longer, shorter, and the same length with other bytes ("Сало" is 8 bytes too).
        for drift in ["Борщ!", "Бор", "Сало"] {
            let k = Secret::new("k");
            let Prepared::Large(body) =
                prepare(&k, src(5_000, Some(drift)), 1024, 4 << 20).unwrap()
            else {
                panic!("large")
            };
            let sent = Arc::new(Mutex::new(0usize));
            let s = sent.clone();
            let r = body.stream_blocking(move |c| {
                *s.lock().unwrap() += c.len();
                Ok(())
            });
            assert!(
                matches!(r, Err(StreamError::Mismatch { .. })),
                "{drift}: {r:?}"
            );
            assert!(
                *sent.lock().unwrap() < body.len(),
                "{drift}: the complete body was never handed out"
            );
        }
    }

    #[test]
    fn over_the_cap_is_refused_on_the_first_pass() {
        let k = Secret::new("k");
        let r = prepare(&k, src(20_000, None), 1024, 64 * 1024);
        assert!(
            matches!(r, Err(StreamError::TooLarge(BodyTooLarge { cap: 65536 }))),
            "refused"
        );
    }

    #[tokio::test]
    async fn chunks_arrive_on_a_channel_and_a_gone_consumer_stops_the_pass() {
        let k = Secret::new("k");
        let Prepared::Large(body) = prepare(&k, src(20_000, None), 1024, 4 << 20).unwrap() else {
            panic!("large")
        };
        let mut rx = body.chunks();
        let mut all = Vec::new();
        while let Some(c) = rx.recv().await {
            all.extend_from_slice(&c.unwrap());
        }
        assert_eq!(sign(&k, &all), body.signature());
        // Dropping the receiver mid-way ends the generating pass (no thread left blocked).
        let mut rx = body.chunks();
        let first = rx.recv().await.unwrap().unwrap();
        assert_eq!(first.len(), CHUNK);
        drop(rx);
        // The source is free again once that pass has stopped: a third pass completes.
        let mut rx = body.chunks();
        let mut n = 0;
        while let Some(c) = rx.recv().await {
            n += c.unwrap().len();
        }
        assert_eq!(n, body.len());
    }
}
