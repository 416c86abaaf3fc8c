//! From a text frame to exactly one callback: the request lifecycle in stages.
//!
//! The link calls [`Dispatcher::submit`] for every text frame. `submit` never blocks and never
//! panics: it admits the frame (a bare copy in a queue) or answers it FAIL at once. A queued
//! request starts as one small tokio task when fewer than `max_in_flight + max_delivering`
//! have started and are not done; it then runs [`job::run_job`] through four stages, each
//! with its own budget:
//!
//! 1. **admission** — bounded by bytes, not by count: a request costs its frame plus
//!    [`REQUEST_OVERHEAD`] bytes, and its answer's bytes once built, until its callback is
//!    done. Past `[limits] max_pending_bytes` (default 4 MiB) it is answered FAIL `AGENT_BUSY`
//!    at once; those FAILs draw on a reserve of an eighth of the bound. Past that too, the
//!    request is logged and counted, and gets no callback.
//! 2. **compute** — parse, read the mirror or write the journal, build and sign the answer.
//!    A short read (`Op::is_inline`: checkWork, getBill, tablesInfo, ...) runs right here on
//!    the event loop when `[limits] inline_reads` is on (the default): no hand-off to another
//!    thread and back. It takes its delivery slot first, so an answer is built only when it
//!    can be sent at once, and it never waits for a mirror lock: a locked mirror sends it to
//!    the blocking pool instead. menuInfo (it can be large) and reads that met a lock run on
//!    the blocking pool, at most `[limits] max_in_flight` (default: the number of CPUs) at
//!    once. Operations that write the journal (they fsync, and may wait up to `[journal]
//!    busy_timeout_ms` for a POS's lock, counted from arrival) have `max_in_flight` pool
//!    threads of their own, outside those slots; one waiting for its turn holds no thread.
//! 3. **wait** — a journaled command waits for the POS's acknowledgement on a tokio timer,
//!    holding no thread, no compute slot and no started-request place; each poll is one
//!    primary-key read of the journal on the event loop through a connection that never waits
//!    (on the pool if it would). At most `[limits] max_waiting` (64) at once.
//! 4. **deliver** — the signed POST and its retries, which sleep on tokio timers: at most
//!    `[limits] max_delivering` (64) at once, on at most `[callback] max_connections`.
//!
//! A read therefore never waits behind a payment waiting for the POS, nor behind a callback
//! being retried: neither holds a compute slot.
//!
//! **Exactly one callback** for every request whose rID can be read: the answer, or a prompt
//! FAIL with a sub-state from `ops/substate.rs` — `AGENT_BUSY` (admission), `BAD_REQUEST` (the
//! frame does not parse but its rID can be read), `UNKNOWN_OPERATION`, `ANSWER_TOO_LARGE`,
//! `POS_UNAVAILABLE` (mirror error), `AGENT_STOPPING` (shutdown before compute). Only a
//! frame whose rID cannot be recovered stays unanswered: one log line, counted in
//! [`Counters::unanswered`]. Every outcome reaches [`OpEvents::op_done`] (the status board).

#![deny(clippy::string_slice, clippy::indexing_slicing)]

pub mod job;

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, Semaphore};

use crate::metrics::Outcome;
use crate::ops::{substate, Ctx, Op};
use crate::request::{parse_envelope, sniff_field, sniff_rid};
use crate::shutdown::Shutdown;
use job::{Failure, Job};

/// Admission cost of a request beyond its frame's bytes (its queue entry and bookkeeping).
pub const REQUEST_OVERHEAD: usize = 128;

/// A request admitted and not yet started: the frame and when it arrived, nothing more, so a
/// burst of thousands costs little more than its frames.
struct Queued {
    frame: Box<[u8]>,
    received: Instant,
}

/// Admitted requests in arrival order, and how many have started and are not done.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Queued>,
    active: usize,
}

/// Who wants to know about finished requests (the status board; tests).
pub trait OpEvents: Send + Sync {
    /// `ok`: the answer (SUCCESS or an operation's own FAIL) was delivered. `false` for every
    /// other outcome: a dispatcher FAIL, an undeliverable callback, or no callback.
    fn op_done(&self, operation: &str, ok: bool);
}

