//! Statements prepared and read through SQLite's C API, for the queries on getBill's path: a
//! bill's lines (many columns per answer), its head, discounts and table, and the read
//! transaction's `BEGIN` / `COMMIT`.
//!
//! rusqlite reads a column with four calls into SQLite (`sqlite3_column_count` for the bounds,
//! `_type`, `_text`, `_bytes`), each of which enters and leaves the statement's mutex, plus its
//! own checks around them. A 40-line bill has about 560 such columns, and in the getBill
//! profile that was a quarter of the agent's instructions. Here a column is one
//! `sqlite3_column_value`, after which the type, the text and its length are read off the value
//! itself (no mutex, no second lookup).
//!
//! The types and errors are rusqlite's: a column of the wrong type is
//! [`rusqlite::Error::InvalidColumnType`], text that is not UTF-8 is
//! [`rusqlite::Error::FromSqlConversionFailure`], and a failed step or prepare is
//! [`rusqlite::Error::SqliteFailure`] with SQLite's message, so `MirrorError::from` (busy, a
//! missing column) treats them exactly like rusqlite's.
//!
//! Ownership and lifetimes carry the rules SQLite states for these pointers:
//! - a [`RawConn`] owns a connection and every statement prepared on it, and finalizes the
//!   statements before the connection closes (its `Drop`). It is the only one of these types
//!   that can go to another thread, and it takes them all along: a statement is never used on
//!   one thread while its connection is used on another (the connections are opened with
//!   `SQLITE_OPEN_NO_MUTEX`, so nothing in SQLite would stop that);
//! - a statement is lent only for the length of [`RawConn::with`], as a [`RawStmt`] that
//!   borrows the `RawConn`: it can neither outlive its connection nor be moved out to another
//!   owner;
//! - a [`RawRow`] borrows its [`Query`] mutably, so no text read from a row outlives the next
//!   step;
//! - a [`Query`] resets its statement when dropped, whatever happened.
//!
//! What the `Drop` prevents: rusqlite 0.37 closes a connection, when it is dropped, with
//! `sqlite3_close` (not `sqlite3_close_v2`) and ignores the result. With a statement of ours
//! still unfinalized, `sqlite3_close` returns `SQLITE_BUSY` and leaves the connection open,
//! and nothing reports it: no panic, no abort, no log line. The connection (its memory, its
//! open files, its mapping of the `-shm`) is leaked for the life of the process, and
//! finalizing the statement later does not close it (`sqlite3_close_v2` would close it then);
//! if it was the file's last connection, the file's `-wal` is never checkpointed and removed.
//! `Connection::close` returns that `SQLITE_BUSY` as an error and gives the connection back
//! instead. The tests below show both.
//!
//! Only the mirror (`mirror/mod.rs`, `pool.rs`, `orders.rs`) uses this module; outside it a
//! reader sees a [`super::Conn`], which holds a shared borrow of a `RawConn` and can be neither
//! sent nor shared across threads, nor kept past the read it was handed for (its doc shows
//! what does not compile).

#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use rusqlite::types::Type;
use rusqlite::{ffi, Connection};

/// Statements one [`RawConn`] keeps prepared (the queries that use this module: getBill's
/// lines, order heads by table and by id, discounts, tables by number and by id, `BEGIN`,
/// `COMMIT`, `ROLLBACK` and `PRAGMA data_version`, with room for two more).
const MAX_STMTS: usize = 12;

