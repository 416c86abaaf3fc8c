//! Admission: a frame in, bounded by bytes; the queue of admitted frames; reading a frame's
//! envelope into a [`Job`] when it starts (see `mod.rs`).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{metric_name, run_job, Failure, Inner};
use crate::metrics::Outcome;
use crate::ops::{substate, Op};
use crate::request::{parse_envelope, sniff_field, sniff_rid, Envelope};

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
pub(crate) struct Queue {
    waiting: VecDeque<Queued>,
    active: usize,
}

/// A request read from its frame.
pub(crate) struct Job {
    pub rid: String,
    pub op_name: String,
    pub work: Result<Box<Work>, Failure>,
    pub received: Instant,
}

/// A request to compute: its envelope, operation and frame.
pub(crate) struct Work {
    pub env: Envelope,
    pub op: Op,
    pub frame: Vec<u8>,
}

/// Admitted bytes of one request, returned when it is dropped (its callback is done).
pub(crate) struct Ticket {
    inner: Arc<Inner>,
    bytes: usize,
    reserve: bool,
}

impl Ticket {
    /// A ticket for `bytes` already taken from the pool (`reserve`: the FAIL reserve); counts
    /// the request as in hand until dropped.
    pub fn new(inner: &Arc<Inner>, bytes: usize, reserve: bool) -> Ticket {
        inner.live.fetch_add(1, Ordering::AcqRel);
        Ticket {
            inner: inner.clone(),
            bytes,
            reserve,
        }
    }
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

pub(super) fn started_and_queued(inner: &Inner) -> (usize, usize) {
    let q = lock(&inner.queue);
    (q.active, q.waiting.len())
}

/// See [`super::Dispatcher::submit`].
pub(super) fn submit(inner: &Arc<Inner>, frame: &[u8], received: Instant) {
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
    // A money operation keeps its frame for the spool (`Failure::keeping`): it is charged here.
    let placeholder = Err(Failure::busy(&job.op_name, None));
    job.work = match std::mem::replace(&mut job.work, placeholder) {
        Ok(w) => {
            let Work { op, frame, .. } = *w;
            Err(Failure::busy(&job.op_name, Some(op)).keeping(op, frame))
        }
        failed => failed,
    };
    // Its FAIL draws on the reserve; a kept frame too, until it is spooled. With no room for
    // the frame the FAIL still goes out, and the frame is logged as its only record.
    let (rid, op_name) = (&job.rid, &job.op_name);
    let reserve = inner.max_pending / 8;
    let base = rid.len() + 2 * REQUEST_OVERHEAD;
    let kept = match &job.work {
        Err(f) => f.keep.as_ref().map(|k| k.frame.len()),
        Ok(_) => None,
    };
    let cost = match kept {
        Some(n) if take(&inner.reserve, base + n, reserve) => Some(base + n),
        _ if take(&inner.reserve, base, reserve) => Some(base),
        _ => None,
    };
    let frame_held = matches!((kept, cost), (Some(n), Some(c)) if c == base + n);
    if !frame_held {
        if let Err(f) = &mut job.work {
            if let Some(k) = f.keep.take() {
                log_error!(
                    "dispatch: over max_pending_bytes ({}) and its FAIL reserve: {op_name} \
                     rID={rid} {} and is NOT recorded: this log line is its only record. The \
                     frame: {}",
                    inner.max_pending,
                    if cost.is_some() {
                        "is answered FAIL"
                    } else {
                        "gets no answer"
                    },
                    String::from_utf8_lossy(&k.frame)
                );
            }
        }
    }
    let Some(cost) = cost else {
        c.unanswered.fetch_add(1, Ordering::Relaxed);
        log_error!(
            "dispatch: over max_pending_bytes ({}) and its FAIL reserve: {op_name} rID={rid} gets no answer",
            inner.max_pending
        );
        inner.events.op_done(op_name, false);
        let name = metric_name(op_name);
        crate::metrics::op_finished(name, Outcome::Error, Duration::ZERO);
        return;
    };
    log_warn!(
        "dispatch: over max_pending_bytes ({}): {op_name} rID={rid} answered AGENT_BUSY",
        inner.max_pending
    );
    let ticket = Ticket::new(inner, cost, true);
    tokio::spawn(run_job(inner.clone(), job, ticket, None));
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
        // The bytes were taken and the request counted in hand when it was queued.
        let ticket = Ticket {
            inner: inner.clone(),
            bytes: q.frame.len() + REQUEST_OVERHEAD,
            reserve: false,
        };
        if let Some(job) = read_request(inner, &q.frame, q.received) {
            rt.spawn(run_job(inner.clone(), job, ticket, Some(active)));
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
            let mut f = Failure::new(
                substate::BAD_REQUEST,
                format!("the request cannot be read: {e}"),
                fail_path(op.as_deref()),
            );
            // It names a money operation: the guest may have been charged, so it is spooled.
            if let Some(money) = op.as_deref().and_then(Op::from_name) {
                f = f.keeping_unreadable(money, frame);
            }
            (rid, op.unwrap_or_else(|| "?".into()), Err(f))
        }
    };
    let mut work = work;
    if inner.is_stopping() {
        c.stopping.fetch_add(1, Ordering::Relaxed);
        work = Err(match work {
            Ok((_, op)) => Failure::stopping(&op_name, Some(op)).keeping(op, frame.to_vec()),
            Err(f) => Failure {
                keep: f.keep,
                ..Failure::stopping(&op_name, None)
            },
        });
    }
    Some(Job {
        rid,
        op_name,
        work: work.map(|(env, op)| {
            Box::new(Work {
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

/// The callback path for a FAIL to a request whose operation is not known: the operation's
/// own name if it is a plain word, else `error` [inferred].
pub(super) fn fail_path(op: Option<&str>) -> String {
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
