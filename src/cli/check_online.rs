//! `expirenza-agent check --online`: can this board reach the cloud with its credentials?
//!
//! For `ws_url`, one step at a time, each with its time: DNS, TCP, TLS (naming the certificate
//! problem), the HTTP upgrade with the configured `Authorization` and `Cookie` (the very request
//! `run` sends, from `link::handshake`), then a clean close. No operation is answered: frames
//! the cloud may send in the moment before the close are ignored. For `callback_url`'s host:
//! DNS, TCP and TLS only; nothing is posted.
//!
//! A 401/403 says the credentials were refused; neither they nor the Authorization header are
//! ever printed. Every step is bounded by `[link] connect_timeout_secs`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::config::{Config, Endpoint};
use crate::link::handshake;

/// The result of one step, as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub ok: bool,
    pub took: Duration,
    pub detail: String,
}

/// Prints each step as it ends.
struct Report<'a, W: Write> {
    out: &'a mut W,
    steps: Vec<Step>,
}

impl<W: Write> Report<'_, W> {
    fn step(&mut self, name: &'static str, start: Instant, ok: bool, detail: String) -> bool {
        let took = start.elapsed();
        let _ = writeln!(
            self.out,
            "  {name:<10} {:<4} {:>7.1} ms  {detail}",
            if ok { "ok" } else { "FAIL" },
            took.as_secs_f64() * 1000.0
        );
        let _ = self.out.flush();
        self.steps.push(Step {
            name,
            ok,
            took,
            detail,
        });
        ok
    }
}

/// Run every step against `ws_url` and `callback_url`, printing to `out`. Returns the steps;
/// the check passed when every step is ok (and so the upgrade succeeded).
pub async fn run<W: Write>(cfg: &Config, out: &mut W) -> Vec<Step> {
    let mut r = Report {
        out,
        steps: Vec::new(),
    };
    let limit = Duration::from_secs(cfg.link.connect_timeout_secs.max(1));
    let _ = writeln!(r.out, "online       ws_url {}", cfg.ws_url);
    let ws_ok = websocket(cfg, limit, &mut r).await;
    if !ws_ok && !r.steps.iter().any(|s| s.name == "upgrade") {
        let _ = writeln!(r.out, "  upgrade    not attempted");
    }
    let _ = writeln!(
        r.out,
        "online       callback_url {} (connect and one HEAD for redirects; nothing posted)",
        cfg.callback_url
    );
    match reach(cfg, &cfg.callback_url, limit, &mut r).await {
        Some(Stream::Plain(s)) => redirects(cfg, s, limit, &mut r).await,
        Some(Stream::Tls(s)) => redirects(cfg, *s, limit, &mut r).await,
        None => {}
    }
    r.steps
}

