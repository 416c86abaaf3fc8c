//! [`FakeCloud`]: the handle tests hold. It starts both servers, exposes their URLs, and
//! forwards to the WebSocket side ([`super::ws`]) and the callback side ([`super::http`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use super::http::{self, Callback, HttpSide, Reply};
use super::ws::{self, Cmd, Handshake, WsSide};

/// How long `send_*` and `drop_connection` wait for the connection task to act.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the fake cloud expects from the agent.
#[derive(Debug, Clone, Default)]
pub struct FakeCloudConfig {
    /// `RESTO_ID`: Basic-auth user and expected `restoId` callback header.
    pub resto_id: String,
    /// `SECRET_KEY`: Basic-auth password and HMAC key of callback signatures.
    pub secret: String,
    /// Expected `cookie: system=<pos>`; `None` = don't check (`cookie_ok` is then `true`).
    pub pos_system: Option<String>,
}

/// Stops every server task when the last [`FakeCloud`] clone is dropped (dropping the sender
/// wakes every `stop.changed()`).
struct Lifetime {
    _stop: watch::Sender<()>,
}

/// A running fake Expirenza cloud (WebSocket + callback server on 127.0.0.1).
///
/// Cheap to clone; the servers stop when the last clone is dropped.
#[derive(Clone)]
pub struct FakeCloud {
    ws: Arc<WsSide>,
    http: Arc<HttpSide>,
    ws_port: u16,
    http_port: u16,
    _life: Arc<Lifetime>,
}

impl std::fmt::Debug for FakeCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCloud")
            .field("ws_url", &self.ws_url())
            .field("callback_url", &self.callback_url())
            .finish()
    }
}

impl FakeCloud {
    /// Bind `127.0.0.1:0` for both servers and start them on the current tokio runtime.
    pub async fn start(cfg: FakeCloudConfig) -> std::io::Result<FakeCloud> {
        Self::start_on(cfg, 0, 0).await
    }

    /// Like [`FakeCloud::start`] on fixed ports (`0` = ephemeral): a cloud "restarting" on the
    /// ports of one that was dropped. The dropped cloud's listeners close asynchronously, so
    /// `AddrInUse` is retried for up to 2 s.
    pub async fn start_on(
        cfg: FakeCloudConfig,
        ws_port: u16,
        http_port: u16,
    ) -> std::io::Result<FakeCloud> {
        let ws_listener = bind_retry(ws_port).await?;
        let http_listener = bind_retry(http_port).await?;
        let ws_port = ws_listener.local_addr()?.port();
        let http_port = http_listener.local_addr()?.port();
        let ws = Arc::new(WsSide::new(
            &cfg.resto_id,
            &cfg.secret,
            cfg.pos_system.as_deref(),
        ));
        let http = Arc::new(HttpSide::new(&cfg.resto_id, &cfg.secret));
        let (stop_tx, stop_rx) = watch::channel(());
        tokio::spawn(ws::serve(ws.clone(), ws_listener, stop_rx.clone()));
        tokio::spawn(http::serve(http.clone(), http_listener, stop_rx));
        Ok(FakeCloud {
            ws,
            http,
            ws_port,
            http_port,
            _life: Arc::new(Lifetime { _stop: stop_tx }),
        })
    }

