//! `expirenza-agent run`: the service. One current-thread runtime for all I/O, timers and the
//! short reads; a blocking pool, started here and kept, for journal writes, menus and file
//! writes; signals; systemd's READY, STOPPING and watchdog.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Command, Common};
use crate::config::SecretNeed;
use crate::status::{self, StatusBoard};
use crate::{agent, metrics, shutdown, systemd};

pub const COMMAND: Command = Command {
    name: "run",
    summary: "Connect to the cloud and answer its operations (the service systemd starts).",
    usage: USAGE,
    main,
};

const USAGE: &str = "\
expirenza-agent run [--config PATH] [-v|--verbose] [-q|--quiet]

Connect to the cloud (ws_url) with the configured credentials and answer its operations from
the POS mirror until SIGTERM or Ctrl-C. This is what the systemd unit starts. Logs go to stderr
with syslog priority prefixes (journald reads them); -v adds debug lines, -q keeps warnings.
";

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    while let Some(arg) = parser.next()? {
        common.other(arg.into(), parser, USAGE)?;
    }
    common.set_log_level(true);
    run(common.load_config(SecretNeed::Required)?)
}

/// How long an idle blocking-pool thread is kept (tokio's default is 10 s).
/// The blocking pool's threads are started once and kept: a day without work before one ends.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(24 * 3600);
/// Blocking threads beyond those of the operations (`max_in_flight` compute slots, as many for
/// the operations that write the journal, and `max_streaming` for the second passes of
/// streamed answers): the status writer, the ORDERS_CACHE push, the metrics file, the spool
/// keeper, the spooling of money operations refused before they started (one at a time) and
/// DNS lookups run there.
const BLOCKING_EXTRA: usize = 1;

fn run(cfg: crate::Config) -> Result<ExitCode> {
    limit_malloc_arenas();
    crate::sqlite_mem::limit_process(
        cfg.limits.sqlite_cache_kib,
        cfg.limits.sqlite_heap_limit_kib,
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One runtime thread for all I/O, timers and the short reads (`inline_reads`); the
    // blocking pool (2 × `max_in_flight` + `max_streaming` + BLOCKING_EXTRA threads, all
    // started here and kept) runs journal writes, menus and file writes. No thread is created
    // after start-up.
    let blocking = 2 * cfg.limits.max_in_flight + cfg.limits.max_streaming + BLOCKING_EXTRA;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(blocking)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .thread_name("expirenza-op")
        .build()
        .context("starting the async runtime")?;
    let code = rt.block_on(async move {
        start_blocking_pool(blocking).await;
        let (trigger, shutdown) = shutdown::channel();
        crate::log_info!(
            "expirenza-agent {} starting: resto {} -> {} (mirror {})",
            env!("CARGO_PKG_VERSION"),
            cfg.resto_id,
            cfg.ws_url,
            cfg.mirror_path.display()
        );
        let board = Arc::new(StatusBoard::new(&cfg.resto_id));
        let status_task = tokio::spawn(status::writer(
            board.clone(),
            cfg.status_path(),
            Duration::from_secs(cfg.status.write_interval_secs),
            shutdown.receiver(),
        ));
        match crate::check::mirror_problem(&cfg) {
            None => crate::log_info!("mirror {} is readable", cfg.mirror_path.display()),
            Some(p) => crate::log_warn!(
                "mirror: {p}; operations that need it will answer FAIL until it is fixed"
            ),
        }
        let status_every = Duration::from_secs(cfg.status.write_interval_secs);
        let metrics_path = cfg.metrics.textfile_path.clone();
        let running = agent::spawn(cfg, agent::Hooks::status(board.clone()), shutdown.clone())
            .context("starting the agent")?;
        let (metrics_stop, metrics_task) = spawn_metrics(metrics_path, status_every, &running);
        tokio::spawn(status::backlog::feed(
            board,
            running.ctx.clone(),
            status_every,
            shutdown.receiver(),
        ));
        // Config loaded, mirror looked at, tasks started: tell systemd (Type=notify).
        let _ = systemd::ready();
        if let Some(iv) = systemd::watchdog_interval() {
            // On this runtime, not a thread: if the event loop stalls, the heartbeat stops.
            tokio::spawn(systemd::watchdog(iv, shutdown.receiver()));
        }
        wait_for_signal().await?;
        crate::log_info!("shutdown requested");
        let _ = systemd::stopping();
        trigger.fire();
        running.finished().await;
        // After the link recorded its end: the last metrics file shows the link down.
        metrics_stop.fire();
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        let _ = status_task.await;
        crate::log_info!("stopped");
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    });
    // Operations still running after the grace period (a callback retrying towards its 80 s
    // deadline) are abandoned here rather than holding the exit: the bound is explicit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Start every thread of the blocking pool now, so none is created under load (the thread
/// count is flat from the start). Each start-up task waits, at most a second, until all have
/// started, which forces the pool to give each its own thread.
async fn start_blocking_pool(n: usize) {
    use std::sync::{Condvar, Mutex};
    let gate = Arc::new((Mutex::new(0usize), Condvar::new()));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let gate = gate.clone();
            tokio::task::spawn_blocking(move || {
                let (count, cv) = &*gate;
                let mut c = count.lock().unwrap_or_else(|p| p.into_inner());
                *c += 1;
                cv.notify_all();
                let deadline = std::time::Instant::now() + Duration::from_secs(1);
                while *c < n {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    c = cv
                        .wait_timeout(c, left)
                        .map_or_else(|p| p.into_inner().0, |r| r.0);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and the
/// blocking pool's threads keep theirs, with freed memory in them, resident after a burst.
/// Two arenas serve `max_in_flight` operations well (docs/performance.md has the figures).
/// musl, which the board builds use, has no per-thread arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets an allocator parameter and takes no pointers; it is called
    // before any thread is started, so no allocation races with it.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// The metrics textfile writer, when `[metrics] textfile_path` is set; its own stop switch so
/// the last write comes after the link has gone down.
fn spawn_metrics(
    path: Option<PathBuf>,
    every: Duration,
    running: &agent::Running,
) -> (shutdown::Trigger, Option<tokio::task::JoinHandle<()>>) {
    let (stop, rx) = shutdown::channel();
    let task = path.map(|path| {
        let ctx = running.ctx.clone();
        let backlog: metrics::textfile::BacklogFn =
            Arc::new(move || ctx.journal.open_by_status().map_err(|e| e.to_string()));
        tokio::spawn(metrics::textfile::writer(
            metrics::global(),
            path,
            every,
            backlog,
            rx.receiver(),
        ))
    });
    (stop, task)
}
