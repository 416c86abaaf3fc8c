//! Bad input, dispatcher level: every frame of the corpus (`support/bad_frames.rs`) goes
//! through the agent's stages (`testkit::stages`: `Dispatcher::submit`, its classification as
//! rejected / unknown / queued, compute against a demo mirror, the wait for a POS that never
//! comes on a paused clock, delivery to a stub). No panic, exactly one well-formed callback for
//! each readable rID, and the mirror file is byte-identical afterwards. The same frames through
//! the real socket, with the log lines and memory checked, are in `bad_input_socket.rs`.

#[path = "support/bad_frames.rs"]
mod bad_frames;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bad_frames::{corpus, Expect};
use expirenza_agent::ops::Op;
use expirenza_agent::request::parse_envelope;
use expirenza_agent::{mirror, Config};
use sha2::{Digest, Sha256};
use testkit::stages::Stages;

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

fn setup() -> (Stages, PathBuf, PathBuf) {
    setup_stub()
}

fn setup_stub() -> (Stages, PathBuf, PathBuf) {
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
    (Stages::new(cfg), dir, state)
}

/// Checks a delivered callback's shape: within the body cap, JSON, its rID echoed. Whether it
/// is a FAIL.
fn check_reply(s: &Stages, name: &str, rid: &str, r: &testkit::stages::Reply) -> bool {
    assert!(
        r.body.len() <= s.cfg.limits.max_body_bytes,
        "{name}: body over the cap"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{name}: answer is not JSON ({e}): {:?}", r.body));
    assert_eq!(
        v["rID"].as_str(),
        Some(rid),
        "{name}: answer must echo the rID"
    );
    v["state"] == "FAIL" || v["result"]["success"] == false
}

#[test]
fn corpus_through_the_dispatcher_and_every_operation() {
    let (s, dir, state) = setup_stub();
    let before = hash_dir(&dir);
    let counters = s.dispatcher.counters();
    let cases = corpus();
    let mut handled = 0usize;
    let mut fails = 0usize;
    for c in &cases {
        let (rej0, unk0, q0) = (
            counters.rejected_frames.load(Ordering::Relaxed),
            counters.unknown_ops.load(Ordering::Relaxed),
            counters.queue_full.load(Ordering::Relaxed),
        );
        let seen = s.capture.count();
        s.submit(&c.frame);
        s.drain();
        // Exactly one callback when the rID can be read (none for operations without an
        // answer), none otherwise.
        let replies = s.capture.since(seen);
        let sent: Vec<String> = replies
            .iter()
            .map(|r| r.rid.clone().unwrap_or_default())
            .collect();
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
        for (r, rid) in replies.iter().zip(&rid) {
            if check_reply(&s, &c.name, rid, r) && got == Expect::Handled {
                fails += 1;
            }
        }
        if got == Expect::Handled {
            handled += 1;
        }
    }
    assert_eq!(
        counters.received.load(Ordering::Relaxed) as usize,
        cases.len()
    );
    drop(s);
    assert_eq!(hash_dir(&dir), before, "the mirror directory changed");
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
    let (s, dir, _) = setup();
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
        let v = s.call(&frame);
        assert_eq!(v["state"], "FAIL", "{t}: {v}");
        assert_eq!(v["substate"], "TABLE_NOT_FOUND", "{t}: {v}");
        assert_eq!(
            v["tableNumber"], t,
            "the value is echoed verbatim, not interpreted"
        );
    }
    // The real table still answers: nothing was dropped.
    let v = s.call(r#"{"rID":"ok","operation":"getBill","tableNumber":"12"}"#);
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
    let (s, dir, state) = setup();
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
        let v = s.call(&frame);
        assert_eq!(v["state"], "FAIL", "{name}: {v}");
        assert_no_money_command_pending(&state);
    }
    // Control: the correct payment does become a live row, so the check above can fail.
    let frame =
        format!(r#"{{"rID":"money-ok","operation":"payBill","billId":"{bill}","sum":389.50}}"#);
    assert_eq!(s.call(&frame)["substate"], "POS_TIMEOUT", "no POS here");
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