/// A value bound to a statement's `?1`: text or an integer.
pub(crate) trait Param {
    /// Binds `self` to `?1` of `stmt`; SQLite's result code.
    fn bind(&self, stmt: &mut RawStmt<'_>) -> c_int;
}

impl Param for &str {
    fn bind(&self, stmt: &mut RawStmt<'_>) -> c_int {
        let Ok(len) = c_int::try_from(self.len()) else {
            return ffi::SQLITE_TOOBIG;
        };
        // SAFETY: a `RawStmt` lends a live statement; SQLITE_TRANSIENT makes SQLite copy the
        // bytes at once, so they need not outlive this call.
        unsafe {
            ffi::sqlite3_bind_text(
                stmt.p.ptr.as_ptr(),
                1,
                self.as_ptr().cast(),
                len,
                ffi::SQLITE_TRANSIENT(),
            )
        }
    }
}

impl Param for i64 {
    fn bind(&self, stmt: &mut RawStmt<'_>) -> c_int {
        // SAFETY: a `RawStmt` lends a live statement.
        unsafe { ffi::sqlite3_bind_int64(stmt.p.ptr.as_ptr(), 1, *self) }
    }
}

/// A connection and the statements kept prepared on it (at most [`MAX_STMTS`]), owned
/// together: the statements are finalized before the connection closes, and they go to
/// another thread only with it.
pub(crate) struct RawConn {
    /// Declared before `conn`, so dropped before it even without the explicit `Drop`.
    stmts: RefCell<Vec<Prepared>>,
    conn: Connection,
}

// SAFETY: SQLite allows a connection and its statements to be used from any thread, one
// thread at a time ("multi-thread" mode, SQLITE_OPEN_NO_MUTEX; rusqlite refuses to open a
// connection in single-thread mode). A `RawConn` holds the connection and every statement
// prepared on it (`Prepared` never leaves it but to be finalized: see `RawConn::with`), so
// moving it moves them all. It is not `Sync` (`RefCell`, and rusqlite's `Connection` is not),
// and everything that reaches a statement (`RawStmt`, `Query`, `RawRow`, `super::Conn`)
// borrows it, so while any of those exists it cannot move.
unsafe impl Send for RawConn {}

impl Drop for RawConn {
    fn drop(&mut self) {
        // Before `conn` closes: rusqlite closes with sqlite3_close, which a statement left
        // would turn into a silent leak of the connection (module doc).
        self.stmts.get_mut().clear();
    }
}

impl std::ops::Deref for RawConn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl RawConn {
    /// `conn`, with no statement kept yet.
    pub(crate) fn new(conn: Connection) -> RawConn {
        RawConn {
            stmts: RefCell::new(Vec::new()),
            conn,
        }
    }

    /// Runs `f` with the statement for `sql`, prepared the first time and kept for the next
    /// call. The statement is taken out of the list while `f` runs, so `f` may use this
    /// again (the same `sql` then gets a statement of its own).
    pub(crate) fn with<T, E: From<rusqlite::Error>>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut RawStmt<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let kept = {
            let mut list = self.stmts.borrow_mut();
            let at = list.iter().position(|s| s.sql == sql);
            at.map(|at| list.swap_remove(at))
        };
        // Lives on this frame while `f` runs, with `self` borrowed: if `f` panics, it is
        // finalized here, with its connection still open.
        let mut stmt = match kept {
            Some(s) => s,
            None => Prepared::prepare(&self.conn, sql)?,
        };
        let r = f(&mut RawStmt { p: &mut stmt });
        let mut list = self.stmts.borrow_mut();
        if list.len() < MAX_STMTS {
            list.push(stmt);
        }
        r
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.stmts.borrow().len()
    }
}

/// A statement prepared on one connection, finalized when dropped. Only a [`RawConn`] holds
/// one (in its list, or on the stack of [`RawConn::with`]); others reach it through a
/// [`RawStmt`].
struct Prepared {
    ptr: NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
    sql: &'static str,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from sqlite3_prepare_v3 and is finalized once, here. Its
        // connection is open and used by no other thread: a `Prepared` is dropped only by
        // its `RawConn` (before the connection closes) or in `RawConn::with` (which
        // borrows it).
        unsafe {
            ffi::sqlite3_finalize(self.ptr.as_ptr());
        }
    }
}

/// A kept statement, lent by [`RawConn::with`] for as long as it runs.
pub(crate) struct RawStmt<'c> {
    p: &'c mut Prepared,
}

/// SQLite's last error on `db` as rusqlite's error, so callers map it like any other.
fn failure(db: *mut ffi::sqlite3, code: c_int) -> rusqlite::Error {
    // SAFETY: `db` is an open connection; sqlite3_errmsg returns a NUL-terminated string that
    // stays valid until the next call on the connection, and it is copied at once.
    let msg = unsafe {
        let m = ffi::sqlite3_errmsg(db);
        (!m.is_null()).then(|| CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), msg)
}

