//! The durable command journal: how POS-changing requests reach the POS.
//!
//! payBill, splitOrder, createOrderOnTable and showMessage are written as one row each into the
//! `commands` table of a separate SQLite file (`[journal] path`, default
//! `<state_dir>/journal.sqlite`), opened read-write in WAL mode with `synchronous=FULL`, and the
//! row is committed before anything else happens (before the answer, before waiting). The POS
//! opens the same file, claims pending rows, applies them and acknowledges (`docs/journal.md`).
//!
//! - `store.rs`: opening, the idempotent insert, lookups.
//! - `lock.rs`: the bounded wait for the journal's write lock (`[journal] busy_timeout_ms`,
//!   counted from the request's arrival).
//! - `spool.rs`: where a request goes when the journal still cannot take it, and how it is
//!   moved into the journal later, exactly once.
//! - `report.rs`: the `expirenza-agent journal` listing for end-of-shift reconciliation.
//!
//! The journal is opened lazily: if it cannot be opened at start the agent still runs its read
//! operations, money operations spool the request and answer FAIL `JOURNAL_UNAVAILABLE`, and
//! every later operation tries to open it again.
//!
//! Two connections: the writer (inserts, one user at a time through a gate whose wait ends at
//! the same deadline as the wait for the POS's lock) and a reader for lookups and counts, so a
//! look-up never queues behind a write waiting for a POS's lock (in WAL mode a reader does not
//! wait for a writer).

pub mod lock;
pub mod report;
pub mod spool;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::config::{AckMode, Config};

pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The `substate` of a `review` row kept for a second rID paying a bill that already has a live
/// payment (`dup_of` names it). The cloud is answered with that payment's outcome, never this.
pub const SUBSTATE_DUPLICATE: &str = "DUPLICATE_PAYMENT";
/// The `substate` of a `review` row moved in from the spool when its record names none (the
/// journal could not take it): the cloud was answered FAIL with it.
pub const SUBSTATE_SPOOLED: &str = "JOURNAL_UNAVAILABLE";
/// The sub-states of requests the agent refused before starting them (the cloud was told "send
/// it again"). Their spooled records become `review` rows like any other, but a later request
/// with the same rID is computed as new and takes the row over (`store::insert`).
pub const SUBSTATES_NOT_STARTED: &[&str] = &["AGENT_BUSY", "AGENT_STOPPING"];

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal {path} cannot be opened: {message}")]
    Open { path: PathBuf, message: String },
    #[error("the journal cannot be written: {0}")]
    Sqlite(String),
    #[error("journal command #{0} vanished")]
    Missing(i64),
    #[error("the journal is locked by another connection (a POS transaction?)")]
    Busy,
}

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> Self {
        if crate::sqlite_mem::is_busy(&e) {
            JournalError::Busy
        } else {
            JournalError::Sqlite(e.to_string())
        }
    }
}

/// The life of a command. See docs/journal.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Journaled; the POS has not taken it yet.
    Pending,
    /// The POS took it and is applying it.
    Claimed,
    /// The POS applied it (final).
    Applied,
    /// The POS refused it (final); `substate`/`reason` say why.
    Rejected,
    /// Kept for reconciliation by staff and NOT applied automatically (final for the agent):
    /// a payment for an unknown or closed bill, with the wrong sum, a repeat payment, or one
    /// spooled before its FAIL. One refused before it started ([`Command::refused_unstarted`])
    /// becomes the row of a re-send of its rID.
    Review,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Claimed => "claimed",
            Status::Applied => "applied",
            Status::Rejected => "rejected",
            Status::Review => "review",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "claimed" => Status::Claimed,
            "applied" => Status::Applied,
            "rejected" => Status::Rejected,
            "review" => Status::Review,
            _ => return None,
        })
    }
    /// Applied, rejected or review: the POS will not change it any more.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Pending | Status::Claimed)
    }
}