    /// `ws://127.0.0.1:PORT/restaurantEntryPoint`
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}{}", self.ws_port, ws::WS_PATH)
    }

    /// `http://127.0.0.1:PORT/callback` (the agent appends `/<operation>`).
    pub fn callback_url(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.http_port)
    }

    // ===== WebSocket: connections =====

    /// Wait for the next accepted connection, or return the live one if it has not been
    /// returned by an earlier call. `None` on timeout.
    pub async fn wait_connected(&self, timeout: Duration) -> Option<Handshake> {
        self.ws
            .events
            .wait_for(timeout, || self.ws.take_new_connection())
            .await
    }

    /// Wait until no connection is live. `false` on timeout.
    pub async fn wait_disconnected(&self, timeout: Duration) -> bool {
        self.ws
            .events
            .wait_for(timeout, || (!self.ws.is_connected()).then_some(()))
            .await
            .is_some()
    }

    /// A connection is live now.
    pub fn is_connected(&self) -> bool {
        self.ws.is_connected()
    }

    /// Successful WebSocket handshakes so far.
    pub fn connection_count(&self) -> usize {
        self.ws.connection_count()
    }

    /// Wait until at least `n` WebSocket handshakes succeeded in total (unlike
    /// [`FakeCloud::wait_connected`], a live session seen before does not count as new).
    /// `false` on timeout.
    pub async fn wait_connection_count(&self, n: usize, timeout: Duration) -> bool {
        self.ws
            .events
            .wait_for(timeout, || (self.ws.connection_count() >= n).then_some(()))
            .await
            .is_some()
    }

    /// Every TCP accept on the WebSocket port, rejected ones included.
    pub fn connect_attempts(&self) -> Vec<Instant> {
        self.ws.connect_attempts()
    }

    /// Wait until at least `n` TCP accepts happened on the WebSocket port. `false` on timeout.
    pub async fn wait_connect_attempts(&self, n: usize, timeout: Duration) -> bool {
        self.ws
            .events
            .wait_for(timeout, || (self.ws.attempt_count() >= n).then_some(()))
            .await
            .is_some()
    }

    /// Handshakes of every successful connection, oldest first.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.ws.handshakes()
    }

    /// Refuse every following handshake with this HTTP status (`None` = accept again).
    pub fn set_reject_auth(&self, status: Option<u16>) {
        self.ws.set_reject(status);
    }

    // ===== WebSocket: traffic =====

    /// Send a text frame on the live connection; `false` if there is none or the write failed.
    pub async fn send_text(&self, text: &str) -> bool {
        self.send_raw_frame(Message::text(text)).await
    }

    /// Send a binary frame on the live connection.
    pub async fn send_binary(&self, data: &[u8]) -> bool {
        self.send_raw_frame(Message::binary(data.to_vec())).await
    }

    /// Send any message (ping, pong, close, raw frame) on the live connection.
    pub async fn send_raw_frame(&self, msg: Message) -> bool {
        let (ack, done) = oneshot::channel();
        if self.ws.command(|| Cmd::Send(msg, ack)).is_none() {
            return false;
        }
        matches!(
            tokio::time::timeout(COMMAND_TIMEOUT, done).await,
            Ok(Ok(true))
        )
    }

    /// Server-side close: close frame, then TCP close. Returns once the connection is gone.
    pub async fn drop_connection(&self) {
        self.end_connection(true).await
    }

    /// Close the TCP connection without a close frame (an abrupt network drop).
    pub async fn kill_connection(&self) {
        self.end_connection(false).await
    }

    async fn end_connection(&self, graceful: bool) {
        let (done, finished) = oneshot::channel();
        if self.ws.command(|| Cmd::Close { graceful, done }).is_some() {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, finished).await;
        }
    }

    /// Stop reading the socket and answering pings (and stop server pings); the TCP stays
    /// open. Simulates a dead network path. `false` resumes (buffered frames are then read).
    ///
    /// The setting is global: it covers the live connection and any new one until turned off
    /// (handshakes still succeed). Frames sent with `send_*` are still written. While on, a
    /// client that closes its side is not noticed (nothing reads), so `is_connected` stays
    /// `true` until the client reconnects (the new connection replaces it) or the hole is lifted.
    pub fn set_black_hole(&self, on: bool) {
        self.ws.set_black_hole(on);
    }

    /// Send a WS ping every `every` like the real cloud (15 s); `None` (default) = never.
    pub fn set_server_ping_interval(&self, every: Option<Duration>) {
        self.ws.set_server_ping(every);
    }

    /// WS ping frames received from the agent.
    pub fn pings_received(&self) -> usize {
        self.ws.pings()
    }

    /// WS pong frames received from the agent (answers to server pings).
    pub fn pongs_received(&self) -> usize {
        self.ws.pongs()
    }

    /// WS binary frames received from the agent.
    pub fn binary_frames_received(&self) -> usize {
        self.ws.binaries()
    }

    /// Text frames received from the agent, e.g. `Resto <id> ping`, oldest first.
    pub fn text_frames_received(&self) -> Vec<String> {
        self.ws.texts()
    }

    /// Wait until at least `n` pings have been received in total. `false` on timeout.
    pub async fn wait_pings(&self, n: usize, timeout: Duration) -> bool {
        self.ws
            .events
            .wait_for(timeout, || (self.ws.pings() >= n).then_some(()))
            .await
            .is_some()
    }

    /// Wait until at least `n` pongs have been received in total. `false` on timeout.
    pub async fn wait_pongs(&self, n: usize, timeout: Duration) -> bool {
        self.ws
            .events
            .wait_for(timeout, || (self.ws.pongs() >= n).then_some(()))
            .await
            .is_some()
    }

    /// Wait for a received text frame containing `needle` (earlier ones count).
    pub async fn wait_text_containing(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.ws
            .events
            .wait_for(timeout, || self.ws.find_text(needle))
            .await
    }

    // ===== Callbacks =====

    /// The oldest callback not yet returned by `next_callback` / `callback_for`.
    pub async fn next_callback(&self, timeout: Duration) -> Option<Callback> {
        self.http
            .events
            .wait_for(timeout, || self.http.take(|_| true))
            .await
    }

    /// The oldest unreturned callback carrying this `rID`; other callbacks stay queued.
    pub async fn callback_for(&self, rid: &str, timeout: Duration) -> Option<Callback> {
        self.http
            .events
            .wait_for(timeout, || {
                self.http.take(|c| c.rid.as_deref() == Some(rid))
            })
            .await
    }

    /// `send_text(frame_json)` then `callback_for(rid)`; `None` if there is no connection.
    pub async fn request(
        &self,
        frame_json: &str,
        rid: &str,
        timeout: Duration,
    ) -> Option<Callback> {
        if !self.send_text(frame_json).await {
            return None;
        }
        self.callback_for(rid, timeout).await
    }

    /// Answers for the next callbacks, in order (appended to what is queued); after the
    /// script runs out, `200` again.
    pub fn push_responses(&self, script: &[Reply]) {
        self.http.push_responses(script);
    }

    /// Drop the answers still queued by `push_responses` (later callbacks get `200`).
    pub fn clear_responses(&self) {
        self.http.clear_responses();
    }

    /// End every callback held by [`Reply::Hang`] now, by resetting its connection (the
    /// client sees a network error at once), and answer every one held by [`Reply::Hold`].
    /// Those that start later are not affected.
    pub fn release_hangs(&self) {
        self.http.release_hangs();
    }

    /// Callback requests received (POSTs, and requests too malformed to have a method),
    /// failed ones included.
    pub fn callback_attempts(&self) -> usize {
        self.http.attempts()
    }

    /// Requests to the callback port with another method than POST (answered 405; not
    /// callbacks): the `HEAD` of `check --online`.
    pub fn other_http_requests(&self) -> usize {
        self.http.other_requests()
    }

    /// TCP connections accepted on the callback port (keep-alive reuse keeps this low).
    pub fn callback_connections(&self) -> u64 {
        self.http.connections()
    }

    /// Wait until at least `n` requests have been recorded in total (consumed or not).
    /// `false` on timeout.
    pub async fn wait_callback_count(&self, n: usize, timeout: Duration) -> bool {
        self.http
            .events
            .wait_for(timeout, || (self.http.recorded() >= n).then_some(()))
            .await
            .is_some()
    }

    /// Every recorded request, oldest first (bounded, see [`http::MAX_RECORDED`]).
    pub fn all_callbacks(&self) -> Vec<Callback> {
        self.http.all()
    }
}

/// Bind `127.0.0.1:port`, retrying `AddrInUse` for up to 2 s (there is no event for "the old
/// listener task has dropped its socket", so this polls with a deadline).
async fn bind_retry(port: u16) -> std::io::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            r => return r,
        }
    }
}
