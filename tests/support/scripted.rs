//! A scripted HTTP/1.1 server for callback tests, on plain TCP or TLS: it reads each request
//! (head, then the body, or only its first bytes when the script says so), records it
//! ([`Seen`]: path, rID, signature, body, connection), and answers with the exact bytes the
//! script gives, then does what the script says with the connection (keep it, close it with or
//! without a TLS close_notify, hold it open unread, or wait for the test's cue and send bytes
//! nobody asked for). Every wait of the server ends when the server is dropped.

#![allow(dead_code)]

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;

use super::tls::TestPki;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
}

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub rid: Option<String>,
    pub signature: String,
    /// The body bytes read (all of them, or the first ones when the script did not read it).
    pub body: Vec<u8>,
    pub content_length: usize,
    /// Sequence number (from 1) of the connection it came on.
    pub conn: u64,
}

/// What the script knows when it answers.
pub struct Ask<'a> {
    pub seen: &'a Seen,
    /// Requests before this one on the same connection.
    pub on_conn: usize,
    /// Requests before this one with the same rID (on any connection).
    pub of_rid: usize,
}

/// What happens to the connection after the answer.
#[derive(Debug, Clone)]
pub enum Then {
    /// Read the next request.
    KeepAlive,
    /// Close cleanly (TLS: close_notify first).
    Close,
    /// Close the TCP connection without a TLS close_notify.
    CloseNoNotify,
    /// Keep the connection open and read nothing more, until the server is dropped.
    Hold,
    /// Wait for [`Server::cue`], then send these bytes, then close cleanly.
    CueThenSend(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub delay: Duration,
    /// Read the whole body before answering (`false`: only its first bytes, enough for the rID).
    pub read_body: bool,
    pub then: Then,
}

impl Reply {
    pub fn new(bytes: impl Into<Vec<u8>>, then: Then) -> Reply {
        Reply {
            bytes: bytes.into(),
            delay: Duration::ZERO,
            read_body: true,
            then,
        }
    }
    pub fn ok() -> Reply {
        Reply::new(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
            Then::KeepAlive,
        )
    }
}

type Script = dyn Fn(Ask<'_>) -> Reply + Send + Sync;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    connections: AtomicU64,
    unsolicited: AtomicUsize,
    event: Notify,
    cue: Notify,
    script: Box<Script>,
}

pub struct Server {
    pub port: u16,
    pub transport: Transport,
    shared: Arc<Shared>,
    _stop: watch::Sender<()>,
}

/// A TCP listener whose accepted sockets have a small receive buffer (so a client writing a
/// large body blocks soon when the server stops reading).
fn listener() -> TcpListener {
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    s.listen(128).unwrap()
}

impl Server {
    /// Start serving with `script`; TLS with `pki`'s certificate (for 127.0.0.1) offering the
    /// ALPN protocols `alpn` when `transport` is [`Transport::Tls`].
    pub fn start(
        transport: Transport,
        pki: &TestPki,
        alpn: Vec<Vec<u8>>,
        script: impl Fn(Ask<'_>) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = listener();
        let port = listener.local_addr().unwrap().port();
        let acceptor = TlsAcceptor::from(pki.server_config(alpn));
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            connections: AtomicU64::new(0),
            unsolicited: AtomicUsize::new(0),
            event: Notify::new(),
            cue: Notify::new(),
            script: Box::new(script),
        });
        let (stop, mut stop_rx) = watch::channel(());
        let sh = shared.clone();
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    _ = stop_rx.changed() => return,
                    r = listener.accept() => match r { Ok((t, _)) => t, Err(_) => continue },
                };
                let id = sh.connections.fetch_add(1, Ordering::Relaxed) + 1;
                let (sh, acceptor, mut stop) = (sh.clone(), acceptor.clone(), stop_rx.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = serve(sh, tcp, transport, acceptor, id) => {}
                    }
                });
            }
        });
        Server {
            port,
            transport,
            shared,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:PORT<path>` or `https://…`.
    pub fn url(&self, path: &str) -> String {
        let scheme = match self.transport {
            Transport::Tcp => "http",
            Transport::Tls => "https",
        };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The requests that carried `rid`.
    pub fn posts(&self, rid: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.rid.as_deref() == Some(rid))
            .collect()
    }

    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Let every connection waiting in [`Then::CueThenSend`] send its bytes.
    pub fn cue(&self) {
        self.shared.cue.notify_waiters();
    }

    /// Wait (by events) until `n` unsolicited sends are done.
    pub async fn wait_unsolicited(&self, n: usize, limit: Duration) -> bool {
        self.wait(limit, || {
            self.shared.unsolicited.load(Ordering::Relaxed) >= n
        })
        .await
    }

    /// Wait (by events) until `n` requests were seen.
    pub async fn wait_seen(&self, n: usize, limit: Duration) -> bool {
        self.wait(limit, || self.shared.seen.lock().unwrap().len() >= n)
            .await
    }

    async fn wait(&self, limit: Duration, done: impl Fn() -> bool) -> bool {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let ev = self.shared.event.notified();
            if done() {
                return true;
            }
            if tokio::time::timeout_at(end, ev).await.is_err() {
                return done();
            }
        }
    }
}

