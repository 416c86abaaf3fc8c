//! From a text frame to a delivered callback, with bounded concurrency.
//!
//! The link calls [`Dispatcher::submit`] for every text frame. `submit` never blocks: it parses
//! the envelope (bounded, microseconds), looks the operation up, and `try_send`s a job into a
//! queue of `[limits] max_queue` jobs. A frame that is not a request, or names an unknown
//! operation, or finds the queue full, is logged and dropped; the link is unaffected.
//!
//! The [`Worker`] takes jobs from the queue and runs each on the blocking pool once one of
//! `[limits] max_in_flight` permits is free: the operation reads the mirror (or writes the
//! journal and waits for the POS), the body is signed once and POSTed until the 80 s deadline.
//! One log line per operation: operation, rID, outcome, milliseconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::ctx::Ctx;
use crate::metrics::{self, Outcome};
use crate::ops::{self, Answer, Op};
use crate::request::{parse_envelope, sniff_rid, Envelope};
use crate::shutdown::Shutdown;
use crate::sign::SignedBody;

/// Who wants to know about finished operations (the status board; tests).
pub trait OpEvents: Send + Sync {
    fn op_done(&self, operation: &str, ok: bool);
}

pub struct Job {
    pub env: Envelope,
    pub op: Op,
    pub frame: Vec<u8>,
    pub received: Instant,
}

/// Counters, readable at any time (the benchmark and tests print them).
#[derive(Default, Debug)]
pub struct Counters {
    pub received: AtomicU64,
    pub rejected_frames: AtomicU64,
    pub unknown_ops: AtomicU64,
    pub queue_full: AtomicU64,
    pub answered: AtomicU64,
    pub failed: AtomicU64,
}

#[derive(Clone)]
pub struct Dispatcher {
    tx: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

pub struct Worker {
    rx: mpsc::Receiver<Job>,
    ctx: Arc<Ctx>,
    events: Arc<dyn OpEvents>,
    counters: Arc<Counters>,
}

pub fn channel(ctx: Arc<Ctx>, events: Arc<dyn OpEvents>) -> (Dispatcher, Worker) {
    let (tx, rx) = mpsc::channel(ctx.cfg.limits.max_queue);
    let counters = Arc::new(Counters::default());
    (
        Dispatcher {
            tx,
            counters: counters.clone(),
        },
        Worker {
            rx,
            ctx,
            events,
            counters,
        },
    )
}

impl Dispatcher {
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Accept one text frame. Never blocks, never panics on any input.
    pub fn submit(&self, frame: &[u8], received: Instant) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let env = match parse_envelope(frame) {
            Ok(env) => env,
            Err(e) => {
                self.counters
                    .rejected_frames
                    .fetch_add(1, Ordering::Relaxed);
                let rid = sniff_rid(frame)
                    .map(|r| format!(" rID={r}"))
                    .unwrap_or_default();
                log_warn!(
                    "dispatch: dropped a frame of {} bytes{rid}: {e}",
                    frame.len()
                );
                return;
            }
        };
        let Some(op) = Op::from_name(&env.operation) else {
            self.counters.unknown_ops.fetch_add(1, Ordering::Relaxed);
            log_warn!(
                "dispatch: unknown operation {:?} rID={} dropped",
                env.operation.as_str(),
                env.rid
            );
            return;
        };
        let job = Job {
            env,
            op,
            frame: frame.to_vec(),
            received,
        };
        if let Err(mpsc::error::TrySendError::Full(job)) = self.tx.try_send(job) {
            self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
            log_error!(
                "dispatch: queue full (max_queue {}), dropped {} rID={}",
                self.tx.max_capacity(),
                job.op.name(),
                job.env.rid
            );
        }
    }
}

impl Worker {
    /// Runs until shutdown, then lets in-flight operations finish within `shutdown_grace_secs`.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let permits = Arc::new(Semaphore::new(self.ctx.cfg.limits.max_in_flight));
        let mut running = JoinSet::new();
        loop {
            let job = tokio::select! {
                _ = shutdown.recv() => break,
                j = self.rx.recv() => match j { Some(j) => j, None => break },
                Some(_) = running.join_next(), if !running.is_empty() => continue,
            };
            let permit = tokio::select! {
                _ = shutdown.recv() => { log_warn!("dispatch: shutdown, {} rID={} not started", job.op.name(), job.env.rid); break }
                p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
            };
            let (ctx, events, counters) =
                (self.ctx.clone(), self.events.clone(), self.counters.clone());
            running.spawn_blocking(move || {
                let ok = run_job(&ctx, &job);
                (if ok {
                    &counters.answered
                } else {
                    &counters.failed
                })
                .fetch_add(1, Ordering::Relaxed);
                events.op_done(job.op.name(), ok);
                drop(permit);
            });
        }
        self.rx.close();
        let mut dropped = 0;
        while self.rx.try_recv().is_ok() {
            dropped += 1;
        }
        if dropped > 0 {
            log_warn!("dispatch: shutdown dropped {dropped} queued request(s)");
        }
        let grace = Duration::from_secs(self.ctx.cfg.limits.shutdown_grace_secs);
        let n = running.len();
        if n > 0 {
            log_info!(
                "dispatch: waiting up to {}s for {n} operation(s) in flight",
                grace.as_secs()
            );
            let done = tokio::time::timeout(grace, async {
                while running.join_next().await.is_some() {}
            })
            .await;
            if done.is_err() {
                log_warn!(
                    "dispatch: {} operation(s) still running after the grace period",
                    running.len()
                );
            }
        }
    }
}

/// Run one operation to its end: handle, sign, deliver. Returns whether it succeeded.
pub fn run_job(ctx: &Ctx, job: &Job) -> bool {
    let start = Instant::now();
    let deadline = job.received + ctx.cfg.callback_deadline();
    let name = job.op.name();
    let rid = job.env.rid.as_str();
    let ms = |s: Instant| s.elapsed().as_secs_f64() * 1000.0;
    let done = |o| metrics::op_finished(name, o, job.received.elapsed());
    match ops::handle(job.op, ctx, &job.env, &job.frame) {
        Ok(Answer::None { outcome }) => {
            done(Outcome::NoAnswer);
            log_info!("op={name} rID={rid} outcome={outcome} ms={:.1}", ms(start));
            true
        }
        Ok(Answer::Callback { body, outcome }) => {
            let signed = SignedBody::new(&ctx.cfg.secret, body);
            let path = job.op.callback_path().unwrap_or(name);
            match ctx.callback.deliver(path, &signed, deadline) {
                Ok(d) => {
                    done(Outcome::of_answer(&outcome));
                    log_info!(
                        "op={name} rID={rid} outcome={outcome} bytes={} attempts={} ms={:.1}",
                        signed.len(),
                        d.attempts,
                        ms(start)
                    );
                    true
                }
                Err(e) => {
                    done(Outcome::Undelivered);
                    log_error!(
                        "op={name} rID={rid} outcome={outcome} callback-failed: {e} ms={:.1}",
                        ms(start)
                    );
                    false
                }
            }
        }
        Err(e) => {
            done(Outcome::Error);
            log_error!("op={name} rID={rid} outcome=ERROR {e} ms={:.1}", ms(start));
            false
        }
    }
}
