//! Delivering answers: a signed HTTP POST to `<callback_url>/<operation>`.
//!
//! The body arrives here already serialised and signed ([`SignedBody`]); this module only moves
//! those exact bytes. Policy (docs/protocol.md §2.3; [inferred] where the cloud's docs are
//! silent):
//! - **Delivered means a 2xx status line.** Once one is read, nothing is posted again for that
//!   callback, whatever happens to the rest of the response (no length, a missing TLS
//!   close_notify, invalid framing, a timeout).
//! - **An attempt** is one request on the wire and its response (connect, TLS, write, read,
//!   any 307/308 hops), bounded by `[callback] attempt_timeout_secs` (10 s) and the deadline.
//!   Its timer starts when the request has a connection slot: the wait for a free slot
//!   (`max_connections`) is not part of it. That wait is bounded by the callback's deadline,
//!   counted (metrics, `status`), and never causes a repost.
//! - **Retried**, after a doubling delay on tokio timers (no thread or connection held) until
//!   the deadline, `deadline_secs` (80 s) after the request arrived: no response (network
//!   error, timeout, a connection closed before any response byte), a response that is not
//!   HTTP/1.x, 5xx, 408 and 429 (the server did not process the request). Nothing is sent
//!   after the deadline.
//! - **Resent at once, within the attempt**, only when the server cannot have seen the request:
//!   a reused keep-alive connection turned out closed before any response byte (an idle
//!   connection is also looked at before reuse, `pool.rs`). Never after a response byte.
//! - **Final**: any other 4xx (the error body is logged, bounded); 3xx other than 307/308;
//!   307/308 that cannot be followed ([`redirect`]); a server that speaks only HTTP/2.
//! - A body above `max_body_bytes` is refused before any byte is sent.
//!
//! The transport is our own small async HTTP/1.1 client on tokio and tokio-rustls rather than
//! a general-purpose blocking client: the header names go on the wire exactly as the protocol
//! spells them (`restoId`), the host is resolved once per TTL rather than on a new thread per
//! request, and no thread is held while a request or a retry waits. docs/design.md gives the
//! reasons in full. Files: [`pool`] (connections, the wait for one), [`connect`] (addresses
//! raced, TLS), [`http`] (one exchange), [`response`] and [`head`] (reading the answer),
//! [`redirect`].
//!
//! [`Deliver`] is the seam the dispatcher calls through; tests and the fuzz target plug a stub.

pub mod connect;
pub mod head;
pub mod http;
pub mod io;
pub mod pool;
pub mod redirect;
pub mod response;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::body_stream::StreamBody;
use crate::config::{Config, Endpoint};
use crate::sign::SignedBody;
use connect::ConnectError;
use http::Body;
use io::{ExchangeError, Failure, Response};
pub use pool::PoolStats;
use pool::{Lease, Pool};

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("body of {size} bytes exceeds max_body_bytes ({cap})")]
    TooLarge { size: usize, cap: usize },
    #[error("cloud refused the callback with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("cloud redirected the callback: {0}")]
    Redirected(String),
    #[error("callback host does not speak HTTP/1.1: {0}")]
    Protocol(String),
    #[error("deadline passed after {attempts} attempt(s); last error: {last}")]
    DeadlinePassed { attempts: u32, last: String },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("callback client: {0}")]
    Setup(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub attempts: u32,
    pub status: u16,
}

/// What a callback carries: a signed body in memory, or a body too large to hold (a menu of
/// any size), generated twice from one read transaction: the first pass computed the HMAC and
/// the length, each exchange's second pass streams the same bytes after a head with that
/// `Content-Length` ([`crate::body_stream`]). The transport writes the head from
/// [`Payload::signature`] and [`Payload::len`] and then the bytes.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    Bytes(&'a SignedBody),
    Stream(&'a StreamBody),
}

