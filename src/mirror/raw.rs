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
//! Lifetimes carry the rules SQLite states for these pointers:
//! - a [`RawStmt`] lives in a [`Stmts`], which its owner empties before it closes the
//!   connection (a connection with a statement left cannot close: rusqlite would abort, never
//!   read freed memory);
//! - a [`RawRow`] borrows its [`Query`] mutably, so no text read from a row outlives the next
//!   step;
//! - a [`Query`] resets its statement when dropped, whatever happened.

#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::ptr::NonNull;

use rusqlite::types::Type;
use rusqlite::{ffi, Connection};

/// Statements one [`Stmts`] keeps prepared (the queries that use this module: getBill's lines,
/// order heads by table and by id, discounts, tables by number and by id, `BEGIN`, `COMMIT`,
/// `ROLLBACK` and `PRAGMA data_version`, with room for two more).
const MAX_STMTS: usize = 12;

/// A value bound to a statement's `?1`: text or an integer.
pub trait Param {
    /// Binds `self` to `?1` of `stmt`; SQLite's result code.
    fn bind(&self, stmt: &mut RawStmt) -> c_int;
}

impl Param for &str {
    fn bind(&self, stmt: &mut RawStmt) -> c_int {
        let Ok(len) = c_int::try_from(self.len()) else {
            return ffi::SQLITE_TOOBIG;
        };
        // SAFETY: a `RawStmt` is a live statement; SQLITE_TRANSIENT makes SQLite copy the bytes
        // at once, so they need not outlive this call.
        unsafe {
            ffi::sqlite3_bind_text(
                stmt.ptr.as_ptr(),
                1,
                self.as_ptr().cast(),
                len,
                ffi::SQLITE_TRANSIENT(),
            )
        }
    }
}

impl Param for i64 {
    fn bind(&self, stmt: &mut RawStmt) -> c_int {
        // SAFETY: a `RawStmt` is a live statement.
        unsafe { ffi::sqlite3_bind_int64(stmt.ptr.as_ptr(), 1, *self) }
    }
}

/// A statement prepared on one connection, finalized when dropped.
pub struct RawStmt {
    ptr: NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
    sql: &'static str,
}

// SAFETY: the agent opens its connections with SQLITE_OPEN_NO_MUTEX ("multi-thread" mode):
// a connection and its statements may be used from any thread, one thread at a time. A
// `RawStmt` is only reachable through the `Stmts` kept beside its connection, and moves with it.
unsafe impl Send for RawStmt {}

impl Drop for RawStmt {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from sqlite3_prepare_v3 and is finalized once, here. Its
        // connection is still open: a connection with a statement left cannot close.
        unsafe {
            ffi::sqlite3_finalize(self.ptr.as_ptr());
        }
    }
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

impl RawStmt {
    fn prepare(conn: &Connection, sql: &'static str) -> rusqlite::Result<RawStmt> {
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
        Ok(RawStmt { ptr, db, sql })
    }

    /// Runs the statement with `param` bound to `?1`.
    pub fn query(&mut self, param: impl Param) -> rusqlite::Result<Query<'_>> {
        let rc = param.bind(self);
        if rc != ffi::SQLITE_OK {
            return Err(failure(self.db, rc));
        }
        Ok(Query { stmt: self })
    }

    /// Runs a statement that takes no parameter.
    pub fn query_none(&mut self) -> rusqlite::Result<Query<'_>> {
        Ok(Query { stmt: self })
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
pub struct Query<'s> {
    stmt: &'s mut RawStmt,
}

