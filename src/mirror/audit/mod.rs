//! What `expirenza-agent check` finds in the mirror's rows, table by table and column by
//! column (the operations themselves are run by `check`): storage classes the readers cannot
//! take ([`contract`]), values that read without an error but answer wrong (a `state` outside
//! the four, a date in another format, negative sums, duplicate table numbers, bills and lines
//! that point at nothing), and what looks wrong without being sure (totals that do not add up,
//! quantities that look like units).
//!
//! Every query reads at most `sample` rows of a table (the first ones SQLite returns), so a
//! view over years of POS history is checked in bounded time; [`Scan`] says how many rows were
//! read and whether that was all of them.

mod semantics;

use rusqlite::Connection;

use super::contract::{self, Kind, Table};
use super::MirrorError;

/// How sure `check` is that something is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// An operation fails, or answers wrong: `check` exits 1.
    Error,
    /// Probably wrong; the reason says why (`check --strict` exits 1).
    Warning,
}

/// One problem, on one table (and column).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub table: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Rows concerned.
    pub rows: u64,
    /// What is wrong, with an example.
    pub problem: String,
    /// The fix (an error) or the reason it looks wrong (a warning).
    pub fix: String,
}

/// How much of one table was read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scan {
    pub table: &'static str,
    pub rows: u64,
    /// Every row was read (`false`: the first `rows`).
    pub all: bool,
}

/// Everything the rows say.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Audit {
    pub findings: Vec<Finding>,
    pub scans: Vec<Scan>,
}

/// The four values of `orders.state`.
pub const STATES: [&str; 4] = ["NEW", "BILL", "PAYED", "CLOSED"];

/// Examples shown per finding.
pub(super) const EXAMPLES: usize = 3;

pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Columns of `table` the mirror has, lower case; empty when the table is missing.
fn present(conn: &Connection, table: &str) -> Result<Vec<String>, MirrorError> {
    let mut st = conn.prepare_cached("SELECT lower(name) FROM pragma_table_info(?1)")?;
    let cols = st
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(cols)
}

fn count(conn: &Connection, sql: &str) -> Result<u64, MirrorError> {
    Ok(conn
        .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(0)
        .max(0) as u64)
}

