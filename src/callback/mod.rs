//! Delivering answers: a signed HTTP POST to `<callback_url>/<operation>`.
//!
//! The body arrives here already serialised and signed ([`SignedBody`]); this module only moves
//! those exact bytes. Policy (protocol reference §2.3, [inferred] where the docs are silent):
//! - per-attempt timeout `[callback] attempt_timeout_secs` (10 s), clipped to the deadline;
//! - network errors and 5xx are retried with doubling delays (tokio timers: a waiting retry
//!   holds no thread and no connection) until the deadline, which is `deadline_secs` (80 s)
//!   after the request arrived; nothing is sent after it;
//! - 4xx is final: the cloud's error body is logged (bounded) and not retried;
//! - a body above `max_body_bytes` is refused before any byte is sent.
//!
//! The transport is our own small async HTTP/1.1 client ([`http`], [`pool`]) on tokio and
//! tokio-rustls rather than a general-purpose blocking client: the header names go on the wire
//! exactly as the protocol spells them (`restoId`), the host is resolved once per TTL rather
//! than on a new thread per request, and no thread is held while a request or a retry waits.
//! docs/design.md gives the reasons in full.
//!
//! [`Deliver`] is the seam the dispatcher calls through; tests and the fuzz target plug a stub.

pub mod http;
pub mod pool;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::body_stream::StreamBody;
use crate::config::Config;
use crate::sign::SignedBody;
use pool::{Endpoint, Pool};

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("body of {size} bytes exceeds max_body_bytes ({cap})")]
    TooLarge { size: usize, cap: usize },
    #[error("cloud refused the callback with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
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

/// What a callback carries: a signed body in memory, or a body too large to hold (issue 14: a
/// menu of any size), generated twice from one read transaction: the first pass computed the
/// HMAC and the length, each attempt's second pass streams the same bytes after a head with
/// that `Content-Length` ([`crate::body_stream`]). The transport writes the head from
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
}

pub struct CallbackClient {
    pool: Pool,
    resto_id: String,
    cfg: crate::config::CallbackConfig,
    max_body: usize,
}

impl CallbackClient {
    pub fn new(cfg: &Config) -> Result<Arc<Self>, CallbackError> {
        let ep = Endpoint::parse(&cfg.callback_url).map_err(CallbackError::Setup)?;
        // Built even for an http:// callback_url, so a bad ca_file is refused at start.
        let tls = Some(crate::tls::callback_client_config(cfg.ca_file.as_deref())?);
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
        }))
    }

    pub fn url_for(&self, path: &str) -> String {
        let ep = self.pool.endpoint();
        let scheme = if ep.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", ep.authority, ep.target(path))
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
        let ep = self.pool.endpoint();
        let head = http::request_head(
            &ep.target(path),
            &ep.authority,
            &self.resto_id,
            body.signature(),
            body.len(),
        );
        let deadline = tokio::time::Instant::from_std(deadline);
        let mut delay = Duration::from_millis(self.cfg.retry_initial_ms);
        let max_delay = Duration::from_millis(self.cfg.retry_max_ms);
        let per_attempt = Duration::from_secs(self.cfg.attempt_timeout_secs);
        let mut attempts = 0u32;
        let mut last = String::from("no attempt made");
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(CallbackError::DeadlinePassed { attempts, last });
            }
            let budget = per_attempt.min(deadline - now);
            attempts += 1;
            let r = tokio::time::timeout(budget, self.attempt(&head, body, budget)).await;
            let r = r.unwrap_or_else(|_| Err(format!("timed out after {budget:?}")));
            crate::metrics::callback_attempt(matches!(&r, Ok((s, _)) if (200..300).contains(s)));
            match r {
                Ok((status, _)) if (200..300).contains(&status) => {
                    return Ok(Delivered { attempts, status })
                }
                Ok((status, body)) if (400..500).contains(&status) => {
                    return Err(CallbackError::Rejected { status, body });
                }
                Ok((status, body)) => {
                    last = format!("HTTP {status} {body}");
                    log_warn!("callback {path}: attempt {attempts} got HTTP {status}, retrying");
                }
                Err(e) => {
                    last = e;
                    log_warn!("callback {path}: attempt {attempts} failed: {last}");
                }
            }
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(CallbackError::DeadlinePassed { attempts, last });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_delay);
        }
    }

    /// One POST: `(status, error body)`. A request that got no response on a reused
    /// keep-alive connection (the server closed it while idle) is sent once more at once on a
    /// fresh connection, within the same attempt.
    async fn attempt(
        &self,
        head: &[u8],
        body: Payload<'_>,
        budget: Duration,
    ) -> Result<(u16, String), String> {
        let mut lease = self.pool.get(budget).await?;
        let max = self.cfg.max_response_bytes;
        let mut r = send(&mut lease, head, body, max).await;
        if matches!(&r, Err(e) if e.no_response && lease.conn.reused) {
            self.pool.fresh(&mut lease, budget).await?;
            r = send(&mut lease, head, body, max).await;
        }
        let resp = r.map_err(|e| e.message)?;
        if resp.reusable {
            self.pool.put(lease);
        }
        let text = if resp.status >= 400 {
            resp.body
        } else {
            String::new()
        };
        Ok((resp.status, text))
    }
}

/// One exchange on a leased connection; a streamed body is generated again for it.
async fn send(
    lease: &mut pool::Lease,
    head: &[u8],
    body: Payload<'_>,
    max: usize,
) -> Result<http::Response, http::ExchangeError> {
    let (io, rb) = (&mut *lease.conn.io, &mut lease.conn.rb);
    match body {
        Payload::Bytes(b) => http::exchange(io, rb, head, b.body(), max).await,
        Payload::Stream(s) => http::exchange_stream(io, rb, head, s, max).await,
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
}
