//! A simulated POS: claims journaled commands, applies them to the mirror, acknowledges them,
//! exactly as docs/journal.md tells a real POS to. The sandbox runs it next to the agent; the
//! tests use it as the POS.
//!
//! One step:
//! 1. Claim: a `claimed` row left by a previous run (it crashed between claim and
//!    acknowledgement) is finished first; otherwise the oldest `pending` row is claimed in a
//!    `BEGIN IMMEDIATE` transaction (`SELECT … LIMIT 1`, then `UPDATE … WHERE id = ? AND
//!    status = 'pending'`), the recipe of docs/journal.md.
//! 2. Apply, idempotently keyed on the rID: one mirror transaction does the change and records
//!    the rID and its outcome in `pos_applied`; a rID found there is not applied again, its
//!    stored outcome is reused. A refused command changes nothing: the change is made in a
//!    savepoint of that transaction and rolled back on reject (no child bill, no moved lines,
//!    no order, no stop-list decrement), only the refusal is recorded. Payments also go to a `pos_payments` ledger (no uniqueness, so a
//!    double application would show as two rows: the tests count them).
//! 3. Only after the mirror commit, acknowledge: `status = 'applied'` (or `'rejected'`),
//!    `result`, `applied_at`, for that id while it is still `claimed`.
//!
//! The simulated POS assumes it is the only applier of the journal (as a real POS would be).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use expirenza_agent::journal::{now_ms, store, JournalError};
use expirenza_agent::json::JsonBuf;
use expirenza_agent::money::{Kopecks, Qty};
use expirenza_agent::ops::{create_order_on_table, pay_bill, split_order, substate};