/// One journal row (without the request text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub id: i64,
    pub rid: String,
    pub operation: String,
    pub bill_id: Option<String>,
    pub external_id: Option<String>,
    pub sum_kop: Option<i64>,
    pub tips_kop: Option<i64>,
    pub status: Status,
    pub substate: Option<String>,
    pub reason: Option<String>,
    pub result: Option<String>,
    pub dup_of: Option<i64>,
    pub created_at: i64,
    pub claimed_at: Option<i64>,
    pub applied_at: Option<i64>,
}

/// What the POS wrote into `result` (all optional; unknown fields are ignored).
#[derive(Debug, Default, serde::Deserialize)]
pub struct PosResult {
    #[serde(rename = "newBillId")]
    pub new_bill_id: Option<heapless::String<128>>,
    #[serde(rename = "orderId")]
    pub order_id: Option<heapless::String<128>>,
    #[serde(rename = "billId")]
    pub bill_id: Option<heapless::String<128>>,
    pub substate: Option<heapless::String<64>>,
    pub message: Option<heapless::String<512>>,
}

impl Command {
    /// A `review` row for a request refused before it started ([`SUBSTATES_NOT_STARTED`]):
    /// a re-send of its rID is computed as a new request, in this row.
    pub fn refused_unstarted(&self) -> bool {
        self.status == Status::Review
            && self
                .substate
                .as_deref()
                .is_some_and(|s| SUBSTATES_NOT_STARTED.contains(&s))
    }

    /// The POS's `result`, parsed; a malformed result reads as empty (and is logged).
    pub fn pos_result(&self) -> PosResult {
        let Some(text) = self.result.as_deref().filter(|t| !t.trim().is_empty()) else {
            return PosResult::default();
        };
        match crate::request::parse_fields::<PosResult>(text.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                log_warn!(
                    "journal: command #{} rID={} has a malformed result ({e}); ignored",
                    self.id,
                    self.rid
                );
                PosResult::default()
            }
        }
    }
}

/// How a request met the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Journaled {
    /// A new row was committed.
    New(Command),
    /// This rID was journaled before: the stored row (answer its outcome).
    SameRid(Command),
    /// The same bill (payBill) or externalId (createOrderOnTable) is already live: the live row,
    /// whose outcome is the answer. `recorded` is the review row kept for a repeat payment.
    SameKey {
        live: Command,
        recorded: Option<Box<Command>>,
    },
}

impl Journaled {
    /// The row whose outcome answers this request.
    pub fn command(&self) -> &Command {
        match self {
            Journaled::New(c) | Journaled::SameRid(c) => c,
            Journaled::SameKey { live, .. } => live,
        }
    }
    pub fn is_new(&self) -> bool {
        matches!(self, Journaled::New(_))
    }
}

/// The journal handle shared by all operations: one read-write connection behind a mutex
/// (every critical section is one short statement or transaction).
pub struct Journal {
    path: PathBuf,
    /// `[journal] busy_timeout_ms`: the longest wait for the write lock.
    pub busy_timeout: Duration,
    /// `[journal] pos_ack_timeout_secs`: the longest wait for the POS's acknowledgement.
    pub ack_timeout: Duration,
    /// `[journal] poll_interval_ms`: how often that wait reads the row.
    pub poll_interval: Duration,
    pub ack_mode: AckMode,
    conn: Mutex<Option<Connection>>,
    /// Who may use `conn` now: waiting for it is bounded ([`Gate::enter`]).
    gate: Gate,
    /// Query only: look-ups and counts ([`Journal::read`]), never behind a write waiting for a
    /// lock, and the dispatcher's poll for the POS's acknowledgement, which reads one row
    /// through it on the event loop without waiting ([`Journal::peek`]).
    reader: Mutex<Option<Connection>>,
    /// Requests the journal could not take, until they are moved into it.
    pub spool: spool::Spool,
}

