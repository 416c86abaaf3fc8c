//! The one WebSocket to the cloud: connect, keep alive, hand text frames to dispatch, reconnect.
//!
//! ```text
//! loop {
//!     wait for the backoff (never two attempts closer than backoff_floor)
//!     connect within connect_timeout (TCP + TLS + HTTP upgrade)
//!     session: read frames ─► Dispatcher::submit   (never waits on SQLite or HTTP)
//!              every ping_interval: our WS ping     (tungstenite answers the server's pings)
//!              every app_ping_interval: "Resto <id> ping" text frame
//!              nothing heard for dead_after ─► the link is dead
//! }
//! ```
//! A rejected handshake (HTTP 401/403) is reported as a credentials problem, distinct from a
//! network problem, and still retried on the backoff schedule (credentials may be fixed in the
//! cloud's admin while the agent runs).

#![deny(clippy::string_slice, clippy::indexing_slicing)]
pub mod backoff;
pub mod handshake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::time::{sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::shutdown::Shutdown;
use backoff::Backoff;

/// Who wants to know about the link (the status board; tests).
pub trait LinkEvents: Send + Sync {
    fn link_up(&self);
    fn link_down(&self, reason: &str);
    fn connecting(&self) {}
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    Shutdown,
    Closed(String),
    Dead(Duration),
    Error(String),
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Shutdown => write!(f, "shutdown"),
            EndReason::Closed(why) => write!(f, "closed by the cloud ({why})"),
            EndReason::Dead(d) => write!(
                f,
                "nothing heard for {}s, link treated as dead",
                d.as_secs()
            ),
            EndReason::Error(e) => write!(f, "{e}"),
        }
    }
}

/// A connect failure in words a technician can act on (401/403 name the credentials).
fn describe_connect_error(e: &WsError) -> String {
    match e {
        WsError::Http(resp) if matches!(resp.status().as_u16(), 401 | 403) => format!(
            "credentials rejected by the cloud (HTTP {}): check resto_id, the secret key and pos_system",
            resp.status().as_u16()
        ),
        WsError::Http(resp) => format!("handshake refused with HTTP {}", resp.status().as_u16()),
        // rustls errors surface wrapped in io::Error (InvalidData): name them as TLS failures.
        WsError::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => {
            format!("TLS handshake failed: {io}{}", crate::tls::ca_hint(io))
        }
        WsError::Io(io) => format!("network error: {} ({})", io.kind(), io),
        WsError::Tls(t) => format!("TLS error: {t}"),
        WsError::Url(u) => format!("bad ws_url: {u}"),
        other => format!("{other}"),
    }
}

pub struct Link {
    cfg: Arc<Config>,
    dispatcher: Dispatcher,
    events: Arc<dyn LinkEvents>,
}

impl Link {
    pub fn new(cfg: Arc<Config>, dispatcher: Dispatcher, events: Arc<dyn LinkEvents>) -> Self {
        Link {
            cfg,
            dispatcher,
            events,
        }
    }

    /// Runs until shutdown. Never returns an error: every failure is logged and retried.
    pub async fn run(self, mut shutdown: Shutdown) {
        let l = &self.cfg.link;
        let mut backoff = Backoff::new(
            Duration::from_millis(l.backoff_floor_ms),
            Duration::from_millis(l.backoff_cap_ms),
            backoff::seed(),
        );
        let mut last_attempt: Option<Instant> = None;
        loop {
            if let Some(prev) = last_attempt {
                let at = prev + backoff.next_delay();
                log_debug!(
                    "link: next connection attempt in {} ms",
                    at.saturating_duration_since(Instant::now()).as_millis()
                );
                tokio::select! {
                    _ = shutdown.recv() => return,
                    _ = sleep_until(at.into()) => {}
                }
            }
            if shutdown.is_shutdown() {
                return;
            }
            last_attempt = Some(Instant::now());
            self.events.connecting();
            // Both futures are large (TLS and the HTTP upgrade; the session's buffers): on the
            // heap, they are not built on the event loop's stack and copied in.
            let connect = Box::pin(self.connect());
            let ws = tokio::select! {
                _ = shutdown.recv() => return,
                r = timeout(Duration::from_secs(l.connect_timeout_secs), connect) => r,
            };
            let ws = match ws {
                Ok(Ok(ws)) => ws,
                Ok(Err((credentials, msg))) => {
                    crate::metrics::connect_failed(credentials);
                    log_error!("link: connect to {} failed: {msg}", self.cfg.ws_url);
                    self.events.link_down(&msg);
                    continue;
                }
                Err(_) => {
                    crate::metrics::connect_failed(false);
                    let msg = format!("connect timed out after {}s", l.connect_timeout_secs);
                    log_error!("link: {msg} ({})", self.cfg.ws_url);
                    self.events.link_down(&msg);
                    continue;
                }
            };
            let up_at = Instant::now();
            log_info!("link: connected to {}", self.cfg.ws_url);
            crate::metrics::link_up();
            self.events.link_up();
            if self.cfg.compat.version_info_on_connect {
                // Unprompted versionInfo after a connect ([inferred] to be welcome, see §5.13).
                let (secs, nanos) = crate::clock::unix_now();
                let frame = format!(
                    r#"{{"rID":"agent-connect-{secs}.{nanos:09}","operation":"versionInfo"}}"#
                );
                self.dispatcher.submit(frame.as_bytes(), Instant::now());
            }
            let reason = Box::pin(self.session(ws, &mut shutdown)).await;
            crate::metrics::link_down();
            let lasted = up_at.elapsed();
            if lasted >= Duration::from_secs(l.backoff_reset_after_secs) {
                backoff.reset();
            }
            match &reason {
                EndReason::Shutdown => {
                    log_info!("link: closed for shutdown");
                    self.events.link_down("shutdown");
                    return;
                }
                r => {
                    log_warn!("link: lost after {}s: {r}", lasted.as_secs());
                    self.events.link_down(&r.to_string());
                }
            }
        }
    }

