//! The timed ORDERS_CACHE task.
//!
//! A tokio interval task (started by `agent::spawn` when `[cache] enabled`) that every
//! `interval_secs` runs one push: [`super::prepare`] on a mirror connection from the shared
//! pool (on the blocking pool), then a signed POST to `/callback/webhook` through the shared
//! callback client (async, on the runtime). It takes none of the dispatcher's `max_in_flight`
//! permits, so answering operations is never queued behind a push.
//!
//! - Deadline: tick start + interval. Retries stop there, so a push never overlaps the next one
//!   (missed ticks are delayed, not bunched) and the cloud hears from us at least every interval
//!   while it is reachable (it marks the cache stale after 15 s).
//! - Closed orders (`[compat] closed_orders = "separate"`, the default) go in a second POST to
//!   the same path right after the ORDERS_CACHE one, only when some order closed.
//! - Commit on success only: the new fingerprints replace the acknowledged ones after a 2xx
//!   (to both POSTs when there are two; otherwise the next push repeats them).
//! - `ctx.cache_ok` (versionInfo's `available` for ORDERS_CACHE) follows the last push.
//! - Logging: a line when pushes start failing or recover, then one warning a minute while they
//!   keep failing; each push is logged at debug level.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::tracker::Acked;
use super::{prepare_with, shape, Bounds, CacheError, TickStats};
use crate::ctx::Ctx;
use crate::shutdown::Shutdown;
use crate::sign::SignedBody;

/// Outcome of one push.
#[derive(Debug)]
pub struct Pushed {
    pub stats: TickStats,
    pub bytes: usize,
    pub attempts: u32,
}

/// One push: prepare and sign on the blocking pool, deliver by `deadline` on the runtime
/// (retries sleep on timers, holding no thread), commit on success. Returns the acknowledged
/// state to keep.
pub async fn push_once(
    ctx: &Arc<Ctx>,
    acked: Acked,
    deadline: Instant,
) -> (Acked, Result<Pushed, CacheError>) {
    let task_ctx = ctx.clone();
    let job = tokio::task::spawn_blocking(move || {
        let r = prepare_signed(&task_ctx, &acked);
        (acked, r)
    });
    let (mut acked, prepared) = match job.await {
        Ok(v) => v,
        Err(e) => {
            log_error!("cache: push task failed: {e}");
            return (Acked::default(), Err(CacheError::Task(e.to_string())));
        }
    };
    let (prepared, signed, closed) = match prepared {
        Ok(p) => p,
        Err(e) => return (acked, Err(e)),
    };
    let mut bytes = signed.len();
    let mut attempts = match ctx.callback.deliver(shape::PATH, &signed, deadline).await {
        Ok(d) => d.attempts,
        Err(e) => return (acked, Err(e.into())),
    };
    if let Some(closed) = closed {
        bytes += closed.len();
        match ctx.callback.deliver(shape::PATH, &closed, deadline).await {
            Ok(d) => attempts += d.attempts,
            Err(e) => return (acked, Err(e.into())),
        }
    }
    acked.replace(prepared.commit);
    let p = Pushed {
        stats: prepared.stats,
        bytes,
        attempts,
    };
    (acked, Ok(p))
}

/// The push's bodies, signed: the open orders and, if any, the closed-orders webhook.
type Signed = (super::Prepared, SignedBody, Option<SignedBody>);

fn prepare_signed(ctx: &Ctx, acked: &Acked) -> Result<Signed, CacheError> {
    let bounds = Bounds::from_config(&ctx.cfg);
    let closed_shape = ctx.cfg.compat.closed_orders;
    let event_time = crate::clock::utc_iso_now();
    // Mirror errors go back to the pool (which then drops the connection); a body-too-large
    // error rides inside `Ok` so a healthy connection is kept.
    let mut prepared = ctx.mirror.with(|c| {
        match prepare_with(c, acked, bounds, &event_time, closed_shape) {
            Err(CacheError::Mirror(m)) => Err(m),
            other => Ok(other),
        }
    })??;
    if prepared.stats.untracked > 0 {
        log_warn!(
            "cache: {} open orders exceed [cache] max_tracked_orders ({}); they are listed short, never in full",
            prepared.stats.untracked,
            bounds.max_tracked
        );
    }
    if prepared.stats.deferred > 0 {
        log_info!(
            "cache: {} changed order(s) did not fit in max_body_bytes ({}); sent next tick",
            prepared.stats.deferred,
            bounds.max_body
        );
    }
    let signed = SignedBody::new(&ctx.cfg.secret, std::mem::take(&mut prepared.body));
    let closed = prepared
        .closed_body
        .take()
        .map(|b| SignedBody::new(&ctx.cfg.secret, b));
    Ok((prepared, signed, closed))
}

/// Start the task; it ends when `shutdown` fires (after the push in progress, if any).
pub fn spawn(ctx: Arc<Ctx>, mut shutdown: Shutdown) -> JoinHandle<()> {
    tokio::spawn(async move {
        let interval = Duration::from_secs(ctx.cfg.cache.interval_secs);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut acked = Some(Acked::default());
        let mut failures: u64 = 0;
        let warn_every = (60 / interval.as_secs().max(1)).max(1);
        log_info!("cache: pushing ORDERS_CACHE every {}s", interval.as_secs());
        loop {
            tokio::select! {
                _ = shutdown.recv() => break,
                _ = ticker.tick() => {}
            }
            let deadline = Instant::now() + interval;
            let state = acked.take().unwrap_or_default();
            // The push ends by its deadline; shutdown waits for it rather than abandoning it.
            let (state, result) = push_once(&ctx, state, deadline).await;
            acked = Some(state);
            crate::metrics::cache_push(result.is_ok());
            match result {
                Ok(p) => {
                    if failures > 0 {
                        log_info!("cache: pushes work again after {failures} failure(s)");
                    }
                    failures = 0;
                    ctx.cache_ok.store(true, Ordering::Relaxed);
                    log_debug!(
                        "cache: pushed open={} full={} deferred={} closed={} bytes={} attempts={}",
                        p.stats.open,
                        p.stats.full,
                        p.stats.deferred,
                        p.stats.closed,
                        p.bytes,
                        p.attempts
                    );
                }
                Err(e) => {
                    ctx.cache_ok.store(false, Ordering::Relaxed);
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(warn_every) {
                        log_warn!("cache: push failed ({failures} in a row): {e}");
                    } else {
                        log_debug!("cache: push failed ({failures} in a row): {e}");
                    }
                }
            }
        }
        ctx.cache_ok.store(false, Ordering::Relaxed);
        log_info!("cache: stopped");
    })
}
