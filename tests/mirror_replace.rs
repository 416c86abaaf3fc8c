//! Replacing the mirror file by rename while connections to the old one are open
//! (docs/mirror.md, "Replacing the file"), on the mirror's pool directly: the old file's
//! write-ahead log is truncated before the new file is opened, an old log that cannot be
//! truncated is refused rather than read over the new file, and the agent lets go of a
//! replaced file without waiting for a request.

use std::path::{Path, PathBuf};

use expirenza_agent::mirror::{self, Mirror, MirrorError};
use rusqlite::Connection;

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("expirenza-replace-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn side(db: &Path, suffix: &str) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(suffix);
    p.into()
}

fn log_len(db: &Path) -> u64 {
    std::fs::metadata(side(db, "-wal"))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// A WAL-mode demo mirror with table 12's bill in `state`.
fn demo(path: &Path, state: &str) {
    let mut c = mirror::create_schema(path).unwrap();
    mirror::demo::fill(&mut c).unwrap();
    c.execute(
        "UPDATE orders SET state = ?1 WHERE table_id = 'table-12'",
        [state],
    )
    .unwrap();
}

/// The state of table 12's bill, read from the table's row and from the index, as getBill
/// finds open bills; a page of the old file's log read over the new file shows in either.
fn state_of_12(m: &Mirror) -> Result<String, MirrorError> {
    m.with(|c| {
        let row: String = c.query_row(
            "SELECT state || ' ' || COALESCE(waiter_name, '') FROM orders NOT INDEXED \
             WHERE table_id = 'table-12'",
            [],
            |r| r.get(0),
        )?;
        let indexed: String = c.query_row(
            "SELECT state FROM orders WHERE table_id = 'table-12' AND state IN ('NEW', 'BILL', 'PAYED')",
            [],
            |r| r.get(0),
        )?;
        let state = row.split(' ').next().unwrap_or_default().to_string();
        assert_eq!(state, indexed, "row {row:?}, index {indexed:?}");
        assert!(!row.contains("Стара"), "a page of the old file: {row:?}");
        Ok(state)
    })
}

/// The POS prints the pre-check of table 12's bill: its state moves from NEW to BILL (both
/// open), in the table and in the index on `(table_id, state)`.
const PRE_CHECK: &str =
    "UPDATE orders SET state = 'BILL', waiter_name = 'Стара зміна' WHERE table_id = 'table-12';";

/// The mirror in use, a commit by the POS left in its log, a new file (where the bill is
/// paid) renamed over it.
fn replaced(dir: &Dir) -> (PathBuf, Mirror) {
    let path = dir.0.join("mirror.sqlite");
    demo(&path, "NEW");
    let m = Mirror::new(&path, 300, 2);
    assert_eq!(state_of_12(&m).unwrap(), "NEW");
    Connection::open(&path)
        .unwrap()
        .execute_batch(PRE_CHECK)
        .unwrap();
    assert!(log_len(&path) > 32, "the commit is in the old file's log");
    let new = dir.0.join("mirror.new");
    demo(&new, "PAYED");
    assert!(!side(&new, "-wal").exists());
    std::fs::rename(&new, &path).unwrap();
    (path, m)
}

#[test]
fn the_old_log_is_truncated_before_the_new_file_is_opened() {
    let dir = Dir::new("truncate");
    let (path, m) = replaced(&dir);
    assert_eq!(state_of_12(&m).unwrap(), "PAYED");
    assert_eq!(log_len(&path), 0, "no page of the old file left to read");
    let other = Connection::open(&path).unwrap();
    let state: String = other
        .query_row(
            "SELECT state FROM orders WHERE table_id = 'table-12'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        state, "PAYED",
        "another reader opening the mirror reads the new file"
    );
}

#[test]
fn a_replaced_file_is_let_go_without_a_request() {
    let dir = Dir::new("release");
    let (path, m) = replaced(&dir);
    assert!(m.holds_replaced());
    assert!(m.release_if_replaced());
    assert!(!m.holds_replaced());
    assert!(!m.release_if_replaced(), "nothing left to let go");
    assert_eq!(log_len(&path), 0);
    // Another process opening the mirror now (`preview`, the POS): a connection of its own.
    let other =
        Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let state: String = other
        .query_row(
            "SELECT state FROM orders WHERE table_id = 'table-12'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(state, "PAYED");
    assert_eq!(state_of_12(&m).unwrap(), "PAYED");
}

#[test]
fn an_old_log_that_cannot_be_truncated_is_refused_not_read() {
    let dir = Dir::new("refuse");
    let path = dir.0.join("mirror.sqlite");
    demo(&path, "NEW");
    let m = Mirror::new(&path, 300, 2);
    assert_eq!(state_of_12(&m).unwrap(), "NEW");
    // Another reader of the old file holds a read transaction on the POS's last commit: the
    // old log cannot be checkpointed while it lasts.
    Connection::open(&path)
        .unwrap()
        .execute_batch(PRE_CHECK)
        .unwrap();
    let reader = Connection::open(&path).unwrap();
    reader
        .execute_batch("BEGIN; SELECT count(*) FROM orders;")
        .unwrap();
    let new = dir.0.join("mirror.new");
    demo(&new, "PAYED");
    std::fs::rename(&new, &path).unwrap();

    let e = state_of_12(&m).unwrap_err();
    assert!(matches!(e, MirrorError::StaleWal(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("mirror.sqlite-wal") && msg.contains("wal_checkpoint(TRUNCATE)"),
        "names the file and the fix: {msg}"
    );
    // Still refused while the log is there, whoever else closes.
    reader.execute_batch("COMMIT;").unwrap();
    drop(reader);
    assert!(matches!(state_of_12(&m), Err(MirrorError::StaleWal(_))));
    // The integrator removes the old file's log and index: the new file is read.
    std::fs::remove_file(side(&path, "-wal")).unwrap();
    let _ = std::fs::remove_file(side(&path, "-shm"));
    assert_eq!(state_of_12(&m).unwrap(), "PAYED");
}

#[test]
fn a_rollback_journal_mirror_renamed_over_needs_nothing() {
    let dir = Dir::new("rollback");
    let path = dir.0.join("mirror.sqlite");
    demo(&path, "BILL");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA journal_mode = DELETE;")
        .unwrap();
    let m = Mirror::new(&path, 300, 2);
    assert_eq!(state_of_12(&m).unwrap(), "BILL");
    let new = dir.0.join("mirror.new");
    demo(&new, "PAYED");
    Connection::open(&new)
        .unwrap()
        .execute_batch("PRAGMA journal_mode = DELETE;")
        .unwrap();
    std::fs::rename(&new, &path).unwrap();
    assert_eq!(state_of_12(&m).unwrap(), "PAYED");
    assert!(!side(&path, "-wal").exists());
}

/// The procedure of docs/mirror.md ("Replacing the file") for a job that renames: build and
/// close the new file, truncate the old file's log, rename. It holds even for a reader that
/// cannot truncate anything itself and keeps the old file open across the rename (a
/// read-only connection here): what opens the mirror next reads the new file.
#[test]
fn the_documented_rename_procedure_leaves_no_old_page_to_read() {
    let dir = Dir::new("procedure");
    let path = dir.0.join("mirror.sqlite");
    demo(&path, "NEW");
    let read_only = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let state = |c: &Connection| -> String {
        c.query_row(
            "SELECT state || ' ' || COALESCE(waiter_name, '') FROM orders NOT INDEXED \
             WHERE table_id = 'table-12'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let reader = Connection::open_with_flags(&path, read_only).unwrap();
    assert!(state(&reader).starts_with("NEW"));
    let pos = Connection::open(&path).unwrap();
    pos.execute_batch(PRE_CHECK).unwrap();
    // 1. the new file, built and closed
    let new = dir.0.join("mirror.new");
    demo(&new, "PAYED");
    assert!(!side(&new, "-wal").exists());
    // 2. the old file's log truncated, as the last thing before the rename
    let busy: i64 = pos
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0);
    drop(pos);
    assert_eq!(log_len(&path), 0);
    // 3. rename
    std::fs::rename(&new, &path).unwrap();
    drop(reader);
    let next = Connection::open_with_flags(&path, read_only).unwrap();
    assert_eq!(
        state(&next),
        "PAYED Оксана Мельник",
        "the new file, no page of the old"
    );
}
