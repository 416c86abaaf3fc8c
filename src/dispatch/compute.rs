//! Compute: where a request runs, then the operation itself: inline on the event loop (a
//! short read), on a compute slot of the blocking pool, or on a journal writer's slot; a
//! journaled command goes through the wait for the POS (`wait.rs`) and computes again for its
//! answer (see `mod.rs`).
//!
//! **An inline read and a stalled SD card.** An inline read never waits for a lock (a locked
//! mirror sends it to the pool), but it does read the mirror file: a page that is not in the
//! kernel's page cache is read from the card by a `read` system call on this thread. If the card
//! stalls (a worn card retrying a sector), that call stalls, and the event loop with it: no frame
//! is read, no ping answered, no timer fires and no callback goes out until it returns. Nothing
//! on the event loop can see or bound a system call that does not return, so the process is
//! watched from outside: the systemd watchdog heartbeat is sent by a task on this same loop
//! (`systemd.rs`), so a stall longer than the unit's `WatchdogSec=` (30 s) stops the heartbeat,
//! and systemd kills the agent (the signal takes effect once the read returns: a process cannot
//! die inside an uninterruptible read) and starts it again. The requests in hand then get no
//! callback; a journaled command is already durable (the POS applies it, and a repeat of its
//! rID is answered from its row). A shorter stall delays every request in hand by its length; one longer than
//! `[link] dead_after_secs` may also end the link (its silence timer can fire before the frames
//! that arrived meanwhile are read), which then reconnects. `[limits] inline_reads = false`
//! computes every read on the pool, where a stalled card holds a pool thread, not the loop.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::admission::{Active, Job, Work};
use super::{wait, Failure, Inner, Kept};
use crate::body_stream::StreamBody;
use crate::ops::{self, substate, Answer, Ctx, Op, OpError, Resume};
use crate::request::Envelope;
use crate::sign::SignedBody;

/// What the compute stage produced.
pub(super) enum Computed {
    Send {
        body: SignedBody,
        path: String,
        outcome: String,
    },
    Nothing {
        outcome: String,
    },
    Await {
        id: i64,
        resume: Resume,
    },
    /// A body too large to hold (menuInfo): signed and measured, streamed by the transport.
    Stream {
        body: StreamBody,
        path: String,
        outcome: String,
    },
    Fail(Failure),
}

/// Where a request computes, decided before it starts.
pub(super) enum Slot {
    /// A short mirror read, computed on this (the event-loop) thread. It holds its delivery
    /// slot from the start, so an answer is built only when it can be sent at once.
    Inline(Option<OwnedSemaphorePermit>),
    /// A compute slot for the blocking pool.
    Pool(OwnedSemaphorePermit),
    /// Not started: the agent is stopping.
    Stopping,
    /// Nothing to compute (a dispatcher FAIL).
    None,
}

/// Wait for where `job` computes. During shutdown the slot is released at once (the request
/// answers AGENT_STOPPING), so requests queued here drain quickly.
pub(super) async fn place(inner: &Inner, job: &Job, active: &mut Option<Active>) -> Slot {
    let slot = match &job.work {
        Ok(w) if inner.inline_reads && w.op.is_inline() => {
            let d = inner.delivering.clone().acquire_owned().await.ok();
            Slot::Inline(d)
        }
        // Operations that write the journal have slots and threads of their own: one waiting
        // for a POS's lock on the journal holds no slot a read needs. Waiting for a slot holds
        // no thread and no started-request place; the lock deadline runs from arrival all the
        // same (`compute_and_wait`).
        Ok(w) if w.op.writes_journal() => {
            let permit = match inner.writer.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    drop(active.take());
                    inner.writer.clone().acquire_owned().await.ok()
                }
            };
            match permit {
                Some(p) => Slot::Pool(p),
                None => Slot::Stopping,
            }
        }
        Ok(_) => match inner.compute.clone().acquire_owned().await.ok() {
            Some(p) => Slot::Pool(p),
            None => Slot::Stopping,
        },
        Err(_) => Slot::None,
    };
    match slot {
        Slot::Inline(_) | Slot::Pool(_) if inner.is_stopping() => Slot::Stopping,
        s => s,
    }
}

/// Compute the request in its slot, until its answer is final. Returns it, with the delivery
/// slot an inline read took before it computed.
pub(super) async fn compute(
    inner: &Arc<Inner>,
    work: Result<Box<Work>, Failure>,
    slot: Slot,
    received: Instant,
    active: &mut Option<Active>,
) -> (Computed, Option<OwnedSemaphorePermit>) {
    let ctx = &inner.ctx;
    let mut delivery = None;
    let computed = match (work, slot) {
        (Err(f), _) => Computed::Fail(f),
        (Ok(w), Slot::Stopping | Slot::None) => {
            let Work { op, frame, .. } = *w;
            Computed::Fail(Failure::stopping(op.name(), Some(op)).keeping(op, frame))
        }
        (Ok(w), Slot::Inline(d)) => {
            delivery = d;
            let Work { env, op, frame } = *w;
            match compute_inline(ctx, op, &env, &frame) {
                Some(c) => c,
                None if inner.is_stopping() => {
                    Computed::Fail(Failure::stopping(op.name(), Some(op)))
                }
                // The mirror is locked: the blocking pool may wait for it, this thread may not.
                // The delivery slot is given back while it waits for a compute slot.
                None => {
                    use std::sync::atomic::Ordering::Relaxed;
                    inner.counters.inline_fallbacks.fetch_add(1, Relaxed);
                    drop(delivery.take());
                    match inner.compute.clone().acquire_owned().await.ok() {
                        Some(p) => {
                            compute_and_wait(inner, env, op, frame, p, received, active).await
                        }
                        None => Computed::Fail(Failure::stopping(op.name(), Some(op))),
                    }
                }
            }
        }
        (Ok(w), Slot::Pool(p)) => {
            let Work { env, op, frame } = *w;
            compute_and_wait(inner, env, op, frame, p, received, active).await
        }
    };
    (computed, delivery)
}

