//! The agent's own request stages, for tests that run operations: every frame goes through
//! [`Dispatcher::submit`] and the stages `run` uses (admission, compute, the wait for the POS,
//! delivery; `expirenza_agent::dispatch`), with only the last step replaced: the callback is
//! kept by [`Capture`] (a `callback::Deliver`, the seam the fuzz target uses too) instead of
//! being POSTed.
//!
//! The stages run on a current-thread runtime whose clock is **paused**: the wait for the POS's
//! acknowledgement and its polls run on the virtual clock, which moves only when every task
//! waits on a timer (never while a blocking-pool task runs: tokio holds the clock still then).
//! A test therefore waits for events (a callback for its rID, the operation's end), and a
//! timeout such as `pos_ack_timeout_secs` passes in no real time. The runtime runs only inside
//! the calls that wait ([`Stages::answer`], [`Stages::settle`], ...): between them the test acts
//! as the POS (or anyone else) with nothing moving.
//!
//! The simulated POS for these stages is [`Stages::pos`]: a task on the same runtime and clock,
//! so its polls and the agent's interleave the same way on every run.

use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use expirenza_agent::body_stream::StreamBody;
use expirenza_agent::callback::{BoxFuture, CallbackError, Deliver, Delivered};
use expirenza_agent::config::Config;
use expirenza_agent::ctx::Ctx;
use expirenza_agent::dispatch::{self, Dispatcher, OpEvents, Worker};
use expirenza_agent::ops::Op;
use expirenza_agent::request::{parse_envelope, sniff_rid};
use expirenza_agent::sign::{sign, SignedBody};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::sim_pos::SimPos;

/// How long (on the paused clock) a wait may last before the test fails: far past every
/// timeout of the agent, so only stages that are stuck reach it.
const STUCK: Duration = Duration::from_secs(3600);

/// One callback the stages delivered.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The body's `rID` (`None` when it has none or is not JSON).
    pub rid: Option<String>,
    /// The callback path (`getBill`, `payBill`, ...).
    pub path: String,
    pub body: Vec<u8>,
    /// The `signature` header: base64 HMAC-SHA256 of `body`.
    pub signature: String,
    /// Sent by the streamed path (a menu over `max_body_bytes`).
    pub streamed: bool,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: the body is not JSON ({e}): {}",
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    /// The body's rID, read as the agent reads a frame's (without parsing the whole body).
    fn rid_of(body: &[u8]) -> Option<String> {
        sniff_rid(body)
    }
}

/// Keeps every callback instead of sending it. Like the real client, it refuses a body over
/// `max_body_bytes`; a streamed body is taken through its second pass on the blocking pool
/// ([`StreamBody::chunks`]), as the transport takes it, and refused unless the bytes are the
/// signed ones.
pub struct Capture {
    max_body: usize,
    secret: expirenza_agent::secret::Secret,
    sent: Mutex<Vec<Reply>>,
    notify: Notify,
}

impl Capture {
    pub fn new(cfg: &Config) -> Capture {
        Capture {
            max_body: cfg.limits.max_body_bytes,
            secret: cfg.secret.clone(),
            sent: Mutex::new(Vec::new()),
            notify: Notify::new(),
        }
    }
    /// Every callback so far, in the order delivered.
    pub fn replies(&self) -> Vec<Reply> {
        self.sent.lock().unwrap().clone()
    }
    /// How many callbacks so far.
    pub fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
    /// The callbacks after the first `n`.
    pub fn since(&self, n: usize) -> Vec<Reply> {
        self.sent
            .lock()
            .unwrap()
            .get(n..)
            .unwrap_or_default()
            .to_vec()
    }
    /// How many callbacks `rid` has had so far.
    pub fn count_for(&self, rid: &str) -> usize {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .filter(|r| r.rid.as_deref() == Some(rid))
            .count()
    }
    /// The last callback for `rid`.
    pub fn last_for(&self, rid: &str) -> Option<Reply> {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .rev()
            .find(|r| r.rid.as_deref() == Some(rid))
            .cloned()
    }
    /// The callbacks for `rid` so far.
    pub fn for_rid(&self, rid: &str) -> Vec<Reply> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.rid.as_deref() == Some(rid))
            .cloned()
            .collect()
    }
    fn keep(&self, r: Reply) {
        self.sent.lock().unwrap().push(r);
        self.notify.notify_waiters();
    }
}

