//! A small TCP proxy for fault tests: `127.0.0.1:<port>` → `target`, with knobs to add latency
//! to every chunk, stall (stop forwarding while keeping both sockets open: a black hole at the
//! TCP level), or cut every live connection (the agent sees a reset/EOF).
//!
//! Everything runs on the current tokio runtime and stops when the [`Proxy`] is dropped.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mode {
    latency: Duration,
    stalled: bool,
    /// Bumped by `cut()`: pumps of older generations close.
    generation: u64,
    /// Refuse (accept then close at once) new connections.
    refuse: bool,
}

pub struct Proxy {
    addr: SocketAddr,
    target: Arc<std::sync::Mutex<SocketAddr>>,
    mode: watch::Sender<Mode>,
    accepted: Arc<AtomicUsize>,
    bytes: Arc<AtomicU64>,
    _stop: watch::Sender<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, mode_rx) = watch::channel(Mode {
            latency: Duration::ZERO,
            stalled: false,
            generation: 0,
            refuse: false,
        });
        let (stop, mut stop_rx) = watch::channel(());
        let accepted = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let target = Arc::new(std::sync::Mutex::new(target));
        let (acc, by, tgt) = (accepted.clone(), bytes.clone(), target.clone());
        tokio::spawn(async move {
            loop {
                let (sock, _) = tokio::select! {
                    _ = stop_rx.changed() => return,
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                };
                acc.fetch_add(1, Ordering::Relaxed);
                let m = *mode_rx.borrow();
                if m.refuse {
                    drop(sock);
                    continue;
                }
                let to = *tgt.lock().unwrap();
                let Ok(Ok(up)) =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(to)).await
                else {
                    continue;
                };
                let _ = sock.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let (cr, cw) = sock.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(pump(
                    cr,
                    uw,
                    mode_rx.clone(),
                    stop_rx.clone(),
                    m.generation,
                    by.clone(),
                ));
                tokio::spawn(pump(
                    ur,
                    cw,
                    mode_rx.clone(),
                    stop_rx.clone(),
                    m.generation,
                    by.clone(),
                ));
            }
        });
        Ok(Proxy {
            addr,
            target,
            mode,
            accepted,
            bytes,
            _stop: stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    /// Send new connections to `to` (live ones keep their upstream until cut).
    pub fn set_target(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = to;
    }
    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Bytes forwarded (both directions).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Delay every forwarded chunk by `d`.
    pub fn set_latency(&self, d: Duration) {
        self.mode.send_modify(|m| m.latency = d);
    }
    /// Stop (or resume) forwarding; sockets stay open.
    pub fn set_stalled(&self, on: bool) {
        self.mode.send_modify(|m| m.stalled = on);
    }
    /// Accept-and-close new connections while on.
    pub fn set_refuse(&self, on: bool) {
        self.mode.send_modify(|m| m.refuse = on);
    }
    /// Close every live connection now.
    pub fn cut(&self) {
        self.mode.send_modify(|m| m.generation += 1);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    mut stop: watch::Receiver<()>,
    generation: u64,
    bytes: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = stop.changed() => return,
            _ = mode.changed() => {
                if mode.borrow().generation != generation { return; }
                continue;
            }
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
        };
        // Hold the chunk while stalled; a cut or a stop still closes at once.
        loop {
            let m = *mode.borrow_and_update();
            if m.generation != generation {
                return;
            }
            if !m.stalled {
                if !m.latency.is_zero() {
                    // Simulated network latency, not synchronisation.
                    tokio::time::sleep(m.latency).await;
                }
                break;
            }
            tokio::select! {
                _ = stop.changed() => return,
                r = mode.changed() => if r.is_err() { return },
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}