/// Checks the mirror's rows; at most `sample` rows of each table are read.
pub fn audit(conn: &Connection, sample: u64) -> Result<Audit, MirrorError> {
    let mut a = Audit::default();
    let limit = sample.min(i64::MAX as u64);
    let mut have: Vec<(&'static str, Vec<String>)> = Vec::new();
    for t in contract::TABLES {
        let cols = match present(conn, t.name) {
            Ok(cols) => cols,
            Err(e) => {
                unreadable(&mut a, t.name, e)?;
                continue;
            }
        };
        if cols.is_empty() {
            continue;
        }
        let rows = count(
            conn,
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {} LIMIT {})",
                quoted(t.name),
                limit.saturating_add(1)
            ),
        );
        let rows = match rows {
            Ok(n) => n,
            Err(e) => {
                unreadable(&mut a, t.name, e)?;
                continue;
            }
        };
        let all = rows <= limit;
        a.scans.push(Scan {
            table: t.name,
            rows: rows.min(limit),
            all,
        });
        let from = if all {
            quoted(t.name)
        } else {
            format!("(SELECT * FROM {} LIMIT {limit})", quoted(t.name))
        };
        if let Err(e) = storage(conn, t, &cols, &from, &mut a) {
            unreadable(&mut a, t.name, e)?;
            continue;
        }
        have.push((t.name, cols));
    }
    let has = |table: &str, cols: &[&str]| {
        have.iter()
            .find(|(t, _)| *t == table)
            .is_some_and(|(_, p)| cols.iter().all(|c| p.iter().any(|x| x == c)))
    };
    // A table read whole is named as it is (its indexes serve the checks); a larger one
    // through a subquery of its first `limit` rows.
    let whole_tables: Vec<&str> = a.scans.iter().filter(|s| s.all).map(|s| s.table).collect();
    let whole = |table: &str| whole_tables.contains(&table);
    let from = |table: &str| {
        if whole(table) {
            quoted(table)
        } else {
            format!("(SELECT * FROM {} LIMIT {limit})", quoted(table))
        }
    };
    if has("orders", &["bill_id", "state"]) {
        checked(&mut a, "orders", |a| {
            semantics::states(conn, &from("orders"), a)
        })?;
    }
    if has("orders", &["bill_id", "created"]) {
        checked(&mut a, "orders", |a| {
            semantics::dates(conn, &from("orders"), a)
        })?;
    }
    for (table, col, key) in [
        ("orders", "raw_sum_kop", "bill_id"),
        ("orders", "total_sum_kop", "bill_id"),
        ("orders", "bonus_sum_kop", "bill_id"),
        (
            "order_positions",
            "sum_kop",
            "bill_id || ' / ' || position_id",
        ),
        (
            "order_positions",
            "count_milli",
            "bill_id || ' / ' || position_id",
        ),
        (
            "order_discounts",
            "sum_kop",
            "bill_id || ' / ' || discount_id",
        ),
        ("menu_items", "price_kop", "CAST(id AS TEXT)"),
        ("modifiers", "price_kop", "CAST(id AS TEXT)"),
    ] {
        let keys: Vec<&str> = key_columns(key);
        let mut need = keys.clone();
        need.push(col);
        if has(table, &need) {
            checked(&mut a, table, |a| {
                semantics::negative(conn, table, &from(table), col, key, a)
            })?;
        }
    }
    for (table, col, what) in [
        ("tables", "number", "table number"),
        ("tables", "id", "table id"),
        ("orders", "bill_id", "bill id"),
    ] {
        if has(table, &[col]) {
            checked(&mut a, table, |a| {
                semantics::duplicates(conn, table, &from(table), col, what, a)
            })?;
        }
    }
    if has("order_positions", &["bill_id", "position_id"]) {
        checked(&mut a, "order_positions", |a| {
            semantics::duplicate_lines(conn, &from("order_positions"), a)
        })?;
    }
    if has("orders", &["bill_id", "table_id", "state"]) && has("tables", &["id"]) {
        checked(&mut a, "orders", |a| {
            semantics::orphan_bills(conn, &from("orders"), a)
        })?;
    }
    if has("orders", &["bill_id"]) {
        for (table, what) in [
            ("order_positions", "lines"),
            ("order_discounts", "discounts"),
        ] {
            if has(table, &["bill_id"]) {
                checked(&mut a, table, |a| {
                    semantics::orphan_rows(conn, table, &from(table), what, a)
                })?;
            }
        }
    }
    let sums = [
        "bill_id",
        "state",
        "raw_sum_kop",
        "total_sum_kop",
        "bonus_sum_kop",
    ];
    if has("orders", &sums) && has("order_discounts", &["bill_id", "sum_kop"]) {
        checked(&mut a, "orders", |a| {
            semantics::totals(conn, &from("orders"), a)
        })?;
    }
    if has(
        "order_positions",
        &["bill_id", "position_id", "count_milli"],
    ) {
        checked(&mut a, "order_positions", |a| {
            semantics::units(
                conn,
                "order_positions",
                &from("order_positions"),
                "count_milli",
                a,
            )
        })?;
    }
    if has("stop_list", &["remaining_milli"]) {
        checked(&mut a, "stop_list", |a| {
            semantics::units(conn, "stop_list", &from("stop_list"), "remaining_milli", a)
        })?;
    }
    Ok(a)
}

/// A table (or a check on it) that SQLite could not read: a broken view, say. An error
/// finding of its own; the other tables are still checked. A busy mirror ends the audit.
fn unreadable(a: &mut Audit, table: &str, e: MirrorError) -> Result<(), MirrorError> {
    if e.is_wait() {
        return Err(e);
    }
    a.findings.push(Finding {
        severity: Severity::Error,
        table: table.into(),
        column: None,
        rows: 0,
        problem: format!("cannot be read: {e}"),
        fix: format!(
            "every operation reading {table} fails: `SELECT * FROM {table}` in the sqlite3 shell \
             shows SQLite's own error (a view over a POS table or column that is gone?)"
        ),
    });
    Ok(())
}

