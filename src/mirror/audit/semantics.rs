//! The checks of `audit` that read what the values mean: states, dates, signs, duplicates,
//! references, totals and quantities. Each query reads `from`: the table, or its first
//! `sample` rows.

use rusqlite::Connection;

use super::{quoted, rows3, Audit, Finding, Severity, EXAMPLES, STATES};
use crate::mirror::MirrorError;

pub(super) fn states(conn: &Connection, orders: &str, a: &mut Audit) -> Result<(), MirrorError> {
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

/// `yyyy.MM.dd HH:mm:ss`, digits where digits go.
const DATE_GLOB: &str =
    "[0-9][0-9][0-9][0-9].[01][0-9].[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]";

/// The same text through SQLite's calendar (a Julian day and back): NULL for month 13 or
/// hour 24, 3 March for 31 February; equal to `created` only for a moment that exists.
const DATE_ROUND_TRIP: &str = "strftime('%Y.%m.%d %H:%M:%S', \
     julianday(replace(substr(created, 1, 10), '.', '-') || substr(created, 11)))";

pub(super) fn dates(conn: &Connection, orders: &str, a: &mut Audit) -> Result<(), MirrorError> {
    let sql = format!(
        "SELECT COUNT(*), MIN(bill_id || ': ' || quote(created)) FROM {orders} \
         WHERE typeof(created) = 'text' AND NOT (length(created) = 19 AND created GLOB '{DATE_GLOB}' \
         AND {DATE_ROUND_TRIP} IS created)"
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
                "{n} bill(s) have a date not in 'yyyy.MM.dd HH:mm:ss' or not on the calendar \
                 (e.g. {}): the cloud \
                 shows it as it is, and open bills are ordered by this text",
                example.unwrap_or_default()
            ),
            fix: "strftime('%Y.%m.%d %H:%M:%S', created) in the view (restaurant local time)"
                .into(),
        });
    }
    Ok(())
}

pub(super) fn negative(
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

pub(super) fn duplicates(
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

pub(super) fn duplicate_lines(
    conn: &Connection,
    lines: &str,
    a: &mut Audit,
) -> Result<(), MirrorError> {
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

pub(super) fn orphan_bills(
    conn: &Connection,
    orders: &str,
    a: &mut Audit,
) -> Result<(), MirrorError> {
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

pub(super) fn orphan_rows(
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

pub(super) fn totals(conn: &Connection, orders: &str, a: &mut Audit) -> Result<(), MirrorError> {
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

pub(super) fn units(
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