/// Bookkeeping tables the simulated POS keeps in the mirror (its own database).
pub const SIM_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pos_applied (
    rid        TEXT PRIMARY KEY,
    command_id INTEGER NOT NULL,
    status     TEXT NOT NULL,
    substate   TEXT,
    reason     TEXT,
    result     TEXT,
    applied_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pos_payments (
    id         INTEGER PRIMARY KEY,
    bill_id    TEXT NOT NULL,
    rid        TEXT NOT NULL,
    sum_kop    INTEGER NOT NULL,
    tips_kop   INTEGER,
    applied_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pos_messages (
    id      INTEGER PRIMARY KEY,
    rid     TEXT NOT NULL,
    request TEXT NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("mirror: {0}")]
    Mirror(#[from] rusqlite::Error),
    #[error(transparent)]
    MirrorRead(#[from] expirenza_agent::mirror::MirrorError),
    /// The claim's UPDATE missed the row its SELECT found under the same write lock.
    #[error("journal row #{0} changed under the write lock")]
    ClaimLost(i64),
}

/// The outcome the POS writes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub applied: bool,
    pub substate: Option<String>,
    pub reason: Option<String>,
    pub result: String,
}

impl Outcome {
    pub fn ok(result: String) -> Outcome {
        Outcome {
            applied: true,
            substate: None,
            reason: None,
            result,
        }
    }
    pub fn reject(sub: &str, reason: String) -> Outcome {
        let mut j = JsonBuf::new(4096);
        j.begin_obj()
            .f_str("substate", sub)
            .f_str("message", &reason)
            .end_obj();
        Outcome {
            applied: false,
            substate: Some(sub.into()),
            reason: Some(reason),
            result: String::from_utf8(j.finish().unwrap_or_default()).unwrap_or_default(),
        }
    }
}

/// A claimed command.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub rid: String,
    pub operation: String,
    pub request: String,
}

pub struct SimPos {
    journal: Connection,
    mirror: Connection,
    /// Commands actually applied to the mirror (not replays of a stored outcome).
    pub applications: u64,
}

impl SimPos {
    pub fn open(journal: &Path, mirror: &Path) -> Result<SimPos, SimError> {
        let journal = store::open(journal, Duration::from_secs(5))?;
        let mirror = Connection::open(mirror)?;
        mirror.busy_timeout(Duration::from_secs(5))?;
        mirror.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        mirror.execute_batch(SIM_SCHEMA)?;
        Ok(SimPos {
            journal,
            mirror,
            applications: 0,
        })
    }

    /// Step 1: a leftover `claimed` row, else claim the oldest `pending` one.
    pub fn claim(&mut self) -> Result<Option<Claimed>, SimError> {
        let tx = self
            .journal
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = |r: &rusqlite::Row<'_>| {
            Ok(Claimed {
                id: r.get(0)?,
                rid: r.get(1)?,
                operation: r.get(2)?,
                request: r.get(3)?,
            })
        };
        let leftover = tx
            .query_row(
                "SELECT id, rid, operation, request FROM commands WHERE status = 'claimed' ORDER BY id LIMIT 1",
                [],
                row,
            )
            .optional()?;
        let claimed = match leftover {
            Some(c) => Some(c),
            None => {
                let next = tx
                    .query_row(
                        "SELECT id, rid, operation, request FROM commands WHERE status = 'pending' ORDER BY id LIMIT 1",
                        [],
                        row,
                    )
                    .optional()?;
                if let Some(c) = &next {
                    let n = tx.execute(
                        "UPDATE commands SET status = 'claimed', claimed_at = ?1 \
                         WHERE id = ?2 AND status = 'pending'",
                        params![now_ms(), c.id],
                    )?;
                    // The write lock is held since BEGIN IMMEDIATE: nothing else can change it.
                    if n != 1 {
                        return Err(SimError::ClaimLost(c.id));
                    }
                }
                next
            }
        };
        tx.commit()?;
        Ok(claimed)
    }

    /// Step 2: apply to the mirror once per rID; returns the outcome (stored or new).
    pub fn apply(&mut self, c: &Claimed) -> Result<Outcome, SimError> {
        let mut tx = self
            .mirror
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stored = tx
            .query_row(
                "SELECT status, substate, reason, result FROM pos_applied WHERE rid = ?1",
                params![c.rid],
                |r| {
                    Ok(Outcome {
                        applied: r.get::<_, String>(0)? == "applied",
                        substate: r.get(1)?,
                        reason: r.get(2)?,
                        result: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    })
                },
            )
            .optional()?;
        if let Some(o) = stored {
            tx.commit()?;
            return Ok(o);
        }
        // The change runs inside a savepoint of the same transaction: an `apply_*` may write
        // part of the change before it finds a reason to refuse (a later position, a later
        // item), so on a reject everything it wrote is rolled back and only the refusal is
        // recorded. Validation and writes never leave half a command in the mirror.
        let mut change = tx.savepoint()?;
        let out = match c.operation.as_str() {
            "payBill" => apply_payment(&change, c)?,
            "splitOrder" => apply_split(&change, c)?,
            "createOrderOnTable" => apply_order(&change, c)?,
            "showMessage" => {
                change.execute(
                    "INSERT INTO pos_messages (rid, request) VALUES (?1, ?2)",
                    params![c.rid, c.request],
                )?;
                Outcome::ok("{\"shown\":true}".into())
            }
            other => Outcome::reject(substate::POS_REJECTED, format!("unknown operation {other}")),
        };
        if !out.applied {
            change.rollback()?;
        }
        change.commit()?; // RELEASE: keeps the change (or, after the rollback, nothing)
        tx.execute(
            "INSERT INTO pos_applied (rid, command_id, status, substate, reason, result, applied_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                c.rid,
                c.id,
                if out.applied { "applied" } else { "rejected" },
                out.substate,
                out.reason,
                out.result,
                now_ms()
            ],
        )?;
        tx.commit()?;
        if out.applied {
            self.applications += 1;
        }
        Ok(out)
    }

    /// Step 3: acknowledge, only while the row is still `claimed`.
    pub fn acknowledge(&mut self, c: &Claimed, o: &Outcome) -> Result<bool, SimError> {
        let n = self.journal.execute(
            "UPDATE commands SET status = ?1, substate = ?2, reason = ?3, result = ?4, applied_at = ?5 \
             WHERE id = ?6 AND status = 'claimed'",
            params![
                if o.applied { "applied" } else { "rejected" },
                o.substate,
                o.reason,
                o.result,
                now_ms(),
                c.id
            ],
        )?;
        Ok(n == 1)
    }

    /// Claim, apply and acknowledge one command; `None` when nothing is pending.
    pub fn step(&mut self) -> Result<Option<(Claimed, Outcome)>, SimError> {
        let Some(c) = self.claim()? else {
            return Ok(None);
        };
        let o = self.apply(&c)?;
        self.acknowledge(&c, &o)?;
        Ok(Some((c, o)))
    }

    /// Run steps until nothing is pending; returns how many commands were processed.
    pub fn drain(&mut self) -> Result<usize, SimError> {
        let mut n = 0;
        while self.step()?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

fn next_order_number(tx: &Connection) -> rusqlite::Result<i64> {
    tx.query_row(
        "SELECT coalesce(max(order_number), 0) + 1 FROM orders",
        [],
        |r| r.get(0),
    )
}

fn bill_state(tx: &Connection, bill: &str) -> rusqlite::Result<Option<(String, i64)>> {
    tx.query_row(
        "SELECT state, total_sum_kop FROM orders WHERE bill_id = ?1",
        params![bill],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

fn apply_payment(tx: &Connection, c: &Claimed) -> Result<Outcome, SimError> {
    let f = match pay_bill::parse(c.request.as_bytes()) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::reject(substate::BAD_REQUEST, e)),
    };
    match bill_state(tx, &f.bill_id)? {
        None => Ok(Outcome::reject(
            substate::ORDER_NOT_FOUND,
            format!("bill {} does not exist", f.bill_id),
        )),
        Some((state, _)) if state != "NEW" && state != "BILL" => Ok(Outcome::reject(
            substate::ORDER_CLOSED,
            format!("bill {} is {state}", f.bill_id),
        )),
        Some((_, total)) if total != f.sum.0 => Ok(Outcome::reject(
            substate::WRONG_REQUEST_SUM,
            format!("POS total {} != paid {}", Kopecks(total), f.sum),
        )),
        Some(_) => {
            tx.execute(
                "UPDATE orders SET state = 'PAYED', payment_type = 'expirenza' WHERE bill_id = ?1",
                params![f.bill_id.as_str()],
            )?;
            tx.execute(
                "INSERT INTO pos_payments (bill_id, rid, sum_kop, tips_kop, applied_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![f.bill_id.as_str(), c.rid, f.sum.0, f.tips.map(|t| t.0), now_ms()],
            )?;
            let mut j = JsonBuf::new(1024);
            j.begin_obj().f_str("billId", &f.bill_id).end_obj();
            Ok(Outcome::ok(
                String::from_utf8(j.finish().unwrap_or_default()).unwrap_or_default(),
            ))
        }
    }
}

fn recompute_sums(tx: &Connection, bill: &str) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE orders SET raw_sum_kop = (SELECT coalesce(sum(sum_kop), 0) FROM order_positions WHERE bill_id = ?1) \
         WHERE bill_id = ?1",
        params![bill],
    )?;
    tx.execute(
        "UPDATE orders SET total_sum_kop = max(0, raw_sum_kop - bonus_sum_kop - \
         (SELECT coalesce(sum(sum_kop), 0) FROM order_discounts WHERE bill_id = ?1)) WHERE bill_id = ?1",
        params![bill],
    )?;
    Ok(())
}