    /// Connect; on failure `(credentials refused, message)`.
    async fn connect(&self) -> Result<WsStream, (bool, String)> {
        let req = handshake::request(&self.cfg).map_err(|e| (false, e.to_string()))?;
        let connector = handshake::connector(&self.cfg).map_err(|e| (false, e.to_string()))?;
        let cfg = handshake::ws_config(&self.cfg);
        match tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(cfg),
            true,
            Some(connector),
        )
        .await
        {
            Ok((ws, _resp)) => Ok(ws),
            Err(e) => {
                let refused =
                    matches!(&e, WsError::Http(r) if matches!(r.status().as_u16(), 401 | 403));
                Err((refused, describe_connect_error(&e)))
            }
        }
    }

    async fn session(&self, ws: WsStream, shutdown: &mut Shutdown) -> EndReason {
        let l = &self.cfg.link;
        let (mut sink, mut stream) = ws.split();
        let write_timeout = Duration::from_secs(l.connect_timeout_secs);
        let dead_after = Duration::from_secs(l.dead_after_secs);
        let mut ping = tokio::time::interval(Duration::from_secs(l.ping_interval_secs));
        let mut app_ping = tokio::time::interval(Duration::from_secs(l.app_ping_interval_secs));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        app_ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate: skip it
        app_ping.tick().await;
        let app_ping_text = format!("Resto {} ping", self.cfg.resto_id);
        let mut last_heard = Instant::now();

        let reason = loop {
            let outgoing = tokio::select! {
                _ = shutdown.recv() => break EndReason::Shutdown,
                _ = sleep_until((last_heard + dead_after).into()) => break EndReason::Dead(dead_after),
                msg = stream.next() => {
                    last_heard = Instant::now();
                    match msg {
                        None => break EndReason::Closed("connection ended".into()),
                        Some(Err(e)) => break EndReason::Error(read_error(&e)),
                        Some(Ok(Message::Text(t))) => { self.dispatcher.submit(t.as_bytes(), last_heard); None }
                        Some(Ok(Message::Binary(b))) => {
                            log_warn!("link: dropped a binary frame of {} bytes (the protocol uses text frames)", b.len());
                            None
                        }
                        Some(Ok(Message::Ping(_))) => {
                            // tungstenite has queued the pong; flush it now rather than on the next write.
                            Some(None)
                        }
                        Some(Ok(Message::Pong(_))) | Some(Ok(Message::Frame(_))) => None,
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_else(|| "no reason".into());
                            break EndReason::Closed(why);
                        }
                    }
                }
                _ = ping.tick() => Some(Some(Message::Ping(Default::default()))),
                _ = app_ping.tick(), if l.app_ping => Some(Some(Message::text(app_ping_text.clone()))),
            };
            let res = match outgoing {
                None => continue,
                Some(None) => timeout(write_timeout, sink.flush()).await,
                Some(Some(m)) => timeout(write_timeout, sink.send(m)).await,
            };
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break EndReason::Error(format!("write failed: {e}")),
                Err(_) => {
                    break EndReason::Error(format!(
                        "write blocked for {}s",
                        write_timeout.as_secs()
                    ))
                }
            }
        };
        if reason == EndReason::Shutdown {
            let close = Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "agent shutting down".into(),
            }));
            let _ = timeout(Duration::from_secs(2), sink.send(close)).await;
            // Give the server a moment to answer the close; bounded.
            let _ = timeout(Duration::from_secs(2), async {
                while let Some(Ok(_)) = stream.next().await {}
            })
            .await;
        }
        reason
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn read_error(e: &WsError) -> String {
    match e {
        WsError::Capacity(c) => {
            format!("frame over the size cap ({c}); the protocol requires closing the link")
        }
        WsError::Protocol(p) => format!("protocol error: {p}"),
        WsError::Utf8(_) => "text frame is not valid UTF-8".into(),
        other => format!("read failed: {other}"),
    }
}
