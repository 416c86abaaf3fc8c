//! The writer task: rewrites the status file every few seconds, and once more on shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::board::StatusBoard;
/// Rewrite the status file every `every` until `stop` turns true (or its sender is dropped);
/// then mark the link down with reason `shutdown` and write once more. Write errors are logged
/// (once per distinct error, not every tick) and never stop the agent. The blocking file work
/// runs on tokio's blocking pool so a slow SD card cannot stall the event loop.
pub async fn writer(
    board: Arc<StatusBoard>,
    path: PathBuf,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // The runtime directory exists under the unit (RuntimeDirectory=); elsewhere create it
    // (a failure shows up as the first write's logged error).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_err: Option<String> = None;
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => write_logged(&board, &path, &mut last_err).await,
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    board.link_down("shutdown");
    write_logged(&board, &path, &mut last_err).await;
}

async fn write_logged(board: &StatusBoard, path: &Path, last_err: &mut Option<String>) {
    let snap = board.snapshot();
    let p = path.to_path_buf();
    let res = tokio::task::spawn_blocking(move || super::snapshot::write(&p, &snap))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    match res {
        Ok(()) => *last_err = None,
        Err(e) => {
            let msg = e.to_string();
            if last_err.as_deref() != Some(msg.as_str()) {
                crate::log_warn!("cannot write the status file {}: {msg}", path.display());
                *last_err = Some(msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::snapshot::read;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("expirenza-writer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test(start_paused = true)]
    async fn writer_rewrites_and_marks_shutdown() {
        let dir = temp_dir("rw");
        let path = dir.join("status");
        let board = Arc::new(StatusBoard::new("resto-9"));
        board.link_up();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(writer(
            board.clone(),
            path.clone(),
            Duration::from_secs(5),
            rx,
        ));
        // The first write happens at once, on the blocking pool. The paused clock does not
        // advance while a blocking task runs, so when this 1 s sleep ends (before the 5 s tick)
        // that write is done.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = read(&path).unwrap();
        assert_eq!((s.link.as_str(), s.resto_id.as_str()), ("up", "resto-9"));
        board.op_done("getBill", true);
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the writer stops")
            .unwrap();
        let s = read(&path).unwrap();
        assert_eq!(s.link, "down");
        assert_eq!(s.last_disconnect_reason.as_deref(), Some("shutdown"));
        assert_eq!(s.answered_last_hour, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(start_paused = true)]
    async fn writer_survives_an_unwritable_path_and_still_marks_shutdown() {
        let board = Arc::new(StatusBoard::new("r"));
        board.link_up();
        let (tx, rx) = watch::channel(false);
        // Under a regular file: neither the directory nor the file can be created, even by
        // root (the writer creates a missing runtime directory).
        let dir = temp_dir("unwritable");
        std::fs::write(dir.join("file"), b"").unwrap();
        let path = dir.join("file/x/status");
        let task = tokio::spawn(writer(
            board.clone(),
            path.clone(),
            Duration::from_millis(100),
            rx,
        ));
        // several failing ticks (paused clock: no real waiting)
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert!(!task.is_finished(), "a write error must not end the writer");
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the writer stops")
            .unwrap();
        assert!(!path.exists());
        let s = board.snapshot();
        assert_eq!(s.link, "down");
        assert_eq!(s.last_disconnect_reason.as_deref(), Some("shutdown"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(start_paused = true)]
    async fn writer_creates_a_missing_runtime_directory() {
        let dir = temp_dir("mkdir");
        let path = dir.join("run/expirenza-agent/status");
        let board = Arc::new(StatusBoard::new("r"));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(writer(board, path.clone(), Duration::from_secs(5), rx));
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the writer stops")
            .unwrap();
        assert!(read(&path).is_ok(), "written into the directory it created");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