/// Runs one check on `table`; a failure to read it is a finding ([`unreadable`]).
fn checked(
    a: &mut Audit,
    table: &str,
    check: impl FnOnce(&mut Audit) -> Result<(), MirrorError>,
) -> Result<(), MirrorError> {
    match check(a) {
        Ok(()) => Ok(()),
        Err(e) => unreadable(a, table, e),
    }
}

/// The bare column names in a key expression such as `bill_id || ' / ' || position_id`.
fn key_columns(key: &str) -> Vec<&str> {
    key.split("||")
        .map(str::trim)
        .filter(|p| !p.starts_with('\''))
        .map(|p| {
            p.trim_start_matches("CAST(")
                .trim_end_matches(" AS TEXT)")
                .trim()
        })
        .collect()
}

/// Storage classes the readers cannot take, and NULLs where none is read.
fn storage(
    conn: &Connection,
    t: &Table,
    cols: &[String],
    from: &str,
    a: &mut Audit,
) -> Result<(), MirrorError> {
    let checked: Vec<&contract::Column> = t
        .columns
        .iter()
        .filter(|c| cols.iter().any(|p| p == c.name))
        .filter(|c| !matches!(c.kind, Kind::AnyText | Kind::SortOnly) || !c.null)
        .collect();
    if checked.is_empty() {
        return Ok(());
    }
    let bad = |c: &contract::Column| {
        let accepts: Vec<String> = c.kind.accepts().iter().map(|s| format!("'{s}'")).collect();
        let null = if c.null { ", 'null'" } else { "" };
        format!(
            "typeof({}) NOT IN ({}{null})",
            quoted(c.name),
            accepts.join(", ")
        )
    };
    let sums: Vec<String> = checked.iter().map(|c| format!("SUM({})", bad(c))).collect();
    let sql = format!("SELECT {} FROM {from}", sums.join(", "));
    let counts: Vec<i64> = conn.query_row(&sql, [], |r| {
        (0..checked.len())
            .map(|i| Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0)))
            .collect()
    })?;
    let key_ok = key_columns(t.key)
        .iter()
        .all(|k| cols.iter().any(|p| p == k));
    for (c, n) in checked.iter().zip(counts) {
        if n == 0 {
            continue;
        }
        // An example: the value, after the row's key when that is another column.
        let example = if !key_ok || t.key == c.name {
            format!("quote({})", quoted(c.name))
        } else {
            format!("({}) || ': ' || quote({})", t.key, quoted(c.name))
        };
        let detail = format!(
            "SELECT typeof({col}), COUNT(*), MIN({example}) FROM {from} WHERE {bad} GROUP BY 1",
            col = quoted(c.name),
            bad = bad(c)
        );
        let mut st = conn.prepare(&detail)?;
        let found = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (ty, rows, example) in found {
            let what = if ty == "null" {
                "NULL, which the agent cannot read there".to_string()
            } else {
                format!(
                    "{} where the agent reads {}",
                    ty.to_uppercase(),
                    c.kind.wants()
                )
            };
            a.findings.push(Finding {
                severity: Severity::Error,
                table: t.name.into(),
                column: Some(c.name.into()),
                rows: rows.max(0) as u64,
                problem: format!(
                    "{rows} row(s) hold {what}; every operation that reads them fails (e.g. {})",
                    example.unwrap_or_default()
                ),
                fix: format!(
                    "write {} in the view or the sync job",
                    contract::fix(c.kind, c.name, &ty)
                ),
            });
        }
    }
    Ok(())
}

/// `(text, count, text)` rows.
pub(super) fn rows3(
    conn: &Connection,
    sql: &str,
) -> Result<Vec<(String, u64, String)>, MirrorError> {
    let mut st = conn.prepare(sql)?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                r.get::<_, i64>(1)?.max(0) as u64,
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
