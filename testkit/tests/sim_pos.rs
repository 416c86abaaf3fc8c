//! The simulated POS refuses a command without leaving half of it in the mirror.
//!
//! Commands are written straight into the journal (the agent would refuse these requests
//! before journaling them; a real POS must still cope with a row it cannot apply, e.g. when
//! the bill changed at the till in between), then one `SimPos::step` claims, applies and
//! acknowledges each. Every refusal must leave the mirror's bills, lines and stop list exactly
//! as they were, and be recorded (journal `rejected`, `pos_applied` row) like any outcome.

use std::path::{Path, PathBuf};

use expirenza_agent::journal::{now_ms, store};
use expirenza_agent::mirror;
use rusqlite::{params, Connection};
use testkit::harness::TempDir;
use testkit::sim_pos::SimPos;

const BILL2: &str = "4afc3774-cc50-4e07-ad81-dd65f166244a"; // table 7, splittable
const SET: &str = "8e2ad560-938b-4972-ba60-8098aac99f8b"; // on BILL2: 1 × 1080.60
const DERUNY: &str = "c53e1948-7ffe-4dea-8e25-9e6773fa8768"; // on BILL2: 2 × (240.00 total)

struct Rig {
    _dir: TempDir,
    mirror: PathBuf,
    journal: PathBuf,
}

fn rig() -> Rig {
    let dir = TempDir::new("sim-pos");
    let mirror_path = dir.path().join("mirror.sqlite");
    let mut conn = mirror::create_schema(&mirror_path).unwrap();
    mirror::demo::fill(&mut conn).unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO stop_list (item_id, remaining_milli) VALUES ('m-620', 3000)",
        [],
    )
    .unwrap();
    drop(conn);
    let journal = dir.path().join("journal.sqlite");
    drop(store::open(&journal, std::time::Duration::from_secs(5)).unwrap());
    Rig {
        mirror: mirror_path,
        journal,
        _dir: dir,
    }
}

impl Rig {
    /// Journal a command as the agent would (status `pending`).
    fn journal(&self, rid: &str, operation: &str, bill: Option<&str>, request: &str) {
        Connection::open(&self.journal)
            .unwrap()
            .execute(
                "INSERT INTO commands (rid, operation, bill_id, request, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![rid, operation, bill, request, now_ms()],
            )
            .unwrap();
    }

