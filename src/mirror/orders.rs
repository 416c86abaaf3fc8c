//! Reading bills (orders, their positions and discounts) from the mirror.
//!
//! Used by getBill and, later, by payBill, splitOrder and the ORDERS_CACHE webhook. Every query
//! binds its parameters and is capped by `[limits] max_rows` rows per answer.

use super::raw::{Param, RawRow};
use super::rows::Budget;
use super::{Conn, MirrorError};
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

/// The columns of an order head, in [`order_head`]'s order.
macro_rules! select_order_head {
    ($rest:literal) => {
        concat!(
            "SELECT bill_id, order_number, table_id, state, created, waiter_id, waiter_name, raw_sum_kop, \
             total_sum_kop, bonus_sum_kop, is_banquet, is_delivery, split_available, root_bill_id, \
             payment_type, pricing_time ",
            $rest
        )
    };
}

/// One bill line borrowed from its mirror row (or from a [`Position`]): what the wire shape
/// writes, with no copy. getBill writes its lines straight from the rows through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub position_id: &'a str,
    pub guest_no: i64,
    pub guest_name: &'a str,
    pub linked_to: Option<&'a str>,
    pub dish_id: Option<&'a str>,
    pub name: &'a str,
    pub count: Qty,
    pub sum: Kopecks,
    pub category: Option<&'a str>,
    pub category_id: Option<&'a str>,
    pub tax_category: Option<&'a str>,
    pub tax_category_id: Option<&'a str>,
    pub kind: &'a str,
    pub check_number: Option<&'a str>,
}

impl Position {
    pub fn line(&self) -> Line<'_> {
        Line {
            position_id: &self.position_id,
            guest_no: self.guest_no,
            guest_name: &self.guest_name,
            linked_to: self.linked_to.as_deref(),
            dish_id: self.dish_id.as_deref(),
            name: &self.name,
            count: self.count,
            sum: self.sum,
            category: self.category.as_deref(),
            category_id: self.category_id.as_deref(),
            tax_category: self.tax_category.as_deref(),
            tax_category_id: self.tax_category_id.as_deref(),
            kind: &self.kind,
            check_number: self.check_number.as_deref(),
        }
    }
}

impl Line<'_> {
    pub fn to_position(&self) -> Position {
        let own = |s: Option<&str>| s.map(str::to_owned);
        Position {
            position_id: self.position_id.to_owned(),
            guest_no: self.guest_no,
            guest_name: self.guest_name.to_owned(),
            linked_to: own(self.linked_to),
            dish_id: own(self.dish_id),
            name: self.name.to_owned(),
            count: self.count,
            sum: self.sum,
            category: own(self.category),
            category_id: own(self.category_id),
            tax_category: own(self.tax_category),
            tax_category_id: own(self.tax_category_id),
            kind: self.kind.to_owned(),
            check_number: own(self.check_number),
        }
    }
}

/// Look a table up by the number the guest's QR code carries. A `tableNumber` that is not an
/// integer cannot name a table and is simply not found.
pub fn table_by_number(conn: &Conn<'_>, number: &str) -> Result<Option<TableRow>, MirrorError> {
    let Ok(n) = number.trim().parse::<i64>() else {
        return Ok(None);
    };
    table_where(
        conn,
        "SELECT id, number, name, hall_id FROM tables WHERE number = ?1",
        n,
    )
}

pub fn table_by_id(conn: &Conn<'_>, id: &str) -> Result<Option<TableRow>, MirrorError> {
    table_where(
        conn,
        "SELECT id, number, name, hall_id FROM tables WHERE id = ?1",
        id,
    )
}

fn table_where(
    conn: &Conn<'_>,
    sql: &'static str,
    key: impl Param,
) -> Result<Option<TableRow>, MirrorError> {
    conn.with_stmt(sql, |st| {
        let mut rows = st.query(key)?;
        let Some(r) = rows.step()? else {
            return Ok(None);
        };
        Ok(Some(TableRow {
            id: r.text(0)?.to_owned(),
            number: r.int(1)?,
            name: r.text_or_null(2)?.unwrap_or_default().to_owned(),
            hall_id: r.text_or_null(3)?.map(str::to_owned),
        }))
    })
}

fn order_head(r: &RawRow<'_>) -> rusqlite::Result<Order> {
    let own = |s: Option<&str>| s.map(str::to_owned);
    Ok(Order {
        bill_id: r.text(0)?.to_owned(),
        order_number: r.int(1)?,
        table_id: own(r.text_or_null(2)?),
        state: r.text(3)?.to_owned(),
        created: r.text_or_null(4)?.unwrap_or_default().to_owned(),
        waiter_id: own(r.text_or_null(5)?),
        waiter_name: own(r.text_or_null(6)?),
        raw_sum: Kopecks(r.int_or(7, 0)?),
        total_sum: Kopecks(r.int_or(8, 0)?),
        bonus_sum: Kopecks(r.int_or(9, 0)?),
        is_banquet: r.bool_or(10, false)?,
        is_delivery: r.bool_or(11, false)?,
        split_available: r.bool_or(12, false)?,
        root_bill_id: own(r.text_or_null(13)?),
        payment_type: own(r.text_or_null(14)?),
        pricing_time: own(r.text_or_null(15)?),
        positions: Vec::new(),
        discounts: Vec::new(),
    })
}

