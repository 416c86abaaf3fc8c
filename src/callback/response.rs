//! Reading one response, bounded in bytes (a head of [`MAX_HEAD`], a body kept up to
//! `max_body`) and in time (the attempt's end).
//!
//! Interim 1xx heads are skipped, but they count as bytes of a response: a connection that
//! closes after one is not "closed before a response" (the server has seen the request), so
//! it is never resent silently. Once the status line of the final response is in, the
//! response keeps that status whatever happens next: a head that does not parse, invalid
//! framing, a timeout or a closed connection in the body become its [`Response::note`] and
//! make the connection unusable, nothing more. A 2xx body without a length is not read at
//! all (the connection cannot be reused anyway, and the status is all a delivery needs).

use super::head::{self, Framing, HeadError, MAX_HEAD};
use super::io::{closed_kind, err, End, ExchangeError, Failure, Io, ReadBuf, Response, Stop};
use tokio::time::Instant;

/// Read the response at the start of `rb` (and then of `io`).
pub async fn read(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    max_body: usize,
    until: Instant,
) -> Result<Response, ExchangeError> {
    let mut interim = false;
    let head = loop {
        match head::parse(&rb.buf) {
            Ok(Some(h)) if h.status == 101 => {
                return Err(err("unexpected 101 Switching Protocols", Failure::Garbled))
            }
            Ok(Some(h)) if h.status < 200 => {
                interim = true;
                rb.consume(h.len);
            }
            Ok(Some(h)) => break h,
            Ok(None) => match rb.fill(io, MAX_HEAD, until).await {
                Ok(_) => {}
                Err(stop) => {
                    let got = match (interim, rb.buf.is_empty()) {
                        (_, false) => Got::PartOfAHead,
                        (true, true) => Got::Interim,
                        (false, true) => Got::Nothing,
                    };
                    return status_only(rb, stopped(stop, got));
                }
            },
            Err(e) => {
                let failure = match e {
                    HeadError::Http2 => Failure::Http2,
                    _ => Failure::Garbled,
                };
                return status_only(rb, err(e.to_string(), failure));
            }
        }
    };
    rb.consume(head.len);
    let mut resp = Response {
        status: head.status,
        body: String::new(),
        reusable: !head.close,
        location: head.location,
        note: None,
    };
    let delivered = (200..300).contains(&head.status);
    let got = match head.framing {
        Framing::Empty => Ok((Vec::new(), true)),
        Framing::Invalid(why) => Err((Vec::new(), why.to_string())),
        Framing::Length(n) => read_length(io, rb, n, max_body, until).await,
        Framing::Chunked => read_chunked(io, rb, max_body, until).await,
        // A 2xx needs no body; another status's body is read for the log line.
        Framing::UntilClose if delivered => Ok((Vec::new(), false)),
        Framing::UntilClose => read_to_end(io, rb, max_body, until).await,
    };
    let (bytes, complete) = match got {
        Ok(b) => b,
        Err((b, note)) => {
            resp.note = Some(note);
            (b, false)
        }
    };
    resp.body = String::from_utf8_lossy(&bytes).into_owned();
    // Bytes after the response were not asked for: the connection is not reused.
    resp.reusable &= complete && rb.buf.is_empty();
    Ok(resp)
}

/// The error `e`, unless a final status line is already in: then a response with that status
/// (and `e` as its note) that ends the connection.
fn status_only(rb: &ReadBuf, e: ExchangeError) -> Result<Response, ExchangeError> {
    match head::status_line(&rb.buf) {
        Ok(Some(status)) if status >= 200 => Ok(Response {
            status,
            body: String::new(),
            reusable: false,
            location: None,
            note: Some(e.message),
        }),
        _ => Err(e),
    }
}

/// What had arrived of the response when reading stopped.
#[derive(Clone, Copy)]
enum Got {
    Nothing,
    /// Only interim 1xx heads: the server has the request, the answer never came.
    Interim,
    PartOfAHead,
}

fn stopped(stop: Stop, got: Got) -> ExchangeError {
    match (stop, got) {
        (Stop::Ended(End::Eof), Got::Nothing) => {
            err("connection closed before a response", Failure::Closed)
        }
        (Stop::Ended(End::Error(k)), Got::Nothing) if closed_kind(k) => err(
            format!("connection closed before a response ({k})"),
            Failure::Closed,
        ),
        (Stop::Ended(End::Error(k)), Got::Nothing) => err(
            format!("network error while waiting for the response: {k}"),
            Failure::NoResponse,
        ),
        (Stop::TimedOut, Got::Nothing) => {
            err("timed out waiting for the response", Failure::NoResponse)
        }
        (Stop::Ended(End::Eof), Got::Interim) => err(
            "connection closed after an interim 1xx response, before the final one",
            Failure::Garbled,
        ),
        (Stop::Ended(End::Error(k)), Got::Interim) => err(
            format!("network error after an interim 1xx response, before the final one: {k}"),
            Failure::Garbled,
        ),
        (Stop::TimedOut, Got::Interim) => err(
            "timed out after an interim 1xx response, waiting for the final one",
            Failure::Garbled,
        ),
        (Stop::Ended(End::Eof), Got::PartOfAHead) => err(
            "connection closed inside the response head",
            Failure::Garbled,
        ),
        (Stop::Ended(End::Error(k)), Got::PartOfAHead) => err(
            format!("network error inside the response head: {k}"),
            Failure::Garbled,
        ),
        (Stop::TimedOut, Got::PartOfAHead) => {
            err("timed out inside the response head", Failure::Garbled)
        }
    }
}