/// Counters, readable at any time (the benchmark and tests print them). Every frame ends in
/// exactly one of `answered`, `failed` or `unanswered`; the others say why.
#[derive(Default, Debug)]
pub struct Counters {
    pub received: AtomicU64,
    /// Frames that did not parse as a request (answered `BAD_REQUEST` when the rID is readable).
    pub rejected_frames: AtomicU64,
    /// Requests naming no known operation (answered `UNKNOWN_OPERATION`).
    pub unknown_ops: AtomicU64,
    /// Requests refused at admission (answered `AGENT_BUSY`, or unanswered past the reserve).
    pub queue_full: AtomicU64,
    /// Requests refused because the agent was stopping (answered `AGENT_STOPPING`).
    pub stopping: AtomicU64,
    /// Operations whose own answer was delivered (or that need none).
    pub answered: AtomicU64,
    /// Requests that ended otherwise: a dispatcher FAIL, or a callback that failed.
    pub failed: AtomicU64,
    /// Requests that got no callback because no rID could be recovered (or the FAIL reserve
    /// was exhausted).
    pub unanswered: AtomicU64,
    /// Inline reads that met a locked mirror and were computed on the blocking pool instead.
    pub inline_fallbacks: AtomicU64,
}

/// The shared state of the stages.
pub(crate) struct Inner {
    pub ctx: Arc<Ctx>,
    pub events: Arc<dyn OpEvents>,
    pub counters: Arc<Counters>,
    pub compute: Arc<Semaphore>,
    /// Operations that write the journal (`Op::writes_journal`): `max_in_flight` at once, on
    /// pool threads of their own, outside `compute`.
    pub writer: Arc<Semaphore>,
    pub waiting: Arc<Semaphore>,
    pub delivering: Arc<Semaphore>,
    pending: AtomicUsize,
    reserve: AtomicUsize,
    max_pending: usize,
    live: AtomicUsize,
    idle: Notify,
    stopping: watch::Sender<bool>,
    queue: Mutex<Queue>,
    /// Requests started at once (a task each): `max_in_flight + max_delivering`, enough to
    /// keep the compute and delivery stages full. A request waiting for the POS is not counted.
    max_active: usize,
    /// `[limits] inline_reads`: short reads computed on the event loop.
    pub inline_reads: bool,
}

impl Inner {
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }
}

/// Admitted bytes of one request, returned when it is dropped (its callback is done).
pub(crate) struct Ticket {
    inner: Arc<Inner>,
    bytes: usize,
    reserve: bool,
}

impl Ticket {
    fn pool(&self) -> &AtomicUsize {
        if self.reserve {
            &self.inner.reserve
        } else {
            &self.inner.pending
        }
    }
    /// Charge `n` more bytes (an answer built for delivery).
    pub fn grow(&mut self, n: usize) {
        self.pool().fetch_add(n, Ordering::Relaxed);
        self.bytes += n;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pool().fetch_sub(self.bytes, Ordering::Relaxed);
        if self.inner.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

/// A started request: given back when it is done or starts waiting for the POS, which lets
/// the next queued request start.
pub(crate) struct Active {
    inner: Arc<Inner>,
}

impl Drop for Active {
    fn drop(&mut self) {
        lock(&self.inner.queue).active -= 1;
        pump(&self.inner);
    }
}

fn lock(q: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    q.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    static PUMPING: Cell<bool> = const { Cell::new(false) };
}

/// Start queued requests while fewer than `max_active` are running. A call made while this
/// thread is already pumping (a task dropped at once) returns: the outer loop goes on.
fn pump(inner: &Arc<Inner>) {
    if PUMPING.with(|p| p.replace(true)) {
        return;
    }
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PUMPING.with(|p| p.set(false));
        }
    }
    let _reset = Reset;
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    loop {
        let q = {
            let mut g = lock(&inner.queue);
            if g.active >= inner.max_active {
                return;
            }
            let Some(q) = g.waiting.pop_front() else {
                return;
            };
            g.active += 1;
            q
        };
        let active = Active {
            inner: inner.clone(),
        };
        let ticket = Ticket {
            inner: inner.clone(),
            bytes: q.frame.len() + REQUEST_OVERHEAD,
            reserve: false,
        };
        if let Some(job) = read_request(inner, &q.frame, q.received) {
            rt.spawn(job::run_job(inner.clone(), job, ticket, Some(active)));
        }
    }
}

