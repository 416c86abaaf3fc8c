//! The durable record before any answer, whatever the POS does to the journal's lock:
//! - a POS holding the write lock longer than the mirror's 2 s busy timeout does not fail a
//!   payment: the agent (the real binary) waits for the lock and answers SUCCESS;
//! - a lock held past `[journal] busy_timeout_ms` leaves the request in the spool before the
//!   cloud gets FAIL JOURNAL_UNAVAILABLE; once the lock is gone it becomes a `review` row,
//!   exactly once, even across a crash between the move and the spool's truncation;
//! - a re-send of a spooled rID gets the same answer, and nothing is journaled twice;
//! - kill -9 of the agent in a burst while the POS holds the lock: nothing lost or doubled;
//! - a money operation the dispatcher refuses before any journal code runs (FAIL AGENT_BUSY,
//!   AGENT_STOPPING, BAD_REQUEST) is spooled before that FAIL and becomes one `review` row with
//!   it as sub-state; a re-send of one refused before it started is computed as new, in its row;
//! - the real binary moves a spool it finds at start, with nothing sent to it.

#[path = "support/binary.rs"]
mod binary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use expirenza_agent::config::Config;
use expirenza_agent::journal::spool::Spool;
use expirenza_agent::mirror;
use rusqlite::{params, Connection};
use serde_json::Value;
use testkit::harness::{make_mirror, TempDir, RESTO_ID, SECRET};
use testkit::sim_pos;
use testkit::stages::Stages;
use testkit::{FakeCloud, FakeCloudConfig};

const BILL1: &str = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11"; // table 12, total 389.50
const BILL2: &str = "4afc3774-cc50-4e07-ad81-dd65f166244a"; // table 7, splittable
const DERUNY: &str = "c53e1948-7ffe-4dea-8e25-9e6773fa8768"; // on BILL2: 2 × (240.00 total)
const T: Duration = Duration::from_secs(30);

/// The requests through the agent's stages (`testkit::stages`), on a paused clock; the lock
/// waits are real (a pool thread in SQLite's busy handler).
struct Rig {
    dir: TempDir,
    ctx: Stages,
}

fn rig(busy_ms: u64) -> Rig {
    rig_with(busy_ms, |_| {})
}

fn rig_with(busy_ms: u64, tweak: impl FnOnce(&mut Config)) -> Rig {
    let dir = TempDir::new("journal-spool");
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
    cfg.journal.busy_timeout_ms = Some(busy_ms);
    cfg.journal.pos_ack_timeout_secs = 1;
    cfg.journal.poll_interval_ms = 5;
    tweak(&mut cfg);
    let ctx = Stages::new(cfg);
    Rig { dir, ctx }
}

