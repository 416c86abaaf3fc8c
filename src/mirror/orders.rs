//! Reading bills (orders, their positions and discounts) from the mirror.
//!
//! Used by getBill and, later, by payBill, splitOrder and the ORDERS_CACHE webhook. Every query
//! binds its parameters and is capped by `[limits] max_rows` rows per answer.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::MirrorError;
use crate::money::{Kopecks, Qty};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    pub id: String,
    pub number: i64,
    pub name: String,
    pub hall_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub position_id: String,
    pub guest_no: i64,
    pub guest_name: String,
    pub linked_to: Option<String>,
    pub dish_id: Option<String>,
    pub name: String,
    pub count: Qty,
    pub sum: Kopecks,
    pub category: Option<String>,
    pub category_id: Option<String>,
    pub tax_category: Option<String>,
    pub tax_category_id: Option<String>,
    pub kind: String,
    pub check_number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discount {
    pub id: String,
    pub name: String,
    pub sum: Kopecks,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub bill_id: String,
    pub order_number: i64,
    pub table_id: Option<String>,
    pub state: String,
    pub created: String,
    pub waiter_id: Option<String>,
    pub waiter_name: Option<String>,
    pub raw_sum: Kopecks,
    pub total_sum: Kopecks,
    pub bonus_sum: Kopecks,
    pub is_banquet: bool,
    pub is_delivery: bool,
    pub split_available: bool,
    pub root_bill_id: Option<String>,
    pub payment_type: Option<String>,
    pub pricing_time: Option<String>,
    pub positions: Vec<Position>,
    pub discounts: Vec<Discount>,
}

impl Order {
    pub fn is_open(&self) -> bool {
        matches!(self.state.as_str(), "NEW" | "BILL")
    }
}

/// Tables, views and columns these queries read (for `check`).
pub const NEEDS: &[(&str, &[&str])] = &[
    ("tables", &["id", "number", "name", "hall_id"]),
    (
        "orders",
        &[
            "bill_id",
            "order_number",
            "table_id",
            "state",
            "created",
            "waiter_id",
            "waiter_name",
            "raw_sum_kop",
            "total_sum_kop",
            "bonus_sum_kop",
            "is_banquet",
            "is_delivery",
            "split_available",
            "root_bill_id",
            "payment_type",
            "pricing_time",
        ],
    ),
    (
        "order_positions",
        &[
            "bill_id",
            "position_id",
            "line_no",
            "guest_no",
            "guest_name",
            "linked_to",
            "dish_id",
            "name",
            "count_milli",
            "sum_kop",
            "category",
            "category_id",
            "tax_category",
            "tax_category_id",
            "type",
            "check_number",
        ],
    ),
    (
        "order_discounts",
        &["bill_id", "discount_id", "name", "sum_kop"],
    ),
];

const ORDER_COLS: &str = "bill_id, order_number, table_id, state, created, waiter_id, waiter_name, raw_sum_kop, \
     total_sum_kop, bonus_sum_kop, is_banquet, is_delivery, split_available, root_bill_id, payment_type, pricing_time";

/// Look a table up by the number the guest's QR code carries. A `tableNumber` that is not an
/// integer cannot name a table and is simply not found.
pub fn table_by_number(conn: &Connection, number: &str) -> Result<Option<TableRow>, MirrorError> {
    let Ok(n) = number.trim().parse::<i64>() else {
        return Ok(None);
    };
    table_where(conn, "number = ?1", n)
}

pub fn table_by_id(conn: &Connection, id: &str) -> Result<Option<TableRow>, MirrorError> {
    table_where(conn, "id = ?1", id)
}

fn table_where(
    conn: &Connection,
    cond: &str,
    key: impl rusqlite::ToSql,
) -> Result<Option<TableRow>, MirrorError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT id, number, name, hall_id FROM tables WHERE {cond}"
    ))?;
    Ok(st
        .query_row(params![key], |r| {
            Ok(TableRow {
                id: r.get(0)?,
                number: r.get(1)?,
                name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                hall_id: r.get(3)?,
            })
        })
        .optional()?)
}