fn apply_split(tx: &Connection, c: &Claimed) -> Result<Outcome, SimError> {
    let f = match split_order::parse(c.request.as_bytes()) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::reject(substate::BAD_REQUEST, e)),
    };
    let parent = f.bill_id.as_str();
    match bill_state(tx, parent)? {
        Some((s, _)) if s == "NEW" || s == "BILL" => {}
        _ => {
            return Ok(Outcome::reject(
                substate::ORDER_NOT_FOUND,
                format!("bill {parent} is not open"),
            ))
        }
    }
    // The bill's lines, and what moves: the agent's own rule (split_order::plan), so the POS
    // moves exactly what the agent checked controlSum against.
    let rows: Vec<(String, Option<String>, i64, i64)> = {
        let mut st = tx.prepare(
            "SELECT position_id, linked_to, count_milli, sum_kop FROM order_positions \
             WHERE bill_id = ?1 ORDER BY guest_no, line_no",
        )?;
        let rows = st
            .query_map(params![parent], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        rows
    };
    let lines: Vec<split_order::SplitLine<'_>> = rows
        .iter()
        .map(|(id, linked, count, sum)| split_order::SplitLine {
            position_id: id,
            linked_to: linked.as_deref(),
            count: Qty(*count),
            sum: Kopecks(*sum),
        })
        .collect();
    let moves = match split_order::plan(parent, &lines, &f.positions) {
        Ok(m) => m,
        Err(failed) => return Ok(Outcome::reject(failed.substate, failed.message)),
    };
    let raw_before: i64 = rows.iter().map(|r| r.3).sum();
    let child = format!("{parent}-split-{}", c.id);
    let number = next_order_number(tx)?;
    // A new bill (docs/journal.md): created now, state NEW, not splittable itself, with the
    // parent's table, waiter and order type, and root_bill_id = the parent.
    tx.execute(
        "INSERT INTO orders (bill_id, order_number, table_id, state, created, waiter_id, waiter_name, \
         is_banquet, is_delivery, split_available, root_bill_id, payment_type, pricing_time) \
         SELECT ?2, ?3, table_id, 'NEW', ?4, waiter_id, waiter_name, is_banquet, is_delivery, 0, bill_id, \
         payment_type, pricing_time FROM orders WHERE bill_id = ?1",
        params![
            parent,
            child,
            number,
            expirenza_agent::clock::pos_datetime_now()
        ],
    )?;
    for m in &moves {
        if m.whole {
            tx.execute(
                "UPDATE order_positions SET bill_id = ?2 WHERE bill_id = ?1 AND position_id = ?3",
                params![parent, child, m.position_id],
            )?;
        } else {
            tx.execute(
                "INSERT INTO order_positions (bill_id, position_id, line_no, guest_no, guest_name, linked_to, dish_id, name, \
                 count_milli, sum_kop, category, category_id, tax_category, tax_category_id, type, check_number) \
                 SELECT ?2, position_id, line_no, guest_no, guest_name, linked_to, dish_id, name, ?4, ?5, category, \
                 category_id, tax_category, tax_category_id, type, check_number \
                 FROM order_positions WHERE bill_id = ?1 AND position_id = ?3",
                params![parent, child, m.position_id, m.count.0, m.sum.0],
            )?;
            tx.execute(
                "UPDATE order_positions SET count_milli = count_milli - ?3, sum_kop = sum_kop - ?4 \
                 WHERE bill_id = ?1 AND position_id = ?2",
                params![parent, m.position_id, m.count.0, m.sum.0],
            )?;
        }
    }
    // The mirror's discounts are amounts: each is divided in proportion to the lines' sums,
    // the new bill's share rounded half up, so the two add up to the original (a copy would
    // count a fixed discount twice).
    let moved: i64 = moves.iter().map(|m| m.sum.0).sum();
    if raw_before > 0 && moved > 0 {
        let discounts: Vec<(String, String, i64)> = {
            let mut st = tx.prepare(
                "SELECT discount_id, name, sum_kop FROM order_discounts WHERE bill_id = ?1",
            )?;
            let d = st
                .query_map(params![parent], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            d
        };
        for (id, name, sum) in discounts {
            let share = split_order::part_sum(Kopecks(sum), Qty(raw_before), Qty(moved)).0;
            if share == 0 {
                continue;
            }
            tx.execute(
                "INSERT INTO order_discounts (bill_id, discount_id, name, sum_kop) VALUES (?1, ?2, ?3, ?4)",
                params![child, id, name, share],
            )?;
            tx.execute(
                "UPDATE order_discounts SET sum_kop = sum_kop - ?3 WHERE bill_id = ?1 AND discount_id = ?2",
                params![parent, id, share],
            )?;
        }
    }
    recompute_sums(tx, parent)?;
    recompute_sums(tx, &child)?;
    let mut j = JsonBuf::new(1024);
    j.begin_obj().f_str("newBillId", &child).end_obj();
    Ok(Outcome::ok(
        String::from_utf8(j.finish().unwrap_or_default()).unwrap_or_default(),
    ))
}

fn apply_order(tx: &Connection, c: &Claimed) -> Result<Outcome, SimError> {
    let f = match create_order_on_table::parse(c.request.as_bytes()) {
        Ok(f) => f,
        Err(e) => return Ok(Outcome::reject(substate::BAD_REQUEST, e)),
    };
    let id = format!("ord-{}", f.external_id);
    let number = next_order_number(tx)?;
    tx.execute(
        "INSERT INTO orders (bill_id, order_number, table_id, state, created, payment_type) \
         VALUES (?1, ?2, ?3, 'NEW', ?4, 'expirenza')",
        params![
            id,
            number,
            f.table_id.as_str(),
            expirenza_agent::clock::pos_datetime_now()
        ],
    )?;
    let mut line = 0i64;
    for it in &f.items {
        let mods = it
            .modifier
            .iter()
            .flatten()
            .map(|m| (m.id.as_str(), m.quantity, true));
        let mut parent_pos: Option<String> = None;
        for (item, qty, is_mod) in std::iter::once((it.id.as_str(), it.quantity, false)).chain(mods)
        {
            let Some(m) = create_order_on_table::menu_item(tx, item, is_mod)? else {
                return Ok(Outcome::reject(
                    substate::PRODUCT_UNAVAILABLE,
                    format!("item {item} is not on the menu"),
                ));
            };
            line += 1;
            let pos_id = format!("p-{line}");
            tx.execute(
                "INSERT INTO order_positions (bill_id, position_id, line_no, linked_to, dish_id, name, count_milli, sum_kop, type) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id,
                    pos_id,
                    line,
                    if is_mod { parent_pos.clone() } else { None },
                    m.id,
                    m.name,
                    qty.0,
                    create_order_on_table::line_sum(m.price, qty).0,
                    if is_mod { "modifier" } else { "dish" }
                ],
            )?;
            if !is_mod {
                parent_pos = Some(pos_id);
            }
            tx.execute(
                "UPDATE stop_list SET remaining_milli = max(0, remaining_milli - ?2) WHERE item_id = ?1",
                params![item, qty.0],
            )?;
        }
    }
    recompute_sums(tx, &id)?;
    // Create-and-pay: the guest paid in the app.
    tx.execute(
        "UPDATE orders SET state = 'PAYED' WHERE bill_id = ?1",
        params![id],
    )?;
    let mut j = JsonBuf::new(1024);
    j.begin_obj().f_str("orderId", &id).end_obj();
    Ok(Outcome::ok(
        String::from_utf8(j.finish().unwrap_or_default()).unwrap_or_default(),
    ))
}