impl Prepared {
    fn prepare(conn: &Connection, sql: &'static str) -> rusqlite::Result<Prepared> {
        // SAFETY: the handle is only used while `conn` is borrowed, and never closed here.
        let db = unsafe { conn.handle() };
        let len = c_int::try_from(sql.len()).map_err(|_| rusqlite::Error::InvalidQuery)?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `sql` is valid for `len` bytes; `stmt` receives the new statement or NULL.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(failure(db, rc));
        }
        let ptr = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        Ok(Prepared { ptr, db, sql })
    }
}

impl RawStmt<'_> {
    /// Runs the statement with `param` bound to `?1`.
    pub fn query(&mut self, param: impl Param) -> rusqlite::Result<Query<'_>> {
        let rc = param.bind(self);
        if rc != ffi::SQLITE_OK {
            return Err(failure(self.p.db, rc));
        }
        Ok(Query { stmt: self.p })
    }

    /// Runs a statement that takes no parameter.
    pub fn query_none(&mut self) -> rusqlite::Result<Query<'_>> {
        Ok(Query { stmt: self.p })
    }

    /// Runs a statement that takes no parameter and returns no row (`BEGIN`, `COMMIT`) to
    /// the end, and resets it.
    pub fn execute(&mut self) -> rusqlite::Result<()> {
        let mut q = self.query_none()?;
        while q.step()?.is_some() {}
        Ok(())
    }
}

/// A running query (a lending iterator: [`Query::step`]); the statement is reset when this is
/// dropped.
pub(crate) struct Query<'s> {
    stmt: &'s mut Prepared,
}

impl Drop for Query<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live. Reset ends its read and keeps it prepared; the error
        // it returns repeats the last step's, which `step` already gave.
        unsafe {
            ffi::sqlite3_reset(self.stmt.ptr.as_ptr());
            ffi::sqlite3_clear_bindings(self.stmt.ptr.as_ptr());
        }
    }
}

impl Query<'_> {
    /// The next row, or `None` after the last.
    pub fn step(&mut self) -> rusqlite::Result<Option<RawRow<'_>>> {
        // SAFETY: the statement is live and bound.
        match unsafe { ffi::sqlite3_step(self.stmt.ptr.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(Some(RawRow {
                stmt: self.stmt.ptr,
                sql: self.stmt.sql,
                _row: PhantomData,
            })),
            ffi::SQLITE_DONE => Ok(None),
            rc => Err(failure(self.stmt.db, rc)),
        }
    }
}

/// The current row. What it lends lives until the query steps again.
pub(crate) struct RawRow<'r> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    /// The statement's text, to name a column's table in an error.
    sql: &'static str,
    _row: PhantomData<&'r mut ()>,
}

impl<'r> RawRow<'r> {
    /// Column `i` as SQLite's value and its type (NULL past the last column).
    fn value(&self, i: usize) -> (*mut ffi::sqlite3_value, c_int) {
        let i = c_int::try_from(i).unwrap_or(c_int::MAX);
        // SAFETY: the statement has a current row. An index out of range gives a NULL value
        // (SQLite checks it). The value is "unprotected": it may be read only by the thread
        // that owns the connection, which is this one.
        unsafe {
            let v = ffi::sqlite3_column_value(self.stmt.as_ptr(), i);
            (v, ffi::sqlite3_value_type(v))
        }
    }

    fn wrong_type(&self, i: usize, t: c_int) -> rusqlite::Error {
        let ty = match t {
            ffi::SQLITE_INTEGER => Type::Integer,
            ffi::SQLITE_FLOAT => Type::Real,
            ffi::SQLITE_TEXT => Type::Text,
            ffi::SQLITE_BLOB => Type::Blob,
            _ => Type::Null,
        };
        let ci = c_int::try_from(i).unwrap_or(c_int::MAX);
        // SAFETY: the statement is live; the name (or NULL) is copied at once.
        let name = unsafe {
            let n = ffi::sqlite3_column_name(self.stmt.as_ptr(), ci);
            if n.is_null() {
                "?".to_owned()
            } else {
                CStr::from_ptr(n).to_string_lossy().into_owned()
            }
        };
        // `table.column` when the query reads one table (or names the column so itself):
        // `MirrorError` then explains the mistake with the contract (the fix for that column).
        let name = match crate::mirror::contract::table_of(self.sql, &name) {
            Some(table) if !name.contains('.') => format!("{table}.{name}"),
            _ => name,
        };
        rusqlite::Error::InvalidColumnType(i, name, ty)
    }