fn body_stop(stop: Stop) -> String {
    match stop {
        Stop::Ended(End::Eof) => "connection closed inside the response body".into(),
        Stop::Ended(End::Error(k)) => format!("network error inside the response body: {k}"),
        Stop::TimedOut => "timed out reading the response body".into(),
    }
}

type BodyRead = Result<(Vec<u8>, bool), (Vec<u8>, String)>;

/// A body of `n` bytes, keeping `max` of them: complete only if all `n` were read.
async fn read_length(
    io: &mut dyn Io,
    rb: &mut ReadBuf,
    n: u64,
    max: usize,
    until: Instant,
) -> BodyRead {
    let want = usize::try_from(n).unwrap_or(usize::MAX).min(max);
    while rb.buf.len() < want {
        if let Err(stop) = rb.fill(io, want, until).await {
            return Err((std::mem::take(&mut rb.buf), body_stop(stop)));
        }
    }
    let kept = rb.buf.get(..want).unwrap_or_default().to_vec();
    rb.consume(want);
    Ok((kept, n <= max as u64))
}

/// A chunked body, keeping at most `max` bytes of data: complete only if it ended (trailers
/// included) within that bound.
async fn read_chunked(io: &mut dyn Io, rb: &mut ReadBuf, max: usize, until: Instant) -> BodyRead {
    let mut out = Vec::new();
    loop {
        let (used, size) = loop {
            match httparse::parse_chunk_size(&rb.buf) {
                Ok(httparse::Status::Complete(c)) => break c,
                Ok(httparse::Status::Partial) if rb.buf.len() < MAX_HEAD => {}
                _ => return Err((out, "malformed chunked response".into())),
            }
            if let Err(stop) = rb.fill(io, MAX_HEAD, until).await {
                return Err((out, body_stop(stop)));
            }
        };
        rb.consume(used);
        if size == 0 {
            return match read_trailers(io, rb, until).await {
                Ok(()) => Ok((out, true)),
                Err(e) => Err((out, e)),
            };
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if out.len().saturating_add(size) > max {
            return Ok((out, false)); // too long to keep: the connection is not reused
        }
        let need = size + 2;
        while rb.buf.len() < need {
            if let Err(stop) = rb.fill(io, need, until).await {
                return Err((out, body_stop(stop)));
            }
        }
        if rb.buf.get(size..need) != Some(b"\r\n") {
            return Err((out, "malformed chunked response".into()));
        }
        out.extend_from_slice(rb.buf.get(..size).unwrap_or_default());
        rb.consume(need);
    }
}

/// The trailer section after the last chunk: header lines, then an empty line (at most
/// [`MAX_HEAD`] bytes in all).
async fn read_trailers(io: &mut dyn Io, rb: &mut ReadBuf, until: Instant) -> Result<(), String> {
    let mut seen = 0usize;
    loop {
        match rb.buf.iter().position(|&b| b == b'\n') {
            Some(0) => {
                rb.consume(1);
                return Ok(());
            }
            Some(1) if rb.buf.first() == Some(&b'\r') => {
                rb.consume(2);
                return Ok(());
            }
            Some(i) => {
                seen += i + 1;
                rb.consume(i + 1);
            }
            None => {
                if let Err(stop) = rb.fill(io, MAX_HEAD, until).await {
                    return Err(body_stop(stop));
                }
            }
        }
        if seen + rb.buf.len() > MAX_HEAD {
            return Err("trailer section too large".into());
        }
    }
}

/// A body without length: read until the server closes, keeping at most `max` bytes. Never
/// complete (the connection ends with it).
async fn read_to_end(io: &mut dyn Io, rb: &mut ReadBuf, max: usize, until: Instant) -> BodyRead {
    while rb.buf.len() < max {
        match rb.fill(io, max, until).await {
            Ok(_) => {}
            // The close is the end of this body (with or without a TLS close_notify).
            Err(Stop::Ended(_)) => break,
            Err(stop) => {
                rb.buf.truncate(max);
                return Err((std::mem::take(&mut rb.buf), body_stop(stop)));
            }
        }
    }
    rb.buf.truncate(max);
    Ok((std::mem::take(&mut rb.buf), false))
}
