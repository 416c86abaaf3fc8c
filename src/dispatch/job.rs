//! One request's life after admission: compute, wait for the POS, deliver (see `mod.rs`).
//!
//! One log line per request: operation, rID, outcome, bytes, attempts, milliseconds.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::{Active, Inner, Ticket};
use crate::body_stream::{StreamBody, CHUNK, CHUNKS_IN_FLIGHT};
use crate::callback::CallbackError;
use crate::config::ANSWER_MARGIN_SECS;
use crate::journal::{Command, JournalError};
use crate::metrics::Outcome;
use crate::ops::{self, substate, Answer, Ctx, Op, OpError, Resume};
use crate::request::Envelope;
use crate::sign::SignedBody;

/// A FAIL the dispatcher answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub substate: &'static str,
    pub message: String,
    /// Callback path; `None` for operations that have no answer (showMessage, setSettings).
    pub path: Option<String>,
}

impl Failure {
    pub fn new(substate: &'static str, message: String, path: String) -> Failure {
        Failure {
            substate,
            message,
            path: Some(path),
        }
    }
    fn for_op(substate: &'static str, message: String, op_name: &str, op: Option<Op>) -> Failure {
        let path = match op {
            Some(op) => op.callback_path().map(str::to_string),
            None => Some(super::fail_path(Some(op_name))),
        };
        Failure {
            substate,
            message,
            path,
        }
    }
    pub fn busy(op_name: &str, op: Option<Op>) -> Failure {
        Failure::for_op(
            substate::AGENT_BUSY,
            "the agent has too many requests in hand; not started, send it again".into(),
            op_name,
            op,
        )
    }
    pub fn stopping(op_name: &str, op: Option<Op>) -> Failure {
        Failure::for_op(
            substate::AGENT_STOPPING,
            "the agent is stopping; not started, send it again".into(),
            op_name,
            op,
        )
    }
    fn from_op_error(e: &OpError, op: Op) -> Failure {
        let sub = match e {
            OpError::TooLarge(_) => substate::ANSWER_TOO_LARGE,
            OpError::Mirror(_) => substate::POS_UNAVAILABLE,
            OpError::Other(_) => substate::AGENT_ERROR,
        };
        Failure::for_op(sub, e.to_string(), op.name(), Some(op))
    }
}

/// A request admitted by `submit`.
pub struct Job {
    pub rid: String,
    pub op_name: String,
    pub work: Result<Box<Work>, Failure>,
    pub received: Instant,
}

/// A request to compute: its envelope, operation and frame.
pub struct Work {
    pub env: Envelope,
    pub op: Op,
    pub frame: Vec<u8>,
}