    fn journal_status(&self, rid: &str) -> (String, Option<String>) {
        Connection::open(&self.journal)
            .unwrap()
            .query_row(
                "SELECT status, substate FROM commands WHERE rid = ?1",
                params![rid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    fn pos_applied(&self, rid: &str) -> String {
        Connection::open(&self.mirror)
            .unwrap()
            .query_row(
                "SELECT status FROM pos_applied WHERE rid = ?1",
                params![rid],
                |r| r.get(0),
            )
            .unwrap()
    }
}

/// Every row of the tables a command may change, as text, in a stable order.
fn snapshot(mirror: &Path) -> Vec<String> {
    let c = Connection::open(mirror).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT 'order', bill_id, order_number, table_id, state, raw_sum_kop, total_sum_kop, \
         coalesce(root_bill_id, '') FROM orders ORDER BY bill_id",
        "SELECT 'line', bill_id, position_id, count_milli, sum_kop, coalesce(linked_to, ''), '', '' \
         FROM order_positions ORDER BY bill_id, position_id",
        "SELECT 'stop', item_id, remaining_milli, '', '', '', '', '' FROM stop_list ORDER BY item_id",
    ] {
        let mut st = c.prepare(sql).unwrap();
        let rows = st
            .query_map([], |r| {
                let mut cols = Vec::new();
                for i in 0..8 {
                    let v: rusqlite::types::Value = r.get(i)?;
                    cols.push(format!("{v:?}"));
                }
                Ok(cols.join("|"))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

fn split(rid: &str, positions: &str) -> String {
    format!(
        r#"{{"operation":"splitOrder","rID":"{rid}","billId":"{BILL2}","controlSum":1080.6,"positions":[{positions}]}}"#
    )
}

fn order(rid: &str, ext: &str, items: &str) -> String {
    format!(
        r#"{{"rID":"{rid}","operation":"createOrderOnTable","externalId":"{ext}","originName":"QR menu","tableId":"table-5","items":[{items}]}}"#
    )
}

/// Apply the one pending command and return its outcome's substate (`None` = applied).
fn step(r: &Rig) -> Option<String> {
    let mut pos = SimPos::open(&r.journal, &r.mirror).unwrap();
    let (_, outcome) = pos.step().unwrap().expect("a pending command");
    assert!(pos.step().unwrap().is_none(), "one command at a time");
    outcome.substate
}

#[test]
fn rejected_split_leaves_the_mirror_unchanged() {
    let r = rig();
    let before = snapshot(&r.mirror);
    // The first position is valid (the old code moved it to a new child bill), the second
    // asks for more than the bill holds; then one that is not on the bill at all.
    let cases = [
        (
            "s-too-many",
            format!(r#"{{"id":"{SET}","quantity":1}},{{"id":"{DERUNY}","quantity":5}}"#),
        ),
        (
            "s-missing",
            format!(r#"{{"id":"{DERUNY}","quantity":0.5}},{{"id":"no-such-line","quantity":1}}"#),
        ),
    ];
    for (rid, positions) in &cases {
        r.journal(rid, "splitOrder", Some(BILL2), &split(rid, positions));
        assert_eq!(step(&r).as_deref(), Some("WRONG_POSITIONS"), "{rid}");
        assert_eq!(snapshot(&r.mirror), before, "{rid}: the mirror changed");
        let (status, sub) = r.journal_status(rid);
        assert_eq!(
            (status.as_str(), sub.as_deref()),
            ("rejected", Some("WRONG_POSITIONS"))
        );
        assert_eq!(r.pos_applied(rid), "rejected");
    }
    // The same split without the bad position goes through: the rollback did not hide a
    // mirror the POS cannot write.
    r.journal(
        "s-ok",
        "splitOrder",
        Some(BILL2),
        &split("s-ok", &format!(r#"{{"id":"{SET}","quantity":1}}"#)),
    );
    assert_eq!(step(&r), None);
    assert_ne!(snapshot(&r.mirror), before);
    let children: i64 = Connection::open(&r.mirror)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM orders WHERE root_bill_id = ?1",
            params![BILL2],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(children, 1);
}

#[test]
fn rejected_order_inserts_nothing_and_keeps_the_stop_list() {
    let r = rig();
    let before = snapshot(&r.mirror);
    // m-620 is on the menu with 3 left on the stop list (the old code inserted the order,
    // wrote its first line and took 1 off the stop list); m-nope is not on the menu.
    let items = r#"{"id":"m-620","quantity":1},{"id":"m-nope","quantity":1}"#;
    r.journal(
        "o-bad",
        "createOrderOnTable",
        None,
        &order("o-bad", "ext-bad", items),
    );
    assert_eq!(step(&r).as_deref(), Some("PRODUCT_UNAVAILABLE"));
    assert_eq!(snapshot(&r.mirror), before, "the mirror changed");
    let (status, sub) = r.journal_status("o-bad");
    assert_eq!(
        (status.as_str(), sub.as_deref()),
        ("rejected", Some("PRODUCT_UNAVAILABLE"))
    );
    assert_eq!(r.pos_applied("o-bad"), "rejected");
    // A valid order applies and takes its quantity off the stop list.
    r.journal(
        "o-ok",
        "createOrderOnTable",
        None,
        &order("o-ok", "ext-ok", r#"{"id":"m-620","quantity":1}"#),
    );
    assert_eq!(step(&r), None);
    let left: i64 = Connection::open(&r.mirror)
        .unwrap()
        .query_row(
            "SELECT remaining_milli FROM stop_list WHERE item_id = 'm-620'",
            [],
            |x| x.get(0),
        )
        .unwrap();
    assert_eq!(left, 2000);
}

#[test]
fn rejected_payment_changes_nothing() {
    let r = rig();
    let before = snapshot(&r.mirror);
    let pay = format!(
        r#"{{"rID":"p-sum","operation":"payBill","billId":"{BILL2}","sum":1.00,"tips":0,"prepay":false,"fiscalData":[]}}"#
    );
    r.journal("p-sum", "payBill", Some(BILL2), &pay);
    assert_eq!(step(&r).as_deref(), Some("WRONG_REQUEST_SUM"));
    assert_eq!(snapshot(&r.mirror), before);
    let payments: i64 = Connection::open(&r.mirror)
        .unwrap()
        .query_row("SELECT count(*) FROM pos_payments", [], |x| x.get(0))
        .unwrap();
    assert_eq!(payments, 0);
}
