//! Where callbacks go and the connections that carry them.
//!
//! - The endpoint is `callback_url` parsed once by [`Endpoint::parse`] (the agent's one URL
//!   parser, `config/endpoint.rs`).
//! - The host is resolved once, with a timeout (the attempt's), and again after
//!   `[callback] dns_ttl_secs` (default 300 s) or after a failed connect. An IP literal is never
//!   resolved. One lookup runs at a time; the others wait for its result. (A lookup takes one
//!   thread of tokio's blocking pool for its duration: once per TTL, not once per request.)
//! - [`Pool`]: at most `[callback] max_connections` (default 4) requests are on the wire at
//!   once, each holding a [`Lease`]. Waiting for a lease is not part of any attempt: it is
//!   bounded by the callback's own deadline and counted ([`PoolStats`], the metrics and
//!   `status`), so a saturated pool is visible and never causes a repost.
//! - Idle keep-alive connections are kept up to [`IDLE_FOR`] and looked at before reuse
//!   ([`ReadBuf::check_idle`]): one that the server closed, or that holds bytes nobody asked
//!   for (a 408 sent before closing), is dropped and the next one (or a new one) is taken.
//!   Nothing was sent on it, so this is not a resend. `TCP_NODELAY` is set once per connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::connect::{self, ConnectError, MAX_ADDRS};
use super::io::{Io, ReadBuf};
use crate::config::Endpoint;

/// An idle connection older than this is closed rather than reused (servers commonly close
/// idle keep-alive connections after 60 s or more).
pub const IDLE_FOR: Duration = Duration::from_secs(30);

/// Resolve `host` (an IP literal is not looked up), by `until`.
pub async fn lookup(host: &str, port: u16, until: Instant) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = tokio::time::timeout_at(until, tokio::net::lookup_host((host, port))).await;
    let addrs: Vec<SocketAddr> = match found {
        Err(_) => return Err(format!("resolving {host} timed out")),
        Ok(Err(e)) => return Err(format!("cannot resolve {host}: {e}")),
        Ok(Ok(a)) => a.take(MAX_ADDRS).collect(),
    };
    if addrs.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(addrs)
}

/// The callback host's addresses, cached for a TTL.
pub struct Resolver {
    host: String,
    port: u16,
    ttl: Duration,
    literal: Option<IpAddr>,
    cached: tokio::sync::Mutex<Option<(Vec<SocketAddr>, Instant)>>,
}

impl Resolver {
    pub fn new(ep: &Endpoint, ttl: Duration) -> Resolver {
        Resolver {
            host: ep.host.clone(),
            port: ep.port,
            ttl,
            literal: ep.host.parse().ok(),
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The addresses, resolving (by `until`) if the cache is empty or older than the TTL.
    pub async fn addrs(&self, until: Instant) -> Result<Vec<SocketAddr>, String> {
        if let Some(ip) = self.literal {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let mut cached = tokio::time::timeout_at(until, self.cached.lock())
            .await
            .map_err(|_| format!("resolving {} timed out", self.host))?;
        if let Some((addrs, at)) = cached.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(addrs.clone());
            }
        }
        let addrs = lookup(&self.host, self.port, until).await?;
        *cached = Some((addrs.clone(), Instant::now()));
        Ok(addrs)
    }

    /// Forget the cached addresses (after a failed connect).
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cached.try_lock() {
            *c = None;
        }
    }
}

/// One open connection.
pub struct Conn {
    pub io: Box<dyn Io>,
    pub rb: ReadBuf,
    /// It carried a request before (a close before any response byte means the server closed
    /// it while idle: the request is sent once more on a new connection).
    pub reused: bool,
    idle_since: Instant,
}

impl Conn {
    fn new(io: Box<dyn Io>) -> Conn {
        Conn {
            io,
            rb: ReadBuf::default(),
            reused: false,
            idle_since: Instant::now(),
        }
    }
}

/// The right to have one request on the wire (held for the whole attempt, hops included).
pub struct Lease {
    _permit: OwnedSemaphorePermit,
}

/// How callbacks waited for a free connection, since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub max_connections: u64,
    /// Callbacks that found every connection busy and waited.
    pub waited: u64,
    /// Their waits added up, in milliseconds.
    pub wait_ms_total: u64,
    /// The longest single wait, in milliseconds.
    pub longest_wait_ms: u64,
    /// Callbacks whose deadline passed while they waited (they failed without an attempt).
    pub gave_up: u64,
    /// Callbacks waiting now.
    pub waiting: u64,
}

#[derive(Default)]
struct Waits {
    waited: AtomicU64,
    micros: AtomicU64,
    longest_micros: AtomicU64,
    gave_up: AtomicU64,
    waiting: AtomicU64,
}

