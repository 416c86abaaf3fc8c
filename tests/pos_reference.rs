//! The reference POS side in `contrib/pos/` (Python, standard library only, written from
//! docs/journal.md) against the real agent binary and the fake cloud: the КасаПро example POS,
//! its mirror as views (and as a sync job), its journal applier as a separate process.
//!
//! Needs `python3` (3.9 or newer) on the PATH, as CI has; `EXPIRENZA_PYTHON` names another
//! interpreter. CI runs these tests twice: with Debian 12's python3 (SQLite 3.40.1) and with
//! Debian 11's Python 3.9.2 and SQLite 3.34.1 (`scripts/bullseye-python.sh`), the oldest the
//! reference POS side claims to support.

#[path = "support/binary.rs"]
mod binary;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rusqlite::{params, Connection};
use serde_json::Value;
use testkit::harness::{TempDir, RESTO_ID, SECRET};
use testkit::{Callback, FakeCloud, FakeCloudConfig};

const T: Duration = Duration::from_secs(30);

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/pos")
}

fn python() -> Command {
    let mut c = Command::new(std::env::var_os("EXPIRENZA_PYTHON").unwrap_or("python3".into()));
    c.env("PYTHONDONTWRITEBYTECODE", "1");
    c
}

/// A КасаПро database with the mirror's views and the demo restaurant.
fn pos_db(dir: &Path) -> PathBuf {
    let pos = dir.join("pos.sqlite");
    let mut c = python();
    c.arg(contrib().join("kasapro/pos_db.py"))
        .args(["--views", "--demo", "--pos"])
        .arg(&pos);
    let out = binary::run_once(c, b"", T);
    assert_eq!(out.code, Some(0), "pos_db.py: {}", out.all());
    pos
}

struct Rig {
    dir: TempDir,
    pos: PathBuf,
    journal: PathBuf,
    mirror: PathBuf,
    config: PathBuf,
    cloud: FakeCloud,
    agent: Option<binary::Agent>,
    applier: Option<binary::Agent>,
}

async fn rig(tag: &str, sync_mirror: bool) -> Rig {
    let dir = TempDir::new(tag);
    let pos = pos_db(dir.path());
    let mirror = if sync_mirror {
        let m = dir.path().join("mirror.sqlite");
        let out = binary::run_once(
            binary::command(&["init-mirror", m.to_str().unwrap()]),
            b"",
            T,
        );
        assert_eq!(out.code, Some(0), "{}", out.all());
        m
    } else {
        pos.clone()
    };
    let config = binary::write_config(
        dir.path(),
        &format!(
            "resto_id = \"{RESTO_ID}\"\nstate_dir = \"{0}\"\nruntime_dir = \"{0}\"\n\
             mirror_path = \"{1}\"\n\
             [link]\nbackoff_floor_ms = 50\nbackoff_cap_ms = 200\n\
             [callback]\ndeadline_secs = 40\nretry_initial_ms = 20\nretry_max_ms = 200\n\
             [journal]\npos_ack_timeout_secs = 20\npoll_interval_ms = 10\n",
            dir.path().display(),
            mirror.display()
        ),
    );
    let cloud = FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO_ID.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .unwrap();
    let journal = dir.path().join("journal.sqlite");
    let mut r = Rig {
        dir,
        pos,
        journal,
        mirror,
        config,
        cloud,
        agent: None,
        applier: None,
    };
    r.start_agent().await;
    r
}

impl Rig {
    async fn start_agent(&mut self) {
        let mut c = binary::command(&["run", "--config", self.config.to_str().unwrap()]);
        c.env("EXPIRENZA_SECRET_KEY", SECRET)
            .env("EXPIRENZA_WS_URL", self.cloud.ws_url())
            .env("EXPIRENZA_CALLBACK_URL", self.cloud.callback_url());
        let a = binary::Agent::spawn(c);
        assert!(
            self.cloud.wait_connected(T).await.is_some(),
            "{}",
            a.stderr_so_far()
        );
        // The journal exists once the agent has opened it.
        assert!(
            a.wait_line("journal: ", T).is_some(),
            "{}",
            a.stderr_so_far()
        );
        self.agent = Some(a);
    }

