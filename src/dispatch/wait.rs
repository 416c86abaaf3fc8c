//! The wait for the POS: a journaled command's row polled on a tokio timer until the POS has
//! finished it (see `mod.rs`). The POS is another process writing the same SQLite file, and
//! SQLite has no cross-process notification, so this polls: every `[journal]
//! poll_interval_ms`, one primary-key read per poll.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Inner;
use crate::config::ANSWER_MARGIN_SECS;
use crate::journal::{Command, JournalError};

/// Poll command `id` on a timer until the POS finished it, the ack timeout passed, or the
/// agent is stopping; the row as it then stands. Holds a `max_waiting` slot, no thread; each
/// check is one primary-key read. The wait ends [`ANSWER_MARGIN_SECS`] before the request's
/// callback deadline at the latest, whatever it waited before (queue, journal lock), so its
/// answer keeps that long to be delivered.
pub(super) async fn wait_pos(
    inner: &Arc<Inner>,
    id: i64,
    received: Instant,
) -> Result<Command, JournalError> {
    let j = &inner.ctx.journal;
    let margin = Duration::from_secs(ANSWER_MARGIN_SECS);
    let answer_by = (received + inner.ctx.cfg.callback_deadline())
        .checked_sub(margin)
        .unwrap_or(received);
    // The time left, counted on the runtime's clock from now (the same clock as the timers).
    let left = answer_by.saturating_duration_since(Instant::now());
    let deadline = tokio::time::Instant::now() + j.ack_timeout.min(left);
    let mut stop = inner.stop_signal();
    let slot = tokio::select! {
        s = inner.waiting.clone().acquire_owned() => s.ok(),
        _ = tokio::time::sleep_until(deadline) => None,
        _ = stop.wait_for(|s| *s) => None,
    };
    loop {
        let now = tokio::time::Instant::now();
        if slot.is_none() || now >= deadline || inner.is_stopping() {
            return check(inner, id).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(j.poll_interval.min(deadline - now)) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        let cmd = check(inner, id).await?;
        if cmd.status.is_final() {
            return Ok(cmd);
        }
    }
}

/// One primary-key read: on this thread when it needs no wait, else on the pool.
async fn check(inner: &Arc<Inner>, id: i64) -> Result<Command, JournalError> {
    if inner.inline_reads {
        if let Some(cmd) = inner.ctx.journal.peek(id) {
            return Ok(cmd);
        }
    }
    let permit = inner.compute.clone().acquire_owned().await;
    let ctx = inner.ctx.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        ctx.journal.get(id)
    })
    .await
    .unwrap_or_else(|e| Err(JournalError::Sqlite(format!("poll task failed: {e}"))))
}
