//! The bounded wait for the journal's write lock.
//!
//! The POS writes the same file (claims, acknowledgements), and a POS transaction may hold the
//! write lock for a while. A command waits for it at most `[journal] busy_timeout_ms`, counted
//! from the request's **arrival**, not from each attempt: the dispatcher sets that deadline
//! with [`until`] around the operation, so requests queued behind one waiting for the lock do
//! not add their waits up. Past the deadline the write fails with `JournalError::Busy` and the
//! operation spools the request (`spool.rs`).
//!
//! The wait is SQLite's busy handler, replaced here by one that sleeps until the deadline in
//! this thread's [`WaitUntil`] (the writer connection is used on one thread at a time) and
//! logs once a wait has lasted [`LOG_AFTER`], so a POS holding the lock shows in the log
//! (the brief collisions with its claims and acknowledgements do not).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::JournalError;

thread_local! {
    /// The deadline of the operation running on this thread ([`until`]).
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    /// When the busy handler gives up on this thread ([`WaitUntil`]).
    static WAIT_UNTIL: Cell<Option<Instant>> = const { Cell::new(None) };
    /// When the current wait began, and whether it was logged.
    static WAITING_SINCE: Cell<Option<(Instant, bool)>> = const { Cell::new(None) };
}

/// A wait for the lock this long is logged (once per wait).
pub const LOG_AFTER: Duration = Duration::from_secs(1);

/// Lock waits begun since the process started (the busy handler's first call for a statement).
static WAITS: AtomicU64 = AtomicU64::new(0);

/// Run `f` with journal writes giving up on the lock at `deadline`.
pub fn until<T>(deadline: Instant, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<Instant>);
    impl Drop for Reset {
        fn drop(&mut self) {
            DEADLINE.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(DEADLINE.with(|c| c.replace(Some(deadline))));
    f()
}

/// The deadline [`until`] set on this thread, if any.
pub fn deadline() -> Option<Instant> {
    DEADLINE.with(Cell::get)
}

/// How many times a journal write has found the lock held by another connection.
pub fn waits() -> u64 {
    WAITS.load(Ordering::Relaxed)
}

/// The busy handler's deadline for this thread while the guard lives.
pub struct WaitUntil(Option<Instant>);

impl WaitUntil {
    pub fn set(until: Instant) -> WaitUntil {
        WaitUntil(WAIT_UNTIL.with(|c| c.replace(Some(until))))
    }
}

impl Drop for WaitUntil {
    fn drop(&mut self) {
        WAIT_UNTIL.with(|c| c.set(self.0));
    }
}

/// Use [`busy`] as `conn`'s busy handler.
pub fn install(conn: &Connection) -> Result<(), JournalError> {
    conn.busy_handler(Some(busy))?;
    Ok(())
}

/// Sleeps between tries, as SQLite's own handler does (escalating, then 100 ms each).
const DELAYS_MS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];

/// SQLite calls this when the lock it needs is held; `n` is how often it did so for this
/// statement. `true`: try again. Outside a [`WaitUntil`] it does not wait.
fn busy(n: i32) -> bool {
    let Some(until) = WAIT_UNTIL.with(Cell::get) else {
        return false;
    };
    let now = Instant::now();
    if n == 0 {
        if now < until {
            WAITS.fetch_add(1, Ordering::Relaxed);
        }
        WAITING_SINCE.with(|c| c.set(Some((now, false))));
    }
    let (since, logged) = WAITING_SINCE.with(Cell::get).unwrap_or((now, false));
    if now >= until {
        if n > 0 {
            log_warn!(
                "journal: the write lock is still held by another connection after {} ms; \
                 gave up",
                now.duration_since(since).as_millis()
            );
        }
        return false;
    }
    if !logged && now.duration_since(since) >= LOG_AFTER {
        WAITING_SINCE.with(|c| c.set(Some((since, true))));
        log_info!(
            "journal: the write lock is held by another connection (a POS transaction?) for {} ms \
             already; waiting up to {} ms more",
            now.duration_since(since).as_millis(),
            (until - now).as_millis()
        );
    }
    let step = DELAYS_MS
        .get(usize::try_from(n).unwrap_or(usize::MAX))
        .copied()
        .unwrap_or(100);
    std::thread::sleep(Duration::from_millis(step).min(until - now));
    true
}
