//! The fake cloud's callback endpoint (`http://127.0.0.1:PORT/callback`): an HTTP/1.1 server
//! on hyper.
//!
//! hyper does the protocol: keep-alive, `Connection: close`, pipelining, `Expect: 100-continue`,
//! `Content-Length` and chunked bodies, 400 for a malformed request. The head is capped at
//! [`MAX_HEAD`] (431) and the body at [`MAX_BODY`] (413, the connection then closes).
//!
//! Every request is checked (`signature` = base64 HMAC-SHA256 of the exact body bytes, compared
//! in constant time; `restoId`; `Content-Type: application/json`), recorded as a [`Callback`]
//! with its raw head bytes (see [`crate::tap`]: header names as spelled on the wire), and
//! answered from the [`Reply`] script (default `200`, empty body). `Hang` and `Reset` need
//! the socket itself: a hang never answers, a reset closes with an RST.
//!
//! Callbacks are POSTs: another method (the `HEAD` of `check --online`) is answered 405 with
//! `Allow: POST`, counted apart ([`HttpSide::other_requests`]) and neither recorded as a
//! callback nor counted as an attempt.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::rid::extract_rid;
use super::shared::{error_body, find_header};
use super::tap::{Tap, TapHandle};
use super::wait::{lock, Events};
use expirenza_agent::secret::Secret;
use expirenza_agent::sign::verify;

/// Largest accepted request head (request line + headers + blank line).
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest accepted request body.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// At most this many callbacks are kept (in `all_callbacks` and in the unconsumed queue).
pub const MAX_RECORDED: usize = 100_000;
/// ... and at most this many body bytes in each of those two lists (oldest dropped first).
pub const MAX_RECORDED_BYTES: usize = 256 * 1024 * 1024;

/// How to answer one callback request. Queued with `FakeCloud::push_responses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Answer at once with this status. `>= 400` carries a JSON error body shaped like the
    /// cloud's (`errCode`, `errText`, `errTitle`, `errType`, `fieldErrors`); other statuses
    /// have an empty body.
    Status(u16),
    /// Wait, then answer with the status.
    Delay(Duration, u16),
    /// Never answer; keep the socket open until `FakeCloud::release_hangs` (then the
    /// connection is reset) or until the cloud stops.
    Hang,
    /// Answer with the status when `FakeCloud::release_hangs` is called: an answer as slow as
    /// the test decides, by an event rather than a duration.
    Hold(u16),
    /// Close the TCP connection without answering (RST via `SO_LINGER = 0`).
    Reset,
}

/// One HTTP request the agent made to the callback server.
#[derive(Debug, Clone)]
pub struct Callback {
    /// Request method (the agent must use `POST`).
    pub method: String,
    /// Request target, e.g. `/callback/getBill`.
    pub path: String,
    /// Request headers in arrival order, names lowercased (as hyper gives them).
    pub headers: Vec<(String, String)>,
    /// The request line and headers exactly as they arrived on the wire (names in their
    /// original spelling), up to and including the blank line. `None` when capture was not
    /// possible (after a chunked body on the same connection; see [`crate::tap`]).
    pub raw_head: Option<Vec<u8>>,
    /// The exact body bytes.
    pub body: Vec<u8>,
    /// Top-level `"rID"` of the JSON body, if any.
    pub rid: Option<String>,
    /// `signature` header verifies against the exact body bytes.
    pub signature_ok: bool,
    /// `restoId` header equals the configured resto id.
    pub resto_id_ok: bool,
    /// `Content-Type` is `application/json` (parameters such as `charset` allowed).
    pub content_type_ok: bool,
    /// When the whole request had been read.
    pub received_at: Instant,
    /// Status we answered (or will answer, for `Delay` and `Hold`); `0` for `Hang` and `Reset`.
    pub answered: u16,
    /// Sequence number (from 1) of the TCP connection the request came on: equal numbers mean
    /// a reused keep-alive connection.
    pub connection: u64,
}

impl Callback {
    /// The body as text (empty if it is not UTF-8).
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }

    /// First value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Header names in their original spelling and order, from [`Callback::raw_head`]
    /// (e.g. `restoId`, not `restoid`). Empty when the raw head was not captured.
    pub fn raw_header_names(&self) -> Vec<String> {
        let Some(raw) = &self.raw_head else {
            return Vec::new();
        };
        String::from_utf8_lossy(raw)
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':').map(|(name, _)| name.to_owned()))
            .collect()
    }

    /// The operation, i.e. the last path segment (`/callback/getBill` → `getBill`).
    pub fn operation(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or("")
    }
}

