//! Temp mirrors and the agent's request stages over them (`testkit::stages`: admission,
//! compute, delivery to a stub, on a paused clock), for running operations as the agent does
//! and reading their bodies with serde_json. Shared by read_ops.rs, answers.rs,
//! check_mirror.rs, menu_large.rs, menu_memory.rs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use expirenza_agent::config::Config;
use expirenza_agent::mirror;
use rusqlite::Connection;
use testkit::stages::Stages;

static N: AtomicUsize = AtomicUsize::new(0);

/// A unique temp directory holding `mirror.sqlite` and `state/`; removed on drop.
pub struct TempMirror {
    pub dir: PathBuf,
    pub path: PathBuf,
}

impl TempMirror {
    /// A mirror with the contract's schema and no rows.
    pub fn empty(tag: &str) -> TempMirror {
        let dir = std::env::temp_dir().join(format!(
            "readops-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let path = dir.join("mirror.sqlite");
        mirror::create_schema(&path).unwrap();
        TempMirror { dir, path }
    }
    /// The demo restaurant (`init-mirror --demo`).
    pub fn demo(tag: &str) -> TempMirror {
        let m = TempMirror::empty(tag);
        let mut c = m.conn();
        mirror::demo::fill(&mut c).unwrap();
        m
    }
    /// A writable connection (the test plays the POS).
    pub fn conn(&self) -> Connection {
        Connection::open(&self.path).unwrap()
    }
    pub fn exec(&self, sql: &str) {
        self.conn().execute_batch(sql).unwrap();
    }
    pub fn config(&self) -> Config {
        Config::for_loopback(
            "resto-test",
            "test-secret",
            "ws://127.0.0.1:9/ws",
            "http://127.0.0.1:9",
            &self.path,
            &self.dir.join("state"),
        )
    }
    pub fn ctx(&self) -> Stages {
        ctx_for(self.config())
    }
}

impl Drop for TempMirror {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The stages over `cfg`'s mirror; derefs to their `Ctx`.
pub fn ctx_for(cfg: Config) -> Stages {
    Stages::new(cfg)
}

/// Run `frame` through the stages; the body of its callback (an operation's own answer, or the
/// dispatcher's FAIL: `ANSWER_TOO_LARGE`, `POS_UNAVAILABLE`, ...). A streamed body (menuInfo
/// past `max_body_bytes`) is its second pass, checked against the first pass's signature.
pub fn call_raw(s: &Stages, frame: &str) -> Vec<u8> {
    s.answer(frame)
        .unwrap_or_else(|| panic!("no callback for {frame}"))
        .body
}

/// Run `{"rID":"r-1","operation":op, extra…}` and parse the body.
pub fn call(ctx: &Stages, op: &str, extra: &str) -> (serde_json::Value, String) {
    let frame = if extra.is_empty() {
        format!(r#"{{"rID":"r-1","operation":"{op}"}}"#)
    } else {
        format!(r#"{{"rID":"r-1","operation":"{op}",{extra}}}"#)
    };
    let body = call_raw(ctx, &frame);
    let text = String::from_utf8(body).expect("body is UTF-8");
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{op} body is not JSON ({e}): {text}"));
    assert_eq!(v["rID"], "r-1", "{text}");
    (v, text)
}

/// Asserts that `body` is the dispatcher's FAIL `ANSWER_TOO_LARGE` for the cap `cap`.
pub fn assert_too_large(body: &[u8], cap: usize) {
    let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
    assert_fail(&v, "ANSWER_TOO_LARGE", &format!("({cap} bytes)"));
}

/// Asserts a FAIL body whose errorMessage names `needle`.
pub fn assert_fail(v: &serde_json::Value, substate: &str, needle: &str) {
    assert_eq!(v["state"], "FAIL", "{v}");
    assert_eq!(v["substate"], substate, "{v}");
    let msg = v["errorMessage"].as_str().unwrap_or("");
    assert!(
        msg.contains(needle),
        "errorMessage {msg:?} should name {needle:?}"
    );
}

pub fn path_of(m: &TempMirror) -> &Path {
    &m.path
}

/// A large synthetic restaurant: `items` dishes (each with one group modifier of 3 children
/// and one single modifier), `tables` tables, `staff` staff, and 1/20 of the items stop-listed.
pub fn fill_large(m: &TempMirror, items: usize, tables: usize, staff: usize) {
    let mut c = m.conn();
    let tx = c.transaction().unwrap();
    tx.execute_batch(
        "INSERT INTO categories VALUES ('cat-kitchen','Кухня','dish'),('cat-bar','Бар','drink');
         INSERT INTO halls VALUES ('hall-1','Головна зала');
         INSERT INTO terminal_groups VALUES ('tg-1','Основна каса',1);",
    )
    .unwrap();
    for g in 0..50 {
        tx.execute(
            "INSERT INTO menu_groups VALUES (?1, ?2, NULL, ?3)",
            rusqlite::params![format!("g-{g}"), format!("Група страв №{g}"), g],
        )
        .unwrap();
    }
    for g in 0..100 {
        tx.execute(
            "INSERT INTO group_modifiers (id, name, max_amount, child_min_max) VALUES (?1, ?2, 2, 1)",
            rusqlite::params![format!("gm-{g}"), format!("Соуси №{g}")],
        )
        .unwrap();
        for k in 0..3 {
            let mid = format!("mod-{g}-{k}");
            tx.execute(
                "INSERT INTO modifiers (id, name, price_kop, group_id) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    mid,
                    format!("Соус «Часниковий» №{g}-{k}"),
                    1500 + k,
                    format!("gm-{g}")
                ],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO group_modifier_children (group_id, modifier_id, position, max_amount) VALUES (?1, ?2, ?3, 2)",
                rusqlite::params![format!("gm-{g}"), mid, k],
            )
            .unwrap();
        }
    }
    {
        let mut ins = tx
            .prepare(
                "INSERT INTO menu_items (id, name, description, price_kop, category_id, group_id, unit, vendor_code, tax_category, tax_category_id)
                 VALUES (?1, ?2, ?3, ?4, 'cat-kitchen', ?5, 'порція', ?6, 'ПДВ 20%', 'tax-a')",
            )
            .unwrap();
        let mut link = tx
            .prepare("INSERT INTO menu_item_group_modifiers (item_id, group_id, position) VALUES (?1, ?2, 1)")
            .unwrap();
        let mut single = tx
            .prepare("INSERT INTO menu_item_modifiers (item_id, modifier_id, position) VALUES (?1, ?2, 1)")
            .unwrap();
        let mut stop = tx
            .prepare("INSERT INTO stop_list (item_id, remaining_milli) VALUES (?1, ?2)")
            .unwrap();
        for i in 0..items {
            let id = format!("m-{i:06}");
            ins.execute(rusqlite::params![
                id,
                format!("Страва домашня №{i}"),
                "Опис страви: борщ, вареники, сметана",
                10_000 + (i as i64 % 5000),
                format!("g-{}", i % 50),
                format!("{i}")
            ])
            .unwrap();
            link.execute(rusqlite::params![id, format!("gm-{}", i % 100)])
                .unwrap();
            single
                .execute(rusqlite::params![id, format!("mod-{}-0", (i + 1) % 100)])
                .unwrap();
            if i % 20 == 0 {
                stop.execute(rusqlite::params![id, (i % 3) as i64 * 500])
                    .unwrap();
            }
        }
        let mut t = tx
            .prepare("INSERT INTO tables (id, number, name, hall_id) VALUES (?1, ?2, ?3, 'hall-1')")
            .unwrap();
        for n in 1..=tables {
            t.execute(rusqlite::params![
                format!("table-{n}"),
                n as i64,
                format!("Стіл {n}")
            ])
            .unwrap();
        }
        let mut s = tx
            .prepare("INSERT INTO staff (id, name, cell_phone, roles) VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for n in 0..staff {
            s.execute(rusqlite::params![
                format!("u-{n:04}"),
                format!("Працівник {n}"),
                format!("+38067{n:07}"),
                if n % 2 == 0 {
                    "Офіціант"
                } else {
                    "Офіціант, Кур'єр"
                }
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}