/// Read a frame's envelope into a [`Job`]; `None` when no rID can be recovered (logged,
/// counted as unanswered).
fn read_request(inner: &Inner, frame: &[u8], received: Instant) -> Option<Job> {
    let c = &inner.counters;
    let (rid, op_name, work) = match parse_envelope(frame) {
        Ok(env) => match Op::from_name(&env.operation) {
            Some(op) => {
                let (rid, name) = (env.rid.to_string(), op.name().to_string());
                (rid, name, Ok((env, op)))
            }
            None => {
                c.unknown_ops.fetch_add(1, Ordering::Relaxed);
                let name = env.operation.to_string();
                log_warn!(
                    "dispatch: unknown operation {name:?} rID={}; answering FAIL UNKNOWN_OPERATION",
                    env.rid
                );
                let f = Failure::new(
                    substate::UNKNOWN_OPERATION,
                    format!("unknown operation {name:?}"),
                    fail_path(Some(&name)),
                );
                (env.rid.to_string(), name, Err(f))
            }
        },
        Err(e) => {
            c.rejected_frames.fetch_add(1, Ordering::Relaxed);
            let op = sniff_field(frame, "operation");
            let Some(rid) = sniff_rid(frame) else {
                c.unanswered.fetch_add(1, Ordering::Relaxed);
                log_warn!(
                    "dispatch: dropped a frame of {} bytes (no readable rID, so no answer): {e}",
                    frame.len()
                );
                inner.events.op_done(op.as_deref().unwrap_or("?"), false);
                return None;
            };
            log_warn!(
                "dispatch: rejected a frame of {} bytes rID={rid}: {e}; answering FAIL BAD_REQUEST",
                frame.len()
            );
            let f = Failure::new(
                substate::BAD_REQUEST,
                format!("the request cannot be read: {e}"),
                fail_path(op.as_deref()),
            );
            (rid, op.unwrap_or_else(|| "?".into()), Err(f))
        }
    };
    let mut work = work;
    if inner.is_stopping() {
        c.stopping.fetch_add(1, Ordering::Relaxed);
        work = Err(Failure::stopping(&op_name, work.as_ref().ok().map(|w| w.1)));
    }
    Some(Job {
        rid,
        op_name,
        work: work.map(|(env, op)| {
            Box::new(job::Work {
                env,
                op,
                frame: frame.to_vec(),
            })
        }),
        received,
    })
}

/// Try to take `cost` bytes of `pool` within `cap`.
fn take(pool: &AtomicUsize, cost: usize, cap: usize) -> bool {
    pool.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |p| {
        p.checked_add(cost).filter(|n| *n <= cap)
    })
    .is_ok()
}

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

/// Ends the dispatcher: on shutdown, stops admitting and waits for the requests in hand.
pub struct Worker {
    inner: Arc<Inner>,
}

pub fn channel(ctx: Arc<Ctx>, events: Arc<dyn OpEvents>) -> (Dispatcher, Worker) {
    let l = &ctx.cfg.limits;
    let inner = Arc::new(Inner {
        compute: Arc::new(Semaphore::new(l.max_in_flight)),
        writer: Arc::new(Semaphore::new(l.max_in_flight)),
        waiting: Arc::new(Semaphore::new(l.max_waiting)),
        delivering: Arc::new(Semaphore::new(l.max_delivering)),
        max_pending: l.max_pending_bytes,
        pending: AtomicUsize::new(0),
        reserve: AtomicUsize::new(0),
        live: AtomicUsize::new(0),
        idle: Notify::new(),
        stopping: watch::channel(false).0,
        queue: Mutex::new(Queue::default()),
        max_active: l.max_in_flight + l.max_delivering,
        inline_reads: l.inline_reads,
        counters: Arc::new(Counters::default()),
        events,
        ctx,
    });
    (
        Dispatcher {
            inner: inner.clone(),
        },
        Worker { inner },
    )
}