/// A bounded list of callbacks (by count and by body bytes).
#[derive(Default)]
struct Recorded {
    items: VecDeque<Callback>,
    bytes: usize,
}

impl Recorded {
    fn push(&mut self, cb: Callback) {
        self.bytes += cb.body.len();
        self.items.push_back(cb);
        while self.items.len() > MAX_RECORDED
            || (self.bytes > MAX_RECORDED_BYTES && self.items.len() > 1)
        {
            self.pop_at(0);
        }
    }
    fn pop_at(&mut self, i: usize) -> Option<Callback> {
        let cb = self.items.remove(i)?;
        self.bytes -= cb.body.len();
        Some(cb)
    }
}

#[derive(Default)]
struct HttpState {
    script: VecDeque<Reply>,
    /// Callbacks not yet returned by `next_callback` / `callback_for`.
    pending: Recorded,
    all: Recorded,
}

/// A complete request as read, before it is checked.
struct Arrived {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    raw_head: Option<Vec<u8>>,
    body: Vec<u8>,
    connection: u64,
}

/// State and settings of the callback server, shared by the handle and the tasks.
pub(crate) struct HttpSide {
    resto_id: String,
    secret: Secret,
    state: Mutex<HttpState>,
    attempts: AtomicUsize,
    other_requests: AtomicUsize,
    recorded: AtomicUsize,
    connections: AtomicU64,
    /// Bumped by `release_hangs`: every `Hang` waiting then ends with a reset.
    release: watch::Sender<u64>,
    pub(crate) events: Events,
}

impl HttpSide {
    pub(crate) fn new(resto_id: &str, secret: &str) -> Self {
        HttpSide {
            resto_id: resto_id.to_owned(),
            secret: Secret::new(secret),
            state: Mutex::new(HttpState::default()),
            attempts: AtomicUsize::new(0),
            other_requests: AtomicUsize::new(0),
            recorded: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            release: watch::Sender::new(0),
            events: Events::new(),
        }
    }

    pub(crate) fn push_responses(&self, script: &[Reply]) {
        lock(&self.state).script.extend(script.iter().copied());
    }
    pub(crate) fn clear_responses(&self) {
        lock(&self.state).script.clear();
    }
    pub(crate) fn release_hangs(&self) {
        self.release.send_modify(|n| *n = n.wrapping_add(1));
    }
    pub(crate) fn attempts(&self) -> usize {
        self.attempts.load(Ordering::Relaxed)
    }
    /// Requests with another method than POST (answered 405, not callbacks).
    pub(crate) fn other_requests(&self) -> usize {
        self.other_requests.load(Ordering::Relaxed)
    }
    /// Requests recorded since the start (never decreases; the lists themselves are capped).
    pub(crate) fn recorded(&self) -> usize {
        self.recorded.load(Ordering::Relaxed)
    }
    pub(crate) fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    pub(crate) fn all(&self) -> Vec<Callback> {
        lock(&self.state).all.items.iter().cloned().collect()
    }
    /// Remove and return the first unconsumed callback matching `pred`.
    pub(crate) fn take(&self, pred: impl Fn(&Callback) -> bool) -> Option<Callback> {
        let mut st = lock(&self.state);
        let i = st.pending.items.iter().position(pred)?;
        st.pending.pop_at(i)
    }

