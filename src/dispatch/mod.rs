//! From a text frame to exactly one callback: the request lifecycle in stages, one file each.
//!
//! The link calls [`Dispatcher::submit`] for every text frame. `submit` never blocks and never
//! panics: it admits the frame (a bare copy in a queue) or answers it FAIL at once. A queued
//! request starts as one small tokio task when fewer than `max_in_flight + max_delivering`
//! have started and are not done; [`run_job`] then takes it through the stages, each with its
//! own budget:
//!
//! 1. **admission** (`admission.rs`) — bounded by bytes, not by count: a request costs its
//!    frame plus [`REQUEST_OVERHEAD`] bytes, and its answer's bytes once built, until its
//!    callback is done. Past `[limits] max_pending_bytes` (default 4 MiB) it is answered FAIL
//!    `AGENT_BUSY` at once; those FAILs draw on a reserve of an eighth of the bound. Past that
//!    too, the request is logged and counted, and gets no callback.
//! 2. **compute** (`compute.rs`) — parse, read the mirror or write the journal, build and sign
//!    the answer. A short read (`Op::is_inline`: checkWork, getBill, tablesInfo, ...) runs right
//!    on the event loop when `[limits] inline_reads` is on (the default): no hand-off to another
//!    thread and back. It takes its delivery slot first, so an answer is built only when it can
//!    be sent at once, and it never waits for a mirror lock: a locked mirror sends it to the
//!    blocking pool instead. menuInfo (it can be large) and reads that met a lock run on the
//!    blocking pool, at most `[limits] max_in_flight` (default: the number of CPUs) at once.
//!    Operations that write the journal (they fsync, and may wait up to `[journal]
//!    busy_timeout_ms` for a POS's lock, counted from arrival) have `max_in_flight` pool
//!    threads of their own, outside those slots; one waiting for its turn holds no thread.
//! 3. **wait** (`wait.rs`) — a journaled command waits for the POS's acknowledgement on a tokio
//!    timer, holding no thread, no compute slot and no started-request place; each poll is one
//!    primary-key read of the journal on the event loop through a connection that never waits
//!    (on the pool if it would). At most `[limits] max_waiting` (64) at once. Then compute
//!    again, for the answer.
//! 4. **deliver** (`deliver.rs`) — the signed POST and its retries, which sleep on tokio
//!    timers: at most `[limits] max_delivering` (64) at once, on at most `[callback]
//!    max_connections`. A streamed answer (menuInfo over `max_body_bytes`) also takes one of
//!    `[limits] max_streaming` (1) places: its second pass holds a blocking-pool thread, paced
//!    by the network.
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
//!
//! **No money operation refused here is only a log line.** A payBill, splitOrder or
//! createOrderOnTable answered `AGENT_BUSY`, `AGENT_STOPPING` or `BAD_REQUEST` keeps its frame
//! (`failure.rs`: `Failure::keeping`; an unreadable one its first 64 KiB), and `compute::keep`
//! appends it to the journal's spool before the FAIL is delivered: on the blocking pool, one
//! append at a time (`Inner::spooling`), holding no compute, writer or delivery slot and no
//! started-request place. The spool moves it into the journal as a `review` row with that
//! sub-state. An `AGENT_BUSY` frame is charged to the FAIL reserve until then; past the reserve
//! (or the spool's cap) it is logged in full instead.

#![deny(clippy::string_slice, clippy::indexing_slicing)]

mod admission;
mod compute;
mod deliver;
mod failure;
mod wait;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, Semaphore};

pub use admission::REQUEST_OVERHEAD;
use admission::{Active, Job, Queue, Ticket};
pub(crate) use failure::{Failure, Kept};

use crate::ops::Ctx;
use crate::shutdown::Shutdown;

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
    /// Streamed answers being delivered (`[limits] max_streaming`): each one's second pass
    /// holds a blocking-pool thread for as long as the network takes.
    pub streaming: Arc<Semaphore>,
    /// Spool appends of money operations refused before they started: one at a time (they
    /// take the file's lock and fsync), each on a blocking-pool thread; the others wait here
    /// holding no thread.
    pub spooling: Semaphore,
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

/// The operation's name for the metrics (a fixed set: unknown names are `unknown`).
pub(crate) fn metric_name(op_name: &str) -> &'static str {
    crate::ops::Op::from_name(op_name).map_or("unknown", crate::ops::Op::name)
}

/// Run one admitted request through its stages: compute (and wait for the POS), then deliver
/// exactly one callback.
///
/// Most requests of a burst wait in the dispatcher's queue as bare frames; a task exists only
/// for a request that has started (`active`, given back when it is done or when it starts
/// waiting for the POS). Its first step (waiting for where it computes) is kept small and the
/// rest of the state machine is boxed once the slot is held.
pub(crate) async fn run_job(
    inner: Arc<Inner>,
    job: Job,
    ticket: Ticket,
    mut active: Option<Active>,
) {
    let start = Instant::now();
    let slot = compute::place(&inner, &job, &mut active).await;
    Box::pin(async move {
        let Job {
            rid,
            op_name,
            work,
            received,
        } = job;
        let (mut computed, delivery) =
            compute::compute(&inner, work, slot, received, &mut active).await;
        if let compute::Computed::Fail(f) = &mut computed {
            if let Some(k) = f.keep.take() {
                // Waiting for the spool holds no started-request place.
                drop(active.take());
                compute::keep(&inner, &rid, *k, f).await;
            }
        }
        let req = deliver::Request {
            rid,
            op_name,
            received,
            start,
        };
        deliver::deliver(&inner, req, computed, delivery, ticket).await;
    })
    .await
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
        streaming: Arc::new(Semaphore::new(l.max_streaming)),
        spooling: Semaphore::new(1),
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
        admission::started_and_queued(&self.inner)
    }

    /// Wait until no admitted request is in hand (`simulate`, tests, the fuzz target, the
    /// benchmark).
    pub async fn drained(&self) {
        idle(&self.inner).await
    }

    /// Accept one text frame. Never blocks, never panics on any input. Must be called on a
    /// tokio runtime (it spawns the request's task).
    ///
    /// An admitted frame is queued as it came and read when it starts (at once unless
    /// `max_active` requests are running); a refused one is read now, for its FAIL.
    pub fn submit(&self, frame: &[u8], received: Instant) {
        admission::submit(&self.inner, frame, received)
    }
}

/// Until no admitted request is in hand.
async fn idle(inner: &Inner) {
    loop {
        let idle = inner.idle.notified();
        if inner.live.load(Ordering::Acquire) == 0 {
            return;
        }
        idle.await;
    }
}

impl Worker {
    /// Runs until shutdown; then requests not yet computed are answered `AGENT_STOPPING`,
    /// waits for the POS end at once, and the callbacks in hand get `shutdown_grace_secs`.
    pub async fn run(self, mut shutdown: Shutdown) {
        shutdown.recv().await;
        let inner = &self.inner;
        // `send_replace`: `send` stores nothing when no receiver is alive (none waits for the POS).
        inner.stopping.send_replace(true);
        let grace = Duration::from_secs(inner.ctx.cfg.limits.shutdown_grace_secs);
        let n = inner.live.load(Ordering::Acquire);
        if n == 0 {
            return;
        }
        log_info!(
            "dispatch: waiting up to {}s for {n} request(s) in hand",
            grace.as_secs()
        );
        if tokio::time::timeout(grace, idle(inner)).await.is_err() {
            log_warn!(
                "dispatch: {} request(s) still in hand after the grace period",
                inner.live.load(Ordering::Acquire)
            );
        }
    }
}

#[cfg(test)]
mod tests;