impl Payload<'_> {
    pub fn len(&self) -> usize {
        match self {
            Payload::Bytes(b) => b.len(),
            Payload::Stream(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn signature(&self) -> &str {
        match self {
            Payload::Bytes(b) => b.signature(),
            Payload::Stream(s) => s.signature(),
        }
    }
    fn body(&self) -> Body<'_> {
        match self {
            Payload::Bytes(b) => Body::Bytes(b.body()),
            Payload::Stream(s) => Body::Stream(s),
        }
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that delivers a signed body by a deadline: the real client, or a test stub.
pub trait Deliver: Send + Sync {
    fn deliver<'a>(
        &'a self,
        path: &'a str,
        body: &'a SignedBody,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>>;

    /// Deliver a streamed body (menuInfo past `max_body_bytes`). A transport that cannot
    /// stream refuses it (the dispatcher then answers FAIL `ANSWER_TOO_LARGE`).
    fn deliver_stream<'a>(
        &'a self,
        _path: &'a str,
        body: &'a StreamBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        let size = body.len();
        Box::pin(async move { Err(CallbackError::TooLarge { size, cap: 0 }) })
    }

    /// How callbacks waited for a free connection (the real client only).
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }
}

pub struct CallbackClient {
    pool: Pool,
    resto_id: String,
    cfg: crate::config::CallbackConfig,
    max_body: usize,
    /// The last redirect warned about: a redirect is logged as a warning once, not per callback.
    warned: Mutex<Option<String>>,
}

/// How one attempt ended.
enum Outcome {
    Delivered(u16),
    Retry(String),
    Final(CallbackError),
}

impl CallbackClient {
    pub fn new(cfg: &Config) -> Result<Arc<Self>, CallbackError> {
        let ep = Endpoint::parse(&cfg.callback_url)
            .map_err(|e| CallbackError::Setup(format!("callback_url: {e}")))?;
        // Built even for an http:// callback_url, so a bad ca_file is refused at start (and an
        // https redirect can be followed).
        let tls = crate::tls::callback_client_config(cfg.ca_file.as_deref())?;
        let pool = Pool::new(
            ep,
            tls,
            cfg.callback.max_connections,
            Duration::from_secs(cfg.callback.dns_ttl_secs),
        )
        .map_err(CallbackError::Setup)?;
        Ok(Arc::new(CallbackClient {
            pool,
            resto_id: cfg.resto_id.clone(),
            cfg: cfg.callback.clone(),
            max_body: cfg.limits.max_body_bytes,
            warned: Mutex::new(None),
        }))
    }

    pub fn url_for(&self, path: &str) -> String {
        let ep = self.pool.endpoint();
        ep.url_for(&ep.target(path))
    }

    /// POST `body` to `<callback_url>/<path>`, retrying until `deadline`.
    pub async fn post(
        &self,
        path: &str,
        body: Payload<'_>,
        deadline: Instant,
    ) -> Result<Delivered, CallbackError> {
        if matches!(body, Payload::Bytes(_)) && body.len() > self.max_body {
            return Err(CallbackError::TooLarge {
                size: body.len(),
                cap: self.max_body,
            });
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        let mut delay = Duration::from_millis(self.cfg.retry_initial_ms);
        let max_delay = Duration::from_millis(self.cfg.retry_max_ms);
        let per_attempt = Duration::from_secs(self.cfg.attempt_timeout_secs);
        let mut attempts = 0u32;
        let mut last = String::from("no attempt made");
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(CallbackError::DeadlinePassed { attempts, last });
            }
            // Waiting for a free connection is not part of an attempt (see the module's doc).
            let Ok(lease) = self.pool.lease(deadline).await else {
                let mut why = format!(
                    "no free connection to the callback host before the deadline (all {} in use: \
                     the cloud answers slowly, or [callback] max_connections is too low)",
                    self.pool.stats().max_connections
                );
                if attempts > 0 {
                    why = format!("{why}; before that: {last}");
                }
                return Err(CallbackError::DeadlinePassed {
                    attempts,
                    last: why,
                });
            };
            let until = (tokio::time::Instant::now() + per_attempt).min(deadline);
            attempts += 1;
            let outcome = self.attempt(&lease, path, body, until).await;
            drop(lease);
            crate::metrics::callback_attempt(matches!(outcome, Outcome::Delivered(_)));
            match outcome {
                Outcome::Delivered(status) => return Ok(Delivered { attempts, status }),
                Outcome::Final(e) => return Err(e),
                Outcome::Retry(why) => {
                    log_warn!("callback {path}: attempt {attempts} failed: {why}; retrying");
                    last = why;
                }
            }
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(CallbackError::DeadlinePassed { attempts, last });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_delay);
        }
    }

    /// One attempt, by `until`: the request on a pooled connection, then on each 307/308 hop.
    async fn attempt(
        &self,
        lease: &Lease,
        path: &str,
        body: Payload<'_>,
        until: tokio::time::Instant,
    ) -> Outcome {
        let home = self.pool.endpoint();
        let mut hop: Option<redirect::Hop> = None;
        let mut hops = 0;
        loop {
            let (ep, target) = match &hop {
                None => (home, home.target(path)),
                Some(h) => (&h.to, h.target.clone()),
            };
            let head = http::request_head(
                &target,
                &ep.authority,
                &self.resto_id,
                body.signature(),
                body.len(),
            );
            let r = if ep.same_origin(home) {
                self.pooled(lease, &head, body, until).await
            } else {
                self.elsewhere(ep, &head, body, until).await
            };
            let resp = match r {
                Ok(resp) => resp,
                Err(o) => return o,
            };
            if let Some(note) = &resp.note {
                log_debug!("callback {path}: HTTP {} ({note})", resp.status);
            }
            let status = resp.status;
            match status {
                200..=299 => return Outcome::Delivered(status),
                307 | 308 => match redirect::follow(status, resp.location.as_deref(), ep, hops) {
                    Ok(next) => {
                        self.warn_redirect(path, status, &ep.url_for(&target), &next.url());
                        hops += 1;
                        hop = Some(next);
                    }
                    Err(why) => return Outcome::Final(CallbackError::Redirected(why)),
                },
                300..=399 => {
                    let why = redirect::refused(status, resp.location.as_deref());
                    return Outcome::Final(CallbackError::Redirected(why));
                }
                408 | 429 => return Outcome::Retry(format!("HTTP {status} {}", resp.body)),
                400..=499 => {
                    return Outcome::Final(CallbackError::Rejected {
                        status,
                        body: resp.body,
                    })
                }
                _ => return Outcome::Retry(format!("HTTP {status} {}", resp.body)),
            }
        }
    }

    /// The exchange on a connection of the pool (an idle one, or a new one), under the
    /// attempt's lease. Sent once more on a new connection when a reused one turns out closed
    /// before any response byte.
    async fn pooled(
        &self,
        _lease: &Lease,
        head: &[u8],
        body: Payload<'_>,
        until: tokio::time::Instant,
    ) -> Result<Response, Outcome> {
        let mut resent = false;
        loop {
            let next = if resent {
                self.pool.connect(until).await
            } else {
                self.pool.checkout(until).await
            };
            let mut conn = next.map_err(connect_failed)?;
            let r = exchange(&mut conn, head, body, self.cfg.max_response_bytes, until).await;
            match r {
                Ok(resp) => {
                    if resp.reusable {
                        self.pool.put(conn);
                    }
                    return Ok(resp);
                }
                Err(e) if e.failure == Failure::Closed && conn.reused && !resent => {
                    log_debug!(
                        "callback: a kept connection was closed by the server ({}); sent again on a new one",
                        e.message
                    );
                    resent = true;
                }
                Err(e) => return Err(exchange_failed(e)),
            }
        }
    }

    /// The exchange on a connection of its own, to another origin (a redirect's target).
    async fn elsewhere(
        &self,
        ep: &Endpoint,
        head: &[u8],
        body: Payload<'_>,
        until: tokio::time::Instant,
    ) -> Result<Response, Outcome> {
        let mut conn = self
            .pool
            .connect_to(ep, until)
            .await
            .map_err(connect_failed)?;
        exchange(&mut conn, head, body, self.cfg.max_response_bytes, until)
            .await
            .map_err(exchange_failed)
    }

    /// A followed redirect is a warning once (per distinct target), then a debug line.
    fn warn_redirect(&self, path: &str, status: u16, from: &str, to: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.as_deref() == Some(to) {
            log_debug!("callback {path}: HTTP {status} redirect from {from} to {to}, followed");
        } else {
            log_warn!(
                "callback {path}: HTTP {status} redirect from {from} to {to}, followed (same body and signature); \
                 set callback_url to the new location"
            );
            *warned = Some(to.to_string());
        }
    }
}

