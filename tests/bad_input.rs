//! Bad input, dispatcher level: every frame of the corpus (`support/bad_frames.rs`) goes
//! through `Dispatcher::submit` (classification: rejected / unknown / queued), and every frame
//! that would be queued is then run through `ops::handle` against a demo mirror, as the worker
//! would. No panic, a well-formed answer (or a clean error) for each, and the mirror file is
//! byte-identical afterwards. The same frames through the real socket, with the log lines and
//! memory checked, are in `bad_input_socket.rs`.

#[path = "support/bad_frames.rs"]
mod bad_frames;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bad_frames::{corpus, Expect};
use expirenza_agent::agent::Quiet;
use expirenza_agent::callback::{BoxFuture, CallbackError, Deliver, Delivered};
use expirenza_agent::dispatch;
use expirenza_agent::ops::{self, Answer, Ctx, Op};
use expirenza_agent::request::parse_envelope;
use expirenza_agent::sign::SignedBody;
use expirenza_agent::{mirror, Config};
use sha2::{Digest, Sha256};

static N: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "expirenza-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hash_dir(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let h = hex(&Sha256::digest(std::fs::read(&p).unwrap()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), h)
        })
        .collect();
    v.sort();
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Records the rID of every callback instead of sending it.
#[derive(Default)]
struct Stub {
    rids: std::sync::Mutex<Vec<String>>,
}

impl Deliver for Stub {
    fn deliver<'a>(
        &'a self,
        _path: &'a str,
        body: &'a SignedBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        let v: serde_json::Value = serde_json::from_slice(body.body()).unwrap();
        self.rids
            .lock()
            .unwrap()
            .push(v["rID"].as_str().unwrap_or_default().to_string());
        Box::pin(async {
            Ok(Delivered {
                attempts: 1,
                status: 200,
            })
        })
    }
}

fn setup() -> (Arc<Ctx>, PathBuf, PathBuf) {
    let (ctx, dir, state, _) = setup_stub();
    (ctx, dir, state)
}

fn setup_stub() -> (Arc<Ctx>, PathBuf, PathBuf, Arc<Stub>) {
    let dir = temp_dir("badinput");
    let mirror_path = dir.join("mirror.sqlite");
    {
        let mut conn = mirror::create_schema(&mirror_path).unwrap();
        mirror::demo::fill(&mut conn).unwrap();
        // Checkpoint and leave rollback mode so the file alone is the whole database and its
        // hash means something.
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
            .unwrap();
    }
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut cfg = Config::for_loopback(
        "resto-bad-input",
        "bad-input-secret",
        "ws://127.0.0.1:9/ws",
        "http://127.0.0.1:9/callback",
        &mirror_path,
        &state,
    );
    cfg.limits.max_queue = 100_000;
    // A request that did reach `pending` would wait this long for a POS that never comes.
    cfg.journal.pos_ack_timeout_secs = 1;
    cfg.validate().unwrap();
    let cfg = Arc::new(cfg);
    let stub = Arc::new(Stub::default());
    (Arc::new(Ctx::new(cfg, stub.clone())), dir, state, stub)
}

/// Runs one queued frame as the worker would (minus delivery) and checks the answer's shape.
fn run_op(ctx: &Ctx, name: &str, frame: &[u8]) -> Result<String, String> {
    let env = parse_envelope(frame).map_err(|e| format!("{name}: envelope {e}"))?;
    let op = Op::from_name(&env.operation).ok_or(format!("{name}: op vanished"))?;
    match ops::handle_to_end(op, ctx, &env, frame) {
        Ok(Answer::Callback { body, outcome }) => {
            assert!(
                body.len() <= ctx.cfg.limits.max_body_bytes,
                "{name}: body over the cap"
            );
            let v: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{name}: answer is not JSON ({e}): {body:?}"));
            assert_eq!(
                v["rID"].as_str(),
                Some(env.rid.as_str()),
                "{name}: answer must echo the rID"
            );
            Ok(outcome)
        }
        Ok(Answer::None { outcome }) => Ok(outcome),
        Ok(Answer::AwaitPos { id, .. }) => Ok(format!("awaiting #{id}")),
        Ok(Answer::Stream { outcome, .. }) => Ok(outcome),
        Err(e) => {
            // A clean, bounded error is acceptable for hostile input; it must be printable.
            let s = e.to_string();
            assert!(s.len() < 8192, "{name}: error text unbounded");
            Ok(format!("error {s}"))
        }
    }
}

