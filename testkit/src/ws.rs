//! The fake cloud's WebSocket endpoint (`ws://127.0.0.1:PORT/restaurantEntryPoint`).
//!
//! Every TCP accept is recorded (backoff tests), then the handshake is checked: `authorization`
//! must be `Basic base64(RESTO_ID:SECRET_KEY)` and, when configured, `cookie` must carry
//! `system=<pos>`. The result is recorded in a [`Handshake`]; a bad handshake is still
//! accepted unless a rejection status is set ([`WsSide::set_reject`]), so tests can assert on
//! `auth_ok` / `cookie_ok`.
//!
//! Like the real cloud (one session per restaurant), only one connection is live: a new one
//! replaces the old, which gets a close frame. Each connection is a task driven by commands
//! ([`Cmd`]) from the [`FakeCloud`](super::FakeCloud) handle.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::shared::{error_body, find_header};
use super::wait::{lock, Events};

/// Path of the WebSocket endpoint, as on `wss://api.shaketopay.com.ua/restaurantEntryPoint`.
pub const WS_PATH: &str = "/restaurantEntryPoint";

/// Cap on recorded text frames and handshakes (oldest dropped first).
const MAX_RECORDED: usize = 100_000;

/// A client that opens TCP but never completes the handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the fake cloud saw in one WebSocket upgrade request.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Request target, e.g. `/restaurantEntryPoint` (recorded, not enforced).
    pub path: String,
    /// All request headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// When the upgrade request was read.
    pub at: Instant,
    /// `authorization` was `Basic base64(resto_id:secret)`.
    pub auth_ok: bool,
    /// `cookie` carried `system=<pos>` (always `true` when no POS name is configured).
    pub cookie_ok: bool,
}

impl Handshake {
    /// First value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A command from the handle to the live connection task.
pub(crate) enum Cmd {
    /// Write one message; the ack says whether it was written.
    Send(Message, oneshot::Sender<bool>),
    /// End the connection: with a close frame first (`graceful`) or by just closing the TCP.
    Close {
        graceful: bool,
        done: oneshot::Sender<()>,
    },
}

struct Live {
    id: u64,
    handshake: Handshake,
    cmds: mpsc::UnboundedSender<Cmd>,
}

#[derive(Default)]
struct WsState {
    live: Option<Live>,
    /// Id of the last connection accepted (ids start at 1).
    last_id: u64,
    /// Id of the last connection handed out by `wait_connected`.
    last_returned: u64,
    handshakes: Vec<Handshake>,
    attempts: Vec<Instant>,
    pings: usize,
    pongs: usize,
    binaries: usize,
    texts: Vec<String>,
}

/// State and settings of the WebSocket endpoint, shared by the handle and the tasks.
pub(crate) struct WsSide {
    expected_auth: Vec<u8>,
    expected_cookie: Option<String>,
    reject: Mutex<Option<u16>>,
    state: Mutex<WsState>,
    pub(crate) events: Events,
    black_hole: watch::Sender<bool>,
    server_ping: watch::Sender<Option<Duration>>,
}

impl WsSide {
    pub(crate) fn new(resto_id: &str, secret: &str, pos_system: Option<&str>) -> Self {
        WsSide {
            expected_auth: format!("{resto_id}:{secret}").into_bytes(),
            expected_cookie: pos_system.map(|p| format!("system={p}")),
            reject: Mutex::new(None),
            state: Mutex::new(WsState::default()),
            events: Events::new(),
            black_hole: watch::Sender::new(false),
            server_ping: watch::Sender::new(None),
        }
    }

    // ----- settings -----

    pub(crate) fn set_reject(&self, status: Option<u16>) {
        *lock(&self.reject) = status;
    }
    pub(crate) fn set_black_hole(&self, on: bool) {
        self.black_hole.send_replace(on);
    }
    pub(crate) fn set_server_ping(&self, every: Option<Duration>) {
        self.server_ping.send_replace(every);
    }

    // ----- observations -----

    pub(crate) fn connection_count(&self) -> usize {
        lock(&self.state).last_id as usize
    }
    pub(crate) fn connect_attempts(&self) -> Vec<Instant> {
        lock(&self.state).attempts.clone()
    }
    pub(crate) fn attempt_count(&self) -> usize {
        lock(&self.state).attempts.len()
    }
    pub(crate) fn handshakes(&self) -> Vec<Handshake> {
        lock(&self.state).handshakes.clone()
    }
    pub(crate) fn is_connected(&self) -> bool {
        lock(&self.state).live.is_some()
    }
    pub(crate) fn pings(&self) -> usize {
        lock(&self.state).pings
    }
    pub(crate) fn pongs(&self) -> usize {
        lock(&self.state).pongs
    }
    pub(crate) fn binaries(&self) -> usize {
        lock(&self.state).binaries
    }
    pub(crate) fn texts(&self) -> Vec<String> {
        lock(&self.state).texts.clone()
    }

    /// The live connection's handshake if it has not been handed out yet (marks it as handed out).
    pub(crate) fn take_new_connection(&self) -> Option<Handshake> {
        let mut st = lock(&self.state);
        let (id, hs) = match &st.live {
            Some(l) if l.id > st.last_returned => (l.id, l.handshake.clone()),
            _ => return None,
        };
        st.last_returned = id;
        Some(hs)
    }

    /// First recorded text frame containing `needle`.
    pub(crate) fn find_text(&self, needle: &str) -> Option<String> {
        lock(&self.state)
            .texts
            .iter()
            .find(|t| t.contains(needle))
            .cloned()
    }

    // ----- commands to the live connection -----

    /// Hand a command to the live connection; `None` if there is none.
    pub(crate) fn command(&self, make: impl FnOnce() -> Cmd) -> Option<()> {
        let st = lock(&self.state);
        st.live.as_ref()?.cmds.send(make()).ok()
    }

