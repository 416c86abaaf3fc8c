//! The cases of docs/journal.md's contract table that no other test names: repeats while the
//! first payment is still pending or claimed, a `substate` on every `review` row, where the
//! agent reads a refusal, splitOrder's modifiers, discounts and new bill, createOrderOnTable's
//! amount, and getBill's ORDER_NOT_FOUND and echoed `tableNumber`. Each test runs the requests
//! through the agent's stages (`testkit::stages`: admission, compute, the wait for the POS on a
//! paused clock, delivery to a stub) against a demo mirror, with the simulated POS (or a
//! hand-written acknowledgement) on the other side of the journal, stepped by the test while
//! the requests wait.

use std::path::PathBuf;

use expirenza_agent::config::Config;
use expirenza_agent::mirror;
use rusqlite::{params, Connection};
use serde_json::Value;
use testkit::harness::TempDir;
use testkit::sim_pos::SimPos;
use testkit::stages::{Stages, Started};

const BILL1: &str = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11"; // table 12, total 389.50, BILL

struct Rig {
    _dir: TempDir,
    mirror: PathBuf,
    ctx: Stages,
}

fn rig(tweak: impl FnOnce(&mut Config)) -> Rig {
    let dir = TempDir::new("journal-contract");
    let m = dir.path().join("mirror.sqlite");
    let mut conn = mirror::create_schema(&m).unwrap();
    mirror::demo::fill(&mut conn).unwrap();
    drop(conn);
    let mut cfg = Config::for_loopback(
        "resto-1",
        "secret",
        "ws://127.0.0.1:9/ws",
        "http://127.0.0.1:9/callback",
        &m,
        dir.path(),
    );
    cfg.journal.pos_ack_timeout_secs = 20;
    cfg.journal.poll_interval_ms = 5;
    tweak(&mut cfg);
    let ctx = Stages::new(cfg);
    Rig {
        _dir: dir,
        mirror: m,
        ctx,
    }
}