#[tokio::test]
async fn corpus_through_the_dispatcher_and_every_operation() {
    let (ctx, dir, state, stub) = setup_stub();
    let before = hash_dir(&dir);
    let state_before = hash_dir(&state);
    let (dispatcher, worker) = dispatch::channel(ctx.clone(), Arc::new(Quiet));
    let counters = dispatcher.counters();
    let cases = corpus();
    let mut handled = 0usize;
    let mut fails = 0usize;
    for c in &cases {
        let (rej0, unk0, q0) = (
            counters.rejected_frames.load(Ordering::Relaxed),
            counters.unknown_ops.load(Ordering::Relaxed),
            counters.queue_full.load(Ordering::Relaxed),
        );
        stub.rids.lock().unwrap().clear();
        dispatcher.submit(&c.frame, Instant::now());
        dispatcher.drained().await;
        // Exactly one callback when the rID can be read (none for operations without an
        // answer), none otherwise.
        let sent = std::mem::take(&mut *stub.rids.lock().unwrap());
        let rid = parse_envelope(&c.frame)
            .map(|e| e.rid.to_string())
            .ok()
            .or_else(|| expirenza_agent::request::sniff_rid(&c.frame));
        let silent_op = parse_envelope(&c.frame)
            .ok()
            .and_then(|e| Op::from_name(&e.operation))
            .is_some_and(|op| op.callback_path().is_none());
        match (&rid, silent_op) {
            (Some(r), false) => assert_eq!(sent, std::slice::from_ref(r), "{}", c.name),
            _ => assert!(sent.is_empty(), "{}: {sent:?}", c.name),
        }
        let rejected = counters.rejected_frames.load(Ordering::Relaxed) - rej0;
        let unknown = counters.unknown_ops.load(Ordering::Relaxed) - unk0;
        assert_eq!(
            counters.queue_full.load(Ordering::Relaxed),
            q0,
            "{}",
            c.name
        );
        let got = match (rejected, unknown) {
            (1, 0) => Expect::Rejected,
            (0, 1) => Expect::Unknown,
            (0, 0) => Expect::Handled,
            other => panic!("{}: counted twice {other:?}", c.name),
        };
        if !(c.expect == Expect::Either && got != Expect::Unknown) {
            assert_eq!(got, c.expect, "{}: frame {:?}", c.name, preview(&c.frame));
        }
        if got == Expect::Handled {
            let outcome = run_op(&ctx, &c.name, &c.frame).unwrap();
            handled += 1;
            if outcome.contains("FAIL") {
                fails += 1;
            }
        }
    }
    assert_eq!(
        counters.received.load(Ordering::Relaxed) as usize,
        cases.len()
    );
    drop(worker);
    assert_eq!(hash_dir(&dir), before, "the mirror directory changed");
    let _ = state_before;
    assert_no_money_command_pending(&state);
    println!(
        "bad input: {} frames, {} handled by an operation ({} FAIL answers), {} rejected, {} unknown op",
        cases.len(),
        handled,
        fails,
        counters.rejected_frames.load(Ordering::Relaxed),
        counters.unknown_ops.load(Ordering::Relaxed)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sql_looking_table_numbers_are_plain_values() {
    let (ctx, dir, _) = setup();
    let before = hash_dir(&dir);
    for t in [
        "12; DROP TABLE orders",
        "' OR 1=1 --",
        "12' --",
        "1 OR 1=1",
        "%",
        "_",
    ] {
        let frame =
            serde_json::json!({"rID":"sql","operation":"getBill","tableNumber":t}).to_string();
        let env = parse_envelope(frame.as_bytes()).unwrap();
        let Answer::Callback { body, .. } =
            ops::handle_to_end(Op::GetBill, &ctx, &env, frame.as_bytes()).unwrap()
        else {
            panic!("getBill always answers")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["state"], "FAIL", "{t}: {v}");
        assert_eq!(v["substate"], "TABLE_NOT_FOUND", "{t}: {v}");
        assert_eq!(
            v["tableNumber"], t,
            "the value is echoed verbatim, not interpreted"
        );
    }
    // The real table still answers: nothing was dropped.
    let frame = br#"{"rID":"ok","operation":"getBill","tableNumber":"12"}"#;
    let env = parse_envelope(frame).unwrap();
    let Answer::Callback { body, .. } = ops::handle_to_end(Op::GetBill, &ctx, &env, frame).unwrap()
    else {
        panic!()
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["state"], "SUCCESS", "{v}");
    assert_eq!(hash_dir(&dir), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The journal may record bad requests (payBill: status `review`, kept for reconciliation and
/// never applied; showMessage: passed to the staff as sent; setSettings: stored), but no bad
/// input may leave a POS-changing command that the POS would apply.
fn assert_no_money_command_pending(state: &std::path::Path) {
    let live = live_money_commands(state);
    assert!(
        live.is_empty(),
        "bad input became live POS commands: {live:?}"
    );
}

fn live_money_commands(state: &std::path::Path) -> Vec<(String, String, String)> {
    let p = state.join("journal.sqlite");
    if !p.exists() {
        return Vec::new();
    }
    let c = rusqlite::Connection::open(&p).unwrap();
    let mut st = c
        .prepare(
            "SELECT rid, operation, status FROM commands \
             WHERE operation IN ('payBill','splitOrder','createOrderOnTable') \
             AND status NOT IN ('review','rejected')",
        )
        .unwrap();
    let live: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    live
}

/// payBill on the demo's open bill (total 389.50) with hostile money values: never SUCCESS,
/// never a live journal row. (A bad `tips` is set aside and the payment goes on: that is in
/// tests/protocol_tolerance.rs.)
#[test]
fn hostile_money_never_becomes_a_payment() {
    let (ctx, dir, state) = setup();
    let before = hash_dir(&dir);
    let bill = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11";
    let cases = [
        ("neg_sum", r#""sum":-389.50"#),
        ("zero_sum", r#""sum":0"#),
        ("huge_sum", r#""sum":1e308"#),
        ("overflow_sum", r#""sum":99999999999999999999.99"#),
        ("sub_kopeck", r#""sum":389.505"#),
        ("string_sum_garbage", r#""sum":"389.50 UAH""#),
        ("bool_sum", r#""sum":true"#),
        ("null_sum", r#""sum":null"#),
        ("sql_bill", r#""sum":389.50,"billId":"x' OR 1=1 --""#),
    ];
    for (name, fields) in cases {
        let frame = if fields.contains("billId") {
            format!(r#"{{"rID":"money-{name}","operation":"payBill",{fields}}}"#)
        } else {
            format!(r#"{{"rID":"money-{name}","operation":"payBill","billId":"{bill}",{fields}}}"#)
        };
        let env = parse_envelope(frame.as_bytes()).unwrap();
        let answer = ops::handle_to_end(Op::PayBill, &ctx, &env, frame.as_bytes());
        if let Ok(Answer::Callback { body, .. }) = &answer {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["state"], "FAIL", "{name}: {v}");
        }
        assert_no_money_command_pending(&state);
    }
    // Control: the correct payment does become a live row, so the check above can fail.
    let frame =
        format!(r#"{{"rID":"money-ok","operation":"payBill","billId":"{bill}","sum":389.50}}"#);
    let env = parse_envelope(frame.as_bytes()).unwrap();
    let _ = ops::handle_to_end(Op::PayBill, &ctx, &env, frame.as_bytes());
    assert_eq!(
        live_money_commands(&state).len(),
        1,
        "a valid payBill must be journaled pending"
    );
    assert_eq!(hash_dir(&dir), before, "the mirror changed");
    let _ = std::fs::remove_dir_all(&dir);
}

fn preview(f: &[u8]) -> String {
    let s = String::from_utf8_lossy(&f[..f.len().min(120)]).into_owned();
    if f.len() > 120 {
        format!("{s}… ({} bytes)", f.len())
    } else {
        s
    }
}
