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
const EXAMPLES: usize = 3;

fn quoted(name: &str) -> String {
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
        let cols = present(conn, t.name)?;
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
        )?;
        a.scans.push(Scan {
            table: t.name,
            rows: rows.min(limit),
            all: rows <= limit,
        });
        storage(conn, t, &cols, limit, &mut a)?;
        have.push((t.name, cols));
    }
    let has = |table: &str, cols: &[&str]| {
        have.iter()
            .find(|(t, _)| *t == table)
            .is_some_and(|(_, p)| cols.iter().all(|c| p.iter().any(|x| x == c)))
    };
    let from = |table: &str| format!("(SELECT * FROM {} LIMIT {limit})", quoted(table));
    if has("orders", &["bill_id", "state"]) {
        states(conn, &from("orders"), &mut a)?;
    }
    if has("orders", &["bill_id", "created"]) {
        dates(conn, &from("orders"), &mut a)?;
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
            negative(conn, table, &from(table), col, key, &mut a)?;
        }
    }
    for (table, col, what) in [
        ("tables", "number", "table number"),
        ("tables", "id", "table id"),
        ("orders", "bill_id", "bill id"),
    ] {
        if has(table, &[col]) {
            duplicates(conn, table, &from(table), col, what, &mut a)?;
        }
    }
    if has("order_positions", &["bill_id", "position_id"]) {
        duplicate_lines(conn, &from("order_positions"), &mut a)?;
    }
    if has("orders", &["bill_id", "table_id", "state"]) && has("tables", &["id"]) {
        orphan_bills(conn, &from("orders"), &mut a)?;
    }
    if has("orders", &["bill_id"]) {
        for (table, what) in [
            ("order_positions", "lines"),
            ("order_discounts", "discounts"),
        ] {
            if has(table, &["bill_id"]) {
                orphan_rows(conn, table, &from(table), what, &mut a)?;
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
        totals(conn, &from("orders"), &mut a)?;
    }
    if has(
        "order_positions",
        &["bill_id", "position_id", "count_milli"],
    ) {
        units(
            conn,
            "order_positions",
            &from("order_positions"),
            "count_milli",
            &mut a,
        )?;
    }
    if has("stop_list", &["remaining_milli"]) {
        units(
            conn,
            "stop_list",
            &from("stop_list"),
            "remaining_milli",
            &mut a,
        )?;
    }
    Ok(a)
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
    limit: u64,
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
    let sql = format!(
        "SELECT {} FROM (SELECT * FROM {} LIMIT {limit})",
        sums.join(", "),
        quoted(t.name)
    );
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
        let key = if key_ok { t.key } else { "'?'" };
        let detail = format!(
            "SELECT typeof({col}), COUNT(*), MIN(({key}) || ': ' || quote({col})) \
             FROM (SELECT * FROM {table} LIMIT {limit}) WHERE {bad} GROUP BY 1",
            col = quoted(c.name),
            table = quoted(t.name),
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

fn states(conn: &Connection, orders: &str, a: &mut Audit) -> Result<(), MirrorError> {
    let list = STATES.map(|s| format!("'{s}'")).join(", ");
    let sql = format!(
        "SELECT quote(state), COUNT(*), MIN(bill_id) FROM {orders} \
         WHERE typeof(state) = 'text' AND state NOT IN ({list}) GROUP BY state ORDER BY 2 DESC"
    );
    for row in rows3(conn, &sql)?.into_iter().take(EXAMPLES * 2) {
        let (value, n, bill) = row;
        a.findings.push(Finding {
            severity: Severity::Error,
            table: "orders".into(),
            column: Some("state".into()),
            rows: n,
            problem: format!(
                "{n} bill(s) have state {value} (e.g. bill {bill}), none of NEW, BILL, PAYED, \
                 CLOSED: such a bill is never shown open, and an open one read as closed is \
                 never offered to the guest"
            ),
            fix: "map every POS status in the view: CASE status WHEN … THEN 'NEW' (open) / \
                  'BILL' (open, pre-check printed) / 'PAYED' / 'CLOSED' END"
                .into(),
        });
    }
    Ok(())
}

/// `(text, count, text)` rows.
fn rows3(conn: &Connection, sql: &str) -> Result<Vec<(String, u64, String)>, MirrorError> {
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

/// `yyyy.MM.dd HH:mm:ss`, digits where digits go.
const DATE_GLOB: &str =
    "[0-9][0-9][0-9][0-9].[01][0-9].[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]";

fn dates(conn: &Connection, orders: &str, a: &mut Audit) -> Result<(), MirrorError> {
    let sql = format!(
        "SELECT COUNT(*), MIN(bill_id || ': ' || quote(created)) FROM {orders} \
         WHERE typeof(created) = 'text' AND NOT (length(created) = 19 AND created GLOB '{DATE_GLOB}')"
    );
    let (n, example): (i64, Option<String>) =
        conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if n > 0 {
        a.findings.push(Finding {
            severity: Severity::Error,
            table: "orders".into(),
            column: Some("created".into()),
            rows: n as u64,
            problem: format!(
                "{n} bill(s) have a date not in 'yyyy.MM.dd HH:mm:ss' (e.g. {}): the cloud \
                 shows it as it is, and open bills are ordered by this text",
                example.unwrap_or_default()
            ),
            fix: "strftime('%Y.%m.%d %H:%M:%S', created) in the view (restaurant local time)"
                .into(),
        });
    }
    Ok(())
}

fn negative(
    conn: &Connection,
    table: &str,
    from: &str,
    col: &str,
    key: &str,
    a: &mut Audit,
) -> Result<(), MirrorError> {
    let c = quoted(col);
    let sql = format!(
        "SELECT COUNT(*), MIN(({key}) || ': ' || {c}) FROM {from} \
         WHERE typeof({c}) = 'integer' AND {c} < 0"
    );
    let (n, example): (i64, Option<String>) =
        conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if n == 0 {
        return Ok(());
    }
    let fix = match (table, col) {
        ("orders", "total_sum_kop") => {
            "a bill never owes less than 0: cap its discounts and bonus at what its lines cost \
             (MAX(raw − discounts − bonus, 0)), or leave the bill out until the POS fixes it"
        }
        ("order_positions", "count_milli") => {
            "a line's quantity is positive: fold returns and voids into the line they cancel"
        }
        ("order_positions", _) => {
            "a line's sum is what the guest pays for it: fold returns and voids into the line \
             they cancel, and list discounts in order_discounts"
        }
        ("order_discounts", _) => {
            "a discount is the positive amount taken off; a surcharge belongs in the lines"
        }
        _ => "amounts are positive integer kopecks",
    };
    a.findings.push(Finding {
        severity: Severity::Error,
        table: table.into(),
        column: Some(col.into()),
        rows: n as u64,
        problem: format!(
            "{n} row(s) are negative (e.g. {}): the guest's app would show a negative amount",
            example.unwrap_or_default()
        ),
        fix: fix.into(),
    });
    Ok(())
}

fn duplicates(
    conn: &Connection,
    table: &str,
    from: &str,
    col: &str,
    what: &str,
    a: &mut Audit,
) -> Result<(), MirrorError> {
    let c = quoted(col);
    let sql = format!(
        "SELECT quote({c}), COUNT(*), '' FROM {from} WHERE {c} IS NOT NULL \
         GROUP BY {c} HAVING COUNT(*) > 1 ORDER BY 2 DESC"
    );
    let dups = rows3(conn, &sql)?;
    if dups.is_empty() {
        return Ok(());
    }
    let examples: Vec<String> = dups
        .iter()
        .take(EXAMPLES)
        .map(|(v, n, _)| format!("{v} ×{n}"))
        .collect();
    let fix = match col {
        "number" => "tables.number is the number on the table's QR sticker: one row per number",
        _ => "one row per id: a view that joins must not repeat its rows",
    };
    a.findings.push(Finding {
        severity: Severity::Error,
        table: table.into(),
        column: Some(col.into()),
        rows: dups.iter().map(|d| d.1).sum(),
        problem: format!(
            "{} {what}(s) appear more than once ({}): a request for one finds either",
            dups.len(),
            examples.join(", ")
        ),
        fix: fix.into(),
    });
    Ok(())
}

fn duplicate_lines(conn: &Connection, lines: &str, a: &mut Audit) -> Result<(), MirrorError> {
    let sql = format!(
        "SELECT bill_id || ' / ' || position_id, COUNT(*), '' FROM {lines} \
         GROUP BY bill_id, position_id HAVING COUNT(*) > 1 ORDER BY 2 DESC"
    );
    let dups = rows3(conn, &sql)?;
    if let Some((example, _, _)) = dups.first() {
        a.findings.push(Finding {
            severity: Severity::Error,
            table: "order_positions".into(),
            column: Some("position_id".into()),
            rows: dups.iter().map(|d| d.1).sum(),
            problem: format!(
                "{} line id(s) repeat within their bill (e.g. {example}): splitOrder pays \
                 lines by this id",
                dups.len()
            ),
            fix: "position_id is unique within a bill".into(),
        });
    }
    Ok(())
}

fn orphan_bills(conn: &Connection, orders: &str, a: &mut Audit) -> Result<(), MirrorError> {
    let sql = format!(
        "SELECT o.bill_id, 1, quote(o.table_id) FROM {orders} o \
         WHERE o.state IN ('NEW', 'BILL') AND o.table_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM tables t WHERE t.id = o.table_id)"
    );
    let rows = rows3(conn, &sql)?;
    if rows.is_empty() {
        return Ok(());
    }
    let examples: Vec<String> = rows
        .iter()
        .take(EXAMPLES)
        .map(|(b, _, t)| format!("bill {b} on table_id {t}"))
        .collect();
    a.findings.push(Finding {
        severity: Severity::Error,
        table: "orders".into(),
        column: Some("table_id".into()),
        rows: rows.len() as u64,
        problem: format!(
            "{} open bill(s) are on a table that is not in `tables` ({}): no guest can find them",
            rows.len(),
            examples.join(", ")
        ),
        fix: "orders.table_id is a tables.id (the same text: CAST both to TEXT in views); a \
              bill without a table has table_id NULL"
            .into(),
    });
    Ok(())
}

fn orphan_rows(
    conn: &Connection,
    table: &str,
    from: &str,
    what: &str,
    a: &mut Audit,
) -> Result<(), MirrorError> {
    let sql = format!(
        "SELECT quote(p.bill_id), COUNT(*), '' FROM {from} p \
         WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.bill_id = p.bill_id) \
         GROUP BY p.bill_id ORDER BY 2 DESC"
    );
    let rows = rows3(conn, &sql)?;
    if rows.is_empty() {
        return Ok(());
    }
    let examples: Vec<String> = rows.iter().take(EXAMPLES).map(|r| r.0.clone()).collect();
    a.findings.push(Finding {
        severity: Severity::Error,
        table: table.into(),
        column: Some("bill_id".into()),
        rows: rows.iter().map(|r| r.1).sum(),
        problem: format!(
            "{} {what} belong to {} bill(s) that are not in `orders` (e.g. {}): they are never \
             shown",
            rows.iter().map(|r| r.1).sum::<u64>(),
            rows.len(),
            examples.join(", ")
        ),
        fix: format!("{table}.bill_id is an orders.bill_id, the same text"),
    });
    Ok(())
}

fn kop(v: i64) -> String {
    crate::money::Kopecks(v).to_string()
}

fn totals(conn: &Connection, orders: &str, a: &mut Audit) -> Result<(), MirrorError> {
    let sql = format!(
        "SELECT o.bill_id, COALESCE(o.raw_sum_kop, 0), COALESCE(o.total_sum_kop, 0), \
         COALESCE(o.bonus_sum_kop, 0), \
         (SELECT COALESCE(SUM(d.sum_kop), 0) FROM order_discounts d WHERE d.bill_id = o.bill_id) \
         FROM {orders} o WHERE o.state IN ('NEW', 'BILL') \
         AND typeof(o.raw_sum_kop) IN ('integer', 'null') \
         AND typeof(o.total_sum_kop) IN ('integer', 'null') \
         AND typeof(o.bonus_sum_kop) IN ('integer', 'null')"
    );
    let mut st = conn.prepare(&sql)?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?.unwrap_or(0),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let off: Vec<_> = rows
        .iter()
        .filter(|(_, raw, total, bonus, disc)| {
            raw.checked_sub(*disc).and_then(|v| v.checked_sub(*bonus)) != Some(*total)
        })
        .collect();
    if let Some((bill, raw, total, bonus, disc)) = off.first() {
        a.findings.push(Finding {
            severity: Severity::Warning,
            table: "orders".into(),
            column: Some("total_sum_kop".into()),
            rows: off.len() as u64,
            problem: format!(
                "{} open bill(s) owe a total that is not raw − discounts − bonus (e.g. bill \
                 {bill}: totalSum {} but rawSum {} − discounts {} − bonus {} = {})",
                off.len(),
                kop(*total),
                kop(*raw),
                kop(*disc),
                kop(*bonus),
                kop(raw.saturating_sub(*disc).saturating_sub(*bonus))
            ),
            fix: "the guest pays totalSum and sees the discounts listed: when they do not add \
                  up, the bill looks wrong (a discount missing from order_discounts, a service \
                  charge, a bonus in the wrong column?)"
                .into(),
        });
    }
    Ok(())
}

fn units(
    conn: &Connection,
    table: &str,
    from: &str,
    col: &str,
    a: &mut Audit,
) -> Result<(), MirrorError> {
    let c = quoted(col);
    let sql = format!(
        "SELECT COUNT(*), SUM({c} BETWEEN 1 AND 99), SUM({c} = 0) FROM {from} \
         WHERE typeof({c}) = 'integer'"
    );
    let (all, small, zero): (i64, Option<i64>, Option<i64>) =
        conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let (small, zero) = (small.unwrap_or(0), zero.unwrap_or(0));
    let lines = table == "order_positions";
    if small > 0 && small * 2 >= all {
        a.findings.push(Finding {
            severity: Severity::Warning,
            table: table.into(),
            column: Some(col.into()),
            rows: small as u64,
            problem: format!(
                "{small} of {all} row(s) hold a quantity under 0.1 (1 to 99 thousandths): \
                 they look like units (1 portion written as 1, shown as 0.001)"
            ),
            fix: format!(
                "{col} is thousandths: 1 portion = 1000, 0.5 = 500; from units write \
                 CAST(ROUND(qty * 1000) AS INTEGER)"
            ),
        });
    }
    if lines && zero > 0 {
        a.findings.push(Finding {
            severity: Severity::Warning,
            table: table.into(),
            column: Some(col.into()),
            rows: zero as u64,
            problem: format!(
                "{zero} line(s) have quantity 0: the guest sees `count: 0` (half a portion \
                 written in units and cast to an integer is 0)"
            ),
            fix: format!(
                "{col} is thousandths: half a portion = 500; from units write \
                 CAST(ROUND(qty * 1000) AS INTEGER), and leave voided lines out"
            ),
        });
    }
    Ok(())
}