impl Journal {
    /// A lazily opened journal per `cfg`; tries to open it now and logs if it cannot.
    pub fn new(cfg: &Config) -> Journal {
        let j = Journal {
            path: cfg.journal_path(),
            busy_timeout: cfg
                .journal_busy_timeout()
                .max(Duration::from_millis(crate::config::MIN_JOURNAL_BUSY_MS)),
            ack_timeout: Duration::from_secs(cfg.journal.pos_ack_timeout_secs),
            poll_interval: Duration::from_millis(cfg.journal.poll_interval_ms),
            ack_mode: cfg.journal.ack_mode,
            conn: Mutex::new(None),
            gate: Gate::default(),
            reader: Mutex::new(None),
            spool: spool::Spool::new(cfg.spool_path(), cfg.journal.max_spool_bytes),
        };
        match j.with(|_| Ok(())) {
            Ok(()) => match j.pending_count() {
                Ok(0) => log_info!("journal: {} open", j.path.display()),
                Ok(n) => log_warn!(
                    "journal: {} open; {n} command(s) still pending or claimed by the POS",
                    j.path.display()
                ),
                Err(e) => log_error!("journal: {e}"),
            },
            Err(e) => {
                log_error!("journal: {e}; money operations will answer FAIL until it can be opened")
            }
        }
        j
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the writer connection, opening it first if needed. A wait for the write lock
    /// ends at the deadline [`lock::until`] set (the dispatcher: the request's arrival plus
    /// `busy_timeout_ms`), else `busy_timeout_ms` from now. An error other than a held lock
    /// drops the connection so the next call reopens it.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let until = lock::deadline().unwrap_or_else(|| Instant::now() + self.busy_timeout);
        // Another write holds the connection (waiting for the POS's lock, most likely): wait
        // for it until the same deadline.
        let _turn = self.gate.enter(until).ok_or(JournalError::Busy)?;
        let guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.with_writer(guard, until, f)
    }

    /// [`Journal::with`] if the writer connection is free right now and the write lock can be
    /// had without waiting; `None` when the connection is in use.
    pub fn try_with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, JournalError>,
    ) -> Option<Result<T, JournalError>> {
        let _turn = self.gate.enter(Instant::now())?;
        let guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Some(self.with_writer(guard, Instant::now(), f))
    }

    fn with_writer<T>(
        &self,
        mut guard: std::sync::MutexGuard<'_, Option<Connection>>,
        until: Instant,
        f: impl FnOnce(&mut Connection) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let _waits = lock::WaitUntil::set(until);
        if guard.is_none() {
            let c = store::open(&self.path, self.busy_timeout)?;
            lock::install(&c)?;
            *guard = Some(c);
        }
        let res = f(guard.as_mut().expect("opened above"));
        // A lock held by the POS says nothing against the connection; any other error drops it.
        if matches!(&res, Err(e) if !matches!(e, JournalError::Busy)) {
            *guard = None;
        }
        res
    }

    /// Run `f` on the reader connection (query only). Before the journal exists (the writer
    /// creates it), or when the reader cannot be opened, `f` runs on the writer instead.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            match store::open_reader(&self.path, self.busy_timeout) {
                Ok(c) => *guard = Some(c),
                Err(_) => {
                    drop(guard);
                    return self.with(|c| f(c));
                }
            }
        }
        let res = f(guard.as_ref().expect("opened above"));
        if res.is_err() {
            *guard = None;
        }
        res
    }

    /// Command `id` as it is now, read without waiting: `None` when it cannot be read at once
    /// (the reader is in use, the journal is locked, or an error, which drops the connection):
    /// the caller then reads it with [`Journal::get`] on the blocking pool. A primary-key read
    /// in WAL mode waits for no writer, so this is the common case.
    pub fn peek(&self, id: i64) -> Option<Command> {
        let mut guard = self.reader.try_lock().ok()?;
        if guard.is_none() {
            *guard = Some(store::open_reader(&self.path, self.busy_timeout).ok()?);
        }
        let c = guard.as_ref()?;
        c.busy_timeout(Duration::ZERO).ok()?;
        let r = store::by_id(c, id);
        let _ = c.busy_timeout(self.busy_timeout);
        match r {
            Ok(Some(cmd)) => Some(cmd),
            // Locked right now (a checkpoint, a recovery): keep the connection, ask the pool.
            Err(JournalError::Busy) => None,
            _ => {
                *guard = None;
                None
            }
        }
    }

    /// Commands the POS has not finished (pending or claimed): for the status board.
    pub fn pending_count(&self) -> Result<u64, JournalError> {
        self.read(store::pending_count)
    }

    /// Open commands by status, for the metrics file.
    pub fn open_by_status(&self) -> Result<Vec<(&'static str, u64)>, JournalError> {
        self.read(store::open_by_status)
    }
}

