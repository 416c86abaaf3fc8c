//! Change detection for the ORDERS_CACHE webhook: a cheap per-order fingerprint.
//!
//! One tick reads, inside the caller's read transaction, three streaming queries:
//! 1. the open orders' rows (state NEW or BILL), oldest first: the short entry plus a hash of
//!    every column the getBill shape shows;
//! 2. the positions of open orders, and 3. their discounts (`orders CROSS JOIN ...` makes SQLite
//!    walk the open orders and fetch their lines by the primary key, so a day of closed bills in
//!    the mirror costs nothing): each row is hashed straight from
//!    SQLite's column buffers (`ValueRef`, no `String` is allocated, nothing is serialised) and
//!    folded into its order's accumulator by wrapping addition, so no `ORDER BY` (no sort) is
//!    needed. `line_no` and `guest_no` are part of each row's hash, so moving a line changes the
//!    fingerprint too.
//!
//! The fingerprint is a 64-bit hash of (order row, position count, position hash sum, discount
//! count, discount hash sum). It needs nothing from the POS beyond the mirror contract: no
//! version column, no triggers. A change goes unnoticed only on a 64-bit hash collision.
//!
//! Bounds: at most `[limits] max_rows` open orders are listed (past that the tick fails with a
//! clear error); at most `[cache] max_tracked_orders` of them (the oldest) are fingerprinted and
//! ever sent in full. Position and discount rows are streamed, never collected.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::mirror::MirrorError;
use crate::money::Kopecks;

/// A per-order fingerprint.
pub type Fingerprint = u64;

/// One open order as the short list shows it, with its fingerprint (0 when untracked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOrder {
    pub bill_id: String,
    pub order_number: i64,
    pub table_id: Option<String>,
    pub state: String,
    pub total_sum: Kopecks,
    pub fingerprint: Fingerprint,
}

/// Every open order, oldest first. The first `tracked` entries carry real fingerprints.
#[derive(Debug, Default)]
pub struct Scan {
    pub open: Vec<OpenOrder>,
    pub tracked: usize,
}

impl Scan {
    /// Open orders beyond `max_tracked_orders`: listed short, never sent in full.
    pub fn untracked(&self) -> usize {
        self.open.len() - self.tracked
    }
}

/// The fingerprints of the last push the cloud acknowledged (2xx). Never more than the cap.
#[derive(Debug, Default)]
pub struct Acked {
    map: HashMap<String, Fingerprint>,
}

