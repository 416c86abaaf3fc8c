//! The local SQLite mirror of the POS, read and never written.
//!
//! The POS (or an integrator's sync job) owns the mirror file and keeps it current; the agent
//! only reads the tables and columns that `docs/mirror.md` names (`schema.sql` creates them for
//! a fresh mirror, `contract.rs` says how each column is read). Connections are opened lazily,
//! with a busy timeout and `query_only`, and kept in a small pool (`[mirror] max_connections`,
//! `pool.rs`), each with the statements prepared on it (`raw.rs`). A connection is dropped
//! instead of pooled after any error, and the file's identity (device, inode) is checked on
//! every checkout, so a mirror that is replaced or deleted while the agent runs is picked up
//! again once it is back; a replaced file is opened only after every connection to the old one
//! is closed and its log truncated (`pool.rs`).
//!
//! A missing or malformed mirror never stops the agent: the operations that need it answer FAIL
//! with a clear message, and `expirenza-agent check` names what is missing.

pub mod audit;
pub mod check;
pub mod contract;
pub mod demo;
pub mod orders;
mod pool;
pub(crate) mod raw;
pub mod rows;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use pool::Snapshot;
use pool::{Pool, Pooled, Slot};

pub const SCHEMA_SQL: &str = include_str!("schema.sql");

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("the POS mirror {0} does not exist")]
    Missing(PathBuf),
    #[error("the POS mirror is busy (locked by a writer for longer than {0} ms)")]
    Busy(u64),
    #[error("the POS mirror lacks {0} (see docs/mirror.md)")]
    Schema(String),
    #[error("the POS mirror cannot be read: {0}")]
    Sqlite(String),
    #[error("the mirror holds more than {0} rows for one answer ([limits] max_rows)")]
    TooManyRows(usize),
    /// A column holds a storage class its reader cannot take; the message names the table,
    /// the column and the fix (`contract::explain`).
    #[error("the POS mirror cannot be read: {0}")]
    WrongType(String),
    /// The same, from a query whose column names no table: a query reads each column either
    /// from the one table it names (see [`MirrorError::in_query`]) or under the alias
    /// `"table.column"`; this is left only for a column that does neither.
    #[error(
        "the POS mirror cannot be read: column '{column}' holds {}, which the agent cannot read \
         there (docs/mirror.md, Conventions)",
        contract::type_name(*.found).to_uppercase()
    )]
    Column {
        column: String,
        found: rusqlite::types::Type,
    },
    #[error(
        "the POS mirror file was replaced and a read of the old file did not end within {0} ms"
    )]
    Replaced(u64),
    #[error(
        "the POS mirror was replaced by rename, but the old file's write-ahead log {0} is still \
         beside it with pages SQLite would read over the new file; delete it (and the -shm \
         beside it) once no process has the mirror open, and before the next rename run \
         PRAGMA wal_checkpoint(TRUNCATE) on the old file (docs/mirror.md, \"Replacing the file\")"
    )]
    StaleWal(PathBuf),
}

impl MirrorError {
    /// Whether this is a wait the mirror could not finish without blocking (a writer's lock,
    /// a replaced file still being read): the dispatcher retries such a read on the blocking
    /// pool, where it may wait.
    pub fn is_wait(&self) -> bool {
        matches!(self, MirrorError::Busy(_) | MirrorError::Replaced(_))
    }

    /// `e`, from a query whose text is `sql`: a column of the wrong storage class is named
    /// with its table and the fix (rusqlite's own error names only the column). The table is
    /// the one contract table `sql` reads; a query that joins tables names each column's table
    /// in its alias instead (`"categories.name"`), which this keeps.
    pub fn in_query(sql: &str, e: rusqlite::Error) -> MirrorError {
        if let rusqlite::Error::InvalidColumnType(_, name, found) = &e {
            if let Some(msg) =
                contract::table_of(sql, name).and_then(|t| contract::explain(t, name, *found))
            {
                return MirrorError::WrongType(msg);
            }
        }
        e.into()
    }
}