/// A connection, plain or TLS.
enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

async fn serve(sh: Arc<Shared>, tcp: TcpStream, t: Transport, acceptor: TlsAcceptor, id: u64) {
    let _ = tcp.set_nodelay(true);
    let mut conn = match t {
        Transport::Tcp => Conn::Tcp(tcp),
        Transport::Tls => match acceptor.accept(tcp).await {
            Ok(s) => Conn::Tls(Box::new(s)),
            Err(_) => return,
        },
    };
    let mut buf = Vec::new();
    let mut on_conn = 0;
    loop {
        let Some(head_len) = read_until_head(&mut conn, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let content_length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let signature = header("signature").unwrap_or_default();
        buf.drain(..head_len);
        // Enough of the body for the rID first.
        let first = content_length.min(256);
        while buf.len() < first {
            if !fill(&mut conn, &mut buf).await {
                return;
            }
        }
        let seen = Seen {
            path,
            rid: rid_of(&buf[..first]),
            signature,
            body: buf[..first].to_vec(),
            content_length,
            conn: id,
        };
        let reply = {
            let mut all = sh.seen.lock().unwrap();
            let of_rid = all
                .iter()
                .filter(|s| s.rid.is_some() && s.rid == seen.rid)
                .count();
            let reply = (sh.script)(Ask {
                seen: &seen,
                on_conn,
                of_rid,
            });
            all.push(seen);
            reply
        };
        on_conn += 1;
        if reply.read_body {
            while buf.len() < content_length {
                if !fill(&mut conn, &mut buf).await {
                    return;
                }
            }
            let body = buf[..content_length].to_vec();
            let mut all = sh.seen.lock().unwrap();
            if let Some(s) = all.iter_mut().rev().find(|s| s.conn == id) {
                s.body = body;
            }
            drop(all);
            buf.drain(..content_length);
        }
        sh.event.notify_waiters();
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        if conn.write_all(&reply.bytes).await.is_err() || conn.flush().await.is_err() {
            return;
        }
        match reply.then {
            Then::KeepAlive => continue,
            Then::Close => {
                let _ = conn.shutdown().await;
                return;
            }
            Then::CloseNoNotify => {
                if let Conn::Tls(s) = &mut conn {
                    let _ = s.get_mut().0.shutdown().await;
                } else {
                    let _ = conn.shutdown().await;
                }
                return;
            }
            Then::Hold => std::future::pending::<()>().await,
            Then::CueThenSend(bytes) => {
                sh.cue.notified().await;
                let _ = conn.write_all(&bytes).await;
                let _ = conn.shutdown().await;
                drop(conn);
                sh.unsolicited.fetch_add(1, Ordering::Relaxed);
                sh.event.notify_waiters();
                return;
            }
        }
    }
}

/// Read until `buf` holds a whole request head; its length, or `None` at the end.
async fn read_until_head(conn: &mut Conn, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > 64 * 1024 || !fill(conn, buf).await {
            return None;
        }
    }
}

async fn fill(conn: &mut Conn, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match conn.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// The body's top-level `"rID"` (the agent writes it first).
fn rid_of(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = text.split_once("\"rID\":\"")?.1;
    Some(rest.split('"').next()?.to_string())
}