/// What the compute stage produced.
enum Computed {
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
enum Slot {
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

/// Run one request to its end: compute (and wait), then deliver exactly one callback.
///
/// Most requests of a burst wait in the dispatcher's queue as bare frames; a task exists only
/// for a request that has started (`active`, given back when it is done or when it starts
/// waiting for the POS). Its first step is kept small and the rest of the state machine is
/// boxed once the slot is held.
pub(crate) async fn run_job(
    inner: Arc<Inner>,
    job: Job,
    ticket: Ticket,
    mut active: Option<Active>,
) {
    let start = Instant::now();
    // During shutdown the slot is released at once (the request answers AGENT_STOPPING), so
    // requests queued here drain quickly.
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
    let slot = match slot {
        Slot::Inline(_) | Slot::Pool(_) if inner.is_stopping() => Slot::Stopping,
        s => s,
    };
    Box::pin(run_admitted(inner, job, ticket, slot, start, active)).await
}

async fn run_admitted(
    inner: Arc<Inner>,
    job: Job,
    mut ticket: Ticket,
    slot: Slot,
    start: Instant,
    mut active: Option<Active>,
) {
    let Job {
        rid,
        op_name,
        work,
        received,
    } = job;
    let ctx = inner.ctx.clone();
    let mut delivery = None;
    let computed = match (work, slot) {
        (Err(f), _) => Computed::Fail(f),
        (Ok(w), Slot::Stopping | Slot::None) => {
            Computed::Fail(Failure::stopping(w.op.name(), Some(w.op)))
        }
        (Ok(w), Slot::Inline(d)) => {
            delivery = d;
            let Work { env, op, frame } = *w;
            match compute_inline(&ctx, op, &env, &frame) {
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
                            compute_and_wait(&inner, env, op, frame, p, received, &mut active).await
                        }
                        None => Computed::Fail(Failure::stopping(op.name(), Some(op))),
                    }
                }
            }
        }
        (Ok(w), Slot::Pool(p)) => {
            let Work { env, op, frame } = *w;
            compute_and_wait(&inner, env, op, frame, p, received, &mut active).await
        }
    };
    let ready = match computed {
        Computed::Stream {
            body,
            path,
            outcome,
        } => {
            let deadline = received + ctx.cfg.callback_deadline();
            // In memory while it streams: the chunks in flight and the one being filled.
            ticket.grow(CHUNK * (CHUNKS_IN_FLIGHT + 1));
            let slot = deliver_slot(&inner, delivery.take()).await;
            let r = ctx.callback.deliver_stream(&path, &body, deadline).await;
            if let Err(CallbackError::TooLarge { size, .. }) = &r {
                // A transport that cannot stream: answer a FAIL rather than nothing.
                let f = Failure::new(
                    substate::ANSWER_TOO_LARGE,
                    format!("the answer of {size} bytes cannot be streamed by this transport"),
                    path.clone(),
                );
                if let Some((fail, _)) = fail_signed(&ctx, &rid, &f) {
                    log_error!("op={op_name} rID={rid}: {}; answering FAIL", f.message);
                    let r = ctx.callback.deliver(&path, &fail, deadline).await;
                    drop(slot);
                    let len = fail.len();
                    return done(
                        &inner,
                        &op_name,
                        &rid,
                        "FAIL ANSWER_TOO_LARGE",
                        len,
                        r,
                        false,
                        start,
                    );
                }
            }
            drop(slot);
            let outcome = format!("{outcome} streamed");
            return done(&inner, &op_name, &rid, &outcome, body.len(), r, true, start);
        }
        Computed::Send {
            body,
            path,
            outcome,
        } => Some((body, path, outcome, true)),
        Computed::Nothing { outcome } => {
            log_info!(
                "op={op_name} rID={rid} outcome={outcome} ms={:.1}",
                ms(start)
            );
            return finish(&inner, &op_name, true, Outcome::NoAnswer, start);
        }
        // compute_and_wait loops until the answer is final; an Await cannot reach here.
        Computed::Await { .. } => fail_or_log(&inner, &ctx, &op_name, &rid, start, agent_error()),
        Computed::Fail(f) => fail_or_log(&inner, &ctx, &op_name, &rid, start, f),
    };
    let Some((body, path, outcome, own)) = ready else {
        return;
    };
    // Deliver: its own cap; the answer's bytes count against admission until it is done.
    ticket.grow(body.len());
    let slot = deliver_slot(&inner, delivery.take()).await;
    let deadline = received + ctx.cfg.callback_deadline();
    let mut r = ctx.callback.deliver(&path, &body, deadline).await;
    let (mut outcome, mut bytes, mut own) = (outcome, body.len(), own);
    if let Err(CallbackError::TooLarge { size, cap }) = &r {
        // A body the transport refuses (over max_body_bytes): answer a FAIL instead.
        let f = Failure::new(
            substate::ANSWER_TOO_LARGE,
            format!("the answer of {size} bytes exceeds max_body_bytes ({cap})"),
            path.clone(),
        );
        if let Some((fail, _)) = fail_signed(&ctx, &rid, &f) {
            log_error!("op={op_name} rID={rid}: {}; answering FAIL", f.message);
            (outcome, bytes, own) = ("FAIL ANSWER_TOO_LARGE".into(), fail.len(), false);
            r = ctx.callback.deliver(&path, &fail, deadline).await;
        }
    }
    drop(slot);
    done(&inner, &op_name, &rid, &outcome, bytes, r, own, start);
}