    fn start_applier(&mut self, extra: &[&str]) {
        let mut c = python();
        c.arg(contrib().join("applier.py"))
            .arg("--journal")
            .arg(&self.journal)
            .arg("--pos")
            .arg(&self.pos)
            .args(["--poll-ms", "20", "-v"])
            .args(extra);
        if self.mirror != self.pos {
            c.arg("--mirror").arg(&self.mirror);
        }
        let a = binary::Agent::spawn(c);
        assert!(
            a.wait_line("applier: ready", T).is_some(),
            "{}",
            a.stderr_so_far()
        );
        self.applier = Some(a);
    }

    async fn call(&self, frame: &str) -> Value {
        let rid: Value = serde_json::from_str(frame).unwrap();
        let rid = rid["rID"].as_str().unwrap();
        let cb = self
            .cloud
            .request(frame, rid, T)
            .await
            .unwrap_or_else(|| panic!("{rid} answered; applier: {}", self.applier_log()));
        body(&cb)
    }

    fn applier_log(&self) -> String {
        self.applier
            .as_ref()
            .map(|a| a.stderr_so_far())
            .unwrap_or_default()
    }

    fn pos_q<T: rusqlite::types::FromSql>(&self, sql: &str) -> T {
        Connection::open(&self.pos)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    fn journal_row(&self, rid: &str) -> (String, Option<String>, Option<String>) {
        Connection::open(&self.journal)
            .unwrap()
            .query_row(
                "SELECT status, substate, result FROM commands WHERE rid = ?1",
                params![rid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    }
}

fn body(c: &Callback) -> Value {
    assert!(c.signature_ok, "signed");
    serde_json::from_slice(&c.body).unwrap()
}

fn pay(rid: &str, bill: &str, sum: &str) -> String {
    format!(
        r#"{{"rID":"{rid}","operation":"payBill","billId":"{bill}","sum":{sum},"tips":10.00,"fiscalData":[{{"key":"ЕКВАЙЕР","value":"Universal Bank"}}]}}"#
    )
}

fn kop(v: &Value) -> i64 {
    (v.as_f64().unwrap() * 100.0).round() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_right_wrong_repeated_and_two_rids_for_one_bill() {
    let mut r = rig("posref-pay", false).await;
    r.start_applier(&[]);
    // The right sum: applied by the POS, answered SUCCESS.
    let a = r.call(&pay("p-right", "1", "389.50")).await;
    assert_eq!(a["state"], "SUCCESS", "{a}");
    assert_eq!(a["orderNumber"], 1842);
    assert_eq!(a["waiter"], "Оксана Мельник");
    assert_eq!(
        r.pos_q::<i64>("SELECT status FROM pos_checks WHERE check_id = 1"),
        2
    );
    assert_eq!(
        r.pos_q::<f64>("SELECT amount FROM pos_payments WHERE check_id = 1"),
        389.5
    );
    assert_eq!(
        r.pos_q::<f64>("SELECT tips FROM pos_payments WHERE check_id = 1"),
        10.0
    );
    assert!(r
        .pos_q::<String>("SELECT fiscal FROM pos_payments WHERE check_id = 1")
        .contains("Universal Bank"));
    // The same rID again: the same answer, nothing applied again.
    let again = r.call(&pay("p-right", "1", "389.50")).await;
    assert_eq!(again["state"], "SUCCESS");
    assert_eq!(again["orderNumber"], 1842);
    // A second rID for the paid bill: the first payment's outcome; kept for review.
    let second = r.call(&pay("p-second", "1", "389.50")).await;
    assert_eq!(second["state"], "SUCCESS", "{second}");
    assert_eq!(
        r.journal_row("p-second").0.as_str(),
        "review",
        "never applied"
    );
    assert_eq!(
        r.journal_row("p-second").1.as_deref(),
        Some("DUPLICATE_PAYMENT")
    );
    assert_eq!(
        r.pos_q::<i64>("SELECT count(*) FROM pos_payments WHERE check_id = 1"),
        1
    );
    // The wrong sum: FAIL, kept for review, the check untouched.
    let wrong = r.call(&pay("p-wrong", "2", "100.00")).await;
    assert_eq!(wrong["substate"], "WRONG_REQUEST_SUM", "{wrong}");
    assert_eq!(r.journal_row("p-wrong").0, "review");
    assert_eq!(
        r.pos_q::<i64>("SELECT status FROM pos_checks WHERE check_id = 2"),
        0
    );
    // A check already paid at the till.
    let closed = r.call(&pay("p-closed", "3", "120.00")).await;
    assert_eq!(closed["substate"], "ORDER_CLOSED", "{closed}");
    assert_eq!(r.pos_q::<i64>("SELECT count(*) FROM pos_payments"), 1);
    assert_eq!(
        r.pos_q::<i64>("SELECT count(*) FROM pos_journal_applied"),
        1,
        "only the right payment reached the POS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_and_an_order() {
    let mut r = rig("posref-split", false).await;
    r.start_applier(&[]);
    // Check 977 (700.00, 10 % off, a 50.00 certificate: 580.00): one of the two deruny (with
    // its half of the sour cream) and the cutlet go to a new check.
    let v = r
        .call(
            r#"{"rID":"s-1","operation":"splitOrder","billId":"2","controlSum":535.00,
                "positions":[{"id":"5","quantity":1},{"id":"8","quantity":1}]}"#,
        )
        .await;
    assert_eq!(v["state"], "SUCCESS", "{v}");
    let (parent, child) = (&v["orders"][0], &v["orders"][1]);
    assert_eq!(child["rootBillId"], "2");
    assert_eq!(child["state"], "NEW");
    assert_eq!(child["splitAvailable"], false);
    assert_ne!(child["created"], parent["created"]);
    assert_eq!(kop(&child["rawSum"]), 53_500, "120 + 15 + 400");
    assert_eq!(kop(&parent["rawSum"]), 16_500);
    let discounts = |o: &Value| -> BTreeMap<String, i64> {
        o["discounts"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["name"].as_str().unwrap().to_string(), kop(&d["sum"])))
            .collect()
    };
    // 10 % of each check's own lines; the certificate divided 535 : 165, half up.
    assert_eq!(discounts(child)["Знижка 10%"], 5_350);
    assert_eq!(discounts(parent)["Знижка 10%"], 1_650);
    assert_eq!(discounts(child)["Подарунковий сертифікат"], 3_821);
    assert_eq!(discounts(parent)["Подарунковий сертифікат"], 1_179);
    assert_eq!(kop(&child["totalSum"]), 44_329);
    assert_eq!(kop(&parent["totalSum"]) + kop(&child["totalSum"]), 58_000);
    // The sour cream followed its dish, linked to the dish's new line.
    let dishes = child["guests"][0]["dishes"].as_array().unwrap();
    assert_eq!(dishes[1]["name"], "Сметана");
    assert_eq!(dishes[1]["linkedTo"], dishes[0]["positionId"]);
    assert_eq!(kop(&dishes[1]["sum"]), 1_500);
    // The new check can be paid by its own total.
    let new_bill = child["billId"].as_str().unwrap().to_string();
    let paid = r.call(&pay("p-split", &new_bill, "443.29")).await;
    assert_eq!(paid["state"], "SUCCESS", "{paid}");

    // An order from the menu: created, paid with what the agent priced.
    let o = r
        .call(
            r#"{"rID":"o-1","operation":"createOrderOnTable","externalId":"ext-1","tableId":"9",
                "items":[{"id":"205","quantity":2,"modifier":[{"id":"12","quantity":1}]},{"id":"330"}]}"#,
        )
        .await;
    assert_eq!(o["result"]["success"], true, "{o}");
    assert_eq!(kop(&o["result"]["rootOrder"]["resultSum"]), 26_500);
    let order_id: i64 = o["result"]["rootOrder"]["orderId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        r.pos_q::<f64>(&format!(
            "SELECT amount FROM pos_payments WHERE check_id = {order_id}"
        )),
        265.0
    );
    assert_eq!(
        r.pos_q::<f64>("SELECT balance FROM pos_stop WHERE product_id = 205"),
        1.0
    );