/// Send `req`, read the head of the final answer (bounded by `head::MAX_HEAD`).
async fn head_of<S>(
    stream: &mut S,
    req: &[u8],
) -> std::io::Result<Result<crate::callback::head::Head, crate::callback::head::HeadError>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    use crate::callback::head;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(req).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    loop {
        match head::parse(&buf) {
            Ok(Some(h)) if h.status >= 200 => return Ok(Ok(h)),
            Ok(Some(h)) => drop(buf.drain(..h.len)),
            Ok(None) => {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// One `HEAD` of `<callback_url>/checkWork` (no body, no credentials, no signature: nothing is
/// posted) on the stream `reach` opened, to see whether the callback host redirects. A 307 or
/// 308 the agent can follow passes with a note (callbacks reach the new place, but
/// `callback_url` should name it); another 3xx, a redirect the agent does not follow, or an
/// answer in HTTP/2 fails: callbacks would fail. No answer at all is reported, not failed (the
/// steps before showed the host is there).
async fn redirects<S, W>(cfg: &Config, mut stream: S, limit: Duration, r: &mut Report<'_, W>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: Write,
{
    use crate::callback::redirect;
    let start = Instant::now();
    let Ok(ep) = Endpoint::parse(&cfg.callback_url) else {
        return;
    };
    let target = ep.target("checkWork");
    let req = format!(
        "HEAD {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: expirenza-agent/{} (check --online)\r\n\
         Connection: close\r\n\r\n",
        ep.authority,
        env!("CARGO_PKG_VERSION")
    );
    let answer = timeout(limit, head_of(&mut stream, req.as_bytes())).await;
    let head = match answer {
        Err(_) => {
            let d = format!("no answer to HEAD {target} within {limit:?}: redirects not checked");
            r.step("redirects", start, true, d);
            return;
        }
        Ok(Err(e)) => {
            let d = format!("no answer to HEAD {target} ({e}): redirects not checked");
            r.step("redirects", start, true, d);
            return;
        }
        Ok(Ok(Err(e))) => {
            r.step("redirects", start, false, e.to_string());
            return;
        }
        Ok(Ok(Ok(h))) => h,
    };
    let (ok, detail) = match head.status {
        s @ (307 | 308) => match redirect::follow(s, head.location.as_deref(), &ep, 0) {
            Ok(hop) => (
                true,
                format!(
                    "HTTP {s}: callbacks are redirected to {}; the agent follows (same body and signature), but set callback_url to it",
                    hop.url()
                ),
            ),
            Err(why) => (false, format!("callbacks would fail: {why}")),
        },
        s @ 300..=399 => (
            false,
            format!(
                "callbacks would fail: {}",
                redirect::refused(s, head.location.as_deref())
            ),
        ),
        s => (true, format!("HTTP {s} to HEAD {target}: no redirect")),
    };
    r.step("redirects", start, ok, detail);
}

/// Whether `steps` (from [`run`]) passed: all ok, the upgrade among them.
pub fn passed(steps: &[Step]) -> bool {
    steps.iter().all(|s| s.ok) && steps.iter().any(|s| s.name == "upgrade" && s.ok)
}

/// Scheme, host (without IPv6 brackets), port of an http(s)/ws(s) URL, by the agent's one URL
/// parser.
fn endpoint(url: &str) -> Result<(bool, String, u16), String> {
    let ep = Endpoint::parse(url).map_err(|e| e.to_string())?;
    Ok((ep.tls(), ep.host, ep.port))
}

/// DNS + TCP (+ TLS when the scheme says so) to `url`'s host. The stream on success.
async fn reach<W: Write>(
    cfg: &Config,
    url: &str,
    limit: Duration,
    r: &mut Report<'_, W>,
) -> Option<Stream> {
    let callback = url == cfg.callback_url;
    let start = Instant::now();
    let (tls, host, port) = match endpoint(url) {
        Ok(e) => e,
        Err(e) => {
            r.step("url", start, false, e);
            return None;
        }
    };
    let start = Instant::now();
    let addrs: Vec<SocketAddr> =
        match timeout(limit, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                r.step("DNS", start, false, format!("{host}: {e}"));
                return None;
            }
            Err(_) => {
                r.step(
                    "DNS",
                    start,
                    false,
                    format!("{host}: no answer within {limit:?}"),
                );
                return None;
            }
        };
    if addrs.is_empty() {
        r.step("DNS", start, false, format!("{host}: no address"));
        return None;
    }
    let shown: Vec<String> = addrs.iter().take(4).map(|a| a.ip().to_string()).collect();
    r.step(
        "DNS",
        start,
        true,
        format!("{host} -> {}", shown.join(", ")),
    );

    let start = Instant::now();
    let mut tcp = None;
    let mut errors = Vec::new();
    for a in addrs.iter().take(4) {
        match timeout(limit, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                tcp = Some((s, *a));
                break;
            }
            Ok(Err(e)) => errors.push(format!("{a}: {}", tcp_error(&e))),
            Err(_) => errors.push(format!("{a}: no answer within {limit:?} (firewall?)")),
        }
    }
    let Some((tcp, addr)) = tcp else {
        r.step("TCP", start, false, errors.join("; "));
        return None;
    };
    let _ = tcp.set_nodelay(true);
    r.step("TCP", start, true, format!("connected to {addr}"));
    if !tls {
        return Some(Stream::Plain(tcp));
    }

    let start = Instant::now();
    // The callback host is reached with the callback client's TLS (ALPN http/1.1), so an
    // HTTP/2-only server is named here.
    let config = if callback {
        crate::tls::callback_client_config(cfg.ca_file.as_deref())
    } else {
        crate::tls::link_client_config(cfg.ca_file.as_deref())
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            r.step("TLS", start, false, e.to_string());
            return None;
        }
    };
    let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
        Ok(n) => n,
        Err(e) => {
            r.step(
                "TLS",
                start,
                false,
                format!("{host} is not a valid TLS name: {e}"),
            );
            return None;
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
    match timeout(limit, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => {
            let version = s
                .get_ref()
                .1
                .protocol_version()
                .and_then(|v| v.as_str())
                .unwrap_or("TLS");
            r.step(
                "TLS",
                start,
                true,
                format!("{version}, certificate valid for {host}"),
            );
            Some(Stream::Tls(Box::new(s)))
        }
        Ok(Err(e)) => {
            r.step(
                "TLS",
                start,
                false,
                crate::tls::describe_handshake_error(&e, &host),
            );
            None
        }
        Err(_) => {
            r.step(
                "TLS",
                start,
                false,
                format!("no handshake within {limit:?} (is this port TLS?)"),
            );
            None
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn websocket<W: Write>(cfg: &Config, limit: Duration, r: &mut Report<'_, W>) -> bool {
    let Some(stream) = reach(cfg, &cfg.ws_url, limit, r).await else {
        return false;
    };
    match stream {
        Stream::Plain(s) => upgrade(cfg, s, limit, r).await,
        Stream::Tls(s) => upgrade(cfg, *s, limit, r).await,
    }
}

async fn upgrade<S, W>(cfg: &Config, stream: S, limit: Duration, r: &mut Report<'_, W>) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: Write,
{
    let start = Instant::now();
    let req = match handshake::request(cfg) {
        Ok(req) => req,
        Err(e) => return r.step("upgrade", start, false, e.to_string()),
    };
    let ws_cfg = handshake::ws_config(cfg);
    let res = timeout(
        limit,
        tokio_tungstenite::client_async_with_config(req, stream, Some(ws_cfg)),
    )
    .await;
    let mut ws = match res {
        Ok(Ok((ws, resp))) => {
            r.step(
                "upgrade",
                start,
                true,
                format!(
                    "HTTP {}: credentials and cookie system={} accepted",
                    resp.status().as_u16(),
                    cfg.pos_system
                ),
            );
            ws
        }
        Ok(Err(e)) => return r.step("upgrade", start, false, upgrade_error(&e)),
        Err(_) => {
            return r.step(
                "upgrade",
                start,
                false,
                format!("no HTTP answer within {limit:?}"),
            )
        }
    };
    // Close cleanly: our Close frame, then wait (bounded) for the cloud's. Frames that arrive
    // meanwhile (a request the cloud sent right away) are read and ignored: not answered.
    let start = Instant::now();
    let closed = timeout(limit, async {
        ws.send(Message::Close(None)).await?;
        while let Some(m) = ws.next().await {
            m?;
        }
        Ok::<_, WsError>(())
    })
    .await;
    match closed {
        Ok(Ok(())) | Ok(Err(WsError::ConnectionClosed)) => {
            r.step("close", start, true, "closed cleanly".into())
        }
        // The upgrade is what this check is about; an untidy close is reported, not failed.
        Ok(Err(e)) => r.step("close", start, true, format!("closed ({e})")),
        Err(_) => r.step(
            "close",
            start,
            true,
            format!("no close answer within {limit:?}; dropped the connection"),
        ),
    }
}

fn tcp_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens there, or a firewall rejects it)".into()
        }
        _ => e.to_string(),
    }
}

fn upgrade_error(e: &WsError) -> String {
    match e {
        WsError::Http(resp) if matches!(resp.status().as_u16(), 401 | 403) => format!(
            "HTTP {}: credentials refused by the cloud: check resto_id and the secret key (not shown), and pos_system",
            resp.status().as_u16()
        ),
        WsError::Http(resp) => format!(
            "HTTP {}: the cloud refused the WebSocket upgrade (is ws_url's path right?)",
            resp.status().as_u16()
        ),
        WsError::Io(io) => format!("connection failed during the upgrade: {io}"),
        other => format!("upgrade failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_give_default_ports_and_strip_brackets() {
        assert_eq!(
            endpoint("wss://api.example.com/x").unwrap(),
            (true, "api.example.com".into(), 443)
        );
        assert_eq!(
            endpoint("http://[::1]:8080/cb").unwrap(),
            (false, "::1".into(), 8080)
        );
        assert!(endpoint("ftp://x/").is_err());
    }
}
