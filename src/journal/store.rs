//! Opening the journal and the idempotent insert.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction, so the look-up of an earlier row (same
//! rID, or a live row for the same bill / externalId) and the insert are atomic against other
//! operations of this agent and against the POS. The UNIQUE constraint on `rid` and the partial
//! unique indexes in `schema.sql` make the same guarantees hold even for a writer that skips the
//! look-up.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use super::{now_ms, Command, JournalError, Journaled, Status, SCHEMA_SQL};

/// Open (creating if needed) the journal read-write: WAL, synchronous=FULL, busy timeout.
pub fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, JournalError> {
    let err = |m: String| JournalError::Open {
        path: path.to_path_buf(),
        message: m,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("{}: {e}", dir.display())))?;
    }
    // group-writable from the start: the POS acknowledges in this file (shared_file.rs)
    crate::shared_file::create(path).map_err(|e| err(format!("creating it: {e}")))?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| err(e.to_string()))?;
    conn.busy_timeout(busy_timeout)
        .map_err(|e| err(e.to_string()))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| err(e.to_string()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(err(format!("journal_mode is {mode}, WAL is required")));
    }
    conn.execute_batch("PRAGMA synchronous = FULL;")
        .map_err(|e| err(e.to_string()))?;
    crate::sqlite_mem::bound(&conn).map_err(|e| err(e.to_string()))?;
    conn.execute_batch(SCHEMA_SQL)
        .map_err(|e| err(e.to_string()))?;
    Ok(conn)
}

/// The dispatcher's poll connection ([`super::Journal::peek`]): an existing journal, read
/// only (`query_only`), never waiting for a lock, schema and mode left to the main connection.
pub fn open_peek(path: &Path) -> Result<Connection, JournalError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::ZERO)?;
    crate::sqlite_mem::bound(&conn)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// A command to journal.
#[derive(Debug, Clone, Default)]
pub struct NewCommand<'a> {
    pub rid: &'a str,
    pub operation: &'a str,
    pub bill_id: Option<&'a str>,
    pub external_id: Option<&'a str>,
    pub request: &'a str,
    pub sum_kop: Option<i64>,
    pub tips_kop: Option<i64>,
    /// `Some((substate, reason))`: journal for reconciliation only (status `review`).
    pub review: Option<(&'a str, String)>,
    /// Which live row makes this a repeat.
    pub dedup: Dedup,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dedup {
    /// Only the rID.
    #[default]
    RidOnly,
    /// payBill: a live payment for the same bill; the repeat is kept as a `review` row.
    Bill,
    /// createOrderOnTable: a live order with the same externalId; the repeat is not stored.
    ExternalId,
}

const COLS: &str =
    "id, rid, operation, bill_id, external_id, sum_kop, tips_kop, status, substate, \
                    reason, result, dup_of, created_at, claimed_at, applied_at";

fn row_to_command(r: &Row<'_>) -> rusqlite::Result<Command> {
    let status: String = r.get(7)?;
    Ok(Command {
        id: r.get(0)?,
        rid: r.get(1)?,
        operation: r.get(2)?,
        bill_id: r.get(3)?,
        external_id: r.get(4)?,
        sum_kop: r.get(5)?,
        tips_kop: r.get(6)?,
        // The CHECK constraint keeps this in range; an unknown value reads as pending.
        status: Status::parse(&status).unwrap_or(Status::Pending),
        substate: r.get(8)?,
        reason: r.get(9)?,
        result: r.get(10)?,
        dup_of: r.get(11)?,
        created_at: r.get(12)?,
        claimed_at: r.get(13)?,
        applied_at: r.get(14)?,
    })
}

pub fn by_id(c: &Connection, id: i64) -> Result<Option<Command>, JournalError> {
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM commands WHERE id = ?1"))?;
    Ok(st.query_row(params![id], row_to_command).optional()?)
}

pub fn by_rid(c: &Connection, rid: &str) -> Result<Option<Command>, JournalError> {
    let mut st = c.prepare_cached(&format!("SELECT {COLS} FROM commands WHERE rid = ?1"))?;
    Ok(st.query_row(params![rid], row_to_command).optional()?)
}

fn live_by_key(c: &Connection, new: &NewCommand<'_>) -> Result<Option<Command>, JournalError> {
    let (col, key) = match new.dedup {
        Dedup::RidOnly => return Ok(None),
        Dedup::Bill => ("bill_id", new.bill_id),
        Dedup::ExternalId => ("external_id", new.external_id),
    };
    let Some(key) = key else { return Ok(None) };
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM commands WHERE operation = ?1 AND {col} = ?2 \
         AND status IN ('pending', 'claimed', 'applied') ORDER BY id LIMIT 1"
    ))?;
    Ok(st
        .query_row(params![new.operation, key], row_to_command)
        .optional()?)
}