impl Deliver for Capture {
    fn deliver<'a>(
        &'a self,
        path: &'a str,
        body: &'a SignedBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        let r = if body.len() > self.max_body {
            Err(CallbackError::TooLarge {
                size: body.len(),
                cap: self.max_body,
            })
        } else {
            self.keep(Reply {
                rid: Reply::rid_of(body.body()),
                path: path.to_string(),
                body: body.body().to_vec(),
                signature: body.signature().to_string(),
                streamed: false,
            });
            Ok(Delivered {
                attempts: 1,
                status: 200,
            })
        };
        Box::pin(async move { r })
    }

    fn deliver_stream<'a>(
        &'a self,
        path: &'a str,
        body: &'a StreamBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        Box::pin(async move {
            let mut rx = body.chunks();
            let mut bytes = Vec::new();
            while let Some(c) = rx.recv().await {
                let c = c.map_err(|e| CallbackError::Protocol(format!("stream aborted: {e}")))?;
                bytes.extend_from_slice(&c);
            }
            if bytes.len() != body.len() || sign(&self.secret, &bytes) != body.signature() {
                return Err(CallbackError::Protocol(format!(
                    "the streamed body is not the signed one ({} bytes, {} signed)",
                    bytes.len(),
                    body.len()
                )));
            }
            self.keep(Reply {
                rid: Reply::rid_of(&bytes),
                path: path.to_string(),
                body: bytes,
                signature: body.signature().to_string(),
                streamed: true,
            });
            Ok(Delivered {
                attempts: 1,
                status: 200,
            })
        })
    }
}

/// Every finished request, as the status board hears of it: (operation, ok).
#[derive(Default)]
pub struct Ended {
    done: Mutex<Vec<(String, bool)>>,
    notify: Notify,
}

impl Ended {
    pub fn all(&self) -> Vec<(String, bool)> {
        self.done.lock().unwrap().clone()
    }
    fn count(&self, op: &str) -> usize {
        self.done
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| o == op)
            .count()
    }
}

impl OpEvents for Ended {
    fn op_done(&self, operation: &str, ok: bool) {
        self.done.lock().unwrap().push((operation.to_string(), ok));
        self.notify.notify_waiters();
    }
}

/// A request admitted by [`Stages::start`], to be finished by [`Stages::finish`].
#[derive(Debug)]
pub struct Started {
    pub rid: String,
    seen: usize,
}

/// The dispatcher on a paused clock, with its context and what it delivered.
pub struct Stages {
    rt: Runtime,
    pub ctx: Arc<Ctx>,
    pub dispatcher: Dispatcher,
    pub capture: Arc<Capture>,
    pub ended: Arc<Ended>,
    /// Taken by [`Stages::stop`].
    worker: Mutex<Option<Worker>>,
}

impl Deref for Stages {
    type Target = Ctx;
    fn deref(&self) -> &Ctx {
        &self.ctx
    }
}

impl Stages {
    pub fn new(cfg: Config) -> Stages {
        Stages::with(cfg, |_| {})
    }