impl From<rusqlite::Error> for MirrorError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            e if crate::sqlite_mem::is_busy(e) => MirrorError::Busy(0),
            rusqlite::Error::SqliteFailure(_, Some(msg))
                if msg.contains("no such table") || msg.contains("no such column") =>
            {
                MirrorError::Schema(msg.trim_start_matches("no such ").to_string())
            }
            // A column named `table.column`: by its alias in the query, or by `raw.rs` (which
            // knows the one table its query reads).
            rusqlite::Error::InvalidColumnType(_, name, found) => {
                match name
                    .split_once('.')
                    .and_then(|(t, c)| contract::explain(t, c, *found))
                {
                    Some(msg) => MirrorError::WrongType(msg),
                    None => MirrorError::Column {
                        column: name.clone(),
                        found: *found,
                    },
                }
            }
            _ => MirrorError::Sqlite(e.to_string()),
        }
    }
}

/// A mirror connection as the readers see it: the connection (through `Deref`) and the
/// statements kept prepared on it, both owned by one `raw::RawConn` (`mirror/raw.rs`) that
/// this borrows. [`Mirror::with`] hands one to a reader for the length of one read.
///
/// The statements and rows themselves are private to the crate; outside it, a kept statement
/// is reached only through a `Conn`, and a `Conn` stays with its connection: it cannot be used
/// on another thread (it is neither `Send` nor `Sync`), nor kept after the read it was handed
/// for (the pooled connection goes back to the pool then, where another thread may take it),
/// and a row's text cannot be kept past the next step. (Inside the crate, `raw.rs` checks at
/// compile time that only the owner of a connection and its statements can change threads.)
/// Another thread reads with a `Conn` of its own:
///
/// ```
/// use expirenza_agent::mirror::{orders, rows::Budget, Mirror, MirrorError};
///
/// fn read(m: &Mirror) -> Result<(), MirrorError> {
///     let here = m.with(|c| orders::table_by_number(c, "7"))?;
///     let there = std::thread::scope(|s| {
///         s.spawn(|| m.with(|c| orders::table_by_number(c, "7"))).join().unwrap()
///     })?;
///     assert_eq!(here, there);
///     let mut lines = Vec::new();
///     m.with(|c| {
///         orders::for_each_line(c, "b-1", &mut Budget::new(100), |l| {
///             lines.push(l.to_position())
///         })
///     })?;
///     Ok(())
/// }
/// # let dir = std::env::temp_dir().join(format!("mirror-conn-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let path = dir.join("mirror.sqlite");
/// # drop(expirenza_agent::mirror::create_schema(&path).unwrap());
/// # read(&Mirror::new(&path, 100, 2)).unwrap();
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// The same reads with the `Conn` moved away from its connection do not compile. On another
/// thread, while this one holds the connection (E0277: the connection and its statements
/// "cannot be shared between threads safely"):
///
/// ```compile_fail
/// # use expirenza_agent::mirror::{orders, Mirror, MirrorError};
/// fn read(m: &Mirror) -> Result<(), MirrorError> {
///     let there = m.with(|c| {
///         std::thread::scope(|s| s.spawn(|| orders::table_by_number(c, "7")).join().unwrap())
///     })?;
///     Ok(())
/// }
/// ```
///
/// Kept after the read, when the connection may be another thread's (E0521: borrowed data
/// escapes the closure):
///
/// ```compile_fail
/// # use expirenza_agent::mirror::{orders, Mirror, MirrorError};
/// fn read(m: &Mirror) -> Result<(), MirrorError> {
///     let mut kept = None;
///     m.with(|c| {
///         kept = Some(c);
///         Ok(())
///     })?;
///     let later = orders::table_by_number(kept.unwrap(), "7")?;
///     Ok(())
/// }
/// ```
///
/// A line borrowed from its row, kept past the next step (E0521):
///
/// ```compile_fail
/// # use expirenza_agent::mirror::{orders, rows::Budget, Mirror, MirrorError};
/// fn read(m: &Mirror) -> Result<(), MirrorError> {
///     let mut lines = Vec::new();
///     m.with(|c| {
///         orders::for_each_line(c, "b-1", &mut Budget::new(100), |l| lines.push(*l))
///     })?;
///     Ok(())
/// }
/// ```
pub struct Conn<'a> {
    raw: &'a raw::RawConn,
    /// The pooled connection's serial; `None` for any other.
    serial: Option<u64>,
}