    /// A text column, borrowed: `None` for NULL, an error for any other type or for bytes
    /// that are not UTF-8 (as `rows::text_or_null`).
    pub fn text_or_null(&self, i: usize) -> rusqlite::Result<Option<&'r str>> {
        let (v, t) = self.value(i);
        match t {
            ffi::SQLITE_NULL => Ok(None),
            ffi::SQLITE_TEXT => {
                // SAFETY: `v` is this row's value. sqlite3_value_text is called before
                // sqlite3_value_bytes (the order SQLite documents), and the bytes stay valid
                // until the statement steps or resets, which the row's borrow of its query
                // rules out for `'r`.
                let bytes = unsafe {
                    let p = ffi::sqlite3_value_text(v);
                    let n = usize::try_from(ffi::sqlite3_value_bytes(v)).unwrap_or(0);
                    if p.is_null() {
                        // A text value with no bytes: SQLite could not allocate them.
                        return Err(rusqlite::Error::SqliteFailure(
                            ffi::Error::new(ffi::SQLITE_NOMEM),
                            None,
                        ));
                    }
                    std::slice::from_raw_parts(p, n)
                };
                std::str::from_utf8(bytes)
                    .map(Some)
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, e.into()))
            }
            t => Err(self.wrong_type(i, t)),
        }
    }

    /// A text column that must not be NULL.
    pub fn text(&self, i: usize) -> rusqlite::Result<&'r str> {
        match self.text_or_null(i)? {
            Some(s) => Ok(s),
            None => Err(self.wrong_type(i, ffi::SQLITE_NULL)),
        }
    }

    /// An integer column; NULL is `default`.
    pub fn int_or(&self, i: usize, default: i64) -> rusqlite::Result<i64> {
        Ok(self.int_or_null(i)?.unwrap_or(default))
    }

    /// An integer column that must not be NULL.
    pub fn int(&self, i: usize) -> rusqlite::Result<i64> {
        let (v, t) = self.value(i);
        match t {
            // SAFETY: `v` is this row's value, an integer.
            ffi::SQLITE_INTEGER => Ok(unsafe { ffi::sqlite3_value_int64(v) }),
            t => Err(self.wrong_type(i, t)),
        }
    }

    /// A flag column (an integer, non-zero is true, as rusqlite reads a `bool`); NULL is
    /// `default`.
    pub fn bool_or(&self, i: usize, default: bool) -> rusqlite::Result<bool> {
        Ok(match self.int_or_null(i)? {
            Some(n) => n != 0,
            None => default,
        })
    }

    /// An integer column; NULL is `None`.
    pub fn int_or_null(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        let (v, t) = self.value(i);
        match t {
            // SAFETY: `v` is this row's value, an integer.
            ffi::SQLITE_INTEGER => Ok(Some(unsafe { ffi::sqlite3_value_int64(v) })),
            ffi::SQLITE_NULL => Ok(None),
            t => Err(self.wrong_type(i, t)),
        }
    }
}

/// Fails to compile if one of the types implements the trait: with it, two impls of
/// `AmbiguousIf` would apply and the item could not be named.
macro_rules! assert_not {
    ($tr:path: $($t:ty),+) => {$(
        const _: fn() = || {
            trait AmbiguousIf<A> {
                fn item() {}
            }
            impl<T: ?Sized> AmbiguousIf<()> for T {}
            struct Implemented;
            impl<T: ?Sized + $tr> AmbiguousIf<Implemented> for T {}
            let _ = <$t as AmbiguousIf<_>>::item;
        };
    )+};
}

