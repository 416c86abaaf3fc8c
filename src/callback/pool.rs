//! Where callbacks go and the connections that carry them.
//!
//! - [`Endpoint`]: `callback_url` split once into scheme, host, port and base path.
//! - The host is resolved once, with a timeout (the attempt's budget), and again after
//!   `[callback] dns_ttl_secs` (default 300 s) or after a failed connect. An IP literal is never
//!   resolved. One lookup runs at a time; the others wait for its result. (A lookup takes one
//!   thread of tokio's blocking pool for its duration: once per TTL, not once per request.)
//! - [`Pool`]: at most `[callback] max_connections` (default 4) connections are open at once;
//!   idle keep-alive connections are kept for reuse up to [`IDLE_FOR`]. `TCP_NODELAY` is set
//!   once per connection, never per request.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::http::{Io, ReadBuf};

/// An idle connection older than this is closed rather than reused (servers commonly close
/// idle keep-alive connections after 60 s or more).
pub const IDLE_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    /// Host name or IP, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// `Host:` header value.
    pub authority: String,
    /// Path prefix without a trailing slash (`/callback`), possibly empty.
    pub base_path: String,
}

impl Endpoint {
    /// Parse `http(s)://host[:port][/path]`. `Config::validate` has checked the scheme.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let bad = || format!("callback_url {url:?} is not http(s)://host[:port]/path");
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => default_port,
                None => return Err(bad()),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Endpoint {
            tls,
            host,
            port,
            authority: authority.to_string(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The request target for `<callback_url>/<path>`.
    pub fn target(&self, path: &str) -> String {
        format!("{}/{}", self.base_path, path.trim_start_matches('/'))
    }
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

    /// The addresses, resolving if the cache is empty or older than the TTL.
    pub async fn addrs(&self, budget: Duration) -> Result<Vec<SocketAddr>, String> {
        if let Some(ip) = self.literal {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let mut cached = self.cached.lock().await;
        if let Some((addrs, at)) = cached.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(addrs.clone());
            }
        }
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(budget, lookup).await {
            Err(_) => return Err(format!("resolving {} timed out", self.host)),
            Ok(Err(e)) => return Err(format!("cannot resolve {}: {e}", self.host)),
            Ok(Ok(a)) => a.take(16).collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{} has no address", self.host));
        }
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
    /// It carried a request before (a failure with no response may be a stale keep-alive).
    pub reused: bool,
    idle_since: Instant,
}

/// A connection checked out of the pool; the permit bounds open connections.
pub struct Lease {
    pub conn: Conn,
    _permit: OwnedSemaphorePermit,
}

pub struct Pool {
    ep: Endpoint,
    resolver: Resolver,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    open: Arc<Semaphore>,
    max_idle: usize,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    pub fn new(
        ep: Endpoint,
        tls: Option<Arc<rustls::ClientConfig>>,
        max_connections: usize,
        dns_ttl: Duration,
    ) -> Result<Pool, String> {
        let tls = match tls {
            Some(cfg) if ep.tls => {
                let name = ServerName::try_from(ep.host.clone())
                    .map_err(|e| format!("callback_url host {:?}: {e}", ep.host))?;
                Some((tokio_rustls::TlsConnector::from(cfg), name))
            }
            _ => None,
        };
        Ok(Pool {
            resolver: Resolver::new(&ep, dns_ttl),
            ep,
            tls,
            open: Arc::new(Semaphore::new(max_connections.max(1))),
            max_idle: max_connections.max(1),
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.ep
    }

    /// A connection within `budget`: an idle one, else a new one.
    pub async fn get(&self, budget: Duration) -> Result<Lease, String> {
        let start = Instant::now();
        let permit = tokio::time::timeout(budget, self.open.clone().acquire_owned())
            .await
            .map_err(|_| "timed out waiting for a free connection".to_string())?
            .map_err(|_| "connection pool closed".to_string())?;
        if let Some(conn) = self.take_idle() {
            return Ok(Lease {
                conn,
                _permit: permit,
            });
        }
        let left = budget.saturating_sub(start.elapsed());
        let conn = self.connect(left).await?;
        Ok(Lease {
            conn,
            _permit: permit,
        })
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(c) = idle.pop() {
            if c.idle_since.elapsed() < IDLE_FOR {
                return Some(c);
            }
        }
        None
    }

    /// Return a connection that may carry the next request.
    pub fn put(&self, lease: Lease) {
        let mut conn = lease.conn;
        conn.reused = true;
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    /// A fresh connection (never a pooled one), for the retry after a stale keep-alive.
    pub async fn fresh(&self, lease: &mut Lease, budget: Duration) -> Result<(), String> {
        lease.conn = self.connect(budget).await?;
        Ok(())
    }

    async fn connect(&self, budget: Duration) -> Result<Conn, String> {
        let start = Instant::now();
        let addrs = self.resolver.addrs(budget).await?;
        let mut last = String::from("no address");
        for addr in addrs {
            let left = budget.saturating_sub(start.elapsed());
            match tokio::time::timeout(left, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => {
                    let _ = tcp.set_nodelay(true);
                    return self.wrap(tcp, budget.saturating_sub(start.elapsed())).await;
                }
                Ok(Err(e)) => last = format!("connecting to {addr}: {}", e.kind()),
                Err(_) => last = format!("connecting to {addr} timed out"),
            }
        }
        self.resolver.invalidate();
        Err(last)
    }

    async fn wrap(&self, tcp: TcpStream, budget: Duration) -> Result<Conn, String> {
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => {
                let hs = connector.connect(name.clone(), tcp);
                match tokio::time::timeout(budget, hs).await {
                    Err(_) => return Err("TLS handshake timed out".into()),
                    Ok(Err(e)) => {
                        return Err(format!(
                            "TLS handshake failed: {e} (for a private CA, set ca_file)"
                        ))
                    }
                    Ok(Ok(s)) => Box::new(s),
                }
            }
        };
        Ok(Conn {
            io,
            rb: ReadBuf::default(),
            reused: false,
            idle_since: Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("https://api.example.com/callback/").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.base_path.as_str()),
            (true, "api.example.com", 443, "/callback")
        );
        assert_eq!(e.target("getBill"), "/callback/getBill");
        let e = Endpoint::parse("http://127.0.0.1:8080/cb").unwrap();
        assert_eq!((e.port, e.authority.as_str()), (8080, "127.0.0.1:8080"));
        let e = Endpoint::parse("http://[::1]:9/x").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        assert_eq!(Endpoint::parse("HTTP://h").unwrap().target("/a"), "/a");
        for bad in [
            "ftp://h/x",
            "http://",
            "http://u@h/",
            "http://h:x/",
            "http://[::1/",
            "nope",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
