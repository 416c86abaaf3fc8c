//! The systemd notify protocol (`sd_notify(3)`) without libsystemd: one datagram per message on
//! the `AF_UNIX` socket named by `$NOTIFY_SOCKET` (a path, or an abstract name starting with `@`).
//!
//! * [`ready`] once the agent can serve (`Type=notify` units count as started only then),
//! * [`stopping`] when shutdown begins,
//! * [`watchdog`] as a task **on the agent's own tokio runtime** sending `WATCHDOG=1` at half of
//!   [`watchdog_interval`]. It deliberately is not an OS thread: if the event loop stalls, the
//!   heartbeat stops and systemd (`WatchdogSec=`) kills and restarts the agent.
//!
//! Outside systemd (`$NOTIFY_SOCKET` unset) every call is a cheap no-op returning `Ok(false)`.
//! Sends are non-blocking: a full socket queue is an error for the caller to ignore, never a
//! stall of the runtime.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use tokio::sync::watch;

/// Send `state` (e.g. `"READY=1"`) to `$NOTIFY_SOCKET`.
/// `Ok(false)` when the variable is unset or empty (not running under systemd notify).
pub fn notify(state: &str) -> io::Result<bool> {
    notify_to(std::env::var_os("NOTIFY_SOCKET").as_deref(), state)
}

/// `READY=1`: startup is complete.
pub fn ready() -> io::Result<bool> {
    notify("READY=1")
}

/// `STOPPING=1`: graceful shutdown has begun.
pub fn stopping() -> io::Result<bool> {
    notify("STOPPING=1")
}

/// The watchdog timeout systemd expects heartbeats for (`WatchdogSec=`), from `$WATCHDOG_USEC`.
/// `None` when unset, zero or malformed, or when `$WATCHDOG_PID` is set and names another process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// Send `WATCHDOG=1` every `interval / 2` until `stop` turns true (or its sender is dropped).
/// Spawn it on the agent's runtime: `tokio::spawn(systemd::watchdog(iv, shutdown.receiver()))`.
pub async fn watchdog(interval: Duration, stop: watch::Receiver<bool>) {
    watchdog_to(std::env::var_os("NOTIFY_SOCKET"), interval, stop).await
}

/// [`notify`] with an explicit socket address, so tests need not touch the process environment.
pub(crate) fn notify_to(socket: Option<&OsStr>, state: &str) -> io::Result<bool> {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    let bytes = socket.as_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        send_abstract(&sock, name, state.as_bytes())?
    } else if bytes.starts_with(b"/") {
        sock.send_to(state.as_bytes(), socket)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor '@name'",
        ));
    };
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to NOTIFY_SOCKET",
        ));
    }
    Ok(true)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sock: &UnixDatagram, name: &[u8], msg: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(msg, &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_sock: &UnixDatagram, _name: &[u8], _msg: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets need Linux",
    ))
}

