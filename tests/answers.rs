//! Answers kept per mirror version (`src/answers.rs`, `[limits] answer_cache_kib`): a kept
//! answer is the bytes a fresh one would be, but for its rID, and a change to the mirror by
//! anyone (an update, an insert, a state change, a replaced file) is in the very next answer.
//! getBill and the list operations (tablesInfo, hallplansInfo, usersInfo, categoriesInfo,
//! stopList) keep their answers.

mod mirror_fixture;

use mirror_fixture::*;
use serde_json::Value;
use testkit::stages::Stages;

const BILL_1: &str = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11";

fn frame(rid: &str, fields: &str) -> String {
    format!(r#"{{"rID":"{rid}","operation":"getBill",{fields}}}"#)
}

/// The body for `fields`, with its rID.
fn body(ctx: &Stages, rid: &str, fields: &str) -> String {
    let b = call_raw(ctx, &frame(rid, fields));
    String::from_utf8(b).expect("UTF-8")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn ctx_with_cache_kib(m: &TempMirror, kib: u32) -> Stages {
    let mut cfg = m.config();
    cfg.limits.answer_cache_kib = kib;
    ctx_for(cfg)
}

#[test]
fn a_kept_answer_is_the_fresh_answer_but_for_its_rid() {
    let m = TempMirror::demo("answers-same");
    let kept = m.ctx();
    let fresh = ctx_with_cache_kib(&m, 0);
    let requests = [
        r#""tableNumber":"12""#,
        r#""tableNumber":12"#,
        r#""tableNumber":" 12""#,
        r#""tableNumber":"7""#,
        &format!(r#""billId":"{BILL_1}""#),
        &format!(r#""billId":"{BILL_1}","tableNumber":"12""#),
    ];
    for (n, fields) in requests.iter().enumerate() {
        let first = body(&kept, &format!("first-{n}"), fields);
        let (hits, _) = kept.answers.counts();
        let again = body(&kept, &format!("again-{n}-a-longer-rid"), fields);
        assert_eq!(
            kept.answers.counts().0,
            hits + 1,
            "{fields}: the second is kept"
        );
        let off = body(&fresh, &format!("again-{n}-a-longer-rid"), fields);
        assert_eq!(again, off, "{fields}: kept and fresh differ");
        assert_eq!(
            first.replacen(&format!("first-{n}"), &format!("again-{n}-a-longer-rid"), 1),
            again
        );
        assert_eq!(json(&again)["state"], "SUCCESS", "{again}");
    }
    // The echo of the table number is the request's own, so " 12" and "12" are kept apart.
    let spaced = json(&body(&kept, "x", r#""tableNumber":" 12""#));
    assert_eq!(spaced["tableNumber"], " 12");
    assert_eq!(
        json(&body(&kept, "y", r#""tableNumber":"12""#))["tableNumber"],
        "12"
    );
    assert_eq!(fresh.answers.counts(), (0, 0), "a cap of 0 keeps nothing");
}

#[test]
fn every_change_to_the_mirror_is_in_the_next_answer() {
    let m = TempMirror::demo("answers-change");
    let ctx = m.ctx();
    let table_12 = r#""tableNumber":"12""#;
    let names = |v: &Value| -> Vec<String> {
        let mut out = Vec::new();
        for g in v["orders"][0]["guests"].as_array().expect("guests") {
            for d in g["dishes"].as_array().expect("dishes") {
                out.push(d["name"].as_str().expect("name").to_owned());
            }
        }
        out
    };
    let v = json(&body(&ctx, "r-1", table_12));
    assert!(names(&v).contains(&"Борщ український з пампушками".to_owned()));
    json(&body(&ctx, "r-2", table_12));
    let (hits, misses) = ctx.answers.counts();
    assert_eq!(hits, 1, "unchanged: kept");

    // The POS renames a dish (another connection, as the POS's sync job would).
    m.exec(&format!(
        "UPDATE order_positions SET name = 'Борщ без пампушок' WHERE bill_id = '{BILL_1}' AND position_id = 'p-1'"
    ));
    let v = json(&body(&ctx, "r-3", table_12));
    assert!(names(&v).contains(&"Борщ без пампушок".to_owned()), "{v}");
    assert_eq!(
        ctx.answers.counts(),
        (hits, misses + 1),
        "a change is a miss"
    );

    // A new line, then the totals.
    m.exec(&format!(
        "INSERT INTO order_positions (bill_id, position_id, line_no, name, count_milli, sum_kop)
         VALUES ('{BILL_1}', 'p-new', 99, 'Узвар', 1000, 3500);
         UPDATE orders SET total_sum_kop = total_sum_kop + 3500 WHERE bill_id = '{BILL_1}';"
    ));
    let before = json(&body(&ctx, "r-4", table_12));
    assert!(names(&before).contains(&"Узвар".to_owned()), "{before}");
    assert_eq!(before["orders"][0]["totalSum"], 424.5);

    // The bill is paid at the POS: the table has no open bill any more.
    m.exec(&format!(
        "UPDATE orders SET state = 'PAYED' WHERE bill_id = '{BILL_1}'"
    ));
    let v = json(&body(&ctx, "r-5", table_12));
    assert_eq!(v["state"], "FAIL", "{v}");
    assert_eq!(v["substate"], "ORDER_NOT_FOUND", "{v}");
    // A FAIL is never kept: the bill reopened is answered at once.
    m.exec(&format!(
        "UPDATE orders SET state = 'BILL' WHERE bill_id = '{BILL_1}'"
    ));
    let v = json(&body(&ctx, "r-6", table_12));
    assert_eq!(v["orders"][0]["totalSum"], 424.5, "{v}");

    // The mirror file is replaced (a new file renamed over it): the new file's data. (The old
    // file's WAL is checkpointed away first, as a sync job that replaces the file must: a WAL
    // left beside the new file would be read as its own.)
    let next = m.path.with_extension("next");
    let old = m.conn();
    old.execute_batch(&format!("VACUUM INTO '{}'", next.display()))
        .unwrap();
    let c = rusqlite::Connection::open(&next).unwrap();
    c.execute_batch(&format!(
        "UPDATE order_positions SET name = 'Борщ із нового файлу' WHERE bill_id = '{BILL_1}' AND position_id = 'p-1'"
    ))
    .unwrap();
    drop(c);
    old.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(old);
    std::fs::rename(&next, &m.path).unwrap();
    let v = json(&body(&ctx, "r-7", table_12));
    assert!(
        names(&v).contains(&"Борщ із нового файлу".to_owned()),
        "{v}"
    );
}

#[test]
fn a_store_too_small_for_an_answer_keeps_nothing_and_answers_all_the_same() {
    let m = TempMirror::demo("answers-small");
    // 1 KiB: nothing over 128 bytes is kept, and every bill is bigger.
    let ctx = ctx_with_cache_kib(&m, 1);
    let fresh = ctx_with_cache_kib(&m, 0);
    for rid in ["a", "b", "c"] {
        assert_eq!(
            body(&ctx, rid, r#""tableNumber":"12""#),
            body(&fresh, rid, r#""tableNumber":"12""#)
        );
    }
    assert_eq!(ctx.answers.counts().0, 0);
    assert_eq!(ctx.answers.bytes(), 0);
}

#[test]
fn the_lists_are_kept_and_follow_the_mirror_too() {
    let m = TempMirror::demo("answers-lists");
    let kept = m.ctx();
    let fresh = ctx_with_cache_kib(&m, 0);
    let ops = [
        "tablesInfo",
        "hallplansInfo",
        "usersInfo",
        "categoriesInfo",
        "stopList",
    ];
    let list = |ctx: &Stages, op: &str, rid: &str| {
        let f = format!(r#"{{"rID":"{rid}","operation":"{op}"}}"#);
        String::from_utf8(call_raw(ctx, &f)).expect("UTF-8")
    };
    for op in ops {
        list(&kept, op, "one");
        let (hits, _) = kept.answers.counts();
        let again = list(&kept, op, "two");
        assert_eq!(kept.answers.counts().0, hits + 1, "{op}: kept");
        assert_eq!(
            again,
            list(&fresh, op, "two"),
            "{op}: kept and fresh differ"
        );
    }
    // A new table and a new stop are in the next answers.
    m.exec(
        "INSERT INTO tables (id, number, name, hall_id) VALUES ('table-77', 77, 'Тераса', 'hall-1');
         DELETE FROM stop_list;",
    );
    let tables = json(&list(&kept, "tablesInfo", "three"));
    let numbers: Vec<i64> = tables["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["number"].as_i64().expect("number"))
        .collect();
    assert!(numbers.contains(&77), "{tables}");
    let stops = json(&list(&kept, "stopList", "four"));
    assert_eq!(stops["items"], serde_json::json!([]), "{stops}");
    assert_eq!(
        list(&kept, "usersInfo", "five"),
        list(&fresh, "usersInfo", "five")
    );
}

/// A view can show other rows without any commit: "the bills of the current shift" filters on
/// `julianday('now')`, so a bill leaves it when the shift ends, and SQLite's data version does
/// not move. An operation that reads a view is therefore answered fresh every time: nothing is
/// kept for it, and the bill is gone from the very next answer.
#[test]
fn an_operation_reading_a_view_is_answered_fresh() {
    let m = TempMirror::demo("answers-clock-view");
    m.exec(
        "ALTER TABLE orders RENAME TO pos_orders;
         CREATE TABLE pos_shift (ends REAL NOT NULL);
         INSERT INTO pos_shift VALUES (julianday('now') + 0.4 / 86400.0);
         CREATE VIEW orders AS SELECT o.* FROM pos_orders o
           WHERE o.table_id <> 'table-12' OR julianday('now') < (SELECT ends FROM pos_shift);",
    );
    let ctx = m.ctx();
    let table_12 = r#""tableNumber":"12""#;
    let first = json(&body(&ctx, "one", table_12));
    assert_eq!(first["state"], "SUCCESS", "{first}");
    assert_eq!(json(&body(&ctx, "two", table_12))["state"], "SUCCESS");
    assert_eq!(ctx.answers.counts(), (0, 0), "nothing kept for a view");
    // The shift ends on SQLite's clock; no commit happens.
    let c = m.conn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while c
        .query_row(
            "SELECT julianday('now') < (SELECT ends FROM pos_shift)",
            [],
            |r| r.get::<_, bool>(0),
        )
        .unwrap()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stands still"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let after = json(&body(&ctx, "three", table_12));
    assert_eq!(
        after["state"], "FAIL",
        "served a bill the view no longer shows: {after}"
    );
    assert_eq!(after["substate"], "ORDER_NOT_FOUND", "{after}");
    // Table 7's bill stays, read afresh; the lists over real tables are still kept.
    assert_eq!(
        json(&body(&ctx, "four", r#""tableNumber":"7""#))["state"],
        "SUCCESS"
    );
    let tables = |rid: &str| {
        let f = format!(r#"{{"rID":"{rid}","operation":"tablesInfo"}}"#);
        call_raw(&ctx, &f)
    };
    tables("five");
    tables("six");
    assert_eq!(
        ctx.answers.counts().0,
        1,
        "tablesInfo reads a real table: kept"
    );
}