/// An inline read on this thread, refusing to wait for a mirror lock: `None` when it met one
/// (the caller gives the request to the blocking pool). Reads have no side effects, so the
/// attempt leaves nothing behind.
fn compute_inline(ctx: &Ctx, op: Op, env: &Envelope, frame: &[u8]) -> Option<Computed> {
    let (r, met_lock) = crate::mirror::no_wait(|| ops::handle(op, ctx, env, frame));
    if met_lock {
        log_debug!(
            "op={} rID={}: the mirror is locked; computing on the blocking pool",
            op.name(),
            env.rid
        );
        return None;
    }
    Some(prepare(ctx, op, &env.rid, r))
}

/// Compute, and for a journaled command wait for the POS and compute the rest, until the
/// answer is final. A journal write waits for the journal's lock until `received` +
/// `[journal] busy_timeout_ms` at most (`journal::lock`).
async fn compute_and_wait(
    inner: &Arc<Inner>,
    env: Envelope,
    op: Op,
    frame: Vec<u8>,
    permit: OwnedSemaphorePermit,
    received: Instant,
    active: &mut Option<Active>,
) -> Computed {
    let ctx = inner.ctx.clone();
    let rid = env.rid.to_string();
    let lock_deadline = received + ctx.journal.busy_timeout;
    let mut step = blocking(op, move || {
        let _permit = permit;
        crate::journal::lock::until(lock_deadline, || {
            prepare(&ctx, op, &env.rid, ops::handle(op, &ctx, &env, &frame))
        })
    })
    .await;
    while let Computed::Await { id, resume } = step {
        // Waiting for the POS is not active work: the next queued request may start.
        drop(active.take());
        let now = wait::wait_pos(inner, id, received).await;
        let permit = inner.compute.clone().acquire_owned().await;
        let (ctx, rid) = (inner.ctx.clone(), rid.clone());
        step = blocking(op, move || {
            let _permit = permit;
            let r = resume(&ctx, now);
            prepare(&ctx, op, &rid, r)
        })
        .await;
    }
    step
}

/// Spool the frame of a money operation refused before it started (`f` is its FAIL, sent
/// next), on the blocking pool, one append at a time ([`Inner::spooling`]). The caller holds
/// no compute, writer or delivery slot and no started-request place meanwhile.
pub(super) async fn keep(inner: &Inner, rid: &str, k: Kept, f: &Failure) {
    let _turn = inner.spooling.acquire().await;
    let (ctx, rid, sub, message) = (
        inner.ctx.clone(),
        rid.to_string(),
        f.substate,
        f.message.clone(),
    );
    let task = tokio::task::spawn_blocking(move || {
        ops::journaled::keep_refused(&ctx, &rid, k.op, &k.frame, k.whole, sub, &message)
    });
    if let Err(e) = task.await {
        log_error!("dispatch: spooling a refused request failed inside the agent: {e}");
    }
}

/// Run `f` on the blocking pool; a panic in it (debug builds; release aborts) is a FAIL.
async fn blocking(op: Op, f: impl FnOnce() -> Computed + Send + 'static) -> Computed {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Computed::Fail(Failure::for_op(
            substate::AGENT_ERROR,
            format!("the operation failed inside the agent: {e}"),
            op.name(),
            Some(op),
        ))
    })
}

/// Turn an operation's result into what the next stage needs (signing on the blocking pool).
fn prepare(ctx: &Ctx, op: Op, rid: &str, r: Result<Answer, OpError>) -> Computed {
    match r {
        Ok(Answer::Callback { body, outcome }) => Computed::Send {
            body: SignedBody::new(&ctx.cfg.secret, body),
            path: op.callback_path().unwrap_or(op.name()).to_string(),
            outcome,
        },
        Ok(Answer::None { outcome }) => Computed::Nothing { outcome },
        Ok(Answer::AwaitPos { id, resume }) => Computed::Await { id, resume },
        Ok(Answer::Stream { body, outcome }) => Computed::Stream {
            body,
            path: op.callback_path().unwrap_or(op.name()).to_string(),
            outcome,
        },
        Err(e) => {
            log_error!("{} rID={rid} failed: {e}; answering FAIL", op.name());
            Computed::Fail(Failure::from_op_error(&e, op))
        }
    }
}