/// Counts one waiter while it lives (a cancelled wait is uncounted too).
struct Waiting<'a>(&'a Waits);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
        crate::metrics::callback_pool_waiting(-1);
    }
}

pub struct Pool {
    ep: Endpoint,
    resolver: Resolver,
    config: Arc<rustls::ClientConfig>,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    open: Arc<Semaphore>,
    max: usize,
    idle: Mutex<Vec<Conn>>,
    waits: Waits,
}

impl Pool {
    pub fn new(
        ep: Endpoint,
        config: Arc<rustls::ClientConfig>,
        max_connections: usize,
        dns_ttl: Duration,
    ) -> Result<Pool, String> {
        let tls = if ep.tls() {
            Some(connector(&config, &ep.host)?)
        } else {
            None
        };
        let max = max_connections.max(1);
        Ok(Pool {
            resolver: Resolver::new(&ep, dns_ttl),
            ep,
            config,
            tls,
            open: Arc::new(Semaphore::new(max)),
            max,
            idle: Mutex::new(Vec::new()),
            waits: Waits::default(),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// A lease, waiting for one until `deadline` (the callback's, not an attempt's). `Err`
    /// when the deadline passed first.
    pub async fn lease(&self, deadline: Instant) -> Result<Lease, ()> {
        if let Ok(permit) = self.open.clone().try_acquire_owned() {
            return Ok(Lease { _permit: permit });
        }
        let w = &self.waits;
        w.waiting.fetch_add(1, Relaxed);
        crate::metrics::callback_pool_waiting(1);
        let counted = Waiting(w);
        let start = Instant::now();
        let got = tokio::time::timeout_at(deadline, self.open.clone().acquire_owned()).await;
        let waited = start.elapsed();
        drop(counted);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        w.waited.fetch_add(1, Relaxed);
        w.micros.fetch_add(micros, Relaxed);
        w.longest_micros.fetch_max(micros, Relaxed);
        let permit = got.ok().and_then(Result::ok);
        if permit.is_none() {
            w.gave_up.fetch_add(1, Relaxed);
        }
        crate::metrics::callback_pool_waited(waited, permit.is_none());
        permit.map(|p| Lease { _permit: p }).ok_or(())
    }

    pub fn stats(&self) -> PoolStats {
        let w = &self.waits;
        PoolStats {
            max_connections: self.max as u64,
            waited: w.waited.load(Relaxed),
            wait_ms_total: w.micros.load(Relaxed) / 1000,
            longest_wait_ms: w.longest_micros.load(Relaxed) / 1000,
            gave_up: w.gave_up.load(Relaxed),
            waiting: w.waiting.load(Relaxed),
        }
    }

    /// A connection by `until`: an idle one that is still quiet, else a new one.
    pub async fn checkout(&self, until: Instant) -> Result<Conn, ConnectError> {
        while let Some(mut c) = self.pop_idle() {
            match c.rb.check_idle(&mut *c.io) {
                Ok(()) => return Ok(c),
                Err(why) => log_debug!("callback: idle connection dropped before reuse: {why}"),
            }
        }
        self.connect(until).await
    }

    fn pop_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            if c.idle_since.elapsed() < IDLE_FOR {
                return Some(c);
            }
        }
        None
    }

    /// Keep a connection that may carry the next request.
    pub fn put(&self, mut conn: Conn) {
        conn.reused = true;
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max {
            idle.push(conn);
        }
    }

    /// A new connection to the callback host (never a pooled one), by `until`.
    pub async fn connect(&self, until: Instant) -> Result<Conn, ConnectError> {
        let addrs = self
            .resolver
            .addrs(until)
            .await
            .map_err(ConnectError::Retry)?;
        let tcp = match connect::tcp(&addrs, until).await {
            Ok(t) => t,
            Err(e) => {
                self.resolver.invalidate();
                return Err(ConnectError::Retry(e));
            }
        };
        let io = connect::wrap(tcp, self.tls.as_ref(), &self.ep.host, until).await?;
        Ok(Conn::new(io))
    }

    /// A connection to another origin (a redirect's target), never pooled, by `until`.
    pub async fn connect_to(&self, ep: &Endpoint, until: Instant) -> Result<Conn, ConnectError> {
        let addrs = lookup(&ep.host, ep.port, until)
            .await
            .map_err(ConnectError::Retry)?;
        let tcp = connect::tcp(&addrs, until)
            .await
            .map_err(ConnectError::Retry)?;
        let tls = match ep.tls() {
            true => Some(connector(&self.config, &ep.host).map_err(ConnectError::Final)?),
            false => None,
        };
        let io = connect::wrap(tcp, tls.as_ref(), &ep.host, until).await?;
        Ok(Conn::new(io))
    }
}

fn connector(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), String> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
    Ok((tokio_rustls::TlsConnector::from(config.clone()), name))
}
