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

use super::spool::{Held, Record, Spool};
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

/// The reader connection ([`super::Journal::read`], [`super::Journal::peek`]): an existing
/// journal, query only.
pub fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection, JournalError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    crate::sqlite_mem::bound(&conn)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    // The schema is the writer's to create: a journal without it is not ready for reading.
    conn.query_row("SELECT count(*) FROM commands WHERE 0", [], |_| Ok(()))?;
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
    insert_after_spool(c, None, new)
}

/// [`insert`], first moving whatever `spool` holds into the journal in the same transaction
/// (spooled requests arrived earlier, so they get the lower ids). The spool is emptied only
/// after the commit; a spool that cannot be read is logged and left for a later try.
pub fn insert_after_spool(
    c: &mut Connection,
    spool: Option<&Spool>,
    new: &NewCommand<'_>,
) -> Result<Journaled, JournalError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let held = match spool.map(take_spool).transpose()? {
        // In a savepoint: spooled records that cannot be moved must not stop this request.
        Some(Some(h)) => {
            tx.execute_batch("SAVEPOINT spool")?;
            match move_records(&tx, &h.contents.records) {
                Ok(_) => {
                    tx.execute_batch("RELEASE spool")?;
                    Some(h)
                }
                Err(e) => {
                    log_error!("journal: spooled requests not moved ({e}); they stay in the spool");
                    tx.execute_batch("ROLLBACK TO spool; RELEASE spool")?;
                    None
                }
            }
        }
        _ => None,
    };
    let out = insert_in(&tx, new)?;
    tx.commit()?;
    if let Some(h) = held {
        clear_spool(h);
    }
    Ok(out)
}

/// Move what `spool` holds into the journal now, in a transaction of its own. Returns how many
/// records became `review` rows (records already in the journal are skipped).
pub fn move_spool(c: &mut Connection, spool: &Spool) -> Result<usize, JournalError> {
    if !spool.has_records() {
        return Ok(0);
    }
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(held) = take_spool(spool)? else {
        return Ok(0);
    };
    let n = move_records(&tx, &held.contents.records)?;
    tx.commit()?;
    clear_spool(held);
    Ok(n)
}

/// Lock the spool (under the journal's write lock) and read it; an unreadable spool is logged
/// and treated as empty for now.
fn take_spool(spool: &Spool) -> Result<Option<Held>, JournalError> {
    match spool.hold() {
        Ok(h) => Ok(h),
        Err(e) => {
            log_error!("journal: {e}; spooled requests stay there for a later try");
            Ok(None)
        }
    }
}

fn clear_spool(held: Held) {
    if let Err(e) = held.clear() {
        // The records are in the journal; the next move finds their rIDs there and skips them.
        log_error!("journal: spooled requests moved, but {e}");
    }
}

/// Insert each spooled record whose rID the journal does not have as a `review` row with the
/// sub-state of the FAIL the cloud got ([`Record::substate`]). The rID's uniqueness makes this
/// exactly once, even when a crash left moved records in the spool.
pub fn move_records(tx: &Connection, records: &[Record]) -> Result<usize, JournalError> {
    let mut moved = 0;
    for r in records {
        if let Some(existing) = by_rid(tx, &r.rid)? {
            log_info!(
                "journal: spooled {} rID={} is already command #{} ({}); not moved again",
                r.operation,
                r.rid,
                existing.id,
                existing.status.as_str()
            );
            continue;
        }
        let reason = format!(
            "not journaled when it arrived ({}); the cloud was answered FAIL {}. Kept in the \
             spool, moved here for staff to settle",
            r.error,
            r.substate()
        );
        tx.execute(
            "INSERT INTO commands (rid, operation, bill_id, external_id, request, sum_kop, tips_kop, \
             status, substate, reason, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'review', ?8, ?9, ?10)",
            params![
                r.rid,
                r.operation,
                r.bill_id,
                r.external_id,
                r.request,
                r.sum_kop,
                r.tips_kop,
                r.substate(),
                reason,
                r.spooled_at
            ],
        )?;
        log_warn!(
            "journal: spooled {} rID={} moved into the journal as review #{} ({})",
            r.operation,
            r.rid,
            tx.last_insert_rowid(),
            r.substate()
        );
        moved += 1;
    }
    Ok(moved)
}

