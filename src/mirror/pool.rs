//! The mirror's connections: a small pool, tied to one file identity at a time, and the
//! hand-over when the file is replaced.
//!
//! SQLite finds a database's write-ahead log by its name (`mirror.sqlite-wal`) and its shared
//! index the same way (`-shm`). When a new file is renamed over the mirror while connections
//! to the old one are open, the old file's `-wal` and `-shm` stay under those names, and a
//! connection opened to the new file reads the old pages from them. Worse, in this process the
//! new connection would take the `-shm` for its own while the old ones still map it. So when
//! the agent sees a new file identity:
//!
//! 1. it opens nothing until every connection to the old file is closed: pooled ones at once,
//!    ones in use (a read, a menuInfo snapshot) when they come back. A read that would wait
//!    on the event loop is refused at once ([`MirrorError::Replaced`] counts as meeting a lock,
//!    so the dispatcher retries it on the blocking pool, where it waits up to the busy
//!    timeout);
//! 2. on one old connection it checkpoints the old log and truncates it
//!    (`PRAGMA wal_checkpoint(TRUNCATE)`; connections are opened read-write when the file
//!    allows it, and `query_only` keeps them from writing anything else), because SQLite does
//!    not checkpoint a database that was moved when its last connection closes;
//! 3. it closes the old connections; if the old log is still beside the mirror with pages in
//!    it (the agent may not write the file, or another process held the old file busy), the
//!    mirror is refused with [`MirrorError::StaleWal`], naming the file and the fix, rather
//!    than read wrong, until that log is gone.
//!
//! docs/mirror.md ("Replacing the file") gives the procedure that never needs step 3.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::{raw, MirrorError};

/// Size of a write-ahead log's header: a log of this size or less holds no page.
const WAL_HEADER_BYTES: u64 = 32;

/// A pooled connection and what it belongs to.
pub(super) struct Pooled {
    /// The connection, with the statements prepared on it through [`raw`].
    pub(super) raw: raw::RawConn,
    /// This connection's number, unique in the process ([`super::Conn::version`]).
    pub(super) serial: u64,
    /// The busy timeout this connection has now (it changes in [`super::no_wait`] mode).
    pub(super) busy: Duration,
}

/// A `-wal` file of a replaced mirror left beside the new one.
#[derive(Debug, Clone)]
struct StaleWal {
    path: PathBuf,
    ident: (u64, u64),
}

#[derive(Default)]
struct State {
    /// The file every open connection belongs to; `None` when none is open.
    ident: Option<(u64, u64)>,
    idle: Vec<Pooled>,
    /// Connections of `ident` in use: checked out of the pool, or snapshots.
    out: usize,
    /// A hand-over to a new file is running (outside the lock).
    switching: bool,
    /// Threads waiting in [`Pool::checkout`] for `changed`: a connection given back wakes
    /// them only when there are any (`notify_all` is a system call even with no waiter, and
    /// every read gives one back).
    waiting: usize,
    stale: Option<StaleWal>,
}

/// The pool's state, shared with the snapshots it hands out.
#[derive(Default)]
pub(super) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection of the current file is closed (or was never opened): let waiters look.
    fn give_back(&self) {
        let mut st = self.lock();
        st.out = st.out.saturating_sub(1);
        let waiters = st.waiting > 0;
        drop(st);
        if waiters {
            self.changed.notify_all();
        }
    }
}

/// What [`Pool::checkout`] hands out: a pooled connection, or the permission to open one.
pub(super) enum Slot {
    Pooled(Pooled),
    Open,
}

pub(super) struct Pool {
    path: PathBuf,
    max_idle: usize,
    shared: Arc<Shared>,
}

/// The identity (device, inode) of the file at `path`.
pub(super) fn ident_of(path: &Path) -> Result<(u64, u64), MirrorError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok((m.dev(), m.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(MirrorError::Missing(path.to_path_buf()))
        }
        Err(e) => Err(MirrorError::Sqlite(format!("{}: {e}", path.display()))),
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// The `-wal` beside `path`: its identity and size, if it exists.
fn wal_of(path: &Path) -> Option<((u64, u64), u64)> {
    let m = std::fs::metadata(wal_path(path)).ok()?;
    Some(((m.dev(), m.ino()), m.len()))
}

impl StaleWal {
    /// Still there, the same file, with pages in it.
    fn still_there(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) == self.ident && m.len() > WAL_HEADER_BYTES,
            Err(_) => false,
        }
    }
}

