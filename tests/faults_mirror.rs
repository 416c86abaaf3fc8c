//! Mirror faults, end to end through the fake cloud: a POS writer holds an exclusive lock for
//! longer than the busy timeout, the mirror file is replaced (new file renamed over it) while
//! the agent runs, the file is deleted. Each gives a clear FAIL answer (substate
//! POS_UNAVAILABLE, message naming the cause), and the agent recovers when the mirror is back.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use serde_json::Value;
use testkit::FakeCloud;

const T: Duration = Duration::from_secs(8);

async fn ask(cloud: &FakeCloud, rid: &str, table: &str) -> Value {
    let cb = cloud
        .request(&get_bill(rid, table), rid, T)
        .await
        .unwrap_or_else(|| panic!("{rid}: no answer"));
    assert!(cb.signature_ok);
    json(&cb.body)
}

fn assert_unavailable(v: &Value, cause: &str) {
    assert_eq!(v["state"], "FAIL", "{v}");
    assert_eq!(v["substate"], "POS_UNAVAILABLE", "{v}");
    let msg = v["errorMessage"].as_str().unwrap_or_default();
    assert!(
        msg.contains(cause),
        "message {msg:?} does not name {cause:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_by_a_pos_writer_longer_than_the_busy_timeout() {
    let Setup {
        cloud,
        agent,
        mirror,
    } = setup("m-lock", T).await;
    assert_eq!(ask(&cloud, "warm", "12").await["state"], "SUCCESS");

    let writer = rusqlite::Connection::open(&mirror).unwrap();
    writer.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    // The answer comes while the writer still holds its lock (it commits only after): the
    // agent gave up after its busy timeout instead of waiting for the POS.
    let v = ask(&cloud, "locked", "12").await;
    assert!(!writer.is_autocommit(), "the lock is still held");
    assert_unavailable(&v, "busy");

    writer.execute_batch("COMMIT;").unwrap();
    drop(writer);
    assert_eq!(ask(&cloud, "unlocked", "12").await["state"], "SUCCESS");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_while_running_is_picked_up() {
    let Setup {
        cloud,
        agent,
        mirror,
    } = setup("m-replace", T).await;
    let v = ask(&cloud, "old", "99").await;
    assert_eq!(v["substate"], "TABLE_NOT_FOUND", "{v}");

    // The POS's sync job writes a new file and renames it over the old one (atomic replace).
    let tmp = mirror.with_extension("new");
    write_demo(&tmp);
    rusqlite::Connection::open(&tmp)
        .unwrap()
        .execute_batch(
            "INSERT INTO tables (id, number, name, hall_id) VALUES ('table-99', 99, 'Нова', 'hall-1');",
        )
        .unwrap();
    std::fs::rename(&tmp, &mirror).unwrap();

    let v = ask(&cloud, "new", "99").await;
    assert_eq!(v["state"], "FAIL", "{v}");
    assert_eq!(
        v["substate"], "ORDER_NOT_FOUND",
        "the new table exists in the replaced file: {v}"
    );
    assert_eq!(ask(&cloud, "still", "12").await["state"], "SUCCESS");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_then_restored() {
    let Setup {
        cloud,
        agent,
        mirror,
    } = setup("m-delete", T).await;
    assert_eq!(ask(&cloud, "before", "12").await["state"], "SUCCESS");
    std::fs::remove_file(&mirror).unwrap();
    let v = ask(&cloud, "gone", "12").await;
    assert_unavailable(&v, "does not exist");
    // Other operations that read the mirror say so too, and the link stays up.
    let cb = cloud
        .request(r#"{"rID":"cw","operation":"checkWork"}"#, "cw", T)
        .await
        .unwrap();
    assert_eq!(json(&cb.body)["readyToWork"], false);
    write_demo(&mirror);
    assert_eq!(ask(&cloud, "back", "12").await["state"], "SUCCESS");
    assert_eq!(cloud.connection_count(), 1, "the link never dropped");
    agent.stop().await;
}

/// The sequence a POS integrator ran with the advice "close every writer so SQLite removes
/// its -wal, then rename": while the agent serves a WAL-mode mirror, the POS commits (into the
/// `-wal`) and closes its writer; a new file, where table 12's bill is paid, is built, closed
/// and renamed over the mirror. The agent's own connection kept the old file's `-wal` beside
/// the mirror, and SQLite reads a `-wal` it finds there as the new file's: the paid bill was
/// still served as open. The agent must serve the new file, and leave no old log behind for
/// the next reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_over_a_wal_mirror_the_new_file_is_served() {
    let Setup {
        cloud,
        agent,
        mirror,
    } = setup("m-stale-wal", T).await;
    rusqlite::Connection::open(&mirror)
        .unwrap()
        .execute_batch(
            "PRAGMA journal_mode = WAL; UPDATE orders SET state = 'NEW' WHERE table_id = 'table-12';",
        )
        .unwrap();
    let v = ask(&cloud, "warm", "12").await;
    assert_eq!(v["orders"][0]["state"], "NEW", "{v}");
    // The POS prints the pre-check (NEW to BILL, both open) and closes its writer.
    {
        let pos = rusqlite::Connection::open(&mirror).unwrap();
        pos.execute_batch("UPDATE orders SET state = 'BILL' WHERE table_id = 'table-12';")
            .unwrap();
    }
    let wal = wal_path(&mirror);
    let old_log = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(
        old_log > 32,
        "the old file's log holds the commit ({old_log} bytes)"
    );

    let tmp = mirror.with_extension("new");
    write_demo(&tmp);
    rusqlite::Connection::open(&tmp)
        .unwrap()
        .execute_batch(
            "PRAGMA journal_mode = WAL; UPDATE orders SET state = 'PAYED' WHERE table_id = 'table-12';",
        )
        .unwrap();
    assert!(!wal_path(&tmp).exists(), "the new file was closed");
    std::fs::rename(&tmp, &mirror).unwrap();

    let v = ask(&cloud, "after", "12").await;
    assert_eq!(
        v["state"], "FAIL",
        "the paid bill was served from the old log: {v}"
    );
    assert_eq!(v["substate"], "ORDER_NOT_FOUND", "{v}");
    // A reader that opens the mirror now (`preview`, the POS) reads the new file too.
    let fresh = rusqlite::Connection::open(&mirror).unwrap();
    let state: String = fresh
        .query_row(
            "SELECT state FROM orders WHERE table_id = 'table-12'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "PAYED");
    assert_eq!(ask(&cloud, "again", "7").await["state"], "SUCCESS");
    agent.stop().await;
}

fn wal_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}