    // A price changes between the agent's check and the POS's apply: the POS charges sum_kop
    // and notes the difference for staff.
    drop(r.applier.take());
    assert!(
        r.cloud
            .send_text(
                r#"{"rID":"o-2","operation":"createOrderOnTable","externalId":"ext-2","tableId":"10",
                    "items":[{"id":"330","quantity":2}]}"#
            )
            .await
    );
    let agent = r.agent.as_ref().unwrap();
    assert!(
        agent.wait_line("rID=o-2 journaled", T).is_some(),
        "{}",
        agent.stderr_so_far()
    );
    let journaled: i64 = Connection::open(&r.journal)
        .unwrap()
        .query_row("SELECT sum_kop FROM commands WHERE rid = 'o-2'", [], |x| {
            x.get(0)
        })
        .unwrap();
    assert_eq!(journaled, 12_000, "priced 2 × 60.00 on arrival");
    Connection::open(&r.pos)
        .unwrap()
        .execute(
            "UPDATE pos_products SET price = 65.0 WHERE product_id = 330",
            [],
        )
        .unwrap();
    r.start_applier(&[]);
    let o2 = body(&r.cloud.callback_for("o-2", T).await.expect("answered"));
    assert_eq!(o2["result"]["success"], true, "{o2}");
    let (_, _, result) = r.journal_row("o-2");
    let result: Value = serde_json::from_str(&result.unwrap()).unwrap();
    assert_eq!(result["priceDifferenceKop"], 1_000);
    assert_eq!(
        r.pos_q::<f64>("SELECT amount FROM pos_payments WHERE rid = 'o-2'"),
        120.0,
        "the guest's amount"
    );
    assert_eq!(r.pos_q::<i64>("SELECT count(*) FROM pos_notes"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_applier_killed_between_apply_and_acknowledge_applies_once() {
    let mut r = rig("posref-crash", false).await;
    r.start_applier(&["--crash-after-apply", "p-crash"]);
    assert!(r.cloud.send_text(&pay("p-crash", "1", "389.50")).await);
    // Event: the applier killed itself (SIGKILL) after its POS transaction committed.
    let mut crashed = r.applier.take().unwrap();
    assert!(
        crashed.wait_line("killing this applier", T).is_some(),
        "{}",
        crashed.stderr_so_far()
    );
    let out = crashed.wait_exit(T);
    assert_eq!(out, None, "killed by a signal, no exit code");
    assert_eq!(r.journal_row("p-crash").0, "claimed");
    assert_eq!(
        r.pos_q::<i64>("SELECT count(*) FROM pos_payments"),
        1,
        "applied"
    );
    // Restarted, it finishes the claimed row from its stored outcome.
    r.start_applier(&[]);
    let v = body(&r.cloud.callback_for("p-crash", T).await.expect("answered"));
    assert_eq!(v["state"], "SUCCESS", "{v}");
    assert_eq!(r.journal_row("p-crash").0, "applied");
    assert_eq!(
        r.pos_q::<i64>("SELECT count(*) FROM pos_payments"),
        1,
        "once"
    );
    assert!(r
        .applier_log()
        .contains("was applied before: acknowledging its stored outcome"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_killed_mid_burst_loses_and_doubles_nothing() {
    const N: i64 = 12;
    let mut r = rig("posref-burst", false).await;
    {
        let c = Connection::open(&r.pos).unwrap();
        for i in 0..N {
            c.execute(
                "INSERT INTO pos_checks (check_id, check_no, table_id, status, opened_at, waiter_id, total, to_pay) \
                 VALUES (?1, ?2, 1, 1, '2024-05-14 20:00:00', 17, 100.0, 100.0)",
                params![100 + i, 5000 + i],
            )
            .unwrap();
            c.execute(
                "INSERT INTO pos_check_lines (check_id, line_pos, product_id, product_name, qty, amount) \
                 VALUES (?1, 1, 330, 'Узвар 0,5 л', 1.0, 100.0)",
                params![100 + i],
            )
            .unwrap();
        }
    }
    r.start_applier(&[]);
    let frames: BTreeMap<String, String> = (0..N)
        .map(|i| {
            let rid = format!("burst-{i:02}");
            (rid.clone(), pay(&rid, &(100 + i).to_string(), "100.00"))
        })
        .collect();
    for f in frames.values() {
        assert!(r.cloud.send_text(f).await);
    }
    assert!(r.cloud.wait_callback_count(3, T).await);
    let agent = r.agent.take().unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(agent.pid() as libc::pid_t, libc::SIGKILL) };
    drop(agent);
    assert!(r.cloud.wait_disconnected(T).await);
    let answered: BTreeSet<String> = r
        .cloud
        .all_callbacks()
        .iter()
        .filter_map(|c| c.rid.clone())
        .collect();
    r.start_agent().await;
    for (rid, f) in &frames {
        if !answered.contains(rid) {
            assert!(r.cloud.send_text(f).await);
        }
    }
    for rid in frames.keys().filter(|k| !answered.contains(*k)) {
        let v = body(&r.cloud.callback_for(rid, T).await.expect("answered"));
        assert_eq!(v["state"], "SUCCESS", "{rid}: {v}");
    }
    for c in r.cloud.all_callbacks() {
        assert_eq!(body(&c)["state"], "SUCCESS");
    }
    let j = Connection::open(&r.journal).unwrap();
    for (i, rid) in frames.keys().enumerate() {
        let n: i64 = j
            .query_row(
                "SELECT count(*) FROM commands WHERE rid = ?1 AND status = 'applied'",
                params![rid],
                |x| x.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{rid}: one applied row");
        assert_eq!(
            r.pos_q::<i64>(&format!(
                "SELECT count(*) FROM pos_payments WHERE check_id = {}",
                100 + i
            )),
            1,
            "{rid}: paid once"
        );
    }
    println!(
        "reference POS: {N} payments, {} answered before kill -9 of the agent, every one paid once",
        answered.len()
    );
}

/// The sync job maps КасаПро exactly as the views do (the agent's answers are the same bytes
/// from either), and with a separate mirror the applier syncs before it acknowledges: the
/// split's new check is in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_job_maps_the_pos_like_the_views_and_runs_before_each_ack() {
    let mut r = rig("posref-sync", true).await;
    let mut c = python();
    c.arg(contrib().join("kasapro/mirror_sync.py"))
        .arg("--once")
        .arg("--pos")
        .arg(&r.pos)
        .arg("--mirror")
        .arg(&r.mirror);
    let out = binary::run_once(c, b"", T);
    assert_eq!(out.code, Some(0), "{}", out.all());
    std::fs::create_dir_all(r.dir.path().join("views")).unwrap();
    let views_cfg = binary::write_config(
        &r.dir.path().join("views"),
        &format!(
            "resto_id = \"{RESTO_ID}\"\nstate_dir = \"{0}\"\nmirror_path = \"{1}\"\n",
            r.dir.path().join("views").display(),
            r.pos.display()
        ),
    );
    for args in [
        vec!["getBill", "--table", "12"],
        vec!["getBill", "--table", "7"],
        vec!["tablesInfo"],
        vec!["hallplansInfo"],
        vec!["usersInfo"],
        vec!["menuInfo"],
        vec!["stopList"],
    ] {
        let preview = |cfg: &Path| {
            let mut all = vec!["preview"];
            all.extend_from_slice(&args);
            all.extend_from_slice(&["--config", cfg.to_str().unwrap()]);
            let mut c = binary::command(&all);
            c.env("EXPIRENZA_SECRET_KEY", SECRET);
            let out = binary::run_once(c, b"", T);
            assert_eq!(out.code, Some(0), "{args:?}: {}", out.all());
            out.stdout
        };
        assert_eq!(preview(&views_cfg), preview(&r.config), "{args:?}");
    }
    r.start_applier(&[]);
    let v = r
        .call(
            r#"{"rID":"s-sync","operation":"splitOrder","billId":"2","controlSum":400.00,
                "positions":[{"id":"8","quantity":1}]}"#,
        )
        .await;
    assert_eq!(v["state"], "SUCCESS", "{v}");
    assert_eq!(v["orders"][1]["rootBillId"], "2");
    let paid = r.call(&pay("p-sync", "1", "389.50")).await;
    assert_eq!(paid["state"], "SUCCESS", "{paid}");
    let state: String = Connection::open(&r.mirror)
        .unwrap()
        .query_row("SELECT state FROM orders WHERE bill_id = '1'", [], |x| {
            x.get(0)
        })
        .unwrap();
    assert_eq!(state, "PAYED", "synced before the acknowledgement");
}

/// Run the applier alone on `journal` (the POS is the demo КасаПро database).
fn applier_alone(dir: &Path, journal: &Path) -> binary::Agent {
    let pos = pos_db(dir);
    let mut c = python();
    c.arg(contrib().join("applier.py"))
        .arg("--journal")
        .arg(journal)
        .arg("--pos")
        .arg(&pos)
        .args(["--poll-ms", "20", "-v"]);
    binary::Agent::spawn(c)
}

/// An error that retrying cannot fix (here a journal whose `commands` lacks the columns the
/// claim reads) stops the applier with exit status 1 and the error, instead of a loop that
/// applies nothing.
#[test]
fn a_persistent_sql_error_stops_the_applier_loudly() {
    let dir = TempDir::new("posref-fatal");
    let journal = dir.path().join("journal.sqlite");
    let db = Connection::open(&journal).unwrap();
    db.execute_batch(
        "CREATE TABLE commands (id INTEGER PRIMARY KEY, status TEXT NOT NULL);
         INSERT INTO commands (status) VALUES ('pending');",
    )
    .unwrap();
    drop(db);
    let mut a = applier_alone(dir.path(), &journal);
    assert_eq!(a.wait_exit(T), Some(1), "{}", a.stderr_so_far());
    let err = a.stderr_so_far();
    assert!(
        err.contains("applier: stopped: OperationalError: no such column: rid")
            && err.contains("Retrying cannot fix this"),
        "{err}"
    );
    let status: String = Connection::open(&journal)
        .unwrap()
        .query_row("SELECT status FROM commands", [], |x| x.get(0))
        .unwrap();
    assert_eq!(status, "pending", "nothing claimed");
}

/// What passes by itself is waited out: an applier started before the agent has created the
/// journal says so once, keeps looking, and applies the first command once the journal is there.
#[test]
fn a_journal_not_created_yet_is_waited_for() {
    let dir = TempDir::new("posref-nojournal");
    let journal = dir.path().join("journal.sqlite");
    let a = applier_alone(dir.path(), &journal);
    assert!(
        a.wait_line("no journal yet", T).is_some(),
        "{}",
        a.stderr_so_far()
    );
    // The journal as the agent creates it, with one command.
    let db = Connection::open(&journal).unwrap();
    db.execute_batch(include_str!("../src/journal/schema.sql"))
        .unwrap();
    db.execute(
        "INSERT INTO commands (rid, operation, request, created_at) \
         VALUES ('m-late', 'showMessage', '{\"message\":\"hello\"}', 0)",
        [],
    )
    .unwrap();
    assert!(
        a.wait_line("showMessage rID=m-late #1 applied", T)
            .is_some(),
        "{}",
        a.stderr_so_far()
    );
    let (status, result): (String, String) = db
        .query_row("SELECT status, result FROM commands", [], |x| {
            Ok((x.get(0)?, x.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (status.as_str(), result.as_str()),
        ("applied", r#"{"shown": true}"#)
    );
    assert_eq!(a.count_lines("no journal yet"), 1, "said once");
}

/// docs/journal.md's claim recipe, statement by statement as printed there, on the interpreter's
/// SQLite (CI: also Debian 11's 3.34.1, where `UPDATE … RETURNING` is a syntax error): the
/// oldest pending row is claimed, once; a row left claimed is found first.
#[test]
fn the_documented_claim_recipe_runs_on_this_sqlite() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/journal.md"))
            .unwrap();
    let from = doc
        .find("### 1. Claim")
        .expect("docs/journal.md: ### 1. Claim");
    let block = &doc[from..];
    let start = block.find("```sql\n").unwrap() + "```sql\n".len();
    let recipe = &block[start..start + block[start..].find("```").unwrap()];
    let dir = TempDir::new("posref-recipe");
    let script = r#"
import re, sqlite3, sys
schema, recipe, path = sys.argv[1], sys.argv[2], sys.argv[3]
db = sqlite3.connect(path, isolation_level=None)
db.executescript(open(schema).read())
for rid, status in [("a", "applied"), ("b", "pending"), ("c", "pending")]:
    db.execute("INSERT INTO commands (rid, operation, request, status, created_at) "
               "VALUES (?, 'showMessage', '{}', ?, 0)", (rid, status))
stmts = [s.strip() for s in re.sub(r"--[^\n]*", "", open(recipe).read()).split(";") if s.strip()]
assert [s.split()[0] for s in stmts] == ["BEGIN", "SELECT", "SELECT", "UPDATE", "COMMIT"], stmts
def claim():
    db.execute(stmts[0])
    left = db.execute(stmts[1]).fetchone()
    row = db.execute(stmts[2]).fetchone()
    n = db.execute(stmts[3], {"now_ms": 1, "id": row[0]}).rowcount if left is None and row else 0
    db.execute(stmts[4])
    return left, row, n
left, row, n = claim()
assert left is None and row[1] == "b" and n == 1, (left, row, n)
first = row[1]
left, row, n = claim()
assert left[1] == "b" and n == 0, (left, row, n)
print("claimed", first, "SQLite", sqlite3.sqlite_version)
"#;
    let recipe_file = dir.path().join("claim.sql");
    std::fs::write(&recipe_file, recipe).unwrap();
    let mut c = python();
    c.arg("-c")
        .arg(script)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/journal/schema.sql"))
        .arg(&recipe_file)
        .arg(dir.path().join("journal.sqlite"));
    let out = binary::run_once(c, b"", T);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.starts_with("claimed b"), "{}", out.all());
}