/// One user of the writer connection at a time, the others waiting at most until a deadline
/// (a `Mutex` alone cannot bound its wait).
#[derive(Default)]
struct Gate {
    taken: Mutex<bool>,
    freed: Condvar,
}

/// A turn at the writer connection; the next waiter goes on when it is dropped.
struct Turn<'a>(&'a Gate);

impl Gate {
    /// Wait for the connection until `until`; `None` if it is still in use then.
    fn enter(&self, until: Instant) -> Option<Turn<'_>> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        while *taken {
            let left = until.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            taken = self
                .freed
                .wait_timeout(taken, left)
                .map_or_else(|p| p.into_inner().0, |r| r.0);
        }
        *taken = true;
        Some(Turn(self))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.taken.lock().unwrap_or_else(|p| p.into_inner()) = false;
        self.0.freed.notify_one();
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let (s, ns) = crate::clock::unix_now();
    s.saturating_mul(1000)
        .saturating_add(i64::from(ns / 1_000_000))
}

#[cfg(test)]
mod gate_tests {
    use super::*;

    #[test]
    fn a_turn_is_waited_for_until_the_deadline_only() {
        let g = Gate::default();
        let first = g.enter(Instant::now()).expect("free");
        // Taken: a wait that ends now, or soon, ends without a turn.
        assert!(g.enter(Instant::now()).is_none());
        assert!(g
            .enter(Instant::now() + Duration::from_millis(20))
            .is_none());
        // Given back while another waits: that one gets it.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| g.enter(Instant::now() + Duration::from_secs(30)).is_some());
            drop(first);
            assert!(waiter.join().unwrap());
        });
        assert!(g.enter(Instant::now()).is_some(), "free again");
    }
}

#[cfg(test)]
mod peek_tests {
    use super::store::{Dedup, NewCommand};
    use super::*;

    /// The dispatcher's non-waiting poll sees what `get` sees, including the POS's changes.
    #[test]
    fn peek_reads_what_get_reads_and_sees_the_pos_changes() {
        let tmp = crate::test_util::TempDir::new("journal-peek");
        let dir = tmp.path();
        let cfg = crate::test_util::offline_config(dir);
        let j = Journal::new(&cfg);
        let new = NewCommand {
            rid: "p-1",
            operation: "payBill",
            bill_id: Some("b-1"),
            external_id: None,
            request: "{}",
            sum_kop: Some(100),
            tips_kop: None,
            review: None,
            dedup: Dedup::Bill,
        };
        let id = j.insert(&new).unwrap().command().id;
        let peeked = j.peek(id).expect("readable at once");
        assert_eq!(peeked.status, Status::Pending);
        assert_eq!(peeked.rid, j.get(id).unwrap().rid);
        assert!(j.peek(id + 1000).is_none(), "no such command");
        // A status change by the POS (another connection) is seen by the next peek.
        let w = rusqlite::Connection::open(j.path()).unwrap();
        w.execute("UPDATE commands SET status = 'claimed' WHERE id = ?1", [id])
            .unwrap();
        assert_eq!(j.peek(id).map(|c| c.status), Some(Status::Claimed));
    }
}
