//! The journal-backed operations through the agent's stages (`testkit::stages`: admission,
//! compute, the wait for the POS on a paused clock, delivery to a stub), against a demo mirror,
//! with the simulated POS applying the commands (a task on the same clock, or stepped by the
//! test while a request waits). Each test reads the answer body, the journal rows and the
//! mirror afterwards.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use expirenza_agent::config::{AckMode, Config};
use expirenza_agent::journal::Status;
use expirenza_agent::mirror;
use rusqlite::{params, Connection};
use serde_json::Value;
use testkit::sim_pos::{self, Outcome, SimPos};
use testkit::stages::{PosTask, Stages};

const BILL1: &str = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11"; // table 12, total 389.50, BILL
const BILL2: &str = "4afc3774-cc50-4e07-ad81-dd65f166244a"; // table 7, 1720.60, splittable
const SET: &str = "8e2ad560-938b-4972-ba60-8098aac99f8b"; // on BILL2: 1 × 1080.60
const DERUNY: &str = "c53e1948-7ffe-4dea-8e25-9e6773fa8768"; // on BILL2: 2 × (240.00 total)

static N: AtomicUsize = AtomicUsize::new(0);

struct Rig {
    dir: PathBuf,
    mirror: PathBuf,
    journal: PathBuf,
    ctx: Stages,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rig_with(menu: bool, tweak: impl FnOnce(&mut Config)) -> Rig {
    let dir = std::env::temp_dir().join(format!(
        "xa-journal-ops-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mirror_path = dir.join("mirror.sqlite");
    let mut conn = mirror::create_schema(&mirror_path).unwrap();
    mirror::demo::fill(&mut conn).unwrap();
    if menu {
        // The demo menu, plus an inactive dish and stop-list limits for these tests.
        conn.execute_batch(
            "INSERT INTO menu_items (id, name, price_kop, is_active) VALUES ('m-999', 'Сезонна страва', 30000, 0);
             INSERT OR REPLACE INTO stop_list (item_id, remaining_milli) VALUES ('m-410', 0), ('m-620', 3000);",
        )
        .unwrap();
    } else {
        conn.execute_batch("DROP TABLE stop_list; DROP TABLE menu_items;")
            .unwrap();
    }
    drop(conn);
    let mut cfg = Config::for_loopback(
        "resto-1",
        "secret",
        "ws://127.0.0.1:9/ws",
        "http://127.0.0.1:9/callback",
        &mirror_path,
        &dir,
    );
    cfg.journal.pos_ack_timeout_secs = 10;
    cfg.journal.poll_interval_ms = 5;
    tweak(&mut cfg);
    let journal = cfg.journal_path();
    let ctx = Stages::new(cfg);
    Rig {
        dir,
        mirror: mirror_path,
        journal,
        ctx,
    }
}

fn rig() -> Rig {
    rig_with(true, |_| {})
}

impl Rig {
    /// The simulated POS, polling every 5 ms of the paused clock while the stages run.
    fn pos(&self) -> PosTask {
        self.ctx.pos(Duration::from_millis(5))
    }
    /// Run the operation and parse its callback body.
    fn call(&self, frame: &str) -> Value {
        self.ctx.call(frame)
    }
    /// Run an operation that has no callback; true when it ended as it should (journaled).
    fn silent(&self, frame: &str) -> bool {
        let before = self.ctx.ended.all().len();
        assert!(self.ctx.answer(frame).is_none(), "a callback for {frame}");
        let ended = self.ctx.ended.all();
        assert_eq!(ended.len(), before + 1, "{frame}: {ended:?}");
        ended.last().is_some_and(|(_, ok)| *ok)
    }
    fn j(&self) -> Connection {
        Connection::open(&self.journal).unwrap()
    }
    fn m(&self) -> Connection {
        Connection::open(&self.mirror).unwrap()
    }
    fn rows(&self, sql: &str) -> i64 {
        self.j().query_row(sql, [], |r| r.get(0)).unwrap()
    }
    fn status_of(&self, rid: &str) -> String {
        self.j()
            .query_row(
                "SELECT status FROM commands WHERE rid = ?1",
                params![rid],
                |r| r.get(0),
            )
            .unwrap()
    }
    fn bill_state(&self, bill: &str) -> String {
        self.m()
            .query_row(
                "SELECT state FROM orders WHERE bill_id = ?1",
                params![bill],
                |r| r.get(0),
            )
            .unwrap()
    }
    fn payments(&self, bill: &str) -> i64 {
        self.m()
            .query_row(
                "SELECT count(*) FROM pos_payments WHERE bill_id = ?1",
                params![bill],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }
}

fn pay(rid: &str, bill: &str, sum: &str) -> String {
    format!(
        r#"{{"rID":"{rid}","operation":"payBill","billId":"{bill}","sum":{sum},"tips":19.24,"prepay":false,"fiscalData":[{{"key":"ЕКВАЙЕР","value":"Universal Bank"}}]}}"#
    )
}

fn fail_sub(v: &Value) -> &str {
    assert_eq!(v["state"], "FAIL", "{v}");
    v["substate"].as_str().unwrap()
}

// ---------------------------------------------------------------- payBill

#[test]
fn pay_bill_success_closes_the_bill_and_keeps_tips_and_fiscal_data() {
    let r = rig();
    let _pos = r.pos();
    let v = r.call(&pay("p-ok", BILL1, "389.50"));
    assert_eq!(v["state"], "SUCCESS", "{v}");
    assert_eq!(v["rID"], "p-ok");
    assert_eq!(v["billId"], BILL1);
    assert_eq!(v["orderNumber"], 1842);
    assert_eq!(v["waiter"], "Оксана Мельник");
    assert_eq!(v["waiterId"], "u-017");
    let dishes = v["guests"][0]["dishes"].as_array().unwrap();
    assert_eq!(dishes.len(), 4);
    assert_eq!(dishes[0]["sum"].as_f64().unwrap(), 145.0);
    assert_eq!(r.bill_state(BILL1), "PAYED");
    assert_eq!(r.payments(BILL1), 1);
    let (status, sum, tips, req): (String, i64, i64, String) = r
        .j()
        .query_row(
            "SELECT status, sum_kop, tips_kop, request FROM commands WHERE rid = 'p-ok'",
            [],
            |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?, x.get(3)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), sum, tips), ("applied", 38950, 1924));
    assert!(req.contains("Universal Bank") && req.contains("\"prepay\":false"));
}

#[test]
fn pay_bill_same_rid_twice_is_journaled_and_applied_once() {
    let r = rig();
    let _pos = r.pos();
    let a = r.call(&pay("p-dup", BILL1, "389.50"));
    let b = r.call(&pay("p-dup", BILL1, "389.50"));
    assert_eq!(a["state"], "SUCCESS");
    assert_eq!(a, b, "the repeat answers the stored outcome");
    assert_eq!(r.rows("SELECT count(*) FROM commands"), 1);
    assert_eq!(r.payments(BILL1), 1);
}

#[test]
fn pay_bill_same_rid_concurrently_is_applied_once() {
    let r = rig();
    let _pos = r.pos();
    // Four at once: on the journal writers' slots of the blocking pool together.
    for _ in 0..4 {
        r.ctx.submit(pay("p-race", BILL1, "389.50").as_bytes());
    }
    let replies = r.ctx.replies_for("p-race", 4);
    assert_eq!(replies.len(), 4);
    for reply in replies {
        assert_eq!(reply.json()["state"], "SUCCESS");
    }
    assert_eq!(r.rows("SELECT count(*) FROM commands"), 1);
    assert_eq!(r.payments(BILL1), 1);
}

#[test]
fn pay_bill_second_rid_for_a_paid_bill_answers_the_first_and_is_kept_for_review() {
    let r = rig();
    let _pos = r.pos();
    let a = r.call(&pay("p-first", BILL1, "389.50"));
    let b = r.call(&pay("p-second", BILL1, "389.50"));
    assert_eq!(a["state"], "SUCCESS");
    assert_eq!(b["state"], "SUCCESS", "{b}");
    assert_eq!(b["rID"], "p-second");
    assert_eq!(b["guests"], a["guests"]);
    assert_eq!(r.payments(BILL1), 1, "never a second apply");
    assert_eq!(r.status_of("p-first"), "applied");
    assert_eq!(r.status_of("p-second"), "review");
    let dup_of: i64 = r
        .j()
        .query_row(
            "SELECT dup_of FROM commands WHERE rid = 'p-second'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    let first: i64 = r
        .j()
        .query_row("SELECT id FROM commands WHERE rid = 'p-first'", [], |x| {
            x.get(0)
        })
        .unwrap();
    assert_eq!(dup_of, first);
    // The repeat's own rID again still resolves to the first payment.
    assert_eq!(
        r.call(&pay("p-second", BILL1, "389.50"))["state"],
        "SUCCESS"
    );
    assert_eq!(r.rows("SELECT count(*) FROM commands"), 2);
}

#[test]
fn pay_bill_wrong_sum_is_journaled_for_review_and_not_applied() {
    let r = rig();
    let _pos = r.pos();
    let v = r.call(&pay("p-wrong", BILL1, "410.00"));
    assert_eq!(fail_sub(&v), "WRONG_REQUEST_SUM");
    assert_eq!(v["billId"], BILL1);
    assert!(
        v["stackTraceMessage"].as_str().unwrap().contains("389.50"),
        "{v}"
    );
    assert_eq!(r.status_of("p-wrong"), "review");
    // The simulated POS leaves review rows alone.
    let mut pos = SimPos::open(&r.journal, &r.mirror).unwrap();
    assert_eq!(pos.drain().unwrap(), 0);
    assert_eq!(r.bill_state(BILL1), "BILL");
    assert_eq!(r.payments(BILL1), 0);
    // A review row does not block the right payment.
    assert_eq!(r.call(&pay("p-right", BILL1, "389.50"))["state"], "SUCCESS");
    assert_eq!(r.payments(BILL1), 1);
}

#[test]
fn pay_bill_unknown_closed_or_malformed_is_journaled_for_review() {
    let r = rig();
    let v = r.call(&pay("p-unknown", "no-such-bill", "10.00"));
    assert_eq!(fail_sub(&v), "ORDER_NOT_FOUND");
    let v = r.call(&pay("p-closed", "b-closed-1", "60.00"));
    assert_eq!(fail_sub(&v), "ORDER_CLOSED");
    let v = r.call(r#"{"rID":"p-bad","operation":"payBill","billId":"x","sum":"lots"}"#);
    assert_eq!(fail_sub(&v), "BAD_REQUEST");
    for rid in ["p-unknown", "p-closed", "p-bad"] {
        assert_eq!(r.status_of(rid), "review", "{rid}");
    }
    let req: String = r
        .j()
        .query_row(
            "SELECT request FROM commands WHERE rid = 'p-bad'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert!(req.contains("\"lots\""), "the frame is kept as received");
}

#[test]
fn pay_bill_pos_never_acknowledges_fails_then_is_applied_once_later() {
    let r = rig_with(true, |c| c.journal.pos_ack_timeout_secs = 1);
    let started = r.ctx.now();
    let v = r.call(&pay("p-slow", BILL1, "389.50"));
    assert!(
        r.ctx.now() - started >= Duration::from_secs(1),
        "waited the ack timeout"
    );
    assert_eq!(fail_sub(&v), "POS_TIMEOUT");
    assert!(v["errorMessage"]
        .as_str()
        .unwrap()
        .contains("check the POS"));
    assert_eq!(r.status_of("p-slow"), "pending");
    assert_eq!(r.ctx.journal.pending_count().unwrap(), 1);
    // The POS comes back and applies it exactly once; the cloud's re-send gets SUCCESS.
    let mut pos = SimPos::open(&r.journal, &r.mirror).unwrap();
    assert_eq!(pos.drain().unwrap(), 1);
    assert_eq!(r.ctx.journal.pending_count().unwrap(), 0);
    assert_eq!(r.call(&pay("p-slow", BILL1, "389.50"))["state"], "SUCCESS");
    assert_eq!(pos.drain().unwrap(), 0);
    assert_eq!(r.payments(BILL1), 1);
}

#[test]
fn pay_bill_claimed_but_unacknowledged_row_is_finished_once_after_a_pos_crash() {
    let r = rig_with(true, |c| c.journal.pos_ack_timeout_secs = 1);
    assert_eq!(
        fail_sub(&r.call(&pay("p-crash", BILL1, "389.50"))),
        "POS_TIMEOUT"
    );
    // A POS claims and applies, then "crashes" before acknowledging.
    let mut pos = SimPos::open(&r.journal, &r.mirror).unwrap();
    let c = pos.claim().unwrap().unwrap();
    pos.apply(&c).unwrap();
    drop(pos);
    assert_eq!(r.status_of("p-crash"), "claimed");
    // Restarted, it finishes the claimed row without applying it again.
    let mut pos = SimPos::open(&r.journal, &r.mirror).unwrap();
    assert_eq!(pos.drain().unwrap(), 1);
    assert_eq!(
        pos.applications, 0,
        "the apply was replayed from pos_applied"
    );
    assert_eq!(r.status_of("p-crash"), "applied");
    assert_eq!(r.payments(BILL1), 1);
}

#[test]
fn pay_bill_rejected_by_the_pos_answers_its_substate() {
    let r = rig_with(true, |c| c.journal.pos_ack_timeout_secs = 5);
    // The payment is journaled and waits; the POS refuses it meanwhile.
    let waiting = r.ctx.start(&pay("p-rej", BILL1, "389.50"));
    let mut pos = SimPos::open(&r.journal, &r.mirror).unwrap();
    let c = pos.claim().unwrap().expect("the payment is pending");
    let o = Outcome::reject("ORDER_CLOSED", "closed by the cashier".into());
    assert!(pos.acknowledge(&c, &o).unwrap());
    let v = r.ctx.finish(waiting).json();
    assert_eq!(fail_sub(&v), "ORDER_CLOSED");
    assert!(v["errorMessage"].as_str().unwrap().contains("cashier"));
    assert_eq!(r.status_of("p-rej"), "rejected");
    assert_eq!(r.payments(BILL1), 0);
}

#[test]
fn pay_bill_ack_mode_none_answers_success_once_committed() {
    let r = rig_with(true, |c| c.journal.ack_mode = AckMode::None);
    let v = r.call(&pay("p-none", BILL1, "389.50"));
    assert_eq!(v["state"], "SUCCESS", "{v}");
    assert_eq!(v["orderNumber"], 1842);
    assert_eq!(v["guests"][0]["dishes"].as_array().unwrap().len(), 4);
    assert_eq!(r.status_of("p-none"), "pending", "the POS applies it later");
}

#[test]
fn journal_that_cannot_be_opened_fails_money_ops_and_reads_still_work() {
    let r = rig_with(true, |c| {
        // The journal's directory is a regular file: it can never be created.
        let blocker = c.state_dir.join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        c.journal.path = Some(blocker.join("journal.sqlite"));
    });
    let v = r.call(&pay("p-nojournal", BILL1, "389.50"));
    assert_eq!(fail_sub(&v), "JOURNAL_UNAVAILABLE");
    let v = r.call(&format!(
        r#"{{"rID":"g","operation":"getBill","billId":"{BILL1}"}}"#
    ));
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(r.bill_state(BILL1), "BILL");
}

// ---------------------------------------------------------------- splitOrder

fn split(rid: &str, bill: &str, control: &str, positions: &str) -> String {
    format!(
        r#"{{"operation":"splitOrder","rID":"{rid}","billId":"{bill}","controlSum":{control},"positions":[{positions}]}}"#
    )
}

#[test]
fn split_order_moves_positions_and_answers_both_bills() {
    let r = rig();
    let _pos = r.pos();
    let v = r.call(&split(
        "s-ok",
        BILL2,
        "1080.6",
        &format!(r#"{{"id":"{SET}","quantity":1}}"#),
    ));
    assert_eq!(v["state"], "SUCCESS", "{v}");
    assert_eq!(v["tableNumber"], "7");
    let orders = v["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0]["billId"], BILL2);
    assert_eq!(orders[0]["totalSum"].as_f64().unwrap(), 640.0);
    assert_eq!(orders[1]["rootBillId"], BILL2);
    assert_eq!(orders[1]["totalSum"].as_f64().unwrap(), 1080.6);
    assert_eq!(orders[1]["guests"][0]["dishes"][0]["positionId"], SET);
    assert_eq!(orders[1]["waiterId"], "u-004");
    assert_eq!(r.status_of("s-ok"), "applied");
    // Same rID again: the stored outcome, no second split.
    let again = r.call(&split(
        "s-ok",
        BILL2,
        "1080.6",
        &format!(r#"{{"id":"{SET}","quantity":1}}"#),
    ));
    assert_eq!(again["orders"][1]["billId"], orders[1]["billId"]);
    let splits: i64 = r
        .m()
        .query_row(
            "SELECT count(*) FROM orders WHERE root_bill_id = ?1",
            params![BILL2],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(splits, 1);
}

#[test]
fn split_order_partial_quantity_is_proportional() {
    let r = rig();
    let _pos = r.pos();
    // Half of one of two Деруни (240.00 for 2): 240.00 × 0.5 / 2 = 60.00.
    let v = r.call(&split(
        "s-part",
        BILL2,
        "60",
        &format!(r#"{{"id":"{DERUNY}","quantity":0.5}}"#),
    ));
    assert_eq!(v["state"], "SUCCESS", "{v}");
    let parent = &v["orders"][0];
    let child = &v["orders"][1];
    assert_eq!(child["totalSum"].as_f64().unwrap(), 60.0);
    assert_eq!(
        child["guests"][0]["dishes"][0]["count"].as_f64().unwrap(),
        0.5
    );
    assert_eq!(parent["totalSum"].as_f64().unwrap(), 1660.6);
    let left = parent["guests"][0]["dishes"][0].clone();
    assert_eq!(
        (
            left["count"].as_f64().unwrap(),
            left["sum"].as_f64().unwrap()
        ),
        (1.5, 180.0)
    );
}

#[test]
fn split_order_refusals_are_not_journaled() {
    // Strict controlSum ([compat]); the lenient default is in tests/protocol_tolerance.rs.
    let r = rig_with(true, |c| c.compat.strict_control_sum = true);
    let one = |id: &str, q: &str| format!(r#"{{"id":"{id}","quantity":{q}}}"#);
    let cases = [
        (
            split("s1", BILL2, "1000", &one(SET, "1")),
            "WRONG_CONTROL_SUM",
        ),
        (
            split("s2", BILL2, "1", &one("nope", "1")),
            "WRONG_POSITIONS",
        ),
        (
            split("s3", BILL2, "2160", &one(SET, "2")),
            "WRONG_POSITIONS",
        ),
        (split("s4", BILL2, "0", &one(SET, "0")), "WRONG_POSITIONS"),
        (
            split(
                "s5",
                BILL2,
                "2161.2",
                &format!("{},{}", one(SET, "1"), one(SET, "1")),
            ),
            "WRONG_POSITIONS",
        ),
        (
            split("s6", "b-3001", "5", &one("p-2", "1")),
            "SPLIT_NOT_AVAILABLE",
        ),
        (
            split("s7", "no-bill", "5", &one("p-2", "1")),
            "ORDER_NOT_FOUND",
        ),
        (split("s8", BILL2, "1", ""), "WRONG_POSITIONS"),
        (
            r#"{"rID":"s9","operation":"splitOrder","billId":"x"}"#.to_string(),
            "BAD_REQUEST",
        ),
    ];
    for (frame, want) in &cases {
        let v = r.call(frame);
        assert_eq!(fail_sub(&v), *want, "{frame}");
    }
    assert_eq!(r.rows("SELECT count(*) FROM commands"), 0);
}

#[test]
fn split_order_pos_never_acknowledges() {
    let r = rig_with(true, |c| c.journal.pos_ack_timeout_secs = 1);
    let v = r.call(&split(
        "s-slow",
        BILL2,
        "1080.60",
        &format!(r#"{{"id":"{SET}","quantity":1}}"#),
    ));
    assert_eq!(fail_sub(&v), "POS_TIMEOUT");
    assert_eq!(r.status_of("s-slow"), "pending");
}

// ---------------------------------------------------------------- createOrderOnTable

fn order(rid: &str, ext: &str, table: &str, items: &str) -> String {
    format!(
        r#"{{"rID":"{rid}","operation":"createOrderOnTable","externalId":"{ext}","originName":"QR menu","tableId":"{table}","items":[{items}],"fiscalData":[{{"key":"ЕКВАЙЕР","value":"Universal Bank"}}]}}"#
    )
}

const ITEMS: &str = r#"{"id":"m-101","quantity":1,"modifier":[{"id":"mod-12","groupId":"g-1","quantity":1}]},{"id":"m-620","quantity":1}"#;

#[test]
fn create_order_on_table_creates_pays_and_is_idempotent_on_external_id() {
    let r = rig();
    let _pos = r.pos();
    let v = r.call(&order("o-1", "ext-1", "table-5", ITEMS));
    let res = &v["result"];
    assert_eq!(res["success"], true, "{v}");
    assert_eq!(res["stage"], "PAYED");
    assert_eq!(res["rootOrder"]["orderStatus"], "PAYED");
    assert_eq!(res["rootOrder"]["tableNumber"], 5);
    // 145.00 + 15.00 (modifier, from `modifiers`) + 90.00
    assert_eq!(res["rootOrder"]["resultSum"].as_f64().unwrap(), 250.0);
    let order_id = res["rootOrder"]["orderId"].as_str().unwrap().to_string();
    assert_eq!(res["ordersSummary"][0]["orderId"], order_id.as_str());
    assert!(res["ordersSummary"][0]["closed"].as_str().is_some());
    let dishes = res["guests"][0]["dishes"].as_array().unwrap();
    assert_eq!(dishes.len(), 3);
    assert_eq!(dishes[1]["type"], "modifier");
    assert_eq!(dishes[1]["linkedTo"], dishes[0]["positionId"]);
    let sum: i64 = r
        .j()
        .query_row("SELECT sum_kop FROM commands WHERE rid = 'o-1'", [], |x| {
            x.get(0)
        })
        .unwrap();
    assert_eq!(sum, 25000);
    // Same externalId under another rID, and the same rID: the same order, not a new one.
    let again = r.call(&order("o-2", "ext-1", "table-5", ITEMS));
    assert_eq!(again["result"]["rootOrder"]["orderId"], order_id.as_str());
    assert_eq!(again["rID"], "o-2");
    let same = r.call(&order("o-1", "ext-1", "table-5", ITEMS));
    assert_eq!(same["result"]["rootOrder"]["orderId"], order_id.as_str());
    assert_eq!(r.rows("SELECT count(*) FROM commands"), 1);
    let n: i64 = r
        .m()
        .query_row(
            "SELECT count(*) FROM orders WHERE bill_id = ?1",
            params![order_id],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn create_order_on_table_checks_table_menu_and_stop_list() {
    let r = rig();
    let cases = [
        (order("c1", "e1", "table-99", ITEMS), "TABLE_NOT_FOUND"),
        (
            order("c2", "e2", "table-5", r#"{"id":"m-410","quantity":1}"#),
            "PRODUCT_UNAVAILABLE",
        ),
        (
            order("c3", "e3", "table-5", r#"{"id":"m-620","quantity":4}"#),
            "PRODUCT_UNAVAILABLE",
        ),
        (
            order("c4", "e4", "table-5", r#"{"id":"m-999","quantity":1}"#),
            "PRODUCT_UNAVAILABLE",
        ),
        (
            order("c5", "e5", "table-5", r#"{"id":"m-nope","quantity":1}"#),
            "PRODUCT_UNAVAILABLE",
        ),
        (order("c6", "e6", "table-5", ""), "BAD_REQUEST"),
        (
            order(
                "c6m",
                "e6m",
                "table-5",
                r#"{"id":"m-101","quantity":1,"modifier":[{"id":"mod-14","groupId":"gm-sauce","quantity":1}]}"#,
            ),
            "PRODUCT_UNAVAILABLE",
        ),
        (
            r#"{"rID":"c7","operation":"createOrderOnTable"}"#.to_string(),
            "BAD_REQUEST",
        ),
    ];
    for (frame, want) in &cases {
        let v = r.call(frame);
        assert_eq!(fail_sub(&v), *want, "{frame}");
        assert_eq!(v["result"]["success"], false);
    }
    assert_eq!(r.rows("SELECT count(*) FROM commands"), 0);
    // Within the stop-list limit (3 left) it goes through.
    let _pos = r.pos();
    let v = r.call(&order(
        "c8",
        "e8",
        "table-5",
        r#"{"id":"m-620","quantity":3}"#,
    ));
    assert_eq!(v["result"]["success"], true, "{v}");
}

#[test]
fn create_order_on_table_without_menu_tables_fails_clearly() {
    let r = rig_with(false, |_| {});
    let v = r.call(&order("c-nomenu", "e", "table-5", ITEMS));
    assert_eq!(fail_sub(&v), "POS_UNAVAILABLE");
    assert!(
        v["errorMessage"].as_str().unwrap().contains("menu_items"),
        "{v}"
    );
}

#[test]
fn create_order_on_table_pos_never_acknowledges() {
    let r = rig_with(true, |c| c.journal.pos_ack_timeout_secs = 1);
    let v = r.call(&order("o-slow", "ext-slow", "table-5", ITEMS));
    assert_eq!(fail_sub(&v), "POS_TIMEOUT");
    assert_eq!(v["result"]["success"], false);
    assert_eq!(r.status_of("o-slow"), "pending");
}

// ---------------------------------------------------------------- showMessage, setSettings

#[test]
fn show_message_is_journaled_once_for_the_pos() {
    let r = rig();
    let frame = format!(
        r#"{{"rID":"m-1","operation":"showMessage","warning":true,"billId":"{BILL1}","message":"УВАГА! Повернення оплати"}}"#
    );
    assert!(r.silent(&frame));
    assert!(r.silent(&frame));
    let (n, status, bill): (i64, String, String) = r
        .j()
        .query_row(
            "SELECT count(*), status, bill_id FROM commands WHERE operation = 'showMessage'",
            [],
            |x| Ok((x.get(0)?, x.get(1)?, x.get(2)?)),
        )
        .unwrap();
    assert_eq!((n, status.as_str(), bill.as_str()), (1, "pending", BILL1));
    let mut pos = SimPos::open(&r.journal, &r.mirror).unwrap();
    assert_eq!(pos.drain().unwrap(), 1);
    let shown: String = r
        .m()
        .query_row("SELECT request FROM pos_messages", [], |x| x.get(0))
        .unwrap();
    assert!(shown.contains("Повернення"));
    assert_eq!(r.status_of("m-1"), "applied");
    // A null billId is fine.
    assert!(r.silent(
        r#"{"rID":"m-2","operation":"showMessage","warning":false,"billId":null,"message":"hi"}"#
    ));
}

#[test]
fn set_settings_latest_wins() {
    let r = rig();
    let a = r#"{"rID":"set-1","operation":"setSettings","printPrecheckQr":true,"precheckQrUrl":"https://x/1","settings":{"load_modifiers":"1"}}"#;
    let b = r#"{"rID":"set-2","operation":"setSettings","printPrecheckQr":false,"precheckQrUrl":"https://x/2"}"#;
    assert!(r.silent(a));
    assert_eq!(
        r.ctx.journal.settings().unwrap().unwrap(),
        ("set-1".into(), a.into())
    );
    assert!(r.silent(b));
    assert_eq!(
        r.ctx.journal.settings().unwrap().unwrap(),
        ("set-2".into(), b.into())
    );
    assert_eq!(
        r.j()
            .query_row("SELECT count(*) FROM settings", [], |x| x.get::<_, i64>(0))
            .unwrap(),
        1
    );
}

// ---------------------------------------------------------------- report

#[test]
fn report_lists_commands_by_status() {
    let r = rig_with(true, |c| c.journal.pos_ack_timeout_secs = 1);
    r.call(&pay("r-wrong", BILL1, "1.00"));
    r.call(&pay("r-slow", BILL1, "389.50"));
    let mut out = Vec::new();
    let open = expirenza_agent::journal::report::print(&r.ctx.journal, 0, None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(open, 1);
    assert!(
        text.contains("r-wrong") && text.contains("WRONG_REQUEST_SUM"),
        "{text}"
    );
    assert!(
        text.contains("total 2: pending 1, claimed 0, applied 0, rejected 0, review 1"),
        "{text}"
    );
    let mut out = Vec::new();
    expirenza_agent::journal::report::print(&r.ctx.journal, 0, Some(Status::Review), &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("r-wrong") && !text.contains("r-slow"),
        "{text}"
    );
}

// ---------------------------------------------------------------- status board

#[test]
fn status_board_shows_the_journal_backlog() {
    let r = rig_with(true, |c| c.journal.ack_mode = AckMode::None);
    assert_eq!(r.call(&pay("b-1", BILL1, "389.50"))["state"], "SUCCESS");
    let board = Arc::new(expirenza_agent::status::StatusBoard::new("resto-1"));
    let (trigger, shutdown) = expirenza_agent::shutdown::channel();
    let every = Duration::from_millis(100);
    r.ctx.block_on(async {
        let task = tokio::spawn(expirenza_agent::status::backlog::feed(
            board.clone(),
            r.ctx.ctx.clone(),
            every,
            shutdown.receiver(),
        ));
        // The feeder reads the backlog every 100 ms of the paused clock: one round is enough,
        // a hundred are the bound.
        for _ in 0..100 {
            if board.snapshot().journal_pending == 1 {
                break;
            }
            tokio::time::sleep(every).await;
        }
        assert_eq!(
            board.snapshot().journal_pending,
            1,
            "the backlog on the board"
        );
        trigger.fire();
        task.await.unwrap();
    });
}

// ---------------------------------------------------------------- end to end

/// Through the fake cloud: the frame arrives over the WebSocket, the simulated POS applies the
/// journaled command, and the signed callback reaches `/callback/splitOrder` and `/callback/payBill`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_split_then_pay_the_new_bill() {
    use testkit::harness::Harness;
    let h = Harness::start_with(true, |c| c.journal.poll_interval_ms = 5).await;
    let _pos = sim_pos::spawn(&h.cfg.journal_path(), &h.mirror, Duration::from_millis(5)).unwrap();
    let cb = h
        .call(
            "splitOrder",
            "e2e-split",
            &format!(r#""billId":"{BILL2}","controlSum":1080.60,"positions":[{{"id":"{SET}","quantity":1}}]"#),
        )
        .await
        .expect("split callback");
    assert_eq!(cb.path, "/callback/splitOrder");
    assert!(cb.signature_ok && cb.resto_id_ok);
    let v: Value = serde_json::from_slice(&cb.body).unwrap();
    assert_eq!(v["state"], "SUCCESS", "{v}");
    let child = v["orders"][1]["billId"].as_str().unwrap().to_string();
    let cb = h
        .call(
            "payBill",
            "e2e-pay",
            &format!(r#""billId":"{child}","sum":1080.6,"tips":0"#),
        )
        .await
        .expect("pay callback");
    assert_eq!(cb.path, "/callback/payBill");
    assert!(cb.signature_ok);
    let v: Value = serde_json::from_slice(&cb.body).unwrap();
    assert_eq!(v["state"], "SUCCESS", "{v}");
    assert_eq!(v["billId"], child.as_str());
    assert_eq!(v["guests"][0]["dishes"][0]["positionId"], SET);
    h.stop().await;
}

#[test]
fn pay_bill_with_an_unreadable_mirror_is_journaled_for_the_pos_to_check() {
    let r = rig_with(true, |c| c.journal.pos_ack_timeout_secs = 1);
    let away = r.dir.join("mirror.away");
    std::fs::rename(&r.mirror, &away).unwrap();
    let v = r.call(&pay("p-blind", BILL1, "389.50"));
    assert_eq!(fail_sub(&v), "POS_TIMEOUT");
    assert_eq!(r.status_of("p-blind"), "pending");
    // A blind payment with the wrong sum is refused by the POS's own check.
    r.call(&pay("p-blind-wrong", "b-3002", "1.00"));
    std::fs::rename(&away, &r.mirror).unwrap();
    let mut pos = SimPos::open(&r.journal, &r.mirror).unwrap();
    assert_eq!(pos.drain().unwrap(), 2);
    assert_eq!(r.status_of("p-blind"), "applied");
    assert_eq!(r.status_of("p-blind-wrong"), "rejected");
    assert_eq!(r.call(&pay("p-blind", BILL1, "389.50"))["state"], "SUCCESS");
    assert_eq!(
        fail_sub(&r.call(&pay("p-blind-wrong", "b-3002", "1.00"))),
        "WRONG_REQUEST_SUM"
    );
    assert_eq!(r.payments(BILL1), 1);
    assert_eq!(r.payments("b-3002"), 0);
}