impl Rig {
    fn call(&self, frame: &str) -> Value {
        self.ctx.call(frame)
    }
    fn mirror(&self) -> PathBuf {
        self.dir.path().join("mirror.sqlite")
    }
    /// `(id, status, substate, reason)` of `rid`'s rows.
    fn rows_of(&self, rid: &str) -> Vec<(i64, String, Option<String>, Option<String>)> {
        self.journal()
            .prepare("SELECT id, status, substate, reason FROM commands WHERE rid = ?1")
            .unwrap()
            .query_map([rid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
    fn journal(&self) -> Connection {
        Connection::open(self.ctx.journal.path()).unwrap()
    }
    fn spool(&self) -> &Spool {
        &self.ctx.journal.spool
    }
    /// `(rid, operation, status, substate, sum_kop, created_at)` of every row, by id.
    fn rows(&self) -> Vec<Row> {
        self.journal()
            .prepare(
                "SELECT rid, operation, status, substate, sum_kop, created_at FROM commands ORDER BY id",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

/// `(rid, operation, status, substate, sum_kop, created_at)`.
type Row = (String, String, String, Option<String>, Option<i64>, i64);

/// A POS transaction holding the journal's write lock until dropped.
struct PosLock(Connection);

impl PosLock {
    fn take(journal: &Path) -> PosLock {
        let c = Connection::open(journal).unwrap();
        c.execute_batch("BEGIN IMMEDIATE;").unwrap();
        PosLock(c)
    }
}

impl Drop for PosLock {
    fn drop(&mut self) {
        let _ = self.0.execute_batch("COMMIT;");
    }
}

fn pay(rid: &str, bill: &str, sum: &str) -> String {
    format!(r#"{{"rID":"{rid}","operation":"payBill","billId":"{bill}","sum":{sum},"tips":10.00}}"#)
}
fn split(rid: &str) -> String {
    format!(
        r#"{{"rID":"{rid}","operation":"splitOrder","billId":"{BILL2}","controlSum":120.00,"positions":[{{"id":"{DERUNY}","quantity":1}}]}}"#
    )
}
fn order(rid: &str) -> String {
    format!(
        r#"{{"rID":"{rid}","operation":"createOrderOnTable","externalId":"ext-{rid}","tableId":"table-12","items":[{{"id":"m-101"}}]}}"#
    )
}

#[test]
fn past_the_lock_wait_every_money_operation_is_spooled_then_moved_in_once_across_a_crash() {
    let r = rig(200);
    let lock = PosLock::take(r.ctx.journal.path());
    for (frame, rid) in [
        (pay("p-1", BILL1, "389.50"), "p-1"),
        (split("s-1"), "s-1"),
        (order("c-1"), "c-1"),
    ] {
        let v = r.call(&frame);
        assert_eq!(v["state"], "FAIL", "{rid}: {v}");
        assert_eq!(v["substate"], "JOURNAL_UNAVAILABLE", "{rid}: {v}");
        assert!(
            v["errorMessage"].as_str().unwrap().contains("spool"),
            "{rid}: {v}"
        );
    }
    // Spooled before the answer; the journal has nothing yet (read under the POS's lock: WAL).
    let spooled = r.spool().read().unwrap().records;
    let rids: Vec<_> = spooled.iter().map(|s| s.rid.as_str()).collect();
    assert_eq!(rids, ["p-1", "s-1", "c-1"]);
    assert_eq!(spooled[0].sum_kop, Some(38_950));
    assert_eq!(spooled[0].tips_kop, Some(1_000));
    assert_eq!(spooled[2].external_id.as_deref(), Some("ext-c-1"));
    assert!(r.rows().is_empty());
    drop(lock);

    // The state a crash between the move's commit and the spool's truncation leaves: the
    // spool's bytes as they were, the rows committed. Moving again moves nothing.
    let before = std::fs::read(r.spool().path()).unwrap();
    assert_eq!(r.ctx.journal.move_spool().unwrap(), 3);
    assert!(!r.spool().has_records());
    std::fs::write(r.spool().path(), &before).unwrap();
    assert_eq!(r.ctx.journal.move_spool().unwrap(), 0, "rIDs already in");
    assert!(!r.spool().has_records(), "emptied this time");
    let rows = r.rows();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (row, s) in rows.iter().zip(&spooled) {
        assert_eq!(row.0, s.rid);
        assert_eq!(row.1, s.operation);
        assert_eq!(
            (row.2.as_str(), row.3.as_deref()),
            ("review", Some("JOURNAL_UNAVAILABLE"))
        );
        assert_eq!(row.4, s.sum_kop);
        assert_eq!(row.5, s.spooled_at, "created_at is when it arrived");
    }
    // The cloud re-sends each rID: the same answer, from the row; nothing new.
    for frame in [pay("p-1", BILL1, "389.50"), split("s-1"), order("c-1")] {
        let v = r.call(&frame);
        assert_eq!(v["substate"], "JOURNAL_UNAVAILABLE", "{v}");
        assert!(
            v["errorMessage"]
                .as_str()
                .unwrap()
                .contains("reconciliation"),
            "{v}"
        );
    }
    assert_eq!(r.rows().len(), 3);
}

#[test]
fn a_re_send_before_the_move_is_answered_from_the_moved_row() {
    let r = rig(200);
    {
        let _lock = PosLock::take(r.ctx.journal.path());
        assert_eq!(
            r.call(&pay("p-2", BILL1, "389.50"))["substate"],
            "JOURNAL_UNAVAILABLE"
        );
    }
    // The lock is gone and the spool not yet moved: the re-send's own write moves it first,
    // then finds its rID there.
    assert!(r.spool().has_records());
    let v = r.call(&pay("p-2", BILL1, "389.50"));
    assert_eq!(v["substate"], "JOURNAL_UNAVAILABLE", "{v}");
    assert!(!r.spool().has_records());
    let rows = r.rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].2, "review");
    // A new rID for the same bill is a new payment: journaled pending for the POS.
    let _ = r.call(&pay("p-3", BILL1, "389.50"));
    assert_eq!(r.rows()[1].2, "pending");
}

#[test]
fn the_journal_listing_shows_spooled_requests() {
    let r = rig(200);
    {
        let _lock = PosLock::take(r.ctx.journal.path());
        r.call(&pay("p-listed", BILL1, "389.50"));
    }
    let cfg = binary::write_config(
        r.dir.path(),
        &format!(
            "resto_id = \"r\"\nstate_dir = \"{0}\"\n",
            r.dir.path().display()
        ),
    );
    let out = binary::run_once(
        binary::command(&["journal", "--config", cfg.to_str().unwrap()]),
        b"",
        T,
    );
    assert_eq!(
        out.code,
        Some(1),
        "a spooled request is open: {}",
        out.all()
    );
    assert!(
        out.stdout.contains("spooled, not yet in the journal (1)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("p-listed"), "{}", out.stdout);
    assert!(out.stdout.contains("389.50"), "{}", out.stdout);
}

// ------------------------------------------- refused before any journal code ran

/// A payment of bill 0 whose frame fills most of a 4,000-byte `max_pending_bytes`, left
/// waiting for the POS (none runs here): the next request is past the bound.
fn fill_admission(r: &Rig) -> testkit::stages::Started {
    let big = format!(
        r#"{{"rID":"p-big","operation":"payBill","billId":"{}","sum":100.00,"fiscalData":{{"note":"{}"}}}}"#,
        bill(0),
        "x".repeat(3700)
    );
    r.ctx.start(&big)
}

/// A payment over `[limits] max_pending_bytes` is answered FAIL AGENT_BUSY at admission,
/// before any journal code runs. Its frame is in the spool when the FAIL is delivered; the
/// move makes it one `review` row with sub-state AGENT_BUSY; the cloud got one callback.
#[test]
fn a_payment_refused_busy_is_spooled_before_its_fail_and_moved_in_once() {
    let r = rig_with(200, |c| c.limits.max_pending_bytes = 4000);
    add_bills(&r.mirror(), 2);
    let waiting = fill_admission(&r);
    let busy = pay("p-busy", &bill(1), "100.00");
    let v = r.call(&busy);
    assert_eq!(
        (&v["state"], &v["substate"]),
        (&"FAIL".into(), &"AGENT_BUSY".into()),
        "{v}"
    );
    // In the spool by the time the FAIL was delivered; nothing journaled for it yet.
    let spooled = r.spool().read().unwrap().records;
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    let s = &spooled[0];
    assert_eq!(
        (s.rid.as_str(), s.operation.as_str()),
        ("p-busy", "payBill")
    );
    assert_eq!(s.substate(), "AGENT_BUSY");
    assert_eq!(s.bill_id.as_deref(), Some(bill(1).as_str()));
    assert_eq!((s.sum_kop, s.tips_kop), (Some(10_000), Some(1_000)));
    assert_eq!(s.request, busy, "the frame as it came");
    assert!(r.rows_of("p-busy").is_empty());
    // The next chance (here called directly; the keeper and every journal write call it).
    assert_eq!(r.ctx.journal.move_spool().unwrap(), 1);
    assert!(!r.spool().has_records());
    let rows = r.rows_of("p-busy");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_deref()),
        ("review", Some("AGENT_BUSY"))
    );
    assert!(
        rows[0].3.as_deref().unwrap().contains("FAIL AGENT_BUSY"),
        "{rows:?}"
    );
    assert_eq!(r.ctx.journal.move_spool().unwrap(), 0, "moved once");
    assert_eq!(r.ctx.capture.count_for("p-busy"), 1, "one callback");
    let _ = r.ctx.finish(waiting);
}

/// AGENT_BUSY told the cloud "not started, send it again": a re-send of that rID is computed
/// as a new request and journaled in the review row kept for it (one row per rID), not
/// answered from that row.
#[test]
fn a_re_send_of_a_payment_refused_before_it_started_is_journaled_in_its_row() {
    let r = rig_with(200, |c| c.limits.max_pending_bytes = 4000);
    add_bills(&r.mirror(), 2);
    let waiting = fill_admission(&r);
    let busy = pay("p-again", &bill(1), "100.00");
    assert_eq!(r.call(&busy)["substate"], "AGENT_BUSY");
    // Its spool record is moved by the first journal write: here the re-send's own.
    let _ = r.ctx.finish(waiting);
    assert!(r.spool().has_records());
    let v = r.call(&busy);
    // No POS runs: the payment is journaled and waits for it.
    assert_eq!(v["substate"], "POS_TIMEOUT", "{v}");
    assert!(!r.spool().has_records());
    let rows = r.rows_of("p-again");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_deref()),
        ("pending", None)
    );
    // The same rID once more: now a repeat, answered from the row.
    assert_eq!(r.call(&busy)["substate"], "POS_TIMEOUT");
    assert_eq!(r.rows_of("p-again").len(), 1);
    assert_eq!(r.ctx.capture.count_for("p-again"), 3);
}

/// During shutdown a payment admitted but not started, and one arriving later, are answered
/// FAIL AGENT_STOPPING; both are in the spool first and become `review` rows with that
/// sub-state.
#[test]
fn payments_refused_while_stopping_are_spooled_before_their_fail() {
    let r = rig(200);
    add_bills(&r.mirror(), 2);
    // Admitted; its task has not run when the agent starts stopping.
    r.ctx.submit(pay("p-queued", &bill(0), "100.00").as_bytes());
    r.ctx.stop();
    let queued = r.ctx.capture.last_for("p-queued").expect("answered").json();
    assert_eq!(queued["substate"], "AGENT_STOPPING", "{queued}");
    let late = r.call(&split("s-late"));
    assert_eq!(late["substate"], "AGENT_STOPPING", "{late}");
    let spooled = r.spool().read().unwrap().records;
    let got: Vec<_> = spooled
        .iter()
        .map(|s| (s.rid.as_str(), s.operation.as_str(), s.substate()))
        .collect();
    assert_eq!(
        got,
        [
            ("p-queued", "payBill", "AGENT_STOPPING"),
            ("s-late", "splitOrder", "AGENT_STOPPING")
        ]
    );
    assert_eq!(spooled[1].bill_id.as_deref(), Some(BILL2));
    assert!(r.rows().is_empty(), "nothing was journaled: {:?}", r.rows());
    assert_eq!(r.ctx.journal.move_spool().unwrap(), 2);
    for rid in ["p-queued", "s-late"] {
        let rows = r.rows_of(rid);
        assert_eq!(rows.len(), 1, "{rid}: {rows:?}");
        assert_eq!(
            (rows[0].1.as_str(), rows[0].2.as_deref()),
            ("review", Some("AGENT_STOPPING")),
            "{rid}"
        );
        assert_eq!(r.ctx.capture.count_for(rid), 1, "{rid}: one callback");
    }
    // The agent runs again and the cloud re-sends both (it was told to): each is computed as
    // new, in its row. No POS runs: they wait for it.
    let again = Stages::new((*r.ctx.cfg).clone());
    for (frame, rid) in [
        (pay("p-queued", &bill(0), "100.00"), "p-queued"),
        (split("s-late"), "s-late"),
    ] {
        let v = again.call(&frame);
        assert_eq!(v["substate"], "POS_TIMEOUT", "{rid}: {v}");
        let rows = r.rows_of(rid);
        assert_eq!(rows.len(), 1, "{rid}: {rows:?}");
        assert_eq!(rows[0].1, "pending", "{rid}");
    }
}

/// A frame that does not parse but names payBill and an rID is answered FAIL BAD_REQUEST; its
/// bytes are spooled first and become a `review` row with sub-state BAD_REQUEST, which
/// `journal` lists while spooled (text and JSON). An unreadable read operation is not spooled.
#[test]
fn an_unreadable_payment_is_spooled_before_its_bad_request_and_listed() {
    let r = rig(200);
    let broken = format!(
        r#"{{"rID":"p-broken","operation":"payBill","billId":"{BILL1}","sum":389.50,"tips":"#
    );
    let v = r.call(&broken);
    assert_eq!(
        (&v["state"], &v["substate"]),
        (&"FAIL".into(), &"BAD_REQUEST".into()),
        "{v}"
    );
    let g = r.call(r#"{"rID":"g-broken","operation":"getBill","tableNumber":"#);
    assert_eq!(g["substate"], "BAD_REQUEST", "{g}");
    let spooled = r.spool().read().unwrap().records;
    assert_eq!(spooled.len(), 1, "only the payment: {spooled:?}");
    let s = &spooled[0];
    assert_eq!(
        (s.rid.as_str(), s.operation.as_str(), s.substate()),
        ("p-broken", "payBill", "BAD_REQUEST")
    );
    assert_eq!(s.request, broken, "the bytes as they came");
    assert_eq!(s.bill_id.as_deref(), Some(BILL1), "sniffed from the frame");

    let cfg = binary::write_config(
        r.dir.path(),
        &format!(
            "resto_id = \"r\"\nstate_dir = \"{0}\"\n",
            r.dir.path().display()
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let out = binary::run_once(binary::command(&["journal", "--config", cfg]), b"", T);
    assert_eq!(
        out.code,
        Some(1),
        "a spooled request is open: {}",
        out.all()
    );
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("p-broken"))
        .unwrap_or_else(|| panic!("listed: {}", out.stdout));
    assert!(line.contains("FAIL BAD_REQUEST"), "{line}");
    let out = binary::run_once(
        binary::command(&["journal", "--config", cfg, "--json"]),
        b"",
        T,
    );
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["spooled"][0]["rid"], "p-broken", "{doc}");
    assert_eq!(doc["spooled"][0]["substate"], "BAD_REQUEST", "{doc}");

    assert_eq!(r.ctx.journal.move_spool().unwrap(), 1);
    let rows = r.rows_of("p-broken");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_deref()),
        ("review", Some("BAD_REQUEST"))
    );
    let request: String = r
        .journal()
        .query_row(
            "SELECT request FROM commands WHERE rid = 'p-broken'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(request, broken);
    assert!(r.rows_of("g-broken").is_empty());
    assert_eq!(r.ctx.capture.count_for("p-broken"), 1);
}

// ------------------------------------------------------------------ the real binary

fn agent_config(dir: &Path, journal_extra: &str) -> PathBuf {
    binary::write_config(
        dir,
        &format!(
            "resto_id = \"{RESTO_ID}\"\nstate_dir = \"{0}\"\nruntime_dir = \"{0}\"\n\
             [link]\nbackoff_floor_ms = 50\nbackoff_cap_ms = 200\n\
             [callback]\ndeadline_secs = 40\nretry_initial_ms = 20\nretry_max_ms = 200\n\
             [journal]\npos_ack_timeout_secs = 10\npoll_interval_ms = 5\n{journal_extra}",
            dir.display()
        ),
    )
}

fn spawn_agent(config: &Path, cloud: &FakeCloud, mirror: &Path) -> binary::Agent {
    let mut c = binary::command(&["run", "--config", config.to_str().unwrap()]);
    c.env("EXPIRENZA_SECRET_KEY", SECRET)
        .env("EXPIRENZA_WS_URL", cloud.ws_url())
        .env("EXPIRENZA_CALLBACK_URL", cloud.callback_url())
        .env("EXPIRENZA_MIRROR", mirror);
    binary::Agent::spawn(c)
}

async fn cloud() -> FakeCloud {
    FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO_ID.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .unwrap()
}

fn body(c: &testkit::Callback) -> Value {
    assert!(c.signature_ok);
    serde_json::from_slice(&c.body).unwrap()
}

/// A payment whose journal write meets a POS's lock held longer than the mirror's 2 s waits
/// for it, up to the journal's own `busy_timeout_ms` (20 s here), and is then applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pos_holding_the_lock_longer_than_two_seconds_delays_the_payment_not_fails_it() {
    let dir = TempDir::new("spool-lock-wait");
    let mirror = dir.path().join("mirror.sqlite");
    let journal = dir.path().join("journal.sqlite");
    make_mirror(&mirror, true);
    let cloud = cloud().await;
    let config = agent_config(dir.path(), "busy_timeout_ms = 20000\n");
    let agent = spawn_agent(&config, &cloud, &mirror);
    assert!(cloud.wait_connected(T).await.is_some());
    assert!(
        agent.wait_line("journal: ", T).is_some(),
        "the journal is open: {}",
        agent.stderr_so_far()
    );
    let lock = PosLock::take(&journal);
    assert!(cloud.send_text(&pay("p-slow", BILL1, "389.50")).await);
    // Event: the agent is waiting for the lock.
    assert!(
        agent
            .wait_line("the write lock is held by another connection", T)
            .is_some(),
        "{}",
        agent.stderr_so_far()
    );
    // The POS transaction goes on for longer than the old 2 s limit (this is the condition
    // under test, not a synchronisation).
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        cloud.all_callbacks().is_empty(),
        "no answer while the lock is held"
    );
    drop(lock);
    let _pos = sim_pos::spawn(&journal, &mirror, Duration::from_millis(5)).unwrap();
    let v = body(&cloud.callback_for("p-slow", T).await.expect("answered"));
    assert_eq!(v["state"], "SUCCESS", "{v}");
    let status: String = Connection::open(&journal)
        .unwrap()
        .query_row(
            "SELECT status FROM commands WHERE rid = 'p-slow'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "applied");
    assert!(!Spool::new(dir.path().join("journal.spool"), 1 << 20).has_records());
    let out = agent.stop(T);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// A spool left by an earlier run (records written through the spool's own API, as the agent
/// writes them) is moved into the journal when the real binary starts, with nothing sent to it:
/// each record one `review` row with its sub-state, and the spool emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_moves_the_spool_it_finds_at_start_without_a_request() {
    let dir = TempDir::new("spool-start");
    let mirror = dir.path().join("mirror.sqlite");
    let journal = dir.path().join("journal.sqlite");
    make_mirror(&mirror, true);
    let spool = Spool::new(dir.path().join("journal.spool"), 1 << 20);
    let record = |rid: &str, substate: Option<&str>| expirenza_agent::journal::spool::Record {
        rid: rid.into(),
        operation: "payBill".into(),
        bill_id: Some(BILL1.into()),
        external_id: None,
        sum_kop: Some(38_950),
        tips_kop: None,
        spooled_at: 1_700_000_000_000,
        error: "from an earlier run".into(),
        substate: substate.map(str::to_string),
        request: pay(rid, BILL1, "389.50"),
    };
    spool.append(&record("s-locked", None)).unwrap();
    spool.append(&record("s-busy", Some("AGENT_BUSY"))).unwrap();
    let cloud = cloud().await;
    let config = agent_config(dir.path(), "");
    let agent = spawn_agent(&config, &cloud, &mirror);
    assert!(
        agent
            .wait_line("2 spooled request(s) moved into the journal", T)
            .is_some(),
        "{}",
        agent.stderr_so_far()
    );
    assert!(!spool.has_records(), "emptied");
    let rows: Vec<(String, String, Option<String>, i64)> = Connection::open(&journal)
        .unwrap()
        .prepare("SELECT rid, status, substate, created_at FROM commands ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let want = |rid: &str, sub: &str| {
        (
            rid.to_string(),
            "review".to_string(),
            Some(sub.to_string()),
            1_700_000_000_000,
        )
    };
    assert_eq!(
        rows,
        [
            want("s-locked", "JOURNAL_UNAVAILABLE"),
            want("s-busy", "AGENT_BUSY")
        ]
    );
    assert!(
        cloud.all_callbacks().is_empty(),
        "nothing was sent or answered"
    );
    let out = agent.stop(T);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

fn bill(i: usize) -> String {
    format!("spool-bill-{i:02}")
}

fn add_bills(mirror: &Path, n: usize) {
    let c = Connection::open(mirror).unwrap();
    for i in 0..n {
        c.execute(
            "INSERT INTO orders (bill_id, order_number, table_id, state, created, raw_sum_kop, total_sum_kop) \
             VALUES (?1, ?2, 'table-1', 'BILL', '2024.05.14 18:21:07', 10000, 10000)",
            params![bill(i), 7000 + i as i64],
        )
        .unwrap();
        c.execute(
            "INSERT INTO order_positions (bill_id, position_id, line_no, name, count_milli, sum_kop) VALUES (?1, 'p-1', 1, 'Борщ', 1000, 10000)",
            params![bill(i)],
        )
        .unwrap();
    }
}

/// kill -9 of the agent in a burst of payments while the POS holds the journal's lock: each
/// request is spooled (and answered FAIL) or not yet; after the restart the spool is moved in
/// at start, the cloud re-sends what it got no answer for, and every rID has exactly one row,
/// one outcome, and no bill is paid twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_burst_under_a_pos_lock_loses_and_doubles_nothing() {
    const N: usize = 12;
    let dir = TempDir::new("spool-kill");
    let mirror = dir.path().join("mirror.sqlite");
    let journal = dir.path().join("journal.sqlite");
    make_mirror(&mirror, true);
    add_bills(&mirror, N);
    let cloud = cloud().await;
    let config = agent_config(dir.path(), "busy_timeout_ms = 300\n");
    let agent = spawn_agent(&config, &cloud, &mirror);
    assert!(cloud.wait_connected(T).await.is_some());
    assert!(agent.wait_line("journal: ", T).is_some());
    let lock = PosLock::take(&journal);
    let frames: BTreeMap<String, String> = (0..N)
        .map(|i| {
            let rid = format!("burst-{i:02}");
            (rid.clone(), pay(&rid, &bill(i), "100.00"))
        })
        .collect();
    for f in frames.values() {
        assert!(cloud.send_text(f).await);
    }
    // Kill once a third of the burst has been answered (each after its spool record).
    assert!(cloud.wait_callback_count(N / 3, T).await);
    let pid = agent.pid();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    drop(agent);
    assert!(cloud.wait_disconnected(T).await);
    let first: BTreeMap<String, Value> = cloud
        .all_callbacks()
        .iter()
        .map(|c| (c.rid.clone().unwrap(), body(c)))
        .collect();
    for (rid, v) in &first {
        assert_eq!(v["substate"], "JOURNAL_UNAVAILABLE", "{rid}: {v}");
    }
    let spool = Spool::new(dir.path().join("journal.spool"), 1 << 20);
    let spooled: Vec<String> = spool
        .read()
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.rid)
        .collect();
    for rid in first.keys() {
        assert!(
            spooled.contains(rid),
            "{rid} answered FAIL, so it is in the spool"
        );
    }
    drop(lock);

    // Restart: the spool is moved in at start; the cloud re-sends what got no answer.
    let _pos = sim_pos::spawn(&journal, &mirror, Duration::from_millis(5)).unwrap();
    let agent = spawn_agent(&config, &cloud, &mirror);
    assert!(cloud.wait_connected(T).await.is_some());
    for (rid, f) in &frames {
        if !first.contains_key(rid) {
            assert!(cloud.send_text(f).await);
        }
    }
    // And re-sends one that was answered, to check its answer is the same.
    let again = first.keys().next().unwrap().clone();
    assert!(cloud.send_text(&frames[&again]).await);
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for rid in frames
        .keys()
        .filter(|r| !first.contains_key(*r))
        .chain([&again])
    {
        let c = cloud
            .callback_for(rid, T)
            .await
            .unwrap_or_else(|| panic!("{rid} answered"));
        last.insert(rid.clone(), body(&c));
    }
    let out = agent.stop(T);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let j = Connection::open(&journal).unwrap();
    let m = Connection::open(&mirror).unwrap();
    for (i, rid) in frames.keys().enumerate() {
        let (n, status, sub): (i64, String, Option<String>) = j
            .query_row(
                "SELECT count(*), max(status), max(substate) FROM commands WHERE rid = ?1",
                params![rid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(n, 1, "{rid} journaled exactly once");
        let paid: i64 = m
            .query_row(
                "SELECT count(*) FROM pos_payments WHERE bill_id = ?1",
                params![bill(i)],
                |r| r.get(0),
            )
            .unwrap();
        let answer = last.get(rid).or(first.get(rid)).unwrap();
        if spooled.contains(rid) {
            // Spooled before the kill: a review row, never applied, the same FAIL every time.
            assert_eq!(
                (status.as_str(), sub.as_deref()),
                ("review", Some("JOURNAL_UNAVAILABLE")),
                "{rid}"
            );
            assert_eq!(paid, 0, "{rid}");
            assert_eq!(answer["substate"], "JOURNAL_UNAVAILABLE", "{rid}: {answer}");
        } else {
            // Not reached before the kill: journaled on the re-send and applied once.
            assert_eq!(status, "applied", "{rid}");
            assert_eq!(paid, 1, "{rid}");
            assert_eq!(answer["state"], "SUCCESS", "{rid}: {answer}");
        }
    }
    assert_eq!(
        (&last[&again]["state"], &last[&again]["substate"]),
        (&first[&again]["state"], &first[&again]["substate"]),
        "the re-send of an answered rID gets the same answer"
    );
    assert!(
        spool.read().unwrap().records.is_empty(),
        "the spool was moved in"
    );
    println!(
        "kill -9 under a POS lock: {N} payments, {} answered before the kill, {} spooled, {} journaled after the restart",
        first.len(),
        spooled.len(),
        N - spooled.len()
    );
}