async fn exchange(
    conn: &mut pool::Conn,
    head: &[u8],
    body: Payload<'_>,
    max: usize,
    until: tokio::time::Instant,
) -> Result<Response, ExchangeError> {
    http::exchange(&mut *conn.io, &mut conn.rb, head, body.body(), max, until).await
}

fn connect_failed(e: ConnectError) -> Outcome {
    match e {
        ConnectError::Retry(m) => Outcome::Retry(m),
        ConnectError::Final(m) => Outcome::Final(CallbackError::Protocol(m)),
    }
}

fn exchange_failed(e: ExchangeError) -> Outcome {
    match e.failure {
        Failure::Http2 => Outcome::Final(CallbackError::Protocol(e.message)),
        _ => Outcome::Retry(e.message),
    }
}

impl Deliver for CallbackClient {
    fn deliver<'a>(
        &'a self,
        path: &'a str,
        body: &'a SignedBody,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        Box::pin(self.post(path, Payload::Bytes(body), deadline))
    }
    fn deliver_stream<'a>(
        &'a self,
        path: &'a str,
        body: &'a StreamBody,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        Box::pin(self.post(path, Payload::Stream(body), deadline))
    }
    fn pool_stats(&self) -> Option<PoolStats> {
        Some(self.pool.stats())
    }
}