impl Pool {
    pub(super) fn new(path: &Path, max_idle: usize) -> Pool {
        Pool {
            path: path.to_path_buf(),
            max_idle,
            shared: Arc::new(Shared::default()),
        }
    }

    /// A connection slot for the file whose identity is `ident` (just read from the path). If
    /// the pool holds connections to another file, they are all closed first (module doc);
    /// waits at most `wait` for those in use (0: refuse at once).
    /// `may_switch`: this thread may do the hand-over (never the event loop: it checkpoints).
    /// `pooled`: an idle connection may be handed out (a snapshot wants one of its own).
    pub(super) fn checkout(
        &self,
        ident: (u64, u64),
        wait: Duration,
        may_switch: bool,
        pooled: bool,
    ) -> Result<Slot, MirrorError> {
        let deadline = Instant::now() + wait;
        let mut st = self.shared.lock();
        loop {
            if !st.switching && st.ident == Some(ident) {
                break;
            }
            if !st.switching && st.ident.is_none() && st.out == 0 {
                st.ident = Some(ident);
                break;
            }
            if !st.switching && st.out == 0 && may_switch {
                // Hand over: every connection to the old file is idle, none is in use.
                st.switching = true;
                let old = std::mem::take(&mut st.idle);
                drop(st);
                let stale = retire(&self.path, old);
                st = self.shared.lock();
                st.switching = false;
                st.ident = Some(ident);
                if stale.is_some() {
                    st.stale = stale;
                }
                self.shared.changed.notify_all();
                break;
            }
            // Connections to the old file are in use, or another thread hands over: wait.
            let now = Instant::now();
            if now >= deadline {
                return Err(MirrorError::Replaced(wait.as_millis() as u64));
            }
            st.waiting += 1;
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            st.waiting -= 1;
        }
        if let Some(stale) = &st.stale {
            if stale.still_there() {
                return Err(MirrorError::StaleWal(stale.path.clone()));
            }
            st.stale = None;
        }
        st.out += 1;
        let idle = if pooled { st.idle.pop() } else { None };
        Ok(match idle {
            Some(p) => Slot::Pooled(p),
            None => Slot::Open,
        })
    }

    /// Gives a connection back after a successful read: kept for the next one if the pool has
    /// room and the file is still the one it belongs to, else closed.
    pub(super) fn put_back(&self, p: Pooled, ident: (u64, u64)) {
        let mut st = self.shared.lock();
        let keep = st.ident == Some(ident) && st.idle.len() < self.max_idle;
        let closing = if keep {
            st.idle.push(p);
            None
        } else {
            Some(p)
        };
        drop(st);
        drop(closing);
        self.shared.give_back();
    }

    /// A checked-out slot came to nothing, or its connection was closed after an error.
    pub(super) fn release(&self) {
        self.shared.give_back();
    }

    /// The guard for a snapshot connection checked out of this pool.
    pub(super) fn snapshot(&self, conn: Connection) -> Snapshot {
        Snapshot {
            conn: Some(conn),
            shared: self.shared.clone(),
        }
    }

    /// Whether connections are open to a file that is no longer at the path (a cheap look:
    /// one `stat`).
    pub(super) fn holds_replaced(&self) -> bool {
        let Ok(now) = ident_of(&self.path) else {
            return false;
        };
        let st = self.shared.lock();
        st.ident.is_some() && st.ident != Some(now) && !st.switching
    }