fn order_head(r: &Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        bill_id: r.get(0)?,
        order_number: r.get(1)?,
        table_id: r.get(2)?,
        state: r.get(3)?,
        created: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        waiter_id: r.get(5)?,
        waiter_name: r.get(6)?,
        raw_sum: Kopecks(r.get::<_, Option<i64>>(7)?.unwrap_or(0)),
        total_sum: Kopecks(r.get::<_, Option<i64>>(8)?.unwrap_or(0)),
        bonus_sum: Kopecks(r.get::<_, Option<i64>>(9)?.unwrap_or(0)),
        is_banquet: r.get::<_, Option<bool>>(10)?.unwrap_or(false),
        is_delivery: r.get::<_, Option<bool>>(11)?.unwrap_or(false),
        split_available: r.get::<_, Option<bool>>(12)?.unwrap_or(false),
        root_bill_id: r.get(13)?,
        payment_type: r.get(14)?,
        pricing_time: r.get(15)?,
        positions: Vec::new(),
        discounts: Vec::new(),
    })
}

/// Fill positions and discounts of `o`, counting rows against `budget`.
fn load_lines(
    conn: &Connection,
    o: &mut Order,
    budget: &mut usize,
    max_rows: usize,
) -> Result<(), MirrorError> {
    let mut st = conn.prepare_cached(
        "SELECT position_id, guest_no, guest_name, linked_to, dish_id, name, count_milli, sum_kop, category, \
         category_id, tax_category, tax_category_id, type, check_number \
         FROM order_positions WHERE bill_id = ?1 ORDER BY guest_no, line_no",
    )?;
    let mut rows = st.query(params![o.bill_id])?;
    while let Some(r) = rows.next()? {
        take_row(budget, max_rows)?;
        o.positions.push(Position {
            position_id: r.get(0)?,
            guest_no: r.get::<_, Option<i64>>(1)?.unwrap_or(1),
            guest_name: r
                .get::<_, Option<String>>(2)?
                .unwrap_or_else(|| "Гість 1".into()),
            linked_to: r.get(3)?,
            dish_id: r.get(4)?,
            name: r.get(5)?,
            count: Qty(r.get(6)?),
            sum: Kopecks(r.get(7)?),
            category: r.get(8)?,
            category_id: r.get(9)?,
            tax_category: r.get(10)?,
            tax_category_id: r.get(11)?,
            kind: r
                .get::<_, Option<String>>(12)?
                .unwrap_or_else(|| "dish".into()),
            check_number: r.get(13)?,
        });
    }
    let mut st = conn.prepare_cached(
        "SELECT discount_id, name, sum_kop FROM order_discounts WHERE bill_id = ?1 ORDER BY discount_id",
    )?;
    let mut rows = st.query(params![o.bill_id])?;
    while let Some(r) = rows.next()? {
        take_row(budget, max_rows)?;
        o.discounts.push(Discount {
            id: r.get(0)?,
            name: r.get(1)?,
            sum: Kopecks(r.get(2)?),
        });
    }
    Ok(())
}

fn take_row(budget: &mut usize, max_rows: usize) -> Result<(), MirrorError> {
    if *budget == 0 {
        return Err(MirrorError::TooManyRows(max_rows));
    }
    *budget -= 1;
    Ok(())
}

/// Open bills (NEW or BILL) on a table, oldest first.
pub fn open_orders_on_table(
    conn: &Connection,
    table_id: &str,
    max_rows: usize,
) -> Result<Vec<Order>, MirrorError> {
    let mut budget = max_rows;
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLS} FROM orders WHERE table_id = ?1 AND state IN ('NEW', 'BILL') ORDER BY created, order_number"
    ))?;
    let mut orders = Vec::new();
    let mut rows = st.query(params![table_id])?;
    while let Some(r) = rows.next()? {
        take_row(&mut budget, max_rows)?;
        orders.push(order_head(r)?);
    }
    for o in &mut orders {
        load_lines(conn, o, &mut budget, max_rows)?;
    }
    Ok(orders)
}

/// One bill by id, in any state.
pub fn order_by_id(
    conn: &Connection,
    bill_id: &str,
    max_rows: usize,
) -> Result<Option<Order>, MirrorError> {
    let mut budget = max_rows;
    let mut st = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLS} FROM orders WHERE bill_id = ?1"
    ))?;
    let Some(mut o) = st.query_row(params![bill_id], order_head).optional()? else {
        return Ok(None);
    };
    load_lines(conn, &mut o, &mut budget, max_rows)?;
    Ok(Some(o))
}
