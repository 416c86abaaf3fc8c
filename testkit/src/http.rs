//! The fake cloud's callback endpoint: a minimal HTTP/1.1 server (`http://127.0.0.1:PORT/callback`).
//!
//! Supports what the agent's HTTP client (ureq) needs: `Content-Length` bodies, keep-alive
//! (the default for HTTP/1.1), `Connection: close`, and `Expect: 100-continue`. The header
//! block is capped at 16 KiB (431) and the body at 16 MiB (413); `Transfer-Encoding` is not
//! supported (501); malformed requests get 400. Those error answers close the connection.
//!
//! Every request is checked (`signature` = base64 HMAC-SHA256 of the exact body bytes,
//! `restoId`, `Content-Type: application/json`), recorded as a [`Callback`], and answered
//! from the [`Reply`] script (default `200`, empty body).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::rid::extract_rid;
use super::wait::{lock, Events};
use super::ws::find_header;
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
    /// Never answer; keep the socket open (until the client closes it or the cloud stops).
    Hang,
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
    /// Request headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
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
    /// Status we answered (or will answer, for `Delay`); `0` for `Hang` and `Reset`.
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

/// State and settings of the callback server, shared by the handle and the tasks.
pub(crate) struct HttpSide {
    resto_id: String,
    secret: Secret,
    state: Mutex<HttpState>,
    attempts: AtomicUsize,
    connections: AtomicU64,
    pub(crate) events: Events,
}

impl HttpSide {
    pub(crate) fn new(resto_id: &str, secret: &str) -> Self {
        HttpSide {
            resto_id: resto_id.to_owned(),
            secret: Secret::new(secret),
            state: Mutex::new(HttpState::default()),
            attempts: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            events: Events::new(),
        }
    }

    pub(crate) fn push_responses(&self, script: &[Reply]) {
        lock(&self.state).script.extend(script.iter().copied());
    }
    pub(crate) fn attempts(&self) -> usize {
        self.attempts.load(Ordering::Relaxed)
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

    /// Check, record and pick the reply for a complete request.
    fn record(
        &self,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        connection: u64,
        forced: Option<u16>,
    ) -> Reply {
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
            Reply::Status(s) | Reply::Delay(_, s) => s,
            Reply::Hang | Reply::Reset => 0,
        };
        let cb = Callback {
            method: method.to_owned(),
            path: path.to_owned(),
            rid: extract_rid(&body),
            headers,
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
                        _ = connection(&side, tcp, id) => {}
                    }
                });
            }
        }
    }
}

/// A parsed request head.
struct Head {
    method: String,
    path: String,
    /// HTTP/1.1 (or later) rather than HTTP/1.0.
    http11: bool,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> Option<Head> {
        let text = std::str::from_utf8(raw).ok()?;
        let mut lines = text.split("\r\n");
        let mut parts = lines.next()?.split(' ');
        let (method, path, version) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || method.is_empty() || !path.starts_with('/') {
            return None;
        }
        let http11 = match version {
            "HTTP/1.1" => true,
            "HTTP/1.0" => false,
            _ => return None,
        };
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            if name.is_empty() || name.contains([' ', '\t']) {
                return None; // also rejects obsolete line folding
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        Some(Head {
            method: method.to_owned(),
            path: path.to_owned(),
            http11,
            headers,
        })
    }

    /// `Some(len)`; `None` if absent; `Err` if unparsable or conflicting.
    fn content_length(&self) -> Result<Option<usize>, ()> {
        let mut found = None;
        for (_, v) in self.headers.iter().filter(|(k, _)| k == "content-length") {
            let n: usize = v.parse().map_err(|_| ())?;
            if found.is_some_and(|f| f != n) {
                return Err(());
            }
            found = Some(n);
        }
        Ok(found)
    }

    fn has_token(&self, header: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k == header)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    fn keep_alive(&self) -> bool {
        if self.http11 {
            !self.has_token("connection", "close")
        } else {
            self.has_token("connection", "keep-alive")
        }
    }
}

/// Serve requests on one TCP connection until it closes or a reply ends it.
async fn connection(side: &HttpSide, mut tcp: TcpStream, id: u64) {
    let _ = tcp.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    loop {
        // 1. The head.
        let head_len = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > MAX_HEAD {
                side.attempts.fetch_add(1, Ordering::Relaxed);
                let _ = respond(&mut tcp, 431, false).await;
                return;
            }
            if !read_more(&mut tcp, &mut buf).await {
                return;
            }
        };
        side.attempts.fetch_add(1, Ordering::Relaxed);
        if head_len > MAX_HEAD {
            let _ = respond(&mut tcp, 431, false).await;
            return;
        }
        let Some(head) = Head::parse(&buf[..head_len]) else {
            let _ = respond(&mut tcp, 400, false).await;
            return;
        };

        // 2. The body (Content-Length only).
        let (body_len, forced) = match head.content_length() {
            _ if head.headers.iter().any(|(k, _)| k == "transfer-encoding") => (0, Some(501)),
            Err(()) => (0, Some(400)),
            Ok(Some(n)) if n > MAX_BODY => (0, Some(413)),
            Ok(n) => (n.unwrap_or(0), None),
        };
        let expects_continue = head.has_token("expect", "100-continue");
        if forced.is_none() && body_len > 0 && expects_continue {
            let interim = tcp.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
            if interim.is_err() {
                return;
            }
        }
        while buf.len() < head_len + body_len {
            if !read_more(&mut tcp, &mut buf).await {
                return;
            }
        }
        let body = buf[head_len..head_len + body_len].to_vec();
        buf.drain(..head_len + body_len);

        // 3. Record and answer.
        let keep_alive = forced.is_none() && head.keep_alive();
        let reply = side.record(&head.method, &head.path, head.headers, body, id, forced);
        match reply {
            Reply::Status(status) => {
                if respond(&mut tcp, status, keep_alive).await.is_err() || !keep_alive {
                    return;
                }
            }
            Reply::Delay(wait, status) => {
                tokio::time::sleep(wait).await;
                if respond(&mut tcp, status, keep_alive).await.is_err() || !keep_alive {
                    return;
                }
            }
            Reply::Hang => {
                // Hold the socket, discarding input, until the client gives up.
                let mut sink = [0u8; 4096];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Reply::Reset => {
                let _ = tcp.set_zero_linger();
                return;
            }
        }
    }
}

/// Read more bytes into `buf`; `false` on EOF or error.
async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8 * 1024];
    match tcp.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Write a complete response: empty body below 400, cloud-style JSON error body from 400 up.
async fn respond(tcp: &mut TcpStream, status: u16, keep_alive: bool) -> std::io::Result<()> {
    let body = if status >= 400 {
        error_body(status)
    } else {
        String::new()
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    if !body.is_empty() {
        out.push_str("Content-Type: application/json\r\n");
    }
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    out.push_str(&body);
    tcp.write_all(out.as_bytes()).await?;
    if !keep_alive {
        let _ = tcp.shutdown().await;
    }
    Ok(())
}

/// The cloud's error body shape (reference §2.3), with a generic text.
pub(crate) fn error_body(status: u16) -> String {
    format!(
        r#"{{"errCode":{{}},"errText":"fake cloud: HTTP {status} {}","errTitle":"Error","errType":"FULLSCREEN","fieldErrors":[]}}"#,
        reason(status)
    )
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