impl Acked {
    pub fn get(&self, bill_id: &str) -> Option<Fingerprint> {
        self.map.get(bill_id).copied()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn bill_ids(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
    /// Replace the state after a successful push (`map` was built with at most the cap).
    pub fn replace(&mut self, map: HashMap<String, Fingerprint>) {
        self.map = map;
    }
}

const HEAD_SQL: &str = "SELECT bill_id, order_number, table_id, state, total_sum_kop, created, waiter_id, \
     waiter_name, raw_sum_kop, bonus_sum_kop, is_banquet, is_delivery, split_available, root_bill_id, \
     payment_type, pricing_time FROM orders WHERE state IN ('NEW', 'BILL') ORDER BY created, order_number";

const POSITIONS_SQL: &str = "SELECT p.bill_id, p.position_id, p.line_no, p.guest_no, p.guest_name, \
     p.linked_to, p.dish_id, p.name, p.count_milli, p.sum_kop, p.category, p.category_id, p.tax_category, \
     p.tax_category_id, p.type, p.check_number \
     FROM orders o CROSS JOIN order_positions p ON p.bill_id = o.bill_id WHERE o.state IN ('NEW', 'BILL')";

const DISCOUNTS_SQL: &str = "SELECT d.bill_id, d.discount_id, d.name, d.sum_kop \
     FROM orders o CROSS JOIN order_discounts d ON d.bill_id = o.bill_id WHERE o.state IN ('NEW', 'BILL')";

fn hash_value(h: &mut DefaultHasher, v: ValueRef<'_>) {
    match v {
        ValueRef::Null => h.write_u8(0),
        ValueRef::Integer(i) => {
            h.write_u8(1);
            h.write_i64(i);
        }
        ValueRef::Real(f) => {
            h.write_u8(2);
            h.write_u64(f.to_bits());
        }
        ValueRef::Text(t) => {
            h.write_u8(3);
            h.write_usize(t.len());
            h.write(t);
        }
        ValueRef::Blob(b) => {
            h.write_u8(4);
            h.write_usize(b.len());
            h.write(b);
        }
    }
}

/// Hash columns `from..n` of one row.
fn hash_row(r: &rusqlite::Row<'_>, from: usize, n: usize) -> rusqlite::Result<u64> {
    let mut h = DefaultHasher::new();
    for i in from..n {
        hash_value(&mut h, r.get_ref(i)?);
    }
    Ok(h.finish())
}

#[derive(Default, Clone, Copy)]
struct Acc {
    head: u64,
    positions: u64,
    position_count: u64,
    discounts: u64,
    discount_count: u64,
}

impl Acc {
    fn fingerprint(&self) -> Fingerprint {
        let mut h = DefaultHasher::new();
        for v in [
            self.head,
            self.positions,
            self.position_count,
            self.discounts,
            self.discount_count,
        ] {
            h.write_u64(v);
        }
        h.finish()
    }
}

/// List the open orders and fingerprint the oldest `max_tracked` of them.
pub fn scan(conn: &Connection, max_tracked: usize, max_rows: usize) -> Result<Scan, MirrorError> {
    let mut open = Vec::new();
    let mut accs: Vec<Acc> = Vec::new();
    {
        let mut st = conn.prepare_cached(HEAD_SQL)?;
        let n = st.column_count();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            if open.len() == max_rows {
                return Err(MirrorError::TooManyRows(max_rows));
            }
            if accs.len() < max_tracked {
                accs.push(Acc {
                    head: hash_row(r, 0, n)?,
                    ..Acc::default()
                });
            }
            let read = || -> rusqlite::Result<OpenOrder> {
                Ok(OpenOrder {
                    bill_id: r.get(0)?,
                    order_number: r.get(1)?,
                    table_id: r.get(2)?,
                    state: r.get(3)?,
                    total_sum: Kopecks(r.get::<_, Option<i64>>(4)?.unwrap_or(0)),
                    fingerprint: 0,
                })
            };
            open.push(read().map_err(|e| MirrorError::in_query(HEAD_SQL, e))?);
        }
    }
    let tracked = accs.len();
    let index: HashMap<&str, usize> = open[..tracked]
        .iter()
        .enumerate()
        .map(|(i, o)| (o.bill_id.as_str(), i))
        .collect();
    for (sql, is_position) in [(POSITIONS_SQL, true), (DISCOUNTS_SQL, false)] {
        let mut st = conn.prepare_cached(sql)?;
        let n = st.column_count();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let i = match r.get_ref(0)? {
                ValueRef::Text(b) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|id| index.get(id).copied()),
                _ => None,
            };
            let Some(i) = i else { continue };
            let h = hash_row(r, 1, n)?;
            let a = &mut accs[i];
            if is_position {
                a.positions = a.positions.wrapping_add(h);
                a.position_count += 1;
            } else {
                a.discounts = a.discounts.wrapping_add(h);
                a.discount_count += 1;
            }
        }
    }
    drop(index);
    for (o, a) in open.iter_mut().zip(&accs) {
        o.fingerprint = a.fingerprint();
    }
    Ok(Scan { open, tracked })
}

/// The state of a bill that left the open set: its mirror state, or `CLOSED` if its row is gone.
pub fn closed_state(conn: &Connection, bill_id: &str) -> Result<String, MirrorError> {
    use rusqlite::OptionalExtension;
    const STATE: &str = "SELECT state FROM orders WHERE bill_id = ?1";
    let mut st = conn.prepare_cached(STATE)?;
    let s: Option<String> = st
        .query_row([bill_id], |r| r.get::<_, Option<String>>(0))
        .optional()
        .map_err(|e| MirrorError::in_query(STATE, e))?
        .flatten();
    Ok(s.unwrap_or_else(|| "CLOSED".into()))
}