/// The insert itself, inside the caller's write transaction. A `review` row for this rID that
/// was refused before it started ([`Command::refused_unstarted`]) is not a repeat: this request
/// is computed as new and written into that row (its id and `created_at`, the first arrival,
/// stay).
fn insert_in(tx: &Connection, new: &NewCommand<'_>) -> Result<Journaled, JournalError> {
    let mut unstarted = None;
    if let Some(existing) = by_rid(tx, new.rid)? {
        if existing.refused_unstarted() {
            unstarted = Some(existing);
        } else {
            // A repeat payment recorded earlier answers with the payment it repeats.
            let out = match existing.dup_of {
                Some(orig) => Journaled::SameKey {
                    live: by_id(tx, orig)?.ok_or(JournalError::Missing(orig))?,
                    recorded: Some(Box::new(existing)),
                },
                None => Journaled::SameRid(existing),
            };
            return Ok(out);
        }
    }
    // A live row for the same key wins over this request's own review verdict: after the POS
    // applied a payment the bill reads as closed, and a repeat must get the first outcome.
    let live = live_by_key(tx, new)?;
    let (status, substate, reason, dup_of) = match (&live, &new.review) {
        (Some(l), _) if new.dedup == Dedup::ExternalId => {
            return Ok(Journaled::SameKey {
                live: l.clone(),
                recorded: None,
            });
        }
        (Some(l), _) => (
            Status::Review,
            Some(super::SUBSTATE_DUPLICATE),
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
    let id = match &unstarted {
        Some(old) => {
            tx.execute(
                "UPDATE commands SET operation = ?2, bill_id = ?3, external_id = ?4, request = ?5, \
                 sum_kop = ?6, tips_kop = ?7, status = ?8, substate = ?9, reason = ?10, dup_of = ?11 \
                 WHERE id = ?1",
                params![
                    old.id,
                    new.operation,
                    new.bill_id,
                    new.external_id,
                    new.request,
                    new.sum_kop,
                    new.tips_kop,
                    status.as_str(),
                    substate,
                    reason,
                    dup_of
                ],
            )?;
            log_info!(
                "journal: {} rID={} was refused before it started (review #{}, {}); this re-send \
                 is journaled in that row ({})",
                new.operation,
                new.rid,
                old.id,
                old.substate.as_deref().unwrap_or(""),
                status.as_str()
            );
            old.id
        }
        None => {
            tx.execute(
                "INSERT INTO commands (rid, operation, bill_id, external_id, request, sum_kop, \
                 tips_kop, status, substate, reason, dup_of, created_at) \
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
            tx.last_insert_rowid()
        }
    };
    let row = by_id(tx, id)?.ok_or(JournalError::Missing(id))?;
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
    /// Journal `new` (see [`insert`]), moving any spooled requests in first.
    pub fn insert(&self, new: &NewCommand<'_>) -> Result<Journaled, JournalError> {
        self.with(|c| insert_after_spool(c, Some(&self.spool), new))
    }
    /// Move spooled requests into the journal if the write lock can be had without waiting
    /// and the writer is free; `Ok(0)` when there is nothing to move or it is not free now.
    pub fn move_spool_now(&self) -> Result<usize, JournalError> {
        if !self.spool.has_records() {
            return Ok(0);
        }
        match self.try_with(|c| move_spool(c, &self.spool)) {
            None | Some(Err(JournalError::Busy)) => Ok(0),
            Some(r) => r,
        }
    }
    /// Move spooled requests into the journal, waiting for the lock like a write does.
    pub fn move_spool(&self) -> Result<usize, JournalError> {
        self.with(|c| move_spool(c, &self.spool))
    }
    pub fn get(&self, id: i64) -> Result<Command, JournalError> {
        self.read(|c| by_id(c, id)?.ok_or(JournalError::Missing(id)))
    }
    pub fn by_rid(&self, rid: &str) -> Result<Option<Command>, JournalError> {
        self.read(|c| by_rid(c, rid))
    }
    pub fn put_settings(&self, rid: &str, json: &str) -> Result<(), JournalError> {
        self.with(|c| put_settings(c, rid, json))
    }
    pub fn settings(&self) -> Result<Option<(String, String)>, JournalError> {
        self.read(settings)
    }
}

impl super::Journal {
    /// The row that already answers `new`, without writing: same rID (a recorded repeat
    /// payment resolves to the payment it repeats; a request refused before it started answers
    /// nothing), else a live row for the same key.
    pub fn find_existing(&self, new: &NewCommand<'_>) -> Result<Option<Command>, JournalError> {
        self.read(|c| {
            if let Some(existing) = by_rid(c, new.rid)?.filter(|e| !e.refused_unstarted()) {
                return Ok(Some(match existing.dup_of {
                    Some(orig) => by_id(c, orig)?.ok_or(JournalError::Missing(orig))?,
                    None => existing,
                }));
            }
            live_by_key(c, new)
        })
    }
}