pub(crate) fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    my_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid.map(str::trim).filter(|p| !p.is_empty()) {
        if pid.parse::<u32>().ok()? != my_pid {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

pub(crate) async fn watchdog_to(
    socket: Option<OsString>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let period = (interval / 2).max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    // After a stall, send one heartbeat now and resume the cadence; no burst of catch-up beats.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        tokio::select! {
            _ = tick.tick() => {
                // An error here (socket gone, queue full) is not worth killing the agent for:
                // systemd notices missing heartbeats by itself.
                let _ = notify_to(socket.as_deref(), "WATCHDOG=1");
            }
            changed = stop.changed() => {
                if changed.is_err() {
                    return; // sender dropped: the agent is going away
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::TempDir;

    /// The watchdog task ends (bounded: a watchdog that ignores `stop` fails the test, never
    /// hangs it). Under a paused clock the 60 s pass instantly once nothing else can run.
    async fn stops(task: tokio::task::JoinHandle<()>) {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the watchdog stops")
            .unwrap();
    }

    fn recv_all(sock: &UnixDatagram) -> Vec<String> {
        sock.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn unset_or_empty_socket_is_a_noop() {
        assert!(!notify_to(None, "READY=1").unwrap());
        assert!(!notify_to(Some(OsStr::new("")), "READY=1").unwrap());
    }

    #[test]
    fn relative_socket_path_is_refused() {
        let e = notify_to(Some(OsStr::new("notify.sock")), "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = TempDir::new("path");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        assert!(notify_to(Some(path.as_os_str()), "READY=1").unwrap());
        assert!(notify_to(Some(path.as_os_str()), "STOPPING=1").unwrap());
        assert_eq!(recv_all(&rx), vec!["READY=1", "STOPPING=1"]);
    }

    #[test]
    fn missing_socket_is_an_error_not_a_panic() {
        let dir = TempDir::new("missing");
        let path = dir.path().join("nobody-listens");
        assert!(notify_to(Some(path.as_os_str()), "READY=1").is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "expirenza-agent-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        let env_form = format!("@{name}");
        assert!(notify_to(Some(OsStr::new(&env_form)), "WATCHDOG=1").unwrap());
        assert_eq!(recv_all(&rx), vec!["WATCHDOG=1"]);
    }

    #[test]
    fn watchdog_interval_parsing() {
        let me = 4242;
        assert_eq!(
            watchdog_interval_from(Some("30000000"), None, me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("4242"), me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some(""), me),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("1"), me),
            None,
            "meant for another process"
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("x"), me),
            None
        );
        assert_eq!(watchdog_interval_from(Some("0"), None, me), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, me), None);
        assert_eq!(watchdog_interval_from(None, Some("4242"), me), None);
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_beats_at_half_the_interval_and_stops() {
        let dir = TempDir::new("wd");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let (tx, stop) = watch::channel(false);
        let task = tokio::spawn(watchdog_to(
            Some(path.clone().into_os_string()),
            Duration::from_secs(2),
            stop,
        ));
        // paused clock: beats at t = 0, 1, 2, 3 s
        tokio::time::sleep(Duration::from_millis(3500)).await;
        tx.send(true).unwrap();
        stops(task).await;
        let got = recv_all(&rx);
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got.iter().all(|m| m == "WATCHDOG=1"));
        // nothing after stop
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(recv_all(&rx).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn watchdog_returns_when_stop_already_set_or_sender_dropped() {
        let (tx, stop) = watch::channel(true);
        tokio::time::timeout(
            Duration::from_secs(60),
            watchdog_to(None, Duration::from_secs(2), stop),
        )
        .await
        .expect("returns at once when stop is already set");
        drop(tx);
        let (tx, stop) = watch::channel(false);
        let task = tokio::spawn(watchdog_to(None, Duration::from_secs(2), stop));
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(tx);
        stops(task).await;
    }

    #[test]
    fn a_stalled_runtime_stops_the_heartbeat() {
        // The beat is a task on the caller's runtime: while that runtime is blocked, nothing is sent.
        let dir = TempDir::new("stall");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, stop) = watch::channel(false);
        rt.block_on(async {
            let task = tokio::spawn(watchdog_to(
                Some(path.clone().into_os_string()),
                Duration::from_millis(100),
                stop,
            ));
            // The first beat (at t = 0), awaited as an event, bounded.
            rx.set_nonblocking(true).unwrap();
            let arx = tokio::net::UnixDatagram::from_std(rx.try_clone().unwrap()).unwrap();
            let mut buf = [0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(30), arx.recv(&mut buf))
                .await
                .expect("the first heartbeat arrives")
                .unwrap();
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            // Drain, then stall the event loop with no await in between: the runtime's only
            // thread is this one, so whatever arrives now was sent from another thread.
            recv_all(&rx);
            std::thread::sleep(Duration::from_millis(300)); // the event loop stalls
            assert!(
                recv_all(&rx).is_empty(),
                "heartbeat must not come from another thread"
            );
            tx.send(true).unwrap();
            stops(task).await;
        });
    }
}