/// Which data a read transaction sees, as far as one connection can tell: the connection's
/// serial number and its `PRAGMA data_version`. SQLite changes a connection's data version
/// whenever another connection (the POS, its sync job) commits to the file, its schema
/// included, so two reads on one connection with the same `Version` saw the same rows of the
/// same tables (a view's rows may still differ: see [`Mirror::keeps`]). Different
/// connections, or a connection to a replaced file (a new one, with a new serial), never
/// compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    serial: u64,
    data: i64,
}

impl Version {
    #[cfg(test)]
    pub(crate) fn for_test(serial: u64, data: i64) -> Version {
        Version { serial, data }
    }
}

/// Serial numbers of pooled connections.
static SERIALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl<'a> Conn<'a> {
    /// A reader over `raw`, which is not one of the pool's (no [`Version`]).
    #[cfg(test)]
    pub(crate) fn new(raw: &'a raw::RawConn) -> Conn<'a> {
        Conn { raw, serial: None }
    }

    /// Runs `f` with the statement for `sql`, kept prepared on this connection
    /// ([`raw::RawConn::with`]).
    pub(crate) fn with_stmt<T, E: From<rusqlite::Error>>(
        &self,
        sql: &'static str,
        f: impl FnOnce(&mut raw::RawStmt<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.raw.with(sql, f)
    }

    /// The [`Version`] of the data this read transaction sees, for caching what is computed
    /// from it (`crate::answers`). `None` off the mirror's pool (no serial to tell
    /// connections apart). Call it inside the transaction ([`Mirror::with`] runs in one).
    pub fn version(&self) -> Result<Option<Version>, MirrorError> {
        let Some(serial) = self.serial else {
            return Ok(None);
        };
        let data = self.with_stmt("PRAGMA data_version", |st| {
            let mut rows = st.query_none()?;
            match rows.step()? {
                Some(r) => r.int(0),
                None => Err(rusqlite::Error::QueryReturnedNoRows),
            }
        })?;
        Ok(Some(Version { serial, data }))
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.raw
    }
}

thread_local! {
    static NO_WAIT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static MET_LOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` with every mirror read on this thread refusing to wait for a lock: a locked mirror
/// gives [`MirrorError::Busy`] at once instead of after `busy_timeout_ms`. Also returns whether
/// any read in `f` met a lock (whatever `f` made of the error: operations turn mirror errors
/// into FAIL answers). The dispatcher computes short reads on its event-loop thread this way,
/// and gives a request that met a lock to the blocking pool, where it may wait
/// (docs/design.md, "inline reads").
pub fn no_wait<T>(f: impl FnOnce() -> T) -> (T, bool) {
    struct Reset(bool, bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            NO_WAIT.with(|c| c.set(self.0));
            MET_LOCK.with(|c| c.set(self.1));
        }
    }
    let reset = Reset(
        NO_WAIT.with(|c| c.replace(true)),
        MET_LOCK.with(|c| c.replace(false)),
    );
    let v = f();
    let met = MET_LOCK.with(|c| c.get());
    drop(reset);
    (v, met)
}

pub struct Mirror {
    path: PathBuf,
    busy_timeout: Duration,
    pool: Pool,
    /// [`Mirror::missing`]'s answers, by (file identity, schema version, needs list).
    missing: Mutex<Vec<(MissingKey, Vec<String>)>>,
    /// [`Mirror::keeps`]'s answers, by (connection serial, data version, needs list).
    keeps: Mutex<Vec<(MissingKey, bool)>>,
}

type MissingKey = ((u64, u64), i64, usize);
/// Distinct needs lists remembered by [`Mirror::missing`] (there are a handful).
const MISSING_CACHE: usize = 16;

impl Mirror {
    pub fn new(path: &Path, busy_timeout_ms: u64, max_connections: usize) -> Self {
        Mirror {
            path: path.to_path_buf(),
            busy_timeout: Duration::from_millis(busy_timeout_ms),
            pool: Pool::new(path, max_connections),
            missing: Mutex::new(Vec::new()),
            keeps: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ident(&self) -> Result<(u64, u64), MirrorError> {
        pool::ident_of(&self.path)
    }

    /// The busy timeout for a read on this thread now: none in [`no_wait`] mode.
    fn wait(&self) -> Duration {
        if NO_WAIT.with(|c| c.get()) {
            Duration::ZERO
        } else {
            self.busy_timeout
        }
    }

    /// Opens a connection to the file whose identity is `ident`. Read-write when the file
    /// allows it (SQLite falls back to read-only otherwise), so that a replaced file's log can
    /// be checkpointed away (`pool.rs`); `query_only` refuses every statement that would
    /// change the mirror.
    fn open(&self, ident: (u64, u64)) -> Result<Connection, MirrorError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.execute_batch("PRAGMA query_only = ON;")?;
        conn.busy_timeout(self.wait())?;
        // A reading connection still needs explicit memory bounds on a small board.
        crate::sqlite_mem::bound(&conn)?;
        // Renamed over between the check and the open: this is not the file the pool holds.
        if self.ident()? != ident {
            return Err(MirrorError::Replaced(0));
        }
        Ok(conn)
    }

    /// A connection of its own (not pooled) inside a read transaction: every query on it sees
    /// one snapshot of the mirror until it is dropped, so a body generated from it twice is
    /// the same twice (`body_stream`). A WAL reader blocks no writer; it only holds the
    /// checkpoint back to its snapshot while it lives.
    pub fn snapshot(&self) -> Result<Snapshot, MirrorError> {
        let ident = self.ident()?;
        let may_switch = !NO_WAIT.with(|c| c.get());
        self.pool.checkout(ident, self.wait(), may_switch, false)?;
        let opened = self.open(ident).and_then(|conn| {
            conn.execute_batch("BEGIN")?;
            Ok(conn)
        });
        match opened {
            Ok(conn) => Ok(self.pool.snapshot(conn)),
            Err(e) => {
                self.pool.release();
                Err(self.waited(e))
            }
        }
    }

    /// If the mirror file was replaced and no read of the old one is running, closes the
    /// connections to the old file now rather than at the next request (their log would stay
    /// beside the new file until then). The agent calls this every few seconds.
    pub fn release_if_replaced(&self) -> bool {
        self.pool.release_if_replaced()
    }

    /// Whether [`Mirror::release_if_replaced`] has anything to do (one `stat`, no wait).
    pub fn holds_replaced(&self) -> bool {
        self.pool.holds_replaced()
    }

    /// [`check::missing`] for `needs`, remembered until the mirror's schema changes
    /// (`PRAGMA schema_version`) or the file is replaced: checkWork asks on every request, and
    /// the answer is a handful of `pragma_table_info` queries that almost never change.
    pub fn missing(&self, needs: check::Needs) -> Result<Vec<String>, MirrorError> {
        let ident = self.ident()?;
        self.with(|c| {
            let version: i64 = c
                .prepare_cached("PRAGMA schema_version")?
                .query_row([], |r| r.get(0))?;
            let key = (ident, version, needs.as_ptr() as usize);
            {
                let cache = self.missing.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((_, m)) = cache.iter().find(|(k, _)| *k == key) {
                    return Ok(m.clone());
                }
            }
            let m = check::missing(c, needs)?;
            let mut cache = self.missing.lock().unwrap_or_else(|p| p.into_inner());
            cache.retain(|((id, v, _), _)| *id == ident && *v == version);
            if cache.len() >= MISSING_CACHE {
                cache.clear();
            }
            cache.push((key, m.clone()));
            Ok(m)
        })
    }

    /// Whether an answer computed from `needs` may be kept at `version` (`crate::answers`):
    /// only when every object it reads is a real table. A view may change what it shows
    /// without any commit (`datetime('now')`, `random()`), and SQLite's data version moves
    /// only on commits. Remembered per connection and data version (a schema change is a
    /// commit).
    pub fn keeps(
        &self,
        c: &Conn<'_>,
        version: Version,
        needs: check::Needs,
    ) -> Result<bool, MirrorError> {
        let key = ((version.serial, 0), version.data, needs.as_ptr() as usize);
        {
            let cache = self.keeps.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, k)) = cache.iter().find(|(k, _)| *k == key) {
                return Ok(*k);
            }
        }
        let keeps = check::not_kept(c, needs)?.is_none();
        let mut cache = self.keeps.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MISSING_CACHE {
            cache.clear();
        }
        cache.push((key, keeps));
        Ok(keeps)
    }

    /// Run `f` on a pooled connection, in a read transaction. Errors drop the connection.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Conn<'_>) -> Result<T, MirrorError>,
    ) -> Result<T, MirrorError> {
        let r = self.with_inner(f);
        if matches!(&r, Err(e) if e.is_wait()) {
            MET_LOCK.with(|c| c.set(true));
        }
        r
    }

    fn with_inner<T>(
        &self,
        f: impl FnOnce(&Conn<'_>) -> Result<T, MirrorError>,
    ) -> Result<T, MirrorError> {
        let ident = self.ident()?;
        let may_switch = !NO_WAIT.with(|c| c.get());
        let slot = self.pool.checkout(ident, self.wait(), may_switch, true)?;
        let pooled = match slot {
            Slot::Pooled(p) => Ok(p),
            Slot::Open => self.open(ident).map(|conn| Pooled {
                raw: raw::RawConn::new(conn),
                serial: SERIALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                busy: self.wait(),
            }),
        };
        let mut pooled = match pooled {
            Ok(p) => p,
            Err(e) => {
                self.pool.release();
                return Err(self.waited(e));
            }
        };
        let res = self.read_on(&mut pooled, f);
        if res.is_ok() {
            self.pool.put_back(pooled, ident);
        } else {
            drop(pooled);
            self.pool.release();
        }
        res
    }

    fn read_on<T>(
        &self,
        pooled: &mut Pooled,
        f: impl FnOnce(&Conn<'_>) -> Result<T, MirrorError>,
    ) -> Result<T, MirrorError> {
        let busy = self.wait();
        if pooled.busy != busy {
            pooled.raw.busy_timeout(busy)?;
            pooled.busy = busy;
        }
        // One read transaction for the whole answer: every query sees the same snapshot, and
        // the WAL read lock is taken once, not once per statement.
        let conn = Conn {
            raw: &pooled.raw,
            serial: Some(pooled.serial),
        };
        read_txn(&conn, f).map_err(|e| self.waited(e))
    }

    /// `e`, with the wait it gave when it is a lock held too long.
    fn waited(&self, e: MirrorError) -> MirrorError {
        match e {
            MirrorError::Busy(_) => MirrorError::Busy(self.wait().as_millis() as u64),
            e => e,
        }
    }
}

/// `f` inside `BEGIN … COMMIT` (a read transaction: the connection is query-only).
fn read_txn<T>(
    c: &Conn<'_>,
    f: impl FnOnce(&Conn<'_>) -> Result<T, MirrorError>,
) -> Result<T, MirrorError> {
    let run = |sql: &'static str| c.with_stmt(sql, |st| st.execute());
    run("BEGIN")?;
    let r = f(c);
    // Ending a read transaction cannot lose anything; after an error the connection is
    // dropped rather than pooled, which ends it too.
    let ended = run(if r.is_ok() { "COMMIT" } else { "ROLLBACK" });
    match (r, ended) {
        (Ok(v), Ok(_)) => Ok(v),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

/// Create the schema in a new (or existing) writable database: `init-mirror`. A new file is
/// group-writable (mode 0660, see `shared_file.rs`): the agent, in the group, writes its `-shm`.
pub fn create_schema(path: &Path) -> Result<Connection, MirrorError> {
    crate::shared_file::create(path)
        .map_err(|e| MirrorError::Sqlite(format!("creating {}: {e}", path.display())))?;
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA journal_mode = WAL;")?;
    conn.execute_batch(SCHEMA_SQL)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_remembered_until_the_schema_changes() {
        let dir = std::env::temp_dir().join(format!("mirror-missing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.sqlite");
        let w = Connection::open(&path).unwrap();
        w.execute_batch("CREATE TABLE t (a TEXT);").unwrap();
        let needs: check::Needs = &[("t", &["a", "b"]), ("u", &["x"])];
        let m = Mirror::new(&path, 100, 2);
        let first = m.missing(needs).unwrap();
        assert_eq!(first, vec!["column 't.b'", "table or view 'u'"]);
        assert_eq!(m.missing(needs).unwrap(), first, "asked again: the same");
        // Another writer changes the schema: the next answer sees it.
        w.execute_batch("ALTER TABLE t ADD COLUMN b INTEGER; CREATE TABLE u (x TEXT);")
            .unwrap();
        assert!(m.missing(needs).unwrap().is_empty());
        w.execute_batch("DROP TABLE u;").unwrap();
        assert_eq!(m.missing(needs).unwrap(), vec!["table or view 'u'"]);
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