// The thread rules of the module doc, checked when the crate compiles: a `RawConn` goes to
// another thread whole, and nothing else here goes at all, nor is shared.
const _: () = {
    const fn send<T: Send>() {}
    send::<RawConn>();
};
assert_not!(Sync: RawConn, Prepared, RawStmt<'static>, Query<'static>, RawRow<'static>);
assert_not!(Send: Prepared, RawStmt<'static>, Query<'static>, RawRow<'static>);

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str = "SELECT a, b, c FROM t WHERE k = ?1 ORDER BY rowid";

    fn db() -> RawConn {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (k TEXT, a, b, c); \
             INSERT INTO t VALUES ('x', 'Борщ', NULL, 7), ('x', CAST(x'ff' AS TEXT), 2.5, ''), \
             ('y', 'other', 1, 2), ('x', x'41', 9223372036854775807, NULL);",
        )
        .unwrap();
        RawConn::new(c)
    }

    #[test]
    fn columns_read_like_rusqlite_and_fail_like_it() {
        let c = db();
        let r: rusqlite::Result<()> = c.with(SQL, |st| {
            let mut q = st.query("x")?;
            let r = q.step()?.expect("first row");
            assert_eq!(r.text(0)?, "Борщ");
            assert_eq!(r.text_or_null(1)?, None);
            assert!(r.text(1).is_err(), "NULL where text is required");
            assert_eq!(r.int(2)?, 7);
            assert_eq!(r.int_or(1, 9)?, 9);
            assert!(r.text(2).is_err(), "an integer is not text");
            assert!(r.int(1).is_err(), "NULL where an integer is required");
            assert!(r.text_or_null(99).unwrap().is_none(), "past the last column: NULL");
            let r = q.step()?.expect("second row");
            assert!(matches!(
                r.text(0),
                Err(rusqlite::Error::FromSqlConversionFailure(0, Type::Text, _))
            ));
            assert!(r.int_or(1, 0).is_err(), "a real is not an integer");
            assert_eq!(r.text_or_null(2)?, Some(""));
            assert!(r.int(2).is_err(), "text is not an integer");
            let r = q.step()?.expect("third row: 'y' is skipped");
            assert!(
                matches!(r.text(0), Err(rusqlite::Error::InvalidColumnType(0, ref n, Type::Blob)) if n == "a"),
                "a blob is not text, and the error names the column"
            );
            assert_eq!(r.int(1)?, i64::MAX);
            assert!(q.step()?.is_none());
            Ok(())
        });
        r.unwrap();
    }

    #[test]
    fn integer_parameters_flags_and_statements_without_parameters() {
        let c = db();
        let r: rusqlite::Result<()> = c.with("SELECT a, b, c FROM t WHERE c = ?1", |st| {
            let mut q = st.query(7i64)?;
            let r = q.step()?.expect("the row with c = 7");
            assert_eq!(r.text(0)?, "Борщ");
            assert!(r.bool_or(2, false)?, "7 is true");
            assert!(r.bool_or(1, true)?, "NULL is the default");
            assert!(!r.bool_or(1, false)?);
            assert_eq!(r.int_or_null(1)?, None);
            assert_eq!(r.int_or_null(2)?, Some(7));
            assert!(r.bool_or(0, false).is_err(), "text is not a flag");
            assert!(q.step()?.is_none());
            Ok(())
        });
        r.unwrap();
        let n: rusqlite::Result<i64> = c.with("SELECT count(*) FROM t", |st| {
            let mut q = st.query_none()?;
            let r = q.step()?.expect("one row");
            r.int(0)
        });
        assert_eq!(n.unwrap(), 4);
        let ran: rusqlite::Result<()> = c.with("BEGIN", |st| st.execute());
        ran.unwrap();
        assert!(!c.is_autocommit(), "BEGIN ran");
        let ran: rusqlite::Result<()> = c.with("COMMIT", |st| st.execute());
        ran.unwrap();
        assert!(c.is_autocommit(), "COMMIT ran");
    }

    #[test]
    fn a_kept_statement_is_reused_rebound_and_reset() {
        let c = db();
        let count = |k: &str| -> rusqlite::Result<usize> {
            c.with(SQL, |st| {
                let mut q = st.query(k)?;
                let mut n = 0;
                while q.step()?.is_some() {
                    n += 1;
                }
                Ok(n)
            })
        };
        assert_eq!(count("x").unwrap(), 3);
        assert_eq!(count("y").unwrap(), 1, "the new parameter, not the old one");
        assert_eq!(c.kept(), 1, "prepared once, kept");
        // A query dropped after its first row leaves the statement reset: the next run starts
        // from the first row again.
        let first = |k: &str| -> rusqlite::Result<String> {
            c.with(SQL, |st| {
                let mut q = st.query(k)?;
                let r = q.step()?.expect("a row");
                Ok(r.text(0)?.to_owned())
            })
        };
        assert_eq!(first("x").unwrap(), "Борщ");
        assert_eq!(first("x").unwrap(), "Борщ");
        // A writer may change the table between runs: a kept statement sees it.
        c.execute_batch("DELETE FROM t WHERE k = 'y'").unwrap();
        assert_eq!(count("y").unwrap(), 0);
    }

    #[test]
    fn errors_are_rusqlites_so_the_mirror_maps_them_the_same_way() {
        let c = db();
        let r: Result<(), crate::mirror::MirrorError> =
            c.with("SELECT nope FROM t WHERE k = ?1", |_| Ok(()));
        assert!(
            matches!(&r, Err(crate::mirror::MirrorError::Schema(m)) if m.contains("nope")),
            "{r:?}"
        );
        assert_eq!(c.kept(), 0, "nothing kept after a failed prepare");
    }

    #[test]
    fn at_most_max_stmts_are_kept() {
        let c = db();
        // A `RawConn` keeps `&'static str`s, as the queries in the code are.
        let sqls: Vec<&'static str> = (1..=MAX_STMTS + 2)
            .map(|n| &*Box::leak(format!("SELECT {n} WHERE ?1 IS NOT NULL").into_boxed_str()))
            .collect();
        for (n, sql) in sqls.iter().enumerate() {
            let got: rusqlite::Result<i64> = c.with(sql, |st| {
                let mut q = st.query("k")?;
                let r = q.step()?.expect("a row");
                r.int(0)
            });
            assert_eq!(got.unwrap(), n as i64 + 1);
        }
        assert_eq!(c.kept(), MAX_STMTS);
    }

    /// A database in WAL mode at a new path, written and closed; its `-wal` path.
    fn wal_file(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("raw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sqlite");
        let w = Connection::open(&path).unwrap();
        w.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (k); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(w);
        let wal = dir.join("m.sqlite-wal");
        assert!(
            !wal.exists(),
            "the last connection closed and removed its log"
        );
        (path, wal)
    }

    #[test]
    fn dropping_a_raw_conn_finalizes_its_statements_then_closes_the_connection() {
        let (path, wal) = wal_file("drop");
        let c = RawConn::new(Connection::open(&path).unwrap());
        let n: rusqlite::Result<i64> = c.with("SELECT count(*) FROM t", |st| {
            let mut q = st.query_none()?;
            let r = q.step()?.expect("a row");
            r.int(0)
        });
        assert_eq!(n.unwrap(), 1);
        assert_eq!(c.kept(), 1);
        assert!(wal.exists(), "a reader of a WAL database opens its log");
        drop(c);
        // SQLite removes the log when the last connection to the file closes: it did close.
        assert!(!wal.exists(), "the connection was left open");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// What the module doc says rusqlite 0.37 does with a connection whose statement is left
    /// (what `RawConn`'s `Drop` prevents): `close` refuses with SQLITE_BUSY; a drop leaves the
    /// connection open, silently, and finalizing the statement afterwards does not close it.
    #[test]
    fn rusqlite_leaves_a_connection_with_a_statement_left_open() {
        let conn = Connection::open_in_memory().unwrap();
        let st = Prepared::prepare(&conn, "SELECT 1").unwrap();
        let (conn, e) = conn.close().expect_err("a statement is left");
        assert_eq!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy)
        );
        drop(st);
        conn.close().unwrap();

        let (path, wal) = wal_file("leak");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("SELECT * FROM t").unwrap();
        assert!(wal.exists());
        let st = Prepared::prepare(&conn, "SELECT 1").unwrap();
        drop(conn); // no panic, no error
        assert!(wal.exists(), "the connection is still open");
        drop(st); // finalized on the leaked connection, which stays open
        assert!(wal.exists(), "the connection is still open");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