/// A line from its row (the columns of the query in [`for_each_line`]), borrowed.
fn line_of<'r>(r: &RawRow<'r>) -> rusqlite::Result<Line<'r>> {
    Ok(Line {
        position_id: r.text(0)?,
        guest_no: r.int_or(1, 1)?,
        guest_name: r.text_or_null(2)?.unwrap_or("Гість 1"),
        linked_to: r.text_or_null(3)?,
        dish_id: r.text_or_null(4)?,
        name: r.text(5)?,
        count: Qty(r.int(6)?),
        sum: Kopecks(r.int(7)?),
        category: r.text_or_null(8)?,
        category_id: r.text_or_null(9)?,
        tax_category: r.text_or_null(10)?,
        tax_category_id: r.text_or_null(11)?,
        kind: r.text_or_null(12)?.unwrap_or("dish"),
        check_number: r.text_or_null(13)?,
    })
}

/// Calls `f` with each line of bill `bill_id`, in bill order (guest, then line), borrowed
/// from its row: nothing is copied. Each row counts against `budget`. The query runs through
/// [`super::raw`] (one C call per column, where rusqlite makes four): a bill's lines are most
/// of getBill's columns.
pub fn for_each_line(
    conn: &Conn<'_>,
    bill_id: &str,
    budget: &mut Budget,
    mut f: impl FnMut(&Line<'_>),
) -> Result<(), MirrorError> {
    const LINES: &str =
        "SELECT position_id, guest_no, guest_name, linked_to, dish_id, name, count_milli, \
         sum_kop, category, category_id, tax_category, tax_category_id, type, check_number \
         FROM order_positions WHERE bill_id = ?1 ORDER BY guest_no, line_no";
    conn.with_stmt(LINES, |st| {
        let mut rows = st.query(bill_id)?;
        while let Some(r) = rows.step()? {
            budget.take()?;
            f(&line_of(&r)?);
        }
        Ok(())
    })
}

/// The discounts of `o`, counted against `budget`.
fn load_discounts(conn: &Conn<'_>, o: &mut Order, budget: &mut Budget) -> Result<(), MirrorError> {
    const DISCOUNTS: &str =
        "SELECT discount_id, name, sum_kop FROM order_discounts WHERE bill_id = ?1 ORDER BY discount_id";
    conn.with_stmt(DISCOUNTS, |st| {
        let mut rows = st.query(o.bill_id.as_str())?;
        while let Some(r) = rows.step()? {
            budget.take()?;
            o.discounts.push(Discount {
                id: r.text(0)?.to_owned(),
                name: r.text(1)?.to_owned(),
                sum: Kopecks(r.int(2)?),
            });
        }
        Ok(())
    })
}

/// Open bills (NEW or BILL) on a table, oldest first: heads and discounts, no positions (read
/// those with [`for_each_line`]).
pub fn open_heads_on_table(
    conn: &Conn<'_>,
    table_id: &str,
    budget: &mut Budget,
) -> Result<Vec<Order>, MirrorError> {
    const HEADS: &str = select_order_head!(
        "FROM orders WHERE table_id = ?1 AND state IN ('NEW', 'BILL') ORDER BY created, order_number"
    );
    let mut orders = conn.with_stmt(HEADS, |st| {
        let mut orders = Vec::new();
        let mut rows = st.query(table_id)?;
        while let Some(r) = rows.step()? {
            budget.take()?;
            orders.push(order_head(&r)?);
        }
        Ok::<_, MirrorError>(orders)
    })?;
    for o in &mut orders {
        load_discounts(conn, o, budget)?;
    }
    Ok(orders)
}

/// One bill by id, in any state: head and discounts, no positions.
pub fn head_by_id(
    conn: &Conn<'_>,
    bill_id: &str,
    budget: &mut Budget,
) -> Result<Option<Order>, MirrorError> {
    const HEAD: &str = select_order_head!("FROM orders WHERE bill_id = ?1");
    let head = conn.with_stmt(HEAD, |st| {
        let mut rows = st.query(bill_id)?;
        rows.step()?.map(|r| order_head(&r)).transpose()
    })?;
    let Some(mut o) = head else {
        return Ok(None);
    };
    load_discounts(conn, &mut o, budget)?;
    Ok(Some(o))
}

/// Open bills (NEW or BILL) on a table, oldest first, whole.
pub fn open_orders_on_table(
    conn: &Conn<'_>,
    table_id: &str,
    max_rows: usize,
) -> Result<Vec<Order>, MirrorError> {
    let mut budget = Budget::new(max_rows);
    let mut orders = open_heads_on_table(conn, table_id, &mut budget)?;
    for o in &mut orders {
        load_lines(conn, o, &mut budget)?;
    }
    Ok(orders)
}

/// One bill by id, in any state, whole.
pub fn order_by_id(
    conn: &Conn<'_>,
    bill_id: &str,
    max_rows: usize,
) -> Result<Option<Order>, MirrorError> {
    let mut budget = Budget::new(max_rows);
    let Some(mut o) = head_by_id(conn, bill_id, &mut budget)? else {
        return Ok(None);
    };
    load_lines(conn, &mut o, &mut budget)?;
    Ok(Some(o))
}

/// Copies the lines of `o` into `o.positions`.
fn load_lines(conn: &Conn<'_>, o: &mut Order, budget: &mut Budget) -> Result<(), MirrorError> {
    let mut lines = Vec::new();
    for_each_line(conn, &o.bill_id, budget, |l| lines.push(l.to_position()))?;
    o.positions = lines;
    Ok(())
}