    /// Check, record and pick the reply for a complete request (`forced`: the status the
    /// server must give whatever the script says, e.g. 413).
    fn record(&self, req: Arrived, forced: Option<u16>) -> Reply {
        let Arrived {
            method,
            path,
            headers,
            raw_head,
            body,
            connection,
        } = req;
        let signature_ok =
            find_header(&headers, "signature").is_some_and(|s| verify(&self.secret, &body, s));
        let resto_id_ok = find_header(&headers, "restoid") == Some(self.resto_id.as_str());
        let content_type_ok = find_header(&headers, "content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        });
        let mut st = lock(&self.state);
        let reply = match forced {
            Some(status) => Reply::Status(status),
            None => st.script.pop_front().unwrap_or(Reply::Status(200)),
        };
        let answered = match reply {
            Reply::Status(s) | Reply::Delay(_, s) | Reply::Hold(s) => s,
            Reply::Hang | Reply::Reset => 0,
        };
        let cb = Callback {
            method,
            path,
            rid: extract_rid(&body),
            headers,
            raw_head,
            body,
            signature_ok,
            resto_id_ok,
            content_type_ok,
            received_at: Instant::now(),
            answered,
            connection,
        };
        st.all.push(cb.clone());
        st.pending.push(cb);
        self.recorded.fetch_add(1, Ordering::Relaxed);
        drop(st);
        self.events.bump();
        reply
    }
}

/// Accept loop of the callback port; ends when `stop` fires (its sender is dropped).
pub(crate) async fn serve(
    side: Arc<HttpSide>,
    listener: TcpListener,
    mut stop: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let id = side.connections.fetch_add(1, Ordering::Relaxed) + 1;
                let mut stop = stop.clone();
                let side = side.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = connection(side, tcp, id) => {}
                    }
                });
            }
        }
    }
}

/// The script said `Reset`: the service fails, hyper drops the stream, [`Tap`] sends the RST.
#[derive(Debug)]
struct ResetByScript;

impl std::fmt::Display for ResetByScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reset by script")
    }
}

impl std::error::Error for ResetByScript {}

/// Serve requests on one TCP connection until it closes or a reply ends it.
async fn connection(side: Arc<HttpSide>, tcp: TcpStream, id: u64) {
    let _ = tcp.set_nodelay(true);
    let (tap, handle) = Tap::new(tcp);
    let svc_side = side.clone();
    let service = service_fn(move |req| answer(svc_side.clone(), handle.clone(), id, req));
    let served = http1::Builder::new()
        .title_case_headers(true)
        .max_header_size(MAX_HEAD)
        .serve_connection(TokioIo::new(tap), service)
        .await;
    if let Err(e) = served {
        // A request hyper refused before it reached `answer` (400, 431) is still an attempt.
        if e.is_parse() || e.is_parse_too_large() {
            side.attempts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One request: read the body (bounded), check and record it, answer from the script.
async fn answer(
    side: Arc<HttpSide>,
    tap: TapHandle,
    id: u64,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ResetByScript> {
    if req.method() != hyper::Method::POST {
        side.other_requests.fetch_add(1, Ordering::Relaxed);
        let mut resp = respond(405, true);
        resp.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(resp);
    }
    side.attempts.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let declared: Option<usize> = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let chunked = parts.headers.contains_key(hyper::header::TRANSFER_ENCODING);
    let raw_head = tap.take_head(if chunked {
        None
    } else {
        Some(declared.unwrap_or(0))
    });
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_owned(),
            )
        })
        .collect();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.to_string(), |p| p.as_str().to_owned());
    let (body, forced) = if declared.is_some_and(|n| n > MAX_BODY) {
        (Vec::new(), Some(413))
    } else {
        match Limited::new(body, MAX_BODY).collect().await {
            Ok(b) => (b.to_bytes().to_vec(), None),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => (Vec::new(), Some(413)),
            // The client went away mid-body: nothing to answer.
            Err(_) => return Err(ResetByScript),
        }
    };
    let arrived = Arrived {
        method: parts.method.as_str().to_owned(),
        path,
        headers,
        raw_head,
        body,
        connection: id,
    };
    // Subscribed before the request is recorded: a release after the test saw it ends it.
    let mut released = side.release.subscribe();
    let reply = side.record(arrived, forced);
    match reply {
        Reply::Status(status) => Ok(respond(status, forced.is_some())),
        Reply::Delay(wait, status) => {
            tokio::time::sleep(wait).await;
            Ok(respond(status, false))
        }
        Reply::Hang => {
            let _ = released.changed().await;
            tap.reset();
            Err(ResetByScript)
        }
        Reply::Hold(status) => {
            let _ = released.changed().await;
            Ok(respond(status, false))
        }
        Reply::Reset => {
            tap.reset();
            Err(ResetByScript)
        }
    }
}

/// A complete response: empty body below 400, cloud-style JSON error body from 400 up.
fn respond(status: u16, close: bool) -> Response<Full<Bytes>> {
    let body = if status >= 400 {
        error_body(status)
    } else {
        String::new()
    };
    let mut resp = Response::new(Full::new(Bytes::from(body.clone())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !body.is_empty() {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if close {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