    /// As [`Stages::new`], with `tweak` applied to the context before the dispatcher takes it.
    pub fn with(cfg: Config, tweak: impl FnOnce(&mut Ctx)) -> Stages {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let capture = Arc::new(Capture::new(&cfg));
        let mut ctx = Ctx::new(Arc::new(cfg), capture.clone());
        tweak(&mut ctx);
        let ctx = Arc::new(ctx);
        let ended = Arc::new(Ended::default());
        let (dispatcher, worker) = dispatch::channel(ctx.clone(), ended.clone());
        Stages {
            rt,
            ctx,
            dispatcher,
            capture,
            ended,
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Stop the dispatcher as the agent's shutdown does, and run until it has: requests admitted
    /// and not started yet (their tasks have not run since [`Stages::submit`]) are answered
    /// `AGENT_STOPPING`, and so is every later one.
    pub fn stop(&self) {
        let worker = self
            .worker
            .lock()
            .unwrap()
            .take()
            .expect("the stages are running");
        let (trigger, shutdown) = expirenza_agent::shutdown::channel();
        trigger.fire();
        // The worker marks the dispatcher stopping on its first poll, before any task admitted
        // earlier runs, then waits for the requests in hand.
        self.rt.block_on(worker.run(shutdown));
    }

    /// Run `f` on the stages' runtime (and clock) until it is done.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Admit `frame` as the link does: arrived now.
    pub fn submit(&self, frame: &[u8]) {
        let _in = self.rt.enter();
        self.dispatcher.submit(frame, Instant::now());
    }

    /// Run until every request in hand waits on a timer (the wait for the POS, a retry) or is
    /// done: the paused clock moves only then.
    pub fn settle(&self) {
        self.rt
            .block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
    }

    /// Admit `frame` and run until it is answered: its callback delivered, or, for an
    /// operation with no callback (showMessage, setSettings) or a frame with no readable rID,
    /// the request ended. `None` when no callback came.
    pub fn answer(&self, frame: &str) -> Option<Reply> {
        let f = frame.as_bytes();
        let env = parse_envelope(f).ok();
        let known = env.as_ref().and_then(|e| Op::from_name(&e.operation));
        let rid = env
            .as_ref()
            .map(|e| e.rid.to_string())
            .or_else(|| sniff_rid(f));
        match (rid, known) {
            (Some(_), Some(op)) if op.callback_path().is_none() => {
                let before = self.ended.count(op.name());
                self.submit(f);
                self.until(|| self.ended.count(op.name()) > before, frame);
                None
            }
            (Some(rid), _) => {
                let started = self.start_quiet(&rid, f);
                Some(self.finish(started))
            }
            (None, _) => {
                self.submit(f);
                self.until_drained(frame);
                None
            }
        }
    }

    /// [`Stages::answer`] for a frame that must get a callback: its body as JSON.
    pub fn call(&self, frame: &str) -> serde_json::Value {
        self.answer(frame)
            .unwrap_or_else(|| panic!("no callback for {frame}"))
            .json()
    }

    /// Admit `frame` and run until every request in hand waits on a timer or is done: a
    /// journaled command is then in the journal and waits for the POS (its callback, if any
    /// came already, is in [`Stages::capture`]).
    pub fn start(&self, frame: &str) -> Started {
        let f = frame.as_bytes();
        let rid = parse_envelope(f)
            .map(|e| e.rid.to_string())
            .ok()
            .or_else(|| sniff_rid(f))
            .unwrap_or_else(|| panic!("no rID in {frame}"));
        let s = self.start_quiet(&rid, f);
        self.settle();
        s
    }

    fn start_quiet(&self, rid: &str, frame: &[u8]) -> Started {
        let seen = self.capture.count_for(rid);
        self.submit(frame);
        Started {
            rid: rid.to_string(),
            seen,
        }
    }

    /// Run until the callback of a started request is delivered.
    pub fn finish(&self, s: Started) -> Reply {
        let rid = s.rid.clone();
        self.until(|| self.capture.count_for(&rid) > s.seen, &rid);
        self.capture.last_for(&rid).expect("the callback just seen")
    }

    /// The paused clock's time (it moves only while the stages run).
    pub fn now(&self) -> tokio::time::Instant {
        let _in = self.rt.enter();
        tokio::time::Instant::now()
    }

    /// Run until `rid` has had `n` callbacks; they are returned.
    pub fn replies_for(&self, rid: &str, n: usize) -> Vec<Reply> {
        self.until(|| self.capture.count_for(rid) >= n, rid);
        self.capture.for_rid(rid)
    }

    /// Run until `done` holds, woken by each callback and each finished request.
    fn until(&self, done: impl Fn() -> bool, what: &str) {
        self.rt.block_on(async {
            let wait = async {
                loop {
                    let delivered = self.capture.notify.notified();
                    let ended = self.ended.notify.notified();
                    if done() {
                        return;
                    }
                    tokio::select! {
                        _ = delivered => {}
                        _ = ended => {}
                    }
                }
            };
            if tokio::time::timeout(STUCK, wait).await.is_err() {
                panic!("{what}: not answered within an hour of the paused clock");
            }
        })
    }

    fn until_drained(&self, what: &str) {
        self.rt.block_on(async {
            if tokio::time::timeout(STUCK, self.dispatcher.drained())
                .await
                .is_err()
            {
                panic!("{what}: still in hand after an hour of the paused clock");
            }
        })
    }

    /// Run until no request is in hand.
    pub fn drain(&self) {
        self.until_drained("the requests in hand")
    }

    /// A simulated POS on this runtime and clock, polling the journal every `poll` (of the
    /// paused clock) while the stages run; it stops when dropped.
    pub fn pos(&self, poll: Duration) -> PosTask {
        let mut pos = SimPos::open(self.ctx.journal.path(), &self.ctx.cfg.mirror_path)
            .expect("the simulated POS opens the journal and the mirror");
        let _in = self.rt.enter();
        let task = tokio::spawn(async move {
            loop {
                // One step after another while there is work, then a poll interval.
                match pos.step() {
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(e) => expirenza_agent::log_warn!("sim-pos: {e}"),
                }
                tokio::time::sleep(poll).await;
            }
        });
        PosTask(task)
    }
}

/// A simulated POS task ([`Stages::pos`]), stopped when dropped.
pub struct PosTask(tokio::task::JoinHandle<()>);

impl Drop for PosTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
