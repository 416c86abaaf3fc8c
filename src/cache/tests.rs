//! Unit tests of change detection and the body, on a real demo mirror file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::Connection;
use serde_json::Value;

use super::tracker::Acked;
use super::*;

static N: AtomicUsize = AtomicUsize::new(0);

struct TempMirror {
    path: PathBuf,
    conn: crate::mirror::raw::RawConn,
}

impl Drop for TempMirror {
    fn drop(&mut self) {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.path.display()));
        }
    }
}

fn demo() -> TempMirror {
    let path = std::env::temp_dir().join(format!(
        "cache-unit-{}-{}.sqlite",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut conn = crate::mirror::create_schema(&path).unwrap();
    crate::mirror::demo::fill(&mut conn).unwrap();
    let conn = crate::mirror::raw::RawConn::new(conn);
    TempMirror { path, conn }
}

fn bounds() -> Bounds {
    Bounds {
        max_tracked: 2_000,
        max_rows: 50_000,
        max_body: 1 << 20,
    }
}

fn open_ids(c: &Connection) -> Vec<String> {
    let mut st = c
        .prepare("SELECT bill_id FROM orders WHERE state IN ('NEW','BILL') ORDER BY created, order_number")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn json(p: &Prepared) -> Value {
    serde_json::from_slice(&p.body).unwrap()
}

/// Bill ids of the `actualOrders` entries sent in full (they carry `guests`).
fn full_ids(v: &Value) -> Vec<String> {
    v["actualOrders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("guests").is_some())
        .map(|o| o["billId"].as_str().unwrap().to_string())
        .collect()
}

fn all_ids(v: &Value) -> Vec<String> {
    v["actualOrders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["billId"].as_str().unwrap().to_string())
        .collect()
}

fn push(m: &TempMirror, acked: &mut Acked, b: Bounds, commit: bool) -> (Prepared, Value) {
    let p = prepare(
        &Conn::new(&m.conn),
        acked,
        b,
        "2024-05-14T16:21:10.000000000Z",
    )
    .unwrap();
    let v = json(&p);
    if commit {
        acked.replace(p.commit.clone());
    }
    (p, v)
}

#[test]
fn first_push_is_full_then_only_changes() {
    let m = demo();
    let ids = open_ids(&m.conn);
    assert!(ids.len() >= 3, "demo has several open bills");
    let mut acked = Acked::default();

    let (p, v) = push(&m, &mut acked, bounds(), true);
    assert_eq!(v["webhookType"], "ORDERS_CACHE");
    assert_eq!(v["eventTime"], "2024-05-14T16:21:10.000000000Z");
    assert_eq!(all_ids(&v), ids);
    assert_eq!(full_ids(&v), ids);
    assert_eq!(p.stats.full, ids.len());
    assert_eq!(v["closedOrders"].as_array().unwrap().len(), 0);
    // The full entry is the getBill shape, with the short fields.
    let first = &v["actualOrders"][0];
    for k in [
        "billId",
        "orderNumber",
        "state",
        "totalSum",
        "guests",
        "discounts",
    ] {
        assert!(first.get(k).is_some(), "{k} in {first}");
    }

    // Nothing changed: short entries only, still every open order.
    let (p, v) = push(&m, &mut acked, bounds(), true);
    assert_eq!(p.stats.full, 0);
    assert_eq!(all_ids(&v), ids);
    assert!(full_ids(&v).is_empty());
    let short = &v["actualOrders"][0];
    for k in ["billId", "orderNumber", "state", "totalSum"] {
        assert!(short.get(k).is_some(), "{k} in {short}");
    }

    // One position of one bill changes: that bill alone in full.
    m.conn
        .execute(
            "UPDATE order_positions SET count_milli = count_milli + 1000 \
             WHERE rowid = (SELECT min(rowid) FROM order_positions WHERE bill_id = ?1)",
            [&ids[1]],
        )
        .unwrap();
    let (p, v) = push(&m, &mut acked, bounds(), true);
    assert_eq!(full_ids(&v), vec![ids[1].clone()]);
    assert_eq!(p.stats.full, 1);
}

#[test]
fn fingerprint_sees_moves_renames_and_discounts() {
    let m = demo();
    let ids = open_ids(&m.conn);
    let bill = &ids[0];
    let mut acked = Acked::default();
    push(&m, &mut acked, bounds(), true);
    let edits = [
        // Same multiset of values, different line order.
        "UPDATE order_positions SET line_no = 100 - line_no WHERE bill_id = ?1",
        // A rename to the same characters in another order (same length, same bytes).
        "UPDATE order_positions SET name = substr(name, 2) || substr(name, 1, 1) \
         WHERE rowid = (SELECT min(rowid) FROM order_positions WHERE bill_id = ?1)",
        "INSERT INTO order_discounts (bill_id, discount_id, name, sum_kop) VALUES (?1, 'd-new', 'Знижка', 100)",
        "UPDATE orders SET waiter_name = 'Інший' WHERE bill_id = ?1",
    ];
    for sql in edits {
        m.conn.execute(sql, [bill]).unwrap();
        let (_, v) = push(&m, &mut acked, bounds(), true);
        assert_eq!(full_ids(&v), vec![bill.clone()], "after {sql}");
    }
}

#[test]
fn closed_orders_are_reported_once_acknowledged() {
    let m = demo();
    let ids = open_ids(&m.conn);
    let mut acked = Acked::default();
    push(&m, &mut acked, bounds(), true);
    m.conn
        .execute(
            "UPDATE orders SET state = 'PAYED' WHERE bill_id = ?1",
            [&ids[0]],
        )
        .unwrap();
    for t in ["order_positions", "order_discounts"] {
        m.conn
            .execute(&format!("DELETE FROM {t} WHERE bill_id = ?1"), [&ids[1]])
            .unwrap();
    }
    m.conn
        .execute("DELETE FROM orders WHERE bill_id = ?1", [&ids[1]])
        .unwrap();
    // The first attempt "fails" (not committed): the next one still reports both.
    let (_, v1) = push(&m, &mut acked, bounds(), false);
    let (p, v) = push(&m, &mut acked, bounds(), true);
    assert_eq!(v1["closedOrders"], v["closedOrders"]);
    let mut closed: Vec<(String, String)> = v["closedOrders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["billId"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    closed.sort();
    let mut want = vec![
        (ids[0].clone(), "PAYED".to_string()),
        (ids[1].clone(), "CLOSED".to_string()),
    ];
    want.sort();
    assert_eq!(closed, want);
    assert_eq!(p.stats.closed, 2);
    assert!(!all_ids(&v).contains(&ids[0]));
    // Acknowledged: not reported again.
    let (_, v) = push(&m, &mut acked, bounds(), true);
    assert_eq!(v["closedOrders"].as_array().unwrap().len(), 0);
}

#[test]
fn uncommitted_pushes_accumulate_changes() {
    let m = demo();
    let ids = open_ids(&m.conn);
    let mut acked = Acked::default();
    push(&m, &mut acked, bounds(), true);
    m.conn
        .execute(
            "UPDATE order_positions SET sum_kop = sum_kop + 1 WHERE bill_id = ?1",
            [&ids[0]],
        )
        .unwrap();
    let (_, v) = push(&m, &mut acked, bounds(), false);
    assert_eq!(full_ids(&v), vec![ids[0].clone()]);
    m.conn
        .execute(
            "UPDATE orders SET total_sum_kop = total_sum_kop + 1 WHERE bill_id = ?1",
            [&ids[2]],
        )
        .unwrap();
    let (_, v) = push(&m, &mut acked, bounds(), true);
    assert_eq!(full_ids(&v), vec![ids[0].clone(), ids[2].clone()]);
}

#[test]
fn tracking_is_capped() {
    let m = demo();
    let ids = open_ids(&m.conn);
    let b = Bounds {
        max_tracked: 2,
        ..bounds()
    };
    let mut acked = Acked::default();
    let (p, v) = push(&m, &mut acked, b, true);
    assert_eq!(all_ids(&v), ids, "every open order is still listed");
    assert_eq!(full_ids(&v), ids[..2].to_vec());
    assert_eq!(p.stats.untracked, ids.len() - 2);
    assert_eq!(acked.len(), 2);
    // Changes to an untracked order never bring it in full, and the map never grows.
    m.conn
        .execute(
            "UPDATE orders SET total_sum_kop = 1 WHERE bill_id = ?1",
            [ids.last().unwrap()],
        )
        .unwrap();
    let (_, v) = push(&m, &mut acked, b, true);
    assert!(full_ids(&v).is_empty());
    assert_eq!(acked.len(), 2);
}

#[test]
fn full_details_that_do_not_fit_are_deferred() {
    let m = demo();
    let ids = open_ids(&m.conn);
    let mut acked = Acked::default();
    // Measure the short-only body and the first full order, and allow just that.
    let (p_all, _) = push(&m, &mut Acked::default(), bounds(), false);
    let mut everything_acked = Acked::default();
    everything_acked.replace(p_all.commit.clone());
    let (p_short, _) = push(&m, &mut everything_acked, bounds(), false);
    let conn = Conn::new(&m.conn);
    let max_full = ids
        .iter()
        .map(|id| {
            let o = crate::mirror::orders::order_by_id(&conn, id, 1000)
                .unwrap()
                .unwrap();
            let mut j = JsonBuf::new(1 << 20);
            shape::write_full(&mut j, &o);
            j.len()
        })
        .max()
        .unwrap();
    // Room for the largest order, not for all of them.
    let cap = p_short.body.len() + max_full;
    assert!(p_all.body.len() > cap, "the test needs a cap that defers");
    let b = Bounds {
        max_body: cap,
        ..bounds()
    };
    let mut sent = Vec::new();
    let mut deferred_ticks = 0;
    for _ in 0..ids.len() + 1 {
        let (p, v) = push(&m, &mut acked, b, true);
        assert!(p.body.len() <= cap, "{} > {cap}", p.body.len());
        assert_eq!(all_ids(&v), ids);
        sent.extend(full_ids(&v));
        if p.stats.deferred == 0 {
            break;
        }
        deferred_ticks += 1;
        assert!(p.stats.full < ids.len());
    }
    sent.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(
        sent, want,
        "every order is sent in full exactly once, over several ticks"
    );
    assert!(deferred_ticks > 0);
}

#[test]
fn too_small_a_body_cap_is_an_error_not_a_partial_list() {
    let m = demo();
    let b = Bounds {
        max_body: 64,
        ..bounds()
    };
    let e = prepare(&Conn::new(&m.conn), &Acked::default(), b, "t").unwrap_err();
    assert!(matches!(e, CacheError::TooLarge(_)), "{e}");
}

#[test]
fn a_wrong_storage_class_in_the_orders_names_the_column_and_fix() {
    let m = demo();
    m.conn
        .execute_batch(
            "ALTER TABLE orders RENAME TO pos_orders;
             CREATE VIEW orders AS SELECT bill_id, order_number, table_id, state,
               total_sum_kop / 100.0 AS total_sum_kop, created, waiter_id, waiter_name,
               raw_sum_kop, bonus_sum_kop, is_banquet, is_delivery, split_available,
               root_bill_id, payment_type, pricing_time FROM pos_orders;",
        )
        .unwrap();
    let e = tracker::scan(&m.conn, 10, 100).unwrap_err().to_string();
    assert!(
        e.contains("orders.total_sum_kop holds REAL")
            && e.contains("CAST(ROUND(total_sum_kop * 100) AS INTEGER)"),
        "{e}"
    );
}
