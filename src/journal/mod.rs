//! The durable command journal: how POS-changing requests reach the POS.
//!
//! payBill, splitOrder, createOrderOnTable and showMessage are written as one row each into the
//! `commands` table of a separate SQLite file (`[journal] path`, default
//! `<state_dir>/journal.sqlite`), opened read-write in WAL mode with `synchronous=FULL`, and the
//! row is committed before anything else happens (before the answer, before waiting). The POS
//! opens the same file, claims pending rows, applies them and acknowledges (`docs/journal.md`).
//!
//! - `store.rs`: opening, the idempotent insert, lookups.
//! - `wait.rs`: waiting (bounded) for the POS to acknowledge a row.
//! - `report.rs`: the `expirenza-agent journal` listing for end-of-shift reconciliation.
//!
//! The journal is opened lazily: if it cannot be opened at start the agent still runs its read
//! operations, money operations answer FAIL `JOURNAL_UNAVAILABLE`, and every later operation
//! tries to open it again.

pub mod report;
pub mod store;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

use crate::config::{AckMode, Config};

pub const SCHEMA_SQL: &str = include_str!("schema.sql");

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal {path} cannot be opened: {message}")]
    Open { path: PathBuf, message: String },
    #[error("the journal cannot be written: {0}")]
    Sqlite(String),
    #[error("journal command #{0} vanished")]
    Missing(i64),
    #[error("the journal is locked")]
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
    /// a payment for an unknown or closed bill, with the wrong sum, or a repeat payment.
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
    busy_timeout: Duration,
    pub ack_timeout: Duration,
    pub poll_interval: Duration,
    pub ack_mode: AckMode,
    conn: Mutex<Option<Connection>>,
    /// A query-only connection that never waits for a lock: the dispatcher's poll for the
    /// POS's acknowledgement reads one row through it on the event loop ([`Journal::peek`]).
    peek: Mutex<Option<Connection>>,
}

impl Journal {
    /// A lazily opened journal per `cfg`; tries to open it now and logs if it cannot.
    pub fn new(cfg: &Config) -> Journal {
        let j = Journal {
            path: cfg.journal_path(),
            busy_timeout: Duration::from_millis(cfg.mirror.busy_timeout_ms.max(1_000)),
            ack_timeout: Duration::from_secs(cfg.journal.pos_ack_timeout_secs),
            poll_interval: Duration::from_millis(cfg.journal.poll_interval_ms),
            ack_mode: cfg.journal.ack_mode,
            conn: Mutex::new(None),
            peek: Mutex::new(None),
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

    /// Run `f` on the connection, opening it first if needed. An error drops the connection so
    /// the next call reopens it.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(store::open(&self.path, self.busy_timeout)?);
        }
        let res = f(guard.as_mut().expect("opened above"));
        if res.is_err() {
            *guard = None;
        }
        res
    }

    /// Command `id` as it is now, read without waiting: `None` when it cannot be read at once
    /// (the peek connection is in use, the journal is locked, or an error, which drops the
    /// connection): the caller then reads it with [`Journal::get`] on the blocking pool. A
    /// primary-key read in WAL mode waits for no writer, so this is the common case.
    pub fn peek(&self, id: i64) -> Option<Command> {
        let mut guard = self.peek.try_lock().ok()?;
        if guard.is_none() {
            *guard = Some(store::open_peek(&self.path).ok()?);
        }
        match store::by_id(guard.as_ref()?, id) {
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
        self.with(|c| store::pending_count(c))
    }

    /// Open commands by status, for the metrics file.
    pub fn open_by_status(&self) -> Result<Vec<(&'static str, u64)>, JournalError> {
        self.with(|c| store::open_by_status(c))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let (s, ns) = crate::clock::unix_now();
    s.saturating_mul(1000)
        .saturating_add(i64::from(ns / 1_000_000))
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
        let cfg = crate::config::Config::for_loopback(
            "r",
            "s",
            "ws://127.0.0.1:9/",
            "http://127.0.0.1:9/cb",
            &dir.join("mirror.sqlite"),
            dir,
        );
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