impl Drop for Query<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live. Reset ends its read and keeps it prepared; the error
        // it returns repeats the last step's, which `next` already gave.
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
pub struct RawRow<'r> {
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
        // `table.column` when the query names the table: `MirrorError` then explains the
        // mistake with the contract (the fix for that column).
        let name = match crate::mirror::contract::table_of(self.sql, &name) {
            Some(table) => format!("{table}.{name}"),
            None => name,
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

/// The statements kept prepared beside one connection (at most [`MAX_STMTS`]).
///
/// Whoever owns the connection must empty this ([`Stmts::clear`]) before closing it: the
/// mirror's pooled connection does so in its `Drop`.
#[derive(Default)]
pub struct Stmts {
    list: RefCell<Vec<RawStmt>>,
}

impl Stmts {
    /// Runs `f` with the statement for `sql` on `conn`, prepared the first time and kept for
    /// the next call. The statement is taken out while `f` runs, so `f` may use this again.
    pub fn with<T, E: From<rusqlite::Error>>(
        &self,
        conn: &Connection,
        sql: &'static str,
        f: impl FnOnce(&mut RawStmt) -> Result<T, E>,
    ) -> Result<T, E> {
        // SAFETY: the handle is only compared, never used.
        let db = unsafe { conn.handle() };
        let kept = {
            let mut list = self.list.borrow_mut();
            let at = list.iter().position(|s| s.db == db && s.sql == sql);
            at.map(|at| list.swap_remove(at))
        };
        let mut stmt = match kept {
            Some(s) => s,
            None => RawStmt::prepare(conn, sql)?,
        };
        let r = f(&mut stmt);
        let mut list = self.list.borrow_mut();
        if list.len() < MAX_STMTS {
            list.push(stmt);
        }
        r
    }

    /// Finalizes every statement kept.
    pub fn clear(&self) {
        self.list.borrow_mut().clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.borrow().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: &str = "SELECT a, b, c FROM t WHERE k = ?1 ORDER BY rowid";

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (k TEXT, a, b, c); \
             INSERT INTO t VALUES ('x', 'Борщ', NULL, 7), ('x', CAST(x'ff' AS TEXT), 2.5, ''), \
             ('y', 'other', 1, 2), ('x', x'41', 9223372036854775807, NULL);",
        )
        .unwrap();
        c
    }

    #[test]
    fn columns_read_like_rusqlite_and_fail_like_it() {
        let c = db();
        let stmts = Stmts::default();
        let r: rusqlite::Result<()> = stmts.with(&c, SQL, |st| {
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
        let stmts = Stmts::default();
        let r: rusqlite::Result<()> = stmts.with(&c, "SELECT a, b, c FROM t WHERE c = ?1", |st| {
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
        let n: rusqlite::Result<i64> = stmts.with(&c, "SELECT count(*) FROM t", |st| {
            let mut q = st.query_none()?;
            let r = q.step()?.expect("one row");
            r.int(0)
        });
        assert_eq!(n.unwrap(), 4);
        let ran: rusqlite::Result<()> = stmts.with(&c, "BEGIN", |st| st.execute());
        ran.unwrap();
        assert!(!c.is_autocommit(), "BEGIN ran");
        let ran: rusqlite::Result<()> = stmts.with(&c, "COMMIT", |st| st.execute());
        ran.unwrap();
        assert!(c.is_autocommit(), "COMMIT ran");
    }

    #[test]
    fn a_kept_statement_is_reused_rebound_and_reset() {
        let c = db();
        let stmts = Stmts::default();
        let count = |k: &str| -> rusqlite::Result<usize> {
            stmts.with(&c, SQL, |st| {
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
        assert_eq!(stmts.len(), 1, "prepared once, kept");
        // A query dropped after its first row leaves the statement reset: the next run starts
        // from the first row again.
        let first = |k: &str| -> rusqlite::Result<String> {
            stmts.with(&c, SQL, |st| {
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
        stmts.clear();
        assert_eq!(stmts.len(), 0);
    }

    #[test]
    fn errors_are_rusqlites_so_the_mirror_maps_them_the_same_way() {
        let c = db();
        let stmts = Stmts::default();
        let r: Result<(), crate::mirror::MirrorError> =
            stmts.with(&c, "SELECT nope FROM t WHERE k = ?1", |_| Ok(()));
        assert!(
            matches!(&r, Err(crate::mirror::MirrorError::Schema(m)) if m.contains("nope")),
            "{r:?}"
        );
        assert_eq!(stmts.len(), 0, "nothing kept after a failed prepare");
    }

    #[test]
    fn at_most_max_stmts_are_kept() {
        let c = db();
        let stmts = Stmts::default();
        // `Stmts` keeps `&'static str`s, as the queries in the code are.
        let sqls: Vec<&'static str> = (1..=MAX_STMTS + 2)
            .map(|n| &*Box::leak(format!("SELECT {n} WHERE ?1 IS NOT NULL").into_boxed_str()))
            .collect();
        for (n, sql) in sqls.iter().enumerate() {
            let got: rusqlite::Result<i64> = stmts.with(&c, sql, |st| {
                let mut q = st.query("k")?;
                let r = q.step()?.expect("a row");
                r.int(0)
            });
            assert_eq!(got.unwrap(), n as i64 + 1);
        }
        assert_eq!(stmts.len(), MAX_STMTS);
    }
}
