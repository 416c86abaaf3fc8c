//! The dispatcher with delivery stubbed: shutdown answers promptly, every frame ends once.

#![allow(clippy::indexing_slicing)]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::callback::{BoxFuture, CallbackError, Deliver, Delivered};
use crate::config::Config;
use crate::sign::SignedBody;

#[derive(Default)]
struct Stub {
    sent: Mutex<Vec<(String, serde_json::Value)>>,
}

impl Deliver for Stub {
    fn deliver<'a>(
        &'a self,
        path: &'a str,
        body: &'a SignedBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        let v = serde_json::from_slice(body.body()).unwrap();
        self.sent.lock().unwrap().push((path.to_string(), v));
        Box::pin(async {
            Ok(Delivered {
                attempts: 1,
                status: 200,
            })
        })
    }
}

struct Quiet;
impl OpEvents for Quiet {
    fn op_done(&self, _operation: &str, _ok: bool) {}
}

struct Rig {
    dir: std::path::PathBuf,
    stub: Arc<Stub>,
    dispatcher: Dispatcher,
    worker: Option<Worker>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rig(tag: &str, tweak: impl FnOnce(&mut Config)) -> Rig {
    let stub = Arc::new(Stub::default());
    rig_with(tag, tweak, stub.clone(), stub)
}

/// [`rig`] with another `Deliver` than the stub (`stub` then records nothing).
fn rig_with(
    tag: &str,
    tweak: impl FnOnce(&mut Config),
    deliver: Arc<dyn Deliver>,
    stub: Arc<Stub>,
) -> Rig {
    let dir = std::env::temp_dir().join(format!("expirenza-dispatch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mirror = dir.join("mirror.sqlite");
    let mut conn = crate::mirror::create_schema(&mirror).unwrap();
    crate::mirror::demo::fill(&mut conn).unwrap();
    conn.execute(
        "INSERT INTO orders (bill_id, order_number, table_id, state, created, raw_sum_kop, total_sum_kop) \
         VALUES ('d-bill', 9001, 'table-1', 'BILL', '2024.05.14 18:21:07', 10000, 10000)",
        [],
    )
    .unwrap();
    drop(conn);
    let mut cfg = Config::for_loopback(
        "resto-d",
        "secret-d",
        "ws://127.0.0.1:9/ws",
        "http://127.0.0.1:9/callback",
        &mirror,
        &dir,
    );
    cfg.journal.pos_ack_timeout_secs = 60;
    tweak(&mut cfg);
    let ctx = Arc::new(crate::ctx::Ctx::new(Arc::new(cfg), deliver));
    let (dispatcher, worker) = channel(ctx, Arc::new(Quiet));
    Rig {
        dir,
        stub,
        dispatcher,
        worker: Some(worker),
    }
}

const GUARD: Duration = Duration::from_secs(20);

/// A payBill waiting for a POS that never answers (ack timeout 60 s) is answered at once when
/// the agent stops; a request arriving during shutdown gets AGENT_STOPPING. On a paused clock:
/// the 20 s guards pass before the 60 s wait would.
#[tokio::test(start_paused = true)]
async fn shutdown_answers_waiting_and_new_requests_promptly() {
    let mut r = rig("stop", |_| {});
    let (trigger, shutdown) = crate::shutdown::channel();
    let worker = tokio::spawn(r.worker.take().unwrap().run(shutdown));
    let pay = br#"{"rID":"p-1","operation":"payBill","billId":"d-bill","sum":100.00}"#;
    r.dispatcher.submit(pay, Instant::now());
    // Event: the command is journaled and its task is in the wait stage.
    let c = r.dispatcher.counters();
    tokio::time::timeout(GUARD, async {
        while r.dispatcher.inner.waiting.available_permits()
            == r.dispatcher.inner.ctx.cfg.limits.max_waiting
        {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the payBill reaches the wait stage");
    trigger.fire();
    tokio::time::timeout(GUARD, worker)
        .await
        .expect("worker ends")
        .unwrap();
    r.dispatcher
        .submit(br#"{"rID":"late","operation":"checkWork"}"#, Instant::now());
    // Guard only: the wait would otherwise last 60 s.
    tokio::time::timeout(GUARD, r.dispatcher.drained())
        .await
        .expect("drained");
    let sent = r.stub.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        (sent[0].0.as_str(), &sent[0].1["rID"]),
        ("payBill", &serde_json::json!("p-1"))
    );
    assert_eq!(sent[0].1["substate"], "POS_TIMEOUT");
    assert_eq!(
        (sent[1].0.as_str(), &sent[1].1["substate"]),
        ("checkWork", &serde_json::json!("AGENT_STOPPING"))
    );
    assert_eq!(c.stopping.load(Ordering::Relaxed), 1);
    assert_eq!(c.failed.load(Ordering::Relaxed), 1);
    assert_eq!(
        c.answered.load(Ordering::Relaxed),
        1,
        "the payBill's own FAIL is its answer"
    );
}

/// A request admitted but not started when the agent stops is answered AGENT_STOPPING even
/// when nothing waits for the POS (no one listens for the stop signal then).
#[tokio::test(start_paused = true)]
async fn a_request_not_started_at_shutdown_is_answered_stopping_with_nothing_waiting() {
    let mut r = rig("stop-idle", |_| {});
    let (trigger, shutdown) = crate::shutdown::channel();
    // Admitted; its task has not run yet.
    r.dispatcher
        .submit(br#"{"rID":"q-1","operation":"checkWork"}"#, Instant::now());
    trigger.fire();
    // The worker marks the dispatcher stopping on its first poll, then waits for q-1.
    tokio::time::timeout(GUARD, r.worker.take().unwrap().run(shutdown))
        .await
        .expect("worker ends");
    let sent = r.stub.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].1["substate"], "AGENT_STOPPING", "{sent:?}");
}

/// Every kind of frame ends in exactly one counter, with at most one callback, and admission
/// bytes all come back.
#[tokio::test]
async fn every_frame_ends_once_and_admission_bytes_return() {
    let r = rig("ends", |_| {});
    let frames: &[&[u8]] = &[
        br#"{"rID":"a","operation":"checkWork"}"#,
        br#"{"rID":"b","operation":"noSuchOp"}"#,
        br#"{"rID":"c","operation":"getBill","tableNumber":5}"#,
        br#"{"rID":"d"}"#,
        b"not json",
        br#"{"rID":"e","operation":"showMessage","message":"hi"}"#,
        "{\"rID\":\"\u{411}\u{411}\",\"operation\":\"checkWork\",\"x\":[}".as_bytes(),
    ];
    for f in frames {
        r.dispatcher.submit(f, Instant::now());
    }
    tokio::time::timeout(GUARD, r.dispatcher.drained())
        .await
        .expect("drained");
    let c = r.dispatcher.counters();
    let ended = c.answered.load(Ordering::Relaxed)
        + c.failed.load(Ordering::Relaxed)
        + c.unanswered.load(Ordering::Relaxed);
    assert_eq!(ended, frames.len() as u64, "{c:?}");
    assert_eq!(
        c.unanswered.load(Ordering::Relaxed),
        1,
        "only `not json` has no rID"
    );
    let sent = r.stub.sent.lock().unwrap().clone();
    let mut rids: Vec<&str> = sent
        .iter()
        .map(|(_, v)| v["rID"].as_str().unwrap())
        .collect();
    rids.sort();
    assert_eq!(
        rids,
        ["a", "b", "c", "d", "ББ"],
        "one callback each; showMessage has none"
    );
    assert_eq!(r.dispatcher.pending_bytes(), 0);
}

/// A burst parks most requests at their first step (waiting for a compute slot): that state
/// stays small, since it is multiplied by every request in hand.
#[tokio::test]
async fn a_parked_request_is_small() {
    let r = rig("sizes", |_| {});
    let job = Job {
        rid: "x".into(),
        op_name: "checkWork".into(),
        work: Err(Failure::busy("checkWork", None)),
        received: Instant::now(),
    };
    let f = run_job(
        r.dispatcher.inner.clone(),
        job,
        Ticket::new(&r.dispatcher.inner, 0, false),
        None,
    );
    let size = std::mem::size_of_val(&f);
    assert!(size <= 1024, "run_job's future is {size} bytes");
    f.await;
    assert_eq!(r.stub.sent.lock().unwrap().len(), 1);
}

/// A short read computed on the event loop never waits for a mirror lock: with the mirror
/// locked by a writer it goes to the blocking pool (which may wait), the event loop goes on
/// answering other requests, and once the lock is gone the read is answered from the mirror.
#[tokio::test]
async fn an_inline_read_meeting_a_lock_waits_on_the_pool_not_on_the_event_loop() {
    let r = rig("locked", |c| c.mirror.busy_timeout_ms = 15_000);
    let w = rusqlite::Connection::open(r.dir.join("mirror.sqlite")).unwrap();
    w.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; \
         UPDATE orders SET waiter_name = waiter_name;",
    )
    .unwrap();
    let c = r.dispatcher.counters();
    r.dispatcher.submit(
        br#"{"rID":"g-1","operation":"getBill","billId":"d-bill"}"#,
        Instant::now(),
    );
    // Event: the read met the lock and went to the pool.
    tokio::time::timeout(GUARD, async {
        while c.inline_fallbacks.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the locked read goes to the pool");
    // The event loop is free: a request that needs no mirror (one naming an unknown
    // operation) is answered meanwhile.
    r.dispatcher
        .submit(br#"{"rID":"v-1","operation":"noSuchOp"}"#, Instant::now());
    let rids = |s: &Stub| -> Vec<String> {
        s.sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v["rID"].as_str().unwrap().to_string())
            .collect()
    };
    tokio::time::timeout(GUARD, async {
        while !rids(&r.stub).contains(&"v-1".to_string()) {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the other request is answered while getBill waits for the lock");
    assert_eq!(rids(&r.stub), ["v-1"], "getBill still waits for the lock");
    drop(w); // the writer goes: the lock is released
    tokio::time::timeout(GUARD, r.dispatcher.drained())
        .await
        .expect("getBill finishes once the lock is gone");
    let sent = r.stub.sent.lock().unwrap();
    let g = sent
        .iter()
        .find(|(_, v)| v["rID"] == "g-1")
        .expect("getBill answered");
    assert_eq!(g.1["state"], "SUCCESS", "{}", g.1);
    assert_eq!(g.1["orders"][0]["billId"], "d-bill", "{}", g.1);
    assert_eq!(c.inline_fallbacks.load(Ordering::Relaxed), 1);
}

/// A burst is held as bare frames: at most `max_in_flight + max_delivering` requests have
/// started (a task each), the rest wait in the queue, and every one is answered once.
#[tokio::test]
async fn a_burst_waits_as_frames_and_only_a_few_requests_start() {
    let r = rig("burst", |c| {
        c.limits.max_in_flight = 1;
        c.limits.max_delivering = 2;
    });
    let n = 1_000;
    for i in 0..n {
        let f = format!(r#"{{"rID":"b-{i}","operation":"checkWork"}}"#);
        r.dispatcher.submit(f.as_bytes(), Instant::now());
    }
    // No task has run yet (this test's thread has not yielded).
    assert_eq!(r.dispatcher.started_and_queued(), (3, n - 3));
    tokio::time::timeout(GUARD, r.dispatcher.drained())
        .await
        .expect("the burst drains");
    assert_eq!(r.dispatcher.started_and_queued(), (0, 0));
    let sent = r.stub.sent.lock().unwrap();
    let mut rids: Vec<_> = sent
        .iter()
        .map(|(_, v)| v["rID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rids.len(), n, "one callback each");
    rids.sort();
    rids.dedup();
    assert_eq!(rids.len(), n, "no rID answered twice");
    assert!(sent.iter().all(|(_, v)| v["readyToWork"] == true));
    assert_eq!(r.dispatcher.pending_bytes(), 0);
}

/// A journal write waits for a POS's lock at most `[journal] busy_timeout_ms` counted from the
/// request's arrival, on a pool thread of its own: reads (inline, and menuInfo on the
/// `max_in_flight` pool) are answered meanwhile. A request whose wait ran out is spooled and
/// answered FAIL JOURNAL_UNAVAILABLE; the next journal write moves it in as a review row.
#[tokio::test]
async fn a_journal_write_waits_for_the_lock_from_arrival_on_its_own_thread() {
    let r = rig("journal-lock", |c| {
        c.limits.max_in_flight = 1;
        c.journal.busy_timeout_ms = Some(30_000);
        c.journal.ack_mode = crate::config::AckMode::None;
    });
    let journal = r.dispatcher.inner.ctx.journal.path().to_path_buf();
    let pos = rusqlite::Connection::open(&journal).unwrap();
    pos.execute_batch("BEGIN IMMEDIATE;").unwrap();
    let sent = |rid: &str| -> Option<serde_json::Value> {
        r.stub
            .sent
            .lock()
            .unwrap()
            .iter()
            .find(|(_, v)| v["rID"] == rid)
            .map(|(_, v)| v.clone())
    };
    async fn until_sent(
        sent: &impl Fn(&str) -> Option<serde_json::Value>,
        rid: &str,
    ) -> serde_json::Value {
        tokio::time::timeout(GUARD, async {
            loop {
                if let Some(v) = sent(rid) {
                    return v;
                }
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{rid} answered"))
    }
    let waits = crate::journal::lock::waits();
    // Arrived 31 s ago: its wait is over before it starts. One try, no wait, spooled.
    let pay = |rid: &str| {
        format!(r#"{{"rID":"{rid}","operation":"payBill","billId":"d-bill","sum":100.00}}"#)
    };
    r.dispatcher.submit(
        pay("p-late").as_bytes(),
        Instant::now() - Duration::from_secs(31),
    );
    let v = until_sent(&sent, "p-late").await;
    assert_eq!(v["substate"], "JOURNAL_UNAVAILABLE", "{v}");
    assert_eq!(
        crate::journal::lock::waits(),
        waits,
        "no wait past the deadline"
    );
    let spool = &r.dispatcher.inner.ctx.journal.spool;
    assert_eq!(spool.read().unwrap().records.len(), 1);
    // Arrived now: it waits for the lock (event: the busy handler's first call).
    r.dispatcher
        .submit(pay("p-wait").as_bytes(), Instant::now());
    tokio::time::timeout(GUARD, async {
        while crate::journal::lock::waits() == waits {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the payBill waits for the lock");
    // Meanwhile a short read and a menuInfo (the one compute slot) are answered.
    r.dispatcher.submit(
        br#"{"rID":"g-1","operation":"getBill","billId":"d-bill"}"#,
        Instant::now(),
    );
    r.dispatcher
        .submit(br#"{"rID":"m-1","operation":"menuInfo"}"#, Instant::now());
    assert_eq!(until_sent(&sent, "g-1").await["state"], "SUCCESS");
    assert!(until_sent(&sent, "m-1").await["dishes"].is_array());
    assert!(sent("p-wait").is_none(), "still waiting for the lock");
    // The POS's transaction ends: the payment is journaled, the spooled one moved in first.
    pos.execute_batch("COMMIT;").unwrap();
    assert_eq!(until_sent(&sent, "p-wait").await["state"], "SUCCESS");
    let rows: Vec<(String, String, Option<String>)> = pos
        .prepare("SELECT rid, status, substate FROM commands ORDER BY id")
        .unwrap()
        .query_map([], |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                "p-late".to_string(),
                "review".to_string(),
                Some("JOURNAL_UNAVAILABLE".to_string())
            ),
            ("p-wait".to_string(), "pending".to_string(), None)
        ]
    );
    assert!(
        !spool.has_records(),
        "the spool is emptied after the commit"
    );
    tokio::time::timeout(GUARD, r.dispatcher.drained())
        .await
        .expect("drained");
}

/// The wait for the POS ends 5 s before the request's callback deadline at the latest, however
/// long the request waited before it (here: it arrived 76 s ago, so of its 60 s acknowledgement
/// wait nothing is left): the answer, POS_TIMEOUT, still has its 5 s to be delivered.
#[tokio::test(start_paused = true)]
async fn the_wait_for_the_pos_ends_before_the_callback_deadline() {
    let r = rig("ack-clip", |c| c.journal.pos_ack_timeout_secs = 60);
    let received = Instant::now() - Duration::from_secs(76);
    r.dispatcher.submit(
        br#"{"rID":"p-old","operation":"payBill","billId":"d-bill","sum":100.00}"#,
        received,
    );
    // Guard only: without the bound the wait would last 60 s.
    tokio::time::timeout(GUARD, r.dispatcher.drained())
        .await
        .expect("answered without waiting the full 60 s");
    let sent = r.stub.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1["substate"], "POS_TIMEOUT", "{}", sent[0].1);
    let status: String = rusqlite::Connection::open(r.dispatcher.inner.ctx.journal.path())
        .unwrap()
        .query_row("SELECT status FROM commands WHERE rid = 'p-old'", [], |x| {
            x.get(0)
        })
        .unwrap();
    assert_eq!(
        status, "pending",
        "still applied once when the POS gets to it"
    );
}

/// The latency metric runs from the frame's arrival (docs/deploy.md), so the time a request
/// waited before it started is in it: a frame that arrived 70 s ago adds at least 70 s. The
/// registry is process-wide; other tests only add to it.
#[tokio::test(start_paused = true)]
async fn the_latency_metric_counts_from_arrival() {
    let r = rig("latency", |_| {});
    let before = crate::metrics::global().latency_sum();
    let received = Instant::now() - Duration::from_secs(70);
    r.dispatcher
        .submit(br#"{"rID":"l-1","operation":"checkWork"}"#, received);
    tokio::time::timeout(GUARD, r.dispatcher.drained())
        .await
        .expect("drained");
    assert_eq!(r.stub.sent.lock().unwrap().len(), 1);
    let added = crate::metrics::global().latency_sum() - before;
    assert!(added >= Duration::from_secs(70), "added {added:?}");
}

/// Operations that write the journal do not queue behind one another's mirror wait: a payBill
/// whose bill check waits for the POS's lock on the mirror does not hold up a showMessage.
#[tokio::test]
async fn a_journal_operation_waiting_for_the_mirror_does_not_hold_up_another() {
    let r = rig("journal-writers", |c| {
        c.limits.max_in_flight = 2;
        c.mirror.busy_timeout_ms = 15_000;
    });
    let journal = r.dispatcher.inner.ctx.journal.path().to_path_buf();
    let w = rusqlite::Connection::open(r.dir.join("mirror.sqlite")).unwrap();
    w.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; \
         UPDATE orders SET waiter_name = waiter_name;",
    )
    .unwrap();
    let writers = &r.dispatcher.inner.writer;
    r.dispatcher.submit(
        br#"{"rID":"p-m","operation":"payBill","billId":"d-bill","sum":100.00}"#,
        Instant::now(),
    );
    // Event: the payBill holds its slot (and is reading the locked mirror).
    tokio::time::timeout(GUARD, async {
        while writers.available_permits() == 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the payBill starts");
    r.dispatcher.submit(
        br#"{"rID":"s-m","operation":"showMessage","message":"hi"}"#,
        Instant::now(),
    );
    let rows = |rid: &str| -> i64 {
        rusqlite::Connection::open(&journal)
            .unwrap()
            .query_row("SELECT count(*) FROM commands WHERE rid = ?1", [rid], |x| {
                x.get(0)
            })
            .unwrap()
    };
    tokio::time::timeout(GUARD, async {
        while rows("s-m") == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the message is journaled while the payBill waits for the mirror");
    assert_eq!(rows("p-m"), 0, "the payBill still waits for the mirror");
    drop(w);
    tokio::time::timeout(GUARD, async {
        while rows("p-m") == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the payBill is journaled once the mirror is free");
}

/// Takes streamed bodies through their second pass, as the transport does, but only when the
/// test lets it; counts how many are in hand at once.
#[derive(Default)]
struct Streams {
    now: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
    go: tokio::sync::Notify,
}

impl Deliver for Streams {
    fn deliver<'a>(
        &'a self,
        _path: &'a str,
        _body: &'a SignedBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        panic!("the menu is streamed here")
    }
    fn deliver_stream<'a>(
        &'a self,
        _path: &'a str,
        body: &'a crate::body_stream::StreamBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        Box::pin(async move {
            let go = self.go.notified();
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            go.await;
            let mut rx = body.chunks();
            let mut len = 0;
            while let Some(c) = rx.recv().await {
                len += c.expect("the second pass").len();
            }
            assert_eq!(len, body.len());
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.done.fetch_add(1, Ordering::SeqCst);
            Ok(Delivered {
                attempts: 1,
                status: 200,
            })
        })
    }
}

/// Streamed answers (menuInfo over `max_body_bytes`) are sent at most `max_streaming` at once:
/// each one's second pass holds a pool thread while the network takes it, so a slow cloud
/// holds those places and no more.
#[tokio::test(start_paused = true)]
async fn streamed_answers_are_sent_at_most_max_streaming_at_once() {
    let streams = Arc::new(Streams::default());
    let r = rig_with(
        "streams",
        |c| {
            c.limits.max_body_bytes = 1024;
            c.limits.max_in_flight = 3;
        },
        streams.clone(),
        Arc::default(),
    );
    for i in 0..3 {
        let f = format!(r#"{{"rID":"m-{i}","operation":"menuInfo"}}"#);
        r.dispatcher.submit(f.as_bytes(), Instant::now());
    }
    // Event: one stream is in hand; the others have been computed and wait for their place
    // (the paused clock moves only once every task waits).
    tokio::time::timeout(GUARD, async {
        while streams.now.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("a stream starts");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        streams.now.load(Ordering::SeqCst),
        1,
        "one stream at a time"
    );
    // Let each go as it comes.
    tokio::time::timeout(GUARD, async {
        while streams.done.load(Ordering::SeqCst) < 3 {
            streams.go.notify_waiters();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("all three streamed");
    assert_eq!(streams.most.load(Ordering::SeqCst), 1, "never two at once");
    tokio::time::timeout(GUARD, r.dispatcher.drained())
        .await
        .expect("drained");
    let c = r.dispatcher.counters();
    assert_eq!(c.answered.load(Ordering::Relaxed), 3);
}
