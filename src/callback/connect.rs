//! Opening a connection to a callback host: its addresses raced (RFC 8305, "happy eyeballs"),
//! then TLS with ALPN `http/1.1` (`tls.rs`).
//!
//! The addresses are ordered IPv6, IPv4, IPv6, … (each family in the resolver's order), and a
//! new one is tried every [`STAGGER`] while the earlier ones are still pending, or at once when
//! one fails. The first to connect wins and the others are dropped. So an address that
//! swallows packets (a black hole) costs [`STAGGER`], not the attempt. All by `until`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::io::Io;

/// The delay before the next address is tried while earlier ones are pending (RFC 8305's
/// recommended "Connection Attempt Delay").
pub const STAGGER: Duration = Duration::from_millis(250);

/// Most addresses of a host tried.
pub const MAX_ADDRS: usize = 16;

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// Worth another attempt later (refused, unreachable, timed out, a certificate problem).
    Retry(String),
    /// Will not change by retrying within the callback's deadline (the server refused
    /// HTTP/1.1 in the TLS handshake: it speaks only HTTP/2).
    Final(String),
}

impl ConnectError {
    pub fn message(&self) -> &str {
        match self {
            ConnectError::Retry(m) | ConnectError::Final(m) => m,
        }
    }
}

/// IPv6 and IPv4 alternated, each family in its given order (RFC 8305 §4).
pub fn interleave(addrs: &[SocketAddr]) -> Vec<SocketAddr> {
    let (v6, v4): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs.iter().partition(|a| a.is_ipv6());
    let first_v6 = addrs.first().is_none_or(SocketAddr::is_ipv6);
    let (a, b) = if first_v6 { (v6, v4) } else { (v4, v6) };
    let mut out = Vec::with_capacity(addrs.len());
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// Connect to the first of `addrs` that answers (see the module's doc), with `connect`.
pub async fn race<T, F, Fut>(
    addrs: &[SocketAddr],
    until: Instant,
    connect: F,
) -> Result<(T, SocketAddr), String>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    let mut pending = FuturesUnordered::new();
    let mut next = addrs.iter().take(MAX_ADDRS);
    let mut last = String::from("no address to connect to");
    let mut start_next = true;
    loop {
        if std::mem::take(&mut start_next) {
            if let Some(&a) = next.next() {
                let c = connect(a);
                pending.push(async move { (c.await, a) });
            }
        }
        if pending.is_empty() {
            return Err(last);
        }
        let more = next.len() > 0;
        tokio::select! {
            biased;
            Some((r, a)) = pending.next() => match r {
                Ok(t) => return Ok((t, a)),
                Err(e) => {
                    last = format!("connecting to {a}: {}", e.kind());
                    start_next = true;
                }
            },
            _ = tokio::time::sleep(STAGGER), if more => start_next = true,
            _ = tokio::time::sleep_until(until) => {
                return Err(format!("connecting timed out ({last})"))
            }
        }
    }
}

/// TCP to the first address that answers, `TCP_NODELAY` set once.
pub async fn tcp(addrs: &[SocketAddr], until: Instant) -> Result<TcpStream, String> {
    let order = interleave(addrs);
    let (tcp, _) = race(&order, until, TcpStream::connect).await?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// TLS over `tcp` (when `tls` is set), by `until`. A handshake failure is named
/// (`tls::describe_handshake_error`): the certificate problem, or a server that speaks only
/// HTTP/2.
pub async fn wrap(
    tcp: TcpStream,
    tls: Option<&(tokio_rustls::TlsConnector, ServerName<'static>)>,
    host: &str,
    until: Instant,
) -> Result<Box<dyn Io>, ConnectError> {
    let Some((connector, name)) = tls else {
        return Ok(Box::new(tcp));
    };
    let hs = connector.connect(name.clone(), tcp);
    match tokio::time::timeout_at(until, hs).await {
        Err(_) => Err(ConnectError::Retry("TLS handshake timed out".into())),
        Ok(Err(e)) => {
            let message = crate::tls::describe_handshake_error(&e, host);
            if crate::tls::refused_http11(&e) {
                Err(ConnectError::Final(message))
            } else {
                Err(ConnectError::Retry(message))
            }
        }
        Ok(Ok(s)) => Ok(Box::new(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn v4(n: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)), 1)
    }
    fn v6(n: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0xfd, 0, 0, 0, 0, 0, 0, n)), 1)
    }

    #[test]
    fn families_alternate_starting_with_the_first() {
        assert_eq!(
            interleave(&[v6(1), v6(2), v6(3), v4(1), v4(2)]),
            vec![v6(1), v4(1), v6(2), v4(2), v6(3)]
        );
        assert_eq!(
            interleave(&[v4(1), v4(2), v6(1)]),
            vec![v4(1), v6(1), v4(2)]
        );
        assert_eq!(interleave(&[]), vec![]);
    }

    /// Each address's connect: never completes (a black hole), fails, or succeeds.
    async fn fake(
        a: SocketAddr,
        black: Vec<SocketAddr>,
        refused: Vec<SocketAddr>,
    ) -> std::io::Result<SocketAddr> {
        if black.contains(&a) {
            std::future::pending::<()>().await;
        }
        if refused.contains(&a) {
            return Err(std::io::ErrorKind::ConnectionRefused.into());
        }
        Ok(a)
    }

    #[tokio::test(start_paused = true)]
    async fn a_black_hole_costs_one_stagger_not_the_attempt() {
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(10);
        let (got, _) = race(&[v4(1), v4(2)], until, |a| fake(a, vec![v4(1)], vec![]))
            .await
            .unwrap();
        assert_eq!(got, v4(2));
        assert_eq!(t0.elapsed(), STAGGER);
        // Two black holes before a good one: two staggers.
        let t0 = Instant::now();
        let (got, _) = race(&[v4(1), v4(2), v4(3)], until, |a| {
            fake(a, vec![v4(1), v4(2)], vec![])
        })
        .await
        .unwrap();
        assert_eq!((got, t0.elapsed()), (v4(3), STAGGER * 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_moves_on_at_once_and_all_failing_names_the_last() {
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(10);
        let (got, _) = race(&[v4(1), v4(2)], until, |a| fake(a, vec![], vec![v4(1)]))
            .await
            .unwrap();
        assert_eq!((got, t0.elapsed()), (v4(2), Duration::ZERO));
        let e = race(&[v4(1), v4(2)], until, |a| {
            fake(a, vec![], vec![v4(1), v4(2)])
        })
        .await
        .unwrap_err();
        assert!(e.contains("10.0.0.2") && e.contains("refused"), "{e}");
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_attempt_ends_the_race() {
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(600);
        let e = race(&[v4(1), v4(2), v4(3), v4(4)], until, |a| {
            fake(a, vec![v4(1), v4(2), v4(3), v4(4)], vec![])
        })
        .await
        .unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        assert_eq!(t0.elapsed(), Duration::from_millis(600));
    }
}