/// Journal `new` exactly once, durably, or find the row that already answers it.
pub fn insert(c: &mut Connection, new: &NewCommand<'_>) -> Result<Journaled, JournalError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(existing) = by_rid(&tx, new.rid)? {
        // A repeat payment recorded earlier answers with the payment it repeats.
        let out = match existing.dup_of {
            Some(orig) => Journaled::SameKey {
                live: by_id(&tx, orig)?.ok_or(JournalError::Missing(orig))?,
                recorded: Some(Box::new(existing)),
            },
            None => Journaled::SameRid(existing),
        };
        tx.commit()?;
        return Ok(out);
    }
    // A live row for the same key wins over this request's own review verdict: after the POS
    // applied a payment the bill reads as closed, and a repeat must get the first outcome.
    let live = live_by_key(&tx, new)?;
    let (status, substate, reason, dup_of) = match (&live, &new.review) {
        (Some(l), _) if new.dedup == Dedup::ExternalId => {
            let out = Journaled::SameKey {
                live: l.clone(),
                recorded: None,
            };
            tx.commit()?;
            return Ok(out);
        }
        (Some(l), _) => (
            Status::Review,
            None,
            Some(format!(
                "repeat payment for bill {} already paid by command #{} (rID {})",
                new.bill_id.unwrap_or(""),
                l.id,
                l.rid
            )),
            Some(l.id),
        ),
        (None, Some((sub, why))) => (Status::Review, Some(*sub), Some(why.clone()), None),
        (None, None) => (Status::Pending, None, None, None),
    };
    tx.execute(
        "INSERT INTO commands (rid, operation, bill_id, external_id, request, sum_kop, tips_kop, \
         status, substate, reason, dup_of, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            new.rid,
            new.operation,
            new.bill_id,
            new.external_id,
            new.request,
            new.sum_kop,
            new.tips_kop,
            status.as_str(),
            substate,
            reason,
            dup_of,
            now_ms()
        ],
    )?;
    let id = tx.last_insert_rowid();
    let row = by_id(&tx, id)?.ok_or(JournalError::Missing(id))?;
    tx.commit()?;
    Ok(match live {
        Some(live) => Journaled::SameKey {
            live,
            recorded: Some(Box::new(row)),
        },
        None => Journaled::New(row),
    })
}

pub fn pending_count(c: &Connection) -> Result<u64, JournalError> {
    Ok(c.query_row(
        "SELECT count(*) FROM commands WHERE status IN ('pending', 'claimed')",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Open commands by status (`pending`, `claimed`, `review`), zeros included: for the metrics.
/// Range scans of the status index; finished commands (`applied`, `rejected`) are not counted.
pub fn open_by_status(c: &Connection) -> Result<Vec<(&'static str, u64)>, JournalError> {
    let mut out = Vec::with_capacity(3);
    for status in ["pending", "claimed", "review"] {
        let n: i64 = c.query_row(
            "SELECT count(*) FROM commands WHERE status = ?1",
            [status],
            |r| r.get(0),
        )?;
        out.push((status, n as u64));
    }
    Ok(out)
}

/// setSettings: replace the stored settings (latest wins).
pub fn put_settings(c: &Connection, rid: &str, json: &str) -> Result<(), JournalError> {
    c.execute(
        "INSERT INTO settings (id, rid, json, updated_at) VALUES (1, ?1, ?2, ?3) \
         ON CONFLICT (id) DO UPDATE SET rid = excluded.rid, json = excluded.json, updated_at = excluded.updated_at",
        params![rid, json, now_ms()],
    )?;
    Ok(())
}

/// The stored settings frame and the rID that sent it.
pub fn settings(c: &Connection) -> Result<Option<(String, String)>, JournalError> {
    Ok(
        c.query_row("SELECT rid, json FROM settings WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?,
    )
}

/// Rows created at or after `since_ms`, optionally of one status, oldest first, at most `limit`.
pub fn list(
    c: &Connection,
    since_ms: i64,
    status: Option<Status>,
    limit: usize,
) -> Result<Vec<Command>, JournalError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM commands WHERE created_at >= ?1 AND (?2 IS NULL OR status = ?2) \
         ORDER BY id LIMIT ?3"
    ))?;
    let rows = st.query_map(
        params![since_ms, status.map(Status::as_str), limit as i64],
        row_to_command,
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl super::Journal {
    /// Journal `new` (see [`insert`]).
    pub fn insert(&self, new: &NewCommand<'_>) -> Result<Journaled, JournalError> {
        self.with(|c| insert(c, new))
    }
    pub fn get(&self, id: i64) -> Result<Command, JournalError> {
        self.with(|c| by_id(c, id)?.ok_or(JournalError::Missing(id)))
    }
    pub fn by_rid(&self, rid: &str) -> Result<Option<Command>, JournalError> {
        self.with(|c| by_rid(c, rid))
    }
    pub fn put_settings(&self, rid: &str, json: &str) -> Result<(), JournalError> {
        self.with(|c| put_settings(c, rid, json))
    }
    pub fn settings(&self) -> Result<Option<(String, String)>, JournalError> {
        self.with(|c| settings(c))
    }
}

impl super::Journal {
    /// The row that already answers `new`, without writing: same rID (a recorded repeat
    /// payment resolves to the payment it repeats), else a live row for the same key.
    pub fn find_existing(&self, new: &NewCommand<'_>) -> Result<Option<Command>, JournalError> {
        self.with(|c| {
            if let Some(existing) = by_rid(c, new.rid)? {
                return Ok(Some(match existing.dup_of {
                    Some(orig) => by_id(c, orig)?.ok_or(JournalError::Missing(orig))?,
                    None => existing,
                }));
            }
            live_by_key(c, new)
        })
    }
}