    /// If the file was replaced and no connection to the old one is in use, closes the idle
    /// ones now (with the checkpoint of [`retire`]), so the old file's log does not stay
    /// beside the new one until the next request. Returns whether it did.
    pub(super) fn release_if_replaced(&self) -> bool {
        let Ok(now) = ident_of(&self.path) else {
            return false;
        };
        let mut st = self.shared.lock();
        if st.switching || st.out > 0 || st.ident.is_none() || st.ident == Some(now) {
            return false;
        }
        st.switching = true;
        let old = std::mem::take(&mut st.idle);
        drop(st);
        let stale = retire(&self.path, old);
        let mut st = self.shared.lock();
        st.switching = false;
        st.ident = None;
        if stale.is_some() {
            st.stale = stale;
        }
        drop(st);
        self.shared.changed.notify_all();
        true
    }
}

/// Closes the connections to a replaced file after truncating its write-ahead log through one
/// of them; returns the log if it is still beside the mirror with pages in it.
fn retire(path: &Path, old: Vec<Pooled>) -> Option<StaleWal> {
    let first = old.first()?;
    // While the old connections are open, the `-wal` under the mirror's name is theirs.
    let (wal_ident, wal_len) = wal_of(path)?;
    let in_wal = first
        .raw
        .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
        .is_ok_and(|m| m.eq_ignore_ascii_case("wal"));
    if !in_wal {
        // Not theirs: a rollback-journal file has no log (this one is a newer file's).
        return None;
    }
    if wal_len > WAL_HEADER_BYTES {
        let done = first
            .raw
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        match done {
            Ok(0) => {}
            Ok(_) => crate::log_warn!(
                "mirror {} was replaced; the old file's log could not be checkpointed (another \
                 process is reading the old file)",
                path.display()
            ),
            Err(e) => crate::log_warn!(
                "mirror {} was replaced; the old file's log could not be checkpointed: {e}",
                path.display()
            ),
        }
    }
    drop(old);
    let (now_ident, now_len) = wal_of(path)?;
    (now_ident == wal_ident && now_len > WAL_HEADER_BYTES).then(|| {
        let p = wal_path(path);
        crate::log_error!(
            "mirror {} was replaced, but the old file's log {} ({now_len} bytes) is still \
             beside it: not reading the mirror until it is gone (docs/mirror.md, \"Replacing \
             the file\")",
            path.display(),
            p.display()
        );
        StaleWal {
            path: p,
            ident: wal_ident,
        }
    })
}

/// A connection of its own in a read transaction (one snapshot of the mirror), counted by the
/// pool as a connection in use until it is dropped.
pub struct Snapshot {
    conn: Option<Connection>,
    shared: Arc<Shared>,
}

impl std::ops::Deref for Snapshot {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a snapshot's connection lives until it is dropped")
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // Closed first: a hand-over to a new file waits for this connection to be gone.
        drop(self.conn.take());
        self.shared.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection given back wakes a checkout that waits for the old file's connections (a
    /// give-back notifies only when someone waits): without the wake the checkout would sleep
    /// out its whole wait.
    #[test]
    fn a_checkout_waiting_for_the_old_file_wakes_when_its_connection_comes_back() {
        const WAIT: Duration = Duration::from_secs(20);
        let pool = Pool::new(Path::new("/nonexistent/mirror.sqlite"), 2);
        let (old, new) = ((1, 1), (1, 2));
        assert!(matches!(
            pool.checkout(old, Duration::ZERO, true, true),
            Ok(Slot::Open)
        ));
        // No one waits: giving a connection back and taking it again needs no wake.
        pool.release();
        assert!(matches!(
            pool.checkout(old, Duration::ZERO, true, true),
            Ok(Slot::Open)
        ));
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let t = Instant::now();
                (pool.checkout(new, WAIT, true, true), t.elapsed())
            });
            // Readiness: the other thread is inside the wait.
            let until = Instant::now() + WAIT;
            while pool.shared.lock().waiting == 0 {
                assert!(Instant::now() < until, "the checkout never started waiting");
                std::thread::yield_now();
            }
            pool.release();
            let (got, took) = waiter.join().unwrap();
            assert!(matches!(got, Ok(Slot::Open)), "woken and handed over");
            assert!(took < WAIT, "woken by the give-back, not by the timeout");
        });
        let st = pool.shared.lock();
        assert_eq!((st.waiting, st.out, st.ident), (0, 1, Some(new)));
    }
}
