//! Feeds the status board's "journal pending" figure: every `every`, the number of commands the
//! POS has not finished (pending or claimed). The count is one indexed query, run on the
//! blocking pool so a slow SD card never stalls the event loop; a journal that cannot be read
//! leaves the last figure and is logged once per distinct error. The same tick copies the
//! ORDERS_CACHE pusher's state (disabled / ok / failing) and the callback client's waits for a
//! free connection to the board.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::board::StatusBoard;
use crate::ctx::Ctx;

pub async fn feed(
    board: Arc<StatusBoard>,
    ctx: Arc<Ctx>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_err: Option<String> = None;
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            changed = stop.changed() => if changed.is_err() { break } else { continue },
        }
        board.set_cache_state(
            match (
                ctx.cfg.cache.enabled,
                ctx.cache_ok.load(std::sync::atomic::Ordering::Relaxed),
            ) {
                (false, _) => "disabled",
                (true, true) => "ok",
                (true, false) => "failing or not pushed yet (see the log)",
            },
        );
        callback_pool(&board, &ctx);
        let c = ctx.clone();
        let n = tokio::task::spawn_blocking(move || c.journal.pending_count()).await;
        match n {
            Ok(Ok(n)) => {
                board.set_journal_pending(n);
                last_err = None;
            }
            Ok(Err(e)) => {
                let msg = e.to_string();
                if last_err.as_deref() != Some(msg.as_str()) {
                    log_warn!("status: journal backlog unknown: {msg}");
                    last_err = Some(msg);
                }
            }
            Err(_) => {}
        }
    }
}

/// Copy the callback client's waits for a free connection to the board.
pub fn callback_pool(board: &StatusBoard, ctx: &Ctx) {
    if let Some(p) = ctx.callback.pool_stats() {
        board.set_callback_pool(super::snapshot::CallbackPool {
            max_connections: p.max_connections,
            waited: p.waited,
            longest_wait_ms: p.longest_wait_ms,
            gave_up: p.gave_up,
            waiting: p.waiting,
        });
    }
}