impl Rig {
    /// The request up to its wait for the POS: journaled, waiting, not answered.
    fn start(&self, frame: &str) -> Started {
        let s = self.ctx.start(frame);
        assert!(
            self.ctx.capture.for_rid(&s.rid).is_empty(),
            "{}: answered without waiting for the POS",
            s.rid
        );
        s
    }
    /// Run to the end (waiting for the POS as the agent does) and parse the callback.
    fn call(&self, frame: &str) -> Value {
        self.ctx.call(frame)
    }
    /// Run a started request to its callback.
    fn finish(&self, s: Started) -> Value {
        self.ctx.finish(s).json()
    }
    fn pos(&self) -> SimPos {
        SimPos::open(self.ctx.journal.path(), &self.mirror).unwrap()
    }
    fn journal(&self) -> Connection {
        Connection::open(self.ctx.journal.path()).unwrap()
    }
    fn row(&self, rid: &str) -> (String, Option<String>, Option<i64>) {
        self.journal()
            .query_row(
                "SELECT status, substate, dup_of FROM commands WHERE rid = ?1",
                params![rid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    }
    fn id(&self, rid: &str) -> i64 {
        self.journal()
            .query_row(
                "SELECT id FROM commands WHERE rid = ?1",
                params![rid],
                |r| r.get(0),
            )
            .unwrap()
    }
    fn payments(&self, bill: &str) -> i64 {
        Connection::open(&self.mirror)
            .unwrap()
            .query_row(
                "SELECT count(*) FROM pos_payments WHERE bill_id = ?1",
                params![bill],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }
}

fn pay(rid: &str, bill: &str, sum: &str) -> String {
    format!(r#"{{"rID":"{rid}","operation":"payBill","billId":"{bill}","sum":{sum}}}"#)
}

/// A second rID for a bill whose payment is still `pending` waits for that payment and
/// answers its outcome; it is kept as a `review` row (DUPLICATE_PAYMENT, `dup_of`).
#[test]
fn repeat_new_rid_while_the_first_payment_is_pending_answers_its_outcome() {
    let ctx_r = rig(|_| {});
    let first = ctx_r.start(&pay("p-a", BILL1, "389.50"));
    let second = ctx_r.start(&pay("p-b", BILL1, "389.50"));
    // The POS applies the first payment while the second waits for it.
    let mut pos = ctx_r.pos();
    let (claimed, _) = pos.step().unwrap().expect("p-a pending");
    assert_eq!(claimed.rid, "p-a");
    let b = ctx_r.finish(second);
    let a = ctx_r.finish(first);
    assert_eq!(a["state"], "SUCCESS", "{a}");
    assert_eq!(b["state"], "SUCCESS", "{b}");
    assert_eq!(b["rID"], "p-b");
    assert_eq!(ctx_r.payments(BILL1), 1);
    assert_eq!(ctx_r.row("p-a").0, "applied");
    assert_eq!(
        ctx_r.row("p-b"),
        (
            "review".into(),
            Some("DUPLICATE_PAYMENT".into()),
            Some(ctx_r.id("p-a"))
        )
    );
    assert!(
        pos.step().unwrap().is_none(),
        "the review row is never claimed"
    );
}

/// The same while the first payment is `claimed` (the POS is applying it).
#[test]
fn repeat_new_rid_while_the_first_payment_is_claimed_answers_its_outcome() {
    let r = rig(|_| {});
    let first = r.start(&pay("p-c", BILL1, "389.50"));
    let mut pos = r.pos();
    let claimed = pos.claim().unwrap().expect("p-c pending");
    let second = r.start(&pay("p-d", BILL1, "389.50"));
    let out = pos.apply(&claimed).unwrap();
    pos.acknowledge(&claimed, &out).unwrap();
    assert_eq!(r.finish(second)["state"], "SUCCESS");
    assert_eq!(r.finish(first)["state"], "SUCCESS");
    assert_eq!(r.payments(BILL1), 1);
    assert_eq!(r.row("p-d").1.as_deref(), Some("DUPLICATE_PAYMENT"));
}

/// Every way a payment becomes a `review` row leaves a sub-state on it, the one the cloud was
/// answered with (or, for a repeat, DUPLICATE_PAYMENT: the cloud got the first outcome).
#[test]
fn every_review_row_has_a_substate() {
    let r = rig(|c| c.journal.busy_timeout_ms = Some(100));
    let mut pos = r.pos();
    let cases = [
        (pay("r-unknown", "no-such-bill", "1.00"), "ORDER_NOT_FOUND"),
        (pay("r-closed", "b-closed-1", "100.00"), "ORDER_CLOSED"),
        (pay("r-sum", BILL1, "400.00"), "WRONG_REQUEST_SUM"),
        (
            r#"{"rID":"r-bad","operation":"payBill","billId":"x"}"#.to_string(),
            "BAD_REQUEST",
        ),
    ];
    for (frame, sub) in &cases {
        assert_eq!(r.call(frame)["substate"], *sub, "{frame}");
    }
    // A repeat payment.
    let a = r.start(&pay("r-first", BILL1, "389.50"));
    pos.step().unwrap();
    assert_eq!(r.finish(a)["state"], "SUCCESS");
    assert_eq!(
        r.call(&pay("r-repeat", BILL1, "389.50"))["state"],
        "SUCCESS"
    );
    // A request the journal could not take, moved in from the spool.
    {
        let lock = Connection::open(r.ctx.journal.path()).unwrap();
        lock.execute_batch("BEGIN IMMEDIATE;").unwrap();
        assert_eq!(
            r.call(&pay("r-spooled", "b-3001", "232.50"))["substate"],
            "JOURNAL_UNAVAILABLE"
        );
    }
    assert_eq!(r.ctx.journal.move_spool().unwrap(), 1);
    let review: Vec<(String, Option<String>)> = r
        .journal()
        .prepare("SELECT rid, substate FROM commands WHERE status = 'review' ORDER BY id")
        .unwrap()
        .query_map([], |x| Ok((x.get(0)?, x.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expect: Vec<(String, Option<String>)> = cases
        .iter()
        .map(|(f, s)| {
            let rid = serde_json::from_str::<Value>(f).unwrap()["rID"]
                .as_str()
                .unwrap()
                .to_string();
            (rid, Some(s.to_string()))
        })
        .chain([
            ("r-repeat".into(), Some("DUPLICATE_PAYMENT".into())),
            ("r-spooled".into(), Some("JOURNAL_UNAVAILABLE".into())),
        ])
        .collect();
    assert_eq!(review, expect);
}

/// A POS refusal: the agent reads the `substate` and `reason` columns; where a column is
/// NULL, `result`'s `substate` / `message`; an unknown sub-state goes to the cloud as
/// POS_REJECTED with the POS's own in front of the message.
#[test]
fn a_refusal_is_read_from_the_columns_then_from_result() {
    let r = rig(|_| {});
    // (substate column, reason column, result, the cloud's substate, its message contains)
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
        &'a str,
    );
    let cases: [Case<'_>; 4] = [
        (
            Some("ORDER_CLOSED"),
            Some("closed at the till"),
            Some(r#"{"substate":"WRONG_REQUEST_SUM","message":"ignored"}"#),
            "ORDER_CLOSED",
            "closed at the till",
        ),
        (
            None,
            None,
            Some(r#"{"substate":"WRONG_REQUEST_SUM","message":"the till says 390.00"}"#),
            "WRONG_REQUEST_SUM",
            "the till says 390.00",
        ),
        (
            Some("TILL_OFFLINE"),
            Some("the till is off"),
            None,
            "POS_REJECTED",
            "TILL_OFFLINE: the till is off",
        ),
        (None, None, None, "POS_REJECTED", "the POS refused command"),
    ];
    for (i, (sub, reason, result, want_sub, want_msg)) in cases.iter().enumerate() {
        let rid = format!("ref-{i}");
        let a = r.start(&pay(&rid, BILL1, "389.50"));
        let id = r.id(&rid);
        let n = r
            .journal()
            .execute(
                "UPDATE commands SET status = 'rejected', substate = ?2, reason = ?3, result = ?4, \
                 applied_at = 1 WHERE id = ?1",
                params![id, sub, reason, result],
            )
            .unwrap();
        assert_eq!(n, 1);
        let v = r.finish(a);
        assert_eq!(v["state"], "FAIL", "{v}");
        assert_eq!(v["substate"], *want_sub, "case {i}: {v}");
        assert!(
            v["errorMessage"].as_str().unwrap().contains(want_msg),
            "case {i}: {v}"
        );
    }
}

/// splitOrder: a dish's modifier lines follow it in the same proportion (and count in what
/// the agent compares with controlSum); the mirror's discounts are amounts, divided in
/// proportion to the lines' sums, never copied; the new bill is created now, `NEW`, not
/// splittable, with `rootBillId` the parent; no kopeck is lost or created.
#[test]
fn split_modifiers_follow_their_dish_and_a_fixed_discount_is_divided_not_copied() {
    let r = rig(|c| c.compat.strict_control_sum = true);
    Connection::open(&r.mirror)
        .unwrap()
        .execute_batch(
            "INSERT INTO orders (bill_id, order_number, table_id, state, created, raw_sum_kop, total_sum_kop, split_available) \
             VALUES ('sp-1', 4001, 'table-4', 'NEW', '2024.05.14 18:21:07', 33000, 28000, 1);
             INSERT INTO order_positions (bill_id, position_id, line_no, linked_to, dish_id, name, count_milli, sum_kop, type) VALUES
               ('sp-1', 'd-1', 1, NULL, 'm-205', 'Вареники', 2000, 20000, 'dish'),
               ('sp-1', 'm-1', 2, 'd-1', 'mod-12', 'Сметана', 2000, 3000, 'modifier'),
               ('sp-1', 'd-2', 3, NULL, 'm-330', 'Узвар', 1000, 10000, 'dish');
             INSERT INTO order_discounts (bill_id, discount_id, name, sum_kop) VALUES ('sp-1', 'fix-50', 'Сертифікат', 5000);",
        )
        .unwrap();
    let split = |rid: &str, control: &str| {
        format!(
            r#"{{"rID":"{rid}","operation":"splitOrder","billId":"sp-1","controlSum":{control},"positions":[{{"id":"d-1","quantity":1}}]}}"#
        )
    };
    // One portion of two is 100.00; with its half of the sour cream, 115.00.
    assert_eq!(
        r.call(&split("sp-wrong", "100.00"))["substate"],
        "WRONG_CONTROL_SUM"
    );
    let a = r.start(&split("sp-ok", "115.00"));
    r.pos().step().unwrap().expect("the split is pending");
    let v = r.finish(a);
    assert_eq!(v["state"], "SUCCESS", "{v}");
    let (parent, child) = (&v["orders"][0], &v["orders"][1]);
    let lines = |o: &Value| -> Vec<(String, f64, f64)> {
        o["guests"][0]["dishes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["positionId"].as_str().unwrap().to_string(),
                    d["count"].as_f64().unwrap(),
                    d["sum"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        lines(child),
        [("d-1".into(), 1.0, 100.0), ("m-1".into(), 1.0, 15.0)]
    );
    assert_eq!(
        lines(parent),
        [
            ("d-1".into(), 1.0, 100.0),
            ("m-1".into(), 1.0, 15.0),
            ("d-2".into(), 1.0, 100.0)
        ]
    );
    // 50.00 × 115.00 / 330.00 = 17.424… → 17.42 to the new bill, 32.58 stays.
    assert_eq!(child["discounts"]["list"][0]["sum"].as_f64(), Some(17.42));
    assert_eq!(parent["discounts"]["list"][0]["sum"].as_f64(), Some(32.58));
    assert_eq!(child["totalSum"].as_f64(), Some(97.58));
    assert_eq!(parent["totalSum"].as_f64(), Some(182.42));
    let kop = |o: &Value| (o["totalSum"].as_f64().unwrap() * 100.0).round() as i64;
    assert_eq!(
        kop(parent) + kop(child),
        28_000,
        "no kopeck lost or created"
    );
    assert_eq!(child["state"], "NEW");
    assert_eq!(child["splitAvailable"], false);
    assert_eq!(child["rootBillId"], "sp-1");
    assert_ne!(child["created"], parent["created"], "created when split");
    assert_eq!(child["created"].as_str().unwrap().len(), 19, "{child}");
}

/// createOrderOnTable: `sum_kop` is the order's price from the mirror's menu when it arrived
/// (items and modifiers, price × quantity rounded half up): what the POS charges.
#[test]
fn create_order_sum_kop_is_the_mirror_menu_price_at_arrival() {
    let r = rig(|_| {});
    let a = r.start(
        r#"{"rID":"o-1","operation":"createOrderOnTable","externalId":"e-1","tableId":"table-12",
            "items":[{"id":"m-101","quantity":2,"modifier":[{"id":"mod-12","quantity":1}]},{"id":"m-905","quantity":0.35}]}"#,
    );
    // 2 × 145.00 + 15.00 + 0.35 × 650.00 (227.50) = 532.50
    let sum: i64 = r
        .journal()
        .query_row("SELECT sum_kop FROM commands WHERE rid = 'o-1'", [], |x| {
            x.get(0)
        })
        .unwrap();
    assert_eq!(sum, 53_250);
    // A price change after arrival does not change what was recorded.
    Connection::open(&r.mirror)
        .unwrap()
        .execute(
            "UPDATE menu_items SET price_kop = 99900 WHERE id = 'm-101'",
            [],
        )
        .unwrap();
    r.pos().step().unwrap();
    assert_eq!(r.finish(a)["result"]["success"], true);
    let again: i64 = r
        .journal()
        .query_row("SELECT sum_kop FROM commands WHERE rid = 'o-1'", [], |x| {
            x.get(0)
        })
        .unwrap();
    assert_eq!(again, 53_250);
}

/// getBill: a table with no open bill is ORDER_NOT_FOUND (an unknown one TABLE_NOT_FOUND);
/// `tableNumber` is echoed as the request sent it (a number as its text), and with `billId`
/// alone it is the bill's table.
#[test]
fn get_bill_order_not_found_and_the_echoed_table_number() {
    let r = rig(|_| {});
    let get = |fields: &str| r.call(&format!(r#"{{"rID":"g","operation":"getBill",{fields}}}"#));
    let v = get(r#""tableNumber":"5""#);
    assert_eq!(
        (v["state"].as_str(), v["substate"].as_str()),
        (Some("FAIL"), Some("ORDER_NOT_FOUND"))
    );
    assert_eq!(v["tableNumber"], "5");
    let v = get(r#""tableNumber":"99""#);
    assert_eq!(v["substate"], "TABLE_NOT_FOUND");
    assert_eq!(v["tableNumber"], "99");
    let v = get(r#""tableNumber":12"#);
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(v["tableNumber"], "12", "a number is echoed as its text");
    let v = get(&format!(r#""billId":"{BILL1}""#));
    assert_eq!(v["tableNumber"], "12", "the bill's own table");
    let v = get(&format!(r#""billId":"{BILL1}","tableNumber":"7""#));
    assert_eq!(v["substate"], "ORDER_NOT_FOUND", "not on that table");
    assert_eq!(v["tableNumber"], "7");
}