/// The callback path for a FAIL to a request whose operation is not known: the operation's
/// own name if it is a plain word, else `error` [inferred].
fn fail_path(op: Option<&str>) -> String {
    match op {
        Some(o)
            if !o.is_empty()
                && o.len() <= 64
                && o.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
        {
            o.to_string()
        }
        _ => "error".into(),
    }
}

impl Dispatcher {
    pub fn counters(&self) -> Arc<Counters> {
        self.inner.counters.clone()
    }

    /// Bytes admitted and not yet finished (requests in hand plus their answers).
    pub fn pending_bytes(&self) -> usize {
        self.inner.pending.load(Ordering::Relaxed)
    }

    /// Requests started and not done, and requests admitted and not started.
    pub fn started_and_queued(&self) -> (usize, usize) {
        let q = lock(&self.inner.queue);
        (q.active, q.waiting.len())
    }

    /// Wait until no admitted request is in hand (tests, the fuzz target, the benchmark).
    pub async fn drained(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.live.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Accept one text frame. Never blocks, never panics on any input. Must be called on a
    /// tokio runtime (it spawns the request's task).
    ///
    /// An admitted frame is queued as it came and read when it starts (at once unless
    /// `max_active` requests are running); a refused one is read now, for its FAIL.
    pub fn submit(&self, frame: &[u8], received: Instant) {
        let inner = &self.inner;
        inner.counters.received.fetch_add(1, Ordering::Relaxed);
        let cost = frame.len() + REQUEST_OVERHEAD;
        if take(&inner.pending, cost, inner.max_pending) {
            inner.live.fetch_add(1, Ordering::AcqRel);
            lock(&inner.queue).waiting.push_back(Queued {
                frame: frame.into(),
                received,
            });
            pump(inner);
            return;
        }
        let c = &inner.counters;
        let Some(mut job) = read_request(inner, frame, received) else {
            return;
        };
        c.queue_full.fetch_add(1, Ordering::Relaxed);
        let (rid, op_name) = (&job.rid, &job.op_name);
        let cost = rid.len() + 2 * REQUEST_OVERHEAD;
        if !take(&inner.reserve, cost, inner.max_pending / 8) {
            c.unanswered.fetch_add(1, Ordering::Relaxed);
            log_error!(
                "dispatch: over max_pending_bytes ({}) and its FAIL reserve: {op_name} rID={rid} gets no answer",
                inner.max_pending
            );
            inner.events.op_done(op_name, false);
            let name = job::metric_name(op_name);
            crate::metrics::op_finished(name, Outcome::Error, Duration::ZERO);
            return;
        }
        log_warn!(
            "dispatch: over max_pending_bytes ({}): {op_name} rID={rid} answered AGENT_BUSY",
            inner.max_pending
        );
        if let Ok(w) = &job.work {
            job.work = Err(Failure::busy(op_name, Some(w.op)));
        }
        let ticket = self.ticket(cost, true);
        tokio::spawn(job::run_job(inner.clone(), job, ticket, None));
    }

    fn ticket(&self, bytes: usize, reserve: bool) -> Ticket {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
        Ticket {
            inner: self.inner.clone(),
            bytes,
            reserve,
        }
    }
}

impl Worker {
    /// Runs until shutdown; then requests not yet computed are answered `AGENT_STOPPING`,
    /// waits for the POS end at once, and the callbacks in hand get `shutdown_grace_secs`.
    pub async fn run(self, mut shutdown: Shutdown) {
        shutdown.recv().await;
        let inner = &self.inner;
        let _ = inner.stopping.send(true);
        let grace = Duration::from_secs(inner.ctx.cfg.limits.shutdown_grace_secs);
        let n = inner.live.load(Ordering::Acquire);
        if n == 0 {
            return;
        }
        log_info!(
            "dispatch: waiting up to {}s for {n} request(s) in hand",
            grace.as_secs()
        );
        let done = tokio::time::timeout(grace, async {
            loop {
                let idle = inner.idle.notified();
                if inner.live.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if done.is_err() {
            log_warn!(
                "dispatch: {} request(s) still in hand after the grace period",
                inner.live.load(Ordering::Acquire)
            );
        }
    }
}

#[cfg(test)]
mod tests;