    // ----- internals -----

    fn check_auth(&self, value: Option<&str>) -> bool {
        let Some((scheme, b64)) = value.and_then(|v| v.trim().split_once(' ')) else {
            return false;
        };
        scheme.eq_ignore_ascii_case("basic")
            && STANDARD
                .decode(b64.trim())
                .is_ok_and(|creds| creds == self.expected_auth)
    }

    fn check_cookie(&self, headers: &[(String, String)]) -> bool {
        let Some(want) = &self.expected_cookie else {
            return true;
        };
        headers
            .iter()
            .filter(|(k, _)| k == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .any(|c| c.trim() == want)
    }

    fn inspect(&self, req: &Request) -> Handshake {
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Handshake {
            path: req.uri().to_string(),
            auth_ok: self.check_auth(find_header(&headers, "authorization")),
            cookie_ok: self.check_cookie(&headers),
            at: Instant::now(),
            headers,
        }
    }

    fn record(&self, msg: &Message) {
        let mut st = lock(&self.state);
        match msg {
            Message::Ping(_) => st.pings += 1,
            Message::Pong(_) => st.pongs += 1,
            Message::Binary(_) => st.binaries += 1,
            Message::Text(t) => {
                if st.texts.len() >= MAX_RECORDED {
                    st.texts.remove(0);
                }
                st.texts.push(t.as_str().to_owned());
            }
            Message::Close(_) | Message::Frame(_) => return,
        }
        drop(st);
        self.events.bump();
    }

    /// Register a freshly accepted connection as the live one; the previous one (if any) loses
    /// its command sender and closes itself.
    fn register(&self, handshake: Handshake, cmds: mpsc::UnboundedSender<Cmd>) -> u64 {
        let mut st = lock(&self.state);
        st.last_id += 1;
        let id = st.last_id;
        if st.handshakes.len() >= MAX_RECORDED {
            st.handshakes.remove(0);
        }
        st.handshakes.push(handshake.clone());
        let old = st.live.replace(Live {
            id,
            handshake,
            cmds,
        });
        drop(st);
        drop(old);
        self.events.bump();
        id
    }

    fn unregister(&self, id: u64) {
        let mut st = lock(&self.state);
        if st.live.as_ref().is_some_and(|l| l.id == id) {
            st.live = None;
        }
        drop(st);
        self.events.bump();
    }
}

/// Accept loop of the WebSocket port; ends when `stop` fires (its sender is dropped).
pub(crate) async fn serve(
    side: std::sync::Arc<WsSide>,
    listener: TcpListener,
    mut stop: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                lock(&side.state).attempts.push(Instant::now());
                side.events.bump();
                tokio::spawn(connection(side.clone(), tcp, stop.clone()));
            }
        }
    }
}

/// The status a rejected handshake gets, with a cloud-like JSON error body.
fn rejection(status: u16) -> ErrorResponse {
    let body = error_body(status);
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Some(body))
        .unwrap_or_else(|_| {
            let mut r = ErrorResponse::new(None);
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

async fn connection(side: std::sync::Arc<WsSide>, tcp: TcpStream, mut stop: watch::Receiver<()>) {
    let _ = tcp.set_nodelay(true);
    let reject = *lock(&side.reject);
    let mut seen: Option<Handshake> = None;
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        seen = Some(side.inspect(req));
        match reject {
            Some(status) => Err(rejection(status)),
            None => Ok(resp),
        }
    };
    let upgraded = tokio::select! {
        _ = stop.changed() => return,
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::accept_hdr_async(tcp, callback)) => r,
    };
    let (Ok(Ok(ws)), Some(handshake)) = (upgraded, seen) else {
        return;
    };

    let (tx, rx) = mpsc::unbounded_channel();
    let id = side.register(handshake, tx);
    let done = drive(&side, ws, rx, stop).await;
    side.unregister(id);
    if let Some(done) = done {
        let _ = done.send(());
    }
}

/// Run one live connection until it ends. Returns the ack of a `Cmd::Close` if that ended it;
/// the socket is already closed when this returns.
async fn drive(
    side: &WsSide,
    mut ws: WebSocketStream<TcpStream>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    mut stop: watch::Receiver<()>,
) -> Option<oneshot::Sender<()>> {
    let mut black_hole = side.black_hole.subscribe();
    let mut ping_every = side.server_ping.subscribe();
    let mut next_ping = ping_every
        .borrow_and_update()
        .map(|d| tokio::time::Instant::now() + d);
    let (graceful, done) = loop {
        let dead = *black_hole.borrow_and_update();
        tokio::select! {
            _ = stop.changed() => break (false, None),
            _ = black_hole.changed() => {}
            _ = ping_every.changed() => {
                next_ping = ping_every.borrow_and_update().map(|d| tokio::time::Instant::now() + d);
            }
            _ = sleep_until_opt(next_ping), if next_ping.is_some() && !dead => {
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break (false, None);
                }
                next_ping = (*ping_every.borrow()).map(|d| tokio::time::Instant::now() + d);
            }
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Send(msg, ack)) => {
                    let ok = ws.send(msg).await.is_ok();
                    let _ = ack.send(ok);
                    if !ok {
                        break (false, None);
                    }
                }
                Some(Cmd::Close { graceful, done }) => break (graceful, Some(done)),
                // Replaced by a newer connection (or the handle is gone): close politely.
                None => break (true, None),
            },
            // While black-holed the socket is not read, so pings stay unanswered.
            msg = ws.next(), if !dead => match msg {
                Some(Ok(msg)) => side.record(&msg),
                _ => break (false, None),
            },
        }
    };
    if graceful {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "fake cloud closing".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
    }
    drop(ws);
    done
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