/// A simulated POS running on its own thread until dropped.
pub struct Running {
    stop: Arc<AtomicBool>,
    processed: Arc<AtomicU64>,
    join: Option<JoinHandle<()>>,
}

impl Running {
    /// Commands processed so far (claimed and acknowledged).
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Start a simulated POS thread that polls the journal every `poll` (the POS, like the agent,
/// has no cross-process event to wait on).
pub fn spawn(journal: &Path, mirror: &Path, poll: Duration) -> Result<Running, SimError> {
    let (journal, mirror): (PathBuf, PathBuf) = (journal.into(), mirror.into());
    let mut pos = SimPos::open(&journal, &mirror)?;
    let stop = Arc::new(AtomicBool::new(false));
    let processed = Arc::new(AtomicU64::new(0));
    let (s, p) = (stop.clone(), processed.clone());
    let join = std::thread::Builder::new()
        .name("sim-pos".into())
        .spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match pos.step() {
                    Ok(Some(_)) => {
                        p.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(None) => std::thread::sleep(poll),
                    Err(e) => {
                        expirenza_agent::log_warn!("sim-pos: {e}");
                        std::thread::sleep(poll);
                    }
                }
            }
        })
        .map_err(|e| SimError::Journal(JournalError::Sqlite(e.to_string())))?;
    Ok(Running {
        stop,
        processed,
        join: Some(join),
    })
}