/// The delivery slot: the one an inline read took before it computed, or a new one.
async fn deliver_slot(
    inner: &Inner,
    held: Option<OwnedSemaphorePermit>,
) -> Option<OwnedSemaphorePermit> {
    match held {
        Some(p) => Some(p),
        None => inner.delivering.clone().acquire_owned().await.ok(),
    }
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

fn agent_error() -> Failure {
    Failure {
        substate: substate::AGENT_ERROR,
        message: "the operation did not finish".into(),
        path: None,
    }
}

/// A dispatcher FAIL ready to deliver, or (for an operation with no callback) a log line.
fn fail_or_log(
    inner: &Inner,
    ctx: &Ctx,
    op_name: &str,
    rid: &str,
    start: Instant,
    f: Failure,
) -> Option<(SignedBody, String, String, bool)> {
    match fail_signed(ctx, rid, &f) {
        Some((body, path)) => Some((body, path, format!("FAIL {}", f.substate), false)),
        None => {
            log_error!(
                "op={op_name} rID={rid} outcome=FAIL {} (no callback for this operation): {} ms={:.1}",
                f.substate,
                f.message,
                ms(start)
            );
            finish(inner, op_name, false, Outcome::Error, start);
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn done(
    inner: &Inner,
    op_name: &str,
    rid: &str,
    outcome: &str,
    bytes: usize,
    r: Result<crate::callback::Delivered, CallbackError>,
    own: bool,
    start: Instant,
) {
    match r {
        Ok(d) => {
            log_info!(
                "op={op_name} rID={rid} outcome={outcome} bytes={bytes} attempts={} ms={:.1}",
                d.attempts,
                ms(start)
            );
            finish(inner, op_name, own, Outcome::of_answer(outcome), start);
        }
        Err(e) => {
            log_error!(
                "op={op_name} rID={rid} outcome={outcome} callback-failed: {e} ms={:.1}",
                ms(start)
            );
            finish(inner, op_name, false, Outcome::Undelivered, start);
        }
    }
}

/// The operation's name for the metrics (a fixed set: unknown names are `unknown`).
pub(crate) fn metric_name(op_name: &str) -> &'static str {
    Op::from_name(op_name).map_or("unknown", Op::name)
}

fn finish(inner: &Inner, op_name: &str, ok: bool, metric: Outcome, start: Instant) {
    use std::sync::atomic::Ordering::Relaxed;
    crate::metrics::op_finished(metric_name(op_name), metric, start.elapsed());
    let c = &inner.counters;
    (if ok { &c.answered } else { &c.failed }).fetch_add(1, Relaxed);
    inner.events.op_done(op_name, ok);
}

fn ms(s: Instant) -> f64 {
    s.elapsed().as_secs_f64() * 1000.0
}

/// `{"rID":…,"state":"FAIL","substate":…,"errorMessage":…}`, signed, and its path.
fn fail_signed(ctx: &Ctx, rid: &str, f: &Failure) -> Option<(SignedBody, String)> {
    let path = f.path.clone()?;
    let mut j = ctx.body();
    j.begin_obj()
        .f_str("rID", rid)
        .f_str("state", "FAIL")
        .f_str("substate", f.substate)
        .f_str("errorMessage", &f.message)
        .end_obj();
    let body = j.finish().ok()?;
    Some((SignedBody::new(&ctx.cfg.secret, body), path))
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
        let now = wait_pos(inner, id, received).await;
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

/// The wait stage: poll command `id` on a timer until the POS finished it, the ack timeout
/// passed, or the agent is stopping. Holds a `max_waiting` slot, no thread; each check takes
/// a compute slot for one primary-key read. The wait ends [`ANSWER_MARGIN_SECS`] before the
/// request's callback deadline at the latest, whatever it waited before (queue, journal lock),
/// so its answer keeps that long to be delivered.
async fn wait_pos(inner: &Arc<Inner>, id: i64, received: Instant) -> Result<Command, JournalError> {
    let j = &inner.ctx.journal;
    let margin = std::time::Duration::from_secs(ANSWER_MARGIN_SECS);
    let answer_by = (received + inner.ctx.cfg.callback_deadline())
        .checked_sub(margin)
        .unwrap_or(received);
    let deadline = (tokio::time::Instant::now() + j.ack_timeout)
        .min(tokio::time::Instant::from_std(answer_by));
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

async fn check(inner: &Arc<Inner>, id: i64) -> Result<Command, JournalError> {
    // One primary-key read: on this thread when it needs no wait, else on the pool.
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
