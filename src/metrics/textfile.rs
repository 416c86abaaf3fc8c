//! Writing the metrics file for node_exporter's textfile collector.
//!
//! Every tick: gather the journal backlog (on the blocking pool: SQLite may wait on the SD card)
//! and the process RSS, render the registry, and replace the file atomically: a temp file in
//! the same directory, then `rename`. No fsync: the file is runtime state, rewritten every few
//! seconds, and belongs on tmpfs (/run); an fsync would only wear the SD card. A failed write is
//! logged once per distinct error and retried on the next tick; the agent goes on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::registry::{Gauges, Registry};
use crate::runtime_file::write_atomic;

/// Gathers the journal backlog `(status, count)`; runs on the blocking pool.
pub type BacklogFn = Arc<dyn Fn() -> Result<Vec<(&'static str, u64)>, String> + Send + Sync>;

/// Resident set size of this process (`VmRSS` of /proc/self/status, Linux), in bytes.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib.saturating_mul(1024))
}

/// Render `registry` with fresh gauges and write it to `path` once.
pub async fn write_once(
    registry: &Registry,
    path: &Path,
    backlog: &BacklogFn,
    start_time: u64,
) -> Result<(), String> {
    let b = backlog.clone();
    let journal_backlog = match tokio::task::spawn_blocking(move || b()).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(_)) | Err(_) => None,
    };
    let gauges = Gauges {
        journal_backlog,
        rss_bytes: rss_bytes(),
        start_time,
    };
    let text = registry.render(&gauges);
    write_atomic(path, text.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Rewrite the metrics file every `every` until `stop` turns true, then once more (so the last
/// file shows the link down after a clean stop).
pub async fn writer(
    registry: &'static Registry,
    path: PathBuf,
    every: Duration,
    backlog: BacklogFn,
    mut stop: watch::Receiver<bool>,
) {
    let start_time = u64::try_from(crate::clock::unix_now().0).unwrap_or(0);
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_err: Option<String> = None;
    log_info!(
        "metrics: writing {} every {}s",
        path.display(),
        every.as_secs()
    );
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => *stop.borrow_and_update(),
            changed = stop.changed() => changed.is_err() || *stop.borrow_and_update(),
        };
        match write_once(registry, &path, &backlog, start_time).await {
            Ok(()) => {
                if last_err.take().is_some() {
                    log_info!("metrics: {} written again", path.display());
                }
            }
            Err(e) => {
                if last_err.as_deref() != Some(e.as_str()) {
                    log_warn!("metrics: {e}");
                    last_err = Some(e);
                }
            }
        }
        if stopping {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("expirenza-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("agent.prom");
        write_atomic(&p, b"a 1\n").unwrap();
        write_atomic(&p, b"a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a 2\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("agent.prom")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rss_is_known_on_linux() {
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }
}
